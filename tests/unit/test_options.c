/* SPDX-License-Identifier: MIT */
/* Unit tests for `kvmini run` option parsing (vmm/options.c). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/options.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* The library defaults, set by hand: kvmini_config_init() may not exist yet. */
static void defaults(struct kvmini_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus = 1;
	c->mem_bytes = 512 * MiB;
	c->console_out_fd = 1;
}

/* Parses "run" followed by the NULL-terminated arguments. */
static int parse_args(struct kvmini_config *c, struct err *e, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = "run";
	va_start(ap, e);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	err_clear(e);
	return options_parse_run(argc, argv, c, e);
}

#define PARSE(c, e, ...) parse_args(c, e, __VA_ARGS__, (char *)NULL)

/* The parse fails with -EINVAL, cfg stays as it was, and the message contains want. */
static void expect_fail(const char *want, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = "run";
	va_start(ap, want);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	struct kvmini_config c, before;
	struct err e;
	defaults(&c);
	before = c;
	err_clear(&e);
	int r = options_parse_run(argc, argv, &c, &e);
	if (r != -EINVAL || !strstr(err_msg(&e), want))
		fail_msg("argv[1]='%s': got %d, message '%s', wanted -EINVAL with '%s'",
			 argc > 1 ? argv[1] : "", r, err_msg(&e), want);
	assert_memory_equal(&c, &before, sizeof(c));
	assert_null(strchr(err_msg(&e), '\n'));
}

#define FAIL(want, ...) expect_fail(want, __VA_ARGS__, (char *)NULL)

static uint64_t host_ram(void)
{
	return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void test_api_sock(void **state)
{
	(void)state;
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_null(c.api_sock);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--api-sock", "/run/vm.sock"), 0);
	assert_string_equal(c.api_sock, "/run/vm.sock");
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--api-sock=/tmp/b"), 0);
	assert_string_equal(c.api_sock, "/tmp/b");
	FAIL("needs a non-empty path", "--kernel", "k", "--api-sock", "");
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--restore", "/s", "--incoming", "tcp:0.0.0.0:4444"),
			 0);
	assert_string_equal(c.restore_path, "/s");
	assert_string_equal(c.incoming, "tcp:0.0.0.0:4444");
	FAIL("needs a non-empty path", "--kernel", "k", "--restore", "");
	FAIL("--api-sock", "--kernel", "k", "--api-sock");
}

static void test_minimal(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "/boot/vmlinuz"), 0);
	assert_string_equal(c.kernel_path, "/boot/vmlinuz");
	assert_null(c.initrd_path);
	assert_null(c.cmdline); /* library default, with console=ttyS0 */
	assert_int_equal(c.cpus, 1);
	assert_int_equal(c.mem_bytes, 512 * MiB);
	assert_false(c.no_reboot);
	assert_int_equal(c.console_out_fd, 1);
	assert_null(c.kvm_device);
	assert_string_equal(err_msg(&e), "");
	assert_non_null(strstr(KVMINI_DEFAULT_CMDLINE, "console=ttyS0"));
}

static void test_all_separate(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--initrd", "i.cpio", "--cmdline",
			       "console=ttyS0 quiet", "--cpus", "4", "--mem", "1G", "--no-reboot",
			       "--kvm-device", "/tmp/kvm"),
			 0);
	assert_string_equal(c.kernel_path, "k");
	assert_string_equal(c.initrd_path, "i.cpio");
	assert_string_equal(c.cmdline, "console=ttyS0 quiet");
	assert_int_equal(c.cpus, 4);
	assert_int_equal(c.mem_bytes, GiB);
	assert_true(c.no_reboot);
	assert_string_equal(c.kvm_device, "/tmp/kvm");
}

static void test_all_equals(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--no-reboot", "--kvm-device=/dev/kvm2", "--mem=256M", "--cpus=64",
			       "--cmdline=root=/dev/vda rw", "--initrd=/x/init=rd", "--kernel=/x/vmlinux"),
			 0);
	assert_string_equal(c.kernel_path, "/x/vmlinux");
	assert_string_equal(c.initrd_path, "/x/init=rd"); /* only the first '=' splits */
	assert_string_equal(c.cmdline, "root=/dev/vda rw");
	assert_int_equal(c.cpus, 64);
	assert_int_equal(c.mem_bytes, 256 * MiB);
	assert_true(c.no_reboot);
	assert_string_equal(c.kvm_device, "/dev/kvm2");
}

static void test_cmdline_as_is(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cmdline="), 0);
	assert_string_equal(c.cmdline, ""); /* empty, not the default */
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cmdline=--init=/bin/sh -- x"), 0);
	assert_string_equal(c.cmdline, "--init=/bin/sh -- x");
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cmdline", "-x  y "), 0);
	assert_string_equal(c.cmdline, "-x  y ");
}

static void test_cpus(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cpus", "1"), 0);
	assert_int_equal(c.cpus, 1);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cpus", "64"), 0);
	assert_int_equal(c.cpus, KVMINI_MAX_CPUS);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cpus", "007"), 0);
	assert_int_equal(c.cpus, 7);

	FAIL("invalid --cpus value '0'", "--kernel", "k", "--cpus", "0");
	FAIL("invalid --cpus value '65': expected an integer from 1 to 64", "--kernel", "k", "--cpus", "65");
	FAIL("invalid --cpus value '2x'", "--kernel", "k", "--cpus", "2x");
	FAIL("invalid --cpus value '-1'", "--kernel", "k", "--cpus=-1");
	FAIL("invalid --cpus value '+2'", "--kernel", "k", "--cpus", "+2");
	FAIL("invalid --cpus value ' 2'", "--kernel", "k", "--cpus", " 2");
	FAIL("invalid --cpus value '2 '", "--kernel", "k", "--cpus", "2 ");
	FAIL("invalid --cpus value ''", "--kernel", "k", "--cpus=");
	FAIL("invalid --cpus value '0x2'", "--kernel", "k", "--cpus", "0x2");
	FAIL("invalid --cpus value '99999999999999999999999'", "--kernel", "k", "--cpus",
	     "99999999999999999999999");
	FAIL("invalid --cpus value '4294967297'", "--kernel", "k", "--cpus", "4294967297");
}

