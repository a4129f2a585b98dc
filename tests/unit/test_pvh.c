/* SPDX-License-Identifier: MIT */
/* Unit tests for PVH boot (vmm/arch/x86/pvh.c): ELF loading, the entry note, hvm_start_info. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/arch/x86/e820.h"
#include "vmm/arch/x86/pvh.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)

/*
 * The synthetic kernel: an ELF header, three program headers (two PT_LOAD,
 * one PT_NOTE), a note area, and the two segments' file bytes.
 */
#define IMG_CAP	     0x2000
#define NOTE_OFF     0x200
#define SEG0_OFF     0x1000
#define SEG0_FILESZ  0x100
#define SEG0_MEMSZ   0x2000 /* 0x1f00 bytes of .bss */
#define SEG0_PADDR   0x1000000ULL
#define SEG1_OFF     (SEG0_OFF + SEG0_FILESZ)
#define SEG1_FILESZ  0x80
#define SEG1_PADDR   0x1200000ULL
#define IMG_LEN	     (SEG1_OFF + SEG1_FILESZ)
#define ENTRY	     (SEG0_PADDR + 0x40)
#define KERNEL_END   (SEG1_PADDR + SEG1_FILESZ)
#define PH_LOAD0     0
#define PH_LOAD1     1
#define PH_NOTE	     2
#define SH_OFF	     0x800	     /* section headers, when a test adds them */
#define XEN_NOTE_OFF (NOTE_OFF + 44) /* the Xen PHYS32 note, after the others */

struct image {
	uint8_t b[IMG_CAP];
	size_t len;
	size_t note_len;
};

static Elf64_Ehdr *ehdr(struct image *im)
{
	return (Elf64_Ehdr *)im->b;
}

