/* SPDX-License-Identifier: MIT */
/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst) for a bzImage
 * entered at its 64-bit entry point: the protected-mode kernel is copied to
 * 1 MiB and a zero page (struct boot_params) is built from its setup header.
 */
#ifndef KVMINI_VMM_BOOT_BZIMAGE_H
#define KVMINI_VMM_BOOT_BZIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "vmm/arch/x86/x86_cpu.h"
#include "vmm/memory.h"

/* Byte offsets in struct boot_params (the zero page), from arch/x86/include/uapi/asm/bootparam.h. */
#define BP_ACPI_RSDP_ADDR  0x070
#define BP_E820_ENTRIES	   0x1e8
#define BP_HDR		   0x1f1 /* struct setup_header starts here */
#define BP_SETUP_SECTS	   0x1f1
#define BP_VID_MODE	   0x1fa
#define BP_BOOT_FLAG	   0x1fe
#define BP_HEADER_MAGIC	   0x202 /* "HdrS" */
#define BP_VERSION	   0x206
#define BP_TYPE_OF_LOADER  0x210
#define BP_LOADFLAGS	   0x211
#define BP_CODE32_START	   0x214
#define BP_RAMDISK_IMAGE   0x218
#define BP_RAMDISK_SIZE	   0x21c
#define BP_HEAP_END_PTR	   0x224
#define BP_CMD_LINE_PTR	   0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_XLOADFLAGS	   0x236
#define BP_CMDLINE_SIZE	   0x238
#define BP_INIT_SIZE	   0x260
#define BP_E820_TABLE	   0x2d0
#define BP_E820_MAX	   128

#define BZ_LOADFLAG_LOADED_HIGH	 0x01
#define BZ_LOADFLAG_CAN_USE_HEAP 0x80
#define BZ_XLF_KERNEL_64	 0x01
#define BZ_MIN_VERSION		 0x020c /* 2.12: xloadflags, so the 64-bit entry can be checked */
#define BZ_KERNEL_LOAD_ADDR	 0x100000ULL
#define BZ_ENTRY64_OFFSET	 0x200

struct bzimage_info {
	uint16_t version;
	uint32_t setup_size; /* bytes of real-mode setup before the protected-mode kernel */
	uint32_t init_size;  /* memory the kernel needs from its load address while decompressing */
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* longest command line, without the NUL */
};

/* True when img carries the boot protocol's magic numbers. */
bool bzimage_is(const uint8_t *img, size_t len);
/* Validates the header (version, 64-bit entry, sizes). Returns 0 or -ENOEXEC/-EINVAL with a message. */
int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *info, struct err *e);

struct bzimage_boot {
	uint64_t cmdline_gpa;
	uint32_t cmdline_len; /* without the NUL */
	uint64_t initrd_gpa;
	uint64_t initrd_size;
	uint64_t rsdp_gpa;
};

/*
 * Copies the kernel to BZ_KERNEL_LOAD_ADDR and writes boot_params at
 * LAYOUT_ZERO_PAGE_ADDR (setup header from the image, E820 map, command line,
 * initrd and RSDP pointers). The caller has placed the command line and initrd.
 */
int bzimage_load(const uint8_t *img, size_t len, const struct guest_mem *m, const struct bzimage_boot *b,
		 struct boot_entry *entry, struct err *e);

#endif
