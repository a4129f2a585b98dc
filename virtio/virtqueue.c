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
		if (enable)
			store16(avail_event(q), q->last_avail, __ATOMIC_RELAXED);
	} else {
		store16(&((struct used *)q->used)->flags, enable ? 0 : USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
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
