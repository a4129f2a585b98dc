/* SPDX-License-Identifier: MIT */
/* Main thread (raw/restore), console input thread (escape filter), signal handlers (restore). */
#include "console_tty.h"

#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/seccomp.h"

/* One terminal per process: the saved mode is process state by nature. */
static struct termios saved;
static int saved_fd = -1;

void console_tty_restore(void)
{
	if (saved_fd >= 0)
		tcsetattr(saved_fd, TCSAFLUSH, &saved);
}

static void crash_handler(int sig)
{
	console_tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

bool console_tty_raw(int fd)
{
	if (!isatty(fd) || tcgetattr(fd, &saved) < 0)
		return false;
	struct termios raw = saved;
	cfmakeraw(&raw);
	/* Keep output processing off too: the guest sends its own CR LF. */
	if (tcsetattr(fd, TCSAFLUSH, &raw) < 0)
		return false;
	saved_fd = fd;
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], crash_handler);
	sandbox_set_fatal_hook(console_tty_restore); /* a forbidden system call: SIGSYS */
	return true;
}

size_t console_escape_filter(struct console_escape *st, const uint8_t *in, size_t len, uint8_t *out,
			     bool *quit)
{
	size_t n = 0;
	*quit = false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		if (st->pending) {
			st->pending = false;
			if (c == 'x' || c == 'X') {
				*quit = true;
				return n;
			}
			if (c != CONSOLE_ESCAPE)
				out[n++] = CONSOLE_ESCAPE; /* not a command: pass both bytes on */
			out[n++] = c;
		} else if (c == CONSOLE_ESCAPE) {
			st->pending = true;
		} else {
			out[n++] = c;
		}
	}
	return n;
}
