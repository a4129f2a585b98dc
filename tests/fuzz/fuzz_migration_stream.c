/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the saved-state stream reader (vmm/migration/stream.c,
 * record.c) on hostile input, read through a file descriptor (a memfd) as a
 * migration or a restore reads it, until END or the first error.
 *
 * Oracles beyond the sanitizers: every record the reader returns parses with
 * the payload helpers (stream_parse_ram/vcpu/device); a CONFIG payload is
 * also given to the machine description's parser (machine_config_parse,
 * vmm/migration/machine_state.c; its CPUID table included), and one it
 * accepts must encode back to the same bytes and pass the destination's
 * check against itself (cpuid_compat_check included); a stream accepted
 * whole, written again record by record with the writer, gives back the
 * input's bytes exactly. libFuzzer's -malloc_limit_mb catches allocations
 * sized by a hostile length. FUZZ_MIGRATION_STREAM_VERBOSE=1 prints the
 * reader's verdict on each input, and the CONFIG parser's on each CONFIG (to
 * check seeds).
 *
 * ---- Input format (tests/fuzz/gen_migration_stream_seeds.py writes it too) ----
 * byte 0: bit 0 set: fix up every record's CRC before reading (walking the
 *         records by their declared lengths), so that mutations reach the
 *         checks behind the CRC; clear: the bytes are read as they are.
 * the rest: the stream (header, records).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "common/sbuf.h"
#include "vmm/migration/machine_state.h"
#include "vmm/migration/stream.h"

#define NO_COVER __attribute__((no_sanitize("coverage")))

static int in_fd = -1, out_fd = -1;
static struct stream_writer writer;
static uint8_t *copy, *back;
static size_t copy_cap;

NO_COVER static void die(const char *what)
{
	fprintf(stdout, "fuzz_migration_stream: %s\n", what);
	fflush(stdout);
	abort();
}

NO_COVER static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

NO_COVER static void fix_crcs(uint8_t *p, size_t n)
{
	size_t off = STREAM_HDR_LEN;
	while (n >= off && n - off >= STREAM_REC_HDR + 4) {
		uint64_t len = le(p + off + 8, 8);
		if (len > n - off - STREAM_REC_HDR - 4)
			break;
		uint32_t c = (uint32_t)crc32(0, p + off, (uInt)(STREAM_REC_HDR + len));
		for (unsigned i = 0; i < 4; i++)
			p[off + STREAM_REC_HDR + len + i] = (uint8_t)(c >> (8 * i));
		off += STREAM_REC_HDR + (size_t)len + 4;
	}
}

NO_COVER static void load(int fd, const uint8_t *p, size_t n)
{
	if (ftruncate(fd, 0) || (n && pwrite(fd, p, n, 0) != (ssize_t)n) || lseek(fd, 0, SEEK_SET))
		die("memfd write failed");
}

static struct machine_desc config;

/* A CONFIG payload: may be refused; accepted, it must round-trip and match itself. */
static void check_config(const uint8_t *p, size_t len)
{
	struct err e = {0};
	int rc = machine_config_parse(p, len, &config, &e);
	if (getenv("FUZZ_MIGRATION_STREAM_VERBOSE"))
		printf("fuzz_migration_stream: CONFIG %s\n", rc ? err_msg(&e) : "parsed");
	if (rc) {
		if (!err_msg(&e)[0])
			die("a CONFIG refused without a message");
		return;
	}
	struct sbuf b;
	sbuf_init(&b);
	machine_config_put(&config, &b);
	if (b.oom || b.len != len || memcmp(b.data, p, len))
		die("an accepted CONFIG encoded again differs from the input");
	sbuf_free(&b);
	if (machine_config_check(&config, p, len, &e))
		die(err_msg(&e)); /* a machine refused its own description */
}

/* Every record the reader gave must parse; also writes it again. */
static void check_record(uint32_t type, const uint8_t *p, size_t len)
{
	struct err e = {0};
	int rc = 0;
	if (type == STREAM_RAM) {
		struct stream_ram ram;
		rc = stream_parse_ram(p, len, &ram, &e);
		if (rc == 0)
			rc = stream_write_ram(&writer, ram.gpa, ram.npages, ram.data, &e);
	} else {
		if (type == STREAM_CONFIG)
			check_config(p, len);
		if (type == STREAM_VCPU) {
			uint32_t index;
			const uint8_t *state;
			size_t state_len;
			rc = stream_parse_vcpu(p, len, &index, &state, &state_len, &e);
		} else if (type == STREAM_DEVICE) {
			struct stream_device dev;
			rc = stream_parse_device(p, len, &dev, &e);
		}
		if (rc == 0)
			rc = type == STREAM_END ? stream_write_end(&writer, &e)
						: stream_write_record(&writer, type, p, len, &e);
	}
	if (rc)
		die(err_msg(&e)); /* the reader took a record that the helpers or the writer refuse */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (in_fd < 0) {
		in_fd = memfd_create("fuzz-stream-in", MFD_CLOEXEC);
		out_fd = memfd_create("fuzz-stream-out", MFD_CLOEXEC);
		if (in_fd < 0 || out_fd < 0)
			die("memfd_create failed");
	}
	if (size < 1)
		return 0;
	size_t n = size - 1;
	if (n > copy_cap) {
		free(copy);
		free(back);
		copy = malloc(n);
		back = malloc(n);
		if (!copy || !back)
			die("no memory");
		copy_cap = n;
	}
	if (n)
		memcpy(copy, data + 1, n);
	if (data[0] & 1)
		fix_crcs(copy, n);
	load(in_fd, copy, n);
	load(out_fd, NULL, 0);

	struct stream_reader r;
	struct err e = {0};
	int rc = stream_reader_init(&r, in_fd, &e);
	stream_writer_init(&writer, out_fd);
	if (rc == 0 && stream_write_header(&writer, &e))
		die(err_msg(&e));
	while (rc == 0 && !r.ended) {
		uint32_t type;
		const uint8_t *p;
		size_t len;
		rc = stream_read_record(&r, &type, &p, &len, &e);
		if (rc == 0)
			check_record(type, p, len);
		if (rc < 0 && !err_msg(&e)[0])
			die("an error without a message");
	}
	stream_reader_destroy(&r);
	if (getenv("FUZZ_MIGRATION_STREAM_VERBOSE"))
		printf("fuzz_migration_stream: %s\n", rc ? err_msg(&e) : "accepted");
	if (rc == 0) {
		/* Accepted whole: written again, it is the same stream. */
		if (writer.bytes != n || pread(out_fd, back, n, 0) != (ssize_t)n || memcmp(back, copy, n))
			die("an accepted stream written again differs from the input");
	}
	return 0;
}
