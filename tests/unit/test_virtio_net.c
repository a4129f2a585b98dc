/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the virtio-net data paths and control commands
 * (virtio/net_rx.c, net_tx.c, net_ctrl.c), driven through virtio/net_priv.h
 * without a PCI function or threads: a struct net_pair whose receive and
 * transmit queues are split virtqueues in a malloc'd guest memory (rings
 * written byte by byte as a driver writes them), and whose backend fd is one
 * end of a SOCK_SEQPACKET socketpair standing in for the tap (both keep frame
 * boundaries); the test reads and writes frames at the other end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/quiesce.h"
#include "common/sbuf.h"
#include "devices/pci.h"
#include "virtio/net_priv.h"
#include "virtio/virtio.h"
#include "vmm/memory.h"

#define RAM_SIZE     0x400000ULL
#define RX_DESC	     0x1000ULL
#define RX_AVAIL     0x2000ULL
#define RX_USED	     0x3000ULL
#define TX_DESC	     0x4000ULL
#define TX_AVAIL     0x5000ULL
#define TX_USED	     0x6000ULL
#define RXBUF(i)     (0x100000ULL + (uint64_t)(i)*0x800ULL) /* 2 KiB apart: a 1526-byte buffer each */
#define TXBUF(i)     (0x200000ULL + (uint64_t)(i)*0x1000ULL)
#define BIG_GPA	     0x300000ULL /* room for one frame of more than 64 KiB */
#define QSIZE	     256
#define NEXT	     1
#define WRITE	     2
#define HDR	     NET_VNET_HDR_LEN
#define BUF_LEN	     1526 /* what Linux posts without mergeable buffers: 12 + 1514 */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One queue as the driver sees it. */
struct drv {
	uint64_t desc, avail, used;
	uint16_t size, avail_idx, used_seen;
};

struct fx {
	struct guest_mem mem;
	uint8_t *ram;
	struct drv rx, tx;
	struct virtq rxq, txq;
	struct virtio_net_stats st;
	struct net_filter filter;
	struct net_pair p;
	int peer; /* the tap's far side */
};

static unsigned notified;
static struct net_pair *notify_expect;
static uint8_t big[HDR + NET_MAX_GSO_LEN + 64];

static const uint8_t own_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t other_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};

static void notify(struct net_pair *p)
{
	assert_ptr_equal(p, notify_expect);
	notified++;
}

/* ---- the driver's side, little-endian byte by byte ---- */

static void put(struct fx *f, uint64_t gpa, uint64_t v, unsigned n)
{
	uint8_t b[8];
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(guest_mem_write(&f->mem, gpa, b, n), 0);
}

static uint64_t get(struct fx *f, uint64_t gpa, unsigned n)
{
	uint8_t b[8];
	assert_int_equal(guest_mem_read(&f->mem, gpa, b, n), 0);
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
	uint8_t *p = guest_mem_ptr(&f->mem, gpa, 1);
	assert_non_null(p);
	return p;
}

static void desc(struct fx *f, struct drv *d, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	put(f, d->desc + 16ULL * i, addr, 8);
	put(f, d->desc + 16ULL * i + 8, len, 4);
	put(f, d->desc + 16ULL * i + 12, flags, 2);
	put(f, d->desc + 16ULL * i + 14, next, 2);
}

static void avail_add(struct fx *f, struct drv *d, uint16_t head)
{
	put(f, d->avail + 4 + 2ULL * (d->avail_idx % d->size), head, 2);
	put(f, d->avail + 2, ++d->avail_idx, 2);
}

static uint16_t used_idx(struct fx *f, struct drv *d)
{
	return (uint16_t)get(f, d->used + 2, 2);
}

/* The next used element the driver has not looked at must be (id, len). */
static void expect_used(struct fx *f, struct drv *d, uint32_t id, uint32_t len)
{
	assert_int_not_equal(used_idx(f, d), d->used_seen);
	uint64_t e = d->used + 4 + 8ULL * (d->used_seen % d->size);
	assert_int_equal(get(f, e, 4), id);
	assert_int_equal(get(f, e + 4, 4), len);
	d->used_seen++;
}

static void expect_no_used(struct fx *f, struct drv *d)
{
	assert_int_equal(used_idx(f, d), d->used_seen);
}

static void enable(struct fx *f, struct drv *d, struct virtq *q, uint16_t size)
{
	struct virtq_layout l = {size, d->desc, d->avail, d->used, false, false};
	memset(hva(f, d->desc), 0, 0x3000); /* the three rings */
	d->size = size;
	d->avail_idx = d->used_seen = 0;
	assert_int_equal(virtq_enable(q, &f->mem, &l), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->ram = calloc(1, RAM_SIZE);
	assert_non_null(f->ram);
	f->mem.regions[0] = (struct guest_mem_region){0, RAM_SIZE, f->ram};
	f->mem.nregions = 1;
	f->mem.ram_size = RAM_SIZE;
	f->mem.map = f->ram;
	f->rx = (struct drv){.desc = RX_DESC, .avail = RX_AVAIL, .used = RX_USED};
	f->tx = (struct drv){.desc = TX_DESC, .avail = TX_AVAIL, .used = TX_USED};
	enable(f, &f->rx, &f->rxq, QSIZE);
	enable(f, &f->tx, &f->txq, QSIZE);

	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	f->peer = sv[1];
	memcpy(f->filter.mac, own_mac, 6);
	f->filter.promisc = true;
	struct net_pair *p = &f->p;
	p->fd = sv[0];
	p->active = true;
	p->rxq = &f->rxq;
	p->txq = &f->txq;
	p->cnt = &f->st;
	/* Without mergeable buffers or GSO, as mode_for() in net.c sets it for a 1500-byte MTU. */
	p->mode = (struct net_mode){.rx_need = HDR + NET_ETH_HLEN + 4 + 1500};
	notified = 0;
	notify_expect = p;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close(f->p.fd);
	if (f->peer >= 0)
		close(f->peer);
	free(f->mem.dirty_bitmap);
	free(f->ram);
	free(f);
	return 0;
}

/* ---- frames ---- */

/* A header (flags byte hflags) and a frame of flen bytes to dst; returns the bytes written to b. */
static size_t make_frame(uint8_t *b, uint8_t hflags, size_t flen, const uint8_t dst[6], uint8_t seed)
{
	memset(b, 0, HDR);
	b[0] = hflags;
	for (size_t i = 0; i < flen; i++)
		b[HDR + i] = (uint8_t)(seed + i * 7 + (i >> 8));
	if (flen >= 6)
		memcpy(b + HDR, dst, 6);
	if (flen >= 12)
		memcpy(b + HDR + 6, other_mac, 6);
	return HDR + flen;
}

static void peer_send(struct fx *f, const uint8_t *b, size_t len)
{
	assert_int_equal(send(f->peer, b, len, MSG_DONTWAIT), (ssize_t)len);
}

/* Sends a frame of flen bytes (header excluded) to dst from the tap's side into b. */
static size_t peer_frame(struct fx *f, uint8_t *b, uint8_t hflags, size_t flen, const uint8_t dst[6],
			 uint8_t seed)
{
	size_t n = make_frame(b, hflags, flen, dst, seed);
	peer_send(f, b, n);
	return n;
}

/* Nothing (more) was written to the tap. */
static void expect_peer_empty(struct fx *f)
{
	uint8_t b[16];
	errno = 0;
	assert_int_equal(recv(f->peer, b, sizeof(b), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

static void expect_peer_frame(struct fx *f, const uint8_t *want, size_t len)
{
	uint8_t *b = malloc(len + 64);
	assert_non_null(b);
	assert_int_equal(recv(f->peer, b, len + 64, MSG_DONTWAIT), (ssize_t)len);
	assert_memory_equal(b, want, len);
	free(b);
}

/* The device has nothing queued in its fd. */
static void expect_fd_empty(struct fx *f)
{
	uint8_t b[16];
	errno = 0;
	assert_int_equal(recv(f->p.fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK), -1);
	assert_int_equal(errno, EAGAIN);
}

/*
 * The driver's kick after adding receive buffers, as net.c handles it: a
 * starved pair has asked for one (used->flags without NO_NOTIFY), and the
 * kick clears rx_starved.
 */
static void rx_kick(struct fx *f)
{
	if (f->p.rx_starved)
		assert_int_equal(get(f, RX_USED, 2), 0);
	if (!(get(f, RX_USED, 2) & 1))
		f->p.rx_starved = false;
}

/* One receive chain of one writable descriptor i at RXBUF(i), without the kick. */
static void post_rx_quiet(struct fx *f, unsigned i, uint32_t len)
{
	memset(hva(f, RXBUF(i)), 0xcc, len);
	desc(f, &f->rx, i, RXBUF(i), len, WRITE, 0);
	avail_add(f, &f->rx, (uint16_t)i);
}

static void post_rx(struct fx *f, unsigned i, uint32_t len)
{
	post_rx_quiet(f, i, len);
	rx_kick(f);
}

/* One transmit chain of one readable descriptor i holding b[0 .. len) at TXBUF(i). */
static void post_tx(struct fx *f, unsigned i, const uint8_t *b, uint32_t len)
{
	memcpy(hva(f, TXBUF(i)), b, len);
	desc(f, &f->tx, i, TXBUF(i), len, 0, 0);
	avail_add(f, &f->tx, (uint16_t)i);
}

static enum net_io rx_run(struct fx *f)
{
	const char *why = NULL;
	enum net_io r = net_rx_run(&f->p, &f->filter, notify, &why);
	assert_true((r == NET_IO_BROKEN) == (why != NULL));
	return r;
}

static enum net_io tx_run(struct fx *f)
{
	const char *why = NULL;
	enum net_io r = net_tx_run(&f->p, notify, &why);
	assert_true((r == NET_IO_BROKEN) == (why != NULL));
	return r;
}

/* ---- transmit ---- */

static void test_tx_frame(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	make_frame(b, 0, 60, other_mac, 1);
	/* Header, then the frame in two pieces, scattered over the table. */
	memcpy(hva(f, TXBUF(0)), b, HDR);
	memcpy(hva(f, TXBUF(1)), b + HDR, 20);
	memcpy(hva(f, TXBUF(2)), b + HDR + 20, 40);
	desc(f, &f->tx, 5, TXBUF(0), HDR, NEXT, 9);
	desc(f, &f->tx, 9, TXBUF(1), 20, NEXT, 2);
	desc(f, &f->tx, 2, TXBUF(2), 40, 0, 0);
	avail_add(f, &f->tx, 5);

	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_peer_frame(f, b, sizeof(b));
	expect_peer_empty(f);
	expect_used(f, &f->tx, 5, 0);
	expect_no_used(f, &f->tx);
	assert_int_equal(f->st.tx_packets, 1);
	assert_int_equal(f->st.tx_bytes, 60);
	assert_int_equal(f->st.tx_errors + f->st.tx_dropped, 0);
	assert_int_equal(notified, 1);
	assert_false(f->p.tx_blocked);
	/* Idle again: notifications are back on (used->flags has no NO_NOTIFY). */
	assert_int_equal(get(f, TX_USED, 2), 0);

	/* Nothing to do: no notification. */
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_int_equal(notified, 1);

	/* Several frames in one pass, one notification. */
	for (unsigned i = 0; i < 3; i++) {
		make_frame(b, 0, 60, other_mac, (uint8_t)(10 + i));
		post_tx(f, 10 + i, b, sizeof(b));
	}
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	for (unsigned i = 0; i < 3; i++) {
		make_frame(b, 0, 60, other_mac, (uint8_t)(10 + i));
		expect_peer_frame(f, b, sizeof(b));
		expect_used(f, &f->tx, 10 + i, 0);
	}
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_packets, 4);
	assert_int_equal(f->st.tx_bytes, 240);
	assert_int_equal(notified, 2);
}

/* The chain just posted at head must be given back unsent and counted as an error. */
static void expect_tx_error(struct fx *f, uint16_t head)
{
	uint64_t errors = f->st.tx_errors, packets = f->st.tx_packets;
	unsigned calls = notified;
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_used(f, &f->tx, head, 0);
	expect_no_used(f, &f->tx);
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_errors, errors + 1);
	assert_int_equal(f->st.tx_packets, packets);
	assert_int_equal(notified, calls + 1);
}

static void expect_tx_sent(struct fx *f, uint16_t head, const uint8_t *b, size_t len)
{
	uint64_t packets = f->st.tx_packets, errors = f->st.tx_errors;
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_used(f, &f->tx, head, 0);
	expect_peer_frame(f, b, len);
	assert_int_equal(f->st.tx_packets, packets + 1);
	assert_int_equal(f->st.tx_errors, errors);
}

/* A GSO TCPv4 header: NEEDS_CSUM, hdr_len 54, gso_size 1448, checksum at 34 + 16. */
static void gso_hdr(uint8_t *b, uint8_t gso, uint16_t gso_size)
{
	b[0] = NET_HDR_F_NEEDS_CSUM;
	b[1] = gso;
	b[2] = 54;
	b[3] = 0;
	b[4] = (uint8_t)gso_size;
	b[5] = (uint8_t)(gso_size >> 8);
	b[6] = 34;
	b[7] = 0;
	b[8] = 16;
	b[9] = 0;
}

static void test_tx_bad_frames(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 200];
	uint16_t head = 0;

	/* A writable descriptor after the frame. */
	make_frame(b, 0, 60, other_mac, 1);
	memcpy(hva(f, TXBUF(head)), b, HDR + 60);
	desc(f, &f->tx, head, TXBUF(head), HDR + 60, NEXT, 100);
	desc(f, &f->tx, 100, TXBUF(100), 16, WRITE, 0);
	avail_add(f, &f->tx, head);
	expect_tx_error(f, head++);

	/* Shorter than an Ethernet header, and just long enough. */
	make_frame(b, 0, 13, other_mac, 2);
	post_tx(f, head, b, HDR + 13);
	expect_tx_error(f, head++);
	make_frame(b, 0, 14, other_mac, 2);
	post_tx(f, head, b, HDR + 14);
	expect_tx_sent(f, head++, b, HDR + 14);

	/* Longer than any GSO frame, and just short enough (both in one descriptor). */
	make_frame(big, 0, NET_MAX_GSO_LEN + 1, other_mac, 3);
	memcpy(hva(f, BIG_GPA), big, HDR + NET_MAX_GSO_LEN + 1);
	desc(f, &f->tx, head, BIG_GPA, HDR + NET_MAX_GSO_LEN + 1, 0, 0);
	avail_add(f, &f->tx, head);
	expect_tx_error(f, head++);
	desc(f, &f->tx, head, BIG_GPA, HDR + NET_MAX_GSO_LEN, 0, 0);
	avail_add(f, &f->tx, head);
	expect_tx_sent(f, head++, big, HDR + NET_MAX_GSO_LEN);

	/* DATA_VALID is the device's to set. */
	make_frame(b, NET_HDR_F_DATA_VALID, 60, other_mac, 4);
	post_tx(f, head, b, HDR + 60);
	expect_tx_error(f, head++);

	/* NEEDS_CSUM without CSUM negotiated. */
	make_frame(b, NET_HDR_F_NEEDS_CSUM, 60, other_mac, 5);
	b[6] = 34;
	b[8] = 16;
	post_tx(f, head, b, HDR + 60);
	expect_tx_error(f, head++);

	/* With CSUM: the checksum field must lie inside the frame. */
	f->p.mode.host_csum = true;
	post_tx(f, head, b, HDR + 60);
	expect_tx_sent(f, head++, b, HDR + 60);
	b[6] = 50;
	b[8] = 9; /* 50 + 9 + 2 > 60 */
	post_tx(f, head, b, HDR + 60);
	expect_tx_error(f, head++);
	b[8] = 8; /* the last two bytes */
	post_tx(f, head, b, HDR + 60);
	expect_tx_sent(f, head++, b, HDR + 60);
	b[6] = 0xff;
	b[7] = 0xff;
	b[8] = 0xff;
	b[9] = 0xff;
	post_tx(f, head, b, HDR + 60);
	expect_tx_error(f, head++);

	/* GSO TCPv4 without HOST_TSO4, then with it; gso_size 0; ECN without HOST_ECN; UDP without UFO. */
	make_frame(b, 0, 200, other_mac, 6);
	gso_hdr(b, NET_GSO_TCPV4, 1448);
	post_tx(f, head, b, HDR + 200);
	expect_tx_error(f, head++);
	f->p.mode.host_tso4 = true;
	post_tx(f, head, b, HDR + 200);
	expect_tx_sent(f, head++, b, HDR + 200);
	gso_hdr(b, NET_GSO_TCPV4, 0);
	post_tx(f, head, b, HDR + 200);
	expect_tx_error(f, head++);
	gso_hdr(b, NET_GSO_TCPV4 | NET_GSO_ECN, 1448);
	post_tx(f, head, b, HDR + 200);
	expect_tx_error(f, head++);
	gso_hdr(b, NET_GSO_UDP, 1448);
	post_tx(f, head, b, HDR + 200);
	expect_tx_error(f, head++);
	/* GSO without NEEDS_CSUM. */
	gso_hdr(b, NET_GSO_TCPV4, 1448);
	b[0] = 0;
	post_tx(f, head, b, HDR + 200);
	expect_tx_error(f, head++);

	assert_int_equal(f->st.tx_errors, 12);
	assert_int_equal(f->st.tx_packets, 5);
	assert_int_equal(f->st.tx_dropped, 0);

	/* A malformed chain: the head is outside the table. Nothing is taken, twice. */
	avail_add(f, &f->tx, QSIZE);
	const char *why = NULL;
	assert_int_equal(net_tx_run(&f->p, notify, &why), NET_IO_BROKEN);
	assert_non_null(why);
	why = NULL;
	assert_int_equal(net_tx_run(&f->p, notify, &why), NET_IO_BROKEN);
	assert_non_null(why);
	expect_no_used(f, &f->tx);
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_errors, 12);

	/* A good frame before the broken chain is still sent. */
	enable(f, &f->tx, &f->txq, QSIZE);
	make_frame(b, 0, 60, other_mac, 7);
	post_tx(f, 0, b, HDR + 60);
	desc(f, &f->tx, 1, TXBUF(1), HDR + 60, NEXT, QSIZE + 3);
	avail_add(f, &f->tx, 1);
	notified = 0;
	assert_int_equal(tx_run(f), NET_IO_BROKEN);
	expect_used(f, &f->tx, 0, 0);
	expect_no_used(f, &f->tx);
	expect_peer_frame(f, b, HDR + 60);
	assert_int_equal(notified, 1);
}

