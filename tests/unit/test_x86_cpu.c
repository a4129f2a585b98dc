/* SPDX-License-Identifier: MIT */
/* Unit tests for the boot CPU state (vmm/arch/x86/x86_cpu.c): GDT, page tables, registers, MSRs, LAPIC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "vmm/arch/x86/x86_cpu.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define CR0_PE	 (1ULL << 0)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

static int setup_mem(void **state)
{
	static struct guest_mem m;
	struct err e = {0};
	if (guest_mem_alloc(&m, 64 * MiB, &e))
		return -1;
	/* Garbage everywhere the tables go, so stale entries would show. */
	memset(m.map, 0xcc, 0x10000);
	*state = &m;
	return 0;
}

static int teardown_mem(void **state)
{
	guest_mem_free(*state);
	return 0;
}

struct desc {
	uint32_t base, limit;
	unsigned type, s, dpl, p, avl, l, db, g;
};

static struct desc decode(uint64_t d)
{
	struct desc r;
	r.limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
	r.base = (uint32_t)(((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000));
	r.type = (d >> 40) & 0xf;
	r.s = (d >> 44) & 1;
	r.dpl = (d >> 45) & 3;
	r.p = (d >> 47) & 1;
	r.avl = (d >> 52) & 1;
	r.l = (d >> 53) & 1;
	r.db = (d >> 54) & 1;
	r.g = (d >> 55) & 1;
	return r;
}

static uint64_t gdt_at(const struct guest_mem *m, unsigned selector)
{
	uint64_t d;
	assert_int_equal(guest_mem_read(m, LAYOUT_GDT_ADDR + selector, &d, sizeof(d)), 0);
	return d;
}

static void check_flat(struct desc d)
{
	assert_int_equal(d.base, 0);
	assert_int_equal(d.limit, 0xfffff);
	assert_int_equal(d.g, 1);
	assert_int_equal(d.p, 1);
	assert_int_equal(d.s, 1);
	assert_int_equal(d.dpl, 0);
}

static uint64_t rd64(const struct guest_mem *m, uint64_t gpa)
{
	uint64_t v;
	assert_int_equal(guest_mem_read(m, gpa, &v, sizeof(v)), 0);
	return v;
}

/* Walks the 4-level tables from CR3 as the MMU would; returns false when not mapped. */
static bool translate(const struct guest_mem *m, uint64_t cr3, uint64_t va, uint64_t *pa)
{
	const uint64_t addr_mask = 0x000ffffffffff000ULL;
	uint64_t e = rd64(m, (cr3 & addr_mask) + ((va >> 39) & 0x1ff) * 8);
	if (!(e & 1))
		return false;
	assert_true(e & 2); /* writable */
	e = rd64(m, (e & addr_mask) + ((va >> 30) & 0x1ff) * 8);
	if (!(e & 1))
		return false;
	assert_true(e & 2);
	assert_false(e & 0x80); /* no 1 GiB pages: they need a CPUID feature */
	e = rd64(m, (e & addr_mask) + ((va >> 21) & 0x1ff) * 8);
	if (!(e & 1))
		return false;
	assert_true(e & 2);
	assert_true(e & 0x80); /* 2 MiB page */
	*pa = (e & 0x000fffffffe00000ULL) | (va & 0x1fffff);
	return true;
}

static void test_gdt_long_mode(void **state)
{
	struct guest_mem *m = *state;
	assert_int_equal(x86_write_boot_tables(m, BOOT_MODE_LINUX64), 0);
	assert_int_equal(gdt_at(m, 0), 0);
	assert_int_equal(gdt_at(m, 8), 0);
	struct desc cs = decode(gdt_at(m, BOOT_CS_SELECTOR));
	check_flat(cs);
	assert_int_equal(BOOT_CS_SELECTOR, 0x10);
	assert_true(cs.type & 8); /* code */
	assert_true(cs.type & 2); /* readable */
	assert_int_equal(cs.l, 1);
	assert_int_equal(cs.db, 0); /* D must be 0 when L is 1 */
	struct desc ds = decode(gdt_at(m, BOOT_DS_SELECTOR));
	check_flat(ds);
	assert_int_equal(BOOT_DS_SELECTOR, 0x18);
	assert_false(ds.type & 8); /* data */
	assert_true(ds.type & 2);  /* writable */
	assert_int_equal(ds.l, 0);
	assert_int_equal(ds.db, 1);
}

static void test_gdt_pvh(void **state)
{
	struct guest_mem *m = *state;
	memset(m->map + LAYOUT_PML4_ADDR, 0xcc, 0x7000);
	assert_int_equal(x86_write_boot_tables(m, BOOT_MODE_PVH32), 0);
	struct desc cs = decode(gdt_at(m, BOOT_CS_SELECTOR));
	check_flat(cs);
	assert_true(cs.type & 8);
	assert_int_equal(cs.l, 0);
	assert_int_equal(cs.db, 1); /* 32-bit code */
	struct desc ds = decode(gdt_at(m, BOOT_DS_SELECTOR));
	check_flat(ds);
	assert_false(ds.type & 8);
	assert_int_equal(ds.db, 1);
	/* PVH runs with paging off: no page tables are written. */
	assert_int_equal(m->map[LAYOUT_PML4_ADDR], 0xcc);
	assert_int_equal(m->map[LAYOUT_PD_ADDR], 0xcc);
}

static void test_page_tables(void **state)
{
	struct guest_mem *m = *state;
	assert_int_equal(x86_write_boot_tables(m, BOOT_MODE_LINUX64), 0);
	static const uint64_t vas[] = {0,
				       0x1000,
				       LAYOUT_HIGH_RAM_START + 0x200,
				       0x1fffff,
				       0x200000,
				       0x3fe12345,
				       0x40000000,
				       0x7fffffff,
				       0x80000000,
				       LAYOUT_MMIO32_START,
				       LAYOUT_IOAPIC_ADDR,
				       LAYOUT_LAPIC_ADDR + 0x30,
				       LAYOUT_4G - 1};
	for (size_t i = 0; i < sizeof(vas) / sizeof(vas[0]); i++) {
		uint64_t pa = 0;
		assert_true(translate(m, LAYOUT_PML4_ADDR, vas[i], &pa));
		assert_int_equal(pa, vas[i]);
	}
	/* Only 4 GiB is mapped. */
	uint64_t pa;
	assert_false(translate(m, LAYOUT_PML4_ADDR, LAYOUT_4G, &pa));
	assert_false(translate(m, LAYOUT_PML4_ADDR, 512 * GiB, &pa));
	/* Every one of the 2048 PDEs is an identity 2 MiB page. */
	for (uint64_t i = 0; i < 2048; i++) {
		uint64_t pde = rd64(m, LAYOUT_PD_ADDR + i * 8);
		assert_int_equal(pde & ~0xfffULL, i << 21);
		assert_int_equal(pde & 0x83, 0x83);
	}
	/* The tables do not overlap the GDT, the zero page or the boot stack. */
	assert_true(LAYOUT_GDT_ADDR + 32 <= LAYOUT_PML4_ADDR);
	assert_true(LAYOUT_PD_ADDR + 4 * 4096 <= LAYOUT_EBDA_START);
	assert_int_equal(decode(gdt_at(m, BOOT_CS_SELECTOR)).l, 1);
}

static void test_tables_no_memory(void **state)
{
	/* A guest too small for the tables gets -EFAULT, not a crash. */
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 4096, &e), 0);
	assert_true(x86_write_boot_tables(&m, BOOT_MODE_LINUX64) < 0);
	assert_int_equal(x86_write_boot_tables(&m, BOOT_MODE_PVH32), 0);
	guest_mem_free(&m);
	assert_int_equal(guest_mem_alloc(&m, 0xa000, &e), 0); /* PML4 fits, PDPT does not */
	assert_true(x86_write_boot_tables(&m, BOOT_MODE_LINUX64) < 0);
	guest_mem_free(&m);
}

