/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (BAR accesses) and the set-up thread (create, destroy). */
#include "pvpanic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci_dev.h"

#define PVPANIC_STATE_VERSION 1

struct pvpanic {
	struct pci_dev *pci;
	struct vm_requester req;
	unsigned seen; /* atomic: PVPANIC_* events written */
};

static void bar_access(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pvpanic *p = opaque;

	/* The register is the byte at offset 0; the rest of the BAR reads 0 and ignores writes. */
	if (off != 0 || len == 0)
		return;
	if (!is_write) {
		data[0] = PVPANIC_EVENTS;
		return;
	}
	unsigned ev = data[0] & PVPANIC_EVENTS;
	if (!ev)
		return;
	__atomic_fetch_or(&p->seen, ev, __ATOMIC_ACQ_REL);
	if (ev & PVPANIC_PANICKED)
		vm_requester_send(&p->req, VM_REQUEST_PANIC);
}

static const struct pci_bar_ops bar_ops = {.access = bar_access};

struct pvpanic *pvpanic_create(struct pci_host *h, unsigned devfn, const struct vm_requester *req,
			       struct err *e)
{
	struct pvpanic *p = calloc(1, sizeof(*p));
	if (!p) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	if (req)
		p->req = *req;
	/* As QEMU's pvpanic-pci: its ids, QEMU's default subsystem, revision 1. */
	struct pci_dev_id id = {
	    .vendor = PVPANIC_PCI_VENDOR,
	    .device = PVPANIC_PCI_DEVICE,
	    .subsys_vendor = 0x1af4,
	    .subsys = 0x1100,
	    .revision = 1,
	    .class_code = PVPANIC_PCI_CLASS,
	};
	p->pci = pci_dev_create(h, devfn, &id, NULL, NULL, e);
	if (!p->pci) {
		free(p);
		return NULL;
	}
	int r = pci_dev_add_bar(p->pci, PVPANIC_BAR, PCI_BAR_MEM32, false, PVPANIC_BAR_SIZE, &bar_ops, p);
	if (r) {
		err_set(e, r, "pvpanic: cannot place its BAR: %s", strerror(-r));
		pvpanic_destroy(p);
		return NULL;
	}
	return p;
}

void pvpanic_destroy(struct pvpanic *p)
{
	if (!p)
		return;
	pci_dev_destroy(p->pci);
	free(p);
}

unsigned pvpanic_events_seen(const struct pvpanic *p)
{
	return __atomic_load_n(&p->seen, __ATOMIC_ACQUIRE);
}

void pvpanic_save(const struct pvpanic *p, struct sbuf *out)
{
	sbuf_u32(out, PVPANIC_STATE_VERSION);
	sbuf_u8(out, (uint8_t)pvpanic_events_seen(p));
	pci_dev_save(p->pci, out);
}

int pvpanic_load(struct pvpanic *p, struct sreader *in, struct err *e)
{
	uint32_t ver = sreader_u32(in);
	uint8_t seen = sreader_u8(in);

	if (in->bad)
		return err_set(e, -EINVAL, "pvpanic: saved state truncated");
	if (ver != PVPANIC_STATE_VERSION)
		return err_set(e, -EINVAL, "pvpanic: saved state version %u, this build reads %u", ver,
			       PVPANIC_STATE_VERSION);
	if (seen & ~PVPANIC_EVENTS)
		return err_set(e, -EINVAL, "pvpanic: events seen 0x%02x include unsupported ones", seen);
	/* The function last: once it has loaded nothing can fail, so the device changes all at once or not.
	 */
	int r = pci_dev_load(p->pci, in, e);
	if (r)
		return r;
	__atomic_store_n(&p->seen, seen, __ATOMIC_RELEASE);
	return 0;
}