static void test_mem(void **state)
{
	struct kvmini_config c;
	struct err e;
	static const struct {
		const char *arg;
		uint64_t bytes;
	} ok[] = {
	    {"64M", 64 * MiB},	  {"64", 64 * MiB},	    {"65536K", 64 * MiB},
	    {"1g", GiB},	  {"100M", 100 * MiB},	    {"128MiB", 128 * MiB},
	    {"128mb", 128 * MiB}, {"131072KiB", 128 * MiB}, {"1GB", GiB},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		defaults(&c);
		if (PARSE(&c, &e, "--kernel", "k", "--mem", ok[i].arg) != 0)
			fail_msg("--mem %s: %s", ok[i].arg, err_msg(&e));
		assert_int_equal(c.mem_bytes, ok[i].bytes);
	}
	/* The host's full RAM is the limit, not beyond. */
	char buf[64];
	uint64_t host = host_ram();
	if (host >= 64 * MiB) {
		snprintf(buf, sizeof(buf), "%lluK", (unsigned long long)((host & ~4095ULL) >> 10));
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--mem", buf), 0);
		assert_int_equal(c.mem_bytes, host & ~4095ULL);
	}

	FAIL("--mem 32M is too small: the minimum is 64 MiB", "--kernel", "k", "--mem", "32M");
	FAIL("too small", "--kernel", "k", "--mem", "65532K");
	FAIL("--mem 1025K is not a multiple of 4 KiB", "--kernel", "k", "--mem", "1025K");
	FAIL("is not a multiple of 4 KiB", "--kernel", "k", "--mem", "65537K");
	FAIL("invalid --mem value '12X'", "--kernel", "k", "--mem", "12X");
	FAIL("invalid --mem value ''", "--kernel", "k", "--mem=");
	FAIL("invalid --mem value '0'", "--kernel", "k", "--mem", "0");
	FAIL("invalid --mem value '-1G'", "--kernel", "k", "--mem=-1G");
	FAIL("invalid --mem value '99999999999999G'", "--kernel", "k", "--mem", "99999999999999G");

	snprintf(buf, sizeof(buf), "%lluM", (unsigned long long)(host >> 20) + 4);
	char want[128];
	snprintf(want, sizeof(want), "--mem %s is too large for this host (%llu MiB of RAM)", buf,
		 (unsigned long long)(host >> 20));
	FAIL(want, "--kernel", "k", "--mem", buf);
	FAIL("too large for this host", "--kernel", "k", "--mem", "16777215T");
}

static void test_mem_keys(void **state)
{
	struct kvmini_config c;
	struct err e;
	/* No keys: all off. */
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--mem", "256M"), 0);
	assert_false(c.mem_hugepages);
	assert_false(c.mem_merge);
	assert_false(c.mem_shared);

	static const struct {
		const char *arg;
		uint64_t bytes;
		bool hugepages, merge, shared;
	} ok[] = {
	    {"256M,hugepages=on", 256 * MiB, true, false, false},
	    {"256M,hugepages=off", 256 * MiB, false, false, false},
	    {"1G,merge=on", GiB, false, true, false},
	    {"1G,merge=off", GiB, false, false, false},
	    {"128,shared=on", 128 * MiB, false, false, true},
	    {"128,shared=off", 128 * MiB, false, false, false},
	    {"256M,hugepages=on,shared=on", 256 * MiB, true, false, true},
	    {"256M,shared=on,hugepages=on", 256 * MiB, true, false, true},
	    {"256M,shared=off,merge=on,hugepages=off", 256 * MiB, false, true, false},
	    {"65540K,shared=on", 65540ULL << 10, false, false, true}, /* only hugepages needs 2 MiB */
	    {"2G,hugepages=on,merge=off,shared=on", 2 * GiB, true, false, true},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		defaults(&c);
		if (PARSE(&c, &e, "--kernel", "k", "--mem", ok[i].arg) != 0)
			fail_msg("--mem %s: %s", ok[i].arg, err_msg(&e));
		assert_int_equal(c.mem_bytes, ok[i].bytes);
		assert_int_equal(c.mem_hugepages, ok[i].hugepages);
		assert_int_equal(c.mem_merge, ok[i].merge);
		assert_int_equal(c.mem_shared, ok[i].shared);
	}
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--mem=512M,merge=on"), 0);
	assert_true(c.mem_merge);
	assert_int_equal(c.mem_bytes, 512 * MiB);

	FAIL("--mem 255M is not a multiple of 2 MiB, as hugepages=on needs", "--kernel", "k", "--mem",
	     "255M,hugepages=on");
	FAIL("--mem 65540K is not a multiple of 2 MiB", "--kernel", "k", "--mem", "65540K,hugepages=on");
	FAIL("--mem: invalid hugepages 'yes': expected on or off", "--kernel", "k", "--mem",
	     "256M,hugepages=yes");
	FAIL("--mem: invalid merge '1': expected on or off", "--kernel", "k", "--mem", "256M,merge=1");
	FAIL("--mem: invalid shared 'ON': expected on or off", "--kernel", "k", "--mem", "256M,shared=ON");
	FAIL("--mem: invalid shared 'offffffffffffff...': expected on or off", "--kernel", "k", "--mem",
	     "256M,shared=offffffffffffffffffffff");
	FAIL("--mem: key 'hugepages' given more than once", "--kernel", "k", "--mem",
	     "256M,hugepages=on,hugepages=on");
	FAIL("--mem: key 'shared' given more than once", "--kernel", "k", "--mem",
	     "256M,shared=off,hugepages=on,shared=on");
	FAIL("--mem: unknown key 'numa' (expected hugepages, merge or shared)", "--kernel", "k", "--mem",
	     "256M,numa=on");
	FAIL("--mem: unknown key 'hugepage'", "--kernel", "k", "--mem", "256M,hugepage=on");
	FAIL("--mem: unknown key 'size'", "--kernel", "k", "--mem", "256M,size=1G");
	FAIL("--mem: 'hugepages' is not key=value", "--kernel", "k", "--mem", "256M,hugepages");
	FAIL("--mem: key 'merge' has an empty value", "--kernel", "k", "--mem", "256M,merge=");
	FAIL("--mem: empty item (a stray ',')", "--kernel", "k", "--mem", "256M,");
	FAIL("--mem: empty item (a stray ',')", "--kernel", "k", "--mem", "256M,,shared=on");
	FAIL("--mem: empty item (a stray ',')", "--kernel", "k", "--mem", "256M,shared=on,");
	FAIL("--mem: '=' without a key", "--kernel", "k", "--mem", "256M,=on");
	FAIL("--mem: merge=on does not go with hugepages=on: KSM merges private memory only", "--kernel", "k",
	     "--mem", "256M,merge=on,hugepages=on");
	FAIL("--mem: merge=on does not go with shared=on", "--kernel", "k", "--mem",
	     "256M,shared=on,merge=on");
	/* The size comes first, and its own mistakes are reported as before. */
	FAIL("invalid --mem value 'hugepages=on'", "--kernel", "k", "--mem", "hugepages=on,256M");
	FAIL("invalid --mem value ''", "--kernel", "k", "--mem", ",hugepages=on");
	FAIL("invalid --mem value '12X'", "--kernel", "k", "--mem", "12X,hugepages=on");
	FAIL("--mem 32M is too small: the minimum is 64 MiB", "--kernel", "k", "--mem", "32M,shared=on");
	FAIL("--mem 1025K is not a multiple of 4 KiB", "--kernel", "k", "--mem", "1025K,merge=on");
	FAIL("invalid --mem value '000000000000000000000000000000000064M'", "--kernel", "k", "--mem",
	     "000000000000000000000000000000000064M,shared=on");
	FAIL("option '--mem' given more than once", "--kernel", "k", "--mem", "256M", "--mem",
	     "256M,hugepages=on");
}

