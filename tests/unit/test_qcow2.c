/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the qcow2 backend (devices/disk/qcow2*.c), only through the
 * interface of devices/disk/disk.h, with qemu-img (qemu-utils) as the
 * reference: it makes the images, converts them back to raw, checks them
 * (qemu-img check) and compares them with a model of what was written
 * (qemu-img compare). Tests that need qemu-img skip when it is missing.
 *
 * Every failure names its case ("[read: cluster_size=512] ..."): the matrix
 * entry, and where it helps the command that made the image. Each test works
 * in its own directory under one mkdtemp() directory in /tmp, removed at the
 * end.
 *
 * Every matrix case runs in a child process with a watchdog, so that a crash,
 * a sanitizer report or a hang fails that case (named) and the others still
 * run; the test then fails listing them. Hostile images are opened in a
 * further child with an address-space limit, so that a huge allocation fails
 * too. TEST_QCOW2_FILTER=test_growth runs one test; TEST_QCOW2_VERBOSE=1
 * prints each case as it starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/disk/disk.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#include <sanitizer/lsan_interface.h>
#define CASE_TIMEOUT 240 /* seconds a case may take */
#else
#define CASE_TIMEOUT 60
#endif

#define KiB	      1024ull
#define MiB	      (1024ull * 1024ull)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define U(x)	      ((unsigned long long)(x))
#define FAIL(...)     failf(__VA_ARGS__)
#define NEED_QEMU()                                                                                          \
	do {                                                                                                 \
		if (!have_qemu) {                                                                            \
			print_message("qemu-img not found: skipped (install qemu-utils)\n");                 \
			skip();                                                                              \
		}                                                                                            \
	} while (0)

static char dir[64];		/* this run's temporary directory */
static char sub[128];		/* the running test's directory under it */
static bool have_qemu;		/* qemu-img and qemu-io are on PATH */
static char cur_case[256] = ""; /* what failure messages name */
static char out[16384];		/* the last command's output */
static char last_cmd[4096];

static bool in_case;	 /* in a case's child process */
static int case_fd = -1; /* where it sends its failure message */

/* Fails the case: in a case's child, by message to the parent and exit; else through cmocka. */
static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void failf(const char *fmt, ...)
{
	static char m[8192];
	int n = snprintf(m, sizeof(m), "[%s] ", cur_case);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m + n, sizeof(m) - (size_t)n, fmt, ap);
	va_end(ap);
	if (in_case) {
		fflush(NULL);
		if (write(case_fd, m, strlen(m)) < 0) {
		}
		_exit(1);
	}
	fail_msg("%s", m);
	abort();
}

/* cmocka's assertions would longjmp inside a case's child: these go through failf. */
#undef assert_true
#define assert_true(c) ((c) ? (void)0 : failf("%s:%d: %s is false", __FILE__, __LINE__, #c))
#undef assert_non_null
#define assert_non_null(p) assert_true((p) != NULL)
#undef assert_int_equal
#define assert_int_equal(a, b)                                                                               \
	do {                                                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);                                          \
		if (a_ != b_)                                                                                \
			failf("%s:%d: %s is %lld, expected %s (%lld)", __FILE__, __LINE__, #a, a_, #b, b_);  \
	} while (0)

static void set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_case(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cur_case, sizeof(cur_case), fmt, ap);
	va_end(ap);
	if (getenv("TEST_QCOW2_VERBOSE")) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		print_message("%ld.%03ld %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000, cur_case);
	}
}

