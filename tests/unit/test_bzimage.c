/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the bzImage loader (vmm/arch/x86/bzimage.c) with a synthetic
 * image: setup sectors carrying a boot protocol header, then a recognisable
 * protected-mode payload. Images live in exactly-sized heap buffers so that
 * ASan catches any read past the end of the file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "vmm/arch/x86/bzimage.h"
#include "vmm/arch/x86/e820.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)

#define SETUP_SECTS  3
#define SETUP_SIZE   ((SETUP_SECTS + 1) * 512)
#define PAYLOAD_LEN  0x5000
#define HDR_LEN_BYTE 0x6a /* header ends at 0x26c, as in current kernels */
#define CMDLINE_SIZE 2047
#define INIT_SIZE    (16 * MiB)
#define INITRD_MAX   0x7fffffff
#define VERSION	     0x020f

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t payload_byte(size_t i)
{
	return (uint8_t)(i * 31 + (i >> 8) + 0x5b);
}

/* A valid image of setup_sects sectors (plus the boot sector) and payload_len bytes of kernel. */
static uint8_t *make_image(size_t *len, unsigned setup_sects, size_t payload_len)
{
	size_t setup = ((setup_sects ? setup_sects : 4) + 1) * 512;
	*len = setup + payload_len;
	uint8_t *img = malloc(*len);
	assert_non_null(img);
	/* Setup code and header area: a pattern, so copied header bytes are recognisable. */
	for (size_t i = 0; i < setup; i++)
		img[i] = (uint8_t)(i ^ 0xa5);
	img[BP_SETUP_SECTS] = (uint8_t)setup_sects;
	wr16(img + BP_BOOT_FLAG, 0xaa55);
	img[0x200] = 0xeb; /* jmp short over the header */
	img[0x201] = HDR_LEN_BYTE;
	memcpy(img + BP_HEADER_MAGIC, "HdrS", 4);
	wr16(img + BP_VERSION, VERSION);
	img[BP_TYPE_OF_LOADER] = 0;
	img[BP_LOADFLAGS] = BZ_LOADFLAG_LOADED_HIGH;
	wr32(img + BP_RAMDISK_IMAGE, 0);
	wr32(img + BP_RAMDISK_SIZE, 0);
	wr32(img + BP_CMD_LINE_PTR, 0);
	wr32(img + BP_INITRD_ADDR_MAX, INITRD_MAX);
	wr16(img + BP_XLOADFLAGS, BZ_XLF_KERNEL_64 | 0x2);
	wr32(img + BP_CMDLINE_SIZE, CMDLINE_SIZE);
	wr32(img + BP_INIT_SIZE, (uint32_t)INIT_SIZE);
	for (size_t i = 0; i < payload_len; i++)
		img[setup + i] = payload_byte(i);
	return img;
}

/* The same bytes in a buffer of exactly len bytes (for truncated images). */
static uint8_t *exact_copy(const uint8_t *img, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, img, len);
	return p;
}

static const struct bzimage_boot default_boot = {
    .cmdline_gpa = LAYOUT_CMDLINE_ADDR,
    .cmdline_len = 20,
    .initrd_gpa = 0x4000000,
    .initrd_size = 0x123456,
    .rsdp_gpa = LAYOUT_ACPI_START,
};

static int setup_mem(void **state)
{
	static struct guest_mem m;
	struct err e = {0};
	if (guest_mem_alloc(&m, 128 * MiB, &e))
		return -1;
	*state = &m;
	return 0;
}

static int teardown_mem(void **state)
{
	guest_mem_free(*state);
	return 0;
}

static void test_is_and_parse(void **state)
{
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	assert_true(bzimage_is(img, len));
	assert_false(bzimage_is(img, 0x3ff));
	struct bzimage_info info;
	struct err e = {0};
	assert_int_equal(bzimage_parse(img, len, &info, &e), 0);
	assert_string_equal(err_msg(&e), "");
	assert_int_equal(info.version, VERSION);
	assert_int_equal(info.setup_size, SETUP_SIZE);
	assert_int_equal(info.init_size, INIT_SIZE);
	assert_int_equal(info.initrd_addr_max, INITRD_MAX);
	assert_int_equal(info.cmdline_size, CMDLINE_SIZE);
	free(img);

	/* setup_sects 0 means 4. */
	img = make_image(&len, 0, PAYLOAD_LEN);
	assert_int_equal(bzimage_parse(img, len, &info, &e), 0);
	assert_int_equal(info.setup_size, 5 * 512);
	free(img);
}

