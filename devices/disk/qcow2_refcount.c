/* SPDX-License-Identifier: MIT */
/*
 * qcow2 refcounts: reading and updating them through the refcount blocks,
 * allocating clusters, growing the refcount table, and the write-out of all
 * metadata in crash-safe order (qcow2.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/disk/qcow2.h"

/* Pending frees beyond this make the next request write the metadata out first. */
#define MAX_PENDING 65536

uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *rb, uint64_t i)
{
	switch (q->refcount_order) {
	case 0:
		return rb[i / 8] >> (i % 8) & 1;
	case 1:
		return rb[i / 4] >> (2 * (i % 4)) & 3;
	case 2:
		return rb[i / 2] >> (4 * (i % 2)) & 15;
	case 3:
		return rb[i];
	case 4:
		return qcow2_be16(rb + 2 * i);
	case 5:
		return qcow2_be32(rb + 4 * i);
	default:
		return qcow2_be64(rb + 8 * i);
	}
}

void qcow2_rb_set(const struct qcow2 *q, uint8_t *rb, uint64_t i, uint64_t v)
{
	unsigned bits = 1u << q->refcount_order, shift;
	switch (q->refcount_order) {
	case 0:
	case 1:
	case 2:
		shift = (unsigned)(i % (8 / bits)) * bits;
		rb[i * bits / 8] =
		    (uint8_t)((rb[i * bits / 8] & ~(((1u << bits) - 1) << shift)) | v << shift);
		return;
	case 3:
		rb[i] = (uint8_t)v;
		return;
	case 4:
		rb[2 * i] = (uint8_t)(v >> 8);
		rb[2 * i + 1] = (uint8_t)v;
		return;
	case 5:
		qcow2_put32(rb + 4 * i, (uint32_t)v);
		return;
	default:
		qcow2_put64(rb + 8 * i, v);
	}
}

/* The refcount block for cluster, pinned in the cache; *rb = NULL when it has none. */
static int get_rb(struct qcow2 *q, uint64_t cluster, uint8_t **rb)
{
	*rb = NULL;
	uint64_t i = cluster >> q->rb_bits;
	if (i >= q->rt_size || !(q->rt[i] & QCOW2_L1_OFFSET_MASK))
		return 0;
	return qcow2_cache_get(q, &q->rbc, q->rt[i] & QCOW2_L1_OFFSET_MASK, true, rb);
}

int qcow2_get_refcount(struct qcow2 *q, uint64_t cluster, uint64_t *rc)
{
	uint8_t *rb;
	int r = get_rb(q, cluster, &rb);
	if (r)
		return r;
	*rc = rb ? qcow2_rb_get(q, rb, cluster & ((1ull << q->rb_bits) - 1)) : 0;
	if (rb)
		qcow2_cache_put(&q->rbc, rb);
	return 0;
}

int qcow2_update_refcount(struct qcow2 *q, uint64_t off, int delta)
{
	uint64_t cluster = off >> q->cluster_bits;
	uint8_t *rb;
	int r = get_rb(q, cluster, &rb);
	if (r)
		return r;
	if (!rb)
		return qcow2_broken(q, "cluster at 0x%llx has no refcount block", (unsigned long long)off);
	uint64_t i = cluster & ((1ull << q->rb_bits) - 1);
	uint64_t v = qcow2_rb_get(q, rb, i);
	if ((delta < 0 && v == 0) || (delta > 0 && v >= q->refcount_max)) {
		qcow2_cache_put(&q->rbc, rb);
		if (delta > 0)
			return -EOVERFLOW; /* refcount at its maximum: this request fails */
		return qcow2_broken(q, "refcount of cluster 0x%llx would drop below 0",
				    (unsigned long long)off);
	}
	qcow2_rb_set(q, rb, i, delta < 0 ? v - 1 : v + 1);
	qcow2_cache_dirty(&q->rbc, rb);
	qcow2_cache_put(&q->rbc, rb);
	if (delta < 0 && v == 1 && cluster < q->free_hint)
		q->free_hint = cluster;
	return 0;
}

static uint64_t clusters_of(const struct qcow2 *q, uint64_t bytes)
{
	return (bytes + q->cluster_size - 1) >> q->cluster_bits;
}

/* Writes the refcount table entry i (8 bytes) and syncs. */
static int write_rt_entry(struct qcow2 *q, uint64_t i)
{
	uint8_t be[8];
	qcow2_put64(be, q->rt[i]);
	int r = qcow2_pwrite(q, be, 8, q->rt_offset + 8 * i);
	return r ? r : qcow2_sync(q);
}

/*
 * Replaces the refcount table by a larger one covering index need, placed
 * after the end of the file together with the refcount blocks that cover it
 * and themselves: blocks and table are written and synced, then the header
 * points at the table, then the old table's clusters are freed.
 */
