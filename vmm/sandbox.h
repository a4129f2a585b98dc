/* SPDX-License-Identifier: MIT */
/*
 * Drop privileges, jail, seccomp: the one place where kvmini gives up what it
 * no longer needs (docs/SECURITY.md). kvmini_vm_start() calls sandbox_enter()
 * on its calling thread once every privileged open is done and before any
 * other kvmini thread exists; every later kvmini thread is started with
 * sandbox_thread_create(), which installs that thread kind's seccomp filter
 * before the thread runs its first line (and before its creator goes on).
 */
#ifndef VMM_SANDBOX_H
#define VMM_SANDBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/seccomp.h"

#define SB_MAX_CLEANUP_LINKS 16

struct sandbox_config {
	bool drop; /* capabilities (all sets, bounding too), ambient, no_new_privs */
	bool set_uid;
	uid_t uid;
	bool set_gid;
	gid_t gid;
	const char *jail; /* chroot here and chdir("/"); NULL: none */
	enum sandbox_seccomp seccomp;
	/* What the helper process removes when kvmini exits or dies (drop only). */
	int links[SB_MAX_CLEANUP_LINKS]; /* interface indexes to delete (macvtaps kvmini made) */
	unsigned nlinks;
	const char *sock_path; /* the control socket: unlinked if still the same inode */
};

/* The privileged helper: kvmini holds the write end of its pipe; EOF makes it clean up. */
struct sandbox_helper {
	pid_t pid; /* 0: none */
	int fd;
};

/* 0 when dir exists and is a directory; else -errno with one line naming the option. */
int sandbox_check_jail(const char *dir, struct err *e);

/*
 * Applies c to the calling thread and the process: starts the helper (when
 * there is something to clean up), chroots, clears the bounding and ambient
 * sets, switches groups, gid and uid, clears the capabilities, sets
 * no_new_privs, verifies all of it, and installs the SB_MAIN filter. From then
 * on this thread's sandbox_thread_create() calls filter what they start.
 * Fails (-errno, one line) without having installed a filter.
 */
int sandbox_enter(const struct sandbox_config *c, struct sandbox_helper *h, struct err *e);

/* Closes the helper's pipe and waits for it to finish its clean-up. */
void sandbox_helper_finish(struct sandbox_helper *h);

#endif
