/* SPDX-License-Identifier: MIT */
/*
 * The arm64 machine behind vmm/arch/arch.h (the map: layout.h): KVM's
 * in-kernel GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3) and, where the host offers it,
 * its ITS for PCI MSI-X; PSCI 0.2 in KVM (secondary vCPUs start powered off
 * and the guest starts them with CPU_ON; SYSTEM_OFF and SYSTEM_RESET come
 * back as KVM_EXIT_SYSTEM_EVENT); the architected timer (in KVM, only
 * described). Devices are MMIO only: the 16550 UART, a PL031 RTC, a PL061
 * GPIO controller with the power button on a pin (gpio-keys), PCI
 * configuration through ECAM. The kernel boots as an arm64 Image with a
 * device tree (fdt.c) in x0. Saved state is not supported yet: saving,
 * restoring and migrating fail cleanly (arch_migration_check()).
 * Set-up thread, except arch_vcpu_exit() and arch_vcpu_regs_note() (vCPU
 * threads), arm64_set_irq() and arch_power_button() (any thread).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/pl031.h"
#include "devices/pl061.h"
#include "devices/serial.h"
#include "vmm/arch/arch.h"
#include "vmm/arch/arm64/boot.h"
#include "vmm/arch/arm64/fdt.h"
#include "vmm/arch/arm64/layout.h"
#include "vmm/irq_routes.h"
#include "vmm/kvm.h"
#include "vmm/migration/machine_state.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* The GIC's interrupts: 32 private (SGIs, PPIs) and SPIs, a multiple of 32 (arm-vgic-v3.rst). */
#define GIC_NR_IRQS  128
#define GIC_SPI_BASE 32
_Static_assert(ARM64_SPI_PCI_INTX_BASE + ARM64_PCI_INTX_COUNT + GIC_SPI_BASE <= GIC_NR_IRQS,
	       "the GIC must have the SPIs the machine uses");
_Static_assert(ARM64_MAX_CPUS *ARM64_GICR_STRIDE <= ARM64_GICR_MAX_SIZE,
	       "redistributors overflow their room");

/* A core register's id for KVM_{GET,SET}_ONE_REG (arch/arm64/include/uapi/asm/kvm.h). */
#define CORE_REG(field)                                                                                      \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                                               \
	 (offsetof(struct kvm_regs, field) / sizeof(__u32)))

/* Drives SPI spi (an irq_line callback: gsi is the SPI number) through KVM_IRQ_LINE. */
static void arm64_set_irq(void *opaque, unsigned spi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = {
	    .irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) |
		   ((GIC_SPI_BASE + spi) & KVM_ARM_IRQ_NUM_MASK),
	    .level = level ? 1 : 0,
	};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		vm_fail(vm, "KVM_IRQ_LINE for SPI %u failed: %s", spi, strerror(errno));
}

int arch_kvm_check(int kvm_fd, struct err *e)
{
	static const struct kvm_cap_need need[] = {
	    KVM_CAP_NEED(KVM_CAP_ARM_PSCI_0_2),
	    KVM_CAP_NEED(KVM_CAP_DEVICE_CTRL),
	    KVM_CAP_NEED(KVM_CAP_ONE_REG),
	};
	return kvm_require_caps(kvm_fd, need, sizeof(need) / sizeof(need[0]), e);
}

/* One region of RAM at 2 GiB. */
unsigned arch_ram_layout(uint64_t ram_size, struct guest_mem_region *r)
{
	r[0] = (struct guest_mem_region){.gpa = ARM64_RAM_BASE, .size = ram_size};
	return 1;
}

static int set_attr(int fd, uint32_t group, uint64_t attr, const void *val, const char *what, struct err *e)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val};
	int r = kvm_ioctl(fd, KVM_SET_DEVICE_ATTR, &a);
	if (r)
		return err_set(e, r, "GICv3: %s: %s", what, strerror(-r));
	return 0;
}

static int create_device(int vm_fd, uint32_t type, int *fd)
{
	struct kvm_create_device d = {.type = type};
	int r = kvm_ioctl(vm_fd, KVM_CREATE_DEVICE, &d);
	if (!r)
		*fd = (int)d.fd;
	return r;
}

