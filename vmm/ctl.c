/* SPDX-License-Identifier: MIT */
/*
 * `kvmini ctl [--timeout S] SOCKET COMMAND [KEY=VALUE]...` sends one request
 * and prints the reply as one JSON line on stdout; the exit status says
 * whether it succeeded. `kvmini ctl SOCKET events [--count N]` prints the
 * VM's events, one per line, until the VM ends (or N have arrived). Events
 * that arrive while waiting for a reply are skipped.
 */
#include "vmm/ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_MAX_LINE (16U << 20) /* a stats reply is far smaller */

static const char usage[] =
    "Usage: kvmini ctl [--timeout S] SOCKET COMMAND [KEY=VALUE]...\n"
    "       kvmini ctl SOCKET events [--count N]\n"
    "\n"
    "Sends COMMAND to the VM serving SOCKET (kvmini run --api-sock SOCKET) and prints\n"
    "the reply, one JSON object, on stdout. Exit status 0 when the command succeeded,\n"
    "1 when it failed (the reply then has \"error\") or no reply came.\n"
    "\n"
    "Commands:\n"
    "  info                      state, vCPUs, memory, devices, uptime, pid\n"
    "  stats                     counters: per-vCPU exits, per-disk and per-NIC I/O\n"
    "  pause, resume             stop and restart the vCPUs and devices\n"
    "  shutdown [timeout=S]      press the ACPI power button; stop the VM after S\n"
    "                            seconds (default: --shutdown-timeout; 0: never)\n"
    "  stop                      stop the VM at once\n"
    "  reset                     reset the machine (the guest boots again)\n"
    "  save FILE                 save the VM's state to FILE (new), then stop it;\n"
    "                            kvmini run ... --restore FILE goes on from there\n"
    "  migrate tcp:HOST:PORT [--max-downtime T] [--bandwidth R] [--timeout S]\n"
    "          [--auto-converge] live-migrate the VM to a kvmini run ... --incoming\n"
    "                            there; blocks, each pass on stderr, the result on\n"
    "                            stdout, exit 0 once the destination has taken over\n"
    "                            (--auto-converge: throttle the vCPUs of a guest\n"
    "                            that dirties memory faster than the link carries)\n"
    "  migrate-cancel            make a running migration give up\n"
    "  events [--count N]        print events as they come, until the VM ends\n"
    "\n"
    "KEY=VALUE arguments become the request's \"args\": digits make a number,\n"
    "true/false a boolean, anything else a string. --timeout S: give up waiting\n"
    "for the reply after S seconds (default: 60). The protocol is in docs/API.md;\n"
    "socat works too: echo '{\"cmd\":\"info\"}' | socat - UNIX-CONNECT:SOCKET\n";

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static int ctl_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "kvmini ctl: %s: the path is too long for a unix socket\n", path);
		return -1;
	}
	memcpy(a.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "kvmini ctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * The next line (without its newline, NUL-terminated in c->buf) within
 * timeout_ms (< 0: none). Returns its length, -1 at end of stream or on
 * error, -2 on timeout. The caller consumes it with consume().
 */
static long next_line(struct conn *c, int timeout_ms, size_t *used)
{
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			*nl = '\0';
			*used = (size_t)(nl - c->buf) + 1;
			return nl - c->buf;
		}
		if (c->len >= CTL_MAX_LINE) {
			fprintf(stderr, "kvmini ctl: a line from the VM is longer than %u bytes\n",
				CTL_MAX_LINE);
			return -1;
		}
		int wait = -1;
		if (timeout_ms >= 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long long ms =
			    (end.tv_sec - now.tv_sec) * 1000LL + (end.tv_nsec - now.tv_nsec) / 1000000;
			if (ms <= 0)
				return -2;
			wait = (int)ms;
		}
		struct pollfd p = {c->fd, POLLIN, 0};
		int r = poll(&p, 1, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue; /* the deadline check above returns */
		if (c->len + 4096 + 1 > c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b = realloc(c->buf, cap);
			if (!b)
				return -1;
			c->buf = b;
			c->cap = cap;
		}
		ssize_t n = read(c->fd, c->buf + c->len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->len += n;
	}
}

static void consume(struct conn *c, size_t used)
{
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
}

static json_t *arg_value(const char *v)
{
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return json_boolean(!strcmp(v, "true"));
	if (*v && strspn(v, "0123456789") == strlen(v) && strlen(v) < 19)
		return json_integer(strtoll(v, NULL, 10));
	return json_string(v);
}

static int events(struct conn *c, int argc, char **argv)
{
	long count = -1;
	for (int i = 0; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			count = strtol(argv[++i], &end, 10);
			if (*end || count < 1) {
				fprintf(stderr, "kvmini ctl: events: --count needs a positive number\n");
				return 1;
			}
		} else {
			fprintf(stderr, "kvmini ctl: events: unknown argument '%s' (see kvmini ctl --help)\n",
				argv[i]);
			return 1;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long seen = 0; count < 0 || seen < count;) {
		size_t used;
		long n = next_line(c, -1, &used);
		if (n < 0)
			return 0; /* the VM ended */
		json_t *v = json_loads(c->buf, 0, NULL);
		if (v && json_object_get(v, "event")) {
			puts(c->buf);
			seen++;
		}
		json_decref(v);
		consume(c, used);
	}
	return 0;
}

/* "100ms", "2s", "100" (ms) -> milliseconds; "1G", "100M", "5000" (bytes) -> bytes: -1 when bad. */
enum unit { BYTES, MILLIS, SECONDS };

/*
 * "100M" (BYTES: K, M, G, optionally followed by B or iB), "100ms", "2s", "10m" (MILLIS and
 * SECONDS; a bare number is in the unit itself). -1 when it is none of these, negative, too
 * large, or (SECONDS) not whole seconds.
 */
static long long scaled(const char *v, enum unit u)
{
	char *end;
	long long n = strtoll(v, &end, 10);
	if (end == v || n < 0 || n > (1LL << 40))
		return -1;
	if (u != BYTES) {
		long long ms = !*end		    ? (u == MILLIS ? n : n * 1000)
			       : !strcmp(end, "ms") ? n
			       : !strcmp(end, "s")  ? n * 1000
			       : !strcmp(end, "m")  ? n * 60000
						    : -1;
		if (ms < 0 || (u == SECONDS && ms % 1000))
			return -1;
		return u == MILLIS ? ms : ms / 1000;
	}
	long long m = !*end			     ? 1
		      : (*end == 'K' || *end == 'k') ? 1LL << 10
		      : *end == 'M'		     ? 1LL << 20
		      : *end == 'G'		     ? 1LL << 30
						     : -1;
	if (m < 0 || (*end && end[1] && strcmp(end + 1, "B") && strcmp(end + 1, "iB")))
		return -1;
	return n * m;
}

/* migrate's options that take a value: the request argument each sets, and in what unit. */
static const struct {
	const char *opt, *key;
	enum unit unit;
	const char *want;
} mig_opts[] = {
    {"--max-downtime", "max_downtime_ms", MILLIS, "a time such as 100ms or 2s"},
    {"--bandwidth", "bandwidth", BYTES, "a rate in bytes/s such as 100M or 1G"},
    {"--timeout", "timeout", SECONDS, "whole seconds such as 600, 600s or 10m"},
};

/* Waits for the migration's end, showing each pass on stderr; the last event goes to stdout. */
static int follow_migration(struct conn *c)
{
	for (;;) {
		size_t used;
		long n = next_line(c, -1, &used);
		if (n < 0) {
			fprintf(stderr,
				"kvmini ctl: the VM closed the connection before the migration ended\n");
			return 1;
		}
		json_t *v = json_loads(c->buf, 0, NULL);
		const char *ev = json_string_value(json_object_get(v, "event"));
		json_t *d = json_object_get(v, "data");
		int rc = -1;
		if (ev && !strcmp(ev, "migration")) {
			long long throttle = json_integer_value(json_object_get(d, "throttle_pct"));
			fprintf(stderr,
				"kvmini ctl: migration pass %lld%s: %.1f MiB sent, %.1f MiB left, dirtying "
				"%.1f MiB/s, %.1f MiB/s, expected downtime %lld ms%s%.0lld%s\n",
				json_integer_value(json_object_get(d, "pass")),
				json_is_true(json_object_get(d, "final")) ? " (final)" : "",
				json_integer_value(json_object_get(d, "bytes_sent")) / 1048576.0,
				json_integer_value(json_object_get(d, "remaining")) / 1048576.0,
				json_integer_value(json_object_get(d, "dirty_rate")) / 1048576.0,
				json_integer_value(json_object_get(d, "bandwidth")) / 1048576.0,
				json_integer_value(json_object_get(d, "expected_downtime_ms")),
				throttle ? ", vCPUs throttled to " : "", throttle, throttle ? " %" : "");
		} else if (ev && (!strcmp(ev, "migration-done") || !strcmp(ev, "migration-failed"))) {
			puts(c->buf);
			rc = !strcmp(ev, "migration-done") ? 0 : 1;
			if (rc)
				fprintf(stderr, "kvmini ctl: migration failed: %s\n",
					json_string_value(json_object_get(d, "error")));
		}
		json_decref(v);
		consume(c, used);
		if (rc >= 0)
			return rc;
	}
}

static int request(struct conn *c, const char *cmd, int argc, char **argv, int timeout_s)
{
	json_t *args = json_object();
	bool migrate = !strcmp(cmd, "migrate");
	for (int i = 0; i < argc; i++) {
		if (migrate && !strcmp(argv[i], "--auto-converge")) {
			json_object_set_new(args, "auto_converge", json_true());
			continue;
		}
		unsigned o = 0;
		while (migrate && o < sizeof(mig_opts) / sizeof(mig_opts[0]) &&
		       strcmp(argv[i], mig_opts[o].opt))
			o++;
		if (migrate && o < sizeof(mig_opts) / sizeof(mig_opts[0])) {
			long long v = i + 1 < argc ? scaled(argv[i + 1], mig_opts[o].unit) : -1;
			if (v < 0) {
				fprintf(stderr, "kvmini ctl: migrate: %s needs %s\n", argv[i],
					mig_opts[o].want);
				json_decref(args);
				return 1;
			}
			json_object_set_new(args, mig_opts[o].key, json_integer(v));
			i++;
			continue;
		}
		if (migrate && !strchr(argv[i], '=') && !json_object_get(args, "uri")) {
			json_object_set_new(args, "uri", json_string(argv[i]));
			continue;
		}
		const char *eq = strchr(argv[i], '=');
		/* `save FILE`: the one argument a command takes without a name. */
		if (!eq && !strcmp(cmd, "save") && !json_object_get(args, "path")) {
			json_object_set_new(args, "path", json_string(argv[i]));
			continue;
		}
		if (!eq || eq == argv[i]) {
			fprintf(stderr,
				"kvmini ctl: argument '%s' is not KEY=VALUE (see kvmini ctl --help)\n",
				argv[i]);
			json_decref(args);
			return 1;
		}
		char key[128];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
		json_object_set_new(args, key, arg_value(eq + 1));
	}
	json_t *req = json_pack("{s:s, s:i}", "cmd", cmd, "id", 1);
	if (json_object_size(args))
		json_object_set(req, "args", args);
	json_decref(args);
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!s)
		return 1;
	size_t len = strlen(s);
	s[len] = '\n'; /* json_dumps's NUL becomes the newline; send len + 1 bytes */
	size_t off = 0;
	while (off < len + 1) {
		ssize_t n = send(c->fd, s + off, len + 1 - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "kvmini ctl: cannot send the request: %s\n", strerror(errno));
			free(s);
			return 1;
		}
		off += n;
	}
	free(s);
	for (;;) {
		size_t used;
		long n = next_line(c, timeout_s * 1000, &used);
		if (n == -2) {
			fprintf(stderr, "kvmini ctl: no reply to '%s' within %d s\n", cmd, timeout_s);
			return 1;
		}
		if (n < 0) {
			fprintf(stderr, "kvmini ctl: the VM closed the connection without replying to '%s'\n",
				cmd);
			return 1;
		}
		json_t *v = json_loads(c->buf, 0, NULL);
		if (!v || json_object_get(v, "event")) {
			json_decref(v);
			consume(c, used);
			continue;
		}
		json_t *err = json_object_get(v, "error");
		int rc = 0;
		if (!err && migrate) {
			/* Started: what counts is how it ends. */
			json_decref(v);
			consume(c, used);
			return follow_migration(c);
		}
		puts(c->buf);
		if (err) {
			fprintf(stderr, "kvmini ctl: %s: %s\n",
				json_string_value(json_object_get(err, "class")),
				json_string_value(json_object_get(err, "desc")));
			rc = 1;
		}
		json_decref(v);
		return rc;
	}
}

int ctl_main(int argc, char **argv)
{
	int i = 1, timeout_s = 60;
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "--timeout")) {
		char *end;
		long t = strtol(argv[2], &end, 10);
		if (*end || t < 1 || t > 86400) {
			fprintf(stderr, "kvmini ctl: --timeout needs seconds from 1 to 86400, not '%s'\n",
				argv[2]);
			return 1;
		}
		timeout_s = (int)t;
		i = 3;
	}
	if (argc - i < 2) {
		fprintf(stderr, "kvmini ctl: expected SOCKET and COMMAND (see kvmini ctl --help)\n");
		return 1;
	}
	const char *path = argv[i], *cmd = argv[i + 1];
	struct conn c = {.fd = ctl_connect(path)};
	if (c.fd < 0)
		return 1;
	int rc = !strcmp(cmd, "events") ? events(&c, argc - i - 2, argv + i + 2)
					: request(&c, cmd, argc - i - 2, argv + i + 2, timeout_s);
	close(c.fd);
	free(c.buf);
	return rc;
}
