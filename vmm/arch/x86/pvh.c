/* SPDX-License-Identifier: MIT */
/*
 * PVH boot: ELF vmlinux loading and struct hvm_start_info. Runs on the set-up
 * thread while the VM is created (or reset), before any vCPU runs. The image
 * is untrusted input: every offset, size and count is checked against the file
 * length, without overflow, before it is used.
 */
#include "pvh.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "vmm/arch/x86/e820.h"
#include "vmm/arch/x86/layout.h"

#define PVH_PAGE_SIZE	4096u
#define PVH_MAX_MEMMAP	32u
#define ELF_NOTE_HDR_SZ 12u /* namesz, descsz, type: the same in ELF32 and ELF64 */

_Static_assert(sizeof(struct hvm_start_info) + sizeof(struct hvm_modlist_entry) +
		       PVH_MAX_MEMMAP * sizeof(struct hvm_memmap_table_entry) <=
		   PVH_PAGE_SIZE,
	       "PVH start info, module list and memory map fit in one page");
_Static_assert(LAYOUT_PVH_INFO_ADDR + PVH_PAGE_SIZE <= LAYOUT_ZERO_PAGE_ADDR,
	       "PVH page overlaps the zero page");

bool pvh_is_elf(const uint8_t *img, size_t len)
{
	Elf64_Ehdr eh;
	if (!img || len < sizeof(eh))
		return false;
	memcpy(&eh, img, sizeof(eh));
	return !memcmp(eh.e_ident, ELFMAG, SELFMAG) && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
	       eh.e_ident[EI_DATA] == ELFDATA2LSB && eh.e_machine == EM_X86_64 && eh.e_type == ET_EXEC;
}

/* True when [off, off + size) lies inside a file of len bytes; no sum can overflow. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1); /* v < 2^63 and a <= 8 here: no overflow */
}

/*
 * Scans one note area of size bytes for the PVH entry note. Returns 1 with
 * *entry set, 0 when absent, -EINVAL when the area is malformed. The name and
 * the descriptor start at offsets aligned to align (4, or 8 in 8-aligned
 * note sections) from the start of the area. size comes from a size_t file
 * length and the note sizes are 32-bit, so no sum below can overflow.
 */
static int scan_notes(const uint8_t *p, uint64_t size, uint64_t align, uint32_t *entry, struct err *e)
{
	uint64_t pos = 0;
	while (size - pos >= ELF_NOTE_HDR_SZ) {
		Elf64_Nhdr nh;
		memcpy(&nh, p + pos, sizeof(nh));
		uint64_t name_off = pos + ELF_NOTE_HDR_SZ;
		if (nh.n_namesz > size - name_off)
			return err_set(e, -EINVAL, "malformed ELF note: name size %u runs past the note area",
				       nh.n_namesz);
		uint64_t desc_off = align_up(name_off + nh.n_namesz, align);
		if (desc_off > size || nh.n_descsz > size - desc_off)
			return err_set(e, -EINVAL,
				       "malformed ELF note: descriptor size %u runs past the note area",
				       nh.n_descsz);
		const uint8_t *name = p + name_off;
		const uint8_t *desc = p + desc_off;
		pos = align_up(desc_off + nh.n_descsz, align);
		if (pos > size) /* a last note without its padding */
			pos = size;

		if (nh.n_type != XEN_ELFNOTE_PHYS32_ENTRY || nh.n_namesz != 4 || memcmp(name, "Xen", 4))
			continue;
		if (nh.n_descsz == 4) {
			uint32_t v;
			memcpy(&v, desc, 4);
			*entry = v;
		} else if (nh.n_descsz == 8) {
			uint64_t v;
			memcpy(&v, desc, 8);
			if (v > UINT32_MAX)
				return err_set(e, -EINVAL, "PVH entry point 0x%llx is above 4 GiB",
					       (unsigned long long)v);
			*entry = (uint32_t)v;
		} else {
			return err_set(e, -EINVAL,
				       "malformed PVH entry note: %u-byte descriptor (expected 4 or 8)",
				       nh.n_descsz);
		}
		return 1;
	}
	return 0;
}

