/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one mapping split into the regions the architecture places
 * (arch_ram_layout: x86 around the 32-bit MMIO hole, arm64 one at 2 GiB), and the
 * one checked translation from guest-physical ranges to host pointers. Any
 * code that touches guest memory goes through guest_mem_ptr() (or the read and
 * write helpers built on it), so a guest-supplied address can never reach
 * host memory outside the guest.
 */
#ifndef KVMINI_VMM_MEMORY_H
#define KVMINI_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned nregions;
	uint64_t ram_size; /* total bytes of RAM, as configured */
	uint8_t *map;	   /* the whole mapping, ram_size bytes */
	int fd;		   /* shared: the memfd behind map (another process may map it); else -1 */
	bool hugepages;	   /* map is made of 2 MiB hugetlbfs pages */
	/*
	 * Dirty log of device writes (live migration): one bit per 4 KiB frame by
	 * guest-physical frame number, for [0, dirty_pages). dirty_bitmap is kept
	 * from the first guest_mem_dirty_log_start() to guest_mem_free(), so that a
	 * device thread that saw logging on just before a stop never writes freed
	 * memory; dirty_log (atomic) points at it while logging is on, else NULL.
	 */
	uint64_t *dirty_bitmap;
	uint64_t *dirty_log;
	uint64_t dirty_pages;
};

/*
 * How guest RAM is backed. All false (guest_mem_alloc()): private anonymous
 * memory, MAP_NORESERVE, with transparent huge pages where the host has them.
 */
struct guest_mem_opts {
	/*
	 * 2 MiB hugetlbfs pages (ram_size a multiple of 2 MiB), all reserved
	 * when mapped: too few free huge pages fail the allocation (-ENOMEM,
	 * with a message that says how many there are).
	 */
	bool hugepages;
	/* madvise(MADV_MERGEABLE) so that KSM may merge identical pages; -EINVAL without KSM. */
	bool merge;
	/* A memfd named "kvmini-guest" (MFD_HUGETLB with hugepages), mapped MAP_SHARED; kept in fd. */
	bool shared;
};

/* Maps ram_size bytes (a multiple of 4 KiB) and lays them out as arch_ram_layout() says. */
int guest_mem_alloc(struct guest_mem *m, uint64_t ram_size, struct err *e);
/*
 * The same, backed as o says (NULL: as guest_mem_alloc()). KSM merges only
 * private pages that are not hugetlbfs ones, so merge with hugepages or
 * shared is -EINVAL rather than advice the kernel would silently ignore.
 */
int guest_mem_alloc_opts(struct guest_mem *m, uint64_t ram_size, const struct guest_mem_opts *o,
			 struct err *e);
/* Unmaps, closes the memfd; harmless twice, on a zeroed struct and after a failed alloc. */
void guest_mem_free(struct guest_mem *m);

/* Host pointer for [gpa, gpa + len) when the whole range is RAM in one region; NULL otherwise. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Checked copies; return 0 or -EFAULT when any byte is outside RAM. */
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len);
int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len);
/* Highest guest-physical address + 1 of the first RAM region (x86: RAM below the hole). */
uint64_t guest_mem_low_end(const struct guest_mem *m);
/* Highest guest-physical address + 1 of any RAM region: the span dirty maps cover. */
uint64_t guest_mem_end(const struct guest_mem *m);
/* The guest-physical address of host pointer p when it points into RAM (0), else -EFAULT. */
int guest_mem_gpa(const struct guest_mem *m, const void *p, uint64_t *gpa);

/*
 * Dirty logging of the writes devices make through host pointers (KVM's own
 * dirty log sees only vCPU writes). Start clears the bitmap (allocating it
 * the first time: 0 or -ENOMEM) and turns marking on; stop turns it off and
 * keeps the bits for a last fetch. Start and stop are for one thread (the
 * migration's); marking and fetching may run on any threads at once.
 */
int guest_mem_dirty_log_start(struct guest_mem *m, struct err *e);
void guest_mem_dirty_log_stop(struct guest_mem *m);
bool guest_mem_dirty_logging(const struct guest_mem *m);
/*
 * Marks the frames of [gpa, gpa + len) dirty when logging is on (atomic bit
 * ops; frames outside RAM are ignored). When it is off this costs one load.
 */
void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/*
 * Fetch and clear: bit i of out (npages bits, 64 to a word, zeroed first) is
 * whether frame first_pfn + i was marked since the last fetch; those bits are
 * cleared atomically. Returns how many were set. Frames beyond RAM read clean.
 */
uint64_t guest_mem_dirty_fetch(struct guest_mem *m, uint64_t first_pfn, uint64_t npages, uint64_t *out);

#endif
