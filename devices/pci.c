/* SPDX-License-Identifier: MIT */
/*
 * Runs on vCPU threads (config and window accesses) and the set-up thread
 * (create, register, BAR placement, reset, destroy); BAR decoding changes come
 * from vCPU threads too (the guest's config writes, through pci_dev.c).
 */
#include "pci.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/arch/x86/layout.h"

#define CONFIG_ENABLE	  0x80000000u
#define CONFIG_ADDR_MASK  0x80fffffcu /* reserved bits 30:24 and bits 1:0 read as 0 */
#define PCI_COMMAND	  0x04
#define PCI_COMMAND_WMASK 0x0547u /* I/O, memory, bus master, parity, SERR#, INTx disable */
#define HB_COMMAND_INIT	  0x0006u /* memory + bus master, as a PC host bridge reports */
#define NUM_DEVFN	  256
#define SLOT_BARS	  6
#define MAX_DECODERS	  (NUM_DEVFN * SLOT_BARS)
#define NUM_WINDOWS	  3

#define PCI_HOST_STATE_VERSION 1

_Static_assert(IRQ_PCI_INTX_BASE + IRQ_PCI_INTX_COUNT <= IOAPIC_NUM_PINS,
	       "PCI INTx GSIs must be IOAPIC pins");

/* Where one BAR of a slot decodes (size 0: nowhere). */
struct bar_decoder {
	bool io;
	uint64_t base, size;
	pci_bar_io_fn fn;
	void *opaque;
};

struct pci_slot {
	const struct pci_device_ops *ops;
	void *opaque;
	struct bar_decoder bars[SLOT_BARS];
	unsigned busy; /* callbacks in flight (atomic): pci_unregister_device() waits for 0 */
};

/* A decoding BAR in the flat lists that window accesses scan (rebuilt on every change). */
struct decode {
	uint64_t base, last;
	uint16_t devfn;
	uint8_t bar;
};

/* A window's allocations, sorted by start, non-overlapping. */
struct window {
	uint64_t start, end; /* inclusive; empty when end < start */
	struct range {
		uint64_t start, last;
	} * used;
	size_t n, cap;
};

struct pci_host {
	pthread_mutex_t lock; /* guards addr and hb_cfg */
	uint32_t addr;	      /* CONFIG_ADDRESS */
	uint8_t hb_cfg[PCI_CONFIG_SPACE_SIZE];
	/*
	 * Read by every window and config access; written by (un)plugging, BAR
	 * changes and allocations. Never held while a device callback runs.
	 */
	pthread_rwlock_t map;
	struct pci_slot slots[NUM_DEVFN];
	struct decode io_map[MAX_DECODERS], mem_map[MAX_DECODERS];
	size_t n_io, n_mem;
	struct window win[NUM_WINDOWS];
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* The bridge's configuration space at power-on. */
static void hb_image(uint8_t *c)
{
	memset(c, 0, PCI_CONFIG_SPACE_SIZE);
	put16(c + 0x00, PCI_HOST_VENDOR_ID);
	put16(c + 0x02, PCI_HOST_DEVICE_ID);
	put16(c + PCI_COMMAND, HB_COMMAND_INIT);
	/* status 0: no capabilities; revision 0; prog-if 0 */
	c[0x0a] = 0x00; /* subclass: host bridge */
	c[0x0b] = 0x06; /* class: bridge */
	c[0x0e] = 0x00; /* header type 0, single function */
			/* BARs, interrupt pin and line stay 0: the bridge decodes nothing itself. */
}

static void hb_init(struct pci_host *h)
{
	hb_image(h->hb_cfg);
}

static uint8_t hb_read(const struct pci_host *h, uint32_t reg)
{
	return h->hb_cfg[reg];
}

static void hb_write(struct pci_host *h, uint32_t reg, uint8_t v)
{
	/* Only the command register is writable, and only its harmless bits. */
	if (reg == PCI_COMMAND || reg == PCI_COMMAND + 1) {
		uint8_t m = (uint8_t)(PCI_COMMAND_WMASK >> ((reg - PCI_COMMAND) * 8));
		h->hb_cfg[reg] = (uint8_t)((h->hb_cfg[reg] & ~m) | (v & m));
	}
}

static void fill_ones(uint8_t *data, uint32_t len)
{
	memset(data, 0xff, len > 8 ? 8 : len);
}

/* ---- slots and their callbacks in flight ---- */

/* Map lock held (either way): marks a callback of devfn in flight. */
static void slot_enter(struct pci_host *h, unsigned devfn)
{
	__atomic_add_fetch(&h->slots[devfn].busy, 1, __ATOMIC_ACQ_REL);
}

static void slot_leave(struct pci_host *h, unsigned devfn)
{
	__atomic_sub_fetch(&h->slots[devfn].busy, 1, __ATOMIC_RELEASE);
}

/* Map lock held for writing: rebuilds the lists window accesses scan from the slots' BARs. */
static void rebuild_maps(struct pci_host *h)
{
	h->n_io = h->n_mem = 0;
	for (unsigned devfn = 0; devfn < NUM_DEVFN; devfn++) {
		const struct pci_slot *s = &h->slots[devfn];
		if (!s->ops)
			continue;
		for (unsigned bar = 0; bar < SLOT_BARS; bar++) {
			const struct bar_decoder *b = &s->bars[bar];
			if (!b->size)
				continue;
			struct decode d = {b->base, b->base + (b->size - 1), (uint16_t)devfn, (uint8_t)bar};
			if (b->io)
				h->io_map[h->n_io++] = d;
			else
				h->mem_map[h->n_mem++] = d;
		}
	}
}

/* ---- configuration mechanism #1 ---- */

void pci_host_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;

