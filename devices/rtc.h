/* SPDX-License-Identifier: MIT */
/*
 * The MC146818 CMOS real-time clock and its 128 bytes of CMOS RAM, behind an
 * index port and a data port. The time is the host clock plus an offset that
 * the guest sets by writing the time registers.
 */
#ifndef KVMINI_DEVICES_RTC_H
#define KVMINI_DEVICES_RTC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"

struct rtc;

/*
 * irq: IRQ_RTC's line, copied; may be NULL; set_level must not call back into
 * this device. now: the host clock (seconds since the epoch, UTC); NULL means
 * time(NULL). Returns NULL when out of memory.
 */
struct rtc *rtc_create(const struct irq_line *irq, time_t (*now)(void *opaque), void *opaque);
void rtc_destroy(struct rtc *rtc);
/*
 * bus_io_fn for PORT_RTC_INDEX, 2 ports (opaque: struct rtc *): offset 0 is
 * the index (write-only; bit 7, the NMI mask, is ignored), offset 1 the data.
 * Wider accesses are split into byte accesses at consecutive offsets.
 */
void rtc_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/*
 * Optional, for update-ended and alarm interrupts: call it at least twice a
 * second (any thread). Without calls, register C reads 0 and the IRQ stays low.
 * Periodic interrupts are not emulated.
 */
void rtc_tick(struct rtc *rtc);
/* The RESET pin: interrupt enables and flags cleared; the time and RAM survive (battery-backed). */
void rtc_reset(struct rtc *rtc);

/*
 * Saved state (docs/MIGRATION.md): a version, the 128 bytes of CMOS RAM, the
 * index register, the guest clock's offset from the host clock (so the guest's
 * time keeps running across a migration between hosts whose clocks agree),
 * the C flags, the update-cycle tracking and the IRQ level.
 */
void rtc_save(const struct rtc *rtc, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller):
 * 0, or -EINVAL with e naming the problem and the device unchanged. The IRQ
 * line is driven only when the restored level differs from the one this
 * device last drove (load after the interrupt controller's state).
 */
int rtc_load(struct rtc *rtc, struct sreader *in, struct err *e);

#endif
