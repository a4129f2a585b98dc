/* SPDX-License-Identifier: MIT */
/*
 * qcow2 requests: reads, writes (in place, or allocating with copy-on-write
 * of the parts of the cluster the request does not cover), write-zeroes and
 * discard as zero clusters, flush. Locking and ordering rules: qcow2.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/disk/qcow2.h"
#include "virtio/iov.h"

/* Clusters one allocating write takes at most (and so its copy-on-write buffers). */
#define MAX_ALLOC_BYTES (4u << 20)

static struct qcow2 *to_q(struct disk *d)
{
	return (struct qcow2 *)d;
}

static uint64_t iov_total(const struct iovec *iov, int n)
{
	uint64_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static void iov_zero(const struct qcow2 *q, const struct iovec *iov, int n, uint64_t skip, uint64_t len)
{
	while (len) {
		size_t k = len < q->cluster_size ? (size_t)len : (size_t)q->cluster_size;
		iov_from_buf(iov, (unsigned)n, (size_t)skip, q->zero_cluster, k);
		skip += k;
		len -= k;
	}
}

static bool in_range(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	return off % DISK_SECTOR == 0 && len % DISK_SECTOR == 0 && off <= q->d.size && len <= q->d.size - off;
}

/* Unallocated guest bytes: the backing file's where it has them, zeroes past its end. */
static int read_backing(struct qcow2 *q, const struct iovec *v, int n, uint64_t off, uint64_t len)
{
	uint64_t have = 0;
	if (q->backing && off < q->backing->size)
		have = q->backing->size - off < len ? q->backing->size - off : len;
	if (have) {
		int r = q->backing->ops->preadv(q->backing, v, n, off);
		if (r)
			return r;
	}
	iov_zero(q, v, n, have, len - have);
	return 0;
}

/* Host bytes of a data cluster; what lies past the end of the file reads as zeroes. */
static int read_host(struct qcow2 *q, const struct iovec *v, int n, uint64_t host, uint64_t len,
		     uint64_t file_size)
{
	uint64_t have = host < file_size ? (file_size - host < len ? file_size - host : len) : 0;
	have &= ~(uint64_t)(DISK_SECTOR - 1);
	if (have == len) /* the usual case: the whole run lies inside the file */
		return q->file->ops->preadv(q->file, v, n, host);
	if (have) {
		struct iovec *sub = malloc(sizeof(*sub) * ((size_t)n + 1));
		if (!sub)
			return -ENOMEM;
		int k = iov_slice(v, (unsigned)n, 0, (size_t)have, sub, (unsigned)n + 1);
		int r = k < 0 ? -EINVAL : q->file->ops->preadv(q->file, sub, k, host);
		free(sub);
		if (r)
			return r;
	}
	iov_zero(q, v, n, have, len - have);
	return 0;
}

static int read_compressed(struct qcow2 *q, const struct iovec *v, int n, uint64_t l2e, uint64_t in,
			   uint64_t len)
{
	uint8_t *buf = malloc(q->cluster_size);
	if (!buf)
		return -ENOMEM;
	int r = qcow2_decompress(q, l2e, buf);
	if (!r)
		iov_from_buf(v, (unsigned)n, 0, buf + in, (size_t)len);
	free(buf);
	return r;
}

/*
 * Reads [off, off + total of iov). locked: the caller holds q->lock (an
 * allocating write reading what it copies), so neither lock is taken here.
 */
static int do_read(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off, bool locked)
{
	uint64_t total = iov_total(iov, iovcnt), done = 0;
	struct iovec *sub = malloc(sizeof(*sub) * ((size_t)iovcnt + 1));
	if (!sub)
		return -ENOMEM;
	int r = 0;
	while (done < total && !r) {
		struct qcow2_map m;
		if (!locked)
			pthread_mutex_lock(&q->lock);
		r = qcow2_map(q, off + done, total - done, &m);
		uint64_t fsize = q->file_size;
		if (!r && !locked && (m.kind == QK_NORMAL || m.kind == QK_COMPRESSED))
			pthread_rwlock_rdlock(&q->io_lock);
		if (!locked)
			pthread_mutex_unlock(&q->lock);
		if (r)
			break;
		int k =
		    iov_slice(iov, (unsigned)iovcnt, (size_t)done, (size_t)m.len, sub, (unsigned)iovcnt + 1);
		if (k < 0) {
			r = -EINVAL;
		} else {
			switch (m.kind) {
			case QK_UNALLOC:
				r = read_backing(q, sub, k, off + done, m.len);
				break;
			case QK_ZERO:
				iov_zero(q, sub, k, 0, m.len);
				break;
			case QK_NORMAL:
				r = read_host(q, sub, k, m.host, m.len, fsize);
				break;
			case QK_COMPRESSED:
				r = read_compressed(q, sub, k, m.l2e, (off + done) & (q->cluster_size - 1),
						    m.len);
				break;
			}
		}
		if (!locked && (m.kind == QK_NORMAL || m.kind == QK_COMPRESSED))
			pthread_rwlock_unlock(&q->io_lock);
		done += m.len;
	}
	free(sub);
	return r;
}

int qcow2_read_buf(struct qcow2 *q, uint8_t *buf, uint64_t len, uint64_t off, bool locked)
{
	struct iovec v = {buf, (size_t)len};
	return do_read(q, &v, 1, off, locked);
}

/* Not in use here (deferred open, or handed over): no I/O, not even a read of stale tables. */
static bool inactive(const struct qcow2 *q)
{
	return __atomic_load_n(&q->inactive, __ATOMIC_ACQUIRE);
}

static int qcow2_preadv(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *q = to_q(d);
	if (inactive(q))
		return -EIO;
	if (!in_range(q, off, iov_total(iov, iovcnt)))
		return -EINVAL;
	return do_read(q, iov, iovcnt, off, false);
}

/* Before the first change: clear the autoclear bits (bitmaps we do not keep up to date). */
static int first_write(struct qcow2 *q)
{
	if (q->autoclear_done)
		return 0;
	if (q->version >= 3 && q->autoclear) {
		uint8_t z[8] = {0};
		int r = qcow2_pwrite(q, z, sizeof(z), QH_AUTOCLEAR);
		if (r || (r = qcow2_sync(q)))
			return r;
		q->autoclear = 0;
	}
	q->autoclear_done = true;
	return 0;
}

/* Whether guest cluster gc needs a new cluster (or a rewrite of its own) to take data. */
static int needs_alloc(struct qcow2 *q, uint64_t gc, bool *need)
{
	struct qcow2_map m;
	int r = qcow2_map(q, gc << q->cluster_bits, q->cluster_size, &m);
	if (!r)
		*need = !(m.kind == QK_NORMAL && m.copied);
	return r;
}

/* A mask with one bit per subcluster. */
static uint64_t all_sc(const struct qcow2 *q)
{
	unsigned n = 1u << (q->cluster_bits - q->sc_bits);
	return n >= 32 ? 0xffffffffull : (1ull << n) - 1;
}

/* Drops our reference to what an L2 entry pointed at (after the new entry is on disk). */
static int release_entry(struct qcow2 *q, uint64_t e)
{
	if (e & QCOW2_OFLAG_COMPRESSED)
		return qcow2_free_compressed_later(q, e);
	if (e & QCOW2_L2_OFFSET_MASK)
		return qcow2_free_later(q, e & QCOW2_L2_OFFSET_MASK);
	return 0;
}

/*
 * Writes guest bytes [pos, pos + left) from iov (starting skip bytes in),
 * at most up to the end of a run of clusters that all need allocating; q->lock
 * held. *done: bytes written.
 */
static int alloc_write(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t pos,
		       uint64_t left, uint64_t *done)
{
	uint64_t cs = q->cluster_size, gc = pos >> q->cluster_bits, in = pos & (cs - 1);
	uint64_t end = pos + left, last = (end - 1) >> q->cluster_bits, k = 1;
	/*
	 * At most half a refcount block's worth: a run that long always fits next to
	 * the block a new range needs (the block describes itself, inside the range).
	 */
	uint64_t maxk = MAX_ALLOC_BYTES / cs ? MAX_ALLOC_BYTES / cs : 1;
	if (maxk > (1ull << q->rb_bits) / 2)
		maxk = (1ull << q->rb_bits) / 2;
	int r;
	while (gc + k <= last && k < maxk && ((gc + k) >> q->l2_bits) == (gc >> q->l2_bits)) {
		bool need;
		if ((r = needs_alloc(q, gc + k, &need)))
			return r;
		if (!need)
			break;
		k++;
	}
	uint64_t wend = end < (gc + k) << q->cluster_bits ? end : (gc + k) << q->cluster_bits;
	uint64_t tail_len = (cs - (wend & (cs - 1))) & (cs - 1);
	uint8_t *head = NULL, *tail = NULL, *l2 = NULL;
	struct iovec *v = NULL;
	uint64_t host = 0;
	bool allocated = false;

	/* What the guest sees around the write, copied into the new cluster(s). */
	if ((in && !(head = malloc(in))) || (tail_len && !(tail = malloc(tail_len))) ||
	    !(v = malloc(sizeof(*v) * ((size_t)iovcnt + 2)))) {
		r = -ENOMEM;
		goto out;
	}
	if ((in && (r = qcow2_read_buf(q, head, in, pos - in, true))) ||
	    (tail_len && (r = qcow2_read_buf(q, tail, tail_len, wend, true))))
		goto out;

	uint32_t idx;
	if ((r = qcow2_l2_get(q, gc, true, &l2, &idx)))
		goto out;
	uint64_t old = qcow2_l2e(q, l2, idx);
	uint64_t oldoff = old & QCOW2_L2_OFFSET_MASK;
	/* A cluster of our own (a preallocated zero cluster, a partly allocated one) is rewritten. */
	bool reuse = k == 1 && !(old & QCOW2_OFLAG_COMPRESSED) && (old & QCOW2_OFLAG_COPIED) && oldoff &&
		     oldoff < q->file_size && !qcow2_overlaps_meta(q, oldoff, cs);
	if (reuse) {
		host = oldoff;
		q->l2_needs_sync = true; /* the data must be there before the entry says so */
	} else {
		if ((r = qcow2_alloc_clusters(q, k, &host)))
			goto out;
		allocated = true;
	}
	if (qcow2_overlaps_meta(q, host, k * cs)) {
		r = qcow2_broken(q, "new data cluster 0x%llx overlaps metadata", (unsigned long long)host);
		goto out;
	}
	int nv = 0;
	if (in)
		v[nv++] = (struct iovec){head, (size_t)in};
	int ns =
	    iov_slice(iov, (unsigned)iovcnt, (size_t)skip, (size_t)(wend - pos), v + nv, (unsigned)iovcnt);
	if (ns < 0) {
		r = -EINVAL;
		goto out;
	}
	nv += ns;
	if (tail_len)
		v[nv++] = (struct iovec){tail, (size_t)tail_len};
	if (host + k * cs > q->file_size)
		q->file_size = host + k * cs;
	if ((r = q->file->ops->pwritev(q->file, v, nv, host)))
		goto out;
	/* The data is written: point the entries at it, and let go of what they pointed at. */
	allocated = false; /* from here on, a failure leaks the clusters rather than reuse them */
	for (uint64_t i = 0; i < k; i++) {
		uint64_t e = i ? qcow2_l2e(q, l2, idx + (uint32_t)i) : old;
		if (!reuse && (r = release_entry(q, e)))
			goto out;
		qcow2_l2_set(q, l2, idx + (uint32_t)i, (host + i * cs) | QCOW2_OFLAG_COPIED,
			     q->extl2 ? all_sc(q) : 0);
	}
	*done = wend - pos;
out:
	if (allocated) /* nothing points at the new clusters: give them back now */
		for (uint64_t i = 0; i < k; i++)
			qcow2_update_refcount(q, host + i * cs, -1);
	if (l2)
		qcow2_cache_put(&q->l2c, l2);
	free(head);
	free(tail);
	free(v);
	return r;
}

/* Under q->lock: gets ready for a change (bounded pending frees, autoclear bits). */
static int begin_change(struct qcow2 *q)
{
	if (q->broken)
		return -EIO;
	int r = first_write(q);
	if (!r && qcow2_pending_full(q))
		r = qcow2_flush_meta(q, false);
	return r;
}

static int do_write(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t off)
{
	uint64_t total = iov_total(iov, iovcnt), done = 0;
	struct iovec *sub = malloc(sizeof(*sub) * ((size_t)iovcnt + 1));
	if (!sub)
		return -ENOMEM;
	int r = 0;
	while (done < total && !r) {
		pthread_mutex_lock(&q->lock);
		struct qcow2_map m;
		if ((r = begin_change(q)) || (r = qcow2_map(q, off + done, total - done, &m))) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		if (m.kind == QK_NORMAL && m.copied) {
			if (qcow2_overlaps_meta(q, m.host, m.len)) {
				r = qcow2_broken(q, "guest data at 0x%llx would overwrite metadata",
						 (unsigned long long)m.host);
				pthread_mutex_unlock(&q->lock);
				break;
			}
			/* Every cluster we own starts inside the file: one past it is a hostile pointer. */
			if ((m.host & ~(q->cluster_size - 1)) >= q->file_size) {
				r = qcow2_broken(q, "data cluster 0x%llx is past the end of the file",
						 (unsigned long long)(m.host & ~(q->cluster_size - 1)));
				pthread_mutex_unlock(&q->lock);
				break;
			}
			if (m.host + m.len > q->file_size) /* the file's last cluster, partly there */
				q->file_size = m.host + m.len;
			/* Overwriting our own cluster: no metadata changes, so no lock for the transfer. */
			pthread_rwlock_rdlock(&q->io_lock);
			pthread_mutex_unlock(&q->lock);
			int k = iov_slice(iov, (unsigned)iovcnt, (size_t)done, (size_t)m.len, sub,
					  (unsigned)iovcnt + 1);
			r = k < 0 ? -EINVAL : q->file->ops->pwritev(q->file, sub, k, m.host);
			pthread_rwlock_unlock(&q->io_lock);
			done += m.len;
			continue;
		}
		uint64_t n = 0;
		r = alloc_write(q, iov, iovcnt, done, off + done, total - done, &n);
		pthread_mutex_unlock(&q->lock);
		done += n;
	}
	free(sub);
	return r;
}

static int qcow2_pwritev(struct disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *q = to_q(d);
	if (d->readonly)
		return -EROFS;
	if (inactive(q))
		return -EIO;
	if (!in_range(q, off, iov_total(iov, iovcnt)))
		return -EINVAL;
	return do_write(q, iov, iovcnt, off);
}

/* Writes real zeroes over [off, off + len) (inside one cluster) unless it reads as zeroes already. */
static int zero_part(struct qcow2 *q, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&q->lock);
	struct qcow2_map m;
	int r = qcow2_map(q, off, len, &m);
	pthread_mutex_unlock(&q->lock);
	if (r)
		return r;
	bool backed = q->backing && off < q->backing->size;
	if (m.len == len && (m.kind == QK_ZERO || (m.kind == QK_UNALLOC && !backed)))
		return 0;
	struct iovec v = {q->zero_cluster, (size_t)len};
	return do_write(q, &v, 1, off);
}

