/* SPDX-License-Identifier: MIT */
/*
 * seccomp allow-lists per thread kind, and thread creation that installs them
 * (docs/SECURITY.md; vmm/sandbox.c decides when the sandbox starts).
 *
 * seccomp filters belong to a thread, and a thread inherits them from the one
 * that creates it. Every kvmini thread is created through
 * sandbox_thread_create(), which, when its creator is sandboxed, installs that
 * kind's filter in the new thread before it runs anything else.
 *
 * Filters stack and only narrow: a thread's calls pass only if every filter
 * of its ancestors lets them through. Each kind's allow-list is therefore its
 * own list plus the lists of the kinds it creates (vCPU threads start the
 * virtio-blk and virtio-net threads at DRIVER_OK, the supervisor starts vCPUs
 * after a reboot, the API thread a migration), computed here from one table:
 * no thread ever has more than its own kind's list, and guest-facing kinds
 * (vCPU, blk queue and worker, net, console) have no open, socket, connect or
 * exec at all.
 */
#include "common/seccomp.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/kvm.h>

#include "arch_types.h"

static const char *const kind_names[SB_KIND_COUNT] = {
    [SB_MAIN] = "main",		  [SB_SUPERVISOR] = "supervisor", [SB_API] = "api",
    [SB_MIGRATION] = "migration", [SB_CONSOLE] = "console",	  [SB_VCPU] = "vcpu",
    [SB_BLK_QUEUE] = "blk-queue", [SB_BLK_WORKER] = "blk-worker", [SB_NET] = "net",
};

const char *sandbox_kind_name(enum sandbox_kind kind)
{
	return kind < SB_KIND_COUNT ? kind_names[kind] : "unknown";
}

/* ---- the allow-lists ---- */

/* How a listed call is let through; when lists merge, the higher value wins. */
enum cond {
	C_ERRNO_EACCES = 1, /* fails with EACCES (a path that must fail softly, never succeed) */
	C_ERRNO_ENOSYS,	    /* fails with ENOSYS (clone3: glibc then falls back to clone) */
	C_IOCTL_GUEST,	    /* ioctl with one of guest_ioctls[] */
	C_CLONE_THREAD,	    /* clone of a thread (CLONE_THREAD), never of a process */
	C_FSTAT_EMPTY,	    /* newfstatat(fd, "", AT_EMPTY_PATH): fstat, no path */
	C_TGKILL_SELF,	    /* tgkill to a thread of this process */
	C_SIGACTION,	    /* rt_sigaction, except for SIGSYS (our report of a denied call) */
	C_PRCTL,	    /* prctl: no_new_privs, seccomp, thread names */
	C_ANY,		    /* allowed whatever the arguments */
};

struct sc {
	const char *name;
	enum cond cond;
};

/*
 * The ioctls a guest-facing thread makes: KVM_RUN (and the registers read for
 * an error report), interrupts (line, MSI routing, irqfd, ioeventfd), the tap
 * offloads and queues the driver picks, isatty() from stdio, and the
 * terminal's mode put back by a crash handler.
 */
static const unsigned long guest_ioctls[] = {
    KVM_RUN,	   ARCH_GUEST_IOCTLS, KVM_IRQ_LINE,  KVM_SET_GSI_ROUTING, KVM_IRQFD,
    KVM_IOEVENTFD, KVM_SIGNAL_MSI,    TUNSETOFFLOAD, TUNSETQUEUE,	  TCGETS,
    TCSETSF, /* a crash in any thread puts the console's terminal back (vmm/console_tty.c) */
};

