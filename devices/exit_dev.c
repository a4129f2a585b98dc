/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (the I/O handler) and the set-up thread. */
#include "exit_dev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_DEV_STATE_VERSION 1

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

void exit_dev_save(const struct exit_dev *x, struct sbuf *out)
{
	sbuf_u32(out, EXIT_DEV_STATE_VERSION);
}

int exit_dev_load(struct exit_dev *x, struct sreader *in, struct err *e)
{
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "exit port: saved state truncated");
	if (ver != EXIT_DEV_STATE_VERSION)
		return err_set(e, -EINVAL, "exit port: saved state version %u, this build reads %u", ver,
			       EXIT_DEV_STATE_VERSION);
	return 0;
}
