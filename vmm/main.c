/* SPDX-License-Identifier: MIT */
/*
 * The kvmini command: a thin layer over libkvmini. The main thread waits for
 * the VM to stop or a signal to arrive; a console thread copies stdin to the
 * guest's serial port. Only this file prints errors and picks exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/seccomp.h"
#include "kvmini.h"
#include "vmm/console_tty.h"
#include "vmm/ctl.h"
#include "vmm/options.h"

/*
 * The exit status when the guest kernel panicked (pvpanic). Any 0..255 may
 * also come from the guest's exit-status port; 101 (what Rust programs exit
 * with on a panic) is one no common test convention uses (0/1/2, 77 skip,
 * 99 hard error, 124-127 timeout and shell, 128+N signals), and the stderr
 * line tells the two apart.
 */
#define EXIT_GUEST_PANIC 101

struct console_ctx {
	struct kvmini_vm *vm;
	bool tty;
	int quit_pipe[2]; /* written by main to end the console thread */
	volatile bool user_quit;
};

static void *console_thread(void *arg)
{
	struct console_ctx *c = arg;
	struct console_escape esc = {false};
	uint8_t buf[512], filtered[sizeof(buf) + 1];
	for (;;) {
		struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {c->quit_pipe[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* end of input ends the console, not the guest */
		size_t len = n;
		const uint8_t *data = buf;
		if (c->tty) {
			bool quit;
			len = console_escape_filter(&esc, buf, len, filtered, &quit);
			data = filtered;
			if (quit) {
				c->user_quit = true;
				kvmini_vm_stop(c->vm);
				break;
			}
		}
		if (len && kvmini_console_write(c->vm, data, len) < 0)
			break;
	}
	return NULL;
}

/* Milliseconds from now until *end (monotonic), 0 once it has passed. */
static int ms_until(const struct timespec *end)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms = (end->tv_sec - now.tv_sec) * 1000LL + (end->tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
}

static int run(int argc, char **argv)
{
	struct kvmini_config cfg;
	kvmini_config_init(&cfg);
	struct err e = {{0}};
	int r = options_parse_run(argc, argv, &cfg, &e);
	if (r == 1) {
		fputs(options_run_usage(), stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "kvmini: %s\n", err_msg(&e));
		return 1;
	}

	/* Signals become events for the main loop; threads created below inherit the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	char msg[512];
	struct kvmini_vm *vm;
	/* A stopping signal ends the wait for an incoming migration (not SIGPIPE). */
	sigset_t stop_sigs = sigs;
	sigdelset(&stop_sigs, SIGPIPE);
	int cfd = cfg.incoming ? signalfd(-1, &stop_sigs, SFD_CLOEXEC) : -1;
	cfg.incoming_cancel_fd = cfd;
	r = kvmini_vm_create(&cfg, &vm, msg, sizeof(msg));
	struct signalfd_siginfo csi;
	bool cancelled = r == -EINTR && cfd >= 0 && read(cfd, &csi, sizeof(csi)) == sizeof(csi);
	if (cfd >= 0)
		close(cfd);
	if (r < 0) {
		fprintf(stderr, "kvmini: %s\n", msg[0] ? msg : strerror(-r));
		return cancelled ? 128 + (int)csi.ssi_signo : 1;
	}

	struct console_ctx con = {.vm = vm};
	con.tty = console_tty_raw(STDIN_FILENO);
	pthread_t con_thread;
	bool con_started = false;
	bool con_pipe = pipe2(con.quit_pipe, O_CLOEXEC) == 0;

	/* The sandbox comes first (kvmini_vm_start()): the console thread is started under it. */
	r = kvmini_vm_start(vm);
	if (r == 0 && con_pipe && sandbox_thread_create(&con_thread, SB_CONSOLE, console_thread, &con) == 0)
		con_started = true;
	int status = 0, sig = 0;
	bool shutting_down = false, timed_out = false;
	struct timespec grace_end = {0};
	if (r == 0) {
		struct pollfd p[2] = {{kvmini_vm_stopped_fd(vm), POLLIN, 0}, {sfd, POLLIN, 0}};
		while (kvmini_vm_wait(vm, 0) == KVMINI_EXIT_NONE) {
			int wait_ms = shutting_down ? ms_until(&grace_end) : -1;
			if (shutting_down && wait_ms == 0) {
				timed_out = true;
				kvmini_vm_stop(vm);
				continue;
			}
			if (poll(p, sfd >= 0 ? 2 : 1, wait_ms) < 0 && errno != EINTR)
				break;
			struct signalfd_siginfo si;
			if (sfd < 0 || !(p[1].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si) ||
			    si.ssi_signo == SIGPIPE)
				continue;
			sig = (int)si.ssi_signo;
			/* The first SIGTERM asks the guest to power off (ACPI power button); the rest stop
			 * it. */
			if (sig == SIGTERM && !shutting_down && cfg.shutdown_timeout_s &&
			    kvmini_vm_shutdown(vm) == 0) {
				shutting_down = true;
				clock_gettime(CLOCK_MONOTONIC, &grace_end);
				grace_end.tv_sec += cfg.shutdown_timeout_s;
			} else {
				kvmini_vm_stop(vm);
			}
		}
	}
	enum kvmini_exit x = kvmini_vm_wait(vm, -1);

	console_tty_restore();
	if (con_started) {
		if (write(con.quit_pipe[1], "q", 1) < 0) {
			/* The thread also ends on its own once the VM has stopped. */
		}
		pthread_join(con_thread, NULL);
	}
	if (x == KVMINI_EXIT_ERROR) {
		fprintf(stderr, "kvmini: %s\n", kvmini_vm_error(vm));
		status = 1;
	} else if (x == KVMINI_EXIT_PANIC) {
		fprintf(stderr, "kvmini: the guest kernel panicked\n");
		status = EXIT_GUEST_PANIC;
	} else if (x == KVMINI_EXIT_GUEST_STATUS) {
		status = kvmini_vm_exit_status(vm);
	} else if (x == KVMINI_EXIT_POWEROFF || x == KVMINI_EXIT_REBOOT) {
		status = 0; /* also when a SIGTERM asked for it: an orderly shutdown */
	} else if (timed_out) {
		fprintf(stderr, "kvmini: the guest did not power off within %u s of SIGTERM: stopped\n",
			cfg.shutdown_timeout_s);
		status = 128 + SIGTERM;
	} else if (sig) {
		fprintf(stderr, "kvmini: stopped by signal %d (%s)\n", sig, strsignal(sig));
		status = 128 + sig;
	}
	kvmini_vm_destroy(vm);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(options_main_usage(), stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(options_main_usage(), stdout);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	fprintf(stderr, "kvmini: unknown command '%s' (see kvmini --help)\n", argv[1]);
	return 1;
}
