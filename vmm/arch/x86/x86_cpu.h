/* SPDX-License-Identifier: MIT */
/*
 * The boot CPU's entry state, as pure functions over KVM's register structs
 * and guest memory, so unit tests can check every field:
 *  - Linux 64-bit boot protocol: long mode, identity-mapped first 4 GiB,
 *    __BOOT_CS = 0x10, __BOOT_DS = 0x18, RSI = boot_params.
 *  - PVH: 32-bit flat protected mode, paging off, EBX = hvm_start_info.
 */
#ifndef KVMINI_VMM_BOOT_X86_CPU_H
#define KVMINI_VMM_BOOT_X86_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"

#define BOOT_CS_SELECTOR 0x10
#define BOOT_DS_SELECTOR 0x18

enum boot_mode {
	BOOT_MODE_LINUX64 = 1, /* bzImage 64-bit entry */
	BOOT_MODE_PVH32 = 2,   /* ELF vmlinux PVH entry */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t rip;
	uint64_t info_gpa; /* boot_params (RSI) or hvm_start_info (EBX) */
};

/* Writes the boot GDT and, for long mode, identity page tables (2 MiB pages) for 4 GiB. */
int x86_write_boot_tables(const struct guest_mem *m, enum boot_mode mode);
void x86_boot_sregs(struct kvm_sregs *s, enum boot_mode mode);
void x86_boot_regs(struct kvm_regs *r, const struct boot_entry *entry);
void x86_boot_fpu(struct kvm_fpu *f);
/* Fills the MSR values every vCPU starts with; returns the number of entries (<= max). */
unsigned x86_boot_msrs(struct kvm_msr_entry *out, unsigned max);
/* LINT0 as ExtINT and LINT1 as NMI in a KVM_GET_LAPIC image (virtual-wire mode). */
void x86_lapic_virtual_wire(struct kvm_lapic_state *lapic);

#endif
