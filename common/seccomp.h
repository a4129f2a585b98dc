/* SPDX-License-Identifier: MIT */
/*
 * seccomp allow-lists per kvmini thread kind, and sandbox_thread_create(),
 * through which every kvmini thread starts (docs/SECURITY.md).
 */
#ifndef COMMON_SECCOMP_H
#define COMMON_SECCOMP_H

#include <pthread.h>
#include <stdbool.h>

#include "common/err.h"

/* Thread kinds, each with its own syscall allow-list. */
enum sandbox_kind {
	SB_MAIN,       /* the thread that called kvmini_vm_start() (the command's main thread) */
	SB_SUPERVISOR, /* rebuilds the machine on a guest reboot */
	SB_API,	       /* the control socket */
	SB_MIGRATION,  /* a live migration's source */
	SB_CONSOLE,    /* console input copied to the UART */
	SB_VCPU,       /* KVM_RUN and the device handlers of PIO/MMIO exits (guest-facing) */
	SB_BLK_QUEUE,  /* a virtio-blk queue (guest-facing) */
	SB_BLK_WORKER, /* a virtio-blk worker: disk I/O (guest-facing) */
	SB_NET,	       /* a virtio-net queue pair (guest-facing) */
	SB_KIND_COUNT,
};

enum sandbox_seccomp {
	SB_SECCOMP_OFF = 0,
	SB_SECCOMP_ON,	/* a forbidden call: one line on stderr, then the process dies of SIGSYS */
	SB_SECCOMP_LOG, /* forbidden calls are allowed and logged by the kernel (SCMP_ACT_LOG) */
};

const char *sandbox_kind_name(enum sandbox_kind kind);

/*
 * pthread_create() for a kvmini thread: when the calling thread is
 * sandboxed, the new thread installs kind's filter (and inherits the mode
 * for the threads it starts) before fn runs; the call returns after that,
 * an error number if it failed (the thread then ended without running fn).
 */
int sandbox_thread_create(pthread_t *t, enum sandbox_kind kind, void *(*fn)(void *), void *arg);

/* Installs kind's filter on the calling thread (mode not OFF); the thread then counts as sandboxed. */
int sandbox_seccomp_install(enum sandbox_kind kind, enum sandbox_seccomp mode, struct err *e);

/* The calling thread's sandbox mode (SB_SECCOMP_OFF when it has no filter of ours). */
enum sandbox_seccomp sandbox_current(void);

/*
 * fn runs (in the signal handler: async-signal-safe calls only) before a
 * forbidden call kills the process, e.g. to put the terminal back.
 */
void sandbox_set_fatal_hook(void (*fn)(void));

/* For tests: whether kind's filter lets syscall (by name) through, unconditionally or with a condition. */
bool sandbox_kind_allows(enum sandbox_kind kind, const char *syscall);

#endif
