/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the PCI host (devices/pci.c): type-1 and ECAM config access, host
 * bridge, device dispatch, BAR placement in the windows, window dispatch,
 * the INTx swizzle, and unplugging while a callback runs.
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
#include <time.h>

#include "devices/pci.h"
#include "vmm/arch/x86/layout.h"

#define IO_START    0x1000ULL
#define IO_END	    0xffffULL
#define MEM32_START 0xc0000000ULL
#define MEM32_END   0xfebfffffULL
#define MEM64_START 0x200000000ULL
#define MEM64_END   (MEM64_START + (1ULL << 36) - 1)

static const struct pci_windows windows = {IO_START, IO_END, MEM32_START, MEM32_END, MEM64_START, MEM64_END};

/* A fake device: 256 bytes of config space, and a log of the calls it saw. */
struct call {
	bool write;
	uint32_t reg, len;
	uint8_t data[4];
};

struct fake_dev {
	uint8_t cfg[256];
	struct call calls[64];
	int ncalls;
};

static void log_call(struct fake_dev *d, bool write, uint32_t reg, const uint8_t *data, uint32_t len)
{
	assert_true(len == 1 || len == 2 || len == 4);
	assert_int_equal(reg % len, 0);
	assert_true(reg + len <= 256);
	if (d->ncalls < 64) {
		struct call *c = &d->calls[d->ncalls++];
		c->write = write;
		c->reg = reg;
		c->len = len;
		memcpy(c->data, data, len);
	}
}

static void fake_read(void *opaque, uint32_t reg, uint8_t *data, uint32_t len)
{
	struct fake_dev *d = opaque;
	for (uint32_t i = 0; i < len; i++)
		assert_int_equal(data[i], 0xff); /* preset */
	memcpy(data, d->cfg + reg, len);
	log_call(d, false, reg, data, len);
}

static void fake_write(void *opaque, uint32_t reg, const uint8_t *data, uint32_t len)
{
	struct fake_dev *d = opaque;
	memcpy(d->cfg + reg, data, len);
	log_call(d, true, reg, data, len);
}

static const struct pci_device_ops fake_ops = {.config_read = fake_read, .config_write = fake_write};

static void set_addr(struct pci_host *h, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_host_addr_io(h, 0, d, 4, true);
}

