/* SPDX-License-Identifier: MIT */
/*
 * One boot of one machine: the KVM VM, its memory, vCPUs and platform
 * devices. A guest reboot destroys it and builds a fresh one (see lib.c), so
 * nothing here needs a reset path of its own.
 */
#ifndef KVMINI_VMM_VM_H
#define KVMINI_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "common/err.h"
#include "common/quiesce.h"
#include "devices/bus.h"
#include "devices/platform.h"
#include "virtio/virtio_pci.h"
#include "vmm/arch/arch.h"
#include "vmm/memory.h"

struct vcpu;
struct serial;
struct pci_host;
struct pvpanic;
struct disk;
struct irq_routes;
struct virtio_blk;
struct virtio_net;
struct net_backend;
struct virtio_net_shared;
struct virtio_blk_stats;
struct vcpu_stats;

/* Why the vCPUs should stop: the device requests plus the host's own. */
enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF = 1,
	VM_STOP_RESET = 2,
	VM_STOP_HOST = 3,	/* the host asked (API, signal, quit key) */
	VM_STOP_ERROR = 4,	/* emulation failed; vm->err says why */
	VM_STOP_PANIC = 5,	/* the guest kernel panicked (pvpanic) */
	VM_STOP_GUEST_EXIT = 6, /* the guest wrote the exit-status port; vm->exit_status has the byte */
};

struct vm_params {
	const char *kvm_device;
	const int *kvm_fd; /* an open KVM device to use (dup'ed) instead of opening kvm_device; NULL: open */
	unsigned ncpus;
	uint64_t mem_bytes;
	struct guest_mem_opts mem_opts; /* how RAM is backed (hugepages, merge, shared) */
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd;
	size_t initrd_len;
	const char *cmdline;
	struct vcpu_stats *vcpu_stats; /* [ncpus], kept across reboots; NULL: not counted */
	/* Set once, by the first vCPU to enter KVM_RUN (CLOCK_MONOTONIC ns), if still 0; may be NULL. */
	uint64_t *first_run_ns;
	/* Console: guest output and "receive buffer has room again". */
	void (*console_tx)(void *opaque, const uint8_t *buf, size_t len);
	void (*console_rx_space)(void *opaque);
	void *console_opaque;
	/* Opened disk images, in guest order (vda, vdb, ...); owned by the caller, kept across reboots. */
	struct disk *const *disks;
	struct virtio_blk_stats *blk_stats; /* [ndisks], kept across reboots */
	unsigned ndisks;
	/* Opened NIC backends and their MACs, in guest order (eth0, ...); owned by the caller. */
	struct net_backend *const *nics;
	struct virtio_net_shared *net_shared; /* [nnics], kept across reboots */
	const uint8_t (*macs)[6];
	unsigned nnics;
	/* Called (from any thread) once the first stop reason is recorded. */
	void (*on_stop)(void *opaque);
	void *on_stop_opaque;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	int run_size; /* bytes of each vCPU's kvm_run mapping */
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	unsigned ncpus;
	struct vcpu *vcpus;
	struct vcpu_stats *vcpu_stats; /* [ncpus], the caller's (vm_params); may be NULL */
	uint64_t *first_run_ns;	       /* the caller's (vm_params); may be NULL */
	/* Dirty logging (vmm/migration/dirty.c) on, and with KVM_CLEAR_DIRTY_LOG after each fetch. */
	bool dirty_logging, dirty_manual;

	struct serial *serial; /* the console UART (port I/O on x86, MMIO on arm64) */
	struct pci_host *pci;
	struct pvpanic *pvpanic;
	struct pci_windows *pci_windows;
	struct irq_routes *irq_routes;
	struct ioevent_ops ioevent;
	struct virtio_blk **blks;
	unsigned nblks;
	struct virtio_net **nets;
	unsigned nnets;
	struct arch_vm arch; /* the architecture's part (vmm/arch/<arch>/include/arch_types.h) */

	/*
	 * Pause (vm_pause.c): vCPU threads park at the top of their loop, device
	 * threads wait at the gate, kvmclock is frozen. A stop ends a pause.
	 */
	struct quiesce gate;
	pthread_mutex_t pause_lock; /* guards parked and running; pause_req is written under it */
	pthread_cond_t pause_cond;
	bool pause_req; /* atomic: vCPUs read it on every loop */
	unsigned parked, running;
	struct kvm_clock_data clock; /* saved at pause when clock_saved */
	bool clock_saved;
	/* Auto-converge (vmm/migration/throttle.c): the share of time vCPUs sleep; atomic, 0: none. */
	unsigned throttle_pct;

	pthread_mutex_t lock; /* guards stop_reason, exit_status and err */
	enum vm_stop_reason stop_reason;
	int exit_status; /* VM_STOP_GUEST_EXIT: the byte the guest wrote */
	struct err err;
	void (*on_stop)(void *opaque);
	void *on_stop_opaque;
};

int vm_create(const struct vm_params *p, struct vm **out, struct err *e);
/*
 * (Re-)registers RAM region i of vm->mem as KVM memory slot i (the slot
 * numbering every RAM slot user goes by) with flags (KVM_MEM_LOG_DIRTY_PAGES).
 */
int vm_set_ram_slot(struct vm *vm, unsigned i, uint32_t flags, struct err *e);
/* Starts one thread per vCPU. */
int vm_start(struct vm *vm, struct err *e);
/* Records the first stop reason (later ones are ignored) and kicks every vCPU out of the guest. */
void vm_stop(struct vm *vm, enum vm_stop_reason why);
/* Same, recording msg as the error. */
void vm_fail(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Joins the vCPU threads (after a stop) and frees everything. */
void vm_destroy(struct vm *vm);
/*
 * Pauses the machine: parks every vCPU, waits until no device thread is in a
 * pass over guest memory and keeps them out, and freezes kvmclock. Returns
 * when nothing changes guest memory any more (or the VM stopped meanwhile).
 * Before vm_start(): the vCPUs park before their first instruction.
 */
void vm_pause(struct vm *vm);
/* Undoes vm_pause(): the guest clock goes on from where it stood. */
void vm_resume(struct vm *vm);
/* vCPU threads: park while a pause is requested; returns at resume or stop. */
void vm_park(struct vm *vm);
/* Wakes parked vCPUs and opens the device gate (a stopping VM is never kept paused). */
void vm_pause_end_for_stop(struct vm *vm);
/* The device requests (poweroff, reset, panic, exit status) of this VM, for devices the arch creates. */
struct vm_requester vm_requester(struct vm *vm);
/* Registers a device on a bus, with a message naming it on failure (for the arch's devices). */
int vm_add_pio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
	       struct err *e);
int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque, const char *name,
		struct err *e);

#endif
