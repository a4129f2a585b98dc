/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk over the virtio-pci transport, driven the way a guest driver
 * drives it: configuration cycles on 0xcf8/0xcfc, register accesses in the
 * 64-bit window, rings in (anonymous, KVM-less) guest memory, a raw image in
 * a temporary file. Checks the data path, the error statuses, and that a
 * hostile driver ends in NEEDS_RESET instead of anything worse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/disk/disk.h"
#include "devices/pci.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "common/quiesce.h"
#include "common/sbuf.h"
#include "vmm/memory.h"

#define MiB	     (1ULL << 20)
#define DEVFN	     PCI_DEVFN(1, 0)
#define MEM64_START  0x100000000ULL
#define MEM32_START  0xc0000000ULL
#define QSIZE	     64
#define DESC_GPA     0x10000ULL
#define AVAIL_GPA    0x11000ULL
#define USED_GPA     0x12000ULL
#define HDR_GPA	     0x20000ULL
#define DATA_GPA     0x30000ULL
#define STATUS_GPA   0x60000ULL
#define DISK_SECTORS 2048

struct fx {
	struct guest_mem mem;
	struct pci_host *host;
	struct disk *disk;
	struct virtio_blk *blk;
	struct virtio_blk_stats st;
	char path[64];
	uint64_t regs; /* BAR 4 address */
	int intx;
	uint16_t avail_idx, used_seen;
	struct quiesce gate; /* the VM's pause gate */
};

static void intx_set(void *opaque, unsigned gsi, int level)
{
	struct fx *f = opaque;
	__atomic_store_n(&f->intx, level, __ATOMIC_SEQ_CST);
}

/* ---- configuration space ---- */