static void test_help(void **state)
{
	struct kvmini_config c, before;
	struct err e;
	defaults(&c);
	before = c;
	assert_int_equal(PARSE(&c, &e, "--help"), 1);
	assert_int_equal(PARSE(&c, &e, "-h"), 1);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cpus", "3", "--help"), 1);
	assert_int_equal(PARSE(&c, &e, "--bogus", "--help"), 1);
	assert_int_equal(PARSE(&c, &e, "--cpus", "999", "-h"), 1);
	assert_int_equal(PARSE(&c, &e, "--cmdline", "--help"), 1);
	assert_memory_equal(&c, &before, sizeof(c));
	assert_string_equal(err_msg(&e), "");

	/* "--help" as an explicit value is a value. */
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cmdline=--help"), 0);
	assert_string_equal(c.cmdline, "--help");
	FAIL("option '--help' takes no value", "--help=yes");
	FAIL("unexpected argument '--help'", "--kernel", "k", "--", "--help");
}

static void test_errors(void **state)
{
	FAIL("unknown option '--foo' (see kvmini run --help)", "--kernel", "k", "--foo");
	FAIL("unknown option '--foo' (see kvmini run --help)", "--foo=bar", "--kernel", "k");
	FAIL("unknown option '-x' (see kvmini run --help)", "-x", "--kernel", "k");
	FAIL("unknown option '--kern'", "--kern", "k"); /* no abbreviations */
	FAIL("unknown option '---'", "--kernel", "k", "---");
	FAIL("unexpected argument 'extra' (see kvmini run --help)", "--kernel", "k", "extra");
	FAIL("unexpected argument 'vmlinux'", "vmlinux");
	FAIL("unexpected argument '-'", "--kernel", "k", "-");
	FAIL("unexpected argument 'x'", "--kernel", "k", "--", "x");
	FAIL("option '--kernel' needs a value", "--kernel");
	FAIL("option '--kernel' needs a value", "--kernel", "--cpus", "2");
	FAIL("option '--initrd' needs a value", "--kernel", "k", "--initrd");
	FAIL("option '--cmdline' needs a value", "--kernel", "k", "--cmdline");
	FAIL("option '--cpus' needs a value", "--kernel", "k", "--cpus");
	FAIL("option '--mem' needs a value", "--kernel", "k", "--mem", "--no-reboot");
	FAIL("option '--kvm-device' needs a value", "--kernel", "k", "--kvm-device");
	FAIL("option '--kernel' needs a non-empty path", "--kernel=");
	FAIL("option '--initrd' needs a non-empty path", "--kernel", "k", "--initrd", "");
	FAIL("option '--kvm-device' needs a non-empty path", "--kernel", "k", "--kvm-device=");
	FAIL("option '--kernel' given more than once", "--kernel", "a", "--kernel", "b");
	FAIL("option '--kernel' given more than once", "--kernel=a", "--kernel=a");
	FAIL("option '--cpus' given more than once", "--kernel", "k", "--cpus", "2", "--cpus=2");
	FAIL("option '--no-reboot' takes no value", "--kernel", "k", "--no-reboot=1");
	FAIL("missing --kernel PATH (see kvmini run --help)", "--cpus", "2");
	FAIL("missing --kernel PATH", "--");
	{
		struct kvmini_config c;
		struct err e;
		defaults(&c);
		err_clear(&e);
		assert_int_equal(options_parse_run(1, (char *[]){"run", NULL}, &c, &e), -EINVAL);
		assert_non_null(strstr(err_msg(&e), "missing --kernel"));
	}
}

static void test_repeatable(void **state)
{
	/* No hidden state (such as getopt's optind) between calls. */
	for (int i = 0; i < 3; i++) {
		struct kvmini_config c;
		struct err e;
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--bogus"), -EINVAL);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--cpus", "2"), 0);
		assert_int_equal(c.cpus, 2);
	}
}

