/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vmm/migration/ram_pending.c: a page whose RAM record failed
 * its data check must come again, checked, before END; pages outside memory
 * are refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/migration/ram_pending.h"

#define MIB (1ull << 20)

static const uint64_t ALL[4] = {~0ull, ~0ull, ~0ull, ~0ull};

static void test_clean_stream(void **state)
{
	(void)state;
	struct ram_pending p;
	struct err e = {0};
	ram_pending_init(&p, 64 * MIB);
	assert_int_equal(ram_pending_note(&p, 0, 256, NULL, 1, &e), 0);
	assert_int_equal(ram_pending_note(&p, 64 * MIB - 4096, 1, (uint64_t[4]){0}, 2, &e), 0);
	assert_null(p.bits); /* nothing failed: no map */
	assert_int_equal(ram_pending_check(&p, &e), 0);
	ram_pending_destroy(&p);
}

static void test_resent_pages_clear(void **state)
{
	(void)state;
	struct ram_pending p;
	struct err e = {0};
	ram_pending_init(&p, 64 * MIB);
	assert_int_equal(ram_pending_note(&p, 0x100000, 4, ALL, 7, &e), 0);
	assert_int_equal(p.count, 4);
	assert_int_equal(ram_pending_note(&p, 0x100000, 4, ALL, 9, &e), 0); /* torn again */
	assert_int_equal(p.count, 4);
	/* Only the pages flagged: page 1 of this record (0x102000) torn, page 0 fine. */
	assert_int_equal(ram_pending_note(&p, 0x101000, 2, (uint64_t[4]){2}, 10, &e), 0);
	assert_int_equal(p.count, 3);
	/* Two pages come back checked (one as zero pages), then the others. */
	assert_int_equal(ram_pending_note(&p, 0x101000, 2, NULL, 12, &e), 0);
	assert_int_equal(p.count, 2);
	assert_int_equal(ram_pending_check(&p, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "guest page 0x100000 (and 1 more) failed its checksum"));
	assert_non_null(strstr(err_msg(&e), "(first failure in record 7)"));
	err_clear(&e);
	assert_int_equal(ram_pending_note(&p, 0xff000, 8, NULL, 13, &e), 0);
	assert_int_equal(p.count, 0);
	assert_int_equal(ram_pending_check(&p, &e), 0);
	/* A later failure is named by its own record. */
	assert_int_equal(ram_pending_note(&p, 64 * MIB - 4096, 1, ALL, 20, &e), 0);
	assert_int_equal(ram_pending_check(&p, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "guest page 0x3fff000 (and 0 more)"));
	assert_non_null(strstr(err_msg(&e), "record 20"));
	ram_pending_destroy(&p);
}

static void test_outside_memory(void **state)
{
	(void)state;
	struct ram_pending p;
	struct err e = {0};
	ram_pending_init(&p, 1 * MIB);
	assert_int_equal(ram_pending_note(&p, 1 * MIB - 4096, 2, ALL, 3, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "RAM record 3 lies outside guest memory"));
	err_clear(&e);
	assert_int_equal(ram_pending_note(&p, UINT64_MAX - 4095, 1, NULL, 4, &e), -EINVAL);
	assert_int_equal(p.count, 0);
	ram_pending_destroy(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clean_stream),
	    cmocka_unit_test(test_resent_pages_clear),
	    cmocka_unit_test(test_outside_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
