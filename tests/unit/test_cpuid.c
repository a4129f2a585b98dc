/* SPDX-License-Identifier: MIT */
/* Unit tests for per-vCPU CPUID edits (vmm/arch/x86/cpuid.c) over a synthetic KVM table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/arch/x86/cpuid.h"

#define HYPERVISOR (1u << 31)
#define HTT	   (1u << 28)
#define CMP_LEGACY (1u << 1)

/* Indices in the synthetic table. */
enum {
	E_0,
	E_1,
	E_4_L1D,
	E_4_L1I,
	E_4_L2,
	E_4_L3,
	E_4_NULL,
	E_B0,
	E_B1,
	E_B2,
	E_1F0,
	E_1F1,
	E_1F2,
	E_7,
	E_80000001,
	E_80000008,
	E_8000001E,
	NENT
};

static struct kvm_cpuid_entry2 ent(uint32_t fn, uint32_t idx, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	struct kvm_cpuid_entry2 e;
	memset(&e, 0, sizeof(e));
	e.function = fn;
	e.index = idx;
	e.flags = idx || fn == 4 || fn == 0xb || fn == 0x1f ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
	e.eax = a;
	e.ebx = b;
	e.ecx = c;
	e.edx = d;
	return e;
}

/* Leaf 4 EAX: cache type (1 data, 2 instruction, 3 unified), level, self-initialising, host sharing bits. */
static uint32_t l4_eax(unsigned type, unsigned level, unsigned sharing, unsigned cores)
{
	return type | level << 5 | 1u << 8 | sharing << 14 | cores << 26;
}

/* A table as a host with 16 cores and SMT might report it, with every bit we do not own set. */
static void make_table(struct kvm_cpuid_entry2 *t)
{
	t[E_0] = ent(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69);
	/* EBX: APIC id 0x2a, 32 logical, CLFLUSH 8, brand 0x5a. EDX: HTT set. */
	t[E_1] = ent(1, 0, 0x000906ea, 0x2a200800 | 0x5a, 0x7ffafbff & ~HYPERVISOR, 0xbfebfbff);
	t[E_4_L1D] = ent(4, 0, l4_eax(1, 1, 1, 15), 0x01c0003f, 0x3f, 0);
	t[E_4_L1I] = ent(4, 1, l4_eax(2, 1, 1, 15), 0x01c0003f, 0x3f, 0);
	t[E_4_L2] = ent(4, 2, l4_eax(3, 2, 1, 15), 0x03c0003f, 0x3ff, 0);
	t[E_4_L3] = ent(4, 3, l4_eax(3, 3, 31, 15) | 1u << 9, 0x03c0003f, 0x2fff, 0x6);
	t[E_4_NULL] = ent(4, 4, 0, 0, 0, 0);
	t[E_B0] = ent(0xb, 0, 1, 2, 0x100, 0x2a);
	t[E_B1] = ent(0xb, 1, 5, 32, 0x201, 0x2a);
	t[E_B2] = ent(0xb, 2, 0, 0, 2, 0x2a);
	t[E_1F0] = ent(0x1f, 0, 1, 2, 0x100, 0x2a);
	t[E_1F1] = ent(0x1f, 1, 5, 32, 0x201, 0x2a);
	t[E_1F2] = ent(0x1f, 2, 0, 0, 2, 0x2a);
	t[E_7] = ent(7, 0, 0, 0xdeadbeef, 0x12345678, 0x9abcdef0);
	t[E_80000001] = ent(0x80000001, 0, 0, 0, 0x121 & ~CMP_LEGACY, 0x2c100800);
	/* ECX: NC = 31, ApicIdCoreIdSize = 5, PerfTscSize bits 17:16 = 2, reserved bits 11:8 set. */
	t[E_80000008] = ent(0x80000008, 0, 0x3030, 0x1234, 0x2f1f | 2u << 16, 0);
	t[E_8000001E] = ent(0x8000001e, 0, 0x2a, 0x0100, 0x0300, 0);
}

