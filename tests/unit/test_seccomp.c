/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the seccomp allow-lists (common/seccomp.c): what each thread kind's table holds,
 * and, in forked children that install a guest-facing kind's filter, that open, openat, socket,
 * connect, execve and fork kill the process with one line naming the thread kind and the call,
 * while the basics (I/O on open fds, memory, clocks, threads of the kinds it starts) still work.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/seccomp.h"

static const enum sandbox_kind guest_facing[] = {SB_VCPU, SB_BLK_QUEUE, SB_BLK_WORKER, SB_NET, SB_CONSOLE};
#define NGUEST (sizeof(guest_facing) / sizeof(guest_facing[0]))

/* What a guest must never get kvmini to do. */
static const char *const forbidden[] = {
    "open",
    "openat",
    "openat2",
    "creat",
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "sendto",
    "sendmsg",
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "process_vm_writev",
    "process_vm_readv",
    "kill",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "mkdir",
    "chroot",
    "mount",
    "setuid",
    "setresuid",
    "setgid",
    "capset",
    "memfd_create",
    "init_module",
    "finit_module",
    "kexec_load",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "keyctl",
    "add_key",
};

/* A broad set of names, for the subset checks between kinds. */
static const char *const names[] = {
    "read",	"write",	"readv",     "writev",	   "pread64",	 "pwrite64",   "preadv",
    "pwritev",	"close",	"ioctl",     "futex",	   "mmap",	 "munmap",     "mprotect",
    "madvise",	"brk",		"mremap",    "clone",	   "clone3",	 "exit",       "exit_group",
    "poll",	"ppoll",	"openat",    "open",	   "socket",	 "connect",    "accept4",
    "recvmsg",	"sendmsg",	"fdatasync", "fsync",	   "fallocate",	 "ftruncate",  "wait4",
    "eventfd2", "memfd_create", "unlink",    "newfstatat", "getsockopt", "setsockopt", "uname",
    "tgkill",	"rt_sigaction", "prctl",     "seccomp",	   "execve",	 "pipe2",      "shutdown",
};

static const enum sandbox_kind parents_children[][2] = {
    {SB_MAIN, SB_SUPERVISOR}, {SB_MAIN, SB_API},	{SB_MAIN, SB_CONSOLE},
    {SB_MAIN, SB_VCPU},	      {SB_SUPERVISOR, SB_VCPU}, {SB_API, SB_MIGRATION},
    {SB_VCPU, SB_BLK_QUEUE},  {SB_VCPU, SB_BLK_WORKER}, {SB_VCPU, SB_NET},
};

static void test_tables(void **state)
{
	(void)state;
	for (size_t k = 0; k < NGUEST; k++)
		for (size_t f = 0; f < sizeof(forbidden) / sizeof(forbidden[0]); f++)
			if (sandbox_kind_allows(guest_facing[k], forbidden[f]))
				fail_msg("the %s thread may call %s", sandbox_kind_name(guest_facing[k]),
					 forbidden[f]);
	/* What they need. */
	for (size_t k = 0; k < NGUEST; k++) {
		assert_true(sandbox_kind_allows(guest_facing[k], "read"));
		assert_true(sandbox_kind_allows(guest_facing[k], "writev"));
		assert_true(sandbox_kind_allows(guest_facing[k], "ioctl")); /* by request number */
		assert_true(sandbox_kind_allows(guest_facing[k], "futex"));
		assert_true(sandbox_kind_allows(guest_facing[k], "mmap"));
		assert_true(sandbox_kind_allows(guest_facing[k], "exit_group"));
	}
	assert_true(sandbox_kind_allows(SB_VCPU, "clone"));	      /* it starts the device threads */
	assert_false(sandbox_kind_allows(SB_NET, "clone"));	      /* a leaf */
	assert_false(sandbox_kind_allows(SB_VCPU, "clone3"));	      /* ENOSYS: glibc falls back to clone */
	assert_true(sandbox_kind_allows(SB_BLK_WORKER, "fdatasync")); /* guest flushes */
	assert_false(sandbox_kind_allows(SB_NET, "fdatasync"));
	assert_true(sandbox_kind_allows(SB_API, "openat")); /* save FILE */
	assert_true(sandbox_kind_allows(SB_MIGRATION, "connect"));
	assert_false(sandbox_kind_allows(SB_SUPERVISOR, "openat")); /* fails with EACCES */
	assert_false(sandbox_kind_allows(SB_SUPERVISOR, "socket"));
	assert_true(sandbox_kind_allows(SB_SUPERVISOR, "memfd_create"));
	assert_true(sandbox_kind_allows(SB_MAIN, "wait4")); /* the helper */
	for (int k = 0; k < SB_KIND_COUNT; k++) {
		assert_false(sandbox_kind_allows(k, "execve"));
		assert_false(sandbox_kind_allows(k, "fork"));
		assert_false(sandbox_kind_allows(k, "ptrace"));
		assert_false(sandbox_kind_allows(k, "setuid"));
		assert_false(sandbox_kind_allows(k, "capset"));
	}
	/* A filter stacks on its creator's: the creator's list must hold the child's. */
	for (size_t p = 0; p < sizeof(parents_children) / sizeof(parents_children[0]); p++)
		for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++)
			if (sandbox_kind_allows(parents_children[p][1], names[n]) &&
			    !sandbox_kind_allows(parents_children[p][0], names[n]))
				fail_msg("%s threads may call %s but the %s thread that starts them may not",
					 sandbox_kind_name(parents_children[p][1]), names[n],
					 sandbox_kind_name(parents_children[p][0]));
	assert_false(sandbox_kind_allows(SB_KIND_COUNT, "read"));
}

