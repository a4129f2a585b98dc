/* SPDX-License-Identifier: MIT */
/*
 * Per-vCPU CPUID: KVM's supported table adjusted for one vCPU of an
 * ncpus-core, single-socket machine (APIC ids, topology leaves, hypervisor bit).
 */
#ifndef KVMINI_VMM_BOOT_CPUID_H
#define KVMINI_VMM_BOOT_CPUID_H

#include <linux/kvm.h>

/* Edits ents[0..nent) in place for vCPU index (its APIC id) out of ncpus. */
void cpuid_setup_vcpu(struct kvm_cpuid_entry2 *ents, unsigned nent, unsigned index, unsigned ncpus);

#endif