static void test_load(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	/* Stale bytes in the zero page must be cleared. */
	memset(m->map + LAYOUT_ZERO_PAGE_ADDR, 0xee, 4096);
	struct boot_entry entry = {0};
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &default_boot, &entry, &e), 0);
	assert_string_equal(err_msg(&e), "");

	/* The protected-mode kernel at 1 MiB, byte for byte, and nothing of the setup code. */
	assert_memory_equal(m->map + BZ_KERNEL_LOAD_ADDR, img + SETUP_SIZE, PAYLOAD_LEN);
	assert_int_equal(m->map[BZ_KERNEL_LOAD_ADDR], payload_byte(0));

	/* Entry point. */
	assert_int_equal(entry.mode, BOOT_MODE_LINUX64);
	assert_int_equal(entry.rip, 0x100000 + 0x200);
	assert_int_equal(entry.info_gpa, LAYOUT_ZERO_PAGE_ADDR);

	const uint8_t *bp = m->map + LAYOUT_ZERO_PAGE_ADDR;
	const size_t hdr_end = 0x202 + HDR_LEN_BYTE;
	/* Fields the loader fills in. */
	assert_int_equal(bp[BP_TYPE_OF_LOADER], 0xff);
	assert_true(bp[BP_LOADFLAGS] & BZ_LOADFLAG_LOADED_HIGH);
	assert_true(bp[BP_LOADFLAGS] & BZ_LOADFLAG_CAN_USE_HEAP);
	assert_int_equal(rd32(bp + BP_CMD_LINE_PTR), LAYOUT_CMDLINE_ADDR);
	assert_int_equal(rd32(bp + BP_RAMDISK_IMAGE), 0x4000000);
	assert_int_equal(rd32(bp + BP_RAMDISK_SIZE), 0x123456);
	assert_int_equal(rd64(bp + BP_ACPI_RSDP_ADDR), LAYOUT_ACPI_START);
	assert_int_equal(rd64(bp + 0x70), LAYOUT_ACPI_START);
	assert_int_equal(rd16(bp + BP_VID_MODE), 0xffff);
	assert_int_equal(rd32(bp + BP_CODE32_START), BZ_KERNEL_LOAD_ADDR);
	/* The rest of the setup header is the image's own. */
	static const struct {
		size_t off, len;
	} written[] = {
	    {BP_VID_MODE, 2},	   {BP_TYPE_OF_LOADER, 1}, {BP_LOADFLAGS, 1},	 {BP_CODE32_START, 4},
	    {BP_RAMDISK_IMAGE, 4}, {BP_RAMDISK_SIZE, 4},   {BP_HEAP_END_PTR, 2}, {BP_CMD_LINE_PTR, 4},
	};
	for (size_t off = BP_HDR; off < hdr_end; off++) {
		bool w = false;
		for (size_t k = 0; k < sizeof(written) / sizeof(written[0]); k++)
			if (off >= written[k].off && off < written[k].off + written[k].len)
				w = true;
		if (!w && bp[off] != img[off])
			fail_msg("zero page byte 0x%zx is 0x%02x, image has 0x%02x", off, bp[off], img[off]);
	}
	assert_int_equal(rd16(bp + BP_BOOT_FLAG), 0xaa55);
	assert_memory_equal(bp + BP_HEADER_MAGIC, "HdrS", 4);
	assert_int_equal(rd16(bp + BP_VERSION), VERSION);
	assert_int_equal(rd32(bp + BP_INIT_SIZE), INIT_SIZE);
	assert_int_equal(rd32(bp + BP_CMDLINE_SIZE), CMDLINE_SIZE);
	assert_int_equal(bp[BP_SETUP_SECTS], SETUP_SECTS);
	/* Nothing past the header copied from the image. */
	for (size_t off = hdr_end; off < BP_E820_TABLE; off++)
		assert_int_equal(bp[off], 0);

	/* E820: count and table match e820_build for this guest. */
	struct e820_entry want[BP_E820_MAX];
	size_t n = e820_build(m->ram_size, want, BP_E820_MAX);
	assert_true(n > 0);
	assert_int_equal(bp[BP_E820_ENTRIES], n);
	assert_memory_equal(bp + BP_E820_TABLE, want, n * sizeof(want[0]));
	for (size_t off = BP_E820_TABLE + n * sizeof(want[0]); off < 4096; off++)
		assert_int_equal(bp[off], 0);
	/* Below the header, only the RSDP pointer and the E820 count are set. */
	for (size_t off = 0; off < BP_HDR; off++) {
		if ((off >= BP_ACPI_RSDP_ADDR && off < BP_ACPI_RSDP_ADDR + 8) || off == BP_E820_ENTRIES)
			continue;
		assert_int_equal(bp[off], 0);
	}
	free(img);
}