/* What every kvmini thread needs: glibc (malloc, stdio, locks, signals, clocks) and plain I/O on its fds. */
static const struct sc base_list[] = {
    {"read", C_ANY},
    {"write", C_ANY},
    {"readv", C_ANY},
    {"writev", C_ANY},
    {"pread64", C_ANY},
    {"pwrite64", C_ANY},
    {"preadv", C_ANY},
    {"pwritev", C_ANY},
    {"preadv2", C_ANY},
    {"pwritev2", C_ANY},
    {"lseek", C_ANY},
    {"close", C_ANY},
    {"fcntl", C_ANY},
    {"fstat", C_ANY},
    {"newfstatat", C_FSTAT_EMPTY},
    {"poll", C_ANY},
    {"ppoll", C_ANY},
    {"epoll_wait", C_ANY},
    {"epoll_pwait", C_ANY},
    {"futex", C_ANY},
    {"mmap", C_ANY},
    {"munmap", C_ANY},
    {"mprotect", C_ANY},
    {"madvise", C_ANY},
    {"mremap", C_ANY},
    {"brk", C_ANY},
    {"rt_sigreturn", C_ANY},
    {"rt_sigprocmask", C_ANY},
    {"rt_sigaction", C_SIGACTION},
    {"sigaltstack", C_ANY},
    {"restart_syscall", C_ANY},
    {"exit", C_ANY},
    {"exit_group", C_ANY},
    {"clock_gettime", C_ANY},
    {"clock_getres", C_ANY},
    {"clock_nanosleep", C_ANY},
    {"nanosleep", C_ANY},
    {"gettimeofday", C_ANY},
    {"time", C_ANY},
    {"getpid", C_ANY},
    {"gettid", C_ANY},
    {"getuid", C_ANY},
    {"geteuid", C_ANY},
    {"getgid", C_ANY},
    {"getegid", C_ANY},
    {"getppid", C_ANY},
    {"tgkill", C_TGKILL_SELF},
    {"sched_yield", C_ANY},
    {"sched_getaffinity", C_ANY}, /* pthread_getattr_np() (sanitizers, at thread start) */
    {"getrandom", C_ANY},
    {"set_robust_list", C_ANY},
    {"rseq", C_ANY},
    {"seccomp", C_ANY}, /* a filter only ever narrows */
    {"prctl", C_PRCTL},
    {NULL, 0},
};

/* Starting threads (pthread_create). */
#define SPAWN                                                                                                \
	{"clone", C_CLONE_THREAD},                                                                           \
	{                                                                                                    \
		"clone3", C_ERRNO_ENOSYS                                                                     \
	}

/* Disk I/O beyond reads and writes: flushes, discard and write-zeroes, image growth. */
#define DISK_IO                                                                                              \
	{"fdatasync", C_ANY}, {"fsync", C_ANY}, {"fallocate", C_ANY},                                        \
	{                                                                                                    \
		"ftruncate", C_ANY                                                                           \
	}

/* eventfd2: an MSI-X vector's irqfd, made when the guest first unmasks it (at most one per vector). */
static const struct sc vcpu_list[] = {{"ioctl", C_IOCTL_GUEST}, {"eventfd2", C_ANY}, SPAWN, {NULL, 0}};
static const struct sc blk_list[] = {{"ioctl", C_IOCTL_GUEST}, DISK_IO, {NULL, 0}};
static const struct sc net_list[] = {{"ioctl", C_IOCTL_GUEST}, {NULL, 0}};
static const struct sc console_list[] = {{"ioctl", C_IOCTL_GUEST}, {NULL, 0}};
/* A reboot builds a new machine: KVM_CREATE_VM and the rest on the KVM fd kept open, memory. */
static const struct sc supervisor_list[] = {
    {"ioctl", C_ANY},
    {"eventfd2", C_ANY},
    {"memfd_create", C_ANY},
    {"ftruncate", C_ANY},
    {"openat", C_ERRNO_EACCES}, /* the huge page counts in an error message: not in a jail */
    {"open", C_ERRNO_EACCES},
    SPAWN,
    {NULL, 0},
};
/* Clients, and `save FILE` (relative to the jail). */
static const struct sc api_list[] = {
    {"ioctl", C_ANY},
    {"accept4", C_ANY},
    {"accept", C_ANY},
    {"recvfrom", C_ANY},
    {"recvmsg", C_ANY},
    {"sendto", C_ANY},
    {"sendmsg", C_ANY},
    {"getsockopt", C_ANY},
    {"shutdown", C_ANY},
    {"openat", C_ANY},
    {"open", C_ANY},
    {"unlink", C_ANY},
    {"unlinkat", C_ANY},
    {"eventfd2", C_ANY},
    {"pipe2", C_ANY},
    DISK_IO,
    SPAWN,
    {NULL, 0},
};
/* A TCP connection (getaddrinfo may read /etc/hosts: in a jail, numeric addresses work). */
static const struct sc migration_list[] = {
    {"ioctl", C_ANY},
    {"socket", C_ANY},
    {"connect", C_ANY},
    {"setsockopt", C_ANY},
    {"getsockopt", C_ANY},
    {"getsockname", C_ANY},
    {"getpeername", C_ANY},
    {"sendto", C_ANY},
    {"sendmsg", C_ANY},
    {"recvfrom", C_ANY},
    {"recvmsg", C_ANY},
    {"shutdown", C_ANY},
    {"openat", C_ANY},
    {"newfstatat", C_ANY},
    {"uname", C_ANY},
    {"eventfd2", C_ANY},
    /* auto-converge: a timer per vCPU that kicks it (vmm/migration/throttle.c) */
    {"timer_create", C_ANY},
    {"timer_settime", C_ANY},
    {"timer_delete", C_ANY},
    DISK_IO,
    {NULL, 0},
};
/* The command's main loop and teardown: waiting for the helper, the terminal. */
static const struct sc main_list[] = {
    {"ioctl", C_ANY}, {"wait4", C_ANY}, {"eventfd2", C_ANY}, {"pipe2", C_ANY}, SPAWN, {NULL, 0},
};

