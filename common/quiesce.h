/* SPDX-License-Identifier: MIT */
/*
 * A gate that device threads pass through around each pass over guest
 * memory, so that pausing a VM can wait until no device is touching it and
 * keep them out until it resumes. Cheap when open: one uncontended mutex.
 */
#ifndef KVMINI_COMMON_QUIESCE_H
#define KVMINI_COMMON_QUIESCE_H

#include <pthread.h>
#include <stdbool.h>

struct quiesce {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closed;
	unsigned active; /* passes (and work handed on from them) under way */
};

void quiesce_init(struct quiesce *q);
void quiesce_destroy(struct quiesce *q);
/* Starts a pass: waits while the gate is closed. q may be NULL (no gate: always open). */
void quiesce_enter(struct quiesce *q);
/* Work handed from a pass to another thread: counts as one more pass; never waits. */
void quiesce_hold(struct quiesce *q);
/* Ends a pass (or held work). */
void quiesce_exit(struct quiesce *q);
/* Closes the gate and waits until every pass has ended. */
void quiesce_close(struct quiesce *q);
/* Opens the gate: waiting passes go on. */
void quiesce_open(struct quiesce *q);

#endif
