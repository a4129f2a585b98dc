/* SPDX-License-Identifier: MIT */
#include "vmm/irq_routes.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/layout.h"

#define MSI_GSI_BASE IOAPIC_NUM_PINS
#define MAX_MSI	     1024
#define MAX_ENTRIES  (16 + IOAPIC_NUM_PINS + MAX_MSI)

struct irq_routes {
	int vm_fd;
	pthread_mutex_t lock;
	struct msi_controller mc;
	bool used[MAX_MSI];
	struct msi_msg msg[MAX_MSI];
	struct kvm_irq_routing *table; /* scratch, MAX_ENTRIES entries */
};

/* Pushes the default irqchip routes plus every MSI route to KVM; lock held. */
static int commit(struct irq_routes *r)
{
	struct kvm_irq_routing *t = r->table;
	unsigned n = 0;
	for (unsigned gsi = 0; gsi < IOAPIC_NUM_PINS; gsi++) {
		/* As KVM's own default table: ISA IRQs reach both PICs and the IOAPIC. */
		if (gsi < 16) {
			t->entries[n++] = (struct kvm_irq_routing_entry){
			    .gsi = gsi,
			    .type = KVM_IRQ_ROUTING_IRQCHIP,
			    .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					  .pin = gsi % 8},
			};
		}
		t->entries[n++] = (struct kvm_irq_routing_entry){
		    .gsi = gsi,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
		};
	}
	for (unsigned i = 0; i < MAX_MSI; i++) {
		if (!r->used[i])
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
		    .gsi = MSI_GSI_BASE + i,
		    .type = KVM_IRQ_ROUTING_MSI,
		    .u.msi = {.address_lo = (uint32_t)r->msg[i].addr,
			      .address_hi = (uint32_t)(r->msg[i].addr >> 32),
			      .data = r->msg[i].data},
		};
	}
	t->nr = n;
	t->flags = 0;
	return ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0 ? -errno : 0;
}

static int irqfd(struct irq_routes *r, int efd, unsigned gsi, bool assign)
{
	struct kvm_irqfd f = {.fd = (uint32_t)efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
	return ioctl(r->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

static int route_add(void *opaque, int efd, const struct msi_msg *msg, unsigned *route)
{
	struct irq_routes *r = opaque;
	int ret = -ENOSPC;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < MAX_MSI; i++) {
		if (r->used[i])
			continue;
		r->used[i] = true;
		r->msg[i] = *msg;
		ret = commit(r);
		if (!ret && (ret = irqfd(r, efd, MSI_GSI_BASE + i, true)) == 0) {
			*route = i;
		} else {
			r->used[i] = false;
			commit(r);
		}
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int route_set(void *opaque, unsigned route, const struct msi_msg *msg)
{
	struct irq_routes *r = opaque;
	int ret = -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (route < MAX_MSI && r->used[route]) {
		r->msg[route] = *msg;
		ret = commit(r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static void route_del(void *opaque, unsigned route, int efd)
{
	struct irq_routes *r = opaque;
	pthread_mutex_lock(&r->lock);
	if (route < MAX_MSI && r->used[route]) {
		irqfd(r, efd, MSI_GSI_BASE + route, false);
		r->used[route] = false;
		commit(r);
	}
	pthread_mutex_unlock(&r->lock);
}

struct irq_routes *irq_routes_create(int vm_fd, struct err *e)
{
	struct irq_routes *r = calloc(1, sizeof(*r));
	if (r)
		r->table = calloc(1, sizeof(*r->table) + MAX_ENTRIES * sizeof(struct kvm_irq_routing_entry));
	if (!r || !r->table) {
		free(r);
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	r->vm_fd = vm_fd;
	pthread_mutex_init(&r->lock, NULL);
	r->mc = (struct msi_controller){route_add, route_set, route_del, r};
	return r;
}

void irq_routes_destroy(struct irq_routes *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->table);
	free(r);
}

const struct msi_controller *irq_routes_msi(struct irq_routes *r)
{
	return &r->mc;
}

int kvm_ioeventfd_set(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
	    .addr = addr,
	    .len = len,
	    .fd = fd,
	    .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	return ioctl((int)(intptr_t)opaque, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}
