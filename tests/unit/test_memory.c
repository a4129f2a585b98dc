/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for guest RAM (vmm/memory.c): the layout around the 32-bit hole
 * and the checked translation. The mapping is MAP_NORESERVE, so multi-GiB
 * guests cost nothing as long as the tests touch only a few pages. Then the
 * backing options: shared (a memfd), merge (KSM), hugepages (hugetlbfs),
 * each checked in /proc/self/smaps; what the host lacks is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void test_layout_small(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 64 * MiB, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.ram_size, 64 * MiB);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, 64 * MiB);
	assert_ptr_equal(m.regions[0].hva, m.map);
	/* 2 MiB-aligned like the guest addresses, so that huge pages map as such in the guest. */
	assert_int_equal((uintptr_t)m.map % (2 * MiB), 0);
	assert_int_equal(guest_mem_end(&m), 64 * MiB);
	assert_int_equal(guest_mem_low_end(&m), 64 * MiB);
	assert_ptr_equal(guest_mem_ptr(&m, 0, 1), m.map);
	assert_ptr_equal(guest_mem_ptr(&m, 0x1234, 16), m.map + 0x1234);
	assert_ptr_equal(guest_mem_ptr(&m, 0, 64 * MiB), m.map);
	assert_ptr_equal(guest_mem_ptr(&m, 64 * MiB - 1, 1), m.map + 64 * MiB - 1);
	assert_null(guest_mem_ptr(&m, 64 * MiB, 1));
	assert_null(guest_mem_ptr(&m, 64 * MiB - 1, 2));
	assert_null(guest_mem_ptr(&m, 0, 64 * MiB + 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, 1));
	guest_mem_free(&m);
	assert_null(m.map);
	assert_int_equal(m.nregions, 0);
	assert_int_equal(guest_mem_low_end(&m), 0);
	assert_null(guest_mem_ptr(&m, 0, 1));
	/* Freeing twice is harmless. */
	guest_mem_free(&m);
}

static void test_layout_exactly_3g(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 3 * GiB, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, LAYOUT_MMIO32_START);
	assert_int_equal(guest_mem_low_end(&m), LAYOUT_MMIO32_START);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 8, 8), m.map + LAYOUT_MMIO32_START - 8);
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 8, 9));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, 1));
	guest_mem_free(&m);
}

static void test_layout_above_4g(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	const uint64_t size = 3 * GiB + 64 * MiB;
	assert_int_equal(guest_mem_alloc(&m, size, &e), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.ram_size, size);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, LAYOUT_MMIO32_START);
	assert_int_equal(m.regions[1].gpa, LAYOUT_4G);
	assert_int_equal(m.regions[1].size, 64 * MiB);
	assert_ptr_equal(m.regions[1].hva, m.map + LAYOUT_MMIO32_START);
	assert_int_equal(guest_mem_end(&m), LAYOUT_4G + 64 * MiB);
	assert_int_equal(guest_mem_low_end(&m), LAYOUT_MMIO32_START);

	/* The high region translates to the tail of the mapping. */
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G, 1), m.map + LAYOUT_MMIO32_START);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB - 4, 4), m.map + size - 4);
	assert_ptr_equal(guest_mem_ptr(&m, LAYOUT_4G, 64 * MiB), m.map + LAYOUT_MMIO32_START);
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 64 * MiB - 4, 5));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G - 1, 2));

	/* The hole is not RAM, and a range cannot span it even though the host mapping is contiguous. */
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_LAPIC_ADDR, 4));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 1, 2));
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO32_START - 4096, 8192));
	assert_null(guest_mem_ptr(&m, 0, size));
	assert_null(guest_mem_ptr(&m, 0, LAYOUT_4G + 1));

	/* Writes through one side are seen through the other: same bytes. */
	uint32_t v = 0xdeadbeef, out = 0;
	assert_int_equal(guest_mem_write(&m, LAYOUT_4G + 0x1000, &v, sizeof(v)), 0);
	assert_int_equal(guest_mem_read(&m, LAYOUT_4G + 0x1000, &out, sizeof(out)), 0);
	assert_int_equal(out, 0xdeadbeef);
	assert_memory_equal(m.map + LAYOUT_MMIO32_START + 0x1000, &v, sizeof(v));
	assert_int_equal(guest_mem_write(&m, LAYOUT_MMIO32_START - 2, &v, sizeof(v)), -EFAULT);
	assert_int_equal(guest_mem_read(&m, LAYOUT_4G - 2, &out, sizeof(out)), -EFAULT);
	guest_mem_free(&m);
}

