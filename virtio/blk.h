/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.2, 5.2) over the virtio-pci transport, on any disk
 * backend (devices/disk/disk.h). One I/O thread per queue serves requests
 * off the vCPU threads; a reset or teardown waits for the requests in
 * flight to complete.
 */
#ifndef KVMINI_VIRTIO_BLK_H
#define KVMINI_VIRTIO_BLK_H

#include "common/err.h"
#include "devices/disk/disk.h"
#include "virtio/virtio_pci.h"

#define VIRTIO_BLK_SEG_MAX 254 /* data segments per request; +2 for header and status */

struct virtio_blk;

#define VIRTIO_BLK_LAT_BUCKETS 24 /* latency histogram: bucket i < 2^i us, the last one the rest */

/*
 * A disk's counters, kept by the caller across guest reboots (which rebuild
 * the device on the same disk). Written with relaxed atomic adds by the
 * device's threads; read them with relaxed atomic loads from any thread.
 * Every request taken off a ring and completed counts once: in its type's
 * *_reqs whatever its status, in *_bytes only when it succeeded, and in
 * ioerr or unsupp when it failed.
 */
struct virtio_blk_stats {
	uint64_t read_reqs, read_bytes;			/* VIRTIO_BLK_T_IN */
	uint64_t write_reqs, write_bytes;		/* VIRTIO_BLK_T_OUT */
	uint64_t flush_reqs;				/* VIRTIO_BLK_T_FLUSH */
	uint64_t discard_reqs, discard_bytes;		/* VIRTIO_BLK_T_DISCARD: bytes of the ranges */
	uint64_t write_zeroes_reqs, write_zeroes_bytes; /* VIRTIO_BLK_T_WRITE_ZEROES: bytes of the ranges */
	uint64_t get_id_reqs;				/* VIRTIO_BLK_T_GET_ID */
	uint64_t other_reqs;				/* unknown types, or no room for a header */
	uint64_t ioerr, unsupp;				/* completed with VIRTIO_BLK_S_IOERR / S_UNSUPP */
	uint64_t notifications;			   /* driver notifications (kicks) of the request queues */
	uint64_t interrupts;			   /* used-buffer interrupts sent to the driver */
	uint64_t lat_sum_ns;			   /* service time of all requests (pop to push), ns */
	uint64_t lat_hist[VIRTIO_BLK_LAT_BUCKETS]; /* service times: [i] counts < 2^i us (last: the rest) */
};

/*
 * A disk at devfn with nqueues request queues (1..64), counting into stats.
 * The disk and stats must outlive the device.
 */
struct virtio_blk *virtio_blk_create(const struct virtio_pci_env *env, unsigned devfn, struct disk *disk,
				     unsigned nqueues, struct virtio_blk_stats *stats, const char *name,
				     struct err *e);
void virtio_blk_destroy(struct virtio_blk *b);
/* Its virtio-pci transport (saved state: virtio_pci_save() / virtio_pci_load()). */
struct virtio_pci *virtio_blk_transport(struct virtio_blk *b);

#endif
