/* SPDX-License-Identifier: MIT */
/* Unit tests for saved-state serialisation (common/sbuf.c): round trips, and a reader that never reads past
 * its input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sbuf.h"

static void test_round_trip(void **state)
{
	(void)state;
	struct sbuf b;
	sbuf_init(&b);
	sbuf_u8(&b, 0xab);
	sbuf_u16(&b, 0x1234);
	sbuf_u32(&b, 0xdeadbeef);
	sbuf_u64(&b, 0x0102030405060708ULL);
	sbuf_put(&b, "xyz", 3);
	assert_false(b.oom);
	assert_int_equal(b.len, 1 + 2 + 4 + 8 + 3);
	assert_int_equal(b.data[1], 0x34); /* little-endian */
	struct sreader r;
	sreader_init(&r, b.data, b.len);
	assert_int_equal(sreader_u8(&r), 0xab);
	assert_int_equal(sreader_u16(&r), 0x1234);
	assert_int_equal(sreader_u32(&r), 0xdeadbeef);
	assert_int_equal(sreader_u64(&r), 0x0102030405060708ULL);
	char s[3];
	sreader_get(&r, s, 3);
	assert_memory_equal(s, "xyz", 3);
	assert_true(sreader_done(&r));
	sbuf_free(&b);
}

static void test_short_input(void **state)
{
	(void)state;
	const uint8_t in[3] = {1, 2, 3};
	struct sreader r;
	sreader_init(&r, in, sizeof(in));
	assert_int_equal(sreader_u16(&r), 0x0201);
	assert_int_equal(sreader_u32(&r), 0); /* only one byte left: bad, and zero */
	assert_true(r.bad);
	assert_int_equal(sreader_u8(&r), 0); /* sticky */
	assert_false(sreader_done(&r));
	sreader_init(&r, in, sizeof(in));
	sreader_u8(&r);
	assert_false(sreader_done(&r)); /* trailing bytes */
	assert_false(sreader_check(&r, 1 > 2));
	assert_true(r.bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_short_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
