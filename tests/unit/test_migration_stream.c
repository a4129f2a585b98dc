/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the saved-state stream (vmm/migration/stream.c, record.c):
 * round trips through a file, a socket pair and a reader fed one byte per
 * read, with RAM read into the payload or straight into memory (a sink); torn
 * RAM pages taken but flagged; every malformed stream refused with a message
 * naming the record; the writer's own checks and its errors.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/migration/stream.h"

#define PAGES (STREAM_RAM_PAGES * STREAM_PAGE)

static uint8_t guest[PAGES];

static void fill_guest(void)
{
	for (size_t i = 0; i < sizeof(guest); i++)
		guest[i] = (uint8_t)(i * 7 + (i >> 12));
}

/* ---- The reference stream: every record type, written with the writer ---- */

static void write_stream(int fd, bool big)
{
	struct stream_writer *w = malloc(sizeof(*w));
	struct err e = {0};
	struct sbuf b;
	assert_non_null(w);
	stream_writer_init(w, fd);
	assert_int_equal(stream_write_header(w, &e), 0);
	assert_int_equal(stream_write_record(w, STREAM_CONFIG, "cfg", 3, &e), 0);
	assert_int_equal(stream_write_record(w, STREAM_CONFIG, NULL, 0, &e), 0);
	assert_int_equal(stream_write_ram(w, 0x1000, 1, guest, &e), 0);
	assert_int_equal(stream_write_ram(w, 0x100000, 4, NULL, &e), 0);
	assert_int_equal(stream_write_ram(w, 0x200000, big ? STREAM_RAM_PAGES : 2, guest, &e), 0);
	assert_int_equal(stream_write_record(w, STREAM_VM, "vm-state", 8, &e), 0);
	sbuf_init(&b);
	stream_put_vcpu_header(&b, 3);
	sbuf_put(&b, "regs", 4);
	assert_int_equal(stream_write_record(w, STREAM_VCPU, b.data, b.len, &e), 0);
	sbuf_free(&b);
	assert_int_equal(stream_put_device_header(&b, "virtio-net", 1, 7, &e), 0);
	sbuf_put(&b, "queues", 6);
	assert_int_equal(stream_write_record(w, STREAM_DEVICE, b.data, b.len, &e), 0);
	sbuf_free(&b);
	assert_int_equal(stream_write_end(w, &e), 0);
	assert_int_equal(w->records, 9);
	assert_string_equal(err_msg(&e), "");
	free(w);
}

static void next(struct stream_reader *r, uint32_t want_type, const uint8_t **p, size_t *len)
{
	struct err e = {0};
	uint32_t type;
	int rc = stream_read_record(r, &type, p, len, &e);
	if (rc)
		fail_msg("read: %s", err_msg(&e));
	assert_int_equal(type, want_type);
}

