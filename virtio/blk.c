/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk requests: a 16-byte header (type, reserved, sector) in the
 * readable part, data, and a status byte at the very end of the writable
 * part. Each queue has its own thread that sleeps on the queue's kick
 * eventfd and takes requests off the ring. When it finds just one, it serves
 * it itself (no hand-off: the lowest latency at queue depth 1); when more
 * are waiting, it hands them to the disk's worker threads, up to
 * MAX_INFLIGHT per queue, so that deep queues reach the disk in parallel.
 * Stopping a queue (reset, teardown) joins its thread and then waits until
 * nothing it handed out is in flight.
 */
#include "virtio/blk.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/le.h"
#include "common/seccomp.h"
#include "virtio/iov.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2
#define VIRTIO_BLK_WZ_F_UNMAP	  1

#define QUEUE_SIZE	  256
#define MAX_RANGES	  32	   /* discard / write-zeroes segments per request */
#define MAX_RANGE_SECTORS 0x3fffff /* per segment: just under 2 GiB */
#define CONFIG_SIZE	  60	   /* struct virtio_blk_config up to write_zeroes_may_unmap + padding */
#define MAX_QUEUES	  64
#define MAX_INFLIGHT	  32 /* requests per queue out with the workers */
#define NUM_WORKERS	  8  /* per disk */
#define HDR_SIZE	  16
#define TYPE_NONE	  UINT32_MAX /* a request too short for a header */

struct blk_queue;

struct blk_req {
	struct blk_queue *bq;
	struct blk_req *next; /* on the queue's free list or the workers' job list */
	struct virtq_chain c;
	struct iovec iov[VIRTIO_BLK_SEG_MAX + 2];
	uint64_t start_ns; /* when it came off the avail ring (CLOCK_MONOTONIC) */
	uint32_t type;	   /* for the counters: VIRTIO_BLK_T_*, or TYPE_NONE */
	uint64_t bytes;	   /* for the counters: data it moves when it succeeds */
};

struct blk_queue {
	struct virtio_blk *b;
	unsigned index;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock; /* the virtq (pops and pushes), free, inflight, starved */
	pthread_cond_t idle;  /* inflight dropped to 0 */
	struct blk_req *free;
	unsigned inflight;
	bool starved;	    /* the queue thread stopped taking requests for want of a free blk_req */
	uint64_t own_kicks; /* atomic: our own kick eventfd writes not yet read (not the driver's) */
	struct blk_req reqs[MAX_INFLIGHT];
};

struct virtio_blk {
	struct virtio_pci *t;
	struct quiesce *gate; /* the VM's pause gate */
	struct disk *disk;
	char name[64];
	unsigned nqueues;
	int stop_fd; /* readable: every queue thread returns */
	struct blk_queue *q;
	struct virtio_blk_stats *st; /* the caller's, kept across reboots */
	/* The workers and their job list. */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cv;
	struct blk_req *jobs, **jobs_tail;
	bool pool_exit;
	unsigned nworkers;
	pthread_t workers[NUM_WORKERS];
	uint8_t config[CONFIG_SIZE];
};

/* Whether [sector, sector + bytes/512) lies on the disk. */
static bool in_range(const struct disk *d, uint64_t sector, uint64_t bytes, uint64_t *off)
{
	if (sector > d->size / DISK_SECTOR)
		return false;
	*off = sector * DISK_SECTOR;
	return bytes <= d->size - *off;
}

