/* SPDX-License-Identifier: MIT */
/*
 * Interface ioctls shared by the tap and macvtap backends: MTU, link up,
 * enslaving to a bridge. They go through an AF_UNIX datagram socket, which
 * exists on every kernel (AF_INET may be compiled out) and forwards the
 * generic SIOC*IF* requests to the network core. 0 or -errno.
 */
#ifndef KVMINI_NET_IFACE_H
#define KVMINI_NET_IFACE_H

int iface_mtu(const char *name, unsigned *mtu);
/* Sets IFF_UP unless it is set already (then nothing is asked, so no privilege is needed). */
int iface_up(const char *name);
/* SIOCBRADDIF: adds the interface with index ifindex to bridge. */
int iface_bridge_add(const char *bridge, int ifindex);

#endif
