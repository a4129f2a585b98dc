/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for dirty-page tracking (vmm/migration/dirty.c) without KVM:
 * how a slot's bitmap lands at its first frame, the bitmap's size, and the
 * refusals and the undo on a failed start (tests/integration/dirty_log_check.c
 * runs it on real KVM).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"
#include "vmm/migration/dirty.h"
#include "vmm/vm.h"

#define MiB (1ULL << 20)

static int bit(const uint64_t *b, uint64_t i)
{
	return (int)((b[i / 64] >> (i % 64)) & 1);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Against a bit-by-bit reference: bits of src past nbits are ignored, dst outside the range untouched. */
static void test_bitmap_or(void **state)
{
	static const uint64_t firsts[] = {0, 1, 5, 63, 64, 65, 127, 130, 192};
	static const uint64_t lens[] = {0, 1, 2, 63, 64, 65, 128, 129, 200};
	enum { DW = 12 };
	for (size_t f = 0; f < sizeof(firsts) / sizeof(firsts[0]); f++) {
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			for (int pass = 0; pass < 4; pass++) {
				uint64_t src[4], dst[DW], ref[DW];
				for (int i = 0; i < 4; i++)
					src[i] = pass == 0 ? ~0ULL : rnd();
				for (int i = 0; i < DW; i++)
					dst[i] = ref[i] = pass == 1 ? 0 : rnd() & rnd();
				for (uint64_t i = 0; i < lens[l]; i++)
					if (bit(src, i))
						ref[(firsts[f] + i) / 64] |= 1ULL << ((firsts[f] + i) % 64);
				dirty_bitmap_or(dst, firsts[f], src, lens[l]);
				assert_memory_equal(dst, ref, sizeof(dst));
			}
		}
	}
}

/* The last bit of dst may be the last bit of the slot: the word after it must not be touched. */
static void test_bitmap_or_exact_end(void **state)
{
	uint64_t *dst = calloc(2, sizeof(uint64_t)); /* ASan sees any write to a third word */
	uint64_t src[2] = {~0ULL, ~0ULL};
	assert_non_null(dst);
	dirty_bitmap_or(dst, 64 + 3, src, 61);
	assert_int_equal(dst[0], 0);
	assert_int_equal(dst[1], ~0ULL << 3);
	dirty_bitmap_or(dst, 1, src, 127);
	assert_int_equal(dst[0], ~1ULL);
	assert_int_equal(dst[1], ~0ULL);
	free(dst);
}

static void test_bitmap_words(void **state)
{
	struct vm vm;
	struct err e = {0};
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(guest_mem_alloc(&vm.mem, 64 * MiB, &e), 0);
	assert_int_equal(vm_dirty_bitmap_words(&vm), 64 * MiB / 4096 / 64);
	guest_mem_free(&vm.mem);

	memset(&vm, 0, sizeof(vm));
	assert_int_equal(guest_mem_alloc(&vm.mem, LAYOUT_MMIO32_START + 8 * MiB, &e), 0);
	assert_int_equal(vm.mem.nregions, 2);
	/* Frames up to RAM's end above 4 GiB, the hole included. */
	assert_int_equal(vm_dirty_bitmap_words(&vm), (LAYOUT_4G + 8 * MiB) / 4096 / 64);
	guest_mem_free(&vm.mem);

	/* Not a whole word of frames: rounded up. */
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(guest_mem_alloc(&vm.mem, 4096 * 65, &e), 0);
	assert_int_equal(vm_dirty_bitmap_words(&vm), 2);
	guest_mem_free(&vm.mem);
}

static void test_off(void **state)
{
	struct vm vm;
	struct err e = {0};
	uint64_t bm[4] = {1, 2, 3, 4}, n = 7;
	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	assert_int_equal(guest_mem_alloc(&vm.mem, 4096 * 200, &e), 0);
	assert_int_equal(vm_dirty_log_fetch(&vm, bm, &n, &e), -EINVAL);
	assert_int_equal(n, 0);
	vm_dirty_log_stop(&vm); /* harmless when off */
	assert_false(vm.dirty_logging);
	guest_mem_free(&vm.mem);
}

/* KVM refuses the slot (no VM here): the start fails and leaves everything off. */
static void test_start_fails_undone(void **state)
{
	struct vm vm;
	struct err e = {0};
	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	assert_int_equal(guest_mem_alloc(&vm.mem, LAYOUT_MMIO32_START + 8 * MiB, &e), 0);
	assert_int_equal(vm_dirty_log_start(&vm, &e), -EBADF);
	assert_non_null(strstr(err_msg(&e), "KVM_SET_USER_MEMORY_REGION"));
	assert_false(vm.dirty_logging);
	assert_false(vm.dirty_manual);
	assert_false(guest_mem_dirty_logging(&vm.mem));
	uint64_t n;
	uint64_t *bm = calloc(vm_dirty_bitmap_words(&vm), sizeof(uint64_t));
	assert_non_null(bm);
	assert_int_equal(vm_dirty_log_fetch(&vm, bm, &n, &e), -EINVAL);
	free(bm);
	guest_mem_free(&vm.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bitmap_or),	       cmocka_unit_test(test_bitmap_or_exact_end),
	    cmocka_unit_test(test_bitmap_words),       cmocka_unit_test(test_off),
	    cmocka_unit_test(test_start_fails_undone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
