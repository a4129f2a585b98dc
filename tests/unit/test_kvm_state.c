/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for KVM state records (vmm/migration/kvm_state.c) without KVM:
 * encoding round trips, and a loader that refuses truncated, oversized or
 * mismatched input before its first ioctl (the fds here are -1).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/arch/x86/kvm_state.h"

#define XSAVE_SIZE 4096 /* what kvm_state_xsave_size() says without KVM */

/* A vCPU state with recognisable contents. */
static void sample(struct vcpu_state *s, uint32_t nent, uint32_t nmsrs, uint32_t xsave_size)
{
	memset(s, 0, sizeof(*s));
	s->cpuid = calloc(1, sizeof(*s->cpuid) + nent * sizeof(s->cpuid->entries[0]));
	s->cpuid->nent = nent;
	for (uint32_t i = 0; i < nent; i++)
		s->cpuid->entries[i] = (struct kvm_cpuid_entry2){.function = i, .eax = 0x1000 + i};
	s->msrs = calloc(1, sizeof(*s->msrs) + nmsrs * sizeof(s->msrs->entries[0]));
	s->msrs->nmsrs = nmsrs;
	for (uint32_t i = 0; i < nmsrs; i++)
		s->msrs->entries[i] = (struct kvm_msr_entry){.index = 0xc0000000 + i, .data = 7ULL << 40 | i};
	s->xsave_size = xsave_size;
	s->xsave = calloc(1, xsave_size);
	memset(s->xsave, 0x5a, xsave_size);
	s->sregs.cr0 = 0x60000010;
	s->regs.rip = 0x1234;
	s->regs.rbx = 99;
	s->xcrs.nr_xcrs = 1;
	s->xcrs.xcrs[0].value = 7;
	s->debugregs.dr7 = 0x400;
	s->lapic.regs[0x20] = 1;
	s->events.nmi.pending = 1;
	s->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
}

static void encode(struct sbuf *b, uint32_t nent, uint32_t nmsrs, uint32_t xsave_size)
{
	struct vcpu_state s;
	sample(&s, nent, nmsrs, xsave_size);
	sbuf_init(b);
	vcpu_state_write(&s, b);
	assert_false(b->oom);
	vcpu_state_free(&s);
}

static void test_vcpu_round_trip(void **state)
{
	(void)state;
	struct vcpu_state a, b;
	sample(&a, 40, 150, XSAVE_SIZE);
	struct sbuf buf;
	sbuf_init(&buf);
	vcpu_state_write(&a, &buf);
	struct sreader in;
	sreader_init(&in, buf.data, buf.len);
	struct err e = {{0}};
	assert_int_equal(vcpu_state_parse(&in, XSAVE_SIZE, &b, &e), 0);
	assert_true(sreader_done(&in));
	assert_int_equal(b.cpuid->nent, 40);
	assert_memory_equal(b.cpuid->entries, a.cpuid->entries, 40 * sizeof(a.cpuid->entries[0]));
	assert_int_equal(b.msrs->nmsrs, 150);
	assert_memory_equal(b.msrs->entries, a.msrs->entries, 150 * sizeof(a.msrs->entries[0]));
	assert_memory_equal(b.xsave, a.xsave, XSAVE_SIZE);
	assert_memory_equal(&b.sregs, &a.sregs, sizeof(a.sregs));
	assert_memory_equal(&b.regs, &a.regs, sizeof(a.regs));
	assert_memory_equal(&b.xcrs, &a.xcrs, sizeof(a.xcrs));
	assert_memory_equal(&b.debugregs, &a.debugregs, sizeof(a.debugregs));
	assert_memory_equal(&b.lapic, &a.lapic, sizeof(a.lapic));
	assert_memory_equal(&b.events, &a.events, sizeof(a.events));
	assert_memory_equal(&b.mp_state, &a.mp_state, sizeof(a.mp_state));
	vcpu_state_free(&a);
	vcpu_state_free(&b);
	sbuf_free(&buf);
}

/* Every prefix of a record is refused as truncated, through the public loader,
 * before any ioctl. */
static void test_vcpu_truncated(void **state)
{
	(void)state;
	struct sbuf b;
	encode(&b, 3, 5, XSAVE_SIZE);
	for (size_t len = 0; len < b.len; len++) {
		struct sreader in;
		sreader_init(&in, b.data, len);
		struct err e = {{0}};
		assert_int_equal(vcpu_state_load(-1, -1, &in, &e), -EINVAL);
		assert_non_null(strstr(err_msg(&e), "truncated"));
		assert_true(in.bad);
	}
	sbuf_free(&b);
}

