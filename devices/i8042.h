/* SPDX-License-Identifier: MIT */
/*
 * The PC keyboard controller (i8042) with a keyboard that answers commands but
 * never types: enough for Linux's i8042 and atkbd drivers to probe cleanly, and
 * for the "pulse reset line" reboot path. No mouse is attached to the AUX port.
 */
#ifndef KVMINI_DEVICES_I8042_H
#define KVMINI_DEVICES_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"
#include "devices/platform.h"

struct i8042;

/*
 * kbd_irq: IRQ_I8042_KBD's line; req: where reset requests go. Both are copied
 * and may be NULL. Neither callback may call back into this device; requests
 * are sent without the device lock held. Returns NULL when out of memory.
 */
struct i8042 *i8042_create(const struct irq_line *kbd_irq, const struct vm_requester *req);
void i8042_destroy(struct i8042 *k);
/*
 * Two one-byte ranges, both with opaque = struct i8042 *: i8042_data_io at
 * PORT_I8042_DATA, i8042_cmd_io at PORT_I8042_CMD. Only the byte at offset 0
 * counts; other bytes of an access read 0xff and are ignored on write.
 */
void i8042_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void i8042_cmd_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Power-on state: empty output buffer, default command byte, IRQ lowered. */
void i8042_reset(struct i8042 *k);

/*
 * Saved state (docs/MIGRATION.md): a version, the controller RAM (command
 * byte included), output port, pending controller command, last-write-was-
 * command flag, last byte read, IRQ level, the output queue (bytes and their
 * KBD/AUX source), and the keyboard's pending command, scancode set, LEDs,
 * last byte sent and scanning flag.
 */
void i8042_save(const struct i8042 *k, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller):
 * 0, or -EINVAL with e naming the problem and the device unchanged. No reset
 * request is sent; the IRQ line is driven only when the restored level
 * differs from the one this device last drove (load after the interrupt
 * controller's state, so that a line it already holds high is no new edge).
 */
int i8042_load(struct i8042 *k, struct sreader *in, struct err *e);

#endif
