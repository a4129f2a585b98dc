/* SPDX-License-Identifier: MIT */
/*
 * The guest exit-status port (PORT_GUEST_EXIT, one port): a byte the guest
 * writes there (outb) stops the VM, and the kvmini command exits with that
 * byte as its status, so a guest-side test suite reports pass or fail in one
 * write. It has no state: nothing to reset across reboots.
 */
#ifndef KVMINI_DEVICES_EXIT_DEV_H
#define KVMINI_DEVICES_EXIT_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/platform.h"

struct exit_dev;

/* req (copied; may be NULL) receives VM_REQUEST_GUEST_EXIT with the status. NULL when out of memory. */
struct exit_dev *exit_dev_create(const struct vm_requester *req);
void exit_dev_destroy(struct exit_dev *x);
/*
 * bus_io_fn at PORT_GUEST_EXIT, 1 port (opaque: struct exit_dev *): a write
 * at offset 0 sends VM_REQUEST_GUEST_EXIT with its low byte (the bus only
 * passes byte accesses to a 1-port range: wider ones are not decoded); reads
 * give 0xff. Stateless, so no lock: any vCPU thread.
 */
void exit_dev_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/*
 * Saved state: only a version. The port has no state (a write acts at once),
 * but it follows the pattern every device does, so that a later version may
 * add some and an old stream is still recognised.
 */
void exit_dev_save(const struct exit_dev *x, struct sbuf *out);
/* Reads the version from in: 0, or -EINVAL with e set. Changes nothing, calls nothing. */
int exit_dev_load(struct exit_dev *x, struct sreader *in, struct err *e);

#endif