static void test_shutdown_timeout(void **state)
{
	struct kvmini_config c;
	struct err e;
	kvmini_config_init(&c);
	assert_int_equal(c.shutdown_timeout_s, 30);
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--shutdown-timeout", "5"), 0);
	assert_int_equal(c.shutdown_timeout_s, 5);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--shutdown-timeout=0"), 0);
	assert_int_equal(c.shutdown_timeout_s, 0);
	static const char *const bad[] = {"-1", "3601", "x", "", "5s"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		defaults(&c);
		c.shutdown_timeout_s = 30;
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--shutdown-timeout", bad[i]), -EINVAL);
		assert_non_null(strstr(err_msg(&e), "shutdown-timeout"));
		assert_int_equal(c.shutdown_timeout_s, 30);
	}
}

static void test_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t bytes;
	} ok[] = {
	    {"512M", 512 * MiB},
	    {"2G", 2 * GiB},
	    {"1048576K", GiB},
	    {"512", 512 * MiB},
	    {"1", MiB},
	    {"4k", 4096},
	    {"1K", 1024},
	    {"3m", 3 * MiB},
	    {"2g", 2 * GiB},
	    {"1T", 1ULL << 40},
	    {"1t", 1ULL << 40},
	    {"8KiB", 8192},
	    {"8kib", 8192},
	    {"8KB", 8192},
	    {"8kb", 8192},
	    {"2GiB", 2 * GiB},
	    {"0001G", GiB},
	    {"17179869183G", 17179869183ULL << 30},
	    {"17592186044415", 17592186044415ULL << 20},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t b = 0;
		if (options_parse_size(ok[i].s, &b) != 0)
			fail_msg("'%s' rejected", ok[i].s);
		assert_int_equal(b, ok[i].bytes);
	}
	static const char *const bad[] = {
	    "",
	    "0",
	    "0K",
	    "0G",
	    "-1",
	    "-1G",
	    "+1G",
	    "12X",
	    "1.5G",
	    "G",
	    "K1",
	    " 1G",
	    "1G ",
	    "1 G",
	    "1GG",
	    "1Gi",
	    "1GiBx",
	    "1iB",
	    "1B",
	    "0x10",
	    "99999999999999G",
	    "17179869184G",		 /* exactly 2^64 */
	    "17592186044416",		 /* 2^44 MiB = 2^64 */
	    "18446744073709551616K",	 /* the digits alone overflow */
	    "999999999999999999999999M", /* likewise */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t b = 12345;
		if (options_parse_size(bad[i], &b) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(b, 12345);
	}
	uint64_t b;
	assert_int_equal(options_parse_size(NULL, &b), -EINVAL);
}

static void test_disk_minimal(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--disk", "path=/img/a.raw"), 0);
	assert_int_equal(c.ndisks, 1);
	assert_string_equal(c.disks[0].path, "/img/a.raw");
	assert_int_equal(c.disks[0].format, KVMINI_DISK_FORMAT_AUTO);
	assert_false(c.disks[0].readonly);
	assert_false(c.disks[0].cache_none);
	assert_string_equal(c.disks[0].serial, "");
	/* No disk unless asked. */
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k"), 0);
	assert_int_equal(c.ndisks, 0);
}

static void test_disk_keys(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--disk",
			       "serial=SN 42-x,cache=none,readonly=on,format=raw,path=rel/d.img"),
			 0);
	assert_int_equal(c.ndisks, 1);
	assert_string_equal(c.disks[0].path, "rel/d.img");
	assert_int_equal(c.disks[0].format, KVMINI_DISK_FORMAT_RAW);
	assert_true(c.disks[0].readonly);
	assert_true(c.disks[0].cache_none);
	assert_string_equal(c.disks[0].serial, "SN 42-x");

	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k",
			       "--disk=path=q.img,format=qcow2,readonly=off,cache=writeback", "--disk",
			       "path=/x=y,serial=12345678901234567890"),
			 0);
	assert_int_equal(c.ndisks, 2);
	assert_string_equal(c.disks[0].path, "q.img");
	assert_int_equal(c.disks[0].format, KVMINI_DISK_FORMAT_QCOW2);
	assert_false(c.disks[0].readonly);
	assert_false(c.disks[0].cache_none);
	assert_string_equal(c.disks[1].path, "/x=y"); /* only the first '=' of an item splits */
	assert_string_equal(c.disks[1].serial, "12345678901234567890");
}