static void check_seg(const struct kvm_segment *s, uint16_t sel, bool code)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(!!(s->type & 8), code);
	assert_int_equal(s->unusable, 0);
}

static void test_sregs_long_mode(void **state)
{
	struct kvm_sregs s;
	memset(&s, 0xcc, sizeof(s));
	x86_boot_sregs(&s, BOOT_MODE_LINUX64);
	assert_true(s.cr0 & CR0_PE);
	assert_true(s.cr0 & CR0_PG);
	assert_true(s.cr4 & CR4_PAE);
	assert_int_equal(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
	assert_int_equal(s.cr3, LAYOUT_PML4_ADDR);
	check_seg(&s.cs, BOOT_CS_SELECTOR, true);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.cs.db, 0);
	const struct kvm_segment *data[] = {&s.ds, &s.es, &s.fs, &s.gs, &s.ss};
	for (size_t i = 0; i < 5; i++) {
		check_seg(data[i], BOOT_DS_SELECTOR, false);
		assert_int_equal(data[i]->l, 0);
		assert_true(data[i]->type & 2);
	}
	assert_int_equal(s.gdt.base, LAYOUT_GDT_ADDR);
	assert_int_equal(s.gdt.limit, 4 * 8 - 1);
	/* A present TSS, an unusable LDT. */
	assert_int_equal(s.tr.present, 1);
	assert_int_equal(s.tr.type, 0xb);
	assert_int_equal(s.ldt.unusable, 1);
}

