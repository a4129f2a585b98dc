/* SPDX-License-Identifier: MIT */
/*
 * The arm64 guest's flattened device tree, written with libfdt: the machine
 * of vmm/arch/arm64/layout.h as Linux learns it (docs/ARCHITECTURE.md, "arm64
 * (in progress)", lists the bindings each node follows). Pure code: no KVM,
 * so it builds and is unit-tested on any host.
 */
#ifndef KVMINI_VMM_ARCH_ARM64_FDT_H
#define KVMINI_VMM_ARCH_ARM64_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The phandles the tree gives its providers. */
enum arm64_fdt_phandle {
	ARM64_PHANDLE_GIC = 1,
	ARM64_PHANDLE_ITS = 2,
	ARM64_PHANDLE_APB_CLK = 3,
	ARM64_PHANDLE_GPIO = 4,
};

struct arm64_fdt_params {
	unsigned ncpus;		  /* 1..ARM64_MAX_CPUS; vCPU i has MPIDR arm64_vcpu_mpidr(i) */
	uint64_t mem_base;	  /* guest-physical RAM: ARM64_RAM_BASE or above, page aligned */
	uint64_t mem_size;	  /* > 0, page aligned */
	const char *cmdline;	  /* /chosen/bootargs; NULL or "": none */
	uint64_t initrd_start;	  /* guest-physical, inside RAM */
	uint64_t initrd_size;	  /* 0: no initrd */
	bool its;		  /* a GICv3 ITS: PCI MSIs through it (msi-map) */
	uint64_t pci_mmio64_base; /* the 64-bit PCI window, above RAM, ARM64_PCI_MMIO64_ALIGN aligned */
	uint64_t pci_mmio64_size; /* 0: none */
};

/*
 * Writes the device tree into buf (size bytes; ARM64_FDT_MAX_SIZE is the most
 * a Linux guest accepts, a few KiB are needed). Returns 0 (fdt_totalsize(buf)
 * is then the blob's size), -EINVAL for bad parameters or -ENOSPC when size is
 * too small, with one message in e. buf's contents are undefined on error.
 */
int arm64_fdt_build(const struct arm64_fdt_params *p, void *buf, size_t size, struct err *e);

/*
 * The MPIDR_EL1 affinity (Aff2.Aff1.Aff0, bits 23..0) KVM gives vCPU id i at
 * reset (arch/arm64/kvm/sys_regs.c, reset_mpidr()): Aff0 = i & 0xf (16 per
 * cluster, the most a GICv3 SGI reaches by its target list), Aff1 = (i >> 4)
 * & 0xff, Aff2 = (i >> 12) & 0xff. The cpu nodes' reg is this value.
 */
uint64_t arm64_vcpu_mpidr(unsigned i);

/* The SPI that INTx pin (1..4 = INTA#..INTD#) of PCI slot (0..31) raises (vmm/arch/arm64/layout.h). */
unsigned arm64_pci_intx_spi(unsigned slot, unsigned pin);

#endif
