/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (the I/O handler) and the set-up thread. */
#include "exit_dev.h"

#include <stdlib.h>
#include <string.h>

struct exit_dev {
	struct vm_requester req;
};

void exit_dev_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct exit_dev *x = opaque;

	if (len > 8)
		len = 8;
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	if (off == 0 && len >= 1)
		vm_requester_send_status(&x->req, VM_REQUEST_GUEST_EXIT, data[0]);
}

struct exit_dev *exit_dev_create(const struct vm_requester *req)
{
	struct exit_dev *x = calloc(1, sizeof(*x));

	if (x && req)
		x->req = *req;
	return x;
}

void exit_dev_destroy(struct exit_dev *x)
{
	free(x);
}
