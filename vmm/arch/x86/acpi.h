/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for the x86 guest: RSDP, XSDT, FADT, FACS, MADT and the DSDT
 * compiled from vmm/arch/x86/dsdt.asl. A pure function fills a buffer that stands
 * for guest memory; the caller copies it to LAYOUT_ACPI_START and passes the
 * RSDP address to the kernel (boot_params.acpi_rsdp_addr or PVH rsdp_paddr).
 */
#ifndef KVMINI_VMM_BOOT_ACPI_H
#define KVMINI_VMM_BOOT_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 64

/* Generic OEM fields written into every table kvmini generates. */
#define ACPI_OEM_ID	  "KVMINI"
#define ACPI_OEM_TABLE_ID "KVMINIVM"
#define ACPI_CREATOR_ID	  "KVMI"

struct acpi_config {
	unsigned ncpus; /* 1..ACPI_MAX_CPUS; APIC ID and ACPI processor UID of CPU i are i */
	/*
	 * The 64-bit PCI window (struct pci_windows' mem64) that PCI0's _CRS
	 * offers the guest for 64-bit BARs. size 0: none (the descriptor then
	 * reads as an empty range, which the guest ignores).
	 */
	uint64_t pci_mem64_base, pci_mem64_size;
};

/*
 * buf represents guest-physical [buf_gpa, buf_gpa + len); buf_gpa must be
 * 16-byte aligned and the tables must end below 4 GiB (32-bit pointers).
 * The whole buffer is zeroed, then the RSDP goes at its start.
 * Returns 0, -EINVAL on bad arguments (including a 64-bit window that wraps
 * or starts below 4 GiB), or -ENOSPC when the tables do not fit
 * (buf is untouched on error). *rsdp_gpa receives the RSDP address.
 */
int acpi_build(uint8_t *buf, size_t len, uint64_t buf_gpa, const struct acpi_config *cfg, uint64_t *rsdp_gpa);

/* The DSDT AML embedded by vmm/arch/x86/dsdt_blob.S. */
extern const uint8_t dsdt_aml[], dsdt_aml_end[];

#endif