/* sub/name, in a buffer that lives until the next call with the same slot. */
static const char *tp(int slot, const char *name)
{
	static char buf[8][256];
	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", sub, name);
	return buf[slot];
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

/* A fresh directory for the test, dir/name (the previous one is removed). */
static void enter(const char *name)
{
	if (sub[0])
		nftw(sub, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(sub, sizeof(sub), "%s/%s", dir, name);
	assert_int_equal(mkdir(sub, 0755), 0);
	set_case("%s", name);
}

/* ---- cases in child processes ---- */

static unsigned n_failed;
static char failed[4096]; /* the failed cases' names */

static void on_alarm(int sig)
{
	char m[512];
	int n = snprintf(m, sizeof(m), "[%s] no result after %d s: a hang", cur_case, CASE_TIMEOUT);
	if (write(case_fd, m, (size_t)n) < 0) {
	}
	_exit(1);
}

/*
 * Runs fn(arg) as the case name in a child process, with a watchdog. A
 * failure is printed at once and counted; end_cases() fails the test.
 */
static void run_case(void (*fn)(const void *), const void *arg, const char *name)
{
	set_case("%s", name);
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		in_case = true;
		case_fd = p[1];
		signal(SIGALRM, on_alarm);
		alarm(CASE_TIMEOUT);
		fn(arg);
		alarm(0);
#ifdef UNDER_ASAN
		if (__lsan_do_recoverable_leak_check())
			FAIL("memory leaked (LeakSanitizer's report above)");
#endif
		fflush(NULL);
		_exit(0);
	}
	close(p[1]);
	static char msg[8192];
	size_t got = 0;
	for (ssize_t n; got < sizeof(msg) - 1 && (n = read(p[0], msg + got, sizeof(msg) - 1 - got)) > 0;)
		got += (size_t)n;
	msg[got] = '\0';
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !got)
		return;
	if (!got && WIFSIGNALED(st))
		snprintf(msg, sizeof(msg), "[%s] killed by signal %d (%s)", name, WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else if (!got)
		snprintf(msg, sizeof(msg), "[%s] exited with status %d (a sanitizer report above?)", name,
			 WEXITSTATUS(st));
	print_error("%s\n", msg);
	n_failed++;
	snprintf(failed + strlen(failed), sizeof(failed) - strlen(failed), "%s'%s'", n_failed > 1 ? ", " : "",
		 name);
}

static void end_cases(void)
{
	set_case("%s", "");
	if (n_failed) {
		unsigned n = n_failed;
		n_failed = 0;
		static char list[sizeof(failed)];
		memcpy(list, failed, sizeof(list));
		failed[0] = '\0';
		fail_msg("%u case(s) failed (messages above): %s", n, list);
	}
}

/* ---- shell commands ---- */

/* Runs the command with sh in sub; its output goes to out. The exit status, or 128 + signal. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_cmd, sizeof(last_cmd), fmt, ap);
	va_end(ap);
	char full[sizeof(last_cmd) + 300];
	snprintf(full, sizeof(full), "cd %s && ( %s ) 2>&1", sub, last_cmd);
	fflush(stdout);
	FILE *f = popen(full, "r");
	if (!f)
		FAIL("popen: %s", strerror(errno));
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	char sink[4096];
	while (fread(sink, 1, sizeof(sink), f) > 0) {
	}
	int st = pclose(f);
	if (st < 0)
		FAIL("pclose: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The command must succeed. */
#define MUST(...)                                                                                            \
	do {                                                                                                 \
		int st_ = run(__VA_ARGS__);                                                                  \
		if (st_)                                                                                     \
			FAIL("`%s` exited %d:\n%s", last_cmd, st_, out);                                     \
	} while (0)

/* ---- files ---- */

static uint64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		FAIL("stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

static uint8_t *slurp(const char *path, uint64_t *len)
{
	uint64_t n = file_size(path);
	uint8_t *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (uint64_t done = 0; done < n;) {
		ssize_t r = pread(fd, buf + done, n - done, (off_t)done);
		assert_true(r > 0);
		done += (uint64_t)r;
	}
	close(fd);
	*len = n;
	return buf;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	static const uint8_t z[4096];
	while (len) {
		size_t n = len < sizeof(z) ? len : sizeof(z);
		if (memcmp(p, z, n))
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/* Writes buf to path as a sparse file: blocks of zeroes stay holes. */
static void spew(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	for (uint64_t off = 0; off < len; off += 4096) {
		size_t n = len - off < 4096 ? (size_t)(len - off) : 4096;
		if (!all_zero(buf + off, n))
			assert_int_equal(pwrite(fd, buf + off, n, (off_t)off), (ssize_t)n);
	}
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	uint64_t n;
	uint8_t *b = slurp(from, &n);
	spew(to, b, n);
	free(b);
}

static uint64_t rd_be(int fd, uint64_t off, int n)
{
	uint8_t b[8];
	assert_int_equal(pread(fd, b, (size_t)n, (off_t)off), n);
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

static void wr_be(int fd, uint64_t off, uint64_t v, int n)
{
	uint8_t b[8];
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	assert_int_equal(pwrite(fd, b, (size_t)n, (off_t)off), n);
}

/* ---- the qcow2 header, as far as the tests patch and inspect images ---- */

struct qh {
	uint32_t version, cluster_bits, l1_size, rt_clusters, refcount_order;
	uint64_t cs, size, l1_off, rt_off, incompat;
	bool ext_l2;
};

static void qhdr(int fd, struct qh *h)
{
	h->version = (uint32_t)rd_be(fd, 4, 4);
	h->cluster_bits = (uint32_t)rd_be(fd, 20, 4);
	h->cs = 1ull << h->cluster_bits;
	h->size = rd_be(fd, 24, 8);
	h->l1_size = (uint32_t)rd_be(fd, 36, 4);
	h->l1_off = rd_be(fd, 40, 8);
	h->rt_off = rd_be(fd, 48, 8);
	h->rt_clusters = (uint32_t)rd_be(fd, 56, 4);
	h->incompat = h->version >= 3 ? rd_be(fd, 72, 8) : 0;
	h->refcount_order = h->version >= 3 ? (uint32_t)rd_be(fd, 96, 4) : 4;
	h->ext_l2 = h->incompat & 16;
}

static void qhdr_path(const char *path, struct qh *h)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	qhdr(fd, h);
	close(fd);
}

#define L1_OFFSET_MASK 0x00fffffffffffe00ull
#define L2_OFFSET_MASK 0x00fffffffffffe00ull
#define L2_COMPRESSED  (1ull << 62)

/* The file offset of the L2 entry for guest offset g (the L2 table must exist). */
static uint64_t l2_pos(int fd, const struct qh *h, uint64_t g)
{
	uint64_t per = h->cs / (h->ext_l2 ? 16 : 8), c = g >> h->cluster_bits;
	uint64_t l2 = rd_be(fd, h->l1_off + 8 * (c / per), 8) & L1_OFFSET_MASK;
	if (!l2)
		FAIL("test setup: guest offset %#llx has no L2 table", U(g));
	return l2 + (c % per) * (h->ext_l2 ? 16 : 8);
}

/* The file offset of the (16-bit) refcount of the cluster at host offset off. */
static uint64_t refcount_pos(int fd, const struct qh *h, uint64_t off)
{
	assert_int_equal(h->refcount_order, 4);
	uint64_t per = h->cs / 2, c = off >> h->cluster_bits;
	uint64_t rb = rd_be(fd, h->rt_off + 8 * (c / per), 8) & ~(h->cs - 1);
	if (!rb)
		FAIL("test setup: host offset %#llx has no refcount block", U(off));
	return rb + 2 * (c % per);
}

/* How many L2 entries of the image describe compressed clusters. */
static unsigned count_compressed(const char *path)
{
	struct qh h;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	qhdr(fd, &h);
	unsigned n = 0, esz = h.ext_l2 ? 16 : 8;
	uint8_t *l2 = malloc(h.cs);
	assert_non_null(l2);
	for (uint32_t i = 0; i < h.l1_size; i++) {
		uint64_t t = rd_be(fd, h.l1_off + 8 * i, 8) & L1_OFFSET_MASK;
		if (!t)
			continue;
		assert_int_equal(pread(fd, l2, h.cs, (off_t)t), (ssize_t)h.cs);
		for (uint64_t j = 0; j < h.cs; j += esz)
			n += (l2[j] >> 6) & 1; /* bit 62 of the big-endian entry */
	}
	free(l2);
	close(fd);
	return n;
}

/* ---- contents ---- */

static uint64_t rng(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
	return n ? rng(s) % n : 0;
}

/* The byte at offset off of pattern seed: not zero, not periodic in 512. */
static uint8_t pat(uint64_t seed, uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
	x ^= x >> 29;
	return (uint8_t)(x | 1);
}

/*
 * Creates a raw image of size bytes at path and returns its contents: runs of
 * random data, of compressible text, of zeroes written out, holes, and
 * single sectors with a few bytes in holes; run lengths are multiples of 512
 * that do not line up with clusters.
 */
static uint8_t *make_source(const char *path, uint64_t size, uint64_t seed)
{
	uint8_t *buf = calloc(size, 1);
	assert_non_null(buf);
	uint64_t s = seed * 0x9E3779B97F4A7C15ull | 1;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (uint64_t off = 0; off < size;) {
		uint64_t len = (1 + rnd(&s, 128)) * 512 * (rnd(&s, 5) ? 1 : 8);
		if (len > size - off)
			len = size - off;
		unsigned kind = (unsigned)rnd(&s, 20);
		bool write_it = true;
		if (kind < 5) { /* random */
			for (uint64_t i = 0; i < len; i += 8) {
				uint64_t v = rng(&s);
				memcpy(buf + off + i, &v, 8);
			}
		} else if (kind < 13) { /* text */
			uint64_t line = rng(&s) % 1000;
			for (uint64_t i = 0; i < len;) {
				char t[64];
				int n = snprintf(t, sizeof(t), "kvmini %08llx line %llu\n", U(off + i),
						 U(line++));
				for (int k = 0; k < n && i < len; k++)
					buf[off + i++] = (uint8_t)t[k];
			}
		} else if (kind < 15) { /* zeroes, written */
		} else if (kind < 17) { /* an island: a few bytes in a sector of a hole */
			uint64_t at = off + rnd(&s, len / 512) * 512 + rnd(&s, 400);
			for (int i = 0; i < 100; i++)
				buf[at + i] = pat(seed, at + i);
			assert_int_equal(pwrite(fd, buf + at, 100, (off_t)at), 100);
			write_it = false;
		} else { /* hole */
			write_it = false;
		}
		if (write_it)
			assert_int_equal(pwrite(fd, buf + off, len, (off_t)off), (ssize_t)len);
		off += len;
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
	return buf;
}

/* ---- I/O through the interface ---- */

static struct disk *open_cfg(const struct disk_config *c)
{
	struct disk *d = NULL;
	struct err e;
	err_clear(&e);
	int r = disk_open(c, &d, &e);
	if (r)
		FAIL("disk_open(%s, %s%s) failed: %d (%s): %s", c->path,
		     c->readonly ? "readonly" : "read-write", c->no_backing ? ", backing=off" : "", r,
		     strerror(-r), err_msg(&e));
	assert_non_null(d);
	if (d->readonly != c->readonly)
		FAIL("disk_open(%s): readonly is %d", c->path, d->readonly);
	if (d->block_size != 512)
		FAIL("disk_open(%s): block_size %u", c->path, d->block_size);
	return d;
}

static struct disk *open_ok(const char *path, bool ro, bool no_backing)
{
	return open_cfg(&(struct disk_config){.path = path, .readonly = ro, .no_backing = no_backing});
}

/* Splits len bytes of buf into iovecs of awkward sizes (zero-length ones included). */
static int scatter(uint8_t *buf, size_t len, struct iovec *iov, int max, unsigned seed)
{
	static const size_t sizes[] = {1, 511, 0, 1000, 2, 4096, 3, 513, 0, 8191, 7, 65536, 512, 131072};
	int n = 0;
	size_t done = 0;
	for (unsigned i = seed; done < len && n < max - 1; i++) {
		size_t s = sizes[i % ARRAY_SIZE(sizes)];
		if (s > len - done)
			s = len - done;
		iov[n++] = (struct iovec){buf + done, s};
		done += s;
	}
	if (done < len)
		iov[n++] = (struct iovec){buf + done, len - done};
	return n;
}

/* Reads [off, off + len) through d in odd vectors; it must equal want + off. */
static void check_range(struct disk *d, const uint8_t *want, uint64_t off, uint64_t len, unsigned split)
{
	uint8_t *b = malloc(len + 1);
	assert_non_null(b);
	memset(b, 0xa5, len + 1);
	struct iovec iov[48];
	int n = scatter(b + 1, len, iov, 48, split);
	int r = d->ops->preadv(d, iov, n, off);
	if (r)
		FAIL("preadv [%#llx, +%#llx) in %d vectors: %d (%s)", U(off), U(len), n, r, strerror(-r));
	if (memcmp(b + 1, want + off, len)) {
		uint64_t first = 0, diff = 0;
		for (uint64_t i = len; i-- > 0;)
			if (b[1 + i] != want[off + i]) {
				first = i;
				diff++;
			}
		FAIL("preadv [%#llx, +%#llx): byte at disk offset %#llx is %#x, expected %#x (%llu bytes "
		     "differ)",
		     U(off), U(len), U(off + first), b[1 + first], want[off + first], U(diff));
	}
	free(b);
}

/* Reads the whole disk in pieces of many sizes (offsets not aligned to clusters), then at random. */
static void verify_all(struct disk *d, const uint8_t *want, uint64_t size, uint64_t seed)
{
	static const uint64_t lens[] = {512,	1536,	 4608, 65024, 66560,	     1024,
					262656, 1051136, 3584, 2560,  2 * MiB + 512, 131072};
	if (d->size != size)
		FAIL("size %llu, expected %llu", U(d->size), U(size));
	unsigned i = 0;
	for (uint64_t off = 0; off < size; i++) {
		uint64_t len = lens[i % ARRAY_SIZE(lens)];
		if (len > size - off)
			len = size - off;
		check_range(d, want, off, len, i);
		off += len;
	}
	uint64_t s = seed | 1;
	for (unsigned k = 0; k < 40; k++) {
		uint64_t off = rnd(&s, size / 512) * 512;
		uint64_t max = (size - off) / 512;
		check_range(d, want, off, (1 + rnd(&s, max < 600 ? max : 600)) * 512, k);
	}
	check_range(d, want, size - 512, 512, 3);
}

/* A workload: operations applied to the disk and to a model of its contents. */
struct wl {
	struct disk *d;
	uint8_t *model;
	uint64_t size, cluster, s;
	unsigned op;
	unsigned discarded, discard_unsupported;
};

static void wl_write(struct wl *w, uint64_t off, uint64_t len)
{
	uint8_t *b = malloc(len + 1);
	assert_non_null(b);
	uint64_t seed = rng(&w->s);
	bool zero = rnd(&w->s, 16) == 0; /* zeroes written as data */
	for (uint64_t i = 0; i < len; i++)
		b[1 + i] = zero ? 0 : pat(seed, i);
	struct iovec iov[48];
	int n = scatter(b + 1, len, iov, 48, w->op);
	int r = w->d->ops->pwritev(w->d, iov, n, off);
	if (r)
		FAIL("op %u: pwritev [%#llx, +%#llx) in %d vectors: %d (%s)", w->op, U(off), U(len), n, r,
		     strerror(-r));
	memcpy(w->model + off, b + 1, len);
	free(b);
}

static void wl_zeroes(struct wl *w, uint64_t off, uint64_t len, bool unmap)
{
	int r = w->d->ops->write_zeroes(w->d, off, len, unmap);
	if (r)
		FAIL("op %u: write_zeroes [%#llx, +%#llx, unmap=%d): %d (%s)", w->op, U(off), U(len), unmap,
		     r, strerror(-r));
	memset(w->model + off, 0, len);
}

/* Discard may be refused with -EOPNOTSUPP (nothing changes); when it succeeds the range reads zeroes. */
static void wl_discard(struct wl *w, uint64_t off, uint64_t len)
{
	int r = w->d->ops->discard(w->d, off, len);
	if (r == -EOPNOTSUPP) {
		w->discard_unsupported++;
		return;
	}
	if (r)
		FAIL("op %u: discard [%#llx, +%#llx): %d (%s)", w->op, U(off), U(len), r, strerror(-r));
	w->discarded++;
	memset(w->model + off, 0, len);
}

static void wl_flush(struct wl *w)
{
	int r = w->d->ops->flush(w->d);
	if (r)
		FAIL("op %u: flush: %d (%s)", w->op, r, strerror(-r));
}

static uint64_t wl_len(struct wl *w)
{
	uint64_t sectors;
	switch (rnd(&w->s, 4)) {
	case 0:
	case 1:
		sectors = 1 + rnd(&w->s, 16);
		break;
	case 2:
		sectors = 1 + rnd(&w->s, 2 * w->cluster / 512);
		break;
	default:
		sectors = 1 + rnd(&w->s, 1024);
		break;
	}
	return sectors * 512 < w->size ? sectors * 512 : w->size;
}

/* A sector-aligned offset for len bytes: anywhere, at a cluster, or straddling a cluster boundary. */
static uint64_t wl_off(struct wl *w, uint64_t len)
{
	uint64_t max = w->size - len, off;
	uint64_t nc = w->size / w->cluster;
	switch (rnd(&w->s, 3)) {
	case 0:
		off = rnd(&w->s, max / 512 + 1) * 512;
		break;
	case 1:
		off = rnd(&w->s, nc) * w->cluster;
		break;
	default:
		off = (1 + rnd(&w->s, nc)) * w->cluster;
		off = off > 512 * 4 ? off - 512 * (1 + rnd(&w->s, 4)) : 0;
		break;
	}
	return off > max ? max & ~511ull : off;
}

static void random_ops(struct wl *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		w->op++;
		uint64_t len = wl_len(w), off = wl_off(w, len);
		unsigned k = (unsigned)rnd(&w->s, 20);
		if (k < 10)
			wl_write(w, off, len);
		else if (k < 12)
			wl_zeroes(w, off, len, true);
		else if (k < 14)
			wl_zeroes(w, off, len, false);
		else if (k < 16)
			wl_discard(w, off, len);
		else if (k < 19)
			check_range(w->d, w->model, off, len, w->op);
		else
			wl_flush(w);
	}
}

static uint64_t cluster_of(const char *img)
{
	struct qh h;
	qhdr_path(img, &h);
	return h.cs;
}

/*
 * After a clean close: qemu-img check finds nothing, qemu-img compare finds the
 * model, the dirty bit is clear, and the backend reads the model back.
 */
static void finish_check(const char *img, const uint8_t *model, uint64_t size)
{
	int st = run("qemu-img check %s", img);
	if (st)
		FAIL("`%s` exited %d after a clean close:\n%s", last_cmd, st, out);
	const char *m = tp(7, "model.raw");
	spew(m, model, size);
	st = run("qemu-img compare -f qcow2 -F raw %s %s", img, m);
	if (st)
		FAIL("`%s` (image against the model of what was written) exited %d:\n%s", last_cmd, st, out);
	struct qh h;
	qhdr_path(img, &h);
	if (h.incompat & 1)
		FAIL("the dirty bit is still set after a clean close");
	struct disk *d = open_ok(img, true, false);
	verify_all(d, model, size, 77);
	disk_close(d);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	strcpy(dir, "/tmp/kvmini-test-qc.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	have_qemu = system("qemu-img --version >/dev/null 2>&1 && qemu-io --version >/dev/null 2>&1") == 0;
	if (!have_qemu)
		fprintf(stderr, "test_qcow2: qemu-img/qemu-io not found: the tests that need them skip\n");
	return 0;
}

static int group_teardown(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- reading: images qemu-img made, across the format's options ---- */

static const struct rcase {
	const char *name;
	const char *opts; /* qemu-img -o */
	bool compress;	  /* qemu-img convert -c */
	bool empty;	  /* qemu-img create instead of convert */
	const char *io;	  /* qemu-io commands applied afterwards */
} rcases[] = {
    {.name = "compat=0.10", .opts = "compat=0.10"},
    {.name = "compat=1.1", .opts = "compat=1.1"},
    {.name = "compat=0.10,cluster_size=512", .opts = "compat=0.10,cluster_size=512"},
    {.name = "cluster_size=512", .opts = "cluster_size=512"},
    {.name = "cluster_size=4k", .opts = "cluster_size=4096"},
    {.name = "cluster_size=2M", .opts = "cluster_size=2M"},
    {.name = "refcount_bits=1", .opts = "refcount_bits=1"},
    {.name = "refcount_bits=16,cluster_size=4k", .opts = "refcount_bits=16,cluster_size=4096"},
    {.name = "refcount_bits=64", .opts = "refcount_bits=64"},
    {.name = "refcount_bits=64,cluster_size=512", .opts = "refcount_bits=64,cluster_size=512"},
    {.name = "-c zlib", .opts = "compression_type=zlib", .compress = true},
    {.name = "-c zstd", .opts = "compression_type=zstd", .compress = true},
    {.name = "-c zlib cluster_size=512", .opts = "compression_type=zlib,cluster_size=512", .compress = true},
    {.name = "-c zstd cluster_size=4k", .opts = "compression_type=zstd,cluster_size=4096", .compress = true},
    {.name = "-c compat=0.10", .opts = "compat=0.10", .compress = true},
    {.name = "-c zlib cluster_size=2M", .opts = "cluster_size=2M", .compress = true},
    {.name = "-c zstd extended_l2", .opts = "compression_type=zstd,extended_l2=on", .compress = true},
    {.name = "extended_l2=on", .opts = "extended_l2=on"},
    {.name = "extended_l2=on,cluster_size=2M", .opts = "extended_l2=on,cluster_size=2M"},
    {.name = "preallocation=metadata", .opts = "preallocation=metadata"},
    {.name = "preallocation=metadata,compat=0.10",
     .opts = "preallocation=metadata,compat=0.10,cluster_size=4096"},
    {.name = "preallocation=falloc", .opts = "preallocation=falloc"},
    {.name = "preallocation=full", .opts = "preallocation=full,cluster_size=4096"},
    {.name = "lazy_refcounts=on", .opts = "lazy_refcounts=on"},
    /* Zero clusters (with and without a host cluster), discards and partial writes by qemu. */
    {.name = "v3 zero clusters (qemu-io)",
     .opts = "cluster_size=65536",
     .io = "-c 'write -z 64k 64k' -c 'write -z -u 192k 128k' -c 'discard 448k 64k' "
	   "-c 'write -P 0x5a 1000k 1k' -c 'write -z 2052k 3k' -c 'write -P 0x33 4608k 4k' "
	   "-c 'write -z 0 512'"},
    {.name = "v2 after qemu-io",
     .opts = "compat=0.10,cluster_size=4096",
     .io = "-c 'write -z 64k 64k' -c 'discard 448k 64k' -c 'write -P 0x5a 1000k 1k'"},
    /* Subclusters (2 KiB): allocated, zero and unallocated ones within a cluster. */
    {.name = "extended_l2 subclusters (qemu-io)",
     .opts = "extended_l2=on",
     .io = "-c 'write -z 66k 2k' -c 'write -z -u 130k 6k' -c 'discard 256k 32k' -c 'write -P 0x77 3000k 512' "
	   "-c 'write -P 0x78 3074k 3k' -c 'write -z 4096k 62k' -c 'write -P 0x79 1k 1k'"},
    {.name = "extended_l2 empty + qemu-io",
     .opts = "extended_l2=on,cluster_size=32k",
     .empty = true,
     .io = "-c 'write -P 0x11 1k 1k' -c 'write -P 0x12 33k 7k' -c 'write -z 64k 32k' "
	   "-c 'write -P 0x13 100k 2k' -c 'write -z 101k 512' -c 'write -P 0x14 5119k 1k'"},
    {.name = "compressed, then qemu-io",
     .opts = "cluster_size=4096",
     .compress = true,
     .io = "-c 'write -P 0x21 1k 1k' -c 'write -z 8k 4k' -c 'discard 16k 8k' -c 'write -P 0x22 70k 3k'"},
};

/* What the cases of a test share (set before the cases run, read in their children). */
static uint8_t *g_src;
static uint64_t g_size;

static void read_case(const void *arg)
{
	const struct rcase *c = arg;
	size_t i = (size_t)(c - rcases);
	const uint64_t size = g_size;
	char name[32], refname[32];
	snprintf(name, sizeof(name), "r%02zu.img", i);
	snprintf(refname, sizeof(refname), "r%02zu.raw", i);
	const char *img = tp(1, name), *ref = tp(2, refname);
	set_case("read: %s (qemu-img %s%s -o %s%s%s)", c->name, c->empty ? "create" : "convert -O qcow2",
		 c->compress ? " -c" : "", c->opts, c->io ? ", qemu-io " : "", c->io ? c->io : "");
	if (c->empty)
		MUST("qemu-img create -q -f qcow2 -o %s %s %llu", c->opts, img, U(size));
	else
		MUST("qemu-img convert -O qcow2 %s-o %s src.raw %s", c->compress ? "-c " : "", c->opts, img);
	const uint8_t *w = g_src;
	uint8_t *ref_buf = NULL;
	if (c->io) {
		MUST("qemu-io -f qcow2 %s %s", c->io, img);
		MUST("qemu-img convert -O raw %s %s", img, ref);
		uint64_t n;
		ref_buf = slurp(ref, &n);
		assert_int_equal(n, size);
		w = ref_buf;
	}
	if (c->compress && !count_compressed(img))
		FAIL("test setup: no compressed cluster in the image");
	struct disk *d = open_ok(img, true, false);
	verify_all(d, w, size, i);
	disk_close(d);
	/* Explicit format, read-write, no writes: the image stays clean. */
	d = open_cfg(&(struct disk_config){.path = img, .format = DISK_FORMAT_QCOW2});
	check_range(d, w, 0, size, 5);
	check_range(d, w, 512, size - 1024, 6);
	assert_int_equal(d->ops->flush(d), 0);
	disk_close(d);
	int st = run("qemu-img check %s", img);
	if (st)
		FAIL("`%s` exited %d after a read-write open without writes:\n%s", last_cmd, st, out);
	free(ref_buf);
	unlink(img);
	unlink(ref);
}

static void test_read_matrix(void **state)
{
	NEED_QEMU();
	enter("read");
	g_size = 5 * MiB + 1536;
	g_src = make_source(tp(0, "src.raw"), g_size, 1);
	for (size_t i = 0; i < ARRAY_SIZE(rcases); i++)
		run_case(read_case, &rcases[i], rcases[i].name);
	free(g_src);
	end_cases();
}

/* ---- read-only ---- */

static void readonly_case(const void *arg)
{
	const uint64_t size = 2 * MiB;
	const char *src = tp(0, "src.raw"), *img = tp(1, "ro.img");
	uint8_t *want = make_source(src, size, 2);
	MUST("qemu-img convert -O qcow2 -o cluster_size=4096,lazy_refcounts=on %s %s", src, img);
	uint64_t n0, n1;
	uint8_t *before = slurp(img, &n0);
	struct stat st0, st1;
	assert_int_equal(stat(img, &st0), 0);
	for (int pass = 0; pass < 2; pass++) {
		struct disk *d = open_cfg(&(struct disk_config){
		    .path = img, .readonly = true, .format = pass ? DISK_FORMAT_QCOW2 : DISK_FORMAT_AUTO});
		assert_true(d->readonly);
		assert_int_equal(d->size, size);
		uint8_t buf[8192];
		memset(buf, 0x5a, sizeof(buf));
		struct iovec v = {buf, sizeof(buf)};
		int r;
		if ((r = d->ops->pwritev(d, &v, 1, 0)) != -EROFS)
			FAIL("pwritev at 0 on a read-only disk: %d, expected -EROFS", r);
		if ((r = d->ops->pwritev(d, &v, 1, MiB + 4096)) != -EROFS) /* unallocated */
			FAIL("pwritev at 1M+4k on a read-only disk: %d, expected -EROFS", r);
		if ((r = d->ops->discard(d, 0, 65536)) != -EROFS)
			FAIL("discard on a read-only disk: %d, expected -EROFS", r);
		if ((r = d->ops->write_zeroes(d, 0, 8192, true)) != -EROFS)
			FAIL("write_zeroes(unmap) on a read-only disk: %d, expected -EROFS", r);
		if ((r = d->ops->write_zeroes(d, 4096, 8192, false)) != -EROFS)
			FAIL("write_zeroes on a read-only disk: %d, expected -EROFS", r);
		if ((r = d->ops->flush(d)) != 0)
			FAIL("flush on a read-only disk: %d", r);
		verify_all(d, want, size, 1);
		disk_close(d);
	}
	uint8_t *after = slurp(img, &n1);
	assert_int_equal(stat(img, &st1), 0);
	if (n0 != n1 || memcmp(before, after, n0))
		FAIL("a read-only open changed the file");
	if (st0.st_mtim.tv_sec != st1.st_mtim.tv_sec || st0.st_mtim.tv_nsec != st1.st_mtim.tv_nsec)
		FAIL("a read-only open changed the file's mtime");
	free(before);
	free(after);
	free(want);
}

static void test_readonly(void **state)
{
	NEED_QEMU();
	enter("readonly");
	run_case(readonly_case, NULL, "readonly: -EROFS, the file unchanged");
	end_cases();
}

/* ---- writing ---- */

static const struct wcase {
	const char *name;
	const char *opts;
	bool compress, empty, snapshot;
	bool tiny_cache; /* config.cache_size 1: the smallest metadata cache, evicting all the time */
} wcases[] = {
    {.name = "compat=1.1", .opts = "compat=1.1"},
    {.name = "compat=0.10", .opts = "compat=0.10"},
    {.name = "cluster_size=512", .opts = "cluster_size=512"},
    {.name = "compat=0.10,cluster_size=512 empty", .opts = "compat=0.10,cluster_size=512", .empty = true},
    {.name = "cluster_size=4k,refcount_bits=1", .opts = "cluster_size=4096,refcount_bits=1"},
    {.name = "cluster_size=4k,refcount_bits=64 empty",
     .opts = "cluster_size=4096,refcount_bits=64",
     .empty = true},
    {.name = "cluster_size=512,refcount_bits=64", .opts = "cluster_size=512,refcount_bits=64"},
    {.name = "cluster_size=512,refcount_bits=1 empty",
     .opts = "cluster_size=512,refcount_bits=1",
     .empty = true},
    {.name = "cluster_size=2M", .opts = "cluster_size=2M"},
    {.name = "extended_l2=on", .opts = "extended_l2=on"},
    {.name = "extended_l2=on,cluster_size=16k empty",
     .opts = "extended_l2=on,cluster_size=16384",
     .empty = true},
    {.name = "lazy_refcounts=on", .opts = "lazy_refcounts=on,cluster_size=4096"},
    {.name = "preallocation=metadata", .opts = "preallocation=metadata,cluster_size=4096"},
    {.name = "preallocation=falloc", .opts = "preallocation=falloc"},
    {.name = "-c zlib cluster_size=4k", .opts = "compression_type=zlib,cluster_size=4096", .compress = true},
    {.name = "-c zstd", .opts = "compression_type=zstd", .compress = true},
    {.name = "-c compat=0.10", .opts = "compat=0.10", .compress = true},
    {.name = "-c zstd extended_l2", .opts = "compression_type=zstd,extended_l2=on", .compress = true},
    {.name = "cluster_size=512, tiny metadata cache", .opts = "cluster_size=512", .tiny_cache = true},
    {.name = "cluster_size=4k,refcount_bits=64, tiny metadata cache",
     .opts = "cluster_size=4096,refcount_bits=64",
     .empty = true,
     .tiny_cache = true},
    {.name = "snapshot", .opts = "cluster_size=65536", .snapshot = true},
    {.name = "snapshot compat=0.10 cluster_size=4k",
     .opts = "compat=0.10,cluster_size=4096",
     .snapshot = true},
    {.name = "snapshot -c cluster_size=4k", .opts = "cluster_size=4096", .compress = true, .snapshot = true},
    {.name = "snapshot extended_l2", .opts = "extended_l2=on", .snapshot = true},
    {.name = "snapshot refcount_bits=64 cluster_size=512",
     .opts = "refcount_bits=64,cluster_size=512",
     .snapshot = true},
};

static void write_case(const void *arg)
{
	const struct wcase *c = arg;
	size_t i = (size_t)(c - wcases);
	const uint64_t size = g_size;
	char name[32];
	snprintf(name, sizeof(name), "w%02zu.img", i);
	const char *img = tp(1, name), *snap = tp(2, "snap.raw");
	set_case("write: %s (qemu-img %s%s -o %s%s%s)", c->name, c->empty ? "create" : "convert -O qcow2",
		 c->compress ? " -c" : "", c->opts, c->snapshot ? "; qemu-img snapshot -c snap" : "",
		 c->tiny_cache ? "; cache_size=1" : "");
	if (c->empty)
		MUST("qemu-img create -q -f qcow2 -o %s %s %llu", c->opts, img, U(size));
	else
		MUST("qemu-img convert -O qcow2 %s-o %s src.raw %s", c->compress ? "-c " : "", c->opts, img);
	if (c->snapshot)
		MUST("qemu-img snapshot -c snap %s", img);
	if (c->compress && !count_compressed(img))
		FAIL("test setup: no compressed cluster in the image");
	uint8_t *model = malloc(size);
	assert_non_null(model);
	if (c->empty)
		memset(model, 0, size);
	else
		memcpy(model, g_src, size);
	struct disk *d = open_cfg(&(struct disk_config){.path = img, .cache_size = c->tiny_cache ? 1 : 0});
	struct wl w = {.d = d, .model = model, .size = size, .cluster = cluster_of(img), .s = 7 + i};
	/* First partial writes into every kind of cluster near the start, then at random. */
	for (uint64_t off = 0; off < 64 * w.cluster && off + 4096 <= size; off += w.cluster + 1536) {
		w.op++;
		wl_write(&w, off, 1024);
	}
	random_ops(&w, 150);
	verify_all(d, model, size, i);
	wl_flush(&w);
	disk_close(d);
	if (w.discard_unsupported)
		print_message("[%s] %u of %u discards refused with EOPNOTSUPP\n", cur_case,
			      w.discard_unsupported, w.discard_unsupported + w.discarded);
	finish_check(img, model, size);
	if (c->snapshot) {
		if (run("qemu-img snapshot -l %s", img) || !strstr(out, "snap"))
			FAIL("the snapshot is gone: `%s`:\n%s", last_cmd, out);
		MUST("qemu-img convert -l snapshot.name=snap -O raw %s %s", img, snap);
		uint64_t n;
		uint8_t *sb = slurp(snap, &n);
		if (n != size || memcmp(sb, g_src, size))
			FAIL("the snapshot's data changed");
		free(sb);
		unlink(snap);
	}
	free(model);
	unlink(img);
}

static void test_write_matrix(void **state)
{
	NEED_QEMU();
	enter("write");
	g_size = 8 * MiB;
	g_src = make_source(tp(0, "src.raw"), g_size, 3);
	for (size_t i = 0; i < ARRAY_SIZE(wcases); i++)
		run_case(write_case, &wcases[i], wcases[i].name);
	free(g_src);
	end_cases();
}

/*
 * Small clusters over a 256 MiB disk, one sector written every stride bytes:
 * L2 tables, refcount blocks and (with 512-byte clusters and 16 or 64 bit
 * refcounts) the refcount table itself must grow.
 */
static const struct gcase {
	const char *name, *opts;
	uint64_t stride;
	bool table_grows, tiny_cache;
} gcases[] = {
    {"cluster_size=512,refcount_bits=16", "cluster_size=512", 16 * KiB, true, false},
    {"cluster_size=512,refcount_bits=64", "cluster_size=512,refcount_bits=64", 64 * KiB, true, false},
    {"cluster_size=512,refcount_bits=1", "cluster_size=512,refcount_bits=1", 32 * KiB, false, false},
    {"cluster_size=512,compat=0.10", "cluster_size=512,compat=0.10", 16 * KiB, true, false},
    {"cluster_size=4k,refcount_bits=16", "cluster_size=4096", 64 * KiB, false, false},
    {"cluster_size=4k,refcount_bits=64", "cluster_size=4096,refcount_bits=64", 64 * KiB, false, false},
    {"cluster_size=512,refcount_bits=64, tiny metadata cache", "cluster_size=512,refcount_bits=64", 64 * KiB,
     true, true},
};

static void growth_case(const void *arg)
{
	const struct gcase *c = arg;
	size_t i = (size_t)(c - gcases);
	const uint64_t size = 256 * MiB;
	const char *img = tp(0, "g.img"), *m = tp(1, "model.raw");
	{
		unlink(img);
		set_case("growth: %s (qemu-img create -f qcow2 -o %s 256M; 512 bytes every %llu KiB)",
			 c->name, c->opts, U(c->stride / KiB));
		MUST("qemu-img create -q -f qcow2 -o %s %s %llu", c->opts, img, U(size));
		int mfd = open(m, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(mfd >= 0);
		assert_int_equal(ftruncate(mfd, (off_t)size), 0);
		struct disk *d =
		    open_cfg(&(struct disk_config){.path = img, .cache_size = c->tiny_cache ? 1 : 0});
		uint8_t buf[512], back[512];
		uint64_t k = 0;
		for (uint64_t base = 0; base < size; base += c->stride, k++) {
			uint64_t off = base + (k * 7 % (c->stride / 512)) * 512;
			for (int j = 0; j < 512; j++)
				buf[j] = pat(i, off + (uint64_t)j);
			struct iovec v = {buf, 512};
			int r = d->ops->pwritev(d, &v, 1, off);
			if (r)
				FAIL("pwritev of 512 bytes at %#llx (write %llu): %d (%s)", U(off), U(k), r,
				     strerror(-r));
			assert_int_equal(pwrite(mfd, buf, 512, (off_t)off), 512);
		}
		k = 0;
		for (uint64_t base = 0; base < size; base += c->stride, k++) {
			uint64_t off = base + (k * 7 % (c->stride / 512)) * 512;
			struct iovec v = {back, 512};
			int r = d->ops->preadv(d, &v, 1, off);
			if (r)
				FAIL("preadv of 512 bytes at %#llx: %d (%s)", U(off), r, strerror(-r));
			for (int j = 0; j < 512; j++)
				if (back[j] != pat(i, off + (uint64_t)j))
					FAIL("byte at %#llx is %#x, expected %#x", U(off + (uint64_t)j),
					     back[j], pat(i, off + (uint64_t)j));
		}
		assert_int_equal(d->ops->flush(d), 0);
		disk_close(d);
		close(mfd);
		int st = run("qemu-img check %s", img);
		if (st)
			FAIL("`%s` exited %d after a clean close:\n%s", last_cmd, st, out);
		st = run("qemu-img compare -f qcow2 -F raw %s %s", img, m);
		if (st)
			FAIL("`%s` exited %d:\n%s", last_cmd, st, out);
		struct qh h;
		qhdr_path(img, &h);
		if (c->table_grows && h.rt_clusters < 2)
			FAIL("test setup: the refcount table did not grow (%u clusters, file %llu bytes)",
			     h.rt_clusters, U(file_size(img)));
		if (h.incompat & 1)
			FAIL("the dirty bit is still set after a clean close");
		unlink(img);
		unlink(m);
	}
}

static void test_growth(void **state)
{
	NEED_QEMU();
	enter("growth");
	for (size_t i = 0; i < ARRAY_SIZE(gcases); i++)
		run_case(growth_case, &gcases[i], gcases[i].name);
	end_cases();
}

/*
 * Several threads writing 1 KiB pieces at once, each its own pieces but the
 * same clusters (4 KiB: every cluster has a piece of each thread), some of
 * them over a backing file (copy-on-write of one cluster racing with itself).
 */
struct tharg {
	struct disk *d;
	uint8_t *model;
	uint64_t size;
	unsigned t, nthreads, n;
	int err;
	uint64_t err_off;
	const char *what;
};

static void *writer(void *p)
{
	struct tharg *a = p;
	uint64_t s = 0x1234567ull * (a->t + 1), chunks = a->size / KiB / a->nthreads;
	uint8_t buf[KiB], back[KiB];
	for (unsigned i = 0; i < a->n && !a->err; i++) {
		uint64_t off = (rnd(&s, chunks) * a->nthreads + a->t) * KiB;
		for (unsigned j = 0; j < KiB; j++)
			buf[j] = pat(i * 16 + a->t, off + j);
		struct iovec v = {buf, KiB};
		int r = a->d->ops->pwritev(a->d, &v, 1, off);
		if (r) {
			a->err = r, a->err_off = off, a->what = "pwritev";
			break;
		}
		memcpy(a->model + off, buf, KiB);
		if (i % 4 == 0) {
			struct iovec b = {back, KiB};
			r = a->d->ops->preadv(a->d, &b, 1, off);
			if (r || memcmp(back, buf, KiB)) {
				a->err = r ? r : -EILSEQ, a->err_off = off;
				a->what = r ? "preadv" : "preadv right after pwritev (wrong data)";
			}
		}
	}
	return NULL;
}

static const struct thcase {
	const char *name, *opts;
	bool backing;
} thcases[] = {
    {"cluster_size=4k", "cluster_size=4096", false},
    {"cluster_size=4k over raw backing", "cluster_size=4096", true},
    {"extended_l2 cluster_size=16k over raw backing", "extended_l2=on,cluster_size=16384", true},
    {"cluster_size=512,refcount_bits=1", "cluster_size=512,refcount_bits=1", false},
};

static void threads_case(const void *arg)
{
	const struct thcase *c = arg;
	size_t i = (size_t)(c - thcases);
	const uint64_t size = g_size;
	const char *img = tp(1, "t.img");
	set_case("threads: %s (qemu-img create -o %s%s)", c->name, c->opts, c->backing ? " -b base.raw" : "");
	if (c->backing)
		MUST("qemu-img create -q -f qcow2 -o %s -b base.raw -F raw %s", c->opts, img);
	else
		MUST("qemu-img create -q -f qcow2 -o %s %s %llu", c->opts, img, U(size));
	uint8_t *model = malloc(size);
	assert_non_null(model);
	if (c->backing)
		memcpy(model, g_src, size);
	else
		memset(model, 0, size);
	struct disk *d = open_ok(img, false, false);
	enum { T = 4 };
	pthread_t th[T];
	struct tharg a[T];
	for (unsigned t = 0; t < T; t++) {
		a[t] = (struct tharg){.d = d, .model = model, .size = size, .t = t, .nthreads = T, .n = 1500};
		assert_int_equal(pthread_create(&th[t], NULL, writer, &a[t]), 0);
	}
	for (unsigned t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	for (unsigned t = 0; t < T; t++)
		if (a[t].err)
			FAIL("thread %u: %s at %#llx: %d (%s)", t, a[t].what, U(a[t].err_off), a[t].err,
			     strerror(-a[t].err));
	verify_all(d, model, size, i);
	disk_close(d);
	finish_check(img, model, size);
	free(model);
	unlink(img);
}

static void test_threads(void **state)
{
	NEED_QEMU();
	enter("threads");
	g_size = 8 * MiB;
	g_src = make_source(tp(0, "base.raw"), g_size, 4);
	for (size_t i = 0; i < ARRAY_SIZE(thcases); i++)
		run_case(threads_case, &thcases[i], thcases[i].name);
	free(g_src);
	end_cases();
}

/* ---- backing chains ---- */

static const struct chcase {
	const char *name;
	const char *mid;     /* qcow2 -o of the middle image; NULL: the top is right over the raw base */
	bool mid_compressed; /* the middle image made by qemu-img convert -c -B base.raw */
	const char *top;     /* qcow2 -o of the top image (6 MiB: bigger than the 4 MiB backing) */
	const char *top_io;  /* qemu-io commands on the top image; NULL: TOP_IO */
} chcases[] = {
    {.name = "4k over 64k over raw", .mid = "cluster_size=65536", .top = "cluster_size=4096"},
    {.name = "compat=0.10,512 over 64k over raw",
     .mid = "cluster_size=65536",
     .top = "compat=0.10,cluster_size=512"},
    {.name = "extended_l2 over 4k over raw", .mid = "cluster_size=4096", .top = "extended_l2=on"},
    /* Cluster 1 (2-4 MiB) stays unallocated in the top. */
    {.name = "2M over compressed 4k over raw",
     .mid = "cluster_size=4096",
     .mid_compressed = true,
     .top = "cluster_size=2M",
     .top_io = "-c 'write -P 0x21 6144 1024' -c 'write -z 200704 8192' -c 'write -P 0x23 5242880 4096'"},
    {.name = "4k over raw", .top = "cluster_size=4096"},
    {.name = "extended_l2 16k over raw", .top = "extended_l2=on,cluster_size=16384"},
};

/* The copy-on-write cases every chain goes through before random operations. */
static void cow_ops(struct wl *w)
{
	uint64_t c = w->cluster > 128 * KiB ? 128 * KiB : w->cluster; /* 2M: all within clusters 0-2 */
	w->op++, wl_write(w, 512, 512);				      /* inside cluster 0 */
	w->op++, wl_write(w, 3 * c - 1024, 1536);		      /* across clusters 2 and 3 */
	w->op++, wl_write(w, 10 * c + 1024, 1024);		      /* subcluster-sized */
	w->op++, wl_write(w, 4 * MiB - 1024, 2048);		      /* across the end of the backing file */
	w->op++, wl_write(w, 5 * MiB + 512, 512);		      /* beyond it */
	w->op++, wl_zeroes(w, 20 * c + 512, 1024, false);	      /* zeroes inside a backed cluster */
	w->op++, wl_zeroes(w, 24 * c, 2 * c, true);		      /* whole clusters */
	w->op++, wl_discard(w, 30 * c, c);	     /* a whole cluster: zeroes, not backing data */
	w->op++, wl_discard(w, 40 * c + 1024, 1024); /* part of one */
	w->op++, wl_write(w, 3 * MiB + 512, 512 < c ? c - 512 : 512); /* all but a sector */
}

static const char *MID_IO =
    "-c 'write -P 0x11 4096 8192' -c 'write -z 131072 65536' -c 'write -P 0x12 1048064 "
    "1024' -c 'discard 2097152 131072' -c 'write -P 0x13 3999744 4096'";
static const char *TOP_IO =
    "-c 'write -P 0x21 6144 1024' -c 'write -P 0x22 65536 4096' -c 'write -z 200704 8192' "
    "-c 'write -P 0x23 5242880 4096' -c 'write -z -u 1048576 65536' "
    "-c 'discard 2097152 65536' -c 'write -P 0x24 3146240 1536'";

static void backing_case(const void *arg)
{
	const struct chcase *c = arg;
	size_t i = (size_t)(c - chcases);
	const uint64_t base_size = 4 * MiB, size = 6 * MiB;
	{
		/* A directory of its own (this child's sub only). */
		char chain[sizeof(sub) + 32];
		snprintf(chain, sizeof(chain), "%s/chain%zu", sub, i);
		assert_true(strlen(chain) < sizeof(sub));
		assert_int_equal(mkdir(chain, 0755), 0);
		snprintf(sub, sizeof(sub), "%.127s", chain);
		const char *top = tp(0, "top.img"), *ref = tp(1, "ref.raw"), *mid = tp(2, "mid.img");
		const char *base = tp(3, "base.raw");
		free(make_source(base, base_size, 10 + i));
		const char *below = "base.raw", *below_fmt = "raw";
		if (c->mid && c->mid_compressed) {
			uint8_t *s2 = make_source(tp(4, "src2.raw"), base_size, 30 + i);
			free(s2);
			MUST("qemu-img convert -c -O qcow2 -o %s -B base.raw -F raw src2.raw mid.img",
			     c->mid);
			if (!count_compressed(mid))
				FAIL("test setup: no compressed cluster in the middle image");
		} else if (c->mid) {
			MUST("qemu-img create -q -f qcow2 -o %s -b base.raw -F raw mid.img", c->mid);
			MUST("qemu-io -f qcow2 %s mid.img", MID_IO);
		}
		if (c->mid)
			below = "mid.img", below_fmt = "qcow2";
		MUST("qemu-img create -q -f qcow2 -o %s -b %s -F %s top.img %llu", c->top, below, below_fmt,
		     U(size));
		MUST("qemu-io -f qcow2 %s top.img", c->top_io ? c->top_io : TOP_IO);
		set_case("backing: %s (top: -o %s -b %s)", c->name, c->top, below);
		MUST("qemu-img convert -O raw top.img ref.raw");
		uint64_t n;
		uint8_t *want = slurp(ref, &n);
		assert_int_equal(n, size);

		/* Reading the chain, opened by a path relative to neither the image nor the cwd. */
		struct disk *d = open_ok(top, true, false);
		verify_all(d, want, size, i);
		disk_close(d);

		/* backing=off: what qemu reads once the backing file is gone from the header. */
		MUST("cp top.img nb.img && qemu-img rebase -u -b '' nb.img && qemu-img convert -O raw nb.img "
		     "refnb.raw");
		uint8_t *want_nb = slurp(tp(4, "refnb.raw"), &n);
		assert_int_equal(n, size);
		if (!memcmp(want, want_nb, size))
			FAIL("test setup: backing=off reads the same as the chain");
		d = open_ok(top, true, true);
		verify_all(d, want_nb, size, i + 100);
		disk_close(d);
		free(want_nb);

		/* Writing the top: copy-on-write from the chain; the images below stay as they were. */
		uint64_t nb0, nm0 = 0;
		uint8_t *base0 = slurp(base, &nb0), *mid0 = c->mid ? slurp(mid, &nm0) : NULL;
		d = open_ok(top, false, false);
		struct wl w = {.d = d, .model = want, .size = size, .cluster = cluster_of(top), .s = 99 + i};
		cow_ops(&w);
		verify_all(d, want, size, i + 200);
		random_ops(&w, 80);
		verify_all(d, want, size, i + 300);
		disk_close(d);
		uint64_t nb1, nm1 = 0;
		uint8_t *base1 = slurp(base, &nb1), *mid1 = c->mid ? slurp(mid, &nm1) : NULL;
		if (nb0 != nb1 || memcmp(base0, base1, nb0))
			FAIL("writing the top image changed base.raw");
		if (c->mid && (nm0 != nm1 || memcmp(mid0, mid1, nm0)))
			FAIL("writing the top image changed mid.img");
		finish_check(top, want, size);
		free(base0);
		free(base1);
		free(mid0);
		free(mid1);
		free(want);
		MUST("rm -f *.img *.raw");
	}
}

static void test_backing(void **state)
{
	NEED_QEMU();
	enter("backing");
	for (size_t i = 0; i < ARRAY_SIZE(chcases); i++)
		run_case(backing_case, &chcases[i], chcases[i].name);
	end_cases();
}

/* ---- hostile images, opened in a child ---- */

struct child_res {
	int open_rc, op_rc, read_rc;
	bool opened, op_done, read_differs;
	double secs;
	char msg[512];
};

enum expect {
	OPEN_FAILS,	      /* disk_open fails */
	OPEN_OR_READ_FAILS,   /* disk_open fails, or the read at io_off does */
	OPEN_OR_WRITE_FAILS,  /* disk_open (read-write) fails, or the write at io_off does */
	OPENS_AND_READS_FAIL, /* disk_open works, the read at io_off fails */
	WRITE_READS_BACK,     /* disk_open (read-write), the write or the read after it may fail; if
				 both work, the read returns what was written */
};

struct child_job {
	struct disk_config cfg;
	enum expect expect;
	uint64_t io_off, io_len;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The address space this process uses now (VmSize), in bytes. */
static uint64_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", (unsigned long long *)&kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static void child_body(const struct child_job *j, struct child_res *r)
{
	struct disk *d = NULL;
	struct err e;
	err_clear(&e);
	double t0 = now();
	r->open_rc = disk_open(&j->cfg, &d, &e);
	r->secs = now() - t0;
	snprintf(r->msg, sizeof(r->msg), "%s", err_msg(&e));
	if (r->open_rc)
		return;
	r->opened = true;
	if (j->expect != OPEN_FAILS && j->io_off + j->io_len <= d->size) {
		uint8_t *b = malloc(j->io_len);
		if (!b)
			goto out;
		memset(b, 0x3c, j->io_len);
		struct iovec v = {b, j->io_len};
		if (j->expect == OPEN_OR_WRITE_FAILS) {
			r->op_rc = d->ops->pwritev(d, &v, 1, j->io_off);
			if (!r->op_rc)
				r->op_rc = d->ops->flush(d);
		} else if (j->expect == WRITE_READS_BACK) {
			r->op_rc = d->ops->pwritev(d, &v, 1, j->io_off);
			uint8_t *back = calloc(1, j->io_len);
			struct iovec bv = {back, j->io_len};
			if (back && !r->op_rc && !(r->read_rc = d->ops->preadv(d, &bv, 1, j->io_off)))
				r->read_differs = memcmp(b, back, j->io_len) != 0;
			free(back);
		} else {
			r->op_rc = d->ops->preadv(d, &v, 1, j->io_off);
		}
		r->op_done = true;
		free(b);
	}
out:
	disk_close(d);
}

/*
 * Runs the job in a child that may use at most 1 GiB more address space than
 * now and 20 s. Returns "" or what went wrong with the child itself.
 */
static const char *in_child(const struct child_job *j, struct child_res *r)
{
	static char why[256];
	int p[2];
	assert_int_equal(pipe(p), 0);
	uint64_t limit = vm_size() + 1024 * MiB;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGALRM};
		for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
			signal(sigs[i], SIG_DFL);
		close(p[0]);
		struct rlimit rl = {limit, limit};
		setrlimit(RLIMIT_AS, &rl);
		alarm(20);
		struct child_res res = {0};
		child_body(j, &res);
		ssize_t n = write(p[1], &res, sizeof(res));
		_exit(n == (ssize_t)sizeof(res) ? 0 : 3);
	}
	close(p[1]);
	memset(r, 0, sizeof(*r));
	size_t got = 0;
	while (got < sizeof(*r)) {
		ssize_t n = read(p[0], (char *)r + got, sizeof(*r) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	why[0] = '\0';
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "the child was killed by signal %d (%s)%s", WTERMSIG(st),
			 strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? ": a hang (20 s)" : "");
	else if (WEXITSTATUS(st) || got != sizeof(*r))
		snprintf(why, sizeof(why),
			 "the child exited with status %d without a result (a sanitizer report or an "
			 "allocation over 1 GiB: see above)",
			 WEXITSTATUS(st));
	return why;
}

/* msg, without the image's path, contains one of the keywords (case-insensitive); none given: any. */
static bool names_problem(const char *msg, const char *path, const char *const *kw)
{
	char m[512];
	snprintf(m, sizeof(m), "%s", msg);
	char *p;
	while ((p = strstr(m, path)))
		memmove(p, p + strlen(path), strlen(p + strlen(path)) + 1);
	if (!kw[0])
		return m[0] != '\0';
	for (; *kw; kw++)
		if (strcasestr(m, *kw))
			return true;
	return false;
}

static void expect_child(const struct child_job *j, const char *const *kw, double max_secs)
{
	struct child_res r;
	const char *why = in_child(j, &r);
	if (*why)
		FAIL("%s", why);
	if (r.open_rc > 0)
		FAIL("disk_open returned %d", r.open_rc);
	if (r.open_rc < 0) {
		if (j->expect == OPENS_AND_READS_FAIL)
			FAIL("disk_open failed (%d: %s), but the image opens in qemu and should open here",
			     r.open_rc, r.msg);
		if (!strstr(r.msg, j->cfg.path))
			FAIL("disk_open failed (%d) with a message without the path: '%s'", r.open_rc, r.msg);
		if (!names_problem(r.msg, j->cfg.path, kw)) {
			char list[256] = "";
			for (const char *const *k = kw; *k; k++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s'%s'",
					 k == kw ? "" : " or ", *k);
			FAIL("disk_open failed (%d) but the message does not name the problem (%s): '%s'",
			     r.open_rc, list, r.msg);
		}
		if (r.secs > max_secs)
			FAIL("disk_open took %.1f s to fail", r.secs);
		return;
	}
	if (j->expect == OPEN_FAILS)
		FAIL("disk_open accepted the image%s", j->cfg.readonly ? " (read-only)" : " (read-write)");
	if (j->expect == WRITE_READS_BACK) {
		if (r.read_differs)
			FAIL("the write of %llu bytes at %#llx returned 0, and so did the read after it, but "
			     "the read "
			     "returned other data",
			     U(j->io_len), U(j->io_off));
		return;
	}
	if (!r.op_done)
		FAIL("disk_open accepted the image with a virtual size too small to try I/O at %#llx",
		     U(j->io_off));
	if (r.op_rc >= 0)
		FAIL("disk_open accepted the image and the %s of %llu bytes at %#llx returned %d",
		     j->expect == OPEN_OR_WRITE_FAILS ? "write" : "read", U(j->io_len), U(j->io_off),
		     r.op_rc);
}

typedef void (*patch_fn)(int fd, const struct qh *h, uint64_t fsize);

static void p_magic(int fd, const struct qh *h, uint64_t fs)
{
	assert_int_equal(pwrite(fd, "QFI\xfa", 4, 0), 4);
}
static void p_version1(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 4, 1, 4);
}
static void p_version4(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 4, 4, 4);
}
static void p_cbits8(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 20, 8, 4);
}
static void p_cbits22(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 20, 22, 4);
}
static void p_incompat37(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 72, h->incompat | 1ull << 37, 8);
}
static void p_crypt1(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 32, 1, 4);
}
static void p_crypt2(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 32, 2, 4);
}
static void p_datafile(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 72, h->incompat | 4, 8);
}
static void p_corrupt(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 72, h->incompat | 2, 8);
}
static void p_comptype(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 72, h->incompat | 8, 8);
	wr_be(fd, 104, 7, 1);
}
static void p_l1huge(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 36, 0x7fffffff, 4);
}
static void p_l1small(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 24, 64ull << 30, 8); /* 64 GiB: the one-entry L1 table covers 2 MiB */
}
static void p_l1eof(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 40, (fs + MiB) & ~(h->cs - 1), 8);
}
static void p_l1unaligned(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 40, h->l1_off + 8, 8);
}
static void p_l2unaligned(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t e = rd_be(fd, h->l1_off, 8);
	wr_be(fd, h->l1_off, e + 512, 8);
}
static void p_l2eof(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t e = rd_be(fd, h->l1_off, 8);
	wr_be(fd, h->l1_off, (e & ~L1_OFFSET_MASK) | ((fs + 16 * h->cs) & ~(h->cs - 1)), 8);
}
static void p_dataunaligned(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t pos = l2_pos(fd, h, 0), e = rd_be(fd, pos, 8);
	wr_be(fd, pos, e + 512, 8);
}
static void p_dataeof(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t pos = l2_pos(fd, h, 0), e = rd_be(fd, pos, 8);
	wr_be(fd, pos, (e & ~L2_OFFSET_MASK) | ((fs + 64 * MiB) & ~(h->cs - 1)), 8);
}
static void p_rt0(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 48, 0, 8);
}
static void p_rtunaligned(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 48, h->rt_off + 512, 8);
}
static void p_rthuge(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 56, 0x7fffffff, 4);
}
static void p_rbeof(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, h->rt_off, (fs + 16 * h->cs) & ~(h->cs - 1), 8);
}
static void p_rorder7(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 96, 7, 4);
}
static void p_size_odd(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 24, h->size + 100, 8);
}
static void p_trunc_cluster(int fd, const struct qh *h, uint64_t fs)
{
	assert_int_equal(ftruncate(fd, (off_t)h->cs), 0);
}
static void p_trunc_hdr(int fd, const struct qh *h, uint64_t fs)
{
	assert_int_equal(ftruncate(fd, 64), 0);
}
static void p_backing_len(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 8, 1024, 8);
	wr_be(fd, 16, 0x7fffffff, 4);
}
static void p_backing_eof(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 8, fs + 4096, 8);
	wr_be(fd, 16, 16, 4);
}
static void p_hdrlen(int fd, const struct qh *h, uint64_t fs)
{
	wr_be(fd, 100, 0xfffffff0, 4);
}