static void test_disk_order_and_limit(void **state)
{
	struct kvmini_config c;
	struct err e;
	char specs[KVMINI_MAX_DISKS + 1][32];
	char *argv[2 * KVMINI_MAX_DISKS + 8];
	int argc = 0;
	argv[argc++] = "run";
	argv[argc++] = "--kernel";
	argv[argc++] = "k";
	for (int i = 0; i < KVMINI_MAX_DISKS; i++) {
		snprintf(specs[i], sizeof(specs[i]), "path=disk%d.img", i);
		argv[argc++] = "--disk";
		argv[argc++] = specs[i];
	}
	argv[argc] = NULL;
	defaults(&c);
	err_clear(&e);
	assert_int_equal(options_parse_run(argc, argv, &c, &e), 0);
	assert_int_equal(c.ndisks, KVMINI_MAX_DISKS);
	for (int i = 0; i < KVMINI_MAX_DISKS; i++) {
		char want[32];
		snprintf(want, sizeof(want), "disk%d.img", i);
		assert_string_equal(c.disks[i].path, want);
	}

	/* One more is an error, and cfg stays as it was. */
	struct kvmini_config before;
	defaults(&c);
	before = c;
	snprintf(specs[KVMINI_MAX_DISKS], sizeof(specs[0]), "path=one-too-many");
	argv[argc++] = "--disk";
	argv[argc++] = specs[KVMINI_MAX_DISKS];
	argv[argc] = NULL;
	err_clear(&e);
	assert_int_equal(options_parse_run(argc, argv, &c, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "too many --disk options: at most 16");
	assert_memory_equal(&c, &before, sizeof(c));
}

static void test_disk_commas(void **state)
{
	static const struct {
		const char *spec, *path, *serial;
	} ok[] = {
	    {"path=a,,b", "a,b", ""},
	    {"path=a,,b,serial=x", "a,b", "x"},
	    {"path=a,,,,b", "a,,b", ""},
	    {"path=a,,,serial=x,,y", "a,", "x,y"},
	    {"path=,,", ",", ""},
	    {"serial=,,,,,path=p", "p", ",,"},
	    {"path=a b=c", "a b=c", ""},
	    {"path=a,,readonly=on", "a,readonly=on", ""}, /* ",," never separates */
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct kvmini_config c;
		struct err e;
		defaults(&c);
		if (PARSE(&c, &e, "--kernel", "k", "--disk", ok[i].spec) != 0)
			fail_msg("'%s': %s", ok[i].spec, err_msg(&e));
		assert_int_equal(c.ndisks, 1);
		assert_string_equal(c.disks[0].path, ok[i].path);
		assert_string_equal(c.disks[0].serial, ok[i].serial);
	}
}

static void test_disk_errors(void **state)
{
	FAIL("--disk: missing path=PATH", "--kernel", "k", "--disk", "readonly=on");
	FAIL("--disk: missing path=PATH", "--kernel", "k", "--disk", "format=raw,serial=s");
	FAIL("--disk: unknown key 'file' (expected path, format, readonly, cache, serial, backing or "
	     "cache-size)",
	     "--kernel", "k", "--disk", "file=/x");
	FAIL("--disk: unknown key 'Path'", "--kernel", "k", "--disk", "Path=/x");
	FAIL("--disk: unknown key 'if'", "--kernel", "k", "--disk", "path=/x,if=virtio");
	FAIL("--disk: invalid format 'vmdk': expected raw or qcow2", "--kernel", "k", "--disk",
	     "path=/x,format=vmdk");
	FAIL("--disk: invalid format 'RAW'", "--kernel", "k", "--disk", "path=/x,format=RAW");
	FAIL("--disk: invalid readonly 'yes': expected on or off", "--kernel", "k", "--disk",
	     "path=/x,readonly=yes");
	FAIL("--disk: invalid readonly '1'", "--kernel", "k", "--disk", "path=/x,readonly=1");
	FAIL("--disk: invalid cache 'directsync': expected none or writeback", "--kernel", "k", "--disk",
	     "path=/x,cache=directsync");
	FAIL("--disk: invalid serial '123456789012345678901': longer than 20 bytes", "--kernel", "k",
	     "--disk", "path=/x,serial=123456789012345678901");
	FAIL("--disk: invalid serial: only printable ASCII characters are allowed", "--kernel", "k", "--disk",
	     "path=/x,serial=a\tb");
	FAIL("--disk: invalid serial: only printable ASCII", "--kernel", "k", "--disk",
	     "path=/x,serial=caf\xc3\xa9");
	FAIL("--disk: key 'path' given more than once", "--kernel", "k", "--disk", "path=/x,path=/y");
	FAIL("--disk: key 'readonly' given more than once", "--kernel", "k", "--disk",
	     "path=/x,readonly=on,readonly=on");
	FAIL("--disk: key 'path' has an empty value", "--kernel", "k", "--disk", "path=");
	FAIL("--disk: key 'serial' has an empty value", "--kernel", "k", "--disk", "path=/x,serial=");
	FAIL("--disk: key 'format' has an empty value", "--kernel", "k", "--disk", "format=,path=/x");
	FAIL("--disk: empty value (expected path=PATH[,key=value...])", "--kernel", "k", "--disk=");
	FAIL("--disk: empty value", "--kernel", "k", "--disk", "");
	FAIL("--disk: empty item (a stray ',')", "--kernel", "k", "--disk", "path=/x,");
	FAIL("--disk: empty item (a stray ',')", "--kernel", "k", "--disk", ",path=/x");
	FAIL("--disk: empty item (a stray ',')", "--kernel", "k", "--disk", "path=/x,,,");
	FAIL("--disk: empty item (a stray ',')", "--kernel", "k", "--disk", "path=/x,readonly=on,");
	FAIL("--disk: 'readonly' is not key=value", "--kernel", "k", "--disk", "path=/x,readonly");
	FAIL("--disk: '/x.img' is not key=value", "--kernel", "k", "--disk", "/x.img");
	FAIL("--disk: '=' without a key", "--kernel", "k", "--disk", "=/x");
	FAIL("--disk: '=' without a key", "--kernel", "k", "--disk", "path=/x,=on");
	FAIL("option '--disk' needs a value", "--kernel", "k", "--disk");
	FAIL("option '--disk' needs a value", "--kernel", "k", "--disk", "--cpus", "2");
	/* The second disk's mistake fails the whole parse. */
	FAIL("--disk: missing path=PATH", "--kernel", "k", "--disk", "path=/a", "--disk", "serial=s");

	/* The longest path fits; one byte more does not. */
	static char path[KVMINI_DISK_PATH_MAX + 64];
	strcpy(path, "path=");
	memset(path + 5, 'p', KVMINI_DISK_PATH_MAX - 1);
	path[5 + KVMINI_DISK_PATH_MAX - 1] = '\0';
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--disk", path), 0);
	assert_int_equal(strlen(c.disks[0].path), KVMINI_DISK_PATH_MAX - 1);
	strcat(path, "q");
	FAIL("--disk: path is longer than 4095 bytes", "--kernel", "k", "--disk", path);
	strcat(path, "qqqqqqq,readonly=on");
	FAIL("--disk: path is longer than 4095 bytes", "--kernel", "k", "--disk", path);
}

static void test_net_minimal(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--net", "tap=tap0"), 0);
	assert_int_equal(c.nnics, 1);
	const struct kvmini_net *n = &c.nics[0];
	assert_int_equal(n->kind, KVMINI_NET_TAP);
	assert_string_equal(n->ifname, "tap0");
	assert_string_equal(n->bridge, "");
	assert_int_equal(n->mode, KVMINI_MACVTAP_BRIDGE);
	assert_int_equal(n->fd, -1);
	assert_false(n->mac_set);
	assert_int_equal(n->queues, 1);
	/* No NIC unless asked. */
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k"), 0);
	assert_int_equal(c.nnics, 0);
}

static void test_net_kinds(void **state)
{
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--net",
			       "tap=vm-tap.1,bridge=br0,mac=52:54:00:AB:cd:0f,queues=4",
			       "--net=mac=02:00:00:00:00:01,macvtap=eth0,mode=vepa", "--net", "fd=0", "--net",
			       "queues=1,fd=7,mac=52:54:00:00:00:07", "--net",
			       "macvtap=eth0,mode=passthru,queues=16", "--net", "tap=a,,b"),
			 0);
	assert_int_equal(c.nnics, 6);
	const struct kvmini_net *n = c.nics;
	assert_int_equal(n[0].kind, KVMINI_NET_TAP);
	assert_string_equal(n[0].ifname, "vm-tap.1");
	assert_string_equal(n[0].bridge, "br0");
	assert_true(n[0].mac_set);
	assert_memory_equal(n[0].mac, "\x52\x54\x00\xab\xcd\x0f", 6);
	assert_int_equal(n[0].queues, 4);

	assert_int_equal(n[1].kind, KVMINI_NET_MACVTAP);
	assert_string_equal(n[1].ifname, "eth0");
	assert_string_equal(n[1].bridge, "");
	assert_int_equal(n[1].mode, KVMINI_MACVTAP_VEPA);
	assert_true(n[1].mac_set);
	assert_memory_equal(n[1].mac, "\x02\x00\x00\x00\x00\x01", 6);
	assert_int_equal(n[1].queues, 1);

	assert_int_equal(n[2].kind, KVMINI_NET_FD);
	assert_int_equal(n[2].fd, 0);
	assert_string_equal(n[2].ifname, "");
	assert_false(n[2].mac_set);
	assert_int_equal(n[3].kind, KVMINI_NET_FD);
	assert_int_equal(n[3].fd, 7);
	assert_memory_equal(n[3].mac, "\x52\x54\x00\x00\x00\x07", 6);
	assert_int_equal(n[3].queues, 1);

	assert_int_equal(n[4].mode, KVMINI_MACVTAP_PASSTHRU);
	assert_int_equal(n[4].queues, KVMINI_NET_MAX_QUEUES);
	assert_string_equal(n[5].ifname, "a,b");

	static const struct {
		const char *mode;
		enum kvmini_macvtap_mode m;
	} modes[] = {{"bridge", KVMINI_MACVTAP_BRIDGE},
		     {"vepa", KVMINI_MACVTAP_VEPA},
		     {"private", KVMINI_MACVTAP_PRIVATE},
		     {"passthru", KVMINI_MACVTAP_PASSTHRU}};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char spec[64];
		snprintf(spec, sizeof(spec), "macvtap=enp1s0f1,mode=%s", modes[i].mode);
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--net", spec), 0);
		assert_int_equal(c.nics[0].mode, modes[i].m);
	}
	/* The longest interface name, and two NICs on one macvtap parent. */
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--net", "tap=abcdefghijklmno,bridge=ABCDEFGHIJKLMNO",
			       "--net", "macvtap=eth0", "--net", "macvtap=eth0"),
			 0);
	assert_string_equal(c.nics[0].ifname, "abcdefghijklmno");
	assert_string_equal(c.nics[0].bridge, "ABCDEFGHIJKLMNO");
	assert_int_equal(c.nnics, 3);
}

