/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for split virtqueues (virtio/virtqueue.c): rings crafted byte by
 * byte in a malloc'd guest memory of two regions with a gap between them, as
 * a well-behaved driver writes them and as a hostile one does.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/virtqueue.h"
#include "vmm/memory.h"

/* Region 0 is [0, LOW_SIZE); region 1 follows it in host memory but sits at HIGH_GPA for the guest. */
#define LOW_SIZE   0x40000ULL
#define HIGH_GPA   0x100000ULL
#define HIGH_SIZE  0x10000ULL
#define DESC_GPA   0x1000ULL
#define AVAIL_GPA  0x2000ULL
#define USED_GPA   0x3000ULL
#define ITABLE_GPA 0x8000ULL
#define BUF_GPA	   0x10000ULL
#define QSIZE	   8
#define NEXT	   1
#define WRITE	   2
#define INDIRECT   4
#define GiB	   (1ULL << 30)

struct fx {
	struct guest_mem mem;
	uint8_t *buf;
	struct virtq q;
	uint16_t size, avail_idx;
	struct iovec iov[VIRTQ_MAX_INDIRECT + 1];
	struct virtq_chain c;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->buf = calloc(1, LOW_SIZE + HIGH_SIZE);
	assert_non_null(f->buf);
	f->mem.regions[0] = (struct guest_mem_region){0, LOW_SIZE, f->buf};
	f->mem.regions[1] = (struct guest_mem_region){HIGH_GPA, HIGH_SIZE, f->buf + LOW_SIZE};
	f->mem.nregions = 2;
	f->mem.ram_size = LOW_SIZE + HIGH_SIZE;
	f->mem.map = f->buf;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	free(f->mem.dirty_bitmap); /* the memory is ours, not guest_mem_alloc()'s: not guest_mem_free() */
	free(f->buf);
	free(f);
	return 0;
}

/* ---- the driver's side, little-endian byte by byte ---- */

static void put(struct guest_mem *m, uint64_t gpa, uint64_t v, unsigned n)
{
	uint8_t b[8];
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(guest_mem_write(m, gpa, b, n), 0);
}

static uint64_t get(struct guest_mem *m, uint64_t gpa, unsigned n)
{
	uint8_t b[8];
	assert_int_equal(guest_mem_read(m, gpa, b, n), 0);
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void desc_at(struct guest_mem *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	put(m, table + 16ULL * i, addr, 8);
	put(m, table + 16ULL * i + 8, len, 4);
	put(m, table + 16ULL * i + 12, flags, 2);
	put(m, table + 16ULL * i + 14, next, 2);
}

static void desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc_at(&f->mem, DESC_GPA, i, addr, len, flags, next);
}

static void set_avail_idx(struct fx *f, uint16_t idx)
{
	f->avail_idx = idx;
	put(&f->mem, AVAIL_GPA + 2, idx, 2);
}

static void avail_add(struct fx *f, uint16_t head)
{
	put(&f->mem, AVAIL_GPA + 4 + 2ULL * (f->avail_idx % f->size), head, 2);
	set_avail_idx(f, f->avail_idx + 1);
}

static void set_used_event(struct fx *f, uint16_t v)
{
	put(&f->mem, AVAIL_GPA + 4 + 2ULL * f->size, v, 2);
}

static uint16_t avail_event(struct fx *f)
{
	return (uint16_t)get(&f->mem, USED_GPA + 4 + 8ULL * f->size, 2);
}

static void enable(struct fx *f, uint16_t size, bool event_idx, bool indirect)
{
	struct virtq_layout l = {size, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, indirect};
	memset(f->buf, 0, LOW_SIZE + HIGH_SIZE);
	f->size = size;
	f->avail_idx = 0;
	assert_int_equal(virtq_enable(&f->q, &f->mem, &l), 0);
	assert_true(f->q.enabled);
}

static int pop(struct fx *f, unsigned max)
{
	return virtq_pop(&f->q, f->iov, max, &f->c);
}

static void *hva(struct fx *f, uint64_t gpa)
{
	return guest_mem_ptr(&f->mem, gpa, 1);
}

static void assert_iov(struct fx *f, unsigned i, uint64_t gpa, size_t len)
{
	assert_ptr_equal(f->iov[i].iov_base, hva(f, gpa));
	assert_int_equal(f->iov[i].iov_len, len);
}

/* Expects the chain just made available to be rejected, twice (nothing is taken). */
static void expect_einval(struct fx *f)
{
	uint16_t last = f->q.last_avail;
	assert_int_equal(pop(f, 16), -EINVAL);
	assert_int_equal(f->q.last_avail, last);
	assert_true(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), -EINVAL);
}

/* ---- chains ---- */

static void test_simple_chain(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	assert_false(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 0);
	desc(f, 0, BUF_GPA, 16, NEXT, 1);
	desc(f, 1, BUF_GPA + 0x100, 512, WRITE | NEXT, 2);
	desc(f, 2, BUF_GPA + 0x300, 1, WRITE, 0);
	avail_add(f, 0);
	assert_true(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.head, 0);
	assert_int_equal(f->c.nout, 1);
	assert_int_equal(f->c.nin, 2);
	assert_int_equal(f->c.out_len, 16);
	assert_int_equal(f->c.in_len, 513);
	assert_iov(f, 0, BUF_GPA, 16);
	assert_iov(f, 1, BUF_GPA + 0x100, 512);
	assert_iov(f, 2, BUF_GPA + 0x300, 1);
	assert_false(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 0);
}

