/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the network backends (net/backend.h). Each case runs in a
 * child in fresh network and mount namespaces (with a sysfs of its own), so
 * nothing touches this machine's interfaces. They need root and /dev/net/tun
 * and are skipped without them. A child cannot use cmocka's asserts (a failure
 * would jump back into the child's copy of the runner): it checks with CHECK
 * and reports through its exit status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#include <cmocka.h>

#include "net/backend.h"

#define CHILD_SKIP 77

#define CHECK(c)                                                                                             \
	do {                                                                                                 \
		if (!(c)) {                                                                                  \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                \
			_exit(1);                                                                            \
		}                                                                                            \
	} while (0)

/* The open succeeds, or the child fails with the message. */
#define OPEN_OK(cfg, nb)                                                                                     \
	do {                                                                                                 \
		struct err e_ = {{0}};                                                                       \
		int r_ = net_backend_open(cfg, nb, &e_);                                                     \
		if (r_) {                                                                                    \
			fprintf(stderr, "%s:%d: net_backend_open: %d %s\n", __FILE__, __LINE__, r_,          \
				err_msg(&e_));                                                               \
			_exit(1);                                                                            \
		}                                                                                            \
	} while (0)

/* The open fails with code and a message containing want (and no output). */
static void open_fails(const struct net_backend_config *c, int code, const char *want, int line)
{
	struct net_backend *nb = (struct net_backend *)1;
	struct err e = {{0}};
	int r = net_backend_open(c, &nb, &e);
	if (r != code || !strstr(err_msg(&e), want) || nb != NULL || strchr(err_msg(&e), '\n')) {
		fprintf(stderr, "line %d: got %d '%s', wanted %d with '%s'\n", line, r, err_msg(&e), code,
			want);
		_exit(1);
	}
}
#define OPEN_FAILS(c, code, want) open_fails(c, code, want, __LINE__)

static bool have_sysfs;

static int sock(void)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	return s;
}

static unsigned if_flags(const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	int s = sock();
	CHECK(ioctl(s, SIOCGIFFLAGS, &ifr) == 0);
	close(s);
	return (unsigned)(unsigned short)ifr.ifr_flags;
}

static void make_bridge(const char *name)
{
	int s = sock();
	CHECK(ioctl(s, SIOCBRADDBR, name) == 0);
	close(s);
}

/* A tap made by hand: the fd, which keeps it (persist makes it outlive the fd). */
static int make_tap(const char *name, unsigned flags, bool persist)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_flags = (short)flags;
	CHECK(ioctl(fd, TUNSETIFF, &ifr) == 0);
	if (persist)
		CHECK(ioctl(fd, TUNSETPERSIST, 1) == 0);
	return fd;
}

static void delete_persistent_tap(const char *name, unsigned flags)
{
	int fd = make_tap(name, flags, false);
	CHECK(ioctl(fd, TUNSETPERSIST, 0) == 0);
	close(fd);
	CHECK(if_nametoindex(name) == 0);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* The fd is non-blocking, close-on-exec, with a 12-byte vnet header and IFF_VNET_HDR. */
static void check_fd(int fd, const char *ifname)
{
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int len = 0;
	CHECK(ioctl(fd, TUNGETVNETHDRSZ, &len) == 0);
	CHECK(len == NET_VNET_HDR_LEN);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	CHECK(ioctl(fd, TUNGETIFF, &ifr) == 0);
	CHECK(!strcmp(ifr.ifr_name, ifname));
	CHECK(ifr.ifr_flags & IFF_TAP);
	CHECK(ifr.ifr_flags & IFF_NO_PI);
	CHECK(ifr.ifr_flags & IFF_VNET_HDR);
}

/* A broadcast frame of 60 bytes behind a zero vnet header: the write takes all of it. */
static ssize_t write_frame(int fd)
{
	uint8_t buf[NET_VNET_HDR_LEN + 60];
	memset(buf, 0, sizeof(buf));
	uint8_t *eth = buf + NET_VNET_HDR_LEN;
	memset(eth, 0xff, 6);
	memcpy(eth + 6, "\x52\x54\x00\x00\x00\x01", 6);
	eth[12] = 0x88; /* the local experimental EtherType */
	eth[13] = 0xb5;
	return write(fd, buf, sizeof(buf));
}

/* Drops CAP_NET_ADMIN from this (child) process's effective set. */
static void drop_net_admin(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0);
	d[0].effective &= ~(1u << CAP_NET_ADMIN);
	CHECK(syscall(SYS_capset, &h, d) == 0);
}