static const struct sc *const own_lists[SB_KIND_COUNT] = {
    [SB_MAIN] = main_list,	     [SB_SUPERVISOR] = supervisor_list, [SB_API] = api_list,
    [SB_MIGRATION] = migration_list, [SB_CONSOLE] = console_list,	[SB_VCPU] = vcpu_list,
    [SB_BLK_QUEUE] = blk_list,	     [SB_BLK_WORKER] = blk_list,	[SB_NET] = net_list,
};

/* Which kinds a kind's threads create (SB_KIND_COUNT ends a row). */
static const enum sandbox_kind children[SB_KIND_COUNT][5] = {
    [SB_MAIN] = {SB_SUPERVISOR, SB_API, SB_CONSOLE, SB_VCPU, SB_KIND_COUNT},
    [SB_SUPERVISOR] = {SB_VCPU, SB_KIND_COUNT},
    [SB_API] = {SB_MIGRATION, SB_KIND_COUNT},
    [SB_MIGRATION] = {SB_KIND_COUNT},
    [SB_CONSOLE] = {SB_KIND_COUNT},
    [SB_VCPU] = {SB_BLK_QUEUE, SB_BLK_WORKER, SB_NET, SB_KIND_COUNT},
    [SB_BLK_QUEUE] = {SB_KIND_COUNT},
    [SB_BLK_WORKER] = {SB_KIND_COUNT},
    [SB_NET] = {SB_KIND_COUNT},
};

#define MAX_RULES 256

/* Adds kind's own list and its children's (recursively) to out[0..*n), the widest condition winning. */
static void collect(enum sandbox_kind kind, struct sc *out, unsigned *n)
{
	for (const struct sc *s = own_lists[kind]; s->name; s++) {
		unsigned i;
		for (i = 0; i < *n && strcmp(out[i].name, s->name); i++)
			;
		if (i == *n && *n < MAX_RULES)
			out[(*n)++] = *s;
		else if (i < *n && s->cond > out[i].cond)
			out[i].cond = s->cond;
	}
	for (unsigned c = 0; children[kind][c] != SB_KIND_COUNT; c++)
		collect(children[kind][c], out, n);
}

static unsigned kind_rules(enum sandbox_kind kind, struct sc *out)
{
	unsigned n = 0;
	for (const struct sc *s = base_list; s->name; s++)
		out[n++] = *s;
	collect(kind, out, &n);
	return n;
}

bool sandbox_kind_allows(enum sandbox_kind kind, const char *syscall)
{
	if (kind >= SB_KIND_COUNT)
		return false;
	struct sc r[MAX_RULES];
	unsigned n = kind_rules(kind, r);
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(r[i].name, syscall))
			return r[i].cond > C_ERRNO_ENOSYS;
	return false;
}

