/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for disk images (devices/disk/): opening, locking, probing and
 * the raw backend's I/O, on temporary files under /tmp (and /dev/shm for
 * cache=none, when it is a different file system).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/disk/disk.h"
#include "devices/disk/raw.h"
#include "kvmini.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static char dir[64]; /* this run's temporary directory */

/* dir/name, in a buffer that lives until the next call with the same slot. */
static const char *tpath(int slot, const char *name)
{
	static char buf[4][128];
	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", dir, name);
	return buf[slot];
}

/* The byte at offset off of pattern seed: not zero, not periodic in 512. */
static uint8_t pat(unsigned seed, uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ULL + seed * 0xD1B54A32D192ED03ULL;
	x ^= x >> 29;
	return (uint8_t)(x | 1);
}

static void fill(uint8_t *buf, size_t len, unsigned seed, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(seed, off + i);
}

/* Creates path with size bytes of pattern seed (seed 0: a sparse file of zeroes). */
static void make_file(const char *path, uint64_t size, unsigned seed)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seed) {
		uint8_t *buf = malloc(MiB);
		assert_non_null(buf);
		for (uint64_t off = 0; off < size; off += MiB) {
			size_t n = size - off < MiB ? (size_t)(size - off) : MiB;
			fill(buf, n, seed, off);
			assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
		}
		free(buf);
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

/* The file's bytes [off, off + len), read without going through the disk layer. */
static uint8_t *file_bytes(const char *path, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
	return buf;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static int open_disk(const char *path, enum disk_format fmt, bool ro, enum disk_cache cache, struct disk **d,
		     struct err *e)
{
	struct disk_config c = {.path = path, .format = fmt, .readonly = ro, .cache = cache};
	err_clear(e);
	return disk_open(&c, d, e);
}

/* disk_open fails with code and exactly the message want. */
static void expect_open_fail(const struct disk_config *c, int code, const char *want)
{
	struct disk *d = (struct disk *)1;
	struct err e;
	err_clear(&e);
	int r = disk_open(c, &d, &e);
	if (r != code || strcmp(err_msg(&e), want))
		fail_msg("%s: got %d '%s', wanted %d '%s'", c->path, r, err_msg(&e), code, want);
	assert_null(d);
	assert_null(strchr(err_msg(&e), '\n'));
}

static const char *fs_name(const char *path)
{
	static char buf[64];
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC:
		return "ext2/3/4";
	case TMPFS_MAGIC:
		return "tmpfs";
	case BTRFS_SUPER_MAGIC:
		return "btrfs";
	case XFS_SUPER_MAGIC:
		return "xfs";
	case OVERLAYFS_SUPER_MAGIC:
		return "overlayfs";
	default:
		snprintf(buf, sizeof(buf), "f_type 0x%lx", (unsigned long)sf.f_type);
		return buf;
	}
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/kvmini-test-disk.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- opening ---- */

static void test_open_sizes(void **state)
{
	static const uint64_t ok[] = {512, 3 * 512, MiB, 5 * MiB + 512};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const char *p = tpath(0, "sized.img");
		make_file(p, ok[i], 0);
		struct disk_config c = {.path = p, .serial = "SN-1"};
		struct disk *d;
		struct err e = {{0}};
		assert_int_equal(disk_open(&c, &d, &e), 0);
		assert_int_equal(d->size, ok[i]);
		assert_int_equal(d->block_size, 512);
		assert_int_equal(d->align, 1);
		assert_false(d->readonly);
		assert_string_equal(d->path, p);
		assert_string_equal(d->serial, "SN-1");
		disk_close(d);
	}
	char want[256];
	const char *p = tpath(0, "odd.img");
	static const uint64_t bad[] = {1000, 513, 511, 1, MiB + 4};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_file(p, bad[i], 0);
		snprintf(want, sizeof(want), "%s: size %llu is not a multiple of 512", p,
			 (unsigned long long)bad[i]);
		expect_open_fail(&(struct disk_config){.path = p}, -EINVAL, want);
		expect_open_fail(&(struct disk_config){.path = p, .readonly = true}, -EINVAL, want);
		expect_open_fail(&(struct disk_config){.path = p, .format = DISK_FORMAT_RAW}, -EINVAL, want);
	}
	make_file(p, 0, 0);
	snprintf(want, sizeof(want), "%s: is empty (size 0)", p);
	expect_open_fail(&(struct disk_config){.path = p}, -EINVAL, want);

	/* Serials: up to 20 bytes, copied; none is "". */
	make_file(p, 4096, 0);
	struct disk *d;
	struct err e = {{0}};
	assert_int_equal(
	    disk_open(&(struct disk_config){.path = p, .serial = "12345678901234567890"}, &d, &e), 0);
	assert_string_equal(d->serial, "12345678901234567890");
	disk_close(d);
	assert_int_equal(disk_open(&(struct disk_config){.path = p}, &d, &e), 0);
	assert_string_equal(d->serial, "");
	disk_close(d);
	snprintf(want, sizeof(want), "%s: serial '123456789012345678901' is longer than 20 bytes", p);
	expect_open_fail(&(struct disk_config){.path = p, .serial = "123456789012345678901"}, -EINVAL, want);
}