static void check_stream(int fd, bool big)
{
	struct stream_reader r;
	struct err e = {0};
	const uint8_t *p;
	size_t len;
	struct stream_ram ram;
	assert_int_equal(stream_reader_init(&r, fd, &e), 0);
	next(&r, STREAM_CONFIG, &p, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "cfg", 3);
	next(&r, STREAM_CONFIG, &p, &len);
	assert_int_equal(len, 0);
	next(&r, STREAM_RAM, &p, &len);
	assert_int_equal(stream_parse_ram(p, len, &ram, &e), 0);
	assert_int_equal(ram.gpa, 0x1000);
	assert_int_equal(ram.npages, 1);
	assert_int_equal(ram.flags, 0);
	assert_memory_equal(ram.data, guest, STREAM_PAGE);
	next(&r, STREAM_RAM, &p, &len);
	assert_int_equal(len, STREAM_RAM_HDR);
	assert_int_equal(stream_parse_ram(p, len, &ram, &e), 0);
	assert_int_equal(ram.gpa, 0x100000);
	assert_int_equal(ram.npages, 4);
	assert_int_equal(ram.flags, STREAM_RAM_ZERO);
	assert_null(ram.data);
	next(&r, STREAM_RAM, &p, &len);
	assert_int_equal(stream_parse_ram(p, len, &ram, &e), 0);
	assert_int_equal(ram.npages, big ? STREAM_RAM_PAGES : 2);
	assert_memory_equal(ram.data, guest, (size_t)ram.npages * STREAM_PAGE);
	next(&r, STREAM_VM, &p, &len);
	assert_int_equal(len, 8);
	next(&r, STREAM_VCPU, &p, &len);
	uint32_t index;
	const uint8_t *state;
	size_t state_len;
	assert_int_equal(stream_parse_vcpu(p, len, &index, &state, &state_len, &e), 0);
	assert_int_equal(index, 3);
	assert_int_equal(state_len, 4);
	assert_memory_equal(state, "regs", 4);
	next(&r, STREAM_DEVICE, &p, &len);
	struct stream_device dev;
	assert_int_equal(stream_parse_device(p, len, &dev, &e), 0);
	assert_string_equal(dev.name, "virtio-net");
	assert_int_equal(dev.instance, 1);
	assert_int_equal(dev.version, 7);
	assert_int_equal(dev.state_len, 6);
	assert_memory_equal(dev.state, "queues", 6);
	next(&r, STREAM_END, &p, &len);
	assert_int_equal(len, 0);
	assert_int_equal(r.index, 9);
	assert_true(r.ended);
	uint32_t type;
	assert_int_equal(stream_read_record(&r, &type, &p, &len, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "past the END record"));
	stream_reader_destroy(&r);
}

