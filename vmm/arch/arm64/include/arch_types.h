/* SPDX-License-Identifier: MIT */
/*
 * arm64's part of the shared VMM types (vmm/arch/arch.h): found as
 * "arch_types.h" because the Makefile puts this directory on the include
 * path for ARCH=arm64.
 */
#ifndef KVMINI_VMM_ARCH_ARM64_ARCH_TYPES_H
#define KVMINI_VMM_ARCH_ARM64_ARCH_TYPES_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

struct pl031;
struct pl061;

/* struct vm's arm64 part: the GIC, the RTC, the GPIO, the vCPU target and the boot CPU's entry. */
struct arch_vm {
	bool has_gic, has_its;	   /* whether gic_fd, its_fd are open (struct vm starts zeroed) */
	int gic_fd;		   /* KVM_DEV_TYPE_ARM_VGIC_V3 */
	int its_fd;		   /* KVM_DEV_TYPE_ARM_VGIC_ITS; none: PCI INTx only, no MSI */
	struct kvm_vcpu_init init; /* KVM_ARM_PREFERRED_TARGET, with the PSCI 0.2 feature */
	struct pl031 *rtc;
	struct pl061 *gpio; /* the power button's pin */
	uint64_t entry;	    /* the kernel's entry (pc) */
	uint64_t fdt;	    /* the device tree's address (x0) */
};

/* Saving arm64 machines is not supported yet (arch_migration_check() says so): nothing to describe. */
struct arch_cpu_desc {
	uint32_t unused;
};

/* The ioctls a vCPU thread makes beyond the shared ones (seccomp): registers for an error report. */
#define ARCH_GUEST_IOCTLS KVM_GET_ONE_REG

#endif
