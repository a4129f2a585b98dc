/* SPDX-License-Identifier: MIT */
#include "net/iface.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

/* The ioctl on a fresh socket with ifr naming name; 0 or -errno. */
static int ifreq_ioctl(const char *name, unsigned long req, struct ifreq *ifr)
{
	size_t len = strlen(name);
	if (!len || len >= IFNAMSIZ)
		return -EINVAL;
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memcpy(ifr->ifr_name, name, len + 1);
	int r = ioctl(s, req, ifr) < 0 ? -errno : 0;
	close(s);
	return r;
}

int iface_mtu(const char *name, unsigned *mtu)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	int r = ifreq_ioctl(name, SIOCGIFMTU, &ifr);
	if (!r)
		*mtu = (unsigned)ifr.ifr_mtu;
	return r;
}

int iface_up(const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	int r = ifreq_ioctl(name, SIOCGIFFLAGS, &ifr);
	if (r || (ifr.ifr_flags & IFF_UP))
		return r;
	ifr.ifr_flags |= IFF_UP;
	return ifreq_ioctl(name, SIOCSIFFLAGS, &ifr);
}

int iface_bridge_add(const char *bridge, int ifindex)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = ifindex;
	return ifreq_ioctl(bridge, SIOCBRADDIF, &ifr);
}
