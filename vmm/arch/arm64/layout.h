/* SPDX-License-Identifier: MIT */
/*
 * The arm64 guest's machine map: every guest-visible address and interrupt
 * number of the arm64 machine lives here, so that the device tree
 * (vmm/arch/arm64/fdt.c) and the VMM's GIC, UART, RTC, GPIO and PCI set-up
 * agree. Pure constants: nothing here depends on the host's architecture.
 *
 * Guest physical map (IPA; KVM's default IPA size is 40 bits):
 *
 *   0x0000_0000 .. 0x07ff_ffff  unused (room for a flash/firmware image later)
 *   0x0800_0000  GICv3 distributor (GICD)         64 KiB
 *   0x0804_0000  GICv3 ITS (GITS)                128 KiB (only with an ITS)
 *   0x0810_0000  GICv3 redistributors (GICR)     128 KiB per vCPU, 16 MiB reserved
 *   0x0a00_0000  UART, 16550A (byte registers)     4 KiB
 *   0x0a01_0000  RTC, PL031                        4 KiB
 *   0x0a02_0000  GPIO, PL061 (the power button)    4 KiB
 *   0x1000_0000  PCIe ECAM, buses 0..255         256 MiB
 *   0x4000_0000  PCI 32-bit MMIO window            1 GiB
 *   0x8000_0000  RAM (as kvmtool; Arm's "DRAM at 2 GiB" convention)
 *   above RAM    PCI 64-bit MMIO window (placed by the caller, 1 GiB aligned)
 *
 * Interrupt numbers below are those the device tree uses: an SPI n is GIC
 * INTID 32 + n (what KVM_IRQ_LINE takes for an SPI), a PPI n is INTID 16 + n.
 */
#ifndef KVMINI_VMM_ARCH_ARM64_LAYOUT_H
#define KVMINI_VMM_ARCH_ARM64_LAYOUT_H

/* The most vCPUs an arm64 guest gets (kvmini's KVMINI_MAX_CPUS). */
#define ARM64_MAX_CPUS 64

/* ---- GICv3 (sizes: KVM_VGIC_V3_*_SIZE, Documentation/virt/kvm/devices/arm-vgic-{v3,its}.rst) ---- */
#define ARM64_GICD_BASE	    0x08000000ULL
#define ARM64_GICD_SIZE	    0x10000ULL /* KVM_VGIC_V3_DIST_SIZE */
#define ARM64_GITS_BASE	    0x08040000ULL
#define ARM64_GITS_SIZE	    0x20000ULL /* KVM_VGIC_V3_ITS_SIZE */
#define ARM64_GICR_BASE	    0x08100000ULL
#define ARM64_GICR_STRIDE   0x20000ULL	  /* KVM_VGIC_V3_REDIST_SIZE: two 64 KiB frames per vCPU */
#define ARM64_GICR_MAX_SIZE 0x01000000ULL /* room for 128 redistributors */

/* ---- Platform devices ---- */
#define ARM64_UART_BASE	    0x0a000000ULL
#define ARM64_UART_SIZE	    0x1000ULL
#define ARM64_UART_CLOCK_HZ 1843200 /* the usual 16550 crystal: divisor 1 = 115200 baud */
#define ARM64_RTC_BASE	    0x0a010000ULL
#define ARM64_RTC_SIZE	    0x1000ULL
#define ARM64_APB_CLOCK_HZ  24000000 /* apb_pclk, the PrimeCell bus clock the PL031 and PL061 name */
#define ARM64_GPIO_BASE	    0x0a020000ULL
#define ARM64_GPIO_SIZE	    0x1000ULL
/* The PL061 pin a gpio-keys KEY_POWER button is wired to, active high (as QEMU's virt machine). */
#define ARM64_GPIO_POWER_PIN 3

/* ---- PCIe (pci-host-ecam-generic): ECAM is bus << 20 | dev << 15 | fn << 12 | reg ---- */
#define ARM64_PCI_ECAM_BASE   0x10000000ULL
#define ARM64_PCI_ECAM_BUSES  256
#define ARM64_PCI_ECAM_SIZE   (ARM64_PCI_ECAM_BUSES * 0x100000ULL)
#define ARM64_PCI_MMIO32_BASE 0x40000000ULL
#define ARM64_PCI_MMIO32_SIZE 0x40000000ULL
/*
 * The 64-bit window lies above RAM, so it depends on the RAM size: the VMM
 * puts it at the first ARM64_PCI_MMIO64_ALIGN boundary at or above the end of
 * RAM (at most ARM64_PCI_MMIO64_SIZE) and passes it to arm64_fdt_build().
 */
#define ARM64_PCI_MMIO64_ALIGN 0x40000000ULL   /* 1 GiB */
#define ARM64_PCI_MMIO64_SIZE  0x1000000000ULL /* 64 GiB */

/* ---- RAM ---- */
#define ARM64_RAM_BASE 0x80000000ULL
/* Linux's arm64 booting.rst: the DTB is 8-byte aligned and at most 2 MiB. */
#define ARM64_FDT_MAX_SIZE 0x200000ULL
/* arm64 COMMAND_LINE_SIZE (arch/arm64/include/uapi/asm/setup.h), NUL included. */
#define ARM64_CMDLINE_MAX 2048

/* ---- Interrupts ---- */
/* Architected timer PPIs (the arch_timer binding's order: secure, non-secure, virtual, hypervisor). */
#define ARM64_PPI_TIMER_SEC  13 /* INTID 29 */
#define ARM64_PPI_TIMER_NS   14 /* INTID 30: KVM's EL1 physical timer */
#define ARM64_PPI_TIMER_VIRT 11 /* INTID 27: KVM's EL1 virtual timer */
#define ARM64_PPI_TIMER_HYP  10 /* INTID 26 */
/* SPIs, level-triggered active high (the only level type a GIC SPI has). */
#define ARM64_SPI_UART 1
#define ARM64_SPI_RTC  2
#define ARM64_SPI_GPIO 3
/*
 * PCI INTx: pin p (1 = INTA#) of slot s raises SPI ARM64_SPI_PCI_INTX_BASE +
 * (s + p - 1) % ARM64_PCI_INTX_COUNT (arm64_pci_intx_spi()), the same swizzle
 * as x86's pci_host_intx_gsi(); the device tree's interrupt-map says so.
 */
#define ARM64_SPI_PCI_INTX_BASE 16
#define ARM64_PCI_INTX_COUNT	8

#endif