static void test_out_in_split(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	/* Scattered indices, a zero-length descriptor (skipped, address not even looked at), and a
	 * high-region buffer. */
	desc(f, 5, BUF_GPA, 10, NEXT, 2);
	desc(f, 2, 0xdeadbeef0000ULL, 0, NEXT, 7);
	desc(f, 7, HIGH_GPA + 0x10, 20, NEXT, 0);
	desc(f, 0, BUF_GPA + 0x1000, 30, WRITE | NEXT, 3);
	desc(f, 3, UINT64_MAX, 0, WRITE | NEXT, 1);
	desc(f, 1, HIGH_GPA + HIGH_SIZE - 40, 40, WRITE, 6);
	avail_add(f, 5);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.head, 5);
	assert_int_equal(f->c.nout, 2);
	assert_int_equal(f->c.nin, 2);
	assert_int_equal(f->c.out_len, 30);
	assert_int_equal(f->c.in_len, 70);
	assert_iov(f, 0, BUF_GPA, 10);
	assert_iov(f, 1, HIGH_GPA + 0x10, 20);
	assert_ptr_equal(f->iov[1].iov_base, f->buf + LOW_SIZE + 0x10);
	assert_iov(f, 2, BUF_GPA + 0x1000, 30);
	assert_iov(f, 3, HIGH_GPA + HIGH_SIZE - 40, 40);

	/* Only readable, then only writable; and the last bytes of region 0. */
	desc(f, 4, LOW_SIZE - 8, 8, 0, 0);
	desc(f, 6, BUF_GPA, 4, WRITE, 0);
	avail_add(f, 4);
	avail_add(f, 6);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.nout, 1);
	assert_int_equal(f->c.nin, 0);
	assert_int_equal(f->c.in_len, 0);
	assert_iov(f, 0, LOW_SIZE - 8, 8);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.head, 6);
	assert_int_equal(f->c.nout, 0);
	assert_int_equal(f->c.nin, 1);
	assert_int_equal(f->c.in_len, 4);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, true);
	/* The WRITE flag on the descriptor that points at the table is ignored. */
	desc(f, 3, ITABLE_GPA, 3 * 16, INDIRECT | WRITE, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, NEXT, 2);
	desc_at(&f->mem, ITABLE_GPA, 2, BUF_GPA + 0x100, 100, WRITE | NEXT, 1);
	desc_at(&f->mem, ITABLE_GPA, 1, BUF_GPA + 0x200, 1, WRITE, 0);
	avail_add(f, 3);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.head, 3);
	assert_int_equal(f->c.nout, 1);
	assert_int_equal(f->c.nin, 2);
	assert_int_equal(f->c.out_len, 16);
	assert_int_equal(f->c.in_len, 101);
	assert_iov(f, 0, BUF_GPA, 16);
	assert_iov(f, 1, BUF_GPA + 0x100, 100);
	assert_iov(f, 2, BUF_GPA + 0x200, 1);

	/* Direct descriptors followed by an indirect one (2.7.5.3.2); the table need not be aligned. */
	desc(f, 4, BUF_GPA + 0x300, 8, NEXT, 5);
	desc(f, 5, ITABLE_GPA + 0x108, 2 * 16, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA + 0x108, 0, BUF_GPA + 0x400, 4, NEXT, 1);
	desc_at(&f->mem, ITABLE_GPA + 0x108, 1, BUF_GPA + 0x500, 5, WRITE, 0);
	avail_add(f, 4);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.head, 4);
	assert_int_equal(f->c.nout, 2);
	assert_int_equal(f->c.nin, 1);
	assert_iov(f, 0, BUF_GPA + 0x300, 8);
	assert_iov(f, 1, BUF_GPA + 0x400, 4);
	assert_iov(f, 2, BUF_GPA + 0x500, 5);

	/* The largest table, every entry used. */
	const uint64_t big = 0x20000;
	desc(f, 6, big, VIRTQ_MAX_INDIRECT * 16, INDIRECT, 0);
	for (unsigned i = 0; i < VIRTQ_MAX_INDIRECT; i++)
		desc_at(&f->mem, big, i, BUF_GPA + i, 1, i + 1 < VIRTQ_MAX_INDIRECT ? NEXT : 0,
			(uint16_t)(i + 1));
	avail_add(f, 6);
	assert_int_equal(pop(f, VIRTQ_MAX_INDIRECT), 1);
	assert_int_equal(f->c.nout, VIRTQ_MAX_INDIRECT);
	assert_int_equal(f->c.out_len, VIRTQ_MAX_INDIRECT);
	assert_iov(f, VIRTQ_MAX_INDIRECT - 1, BUF_GPA + VIRTQ_MAX_INDIRECT - 1, 1);
}

static void test_loops(void **state)
{
	struct fx *f = *state;
	/* The longest legal chain uses every descriptor once. */
	enable(f, QSIZE, false, false);
	for (unsigned i = 0; i < QSIZE; i++)
		desc(f, i, BUF_GPA + i, 1, i + 1 < QSIZE ? NEXT : 0, (uint16_t)(i + 1));
	avail_add(f, 0);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.nout, QSIZE);

	/* Then the last one points back to the first. */
	desc(f, QSIZE - 1, BUF_GPA, 1, NEXT, 0);
	avail_add(f, 0);
	expect_einval(f);

	enable(f, QSIZE, false, false);
	desc(f, 2, BUF_GPA, 1, NEXT, 2);
	avail_add(f, 2);
	expect_einval(f);

	enable(f, QSIZE, false, false);
	desc(f, 0, BUF_GPA, 1, NEXT, 1);
	desc(f, 1, BUF_GPA, 1, NEXT, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* Zero-length descriptors still count. */
	enable(f, QSIZE, false, false);
	desc(f, 0, 0, 0, NEXT, 1);
	desc(f, 1, 0, 0, NEXT, 0);
	avail_add(f, 1);
	expect_einval(f);

	/* A loop inside an indirect table. */
	enable(f, QSIZE, false, true);
	desc(f, 0, ITABLE_GPA, 4 * 16, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 1, NEXT, 1);
	desc_at(&f->mem, ITABLE_GPA, 1, BUF_GPA, 1, NEXT, 3);
	desc_at(&f->mem, ITABLE_GPA, 3, BUF_GPA, 1, NEXT, 1);
	avail_add(f, 0);
	expect_einval(f);
}

