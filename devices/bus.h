/* SPDX-License-Identifier: MIT */
/*
 * Address-range dispatch for port I/O and MMIO exits. Ranges are registered
 * before the vCPUs start and never change afterwards, so lookups take no lock;
 * each device serialises its own state.
 */
#ifndef KVMINI_DEVICES_BUS_H
#define KVMINI_DEVICES_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One access: offset is relative to the range's base; data holds len bytes
 * (1, 2, 4 or 8), little-endian. For reads the handler fills data.
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	size_t n, cap;
};

void bus_init(struct bus *b);
void bus_free(struct bus *b);
/* Returns 0, -EEXIST when the range overlaps another, -EINVAL for an empty range, -ENOMEM. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name);
/*
 * Dispatches an access. Returns false when no device claims the whole access;
 * then reads are filled with 0xff bytes (open bus) and writes are ignored.
 */
bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
