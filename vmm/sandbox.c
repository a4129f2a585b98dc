/* SPDX-License-Identifier: MIT */
/*
 * Drop privileges, jail, seccomp (docs/SECURITY.md): the one point where
 * kvmini gives up what it no longer needs.
 *
 * Capabilities, the bounding and ambient sets and no_new_privs belong to a
 * thread and are inherited by the threads it creates; so the drop happens
 * once, on the thread that calls kvmini_vm_start() while no other kvmini
 * thread exists, before the guest's first instruction. The seccomp filters
 * (common/seccomp.c) follow: SB_MAIN on that thread, each kind's own on every
 * thread started after.
 */
#include "vmm/sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/netlink.h"

int sandbox_check_jail(const char *dir, struct err *e)
{
	struct stat st;
	if (!*dir)
		return err_set(e, -EINVAL, "--jail: the directory is empty");
	if (stat(dir, &st) < 0)
		return err_set(e, -errno, "--jail %s: %s", dir,
			       errno == ENOENT ? "no such directory" : strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "--jail %s: not a directory", dir);
	return 0;
}

static void close_from(int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = lowfd; fd < (max > 0 ? max : 1024); fd++)
		close((int)fd);
}

/* The helper: keeps its capabilities, waits for EOF on fd 3, then removes what kvmini made. */
static void __attribute__((noreturn)) helper_main(const struct sandbox_config *c, const struct stat *sock)
{
	static const int ignored[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	prctl(PR_SET_NAME, "kvmini-helper", 0, 0, 0);
	close_from(4); /* tap fds above all: a tap kvmini created goes away with its last fd */
	char b[64];
	for (;;) {
		ssize_t n = read(3, b, sizeof(b));
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	for (unsigned i = 0; i < c->nlinks; i++)
		nl_link_delete(c->links[i]);
	struct stat now;
	if (c->sock_path && lstat(c->sock_path, &now) == 0 && now.st_dev == sock->st_dev &&
	    now.st_ino == sock->st_ino)
		unlink(c->sock_path);
	_exit(0);
}

static int start_helper(const struct sandbox_config *c, struct sandbox_helper *h, struct err *e)
{
	struct stat sock = {0};
	if (c->sock_path && lstat(c->sock_path, &sock) < 0)
		return err_set(e, -errno, "--api-sock %s: %s", c->sock_path, strerror(errno));
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, -errno, "cannot start the clean-up helper: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return err_set(e, r, "cannot start the clean-up helper: fork: %s", strerror(-r));
	}
	if (pid == 0) {
		if (p[0] != 3 && dup2(p[0], 3) < 0)
			_exit(1);
		helper_main(c, &sock);
	}
	close(p[0]);
	h->pid = pid;
	h->fd = p[1];
	return 0;
}

void sandbox_helper_finish(struct sandbox_helper *h)
{
	if (!h->pid)
		return;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
		;
	h->pid = 0;
}

/*
 * The calling thread's capability sets straight from capget(2) (libcap-ng's
 * reader also opens /proc, which a jail lacks): -errno, or 0 with the 64-bit
 * effective, permitted and inheritable sets.
 */
static int read_caps(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &hdr, d) < 0)
		return -errno;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int clear_bounding_set(struct err *e)
{
	/* Only with CAP_SETPCAP; without it there is nothing to gain either (no_new_privs). */
	uint64_t eff, prm, inh;
	if (read_caps(&eff, &prm, &inh) || !(eff & (1ULL << CAP_SETPCAP)))
		return 0;
	for (int cap = 0; cap < 64; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (in < 0)
			break; /* past the kernel's last capability */
		if (in && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return err_set(e, -errno, "cannot clear capability %d from the bounding set: %s", cap,
				       strerror(errno));
	}
	return 0;
}

static int switch_ids(const struct sandbox_config *c, struct err *e)
{
	if (!c->set_uid && !c->set_gid)
		return 0;
	if (setgroups(0, NULL) < 0)
		return err_set(e, -errno, "cannot clear the supplementary groups: %s%s", strerror(errno),
			       errno == EPERM ? " (CAP_SETGID is needed)" : "");
	if (c->set_gid && setresgid(c->gid, c->gid, c->gid) < 0)
		return err_set(e, -errno, "cannot switch to group %u: %s", (unsigned)c->gid, strerror(errno));
	if (c->set_uid && setresuid(c->uid, c->uid, c->uid) < 0)
		return err_set(e, -errno, "cannot switch to user %u: %s", (unsigned)c->uid, strerror(errno));
	/* Verified, not trusted. */
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg) || getgroups(0, NULL) != 0 ||
	    (c->set_uid && (ru != c->uid || eu != c->uid || su != c->uid)) ||
	    (c->set_gid && (rg != c->gid || eg != c->gid || sg != c->gid)))
		return err_set(e, -EPERM, "the user and group switch did not take");
	if (c->set_uid && c->uid != 0 && setresuid(0, 0, 0) == 0)
		return err_set(e, -EPERM, "user %u could switch back to root", (unsigned)c->uid);
	return 0;
}