	if (off != 0 || len != 4) {
		/* Not a configuration cycle (on PCs 0xcf9 is the reset control register, not emulated). */
		if (!is_write)
			fill_ones(data, len);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (is_write) {
		uint32_t v = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			     (uint32_t)data[3] << 24;
		h->addr = v & CONFIG_ADDR_MASK;
	} else {
		for (int i = 0; i < 4; i++)
			data[i] = (uint8_t)(h->addr >> (8 * i));
	}
	pthread_mutex_unlock(&h->lock);
}

/*
 * One configuration access of len 1, 2 or 4 bytes at reg (reg + len <= 256)
 * of bus:devfn; data arrives preset to all ones for a read. Only bus 0 exists.
 */
static void config_access(struct pci_host *h, uint32_t bus, uint32_t devfn, uint32_t reg, uint8_t *data,
			  uint32_t len, bool is_write)
{
	const struct pci_device_ops *ops;
	void *dev;
	if (bus != 0)
		return;
	if (devfn == 0) {
		pthread_mutex_lock(&h->lock);
		for (uint32_t i = 0; i < len; i++) {
			if (is_write)
				hb_write(h, reg + i, data[i]);
			else
				data[i] = hb_read(h, reg + i);
		}
		pthread_mutex_unlock(&h->lock);
		return;
	}

	pthread_rwlock_rdlock(&h->map);
	ops = h->slots[devfn].ops;
	dev = h->slots[devfn].opaque;
	if (ops)
		slot_enter(h, devfn);
	pthread_rwlock_unlock(&h->map);
	if (!ops)
		return;

	/* Devices see naturally aligned accesses only: split the rest (e.g. a word at offset 1) into bytes.
	 */
	uint32_t step = (reg % len) ? 1 : len;
	for (uint32_t i = 0; i < len; i += step) {
		if (is_write) {
			if (ops->config_write)
				ops->config_write(dev, reg + i, data + i, step);
		} else if (ops->config_read) {
			ops->config_read(dev, reg + i, data + i, step);
		}
	}
	slot_leave(h, devfn);
}

void pci_host_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;

	if (!is_write)
		fill_ones(data, len);
	if ((len != 1 && len != 2 && len != 4) || off >= 4 || off + len > 4)
		return;

