/* SPDX-License-Identifier: MIT */
/*
 * virtio-net transmit: each chain is the 12-byte header and the frame,
 * written to the backend with one writev(): the header from a copy checked
 * against what was negotiated (the kernel checks too), the frame straight
 * from guest memory. A chain that is not a sane frame is dropped and counted.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "virtio/iov.h"
#include "virtio/net_priv.h"

int net_tx_check_hdr(const struct net_mode *m, const uint8_t *h, uint64_t len)
{
	uint8_t flags = h[0], gso = h[1];
	uint16_t hdr_len = (uint16_t)(h[2] | h[3] << 8), gso_size = (uint16_t)(h[4] | h[5] << 8);
	uint16_t csum_start = (uint16_t)(h[6] | h[7] << 8), csum_offset = (uint16_t)(h[8] | h[9] << 8);

	if (flags & ~NET_HDR_F_NEEDS_CSUM)
		return -EINVAL; /* DATA_VALID and RSC_INFO are the device's to set */
	if (flags & NET_HDR_F_NEEDS_CSUM) {
		if (!m->host_csum || (uint64_t)csum_start + csum_offset + 2 > len)
			return -EINVAL;
	}
	if (gso == NET_GSO_NONE)
		return 0;
	switch (gso & ~NET_GSO_ECN) {
	case NET_GSO_TCPV4:
		if (!m->host_tso4)
			return -EINVAL;
		break;
	case NET_GSO_TCPV6:
		if (!m->host_tso6)
			return -EINVAL;
		break;
	case NET_GSO_UDP:
		if (!m->host_ufo)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if ((gso & NET_GSO_ECN) && !m->host_ecn)
		return -EINVAL;
	if (!(flags & NET_HDR_F_NEEDS_CSUM) || gso_size == 0 || hdr_len > len)
		return -EINVAL;
	return 0;
}

/* 0 sent, -EAGAIN backend full, -EPIPE backend gone, -ENETDOWN pair inactive, other -errno dropped. */
static int transmit(struct net_pair *p)
{
	if (!__atomic_load_n(&p->active, __ATOMIC_ACQUIRE))
		return -ENETDOWN;
	for (;;) {
		ssize_t n = writev(p->fd, p->tx_out, (int)p->tx_nout);
		if (n >= 0)
			return 0; /* a tap takes the whole frame or nothing */
		switch (errno) {
		case EINTR:
			continue;
		case EAGAIN:
			return -EAGAIN;
		case EBADFD:
		case EIO:
		case ENXIO:
		case ENODEV:
			return -EPIPE;
		default:
			return -errno;
		}
	}
}

#define NOTIFY_EVERY 8

/*
 * The chain in p->tx_* is done: give it back and count it. Every NOTIFY_EVERY
 * chains the driver hears of them (if it asked to, through used_event), so
 * it frees and refills as we go rather than at the end of a long batch.
 */
static void finish(struct net_pair *p, int r, unsigned *unnotified, void (*notify)(struct net_pair *))
{
	virtq_push(p->txq, p->tx_head, 0);
	if (r == 0) {
		__atomic_add_fetch(&p->cnt->tx_packets, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->cnt->tx_bytes, p->tx_len - NET_VNET_HDR_LEN, __ATOMIC_RELAXED);
	} else if (r == -EPIPE || r == -ENETDOWN) {
		__atomic_add_fetch(&p->cnt->tx_dropped, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_add_fetch(&p->cnt->tx_errors, 1, __ATOMIC_RELAXED);
	}
	if (++*unnotified == NOTIFY_EVERY) {
		notify(p);
		*unnotified = 0;
	}
}

/*
 * Whether the chain just popped is a frame we may send; if so, p->tx_out is
 * what to send: the header copied as checked, then the frame in guest memory
 * (a header read again from guest memory could have changed since the check).
 */
static bool sane(struct net_pair *p, const struct virtq_chain *c)
{
	if (c->nin || c->out_len < NET_VNET_HDR_LEN + NET_ETH_HLEN ||
	    c->out_len > NET_VNET_HDR_LEN + NET_MAX_GSO_LEN)
		return false;
	iov_to_buf(p->tx_iov, c->nout, 0, p->tx_hdr, sizeof(p->tx_hdr));
	uint64_t len = c->out_len - NET_VNET_HDR_LEN;
	if (net_tx_check_hdr(&p->mode, p->tx_hdr, len))
		return false;
	int n = iov_slice(p->tx_iov, c->nout, NET_VNET_HDR_LEN, len, p->tx_out + 1, NET_TX_SEG_MAX);
	if (n < 0)
		return false;
	p->tx_out[0] = (struct iovec){p->tx_hdr, sizeof(p->tx_hdr)};
	p->tx_nout = 1 + (unsigned)n;
	return true;
}

enum net_io net_tx_run(struct net_pair *p, void (*notify)(struct net_pair *), const char **why)
{
	unsigned done = 0, unnotified = 0;
	enum net_io res = NET_IO_IDLE;

	if (!p->txq)
		return NET_IO_IDLE;
	if (p->tx_blocked) {
		int r = transmit(p);
		if (r == -EAGAIN)
			return NET_IO_IDLE; /* still full: wait until the backend is writable */
		p->tx_blocked = false;
		finish(p, r, &unnotified, notify);
		done++;
		if (r == -EPIPE)
			res = NET_IO_GONE;
	}
	while (res == NET_IO_IDLE) {
		virtq_set_notify(p->txq, false);
		for (; done < NET_BATCH; done++) {
			struct virtq_chain c;
			int r = virtq_pop(p->txq, p->tx_iov, NET_TX_SEG_MAX, &c);
			if (r == 0)
				break;
			p->tx_head = c.head;
			p->tx_len = (uint32_t)c.out_len;
			if (r == -E2BIG) {
				p->tx_len = 0;
				finish(p, -E2BIG, &unnotified, notify);
				continue;
			}
			if (r < 0) {
				*why = "a malformed transmit descriptor chain";
				res = NET_IO_BROKEN;
				break;
			}
			if (!sane(p, &c)) {
				finish(p, -EINVAL, &unnotified, notify);
				continue;
			}
			r = transmit(p);
			if (r == -EAGAIN) {
				p->tx_blocked = true;
				break;
			}
			finish(p, r, &unnotified, notify);
			if (r == -EPIPE) {
				done++;
				res = NET_IO_GONE;
				break;
			}
		}
		if (res != NET_IO_IDLE || p->tx_blocked)
			break;
		if (done >= NET_BATCH) {
			res = NET_IO_MORE;
			break;
		}
		virtq_set_notify(p->txq, true);
		if (!virtq_has_work(p->txq))
			break;
	}
	if (unnotified)
		notify(p);
	return res;
}