static int temp_fd(void)
{
	int fd = memfd_create("test-stream", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_file_round_trip(void **state)
{
	(void)state;
	char path[] = "/tmp/kvmini-stream-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	write_stream(fd, true);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	check_stream(fd, true);
	close(fd);
}

/* ---- Through a socket, written by another thread ---- */

struct feeder {
	int fd;
	bool big;
	const uint8_t *bytes; /* when set: sent one byte per message */
	size_t len;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	if (f->bytes) {
		for (size_t i = 0; i < f->len; i++)
			if (send(f->fd, f->bytes + i, 1, MSG_NOSIGNAL) != 1)
				abort();
		shutdown(f->fd, SHUT_WR); /* the reader checks for end of file after END */
	} else {
		write_stream(f->fd, f->big); /* stream_write_end shuts down the socket */
	}
	return NULL;
}

static void through_socket(int kind, const uint8_t *bytes, size_t len, bool big)
{
	int sv[2];
	pthread_t t;
	assert_int_equal(socketpair(AF_UNIX, kind | SOCK_CLOEXEC, 0, sv), 0);
	/* A writer that forgot to end its stream fails the test instead of hanging it. */
	struct timeval tv = {.tv_sec = 20};
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	struct feeder f = {.fd = sv[0], .big = big, .bytes = bytes, .len = len};
	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	check_stream(sv[1], big);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_round_trip(void **state)
{
	(void)state;
	through_socket(SOCK_STREAM, NULL, 0, true);
}

/* Bytes of the reference stream, as the writer makes them. */
static uint8_t *stream_bytes(bool big, size_t *len)
{
	int fd = temp_fd();
	write_stream(fd, big);
	off_t n = lseek(fd, 0, SEEK_END);
	uint8_t *b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, (size_t)n, 0), n);
	close(fd);
	*len = (size_t)n;
	return b;
}

/* A SOCK_SEQPACKET read returns one message: every read the reader makes gets one byte. */
static void test_one_byte_at_a_time(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = stream_bytes(false, &len);
	through_socket(SOCK_SEQPACKET, b, len, false);
	free(b);
}

/* ---- Malformed streams ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void hdr(struct sbuf *b, uint32_t version, uint32_t flags)
{
	sbuf_put(b, STREAM_MAGIC, 8);
	sbuf_u32(b, version);
	sbuf_u32(b, flags);
}

/* A record by hand: rflags and a declared length of its own; check_delta spoils the check (which
 * covers only the head of a RAM record: header and page checks). */
static void rec_raw(struct sbuf *b, uint32_t type, uint32_t rflags, uint64_t declared, const void *p,
		    size_t n, uint64_t check_delta)
{
	uint8_t h[16];
	put_le(h, type, 4);
	put_le(h + 4, rflags, 4);
	put_le(h + 8, declared, 8);
	size_t covered = n;
	if (type == STREAM_RAM && n >= STREAM_RAM_HDR && stream_ram_head_len(p) < n)
		covered = stream_ram_head_len(p);
	uint64_t c = stream_check(h, n ? p : "", covered);
	sbuf_put(b, h, 16);
	sbuf_put(b, p, n);
	sbuf_u64(b, c + check_delta);
}

static void rec(struct sbuf *b, uint32_t type, const void *p, size_t n)
{
	rec_raw(b, type, 0, n, p, n, 0);
}

static void ram_hdr(uint8_t *p, uint64_t gpa, uint32_t npages, uint32_t flags)
{
	put_le(p, gpa, 8);
	put_le(p + 8, npages, 4);
	put_le(p + 12, flags, 4);
}

/* The page checks of a RAM payload at p (header, checks, pages); those in spoil are off by one. */
static void page_checks(uint8_t *p, uint32_t npages, uint64_t spoil)
{
	const uint8_t *data = p + STREAM_RAM_HDR + 8 * npages;
	for (uint32_t i = 0; i < npages; i++)
		put_le(p + STREAM_RAM_HDR + 8 * i,
		       stream_page_check(data + i * STREAM_PAGE) + (spoil >> i & 1), 8);
}

/* Reads bytes as a stream to the END record or the first error; returns the error (0 for none). */
static int read_all(const void *bytes, size_t len, struct err *e, struct stream_reader *keep)
{
	int fd = temp_fd();
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	struct stream_reader r;
	err_clear(e);
	int rc = stream_reader_init(&r, fd, e);
	while (rc == 0 && !r.ended) {
		uint32_t type;
		const uint8_t *p;
		size_t n;
		rc = stream_read_record(&r, &type, &p, &n, e);
	}
	if (keep)
		*keep = r;
	else
		stream_reader_destroy(&r);
	close(fd);
	return rc;
}

static void expect(struct sbuf *b, const char *msg)
{
	struct err e;
	assert_false(b->oom);
	int rc = read_all(b->data, b->len, &e, NULL);
	if (rc >= 0 || !strstr(err_msg(&e), msg))
		fail_msg("expected \"%s\", got %d \"%s\"", msg, rc, err_msg(&e));
	sbuf_free(b);
}

/* A stream with a bad record 1: the reader refuses it and then everything after it. */
static void check_sticky(struct sbuf *b)
{
	struct err e = {0};
	struct stream_reader r;
	uint32_t type;
	const uint8_t *p;
	size_t n;
	assert_int_equal(read_all(b->data, b->len, &e, &r), -EINVAL);
	assert_int_equal(r.error, -EINVAL);
	assert_int_equal(r.index, 1);
	err_clear(&e);
	assert_int_equal(stream_read_record(&r, &type, &p, &n, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "the state stream failed earlier (record 1)"));
	stream_reader_destroy(&r);
}

static void test_bad_header(void **state)
{
	(void)state;
	struct sbuf b;
	sbuf_init(&b);
	sbuf_put(&b, "KVMINIXX", 8);
	sbuf_u64(&b, 1);
	rec(&b, STREAM_END, NULL, 0);
	expect(&b, "not a kvmini state stream");
	sbuf_put(&b, "ELF", 3);
	expect(&b, "not a kvmini state stream");
	sbuf_put(&b, "KVMINIMS\1", 9);
	expect(&b, "the stream ended inside its header");
	hdr(&b, 1, 0);
	rec(&b, STREAM_END, NULL, 0);
	expect(&b, "stream version 1, this kvmini reads version 2");
	hdr(&b, 0, 0);
	expect(&b, "stream version 0, this kvmini reads version 2");
	hdr(&b, 2, 4);
	expect(&b, "stream flags 0x4 not known");
	struct err e;
	assert_int_equal(read_all("", 0, &e, NULL), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "empty"));
}

