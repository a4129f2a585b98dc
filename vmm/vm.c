/* SPDX-License-Identifier: MIT */
/*
 * VM set-up and tear-down on the set-up thread; vm_stop/vm_fail/vm_set_irq
 * from any thread (vCPUs, devices, the supervisor).
 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/irq.h"
#include "devices/pci.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vmm/arch/arch.h"
#include "vmm/irq_routes.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"

static void record_stop(struct vm *vm, enum vm_stop_reason why, const char *msg, int status)
{
	bool first = false;
	pthread_mutex_lock(&vm->lock);
	if (vm->stop_reason == VM_STOP_NONE) {
		if (msg)
			err_set(&vm->err, -EIO, "%s", msg);
		vm->exit_status = status;
		__atomic_store_n(&vm->stop_reason, why, __ATOMIC_RELEASE);
		first = true;
	}
	pthread_mutex_unlock(&vm->lock);
	if (!first)
		return;
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	vm_pause_end_for_stop(vm);
	if (vm->on_stop)
		vm->on_stop(vm->on_stop_opaque);
}

void vm_stop(struct vm *vm, enum vm_stop_reason why)
{
	record_stop(vm, why, NULL, 0);
}

void vm_fail(struct vm *vm, const char *fmt, ...)
{
	char msg[sizeof(vm->err.msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	record_stop(vm, VM_STOP_ERROR, msg, 0);
}

/*
 * The first request wins, like any stop: a reset the guest asks for after a
 * pvpanic write (panic=-1 reboots once the panic notifiers ran) is ignored.
 */
static void device_request(void *opaque, enum vm_request req, int status)
{
	switch (req) {
	case VM_REQUEST_POWEROFF:
		record_stop(opaque, VM_STOP_POWEROFF, NULL, 0);
		break;
	case VM_REQUEST_RESET:
		record_stop(opaque, VM_STOP_RESET, NULL, 0);
		break;
	case VM_REQUEST_PANIC:
		record_stop(opaque, VM_STOP_PANIC, NULL, 0);
		break;
	case VM_REQUEST_GUEST_EXIT:
		record_stop(opaque, VM_STOP_GUEST_EXIT, NULL, status & 0xff);
		break;
	}
}

int vm_set_ram_slot(struct vm *vm, unsigned i, uint32_t flags, struct err *e)
{
	if (i >= vm->mem.nregions)
		return err_set(e, -EINVAL, "no RAM region %u", i);
	struct kvm_userspace_memory_region reg = {
	    .slot = i,
	    .flags = flags,
	    .guest_phys_addr = vm->mem.regions[i].gpa,
	    .memory_size = vm->mem.regions[i].size,
	    .userspace_addr = (uintptr_t)vm->mem.regions[i].hva,
	};
	int r = kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &reg);
	if (r)
		return err_set(e, r, "KVM_SET_USER_MEMORY_REGION (slot %u, flags 0x%x): %s", i, flags,
			       strerror(-r));
	return 0;
}

static int create_machine(struct vm *vm, const struct vm_params *p, struct err *e)
{
	int r;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0UL);
	if (vm->vm_fd < 0)
		return err_set(e, -errno, "KVM_CREATE_VM failed: %s", strerror(errno));
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run))
		return err_set(e, -EINVAL, "KVM_GET_VCPU_MMAP_SIZE failed");
	if ((r = arch_vm_init(vm, p, e)))
		return r;
	if ((r = guest_mem_alloc_opts(&vm->mem, p->mem_bytes, &p->mem_opts, e)))
		return r;
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		if ((r = vm_set_ram_slot(vm, i, 0, e)))
			return r;
	return 0;
}

struct vm_requester vm_requester(struct vm *vm)
{
	return (struct vm_requester){device_request, vm};
}