static uint32_t get_addr(struct pci_host *h)
{
	uint8_t d[4];
	pci_host_addr_io(h, 0, d, 4, false);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static uint32_t cfg_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t data_read(struct pci_host *h, unsigned off, unsigned len)
{
	uint8_t d[8] = {0};
	pci_host_data_io(h, off, d, len, false);
	uint32_t v = 0;
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void data_write(struct pci_host *h, unsigned off, unsigned len, uint32_t v)
{
	uint8_t d[8] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_host_data_io(h, off, d, len, true);
}

/* Reads a config register the way Linux's pci_conf1_read does. */
static uint32_t conf1_read(struct pci_host *h, unsigned bus, unsigned devfn, unsigned reg, unsigned len)
{
	set_addr(h, cfg_addr(bus, devfn >> 3, devfn & 7, reg));
	return data_read(h, reg & 3, len);
}

static void conf1_write(struct pci_host *h, unsigned bus, unsigned devfn, unsigned reg, unsigned len,
			uint32_t v)
{
	set_addr(h, cfg_addr(bus, devfn >> 3, devfn & 7, reg));
	data_write(h, reg & 3, len, v);
}

static int setup(void **state)
{
	struct pci_host *h = pci_host_create(&windows);
	assert_non_null(h);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	pci_host_destroy(*state);
	return 0;
}

static void test_config_address(void **state)
{
	struct pci_host *h = *state;
	assert_int_equal(get_addr(h), 0);
	set_addr(h, 0x80000000u);
	assert_int_equal(get_addr(h), 0x80000000u);
	set_addr(h, 0xffffffffu);
	assert_int_equal(get_addr(h), 0x80fffffcu);
	set_addr(h, 0x12345678u);
	assert_int_equal(get_addr(h), 0x00345678u);
	/* Linux's pci_check_type1: a byte write to 0xcfb must not change the latch. */
	set_addr(h, 0x80000000u);
	uint8_t b = 0x01;
	pci_host_addr_io(h, 3, &b, 1, true);
	assert_int_equal(get_addr(h), 0x80000000u);
	uint8_t w[2] = {0x34, 0x12};
	pci_host_addr_io(h, 0, w, 2, true);
	pci_host_addr_io(h, 2, w, 2, true);
	pci_host_addr_io(h, 1, w, 1, true);
	assert_int_equal(get_addr(h), 0x80000000u);
	/* Narrow reads are not the latch either. */
	memset(w, 0, sizeof(w));
	pci_host_addr_io(h, 0, w, 2, false);
	assert_int_equal(w[0], 0xff);
	assert_int_equal(w[1], 0xff);
	uint8_t q[8] = {0};
	pci_host_addr_io(h, 0, q, 8, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(q[i], 0xff);
}

static void test_host_bridge(void **state)
{
	struct pci_host *h = *state;
	assert_int_equal(conf1_read(h, 0, 0, 0x00, 4), 0x00081b36u);
	assert_int_equal(conf1_read(h, 0, 0, 0x00, 2), 0x1b36);
	assert_int_equal(conf1_read(h, 0, 0, 0x02, 2), 0x0008);
	assert_int_equal(conf1_read(h, 0, 0, 0x08, 4), 0x06000000u);
	assert_int_equal(conf1_read(h, 0, 0, 0x0a, 2), 0x0600); /* Linux's pci_sanity_check */
	assert_int_equal(conf1_read(h, 0, 0, 0x0e, 1), 0x00);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 2), 0x0006);
	assert_int_equal(conf1_read(h, 0, 0, 0x06, 2), 0x0000);
	/* BARs are absent: sizing reads back 0. */
	for (unsigned bar = 0x10; bar <= 0x24; bar += 4) {
		conf1_write(h, 0, 0, bar, 4, 0xffffffffu);
		assert_int_equal(conf1_read(h, 0, 0, bar, 4), 0);
	}
	/* Only harmless command bits are writable. */
	conf1_write(h, 0, 0, 0x04, 4, 0xffffffffu);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 4), 0x00000547u);
	conf1_write(h, 0, 0, 0x05, 1, 0x00);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 2), 0x0047);
	conf1_write(h, 0, 0, 0x04, 2, 0x0000);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 2), 0x0000);
	conf1_write(h, 0, 0, 0x00, 4, 0x12345678u);
	conf1_write(h, 0, 0, 0x08, 4, 0);
	assert_int_equal(conf1_read(h, 0, 0, 0x00, 4), 0x00081b36u);
	assert_int_equal(conf1_read(h, 0, 0, 0x08, 4), 0x06000000u);
	/* Every register: no crash, and the unused ones read 0. */
	for (unsigned reg = 0x10; reg < 256; reg += 4)
		assert_int_equal(conf1_read(h, 0, 0, reg, 4), 0);
	pci_host_reset(h);
	assert_int_equal(get_addr(h), 0);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 2), 0x0006);
}

static void test_absent_functions(void **state)
{
	struct pci_host *h = *state;
	for (unsigned devfn = 1; devfn < 256; devfn++) {
		assert_int_equal(conf1_read(h, 0, devfn, 0, 4), 0xffffffffu);
		conf1_write(h, 0, devfn, 4, 2, 0x0007);
	}
	for (unsigned bus = 1; bus < 256; bus += 17)
		assert_int_equal(conf1_read(h, bus, 0, 0, 4), 0xffffffffu);
	assert_int_equal(conf1_read(h, 1, 0, 0x0a, 2), 0xffff);
	assert_int_equal(conf1_read(h, 0, 1, 0x0e, 1), 0xff);
}

static void test_enable_bit(void **state)
{
	struct pci_host *h = *state;
	set_addr(h, cfg_addr(0, 0, 0, 0) & ~0x80000000u);
	assert_int_equal(data_read(h, 0, 4), 0xffffffffu);
	set_addr(h, cfg_addr(0, 0, 0, 4) & ~0x80000000u);
	data_write(h, 0, 2, 0x0000);
	assert_int_equal(conf1_read(h, 0, 0, 0x04, 2), 0x0006);
}

