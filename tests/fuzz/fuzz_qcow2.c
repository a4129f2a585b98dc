/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the qcow2 backend (devices/disk/qcow2*.c) opening a
 * hostile image and serving a few requests, through devices/disk/disk.h
 * only. The input's image bytes go to a memfd (one per process, rewritten for
 * every input: writes land in this private copy), opened by its
 * /proc/self/fd path with format=qcow2 and backing=off, so that no backing
 * file name in an input is ever followed on the host.
 *
 * Oracles beyond the sanitizers: a write, discard or write-zeroes that
 * succeeded must read back as written (or the read must fail: an image found
 * corrupt may refuse I/O), unless FUZZ_QCOW2_NO_READBACK is set; no file
 * descriptor may leak from one input. libFuzzer's -rss_limit_mb and
 * -malloc_limit_mb catch huge allocations that hostile sizes might cause.
 *
 * The backend's messages on stderr ("corrupt qcow2 image") go to /dev/null
 * unless FUZZ_QCOW2_VERBOSE is set; sanitizer reports are not affected (they
 * write to fd 2 directly).
 *
 * ---- Input format (tests/fuzz/gen_qcow2_seeds.sh writes it too) ----
 * Header, 8 bytes, then the image file:
 *   byte 0: bit 0 read-write (else read-only)
 *           bit 1 format=auto (probed) instead of format=qcow2
 *           bit 2 a small metadata cache (cache_size 1 byte: the backend's minimum)
 *           bit 3 flush at the end (read-write)
 *   bytes 1-6: three requests, le16 each: bits 14-15 the type (read-only
 *           images: always a read): 0 read, 1 write, 2 discard, 3 write-zeroes
 *           (bit 13: may unmap); bits 0-12 the sector: below 0x1000 counted
 *           from the start of the disk, else (s - 0x1000) from its end.
 *   byte 7: two bits per request, its length: 1, 7, 64 or 256 sectors
 *           (clipped at the end of the disk); bits 6-7: how the reads' buffer
 *           is split into vectors.
 * Before the requests, the first 64 KiB of the disk and its last sector are
 * read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/disk/disk.h"

#define HDR	  8
#define MAX_IMAGE (1u << 20)
#define MAX_IO	  (256u * DISK_SECTOR)
#define NO_COVER  __attribute__((no_sanitize("coverage")))

static int mfd = -1;
static char path[64];
static bool readback = true;
static uint8_t buf[MAX_IO], back[MAX_IO], pattern[MAX_IO];

NO_COVER static void die(const char *what)
{
	fprintf(stdout, "fuzz_qcow2: %s\n", what);
	fflush(stdout);
	abort();
}

NO_COVER static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void init(void)
{
	if (!getenv("FUZZ_QCOW2_VERBOSE")) {
		FILE *null = fopen("/dev/null", "w");
		if (null)
			stderr = null; /* the backend's own messages; see the top of the file */
	}
	readback = !getenv("FUZZ_QCOW2_NO_READBACK");
	mfd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (mfd < 0)
		die("memfd_create failed");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
}

/* Splits len bytes of p into up to 8 vectors as mode says. */
static int split(uint8_t *p, size_t len, unsigned mode, struct iovec *v)
{
	static const size_t piece[] = {0, 1, 511, 4096};
	if (!mode || len < 8192) {
		v[0] = (struct iovec){p, len};
		return 1;
	}
	int n = 0;
	size_t done = 0;
	while (n < 7 && done < len) {
		size_t s = piece[(unsigned)(mode + (unsigned)n) & 3] + (size_t)n * 3;
		if (s > len - done)
			s = len - done;
		v[n++] = (struct iovec){p + done, s};
		done += s;
	}
	if (done < len)
		v[n++] = (struct iovec){p + done, len - done};
	return n;
}

static void do_read(struct disk *d, uint64_t off, size_t len, unsigned mode)
{
	struct iovec v[8];
	int n = split(buf, len, mode, v);
	(void)d->ops->preadv(d, v, n, off);
}

/* After a successful change: the range reads back as want (NULL: zeroes), or the read fails. */
static void check_back(struct disk *d, uint64_t off, size_t len, const uint8_t *want, const char *what)
{
	if (!readback)
		return;
	struct iovec v = {back, len};
	memset(back, 0xa5, len);
	if (d->ops->preadv(d, &v, 1, off))
		return;
	for (size_t i = 0; i < len; i++)
		if (back[i] != (want ? want[i] : 0)) {
			char m[160];
			snprintf(m, sizeof(m), "%s of %zu bytes at %#llx succeeded, but byte %zu reads %#x",
				 what, len, (unsigned long long)off, i, back[i]);
			die(m);
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	if (size < HDR || size - HDR > MAX_IMAGE)
		return 0;
	uint8_t flags = data[0];
	int fds = count_fds();
	if (ftruncate(mfd, 0) < 0)
		die("ftruncate failed");
	for (size_t done = 0; done < size - HDR;) {
		ssize_t n = pwrite(mfd, data + HDR + done, size - HDR - done, (off_t)done);
		if (n <= 0)
			die("pwrite to the memfd failed");
		done += (size_t)n;
	}
	struct disk_config c = {
	    .path = path,
	    .format = (flags & 2) ? DISK_FORMAT_AUTO : DISK_FORMAT_QCOW2,
	    .readonly = !(flags & 1),
	    .no_backing = true,
	    .cache_size = (flags & 4) ? 1 : 0,
	};
	struct disk *d = NULL;
	struct err e = {{0}};
	if (disk_open(&c, &d, &e)) {
		if (d)
			die("disk_open failed but set the disk");
		if (!e.msg[0])
			die("disk_open failed without a message");
	} else if (d->size < DISK_SECTOR) {
		disk_close(d); /* nothing to read */
	} else {
		uint64_t sectors = d->size / DISK_SECTOR;
		unsigned mode = data[7] >> 6;
		do_read(d, 0, d->size < 65536 ? (size_t)d->size : 65536, mode);
		do_read(d, d->size - DISK_SECTOR, DISK_SECTOR, 0);
		static const unsigned lens[] = {1, 7, 64, 256};
		for (unsigned i = 0; i < 3; i++) {
			unsigned v = data[1 + 2 * i] | (unsigned)data[2 + 2 * i] << 8;
			uint64_t s = v & 0x1fff;
			s = s < 0x1000 ? s : (s - 0x1000 < sectors ? sectors - 1 - (s - 0x1000) : 0);
			if (s >= sectors)
				s = sectors - 1;
			uint64_t n = lens[(data[7] >> (2 * i)) & 3];
			if (n > sectors - s)
				n = sectors - s;
			uint64_t off = s * DISK_SECTOR;
			size_t len = (size_t)n * DISK_SECTOR;
			unsigned type = d->readonly ? 0 : v >> 14;
			switch (type) {
			case 0:
				do_read(d, off, len, mode);
				break;
			case 1: {
				struct iovec iv[8];
				int k = split(pattern, len, mode, iv);
				if (!d->ops->pwritev(d, iv, k, off))
					check_back(d, off, len, pattern, "pwritev");
				break;
			}
			case 2:
				if (!d->ops->discard(d, off, len))
					check_back(d, off, len, NULL, "discard");
				break;
			default:
				if (!d->ops->write_zeroes(d, off, len, v & 0x2000))
					check_back(d, off, len, NULL, "write_zeroes");
				break;
			}
		}
		if (flags & 8)
			(void)d->ops->flush(d);
		disk_close(d);
	}
	if (fds >= 0 && count_fds() != fds)
		die("file descriptors leaked");
	return 0;
}
