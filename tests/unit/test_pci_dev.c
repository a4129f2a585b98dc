/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for a PCI function (devices/pci_dev.c), driven as a guest does:
 * configuration cycles on 0xcf8/0xcfc and accesses in the host's windows.
 * MSI-X goes through a fake msi_controller whose routes carry real eventfds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci_dev.h"

#define IO_START    0x1000ULL
#define IO_END	    0xffffULL
#define MEM32_START 0xc0000000ULL
#define MEM32_END   0xfebfffffULL
#define MEM64_START 0x200000000ULL
#define MEM64_END   (MEM64_START + (1ULL << 36) - 1)
#define DEVFN	    PCI_DEVFN(3, 0)
#define GSI	    19
#define NVEC	    5
#define MSIX_BAR    1
#define TABLE_OFF   0x0
#define PBA_OFF	    0x800

/* ---- fakes ---- */

#define MAX_ROUTES 16

struct fake_msi {
	struct {
		bool live;
		int efd;
		struct msi_msg msg;
	} r[MAX_ROUTES];
	int adds, sets, dels;
	int fail_add, fail_set; /* -errno to return */
};

static int fm_add(void *opaque, int efd, const struct msi_msg *msg, unsigned *route)
{
	struct fake_msi *m = opaque;
	if (m->fail_add)
		return m->fail_add;
	for (unsigned i = 0; i < MAX_ROUTES; i++) {
		if (m->r[i].live)
			continue;
		m->r[i].live = true;
		m->r[i].efd = efd;
		m->r[i].msg = *msg;
		m->adds++;
		*route = i;
		return 0;
	}
	return -ENOSPC;
}

static int fm_set(void *opaque, unsigned route, const struct msi_msg *msg)
{
	struct fake_msi *m = opaque;
	assert_true(route < MAX_ROUTES && m->r[route].live);
	if (m->fail_set)
		return m->fail_set;
	m->r[route].msg = *msg;
	m->sets++;
	return 0;
}

static void fm_del(void *opaque, unsigned route, int efd)
{
	struct fake_msi *m = opaque;
	assert_true(route < MAX_ROUTES && m->r[route].live);
	assert_int_equal(m->r[route].efd, efd);
	m->r[route].live = false;
	m->dels++;
}

/* The route whose message is (addr, data); -1 if none. */
static int route_to(const struct fake_msi *m, uint64_t addr, uint32_t data)
{
	for (int i = 0; i < MAX_ROUTES; i++)
		if (m->r[i].live && m->r[i].msg.addr == addr && m->r[i].msg.data == data)
			return i;
	return -1;
}

/* Interrupts that reached route i's eventfd since the last call. */
static uint64_t fired(const struct fake_msi *m, int i)
{
	uint64_t n = 0;
	assert_true(i >= 0 && i < MAX_ROUTES && m->r[i].live);
	if (read(m->r[i].efd, &n, sizeof(n)) != sizeof(n))
		return 0; /* EAGAIN: nothing */
	return n;
}

struct line {
	int level;
	unsigned gsi;
	int changes;
};

static void line_set(void *opaque, unsigned gsi, int level)
{
	struct line *l = opaque;
	l->gsi = gsi;
	l->level = level;
	l->changes++;
}

/* A device's BARs: registers that remember writes, and a log of remap events. */
struct remap_ev {
	unsigned bar;
	uint64_t addr;
	bool mapped;
};

struct fdev {
	uint8_t regs[PCI_NUM_BARS][0x4000];
	int accesses;
	struct remap_ev ev[64];
	int nev;
};

static void dev_access(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct fdev *f = opaque;
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER; /* accesses arrive concurrently: we serialise */
	assert_true(bar < PCI_NUM_BARS && off + len <= sizeof(f->regs[0]));
	pthread_mutex_lock(&m);
	f->accesses++;
	if (is_write)
		memcpy(f->regs[bar] + off, data, len);
	else
		memcpy(data, f->regs[bar] + off, len);
	pthread_mutex_unlock(&m);
}

static void dev_remap(void *opaque, unsigned bar, uint64_t addr, bool mapped)
{
	struct fdev *f = opaque;
	if (f->nev < 64)
		f->ev[f->nev++] = (struct remap_ev){bar, addr, mapped};
}

static const struct pci_bar_ops dev_ops = {.access = dev_access, .remap = dev_remap};

struct fx {
	struct pci_host *host;
	struct pci_dev *dev;
	struct fake_msi msi;
	struct msi_controller mc;
	struct line line;
	struct fdev f;
};

/* ---- guest-side helpers ---- */

static void set_addr(struct fx *x, unsigned reg)
{
	uint32_t a = 0x80000000u | DEVFN << 8 | (reg & 0xfc);
	uint8_t d[4] = {(uint8_t)a, (uint8_t)(a >> 8), (uint8_t)(a >> 16), (uint8_t)(a >> 24)};
	pci_host_addr_io(x->host, 0, d, 4, true);
}

