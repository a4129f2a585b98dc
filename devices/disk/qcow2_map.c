/* SPDX-License-Identifier: MIT */
/*
 * qcow2 address translation: the L1 table (in memory, written back on flush)
 * and the L2 tables (through the cache), and what a guest range maps to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/disk/qcow2.h"

uint64_t qcow2_l2e(const struct qcow2 *q, const uint8_t *l2, uint32_t idx)
{
	return qcow2_be64(l2 + (size_t)idx * q->l2_entry_bytes);
}

uint64_t qcow2_l2bitmap(const struct qcow2 *q, const uint8_t *l2, uint32_t idx)
{
	return q->extl2 ? qcow2_be64(l2 + (size_t)idx * 16 + 8) : 0;
}

void qcow2_l2_set(struct qcow2 *q, uint8_t *l2, uint32_t idx, uint64_t entry, uint64_t bitmap)
{
	qcow2_put64(l2 + (size_t)idx * q->l2_entry_bytes, entry);
	if (q->extl2)
		qcow2_put64(l2 + (size_t)idx * 16 + 8, bitmap);
	qcow2_cache_dirty(&q->l2c, l2);
}

static void l1_dirty(struct qcow2 *q, uint32_t i)
{
	if (q->l1_dirty_lo == q->l1_dirty_hi) {
		q->l1_dirty_lo = i;
		q->l1_dirty_hi = i + 1;
	} else {
		if (i < q->l1_dirty_lo)
			q->l1_dirty_lo = i;
		if (i + 1 > q->l1_dirty_hi)
			q->l1_dirty_hi = i + 1;
	}
}

int qcow2_l1_flush(struct qcow2 *q)
{
	uint32_t lo = q->l1_dirty_lo, hi = q->l1_dirty_hi;
	if (lo == hi)
		return 0;
	uint8_t *buf = malloc((size_t)(hi - lo) * 8);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = lo; i < hi; i++)
		qcow2_put64(buf + 8 * (i - lo), q->l1[i]);
	int r = qcow2_pwrite(q, buf, (size_t)(hi - lo) * 8, q->l1_offset + 8ull * lo);
	free(buf);
	if (!r)
		q->l1_dirty_lo = q->l1_dirty_hi = 0;
	return r;
}

int qcow2_l2_get(struct qcow2 *q, uint64_t gc, bool alloc, uint8_t **l2, uint32_t *idx)
{
	*l2 = NULL;
	uint64_t l1i = gc >> q->l2_bits;
	*idx = (uint32_t)(gc & ((1ull << q->l2_bits) - 1));
	if (l1i >= q->l1_size)
		return alloc ? qcow2_broken(q, "guest cluster %llu is past the L1 table",
					    (unsigned long long)gc)
			     : 0;
	uint64_t l1e = q->l1[l1i], l2off = l1e & QCOW2_L1_OFFSET_MASK;
	int r;
	if (!l2off) {
		if (!alloc)
			return 0;
		uint64_t n;
		if ((r = qcow2_alloc_clusters(q, 1, &n)))
			return r;
		if ((r = qcow2_cache_get(q, &q->l2c, n, false, l2)))
			return r;
		if ((r = qcow2_meta_add(q, n))) {
			qcow2_cache_put(&q->l2c, *l2);
			*l2 = NULL;
			return r;
		}
		qcow2_cache_dirty(&q->l2c, *l2);
		q->l1[l1i] = n | QCOW2_OFLAG_COPIED;
		l1_dirty(q, (uint32_t)l1i);
		return 0;
	}
	if (l2off & (q->cluster_size - 1))
		return qcow2_broken(q, "L1 entry %llu: L2 table offset 0x%llx is not cluster aligned",
				    (unsigned long long)l1i, (unsigned long long)l2off);
	uint8_t *old;
	if ((r = qcow2_cache_get(q, &q->l2c, l2off, true, &old)))
		return r;
	if (!alloc || (l1e & QCOW2_OFLAG_COPIED)) {
		*l2 = old;
		return 0;
	}
	/* Shared with a snapshot: the active layer gets its own copy, the old one a reference less. */
	uint64_t n;
	uint8_t *nl2;
	if ((r = qcow2_alloc_clusters(q, 1, &n)) || (r = qcow2_cache_get(q, &q->l2c, n, false, &nl2))) {
		qcow2_cache_put(&q->l2c, old);
		return r;
	}
	memcpy(nl2, old, q->cluster_size);
	qcow2_cache_put(&q->l2c, old);
	if ((r = qcow2_meta_add(q, n)) || (r = qcow2_free_later(q, l2off))) {
		qcow2_cache_put(&q->l2c, nl2);
		return r;
	}
	qcow2_cache_dirty(&q->l2c, nl2);
	q->l1[l1i] = n | QCOW2_OFLAG_COPIED;
	l1_dirty(q, (uint32_t)l1i);
	*l2 = nl2;
	return 0;
}

