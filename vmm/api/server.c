/* SPDX-License-Identifier: MIT */
/*
 * The control socket's one thread: poll() over the listening socket, the
 * clients and a wake-up eventfd (events to send, or time to close). Requests
 * are framed by newlines and handled one at a time, in arrival order; each
 * client has its own output buffer, so a client that stops reading only
 * loses itself (dropped past API_MAX_OUT bytes), never blocks the others.
 */
#include "vmm/api/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/seccomp.h"
#include "vmm/api/commands.h"
#include "vmm/api/request.h"

#define API_MAX_OUT (4U << 20) /* bytes queued for one client before it is dropped */

struct api_client {
	int fd; /* -1: free slot */
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_cap;
	bool closing; /* close once out is sent (a request too long) */
};

struct ev_line {
	struct ev_line *next;
	size_t len;
	char s[];
};

struct api_server {
	struct kvmini_vm *vm;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool path_given_away; /* api_server_forget_path(): someone else removes it */
	int listen_fd, wake_fd, watch_id;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* events and quit */
	struct ev_line *events, **events_tail;
	bool quit;
	struct api_client clients[API_MAX_CLIENTS];
	/* The migration thread (one at a time). */
	pthread_t mig_thread;
	bool mig_joinable;
	int mig_running; /* atomic */
	struct kvmini_migrate_params mig;
	char mig_uri[256];
	/* A shutdown with a timeout: the VM is stopped at the deadline. */
	bool shutdown_armed;
	unsigned shutdown_timeout;
	struct timespec shutdown_deadline;
};

static void queue_line(struct api_server *s, json_t *v)
{
	size_t len;
	char *line = v ? api_line(v, &len) : NULL;
	json_decref(v);
	if (!line)
		return;
	struct ev_line *e = malloc(sizeof(*e) + len);
	if (e) {
		e->next = NULL;
		e->len = len;
		memcpy(e->s, line, len);
		pthread_mutex_lock(&s->lock);
		*s->events_tail = e;
		s->events_tail = &e->next;
		pthread_mutex_unlock(&s->lock);
		uint64_t one = 1;
		if (write(s->wake_fd, &one, sizeof(one)) < 0) {
			/* the counter is far from overflowing: cannot fail */
		}
	}
	free(line);
}

/* Library event watcher: any thread. */
static void on_event(void *opaque, const struct kvmini_event *ev)
{
	struct api_server *s = opaque;
	queue_line(s, api_event(api_event_name(ev->kind), api_event_data(s->vm, ev)));
}

static void client_close(struct api_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Appends to c's output; drops the client when it has let too much pile up. */
static void client_send(struct api_client *c, const char *buf, size_t len)
{
	if (c->fd < 0)
		return;
	if (c->out_len + len > API_MAX_OUT) {
		client_close(c);
		return;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		char *o = realloc(c->out, cap);
		if (!o) {
			client_close(c);
			return;
		}
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
}

static void client_send_json(struct api_client *c, json_t *v)
{
	size_t len;
	char *line = v ? api_line(v, &len) : NULL;
	json_decref(v);
	if (line)
		client_send(c, line, len);
	free(line);
}

static void client_flush(struct api_client *c)
{
	while (c->fd >= 0 && c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			client_close(c);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - n);
		c->out_len -= n;
	}
	if (c->fd >= 0 && c->closing && !c->out_len)
		client_close(c);
}

static void handle_line(struct api_server *s, struct api_client *c, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return; /* blank lines are allowed (an interactive socat) */
	struct api_request req;
	json_t *reply;
	if (api_request_parse(line, len, &req, &reply) == 0) {
		struct api_exec x = {.vm = s->vm, .sock_path = s->path, .server = s};
		reply = api_execute(&x, &req);
		api_request_free(&req);
		if (x.shutdown_started) {
			s->shutdown_armed = x.shutdown_timeout > 0;
			s->shutdown_timeout = x.shutdown_timeout;
			clock_gettime(CLOCK_MONOTONIC, &s->shutdown_deadline);
			s->shutdown_deadline.tv_sec += x.shutdown_timeout;
		}
	}
	client_send_json(c, reply);
}

static void client_read(struct api_server *s, struct api_client *c)
{
	char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		/* Gone; a request it did not finish (no newline) is dropped unexecuted. */
		client_close(c);
		return;
	}
	if (c->closing)
		return;
	char *in = realloc(c->in, c->in_len + n);
	if (!in) {
		client_close(c);
		return;
	}
	c->in = in;
	memcpy(c->in + c->in_len, buf, n);
	c->in_len += n;
	size_t start = 0;
	bool too_long = false;
	for (size_t i = c->in_len - n; i < c->in_len; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i - start > API_MAX_LINE) {
			too_long = true;
			break;
		}
		handle_line(s, c, c->in + start, i - start);
		if (c->fd < 0)
			return; /* dropped while answering (its output overflowed) */
		start = i + 1;
	}
	if (!too_long) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
		too_long = c->in_len > API_MAX_LINE;
	}
	if (too_long) {
		client_send_json(c, api_reply_error(NULL, "RequestTooLong",
						    "a request line is longer than %d bytes: closing",
						    API_MAX_LINE));
		c->closing = true;
		c->in_len = 0;
	}
}

