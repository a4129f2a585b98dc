/* SPDX-License-Identifier: MIT */
/* Unit tests for the MC146818 RTC / CMOS model (devices/rtc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/rtc.h"
#include "vmm/arch/x86/layout.h"

struct fake {
	time_t now;
	int level;
	int set_calls;
	unsigned last_gsi;
};

static time_t fake_now(void *opaque)
{
	struct fake *f = opaque;
	return f->now;
}

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake *f = opaque;
	f->level = level;
	f->last_gsi = gsi;
	f->set_calls++;
}

struct ctx {
	struct fake f;
	struct rtc *rtc;
};

static time_t utc(int y, int mon, int d, int h, int m, int s)
{
	struct tm tm = {
	    .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = m, .tm_sec = s};
	return timegm(&tm);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->f.now = utc(2024, 2, 29, 13, 45, 7); /* a Thursday */
	struct irq_line irq = {.set_level = fake_set_level, .opaque = &c->f, .gsi = IRQ_RTC};
	c->rtc = rtc_create(&irq, fake_now, &c->f);
	assert_non_null(c->rtc);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	rtc_destroy(c->rtc);
	free(c);
	return 0;
}

static uint8_t rd(struct rtc *rtc, uint8_t reg)
{
	uint8_t v = reg;
	rtc_io(rtc, 0, &v, 1, true);
	rtc_io(rtc, 1, &v, 1, false);
	return v;
}

static void wr(struct rtc *rtc, uint8_t reg, uint8_t v)
{
	rtc_io(rtc, 0, &reg, 1, true);
	rtc_io(rtc, 1, &v, 1, true);
}

static void test_defaults_bcd_24h(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(rd(c->rtc, 0x00), 0x07);
	assert_int_equal(rd(c->rtc, 0x02), 0x45);
	assert_int_equal(rd(c->rtc, 0x04), 0x13);
	assert_int_equal(rd(c->rtc, 0x06), 0x05); /* Thursday: Sunday is 1 */
	assert_int_equal(rd(c->rtc, 0x07), 0x29);
	assert_int_equal(rd(c->rtc, 0x08), 0x02);
	assert_int_equal(rd(c->rtc, 0x09), 0x24);
	assert_int_equal(rd(c->rtc, 0x32), 0x20);
	assert_int_equal(rd(c->rtc, 0x0a), 0x26);
	assert_int_equal(rd(c->rtc, 0x0b), 0x02);
	assert_int_equal(rd(c->rtc, 0x0c), 0x00);
	assert_int_equal(rd(c->rtc, 0x0d), 0x80);
	/* The clock follows the host. */
	c->f.now += 3600 + 60 + 3;
	assert_int_equal(rd(c->rtc, 0x00), 0x10);
	assert_int_equal(rd(c->rtc, 0x02), 0x46);
	assert_int_equal(rd(c->rtc, 0x04), 0x14);
	assert_int_equal(c->f.set_calls, 0);
}

static void test_binary(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x0b, 0x06);
	assert_int_equal(rd(c->rtc, 0x00), 7);
	assert_int_equal(rd(c->rtc, 0x02), 45);
	assert_int_equal(rd(c->rtc, 0x04), 13);
	assert_int_equal(rd(c->rtc, 0x07), 29);
	assert_int_equal(rd(c->rtc, 0x09), 24);
	assert_int_equal(rd(c->rtc, 0x32), 20);
}

