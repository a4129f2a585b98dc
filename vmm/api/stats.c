/* SPDX-License-Identifier: MIT */
/* The stats command's reply: every counter the library keeps, as JSON (docs/API.md). */
#include "vmm/api/commands.h"

static json_t *nic_stats(struct kvmini_vm *vm, unsigned i)
{
	struct kvmini_net_stats s;
	struct kvmini_net_info ni;
	kvmini_vm_net_stats(vm, i, &s);
	kvmini_vm_net_info(vm, i, &ni);
	return json_pack("{s:s, s:b, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}", "name", ni.name, "link_up",
			 s.link_up, "rx", "packets", (json_int_t)s.rx_packets, "bytes", (json_int_t)s.rx_bytes,
			 "dropped", (json_int_t)s.rx_dropped, "errors", (json_int_t)s.rx_errors, "tx", "packets",
			 (json_int_t)s.tx_packets, "bytes", (json_int_t)s.tx_bytes, "dropped",
			 (json_int_t)s.tx_dropped, "errors", (json_int_t)s.tx_errors);
}

json_t *api_stats(struct kvmini_vm *vm)
{
	const struct kvmini_config *c = kvmini_vm_config(vm);
	json_t *nics = json_array();
	for (unsigned i = 0; i < c->nnics; i++)
		json_array_append_new(nics, nic_stats(vm, i));
	return json_pack("{s:I, s:o}", "uptime_ms", (json_int_t)kvmini_vm_uptime_ms(vm), "nics", nics);
}
