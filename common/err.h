/* SPDX-License-Identifier: MIT */
/*
 * Error reporting without printing: library code returns a negative errno and
 * records one human-readable line here; only the command-line front end prints.
 * The first message set wins, since it names the root cause.
 */
#ifndef KVMINI_COMMON_ERR_H
#define KVMINI_COMMON_ERR_H

#include <stddef.h>

struct err {
	char msg[512];
};

/* Records the message (if none is recorded yet) and returns code, which must be < 0. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_clear(struct err *e);
/* The recorded message, or "" when none was set. */
const char *err_msg(const struct err *e);

#endif
