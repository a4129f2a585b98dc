/* SPDX-License-Identifier: MIT */
/*
 * The VM lifecycle through libkvmini alone (t_lib_lifecycle.sh runs it on
 * the test initramfs's shell): the console as one socket (console_in_fd and
 * console_out_fd on the same end of a socketpair), pause and resume (a
 * clock-driven ticker falls silent while paused; a command written while
 * paused runs after), the event watcher, reset, the states, and a stop.
 * Prints "lifecycle: ok" and exits 0 when every step held.
 *
 *   lib_lifecycle KERNEL INITRD
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvmini.h"

#define BOOT_MS 300000

static int fails;
#define CHECK(cond, ...)                                                                                     \
	do {                                                                                                 \
		if (cond) {                                                                                  \
			printf("  ok: ");                                                                    \
		} else {                                                                                     \
			printf("  FAIL: ");                                                                  \
			fails++;                                                                             \
		}                                                                                            \
		printf(__VA_ARGS__);                                                                         \
		putchar('\n');                                                                               \
		fflush(stdout);                                                                              \
	} while (0)

/* Our end of the console socket: what the guest printed, kept whole. */
struct console {
	int fd;
	pthread_mutex_t lock;
	char *buf;
	size_t len;
};

static void *reader(void *arg)
{
	struct console *c = arg;
	char b[4096];
	ssize_t n;
	while ((n = read(c->fd, b, sizeof(b))) > 0) {
		pthread_mutex_lock(&c->lock);
		char *nb = realloc(c->buf, c->len + n + 1);
		if (nb) {
			memcpy(nb + c->len, b, n);
			c->len += n;
			nb[c->len] = '\0';
			c->buf = nb;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

static size_t count(struct console *c, const char *s)
{
	size_t n = 0;
	pthread_mutex_lock(&c->lock);
	for (const char *p = c->buf; p && (p = strstr(p, s)); p += strlen(s))
		n++;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Waits until s appears at least n times in the console output. */
static bool wait_for(struct console *c, const char *s, size_t n, int ms)
{
	for (int t = 0; t < ms; t += 100) {
		if (count(c, s) >= n)
			return true;
		usleep(100000);
	}
	return count(c, s) >= n;
}

static void say(struct console *c, const char *line)
{
	if (write(c->fd, line, strlen(line)) != (ssize_t)strlen(line))
		perror("lifecycle: console write");
}

static int events[8];
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static void on_event(void *opaque, const struct kvmini_event *ev)
{
	(void)opaque;
	pthread_mutex_lock(&ev_lock);
	if (ev->kind > 0 && ev->kind < 8)
		events[ev->kind]++;
	pthread_mutex_unlock(&ev_lock);
}
static int seen(enum kvmini_event_kind k)
{
	pthread_mutex_lock(&ev_lock);
	int n = events[k];
	pthread_mutex_unlock(&ev_lock);
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s KERNEL INITRD\n", argv[0]);
		return 2;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("socketpair");
		return 1;
	}
	struct console con = {.fd = sv[0], .lock = PTHREAD_MUTEX_INITIALIZER};
	struct kvmini_config cfg;
	kvmini_config_init(&cfg);
	cfg.kernel_path = argv[1];
	cfg.initrd_path = argv[2];
	cfg.mem_bytes = 256ULL << 20;
	cfg.console_out_fd = sv[1];
	cfg.console_in_fd = sv[1];
	char err[256];
	struct kvmini_vm *vm;
	if (kvmini_vm_create(&cfg, &vm, err, sizeof(err))) {
		fprintf(stderr, "lifecycle: %s\n", err);
		return 1;
	}
	pthread_t rt;
	pthread_create(&rt, NULL, reader, &con);
	CHECK(kvmini_vm_watch(vm, on_event, NULL) >= 0, "watching events");
	CHECK(kvmini_vm_state(vm) == KVMINI_STATE_CREATED, "state before start: created");
	CHECK(kvmini_vm_setup_us(vm) == 0, "set-up time before any KVM_RUN: 0");
	CHECK(kvmini_vm_resume(vm) == -EALREADY, "resume before start: -EALREADY");
	CHECK(kvmini_vm_start(vm) == 0, "started");
	CHECK(kvmini_vm_state(vm) == KVMINI_STATE_RUNNING, "state: running");
	if (!wait_for(&con, "KVMINI-SHELL", 1, BOOT_MS)) {
		CHECK(0, "the guest's shell came up on the console socket");
		goto out;
	}
	uint64_t setup = kvmini_vm_setup_us(vm);
	CHECK(setup > 0 && setup < 60000000, "set-up time before the first KVM_RUN: %llu us",
	      (unsigned long long)setup);
	sleep(1);
	/* The answers are computed by the guest: seeing them proves the input went through the fd. */
	say(&con, "(while :; do echo TICK-$((1+1)); sleep 0.2; done) &\n");
	CHECK(wait_for(&con, "TICK-2", 5, 60000), "console in and out through one socket: ticks");

	CHECK(kvmini_vm_pause(vm) == 0, "paused");
	CHECK(kvmini_vm_state(vm) == KVMINI_STATE_PAUSED, "state: paused");
	CHECK(kvmini_vm_pause(vm) == -EALREADY, "pause again: -EALREADY");
	usleep(500000);
	size_t before = count(&con, "TICK-2");
	say(&con, "echo TYPED-$((20+1))\n");
	sleep(3);
	CHECK(count(&con, "TICK-2") == before, "no ticks while paused (%zu before, %zu after 3 s)", before,
	      count(&con, "TICK-2"));
	CHECK(count(&con, "TYPED-21") == 0, "the line typed while paused is not run yet");
	CHECK(kvmini_vm_resume(vm) == 0, "resumed");
	CHECK(kvmini_vm_resume(vm) == -EALREADY, "resume again: -EALREADY");
	CHECK(wait_for(&con, "TICK-2", before + 3, 30000), "ticks again after resume");
	CHECK(wait_for(&con, "TYPED-21", 1, 30000), "the line typed while paused ran after resume");
	CHECK(seen(KVMINI_EVENT_PAUSED) == 1 && seen(KVMINI_EVENT_RESUMED) == 1,
	      "events: paused and resumed once each");

	CHECK(kvmini_vm_reset(vm) == 0, "reset");
	CHECK(wait_for(&con, "KVMINI-SHELL", 2, BOOT_MS), "the guest booted again after the reset");
	CHECK(seen(KVMINI_EVENT_RESET) == 1, "events: reset");
	kvmini_vm_stop(vm);
	CHECK(kvmini_vm_wait(vm, 30000) == KVMINI_EXIT_STOPPED, "stopped");
	CHECK(kvmini_vm_state(vm) == KVMINI_STATE_STOPPED, "state: stopped");
	CHECK(kvmini_vm_pause(vm) == -EPIPE, "pause after stop: -EPIPE");
	usleep(200000);
	CHECK(seen(KVMINI_EVENT_STOPPED) == 1, "events: stopped");
out:
	kvmini_vm_destroy(vm);
	shutdown(sv[0], SHUT_RDWR);
	close(sv[1]);
	pthread_join(rt, NULL);
	close(sv[0]);
	free(con.buf);
	printf("lifecycle: %s\n", fails ? "FAILED" : "ok");
	return fails ? 1 : 0;
}
