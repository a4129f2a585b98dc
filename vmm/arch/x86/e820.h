/* SPDX-License-Identifier: MIT */
/* The guest's E820 memory map, shared by the bzImage (boot_params) and PVH (memmap) paths. */
#ifndef KVMINI_VMM_BOOT_E820_H
#define KVMINI_VMM_BOOT_E820_H

#include <stddef.h>
#include <stdint.h>

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/*
 * Fills out with the map for ram_size bytes of RAM: low RAM up to the EBDA,
 * the legacy BIOS/ACPI area reserved, RAM from 1 MiB to the hole, the hole's
 * fixed MMIO (IOAPIC, LAPIC) reserved, and RAM above 4 GiB. Returns the number
 * of entries, or 0 when max is too small.
 */
size_t e820_build(uint64_t ram_size, struct e820_entry *out, size_t max);

#endif