static void test_bad_indices(void **state)
{
	struct fx *f = *state;
	static const uint16_t heads[] = {QSIZE, QSIZE + 1, 0x8000, 0xffff};
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		enable(f, QSIZE, false, false);
		avail_add(f, heads[i]);
		expect_einval(f);
	}

	enable(f, QSIZE, false, false);
	desc(f, 0, BUF_GPA, 1, NEXT, QSIZE);
	avail_add(f, 0);
	expect_einval(f);

	/* A next index that fits the queue but not the indirect table. */
	enable(f, QSIZE, false, true);
	desc(f, 0, ITABLE_GPA, 2 * 16, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 1, NEXT, 2);
	avail_add(f, 0);
	expect_einval(f);
}

static void test_bad_addresses(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
	    {LOW_SIZE, 1},		   /* just past region 0 */
	    {LOW_SIZE - 1, 2},		   /* crosses into the gap, though host memory goes on */
	    {LOW_SIZE - 0x100, 0x1000},	   /* the same, further */
	    {HIGH_GPA - 1, 2},		   /* starts in the gap */
	    {HIGH_GPA + HIGH_SIZE - 4, 8}, /* past the end of RAM */
	    {HIGH_GPA + HIGH_SIZE, 1},
	    {0, 0xffffffff}, /* huge length */
	    {BUF_GPA, 0x80000000},
	    {UINT64_MAX, 1}, /* addr + len wraps */
	    {UINT64_MAX - 0xf, 0x20},
	    {UINT64_MAX - 0xfffffffeULL, 0xffffffff}, /* wraps to exactly 0 */
	    {1ULL << 40, 16},			      /* far above RAM */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* As the only descriptor, and as the second one of a chain. */
		enable(f, QSIZE, false, false);
		desc(f, 0, bad[i].addr, bad[i].len, 0, 0);
		avail_add(f, 0);
		expect_einval(f);
		enable(f, QSIZE, false, false);
		desc(f, 0, BUF_GPA, 16, NEXT, 1);
		desc(f, 1, bad[i].addr, bad[i].len, WRITE, 0);
		avail_add(f, 0);
		expect_einval(f);
	}
	/* Both ends of both regions are fine. */
	enable(f, QSIZE, false, false);
	desc(f, 0, 0, 1, NEXT, 1);
	desc(f, 1, LOW_SIZE - 1, 1, NEXT, 2);
	desc(f, 2, HIGH_GPA, 1, NEXT, 3);
	desc(f, 3, HIGH_GPA + HIGH_SIZE - 1, 1, 0, 0);
	avail_add(f, 0);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.nout, 4);
	assert_ptr_equal(f->iov[3].iov_base, f->buf + LOW_SIZE + HIGH_SIZE - 1);
}

static void test_total_length(void **state)
{
	/* Lengths that add up past 4 GiB must map, so this one needs a big (reserve-free) guest. */
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 3 * GiB, &e), 0);
	struct virtq q;
	struct virtq_layout l = {4, DESC_GPA, AVAIL_GPA, USED_GPA, false, false};
	struct iovec iov[4];
	struct virtq_chain c;
	assert_int_equal(virtq_enable(&q, &m, &l), 0);

	/* 4 GiB - 1: the most we accept. Buffers may overlap the rings and each other. */
	desc_at(&m, DESC_GPA, 0, 0, 0x80000000, NEXT, 1);
	desc_at(&m, DESC_GPA, 1, 0, 0x7fffffff, WRITE, 0);
	put(&m, AVAIL_GPA + 4, 0, 2);
	put(&m, AVAIL_GPA + 2, 1, 2);
	assert_int_equal(virtq_pop(&q, iov, 4, &c), 1);
	assert_int_equal(c.out_len, 0x80000000);
	assert_int_equal(c.in_len, 0x7fffffff);

	/* Exactly 4 GiB. */
	desc_at(&m, DESC_GPA, 1, 0, 0x80000000, WRITE, 0);
	put(&m, AVAIL_GPA + 6, 0, 2);
	put(&m, AVAIL_GPA + 2, 2, 2);
	assert_int_equal(virtq_pop(&q, iov, 4, &c), -EINVAL);

	/* 4.5 GiB in three readable parts. */
	desc_at(&m, DESC_GPA, 2, 0, 0x60000000, NEXT, 3);
	desc_at(&m, DESC_GPA, 3, 0, 0x60000000, NEXT, 0);
	desc_at(&m, DESC_GPA, 0, 0, 0x60000000, 0, 0);
	put(&m, AVAIL_GPA + 6, 2, 2);
	assert_int_equal(virtq_pop(&q, iov, 4, &c), -EINVAL);
	guest_mem_free(&m);
}