/* Makes whole guest cluster gc read as zeroes with metadata only. q->lock held. */
static int zero_cluster(struct qcow2 *q, uint64_t gc, bool may_unmap)
{
	uint8_t *l2;
	uint32_t idx;
	int r = qcow2_l2_get(q, gc, true, &l2, &idx);
	if (r)
		return r;
	uint64_t old = qcow2_l2e(q, l2, idx), e = 0, bm = 0;
	bool keep = false;
	if (q->extl2) {
		bm = all_sc(q) << 32; /* every subcluster reads as zeroes */
	} else if (q->version >= 3) {
		/* A cluster of our own may stay allocated as a preallocated zero cluster. */
		keep = !may_unmap && (old & QCOW2_OFLAG_COPIED) && !(old & QCOW2_OFLAG_COMPRESSED) &&
		       (old & QCOW2_L2_OFFSET_MASK);
		e = (keep ? old : 0) | QCOW2_OFLAG_ZERO;
	}
	if (!keep)
		r = release_entry(q, old);
	if (!r)
		qcow2_l2_set(q, l2, idx, e, bm);
	qcow2_cache_put(&q->l2c, l2);
	return r;
}

static int qcow2_write_zeroes(struct disk *d, uint64_t off, uint64_t len, bool may_unmap)
{
	struct qcow2 *q = to_q(d);
	if (d->readonly)
		return -EROFS;
	if (inactive(q))
		return -EIO;
	if (!in_range(q, off, len))
		return -EINVAL;
	uint64_t cs = q->cluster_size;
	/* Without zero clusters (version 2), an unallocated cluster only reads as zeroes with no backing. */
	bool meta_zero = q->version >= 3 || q->extl2 || !q->backing;
	int r = 0;
	while (len && !r) {
		uint64_t in = off & (cs - 1), n = cs - in < len ? cs - in : len;
		/* The last cluster may reach past the virtual size: it counts as whole. */
		bool whole = !in && (n == cs || off + n == q->d.size);
		if (whole && meta_zero) {
			pthread_mutex_lock(&q->lock);
			if (!(r = begin_change(q)))
				r = zero_cluster(q, off >> q->cluster_bits, may_unmap);
			pthread_mutex_unlock(&q->lock);
		} else {
			r = zero_part(q, off, n);
		}
		off += n;
		len -= n;
	}
	return r;
}

