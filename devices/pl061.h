/* SPDX-License-Identifier: MIT */
/*
 * ARM PrimeCell PL061 GPIO controller (arm64 machines; TRM DDI0190): eight
 * pins, each an input or an output (GPIODIR), with per-pin interrupt
 * detection (edge or level, one edge or both, rising/high or falling/low) and
 * one interrupt line, the OR of the enabled raw interrupts. GPIODATA is 256
 * words: address bits [9:2] mask which pins a read returns and a write
 * changes (writes change output pins only). GPIOAFSEL is stored, nothing
 * else. The PrimeCell IDs at 0xfe0-0xffc let the AMBA bus probe it.
 * The VMM drives input pins: pl061_set_input(), or pl061_press() for a
 * button (arm64: the power button, on the pin vmm/arch/arm64/layout.h names).
 * Thread: any; a mutex guards the registers and the interrupt line is driven
 * under it.
 */
#ifndef KVMINI_DEVICES_PL061_H
#define KVMINI_DEVICES_PL061_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/irq.h"

#define PL061_SIZE	0x1000
#define PL061_NPINS	8
#define PL061_DATA	0x000 /* 0x000..0x3fc: data, masked by address bits [9:2] */
#define PL061_DIR	0x400 /* 1: output */
#define PL061_IS	0x404 /* interrupt sense, 1: level */
#define PL061_IBE	0x408 /* 1: both edges (IEV ignored) */
#define PL061_IEV	0x40c /* 1: rising edge / high level */
#define PL061_IE	0x410 /* interrupt mask, 1: enabled */
#define PL061_RIS	0x414 /* raw interrupt status (read-only) */
#define PL061_MIS	0x418 /* RIS & IE (read-only) */
#define PL061_IC	0x41c /* write 1s to clear edge interrupts (write-only) */
#define PL061_AFSEL	0x420 /* hardware (alternate function) control: stored */
#define PL061_PERIPH_ID 0xfe0 /* 0xfe0..0xfec: 0x61 0x10 0x04 0x00; 0xff0..0xffc: the PrimeCell ID */

struct pl061;

/* irq: the controller's interrupt line (copied; NULL: none). NULL when out of memory. */
struct pl061 *pl061_create(const struct irq_line *irq);
void pl061_destroy(struct pl061 *g);
/*
 * bus_io_fn for the PL061_SIZE-byte MMIO region (opaque: struct pl061 *):
 * 1-, 2- and 4-byte accesses at 4-byte aligned offsets below PL061_SIZE
 * reach a register (the registers are 8 bits wide: the rest reads 0 and
 * writes are ignored); any other access (offset, size or alignment, all the
 * guest's) reads 0 and writes nothing.
 */
void pl061_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Drives input pin pin (0..7; others are ignored) to level (0 or 1). */
void pl061_set_input(struct pl061 *g, unsigned pin, int level);
/*
 * A button press on input pin pin: the pin goes high and stays high until
 * the guest has read it high through GPIODATA, then drops. A fixed-time
 * pulse could end before a slow guest (nested, emulated) looks, and Linux's
 * gpio-keys reports the level it reads after the edge, so the press would
 * be lost; held until seen, the guest gets both edges: press and release.
 */
void pl061_press(struct pl061 *g, unsigned pin);

#endif
