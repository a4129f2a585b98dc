/* SPDX-License-Identifier: MIT */
#include "vmm/irq_routes.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MAX_MSI	    1024
#define MAX_ENTRIES (IRQ_ROUTES_MAX_FIXED + MAX_MSI)
#define NR_DEVFN    256

struct irq_routes;

/* One PCI function's view: its requester ID rides along with each route it adds. */
struct msi_source {
	struct irq_routes *routes;
	uint32_t devid;
	struct msi_controller mc;
};

struct irq_routes {
	int vm_fd;
	pthread_mutex_t lock;
	struct kvm_irq_routing_entry fixed[IRQ_ROUTES_MAX_FIXED];
	unsigned nfixed;
	unsigned msi_gsi_base;
	bool devid;
	struct msi_source src[NR_DEVFN];
	bool used[MAX_MSI];
	struct msi_msg msg[MAX_MSI];
	uint32_t msg_devid[MAX_MSI];
	struct kvm_irq_routing *table; /* scratch, MAX_ENTRIES entries */
};

/* Pushes the fixed routes plus every MSI route to KVM; lock held. */
static int commit(struct irq_routes *r)
{
	struct kvm_irq_routing *t = r->table;
	unsigned n = 0;
	for (unsigned i = 0; i < r->nfixed; i++)
		t->entries[n++] = r->fixed[i];
	for (unsigned i = 0; i < MAX_MSI; i++) {
		if (!r->used[i])
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
		    .gsi = r->msi_gsi_base + i,
		    .type = KVM_IRQ_ROUTING_MSI,
		    .flags = r->devid ? KVM_MSI_VALID_DEVID : 0,
		    .u.msi = {.address_lo = (uint32_t)r->msg[i].addr,
			      .address_hi = (uint32_t)(r->msg[i].addr >> 32),
			      .data = r->msg[i].data,
			      .devid = r->devid ? r->msg_devid[i] : 0},
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
	struct msi_source *src = opaque;
	struct irq_routes *r = src->routes;
	int ret = -ENOSPC;
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < MAX_MSI; i++) {
		if (r->used[i])
			continue;
		r->used[i] = true;
		r->msg[i] = *msg;
		r->msg_devid[i] = src->devid;
		ret = commit(r);
		if (!ret && (ret = irqfd(r, efd, r->msi_gsi_base + i, true)) == 0) {
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
	struct msi_source *src = opaque;
	struct irq_routes *r = src->routes;
	int ret = -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (route < MAX_MSI && r->used[route] && r->msg_devid[route] == src->devid) {
		r->msg[route] = *msg;
		ret = commit(r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static void route_del(void *opaque, unsigned route, int efd)
{
	struct msi_source *src = opaque;
	struct irq_routes *r = src->routes;
	pthread_mutex_lock(&r->lock);
	if (route < MAX_MSI && r->used[route] && r->msg_devid[route] == src->devid) {
		irqfd(r, efd, r->msi_gsi_base + route, false);
		r->used[route] = false;
		commit(r);
	}
	pthread_mutex_unlock(&r->lock);
}

struct irq_routes *irq_routes_create(int vm_fd, const struct kvm_irq_routing_entry *fixed, unsigned nfixed,
				     unsigned msi_gsi_base, bool devid, struct err *e)
{
	if (nfixed > IRQ_ROUTES_MAX_FIXED) {
		err_set(e, -EINVAL, "too many fixed interrupt routes (%u)", nfixed);
		return NULL;
	}
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
	if (nfixed)
		memcpy(r->fixed, fixed, nfixed * sizeof(*fixed));
	r->nfixed = nfixed;
	r->msi_gsi_base = msi_gsi_base;
	r->devid = devid;
	for (unsigned i = 0; i < NR_DEVFN; i++)
		r->src[i] = (struct msi_source){r, i, {route_add, route_set, route_del, &r->src[i]}};
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

const struct msi_controller *irq_routes_msi(struct irq_routes *r, unsigned devfn)
{
	return &r->src[devfn % NR_DEVFN].mc;
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
