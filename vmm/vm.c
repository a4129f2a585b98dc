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

#include "devices/acpi_pm.h"
#include "devices/exit_dev.h"
#include "devices/i8042.h"
#include "devices/irq.h"
#include "devices/pci.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vmm/boot/loader.h"
#include "vmm/irq_routes.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/vcpu.h"

void vm_set_irq(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		vm_fail(vm, "KVM_IRQ_LINE for GSI %u failed: %s", gsi, strerror(errno));
}

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
	/* Needed on Intel (real-mode emulation pages); harmless elsewhere. */
	if ((r = kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)LAYOUT_KVM_TSS)))
		return err_set(e, r, "KVM_SET_TSS_ADDR: %s", strerror(-r));
	if (kvm_check_extension(vm->kvm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
		uint64_t a = LAYOUT_KVM_IDENTITY_MAP;
		if ((r = kvm_ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &a)))
			return err_set(e, r, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(-r));
	}
	if ((r = kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL)))
		return err_set(e, r, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
	/* The speaker port 0x61 is emulated by KVM too (the kernel's PIT calibration reads it). */
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if ((r = kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit)))
		return err_set(e, r, "KVM_CREATE_PIT2: %s", strerror(-r));

	if ((r = guest_mem_alloc_opts(&vm->mem, p->mem_bytes, &p->mem_opts, e)))
		return r;
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		if ((r = vm_set_ram_slot(vm, i, 0, e)))
			return r;
	return kvm_get_supported_cpuid(vm->kvm_fd, &vm->cpuid, e);
}

static int add_pio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
		   struct err *e)
{
	int r = bus_register(&vm->pio, base, len, fn, opaque, name);
	if (r)
		return err_set(e, r, "cannot place %s at port 0x%llx: %s", name, (unsigned long long)base,
			       strerror(-r));
	return 0;
}

/*
 * The PCI windows: the fixed I/O and 32-bit ones, and a 64-bit one from the
 * first 1 GiB boundary at or above the end of RAM (4 GiB when RAM ends below it).
 */
static struct pci_windows pci_windows_for(const struct guest_mem *m)
{
	uint64_t ram_end = LAYOUT_4G;
	for (unsigned i = 0; i < m->nregions; i++)
		if (m->regions[i].gpa + m->regions[i].size > ram_end)
			ram_end = m->regions[i].gpa + m->regions[i].size;
	uint64_t start = (ram_end + LAYOUT_PCI_MMIO64_ALIGN - 1) & ~(LAYOUT_PCI_MMIO64_ALIGN - 1);
	return (struct pci_windows){
	    .io_start = PORT_PCI_IO_START,
	    .io_end = PORT_PCI_IO_END,
	    .mem32_start = LAYOUT_PCI_MMIO32_START,
	    .mem32_end = LAYOUT_PCI_MMIO32_END,
	    .mem64_start = start,
	    .mem64_end = start + LAYOUT_PCI_MMIO64_SIZE - 1,
	};
}

static int add_mmio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
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
	    .msi = irq_routes_msi(vm->irq_routes),
	    .intx = {vm_set_irq, vm, pci_host_intx_gsi(devfn, 1)},
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
	if ((r = add_pio(vm, w->io_start, w->io_end - w->io_start + 1, pci_host_io_window, vm->pci,
			 "pci i/o window", e)) ||
	    (r = add_mmio(vm, w->mem32_start, w->mem32_end - w->mem32_start + 1, pci_host_mem32_window,
			  vm->pci, "pci 32-bit window", e)) ||
	    (r = add_mmio(vm, w->mem64_start, w->mem64_end - w->mem64_start + 1, pci_host_mem64_window,
			  vm->pci, "pci 64-bit window", e)))
		return r;
	if (!(vm->irq_routes = irq_routes_create(vm->vm_fd, e)))
		return -ENOMEM;
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

