/* SPDX-License-Identifier: MIT */
/*
 * net_backend_open() dispatches on the kind; what is common to every kind
 * (vnet header, offload probe, MTU) is done here once the fds are open, as is
 * taking over an fd handed to us.
 */
#include "net/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "net/iface.h"
#include "net/macvtap.h"
#include "net/netlink.h"
#include "net/tap.h"

/* /dev/net/tun is the misc device 10:200; a macvtap's device has a dynamic major. */
#define TUN_MAJOR 10
#define TUN_MINOR 200

/*
 * Takes over c->fd: a tap (/dev/net/tun attached to a tap interface) or a
 * macvtap queue, opened with IFF_VNET_HDR, since the device exchanges frames
 * behind a vnet header. One fd is one queue pair.
 */
static int adopt_fd(const struct net_backend_config *c, struct net_backend *nb, struct err *e)
{
	int fd = c->fd;
	nb->fds[0] = fd; /* closed with nb, whatever happens */
	nb->nqueues = 1;
	if (c->queues > 1)
		return err_set(e, -EINVAL, "fd %d gives one queue pair, not %u", fd, c->queues);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		if (r != -EBADF)
			return err_set(e, r, "fd %d: %s", fd, strerror(-r));
		nb->fds[0] = -1; /* not ours to close: another thread may open that number meanwhile */
		return err_set(e, r, "fd %d is not open", fd);
	}
	bool tun = S_ISCHR(st.st_mode) && major(st.st_rdev) == TUN_MAJOR && minor(st.st_rdev) == TUN_MINOR;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (!S_ISCHR(st.st_mode) || ioctl(fd, TUNGETIFF, &ifr) < 0) {
		if (tun && errno == EBADFD)
			return err_set(e, -EINVAL,
				       "fd %d is /dev/net/tun attached to no interface (no TUNSETIFF)", fd);
		return err_set(e, -EINVAL, "fd %d is not a tap or macvtap device", fd);
	}
	memcpy(nb->ifname, ifr.ifr_name, IFNAMSIZ);
	nb->ifname[IFNAMSIZ - 1] = '\0';
	if (!(ifr.ifr_flags & IFF_TAP))
		return err_set(e, -EINVAL,
			       "fd %d is the tun device %s (IP packets), not a tap (Ethernet frames)", fd,
			       nb->ifname);
	if (!(ifr.ifr_flags & IFF_VNET_HDR))
		return err_set(e, -EINVAL, "fd %d was opened without IFF_VNET_HDR (%s)", fd, nb->ifname);
	nb->kind = tun ? NET_BACKEND_TAP : NET_BACKEND_MACVTAP;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return err_set(e, -errno, "fd %d (%s): %s", fd, nb->ifname, strerror(errno));
	/* It may be from another network namespace, where the name means nothing here: 0 then. */
	nb->ifindex = (int)if_nametoindex(nb->ifname);
	return 0;
}

/*
 * The offloads the interface accepts: TUNSETOFFLOAD refuses bits it does not
 * know (UFO comes and goes with kernel versions), and TSO needs CSUM. Left at
 * 0 afterwards: the device turns on what its driver negotiates.
 */
static unsigned probe_offload(int fd)
{
	const unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
	unsigned mask = 0;
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) == 0)
		mask = TUN_F_CSUM;
	if (mask && ioctl(fd, TUNSETOFFLOAD, (unsigned long)tso) == 0)
		mask = tso;
	if (mask && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(mask | TUN_F_UFO)) == 0)
		mask |= TUN_F_UFO;
	ioctl(fd, TUNSETOFFLOAD, 0UL);
	return mask;
}

/* What every kind needs once its fds are open. */
static int finish(struct net_backend *nb, struct err *e)
{
	for (unsigned q = 0; q < nb->nqueues; q++) {
		int len = NET_VNET_HDR_LEN;
		if (ioctl(nb->fds[q], TUNSETVNETHDRSZ, &len) < 0)
			return err_set(e, -errno, "cannot set the vnet header size of %s: %s", nb->ifname,
				       strerror(errno));
		/* Little-endian headers whatever the host (a no-op on x86); old kernels lack it. */
		int le = 1;
		ioctl(nb->fds[q], TUNSETVNETLE, &le);
	}
	nb->offload_mask = probe_offload(nb->fds[0]);
	if (!nb->ifindex || iface_mtu(nb->ifname, &nb->mtu))
		nb->mtu = 1500; /* an fd from another namespace: Ethernet's default */
	return 0;
}

int net_backend_open(const struct net_backend_config *c, struct net_backend **out, struct err *e)
{
	*out = NULL;
	struct net_backend *nb = calloc(1, sizeof(*nb));
	if (!nb) {
		if (c->kind == NET_BACKEND_FD && c->fd >= 0)
			close(c->fd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		nb->fds[q] = -1;
	nb->kind = c->kind;
	struct net_backend_config cc = *c;
	if (!cc.queues)
		cc.queues = 1;
	int r;
	if (cc.queues > NET_MAX_QUEUES) {
		r = err_set(e, -EINVAL, "%u queue pairs asked: at most %d", cc.queues, NET_MAX_QUEUES);
		if (c->kind == NET_BACKEND_FD)
			nb->fds[0] = c->fd;
	} else if (c->kind == NET_BACKEND_FD) {
		r = c->fd >= 0 ? adopt_fd(&cc, nb, e)
			       : err_set(e, -EBADF, "fd %d is not a descriptor", c->fd);
	} else if (c->kind != NET_BACKEND_TAP && c->kind != NET_BACKEND_MACVTAP) {
		r = err_set(e, -EINVAL, "unknown network backend kind %d", (int)c->kind);
	} else if (!c->ifname || !*c->ifname || strlen(c->ifname) >= IFNAMSIZ) {
		r = err_set(e, -EINVAL, "invalid interface name '%s': 1 to %d bytes",
			    c->ifname ? c->ifname : "", IFNAMSIZ - 1);
	} else if (c->kind == NET_BACKEND_TAP) {
		r = tap_open(&cc, nb, e);
	} else {
		r = macvtap_open(&cc, nb, e);
	}
	if (!r)
		r = finish(nb, e);
	if (r) {
		net_backend_close(nb);
		return r;
	}
	*out = nb;
	return 0;
}

int net_backend_set_offload(struct net_backend *nb, unsigned flags)
{
	/* The offloads belong to the interface; asking on every queue is cheap and leaves no doubt. */
	for (unsigned q = 0; q < nb->nqueues; q++)
		if (ioctl(nb->fds[q], TUNSETOFFLOAD, (unsigned long)(flags & nb->offload_mask)) < 0)
			return -errno;
	return 0;
}

int net_backend_set_queue(struct net_backend *nb, unsigned q, bool on)
{
	if (q >= nb->nqueues)
		return -EINVAL;
	if (nb->nqueues == 1)
		return 0;
	/* The kernel says EINVAL to attaching an attached queue (and vice versa): ask only for changes. */
	bool detached = nb->detached & (1u << q);
	if (on != detached)
		return 0;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(nb->fds[q], TUNSETQUEUE, &ifr) < 0)
		return -errno;
	nb->detached ^= 1u << q;
	return 0;
}

void net_backend_close(struct net_backend *nb)
{
	if (!nb)
		return;
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		if (nb->fds[q] >= 0)
			close(nb->fds[q]);
	/* A tap we created went away with its last fd; a macvtap stays until deleted. */
	if (nb->kind == NET_BACKEND_MACVTAP && nb->created && nb->ifindex > 0)
		nl_link_delete(nb->ifindex);
	free(nb);
}