/* ---- reporting a denied call ---- */

#define NAME_TABLE_SIZE 512
static char syscall_names[NAME_TABLE_SIZE][24]; /* filled once, read by the SIGSYS handler */
static __thread enum sandbox_seccomp tls_mode;
static __thread enum sandbox_kind tls_kind = SB_KIND_COUNT; /* "unknown": not started by us */

static void append(char *buf, size_t *len, size_t size, const char *s)
{
	while (*s && *len + 1 < size)
		buf[(*len)++] = *s++;
}

static void append_num(char *buf, size_t *len, size_t size, unsigned long v, unsigned base)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i < (int)sizeof(tmp));
	while (i > 0 && *len + 1 < size)
		buf[(*len)++] = tmp[--i];
}

static void (*fatal_hook)(void);

void sandbox_set_fatal_hook(void (*fn)(void))
{
	__atomic_store_n(&fatal_hook, fn, __ATOMIC_RELEASE);
}

/* SA_RESETHAND: the raise() below, or any second denied call, dies of SIGSYS's default action. */
static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	char buf[256];
	size_t len = 0;
	int nr = si->si_syscall;
	append(buf, &len, sizeof(buf), "kvmini: seccomp: the ");
	append(buf, &len, sizeof(buf), sandbox_kind_name(tls_kind));
	append(buf, &len, sizeof(buf), " thread made a forbidden system call: ");
	append(buf, &len, sizeof(buf),
	       nr >= 0 && nr < NAME_TABLE_SIZE && syscall_names[nr][0] ? syscall_names[nr] : "?");
	append(buf, &len, sizeof(buf), " (");
	append_num(buf, &len, sizeof(buf), (unsigned long)nr, 10);
	append(buf, &len, sizeof(buf), ")");
#ifdef __x86_64__
	if (nr == SYS_ioctl && ucv) {
		ucontext_t *uc = ucv;
		append(buf, &len, sizeof(buf), " request 0x");
		append_num(buf, &len, sizeof(buf), (unsigned long)uc->uc_mcontext.gregs[REG_RSI], 16);
	}
	if ((nr == SYS_openat || nr == SYS_open) && ucv) {
		/* The path, as far as it can be read here: what was being opened tells where from. */
		ucontext_t *uc = ucv;
		const char *path = (const char *)uc->uc_mcontext.gregs[nr == SYS_open ? REG_RDI : REG_RSI];
		if (path) {
			char p[72];
			size_t i = 0;
			for (; i + 1 < sizeof(p) && path[i]; i++)
				p[i] = path[i] >= ' ' && path[i] < 127 ? path[i] : '?';
			p[i] = '\0';
			append(buf, &len, sizeof(buf), " of ");
			append(buf, &len, sizeof(buf), p);
		}
	}
#endif
	append(buf, &len, sizeof(buf), "; stopping\n");
	void (*hook)(void) = __atomic_load_n(&fatal_hook, __ATOMIC_ACQUIRE);
	if (hook)
		hook();
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
	raise(sig);
}

