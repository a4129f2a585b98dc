/* SPDX-License-Identifier: MIT */
/*
 * vmm/kvm.c kvm_open(): every way /dev/kvm can be unusable gets one message that names the
 * problem and what to do. ioctl() is wrapped (-Wl,--wrap=ioctl) so that a KVM of another API
 * version, or one lacking a capability, can be played by /dev/null without a real /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/scratch_dir.h"
#include "vmm/kvm.h"

/* What the fake KVM answers; fake_version 0 passes every call through to the real ioctl. */
static int fake_version;
static long fake_missing_cap = -1;

int __real_ioctl(int fd, unsigned long req, void *arg);
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!fake_version)
		return __real_ioctl(fd, req, arg);
	if (req == KVM_GET_API_VERSION)
		return fake_version;
	if (req == KVM_CHECK_EXTENSION)
		return (long)(uintptr_t)arg == fake_missing_cap ? 0 : 1;
	errno = ENOTTY;
	return -1;
}

static int setup(void **state)
{
	fake_version = 0;
	fake_missing_cap = -1;
	return scratch_dir_make(state, "test_kvm_open");
}

static int teardown(void **state)
{
	return scratch_dir_remove(state);
}

static void missing_device_says_how_to_get_kvm(void **state)
{
	char path[256];
	struct err e = {{0}};
	snprintf(path, sizeof(path), "%s/no-kvm", (char *)*state);
	assert_int_equal(kvm_open(path, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), path));
	assert_non_null(strstr(err_msg(&e), "does not exist"));
	assert_non_null(strstr(err_msg(&e), "kvm-amd"));
}

/* Root opens anything, so the check runs in a child that has become uid 65534. */
static void no_permission_says_how_to_get_it(void **state)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/kvm-0600", (char *)*state);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(*state, 0755), 0);

	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = {{0}};
		if (geteuid() == 0 && (setgroups(0, NULL) || setgid(65534) || setuid(65534)))
			_exit(3);
		int r = kvm_open(path, &e);
		dprintf(pipefd[1], "%d %s", r, err_msg(&e));
		_exit(0);
	}
	close(pipefd[1]);
	char out[600] = "";
	ssize_t n = read(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(n > 0);
	out[n] = 0;
	char expect[16];
	snprintf(expect, sizeof(expect), "%d ", -EACCES);
	assert_true(strncmp(out, expect, strlen(expect)) == 0);
	assert_non_null(strstr(out, "permission denied"));
	assert_non_null(strstr(out, "'kvm' group"));
}

static void not_a_kvm_device(void **state)
{
	(void)state;
	struct err e = {{0}};
	assert_int_equal(kvm_open("/dev/null", &e), -ENODEV);
	assert_non_null(strstr(err_msg(&e), "/dev/null is not a KVM device"));
}

static void other_api_version_refused(void **state)
{
	(void)state;
	struct err e = {{0}};
	fake_version = 11;
	assert_int_equal(kvm_open("/dev/null", &e), -ENOTSUP);
	assert_string_equal(err_msg(&e), "/dev/null speaks KVM API version 11, kvmini needs 12");
}

static void missing_capability_named(void **state)
{
	(void)state;
	struct err e = {{0}};
	fake_version = KVM_API_VERSION;
	fake_missing_cap = KVM_CAP_IRQCHIP;
	assert_int_equal(kvm_open("/dev/null", &e), -ENOTSUP);
	assert_non_null(strstr(err_msg(&e), "lacks KVM_CAP_IRQCHIP"));
}

/* A KVM that answers everything right is accepted: the failures above are the checks'. */
static void right_version_and_caps_accepted(void **state)
{
	(void)state;
	struct err e = {{0}};
	fake_version = KVM_API_VERSION;
	int fd = kvm_open("/dev/null", &e);
	assert_true(fd >= 0);
	assert_string_equal(err_msg(&e), "");
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(missing_device_says_how_to_get_kvm, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_permission_says_how_to_get_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(not_a_kvm_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(other_api_version_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(missing_capability_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(right_version_and_caps_accepted, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