static void test_tx_too_many_segments(void **state)
{
	struct fx *f = *state;
	/* NET_TX_SEG_MAX + 1 descriptors: well formed, but more than the device maps. */
	for (unsigned i = 0; i <= NET_TX_SEG_MAX; i++)
		desc(f, &f->tx, i, TXBUF(0) + i, 1, i < NET_TX_SEG_MAX ? NEXT : 0, (uint16_t)(i + 1));
	avail_add(f, &f->tx, 0);
	uint8_t b[HDR + 60];
	make_frame(b, 0, 60, other_mac, 1);
	post_tx(f, 200, b, sizeof(b));
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_used(f, &f->tx, 0, 0);
	expect_used(f, &f->tx, 200, 0);
	expect_peer_frame(f, b, sizeof(b));
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_errors, 1);
	assert_int_equal(f->st.tx_packets, 1);

	/* Exactly NET_TX_SEG_MAX segments is fine: 12 bytes of header, 116 of frame. */
	memset(hva(f, TXBUF(0)), 0, HDR);
	for (unsigned i = 0; i < NET_TX_SEG_MAX; i++)
		desc(f, &f->tx, i, TXBUF(0) + i, 1, i + 1 < NET_TX_SEG_MAX ? NEXT : 0, (uint16_t)(i + 1));
	avail_add(f, &f->tx, 0);
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_used(f, &f->tx, 0, 0);
	expect_peer_frame(f, hva(f, TXBUF(0)), NET_TX_SEG_MAX);
	assert_int_equal(f->st.tx_packets, 2);
	assert_int_equal(f->st.tx_bytes, 60 + NET_TX_SEG_MAX - HDR);
}