static void test_device_dispatch(void **state)
{
	struct pci_host *h = *state;
	struct fake_dev *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	for (int i = 0; i < 256; i++)
		d->cfg[i] = (uint8_t)i;
	unsigned devfn = PCI_DEVFN(3, 0);
	assert_int_equal(pci_register_device(h, devfn, &fake_ops, d), 0);

	assert_int_equal(conf1_read(h, 0, devfn, 0x10, 4), 0x13121110u);
	assert_int_equal(d->ncalls, 1);
	assert_int_equal(d->calls[0].reg, 0x10);
	assert_int_equal(d->calls[0].len, 4);
	/* Offset within the data port adds to the register number. */
	assert_int_equal(conf1_read(h, 0, devfn, 0x12, 2), 0x1312);
	assert_int_equal(d->calls[1].reg, 0x12);
	assert_int_equal(d->calls[1].len, 2);
	assert_int_equal(conf1_read(h, 0, devfn, 0x17, 1), 0x17);
	assert_int_equal(d->calls[2].reg, 0x17);
	/* Bits 1:0 of CONFIG_ADDRESS are ignored. */
	set_addr(h, cfg_addr(0, 3, 0, 0x20) | 3);
	assert_int_equal(data_read(h, 0, 4), 0x23222120u);
	assert_int_equal(d->calls[3].reg, 0x20);
	/* An unaligned word reaches the device as two bytes. */
	d->ncalls = 0;
	set_addr(h, cfg_addr(0, 3, 0, 0x40));
	assert_int_equal(data_read(h, 1, 2), 0x4241);
	assert_int_equal(d->ncalls, 2);
	assert_int_equal(d->calls[0].reg, 0x41);
	assert_int_equal(d->calls[0].len, 1);
	assert_int_equal(d->calls[1].reg, 0x42);
	/* Accesses that run past the data port's 4 bytes are refused. */
	d->ncalls = 0;
	assert_int_equal(data_read(h, 3, 2), 0xffff);
	assert_int_equal(data_read(h, 2, 4), 0xffffffffu);
	assert_int_equal(data_read(h, 0, 8), 0xffffffffu);
	assert_int_equal(data_read(h, 4, 1), 0xff);
	data_write(h, 3, 2, 0);
	data_write(h, 1, 4, 0);
	assert_int_equal(d->ncalls, 0);
	/* Writes. */
	conf1_write(h, 0, devfn, 0x3c, 1, 0x0b);
	assert_int_equal(d->cfg[0x3c], 0x0b);
	assert_int_equal(d->calls[0].write, true);
	conf1_write(h, 0, devfn, 0x04, 4, 0xdeadbeef);
	assert_int_equal(d->calls[1].reg, 0x04);
	assert_int_equal(d->calls[1].len, 4);
	assert_memory_equal(d->calls[1].data, "\xef\xbe\xad\xde", 4);
	set_addr(h, cfg_addr(0, 3, 0, 0x44));
	data_write(h, 1, 2, 0xaabb);
	assert_int_equal(d->cfg[0x45], 0xbb);
	assert_int_equal(d->cfg[0x46], 0xaa);
	assert_int_equal(d->calls[2].len, 1);
	/* The last register, at every width. */
	assert_int_equal(conf1_read(h, 0, devfn, 0xfc, 4), 0xfffefdfcu);
	assert_int_equal(conf1_read(h, 0, devfn, 0xfe, 2), 0xfffe);
	assert_int_equal(conf1_read(h, 0, devfn, 0xff, 1), 0xff);
	/* Another function of the same device, another bus, the enable bit: not this device. */
	d->ncalls = 0;
	assert_int_equal(conf1_read(h, 0, PCI_DEVFN(3, 1), 0, 4), 0xffffffffu);
	assert_int_equal(conf1_read(h, 1, devfn, 0, 4), 0xffffffffu);
	set_addr(h, cfg_addr(0, 3, 0, 0) & ~0x80000000u);
	assert_int_equal(data_read(h, 0, 4), 0xffffffffu);
	assert_int_equal(d->ncalls, 0);
	free(d);
}

static void test_register_errors(void **state)
{
	struct pci_host *h = *state;
	int dummy;
	assert_int_equal(pci_register_device(h, 0, &fake_ops, &dummy), -EEXIST);
	assert_int_equal(pci_register_device(h, 256, &fake_ops, &dummy), -EINVAL);
	assert_int_equal(pci_register_device(h, 1u << 31, &fake_ops, &dummy), -EINVAL);
	assert_int_equal(pci_register_device(h, 8, NULL, &dummy), -EINVAL);
	assert_int_equal(pci_register_device(NULL, 8, &fake_ops, &dummy), -EINVAL);
	assert_int_equal(pci_register_device(h, 8, &fake_ops, &dummy), 0);
	assert_int_equal(pci_register_device(h, 8, &fake_ops, &dummy), -EEXIST);
	assert_int_equal(pci_register_device(h, 255, &fake_ops, &dummy), 0);
}

