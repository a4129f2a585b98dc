/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking of guest RAM: KVM's dirty log per RAM slot ORed with
 * the device side's bitmap (vmm/memory.c), by guest-physical frame number.
 *
 * Why no page is lost while the vCPUs and device threads go on writing
 * during a fetch (the caller sends a page's contents after the fetch that
 * reported it, so all that matters is that a write is either before the
 * read of the page that follows the fetch or reported by a later fetch):
 *  - Without manual protect, KVM_GET_DIRTY_LOG gets and clears under the MMU
 *    lock, word by word (an atomic exchange) with the pages of each set bit
 *    write-protected again before it returns: a write that missed the
 *    exchange faults on the re-protected page (or was logged after the
 *    exchange) and sets its bit for the next fetch.
 *  - With manual protect, KVM_GET_DIRTY_LOG only reads the bits and leaves
 *    the pages writable; KVM_CLEAR_DIRTY_LOG afterwards clears exactly the
 *    bits we got and write-protects those pages. A write between the get and
 *    the clear to a page whose bit we got is in the page when it is sent
 *    (after this fetch); a write to a page whose bit was clear is not
 *    cleared (its bit is not in the mask) and shows up next time; a write
 *    after the clear faults and sets the bit for the next fetch.
 *  - The device side marks after its write (release) and guest_mem_dirty_fetch
 *    clears each word atomically: a mark that misses this fetch is in the next.
 */
#include "dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"

#define PAGE_SHIFT 12

void dirty_bitmap_or(uint64_t *dst, uint64_t first_bit, const uint64_t *src, uint64_t nbits)
{
	for (uint64_t w = 0; w * 64 < nbits; w++) {
		uint64_t v = src[w];
		if (nbits - w * 64 < 64)
			v &= (1ULL << (nbits - w * 64)) - 1;
		if (!v)
			continue;
		uint64_t bit = first_bit + w * 64;
		unsigned shift = bit % 64;
		dst[bit / 64] |= v << shift;
		/* The high part lands in the next word; only set bits are in range, so only then touch it. */
		if (shift && (v >> (64 - shift)))
			dst[bit / 64 + 1] |= v >> (64 - shift);
	}
}

static uint64_t ram_pages(const struct vm *vm)
{
	return (guest_mem_end(&vm->mem) + (1u << PAGE_SHIFT) - 1) >> PAGE_SHIFT;
}

size_t vm_dirty_bitmap_words(const struct vm *vm)
{
	return (size_t)((ram_pages(vm) + 63) / 64);
}

static int set_manual(struct vm *vm, uint64_t flags)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = {flags}};
	return kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
}

static void slots_off(struct vm *vm, unsigned n)
{
	struct err ignored = {{0}};
	for (unsigned i = 0; i < n; i++)
		vm_set_ram_slot(vm, i, 0, &ignored);
}

int vm_dirty_log_start(struct vm *vm, struct err *e)
{
	if (vm->dirty_logging)
		return err_set(e, -EBUSY, "dirty logging is already on");
	int r = guest_mem_dirty_log_start(&vm->mem, e);
	if (r)
		return r;
	/*
	 * Manual protect without KVM_DIRTY_LOG_INITIALLY_SET: the flag change below
	 * write-protects every page and starts with a clean log, as without it.
	 * Should enabling fail, the plain get-and-clear mode is just as correct.
	 */
	vm->dirty_manual = false;
	if ((kvm_check_extension(vm->kvm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) &
	     KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) &&
	    set_manual(vm, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) == 0)
		vm->dirty_manual = true;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		if ((r = vm_set_ram_slot(vm, i, KVM_MEM_LOG_DIRTY_PAGES, e))) {
			slots_off(vm, i);
			if (vm->dirty_manual)
				set_manual(vm, 0);
			vm->dirty_manual = false;
			guest_mem_dirty_log_stop(&vm->mem);
			return r;
		}
	}
	vm->dirty_logging = true;
	return 0;
}

int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap, uint64_t *ndirty, struct err *e)
{
	*ndirty = 0;
	if (!vm->dirty_logging)
		return err_set(e, -EINVAL, "dirty logging is off");
	uint64_t pages = ram_pages(vm);
	size_t words = (size_t)((pages + 63) / 64);
	uint64_t slot_words = 0;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		uint64_t w = ((vm->mem.regions[i].size >> PAGE_SHIFT) + 63) / 64;
		if (w > slot_words)
			slot_words = w;
	}
	uint64_t *slot = calloc(slot_words ? slot_words : 1, sizeof(*slot));
	if (!slot)
		return err_set(e, -ENOMEM, "out of memory for a dirty log");

	/* The device side first: it zeroes the words it fills. */
	memset(bitmap, 0, words * sizeof(*bitmap));
	guest_mem_dirty_fetch(&vm->mem, 0, pages, bitmap);

	int r = 0;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct guest_mem_region *g = &vm->mem.regions[i];
		uint64_t npages = g->size >> PAGE_SHIFT;
		memset(slot, 0, slot_words * sizeof(*slot));
		struct kvm_dirty_log log = {.slot = i, .dirty_bitmap = slot};
		if ((r = kvm_ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log)) < 0) {
			r = err_set(e, r, "KVM_GET_DIRTY_LOG (slot %u): %s", i, strerror(-r));
			break;
		}
		if (vm->dirty_manual) {
			struct kvm_clear_dirty_log clr = {
			    .slot = i, .num_pages = (uint32_t)npages, .first_page = 0, .dirty_bitmap = slot};
			if ((r = kvm_ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr)) < 0) {
				r = err_set(e, r, "KVM_CLEAR_DIRTY_LOG (slot %u): %s", i, strerror(-r));
				break;
			}
		}
		r = 0;
		dirty_bitmap_or(bitmap, g->gpa >> PAGE_SHIFT, slot, npages);
	}
	free(slot);
	if (r)
		return r;
	uint64_t n = 0;
	for (size_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(bitmap[w]);
	*ndirty = n;
	return 0;
}

void vm_dirty_log_stop(struct vm *vm)
{
	if (!vm->dirty_logging)
		return;
	slots_off(vm, vm->mem.nregions);
	if (vm->dirty_manual)
		set_manual(vm, 0);
	vm->dirty_manual = false;
	guest_mem_dirty_log_stop(&vm->mem);
	vm->dirty_logging = false;
}
