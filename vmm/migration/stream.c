/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing the saved-state stream over a file descriptor. The
 * reader trusts nothing: every length is bounded by its type before anything
 * is read, and its buffer grows only with bytes that actually arrived, so a
 * hostile length costs no memory the peer did not send.
 */
#include "vmm/migration/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/le.h"
#include "common/zero.h"

/* ---- Writer ---- */

void stream_writer_init(struct stream_writer *w, int fd)
{
	struct stat st;
	w->fd = fd;
	w->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	w->error = 0;
	w->len = 0;
	w->records = w->bytes = 0;
}

static int write_all(struct stream_writer *w, const uint8_t *p, size_t n, struct err *err)
{
	while (n) {
		ssize_t k = w->sock ? send(w->fd, p, n, MSG_NOSIGNAL) : write(w->fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->error = k < 0 ? -errno : -EIO;
			return err_set(err, w->error, "writing the state stream: %s", strerror(-w->error));
		}
		p += k;
		n -= (size_t)k;
		w->bytes += (uint64_t)k;
	}
	return 0;
}

/* What is buffered, then n bytes from p, in as few system calls as the fd takes; empties the buffer. */
static int write_gather(struct stream_writer *w, const uint8_t *p, size_t n, struct err *err)
{
	struct iovec iov[2] = {{w->buf, w->len}, {(void *)p, n}};
	struct iovec *v = iov;
	int cnt = 2;
	w->len = 0;
	while (cnt) {
		struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
		ssize_t k = w->sock ? sendmsg(w->fd, &m, MSG_NOSIGNAL) : writev(w->fd, v, cnt);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->error = k < 0 ? -errno : -EIO;
			return err_set(err, w->error, "writing the state stream: %s", strerror(-w->error));
		}
		w->bytes += (uint64_t)k;
		size_t left = (size_t)k;
		while (cnt && left >= v->iov_len) {
			left -= v->iov_len;
			v++;
			cnt--;
		}
		if (cnt) {
			v->iov_base = (uint8_t *)v->iov_base + left;
			v->iov_len -= left;
		}
	}
	return 0;
}

static int failed(struct stream_writer *w, struct err *err)
{
	return err_set(err, w->error, "the state stream failed earlier: %s", strerror(-w->error));
}

int stream_flush(struct stream_writer *w, struct err *err)
{
	if (w->error)
		return failed(w, err);
	int rc = write_all(w, w->buf, w->len, err);
	w->len = 0;
	return rc;
}

