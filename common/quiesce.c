/* SPDX-License-Identifier: MIT */
#include "common/quiesce.h"

void quiesce_init(struct quiesce *q)
{
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->closed = false;
	q->active = 0;
}

void quiesce_destroy(struct quiesce *q)
{
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

void quiesce_enter(struct quiesce *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	while (q->closed)
		pthread_cond_wait(&q->cond, &q->lock);
	q->active++;
	pthread_mutex_unlock(&q->lock);
}

void quiesce_hold(struct quiesce *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->active++;
	pthread_mutex_unlock(&q->lock);
}

void quiesce_exit(struct quiesce *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (--q->active == 0)
		pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void quiesce_close(struct quiesce *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	while (q->active)
		pthread_cond_wait(&q->cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void quiesce_open(struct quiesce *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = false;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}