static void test_net_limit(void **state)
{
	struct kvmini_config c, before;
	struct err e;
	char specs[KVMINI_MAX_NICS + 1][32];
	char *argv[2 * KVMINI_MAX_NICS + 8];
	int argc = 0;
	argv[argc++] = "run";
	argv[argc++] = "--kernel";
	argv[argc++] = "k";
	for (int i = 0; i < KVMINI_MAX_NICS; i++) {
		snprintf(specs[i], sizeof(specs[i]), "tap=tap%d", i);
		argv[argc++] = "--net";
		argv[argc++] = specs[i];
	}
	argv[argc] = NULL;
	defaults(&c);
	err_clear(&e);
	assert_int_equal(options_parse_run(argc, argv, &c, &e), 0);
	assert_int_equal(c.nnics, KVMINI_MAX_NICS);
	for (int i = 0; i < KVMINI_MAX_NICS; i++)
		assert_string_equal(c.nics[i].ifname, specs[i] + 4);

	defaults(&c);
	before = c;
	snprintf(specs[KVMINI_MAX_NICS], sizeof(specs[0]), "fd=3");
	argv[argc++] = "--net";
	argv[argc++] = specs[KVMINI_MAX_NICS];
	argv[argc] = NULL;
	err_clear(&e);
	assert_int_equal(options_parse_run(argc, argv, &c, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "too many --net options: at most 8");
	assert_memory_equal(&c, &before, sizeof(c));
}

static void test_net_errors(void **state)
{
	FAIL("--net: missing tap=NAME, macvtap=IFACE or fd=N", "--kernel", "k", "--net",
	     "mac=52:54:00:12:34:56");
	FAIL("--net: missing tap=NAME", "--kernel", "k", "--net", "queues=2");
	FAIL("--net: only one of tap=, macvtap= or fd= may be given", "--kernel", "k", "--net",
	     "tap=t0,fd=3");
	FAIL("--net: only one of tap=, macvtap= or fd= may be given", "--kernel", "k", "--net",
	     "macvtap=e,tap=t");
	FAIL("--net: only one of tap=, macvtap= or fd= may be given", "--kernel", "k", "--net",
	     "fd=3,macvtap=e");
	FAIL("--net: key 'tap' given more than once", "--kernel", "k", "--net", "tap=a,tap=b");
	FAIL("--net: key 'mac' given more than once", "--kernel", "k", "--net",
	     "tap=a,mac=52:54:00:12:34:56,mac=52:54:00:12:34:56");
	FAIL("--net: bridge= goes with tap= only", "--kernel", "k", "--net", "macvtap=eth0,bridge=br0");
	FAIL("--net: bridge= goes with tap= only", "--kernel", "k", "--net", "bridge=br0,fd=3");
	FAIL("--net: mode= goes with macvtap= only", "--kernel", "k", "--net", "tap=t0,mode=vepa");
	FAIL("--net: mode= goes with macvtap= only", "--kernel", "k", "--net", "fd=4,mode=bridge");
	FAIL("--net: invalid mode 'source': expected bridge, vepa, private or passthru", "--kernel", "k",
	     "--net", "macvtap=eth0,mode=source");
	FAIL("--net: invalid mode 'Bridge'", "--kernel", "k", "--net", "macvtap=eth0,mode=Bridge");
	FAIL("--net: unknown key 'ifname' (expected tap, macvtap, fd, bridge, mode, mac or queues)",
	     "--kernel", "k", "--net", "ifname=tap0");
	FAIL("--net: unknown key 'model'", "--kernel", "k", "--net", "tap=t,model=virtio");

	/* Interface names. */
	FAIL("--net: invalid interface name 'abcdefghijklmnop' for tap=: 1 to 15 bytes, without '/', ':' or "
	     "whitespace, and not '.' or '..'",
	     "--kernel", "k", "--net", "tap=abcdefghijklmnop");
	FAIL("--net: invalid interface name 'a/b' for tap=", "--kernel", "k", "--net", "tap=a/b");
	FAIL("--net: invalid interface name 'a b' for macvtap=", "--kernel", "k", "--net", "macvtap=a b");
	FAIL("--net: invalid interface name 'a\tb' for tap=", "--kernel", "k", "--net", "tap=a\tb");
	FAIL("--net: invalid interface name 'eth0:1' for macvtap=", "--kernel", "k", "--net",
	     "macvtap=eth0:1");
	FAIL("--net: invalid interface name '.' for tap=", "--kernel", "k", "--net", "tap=.");
	FAIL("--net: invalid interface name '..' for macvtap=", "--kernel", "k", "--net", "macvtap=..");
	FAIL("--net: invalid interface name 'b r' for bridge=", "--kernel", "k", "--net", "tap=t,bridge=b r");
	FAIL("--net: invalid interface name 'br/0' for bridge=", "--kernel", "k", "--net",
	     "tap=t,bridge=br/0");
	FAIL("--net: the value of tap= is too long", "--kernel", "k", "--net",
	     "tap=0123456789012345678901234567890123456789012345678901234567890123456789");

	/* fd. */
	FAIL("--net: invalid fd '-1': expected a descriptor number", "--kernel", "k", "--net", "fd=-1");
	FAIL("--net: invalid fd 'x'", "--kernel", "k", "--net", "fd=x");
	FAIL("--net: invalid fd '3 '", "--kernel", "k", "--net", "fd=3 ");
	FAIL("--net: invalid fd '2147483648'", "--kernel", "k", "--net", "fd=2147483648");
	FAIL("--net: fd= gives one queue pair, not 2", "--kernel", "k", "--net", "fd=3,queues=2");

	/* mac. */
	FAIL("--net: mac 01:00:5e:00:00:01 is a multicast address; a NIC needs a unicast one", "--kernel",
	     "k", "--net", "tap=t,mac=01:00:5e:00:00:01");
	FAIL("--net: mac ff:ff:ff:ff:ff:ff is a multicast address", "--kernel", "k", "--net",
	     "tap=t,mac=ff:ff:ff:ff:ff:ff");
	FAIL("--net: mac 00:00:00:00:00:00 is all zeros", "--kernel", "k", "--net",
	     "tap=t,mac=00:00:00:00:00:00");
	static const char *const bad_macs[] = {
	    "52:54:00:12:34",	  "52:54:00:12:34:5",  "52:54:00:12:34:567", "52-54-00-12-34-56",
	    "525400123456",	  "52:54:00:12:34:5g", "52:54:0:12:34:56:",  " 52:54:00:12:34:5",
	    "52:54:00:12:34:56:", "x2:54:00:12:34:56",
	};
	for (size_t i = 0; i < sizeof(bad_macs) / sizeof(bad_macs[0]); i++) {
		char spec[64], want[96];
		snprintf(spec, sizeof(spec), "tap=t,mac=%s", bad_macs[i]);
		snprintf(want, sizeof(want), "--net: invalid mac '%s': expected six hex pairs", bad_macs[i]);
		FAIL(want, "--kernel", "k", "--net", spec);
	}

	/* queues. */
	FAIL("--net: invalid queues '0': expected an integer from 1 to 16", "--kernel", "k", "--net",
	     "tap=t,queues=0");
	FAIL("--net: invalid queues '17'", "--kernel", "k", "--net", "tap=t,queues=17");
	FAIL("--net: invalid queues '2x'", "--kernel", "k", "--net", "macvtap=e,queues=2x");
	FAIL("--net: invalid queues '-1'", "--kernel", "k", "--net", "tap=t,queues=-1");

	/* Syntax. */
	FAIL("--net: empty value (expected tap=NAME, macvtap=IFACE or fd=N)", "--kernel", "k", "--net=");
	FAIL("--net: key 'tap' has an empty value", "--kernel", "k", "--net", "tap=");
	FAIL("--net: key 'bridge' has an empty value", "--kernel", "k", "--net", "tap=t,bridge=");
	FAIL("--net: empty item (a stray ',')", "--kernel", "k", "--net", "tap=t,");
	FAIL("--net: empty item (a stray ',')", "--kernel", "k", "--net", ",tap=t");
	FAIL("--net: 'tap0' is not key=value", "--kernel", "k", "--net", "tap0");
	FAIL("--net: '=' without a key", "--kernel", "k", "--net", "=tap0");
	FAIL("option '--net' needs a value", "--kernel", "k", "--net");
	FAIL("option '--net' needs a value", "--kernel", "k", "--net", "--cpus", "2");

	/* One tap or fd for two NICs. */
	FAIL("--net: tap tap0 is given to two NICs", "--kernel", "k", "--net", "tap=tap0", "--net",
	     "tap=tap0,queues=2");
	FAIL("--net: fd 5 is given to two NICs", "--kernel", "k", "--net", "fd=5", "--net", "fd=05");
	/* The second NIC's mistake fails the whole parse. */
	FAIL("--net: missing tap=NAME", "--kernel", "k", "--net", "tap=a", "--net", "mac=52:54:00:12:34:56");
}

static void test_usage(void **state)
{
	const char *u = options_run_usage();
	assert_non_null(strstr(u, "kvmini run"));
	assert_non_null(strstr(u, "Ctrl-A x quits; Ctrl-A Ctrl-A sends a literal Ctrl-A"));
	static const char *const names[] = {
	    "--kernel",
	    "--initrd",
	    "--cmdline",
	    "--cpus",
	    "--mem SIZE[,KEY=on|off]",
	    "hugepages=on",
	    "merge=on",
	    "shared=on",
	    "/proc/sys/vm/nr_hugepages",
	    "--no-reboot",
	    "--kvm-device",
	    "--disk path=PATH",
	    "format=raw|qcow2",
	    "readonly=on|off",
	    "cache=none|writeback",
	    "serial=STR",
	    "vda, vdb",
	    "--net tap=NAME[,bridge=BR]",
	    "--net macvtap=IFACE[,mode=MODE]",
	    "--net fd=N[,mac=MAC]",
	    "mode=bridge|vepa|private|passthru",
	    "queues=N",
	    "multi_queue",
	    "command line always gives the same MAC",
	    "IFF_VNET_HDR",
	    ",,",
	    "--help",
	    "-h",
	    "Exit status",
	    "--user NAME|UID",
	    "--group NAME|GID",
	    "--jail DIR",
	    "--seccomp on|off|log",
	    "0      the guest powered off (also after SIGTERM), or rebooted with --no-reboot",
	    "exit-status port, I/O port 0x501",
	    "101    the guest kernel panicked",
	    "1      an error",
	    KVMINI_DEFAULT_CMDLINE};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(u, names[i]))
			fail_msg("run usage lacks '%s'", names[i]);
	const char *m = options_main_usage();
	assert_non_null(strstr(m, "run"));
	assert_non_null(strstr(m, "kvmini run --help"));
	assert_non_null(strstr(m, "--help"));
}

