/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.2, section 2.7), device side. Every address,
 * length, index and chain the driver supplies is checked against guest memory
 * and the queue size before use; a broken ring is reported as -EINVAL so that
 * the device can enter NEEDS_RESET, and nothing outside guest RAM is touched.
 *
 * Not thread-safe: one thread at a time serves a queue (the device's I/O
 * thread); the transport only enables and resets it while no one serves it.
 */
#ifndef KVMINI_VIRTIO_VIRTQUEUE_H
#define KVMINI_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE 1024 /* the largest queue size any of our devices offers */
/* Most descriptors in one indirect table (16 KiB); Linux sizes its tables by the request's segments. */
#define VIRTQ_MAX_INDIRECT VIRTQ_MAX_SIZE

struct virtq_layout {
	uint16_t size; /* a power of 2, 1..VIRTQ_MAX_SIZE */
	uint64_t desc; /* guest-physical addresses as the driver wrote them */
	uint64_t avail;
	uint64_t used;
	bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_RING_INDIRECT_DESC negotiated */
};

struct virtq {
	const struct guest_mem *mem;
	struct virtq_layout l;
	bool enabled;
	/* Host pointers to the three rings, resolved (and range-checked) once at enable. */
	void *desc, *avail, *used;
	uint16_t last_avail;	 /* next avail ring entry to take */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx when the driver was last interrupted (event_idx) */
	bool signalled_valid;
};

/* One request: a descriptor chain, device-readable segments first, then device-writable ones. */
struct virtq_chain {
	uint16_t head;	  /* what virtq_push() must be given back */
	unsigned nout;	  /* iov[0 .. nout): driver -> device */
	unsigned nin;	  /* iov[nout .. nout + nin): device -> driver */
	uint64_t out_len; /* bytes in the readable part */
	uint64_t in_len;  /* bytes in the writable part */
};

/*
 * Checks the layout (size a power of 2 within limits, rings aligned as the
 * spec requires, each ring wholly inside guest RAM) and starts the queue with
 * last_avail = used_idx = 0. Returns 0 or -EINVAL (q left disabled).
 */
int virtq_enable(struct virtq *q, const struct guest_mem *mem, const struct virtq_layout *l);
/* Back to the disabled, zeroed state (device reset). */
void virtq_reset(struct virtq *q);

/*
 * Takes the next available chain, mapping each descriptor to one iovec that
 * points into guest RAM (zero-length descriptors are skipped). iov has room
 * for max_iov entries. Returns:
 *   1        *c and iov filled;
 *   0        nothing available;
 *   -E2BIG   the chain is well formed (checked to its end) but has more than
 *            max_iov segments: the chain is taken, *c has its head and
 *            nout = nin = out_len = in_len = 0, iov[0 .. max_iov) may have
 *            been written. The device must give the head back (virtq_push
 *            with 0 written: it has no view of the buffers) or enter
 *            NEEDS_RESET;
 *   -EINVAL  the driver broke the ring: avail index more than size ahead, a
 *            head or next index >= size, a loop (more descriptors than the
 *            table holds), an address range outside RAM, a readable
 *            descriptor after a writable one, an indirect descriptor when
 *            indirect was not negotiated, with NEXT set, inside an indirect
 *            table, or with a length not a non-zero multiple of 16 or above
 *            VIRTQ_MAX_INDIRECT entries, a total length of 4 GiB or more (the
 *            spec allows 2^32; one byte less keeps every length within the
 *            used ring's 32 bits). Nothing is taken, so a second call fails
 *            the same way; the device should enter NEEDS_RESET.
 * Descriptors are read once each; the iovecs stay inside guest RAM whatever
 * the driver writes afterwards, but their contents are the driver's to change.
 */
int virtq_pop(struct virtq *q, struct iovec *iov, unsigned max_iov, struct virtq_chain *c);
/*
 * Gives a chain back with `written` bytes written into its writable part.
 * While guest memory's dirty log is on, the used ring entry and index are
 * marked dirty, but not the chain's buffers: a device that wrote into them
 * gives the chain back with virtq_push_iov().
 */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/*
 * virtq_push() for a chain whose writable buffers the device wrote: in (nin
 * entries) are those buffers as virtq_pop() mapped them (iov + nout), all
 * marked dirty while the dirty log is on (the guest addresses come back from
 * the host pointers; nothing is kept per chain).
 */
void virtq_push_iov(struct virtq *q, uint16_t head, const struct iovec *in, unsigned nin, uint32_t written);
/*
 * After one or more pushes: whether the driver wants an interrupt now
 * (VRING_AVAIL_F_NO_INTERRUPT, or used_event with event_idx).
 */
bool virtq_should_notify(struct virtq *q);
/*
 * Asks the driver to notify us (true) or not (false) on new buffers: the used
 * ring's NO_NOTIFY flag, or avail_event with event_idx. After enabling, check
 * virtq_has_work() again to close the race with a driver that just added one.
 * With event_idx only enabling writes (avail_event = last_avail), and pops do
 * not move it, so a device calls virtq_set_notify(q, true) before each wait
 * for a kick: disable, pop until 0, enable, recheck virtq_has_work().
 */
void virtq_set_notify(struct virtq *q, bool enable);
/* Whether the avail ring has entries we have not taken. */
bool virtq_has_work(const struct virtq *q);

/*
 * Saved state (migration): the layout, enabled, last_avail, used_idx and
 * signalled_used (+ valid). Save while no one serves the queue (VM paused).
 * Load is for guest memory already restored: it checks the layout as
 * virtq_enable() does, and the indices against the rings in memory (used->idx
 * must be used_idx; neither the chains made available nor those taken may be
 * more than the ring holds). 0, or -EINVAL with e set and q unchanged.
 * held: chains the device took and holds unused (the latest ones taken):
 * saved as not taken yet, so that the destination takes them again.
 */
void virtq_save(const struct virtq *q, uint16_t held, struct sbuf *b);
int virtq_load(struct virtq *q, const struct guest_mem *mem, struct sreader *r, struct err *e);

#endif