/* The compressed-cluster descriptor of guest cluster 0, split. */
static uint64_t comp_entry(int fd, const struct qh *h, uint64_t *host, uint64_t *pos)
{
	*pos = l2_pos(fd, h, 0);
	uint64_t e = rd_be(fd, *pos, 8);
	if (!(e & L2_COMPRESSED))
		FAIL("test setup: guest cluster 0 is not compressed (L2 entry %#llx)", U(e));
	unsigned x = 62 - (h->cluster_bits - 8);
	*host = e & ((1ull << x) - 1);
	return e;
}

static void p_comp_garbage(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t host, pos;
	comp_entry(fd, h, &host, &pos);
	uint8_t junk[32];
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)host), (ssize_t)sizeof(junk));
}

/* Points guest cluster 0 at a compressed stream of len bytes appended to the file. */
static void comp_append(int fd, const struct qh *h, uint64_t fs, const uint8_t *s, size_t len)
{
	uint64_t host, pos;
	comp_entry(fd, h, &host, &pos);
	uint64_t at = (fs + 511) & ~511ull, sectors = (len + 511) / 512;
	unsigned x = 62 - (h->cluster_bits - 8);
	assert_true(sectors - 1 < (1ull << (h->cluster_bits - 8)));
	assert_int_equal(pwrite(fd, s, len, (off_t)at), (ssize_t)len);
	assert_int_equal(ftruncate(fd, (off_t)(at + sectors * 512)), 0);
	wr_be(fd, pos, L2_COMPRESSED | (sectors - 1) << x | at, 8);
}