static void test_write_then_read(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, true);
	desc(f, 0, BUF_GPA, 16, WRITE | NEXT, 1);
	desc(f, 1, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* Even a zero-length readable descriptor. */
	enable(f, QSIZE, false, true);
	desc(f, 0, BUF_GPA, 16, NEXT, 1);
	desc(f, 1, BUF_GPA, 16, WRITE | NEXT, 2);
	desc(f, 2, BUF_GPA, 0, 0, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* Writable direct descriptor, readable entry in the indirect table that follows. */
	enable(f, QSIZE, false, true);
	desc(f, 0, BUF_GPA, 16, WRITE | NEXT, 1);
	desc(f, 1, ITABLE_GPA, 16, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* Inside one indirect table. */
	enable(f, QSIZE, false, true);
	desc(f, 0, ITABLE_GPA, 32, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, WRITE | NEXT, 1);
	desc_at(&f->mem, ITABLE_GPA, 1, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	expect_einval(f);
}

static void test_indirect_errors(void **state)
{
	struct fx *f = *state;
	/* Not negotiated. */
	enable(f, QSIZE, false, false);
	desc(f, 0, ITABLE_GPA, 16, INDIRECT, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* With NEXT. */
	enable(f, QSIZE, false, true);
	desc(f, 0, ITABLE_GPA, 16, INDIRECT | NEXT, 1);
	desc(f, 1, BUF_GPA, 16, WRITE, 0);
	desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	expect_einval(f);

	/* Nested, first entry or later. */
	for (unsigned at = 0; at < 2; at++) {
		enable(f, QSIZE, false, true);
		desc(f, 0, ITABLE_GPA, 32, INDIRECT, 0);
		desc_at(&f->mem, ITABLE_GPA, 0, BUF_GPA, 16, NEXT, 1);
		desc_at(&f->mem, ITABLE_GPA, at, ITABLE_GPA + 0x100, 16, INDIRECT, 0);
		desc_at(&f->mem, ITABLE_GPA + 0x100, 0, BUF_GPA, 16, 0, 0);
		avail_add(f, 0);
		expect_einval(f);
	}

	/* Table lengths. */
	static const uint32_t lens[] = {0, 1, 8, 15, 17, 24, 40, (VIRTQ_MAX_INDIRECT + 1) * 16, 0xfffffff0};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		enable(f, QSIZE, false, true);
		desc(f, 0, ITABLE_GPA, lens[i], INDIRECT, 0);
		for (unsigned k = 0; k < 4; k++)
			desc_at(&f->mem, ITABLE_GPA, k, BUF_GPA, 16, 0, 0);
		avail_add(f, 0);
		expect_einval(f);
	}

	/* Tables outside RAM, or across the gap. */
	static const uint64_t addrs[] = {LOW_SIZE - 16, HIGH_GPA - 16, HIGH_GPA + HIGH_SIZE - 16,
					 UINT64_MAX - 15, 1ULL << 40};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		enable(f, QSIZE, false, true);
		desc(f, 0, addrs[i], 32, INDIRECT, 0);
		avail_add(f, 0);
		expect_einval(f);
	}
}

static void test_avail_idx(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	desc(f, 0, BUF_GPA, 1, 0, 0);
	set_avail_idx(f, QSIZE + 1);
	expect_einval(f);
	set_avail_idx(f, 0xffff); /* "behind" us is just as far ahead */
	expect_einval(f);

	/* A full ring is fine. */
	set_avail_idx(f, 0);
	for (unsigned i = 0; i < QSIZE; i++)
		avail_add(f, 0);
	for (unsigned i = 0; i < QSIZE; i++)
		assert_int_equal(pop(f, 16), 1);
	assert_int_equal(pop(f, 16), 0);

	/* The 16-bit indices wrap (white box: start the device's copies near the end). */
	enable(f, QSIZE, false, false);
	desc(f, 0, BUF_GPA, 1, 0, 0);
	f->q.last_avail = f->q.used_idx = 0xfffe;
	set_avail_idx(f, 0xfffe);
	for (unsigned i = 0; i < 4; i++)
		avail_add(f, 0);
	assert_int_equal(f->avail_idx, 2);
	for (unsigned i = 0; i < 4; i++) {
		assert_true(virtq_has_work(&f->q));
		assert_int_equal(pop(f, 16), 1);
		virtq_push(&f->q, f->c.head, 0);
	}
	assert_false(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 0);
	assert_int_equal(f->q.last_avail, 2);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 2);
}

static void test_e2big(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	/* 4 -> 5 -> 6 -> 7: two readable, two writable segments. */
	for (unsigned i = 4; i < 8; i++)
		desc(f, i, BUF_GPA + 0x100 * i, 16, (i >= 6 ? WRITE : 0) | (i < 7 ? NEXT : 0),
		     (uint16_t)(i + 1));
	desc(f, 1, BUF_GPA, 1, 0, 0);
	avail_add(f, 4);
	avail_add(f, 1);
	f->iov[3].iov_base = (void *)f;
	f->iov[3].iov_len = 12345;
	assert_int_equal(pop(f, 3), -E2BIG);
	assert_int_equal(f->c.head, 4);
	assert_int_equal(f->c.nout, 0);
	assert_int_equal(f->c.nin, 0);
	assert_int_equal(f->c.out_len, 0);
	assert_int_equal(f->c.in_len, 0);
	assert_ptr_equal(f->iov[3].iov_base, f); /* nothing written past max_iov */
	assert_int_equal(f->iov[3].iov_len, 12345);
	/* Taken: the device gives it back and goes on with the next one. */
	assert_int_equal(f->q.last_avail, 1);
	virtq_push(&f->q, f->c.head, 0);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 1);
	assert_int_equal(get(&f->mem, USED_GPA + 4, 4), 4);
	assert_int_equal(get(&f->mem, USED_GPA + 8, 4), 0);
	assert_int_equal(pop(f, 3), 1);
	assert_int_equal(f->c.head, 1);

	/* The same chain with room for it. */
	avail_add(f, 4);
	assert_int_equal(pop(f, 4), 1);
	assert_int_equal(f->c.nout, 2);
	assert_int_equal(f->c.nin, 2);

	/* Too long and broken beyond max_iov: broken wins, and nothing is taken. */
	desc(f, 7, LOW_SIZE, 16, WRITE, 0);
	avail_add(f, 4);
	assert_int_equal(pop(f, 2), -EINVAL);
	assert_int_equal(f->q.last_avail, 3);

	/* Zero-length descriptors need no room; max_iov 0 takes a chain made only of them. */
	enable(f, QSIZE, false, false);
	desc(f, 0, BUF_GPA, 0, NEXT, 1);
	desc(f, 1, BUF_GPA, 0, WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, NULL, 0, &f->c), 1);
	assert_int_equal(f->c.nout + f->c.nin, 0);
	desc(f, 1, BUF_GPA, 1, WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, NULL, 0, &f->c), -E2BIG);
}