/* The basics a filtered thread still does: memory, clocks, I/O on an fd it has. */
static void basics(int fd)
{
	char *p = malloc(1 << 20); /* mmap */
	assert_non_null(p);
	memset(p, 1, 1 << 20);
	free(p);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	(void)getpid();
	if (write(fd, "x", 1) != 1)
		_exit(3);
}

static void *net_thread(void *arg)
{
	int fd = *(int *)arg;
	basics(fd);
	char name[16] = "";
	prctl(PR_GET_NAME, name, 0, 0, 0);
	if (strcmp(name, "net")) /* named after its kind, for top -H and gdb */
		_exit(5);
	syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY); /* must kill */
	return NULL;
}

enum action {
	DO_NOTHING,
	DO_OPEN,
	DO_OPENAT,
	DO_SOCKET,
	DO_CONNECT,
	DO_EXECVE,
	DO_FORK,
	DO_THREAD,
	DO_TCSETSF,    /* put a terminal's mode back, as a crash handler does */
	DO_FATAL_HOOK, /* openat with a fatal hook set: it runs before the line */
};

static void fatal_hook(void)
{
	if (write(STDERR_FILENO, "HOOK ", 5) != 5)
		_exit(6);
}

/*
 * Forks; the child installs kind's filter in mode, does the basics, then action, then _exit(0).
 * Returns the wait status; *msg gets what the child wrote on stderr.
 */
