/* SPDX-License-Identifier: MIT */
/*
 * A PCI function on the host's bus 0: a type-0 configuration header with
 * BARs the guest may size and move, a capability list, MSI-X with a real
 * table and PBA, and INTx. Devices (the virtio-pci transport) describe their
 * BARs and capabilities here and get callbacks for BAR accesses; they never
 * parse configuration cycles themselves.
 *
 * BAR placement: the host places every BAR when the device is created (as
 * firmware would) in its windows (I/O, 32-bit memory, 64-bit memory above
 * RAM), and dispatches guest accesses in those windows to whichever BAR
 * decodes the address now (the guest may move BARs, and decoding follows the
 * command register's I/O and memory enable bits).
 *
 * Threads and locks (what callers may do from where):
 *  - Set-up (create, add_bar, add_cap, add_msix) runs before the vCPUs do.
 *  - BAR access callbacks run on vCPU threads with no PCI lock held (neither
 *    the host's nor the function's), concurrently with each other and with
 *    config cycles; the device serialises itself. They may call any function
 *    here except pci_dev_destroy() on their own function.
 *  - Capability hooks run on vCPU threads with the function's configuration
 *    lock held (config cycles of that function are serialised). They may
 *    call pci_dev_msix_notify/msix_enabled/set_intx/bar_addr, but not
 *    pci_dev_reset, add_* or destroy on the same function (deadlock).
 *  - remap callbacks run after the change is visible to the host, with no
 *    lock held but a per-function mutex that keeps them in the order the
 *    changes happened. Same restrictions as capability hooks.
 *  - msix_notify, msix_enabled, set_intx, bar_addr: any thread, any time
 *    between create and destroy. msi_controller and irq_line callbacks are
 *    called with the function's data lock held and must not call back here.
 *  - pci_dev_destroy: from no callback of this function; it waits for
 *    callbacks already running, and fires no remap.
 *
 * MSI-X routes: a vector gets an eventfd and a route (msi->route_add) the
 * first time it is deliverable (MSI-X enabled, function and vector unmasked);
 * while deliverable, every write to its address or data re-aims the route
 * (route_set) before anything is delivered; while masked, writes only change
 * the table and the route is re-aimed on unmask. A notification is written to
 * the eventfd only while the route matches the table entry, else it sets the
 * PBA bit, delivered on the next unmask. Routes live until destroy.
 */
#ifndef KVMINI_DEVICES_PCI_DEV_H
#define KVMINI_DEVICES_PCI_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"
#include "devices/pci.h"

#define PCI_NUM_BARS 6

