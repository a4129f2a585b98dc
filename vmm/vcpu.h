/* SPDX-License-Identifier: MIT */
/* vCPU threads: KVM_RUN and exit dispatch. */
#ifndef KVMINI_VMM_VCPU_H
#define KVMINI_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "common/err.h"
#include "vmm/boot/x86_cpu.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

/* Creates vCPU index and sets CPUID, MSRs, FPU, LAPIC; the boot CPU also gets the entry state. */
int vcpu_init(struct vcpu *c, struct vm *vm, unsigned index, const struct boot_entry *entry, struct err *e);
int vcpu_start(struct vcpu *c, struct err *e);
/* Makes KVM_RUN return promptly (any thread). */
void vcpu_kick(struct vcpu *c);
void vcpu_join(struct vcpu *c);
void vcpu_destroy(struct vcpu *c);

#endif
