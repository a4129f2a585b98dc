/* SPDX-License-Identifier: MIT */
/*
 * The x86 machine behind vmm/arch/arch.h: KVM's in-kernel PIC, IOAPIC,
 * LAPICs and PIT; the PC platform devices on port I/O (16550 UART, i8042,
 * CMOS RTC, ACPI PM blocks, the exit-status port); PCI configuration through
 * ports 0xcf8/0xcfc; bzImage or PVH boot with ACPI tables (loader.c).
 * Set-up thread, except arch_vcpu_exit() and arch_vcpu_regs_note() (vCPU
 * threads) and arch_power_button() (any thread).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "devices/acpi_pm.h"
#include "devices/exit_dev.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "vmm/arch/arch.h"
#include "vmm/arch/x86/cpuid.h"
#include "vmm/arch/x86/cpuid_compat.h"
#include "vmm/arch/x86/kvm_state.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/arch/x86/loader.h"
#include "vmm/irq_routes.h"
#include "vmm/kvm.h"
#include "vmm/migration/machine_state.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* Drives GSI gsi through KVM's PIC/IOAPIC (an irq_line callback). */
static void x86_set_irq(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		vm_fail(vm, "KVM_IRQ_LINE for GSI %u failed: %s", gsi, strerror(errno));
}

int arch_kvm_check(int kvm_fd, struct err *e)
{
	static const struct kvm_cap_need need[] = {
	    KVM_CAP_NEED(KVM_CAP_PIT2),
	    KVM_CAP_NEED(KVM_CAP_EXT_CPUID),
	};
	return kvm_require_caps(kvm_fd, need, sizeof(need) / sizeof(need[0]), e);
}

/* RAM from 0 up to the 32-bit MMIO hole, the rest from 4 GiB. */
unsigned arch_ram_layout(uint64_t ram_size, struct guest_mem_region *r)
{
	uint64_t low = ram_size < LAYOUT_MMIO32_START ? ram_size : LAYOUT_MMIO32_START;
	r[0] = (struct guest_mem_region){.gpa = 0, .size = low};
	if (ram_size == low)
		return 1;
	r[1] = (struct guest_mem_region){.gpa = LAYOUT_4G, .size = ram_size - low};
	return 2;
}

/* KVM's own default table: ISA IRQs reach both PICs and the IOAPIC, the other pins the IOAPIC. */
static unsigned default_routes(struct kvm_irq_routing_entry *t)
{
	unsigned n = 0;
	for (unsigned gsi = 0; gsi < IOAPIC_NUM_PINS; gsi++) {
		if (gsi < 16)
			t[n++] = (struct kvm_irq_routing_entry){
			    .gsi = gsi,
			    .type = KVM_IRQ_ROUTING_IRQCHIP,
			    .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					  .pin = gsi % 8},
			};
		t[n++] = (struct kvm_irq_routing_entry){
		    .gsi = gsi,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
		};
	}
	return n;
}

int arch_vm_init(struct vm *vm, const struct vm_params *p, struct err *e)
{
	int r;
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
	struct kvm_irq_routing_entry fixed[16 + IOAPIC_NUM_PINS];
	unsigned n = default_routes(fixed);
	if (!(vm->irq_routes = irq_routes_create(vm->vm_fd, fixed, n, IOAPIC_NUM_PINS, false, e)))
		return -ENOMEM;
	return kvm_get_supported_cpuid(vm->kvm_fd, &vm->arch.cpuid, e);
}

/*
 * The PCI windows: the fixed I/O and 32-bit ones, and a 64-bit one from the
 * first 1 GiB boundary at or above the end of RAM (4 GiB when RAM ends below it).
 */
struct pci_windows arch_pci_windows(const struct guest_mem *m)
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

