/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the console escape filter (vmm/console_tty.c): Ctrl-A x
 * quits, Ctrl-A Ctrl-A sends one Ctrl-A, anything else passes through.
 * Inputs live in exactly-sized heap buffers so ASan sees any write past them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/console_tty.h"

/* Runs one read's worth of input through the filter; checks the output and the quit flag. */
static void feed(struct console_escape *st, const char *in, size_t in_len, const char *want, size_t want_len,
		 bool want_quit)
{
	uint8_t *buf = malloc(in_len ? in_len : 1);
	uint8_t *out = malloc(in_len + 1);
	assert_non_null(buf);
	assert_non_null(out);
	memcpy(buf, in, in_len);
	bool quit = !want_quit;
	size_t n = console_escape_filter(st, buf, in_len, out, &quit);
	assert_int_equal(quit, want_quit);
	assert_int_equal(n, want_len);
	assert_true(n <= in_len + 1);
	assert_memory_equal(out, want, want_len);
	free(buf);
	free(out);
}

#define FEED(st, in, want, quit) feed(st, in, sizeof(in) - 1, want, sizeof(want) - 1, quit)

static void test_plain(void **state)
{
	struct console_escape st = {0};
	FEED(&st, "hello\r\n", "hello\r\n", false);
	FEED(&st, "x", "x", false);
	/* Every byte but Ctrl-A passes unchanged. */
	uint8_t all[255];
	size_t n = 0;
	for (int c = 0; c < 256; c++)
		if (c != CONSOLE_ESCAPE)
			all[n++] = (uint8_t)c;
	feed(&st, (const char *)all, n, (const char *)all, n, false);
	assert_false(st.pending);
	feed(&st, "", 0, "", 0, false);
}

static void test_quit(void **state)
{
	struct console_escape st = {0};
	FEED(&st, "\x01x", "", true);
	struct console_escape st2 = {0};
	FEED(&st2, "\x01X", "", true);
	/* Bytes before the escape are kept, bytes after it are dropped. */
	struct console_escape st3 = {0};
	FEED(&st3, "ls\r\x01xrm -rf /\r", "ls\r", true);
	assert_false(st3.pending);
}

static void test_double_escape(void **state)
{
	struct console_escape st = {0};
	FEED(&st, "\x01\x01", "\x01", false);
	assert_false(st.pending);
	/* Ctrl-A Ctrl-A x sends Ctrl-A then x: the second Ctrl-A is data, not a new escape. */
	FEED(&st, "a\x01\x01x", "a\x01x", false);
	FEED(&st, "\x01\x01\x01\x01", "\x01\x01", false);
}

static void test_other_byte(void **state)
{
	struct console_escape st = {0};
	FEED(&st,
	     "\x01"
	     "a",
	     "\x01"
	     "a",
	     false);
	FEED(&st,
	     "q\x01"
	     "cz",
	     "q\x01"
	     "cz",
	     false);
	FEED(&st, "\x01\r", "\x01\r", false);
	assert_false(st.pending);
}

static void test_split(void **state)
{
	/* Ctrl-A at the end of one read, x at the start of the next. */
	struct console_escape st = {0};
	FEED(&st, "abc\x01", "abc", false);
	assert_true(st.pending);
	FEED(&st, "xdef", "", true);

	/* Split Ctrl-A Ctrl-A. */
	struct console_escape st2 = {0};
	FEED(&st2, "\x01", "", false);
	assert_true(st2.pending);
	FEED(&st2, "\x01", "\x01", false);
	assert_false(st2.pending);

	/* Split Ctrl-A, then an ordinary byte alone. */
	struct console_escape st3 = {0};
	FEED(&st3, "\x01", "", false);
	FEED(&st3, "b",
	     "\x01"
	     "b",
	     false);
	assert_false(st3.pending);
}

static void test_split_then_more(void **state)
{
	/*
	 * Ctrl-A ends one read and the next read starts with an ordinary byte
	 * followed by more input: Ctrl-A, the byte and the rest must all arrive,
	 * in order, without writing past the input buffer.
	 */
	struct console_escape st = {0};
	FEED(&st, "\x01", "", false);
	/* The held Ctrl-A comes out in front: len + 1 bytes, all in order. */
	FEED(&st, "abcd",
	     "\x01"
	     "abcd",
	     false);
}

static void test_pending_survives_empty_read(void **state)
{
	struct console_escape st = {0};
	FEED(&st, "\x01", "", false);
	feed(&st, "", 0, "", 0, false);
	assert_true(st.pending);
	FEED(&st, "X", "", true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_quit),
	    cmocka_unit_test(test_double_escape),
	    cmocka_unit_test(test_other_byte),
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_split_then_more),
	    cmocka_unit_test(test_pending_survives_empty_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
