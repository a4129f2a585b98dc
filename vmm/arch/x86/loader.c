/* SPDX-License-Identifier: MIT */
/* Set-up thread. */
#include "loader.h"

#include <errno.h>
#include <string.h>

#include "vmm/arch/x86/acpi.h"
#include "vmm/arch/x86/bzimage.h"
#include "vmm/arch/x86/pvh.h"
#include "vmm/arch/x86/layout.h"

/* Where a relocatable kernel decompresses itself when KASLR is off (LOAD_PHYSICAL_ADDR). */
#define KERNEL_DEFAULT_PHYS 0x1000000ULL

static int place_initrd(const struct guest_mem *m, const struct boot_images *im, uint64_t kernel_end,
			uint64_t addr_max, uint64_t *gpa, struct err *e)
{
	*gpa = 0;
	if (!im->initrd_len)
		return 0;
	uint64_t top = guest_mem_low_end(m);
	if (addr_max && addr_max + 1 < top)
		top = addr_max + 1;
	uint64_t mib = (im->initrd_len + (1 << 20) - 1) >> 20;
	if (im->initrd_len > top || ((top - im->initrd_len) & ~0xfffULL) < kernel_end)
		return err_set(e, -ENOSPC,
			       "initrd (%llu MiB) does not fit in guest memory next to the kernel; give the "
			       "guest more --mem",
			       (unsigned long long)mib);
	*gpa = (top - im->initrd_len) & ~0xfffULL;
	if (guest_mem_write(m, *gpa, im->initrd, im->initrd_len))
		return err_set(e, -EFAULT, "initrd does not fit in guest memory");
	return 0;
}

int boot_load(const struct guest_mem *m, const struct boot_images *im, struct boot_entry *entry,
	      struct err *e)
{
	uint8_t *acpi = guest_mem_ptr(m, LAYOUT_ACPI_START, LAYOUT_ACPI_END - LAYOUT_ACPI_START);
	if (!acpi)
		return err_set(e, -EFAULT, "ACPI area is outside guest memory");
	struct acpi_config acfg = {
	    .ncpus = im->ncpus, .pci_mem64_base = im->pci_mem64_base, .pci_mem64_size = im->pci_mem64_size};
	uint64_t rsdp = 0;
	int r = acpi_build(acpi, LAYOUT_ACPI_END - LAYOUT_ACPI_START, LAYOUT_ACPI_START, &acfg, &rsdp);
	if (r)
		return err_set(e, r, "cannot build the ACPI tables: %s", strerror(-r));

	size_t cmdline_len = strlen(im->cmdline);
	if (cmdline_len >= LAYOUT_CMDLINE_MAX)
		return err_set(e, -E2BIG, "kernel command line is %zu bytes; at most %llu are supported",
			       cmdline_len, LAYOUT_CMDLINE_MAX - 1);
	if (guest_mem_write(m, LAYOUT_CMDLINE_ADDR, im->cmdline, cmdline_len + 1))
		return err_set(e, -EFAULT, "command line area is outside guest memory");

	uint64_t initrd_gpa;
	if (bzimage_is(im->kernel, im->kernel_len)) {
		struct bzimage_info info;
		if ((r = bzimage_parse(im->kernel, im->kernel_len, &info, e)))
			return r;
		uint64_t load_end = BZ_KERNEL_LOAD_ADDR + (im->kernel_len - info.setup_size);
		uint64_t kernel_end = KERNEL_DEFAULT_PHYS + info.init_size;
		if (load_end > kernel_end)
			kernel_end = load_end;
		if ((r = place_initrd(m, im, kernel_end, info.initrd_addr_max, &initrd_gpa, e)))
			return r;
		struct bzimage_boot b = {
		    .cmdline_gpa = LAYOUT_CMDLINE_ADDR,
		    .cmdline_len = (uint32_t)cmdline_len,
		    .initrd_gpa = initrd_gpa,
		    .initrd_size = im->initrd_len,
		    .rsdp_gpa = rsdp,
		};
		if ((r = bzimage_load(im->kernel, im->kernel_len, m, &b, entry, e)))
			return r;
	} else if (pvh_is_elf(im->kernel, im->kernel_len)) {
		uint32_t entry32;
		uint64_t kernel_end, info_gpa;
		if ((r = pvh_load_kernel(im->kernel, im->kernel_len, m, &entry32, &kernel_end, e)))
			return r;
		if ((r = place_initrd(m, im, kernel_end, 0, &initrd_gpa, e)))
			return r;
		if ((r = pvh_write_start_info(m, LAYOUT_CMDLINE_ADDR, initrd_gpa, im->initrd_len, rsdp,
					      &info_gpa, e)))
			return r;
		entry->mode = BOOT_MODE_PVH32;
		entry->rip = entry32;
		entry->info_gpa = info_gpa;
	} else {
		return err_set(e, -ENOEXEC, "kernel is neither a bzImage nor an ELF vmlinux");
	}
	if (x86_write_boot_tables(m, entry->mode))
		return err_set(e, -EFAULT, "boot page tables are outside guest memory");
	return 0;
}