static void test_push(void **state)
{
	struct fx *f = *state;
	enable(f, 4, false, false);
	for (unsigned i = 0; i < 4; i++)
		desc(f, i, BUF_GPA, 1, WRITE, 0);
	/* Six requests through a ring of four: a full batch, then two more. */
	static const uint16_t heads[] = {2, 0, 3, 1, 1, 2};
	static const uint32_t written[] = {7, 0, 0xffffffff, 0x12345678, 1, 2};
	for (unsigned i = 0; i < 4; i++)
		avail_add(f, heads[i]);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(pop(f, 16), 1);
	for (unsigned i = 0; i < 4; i++)
		virtq_push(&f->q, heads[i], written[i]);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 4);
	for (unsigned i = 4; i < 6; i++) {
		avail_add(f, heads[i]);
		assert_int_equal(pop(f, 16), 1);
		assert_int_equal(f->c.head, heads[i]);
		virtq_push(&f->q, f->c.head, written[i]);
	}
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 6);
	/* Elements 4 and 5 overwrote 0 and 1; 2 and 3 are still there. */
	static const unsigned from[] = {4, 5, 2, 3};
	for (unsigned k = 0; k < 4; k++) {
		assert_int_equal(get(&f->mem, USED_GPA + 4 + 8 * k, 4), heads[from[k]]);
		assert_int_equal(get(&f->mem, USED_GPA + 8 + 8 * k, 4), written[from[k]]);
	}
	/* The 16-bit used index wraps. */
	f->q.used_idx = 0xffff;
	virtq_push(&f->q, 3, 99);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 0);
	assert_int_equal(get(&f->mem, USED_GPA + 4 + 8 * 3, 4), 3);
	assert_int_equal(get(&f->mem, USED_GPA + 8 + 8 * 3, 4), 99);
	virtq_push(&f->q, 1, 5);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 1);
	assert_int_equal(get(&f->mem, USED_GPA + 4, 4), 1);
	/* The avail_event slot after the ring is not touched by pushes. */
	assert_int_equal(avail_event(f), 0);
}

static void test_notify_flags(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	put(&f->mem, USED_GPA + 4 + 8 * QSIZE, 0xabcd, 2);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	put(&f->mem, AVAIL_GPA, 1, 2); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
	virtq_push(&f->q, 0, 0);
	assert_false(virtq_should_notify(&f->q));
	set_used_event(f, 1); /* meaningless without event_idx */
	assert_false(virtq_should_notify(&f->q));
	put(&f->mem, AVAIL_GPA, 0, 2);
	assert_true(virtq_should_notify(&f->q));

	virtq_set_notify(&f->q, false);
	assert_int_equal(get(&f->mem, USED_GPA, 2), 1); /* VIRTQ_USED_F_NO_NOTIFY */
	virtq_set_notify(&f->q, true);
	assert_int_equal(get(&f->mem, USED_GPA, 2), 0);
	assert_int_equal(avail_event(f), 0xabcd);
}

static void test_notify_event_idx(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, true, false);
	/* Nothing signalled yet: notify whatever used_event says. */
	set_used_event(f, 100);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	/* used_event 1: the driver wants to hear when entry 1 is used. */
	set_used_event(f, 1);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	/* It did not move used_event: no more interrupts. */
	virtq_push(&f->q, 0, 0);
	assert_false(virtq_should_notify(&f->q));
	/* Two pushes (idx 3 -> 5): notify if used_event is 3 or 4, not 5. */
	virtq_push(&f->q, 0, 0);
	virtq_push(&f->q, 0, 0);
	set_used_event(f, 5);
	assert_false(virtq_should_notify(&f->q));
	f->q.signalled_used = 3;
	set_used_event(f, 4);
	assert_true(virtq_should_notify(&f->q));
	f->q.signalled_used = 3;
	set_used_event(f, 3);
	assert_true(virtq_should_notify(&f->q));
	/* No push since: nothing new to tell. */
	assert_false(virtq_should_notify(&f->q));
	/* The flags are ignored with event_idx. */
	put(&f->mem, AVAIL_GPA, 1, 2);
	set_used_event(f, 5);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	put(&f->mem, AVAIL_GPA, 0, 2);

	/* Across the 16-bit wrap: pushes take used_idx 0xfffe -> 1. */
	static const struct {
		uint16_t event;
		bool notify;
	} wrap[] = {{0xfffd, false}, {0xfffe, true}, {0xffff, true}, {0, true}, {1, false}, {0x8000, false}};
	for (size_t i = 0; i < sizeof(wrap) / sizeof(wrap[0]); i++) {
		f->q.used_idx = f->q.signalled_used = 0xfffe;
		for (unsigned k = 0; k < 3; k++)
			virtq_push(&f->q, 0, 0);
		set_used_event(f, wrap[i].event);
		assert_int_equal(virtq_should_notify(&f->q), wrap[i].notify);
		assert_int_equal(f->q.signalled_used, 1);
	}
}

static void test_set_notify_event_idx(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, true, false);
	desc(f, 0, BUF_GPA, 1, 0, 0);
	avail_add(f, 0);
	avail_add(f, 0);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(pop(f, 16), 1);
	put(&f->mem, USED_GPA + 4 + 8 * QSIZE, 0xabcd, 2);
	/* Disabling writes nothing (the stale avail_event keeps the driver quiet). */
	virtq_set_notify(&f->q, false);
	assert_int_equal(avail_event(f), 0xabcd);
	assert_int_equal(get(&f->mem, USED_GPA, 2), 0);
	/* Enabling asks for a kick at the next entry we have not taken; the flags stay alone. */
	virtq_set_notify(&f->q, true);
	assert_int_equal(avail_event(f), 2);
	assert_int_equal(get(&f->mem, USED_GPA, 2), 0);
	/* The driver adds one meanwhile: the recheck finds it. */
	avail_add(f, 0);
	assert_true(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 1);
	virtq_set_notify(&f->q, true);
	assert_int_equal(avail_event(f), 3);
	assert_false(virtq_has_work(&f->q));
}