static void test_ptr_overflow(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 3 * GiB + 64 * MiB, &e), 0);
	/* gpa + len would wrap to a small address: must not be accepted. */
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&m, UINT64_MAX - 0xfff, 0x2000));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0x1000, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, 0x1000, UINT64_MAX - 0xfff));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G + 0x1000, UINT64_MAX - LAYOUT_4G - 0xfff));
	assert_null(guest_mem_ptr(&m, 1ULL << 63, 1ULL << 63));
	assert_null(guest_mem_ptr(&m, (1ULL << 63) + 1, 1ULL << 63));
	uint8_t buf[16];
	assert_int_equal(guest_mem_read(&m, UINT64_MAX - 7, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_write(&m, UINT64_MAX - 7, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_read(&m, UINT64_MAX, buf, 1), -EFAULT);
	guest_mem_free(&m);
}

static void test_read_write(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 64 * MiB, &e), 0);
	const char msg[] = "hello, guest";
	char out[sizeof(msg)] = {0};
	assert_int_equal(guest_mem_write(&m, 0x2000, msg, sizeof(msg)), 0);
	assert_memory_equal(m.map + 0x2000, msg, sizeof(msg));
	assert_int_equal(guest_mem_read(&m, 0x2000, out, sizeof(out)), 0);
	assert_string_equal(out, msg);
	/* Last bytes of RAM. */
	assert_int_equal(guest_mem_write(&m, 64 * MiB - sizeof(msg), msg, sizeof(msg)), 0);
	assert_int_equal(guest_mem_read(&m, 64 * MiB - sizeof(msg), out, sizeof(out)), 0);
	/* One byte too far: -EFAULT and nothing copied. */
	memset(out, 0x55, sizeof(out));
	assert_int_equal(guest_mem_read(&m, 64 * MiB - sizeof(msg) + 1, out, sizeof(out)), -EFAULT);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal((uint8_t)out[i], 0x55);
	uint8_t before = m.map[64 * MiB - 1];
	assert_int_equal(guest_mem_write(&m, 64 * MiB - 1, msg, 2), -EFAULT);
	assert_int_equal(m.map[64 * MiB - 1], before);
	assert_int_equal(guest_mem_write(&m, 64 * MiB, msg, 1), -EFAULT);
	assert_int_equal(guest_mem_read(&m, 1ULL << 40, out, 1), -EFAULT);
	/* Zero-length copies inside RAM are fine. */
	assert_int_equal(guest_mem_read(&m, 0x1000, out, 0), 0);
	assert_int_equal(guest_mem_write(&m, 0x1000, msg, 0), 0);
	guest_mem_free(&m);
}

static void test_bad_sizes(void **state)
{
	static const uint64_t bad[] = {0, 1, 4095, 4097, 64 * MiB + 512, 3 * GiB + 1};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct guest_mem m;
		struct err e = {0};
		assert_int_equal(guest_mem_alloc(&m, bad[i], &e), -EINVAL);
		assert_true(strlen(err_msg(&e)) > 0);
		assert_null(m.map);
		assert_int_equal(m.nregions, 0);
		assert_null(guest_mem_ptr(&m, 0, 1));
		guest_mem_free(&m);
	}
	/* The smallest legal size. */
	struct guest_mem m;
	struct err e = {0};
	assert_int_equal(guest_mem_alloc(&m, 4096, &e), 0);
	assert_int_equal(m.nregions, 1);
	assert_non_null(guest_mem_ptr(&m, 0, 4096));
	assert_null(guest_mem_ptr(&m, 4096, 1));
	guest_mem_free(&m);
}

/* The VmFlags line of the mapping that starts at p in /proc/self/smaps, and its name, or "" each. */
static void smaps_of(const void *p, char *flags, size_t flen, char *name, size_t nlen)
{
	char want[32], line[400];
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	flags[0] = name[0] = '\0';
	FILE *f = fopen("/proc/self/smaps", "re");
	assert_non_null(f);
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, want, strlen(want))) {
			in = true;
			/* "start-end perms offset dev inode   name" */
			const char *n = line;
			for (int field = 0; field < 5 && n; field++)
				n = strchr(n + 1, ' ');
			if (n) {
				n += strspn(n, " ");
				snprintf(name, nlen, "%s", n);
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, flen, "%s ", line + 8); /* " rd wr ... " */
			break;
		}
	}
	fclose(f);
}

