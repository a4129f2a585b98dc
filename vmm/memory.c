/* SPDX-License-Identifier: MIT */
/* Set-up thread allocates; any thread may translate (the layout never changes while running). */
#include "memory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/arch/arch.h"

/* The hugetlbfs page size that hugepages uses: the one that x86-64 hosts always have. */
#define HUGE_2M	      (2ULL << 20)
#define HUGE_2M_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"
/* log2(2 MiB) << 26, as <linux/mman.h> and <linux/memfd.h> have (their other macros clash with glibc's). */
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

/* The number in a one-number sysfs file; -1 when it cannot be read. */
static long read_sysfs_long(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	long v;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The message for a hugetlbfs mapping that the kernel refused with ENOMEM: too few free pages. */
static int no_huge_pages(uint64_t ram_size, struct err *e)
{
	unsigned long long mib = (unsigned long long)(ram_size >> 20);
	unsigned long long need = (unsigned long long)(ram_size / HUGE_2M);
	long free_pages = read_sysfs_long(HUGE_2M_SYSFS "free_hugepages");
	long resv = read_sysfs_long(HUGE_2M_SYSFS "resv_hugepages");
	if (free_pages < 0)
		return err_set(e, -ENOMEM,
			       "cannot map %llu MiB of guest memory in 2 MiB huge pages: this host has "
			       "none (no %s)",
			       mib, HUGE_2M_SYSFS);
	/* Free pages that other mappings have reserved are not free for this one. */
	long avail = free_pages - (resv > 0 ? resv : 0);
	return err_set(e, -ENOMEM,
		       "not enough free 2 MiB huge pages for %llu MiB of guest memory (need %llu, have %ld "
		       "free; see /proc/sys/vm/nr_hugepages)",
		       mib, need, avail > 0 ? avail : 0);
}

/* The mapping itself in *out: a private anonymous one, or one of a memfd (then in m->fd) shared. */
static int map_ram(struct guest_mem *m, uint64_t ram_size, const struct guest_mem_opts *o, void **out,
		   struct err *e)
{
	unsigned long long mib = (unsigned long long)(ram_size >> 20);
	const char *in_huge = o->hugepages ? " in 2 MiB huge pages" : "";
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	if (o->shared) {
		m->fd = memfd_create("kvmini-guest",
				     MFD_CLOEXEC | (o->hugepages ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
		if (m->fd < 0)
			return err_set(e, -errno,
				       "cannot create a memfd for %llu MiB of shared guest memory%s: %s", mib,
				       in_huge, strerror(errno));
		if (ftruncate(m->fd, (off_t)ram_size) < 0)
			return err_set(e, -errno, "cannot size the memfd of guest memory to %llu MiB: %s",
				       mib, strerror(errno));
		flags = MAP_SHARED;
	} else if (o->hugepages) {
		/* No MAP_NORESERVE: the pages are reserved now, or mmap fails now (not a fault later). */
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
	}
	void *p = MAP_FAILED;
	if (!o->hugepages) {
		/*
		 * At a 2 MiB-aligned address, as the guest-physical addresses are: KVM maps a
		 * transparent huge page into the guest as one 2 MiB page only where host and guest
		 * addresses agree modulo 2 MiB. mmap alone aligns to 4 KiB, so every guest page was
		 * a 4 KiB one in the nested page tables, and page walks cost more (QEMU aligns too).
		 */
		uint8_t *span = mmap(NULL, ram_size + HUGE_2M, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (span != MAP_FAILED) {
			uint8_t *at =
			    (uint8_t *)(((uintptr_t)span + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
			p = mmap(at, ram_size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, m->fd, 0);
			if (p == MAP_FAILED) {
				munmap(span, ram_size + HUGE_2M);
			} else {
				if (at > span)
					munmap(span, (size_t)(at - span));
				size_t tail = (size_t)(span + ram_size + HUGE_2M - (at + ram_size));
				if (tail)
					munmap(at + ram_size, tail);
			}
		}
	} else {
		p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, flags, m->fd, 0);
	}
	if (p == MAP_FAILED) {
		if (o->hugepages && errno == ENOMEM)
			return no_huge_pages(ram_size, e);
		return err_set(e, -errno, "cannot map %llu MiB of guest memory%s: %s", mib, in_huge,
			       strerror(errno));
	}
	*out = p;
	return 0;
}

int guest_mem_alloc(struct guest_mem *m, uint64_t ram_size, struct err *e)
{
	return guest_mem_alloc_opts(m, ram_size, NULL, e);
}

int guest_mem_alloc_opts(struct guest_mem *m, uint64_t ram_size, const struct guest_mem_opts *o,
			 struct err *e)
{
	static const struct guest_mem_opts plain;
	if (!o)
		o = &plain;
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (ram_size == 0 || ram_size % 4096)
		return err_set(e, -EINVAL, "guest memory size %llu is not a positive multiple of 4 KiB",
			       (unsigned long long)ram_size);
	if (o->hugepages && ram_size % HUGE_2M)
		return err_set(e, -EINVAL,
			       "guest memory of %llu KiB is not a multiple of 2 MiB, as huge pages need",
			       (unsigned long long)(ram_size >> 10));
	if (o->merge && (o->hugepages || o->shared))
		return err_set(e, -EINVAL, "merge (KSM) works on private memory only, not with %s",
			       o->hugepages ? "huge pages" : "shared memory");
	void *p = NULL;
	int r = map_ram(m, ram_size, o, &p, e);
	if (r) {
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		return r;
	}
	if (o->merge && madvise(p, ram_size, MADV_MERGEABLE) < 0) {
		int err = errno;
		munmap(p, ram_size);
		if (err == EINVAL)
			return err_set(
			    e, -EINVAL,
			    "cannot mark guest memory mergeable: this kernel has no KSM (CONFIG_KSM)");
		return err_set(e, -err, "cannot mark guest memory mergeable (KSM): %s", strerror(err));
	}
	/* Guest RAM is a good candidate for transparent huge pages; failure is harmless. */
	if (!o->hugepages)
		madvise(p, ram_size, MADV_HUGEPAGE);
	m->map = p;
	m->ram_size = ram_size;
	m->hugepages = o->hugepages;
	/* The architecture places the regions (x86: around the 32-bit hole; arm64: one, at 2 GiB). */
	m->nregions = arch_ram_layout(ram_size, m->regions);
	uint64_t off = 0;
	for (unsigned i = 0; i < m->nregions; i++) {
		m->regions[i].hva = m->map + off;
		off += m->regions[i].size;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	/* Only with a mapping: fd is 0, not -1, in a zeroed struct that was never allocated. */
	if (m->map) {
		munmap(m->map, m->ram_size);
		if (m->fd >= 0)
			close(m->fd);
	}
	free(m->dirty_bitmap);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct guest_mem_region *r = &m->regions[i];
		/* Written so that no sum can overflow: gpa and len are guest-controlled. */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t guest_mem_low_end(const struct guest_mem *m)
{
	return m->nregions ? m->regions[0].gpa + m->regions[0].size : 0;
}

uint64_t guest_mem_end(const struct guest_mem *m)
{
	uint64_t end = 0;
	for (unsigned i = 0; i < m->nregions; i++)
		if (m->regions[i].gpa + m->regions[i].size > end)
			end = m->regions[i].gpa + m->regions[i].size;
	return end;
}

int guest_mem_gpa(const struct guest_mem *m, const void *p, uint64_t *gpa)
{
	uintptr_t a = (uintptr_t)p;
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct guest_mem_region *r = &m->regions[i];
		uintptr_t base = (uintptr_t)r->hva;
		if (a >= base && a - base < r->size) {
			*gpa = r->gpa + (a - base);
			return 0;
		}
	}
	return -EFAULT;
}

/* ---- dirty log ---- */

#define PAGE_SHIFT 12

int guest_mem_dirty_log_start(struct guest_mem *m, struct err *e)
{
	if (!m->dirty_bitmap) {
		uint64_t end = 0;
		for (unsigned i = 0; i < m->nregions; i++)
			if (m->regions[i].gpa + m->regions[i].size > end)
				end = m->regions[i].gpa + m->regions[i].size;
		uint64_t pages = (end + (1u << PAGE_SHIFT) - 1) >> PAGE_SHIFT;
		m->dirty_bitmap = calloc((pages + 63) / 64 ? (pages + 63) / 64 : 1, sizeof(uint64_t));
		if (!m->dirty_bitmap)
			return err_set(e, -ENOMEM, "out of memory for the dirty bitmap of guest memory");
		m->dirty_pages = pages;
	} else {
		for (uint64_t w = 0; w < (m->dirty_pages + 63) / 64; w++)
			__atomic_store_n(&m->dirty_bitmap[w], 0, __ATOMIC_RELAXED);
	}
	/* Release: the cleared (or new) bitmap before the pointer that turns marking on. */
	__atomic_store_n(&m->dirty_log, m->dirty_bitmap, __ATOMIC_RELEASE);
	return 0;
}

void guest_mem_dirty_log_stop(struct guest_mem *m)
{
	__atomic_store_n(&m->dirty_log, NULL, __ATOMIC_RELEASE);
}

bool guest_mem_dirty_logging(const struct guest_mem *m)
{
	return __atomic_load_n(&m->dirty_log, __ATOMIC_ACQUIRE) != NULL;
}

void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	/* The one load when logging is off (acquire: a plain load on x86). */
	uint64_t *bm = __atomic_load_n(&m->dirty_log, __ATOMIC_ACQUIRE);
	if (!bm || len == 0)
		return;
	uint64_t first = gpa >> PAGE_SHIFT;
	uint64_t last = (gpa + len - 1 < gpa ? UINT64_MAX : gpa + len - 1) >> PAGE_SHIFT;
	if (last >= m->dirty_pages)
		last = m->dirty_pages - 1;
	for (uint64_t pfn = first; pfn <= last && pfn < m->dirty_pages; pfn++) {
		/*
		 * Always the read-modify-write (no "already set" shortcut): release, so that a
		 * fetch that clears the bit after it sees the data written before the mark; a
		 * plain load could see the bit still set just before a fetch clears it and the
		 * write would then be missed by both rounds.
		 */
		__atomic_fetch_or(&bm[pfn / 64], 1ULL << (pfn % 64), __ATOMIC_RELEASE);
	}
}

uint64_t guest_mem_dirty_fetch(struct guest_mem *m, uint64_t first_pfn, uint64_t npages, uint64_t *out)
{
	memset(out, 0, (size_t)((npages + 63) / 64) * sizeof(uint64_t));
	uint64_t *bm = m->dirty_bitmap, count = 0;
	if (!bm)
		return 0;
	for (uint64_t i = 0; i < npages;) {
		uint64_t pfn = first_pfn + i;
		if (pfn < first_pfn || pfn >= m->dirty_pages)
			break;
		unsigned b = (unsigned)(pfn % 64);
		uint64_t take = 64 - b;
		if (take > npages - i)
			take = npages - i;
		if (take > m->dirty_pages - pfn)
			take = m->dirty_pages - pfn;
		uint64_t mask = (take == 64 ? ~0ULL : (1ULL << take) - 1) << b;
		uint64_t bits = (__atomic_fetch_and(&bm[pfn / 64], ~mask, __ATOMIC_SEQ_CST) & mask) >> b;
		count += (uint64_t)__builtin_popcountll(bits);
		unsigned o = (unsigned)(i % 64);
		out[i / 64] |= bits << o;
		if (o && o + take > 64)
			out[i / 64 + 1] |= bits >> (64 - o);
		i += take;
	}
	return count;
}
