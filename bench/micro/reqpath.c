/* SPDX-License-Identifier: MIT */
/*
 * Request-path microbenchmark, no KVM: the device models over guest memory
 * from guest_mem_alloc(), driven as a guest driver drives them, one request
 * at a time. scripts/bench-micro.sh runs each case under callgrind and turns
 * the instructions counted between CALLGRIND_START_INSTRUMENTATION and
 * CALLGRIND_STOP_INSTRUMENTATION (the measured loop only: set-up, a short
 * warm-up and teardown are excluded) into instructions per request.
 *
 * blk-read, blk-write: a 4 KiB request on a raw image (a temporary file),
 *   through the whole virtio-pci path: descriptors and avail ring, the
 *   notify register write, the queue thread's wake-up on its kick eventfd,
 *   the request served from that thread (queue depth 1: no hand-off to the
 *   workers), the used ring, INTx, the driver's wait and its ISR read. Both
 *   threads count. Under valgrind the driver then sleeps 50 us (not counted)
 *   so that every request finds the queue thread asleep and pays its wake-up.
 * net-tx, net-rx: one 1514-byte frame through the data paths the queue
 *   pair's thread runs on each wake-up (net_tx_run(), net_rx_run() from
 *   virtio/net_priv.h, as the unit tests drive them), with one end of a
 *   SOCK_SEQPACKET socketpair as the tap and the bench at the other end.
 *   No transport, thread or eventfd: the interrupt is a counting callback.
 *
 * Without callgrind it prints wall-clock ns per request (for a sanity check
 * only: that number depends on the machine, the instruction count does not).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <valgrind/callgrind.h>

#include "common/quiesce.h"
#include "devices/disk/disk.h"
#include "devices/pci.h"
#include "virtio/blk.h"
#include "virtio/net_priv.h"
#include "virtio/virtio.h"
#include "vmm/memory.h"

#define MiB	 (1ULL << 20)
#define RAM_SIZE (16 * MiB)
#define WARMUP	 64
#define QSIZE	 256
#define F_NEXT	 1
#define F_WRITE	 2
/* blk: queue 0 rings, one request's header, 4 KiB of data and status byte. */
#define BLK_DESC    0x10000ULL
#define BLK_AVAIL   0x11000ULL
#define BLK_USED    0x12000ULL
#define BLK_HDR	    0x20000ULL
#define BLK_DATA    0x21000ULL
#define BLK_STATUS  0x22000ULL
#define BLK_LEN	    4096
#define DISK_BYTES  (4 * MiB)
#define DEVFN	    PCI_DEVFN(1, 0)
#define MEM64_START 0x100000000ULL
#define BAR_ISR	    0x1000
#define BAR_NOTIFY  0x3000
#define SETTLE_NS   50000 /* ns */
/* net: receive and transmit rings and one buffer per descriptor. */
#define RX_DESC	   0x30000ULL
#define RX_AVAIL   0x31000ULL
#define RX_USED	   0x32000ULL
#define TX_DESC	   0x33000ULL
#define TX_AVAIL   0x34000ULL
#define TX_USED	   0x35000ULL
#define RXBUF(i)   (0x100000ULL + (uint64_t)(i)*0x800ULL)
#define TXBUF(i)   (0x200000ULL + (uint64_t)(i)*0x800ULL)
#define FRAME_LEN  1514 /* Ethernet header + 1500 bytes */
#define RX_BUF_LEN 1530 /* what Linux posts without mergeable buffers: 12 + 14 + 4 (VLAN) + 1500 */
#define HDR	   NET_VNET_HDR_LEN

