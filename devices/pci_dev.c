/* SPDX-License-Identifier: MIT */
/*
 * A type-0 PCI function: configuration header, BARs, capability list, MSI-X
 * and INTx (see pci_dev.h for the threading rules callers follow).
 *
 * Locks, outermost first; no lock is ever taken in the other order:
 *   cfg_lock   configuration space (guest config cycles, add_*, reset). Held
 *              across capability hooks and the host's BAR updates, so that
 *              config writes apply, and reach the host, in one order.
 *   remap_lock orders remap callbacks: taken before cfg_lock is dropped, so
 *              callbacks run in the order the changes were made, yet without
 *              cfg_lock or lock held.
 *   lock       what the data path reads: command register, INTx level, MSI-X
 *              table, PBA and control. Held briefly; msi_controller and
 *              irq_line callbacks run under it (they must not call back here).
 */
#include "devices/pci_dev.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CFG_SIZE	  PCI_CONFIG_SPACE_SIZE
#define CAP_START	  0x40 /* first capability: right after the type-0 header */
#define MAX_CAPS	  ((CFG_SIZE - CAP_START) / 4)
#define REG_COMMAND	  0x04
#define REG_CLASS	  0x08
#define REG_HEADER	  0x0c
#define REG_BAR0	  0x10
#define REG_SUBSYS	  0x2c
#define REG_CAP_PTR	  0x34
#define REG_INT_LINE	  0x3c
#define CMD_IO		  0x0001u
#define CMD_MEMORY	  0x0002u
#define CMD_INTX_DISABLE  0x0400u
#define CMD_WMASK	  0x0547u /* I/O, memory, bus master, parity, SERR#, INTx disable */
#define STATUS_INTX	  0x0008u
#define STATUS_CAP_LIST	  0x0010u
#define BAR_IO_FLAG	  0x1u
#define BAR_MEM64_FLAG	  0x4u
#define BAR_PREFETCH_FLAG 0x8u
#define MSIX_CAP_ID	  0x11
#define MSIX_CAP_LEN	  12
#define MSIX_CTRL_ENABLE  0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_ENTRY_SIZE	  16
#define MSIX_VEC_MASKED	  0x1u
#define MSIX_MAX_VECTORS  2048
#define IO_BAR_MIN	  16
#define IO_BAR_MAX	  256 /* PCI 3.0: an I/O BAR claims at most 256 bytes */
#define MEM_BAR_MIN	  4096
#define MEM32_BAR_MAX	  (1ULL << 31)
#define MEM64_BAR_MAX	  (1ULL << 62)
#define IO_SPACE_LAST	  0xffffULL
#define MEM32_SPACE_LAST  0xffffffffULL

#define PCI_DEV_STATE_VERSION 1
#define MSIX_CTRL_RESERVED    0x3800u
#define MSIX_CTRL_QSIZE	      0x07ffu

struct bar {
	bool present;
	bool upper; /* the high half of the 64-bit BAR below */
	enum pci_bar_type type;
	bool prefetch;
	uint64_t size, placed;
	uint64_t addr; /* as the guest programmed it, size bits cleared (cfg_lock) */
	const struct pci_bar_ops *ops;
	void *opaque;
	bool mapped; /* what the host and remap() were last told (cfg_lock) */
	uint64_t mapped_addr;
	uint64_t cur; /* mapped ? mapped_addr : 0, for pci_dev_bar_addr() (atomic) */
};

struct cap {
	uint8_t off, len, id, next;
	const struct pci_cap_ops *ops;
	void *opaque;
};

struct msix_vec {
	uint32_t addr_lo, addr_hi, data, ctrl;
	int efd; /* created when the vector first needs a route */
	bool has_route;
	unsigned route;
	struct msi_msg route_msg; /* where the route points: delivery only while it equals the entry */
};

struct remap_batch {
	unsigned n;
	struct remap_ev {
		const struct pci_bar_ops *ops;
		void *opaque;
		unsigned bar;
		uint64_t addr;
		bool mapped;
	} ev[PCI_NUM_BARS];
};

struct pci_dev {
	struct pci_host *host;
	unsigned devfn;
	struct pci_dev_id id;
	struct irq_line intx;
	bool has_intx;
	struct msi_controller msi;
	bool has_msi;
	pthread_mutex_t cfg_lock, remap_lock, lock;

	/* cfg_lock */
	uint8_t cfg[CFG_SIZE]; /* capability bytes; the header is built on each read */
	struct cap caps[MAX_CAPS];
	unsigned ncaps;
	uint32_t cap_end;
	uint8_t int_line;
	struct bar bars[PCI_NUM_BARS];

	/* lock (the command register is written with cfg_lock held too) */
	uint16_t command;
	bool intx_level, intx_out;
	bool msix_enabled; /* also read without the lock (atomic) */
	bool msix_fmask;
	struct msix_vec *vec;
	uint64_t *pba;

