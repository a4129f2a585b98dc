/* SPDX-License-Identifier: MIT */
/* PL031 RTC (pl031.h): vCPU threads, under the device's mutex. */
#include "devices/pl031.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pl031 {
	pthread_mutex_t lock;
	time_t (*now)(void *opaque);
	void *opaque;
	int64_t offset; /* guest time - host time, seconds (RTCLR writes) */
	uint32_t mr, imsc;
};

/* PeriphID0..3 (part 0x031, designer 0x41 "ARM", revision 1) and PCellID0..3. */
static const uint8_t pl031_ids[8] = {0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

static time_t host_now(void *opaque)
{
	(void)opaque;
	return time(NULL);
}

struct pl031 *pl031_create(time_t (*now)(void *opaque), void *opaque)
{
	struct pl031 *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	r->now = now ? now : host_now;
	r->opaque = opaque;
	return r;
}

void pl031_destroy(struct pl031 *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static uint32_t reg_read(struct pl031 *r, uint64_t off)
{
	switch (off) {
	case PL031_DR:
		/* The counter is 32 bits wide: it wraps in 2106, as the hardware's does. */
		return (uint32_t)((int64_t)r->now(r->opaque) + r->offset);
	case PL031_MR:
		return r->mr;
	case PL031_LR:
		return (uint32_t)((int64_t)r->now(r->opaque) + r->offset);
	case PL031_CR:
		return 1;
	case PL031_IMSC:
		return r->imsc;
	default:
		if (off >= PL031_PERIPH_ID && off < PL031_SIZE)
			return pl031_ids[(off - PL031_PERIPH_ID) / 4];
		return 0; /* RIS, MIS (the alarm never fires), ICR and the reserved space */
	}
}

static void reg_write(struct pl031 *r, uint64_t off, uint32_t v)
{
	switch (off) {
	case PL031_MR:
		r->mr = v;
		break;
	case PL031_LR:
		r->offset = (int64_t)v - (int64_t)r->now(r->opaque);
		break;
	case PL031_IMSC:
		r->imsc = v & 1;
		break;
	default:
		break; /* DR and the IDs are read-only; CR cannot stop the clock; ICR: nothing pending */
	}
}

void pl031_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pl031 *r = opaque;
	if (len != 4 || off >= PL031_SIZE || off % 4) {
		if (!is_write)
			memset(data, 0, len > 8 ? 8 : len);
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (is_write) {
		uint32_t v = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			     (uint32_t)data[3] << 24;
		reg_write(r, off, v);
	} else {
		uint32_t v = reg_read(r, off);
		for (int i = 0; i < 4; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
	pthread_mutex_unlock(&r->lock);
}