static void test_open_errors(void **state)
{
	char want[256];
	const char *sub = tpath(0, "subdir");
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(want, sizeof(want), "%s: is a directory", sub);
	expect_open_fail(&(struct disk_config){.path = sub}, -EISDIR, want);
	expect_open_fail(&(struct disk_config){.path = sub, .readonly = true}, -EISDIR, want);
	expect_open_fail(&(struct disk_config){.path = sub, .readonly = true, .cache = DISK_CACHE_NONE},
			 -EISDIR, want);

	const char *missing = tpath(0, "missing.img");
	snprintf(want, sizeof(want), "%s: cannot open: %s", missing, strerror(ENOENT));
	expect_open_fail(&(struct disk_config){.path = missing}, -ENOENT, want);
	expect_open_fail(&(struct disk_config){.path = missing, .readonly = true}, -ENOENT, want);

	expect_open_fail(&(struct disk_config){.path = "/dev/null", .readonly = true}, -EINVAL,
			 "/dev/null: not a regular file or block device");
	/* A FIFO without a writer: rejected, not waited on. */
	const char *fifo = tpath(0, "fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(want, sizeof(want), "%s: not a regular file or block device", fifo);
	expect_open_fail(&(struct disk_config){.path = fifo, .readonly = true}, -EINVAL, want);
	expect_open_fail(&(struct disk_config){.path = fifo}, -EINVAL, want);

	expect_open_fail(&(struct disk_config){.path = ""}, -EINVAL, "disk: no image path given");
	static char longp[5000];
	memset(longp, 'a', sizeof(longp) - 1);
	struct disk *d;
	struct err e = {{0}};
	assert_int_equal(disk_open(&(struct disk_config){.path = longp}, &d, &e), -ENAMETOOLONG);
	assert_non_null(strstr(err_msg(&e), "path is longer than 4095 bytes"));

	/* A file we may only read: read-write fails with a hint, readonly=on works. */
	if (geteuid() != 0) {
		const char *ro = tpath(0, "ro.img");
		make_file(ro, 4096, 1);
		assert_int_equal(chmod(ro, 0444), 0);
		snprintf(want, sizeof(want),
			 "%s: cannot open for writing: %s (readonly=on opens it read-only)", ro,
			 strerror(EACCES));
		expect_open_fail(&(struct disk_config){.path = ro}, -EACCES, want);
		err_clear(&e);
		assert_int_equal(disk_open(&(struct disk_config){.path = ro, .readonly = true}, &d, &e), 0);
		disk_close(d);
	}
}

static void test_lock(void **state)
{
	const char *p = tpath(0, "locked.img");
	make_file(p, 64 * KiB, 0);
	char want[256];
	snprintf(want, sizeof(want), "%s: in use by another process (locked)", p);
	struct disk *a, *b, *c2;
	struct err e;

	/* A writer excludes everyone, within one process too (OFD locks). */
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &a, &e), 0);
	expect_open_fail(&(struct disk_config){.path = p}, -EBUSY, want);
	expect_open_fail(&(struct disk_config){.path = p, .readonly = true}, -EBUSY, want);
	expect_open_fail(&(struct disk_config){.path = p, .format = DISK_FORMAT_RAW, .readonly = true},
			 -EBUSY, want);
	disk_close(a);

	/* Readers share; a writer waits for all of them to go. */
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, true, DISK_CACHE_WRITEBACK, &a, &e), 0);
	assert_int_equal(open_disk(p, DISK_FORMAT_RAW, true, DISK_CACHE_WRITEBACK, &b, &e), 0);
	expect_open_fail(&(struct disk_config){.path = p}, -EBUSY, want);
	disk_close(a);
	expect_open_fail(&(struct disk_config){.path = p}, -EBUSY, want);
	disk_close(b);
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &c2, &e), 0);
	disk_close(c2);

	/* Another process sees the lock too. */
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &a, &e), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(p, O_RDONLY);
		struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
		_exit(fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES) ? 0
													 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	disk_close(a);
}

