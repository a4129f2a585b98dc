/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile driver and a hostile network against the
 * virtio-net data paths and control commands (virtio/net_rx.c, net_tx.c,
 * net_ctrl.c, over virtio/virtqueue.c), driven through virtio/net_priv.h as
 * the pair thread of virtio/net.c drives them, without PCI or threads: one
 * struct net_pair whose receive and transmit queues (and a control queue
 * served as ctrl_drain() serves it) live in 512 KiB of guest memory, and
 * whose backend fd is one end of a non-blocking SOCK_SEQPACKET socketpair
 * standing in for the tap (both keep frame boundaries). The harness writes
 * the frames the network sends at the other end and drains what the device
 * transmits. Nothing blocks: both ends are non-blocking and the device's
 * data paths only ever do non-blocking I/O.
 *
 * Deterministic: one thread, a fresh socketpair per input (closed at the
 * end, so no descriptor leaks), socket buffer sizes set explicitly.
 *
 * Oracles beyond the sanitizers (ASan also checks the ranges that readv and
 * writev touch):
 *   - every chain taken from the receive ring is either held ahead or used:
 *     last_avail - used_idx == rx_count <= NET_RX_PENDING;
 *   - the transmit ring holds at most the one chain the tap refused;
 *   - a starved receive pass leaves notifications on and the ring empty
 *     (or the driver's kick would be lost); IDLE from net_tx_run means the
 *     ring is empty (or the tap full);
 *   - GONE only once the far end is closed;
 *   - every frame the device transmits is 26..12+65550 bytes and its header
 *     passes net_tx_check_hdr() (guest memory cannot change in between: one
 *     thread), and the tx counters match what the tap received;
 *   - a pass that used transmit chains notified the driver after the last;
 *     a pass that delivered frames notified it;
 *   - control acks are 0 or 1; filters have at most NET_MAC_TABLE entries
 *     per table, none when the table overflowed, and a unicast own address.
 *
 * ---- Input format (tests/fuzz/gen_virtio_net_seeds.py writes it too) ----
 * Multi-byte values are little-endian; reading past the end yields zeroes.
 *
 * Header, 4 bytes:
 *   byte 0: the mode (struct net_mode): bit 0 mrg_rxbuf, 1 guest_csum,
 *           2 host_csum, 3 host_tso4, 4 host_tso6, 5 host_ecn, 6 host_ufo,
 *           7 rx_need for GSO (12 + 65550), else 12 + 14 + 4 + 1500
 *   byte 1: bits 0-3 log2 of the receive queue size (mod 11), bits 4-7 of
 *           the transmit queue size (mod 11)
 *   byte 2: bits 0-3 log2 of the control queue size (mod 11); bit 4
 *           EVENT_IDX, bit 5 INDIRECT_DESC; bit 6 the pair starts inactive;
 *           bit 7 the filter starts not promiscuous
 *   byte 3: negotiated control features: bit 0 CTRL_RX, 1 CTRL_MAC_ADDR,
 *           2 GUEST_ANNOUNCE, 3 MQ, 4 CTRL_GUEST_OFFLOADS (with GUEST_CSUM
 *           and GUEST_TSO4), 5 set_pairs and set_offloads fail, 6 a small
 *           send buffer on the device's end (the tap fills up quickly),
 *           7 max_pairs 16 (else 2)
 *
 * Then operations until the input ends (at most MAX_OPS): one opcode byte,
 * taken modulo NOPS, and its operands:
 *   0 MEM     off le24 (mod MEM_SIZE), n, bytes[n]: guest memory at host
 *             offset off (the high region follows the low one; clipped)
 *   1 DESC    q, i le16, a, len le16, flags, next le16: descriptor i % 1024 of queue q % 3
 *             (0 receive, 1 transmit, 2 control); a < 0xe0: BUF(a), else a
 *             special address (see addr())
 *   2 AVAIL   q, head le16: appends head to queue q's avail ring
 *   3 FRAME   len le16, sel, n, bytes[n]: the network sends a frame of
 *             len (+ 0x10000 when sel bit 0; none when 0) bytes, the first n from the
 *             input, then a pattern; sel bit 1: the destination (bytes
 *             12..17) is the device's address, bit 2: broadcast, bit 3: a
 *             multicast group (bits 1-3 override the input's bytes)
 *   4 RX      b: one receive pass (bit 0: the driver kicked first, which
 *             clears rx_starved as net.c does)
 *   5 TX      b: one transmit pass; bit 0: then drain the tap
 *   6 CTRL    serve the control queue as ctrl_drain() does
 *   7 RESET   b: device reset and restart: queues re-enabled (same sizes),
 *             chains held forgotten, the mode becomes b (as header byte 0)
 *   8 RXBUFS  n, len le16, sel: n % 65 receive chains of len bytes each,
 *             over sel % 4 + 1 writable descriptors (the next ones of the
 *             table, the next buffers), or with sel bit 7 29 + sel % 8
 *             (around NET_RX_SEG_MAX); then a kick
 *   9 TXPKT   sel, len le16, flags, gso, hdr_len, gso_size le16,
 *             csum_start le16, csum_offset le16, dst: one frame of len
 *             (+ 0x10000 when sel bit 7) bytes (header excluded) over
 *             sel % 8 + 1 readable descriptors, or with sel bit 6
 *             125 + sel % 8 (around NET_TX_SEG_MAX); dst: 0 the device, 1 broadcast, 2 multicast,
 *             other: another unicast
 *  10 CTRLCMD class, cmd, n le16, bytes[n % 1024], sel: one control command
 *             (class, command, data) over sel % 3 + 1 readable descriptors
 *             and, unless sel bit 3, a writable ack byte
 *  11 LINK    b: bit 0 toggles p->active; bit 1 drains the tap; bit 2
 *             closes the far end (the backend is gone)
 *
 * Guest memory: 1 MiB in two regions with a gap (as fuzz_virtqueue.c),
 * contiguous on the host: [0, 0xf0000) at 0, [0xf0000, 0x100000) at
 * HIGH_GPA. Queue q: descriptors at 0x10000 * q, avail + 0x4000, used +
 * 0x6000. Buffers: BUF(i) = 0x30000 + i * 0x800 (composites cycle over them,
 * a frame may run across several).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/iov.h"
#include "virtio/net_priv.h"
#include "virtio/virtio.h"
#include "vmm/memory.h"

#define MEM_SIZE     0x100000ULL
#define LOW_SIZE     0xf0000ULL
#define HIGH_GPA     0x100000ULL
#define DESC(q)	     (0x10000ULL * (q))
#define AVAIL(q)     (DESC(q) + 0x4000)
#define USED(q)	     (DESC(q) + 0x6000)
#define RING_SPAN    0x10000ULL
#define BUF_BASE     0x30000ULL
#define BUF(i)	     (BUF_BASE + (uint64_t)(i)*0x800ULL)
#define NBUF	     ((LOW_SIZE - BUF_BASE) / 0x800) /* buffers below the gap */
#define MAX_OPS	     1024
#define NOPS	     12
#define CTRL_SEG_MAX 16 /* as virtio/net.c */
#define HDR	     NET_VNET_HDR_LEN
#define MAX_FRAME    (0x1ffff + 1)

static uint8_t *ram;
static bool verbose; /* FUZZ_VIRTIO_NET_VERBOSE: a summary line per input on stderr */
static uint8_t frame[MAX_FRAME];

static const uint8_t own_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void die(const char *msg)
{
	fprintf(stderr, "fuzz_virtio_net: %s\n", msg);
	abort();
}

/* ---- the input ---- */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t le(struct input *in, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the device and the driver ---- */

struct queue {
	struct virtq q;
	uint16_t size, avail_idx, next_desc;
	bool broken;
};

static struct state {
	struct guest_mem mem;
	struct queue rx, tx, ctrl;
	struct net_pair p;
	struct virtio_net_stats st;
	struct net_ctrl_state cs;
	struct net_ctrl_ops ops;
	bool event_idx, indirect, ops_fail;
	int peer;		    /* the tap's far side; -1 once closed */
	unsigned next_buf;	    /* composites' next buffer */
	uint64_t sent, sent_bytes;  /* frames the network sent */
	uint64_t tx_seen, tx_bytes; /* frames the tap received */
	unsigned notified;	    /* notify() calls in this pass */
	uint16_t notified_used;	    /* the queue's used_idx at the last one */
	struct virtq *notify_q;	    /* the queue this pass notifies for */
	uint8_t qlog[3];
	unsigned acks[2];
} s;

static uint64_t addr(uint8_t a)
{
	if (a < 0xe0)
		return BUF(a);
	switch (a & 7) {
	case 0:
		return LOW_SIZE - 0x40; /* the end of the low region */
	case 1:
		return HIGH_GPA; /* the high region */
	case 2:
		return HIGH_GPA + (MEM_SIZE - LOW_SIZE) - 0x100;
	case 3:
		return LOW_SIZE; /* in the gap */
	case 4:
		return DESC(a >> 3 & 3); /* the rings themselves */
	case 5:
		return AVAIL(a >> 3 & 3);
	case 6:
		return USED(a >> 3 & 3);
	default:
		return UINT64_MAX - 0x10;
	}
}

static void wr16(uint64_t gpa, uint16_t v)
{
	uint8_t b[2];
	put_le(b, v, 2);
	if (guest_mem_write(&s.mem, gpa, b, 2))
		die("ring outside guest memory");
}

static uint16_t rd16(uint64_t gpa)
{
	uint8_t b[2];
	if (guest_mem_read(&s.mem, gpa, b, 2))
		die("ring outside guest memory");
	return (uint16_t)(b[0] | b[1] << 8);
}

static void set_desc(unsigned q, unsigned i, uint64_t a, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t d[16];
	put_le(d, a, 8);
	put_le(d + 8, len, 4);
	put_le(d + 12, flags, 2);
	put_le(d + 14, next, 2);
	/* Index up to 0x3ff: past a small table it lands in the avail ring, as memory does. */
	guest_mem_write(&s.mem, DESC(q) + 16ULL * (i & 0x3ff), d, 16);
}

static struct queue *queue(unsigned q)
{
	return q == 0 ? &s.rx : q == 1 ? &s.tx : &s.ctrl;
}

static void avail_add(unsigned q, uint16_t head)
{
	struct queue *d = queue(q);
	wr16(AVAIL(q) + 4 + 2ULL * (d->avail_idx % d->size), head);
	wr16(AVAIL(q) + 2, ++d->avail_idx);
}

static void enable(unsigned q)
{
	struct queue *d = queue(q);
	d->size = (uint16_t)(1u << (s.qlog[q] % 11));
	d->avail_idx = d->next_desc = 0;
	d->broken = false;
	/* The driver starts with zeroed rings. */
	memset(guest_mem_ptr(&s.mem, DESC(q), RING_SPAN), 0, RING_SPAN);
	struct virtq_layout l = {d->size, DESC(q), AVAIL(q), USED(q), s.event_idx, s.indirect};
	if (virtq_enable(&d->q, &s.mem, &l))
		die("virtq_enable failed");
}

static struct net_mode mode_from(uint8_t b)
{
	return (struct net_mode){
	    .mrg_rxbuf = b & 1,
	    .guest_csum = b & 2,
	    .rx_need = HDR + ((b & 0x80) ? NET_MAX_GSO_LEN : NET_ETH_HLEN + 4 + 1500),
	    .host_csum = b & 4,
	    .host_tso4 = b & 8,
	    .host_tso6 = b & 0x10,
	    .host_ecn = b & 0x20,
	    .host_ufo = b & 0x40,
	};
}

static void notify(struct net_pair *p)
{
	if (p != &s.p || !s.notify_q)
		die("notify for the wrong pair, or outside a pass");
	s.notified++;
	s.notified_used = s.notify_q->used_idx;
	virtq_should_notify(s.notify_q);
}

/* ---- the control callbacks (net.c's, minus the transport) ---- */

static void check_filter(const struct net_filter *f)
{
	if (f->nuni > NET_MAC_TABLE || f->nmulti > NET_MAC_TABLE)
		die("a MAC table longer than NET_MAC_TABLE");
	if ((f->uni_overflow && f->nuni) || (f->multi_overflow && f->nmulti))
		die("entries kept in an overflowed MAC table");
	if (f->mac[0] & 1)
		die("a multicast own address");
}

static int cb_set_pairs(void *opaque, unsigned pairs)
{
	if (pairs < 1 || pairs > s.cs.max_pairs)
		die("set_pairs out of range");
	return s.ops_fail ? -EIO : 0;
}

static int cb_set_offloads(void *opaque, uint64_t features)
{
	if (features & ~s.cs.features)
		die("set_offloads with features not negotiated");
	return s.ops_fail ? -EINVAL : 0;
}

static void cb_set_filter(void *opaque, const struct net_filter *f)
{
	check_filter(f);
	s.p.filter = *f; /* the pair thread's copy, refreshed as filter_gen moves */
}

static void cb_announce(void *opaque)
{
}

/* ---- the tap's far side ---- */

/* Reads what the device sent; each frame must be one the device may send. */
static void drain(void)
{
	if (s.peer < 0)
		return;
	for (;;) {
		ssize_t n = recv(s.peer, frame, sizeof(frame), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno != EAGAIN)
				die("recv on the tap's far side failed");
			return;
		}
		if (n < HDR + NET_ETH_HLEN || n > HDR + NET_MAX_GSO_LEN)
			die("transmitted a frame of a size the device must refuse");
		if (net_tx_check_hdr(&s.p.mode, frame, (uint64_t)n - HDR))
			die("transmitted a frame whose header the device must refuse");
		s.tx_seen++;
		s.tx_bytes += (uint64_t)n - HDR;
	}
}

/* Drains the tap; unless a frame waits to be sent (or the tap is gone), the counters must match. */
static void check_tx_counts(void)
{
	drain();
	if (s.peer < 0 || s.p.tx_blocked)
		return;
	if (s.st.tx_packets != s.tx_seen || s.st.tx_bytes != s.tx_bytes)
		die("tx counters do not match what the tap received");
}

/* ---- passes ---- */

static void check_rings(void)
{
	if (s.p.rx_count > NET_RX_PENDING)
		die("more receive chains ahead than NET_RX_PENDING");
	/* A chain that broke the ring is taken and dropped: the device needs a reset anyway. */
	if (!s.rx.broken && (uint16_t)(s.rx.q.last_avail - s.rx.q.used_idx) != s.p.rx_count)
		die("receive chains lost or used twice");
	if ((uint16_t)(s.tx.q.last_avail - s.tx.q.used_idx) != (s.p.tx_blocked ? 1 : 0))
		die("transmit chains lost or used twice");
}

/* Receive notifications are on: the driver will kick when it adds buffers. */
static bool rx_notify_on(void)
{
	if (s.event_idx)
		return rd16(USED(0) + 4 + 8ULL * s.rx.size) == s.rx.q.last_avail;
	return !(rd16(USED(0)) & 1);
}

static void rx_pass(uint8_t b)
{
	if (s.rx.broken)
		return;
	if (b & 1)
		s.p.rx_starved = false;
	bool was_starved = s.p.rx_starved;
	const char *why = NULL;
	uint64_t packets = s.st.rx_packets;
	s.notified = 0;
	s.notify_q = &s.rx.q;
	enum net_io r = net_rx_run(&s.p, &s.p.filter, notify, &why);
	s.notify_q = NULL;
	if ((r == NET_IO_BROKEN) != (why != NULL))
		die("net_rx_run: BROKEN without a reason, or a reason without BROKEN");
	if (r == NET_IO_BROKEN)
		s.rx.broken = true;
	if (r == NET_IO_GONE && s.peer >= 0)
		die("net_rx_run: GONE with the backend still there");
	if (s.st.rx_packets + s.st.rx_dropped > s.sent || s.st.rx_bytes > s.sent_bytes)
		die("more received than the network sent");
	if (s.st.rx_packets != packets && !s.notified)
		die("frames delivered without notifying the driver");
	/* IDLE and not starved: net.c polls the tap (level-triggered), nothing to check. */
	/* (A pass that starts starved does not look at the ring: the driver has not kicked.) */
	if (!was_starved && r == NET_IO_IDLE && s.p.rx_starved && !rx_notify_on())
		die("starved without asking for a kick");
	if (!was_starved && r == NET_IO_IDLE && s.p.rx_starved && virtq_has_work(&s.rx.q))
		die("starved with buffers available");
	check_rings();
}

static void tx_pass(uint8_t b)
{
	if (!s.tx.broken) {
		const char *why = NULL;
		uint16_t used = s.tx.q.used_idx;
		s.notified = 0;
		s.notify_q = &s.tx.q;
		enum net_io r = net_tx_run(&s.p, notify, &why);
		s.notify_q = NULL;
		if ((r == NET_IO_BROKEN) != (why != NULL))
			die("net_tx_run: BROKEN without a reason, or a reason without BROKEN");
		if (r == NET_IO_BROKEN)
			s.tx.broken = true;
		if (r == NET_IO_GONE && s.peer >= 0)
			die("net_tx_run: GONE with the backend still there");
		if (used != s.tx.q.used_idx && (!s.notified || s.notified_used != s.tx.q.used_idx))
			die("transmit chains used without notifying the driver after the last");
		if (r == NET_IO_IDLE && !s.p.tx_blocked && virtq_has_work(&s.tx.q))
			die("net_tx_run: IDLE with chains available");
		check_rings();
	}
	if (b & 1)
		check_tx_counts();
}

/* ctrl_drain() of virtio/net.c. */
static void ctrl_pass(void)
{
	struct queue *d = &s.ctrl;
	if (d->broken)
		return;
	struct iovec iov[CTRL_SEG_MAX];
	for (;;) {
		virtq_set_notify(&d->q, false);
		struct virtq_chain c;
		int r;
		while ((r = virtq_pop(&d->q, iov, CTRL_SEG_MAX, &c)) == 1) {
			if (c.nin == 0) {
				d->broken = true;
				return;
			}
			uint8_t ack = net_ctrl_command(&s.cs, &s.ops, iov, c.nout, c.out_len);
			if (ack > 1)
				die("a control ack other than OK or ERR");
			s.acks[ack]++;
			check_filter(&s.cs.filter);
			iov_from_buf(iov + c.nout, c.nin, 0, &ack, 1);
			virtq_push(&d->q, c.head, 1);
		}
		if (r == -E2BIG) {
			virtq_push(&d->q, c.head, 0);
			continue;
		}
		if (r < 0) {
			d->broken = true;
			return;
		}
		virtq_set_notify(&d->q, true);
		if (!virtq_has_work(&d->q))
			break;
	}
	virtq_should_notify(&d->q);
}

/* net_stop() then net_start(): a fresh driver, all frames accepted. */
static void reset(uint8_t mode)
{
	drain(); /* what was sent under the old mode */
	net_rx_forget(&s.p);
	s.p.tx_blocked = false;
	for (unsigned q = 0; q < 3; q++)
		enable(q);
	s.p.mode = mode_from(mode);
	memset(&s.cs.filter, 0, sizeof(s.cs.filter));
	memcpy(s.cs.filter.mac, own_mac, 6);
	s.cs.filter.promisc = true;
	s.p.filter = s.cs.filter;
}

/* ---- composites ---- */

/* The next n buffers' worth of room for len bytes: returns the first buffer's address. */
static uint64_t take_bufs(uint64_t len)
{
	uint64_t nbuf = (len + 0x7ff) / 0x800;
	if (nbuf == 0)
		nbuf = 1;
	if (s.next_buf + nbuf > NBUF)
		s.next_buf = 0;
	uint64_t a = BUF(s.next_buf);
	s.next_buf = (unsigned)((s.next_buf + nbuf) % NBUF);
	return a;
}

/* A chain of nseg descriptors over [a, a + len), the next ones of queue q's table; returns the head. */
static uint16_t chain(unsigned q, uint64_t a, uint32_t len, unsigned nseg, uint16_t flags, bool ack)
{
	struct queue *d = queue(q);
	unsigned total = nseg + ack;
	if (total > d->size) {
		total = d->size;
		if (ack && total > 1)
			nseg = total - 1;
		else
			nseg = total, ack = false;
	}
	uint16_t head = d->next_desc % d->size;
	uint32_t off = 0;
	for (unsigned k = 0; k < total; k++) {
		uint16_t i = (uint16_t)((d->next_desc + k) % d->size), next = (uint16_t)((i + 1) % d->size);
		bool last = k + 1 == total;
		if (k < nseg) {
			uint32_t seg = k + 1 == nseg ? len - off : len / nseg;
			set_desc(q, i, a + off, seg, (uint16_t)(flags | (last ? 0 : 1)), next);
			off += seg;
		} else {
			set_desc(q, i, BUF(NBUF - 1) + 0x7ff, 1, 2, 0); /* the ack byte */
		}
	}
	d->next_desc = (uint16_t)((d->next_desc + total) % d->size);
	return head;
}

static void op_rxbufs(struct input *in)
{
	unsigned n = u8(in) % 65;
	uint32_t len = (uint32_t)le(in, 2);
	uint8_t sel = u8(in);
	unsigned nseg = (sel & 0x80) ? 29 + sel % 8 : sel % 4 + 1;
	for (unsigned k = 0; k < n; k++) {
		uint64_t a = take_bufs(len);
		avail_add(0, chain(0, a, len, nseg, 2, false));
	}
	if (!(rd16(USED(0)) & 1) || s.event_idx)
		s.p.rx_starved = false; /* the kick */
}

static void op_txpkt(struct input *in)
{
	uint8_t sel = u8(in);
	unsigned nseg = (sel & 0x40) ? 125 + sel % 8 : sel % 8 + 1;
	uint32_t len = (uint32_t)le(in, 2) + ((sel & 0x80) ? 0x10000 : 0);
	uint8_t h[HDR] = {0};
	h[0] = u8(in);
	h[1] = u8(in);
	h[2] = u8(in);
	put_le(h + 4, le(in, 2), 2);
	put_le(h + 6, le(in, 2), 2);
	put_le(h + 8, le(in, 2), 2);
	uint8_t dst = u8(in);
	uint64_t a = take_bufs(HDR + (uint64_t)len);
	if (a + HDR + len > LOW_SIZE)
		return;
	uint8_t *p = guest_mem_ptr(&s.mem, a, HDR + (uint64_t)len);
	memcpy(p, h, HDR);
	for (uint32_t i = 0; i < len; i++)
		p[HDR + i] = (uint8_t)(i * 13);
	static const uint8_t macs[3][6] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
					   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
					   {0x01, 0, 0x5e, 0, 0, 1}};
	if (len >= 6)
		memcpy(p + HDR, dst < 3 ? macs[dst] : (const uint8_t[6]){0x02, 0, 0, 0, 0, dst}, 6);
	avail_add(1, chain(1, a, HDR + len, nseg, 0, false));
}

static void op_ctrlcmd(struct input *in)
{
	uint8_t cls = u8(in), cmd = u8(in);
	unsigned n = (unsigned)le(in, 2) % 1024;
	uint64_t a = take_bufs(2 + (uint64_t)n);
	uint8_t *p = guest_mem_ptr(&s.mem, a, 2 + (uint64_t)n);
	p[0] = cls;
	p[1] = cmd;
	for (unsigned i = 0; i < n; i++)
		p[2 + i] = u8(in);
	uint8_t sel = u8(in);
	avail_add(2, chain(2, a, 2 + n, sel % 3 + 1, 0, !(sel & 8)));
}

static void op_frame(struct input *in)
{
	size_t len = (size_t)le(in, 2);
	uint8_t sel = u8(in), n = u8(in);
	if (sel & 1)
		len += 0x10000;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = u8(in);
		if (i < len)
			frame[i] = c;
	}
	for (size_t i = n; i < len; i++)
		frame[i] = (uint8_t)(i * 7);
	if (len >= HDR + 6) {
		static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		static const uint8_t group[6] = {0x33, 0x33, 0, 0, 0, 1};
		if (sel & 2)
			memcpy(frame + HDR, s.cs.filter.mac, 6);
		else if (sel & 4)
			memcpy(frame + HDR, bcast, 6);
		else if (sel & 8)
			memcpy(frame + HDR, group, 6);
	}
	/* A tap has no empty frames (and an empty datagram would read as the far end closing). */
	if (s.peer < 0 || len == 0)
		return;
	/* A full socket (the device is not reading) loses the frame, as a full tap queue does. */
	if (send(s.peer, frame, len, MSG_DONTWAIT) == (ssize_t)len) {
		s.sent++;
		s.sent_bytes += len >= HDR ? len - HDR : 0;
	}
}