static void test_12h(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x0b, 0x00); /* BCD, 12-hour */
	assert_int_equal(rd(c->rtc, 0x04), 0x81);
	c->f.now = utc(2024, 3, 1, 0, 30, 0);
	assert_int_equal(rd(c->rtc, 0x04), 0x12); /* 12 AM */
	c->f.now = utc(2024, 3, 1, 12, 30, 0);
	assert_int_equal(rd(c->rtc, 0x04), 0x92); /* 12 PM */
	wr(c->rtc, 0x0b, 0x04);			  /* binary, 12-hour */
	c->f.now = utc(2024, 3, 1, 23, 0, 0);
	assert_int_equal(rd(c->rtc, 0x04), 0x80 | 11);
	/* Writing hours in 12-hour format. */
	wr(c->rtc, 0x0b, 0x80);
	wr(c->rtc, 0x04, 0x12); /* 12 AM */
	wr(c->rtc, 0x0b, 0x00);
	wr(c->rtc, 0x0b, 0x02);
	assert_int_equal(rd(c->rtc, 0x04), 0x00);
	wr(c->rtc, 0x0b, 0x80);
	wr(c->rtc, 0x04, 0x92); /* 12 PM */
	wr(c->rtc, 0x0b, 0x00);
	wr(c->rtc, 0x0b, 0x02);
	assert_int_equal(rd(c->rtc, 0x04), 0x12);
	wr(c->rtc, 0x0b, 0x80);
	wr(c->rtc, 0x04, 0x87); /* 7 PM, read as 12-hour when SET clears */
	wr(c->rtc, 0x0b, 0x00);
	wr(c->rtc, 0x0b, 0x02);
	assert_int_equal(rd(c->rtc, 0x04), 0x19);
}

/* What Linux's mc146818_set_time does: SET, write the fields, clear SET. */
static void test_set_time(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x0b, 0x82);
	wr(c->rtc, 0x09, 0x30);
	wr(c->rtc, 0x08, 0x01);
	wr(c->rtc, 0x07, 0x15);
	wr(c->rtc, 0x04, 0x08);
	wr(c->rtc, 0x02, 0x00);
	wr(c->rtc, 0x00, 0x00);
	/* Frozen: reads show what was written and the host clock does not move it. */
	c->f.now += 10;
	assert_int_equal(rd(c->rtc, 0x00), 0x00);
	assert_int_equal(rd(c->rtc, 0x09), 0x30);
	assert_int_equal(rd(c->rtc, 0x02), 0x00);
	/* Unchanged registers kept their frozen value. */
	assert_int_equal(rd(c->rtc, 0x32), 0x20);
	wr(c->rtc, 0x0b, 0x02);
	c->f.now += 5;
	assert_int_equal(rd(c->rtc, 0x00), 0x05);
	assert_int_equal(rd(c->rtc, 0x04), 0x08);
	assert_int_equal(rd(c->rtc, 0x07), 0x15);
	assert_int_equal(rd(c->rtc, 0x08), 0x01);
	assert_int_equal(rd(c->rtc, 0x09), 0x30);
	assert_int_equal(rd(c->rtc, 0x06), 0x03); /* 2030-01-15 is a Tuesday */
	/* A direct write while running moves just that field. */
	wr(c->rtc, 0x02, 0x10);
	assert_int_equal(rd(c->rtc, 0x02), 0x10);
	assert_int_equal(rd(c->rtc, 0x04), 0x08);
	assert_int_equal(rd(c->rtc, 0x00), 0x05);
	/* Century. */
	wr(c->rtc, 0x32, 0x21);
	assert_int_equal(rd(c->rtc, 0x09), 0x30);
	assert_int_equal(rd(c->rtc, 0x32), 0x21);
}

/* Switching format together with SET: the written bytes are read in the new format. */
static void test_set_time_binary(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x0b, 0x86);
	wr(c->rtc, 0x09, 99);
	wr(c->rtc, 0x32, 19);
	wr(c->rtc, 0x08, 12);
	wr(c->rtc, 0x07, 31);
	wr(c->rtc, 0x04, 23);
	wr(c->rtc, 0x02, 59);
	wr(c->rtc, 0x00, 59);
	wr(c->rtc, 0x0b, 0x06);
	c->f.now += 1;
	assert_int_equal(rd(c->rtc, 0x09), 0);
	assert_int_equal(rd(c->rtc, 0x32), 20);
	assert_int_equal(rd(c->rtc, 0x08), 1);
	assert_int_equal(rd(c->rtc, 0x07), 1);
	assert_int_equal(rd(c->rtc, 0x04), 0);
	assert_int_equal(rd(c->rtc, 0x00), 0);
}

