/* SPDX-License-Identifier: MIT */
/*
 * Auto-converge. A vCPU deep in guest code never comes back to kvmini on
 * its own (the in-kernel LAPIC takes its timer interrupts), so a POSIX timer
 * per vCPU sends it the kick signal every slice: KVM_RUN returns EINTR, and
 * the vCPU, at the top of its loop, sleeps its share (throttle_vcpu). The
 * timers are the migration thread's; the sleeping is the vCPU's own, so a
 * pause or a stop, which kick too, are not held up by more than a slice.
 */
#include "vmm/migration/throttle.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

unsigned throttle_next_pct(unsigned cur)
{
	if (cur == 0)
		return THROTTLE_FIRST_PCT;
	return cur + THROTTLE_STEP_PCT < THROTTLE_MAX_PCT ? cur + THROTTLE_STEP_PCT : THROTTLE_MAX_PCT;
}

uint64_t throttle_sleep_ns(unsigned pct)
{
	if (pct == 0)
		return 0;
	if (pct > THROTTLE_MAX_PCT)
		pct = THROTTLE_MAX_PCT;
	return THROTTLE_SLICE_NS * pct / (100 - pct);
}

static int start_timers(struct throttle *t, struct vm *vm, struct err *e)
{
	t->timers = calloc(vm->ncpus, sizeof(*t->timers));
	if (!t->timers)
		return err_set(e, -ENOMEM, "out of memory");
	t->vm = vm;
	struct itimerspec every = {
	    .it_interval = {0, (long)THROTTLE_SLICE_NS},
	    .it_value = {0, (long)THROTTLE_SLICE_NS},
	};
	for (unsigned i = 0; i < vm->ncpus; i++) {
		pid_t tid = __atomic_load_n(&vm->vcpus[i].tid, __ATOMIC_ACQUIRE);
		if (!tid)
			continue; /* not started: nothing to throttle */
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = vcpu_kick_signal();
		sev._sigev_un._tid = tid;
		timer_t tm;
		if (timer_create(CLOCK_MONOTONIC, &sev, &tm))
			return err_set(e, -errno, "auto-converge: cannot create vCPU %u's timer: %s", i,
				       strerror(errno));
		t->timers[t->ntimers++] = tm;
		if (timer_settime(tm, 0, &every, NULL))
			return err_set(e, -errno, "auto-converge: cannot start vCPU %u's timer: %s", i,
				       strerror(errno));
	}
	return 0;
}

int throttle_set(struct throttle *t, struct vm *vm, unsigned pct, struct err *e)
{
	if (pct == 0 || pct > THROTTLE_MAX_PCT)
		return err_set(e, -EINVAL, "auto-converge: a throttle of %u %% is out of range", pct);
	if (!t->timers) {
		int r = start_timers(t, vm, e);
		if (r) {
			throttle_stop(t);
			return r;
		}
	}
	t->pct = pct;
	__atomic_store_n(&vm->throttle_pct, pct, __ATOMIC_RELEASE);
	return 0;
}

void throttle_stop(struct throttle *t)
{
	if (t->vm)
		__atomic_store_n(&t->vm->throttle_pct, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < t->ntimers; i++)
		timer_delete(t->timers[i]);
	free(t->timers);
	*t = (struct throttle){0};
}

static bool keep_sleeping(struct vm *vm)
{
	return __atomic_load_n(&vm->throttle_pct, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) == VM_STOP_NONE;
}

void throttle_vcpu(struct vcpu *c)
{
	unsigned pct = __atomic_load_n(&c->vm->throttle_pct, __ATOMIC_ACQUIRE);
	if (!pct)
		return;
	uint64_t now = now_ns();
	/* The timer's kicks come every slice; one that lands soon after a sleep is not a slice run. */
	if (c->throttle_ran_from && now - c->throttle_ran_from < THROTTLE_SLICE_NS / 2)
		return;
	uint64_t end = now + throttle_sleep_ns(pct);
	/* In steps of at most a slice, so the end of the throttle is seen promptly too. */
	while (now < end && keep_sleeping(c->vm)) {
		uint64_t until = end - now > THROTTLE_SLICE_NS ? now + THROTTLE_SLICE_NS : end;
		struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* EINTR: a kick */
		now = now_ns();
	}
	c->throttle_ran_from = now;
}
