/* SPDX-License-Identifier: MIT */
/*
 * Opening a qcow2 image: the header and its extensions checked against the
 * file (every offset aligned and inside it, every table of a bounded size),
 * the L1 and refcount tables loaded, the snapshot table walked, the backing
 * chain opened, a dirty image's refcounts repaired. Anything we cannot
 * handle correctly is refused with a message naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/disk/qcow2.h"

#define L2_CACHE_DEFAULT_MAX (32ull << 20)
#define CACHE_MIN_ENTRIES    4u
#define CACHE_MAX_ENTRIES    1024u

void qcow2_free(struct qcow2 *q)
{
	if (!q)
		return;
	if (q->backing)
		disk_close(q->backing);
	if (q->file)
		q->file->ops->close(q->file); /* closes the image fd */
	if (q->own_mfd)
		close(q->mfd);
	qcow2_cache_free(&q->l2c);
	qcow2_cache_free(&q->rbc);
	pthread_mutex_destroy(&q->lock);
	pthread_rwlock_destroy(&q->io_lock);
	free(q->l1);
	free(q->rt);
	free(q->snap_l1);
	free(q->pending);
	free(q->meta);
	free(q->zero_cluster);
	free(q);
}

static bool aligned(const struct qcow2 *q, uint64_t off)
{
	return !(off & (q->cluster_size - 1));
}

/* A table of len bytes at off: cluster aligned and inside the file. */
static int check_table(struct qcow2 *q, const char *what, uint64_t off, uint64_t len, struct err *e)
{
	if (!off || !aligned(q, off))
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: %s offset 0x%llx is not cluster aligned",
			       q->d.path, what, (unsigned long long)off);
	if (off > q->file_size || len > q->file_size - off)
		return err_set(e, -EINVAL,
			       "%s: invalid qcow2 image: %s (0x%llx, %llu bytes) is past the end of the file",
			       q->d.path, what, (unsigned long long)off, (unsigned long long)len);
	return 0;
}

static int meta_range(struct qcow2 *q, uint64_t off, uint64_t len, struct err *e)
{
	for (uint64_t o = off; o < off + len; o += q->cluster_size)
		if (qcow2_meta_add(q, o))
			return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
	return 0;
}

