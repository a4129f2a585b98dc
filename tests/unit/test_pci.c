/* SPDX-License-Identifier: MIT */
/* Unit tests for the PCI host: type-1 config access, host bridge, device dispatch (devices/pci.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci.h"

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
	struct pci_host *h = pci_host_create();
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent_functions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enable_bit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_callbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test(test_destroy_null),
	};
	return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
