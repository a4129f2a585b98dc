/* SPDX-License-Identifier: MIT */
/*
 * What the shared VMM code (vmm/vm.c, vcpu.c, lib.c, migration/) asks of
 * the architecture. Each architecture's directory (vmm/arch/x86/,
 * vmm/arch/arm64/) implements all of it in its arch.c; the Makefile compiles
 * exactly one of them (ARCH=x86 or ARCH=arm64) and puts that directory's
 * include/ on the include path for "arch_types.h" (the types shared code
 * embeds: struct arch_vm, struct arch_cpu_desc, ARCH_GUEST_IOCTLS).
 *
 * Order of calls while vm_create() builds a machine:
 *   arch_kvm_check -> KVM_CREATE_VM -> arch_vm_init -> RAM (arch_ram_layout)
 *   -> arch_pci_windows, arch_devices_create, the shared PCI devices
 *   -> arch_boot_load -> per vCPU: KVM_CREATE_VCPU, arch_vcpu_init
 *   -> arch_vm_finish.
 * vm_destroy() calls arch_vm_destroy() after the vCPUs stopped.
 */
#ifndef KVMINI_VMM_ARCH_ARCH_H
#define KVMINI_VMM_ARCH_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch_types.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"
#include "devices/pci.h"
#include "vmm/memory.h"

struct vm;
struct vm_params;
struct vcpu;
struct machine_dev;

/* The capabilities this architecture needs of the KVM device kvm_fd: 0, or -ENOTSUP naming one. */
int arch_kvm_check(int kvm_fd, struct err *e);

/*
 * Where ram_size bytes of RAM go in guest-physical space: fills the gpa and
 * size of at most GUEST_MEM_MAX_REGIONS regions, in ascending order, and
 * returns how many (memory.c maps them back to back). Pure.
 */
unsigned arch_ram_layout(uint64_t ram_size, struct guest_mem_region *r);

/* On the new VM fd, before RAM: the interrupt controller, timers, vm->irq_routes. */
int arch_vm_init(struct vm *vm, const struct vm_params *p, struct err *e);

/* The PCI host's BAR windows for a machine with this RAM. Pure. */
struct pci_windows arch_pci_windows(const struct guest_mem *m);

/*
 * The platform devices (UART, RTC, ...) and the PCI host's configuration
 * access on the buses (vm->pci exists; its memory windows are registered by
 * the caller, an I/O window by the architecture that has one).
 */
int arch_devices_create(struct vm *vm, const struct vm_params *p, struct err *e);

/* The line PCI function devfn's INTA# drives. */
struct irq_line arch_pci_intx(struct vm *vm, unsigned devfn);

/*
 * The kernel, initrd, command line and the machine description (ACPI
 * tables, device tree) into guest memory; the boot CPU's entry state is
 * kept in vm->arch for arch_vcpu_init().
 */
int arch_boot_load(struct vm *vm, const struct vm_params *p, struct err *e);

/* vCPU c->index after KVM_CREATE_VCPU (c->fd, c->run set): registers, CPUID, ... */
int arch_vcpu_init(struct vcpu *c, struct err *e);

/* Once every vCPU exists (the GIC on arm64 initialises then). */
int arch_vm_finish(struct vm *vm, struct err *e);

/*
 * An exit the shared loop does not serve itself (it serves MMIO, INTR,
 * SYSTEM_EVENT, FAIL_ENTRY, INTERNAL_ERROR): true when this architecture did.
 */
bool arch_vcpu_exit(struct vcpu *c);

/* " (pc=... sp=...)" or "" into buf, for an error message about vCPU c (its own thread). */
void arch_vcpu_regs_note(struct vcpu *c, char *buf, size_t size);

/* Frees what arch_vm_init() and arch_devices_create() made (vCPUs already stopped). */
void arch_vm_destroy(struct vm *vm);

/* Presses the guest's power button (the API's shutdown): 0 or -ENOTSUP. */
int arch_power_button(struct vm *vm);

/* ---- saved state (vmm/migration/machine_state.c) ---- */

/* 0 when this architecture can save and load machines; else -ENOTSUP with a message. */
int arch_migration_check(struct err *e);
/* The CPU part of the machine description (x86: vCPU 0's CPUID); vm may be running. */
int arch_cpu_desc_fill(struct vm *vm, struct arch_cpu_desc *d, struct err *e);
/* Its encoding at the end of the CONFIG record, its bounded parse and the destination's check. */
void arch_cpu_desc_put(const struct arch_cpu_desc *d, struct sbuf *b);
int arch_cpu_desc_parse(struct sreader *r, struct arch_cpu_desc *d, struct err *e);
int arch_cpu_desc_check(const struct arch_cpu_desc *saved, const struct arch_cpu_desc *here, struct err *e);
/* KVM's VM-wide and per-vCPU state (the machine is paused). */
int arch_vm_state_save(struct vm *vm, struct sbuf *b, struct err *e);
int arch_vm_state_load(struct vm *vm, struct sreader *r, struct err *e);
int arch_vcpu_state_save(struct vcpu *c, struct sbuf *b, struct err *e);
int arch_vcpu_state_load(struct vcpu *c, struct sreader *r, struct err *e);
/* The architecture's platform devices in the device table, in load order; returns how many (<= 8). */
unsigned arch_state_devices(struct vm *vm, struct machine_dev *d);

#endif