	/* MSI-X geometry, fixed by pci_dev_add_msix() before the vCPUs run; msix_nvec 0: none */
	unsigned msix_nvec, msix_bar;
	uint32_t table_off, table_len, pba_off, pba_len;
	uint8_t msix_cap;
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Whether [off, off + len) and [start, start + n) share a byte. */
static bool overlaps(uint64_t off, uint64_t len, uint64_t start, uint64_t n)
{
	return off < start + n && start < off + len;
}

/* ---- INTx ---- */

/* lock held: drives the line from the device's level, INTx disable and MSI-X enable (which forbids INTx). */
static void intx_update(struct pci_dev *d)
{
	bool out = d->intx_level && !(d->command & CMD_INTX_DISABLE) && !d->msix_enabled;

	if (out == d->intx_out)
		return;
	d->intx_out = out;
	if (d->has_intx)
		irq_line_set(&d->intx, out);
}

void pci_dev_set_intx(struct pci_dev *d, int level)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->intx_level = level != 0;
	intx_update(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- MSI-X vectors ---- */

static bool vec_pending(const struct pci_dev *d, unsigned v)
{
	return d->pba[v / 64] & (1ULL << (v % 64));
}

static void vec_set_pending(struct pci_dev *d, unsigned v, bool on)
{
	if (on)
		d->pba[v / 64] |= 1ULL << (v % 64);
	else
		d->pba[v / 64] &= ~(1ULL << (v % 64));
}

static bool vec_deliverable(const struct pci_dev *d, unsigned v)
{
	return d->msix_enabled && !d->msix_fmask && !(d->vec[v].ctrl & MSIX_VEC_MASKED);
}

static struct msi_msg vec_msg(const struct msix_vec *x)
{
	return (struct msi_msg){(uint64_t)x->addr_hi << 32 | x->addr_lo, x->data};
}

static bool route_current(const struct msix_vec *x)
{
	struct msi_msg m = vec_msg(x);

	return x->has_route && x->route_msg.addr == m.addr && x->route_msg.data == m.data;
}

/*
 * lock held: aims v's route at its table entry (adding the route, and the
 * eventfd, the first time). True when the route now matches the entry.
 */
static bool sync_route(struct pci_dev *d, unsigned v)
{
	struct msix_vec *x = &d->vec[v];
	struct msi_msg m = vec_msg(x);

	if (!d->has_msi)
		return false;
	if (route_current(x))
		return true;
	if (x->efd < 0 && (x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return false;
	if (!x->has_route) {
		if (d->msi.route_add(d->msi.opaque, x->efd, &m, &x->route))
			return false;
		x->has_route = true;
	} else if (d->msi.route_set(d->msi.opaque, x->route, &m)) {
		return false; /* route_msg still differs: nothing is delivered until a later sync works */
	}
	x->route_msg = m;
	return true;
}

static void vec_fire(struct msix_vec *x)
{
	uint64_t one = 1;

	if (write(x->efd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN at a counter of 2^64 - 2: cannot happen. */
	}
}

/* lock held, after anything that may make v deliverable: re-aim its route, then deliver what is pending. */
static void vec_refresh(struct pci_dev *d, unsigned v)
{
	if (!vec_deliverable(d, v) || !sync_route(d, v) || !vec_pending(d, v))
		return;
	vec_set_pending(d, v, false);
	vec_fire(&d->vec[v]);
}

bool pci_dev_msix_notify(struct pci_dev *d, unsigned vec)
{
	if (!d || vec >= d->msix_nvec)
		return false;
	pthread_mutex_lock(&d->lock);
	bool on = d->msix_enabled;
	if (on) {
		/* route_current(): never to an address the guest has since changed. */
		if (vec_deliverable(d, vec) && route_current(&d->vec[vec]))
			vec_fire(&d->vec[vec]);
		else
			vec_set_pending(d, vec, true);
	}
	pthread_mutex_unlock(&d->lock);
	return on;
}

bool pci_dev_msix_enabled(const struct pci_dev *d)
{
	return d && __atomic_load_n(&d->msix_enabled, __ATOMIC_ACQUIRE);
}

/* The table: 4- or 8-byte aligned accesses (PCI 3.0, 6.8.2); anything else reads all ones, writes nothing. */
static void msix_table_io(struct pci_dev *d, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	uint64_t rel = off - d->table_off;

	if ((len != 4 && len != 8) || off < d->table_off || rel % len || rel + len > d->table_len) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	unsigned v = (unsigned)(rel / MSIX_ENTRY_SIZE);
	struct msix_vec *x = &d->vec[v];
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < len; i += 4) {
		uint32_t *field[] = {&x->addr_lo, &x->addr_hi, &x->data, &x->ctrl};
		uint32_t *f = field[((rel + i) % MSIX_ENTRY_SIZE) / 4];
		if (!is_write)
			put32(data + i, *f);
		else if (f == &x->ctrl)
			*f = get32(data + i) & MSIX_VEC_MASKED; /* the rest of vector control is reserved */
		else
			*f = get32(data + i);
	}
	/* Unmasking, or rewriting an unmasked entry, re-aims the route before anything is delivered. */
	if (is_write)
		vec_refresh(d, v);
	pthread_mutex_unlock(&d->lock);
}

/* The PBA: read-only, same access rules as the table. */
static void msix_pba_io(struct pci_dev *d, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	uint64_t rel = off - d->pba_off;

	if ((len != 4 && len != 8) || off < d->pba_off || rel % len || rel + len > d->pba_len) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write)
		return;
	pthread_mutex_lock(&d->lock);
	uint64_t q = d->pba[rel / 8];
	pthread_mutex_unlock(&d->lock);
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(q >> (8 * ((rel % 8) + i)));
}

/* Capability hook for Message Control: only MSI-X Enable and Function Mask are writable. */
static void msix_cap_write(void *opaque, uint32_t off, const uint8_t *data, uint32_t len, uint8_t *cap,
			   uint32_t cap_len)
{
	struct pci_dev *d = opaque;

	for (uint32_t i = 0; i < len; i++)
		if (off + i == 3)
			cap[3] = (uint8_t)((cap[3] & 0x3f) | (data[i] & 0xc0));
	uint16_t ctrl = (uint16_t)(cap[2] | cap[3] << 8);
	bool en = ctrl & MSIX_CTRL_ENABLE, fmask = ctrl & MSIX_CTRL_MASKALL;

	pthread_mutex_lock(&d->lock);
	if (en != d->msix_enabled || fmask != d->msix_fmask) {
		__atomic_store_n(&d->msix_enabled, en, __ATOMIC_RELEASE);
		d->msix_fmask = fmask;
		intx_update(d);
		for (unsigned v = 0; v < d->msix_nvec; v++)
			vec_refresh(d, v);
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct pci_cap_ops msix_cap_ops = {.write = msix_cap_write};

/* lock held: MSI-X off, every vector masked and idle (routes stay, to be re-aimed before use). */
static void msix_reset(struct pci_dev *d)
{
	__atomic_store_n(&d->msix_enabled, false, __ATOMIC_RELEASE);
	d->msix_fmask = false;
	for (unsigned v = 0; v < d->msix_nvec; v++) {
		struct msix_vec *x = &d->vec[v];
		x->addr_lo = x->addr_hi = x->data = 0;
		x->ctrl = MSIX_VEC_MASKED;
	}
	if (d->pba)
		memset(d->pba, 0, d->pba_len);
}

/* ---- BARs ---- */

/* Guest accesses to a decoding BAR, from the host: MSI-X structures first, then the device. */
static void bar_io(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_dev *d = opaque;
	const struct bar *b = &d->bars[bar];

	if (d->msix_nvec && bar == d->msix_bar) {
		if (overlaps(off, len, d->table_off, d->table_len)) {
			msix_table_io(d, off, data, len, is_write);
			return;
		}
		if (overlaps(off, len, d->pba_off, d->pba_len)) {
			msix_pba_io(d, off, data, len, is_write);
			return;
		}
	}
	if (b->ops && b->ops->access)
		b->ops->access(b->opaque, bar, off, data, len, is_write);
}

/*
 * Where b decodes under command register cmd. Address 0 and ranges that
 * reach the top of their space (the all-ones sizing pattern) never decode.
 */
static bool bar_decodes(const struct bar *b, uint16_t cmd, uint64_t *at)
{
	uint64_t last = b->addr + (b->size - 1);

	*at = b->addr;
	if (b->addr == 0 || last < b->addr)
		return false;
	switch (b->type) {
	case PCI_BAR_IO:
		return (cmd & CMD_IO) && last <= IO_SPACE_LAST;
	case PCI_BAR_MEM32:
		return (cmd & CMD_MEMORY) && last < MEM32_SPACE_LAST;
	case PCI_BAR_MEM64:
		return (cmd & CMD_MEMORY) && last < UINT64_MAX;
	}
	return false;
}

/*
 * cfg_lock held: tells the host where each BAR decodes now and queues a
 * remap event for each BAR that started, stopped or moved.
 */
static void publish(struct pci_dev *d, struct remap_batch *rb)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct bar *b = &d->bars[i];
		uint64_t at;
		if (!b->present || b->upper)
			continue;
		bool on = bar_decodes(b, d->command, &at);
		if (on == b->mapped && (!on || at == b->mapped_addr))
			continue;
		/* Cannot fail: the slot is ours and the range was checked not to wrap. */
		pci_host_set_bar(d->host, d->devfn, i, b->type == PCI_BAR_IO, at, on ? b->size : 0, bar_io,
				 d);
		if (b->ops && b->ops->remap)
			rb->ev[rb->n++] =
			    (struct remap_ev){b->ops, b->opaque, i, on ? at : b->mapped_addr, on};
		b->mapped = on;
		b->mapped_addr = on ? at : 0;
		__atomic_store_n(&b->cur, b->mapped_addr, __ATOMIC_RELEASE);
	}
}

/* Drops cfg_lock and runs the queued remap callbacks, in order with every other batch, without it. */
static void unlock_and_remap(struct pci_dev *d, struct remap_batch *rb)
{
	if (!rb->n) {
		pthread_mutex_unlock(&d->cfg_lock);
		return;
	}
	pthread_mutex_lock(&d->remap_lock);
	pthread_mutex_unlock(&d->cfg_lock);
	for (unsigned i = 0; i < rb->n; i++) {
		const struct remap_ev *ev = &rb->ev[i];
		ev->ops->remap(ev->opaque, ev->bar, ev->addr, ev->mapped);
	}
	pthread_mutex_unlock(&d->remap_lock);
}

static uint32_t bar_read(const struct pci_dev *d, unsigned i)
{
	const struct bar *b = &d->bars[i];

	if (!b->present)
		return 0;
	if (b->upper)
		return (uint32_t)(d->bars[i - 1].addr >> 32);
	uint32_t flags = b->prefetch ? BAR_PREFETCH_FLAG : 0;
	if (b->type == PCI_BAR_IO)
		flags = BAR_IO_FLAG;
	else if (b->type == PCI_BAR_MEM64)
		flags |= BAR_MEM64_FLAG;
	return (uint32_t)b->addr | flags;
}

/* Size bits read back 0, so that writing all ones and reading back yields the size mask. */
static void bar_write(struct pci_dev *d, unsigned i, uint32_t v)
{
	struct bar *b = &d->bars[i];

	if (!b->present)
		return;
	if (b->upper) {
		b = &d->bars[i - 1];
		b->addr = ((b->addr & 0xffffffffULL) | (uint64_t)v << 32) & ~(b->size - 1);
	} else if (b->type == PCI_BAR_IO) {
		b->addr = (v & ~0x3u) & ~(b->size - 1);
	} else if (b->type == PCI_BAR_MEM32) {
		b->addr = (v & ~0xfu) & ~(b->size - 1);
	} else {
		b->addr = ((b->addr & ~0xffffffffULL) | (v & ~0xfu)) & ~(b->size - 1);
	}
}

/* ---- configuration space ---- */

/* cfg_lock held: the header dword at reg (a multiple of 4 below CAP_START). */
static uint32_t header_read(struct pci_dev *d, uint32_t reg)
{
	const struct pci_dev_id *id = &d->id;

	switch (reg) {
	case 0x00:
		return id->vendor | (uint32_t)id->device << 16;
	case REG_COMMAND: {
		pthread_mutex_lock(&d->lock);
		uint32_t status = (d->ncaps ? STATUS_CAP_LIST : 0) | (d->intx_level ? STATUS_INTX : 0);
		uint32_t v = d->command | status << 16;
		pthread_mutex_unlock(&d->lock);
		return v;
	}
	case REG_CLASS:
		return id->revision | (id->class_code & 0xffffff) << 8;
	case REG_HEADER:
		return 0; /* cache line size, latency timer, header type 0 (single function), BIST */
	case REG_SUBSYS:
		return id->subsys_vendor | (uint32_t)id->subsys << 16;
	case REG_CAP_PTR:
		return d->ncaps ? CAP_START : 0;
	case REG_INT_LINE:
		return d->int_line | (uint32_t)id->int_pin << 8;
	default:
		if (reg >= REG_BAR0 && reg < REG_BAR0 + 4 * PCI_NUM_BARS)
			return bar_read(d, (reg - REG_BAR0) / 4);
		return 0; /* CardBus CIS, expansion ROM (none), reserved */
	}
}

/* cfg_lock held: the guest wrote v (merged with the current value) to the header dword at reg. */
static void header_write(struct pci_dev *d, uint32_t reg, uint32_t v)
{
	if (reg == REG_COMMAND) {
		/* Status has no RW1C bits we ever set, so the upper half is read-only. */
		pthread_mutex_lock(&d->lock);
		d->command = (uint16_t)(v & CMD_WMASK);
		intx_update(d);
		pthread_mutex_unlock(&d->lock);
	} else if (reg >= REG_BAR0 && reg < REG_BAR0 + 4 * PCI_NUM_BARS) {
		bar_write(d, (reg - REG_BAR0) / 4, v);
	} else if (reg == REG_INT_LINE) {
		d->int_line = (uint8_t)v; /* scratch for the guest; the pin is ours */
	}
}

static struct cap *find_cap(struct pci_dev *d, uint32_t reg)
{
	for (unsigned i = 0; i < d->ncaps; i++)
		if (reg >= d->caps[i].off && reg < (uint32_t)d->caps[i].off + d->caps[i].len)
			return &d->caps[i];
	return NULL;
}

/* A hook may scribble on its capability's ID and next pointer: they are ours. */
static void cap_restore(struct pci_dev *d, const struct cap *c)
{
	d->cfg[c->off] = c->id;
	d->cfg[c->off + 1] = c->next;
}

static void config_read(void *opaque, uint32_t reg, uint8_t *data, uint32_t len)
{
	struct pci_dev *d = opaque;

	if (len < 1 || len > 4 || reg >= CFG_SIZE || len > CFG_SIZE - reg)
		return;
	pthread_mutex_lock(&d->cfg_lock);
	if (reg < CAP_START) {
		uint32_t v = header_read(d, reg & ~3u);
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(v >> (8 * ((reg & 3) + i)));
	} else {
		struct cap *c = find_cap(d, reg);
		if (c && c->ops && c->ops->read) {
			c->ops->read(c->opaque, reg - c->off, d->cfg + c->off, c->len);
			cap_restore(d, c);
		}
		memcpy(data, d->cfg + reg, len); /* bytes between capabilities are 0 */
	}
	pthread_mutex_unlock(&d->cfg_lock);
}

static void config_write(void *opaque, uint32_t reg, const uint8_t *data, uint32_t len)
{
	struct pci_dev *d = opaque;
	struct remap_batch rb = {0};

	if (len < 1 || len > 4 || reg >= CFG_SIZE || len > CFG_SIZE - reg)
		return;
	pthread_mutex_lock(&d->cfg_lock);
	if (reg < CAP_START) {
		/* Accesses are aligned, so they stay in one dword: merge, then apply the whole dword. */
		uint32_t dw = reg & ~3u, v = header_read(d, dw);
		for (uint32_t i = 0; i < len; i++) {
			uint32_t sh = 8 * ((reg & 3) + i);
			v = (v & ~(0xffu << sh)) | (uint32_t)data[i] << sh;
		}
		header_write(d, dw, v);
		publish(d, &rb);
	} else {
		struct cap *c = find_cap(d, reg);
		if (c && c->ops && c->ops->write) {
			/* The hook sees the part of the access inside its capability, past ID and next. */
			uint32_t lo = reg > c->off + 2u ? reg : c->off + 2u;
			uint32_t hi =
			    reg + len < (uint32_t)c->off + c->len ? reg + len : (uint32_t)c->off + c->len;
			if (lo < hi) {
				c->ops->write(c->opaque, lo - c->off, data + (lo - reg), hi - lo,
					      d->cfg + c->off, c->len);
				cap_restore(d, c);
			}
		}
	}
	unlock_and_remap(d, &rb);
}

static const struct pci_device_ops config_ops = {.config_read = config_read, .config_write = config_write};

/* cfg_lock held. */
static int add_cap_locked(struct pci_dev *d, const uint8_t *body, uint32_t len, const struct pci_cap_ops *ops,
			  void *opaque)
{
	uint32_t off = d->cap_end;

	if (d->ncaps == MAX_CAPS || off >= CFG_SIZE || len > CFG_SIZE - off)
		return -ENOSPC;
	memcpy(d->cfg + off, body, len);
	struct cap *c = &d->caps[d->ncaps];
	*c = (struct cap){(uint8_t)off, (uint8_t)len, body[0], 0, ops, opaque};
	if (d->ncaps) {
		struct cap *prev = &d->caps[d->ncaps - 1];
		prev->next = (uint8_t)off;
		cap_restore(d, prev);
	}
	cap_restore(d, c);
	d->ncaps++;
	d->cap_end = (off + len + 3) & ~3u; /* capabilities are dword aligned */
	return (int)off;
}

int pci_dev_add_cap(struct pci_dev *d, const uint8_t *body, uint32_t len, const struct pci_cap_ops *ops,
		    void *opaque)
{
	if (!d || !body || len < 2)
		return -EINVAL;
	pthread_mutex_lock(&d->cfg_lock);
	int r = add_cap_locked(d, body, len, ops, opaque);
	pthread_mutex_unlock(&d->cfg_lock);
	return r;
}

/* ---- set-up ---- */

static bool bar_size_ok(enum pci_bar_type type, uint64_t size)
{
	if (size & (size - 1))
		return false;
	switch (type) {
	case PCI_BAR_IO:
		return size >= IO_BAR_MIN && size <= IO_BAR_MAX;
	case PCI_BAR_MEM32:
		return size >= MEM_BAR_MIN && size <= MEM32_BAR_MAX;
	case PCI_BAR_MEM64:
		return size >= MEM_BAR_MIN && size <= MEM64_BAR_MAX;
	}
	return false;
}

int pci_dev_add_bar(struct pci_dev *d, unsigned bar, enum pci_bar_type type, bool prefetchable, uint64_t size,
		    const struct pci_bar_ops *ops, void *opaque)
{
	static const enum pci_window_id win[] = {PCI_WINDOW_IO, PCI_WINDOW_MEM32, PCI_WINDOW_MEM64};
	struct remap_batch rb = {0};
	uint64_t addr;
	int r;

	if (!d || bar >= PCI_NUM_BARS || (unsigned)type > PCI_BAR_MEM64 || !bar_size_ok(type, size) ||
	    (type == PCI_BAR_MEM64 && bar + 1 >= PCI_NUM_BARS))
		return -EINVAL;
	pthread_mutex_lock(&d->cfg_lock);
	if (d->bars[bar].present || (type == PCI_BAR_MEM64 && d->bars[bar + 1].present)) {
		pthread_mutex_unlock(&d->cfg_lock);
		return -EEXIST;
	}
	if ((r = pci_host_alloc_bar(d->host, win[type], size, &addr))) {
		pthread_mutex_unlock(&d->cfg_lock);
		return r;
	}
	/* The register cannot hold an address beyond its space: a window placed there is a set-up error. */
	uint64_t limit = type == PCI_BAR_IO	 ? IO_SPACE_LAST
			 : type == PCI_BAR_MEM32 ? MEM32_SPACE_LAST
						 : UINT64_MAX;
	if (addr + (size - 1) > limit || addr == 0) {
		pci_host_free_bar(d->host, addr);
		pthread_mutex_unlock(&d->cfg_lock);
		return -ENOSPC;
	}
	d->bars[bar] = (struct bar){.present = true,
				    .type = type,
				    .prefetch = type != PCI_BAR_IO && prefetchable,
				    .size = size,
				    .placed = addr,
				    .addr = addr,
				    .ops = ops,
				    .opaque = opaque};
	if (type == PCI_BAR_MEM64)
		d->bars[bar + 1] = (struct bar){.present = true, .upper = true};
	publish(d, &rb); /* decodes at once if the command register already enables it */
	unlock_and_remap(d, &rb);
	return 0;
}

int pci_dev_add_msix(struct pci_dev *d, unsigned nvec, unsigned bar, uint32_t table_off, uint32_t pba_off)
{
	if (!d || nvec < 1 || nvec > MSIX_MAX_VECTORS || bar >= PCI_NUM_BARS || table_off % 8 || pba_off % 8)
		return -EINVAL;
	uint32_t table_len = nvec * MSIX_ENTRY_SIZE, pba_len = (nvec + 63) / 64 * 8;
	int r = 0;

	pthread_mutex_lock(&d->cfg_lock);
	const struct bar *b = &d->bars[bar];
	if (d->msix_nvec)
		r = -EEXIST;
	else if (!b->present || b->upper || b->type == PCI_BAR_IO || table_off > b->size ||
		 table_len > b->size - table_off || pba_off > b->size || pba_len > b->size - pba_off ||
		 overlaps(table_off, table_len, pba_off, pba_len))
		r = -EINVAL;
	if (r) {
		pthread_mutex_unlock(&d->cfg_lock);
		return r;
	}
	struct msix_vec *vec = calloc(nvec, sizeof(*vec));
	uint64_t *pba = calloc(pba_len / 8, sizeof(*pba));
	uint8_t cap[MSIX_CAP_LEN] = {MSIX_CAP_ID, 0, (uint8_t)(nvec - 1), (uint8_t)((nvec - 1) >> 8)};
	put32(cap + 4, table_off | bar);
	put32(cap + 8, pba_off | bar);
	if (!vec || !pba || (r = add_cap_locked(d, cap, sizeof(cap), &msix_cap_ops, d)) < 0) {
		pthread_mutex_unlock(&d->cfg_lock);
		free(vec);
		free(pba);
		return r < 0 ? r : -ENOMEM;
	}
	for (unsigned v = 0; v < nvec; v++)
		vec[v] = (struct msix_vec){.ctrl = MSIX_VEC_MASKED, .efd = -1};
	pthread_mutex_lock(&d->lock);
	d->vec = vec;
	d->pba = pba;
	d->msix_cap = (uint8_t)r;
	d->msix_bar = bar;
	d->table_off = table_off;
	d->table_len = table_len;
	d->pba_off = pba_off;
	d->pba_len = pba_len;
	d->msix_nvec = nvec;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->cfg_lock);
	return 0;
}

void pci_dev_reset(struct pci_dev *d)
{
	struct remap_batch rb = {0};

	if (!d)
		return;
	pthread_mutex_lock(&d->cfg_lock);
	pthread_mutex_lock(&d->lock);
	d->command = 0;
	msix_reset(d);
	intx_update(d);
	pthread_mutex_unlock(&d->lock);
	if (d->msix_nvec) {
		d->cfg[d->msix_cap + 2] = (uint8_t)(d->msix_nvec - 1);
		d->cfg[d->msix_cap + 3] = (uint8_t)((d->msix_nvec - 1) >> 8);
	}
	d->int_line = 0;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (d->bars[i].present && !d->bars[i].upper)
			d->bars[i].addr = d->bars[i].placed;
	publish(d, &rb);
	unlock_and_remap(d, &rb);
}

uint64_t pci_dev_bar_addr(const struct pci_dev *d, unsigned bar)
{
	if (!d || bar >= PCI_NUM_BARS)
		return 0;
	return __atomic_load_n(&d->bars[bar].cur, __ATOMIC_ACQUIRE);
}

struct pci_dev *pci_dev_create(struct pci_host *h, unsigned devfn, const struct pci_dev_id *id,
			       const struct irq_line *intx, const struct msi_controller *msi, struct err *e)
{
	if (!h || !id || id->int_pin > 4 ||
	    (msi && (!msi->route_add || !msi->route_set || !msi->route_del))) {
		err_set(e, -EINVAL, "PCI function %02x.%x: bad arguments", (devfn >> 3) & 0x1f, devfn & 7);
		return NULL;
	}
	struct pci_dev *d = calloc(1, sizeof(*d));
	if (!d) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	d->host = h;
	d->devfn = devfn;
	d->id = *id;
	if (intx) {
		d->intx = *intx;
		d->has_intx = true;
	}
	if (msi) {
		d->msi = *msi;
		d->has_msi = true;
	}
	d->cap_end = CAP_START;
	pthread_mutex_init(&d->cfg_lock, NULL);
	pthread_mutex_init(&d->remap_lock, NULL);
	pthread_mutex_init(&d->lock, NULL);
	int r = pci_register_device(h, devfn, &config_ops, d);
	if (r) {
		err_set(e, r, "PCI function %02x.%x: %s", (devfn >> 3) & 0x1f, devfn & 7,
			r == -EEXIST ? "slot taken" : "bad slot");
		pthread_mutex_destroy(&d->lock);
		pthread_mutex_destroy(&d->remap_lock);
		pthread_mutex_destroy(&d->cfg_lock);
		free(d);
		return NULL;
	}
	return d;
}

void pci_dev_destroy(struct pci_dev *d)
{
	if (!d)
		return;
	/* After this no config or BAR callback of ours runs: nothing below races with the guest. */
	pci_unregister_device(d->host, d->devfn);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (d->bars[i].present && !d->bars[i].upper)
			pci_host_free_bar(d->host, d->bars[i].placed);
	for (unsigned v = 0; v < d->msix_nvec; v++) {
		struct msix_vec *x = &d->vec[v];
		if (x->has_route)
			d->msi.route_del(d->msi.opaque, x->route, x->efd);
		if (x->efd >= 0)
			close(x->efd);
	}
	/* Leave no GSI asserted behind. */
	if (d->intx_out && d->has_intx)
		irq_line_set(&d->intx, 0);
	free(d->vec);
	free(d->pba);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->remap_lock);
	pthread_mutex_destroy(&d->cfg_lock);
	free(d);
}

/* ---- saved state ---- */

/* A BAR's kind in the saved state: 0 absent, 1 the upper half of a 64-bit BAR, else 2 + its type. */
static uint8_t bar_kind(const struct bar *b)
{
	if (!b->present)
		return 0;
	return b->upper ? 1 : (uint8_t)(2 + b->type);
}

void pci_dev_save(const struct pci_dev *cd, struct sbuf *out)
{
	struct pci_dev *d = (struct pci_dev *)cd; /* the locks only */

	pthread_mutex_lock(&d->cfg_lock);
	pthread_mutex_lock(&d->lock);
	sbuf_u32(out, PCI_DEV_STATE_VERSION);
	/* Identity and layout: fixed by the configuration, checked on load. */
	sbuf_u16(out, d->id.vendor);
	sbuf_u16(out, d->id.device);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		sbuf_u8(out, bar_kind(&d->bars[i]));
		sbuf_u64(out, d->bars[i].size);
		sbuf_u64(out, d->bars[i].addr);
	}
	sbuf_u16(out, (uint16_t)d->msix_nvec);
	/* What the guest can change. */
	sbuf_u16(out, d->command);
	sbuf_u8(out, d->int_line);
	sbuf_put(out, d->cfg + CAP_START, CFG_SIZE - CAP_START);
	sbuf_u8(out, d->intx_level);
	for (unsigned v = 0; v < d->msix_nvec; v++) {
		sbuf_u32(out, d->vec[v].addr_lo);
		sbuf_u32(out, d->vec[v].addr_hi);
		sbuf_u32(out, d->vec[v].data);
		sbuf_u32(out, d->vec[v].ctrl);
	}
	for (unsigned i = 0; i < d->pba_len / 8; i++)
		sbuf_u64(out, d->pba[i]);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->cfg_lock);
}

