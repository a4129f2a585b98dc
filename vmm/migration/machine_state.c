/* SPDX-License-Identifier: MIT */
/*
 * Saving and loading one machine (struct vm) as stream records. The device
 * table below is the one place that lists what a machine's state is made
 * of; the loader requires each entry exactly once, so a stream from another
 * kind of machine is refused rather than half-loaded.
 */
#include "vmm/migration/machine_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "common/zero.h"
#include "kvmini.h"
#include "devices/pci.h"
#include "devices/pci_dev.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/virtio_pci.h"
#include "vmm/arch/arch.h"
#include "vmm/migration/ram_pending.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define CONFIG_VERSION	      2 /* 2: the guest's CPUID */
#define DEVICE_RECORD_VERSION 1
#define PAGE		      4096u
#define RAM_RUN		      256u /* pages per RAM record: the stream's limit */

/* ---- the devices ---- */

#define WRAP(type, fn)                                                                                       \
	static void save_##fn(void *o, struct sbuf *b)                                                       \
	{                                                                                                    \
		fn##_save((const struct type *)o, b);                                                        \
	}                                                                                                    \
	static int load_##fn(void *o, struct sreader *r, struct err *e)                                      \
	{                                                                                                    \
		return fn##_load((struct type *)o, r, e);                                                    \
	}
WRAP(serial, serial)
WRAP(pci_host, pci_host)
WRAP(pvpanic, pvpanic)

/* A virtio function: its PCI function (config space, BARs, MSI-X) first, then the transport. */
static void save_virtio(void *o, struct sbuf *b)
{
	struct virtio_pci *t = o;
	pci_dev_save(virtio_pci_function(t), b);
	virtio_pci_save(t, b);
}
static int load_virtio(void *o, struct sreader *r, struct err *e)
{
	struct virtio_pci *t = o;
	int rc = pci_dev_load(virtio_pci_function(t), r, e);
	return rc ? rc : virtio_pci_load(t, r, e);
}

/* serial, pci-host, pvpanic, up to 8 of the architecture's, the virtio functions */
#define MAX_DEVS (3 + 8 + MACHINE_MAX_DISKS + MACHINE_MAX_NICS)

/* In load order: the platform (the UART, then the architecture's), the PCI host, then the PCI functions. */
static unsigned devices(struct vm *vm, struct machine_dev *d)
{
	unsigned n = 0;
	d[n++] = (struct machine_dev){"serial", 0, save_serial, load_serial, vm->serial, false};
	n += arch_state_devices(vm, d + n);
	d[n++] = (struct machine_dev){"pci-host", 0, save_pci_host, load_pci_host, vm->pci, false};
	for (unsigned i = 0; i < vm->nblks; i++)
		d[n++] = (struct machine_dev){
		    "virtio-blk", i, save_virtio, load_virtio, virtio_blk_transport(vm->blks[i]), false};
	for (unsigned i = 0; i < vm->nnets; i++)
		d[n++] = (struct machine_dev){
		    "virtio-net", i, save_virtio, load_virtio, virtio_net_transport(vm->nets[i]), false};
	d[n++] = (struct machine_dev){"pvpanic", 0, save_pvpanic, load_pvpanic, vm->pvpanic, false};
	return n;
}

/* ---- CONFIG ---- */

void machine_config_put(const struct machine_desc *m, struct sbuf *b)
{
	sbuf_u32(b, CONFIG_VERSION);
	sbuf_u32(b, m->ncpus);
	sbuf_u64(b, m->mem_bytes);
	sbuf_u32(b, m->ndisks);
	for (unsigned i = 0; i < m->ndisks; i++) {
		sbuf_u64(b, m->disks[i].size);
		sbuf_u8(b, m->disks[i].readonly);
	}
	sbuf_u32(b, m->nnics);
	for (unsigned i = 0; i < m->nnics; i++) {
		sbuf_put(b, m->nics[i].mac, 6);
		sbuf_u32(b, m->nics[i].queues);
	}
	arch_cpu_desc_put(&m->cpu, b);
}

