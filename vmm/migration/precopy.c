/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy: pass 1 sends all of RAM while the guest runs; each later pass
 * sends the pages dirtied during the previous one (KVM's dirty log and the
 * devices'), until what is left would go within the downtime budget at the
 * bandwidth measured. Then the guest pauses, the last dirty pages, the
 * machine state and END go, the disks are flushed and unlocked, and the
 * destination answers MIGRATE_ACK once it holds everything and has locked
 * the disks. A guest that dirties memory faster than the link carries it
 * fails at the timeout, and says so; with auto_converge its vCPUs are
 * throttled first (throttle.c).
 */
#include "vmm/migration/precopy.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/migration/dirty.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/throttle.h"

#define DEFAULT_DOWNTIME_MS 300
#define DEFAULT_TIMEOUT_S   600
#define ACK_TIMEOUT_S	    60

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

struct pacer {
	const struct precopy_host *h;
	uint64_t bandwidth; /* bytes/s; 0: unlimited */
	uint64_t start_ns, start_bytes;
};

/* After each RAM record: keeps to the bandwidth limit, and notices a cancel. */
static int tick(void *opaque, const struct stream_writer *w)
{
	struct pacer *pc = opaque;
	if (pc->h->cancel && __atomic_load_n(pc->h->cancel, __ATOMIC_RELAXED))
		return 1;
	if (pc->bandwidth) {
		uint64_t sent = w->bytes - pc->start_bytes;
		uint64_t due = pc->start_ns + sent * 1000000000ull / pc->bandwidth, t = now_ns();
		if (due > t) {
			struct timespec d = {(time_t)((due - t) / 1000000000ull),
					     (long)((due - t) % 1000000000ull)};
			nanosleep(&d, NULL);
		}
	}
	return 0;
}

static int wait_ack(int fd, struct err *e)
{
	struct pollfd p = {fd, POLLIN, 0};
	int n = poll(&p, 1, ACK_TIMEOUT_S * 1000);
	if (n == 0)
		return err_set(e, -ETIMEDOUT, "the destination did not confirm within %d s", ACK_TIMEOUT_S);
	char c = 0;
	ssize_t got = n > 0 ? read(fd, &c, 1) : -1;
	if (got == 1 && c == MIGRATE_ACK)
		return 0;
	if (got == 0)
		return err_set(e, -ECONNRESET,
			       "the destination closed the connection without confirming (see its error)");
	return err_set(e, -EPROTO, "the destination did not confirm (answer %d, %s)", (int)c,
		       got < 0 ? strerror(errno) : "unexpected byte");
}

int precopy_run(const struct precopy_host *h, int fd, const struct kvmini_migrate_params *p,
		void (*progress)(void *opaque, const struct kvmini_migrate_progress *pr), void *popaque,
		struct kvmini_migrate_result *res, struct err *e)
{
	uint64_t downtime_ms = p->max_downtime_ms ? p->max_downtime_ms : DEFAULT_DOWNTIME_MS;
	uint64_t timeout_ns = (uint64_t)(p->timeout_s ? p->timeout_s : DEFAULT_TIMEOUT_S) * 1000000000ull;
	struct stream_writer *w = malloc(sizeof(*w));
	uint64_t *bitmap = calloc(vm_dirty_bitmap_words(h->vm), sizeof(uint64_t));
	uint64_t *last = calloc(vm_dirty_bitmap_words(h->vm), sizeof(uint64_t));
	int r = 0;
	bool logging = false, paused = false, unlocked = false, flushed = false;
	struct throttle th = {0};
	unsigned high = 0; /* passes running in which the guest dirtied more than half what was sent */
	if (!w || !bitmap || !last) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	stream_writer_init(w, fd);
	struct pacer pc = {.h = h, .bandwidth = p->bandwidth};
	uint64_t t0 = now_ns();
	if ((r = vm_dirty_log_start(h->vm, e)))
		goto out;
	logging = true;
	if ((r = machine_state_write_begin(&h->desc, w, e)))
		goto out;
	struct kvmini_migrate_progress pr = {0};
	const uint64_t *pass_bitmap = NULL; /* pass 1: everything */
	for (unsigned pass = 1;; pass++) {
		uint64_t ps = now_ns(), pb = w->bytes;
		pc.start_ns = ps;
		pc.start_bytes = pb;
		if ((r = machine_state_write_ram(h->vm, w, pass_bitmap, tick, &pc, e)) ||
		    (r = stream_flush(w, e)))
			goto out;
		uint64_t dt = now_ns() - ps, sent = w->bytes - pb;
		uint64_t ndirty;
		if ((r = vm_dirty_log_fetch(h->vm, bitmap, &ndirty, e)))
			goto out;
		pass_bitmap = bitmap;
		uint64_t bw = dt ? sent * 1000000000ull / dt : 0;
		pr = (struct kvmini_migrate_progress){
		    .pass = pass,
		    .bytes_sent = w->bytes,
		    .remaining_bytes = ndirty * 4096,
		    .dirty_rate = dt ? ndirty * 4096 * 1000000000ull / dt : 0,
		    .bandwidth = bw,
		    .expected_downtime_ms = bw ? ndirty * 4096 * 1000 / bw : 0,
		    .elapsed_ms = (now_ns() - t0) / 1000000,
		};
		bool converged = pr.expected_downtime_ms <= downtime_ms || ndirty == 0;
		/* QEMU's trigger: more dirtied than half what the pass sent, two passes running. */
		high = !converged && ndirty * 4096 * 2 > sent ? high + 1 : 0;
		if (p->auto_converge && high >= 2 && th.pct < THROTTLE_MAX_PCT) {
			if ((r = throttle_set(&th, h->vm, throttle_next_pct(th.pct), e)))
				goto out;
			high = 1; /* from now on, each such pass throttles harder */
		}
		pr.throttle_pct = th.pct;
		if (progress)
			progress(popaque, &pr);
		if (converged)
			break;
		if (now_ns() - t0 > timeout_ns) {
			char how[64] = "";
			if (th.pct)
				snprintf(how, sizeof(how),
					 ", though auto-converge throttled the vCPUs to %u %%", th.pct);
			r = err_set(e, -ETIMEDOUT,
				    "pre-copy did not converge within %llu s%s: the guest dirties %llu MB/s, "
				    "the link carries %llu MB/s (raise --max-downtime or --bandwidth%s)",
				    (unsigned long long)(timeout_ns / 1000000000ull), how,
				    (unsigned long long)(pr.dirty_rate >> 20), (unsigned long long)(bw >> 20),
				    th.pct ? "" : ", or use --auto-converge");
			goto out;
		}
	}
	/* Stop and copy the rest. */
	uint64_t tp = now_ns();
	if ((r = h->pause(h->opaque))) {
		err_set(e, r, "cannot pause the VM");
		goto out;
	}
	paused = true;
	/* What the last pass left dirty (still in bitmap, not sent), and what was dirtied since. */
	uint64_t ndirty;
	size_t words = vm_dirty_bitmap_words(h->vm);
	pc.bandwidth = 0; /* the guest is stopped: no more pacing */
	if ((r = vm_dirty_log_fetch(h->vm, last, &ndirty, e)))
		goto out;
	for (size_t i = 0; i < words; i++)
		bitmap[i] |= last[i];
	if ((r = machine_state_write_ram(h->vm, w, bitmap, tick, &pc, e)))
		goto out;
	flushed = true; /* from here on, a failure gives the disks back to the source (lock_disks) */
	if ((r = h->flush_disks(h->opaque, e)) || (r = machine_state_write_final(h->vm, w, e)))
		goto out;
	/* The destination takes the disks' locks before it answers. */
	h->unlock_disks(h->opaque);
	unlocked = true;
	if ((r = wait_ack(fd, e)))
		goto out;
	uint64_t t1 = now_ns();
	*res = (struct kvmini_migrate_result){
	    .total_ms = (t1 - t0) / 1000000,
	    .downtime_ms = (t1 - tp) / 1000000,
	    .bytes_sent = w->bytes,
	    .passes = pr.pass + 1,
	    .throttle_pct = th.pct,
	};
	if (progress) {
		pr.final = true;
		pr.pass++;
		pr.bytes_sent = w->bytes;
		pr.remaining_bytes = 0;
		pr.elapsed_ms = res->total_ms;
		progress(popaque, &pr);
	}
out:
	throttle_stop(&th); /* before a resume: the source runs on at full speed */
	if (logging)
		vm_dirty_log_stop(h->vm);
	if (r) {
		struct err le = {{0}};
		if (flushed && h->lock_disks(h->opaque, &le) && unlocked) {
			/* The destination may run the guest on these disks: two must never run. */
			struct err both = {{0}};
			err_set(&both, r,
				"%s; the disks are locked by someone else now (%s): this VM stays paused",
				err_msg(e), err_msg(&le));
			*e = both;
			paused = false;
		}
		if (paused)
			h->resume(h->opaque);
	}
	free(bitmap);
	free(last);
	free(w);
	return r;
}
