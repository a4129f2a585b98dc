/* SPDX-License-Identifier: MIT */
/* How platform devices ask the VM to stop (power off, reset, ...), without knowing the VM. */
#ifndef KVMINI_DEVICES_PLATFORM_H
#define KVMINI_DEVICES_PLATFORM_H

enum vm_request {
	VM_REQUEST_POWEROFF = 1,
	VM_REQUEST_RESET = 2,
	VM_REQUEST_PANIC = 3,	   /* the guest kernel panicked (pvpanic) */
	VM_REQUEST_GUEST_EXIT = 4, /* the guest reported an exit status (the exit-status port) */
};

struct vm_requester {
	/* status: the exit status (0..255) for VM_REQUEST_GUEST_EXIT, 0 for the others. */
	void (*request)(void *opaque, enum vm_request req, int status);
	void *opaque;
};

static inline void vm_requester_send_status(const struct vm_requester *r, enum vm_request req, int status)
{
	if (r && r->request)
		r->request(r->opaque, req, status);
}

static inline void vm_requester_send(const struct vm_requester *r, enum vm_request req)
{
	vm_requester_send_status(r, req, 0);
}

#endif
