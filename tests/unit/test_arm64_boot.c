/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the arm64 boot protocol (vmm/arch/arm64/boot.c): the Image
 * header (good, bad magic, compressed, big-endian, truncated, huge or odd
 * fields, old kernels' image_size 0) and where kernel, initrd and device
 * tree go in RAM (alignment, limits, overflow-proof checks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vmm/arch/arm64/boot.h"
#include "vmm/arch/arm64/layout.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A 64-byte header (in a larger buffer of len bytes) as Linux's head.S lays it out. */
static void header(uint8_t *buf, size_t len, uint64_t text_offset, uint64_t image_size, uint64_t flags)
{
	memset(buf, 0, len);
	put64(buf + 8, text_offset);
	put64(buf + 16, image_size);
	put64(buf + 24, flags);
	memcpy(buf + 56, "ARM\x64", 4);
}

static void test_image_good(void **state)
{
	(void)state;
	uint8_t buf[4096];
	header(buf, sizeof(buf), 0, 30 * MiB, 0xa); /* 4K pages, placement anywhere */
	struct arm64_image im;
	struct err e = {{0}};
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), 0);
	assert_int_equal(im.text_offset, 0);
	assert_int_equal(im.image_size, 30 * MiB);
	assert_int_equal(im.flags, 0xa);
	/* A kernel with text_offset 0x80000 (before 5.8). */
	header(buf, sizeof(buf), 0x80000, 20 * MiB, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), 0);
	assert_int_equal(im.text_offset, 0x80000);
}

static void test_image_old_kernel(void **state)
{
	(void)state;
	uint8_t buf[8192];
	header(buf, sizeof(buf), 0x12345, 0, 0); /* image_size 0: text_offset is 0x80000, whatever it says */
	struct arm64_image im;
	struct err e = {{0}};
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), 0);
	assert_int_equal(im.text_offset, ARM64_IMAGE_OLD_TEXT_OFFSET);
	assert_int_equal(im.image_size, sizeof(buf));
}

static void test_image_bad(void **state)
{
	(void)state;
	uint8_t buf[1024];
	struct arm64_image im;
	struct err e = {{0}};
	header(buf, sizeof(buf), 0, MiB, 0);
	/* Truncated: every length below the header's 64 bytes, and no buffer at all. */
	for (size_t n = 0; n < ARM64_IMAGE_HEADER_SIZE; n++)
		assert_int_equal(arm64_image_parse(buf, n, &im, &e), -ENOEXEC);
	assert_int_equal(arm64_image_parse(NULL, 0, &im, &e), -ENOEXEC);
	assert_int_equal(arm64_image_parse(buf, ARM64_IMAGE_HEADER_SIZE, &im, &e), 0);
	/* Bad magic (a fresh error: only the first message is kept). */
	buf[59] = 0x65;
	e = (struct err){{0}};
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -ENOEXEC);
	assert_non_null(strstr(err_msg(&e), "not an arm64 Image"));
	/* A gzip'ed Image (vmlinuz on some distributions). */
	memset(buf, 0, sizeof(buf));
	buf[0] = 0x1f;
	buf[1] = 0x8b;
	e = (struct err){{0}};
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -ENOEXEC);
	assert_non_null(strstr(err_msg(&e), "gzip"));
	/* An x86 bzImage is not one either. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 0x202, "HdrS", 4);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -ENOEXEC);
	/* Big-endian kernel. */
	header(buf, sizeof(buf), 0, MiB, 1);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -ENOEXEC);
	/* Huge image_size, and the largest value a u64 holds. */
	header(buf, sizeof(buf), 0, (1ULL << 32) + 1, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -EINVAL);
	header(buf, sizeof(buf), 0, UINT64_MAX, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -EINVAL);
	/* text_offset past 2 MiB, huge, or not page aligned. */
	header(buf, sizeof(buf), ARM64_KERNEL_ALIGN, MiB, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -EINVAL);
	header(buf, sizeof(buf), UINT64_MAX, MiB, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -EINVAL);
	header(buf, sizeof(buf), 0x80010, MiB, 0);
	assert_int_equal(arm64_image_parse(buf, sizeof(buf), &im, &e), -EINVAL);
}