static int parse_header(struct qcow2 *q, const uint8_t *h, size_t hlen, bool readonly, struct err *e)
{
	const char *p = q->d.path;
	if (hlen < 72 || qcow2_be32(h) != QCOW2_MAGIC)
		return err_set(e, -EINVAL, "%s: not a qcow2 image (%s)", p,
			       hlen < 72 ? "shorter than a qcow2 header" : "no QFI\\xfb magic");
	q->version = qcow2_be32(h + 4);
	if (q->version != 2 && q->version != 3)
		return err_set(e, -ENOTSUP, "%s: qcow2 version %u is not supported (2 and 3 are)", p,
			       q->version);
	if (q->version == 3 && hlen < 104)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: truncated version 3 header", p);
	q->cluster_bits = qcow2_be32(h + 20);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return err_set(e, -EINVAL,
			       "%s: invalid qcow2 image: cluster size 2^%u (512 B to 2 MiB allowed)", p,
			       q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	uint32_t crypt = qcow2_be32(h + 32);
	if (crypt)
		return err_set(e, -ENOTSUP, "%s: encrypted qcow2 images are not supported (crypt_method %u)",
			       p, crypt);
	q->d.size = qcow2_be64(h + 24);
	q->l1_size = qcow2_be32(h + 36);
	q->l1_offset = qcow2_be64(h + 40);
	q->rt_offset = qcow2_be64(h + 48);
	q->rt_clusters = qcow2_be32(h + 56);
	q->nb_snapshots = qcow2_be32(h + 60);
	q->snap_offset = qcow2_be64(h + 64);
	q->refcount_order = 4;
	q->header_length = 72;
	if (q->version == 3) {
		q->incompat = qcow2_be64(h + QH_INCOMPAT);
		q->compat = qcow2_be64(h + 80);
		q->autoclear = qcow2_be64(h + QH_AUTOCLEAR);
		q->refcount_order = qcow2_be32(h + 96);
		q->header_length = qcow2_be32(h + 100);
		if (q->header_length < 104 || q->header_length > q->cluster_size || q->header_length > hlen)
			return err_set(e, -EINVAL, "%s: invalid qcow2 image: header length %u", p,
				       q->header_length);
	}
	uint64_t unknown = q->incompat & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown)
		return err_set(
		    e, -ENOTSUP,
		    "%s: qcow2 image uses unsupported incompatible feature bit %d (features 0x%llx)", p,
		    __builtin_ctzll(unknown), (unsigned long long)q->incompat);
	if (q->incompat & QCOW2_INCOMPAT_DATA_FILE)
		return err_set(e, -ENOTSUP, "%s: qcow2 images with an external data file are not supported",
			       p);
	if ((q->incompat & QCOW2_INCOMPAT_CORRUPT) && !readonly)
		return err_set(
		    e, -EINVAL,
		    "%s: qcow2 image is marked corrupt: open it with readonly=on, or repair it with "
		    "qemu-img check -r all",
		    p);
	uint8_t ctype = q->header_length > 104 ? h[104] : 0;
	if (ctype > 1 || (ctype && !(q->incompat & QCOW2_INCOMPAT_COMPRESSION)) ||
	    (!ctype && (q->incompat & QCOW2_INCOMPAT_COMPRESSION) && q->header_length <= 104))
		return err_set(e, -ENOTSUP,
			       "%s: qcow2 compression type %u is not supported (zlib and zstd are)", p,
			       ctype);
	q->zstd = ctype == 1;
	if (q->refcount_order > 6)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: refcount width 2^%u bits", p,
			       q->refcount_order);
	q->refcount_max = q->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << q->refcount_order)) - 1;
	q->rb_bits = q->cluster_bits + 3 - q->refcount_order;
	q->extl2 = (q->incompat & QCOW2_INCOMPAT_EXTL2) != 0;
	if (q->extl2 && q->cluster_bits < 14)
		return err_set(e, -EINVAL,
			       "%s: invalid qcow2 image: extended L2 entries need 16 KiB clusters at least",
			       p);
	q->l2_entry_bytes = q->extl2 ? 16 : 8;
	q->l2_bits = q->cluster_bits - (q->extl2 ? 4 : 3);
	q->sc_bits = q->extl2 ? q->cluster_bits - 5 : q->cluster_bits;
	q->csize_shift = 62 - (q->cluster_bits - 8);
	q->csize_mask = (1ull << (q->cluster_bits - 8)) - 1;
	q->coffset_mask = (1ull << q->csize_shift) - 1;
	if (!q->d.size || q->d.size % DISK_SECTOR)
		return err_set(e, -EINVAL, "%s: qcow2 virtual size %llu is not a nonzero multiple of 512", p,
			       (unsigned long long)q->d.size);
	if (q->d.size > (1ull << 62))
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: virtual size %llu is too large", p,
			       (unsigned long long)q->d.size);
	return 0;
}

/* Header extensions: the backing format is the one we use; data-file ones were refused above. */
static int parse_extensions(struct qcow2 *q, const uint8_t *h, size_t hlen, uint64_t backing_off, char *bfmt,
			    size_t bfmt_len, struct err *e)
{
	uint64_t off = q->header_length;
	uint64_t end = backing_off && backing_off < hlen ? backing_off : hlen;
	while (off + 8 <= end) {
		uint32_t type = qcow2_be32(h + off), len = qcow2_be32(h + off + 4);
		off += 8;
		if (!type)
			break;
		if (len > end - off)
			return err_set(e, -EINVAL,
				       "%s: invalid qcow2 image: header extension 0x%x is truncated",
				       q->d.path, type);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (len >= bfmt_len)
				return err_set(e, -EINVAL,
					       "%s: invalid qcow2 image: backing format name too long",
					       q->d.path);
			memcpy(bfmt, h + off, len);
			bfmt[len] = '\0';
		}
		off += (len + 7) & ~7ull;
	}
	return 0;
}

