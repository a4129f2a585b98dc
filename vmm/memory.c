/* SPDX-License-Identifier: MIT */
/* Set-up thread allocates; any thread may translate (the layout never changes while running). */
#include "memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/layout.h"

int guest_mem_alloc(struct guest_mem *m, uint64_t ram_size, struct err *e)
{
	memset(m, 0, sizeof(*m));
	if (ram_size == 0 || ram_size % 4096)
		return err_set(e, -EINVAL, "guest memory size %llu is not a positive multiple of 4 KiB",
			       (unsigned long long)ram_size);
	void *p =
	    mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err_set(e, -errno, "cannot map %llu MiB of guest memory: %s",
			       (unsigned long long)(ram_size >> 20), strerror(errno));
	/* Guest RAM is a good candidate for transparent huge pages; failure is harmless. */
	madvise(p, ram_size, MADV_HUGEPAGE);
	m->map = p;
	m->ram_size = ram_size;
	uint64_t low = ram_size < LAYOUT_MMIO32_START ? ram_size : LAYOUT_MMIO32_START;
	m->regions[0] = (struct guest_mem_region){0, low, m->map};
	m->nregions = 1;
	if (ram_size > low) {
		m->regions[1] = (struct guest_mem_region){LAYOUT_4G, ram_size - low, m->map + low};
		m->nregions = 2;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	if (m->map)
		munmap(m->map, m->ram_size);
	memset(m, 0, sizeof(*m));
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