static void test_bad_records(void **state)
{
	(void)state;
	struct sbuf b;
	sbuf_init(&b);
	/* Unknown types. */
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	rec(&b, 7, "x", 1);
	expect(&b, "record 1 has unknown type 7");
	hdr(&b, 2, 0);
	rec(&b, 0, NULL, 0);
	expect(&b, "record 0 has unknown type 0");
	/* Record flags. */
	hdr(&b, 2, 0);
	rec_raw(&b, STREAM_VM, 2, 1, "v", 1, 0);
	expect(&b, "record 0 (VM) has flags 0x2");
	/* The check: in the payload, the header and the check itself. */
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	rec_raw(&b, STREAM_VM, 0, 3, "abc", 3, 1);
	rec(&b, STREAM_END, NULL, 0);
	check_sticky(&b);
	expect(&b, "record 1 (VM) fails its checksum");
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "abc", 3);
	b.data[b.len - 5] ^= 0x40; /* payload byte */
	rec(&b, STREAM_END, NULL, 0);
	expect(&b, "record 0 (CONFIG) fails its checksum");
	hdr(&b, 2, 0);
	rec(&b, STREAM_END, NULL, 0);
	b.data[b.len - 1] ^= 1;
	expect(&b, "record 0 (END) fails its checksum");
	/* End of file: between records, in a header, in a payload, in a check. */
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	expect(&b, "the stream ended after 1 records, without an END record");
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	sbuf_u32(&b, STREAM_VM);
	expect(&b, "the stream ended inside the header of record 1");
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	rec(&b, STREAM_DEVICE, "\4\0name\0\0\0\0\0\0\0\0state", 19);
	b.len -= 9;
	expect(&b, "the stream ended inside a DEVICE record (record 1)");
	hdr(&b, 2, 0);
	rec(&b, STREAM_VM, "vm", 2);
	b.len -= 1;
	expect(&b, "the stream ended inside a VM record (record 0)");
	/* Trailing data after END. */
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	rec(&b, STREAM_END, NULL, 0);
	sbuf_u8(&b, 0);
	expect(&b, "trailing data after the END record (record 1)");
	hdr(&b, 2, 0);
	rec(&b, STREAM_END, NULL, 0);
	rec(&b, STREAM_END, NULL, 0);
	expect(&b, "trailing data after the END record (record 0)");
	/* Lengths over the limits, declared without the data to back them. */
	hdr(&b, 2, 0);
	rec_raw(&b, STREAM_CONFIG, 0, STREAM_RECORD_MAX + 1ull, NULL, 0, 0);
	expect(&b, "record 0 (CONFIG) is 16777217 bytes, over the limit of 16777216");
	hdr(&b, 2, 0);
	rec_raw(&b, STREAM_DEVICE, 0, UINT64_MAX, NULL, 0, 0);
	expect(&b, "record 0 (DEVICE) is 18446744073709551615 bytes, over the limit");
	hdr(&b, 2, 0);
	rec_raw(&b, STREAM_RAM, 0, STREAM_RAM_MAX + 1ull, NULL, 0, 0);
	expect(&b, "record 0 (RAM) is 1050641 bytes, over the limit of 1050640");
	hdr(&b, 2, 0);
	rec(&b, STREAM_END, "x", 1);
	expect(&b, "record 0 (END) is 1 bytes, over the limit of 0");
}