static void test_load_no_initrd(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, 1, 0x200);
	struct bzimage_boot b = {.cmdline_gpa = LAYOUT_CMDLINE_ADDR, .cmdline_len = CMDLINE_SIZE};
	struct boot_entry entry = {0};
	struct err e = {0};
	/* A command line of exactly cmdline_size bytes is allowed. */
	assert_int_equal(bzimage_load(img, len, m, &b, &entry, &e), 0);
	const uint8_t *bp = m->map + LAYOUT_ZERO_PAGE_ADDR;
	assert_int_equal(rd32(bp + BP_RAMDISK_IMAGE), 0);
	assert_int_equal(rd32(bp + BP_RAMDISK_SIZE), 0);
	assert_int_equal(rd64(bp + BP_ACPI_RSDP_ADDR), 0);
	assert_memory_equal(m->map + BZ_KERNEL_LOAD_ADDR, img + 2 * 512, 0x200);
	free(img);
}

/* Loads img (exactly len bytes on the heap) and expects code with a message. */
static void expect_fail(const struct guest_mem *m, const uint8_t *img, size_t len,
			const struct bzimage_boot *b, int code)
{
	uint8_t *p = exact_copy(img, len);
	struct boot_entry entry = {0};
	struct err e = {0};
	assert_int_equal(bzimage_load(p, len, m, b, &entry, &e), code);
	assert_true(strlen(err_msg(&e)) > 0);
	/* The parser alone agrees, where the failure is the header's. */
	if (code == -ENOEXEC || code == -EINVAL) {
		struct bzimage_info info;
		struct err e2 = {0};
		assert_int_equal(bzimage_parse(p, len, &info, &e2), code);
		assert_true(strlen(err_msg(&e2)) > 0);
	}
	free(p);
}

static void test_not_bzimage(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	img[BP_BOOT_FLAG] = 0;
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	img[BP_BOOT_FLAG] = 0x55;
	img[BP_HEADER_MAGIC + 3] = 's';
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	/* An ELF file is not a bzImage. */
	memset(img, 0, len);
	memcpy(img,
	       "\x7f"
	       "ELF",
	       4);
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	free(img);
}

static void test_old_version(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	wr16(img + BP_VERSION, 0x0209);
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	wr16(img + BP_VERSION, 0x020b);
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	wr16(img + BP_VERSION, 0x020c); /* the oldest accepted */
	struct boot_entry entry;
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &default_boot, &entry, &e), 0);
	free(img);
}

static void test_no_kernel64(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	wr16(img + BP_XLOADFLAGS, 0x2);
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	wr16(img + BP_XLOADFLAGS, 0);
	expect_fail(m, img, len, &default_boot, -ENOEXEC);
	free(img);
}

static void test_setup_past_file(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	/* 255 setup sectors: 128 KiB of setup in a 22 KiB file. */
	img[BP_SETUP_SECTS] = 255;
	expect_fail(m, img, len, &default_boot, -EINVAL);
	/* Setup ending exactly at the end of the file leaves no kernel. */
	img[BP_SETUP_SECTS] = SETUP_SECTS;
	expect_fail(m, img, SETUP_SIZE, &default_boot, -EINVAL);
	/* setup_sects 0 (meaning 4) in a file shorter than 5 sectors. */
	img[BP_SETUP_SECTS] = 0;
	expect_fail(m, img, 4 * 512 + 100, &default_boot, -EINVAL);
	/* One byte of kernel is enough for the parser. */
	img[BP_SETUP_SECTS] = SETUP_SECTS;
	uint8_t *p = exact_copy(img, SETUP_SIZE + 1);
	struct bzimage_info info;
	struct err e = {0};
	assert_int_equal(bzimage_parse(p, SETUP_SIZE + 1, &info, &e), 0);
	free(p);
	free(img);
}