static void test_registers_a_c_d(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x0a, 0xff);
	assert_int_equal(rd(c->rtc, 0x0a), 0x7f); /* UIP stays clear */
	wr(c->rtc, 0x0a, 0x26);
	wr(c->rtc, 0x0c, 0xff);
	assert_int_equal(rd(c->rtc, 0x0c), 0x00);
	wr(c->rtc, 0x0d, 0x00);
	assert_int_equal(rd(c->rtc, 0x0d), 0x80);
}

static void test_cmos_ram(void **state)
{
	struct ctx *c = *state;
	for (unsigned r = 0x0e; r < 0x80; r++)
		if (r != 0x32)
			wr(c->rtc, (uint8_t)r, (uint8_t)(r * 3));
	for (unsigned r = 0x0e; r < 0x80; r++)
		if (r != 0x32)
			assert_int_equal(rd(c->rtc, (uint8_t)r), (uint8_t)(r * 3));
	/* The index's bit 7 is the NMI mask: ignored. */
	assert_int_equal(rd(c->rtc, 0x80 | 0x20), (uint8_t)(0x20 * 3));
	wr(c->rtc, 0x80 | 0x40, 0x99);
	assert_int_equal(rd(c->rtc, 0x40), 0x99);
	/* Alarm registers are plain storage. */
	wr(c->rtc, 0x01, 0x11);
	wr(c->rtc, 0x03, 0x22);
	wr(c->rtc, 0x05, 0x33);
	assert_int_equal(rd(c->rtc, 0x01), 0x11);
	assert_int_equal(rd(c->rtc, 0x03), 0x22);
	assert_int_equal(rd(c->rtc, 0x05), 0x33);
}

static void test_update_interrupt(void **state)
{
	struct ctx *c = *state;
	rtc_tick(c->rtc);
	rtc_tick(c->rtc);
	assert_int_equal(rd(c->rtc, 0x0c), 0x00);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.set_calls, 0); /* UIE off */
	assert_int_equal(rd(c->rtc, 0x0c), 0x10);
	assert_int_equal(rd(c->rtc, 0x0c), 0x00);
	wr(c->rtc, 0x0b, 0x12);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(c->f.last_gsi, IRQ_RTC);
	rtc_tick(c->rtc); /* same second: nothing new */
	assert_int_equal(c->f.set_calls, 1);
	assert_int_equal(rd(c->rtc, 0x0c), 0x90);
	assert_int_equal(c->f.level, 0);
	/* SET stops update cycles. */
	wr(c->rtc, 0x0b, 0x92);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 0);
	wr(c->rtc, 0x0b, 0x12);
	rtc_tick(c->rtc);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 1);
	/* Disabling UIE drops the line; a flag already set raises it when re-enabled. */
	wr(c->rtc, 0x0b, 0x02);
	assert_int_equal(c->f.level, 0);
	wr(c->rtc, 0x0b, 0x12);
	assert_int_equal(c->f.level, 1);
	rtc_reset(c->rtc);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->rtc, 0x0b), 0x02);
	assert_int_equal(rd(c->rtc, 0x0c), 0x00);
}

static void test_alarm(void **state)
{
	struct ctx *c = *state;
	wr(c->rtc, 0x01, 0x10); /* 13:45:10 */
	wr(c->rtc, 0x03, 0x45);
	wr(c->rtc, 0x05, 0x13);
	wr(c->rtc, 0x0b, 0x22); /* AIE */
	rtc_tick(c->rtc);
	for (int i = 0; i < 2; i++) {
		c->f.now++;
		rtc_tick(c->rtc);
		assert_int_equal(c->f.level, 0);
	}
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->rtc, 0x0c), 0xb0); /* IRQF | AF | UF */
	assert_int_equal(c->f.level, 0);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 0);
	/* Don't-care values match every second. */
	wr(c->rtc, 0x01, 0xc0);
	wr(c->rtc, 0x03, 0xff);
	wr(c->rtc, 0x05, 0xc5);
	c->f.now++;
	rtc_tick(c->rtc);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->rtc, 0x0c), 0xb0);
}