static void test_tx_backpressure(void **state)
{
	struct fx *f = *state;
	int small = 4096;
	assert_int_equal(setsockopt(f->p.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	/* Fill the "tap" until it refuses. */
	uint8_t b[HDR + 60];
	make_frame(b, 0, 60, bcast, 0xee);
	unsigned queued = 0;
	for (;;) {
		ssize_t n = send(f->p.fd, b, sizeof(b), MSG_DONTWAIT);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		assert_int_equal(n, sizeof(b));
		queued++;
		assert_true(queued < 10000);
	}
	assert_true(queued > 0);

	uint8_t fr[HDR + 60];
	make_frame(fr, 0, 60, other_mac, 1);
	post_tx(f, 3, fr, sizeof(fr));
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_true(f->p.tx_blocked);
	expect_no_used(f, &f->tx);
	assert_int_equal(f->st.tx_packets + f->st.tx_errors + f->st.tx_dropped, 0);
	assert_int_equal(notified, 0);
	/* Still full. */
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_true(f->p.tx_blocked);
	expect_no_used(f, &f->tx);
	/* A hostile guest rewrites the header it had sent (flags the device must refuse) while
	 * the chain waits: what goes out later is the header as checked. */
	memset(hva(f, TXBUF(3)), 0xff, HDR);

	/* The tap drains; the frame goes out, and the next one too. */
	for (unsigned i = 0; i < queued; i++)
		expect_peer_frame(f, b, sizeof(b));
	expect_peer_empty(f);
	uint8_t fr2[HDR + 60];
	make_frame(fr2, 0, 60, other_mac, 2);
	post_tx(f, 4, fr2, sizeof(fr2));
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_false(f->p.tx_blocked);
	expect_used(f, &f->tx, 3, 0);
	expect_used(f, &f->tx, 4, 0);
	expect_peer_frame(f, fr, sizeof(fr));
	expect_peer_frame(f, fr2, sizeof(fr2));
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_packets, 2);
	assert_int_equal(f->st.tx_bytes, 120);
	assert_int_equal(notified, 1);
}

static void test_tx_inactive(void **state)
{
	struct fx *f = *state;
	f->p.active = false;
	uint8_t b[HDR + 60];
	make_frame(b, 0, 60, other_mac, 1);
	post_tx(f, 0, b, sizeof(b));
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	expect_used(f, &f->tx, 0, 0);
	expect_peer_empty(f);
	assert_int_equal(f->st.tx_dropped, 1);
	assert_int_equal(f->st.tx_packets + f->st.tx_errors, 0);
}

static void test_tx_batch(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	make_frame(b, 0, 60, other_mac, 1);
	for (unsigned i = 0; i < NET_BATCH + 6; i++)
		post_tx(f, i, b, sizeof(b));
	/* The driver hears every 8 chains, and of the rest at the end of a pass. */
	assert_int_equal(tx_run(f), NET_IO_MORE);
	assert_int_equal(used_idx(f, &f->tx), NET_BATCH);
	assert_int_equal(notified, NET_BATCH / 8);
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_int_equal(used_idx(f, &f->tx), NET_BATCH + 6);
	assert_int_equal(notified, NET_BATCH / 8 + 1);
	for (unsigned i = 0; i < NET_BATCH + 6; i++) {
		expect_used(f, &f->tx, i, 0);
		expect_peer_frame(f, b, sizeof(b));
	}
	expect_peer_empty(f);
}

static void test_tx_check_hdr(void **state)
{
	(void)state;
	struct net_mode none = {0}, all = {.host_csum = true,
					   .host_tso4 = true,
					   .host_tso6 = true,
					   .host_ecn = true,
					   .host_ufo = true};
	uint8_t h[HDR] = {0};
	assert_int_equal(net_tx_check_hdr(&none, h, 60), 0);
	h[0] = NET_HDR_F_DATA_VALID;
	assert_int_not_equal(net_tx_check_hdr(&all, h, 60), 0);
	h[0] = 4; /* RSC_INFO */
	assert_int_not_equal(net_tx_check_hdr(&all, h, 60), 0);

	static const struct {
		uint8_t gso;
		bool ok_all;
	} types[] = {
	    {NET_GSO_TCPV4, true},
	    {NET_GSO_TCPV6, true},
	    {NET_GSO_UDP, true},
	    {NET_GSO_TCPV4 | NET_GSO_ECN, true},
	    {2, false},
	    {5, false},
	    {0x7f, false},
	    {NET_GSO_ECN, false},
	};
	for (size_t i = 0; i < ARRAY_LEN(types); i++) {
		gso_hdr(h, types[i].gso, 1448);
		assert_int_equal(net_tx_check_hdr(&all, h, 200) == 0, types[i].ok_all);
		assert_int_not_equal(net_tx_check_hdr(&none, h, 200), 0);
	}
	/* Each GSO type needs its own feature, ECN one more. */
	static const uint8_t gso_types[] = {NET_GSO_TCPV4, NET_GSO_TCPV6, NET_GSO_UDP};
	for (unsigned feature = 0; feature < 3; feature++) {
		struct net_mode m = {.host_csum = true,
				     .host_tso4 = feature == 0,
				     .host_tso6 = feature == 1,
				     .host_ufo = feature == 2};
		for (unsigned t = 0; t < 3; t++) {
			gso_hdr(h, gso_types[t], 1448);
			assert_int_equal(net_tx_check_hdr(&m, h, 200) == 0, t == feature);
			gso_hdr(h, gso_types[t] | NET_GSO_ECN, 1448);
			assert_int_not_equal(net_tx_check_hdr(&m, h, 200), 0);
			m.host_ecn = true;
			assert_int_equal(net_tx_check_hdr(&m, h, 200) == 0, t == feature);
			m.host_ecn = false;
		}
	}
	/* hdr_len within the frame. */
	gso_hdr(h, NET_GSO_TCPV4, 1448);
	assert_int_equal(net_tx_check_hdr(&all, h, 54), 0);
	assert_int_not_equal(net_tx_check_hdr(&all, h, 53), 0);
	/* The checksum field's two bytes within the frame: start 34 + offset 16 + 2 = 52. */
	h[0] = NET_HDR_F_NEEDS_CSUM;
	h[1] = NET_GSO_NONE;
	assert_int_equal(net_tx_check_hdr(&all, h, 52), 0);
	assert_int_not_equal(net_tx_check_hdr(&all, h, 51), 0);
}

/* ---- receive ---- */

static void test_rx_frame(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	post_rx(f, 7, BUF_LEN);
	/* The backend sets DATA_VALID and garbage where num_buffers goes. */
	make_frame(b, NET_HDR_F_DATA_VALID, 60, own_mac, 1);
	b[NET_HDR_NUM_BUFFERS] = 0xee;
	b[NET_HDR_NUM_BUFFERS + 1] = 0xee;
	peer_send(f, b, sizeof(b));
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 7, HDR + 60);
	expect_no_used(f, &f->rx);
	const uint8_t *g = hva(f, RXBUF(7));
	assert_int_equal(g[0], 0); /* no GUEST_CSUM: flags cleared */
	assert_memory_equal(g + 1, b + 1, NET_HDR_NUM_BUFFERS - 1);
	assert_int_equal(g[NET_HDR_NUM_BUFFERS], 1);
	assert_int_equal(g[NET_HDR_NUM_BUFFERS + 1], 0);
	assert_memory_equal(g + HDR, b + HDR, 60);
	assert_int_equal(g[HDR + 60], 0xcc); /* nothing past the frame */
	assert_int_equal(f->st.rx_packets, 1);
	assert_int_equal(f->st.rx_bytes, 60);
	assert_int_equal(f->st.rx_dropped + f->st.rx_errors, 0);
	assert_int_equal(notified, 1);
	expect_fd_empty(f);

	/* With GUEST_CSUM the flags stay. */
	f->p.mode.guest_csum = true;
	post_rx(f, 8, BUF_LEN);
	make_frame(b, NET_HDR_F_DATA_VALID, 60, own_mac, 2);
	peer_send(f, b, sizeof(b));
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 8, HDR + 60);
	g = hva(f, RXBUF(8));
	assert_int_equal(g[0], NET_HDR_F_DATA_VALID);
	assert_int_equal(g[NET_HDR_NUM_BUFFERS], 1);
	assert_memory_equal(g + HDR, b + HDR, 60);
	assert_int_equal(f->st.rx_packets, 2);
	assert_int_equal(notified, 2);

	/* A frame over a chain of three descriptors, header split from the data. */
	desc(f, &f->rx, 20, RXBUF(20), 5, WRITE | NEXT, 21);
	desc(f, &f->rx, 21, RXBUF(21), 100, WRITE | NEXT, 22);
	desc(f, &f->rx, 22, RXBUF(22), 1500, WRITE, 0);
	avail_add(f, &f->rx, 20);
	rx_kick(f);
	uint8_t b2[HDR + 300];
	make_frame(b2, 0, 300, bcast, 3);
	peer_send(f, b2, sizeof(b2));
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 20, HDR + 300);
	uint8_t got[HDR + 300];
	memcpy(got, hva(f, RXBUF(20)), 5);
	memcpy(got + 5, hva(f, RXBUF(21)), 100);
	memcpy(got + 105, hva(f, RXBUF(22)), sizeof(got) - 105);
	assert_int_equal(got[NET_HDR_NUM_BUFFERS], 1);
	got[NET_HDR_NUM_BUFFERS] = 0;
	assert_memory_equal(got, b2, sizeof(b2));
}

/* Reads the len bytes the device wrote into buffers first.. (RXBUF, BUF_LEN each) into out. */
static void gather_rx(struct fx *f, unsigned first, uint8_t *out, size_t len)
{
	for (unsigned i = first; len; i++) {
		size_t k = len < BUF_LEN ? len : BUF_LEN;
		memcpy(out, hva(f, RXBUF(i)), k);
		out += k;
		len -= k;
	}
}

static void test_rx_mergeable(void **state)
{
	struct fx *f = *state;
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	/* Linux posts the whole ring; the device holds only as many as a 64 KiB frame needs. */
	const unsigned need = (HDR + NET_MAX_GSO_LEN + BUF_LEN - 1) / BUF_LEN;
	assert_true(need < NET_RX_PENDING);
	for (unsigned i = 0; i < NET_RX_PENDING; i++)
		post_rx(f, i, BUF_LEN);

	uint8_t *a = malloc(HDR + 4000), *got = malloc(HDR + 4000);
	assert_non_null(a);
	assert_non_null(got);
	uint8_t b[HDR + 100];
	peer_frame(f, a, 0, 4000, own_mac, 1);
	peer_frame(f, b, 0, 100, own_mac, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, BUF_LEN);
	expect_used(f, &f->rx, 1, BUF_LEN);
	expect_used(f, &f->rx, 2, HDR + 4000 - 2 * BUF_LEN);
	expect_used(f, &f->rx, 3, HDR + 100);
	expect_no_used(f, &f->rx);
	gather_rx(f, 0, got, HDR + 4000);
	assert_int_equal(got[NET_HDR_NUM_BUFFERS], 3);
	assert_int_equal(got[NET_HDR_NUM_BUFFERS + 1], 0);
	got[NET_HDR_NUM_BUFFERS] = 0;
	assert_memory_equal(got, a, HDR + 4000);
	gather_rx(f, 3, got, HDR + 100);
	assert_int_equal(got[NET_HDR_NUM_BUFFERS], 1);
	got[NET_HDR_NUM_BUFFERS] = 0;
	assert_memory_equal(got, b, HDR + 100);
	assert_int_equal(f->st.rx_packets, 2);
	assert_int_equal(f->st.rx_bytes, 4100);
	assert_int_equal(notified, 1);
	/* Enough chains are held for the largest frame, and no more were taken from the ring. */
	assert_int_equal(f->p.rx_count, need);
	assert_int_equal(f->rxq.last_avail, 4 + need);

	/* The next frame starts at the chains still ahead, in order. */
	peer_frame(f, b, 0, 100, own_mac, 3);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 4, HDR + 100);
	assert_int_equal(hva(f, RXBUF(4))[NET_HDR_NUM_BUFFERS], 1);
	assert_memory_equal(hva(f, RXBUF(4)) + HDR, b + HDR, 100);

	/* A 64 KiB GSO frame takes all it needs; the remainder is in the last buffer. */
	size_t n = make_frame(big, 0, NET_MAX_GSO_LEN, own_mac, 4);
	peer_send(f, big, n);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	const unsigned spans = (unsigned)((n + BUF_LEN - 1) / BUF_LEN);
	for (unsigned k = 0; k < spans; k++)
		expect_used(f, &f->rx, 5 + k,
			    k + 1 < spans ? BUF_LEN : (uint32_t)(n - (spans - 1) * BUF_LEN));
	expect_no_used(f, &f->rx);
	assert_int_equal(hva(f, RXBUF(5))[NET_HDR_NUM_BUFFERS], spans);
	assert_memory_equal(hva(f, RXBUF(5 + spans - 1)), big + (spans - 1) * BUF_LEN,
			    n - (spans - 1) * BUF_LEN);
	assert_int_equal(f->st.rx_packets, 4);
	assert_int_equal(f->st.rx_dropped, 0);
	free(a);
	free(got);
}

/* Small buffers: the device holds at most NET_RX_PENDING chains, even if a 64 KiB frame would need more. */
static void test_rx_mergeable_pending_limit(void **state)
{
	struct fx *f = *state;
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	const uint32_t len = 512;
	for (unsigned i = 0; i < 100; i++)
		post_rx(f, i, len);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_int_equal(f->p.rx_count, NET_RX_PENDING);
	assert_int_equal(f->rxq.last_avail, NET_RX_PENDING);

	/* A frame over 59 of them; the rest of the ring is taken up to the limit again. */
	size_t n = make_frame(big, 0, 30000, own_mac, 1);
	peer_send(f, big, n);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	const unsigned spans = (unsigned)((n + len - 1) / len);
	assert_int_equal(spans, 59);
	for (unsigned k = 0; k < spans; k++)
		expect_used(f, &f->rx, k, k + 1 < spans ? len : (uint32_t)(n - (spans - 1) * len));
	expect_no_used(f, &f->rx);
	assert_int_equal(hva(f, RXBUF(0))[NET_HDR_NUM_BUFFERS], spans);
	for (unsigned k = 1; k < spans; k++)
		assert_memory_equal(hva(f, RXBUF(k)), big + k * len, k + 1 < spans ? len : n - k * len);
	assert_int_equal(f->rxq.last_avail, 100);
	assert_int_equal(f->p.rx_count, 100 - spans);

	/*
	 * One byte more than the 41 chains held, with the ring dry: the frame waits in
	 * the stash (nothing dropped) and the next one in the backend, until the driver
	 * posts more buffers; then both arrive whole.
	 */
	size_t na = make_frame(big, 0, (100 - spans) * len - HDR + 1, own_mac, 2);
	peer_send(f, big, na);
	uint8_t *a = malloc(na);
	assert_non_null(a);
	memcpy(a, big, na);
	size_t nb = make_frame(big, 0, 1000, own_mac, 3);
	peer_send(f, big, nb);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_true(f->p.rx_starved);
	assert_int_equal(f->st.rx_dropped, 0);
	expect_no_used(f, &f->rx);
	for (unsigned i = 100; i < 104; i++)
		post_rx(f, i, len);
	assert_false(f->p.rx_starved);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	for (unsigned k = 0; k < 42; k++)
		expect_used(f, &f->rx, spans + k, k < 41 ? len : 1);
	expect_used(f, &f->rx, 101, len);
	expect_used(f, &f->rx, 102, (uint32_t)(nb - len));
	expect_no_used(f, &f->rx);
	assert_int_equal(f->st.rx_dropped, 0);
	assert_int_equal(f->st.rx_packets, 3);
	assert_int_equal(hva(f, RXBUF(spans))[NET_HDR_NUM_BUFFERS], 42);
	assert_memory_equal(hva(f, RXBUF(spans)) + HDR, a + HDR, len - HDR);
	for (unsigned k = 1; k < 41; k++)
		assert_memory_equal(hva(f, RXBUF(spans + k)), a + k * len, len);
	assert_int_equal(hva(f, RXBUF(100))[0], a[na - 1]);
	assert_int_equal(hva(f, RXBUF(101))[NET_HDR_NUM_BUFFERS], 2);
	assert_memory_equal(hva(f, RXBUF(102)), big + len, nb - len);
	free(a);
	expect_fd_empty(f);
}