static void test_probe(void **state)
{
	char want[256];
	const char *q = tpath(0, "image.qcow2");
	/* A qcow2 header need not be a multiple of 512 long: the format check comes first. */
	for (int pass = 0; pass < 2; pass++) {
		make_file(q, pass ? 196608 : 1000, 0);
		int fd = open(q, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "QFI\xfb\0\0\0\3", 8, 0), 8);
		close(fd);
		/* Probed as qcow2, whose header checks then refuse it (cluster_bits 0). */
		snprintf(want, sizeof(want),
			 "%s: invalid qcow2 image: cluster size 2^0 (512 B to 2 MiB allowed)", q);
		expect_open_fail(&(struct disk_config){.path = q}, -EINVAL, want);
		expect_open_fail(&(struct disk_config){.path = q, .readonly = true}, -EINVAL, want);
		expect_open_fail(&(struct disk_config){.path = q, .format = DISK_FORMAT_QCOW2}, -EINVAL,
				 want);
	}
	/* format=raw is taken at its word: the guest sees the header bytes. */
	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(q, DISK_FORMAT_RAW, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	assert_int_equal(d->size, 196608);
	uint8_t buf[512];
	struct iovec v = {buf, sizeof(buf)};
	assert_int_equal(d->ops->preadv(d, &v, 1, 0), 0);
	assert_memory_equal(buf, "QFI\xfb", 4);
	disk_close(d);
	/* The lock is released on that failure path too. */
	assert_int_equal(open_disk(q, DISK_FORMAT_RAW, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	/* An explicit raw image may get any first sector, an image magic included. */
	assert_int_equal(d->ops->pwritev(d, &v, 1, 0), 0);
	disk_close(d);

	/*
	 * A probed raw image may not: the next probe would take it for another
	 * format (a qcow2 naming any host file as its backing file).
	 */
	const char *pr = tpath(1, "probed.raw");
	make_file(pr, 65536, 0);
	assert_int_equal(open_disk(pr, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	static const char *const magics[] = {"QFI\xfb", "QED", "KDMV", "vhdxfile", "conectix"};
	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, magics[i], strlen(magics[i]) + 1);
		assert_int_equal(d->ops->pwritev(d, &v, 1, 0), -EPERM);
		/* Anywhere else it is just data. */
		assert_int_equal(d->ops->pwritev(d, &v, 1, 512), 0);
	}
	/* Split across iovecs too. */
	struct iovec split[3] = {{buf, 2}, {buf + 2, 1}, {buf + 3, 509}};
	memcpy(buf, "QFI\xfb", 4);
	assert_int_equal(d->ops->pwritev(d, split, 3, 0), -EPERM);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(d->ops->pwritev(d, &v, 1, 0), 0);
	disk_close(d);
	uint8_t head[4];
	int hfd = open(pr, O_RDONLY);
	assert_int_equal(pread(hfd, head, 4, 0), 4);
	close(hfd);
	assert_memory_equal(head, "\xab\xab\xab\xab", 4);

	/* Close is not equal. */
	const char *r = tpath(0, "almost.img");
	make_file(r, 4096, 0);
	int fd = open(r, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "QFI\xfa", 4, 0), 4);
	close(fd);
	assert_int_equal(open_disk(r, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	disk_close(d);
}

/* ---- I/O ---- */

static void test_readonly(void **state)
{
	const char *p = tpath(0, "readonly.img");
	make_file(p, 64 * KiB, 7);
	uint8_t *before = file_bytes(p, 0, 64 * KiB);
	struct stat st0, st1;
	assert_int_equal(stat(p, &st0), 0);

	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, true, DISK_CACHE_WRITEBACK, &d, &e), 0);
	assert_true(d->readonly);
	assert_false(d->can_discard);
	uint8_t buf[4096];
	memset(buf, 0xAA, sizeof(buf));
	struct iovec v = {buf, sizeof(buf)};
	assert_int_equal(d->ops->pwritev(d, &v, 1, 0), -EROFS);
	assert_int_equal(d->ops->pwritev(d, &v, 1, 8192), -EROFS);
	assert_int_equal(d->ops->discard(d, 0, 8192), -EROFS);
	assert_int_equal(d->ops->write_zeroes(d, 0, 8192, true), -EROFS);
	assert_int_equal(d->ops->write_zeroes(d, 0, 8192, false), -EROFS);
	assert_int_equal(d->ops->flush(d), 0);
	assert_int_equal(d->ops->preadv(d, &v, 1, 4096), 0);
	assert_memory_equal(buf, before + 4096, sizeof(buf));
	disk_close(d);

	uint8_t *after = file_bytes(p, 0, 64 * KiB);
	assert_memory_equal(before, after, 64 * KiB);
	assert_int_equal(stat(p, &st1), 0);
	assert_int_equal(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	assert_int_equal(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	assert_int_equal(st0.st_blocks, st1.st_blocks);
	free(before);
	free(after);
}

/* Splits len bytes of buf into iovecs of awkward sizes (zero-length ones included). */
static int scatter(uint8_t *buf, size_t len, struct iovec *iov, int max, unsigned seed)
{
	static const size_t sizes[] = {1, 511, 0, 1000, 2, 4096, 3, 513, 0, 8191, 7, 65536};
	int n = 0;
	size_t done = 0;
	for (unsigned i = seed; done < len && n < max - 1; i++) {
		size_t s = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		if (s > len - done)
			s = len - done;
		iov[n++] = (struct iovec){buf + done, s};
		done += s;
	}
	if (done < len)
		iov[n++] = (struct iovec){buf + done, len - done};
	return n;
}

/* Writes and reads back through d with scattered vectors; checks the file directly too. */
static void roundtrip(struct disk *d, const char *path, uint64_t off, size_t len, unsigned seed)
{
	uint8_t *src = malloc(len + 1), *dst = malloc(len + 1);
	assert_non_null(src);
	assert_non_null(dst);
	/* +1: the vectors start at odd addresses. */
	fill(src + 1, len, seed, off);
	struct iovec iov[256];
	int n = scatter(src + 1, len, iov, 256, seed);
	assert_int_equal(d->ops->pwritev(d, iov, n, off), 0);
	memset(dst, 0, len + 1);
	n = scatter(dst + 1, len, iov, 256, seed + 5);
	assert_int_equal(d->ops->preadv(d, iov, n, off), 0);
	assert_memory_equal(src + 1, dst + 1, len);
	uint8_t *f = file_bytes(path, off, len);
	assert_memory_equal(src + 1, f, len);
	free(f);
	free(src);
	free(dst);
}

static void test_roundtrip(void **state)
{
	const char *p = tpath(0, "rw.img");
	make_file(p, 8 * MiB, 3);
	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	roundtrip(d, p, 0, 512, 11);
	roundtrip(d, p, 512, 512 * 3, 12);
	roundtrip(d, p, 3 * 4096 + 512, 200 * KiB + 512, 13);
	roundtrip(d, p, 8 * MiB - 4096, 4096, 14);
	roundtrip(d, p, MiB, 3 * MiB, 15);
	/* Data around the writes is untouched. */
	uint8_t *f = file_bytes(p, 4 * MiB, 4 * MiB - 4096);
	for (size_t i = 0; i < 4 * MiB - 4096; i++)
		if (f[i] != pat(3, 4 * MiB + i))
			fail_msg("byte %zu changed", (size_t)(4 * MiB + i));
	free(f);

	/* More iovecs than one preadv takes (IOV_MAX). */
	enum { N = 1500 };
	static struct iovec iov[N];
	static uint8_t big[N * 512], back[N * 512];
	fill(big, sizeof(big), 21, 0);
	for (int i = 0; i < N; i++)
		iov[i] = (struct iovec){big + i * 512, 512};
	assert_int_equal(d->ops->pwritev(d, iov, N, 2 * MiB), 0);
	for (int i = 0; i < N; i++)
		iov[i] = (struct iovec){back + i * 512, 512};
	assert_int_equal(d->ops->preadv(d, iov, N, 2 * MiB), 0);
	assert_memory_equal(big, back, sizeof(big));

	/* The second line of range checks. */
	uint8_t b[1024];
	struct iovec v = {b, sizeof(b)};
	assert_int_equal(d->ops->preadv(d, &v, 1, 8 * MiB - 512), -EINVAL);
	assert_int_equal(d->ops->pwritev(d, &v, 1, 8 * MiB), -EINVAL);
	assert_int_equal(d->ops->preadv(d, &v, 1, 100), -EINVAL);
	assert_int_equal(d->ops->discard(d, 8 * MiB, 512), -EINVAL);
	assert_int_equal(d->ops->write_zeroes(d, UINT64_MAX - 511, 1024, false), -EINVAL);
	assert_int_equal(d->ops->flush(d), 0);
	disk_close(d);
}

static uint64_t blocks_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return (uint64_t)st.st_blocks;
}

static void test_discard(void **state)
{
	const char *p = tpath(0, "discard.img");
	make_file(p, 4 * MiB, 5);
	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	uint64_t before = blocks_of(p);
	int r = d->ops->discard(d, MiB, 2 * MiB);
	if (r == -EOPNOTSUPP) {
		print_message("discard: %s (%s) has no holes; not checking deallocation\n", dir,
			      fs_name(dir));
		assert_false(d->can_discard);
		disk_close(d);
		return;
	}
	assert_int_equal(r, 0);
	assert_true(d->can_discard);
	assert_int_equal(d->ops->flush(d), 0);
	uint8_t *buf = malloc(4 * MiB);
	assert_non_null(buf);
	struct iovec v = {buf, 4 * MiB};
	assert_int_equal(d->ops->preadv(d, &v, 1, 0), 0);
	assert_true(all_zero(buf + MiB, 2 * MiB));
	for (size_t i = 0; i < MiB; i++) {
		assert_int_equal(buf[i], pat(5, i));
		assert_int_equal(buf[3 * MiB + i], pat(5, 3 * MiB + i));
	}
	uint64_t after = blocks_of(p);
	if (after + (2 * MiB / 512) > before) /* st_blocks counts 512-byte units */
		fail_msg("st_blocks %llu -> %llu on %s", (unsigned long long)before,
			 (unsigned long long)after, fs_name(dir));
	assert_int_equal(d->size, 4 * MiB);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4 * MiB); /* KEEP_SIZE */

	/* Discarding a single sector (less than a file system block) still reads back zeroes. */
	assert_int_equal(d->ops->discard(d, 512, 512), 0);
	assert_int_equal(d->ops->preadv(d, &v, 1, 0), 0);
	assert_true(all_zero(buf + 512, 512));
	assert_int_equal(buf[511], pat(5, 511));
	assert_int_equal(buf[1024], pat(5, 1024));
	assert_int_equal(d->ops->discard(d, 0, 0), 0);
	free(buf);
	disk_close(d);
}

static void test_write_zeroes(void **state)
{
	const char *p = tpath(0, "zeroes.img");
	make_file(p, 2 * MiB, 9);
	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	static const struct {
		uint64_t off, len;
		bool unmap;
	} z[] = {
	    {512, 1024, false},
	    {8192, 4096, true},
	    {MiB - 512, 64 * KiB + 1024, true},
	    {1536 * KiB, 256 * KiB, false},
	};
	uint8_t *model = malloc(2 * MiB), *buf = malloc(2 * MiB);
	assert_non_null(model);
	assert_non_null(buf);
	fill(model, 2 * MiB, 9, 0);
	for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
		assert_int_equal(d->ops->write_zeroes(d, z[i].off, z[i].len, z[i].unmap), 0);
		memset(model + z[i].off, 0, z[i].len);
	}
	struct iovec v = {buf, 2 * MiB};
	assert_int_equal(d->ops->preadv(d, &v, 1, 0), 0);
	assert_memory_equal(model, buf, 2 * MiB);
	uint8_t *f = file_bytes(p, 0, 2 * MiB);
	assert_memory_equal(model, f, 2 * MiB);
	free(f);
	free(model);
	free(buf);
	disk_close(d);
}