static void init_once(void)
{
	for (int i = 0; i < NAME_TABLE_SIZE; i++) {
		char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
		if (n) {
			snprintf(syscall_names[i], sizeof(syscall_names[i]), "%s", n);
			free(n);
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigaction(SIGSYS, &sa, NULL);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ---- filters ---- */

/* One argument comparison (the SCMP_Ax() macros leave datum_b out, which clang warns about). */
static struct scmp_arg_cmp cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = a, .datum_b = b};
}

static int add_rule(scmp_filter_ctx ctx, const struct sc *s)
{
	int nr = seccomp_syscall_resolve_name(s->name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture */
	const uint32_t allow = SCMP_ACT_ALLOW;
	switch (s->cond) {
	case C_ANY:
		return seccomp_rule_add(ctx, allow, nr, 0);
	case C_ERRNO_EACCES:
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0);
	case C_ERRNO_ENOSYS:
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	case C_IOCTL_GUEST:
		for (size_t i = 0; i < sizeof(guest_ioctls) / sizeof(guest_ioctls[0]); i++) {
			int r = seccomp_rule_add(ctx, allow, nr, 1,
						 cmp(1, SCMP_CMP_MASKED_EQ, 0xffffffffUL, guest_ioctls[i]));
			if (r)
				return r;
		}
		return 0;
	case C_CLONE_THREAD:
		return seccomp_rule_add(ctx, allow, nr, 1,
					cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	case C_FSTAT_EMPTY:
		return seccomp_rule_add(ctx, allow, nr, 1,
					cmp(3, SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
	case C_TGKILL_SELF:
		return seccomp_rule_add(ctx, allow, nr, 1, cmp(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
	case C_SIGACTION:
		return seccomp_rule_add(ctx, allow, nr, 1, cmp(0, SCMP_CMP_NE, SIGSYS, 0));
	case C_PRCTL: {
		static const int ops[] = {PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_SET_SECCOMP,
					  PR_GET_SECCOMP,      PR_SET_NAME,	    PR_GET_NAME};
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
			int r = seccomp_rule_add(ctx, allow, nr, 1, cmp(0, SCMP_CMP_EQ, ops[i], 0));
			if (r)
				return r;
		}
		return 0;
	}
	}
	return -EINVAL;
}

int sandbox_seccomp_install(enum sandbox_kind kind, enum sandbox_seccomp mode, struct err *e)
{
	if (mode == SB_SECCOMP_OFF)
		return 0;
	if (kind >= SB_KIND_COUNT)
		return err_set(e, -EINVAL, "seccomp: unknown thread kind %d", (int)kind);
	pthread_once(&once, init_once);
	scmp_filter_ctx ctx = seccomp_init(mode == SB_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	if (!ctx)
		return err_set(e, -ENOMEM, "seccomp: cannot make a filter for the %s thread",
			       sandbox_kind_name(kind));
	struct sc rules[MAX_RULES];
	unsigned n = kind_rules(kind, rules);
	int r = 0;
	for (unsigned i = 0; i < n && !r; i++)
		if ((r = add_rule(ctx, &rules[i])))
			err_set(e, r, "seccomp: cannot add %s to the %s thread's filter: %s", rules[i].name,
				sandbox_kind_name(kind), strerror(-r));
	tls_kind = kind; /* before the load: a denied call right after names this thread's kind */
	if (!r && (r = seccomp_load(ctx)))
		err_set(e, r, "seccomp: cannot install the %s thread's filter: %s", sandbox_kind_name(kind),
			strerror(-r));
	seccomp_release(ctx);
	if (!r)
		tls_mode = mode;
	return r;
}

enum sandbox_seccomp sandbox_current(void)
{
	return tls_mode;
}

struct start {
	void *(*fn)(void *);
	void *arg;
	enum sandbox_kind kind;
	enum sandbox_seccomp mode;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int err; /* an error number, 0 when the filter is in */
};

static void *trampoline(void *p)
{
	struct start *s = p;
	void *(*fn)(void *) = s->fn;
	void *arg = s->arg;
	struct err e = {{0}};
	prctl(PR_SET_NAME, kind_names[s->kind], 0, 0, 0); /* for top -H, gdb and tests */
	int r = sandbox_seccomp_install(s->kind, s->mode, &e);
	if (r)
		fprintf(stderr, "kvmini: %s\n", err_msg(&e));
	pthread_mutex_lock(&s->lock);
	s->err = r ? -r : 0;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock); /* s is the creator's: not touched after this */
	return r ? NULL : fn(arg);
}

int sandbox_thread_create(pthread_t *t, enum sandbox_kind kind, void *(*fn)(void *), void *arg)
{
	if (tls_mode == SB_SECCOMP_OFF) {
		int r = pthread_create(t, NULL, fn, arg);
		if (!r && kind < SB_KIND_COUNT)
			pthread_setname_np(*t, kind_names[kind]);
		return r;
	}
	struct start s = {.fn = fn, .arg = arg, .kind = kind, .mode = tls_mode};
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	int r = pthread_create(t, NULL, trampoline, &s);
	if (!r) {
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
		if ((r = s.err))
			pthread_join(*t, NULL);
	}
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	return r;
}
