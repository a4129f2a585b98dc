/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking of guest RAM for live migration: KVM's dirty log of
 * every RAM slot (the pages vCPUs wrote) merged with the device side's
 * (guest_mem_mark_dirty(): the pages device threads wrote through host
 * pointers), as one bitmap over all guest page frames by guest-physical
 * frame number (bit pfn % 64 of word pfn / 64; frames in the MMIO hole are
 * never set).
 *
 * Start, fetch and stop are for one thread (the migration's); the vCPUs
 * and device threads may run meanwhile.
 */
#ifndef KVMINI_VMM_MIGRATION_DIRTY_H
#define KVMINI_VMM_MIGRATION_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct vm;

/*
 * Turns logging on: the device-side bitmap, then KVM's manual protect mode
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) when KVM offers it, then
 * KVM_MEM_LOG_DIRTY_PAGES on every RAM slot. Nothing is dirty right after
 * (the first fetch gives what was written since the start; the caller sends
 * all of RAM once anyway). On failure everything is undone. -EBUSY when on.
 */
int vm_dirty_log_start(struct vm *vm, struct err *e);
/* Words (uint64_t) of the bitmap vm_dirty_log_fetch() fills: one bit per 4 KiB frame below RAM's end. */
size_t vm_dirty_bitmap_words(const struct vm *vm);
/*
 * Fills bitmap (vm_dirty_bitmap_words() words, overwritten) with the frames
 * written since the previous fetch (or the start), by vCPUs or devices, and
 * *ndirty with their number. Those frames are clean again afterwards: the
 * caller sends their contents after the fetch. -EINVAL when logging is off.
 */
int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap, uint64_t *ndirty, struct err *e);
/* Turns logging off: the slots without the flag, manual mode off, the device log stopped. */
void vm_dirty_log_stop(struct vm *vm);

/*
 * ORs nbits bits of src (from bit 0) into dst from bit first_bit on: how a
 * slot's bitmap lands at its first frame. Exposed for the unit tests.
 */
void dirty_bitmap_or(uint64_t *dst, uint64_t first_bit, const uint64_t *src, uint64_t nbits);

#endif