int machine_config_parse(const uint8_t *p, size_t len, struct machine_desc *m, struct err *e)
{
	struct sreader r;
	sreader_init(&r, p, len);
	memset(m, 0, sizeof(*m));
	uint32_t v = sreader_u32(&r);
	if (!r.bad && v != CONFIG_VERSION)
		return err_set(e, -EINVAL,
			       "the saved machine description has version %u, this kvmini reads %u", v,
			       CONFIG_VERSION);
	m->ncpus = sreader_u32(&r);
	m->mem_bytes = sreader_u64(&r);
	m->ndisks = sreader_u32(&r);
	if (!r.bad && m->ndisks > MACHINE_MAX_DISKS)
		return err_set(e, -EINVAL, "the saved VM has %u disks, this kvmini takes at most %u",
			       m->ndisks, MACHINE_MAX_DISKS);
	for (unsigned i = 0; i < m->ndisks && !r.bad; i++) {
		m->disks[i].size = sreader_u64(&r);
		m->disks[i].readonly = sreader_u8(&r);
		sreader_check(&r, m->disks[i].readonly <= 1);
	}
	m->nnics = sreader_u32(&r);
	if (!r.bad && m->nnics > MACHINE_MAX_NICS)
		return err_set(e, -EINVAL, "the saved VM has %u NICs, this kvmini takes at most %u", m->nnics,
			       MACHINE_MAX_NICS);
	for (unsigned i = 0; i < m->nnics && !r.bad; i++) {
		sreader_get(&r, m->nics[i].mac, 6);
		m->nics[i].queues = sreader_u32(&r);
	}
	int rc = arch_cpu_desc_parse(&r, &m->cpu, e);
	if (rc)
		return rc;
	if (!sreader_done(&r))
		return err_set(e, -EINVAL, "the saved machine description is malformed");
	return 0;
}

static int config_compare(const struct machine_desc *here, const struct machine_desc *m, struct err *e)
{
	if (m->ncpus != here->ncpus)
		return err_set(e, -EINVAL, "the saved VM has %u vCPUs, this one %u (--cpus)", m->ncpus,
			       here->ncpus);
	if (m->mem_bytes != here->mem_bytes)
		return err_set(e, -EINVAL, "the saved VM has %llu MiB of memory, this one %llu MiB (--mem)",
			       (unsigned long long)(m->mem_bytes >> 20),
			       (unsigned long long)(here->mem_bytes >> 20));
	if (m->ndisks != here->ndisks)
		return err_set(e, -EINVAL, "the saved VM has %u disks, this one %u (--disk)", m->ndisks,
			       here->ndisks);
	for (unsigned i = 0; i < m->ndisks; i++) {
		if (m->disks[i].size != here->disks[i].size)
			return err_set(e, -EINVAL, "disk vd%c: %llu bytes in the saved VM, %llu here",
				       'a' + i, (unsigned long long)m->disks[i].size,
				       (unsigned long long)here->disks[i].size);
		if (m->disks[i].readonly != here->disks[i].readonly)
			return err_set(e, -EINVAL, "disk vd%c: read-only %s in the saved VM, not here",
				       'a' + i, m->disks[i].readonly ? "on" : "off");
	}
	if (m->nnics != here->nnics)
		return err_set(e, -EINVAL, "the saved VM has %u NICs, this one %u (--net)", m->nnics,
			       here->nnics);
	for (unsigned i = 0; i < m->nnics; i++) {
		const uint8_t *mac = m->nics[i].mac;
		if (memcmp(mac, here->nics[i].mac, 6))
			return err_set(
			    e, -EINVAL,
			    "NIC %u: MAC %02x:%02x:%02x:%02x:%02x:%02x in the saved VM, another here (mac=)",
			    i, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		if (m->nics[i].queues != here->nics[i].queues)
			return err_set(e, -EINVAL, "NIC %u: %u queue pairs in the saved VM, %u here", i,
				       m->nics[i].queues, here->nics[i].queues);
	}
	return arch_cpu_desc_check(&m->cpu, &here->cpu, e);
}

/* The saved machine must be this one: the first difference is the message. */
int machine_config_check(const struct machine_desc *here, const uint8_t *p, size_t len, struct err *e)
{
	struct machine_desc *m = malloc(sizeof(*m));
	if (!m)
		return err_set(e, -ENOMEM, "out of memory");
	int r = machine_config_parse(p, len, m, e);
	if (!r)
		r = config_compare(here, m, e);
	free(m);
	return r;
}

/* ---- RAM ---- */

static bool selected(const uint64_t *bitmap, uint64_t pfn)
{
	return !bitmap || (bitmap[pfn / 64] >> (pfn % 64) & 1);
}

int machine_state_write_ram(struct vm *vm, struct stream_writer *w, const uint64_t *bitmap,
			    int (*tick)(void *opaque, const struct stream_writer *w), void *opaque,
			    struct err *e)
{
	for (unsigned ri = 0; ri < vm->mem.nregions; ri++) {
		const struct guest_mem_region *rg = &vm->mem.regions[ri];
		uint64_t npages = rg->size / PAGE, pfn0 = rg->gpa / PAGE;
		uint64_t i = 0;
		while (i < npages) {
			if (!selected(bitmap, pfn0 + i)) {
				i++;
				continue;
			}
			/* A run of selected pages, all zero or all not (zero ones go without data). */
			bool zero = page_is_zero(rg->hva + i * PAGE);
			uint32_t n = 1;
			while (n < RAM_RUN && i + n < npages && selected(bitmap, pfn0 + i + n) &&
			       page_is_zero(rg->hva + (i + n) * PAGE) == zero)
				n++;
			int r =
			    stream_write_ram(w, rg->gpa + i * PAGE, n, zero ? NULL : rg->hva + i * PAGE, e);
			if (!r && tick && tick(opaque, w))
				r = err_set(e, -ECANCELED, "cancelled");
			if (r)
				return r;
			i += n;
		}
	}
	return 0;
}

/* The reader puts RAM pages straight into guest memory (stream_reader_set_ram_sink). */
static uint8_t *ram_sink(void *opaque, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&((struct vm *)opaque)->mem, gpa, len);
}

