/* SPDX-License-Identifier: MIT */
/*
 * The guest's x86 machine map: every guest-visible address, port and IRQ
 * number lives here, so that boot code, ACPI tables and devices agree.
 */
#ifndef KVMINI_VMM_LAYOUT_H
#define KVMINI_VMM_LAYOUT_H

/* ---- Guest physical memory (low 1 MiB follows the PC convention) ---- */
#define LAYOUT_GDT_ADDR	      0x500ULL	/* boot GDT (64-bit and PVH entry) */
#define LAYOUT_PVH_INFO_ADDR  0x6000ULL /* struct hvm_start_info + module list + memmap */
#define LAYOUT_ZERO_PAGE_ADDR 0x7000ULL /* struct boot_params for the 64-bit entry */
#define LAYOUT_BOOT_STACK     0x8ff0ULL /* initial RSP */
#define LAYOUT_PML4_ADDR      0x9000ULL /* identity page tables for the first 4 GiB */
#define LAYOUT_PDPT_ADDR      0xa000ULL
#define LAYOUT_PD_ADDR	      0xb000ULL /* four pages of 2 MiB PDEs: 0xb000..0xefff */
#define LAYOUT_CMDLINE_ADDR   0x20000ULL
#define LAYOUT_CMDLINE_MAX    4096ULL
#define LAYOUT_EBDA_START     0x9fc00ULL /* RAM below this is usable; up to 1 MiB is reserved */
#define LAYOUT_ACPI_START     0xe0000ULL /* RSDP, XSDT, FADT, DSDT, MADT: Linux scans here for the RSDP */
#define LAYOUT_ACPI_END	      0x100000ULL
#define LAYOUT_HIGH_RAM_START 0x100000ULL /* kernel loaded at 1 MiB */

/* RAM below 4 GiB stops here; the rest of the 32-bit space is MMIO (the "hole"). */
#define LAYOUT_MMIO32_START	0xc0000000ULL
#define LAYOUT_PCI_MMIO32_START 0xc0000000ULL /* PCI BARs (32-bit window) */
#define LAYOUT_PCI_MMIO32_END	0xfebfffffULL /* inclusive */
#define LAYOUT_IOAPIC_ADDR	0xfec00000ULL
#define LAYOUT_LAPIC_ADDR	0xfee00000ULL
#define LAYOUT_KVM_IDENTITY_MAP 0xfeffc000ULL  /* KVM_SET_IDENTITY_MAP_ADDR (VMX only, 1 page) */
#define LAYOUT_KVM_TSS		0xfeffd000ULL  /* KVM_SET_TSS_ADDR (VMX only, 3 pages) */
#define LAYOUT_4G		0x100000000ULL /* RAM beyond the hole continues here */
/*
 * The 64-bit PCI window (64-bit BARs) starts at the first 1 GiB boundary at or
 * above the end of RAM above 4 GiB (at 4 GiB when RAM ends below it), so it
 * depends on the RAM size: vm.c computes it, acpi.c patches it into the DSDT.
 */
#define LAYOUT_PCI_MMIO64_ALIGN 0x40000000ULL	/* 1 GiB */
#define LAYOUT_PCI_MMIO64_SIZE	0x1000000000ULL /* 64 GiB */

/* ---- I/O ports ---- */
#define PORT_I8042_DATA	       0x60
#define PORT_I8042_CMD	       0x64
#define PORT_RTC_INDEX	       0x70
#define PORT_RTC_DATA	       0x71
#define PORT_COM1	       0x3f8
#define PORT_COM1_LEN	       8
#define PORT_GUEST_EXIT	       0x501 /* exit-status port: a byte written here ends kvmini with it */
#define PORT_ACPI_PM1A_EVT     0x600 /* PM1a status (2 bytes) + enable (2 bytes) */
#define PORT_ACPI_PM1A_EVT_LEN 4
#define PORT_ACPI_PM1A_CNT     0x604 /* PM1a control (2 bytes): SLP_TYP/SLP_EN */
#define PORT_ACPI_PM1A_CNT_LEN 2
#define PORT_ACPI_RESET	       0x608 /* FADT RESET_REG: write ACPI_RESET_VALUE to reset */
#define ACPI_RESET_VALUE       0x01
#define PORT_PCI_CONFIG_ADDR   0xcf8
#define PORT_PCI_CONFIG_DATA   0xcfc
#define PORT_PCI_IO_START      0x1000 /* PCI I/O window for BARs (inclusive range) */
#define PORT_PCI_IO_END	       0xffff

/* ---- Interrupts (GSI == ISA IRQ, identity-mapped through the IOAPIC) ---- */
#define IRQ_I8042_KBD	1
#define IRQ_COM1	4
#define IRQ_RTC		8
#define IRQ_ACPI_SCI	9
#define IRQ_I8042_AUX	12
#define IOAPIC_NUM_PINS 24
/*
 * PCI INTx: pin p (0 = INTA#) of slot s raises GSI IRQ_PCI_INTX_BASE + (s + p) %
 * IRQ_PCI_INTX_COUNT, level-triggered, active low (the DSDT's _PRT, generated
 * by scripts/gen-prt.sh from these two values; pci_host_intx_gsi() computes the same).
 */
#define IRQ_PCI_INTX_BASE  16
#define IRQ_PCI_INTX_COUNT 8

/* ACPI sleep type written to PM1a_CNT.SLP_TYP for S5 (must match \_S5 in the DSDT). */
#define ACPI_S5_SLP_TYP 5

#endif
