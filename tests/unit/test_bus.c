/* SPDX-License-Identifier: MIT */
/* Unit tests for the address-range bus (devices/bus.c): registration rules and dispatch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/bus.h"

/* What a device saw on its last access. */
struct rec {
	int calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t wdata[8];
	uint8_t fill; /* reads return fill, fill + 1, ... */
};

static void rec_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rec *r = opaque;
	r->calls++;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	if (is_write) {
		memcpy(r->wdata, data, len);
	} else {
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(r->fill + i);
	}
}

static void fail_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	fail_msg("device called for an access it should not see (offset %llu len %u)",
		 (unsigned long long)offset, len);
}

static void assert_all_ff(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(d[i], 0xff);
}

static void test_register_empty_and_wrapping(void **state)
{
	struct bus b;
	struct rec r = {0};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x100, 0, rec_io, &r, "empty"), -EINVAL);
	assert_int_equal(bus_register(&b, 0, 0, rec_io, &r, "empty0"), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, rec_io, &r, "wrap"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x8000000000000000ULL, 0x8000000000000001ULL, rec_io, &r, "wrap2"),
			 -EINVAL);
	assert_int_equal(bus_register(&b, 1, UINT64_MAX, rec_io, &r, "wrap3"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x100, 8, NULL, &r, "nofn"), -EINVAL);
	assert_int_equal(b.n, 0);
	/* The last byte of the address space can be claimed. */
	assert_int_equal(bus_register(&b, UINT64_MAX - 1, 1, rec_io, &r, "top"), 0);
	uint8_t d = 0x5a;
	assert_true(bus_access(&b, UINT64_MAX - 1, &d, 1, true));
	assert_int_equal(r.offset, 0);
	bus_free(&b);
	assert_null(b.ranges);
	assert_int_equal(b.n, 0);
}

static void test_register_overlap(void **state)
{
	struct bus b;
	struct rec r = {0};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x100, 0x10, rec_io, &r, "a"), 0);
	/* Identical, inside, covering, overlapping either end. */
	assert_int_equal(bus_register(&b, 0x100, 0x10, rec_io, &r, "same"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x104, 0x4, rec_io, &r, "inside"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf0, 0x40, rec_io, &r, "covers"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf8, 0x9, rec_io, &r, "low-end"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x10f, 0x10, rec_io, &r, "high-end"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x100, 1, rec_io, &r, "first-byte"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x10f, 1, rec_io, &r, "last-byte"), -EEXIST);
	assert_int_equal(b.n, 1);
	/* Adjacent on both sides is fine. */
	assert_int_equal(bus_register(&b, 0xf0, 0x10, rec_io, &r, "below"), 0);
	assert_int_equal(bus_register(&b, 0x110, 0x10, rec_io, &r, "above"), 0);
	assert_int_equal(b.n, 3);
	/* Now a range between two others that touches either one overlaps. */
	assert_int_equal(bus_register(&b, 0x200, 0x10, rec_io, &r, "far"), 0);
	assert_int_equal(bus_register(&b, 0x11f, 0xe2, rec_io, &r, "bridge"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x120, 0xe1, rec_io, &r, "bridge2"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x120, 0xe0, rec_io, &r, "gap"), 0);
	assert_int_equal(b.n, 5);
	/* Sorted by base whatever the registration order. */
	for (size_t i = 1; i < b.n; i++) {
		assert_true(b.ranges[i - 1].base < b.ranges[i].base);
		assert_true(b.ranges[i - 1].base + b.ranges[i - 1].len <= b.ranges[i].base);
	}
	bus_free(&b);
}

static void test_dispatch_offsets(void **state)
{
	struct bus b;
	struct rec r1 = {.fill = 0x10}, r2 = {.fill = 0x80};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x3f8, 8, rec_io, &r1, "com1"), 0);
	assert_int_equal(bus_register(&b, 0xfee00000ULL, 0x1000, rec_io, &r2, "mmio"), 0);

	uint8_t d[8] = {0xaa, 0xbb};
	assert_true(bus_access(&b, 0x3fb, d, 1, true));
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.offset, 3);
	assert_int_equal(r1.len, 1);
	assert_true(r1.is_write);
	assert_int_equal(r1.wdata[0], 0xaa);

	memset(d, 0, sizeof(d));
	assert_true(bus_access(&b, 0x3f8, d, 2, false));
	assert_int_equal(r1.calls, 2);
	assert_int_equal(r1.offset, 0);
	assert_false(r1.is_write);
	assert_int_equal(d[0], 0x10);
	assert_int_equal(d[1], 0x11);

	/* Last bytes of the range, exactly. */
	assert_true(bus_access(&b, 0x3fc, d, 4, false));
	assert_int_equal(r1.offset, 4);
	assert_int_equal(r1.len, 4);
	assert_true(bus_access(&b, 0x3f8, d, 8, false));
	assert_int_equal(r1.offset, 0);
	assert_int_equal(r1.len, 8);

	memset(d, 0, sizeof(d));
	assert_true(bus_access(&b, 0xfee00ff8ULL, d, 8, false));
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r2.offset, 0xff8);
	assert_int_equal(r2.len, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 0x80 + i);
	assert_int_equal(r1.calls, 4);
	bus_free(&b);
}