static void accept_client(struct api_server *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		if (s->clients[i].fd < 0) {
			s->clients[i].fd = fd;
			return;
		}
	struct api_client tmp = {.fd = fd};
	client_send_json(&tmp, api_reply_error(NULL, "TooManyClients", "%d clients are connected already",
					       API_MAX_CLIENTS));
	client_flush(&tmp);
	client_close(&tmp);
}

/* Moves queued event lines to every client; returns whether quit was asked. */
static bool deliver_events(struct api_server *s)
{
	uint64_t v;
	if (read(s->wake_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&s->lock);
	struct ev_line *e = s->events;
	s->events = NULL;
	s->events_tail = &s->events;
	bool quit = s->quit;
	pthread_mutex_unlock(&s->lock);
	while (e) {
		struct ev_line *next = e->next;
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
			client_send(&s->clients[i], e->s, e->len);
		free(e);
		e = next;
	}
	return quit;
}

static int ms_to(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms = (t->tv_sec - now.tv_sec) * 1000LL + (t->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static void check_shutdown_deadline(struct api_server *s)
{
	if (!s->shutdown_armed || ms_to(&s->shutdown_deadline) > 0)
		return;
	s->shutdown_armed = false;
	if (kvmini_vm_state(s->vm) == KVMINI_STATE_STOPPED)
		return;
	queue_line(s, api_event("shutdown-timeout", json_pack("{s:i}", "timeout", (int)s->shutdown_timeout)));
	kvmini_vm_stop(s->vm);
}

static void *server_thread(void *arg)
{
	struct api_server *s = arg;
	struct pollfd p[2 + API_MAX_CLIENTS];
	bool quit = false;
	struct timespec flush_end = {0};
	for (;;) {
		if (deliver_events(s) && !quit) {
			quit = true;
			clock_gettime(CLOCK_MONOTONIC, &flush_end);
			flush_end.tv_sec += 1;
		}
		bool pending = false;
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
			client_flush(&s->clients[i]);
			pending |= s->clients[i].fd >= 0 && s->clients[i].out_len;
		}
		if (quit && (!pending || ms_to(&flush_end) == 0))
			break;
		p[0] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = quit ? -1 : s->listen_fd, .events = POLLIN};
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
			struct api_client *c = &s->clients[i];
			p[2 + i] = (struct pollfd){
			    .fd = c->fd, .events = (quit ? 0 : POLLIN) | (c->out_len ? POLLOUT : 0)};
		}
		int tmo = quit ? ms_to(&flush_end) : s->shutdown_armed ? ms_to(&s->shutdown_deadline) : -1;
		if (poll(p, 2 + API_MAX_CLIENTS, tmo) < 0 && errno != EINTR)
			break;
		if (!quit)
			check_shutdown_deadline(s);
		if (p[1].revents & POLLIN)
			accept_client(s);
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
			struct api_client *c = &s->clients[i];
			if (c->fd >= 0 && p[2 + i].fd == c->fd &&
			    (p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(s, c);
		}
	}
	return NULL;
}

/* Why path cannot be our socket, or 0 when it does not exist. */
int api_server_check_path(const char *path, struct err *e)
{
	if (!*path)
		return err_set(e, -EINVAL, "--api-sock: the socket path is empty");
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(
		    e, -ENAMETOOLONG,
		    "--api-sock %s: the path is too long for a unix socket (%zu bytes, at most %zu)", path,
		    strlen(path), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_set(e, -errno, "--api-sock %s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, -EEXIST, "--api-sock %s: the path exists and is not a socket", path);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	if (live)
		return err_set(e, -EADDRINUSE, "--api-sock %s: another process is serving this socket", path);
	return err_set(
	    e, -EEXIST,
	    "--api-sock %s: a socket file exists but nothing serves it (a VMM that died?): remove it first",
	    path);
}

int api_server_open(struct kvmini_vm *vm, const char *path, struct api_server **out, struct err *e)
{
	*out = NULL;
	int r = api_server_check_path(path, e);
	if (r)
		return r;
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	s->vm = vm;
	memcpy(s->path, path, strlen(path) + 1);
	s->listen_fd = s->wake_fd = s->watch_id = -1;
	s->events_tail = &s->events;
	pthread_mutex_init(&s->lock, NULL);
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	bool bound = false;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path));
	if (s->listen_fd < 0 || s->wake_fd < 0) {
		r = err_set(e, -errno, "--api-sock %s: %s", path, strerror(errno));
	} else if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = err_set(e, -errno, "--api-sock %s: cannot bind: %s", path, strerror(errno));
	} else {
		bound = true;
		/* Only the owner may drive the VM (a window between bind and chmod: keep the directory
		 * private). */
		if (chmod(path, 0600) < 0 || listen(s->listen_fd, 8) < 0)
			r = err_set(e, -errno, "--api-sock %s: %s", path, strerror(errno));
	}
	if (!r && (s->watch_id = kvmini_vm_watch(vm, on_event, s)) < 0)
		r = err_set(e, s->watch_id, "--api-sock %s: too many event watchers", path);
	if (r) {
		if (bound)
			unlink(path);
		s->path[0] = '\0';
		api_server_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int api_server_start(struct api_server *s, struct err *e)
{
	if (s->started)
		return 0;
	int r = -sandbox_thread_create(&s->thread, SB_API, server_thread, s);
	if (r)
		return err_set(e, r, "--api-sock %s: cannot start its thread: %s", s->path, strerror(-r));
	s->started = true;
	return 0;
}

const char *api_server_path(const struct api_server *s)
{
	return s->path[0] && !s->path_given_away ? s->path : NULL;
}

void api_server_forget_path(struct api_server *s)
{
	s->path_given_away = true; /* still reported by info */
}

static void mig_progress(void *opaque, const struct kvmini_migrate_progress *p)
{
	struct api_server *s = opaque;
	queue_line(s, api_event("migration",
				json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:b}", "pass",
					  (int)p->pass, "bytes_sent", (json_int_t)p->bytes_sent, "remaining",
					  (json_int_t)p->remaining_bytes, "dirty_rate",
					  (json_int_t)p->dirty_rate, "bandwidth", (json_int_t)p->bandwidth,
					  "expected_downtime_ms", (json_int_t)p->expected_downtime_ms,
					  "elapsed_ms", (json_int_t)p->elapsed_ms, "throttle_pct",
					  (int)p->throttle_pct, "final", p->final)));
}