/* A length at the limit with little data behind it: the buffer grows with what arrived only. */
static void test_no_allocation_ahead_of_data(void **state)
{
	(void)state;
	struct sbuf b;
	struct err e;
	struct stream_reader r;
	sbuf_init(&b);
	hdr(&b, 2, 0);
	rec_raw(&b, STREAM_CONFIG, 0, STREAM_RECORD_MAX, "tiny", 4, 0);
	assert_int_equal(read_all(b.data, b.len, &e, &r), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "ended inside a CONFIG record (record 0)"));
	assert_true(r.cap <= 64u << 10);
	stream_reader_destroy(&r);
	sbuf_free(&b);
	/* At the limit and complete, it is read. */
	uint8_t *big = calloc(1, STREAM_RECORD_MAX);
	assert_non_null(big);
	sbuf_init(&b);
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, big, STREAM_RECORD_MAX);
	rec(&b, STREAM_END, NULL, 0);
	assert_false(b.oom);
	assert_int_equal(read_all(b.data, b.len, &e, NULL), 0);
	sbuf_free(&b);
	free(big);
}

static void bad_ram(uint64_t gpa, uint32_t npages, uint32_t flags, size_t data, const char *msg)
{
	static uint8_t p[STREAM_RAM_MAX];
	struct sbuf b;
	sbuf_init(&b);
	hdr(&b, 2, 0);
	rec(&b, STREAM_CONFIG, "c", 1);
	ram_hdr(p, gpa, npages, flags);
	rec(&b, STREAM_RAM, p, STREAM_RAM_HDR + data);
	rec(&b, STREAM_END, NULL, 0);
	expect(&b, msg);
}

static void test_bad_ram(void **state)
{
	(void)state;
	bad_ram(0x1000, 0, 0, 0, "record 1 (RAM): 0 pages (1 to 256 in a record)");
	bad_ram(0x1000, 257, STREAM_RAM_ZERO, 0, "record 1 (RAM): 257 pages");
	bad_ram(0x1000, 2, 0, STREAM_PAGE, "record 1 (RAM): 4112 bytes for 2 pages (8224 expected)");
	bad_ram(0x1000, 1, 0, 2 * STREAM_PAGE, "record 1 (RAM): 8208 bytes for 1 pages (4120 expected)");
	bad_ram(0x1000, 1, STREAM_RAM_ZERO, STREAM_PAGE,
		"record 1 (RAM): 4112 bytes for 1 zero pages (16 expected)");
	bad_ram(0x1800, 1, 0, STREAM_PAGE, "record 1 (RAM): address 0x1800 not page aligned");
	bad_ram(0x1000, 1, 2, STREAM_PAGE, "record 1 (RAM): flags 0x2 not known");
	bad_ram(UINT64_MAX - 0xfff, 2, STREAM_RAM_ZERO, 0, "run past the end of the address space");
	bad_ram(0x1000, 1, 0, 0, "record 1 (RAM): 16 bytes for 1 pages (4120 expected)");
	struct sbuf b;
	sbuf_init(&b);
	hdr(&b, 2, 0);
	rec(&b, STREAM_RAM, "short", 5);
	expect(&b, "record 0 (RAM): 5 bytes, shorter than its 16-byte header");
	/* The last page of the address space is fine. */
	uint8_t p[STREAM_RAM_HDR];
	struct err e;
	hdr(&b, 2, 0);
	ram_hdr(p, UINT64_MAX - 0xfff, 1, STREAM_RAM_ZERO);
	rec(&b, STREAM_RAM, p, sizeof(p));
	rec(&b, STREAM_END, NULL, 0);
	assert_int_equal(read_all(b.data, b.len, &e, NULL), 0);
	sbuf_free(&b);
}

/* ---- RAM torn by a writer and RAM read into memory (a sink) ---- */

/* A stream with one RAM record of 2 pages at 0x2000, the checks of the pages in spoil spoiled. */
static void torn_stream(struct sbuf *b, uint64_t spoil)
{
	static uint8_t p[STREAM_RAM_HDR + 2 * (8 + STREAM_PAGE)];
	memcpy(p + STREAM_RAM_HDR + 16, guest, 2 * STREAM_PAGE);
	ram_hdr(p, 0x2000, 2, 0);
	page_checks(p, 2, spoil);
	sbuf_init(b);
	hdr(b, 2, 0);
	rec(b, STREAM_RAM, p, sizeof(p));
	rec(b, STREAM_END, NULL, 0);
}