static int load_l1(struct qcow2 *q, struct err *e)
{
	const char *p = q->d.path;
	uint64_t per = 1ull << q->l2_bits;
	uint64_t need = (q->d.size + (per << q->cluster_bits) - 1) / (per << q->cluster_bits);
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return err_set(e, -EFBIG,
			       "%s: invalid qcow2 image: L1 table of %u entries is larger than 32 MiB", p,
			       q->l1_size);
	if (q->l1_size < need)
		return err_set(e, -EINVAL,
			       "%s: invalid qcow2 image: L1 table of %u entries cannot map %llu bytes", p,
			       q->l1_size, (unsigned long long)q->d.size);
	int r;
	if (q->l1_size && (r = check_table(q, "L1 table", q->l1_offset, (uint64_t)q->l1_size * 8, e)))
		return r;
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	if (!q->l1)
		return err_set(e, -ENOMEM, "%s: out of memory", p);
	if ((r = qcow2_pread(q, q->l1, (size_t)q->l1_size * 8, q->l1_offset)))
		return err_set(e, r, "%s: cannot read the L1 table: %s", p, strerror(-r));
	for (uint32_t i = 0; i < q->l1_size; i++) {
		q->l1[i] = qcow2_be64((uint8_t *)&q->l1[i]);
		uint64_t o = q->l1[i] & QCOW2_L1_OFFSET_MASK;
		if (!o)
			continue;
		if ((r = check_table(q, "L2 table", o, q->cluster_size, e)))
			return r;
		if ((r = meta_range(q, o, q->cluster_size, e)))
			return r;
	}
	return meta_range(q, q->l1_offset, (uint64_t)q->l1_size * 8, e);
}

static int load_rt(struct qcow2 *q, struct err *e)
{
	const char *p = q->d.path;
	if (!q->rt_clusters || ((uint64_t)q->rt_clusters << q->cluster_bits) > QCOW2_MAX_RT_BYTES)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: refcount table of %u clusters", p,
			       q->rt_clusters);
	uint64_t len = (uint64_t)q->rt_clusters << q->cluster_bits;
	int r = check_table(q, "refcount table", q->rt_offset, len, e);
	if (r)
		return r;
	q->rt_size = len / 8;
	q->rt = malloc(len);
	if (!q->rt)
		return err_set(e, -ENOMEM, "%s: out of memory", p);
	if ((r = qcow2_pread(q, q->rt, len, q->rt_offset)))
		return err_set(e, r, "%s: cannot read the refcount table: %s", p, strerror(-r));
	for (uint64_t i = 0; i < q->rt_size; i++) {
		q->rt[i] = qcow2_be64((uint8_t *)&q->rt[i]);
		uint64_t o = q->rt[i] & QCOW2_L1_OFFSET_MASK;
		if (!o)
			continue;
		if ((r = check_table(q, "refcount block", o, q->cluster_size, e)) ||
		    (r = meta_range(q, o, q->cluster_size, e)))
			return r;
	}
	return meta_range(q, q->rt_offset, len, e);
}

/* The snapshot table: only each snapshot's L1 table matters here (overlaps, repair). */
static int load_snapshots(struct qcow2 *q, struct err *e)
{
	const char *p = q->d.path;
	if (!q->nb_snapshots)
		return 0;
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: %u snapshots", p, q->nb_snapshots);
	int r = check_table(q, "snapshot table", q->snap_offset, 40, e);
	if (r)
		return r;
	q->snap_l1 = calloc(2ull * q->nb_snapshots, 8);
	if (!q->snap_l1)
		return err_set(e, -ENOMEM, "%s: out of memory", p);
	uint64_t off = q->snap_offset, end = off;
	for (uint32_t s = 0; s < q->nb_snapshots; s++) {
		uint8_t h[40];
		if (off + 40 > q->file_size || (r = qcow2_pread(q, h, 40, off)))
			return err_set(e, -EINVAL, "%s: invalid qcow2 image: snapshot table is truncated", p);
		uint64_t l1off = qcow2_be64(h);
		uint32_t l1size = qcow2_be32(h + 8);
		uint64_t len = 40ull + qcow2_be32(h + 36) + qcow2_be16(h + 12) + qcow2_be16(h + 14);
		if ((uint64_t)l1size * 8 > QCOW2_MAX_L1_BYTES)
			return err_set(
			    e, -EFBIG,
			    "%s: invalid qcow2 image: snapshot %u has an L1 table larger than 32 MiB", p, s);
		if (l1size && (r = check_table(q, "snapshot L1 table", l1off, (uint64_t)l1size * 8, e)))
			return r;
		if (l1size && (r = meta_range(q, l1off, (uint64_t)l1size * 8, e)))
			return r;
		q->snap_l1[2 * s] = l1off;
		q->snap_l1[2 * s + 1] = l1size;
		end = off + len; /* the last entry's padding may be missing at the end of the file */
		off += (len + 7) & ~7ull;
		if (off - q->snap_offset > (64u << 20))
			return err_set(e, -EFBIG,
				       "%s: invalid qcow2 image: snapshot table larger than 64 MiB", p);
	}
	q->snap_size = end - q->snap_offset;
	if (q->snap_offset + q->snap_size > q->file_size)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: snapshot table is truncated", p);
	return meta_range(q, q->snap_offset, q->snap_size, e);
}