static void expect_refused(struct sbuf *b, const char *msg)
{
	struct sreader in;
	sreader_init(&in, b->data, b->len);
	struct err e = {{0}};
	assert_int_equal(vcpu_state_load(-1, -1, &in, &e), -EINVAL);
	if (!strstr(err_msg(&e), msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err_msg(&e));
}

static void test_vcpu_bad_version(void **state)
{
	(void)state;
	struct sbuf b;
	encode(&b, 3, 5, XSAVE_SIZE);
	b.data[0] = 9;
	expect_refused(&b, "the saved vCPU state has version 9, this kvmini reads 1");
	sbuf_free(&b);
}

static void test_vcpu_oversized_counts(void **state)
{
	(void)state;
	struct sbuf b;
	encode(&b, KVM_STATE_MAX_CPUID + 1, 5, XSAVE_SIZE);
	expect_refused(&b, "the saved CPUID table has 257 entries, at most 256");
	sbuf_free(&b);
	/* A huge count with little data behind it: refused for the count, nothing
	 * allocated for it. */
	encode(&b, 1, 5, XSAVE_SIZE);
	memset(b.data + 4, 0xff, 4);
	expect_refused(&b, "the saved CPUID table has 4294967295 entries");
	sbuf_free(&b);
	encode(&b, 2, KVM_STATE_MAX_MSRS + 1, XSAVE_SIZE);
	expect_refused(&b, "the saved state has 1025 MSRs, at most 1024");
	sbuf_free(&b);
}

static void test_vcpu_xsave_size(void **state)
{
	(void)state;
	struct sbuf b;
	encode(&b, 2, 2, 8192);
	expect_refused(&b, "the saved XSAVE area is 8192 bytes, this host's is 4096");
	sbuf_free(&b);
}

static void test_vcpu_bad_xcrs(void **state)
{
	(void)state;
	struct vcpu_state s;
	sample(&s, 1, 1, XSAVE_SIZE);
	s.xcrs.nr_xcrs = 1000;
	struct sbuf b;
	sbuf_init(&b);
	vcpu_state_write(&s, &b);
	vcpu_state_free(&s);
	expect_refused(&b, "1000 XCRs");
	sbuf_free(&b);
}

/* The loader reads one record and leaves what follows (the next record of a
 * stream). */
static void test_vcpu_two_records(void **state)
{
	(void)state;
	struct sbuf b;
	encode(&b, 2, 3, XSAVE_SIZE);
	size_t one = b.len;
	struct vcpu_state s;
	sample(&s, 4, 1, XSAVE_SIZE);
	vcpu_state_write(&s, &b);
	vcpu_state_free(&s);
	struct sreader in;
	sreader_init(&in, b.data, b.len);
	struct err e = {{0}};
	assert_int_equal(vcpu_state_parse(&in, XSAVE_SIZE, &s, &e), 0);
	assert_int_equal(in.off, one);
	assert_int_equal(s.cpuid->nent, 2);
	vcpu_state_free(&s);
	assert_int_equal(vcpu_state_parse(&in, XSAVE_SIZE, &s, &e), 0);
	assert_int_equal(s.cpuid->nent, 4);
	assert_true(sreader_done(&in));
	vcpu_state_free(&s);
	sbuf_free(&b);
}

static void sample_vm(struct vm_kvm_state *s)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < 3; i++) {
		s->chip[i].chip_id = i;
		s->chip[i].chip.dummy[5] = (char)(10 + i);
	}
	s->pit.channels[0].count = 0x10000;
	s->pit.flags = KVM_PIT_FLAGS_HPET_LEGACY;
	s->clock = 123456789;
}

static void test_vm_round_trip_and_truncation(void **state)
{
	(void)state;
	struct vm_kvm_state a, b;
	sample_vm(&a);
	struct sbuf buf;
	sbuf_init(&buf);
	vm_kvm_state_write(&a, &buf);
	struct sreader in;
	sreader_init(&in, buf.data, buf.len);
	struct err e = {{0}};
	assert_int_equal(vm_kvm_state_parse(&in, &b, &e), 0);
	assert_true(sreader_done(&in));
	assert_memory_equal(&a, &b, sizeof(a));
	for (size_t len = 0; len < buf.len; len++) {
		sreader_init(&in, buf.data, len);
		err_clear(&e);
		assert_int_equal(vm_kvm_state_load(-1, &in, &e), -EINVAL);
		assert_non_null(strstr(err_msg(&e), "truncated"));
	}
	sbuf_free(&buf);
}

static void test_vm_bad_input(void **state)
{
	(void)state;
	struct vm_kvm_state a, b;
	sample_vm(&a);
	struct sbuf buf;
	sbuf_init(&buf);
	vm_kvm_state_write(&a, &buf);
	struct sreader in;
	struct err e = {{0}};
	buf.data[0] = 2;
	sreader_init(&in, buf.data, buf.len);
	assert_int_equal(vm_kvm_state_load(-1, &in, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved VM state has version 2, this kvmini reads 1");
	sbuf_free(&buf);

	a.chip[1].chip_id = 2; /* the slave PIC's slot holding the IOAPIC */
	sbuf_init(&buf);
	vm_kvm_state_write(&a, &buf);
	sreader_init(&in, buf.data, buf.len);
	err_clear(&e);
	assert_int_equal(vm_kvm_state_parse(&in, &b, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "the saved PIC slave state names chip 2");
	sbuf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vcpu_round_trip),  cmocka_unit_test(test_vcpu_truncated),
	    cmocka_unit_test(test_vcpu_bad_version), cmocka_unit_test(test_vcpu_oversized_counts),
	    cmocka_unit_test(test_vcpu_xsave_size),  cmocka_unit_test(test_vcpu_bad_xcrs),
	    cmocka_unit_test(test_vcpu_two_records), cmocka_unit_test(test_vm_round_trip_and_truncation),
	    cmocka_unit_test(test_vm_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
