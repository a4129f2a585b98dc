/* SPDX-License-Identifier: MIT */
#include "vmm/migration/ram_pending.h"

#include <errno.h>
#include <stdlib.h>

#define PAGE 4096u

void ram_pending_init(struct ram_pending *p, uint64_t mem_end)
{
	*p = (struct ram_pending){.npages = (mem_end + PAGE - 1) / PAGE};
}

int ram_pending_note(struct ram_pending *p, uint64_t gpa, uint32_t npages, const uint64_t *torn,
		     uint64_t record, struct err *e)
{
	uint64_t pfn = gpa / PAGE;
	if (pfn > p->npages || npages > p->npages - pfn || npages > 256)
		return err_set(e, -EINVAL, "RAM record %llu lies outside guest memory",
			       (unsigned long long)record);
	bool any = false;
	for (unsigned i = 0; torn && i < (npages + 63) / 64; i++)
		any |= torn[i] != 0;
	if (!any && !p->count)
		return 0; /* the usual case: nothing outstanding */
	if (!p->bits) {
		p->bits = calloc((p->npages + 63) / 64, sizeof(uint64_t));
		if (!p->bits)
			return err_set(e, -ENOMEM, "out of memory");
	}
	if (any && !p->count)
		p->first_rec = record;
	for (uint64_t i = pfn; i < pfn + npages; i++) {
		uint64_t m = 1ull << (i % 64), *w = &p->bits[i / 64], k = i - pfn;
		bool ok = !torn || !(torn[k / 64] >> (k % 64) & 1);
		if (ok && (*w & m)) {
			*w &= ~m;
			p->count--;
		} else if (!ok && !(*w & m)) {
			*w |= m;
			p->count++;
		}
	}
	return 0;
}

int ram_pending_check(const struct ram_pending *p, struct err *e)
{
	if (!p->count)
		return 0;
	uint64_t i = 0;
	while (!(p->bits[i / 64] >> (i % 64) & 1))
		i++;
	return err_set(e, -EINVAL,
		       "the stream is damaged: guest page 0x%llx (and %llu more) failed its checksum "
		       "and was not sent again (first failure in record %llu)",
		       (unsigned long long)(i * PAGE), (unsigned long long)(p->count - 1),
		       (unsigned long long)p->first_rec);
}

void ram_pending_destroy(struct ram_pending *p)
{
	free(p->bits);
	p->bits = NULL;
}
