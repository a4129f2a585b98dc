/* SPDX-License-Identifier: MIT */
/*
 * Disk image backends behind one interface, so that virtio-blk knows nothing
 * about formats: raw today, qcow2 next. All calls may come from several I/O
 * threads at once; a backend serialises what it must.
 */
#ifndef KVMINI_DEVICES_DISK_DISK_H
#define KVMINI_DEVICES_DISK_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"

#define DISK_SECTOR	512
#define DISK_SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES */

enum disk_format { DISK_FORMAT_AUTO = 0, DISK_FORMAT_RAW, DISK_FORMAT_QCOW2 };
enum disk_cache { DISK_CACHE_WRITEBACK = 0, DISK_CACHE_NONE };

struct disk_config {
	const char *path;
	enum disk_format format;
	bool readonly;
	enum disk_cache cache;
	const char *serial;  /* NULL: none; at most DISK_SERIAL_MAX bytes */
	bool no_backing;     /* qcow2 backing=off: unallocated clusters read as zeroes */
	uint64_t cache_size; /* qcow2 metadata cache (L2 tables + refcount blocks); 0: default */
	/* Open without the image lock: an incoming migration takes it at the handover (disk_lock). */
	bool defer_lock;
	/*
	 * Open the file (and a qcow2 image's backing chain) and read what
	 * cannot change while another process runs the image (qcow2: the
	 * header's virtual size and backing file name), but not the format's
	 * metadata: disk_activate() reads it, after the handover. I/O fails
	 * (-EIO) until then. Raw images are ready at once.
	 */
	bool defer_meta;
};

struct disk;

struct disk_ops {
	const char *format; /* "raw", "qcow2": for reports */
	/*
	 * Transfer the whole vector at byte offset off (a multiple of 512, and
	 * off + total length <= size: callers check; raw checks again and
	 * returns -EINVAL). Any iovec alignment works. 0 or -errno.
	 */
	int (*preadv)(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*pwritev)(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off);
	/* Everything written before the call is on stable storage when it returns 0. */
	int (*flush)(struct disk *d);
	/* Deallocate [off, off + len) (reads then return zeroes). -EOPNOTSUPP when impossible. */
	int (*discard)(struct disk *d, uint64_t off, uint64_t len);
	/* Make [off, off + len) read as zeroes, deallocating when may_unmap allows. */
	int (*write_zeroes)(struct disk *d, uint64_t off, uint64_t len, bool may_unmap);
	void (*close)(struct disk *d);
	/* Optional (NULL: always active): see disk_activate/disk_deactivate. */
	int (*activate)(struct disk *d, struct err *e);
	int (*deactivate)(struct disk *d, struct err *e);
};

struct disk {
	const struct disk_ops *ops;
	uint64_t size; /* virtual size in bytes, a multiple of 512 */
	bool readonly; /* pwritev, discard and write_zeroes return -EROFS */
	/*
	 * Discard and unmapping write-zeroes work on this file. Raw: probed at
	 * open by punching a hole past the end of a regular file (a no-op that
	 * fails with EOPNOTSUPP where holes are unsupported); assumed for block
	 * devices; false for read-only disks. discard may still return
	 * -EOPNOTSUPP.
	 */
	bool can_discard;
	/*
	 * Logical block size the guest should use: always 512, also with
	 * cache=none on a device with 4 KiB sectors, so that an image looks the
	 * same whatever the cache mode (the backend reads-modifies-writes).
	 */
	uint32_t block_size;
	/*
	 * Buffer/offset alignment with which I/O goes straight to the file: 1
	 * without O_DIRECT; with cache=none, the largest of the memory and
	 * offset alignments O_DIRECT needs (usually 512 or 4096). Anything
	 * else still works: the backend copies through an aligned buffer.
	 */
	uint32_t align;
	char serial[DISK_SERIAL_MAX + 1]; /* "" for none */
	char path[4096];		  /* for messages */
	int lock_fd;			  /* the image's fd, which holds its OFD lock */
	bool locked;
};

/*
 * Opens an image: probes the format when c->format is AUTO, takes an OFD
 * lock (exclusive for read-write, shared for read-only), checks the size.
 * Returns 0 or -errno with one line in e naming the path and the problem
 * ("PATH: is a directory", "PATH: size 1000 is not a multiple of 512",
 * "PATH: in use by another process (locked)", ...). A file system without
 * OFD locks (ENOLCK, EOPNOTSUPP, EINVAL) is used unlocked.
 */
int disk_open(const struct disk_config *c, struct disk **out, struct err *e);
void disk_close(struct disk *d);
/*
 * The image lock, for a migration's handover: the source unlocks once the
 * destination has everything, the destination locks before it runs the
 * guest (-EBUSY while the source still holds it), and a failed handover
 * takes it back on the source.
 */
int disk_lock(struct disk *d, struct err *e);
void disk_unlock(struct disk *d);
/*
 * The metadata side of the handover. The source, paused, deactivates its
 * disks before it lets their locks go: all metadata written out (qcow2:
 * dirty L2 tables and refcount blocks, L1, freed clusters, then
 * fdatasync), and no I/O, no write-out at close, until activated again.
 * The destination activates each disk once it holds its lock: a deferred
 * image (defer_meta) reads its metadata then. A source whose handover
 * failed activates its disks again and goes on with the metadata it kept
 * (nobody else wrote the image). Both are no-ops for raw images. 0 or
 * -errno with one line in e.
 */
int disk_activate(struct disk *d, struct err *e);
int disk_deactivate(struct disk *d, struct err *e);

#endif