static void test_place(void **state)
{
	(void)state;
	struct arm64_image im = {.text_offset = 0, .image_size = 40 * MiB};
	struct arm64_boot_layout l;
	struct err e = {{0}};
	uint64_t base = ARM64_RAM_BASE, size = 512 * MiB, end = base + size;
	assert_int_equal(arm64_boot_place(base, size, &im, 30 * MiB, 20 * MiB + 123, &l, &e), 0);
	assert_int_equal(l.kernel, base);
	assert_int_equal(l.kernel_end, base + 40 * MiB);
	/* The device tree: the last 2 MiB, 8-byte aligned; the initrd page aligned right below it. */
	assert_int_equal(l.fdt, end - ARM64_FDT_MAX_SIZE);
	assert_int_equal(l.fdt % 8, 0);
	assert_int_equal(l.initrd % 4096, 0);
	assert_true(l.initrd + 20 * MiB + 123 <= l.fdt);
	assert_true(l.fdt - l.initrd < 20 * MiB + 123 + 4096);
	assert_true(l.initrd >= l.kernel_end);
	/* text_offset from the 2 MiB aligned base; no initrd. */
	im.text_offset = 0x80000;
	assert_int_equal(arm64_boot_place(base, size, &im, 30 * MiB, 0, &l, &e), 0);
	assert_int_equal(l.kernel, base + 0x80000);
	assert_int_equal(l.initrd, 0);
	/* A file longer than image_size (never, for a real kernel) still counts in full. */
	im.image_size = MiB;
	assert_int_equal(arm64_boot_place(base, size, &im, 3 * MiB, 0, &l, &e), 0);
	assert_int_equal(l.kernel_end, l.kernel + 3 * MiB);
}

static void test_place_limits(void **state)
{
	(void)state;
	struct arm64_image im = {.text_offset = 0, .image_size = 40 * MiB};
	struct arm64_boot_layout l;
	struct err e = {{0}};
	uint64_t base = ARM64_RAM_BASE;
	/* Exactly fits: kernel up to the device tree. */
	assert_int_equal(arm64_boot_place(base, 42 * MiB, &im, MiB, 0, &l, &e), 0);
	assert_int_equal(l.kernel_end, l.fdt);
	/* One page short. */
	assert_int_equal(arm64_boot_place(base, 42 * MiB - 4096, &im, MiB, 0, &l, &e), -ENOSPC);
	/* The initrd needs room between the kernel and the device tree. */
	assert_int_equal(arm64_boot_place(base, 64 * MiB, &im, MiB, 22 * MiB, &l, &e), 0);
	assert_int_equal(arm64_boot_place(base, 64 * MiB, &im, MiB, 22 * MiB + 1, &l, &e), -ENOSPC);
	assert_int_equal(arm64_boot_place(base, 64 * MiB, &im, MiB, UINT64_MAX, &l, &e), -ENOSPC);
	/* Huge image sizes and file lengths never wrap. */
	im.image_size = UINT64_MAX;
	assert_int_equal(arm64_boot_place(base, GiB, &im, MiB, 0, &l, &e), -ENOSPC);
	im.image_size = MiB;
	assert_int_equal(arm64_boot_place(base, GiB, &im, UINT64_MAX, 0, &l, &e), -ENOSPC);
	im.text_offset = ARM64_KERNEL_ALIGN;
	assert_int_equal(arm64_boot_place(base, GiB, &im, MiB, 0, &l, &e), -ENOSPC);
	im.text_offset = 0;
	/* Bad RAM: unaligned base, smaller than the device tree's room, wrapping. */
	assert_int_equal(arm64_boot_place(base + 4096, GiB, &im, MiB, 0, &l, &e), -EINVAL);
	assert_int_equal(arm64_boot_place(base, MiB, &im, MiB, 0, &l, &e), -EINVAL);
	assert_int_equal(arm64_boot_place(base, GiB + 1, &im, MiB, 0, &l, &e), -EINVAL);
	assert_int_equal(arm64_boot_place(UINT64_MAX - ARM64_KERNEL_ALIGN + 1, GiB, &im, MiB, 0, &l, &e),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_image_good),	 cmocka_unit_test(test_image_old_kernel),
	    cmocka_unit_test(test_image_bad),	 cmocka_unit_test(test_place),
	    cmocka_unit_test(test_place_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
