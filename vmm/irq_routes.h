/* SPDX-License-Identifier: MIT */
/*
 * KVM's GSI routing table and irqfds, behind the devices' msi_controller;
 * and KVM ioeventfds. KVM_SET_GSI_ROUTING replaces the whole table, so we
 * keep the default irqchip routes (PIC and IOAPIC pins) next to the MSI ones.
 */
#ifndef KVMINI_VMM_IRQ_ROUTES_H
#define KVMINI_VMM_IRQ_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "devices/irq.h"

struct irq_routes;

struct irq_routes *irq_routes_create(int vm_fd, struct err *e);
void irq_routes_destroy(struct irq_routes *r);
/* The msi_controller that devices use (valid while r lives). */
const struct msi_controller *irq_routes_msi(struct irq_routes *r);
/* An ioevent_ops.set for vm_fd passed as opaque (intptr_t): KVM_IOEVENTFD on MMIO addr. */
int kvm_ioeventfd_set(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign);

#endif
