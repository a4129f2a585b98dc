/* SPDX-License-Identifier: MIT */
/*
 * A whole machine's saved state on a stream (docs/MIGRATION.md): what it is
 * (CONFIG), its RAM, KVM's VM and vCPU state and every device's, in the
 * order the destination must load them. The machine is paused while saved,
 * and built but not started while loaded.
 */
#ifndef KVMINI_VMM_MIGRATION_MACHINE_STATE_H
#define KVMINI_VMM_MIGRATION_MACHINE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "arch_types.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "vmm/migration/stream.h"

struct vm;

/* What the state is for: a destination must match it. Filled by libkvmini from its config. */
#define MACHINE_MAX_DISKS 16
#define MACHINE_MAX_NICS  8
struct machine_desc {
	uint32_t ncpus;
	uint64_t mem_bytes;
	uint32_t ndisks;
	struct {
		uint64_t size;
		uint8_t readonly;
	} disks[MACHINE_MAX_DISKS];
	uint32_t nnics;
	struct {
		uint8_t mac[6];
		uint32_t queues;
	} nics[MACHINE_MAX_NICS];
	struct arch_cpu_desc cpu; /* the architecture's part (x86: vCPU 0's CPUID), arch_cpu_desc_fill() */
};

/*
 * One device in a machine's state: its name and instance in the stream, its
 * save and load functions on obj (vmm/arch's arch_state_devices() adds the
 * architecture's platform devices).
 */
struct machine_dev {
	const char *name;
	uint32_t instance;
	void (*save)(void *obj, struct sbuf *b);
	int (*load)(void *obj, struct sreader *r, struct err *e);
	void *obj;
	bool loaded;
};

/*
 * The CONFIG record's payload (docs/MIGRATION.md), and the destination's
 * check of one against its own machine: the first difference is the
 * message (the CPU part: arch_cpu_desc_check(), x86: cpuid_compat_check). Pure.
 */
void machine_config_put(const struct machine_desc *m, struct sbuf *b);
int machine_config_check(const struct machine_desc *here, const uint8_t *p, size_t len, struct err *e);
/* Parses a CONFIG payload into out (what the fuzzer and tests use); 0 or -EINVAL. */
int machine_config_parse(const uint8_t *p, size_t len, struct machine_desc *out, struct err *e);

/* Header, CONFIG, RAM, VM, VCPUs, DEVICEs, END. The machine must be paused. */
int machine_state_write(struct vm *vm, const struct machine_desc *desc, struct stream_writer *w,
			struct err *e);
/* The parts, for a live migration: header and CONFIG; RAM (again and again); the rest and END. */
int machine_state_write_begin(const struct machine_desc *desc, struct stream_writer *w, struct err *e);
/*
 * The pages of RAM set in bitmap (bit pfn, by guest-physical frame number;
 * NULL: all), zero pages without data. tick (optional) runs after each
 * record; non-zero cancels (-ECANCELED). The VM may be running: a page
 * written meanwhile is dirty again and goes in a later pass.
 */
int machine_state_write_ram(struct vm *vm, struct stream_writer *w, const uint64_t *bitmap,
			    int (*tick)(void *opaque, const struct stream_writer *w), void *opaque,
			    struct err *e);
/* VM, VCPUs, DEVICEs, END: the machine must be paused. */
int machine_state_write_final(struct vm *vm, struct stream_writer *w, struct err *e);
/*
 * Reads a whole stream into a machine built from desc and not started:
 * checks CONFIG against desc first, then loads RAM, KVM, vCPU and device
 * state in that order, each exactly once, and requires END. On error the
 * machine must be destroyed (it holds part of the state).
 */
int machine_state_read(struct vm *vm, const struct machine_desc *desc, struct stream_reader *r,
		       struct err *e);

#endif