static void test_null_callbacks(void **state)
{
	struct pci_host *h = *state;
	static const struct pci_device_ops none = {0};
	assert_int_equal(pci_register_device(h, PCI_DEVFN(5, 0), &none, NULL), 0);
	assert_int_equal(conf1_read(h, 0, PCI_DEVFN(5, 0), 0, 4), 0xffffffffu);
	conf1_write(h, 0, PCI_DEVFN(5, 0), 0, 4, 0);
}

static void test_hostile(void **state)
{
	struct pci_host *h = *state;
	struct fake_dev *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	assert_int_equal(pci_register_device(h, PCI_DEVFN(1, 0), &fake_ops, d), 0);
	uint8_t buf[8];
	for (uint32_t a = 0; a < 0x100; a++) {
		set_addr(h, 0x80000000u | PCI_DEVFN(1, 0) << 8 | a);
		for (uint64_t off = 0; off < 10; off++)
			for (uint32_t len = 1; len <= 8; len *= 2) {
				d->ncalls = 0;
				memset(buf, 0, sizeof(buf));
				pci_host_data_io(h, off, buf, len, false);
				pci_host_data_io(h, off, buf, len, true);
				pci_host_addr_io(h, off, buf, len, false);
			}
	}
	pci_host_data_io(h, UINT64_MAX, buf, 8, false);
	pci_host_data_io(h, UINT64_MAX - 1, buf, 4, true);
	pci_host_addr_io(h, UINT64_MAX, buf, 4, true);
	free(d);
}

static void test_destroy_null(void **state)
{
	(void)state;
	pci_host_destroy(NULL);
	pci_unregister_device(NULL, 8);
	pci_host_free_bar(NULL, 0x1000);
	/* No windows at all: nothing to place, nothing decodes. */
	struct pci_host *h = pci_host_create(NULL);
	uint64_t a;
	uint8_t d[4] = {0};
	assert_non_null(h);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 16, &a), -ENOSPC);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_MEM64, 4096, &a), -ENOSPC);
	pci_host_mem32_window(h, 0, d, 4, false);
	assert_memory_equal(d, "\xff\xff\xff\xff", 4);
	pci_host_destroy(h);
}

/* The swizzle the DSDT's _PRT describes (test_acpi checks the table itself against this function). */
static void test_intx_gsi(void **state)
{
	(void)state;
	for (unsigned slot = 0; slot < 32; slot++)
		for (unsigned pin = 1; pin <= 4; pin++)
			for (unsigned fn = 0; fn < 8; fn++) {
				unsigned gsi = pci_host_intx_gsi(PCI_DEVFN(slot, fn), pin);
				assert_int_equal(gsi,
						 IRQ_PCI_INTX_BASE + (slot + pin - 1) % IRQ_PCI_INTX_COUNT);
				assert_true(gsi >= 16 && gsi < IOAPIC_NUM_PINS);
			}
	assert_int_equal(pci_host_intx_gsi(PCI_DEVFN(1, 0), 1), 17);
	assert_int_equal(pci_host_intx_gsi(PCI_DEVFN(7, 0), 2), 16);
	/* Out-of-range pins are taken modulo 4 rather than reaching past the IOAPIC. */
	assert_int_equal(pci_host_intx_gsi(PCI_DEVFN(3, 0), 5), pci_host_intx_gsi(PCI_DEVFN(3, 0), 1));
	assert_int_equal(pci_host_intx_gsi(PCI_DEVFN(3, 0), 0), pci_host_intx_gsi(PCI_DEVFN(3, 0), 4));
	assert_true(pci_host_intx_gsi(0xffffffffu, 0xffffffffu) < IOAPIC_NUM_PINS);
}

