/* SPDX-License-Identifier: MIT */
/*
 * Refcount repair for images left with the dirty bit (lazy refcounts): count
 * every reference the tables make (header, L1/L2 tables of the active layer
 * and of each snapshot, data and compressed clusters, the refcount structure
 * itself) and write the counts over the stored ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/disk/qcow2.h"

/* At most this many clusters are counted (the counts take 4 bytes each). */
#define MAX_CLUSTERS (1ull << 28)

struct counts {
	uint32_t *c;
	uint64_t n;
};

static int count(struct qcow2 *q, struct counts *k, uint64_t off, uint64_t len, struct err *e)
{
	if (!len)
		return 0;
	uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		if (c >= k->n)
			return err_set(e, -EINVAL,
				       "%s: dirty image has a reference past the end of the file (0x%llx); "
				       "repair it with qemu-img check -r all",
				       q->d.path, (unsigned long long)off);
		k->c[c]++;
	}
	return 0;
}

static int count_l1(struct qcow2 *q, struct counts *k, const uint64_t *l1, uint32_t l1_size, struct err *e)
{
	uint8_t *l2 = malloc(q->cluster_size);
	if (!l2)
		return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
	int r = 0;
	for (uint32_t i = 0; i < l1_size && !r; i++) {
		uint64_t l2off = l1[i] & QCOW2_L1_OFFSET_MASK;
		if (!l2off)
			continue;
		if ((r = count(q, k, l2off, q->cluster_size, e)))
			break;
		if ((r = qcow2_pread(q, l2, q->cluster_size, l2off))) {
			err_set(e, r, "%s: cannot read an L2 table", q->d.path);
			break;
		}
		for (uint32_t j = 0; j < 1u << q->l2_bits && !r; j++) {
			uint64_t x = qcow2_l2e(q, l2, j);
			if (x & QCOW2_OFLAG_COMPRESSED) {
				uint64_t coff = x & q->coffset_mask;
				uint64_t ns = ((x >> q->csize_shift) & q->csize_mask) + 1;
				r = count(q, k, coff & ~511ull, ns * 512, e);
			} else if (x & QCOW2_L2_OFFSET_MASK) {
				r = count(q, k, x & QCOW2_L2_OFFSET_MASK, q->cluster_size, e);
			}
		}
	}
	free(l2);
	return r;
}

static int count_all(struct qcow2 *q, struct counts *k, struct err *e)
{
	int r = count(q, k, 0, q->cluster_size, e);
	if (!r)
		r = count(q, k, q->l1_offset, (uint64_t)q->l1_size * 8, e);
	if (!r)
		r = count_l1(q, k, q->l1, q->l1_size, e);
	if (!r)
		r = count(q, k, q->rt_offset, (uint64_t)q->rt_clusters << q->cluster_bits, e);
	for (uint64_t i = 0; i < q->rt_size && !r; i++)
		if (q->rt[i] & QCOW2_L1_OFFSET_MASK)
			r = count(q, k, q->rt[i] & QCOW2_L1_OFFSET_MASK, q->cluster_size, e);
	for (uint32_t s = 0; s < q->nb_snapshots && !r; s++) {
		uint64_t off = q->snap_l1[2 * s];
		uint32_t size = (uint32_t)q->snap_l1[2 * s + 1];
		uint64_t *l1 = size ? malloc((size_t)size * 8) : NULL;
		if (size && !l1)
			return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
		if (!(r = count(q, k, off, (uint64_t)size * 8, e)) &&
		    !(r = qcow2_pread(q, l1, (size_t)size * 8, off))) {
			for (uint32_t i = 0; i < size; i++)
				l1[i] = qcow2_be64((uint8_t *)&l1[i]);
			r = count_l1(q, k, l1, size, e);
		}
		free(l1);
	}
	return r;
}

int qcow2_repair(struct qcow2 *q, struct err *e)
{
	struct counts k = {.n = (q->file_size + q->cluster_size - 1) >> q->cluster_bits};
	if (k.n > MAX_CLUSTERS)
		return err_set(e, -EFBIG,
			       "%s: dirty image too large to repair here; use qemu-img check -r all",
			       q->d.path);
	k.c = calloc(k.n ? k.n : 1, sizeof(*k.c));
	if (!k.c)
		return err_set(e, -ENOMEM, "%s: out of memory", q->d.path);
	int r = count_all(q, &k, e);
	if (q->snap_offset && !r) {
		/* The snapshot table's own clusters: its length was measured at open. */
		r = count(q, &k, q->snap_offset, q->snap_size, e);
	}
	for (uint64_t c = 0; c < k.n && !r; c++) {
		uint64_t rc;
		if ((r = qcow2_get_refcount(q, c, &rc)))
			break;
		if (rc == k.c[c])
			continue;
		if (k.c[c] > q->refcount_max) {
			r = err_set(e, -EOVERFLOW,
				    "%s: cluster %llu has more references than its refcount holds", q->d.path,
				    (unsigned long long)c);
			break;
		}
		uint64_t i = c >> q->rb_bits;
		if (i >= q->rt_size || !(q->rt[i] & QCOW2_L1_OFFSET_MASK)) {
			r = err_set(
			    e, -EINVAL,
			    "%s: dirty image lacks a refcount block; repair it with qemu-img check -r all",
			    q->d.path);
			break;
		}
		uint8_t *rb;
		if ((r = qcow2_cache_get(q, &q->rbc, q->rt[i] & QCOW2_L1_OFFSET_MASK, true, &rb)))
			break;
		qcow2_rb_set(q, rb, c & ((1ull << q->rb_bits) - 1), k.c[c]);
		qcow2_cache_dirty(&q->rbc, rb);
		qcow2_cache_put(&q->rbc, rb);
	}
	free(k.c);
	if (r) {
		if (!e->msg[0])
			err_set(e, r, "%s: refcount repair failed", q->d.path);
		return r;
	}
	if ((r = qcow2_cache_flush(q, &q->rbc)) || (r = qcow2_sync(q)))
		return err_set(e, r, "%s: cannot write the repaired refcounts", q->d.path);
	return 0;
}