/* The GICv3 distributor and redistributors, and the ITS where KVM has one (else MSIs are off). */
static int create_gic(struct vm *vm, unsigned ncpus, struct err *e)
{
	struct arch_vm *a = &vm->arch;
	int r = create_device(vm->vm_fd, KVM_DEV_TYPE_ARM_VGIC_V3, &a->gic_fd);
	if (r)
		return err_set(e, r, "cannot create the in-kernel GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3): %s",
			       strerror(-r));
	a->has_gic = true;
	uint64_t dist = ARM64_GICD_BASE, redist = ARM64_GICR_BASE;
	uint32_t nr_irqs = GIC_NR_IRQS;
	if (ncpus * ARM64_GICR_STRIDE > ARM64_GICR_MAX_SIZE)
		return err_set(e, -EINVAL, "%u vCPUs need more redistributors than the map has room for",
			       ncpus);
	if ((r = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
			  "distributor address", e)) ||
	    (r = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
			  "redistributor address", e)) ||
	    (r = set_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs, "number of interrupts", e)))
		return r;
	if (create_device(vm->vm_fd, KVM_DEV_TYPE_ARM_VGIC_ITS, &a->its_fd) == 0) {
		a->has_its = true;
		uint64_t its = ARM64_GITS_BASE;
		if ((r = set_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &its,
				  "ITS address", e)))
			return r;
	}
	return 0;
}

int arch_vm_init(struct vm *vm, const struct vm_params *p, struct err *e)
{
	struct arch_vm *a = &vm->arch;
	int r = kvm_ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &a->init);
	if (r)
		return err_set(e, r, "KVM_ARM_PREFERRED_TARGET: %s", strerror(-r));
	/* PSCI 0.2+ in KVM: CPU_ON, SYSTEM_OFF, SYSTEM_RESET (the device tree's psci node). */
	a->init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	if ((r = create_gic(vm, p->ncpus, e)))
		return r;
	/*
	 * Only MSI routes: wired interrupts go through KVM_IRQ_LINE, which bypasses
	 * the routing table. The ITS identifies a sender by its requester ID.
	 */
	if (!(vm->irq_routes = irq_routes_create(vm->vm_fd, NULL, 0, 0, true, e)))
		return -ENOMEM;
	return 0;
}

/* No I/O window (no kvmini device has an I/O BAR); the 32-bit window; a 64-bit one above RAM. */
struct pci_windows arch_pci_windows(const struct guest_mem *m)
{
	uint64_t ram_end = ARM64_RAM_BASE;
	for (unsigned i = 0; i < m->nregions; i++)
		if (m->regions[i].gpa + m->regions[i].size > ram_end)
			ram_end = m->regions[i].gpa + m->regions[i].size;
	uint64_t start = (ram_end + ARM64_PCI_MMIO64_ALIGN - 1) & ~(ARM64_PCI_MMIO64_ALIGN - 1);
	return (struct pci_windows){
	    .io_start = 1,
	    .io_end = 0,
	    .mem32_start = ARM64_PCI_MMIO32_BASE,
	    .mem32_end = ARM64_PCI_MMIO32_BASE + ARM64_PCI_MMIO32_SIZE - 1,
	    .mem64_start = start,
	    .mem64_end = start + ARM64_PCI_MMIO64_SIZE - 1,
	};
}