static void test_alloc(void **state)
{
	struct pci_host *h = *state;
	uint64_t a, b, c, d;

	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 0, &a), -EINVAL);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 24, &a), -EINVAL);
	assert_int_equal(pci_host_alloc_bar(h, (enum pci_window_id)7, 16, &a), -EINVAL);
	/* Natural alignment, first fit: a small block goes in the gap before a big aligned one. */
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 16, &a), 0);
	assert_int_equal(a, IO_START);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 256, &b), 0);
	assert_int_equal(b, IO_START + 0x100);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 32, &c), 0);
	assert_int_equal(c, IO_START + 0x20);
	pci_host_free_bar(h, a);
	pci_host_free_bar(h, 0x12345); /* unknown: ignored */
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_IO, 16, &d), 0);
	assert_int_equal(d, IO_START);
	/* Memory windows. */
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_MEM32, 4096, &a), 0);
	assert_int_equal(a, MEM32_START);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_MEM32, 1ULL << 28, &b), 0);
	assert_int_equal(b, MEM32_START + (1ULL << 28));
	assert_int_equal(b % (1ULL << 28), 0);
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_MEM64, 1ULL << 32, &c), 0);
	assert_int_equal(c, MEM64_START);
	/* Too big for the 64-bit window and the 32-bit one. */
	assert_int_equal(pci_host_alloc_bar(h, PCI_WINDOW_MEM64, 1ULL << 40, &d), -ENOSPC);
	/* Fill the I/O window: 0x1000..0xffff holds 15 blocks of 4 KiB, then nothing fits. */
	struct pci_host *h2 = pci_host_create(&windows);
	unsigned n = 0;
	assert_non_null(h2);
	while (pci_host_alloc_bar(h2, PCI_WINDOW_IO, 4096, &a) == 0) {
		assert_int_equal(a % 4096, 0);
		assert_true(a >= IO_START && a + 4095 <= IO_END);
		n++;
	}
	assert_int_equal(n, 15);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_IO, 16, &a), -ENOSPC);
	pci_host_destroy(h2);
	/* No 64-bit window: 64-bit BARs go below 4 GiB, as firmware would put them. */
	struct pci_windows w = windows;
	w.mem64_start = 1;
	w.mem64_end = 0;
	h2 = pci_host_create(&w);
	assert_non_null(h2);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_MEM64, 1ULL << 20, &a), 0);
	assert_int_equal(a, MEM32_START);
	pci_host_destroy(h2);
	/* A window at the very top of the address space: no wrap-around. */
	w.mem64_start = UINT64_MAX - 0xffff;
	w.mem64_end = UINT64_MAX;
	w.mem32_end = 0; /* empty */
	h2 = pci_host_create(&w);
	assert_non_null(h2);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_MEM64, 0x8000, &a), 0);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_MEM64, 0x8000, &b), 0);
	assert_int_equal(b, UINT64_MAX - 0x7fff);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_MEM64, 0x8000, &c), -ENOSPC);
	assert_int_equal(pci_host_alloc_bar(h2, PCI_WINDOW_MEM64, 1ULL << 63, &c), -ENOSPC);
	pci_host_destroy(h2);
}

/* A BAR handler that logs its last access and answers reads with its offset. */
struct bar_log {
	int calls;
	unsigned bar;
	uint64_t off;
	uint32_t len;
	bool write;
	uint8_t data[8];
};

static void bar_fn(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct bar_log *l = opaque;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			assert_int_equal(data[i], 0); /* reads arrive zero-filled */
	l->calls++;
	l->bar = bar;
	l->off = off;
	l->len = len;
	l->write = is_write;
	if (is_write)
		memcpy(l->data, data, len);
	else
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(off + i);
}

