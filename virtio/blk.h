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

#define VIRTIO_BLK_SEG_MAX 126 /* data segments per request; +2 for header and status */

struct virtio_blk;

/* A disk at devfn with nqueues request queues (1..64). The disk must outlive the device. */
struct virtio_blk *virtio_blk_create(const struct virtio_pci_env *env, unsigned devfn, struct disk *disk,
				     unsigned nqueues, const char *name, struct err *e);
void virtio_blk_destroy(struct virtio_blk *b);

#endif
