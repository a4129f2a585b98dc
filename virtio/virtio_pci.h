/* SPDX-License-Identifier: MIT */
/*
 * The virtio-pci modern transport (virtio 1.2, 4.1): a PCI function with the
 * common, notify, ISR, device-config and PCI-config-access capabilities, all
 * in one 64-bit memory BAR, and MSI-X (one vector per queue plus one for
 * configuration changes) in a second BAR; INTx when the driver uses no MSI-X.
 *
 * Driver notifications land in one eventfd per queue: through KVM ioeventfds
 * on the notify addresses when the VM offers them, or written by our own
 * MMIO handler otherwise, so a device's I/O thread only ever polls eventfds.
 * Interrupts go out through MSI-X irqfds.
 */
#ifndef KVMINI_VIRTIO_VIRTIO_PCI_H
#define KVMINI_VIRTIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/quiesce.h"
#include "devices/irq.h"
#include "devices/pci.h"
#include "virtio/virtio.h"
#include "virtio/virtqueue.h"

/* KVM ioeventfds: assign (or deassign) fd to guest writes of len bytes at MMIO address addr. */
struct ioevent_ops {
	int (*set)(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign);
	void *opaque;
};

struct virtio_pci_env {
	struct pci_host *host;
	const struct guest_mem *mem;
	const struct msi_controller *msi;  /* NULL: INTx only */
	struct irq_line intx;		   /* .gsi from pci_host_intx_gsi() */
	const struct ioevent_ops *ioevent; /* NULL: notifications exit to us */
	/* Device threads pass this gate around each pass over guest memory (pause); NULL: none. */
	struct quiesce *gate;
};

struct virtio_pci;

/* Creates the function at devfn and places its BARs. NULL with e set on failure. */
struct virtio_pci *virtio_pci_create(const struct virtio_pci_env *env, unsigned devfn,
				     const struct virtio_device_desc *desc, struct err *e);
/* Stops the device (if started), unplugs and frees. */
void virtio_pci_destroy(struct virtio_pci *t);

/*
 * Saved state (migration), with the VM paused (common/quiesce.h: no device
 * thread inside a pass, nothing in flight). Saves the registers (status,
 * feature selects, negotiated features, config generation, ISR, MSI-X
 * vectors, queue select, per queue size, enable and ring addresses), each
 * queue's virtqueue state, then the device's own (virtio_device_ops.save).
 * The PCI function itself (config space, BARs, MSI-X table) is pci_dev's to
 * save and is loaded first.
 *
 * Load is for a device the driver has not started (freshly built, or reset),
 * with guest memory restored: everything is validated before anything
 * changes (0, or -errno with e set and the transport and device unchanged).
 * A transport saved in DRIVER_OK (FEATURES_OK, no NEEDS_RESET) comes back
 * running without the driver's help: queues enabled at their saved
 * positions, ioeventfds at the current BAR address, and the device started
 * by virtio_pci_start_deferred().
 */
/* The PCI function under the transport (its config space and MSI-X are saved with pci_dev_save()). */
struct pci_dev *virtio_pci_function(struct virtio_pci *t);
void virtio_pci_save(const struct virtio_pci *t, struct sbuf *b);
int virtio_pci_load(struct virtio_pci *t, struct sreader *r, struct err *e);
/* Starts a device that virtio_pci_load() brought back running (vm_start() calls it); else nothing. */
void virtio_pci_start_deferred(struct virtio_pci *t);

/* ---- for the device, from its own threads, between start() and stop() ---- */
/* Negotiated features. */
uint64_t virtio_pci_features(const struct virtio_pci *t);
/* Queue q (NULL when q is not a queue or the driver did not enable it). */
struct virtq *virtio_pci_queue(struct virtio_pci *t, unsigned q);
/* The eventfd that becomes readable when the driver notifies queue q. */
int virtio_pci_kick_fd(const struct virtio_pci *t, unsigned q);
/*
 * After pushing used buffers on queue q: interrupts the driver if it wants one.
 * Returns whether an interrupt went out (an MSI-X message, pending if the vector
 * is masked, or INTx); false when the driver suppressed it or set no vector.
 */
bool virtio_pci_notify(struct virtio_pci *t, unsigned q);
/* The driver broke the protocol: NEEDS_RESET and a configuration interrupt. */
void virtio_pci_needs_reset(struct virtio_pci *t, const char *why);
/* Device configuration changed: bump config_generation and interrupt the driver. */
void virtio_pci_config_changed(struct virtio_pci *t);

#endif
