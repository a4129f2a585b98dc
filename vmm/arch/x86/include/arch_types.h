/* SPDX-License-Identifier: MIT */
/*
 * x86's part of the shared VMM types (vmm/arch/arch.h): found as
 * "arch_types.h" because the Makefile puts this directory on the include
 * path for ARCH=x86.
 */
#ifndef KVMINI_VMM_ARCH_X86_ARCH_TYPES_H
#define KVMINI_VMM_ARCH_X86_ARCH_TYPES_H

#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/arch/x86/x86_cpu.h"

struct i8042;
struct rtc;
struct acpi_pm;
struct exit_dev;

/* struct vm's x86 part: the PC platform devices, the CPUID table, the boot CPU's entry. */
struct arch_vm {
	struct i8042 *i8042;
	struct rtc *rtc;
	struct acpi_pm *pm;
	struct exit_dev *exit_dev;
	struct kvm_cpuid2 *cpuid; /* KVM's supported table, copied and adjusted per vCPU */
	struct boot_entry entry;
};

/*
 * The CPU part of a saved machine's description (the CONFIG record): vCPU
 * 0's CPUID as kvmini sets it (x86_vcpu_cpuid_table): on the source what its
 * guest sees, on a destination what this kvmini gives a guest it boots.
 */
#define MACHINE_MAX_CPUID 256 /* entries of the guest's CPUID table in CONFIG */
struct arch_cpu_desc {
	uint32_t ncpuid;
	struct kvm_cpuid_entry2 cpuid[MACHINE_MAX_CPUID];
};

/* The ioctls a vCPU thread makes beyond the shared ones (seccomp): registers for an error report. */
#define ARCH_GUEST_IOCTLS KVM_GET_REGS, KVM_GET_SREGS

#endif