/* A small ring: the device takes all it has (fewer than a 64 KiB frame needs) and makes do. */
static void test_rx_mergeable_small_ring(void **state)
{
	struct fx *f = *state;
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	enable(f, &f->rx, &f->rxq, 16);
	for (unsigned i = 0; i < 16; i++)
		post_rx(f, i, BUF_LEN);
	size_t n = make_frame(big, 0, 20000, own_mac, 1);
	peer_send(f, big, n);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	const unsigned spans = (unsigned)((n + BUF_LEN - 1) / BUF_LEN);
	assert_int_equal(spans, 14);
	for (unsigned k = 0; k < spans; k++)
		expect_used(f, &f->rx, k, k + 1 < spans ? BUF_LEN : (uint32_t)(n - (spans - 1) * BUF_LEN));
	expect_no_used(f, &f->rx);
	uint8_t *got = malloc(n);
	assert_non_null(got);
	gather_rx(f, 0, got, n);
	assert_int_equal(got[NET_HDR_NUM_BUFFERS], 14);
	got[NET_HDR_NUM_BUFFERS] = 0;
	assert_memory_equal(got, big, n);
	free(got);
	assert_int_equal(f->p.rx_count, 2);
	/* The ring is empty now: notifications are on, so that the driver kicks when it refills. */
	assert_int_equal(get(f, RX_USED, 2), 0);

	/* Two buffers left: a small frame still fits in them. */
	uint8_t b[HDR + 2000];
	peer_frame(f, b, 0, 2000, own_mac, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 14, BUF_LEN);
	expect_used(f, &f->rx, 15, HDR + 2000 - BUF_LEN);
	assert_int_equal(hva(f, RXBUF(14))[NET_HDR_NUM_BUFFERS], 2);
	assert_int_equal(f->st.rx_packets, 2);

	/* None left: the next frame waits in the backend. */
	peer_frame(f, b, 0, 60, own_mac, 3);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_true(f->p.rx_starved);
	expect_no_used(f, &f->rx);
	assert_int_equal(recv(f->p.fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK), HDR + 60);
}

static void test_rx_oversized(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 2 * BUF_LEN];
	post_rx(f, 0, BUF_LEN);
	peer_frame(f, b, 0, BUF_LEN - HDR + 1, own_mac, 1);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_no_used(f, &f->rx);
	assert_int_equal(f->st.rx_dropped, 1);
	assert_int_equal(f->st.rx_packets, 0);
	expect_fd_empty(f);

	/* Exactly the buffer: delivered in the same chain. */
	peer_frame(f, b, 0, BUF_LEN - HDR, own_mac, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, BUF_LEN);
	assert_memory_equal(hva(f, RXBUF(0)) + HDR, b + HDR, BUF_LEN - HDR);
	assert_int_equal(f->st.rx_packets, 1);

	/* Larger than any frame (and than the spill buffer): dropped too, the chain reused. */
	post_rx(f, 1, BUF_LEN);
	size_t n = make_frame(big, 0, sizeof(big) - HDR, own_mac, 3);
	peer_send(f, big, n);
	peer_frame(f, b, 0, 60, own_mac, 4);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 1, HDR + 60);
	expect_no_used(f, &f->rx);
	assert_int_equal(f->st.rx_dropped, 2);
	assert_int_equal(f->st.rx_packets, 2);

	/* Mergeable buffers on a ring that holds less than the frame: dropped, the chains reused. */
	enable(f, &f->rx, &f->rxq, 2);
	net_rx_forget(&f->p);
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	post_rx(f, 0, BUF_LEN);
	post_rx(f, 1, BUF_LEN);
	peer_frame(f, b, 0, 2 * BUF_LEN - HDR + 1, own_mac, 5);
	peer_frame(f, b, 0, 2 * BUF_LEN - HDR, own_mac, 6);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, BUF_LEN);
	expect_used(f, &f->rx, 1, BUF_LEN);
	expect_no_used(f, &f->rx);
	assert_int_equal(hva(f, RXBUF(0))[NET_HDR_NUM_BUFFERS], 2);
	assert_memory_equal(hva(f, RXBUF(1)), b + BUF_LEN, BUF_LEN);
	assert_int_equal(f->st.rx_dropped, 3);
	assert_int_equal(f->st.rx_packets, 3);
}

static void test_rx_starved(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60], peek[HDR + 64];
	peer_frame(f, b, 0, 60, own_mac, 1);
	put(f, RX_USED, 1, 2); /* NO_NOTIFY, as left by an earlier pass */
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_true(f->p.rx_starved);
	/* Not read, not dropped: still in the backend. */
	assert_int_equal(recv(f->p.fd, peek, sizeof(peek), MSG_DONTWAIT | MSG_PEEK), HDR + 60);
	assert_int_equal(f->st.rx_dropped + f->st.rx_errors + f->st.rx_packets, 0);
	assert_int_equal(notified, 0);
	/* The driver is asked to kick when it adds buffers. */
	assert_int_equal(get(f, RX_USED, 2), 0);

	/* Buffers, but no kick yet: the starved pair does not even look. */
	post_rx_quiet(f, 0, BUF_LEN);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_no_used(f, &f->rx);
	assert_int_equal(recv(f->p.fd, peek, sizeof(peek), MSG_DONTWAIT | MSG_PEEK), HDR + 60);

	/* The kick (net.c clears rx_starved): delivered. */
	rx_kick(f);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, HDR + 60);
	assert_memory_equal(hva(f, RXBUF(0)) + HDR, b + HDR, 60);
	expect_fd_empty(f);
	assert_int_equal(notified, 1);
	/* That used the ring up: starved again, and asking for a kick. */
	assert_true(f->p.rx_starved);
	assert_int_equal(get(f, RX_USED, 2), 0);
	/* While a chain waits ahead, receive notifications are off. */
	post_rx(f, 1, BUF_LEN);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_int_equal(get(f, RX_USED, 2), 1);
	assert_false(f->p.rx_starved);

	/* Mergeable buffers and an empty ring: starved too. */
	enable(f, &f->rx, &f->rxq, QSIZE);
	net_rx_forget(&f->p);
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	peer_frame(f, b, 0, 60, own_mac, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_true(f->p.rx_starved);
	assert_int_equal(recv(f->p.fd, peek, sizeof(peek), MSG_DONTWAIT | MSG_PEEK), HDR + 60);
}

static void test_rx_bad_frames(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	post_rx(f, 0, BUF_LEN);
	/* Shorter than header + Ethernet header: an error, the chain reused. */
	make_frame(b, 0, 60, own_mac, 1);
	peer_send(f, b, HDR + NET_ETH_HLEN - 1);
	peer_send(f, b, HDR + NET_ETH_HLEN);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, HDR + NET_ETH_HLEN);
	expect_no_used(f, &f->rx);
	assert_int_equal(f->st.rx_errors, 1);
	assert_int_equal(f->st.rx_packets, 1);
	assert_int_equal(f->st.rx_bytes, NET_ETH_HLEN);

	/* More segments than a receive chain may have: given back unused, the next chain used. */
	for (unsigned i = 0; i <= NET_RX_SEG_MAX; i++)
		desc(f, &f->rx, 100 + i, RXBUF(100) + 64ULL * i, 64, WRITE | (i < NET_RX_SEG_MAX ? NEXT : 0),
		     (uint16_t)(101 + i));
	avail_add(f, &f->rx, 100);
	rx_kick(f);
	post_rx(f, 1, BUF_LEN);
	peer_send(f, b, sizeof(b));
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 100, 0);
	expect_used(f, &f->rx, 1, HDR + 60);
	assert_int_equal(f->st.rx_errors, 2);

	/* Exactly NET_RX_SEG_MAX segments of 64 bytes: the frame spreads over them. */
	for (unsigned i = 0; i < NET_RX_SEG_MAX; i++)
		desc(f, &f->rx, 100 + i, RXBUF(100) + 64ULL * i, 64,
		     WRITE | (i + 1 < NET_RX_SEG_MAX ? NEXT : 0), (uint16_t)(101 + i));
	avail_add(f, &f->rx, 100);
	rx_kick(f);
	uint8_t b2[HDR + 1000];
	peer_frame(f, b2, 0, 1000, own_mac, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 100, HDR + 1000);
	assert_memory_equal(hva(f, RXBUF(100)) + HDR, b2 + HDR, 1000);

	/* Read-only (in part, or wholly), or too short for the header: the driver broke the ring. */
	desc(f, &f->rx, 2, RXBUF(2), 16, NEXT, 3);
	desc(f, &f->rx, 3, RXBUF(3), BUF_LEN, WRITE, 0);
	avail_add(f, &f->rx, 2);
	rx_kick(f);
	peer_send(f, b, sizeof(b));
	assert_int_equal(rx_run(f), NET_IO_BROKEN);
	expect_no_used(f, &f->rx);
	enable(f, &f->rx, &f->rxq, QSIZE);
	net_rx_forget(&f->p);
	desc(f, &f->rx, 2, RXBUF(2), BUF_LEN, 0, 0);
	avail_add(f, &f->rx, 2);
	assert_int_equal(rx_run(f), NET_IO_BROKEN);
	expect_no_used(f, &f->rx);
	enable(f, &f->rx, &f->rxq, QSIZE);
	net_rx_forget(&f->p);
	desc(f, &f->rx, 3, RXBUF(3), HDR - 1, WRITE, 0);
	avail_add(f, &f->rx, 3);
	rx_kick(f);
	assert_int_equal(rx_run(f), NET_IO_BROKEN);
	enable(f, &f->rx, &f->rxq, QSIZE);
	net_rx_forget(&f->p);
	avail_add(f, &f->rx, QSIZE + 1);
	rx_kick(f);
	assert_int_equal(rx_run(f), NET_IO_BROKEN);
	expect_no_used(f, &f->rx);
	/* None of it touched the frame. */
	assert_int_equal(recv(f->p.fd, b2, sizeof(b2), MSG_DONTWAIT | MSG_PEEK), HDR + 60);
}

static void test_rx_batch(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	for (unsigned i = 0; i < NET_BATCH + 6; i++) {
		post_rx(f, i, BUF_LEN);
		peer_frame(f, b, 0, 60, own_mac, (uint8_t)i);
	}
	assert_int_equal(rx_run(f), NET_IO_MORE);
	assert_int_equal(used_idx(f, &f->rx), NET_BATCH);
	assert_int_equal(notified, NET_BATCH / 16);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_int_equal(used_idx(f, &f->rx), NET_BATCH + 6);
	assert_int_equal(notified, NET_BATCH / 16 + 1);
	for (unsigned i = 0; i < NET_BATCH + 6; i++) {
		expect_used(f, &f->rx, i, HDR + 60);
		make_frame(b, 0, 60, own_mac, (uint8_t)i);
		assert_memory_equal(hva(f, RXBUF(i)) + HDR, b + HDR, 60);
	}
	assert_int_equal(f->st.rx_packets, NET_BATCH + 6);
}

static void test_rx_gone(void **state)
{
	struct fx *f = *state;
	post_rx(f, 0, BUF_LEN);
	close(f->peer);
	f->peer = -1;
	assert_int_equal(rx_run(f), NET_IO_GONE);
	expect_no_used(f, &f->rx);
}

static void test_rx_no_queue(void **state)
{
	struct fx *f = *state;
	uint8_t b[HDR + 60];
	peer_frame(f, b, 0, 60, own_mac, 1);
	f->p.rxq = NULL;
	f->p.txq = NULL;
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	assert_int_equal(tx_run(f), NET_IO_IDLE);
	assert_int_equal(recv(f->p.fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK), HDR + 60);
}

/* ---- receive filter ---- */