/*
 * cache=none where the file system has O_DIRECT: vectors of any alignment
 * work (aligned ones directly, others through a bounce buffer), and the data
 * is in the file. Where it has not, the open fails saying so.
 */
static void cache_none_in(const char *where)
{
	char p[128], want[256];
	snprintf(p, sizeof(p), "%s/kvmini-test-direct.%d", where, (int)getpid());
	make_file(p, 4 * MiB, 4);
	int fd = open(p, O_RDWR | O_DIRECT | O_CLOEXEC);
	struct err e;
	struct disk *d;
	if (fd < 0) {
		assert_int_equal(errno, EINVAL);
		print_message("cache=none: %s (%s) has no O_DIRECT\n", where, fs_name(where));
		snprintf(want, sizeof(want),
			 "%s: cache=none needs O_DIRECT, which this filesystem does not support", p);
		expect_open_fail(&(struct disk_config){.path = p, .cache = DISK_CACHE_NONE}, -EINVAL, want);
		expect_open_fail(&(struct disk_config){.path = p, .cache = DISK_CACHE_NONE, .readonly = true},
				 -EINVAL, want);
		unlink(p);
		return;
	}
	close(fd);
	print_message("cache=none: %s (%s) has O_DIRECT\n", where, fs_name(where));
	assert_int_equal(open_disk(p, DISK_FORMAT_AUTO, false, DISK_CACHE_NONE, &d, &e), 0);
	assert_true(d->align >= 1 && d->align <= 64 * KiB);
	assert_int_equal(d->block_size, 512);
	roundtrip(d, p, 0, 512, 31);
	roundtrip(d, p, 512, 512, 32);
	roundtrip(d, p, 4096 + 1536, 100 * KiB + 512, 33);
	roundtrip(d, p, 512, 3 * MiB, 34); /* bounce buffer in several pieces */
	/* Page-aligned whole blocks go straight through. */
	uint8_t *a = NULL;
	assert_int_equal(posix_memalign((void **)&a, 4096, 64 * KiB), 0);
	fill(a, 64 * KiB, 35, MiB);
	struct iovec v[2] = {{a, 32 * KiB}, {a + 32 * KiB, 32 * KiB}};
	assert_int_equal(d->ops->pwritev(d, v, 2, MiB), 0);
	uint8_t *f = file_bytes(p, MiB, 64 * KiB);
	assert_memory_equal(a, f, 64 * KiB);
	free(f);
	memset(a, 0, 64 * KiB);
	assert_int_equal(d->ops->preadv(d, v, 2, MiB), 0);
	for (size_t i = 0; i < 64 * KiB; i++)
		assert_int_equal(a[i], pat(35, MiB + i));
	free(a);
	assert_int_equal(d->ops->write_zeroes(d, 3 * MiB, 8192, false), 0);
	f = file_bytes(p, 3 * MiB - 512, 8192 + 1024);
	assert_int_equal(f[511], pat(34, 3 * MiB - 1)); /* from the 3 MiB roundtrip */
	assert_true(all_zero(f + 512, 8192));
	assert_int_equal(f[8192 + 512], pat(4, 3 * MiB + 8192));
	free(f);
	assert_int_equal(d->ops->flush(d), 0);
	disk_close(d);
	/* Read-only works as well. */
	assert_int_equal(open_disk(p, DISK_FORMAT_RAW, true, DISK_CACHE_NONE, &d, &e), 0);
	{
		uint8_t *b = malloc(4097);
		assert_non_null(b);
		struct iovec rv = {b + 1, 4096};
		assert_int_equal(d->ops->preadv(d, &rv, 1, 4096), 0);
		f = file_bytes(p, 4096, 4096);
		assert_memory_equal(b + 1, f, 4096);
		free(f);
		free(b);
	}
	disk_close(d);
	unlink(p);
}