static void test_disabled(void **state)
{
	struct fx *f = *state;
	memset(&f->q, 0, sizeof(f->q));
	f->size = QSIZE;
	desc(f, 0, BUF_GPA, 1, 0, 0);
	avail_add(f, 0);
	assert_false(virtq_has_work(&f->q));
	assert_int_equal(pop(f, 16), 0);
	virtq_push(&f->q, 0, 1);
	assert_false(virtq_should_notify(&f->q));
	virtq_set_notify(&f->q, false);
	assert_int_equal(get(&f->mem, USED_GPA, 2), 0);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 0);

	/* Reset after use: all gone. */
	enable(f, QSIZE, true, true);
	desc(f, 0, BUF_GPA, 1, 0, 0);
	avail_add(f, 0);
	assert_int_equal(pop(f, 16), 1);
	virtq_push(&f->q, 0, 1);
	assert_true(virtq_should_notify(&f->q));
	virtq_reset(&f->q);
	assert_false(f->q.enabled);
	assert_null(f->q.desc);
	assert_int_equal(f->q.last_avail, 0);
	assert_int_equal(f->q.used_idx, 0);
	assert_false(f->q.signalled_valid);
	assert_false(virtq_has_work(&f->q));
}

static void test_enable_checks(void **state)
{
	struct fx *f = *state;
	static const uint16_t bad_sizes[] = {0,	    3, 6, 100, 1023, VIRTQ_MAX_SIZE + 1, VIRTQ_MAX_SIZE * 2,
					     0x8000};
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		enable(f, QSIZE, false, false);
		struct virtq_layout l = {bad_sizes[i], DESC_GPA, AVAIL_GPA, USED_GPA, false, false};
		assert_int_equal(virtq_enable(&f->q, &f->mem, &l), -EINVAL);
		assert_false(f->q.enabled);
		assert_false(virtq_has_work(&f->q));
	}
	for (unsigned s = 1; s <= VIRTQ_MAX_SIZE; s <<= 1) {
		struct virtq_layout l = {(uint16_t)s, 0x20000, 0x10000, 0x30000, true, true};
		assert_int_equal(virtq_enable(&f->q, &f->mem, &l), 0);
		assert_true(f->q.enabled);
	}

	/* Alignment (16, 2, 4) and range (desc 16n, avail 6 + 2n, used 6 + 8n bytes), size 8. */
	const uint64_t end = HIGH_GPA + HIGH_SIZE;
	static const struct {
		uint64_t desc, avail, used;
		int r;
	} cases[] = {
	    {DESC_GPA + 8, AVAIL_GPA, USED_GPA, -EINVAL},
	    {DESC_GPA + 1, AVAIL_GPA, USED_GPA, -EINVAL},
	    {DESC_GPA, AVAIL_GPA + 1, USED_GPA, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, USED_GPA + 2, -EINVAL},
	    {DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4, 0},
	    {LOW_SIZE - 128, LOW_SIZE - 22, LOW_SIZE - 72,
	     0},					    /* each ends 0-2 bytes short of region 0's end */
	    {LOW_SIZE - 112, AVAIL_GPA, USED_GPA, -EINVAL}, /* crosses into the gap */
	    {DESC_GPA, LOW_SIZE - 20, USED_GPA, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, LOW_SIZE - 68, -EINVAL},
	    {end - 128, end - 22, end - 72, 0},
	    {end - 112, AVAIL_GPA, USED_GPA, -EINVAL},
	    {DESC_GPA, end - 20, USED_GPA, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, end - 68, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, end, -EINVAL},
	    {HIGH_GPA - 16, AVAIL_GPA, USED_GPA, -EINVAL},
	    {UINT64_MAX - 15, AVAIL_GPA, USED_GPA, -EINVAL},
	    {DESC_GPA, UINT64_MAX - 1, USED_GPA, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, UINT64_MAX - 3, -EINVAL},
	    {DESC_GPA, AVAIL_GPA, 1ULL << 40, -EINVAL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enable(f, QSIZE, false, false);
		struct virtq_layout l = {QSIZE, cases[i].desc, cases[i].avail, cases[i].used, true, false};
		assert_int_equal(virtq_enable(&f->q, &f->mem, &l), cases[i].r);
		assert_int_equal(f->q.enabled, cases[i].r == 0);
		if (cases[i].r == 0) {
			assert_ptr_equal(f->q.desc, hva(f, cases[i].desc));
			assert_ptr_equal(f->q.avail, hva(f, cases[i].avail));
			assert_ptr_equal(f->q.used, hva(f, cases[i].used));
			assert_int_equal(f->q.last_avail, 0);
			assert_int_equal(f->q.used_idx, 0);
		}
	}
}

/* ---- saved state ---- */

static size_t save(const struct virtq *q, uint16_t held, struct sbuf *b)
{
	sbuf_init(b);
	virtq_save(q, held, b);
	assert_false(b->oom);
	return b->len;
}

static int load(struct virtq *q, const struct guest_mem *m, const void *p, size_t len)
{
	struct sreader r;
	struct err e = {0};
	sreader_init(&r, p, len);
	int ret = virtq_load(q, m, &r, &e);
	if (ret == 0)
		assert_true(sreader_done(&r));
	else
		assert_true(e.msg[0] != 0);
	return ret;
}

