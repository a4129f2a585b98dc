/* SPDX-License-Identifier: MIT */
/*
 * Pausing a machine: nothing may change guest memory while it is paused
 * (the guarantee migration and snapshots build on). vCPUs park at the top of
 * their run loop; device threads wait at the gate around their passes over
 * the rings; kvmclock is read at pause and written back at resume, so guest
 * time does not jump by the length of the pause (as QEMU does).
 */
#include <sys/ioctl.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"

static bool stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE;
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->pause_req, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < vm->running && !stopping(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	if (stopping(vm))
		return;
	quiesce_close(&vm->gate);
	vm->clock_saved = ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->clock) == 0;
}

void vm_resume(struct vm *vm)
{
	if (vm->clock_saved) {
		struct kvm_clock_data c = {.clock = vm->clock.clock};
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0) {
			/* The guest then sees the pause as time passing: harmless. */
		}
		vm->clock_saved = false;
	}
	quiesce_open(&vm->gate);
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE) && !stopping(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause_end_for_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	quiesce_open(&vm->gate);
}
