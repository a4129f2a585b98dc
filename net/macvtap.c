/* SPDX-License-Identifier: MIT */
/*
 * A macvtap on a parent interface: a MAC-filtered port of the parent whose
 * frames go through a character device, /dev/tap<ifindex>. Each open of that
 * device is one more queue. We create the link and delete it at close.
 */
#include "net/macvtap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_tun.h>

#include "net/netlink.h"

#define NAME_TRIES 1024 /* kvmtap0 .. kvmtap1023 */

static uint32_t macvlan_mode(enum net_macvtap_mode m)
{
	switch (m) {
	case NET_MACVTAP_VEPA:
		return MACVLAN_MODE_VEPA;
	case NET_MACVTAP_PRIVATE:
		return MACVLAN_MODE_PRIVATE;
	case NET_MACVTAP_PASSTHRU:
		return MACVLAN_MODE_PASSTHRU;
	case NET_MACVTAP_BRIDGE:
		break;
	}
	return MACVLAN_MODE_BRIDGE;
}

static bool mac_is_zero(const uint8_t mac[6])
{
	static const uint8_t zero[6];
	return !memcmp(mac, zero, 6);
}

static int create_error(const struct net_backend_config *c, int r, struct err *e)
{
	const char *p = c->ifname;
	if (r == -EPERM)
		return err_set(e, r, "cannot create a macvtap on %s: CAP_NET_ADMIN is needed", p);
	if (r == -EOPNOTSUPP)
		return err_set(
		    e, r, "cannot create a macvtap on %s: this kernel has no macvtap (CONFIG_MACVTAP)", p);
	if (r == -EADDRINUSE)
		return err_set(
		    e, r,
		    "cannot create a macvtap on %s: mac %02x:%02x:%02x:%02x:%02x:%02x is in use there "
		    "already",
		    p, c->mac[0], c->mac[1], c->mac[2], c->mac[3], c->mac[4], c->mac[5]);
	if (r == -EEXIST)
		return err_set(e, r, "cannot create a macvtap on %s: kvmtap0 to kvmtap%d are all taken", p,
			       NAME_TRIES - 1);
	if (r == -EINVAL && c->mode == NET_MACVTAP_PASSTHRU)
		return err_set(
		    e, r,
		    "cannot create a passthru macvtap on %s: it must be an Ethernet interface with no "
		    "other macvlan or macvtap",
		    p);
	if (r == -EINVAL)
		return err_set(e, r, "cannot create a macvtap on %s: it must be an Ethernet interface", p);
	return err_set(e, r, "cannot create a macvtap on %s: %s", p, strerror(-r));
}

/* The device number of the macvtap's character device, as sysfs has it. */
static int sysfs_devt(const struct net_backend *nb, dev_t *out)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/macvtap/tap%d/dev", nb->ifname, nb->ifindex);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	unsigned ma, mi;
	int n = fscanf(f, "%u:%u", &ma, &mi);
	fclose(f);
	if (n != 2)
		return -EIO;
	*out = makedev(ma, mi);
	return 0;
}

/* Opens the node once per queue; each fd must be a queue of our macvtap (TUNGETIFF names it). */
static int open_queues(struct net_backend *nb, const char *path, unsigned queues, struct err *e)
{
	for (unsigned q = 0; q < queues; q++) {
		int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return err_set(e, -errno, "cannot open %s (macvtap %s): %s", path, nb->ifname,
				       strerror(errno));
		nb->fds[q] = fd;
		nb->nqueues = q + 1;
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		if (ioctl(fd, TUNGETIFF, &ifr) < 0 || strncmp(ifr.ifr_name, nb->ifname, IFNAMSIZ))
			return err_set(e, -ENODEV,
				       "%s is not the device of macvtap %s (another network namespace's?)",
				       path, nb->ifname);
		/* The default already, but an fd handed to us later must look the same. */
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags =
		    (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0));
		if (ioctl(fd, TUNSETIFF, &ifr) < 0)
			return err_set(e, -errno, "cannot set up %s (macvtap %s): %s", path, nb->ifname,
				       strerror(errno));
	}
	return 0;
}

/*
 * devtmpfs makes /dev/tap<ifindex> as the macvtap appears, but /dev is global
 * while ifindexes are per network namespace, so that node may be another
 * namespace's macvtap; and in a chroot /dev may be a plain directory. So the
 * node is used when its device number is the one sysfs gives, and otherwise a
 * private node is made (in the first place that allows device nodes: /run and
 * /tmp are often nodev) and removed once the fds are open.
 */
static int open_dev(struct net_backend *nb, unsigned queues, struct err *e)
{
	char node[32];
	snprintf(node, sizeof(node), "/dev/tap%d", nb->ifindex);
	dev_t want = 0;
	if (sysfs_devt(nb, &want))
		/* This sysfs belongs to another namespace (or is absent): TUNGETIFF checks the node. */
		return open_queues(nb, node, queues, e);
	struct stat st;
	if (stat(node, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == want)
		return open_queues(nb, node, queues, e);

	static const char *const bases[] = {"/dev", "/run", "/tmp"};
	int last = -ENOENT;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		char dir[64], path[80];
		snprintf(dir, sizeof(dir), "%s/.kvmini-XXXXXX", bases[i]);
		if (!mkdtemp(dir)) {
			last = -errno;
			continue;
		}
		snprintf(path, sizeof(path), "%s/tap", dir);
		if (mknod(path, S_IFCHR | 0600, want) == 0) {
			int fd = open(path, O_RDWR | O_CLOEXEC); /* a nodev mount says EACCES */
			if (fd >= 0) {
				close(fd);
				int r = open_queues(nb, path, queues, e);
				unlink(path);
				rmdir(dir);
				return r;
			}
			last = -errno;
			unlink(path);
		} else {
			last = -errno;
		}
		rmdir(dir);
	}
	return err_set(e, last, "%s is %s, and no private device node could be made for macvtap %s: %s", node,
		       stat(node, &st) ? "missing" : "another device", nb->ifname, strerror(-last));
}

int macvtap_open(const struct net_backend_config *c, struct net_backend *nb, struct err *e)
{
	int parent = (int)if_nametoindex(c->ifname);
	if (!parent)
		return err_set(e, -ENODEV, "interface %s does not exist", c->ifname);
	const uint8_t *mac = mac_is_zero(c->mac) ? NULL : c->mac;
	/* Explicit names with NLM_F_EXCL: a "kvmtap%d" template would leave us not knowing which. */
	int r = -EEXIST;
	for (unsigned i = 0; i < NAME_TRIES && r == -EEXIST; i++) {
		snprintf(nb->ifname, sizeof(nb->ifname), "kvmtap%u", i);
		r = nl_macvtap_create(nb->ifname, parent, mac, macvlan_mode(c->mode));
	}
	if (r)
		return create_error(c, r, e);
	nb->created = true;
	nb->ifindex = (int)if_nametoindex(nb->ifname);
	if (!nb->ifindex)
		return err_set(e, -ENODEV, "macvtap %s vanished right after its creation", nb->ifname);
	return open_dev(nb, c->queues, e);
}