/* Pages that fail their own check are taken, flagged (torn): a vCPU may have written them. */
static void test_torn_ram_flagged(void **state)
{
	(void)state;
	for (uint64_t spoil = 0; spoil < 4; spoil++) {
		struct sbuf b;
		torn_stream(&b, spoil);
		int fd = temp_fd();
		assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		struct stream_reader r;
		struct err e = {0};
		const uint8_t *p;
		size_t len;
		struct stream_ram ram;
		assert_int_equal(stream_reader_init(&r, fd, &e), 0);
		next(&r, STREAM_RAM, &p, &len);
		assert_int_equal(stream_parse_ram(p, len, &ram, &e), 0);
		assert_int_equal(r.data_ok, spoil == 0);
		assert_int_equal(r.torn[0], spoil);
		assert_memory_equal(ram.data, guest, 2 * STREAM_PAGE);
		next(&r, STREAM_END, &p, &len);
		assert_true(r.data_ok);
		assert_int_equal(r.torn[0], 0);
		stream_reader_destroy(&r);
		close(fd);
		sbuf_free(&b);
	}
}

static uint8_t sink_mem[PAGES + 0x300000] __attribute__((aligned(4096)));

static uint8_t *sink(void *opaque, uint64_t gpa, uint64_t len)
{
	(*(int *)opaque)++;
	return gpa <= sizeof(sink_mem) && len <= sizeof(sink_mem) - gpa ? sink_mem + gpa : NULL;
}

