/* SPDX-License-Identifier: MIT */
/*
 * How a device raises an interrupt without knowing about the VM: the VM hands
 * each device an irq_line; the device only sets its level.
 */
#ifndef KVMINI_DEVICES_IRQ_H
#define KVMINI_DEVICES_IRQ_H

#include <stdint.h>

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

/* An MSI message as a device's MSI-X table entry holds it. */
struct msi_msg {
	uint64_t addr;
	uint32_t data;
};

/*
 * How a device delivers MSIs without knowing KVM: each vector gets a route
 * (a GSI whose target is an MSI message) with an eventfd bound to it, so that
 * writing 1 to the eventfd raises the interrupt (KVM irqfd). Called on the
 * thread that programs the device (vCPU threads) and at set-up.
 */
struct msi_controller {
	/* Allocates a route for eventfd efd, initially aimed at msg. 0 with *route set, or -errno. */
	int (*route_add)(void *opaque, int efd, const struct msi_msg *msg, unsigned *route);
	/* Re-aims route at msg. 0 or -errno. */
	int (*route_set)(void *opaque, unsigned route, const struct msi_msg *msg);
	/* Unbinds efd and frees the route. */
	void (*route_del)(void *opaque, unsigned route, int efd);
	void *opaque;
};

#endif
