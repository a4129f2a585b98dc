/* SPDX-License-Identifier: MIT */
/* Internal to net/: the tap-by-name backend. */
#ifndef KVMINI_NET_TAP_H
#define KVMINI_NET_TAP_H

#include "net/backend.h"

/*
 * Attaches c->queues fds to the tap c->ifname, creating it when missing,
 * brings it up and enslaves it to c->bridge. Fills nb's ifname, ifindex, fds,
 * nqueues and created; on failure the fds opened so far are in nb->fds for
 * the caller to close (a tap we created disappears with its last fd).
 */
int tap_open(const struct net_backend_config *c, struct net_backend *nb, struct err *e);

#endif
