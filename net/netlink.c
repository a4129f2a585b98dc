/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink on a plain NETLINK_ROUTE socket (no library: Debian ships libmnl
 * without a static archive, and a static arm64 kvmini needs one). Requests
 * ask for an acknowledgement, so that every exchange ends with the kernel's
 * error code (or a plain ACK) and the receive loop knows when to stop.
 * Replies are walked with the <linux/netlink.h> macros, every length checked.
 */
#include "net/netlink.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* Big enough for one link's RTM_NEWLINK reply with all its attributes. */
#define NL_BUF 32768

/* A request being built in a fixed buffer; a request that outgrows it fails with -EMSGSIZE. */
struct nl_req {
	struct nlmsghdr *nlh;
	size_t cap;
	bool overflow;
};

static struct rtattr *attr_put(struct nl_req *q, uint16_t type, const void *data, size_t len)
{
	size_t at = NLMSG_ALIGN(q->nlh->nlmsg_len), need = RTA_SPACE(len);
	if (q->overflow || at + need > q->cap) {
		q->overflow = true;
		return NULL;
	}
	struct rtattr *a = (struct rtattr *)((char *)q->nlh + at);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	q->nlh->nlmsg_len = (uint32_t)(at + need);
	return a;
}

static void attr_put_u32(struct nl_req *q, uint16_t type, uint32_t v)
{
	attr_put(q, type, &v, sizeof(v));
}

static void attr_put_strz(struct nl_req *q, uint16_t type, const char *s)
{
	attr_put(q, type, s, strlen(s) + 1);
}

static struct rtattr *nest_start(struct nl_req *q, uint16_t type)
{
	return attr_put(q, type | NLA_F_NESTED, NULL, 0);
}

static void nest_end(struct nl_req *q, struct rtattr *nest)
{
	if (nest && !q->overflow)
		nest->rta_len = (unsigned short)((char *)q->nlh + q->nlh->nlmsg_len - (char *)nest);
}

/* Called with each reply message of the request (not the final ACK or error). */
typedef void (*nl_cb)(const struct nlmsghdr *nlh, void *data);

/* Sends q's message and feeds the replies to cb (may be NULL) until the ACK; 0 or -errno. */
static int nl_talk(struct nl_req *q, nl_cb cb, void *data)
{
	if (q->overflow)
		return -EMSGSIZE;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	int r = 0;
	struct sockaddr_nl local = {.nl_family = AF_NETLINK}, kernel = {.nl_family = AF_NETLINK};
	socklen_t alen = sizeof(local);
	char *buf = NULL;
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &alen) < 0) {
		r = -errno;
		goto out;
	}
	struct nlmsghdr *nlh = q->nlh;
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = (uint32_t)time(NULL);
	if (sendto(fd, nlh, nlh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		r = -errno;
		goto out;
	}
	if (!(buf = malloc(NL_BUF))) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct sockaddr_nl from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, NL_BUF, 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (from.nl_pid != 0) /* only the kernel's messages */
			continue;
		/* Each message's length is checked against what is left before it is used. */
		size_t left = (size_t)n;
		for (struct nlmsghdr *m = (struct nlmsghdr *)buf;
		     left >= sizeof(*m) && m->nlmsg_len >= sizeof(*m) && m->nlmsg_len <= left;) {
			struct nlmsghdr *cur = m;
			size_t step = NLMSG_ALIGN(m->nlmsg_len) < left ? NLMSG_ALIGN(m->nlmsg_len) : left;
			left -= step;
			m = (struct nlmsghdr *)((char *)m + step);
			if (cur->nlmsg_seq != nlh->nlmsg_seq || cur->nlmsg_pid != local.nl_pid)
				continue;
			if (cur->nlmsg_type == NLMSG_ERROR) {
				/* error 0 is the ACK: the exchange is over either way. */
				if (cur->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
					r = -EIO;
				} else {
					const struct nlmsgerr *er = NLMSG_DATA(cur);
					r = er->error <= 0 ? er->error : -EIO;
				}
				goto out;
			}
			if (cur->nlmsg_type == NLMSG_DONE)
				goto out;
			if (cb)
				cb(cur, data);
		}
	}
out:
	free(buf);
	close(fd);
	return r;
}

/* Starts an ifinfomsg request of type in buf (size bytes, zeroed here). */
static struct ifinfomsg *link_msg(struct nl_req *q, void *buf, size_t size, uint16_t type, uint16_t flags)
{
	memset(buf, 0, size);
	q->nlh = buf;
	q->cap = size;
	q->overflow = false;
	q->nlh->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	q->nlh->nlmsg_type = type;
	q->nlh->nlmsg_flags = flags;
	struct ifinfomsg *ifm = NLMSG_DATA(q->nlh);
	ifm->ifi_family = AF_UNSPEC;
	return ifm;
}

int nl_macvtap_create(const char *name, int parent, const uint8_t *mac, uint32_t mode)
{
	_Alignas(struct nlmsghdr) char buf[1024];
	struct nl_req q;
	struct ifinfomsg *ifm = link_msg(&q, buf, sizeof(buf), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	/* Up from the start, as `ip link add ... up` does: one request, and no window where it is down. */
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	attr_put_strz(&q, IFLA_IFNAME, name);
	attr_put_u32(&q, IFLA_LINK, (uint32_t)parent);
	if (mac)
		attr_put(&q, IFLA_ADDRESS, mac, 6);
	struct rtattr *info = nest_start(&q, IFLA_LINKINFO);
	attr_put_strz(&q, IFLA_INFO_KIND, "macvtap");
	struct rtattr *data = nest_start(&q, IFLA_INFO_DATA);
	attr_put_u32(&q, IFLA_MACVLAN_MODE, mode);
	nest_end(&q, data);
	nest_end(&q, info);
	return nl_talk(&q, NULL, NULL);
}

int nl_link_delete(int ifindex)
{
	_Alignas(struct nlmsghdr) char buf[256];
	struct nl_req q;
	struct ifinfomsg *ifm = link_msg(&q, buf, sizeof(buf), RTM_DELLINK, 0);
	ifm->ifi_index = ifindex;
	return nl_talk(&q, NULL, NULL);
}

/* An RTM_NEWLINK reply: IFLA_MASTER, when present and a u32, into *data. */
static void master_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return;
	int len = (int)(nlh->nlmsg_len - NLMSG_LENGTH(sizeof(struct ifinfomsg)));
	const struct ifinfomsg *ifm = NLMSG_DATA(nlh);
	for (const struct rtattr *a = IFLA_RTA(ifm); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if ((a->rta_type & NLA_TYPE_MASK) == IFLA_MASTER && RTA_PAYLOAD(a) == sizeof(uint32_t)) {
			uint32_t v;
			memcpy(&v, RTA_DATA(a), sizeof(v));
			*(int *)data = (int)v;
		}
	}
}

int nl_link_master(int ifindex, int *master)
{
	_Alignas(struct nlmsghdr) char buf[256];
	struct nl_req q;
	struct ifinfomsg *ifm = link_msg(&q, buf, sizeof(buf), RTM_GETLINK, 0);
	ifm->ifi_index = ifindex;
	*master = 0;
	return nl_talk(&q, master_cb, master);
}
