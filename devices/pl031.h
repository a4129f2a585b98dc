/* SPDX-License-Identifier: MIT */
/*
 * ARM PrimeCell PL031 real-time clock (arm64 machines), as much as Linux's
 * rtc-pl031 driver needs to read the time: RTCDR counts seconds since the
 * epoch; a write to RTCLR sets it (kept as an offset from the host clock).
 * The match register, control and interrupt mask are stored, but the alarm
 * never fires (no interrupt line: RIS and MIS read 0). The PrimeCell
 * peripheral and cell ID registers at 0xfe0-0xffc let the AMBA bus probe it.
 * Thread: any vCPU; a mutex guards the registers.
 */
#ifndef KVMINI_DEVICES_PL031_H
#define KVMINI_DEVICES_PL031_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PL031_SIZE	0x1000
#define PL031_DR	0x000 /* data: the current time (read-only) */
#define PL031_MR	0x004 /* match */
#define PL031_LR	0x008 /* load: a write sets the time */
#define PL031_CR	0x00c /* control: bit 0 "started" (reads 1, always running) */
#define PL031_IMSC	0x010 /* interrupt mask */
#define PL031_RIS	0x014 /* raw interrupt status */
#define PL031_MIS	0x018 /* masked interrupt status */
#define PL031_ICR	0x01c /* interrupt clear (write-only) */
#define PL031_PERIPH_ID 0xfe0 /* 0xfe0..0xfec: 0x31 0x10 0x14 0x00; 0xff0..0xffc: the PrimeCell ID */

struct pl031;

/* now: the host clock (seconds since the epoch); NULL: time(NULL). NULL when out of memory. */
struct pl031 *pl031_create(time_t (*now)(void *opaque), void *opaque);
void pl031_destroy(struct pl031 *r);
/*
 * bus_io_fn for the PL031_SIZE-byte MMIO region (opaque: struct pl031 *):
 * 32-bit accesses at 4-byte aligned offsets below PL031_SIZE reach a
 * register; any other access (offset, size or alignment, all the guest's)
 * reads 0 and writes nothing.
 */
void pl031_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

#endif
