/* SPDX-License-Identifier: MIT */
/*
 * The host side of a virtio-net NIC: a tap (attached to or created, optionally
 * enslaved to a bridge), a macvtap created on a parent interface, or an fd
 * handed over by an embedding program. Whatever the kind, the device sees one
 * non-blocking fd per queue pair that reads and writes Ethernet frames behind
 * a 12-byte virtio-net header (struct virtio_net_hdr_v1, little-endian).
 */
#ifndef KVMINI_NET_BACKEND_H
#define KVMINI_NET_BACKEND_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define NET_VNET_HDR_LEN 12
#define NET_MAX_QUEUES	 16

enum net_backend_kind {
	NET_BACKEND_TAP = 1, /* by name: attach, or create when missing */
	NET_BACKEND_MACVTAP, /* create a macvtap on a parent interface, delete it at close */
	NET_BACKEND_FD,	     /* an open tap or macvtap fd: the kind is detected */
};

enum net_macvtap_mode { NET_MACVTAP_BRIDGE, NET_MACVTAP_VEPA, NET_MACVTAP_PRIVATE, NET_MACVTAP_PASSTHRU };

struct net_backend_config {
	enum net_backend_kind kind;
	const char *ifname; /* TAP: the tap's name; MACVTAP: the parent interface */
	const char *bridge; /* TAP: enslave the tap to this bridge (NULL or "": none) */
	enum net_macvtap_mode mode;
	int fd;		 /* FD: taken over (closed at net_backend_close, also on failure) */
	uint8_t mac[6];	 /* MACVTAP: the macvtap's address (the guest's) */
	unsigned queues; /* 1..NET_MAX_QUEUES */
};

struct net_backend {
	enum net_backend_kind kind; /* NET_BACKEND_TAP or NET_BACKEND_MACVTAP (an FD is one of those) */
	char ifname[IFNAMSIZ];	    /* the tap or macvtap interface */
	int ifindex;
	int fds[NET_MAX_QUEUES]; /* non-blocking, close-on-exec, vnet header of NET_VNET_HDR_LEN set */
	unsigned nqueues;
	unsigned mtu;	       /* the interface's MTU when opened */
	unsigned offload_mask; /* TUN_F_* bits TUNSETOFFLOAD accepts here (UFO depends on the kernel) */
	bool created;	       /* we created the interface (a macvtap: deleted at close) */
	uint32_t detached;     /* bit q: queue q detached by net_backend_set_queue() */
};

/* Opens the backend; 0, or -errno with one line in e naming the problem (and what is missing). */
int net_backend_open(const struct net_backend_config *c, struct net_backend **out, struct err *e);
/* TUNSETOFFLOAD with flags (TUN_F_*, within offload_mask): what the guest is able to receive. */
int net_backend_set_offload(struct net_backend *nb, unsigned flags);
/*
 * Attaches (on) or detaches queue q (TUNSETQUEUE): a detached queue gets no
 * frames. Queues start attached; asking for the current state does nothing,
 * as does anything on a single queue. Not for concurrent calls on one backend.
 */
int net_backend_set_queue(struct net_backend *nb, unsigned q, bool on);
/* Closes the fds and removes what net_backend_open created. NULL is fine. */
void net_backend_close(struct net_backend *nb);

#endif
