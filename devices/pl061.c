/* SPDX-License-Identifier: MIT */
/* PL061 GPIO controller (pl061.h): vCPU threads and the VMM's, under the device's mutex. */
#include "devices/pl061.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pl061 {
	pthread_mutex_t lock;
	struct irq_line irq;
	/* The registers (8 bits, one per pin). */
	uint8_t dir, out, is, ibe, iev, ie, ris, afsel;
	uint8_t in;    /* the input pins' levels, as the VMM drives them */
	uint8_t held;  /* pressed pins that drop once the guest has read them high */
	uint8_t level; /* the pins' levels at the last update, for edge detection */
	int irq_level; /* last level driven onto the line */
};

/* PeriphID0..3 (part 0x061, designer 0x41 "ARM", revision 0) and PCellID0..3. */
static const uint8_t pl061_ids[8] = {0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1};

struct pl061 *pl061_create(const struct irq_line *irq)
{
	struct pl061 *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	pthread_mutex_init(&g->lock, NULL);
	if (irq)
		g->irq = *irq;
	return g;
}

void pl061_destroy(struct pl061 *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/*
 * Latches edge interrupts for the pins whose level changed since the last
 * call, recomputes level interrupts and drives the line. Output pins are
 * seen at their driven value, input pins at theirs.
 */
static void update(struct pl061 *g)
{
	uint8_t lvl = (uint8_t)((g->out & g->dir) | (g->in & ~g->dir));
	uint8_t changed = lvl ^ g->level;
	uint8_t active = (uint8_t) ~(lvl ^ g->iev); /* at the level (or after the edge) IEV selects */
	g->level = lvl;
	g->ris |= (uint8_t)(~g->is & changed & (g->ibe | active));
	g->ris = (uint8_t)((g->ris & ~g->is) | (g->is & active));
	int level = (g->ris & g->ie) != 0;
	if (level != g->irq_level) {
		g->irq_level = level;
		irq_line_set(&g->irq, level);
	}
}

static uint32_t reg_read(struct pl061 *g, uint64_t off)
{
	if (off < PL061_DIR) {
		uint8_t mask = (uint8_t)(off >> 2);
		uint8_t v = g->level & mask;
		/* A pressed button that the guest has now seen is let go (pl061_press()). */
		uint8_t seen = g->held & mask & ~g->dir & g->in;
		if (seen) {
			g->held &= (uint8_t)~seen;
			g->in &= (uint8_t)~seen;
			update(g);
		}
		return v;
	}
	switch (off) {
	case PL061_DIR:
		return g->dir;
	case PL061_IS:
		return g->is;
	case PL061_IBE:
		return g->ibe;
	case PL061_IEV:
		return g->iev;
	case PL061_IE:
		return g->ie;
	case PL061_RIS:
		return g->ris;
	case PL061_MIS:
		return g->ris & g->ie;
	case PL061_AFSEL:
		return g->afsel;
	default:
		if (off >= PL061_PERIPH_ID && off < PL061_SIZE)
			return pl061_ids[(off - PL061_PERIPH_ID) / 4];
		return 0; /* IC (write-only) and the reserved space */
	}
}

static void reg_write(struct pl061 *g, uint64_t off, uint8_t v)
{
	if (off < PL061_DIR) {
		/* Only the pins the address selects, and of those only outputs. */
		uint8_t mask = (uint8_t)(off >> 2) & g->dir;
		g->out = (uint8_t)((g->out & ~mask) | (v & mask));
		update(g);
		return;
	}
	switch (off) {
	case PL061_DIR:
		g->dir = v;
		break;
	case PL061_IS:
		g->is = v;
		break;
	case PL061_IBE:
		g->ibe = v;
		break;
	case PL061_IEV:
		g->iev = v;
		break;
	case PL061_IE:
		g->ie = v;
		break;
	case PL061_IC:
		g->ris &= (uint8_t) ~(v & ~g->is); /* a level interrupt stays while its level does */
		break;
	case PL061_AFSEL:
		g->afsel = v;
		return;
	default:
		return; /* RIS, MIS and the IDs are read-only; the reserved space decodes nothing */
	}
	update(g);
}

void pl061_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pl061 *g = opaque;
	if ((len != 1 && len != 2 && len != 4) || off >= PL061_SIZE || off % 4) {
		if (!is_write)
			memset(data, 0, len > 8 ? 8 : len);
		return;
	}
	pthread_mutex_lock(&g->lock);
	if (is_write) {
		reg_write(g, off, data[0]); /* 8-bit registers: the upper bytes are ignored */
	} else {
		uint32_t v = reg_read(g, off);
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
	pthread_mutex_unlock(&g->lock);
}

void pl061_set_input(struct pl061 *g, unsigned pin, int level)
{
	if (pin >= PL061_NPINS)
		return;
	pthread_mutex_lock(&g->lock);
	if (level)
		g->in |= (uint8_t)(1u << pin);
	else
		g->in &= (uint8_t) ~(1u << pin);
	g->held &= (uint8_t) ~(1u << pin); /* set explicitly: no longer a press */
	update(g);
	pthread_mutex_unlock(&g->lock);
}

void pl061_press(struct pl061 *g, unsigned pin)
{
	if (pin >= PL061_NPINS)
		return;
	pthread_mutex_lock(&g->lock);
	g->in |= (uint8_t)(1u << pin);
	g->held |= (uint8_t)(1u << pin);
	update(g);
	pthread_mutex_unlock(&g->lock);
}
