/* SPDX-License-Identifier: MIT */
/*
 * The destination's account of RAM pages whose last record failed its data
 * check. RAM is sent straight from guest memory while the guest runs, so a
 * page a vCPU writes during the send arrives torn and fails its XXH64; that
 * page is also dirty, so the source sends it again in a later pass or in the
 * final one (guest paused). A page still failed at END was damaged on the way.
 */
#ifndef KVMINI_VMM_MIGRATION_RAM_PENDING_H
#define KVMINI_VMM_MIGRATION_RAM_PENDING_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct ram_pending {
	uint64_t *bits;	    /* one per page, allocated at the first failure */
	uint64_t npages;    /* pages from address 0 that the map covers */
	uint64_t count;	    /* bits set */
	uint64_t first_rec; /* the record that failed first (for the message) */
};

/* mem_end: the end of guest memory (every record's pages lie below it). */
void ram_pending_init(struct ram_pending *p, uint64_t mem_end);
/* A RAM record of npages (at most 256) at gpa (page aligned, below mem_end) arrived; torn: bit i
 * set if page i failed its check (NULL: none did). */
int ram_pending_note(struct ram_pending *p, uint64_t gpa, uint32_t npages, const uint64_t *torn,
		     uint64_t record, struct err *e);
/* 0 when no page is left failed, else -EINVAL naming the first. */
int ram_pending_check(const struct ram_pending *p, struct err *e);
void ram_pending_destroy(struct ram_pending *p);

#endif