static uint32_t cfg_read(struct fx *x, unsigned reg, unsigned len)
{
	uint8_t d[4] = {0};
	set_addr(x, reg);
	pci_host_data_io(x->host, reg & 3, d, len, false);
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void cfg_write(struct fx *x, unsigned reg, unsigned len, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	set_addr(x, reg);
	pci_host_data_io(x->host, reg & 3, d, len, true);
}

/* An access at guest address a through whichever window holds it. */
static void guest_io(struct fx *x, bool io, uint64_t a, uint8_t *d, uint32_t len, bool is_write)
{
	if (io)
		pci_host_io_window(x->host, a - IO_START, d, len, is_write);
	else if (a >= MEM64_START)
		pci_host_mem64_window(x->host, a - MEM64_START, d, len, is_write);
	else
		pci_host_mem32_window(x->host, a - MEM32_START, d, len, is_write);
}

static uint64_t mem_read(struct fx *x, uint64_t a, uint32_t len)
{
	uint8_t d[8] = {0};
	guest_io(x, false, a, d, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void mem_write(struct fx *x, uint64_t a, uint64_t v, uint32_t len)
{
	uint8_t d[8];
	for (uint32_t i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	guest_io(x, false, a, d, len, true);
}

static uint64_t bar_base(struct fx *x, unsigned bar)
{
	uint32_t lo = cfg_read(x, 0x10 + 4 * bar, 4);
	if (lo & 1)
		return lo & ~3u;
	uint64_t a = lo & ~0xfu;
	if ((lo & 6) == 4)
		a |= (uint64_t)cfg_read(x, 0x14 + 4 * bar, 4) << 32;
	return a;
}

/*
 * The fixture's function: BAR 0 I/O 32 bytes, BAR 1 MEM32 8 KiB (MSI-X table
 * and PBA, the rest the device's), BAR 2+3 MEM64 prefetchable 16 KiB,
 * NVEC MSI-X vectors, INTA#.
 */
static struct fx *make(bool with_msi)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct pci_windows w = {IO_START, IO_END, MEM32_START, MEM32_END, MEM64_START, MEM64_END};
	struct pci_dev_id id = {.vendor = 0x1af4,
				.device = 0x1042,
				.subsys_vendor = 0x1af4,
				.subsys = 0x0040,
				.revision = 1,
				.class_code = 0x010000,
				.int_pin = 1};
	struct err e = {0};

	assert_non_null(x);
	x->host = pci_host_create(&w);
	assert_non_null(x->host);
	x->mc = (struct msi_controller){fm_add, fm_set, fm_del, &x->msi};
	struct irq_line l = {line_set, &x->line, GSI};
	x->dev = pci_dev_create(x->host, DEVFN, &id, &l, with_msi ? &x->mc : NULL, &e);
	assert_non_null(x->dev);
	assert_int_equal(pci_dev_add_bar(x->dev, 0, PCI_BAR_IO, false, 32, &dev_ops, &x->f), 0);
	assert_int_equal(pci_dev_add_bar(x->dev, MSIX_BAR, PCI_BAR_MEM32, false, 0x2000, &dev_ops, &x->f), 0);
	assert_int_equal(pci_dev_add_bar(x->dev, 2, PCI_BAR_MEM64, true, 0x4000, &dev_ops, &x->f), 0);
	assert_int_equal(pci_dev_add_msix(x->dev, NVEC, MSIX_BAR, TABLE_OFF, PBA_OFF), 0);
	assert_int_equal(x->f.nev, 0); /* nothing decodes yet: command is 0 */
	return x;
}

static int setup(void **state)
{
	*state = make(true);
	return 0;
}

static int setup_nomsi(void **state)
{
	*state = make(false);
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	pci_dev_destroy(x->dev);
	for (int i = 0; i < MAX_ROUTES; i++)
		assert_false(x->msi.r[i].live); /* every route given back */
	pci_host_destroy(x->host);
	free(x);
	return 0;
}

/* ---- the header ---- */

static void test_header(void **state)
{
	struct fx *x = *state;

	assert_int_equal(cfg_read(x, 0x00, 4), 0x10421af4u);
	assert_int_equal(cfg_read(x, 0x04, 2), 0);
	assert_int_equal(cfg_read(x, 0x06, 2), 0x0010); /* capability list */
	assert_int_equal(cfg_read(x, 0x08, 4), 0x01000001u);
	assert_int_equal(cfg_read(x, 0x0e, 1), 0x00); /* type 0, single function */
	assert_int_equal(cfg_read(x, 0x2c, 4), 0x00401af4u);
	assert_int_equal(cfg_read(x, 0x30, 4), 0); /* no expansion ROM */
	assert_int_equal(cfg_read(x, 0x34, 1), 0x40);
	assert_int_equal(cfg_read(x, 0x3d, 1), 1); /* INTA# */
	/* Read-only fields stay put. */
	for (unsigned reg = 0; reg < 0x10; reg += 4)
		if (reg != 4)
			cfg_write(x, reg, 4, 0xffffffffu);
	cfg_write(x, 0x2c, 4, 0);
	cfg_write(x, 0x30, 4, 0xffffffffu);
	cfg_write(x, 0x34, 1, 0x80);
	cfg_write(x, 0x3d, 1, 4);
	cfg_write(x, 0x06, 2, 0xffff);
	assert_int_equal(cfg_read(x, 0x00, 4), 0x10421af4u);
	assert_int_equal(cfg_read(x, 0x08, 4), 0x01000001u);
	assert_int_equal(cfg_read(x, 0x0c, 4), 0);
	assert_int_equal(cfg_read(x, 0x2c, 4), 0x00401af4u);
	assert_int_equal(cfg_read(x, 0x30, 4), 0);
	assert_int_equal(cfg_read(x, 0x34, 1), 0x40);
	assert_int_equal(cfg_read(x, 0x3d, 1), 1);
	assert_int_equal(cfg_read(x, 0x06, 2), 0x0010);
	/* Interrupt line: the guest's scratch byte. */
	cfg_write(x, 0x3c, 1, 0x0b);
	assert_int_equal(cfg_read(x, 0x3c, 2), 0x010b);
	cfg_write(x, 0x3c, 4, 0xffffff0a);
	assert_int_equal(cfg_read(x, 0x3c, 4), 0x0000010a);
	/* Command: only I/O, memory, bus master, parity, SERR#, INTx disable. */
	cfg_write(x, 0x04, 2, 0xffff);
	assert_int_equal(cfg_read(x, 0x04, 2), 0x0547);
	cfg_write(x, 0x05, 1, 0x00); /* a byte write to the high half keeps the low */
	assert_int_equal(cfg_read(x, 0x04, 2), 0x0047);
	cfg_write(x, 0x04, 4, 0);
	assert_int_equal(cfg_read(x, 0x04, 2), 0);
	/* Unaligned word: split into bytes by the host, merged here. */
	set_addr(x, 0x3c);
	uint8_t d[2] = {0x05, 0x07};
	pci_host_data_io(x->host, 1, d, 2, true); /* 0x3d (pin, read-only), 0x3e (min_gnt, read-only) */
	assert_int_equal(cfg_read(x, 0x3c, 4), 0x0000010a);
	/* Beyond the capabilities: zeros. */
	assert_int_equal(cfg_read(x, 0xfc, 4), 0);
}

/* ---- BARs ---- */

static void test_bar_sizing(void **state)
{
	struct fx *x = *state;
	uint32_t orig[6];

	for (unsigned i = 0; i < 6; i++)
		orig[i] = cfg_read(x, 0x10 + 4 * i, 4);
	/* As placed: I/O in the I/O window, MEM32 below 4 GiB, MEM64 in the 64-bit window, all aligned. */
	uint64_t io = bar_base(x, 0), m32 = bar_base(x, 1), m64 = bar_base(x, 2);
	assert_true(io >= IO_START && io + 31 <= IO_END && io % 32 == 0);
	assert_true(m32 >= MEM32_START && m32 + 0x1fff <= MEM32_END && m32 % 0x2000 == 0);
	assert_true(m64 >= MEM64_START && m64 + 0x3fff <= MEM64_END && m64 % 0x4000 == 0);
	assert_int_equal(orig[0] & 3, 1);     /* I/O */
	assert_int_equal(orig[1] & 0xf, 0);   /* 32-bit, not prefetchable */
	assert_int_equal(orig[2] & 0xf, 0xc); /* 64-bit, prefetchable */
	assert_int_equal(orig[4], 0);
	assert_int_equal(orig[5], 0);

	for (unsigned i = 0; i < 6; i++)
		cfg_write(x, 0x10 + 4 * i, 4, 0xffffffffu);
	assert_int_equal(cfg_read(x, 0x10, 4), 0xffffffe1u);
	assert_int_equal(cfg_read(x, 0x14, 4), 0xffffe000u);
	assert_int_equal(cfg_read(x, 0x18, 4), 0xffffc00cu);
	assert_int_equal(cfg_read(x, 0x1c, 4), 0xffffffffu);
	assert_int_equal(cfg_read(x, 0x20, 4), 0); /* absent BARs are hardwired to 0 */
	assert_int_equal(cfg_read(x, 0x24, 4), 0);
	/* Narrow reads of the size mask, as some guests do. */
	assert_int_equal(cfg_read(x, 0x12, 2), 0xffff);
	assert_int_equal(cfg_read(x, 0x10, 1), 0xe1);
	for (unsigned i = 0; i < 6; i++)
		cfg_write(x, 0x10 + 4 * i, 4, orig[i]);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(cfg_read(x, 0x10 + 4 * i, 4), orig[i]);
	/* Type bits are read-only. */
	cfg_write(x, 0x14, 4, (uint32_t)m32 | 0xf);
	assert_int_equal(cfg_read(x, 0x14, 4), (uint32_t)m32);
	cfg_write(x, 0x10, 4, (uint32_t)io | 2);
	assert_int_equal(cfg_read(x, 0x10, 4), (uint32_t)io | 1);
	/* Byte writes to a BAR merge with the rest. */
	cfg_write(x, 0x17, 1, 0xd0);
	assert_int_equal(cfg_read(x, 0x14, 4), ((uint32_t)m32 & 0x00ffffffu) | 0xd0000000u);
	/* Nothing decoded throughout: command is 0. */
	assert_int_equal(x->f.nev, 0);
	assert_int_equal(pci_dev_bar_addr(x->dev, 1), 0);
}

static void test_decode_and_move(void **state)
{
	struct fx *x = *state;
	uint64_t io = bar_base(x, 0), m32 = bar_base(x, 1), m64 = bar_base(x, 2);
	uint8_t d[4];

	/* Command 0: open bus everywhere, the device sees nothing. */
	assert_int_equal(mem_read(x, m32 + 0x1000, 4), 0xffffffffu);
	assert_int_equal(mem_read(x, m64, 8), UINT64_MAX);
	guest_io(x, true, io, d, 1, false);
	assert_int_equal(d[0], 0xff);
	assert_int_equal(x->f.accesses, 0);

	/* Memory on: both memory BARs decode, the I/O BAR still does not. */
	cfg_write(x, 0x04, 2, 0x0002);
	assert_int_equal(x->f.nev, 2);
	assert_int_equal(x->f.ev[0].bar, 1);
	assert_int_equal(x->f.ev[0].addr, m32);
	assert_true(x->f.ev[0].mapped);
	assert_int_equal(x->f.ev[1].bar, 2);
	assert_int_equal(x->f.ev[1].addr, m64);
	assert_true(x->f.ev[1].mapped);
	assert_int_equal(pci_dev_bar_addr(x->dev, 1), m32);
	assert_int_equal(pci_dev_bar_addr(x->dev, 2), m64);
	assert_int_equal(pci_dev_bar_addr(x->dev, 3), 0);
	assert_int_equal(pci_dev_bar_addr(x->dev, 0), 0);
	mem_write(x, m64 + 0x10, 0x1122334455667788ULL, 8);
	assert_int_equal(mem_read(x, m64 + 0x10, 8), 0x1122334455667788ULL);
	assert_int_equal(mem_read(x, m64 + 0x14, 2), 0x3344);
	mem_write(x, m32 + 0x1000, 0xcafe, 2); /* past the PBA: the device's */
	assert_int_equal(x->f.regs[1][0x1000], 0xfe);
	guest_io(x, true, io, d, 1, false);
	assert_int_equal(d[0], 0xff);
	/* I/O on too. */
	x->f.nev = 0;
	cfg_write(x, 0x04, 2, 0x0003);
	assert_int_equal(x->f.nev, 1);
	assert_int_equal(x->f.ev[0].bar, 0);
	assert_int_equal(x->f.ev[0].addr, io);
	d[0] = 0x5a;
	guest_io(x, true, io + 31, d, 1, true);
	assert_int_equal(x->f.regs[0][31], 0x5a);
	d[0] = 0;
	guest_io(x, true, io + 31, d, 2, false); /* runs past the BAR: open bus */
	assert_int_equal(d[0], 0xff);

	/* Move the 64-bit BAR (low then high, as Linux does), decoding on all along. */
	uint64_t to = MEM64_START + 0x100000000ULL;
	x->f.nev = 0;
	cfg_write(x, 0x18, 4, (uint32_t)to | 0xc);
	cfg_write(x, 0x1c, 4, (uint32_t)(to >> 32));
	assert_int_equal(bar_base(x, 2), to);
	assert_int_equal(x->f.ev[x->f.nev - 1].addr, to);
	assert_true(x->f.ev[x->f.nev - 1].mapped);
	assert_int_equal(pci_dev_bar_addr(x->dev, 2), to);
	assert_int_equal(mem_read(x, m64 + 0x10, 8), UINT64_MAX);
	assert_int_equal(mem_read(x, to + 0x10, 8), 0x1122334455667788ULL);
	/* Into the 32-bit window: the 32-bit window now reaches it. */
	uint64_t low = MEM32_START + 0x01000000;
	cfg_write(x, 0x1c, 4, 0);
	cfg_write(x, 0x18, 4, (uint32_t)low);
	assert_int_equal(mem_read(x, low + 0x10, 8), 0x1122334455667788ULL);
	assert_int_equal(mem_read(x, to + 0x10, 8), UINT64_MAX);
	/* Move the MSI-X BAR: the table follows it. */
	uint64_t m32b = MEM32_START + 0x02000000;
	cfg_write(x, 0x14, 4, (uint32_t)m32b);
	assert_int_equal(mem_read(x, m32 + TABLE_OFF + 12, 4), 0xffffffffu);
	assert_int_equal(mem_read(x, m32b + TABLE_OFF + 12, 4), 1); /* vector control: masked */

	/* Sizing while decoding: the all-ones pattern does not decode; restoring maps it again. */
	x->f.nev = 0;
	cfg_write(x, 0x14, 4, 0xffffffffu);
	assert_int_equal(x->f.nev, 1);
	assert_false(x->f.ev[0].mapped);
	assert_int_equal(x->f.ev[0].addr, m32b);
	assert_int_equal(pci_dev_bar_addr(x->dev, 1), 0);
	cfg_write(x, 0x14, 4, (uint32_t)m32b);
	assert_int_equal(x->f.nev, 2);
	assert_true(x->f.ev[1].mapped);
	/* Address 0 never decodes. */
	cfg_write(x, 0x10, 4, 0);
	assert_int_equal(pci_dev_bar_addr(x->dev, 0), 0);
	cfg_write(x, 0x10, 4, (uint32_t)io);
	/* Writing the same value again is no event. */
	x->f.nev = 0;
	cfg_write(x, 0x14, 4, (uint32_t)m32b);
	cfg_write(x, 0x04, 2, 0x0003);
	assert_int_equal(x->f.nev, 0);

	/* Memory off: every memory BAR stops, with an event each; the I/O BAR stays. */
	cfg_write(x, 0x04, 2, 0x0001);
	assert_int_equal(x->f.nev, 2);
	assert_false(x->f.ev[0].mapped);
	assert_false(x->f.ev[1].mapped);
	assert_int_equal(mem_read(x, low + 0x10, 8), UINT64_MAX);
	assert_int_equal(pci_dev_bar_addr(x->dev, 0), io);

	/* Reset: command 0, BARs back where they were placed. */
	x->f.nev = 0;
	pci_dev_reset(x->dev);
	assert_int_equal(x->f.nev, 1);
	assert_int_equal(x->f.ev[0].bar, 0);
	assert_false(x->f.ev[0].mapped);
	assert_int_equal(cfg_read(x, 0x04, 2), 0);
	assert_int_equal(bar_base(x, 1), m32);
	assert_int_equal(bar_base(x, 2), m64);
}

/* ---- capabilities ---- */

struct hook_log {
	int reads, writes;
	uint32_t off, len, cap_len;
	uint8_t data[4];
};

static void hook_read(void *opaque, uint32_t off, uint8_t *cap, uint32_t cap_len)
{
	struct hook_log *h = opaque;
	h->reads++;
	h->off = off;
	h->cap_len = cap_len;
	cap[4] = (uint8_t)h->reads; /* a live counter */
	cap[0] = 0x77;		    /* not ours to change: restored */
}

static void hook_write(void *opaque, uint32_t off, const uint8_t *data, uint32_t len, uint8_t *cap,
		       uint32_t cap_len)
{
	struct hook_log *h = opaque;
	assert_true(off >= 2 && off + len <= cap_len);
	h->writes++;
	h->off = off;
	h->len = len;
	memcpy(h->data, data, len);
	memcpy(cap + off, data, len);
	cap[1] = 0x99; /* restored */
}

static const struct pci_cap_ops hook_ops = {.read = hook_read, .write = hook_write};

static void test_caps(void **state)
{
	struct fx *x = *state;
	struct hook_log h = {0};
	uint8_t vndr[5] = {0x09, 0xee, 5, 0xab, 0xcd};
	uint8_t big[18] = {0x09, 0, 18, 1, 2, 3};

	assert_int_equal(pci_dev_add_cap(x->dev, vndr, 1, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_cap(x->dev, NULL, 4, NULL, NULL), -EINVAL);
	int a = pci_dev_add_cap(x->dev, vndr, sizeof(vndr), NULL, NULL);
	int b = pci_dev_add_cap(x->dev, big, sizeof(big), &hook_ops, &h);
	assert_int_equal(a, 0x40 + 12); /* after the MSI-X capability */
	assert_int_equal(b, a + 8);	/* dword aligned */

	/* Walk the chain as a guest does. */
	uint8_t ids[8], offs[8];
	unsigned n = 0;
	for (unsigned p = cfg_read(x, 0x34, 1); p && n < 8; p = cfg_read(x, p + 1, 1)) {
		assert_int_equal(p % 4, 0);
		assert_true(p >= 0x40);
		offs[n] = (uint8_t)p;
		ids[n++] = (uint8_t)cfg_read(x, p, 1);
	}
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 0x11);
	assert_int_equal(offs[0], 0x40);
	assert_int_equal(ids[1], 0x09);
	assert_int_equal(offs[1], a);
	assert_int_equal(ids[2], 0x09);
	assert_int_equal(offs[2], b);
	assert_int_equal(cfg_read(x, a, 4), 0xab050009u | (uint32_t)b << 8);
	assert_int_equal(cfg_read(x, a + 4, 4), 0xcd); /* then padding */
	assert_int_equal(cfg_read(x, a + 5, 1), 0);
	/* No hooks: read-only. */
	cfg_write(x, a, 4, 0);
	cfg_write(x, a + 4, 1, 0x55);
	assert_int_equal(cfg_read(x, a, 4), 0xab050009u | (uint32_t)b << 8);
	assert_int_equal(cfg_read(x, a + 4, 1), 0xcd);

	/* Hooks: read refreshes; a write is trimmed to the capability past ID and next. */
	int reads = h.reads;
	assert_int_equal(cfg_read(x, b + 4, 1), reads + 1);
	assert_int_equal(h.reads, reads + 1);
	assert_int_equal(h.off, 4);
	assert_int_equal(h.cap_len, 18);
	assert_int_equal(cfg_read(x, b, 2), 0x0009); /* ID restored, last in chain */
	cfg_write(x, b, 4, 0x44332211);
	assert_int_equal(h.writes, 1);
	assert_int_equal(h.off, 2);
	assert_int_equal(h.len, 2);
	assert_memory_equal(h.data, "\x33\x44", 2);
	assert_int_equal(cfg_read(x, b + 1, 1), 0); /* next restored */
	cfg_write(x, b + 16, 4, 0xddccbbaa);	    /* bytes 18, 19 lie past the capability */
	assert_int_equal(h.writes, 2);
	assert_int_equal(h.off, 16);
	assert_int_equal(h.len, 2);
	assert_int_equal(cfg_read(x, b + 16, 4), 0x0000bbaa);
	cfg_write(x, b + 18, 2, 0xffff); /* padding only: no hook call */
	assert_int_equal(h.writes, 2);

	/* Fill config space: 256 bytes end it. */
	uint8_t c[4] = {0x09, 0, 4, 0};
	int last = 0, r;
	while ((r = pci_dev_add_cap(x->dev, c, sizeof(c), NULL, NULL)) > 0)
		last = r;
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(last, 0xfc);
	uint8_t huge[300] = {0x09};
	assert_int_equal(pci_dev_add_cap(x->dev, huge, sizeof(huge), NULL, NULL), -ENOSPC);
}

/* ---- MSI-X ---- */

static uint64_t table(struct fx *x)
{
	return bar_base(x, MSIX_BAR) + TABLE_OFF;
}

static uint64_t pba(struct fx *x)
{
	return bar_base(x, MSIX_BAR) + PBA_OFF;
}

static void msix_ctrl(struct fx *x, uint16_t v)
{
	cfg_write(x, 0x42, 2, v);
}

static void set_entry(struct fx *x, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = table(x) + 16 * v;
	mem_write(x, e, (uint32_t)addr, 4);
	mem_write(x, e + 4, addr >> 32, 4);
	mem_write(x, e + 8, data, 4);
	mem_write(x, e + 12, masked, 4);
}

static void test_msix_layout(void **state)
{
	struct fx *x = *state;

	assert_int_equal(cfg_read(x, 0x40, 1), 0x11);
	assert_int_equal(cfg_read(x, 0x42, 2), NVEC - 1);
	assert_int_equal(cfg_read(x, 0x44, 4), TABLE_OFF | MSIX_BAR);
	assert_int_equal(cfg_read(x, 0x48, 4), PBA_OFF | MSIX_BAR);
	/* Only Enable and Function Mask are writable; table size and offsets are not. */
	msix_ctrl(x, 0xffff);
	assert_int_equal(cfg_read(x, 0x42, 2), 0xc000 | (NVEC - 1));
	cfg_write(x, 0x44, 4, 0);
	cfg_write(x, 0x48, 4, 0xffffffffu);
	assert_int_equal(cfg_read(x, 0x44, 4), TABLE_OFF | MSIX_BAR);
	assert_int_equal(cfg_read(x, 0x48, 4), PBA_OFF | MSIX_BAR);
	assert_true(pci_dev_msix_enabled(x->dev));
	cfg_write(x, 0x43, 1, 0x40); /* a byte write: Function Mask stays, Enable goes */
	assert_false(pci_dev_msix_enabled(x->dev));
	assert_int_equal(cfg_read(x, 0x42, 2), 0x4000 | (NVEC - 1));
	/* A dword write over ID and next reaches only Message Control. */
	cfg_write(x, 0x40, 4, 0x8000ffffu);
	assert_int_equal(cfg_read(x, 0x40, 4), 0x80000011u | (uint32_t)(NVEC - 1) << 16);
	assert_true(pci_dev_msix_enabled(x->dev));
}

static void test_msix_table(void **state)
{
	struct fx *x = *state;

	cfg_write(x, 0x04, 2, 0x0002);
	uint64_t t = table(x);
	/* Power-on: all zeros, every vector masked. */
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(mem_read(x, t + 16 * v, 8), 0);
		assert_int_equal(mem_read(x, t + 16 * v + 8, 4), 0);
		assert_int_equal(mem_read(x, t + 16 * v + 12, 4), 1);
	}
	/* 4- and 8-byte accesses. */
	mem_write(x, t + 16, 0x00000000fee01000ULL, 8);
	mem_write(x, t + 24, 0x0000000100004041ULL, 8);
	assert_int_equal(mem_read(x, t + 16, 4), 0xfee01000u);
	assert_int_equal(mem_read(x, t + 20, 4), 0);
	assert_int_equal(mem_read(x, t + 24, 4), 0x4041);
	assert_int_equal(mem_read(x, t + 28, 4), 1);
	assert_int_equal(mem_read(x, t + 24, 8), 0x0000000100004041ULL);
	/* Vector control: only the mask bit. */
	mem_write(x, t + 28, 0xfffffffeu, 4);
	assert_int_equal(mem_read(x, t + 28, 4), 0);
	mem_write(x, t + 28, 0xffffffffu, 4);
	assert_int_equal(mem_read(x, t + 28, 4), 1);
	/* Hostile: odd sizes and misalignment read all ones and write nothing. */
	uint64_t bad[][2] = {{t + 16, 1}, {t + 17, 1}, {t + 16, 2}, {t + 18, 2},
			     {t + 17, 4}, {t + 20, 8}, {t + 22, 4}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t len = (uint32_t)bad[i][1];
		mem_write(x, bad[i][0], 0, len);
		uint64_t v = mem_read(x, bad[i][0], len);
		assert_int_equal(v, len == 8 ? UINT64_MAX : (1ULL << (8 * len)) - 1);
	}
	assert_int_equal(mem_read(x, t + 16, 8), 0x00000000fee01000ULL);
	assert_int_equal(mem_read(x, t + 24, 8), 0x0000000100004041ULL);
	/* Past the last entry (inside the BAR): the device's, not the table's. */
	int before = x->f.accesses;
	mem_write(x, t + 16 * NVEC, 0x12345678, 4);
	assert_int_equal(x->f.accesses, before + 1);
	/* The table and PBA never reach the device. */
	mem_read(x, t, 4);
	mem_read(x, pba(x), 8);
	mem_write(x, pba(x), 0xff, 8);
	assert_int_equal(x->f.accesses, before + 1);
	/* PBA: read-only; hostile sizes read all ones. */
	assert_int_equal(mem_read(x, pba(x), 8), 0);
	assert_int_equal(mem_read(x, pba(x), 4), 0);
	assert_int_equal(mem_read(x, pba(x) + 4, 4), 0);
	assert_int_equal(mem_read(x, pba(x), 1), 0xff);
	assert_int_equal(mem_read(x, pba(x) + 2, 4), 0xffffffffu);
	assert_int_equal(mem_read(x, pba(x) + 4, 8), UINT64_MAX);
	/* Out of range notifications. */
	assert_false(pci_dev_msix_notify(x->dev, NVEC));
	assert_false(pci_dev_msix_notify(x->dev, UINT32_MAX));
	assert_false(pci_dev_msix_notify(NULL, 0));
}

static void test_msix_delivery(void **state)
{
	struct fx *x = *state;
	const uint64_t addr = 0xfee00000, addr2 = 0xfee01000;

	cfg_write(x, 0x04, 2, 0x0006);
	/* MSI-X off: notify says so (the caller then uses INTx), nothing is pending. */
	assert_false(pci_dev_msix_notify(x->dev, 2));
	assert_int_equal(mem_read(x, pba(x), 8), 0);

	/* Linux's order: enable with the function masked, program masked entries, unmask the function. */
	msix_ctrl(x, 0xc000);
	set_entry(x, 2, addr, 0x4022, true);
	assert_true(pci_dev_msix_notify(x->dev, 2)); /* function masked: pending */
	assert_int_equal(mem_read(x, pba(x), 8), 1u << 2);
	msix_ctrl(x, 0x8000);
	assert_true(pci_dev_msix_notify(x->dev, 3)); /* vector masked: pending */
	assert_int_equal(mem_read(x, pba(x), 4), (1u << 2) | (1u << 3));
	assert_int_equal(x->msi.adds, 0); /* no route before a vector is deliverable */

	/* Unmasking vector 2: its route is added, aimed at the entry, and the pending one delivered. */
	mem_write(x, table(x) + 16 * 2 + 12, 0, 4);
	assert_int_equal(x->msi.adds, 1);
	int r2 = route_to(&x->msi, addr, 0x4022);
	assert_true(r2 >= 0);
	assert_int_equal(fired(&x->msi, r2), 1);
	assert_int_equal(mem_read(x, pba(x), 8), 1u << 3);
	/* Deliverable now: straight to the eventfd. */
	assert_true(pci_dev_msix_notify(x->dev, 2));
	assert_true(pci_dev_msix_notify(x->dev, 2));
	assert_int_equal(fired(&x->msi, r2), 2);
	assert_int_equal(fired(&x->msi, r2), 0);

	/* Re-aim while unmasked (older guests): the route follows each write before any delivery. */
	mem_write(x, table(x) + 16 * 2, addr2, 4);
	assert_int_equal(x->msi.sets, 1);
	assert_int_equal(route_to(&x->msi, addr2, 0x4022), r2);
	mem_write(x, table(x) + 16 * 2 + 8, 0x4030, 4);
	assert_int_equal(route_to(&x->msi, addr2, 0x4030), r2);
	assert_true(pci_dev_msix_notify(x->dev, 2));
	assert_int_equal(fired(&x->msi, r2), 1);

	/* Re-aim the Linux way: mask, write, unmask. Nothing moves until the unmask. */
	int sets = x->msi.sets;
	mem_write(x, table(x) + 16 * 2 + 12, 1, 4);
	mem_write(x, table(x) + 16 * 2, addr, 4);
	mem_write(x, table(x) + 16 * 2 + 8, 0x4050, 4);
	assert_int_equal(x->msi.sets, sets);
	assert_true(pci_dev_msix_notify(x->dev, 2)); /* masked: pending, not sent to the old address */
	assert_int_equal(fired(&x->msi, r2), 0);
	mem_write(x, table(x) + 16 * 2 + 12, 0, 4);
	assert_int_equal(x->msi.sets, sets + 1);
	assert_int_equal(route_to(&x->msi, addr, 0x4050), r2);
	assert_int_equal(fired(&x->msi, r2), 1);
	assert_int_equal(x->msi.adds, 1); /* the same route, re-aimed */

	/* Function mask: everything pends; clearing it delivers. */
	msix_ctrl(x, 0xc000);
	assert_true(pci_dev_msix_notify(x->dev, 2));
	assert_int_equal(fired(&x->msi, r2), 0);
	assert_int_equal(mem_read(x, pba(x), 8), (1u << 2) | (1u << 3));
	msix_ctrl(x, 0x8000);
	assert_int_equal(fired(&x->msi, r2), 1);
	assert_int_equal(mem_read(x, pba(x), 8), 1u << 3);

	/* Disable, notify (not pending), re-enable: nothing spurious. */
	msix_ctrl(x, 0x0000);
	assert_false(pci_dev_msix_notify(x->dev, 2));
	msix_ctrl(x, 0x8000);
	assert_int_equal(fired(&x->msi, r2), 0);

	/* Vector 3 was pending since before its entry was written: delivered at its unmask. */
	set_entry(x, 3, addr2, 0x4033, false);
	int r3 = route_to(&x->msi, addr2, 0x4033);
	assert_true(r3 >= 0 && r3 != r2);
	assert_int_equal(fired(&x->msi, r3), 1);
	assert_int_equal(mem_read(x, pba(x), 8), 0);
}

static void test_msix_route_failure(void **state)
{
	struct fx *x = *state;

	cfg_write(x, 0x04, 2, 0x0002);
	msix_ctrl(x, 0x8000);
	/* No route to be had: the vector pends instead of firing anywhere. */
	x->msi.fail_add = -ENOSPC;
	set_entry(x, 0, 0xfee00000, 0x41, false);
	assert_int_equal(x->msi.adds, 0);
	assert_true(pci_dev_msix_notify(x->dev, 0));
	assert_int_equal(mem_read(x, pba(x), 8), 1);
	/* The next unmask retries and delivers. */
	x->msi.fail_add = 0;
	mem_write(x, table(x) + 12, 1, 4);
	mem_write(x, table(x) + 12, 0, 4);
	int r = route_to(&x->msi, 0xfee00000, 0x41);
	assert_true(r >= 0);
	assert_int_equal(fired(&x->msi, r), 1);
	/* Re-aiming fails: never delivered to the stale address. */
	x->msi.fail_set = -EIO;
	mem_write(x, table(x) + 8, 0x42, 4);
	assert_true(pci_dev_msix_notify(x->dev, 0));
	assert_int_equal(fired(&x->msi, r), 0);
	assert_int_equal(mem_read(x, pba(x), 8), 1);
	x->msi.fail_set = 0;
	mem_write(x, table(x) + 12, 1, 4);
	mem_write(x, table(x) + 12, 0, 4);
	assert_int_equal(route_to(&x->msi, 0xfee00000, 0x42), r);
	assert_int_equal(fired(&x->msi, r), 1);
}

/* Without an msi_controller notifications are only recorded in the PBA. */
static void test_msix_no_controller(void **state)
{
	struct fx *x = *state;

	cfg_write(x, 0x04, 2, 0x0002);
	msix_ctrl(x, 0x8000);
	set_entry(x, 4, 0xfee00000, 0x44, false);
	assert_true(pci_dev_msix_notify(x->dev, 4));
	assert_true(pci_dev_msix_notify(x->dev, 0));
	assert_int_equal(mem_read(x, pba(x), 8), (1u << 4) | 1u);
	/* Reset clears it all. */
	pci_dev_reset(x->dev);
	assert_false(pci_dev_msix_enabled(x->dev));
	cfg_write(x, 0x04, 2, 0x0002);
	assert_int_equal(mem_read(x, pba(x), 8), 0);
	assert_int_equal(mem_read(x, table(x) + 16 * 4, 8), 0);
	assert_int_equal(mem_read(x, table(x) + 16 * 4 + 12, 4), 1);
}

static void test_msix_reset(void **state)
{
	struct fx *x = *state;

	cfg_write(x, 0x04, 2, 0x0002);
	msix_ctrl(x, 0xc000);
	set_entry(x, 1, 0xfee00000, 0x51, false);
	assert_true(pci_dev_msix_notify(x->dev, 1));
	pci_dev_reset(x->dev);
	assert_int_equal(cfg_read(x, 0x42, 2), NVEC - 1);
	assert_false(pci_dev_msix_notify(x->dev, 1));
	cfg_write(x, 0x04, 2, 0x0002);
	assert_int_equal(mem_read(x, pba(x), 8), 0);
	assert_int_equal(mem_read(x, table(x) + 16, 8), 0);
	assert_int_equal(mem_read(x, table(x) + 16 + 12, 4), 1);
	/* A route made after the reset goes to the new entry, whatever the old one said. */
	msix_ctrl(x, 0x8000);
	set_entry(x, 1, 0xfee02000, 0x52, false);
	int r = route_to(&x->msi, 0xfee02000, 0x52);
	assert_true(r >= 0);
	assert_true(pci_dev_msix_notify(x->dev, 1));
	assert_int_equal(fired(&x->msi, r), 1);
}

/* ---- INTx ---- */

static void test_intx(void **state)
{
	struct fx *x = *state;

	pci_dev_set_intx(x->dev, 1);
	assert_int_equal(x->line.level, 1);
	assert_int_equal(x->line.gsi, GSI);
	assert_int_equal(cfg_read(x, 0x06, 2) & 0x08, 0x08); /* interrupt status */
	pci_dev_set_intx(x->dev, 1);
	assert_int_equal(x->line.changes, 1); /* no repeated edges */
	/* INTx disable: the line drops, the status bit stays. */
	cfg_write(x, 0x04, 2, 0x0400);
	assert_int_equal(x->line.level, 0);
	assert_int_equal(cfg_read(x, 0x06, 2) & 0x08, 0x08);
	pci_dev_set_intx(x->dev, 0);
	pci_dev_set_intx(x->dev, 1);
	assert_int_equal(x->line.level, 0);
	cfg_write(x, 0x04, 2, 0x0000);
	assert_int_equal(x->line.level, 1);
	/* MSI-X enabled: INTx is off limits. */
	msix_ctrl(x, 0x8000);
	assert_int_equal(x->line.level, 0);
	msix_ctrl(x, 0x0000);
	assert_int_equal(x->line.level, 1);
	pci_dev_set_intx(x->dev, 0);
	assert_int_equal(x->line.level, 0);
	assert_int_equal(cfg_read(x, 0x06, 2) & 0x08, 0);
	pci_dev_set_intx(NULL, 1);
}

/* ---- set-up errors and hostile guests ---- */

static void test_setup_errors(void **state)
{
	struct fx *x = *state;
	struct pci_dev_id id = {.vendor = 1, .int_pin = 5};
	struct err e = {0};
	struct msi_controller half = {fm_add, NULL, fm_del, &x->msi};

	assert_null(pci_dev_create(x->host, PCI_DEVFN(4, 0), &id, NULL, NULL, &e));
	assert_true(err_msg(&e)[0]);
	id.int_pin = 0;
	err_clear(&e);
	assert_null(pci_dev_create(x->host, DEVFN, &id, NULL, NULL, &e)); /* slot taken */
	assert_null(pci_dev_create(x->host, 0, &id, NULL, NULL, &e));	  /* the host bridge */
	assert_null(pci_dev_create(x->host, 256, &id, NULL, NULL, &e));
	assert_null(pci_dev_create(x->host, PCI_DEVFN(4, 0), &id, NULL, &half, &e));
	assert_null(pci_dev_create(NULL, PCI_DEVFN(4, 0), &id, NULL, NULL, &e));

	struct pci_dev *d = pci_dev_create(x->host, PCI_DEVFN(4, 0), &id, NULL, NULL, NULL);
	assert_non_null(d);
	assert_int_equal(pci_dev_add_bar(d, 6, PCI_BAR_MEM32, false, 4096, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 5, PCI_BAR_MEM64, false, 4096, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM32, false, 4095, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM32, false, 2048, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM32, false, 1ULL << 32, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_IO, false, 8, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_IO, false, 512, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, (enum pci_bar_type)9, false, 4096, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM64, false, 1ULL << 40, NULL, NULL), -ENOSPC);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM64, false, 4096, NULL, NULL), 0);
	assert_int_equal(pci_dev_add_bar(d, 1, PCI_BAR_MEM32, false, 4096, NULL, NULL), -EEXIST);
	assert_int_equal(pci_dev_add_bar(d, 0, PCI_BAR_MEM32, false, 4096, NULL, NULL), -EEXIST);
	assert_int_equal(pci_dev_add_bar(d, 2, PCI_BAR_IO, false, 16, NULL, NULL), 0);
	assert_int_equal(pci_dev_add_bar(d, 3, PCI_BAR_MEM32, false, 8192, NULL, NULL), 0);
	/* MSI-X: a real memory BAR, 8-byte aligned structures inside it, not overlapping. */
	assert_int_equal(pci_dev_add_msix(d, 0, 3, 0, 0x1000), -EINVAL);
	assert_int_equal(pci_dev_add_msix(d, 2049, 3, 0, 0x1000), -EINVAL);
	assert_int_equal(pci_dev_add_msix(d, 4, 1, 0, 0x1000), -EINVAL); /* upper half of BAR 0 */
	assert_int_equal(pci_dev_add_msix(d, 4, 2, 0, 0x8), -EINVAL);	 /* I/O */
	assert_int_equal(pci_dev_add_msix(d, 4, 4, 0, 0x1000), -EINVAL); /* absent */
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 4, 0x1000), -EINVAL);
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 0, 0x1004), -EINVAL);
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 0, 0x38), -EINVAL);	   /* PBA inside the table */
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 0x1ff8, 0), -EINVAL);   /* table runs past the BAR */
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 0, 0x2000), -EINVAL);   /* PBA past the BAR */
	assert_int_equal(pci_dev_add_msix(d, 512, 3, 0, 0x1ff0), -EINVAL); /* 8 KiB table + PBA */
	assert_int_equal(pci_dev_add_msix(d, 256, 3, 0, 0x1000), 0);
	assert_int_equal(pci_dev_add_msix(d, 4, 3, 0, 0x1800), -EEXIST);
	/* No msi_controller and no INTx line: everything still works, quietly. */
	pci_dev_set_intx(d, 1);
	assert_false(pci_dev_msix_notify(d, 0));
	pci_dev_destroy(d);
	pci_dev_destroy(NULL);
	pci_dev_reset(NULL);
	assert_int_equal(pci_dev_bar_addr(NULL, 0), 0);
	assert_int_equal(pci_dev_bar_addr(x->dev, 6), 0);
	assert_false(pci_dev_msix_enabled(NULL));
	/* The slot and the BAR space are free again. */
	d = pci_dev_create(x->host, PCI_DEVFN(4, 0), &id, NULL, NULL, NULL);
	assert_non_null(d);
	pci_dev_destroy(d);
}

