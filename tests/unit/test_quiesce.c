/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the pause gate (common/quiesce.c): closing waits for the
 * passes under way, including work they handed on; a closed gate keeps new
 * passes out until it opens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "common/quiesce.h"

struct ctx {
	struct quiesce q;
	int stage; /* atomic */
};

static int get(struct ctx *c)
{
	return __atomic_load_n(&c->stage, __ATOMIC_ACQUIRE);
}
static void set(struct ctx *c, int v)
{
	__atomic_store_n(&c->stage, v, __ATOMIC_RELEASE);
}

/* A pass that lasts until the main thread lets it end. */
static void *long_pass(void *arg)
{
	struct ctx *c = arg;
	quiesce_enter(&c->q);
	set(c, 1);
	while (get(c) != 2)
		usleep(1000);
	quiesce_exit(&c->q);
	return NULL;
}

static void *closer(void *arg)
{
	struct ctx *c = arg;
	quiesce_close(&c->q);
	set(c, 3);
	return NULL;
}

static void test_close_waits_for_pass(void **state)
{
	(void)state;
	struct ctx c = {.stage = 0};
	quiesce_init(&c.q);
	pthread_t p, cl;
	pthread_create(&p, NULL, long_pass, &c);
	while (get(&c) != 1)
		usleep(1000);
	pthread_create(&cl, NULL, closer, &c);
	usleep(50000);
	assert_int_equal(get(&c), 1); /* the closer still waits */
	set(&c, 2);
	pthread_join(cl, NULL);
	assert_int_equal(get(&c), 3);
	pthread_join(p, NULL);
	quiesce_open(&c.q);
	quiesce_destroy(&c.q);
}

static void *late_pass(void *arg)
{
	struct ctx *c = arg;
	quiesce_enter(&c->q);
	set(c, 5);
	quiesce_exit(&c->q);
	return NULL;
}

static void test_closed_gate_keeps_passes_out(void **state)
{
	(void)state;
	struct ctx c = {.stage = 4};
	quiesce_init(&c.q);
	quiesce_close(&c.q);
	pthread_t p;
	pthread_create(&p, NULL, late_pass, &c);
	usleep(50000);
	assert_int_equal(get(&c), 4);
	quiesce_open(&c.q);
	pthread_join(p, NULL);
	assert_int_equal(get(&c), 5);
	quiesce_destroy(&c.q);
}

static void *finish_held(void *arg)
{
	struct ctx *c = arg;
	while (get(c) != 7)
		usleep(1000);
	quiesce_exit(&c->q); /* the held work completes */
	return NULL;
}

static void test_held_work_counts(void **state)
{
	(void)state;
	struct ctx c = {.stage = 6};
	quiesce_init(&c.q);
	quiesce_enter(&c.q);
	quiesce_hold(&c.q); /* handed to another thread */
	quiesce_exit(&c.q);
	pthread_t w, cl;
	pthread_create(&w, NULL, finish_held, &c);
	pthread_create(&cl, NULL, closer, &c);
	usleep(50000);
	assert_int_equal(get(&c), 6); /* held work still out: the closer waits */
	set(&c, 7);
	pthread_join(cl, NULL);
	assert_int_equal(get(&c), 3);
	pthread_join(w, NULL);
	quiesce_destroy(&c.q);
}

static void test_null_gate(void **state)
{
	(void)state;
	quiesce_enter(NULL);
	quiesce_hold(NULL);
	quiesce_exit(NULL);
	quiesce_exit(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_waits_for_pass),
	    cmocka_unit_test(test_closed_gate_keeps_passes_out),
	    cmocka_unit_test(test_held_work_counts),
	    cmocka_unit_test(test_null_gate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