static void *mig_thread(void *arg)
{
	struct api_server *s = arg;
	struct kvmini_migrate_result res = {0};
	char err[512];
	int r = kvmini_vm_migrate(s->vm, &s->mig, mig_progress, s, &res, err, sizeof(err));
	if (r)
		queue_line(s, api_event("migration-failed", json_pack("{s:s}", "error", err)));
	else
		queue_line(
		    s, api_event("migration-done",
				 json_pack("{s:I, s:I, s:I, s:i, s:i}", "total_ms", (json_int_t)res.total_ms,
					   "downtime_ms", (json_int_t)res.downtime_ms, "bytes_sent",
					   (json_int_t)res.bytes_sent, "passes", (int)res.passes,
					   "throttle_pct", (int)res.throttle_pct)));
	__atomic_store_n(&s->mig_running, 0, __ATOMIC_RELEASE);
	return NULL;
}

int api_server_migrate(struct api_server *s, const struct api_request *req, char *why, size_t whylen)
{
	if (__atomic_load_n(&s->mig_running, __ATOMIC_ACQUIRE)) {
		snprintf(why, whylen, "a migration is running already");
		return -EBUSY;
	}
	if (s->mig_joinable)
		pthread_join(s->mig_thread, NULL);
	s->mig_joinable = false;
	snprintf(s->mig_uri, sizeof(s->mig_uri), "%s", req->uri);
	s->mig = (struct kvmini_migrate_params){
	    .uri = s->mig_uri,
	    .max_downtime_ms = req->max_downtime_ms > 0 ? (uint64_t)req->max_downtime_ms : 0,
	    .bandwidth = req->bandwidth > 0 ? (uint64_t)req->bandwidth : 0,
	    .timeout_s = req->mig_timeout > 0 ? (unsigned)req->mig_timeout : 0,
	    .auto_converge = req->auto_converge,
	};
	__atomic_store_n(&s->mig_running, 1, __ATOMIC_RELEASE);
	int r = sandbox_thread_create(&s->mig_thread, SB_MIGRATION, mig_thread, s);
	if (r) {
		__atomic_store_n(&s->mig_running, 0, __ATOMIC_RELEASE);
		snprintf(why, whylen, "cannot start its thread: %s", strerror(r));
		return -r;
	}
	s->mig_joinable = true;
	return 0;
}

int api_server_migrate_cancel(struct api_server *s)
{
	if (!__atomic_load_n(&s->mig_running, __ATOMIC_ACQUIRE))
		return -ENOENT;
	kvmini_vm_migrate_cancel(s->vm);
	return 0;
}

void api_server_close(struct api_server *s)
{
	if (!s)
		return;
	if (s->mig_joinable) {
		/* Its last event goes out with the rest below. */
		kvmini_vm_migrate_cancel(s->vm);
		pthread_join(s->mig_thread, NULL);
	}
	if (s->watch_id >= 0)
		kvmini_vm_unwatch(s->vm, s->watch_id);
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->quit = true;
		pthread_mutex_unlock(&s->lock);
		uint64_t one = 1;
		if (write(s->wake_fd, &one, sizeof(one)) < 0) {
			/* cannot fail, see queue_line */
		}
		pthread_join(s->thread, NULL);
	}
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		client_close(&s->clients[i]);
	while (s->events) {
		struct ev_line *n = s->events->next;
		free(s->events);
		s->events = n;
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->path[0] && !s->path_given_away)
		unlink(s->path);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
