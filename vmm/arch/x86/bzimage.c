/* SPDX-License-Identifier: MIT */
/* Set-up thread; every field of the image is untrusted and checked. */
#include "bzimage.h"

#include <errno.h>
#include <string.h>

#include "vmm/arch/x86/e820.h"
#include "vmm/arch/x86/layout.h"

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

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

static void wr64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

bool bzimage_is(const uint8_t *img, size_t len)
{
	return len >= 0x400 && rd16(img + BP_BOOT_FLAG) == 0xaa55 &&
	       memcmp(img + BP_HEADER_MAGIC, "HdrS", 4) == 0;
}

int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *info, struct err *e)
{
	if (!bzimage_is(img, len))
		return err_set(e, -ENOEXEC, "kernel is not a bzImage (no boot protocol header)");
	memset(info, 0, sizeof(*info));
	info->version = rd16(img + BP_VERSION);
	if (info->version < BZ_MIN_VERSION)
		return err_set(e, -ENOEXEC, "kernel boot protocol %u.%02u is too old (2.12 or later needed)",
			       info->version >> 8, info->version & 0xff);
	if (!(rd16(img + BP_XLOADFLAGS) & BZ_XLF_KERNEL_64))
		return err_set(e, -ENOEXEC, "kernel has no 64-bit entry point (not an x86-64 bzImage)");
	unsigned sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
	info->setup_size = (sects + 1) * 512;
	if (info->setup_size >= len)
		return err_set(e, -EINVAL,
			       "kernel image is truncated (setup code runs past the end of the file)");
	info->init_size = rd32(img + BP_INIT_SIZE);
	info->initrd_addr_max = rd32(img + BP_INITRD_ADDR_MAX);
	info->cmdline_size = rd32(img + BP_CMDLINE_SIZE);
	/* The setup header must fit in the zero page's header area as the protocol lays it out. */
	size_t hdr_end = 0x202 + (size_t)img[0x201];
	if (hdr_end > len || hdr_end > 0x290)
		return err_set(e, -EINVAL, "kernel setup header is malformed (length %zu)", hdr_end - BP_HDR);
	return 0;
}

int bzimage_load(const uint8_t *img, size_t len, const struct guest_mem *m, const struct bzimage_boot *b,
		 struct boot_entry *entry, struct err *e)
{
	struct bzimage_info info;
	int r = bzimage_parse(img, len, &info, e);
	if (r)
		return r;

	size_t kernel_len = len - info.setup_size;
	uint64_t need = kernel_len > info.init_size ? kernel_len : info.init_size;
	uint64_t low_end = guest_mem_low_end(m);
	if (BZ_KERNEL_LOAD_ADDR + need > low_end)
		return err_set(e, -ENOSPC,
			       "kernel needs %llu MiB from 1 MiB on, more than the guest's memory",
			       (unsigned long long)(need >> 20) + 1);
	if (guest_mem_write(m, BZ_KERNEL_LOAD_ADDR, img + info.setup_size, kernel_len))
		return err_set(e, -EFAULT, "kernel does not fit in guest memory");

	uint8_t *bp = guest_mem_ptr(m, LAYOUT_ZERO_PAGE_ADDR, 4096);
	if (!bp)
		return err_set(e, -EFAULT, "zero page is outside guest memory");
	memset(bp, 0, 4096);
	size_t hdr_end = 0x202 + (size_t)img[0x201];
	memcpy(bp + BP_HDR, img + BP_HDR, hdr_end - BP_HDR);

	if (b->cmdline_len > info.cmdline_size)
		return err_set(e, -E2BIG, "kernel command line is %u bytes; this kernel takes at most %u",
			       b->cmdline_len, info.cmdline_size);
	if (b->initrd_size && (b->initrd_gpa + b->initrd_size - 1 > info.initrd_addr_max))
		return err_set(e, -ENOSPC, "initrd does not fit below the kernel's initrd_addr_max");

	wr16(bp + BP_VID_MODE, 0xffff); /* "normal" text mode */
	bp[BP_TYPE_OF_LOADER] = 0xff;	/* undefined boot loader */
	bp[BP_LOADFLAGS] |= BZ_LOADFLAG_CAN_USE_HEAP;
	wr16(bp + BP_HEAP_END_PTR, 0xfe00);
	wr32(bp + BP_CODE32_START, (uint32_t)BZ_KERNEL_LOAD_ADDR);
	wr32(bp + BP_CMD_LINE_PTR, (uint32_t)b->cmdline_gpa);
	wr32(bp + BP_RAMDISK_IMAGE, (uint32_t)b->initrd_gpa);
	wr32(bp + BP_RAMDISK_SIZE, (uint32_t)b->initrd_size);
	wr64(bp + BP_ACPI_RSDP_ADDR, b->rsdp_gpa);

	struct e820_entry map[BP_E820_MAX];
	size_t n = e820_build(m->ram_size, map, BP_E820_MAX);
	if (n == 0)
		return err_set(e, -EINVAL, "cannot build the E820 map");
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(bp + BP_E820_TABLE, map, n * sizeof(map[0]));

	entry->mode = BOOT_MODE_LINUX64;
	entry->rip = BZ_KERNEL_LOAD_ADDR + BZ_ENTRY64_OFFSET;
	entry->info_gpa = LAYOUT_ZERO_PAGE_ADDR;
	return 0;
}
