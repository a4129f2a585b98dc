/* SPDX-License-Identifier: MIT */
/*
 * The source side of a live migration: pre-copy passes over RAM while the
 * guest runs, then a short pause for the rest and the machine state, then
 * the destination's answer (docs/MIGRATION.md). The library supplies what
 * touches its own state (pausing, the disks) through struct precopy_host.
 */
#ifndef KVMINI_VMM_MIGRATION_PRECOPY_H
#define KVMINI_VMM_MIGRATION_PRECOPY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "kvmini.h"
#include "vmm/migration/machine_state.h"

struct precopy_host {
	struct vm *vm; /* the machine, held for the whole migration */
	struct machine_desc desc;
	int (*pause)(void *opaque);
	void (*resume)(void *opaque);
	/* Paused: flush the disks and stop writing them (qcow2 metadata out: disk_deactivate). */
	int (*flush_disks)(void *opaque, struct err *e);
	void (*unlock_disks)(void *opaque);
	/* After a failure once flush_disks ran: lock (if let go) and activate the disks again. */
	int (*lock_disks)(void *opaque, struct err *e);
	void *opaque;
	const int *cancel; /* atomic: non-zero cancels */
};

/* The destination's one-byte answer once it has the whole stream and its disks. */
#define MIGRATE_ACK 'K'
/* The destination gives up on a source that sent nothing for this long. */
#define MIGRATE_IDLE_TIMEOUT_S 60

/*
 * Migrates over the connected socket fd. On success the machine is paused
 * and the destination runs the guest; on any failure the source runs on as
 * before (resumed, disks locked again). 0 or -errno with one line in e.
 */
int precopy_run(const struct precopy_host *h, int fd, const struct kvmini_migrate_params *p,
		void (*progress)(void *opaque, const struct kvmini_migrate_progress *pr), void *popaque,
		struct kvmini_migrate_result *res, struct err *e);

#endif
