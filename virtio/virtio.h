/* SPDX-License-Identifier: MIT */
/*
 * What a virtio device (blk, net) tells its transport, and what the transport
 * offers the device back. Constants follow the virtio 1.2 specification.
 */
#ifndef KVMINI_VIRTIO_VIRTIO_H
#define KVMINI_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

/* Transport and ring feature bits (6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32
#define VIRTIO_F_ACCESS_PLATFORM    33

#define VIRTIO_ID_NET	     1
#define VIRTIO_ID_BLOCK	     2
#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_BIT(b)	     (1ULL << (b))

struct virtio_dev;

struct virtio_device_ops {
	/* Device-specific configuration (off + len <= config_size, checked by the transport). */
	void (*config_read)(void *opaque, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *opaque, uint32_t off, const uint8_t *data, uint32_t len);
	/*
	 * The driver set DRIVER_OK: the enabled queues are ready (virtio_queue()),
	 * and the negotiated features fixed. Start serving. 0, or -errno to put
	 * the device into NEEDS_RESET.
	 */
	int (*start)(void *opaque);
	/*
	 * Reset or teardown: stop serving; requests in flight are completed or
	 * dropped before it returns, and no thread of the device touches the
	 * queues or guest memory afterwards. Only called after a successful start.
	 */
	void (*stop)(void *opaque);
	/*
	 * Saved state (migration; all optional, called by virtio_pci_save() and
	 * virtio_pci_load() while the VM is paused). save writes the device's own
	 * state (its version first). load reads it back into a stopped device,
	 * before start(): features are what the driver negotiated (0 before
	 * FEATURES_OK), running whether start() follows at once. It validates everything before it changes
	 * anything and returns 0, or -errno with e set and the device unchanged. held: chains of queue q the
	 * device took off the avail ring and holds without having used them (necessarily the last ones it
	 * took): saved as not taken yet.
	 */
	void (*save)(void *opaque, struct sbuf *b);
	int (*load)(void *opaque, struct sreader *r, uint64_t features, bool running, struct err *e);
	uint16_t (*held)(void *opaque, unsigned q);
};

struct virtio_device_desc {
	const char *name;	 /* for messages: "virtio-blk vda" */
	uint16_t device_id;	 /* VIRTIO_ID_* */
	uint64_t features;	 /* device feature bits; the transport adds VERSION_1 and the ring features */
	unsigned num_queues;	 /* 1..VIRTIO_MAX_QUEUES */
	uint16_t max_queue_size; /* power of 2, <= VIRTQ_MAX_SIZE */
	uint32_t config_size;	 /* bytes of device configuration, <= 4096 */
	const struct virtio_device_ops *ops;
	void *opaque;
};

#define VIRTIO_MAX_QUEUES 256

/*
 * Counting driver notifications: v was read off a queue's kick eventfd (the
 * number of signals since the last read); *own counts the device's own writes
 * to that eventfd (to wake its thread) not yet read, added before each write.
 * Adds the driver's share of v to *counter. Relaxed atomics: any thread.
 */
static inline void virtio_count_kicks(uint64_t *counter, uint64_t v, uint64_t *own)
{
	if (!v)
		return;
	uint64_t mine = own ? __atomic_exchange_n(own, 0, __ATOMIC_RELAXED) : 0;
	if (mine > v) {
		/* Counted before its write landed: a later read takes the rest. */
		__atomic_fetch_add(own, mine - v, __ATOMIC_RELAXED);
		mine = v;
	}
	if (v > mine)
		__atomic_fetch_add(counter, v - mine, __ATOMIC_RELAXED);
}

#endif