static Elf64_Phdr *phdr(struct image *im, int i)
{
	return (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static size_t put_note(uint8_t *p, const char *name, uint32_t type, const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = {.n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz, .n_type = type};
	size_t off = 0;
	memcpy(p, &nh, sizeof(nh));
	off += sizeof(nh);
	memcpy(p + off, name, nh.n_namesz);
	off += (nh.n_namesz + 3) & ~3u;
	memcpy(p + off, desc, descsz);
	off += (descsz + 3) & ~3u;
	return off;
}

/* Builds the image; desc_len is the PVH note's descriptor size (4 or 8). */
static void build(struct image *im, uint32_t desc_len)
{
	memset(im, 0, sizeof(*im));
	Elf64_Ehdr *eh = ehdr(im);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0xffffffff81000000ULL; /* the 64-bit virtual entry, unused by PVH */
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 3;
	eh->e_shentsize = sizeof(Elf64_Shdr);

	*phdr(im, PH_LOAD0) = (Elf64_Phdr){.p_type = PT_LOAD,
					   .p_flags = PF_R | PF_X,
					   .p_offset = SEG0_OFF,
					   .p_vaddr = 0xffffffff81000000ULL,
					   .p_paddr = SEG0_PADDR,
					   .p_filesz = SEG0_FILESZ,
					   .p_memsz = SEG0_MEMSZ,
					   .p_align = 0x200000};
	*phdr(im, PH_LOAD1) = (Elf64_Phdr){.p_type = PT_LOAD,
					   .p_flags = PF_R | PF_W,
					   .p_offset = SEG1_OFF,
					   .p_vaddr = 0xffffffff81200000ULL,
					   .p_paddr = SEG1_PADDR,
					   .p_filesz = SEG1_FILESZ,
					   .p_memsz = SEG1_FILESZ,
					   .p_align = 0x200000};

	/* Notes: a GNU build id, a Xen note of another type, then the PVH entry. */
	uint8_t *n = im->b + NOTE_OFF;
	size_t off = 0;
	uint8_t build_id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	off += put_note(n + off, "GNU", NT_GNU_BUILD_ID, build_id, sizeof(build_id)); /* 12+4+8 = 24 */
	uint32_t guest_os = 0x78756e69;
	off += put_note(n + off, "Xen", 6 /* XEN_ELFNOTE_GUEST_OS */, &guest_os, 4); /* +20 = 44 */
	assert_int_equal(NOTE_OFF + off, XEN_NOTE_OFF);
	uint64_t entry = ENTRY;
	off += put_note(n + off, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &entry, desc_len);
	im->note_len = off;
	*phdr(im, PH_NOTE) = (Elf64_Phdr){.p_type = PT_NOTE,
					  .p_flags = PF_R,
					  .p_offset = NOTE_OFF,
					  .p_filesz = off,
					  .p_memsz = off,
					  .p_align = 4};

	for (size_t i = 0; i < SEG0_FILESZ; i++)
		im->b[SEG0_OFF + i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < SEG1_FILESZ; i++)
		im->b[SEG1_OFF + i] = (uint8_t)(0xc0 ^ i);
	im->len = IMG_LEN;
}

/* Moves the notes from the PT_NOTE segment to a SHT_NOTE section. */
static void notes_in_section_only(struct image *im)
{
	phdr(im, PH_NOTE)->p_type = PT_NULL;
	Elf64_Shdr *sh = (Elf64_Shdr *)(im->b + SH_OFF);
	memset(sh, 0, 3 * sizeof(*sh)); /* [0] is SHN_UNDEF */
	sh[1] = (Elf64_Shdr){.sh_type = SHT_PROGBITS, .sh_offset = SEG0_OFF, .sh_size = SEG0_FILESZ};
	sh[2] = (Elf64_Shdr){
	    .sh_type = SHT_NOTE, .sh_offset = NOTE_OFF, .sh_size = im->note_len, .sh_addralign = 4};
	ehdr(im)->e_shoff = SH_OFF;
	ehdr(im)->e_shnum = 3;
}

struct fixture {
	struct guest_mem mem;
	struct image im;
};

static int setup(void **state)
{
	static struct fixture f;
	struct err e = {{0}};
	memset(&f, 0, sizeof(f));
	if (guest_mem_alloc(&f.mem, 64 * MiB, &e))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	guest_mem_free(&f->mem);
	return 0;
}

static int load(struct fixture *f, uint32_t *entry, uint64_t *end, struct err *e)
{
	err_clear(e);
	return pvh_load_kernel(f->im.b, f->im.len, &f->mem, entry, end, e);
}

static bool guest_zero(struct fixture *f, uint64_t gpa, uint64_t len)
{
	const uint8_t *p = guest_mem_ptr(&f->mem, gpa, len);
	assert_non_null(p);
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void check_loaded(struct fixture *f)
{
	const uint8_t *g0 = guest_mem_ptr(&f->mem, SEG0_PADDR, SEG0_MEMSZ);
	const uint8_t *g1 = guest_mem_ptr(&f->mem, SEG1_PADDR, SEG1_FILESZ);
	assert_memory_equal(g0, f->im.b + SEG0_OFF, SEG0_FILESZ);
	assert_true(guest_zero(f, SEG0_PADDR + SEG0_FILESZ, SEG0_MEMSZ - SEG0_FILESZ));
	assert_memory_equal(g1, f->im.b + SEG1_OFF, SEG1_FILESZ);
}

static void test_is_elf(void **state)
{
	struct fixture *f = *state;
	build(&f->im, 8);
	assert_true(pvh_is_elf(f->im.b, f->im.len));
	assert_true(pvh_is_elf(f->im.b, sizeof(Elf64_Ehdr)));
	assert_false(pvh_is_elf(f->im.b, sizeof(Elf64_Ehdr) - 1));
	assert_false(pvh_is_elf(NULL, 0));
	assert_false(pvh_is_elf(f->im.b, 0));

	struct {
		size_t off;
		uint8_t val;
	} bad[] = {
	    {0, 0x7e},		    /* magic */
	    {3, 'g'},		    /* magic */
	    {EI_CLASS, ELFCLASS32}, /* 32-bit */
	    {EI_DATA, ELFDATA2MSB}, /* big-endian */
	    {offsetof(Elf64_Ehdr, e_machine), EM_386},
	    {offsetof(Elf64_Ehdr, e_type), ET_DYN},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		build(&f->im, 8);
		f->im.b[bad[i].off] = bad[i].val;
		assert_false(pvh_is_elf(f->im.b, f->im.len));
		uint32_t entry;
		uint64_t end;
		struct err e;
		assert_int_equal(load(f, &entry, &end, &e), -EINVAL);
		assert_string_equal(err_msg(&e), "kernel is not an ELF64 x86-64 executable");
	}
	/* A bzImage starts with a boot sector, not an ELF header. */
	uint8_t bz[1024] = {0};
	bz[0x1fe] = 0x55;
	bz[0x1ff] = 0xaa;
	memcpy(bz + 0x202, "HdrS", 4);
	assert_false(pvh_is_elf(bz, sizeof(bz)));
}

static void test_load(void **state)
{
	struct fixture *f = *state;
	uint32_t desc_lens[] = {8, 4};
	for (size_t k = 0; k < 2; k++) {
		build(&f->im, desc_lens[k]);
		/* Stale bytes where the .bss goes must be cleared. */
		memset(guest_mem_ptr(&f->mem, SEG0_PADDR, SEG0_MEMSZ), 0xaa, SEG0_MEMSZ);
		uint32_t entry = 0;
		uint64_t end = 0;
		struct err e;
		assert_int_equal(load(f, &entry, &end, &e), 0);
		assert_string_equal(err_msg(&e), "");
		assert_int_equal(entry, ENTRY);
		assert_int_equal(end, KERNEL_END);
		check_loaded(f);
	}
}

static void test_note_in_section(void **state)
{
	struct fixture *f = *state;
	build(&f->im, 8);
	notes_in_section_only(&f->im);
	uint32_t entry = 0;
	uint64_t end = 0;
	struct err e;
	assert_int_equal(load(f, &entry, &end, &e), 0);
	assert_int_equal(entry, ENTRY);
	assert_int_equal(end, KERNEL_END);
	check_loaded(f);

	/* An 8-aligned note section (as some linkers emit) with a 4-byte descriptor. */
	build(&f->im, 4);
	uint8_t *n = f->im.b + NOTE_OFF;
	memset(n, 0, 0x100);
	uint32_t v = ENTRY;
	Elf64_Nhdr nh = {4, 4, XEN_ELFNOTE_PHYS32_ENTRY};
	memcpy(n, &nh, sizeof(nh));
	memcpy(n + 12, "Xen", 4);
	memcpy(n + 16, &v, 4);
	f->im.note_len = 24;
	notes_in_section_only(&f->im);
	((Elf64_Shdr *)(f->im.b + SH_OFF))[2].sh_addralign = 8;
	assert_int_equal(load(f, &entry, &end, &e), 0);
	assert_int_equal(entry, ENTRY);
}

static void test_no_note(void **state)
{
	struct fixture *f = *state;
	memset(f->mem.map, 0, f->mem.ram_size);
	uint32_t entry = 0xdead;
	uint64_t end = 0xbeef;
	struct err e;

	/* No PT_NOTE and no sections. */
	build(&f->im, 8);
	phdr(&f->im, PH_NOTE)->p_type = PT_NULL;
	assert_int_equal(load(f, &entry, &end, &e), -ENOEXEC);
	assert_string_equal(err_msg(&e), "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
	/* Notes, but none of the right type. */
	build(&f->im, 8);
	f->im.b[XEN_NOTE_OFF + 8] = 17; /* n_type */
	assert_int_equal(load(f, &entry, &end, &e), -ENOEXEC);
	/* The right type under another name. */
	build(&f->im, 8);
	memcpy(f->im.b + XEN_NOTE_OFF + 12, "Xem", 3);
	assert_int_equal(load(f, &entry, &end, &e), -ENOEXEC);
	/* Sections without a note section. */
	build(&f->im, 8);
	notes_in_section_only(&f->im);
	((Elf64_Shdr *)(f->im.b + SH_OFF))[2].sh_type = SHT_PROGBITS;
	assert_int_equal(load(f, &entry, &end, &e), -ENOEXEC);
	/* An empty note segment. */
	build(&f->im, 8);
	phdr(&f->im, PH_NOTE)->p_filesz = 0;
	assert_int_equal(load(f, &entry, &end, &e), -ENOEXEC);

	/* Nothing was written and nothing returned. */
	assert_int_equal(entry, 0xdead);
	assert_int_equal(end, 0xbeef);
	assert_true(guest_zero(f, SEG0_PADDR, SEG0_MEMSZ));
	assert_true(guest_zero(f, SEG1_PADDR, SEG1_FILESZ));
}

static void test_no_load(void **state)
{
	struct fixture *f = *state;
	uint32_t entry = 0xdead;
	uint64_t end = 0xbeef;
	struct err e;

	build(&f->im, 8);
	phdr(&f->im, PH_LOAD0)->p_type = PT_NULL;
	phdr(&f->im, PH_LOAD1)->p_type = PT_NULL;
	assert_int_equal(load(f, &entry, &end, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "no loadable segments"));
	/* Empty PT_LOADs load nothing. */
	build(&f->im, 8);
	phdr(&f->im, PH_LOAD0)->p_filesz = phdr(&f->im, PH_LOAD0)->p_memsz = 0;
	phdr(&f->im, PH_LOAD1)->p_filesz = phdr(&f->im, PH_LOAD1)->p_memsz = 0;
	assert_int_equal(load(f, &entry, &end, &e), -EINVAL);
	/* With only the second segment, the entry (in the first) is outside the kernel. */
	build(&f->im, 8);
	phdr(&f->im, PH_LOAD0)->p_type = PT_NULL;
	assert_int_equal(load(f, &entry, &end, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "outside the loaded kernel"));
	assert_int_equal(entry, 0xdead);
	assert_int_equal(end, 0xbeef);
}

enum { F_EHDR, F_PH, F_SH, F_RAW };

struct mutation {
	const char *what;
	int expect;
	int where; /* F_PH: phdr index in idx; F_RAW: byte offset in idx */
	int idx;
	size_t field; /* offsetof within the header */
	size_t width; /* bytes */
	uint64_t value;
};

#define EH(fld)	    F_EHDR, 0, offsetof(Elf64_Ehdr, fld), sizeof(((Elf64_Ehdr *)0)->fld)
#define PH(i, fld)  F_PH, i, offsetof(Elf64_Phdr, fld), sizeof(((Elf64_Phdr *)0)->fld)
#define SH(i, fld)  F_SH, i, offsetof(Elf64_Shdr, fld), sizeof(((Elf64_Shdr *)0)->fld)
#define RAW(off, w) F_RAW, off, 0, w

static void apply(struct image *im, const struct mutation *m)
{
	size_t off;
	switch (m->where) {
	case F_EHDR:
		off = m->field;
		break;
	case F_PH:
		off = sizeof(Elf64_Ehdr) + (size_t)m->idx * sizeof(Elf64_Phdr) + m->field;
		break;
	case F_SH:
		off = SH_OFF + (size_t)m->idx * sizeof(Elf64_Shdr) + m->field;
		break;
	default:
		off = (size_t)m->idx;
		break;
	}
	memcpy(im->b + off, &m->value, m->width); /* little-endian host */
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	const uint64_t big = UINT64_MAX;
	const struct mutation ms[] = {
	    {"phoff past end", -EINVAL, EH(e_phoff), IMG_LEN},
	    {"phoff near end", -EINVAL, EH(e_phoff), IMG_LEN - 8},
	    {"phoff huge", -EINVAL, EH(e_phoff), big - 8},
	    {"phnum huge", -EINVAL, EH(e_phnum), 0xfffe},
	    {"phnum PN_XNUM", -EINVAL, EH(e_phnum), PN_XNUM},
	    {"phnum zero", -EINVAL, EH(e_phnum), 0},
	    {"phentsize small", -EINVAL, EH(e_phentsize), 32},
	    {"phentsize huge", -EINVAL, EH(e_phentsize), 0xffff},
	    {"filesz > memsz", -EINVAL, PH(PH_LOAD1, p_filesz), SEG1_FILESZ + 1},
	    {"offset+filesz past end", -EINVAL, PH(PH_LOAD1, p_offset), SEG1_OFF + 1},
	    {"offset+filesz overflow", -EINVAL, PH(PH_LOAD0, p_offset), big - 0x10},
	    {"offset past end", -EINVAL, PH(PH_LOAD0, p_offset), IMG_LEN + 0x1000},
	    {"filesz huge", -EINVAL, PH(PH_LOAD0, p_filesz), big},
	    {"paddr+memsz wraps", -EINVAL, PH(PH_LOAD0, p_paddr), big - 0x100},
	    {"segment beyond RAM", -ENOSPC, PH(PH_LOAD1, p_paddr), 63 * MiB + 0xfff80 + 1},
	    {"segment far beyond RAM", -ENOSPC, PH(PH_LOAD1, p_paddr), 0x100000000ULL},
	    {"segment in the hole", -ENOSPC, PH(PH_LOAD1, p_paddr), 0xfec00000ULL},
	    {"memsz huge", -ENOSPC, PH(PH_LOAD0, p_memsz), big - SEG0_PADDR},
	    {"memsz > RAM", -ENOSPC, PH(PH_LOAD0, p_memsz), 64 * MiB},
	    {"segment in the boot area", -ENOSPC, PH(PH_LOAD0, p_paddr), 0x7000},
	    {"note offset past end", -EINVAL, PH(PH_NOTE, p_offset), IMG_LEN},
	    {"note offset overflow", -EINVAL, PH(PH_NOTE, p_offset), big - 4},
	    {"note filesz past end", -EINVAL, PH(PH_NOTE, p_filesz), IMG_LEN},
	    {"first note namesz huge", -EINVAL, RAW(NOTE_OFF, 4), 0xffffffff},
	    {"first note namesz past area", -EINVAL, RAW(NOTE_OFF, 4), 0x1000},
	    {"first note descsz huge", -EINVAL, RAW(NOTE_OFF + 4, 4), 0xffffffff},
	    {"first note descsz past area", -EINVAL, RAW(NOTE_OFF + 4, 4), 0xfffffffd},
	    {"PVH note namesz huge", -EINVAL, RAW(XEN_NOTE_OFF, 4), 0xfffffffc},
	    {"PVH note descsz huge", -EINVAL, RAW(XEN_NOTE_OFF + 4, 4), 0xffffffff},
	    {"PVH note descsz 2", -EINVAL, RAW(XEN_NOTE_OFF + 4, 4), 2},
	    {"PVH note descsz 12", -EINVAL, RAW(XEN_NOTE_OFF + 4, 4), 12},
	    {"PVH entry above 4 GiB", -EINVAL, RAW(XEN_NOTE_OFF + 16, 8), 0x100000000ULL + ENTRY},
	    {"PVH entry outside the kernel", -EINVAL, RAW(XEN_NOTE_OFF + 16, 8), 0x100000},
	    {"PVH entry just past the kernel", -EINVAL, RAW(XEN_NOTE_OFF + 16, 8), KERNEL_END},
	    {"section table past end", -EINVAL, EH(e_shoff), IMG_LEN - 8},
	    {"section table offset overflow", -EINVAL, EH(e_shoff), big - 8},
	    {"section count huge", -EINVAL, EH(e_shnum), 0xffff},
	    {"section note offset past end", -EINVAL, SH(2, sh_offset), IMG_LEN + 1},
	    {"section note size overflow", -EINVAL, SH(2, sh_size), big},
	    {"section entsize small", -EINVAL, EH(e_shentsize), 8},
	};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		build(&f->im, 8);
		if (!strncmp(ms[i].what, "section", 7))
			notes_in_section_only(&f->im);
		apply(&f->im, &ms[i]);
		memset(f->mem.map, 0, 32 * MiB);
		uint32_t entry = 0xdead;
		uint64_t end = 0xbeef;
		struct err e;
		int r = load(f, &entry, &end, &e);
		if (r != ms[i].expect)
			fail_msg("%s: got %d (%s), expected %d", ms[i].what, r, err_msg(&e), ms[i].expect);
		if (!err_msg(&e)[0])
			fail_msg("%s: no message", ms[i].what);
		assert_int_equal(entry, 0xdead);
		assert_int_equal(end, 0xbeef);
		/* A rejected image writes nothing. */
		if (!guest_zero(f, SEG0_PADDR, SEG0_MEMSZ) || !guest_zero(f, SEG1_PADDR, SEG1_FILESZ))
			fail_msg("%s: guest memory written", ms[i].what);
	}
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	/* Every proper prefix of the image is rejected (the last segment ends the file). */
	for (size_t len = 0; len < IMG_LEN; len++) {
		build(&f->im, 8);
		uint32_t entry;
		uint64_t end;
		struct err e;
		err_clear(&e);
		int r = pvh_load_kernel(f->im.b, len, &f->mem, &entry, &end, &e);
		if (r != -EINVAL)
			fail_msg("prefix of %zu bytes: got %d (%s)", len, r, err_msg(&e));
	}
	/* Cut inside the note area (the segments have no file bytes): the note segment runs past the end. */
	build(&f->im, 8);
	struct image *im = &f->im;
	phdr(im, PH_LOAD0)->p_filesz = phdr(im, PH_LOAD0)->p_offset = 0;
	phdr(im, PH_LOAD1)->p_filesz = phdr(im, PH_LOAD1)->p_offset = 0;
	uint32_t entry;
	uint64_t end;
	struct err e;
	err_clear(&e);
	assert_int_equal(pvh_load_kernel(im->b, NOTE_OFF + 40, &f->mem, &entry, &end, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(pvh_load_kernel(im->b, NOTE_OFF + im->note_len, &f->mem, &entry, &end, &e), 0);
}

/* Deterministic byte-flipping: whatever the header says, the loader must not crash. */
static void test_mutations(void **state)
{
	struct fixture *f = *state;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int iter = 0; iter < 20000; iter++) {
		build(&f->im, (iter & 1) ? 8 : 4);
		if (iter & 2)
			notes_in_section_only(&f->im);
		int flips = 1 + iter % 4;
		for (int k = 0; k < flips; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Mostly the headers and notes, where the parsing happens. */
			size_t span = (x >> 60) < 12   ? 0x300
				      : (x >> 60) < 14 ? SH_OFF + 3 * sizeof(Elf64_Shdr)
						       : IMG_LEN;
			size_t off = (size_t)(x % span);
			uint8_t v = (uint8_t)(x >> 32);
			if ((x >> 40) & 1)
				v = (x >> 41) & 1 ? 0xff : 0x80;
			f->im.b[off] = v;
		}
		uint32_t entry;
		uint64_t end;
		struct err e;
		err_clear(&e);
		int r = pvh_load_kernel(f->im.b, f->im.len, &f->mem, &entry, &end, &e);
		if (r != 0 && r != -EINVAL && r != -ENOEXEC && r != -ENOSPC)
			fail_msg("iteration %d: unexpected %d", iter, r);
		if (r == 0) {
			assert_true(end <= f->mem.ram_size);
			assert_true(end > LAYOUT_HIGH_RAM_START);
		} else if (!err_msg(&e)[0]) {
			fail_msg("iteration %d: %d without a message", iter, r);
		}
	}
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void check_memmap(const uint8_t *m, uint32_t n, uint64_t ram_size)
{
	struct e820_entry want[16];
	size_t nwant = e820_build(ram_size, want, 16);
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < nwant; i++) {
		assert_int_equal(rd64(m + i * 24), want[i].addr);
		assert_int_equal(rd64(m + i * 24 + 8), want[i].size);
		assert_int_equal(rd32(m + i * 24 + 16), want[i].type);
		assert_int_equal(rd32(m + i * 24 + 20), 0);
	}
}

static void test_start_info(void **state)
{
	struct fixture *f = *state;
	uint8_t *page = guest_mem_ptr(&f->mem, LAYOUT_PVH_INFO_ADDR, 4096);
	assert_non_null(page);
	memset(page, 0xff, 4096); /* stale bytes must not survive */
	uint64_t gpa = 0;
	struct err e;
	err_clear(&e);
	assert_int_equal(
	    pvh_write_start_info(&f->mem, LAYOUT_CMDLINE_ADDR, 0x3000000, 0x12345, 0xe0000, &gpa, &e), 0);
	assert_int_equal(gpa, LAYOUT_PVH_INFO_ADDR);
	assert_int_equal(gpa, 0x6000);

	static const uint8_t magic[4] = {0x78, 0xc5, 0x6e, 0x33};
	assert_memory_equal(page, magic, 4);
	assert_int_equal(rd32(page + 4), 1);			/* version */
	assert_int_equal(rd32(page + 8), 0);			/* flags */
	assert_int_equal(rd32(page + 12), 1);			/* nr_modules */
	assert_int_equal(rd64(page + 16), 0x6000 + 56);		/* modlist_paddr */
	assert_int_equal(rd64(page + 24), LAYOUT_CMDLINE_ADDR); /* cmdline_paddr */
	assert_int_equal(rd64(page + 32), 0xe0000);		/* rsdp_paddr */
	assert_int_equal(rd64(page + 40), 0x6000 + 56 + 32);	/* memmap_paddr */
	assert_int_equal(rd32(page + 48), 4);			/* memmap_entries for 64 MiB */
	assert_int_equal(rd32(page + 52), 0);			/* reserved */
	assert_int_equal(rd64(page + 56), 0x3000000);		/* module paddr */
	assert_int_equal(rd64(page + 64), 0x12345);		/* module size */
	assert_int_equal(rd64(page + 72), 0);			/* module cmdline */
	assert_int_equal(rd64(page + 80), 0);			/* module reserved */
	check_memmap(page + 88, rd32(page + 48), f->mem.ram_size);
	/* 64 MiB: RAM to the EBDA, reserved to 1 MiB, RAM to 64 MiB, reserved platform MMIO. */
	assert_int_equal(rd64(page + 88), 0);
	assert_int_equal(rd64(page + 96), LAYOUT_EBDA_START);
	assert_int_equal(rd32(page + 104), 1);
	assert_int_equal(rd64(page + 136), 0x100000);
	assert_int_equal(rd64(page + 144), 63 * MiB);
	assert_int_equal(rd32(page + 152), 1);
	for (size_t i = 88 + 4 * 24; i < 4096; i++)
		if (page[i])
			fail_msg("byte 0x%zx of the start info page is 0x%02x", i, page[i]);

	/* Without an initrd: no module list, the memory map follows the header. */
	memset(page, 0xff, 4096);
	assert_int_equal(pvh_write_start_info(&f->mem, LAYOUT_CMDLINE_ADDR, 0x3000000, 0, 0, &gpa, &e), 0);
	assert_int_equal(rd32(page + 12), 0);
	assert_int_equal(rd64(page + 16), 0);
	assert_int_equal(rd64(page + 32), 0);
	assert_int_equal(rd64(page + 40), 0x6000 + 56);
	check_memmap(page + 56, rd32(page + 48), f->mem.ram_size);
	for (size_t i = 56 + 4 * 24; i < 4096; i++)
		assert_int_equal(page[i], 0);

	/* An initrd outside RAM is refused. */
	gpa = 0;
	err_clear(&e);
	assert_int_equal(pvh_write_start_info(&f->mem, LAYOUT_CMDLINE_ADDR, 63 * MiB, 2 * MiB, 0, &gpa, &e),
			 -EINVAL);
	assert_non_null(strstr(err_msg(&e), "initrd"));
	assert_int_equal(gpa, 0);
	err_clear(&e);
	assert_int_equal(
	    pvh_write_start_info(&f->mem, LAYOUT_CMDLINE_ADDR, UINT64_MAX - 10, 100, 0, &gpa, &e), -EINVAL);
}

static void test_start_info_high_ram(void **state)
{
	/* 5 GiB: RAM continues above 4 GiB, so the map has a fifth entry. MAP_NORESERVE keeps this cheap. */
	struct guest_mem m;
	struct err e = {{0}};
	if (guest_mem_alloc(&m, 5ULL << 30, &e)) {
		skip();
		return;
	}
	uint64_t gpa;
	assert_int_equal(pvh_write_start_info(&m, LAYOUT_CMDLINE_ADDR, LAYOUT_4G, 4096, 0, &gpa, &e), 0);
	const uint8_t *page = guest_mem_ptr(&m, LAYOUT_PVH_INFO_ADDR, 4096);
	assert_int_equal(rd32(page + 48), 5);
	check_memmap(page + 88, 5, m.ram_size);
	assert_int_equal(rd64(page + 88 + 4 * 24), LAYOUT_4G);
	assert_int_equal(rd64(page + 88 + 4 * 24 + 8), (5ULL << 30) - LAYOUT_MMIO32_START);
	guest_mem_free(&m);
}

static void test_start_info_no_ram(void **state)
{
	/* A memory without the low page (never built by the VMM) fails cleanly. */
	struct guest_mem m;
	memset(&m, 0, sizeof(m));
	m.ram_size = 64 * MiB;
	uint64_t gpa = 0;
	struct err e = {{0}};
	assert_int_equal(pvh_write_start_info(&m, 0, 0, 0, 0, &gpa, &e), -EFAULT);
	assert_int_equal(gpa, 0);
	assert_non_null(strstr(err_msg(&e), "0x6000"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_elf),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_note_in_section),
	    cmocka_unit_test(test_no_note),
	    cmocka_unit_test(test_no_load),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_start_info),
	    cmocka_unit_test(test_start_info_high_ram),
	    cmocka_unit_test(test_start_info_no_ram),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