static int open_backing(struct qcow2 *q, const struct qcow2_open_params *prm, const uint8_t *h, size_t hlen,
			const char *bfmt, struct err *e)
{
	const char *p = q->d.path;
	uint64_t boff = qcow2_be64(h + 8);
	uint32_t blen = qcow2_be32(h + 16);
	if (!boff)
		return 0;
	if (blen == 0 || blen > 1023 || boff > hlen || blen > hlen - boff)
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: backing file name (%u bytes at 0x%llx)",
			       p, blen, (unsigned long long)boff);
	if (memchr(h + boff, '\0', blen))
		return err_set(e, -EINVAL, "%s: invalid qcow2 image: backing file name contains a NUL byte",
			       p);
	memcpy(q->backing_name, h + boff, blen);
	q->backing_name[blen] = '\0';
	if (prm->no_backing)
		return 0;
	enum disk_format fmt = DISK_FORMAT_AUTO;
	if (!strcmp(bfmt, "raw") || !strcmp(bfmt, "file") || !strcmp(bfmt, "host_device"))
		fmt = DISK_FORMAT_RAW;
	else if (!strcmp(bfmt, "qcow2"))
		fmt = DISK_FORMAT_QCOW2;
	else if (bfmt[0])
		return err_set(e, -ENOTSUP,
			       "%s: backing file format '%s' is not supported (raw and qcow2 are)", p, bfmt);
	/* A relative name is relative to the directory of the image that names it. */
	char name[1024], full[4096 + 1024];
	memcpy(name, h + boff, blen);
	name[blen] = '\0';
	const char *slash = strrchr(p, '/');
	if (name[0] != '/' && slash)
		snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - p), p, name);
	else
		snprintf(full, sizeof(full), "%s", name);
	if (strlen(full) >= sizeof(q->d.path))
		return err_set(e, -ENAMETOOLONG, "%s: backing file path is too long", p);
	struct err be = {{0}};
	int r = disk_open_backing(full, fmt, prm->direct, prm->depth + 1, prm->chain_dev, prm->chain_ino,
				  &q->backing, &be);
	if (r)
		return err_set(e, r, "%s: backing file: %s", p, be.msg);
	return 0;
}

static int setup_caches(struct qcow2 *q, uint64_t cache_size, struct err *e)
{
	uint64_t per = (1ull << q->l2_bits) << q->cluster_bits;
	uint64_t l2_bytes, rb_bytes;
	if (cache_size) {
		l2_bytes = cache_size / 4 * 3;
		rb_bytes = cache_size / 4;
	} else {
		l2_bytes = (q->d.size + per - 1) / per * q->cluster_size;
		if (l2_bytes > L2_CACHE_DEFAULT_MAX)
			l2_bytes = L2_CACHE_DEFAULT_MAX;
		rb_bytes = l2_bytes / 4;
	}
	uint64_t nl2 = l2_bytes >> q->cluster_bits, nrb = rb_bytes >> q->cluster_bits;
	nl2 = nl2 < CACHE_MIN_ENTRIES ? CACHE_MIN_ENTRIES : nl2 > CACHE_MAX_ENTRIES ? CACHE_MAX_ENTRIES : nl2;
	nrb = nrb < CACHE_MIN_ENTRIES ? CACHE_MIN_ENTRIES : nrb > CACHE_MAX_ENTRIES ? CACHE_MAX_ENTRIES : nrb;
	if (qcow2_cache_init(&q->l2c, "L2 table", (unsigned)nl2, q->cluster_size) ||
	    qcow2_cache_init(&q->rbc, "refcount block", (unsigned)nrb, q->cluster_size))
		return err_set(e, -ENOMEM, "%s: out of memory for the metadata cache", q->d.path);
	return 0;
}

