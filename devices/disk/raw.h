/* SPDX-License-Identifier: MIT */
/*
 * The raw backend, as disk.c (and the unit tests) set it up. Not for
 * devices: they use disk.h only.
 */
#ifndef KVMINI_DEVICES_DISK_RAW_H
#define KVMINI_DEVICES_DISK_RAW_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/disk/disk.h"

struct raw_params {
	int fd;	       /* open, locked; the disk owns it once raw_open() succeeds */
	uint64_t size; /* bytes; a nonzero multiple of 512 (and of off_align when aligned_io) */
	bool readonly;
	bool blkdev; /* a block device rather than a regular file */
	/*
	 * I/O on fd must be aligned (O_DIRECT): every iovec's base to
	 * mem_align, its length, the offset and the total length to off_align.
	 * Other requests go through a bounce buffer, and writes that do not
	 * cover whole off_align blocks read-modify-write them. Both are powers
	 * of two; off_align at least 512.
	 */
	bool aligned_io;
	uint32_t mem_align;
	uint32_t off_align;
	/*
	 * The format was probed as raw: refuse guest writes that would put a
	 * known image format's magic into the first sector (the guest could
	 * otherwise make the next probe see, say, a qcow2 whose backing file is
	 * any host file).
	 */
	bool guard_magic;
};

/*
 * Makes a raw disk over p->fd (path, serial and block_size are the caller's
 * to fill in). Returns 0, or -errno with a message naming path.
 */
int raw_open(const struct raw_params *p, const char *path, struct disk **out, struct err *e);

#endif