/* ---- writing ---- */

static int put_record(struct stream_writer *w, uint32_t type, struct sbuf *b, struct err *e)
{
	int r = b->oom ? err_set(e, -ENOMEM, "out of memory saving the VM's state")
		       : stream_write_record(w, type, b->data, b->len, e);
	sbuf_free(b);
	return r;
}

int machine_state_write_begin(const struct machine_desc *desc, struct stream_writer *w, struct err *e)
{
	struct sbuf b;
	int r;
	if ((r = stream_write_header(w, e)))
		return r;
	sbuf_init(&b);
	machine_config_put(desc, &b);
	return put_record(w, STREAM_CONFIG, &b, e);
}

int machine_state_write(struct vm *vm, const struct machine_desc *desc, struct stream_writer *w,
			struct err *e)
{
	int r;
	if ((r = machine_state_write_begin(desc, w, e)) ||
	    (r = machine_state_write_ram(vm, w, NULL, NULL, NULL, e)))
		return r;
	return machine_state_write_final(vm, w, e);
}

int machine_state_write_final(struct vm *vm, struct stream_writer *w, struct err *e)
{
	struct sbuf b;
	int r;
	sbuf_init(&b);
	if ((r = arch_vm_state_save(vm, &b, e))) {
		sbuf_free(&b);
		return r;
	}
	if ((r = put_record(w, STREAM_VM, &b, e)))
		return r;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		sbuf_init(&b);
		stream_put_vcpu_header(&b, i);
		if ((r = arch_vcpu_state_save(&vm->vcpus[i], &b, e))) {
			sbuf_free(&b);
			return r;
		}
		if ((r = put_record(w, STREAM_VCPU, &b, e)))
			return r;
	}
	struct machine_dev d[MAX_DEVS];
	unsigned n = devices(vm, d);
	for (unsigned i = 0; i < n; i++) {
		sbuf_init(&b);
		if ((r = stream_put_device_header(&b, d[i].name, d[i].instance, DEVICE_RECORD_VERSION, e))) {
			sbuf_free(&b);
			return r;
		}
		d[i].save(d[i].obj, &b);
		if ((r = put_record(w, STREAM_DEVICE, &b, e)))
			return r;
	}
	return stream_write_end(w, e);
}

/* ---- reading ---- */

static int vcpu_load(struct vm *vm, bool *seen, const uint8_t *p, size_t len, struct err *e)
{
	uint32_t index;
	const uint8_t *state;
	size_t slen;
	int r = stream_parse_vcpu(p, len, &index, &state, &slen, e);
	if (r)
		return r;
	if (index >= vm->ncpus || seen[index])
		return err_set(e, -EINVAL, "vCPU %u: %s", index,
			       index >= vm->ncpus ? "no such vCPU here" : "saved twice");
	struct sreader sr;
	sreader_init(&sr, state, slen);
	struct err ve = {{0}};
	if ((r = arch_vcpu_state_load(&vm->vcpus[index], &sr, &ve)))
		return err_set(e, r, "vCPU %u: %s", index, err_msg(&ve));
	if (!sreader_done(&sr))
		return err_set(e, -EINVAL, "vCPU %u: trailing bytes in its state", index);
	seen[index] = true;
	return 0;
}

