/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the stream's CONFIG record (vmm/migration/machine_state.c
 * machine_config_*) and the destination's CPUID rule
 * (vmm/migration/cpuid_compat.c): round trip, bounded reader, the first
 * difference as the message; identical CPUID passes, a missing feature is
 * refused naming it, bits KVM or kvmini set on their own are ignored, the
 * vendor must match.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sbuf.h"
#include "vmm/arch/x86/cpuid_compat.h"
#include "vmm/migration/machine_state.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* A plausible Intel guest table (vCPU 0, as kvmini sets it). */
static const struct kvm_cpuid_entry2 intel[] = {
    {.function = 0, .eax = 0xd, .ebx = 0x756e6547, .edx = 0x49656e69, .ecx = 0x6c65746e}, /* GenuineIntel */
    {.function = 1, .eax = 0x906ea, .ecx = 0xf7fa3203, .edx = 0x178bfbff},
    {.function = 7,
     .index = 0,
     .flags = SIG,
     .eax = 1,
     .ebx = 0x029c67af,
     .ecx = 0x40000010,
     .edx = 0xbc000400},
    {.function = 7, .index = 1, .flags = SIG, .eax = 1u << 4},
    {.function = 0xd, .index = 0, .flags = SIG, .eax = 0x7, .ebx = 0x340, .ecx = 0x340},
    {.function = 0xd, .index = 1, .flags = SIG, .eax = 0xf},
    {.function = 0x80000000, .eax = 0x80000008},
    {.function = 0x80000001, .ecx = 0x121, .edx = 0x2c100800},
    {.function = 0x80000007, .edx = 1u << 8},
    {.function = 0x80000008, .eax = 0x3027, .ebx = 1u << 9},
};
#define NINTEL (sizeof(intel) / sizeof(intel[0]))

static struct kvm_cpuid_entry2 *copy_table(void)
{
	struct kvm_cpuid_entry2 *t = malloc(sizeof(intel));
	assert_non_null(t);
	memcpy(t, intel, sizeof(intel));
	return t;
}

static struct kvm_cpuid_entry2 *entry(struct kvm_cpuid_entry2 *t, uint32_t function, uint32_t index)
{
	for (unsigned i = 0; i < NINTEL; i++)
		if (t[i].function == function && t[i].index == index)
			return &t[i];
	fail();
	return NULL;
}

static void refused(const struct kvm_cpuid_entry2 *host, unsigned nhost, const char *msg)
{
	struct err e = {{0}};
	assert_int_equal(cpuid_compat_check(intel, NINTEL, host, nhost, &e), -EINVAL);
	assert_string_equal(err_msg(&e), msg);
}

static void test_identical(void **state)
{
	struct err e = {{0}};
	assert_int_equal(cpuid_compat_check(intel, NINTEL, intel, NINTEL, &e), 0);
	/* More here than the guest uses is fine. */
	struct kvm_cpuid_entry2 *h = copy_table();
	entry(h, 7, 0)->ebx = ~0u;
	entry(h, 1, 0)->ecx = ~0u;
	assert_int_equal(cpuid_compat_check(intel, NINTEL, h, NINTEL, &e), 0);
	free(h);
}

static void test_missing_avx2(void **state)
{
	struct kvm_cpuid_entry2 *h = copy_table();
	entry(h, 7, 0)->ebx &= ~(1u << 5);
	refused(
	    h, NINTEL,
	    "CPUID 0x7.0 EBX bit 5 (avx2): the source's guest uses it, this host's KVM does not offer it");
	free(h);
}

static void test_other_words(void **state)
{
	struct kvm_cpuid_entry2 *h = copy_table();
	entry(h, 1, 0)->ecx &= ~(1u << 28);
	refused(h, NINTEL,
		"CPUID 0x1 ECX bit 28 (avx): the source's guest uses it, this host's KVM does not offer it");
	memcpy(h, intel, sizeof(intel));
	entry(h, 0xd, 0)->eax = 0x3; /* no AVX state in XCR0 */
	refused(h, NINTEL,
		"CPUID 0xd.0 EAX bit 2 (avx): the source's guest uses it, this host's KVM does not offer it");
	memcpy(h, intel, sizeof(intel));
	entry(h, 0xd, 1)->eax = 0x7;
	refused(h, NINTEL,
		"CPUID 0xd.1 EAX bit 3 (xsaves): the source's guest uses it, this host's KVM does not offer "
		"it");
	memcpy(h, intel, sizeof(intel));
	entry(h, 0x80000008, 0)->ebx = 0;
	refused(h, NINTEL,
		"CPUID 0x80000008 EBX bit 9 (wbnoinvd): the source's guest uses it, this host's KVM does not "
		"offer it");
	free(h);
}

