/* SPDX-License-Identifier: MIT */
/*
 * Puts a kernel, its initrd, command line and the firmware tables into guest
 * memory and says where the boot CPU starts. Picks the protocol by format:
 * bzImage (64-bit boot protocol) or ELF vmlinux (PVH).
 */
#ifndef KVMINI_VMM_BOOT_LOADER_H
#define KVMINI_VMM_BOOT_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "vmm/arch/x86/x86_cpu.h"
#include "vmm/memory.h"

struct boot_images {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* NULL when there is none */
	size_t initrd_len;
	const char *cmdline;
	unsigned ncpus;
	uint64_t pci_mem64_base, pci_mem64_size; /* the 64-bit PCI window ACPI offers the guest */
};

/* Returns 0 or a negative errno with a message naming the problem. */
int boot_load(const struct guest_mem *m, const struct boot_images *im, struct boot_entry *entry,
	      struct err *e);

#endif