/* A queue that served some chains comes back at the same place and serves the next ones. */
static void test_save_load(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, true, true);
	for (unsigned i = 0; i < QSIZE; i++)
		desc(f, i, BUF_GPA + 0x100 * i, 16, WRITE, 0);
	for (unsigned i = 0; i < 5; i++)
		avail_add(f, (uint16_t)i);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(pop(f, 16), 1);
		virtq_push(&f->q, f->c.head, 16);
	}
	assert_true(virtq_should_notify(&f->q));
	struct sbuf b;
	save(&f->q, 0, &b);

	struct virtq q2;
	memset(&q2, 0xa5, sizeof(q2));
	assert_int_equal(load(&q2, &f->mem, b.data, b.len), 0);
	assert_true(q2.enabled);
	assert_int_equal(q2.l.size, QSIZE);
	assert_true(q2.l.event_idx && q2.l.indirect);
	assert_int_equal(q2.last_avail, 3);
	assert_int_equal(q2.used_idx, 3);
	assert_int_equal(q2.signalled_used, f->q.signalled_used);
	assert_true(q2.signalled_valid);
	assert_ptr_equal(q2.used, f->q.used);
	/* The next chains, none twice. */
	struct virtq_chain c;
	assert_int_equal(virtq_pop(&q2, f->iov, 16, &c), 1);
	assert_int_equal(c.head, 3);
	virtq_push(&q2, c.head, 1);
	assert_int_equal(virtq_pop(&q2, f->iov, 16, &c), 1);
	assert_int_equal(c.head, 4);
	virtq_push(&q2, c.head, 1);
	assert_int_equal(virtq_pop(&q2, f->iov, 16, &c), 0);
	assert_int_equal(get(&f->mem, USED_GPA + 2, 2), 5);
	sbuf_free(&b);

	/* Chains the device holds unused are saved as not taken: the loaded queue takes them again. */
	enable(f, QSIZE, false, false);
	for (unsigned i = 0; i < 4; i++)
		avail_add(f, (uint16_t)i);
	assert_int_equal(pop(f, 16), 1);
	virtq_push(&f->q, f->c.head, 0);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(pop(f, 16), 1);
	save(&f->q, 2, &b);
	assert_int_equal(load(&q2, &f->mem, b.data, b.len), 0);
	assert_int_equal(q2.last_avail, 1);
	assert_int_equal(q2.used_idx, 1);
	assert_int_equal(virtq_pop(&q2, f->iov, 16, &c), 1);
	assert_int_equal(c.head, 1);
	sbuf_free(&b);

	/* A disabled queue: all zero. */
	virtq_reset(&f->q);
	save(&f->q, 0, &b);
	memset(&q2, 0xa5, sizeof(q2));
	assert_int_equal(load(&q2, &f->mem, b.data, b.len), 0);
	assert_false(q2.enabled);
	assert_int_equal(q2.last_avail, 0);
	sbuf_free(&b);
}

/* Field offsets in the saved state. */
enum {
	S_VERSION = 0,
	S_FLAGS = 4,
	S_SIZE = 5,
	S_DESC = 7,
	S_AVAIL = 15,
	S_USED = 23,
	S_LAST = 31,
	S_USEDIDX = 33
};

static void patch(uint8_t *p, size_t off, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

/* Broken states are refused and leave the queue as it was. */
static void test_load_rejects(void **state)
{
	struct fx *f = *state;
	enable(f, QSIZE, false, false);
	for (unsigned i = 0; i < 3; i++)
		avail_add(f, (uint16_t)i);
	assert_int_equal(pop(f, 16), 1);
	virtq_push(&f->q, f->c.head, 0);
	struct sbuf b;
	size_t len = save(&f->q, 0, &b);
	assert_int_equal(len, 37);

	struct virtq q2 = f->q, before;
	q2.last_avail = 77; /* something to see unchanged */
	before = q2;
	uint8_t *c = malloc(len + 1);
	/* Every truncation. */
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(load(&q2, &f->mem, b.data, n), -EINVAL);
		assert_memory_equal(&q2, &before, sizeof(q2));
	}
	struct {
		size_t off;
		uint64_t v;
		unsigned n;
	} bad[] = {
	    {S_VERSION, 2, 4},		 /* another version */
	    {S_FLAGS, 0x10 | 1, 1},	 /* unknown flag */
	    {S_SIZE, 6, 2},		 /* not a power of 2 */
	    {S_SIZE, 2048, 2},		 /* too big */
	    {S_SIZE, 0, 2},		 /* empty */
	    {S_DESC, DESC_GPA + 8, 8},	 /* misaligned */
	    {S_AVAIL, AVAIL_GPA + 1, 8}, /* misaligned */
	    {S_USED, LOW_SIZE - 8, 8},	 /* across the end of RAM */
	    {S_USED, 1ULL << 40, 8},	 /* outside RAM */
	    {S_USEDIDX, 2, 2},		 /* not what the used ring says */
	    {S_LAST, 20, 2},		 /* taken more than the ring holds */
	    {S_LAST, 0xffff, 2},	 /* took fewer than were used */
	    {S_FLAGS, 0, 1},		 /* disabled, but with state */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(c, b.data, len);
		patch(c, bad[i].off, bad[i].v, bad[i].n);
		assert_int_equal(load(&q2, &f->mem, c, len), -EINVAL);
		assert_memory_equal(&q2, &before, sizeof(q2));
	}
	/* The avail index in memory far ahead of what was used: not this memory's queue. */
	put(&f->mem, AVAIL_GPA + 2, 1 + QSIZE + 1, 2);
	assert_int_equal(load(&q2, &f->mem, b.data, len), -EINVAL);
	assert_memory_equal(&q2, &before, sizeof(q2));
	put(&f->mem, AVAIL_GPA + 2, 3, 2);
	/* The used index in memory differs. */
	put(&f->mem, USED_GPA + 2, 0, 2);
	assert_int_equal(load(&q2, &f->mem, b.data, len), -EINVAL);
	put(&f->mem, USED_GPA + 2, 1, 2);
	assert_int_equal(load(&q2, &f->mem, b.data, len), 0);
	free(c);
	sbuf_free(&b);
}

/* ---- dirty marking ---- */

static uint64_t dirty_fetch(struct fx *f, uint64_t *out, unsigned words)
{
	return guest_mem_dirty_fetch(&f->mem, 0, 64ULL * words, out);
}