static struct net_backend_config tap_cfg(const char *name, const char *bridge, unsigned queues)
{
	return (struct net_backend_config){
	    .kind = NET_BACKEND_TAP, .ifname = name, .bridge = bridge, .fd = -1, .queues = queues};
}

static struct net_backend_config fd_cfg(int fd)
{
	return (struct net_backend_config){.kind = NET_BACKEND_FD, .fd = fd, .queues = 1};
}

/*
 * Runs fn in a child in new network and mount namespaces; the case is skipped
 * when that is not allowed (not root) or there is no /dev/net/tun.
 */
static void in_netns(void (*fn)(void))
{
	if (access("/dev/net/tun", R_OK | W_OK))
		skip();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
			fprintf(stderr, "skipped: unshare: %s\n", strerror(errno));
			_exit(errno == EPERM ? CHILD_SKIP : 1);
		}
		/* sysfs shows the namespace of whoever mounted it: mount ours, privately. */
		have_sysfs = mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
			     mount("sysfs", "/sys", "sysfs", 0, NULL) == 0;
		fn();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_SKIP)
		skip();
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("the child failed (status 0x%x)", st);
}

static void tap_create(void)
{
	CHECK(if_nametoindex("kt0") == 0);
	struct net_backend_config c = tap_cfg("kt0", NULL, 1);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(nb->kind == NET_BACKEND_TAP);
	CHECK(nb->created);
	CHECK(!strcmp(nb->ifname, "kt0"));
	CHECK(nb->ifindex > 0 && nb->ifindex == (int)if_nametoindex("kt0"));
	CHECK(nb->nqueues == 1);
	check_fd(nb->fds[0], "kt0");
	CHECK((nb->offload_mask & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) ==
	      (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
	CHECK(nb->mtu == 1500);
	CHECK(if_flags("kt0") & IFF_UP);
	CHECK(write_frame(nb->fds[0]) == NET_VNET_HDR_LEN + 60);
	CHECK(net_backend_set_offload(nb, TUN_F_CSUM | TUN_F_TSO4) == 0);
	CHECK(net_backend_set_offload(nb, ~0u) == 0); /* masked by offload_mask */
	CHECK(net_backend_set_offload(nb, 0) == 0);
	CHECK(net_backend_set_queue(nb, 0, false) == 0); /* one queue: nothing to do */
	CHECK(net_backend_set_queue(nb, 1, true) == -EINVAL);
	int fd = nb->fds[0];
	net_backend_close(nb);
	CHECK(!fd_open(fd));
	CHECK(if_nametoindex("kt0") == 0); /* ours, not persistent: gone with its fd */
	net_backend_close(NULL);
}

static void test_tap_create(void **state)
{
	in_netns(tap_create);
}

static void tap_multiqueue(void)
{
	struct net_backend_config c = tap_cfg("kt1", "", 2);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(nb->created && nb->nqueues == 2);
	CHECK(nb->fds[0] >= 0 && nb->fds[1] >= 0 && nb->fds[0] != nb->fds[1] && nb->fds[2] == -1);
	for (int q = 0; q < 2; q++) {
		check_fd(nb->fds[q], "kt1");
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		CHECK(ioctl(nb->fds[q], TUNGETIFF, &ifr) == 0);
		CHECK(ifr.ifr_flags & IFF_MULTI_QUEUE);
	}
	/* Asking twice is harmless; the kernel refuses a second detach, so the first one happened. */
	CHECK(net_backend_set_queue(nb, 1, false) == 0);
	CHECK(net_backend_set_queue(nb, 1, false) == 0);
	struct ifreq qr;
	memset(&qr, 0, sizeof(qr));
	qr.ifr_flags = IFF_DETACH_QUEUE;
	CHECK(ioctl(nb->fds[1], TUNSETQUEUE, &qr) < 0 && errno == EINVAL);
	CHECK(write_frame(nb->fds[0]) == NET_VNET_HDR_LEN + 60);
	CHECK(net_backend_set_offload(nb, TUN_F_CSUM) == 0); /* with a queue detached */
	CHECK(net_backend_set_queue(nb, 1, true) == 0);
	CHECK(net_backend_set_queue(nb, 1, true) == 0);
	qr.ifr_flags = IFF_ATTACH_QUEUE;
	CHECK(ioctl(nb->fds[1], TUNSETQUEUE, &qr) < 0 && errno == EINVAL);
	CHECK(write_frame(nb->fds[1]) == NET_VNET_HDR_LEN + 60);
	CHECK(net_backend_set_queue(nb, 2, true) == -EINVAL);
	net_backend_close(nb);
	CHECK(if_nametoindex("kt1") == 0);

	c.queues = NET_MAX_QUEUES;
	OPEN_OK(&c, &nb);
	CHECK(nb->nqueues == NET_MAX_QUEUES);
	net_backend_close(nb);
	c.queues = NET_MAX_QUEUES + 1;
	OPEN_FAILS(&c, -EINVAL, "at most 16");
	CHECK(if_nametoindex("kt1") == 0);
}

static void test_tap_multiqueue(void **state)
{
	in_netns(tap_multiqueue);
}

static void tap_existing(void)
{
	const unsigned sq = IFF_TAP | IFF_NO_PI, mq = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
	close(make_tap("sq0", sq, true));
	close(make_tap("mq0", mq, true));

	/* A single-queue tap cannot give 2 queue pairs. */
	struct net_backend_config c = tap_cfg("sq0", NULL, 2);
	OPEN_FAILS(&c, -EINVAL,
		   "sq0 is a single-queue tap and cannot give 2 queue pairs (recreate it with `ip tuntap add "
		   "dev sq0 mode tap multi_queue`)");
	CHECK(if_nametoindex("sq0") > 0);

	/* One queue pair from either kind; neither is ours, and both outlive us. */
	static const char *const names[] = {"sq0", "mq0"};
	for (int i = 0; i < 2; i++) {
		c = tap_cfg(names[i], NULL, 1);
		struct net_backend *nb;
		OPEN_OK(&c, &nb);
		CHECK(!nb->created && nb->nqueues == 1);
		check_fd(nb->fds[0], names[i]);
		CHECK(if_flags(names[i]) & IFF_UP);
		CHECK(write_frame(nb->fds[0]) == NET_VNET_HDR_LEN + 60);
		net_backend_close(nb);
		CHECK(if_nametoindex(names[i]) > 0);
	}
	c = tap_cfg("mq0", NULL, 3);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(!nb->created && nb->nqueues == 3);
	net_backend_close(nb);

	/* A single-queue tap in use by someone else. */
	int busy = make_tap("sq0", sq, false);
	c = tap_cfg("sq0", NULL, 1);
	OPEN_FAILS(&c, -EBUSY, "tap sq0 is in use by another program");
	close(busy);

	/* Names of things that are not taps. */
	make_bridge("br9");
	c = tap_cfg("br9", NULL, 1);
	OPEN_FAILS(&c, -EINVAL, "br9 exists but is not a tap");
	c.queues = 2;
	OPEN_FAILS(&c, -EINVAL, "br9 exists but is not a tap");
	close(make_tap("tun0", IFF_TUN | IFF_NO_PI, true));
	c = tap_cfg("tun0", NULL, 1);
	OPEN_FAILS(&c, -EINVAL, "tun0 exists but is not a tap");
	c = tap_cfg("this-name-is-too-long", NULL, 1);
	OPEN_FAILS(&c, -EINVAL, "invalid interface name 'this-name-is-too-long'");
	c = tap_cfg("", NULL, 1);
	OPEN_FAILS(&c, -EINVAL, "invalid interface name ''");

	delete_persistent_tap("sq0", sq);
	delete_persistent_tap("mq0", mq);
}

static void test_tap_existing(void **state)
{
	in_netns(tap_existing);
}

/* The name of the interface's master in sysfs, or "". */
static const char *master_of(const char *name)
{
	static char buf[256];
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/master", name);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return "";
	buf[n] = '\0';
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

static void tap_bridge(void)
{
	if (!have_sysfs) {
		fprintf(stderr, "skipped: cannot mount sysfs\n");
		_exit(CHILD_SKIP);
	}
	make_bridge("br0");
	make_bridge("br1");
	struct net_backend_config c = tap_cfg("bt0", "br0", 2);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(nb->created);
	CHECK(!strcmp(master_of("bt0"), "br0"));
	net_backend_close(nb);
	CHECK(if_nametoindex("bt0") == 0);

	/* An existing tap already in the bridge is fine; in another one it is an error. */
	close(make_tap("pt0", IFF_TAP | IFF_NO_PI, true));
	c = tap_cfg("pt0", "br0", 1);
	OPEN_OK(&c, &nb);
	CHECK(!nb->created && !strcmp(master_of("pt0"), "br0"));
	net_backend_close(nb);
	OPEN_OK(&c, &nb);
	net_backend_close(nb);
	c.bridge = "br1";
	OPEN_FAILS(&c, -EBUSY, "cannot add pt0 to bridge br1: it is enslaved to br0 already");

	/* Not a bridge. */
	close(make_tap("pt1", IFF_TAP | IFF_NO_PI, true));
	c = tap_cfg("pt1", "pt0", 1);
	OPEN_FAILS(&c, -EOPNOTSUPP, "pt0 is not a bridge");
}

static void test_tap_bridge(void **state)
{
	in_netns(tap_bridge);
}

static void tap_missing_bridge(void)
{
	struct net_backend_config c = tap_cfg("mb0", "nobr", 1);
	OPEN_FAILS(&c, -ENODEV, "bridge nobr does not exist");
	CHECK(if_nametoindex("mb0") == 0); /* the tap made on the way is gone */
}

static void test_tap_missing_bridge(void **state)
{
	in_netns(tap_missing_bridge);
}

static void no_net_admin(void)
{
	close(make_tap("pt0", IFF_TAP | IFF_NO_PI, true)); /* down, with no owner: anyone may attach */
	make_bridge("br0");
	drop_net_admin();
	struct net_backend_config c = tap_cfg("new0", NULL, 1);
	OPEN_FAILS(
	    &c, -EPERM,
	    "cannot create tap new0: CAP_NET_ADMIN is needed (or create it beforehand with `ip tuntap add "
	    "dev new0 mode tap user $USER`)");
	c.queues = 4;
	OPEN_FAILS(&c, -EPERM, "`ip tuntap add dev new0 mode tap multi_queue user $USER`");
	/* Attaching is allowed; the link stays down since it cannot be brought up. */
	c = tap_cfg("pt0", NULL, 1);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(!(if_flags("pt0") & IFF_UP));
	net_backend_close(nb);
	c.bridge = "br0";
	OPEN_FAILS(&c, -EPERM, "cannot add pt0 to bridge br0: CAP_NET_ADMIN is needed");
	struct net_backend_config m = {.kind = NET_BACKEND_MACVTAP, .ifname = "br0", .fd = -1, .queues = 1};
	OPEN_FAILS(&m, -EPERM, "cannot create a macvtap on br0: CAP_NET_ADMIN is needed");
}

static void test_no_net_admin(void **state)
{
	in_netns(no_net_admin);
}

/* The parent of a macvtap: a dummy when the kernel has them, else a bridge (also an Ethernet device). */
static const char *macvtap_parent(void)
{
	if (system("ip link add d0 type dummy >/dev/null 2>&1") == 0 && if_nametoindex("d0"))
		return "d0";
	make_bridge("d1");
	return "d1";
}

static void macvtap(void)
{
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	const char *parent = macvtap_parent();
	struct net_backend_config c = {
	    .kind = NET_BACKEND_MACVTAP, .ifname = parent, .mode = NET_MACVTAP_BRIDGE, .fd = -1, .queues = 2};
	memcpy(c.mac, mac, 6);
	struct net_backend *nb;
	struct err e = {{0}};
	int r = net_backend_open(&c, &nb, &e);
	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "skipped: %s\n", err_msg(&e));
		_exit(CHILD_SKIP);
	}
	if (r) {
		fprintf(stderr, "macvtap: %d %s\n", r, err_msg(&e));
		_exit(1);
	}
	CHECK(nb->kind == NET_BACKEND_MACVTAP && nb->created && nb->nqueues == 2);
	CHECK(!strncmp(nb->ifname, "kvmtap", 6));
	CHECK(nb->ifindex > 0 && nb->ifindex == (int)if_nametoindex(nb->ifname));
	CHECK(if_flags(nb->ifname) & IFF_UP);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", nb->ifname);
	int s = sock();
	CHECK(ioctl(s, SIOCGIFHWADDR, &ifr) == 0);
	close(s);
	CHECK(!memcmp(ifr.ifr_hwaddr.sa_data, mac, 6));
	for (int q = 0; q < 2; q++)
		check_fd(nb->fds[q], nb->ifname);
	CHECK(nb->offload_mask & TUN_F_CSUM);
	CHECK(net_backend_set_offload(nb, TUN_F_CSUM | TUN_F_TSO4) == 0);
	CHECK(net_backend_set_queue(nb, 1, false) == 0);
	CHECK(net_backend_set_queue(nb, 1, true) == 0);

	/* A second macvtap on the same parent gets the next name; the same mac is refused. */
	struct net_backend *nb2;
	c.queues = 1;
	OPEN_FAILS(&c, -EADDRINUSE, "mac 52:54:00:12:34:56 is in use there already");
	c.mac[5] ^= 1;
	OPEN_OK(&c, &nb2);
	CHECK(strcmp(nb2->ifname, nb->ifname));

	/* An fd of the macvtap, handed over, is detected as one. */
	char node[32];
	snprintf(node, sizeof(node), "/dev/tap%d", nb->ifindex);
	int fd = open(node, O_RDWR);
	if (fd >= 0) {
		struct net_backend_config f = fd_cfg(fd);
		struct net_backend *nbf;
		OPEN_OK(&f, &nbf);
		CHECK(nbf->kind == NET_BACKEND_MACVTAP && !nbf->created && nbf->fds[0] == fd);
		CHECK(!strcmp(nbf->ifname, nb->ifname) && nbf->ifindex == nb->ifindex);
		check_fd(fd, nb->ifname);
		net_backend_close(nbf);
		CHECK(!fd_open(fd));
	}

	char name[IFNAMSIZ], name2[IFNAMSIZ];
	strcpy(name, nb->ifname);
	strcpy(name2, nb2->ifname);
	net_backend_close(nb);
	net_backend_close(nb2);
	CHECK(if_nametoindex(name) == 0);
	CHECK(if_nametoindex(name2) == 0);

	c.ifname = "nosuch0";
	OPEN_FAILS(&c, -ENODEV, "interface nosuch0 does not exist");
	c.ifname = "lo";
	OPEN_FAILS(&c, -EINVAL, "cannot create a macvtap on lo");
}

static void test_macvtap(void **state)
{
	in_netns(macvtap);
}

/* The macvtap opens, with a queue of its own; returns its ifindex after closing it. */
static int macvtap_roundtrip(const char *parent)
{
	struct net_backend_config c = {.kind = NET_BACKEND_MACVTAP, .ifname = parent, .fd = -1, .queues = 1};
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	check_fd(nb->fds[0], nb->ifname);
	int ifindex = nb->ifindex;
	net_backend_close(nb);
	return ifindex;
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d);
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* When /dev/tapN is missing or sysfs is another namespace's, the device is still found (or refused). */
static void macvtap_nodes(void)
{
	if (!have_sysfs) {
		fprintf(stderr, "skipped: cannot mount sysfs\n");
		_exit(CHILD_SKIP);
	}
	const char *parent = macvtap_parent();
	struct net_backend_config c = {.kind = NET_BACKEND_MACVTAP, .ifname = parent, .fd = -1, .queues = 1};
	struct net_backend *nb;
	struct err e = {{0}};
	int r = net_backend_open(&c, &nb, &e);
	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "skipped: %s\n", err_msg(&e));
		_exit(CHILD_SKIP);
	}
	CHECK(r == 0);
	net_backend_close(nb);

	/* An empty /dev (a chroot's, say): a private node is made, and removed. */
	CHECK(mount("tmpfs", "/dev", "tmpfs", 0, "mode=755") == 0);
	macvtap_roundtrip(parent);
	CHECK(entries("/dev") == 0);

	/* And with the sysfs of another namespace, the node cannot be found. */
	CHECK(umount2("/sys", MNT_DETACH) == 0);
	err_clear(&e);
	r = net_backend_open(&c, &nb, &e);
	CHECK(r == -ENOENT);
	CHECK(strstr(err_msg(&e), "cannot open /dev/tap") && strstr(err_msg(&e), "(macvtap kvmtap0)"));
	CHECK(if_nametoindex("kvmtap0") == 0);

	/* With /dev back, the node named by the ifindex is checked with TUNGETIFF and used. */
	CHECK(umount2("/dev", MNT_DETACH) == 0);
	CHECK(macvtap_roundtrip(parent) > 0);
}