int arch_devices_create(struct vm *vm, const struct vm_params *p, struct err *e)
{
	struct irq_line uart = {arm64_set_irq, vm, ARM64_SPI_UART};
	vm->serial = serial_create(&uart, p->console_tx, p->console_rx_space, p->console_opaque);
	vm->arch.rtc = pl031_create(NULL, NULL);
	struct irq_line gpio = {arm64_set_irq, vm, ARM64_SPI_GPIO};
	vm->arch.gpio = pl061_create(&gpio);
	if (!vm->serial || !vm->arch.rtc || !vm->arch.gpio)
		return err_set(e, -ENOMEM, "out of memory creating devices");
	_Static_assert(ARM64_PCI_ECAM_SIZE == PCI_ECAM_SIZE, "the ECAM region differs");
	int r;
	/* The UART's 8 byte registers (reg-shift 0); the rest of its 4 KiB page decodes nothing. */
	if ((r = vm_add_mmio(vm, ARM64_UART_BASE, 8, serial_io, vm->serial, "serial", e)) ||
	    (r = vm_add_mmio(vm, ARM64_RTC_BASE, ARM64_RTC_SIZE, pl031_io, vm->arch.rtc, "rtc (pl031)", e)) ||
	    (r = vm_add_mmio(vm, ARM64_GPIO_BASE, ARM64_GPIO_SIZE, pl061_io, vm->arch.gpio, "gpio (pl061)",
			     e)) ||
	    (r = vm_add_mmio(vm, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE, pci_host_ecam_io, vm->pci,
			     "pci ecam", e)))
		return r;
	return 0;
}

struct irq_line arch_pci_intx(struct vm *vm, unsigned devfn)
{
	return (struct irq_line){arm64_set_irq, vm, arm64_pci_intx_spi((devfn >> 3) & 0x1f, 1)};
}

int arch_boot_load(struct vm *vm, const struct vm_params *p, struct err *e)
{
	const struct guest_mem_region *ram = &vm->mem.regions[0];
	struct arm64_image im;
	struct arm64_boot_layout l;
	int r;
	if ((r = arm64_image_parse(p->kernel, p->kernel_len, &im, e)) ||
	    (r = arm64_boot_place(ram->gpa, ram->size, &im, p->kernel_len, p->initrd ? p->initrd_len : 0, &l,
				  e)))
		return r;
	if (guest_mem_write(&vm->mem, l.kernel, p->kernel, p->kernel_len))
		return err_set(e, -EFAULT, "the kernel does not fit in guest memory");
	if (l.initrd && guest_mem_write(&vm->mem, l.initrd, p->initrd, p->initrd_len))
		return err_set(e, -EFAULT, "the initrd does not fit in guest memory");
	const struct pci_windows *w = vm->pci_windows;
	struct arm64_fdt_params fp = {
	    .ncpus = p->ncpus,
	    .mem_base = ram->gpa,
	    .mem_size = ram->size,
	    .cmdline = p->cmdline,
	    .initrd_start = l.initrd,
	    .initrd_size = l.initrd ? p->initrd_len : 0,
	    .its = vm->arch.has_its,
	    .pci_mmio64_base = w->mem64_start,
	    .pci_mmio64_size = w->mem64_end - w->mem64_start + 1,
	};
	void *fdt = guest_mem_ptr(&vm->mem, l.fdt, ARM64_FDT_MAX_SIZE);
	if (!fdt)
		return err_set(e, -EFAULT, "the device tree's place is outside guest memory");
	if ((r = arm64_fdt_build(&fp, fdt, ARM64_FDT_MAX_SIZE, e)))
		return r;
	vm->arch.entry = l.kernel;
	vm->arch.fdt = l.fdt;
	return 0;
}

/* ---- vCPUs ---- */

static int set_reg(struct vcpu *c, uint64_t id, uint64_t v, const char *name, struct err *e)
{
	struct kvm_one_reg reg = {.id = id, .addr = (uint64_t)(uintptr_t)&v};
	int r = kvm_ioctl(c->fd, KVM_SET_ONE_REG, &reg);
	if (r)
		return err_set(e, r, "vCPU %u: cannot set %s: %s", c->index, name, strerror(-r));
	return 0;
}

/*
 * KVM_ARM_VCPU_INIT with PSCI 0.2; vCPUs other than 0 start powered off (the
 * guest brings them up with PSCI CPU_ON, in KVM). The boot CPU enters the
 * Image at EL1h with DAIF masked, x0 = the device tree, x1..x3 = 0.
 */