static bool has_flag(const char *flags, const char *flag)
{
	char w[8];
	snprintf(w, sizeof(w), " %s ", flag);
	return strstr(flags, w) != NULL;
}

static void test_plain_has_no_fd(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	struct guest_mem_opts o = {0};
	assert_int_equal(guest_mem_alloc_opts(&m, 64 * MiB, &o, &e), 0);
	assert_int_equal(m.fd, -1);
	assert_false(m.hugepages);
	char flags[512], name[512];
	smaps_of(m.map, flags, sizeof(flags), name, sizeof(name));
	assert_false(has_flag(flags, "sh"));
	assert_false(has_flag(flags, "mg"));
	guest_mem_free(&m);
	assert_int_equal(m.fd, -1);
	/* A zeroed struct (fd 0) that was never allocated: freeing it must not close stdin. */
	memset(&m, 0, sizeof(m));
	guest_mem_free(&m);
	assert_true(fcntl(0, F_GETFD) >= 0 || errno != EBADF);
}

static void test_shared(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	struct guest_mem_opts o = {.shared = true};
	const uint64_t size = 3 * GiB + 64 * MiB; /* both regions come from the one memfd */
	assert_int_equal(guest_mem_alloc_opts(&m, size, &o, &e), 0);
	assert_true(m.fd >= 0);
	assert_int_equal(m.nregions, 2);
	int fl = fcntl(m.fd, F_GETFD);
	assert_true(fl >= 0 && (fl & FD_CLOEXEC));
	char link[64], target[128];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", m.fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_non_null(strstr(target, "memfd:kvmini-guest"));
	struct stat st;
	assert_int_equal(fstat(m.fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	char flags[512], name[512];
	smaps_of(m.map, flags, sizeof(flags), name, sizeof(name));
	assert_true(has_flag(flags, "sh"));
	assert_non_null(strstr(name, "/memfd:kvmini-guest"));

	/* What another process would do: map the fd. Writes show through both ways, high RAM too. */
	uint8_t *other = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	assert_true(other != MAP_FAILED);
	const char msg[] = "seen by the other side";
	assert_int_equal(guest_mem_write(&m, 0x5000, msg, sizeof(msg)), 0);
	assert_memory_equal(other + 0x5000, msg, sizeof(msg));
	uint32_t v = 0xfeedf00d, out = 0;
	assert_int_equal(guest_mem_write(&m, LAYOUT_4G + 0x2000, &v, sizeof(v)), 0);
	assert_memory_equal(other + LAYOUT_MMIO32_START + 0x2000, &v, sizeof(v));
	memcpy(other + 64 * MiB, "back", 4);
	char back[4];
	assert_int_equal(guest_mem_read(&m, 64 * MiB, back, 4), 0);
	assert_memory_equal(back, "back", 4);
	assert_int_equal(guest_mem_read(&m, LAYOUT_4G + 0x2000, &out, sizeof(out)), 0);
	assert_int_equal(out, 0xfeedf00d);

	int fd = m.fd;
	guest_mem_free(&m);
	assert_int_equal(m.fd, -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
	assert_int_equal(errno, EBADF);
	/* The other mapping keeps the memory alive and intact. */
	assert_memory_equal(other + 0x5000, msg, sizeof(msg));
	munmap(other, size);
	guest_mem_free(&m);
}

static void test_merge(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	/* KSM merges private anonymous pages only: asking with the others is refused, not ignored. */
	struct guest_mem_opts bad[] = {{.merge = true, .shared = true},
				       {.merge = true, .hugepages = true},
				       {.merge = true, .hugepages = true, .shared = true}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(guest_mem_alloc_opts(&m, 64 * MiB, &bad[i], &e), -EINVAL);
		assert_non_null(strstr(err_msg(&e), "merge (KSM) works on private memory only"));
		assert_null(m.map);
		assert_int_equal(m.fd, -1);
		guest_mem_free(&m);
	}

	struct guest_mem_opts o = {.merge = true};
	err_clear(&e);
	int r = guest_mem_alloc_opts(&m, 64 * MiB, &o, &e);
	if (access("/sys/kernel/mm/ksm", F_OK)) {
		/* No KSM: the madvise fails, and the message says why. */
		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(err_msg(&e), "this kernel has no KSM"));
		assert_null(m.map);
		skip();
	}
	if (r)
		fail_msg("merge=on: %s", err_msg(&e));
	assert_int_equal(m.fd, -1);
	char flags[512], name[512];
	smaps_of(m.map, flags, sizeof(flags), name, sizeof(name));
	if (!has_flag(flags, "mg"))
		fail_msg("no 'mg' in the VmFlags of a merge=on mapping:%s", flags);
	assert_int_equal(guest_mem_write(&m, 0x1000, "x", 1), 0);
	guest_mem_free(&m);
}

/* 2 MiB huge pages free for a new mapping (free less reserved), or -1 when the host has none. */
static long huge_avail(void)
{
	long free_pages = -1, resv = 0;
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &free_pages) != 1)
		free_pages = -1;
	fclose(f);
	f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "re");
	if (f) {
		if (fscanf(f, "%ld", &resv) != 1)
			resv = 0;
		fclose(f);
	}
	return free_pages < 0 ? -1 : free_pages - resv;
}