/* Discard and write-zeroes: a list of {le64 sector, le32 num_sectors, le32 flags} after the header. */
static uint8_t do_ranges(struct virtio_blk *b, uint32_t type, const struct iovec *out, unsigned nout,
			 uint64_t out_len, uint64_t *bytes)
{
	uint64_t body = out_len - HDR_SIZE;
	if (body == 0 || body % 16 || body / 16 > MAX_RANGES)
		return VIRTIO_BLK_S_UNSUPP;
	for (uint64_t i = 0; i < body / 16; i++) {
		uint8_t seg[16];
		iov_to_buf(out, nout, HDR_SIZE + i * 16, seg, sizeof(seg));
		uint64_t sector = get_le(seg, 8), off;
		uint32_t n = (uint32_t)get_le(seg + 8, 4), flags = (uint32_t)get_le(seg + 12, 4);
		if (n > MAX_RANGE_SECTORS || !in_range(b->disk, sector, (uint64_t)n * DISK_SECTOR, &off))
			return VIRTIO_BLK_S_IOERR;
		if (type == VIRTIO_BLK_T_DISCARD ? flags != 0 : (flags & ~(uint32_t)VIRTIO_BLK_WZ_F_UNMAP))
			return VIRTIO_BLK_S_UNSUPP;
		int r = type == VIRTIO_BLK_T_DISCARD
			    ? b->disk->ops->discard(b->disk, off, (uint64_t)n * DISK_SECTOR)
			    : b->disk->ops->write_zeroes(b->disk, off, (uint64_t)n * DISK_SECTOR,
							 flags & VIRTIO_BLK_WZ_F_UNMAP);
		if (r == -EOPNOTSUPP && type == VIRTIO_BLK_T_DISCARD)
			return VIRTIO_BLK_S_UNSUPP;
		if (r)
			return VIRTIO_BLK_S_IOERR;
		*bytes += (uint64_t)n * DISK_SECTOR;
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * Serves one request; returns the status and sets *data_in to the bytes written before the status,
 * *type to the request's type and *bytes to the data it moved (for the counters).
 */
static uint8_t serve(struct virtio_blk *b, const struct iovec *iov, const struct virtq_chain *c,
		     uint32_t *data_in, uint32_t *type_out, uint64_t *bytes)
{
	const struct iovec *out = iov, *in = iov + c->nout;
	uint8_t hdr[HDR_SIZE];
	struct iovec data[VIRTIO_BLK_SEG_MAX];
	struct disk *d = b->disk;
	uint64_t off;
	int n, r;

	*data_in = 0;
	*type_out = TYPE_NONE;
	*bytes = 0;
	if (c->out_len < HDR_SIZE)
		return VIRTIO_BLK_S_IOERR;
	iov_to_buf(out, c->nout, 0, hdr, HDR_SIZE);
	uint32_t type = (uint32_t)get_le(hdr, 4);
	*type_out = type;
	uint64_t sector = get_le(hdr + 8, 8);
	uint64_t in_data = c->in_len - 1; /* the status byte is the last writable byte */

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (in_data % DISK_SECTOR || !in_range(d, sector, in_data, &off))
			return VIRTIO_BLK_S_IOERR;
		n = iov_slice(in, c->nin, 0, in_data, data, VIRTIO_BLK_SEG_MAX);
		if (n < 0)
			return VIRTIO_BLK_S_IOERR;
		r = n ? d->ops->preadv(d, data, n, off) : 0;
		if (r)
			return VIRTIO_BLK_S_IOERR;
		*data_in = (uint32_t)in_data;
		*bytes = in_data;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT: {
		uint64_t len = c->out_len - HDR_SIZE;
		if (d->readonly || len % DISK_SECTOR || !in_range(d, sector, len, &off))
			return VIRTIO_BLK_S_IOERR;
		n = iov_slice(out, c->nout, HDR_SIZE, len, data, VIRTIO_BLK_SEG_MAX);
		if (n < 0)
			return VIRTIO_BLK_S_IOERR;
		*bytes = len;
		return (n ? d->ops->pwritev(d, data, n, off) : 0) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (d->readonly)
			return VIRTIO_BLK_S_OK; /* nothing of ours to make durable */
		return d->ops->flush(d) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		/* Up to 20 bytes, NUL-padded when shorter (5.2.6.1). */
		char id[DISK_SERIAL_MAX] = {0};
		memcpy(id, d->serial, strnlen(d->serial, DISK_SERIAL_MAX));
		*data_in =
		    (uint32_t)iov_from_buf(in, c->nin, 0, id, in_data < sizeof(id) ? in_data : sizeof(id));
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (d->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (type == VIRTIO_BLK_T_DISCARD && !d->can_discard)
			return VIRTIO_BLK_S_UNSUPP;
		return do_ranges(b, type, out, c->nout, c->out_len, bytes);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* ---- counters ---- */

#define COUNT(st, field, v) __atomic_fetch_add(&(st)->field, (v), __ATOMIC_RELAXED)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The histogram bucket of a service time: the first i with ns < 2^i us, capped at the last. */
static unsigned lat_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned i = us ? 64 - (unsigned)__builtin_clzll(us) : 0;
	return i < VIRTIO_BLK_LAT_BUCKETS ? i : VIRTIO_BLK_LAT_BUCKETS - 1;
}

/* Counts a request done with status, served in lat_ns. */
static void count_request(struct virtio_blk_stats *st, const struct blk_req *req, uint8_t status,
			  uint64_t lat_ns)
{
	uint64_t bytes = status == VIRTIO_BLK_S_OK ? req->bytes : 0;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		COUNT(st, read_reqs, 1);
		COUNT(st, read_bytes, bytes);
		break;
	case VIRTIO_BLK_T_OUT:
		COUNT(st, write_reqs, 1);
		COUNT(st, write_bytes, bytes);
		break;
	case VIRTIO_BLK_T_FLUSH:
		COUNT(st, flush_reqs, 1);
		break;
	case VIRTIO_BLK_T_DISCARD:
		COUNT(st, discard_reqs, 1);
		COUNT(st, discard_bytes, bytes);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		COUNT(st, write_zeroes_reqs, 1);
		COUNT(st, write_zeroes_bytes, bytes);
		break;
	case VIRTIO_BLK_T_GET_ID:
		COUNT(st, get_id_reqs, 1);
		break;
	default:
		COUNT(st, other_reqs, 1);
		break;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		COUNT(st, ioerr, 1);
	else if (status != VIRTIO_BLK_S_OK)
		COUNT(st, unsupp, 1);
	COUNT(st, lat_sum_ns, lat_ns);
	COUNT(st, lat_hist[lat_bucket(lat_ns)], 1);
}

/* Wakes queue bq's thread through its kick eventfd; counted apart from the driver's kicks. */
static void own_kick(struct blk_queue *bq)
{
	uint64_t one = 1;
	__atomic_fetch_add(&bq->own_kicks, 1, __ATOMIC_RELAXED);
	if (write(virtio_pci_kick_fd(bq->b->t, bq->index), &one, sizeof(one)) < 0) {
		__atomic_fetch_sub(&bq->own_kicks, 1, __ATOMIC_RELAXED);
		perror("kvmini: virtio-blk kick");
	}
}

/* Writes the status, gives the chain back and interrupts the driver if it wants; any thread. */
static void complete(struct blk_req *req, uint8_t status, uint32_t data_in)
{
	struct blk_queue *bq = req->bq;
	struct virtio_blk *b = bq->b;

	iov_from_buf(req->iov + req->c.nout, req->c.nin, req->c.in_len - 1, &status, 1);
	/* Counted before the push, so that a driver that sees the completion sees it counted. */
	count_request(b->st, req, status, now_ns() - req->start_ns);
	pthread_mutex_lock(&bq->lock);
	struct virtq *q = virtio_pci_queue(b->t, bq->index);
	virtq_push_iov(q, req->c.head, req->iov + req->c.nout, req->c.nin, data_in + 1);
	if (virtio_pci_notify(b->t, bq->index))
		COUNT(b->st, interrupts, 1);
	req->next = bq->free;
	bq->free = req;
	if (--bq->inflight == 0)
		pthread_cond_broadcast(&bq->idle);
	if (bq->starved) {
		/*
		 * The queue thread left requests on the ring when it ran out of blk_reqs.
		 * Kick it before unlocking: once inflight is 0 and the lock is free,
		 * blk_stop() may return and teardown free the transport and its kick fds.
		 */
		bq->starved = false;
		own_kick(bq);
	}
	pthread_mutex_unlock(&bq->lock);
}

static void serve_and_complete(struct blk_req *req)
{
	uint32_t data_in;
	uint8_t status = serve(req->bq->b, req->iov, &req->c, &data_in, &req->type, &req->bytes);
	complete(req, status, data_in);
}

/* Called within the queue thread's pass: the job holds the pause gate until it completes. */
static void pool_submit(struct virtio_blk *b, struct blk_req *req)
{
	quiesce_hold(b->gate);
	pthread_mutex_lock(&b->pool_lock);
	req->next = NULL;
	*b->jobs_tail = req;
	b->jobs_tail = &req->next;
	pthread_cond_signal(&b->pool_cv);
	pthread_mutex_unlock(&b->pool_lock);
}

static void *worker_thread(void *arg)
{
	struct virtio_blk *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->pool_lock);
		while (!b->jobs && !b->pool_exit)
			pthread_cond_wait(&b->pool_cv, &b->pool_lock);
		struct blk_req *req = b->jobs;
		if (req) {
			b->jobs = req->next;
			if (!b->jobs)
				b->jobs_tail = &b->jobs;
		}
		pthread_mutex_unlock(&b->pool_lock);
		if (!req)
			return NULL;
		serve_and_complete(req);
		quiesce_exit(b->gate);
	}
}

/*
 * Takes what the avail ring holds; false when the driver broke it (the
 * device then needs a reset). Returns early when every blk_req is out: the
 * first completion kicks the queue again.
 */
static bool drain(struct blk_queue *bq)
{
	struct virtio_blk *b = bq->b;
	const char *broken = NULL;
	int r = 0;

	pthread_mutex_lock(&bq->lock);
	struct virtq *q = virtio_pci_queue(b->t, bq->index);
	while (q && !broken) {
		virtq_set_notify(q, false);
		for (;;) {
			struct blk_req *req = bq->free;
			if (!req) {
				bq->starved = true;
				pthread_mutex_unlock(&bq->lock);
				return true;
			}
			r = virtq_pop(q, req->iov, VIRTIO_BLK_SEG_MAX + 2, &req->c);
			if (r != 1)
				break;
			if (req->c.nin == 0 || req->c.in_len == 0) {
				broken = "a request without a status byte";
				break;
			}
			bq->free = req->next;
			bq->inflight++;
			bool more = virtq_has_work(q);
			pthread_mutex_unlock(&bq->lock);
			req->start_ns = now_ns();
			if (more)
				pool_submit(b, req);
			else
				serve_and_complete(req);
			pthread_mutex_lock(&bq->lock);
		}
		if (r < 0)
			/* -E2BIG too: we told the driver SEG_MAX, so a longer chain is its fault. */
			broken = r == -E2BIG ? "a request with more segments than seg_max"
					     : "a malformed descriptor chain";
		else if (!broken) {
			virtq_set_notify(q, true);
			if (!virtq_has_work(q))
				break;
		}
	}
	pthread_mutex_unlock(&bq->lock);
	if (broken)
		virtio_pci_needs_reset(b->t, broken);
	return !broken;
}

static void *queue_thread(void *arg)
{
	struct blk_queue *bq = arg;
	struct virtio_blk *b = bq->b;
	struct pollfd p[2] = {{.fd = b->stop_fd, .events = POLLIN},
			      {.fd = virtio_pci_kick_fd(b->t, bq->index), .events = POLLIN}};
	bool broken = false;

	for (;;) {
		if (poll(p, broken ? 1 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			uint64_t v = 0;
			if (read(p[1].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			virtio_count_kicks(&b->st->notifications, v, &bq->own_kicks);
			/* While the VM is paused the kick waits here, and the ring with it. */
			quiesce_enter(b->gate);
			if (!drain(bq))
				broken = true; /* wait for the reset */
			quiesce_exit(b->gate);
		}
	}
	return NULL;
}

static void blk_stop(void *opaque)
{
	struct virtio_blk *b = opaque;
	uint64_t one = 1;
	if (write(b->stop_fd, &one, sizeof(one)) < 0)
		perror("kvmini: virtio-blk stop");
	for (unsigned i = 0; i < b->nqueues; i++) {
		struct blk_queue *bq = &b->q[i];
		if (bq->running)
			pthread_join(bq->thread, NULL);
		bq->running = false;
		/* What the workers still hold completes before the transport resets the rings. */
		pthread_mutex_lock(&bq->lock);
		while (bq->inflight)
			pthread_cond_wait(&bq->idle, &bq->lock);
		bq->starved = false;
		pthread_mutex_unlock(&bq->lock);
	}
	uint64_t v;
	while (read(b->stop_fd, &v, sizeof(v)) == sizeof(v))
		;
}

static int blk_start(void *opaque)
{
	struct virtio_blk *b = opaque;
	/*
	 * The workers start with the first DRIVER_OK (from a vCPU thread, or from the thread starting
	 * a restored machine), never before the sandbox; they then serve every later start.
	 */
	for (; b->nworkers < NUM_WORKERS; b->nworkers++) {
		int r = sandbox_thread_create(&b->workers[b->nworkers], SB_BLK_WORKER, worker_thread, b);
		if (r) {
			fprintf(stderr, "kvmini: %s: cannot start an I/O thread: %s\n", b->name, strerror(r));
			return -r;
		}
	}
	for (unsigned i = 0; i < b->nqueues; i++) {
		/* The reset before this start emptied the kick eventfd, our own kicks with it. */
		__atomic_store_n(&b->q[i].own_kicks, 0, __ATOMIC_RELAXED);
		int r = sandbox_thread_create(&b->q[i].thread, SB_BLK_QUEUE, queue_thread, &b->q[i]);
		if (r) {
			fprintf(stderr, "kvmini: %s: cannot start an I/O thread: %s\n", b->name, strerror(r));
			blk_stop(b);
			return -r;
		}
		b->q[i].running = true;
		/* Requests the driver queued before DRIVER_OK, or whose kick we consumed at reset. */
		own_kick(&b->q[i]);
	}
	return 0;
}

static void blk_config_read(void *opaque, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = opaque;
	memcpy(data, b->config + off, len);
}

/*
 * Saved state: none beyond the transport's. The configuration is fixed by the
 * disk and options (the destination opens the same ones), and once the VM is
 * paused every request taken off a ring has completed and is on the used ring
 * (blk_req's are free), so the queues' indices are the whole story: no
 * save/load/held ops.
 */
static const struct virtio_device_ops blk_ops = {
    .config_read = blk_config_read,
    .start = blk_start,
    .stop = blk_stop,
};

static void fill_config(struct virtio_blk *b)
{
	const struct disk *d = b->disk;
	uint8_t *c = b->config;
	put_le(c + 0, d->size / DISK_SECTOR, 8);	/* capacity */
	put_le(c + 12, VIRTIO_BLK_SEG_MAX, 4);		/* seg_max */
	put_le(c + 20, d->block_size, 4);		/* blk_size */
	put_le(c + 34, b->nqueues, 2);			/* num_queues */
	put_le(c + 36, MAX_RANGE_SECTORS, 4);		/* max_discard_sectors */
	put_le(c + 40, MAX_RANGES, 4);			/* max_discard_seg */
	put_le(c + 44, d->block_size / DISK_SECTOR, 4); /* discard_sector_alignment */
	put_le(c + 48, MAX_RANGE_SECTORS, 4);		/* max_write_zeroes_sectors */
	put_le(c + 52, MAX_RANGES, 4);			/* max_write_zeroes_seg */
	c[56] = d->can_discard;				/* write_zeroes_may_unmap */
}

/* Frees what virtio_blk_create() set up (the transport must be gone). */
static void blk_free(struct virtio_blk *b)
{
	pthread_mutex_lock(&b->pool_lock);
	b->pool_exit = true;
	pthread_cond_broadcast(&b->pool_cv);
	pthread_mutex_unlock(&b->pool_lock);
	for (unsigned i = 0; i < b->nworkers; i++)
		pthread_join(b->workers[i], NULL);
	for (unsigned i = 0; b->q && i < b->nqueues; i++) {
		pthread_mutex_destroy(&b->q[i].lock);
		pthread_cond_destroy(&b->q[i].idle);
	}
	free(b->q);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	pthread_mutex_destroy(&b->pool_lock);
	pthread_cond_destroy(&b->pool_cv);
	free(b);
}

struct virtio_blk *virtio_blk_create(const struct virtio_pci_env *env, unsigned devfn, struct disk *disk,
				     unsigned nqueues, struct virtio_blk_stats *stats, const char *name,
				     struct err *e)
{
	if (nqueues < 1 || nqueues > MAX_QUEUES) {
		err_set(e, -EINVAL, "%s: %u queues (1..%d)", name, nqueues, MAX_QUEUES);
		return NULL;
	}
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	b->disk = disk;
	b->gate = env->gate;
	b->st = stats;
	b->nqueues = nqueues;
	b->stop_fd = -1;
	snprintf(b->name, sizeof(b->name), "%s", name);
	pthread_mutex_init(&b->pool_lock, NULL);
	pthread_cond_init(&b->pool_cv, NULL);
	b->jobs_tail = &b->jobs;
	if (!(b->q = calloc(nqueues, sizeof(*b->q)))) {
		err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < nqueues; i++) {
		struct blk_queue *bq = &b->q[i];
		bq->b = b;
		bq->index = i;
		pthread_mutex_init(&bq->lock, NULL);
		pthread_cond_init(&bq->idle, NULL);
		for (unsigned j = 0; j < MAX_INFLIGHT; j++) {
			bq->reqs[j].bq = bq;
			bq->reqs[j].next = bq->free;
			bq->free = &bq->reqs[j];
		}
	}
	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->stop_fd < 0) {
		err_set(e, -errno, "%s: eventfd: %s", name, strerror(errno));
		goto fail;
	}
	fill_config(b);

	uint64_t f = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
		     VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	if (nqueues > 1)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);
	if (disk->readonly)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else {
		f |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
		if (disk->can_discard)
			f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	}
	struct virtio_device_desc desc = {
	    .name = b->name,
	    .device_id = VIRTIO_ID_BLOCK,
	    .features = f,
	    .num_queues = nqueues,
	    .max_queue_size = QUEUE_SIZE,
	    .config_size = CONFIG_SIZE,
	    .ops = &blk_ops,
	    .opaque = b,
	};
	b->t = virtio_pci_create(env, devfn, &desc, e);
	if (b->t)
		return b;
fail:
	blk_free(b);
	return NULL;
}

struct virtio_pci *virtio_blk_transport(struct virtio_blk *b)
{
	return b->t;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	virtio_pci_destroy(b->t); /* stops the queues first: no job is left for the workers */
	blk_free(b);
}