/* The highest address a BAR register of this type can hold. */
static uint64_t bar_reg_limit(enum pci_bar_type type)
{
	return type == PCI_BAR_MEM64 ? UINT64_MAX : MEM32_SPACE_LAST;
}

/* cfg_lock held: checks the saved capability area cfg against this function's capabilities. */
static int check_caps(const struct pci_dev *d, const uint8_t *cfg, unsigned slot, unsigned fn, struct err *e)
{
	for (uint32_t reg = CAP_START; reg < CFG_SIZE; reg++) {
		const struct cap *c = NULL;
		for (unsigned i = 0; i < d->ncaps; i++)
			if (reg >= d->caps[i].off && reg < (uint32_t)d->caps[i].off + d->caps[i].len)
				c = &d->caps[i];
		uint8_t v = cfg[reg - CAP_START];
		if (!c) {
			if (v)
				return err_set(
				    e, -EINVAL,
				    "PCI function %02x.%x: config byte 0x%02x is 0x%02x outside any "
				    "capability",
				    slot, fn, reg, v);
			continue;
		}
		uint32_t at = reg - c->off;
		bool ok;
		if (at == 0)
			ok = v == c->id;
		else if (at == 1)
			ok = v == c->next;
		else if (d->msix_nvec && c->off == d->msix_cap && at < 4)
			ok = true; /* Message Control: checked as a whole below */
		else if (c->ops == &msix_cap_ops || (!c->ops || (!c->ops->write && !c->ops->read)))
			ok = v == d->cfg[reg]; /* read-only to the guest */
		else
			ok = true; /* the owner's hooks keep these bytes: its own saved state vouches for them
				    */
		if (!ok)
			return err_set(
			    e, -EINVAL,
			    "PCI function %02x.%x: capability 0x%02x byte %u is 0x%02x, which the guest "
			    "cannot write",
			    slot, fn, c->id, at, v);
	}
	if (d->msix_nvec) {
		const uint8_t *p = cfg + (d->msix_cap + 2 - CAP_START);
		uint16_t ctrl = (uint16_t)(p[0] | p[1] << 8);
		if ((ctrl & MSIX_CTRL_QSIZE) != d->msix_nvec - 1 || (ctrl & MSIX_CTRL_RESERVED))
			return err_set(e, -EINVAL,
				       "PCI function %02x.%x: MSI-X Message Control 0x%04x is not "
				       "one this function can have",
				       slot, fn, ctrl);
	}
	return 0;
}