static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("reqpath: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- the driver's side of a split ring (little-endian host assumed, as the unit tests do) ---- */

struct ring {
	uint8_t *desc, *avail, *used;
	uint16_t avail_idx, used_seen;
};

static struct ring ring_at(struct guest_mem *m, uint64_t desc, uint64_t avail, uint64_t used)
{
	uint8_t *d = guest_mem_ptr(m, desc, 0x3000);
	if (!d)
		die("rings outside guest memory");
	memset(d, 0, 0x3000);
	return (struct ring){d, guest_mem_ptr(m, avail, 1), guest_mem_ptr(m, used, 1), 0, 0};
}

static void put_desc(struct ring *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = r->desc + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void avail_add(struct ring *r, uint16_t head)
{
	memcpy(r->avail + 4 + 2 * (r->avail_idx % QSIZE), &head, 2);
	r->avail_idx++;
	__atomic_store_n((uint16_t *)(r->avail + 2), r->avail_idx, __ATOMIC_RELEASE);
}

/* The next used element (id, len); dies when the device has not pushed one. */
static void used_next(struct ring *r, uint32_t *id, uint32_t *len)
{
	if (__atomic_load_n((uint16_t *)(r->used + 2), __ATOMIC_ACQUIRE) == r->used_seen)
		die("no used buffer after a request");
	const uint8_t *e = r->used + 4 + 8 * (r->used_seen % QSIZE);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	r->used_seen++;
}

/* ---- virtio-blk through the virtio-pci transport ---- */

struct blk_fx {
	struct guest_mem mem;
	struct pci_host *host;
	struct disk *disk;
	struct virtio_blk *blk;
	struct virtio_blk_stats st;
	struct quiesce gate;
	struct ring r;
	char path[64];
	uint64_t regs; /* BAR 4 */
	int irq_fd;    /* eventfd: one count per rising edge of INTx */
};

static void intx_set(void *opaque, unsigned gsi, int level)
{
	uint64_t one = 1;
	if (level && write(((struct blk_fx *)opaque)->irq_fd, &one, 8) != 8)
		die("intx eventfd: %s", strerror(errno));
}

static uint32_t cfg_io(struct blk_fx *f, unsigned reg, uint32_t v, bool wr)
{
	uint8_t a[4] = {(uint8_t)reg, (uint8_t)DEVFN, 0, 0x80}, d[4];
	memcpy(d, &v, 4);
	pci_host_addr_io(f->host, 0, a, 4, true);
	pci_host_data_io(f->host, 0, d, 4, wr);
	memcpy(&v, d, 4);
	return v;
}

static uint64_t reg_io(struct blk_fx *f, uint64_t off, uint64_t v, uint32_t len, bool wr)
{
	uint8_t d[8];
	memcpy(d, &v, 8);
	pci_host_mem64_window(f->host, f->regs + off - MEM64_START, d, len, wr);
	v = 0;
	memcpy(&v, d, len);
	return v;
}

/* The driver's bring-up (virtio 1.2, 3.1.1): VERSION_1 only (no EVENT_IDX: an interrupt per request). */
static void blk_driver_init(struct blk_fx *f)
{
	const uint64_t s1 = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER,
		       s2 = s1 | VIRTIO_STATUS_FEATURES_OK;
	reg_io(f, 20, 0, 1, true);
	reg_io(f, 20, s1, 1, true);
	reg_io(f, 8, 1, 4, true); /* driver_feature_select 1: bit 32 */
	reg_io(f, 12, 1, 4, true);
	reg_io(f, 20, s2, 1, true);
	if (!(reg_io(f, 20, 0, 1, false) & VIRTIO_STATUS_FEATURES_OK))
		die("virtio-blk refused VERSION_1");
	reg_io(f, 22, 0, 2, true); /* queue 0 */
	reg_io(f, 24, QSIZE, 2, true);
	f->r = ring_at(&f->mem, BLK_DESC, BLK_AVAIL, BLK_USED);
	reg_io(f, 32, BLK_DESC, 8, true);
	reg_io(f, 40, BLK_AVAIL, 8, true);
	reg_io(f, 48, BLK_USED, 8, true);
	reg_io(f, 28, 1, 2, true);
	reg_io(f, 20, s2 | VIRTIO_STATUS_DRIVER_OK, 1, true);
	if (!(reg_io(f, 20, 0, 1, false) & VIRTIO_STATUS_DRIVER_OK))
		die("virtio-blk did not start");
}

static struct blk_fx *blk_new(void)
{
	struct blk_fx *f = calloc(1, sizeof(*f));
	struct err e = {0};
	if (!f)
		die("out of memory");
	quiesce_init(&f->gate);
	if (guest_mem_alloc(&f->mem, RAM_SIZE, &e))
		die("guest memory: %s", e.msg);
	f->irq_fd = eventfd(0, EFD_CLOEXEC);
	struct pci_windows w = {0x1000,	    0xffff,	 0xc0000000,
				0xfebfffff, MEM64_START, MEM64_START + (1ULL << 30) - 1};
	f->host = pci_host_create(&w);
	strcpy(f->path, "/tmp/kvmini-reqpath.XXXXXX");
	int fd = mkstemp(f->path);
	if (f->irq_fd < 0 || !f->host || fd < 0)
		die("set-up: %s", strerror(errno));
	/* Written out, not sparse: reads come from the page cache, as for a warm image. */
	static uint8_t img[DISK_BYTES];
	memset(img, 0x5a, sizeof(img));
	if (pwrite(fd, img, sizeof(img), 0) != (ssize_t)sizeof(img))
		die("%s: %s", f->path, strerror(errno));
	close(fd);
	struct disk_config dc = {.path = f->path, .format = DISK_FORMAT_RAW};
	if (disk_open(&dc, &f->disk, &e))
		die("%s", e.msg);
	struct virtio_pci_env env = {
	    .host = f->host, .mem = &f->mem, .intx = {intx_set, f, 16}, .gate = &f->gate};
	f->blk = virtio_blk_create(&env, DEVFN, f->disk, 1, &f->st, "virtio-blk vda", &e);
	if (!f->blk)
		die("%s", e.msg);
	cfg_io(f, 0x04, 0x6, true); /* memory decoding and bus mastering on, as firmware leaves them */
	f->regs = (cfg_io(f, 0x20, 0, false) & ~0xfULL) | (uint64_t)cfg_io(f, 0x24, 0, false) << 32;
	blk_driver_init(f);
	return f;
}

static void blk_free(struct blk_fx *f)
{
	virtio_blk_destroy(f->blk);
	disk_close(f->disk);
	pci_host_destroy(f->host);
	guest_mem_free(&f->mem);
	unlink(f->path);
	close(f->irq_fd);
	quiesce_destroy(&f->gate);
	free(f);
}

/* Request i: header, 4 KiB, status; notify; sleep until INTx; acknowledge it; check the result. */
static void blk_request(struct blk_fx *f, uint32_t type, uint64_t i)
{
	uint8_t *hdr = f->mem.map + BLK_HDR, *status = f->mem.map + BLK_STATUS;
	uint64_t sector = i * (BLK_LEN / 512) % (DISK_BYTES / 512), n;
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	*status = 0xee;
	put_desc(&f->r, 0, BLK_HDR, 16, F_NEXT, 1);
	put_desc(&f->r, 1, BLK_DATA, BLK_LEN, F_NEXT | (type == 0 ? F_WRITE : 0), 2);
	put_desc(&f->r, 2, BLK_STATUS, 1, F_WRITE, 0);
	avail_add(&f->r, 0);
	reg_io(f, BAR_NOTIFY, 0, 2, true); /* no ioeventfd here: the write exits to the transport */
	if (read(f->irq_fd, &n, 8) != 8)
		die("intx eventfd: %s", strerror(errno));
	reg_io(f, BAR_ISR, 0, 1, false); /* reading the ISR lowers INTx */
	uint32_t id, len;
	used_next(&f->r, &id, &len);
	if (id != 0 || *status != 0 || len != (type == 0 ? BLK_LEN + 1 : 1))
		die("blk request %llu: id %u status %u len %u", (unsigned long long)i, id, *status, len);
	/*
	 * Under valgrind, which runs one thread at a time, let the queue thread go back to sleep
	 * before the next request: otherwise whether it finds that request while still awake (and
	 * skips a wake-up) depends on scheduling, and the count moves by a few percent. The sleep
	 * itself is left out of the count (collection is toggled for this thread only).
	 */
	if (RUNNING_ON_VALGRIND) {
		CALLGRIND_TOGGLE_COLLECT;
		nanosleep(&(struct timespec){0, SETTLE_NS}, NULL);
		CALLGRIND_TOGGLE_COLLECT;
	}
}

/* ---- virtio-net data paths ---- */

struct net_fx {
	struct guest_mem mem;
	struct virtq rxq, txq;
	struct ring rx, tx;
	struct virtio_net_stats st;
	struct net_filter filter;
	struct net_pair p;
	int peer; /* the tap's far side */
	uint64_t notified;
	uint8_t frame[HDR + FRAME_LEN];
};

static struct net_fx *notify_fx;

static void net_notify(struct net_pair *p)
{
	notify_fx->notified++;
}

static struct net_fx *net_new(void)
{
	struct net_fx *f = calloc(1, sizeof(*f));
	struct err e = {0};
	if (!f)
		die("out of memory");
	if (guest_mem_alloc(&f->mem, RAM_SIZE, &e))
		die("guest memory: %s", e.msg);
	f->rx = ring_at(&f->mem, RX_DESC, RX_AVAIL, RX_USED);
	f->tx = ring_at(&f->mem, TX_DESC, TX_AVAIL, TX_USED);
	struct virtq_layout rl = {QSIZE, RX_DESC, RX_AVAIL, RX_USED, false, false},
			    tl = {QSIZE, TX_DESC, TX_AVAIL, TX_USED, false, false};
	int sv[2];
	if (virtq_enable(&f->rxq, &f->mem, &rl) || virtq_enable(&f->txq, &f->mem, &tl) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		die("net set-up failed");
	f->peer = sv[1];
	/* Unicast to our MAC, promiscuous off: the filter's usual case. */
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	memcpy(f->filter.mac, mac, 6);
	memcpy(f->frame + HDR, mac, 6);
	for (unsigned i = 6; i < FRAME_LEN; i++)
		f->frame[HDR + i] = (uint8_t)(i * 7);
	f->p.fd = sv[0]; /* the rest of the pair zeroed by calloc: no pending chains, nothing stashed */
	f->p.active = true;
	f->p.rxq = &f->rxq;
	f->p.txq = &f->txq;
	f->p.cnt = &f->st;
	/* As net.c's mode_for() sets it for a 1500-byte MTU without mergeable buffers or GSO. */
	f->p.mode = (struct net_mode){.rx_need = HDR + NET_ETH_HLEN + 4 + 1500};
	/* The guest's transmit buffers hold their frames already; its receive ring starts full. */
	for (unsigned i = 0; i < QSIZE; i++) {
		memcpy(guest_mem_ptr(&f->mem, TXBUF(i), sizeof(f->frame)), f->frame, sizeof(f->frame));
		put_desc(&f->rx, i, RXBUF(i), RX_BUF_LEN, F_WRITE, 0);
		avail_add(&f->rx, (uint16_t)i);
	}
	notify_fx = f;
	return f;
}

static void net_free(struct net_fx *f)
{
	close(f->p.fd);
	close(f->peer);
	guest_mem_free(&f->mem);
	free(f);
}

static void net_tx(struct net_fx *f, uint64_t i)
{
	const char *why = NULL;
	unsigned d = (unsigned)(i % QSIZE);
	uint8_t b[sizeof(f->frame) + 64];
	put_desc(&f->tx, d, TXBUF(d), sizeof(f->frame), 0, 0);
	avail_add(&f->tx, (uint16_t)d);
	if (net_tx_run(&f->p, net_notify, &why) != NET_IO_IDLE)
		die("net_tx_run: %s", why ? why : "not idle");
	uint32_t id, len;
	used_next(&f->tx, &id, &len);
	if (id != d || recv(f->peer, b, sizeof(b), MSG_DONTWAIT) != (ssize_t)sizeof(f->frame))
		die("tx frame %llu lost", (unsigned long long)i);
}

/* The peer sends a frame; the device moves it into a posted buffer, which the guest posts again. */
static void net_rx(struct net_fx *f, uint64_t i)
{
	const char *why = NULL;
	if (send(f->peer, f->frame, sizeof(f->frame), MSG_DONTWAIT) != (ssize_t)sizeof(f->frame))
		die("send: %s", strerror(errno));
	if (net_rx_run(&f->p, &f->filter, net_notify, &why) != NET_IO_IDLE)
		die("net_rx_run: %s", why ? why : "not idle");
	uint32_t id, len;
	used_next(&f->rx, &id, &len);
	if (len != sizeof(f->frame) || id >= QSIZE)
		die("rx frame %llu: id %u len %u", (unsigned long long)i, id, len);
	avail_add(&f->rx, (uint16_t)id);
}

/* ---- cases ---- */

enum kind { BLK_READ, BLK_WRITE, NET_TX, NET_RX };
static const char *const names[] = {"blk-read", "blk-write", "net-tx", "net-rx"};

static void one(enum kind k, void *fx, uint64_t i)
{
	switch (k) {
	case BLK_READ:
		blk_request(fx, 0, i); /* VIRTIO_BLK_T_IN */
		break;
	case BLK_WRITE:
		blk_request(fx, 1, i); /* VIRTIO_BLK_T_OUT */
		break;
	case NET_TX:
		net_tx(fx, i);
		break;
	case NET_RX:
		net_rx(fx, i);
		break;
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run(enum kind k, uint64_t n)
{
	bool blk = k == BLK_READ || k == BLK_WRITE;
	void *fx = blk ? (void *)blk_new() : (void *)net_new();
	/* Lazy symbol binding, first touches of the image and buffers: not what a request costs. */
	for (uint64_t i = 0; i < WARMUP; i++)
		one(k, fx, i);
	double t0 = now_s();
	CALLGRIND_START_INSTRUMENTATION;
	for (uint64_t i = 0; i < n; i++)
		one(k, fx, WARMUP + i);
	CALLGRIND_STOP_INSTRUMENTATION;
	double t = now_s() - t0;
	printf("%-10s %8llu requests %10.0f ns/request (wall clock%s)\n", names[k], (unsigned long long)n,
	       t * 1e9 / (double)n, RUNNING_ON_VALGRIND ? ", under valgrind: meaningless" : "");
	if (blk)
		blk_free(fx);
	else
		net_free(fx);
}

int main(int argc, char **argv)
{
	const char *which = "all";
	uint64_t n = 20000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--case") && i + 1 < argc)
			which = argv[++i];
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 0);
		else
			die("usage: reqpath [--case all|blk-read|blk-write|net-tx|net-rx] [--requests N]");
	}
	if (n == 0)
		die("--requests must be at least 1");
	bool found = false;
	for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (!strcmp(which, "all") || !strcmp(which, names[k])) {
			run((enum kind)k, n);
			found = true;
		}
	if (!found)
		die("unknown case %s", which);
	return 0;
}
