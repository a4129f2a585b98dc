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
 * input's bytes exactly (unless a RAM record's pages failed their own check:
 * the reader takes those, flagged, and the writer would compute a new one).
 * A second pass reads the same input with a RAM sink (pages straight into a
 * fake guest memory of 2 MiB), which must reach the same verdict and record
 * count, and put the same pages in place. libFuzzer's -malloc_limit_mb catches allocations
 * sized by a hostile length. FUZZ_MIGRATION_STREAM_VERBOSE=1 prints the
 * reader's verdict on each input, and the CONFIG parser's on each CONFIG (to
 * check seeds).
 *
 * ---- Input format (tests/fuzz/gen_migration_stream_seeds.py writes it too) ----
 * byte 0: bit 0 set: fix up every record's check (and a RAM record's page
 *         checks) before reading, walking the records by their declared
 *         lengths, so that mutations reach the checks behind them; clear: the
 *         bytes are read as they are.
 * the rest: the stream (header, records).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "vmm/migration/machine_state.h"
#include "vmm/migration/stream.h"

#define NO_COVER __attribute__((no_sanitize("coverage")))

#define FAKE_MEM (2u << 20) /* the fake guest memory of the sink pass */

static int in_fd = -1, out_fd = -1;
static uint8_t *mem_plain, *mem_sink; /* RAM applied by hand from the first pass; by the sink */
static bool all_in;		      /* every RAM record of the first pass lies in FAKE_MEM */
static unsigned torn;		      /* RAM records whose pages failed their check (first pass) */
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

NO_COVER static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

NO_COVER static void fix_checks(uint8_t *p, size_t n)
{
	size_t off = STREAM_HDR_LEN;
	while (n >= off && n - off >= STREAM_REC_HDR + STREAM_CHECK) {
		uint64_t len = le(p + off + 8, 8);
		if (len > n - off - STREAM_REC_HDR - STREAM_CHECK)
			break;
		uint8_t *h = p + off, *pl = h + STREAM_REC_HDR;
		size_t covered = (size_t)len;
		if (le(h, 4) == STREAM_RAM && len >= STREAM_RAM_HDR && stream_ram_head_len(pl) <= len) {
			covered = stream_ram_head_len(pl);
			size_t npages = (covered - STREAM_RAM_HDR) / 8;
			for (size_t i = 0; i < npages && covered + (i + 1) * STREAM_PAGE <= len; i++)
				put64(pl + STREAM_RAM_HDR + 8 * i,
				      stream_page_check(pl + covered + i * STREAM_PAGE));
		}
		put64(pl + len, stream_check(h, pl, covered));
		off += STREAM_REC_HDR + (size_t)len + STREAM_CHECK;
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
		uint64_t bytes = (uint64_t)ram.npages * STREAM_PAGE;
		if (rc == 0 && ram.gpa < FAKE_MEM && bytes <= FAKE_MEM - ram.gpa) {
			if (ram.data)
				memcpy(mem_plain + ram.gpa, ram.data, bytes);
			else
				memset(mem_plain + ram.gpa, 0, bytes);
		} else {
			all_in = false;
		}
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

NO_COVER static uint8_t *sink(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque;
	return gpa < FAKE_MEM && len <= FAKE_MEM - gpa ? mem_sink + gpa : NULL;
}

/* The same input again, RAM through a sink: returns the verdict; counts torn records. */
static int read_with_sink(unsigned *torn_sink, uint64_t *records)
{
	struct stream_reader r;
	struct err e = {0};
	if (lseek(in_fd, 0, SEEK_SET))
		die("lseek failed");
	int rc = stream_reader_init(&r, in_fd, &e);
	stream_reader_set_ram_sink(&r, sink, NULL);
	while (rc == 0 && !r.ended) {
		uint32_t type;
		const uint8_t *p;
		size_t len;
		rc = stream_read_record(&r, &type, &p, &len, &e);
		if (rc == 0 && type == STREAM_RAM && !r.data_ok)
			(*torn_sink)++;
		if (rc < 0 && !err_msg(&e)[0])
			die("an error without a message (RAM sink)");
	}
	*records = r.index;
	stream_reader_destroy(&r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (in_fd < 0) {
		in_fd = memfd_create("fuzz-stream-in", MFD_CLOEXEC);
		out_fd = memfd_create("fuzz-stream-out", MFD_CLOEXEC);
		mem_plain = malloc(FAKE_MEM);
		mem_sink = malloc(FAKE_MEM);
		if (in_fd < 0 || out_fd < 0 || !mem_plain || !mem_sink)
			die("set-up failed");
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
		fix_checks(copy, n);
	load(in_fd, copy, n);
	load(out_fd, NULL, 0);

	struct stream_reader r;
	struct err e = {0};
	all_in = true;
	torn = 0;
	memset(mem_plain, 0xa5, FAKE_MEM);
	memset(mem_sink, 0xa5, FAKE_MEM);
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
		if (rc == 0 && type == STREAM_RAM && !r.data_ok)
			torn++;
		if (rc < 0 && !err_msg(&e)[0])
			die("an error without a message");
	}
	uint64_t records = r.index, records_sink;
	stream_reader_destroy(&r);
	unsigned torn_sink = 0;
	int rc_sink = read_with_sink(&torn_sink, &records_sink);
	if (rc_sink == 0 && rc != 0)
		die("the RAM sink accepted a stream the reader refuses");
	if (rc == 0 && all_in &&
	    (rc_sink != 0 || torn_sink != torn || records_sink != records ||
	     memcmp(mem_plain, mem_sink, FAKE_MEM)))
		die("the RAM sink read an accepted stream differently");
	if (getenv("FUZZ_MIGRATION_STREAM_VERBOSE"))
		printf("fuzz_migration_stream: %s\n", rc ? err_msg(&e) : "accepted");
	if (rc == 0 && !torn) {
		/* Accepted whole: written again, it is the same stream. */
		if (writer.bytes != n || pread(out_fd, back, n, 0) != (ssize_t)n || memcmp(back, copy, n))
			die("an accepted stream written again differs from the input");
	}
	return 0;
}