static uint64_t note_align(uint64_t a)
{
	return a == 8 ? 8 : 4;
}

/* The notes in one note segment or section (what, number i) at [off, off + size) of the file. */
static int scan_area(const uint8_t *img, size_t len, const char *what, unsigned i, uint64_t off,
		     uint64_t size, uint64_t align, uint32_t *entry, struct err *e)
{
	if (!in_file(off, size, len))
		return err_set(e, -EINVAL,
			       "ELF note %s %u (offset 0x%llx, size 0x%llx) is past the end of the file",
			       what, i, (unsigned long long)off, (unsigned long long)size);
	return scan_notes(img + off, size, note_align(align), entry, e);
}

/* Looks for the note in PT_NOTE segments, then in SHT_NOTE sections. Same returns as scan_notes. */
static int find_pvh_note(const uint8_t *img, size_t len, const Elf64_Ehdr *eh, uint32_t *entry, struct err *e)
{
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh->e_phoff + (uint64_t)i * eh->e_phentsize, sizeof(ph));
		if (ph.p_type != PT_NOTE)
			continue;
		int r = scan_area(img, len, "segment", i, ph.p_offset, ph.p_filesz, ph.p_align, entry, e);
		if (r)
			return r;
	}

	if (eh->e_shoff == 0 || eh->e_shnum == 0)
		return 0; /* no section headers (or extended numbering, which vmlinux does not use) */
	if (eh->e_shentsize < sizeof(Elf64_Shdr) ||
	    !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * eh->e_shentsize, len))
		return err_set(e, -EINVAL, "malformed ELF: section header table is truncated or invalid");
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		Elf64_Shdr sh;
		memcpy(&sh, img + eh->e_shoff + (uint64_t)i * eh->e_shentsize, sizeof(sh));
		if (sh.sh_type != SHT_NOTE)
			continue;
		int r =
		    scan_area(img, len, "section", i, sh.sh_offset, sh.sh_size, sh.sh_addralign, entry, e);
		if (r)
			return r;
	}
	return 0;
}

int pvh_load_kernel(const uint8_t *img, size_t len, const struct guest_mem *mem, uint32_t *entry,
		    uint64_t *kernel_end, struct err *e)
{
	if (!pvh_is_elf(img, len))
		return err_set(e, -EINVAL, "kernel is not an ELF64 x86-64 executable");
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof(eh));
	if (eh.e_phentsize < sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
		return err_set(e, -EINVAL,
			       "malformed ELF kernel: bad program header table (%u entries of %u bytes)",
			       eh.e_phnum, eh.e_phentsize);
	if (!in_file(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, len))
		return err_set(e, -EINVAL,
			       "malformed ELF kernel: program header table runs past the end of the file");

	/* First pass: check every loadable segment, so a bad image writes nothing. */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return err_set(
			    e, -EINVAL,
			    "malformed ELF kernel: segment %u has file size 0x%llx > memory size 0x%llx", i,
			    (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
		if (!in_file(ph.p_offset, ph.p_filesz, len))
			return err_set(e, -EINVAL,
				       "malformed ELF kernel: segment %u (offset 0x%llx, size 0x%llx) is "
				       "past the end of the file",
				       i, (unsigned long long)ph.p_offset, (unsigned long long)ph.p_filesz);
		if (ph.p_memsz == 0)
			continue;
		if (ph.p_paddr > UINT64_MAX - ph.p_memsz)
			return err_set(e, -EINVAL,
				       "malformed ELF kernel: segment %u wraps around the address space", i);
		uint64_t end = ph.p_paddr + ph.p_memsz;
		if (ph.p_paddr < LAYOUT_HIGH_RAM_START)
			return err_set(e, -ENOSPC,
				       "kernel segment %u (0x%llx-0x%llx) overlaps the boot area below 1 MiB",
				       i, (unsigned long long)ph.p_paddr, (unsigned long long)end);
		if (!guest_mem_ptr(mem, ph.p_paddr, ph.p_memsz))
			return err_set(
			    e, -ENOSPC,
			    "kernel segment %u (0x%llx-0x%llx) does not fit in guest RAM (%llu MiB)", i,
			    (unsigned long long)ph.p_paddr, (unsigned long long)end,
			    (unsigned long long)(mem->ram_size >> 20));
		if (ph.p_paddr < lo)
			lo = ph.p_paddr;
		if (end > hi)
			hi = end;
	}
	if (hi == 0)
		return err_set(e, -EINVAL, "malformed ELF kernel: no loadable segments");

	uint32_t pvh_entry = 0;
	int r = find_pvh_note(img, len, &eh, &pvh_entry, e);
	if (r < 0)
		return r;
	if (r == 0)
		return err_set(e, -ENOEXEC, "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
	if (pvh_entry < lo || pvh_entry >= hi)
		return err_set(e, -EINVAL,
			       "PVH entry point 0x%x is outside the loaded kernel (0x%llx-0x%llx)", pvh_entry,
			       (unsigned long long)lo, (unsigned long long)hi);

	/* Second pass: copy. Every range was checked above. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		uint8_t *dst = guest_mem_ptr(mem, ph.p_paddr, ph.p_memsz);
		if (!dst) /* cannot happen after the first pass */
			return err_set(e, -ENOSPC, "kernel segment %u does not fit in guest RAM", i);
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz); /* .bss */
	}
	*entry = pvh_entry;
	*kernel_end = hi;
	return 0;
}