int pci_dev_load(struct pci_dev *d, struct sreader *in, struct err *e)
{
	unsigned slot = (d->devfn >> 3) & 0x1f, fn = d->devfn & 7;
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "PCI function %02x.%x: saved state truncated", slot, fn);
	if (ver != PCI_DEV_STATE_VERSION)
		return err_set(e, -EINVAL,
			       "PCI function %02x.%x: saved state version %u, this build reads %u", slot, fn,
			       ver, PCI_DEV_STATE_VERSION);

	/* Layout first: the sizes of what follows depend on it. nvec and the BAR kinds are fixed after
	 * set-up. */
	uint16_t vendor = sreader_u16(in), device = sreader_u16(in);
	uint8_t kind[PCI_NUM_BARS];
	uint64_t size[PCI_NUM_BARS], addr[PCI_NUM_BARS];
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		kind[i] = sreader_u8(in);
		size[i] = sreader_u64(in);
		addr[i] = sreader_u64(in);
	}
	uint16_t nvec = sreader_u16(in);
	if (in->bad)
		return err_set(e, -EINVAL, "PCI function %02x.%x: saved state truncated", slot, fn);
	if (vendor != d->id.vendor || device != d->id.device)
		return err_set(e, -EINVAL,
			       "PCI function %02x.%x: saved state is for %04x:%04x, this is %04x:%04x", slot,
			       fn, vendor, device, d->id.vendor, d->id.device);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		const struct bar *b = &d->bars[i];
		if (kind[i] != bar_kind(b) || size[i] != b->size)
			return err_set(
			    e, -EINVAL,
			    "PCI function %02x.%x: saved BAR %u (kind %u, size 0x%llx) differs from this "
			    "function's",
			    slot, fn, i, kind[i], (unsigned long long)size[i]);
		if (!b->present || b->upper) {
			if (addr[i])
				return err_set(e, -EINVAL, "PCI function %02x.%x: BAR %u holds no address",
					       slot, fn, i);
			continue;
		}
		if ((addr[i] & (b->size - 1)) || addr[i] > bar_reg_limit(b->type))
			return err_set(
			    e, -EINVAL,
			    "PCI function %02x.%x: BAR %u address 0x%llx is not one its register can hold",
			    slot, fn, i, (unsigned long long)addr[i]);
	}
	if (nvec != d->msix_nvec)
		return err_set(e, -EINVAL,
			       "PCI function %02x.%x: saved state has %u MSI-X vectors, this has %u", slot,
			       fn, nvec, d->msix_nvec);

	uint16_t command = sreader_u16(in);
	uint8_t int_line = sreader_u8(in);
	uint8_t cfg[CFG_SIZE - CAP_START];
	sreader_get(in, cfg, sizeof(cfg));
	uint8_t intx_level = sreader_u8(in);
	struct msix_vec *vec = nvec ? calloc(nvec, sizeof(*vec)) : NULL;
	size_t pba_words = d->pba_len / 8;
	uint64_t *pba = pba_words ? calloc(pba_words, sizeof(*pba)) : NULL;
	if ((nvec && !vec) || (pba_words && !pba)) {
		free(vec);
		free(pba);
		return err_set(e, -ENOMEM, "PCI function %02x.%x: out of memory", slot, fn);
	}
	for (unsigned v = 0; v < nvec; v++) {
		vec[v].addr_lo = sreader_u32(in);
		vec[v].addr_hi = sreader_u32(in);
		vec[v].data = sreader_u32(in);
		vec[v].ctrl = sreader_u32(in);
	}
	for (size_t i = 0; i < pba_words; i++)
		pba[i] = sreader_u64(in);

	int r = 0;
	if (in->bad)
		r = err_set(e, -EINVAL, "PCI function %02x.%x: saved state truncated", slot, fn);
	else if (command & ~CMD_WMASK)
		r = err_set(e, -EINVAL,
			    "PCI function %02x.%x: command 0x%04x has bits the register does not keep", slot,
			    fn, command);
	else if (intx_level > 1)
		r = err_set(e, -EINVAL, "PCI function %02x.%x: INTx level %u is not 0 or 1", slot, fn,
			    intx_level);
	for (unsigned v = 0; !r && v < nvec; v++)
		if (vec[v].ctrl & ~MSIX_VEC_MASKED)
			r = err_set(
			    e, -EINVAL,
			    "PCI function %02x.%x: MSI-X vector %u control 0x%08x has reserved bits set",
			    slot, fn, v, vec[v].ctrl);
	for (unsigned v = nvec; !r && v < pba_words * 64; v++)
		if (pba[v / 64] & (1ULL << (v % 64)))
			r = err_set(e, -EINVAL, "PCI function %02x.%x: PBA bit %u is past the last vector",
				    slot, fn, v);
	if (r) {
		free(vec);
		free(pba);
		return r;
	}

	struct remap_batch rb = {0};
	pthread_mutex_lock(&d->cfg_lock);
	r = check_caps(d, cfg, slot, fn, e);
	if (r) {
		pthread_mutex_unlock(&d->cfg_lock);
		free(vec);
		free(pba);
		return r;
	}
	/* Nothing below can fail. */
	memcpy(d->cfg + CAP_START, cfg, sizeof(cfg));
	for (unsigned i = 0; i < d->ncaps; i++)
		cap_restore(d, &d->caps[i]);
	d->int_line = int_line;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (d->bars[i].present && !d->bars[i].upper)
			d->bars[i].addr = addr[i];
	pthread_mutex_lock(&d->lock);
	d->command = command;
	d->intx_level = intx_level;
	if (nvec) {
		uint16_t ctrl = (uint16_t)(d->cfg[d->msix_cap + 2] | d->cfg[d->msix_cap + 3] << 8);
		__atomic_store_n(&d->msix_enabled, (ctrl & MSIX_CTRL_ENABLE) != 0, __ATOMIC_RELEASE);
		d->msix_fmask = ctrl & MSIX_CTRL_MASKALL;
		memcpy(d->pba, pba, pba_words * sizeof(*pba));
		/* Routes and eventfds are this process's: keep them, and re-aim them below. */
		for (unsigned v = 0; v < nvec; v++) {
			d->vec[v].addr_lo = vec[v].addr_lo;
			d->vec[v].addr_hi = vec[v].addr_hi;
			d->vec[v].data = vec[v].data;
			d->vec[v].ctrl = vec[v].ctrl;
		}
		for (unsigned v = 0; v < nvec; v++)
			vec_refresh(d, v);
	}
	intx_update(d);
	pthread_mutex_unlock(&d->lock);
	/* Decoding where the guest put each BAR, as a command or BAR write would have made it. */
	publish(d, &rb);
	unlock_and_remap(d, &rb);
	free(vec);
	free(pba);
	return 0;
}