int vm_add_pio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
	       struct err *e)
{
	int r = bus_register(&vm->pio, base, len, fn, opaque, name);
	if (r)
		return err_set(e, r, "cannot place %s at port 0x%llx: %s", name, (unsigned long long)base,
			       strerror(-r));
	return 0;
}

int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
		struct err *e)
{
	int r = bus_register(&vm->mmio, base, len, fn, opaque, name);
	if (r)
		return err_set(e, r, "cannot place %s at 0x%llx: %s", name, (unsigned long long)base,
			       strerror(-r));
	return 0;
}

static int ioevent_set(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
	struct vm *vm = opaque;
	return kvm_ioeventfd_set((void *)(intptr_t)vm->vm_fd, addr, len, fd, assign);
}

/* What a virtio PCI function at devfn gets from the machine: memory, MSI, INTx, ioeventfds. */
static struct virtio_pci_env virtio_env(struct vm *vm, unsigned devfn)
{
	return (struct virtio_pci_env){
	    .host = vm->pci,
	    .mem = &vm->mem,
	    .msi = irq_routes_msi(vm->irq_routes, devfn),
	    .intx = arch_pci_intx(vm, devfn),
	    .ioevent = &vm->ioevent,
	    .gate = &vm->gate,
	};
}

/*
 * The PCI windows on the buses, then one virtio-blk function per disk from
 * slot 1 on, the NICs after them and pvpanic in the next slot.
 */
static int create_pci_devices(struct vm *vm, const struct vm_params *p, struct err *e)
{
	const struct pci_windows *w = vm->pci_windows;
	int r;
	if ((r = vm_add_mmio(vm, w->mem32_start, w->mem32_end - w->mem32_start + 1, pci_host_mem32_window,
			     vm->pci, "pci 32-bit window", e)) ||
	    (r = vm_add_mmio(vm, w->mem64_start, w->mem64_end - w->mem64_start + 1, pci_host_mem64_window,
			     vm->pci, "pci 64-bit window", e)))
		return r;
	vm->ioevent = (struct ioevent_ops){ioevent_set, vm};
	if (p->ndisks + p->nnics + 1 > PCI_LAST_SLOT)
		return err_set(e, -E2BIG, "too many PCI devices (%u disks and %u NICs; at most %d)",
			       p->ndisks, p->nnics, PCI_LAST_SLOT - 1);
	vm->blks = calloc(p->ndisks ? p->ndisks : 1, sizeof(*vm->blks));
	vm->nets = calloc(p->nnics ? p->nnics : 1, sizeof(*vm->nets));
	if (!vm->blks || !vm->nets)
		return err_set(e, -ENOMEM, "out of memory");
	/* One request queue per vCPU, as blk-mq likes it. */
	unsigned nq = vm->ncpus < 64 ? vm->ncpus : 64;
	for (unsigned i = 0; i < p->ndisks; i++) {
		unsigned devfn = PCI_DEVFN(1 + i, 0);
		struct virtio_pci_env env = virtio_env(vm, devfn);
		char name[32];
		snprintf(name, sizeof(name), "virtio-blk vd%c", (char)('a' + i % 26));
		vm->blks[i] = virtio_blk_create(&env, devfn, p->disks[i], nq, &p->blk_stats[i], name, e);
		if (!vm->blks[i])
			return -EIO;
		vm->nblks = i + 1;
	}
	/* NICs in the slots after the disks. */
	for (unsigned i = 0; i < p->nnics; i++) {
		unsigned devfn = PCI_DEVFN(1 + p->ndisks + i, 0);
		struct virtio_pci_env env = virtio_env(vm, devfn);
		char name[32];
		snprintf(name, sizeof(name), "virtio-net %u", i);
		vm->nets[i] =
		    virtio_net_create(&env, devfn, p->nics[i], &p->net_shared[i], p->macs[i], name, e);
		if (!vm->nets[i])
			return -EIO;
		vm->nnets = i + 1;
	}
	struct vm_requester req = {device_request, vm};
	vm->pvpanic = pvpanic_create(vm->pci, PCI_DEVFN(1 + p->ndisks + p->nnics, 0), &req, e);
	return vm->pvpanic ? 0 : -EIO;
}