	pthread_mutex_lock(&h->lock);
	uint32_t addr = h->addr;
	pthread_mutex_unlock(&h->lock);
	if (!(addr & CONFIG_ENABLE))
		return;
	config_access(h, (addr >> 16) & 0xff, (addr >> 8) & 0xff, (addr & 0xfc) + (uint32_t)off, data, len,
		      is_write);
}

bool pci_ecam_decode(uint64_t off, uint32_t len, struct pci_ecam_addr *out)
{
	if (off >= PCI_ECAM_SIZE || (len != 1 && len != 2 && len != 4) || off % len)
		return false;
	out->bus = (uint32_t)(off >> 20) & 0xff;
	out->devfn = (uint32_t)(off >> 12) & 0xff;
	out->reg = (uint32_t)off & 0xfff;
	return true;
}

void pci_host_ecam_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	struct pci_ecam_addr a;
	if (!is_write)
		fill_ones(data, len);
	/* Extended configuration space (256..4095) is not implemented: all ones, as for no capability. */
	if (!pci_ecam_decode(off, len, &a) || a.reg >= PCI_CONFIG_SPACE_SIZE)
		return;
	config_access(h, a.bus, a.devfn, a.reg, data, len, is_write);
}

int pci_register_device(struct pci_host *h, unsigned devfn, const struct pci_device_ops *ops, void *opaque)
{
	int r = 0;

	if (!h || !ops || devfn >= NUM_DEVFN)
		return -EINVAL;
	pthread_rwlock_wrlock(&h->map);
	if (devfn == 0 || h->slots[devfn].ops) {
		r = -EEXIST;
	} else {
		h->slots[devfn].ops = ops;
		h->slots[devfn].opaque = opaque;
		memset(h->slots[devfn].bars, 0, sizeof(h->slots[devfn].bars));
	}
	pthread_rwlock_unlock(&h->map);
	return r;
}

void pci_unregister_device(struct pci_host *h, unsigned devfn)
{
	if (!h || devfn == 0 || devfn >= NUM_DEVFN)
		return;
	pthread_rwlock_wrlock(&h->map);
	h->slots[devfn].ops = NULL;
	h->slots[devfn].opaque = NULL;
	memset(h->slots[devfn].bars, 0, sizeof(h->slots[devfn].bars));
	rebuild_maps(h);
	pthread_rwlock_unlock(&h->map);
	/*
	 * Whoever found the slot counted itself in before the write lock above
	 * could be taken, so once the count drops to 0 no callback runs or will.
	 */
	while (__atomic_load_n(&h->slots[devfn].busy, __ATOMIC_ACQUIRE)) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
}

void pci_host_reset(struct pci_host *h)
{
	pthread_mutex_lock(&h->lock);
	h->addr = 0;
	hb_init(h);
	pthread_mutex_unlock(&h->lock);
}

/* ---- BAR placement ---- */

/* *out = x rounded up to a multiple of a (a power of two); false when that overflows. */
static bool align_up(uint64_t x, uint64_t a, uint64_t *out)
{
	if (x > UINT64_MAX - (a - 1))
		return false;
	*out = (x + (a - 1)) & ~(a - 1);
	return true;
}

/* First fit of a naturally aligned block in w; map lock held for writing. */
static int window_alloc(struct window *w, uint64_t size, uint64_t *addr)
{
	uint64_t cand;
	size_t i;

	if (w->end < w->start || !align_up(w->start, size, &cand))
		return -ENOSPC;
	for (i = 0; i < w->n; i++) {
		if (cand < w->used[i].start && size - 1 < w->used[i].start - cand)
			break; /* fits in the gap before allocation i */
		if (w->used[i].last == UINT64_MAX || !align_up(w->used[i].last + 1, size, &cand))
			return -ENOSPC;
	}
	if (cand > w->end || size - 1 > w->end - cand)
		return -ENOSPC;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct range *p = realloc(w->used, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->used = p;
		w->cap = cap;
	}
	memmove(&w->used[i + 1], &w->used[i], (w->n - i) * sizeof(w->used[0]));
	w->used[i] = (struct range){cand, cand + (size - 1)};
	w->n++;
	*addr = cand;
	return 0;
}