static int device_load(struct machine_dev *d, unsigned n, const uint8_t *p, size_t len, struct err *e)
{
	struct stream_device sd;
	int r = stream_parse_device(p, len, &sd, e);
	if (r)
		return r;
	struct machine_dev *x = NULL;
	for (unsigned i = 0; i < n && !x; i++)
		if (!strcmp(d[i].name, sd.name) && d[i].instance == sd.instance)
			x = &d[i];
	if (!x)
		return err_set(e, -EINVAL, "the saved VM has a device %s %u that this one lacks", sd.name,
			       sd.instance);
	if (x->loaded)
		return err_set(e, -EINVAL, "device %s %u saved twice", sd.name, sd.instance);
	if (sd.version != DEVICE_RECORD_VERSION)
		return err_set(e, -EINVAL, "device %s %u: record version %u, this kvmini reads %u", sd.name,
			       sd.instance, sd.version, DEVICE_RECORD_VERSION);
	struct sreader sr;
	sreader_init(&sr, sd.state, sd.state_len);
	struct err de = {{0}};
	if ((r = x->load(x->obj, &sr, &de)))
		return err_set(e, r, "device %s %u: %s", sd.name, sd.instance, err_msg(&de));
	if (!sreader_done(&sr))
		return err_set(e, -EINVAL, "device %s %u: trailing bytes in its state", sd.name, sd.instance);
	x->loaded = true;
	return 0;
}

static int vm_state_load(struct vm *vm, const uint8_t *p, size_t len, struct err *e)
{
	struct sreader sr;
	sreader_init(&sr, p, len);
	int r = arch_vm_state_load(vm, &sr, e);
	if (!r && !sreader_done(&sr))
		r = err_set(e, -EINVAL, "trailing bytes in the VM record");
	return r;
}

/* The order records must come in: each type's phase, never going back. */
static int phase(uint32_t type)
{
	switch (type) {
	case STREAM_CONFIG:
		return 0;
	case STREAM_RAM:
		return 1;
	case STREAM_VM:
		return 2;
	case STREAM_VCPU:
		return 3;
	case STREAM_DEVICE:
		return 4;
	default:
		return 5;
	}
}

static int read_records(struct vm *vm, const struct machine_desc *desc, struct stream_reader *r,
			struct ram_pending *pend, struct err *e);

int machine_state_read(struct vm *vm, const struct machine_desc *desc, struct stream_reader *r, struct err *e)
{
	struct ram_pending pend;
	ram_pending_init(&pend, guest_mem_end(&vm->mem));
	stream_reader_set_ram_sink(r, ram_sink, vm);
	int rc = read_records(vm, desc, r, &pend, e);
	ram_pending_destroy(&pend);
	return rc;
}

static int read_records(struct vm *vm, const struct machine_desc *desc, struct stream_reader *r,
			struct ram_pending *pend, struct err *e)
{
	struct machine_dev d[MAX_DEVS];
	unsigned n = devices(vm, d);
	bool vcpu_seen[KVMINI_MAX_CPUS] = {false};
	int last = -1, rc;
	bool config = false, vmstate = false;
	for (;;) {
		uint32_t type;
		const uint8_t *p;
		size_t len;
		if ((rc = stream_read_record(r, &type, &p, &len, e)))
			return rc;
		int ph = phase(type);
		if (ph < last || (type == STREAM_CONFIG && config) || (type == STREAM_VM && vmstate) ||
		    (type != STREAM_CONFIG && !config))
			return err_set(e, -EINVAL, "record %llu (%s) is out of order",
				       (unsigned long long)(r->index - 1), stream_type_name(type));
		last = ph;
		switch (type) {
		case STREAM_CONFIG:
			rc = machine_config_check(desc, p, len, e);
			config = true;
			break;
		case STREAM_RAM: /* already in place (ram_sink) */
			rc = ram_pending_note(pend, r->ram.gpa, r->ram.npages, r->data_ok ? NULL : r->torn,
					      r->index - 1, e);
			break;
		case STREAM_VM:
			rc = vm_state_load(vm, p, len, e);
			vmstate = true;
			break;
		case STREAM_VCPU:
			rc = vcpu_load(vm, vcpu_seen, p, len, e);
			break;
		case STREAM_DEVICE:
			rc = device_load(d, n, p, len, e);
			break;
		case STREAM_END:
			if ((rc = ram_pending_check(pend, e)))
				return rc;
			if (!vmstate)
				return err_set(e, -EINVAL, "the saved state has no VM record");
			for (unsigned i = 0; i < vm->ncpus; i++)
				if (!vcpu_seen[i])
					return err_set(e, -EINVAL, "the saved state has no state for vCPU %u",
						       i);
			for (unsigned i = 0; i < n; i++)
				if (!d[i].loaded)
					return err_set(e, -EINVAL,
						       "the saved state has no state for device %s %u",
						       d[i].name, d[i].instance);
			return 0;
		default:
			rc = err_set(e, -EINVAL, "unexpected record type %u", type);
		}
		if (rc)
			return rc;
	}
}
