/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the PL031 RTC (devices/pl031.c): the time register, setting
 * the time through RTCLR, the stored registers, the PrimeCell ID registers
 * the AMBA bus probes, and guest accesses of every offset and size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "devices/pl031.h"

static time_t fake_time = 1700000000;

static time_t fake_now(void *opaque)
{
	(void)opaque;
	return fake_time;
}

static uint32_t rd(struct pl031 *r, uint64_t off)
{
	uint8_t d[4] = {0xaa, 0xaa, 0xaa, 0xaa};
	pl031_io(r, off, d, 4, false);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void wr(struct pl031 *r, uint64_t off, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pl031_io(r, off, d, 4, true);
}

static void test_time(void **state)
{
	(void)state;
	struct pl031 *r = pl031_create(fake_now, NULL);
	assert_non_null(r);
	fake_time = 1700000000;
	assert_int_equal(rd(r, PL031_DR), 1700000000u);
	fake_time += 5;
	assert_int_equal(rd(r, PL031_DR), 1700000005u);
	assert_int_equal(rd(r, PL031_CR), 1); /* always running */
	/* DR is read-only; LR sets the time, which then runs on with the host's. */
	wr(r, PL031_DR, 42);
	assert_int_equal(rd(r, PL031_DR), 1700000005u);
	wr(r, PL031_LR, 1000);
	assert_int_equal(rd(r, PL031_DR), 1000);
	fake_time += 7;
	assert_int_equal(rd(r, PL031_DR), 1007);
	assert_int_equal(rd(r, PL031_LR), 1007);
	/* Match and mask are stored (the mask is one bit); the alarm never fires. */
	wr(r, PL031_MR, 0x12345678);
	assert_int_equal(rd(r, PL031_MR), 0x12345678);
	wr(r, PL031_IMSC, 0xffffffff);
	assert_int_equal(rd(r, PL031_IMSC), 1);
	fake_time = 0x12345678 - 1000 + 1007; /* DR reaches MR */
	assert_int_equal(rd(r, PL031_RIS), 0);
	assert_int_equal(rd(r, PL031_MIS), 0);
	wr(r, PL031_ICR, 1);
	wr(r, PL031_CR, 0);
	assert_int_equal(rd(r, PL031_CR), 1);
	pl031_destroy(r);
	pl031_destroy(NULL);
}

static void test_ids(void **state)
{
	(void)state;
	struct pl031 *r = pl031_create(NULL, NULL);
	assert_non_null(r);
	static const uint32_t want[8] = {0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(rd(r, PL031_PERIPH_ID + 4 * i), want[i]);
	/* Linux's amba bus: periphid 0x00141031 & mask 0x000fffff == rtc-pl031's 0x00041031. */
	uint32_t pid = 0;
	for (unsigned i = 0; i < 4; i++)
		pid |= (rd(r, PL031_PERIPH_ID + 4 * i) & 0xff) << (8 * i);
	assert_int_equal(pid & 0x000fffff, 0x00041031);
	/* Writes to the IDs change nothing; the real clock is near time(NULL). */
	wr(r, PL031_PERIPH_ID, 0);
	assert_int_equal(rd(r, PL031_PERIPH_ID), 0x31);
	uint32_t now = (uint32_t)time(NULL);
	uint32_t dr = rd(r, PL031_DR);
	assert_true(dr - now <= 2 || now - dr <= 2);
	pl031_destroy(r);
}

static void test_hostile(void **state)
{
	(void)state;
	struct pl031 *r = pl031_create(fake_now, NULL);
	assert_non_null(r);
	fake_time = 1000;
	uint8_t d[8];
	/* Every offset of the region and around it, with every size: only aligned words decode. */
	for (uint64_t off = 0; off < PL031_SIZE + 16; off++) {
		for (uint32_t len = 1; len <= 8; len++) {
			memset(d, 0xaa, sizeof(d));
			pl031_io(r, off, d, len, false);
			if (len != 4 || off % 4 || off >= PL031_SIZE)
				for (uint32_t i = 0; i < len; i++)
					assert_int_equal(d[i], 0);
			memset(d, 0xff, sizeof(d));
			if (off != PL031_LR && off != PL031_MR && off != PL031_IMSC)
				pl031_io(r, off, d, len, true);
		}
	}
	assert_int_equal(rd(r, PL031_DR), 1000);
	pl031_io(r, UINT64_MAX, d, 4, false);
	pl031_io(r, UINT64_MAX - 3, d, 4, true);
	pl031_io(r, 0, d, 0, false);
	uint8_t big[64];
	memset(big, 0x55, sizeof(big));
	pl031_io(r, 0, big, sizeof(big), false); /* at most 8 bytes are touched */
	assert_int_equal(big[8], 0x55);
	assert_int_equal(rd(r, PL031_DR), 1000);
	pl031_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
