/* SPDX-License-Identifier: MIT */
/*
 * Auto-converge: while a live migration does not converge, the vCPUs are
 * made to sleep a share of their time, so the guest dirties memory more
 * slowly than the link carries it (docs/MIGRATION.md). The share starts at
 * THROTTLE_FIRST_PCT and grows by THROTTLE_STEP_PCT per pass, up to
 * THROTTLE_MAX_PCT, as QEMU's auto-converge does.
 */
#ifndef KVMINI_VMM_MIGRATION_THROTTLE_H
#define KVMINI_VMM_MIGRATION_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

struct vm;
struct vcpu;

#define THROTTLE_FIRST_PCT 20
#define THROTTLE_STEP_PCT  10
#define THROTTLE_MAX_PCT   99
/* A vCPU runs this long between two sleeps (QEMU's time slice too). */
#define THROTTLE_SLICE_NS 10000000ull

/* The migration thread's handle: one timer per vCPU that makes it leave KVM_RUN every slice. */
struct throttle {
	struct vm *vm;
	timer_t *timers;
	unsigned ntimers;
	unsigned pct;
};

/* The share after cur (0: not throttled yet). */
unsigned throttle_next_pct(unsigned cur);
/* How long a vCPU throttled at pct sleeps after each slice of THROTTLE_SLICE_NS. */
uint64_t throttle_sleep_ns(unsigned pct);
/* Throttles vm's vCPUs at pct % (1..THROTTLE_MAX_PCT); the timers start at the first call. */
int throttle_set(struct throttle *t, struct vm *vm, unsigned pct, struct err *e);
/* The vCPUs run at full speed again (at once: a sleeping vCPU wakes within a slice). */
void throttle_stop(struct throttle *t);
/*
 * vCPU thread, at the top of its loop: when throttled and it has run a slice
 * since its last sleep, sleeps its share. Returns early for a pause, a stop
 * or the end of the throttle.
 */
void throttle_vcpu(struct vcpu *c);

#endif
