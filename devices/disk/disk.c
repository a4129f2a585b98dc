/* SPDX-License-Identifier: MIT */
/*
 * Opening a disk image: the checks every format shares (file type, lock,
 * O_DIRECT alignment), then the format's own open. Every message starts with
 * the image's path.
 */
#include "devices/disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/disk/qcow2.h"
#include "devices/disk/raw.h"

static const uint8_t qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};

static bool pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/* Only regular files and block devices hold images. */
static int check_type(int fd, const char *path, struct stat *st, struct err *e)
{
	if (fstat(fd, st) < 0)
		return err_set(e, -errno, "%s: cannot stat: %s", path, strerror(errno));
	if (S_ISDIR(st->st_mode))
		return err_set(e, -EISDIR, "%s: is a directory", path);
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
		return err_set(e, -EINVAL, "%s: not a regular file or block device", path);
	return 0;
}

/*
 * Opens the image as c asks. O_NONBLOCK keeps a FIFO from blocking the open
 * (the type check then rejects it); the caller clears it.
 */
static int open_image(const struct disk_config *c, int *out, struct err *e)
{
	int flags = (c->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	if (c->cache == DISK_CACHE_NONE)
		flags |= O_DIRECT;
	int fd = open(c->path, flags);
	if (fd >= 0) {
		*out = fd;
		return 0;
	}
	int err = errno;
	if (err == EINVAL && (flags & O_DIRECT)) {
		/* EINVAL for O_DIRECT alone, or something else? Opening without it tells. */
		fd = open(c->path, flags & ~O_DIRECT);
		if (fd >= 0) {
			struct stat st;
			int r = check_type(fd, c->path, &st, e);
			close(fd);
			if (r)
				return r;
			return err_set(
			    e, -EINVAL,
			    "%s: cache=none needs O_DIRECT, which this filesystem does not support", c->path);
		}
		err = errno;
	}
	if (err == EISDIR)
		return err_set(e, -EISDIR, "%s: is a directory", c->path);
	if (!c->readonly && (err == EACCES || err == EPERM || err == EROFS))
		return err_set(e, -err, "%s: cannot open for writing: %s (readonly=on opens it read-only)",
			       c->path, strerror(err));
	return err_set(e, -err, "%s: cannot open: %s", c->path, strerror(err));
}

/*
 * OFD locks belong to the open file description, so they also keep two
 * disks of one process off the same image. No locking where the file system
 * has none.
 */
static int lock_image(int fd, bool readonly, const char *path, struct err *e)
{
	struct flock fl = {.l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return err_set(e, -EBUSY, "%s: in use by another process (locked)", path);
	if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL)
		return 0;
	return err_set(e, -errno, "%s: cannot lock: %s", path, strerror(errno));
}

static int image_size(int fd, const struct stat *st, const char *path, uint64_t *size, struct err *e)
{
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (ioctl(fd, BLKGETSIZE64, size) < 0)
		return err_set(e, -errno, "%s: cannot get the block device's size: %s", path,
			       strerror(errno));
	return 0;
}

/*
 * The alignments O_DIRECT needs on fd: what statx reports (Linux 6.1 on),
 * else the logical sector size of a block device, else 512 if a 512-byte
 * read at offset 512 into a buffer aligned to 512 but not 1024 works, else
 * 4096.
 */
static void dio_align(int fd, bool blkdev, uint64_t size, uint32_t *mem, uint32_t *off)
{
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
	    pow2(stx.stx_dio_offset_align) && pow2(stx.stx_dio_mem_align)) {
		*mem = stx.stx_dio_mem_align;
		*off = stx.stx_dio_offset_align < DISK_SECTOR ? DISK_SECTOR : stx.stx_dio_offset_align;
		return;
	}
	int ssz;
	if (blkdev && ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz >= DISK_SECTOR && pow2((uint32_t)ssz)) {
		*mem = *off = (uint32_t)ssz;
		return;
	}
	*mem = *off = 4096;
	uint8_t *buf;
	if (posix_memalign((void **)&buf, 4096, 2048))
		return;
	uint64_t at = size >= 2 * DISK_SECTOR ? DISK_SECTOR : 0;
	ssize_t n;
	do
		n = pread(fd, buf + DISK_SECTOR, DISK_SECTOR, (off_t)at);
	while (n < 0 && errno == EINTR);
	if (n == DISK_SECTOR)
		*mem = *off = DISK_SECTOR;
	free(buf);
}