static void test_filter_accepts(void **state)
{
	(void)state;
	struct net_filter flt = {0};
	memcpy(flt.mac, own_mac, 6);
	static const uint8_t uni2[6] = {0x02, 0, 0, 0, 0, 2}, multi2[6] = {0x33, 0x33, 0, 0, 0, 1};

	assert_true(net_filter_accepts(&flt, bcast));
	assert_true(net_filter_accepts(&flt, own_mac));
	assert_false(net_filter_accepts(&flt, other_mac));
	assert_false(net_filter_accepts(&flt, mcast));
	/* Own address with the group bit: a multicast address, not ours. */
	uint8_t own_group[6];
	memcpy(own_group, own_mac, 6);
	own_group[0] |= 1;
	assert_false(net_filter_accepts(&flt, own_group));

	flt.promisc = true;
	assert_true(net_filter_accepts(&flt, other_mac));
	assert_true(net_filter_accepts(&flt, mcast));
	flt.promisc = false;

	flt.allmulti = true;
	assert_true(net_filter_accepts(&flt, mcast));
	assert_true(net_filter_accepts(&flt, multi2));
	assert_false(net_filter_accepts(&flt, other_mac));
	flt.allmulti = false;

	/* Table entries: only the ones listed, each in its own table. */
	memcpy(flt.uni[0], uni2, 6);
	memcpy(flt.uni[1], other_mac, 6);
	flt.nuni = 2;
	memcpy(flt.multi[0], mcast, 6);
	flt.nmulti = 1;
	assert_true(net_filter_accepts(&flt, other_mac));
	assert_true(net_filter_accepts(&flt, uni2));
	assert_true(net_filter_accepts(&flt, mcast));
	assert_false(net_filter_accepts(&flt, multi2));
	flt.nuni = 1; /* entries past the count do not count */
	assert_false(net_filter_accepts(&flt, other_mac));
	flt.nuni = 0;
	memcpy(flt.multi[0], uni2, 6); /* a unicast address in the multicast table does not pass */
	assert_false(net_filter_accepts(&flt, uni2));
	flt.nmulti = 0;

	/* Overflowed tables pass their whole kind. */
	flt.multi_overflow = true;
	assert_true(net_filter_accepts(&flt, multi2));
	assert_false(net_filter_accepts(&flt, other_mac));
	flt.multi_overflow = false;
	flt.uni_overflow = true;
	assert_true(net_filter_accepts(&flt, other_mac));
	assert_false(net_filter_accepts(&flt, multi2));
	assert_true(net_filter_accepts(&flt, bcast));
}

static void test_rx_filter(void **state)
{
	struct fx *f = *state;
	f->filter.promisc = false;
	uint8_t b[HDR + 60];
	post_rx(f, 0, BUF_LEN);
	peer_frame(f, b, 0, 60, other_mac, 1);
	peer_frame(f, b, 0, 60, mcast, 2);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_no_used(f, &f->rx);
	expect_fd_empty(f);
	assert_int_equal(f->st.rx_packets, 0);
	assert_int_equal(notified, 0);

	/* The same chain takes the next frame that passes. */
	peer_frame(f, b, 0, 60, other_mac, 3);
	peer_frame(f, b, 0, 60, own_mac, 4);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, HDR + 60);
	assert_memory_equal(hva(f, RXBUF(0)) + HDR, b + HDR, 60);
	assert_int_equal(f->st.rx_packets, 1);

	/* Mergeable: a large filtered frame leaves every chain for the next. */
	enable(f, &f->rx, &f->rxq, QSIZE);
	net_rx_forget(&f->p);
	f->p.mode.mrg_rxbuf = true;
	f->p.mode.rx_need = HDR + NET_MAX_GSO_LEN;
	for (unsigned i = 0; i < 8; i++)
		post_rx(f, i, BUF_LEN);
	uint8_t b2[HDR + 4000];
	peer_frame(f, b2, 0, 4000, other_mac, 5);
	f->filter.allmulti = true;
	peer_frame(f, b, 0, 60, mcast, 6);
	assert_int_equal(rx_run(f), NET_IO_IDLE);
	expect_used(f, &f->rx, 0, HDR + 60);
	expect_no_used(f, &f->rx);
	assert_memory_equal(hva(f, RXBUF(0)) + HDR, b + HDR, 60);
}

/* ---- control commands ---- */

struct ctl {
	struct net_ctrl_state s;
	struct net_ctrl_ops ops;
	unsigned pairs_calls, offload_calls, filter_calls, announce_calls;
	unsigned pairs;
	uint64_t offloads;
	int pairs_ret, offload_ret;
	struct net_filter filter;
};

static int ctl_set_pairs(void *opaque, unsigned pairs)
{
	struct ctl *c = opaque;
	c->pairs_calls++;
	c->pairs = pairs;
	return c->pairs_ret;
}

static int ctl_set_offloads(void *opaque, uint64_t features)
{
	struct ctl *c = opaque;
	c->offload_calls++;
	c->offloads = features;
	return c->offload_ret;
}

static void ctl_set_filter(void *opaque, const struct net_filter *flt)
{
	struct ctl *c = opaque;
	c->filter_calls++;
	c->filter = *flt;
}

static void ctl_announce(void *opaque)
{
	struct ctl *c = opaque;
	c->announce_calls++;
}

static void assert_filter_equal(const struct net_filter *a, const struct net_filter *b)
{
	assert_int_equal(a->promisc, b->promisc);
	assert_int_equal(a->allmulti, b->allmulti);
	assert_int_equal(a->uni_overflow, b->uni_overflow);
	assert_int_equal(a->multi_overflow, b->multi_overflow);
	assert_memory_equal(a->mac, b->mac, 6);
	assert_int_equal(a->nuni, b->nuni);
	assert_int_equal(a->nmulti, b->nmulti);
	if (a->nuni && a->nuni <= NET_MAC_TABLE)
		assert_memory_equal(a->uni, b->uni, 6 * a->nuni);
	if (a->nmulti && a->nmulti <= NET_MAC_TABLE)
		assert_memory_equal(a->multi, b->multi, 6 * a->nmulti);
}

static void ctl_init(struct ctl *c, uint64_t features)
{
	memset(c, 0, sizeof(*c));
	c->s.features = features;
	c->s.max_pairs = 4;
	memcpy(c->s.filter.mac, own_mac, 6);
	c->ops = (struct net_ctrl_ops){ctl_set_pairs, ctl_set_offloads, ctl_set_filter, ctl_announce, c};
}

static unsigned ctl_calls(const struct ctl *c)
{
	return c->pairs_calls + c->offload_calls + c->filter_calls + c->announce_calls;
}

/* A command as Linux sends it: class and command in one buffer, the data in a second one. */
static uint8_t cmd(struct ctl *c, uint8_t cls, uint8_t command, const void *data, size_t len)
{
	uint8_t h[2] = {cls, command};
	struct iovec iov[2] = {{h, 2}, {(void *)data, len}};
	return net_ctrl_command(&c->s, &c->ops, iov, len ? 2 : 1, 2 + len);
}

/* The same with every byte in its own segment. */
static uint8_t cmd_bytes(struct ctl *c, uint8_t cls, uint8_t command, const uint8_t *data, size_t len)
{
	struct iovec *iov = calloc(len + 2, sizeof(*iov));
	uint8_t h[2] = {cls, command};
	assert_non_null(iov);
	iov[0] = (struct iovec){h, 1};
	iov[1] = (struct iovec){h + 1, 1};
	for (size_t i = 0; i < len; i++)
		iov[2 + i] = (struct iovec){(void *)(data + i), 1};
	uint8_t ack = net_ctrl_command(&c->s, &c->ops, iov, (unsigned)(len + 2), 2 + len);
	free(iov);
	return ack;
}

/* Writes a MAC table {le32 count; entries} at b; returns the bytes written. */
static size_t mac_table(uint8_t *b, uint32_t count, unsigned entries, uint8_t first)
{
	b[0] = (uint8_t)count;
	b[1] = (uint8_t)(count >> 8);
	b[2] = (uint8_t)(count >> 16);
	b[3] = (uint8_t)(count >> 24);
	for (unsigned i = 0; i < entries; i++) {
		uint8_t *m = b + 4 + 6 * i;
		m[0] = first;
		m[1] = 0x11;
		m[2] = 0x22;
		m[3] = 0x33;
		m[4] = (uint8_t)(i >> 8);
		m[5] = (uint8_t)i;
	}
	return 4 + 6 * (size_t)entries;
}

enum { C_RX = 0, C_MAC = 1, C_ANNOUNCE = 3, C_MQ = 4, C_OFFLOADS = 5 };

static void test_ctrl_rx_mode(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX));
	uint8_t on = 1, off = 0, two[2] = {1, 1};

	assert_int_equal(cmd(&c, C_RX, 0, &on, 1), 0); /* PROMISC on */
	assert_int_equal(c.filter_calls, 1);
	assert_true(c.filter.promisc);
	assert_false(c.filter.allmulti);
	assert_true(c.s.filter.promisc);
	assert_int_equal(cmd(&c, C_RX, 1, &on, 1), 0); /* ALLMULTI on */
	assert_int_equal(c.filter_calls, 2);
	assert_true(c.filter.promisc);
	assert_true(c.filter.allmulti);
	assert_int_equal(cmd(&c, C_RX, 0, &off, 1), 0);
	assert_int_equal(c.filter_calls, 3);
	assert_false(c.filter.promisc);
	assert_true(c.filter.allmulti);
	uint8_t any = 0x80; /* any non-zero byte means on */
	assert_int_equal(cmd(&c, C_RX, 1, &off, 1), 0);
	assert_false(c.filter.allmulti);
	assert_int_equal(cmd(&c, C_RX, 1, &any, 1), 0);
	assert_true(c.filter.allmulti);
	assert_memory_equal(c.filter.mac, own_mac, 6);
	unsigned calls = ctl_calls(&c);

	/* Wrong length, unknown command (the ALLUNI etc. of VIRTIO_NET_F_CTRL_RX_EXTRA). */
	assert_int_equal(cmd(&c, C_RX, 0, two, 2), 1);
	assert_int_equal(cmd(&c, C_RX, 0, NULL, 0), 1);
	assert_int_equal(cmd(&c, C_RX, 2, &on, 1), 1);
	assert_int_equal(cmd(&c, C_RX, 0xff, &on, 1), 1);
	assert_int_equal(ctl_calls(&c), calls);

	/* Without CTRL_RX. */
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ));
	assert_int_equal(cmd(&c, C_RX, 0, &on, 1), 1);
	assert_false(c.s.filter.promisc);
	assert_int_equal(ctl_calls(&c), 0);
}

