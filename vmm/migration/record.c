/* SPDX-License-Identifier: MIT */
/*
 * The record types of the saved-state stream and the layout of their payload
 * headers (RAM, VCPU, DEVICE): one check used by both the writer and the
 * reader, so that whatever is written is also read.
 */
#include "vmm/migration/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

const char *stream_type_name(uint32_t type)
{
	static const char *const names[] = {
	    [STREAM_CONFIG] = "CONFIG", [STREAM_RAM] = "RAM",	    [STREAM_VM] = "VM",
	    [STREAM_VCPU] = "VCPU",	[STREAM_DEVICE] = "DEVICE", [STREAM_END] = "END",
	};
	return stream_type_known(type) ? names[type] : "unknown";
}

bool stream_type_known(uint32_t type)
{
	return type >= STREAM_CONFIG && type <= STREAM_END;
}

size_t stream_max_len(uint32_t type)
{
	if (type == STREAM_RAM)
		return STREAM_RAM_MAX;
	if (type == STREAM_END || !stream_type_known(type))
		return 0;
	return STREAM_RECORD_MAX;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -EINVAL)

static int check_ram(const uint8_t *p, size_t len, char *why, size_t whylen)
{
	if (len < STREAM_RAM_HDR)
		return WHY("%zu bytes, shorter than its %u-byte header", len, STREAM_RAM_HDR);
	uint64_t gpa = le64(p);
	uint32_t npages = le32(p + 8), flags = le32(p + 12);
	if (flags & ~STREAM_RAM_ZERO)
		return WHY("flags 0x%" PRIx32 " not known", flags);
	if (npages == 0 || npages > STREAM_RAM_PAGES)
		return WHY("%" PRIu32 " pages (1 to %u in a record)", npages, STREAM_RAM_PAGES);
	if (gpa % STREAM_PAGE)
		return WHY("address 0x%" PRIx64 " not page aligned", gpa);
	if (gpa + (uint64_t)npages * STREAM_PAGE - 1 < gpa)
		return WHY("pages at 0x%" PRIx64 " run past the end of the address space", gpa);
	size_t want = STREAM_RAM_HDR + ((flags & STREAM_RAM_ZERO) ? 0 : (size_t)npages * (8 + STREAM_PAGE));
	if (len != want)
		return WHY("%zu bytes for %" PRIu32 " %spages (%zu expected)", len, npages,
			   (flags & STREAM_RAM_ZERO) ? "zero " : "", want);
	return 0;
}

static int check_device(const uint8_t *p, size_t len, char *why, size_t whylen)
{
	if (len < 2)
		return WHY("%zu bytes, shorter than its header", len);
	size_t n = le16(p);
	if (n == 0 || n > STREAM_DEV_NAME)
		return WHY("a device name of %zu bytes (1 to %u)", n, STREAM_DEV_NAME);
	if (len < 2 + n + 8)
		return WHY("%zu bytes, shorter than its header", len);
	for (size_t i = 0; i < n; i++)
		if (p[2 + i] < 0x20 || p[2 + i] > 0x7e)
			return WHY("a device name with byte 0x%02x (printable ASCII only)", p[2 + i]);
	return 0;
}

int stream_check_payload(uint32_t type, const uint8_t *p, size_t len, char *why, size_t whylen)
{
	if (!stream_type_known(type))
		return WHY("type %" PRIu32 " not known", type);
	if (len > stream_max_len(type))
		return WHY("%zu bytes, over the limit of %zu", len, stream_max_len(type));
	switch (type) {
	case STREAM_RAM:
		return check_ram(p, len, why, whylen);
	case STREAM_DEVICE:
		return check_device(p, len, why, whylen);
	case STREAM_VCPU:
		if (len < 4)
			return WHY("%zu bytes, shorter than its 4-byte index", len);
		return 0;
	default:
		return 0;
	}
}

uint64_t stream_check(const uint8_t hdr[STREAM_REC_HDR], const void *covered, size_t len)
{
	return XXH64(covered, len, XXH64(hdr, STREAM_REC_HDR, 0));
}

uint64_t stream_page_check(const void *page)
{
	return XXH64(page, STREAM_PAGE, 0);
}

size_t stream_ram_head_len(const uint8_t *head)
{
	return STREAM_RAM_HDR + ((le32(head + 12) & STREAM_RAM_ZERO) ? 0 : 8 * (size_t)le32(head + 8));
}

/* The parse helpers check again: a caller may hand them a payload from elsewhere. */
static int parse_check(uint32_t type, const uint8_t *p, size_t len, struct err *err)
{
	char why[160];
	if (stream_check_payload(type, p, len, why, sizeof(why)) < 0)
		return err_set(err, -EINVAL, "a %s record: %s", stream_type_name(type), why);
	return 0;
}

int stream_parse_ram(const uint8_t *p, size_t len, struct stream_ram *out, struct err *err)
{
	int rc = parse_check(STREAM_RAM, p, len, err);
	if (rc < 0)
		return rc;
	out->gpa = le64(p);
	out->npages = le32(p + 8);
	out->flags = le32(p + 12);
	bool zero = out->flags & STREAM_RAM_ZERO;
	out->checks = zero ? NULL : p + STREAM_RAM_HDR;
	out->data = zero ? NULL : p + STREAM_RAM_HDR + 8 * (size_t)out->npages;
	return 0;
}

void stream_put_vcpu_header(struct sbuf *b, uint32_t index)
{
	sbuf_u32(b, index);
}

int stream_parse_vcpu(const uint8_t *p, size_t len, uint32_t *index, const uint8_t **state, size_t *state_len,
		      struct err *err)
{
	int rc = parse_check(STREAM_VCPU, p, len, err);
	if (rc < 0)
		return rc;
	*index = le32(p);
	*state = p + 4;
	*state_len = len - 4;
	return 0;
}

int stream_put_device_header(struct sbuf *b, const char *name, uint32_t instance, uint32_t version,
			     struct err *err)
{
	size_t n = strlen(name);
	if (n == 0 || n > STREAM_DEV_NAME)
		return err_set(err, -EINVAL, "device name \"%.80s\": 1 to %u bytes", name, STREAM_DEV_NAME);
	for (size_t i = 0; i < n; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			return err_set(err, -EINVAL, "device name with byte 0x%02x: printable ASCII only",
				       (uint8_t)name[i]);
	sbuf_u16(b, (uint16_t)n);
	sbuf_put(b, name, n);
	sbuf_u32(b, instance);
	sbuf_u32(b, version);
	return 0;
}

int stream_parse_device(const uint8_t *p, size_t len, struct stream_device *out, struct err *err)
{
	int rc = parse_check(STREAM_DEVICE, p, len, err);
	if (rc < 0)
		return rc;
	size_t n = le16(p);
	memcpy(out->name, p + 2, n);
	out->name[n] = '\0';
	out->instance = le32(p + 2 + n);
	out->version = le32(p + 2 + n + 4);
	out->state = p + 2 + n + 8;
	out->state_len = len - (2 + n + 8);
	return 0;
}
