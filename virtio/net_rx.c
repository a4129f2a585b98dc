/* SPDX-License-Identifier: MIT */
/*
 * virtio-net receive: frames from the backend straight into the guest's
 * buffers. Chains are popped ahead until they can hold the largest frame the
 * backend may hand us (a whole GSO frame with mergeable buffers), then one
 * readv() covers them all plus a spill buffer on the stack that only catches
 * frames too big for them (dropped and counted). A frame uses as many of the
 * chains as it fills; the rest stay ahead for the next frame. Without enough
 * buffers we do not read at all: frames wait in the backend, not here.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "virtio/iov.h"
#include "virtio/net_priv.h"

#define RX_IOV_MAX 1024 /* IOV_MAX: what one readv() takes, the spill buffer included */

static struct net_rx_chain *ahead(struct net_pair *p, unsigned k)
{
	return &p->rx[(p->rx_first + k) % NET_RX_PENDING];
}

bool net_filter_accepts(const struct net_filter *f, const uint8_t dst[6])
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	if (f->promisc || !memcmp(dst, bcast, 6))
		return true;
	bool multi = dst[0] & 1;
	if (multi ? f->allmulti || f->multi_overflow : f->uni_overflow)
		return true;
	if (!multi && !memcmp(dst, f->mac, 6))
		return true;
	const uint8_t(*t)[6] = multi ? f->multi : f->uni;
	for (unsigned i = 0, n = multi ? f->nmulti : f->nuni; i < n; i++)
		if (!memcmp(dst, t[i], 6))
			return true;
	return false;
}

void net_rx_forget(struct net_pair *p)
{
	p->rx_first = p->rx_count = p->rx_tail = 0;
	p->rx_starved = false;
	p->stash_len = 0;
}

/* Room the chains ahead give a frame: all of them with mergeable buffers, else the first one. */
static uint64_t room_ahead(struct net_pair *p)
{
	if (!p->rx_count)
		return 0;
	if (!p->mode.mrg_rxbuf)
		return ahead(p, 0)->len;
	uint64_t room = 0;
	for (unsigned k = 0; k < p->rx_count; k++)
		room += ahead(p, k)->len;
	return room;
}

/* Every chain the ring can give us is ahead: a frame gets no more room than this. */
static bool exhausted(const struct net_pair *p)
{
	return p->rx_count == NET_RX_PENDING || p->rx_count >= p->rxq->l.size;
}

/*
 * Pops chains until `need` bytes fit, or we hold all the ring can give. 1
 * ready, 0 starved (notifications are on: a kick brings more; frames wait in
 * the backend), -1 broken ring. With mergeable buffers and the ring dry, a
 * fresh frame is read into what we hold (small ones fit; a big one goes to the
 * stash until more buffers come). *returned counts chains given back unused.
 */