/* A raw deflate stream of one stored block of n bytes (zlib's format without header). */
static void comp_deflate(int fd, const struct qh *h, uint64_t fs, size_t n)
{
	uint8_t *s = malloc(n + 5);
	assert_non_null(s);
	s[0] = 1; /* BFINAL, stored */
	s[1] = (uint8_t)n, s[2] = (uint8_t)(n >> 8), s[3] = (uint8_t)~n, s[4] = (uint8_t)(~n >> 8);
	memset(s + 5, 0x6b, n);
	comp_append(fd, h, fs, s, n + 5);
	free(s);
}

/* A zstd frame of one raw block of n bytes (8 KiB window). */
static void comp_zstd(int fd, const struct qh *h, uint64_t fs, size_t n)
{
	uint8_t *s = malloc(n + 9);
	assert_non_null(s);
	memcpy(s, "\x28\xb5\x2f\xfd", 4);
	s[4] = 0;    /* frame header descriptor: no content size, no checksum, not single-segment */
	s[5] = 0x18; /* window 8 KiB */
	uint32_t bh = 1 | (uint32_t)n << 3; /* last block, raw */
	s[6] = (uint8_t)bh, s[7] = (uint8_t)(bh >> 8), s[8] = (uint8_t)(bh >> 16);
	memset(s + 9, 0x6b, n);
	comp_append(fd, h, fs, s, n + 9);
	free(s);
}