/* Every config register at every width with nasty values: no crash, invariants hold. */
static void test_hostile_config(void **state)
{
	struct fx *x = *state;
	static const uint32_t vals[] = {0, 0xffffffffu, 0x55555555u, 0xaaaaaaaau, 0x80000001u};

	cfg_write(x, 0x04, 2, 0x0007);
	msix_ctrl(x, 0x8000);
	set_entry(x, 0, 0xfee00000, 0x30, false);
	for (size_t vi = 0; vi < sizeof(vals) / sizeof(vals[0]); vi++)
		for (unsigned reg = 0; reg < 256; reg++)
			for (unsigned len = 1; len <= 4; len *= 2) {
				if (reg == 0x04 || reg == 0x05)
					continue; /* keep decoding on to exercise moves */
				set_addr(x, reg);
				uint8_t d[4] = {(uint8_t)vals[vi], (uint8_t)(vals[vi] >> 8),
						(uint8_t)(vals[vi] >> 16), (uint8_t)(vals[vi] >> 24)};
				pci_host_data_io(x->host, reg & 3, d, len, true);
				pci_host_data_io(x->host, reg & 3, d, len, false);
				pci_dev_msix_notify(x->dev, 0);
			}
	/* Still the same function, chain intact, no remap event for the upper half. */
	assert_int_equal(cfg_read(x, 0x00, 4), 0x10421af4u);
	assert_int_equal(cfg_read(x, 0x34, 1), 0x40);
	assert_int_equal(cfg_read(x, 0x40, 1), 0x11);
	assert_int_equal(cfg_read(x, 0x41, 1), 0);
	for (int i = 0; i < x->f.nev; i++)
		assert_true(x->f.ev[i].bar <= 2);
	/* Accesses anywhere in the windows: odd sizes, everywhere near the BARs. */
	uint64_t bases[] = {bar_base(x, 1), bar_base(x, 2)};
	for (size_t b = 0; b < 2; b++)
		for (uint64_t off = 0; off < 0x40; off++)
			for (uint32_t len = 1; len <= 16; len++) {
				uint8_t d[16] = {0};
				if (bases[b] + off < MEM32_START)
					continue;
				guest_io(x, false, bases[b] + off, d, len, true);
				guest_io(x, false, bases[b] + off, d, len, false);
			}
	pci_dev_reset(x->dev);
}

