/* SPDX-License-Identifier: MIT */
/*
 * The few rtnetlink requests the network backends need (plain netlink): creating and
 * deleting a macvtap, and reading a link's master. Each call opens its own
 * socket, so there is no shared state. Every function returns 0 or the
 * kernel's -errno.
 */
#ifndef KVMINI_NET_NETLINK_H
#define KVMINI_NET_NETLINK_H

#include <stdint.h>

/*
 * Creates macvtap `name` on the interface with index parent, in MACVLAN_MODE_*
 * mode, with address mac (NULL: the kernel picks a random one), and sets it
 * up. -EEXIST when the name is taken.
 */
int nl_macvtap_create(const char *name, int parent, const uint8_t *mac, uint32_t mode);
/* Deletes the link with index ifindex (RTM_DELLINK). */
int nl_link_delete(int ifindex);
/* The index of the link's master (a bridge, a bond...) in *master, 0 for none. */
int nl_link_master(int ifindex, int *master);

#endif