static int create_devices(struct vm *vm, const struct vm_params *p, struct err *e)
{
	struct vm_requester req = {device_request, vm};
	struct irq_line com1 = {vm_set_irq, vm, IRQ_COM1};
	struct irq_line kbd = {vm_set_irq, vm, IRQ_I8042_KBD};
	struct irq_line rtc = {vm_set_irq, vm, IRQ_RTC};
	struct irq_line sci = {vm_set_irq, vm, IRQ_ACPI_SCI};

	vm->serial = serial_create(&com1, p->console_tx, p->console_rx_space, p->console_opaque);
	vm->i8042 = i8042_create(&kbd, &req);
	vm->rtc = rtc_create(&rtc, NULL, NULL);
	vm->pci_windows = malloc(sizeof(*vm->pci_windows));
	if (vm->pci_windows)
		*vm->pci_windows = pci_windows_for(&vm->mem);
	vm->pci = vm->pci_windows ? pci_host_create(vm->pci_windows) : NULL;
	vm->pm = acpi_pm_create(&sci, &req);
	vm->exit_dev = exit_dev_create(&req);
	if (!vm->serial || !vm->i8042 || !vm->rtc || !vm->pci || !vm->pm || !vm->exit_dev)
		return err_set(e, -ENOMEM, "out of memory creating devices");
	int r;
	if ((r = add_pio(vm, PORT_COM1, PORT_COM1_LEN, serial_io, vm->serial, "serial", e)) ||
	    (r = add_pio(vm, PORT_I8042_DATA, 1, i8042_data_io, vm->i8042, "i8042 data", e)) ||
	    (r = add_pio(vm, PORT_I8042_CMD, 1, i8042_cmd_io, vm->i8042, "i8042 command", e)) ||
	    (r = add_pio(vm, PORT_RTC_INDEX, 2, rtc_io, vm->rtc, "rtc", e)) ||
	    (r = add_pio(vm, PORT_PCI_CONFIG_ADDR, 4, pci_host_addr_io, vm->pci, "pci config address", e)) ||
	    (r = add_pio(vm, PORT_PCI_CONFIG_DATA, 4, pci_host_data_io, vm->pci, "pci config data", e)) ||
	    (r = add_pio(vm, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN, acpi_pm_evt_io, vm->pm, "pm1a event",
			 e)) ||
	    (r = add_pio(vm, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN, acpi_pm_cnt_io, vm->pm,
			 "pm1a control", e)) ||
	    (r = add_pio(vm, PORT_ACPI_RESET, 1, acpi_pm_reset_io, vm->pm, "acpi reset", e)) ||
	    (r = add_pio(vm, PORT_GUEST_EXIT, 1, exit_dev_io, vm->exit_dev, "exit-status port", e)))
		return r;
	return create_pci_devices(vm, p, e);
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

	struct boot_images im = {
	    .pci_mem64_base = vm->pci_windows->mem64_start,
	    .pci_mem64_size = vm->pci_windows->mem64_end - vm->pci_windows->mem64_start + 1,
	    .kernel = p->kernel,
	    .kernel_len = p->kernel_len,
	    .initrd = p->initrd,
	    .initrd_len = p->initrd_len,
	    .cmdline = p->cmdline,
	    .ncpus = p->ncpus,
	};
	struct boot_entry entry;
	if ((r = boot_load(&vm->mem, &im, &entry, e)))
		goto fail;

	vm->vcpus = calloc(p->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < p->ncpus; i++)
		if ((r = vcpu_init(&vm->vcpus[i], vm, i, &entry, e)))
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
	serial_destroy(vm->serial);
	i8042_destroy(vm->i8042);
	rtc_destroy(vm->rtc);
	pci_host_destroy(vm->pci);
	acpi_pm_destroy(vm->pm);
	exit_dev_destroy(vm->exit_dev);
	bus_free(&vm->pio);
	bus_free(&vm->mmio);
	guest_mem_free(&vm->mem);
	free(vm->cpuid);
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