static void test_cache_none(void **state)
{
	/* procfs files are regular files without O_DIRECT, wherever we run. */
	int fd = open("/proc/version", O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL)
		expect_open_fail(
		    &(struct disk_config){
			.path = "/proc/version", .readonly = true, .cache = DISK_CACHE_NONE},
		    -EINVAL,
		    "/proc/version: cache=none needs O_DIRECT, which this filesystem does not support");
	else if (fd >= 0)
		close(fd);
	cache_none_in(dir);
	struct statfs a, b;
	if (statfs("/dev/shm", &b) == 0 && statfs(dir, &a) == 0 && a.f_type != b.f_type)
		cache_none_in("/dev/shm");
}

/* ---- the bounce and read-modify-write paths, with 4 KiB alignment forced on a plain fd ---- */

static struct disk *forced_open(const char *p, uint64_t size)
{
	int fd = open(p, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct raw_params rp = {
	    .fd = fd, .size = size, .aligned_io = true, .mem_align = 4096, .off_align = 4096};
	struct disk *d;
	struct err e = {{0}};
	assert_int_equal(raw_open(&rp, p, &d, &e), 0);
	assert_int_equal(d->align, 4096);
	assert_int_equal(d->block_size, 512);
	return d;
}

static void test_forced_alignment(void **state)
{
	const char *p = tpath(0, "forced.img");
	const uint64_t size = 8 * MiB;
	make_file(p, size, 6);
	struct disk *d = forced_open(p, size);
	uint8_t *model = malloc(size);
	assert_non_null(model);
	fill(model, size, 6, 0);
	static const struct {
		uint64_t off;
		size_t len;
	} w[] = {
	    {512, 512},		       /* inside one block: read-modify-write */
	    {3584, 3 * 512},	       /* across a block boundary, partial at both ends */
	    {8192, 4096},	       /* a whole block, from an unaligned buffer */
	    {4096 * 5 + 512, 2 * MiB}, /* several bounce pieces, partial head and tail */
	    {size - 1024, 1024},       /* the end of the disk */
	    {0, 512},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		roundtrip(d, p, w[i].off, w[i].len, 40 + (unsigned)i);
		fill(model + w[i].off, w[i].len, 40 + (unsigned)i, w[i].off);
	}
	assert_int_equal(d->ops->write_zeroes(d, 4096 + 512, 1024, false), 0);
	memset(model + 4096 + 512, 0, 1024);
	uint8_t *f = file_bytes(p, 0, size);
	assert_memory_equal(model, f, size);
	free(f);
	free(model);
	disk_close(d);
}

/* Threads writing interleaved sectors of the same 4 KiB blocks must not undo each other. */
struct rmw_arg {
	struct disk *d;
	unsigned t, nthreads, rounds;
	uint64_t size;
	int err;
};

static void *rmw_thread(void *arg)
{
	struct rmw_arg *a = arg;
	uint8_t buf[512];
	for (unsigned r = 0; r < a->rounds && !a->err; r++)
		for (uint64_t s = a->t; s * 512 < a->size && !a->err; s += a->nthreads) {
			memset(buf, (int)(1 + a->t * 16 + r % 16), sizeof(buf));
			struct iovec v = {buf, sizeof(buf)};
			a->err = a->d->ops->pwritev(a->d, &v, 1, s * 512);
		}
	return NULL;
}

static void test_forced_alignment_threads(void **state)
{
	const char *p = tpath(0, "threads.img");
	const uint64_t size = 64 * KiB;
	make_file(p, size, 0);
	struct disk *d = forced_open(p, size);
	enum { T = 8, ROUNDS = 40 };
	pthread_t th[T];
	struct rmw_arg a[T];
	for (unsigned t = 0; t < T; t++) {
		a[t] = (struct rmw_arg){d, t, T, ROUNDS, size, 0};
		assert_int_equal(pthread_create(&th[t], NULL, rmw_thread, &a[t]), 0);
	}
	for (unsigned t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(a[t].err, 0);
	}
	uint8_t *f = file_bytes(p, 0, size);
	for (uint64_t s = 0; s < size / 512; s++) {
		uint8_t want = (uint8_t)(1 + (s % T) * 16 + (ROUNDS - 1) % 16);
		for (int i = 0; i < 512; i++)
			if (f[s * 512 + i] != want)
				fail_msg("sector %llu byte %d: %u, wanted %u", (unsigned long long)s, i,
					 f[s * 512 + i], want);
	}
	free(f);
	disk_close(d);
}

/* ---- libkvmini: disks open before the machine and close with the VM ---- */

static int create_vm(const char *kernel, const char *const *disks, unsigned n, char *msg, size_t len)
{
	static struct kvmini_config cfg;
	kvmini_config_init(&cfg);
	cfg.kernel_path = kernel;
	cfg.kvm_device = tpath(3, "no-kvm-here"); /* machine creation fails right after the disks */
	for (unsigned i = 0; i < n; i++)
		snprintf(cfg.disks[i].path, sizeof(cfg.disks[i].path), "%s", disks[i]);
	cfg.ndisks = n;
	struct kvmini_vm *vm = (struct kvmini_vm *)1;
	msg[0] = '\0';
	int r = kvmini_vm_create(&cfg, &vm, msg, len);
	assert_null(vm);
	return r;
}

static void test_vm_create(void **state)
{
	const char *kernel = tpath(0, "kernel"), *a = tpath(1, "vm-a.img"), *odd = tpath(2, "vm-odd.img");
	make_file(kernel, 4096, 1);
	make_file(a, MiB, 0);
	make_file(odd, 1000, 0);
	char msg[512], want[512];

	snprintf(want, sizeof(want), "%s: size 1000 is not a multiple of 512", odd);
	assert_int_equal(create_vm(kernel, (const char *[]){a, odd}, 2, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, want);

	char alias[256];
	snprintf(alias, sizeof(alias), "%s/./vm-a.img", dir);
	snprintf(want, sizeof(want), "%s: given twice (vda and vdb)", alias);
	assert_int_equal(create_vm(kernel, (const char *[]){a, alias}, 2, msg, sizeof(msg)), -EBUSY);
	assert_string_equal(msg, want);

	/* Past the disks, the machine fails; the disks are closed again (their locks gone). */
	assert_true(create_vm(kernel, (const char *[]){a}, 1, msg, sizeof(msg)) < 0);
	assert_non_null(strstr(msg, "no-kvm-here"));
	struct disk *d;
	struct err e;
	assert_int_equal(open_disk(a, DISK_FORMAT_AUTO, false, DISK_CACHE_WRITEBACK, &d, &e), 0);
	disk_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_sizes),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_lock),
	    cmocka_unit_test(test_probe),
	    cmocka_unit_test(test_readonly),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_discard),
	    cmocka_unit_test(test_write_zeroes),
	    cmocka_unit_test(test_cache_none),
	    cmocka_unit_test(test_forced_alignment),
	    cmocka_unit_test(test_forced_alignment_threads),
	    cmocka_unit_test(test_vm_create),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