static void test_ctrl_mac_table(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX));
	static uint8_t b[2 * (4 + 6 * 70)];
	size_t n = mac_table(b, 2, 2, 0x02);
	n += mac_table(b + n, 1, 1, 0x01);
	assert_int_equal(cmd(&c, C_MAC, 0, b, n), 0);
	assert_int_equal(c.filter_calls, 1);
	assert_int_equal(c.filter.nuni, 2);
	assert_int_equal(c.filter.nmulti, 1);
	assert_false(c.filter.uni_overflow);
	assert_false(c.filter.multi_overflow);
	assert_memory_equal(c.filter.uni[0], b + 4, 6);
	assert_memory_equal(c.filter.uni[1], b + 10, 6);
	assert_memory_equal(c.filter.multi[0], b + 20, 6);
	assert_memory_equal(c.filter.mac, own_mac, 6);
	assert_filter_equal(&c.s.filter, &c.filter);
	assert_true(net_filter_accepts(&c.filter, b + 10));
	assert_true(net_filter_accepts(&c.filter, b + 20));
	assert_false(net_filter_accepts(&c.filter, other_mac));

	/* The same, one byte per segment. */
	struct net_filter before = c.s.filter;
	assert_int_equal(cmd_bytes(&c, C_MAC, 0, b, n), 0);
	assert_filter_equal(&c.s.filter, &before);
	assert_int_equal(c.filter_calls, 2);

	/* Counts that run past the data, a missing table, trailing bytes, absurd counts: ERR, unchanged. */
	static const struct {
		uint32_t ucount;
		unsigned uentries;
		uint32_t mcount;
		unsigned mentries;
		int extra; /* bytes added (> 0) or cut (< 0) at the end; -100: no multicast table */
	} bad[] = {
	    {3, 2, 1, 1, 0},	{2, 2, 2, 1, 0},	  {2, 2, 1, 1, 1},	    {2, 2, 1, 1, -1},
	    {2, 2, 0, 0, -100}, {0xffffffff, 2, 1, 1, 0}, {0x2aaaaaab, 0, 0, 0, 0}, {0, 0, 0x80000000, 0, 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		n = mac_table(b, bad[i].ucount, bad[i].uentries, 0x02);
		if (bad[i].extra == -100) {
			/* nothing more */
		} else {
			n += mac_table(b + n, bad[i].mcount, bad[i].mentries, 0x01);
			if (bad[i].extra > 0)
				b[n] = 0;
			n = (size_t)((long)n + bad[i].extra);
		}
		assert_int_equal(cmd(&c, C_MAC, 0, b, n), 1);
		assert_int_equal(cmd_bytes(&c, C_MAC, 0, b, n), 1);
		assert_filter_equal(&c.s.filter, &before);
		assert_int_equal(c.filter_calls, 2);
	}
	assert_int_equal(cmd(&c, C_MAC, 0, b, 3), 1);
	assert_int_equal(cmd(&c, C_MAC, 0, NULL, 0), 1);
	assert_int_equal(c.filter_calls, 2);

	/* Empty tables. */
	n = mac_table(b, 0, 0, 0);
	n += mac_table(b + n, 0, 0, 0);
	assert_int_equal(cmd(&c, C_MAC, 0, b, n), 0);
	assert_int_equal(c.filter.nuni + c.filter.nmulti, 0);
	assert_false(net_filter_accepts(&c.filter, b + 10));

	/* NET_MAC_TABLE entries fit; one more overflows the table: its whole kind passes. */
	n = mac_table(b, NET_MAC_TABLE, NET_MAC_TABLE, 0x02);
	n += mac_table(b + n, NET_MAC_TABLE + 1, NET_MAC_TABLE + 1, 0x01);
	assert_int_equal(cmd(&c, C_MAC, 0, b, n), 0);
	assert_int_equal(c.filter.nuni, NET_MAC_TABLE);
	assert_false(c.filter.uni_overflow);
	assert_memory_equal(c.filter.uni[NET_MAC_TABLE - 1], b + 4 + 6 * (NET_MAC_TABLE - 1), 6);
	assert_true(c.filter.multi_overflow);
	assert_int_equal(c.filter.nmulti, 0);
	assert_true(net_filter_accepts(&c.filter, mcast));
	assert_false(net_filter_accepts(&c.filter, other_mac));
	n = mac_table(b, NET_MAC_TABLE + 1, NET_MAC_TABLE + 1, 0x02);
	n += mac_table(b + n, 1, 1, 0x01);
	assert_int_equal(cmd(&c, C_MAC, 0, b, n), 0);
	assert_true(c.filter.uni_overflow);
	assert_int_equal(c.filter.nuni, 0);
	assert_false(c.filter.multi_overflow);
	assert_int_equal(c.filter.nmulti, 1);
	assert_true(net_filter_accepts(&c.filter, other_mac));
	assert_false(net_filter_accepts(&c.filter, mcast));

	/* Without CTRL_RX (the tables belong to it). */
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR));
	n = mac_table(b, 0, 0, 0);
	n += mac_table(b + n, 0, 0, 0);
	assert_int_equal(cmd(&c, C_MAC, 0, b, n), 1);
	assert_int_equal(ctl_calls(&c), 0);
}

static void test_ctrl_mac_addr(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR));
	assert_int_equal(cmd(&c, C_MAC, 1, other_mac, 6), 0);
	assert_int_equal(c.filter_calls, 1);
	assert_memory_equal(c.filter.mac, other_mac, 6);
	assert_memory_equal(c.s.filter.mac, other_mac, 6);
	assert_true(net_filter_accepts(&c.filter, other_mac));
	assert_false(net_filter_accepts(&c.filter, own_mac));

	/* Multicast, short, long: ERR, the address stays. */
	uint8_t seven[7] = {0x02, 1, 2, 3, 4, 5, 6};
	assert_int_equal(cmd(&c, C_MAC, 1, mcast, 6), 1);
	assert_int_equal(cmd(&c, C_MAC, 1, bcast, 6), 1);
	assert_int_equal(cmd(&c, C_MAC, 1, seven, 5), 1);
	assert_int_equal(cmd(&c, C_MAC, 1, seven, 7), 1);
	assert_int_equal(cmd(&c, C_MAC, 2, seven, 6), 1);
	assert_int_equal(c.filter_calls, 1);
	assert_memory_equal(c.s.filter.mac, other_mac, 6);
	assert_int_equal(cmd_bytes(&c, C_MAC, 1, own_mac, 6), 0);
	assert_memory_equal(c.s.filter.mac, own_mac, 6);

	/* Without CTRL_MAC_ADDR. */
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX));
	assert_int_equal(cmd(&c, C_MAC, 1, other_mac, 6), 1);
	assert_memory_equal(c.s.filter.mac, own_mac, 6);
	assert_int_equal(ctl_calls(&c), 0);
}

static void test_ctrl_mq(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_MQ));
	static const struct {
		uint16_t pairs;
		uint8_t ack;
	} cases[] = {{0, 1}, {1, 0}, {4, 0}, {5, 1}, {2, 0}, {0x8000, 1}, {0xffff, 1}};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned calls = c.pairs_calls;
		uint8_t d[2] = {(uint8_t)cases[i].pairs, (uint8_t)(cases[i].pairs >> 8)};
		assert_int_equal(cmd(&c, C_MQ, 0, d, 2), cases[i].ack);
		assert_int_equal(c.pairs_calls, calls + !cases[i].ack);
		if (!cases[i].ack)
			assert_int_equal(c.pairs, cases[i].pairs);
	}
	unsigned calls = ctl_calls(&c);
	uint8_t d[3] = {2, 0, 0};
	assert_int_equal(cmd(&c, C_MQ, 0, d, 1), 1);
	assert_int_equal(cmd(&c, C_MQ, 0, d, 3), 1);
	assert_int_equal(cmd(&c, C_MQ, 1, d, 2), 1); /* RSS_CONFIG: not offered */
	assert_int_equal(cmd(&c, C_MQ, 2, d, 2), 1); /* HASH_CONFIG */
	assert_int_equal(ctl_calls(&c), calls);

	/* The device refuses. */
	c.pairs_ret = -EIO;
	assert_int_equal(cmd(&c, C_MQ, 0, d, 2), 1);
	assert_int_equal(c.pairs_calls, calls + 1);

	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ));
	assert_int_equal(cmd(&c, C_MQ, 0, d, 2), 1);
	assert_int_equal(ctl_calls(&c), 0);
}

static void test_ctrl_announce(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE));
	uint8_t d = 0;
	assert_int_equal(cmd(&c, C_ANNOUNCE, 0, NULL, 0), 0);
	assert_int_equal(c.announce_calls, 1);
	assert_int_equal(cmd(&c, C_ANNOUNCE, 0, &d, 1), 1);
	assert_int_equal(cmd(&c, C_ANNOUNCE, 1, NULL, 0), 1);
	assert_int_equal(c.announce_calls, 1);
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ));
	assert_int_equal(cmd(&c, C_ANNOUNCE, 0, NULL, 0), 1);
	assert_int_equal(ctl_calls(&c), 0);
}

static void le64(uint8_t *b, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void test_ctrl_offloads(void **state)
{
	(void)state;
	struct ctl c;
	const uint64_t csum = VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM), tso4 = VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4),
		       tso6 = VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | csum |
			 tso4 | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
	uint8_t d[9];
	static const struct {
		uint64_t want;
		uint8_t ack;
	} cases[] = {
	    {0, 0},
	    {csum, 0},
	    {csum | tso4, 0},
	    {tso4, 1},					    /* segmentation without checksums */
	    {csum | tso6, 1},				    /* not negotiated */
	    {csum | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF), 1}, /* negotiated, but not an offload */
	    {csum | VIRTIO_BIT(63), 1},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned calls = c.offload_calls;
		le64(d, cases[i].want);
		assert_int_equal(cmd(&c, C_OFFLOADS, 0, d, 8), cases[i].ack);
		assert_int_equal(c.offload_calls, calls + !cases[i].ack);
		if (!cases[i].ack)
			assert_int_equal(c.offloads, cases[i].want);
	}
	unsigned calls = ctl_calls(&c);
	le64(d, csum);
	d[8] = 0;
	assert_int_equal(cmd(&c, C_OFFLOADS, 0, d, 7), 1);
	assert_int_equal(cmd(&c, C_OFFLOADS, 0, d, 9), 1);
	assert_int_equal(cmd(&c, C_OFFLOADS, 1, d, 8), 1);
	assert_int_equal(ctl_calls(&c), calls);
	assert_int_equal(cmd_bytes(&c, C_OFFLOADS, 0, d, 8), 0);
	assert_int_equal(c.offloads, csum);
	c.offload_ret = -EINVAL;
	assert_int_equal(cmd(&c, C_OFFLOADS, 0, d, 8), 1);

	/* Without CTRL_GUEST_OFFLOADS. */
	ctl_init(&c, VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | csum);
	assert_int_equal(cmd(&c, C_OFFLOADS, 0, d, 8), 1);
	assert_int_equal(ctl_calls(&c), 0);
}

static void test_ctrl_malformed(void **state)
{
	(void)state;
	struct ctl c;
	ctl_init(&c, ~0ULL);
	uint8_t d[8] = {1};
	uint8_t h[2] = {C_RX, 0};
	struct iovec iov = {h, 2};
	/* No class or command byte. */
	assert_int_equal(net_ctrl_command(&c.s, &c.ops, &iov, 1, 0), 1);
	assert_int_equal(net_ctrl_command(&c.s, &c.ops, &iov, 1, 1), 1);
	assert_int_equal(net_ctrl_command(&c.s, &c.ops, NULL, 0, 0), 1);
	/* Classes we do not know (2 is VLAN: VIRTIO_NET_F_CTRL_VLAN is not offered). */
	static const uint8_t classes[] = {2, 6, 7, 0x80, 0xff};
	for (size_t i = 0; i < ARRAY_LEN(classes); i++)
		for (unsigned len = 0; len <= 8; len++)
			assert_int_equal(cmd(&c, classes[i], 0, d, len), 1);
	assert_int_equal(ctl_calls(&c), 0);
	/* A large command is not read into the fixed buffer. */
	static uint8_t huge[4096];
	assert_int_equal(cmd(&c, C_RX, 0, huge, sizeof(huge)), 1);
	assert_int_equal(cmd(&c, C_OFFLOADS, 0, huge, sizeof(huge)), 1);
	assert_int_equal(ctl_calls(&c), 0);
}

/* ---- the whole device over the PCI transport: notification and interrupt counters ---- */

#define DEV_DEVFN	PCI_DEVFN(1, 0)
#define DEV_MEM64_START 0x100000000ULL

struct dev {
	struct pci_host *host;
	uint64_t regs; /* BAR 4: common config at 0, notify at 0x3000 (4 bytes per queue) */
};

static void dev_intx(void *opaque, unsigned gsi, int level)
{
}