static int drop_privileges(const struct sandbox_config *c, struct err *e)
{
	int r;
	if (c->jail && (chroot(c->jail) < 0 || chdir("/") < 0))
		return err_set(e, -errno, "--jail %s: cannot chroot into it: %s%s", c->jail, strerror(errno),
			       errno == EPERM ? " (CAP_SYS_CHROOT is needed)" : "");
	if ((r = clear_bounding_set(e)))
		return r;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_set(e, -errno, "cannot clear the ambient capabilities: %s", strerror(errno));
	if ((r = switch_ids(c, e)))
		return r;
	capng_clear(CAPNG_SELECT_CAPS);
	if (capng_apply(CAPNG_SELECT_CAPS) < 0)
		return err_set(e, -EPERM, "cannot clear the capabilities (capset failed)");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set(e, -errno, "cannot set no_new_privs: %s", strerror(errno));
	/* Read back from the kernel. */
	uint64_t eff, prm, inh;
	if ((r = read_caps(&eff, &prm, &inh)))
		return err_set(e, r, "cannot read the capabilities back: %s", strerror(-r));
	if (eff | prm | inh)
		return err_set(e, -EPERM,
			       "capabilities are left after the drop (effective %#llx, permitted %#llx)",
			       (unsigned long long)eff, (unsigned long long)prm);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return err_set(e, -EPERM, "no_new_privs did not take");
	return 0;
}

/*
 * glibc state that it would otherwise set up on first use, by path: the arena
 * cap of malloc, and the time zone, read from /etc/localtime by the first
 * gmtime_r() (the RTC calls it from a vCPU thread, which may not open anything,
 * and a jail has no /etc).
 */
static void warm_up_libc(void)
{
	/*
	 * malloc, once a ninth arena is wanted (many threads), reads the CPU count from
	 * /sys/devices/system/cpu/online to cap the arenas: the cap glibc would compute (8 per
	 * CPU on 64-bit) is set now instead.
	 */
	int cpus = get_nprocs();
	mallopt(M_ARENA_MAX, 8 * (cpus > 0 ? cpus : 1));
	tzset();
	time_t t = 0;
	struct tm tm;
	gmtime_r(&t, &tm);
	localtime_r(&t, &tm);
}

int sandbox_enter(const struct sandbox_config *c, struct sandbox_helper *h, struct err *e)
{
	h->pid = 0;
	h->fd = -1;
	warm_up_libc();
	int r;
	if (c->drop || c->set_uid || c->set_gid || c->jail) {
		if ((c->nlinks || c->sock_path) && (r = start_helper(c, h, e)))
			return r;
		if ((r = drop_privileges(c, e)))
			return r;
	}
	return sandbox_seccomp_install(SB_MAIN, c->seccomp, e);
}
