/* SPDX-License-Identifier: MIT */
/*
 * Little-endian serialisation for saved state (migration, save/restore):
 * a growing write buffer, and a bounds-checked reader for input that is not
 * trusted (a migration stream comes from the network). Errors are sticky:
 * write or read a whole record, then check sb->oom / sr->bad once.
 */
#ifndef KVMINI_COMMON_SBUF_H
#define KVMINI_COMMON_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
	uint8_t *data;
	size_t len, cap;
	bool oom; /* an allocation failed: data holds what fitted before */
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_put(struct sbuf *b, const void *p, size_t n);
void sbuf_u8(struct sbuf *b, uint8_t v);
void sbuf_u16(struct sbuf *b, uint16_t v);
void sbuf_u32(struct sbuf *b, uint32_t v);
void sbuf_u64(struct sbuf *b, uint64_t v);

struct sreader {
	const uint8_t *p;
	size_t len, off;
	bool bad; /* read past the end (or a caller's check failed): every later read gives 0 */
};

void sreader_init(struct sreader *r, const void *p, size_t len);
/* Copies n bytes (zeroes once bad). */
void sreader_get(struct sreader *r, void *out, size_t n);
uint8_t sreader_u8(struct sreader *r);
uint16_t sreader_u16(struct sreader *r);
uint32_t sreader_u32(struct sreader *r);
uint64_t sreader_u64(struct sreader *r);
/* Marks the input bad unless cond holds (for a caller's range checks); returns cond. */
bool sreader_check(struct sreader *r, bool cond);
/* Whether everything was read and nothing was bad (trailing bytes are an error too). */
bool sreader_done(const struct sreader *r);

#endif
