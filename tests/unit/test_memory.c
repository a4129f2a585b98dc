/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for guest RAM (vmm/memory.c): the layout around the 32-bit hole
 * and the checked translation. The mapping is MAP_NORESERVE, so multi-GiB
 * guests cost nothing as long as the tests touch only a few pages.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "vmm/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void test_layout_small(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 64 * MiB, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.ram_size, 64 * MiB);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, 64 * MiB);
	assert_ptr_equal(m.regions[0].hva, m.map);
	assert_int_equal(guest_mem_low_end(&m), 64 * MiB);
	assert_ptr_equal(guest_mem_ptr(&m, 0, 1), m.map);
	assert_ptr_equal(guest_mem_ptr(&m, 0x1234, 16), m.map + 0x1234);
	assert_ptr_equal(guest_mem_ptr(&m, 0, 64 * MiB), m.map);
	assert_ptr_equal(guest_mem_ptr(&m, 64 * MiB - 1, 1), m.map + 64 * MiB - 1);
	assert_null(guest_mem_ptr(&m, 64 * MiB, 1));
	assert_null(guest_mem_ptr(&m, 64 * MiB - 1, 2));
	assert_null(guest_mem_ptr(&m, 0, 64 * MiB + 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, 1));
	guest_mem_free(&m);
	assert_null(m.map);
	assert_int_equal(m.nregions, 0);
	assert_int_equal(guest_mem_low_end(&m), 0);
	assert_null(guest_mem_ptr(&m, 0, 1));
	/* Freeing twice is harmless. */
	guest_mem_free(&m);
}

static void test_layout_exactly_3g(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 3 * GiB, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, LAYOUT_MMIO32_START);
	assert_int_equal(guest_mem_low_end(&m), LAYOUT_MMIO32_START);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 8, 8), m.map + LAYOUT_MMIO32_START - 8);
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 8, 9));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, 1));
	guest_mem_free(&m);
}

static void test_layout_above_4g(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	const uint64_t size = 3 * GiB + 64 * MiB;
	assert_int_equal(guest_mem_alloc(&m, size, &e), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.ram_size, size);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, LAYOUT_MMIO32_START);
	assert_int_equal(m.regions[1].gpa, LAYOUT_4G);
	assert_int_equal(m.regions[1].size, 64 * MiB);
	assert_ptr_equal(m.regions[1].hva, m.map + LAYOUT_MMIO32_START);
	assert_int_equal(guest_mem_low_end(&m), LAYOUT_MMIO32_START);

	/* The high region translates to the tail of the mapping. */
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G, 1), m.map + LAYOUT_MMIO32_START);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB - 4, 4), m.map + size - 4);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G, 64 * MiB), m.map + LAYOUT_MMIO32_START);
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB - 4, 5));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G - 1, 2));

	/* The hole is not RAM, and a range cannot span it even though the host mapping is contiguous. */
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_LAPIC_ADDR, 4));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 1, 2));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 4096, 8192));
	assert_null(guest_mem_ptr(&m, 0, size));
	assert_null(guest_mem_ptr(&m, 0, LAYOUT_4G + 1));

	/* Writes through one side are seen through the other: same bytes. */
	uint32_t v = 0xdeadbeef, out = 0;
	assert_int_equal(guest_mem_write(&m, LAYOUT_4G + 0x1000, &v, sizeof(v)), 0);
	assert_int_equal(guest_mem_read(&m, LAYOUT_4G + 0x1000, &out, sizeof(out)), 0);
	assert_int_equal(out, 0xdeadbeef);
	assert_memory_equal(m.map + LAYOUT_MMIO32_START + 0x1000, &v, sizeof(v));
	assert_int_equal(guest_mem_write(&m, LAYOUT_MMIO32_START - 2, &v, sizeof(v)), -EFAULT);
	assert_int_equal(guest_mem_read(&m, LAYOUT_4G - 2, &out, sizeof(out)), -EFAULT);
	guest_mem_free(&m);
}

static void test_ptr_overflow(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 3 * GiB + 64 * MiB, &e), 0);
	/* gpa + len would wrap to a small address: must not be accepted. */
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&m, UINT64_MAX - 0xfff, 0x2000));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0x1000, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0x1000, UINT64_MAX - 0xfff));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 0x1000, UINT64_MAX - LAYOUT_4G - 0xfff));
	assert_null(guest_mem_ptr(&m, 1ULL << 63, 1ULL << 63));
	assert_null(guest_mem_ptr(&m, (1ULL << 63) + 1, 1ULL << 63));
	uint8_t buf[16];
	assert_int_equal(guest_mem_read(&m, UINT64_MAX - 7, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_write(&m, UINT64_MAX - 7, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_read(&m, UINT64_MAX, buf, 1), -EFAULT);
	guest_mem_free(&m);
}

static void test_read_write(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 64 * MiB, &e), 0);
	const char msg[] = "hello, guest";
	char out[sizeof(msg)] = {0};
	assert_int_equal(guest_mem_write(&m, 0x2000, msg, sizeof(msg)), 0);
	assert_memory_equal(m.map + 0x2000, msg, sizeof(msg));
	assert_int_equal(guest_mem_read(&m, 0x2000, out, sizeof(out)), 0);
	assert_string_equal(out, msg);
	/* Last bytes of RAM. */
	assert_int_equal(guest_mem_write(&m, 64 * MiB - sizeof(msg), msg, sizeof(msg)), 0);
	assert_int_equal(guest_mem_read(&m, 64 * MiB - sizeof(msg), out, sizeof(out)), 0);
	/* One byte too far: -EFAULT and nothing copied. */
	memset(out, 0x55, sizeof(out));
	assert_int_equal(guest_mem_read(&m, 64 * MiB - sizeof(msg) + 1, out, sizeof(out)), -EFAULT);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal((uint8_t)out[i], 0x55);
	uint8_t before = m.map[64 * MiB - 1];
	assert_int_equal(guest_mem_write(&m, 64 * MiB - 1, msg, 2), -EFAULT);
	assert_int_equal(m.map[64 * MiB - 1], before);
	assert_int_equal(guest_mem_write(&m, 64 * MiB, msg, 1), -EFAULT);
	assert_int_equal(guest_mem_read(&m, 1ULL << 40, out, 1), -EFAULT);
	/* Zero-length copies inside RAM are fine. */
	assert_int_equal(guest_mem_read(&m, 0x1000, out, 0), 0);
	assert_int_equal(guest_mem_write(&m, 0x1000, msg, 0), 0);
	guest_mem_free(&m);
}

static void test_bad_sizes(void **state)
{
	static const uint64_t bad[] = {0, 1, 4095, 4097, 64 * MiB + 512, 3 * GiB + 1};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct guest_mem m;
		struct err e = {0};
		assert_int_equal(guest_mem_alloc(&m, bad[i], &e), -EINVAL);
		assert_true(strlen(err_msg(&e)) > 0);
		assert_null(m.map);
		assert_int_equal(m.nregions, 0);
		assert_null(guest_mem_ptr(&m, 0, 1));
		guest_mem_free(&m);
	}
	/* The smallest legal size. */
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 4096, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_non_null(guest_mem_ptr(&m, 0, 4096));
	assert_null(guest_mem_ptr(&m, 4096, 1));
	guest_mem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_small),    cmocka_unit_test(test_layout_exactly_3g),
	    cmocka_unit_test(test_layout_above_4g), cmocka_unit_test(test_ptr_overflow),
	    cmocka_unit_test(test_read_write),	    cmocka_unit_test(test_bad_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