static void test_window_dispatch(void **state)
{
	struct pci_host *h = *state;
	struct bar_log l = {0};
	uint8_t d[8];
	int dummy;
	unsigned devfn = PCI_DEVFN(2, 0);

	assert_int_equal(pci_host_set_bar(h, devfn, 0, true, 0x2000, 0x20, bar_fn, &l), -ENOENT);
	assert_int_equal(pci_register_device(h, devfn, &fake_ops, &dummy), 0);
	assert_int_equal(pci_host_set_bar(h, devfn, 6, true, 0x2000, 0x20, bar_fn, &l), -EINVAL);
	assert_int_equal(pci_host_set_bar(h, devfn, 0, true, 0x2000, 0x20, NULL, &l), -EINVAL);
	assert_int_equal(pci_host_set_bar(h, devfn, 0, false, UINT64_MAX - 0xf, 0x20, bar_fn, &l), -EINVAL);
	assert_int_equal(pci_host_set_bar(h, devfn, 0, true, 0x2000, 0x20, bar_fn, &l), 0);
	assert_int_equal(pci_host_set_bar(h, devfn, 2, false, MEM32_START + 0x1000, 0x1000, bar_fn, &l), 0);
	assert_int_equal(pci_host_set_bar(h, devfn, 4, false, MEM64_START, 0x4000, bar_fn, &l), 0);

	/* I/O window: offsets are relative to the window, the handler sees BAR offsets. */
	pci_host_io_window(h, 0x2000 - IO_START + 4, d, 2, false);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.bar, 0);
	assert_int_equal(l.off, 4);
	assert_int_equal(d[0], 4);
	assert_int_equal(d[1], 5);
	memcpy(d, "\x11\x22\x33\x44", 4);
	pci_host_io_window(h, 0x2000 - IO_START + 0x1c, d, 4, true);
	assert_int_equal(l.calls, 2);
	assert_true(l.write);
	assert_int_equal(l.off, 0x1c);
	assert_memory_equal(l.data, "\x11\x22\x33\x44", 4);
	/* Straddling the BAR's end, outside it, odd sizes, past the window: open bus, no call. */
	uint64_t bad[][2] = {{0x2000 - IO_START + 0x1e, 4},
			     {0x2000 - IO_START + 0x20, 1},
			     {0x2000 - IO_START, 3},
			     {0x2000 - IO_START, 16},
			     {0x2000 - IO_START, 0},
			     {IO_END - IO_START + 1, 1},
			     {UINT64_MAX, 1},
			     {UINT64_MAX - 3, 4}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(d, 0, sizeof(d));
		pci_host_io_window(h, bad[i][0], d, (uint32_t)bad[i][1], false);
		for (uint64_t j = 0; j < bad[i][1] && j < 8; j++)
			assert_int_equal(d[j], 0xff);
		pci_host_io_window(h, bad[i][0], d, (uint32_t)bad[i][1], true);
	}
	assert_int_equal(l.calls, 2);
	/* Memory: an I/O BAR is not reachable through a memory window at the same number. */
	pci_host_mem32_window(h, 0x1000 + 8, d, 8, false);
	assert_int_equal(l.calls, 3);
	assert_int_equal(l.bar, 2);
	assert_int_equal(l.off, 8);
	assert_int_equal(l.len, 8);
	pci_host_mem64_window(h, 0x3ff8, d, 8, true);
	assert_int_equal(l.calls, 4);
	assert_int_equal(l.bar, 4);
	assert_int_equal(l.off, 0x3ff8);
	/* A 64-bit BAR moved below 4 GiB is reached through the 32-bit window. */
	assert_int_equal(pci_host_set_bar(h, devfn, 4, false, MEM32_START + 0x10000, 0x4000, bar_fn, &l), 0);
	pci_host_mem64_window(h, 0, d, 4, false);
	assert_int_equal(l.calls, 4);
	assert_int_equal(d[0], 0xff);
	pci_host_mem32_window(h, 0x10000 + 0x10, d, 4, false);
	assert_int_equal(l.calls, 5);
	assert_int_equal(l.bar, 4);
	assert_int_equal(l.off, 0x10);
	/* Size 0: no longer decodes. */
	assert_int_equal(pci_host_set_bar(h, devfn, 2, false, 0, 0, NULL, NULL), 0);
	pci_host_mem32_window(h, 0x1000, d, 4, false);
	assert_int_equal(l.calls, 5);
	/* Unplugging stops every BAR; plugging again starts with none. */
	pci_unregister_device(h, devfn);
	pci_host_io_window(h, 0x2000 - IO_START, d, 1, false);
	pci_host_mem32_window(h, 0x10000, d, 4, false);
	assert_int_equal(l.calls, 5);
	assert_int_equal(conf1_read(h, 0, devfn, 0, 4), 0xffffffffu);
	assert_int_equal(pci_register_device(h, devfn, &fake_ops, &dummy), 0);
	pci_host_io_window(h, 0x2000 - IO_START, d, 1, false);
	assert_int_equal(l.calls, 5);
	pci_unregister_device(h, 0);   /* the bridge: ignored */
	pci_unregister_device(h, 256); /* out of range: ignored */
	assert_int_equal(conf1_read(h, 0, 0, 0, 4), 0x00081b36u);
}

