/* SPDX-License-Identifier: MIT */
/*
 * KVM's GSI routing table and irqfds, behind the devices' msi_controller;
 * and KVM ioeventfds. KVM_SET_GSI_ROUTING replaces the whole table, so the
 * architecture's fixed routes (x86: the PIC and IOAPIC pins; arm64: none,
 * its wired interrupts go through KVM_IRQ_LINE) are kept next to the MSI
 * ones. On arm64 an MSI reaches the GICv3 ITS with the sender's PCI
 * requester ID as its DeviceID (KVM_MSI_VALID_DEVID): each PCI function gets
 * its own msi_controller that knows its devfn.
 */
#ifndef KVMINI_VMM_IRQ_ROUTES_H
#define KVMINI_VMM_IRQ_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "devices/irq.h"

struct irq_routes;

#define IRQ_ROUTES_MAX_FIXED 64

struct kvm_irq_routing_entry;

/*
 * fixed[0..nfixed) (at most IRQ_ROUTES_MAX_FIXED, copied) go in every table;
 * MSI routes take GSIs from msi_gsi_base on; devid: MSI routes carry the
 * function's requester ID (bus 0: devfn) as KVM_MSI_VALID_DEVID.
 */
struct irq_routes *irq_routes_create(int vm_fd, const struct kvm_irq_routing_entry *fixed, unsigned nfixed,
				     unsigned msi_gsi_base, bool devid, struct err *e);
void irq_routes_destroy(struct irq_routes *r);
/* The msi_controller PCI function devfn (bus 0) uses (valid while r lives). */
const struct msi_controller *irq_routes_msi(struct irq_routes *r, unsigned devfn);
/* An ioevent_ops.set for vm_fd passed as opaque (intptr_t): KVM_IOEVENTFD on MMIO addr. */
int kvm_ioeventfd_set(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign);

#endif