static int gather(struct net_pair *p, uint64_t need, const char **why, unsigned *returned)
{
	struct virtq *q = p->rxq;
	for (;;) {
		uint64_t room = room_ahead(p);
		if (p->rx_count && (!p->mode.mrg_rxbuf || room >= need))
			return 1;
		if (exhausted(p))
			return 1;
		struct net_rx_chain *c = ahead(p, p->rx_count);
		struct virtq_chain vc;
		int r = virtq_pop(q, c->iov, NET_RX_SEG_MAX, &vc);
		if (r == -E2BIG) {
			/* Well formed but more segments than we map: give it back unused. */
			virtq_push(q, vc.head, 0);
			p->rx_tail = 0; /* the chains held before it are no longer the last ones taken */
			(*returned)++;
			__atomic_add_fetch(&p->cnt->rx_errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (r < 0) {
			*why = "a malformed receive descriptor chain";
			return -1;
		}
		if (r == 0) {
			virtq_set_notify(q, true);
			if (virtq_has_work(q))
				continue;
			if (p->rx_count && p->mode.mrg_rxbuf && !p->stash_len &&
			    room >= NET_VNET_HDR_LEN + NET_ETH_HLEN)
				return 1;
			p->rx_starved = true;
			return 0;
		}
		if (vc.nout || vc.in_len < NET_VNET_HDR_LEN) {
			*why = "a receive buffer that is read-only or shorter than the virtio-net header";
			return -1;
		}
		virtq_set_notify(q, false);
		c->head = vc.head;
		c->niov = vc.nin;
		c->len = (uint32_t)vc.in_len;
		p->rx_count++;
		p->rx_tail++;
	}
}

/*
 * The iovec over the chains ahead that a frame of up to `need` bytes may use
 * (the first one only without mergeable buffers), then `tail` when not NULL.
 * Returns the entries; *room is what the chains hold.
 */
static unsigned build_iov(struct net_pair *p, uint64_t need, struct iovec *iov, uint64_t *room, void *tail,
			  size_t tail_len)
{
	unsigned n = 0;
	*room = 0;
	for (unsigned k = 0; k < p->rx_count; k++) {
		struct net_rx_chain *c = ahead(p, k);
		if (n + c->niov > RX_IOV_MAX - 1)
			break;
		memcpy(iov + n, c->iov, c->niov * sizeof(*iov));
		n += c->niov;
		*room += c->len;
		if (!p->mode.mrg_rxbuf || *room >= need)
			break;
	}
	if (tail)
		iov[n++] = (struct iovec){.iov_base = tail, .iov_len = tail_len};
	return n;
}

/* Hands a frame of len bytes (header included) to the guest in the first chains ahead. */
static void deliver(struct net_pair *p, const struct iovec *iov, unsigned niov, size_t len)
{
	unsigned used = 0;
	for (size_t left = len; left; used++) {
		uint32_t cap = ahead(p, used)->len;
		left -= left < cap ? left : cap;
	}
	uint8_t nb[2] = {(uint8_t)used, (uint8_t)(used >> 8)};
	iov_from_buf(iov, niov, NET_HDR_NUM_BUFFERS, nb, 2);
	if (!p->mode.guest_csum) {
		/* Flags are only meaningful with GUEST_CSUM (5.1.6.4): the backend may set DATA_VALID. */
		uint8_t zero = 0;
		iov_from_buf(iov, niov, 0, &zero, 1);
	}
	size_t left = len;
	for (unsigned k = 0; k < used; k++) {
		struct net_rx_chain *c = ahead(p, k);
		uint32_t w = left < c->len ? (uint32_t)left : c->len;
		virtq_push_iov(p->rxq, c->head, c->iov, c->niov, w);
		left -= w;
	}
	p->rx_first = (p->rx_first + used) % NET_RX_PENDING;
	p->rx_count -= used;
	if (p->rx_tail > p->rx_count)
		p->rx_tail = p->rx_count;
	__atomic_add_fetch(&p->cnt->rx_packets, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->cnt->rx_bytes, len - NET_VNET_HDR_LEN, __ATOMIC_RELAXED);
}

/*
 * A frame waits: its first stash_at bytes in the chains ahead, the rest in
 * the stash. Once the chains have room for it all, the rest is copied after
 * its start and the frame delivered; if the ring cannot give more, dropped.
 */
static void finish_stashed(struct net_pair *p, struct iovec *iov)
{
	uint64_t room;
	unsigned niov = build_iov(p, p->stash_frame, iov, &room, NULL, 0);
	size_t len = p->stash_frame;
	if (room >= len) {
		iov_from_buf(iov, niov, p->stash_at, p->stash, p->stash_len);
		deliver(p, iov, niov, len);
	} else {
		__atomic_add_fetch(&p->cnt->rx_dropped, 1, __ATOMIC_RELAXED);
	}
	p->stash_len = 0;
}

enum net_io net_rx_run(struct net_pair *p, const struct net_filter *f, void (*notify)(struct net_pair *),
		       const char **why)
{
	static __thread struct iovec iov[RX_IOV_MAX];
	unsigned unnotified = 0, returned = 0; /* frames delivered since the last notify */
	enum net_io res = NET_IO_IDLE;

	if (!p->rxq || p->rx_starved)
		return NET_IO_IDLE;
	for (unsigned batch = 0; batch < NET_BATCH; batch++) {
		int g = gather(p, p->stash_len ? p->stash_frame : p->mode.rx_need, why, &returned);
		if (g < 0) {
			res = NET_IO_BROKEN;
			break;
		}
		if (g == 0)
			break;
		if (p->stash_len) {
			uint64_t before = __atomic_load_n(&p->cnt->rx_packets, __ATOMIC_RELAXED);
			finish_stashed(p, iov);
			unnotified += __atomic_load_n(&p->cnt->rx_packets, __ATOMIC_RELAXED) != before;
			continue;
		}
		uint64_t room;
		unsigned niov = build_iov(p, p->mode.rx_need, iov, &room, p->stash, sizeof(p->stash));
		ssize_t n = readv(p->fd, iov, (int)niov);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			res = NET_IO_GONE; /* EBADFD and friends: the interface was deleted */
			break;
		}
		if ((size_t)n < NET_VNET_HDR_LEN + NET_ETH_HLEN) {
			__atomic_add_fetch(&p->cnt->rx_errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		uint8_t dst[6];
		iov_to_buf(iov, niov, NET_VNET_HDR_LEN, dst, 6);
		if (!net_filter_accepts(f, dst))
			continue; /* filtered out: the buffers are reused for the next frame */
		if ((uint64_t)n > room) {
			/* More than the buffers we hold: wait for more, unless there can be no more. */
			if (!p->mode.mrg_rxbuf || exhausted(p) || (uint64_t)n > sizeof(p->stash)) {
				__atomic_add_fetch(&p->cnt->rx_dropped, 1, __ATOMIC_RELAXED);
				continue;
			}
			p->stash_frame = (size_t)n;
			p->stash_at = (size_t)room;
			p->stash_len = (size_t)(n - room);
			continue;
		}
		deliver(p, iov, niov - 1, (size_t)n);
		if (++unnotified >= 16) {
			notify(p); /* let the guest start on a long burst */
			unnotified = 0;
		}
		if (batch + 1 == NET_BATCH)
			res = NET_IO_MORE;
	}
	if (unnotified || returned)
		notify(p);
	return res;
}