static int grow_rt(struct qcow2 *q, uint64_t need)
{
	uint64_t per_cluster = q->cluster_size / 8;
	uint64_t size =
	    need + 1 > q->rt_size + q->rt_size / 2 + 1 ? need + 1 : q->rt_size + q->rt_size / 2 + 1;
	uint64_t T = clusters_of(q, q->file_size), tc, B = 0, end;
	uint64_t first_new = q->rt_size; /* indices at or past this are new */
	for (;;) {
		size = (size + per_cluster - 1) / per_cluster * per_cluster;
		if (size * 8 > QCOW2_MAX_RT_BYTES)
			return -ENOSPC;
		tc = size / per_cluster;
		uint64_t nb;
		for (;;) {
			end = T + tc + B;
			nb = 0;
			for (uint64_t i = T >> q->rb_bits; i <= (end - 1) >> q->rb_bits; i++)
				if (i >= first_new || !q->rt[i])
					nb++;
			if (nb == B)
				break;
			B = nb;
		}
		if (((end - 1) >> q->rb_bits) < size)
			break;
		size = ((end - 1) >> q->rb_bits) + 1;
	}
	uint64_t *rt = calloc(size, 8);
	uint8_t *tbuf = calloc(tc, q->cluster_size);
	uint8_t *bbuf = B ? calloc(B, q->cluster_size) : NULL;
	int r = -ENOMEM;
	if (!rt || !tbuf || (B && !bbuf))
		goto out;
	memcpy(rt, q->rt, q->rt_size * 8);
	/* The new blocks, in index order, at T + tc ... */
	uint64_t j = 0;
	for (uint64_t i = T >> q->rb_bits; i <= (end - 1) >> q->rb_bits; i++)
		if (i >= first_new || !q->rt[i])
			rt[i] = (T + tc + j++) << q->cluster_bits;
	/* ... and the refcounts of the table and the blocks. */
	for (uint64_t c = T; c < end; c++) {
		uint64_t i = c >> q->rb_bits;
		if (i >= first_new || !q->rt[i]) {
			uint64_t b = (rt[i] >> q->cluster_bits) - (T + tc);
			qcow2_rb_set(q, bbuf + b * q->cluster_size, c & ((1ull << q->rb_bits) - 1), 1);
		} else if ((r = qcow2_update_refcount(q, c << q->cluster_bits, 1))) {
			goto out;
		}
	}
	for (uint64_t i = 0; i < size; i++)
		qcow2_put64(tbuf + 8 * i, rt[i]);
	if ((B && (r = qcow2_pwrite(q, bbuf, B * q->cluster_size, (T + tc) << q->cluster_bits))) ||
	    (r = qcow2_pwrite(q, tbuf, tc * q->cluster_size, T << q->cluster_bits)) ||
	    (r = qcow2_cache_flush(q, &q->rbc)) || (r = qcow2_sync(q)))
		goto out;
	uint8_t hdr[12];
	qcow2_put64(hdr, T << q->cluster_bits);
	qcow2_put32(hdr + 8, (uint32_t)tc);
	if ((r = qcow2_pwrite(q, hdr, sizeof(hdr), QH_RT_OFFSET)) || (r = qcow2_sync(q)))
		goto out;
	uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
	free(q->rt);
	q->rt = rt;
	rt = NULL;
	q->rt_size = size;
	q->rt_offset = T << q->cluster_bits;
	q->rt_clusters = (uint32_t)tc;
	for (uint64_t c = T; c < end; c++)
		if ((r = qcow2_meta_add(q, c << q->cluster_bits)))
			goto out;
	/* The header no longer points at the old table: its clusters go at once. */
	for (uint64_t c = 0; c < old_clusters; c++) {
		uint64_t o = old_off + (c << q->cluster_bits);
		qcow2_meta_del(q, o);
		if ((r = qcow2_update_refcount(q, o, -1)))
			goto out;
	}
	r = 0;
out:
	free(rt);
	free(tbuf);
	free(bbuf);
	return r;
}

/* A refcount block for index i, placed at cluster b (free, inside the range i covers). */
static int new_rb(struct qcow2 *q, uint64_t i, uint64_t b)
{
	uint8_t *buf = calloc(1, q->cluster_size);
	if (!buf)
		return -ENOMEM;
	qcow2_rb_set(q, buf, b & ((1ull << q->rb_bits) - 1), 1);
	uint64_t off = b << q->cluster_bits;
	qcow2_cache_drop(&q->rbc, off);
	qcow2_cache_drop(&q->l2c, off);
	int r = qcow2_pwrite(q, buf, q->cluster_size, off);
	free(buf);
	if (r || (r = qcow2_sync(q)))
		return r;
	q->rt[i] = off;
	if ((r = write_rt_entry(q, i)))
		return r;
	return qcow2_meta_add(q, off);
}

