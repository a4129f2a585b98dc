/* SPDX-License-Identifier: MIT */
/*
 * KVM's own state, saved and loaded for migration and save/restore: per vCPU
 * (CPUID, MSRs, sregs, regs, XSAVE, XCRs, debug registers, LAPIC, events, MP
 * state) and VM-wide (PIC master and slave, IOAPIC, PIT, kvmclock).
 *
 * The record starts with a version number; fixed-size KVM structs go as a
 * 32-bit length and their bytes (x86-64 ABI, little-endian), the rest as
 * counted arrays. Loading parses and checks the whole record (counts
 * bounded, sizes equal to this host's) before the first ioctl, so bad input
 * leaves the vCPU or VM untouched.
 *
 * The VM must not run while its state is saved or loaded (vCPUs parked).
 */
#ifndef KVMINI_VMM_MIGRATION_KVM_STATE_H
#define KVMINI_VMM_MIGRATION_KVM_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"

#define KVM_STATE_VERSION   1
#define KVM_STATE_MAX_CPUID 256	 /* entries of a saved CPUID table */
#define KVM_STATE_MAX_MSRS  1024 /* saved MSRs */

int vcpu_state_save(int kvm_fd, int vcpu_fd, struct sbuf *out, struct err *e);
/* Reads one vCPU record from in (which may hold more after it). */
int vcpu_state_load(int kvm_fd, int vcpu_fd, struct sreader *in, struct err *e);
/* The vCPU's CPUID table (KVM_GET_CPUID2), allocated: the caller frees it. */
int vcpu_cpuid_get(int vcpu_fd, struct kvm_cpuid2 **out, struct err *e);
int vm_kvm_state_save(int vm_fd, struct sbuf *out, struct err *e);
int vm_kvm_state_load(int vm_fd, struct sreader *in, struct err *e);

/* The parts of the above, for tests: state in memory, its encoding, and KVM. */
struct vcpu_state {
	struct kvm_cpuid2 *cpuid; /* allocated */
	struct kvm_msrs *msrs;	  /* allocated */
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_xsave *xsave; /* allocated, xsave_size bytes */
	uint32_t xsave_size;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
};

struct vm_kvm_state {
	struct kvm_irqchip chip[3]; /* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */
	struct kvm_pit_state2 pit;
	uint64_t clock; /* kvmclock, ns */
};

/* The size of this host's XSAVE area: KVM_CAP_XSAVE2's answer, at least struct kvm_xsave. */
uint32_t kvm_state_xsave_size(int kvm_fd);

int vcpu_state_get(int kvm_fd, int vcpu_fd, struct vcpu_state *s, struct err *e);
void vcpu_state_write(const struct vcpu_state *s, struct sbuf *out);
int vcpu_state_parse(struct sreader *in, uint32_t host_xsave_size, struct vcpu_state *s, struct err *e);
int vcpu_state_put(int vcpu_fd, const struct vcpu_state *s, struct err *e);
void vcpu_state_free(struct vcpu_state *s);

int vm_kvm_state_get(int vm_fd, struct vm_kvm_state *s, struct err *e);
void vm_kvm_state_write(const struct vm_kvm_state *s, struct sbuf *out);
int vm_kvm_state_parse(struct sreader *in, struct vm_kvm_state *s, struct err *e);
int vm_kvm_state_put(int vm_fd, const struct vm_kvm_state *s, struct err *e);

#endif