static void test_sregs_pvh(void **state)
{
	struct kvm_sregs s;
	memset(&s, 0xcc, sizeof(s));
	x86_boot_sregs(&s, BOOT_MODE_PVH32);
	assert_true(s.cr0 & CR0_PE);
	assert_false(s.cr0 & CR0_PG);
	assert_int_equal(s.cr4, 0);
	assert_int_equal(s.efer, 0);
	check_seg(&s.cs, BOOT_CS_SELECTOR, true);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.cs.db, 1);
	check_seg(&s.ss, BOOT_DS_SELECTOR, false);
	assert_int_equal(s.ss.db, 1);
	check_seg(&s.ds, BOOT_DS_SELECTOR, false);
	assert_int_equal(s.gdt.base, LAYOUT_GDT_ADDR);
}

static void test_regs(void **state)
{
	struct kvm_regs r;
	struct boot_entry linux64 = {
	    .mode = BOOT_MODE_LINUX64, .rip = 0x100200, .info_gpa = LAYOUT_ZERO_PAGE_ADDR};
	memset(&r, 0xcc, sizeof(r));
	x86_boot_regs(&r, &linux64);
	assert_int_equal(r.rip, 0x100200);
	assert_int_equal(r.rsi, LAYOUT_ZERO_PAGE_ADDR);
	assert_int_equal(r.rflags, 0x2);
	assert_int_equal(r.rsp, LAYOUT_BOOT_STACK);
	assert_int_equal(r.rax, 0);
	assert_int_equal(r.rbx, 0);
	assert_int_equal(r.rdi, 0);

	struct boot_entry pvh = {.mode = BOOT_MODE_PVH32, .rip = 0x1000040, .info_gpa = LAYOUT_PVH_INFO_ADDR};
	memset(&r, 0xcc, sizeof(r));
	x86_boot_regs(&r, &pvh);
	assert_int_equal(r.rip, 0x1000040);
	assert_int_equal(r.rbx, LAYOUT_PVH_INFO_ADDR);
	assert_int_equal(r.rflags & 0x2, 0x2);
	assert_int_equal(r.rflags & (1u << 9), 0); /* interrupts off */
	assert_int_equal(r.rsi, 0);
	assert_int_equal(r.rax, 0);
}

