/* SPDX-License-Identifier: MIT */
/*
 * kvmini's DSDT, compiled by iasl at build time and embedded by dsdt_blob.S.
 *
 * Ports, IRQs and the S5 sleep type come from vmm/arch/x86/layout.h through iasl's
 * preprocessor. iasl rejects the ULL-suffixed addresses and silently turns
 * expressions inside resource descriptors into 0, so those values are
 * literals here; tests/unit/test_acpi.c checks them against layout.h.
 * prt.asl is generated at build time (scripts/gen-prt.sh, iasl -I $(BUILD)/acpi).
 */
#include "layout.h"

DefinitionBlock ("", "DSDT", 2, "KVMINI", "KVMINIVM", 1)
{
	/* SLP_TYP for PM1a/PM1b: the PM device powers off on SLP_EN with this type. */
	Name (\_S5, Package () { ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0 })

	Scope (\_SB)
	{
		/* PCI root bridge: plain PCI (no ECAM yet). */
		Device (PCI0)
		{
			Name (_HID, EisaId ("PNP0A03"))
			Name (_UID, 0)
			Name (_SEG, 0)
			Name (_BBN, 0)
			/* No _ADR: iasl warns on _HID plus _ADR, and Linux reads neither for a root bridge. */
			/*
			 * INTx for drivers without MSI-X: slot and pin to an IOAPIC GSI, the swizzle of
			 * pci_host_intx_gsi() (entries generated from vmm/arch/x86/layout.h).
			 */
			#include "prt.asl"
			Name (_CRS, ResourceTemplate ()
			{
				WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
					0x0000,		// Granularity
					0x0000,		// Range Minimum
					0x0000,		// Range Maximum
					0x0000,		// Translation Offset
					0x0001,		// Length
					,, )
				/* The config ports belong to the bridge itself. */
				IO (Decode16, PORT_PCI_CONFIG_ADDR, PORT_PCI_CONFIG_ADDR, 0x01, 0x08)
				/* I/O forwarded to the bus: everything but the config ports. */
				WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
					0x0000,		// Granularity
					0x0000,		// Range Minimum
					0x0CF7,		// Range Maximum: PORT_PCI_CONFIG_ADDR - 1
					0x0000,		// Translation Offset
					0x0CF8,		// Length
					,, , TypeStatic, DenseTranslation)
				WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
					0x0000,		// Granularity
					0x0D00,		// Range Minimum
					PORT_PCI_IO_END,	// Range Maximum
					0x0000,		// Translation Offset
					0xF300,		// Length
					,, , TypeStatic, DenseTranslation)
				/* 32-bit BAR window: LAYOUT_PCI_MMIO32_START..LAYOUT_PCI_MMIO32_END. */
				DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
					0x00000000,	// Granularity
					0xC0000000,	// Range Minimum
					0xFEBFFFFF,	// Range Maximum
					0x00000000,	// Translation Offset
					0x3EC00000,	// Length
					,, , AddressRangeMemory, TypeStatic)
				/*
				 * 64-bit BAR window above RAM: where it lies depends on the RAM size, so
				 * acpi_build() finds this descriptor by these placeholder values (ACPI_MEM64_PLACEHOLDER_*
				 * in acpi.c) and patches in the machine's window. Cacheable, not Prefetchable: Linux
				 * would not place non-prefetchable BARs in a prefetchable window.
				 */
				QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
					0x0000000000000000,	// Granularity
					0x0000DEAD00000000,	// Range Minimum (placeholder)
					0x0000DEADFFFFFFFF,	// Range Maximum (placeholder)
					0x0000000000000000,	// Translation Offset
					0x0000000100000000,	// Length (placeholder)
					,, , AddressRangeMemory, TypeStatic)
			})
		}

		/* Legacy ISA devices: Linux binds 8250_pnp, rtc_cmos and i8042 through these. */
		Device (COM1)
		{
			Name (_HID, EisaId ("PNP0501"))
			Name (_UID, 1)
			Method (_STA, 0, NotSerialized)
			{
				Return (0x0F)
			}
			Name (_CRS, ResourceTemplate ()
			{
				IO (Decode16, PORT_COM1, PORT_COM1, 0x08, PORT_COM1_LEN)
				IRQNoFlags () {IRQ_COM1}
			})
		}

		Device (RTC)
		{
			Name (_HID, EisaId ("PNP0B00"))
			Method (_STA, 0, NotSerialized)
			{
				Return (0x0F)
			}
			Name (_CRS, ResourceTemplate ()
			{
				IO (Decode16, PORT_RTC_INDEX, PORT_RTC_INDEX, 0x01, 0x02)
				IRQNoFlags () {IRQ_RTC}
			})
		}

		/*
		 * Motherboard resources: the exit-status port (a guest byte there ends kvmini with
		 * that status), so that Linux reserves it and never hands it to a driver.
		 */
		Device (MBRS)
		{
			Name (_HID, EisaId ("PNP0C02"))
			Name (_UID, 0)
			Method (_STA, 0, NotSerialized)
			{
				Return (0x0F)
			}
			Name (_CRS, ResourceTemplate ()
			{
				IO (Decode16, PORT_GUEST_EXIT, PORT_GUEST_EXIT, 0x01, 0x01)
			})
		}

		/* No PS/2 mouse device: Linux then skips probing the AUX port. */
		Device (KBD)
		{
			Name (_HID, EisaId ("PNP0303"))
			Method (_STA, 0, NotSerialized)
			{
				Return (0x0F)
			}
			Name (_CRS, ResourceTemplate ()
			{
				IO (Decode16, PORT_I8042_DATA, PORT_I8042_DATA, 0x01, 0x01)
				IO (Decode16, PORT_I8042_CMD, PORT_I8042_CMD, 0x01, 0x01)
				IRQNoFlags () {IRQ_I8042_KBD}
			})
		}
	}
}
