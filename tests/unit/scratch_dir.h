/* SPDX-License-Identifier: MIT */
/*
 * A scratch directory for unit tests that run an outside tool (iasl, dtc) on
 * what they built: cmocka setup/teardown helpers, removed even when an
 * assertion fails. Header-only: each test is one translation unit.
 */
#ifndef KVMINI_TESTS_UNIT_SCRATCH_DIR_H
#define KVMINI_TESTS_UNIT_SCRATCH_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Makes $TMPDIR (or /tmp)/PREFIX.XXXXXX; *state points at its path (static storage). */
static inline int scratch_dir_make(void **state, const char *prefix)
{
	static char dir[128];

	snprintf(dir, sizeof(dir), "%s/%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix);
	if (!mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

/* Removes the directory and the files in it (no subdirectories are made). */
static inline int scratch_dir_remove(void **state)
{
	const char *dir = *state;
	char path[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	closedir(d);
	return rmdir(dir);
}

#endif
