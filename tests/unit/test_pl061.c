/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the PL061 GPIO controller (devices/pl061.c): direction and
 * the data register's address mask, interrupt detection (edges, both edges,
 * levels), IE/RIS/MIS/IC and the line, a button press held until the guest
 * reads it, the PrimeCell ID registers, and guest accesses of every offset
 * and size. The sequences Linux's gpio-pl061 and gpio-keys drivers make are
 * written out where they matter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "devices/pl061.h"

/* The interrupt line: its level and how many times it was driven. */
static int line_level, line_calls;
static unsigned line_gsi;

static void set_level(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	line_gsi = gsi;
	line_level = level;
	line_calls++;
}

static struct pl061 *make(void)
{
	struct irq_line l = {set_level, NULL, 35};
	line_level = line_calls = 0;
	struct pl061 *g = pl061_create(&l);
	assert_non_null(g);
	return g;
}

static uint32_t rdn(struct pl061 *g, uint64_t off, uint32_t len)
{
	uint8_t d[4] = {0xaa, 0xaa, 0xaa, 0xaa};
	uint32_t v = 0;
	pl061_io(g, off, d, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static uint32_t rd(struct pl061 *g, uint64_t off)
{
	return rdn(g, off, 4);
}

/* Linux's driver uses byte accesses (readb/writeb); the AMBA bus reads the IDs as words. */
static uint32_t rdb(struct pl061 *g, uint64_t off)
{
	return rdn(g, off, 1);
}

static void wr(struct pl061 *g, uint64_t off, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pl061_io(g, off, d, 4, true);
}

static void wrb(struct pl061 *g, uint64_t off, uint8_t v)
{
	pl061_io(g, off, &v, 1, true);
}

/* GPIODATA at the address that selects the pins in mask. */
#define DATA(mask) (PL061_DATA + ((uint64_t)(mask) << 2))

static void test_direction_and_data(void **state)
{
	(void)state;
	struct pl061 *g = make();
	/* Reset: every pin an input, low; no interrupt. */
	assert_int_equal(rd(g, PL061_DIR), 0);
	assert_int_equal(rd(g, DATA(0xff)), 0);
	pl061_set_input(g, 1, 1);
	pl061_set_input(g, 6, 1);
	assert_int_equal(rd(g, DATA(0xff)), 0x42);
	/* Address bits [9:2] mask the read. */
	assert_int_equal(rd(g, DATA(0x02)), 0x02);
	assert_int_equal(rd(g, DATA(0x40)), 0x40);
	assert_int_equal(rd(g, DATA(0xbd)), 0);
	assert_int_equal(rd(g, DATA(0)), 0);
	/* Writes to input pins change nothing. */
	wr(g, DATA(0xff), 0xff);
	assert_int_equal(rd(g, DATA(0xff)), 0x42);
	/* Outputs: pins 0-3. A write changes the outputs its address selects, only. */
	wrb(g, PL061_DIR, 0x0f);
	assert_int_equal(rdb(g, PL061_DIR), 0x0f);
	assert_int_equal(rd(g, DATA(0xff)), 0x40); /* pin 1 now drives its output, 0 */
	wr(g, DATA(0x05), 0xff);
	assert_int_equal(rd(g, DATA(0xff)), 0x45);
	wr(g, DATA(0x0f), 0x0a);
	assert_int_equal(rd(g, DATA(0xff)), 0x4a);
	wr(g, DATA(0x02), 0x00);
	assert_int_equal(rd(g, DATA(0xff)), 0x48);
	wr(g, DATA(0), 0xff); /* no pin selected */
	assert_int_equal(rd(g, DATA(0xff)), 0x48);
	/* Registers are 8 bits: the upper bytes of a word write are ignored and read 0. */
	wr(g, PL061_DIR, 0xffffff00);
	assert_int_equal(rd(g, PL061_DIR), 0);
	assert_int_equal(rd(g, DATA(0xff)), 0x42); /* inputs again */
	wr(g, PL061_AFSEL, 0x1ff);
	assert_int_equal(rd(g, PL061_AFSEL), 0xff);
	/* Pins past 7 do not exist. */
	pl061_set_input(g, 8, 1);
	pl061_press(g, 100);
	assert_int_equal(rd(g, DATA(0xff)), 0x42);
	assert_int_equal(line_calls, 0);
	pl061_destroy(g);
	pl061_destroy(NULL);
}

static void test_edge(void **state)
{
	(void)state;
	struct pl061 *g = make();
	/* Rising edge on pin 3, interrupt masked: RIS latches, MIS and the line stay low. */
	wrb(g, PL061_IEV, 0x08);
	pl061_set_input(g, 3, 1);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	assert_int_equal(rdb(g, PL061_MIS), 0);
	assert_int_equal(line_level, 0);
	/* Enabling it raises the line; it stays raised while the pin goes low again (edge: latched). */
	wrb(g, PL061_IE, 0x08);
	assert_int_equal(rdb(g, PL061_MIS), 0x08);
	assert_int_equal(line_level, 1);
	assert_int_equal(line_gsi, 35);
	pl061_set_input(g, 3, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	/* GPIOIC clears it (bits not set are left alone), and the line drops. */
	wrb(g, PL061_IC, 0x04);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	wrb(g, PL061_IC, 0x08);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	assert_int_equal(line_level, 0);
	/* The falling edge did not count (IEV: rising), nor does a set that changes nothing. */
	pl061_set_input(g, 3, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	/* Falling edges only. */
	wrb(g, PL061_IEV, 0);
	pl061_set_input(g, 3, 1);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	pl061_set_input(g, 3, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	wrb(g, PL061_IC, 0xff);
	/* Both edges (IEV ignored), as gpio-keys asks for. */
	wrb(g, PL061_IBE, 0x08);
	pl061_set_input(g, 3, 1);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	wrb(g, PL061_IC, 0x08);
	pl061_set_input(g, 3, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	assert_int_equal(line_level, 1);
	wrb(g, PL061_IC, 0x08);
	assert_int_equal(line_level, 0);
	/* Another pin's edge is its own bit; RIS and MIS are read-only. */
	wrb(g, PL061_IBE, 0xff);
	pl061_set_input(g, 0, 1);
	assert_int_equal(rdb(g, PL061_RIS), 0x01);
	assert_int_equal(rdb(g, PL061_MIS), 0);
	wrb(g, PL061_RIS, 0);
	wrb(g, PL061_MIS, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x01);
	/* Output pins interrupt on what they drive. */
	wrb(g, PL061_IC, 0xff);
	wrb(g, PL061_DIR, 0x80);
	wr(g, DATA(0x80), 0x80);
	assert_int_equal(rdb(g, PL061_RIS), 0x80);
	/* IC reads 0 (write-only). */
	assert_int_equal(rdb(g, PL061_IC), 0);
	pl061_destroy(g);
}

static void test_level(void **state)
{
	(void)state;
	struct pl061 *g = make();
	/* High level on pin 5: RIS follows the pin, IC cannot clear it while the level lasts. */
	wrb(g, PL061_IS, 0x20);
	wrb(g, PL061_IEV, 0x20);
	wrb(g, PL061_IE, 0x20);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	pl061_set_input(g, 5, 1);
	assert_int_equal(rdb(g, PL061_RIS), 0x20);
	assert_int_equal(line_level, 1);
	wrb(g, PL061_IC, 0x20);
	assert_int_equal(rdb(g, PL061_RIS), 0x20);
	assert_int_equal(line_level, 1);
	pl061_set_input(g, 5, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	assert_int_equal(line_level, 0);
	/* Low level: pending at once while the pin is low. */
	wrb(g, PL061_IEV, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x20);
	assert_int_equal(rdb(g, PL061_MIS), 0x20);
	assert_int_equal(line_level, 1);
	/* Masking it drops the line, not RIS. */
	wrb(g, PL061_IE, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0x20);
	assert_int_equal(rdb(g, PL061_MIS), 0);
	assert_int_equal(line_level, 0);
	/* The line is driven on changes only. */
	int calls = line_calls;
	wrb(g, PL061_IE, 0);
	pl061_set_input(g, 5, 0);
	assert_int_equal(line_calls, calls);
	pl061_destroy(g);
}

/* The power button as Linux drives it: gpio-keys on pin 3, both edges, reading the pin after each. */
static void test_press(void **state)
{
	(void)state;
	struct pl061 *g = make();
	/* gpio-pl061 probe: interrupts off; gpio-keys: pin 3 an input, IRQ_TYPE_EDGE_BOTH, unmasked. */
	wrb(g, PL061_IE, 0);
	wrb(g, PL061_DIR, rdb(g, PL061_DIR) & ~0x08);
	wrb(g, PL061_IS, rdb(g, PL061_IS) & ~0x08);
	wrb(g, PL061_IBE, rdb(g, PL061_IBE) | 0x08);
	wrb(g, PL061_IE, rdb(g, PL061_IE) | 0x08);
	assert_int_equal(line_level, 0);

	pl061_press(g, 3);
	assert_int_equal(line_level, 1);
	assert_int_equal(rdb(g, PL061_MIS), 0x08);
	wrb(g, PL061_IC, 0x08); /* the handler acks */
	assert_int_equal(line_level, 0);
	/* The pin stays high until the guest reads it: reads of other pins do not count. */
	assert_int_equal(rdb(g, DATA(0x04)), 0);
	assert_int_equal(rdb(g, DATA(0xf7)), 0);
	assert_int_equal(rdb(g, PL061_RIS), 0);
	/* gpio-keys reads it (readb at BIT(pin + 2)): high, the press; then it drops, a falling edge. */
	assert_int_equal(rdb(g, DATA(0x08)), 0x08);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	assert_int_equal(line_level, 1);
	wrb(g, PL061_IC, 0x08);
	assert_int_equal(rdb(g, DATA(0x08)), 0); /* the release */
	assert_int_equal(line_level, 0);
	assert_int_equal(rdb(g, PL061_RIS), 0);

	/* A second press works the same; pressing again before the guest looked changes nothing. */
	pl061_press(g, 3);
	pl061_press(g, 3);
	assert_int_equal(rdb(g, PL061_RIS), 0x08);
	wrb(g, PL061_IC, 0x08);
	assert_int_equal(rdb(g, DATA(0xff)), 0x08);
	assert_int_equal(rdb(g, DATA(0xff)), 0);

	/* A pin the guest made an output is not let go by reads (the guest is not looking at it). */
	wrb(g, PL061_DIR, 0x08);
	pl061_press(g, 3);
	rdb(g, DATA(0xff));
	wrb(g, PL061_DIR, 0);
	assert_int_equal(rdb(g, DATA(0x08)), 0x08);
	assert_int_equal(rdb(g, DATA(0x08)), 0);
	/* Setting the pin explicitly ends a press: it stays as set. */
	pl061_press(g, 3);
	pl061_set_input(g, 3, 1);
	assert_int_equal(rdb(g, DATA(0x08)), 0x08);
	assert_int_equal(rdb(g, DATA(0x08)), 0x08);
	pl061_destroy(g);
}

static void test_ids(void **state)
{
	(void)state;
	struct pl061 *g = make();
	static const uint32_t want[8] = {0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1};
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(rd(g, PL061_PERIPH_ID + 4 * i), want[i]);
		assert_int_equal(rdb(g, PL061_PERIPH_ID + 4 * i), want[i]);
	}
	/* Linux's amba bus: periphid & mask 0x000fffff == gpio-pl061's 0x00041061; the cell ID. */
	uint32_t pid = 0, cid = 0;
	for (unsigned i = 0; i < 4; i++) {
		pid |= (rd(g, PL061_PERIPH_ID + 4 * i) & 0xff) << (8 * i);
		cid |= (rd(g, PL061_PERIPH_ID + 0x10 + 4 * i) & 0xff) << (8 * i);
	}
	assert_int_equal(pid & 0x000fffff, 0x00041061);
	assert_int_equal(cid, 0xb105f00d);
	wr(g, PL061_PERIPH_ID, 0);
	assert_int_equal(rd(g, PL061_PERIPH_ID), 0x61);
	pl061_destroy(g);
}

static void test_hostile(void **state)
{
	(void)state;
	struct pl061 *g = make();
	uint8_t d[8];
	pl061_set_input(g, 2, 1);
	/* Every offset of the region and around it, with every size: only aligned 1/2/4-byte ones decode. */
	for (uint64_t off = 0; off < PL061_SIZE + 16; off++) {
		for (uint32_t len = 1; len <= 8; len++) {
			bool decodes = (len == 1 || len == 2 || len == 4) && off % 4 == 0 && off < PL061_SIZE;
			memset(d, 0xaa, sizeof(d));
			pl061_io(g, off, d, len, false);
			if (!decodes)
				for (uint32_t i = 0; i < len; i++)
					assert_int_equal(d[i], 0);
			else
				for (uint32_t i = 1; i < len; i++)
					assert_int_equal(d[i], 0); /* 8-bit registers */
			memset(d, 0xff, sizeof(d));
			if (!decodes) /* decoded writes are the other tests' business */
				pl061_io(g, off, d, len, true);
		}
	}
	assert_int_equal(rd(g, PL061_DIR), 0);
	assert_int_equal(rd(g, PL061_IE), 0);
	assert_int_equal(rd(g, DATA(0xff)), 0x04);
	pl061_io(g, UINT64_MAX, d, 4, false);
	pl061_io(g, UINT64_MAX - 3, d, 4, true);
	pl061_io(g, 0, d, 0, false);
	uint8_t big[64];
	memset(big, 0x55, sizeof(big));
	pl061_io(g, 0, big, sizeof(big), false); /* at most 8 bytes are touched */
	assert_int_equal(big[8], 0x55);
	/* Every register written with every bit: nothing breaks, the line follows MIS. */
	for (uint64_t off = 0; off < PL061_SIZE; off += 4)
		wr(g, off, 0xffffffff);
	assert_int_equal(line_level, rdb(g, PL061_MIS) != 0);
	pl061_destroy(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_direction_and_data),
	    cmocka_unit_test(test_edge),
	    cmocka_unit_test(test_level),
	    cmocka_unit_test(test_press),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