static void test_straddle_not_dispatched(void **state)
{
	struct bus b;
	bus_init(&b);
	/* Two adjacent devices: an access across the boundary goes to neither. */
	assert_int_equal(bus_register(&b, 0x60, 1, fail_io, NULL, "a"), 0);
	assert_int_equal(bus_register(&b, 0x61, 4, fail_io, NULL, "b"), 0);

	uint8_t d[8];
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0x60, d, 2, false));
	assert_all_ff(d, 2);
	assert_int_equal(d[2], 0);
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0x63, d, 4, false));
	assert_all_ff(d, 4);
	assert_int_equal(d[4], 0);
	memset(d, 0x11, sizeof(d));
	assert_false(bus_access(&b, 0x64, d, 2, true));
	/* Writes leave the buffer alone. */
	assert_int_equal(d[0], 0x11);
	/* Starting below a range and running into it. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0x5f, d, 2, false));
	assert_all_ff(d, 2);
	bus_free(&b);
}

static void test_unclaimed(void **state)
{
	struct bus b;
	bus_init(&b);
	uint8_t d[8];
	/* Empty bus. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0, d, 4, false));
	assert_all_ff(d, 4);
	assert_int_equal(d[4], 0);
	assert_false(bus_access(&b, UINT64_MAX, d, 1, true));

	assert_int_equal(bus_register(&b, 0x1000, 0x100, fail_io, NULL, "a"), 0);
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0xfff, d, 1, false));
	assert_int_equal(d[0], 0xff);
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, 0x1100, d, 8, false));
	assert_all_ff(d, 8);
	assert_false(bus_access(&b, UINT64_MAX, d, 1, false));
	/* Accesses near the top of the address space must not wrap into a range. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(&b, UINT64_MAX - 3, d, 8, false));
	assert_all_ff(d, 8);
	bus_free(&b);
}

static void test_len_zero_and_too_long(void **state)
{
	struct bus b;
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, fail_io, NULL, "a"), 0);
	uint8_t d[16];
	memset(d, 0x33, sizeof(d));
	assert_false(bus_access(&b, 0x1000, d, 0, false));
	/* Nothing filled for an empty read. */
	assert_int_equal(d[0], 0x33);
	assert_false(bus_access(&b, 0x1000, d, 0, true));
	/* Too long: not dispatched, at most 8 bytes filled. */
	memset(d, 0x33, sizeof(d));
	assert_false(bus_access(&b, 0x1000, d, 16, false));
	assert_all_ff(d, 8);
	assert_int_equal(d[8], 0x33);
	assert_false(bus_access(&b, 0x1000, d, 9, true));
	assert_false(bus_access(&b, 0x1000, d, UINT32_MAX, true));
	bus_free(&b);
}

#define MANY 1000

static void test_many_ranges(void **state)
{
	struct bus b;
	static struct rec recs[MANY];
	memset(recs, 0, sizeof(recs));
	bus_init(&b);
	/* Register in a scrambled order (7 is coprime to MANY): every gap is 8 bytes. */
	for (unsigned k = 0; k < MANY; k++) {
		unsigned i = (k * 7) % MANY;
		recs[i].fill = (uint8_t)i;
		assert_int_equal(bus_register(&b, 0x10000 + i * 0x18, 0x10, rec_io, &recs[i], "dev"), 0);
	}
	assert_int_equal(b.n, MANY);
	for (size_t i = 1; i < b.n; i++)
		assert_true(b.ranges[i - 1].base < b.ranges[i].base);
	for (unsigned i = 0; i < MANY; i++) {
		uint8_t d[4] = {0};
		uint64_t base = 0x10000 + i * 0x18;
		assert_true(bus_access(&b, base + 0xc, d, 4, false));
		assert_int_equal(recs[i].calls, 1);
		assert_int_equal(recs[i].offset, 0xc);
		assert_int_equal(d[0], (uint8_t)i);
		assert_true(bus_access(&b, base, d, 1, true));
		assert_int_equal(recs[i].calls, 2);
		assert_int_equal(recs[i].offset, 0);
		/* The gap after each range is unclaimed. */
		assert_false(bus_access(&b, base + 0x10, d, 1, false));
		assert_false(bus_access(&b, base + 0x17, d, 1, false));
		assert_false(bus_access(&b, base + 0xe, d, 4, false));
		/* Overlaps are caught wherever they fall. */
		assert_int_equal(bus_register(&b, base + 0xf, 2, rec_io, NULL, "x"), -EEXIST);
	}
	assert_int_equal(b.n, MANY);
	for (unsigned i = 0; i < MANY; i++)
		assert_int_equal(recs[i].calls, 2);
	bus_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_empty_and_wrapping),
	    cmocka_unit_test(test_register_overlap),
	    cmocka_unit_test(test_dispatch_offsets),
	    cmocka_unit_test(test_straddle_not_dispatched),
	    cmocka_unit_test(test_unclaimed),
	    cmocka_unit_test(test_len_zero_and_too_long),
	    cmocka_unit_test(test_many_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
