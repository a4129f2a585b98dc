/* SPDX-License-Identifier: MIT */
/* The migration's connection: `tcp:HOST:PORT` on both ends (HOST may be [an:ipv6:address]). */
#ifndef KVMINI_VMM_MIGRATION_NET_H
#define KVMINI_VMM_MIGRATION_NET_H

#include "common/err.h"

/* Connects to uri within timeout_s; the connected socket, or -errno with one line in e. */
int migrate_connect(const char *uri, int timeout_s, struct err *e);
/* Listens on uri (tcp:ADDR:PORT, ADDR may be 0.0.0.0); the listening socket, or -errno. */
int migrate_listen(const char *uri, struct err *e);

#endif
