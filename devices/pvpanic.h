/* SPDX-License-Identifier: MIT */
/*
 * pvpanic as a PCI function (QEMU's pvpanic-pci, which Linux's pvpanic-pci
 * driver binds to): one register at offset 0 of memory BAR 0. Reads give the
 * events the device supports; the guest writes an event when it happens.
 * PANICKED (the guest kernel panicked) asks the VM to stop with
 * VM_REQUEST_PANIC; CRASH_LOADED (it panicked with a kdump kernel loaded,
 * which now takes over) is only recorded: the guest runs on. Other bits are
 * ignored. Linux writes from its panic notifiers, before a panic=-1 reboot.
 */
#ifndef KVMINI_DEVICES_PVPANIC_H
#define KVMINI_DEVICES_PVPANIC_H

#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/pci.h"
#include "devices/platform.h"

#define PVPANIC_PANICKED     0x01
#define PVPANIC_CRASH_LOADED 0x02
#define PVPANIC_EVENTS	     (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED) /* what the register reads */

#define PVPANIC_PCI_VENDOR 0x1b36   /* Red Hat, Inc. */
#define PVPANIC_PCI_DEVICE 0x0011   /* QEMU PCI pvpanic */
#define PVPANIC_PCI_CLASS  0x088000 /* base system peripheral, other */
#define PVPANIC_BAR	   0
#define PVPANIC_BAR_SIZE   4096

struct pvpanic;

/*
 * Plugs the function in at devfn of host h (no interrupt pin, no MSI-X).
 * req (copied; may be NULL) receives VM_REQUEST_PANIC, sent with no lock
 * held, from the vCPU thread that wrote the register. NULL with e set.
 */
struct pvpanic *pvpanic_create(struct pci_host *h, unsigned devfn, const struct vm_requester *req,
			       struct err *e);
/* Unplugs and frees; not from a callback of the device. NULL is a no-op. */
void pvpanic_destroy(struct pvpanic *p);
/* The supported events the guest has written so far (PVPANIC_* bits); any thread. */
unsigned pvpanic_events_seen(const struct pvpanic *p);

/*
 * Saved state (docs/MIGRATION.md): a version, the events seen, then its PCI
 * function's state (pci_dev_save: config space, where its BAR decodes).
 */
void pvpanic_save(const struct pvpanic *p, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller):
 * 0, or -EINVAL with e naming the problem and the device unchanged. Events
 * seen are restored without sending VM_REQUEST_PANIC again (the source acted
 * on it); the function's BAR decodes where the guest had put it.
 */
int pvpanic_load(struct pvpanic *p, struct sreader *in, struct err *e);

#endif