/* The kind of subcluster sc of an entry (extended L2), or of the whole cluster. */
static enum qcow2_kind kind_of(const struct qcow2 *q, uint64_t e, uint64_t bm, unsigned sc)
{
	if (e & QCOW2_OFLAG_COMPRESSED)
		return QK_COMPRESSED;
	if (q->extl2) {
		if (bm >> sc & 1)
			return QK_NORMAL;
		if (bm >> (32 + sc) & 1)
			return QK_ZERO;
		return QK_UNALLOC;
	}
	if (e & QCOW2_OFLAG_ZERO)
		return QK_ZERO;
	return (e & QCOW2_L2_OFFSET_MASK) ? QK_NORMAL : QK_UNALLOC;
}

static int check_entry(struct qcow2 *q, uint64_t gc, uint64_t e, uint64_t bm)
{
	if (e & QCOW2_OFLAG_COMPRESSED) {
		if (q->extl2 && bm)
			return qcow2_broken(q, "compressed cluster %llu has a subcluster bitmap",
					    (unsigned long long)gc);
		return 0;
	}
	if ((e & QCOW2_L2_OFFSET_MASK) & (q->cluster_size - 1))
		return qcow2_broken(q, "L2 entry of guest cluster %llu: offset 0x%llx is not cluster aligned",
				    (unsigned long long)gc, (unsigned long long)(e & QCOW2_L2_OFFSET_MASK));
	if (q->version < 3 && (e & QCOW2_OFLAG_ZERO))
		return qcow2_broken(q,
				    "L2 entry of guest cluster %llu has the zero flag in a version 2 image",
				    (unsigned long long)gc);
	if (q->extl2 && (bm & (bm >> 32) & 0xffffffffull))
		return qcow2_broken(q, "guest cluster %llu: subclusters both allocated and zero",
				    (unsigned long long)gc);
	if (q->extl2 && (bm & 0xffffffffull) && !(e & QCOW2_L2_OFFSET_MASK))
		return qcow2_broken(q, "guest cluster %llu: allocated subclusters without an offset",
				    (unsigned long long)gc);
	return 0;
}

int qcow2_map(struct qcow2 *q, uint64_t off, uint64_t len, struct qcow2_map *m)
{
	uint64_t cs = q->cluster_size, gc = off >> q->cluster_bits, in = off & (cs - 1);
	uint8_t *l2;
	uint32_t idx;
	memset(m, 0, sizeof(*m));
	int r = qcow2_l2_get(q, gc, false, &l2, &idx);
	if (r)
		return r;
	if (!l2) {
		/* No L2 table: unallocated up to the end of the range the table would map. */
		uint64_t span = (1ull << q->l2_bits) << q->cluster_bits;
		uint64_t left = span - (off & (span - 1));
		m->kind = QK_UNALLOC;
		m->len = len < left ? len : left;
		return 0;
	}
	uint64_t e = qcow2_l2e(q, l2, idx), bm = qcow2_l2bitmap(q, l2, idx);
	if ((r = check_entry(q, gc, e, bm))) {
		qcow2_cache_put(&q->l2c, l2);
		return r;
	}
	unsigned sc = (unsigned)(in >> q->sc_bits);
	m->kind = kind_of(q, e, bm, sc);
	m->l2e = e;
	m->copied = (e & QCOW2_OFLAG_COPIED) != 0;
	m->host = (e & QCOW2_L2_OFFSET_MASK) + in;
	uint64_t n = 0; /* bytes of the run so far */
	if (q->extl2 && m->kind != QK_COMPRESSED) {
		unsigned s = sc;
		while (s < (1u << (q->cluster_bits - q->sc_bits)) && kind_of(q, e, bm, s) == m->kind)
			s++;
		n = ((uint64_t)s << q->sc_bits) - in;
		/* A partly allocated cluster is not written in place. */
		if ((bm & 0xffffffffull) != 0xffffffffull >> (32 - (1u << (q->cluster_bits - q->sc_bits))))
			m->copied = false;
	} else {
		n = cs - in;
	}
	/* Whole following clusters of the same kind (and contiguous on the host) join the run. */
	if (!q->extl2 && m->kind != QK_COMPRESSED) {
		uint32_t per = 1u << q->l2_bits;
		uint64_t expect = (e & QCOW2_L2_OFFSET_MASK) + cs;
		for (uint32_t i = idx + 1; i < per && n < len; i++, expect += cs) {
			uint64_t ne = qcow2_l2e(q, l2, i);
			if (check_entry(q, gc + (i - idx), ne, 0) || kind_of(q, ne, 0, 0) != m->kind)
				break;
			if (m->kind == QK_NORMAL && ((ne & QCOW2_L2_OFFSET_MASK) != expect ||
						     !(ne & QCOW2_OFLAG_COPIED) != !m->copied))
				break;
			n += cs;
		}
	}
	qcow2_cache_put(&q->l2c, l2);
	m->len = n < len ? n : len;
	if (m->kind == QK_NORMAL && (m->host & ~(cs - 1)) == 0)
		return qcow2_broken(q, "guest cluster %llu maps onto the header", (unsigned long long)gc);
	return 0;
}