static void test_header_length_absurd(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	img[0x201] = 0xff; /* header would end at 0x301, past the zero page's header area */
	expect_fail(m, img, len, &default_boot, -EINVAL);
	img[0x201] = 0x8f; /* 0x291: one byte too many */
	expect_fail(m, img, len, &default_boot, -EINVAL);
	img[0x201] = 0x8e; /* 0x290: the largest accepted */
	struct boot_entry entry;
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &default_boot, &entry, &e), 0);
	free(img);
}

static void test_cmdline_too_long(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	struct bzimage_boot b = default_boot;
	b.cmdline_len = CMDLINE_SIZE + 1;
	expect_fail(m, img, len, &b, -E2BIG);
	wr32(img + BP_CMDLINE_SIZE, 255);
	b.cmdline_len = 256;
	expect_fail(m, img, len, &b, -E2BIG);
	b.cmdline_len = 255;
	struct boot_entry entry;
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &b, &entry, &e), 0);
	free(img);
}

static void test_initrd_above_max(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	wr32(img + BP_INITRD_ADDR_MAX, 0x37ffffff);
	struct bzimage_boot b = default_boot;
	b.initrd_gpa = 0x37000000;
	b.initrd_size = 0x1000001;
	expect_fail(m, img, len, &b, -ENOSPC);
	b.initrd_size = 0x1000000; /* ends exactly at initrd_addr_max */
	struct boot_entry entry;
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &b, &entry, &e), 0);
	free(img);
}

static void test_kernel_too_big(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	/* init_size beyond the guest's 128 MiB. */
	wr32(img + BP_INIT_SIZE, 200 * MiB);
	expect_fail(m, img, len, &default_boot, -ENOSPC);
	wr32(img + BP_INIT_SIZE, UINT32_MAX);
	expect_fail(m, img, len, &default_boot, -ENOSPC);
	/* Exactly filling RAM from 1 MiB is fine. */
	wr32(img + BP_INIT_SIZE, 127 * MiB);
	struct boot_entry entry;
	struct err e = {0};
	assert_int_equal(bzimage_load(img, len, m, &default_boot, &entry, &e), 0);
	wr32(img + BP_INIT_SIZE, 127 * MiB + 1);
	expect_fail(m, img, len, &default_boot, -ENOSPC);
	free(img);

	/* The file itself larger than the guest's RAM above 1 MiB (small guest, init_size 0). */
	struct guest_mem small;
	assert_int_equal(guest_mem_alloc(&small, 2 * MiB, &e), 0);
	img = make_image(&len, SETUP_SECTS, MiB + 4096);
	wr32(img + BP_INIT_SIZE, 0);
	expect_fail(&small, img, len, &default_boot, -ENOSPC);
	free(img);
	img = make_image(&len, SETUP_SECTS, MiB);
	wr32(img + BP_INIT_SIZE, 0);
	assert_int_equal(bzimage_load(img, len, &small, &default_boot, &entry, &e), 0);
	assert_int_equal(small.map[BZ_KERNEL_LOAD_ADDR + MiB - 1], payload_byte(MiB - 1));
	free(img);
	guest_mem_free(&small);
}

static void test_tiny_files(void **state)
{
	struct guest_mem *m = *state;
	size_t len;
	uint8_t *img = make_image(&len, SETUP_SECTS, PAYLOAD_LEN);
	static const size_t lens[] = {0, 1, 0x1f1, 0x1ff, 0x200, 0x203, 0x206, 0x300, 0x3ff};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		uint8_t *p = exact_copy(img, lens[k]);
		assert_false(bzimage_is(p, lens[k]));
		free(p);
		expect_fail(m, img, lens[k], &default_boot, -ENOEXEC);
	}
	/* 0x400 bytes: a header, but the setup code runs past the end. */
	expect_fail(m, img, 0x400, &default_boot, -EINVAL);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_and_parse),
	    cmocka_unit_test_setup_teardown(test_load, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_load_no_initrd, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_not_bzimage, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_old_version, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_no_kernel64, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_setup_past_file, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_header_length_absurd, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_cmdline_too_long, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_initrd_above_max, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_kernel_too_big, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_tiny_files, setup_mem, teardown_mem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
