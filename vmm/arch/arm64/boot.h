/* SPDX-License-Identifier: MIT */
/*
 * The arm64 Linux boot protocol (Documentation/arch/arm64/booting.rst), as
 * pure functions that unit tests feed bytes to: the Image header, and where
 * the kernel, the initrd and the device tree go in guest RAM.
 */
#ifndef KVMINI_VMM_ARCH_ARM64_BOOT_H
#define KVMINI_VMM_ARCH_ARM64_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ARM64_IMAGE_HEADER_SIZE 64
#define ARM64_IMAGE_MAGIC	0x644d5241u /* "ARM\x64", little-endian, at offset 56 */
/* text_offset when the header's image_size is 0 (kernels before 3.17). */
#define ARM64_IMAGE_OLD_TEXT_OFFSET 0x80000ULL
#define ARM64_KERNEL_ALIGN	    0x200000ULL /* the Image goes at a 2 MiB aligned base + text_offset */

struct arm64_image {
	uint64_t text_offset; /* from the 2 MiB aligned base */
	uint64_t
	    image_size; /* bytes the kernel occupies from its load address, BSS included (>= file size) */
	uint64_t flags; /* bit 0: big-endian kernel; 2:1 page size; 3: placement anywhere */
};

/*
 * Checks and reads the 64-byte header of an uncompressed arm64 Image of len
 * bytes: 0, or -ENOEXEC (too short, bad magic, a big-endian kernel, a
 * compressed file), -EINVAL (text_offset or image_size absurd) with a
 * message. An image_size of 0 (old kernels) means text_offset 0x80000 and
 * the file's length.
 */
int arm64_image_parse(const uint8_t *buf, size_t len, struct arm64_image *out, struct err *e);

struct arm64_boot_layout {
	uint64_t kernel; /* where the Image is copied and entered: base + text_offset */
	uint64_t kernel_end;
	uint64_t initrd; /* 0 when there is none */
	uint64_t fdt;	 /* the device tree: ARM64_FDT_MAX_SIZE bytes, 8-byte aligned, at the top of RAM */
};

/*
 * Places a kernel (im, file of kernel_len bytes), an initrd of initrd_len
 * bytes (0: none) and the device tree in RAM [ram_base, ram_base +
 * ram_size): the kernel at the first 2 MiB boundary of RAM + text_offset,
 * the device tree in the last ARM64_FDT_MAX_SIZE bytes, the initrd page
 * aligned just below it. 0, or -ENOSPC / -EINVAL with a message when they
 * do not fit (no sum can overflow, whatever the inputs).
 */
int arm64_boot_place(uint64_t ram_base, uint64_t ram_size, const struct arm64_image *im, uint64_t kernel_len,
		     uint64_t initrd_len, struct arm64_boot_layout *out, struct err *e);

#endif
