/* SPDX-License-Identifier: MIT */
/* Unit tests for the E820 map (vmm/arch/x86/e820.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/arch/x86/e820.h"
#include "vmm/arch/x86/layout.h"

#define MiB  (1ULL << 20)
#define GiB  (1ULL << 30)
#define MAXE 16

/* Bytes between the EBDA and 1 MiB that are never RAM. */
#define LEGACY_HOLE (LAYOUT_HIGH_RAM_START - LAYOUT_EBDA_START)

static size_t build(uint64_t ram, struct e820_entry *t)
{
	memset(t, 0xa5, MAXE * sizeof(*t));
	size_t n = e820_build(ram, t, MAXE);
	assert_true(n > 0);
	assert_true(n <= MAXE);
	return n;
}

/* Checks what every map must satisfy, whatever the RAM size. */
static void check_invariants(uint64_t ram, const struct e820_entry *t, size_t n)
{
	uint64_t ram_total = 0;
	bool ioapic_reserved = false;
	for (size_t i = 0; i < n; i++) {
		assert_true(t[i].size > 0);
		assert_true(t[i].type == E820_RAM || t[i].type == E820_RESERVED || t[i].type == E820_ACPI);
		assert_true(t[i].addr + t[i].size > t[i].addr);
		if (i > 0) {
			assert_true(t[i - 1].addr < t[i].addr);
			assert_true(t[i - 1].addr + t[i - 1].size <= t[i].addr);
		}
		if (t[i].type == E820_RAM) {
			ram_total += t[i].size;
			/* No RAM in the hole between the end of low RAM and 4 GiB. */
			assert_true(t[i].addr >= LAYOUT_4G || t[i].addr + t[i].size <= LAYOUT_MMIO32_START);
			/* No RAM in the legacy area. */
			assert_true(t[i].addr >= LAYOUT_HIGH_RAM_START ||
				    t[i].addr + t[i].size <= LAYOUT_EBDA_START);
		}
		if (t[i].type == E820_RESERVED && t[i].addr <= LAYOUT_IOAPIC_ADDR &&
		    t[i].addr + t[i].size >= LAYOUT_4G)
			ioapic_reserved = true;
	}
	assert_int_equal(ram_total, ram - LEGACY_HOLE);
	assert_true(ioapic_reserved);
	/* The legacy area is reserved. */
	bool legacy = false;
	for (size_t i = 0; i < n; i++)
		if (t[i].type == E820_RESERVED && t[i].addr <= LAYOUT_EBDA_START &&
		    t[i].addr + t[i].size >= LAYOUT_HIGH_RAM_START)
			legacy = true;
	assert_true(legacy);
}

static void test_64m(void **state)
{
	struct e820_entry t[MAXE];
	size_t n = build(64 * MiB, t);
	check_invariants(64 * MiB, t, n);
	assert_int_equal(n, 4);
	assert_int_equal(t[0].addr, 0);
	assert_int_equal(t[0].size, LAYOUT_EBDA_START);
	assert_int_equal(t[0].type, E820_RAM);
	assert_int_equal(t[1].addr, LAYOUT_EBDA_START);
	assert_int_equal(t[1].size, LEGACY_HOLE);
	assert_int_equal(t[1].type, E820_RESERVED);
	assert_int_equal(t[2].addr, LAYOUT_HIGH_RAM_START);
	assert_int_equal(t[2].size, 63 * MiB);
	assert_int_equal(t[2].type, E820_RAM);
	assert_int_equal(t[3].addr, LAYOUT_IOAPIC_ADDR);
	assert_int_equal(t[3].size, LAYOUT_4G - LAYOUT_IOAPIC_ADDR);
	assert_int_equal(t[3].type, E820_RESERVED);
	/* Untouched past n. */
	assert_int_equal(t[4].addr, 0xa5a5a5a5a5a5a5a5ULL);
}

static void test_512m(void **state)
{
	struct e820_entry t[MAXE];
	size_t n = build(512 * MiB, t);
	check_invariants(512 * MiB, t, n);
	assert_int_equal(n, 4);
	assert_int_equal(t[2].addr + t[2].size, 512 * MiB);
}

static void test_3g(void **state)
{
	struct e820_entry t[MAXE];
	size_t n = build(3 * GiB, t);
	check_invariants(3 * GiB, t, n);
	assert_int_equal(n, 4);
	assert_int_equal(t[2].addr + t[2].size, LAYOUT_MMIO32_START);
	for (size_t i = 0; i < n; i++)
		assert_true(t[i].addr < LAYOUT_4G);
}

static void test_4g(void **state)
{
	struct e820_entry t[MAXE];
	size_t n = build(4 * GiB, t);
	check_invariants(4 * GiB, t, n);
	assert_int_equal(n, 5);
	assert_int_equal(t[2].addr + t[2].size, LAYOUT_MMIO32_START);
	assert_int_equal(t[4].addr, LAYOUT_4G);
	assert_int_equal(t[4].size, 4 * GiB - LAYOUT_MMIO32_START);
	assert_int_equal(t[4].type, E820_RAM);
}

static void test_5g(void **state)
{
	struct e820_entry t[MAXE];
	size_t n = build(5 * GiB, t);
	check_invariants(5 * GiB, t, n);
	assert_int_equal(n, 5);
	assert_int_equal(t[4].addr, LAYOUT_4G);
	assert_int_equal(t[4].size, 2 * GiB);
}

static void test_odd_sizes(void **state)
{
	/* Just past the hole start, and a little RAM above 4 GiB. */
	static const uint64_t sizes[] = {2 * MiB, 3 * GiB - 4096, 3 * GiB + 4096, 1ULL << 40};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct e820_entry t[MAXE];
		size_t n = build(sizes[k], t);
		check_invariants(sizes[k], t, n);
	}
}

static void test_max_too_small(void **state)
{
	struct e820_entry t[MAXE];
	memset(t, 0xa5, sizeof(t));
	assert_int_equal(e820_build(64 * MiB, t, 0), 0);
	assert_int_equal(e820_build(64 * MiB, t, 3), 0);
	assert_int_equal(e820_build(5 * GiB, t, 4), 0);
	/* Nothing written on failure. */
	for (size_t i = 0; i < MAXE; i++)
		assert_int_equal(t[i].addr, 0xa5a5a5a5a5a5a5a5ULL);
	/* Exactly enough is enough. */
	assert_int_equal(e820_build(64 * MiB, t, 4), 4);
	assert_int_equal(e820_build(5 * GiB, t, 5), 5);
	/* The entry layout matches the boot protocol's 20-byte struct. */
	assert_int_equal(sizeof(struct e820_entry), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_64m),
	    cmocka_unit_test(test_512m),
	    cmocka_unit_test(test_3g),
	    cmocka_unit_test(test_4g),
	    cmocka_unit_test(test_5g),
	    cmocka_unit_test(test_odd_sizes),
	    cmocka_unit_test(test_max_too_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