static uint32_t cfg_read(struct fx *f, unsigned reg)
{
	uint8_t a[4] = {(uint8_t)reg, (uint8_t)(DEVFN), 0, 0x80}, d[4];
	pci_host_addr_io(f->host, 0, a, 4, true);
	pci_host_data_io(f->host, 0, d, 4, false);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void cfg_write(struct fx *f, unsigned reg, uint32_t v)
{
	uint8_t a[4] = {(uint8_t)reg, (uint8_t)(DEVFN), 0, 0x80},
		d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_host_addr_io(f->host, 0, a, 4, true);
	pci_host_data_io(f->host, 0, d, 4, true);
}

/* ---- BAR 4 registers (common config at 0, ISR at 0x1000, device config at 0x2000, notify at 0x3000) ---- */

static uint64_t reg_read(struct fx *f, uint64_t off, uint32_t len)
{
	uint8_t d[8] = {0};
	pci_host_mem64_window(f->host, f->regs + off - MEM64_START, d, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void reg_write(struct fx *f, uint64_t off, uint64_t v, uint32_t len)
{
	uint8_t d[8];
	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_host_mem64_window(f->host, f->regs + off - MEM64_START, d, len, true);
}

static uint8_t status(struct fx *f)
{
	return (uint8_t)reg_read(f, 20, 1);
}

/* The driver's bring-up (virtio 1.2, 3.1.1) with queue 0 of QSIZE entries. */
static void driver_init(struct fx *f, uint64_t want)
{
	reg_write(f, 20, 0, 1);
	assert_int_equal(status(f), 0);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	reg_write(f, 0, 1, 4);
	uint64_t offered = reg_read(f, 4, 4) << 32;
	reg_write(f, 0, 0, 4);
	offered |= reg_read(f, 4, 4);
	assert_true(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	want &= offered;
	reg_write(f, 8, 0, 4);
	reg_write(f, 12, (uint32_t)want, 4);
	reg_write(f, 8, 1, 4);
	reg_write(f, 12, (uint32_t)(want >> 32), 4);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	assert_true(status(f) & VIRTIO_STATUS_FEATURES_OK);
	reg_write(f, 22, 0, 2);
	assert_int_equal(reg_read(f, 24, 2), 256);
	reg_write(f, 24, QSIZE, 2);
	reg_write(f, 32, DESC_GPA, 4); /* as Linux does: 64-bit registers in two halves */
	reg_write(f, 36, 0, 4);
	reg_write(f, 40, AVAIL_GPA, 8);
	reg_write(f, 48, USED_GPA, 8);
	reg_write(f, 28, 1, 2);
	memset(f->mem.map + DESC_GPA, 0, 0x3000);
	f->avail_idx = f->used_seen = 0;
	reg_write(f, 20,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		      VIRTIO_STATUS_DRIVER_OK,
		  1);
	assert_true(status(f) & VIRTIO_STATUS_DRIVER_OK);
}

static bool setup_readonly;

/* A machine with the device, on a new disk file: empty, or a copy of the one at from (shared storage). */
static struct fx *fx_new(const char *from)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err e = {0};
	assert_non_null(f);
	quiesce_init(&f->gate);
	assert_int_equal(guest_mem_alloc(&f->mem, 16 * MiB, &e), 0);
	struct pci_windows w = {0x1000,	    0xffff,	 MEM32_START,
				0xfebfffff, MEM64_START, MEM64_START + (1ULL << 30) - 1};
	f->host = pci_host_create(&w);
	assert_non_null(f->host);
	strcpy(f->path, "/tmp/kvmini-test-blk.XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK_SECTORS * 512), 0);
	if (from) {
		static uint8_t img[DISK_SECTORS * 512];
		FILE *fp = fopen(from, "rb");
		assert_non_null(fp);
		assert_int_equal(fread(img, 1, sizeof(img), fp), sizeof(img));
		fclose(fp);
		assert_int_equal(pwrite(fd, img, sizeof(img), 0), sizeof(img));
	}
	close(fd);
	struct disk_config dc = {
	    .path = f->path, .format = DISK_FORMAT_RAW, .serial = "SERIAL-1", .readonly = setup_readonly};
	assert_int_equal(disk_open(&dc, &f->disk, &e), 0);
	struct virtio_pci_env env = {
	    .host = f->host, .mem = &f->mem, .intx = {intx_set, f, 16}, .gate = &f->gate};
	f->blk = virtio_blk_create(&env, DEVFN, f->disk, 1, &f->st, "virtio-blk vda", &e);
	assert_non_null(f->blk);
	/* As firmware left it: BAR 4 placed, memory decoding on, bus mastering on. */
	cfg_write(f, 0x04, 0x6);
	f->regs = (cfg_read(f, 0x20) & ~0xfULL) | (uint64_t)cfg_read(f, 0x24) << 32;
	assert_true(f->regs >= MEM64_START);
	return f;
}

static void fx_free(struct fx *f)
{
	virtio_blk_destroy(f->blk);
	disk_close(f->disk);
	pci_host_destroy(f->host);
	guest_mem_free(&f->mem);
	unlink(f->path);
	quiesce_destroy(&f->gate);
	free(f);
}

static int setup(void **state)
{
	*state = fx_new(NULL);
	return 0;
}

static int setup_ro(void **state)
{
	setup_readonly = true;
	int r = setup(state);
	setup_readonly = false;
	return r;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* ---- rings ---- */

static void put_desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = f->mem.map + DESC_GPA + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void submit(struct fx *f, uint16_t head)
{
	uint8_t *avail = f->mem.map + AVAIL_GPA;
	memcpy(avail + 4 + 2 * (f->avail_idx % QSIZE), &head, 2);
	f->avail_idx++;
	__atomic_store_n((uint16_t *)(avail + 2), f->avail_idx, __ATOMIC_RELEASE);
	reg_write(f, 0x3000, 0, 2); /* notify queue 0 (no ioeventfd here: this exits to the device) */
}

/* Waits for the next used entry; returns its written length, or -1 after 5 s. */
static int64_t wait_used(struct fx *f)
{
	uint8_t *used = f->mem.map + USED_GPA;
	for (int i = 0; i < 5000; i++) {
		uint16_t idx = __atomic_load_n((uint16_t *)(used + 2), __ATOMIC_ACQUIRE);
		if (idx != f->used_seen) {
			uint32_t len;
			memcpy(&len, used + 4 + 8 * (f->used_seen % QSIZE) + 4, 4);
			f->used_seen++;
			return len;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static bool wait_status(struct fx *f, uint8_t bit)
{
	for (int i = 0; i < 5000 && !(status(f) & bit); i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return status(f) & bit;
}

/* A request: header, one data buffer (out or in), status. Returns the used length. */
static int64_t request(struct fx *f, uint32_t type, uint64_t sector, uint32_t data_len, bool data_in)
{
	uint8_t hdr[16] = {0};
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(f->mem.map + HDR_GPA, hdr, 16);
	f->mem.map[STATUS_GPA] = 0xee;
	put_desc(f, 0, HDR_GPA, 16, 1, 1);
	if (data_len) {
		put_desc(f, 1, DATA_GPA, data_len, 1 | (data_in ? 2 : 0), 2);
		put_desc(f, 2, STATUS_GPA, 1, 2, 0);
	} else {
		put_desc(f, 0, HDR_GPA, 16, 1, 2);
		put_desc(f, 2, STATUS_GPA, 1, 2, 0);
	}
	submit(f, 0);
	return wait_used(f);
}

/* ---- counters ---- */

#define STAT(f, field) __atomic_load_n(&(f)->st.field, __ATOMIC_RELAXED)

/* Waits up to 5 s for a counter to reach want (some are counted just after the used entry is pushed). */
static uint64_t wait_count(const uint64_t *counter, uint64_t want)
{
	uint64_t v = 0;
	for (int i = 0; i < 5000 && (v = __atomic_load_n(counter, __ATOMIC_RELAXED)) < want; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return v;
}

static uint64_t hist_sum(struct fx *f)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < VIRTIO_BLK_LAT_BUCKETS; i++)
		n += STAT(f, lat_hist[i]);
	return n;
}

static uint64_t all_reqs(struct fx *f)
{
	return STAT(f, read_reqs) + STAT(f, write_reqs) + STAT(f, flush_reqs) + STAT(f, discard_reqs) +
	       STAT(f, write_zeroes_reqs) + STAT(f, get_id_reqs) + STAT(f, other_reqs);
}

/* One range of n sectors at sector for discard or write-zeroes, in the data buffer. */
static void put_range(struct fx *f, uint64_t sector, uint32_t n)
{
	uint8_t seg[16] = {0};
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &n, 4);
	memcpy(f->mem.map + DATA_GPA, seg, 16);
}

static void test_identity(void **state)
{
	struct fx *f = *state;
	assert_int_equal(cfg_read(f, 0x00), 0x10421af4); /* 1af4:1042, modern virtio-blk */
	assert_int_equal(cfg_read(f, 0x2c) >> 16, 0x40);
	/* Device configuration: capacity and seg_max. */
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(reg_read(f, 0x2000, 8), DISK_SECTORS);
	assert_int_equal(reg_read(f, 0x2000 + 12, 4), VIRTIO_BLK_SEG_MAX);
}

static void test_write_read_flush(void **state)
{
	struct fx *f = *state;
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	for (int i = 0; i < 4096; i++)
		f->mem.map[DATA_GPA + i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(request(f, 1, 8, 4096, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 0);
	memset(f->mem.map + DATA_GPA, 0, 4096);
	assert_int_equal(request(f, 0, 8, 4096, true), 4097);
	assert_int_equal(f->mem.map[STATUS_GPA], 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(f->mem.map[DATA_GPA + i], (uint8_t)(i * 7 + 3));
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 0);
	/* On the file itself, at sector 8. */
	FILE *fp = fopen(f->path, "rb");
	uint8_t buf[16];
	assert_int_equal(fseek(fp, 8 * 512, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, 16, fp), 16);
	fclose(fp);
	assert_int_equal(buf[5], (uint8_t)(5 * 7 + 3));
	/* INTx (MSI-X is off): the ISR says "used buffer" and reading it lowers the line. */
	assert_int_equal(f->intx, 1);
	assert_int_equal(reg_read(f, 0x1000, 1) & 1, 1);
	assert_int_equal(f->intx, 0);
}

/* Puts request i (descriptors 3i..3i+2) on the avail ring without notifying. */
static void queue_rw(struct fx *f, unsigned i, uint32_t type, uint64_t sector)
{
	uint8_t hdr[16] = {0};
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(f->mem.map + HDR_GPA + 16 * i, hdr, 16);
	f->mem.map[STATUS_GPA + i] = 0xee;
	put_desc(f, 3 * i, HDR_GPA + 16 * i, 16, 1, (uint16_t)(3 * i + 1));
	put_desc(f, 3 * i + 1, DATA_GPA + 4096 * i, 4096, 1 | (type == 0 ? 2 : 0), (uint16_t)(3 * i + 2));
	put_desc(f, 3 * i + 2, STATUS_GPA + i, 1, 2, 0);
	uint8_t *avail = f->mem.map + AVAIL_GPA;
	uint16_t head = (uint16_t)(3 * i);
	memcpy(avail + 4 + 2 * (f->avail_idx % QSIZE), &head, 2);
	f->avail_idx++;
}

/* Many requests at once go out to the worker threads and all come back, in any order. */
static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	enum { N = 20 };
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < N; i++) {
			if (round == 0)
				memset(f->mem.map + DATA_GPA + 4096 * i, (int)(i + 1), 4096);
			else
				memset(f->mem.map + DATA_GPA + 4096 * i, 0, 4096);
			queue_rw(f, i, round == 0 ? 1 : 0, 8 * i);
		}
		__atomic_store_n((uint16_t *)(f->mem.map + AVAIL_GPA + 2), f->avail_idx, __ATOMIC_RELEASE);
		reg_write(f, 0x3000, 0, 2);
		for (unsigned i = 0; i < N; i++)
			assert_int_equal(wait_used(f), round == 0 ? 1 : 4097);
		for (unsigned i = 0; i < N; i++) {
			assert_int_equal(f->mem.map[STATUS_GPA + i], 0);
			if (round == 1) {
				assert_int_equal(f->mem.map[DATA_GPA + 4096 * i], i + 1);
				assert_int_equal(f->mem.map[DATA_GPA + 4096 * i + 4095], i + 1);
			}
		}
	}
	/* A reset while idle, then the device still works. */
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	/* Three notifications (blk_start()'s own kicks left out), every request timed once. */
	assert_int_equal(STAT(f, notifications), 3);
	assert_int_equal(STAT(f, write_reqs), N);
	assert_int_equal(STAT(f, write_bytes), N * 4096);
	assert_int_equal(STAT(f, read_reqs), N);
	assert_int_equal(STAT(f, read_bytes), N * 4096);
	assert_int_equal(hist_sum(f), 2 * N + 1);
}

/* A read-only disk: the device says RO, and write requests that reach it anyway fail. */
static void test_readonly(void **state)
{
	struct fx *f = *state;
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(5) /* VIRTIO_BLK_F_RO */);
	reg_write(f, 8, 0, 4);
	assert_true(reg_read(f, 12, 4) & VIRTIO_BIT(5));
	memset(f->mem.map + DATA_GPA, 0x5a, 4096);
	assert_int_equal(request(f, 1, 0, 4096, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 1); /* IOERR */
	uint8_t zero[16] = {0}, seg[16] = {0};
	seg[8] = 8; /* one discard segment: sector 0, 8 sectors */
	memcpy(f->mem.map + DATA_GPA, seg, 16);
	assert_int_equal(request(f, 11, 0, 16, false), 1);
	assert_int_not_equal(f->mem.map[STATUS_GPA], 0);
	assert_int_equal(request(f, 0, 0, 4096, true), 4097);
	assert_memory_equal(f->mem.map + DATA_GPA, zero, sizeof(zero)); /* the file is still all zeroes */
}

static void test_get_id_and_errors(void **state)
{
	struct fx *f = *state;
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	memset(f->mem.map + DATA_GPA, 0xaa, 20);
	assert_int_equal(request(f, 8, 0, 20, true), 21);
	assert_memory_equal(f->mem.map + DATA_GPA, "SERIAL-1\0\0\0\0", 12);
	/* Beyond the end, straddling the end, not a multiple of 512, an unknown type. */
	assert_int_equal(request(f, 0, DISK_SECTORS, 512, true), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 1);
	assert_int_equal(request(f, 1, DISK_SECTORS - 1, 1024, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 1);
	assert_int_equal(request(f, 0, UINT64_MAX / 256, 512, true), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 1);
	assert_int_equal(request(f, 0, 0, 100, true), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 1);
	assert_int_equal(request(f, 99, 0, 0, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 2);
	/* Still healthy. */
	assert_false(status(f) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Known requests, one notification each, and exactly what the counters say about them. */
static void test_stats(void **state)
{
	struct fx *f = *state;
	enum { READS = 5 };
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1)); /* no EVENT_IDX: every completion interrupts */
	assert_int_equal(STAT(f, notifications), 0);	/* blk_start()'s own kick is not the driver's */
	for (int i = 0; i < READS; i++)
		assert_int_equal(request(f, 0, 8 * (uint64_t)i, 4096, true), 4097);
	assert_int_equal(STAT(f, read_reqs), READS);
	assert_int_equal(STAT(f, read_bytes), READS * 4096);
	assert_int_equal(request(f, 1, 0, 1024, false), 1);
	assert_int_equal(request(f, 1, 16, 512, false), 1);
	assert_int_equal(STAT(f, write_reqs), 2);
	assert_int_equal(STAT(f, write_bytes), 1536);
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	assert_int_equal(STAT(f, flush_reqs), 1);
	assert_int_equal(request(f, 8, 0, 20, true), 21);
	assert_int_equal(STAT(f, get_id_reqs), 1);
	put_range(f, 64, 8);
	assert_int_equal(request(f, 13, 0, 16, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 0);
	assert_int_equal(STAT(f, write_zeroes_reqs), 1);
	assert_int_equal(STAT(f, write_zeroes_bytes), 8 * 512);
	put_range(f, 128, 16);
	assert_int_equal(request(f, 11, 0, 16, false), 1);
	assert_int_equal(STAT(f, discard_reqs), 1);
	if (f->disk->can_discard) {
		assert_int_equal(f->mem.map[STATUS_GPA], 0);
		assert_int_equal(STAT(f, discard_bytes), 16 * 512);
		assert_int_equal(STAT(f, unsupp), 0);
	} else {
		assert_int_equal(f->mem.map[STATUS_GPA], 2);
		assert_int_equal(STAT(f, discard_bytes), 0);
		assert_int_equal(STAT(f, unsupp), 1);
	}
	uint64_t unsupp = STAT(f, unsupp);
	assert_int_equal(STAT(f, ioerr), 0);
	/* A read past the end: a read, an I/O error, no bytes. An unknown type: unsupported. */
	assert_int_equal(request(f, 0, DISK_SECTORS, 512, true), 1);
	assert_int_equal(STAT(f, read_reqs), READS + 1);
	assert_int_equal(STAT(f, read_bytes), READS * 4096);
	assert_int_equal(STAT(f, ioerr), 1);
	assert_int_equal(request(f, 99, 0, 0, false), 1);
	assert_int_equal(STAT(f, other_reqs), 1);
	assert_int_equal(STAT(f, unsupp), unsupp + 1);

	const uint64_t total = READS + 2 + 1 + 1 + 1 + 1 + 2;
	assert_int_equal(all_reqs(f), total);
	assert_int_equal(hist_sum(f), total);
	assert_true(STAT(f, lat_sum_ns) > 0);
	assert_int_equal(STAT(f, notifications), total);
	/* INTx without EVENT_IDX: one interrupt per completion, counted just after its push. */
	assert_int_equal(wait_count(&f->st.interrupts, total), total);

	/* A reset keeps the counters; the restarted device's own kick still does not count. */
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(request(f, 0, 0, 512, true), 513);
	assert_int_equal(STAT(f, read_reqs), READS + 2);
	assert_int_equal(STAT(f, read_bytes), READS * 4096 + 512);
	assert_int_equal(STAT(f, notifications), total + 1);
	assert_int_equal(hist_sum(f), total + 1);
	assert_int_equal(wait_count(&f->st.interrupts, total + 1), total + 1);
	/* The driver asks for no interrupts (VIRTQ_AVAIL_F_NO_INTERRUPT): none is counted. */
	uint16_t no_int = 1;
	memcpy(f->mem.map + AVAIL_GPA, &no_int, 2);
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	assert_int_equal(STAT(f, notifications), total + 2);
	struct timespec ts = {0, 20000000};
	nanosleep(&ts, NULL);
	assert_int_equal(STAT(f, interrupts), total + 1);
}

static void test_hostile_chain_needs_reset(void **state)
{
	struct fx *f = *state;
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	/* A descriptor pointing past the end of guest RAM. */
	put_desc(f, 0, 16 * MiB - 8, 16, 0, 0);
	submit(f, 0);
	assert_true(wait_status(f, VIRTIO_STATUS_NEEDS_RESET));
	/* A reset brings it back. */
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_false(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	assert_int_equal(f->mem.map[STATUS_GPA], 0);
	/* A loop. */
	put_desc(f, 0, HDR_GPA, 16, 1, 1);
	put_desc(f, 1, DATA_GPA, 512, 1, 0);
	submit(f, 0);
	assert_true(wait_status(f, VIRTIO_STATUS_NEEDS_RESET));
}

static void test_bad_features_refused(void **state)
{
	struct fx *f = *state;
	reg_write(f, 20, 0, 1);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	/* No VERSION_1: a legacy driver, which we do not serve. */
	reg_write(f, 8, 1, 4);
	reg_write(f, 12, 0, 4);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	assert_false(status(f) & VIRTIO_STATUS_FEATURES_OK);
	/* A bad ring (misaligned descriptor table) at DRIVER_OK. */
	reg_write(f, 20, 0, 1);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	reg_write(f, 8, 1, 4);
	reg_write(f, 12, 1, 4);
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	reg_write(f, 22, 0, 2);
	reg_write(f, 32, DESC_GPA + 3, 8);
	reg_write(f, 40, AVAIL_GPA, 8);
	reg_write(f, 48, USED_GPA, 8);
	reg_write(f, 28, 1, 2);
	reg_write(f, 20, 0xf, 1);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	/* Unknown registers and odd widths do nothing harmful. */
	reg_write(f, 0x0fff, 0xff, 1);
	reg_write(f, 0x3ffe, 0xffff, 2);
	assert_int_equal(reg_read(f, 0x2000 + 4000, 4), 0);
}

/* ---- saved state ---- */

/* The VM paused (device threads out of their passes), the transport saved. */
static void save_paused(struct fx *f, struct sbuf *b)
{
	quiesce_close(&f->gate);
	sbuf_init(b);
	virtio_pci_save(virtio_blk_transport(f->blk), b);
	assert_false(b->oom);
}

/* The destination: the same disk, a copy of guest memory (restored before the devices). */
static struct fx *destination(struct fx *src)
{
	struct fx *d = fx_new(src->path);
	memcpy(d->mem.map, src->mem.map, 16 * MiB);
	d->avail_idx = src->avail_idx;
	d->used_seen = src->used_seen;
	return d;
}

static int load_into(struct fx *d, const void *p, size_t len, struct err *e)
{
	struct sreader r;
	sreader_init(&r, p, len);
	int ret = virtio_pci_load(virtio_blk_transport(d->blk), &r, e);
	if (ret == 0) {
		assert_true(sreader_done(&r));
		virtio_pci_start_deferred(virtio_blk_transport(d->blk)); /* what vm_start() does */
	}
	return ret;
}

/* Serves some requests, migrates, and the destination goes on from the same ring positions. */
static void test_save_load_running(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	for (int i = 0; i < 4096; i++)
		f->mem.map[DATA_GPA + i] = (uint8_t)(i * 5 + 1);
	assert_int_equal(request(f, 1, 16, 4096, false), 1);
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	assert_int_equal(reg_read(f, 0x1000, 1) & 1, 1); /* the driver took the interrupt */
	assert_int_equal(f->intx, 0);
	/* A read the driver queued just before the pause, without a kick reaching the device. */
	memset(f->mem.map + DATA_GPA, 0, 4096);
	queue_rw(f, 0, 0, 16);
	/* used_event: interrupt once the device passes what the driver saw (as Linux writes it). */
	memcpy(f->mem.map + AVAIL_GPA + 4 + 2 * QSIZE, &f->used_seen, 2);
	__atomic_store_n((uint16_t *)(f->mem.map + AVAIL_GPA + 2), f->avail_idx, __ATOMIC_RELEASE);
	uint64_t reads = STAT(f, read_reqs);

	struct sbuf b;
	save_paused(f, &b);
	struct fx *d = destination(f);
	/* The source is not looked at again (its gate opens only so that teardown can stop it). */
	assert_int_equal(load_into(d, b.data, b.len, &e), 0);
	assert_true(status(d) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(reg_read(d, 12, 4), 1); /* gfselect 1 was saved: the high half, VERSION_1 */
	reg_write(d, 8, 0, 4);
	assert_int_equal(reg_read(d, 12, 4), VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	reg_write(d, 22, 0, 2);
	assert_int_equal(reg_read(d, 24, 2), QSIZE);
	assert_int_equal(reg_read(d, 28, 2), 1);
	assert_int_equal(reg_read(d, 32, 8), DESC_GPA);
	/* The queued read, served by the destination once, with an interrupt. */
	assert_int_equal(wait_used(d), 4097);
	assert_int_equal(d->mem.map[STATUS_GPA], 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(d->mem.map[DATA_GPA + i], (uint8_t)(i * 5 + 1));
	assert_int_equal(wait_count(&d->st.read_reqs, 1), 1);
	assert_int_equal(d->intx, 1);
	assert_int_equal(reg_read(d, 0x1000, 1) & 1, 1);
	/* And the next ones, at the next ring positions. */
	assert_int_equal(request(d, 4, 0, 0, false), 1);
	assert_int_equal(request(d, 0, 16, 512, true), 513);
	assert_int_equal(d->mem.map[DATA_GPA + 511], (uint8_t)(511 * 5 + 1));
	/* Five in all, none twice. */
	struct timespec ts = {0, 20000000};
	nanosleep(&ts, NULL);
	assert_int_equal(d->used_seen, 5);
	assert_int_equal(__atomic_load_n((uint16_t *)(d->mem.map + USED_GPA + 2), __ATOMIC_ACQUIRE), 5);
	/* The source served nothing after the pause. */
	assert_int_equal(STAT(f, read_reqs), reads);
	quiesce_open(&f->gate);
	fx_free(d);
	sbuf_free(&b);
}

/* Offsets in the saved transport state of a one-queue device. */
enum {
	T_VERSION = 0,
	T_STATUS = 4,
	T_ISR = 5,
	T_FEATURES = 15,
	T_CONFIG_MSIX = 23,
	T_NUMQ = 27,
	T_QSIZE = 29,
	T_QMSIX = 31,
	T_QENABLE = 33,
	T_QDESC = 34,
	T_VQ = 58,
	T_VQ_USED_IDX = T_VQ + 33,
	T_DLEN = T_VQ + 37,
	T_LEN = T_DLEN + 4,
};

static void patch(uint8_t *p, size_t off, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

/* Broken states are refused and leave the destination as it was; a good one loads after them. */
static void test_load_rejects(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(request(f, 4, 0, 0, false), 1);
	struct sbuf b;
	save_paused(f, &b);
	assert_int_equal(b.len, T_LEN);
	struct fx *d = destination(f);
	/* A device the driver started refuses a load. */
	assert_int_equal(load_into(f, b.data, b.len, &e), -EBUSY);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(load_into(d, b.data, n, &e), -EINVAL);
	uint8_t c[T_LEN + 8];
	struct {
		size_t off;
		uint64_t v;
		unsigned n;
	} bad[] = {
	    {T_VERSION, 9, 4},
	    {T_STATUS, 0x30 | 0xf, 1},			  /* unknown status bits */
	    {T_STATUS, VIRTIO_STATUS_NEEDS_RESET | 3, 1}, /* NEEDS_RESET of a device never started */
	    {T_ISR, 4, 1},
	    {T_FEATURES, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(50), 8}, /* not offered */
	    {T_FEATURES, 0, 8},						      /* no VERSION_1 */
	    {T_CONFIG_MSIX, 2, 2},					      /* 2 vectors: 0 and 1 */
	    {T_NUMQ, 2, 2},
	    {T_QSIZE, 512, 2}, /* above the device's 256 */
	    {T_QMSIX, 7, 2},
	    {T_QENABLE, 2, 1},
	    {T_QENABLE, 0, 1},		 /* a ring loaded for a queue the driver did not enable */
	    {T_QDESC, DESC_GPA + 16, 8}, /* the ring is not where the registers say */
	    {T_VQ_USED_IDX, 9, 2},	 /* not the used index in memory */
	    {T_DLEN, 1, 4},		 /* device state that blk does not have (and past the end) */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(c, b.data, b.len);
		patch(c, bad[i].off, bad[i].v, bad[i].n);
		assert_int_not_equal(load_into(d, c, b.len, &e), 0);
		assert_int_equal(status(d), 0);
	}
	/* Device state blk does not have, within the record. */
	memcpy(c, b.data, b.len);
	patch(c, T_DLEN, 1, 4);
	c[T_LEN] = 0;
	assert_int_equal(load_into(d, c, b.len + 1, &e), -EINVAL);
	assert_int_equal(status(d), 0);
	/* Untouched by all that: the good state loads and serves. */
	assert_int_equal(load_into(d, b.data, b.len, &e), 0);
	assert_int_equal(request(d, 4, 0, 0, false), 1);
	quiesce_open(&f->gate);
	fx_free(d);
	sbuf_free(&b);
}

/* A device the driver has not started yet comes back as it was, and the driver carries on. */
static void test_save_load_idle(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	reg_write(f, 20, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	reg_write(f, 22, 0, 2);
	reg_write(f, 24, QSIZE, 2);
	struct sbuf b;
	save_paused(f, &b);
	struct fx *d = destination(f);
	assert_int_equal(load_into(d, b.data, b.len, &e), 0);
	assert_int_equal(status(d), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	assert_int_equal(reg_read(d, 24, 2), QSIZE);
	driver_init(d, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(request(d, 4, 0, 0, false), 1);
	quiesce_open(&f->gate);
	fx_free(d);
	sbuf_free(&b);
}

/* With the dirty log on, a request marks the used ring and the buffers it wrote, and no more. */
static void test_dirty_log(void **state)
{
	struct fx *f = *state;
	struct err e = {0};
	driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(guest_mem_dirty_log_start(&f->mem, &e), 0);
	uint64_t bits[16 * MiB / 4096 / 64];
	guest_mem_dirty_fetch(&f->mem, 0, 16 * MiB / 4096, bits);
	/* A write: only the status byte and the used ring are written. */
	assert_int_equal(request(f, 1, 8, 4096, false), 1);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, 16 * MiB / 4096, bits), 2);
	assert_int_equal(bits[0], 1ULL << (USED_GPA >> 12));
	assert_int_equal(bits[1], 1ULL << ((STATUS_GPA >> 12) - 64));
	/* A read: the data buffer too. */
	assert_int_equal(request(f, 0, 8, 4096, true), 4097);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, 16 * MiB / 4096, bits), 3);
	assert_int_equal(bits[0], (1ULL << (USED_GPA >> 12)) | (1ULL << (DATA_GPA >> 12)));
	assert_int_equal(bits[1], 1ULL << ((STATUS_GPA >> 12) - 64));
	guest_mem_dirty_log_stop(&f->mem);
	assert_int_equal(request(f, 0, 8, 4096, true), 4097);
	assert_int_equal(guest_mem_dirty_fetch(&f->mem, 0, 16 * MiB / 4096, bits), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_read_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_id_and_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_chain_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_features_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dirty_log, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
