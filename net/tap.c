/* SPDX-License-Identifier: MIT */
/*
 * A tap by name. TUNSETIFF on /dev/net/tun both attaches to an existing tap
 * and creates a missing one; each further fd on a multi-queue tap is one more
 * queue pair. A tap we create is not persistent: it goes away with our last
 * fd, so there is nothing to delete at close.
 */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "net/iface.h"
#include "net/netlink.h"

#define TUN_PATH  "/dev/net/tun"
#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

/*
 * One fd on tap name with flags: fd, or -errno. *at_open tells whether opening
 * /dev/net/tun failed (rather than TUNSETIFF), for the message.
 */
static int tun_attach(const char *name, unsigned flags, bool *at_open, char *ifname_out)
{
	*at_open = false;
	int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		*at_open = true;
		return -errno;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
	ifr.ifr_flags = (short)flags;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (ifname_out) { /* the kernel's name: a "%d" template is filled in */
		memcpy(ifname_out, ifr.ifr_name, IFNAMSIZ);
		ifname_out[IFNAMSIZ - 1] = '\0';
	}
	return fd;
}

/*
 * TUNSETIFF said EINVAL on an existing interface: either its multi-queue flag
 * differs from the one asked for, or it is no tap at all (a tun, or another
 * kind of interface). A single-queue attach tells which.
 */
static int explain_einval(const char *name, unsigned queues, struct err *e)
{
	bool at_open;
	int fd = tun_attach(name, TAP_FLAGS, &at_open, NULL);
	if (fd >= 0)
		close(fd);
	if (queues > 1 && (fd >= 0 || fd == -EBUSY))
		return err_set(e, -EINVAL,
			       "%s is a single-queue tap and cannot give %u queue pairs (recreate it with "
			       "`ip tuntap add dev %s mode tap multi_queue`)",
			       name, queues, name);
	return err_set(e, -EINVAL, "%s exists but is not a tap (a tun device, or another kind of interface)",
		       name);
}

static int attach_error(const char *name, unsigned queues, bool existed, bool at_open, int r, struct err *e)
{
	if (at_open && r == -ENOENT)
		return err_set(e, r,
			       "cannot open " TUN_PATH
			       ": it does not exist (load the tun module, or create it "
			       "with `mknod " TUN_PATH " c 10 200`)");
	if (at_open)
		return err_set(e, r, "cannot open " TUN_PATH ": %s", strerror(-r));
	if (r == -EPERM && !existed)
		return err_set(e, r,
			       "cannot create tap %s: CAP_NET_ADMIN is needed (or create it beforehand with "
			       "`ip tuntap add dev %s mode tap%s user $USER`)",
			       name, name, queues > 1 ? " multi_queue" : "");
	if (r == -EPERM)
		return err_set(e, r,
			       "cannot attach to tap %s: it belongs to another user or group, and using it "
			       "needs CAP_NET_ADMIN",
			       name);
	if (r == -EBUSY)
		return err_set(e, r, "tap %s is in use by another program (a single-queue tap has one user)",
			       name);
	if (r == -EINVAL && existed)
		return explain_einval(name, queues, e);
	return err_set(e, r, "cannot %s tap %s: %s", existed ? "attach to" : "create", name, strerror(-r));
}

static int enslave(struct net_backend *nb, const char *bridge, struct err *e)
{
	int bi = (int)if_nametoindex(bridge);
	if (!bi)
		return err_set(e, -ENODEV, "bridge %s does not exist", bridge);
	int r = iface_bridge_add(bridge, nb->ifindex);
	if (r == -EBUSY) {
		/* It has a master already: fine if that is this bridge (a tap we attached to). */
		int m = 0;
		nl_link_master(nb->ifindex, &m);
		if (m == bi)
			return 0;
		char other[IFNAMSIZ] = "another device";
		if (m)
			if_indextoname((unsigned)m, other);
		return err_set(e, r, "cannot add %s to bridge %s: it is enslaved to %s already", nb->ifname,
			       bridge, other);
	}
	if (r == -EPERM)
		return err_set(e, r, "cannot add %s to bridge %s: CAP_NET_ADMIN is needed", nb->ifname,
			       bridge);
	if (r == -EOPNOTSUPP || r == -EINVAL)
		return err_set(e, r, "cannot add %s to %s: %s is not a bridge", nb->ifname, bridge, bridge);
	if (r)
		return err_set(e, r, "cannot add %s to bridge %s: %s", nb->ifname, bridge, strerror(-r));
	return 0;
}

int tap_open(const struct net_backend_config *c, struct net_backend *nb, struct err *e)
{
	const char *name = c->ifname;
	/* Checked before: a tap that TUNSETIFF creates is ours (racy only against another creator). */
	bool existed = if_nametoindex(name) != 0;
	unsigned flags = TAP_FLAGS | (c->queues > 1 ? IFF_MULTI_QUEUE : 0);
	for (unsigned q = 0; q < c->queues; q++) {
		bool at_open;
		int fd = tun_attach(q ? nb->ifname : name, flags, &at_open, nb->ifname);
		if (fd == -EINVAL && !q && existed && c->queues == 1) {
			/* One queue pair from a multi-queue tap: the flag must match the tap's. */
			flags |= IFF_MULTI_QUEUE;
			fd = tun_attach(name, flags, &at_open, nb->ifname);
		}
		if (fd < 0)
			return attach_error(name, c->queues, existed, at_open, fd, e);
		nb->fds[q] = fd;
		nb->nqueues = q + 1;
	}
	nb->created = !existed;
	nb->ifindex = (int)if_nametoindex(nb->ifname);
	if (!nb->ifindex)
		return err_set(e, -ENODEV, "tap %s vanished while being opened", nb->ifname);
	if (c->bridge && *c->bridge) {
		int r = enslave(nb, c->bridge, e);
		if (r)
			return r;
	}
	/* Without CAP_NET_ADMIN a tap that is down stays down: the guest then sees no traffic. */
	int r = iface_up(nb->ifname);
	if (r && r != -EPERM && r != -EACCES)
		return err_set(e, r, "cannot bring %s up: %s", nb->ifname, strerror(-r));
	return 0;
}
