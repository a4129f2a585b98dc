/* SPDX-License-Identifier: MIT */
#include "common/sbuf.h"

#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void sbuf_free(struct sbuf *b)
{
	free(b->data);
	sbuf_init(b);
}

void sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (n > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_le(struct sbuf *b, uint64_t v, unsigned n)
{
	uint8_t t[8];
	for (unsigned i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	sbuf_put(b, t, n);
}

void sbuf_u8(struct sbuf *b, uint8_t v)
{
	put_le(b, v, 1);
}
void sbuf_u16(struct sbuf *b, uint16_t v)
{
	put_le(b, v, 2);
}
void sbuf_u32(struct sbuf *b, uint32_t v)
{
	put_le(b, v, 4);
}
void sbuf_u64(struct sbuf *b, uint64_t v)
{
	put_le(b, v, 8);
}

void sreader_init(struct sreader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = false;
}

void sreader_get(struct sreader *r, void *out, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
}

static uint64_t get_le(struct sreader *r, unsigned n)
{
	uint8_t t[8];
	sreader_get(r, t, n);
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)t[i] << (8 * i);
	return v;
}

uint8_t sreader_u8(struct sreader *r)
{
	return (uint8_t)get_le(r, 1);
}
uint16_t sreader_u16(struct sreader *r)
{
	return (uint16_t)get_le(r, 2);
}
uint32_t sreader_u32(struct sreader *r)
{
	return (uint32_t)get_le(r, 4);
}
uint64_t sreader_u64(struct sreader *r)
{
	return get_le(r, 8);
}

bool sreader_check(struct sreader *r, bool cond)
{
	if (!cond)
		r->bad = true;
	return cond;
}

bool sreader_done(const struct sreader *r)
{
	return !r->bad && r->off == r->len;
}
