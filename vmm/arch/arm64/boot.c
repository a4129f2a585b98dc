/* SPDX-License-Identifier: MIT */
/* Pure: the arm64 Image header and the boot layout in RAM (boot.h). Set-up thread. */
#include "vmm/arch/arm64/boot.h"

#include <errno.h>
#include <string.h>

#include "vmm/arch/arm64/layout.h"

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The most a sane kernel occupies; anything larger is a corrupt header, not a kernel. */
#define IMAGE_SIZE_MAX (1ULL << 32)

int arm64_image_parse(const uint8_t *buf, size_t len, struct arm64_image *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!buf || len < ARM64_IMAGE_HEADER_SIZE)
		return err_set(e, -ENOEXEC, "kernel of %zu bytes is too short for an arm64 Image", len);
	if (le32(buf + 56) != ARM64_IMAGE_MAGIC) {
		if (buf[0] == 0x1f && buf[1] == 0x8b)
			return err_set(e, -ENOEXEC,
				       "kernel is gzip-compressed: give the uncompressed arm64 Image");
		return err_set(e, -ENOEXEC,
			       "kernel is not an arm64 Image (no \"ARM\\x64\" magic at offset 56)");
	}
	uint64_t text_offset = le64(buf + 8), image_size = le64(buf + 16), flags = le64(buf + 24);
	if (image_size == 0) {
		text_offset = ARM64_IMAGE_OLD_TEXT_OFFSET;
		image_size = len;
	}
	if (flags & 1)
		return err_set(e, -ENOEXEC, "kernel is a big-endian arm64 Image");
	if (text_offset >= ARM64_KERNEL_ALIGN || text_offset % 4096)
		return err_set(e, -EINVAL, "arm64 Image: text_offset 0x%llx is not a page offset below 2 MiB",
			       (unsigned long long)text_offset);
	if (image_size > IMAGE_SIZE_MAX)
		return err_set(e, -EINVAL, "arm64 Image: image_size 0x%llx is absurd",
			       (unsigned long long)image_size);
	out->text_offset = text_offset;
	out->image_size = image_size;
	out->flags = flags;
	return 0;
}

int arm64_boot_place(uint64_t ram_base, uint64_t ram_size, const struct arm64_image *im, uint64_t kernel_len,
		     uint64_t initrd_len, struct arm64_boot_layout *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (ram_base % ARM64_KERNEL_ALIGN || ram_size % 4096 || ram_size < ARM64_FDT_MAX_SIZE ||
	    ram_base > UINT64_MAX - ram_size)
		return err_set(e, -EINVAL, "bad RAM range for arm64 boot: 0x%llx+0x%llx",
			       (unsigned long long)ram_base, (unsigned long long)ram_size);
	uint64_t ram_end = ram_base + ram_size;
	/* The device tree in the last 2 MiB (page aligned, so 8-byte aligned). */
	uint64_t fdt = ram_end - ARM64_FDT_MAX_SIZE;
	uint64_t size = im->image_size > kernel_len ? im->image_size : kernel_len;
	uint64_t room = fdt - ram_base; /* bytes below the device tree */
	if (im->text_offset >= ARM64_KERNEL_ALIGN || size > room || im->text_offset > room - size)
		return err_set(
		    e, -ENOSPC,
		    "the kernel (%llu MiB) does not fit in guest memory; give the guest more --mem",
		    (unsigned long long)((size + (1 << 20) - 1) >> 20));
	out->kernel = ram_base + im->text_offset;
	out->kernel_end = out->kernel + size;
	out->fdt = fdt;
	if (initrd_len) {
		/* Page aligned, just below the device tree, above the kernel. */
		if (initrd_len > fdt - out->kernel_end || ((fdt - initrd_len) & ~0xfffULL) < out->kernel_end)
			return err_set(
			    e, -ENOSPC,
			    "initrd (%llu MiB) does not fit in guest memory next to the kernel; give "
			    "the guest more --mem",
			    (unsigned long long)((initrd_len + (1 << 20) - 1) >> 20));
		out->initrd = (fdt - initrd_len) & ~0xfffULL;
	}
	return 0;
}