/* The format the image's first bytes announce: qcow2 by its magic, else raw. */
static int probe_format(int fd, uint32_t align, const char *path, enum disk_format *fmt, struct err *e)
{
	size_t len = align > 4096 ? align : 4096; /* whole aligned blocks, for O_DIRECT */
	uint8_t *buf;
	if (posix_memalign((void **)&buf, len, len))
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	ssize_t n;
	do
		n = pread(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	int r = 0;
	if (n < 0)
		r = err_set(e, -errno, "%s: cannot read: %s", path, strerror(errno));
	else
		*fmt = n >= (ssize_t)sizeof(qcow2_magic) && !memcmp(buf, qcow2_magic, sizeof(qcow2_magic))
			   ? DISK_FORMAT_QCOW2
			   : DISK_FORMAT_RAW;
	free(buf);
	return r;
}

/*
 * Opens c's image as the depth'th layer of a chain whose upper files are
 * devs/inos[0..depth) (loop detection).
 */
static int open_layer(const struct disk_config *c, int depth, const dev_t *devs, const ino_t *inos,
		      struct disk **out, struct err *e)
{
	*out = NULL;
	if (!c->path || !*c->path)
		return err_set(e, -EINVAL, "disk: no image path given");
	if (strlen(c->path) >= sizeof(((struct disk *)0)->path))
		return err_set(e, -ENAMETOOLONG, "%.64s...: path is longer than %zu bytes", c->path,
			       sizeof(((struct disk *)0)->path) - 1);
	if (c->serial && strlen(c->serial) > DISK_SERIAL_MAX)
		return err_set(e, -EINVAL, "%s: serial '%s' is longer than %d bytes", c->path, c->serial,
			       DISK_SERIAL_MAX);
	if (c->format > DISK_FORMAT_QCOW2 || c->cache > DISK_CACHE_NONE)
		return err_set(e, -EINVAL, "%s: invalid format or cache mode", c->path);
	if (depth > QCOW2_MAX_BACKING_DEPTH)
		return err_set(e, -ELOOP, "%s: backing chain is deeper than %d images", c->path,
			       QCOW2_MAX_BACKING_DEPTH);

	int fd = -1, r;
	if ((r = open_image(c, &fd, e)))
		return r;
	struct stat st;
	uint64_t size = 0;
	uint32_t mem_align = 1, off_align = DISK_SECTOR;
	bool direct = c->cache == DISK_CACHE_NONE;
	enum disk_format fmt = c->format;
	if ((r = check_type(fd, c->path, &st, e)))
		goto fail;
	for (int i = 0; i < depth; i++)
		if (devs[i] == st.st_dev && inos[i] == st.st_ino) {
			r = err_set(e, -ELOOP, "%s: backing chain loops back to this image", c->path);
			goto fail;
		}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = err_set(e, -errno, "%s: fcntl: %s", c->path, strerror(errno));
		goto fail;
	}
	if (!c->defer_lock && (r = lock_image(fd, c->readonly, c->path, e)))
		goto fail;
	if ((r = image_size(fd, &st, c->path, &size, e)))
		goto fail;
	if (direct)
		dio_align(fd, S_ISBLK(st.st_mode), size, &mem_align, &off_align);
	bool probed = fmt == DISK_FORMAT_AUTO;
	if (probed && (r = probe_format(fd, mem_align > off_align ? mem_align : off_align, c->path, &fmt, e)))
		goto fail;

	struct raw_params p = {
	    .fd = fd,
	    .size = size,
	    .readonly = c->readonly,
	    .blkdev = S_ISBLK(st.st_mode),
	    .aligned_io = direct,
	    .mem_align = mem_align,
	    .off_align = off_align,
	    .guard_magic = probed && fmt == DISK_FORMAT_RAW,
	};
	if (fmt == DISK_FORMAT_QCOW2) {
		/* The file layer under qcow2 spans any offset: qcow2 checks its own ranges. */
		struct disk *file;
		p.size = 1ull << 62;
		p.guard_magic = false;
		if ((r = raw_open(&p, c->path, &file, e)))
			goto fail;
		dev_t cdevs[QCOW2_MAX_BACKING_DEPTH + 1];
		ino_t cinos[QCOW2_MAX_BACKING_DEPTH + 1];
		for (int i = 0; i < depth; i++) {
			cdevs[i] = devs[i];
			cinos[i] = inos[i];
		}
		cdevs[depth] = st.st_dev;
		cinos[depth] = st.st_ino;
		struct qcow2_open_params qp = {
		    .file = file,
		    .fd = fd,
		    .direct = direct,
		    .readonly = c->readonly,
		    .no_backing = c->no_backing,
		    .cache_size = c->cache_size,
		    .file_size = size,
		    .depth = depth,
		    .chain_dev = cdevs,
		    .chain_ino = cinos,
		    .deferred = c->defer_meta,
		};
		if ((r = qcow2_open(&qp, c->path, out, e))) {
			file->ops->close(file); /* and fd with it */
			return r;
		}
	} else {
		if (size == 0) {
			r = err_set(e, -EINVAL, "%s: is empty (size 0)", c->path);
			goto fail;
		}
		if (size % DISK_SECTOR) {
			r = err_set(e, -EINVAL, "%s: size %llu is not a multiple of %d", c->path,
				    (unsigned long long)size, DISK_SECTOR);
			goto fail;
		}
		if (direct && size % off_align) {
			r = err_set(
			    e, -EINVAL,
			    "%s: size %llu is not a multiple of %u, the block size cache=none needs here",
			    c->path, (unsigned long long)size, off_align);
			goto fail;
		}
		if ((r = raw_open(&p, c->path, out, e)))
			goto fail;
	}
	struct disk *d = *out;
	d->lock_fd = fd; /* raw and the qcow2 file layer keep fd open until close */
	d->locked = !c->defer_lock;
	snprintf(d->path, sizeof(d->path), "%s", c->path);
	snprintf(d->serial, sizeof(d->serial), "%s", c->serial ? c->serial : "");
	return 0;
fail:
	close(fd);
	return r;
}