static unsigned id_bits(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void check_vcpu(unsigned index, unsigned ncpus)
{
	struct kvm_cpuid_entry2 t[NENT], orig[NENT];
	make_table(t);
	memcpy(orig, t, sizeof(t));
	cpuid_setup_vcpu(t, NENT, index, ncpus);

	/* Leaf 1: APIC id, logical count, CLFLUSH and brand kept; hypervisor bit; HTT iff > 1 CPU. */
	assert_int_equal(t[E_1].ebx >> 24, index);
	assert_int_equal((t[E_1].ebx >> 16) & 0xff, ncpus & 0xff);
	assert_int_equal(t[E_1].ebx & 0xffff, orig[E_1].ebx & 0xffff);
	assert_int_equal(t[E_1].eax, orig[E_1].eax);
	assert_true(t[E_1].ecx & HYPERVISOR);
	assert_int_equal(t[E_1].ecx & ~HYPERVISOR, orig[E_1].ecx);
	assert_int_equal(!!(t[E_1].edx & HTT), ncpus > 1);
	assert_int_equal(t[E_1].edx & ~HTT, orig[E_1].edx & ~HTT);

	/* Leaf 4: cores per package - 1, and threads sharing: per core for L1/L2, package for L3. */
	for (int i = E_4_L1D; i <= E_4_L3; i++) {
		assert_int_equal(t[i].eax >> 26, ncpus - 1);
		unsigned level = (t[i].eax >> 5) & 7;
		unsigned sharing = (t[i].eax >> 14) & 0xfff;
		assert_int_equal(sharing, level >= 3 ? ncpus - 1 : 0);
		/* Type, level, self-init and fully-associative bits are the host's. */
		assert_int_equal(t[i].eax & 0x3fff, orig[i].eax & 0x3fff);
		assert_int_equal(t[i].ebx, orig[i].ebx);
		assert_int_equal(t[i].ecx, orig[i].ecx);
		assert_int_equal(t[i].edx, orig[i].edx);
	}
	/* The null subleaf that ends the list stays null. */
	assert_memory_equal(&t[E_4_NULL], &orig[E_4_NULL], sizeof(t[0]));

	/* Leaves 0xb and 0x1f: SMT level (1 thread), core level (ncpus), then invalid. */
	for (int base = E_B0; base <= E_1F0; base += E_1F0 - E_B0) {
		const struct kvm_cpuid_entry2 *l0 = &t[base], *l1 = &t[base + 1], *l2 = &t[base + 2];
		assert_int_equal(l0->eax & 0x1f, 0);
		assert_int_equal(l0->ebx & 0xffff, 1);
		assert_int_equal((l0->ecx >> 8) & 0xff, 1); /* SMT */
		assert_int_equal(l0->ecx & 0xff, 0);
		assert_int_equal(l0->edx, index);
		assert_int_equal(l1->eax & 0x1f, id_bits(ncpus));
		assert_int_equal(l1->ebx & 0xffff, ncpus);
		assert_int_equal((l1->ecx >> 8) & 0xff, 2); /* core */
		assert_int_equal(l1->ecx & 0xff, 1);
		assert_int_equal(l1->edx, index);
		assert_int_equal(l2->eax, 0);
		assert_int_equal(l2->ebx, 0);
		assert_int_equal((l2->ecx >> 8) & 0xff, 0); /* invalid: end of the list */
		assert_int_equal(l2->ecx & 0xff, 2);
		assert_int_equal(l2->edx, index);
		/* Every id in the package fits in the shift. */
		assert_true((ncpus - 1) >> (l1->eax & 0x1f) == 0);
		assert_true(index >> (l1->eax & 0x1f) == 0);
	}

	/* AMD: CmpLegacy iff > 1 core; NC = cores - 1; ApicIdCoreIdSize; the rest kept. */
	assert_int_equal(!!(t[E_80000001].ecx & CMP_LEGACY), ncpus > 1);
	assert_int_equal(t[E_80000001].ecx & ~CMP_LEGACY, orig[E_80000001].ecx);
	assert_int_equal(t[E_80000001].edx, orig[E_80000001].edx);
	assert_int_equal(t[E_80000008].ecx & 0xff, ncpus - 1);
	assert_int_equal((t[E_80000008].ecx >> 12) & 0xf, id_bits(ncpus));
	assert_int_equal(t[E_80000008].ecx & ~0xf0ffu, orig[E_80000008].ecx & ~0xf0ffu);
	assert_int_equal(t[E_80000008].eax, orig[E_80000008].eax);
	assert_int_equal(t[E_80000008].ebx, orig[E_80000008].ebx);
	assert_int_equal(t[E_8000001E].eax, index);
	assert_int_equal(t[E_8000001E].ebx & 0xff, index);
	assert_int_equal((t[E_8000001E].ebx >> 8) & 0xff, 0); /* one thread per compute unit */
	assert_int_equal(t[E_8000001E].ecx & 0xff, 0);	      /* node 0 */

	/* Leaves the function does not own are untouched, bit for bit. */
	assert_memory_equal(&t[E_0], &orig[E_0], sizeof(t[0]));
	assert_memory_equal(&t[E_7], &orig[E_7], sizeof(t[0]));
	/* Function and index fields are never rewritten. */
	for (int i = 0; i < NENT; i++) {
		assert_int_equal(t[i].function, orig[i].function);
		assert_int_equal(t[i].index, orig[i].index);
		assert_int_equal(t[i].flags, orig[i].flags);
	}
}

static void test_one_cpu(void **state)
{
	check_vcpu(0, 1);
}

static void test_two_cpus(void **state)
{
	check_vcpu(0, 2);
	check_vcpu(1, 2);
}

static void test_three_cpus(void **state)
{
	for (unsigned i = 0; i < 3; i++)
		check_vcpu(i, 3);
}

static void test_four_cpus(void **state)
{
	for (unsigned i = 0; i < 4; i++)
		check_vcpu(i, 4);
}

static void test_64_cpus(void **state)
{
	check_vcpu(0, 64);
	check_vcpu(17, 64);
	check_vcpu(63, 64);
}

static void test_shift_values(void **state)
{
	/* Spot-check the x2APIC shift against known values. */
	static const struct {
		unsigned ncpus, shift;
	} cases[] = {{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {8, 3}, {9, 4}, {64, 6}};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct kvm_cpuid_entry2 t[NENT];
		make_table(t);
		cpuid_setup_vcpu(t, NENT, 0, cases[k].ncpus);
		assert_int_equal(t[E_B1].eax & 0x1f, cases[k].shift);
		assert_int_equal(t[E_1F1].eax & 0x1f, cases[k].shift);
		assert_int_equal((t[E_80000008].ecx >> 12) & 0xf, cases[k].shift);
	}
}

static void test_empty_and_partial(void **state)
{
	/* nent 0 touches nothing; nent bounds the walk. */
	struct kvm_cpuid_entry2 t[NENT], orig[NENT];
	make_table(t);
	memcpy(orig, t, sizeof(t));
	cpuid_setup_vcpu(t, 0, 3, 4);
	assert_memory_equal(t, orig, sizeof(t));
	cpuid_setup_vcpu(t, E_1, 3, 4); /* only leaf 0 */
	assert_memory_equal(t, orig, sizeof(t));
	cpuid_setup_vcpu(t, E_1 + 1, 3, 4);
	assert_int_equal(t[E_1].ebx >> 24, 3);
	assert_memory_equal(&t[E_4_L1D], &orig[E_4_L1D], sizeof(t[0]) * (NENT - E_4_L1D));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_cpu),	      cmocka_unit_test(test_two_cpus),
	    cmocka_unit_test(test_three_cpus),	      cmocka_unit_test(test_four_cpus),
	    cmocka_unit_test(test_64_cpus),	      cmocka_unit_test(test_shift_values),
	    cmocka_unit_test(test_empty_and_partial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