static void dev_cfg(struct dev *d, unsigned reg, uint32_t *v, bool write)
{
	uint8_t a[4] = {(uint8_t)reg, (uint8_t)DEV_DEVFN, 0, 0x80}, b[4];
	for (unsigned i = 0; i < 4; i++)
		b[i] = (uint8_t)(*v >> (8 * i));
	pci_host_addr_io(d->host, 0, a, 4, true);
	pci_host_data_io(d->host, 0, b, 4, write);
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void dev_write(struct dev *d, uint64_t off, uint64_t v, uint32_t len)
{
	uint8_t b[8];
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	pci_host_mem64_window(d->host, d->regs + off - DEV_MEM64_START, b, len, true);
}

static uint8_t dev_status(struct dev *d)
{
	uint8_t b = 0;
	pci_host_mem64_window(d->host, d->regs + 20 - DEV_MEM64_START, &b, 1, false);
	return b;
}

static void dev_queue(struct dev *d, unsigned q, const struct drv *r)
{
	dev_write(d, 22, q, 2);
	dev_write(d, 32, r->desc, 8);
	dev_write(d, 40, r->avail, 8);
	dev_write(d, 48, r->used, 8);
	dev_write(d, 28, 1, 2);
}

/* Waits up to 5 s for a counter to reach want; returns what it read last. */
static uint64_t wait_stat(const struct virtio_net_shared *sh, size_t field, uint64_t want)
{
	struct virtio_net_stats s;
	uint64_t v = 0;
	for (int i = 0; i < 5000; i++) {
		virtio_net_stats(sh, &s);
		memcpy(&v, (const uint8_t *)&s + field, sizeof(v));
		if (v >= want)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return v;
}
#define WAIT_STAT(sh, f, want) wait_stat(sh, offsetof(struct virtio_net_stats, f), want)

/*
 * A NIC over the transport, with the fixture's socketpair as its one-queue
 * "tap" (offloads cannot be set on a socket: net_start() says so on stderr),
 * driven with INTx and without EVENT_IDX, so that each kick is one
 * notification and each batch one interrupt: exact counts.
 */
static void test_device_counters(void **state)
{
	struct fx *f = *state;
	struct dev d = {0};
	struct pci_windows w = {0x1000,	    0xffff,	     0xc0000000ULL,
				0xfebfffff, DEV_MEM64_START, DEV_MEM64_START + (1ULL << 30) - 1};
	d.host = pci_host_create(&w);
	assert_non_null(d.host);
	struct net_backend nb = {.kind = NET_BACKEND_TAP, .ifname = "test", .nqueues = 1, .mtu = 1500};
	nb.fds[0] = f->p.fd;
	static struct virtio_net_shared sh;
	memset(&sh, 0, sizeof(sh));
	struct virtio_pci_env env = {.host = d.host, .mem = &f->mem, .intx = {dev_intx, NULL, 16}};
	struct err e = {0};
	struct virtio_net *n = virtio_net_create(&env, DEV_DEVFN, &nb, &sh, own_mac, "virtio-net test", &e);
	assert_non_null(n);
	uint32_t v = 0x6; /* memory decoding and bus mastering on, as firmware leaves it */
	dev_cfg(&d, 0x04, &v, true);
	uint32_t lo = 0, hi = 0;
	dev_cfg(&d, 0x20, &lo, false);
	dev_cfg(&d, 0x24, &hi, false);
	d.regs = (lo & ~0xfULL) | (uint64_t)hi << 32;
	assert_true(d.regs >= DEV_MEM64_START);

	/* The driver's bring-up: VERSION_1 only, the receive and transmit queues. */
	dev_write(&d, 20, 0, 1);
	dev_write(&d, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	dev_write(&d, 8, 1, 4);
	dev_write(&d, 12, 1, 4); /* VIRTIO_F_VERSION_1 is bit 32 */
	dev_write(&d, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	assert_true(dev_status(&d) & VIRTIO_STATUS_FEATURES_OK);
	dev_queue(&d, 0, &f->rx);
	dev_queue(&d, 1, &f->tx);
	dev_write(&d, 20, 0xf, 1);
	assert_int_equal(dev_status(&d), 0xf);

	/* Four receive buffers, one kick; two frames, one at a time: two interrupts. */
	for (uint16_t i = 0; i < 4; i++) {
		desc(f, &f->rx, i, RXBUF(i), 0x800, WRITE, 0);
		avail_add(f, &f->rx, i);
	}
	dev_write(&d, 0x3000, 0, 2);
	uint8_t frame[HDR + 60];
	for (unsigned i = 0; i < 2; i++) {
		size_t len = make_frame(frame, 0, 60, own_mac, (uint8_t)i);
		assert_int_equal(write(f->peer, frame, len), (ssize_t)len);
		assert_int_equal(WAIT_STAT(&sh, rx_packets, i + 1), i + 1);
		assert_int_equal(WAIT_STAT(&sh, rx_interrupts, i + 1), i + 1);
	}
	/* Three frames sent, a kick each: three interrupts. */
	for (uint16_t i = 0; i < 3; i++) {
		size_t len = make_frame(frame, 0, 60, other_mac, (uint8_t)i);
		memcpy(hva(f, TXBUF(i)), frame, len);
		desc(f, &f->tx, i, TXBUF(i), (uint32_t)len, 0, 0);
		avail_add(f, &f->tx, i);
		dev_write(&d, 0x3004, 1, 2);
		assert_int_equal(WAIT_STAT(&sh, tx_packets, i + 1u), i + 1u);
		assert_int_equal(WAIT_STAT(&sh, tx_interrupts, i + 1u), i + 1u);
		uint8_t got[sizeof(frame) + 1];
		assert_int_equal(read(f->peer, got, sizeof(got)), (ssize_t)len);
	}
	struct virtio_net_stats s;
	struct timespec ts = {0, 20000000};
	nanosleep(&ts, NULL); /* nothing more may come */
	virtio_net_stats(&sh, &s);
	assert_int_equal(s.rx_notifications, 1);
	assert_int_equal(s.tx_notifications, 3);
	assert_int_equal(s.ctrl_notifications, 0);
	assert_int_equal(s.rx_interrupts, 2);
	assert_int_equal(s.tx_interrupts, 3);
	assert_int_equal(s.ctrl_interrupts, 0);
	assert_int_equal(s.rx_packets, 2);
	assert_int_equal(s.tx_packets, 3);
	virtio_net_destroy(n);
	pci_host_destroy(d.host);
}

/* With the dirty log on, receiving marks the used ring and the buffers used; sending only the used ring. */
static void test_dirty_log(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	uint64_t bits[RAM_SIZE / 4096 / 64];
	assert_int_equal(guest_mem_dirty_log_start(&f->mem, &e), 0);
	post_rx(f, 0, BUF_LEN);
	post_rx(f, 1, BUF_LEN);
	uint8_t b[HDR + 100];
	size_t len = peer_frame(f, b, 0, 100, own_mac, 1);
	notify_expect = &f->p;
	rx_run(f);
	expect_used(f, &f->rx, 0, (uint32_t)len);
	/* RXBUF(0) and RXBUF(1) share a page: this is the used ring's page and buffer 0's. */
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, RAM_SIZE / 4096, bits), 2);
	assert_int_equal(bits[0], 1ULL << (RX_USED >> 12));
	assert_int_equal(bits[RXBUF(0) >> 12 >> 6], 1ULL << ((RXBUF(0) >> 12) % 64));
	uint8_t t[HDR + 60];
	size_t tlen = make_frame(t, 0, 60, other_mac, 2);
	post_tx(f, 0, t, (uint32_t)tlen);
	tx_run(f);
	expect_used(f, &f->tx, 0, 0);
	uint8_t got[sizeof(t)];
	assert_int_equal(read(f->peer, got, sizeof(got)), (ssize_t)tlen);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, RAM_SIZE / 4096, bits), 1);
	assert_int_equal(bits[0], 1ULL << (TX_USED >> 12));
	/* Off: nothing. */
	guest_mem_dirty_log_stop(&f->mem);
	peer_frame(f, b, 0, 100, own_mac, 3);
	rx_run(f);
	expect_used(f, &f->rx, 1, (uint32_t)len);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, RAM_SIZE / 4096, bits), 0);
}

/* ---- saved state: a two-pair NIC with a control queue, migrated to a second one ---- */

#define RX1_DESC  0x8000ULL
#define TX1_DESC  0xb000ULL
#define CTRL_DESC 0xe000ULL
#define CTRL_BUF  0x20000ULL
#define CTRL_ACK  0x30000ULL
#define CTRL_Q	  4

struct mach {
	struct fx fx; /* its guest memory (fx.mem) and the drivers' view of pair 0 (fx.rx, fx.tx) */
	struct drv rx1, tx1, ctrl;
	struct dev d;
	struct net_backend nb;
	int peer[2];
	struct virtio_net_shared sh;
	struct quiesce gate;
	struct virtio_net *n;
	unsigned ncmd;
};

static const uint8_t new_mac[6] = {0x52, 0x54, 0x00, 0x77, 0x88, 0x99};
static const uint8_t uni_mac[6] = {0x52, 0x54, 0x00, 0x01, 0x02, 0x03};

/* A machine with the NIC; its RAM a copy of from's when given (restored before the devices). */
static struct mach *mach_new(const struct mach *from)
{
	struct mach *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	struct fx *f = &m->fx;
	f->ram = calloc(1, RAM_SIZE);
	assert_non_null(f->ram);
	if (from)
		memcpy(f->ram, from->fx.ram, RAM_SIZE);
	f->mem.regions[0] = (struct guest_mem_region){0, RAM_SIZE, f->ram};
	f->mem.nregions = 1;
	f->mem.ram_size = RAM_SIZE;
	f->mem.map = f->ram;
	if (from) {
		f->rx = from->fx.rx;
		f->tx = from->fx.tx;
		m->rx1 = from->rx1;
		m->tx1 = from->tx1;
		m->ctrl = from->ctrl;
		m->ncmd = from->ncmd;
	} else {
		f->rx = (struct drv){.desc = RX_DESC, .avail = RX_AVAIL, .used = RX_USED, .size = QSIZE};
		f->tx = (struct drv){.desc = TX_DESC, .avail = TX_AVAIL, .used = TX_USED, .size = QSIZE};
		m->rx1 = (struct drv){RX1_DESC, RX1_DESC + 0x1000, RX1_DESC + 0x2000, QSIZE, 0, 0};
		m->tx1 = (struct drv){TX1_DESC, TX1_DESC + 0x1000, TX1_DESC + 0x2000, QSIZE, 0, 0};
		m->ctrl = (struct drv){CTRL_DESC, CTRL_DESC + 0x1000, CTRL_DESC + 0x2000, QSIZE, 0, 0};
	}
	quiesce_init(&m->gate);
	struct pci_windows w = {0x1000,	    0xffff,	     0xc0000000ULL,
				0xfebfffff, DEV_MEM64_START, DEV_MEM64_START + (1ULL << 30) - 1};
	m->d.host = pci_host_create(&w);
	assert_non_null(m->d.host);
	m->nb = (struct net_backend){.kind = NET_BACKEND_TAP, .ifname = "test", .nqueues = 2, .mtu = 1500};
	for (unsigned i = 0; i < 2; i++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
				 0);
		m->nb.fds[i] = sv[0];
		m->peer[i] = sv[1];
	}
	struct virtio_pci_env env = {
	    .host = m->d.host, .mem = &f->mem, .intx = {dev_intx, NULL, 16}, .gate = &m->gate};
	struct err e = {0};
	m->n = virtio_net_create(&env, DEV_DEVFN, &m->nb, &m->sh, own_mac, "virtio-net test", &e);
	assert_non_null(m->n);
	uint32_t v = 0x6;
	dev_cfg(&m->d, 0x04, &v, true);
	uint32_t lo = 0, hi = 0;
	dev_cfg(&m->d, 0x20, &lo, false);
	dev_cfg(&m->d, 0x24, &hi, false);
	m->d.regs = (lo & ~0xfULL) | (uint64_t)hi << 32;
	return m;
}

static void mach_free(struct mach *m)
{
	quiesce_open(&m->gate);
	virtio_net_destroy(m->n);
	pci_host_destroy(m->d.host);
	for (unsigned i = 0; i < 2; i++) {
		close(m->nb.fds[i]);
		close(m->peer[i]);
	}
	quiesce_destroy(&m->gate);
	free(m->fx.ram);
	free(m);
}

