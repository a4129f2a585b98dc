/* SPDX-License-Identifier: MIT */
/*
 * kvmini-tcp: bulk TCP for the test guests, whose busybox nc moves data in
 * small reads and writes (so a guest never builds large TSO frames with it).
 * Built static into the test initramfs by tests/guest/build-initrd.sh.
 *   kvmini-tcp send HOST PORT < FILE   connect (retrying for 30 s), write stdin in 256 KiB
 *                                      write()s, shut down, wait for the peer to close
 *   kvmini-tcp recv PORT > FILE        accept one connection, copy it to stdout
 * Prints "bytes=N secs=S mbps=M" on stderr; exit 0, or 1 with a message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	fprintf(stderr, "kvmini-tcp: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Copies in to out until EOF; returns the bytes or -1. */
static long long copy(int in, int out)
{
	static char buf[CHUNK];
	long long total = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return total;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			off += w;
		}
		total += n;
	}
}

static void report(long long bytes, double t0)
{
	double s = now() - t0;
	fprintf(stderr, "bytes=%lld secs=%.2f mbps=%.1f\n", bytes, s, s > 0 ? bytes / s / 1e6 : 0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	if (argc == 4 && !strcmp(argv[1], "send")) {
		if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1)
			return fprintf(stderr, "kvmini-tcp: bad address %s\n", argv[2]), 1;
		a.sin_port = htons((unsigned short)atoi(argv[3]));
		int s = -1;
		for (int i = 0; i < 300; i++) {
			s = socket(AF_INET, SOCK_STREAM, 0);
			if (s < 0)
				return fail("socket");
			if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
				break;
			close(s);
			s = -1;
			usleep(100000);
		}
		if (s < 0)
			return fail("connect");
		double t0 = now();
		long long n = copy(0, s);
		if (n < 0)
			return fail("send");
		shutdown(s, SHUT_WR);
		char c;
		while (read(s, &c, 1) > 0)
			; /* the peer closes once it has everything */
		report(n, t0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "recv")) {
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		a.sin_port = htons((unsigned short)atoi(argv[2]));
		if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0)
			return fail("listen");
		int s = accept(l, NULL, NULL);
		if (s < 0)
			return fail("accept");
		double t0 = now();
		long long n = copy(s, 1);
		if (n < 0)
			return fail("recv");
		report(n, t0);
		return 0;
	}
	fprintf(stderr, "usage: kvmini-tcp send HOST PORT < FILE | recv PORT > FILE\n");
	return 2;
}