static void test_port_accesses(void **state)
{
	struct ctx *c = *state;
	uint8_t d[8];
	/* The index port is write-only. */
	memset(d, 0, sizeof(d));
	rtc_io(c->rtc, 0, d, 1, false);
	assert_int_equal(d[0], 0xff);
	/* A word write at the index port sets the index and writes the data, like two byte cycles. */
	d[0] = 0x50;
	d[1] = 0xab;
	rtc_io(c->rtc, 0, d, 2, true);
	assert_int_equal(rd(c->rtc, 0x50), 0xab);
	d[0] = 0x50;
	rtc_io(c->rtc, 0, d, 1, true);
	memset(d, 0, sizeof(d));
	rtc_io(c->rtc, 0, d, 4, false);
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[1], 0xab);
	assert_int_equal(d[2], 0xff);
	assert_int_equal(d[3], 0xff);
	for (uint64_t off = 0; off < 6; off++)
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(d, 0x5a, sizeof(d));
			rtc_io(c->rtc, off, d, len, false);
			rtc_io(c->rtc, off, d, len, true);
		}
	memset(d, 0, sizeof(d));
	rtc_io(c->rtc, UINT64_MAX, d, 8, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 0xff);
	rtc_io(c->rtc, UINT64_MAX - 1, d, 8, true);
	uint8_t big[16];
	memset(big, 0x33, sizeof(big));
	rtc_io(c->rtc, 0, big, 100000, false);
	assert_int_equal(big[8], 0x33);
}

/* Garbage in every register in every mode, and absurd host clocks: defined behaviour throughout. */
static void test_garbage(void **state)
{
	struct ctx *c = *state;
	static const time_t clocks[] = {0, -1, (time_t)1 << 40, -((time_t)1 << 40), INT64_MAX, INT64_MIN};
	static const uint8_t modes[] = {0x00, 0x02, 0x04, 0x06};
	for (size_t m = 0; m < sizeof(modes); m++) {
		for (unsigned v = 0; v < 256; v += 17) {
			wr(c->rtc, 0x0b, 0x80 | modes[m]);
			for (unsigned r = 0; r < 0x0e; r++)
				if (r != 0x0b)
					wr(c->rtc, (uint8_t)r, (uint8_t)v);
			wr(c->rtc, 0x32, (uint8_t)v);
			wr(c->rtc, 0x0b, modes[m]);
			for (size_t k = 0; k < sizeof(clocks) / sizeof(clocks[0]); k++) {
				c->f.now = clocks[k];
				for (unsigned r = 0; r < 0x0e; r++)
					rd(c->rtc, (uint8_t)r);
				rd(c->rtc, 0x32);
				wr(c->rtc, 0x09, (uint8_t)v);
				wr(c->rtc, 0x04, (uint8_t)~v);
				rtc_tick(c->rtc);
			}
		}
	}
}

static void test_host_clock(void **state)
{
	(void)state;
	struct rtc *rtc = rtc_create(NULL, NULL, NULL);
	assert_non_null(rtc);
	assert_int_equal(rd(rtc, 0x32), 0x20);
	rtc_tick(rtc);
	rtc_reset(rtc);
	rtc_destroy(rtc);
	rtc_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults_bcd_24h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_12h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time_binary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_registers_a_c_d, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cmos_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_port_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test(test_host_clock),
	};
	return cmocka_run_group_tests_name("rtc", tests, NULL, NULL);
}