/* ---- one input ---- */

static void setup(const uint8_t *h)
{
	memset(&s, 0, sizeof(s));
	memset(ram, 0, MEM_SIZE);
	s.mem = (struct guest_mem){
	    .regions = {{0, LOW_SIZE, ram}, {HIGH_GPA, MEM_SIZE - LOW_SIZE, ram + LOW_SIZE}},
	    .nregions = 2,
	    .ram_size = MEM_SIZE,
	    .map = ram,
	};
	s.qlog[0] = h[1] & 15;
	s.qlog[1] = h[1] >> 4;
	s.qlog[2] = h[2] & 15;
	s.event_idx = h[2] & 0x10;
	s.indirect = h[2] & 0x20;
	for (unsigned q = 0; q < 3; q++)
		enable(q);

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		die("socketpair failed");
	/* Fixed sizes (capped by net.core.wmem_max, which does not change under us). */
	int big = 1 << 20, small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, (h[3] & 0x40) ? &small : &big, sizeof(int));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(int));
	s.peer = sv[1];

	struct net_pair *p = &s.p;
	p->fd = sv[0];
	p->active = !(h[2] & 0x40);
	p->rxq = &s.rx.q;
	p->txq = &s.tx.q;
	p->cnt = &s.st;
	p->mode = mode_from(h[0]);

	uint64_t f = VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ);
	if (h[3] & 1)
		f |= VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX);
	if (h[3] & 2)
		f |= VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR);
	if (h[3] & 4)
		f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);
	if (h[3] & 8)
		f |= VIRTIO_BIT(VIRTIO_NET_F_MQ);
	if (h[3] & 0x10)
		f |= VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
		     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
	s.ops_fail = h[3] & 0x20;
	s.cs.features = f;
	s.cs.max_pairs = (h[3] & 0x80) ? NET_MAX_QUEUES : 2;
	memcpy(s.cs.filter.mac, own_mac, 6);
	s.cs.filter.promisc = !(h[2] & 0x80);
	p->filter = s.cs.filter;
	s.ops = (struct net_ctrl_ops){cb_set_pairs, cb_set_offloads, cb_set_filter, cb_announce, NULL};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ram) {
		verbose = getenv("FUZZ_VIRTIO_NET_VERBOSE") != NULL;
		signal(SIGPIPE, SIG_IGN); /* a write to the closed far end: EPIPE, as a deleted tap's EIO */
		ram = malloc(MEM_SIZE);
		if (!ram)
			abort();
	}
	if (size < 4)
		return 0;
	setup(data);
	struct input in = {data + 4, size - 4};

	for (unsigned ops = 0; in.n && ops < MAX_OPS; ops++) {
		switch (u8(&in) % NOPS) {
		case 0: {
			/* An offset into the memory (both regions, as laid out on the host). */
			uint64_t off = le(&in, 3) % MEM_SIZE;
			uint8_t n = u8(&in);
			for (unsigned i = 0; i < n; i++) {
				uint8_t b = u8(&in);
				if (off + i < MEM_SIZE)
					ram[off + i] = b;
			}
			break;
		}
		case 1: {
			unsigned q = u8(&in) % 3, i = (unsigned)le(&in, 2);
			uint64_t a = addr(u8(&in));
			uint32_t len = (uint32_t)le(&in, 2);
			uint16_t flags = u8(&in), next = (uint16_t)le(&in, 2);
			set_desc(q, i, a, len, flags, next);
			break;
		}
		case 2: {
			unsigned q = u8(&in) % 3;
			avail_add(q, (uint16_t)le(&in, 2));
			break;
		}
		case 3:
			op_frame(&in);
			break;
		case 4:
			rx_pass(u8(&in));
			break;
		case 5:
			tx_pass(u8(&in));
			break;
		case 6:
			ctrl_pass();
			break;
		case 7:
			reset(u8(&in));
			break;
		case 8:
			op_rxbufs(&in);
			break;
		case 9:
			op_txpkt(&in);
			break;
		case 10:
			op_ctrlcmd(&in);
			break;
		case 11: {
			uint8_t b = u8(&in);
			if (b & 1)
				s.p.active = !s.p.active;
			if (b & 2)
				drain();
			if ((b & 4) && s.peer >= 0) {
				close(s.peer);
				s.peer = -1;
			}
			break;
		}
		}
	}
	/* The end: one last pass each way, then the counters must add up. */
	rx_pass(1);
	tx_pass(1);
	ctrl_pass();
	if (verbose)
		fprintf(stderr,
			"sent %llu; rx packets %llu bytes %llu dropped %llu errors %llu; tx packets %llu "
			"bytes %llu "
			"dropped %llu errors %llu; broken rx %d tx %d ctrl %d; ctrl acks ok %u err %u\n",
			(unsigned long long)s.sent, (unsigned long long)s.st.rx_packets,
			(unsigned long long)s.st.rx_bytes, (unsigned long long)s.st.rx_dropped,
			(unsigned long long)s.st.rx_errors, (unsigned long long)s.st.tx_packets,
			(unsigned long long)s.st.tx_bytes, (unsigned long long)s.st.tx_dropped,
			(unsigned long long)s.st.tx_errors, s.rx.broken, s.tx.broken, s.ctrl.broken,
			s.acks[0], s.acks[1]);
	close(s.p.fd);
	if (s.peer >= 0)
		close(s.peer);
	return 0;
}