static void p_zlib_long(int fd, const struct qh *h, uint64_t fs)
{
	comp_deflate(fd, h, fs, h->cs + 512);
}
static void p_zlib_short(int fd, const struct qh *h, uint64_t fs)
{
	comp_deflate(fd, h, fs, 100);
}
static void p_zstd_long(int fd, const struct qh *h, uint64_t fs)
{
	comp_zstd(fd, h, fs, h->cs + 512);
}
static void p_zstd_short(int fd, const struct qh *h, uint64_t fs)
{
	comp_zstd(fd, h, fs, 100);
}
static void p_comp_eof(int fd, const struct qh *h, uint64_t fs)
{
	uint64_t host, pos;
	comp_entry(fd, h, &host, &pos);
	unsigned x = 62 - (h->cluster_bits - 8);
	wr_be(fd, pos, L2_COMPRESSED | 1ull << x | (fs + MiB), 8);
}

enum { B_PLAIN, B_ZLIB, B_ZSTD, NBASES };

#define KW(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const any_msg[] = {NULL};

static const struct hcase {
	const char *name;
	int base;
	patch_fn patch;
	enum expect expect;
	bool rw;
	uint64_t io_off;
	const char *const *kw;
} hcases[] = {
    {"bad magic, format=qcow2", B_PLAIN, p_magic, OPEN_FAILS, false, 0, KW("magic", "qcow2", "QFI")},
    {"version 1", B_PLAIN, p_version1, OPEN_FAILS, false, 0, KW("version")},
    {"version 4", B_PLAIN, p_version4, OPEN_FAILS, false, 0, KW("version")},
    {"cluster_bits 8", B_PLAIN, p_cbits8, OPEN_FAILS, false, 0, KW("cluster")},
    {"cluster_bits 22", B_PLAIN, p_cbits22, OPEN_FAILS, false, 0, KW("cluster")},
    {"unknown incompatible feature bit 37", B_PLAIN, p_incompat37, OPEN_FAILS, false, 0,
     KW("37", "0x2000000000")},
    {"crypt_method 1 (AES)", B_PLAIN, p_crypt1, OPEN_FAILS, false, 0, KW("encrypt")},
    {"crypt_method 2 (LUKS)", B_PLAIN, p_crypt2, OPEN_FAILS, false, 0, KW("encrypt")},
    {"external data file bit", B_PLAIN, p_datafile, OPEN_FAILS, false, 0,
     KW("data file", "data-file", "data_file", "external")},
    {"corrupt bit, read-write", B_PLAIN, p_corrupt, OPEN_FAILS, true, 0, KW("corrupt")},
    {"unknown compression type 7", B_PLAIN, p_comptype, OPEN_FAILS, false, 0, KW("compression")},
    {"l1_size 0x7fffffff", B_PLAIN, p_l1huge, OPEN_FAILS, false, 0, KW("L1")},
    {"l1_size 0x7fffffff, read-write", B_PLAIN, p_l1huge, OPEN_FAILS, true, 0, KW("L1")},
    {"L1 table smaller than the virtual size needs", B_PLAIN, p_l1small, OPEN_OR_READ_FAILS, false,
     32ull << 30, KW("L1", "size")},
    {"L1 table offset past the end of the file", B_PLAIN, p_l1eof, OPEN_OR_READ_FAILS, false, 0, KW("L1")},
    {"L1 table offset unaligned", B_PLAIN, p_l1unaligned, OPEN_OR_READ_FAILS, false, 0, KW("L1")},
    {"L2 table offset unaligned", B_PLAIN, p_l2unaligned, OPEN_OR_READ_FAILS, false, 0, KW("L2")},
    {"L2 table offset past the end of the file", B_PLAIN, p_l2eof, OPEN_OR_READ_FAILS, false, 0, KW("L2")},
    {"data cluster offset unaligned", B_PLAIN, p_dataunaligned, OPEN_OR_READ_FAILS, false, 0, KW("cluster")},
    {"data cluster past the end of the file (flag COPIED), written", B_PLAIN, p_dataeof, WRITE_READS_BACK,
     true, 0, any_msg},
    {"refcount table offset 0, read-write", B_PLAIN, p_rt0, OPEN_OR_WRITE_FAILS, true, 1536 * KiB,
     KW("refcount")},
    {"refcount table offset unaligned, read-write", B_PLAIN, p_rtunaligned, OPEN_OR_WRITE_FAILS, true,
     1536 * KiB, KW("refcount")},
    {"refcount_table_clusters 0x7fffffff, read-write", B_PLAIN, p_rthuge, OPEN_OR_WRITE_FAILS, true,
     1536 * KiB, KW("refcount")},
    {"refcount block past the end of the file, read-write", B_PLAIN, p_rbeof, OPEN_OR_WRITE_FAILS, true,
     1536 * KiB, KW("refcount")},
    {"refcount_order 7", B_PLAIN, p_rorder7, OPEN_FAILS, false, 0, KW("refcount")},
    {"size not a multiple of 512", B_PLAIN, p_size_odd, OPEN_FAILS, false, 0, KW("512")},
    {"truncated after the header cluster", B_PLAIN, p_trunc_cluster, OPEN_OR_READ_FAILS, false, 0, any_msg},
    {"truncated to 64 bytes", B_PLAIN, p_trunc_hdr, OPEN_FAILS, false, 0, any_msg},
    {"backing file name length 0x7fffffff", B_PLAIN, p_backing_len, OPEN_FAILS, false, 0, KW("backing")},
    {"backing file name past the end of the file", B_PLAIN, p_backing_eof, OPEN_FAILS, false, 0,
     KW("backing")},
    {"header_length 0xfffffff0", B_PLAIN, p_hdrlen, OPEN_FAILS, false, 0, KW("header")},
    {"zlib: garbage compressed data", B_ZLIB, p_comp_garbage, OPENS_AND_READS_FAIL, false, 0, any_msg},
    {"zlib: stream expands past a cluster", B_ZLIB, p_zlib_long, OPENS_AND_READS_FAIL, false, 0, any_msg},
    {"zlib: stream short of a cluster", B_ZLIB, p_zlib_short, OPENS_AND_READS_FAIL, false, 0, any_msg},
    {"zlib: compressed data past the end of the file", B_ZLIB, p_comp_eof, OPEN_OR_READ_FAILS, false, 0,
     any_msg},
    {"zstd: garbage compressed data", B_ZSTD, p_comp_garbage, OPENS_AND_READS_FAIL, false, 0, any_msg},
    {"zstd: frame expands past a cluster", B_ZSTD, p_zstd_long, OPENS_AND_READS_FAIL, false, 0, any_msg},
    {"zstd: frame short of a cluster", B_ZSTD, p_zstd_short, OPENS_AND_READS_FAIL, false, 0, any_msg},
};