int pci_host_alloc_bar(struct pci_host *h, enum pci_window_id win, uint64_t size, uint64_t *addr)
{
	int r;

	if (!h || (unsigned)win >= NUM_WINDOWS || size == 0 || (size & (size - 1)))
		return -EINVAL;
	pthread_rwlock_wrlock(&h->map);
	r = window_alloc(&h->win[win], size, addr);
	/* A 64-bit BAR may live below 4 GiB too; firmware does the same when the high window is missing. */
	if (r == -ENOSPC && win == PCI_WINDOW_MEM64)
		r = window_alloc(&h->win[PCI_WINDOW_MEM32], size, addr);
	pthread_rwlock_unlock(&h->map);
	return r;
}

void pci_host_free_bar(struct pci_host *h, uint64_t addr)
{
	if (!h)
		return;
	pthread_rwlock_wrlock(&h->map);
	for (unsigned i = 0; i < NUM_WINDOWS; i++) {
		struct window *w = &h->win[i];
		for (size_t j = 0; j < w->n; j++) {
			if (w->used[j].start != addr)
				continue;
			memmove(&w->used[j], &w->used[j + 1], (w->n - j - 1) * sizeof(w->used[0]));
			w->n--;
			goto out;
		}
	}
out:
	pthread_rwlock_unlock(&h->map);
}

/* ---- BAR decoding and window dispatch ---- */

int pci_host_set_bar(struct pci_host *h, unsigned devfn, unsigned bar, bool io, uint64_t addr, uint64_t size,
		     pci_bar_io_fn fn, void *opaque)
{
	int r = 0;

	if (!h || devfn >= NUM_DEVFN || bar >= SLOT_BARS || (size && (!fn || size - 1 > UINT64_MAX - addr)))
		return -EINVAL;
	pthread_rwlock_wrlock(&h->map);
	if (!h->slots[devfn].ops) {
		r = -ENOENT;
	} else {
		h->slots[devfn].bars[bar] =
		    size ? (struct bar_decoder){io, addr, size, fn, opaque} : (struct bar_decoder){0};
		rebuild_maps(h);
	}
	pthread_rwlock_unlock(&h->map);
	return r;
}

static void window_access(struct pci_host *h, enum pci_window_id win, uint64_t off, uint8_t *data,
			  uint32_t len, bool is_write)
{
	const struct window *w = &h->win[win];
	struct bar_decoder b = {0};
	unsigned devfn = 0, bar = 0;

	if (!is_write)
		fill_ones(data, len);
	if ((len != 1 && len != 2 && len != 4 && len != 8) || w->end < w->start || off > w->end - w->start ||
	    len - 1 > w->end - w->start - off)
		return;
	uint64_t addr = w->start + off, last = addr + (len - 1);
	bool io = win == PCI_WINDOW_IO;

	pthread_rwlock_rdlock(&h->map);
	const struct decode *m = io ? h->io_map : h->mem_map;
	size_t n = io ? h->n_io : h->n_mem;
	/* Linear: a handful of BARs. Overlapping BARs (a guest's mistake) go to the first found. */
	for (size_t i = 0; i < n; i++) {
		if (addr >= m[i].base && last <= m[i].last) {
			devfn = m[i].devfn;
			bar = m[i].bar;
			b = h->slots[devfn].bars[bar];
			slot_enter(h, devfn);
			break;
		}
	}
	pthread_rwlock_unlock(&h->map);
	if (!b.fn)
		return;
	if (!is_write)
		memset(data, 0, len);
	b.fn(b.opaque, bar, addr - b.base, data, len, is_write);
	slot_leave(h, devfn);
}

void pci_host_io_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	window_access(opaque, PCI_WINDOW_IO, off, data, len, is_write);
}

void pci_host_mem32_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	window_access(opaque, PCI_WINDOW_MEM32, off, data, len, is_write);
}