static void test_hugepages(void **state)
{
	struct guest_mem m;
	struct err e = {0};
	/* The size check comes first, whatever the host has. */
	static const uint64_t bad[] = {64 * MiB + 4096, 65 * MiB, 3 * GiB + MiB};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int shared = 0; shared < 2; shared++) {
			struct guest_mem_opts o = {.hugepages = true, .shared = shared};
			err_clear(&e);
			assert_int_equal(guest_mem_alloc_opts(&m, bad[i], &o, &e), -EINVAL);
			assert_non_null(strstr(err_msg(&e), "is not a multiple of 2 MiB"));
			assert_null(m.map);
			assert_int_equal(m.fd, -1);
		}
	}

	long avail = huge_avail();
	if (avail < 0) {
		struct guest_mem_opts o = {.hugepages = true};
		err_clear(&e);
		assert_int_not_equal(guest_mem_alloc_opts(&m, 64 * MiB, &o, &e), 0);
		assert_true(strlen(err_msg(&e)) > 0);
		skip(); /* no hugetlbfs on this host */
	}
	/* One page more than there are: the mmap fails at once, with a message that says so. */
	for (int shared = 0; shared < 2; shared++) {
		struct guest_mem_opts o = {.hugepages = true, .shared = shared};
		uint64_t size = (uint64_t)(avail + 1) * 2 * MiB;
		char want[200];
		snprintf(
		    want, sizeof(want),
		    "not enough free 2 MiB huge pages for %llu MiB of guest memory (need %ld, have %ld free; "
		    "see /proc/sys/vm/nr_hugepages)",
		    (unsigned long long)(size >> 20), avail + 1, avail);
		err_clear(&e);
		assert_int_equal(guest_mem_alloc_opts(&m, size, &o, &e), -ENOMEM);
		assert_string_equal(err_msg(&e), want);
		assert_null(m.map);
		assert_int_equal(m.fd, -1);
	}
	if (avail < 32) {
		print_message(
		    "[     INFO ] %ld free 2 MiB huge pages: the 64 MiB allocations are not tried\n", avail);
		return;
	}
	for (int shared = 0; shared < 2; shared++) {
		struct guest_mem_opts o = {.hugepages = true, .shared = shared};
		err_clear(&e);
		if (guest_mem_alloc_opts(&m, 64 * MiB, &o, &e))
			fail_msg("hugepages=on%s: %s", shared ? ",shared=on" : "", err_msg(&e));
		assert_true(m.hugepages);
		assert_int_equal(m.fd >= 0, shared);
		/* Reserved at mmap time: no longer available to others. */
		assert_int_equal(huge_avail(), avail - 32);
		char flags[512], name[512];
		smaps_of(m.map, flags, sizeof(flags), name, sizeof(name));
		assert_true(has_flag(flags, "ht"));
		if (shared)
			assert_non_null(strstr(name, "/memfd:kvmini-guest"));
		assert_int_equal(guest_mem_write(&m, 64 * MiB - 4, "huge", 4), 0);
		assert_memory_equal(m.map + 64 * MiB - 4, "huge", 4);
		guest_mem_free(&m);
		assert_int_equal(huge_avail(), avail);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_small),    cmocka_unit_test(test_layout_exactly_3g),
	    cmocka_unit_test(test_layout_above_4g), cmocka_unit_test(test_ptr_overflow),
	    cmocka_unit_test(test_read_write),	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_plain_has_no_fd), cmocka_unit_test(test_shared),
	    cmocka_unit_test(test_merge),	    cmocka_unit_test(test_hugepages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
