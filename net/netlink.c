/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink through libmnl. Requests ask for an acknowledgement, so that every
 * exchange ends with the kernel's error code (or a plain ACK) and the receive
 * loop knows when to stop.
 */
#include "net/netlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

/* Big enough for one link's RTM_NEWLINK reply with all its attributes. */
#define NL_BUF 32768

/* Sends nlh and feeds the replies to cb (may be NULL) until the ACK; 0 or -errno. */
static int nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	int r = 0;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	unsigned portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = (uint32_t)time(NULL);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	char *buf = malloc(NL_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, NL_BUF);
		if (n < 0) {
			r = -errno;
			break;
		}
		/* -1 with errno from an NLMSG_ERROR, 0 at the ACK, > 0 for more to come. */
		errno = 0;
		int c = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
		if (c < 0) {
			r = errno ? -errno : -EIO;
			break;
		}
		if (c == MNL_CB_STOP)
			break;
	}
	free(buf);
out:
	mnl_socket_close(nl);
	return r;
}

static struct ifinfomsg *link_msg(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	return ifm;
}

int nl_macvtap_create(const char *name, int parent, const uint8_t *mac, uint32_t mode)
{
	char buf[1024];
	memset(buf, 0, sizeof(buf));
	struct ifinfomsg *ifm = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	/* Up from the start, as `ip link add ... up` does: one request, and no window where it is down. */
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_LINK, (uint32_t)parent);
	if (mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "macvtap");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_MACVLAN_MODE, mode);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return nl_talk(nlh, NULL, NULL);
}

int nl_link_delete(int ifindex)
{
	char buf[256];
	memset(buf, 0, sizeof(buf));
	struct ifinfomsg *ifm = link_msg(buf, RTM_DELLINK, 0);
	ifm->ifi_index = ifindex;
	return nl_talk((struct nlmsghdr *)buf, NULL, NULL);
}

static int master_attr(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_MASTER && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		*(int *)data = (int)mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int master_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		mnl_attr_parse(nlh, sizeof(struct ifinfomsg), master_attr, data);
	return MNL_CB_OK;
}

int nl_link_master(int ifindex, int *master)
{
	char buf[256];
	memset(buf, 0, sizeof(buf));
	struct ifinfomsg *ifm = link_msg(buf, RTM_GETLINK, 0);
	ifm->ifi_index = ifindex;
	*master = 0;
	return nl_talk((struct nlmsghdr *)buf, master_cb, master);
}