/*
 * Reads and parses the header (with its extensions and the backing file
 * name, all in the first cluster) into q. *hp (malloc'd) and *hlenp are the
 * bytes read, at most one cluster.
 */
static int read_header(struct qcow2 *q, bool readonly, uint8_t **hp, size_t *hlenp, char *bfmt,
		       size_t bfmt_len, struct err *e)
{
	uint8_t *h = malloc(1u << 21);
	if (!h)
		return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
	size_t hlen = q->file_size < (1u << 21) ? (size_t)q->file_size : (1u << 21);
	int r = qcow2_pread(q, h, hlen, 0);
	if (r)
		r = err_set(e, r, "%s: cannot read the qcow2 header: %s", q->d.path, strerror(-r));
	if (!r)
		r = parse_header(q, h, hlen, readonly, e);
	if (!r && hlen > q->cluster_size)
		hlen = q->cluster_size;
	if (!r)
		r = parse_extensions(q, h, hlen, qcow2_be64(h + 8), bfmt, bfmt_len, e);
	if (r) {
		free(h);
		return r;
	}
	*hp = h;
	*hlenp = hlen;
	return 0;
}

/* The tables the header points at, the caches, and a dirty image's refcounts counted again. */
static int load_meta(struct qcow2 *q, struct err *e)
{
	int r;
	if ((r = meta_range(q, 0, q->cluster_size, e)) || (r = load_l1(q, e)) || (r = load_rt(q, e)) ||
	    (r = load_snapshots(q, e)) || (r = setup_caches(q, q->cache_size, e)))
		return r;
	if (!(q->zero_cluster = calloc(1, q->cluster_size)))
		return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
	if ((q->incompat & QCOW2_INCOMPAT_DIRTY) && !q->d.readonly) {
		/* Lazy refcounts left behind by a crash: count again, then clear the bit. */
		if ((r = qcow2_repair(q, e)))
			return r;
		uint8_t be[8];
		qcow2_put64(be, q->incompat & ~QCOW2_INCOMPAT_DIRTY);
		if ((r = qcow2_pwrite(q, be, 8, QH_INCOMPAT)) || (r = qcow2_sync(q)))
			return err_set(e, r, "%s: cannot clear the dirty bit: %s", q->d.path, strerror(-r));
		q->incompat &= ~QCOW2_INCOMPAT_DIRTY;
	}
	q->meta_loaded = true;
	return 0;
}

/* What load_meta set up, dropped (a failed activation leaves the image as opened, deferred). */
static void unload_meta(struct qcow2 *q)
{
	qcow2_cache_free(&q->l2c);
	qcow2_cache_free(&q->rbc);
	free(q->l1);
	free(q->rt);
	free(q->snap_l1);
	free(q->zero_cluster);
	q->l1 = NULL;
	q->rt = NULL;
	q->snap_l1 = NULL;
	q->zero_cluster = NULL;
	q->nmeta = 0;
	q->meta_loaded = false;
}

