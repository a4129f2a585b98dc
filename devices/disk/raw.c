/* SPDX-License-Identifier: MIT */
/*
 * Raw images: guest sector n is byte n * 512 of the file or block device.
 * pread/pwrite carry their own offsets, so I/O threads share the file
 * descriptor without a lock. The only lock is for cache=none on storage with
 * blocks larger than 512 bytes: a write of part of such a block is a
 * read-modify-write of the whole block, which must not interleave with other
 * writes to the same block (it would write back stale data for their
 * sectors). Such writes take rmw_lock exclusively and every other write
 * (discard and write-zeroes included) shares it; reads never take it.
 */
#include "devices/disk/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounce buffers and zero-filling go in pieces of at most this many bytes. */
#define CHUNK (1u << 20)

struct raw_disk {
	struct disk d;
	int fd;
	bool aligned_io;
	uint32_t mem_align, off_align;
	bool guard_magic; /* raw_params.guard_magic */
	bool rmw;	  /* aligned_io with off_align > 512: rmw_lock is used */
	pthread_rwlock_t rmw_lock;
};

static struct raw_disk *to_raw(struct disk *d)
{
	return (struct raw_disk *)d;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;
	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Whether [off, off + len) is a valid request on d (callers check; this is a second line). */
static bool in_range(const struct disk *d, uint64_t off, uint64_t len)
{
	return off % DISK_SECTOR == 0 && off <= d->size && len <= d->size - off;
}

/*
 * Transfers the whole vector at off: short transfers continue where they
 * stopped, EINTR retries, and a transfer of 0 bytes (end of file, which
 * callers' range checks rule out) is -EIO. 0 or -errno.
 */
static int rw_full(int fd, const struct iovec *iov, int iovcnt, uint64_t off, bool write)
{
	int i = 0;
	size_t skip = 0; /* bytes of iov[i] already done */
	while (i < iovcnt) {
		if (skip == iov[i].iov_len) {
			i++;
			skip = 0;
			continue;
		}
		ssize_t n;
		if (skip) {
			/* Finish a partly transferred element on its own rather than copy the vector. */
			char *b = (char *)iov[i].iov_base + skip;
			size_t l = iov[i].iov_len - skip;
			n = write ? pwrite(fd, b, l, (off_t)off) : pread(fd, b, l, (off_t)off);
		} else {
			int cnt = iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i;
			n = write ? pwritev(fd, iov + i, cnt, (off_t)off)
				  : preadv(fd, iov + i, cnt, (off_t)off);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		for (size_t left = (size_t)n; left;) {
			size_t room = iov[i].iov_len - skip;
			if (left < room) {
				skip += left;
				left = 0;
			} else {
				left -= room;
				i++;
				skip = 0;
			}
		}
	}
	return 0;
}

static int buf_full(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	struct iovec v = {buf, len};
	return rw_full(fd, &v, 1, off, write);
}

/* Whether the request may go to the file as it is. */
static bool direct_ok(const struct raw_disk *r, const struct iovec *iov, int iovcnt, uint64_t off,
		      size_t total)
{
	if (!r->aligned_io)
		return true;
	uint64_t om = r->off_align - 1;
	uintptr_t mm = r->mem_align - 1;
	if ((off | total) & om)
		return false;
	for (int i = 0; i < iovcnt; i++)
		if (((uintptr_t)iov[i].iov_base & mm) || (iov[i].iov_len & om))
			return false;
	return true;
}

/* A position in a caller's vector, advanced as bytes are copied in order. */
struct cursor {
	const struct iovec *iov;
	int iovcnt, i;
	size_t skip;
};

/* Copies len bytes between the vector (at the cursor) and buf: to buf when to_buf. */
static void cursor_copy(struct cursor *c, uint8_t *buf, size_t len, bool to_buf)
{
	while (len && c->i < c->iovcnt) {
		const struct iovec *v = &c->iov[c->i];
		size_t n = v->iov_len - c->skip;
		if (n > len)
			n = len;
		uint8_t *p = (uint8_t *)v->iov_base + c->skip;
		if (to_buf)
			memcpy(buf, p, n);
		else
			memcpy(p, buf, n);
		buf += n;
		len -= n;
		c->skip += n;
		if (c->skip == v->iov_len) {
			c->i++;
			c->skip = 0;
		}
	}
}

static void *alloc_aligned(const struct raw_disk *r, size_t len)
{
	size_t a = r->mem_align > r->off_align ? r->mem_align : r->off_align;
	if (a < 4096)
		a = 4096;
	void *p;
	return posix_memalign(&p, a, len) ? NULL : p;
}

/*
 * The request through an aligned buffer of its own (nothing shared between
 * threads), in pieces of at most CHUNK bytes, widened to whole off_align
 * blocks; a write first reads the blocks it covers only in part.
 */
static int bounce_rw(struct raw_disk *r, const struct iovec *iov, int iovcnt, uint64_t off, size_t total,
		     bool write)
{
	uint64_t a = r->off_align;
	uint64_t start = off & ~(a - 1), end = (off + total + a - 1) & ~(a - 1);
	uint64_t chunk = CHUNK > a ? CHUNK : a;
	size_t buflen = (size_t)(end - start < chunk ? end - start : chunk);
	uint8_t *buf = alloc_aligned(r, buflen);
	if (!buf)
		return -ENOMEM;
	struct cursor c = {iov, iovcnt, 0, 0};
	int ret = 0;
	for (uint64_t cs = start; cs < end && !ret;) {
		size_t len = (size_t)(end - cs < chunk ? end - cs : chunk);
		uint64_t ds = cs > off ? cs : off;
		uint64_t de = cs + len < off + total ? cs + len : off + total;
		if (!write) {
			ret = buf_full(r->fd, buf, len, cs, false);
			if (!ret)
				cursor_copy(&c, buf + (ds - cs), (size_t)(de - ds), false);
		} else {
			bool head = ds > cs, tail = de < cs + len;
			if (head)
				ret = buf_full(r->fd, buf, a, cs, false);
			if (!ret && tail && !(head && len == a))
				ret = buf_full(r->fd, buf + len - a, a, cs + len - a, false);
			if (!ret) {
				cursor_copy(&c, buf + (ds - cs), (size_t)(de - ds), true);
				ret = buf_full(r->fd, buf, len, cs, true);
			}
		}
		cs += len;
	}
	free(buf);
	return ret;
}

/* Takes rmw_lock as a write to [off, off + len) needs it (see the top of the file). */
static void lock_range(struct raw_disk *r, uint64_t off, uint64_t len)
{
	if (!r->rmw)
		return;
	if ((off | len) & (r->off_align - 1))
		pthread_rwlock_wrlock(&r->rmw_lock);
	else
		pthread_rwlock_rdlock(&r->rmw_lock);
}

static void unlock_range(struct raw_disk *r)
{
	if (r->rmw)
		pthread_rwlock_unlock(&r->rmw_lock);
}

static int do_write(struct raw_disk *r, const struct iovec *iov, int iovcnt, uint64_t off, size_t total)
{
	if (direct_ok(r, iov, iovcnt, off, total))
		return rw_full(r->fd, iov, iovcnt, off, true);
	return bounce_rw(r, iov, iovcnt, off, total, true);
}

static int raw_preadv(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct raw_disk *r = to_raw(d);
	size_t total = iov_total(iov, iovcnt);
	if (iovcnt < 0 || !in_range(d, off, total))
		return -EINVAL;
	if (direct_ok(r, iov, iovcnt, off, total))
		return rw_full(r->fd, iov, iovcnt, off, false);
	return bounce_rw(r, iov, iovcnt, off, total, false);
}

/* Magic numbers of image formats (at offset 0) that a probe would take for a non-raw image. */
static const struct {
	const char *magic;
	size_t len;
} image_magics[] = {
    {"QFI\xfb", 4},	       /* qcow, qcow2 */
    {"QED\0", 4},	       /* qed */
    {"KDMV", 4},	       /* vmdk */
    {"COWD", 4},	       /* vmdk3 */
    {"# Disk Descriptor", 17}, /* vmdk text descriptor */
    {"vhdxfile", 8},	       /* vhdx */
    {"conectix", 8},	       /* vpc */
    {"LUKS\xba\xbe", 6},       /* luks */
    {"<<< ", 4},	       /* vdi: "<<< Oracle VM VirtualBox Disk Image >>>" and others */
};

static bool writes_image_magic(const struct iovec *iov, int iovcnt, uint64_t off)
{
	if (off != 0)
		return false;
	uint8_t head[32];
	size_t n = 0;
	for (int i = 0; i < iovcnt && n < sizeof(head); i++) {
		size_t k = iov[i].iov_len < sizeof(head) - n ? iov[i].iov_len : sizeof(head) - n;
		memcpy(head + n, iov[i].iov_base, k);
		n += k;
	}
	for (size_t i = 0; i < sizeof(image_magics) / sizeof(image_magics[0]); i++)
		if (n >= image_magics[i].len && !memcmp(head, image_magics[i].magic, image_magics[i].len))
			return true;
	return false;
}

static int raw_pwritev(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct raw_disk *r = to_raw(d);
	if (d->readonly)
		return -EROFS;
	size_t total = iov_total(iov, iovcnt);
	if (iovcnt < 0 || !in_range(d, off, total))
		return -EINVAL;
	if (r->guard_magic && writes_image_magic(iov, iovcnt, off))
		return -EPERM; /* the format was probed: the guest may not turn its disk into an image */
	lock_range(r, off, total);
	int ret = do_write(r, iov, iovcnt, off, total);
	unlock_range(r);
	return ret;
}

static int raw_flush(struct disk *d)
{
	while (fdatasync(to_raw(d)->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int fallocate_retry(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int raw_discard(struct disk *d, uint64_t off, uint64_t len)
{
	struct raw_disk *r = to_raw(d);
	if (d->readonly)
		return -EROFS;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (!len)
		return 0;
	lock_range(r, off, len);
	int ret = fallocate_retry(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	unlock_range(r);
	return ret;
}

/* Errors after which writing zeroes by hand is the way left. */
static bool no_fallocate(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -EINVAL || err == -ENODEV;
}

static int zero_fill(struct raw_disk *r, uint64_t off, uint64_t len)
{
	size_t buflen = (size_t)(len < CHUNK ? len : CHUNK);
	void *buf = alloc_aligned(r, buflen);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0, buflen);
	int ret = 0;
	while (len && !ret) {
		size_t n = (size_t)(len < buflen ? len : buflen);
		struct iovec v = {buf, n};
		ret = do_write(r, &v, 1, off, n);
		off += n;
		len -= n;
	}
	free(buf);
	return ret;
}

static int raw_write_zeroes(struct disk *d, uint64_t off, uint64_t len, bool may_unmap)
{
	struct raw_disk *r = to_raw(d);
	if (d->readonly)
		return -EROFS;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (!len)
		return 0;
	lock_range(r, off, len);
	int ret = -EOPNOTSUPP;
	if (may_unmap)
		ret = fallocate_retry(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	if (ret && no_fallocate(ret))
		ret = fallocate_retry(r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
	if (ret && no_fallocate(ret))
		ret = zero_fill(r, off, len);
	unlock_range(r);
	return ret;
}

static void raw_close(struct disk *d)
{
	struct raw_disk *r = to_raw(d);
	close(r->fd); /* also drops the OFD lock */
	pthread_rwlock_destroy(&r->rmw_lock);
	free(r);
}

static const struct disk_ops raw_ops = {
    .format = "raw",
    .preadv = raw_preadv,
    .pwritev = raw_pwritev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .close = raw_close,
};

int raw_open(const struct raw_params *p, const char *path, struct disk **out, struct err *e)
{
	if (p->aligned_io && (!p->off_align || p->size % p->off_align))
		return err_set(e, -EINVAL, "%s: size %llu is not a multiple of the %u-byte I/O block", path,
			       (unsigned long long)p->size, p->off_align);
	struct raw_disk *r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	int ret = -pthread_rwlock_init(&r->rmw_lock, NULL);
	if (ret) {
		free(r);
		return err_set(e, ret, "%s: cannot create a lock: %s", path, strerror(-ret));
	}
	r->fd = p->fd;
	r->aligned_io = p->aligned_io;
	r->guard_magic = p->guard_magic;
	r->mem_align = p->aligned_io && p->mem_align ? p->mem_align : 1;
	r->off_align = p->aligned_io && p->off_align > DISK_SECTOR ? p->off_align : DISK_SECTOR;
	r->rmw = p->aligned_io && r->off_align > DISK_SECTOR;
	r->d.ops = &raw_ops;
	r->d.size = p->size;
	r->d.readonly = p->readonly;
	r->d.block_size = DISK_SECTOR;
	r->d.align = p->aligned_io ? (r->mem_align > r->off_align ? r->mem_align : r->off_align) : 1;
	/*
	 * A hole punched past the end changes nothing, yet fails with
	 * EOPNOTSUPP where the file system has no holes. Block devices take
	 * PUNCH_HOLE as "zero, unmapping if you can".
	 */
	if (!p->readonly)
		r->d.can_discard =
		    p->blkdev ||
		    !fallocate_retry(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, p->size, DISK_SECTOR);
	*out = &r->d;
	return 0;
}