/* Discarded ranges read as zeroes afterwards, as on a raw image with holes. */
static int qcow2_discard(struct disk *d, uint64_t off, uint64_t len)
{
	return qcow2_write_zeroes(d, off, len, true);
}

static int qcow2_flush(struct disk *d)
{
	struct qcow2 *q = to_q(d);
	if (d->readonly || inactive(q))
		return 0; /* nothing to write: never loaded, or written out at the handover */
	pthread_mutex_lock(&q->lock);
	int r = qcow2_flush_meta(q, true);
	pthread_mutex_unlock(&q->lock);
	return r;
}

void qcow2_free(struct qcow2 *q);

static void qcow2_close(struct disk *d)
{
	struct qcow2 *q = to_q(d);
	/* Handed over (or never loaded): the image is someone else's now, not one byte more. */
	if (!d->readonly && !q->broken && !inactive(q)) {
		pthread_mutex_lock(&q->lock);
		qcow2_flush_meta(q, true);
		pthread_mutex_unlock(&q->lock);
	}
	qcow2_free(q);
}

const struct disk_ops qcow2_ops = {
    .format = "qcow2",
    .preadv = qcow2_preadv,
    .pwritev = qcow2_pwritev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .close = qcow2_close,
    .activate = qcow2_activate,
    .deactivate = qcow2_deactivate,
};
