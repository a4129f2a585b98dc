/* SPDX-License-Identifier: MIT */
/*
 * vmm/migration/throttle.c (auto-converge): the shares and sleeps, a vCPU
 * sleeping its share once per slice and not while a pause or stop is asked
 * for, and the per-vCPU timers that kick it (aimed here at the test's own
 * thread) starting with throttle_set() and ending with throttle_stop().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "vmm/migration/throttle.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void shares_grow_to_the_cap(void **state)
{
	(void)state;
	assert_int_equal(throttle_next_pct(0), 20);
	assert_int_equal(throttle_next_pct(20), 30);
	assert_int_equal(throttle_next_pct(80), 90);
	assert_int_equal(throttle_next_pct(90), 99);
	assert_int_equal(throttle_next_pct(99), 99);
	/* Running one slice (10 ms) for every sleep: pct % of the time asleep. */
	assert_int_equal(throttle_sleep_ns(0), 0);
	assert_int_equal(throttle_sleep_ns(20), 2500000);
	assert_int_equal(throttle_sleep_ns(50), 10000000);
	assert_int_equal(throttle_sleep_ns(99), 990000000);
	assert_int_equal(throttle_sleep_ns(100), 990000000);
}

static void vcpu_sleeps_its_share_once_per_slice(void **state)
{
	(void)state;
	struct vm vm;
	memset(&vm, 0, sizeof(vm));
	struct vcpu c = {.vm = &vm};

	uint64_t t = now_ns();
	throttle_vcpu(&c); /* not throttled: returns at once */
	assert_true(now_ns() - t < 5000000);

	vm.throttle_pct = 50;
	t = now_ns();
	throttle_vcpu(&c);
	uint64_t slept = now_ns() - t;
	assert_true(slept >= throttle_sleep_ns(50));
	/* Back again at once (a kick that came during the sleep): no second sleep. */
	t = now_ns();
	throttle_vcpu(&c);
	assert_true(now_ns() - t < 2000000);

	/* A pause or a stop is not held up by the throttle. */
	vm.throttle_pct = 99;
	c.throttle_ran_from = 0;
	vm.pause_req = true;
	t = now_ns();
	throttle_vcpu(&c);
	assert_true(now_ns() - t < 50000000);
	vm.pause_req = false;
	vm.stop_reason = VM_STOP_POWEROFF;
	c.throttle_ran_from = 0;
	t = now_ns();
	throttle_vcpu(&c);
	assert_true(now_ns() - t < 50000000);
}

static volatile sig_atomic_t kicks;
static void on_kick(int sig)
{
	(void)sig;
	kicks++;
}

static void timers_kick_each_vcpu_until_stopped(void **state)
{
	(void)state;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(vcpu_kick_signal(), &sa, NULL), 0);

	struct vm vm;
	memset(&vm, 0, sizeof(vm));
	struct vcpu cpus[2];
	memset(cpus, 0, sizeof(cpus));
	cpus[0].vm = &vm;
	cpus[0].tid = gettid(); /* this thread plays vCPU 0 */
	cpus[1].vm = &vm;	/* vCPU 1 never started (tid 0): no timer */
	vm.vcpus = cpus;
	vm.ncpus = 2;

	struct err e = {{0}};
	struct throttle th = {0};
	assert_int_equal(throttle_set(&th, &vm, 0, &e), -EINVAL);
	assert_int_equal(throttle_set(&th, &vm, 100, &e), -EINVAL);
	assert_int_equal(vm.throttle_pct, 0);

	kicks = 0;
	assert_int_equal(throttle_set(&th, &vm, 20, &e), 0);
	assert_int_equal(th.ntimers, 1);
	assert_int_equal(vm.throttle_pct, 20);
	assert_int_equal(throttle_set(&th, &vm, 30, &e), 0);
	assert_int_equal(th.ntimers, 1); /* raising the share keeps the timers */
	assert_int_equal(vm.throttle_pct, 30);
	uint64_t end = now_ns() + 100000000;
	while (now_ns() < end) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	int seen = kicks;
	assert_true(seen >= 5); /* every 10 ms for 100 ms */

	throttle_stop(&th);
	assert_int_equal(vm.throttle_pct, 0);
	assert_null(th.timers);
	seen = kicks;
	struct timespec ts = {0, 50000000};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	assert_int_equal(kicks, seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(shares_grow_to_the_cap),
	    cmocka_unit_test(vcpu_sleeps_its_share_once_per_slice),
	    cmocka_unit_test(timers_kick_each_vcpu_until_stopped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
