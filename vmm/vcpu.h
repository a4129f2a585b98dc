/* SPDX-License-Identifier: MIT */
/* vCPU threads: KVM_RUN and exit dispatch. */
#ifndef KVMINI_VMM_VCPU_H
#define KVMINI_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct vm;

/* Why KVM_RUN returned, for the counters. */
enum vcpu_exit_kind {
	VCPU_EXIT_IO,		/* KVM_EXIT_IO: port I/O */
	VCPU_EXIT_MMIO,		/* KVM_EXIT_MMIO */
	VCPU_EXIT_INTR,		/* KVM_EXIT_INTR returned as an exit (KVM mostly fails with EINTR: KICK) */
	VCPU_EXIT_KICK,		/* KVM_RUN failed with EINTR/EAGAIN: a signal (the kick) or immediate_exit */
	VCPU_EXIT_HLT,		/* KVM_EXIT_HLT */
	VCPU_EXIT_SHUTDOWN,	/* KVM_EXIT_SHUTDOWN: a triple fault */
	VCPU_EXIT_SYSTEM_EVENT, /* KVM_EXIT_SYSTEM_EVENT */
	VCPU_EXIT_INTERNAL_ERROR, /* KVM_EXIT_INTERNAL_ERROR */
	VCPU_EXIT_FAIL_ENTRY,	  /* KVM_EXIT_FAIL_ENTRY */
	VCPU_EXIT_OTHER,	  /* any other exit reason */
	VCPU_EXIT_KINDS
};

/*
 * One vCPU's counters, kept by the caller across guest reboots: KVM_RUN
 * returns by kind, added by the vCPU thread with relaxed atomics, read from
 * any thread with relaxed atomic loads.
 */
struct vcpu_stats {
	uint64_t exits[VCPU_EXIT_KINDS];
};

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	pid_t tid; /* atomic: the thread's, once it runs (auto-converge's timers aim at it) */
	uint64_t throttle_ran_from; /* vCPU thread only: when its last throttle sleep ended */
};

/* Creates vCPU index, maps its run area and sets it up (arch_vcpu_init: the boot CPU gets the entry state).
 */
int vcpu_init(struct vcpu *c, struct vm *vm, unsigned index, struct err *e);
int vcpu_start(struct vcpu *c, struct err *e);
/* The signal that kicks a vCPU out of KVM_RUN (its handler does nothing). */
int vcpu_kick_signal(void);
/* Makes KVM_RUN return promptly (any thread). */
void vcpu_kick(struct vcpu *c);
void vcpu_join(struct vcpu *c);
void vcpu_destroy(struct vcpu *c);

#endif