int arch_devices_create(struct vm *vm, const struct vm_params *p, struct err *e)
{
	struct vm_requester req = vm_requester(vm);
	struct irq_line com1 = {x86_set_irq, vm, IRQ_COM1};
	struct irq_line kbd = {x86_set_irq, vm, IRQ_I8042_KBD};
	struct irq_line rtc = {x86_set_irq, vm, IRQ_RTC};
	struct irq_line sci = {x86_set_irq, vm, IRQ_ACPI_SCI};
	struct arch_vm *a = &vm->arch;

	vm->serial = serial_create(&com1, p->console_tx, p->console_rx_space, p->console_opaque);
	a->i8042 = i8042_create(&kbd, &req);
	a->rtc = rtc_create(&rtc, NULL, NULL);
	a->pm = acpi_pm_create(&sci, &req);
	a->exit_dev = exit_dev_create(&req);
	if (!vm->serial || !a->i8042 || !a->rtc || !a->pm || !a->exit_dev)
		return err_set(e, -ENOMEM, "out of memory creating devices");
	const struct pci_windows *w = vm->pci_windows;
	int r;
	if ((r = vm_add_pio(vm, PORT_COM1, PORT_COM1_LEN, serial_io, vm->serial, "serial", e)) ||
	    (r = vm_add_pio(vm, PORT_I8042_DATA, 1, i8042_data_io, a->i8042, "i8042 data", e)) ||
	    (r = vm_add_pio(vm, PORT_I8042_CMD, 1, i8042_cmd_io, a->i8042, "i8042 command", e)) ||
	    (r = vm_add_pio(vm, PORT_RTC_INDEX, 2, rtc_io, a->rtc, "rtc", e)) ||
	    (r = vm_add_pio(vm, PORT_PCI_CONFIG_ADDR, 4, pci_host_addr_io, vm->pci, "pci config address",
			    e)) ||
	    (r = vm_add_pio(vm, PORT_PCI_CONFIG_DATA, 4, pci_host_data_io, vm->pci, "pci config data", e)) ||
	    (r = vm_add_pio(vm, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN, acpi_pm_evt_io, a->pm,
			    "pm1a event", e)) ||
	    (r = vm_add_pio(vm, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN, acpi_pm_cnt_io, a->pm,
			    "pm1a control", e)) ||
	    (r = vm_add_pio(vm, PORT_ACPI_RESET, 1, acpi_pm_reset_io, a->pm, "acpi reset", e)) ||
	    (r = vm_add_pio(vm, PORT_GUEST_EXIT, 1, exit_dev_io, a->exit_dev, "exit-status port", e)) ||
	    (r = vm_add_pio(vm, w->io_start, w->io_end - w->io_start + 1, pci_host_io_window, vm->pci,
			    "pci i/o window", e)))
		return r;
	return 0;
}

struct irq_line arch_pci_intx(struct vm *vm, unsigned devfn)
{
	return (struct irq_line){x86_set_irq, vm, pci_host_intx_gsi(devfn, 1)};
}

int arch_boot_load(struct vm *vm, const struct vm_params *p, struct err *e)
{
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
	return boot_load(&vm->mem, &im, &vm->arch.entry, e);
}

/* ---- vCPUs ---- */

int x86_vcpu_cpuid_table(const struct vm *vm, unsigned index, struct kvm_cpuid2 **out, struct err *e)
{
	const struct kvm_cpuid2 *sup = vm->arch.cpuid;
	size_t sz = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *cp = malloc(sz);
	if (!cp)
		return err_set(e, -ENOMEM, "out of memory");
	memcpy(cp, sup, sz);
	cpuid_setup_vcpu(cp->entries, cp->nent, index, vm->ncpus);
	*out = cp;
	return 0;
}

static int set_cpuid(struct vcpu *c, struct err *e)
{
	struct kvm_cpuid2 *cp;
	int r = x86_vcpu_cpuid_table(c->vm, c->index, &cp, e);
	if (r)
		return r;
	r = kvm_ioctl(c->fd, KVM_SET_CPUID2, cp);
	free(cp);
	if (r)
		return err_set(e, r, "KVM_SET_CPUID2 on vCPU %u: %s", c->index, strerror(-r));
	return 0;
}

static int set_msrs(struct vcpu *c, struct err *e)
{
	enum { MAX_BOOT_MSRS = 16 };
	struct kvm_msrs *m = calloc(1, sizeof(*m) + MAX_BOOT_MSRS * sizeof(m->entries[0]));
	if (!m)
		return err_set(e, -ENOMEM, "out of memory");
	m->nmsrs = x86_boot_msrs(m->entries, MAX_BOOT_MSRS);
	int r = kvm_ioctl(c->fd, KVM_SET_MSRS, m);
	if (r < 0)
		r = err_set(e, r, "KVM_SET_MSRS on vCPU %u: %s", c->index, strerror(-r));
	else if ((unsigned)r != m->nmsrs)
		r = err_set(e, -EINVAL, "KVM refused MSR 0x%x on vCPU %u", m->entries[r].index, c->index);
	else
		r = 0;
	free(m);
	return r;
}