/* Unplugging waits for a callback that is running on another thread. */
struct slow {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool entered, release;
	struct pci_host *h;
	bool unplugged;
};

static void slow_fn(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct slow *s = opaque;
	pthread_mutex_lock(&s->m);
	s->entered = true;
	pthread_cond_broadcast(&s->c);
	while (!s->release)
		pthread_cond_wait(&s->c, &s->m);
	pthread_mutex_unlock(&s->m);
}

static void *access_thread(void *arg)
{
	struct slow *s = arg;
	uint8_t d[4];
	pci_host_mem32_window(s->h, 0, d, 4, false);
	return NULL;
}

static void *unplug_thread(void *arg)
{
	struct slow *s = arg;
	pci_unregister_device(s->h, PCI_DEVFN(4, 0));
	__atomic_store_n(&s->unplugged, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_unregister_waits(void **state)
{
	struct pci_host *h = *state;
	struct slow s = {.h = h};
	pthread_t a, u;
	int dummy;

	pthread_mutex_init(&s.m, NULL);
	pthread_cond_init(&s.c, NULL);
	assert_int_equal(pci_register_device(h, PCI_DEVFN(4, 0), &fake_ops, &dummy), 0);
	assert_int_equal(pci_host_set_bar(h, PCI_DEVFN(4, 0), 0, false, MEM32_START, 0x1000, slow_fn, &s), 0);
	assert_int_equal(pthread_create(&a, NULL, access_thread, &s), 0);
	pthread_mutex_lock(&s.m);
	while (!s.entered)
		pthread_cond_wait(&s.c, &s.m);
	pthread_mutex_unlock(&s.m);
	/* The callback runs without the host's lock: other accesses and config cycles proceed. */
	assert_int_equal(conf1_read(h, 0, 0, 0, 4), 0x00081b36u);
	assert_int_equal(pthread_create(&u, NULL, unplug_thread, &s), 0);
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	assert_false(__atomic_load_n(&s.unplugged, __ATOMIC_SEQ_CST));
	/* New accesses no longer find the device while the unplug waits. */
	uint8_t d[4];
	pci_host_mem32_window(h, 0, d, 4, false);
	assert_int_equal(d[0], 0xff);
	pthread_mutex_lock(&s.m);
	s.release = true;
	pthread_cond_broadcast(&s.c);
	pthread_mutex_unlock(&s.m);
	pthread_join(a, NULL);
	pthread_join(u, NULL);
	assert_true(s.unplugged);
	pthread_cond_destroy(&s.c);
	pthread_mutex_destroy(&s.m);
}

/* ---- ECAM (arm64's configuration access) ---- */

static uint32_t ecam_read(struct pci_host *h, uint64_t off, uint32_t len)
{
	uint8_t d[8];
	memset(d, 0, sizeof(d));
	pci_host_ecam_io(h, off, d, len, false);
	uint32_t v = 0;
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void ecam_write(struct pci_host *h, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_host_ecam_io(h, off, d, len, true);
}

static uint64_t ecam_off(unsigned bus, unsigned devfn, unsigned reg)
{
	return (uint64_t)bus << 20 | (uint64_t)devfn << 12 | reg;
}

static void test_ecam_decode(void **state)
{
	(void)state;
	struct pci_ecam_addr a;
	assert_true(pci_ecam_decode(ecam_off(0, PCI_DEVFN(3, 2), 0x44), 4, &a));
	assert_int_equal(a.bus, 0);
	assert_int_equal(a.devfn, PCI_DEVFN(3, 2));
	assert_int_equal(a.reg, 0x44);
	assert_true(pci_ecam_decode(ecam_off(255, 255, 0xfff), 1, &a));
	assert_int_equal(a.bus, 255);
	assert_int_equal(a.devfn, 255);
	assert_int_equal(a.reg, 0xfff);
	assert_true(pci_ecam_decode(ecam_off(7, 8, 0xffe), 2, &a));
	assert_int_equal(a.reg, 0xffe);
	/* Outside the 256 MiB region, odd sizes, misaligned accesses (which would cross a register). */
	assert_false(pci_ecam_decode(PCI_ECAM_SIZE, 1, &a));
	assert_false(pci_ecam_decode(UINT64_MAX, 1, &a));
	assert_false(pci_ecam_decode(UINT64_MAX - 3, 4, &a));
	assert_false(pci_ecam_decode(0, 0, &a));
	assert_false(pci_ecam_decode(0, 3, &a));
	assert_false(pci_ecam_decode(0, 8, &a));
	assert_false(pci_ecam_decode(0x102, 4, &a));
	assert_false(pci_ecam_decode(0x101, 2, &a));
	assert_false(pci_ecam_decode(ecam_off(0, 1, 0xfff), 2, &a));
}

static void test_ecam_access(void **state)
{
	struct pci_host *h = *state;
	/* The host bridge at 00:00.0, the same registers as through ports 0xcf8/0xcfc. */
	assert_int_equal(ecam_read(h, ecam_off(0, 0, 0), 4), 0x00081b36u);
	assert_int_equal(ecam_read(h, ecam_off(0, 0, 2), 2), 0x0008);
	assert_int_equal(ecam_read(h, ecam_off(0, 0, 0x08), 4), conf1_read(h, 0, 0, 0x08, 4));
	ecam_write(h, ecam_off(0, 0, 0x04), 2, 0x0006);
	assert_int_equal(ecam_read(h, ecam_off(0, 0, 0x04), 2), conf1_read(h, 0, 0, 0x04, 2));
	/* A device: reads and writes reach it with the register ECAM names. */
	struct fake_dev d;
	memset(&d, 0, sizeof(d));
	for (int i = 0; i < 256; i++)
		d.cfg[i] = (uint8_t)i;
	unsigned devfn = PCI_DEVFN(5, 0);
	assert_int_equal(pci_register_device(h, devfn, &fake_ops, &d), 0);
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0x10), 4), 0x13121110u);
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0xfe), 2), 0xfffe);
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0x41), 1), 0x41);
	ecam_write(h, ecam_off(0, devfn, 0x40), 4, 0xdeadbeef);
	assert_int_equal(d.cfg[0x40], 0xef);
	assert_int_equal(d.cfg[0x43], 0xde);
	int calls = d.ncalls;
	/* Extended space, other buses, absent functions: all ones, and the device sees nothing. */
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0x100), 4), 0xffffffffu);
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0xffc), 4), 0xffffffffu);
	ecam_write(h, ecam_off(0, devfn, 0x100), 4, 0);
	assert_int_equal(ecam_read(h, ecam_off(1, devfn, 0x10), 4), 0xffffffffu);
	ecam_write(h, ecam_off(1, devfn, 0x40), 4, 0);
	assert_int_equal(ecam_read(h, ecam_off(255, devfn, 0), 4), 0xffffffffu);
	assert_int_equal(ecam_read(h, ecam_off(0, PCI_DEVFN(6, 0), 0), 4), 0xffffffffu);
	/* Misaligned, odd-sized and out-of-range accesses. */
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0x11), 4), 0xffffffffu);
	ecam_write(h, ecam_off(0, devfn, 0x41), 2, 0);
	assert_int_equal(ecam_read(h, ecam_off(0, devfn, 0x10), 3), 0xffffffu);
	assert_int_equal(ecam_read(h, PCI_ECAM_SIZE, 4), 0xffffffffu);
	uint8_t q[8];
	memset(q, 0, sizeof(q));
	pci_host_ecam_io(h, ecam_off(0, devfn, 0x10), q, 8, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(q[i], 0xff);
	pci_host_ecam_io(h, UINT64_MAX, q, 4, true);
	uint8_t big[64];
	memset(big, 0, sizeof(big));
	pci_host_ecam_io(h, 0, big, sizeof(big), false);
	assert_int_equal(big[8], 0);
	assert_int_equal(d.ncalls, calls);
	assert_int_equal(d.cfg[0x40], 0xef);
	pci_unregister_device(h, devfn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_address, setup, teardown),
	    cmocka_unit_test(test_ecam_decode),
	    cmocka_unit_test_setup_teardown(test_ecam_access, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent_functions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enable_bit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_callbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test(test_destroy_null),
	    cmocka_unit_test(test_intx_gsi),
	    cmocka_unit_test_setup_teardown(test_alloc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unregister_waits, setup, teardown),
	};
	return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