int disk_open(const struct disk_config *c, struct disk **out, struct err *e)
{
	return open_layer(c, 0, NULL, NULL, out, e);
}

int disk_open_backing(const char *path, enum disk_format fmt, bool direct, int depth, const dev_t *devs,
		      const ino_t *inos, struct disk **out, struct err *e)
{
	struct disk_config c = {
	    .path = path,
	    .format = fmt,
	    .readonly = true,
	    .cache = direct ? DISK_CACHE_NONE : DISK_CACHE_WRITEBACK,
	};
	return open_layer(&c, depth, devs, inos, out, e);
}

void disk_close(struct disk *d)
{
	if (d)
		d->ops->close(d);
}

int disk_lock(struct disk *d, struct err *e)
{
	if (d->locked)
		return 0;
	int r = lock_image(d->lock_fd, d->readonly, d->path, e);
	if (!r)
		d->locked = true;
	return r;
}

void disk_unlock(struct disk *d)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	if (d->locked && fcntl(d->lock_fd, F_OFD_SETLK, &fl) == 0)
		d->locked = false;
}

int disk_activate(struct disk *d, struct err *e)
{
	return d->ops->activate ? d->ops->activate(d, e) : 0;
}

int disk_deactivate(struct disk *d, struct err *e)
{
	return d->ops->deactivate ? d->ops->deactivate(d, e) : 0;
}