enum pci_bar_type { PCI_BAR_IO, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_bar_ops {
	/*
	 * A guest access of len 1, 2, 4 or 8 at offset off inside the BAR (off +
	 * len <= size); reads arrive zero-filled. Never sees the MSI-X table or
	 * PBA. Optional (then reads give 0).
	 */
	void (*access)(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
	/*
	 * The BAR now decodes at addr (mapped) or no longer decodes (!mapped,
	 * addr: where it decoded): called on every change (command register
	 * enable bits, BAR writes, reset), with the device's lock not held, so
	 * that the device can move its ioeventfds. A move is one call with the
	 * new address. Address 0 and the all-ones sizing pattern never decode.
	 * Optional.
	 */
	void (*remap)(void *opaque, unsigned bar, uint64_t addr, bool mapped);
};

struct pci_dev_id {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint8_t revision;
	uint32_t class_code; /* base class << 16 | subclass << 8 | prog-if */
	uint8_t int_pin;     /* 1 = INTA# .. 4 = INTD#, 0 = none */
};

struct pci_dev;

/*
 * Creates a function and plugs it in at devfn. intx is the GSI line its pin
 * is routed to (see pci_host_intx_gsi()); msi may be NULL when the device
 * has no MSI-X (then notifications only ever set PBA bits). Both are copied.
 * Command register 0: nothing decodes until the guest enables it.
 * Returns NULL with e set.
 */
struct pci_dev *pci_dev_create(struct pci_host *h, unsigned devfn, const struct pci_dev_id *id,
			       const struct irq_line *intx, const struct msi_controller *msi, struct err *e);
/* Unplugs (the host no longer dispatches to it) and frees. */
void pci_dev_destroy(struct pci_dev *d);

/*
 * Declares BAR bar (a MEM64 BAR takes bar and bar + 1) of size bytes (a power
 * of 2; I/O 16..256, memory at least 4096, MEM32 at most 2 GiB) and places it
 * (a MEM64 BAR in the 64-bit window, or the 32-bit one when that is missing
 * or full). Call before the vCPUs run. 0, -EINVAL, -EEXIST (taken), -ENOSPC.
 */
int pci_dev_add_bar(struct pci_dev *d, unsigned bar, enum pci_bar_type type, bool prefetchable, uint64_t size,
		    const struct pci_bar_ops *ops, void *opaque);

/*
 * Appends a capability of len >= 2 bytes (body[0] is the ID; body[1], the
 * next pointer, is filled in) at the next dword from 0x40. Read-only to the
 * guest, except through the optional callbacks: a write at offset off within
 * the capability goes to write() trimmed to the capability and past its
 * first 2 bytes (off >= 2, off + len <= cap_len), which stores what it
 * accepts into cap; read() may refresh the bytes before a read (off: where
 * the access starts). ID and next pointer are restored after either.
 * Returns the capability's offset in config space, -EINVAL or -ENOSPC.
 */
struct pci_cap_ops {
	void (*read)(void *opaque, uint32_t off, uint8_t *cap, uint32_t cap_len);
	void (*write)(void *opaque, uint32_t off, const uint8_t *data, uint32_t len, uint8_t *cap,
		      uint32_t cap_len);
};
int pci_dev_add_cap(struct pci_dev *d, const uint8_t *body, uint32_t len, const struct pci_cap_ops *ops,
		    void *opaque);

/*
 * Adds the MSI-X capability with nvec vectors (1..2048); the table and the
 * PBA live in memory BAR bar (already added) at table_off and pba_off
 * (8-byte aligned, inside the BAR, not overlapping), which the BAR's own
 * access callback then never sees. Table and PBA take 4- or 8-byte aligned
 * accesses only (others read all ones, writes are dropped); the PBA is
 * read-only. Every vector starts masked. 0 or -errno.
 */
int pci_dev_add_msix(struct pci_dev *d, unsigned nvec, unsigned bar, uint32_t table_off, uint32_t pba_off);

/*
 * Raises MSI-X vector vec: delivered through its route when MSI-X is enabled
 * and neither the function nor the vector is masked, otherwise left pending
 * in the PBA and delivered when unmasked. Returns false when MSI-X is off
 * (the caller falls back to INTx) or vec is out of range.
 * Any thread.
 */
bool pci_dev_msix_notify(struct pci_dev *d, unsigned vec);
/* Whether the guest enabled MSI-X. */
bool pci_dev_msix_enabled(const struct pci_dev *d);
/* Drives the INTx pin (ignored while the command register's INTx disable bit is set). */
void pci_dev_set_intx(struct pci_dev *d, int level);

/* BAR's current address (for tests and the transport's ioeventfds), 0 when not decoding. */
uint64_t pci_dev_bar_addr(const struct pci_dev *d, unsigned bar);

/*
 * Back to power-on: command 0 (remap fires for BARs that decoded), MSI-X off,
 * every vector masked with address and data 0, PBA clear, interrupt line 0,
 * BARs where they were placed. The INTx level stays the device's to drive.
 */
void pci_dev_reset(struct pci_dev *d);

/*
 * Saved state (docs/MIGRATION.md): a version; the function's identity and
 * layout (vendor, device, each BAR's kind and size, MSI-X vector count), to
 * be checked against the destination's; the guest-writable configuration
 * space: command register, interrupt line, each BAR's programmed address, the
 * capability bytes (MSI-X Enable and Function Mask among them); the INTx
 * level; the MSI-X table and PBA. The owner of the function (the virtio
 * transport, pvpanic) saves it inside its own state, config-space state its
 * capability hooks keep elsewhere included. Take it while the VM is paused.
 */
void pci_dev_save(const struct pci_dev *d, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller) and
 * makes it the function's: 0, or -EINVAL with e naming the function and the
 * problem and the function unchanged. A function built with a different
 * layout is refused. Restoring the visible state calls what it needs to,
 * and nothing else: the host decodes every BAR where the guest had put it
 * (remap fires for BARs that start decoding, move or stop, so that the owner
 * moves its ioeventfds), deliverable MSI-X vectors get their routes aimed at
 * their table entries (and a pending one that is deliverable is delivered,
 * as an unmask would), and the INTx line is driven when its level changes.
 * No capability hook runs. Not from a callback of this function.
 */
int pci_dev_load(struct pci_dev *d, struct sreader *in, struct err *e);

#endif