/* A leaf absent here offers nothing; the index matters where KVM says it does. */
static void test_missing_leaf(void **state)
{
	struct kvm_cpuid_entry2 *h = copy_table();
	entry(h, 7, 1)->function = 0x4fffffff; /* 7.1 gone, 7.0 still there */
	refused(h, NINTEL,
		"CPUID 0x7.1 EAX bit 4 (avx_vnni): the source's guest uses it, this host's KVM does not "
		"offer it");
	memcpy(h, intel, sizeof(intel));
	entry(h, 0x80000001, 0)->function = 0x4fffffff;
	refused(h, NINTEL,
		"CPUID 0x80000001 ECX bit 0 (lahf_lm): the source's guest uses it, this host's KVM does not "
		"offer it");
	free(h);
	/* The guest without a leaf uses nothing in it. */
	struct err e = {{0}};
	assert_int_equal(cpuid_compat_check(intel, 2, intel, NINTEL, &e), 0);
}

static void test_dynamic_bits_ignored(void **state)
{
	struct kvm_cpuid_entry2 *g = copy_table(), *h = copy_table();
	/* Set by KVM or kvmini on the source's vCPU, absent from this host's supported table. */
	entry(g, 1, 0)->ecx |= 1u << 21 | 1u << 24 | 1u << 27 | 1u << 31;
	entry(h, 1, 0)->ecx &= ~(1u << 21 | 1u << 24 | 1u << 27 | 1u << 31);
	entry(g, 1, 0)->edx |= 1u << 9 | 1u << 28;
	entry(h, 1, 0)->edx &= ~(1u << 9 | 1u << 28);
	entry(g, 7, 0)->ecx |= 1u << 4;
	entry(h, 7, 0)->ecx &= ~(1u << 4);
	entry(g, 0x80000001, 0)->ecx |= 1u << 1;
	entry(h, 0x80000001, 0)->ecx &= ~(1u << 1);
	entry(g, 0x80000001, 0)->edx |= 1u << 9;
	entry(h, 0x80000001, 0)->edx &= ~(1u << 9);
	/* Non-feature fields differ freely: family/model, APIC ids, XSAVE sizes, address widths. */
	entry(h, 1, 0)->eax = 0x50654;
	entry(h, 1, 0)->ebx = 0x01020800;
	entry(h, 0xd, 0)->ebx = 0x988;
	entry(h, 0x80000008, 0)->eax = 0x3030;
	struct err e = {{0}};
	assert_int_equal(cpuid_compat_check(g, NINTEL, h, NINTEL, &e), 0);
	free(g);
	free(h);
}

static void test_vendor(void **state)
{
	struct kvm_cpuid_entry2 *h = copy_table();
	memcpy(&h[0].ebx, "Auth", 4);
	memcpy(&h[0].edx, "enti", 4);
	memcpy(&h[0].ecx, "cAMD", 4);
	refused(h, NINTEL,
		"CPU vendor: the source's guest sees \"GenuineIntel\", this host's is \"AuthenticAMD\"; a "
		"guest cannot move between them");
	free(h);
}

/* ---- CONFIG ---- */

static struct machine_desc *desc(void)
{
	struct machine_desc *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->ncpus = 2;
	m->mem_bytes = 256ull << 20;
	m->ndisks = 2;
	m->disks[0].size = 1ull << 30;
	m->disks[1].size = 4096;
	m->disks[1].readonly = 1;
	m->nnics = 1;
	memcpy(m->nics[0].mac, "\x52\x54\x00\x12\x34\x56", 6);
	m->nics[0].queues = 2;
	m->cpu.ncpuid = NINTEL;
	memcpy(m->cpu.cpuid, intel, sizeof(intel));
	return m;
}