static int set_lapic(struct vcpu *c, struct err *e)
{
	struct kvm_lapic_state l;
	int r = kvm_ioctl(c->fd, KVM_GET_LAPIC, &l);
	if (!r) {
		x86_lapic_virtual_wire(&l);
		r = kvm_ioctl(c->fd, KVM_SET_LAPIC, &l);
	}
	if (r)
		return err_set(e, r, "cannot set up the local APIC of vCPU %u: %s", c->index, strerror(-r));
	return 0;
}

static int set_boot_state(struct vcpu *c, const struct boot_entry *entry, struct err *e)
{
	struct kvm_sregs s;
	struct kvm_regs regs;
	int r = kvm_ioctl(c->fd, KVM_GET_SREGS, &s);
	if (r)
		return err_set(e, r, "KVM_GET_SREGS: %s", strerror(-r));
	x86_boot_sregs(&s, entry->mode);
	if ((r = kvm_ioctl(c->fd, KVM_SET_SREGS, &s)))
		return err_set(e, r, "KVM_SET_SREGS: %s", strerror(-r));
	x86_boot_regs(&regs, entry);
	if ((r = kvm_ioctl(c->fd, KVM_SET_REGS, &regs)))
		return err_set(e, r, "KVM_SET_REGS: %s", strerror(-r));
	return 0;
}

/* CPUID, MSRs, LAPIC, FPU; the boot CPU also gets the entry state. */
int arch_vcpu_init(struct vcpu *c, struct err *e)
{
	struct kvm_fpu fpu;
	x86_boot_fpu(&fpu);
	int r;
	if ((r = set_cpuid(c, e)) || (r = set_msrs(c, e)) || (r = set_lapic(c, e)))
		return r;
	if ((r = kvm_ioctl(c->fd, KVM_SET_FPU, &fpu)))
		return err_set(e, r, "KVM_SET_FPU: %s", strerror(-r));
	/* Application processors wait for INIT/SIPI from the boot CPU in KVM's LAPIC. */
	if (c->index == 0 && (r = set_boot_state(c, &c->vm->arch.entry, e)))
		return r;
	return 0;
}

int arch_vm_finish(struct vm *vm, struct err *e)
{
	return 0;
}

static void handle_io(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	/* data_offset and size*count come from KVM, which bounds them by the run area; check anyway. */
	uint64_t total = (uint64_t)run->io.size * run->io.count;
	if (run->io.data_offset > (uint64_t)c->vm->run_size ||
	    total > c->vm->run_size - run->io.data_offset) {
		vm_fail(c->vm, "vCPU %u: malformed port I/O exit", c->index);
		return;
	}
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool wr = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < run->io.count; i++)
		bus_access(&c->vm->pio, run->io.port, data + (size_t)i * run->io.size, run->io.size, wr);
}

void arch_vcpu_regs_note(struct vcpu *c, char *buf, size_t size)
{
	struct kvm_regs r;
	if (ioctl(c->fd, KVM_GET_REGS, &r) == 0)
		snprintf(buf, size, " (rip=0x%llx rsp=0x%llx)", (unsigned long long)r.rip,
			 (unsigned long long)r.rsp);
	else if (size)
		buf[0] = '\0';
}

bool arch_vcpu_exit(struct vcpu *c)
{
	switch (c->run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(c);
		return true;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: PCs reset, and Linux relies on it as a last resort for reboot. */
		vm_stop(c->vm, VM_STOP_RESET);
		return true;
	case KVM_EXIT_HLT: {
		/* Only without an in-kernel LAPIC, which kvmini always has. */
		char regs[96];
		arch_vcpu_regs_note(c, regs, sizeof(regs));
		vm_fail(c->vm, "vCPU %u: halted with interrupts unavailable%s", c->index, regs);
		return true;
	}
	default:
		return false;
	}
}

void arch_vm_destroy(struct vm *vm)
{
	struct arch_vm *a = &vm->arch;
	i8042_destroy(a->i8042);
	rtc_destroy(a->rtc);
	acpi_pm_destroy(a->pm);
	exit_dev_destroy(a->exit_dev);
	free(a->cpuid);
	memset(a, 0, sizeof(*a));
}

int arch_power_button(struct vm *vm)
{
	acpi_pm_press_power_button(vm->arch.pm);
	return 0;
}

/* ---- saved state ---- */

int arch_migration_check(struct err *e)
{
	return 0;
}