static const char *const base_opts[NBASES] = {"", "-c -o compression_type=zlib,",
					      "-c -o compression_type=zstd,"};
static const char *const base_names[NBASES] = {"plain.img", "zlib.img", "zstd.img"};

static void hostile_bases_case(const void *arg)
{
	for (int b = 0; b < NBASES; b++) {
		set_case("hostile: the unpatched %s reads right", base_names[b]);
		struct disk *d = open_ok(tp(1, base_names[b]), true, false);
		check_range(d, g_src, 0, g_size, 1);
		disk_close(d);
	}
}

static void hostile_case(const void *arg)
{
	const struct hcase *c = arg;
	size_t i = (size_t)(c - hcases);
	set_case("hostile: %s (on a %s made by qemu-img convert -O qcow2 %s%scluster_size=4096)", c->name,
		 base_names[c->base], base_opts[c->base], c->base ? "" : "-o ");
	char name[32];
	snprintf(name, sizeof(name), "h%02zu.img", i);
	const char *img = tp(2, name);
	copy_file(tp(1, base_names[c->base]), img);
	int fd = open(img, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct qh h;
	qhdr(fd, &h);
	c->patch(fd, &h, file_size(img));
	close(fd);
	struct child_job j = {
	    .cfg = {.path = img, .format = DISK_FORMAT_QCOW2, .readonly = !c->rw},
	    .expect = c->expect,
	    .io_off = c->io_off,
	    .io_len = 4096,
	};
	expect_child(&j, c->kw, 2.0);
	unlink(img);
}

static void test_hostile(void **state)
{
	NEED_QEMU();
	enter("hostile");
	/* 2 MiB virtual, 4 KiB clusters: the first MiB compressible data, the second unallocated. */
	g_size = 2 * MiB;
	g_src = calloc(g_size, 1);
	assert_non_null(g_src);
	for (uint64_t i = 0; i < MiB;) {
		char t[64];
		int n = snprintf(t, sizeof(t), "hostile %08llx\n", U(i));
		for (int k = 0; k < n && i < MiB; k++)
			g_src[i++] = (uint8_t)t[k];
	}
	spew(tp(0, "src.raw"), g_src, g_size);
	for (int b = 0; b < NBASES; b++)
		MUST("qemu-img convert -O qcow2 %s%scluster_size=4096 src.raw %s", base_opts[b],
		     b ? "" : "-o ", base_names[b]);
	run_case(hostile_bases_case, NULL, "hostile: the unpatched images");
	for (size_t i = 0; i < ARRAY_SIZE(hcases); i++)
		run_case(hostile_case, &hcases[i], hcases[i].name);
	free(g_src);
	end_cases();
}

/* ---- backing files that cannot be followed ---- */

static const struct becase {
	const char *name, *img;
	const char *const *kw;
} becases[] = {
    {"a.img -> b.img -> a.img", "a.img", KW("loop", "backing", "chain", "deep", "depth", "recurs")},
    {"c.img -> c.img", "c.img", KW("loop", "backing", "chain", "deep", "depth", "recurs")},
    {"missing backing file", "d.img", KW("missing-base.raw")},
};

static void backing_error_case(const void *arg)
{
	const struct becase *c = arg;
	for (int rw = 0; rw < 2; rw++) {
		set_case("backing errors: %s, %s", c->name, rw ? "read-write" : "read-only");
		struct child_job j = {
		    .cfg = {.path = tp(0, c->img), .readonly = !rw},
		    .expect = OPEN_FAILS,
		};
		expect_child(&j, c->kw, 5.0);
	}
	/* With backing=off the same image opens and reads zeroes. */
	set_case("backing errors: %s, backing=off", c->name);
	struct disk *d = open_ok(tp(0, c->img), true, true);
	static uint8_t zero[MiB];
	check_range(d, zero, 0, MiB, 2);
	disk_close(d);
}

static void test_backing_errors(void **state)
{
	NEED_QEMU();
	enter("loops");
	MUST("qemu-img create -q -f qcow2 a.img 1M && qemu-img create -q -f qcow2 b.img 1M && "
	     "qemu-img create -q -f qcow2 c.img 1M && "
	     "qemu-img rebase -u -b b.img -F qcow2 a.img && qemu-img rebase -u -b a.img -F qcow2 b.img && "
	     "qemu-img rebase -u -b c.img -F qcow2 c.img && "
	     "qemu-img create -q -f qcow2 -u -b missing-base.raw -F raw -o cluster_size=4096 d.img 1M");
	for (size_t i = 0; i < ARRAY_SIZE(becases); i++)
		run_case(backing_error_case, &becases[i], becases[i].name);
	end_cases();
}

/* ---- lazy refcounts: a dirty image is repaired on a read-write open ---- */

static void lazy_case(const void *arg)
{
	const uint64_t size = 2 * MiB;
	const char *src = tp(0, "src.raw"), *img = tp(1, "lazy.img");
	uint8_t *model = calloc(size, 1);
	assert_non_null(model);
	for (uint64_t i = 0; i < MiB; i++)
		model[i] = pat(5, i);
	spew(src, model, size);
	MUST("qemu-img convert -O qcow2 -o lazy_refcounts=on,cluster_size=4096 %s %s", src, img);
	set_case("lazy refcounts: dirty bit set, the refcount of the cluster at guest 64k zeroed, that of "
		 "guest 128k set to 2 (qemu-img convert -O qcow2 -o lazy_refcounts=on,cluster_size=4096)");
	int fd = open(img, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct qh h;
	qhdr(fd, &h);
	uint64_t c1 = rd_be(fd, l2_pos(fd, &h, 64 * KiB), 8) & L2_OFFSET_MASK;
	uint64_t c2 = rd_be(fd, l2_pos(fd, &h, 128 * KiB), 8) & L2_OFFSET_MASK;
	wr_be(fd, refcount_pos(fd, &h, c1), 0, 2);
	wr_be(fd, refcount_pos(fd, &h, c2), 2, 2);
	wr_be(fd, 72, h.incompat | 1, 8);
	close(fd);
	if (!run("qemu-img check %s", img))
		FAIL("test setup: qemu-img check finds nothing wrong with the damaged image:\n%s", out);

	/* Read-only: reads work (or the open says why not); the file stays as it is. */
	uint64_t n0, n1;
	uint8_t *before = slurp(img, &n0);
	struct disk *d = NULL;
	struct err e;
	err_clear(&e);
	int r = disk_open(&(struct disk_config){.path = img, .readonly = true}, &d, &e);
	if (r == 0) {
		verify_all(d, model, size, 1);
		disk_close(d);
	} else if (!names_problem(err_msg(&e), img, KW("dirty", "refcount", "lazy", "repair"))) {
		FAIL("a read-only open failed (%d) without saying why: '%s'", r, err_msg(&e));
	}
	uint8_t *after = slurp(img, &n1);
	if (n0 != n1 || memcmp(before, after, n0))
		FAIL("a read-only open changed the dirty image");
	free(before);
	free(after);

	/* Read-write: repaired; new clusters do not land on the one whose refcount was lost. */
	d = open_ok(img, false, false);
	verify_all(d, model, size, 2);
	struct wl w = {.d = d, .model = model, .size = size, .cluster = h.cs, .s = 5};
	for (uint64_t off = MiB; off < size; off += 12 * KiB)
		w.op++, wl_write(&w, off, 4096);
	w.op++, wl_write(&w, 64 * KiB + 512, 1024);
	w.op++, wl_write(&w, 128 * KiB + 512, 1024);
	random_ops(&w, 40);
	verify_all(d, model, size, 3);
	disk_close(d);
	finish_check(img, model, size);
	free(model);
}

static void test_lazy_repair(void **state)
{
	NEED_QEMU();
	enter("lazy");
	run_case(lazy_case, NULL, "lazy refcounts: repair of a dirty image");
	end_cases();
}

/*
 * A migration's handover of one image between two opens in this process:
 * the destination opens it deferred (no lock, no metadata) while the source
 * writes and grows it, the source deactivates (metadata out, no more
 * writes, not even at close), the destination activates and goes on. A
 * failed handover: the source activates again and goes on. The image, over
 * a backing file, stays consistent (qemu-img check) and holds both sides'
 * writes (qemu-img compare).
 */
static void handover_case(const void *arg)
{
	const uint64_t size = 16 * MiB;
	const char *base = tp(0, "base.raw"), *img = tp(1, "top.qcow2");
	set_case("handover: qcow2 cluster_size=4096 over a raw backing file, 16 MiB");
	uint8_t *model = make_source(base, size, 11);
	MUST("qemu-img create -q -f qcow2 -o cluster_size=4096 -b %s -F raw %s", base, img);
	struct disk *src = open_ok(img, false, false);
	struct disk *dst =
	    open_cfg(&(struct disk_config){.path = img, .defer_lock = true, .defer_meta = true});
	if (dst->size != size)
		FAIL("a deferred open: size %llu, expected %llu", U(dst->size), U(size));
	uint8_t buf[512];
	struct iovec v = {buf, sizeof(buf)};
	if (dst->ops->preadv(dst, &v, 1, 0) != -EIO || dst->ops->pwritev(dst, &v, 1, 0) != -EIO)
		FAIL("a deferred image does I/O before its activation");

	struct wl w = {.d = src, .model = model, .size = size, .cluster = 4096, .s = 21};
	random_ops(&w, 300);
	struct err e = {{0}};
	/* A failed handover: the source goes on with what it kept. */
	if (disk_deactivate(src, &e))
		FAIL("disk_deactivate: %s", err_msg(&e));
	if (src->ops->preadv(src, &v, 1, 0) != -EIO || src->ops->pwritev(src, &v, 1, 0) != -EIO)
		FAIL("a deactivated image does I/O");
	if (disk_activate(src, &e))
		FAIL("disk_activate after a failed handover: %s", err_msg(&e));
	random_ops(&w, 200);
	verify_all(src, model, size, 4);

	/* The real one. */
	if (disk_deactivate(src, &e))
		FAIL("disk_deactivate: %s", err_msg(&e));
	disk_unlock(src);
	if (disk_lock(dst, &e) || disk_activate(dst, &e))
		FAIL("the destination takes over: %s", err_msg(&e));
	uint64_t n0, n1;
	uint8_t *before = slurp(img, &n0);
	disk_close(src); /* handed over: writes nothing */
	uint8_t *after = slurp(img, &n1);
	if (n0 != n1 || memcmp(before, after, n0))
		FAIL("the source wrote to the image after handing it over");
	free(before);
	free(after);
	verify_all(dst, model, size, 5);
	w.d = dst;
	random_ops(&w, 300);
	verify_all(dst, model, size, 6);
	disk_close(dst);
	finish_check(img, model, size);

	/* The destination refuses an image whose virtual size changed meanwhile. */
	dst = open_cfg(&(struct disk_config){.path = img, .defer_lock = true, .defer_meta = true});
	int fd = open(img, O_RDWR | O_CLOEXEC); /* qemu-img resize: the backing file is locked */
	assert_true(fd >= 0);
	wr_be(fd, 24, 32 * MiB, 8);
	close(fd);
	err_clear(&e);
	if (disk_activate(dst, &e) != -EINVAL ||
	    !strstr(err_msg(&e), "virtual size changed from 16777216 to 33554432"))
		FAIL("activation after a resize: '%s'", err_msg(&e));
	disk_close(dst);
	free(model);
}

static void test_handover(void **state)
{
	NEED_QEMU();
	enter("handover");
	run_case(handover_case, NULL, "migration handover: deferred open, deactivate, activate");
	end_cases();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_matrix),	 cmocka_unit_test(test_readonly),
	    cmocka_unit_test(test_write_matrix), cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_threads),	 cmocka_unit_test(test_backing),
	    cmocka_unit_test(test_hostile),	 cmocka_unit_test(test_backing_errors),
	    cmocka_unit_test(test_lazy_repair),	 cmocka_unit_test(test_handover),
	};
	/* TEST_QCOW2_FILTER=test_growth runs one test (a cmocka glob). */
	if (getenv("TEST_QCOW2_FILTER"))
		cmocka_set_test_filter(getenv("TEST_QCOW2_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