static uint64_t dev_read(struct dev *d, uint64_t off, uint32_t len)
{
	uint8_t b[8] = {0};
	pci_host_mem64_window(d->host, d->regs + off - DEV_MEM64_START, b, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* Waits up to 5 s for the device to use one more chain of queue d; false if it does not. */
static bool wait_used_one(struct fx *f, struct drv *d)
{
	for (int i = 0; i < 5000; i++) {
		if (used_idx(f, d) != d->used_seen)
			return true;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* One control command through the control queue; returns the ack. */
static uint8_t ctrl_cmd(struct mach *m, uint8_t cls, uint8_t command, const void *data, size_t len)
{
	struct fx *f = &m->fx;
	unsigned i = m->ncmd++ % 64;
	uint64_t buf = CTRL_BUF + 0x200ULL * i;
	uint8_t h[2] = {cls, command};
	assert_int_equal(guest_mem_write(&f->mem, buf, h, 2), 0);
	assert_int_equal(guest_mem_write(&f->mem, buf + 2, data, len), 0);
	put(f, CTRL_ACK + i, 0xee, 1);
	desc(f, &m->ctrl, 2 * i, buf, (uint32_t)(2 + len), NEXT, (uint16_t)(2 * i + 1));
	desc(f, &m->ctrl, 2 * i + 1, CTRL_ACK + i, 1, WRITE, 0);
	avail_add(f, &m->ctrl, (uint16_t)(2 * i));
	dev_write(&m->d, 0x3000 + 4 * CTRL_Q, CTRL_Q, 2);
	assert_true(wait_used_one(f, &m->ctrl));
	expect_used(f, &m->ctrl, 2 * i, 1);
	return (uint8_t)get(f, CTRL_ACK + i, 1);
}

/* Receive buffer i (of 2 KiB) on queue d of pair k's receive ring, and a kick. */
static void post_rx_buf(struct mach *m, unsigned pair, unsigned i)
{
	struct drv *d = pair ? &m->rx1 : &m->fx.rx;
	desc(&m->fx, d, i, RXBUF(i + 64 * pair), 0x800, WRITE, 0);
	avail_add(&m->fx, d, (uint16_t)i);
	dev_write(&m->d, 0x3000 + 8 * pair, 2 * pair, 2);
}

/* Sends a frame to dst into pair k's tap; returns whether the guest received it (in buffer head). */
static bool frame_arrives(struct mach *m, unsigned pair, const uint8_t dst[6], uint8_t seed, uint16_t head)
{
	struct drv *d = pair ? &m->rx1 : &m->fx.rx;
	uint8_t frame[HDR + 60];
	size_t len = make_frame(frame, 0, 60, dst, seed);
	assert_int_equal(send(m->peer[pair], frame, len, MSG_DONTWAIT), (ssize_t)len);
	/* A filtered frame leaves no trace but the backend's queue: wait a while for a used entry. */
	for (int i = 0; i < 300; i++) {
		if (used_idx(&m->fx, d) != d->used_seen) {
			expect_used(&m->fx, d, head, (uint32_t)len);
			assert_memory_equal(hva(&m->fx, RXBUF(head + 64 * pair)) + HDR, frame + HDR, 60);
			return true;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static void mach_bring_up(struct mach *m, uint64_t features)
{
	struct dev *d = &m->d;
	dev_write(d, 20, 0, 1);
	dev_write(d, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	dev_write(d, 8, 0, 4);
	dev_write(d, 12, (uint32_t)features, 4);
	dev_write(d, 8, 1, 4);
	dev_write(d, 12, (uint32_t)(features >> 32), 4);
	dev_write(d, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	assert_true(dev_status(d) & VIRTIO_STATUS_FEATURES_OK);
	dev_queue(d, 0, &m->fx.rx);
	dev_queue(d, 1, &m->fx.tx);
	dev_queue(d, 2, &m->rx1);
	dev_queue(d, 3, &m->tx1);
	dev_queue(d, CTRL_Q, &m->ctrl);
	dev_write(d, 20, 0xf, 1);
	assert_int_equal(dev_status(d), 0xf);
}

#define NET_FEATURES                                                                                         \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |   \
	 VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | VIRTIO_BIT(VIRTIO_NET_F_MQ) | \
	 VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE))

static int mach_load(struct mach *m, const void *p, size_t len)
{
	struct sreader r;
	struct err e = {0};
	sreader_init(&r, p, len);
	int ret = virtio_pci_load(virtio_net_transport(m->n), &r, &e);
	if (ret == 0) {
		assert_true(sreader_done(&r));
		virtio_pci_start_deferred(virtio_net_transport(m->n)); /* what vm_start() does */
	}
	return ret;
}

/* Builds the source's state: filters, MAC, two pairs, a frame received, a chain held ahead. */
static struct mach *net_source(void)
{
	struct mach *m = mach_new(NULL);
	mach_bring_up(m, NET_FEATURES);
	uint8_t pairs[2] = {2, 0}, one = 1, zero = 0;
	assert_int_equal(ctrl_cmd(m, 4, 0, pairs, 2), 0);   /* VQ_PAIRS_SET 2 */
	assert_int_equal(ctrl_cmd(m, 1, 1, new_mac, 6), 0); /* MAC_ADDR_SET */
	assert_int_equal(ctrl_cmd(m, 0, 0, &zero, 1), 0);   /* promisc off */
	assert_int_equal(ctrl_cmd(m, 0, 1, &one, 1), 0);    /* allmulti on */
	uint8_t tables[4 + 6 + 4] = {1, 0, 0, 0};
	memcpy(tables + 4, uni_mac, 6);
	assert_int_equal(ctrl_cmd(m, 1, 0, tables, sizeof(tables)), 0); /* one unicast, no multicast */
	/* The device holds a receive chain ahead after a frame (head 1 waits for the next one). */
	for (unsigned i = 0; i < 3; i++)
		post_rx_buf(m, 0, i);
	assert_true(frame_arrives(m, 0, new_mac, 1, 0));
	assert_false(frame_arrives(m, 0, other_mac, 2, 1)); /* filtered */
	/* A kick wakes pair 1: it takes a chain ahead too. */
	post_rx_buf(m, 1, 0);
	struct timespec ts = {0, 20000000};
	nanosleep(&ts, NULL);
	return m;
}

static void test_device_save_load(void **state)
{
	struct mach *src = net_source();
	quiesce_close(&src->gate);
	struct sbuf b;
	sbuf_init(&b);
	virtio_pci_save(virtio_net_transport(src->n), &b);
	assert_false(b.oom);
	/* Frames that reach the source after the pause stay there. */
	struct mach *dst = mach_new(src);
	assert_int_equal(mach_load(dst, b.data, b.len), 0);
	assert_int_equal(dev_status(&dst->d), 0xf);
	/* The MAC and link in the configuration, and the filter: ours, the table's, multicast; not others. */
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(dev_read(&dst->d, 0x2000 + i, 1), new_mac[i]);
	assert_int_equal(dev_read(&dst->d, 0x2006, 2), 1);
	assert_false(frame_arrives(dst, 0, other_mac, 3, 1));
	/* The chain the source held ahead was handed back: the next frame lands in head 1, then 2. */
	assert_true(frame_arrives(dst, 0, new_mac, 4, 1));
	assert_true(frame_arrives(dst, 0, uni_mac, 5, 2));
	/* Pair 1 is active: its tap is read, into its ring's first buffer. */
	assert_true(frame_arrives(dst, 1, mcast, 6, 0));
	/* The control queue goes on from where it was. */
	uint8_t zero = 0;
	assert_int_equal(ctrl_cmd(dst, 0, 1, &zero, 1), 0);
	assert_false(frame_arrives(dst, 1, mcast, 7, 1));
	/* Asked to announce the guest (after a move), the device sets ANNOUNCE until the driver acks. */
	virtio_net_announce(dst->n);
	assert_int_equal(dev_read(&dst->d, 0x2006, 2), 3);
	assert_int_equal(ctrl_cmd(dst, 3, 0, &zero, 0), 0); /* VIRTIO_NET_CTRL_ANNOUNCE_ACK, no data */
	assert_int_equal(dev_read(&dst->d, 0x2006, 2), 1);
	/* And the source's rings were left alone after the pause. */
	assert_int_equal(used_idx(&src->fx, &src->fx.rx), 1);
	mach_free(dst);
	mach_free(src);
	sbuf_free(&b);
}

/* Offsets in the saved state of this five-queue NIC: the device's own part follows the queues. */
#define NT_QUEUES 29
#define NT_QUEUE  (2 + 2 + 1 + 24 + 37)
#define NT_DEV	  (NT_QUEUES + 5 * NT_QUEUE + 4)
enum {
	ND_VERSION = NT_DEV,
	ND_MAC = NT_DEV + 4,
	ND_STATUS = NT_DEV + 10,
	ND_FLAGS = NT_DEV + 12,
	ND_FMAC = NT_DEV + 13,
	ND_NUNI = NT_DEV + 19,
};

static void test_device_load_rejects(void **state)
{
	struct mach *src = net_source();
	quiesce_close(&src->gate);
	struct sbuf b;
	sbuf_init(&b);
	virtio_pci_save(virtio_net_transport(src->n), &b);
	assert_false(b.oom);
	/* One unicast entry, no multicast: pairs and offloads after them. */
	size_t nd_pairs = ND_NUNI + 2 + 6 + 2, nd_offloads = nd_pairs + 2;
	assert_int_equal(b.len, nd_offloads + 8);
	assert_int_equal(b.data[ND_NUNI], 1);
	struct mach *dst = mach_new(src);
	for (size_t n = 0; n < b.len; n++)
		assert_int_not_equal(mach_load(dst, b.data, n), 0);
	uint8_t *c = malloc(b.len + 1);
	struct {
		size_t off;
		uint64_t v;
		unsigned n;
	} bad[] = {
	    {ND_VERSION, 2, 4},
	    {ND_MAC, 1, 1},		 /* a multicast MAC */
	    {ND_FMAC, 3, 1},		 /* a multicast filter MAC */
	    {ND_STATUS, 4, 2},		 /* unknown status bit */
	    {ND_FLAGS, 0x10, 1},	 /* unknown filter flag */
	    {ND_FLAGS, 4, 1},		 /* unicast table overflowed yet filled */
	    {ND_NUNI, 65, 2},		 /* more entries than the table holds */
	    {ND_NUNI, 2, 2},		 /* more entries than the state has */
	    {nd_pairs, 3, 2},		 /* more pairs than the NIC has */
	    {nd_pairs, 0, 2},		 /* none, in a running device */
	    {nd_offloads, 1ULL << 7, 8}, /* GUEST_TSO4, not negotiated */
	    {nd_offloads, 1ULL << 40, 8},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memcpy(c, b.data, b.len);
		for (unsigned k = 0; k < bad[i].n; k++)
			c[bad[i].off + k] = (uint8_t)(bad[i].v >> (8 * k));
		assert_int_not_equal(mach_load(dst, c, b.len), 0);
		assert_int_equal(dev_status(&dst->d), 0);
		assert_int_equal(dev_read(&dst->d, 0x2003, 1), own_mac[3]);
	}
	/* A byte too many. */
	memcpy(c, b.data, b.len);
	c[b.len] = 0;
	c[NT_DEV - 4] = (uint8_t)(c[NT_DEV - 4] + 1);
	assert_int_not_equal(mach_load(dst, c, b.len + 1), 0);
	assert_int_equal(dev_status(&dst->d), 0);
	/* After all that the good state loads. */
	assert_int_equal(mach_load(dst, b.data, b.len), 0);
	assert_true(frame_arrives(dst, 0, new_mac, 4, 1));
	free(c);
	mach_free(dst);
	mach_free(src);
	sbuf_free(&b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_tx_frame),
	    T(test_tx_bad_frames),
	    T(test_tx_too_many_segments),
	    T(test_tx_backpressure),
	    T(test_tx_inactive),
	    T(test_tx_batch),
	    cmocka_unit_test(test_tx_check_hdr),
	    T(test_rx_frame),
	    T(test_rx_mergeable),
	    T(test_rx_mergeable_pending_limit),
	    T(test_rx_mergeable_small_ring),
	    T(test_rx_oversized),
	    T(test_rx_starved),
	    T(test_rx_bad_frames),
	    T(test_rx_batch),
	    T(test_rx_gone),
	    T(test_rx_no_queue),
	    cmocka_unit_test(test_filter_accepts),
	    T(test_rx_filter),
	    cmocka_unit_test(test_ctrl_rx_mode),
	    cmocka_unit_test(test_ctrl_mac_table),
	    cmocka_unit_test(test_ctrl_mac_addr),
	    cmocka_unit_test(test_ctrl_mq),
	    cmocka_unit_test(test_ctrl_announce),
	    cmocka_unit_test(test_ctrl_offloads),
	    cmocka_unit_test(test_ctrl_malformed),
	    T(test_device_counters),
	    T(test_dirty_log),
	    cmocka_unit_test(test_device_save_load),
	    cmocka_unit_test(test_device_load_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
