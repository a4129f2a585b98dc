/* SPDX-License-Identifier: MIT */
/* Zero-page tests shared by the migration writer (zero pages go as a flag, not data) and reader
 * (a page that is zero already is not written, so untouched memory stays unallocated). */
#ifndef KVMINI_COMMON_ZERO_H
#define KVMINI_COMMON_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* True if the 4 KiB page at p (8-byte aligned) is all zero. Eight words per test: a branch per
 * word made this scan the source's second-largest cost under emulation. */
static inline bool page_is_zero(const void *p)
{
	const uint64_t *q = p;
	for (unsigned i = 0; i < 4096 / 8; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7])
			return false;
	return true;
}

/* Zeroes npages pages at p, writing only those that are not zero already (as QEMU does): a read
 * of untouched anonymous memory maps the shared zero page, a write would allocate and clear one. */
static inline void pages_clear(void *p, size_t npages)
{
	for (size_t i = 0; i < npages; i++) {
		uint8_t *pg = (uint8_t *)p + i * 4096;
		if (!page_is_zero(pg))
			memset(pg, 0, 4096);
	}
}

#endif