int qcow2_alloc_clusters(struct qcow2 *q, uint64_t n, uint64_t *off)
{
	if (q->broken)
		return -EIO;
	if (n > (1ull << q->rb_bits) / 2)
		return -EINVAL; /* could never fit beside the refcount block of a new range */
	uint64_t max_cluster = (QCOW2_L2_OFFSET_MASK >> q->cluster_bits) - n;
	for (;;) {
		uint64_t start = q->free_hint, c = start, run = 0;
		bool seen_free = false;
		uint8_t *rb = NULL;
		uint64_t rb_index = UINT64_MAX;
		while (run < n) {
			if (c > max_cluster) {
				if (rb)
					qcow2_cache_put(&q->rbc, rb);
				return -ENOSPC;
			}
			/* One cache lookup per refcount block, not per cluster. */
			if (c >> q->rb_bits != rb_index) {
				if (rb)
					qcow2_cache_put(&q->rbc, rb);
				rb_index = c >> q->rb_bits;
				int r = get_rb(q, c, &rb);
				if (r)
					return r;
			}
			uint64_t rc = rb ? qcow2_rb_get(q, rb, c & ((1ull << q->rb_bits) - 1)) : 0;
			if (rc || c == 0) {
				run = 0;
				start = c + 1;
			} else {
				if (!seen_free) /* everything before is in use: later searches start here */
					q->free_hint = c;
				seen_free = true;
				run++;
			}
			c++;
		}
		if (rb)
			qcow2_cache_put(&q->rbc, rb);
		/*
		 * Every cluster of the run needs a refcount block: make a missing one
		 * inside the run (it then describes itself) or grow the table, and search
		 * again, since the run is partly taken now.
		 */
		bool made = false;
		for (uint64_t i = start >> q->rb_bits; i <= (start + n - 1) >> q->rb_bits && !made; i++) {
			int r = 0;
			if (i >= q->rt_size) {
				r = grow_rt(q, i);
				made = true;
			} else if (!q->rt[i]) {
				r = new_rb(q, i, start > i << q->rb_bits ? start : i << q->rb_bits);
				made = true;
			}
			if (r)
				return r;
		}
		if (made)
			continue;
		for (uint64_t k = 0; k < n; k++) {
			int r = qcow2_update_refcount(q, (start + k) << q->cluster_bits, 1);
			if (r)
				return r;
		}
		q->free_hint = start + n;
		*off = start << q->cluster_bits;
		if ((start + n) << q->cluster_bits > q->file_size)
			q->file_size = (start + n) << q->cluster_bits;
		q->l2_needs_sync = true;
		return 0;
	}
}

int qcow2_free_later(struct qcow2 *q, uint64_t off)
{
	if (q->npending == q->cap_pending) {
		size_t cap = q->cap_pending ? q->cap_pending * 2 : 256;
		struct qcow2_free *p = realloc(q->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		q->pending = p;
		q->cap_pending = cap;
	}
	q->pending[q->npending++].off = off & ~(q->cluster_size - 1);
	return 0;
}

int qcow2_free_compressed_later(struct qcow2 *q, uint64_t l2e)
{
	uint64_t coff = l2e & q->coffset_mask;
	uint64_t nsect = ((l2e >> q->csize_shift) & q->csize_mask) + 1;
	uint64_t first = (coff & ~511ull) >> q->cluster_bits;
	uint64_t last = ((coff & ~511ull) + nsect * 512 - 1) >> q->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		int r = qcow2_free_later(q, c << q->cluster_bits);
		if (r)
			return r;
	}
	return 0;
}

int qcow2_prepare_l2_write(struct qcow2 *q)
{
	if (!q->l2_needs_sync)
		return 0;
	int r = qcow2_cache_flush(q, &q->rbc);
	if (r || (r = qcow2_sync(q)))
		return r;
	q->l2_needs_sync = false;
	return 0;
}

bool qcow2_pending_full(const struct qcow2 *q)
{
	return q->npending >= MAX_PENDING;
}

int qcow2_flush_meta(struct qcow2 *q, bool sync)
{
	int r = qcow2_cache_flush(q, &q->rbc);
	bool l1_dirty = q->l1_dirty_lo < q->l1_dirty_hi;
	if (!r && (q->l2c.ndirty || l1_dirty)) {
		r = qcow2_prepare_l2_write(q);
		if (!r)
			r = qcow2_cache_flush(q, &q->l2c);
		if (!r && l1_dirty && !(r = qcow2_sync(q)))
			r = qcow2_l1_flush(q);
	}
	if (!r && q->npending) {
		/* The pointers are gone from the disk once this sync returns; then the refcounts drop. */
		r = qcow2_sync(q);
		if (!r) {
			pthread_rwlock_wrlock(&q->io_lock);
			for (size_t i = 0; i < q->npending && !r; i++) {
				uint64_t off = q->pending[i].off, rc;
				r = qcow2_update_refcount(q, off, -1);
				if (!r && !(r = qcow2_get_refcount(q, off >> q->cluster_bits, &rc)) && !rc) {
					qcow2_meta_del(q, off);
					qcow2_cache_drop(&q->l2c, off);
					qcow2_cache_drop(&q->rbc, off);
				}
			}
			pthread_rwlock_unlock(&q->io_lock);
			q->npending = 0;
			if (!r)
				r = qcow2_cache_flush(q, &q->rbc);
		}
	}
	if (!r && sync)
		r = qcow2_sync(q);
	return r;
}
