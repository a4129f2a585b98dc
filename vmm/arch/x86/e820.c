/* SPDX-License-Identifier: MIT */
#include "e820.h"

#include "vmm/arch/x86/layout.h"

size_t e820_build(uint64_t ram_size, struct e820_entry *out, size_t max)
{
	struct e820_entry t[5];
	size_t n = 0;
	uint64_t low = ram_size < LAYOUT_MMIO32_START ? ram_size : LAYOUT_MMIO32_START;

	t[n++] = (struct e820_entry){0, LAYOUT_EBDA_START, E820_RAM};
	/* EBDA, VGA hole, option ROMs and the BIOS area (where the ACPI tables live). */
	t[n++] =
	    (struct e820_entry){LAYOUT_EBDA_START, LAYOUT_HIGH_RAM_START - LAYOUT_EBDA_START, E820_RESERVED};
	if (low > LAYOUT_HIGH_RAM_START)
		t[n++] = (struct e820_entry){LAYOUT_HIGH_RAM_START, low - LAYOUT_HIGH_RAM_START, E820_RAM};
	/* IOAPIC .. end of 4 GiB: fixed platform MMIO and KVM's VMX pages. */
	t[n++] = (struct e820_entry){LAYOUT_IOAPIC_ADDR, LAYOUT_4G - LAYOUT_IOAPIC_ADDR, E820_RESERVED};
	if (ram_size > low)
		t[n++] = (struct e820_entry){LAYOUT_4G, ram_size - low, E820_RAM};
	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		out[i] = t[i];
	return n;
}