int arch_cpu_desc_fill(struct vm *vm, struct arch_cpu_desc *d, struct err *e)
{
	struct kvm_cpuid2 *c;
	/* Not KVM_GET_CPUID2: the vCPUs may be running (a live migration's source). */
	int r = x86_vcpu_cpuid_table(vm, 0, &c, e);
	if (r)
		return r;
	if (c->nent > MACHINE_MAX_CPUID) {
		free(c);
		return err_set(e, -E2BIG, "vCPU 0's CPUID has more than %u entries", MACHINE_MAX_CPUID);
	}
	d->ncpuid = c->nent;
	memcpy(d->cpuid, c->entries, c->nent * sizeof(c->entries[0]));
	free(c);
	return 0;
}

void arch_cpu_desc_put(const struct arch_cpu_desc *d, struct sbuf *b)
{
	sbuf_u32(b, d->ncpuid);
	for (unsigned i = 0; i < d->ncpuid; i++) {
		const struct kvm_cpuid_entry2 *c = &d->cpuid[i];
		sbuf_u32(b, c->function);
		sbuf_u32(b, c->index);
		sbuf_u32(b, c->flags);
		sbuf_u32(b, c->eax);
		sbuf_u32(b, c->ebx);
		sbuf_u32(b, c->ecx);
		sbuf_u32(b, c->edx);
	}
}

int arch_cpu_desc_parse(struct sreader *r, struct arch_cpu_desc *d, struct err *e)
{
	d->ncpuid = sreader_u32(r);
	if (!r->bad && d->ncpuid > MACHINE_MAX_CPUID)
		return err_set(e, -EINVAL, "the saved VM's CPUID has %u entries, over the limit of %u",
			       d->ncpuid, MACHINE_MAX_CPUID);
	for (unsigned i = 0; i < d->ncpuid && !r->bad; i++) {
		struct kvm_cpuid_entry2 *c = &d->cpuid[i];
		c->function = sreader_u32(r);
		c->index = sreader_u32(r);
		c->flags = sreader_u32(r);
		c->eax = sreader_u32(r);
		c->ebx = sreader_u32(r);
		c->ecx = sreader_u32(r);
		c->edx = sreader_u32(r);
	}
	return 0;
}

int arch_cpu_desc_check(const struct arch_cpu_desc *saved, const struct arch_cpu_desc *here, struct err *e)
{
	return cpuid_compat_check(saved->cpuid, saved->ncpuid, here->cpuid, here->ncpuid, e);
}

int arch_vm_state_save(struct vm *vm, struct sbuf *b, struct err *e)
{
	return vm_kvm_state_save(vm->vm_fd, b, e);
}

int arch_vm_state_load(struct vm *vm, struct sreader *r, struct err *e)
{
	return vm_kvm_state_load(vm->vm_fd, r, e);
}

int arch_vcpu_state_save(struct vcpu *c, struct sbuf *b, struct err *e)
{
	return vcpu_state_save(c->vm->kvm_fd, c->fd, b, e);
}

int arch_vcpu_state_load(struct vcpu *c, struct sreader *r, struct err *e)
{
	return vcpu_state_load(c->vm->kvm_fd, c->fd, r, e);
}

static void save_rtc(void *o, struct sbuf *b)
{
	rtc_save(o, b);
}
static int load_rtc(void *o, struct sreader *r, struct err *e)
{
	return rtc_load(o, r, e);
}
static void save_i8042(void *o, struct sbuf *b)
{
	i8042_save(o, b);
}
static int load_i8042(void *o, struct sreader *r, struct err *e)
{
	return i8042_load(o, r, e);
}
static void save_acpi_pm(void *o, struct sbuf *b)
{
	acpi_pm_save(o, b);
}
static int load_acpi_pm(void *o, struct sreader *r, struct err *e)
{
	return acpi_pm_load(o, r, e);
}
static void save_exit_dev(void *o, struct sbuf *b)
{
	exit_dev_save(o, b);
}
static int load_exit_dev(void *o, struct sreader *r, struct err *e)
{
	return exit_dev_load(o, r, e);
}

unsigned arch_state_devices(struct vm *vm, struct machine_dev *d)
{
	unsigned n = 0;
	d[n++] = (struct machine_dev){"rtc", 0, save_rtc, load_rtc, vm->arch.rtc, false};
	d[n++] = (struct machine_dev){"i8042", 0, save_i8042, load_i8042, vm->arch.i8042, false};
	d[n++] = (struct machine_dev){"acpi-pm", 0, save_acpi_pm, load_acpi_pm, vm->arch.pm, false};
	d[n++] = (struct machine_dev){"exit-port", 0, save_exit_dev, load_exit_dev, vm->arch.exit_dev, false};
	return n;
}
