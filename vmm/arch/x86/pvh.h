/* SPDX-License-Identifier: MIT */
/*
 * Booting an ELF vmlinux through its PVH entry: the Xen PVH boot ABI that
 * Linux implements with CONFIG_PVH. The kernel advertises a 32-bit entry point
 * in an ELF note (XEN_ELFNOTE_PHYS32_ENTRY); it is entered in 32-bit flat
 * protected mode, paging off, with EBX holding the guest-physical address of a
 * struct hvm_start_info. Layouts follow Xen's public
 * arch-x86/hvm/start_info.h.
 */
#ifndef KVMINI_VMM_BOOT_PVH_H
#define KVMINI_VMM_BOOT_PVH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "vmm/memory.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC_VALUE	 0x336ec578u
#define HVM_START_INFO_VERSION	 1 /* memmap_paddr/memmap_entries are valid */

/* Memory map entry types (the E820 values). */
#define HVM_MEMMAP_TYPE_RAM	 1
#define HVM_MEMMAP_TYPE_RESERVED 2

struct hvm_start_info {
	uint32_t magic; /* HVM_START_MAGIC_VALUE */
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr; /* struct hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr; /* NUL-terminated */
	uint64_t rsdp_paddr;	/* 0: the guest scans for it */
	uint64_t memmap_paddr;	/* struct hvm_memmap_table_entry[memmap_entries] (version >= 1) */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

/* True when img looks like an ELF64 little-endian x86-64 executable (ET_EXEC). */
bool pvh_is_elf(const uint8_t *img, size_t len);

/*
 * Loads the PT_LOAD segments of an ELF vmlinux at their p_paddr (file bytes,
 * then zeros up to p_memsz) and finds the XEN_ELFNOTE_PHYS32_ENTRY note (name
 * "Xen") in PT_NOTE segments, or in SHT_NOTE sections when no segment has it.
 * Every offset, size and count in img is untrusted. Nothing is written to guest
 * memory unless the whole image checks out. Returns 0 with *entry (the 32-bit
 * entry point) and *kernel_end (highest loaded address + 1) set; -EINVAL for a
 * malformed or truncated ELF; -ENOEXEC when there is no PVH note; -ENOSPC when
 * a segment does not fit in guest RAM (or overlaps the boot area below 1 MiB).
 */
int pvh_load_kernel(const uint8_t *img, size_t len, const struct guest_mem *mem, uint32_t *entry,
		    uint64_t *kernel_end, struct err *e);

/*
 * Writes struct hvm_start_info at LAYOUT_PVH_INFO_ADDR, followed by its module
 * list (one module, the initrd, when initrd_size != 0) and the memory map
 * (from e820_build), all within that page. cmdline_gpa and rsdp_gpa are passed
 * through (0 means none). Returns 0 with *start_info_gpa set to
 * LAYOUT_PVH_INFO_ADDR (EBX at entry), or a negative errno.
 */
int pvh_write_start_info(const struct guest_mem *mem, uint64_t cmdline_gpa, uint64_t initrd_gpa,
			 uint64_t initrd_size, uint64_t rsdp_gpa, uint64_t *start_info_gpa, struct err *e);

#endif
