/* SPDX-License-Identifier: MIT */
/* How platform devices ask the VM to power off or reset, without knowing the VM. */
#ifndef KVMINI_DEVICES_PLATFORM_H
#define KVMINI_DEVICES_PLATFORM_H

enum vm_request {
	VM_REQUEST_POWEROFF = 1,
	VM_REQUEST_RESET = 2,
};

struct vm_requester {
	void (*request)(void *opaque, enum vm_request req);
	void *opaque;
};

static inline void vm_requester_send(const struct vm_requester *r, enum vm_request req)
{
	if (r && r->request)
		r->request(r->opaque, req);
}

#endif
