/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.2, 5.1) over the virtio-pci transport, on a tap or
 * macvtap backend (net/backend.h). One thread per queue pair moves frames
 * between the backend's queue fd and the guest's rings without copying them:
 * readv straight into the guest's receive buffers, writev straight from its
 * transmit buffers. The control queue (MQ, receive filters, MAC, offloads,
 * announce) is served by the first pair's thread.
 */
#ifndef KVMINI_VIRTIO_NET_H
#define KVMINI_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "net/backend.h"
#include "virtio/virtio_pci.h"

struct virtio_net;

struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors; /* backend -> guest */
	uint64_t tx_packets, tx_bytes, tx_dropped, tx_errors; /* guest -> backend */
	/* Driver notifications (kicks) of the receive, transmit and control queues. */
	uint64_t rx_notifications, tx_notifications, ctrl_notifications;
	/* Used-buffer interrupts sent to the driver for those queues. */
	uint64_t rx_interrupts, tx_interrupts, ctrl_interrupts;
	bool link_up;
};

/*
 * What a NIC keeps across guest reboots, which rebuild the device on the
 * same backend: per-pair counters (relaxed atomics) and whether the backend
 * went away (the link then stays down).
 */
struct virtio_net_shared {
	struct virtio_net_stats pair[NET_MAX_QUEUES];
	bool gone;
};

/*
 * A NIC at devfn with MAC mac and as many queue pairs as the backend has
 * queues. The backend and sh must outlive the device; the device only reads
 * and writes the backend's fds and asks it to change offloads and attach queues.
 */
struct virtio_net *virtio_net_create(const struct virtio_pci_env *env, unsigned devfn, struct net_backend *nb,
				     struct virtio_net_shared *sh, const uint8_t mac[6], const char *name,
				     struct err *e);
void virtio_net_destroy(struct virtio_net *n);
/* Its virtio-pci transport (saved state: virtio_pci_save() / virtio_pci_load(), with the NIC's own). */
struct virtio_pci *virtio_net_transport(struct virtio_net *n);
/* Counters summed over the queue pairs, and the link state; any thread. */
void virtio_net_stats(const struct virtio_net_shared *sh, struct virtio_net_stats *s);
/* Asks the guest to announce itself (GUEST_ANNOUNCE), e.g. after a migration. */
void virtio_net_announce(struct virtio_net *n);

#endif