int qcow2_open(const struct qcow2_open_params *prm, const char *path, struct disk **out, struct err *e)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q)
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	pthread_mutex_init(&q->lock, NULL);
	pthread_rwlock_init(&q->io_lock, NULL);
	snprintf(q->d.path, sizeof(q->d.path), "%s", path);
	q->mfd = prm->fd;
	q->file_size = prm->file_size;
	q->cache_size = prm->cache_size;
	q->d.readonly = prm->readonly;
	int r;
	if (prm->direct) {
		/* Metadata goes through the page cache; the data transfers bypass it. */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", prm->fd);
		q->mfd = open(proc, (prm->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (q->mfd < 0) {
			r = err_set(e, -errno, "%s: cannot reopen for metadata: %s", path, strerror(errno));
			q->mfd = -1;
			goto fail_nofile;
		}
		q->own_mfd = true;
	}
	q->file = prm->file;

	uint8_t *h = NULL;
	size_t hlen;
	char bfmt[64] = "";
	if ((r = read_header(q, prm->readonly, &h, &hlen, bfmt, sizeof(bfmt), e)))
		goto fail;
	/*
	 * Deferred: the header's size and backing file name now (neither changes
	 * while the image is in use elsewhere), the tables at qcow2_activate().
	 */
	if (!prm->deferred && (r = load_meta(q, e)))
		goto fail_h;
	if ((r = open_backing(q, prm, h, hlen, bfmt, e)))
		goto fail_h;
	free(h);
	h = NULL;

	q->d.ops = &qcow2_ops;
	q->d.can_discard = !prm->readonly;
	q->d.block_size = DISK_SECTOR;
	q->d.align = prm->file->align;
	q->inactive = prm->deferred;
	*out = &q->d;
	return 0;
fail_h:
	free(h);
fail:
	q->file = NULL; /* the caller still owns it on failure */
fail_nofile:
	qcow2_free(q);
	return r;
}

/*
 * A deferred image's metadata, read from the image as the previous user left
 * it (the file may have grown since the open): the header again, then the
 * tables. Caller holds q->lock.
 */
static int load_deferred(struct qcow2 *q, struct err *e)
{
	const char *p = q->d.path;
	uint64_t size = q->d.size;
	struct stat st;
	if (fstat(q->mfd, &st) < 0)
		return err_set(e, -errno, "%s: cannot stat: %s", p, strerror(errno));
	if (S_ISREG(st.st_mode))
		q->file_size = (uint64_t)st.st_size;
	uint8_t *h;
	size_t hlen;
	char bfmt[64] = "";
	int r = read_header(q, q->d.readonly, &h, &hlen, bfmt, sizeof(bfmt), e);
	if (r)
		return r;
	uint64_t boff = qcow2_be64(h + 8);
	uint32_t blen = qcow2_be32(h + 16);
	char now[sizeof(q->backing_name)] = "";
	if (boff && blen < sizeof(now) && boff <= hlen && blen <= hlen - boff)
		memcpy(now, h + boff, blen);
	free(h);
	if (q->d.size != size)
		return err_set(
		    e, -EINVAL,
		    "%s: the qcow2 virtual size changed from %llu to %llu bytes since it was opened", p,
		    (unsigned long long)size, (unsigned long long)q->d.size);
	if (strcmp(now, q->backing_name))
		return err_set(e, -EINVAL,
			       "%s: the qcow2 backing file changed from '%s' to '%s' since it was opened", p,
			       q->backing_name, now);
	return load_meta(q, e);
}

int qcow2_activate(struct disk *d, struct err *e)
{
	struct qcow2 *q = (struct qcow2 *)d;
	pthread_mutex_lock(&q->lock);
	int r = 0;
	if (!q->meta_loaded) {
		uint64_t size = q->d.size, incompat = q->incompat;
		if ((r = load_deferred(q, e))) {
			/* As opened: deferred, and a later activation may try again. */
			unload_meta(q);
			q->d.size = size;
			q->incompat = incompat;
		}
	}
	if (!r)
		__atomic_store_n(&q->inactive, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&q->lock);
	return r;
}

int qcow2_deactivate(struct disk *d, struct err *e)
{
	struct qcow2 *q = (struct qcow2 *)d;
	pthread_mutex_lock(&q->lock);
	int r = 0;
	if (!__atomic_load_n(&q->inactive, __ATOMIC_ACQUIRE)) {
		if (!d->readonly && (r = qcow2_flush_meta(q, true)))
			r = err_set(e, r, "%s: cannot write the qcow2 metadata out: %s", d->path,
				    strerror(-r));
		else
			__atomic_store_n(&q->inactive, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}