static void test_config_round_trip(void **state)
{
	struct machine_desc *m = desc(), *back = malloc(sizeof(*back));
	struct sbuf b;
	struct err e = {{0}};
	sbuf_init(&b);
	machine_config_put(m, &b);
	assert_false(b.oom);
	assert_int_equal(machine_config_parse(b.data, b.len, back, &e), 0);
	assert_memory_equal(back, m, sizeof(*m));
	assert_int_equal(machine_config_check(m, b.data, b.len, &e), 0);
	sbuf_free(&b);
	free(m);
	free(back);
}

static void check_fails(const struct machine_desc *here, const struct machine_desc *saved, const char *msg)
{
	struct sbuf b;
	struct err e = {{0}};
	sbuf_init(&b);
	machine_config_put(saved, &b);
	assert_int_equal(machine_config_check(here, b.data, b.len, &e), -EINVAL);
	assert_string_equal(err_msg(&e), msg);
	sbuf_free(&b);
}

static void test_config_mismatch(void **state)
{
	struct machine_desc *here = desc(), *m = desc();
	m->ncpus = 4;
	check_fails(here, m, "the saved VM has 4 vCPUs, this one 2 (--cpus)");
	free(m);
	m = desc();
	m->disks[0].size = 2ull << 30;
	check_fails(here, m, "disk vda: 2147483648 bytes in the saved VM, 1073741824 here");
	free(m);
	m = desc();
	m->nics[0].queues = 1;
	check_fails(here, m, "NIC 0: 1 queue pairs in the saved VM, 2 here");
	free(m);
	/* The CPUID check comes last, after the configuration. */
	m = desc();
	entry(here->cpu.cpuid, 7, 0)->ebx &= ~(1u << 5);
	check_fails(
	    here, m,
	    "CPUID 0x7.0 EBX bit 5 (avx2): the source's guest uses it, this host's KVM does not offer "
	    "it");
	free(m);
	free(here);
}

/* The reader is bounded: counts capped before anything is read for them, truncation and trailing bytes
 * refused. */
static void test_config_malformed(void **state)
{
	struct machine_desc *m = desc(), *out = malloc(sizeof(*out));
	struct sbuf b;
	struct err e = {{0}};
	sbuf_init(&b);
	machine_config_put(m, &b);
	for (size_t n = 0; n < b.len; n++) {
		e = (struct err){{0}};
		assert_int_equal(machine_config_parse(b.data, n, out, &e), -EINVAL);
	}
	sbuf_u8(&b, 0);
	err_clear(&e);
	assert_int_equal(machine_config_parse(b.data, b.len, out, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved machine description is malformed");
	sbuf_free(&b);

	/* Version 1 (no CPUID) is refused by name. */
	sbuf_init(&b);
	sbuf_u32(&b, 1);
	err_clear(&e);
	assert_int_equal(machine_config_parse(b.data, b.len, out, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved machine description has version 1, this kvmini reads 2");
	sbuf_free(&b);

	/* A CPUID count over the cap, with no entries behind it. */
	m->cpu.ncpuid = 0;
	m->ndisks = 0;
	m->nnics = 0;
	sbuf_init(&b);
	machine_config_put(m, &b);
	b.len -= 4;
	sbuf_u32(&b, MACHINE_MAX_CPUID + 1);
	err_clear(&e);
	assert_int_equal(machine_config_parse(b.data, b.len, out, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved VM's CPUID has 257 entries, over the limit of 256");
	sbuf_free(&b);

	/* Disk and NIC counts over the caps. */
	sbuf_init(&b);
	sbuf_u32(&b, 2);
	sbuf_u32(&b, 1);
	sbuf_u64(&b, 1 << 20);
	sbuf_u32(&b, 0xffffffff);
	err_clear(&e);
	assert_int_equal(machine_config_parse(b.data, b.len, out, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved VM has 4294967295 disks, this kvmini takes at most 16");
	sbuf_free(&b);
	free(m);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_identical),
	    cmocka_unit_test(test_missing_avx2),
	    cmocka_unit_test(test_other_words),
	    cmocka_unit_test(test_missing_leaf),
	    cmocka_unit_test(test_dynamic_bits_ignored),
	    cmocka_unit_test(test_vendor),
	    cmocka_unit_test(test_config_round_trip),
	    cmocka_unit_test(test_config_mismatch),
	    cmocka_unit_test(test_config_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
