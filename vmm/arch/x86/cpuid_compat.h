/* SPDX-License-Identifier: MIT */
/*
 * Can this host offer a migrated guest the CPU it had? The source's guest
 * CPUID (vCPU 0's, as kvmini set it) against what this kvmini gives its own
 * guest (KVM_GET_SUPPORTED_CPUID adjusted by vmm/arch/x86/cpuid.c): the vendor
 * must be the same and every feature flag the guest sees must be offered
 * here, except those KVM or kvmini set on their own (a table in the .c).
 * Pure: unit-tested without KVM.
 */
#ifndef KVMINI_VMM_MIGRATION_CPUID_COMPAT_H
#define KVMINI_VMM_MIGRATION_CPUID_COMPAT_H

#include <linux/kvm.h>

#include "common/err.h"

/*
 * 0, or -EINVAL with one line naming the first difference, e.g. "CPUID 0x7.0
 * EBX bit 5 (avx2): the source's guest uses it, this host's KVM does not
 * offer it".
 */
int cpuid_compat_check(const struct kvm_cpuid_entry2 *guest, unsigned nguest,
		       const struct kvm_cpuid_entry2 *host, unsigned nhost, struct err *e);

#endif