static void test_fpu(void **state)
{
	struct kvm_fpu f;
	memset(&f, 0xcc, sizeof(f));
	x86_boot_fpu(&f);
	assert_int_equal(f.fcw, 0x37f);
	assert_int_equal(f.mxcsr, 0x1f80);
	assert_int_equal(f.fsw, 0);
	assert_int_equal(f.ftwx, 0);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			assert_int_equal(f.xmm[i][j], 0);
}

static void test_msrs(void **state)
{
	struct kvm_msr_entry out[32];
	memset(out, 0xcc, sizeof(out));
	unsigned n = x86_boot_msrs(out, 32);
	assert_true(n > 0 && n <= 32);
	bool seen_lstar = false, seen_misc = false, seen_mtrr = false;
	for (unsigned i = 0; i < n; i++) {
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(out[i].index, out[j].index);
		switch (out[i].index) {
		case 0xc0000082: /* LSTAR */
			seen_lstar = true;
			assert_int_equal(out[i].data, 0);
			break;
		case 0x1a0: /* MISC_ENABLE: fast strings */
			seen_misc = true;
			assert_true(out[i].data & 1);
			break;
		case 0x2ff: /* MTRR default type: enabled, write-back */
			seen_mtrr = true;
			assert_true(out[i].data & (1u << 11));
			assert_int_equal(out[i].data & 0xff, 6);
			break;
		}
	}
	assert_true(seen_lstar);
	assert_true(seen_misc);
	assert_true(seen_mtrr);
	/* Too small a buffer: 0, nothing written. */
	struct kvm_msr_entry small[2];
	memset(small, 0xcc, sizeof(small));
	assert_int_equal(x86_boot_msrs(small, 2), 0);
	assert_int_equal(small[0].index, 0xcccccccc);
	assert_int_equal(x86_boot_msrs(out, n), n);
	assert_int_equal(x86_boot_msrs(out, n - 1), 0);
}

static uint32_t lapic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;
	memcpy(&v, &l->regs[off], sizeof(v));
	return v;
}

static void set_lapic_reg(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(&l->regs[off], &v, sizeof(v));
}

static void test_lapic_virtual_wire(void **state)
{
	struct kvm_lapic_state l;
	for (size_t i = 0; i < sizeof(l.regs); i++)
		l.regs[i] = (char)(i * 7);
	struct kvm_lapic_state orig = l;
	/* Reset values: masked, vector bits set, plus some other bits in the other fields. */
	set_lapic_reg(&l, 0x350, 0x00010000 | 0x0000a0ff | (0x2u << 8));
	set_lapic_reg(&l, 0x360, 0x00010000 | 0x00008031 | (0x7u << 8));
	orig = l;
	x86_lapic_virtual_wire(&l);
	uint32_t lint0 = lapic_reg(&l, 0x350), lint1 = lapic_reg(&l, 0x360);
	assert_int_equal((lint0 >> 8) & 7, 7); /* ExtINT */
	assert_int_equal((lint1 >> 8) & 7, 4); /* NMI */
	assert_int_equal(lint0 & ~0x700u, lapic_reg(&orig, 0x350) & ~0x700u);
	assert_int_equal(lint1 & ~0x700u, lapic_reg(&orig, 0x360) & ~0x700u);
	/* Everything else in the page is untouched. */
	for (size_t i = 0; i < sizeof(l.regs); i++)
		if (i < 0x350 || (i >= 0x354 && i < 0x360) || i >= 0x364)
			assert_int_equal(l.regs[i], orig.regs[i]);
	/* Idempotent. */
	struct kvm_lapic_state again = l;
	x86_lapic_virtual_wire(&again);
	assert_memory_equal(&again, &l, sizeof(l));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_gdt_long_mode, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_gdt_pvh, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_page_tables, setup_mem, teardown_mem),
	    cmocka_unit_test(test_tables_no_memory),
	    cmocka_unit_test(test_sregs_long_mode),
	    cmocka_unit_test(test_sregs_pvh),
	    cmocka_unit_test(test_regs),
	    cmocka_unit_test(test_fpu),
	    cmocka_unit_test(test_msrs),
	    cmocka_unit_test(test_lapic_virtual_wire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
