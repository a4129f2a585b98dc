/* SPDX-License-Identifier: MIT */
/*
 * A 16550A UART (the PC's COM port): eight byte-wide registers. Transmission is
 * instant (THR is always empty), reception goes through a 1024-byte buffer that
 * applies backpressure to the host side instead of ever reporting an overrun.
 */
#ifndef KVMINI_DEVICES_SERIAL_H
#define KVMINI_DEVICES_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"

#define SERIAL_RX_BUF_SIZE 1024

struct serial;

/*
 * Guest output. Called from the vCPU thread that wrote THR, without the device
 * lock held, possibly from several vCPU threads at once (so it must be
 * thread-safe). The guest's access completes only after tx returns, so the byte
 * order the guest imposes (its own port lock) is kept. May block briefly.
 */
typedef void (*serial_tx_fn)(void *opaque, const uint8_t *buf, size_t len);
/*
 * Called without the device lock held, once after serial_rx_push accepted fewer
 * bytes than offered, when the guest has drained the receive buffer to half its
 * size or less (or emptied it by FCR/reset, or left loopback), so that a blocked
 * writer can retry. Runs on a vCPU thread (or the caller of serial_reset).
 */
typedef void (*serial_rx_space_fn)(void *opaque);

/*
 * irq: the line to drive (COM1: IRQ_COM1), copied; may be NULL. tx, rx_space may
 * be NULL. Neither callback nor irq->set_level may call back into this device.
 * Returns NULL when out of memory.
 */
struct serial *serial_create(const struct irq_line *irq, serial_tx_fn tx, serial_rx_space_fn rx_space,
			     void *opaque);
void serial_destroy(struct serial *s);
/*
 * bus_io_fn for PORT_COM1..+PORT_COM1_LEN (opaque: struct serial *). Wider
 * accesses are split into byte accesses at consecutive offsets (as an ISA bus
 * does); bytes past offset 7 read 0xff and are ignored on write.
 */
void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/*
 * Host input (console thread). Non-blocking: returns how many bytes were
 * accepted; 0 when the buffer is full or the UART is in loopback mode.
 */
size_t serial_rx_push(struct serial *s, const uint8_t *buf, size_t len);
/* Power-on state: registers reset, receive buffer emptied, IRQ lowered. */
void serial_reset(struct serial *s);

/*
 * Saved state (docs/MIGRATION.md): a version, every register, the MSR deltas,
 * the THR-empty interrupt pending flag, the last byte read, the IRQ level and
 * the receive buffer's contents. Take it while the VM is paused.
 */
void serial_save(const struct serial *s, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller) and
 * makes it the device's: 0, or -EINVAL with e naming the problem and the
 * device unchanged. No tx or rx_space callback fires; the IRQ line is driven
 * when the restored level differs from the one this device last drove (load
 * after the interrupt controller's own state, so that re-asserting a level it
 * already holds is not a new edge).
 */
int serial_load(struct serial *s, struct sreader *in, struct err *e);

#endif