/* Buffers n bytes; direct when larger than the buffer (the caller's memory is stable then). */
static int put(struct stream_writer *w, const void *p, size_t n, struct err *err)
{
	if (n > STREAM_WBUF - w->len) {
		int rc = stream_flush(w, err);
		if (rc < 0)
			return rc;
		if (n >= STREAM_WBUF)
			return write_all(w, p, n, err);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

int stream_write_header(struct stream_writer *w, struct err *err)
{
	uint8_t h[STREAM_HDR_LEN];
	memcpy(h, STREAM_MAGIC, 8);
	put_le(h + 8, STREAM_VERSION, 4);
	put_le(h + 12, 0, 4);
	return w->error ? failed(w, err) : put(w, h, sizeof(h), err);
}

static void record_header(uint8_t *h, uint32_t type, uint64_t len)
{
	put_le(h, type, 4);
	put_le(h + 4, 0, 4);
	put_le(h + 8, len, 8);
}

int stream_write_record(struct stream_writer *w, uint32_t type, const void *payload, size_t len,
			struct err *err)
{
	char why[160];
	if (w->error)
		return failed(w, err);
	if (stream_check_payload(type, payload, len, why, sizeof(why)) < 0)
		return err_set(err, -EINVAL, "writing a %s record: %s", stream_type_name(type), why);
	uint8_t h[STREAM_REC_HDR], c[STREAM_CHECK];
	record_header(h, type, len);
	put_le(c, stream_check(h, len ? payload : "", len), 8);
	int rc = put(w, h, sizeof(h), err);
	if (rc == 0 && len)
		rc = put(w, payload, len, err);
	if (rc == 0)
		rc = put(w, c, sizeof(c), err);
	w->records += rc == 0;
	return rc;
}

int stream_write_ram(struct stream_writer *w, uint64_t gpa, uint32_t npages, const void *pages,
		     struct err *err)
{
	uint8_t h[STREAM_REC_HDR + STREAM_RAM_HDR + 8 * STREAM_RAM_PAGES], c[STREAM_CHECK];
	size_t data = pages ? (size_t)npages * STREAM_PAGE : 0,
	       head = STREAM_RAM_HDR + (pages ? 8 * (size_t)npages : 0);
	char why[160];
	if (w->error)
		return failed(w, err);
	put_le(h + 16, gpa, 8);
	put_le(h + 24, npages, 4);
	put_le(h + 28, pages ? 0 : STREAM_RAM_ZERO, 4);
	/* The layout check needs only the RAM header; pass the length the record would have. */
	if (stream_check_payload(STREAM_RAM, h + 16, head + data, why, sizeof(why)) < 0)
		return err_set(err, -EINVAL, "writing a RAM record: %s", why);
	record_header(h, STREAM_RAM, head + data);
	for (uint32_t i = 0; data && i < npages; i++)
		put_le(h + 32 + 8 * i, stream_page_check((const uint8_t *)pages + (size_t)i * STREAM_PAGE),
		       8);
	put_le(c, stream_check(h, h + STREAM_REC_HDR, head), 8);
	int rc = put(w, h, STREAM_REC_HDR + head, err);
	if (rc == 0 && data)
		rc = write_gather(w, pages, data, err);
	if (rc == 0)
		rc = put(w, c, sizeof(c), err);
	w->records += rc == 0;
	return rc;
}

int stream_write_end(struct stream_writer *w, struct err *err)
{
	int rc = stream_write_record(w, STREAM_END, NULL, 0, err);
	if (rc == 0)
		rc = stream_flush(w, err);
	/* The reader waits for end of file after END; the other direction stays open for a reply. */
	if (rc == 0 && w->sock && shutdown(w->fd, SHUT_WR) < 0) {
		w->error = -errno;
		rc = err_set(err, w->error, "ending the state stream: %s", strerror(-w->error));
	}
	return rc;
}

/* ---- Reader ---- */

/* Reads up to n bytes, fewer only at end of file; -EINTR once cancel_fd (if >= 0) is readable. */
static ssize_t read_full(int fd, int cancel_fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		if (cancel_fd >= 0) {
			struct pollfd pf[2] = {{cancel_fd, POLLIN, 0}, {fd, POLLIN, 0}};
			if (poll(pf, 2, -1) < 0 && errno != EINTR)
				return -errno;
			if (pf[0].revents & POLLIN)
				return -EINTR;
			if (!pf[1].revents)
				continue;
		}
		ssize_t k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT
								       : -errno; /* SO_RCVTIMEO */
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int read_header(int fd, int cancel_fd, struct err *err)
{
	uint8_t h[STREAM_HDR_LEN];
	ssize_t k = read_full(fd, cancel_fd, h, sizeof(h));
	if (k < 0)
		return err_set(err, (int)k, "reading the state stream's header: %s", strerror((int)-k));
	if (k == 0)
		return err_set(err, -EINVAL, "the state stream is empty");
	if (memcmp(h, STREAM_MAGIC, (size_t)k < 8 ? (size_t)k : 8) != 0)
		return err_set(err, -EINVAL, "not a kvmini state stream");
	if ((size_t)k < sizeof(h))
		return err_set(err, -EINVAL, "the stream ended inside its header");
	uint32_t version = (uint32_t)get_le(h + 8, 4), flags = (uint32_t)get_le(h + 12, 4);
	if (version != STREAM_VERSION)
		return err_set(err, -EPROTONOSUPPORT,
			       "stream version %" PRIu32 ", this kvmini reads version %u", version,
			       STREAM_VERSION);
	if (flags)
		return err_set(err, -EPROTONOSUPPORT,
			       "stream flags 0x%" PRIx32 " not known (version 2 has none)", flags);
	return 0;
}

int stream_reader_open(struct stream_reader *r, int fd, int cancel_fd, struct err *err)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->cancel_fd = cancel_fd;
	r->error = read_header(fd, cancel_fd, err);
	return r->error;
}

int stream_reader_init(struct stream_reader *r, int fd, struct err *err)
{
	return stream_reader_open(r, fd, -1, err);
}

void stream_reader_set_ram_sink(struct stream_reader *r, stream_ram_sink sink, void *opaque)
{
	r->sink = sink;
	r->sink_opaque = opaque;
}

void stream_reader_destroy(struct stream_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* Reads n bytes into r->buf at off, growing it with what arrived (doubling from 64 KiB) rather
 * than to off + n at once. Returns the bytes read: fewer than n at end of file. */
static ssize_t read_payload(struct stream_reader *r, size_t off, size_t n)
{
	size_t got = 0, end = off + n;
	while (got < n) {
		if (off + got == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64u << 10;
			cap = cap < end ? cap : end;
			uint8_t *b = realloc(r->buf, cap);
			if (!b)
				return -ENOMEM;
			r->buf = b;
			r->cap = cap;
		}
		size_t want = (r->cap < end ? r->cap : end) - off - got;
		ssize_t k = read_full(r->fd, r->cancel_fd, r->buf + off + got, want);
		if (k < 0)
			return k;
		got += (size_t)k;
		if ((size_t)k < want)
			break;
	}
	return (ssize_t)got;
}

/* After END: the stream must end too (a socket's writer shuts down its side). */
static int check_eof(struct stream_reader *r, uint64_t idx, struct err *err)
{
	uint8_t b;
	ssize_t k = read_full(r->fd, r->cancel_fd, &b, 1);
	if (k < 0)
		return err_set(err, (int)k, "reading after the END record (record %" PRIu64 "): %s", idx,
			       strerror((int)-k));
	if (k > 0)
		return err_set(err, -EINVAL, "trailing data after the END record (record %" PRIu64 ")", idx);
	return 0;
}

/* Reads exactly n bytes into p: 0, or -EINVAL at end of file, or a read error (err is set). */
static int read_exact(struct stream_reader *r, uint8_t *p, size_t n, uint64_t idx, const char *name,
		      struct err *err)
{
	ssize_t k = read_full(r->fd, r->cancel_fd, p, n);
	if (k < 0)
		return err_set(err, (int)k, "reading record %" PRIu64 " (%s): %s", idx, name,
			       strerror((int)-k));
	if ((size_t)k < n)
		return err_set(err, -EINVAL, "the stream ended inside a %s record (record %" PRIu64 ")", name,
			       idx);
	return 0;
}

static int check_fails(struct err *err, uint64_t idx, const char *name, uint64_t want, uint64_t got)
{
	return err_set(err, -EINVAL,
		       "record %" PRIu64 " (%s) fails its checksum (0x%016" PRIx64 ", computed 0x%016" PRIx64
		       ")",
		       idx, name, want, got);
}

/* Sets r->torn from each page's own check; data: the pages, checks: their XXH64s (LE). */
static void find_torn(struct stream_reader *r, const uint8_t *data, const uint8_t *checks, uint32_t npages)
{
	bool ok = true;
	for (uint32_t i = 0; i < npages; i++)
		if (stream_page_check(data + (size_t)i * STREAM_PAGE) != get_le(checks + 8 * i, 8)) {
			r->torn[i / 64] |= 1ull << (i % 64);
			ok = false;
		}
	r->data_ok = ok;
}

/* A RAM record with a sink: head and check through the buffer, the pages straight to guest
 * memory. Nothing is trusted before it is checked; pages written into memory the sink gave are
 * harmless if the record then fails (the destination runs no guest from a failed stream). */
static int read_ram_to_sink(struct stream_reader *r, const uint8_t h[STREAM_REC_HDR], uint64_t n,
			    uint64_t idx, struct err *err)
{
	char why[160];
	int rc;
	if (n < STREAM_RAM_HDR) /* never read past the record */
		return err_set(err, -EINVAL,
			       "record %" PRIu64 " (RAM): %" PRIu64 " bytes, shorter than its %u-byte header",
			       idx, n, STREAM_RAM_HDR);
	ssize_t k = read_payload(r, 0, STREAM_RAM_HDR);
	if (k >= (ssize_t)STREAM_RAM_HDR) {
		if (stream_check_payload(STREAM_RAM, r->buf, (size_t)n, why, sizeof(why)) < 0)
			return err_set(err, -EINVAL, "record %" PRIu64 " (RAM): %s", idx, why);
		size_t more = stream_ram_head_len(r->buf) - STREAM_RAM_HDR;
		ssize_t m = read_payload(r, STREAM_RAM_HDR, more);
		k = m < 0 ? m : k + m - (ssize_t)more;
	}
	if (k == -ENOMEM)
		return err_set(err, -ENOMEM, "no memory for record %" PRIu64 " (RAM)", idx);
	if (k < 0)
		return err_set(err, (int)k, "reading record %" PRIu64 " (RAM): %s", idx, strerror((int)-k));
	if (k < (ssize_t)STREAM_RAM_HDR)
		return err_set(err, -EINVAL, "the stream ended inside a RAM record (record %" PRIu64 ")",
			       idx);
	struct stream_ram *ram = &r->ram;
	if ((rc = stream_parse_ram(r->buf, (size_t)n, ram, err)) < 0)
		return rc;
	size_t head = stream_ram_head_len(r->buf);
	uint64_t bytes = (uint64_t)ram->npages * STREAM_PAGE;
	uint8_t *dst = r->sink(r->sink_opaque, ram->gpa, bytes);
	if (!dst)
		return err_set(err, -EINVAL,
			       "record %" PRIu64 " (RAM): pages 0x%" PRIx64 "-0x%" PRIx64
			       " lie outside this VM's memory",
			       idx, ram->gpa, ram->gpa + bytes - 1);
	uint8_t c[STREAM_CHECK];
	if (ram->flags & STREAM_RAM_ZERO)
		pages_clear(dst, ram->npages);
	else if ((rc = read_exact(r, dst, bytes, idx, "RAM", err)))
		return rc;
	if ((rc = read_exact(r, c, sizeof(c), idx, "RAM", err)))
		return rc;
	uint64_t want = get_le(c, 8), got = stream_check(h, r->buf, head);
	if (want != got)
		return check_fails(err, idx, "RAM", want, got);
	ram->data = (ram->flags & STREAM_RAM_ZERO) ? NULL : dst;
	if (ram->data)
		find_torn(r, dst, ram->checks, ram->npages);
	return 0;
}

static int read_record(struct stream_reader *r, uint32_t *type, const uint8_t **payload, size_t *len,
		       struct err *err)
{
	uint64_t idx = r->index;
	if (r->ended)
		return err_set(err, -EINVAL, "reading past the END record");
	uint8_t h[STREAM_REC_HDR];
	ssize_t k = read_full(r->fd, r->cancel_fd, h, sizeof(h));
	if (k < 0)
		return err_set(err, (int)k, "reading record %" PRIu64 ": %s", idx, strerror((int)-k));
	if (k == 0)
		return err_set(err, -EINVAL,
			       "the stream ended after %" PRIu64 " records, without an END record", idx);
	uint32_t t = (uint32_t)get_le(h, 4), flags = (uint32_t)get_le(h + 4, 4);
	const char *name = stream_type_name(t);
	if ((size_t)k < sizeof(h))
		return err_set(err, -EINVAL, "the stream ended inside the header of record %" PRIu64, idx);
	if (!stream_type_known(t))
		return err_set(err, -EINVAL, "record %" PRIu64 " has unknown type %" PRIu32, idx, t);
	if (flags)
		return err_set(err, -EINVAL,
			       "record %" PRIu64 " (%s) has flags 0x%" PRIx32 " (version 2 has none)", idx,
			       name, flags);
	uint64_t n = get_le(h + 8, 8);
	if (n > stream_max_len(t))
		return err_set(err, -EINVAL,
			       "record %" PRIu64 " (%s) is %" PRIu64 " bytes, over the limit of %zu", idx,
			       name, n, stream_max_len(t));
	r->data_ok = true;
	memset(r->torn, 0, sizeof(r->torn));
	int rc;
	if (t == STREAM_RAM && r->sink) {
		if ((rc = read_ram_to_sink(r, h, n, idx, err)))
			return rc;
		r->index++;
		*type = t;
		*payload = r->buf;
		*len = stream_ram_head_len(r->buf);
		return 0;
	}
	k = read_payload(r, 0, (size_t)n + STREAM_CHECK);
	if (k == -ENOMEM)
		return err_set(err, -ENOMEM, "no memory for record %" PRIu64 " (%s)", idx, name);
	if (k < 0)
		return err_set(err, (int)k, "reading record %" PRIu64 " (%s): %s", idx, name,
			       strerror((int)-k));
	if ((size_t)k < n + STREAM_CHECK)
		return err_set(err, -EINVAL, "the stream ended inside a %s record (record %" PRIu64 ")", name,
			       idx);
	char why[160];
	/* RAM: the check covers the head (header and page checks), as far as the record goes. */
	size_t covered = (size_t)n;
	if (t == STREAM_RAM && n >= STREAM_RAM_HDR && stream_ram_head_len(r->buf) < n)
		covered = stream_ram_head_len(r->buf);
	uint64_t want = get_le(r->buf + n, 8), got = stream_check(h, r->buf, covered);
	if (want != got)
		return check_fails(err, idx, name, want, got);
	if (stream_check_payload(t, r->buf, (size_t)n, why, sizeof(why)) < 0)
		return err_set(err, -EINVAL, "record %" PRIu64 " (%s): %s", idx, name, why);
	struct stream_ram ram;
	if (t == STREAM_RAM && stream_parse_ram(r->buf, (size_t)n, &ram, err) == 0 && ram.data)
		find_torn(r, ram.data, ram.checks, ram.npages);
	r->index++;
	if (t == STREAM_END) {
		r->ended = true;
		if ((rc = check_eof(r, idx, err)) < 0)
			return rc;
	}
	*type = t;
	*payload = r->buf;
	*len = (size_t)n;
	return 0;
}

/* After an error the reader's place in the stream is lost: every later call fails. */
int stream_read_record(struct stream_reader *r, uint32_t *type, const uint8_t **payload, size_t *len,
		       struct err *err)
{
	if (r->error)
		return err_set(err, r->error, "the state stream failed earlier (record %" PRIu64 ")",
			       r->index);
	int rc = read_record(r, type, payload, len, err);
	if (rc < 0)
		r->error = rc;
	return rc;
}
