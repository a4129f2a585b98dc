/* SPDX-License-Identifier: MIT */
/*
 * How a device raises an interrupt without knowing about the VM: the VM hands
 * each device an irq_line; the device only sets its level.
 */
#ifndef KVMINI_DEVICES_IRQ_H
#define KVMINI_DEVICES_IRQ_H

struct irq_line {
	/* Drive GSI gsi to level (0 or 1). Called from any thread. */
	void (*set_level)(void *opaque, unsigned gsi, int level);
	void *opaque;
	unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l && l->set_level)
		l->set_level(l->opaque, l->gsi, level);
}

#endif
