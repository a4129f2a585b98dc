/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side (virtio 1.2, 2.7). The driver runs on other
 * CPUs and may rewrite any ring byte at any time, so every field is loaded
 * once into a local and only the local is checked and used.
 *
 * Ring fields are little-endian (2.7); the le*toh/htole* calls cost nothing on
 * x86 and keep the code right elsewhere.
 */
#include "virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define DESC_F_NEXT	     1
#define DESC_F_WRITE	     2
#define DESC_F_INDIRECT	     4
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY     1
#define DESC_SIZE	     16

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event */
};

struct used_elem {
	uint32_t id;
	uint32_t len;
};

struct used {
	uint16_t flags;
	uint16_t idx;
	struct used_elem ring[]; /* [size], then avail_event */
};

static inline uint16_t load16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

static inline void store16(uint16_t *p, uint16_t v, int order)
{
	__atomic_store_n(p, htole16(v), order);
}

static uint16_t *used_event(const struct virtq *q)
{
	return &((struct avail *)q->avail)->ring[q->l.size];
}

static uint16_t *avail_event(const struct virtq *q)
{
	return (uint16_t *)&((struct used *)q->used)->ring[q->l.size];
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem, const struct virtq_layout *l)
{
	virtq_reset(q);
	uint64_t n = l->size;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if (l->desc % 16 || l->avail % 2 || l->used % 4)
		return -EINVAL;
	/* The event fields count even without event_idx: they are part of the layout (2.7). */
	void *desc = guest_mem_ptr(mem, l->desc, DESC_SIZE * n);
	void *avail = guest_mem_ptr(mem, l->avail, 6 + 2 * n);
	void *used = guest_mem_ptr(mem, l->used, 6 + 8 * n);
	if (!desc || !avail || !used)
		return -EINVAL;
	q->mem = mem;
	q->l = *l;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->enabled = true;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

/* One snapshot of a descriptor. The tables need not be aligned (indirect ones), hence memcpy. */
static void read_desc(const uint8_t *table, unsigned i, struct desc *d)
{
	memcpy(d, table + (size_t)i * DESC_SIZE, DESC_SIZE);
	/* Compiler barrier: the checks below must use this copy, never a second load from the guest. */
	__asm__ __volatile__("" ::: "memory");
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

struct walk {
	struct iovec *iov;
	unsigned max, n, nout;
	uint64_t out_len, in_len;
	bool writable; /* a writable descriptor was seen: no readable one may follow */
};

/* Maps one buffer descriptor and appends it; past max only counts, so that the rest is still checked. */
static int add_buffer(const struct virtq *q, struct walk *w, const struct desc *d)
{
	bool wr = d->flags & DESC_F_WRITE;
	if (w->writable && !wr)
		return -EINVAL;
	w->writable = wr;
	if (d->len == 0)
		return 0;
	void *p = guest_mem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return -EINVAL;
	*(wr ? &w->in_len : &w->out_len) += d->len;
	/* Spec limit 2^32 (2.7.5.2); one byte less so that every length fits the used ring's 32 bits. */
	if (w->out_len + w->in_len > UINT32_MAX)
		return -EINVAL;
	if (w->n < w->max)
		w->iov[w->n] = (struct iovec){.iov_base = p, .iov_len = d->len};
	w->n++;
	w->nout += !wr;
	return 0;
}

/*
 * Walks the chain at head: zero or more descriptors in the table, the last of
 * which may refer to an indirect table (2.7.5.3.2), whose chain starts at its
 * entry 0. Loops show up as more descriptors than the table holds.
 */
static int walk_chain(const struct virtq *q, uint16_t head, struct walk *w)
{
	const uint8_t *table = q->desc;
	unsigned count = q->l.size, seen = 0, i = head;
	bool indirect = false;

	for (;;) {
		if (i >= count || ++seen > count)
			return -EINVAL;
		struct desc d;
		read_desc(table, i, &d);
		if (d.flags & DESC_F_INDIRECT) {
			/* Its WRITE flag means nothing and is ignored (2.7.5.3.2). */
			if (!q->l.indirect || indirect || (d.flags & DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_INDIRECT)
				return -EINVAL;
			table = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return -EINVAL;
			count = d.len / DESC_SIZE;
			seen = i = 0;
			indirect = true;
			continue;
		}
		int r = add_buffer(q, w, &d);
		if (r)
			return r;
		if (!(d.flags & DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct iovec *iov, unsigned max_iov, struct virtq_chain *c)
{
	if (!q->enabled)
		return 0;
	const struct avail *a = q->avail;
	/* Acquire: the ring entry and descriptors the driver wrote before idx are visible after it. */
	uint16_t avail_idx = load16(&a->idx, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->l.size)
		return -EINVAL;
	uint16_t head = load16(&a->ring[q->last_avail & (q->l.size - 1)], __ATOMIC_RELAXED);
	struct walk w = {.iov = iov, .max = max_iov};
	int r = walk_chain(q, head, &w);
	/* A broken chain stays where it is: the queue is dead until reset and we never hand out its head. */
	if (r)
		return r;
	q->last_avail++;
	*c = (struct virtq_chain){.head = head};
	if (w.n > max_iov)
		return -E2BIG;
	c->nout = w.nout;
	c->nin = w.n - w.nout;
	c->out_len = w.out_len;
	c->in_len = w.in_len;
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	if (!q->enabled)
		return;
	struct used *u = q->used;
	struct used_elem *e = &u->ring[q->used_idx & (q->l.size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(written), __ATOMIC_RELAXED);
	/* Release: the element (and the data written into the buffers) before the index that publishes it. */
	store16(&u->idx, ++q->used_idx, __ATOMIC_RELEASE);
	/* After the writes they cover (see guest_mem_mark_dirty()); one load when logging is off. */
	guest_mem_mark_dirty(q->mem, q->l.used + 4 + 8ULL * ((uint16_t)(q->used_idx - 1) & (q->l.size - 1)),
			     8);
	guest_mem_mark_dirty(q->mem, q->l.used + 2, 2);
}

void virtq_push_iov(struct virtq *q, uint16_t head, const struct iovec *in, unsigned nin, uint32_t written)
{
	if (!q->enabled)
		return;
	if (guest_mem_dirty_logging(q->mem)) {
		for (unsigned i = 0; i < nin; i++) {
			uint64_t gpa;
			/* virtq_pop() mapped each one inside one region: the translation back cannot fail. */
			if (in[i].iov_len && guest_mem_gpa(q->mem, in[i].iov_base, &gpa) == 0)
				guest_mem_mark_dirty(q->mem, gpa, in[i].iov_len);
		}
	}
	virtq_push(q, head, written);
}

bool virtq_should_notify(struct virtq *q)
{
	if (!q->enabled)
		return false;
	/* Full fence: our used->idx store must be visible before we read the driver's suppression state,
	 * or both sides can miss each other (2.7.7). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->l.event_idx)
		return !(load16(&((struct avail *)q->avail)->flags, __ATOMIC_RELAXED) & AVAIL_F_NO_INTERRUPT);
	uint16_t old = q->signalled_used, new = q->used_idx;
	bool valid = q->signalled_valid;
	q->signalled_used = new;
	q->signalled_valid = true;
	if (!valid)
		return true; /* nothing signalled yet: we cannot tell whether used_event was passed */
	/* vring_need_event(): did used_idx move past used_event with this batch of pushes (old, new]? */
	uint16_t event = load16(used_event(q), __ATOMIC_RELAXED);
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

void virtq_set_notify(struct virtq *q, bool enable)
{
	if (!q->enabled)
		return;
	if (q->l.event_idx) {
		/*
		 * Ask for a kick when the driver makes entry last_avail available. Disabling
		 * writes nothing: the driver kicks only when its idx crosses avail_event, and
		 * that normally was the kick that woke us, so it stays quiet until we enable.
		 */
		if (enable) {
			store16(avail_event(q), q->last_avail, __ATOMIC_RELAXED);
			guest_mem_mark_dirty(q->mem, q->l.used + 4 + 8ULL * q->l.size, 2);
		}
	} else {
		store16(&((struct used *)q->used)->flags, enable ? 0 : USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
		guest_mem_mark_dirty(q->mem, q->l.used, 2);
	}
	/* Full fence: the request must be visible before the caller rereads avail->idx (virtq_has_work). */
	if (enable)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_has_work(const struct virtq *q)
{
	if (!q->enabled)
		return false;
	return load16(&((const struct avail *)q->avail)->idx, __ATOMIC_ACQUIRE) != q->last_avail;
}

/* ---- saved state ---- */

#define VIRTQ_STATE_VERSION 1
#define ST_ENABLED	    1
#define ST_EVENT_IDX	    2
#define ST_INDIRECT	    4
#define ST_SIGNALLED_VALID  8

void virtq_save(const struct virtq *q, uint16_t held, struct sbuf *b)
{
	sbuf_u32(b, VIRTQ_STATE_VERSION);
	sbuf_u8(b,
		(uint8_t)((q->enabled ? ST_ENABLED : 0) | (q->l.event_idx ? ST_EVENT_IDX : 0) |
			  (q->l.indirect ? ST_INDIRECT : 0) | (q->signalled_valid ? ST_SIGNALLED_VALID : 0)));
	sbuf_u16(b, q->l.size);
	sbuf_u64(b, q->l.desc);
	sbuf_u64(b, q->l.avail);
	sbuf_u64(b, q->l.used);
	sbuf_u16(b, (uint16_t)(q->last_avail - held));
	sbuf_u16(b, q->used_idx);
	sbuf_u16(b, q->signalled_used);
}

int virtq_load(struct virtq *q, const struct guest_mem *mem, struct sreader *r, struct err *e)
{
	uint32_t version = sreader_u32(r);
	uint8_t flags = sreader_u8(r);
	struct virtq_layout l = {.size = sreader_u16(r)};
	l.desc = sreader_u64(r);
	l.avail = sreader_u64(r);
	l.used = sreader_u64(r);
	l.event_idx = flags & ST_EVENT_IDX;
	l.indirect = flags & ST_INDIRECT;
	uint16_t last_avail = sreader_u16(r), used_idx = sreader_u16(r), signalled_used = sreader_u16(r);
	if (r->bad)
		return err_set(e, -EINVAL, "virtqueue state: truncated");
	if (version != VIRTQ_STATE_VERSION)
		return err_set(e, -EINVAL, "virtqueue state: version %" PRIu32 ", not %d", version,
			       VIRTQ_STATE_VERSION);
	if (flags & ~(ST_ENABLED | ST_EVENT_IDX | ST_INDIRECT | ST_SIGNALLED_VALID))
		return err_set(e, -EINVAL, "virtqueue state: unknown flags %#x", flags);
	struct virtq n;
	if (!(flags & ST_ENABLED)) {
		/* A disabled queue is a reset one: all zero. */
		if (flags || l.size || l.desc || l.avail || l.used || last_avail || used_idx ||
		    signalled_used)
			return err_set(e, -EINVAL, "virtqueue state: a disabled queue with state");
		virtq_reset(q);
		return 0;
	}
	if (virtq_enable(&n, mem, &l))
		return err_set(e, -EINVAL,
			       "virtqueue state: size %u or ring addresses (%#" PRIx64 ", %#" PRIx64
			       ", %#" PRIx64 ") invalid for this guest memory",
			       l.size, l.desc, l.avail, l.used);
	/* Guest memory was restored first: the rings there must be the ones these indices are about. */
	uint16_t mem_used = load16(&((const struct used *)n.used)->idx, __ATOMIC_ACQUIRE);
	uint16_t mem_avail = load16(&((const struct avail *)n.avail)->idx, __ATOMIC_ACQUIRE);
	if (mem_used != used_idx)
		return err_set(e, -EINVAL, "virtqueue state: used index %u, but the ring in memory says %u",
			       used_idx, mem_used);
	/* Chains taken and not used, and chains available and not used, each fit in the ring. */
	if ((uint16_t)(last_avail - used_idx) > l.size || (uint16_t)(mem_avail - used_idx) > l.size ||
	    (uint16_t)(mem_avail - last_avail) > l.size)
		return err_set(e, -EINVAL,
			       "virtqueue state: indices out of step (avail %u in memory, next to take %u, "
			       "used %u, size %u)",
			       mem_avail, last_avail, used_idx, l.size);
	n.last_avail = last_avail;
	n.used_idx = used_idx;
	n.signalled_used = signalled_used;
	n.signalled_valid = flags & ST_SIGNALLED_VALID;
	*q = n;
	return 0;
}