static void test_macvtap_nodes(void **state)
{
	in_netns(macvtap_nodes);
}

static void fd_tap(void)
{
	int fd = make_tap("ft0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, false);
	struct net_backend_config c = fd_cfg(fd);
	struct net_backend *nb;
	OPEN_OK(&c, &nb);
	CHECK(nb->kind == NET_BACKEND_TAP && !nb->created && nb->nqueues == 1 && nb->fds[0] == fd);
	CHECK(!strcmp(nb->ifname, "ft0") && nb->ifindex == (int)if_nametoindex("ft0"));
	check_fd(fd, "ft0");
	CHECK(nb->offload_mask & TUN_F_CSUM);
	CHECK(nb->mtu == 1500);
	net_backend_close(nb);
	CHECK(!fd_open(fd));
	CHECK(if_nametoindex("ft0") == 0);

	/* Refused fds are closed too. */
	char want[64];
	fd = make_tap("ft1", IFF_TAP | IFF_NO_PI, false);
	c = fd_cfg(fd);
	snprintf(want, sizeof(want), "fd %d was opened without IFF_VNET_HDR (ft1)", fd);
	OPEN_FAILS(&c, -EINVAL, want);
	CHECK(!fd_open(fd));

	fd = make_tap("tun1", IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, false);
	c = fd_cfg(fd);
	snprintf(want, sizeof(want), "fd %d is the tun device tun1", fd);
	OPEN_FAILS(&c, -EINVAL, want);
	CHECK(!fd_open(fd));

	fd = open("/dev/net/tun", O_RDWR);
	CHECK(fd >= 0);
	c = fd_cfg(fd);
	snprintf(want, sizeof(want), "fd %d is /dev/net/tun attached to no interface", fd);
	OPEN_FAILS(&c, -EINVAL, want);
	CHECK(!fd_open(fd));

	fd = make_tap("ft2", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, false);
	c = fd_cfg(fd);
	c.queues = 2;
	snprintf(want, sizeof(want), "fd %d gives one queue pair, not 2", fd);
	OPEN_FAILS(&c, -EINVAL, want);
	CHECK(!fd_open(fd));
}

static void test_fd_tap(void **state)
{
	in_netns(fd_tap);
}

/* Needs neither root nor a namespace: nothing here is a tap. */
static void test_fd_not_tap(void **state)
{
	char want[64];
	struct net_backend *nb = NULL;
	struct err e;
	int fds[3];
	fds[0] = open("/dev/null", O_RDWR);
	assert_true(pipe(fds + 1) == 0);
	close(fds[2]);
	fds[2] = open("/proc/self/status", O_RDONLY);
	for (int i = 0; i < 3; i++) {
		assert_true(fds[i] >= 0);
		struct net_backend_config c = fd_cfg(fds[i]);
		err_clear(&e);
		assert_int_equal(net_backend_open(&c, &nb, &e), -EINVAL);
		assert_null(nb);
		snprintf(want, sizeof(want), "fd %d is not a tap or macvtap device", fds[i]);
		assert_string_equal(err_msg(&e), want);
		assert_false(fd_open(fds[i]));
	}
	/* fds[0] is closed now. */
	struct net_backend_config c = fd_cfg(fds[0]);
	err_clear(&e);
	assert_int_equal(net_backend_open(&c, &nb, &e), -EBADF);
	snprintf(want, sizeof(want), "fd %d is not open", fds[0]);
	assert_string_equal(err_msg(&e), want);
	c = fd_cfg(-1);
	err_clear(&e);
	assert_int_equal(net_backend_open(&c, &nb, &e), -EBADF);
	assert_string_equal(err_msg(&e), "fd -1 is not a descriptor");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tap_create),
	    cmocka_unit_test(test_tap_multiqueue),
	    cmocka_unit_test(test_tap_existing),
	    cmocka_unit_test(test_tap_bridge),
	    cmocka_unit_test(test_tap_missing_bridge),
	    cmocka_unit_test(test_no_net_admin),
	    cmocka_unit_test(test_macvtap),
	    cmocka_unit_test(test_macvtap_nodes),
	    cmocka_unit_test(test_fd_tap),
	    cmocka_unit_test(test_fd_not_tap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
