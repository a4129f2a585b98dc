/* SPDX-License-Identifier: MIT */
/* Internal to net/: the macvtap backend. */
#ifndef KVMINI_NET_MACVTAP_H
#define KVMINI_NET_MACVTAP_H

#include "net/backend.h"

/*
 * Creates a macvtap (named kvmtapN) on the parent c->ifname with c->mac and
 * c->mode, up, and opens its character device c->queues times. Fills nb's
 * ifname, ifindex, fds, nqueues and created; on failure whatever was made is
 * in nb for the caller's net_backend_close() to undo.
 */
int macvtap_open(const struct net_backend_config *c, struct net_backend *nb, struct err *e);

#endif
