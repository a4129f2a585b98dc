/* SPDX-License-Identifier: MIT */
/*
 * vCPU threads: each runs KVM_RUN and dispatches port I/O and MMIO exits to
 * the buses. A stop sets immediate_exit and sends the kick signal, so a vCPU
 * leaves the guest promptly whether or not it is inside KVM_RUN.
 */
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/seccomp.h"
#include "vmm/arch/arch.h"
#include "vmm/kvm.h"
#include "vmm/migration/throttle.h"
#include "vmm/vm.h"

/* The kick signal; its handler does nothing: its only job is to interrupt KVM_RUN with EINTR. */
#define VCPU_KICK_SIGNAL (SIGRTMIN)

static void kick_handler(int sig)
{
	(void)sig;
}

/* Process-wide, installed once: no SA_RESTART, so KVM_RUN returns EINTR. */
static void install_kick_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

int vcpu_init(struct vcpu *c, struct vm *vm, unsigned index, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->index = index;
	c->fd = -1;
	int fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (fd < 0)
		return err_set(e, -errno, "cannot create vCPU %u: %s", index, strerror(errno));
	c->fd = fd;
	void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED)
		return err_set(e, -errno, "cannot map vCPU %u's run area: %s", index, strerror(errno));
	c->run = run;
	return arch_vcpu_init(c, e);
}

static void handle_mmio(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	uint32_t len = run->mmio.len <= 8 ? run->mmio.len : 8;
	bus_access(&c->vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

static enum vcpu_exit_kind exit_kind(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO:
		return VCPU_EXIT_IO;
	case KVM_EXIT_MMIO:
		return VCPU_EXIT_MMIO;
	case KVM_EXIT_INTR:
		return VCPU_EXIT_INTR;
	case KVM_EXIT_HLT:
		return VCPU_EXIT_HLT;
	case KVM_EXIT_SHUTDOWN:
		return VCPU_EXIT_SHUTDOWN;
	case KVM_EXIT_SYSTEM_EVENT:
		return VCPU_EXIT_SYSTEM_EVENT;
	case KVM_EXIT_INTERNAL_ERROR:
		return VCPU_EXIT_INTERNAL_ERROR;
	case KVM_EXIT_FAIL_ENTRY:
		return VCPU_EXIT_FAIL_ENTRY;
	default:
		return VCPU_EXIT_OTHER;
	}
}

/* The set-up time kvmini reports ends at the first KVM_RUN of the first machine; one load after. */
static void note_first_run(struct vm *vm)
{
	if (!vm->first_run_ns || __atomic_load_n(vm->first_run_ns, __ATOMIC_RELAXED))
		return;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t zero = 0, ns = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
	__atomic_compare_exchange_n(vm->first_run_ns, &zero, ns, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Counts one return from KVM_RUN (the vCPU thread; readers load the counters from any thread). */
static void count_exit(struct vcpu *c, enum vcpu_exit_kind k)
{
	if (c->vm->vcpu_stats)
		__atomic_fetch_add(&c->vm->vcpu_stats[c->index].exits[k], 1, __ATOMIC_RELAXED);
}

static void fail_with_regs(struct vcpu *c, const char *what)
{
	char regs[96];
	arch_vcpu_regs_note(c, regs, sizeof(regs));
	vm_fail(c->vm, "vCPU %u: %s%s", c->index, what, regs);
}

/* Serves one return from KVM_RUN (counted in the stats). */
static void handle_exit(struct vcpu *c)
{
	count_exit(c, exit_kind(c->run->exit_reason));
	switch (c->run->exit_reason) {
	case KVM_EXIT_MMIO:
		handle_mmio(c);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		/* PSCI SYSTEM_OFF / SYSTEM_RESET on arm64 (KVM's), the same on x86 where KVM sends them. */
		vm_stop(c->vm, c->run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_STOP_RESET
										   : VM_STOP_POWEROFF);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vm_fail(c->vm, "vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", c->index,
			(unsigned long long)c->run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fail_with_regs(c, "KVM internal error (emulation failed)");
		break;
	default: {
		if (arch_vcpu_exit(c))
			break;
		char what[64];
		snprintf(what, sizeof(what), "unhandled exit reason %u", c->run->exit_reason);
		fail_with_regs(c, what);
		break;
	}
	}
}

/*
 * KVM finishes an instruction that exited for port I/O or MMIO (the IN's
 * value into RAX, RIP past an OUT) only when KVM_RUN is entered again. A
 * vCPU about to park enters once with immediate_exit set, which completes
 * it and returns at once, so the state a pause exposes (to a save) is whole:
 * the destination neither repeats the OUT nor loses the IN.
 */
static void complete_pending(struct vcpu *c)
{
	for (int i = 0; i < 16; i++) {
		__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
		int r = ioctl(c->fd, KVM_RUN, 0);
		__atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_RELEASE);
		if (r < 0)
			return; /* EINTR: nothing (more) was pending */
		/* Completing it needed another exit (an MMIO access split in two): serve it too. */
		handle_exit(c);
		if (c->run->exit_reason != KVM_EXIT_IO && c->run->exit_reason != KVM_EXIT_MMIO)
			return;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vm *vm = c->vm;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	__atomic_store_n(&c->tid, gettid(), __ATOMIC_RELEASE);
	pthread_mutex_lock(&vm->pause_lock);
	vm->running++;
	pthread_mutex_unlock(&vm->pause_lock);

	for (;;) {
		if (__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE)
			break;
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
			complete_pending(c);
			vm_park(vm);
			continue;
		}
		throttle_vcpu(c);
		note_first_run(vm);
		int r = ioctl(c->fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				count_exit(c, VCPU_EXIT_KICK);
				c->run->immediate_exit = 0;
				continue;
			}
			vm_fail(vm, "vCPU %u: KVM_RUN failed: %s", c->index, strerror(errno));
			break;
		}
		handle_exit(c);
	}
	pthread_mutex_lock(&vm->pause_lock);
	vm->running--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	__atomic_store_n(&c->tid, 0, __ATOMIC_RELEASE);
	return NULL;
}

int vcpu_start(struct vcpu *c, struct err *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, install_kick_handler);

	/* The thread starts with the kick signal blocked and unblocks it itself, so it never dies of it. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int r = sandbox_thread_create(&c->thread, SB_VCPU, vcpu_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return err_set(e, -r, "cannot start vCPU %u's thread: %s", c->index, strerror(r));
	c->started = true;
	return 0;
}

int vcpu_kick_signal(void)
{
	return VCPU_KICK_SIGNAL;
}

void vcpu_kick(struct vcpu *c)
{
	if (c->run)
		__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (c->started)
		pthread_kill(c->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *c)
{
	if (c->started) {
		pthread_join(c->thread, NULL);
		c->started = false;
	}
}

void vcpu_destroy(struct vcpu *c)
{
	vcpu_join(c);
	if (c->run)
		munmap(c->run, c->vm->run_size);
	if (c->fd >= 0)
		close(c->fd);
	c->run = NULL;
	c->fd = -1;
}
