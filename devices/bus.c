/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (bus_access) and the set-up thread (bus_register). */
#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *b)
{
	memset(b, 0, sizeof(*b));
}

void bus_free(struct bus *b)
{
	free(b->ranges);
	memset(b, 0, sizeof(*b));
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name)
{
	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	size_t pos = 0;
	while (pos < b->n && b->ranges[pos].base < base)
		pos++;
	if (pos > 0 && b->ranges[pos - 1].base + b->ranges[pos - 1].len > base)
		return -EEXIST;
	if (pos < b->n && base + len > b->ranges[pos].base)
		return -EEXIST;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bus_range *r = realloc(b->ranges, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->ranges = r;
		b->cap = cap;
	}
	memmove(&b->ranges[pos + 1], &b->ranges[pos], (b->n - pos) * sizeof(*b->ranges));
	b->ranges[pos] = (struct bus_range){base, len, fn, opaque, name};
	b->n++;
	return 0;
}

static const struct bus_range *bus_find(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &b->ranges[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = bus_find(b, addr);
	/* The whole access must fall inside one range: no device sees bytes past its end. */
	if (!r || len == 0 || len > 8 || addr - r->base + len > r->len) {
		if (!is_write)
			memset(data, 0xff, len > 8 ? 8 : len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
