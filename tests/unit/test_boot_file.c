/* SPDX-License-Identifier: MIT */
/*
 * vmm/boot_file.c: the kernel and initrd are read afresh for each machine built; what can go
 * wrong between two builds (the file shrinks, grows, or is emptied) is an error or the file's
 * new contents, never a crash or a stale length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/scratch_dir.h"
#include "vmm/boot_file.h"

static void put(const char *dir, const char *name, const void *data, size_t len, char *path)
{
	snprintf(path, 256, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void reads_whole_file_each_time(void **state)
{
	char path[256], big[10000];
	struct err e = {{0}};
	struct boot_file f;
	uint8_t *buf;
	size_t len;

	memset(big, 'k', sizeof(big));
	put(*state, "kernel", big, sizeof(big), path);
	assert_int_equal(boot_file_open(&f, "kernel", path, &e), 0);
	assert_int_equal(boot_file_load(&f, &buf, &len, &e), 0);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(buf, big, sizeof(big));
	boot_file_unload(buf, len);

	/* Rewritten in place, shorter: the next build reads what is there now. */
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	assert_int_equal(boot_file_load(&f, &buf, &len, &e), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "abc", 3);
	boot_file_unload(buf, len);

	/* Emptied: an error naming the file, not an empty kernel. */
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(boot_file_load(&f, &buf, &len, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "kernel"));
	assert_non_null(strstr(err_msg(&e), "is empty"));
	boot_file_close(&f);
	assert_int_equal(f.fd, -1);
	boot_file_close(&f); /* twice is harmless */
}

static void bad_files_are_refused(void **state)
{
	char path[256];
	struct err e = {{0}};
	struct boot_file f;

	assert_int_equal(boot_file_open(&f, "initrd", *state, &e), -EISDIR);
	assert_non_null(strstr(err_msg(&e), "is a directory"));
	assert_int_equal(f.fd, -1);

	e = (struct err){{0}}; /* the first error set is the one kept */
	snprintf(path, sizeof(path), "%s/missing", (const char *)*state);
	assert_int_equal(boot_file_open(&f, "initrd", path, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), "cannot open initrd"));

	put(*state, "empty", "", 0, path);
	assert_int_equal(boot_file_open(&f, "initrd", path, &e), -EINVAL);
	assert_int_equal(f.fd, -1);

	e = (struct err){{0}};
	assert_int_equal(boot_file_open(&f, "kernel", "/dev/null", &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "not a regular file"));
}

static int setup(void **state)
{
	return scratch_dir_make(state, "test_boot_file");
}

static int teardown(void **state)
{
	return scratch_dir_remove(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(reads_whole_file_each_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_files_are_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