void pci_host_mem64_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	window_access(opaque, PCI_WINDOW_MEM64, off, data, len, is_write);
}

unsigned pci_host_intx_gsi(unsigned devfn, unsigned pin)
{
	unsigned slot = (devfn >> 3) & 0x1f;

	return IRQ_PCI_INTX_BASE + (slot + ((pin - 1) & 3)) % IRQ_PCI_INTX_COUNT;
}

/* ---- life cycle ---- */

struct pci_host *pci_host_create(const struct pci_windows *w)
{
	struct pci_host *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->lock, NULL)) {
		free(h);
		return NULL;
	}
	/*
	 * Writer-preferring: with vCPUs reading back to back, glibc's default
	 * could starve a BAR move. Safe because no reader ever nests.
	 */
	pthread_rwlockattr_t attr;
	int r = pthread_rwlockattr_init(&attr);
	if (!r) {
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		r = pthread_rwlock_init(&h->map, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	if (r) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	for (unsigned i = 0; i < NUM_WINDOWS; i++)
		h->win[i] = (struct window){.start = 1, .end = 0}; /* empty */
	if (w) {
		h->win[PCI_WINDOW_IO].start = w->io_start;
		h->win[PCI_WINDOW_IO].end = w->io_end;
		h->win[PCI_WINDOW_MEM32].start = w->mem32_start;
		h->win[PCI_WINDOW_MEM32].end = w->mem32_end;
		h->win[PCI_WINDOW_MEM64].start = w->mem64_start;
		h->win[PCI_WINDOW_MEM64].end = w->mem64_end;
	}
	hb_init(h);
	return h;
}

void pci_host_destroy(struct pci_host *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < NUM_WINDOWS; i++)
		free(h->win[i].used);
	pthread_rwlock_destroy(&h->map);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- saved state ---- */

void pci_host_save(const struct pci_host *ch, struct sbuf *out)
{
	struct pci_host *h = (struct pci_host *)ch; /* the lock only */

	pthread_mutex_lock(&h->lock);
	sbuf_u32(out, PCI_HOST_STATE_VERSION);
	sbuf_u32(out, h->addr);
	sbuf_put(out, h->hb_cfg, PCI_CONFIG_SPACE_SIZE);
	pthread_mutex_unlock(&h->lock);
}

int pci_host_load(struct pci_host *h, struct sreader *in, struct err *e)
{
	uint8_t cfg[PCI_CONFIG_SPACE_SIZE];
	uint8_t ref[PCI_CONFIG_SPACE_SIZE];
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "pci host: saved state truncated");
	if (ver != PCI_HOST_STATE_VERSION)
		return err_set(e, -EINVAL, "pci host: saved state version %u, this build reads %u", ver,
			       PCI_HOST_STATE_VERSION);
	uint32_t addr = sreader_u32(in);
	sreader_get(in, cfg, sizeof(cfg));
	if (in->bad)
		return err_set(e, -EINVAL, "pci host: saved state truncated");
	if (addr & ~CONFIG_ADDR_MASK)
		return err_set(e, -EINVAL, "pci host: CONFIG_ADDRESS 0x%08x has reserved bits set", addr);
	hb_image(ref);
	for (unsigned reg = 0; reg < PCI_CONFIG_SPACE_SIZE; reg++) {
		uint8_t m = 0;
		if (reg == PCI_COMMAND || reg == PCI_COMMAND + 1)
			m = (uint8_t)(PCI_COMMAND_WMASK >> ((reg - PCI_COMMAND) * 8));
		if ((cfg[reg] & ~m) != (ref[reg] & ~m))
			return err_set(
			    e, -EINVAL,
			    "pci host: bridge register 0x%02x is 0x%02x, which the guest cannot write", reg,
			    cfg[reg]);
	}

	pthread_mutex_lock(&h->lock);
	h->addr = addr;
	memcpy(h->hb_cfg, cfg, sizeof(cfg));
	pthread_mutex_unlock(&h->lock);
	return 0;
}
