/* SPDX-License-Identifier: MIT */
#include "vmm/migration/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Splits tcp:HOST:PORT (HOST possibly in brackets) into host and port. */
static int parse(const char *uri, char *host, size_t hostlen, char *port, size_t portlen, struct err *e)
{
	if (strncmp(uri, "tcp:", 4))
		return err_set(e, -EINVAL, "'%s': expected tcp:HOST:PORT", uri);
	const char *h = uri + 4, *colon;
	size_t hl;
	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close || close[1] != ':')
			return err_set(e, -EINVAL, "'%s': expected tcp:[ADDRESS]:PORT", uri);
		h++;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon)
			return err_set(e, -EINVAL, "'%s': expected tcp:HOST:PORT", uri);
		hl = (size_t)(colon - h);
	}
	const char *p = colon + 1;
	if (!hl || hl >= hostlen || !*p || strlen(p) >= portlen || strspn(p, "0123456789") != strlen(p))
		return err_set(e, -EINVAL, "'%s': expected tcp:HOST:PORT with a numeric port", uri);
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, p, strlen(p) + 1);
	return 0;
}

static int resolve(const char *uri, bool passive, struct addrinfo **ai, struct err *e)
{
	char host[256], port[16];
	int r = parse(uri, host, sizeof(host), port, sizeof(port), e);
	if (r)
		return r;
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
	int g = getaddrinfo(host, port, &hints, ai);
	if (g)
		return err_set(e, -EHOSTUNREACH, "%s: %s", uri, gai_strerror(g));
	return 0;
}

int migrate_connect(const char *uri, int timeout_s, struct err *e)
{
	struct addrinfo *ai;
	int r = resolve(uri, false, &ai, e);
	if (r)
		return r;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = err_set(e, -errno, "%s: socket: %s", uri, strerror(errno));
		goto out;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		r = err_set(e, -errno, "cannot connect to %s: %s", uri, strerror(errno));
		goto out;
	}
	struct pollfd p = {fd, POLLOUT, 0};
	int n = poll(&p, 1, timeout_s * 1000);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (n == 0)
		r = err_set(e, -ETIMEDOUT, "cannot connect to %s: no answer within %d s", uri, timeout_s);
	else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
		r = err_set(e, soerr ? -soerr : -errno, "cannot connect to %s: %s", uri,
			    strerror(soerr ? soerr : errno));
	else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		r = err_set(e, -errno, "%s: fcntl: %s", uri, strerror(errno));
out:
	freeaddrinfo(ai);
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A destination that stops reading (or a link that silently died) fails the send, not hangs it. */
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int migrate_listen(const char *uri, struct err *e)
{
	struct addrinfo *ai;
	int r = resolve(uri, true, &ai, e);
	if (r)
		return r;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		r = err_set(e, -errno, "--incoming %s: socket: %s", uri, strerror(errno));
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		 bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0)
		r = err_set(e, -errno, "--incoming %s: %s", uri, strerror(errno));
	freeaddrinfo(ai);
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}