/* The PCI host, the architecture's platform devices, then the PCI functions. */
static int create_devices(struct vm *vm, const struct vm_params *p, struct err *e)
{
	vm->pci_windows = malloc(sizeof(*vm->pci_windows));
	if (vm->pci_windows)
		*vm->pci_windows = arch_pci_windows(&vm->mem);
	vm->pci = vm->pci_windows ? pci_host_create(vm->pci_windows) : NULL;
	if (!vm->pci)
		return err_set(e, -ENOMEM, "out of memory creating devices");
	int r = arch_devices_create(vm, p, e);
	return r ? r : create_pci_devices(vm, p, e);
}

int vm_create(const struct vm_params *p, struct vm **out, struct err *e)
{
	*out = NULL;
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, -ENOMEM, "out of memory");
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->ncpus = p->ncpus;
	vm->vcpu_stats = p->vcpu_stats;
	vm->first_run_ns = p->first_run_ns;
	vm->on_stop = p->on_stop;
	vm->on_stop_opaque = p->on_stop_opaque;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	quiesce_init(&vm->gate);
	bus_init(&vm->pio);
	bus_init(&vm->mmio);

	int r;
	if (p->kvm_fd) {
		if ((r = fcntl(*p->kvm_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			r = err_set(e, -errno, "cannot duplicate the KVM fd: %s", strerror(errno));
			goto fail;
		}
	} else if ((r = kvm_open(p->kvm_device ? p->kvm_device : "/dev/kvm", e)) < 0) {
		goto fail;
	}
	vm->kvm_fd = r;
	if ((r = create_machine(vm, p, e)) || (r = create_devices(vm, p, e)))
		goto fail;

	if ((r = arch_boot_load(vm, p, e)))
		goto fail;

	vm->vcpus = calloc(p->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < p->ncpus; i++)
		if ((r = vcpu_init(&vm->vcpus[i], vm, i, e)))
			goto fail;
	if ((r = arch_vm_finish(vm, e)))
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

int vm_start(struct vm *vm, struct err *e)
{
	/* Devices restored running start here, on this (sandboxed) thread, not when their state loaded. */
	for (unsigned i = 0; i < vm->nblks; i++)
		virtio_pci_start_deferred(virtio_blk_transport(vm->blks[i]));
	for (unsigned i = 0; i < vm->nnets; i++)
		virtio_pci_start_deferred(virtio_net_transport(vm->nets[i]));
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int r = vcpu_start(&vm->vcpus[i], e);
		if (r) {
			vm_stop(vm, VM_STOP_ERROR);
			return r;
		}
	}
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus) {
		/* vCPU threads must be out of the guest before anything they use goes away. */
		vm->on_stop = NULL;
		vm_stop(vm, VM_STOP_HOST);
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (vm->vcpus[i].vm)
				vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
	}
	/* A pause that raced with the stop must not keep device threads from stopping. */
	quiesce_open(&vm->gate);
	/* Devices with I/O threads first: they stop before guest memory and the VM go. */
	for (unsigned i = 0; i < vm->nblks; i++)
		virtio_blk_destroy(vm->blks[i]);
	free(vm->blks);
	for (unsigned i = 0; i < vm->nnets; i++)
		virtio_net_destroy(vm->nets[i]);
	free(vm->nets);
	pvpanic_destroy(vm->pvpanic);
	irq_routes_destroy(vm->irq_routes);
	free(vm->pci_windows);
	arch_vm_destroy(vm);
	serial_destroy(vm->serial);
	pci_host_destroy(vm->pci);
	bus_free(&vm->pio);
	bus_free(&vm->mmio);
	guest_mem_free(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
	quiesce_destroy(&vm->gate);
	free(vm);
}