int arch_vcpu_init(struct vcpu *c, struct err *e)
{
	struct kvm_vcpu_init init = c->vm->arch.init;
	if (c->index > 0)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	int r = kvm_ioctl(c->fd, KVM_ARM_VCPU_INIT, &init);
	if (r)
		return err_set(e, r, "KVM_ARM_VCPU_INIT on vCPU %u: %s", c->index, strerror(-r));
	if (c->index > 0)
		return 0;
	const uint64_t pstate = PSR_MODE_EL1h | PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT;
	if ((r = set_reg(c, CORE_REG(regs.pstate), pstate, "pstate", e)) ||
	    (r = set_reg(c, CORE_REG(regs.regs[0]), c->vm->arch.fdt, "x0", e)) ||
	    (r = set_reg(c, CORE_REG(regs.regs[1]), 0, "x1", e)) ||
	    (r = set_reg(c, CORE_REG(regs.regs[2]), 0, "x2", e)) ||
	    (r = set_reg(c, CORE_REG(regs.regs[3]), 0, "x3", e)) ||
	    (r = set_reg(c, CORE_REG(regs.pc), c->vm->arch.entry, "pc", e)))
		return r;
	return 0;
}

/* The GIC (then its ITS) initialises once every vCPU exists. */
int arch_vm_finish(struct vm *vm, struct err *e)
{
	int r;
	if ((r = set_attr(vm->arch.gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL,
			  "initialisation", e)))
		return r;
	if (vm->arch.has_its && (r = set_attr(vm->arch.its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
					      KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "ITS initialisation", e)))
		return r;
	return 0;
}

/* MMIO and system events are all an arm64 guest makes: the shared loop serves them. */
bool arch_vcpu_exit(struct vcpu *c)
{
	return false;
}

void arch_vcpu_regs_note(struct vcpu *c, char *buf, size_t size)
{
	uint64_t pc = 0, sp = 0;
	struct kvm_one_reg rp = {.id = CORE_REG(regs.pc), .addr = (uint64_t)(uintptr_t)&pc};
	struct kvm_one_reg rs = {.id = CORE_REG(sp_el1), .addr = (uint64_t)(uintptr_t)&sp};
	if (ioctl(c->fd, KVM_GET_ONE_REG, &rp) == 0 && ioctl(c->fd, KVM_GET_ONE_REG, &rs) == 0)
		snprintf(buf, size, " (pc=0x%llx sp_el1=0x%llx)", (unsigned long long)pc,
			 (unsigned long long)sp);
	else if (size)
		buf[0] = '\0';
}

void arch_vm_destroy(struct vm *vm)
{
	struct arch_vm *a = &vm->arch;
	pl031_destroy(a->rtc);
	pl061_destroy(a->gpio);
	if (a->has_its)
		close(a->its_fd);
	if (a->has_gic)
		close(a->gic_fd);
	memset(a, 0, sizeof(*a));
}

/* The gpio-keys KEY_POWER button on the PL061 (the device tree's gpio-keys node). */
int arch_power_button(struct vm *vm)
{
	pl061_press(vm->arch.gpio, ARM64_GPIO_POWER_PIN);
	return 0;
}

/* ---- saved state: not on arm64 yet ---- */

int arch_migration_check(struct err *e)
{
	return err_set(e, -ENOTSUP, "saving, restoring and migrating an arm64 VM are not supported yet");
}

int arch_cpu_desc_fill(struct vm *vm, struct arch_cpu_desc *d, struct err *e)
{
	return arch_migration_check(e);
}

void arch_cpu_desc_put(const struct arch_cpu_desc *d, struct sbuf *b)
{
}

int arch_cpu_desc_parse(struct sreader *r, struct arch_cpu_desc *d, struct err *e)
{
	return 0;
}

int arch_cpu_desc_check(const struct arch_cpu_desc *saved, const struct arch_cpu_desc *here, struct err *e)
{
	return arch_migration_check(e);
}

int arch_vm_state_save(struct vm *vm, struct sbuf *b, struct err *e)
{
	return arch_migration_check(e);
}

int arch_vm_state_load(struct vm *vm, struct sreader *r, struct err *e)
{
	return arch_migration_check(e);
}

int arch_vcpu_state_save(struct vcpu *c, struct sbuf *b, struct err *e)
{
	return arch_migration_check(e);
}

int arch_vcpu_state_load(struct vcpu *c, struct sreader *r, struct err *e)
{
	return arch_migration_check(e);
}

unsigned arch_state_devices(struct vm *vm, struct machine_dev *d)
{
	return 0;
}
