/* SPDX-License-Identifier: MIT */
/*
 * qcow2 metadata I/O on the image file, and the set of metadata clusters that
 * guest data must never land on (QEMU's "overlap check").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/disk/qcow2.h"

int qcow2_pread(struct qcow2 *q, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(q->mfd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) { /* past the end of the file: zeroes, as the format reads them */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int qcow2_pwrite(struct qcow2 *q, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	uint64_t end = off + len;
	while (len) {
		ssize_t n = pwrite(q->mfd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	if (end > q->file_size)
		q->file_size = end;
	return 0;
}

int qcow2_sync(struct qcow2 *q)
{
	int r;
	do
		r = fdatasync(q->mfd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int qcow2_broken(struct qcow2 *q, const char *fmt, ...)
{
	if (!q->broken) {
		q->broken = true;
		char msg[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "kvmini: %s: corrupt qcow2 image: %s; writes to it now fail\n", q->d.path,
			msg);
	}
	return -EIO;
}

/* Index of the first entry >= off. */
static size_t meta_find(const struct qcow2 *q, uint64_t off)
{
	size_t lo = 0, hi = q->nmeta;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->meta[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	if (!len)
		return false;
	uint64_t first = off & ~(q->cluster_size - 1);
	size_t i = meta_find(q, first);
	return i < q->nmeta && q->meta[i] < off + len;
}

int qcow2_meta_add(struct qcow2 *q, uint64_t off)
{
	size_t i = meta_find(q, off);
	if (i < q->nmeta && q->meta[i] == off)
		return 0;
	if (q->nmeta == q->cap_meta) {
		size_t cap = q->cap_meta ? q->cap_meta * 2 : 64;
		uint64_t *m = realloc(q->meta, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		q->meta = m;
		q->cap_meta = cap;
	}
	memmove(q->meta + i + 1, q->meta + i, (q->nmeta - i) * sizeof(*q->meta));
	q->meta[i] = off;
	q->nmeta++;
	return 0;
}

void qcow2_meta_del(struct qcow2 *q, uint64_t off)
{
	size_t i = meta_find(q, off);
	if (i < q->nmeta && q->meta[i] == off) {
		memmove(q->meta + i, q->meta + i + 1, (q->nmeta - i - 1) * sizeof(*q->meta));
		q->nmeta--;
	}
}