/* vCPUs hammering MMIO while another flips decoding and moves the BAR: no crash, no lost lock. */
struct hammer {
	struct fx *x;
	uint64_t a;
	bool stop;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		uint8_t d[8];
		guest_io(h->x, false, h->a + 0x10, d, 8, false);
		guest_io(h->x, false, h->a + 0x10, d, 4, true);
		pci_dev_msix_notify(h->x->dev, 1);
		pci_dev_set_intx(h->x->dev, d[0] & 1);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fx *x = *state;
	struct hammer h = {x, bar_base(x, 2), false};
	pthread_t t[3];

	msix_ctrl(x, 0x8000);
	set_entry(x, 1, 0xfee00000, 0x31, false);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h), 0);
	for (int i = 0; i < 2000; i++) {
		cfg_write(x, 0x04, 2, (i & 1) ? 0x0002 : 0);
		cfg_write(x, 0x18, 4, (uint32_t)h.a | ((i & 2) ? 0x4000 : 0));
		x->f.nev = 0;
	}
	__atomic_store_n(&h.stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

/* ---- saved state ---- */

static void save_to(struct fx *x, struct sbuf *s)
{
	sbuf_init(s);
	pci_dev_save(x->dev, s);
	assert_false(s->oom);
}

/* Loading the damaged copy of s (byte off set to val, or cut to len bytes) fails naming what, and changes
 * nothing. */
static void refuse_state(struct fx *y, const struct sbuf *s, size_t len, size_t off, uint8_t val,
			 const char *what)
{
	uint8_t *b = malloc(s->len);
	struct sreader r;
	struct err e = {{0}};
	struct sbuf now;
	int nev = y->f.nev, adds = y->msi.adds, changes = y->line.changes;

	assert_non_null(b);
	memcpy(b, s->data, s->len);
	if (off < s->len)
		b[off] = val;
	sreader_init(&r, b, len);
	assert_int_equal(pci_dev_load(y->dev, &r, &e), -EINVAL);
	if (!strstr(err_msg(&e), what) || !strstr(err_msg(&e), "PCI function 03.0"))
		fail_msg("byte %zu = 0x%02x, length %zu: \"%s\" does not say \"%s\"", off, val, len,
			 err_msg(&e), what);
	save_to(y, &now);
	assert_int_equal(now.len, s->len);
	assert_memory_equal(now.data, s->data, s->len);
	sbuf_free(&now);
	assert_int_equal(y->f.nev, nev);
	assert_int_equal(y->msi.adds, adds);
	assert_int_equal(y->line.changes, changes);
	free(b);
}

static void test_state(void **state)
{
	struct fx *x = *state, *y = make(true);
	const uint64_t io_new = 0x2000, m32_new = 0xd0000000ULL, m64_new = MEM64_START + 0x100000;

	/* The guest moves every BAR, enables decoding, programs MSI-X and leaves a vector pending. */
	cfg_write(x, 0x10, 4, (uint32_t)io_new);
	cfg_write(x, 0x14, 4, (uint32_t)m32_new);
	cfg_write(x, 0x18, 4, (uint32_t)m64_new);
	cfg_write(x, 0x1c, 4, (uint32_t)(m64_new >> 32));
	cfg_write(x, 0x3c, 1, 0x0b);
	cfg_write(x, 0x04, 2, 0x0007);
	msix_ctrl(x, 0x8000);
	set_entry(x, 1, 0xfee00000, 0x4021, false);
	set_entry(x, 3, 0xfee01000, 0x4023, true);
	assert_true(pci_dev_msix_notify(x->dev, 3)); /* masked: pending */
	pci_dev_set_intx(x->dev, 1);		     /* MSI-X on: the pin stays low */
	mem_write(x, m32_new + 0x1000, 0x77, 1);
	assert_int_equal(x->line.level, 0);

	struct sbuf s;
	save_to(x, &s);
	assert_int_equal(y->f.nev, 0);
	struct sreader r;
	struct err e = {{0}};
	sreader_init(&r, s.data, s.len);
	assert_int_equal(pci_dev_load(y->dev, &r, &e), 0);
	assert_true(sreader_done(&r));

	/* Remap fired once per BAR, at the guest's addresses; the host decodes them there. */
	assert_int_equal(y->f.nev, 3);
	for (int i = 0; i < 3; i++) {
		assert_true(y->f.ev[i].mapped);
		assert_int_equal(y->f.ev[i].addr, i == 0 ? io_new : i == 1 ? m32_new : m64_new);
	}
	for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++)
		assert_int_equal(pci_dev_bar_addr(y->dev, bar), pci_dev_bar_addr(x->dev, bar));
	for (unsigned reg = 0; reg < 0x100; reg += 4)
		assert_int_equal(cfg_read(y, reg, 4), cfg_read(x, reg, 4));
	y->f.regs[1][0x1000] = 0x77;
	int acc = y->f.accesses;
	assert_int_equal(mem_read(y, m32_new + 0x1000, 1), 0x77);
	assert_int_equal(y->f.accesses, acc + 1);
	assert_int_equal(mem_read(y, MEM32_START + 0x1000, 4), 0xffffffffu); /* nothing at the old place */
	uint8_t d = 0;
	guest_io(y, true, io_new, &d, 1, false);
	assert_int_equal(y->f.accesses, acc + 2);
	for (unsigned off = 0; off < 16 * NVEC; off += 4)
		assert_int_equal(mem_read(y, table(y) + off, 4), mem_read(x, table(x) + off, 4));
	assert_int_equal(mem_read(y, pba(y), 8), 1u << 3);
	assert_int_equal(y->line.level, 0);
	assert_int_equal(y->line.changes, 0);

	/* Vector 1 was deliverable: its route is already aimed at the entry. */
	int r1 = route_to(&y->msi, 0xfee00000, 0x4021);
	assert_true(r1 >= 0);
	assert_true(pci_dev_msix_notify(y->dev, 1));
	assert_int_equal(fired(&y->msi, r1), 1);
	/* Unmasking vector 3 delivers what was pending, on both. */
	mem_write(x, table(x) + 16 * 3 + 12, 0, 4);
	mem_write(y, table(y) + 16 * 3 + 12, 0, 4);
	int r3 = route_to(&y->msi, 0xfee01000, 0x4023);
	assert_true(r3 >= 0);
	assert_int_equal(fired(&y->msi, r3), 1);
	assert_int_equal(mem_read(y, pba(y), 8), mem_read(x, pba(x), 8));
	/* MSI-X off: the saved INTx level reaches the line. */
	msix_ctrl(x, 0);
	msix_ctrl(y, 0);
	assert_int_equal(x->line.level, 1);
	assert_int_equal(y->line.level, 1);

	/* Damaged input, into a function holding s again. */
	sreader_init(&r, s.data, s.len);
	assert_int_equal(pci_dev_load(y->dev, &r, &e), 0);
	assert_int_equal(y->line.level, 0); /* MSI-X back on */
	for (size_t n = 0; n < s.len; n++)
		refuse_state(y, &s, n, s.len, 0, "truncated");
	/*
	 * Layout: version 0..3, vendor 4, device 6, per BAR i at 8 + 17 i: kind, size (8), address (8);
	 * vectors 110, command 112, line 114, capability bytes 115..306, INTx 307, table 308, PBA 388.
	 */
	assert_int_equal(s.len, 396);
	refuse_state(y, &s, s.len, 0, 2, "version");
	refuse_state(y, &s, s.len, 4, 0, "saved state is for");
	refuse_state(y, &s, s.len, 8, 3, "saved BAR 0");
	refuse_state(y, &s, s.len, 8 + 17 + 1, 0x40, "saved BAR 1");
	refuse_state(y, &s, s.len, 8 + 17 + 9, 0x10, "BAR 1 address");
	refuse_state(y, &s, s.len, 8 + 17 * 4 + 9, 0x10, "BAR 4 holds no address");
	refuse_state(y, &s, s.len, 8 + 17 * 3 + 9, 0x10, "BAR 3 holds no address");
	refuse_state(y, &s, s.len, 110, 6, "MSI-X vectors");
	refuse_state(y, &s, s.len, 113, 0xf8, "command");
	refuse_state(y, &s, s.len, 115, 0x05, "capability 0x11 byte 0 is 0x05");
	refuse_state(y, &s, s.len, 115 + 1, 0x80, "capability 0x11 byte 1");
	refuse_state(y, &s, s.len, 115 + 2, 0x07, "Message Control");
	refuse_state(y, &s, s.len, 115 + 3, 0x88, "Message Control");
	refuse_state(y, &s, s.len, 115 + 4, 0x08, "capability 0x11 byte 4");
	refuse_state(y, &s, s.len, 115 + 0x10, 1, "outside any capability");
	refuse_state(y, &s, s.len, 307, 2, "INTx level");
	refuse_state(y, &s, s.len, 308 + 12, 2, "vector 0 control");
	refuse_state(y, &s, s.len, 388, 0x20, "PBA bit 5");
	sbuf_free(&s);
	void *p = y;
	teardown(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_decode_and_move, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_delivery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_route_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_no_controller, setup_nomsi, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setup_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	};
	return cmocka_run_group_tests_name("pci_dev", tests, NULL, NULL);
}