/* --user, --group, --jail, --seccomp; the command's defaults: drop privileges, seccomp on. */
static void test_privilege(void **state)
{
	(void)state;
	struct kvmini_config c;
	struct err e;
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k"), 0);
	assert_true(c.drop_privileges);
	assert_int_equal(c.seccomp, KVMINI_SECCOMP_ON);
	assert_false(c.set_uid);
	assert_false(c.set_gid);
	assert_null(c.jail);

	struct passwd *pw = getpwnam("nobody");
	if (pw) {
		uid_t uid = pw->pw_uid;
		gid_t gid = pw->pw_gid;
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--user", "nobody", "--jail", "/var/empty"),
				 0);
		assert_true(c.set_uid);
		assert_int_equal(c.uid, uid);
		assert_true(c.set_gid); /* the user's own group */
		assert_int_equal(c.gid, gid);
		assert_string_equal(c.jail, "/var/empty");
	}
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--user=1234", "--group", "5678"), 0);
	assert_int_equal(c.uid, 1234);
	assert_int_equal(c.gid, 5678);
	defaults(&c);
	assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--group", "0"), 0);
	assert_false(c.set_uid);
	assert_true(c.set_gid);
	assert_int_equal(c.gid, 0);
	if (getgrnam("root")) {
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", "--group", "root"), 0);
		assert_int_equal(c.gid, 0);
	}
	const char *modes[] = {"on", "off", "log"};
	const enum kvmini_seccomp want[] = {KVMINI_SECCOMP_ON, KVMINI_SECCOMP_OFF, KVMINI_SECCOMP_LOG};
	for (int i = 0; i < 3; i++) {
		char arg[32];
		snprintf(arg, sizeof(arg), "--seccomp=%s", modes[i]);
		defaults(&c);
		assert_int_equal(PARSE(&c, &e, "--kernel", "k", arg), 0);
		assert_int_equal(c.seccomp, want[i]);
	}

	FAIL("no such user", "--kernel", "k", "--user", "kv-no-such-user");
	FAIL("no such group", "--kernel", "k", "--group", "kv-no-such-group");
	FAIL("give --group too", "--kernel", "k", "--user", "3999999");
	FAIL("too large", "--kernel", "k", "--user", "4294967295", "--group", "0");
	FAIL("--user", "--kernel", "k", "--user=");
	FAIL("--group", "--kernel", "k", "--group=");
	FAIL("needs a non-empty path", "--kernel", "k", "--jail=");
	FAIL("needs a value", "--kernel", "k", "--jail");
	FAIL("on, off or log", "--kernel", "k", "--seccomp", "maybe");
	FAIL("on, off or log", "--kernel", "k", "--seccomp=");
	FAIL("more than once", "--kernel", "k", "--user", "0", "--user", "0");
	FAIL("more than once", "--kernel", "k", "--seccomp=on", "--seccomp=off");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal),
	    cmocka_unit_test(test_api_sock),
	    cmocka_unit_test(test_all_separate),
	    cmocka_unit_test(test_all_equals),
	    cmocka_unit_test(test_cmdline_as_is),
	    cmocka_unit_test(test_cpus),
	    cmocka_unit_test(test_mem),
	    cmocka_unit_test(test_mem_keys),
	    cmocka_unit_test(test_help),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_repeatable),
	    cmocka_unit_test(test_shutdown_timeout),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_disk_minimal),
	    cmocka_unit_test(test_disk_keys),
	    cmocka_unit_test(test_disk_order_and_limit),
	    cmocka_unit_test(test_disk_commas),
	    cmocka_unit_test(test_disk_errors),
	    cmocka_unit_test(test_net_minimal),
	    cmocka_unit_test(test_net_kinds),
	    cmocka_unit_test(test_net_limit),
	    cmocka_unit_test(test_net_errors),
	    cmocka_unit_test(test_privilege),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
