/* SPDX-License-Identifier: MIT */
/*
 * The command line's terminal: raw mode while a guest owns the console, put
 * back on every way out (normal exit, fatal signals, crashes).
 */
#ifndef KVMINI_VMM_CONSOLE_TTY_H
#define KVMINI_VMM_CONSOLE_TTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Puts fd in raw mode when it is a terminal; returns true when it did. */
bool console_tty_raw(int fd);
/* Restores the saved mode; safe to call more than once and from a signal handler. */
void console_tty_restore(void);

/* The quit sequence: Ctrl-A x. Ctrl-A Ctrl-A sends one Ctrl-A. */
#define CONSOLE_ESCAPE 0x01

struct console_escape {
	bool pending; /* the previous byte was Ctrl-A */
};

/*
 * Filters len input bytes for the escape sequence into out, which must hold
 * len + 1 bytes (a Ctrl-A held back from the previous call may come out in
 * front). Returns the number of bytes in out for the guest; sets *quit when
 * Ctrl-A x was typed (bytes after it are dropped).
 */
size_t console_escape_filter(struct console_escape *st, const uint8_t *in, size_t len, uint8_t *out,
			     bool *quit);

#endif
