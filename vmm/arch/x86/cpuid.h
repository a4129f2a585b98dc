/* SPDX-License-Identifier: MIT */
/*
 * Per-vCPU CPUID: KVM's supported table adjusted for one vCPU of an
 * ncpus-core, single-socket machine (APIC ids, topology leaves, hypervisor bit).
 */
#ifndef KVMINI_VMM_BOOT_CPUID_H
#define KVMINI_VMM_BOOT_CPUID_H

#include <linux/kvm.h>

#include "common/err.h"

struct vm;

/* Edits ents[0..nent) in place for vCPU index (its APIC id) out of ncpus. */
void cpuid_setup_vcpu(struct kvm_cpuid_entry2 *ents, unsigned nent, unsigned index, unsigned ncpus);
/* KVM_GET_SUPPORTED_CPUID into a freshly allocated struct (caller frees). */
int kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct err *e);
/*
 * The CPUID table vCPU index gets (KVM_SET_CPUID2), built without asking KVM:
 * any vCPU ioctl from another thread waits until that vCPU leaves KVM_RUN,
 * which an idle one may not do for minutes. *out is malloc'd.
 */
int x86_vcpu_cpuid_table(const struct vm *vm, unsigned index, struct kvm_cpuid2 **out, struct err *e);

#endif