static void test_sink(void **state)
{
	(void)state;
	int fd = temp_fd(), calls = 0;
	write_stream(fd, true);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	memset(sink_mem, 0xee, sizeof(sink_mem));
	struct stream_reader r;
	struct err e = {0};
	const uint8_t *p;
	size_t len;
	assert_int_equal(stream_reader_init(&r, fd, &e), 0);
	stream_reader_set_ram_sink(&r, sink, &calls);
	next(&r, STREAM_CONFIG, &p, &len);
	next(&r, STREAM_CONFIG, &p, &len);
	next(&r, STREAM_RAM, &p, &len);
	assert_int_equal(len, STREAM_RAM_HDR + 8); /* the head: header and one page check */
	assert_int_equal(r.ram.gpa, 0x1000);
	assert_ptr_equal(r.ram.data, sink_mem + 0x1000);
	assert_true(r.data_ok);
	assert_memory_equal(sink_mem + 0x1000, guest, STREAM_PAGE);
	next(&r, STREAM_RAM, &p, &len); /* zero pages: cleared in place */
	assert_null(r.ram.data);
	for (size_t i = 0; i < 4 * STREAM_PAGE; i++)
		assert_int_equal(sink_mem[0x100000 + i], 0);
	assert_int_equal(sink_mem[0x100000 + 4 * STREAM_PAGE], 0xee);
	next(&r, STREAM_RAM, &p, &len);
	assert_memory_equal(sink_mem + 0x200000, guest, PAGES);
	assert_int_equal(calls, 3);
	next(&r, STREAM_VM, &p, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(p, "vm-state", 8);
	stream_reader_destroy(&r);
	close(fd);

	/* Torn pages: in place and flagged. Pages outside the sink's memory: an error. */
	struct sbuf b;
	torn_stream(&b, 2);
	fd = temp_fd();
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(stream_reader_init(&r, fd, &e), 0);
	stream_reader_set_ram_sink(&r, sink, &calls);
	next(&r, STREAM_RAM, &p, &len);
	assert_false(r.data_ok);
	assert_int_equal(r.torn[0], 2);
	assert_memory_equal(sink_mem + 0x2000, guest, 2 * STREAM_PAGE);
	stream_reader_destroy(&r);
	close(fd);
	sbuf_free(&b);
	static uint8_t q[STREAM_RAM_HDR];
	sbuf_init(&b);
	hdr(&b, 2, 0);
	ram_hdr(q, sizeof(sink_mem) - STREAM_PAGE, 2, STREAM_RAM_ZERO);
	rec(&b, STREAM_RAM, q, sizeof(q));
	rec(&b, STREAM_END, NULL, 0);
	fd = temp_fd();
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(stream_reader_init(&r, fd, &e), 0);
	stream_reader_set_ram_sink(&r, sink, &calls);
	uint32_t type;
	assert_int_equal(stream_read_record(&r, &type, &p, &len, &e), -EINVAL);
	assert_non_null(
	    strstr(err_msg(&e), "record 0 (RAM): pages 0x3ff000-0x400fff lie outside this VM's memory"));
	stream_reader_destroy(&r);
	close(fd);
	sbuf_free(&b);
	/* A spoiled RAM header is an error with a sink too. */
	err_clear(&e);
	sbuf_init(&b);
	hdr(&b, 2, 0);
	ram_hdr(q, 0, 1, STREAM_RAM_ZERO);
	rec_raw(&b, STREAM_RAM, 0, sizeof(q), q, sizeof(q), 1);
	rec(&b, STREAM_END, NULL, 0);
	fd = temp_fd();
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(stream_reader_init(&r, fd, &e), 0);
	stream_reader_set_ram_sink(&r, sink, &calls);
	assert_int_equal(stream_read_record(&r, &type, &p, &len, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "record 0 (RAM) fails its checksum"));
	stream_reader_destroy(&r);
	close(fd);
	sbuf_free(&b);
}

static void test_bad_device_vcpu(void **state)
{
	(void)state;
	struct sbuf b;
	sbuf_init(&b);
	hdr(&b, 2, 0);
	rec(&b, STREAM_VCPU, "\1\0\0", 3);
	expect(&b, "record 0 (VCPU): 3 bytes, shorter than its 4-byte index");
	hdr(&b, 2, 0);
	rec(&b, STREAM_DEVICE, "\0\0\0\0\0\0\0\0\0\0", 10);
	expect(&b, "record 0 (DEVICE): a device name of 0 bytes");
	uint8_t d[2 + 65 + 8] = {65};
	memset(d + 2, 'a', 65);
	hdr(&b, 2, 0);
	rec(&b, STREAM_DEVICE, d, sizeof(d));
	expect(&b, "record 0 (DEVICE): a device name of 65 bytes (1 to 64)");
	hdr(&b, 2, 0);
	rec(&b, STREAM_DEVICE, "\3\0ab\n\0\0\0\0\0\0\0\0", 13);
	expect(&b, "record 0 (DEVICE): a device name with byte 0x0a");
	hdr(&b, 2, 0);
	rec(&b, STREAM_DEVICE, "\3\0abc\0\0\0\0\0\0\0", 12);
	expect(&b, "record 0 (DEVICE): 12 bytes, shorter than its header");
	hdr(&b, 2, 0);
	rec(&b, STREAM_DEVICE, "\3", 1);
	expect(&b, "record 0 (DEVICE): 1 bytes, shorter than its header");
	/* 64 bytes of name and no state is fine. */
	struct err e = {0};
	struct stream_device dev;
	d[0] = 64;
	assert_int_equal(stream_parse_device(d, sizeof(d) - 1, &dev, &e), 0);
	assert_int_equal(strlen(dev.name), 64);
	assert_int_equal(dev.state_len, 0);
	assert_int_equal(stream_parse_device(d, 3, &dev, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "a DEVICE record: 3 bytes, shorter than its header"));
}

/* ---- The writer ---- */

static void test_writer_checks(void **state)
{
	(void)state;
	struct stream_writer *w = malloc(sizeof(*w));
	struct sbuf b;
	struct err e = {0};
	int fd = temp_fd();
	assert_non_null(w);
	stream_writer_init(w, fd);
	assert_int_equal(stream_write_ram(w, 0x1001, 1, guest, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "writing a RAM record: address 0x1001 not page aligned"));
	err_clear(&e);
	assert_int_equal(stream_write_ram(w, 0, STREAM_RAM_PAGES + 1, NULL, &e), -EINVAL);
	assert_int_equal(stream_write_ram(w, 0, 0, guest, &e), -EINVAL);
	assert_int_equal(stream_write_record(w, 9, "x", 1, &e), -EINVAL);
	assert_int_equal(stream_write_record(w, STREAM_END, "x", 1, &e), -EINVAL);
	assert_int_equal(stream_write_record(w, STREAM_VCPU, "x", 1, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(stream_write_record(w, STREAM_RAM, (uint8_t[STREAM_RAM_HDR]){0}, STREAM_RAM_HDR, &e),
			 -EINVAL);
	assert_non_null(strstr(err_msg(&e), "writing a RAM record: 0 pages"));
	/* A refused record leaves nothing behind and the writer usable. */
	assert_int_equal(w->records, 0);
	assert_int_equal(w->len, 0);
	assert_int_equal(w->error, 0);
	sbuf_init(&b);
	assert_int_equal(stream_put_device_header(&b, "", 0, 0, &e), -EINVAL);
	assert_int_equal(stream_put_device_header(&b, "bad\tname", 0, 0, &e), -EINVAL);
	assert_int_equal(stream_put_device_header(&b, "\xc3\xa9", 0, 0, &e), -EINVAL);
	char name[66];
	memset(name, 'n', 65);
	name[65] = '\0';
	err_clear(&e);
	assert_int_equal(stream_put_device_header(&b, name, 0, 0, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "1 to 64 bytes"));
	assert_int_equal(b.len, 0);
	name[64] = '\0';
	assert_int_equal(stream_put_device_header(&b, name, 0, 0, &e), 0);
	assert_int_equal(b.len, 2 + 64 + 8);
	sbuf_free(&b);
	free(w);
	close(fd);
}

/* A peer that went away is an error (EPIPE, not SIGPIPE), and it sticks. */
static void test_writer_errors(void **state)
{
	(void)state;
	struct stream_writer *w = malloc(sizeof(*w));
	struct err e = {0};
	int sv[2];
	assert_non_null(w);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	stream_writer_init(w, sv[0]);
	assert_int_equal(stream_write_header(w, &e), 0); /* buffered */
	assert_int_equal(stream_write_ram(w, 0, STREAM_RAM_PAGES, guest, &e), -EPIPE);
	assert_non_null(strstr(err_msg(&e), "writing the state stream: Broken pipe"));
	err_clear(&e);
	assert_int_equal(stream_write_record(w, STREAM_VM, "v", 1, &e), -EPIPE);
	assert_non_null(strstr(err_msg(&e), "failed earlier"));
	assert_int_equal(stream_write_end(w, &e), -EPIPE);
	assert_int_equal(stream_flush(w, &e), -EPIPE);
	close(sv[0]);
	/* A descriptor that is not open. */
	stream_writer_init(w, sv[0]);
	err_clear(&e);
	assert_int_equal(stream_write_header(w, &e), 0);
	assert_int_equal(stream_flush(w, &e), -EBADF);
	free(w);
	/* And the reader. */
	struct stream_reader r;
	err_clear(&e);
	assert_int_equal(stream_reader_init(&r, sv[0], &e), -EBADF);
	assert_non_null(strstr(err_msg(&e), "reading the state stream's header"));
}

int main(void)
{
	fill_guest();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_round_trip),
	    cmocka_unit_test(test_socket_round_trip),
	    cmocka_unit_test(test_one_byte_at_a_time),
	    cmocka_unit_test(test_bad_header),
	    cmocka_unit_test(test_bad_records),
	    cmocka_unit_test(test_no_allocation_ahead_of_data),
	    cmocka_unit_test(test_bad_ram),
	    cmocka_unit_test(test_torn_ram_flagged),
	    cmocka_unit_test(test_sink),
	    cmocka_unit_test(test_bad_device_vcpu),
	    cmocka_unit_test(test_writer_checks),
	    cmocka_unit_test(test_writer_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
