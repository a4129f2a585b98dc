/* SPDX-License-Identifier: MIT */
/* The stats command's reply: every counter the library keeps, as JSON (docs/API.md). */
#include "vmm/api/commands.h"

#define I(x) ((json_int_t)(x))

static json_t *vcpu_stats(struct kvmini_vm *vm, unsigned i)
{
	struct kvmini_vcpu_stats s;
	kvmini_vm_vcpu_stats(vm, i, &s);
	json_t *exits =
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "total", I(s.exits_total),
		      "io", I(s.exits_io), "mmio", I(s.exits_mmio), "intr", I(s.exits_intr), "kick",
		      I(s.exits_kick), "hlt", I(s.exits_hlt), "shutdown", I(s.exits_shutdown), "system_event",
		      I(s.exits_system_event), "internal_error", I(s.exits_internal_error), "fail_entry",
		      I(s.exits_fail_entry), "other", I(s.exits_other));
	return json_pack("{s:i, s:o}", "index", (int)i, "exits", exits);
}

static json_t *disk_stats(struct kvmini_vm *vm, unsigned i)
{
	struct kvmini_disk_stats s;
	struct kvmini_disk_info di;
	kvmini_vm_disk_stats(vm, i, &s);
	kvmini_vm_disk_info(vm, i, &di);
	json_t *buckets = json_array();
	for (unsigned b = 0; b < KVMINI_DISK_LAT_BUCKETS; b++) {
		json_t *lt = b + 1 < KVMINI_DISK_LAT_BUCKETS ? json_integer(I(1) << b) : json_null();
		json_array_append_new(buckets, json_pack("{s:o, s:I}", "lt", lt, "count", I(s.lat_hist[b])));
	}
	json_t *d =
	    json_pack("{s:s, s:I, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I}, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I}}",
		      "name", di.name, "requests", I(s.requests), "read", "requests", I(s.read_reqs), "bytes",
		      I(s.read_bytes), "write", "requests", I(s.write_reqs), "bytes", I(s.write_bytes),
		      "flush", "requests", I(s.flush_reqs), "discard", "requests", I(s.discard_reqs), "bytes",
		      I(s.discard_bytes), "write_zeroes", "requests", I(s.write_zeroes_reqs), "bytes",
		      I(s.write_zeroes_bytes), "get_id", "requests", I(s.get_id_reqs));
	json_object_set_new(d, "other", json_pack("{s:I}", "requests", I(s.other_reqs)));
	json_object_set_new(d, "errors",
			    json_pack("{s:I, s:I, s:I}", "total", I(s.errors_ioerr + s.errors_unsupp),
				      "ioerr", I(s.errors_ioerr), "unsupp", I(s.errors_unsupp)));
	json_object_set_new(d, "notifications", json_integer(I(s.notifications)));
	json_object_set_new(d, "interrupts", json_integer(I(s.interrupts)));
	json_object_set_new(d, "latency_us",
			    json_pack("{s:I, s:o}", "sum_ns", I(s.lat_sum_ns), "buckets", buckets));
	return d;
}

static json_t *nic_stats(struct kvmini_vm *vm, unsigned i)
{
	struct kvmini_net_stats s;
	struct kvmini_net_info ni;
	kvmini_vm_net_stats(vm, i, &s);
	kvmini_vm_net_info(vm, i, &ni);
	json_t *n =
	    json_pack("{s:s, s:b, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}", "name", ni.name,
		      "link_up", s.link_up, "rx", "packets", I(s.rx_packets), "bytes", I(s.rx_bytes),
		      "dropped", I(s.rx_dropped), "errors", I(s.rx_errors), "tx", "packets", I(s.tx_packets),
		      "bytes", I(s.tx_bytes), "dropped", I(s.tx_dropped), "errors", I(s.tx_errors));
	json_object_set_new(n, "notifications",
			    json_pack("{s:I, s:I, s:I}", "rx", I(s.rx_notifications), "tx",
				      I(s.tx_notifications), "ctrl", I(s.ctrl_notifications)));
	json_object_set_new(n, "interrupts",
			    json_pack("{s:I, s:I, s:I}", "rx", I(s.rx_interrupts), "tx", I(s.tx_interrupts),
				      "ctrl", I(s.ctrl_interrupts)));
	return n;
}

json_t *api_stats(struct kvmini_vm *vm)
{
	const struct kvmini_config *c = kvmini_vm_config(vm);
	json_t *vcpus = json_array(), *disks = json_array(), *nics = json_array();
	for (unsigned i = 0; i < c->cpus; i++)
		json_array_append_new(vcpus, vcpu_stats(vm, i));
	for (unsigned i = 0; i < c->ndisks; i++)
		json_array_append_new(disks, disk_stats(vm, i));
	for (unsigned i = 0; i < c->nnics; i++)
		json_array_append_new(nics, nic_stats(vm, i));
	return json_pack("{s:I, s:o, s:o, s:o}", "uptime_ms", I(kvmini_vm_uptime_ms(vm)), "vcpus", vcpus,
			 "disks", disks, "nics", nics);
}