static void test_dirty_marking(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	enable(f, QSIZE, true, false);
	/* A chain: 16 readable bytes, then writable buffers at 0x11ff0 (across 0x11000/0x12000) and 0x14000.
	 */
	desc(f, 0, BUF_GPA, 16, NEXT, 1);
	desc(f, 1, 0x11ff0, 0x20, NEXT | WRITE, 2);
	desc(f, 2, 0x14000, 0x10, WRITE, 0);
	desc(f, 3, BUF_GPA, 16, 0, 0);
	avail_add(f, 0);
	avail_add(f, 3);
	avail_add(f, 0);

	/* Off: nothing is marked (there is not even a bitmap). */
	assert_int_equal(pop(f, 16), 1);
	virtq_push_iov(&f->q, f->c.head, f->iov + f->c.nout, f->c.nin, 0x30);
	virtq_set_notify(&f->q, true);
	assert_null(f->mem.dirty_bitmap);
	assert_false(guest_mem_dirty_logging(&f->mem));

	/* On: the used ring page (entry, index, avail_event) and exactly the buffers' pages. */
	assert_int_equal(guest_mem_dirty_log_start(&f->mem, &e), 0);
	assert_true(guest_mem_dirty_logging(&f->mem));
	uint64_t out[((HIGH_GPA + HIGH_SIZE) / 4096 + 63) / 64];
	unsigned words = sizeof(out) / sizeof(out[0]);
	assert_int_equal(dirty_fetch(f, out, words), 0);
	assert_int_equal(pop(f, 16), 1);
	assert_int_equal(f->c.nin, 0);
	virtq_push(&f->q, f->c.head, 0); /* nothing written: only the used ring */
	assert_int_equal(dirty_fetch(f, out, words), 1);
	assert_int_equal(out[0], 1ULL << (USED_GPA >> 12));
	assert_int_equal(pop(f, 16), 1);
	virtq_push_iov(&f->q, f->c.head, f->iov + f->c.nout, f->c.nin, 0x30);
	assert_int_equal(dirty_fetch(f, out, words), 4);
	assert_int_equal(out[0], (1ULL << 3) | (1ULL << 0x11) | (1ULL << 0x12) | (1ULL << 0x14));
	for (unsigned i = 1; i < words; i++)
		assert_int_equal(out[i], 0);
	/* Fetched means cleared. */
	assert_int_equal(dirty_fetch(f, out, words), 0);
	/* Notification requests write the used ring too. */
	virtq_set_notify(&f->q, true);
	assert_int_equal(dirty_fetch(f, out, words), 1);
	assert_int_equal(out[0], 1ULL << 3);

	/* A buffer in the high region is marked at its guest address. */
	desc(f, 4, HIGH_GPA + 0x2000, 0x1001, WRITE, 0);
	avail_add(f, 4);
	assert_int_equal(pop(f, 16), 1);
	virtq_push_iov(&f->q, f->c.head, f->iov + f->c.nout, f->c.nin, 1);
	assert_int_equal(dirty_fetch(f, out, words), 3);
	assert_int_equal(out[0], 1ULL << 3);
	assert_int_equal(out[(HIGH_GPA >> 12) / 64], 3ULL << (((HIGH_GPA >> 12) + 2) % 64));

	/* Stopped: nothing more. */
	guest_mem_dirty_log_stop(&f->mem);
	avail_add(f, 4);
	assert_int_equal(pop(f, 16), 1);
	virtq_push_iov(&f->q, f->c.head, f->iov + f->c.nout, f->c.nin, 1);
	assert_int_equal(dirty_fetch(f, out, words), 0);
}

/* Fetch over ranges that do not start on a word, and marks at the edges of RAM. */
static void test_dirty_fetch_ranges(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	assert_int_equal(guest_mem_dirty_log_start(&f->mem, &e), 0);
	guest_mem_mark_dirty(&f->mem, 62 * 4096, 4 * 4096);		     /* frames 62..65 */
	guest_mem_mark_dirty(&f->mem, 200 * 4096 + 4095, 2);		     /* frames 200, 201 */
	guest_mem_mark_dirty(&f->mem, HIGH_GPA + HIGH_SIZE - 1, 1ULL << 40); /* the last frame, clamped */
	guest_mem_mark_dirty(&f->mem, 1ULL << 40, 4096);		     /* outside: ignored */
	guest_mem_mark_dirty(&f->mem, 5 * 4096, 0);			     /* empty: nothing */
	uint64_t out[4] = {0};
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 60, 4, out), 2); /* 60..63 */
	assert_int_equal(out[0], 0xc);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 61, 140, out), 3); /* 64, 65, 200 */
	assert_int_equal(out[0], 3ULL << 3);
	assert_int_equal(out[2], 1ULL << (139 - 128));
	assert_int_equal(out[1], 0);
	uint64_t last = (HIGH_GPA + HIGH_SIZE) / 4096 - 1;
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, last - 1, 100, out), 1); /* past the end: clean */
	assert_int_equal(out[0], 2);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, 256, out), 1); /* 201 left */
	assert_int_equal(out[3], 1ULL << (201 - 192));
	/* A restart clears what was there. */
	guest_mem_mark_dirty(&f->mem, 0, 1);
	assert_int_equal(guest_mem_dirty_log_start(&f->mem, &e), 0);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, 64, out), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_simple_chain),
	    T(test_out_in_split),
	    T(test_indirect),
	    T(test_loops),
	    T(test_bad_indices),
	    T(test_bad_addresses),
	    cmocka_unit_test(test_total_length),
	    T(test_write_then_read),
	    T(test_indirect_errors),
	    T(test_avail_idx),
	    T(test_e2big),
	    T(test_push),
	    T(test_notify_flags),
	    T(test_notify_event_idx),
	    T(test_set_notify_event_idx),
	    T(test_disabled),
	    T(test_enable_checks),
	    T(test_save_load),
	    T(test_load_rejects),
	    T(test_dirty_marking),
	    T(test_dirty_fetch_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