static int run_child(enum sandbox_kind kind, enum sandbox_seccomp mode, enum action a, char *msg,
		     size_t msglen)
{
	int errp[2], outp[2];
	assert_int_equal(pipe(errp), 0);
	assert_int_equal(pipe(outp), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(errp[1], STDERR_FILENO);
		close(errp[0]);
		close(outp[0]);
		struct err e = {{0}};
		int pty = -1;
		struct termios tio;
		if (a == DO_TCSETSF) {
			int m = posix_openpt(O_RDWR | O_NOCTTY);
			if (m < 0 || grantpt(m) || unlockpt(m) ||
			    (pty = open(ptsname(m), O_RDWR | O_NOCTTY)) < 0 || tcgetattr(pty, &tio))
				_exit(7);
		}
		if (sandbox_seccomp_install(kind, mode, &e))
			_exit(2);
		basics(outp[1]);
		switch (a) {
		case DO_NOTHING:
			break;
		case DO_OPEN:
			syscall(SYS_open, "/dev/null", O_RDONLY);
			break;
		case DO_OPENAT:
			syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
			break;
		case DO_SOCKET:
			syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
			break;
		case DO_CONNECT:
			syscall(SYS_connect, 0, NULL, 0);
			break;
		case DO_EXECVE: {
			char *argv[] = {"/bin/true", NULL};
			syscall(SYS_execve, "/bin/true", argv, NULL);
			break;
		}
		case DO_FORK:
			if (fork() == 0)
				_exit(0);
			break;
		case DO_TCSETSF:
			if (tcsetattr(pty, TCSAFLUSH, &tio))
				_exit(8);
			break;
		case DO_FATAL_HOOK:
			sandbox_set_fatal_hook(fatal_hook);
			syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
			break;
		case DO_THREAD: {
			pthread_t t;
			int fd = outp[1];
			if (sandbox_thread_create(&t, SB_NET, net_thread, &fd))
				_exit(4);
			pthread_join(t, NULL);
			break;
		}
		}
		_exit(0);
	}
	close(errp[1]);
	close(outp[1]);
	size_t got = 0;
	ssize_t n;
	while (got + 1 < msglen && (n = read(errp[0], msg + got, msglen - 1 - got)) > 0)
		got += n;
	msg[got] = '\0';
	close(errp[0]);
	close(outp[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void expect_killed(enum sandbox_kind kind, enum action a, const char *call, const char *kind_name)
{
	char msg[512];
	int st = run_child(kind, SB_SECCOMP_ON, a, msg, sizeof(msg));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fail_msg("%s thread, %s: expected death by SIGSYS, saw status %#x, stderr '%s'",
			 sandbox_kind_name(kind), call, st, msg);
	char want[128];
	snprintf(want, sizeof(want), "the %s thread made a forbidden system call: %s (", kind_name, call);
	if (!strstr(msg, want) || strchr(msg, '\n') != msg + strlen(msg) - 1)
		fail_msg("expected one line with '%s', saw '%s'", want, msg);
}

static void test_guest_facing_cannot_open(void **state)
{
	(void)state;
	for (size_t k = 0; k < NGUEST; k++) {
		enum sandbox_kind kind = guest_facing[k];
		const char *kn = sandbox_kind_name(kind);
		char msg[512];
		int st = run_child(kind, SB_SECCOMP_ON, DO_NOTHING, msg, sizeof(msg));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("%s thread: the basics failed: status %#x, '%s'", kn, st, msg);
		expect_killed(kind, DO_OPEN, "open", kn);
		expect_killed(kind, DO_OPENAT, "openat", kn);
		expect_killed(kind, DO_SOCKET, "socket", kn);
		expect_killed(kind, DO_CONNECT, "connect", kn);
		expect_killed(kind, DO_EXECVE, "execve", kn);
		expect_killed(kind, DO_FORK, "clone", kn); /* a process, not a thread */
		st = run_child(kind, SB_SECCOMP_ON, DO_TCSETSF, msg, sizeof(msg));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg(
			    "%s thread: a crash handler could not put the terminal back: status %#x, '%s'",
			    kn, st, msg);
	}
}

/* A forbidden call runs the fatal hook (the terminal put back) before its line and death. */
static void test_fatal_hook(void **state)
{
	(void)state;
	char msg[512];
	int st = run_child(SB_VCPU, SB_SECCOMP_ON, DO_FATAL_HOOK, msg, sizeof(msg));
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	if (strncmp(msg, "HOOK kvmini: seccomp: the vcpu thread made a forbidden system call: openat", 73))
		fail_msg("expected the hook's output, then the line; saw '%s'", msg);
}

static void test_thread_kinds(void **state)
{
	(void)state;
	/* A vCPU thread starts a net thread, which gets its own filter and kind. */
	expect_killed(SB_VCPU, DO_THREAD, "openat", "net");
	/* The API thread may open (save FILE) and start threads. */
	char msg[512];
	int st = run_child(SB_API, SB_SECCOMP_ON, DO_NOTHING, msg, sizeof(msg));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	expect_killed(SB_API, DO_EXECVE, "execve", "api");
}

static void test_log_mode(void **state)
{
	(void)state;
	/* Log: the call goes through (the kernel logs it) and the child ends normally. */
	char msg[512];
	int st = run_child(SB_VCPU, SB_SECCOMP_LOG, DO_OPENAT, msg, sizeof(msg));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("log mode: expected a normal exit, saw status %#x, '%s'", st, msg);
	/* Off: no filter at all. */
	st = run_child(SB_VCPU, SB_SECCOMP_OFF, DO_SOCKET, msg, sizeof(msg));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),	 cmocka_unit_test(test_guest_facing_cannot_open),
	    cmocka_unit_test(test_thread_kinds), cmocka_unit_test(test_fatal_hook),
	    cmocka_unit_test(test_log_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