int pvh_write_start_info(const struct guest_mem *mem, uint64_t cmdline_gpa, uint64_t initrd_gpa,
			 uint64_t initrd_size, uint64_t rsdp_gpa, uint64_t *start_info_gpa, struct err *e)
{
	const uint64_t base = LAYOUT_PVH_INFO_ADDR;
	struct e820_entry map[PVH_MAX_MEMMAP];
	size_t nmap = e820_build(mem->ram_size, map, PVH_MAX_MEMMAP);
	if (nmap == 0)
		return err_set(e, -ENOSPC, "PVH memory map has more than %u entries", PVH_MAX_MEMMAP);
	if (initrd_size && !guest_mem_ptr(mem, initrd_gpa, initrd_size))
		return err_set(e, -EINVAL, "initrd (0x%llx, %llu bytes) is outside guest RAM",
			       (unsigned long long)initrd_gpa, (unsigned long long)initrd_size);

	uint32_t nmods = initrd_size ? 1 : 0;
	uint64_t modlist_off = sizeof(struct hvm_start_info);
	uint64_t memmap_off = modlist_off + nmods * sizeof(struct hvm_modlist_entry);
	uint64_t total = memmap_off + nmap * sizeof(struct hvm_memmap_table_entry);
	if (total > PVH_PAGE_SIZE) /* guaranteed by the _Static_assert; kept for clarity */
		return err_set(e, -ENOSPC, "PVH start info (%llu bytes) does not fit in one page",
			       (unsigned long long)total);

	uint8_t page[PVH_PAGE_SIZE];
	memset(page, 0, sizeof(page));
	struct hvm_start_info si = {
	    .magic = HVM_START_MAGIC_VALUE,
	    .version = HVM_START_INFO_VERSION,
	    .flags = 0,
	    .nr_modules = nmods,
	    .modlist_paddr = nmods ? base + modlist_off : 0,
	    .cmdline_paddr = cmdline_gpa,
	    .rsdp_paddr = rsdp_gpa,
	    .memmap_paddr = base + memmap_off,
	    .memmap_entries = (uint32_t)nmap,
	};
	memcpy(page, &si, sizeof(si));
	if (nmods) {
		struct hvm_modlist_entry mod = {.paddr = initrd_gpa, .size = initrd_size};
		memcpy(page + modlist_off, &mod, sizeof(mod));
	}
	for (size_t i = 0; i < nmap; i++) {
		struct hvm_memmap_table_entry me = {
		    .addr = map[i].addr, .size = map[i].size, .type = map[i].type};
		memcpy(page + memmap_off + i * sizeof(me), &me, sizeof(me));
	}
	if (guest_mem_write(mem, base, page, sizeof(page)))
		return err_set(e, -EFAULT, "the PVH start info page at 0x%llx is not guest RAM",
			       (unsigned long long)base);
	*start_info_gpa = base;
	return 0;
}
