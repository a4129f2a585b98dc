/* SPDX-License-Identifier: MIT */
/*
 * The metadata cache: whole L2 tables and refcount blocks, least recently
 * used out first. Dirty entries are written back on eviction and on flush; an
 * L2 table only after the refcount blocks it depends on (qcow2.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/disk/qcow2.h"

int qcow2_cache_init(struct qcow2_cache *c, const char *what, unsigned n, uint64_t cluster_size)
{
	memset(c, 0, sizeof(*c));
	c->what = what;
	c->e = calloc(n, sizeof(*c->e));
	if (!c->e)
		return -ENOMEM;
	c->n = n;
	for (unsigned i = 0; i < n; i++)
		if (posix_memalign((void **)&c->e[i].buf, 4096, cluster_size)) {
			c->e[i].buf = NULL;
			return -ENOMEM;
		}
	return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	if (c->e)
		for (unsigned i = 0; i < c->n; i++)
			free(c->e[i].buf);
	free(c->e);
	c->e = NULL;
}

static struct qcow2_cache_entry *by_buf(struct qcow2_cache *c, const uint8_t *buf)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].buf == buf)
			return &c->e[i];
	return NULL;
}

static int write_entry(struct qcow2 *q, struct qcow2_cache *c, struct qcow2_cache_entry *e)
{
	if (!e->dirty)
		return 0;
	if (c == &q->l2c) {
		int r = qcow2_prepare_l2_write(q);
		if (r)
			return r;
	}
	int r = qcow2_pwrite(q, e->buf, q->cluster_size, e->off);
	if (r)
		return r;
	e->dirty = false;
	c->ndirty--;
	return 0;
}

int qcow2_cache_flush(struct qcow2 *q, struct qcow2_cache *c)
{
	if (!c->ndirty)
		return 0;
	for (unsigned i = 0; i < c->n; i++) {
		int r = write_entry(q, c, &c->e[i]);
		if (r)
			return r;
	}
	return 0;
}

int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool read, uint8_t **buf)
{
	struct qcow2_cache_entry *victim = NULL;
	/* Most lookups repeat the last one (a sequential scan, a run of clusters). */
	struct qcow2_cache_entry *last = &c->e[c->last];
	if (last->off == off) {
		if (!read)
			memset(last->buf, 0, q->cluster_size);
		last->used = ++c->tick;
		last->pins++;
		*buf = last->buf;
		return 0;
	}
	for (unsigned i = 0; i < c->n; i++) {
		struct qcow2_cache_entry *e = &c->e[i];
		if (e->off == off) {
			if (!read) /* a new table where a stale copy was cached */
				memset(e->buf, 0, q->cluster_size);
			e->used = ++c->tick;
			e->pins++;
			*buf = e->buf;
			c->last = i;
			return 0;
		}
		if (e->pins)
			continue;
		if (!victim || !e->off || (victim->off && e->used < victim->used))
			victim = e;
	}
	if (!victim)
		return -EBUSY; /* every entry pinned: the cache is too small (it holds at least 4) */
	int r = write_entry(q, c, victim);
	if (r)
		return r;
	victim->off = 0;
	if (read) {
		r = qcow2_pread(q, victim->buf, q->cluster_size, off);
		if (r)
			return r;
	} else {
		memset(victim->buf, 0, q->cluster_size);
	}
	victim->off = off;
	victim->used = ++c->tick;
	victim->pins = 1;
	*buf = victim->buf;
	c->last = (unsigned)(victim - c->e);
	return 0;
}

void qcow2_cache_put(struct qcow2_cache *c, const uint8_t *buf)
{
	struct qcow2_cache_entry *e = by_buf(c, buf);
	if (e && e->pins)
		e->pins--;
}

void qcow2_cache_dirty(struct qcow2_cache *c, const uint8_t *buf)
{
	struct qcow2_cache_entry *e = by_buf(c, buf);
	if (e && !e->dirty) {
		e->dirty = true;
		c->ndirty++;
	}
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off == off && !c->e[i].pins) {
			if (c->e[i].dirty)
				c->ndirty--;
			c->e[i].dirty = false;
			c->e[i].off = 0;
		}
}
