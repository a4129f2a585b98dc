/* SPDX-License-Identifier: MIT */
/*
 * ACPI fixed-hardware power management: the PM1a event block (status and enable,
 * with the fixed power button), the PM1a control block (sleep: only S5, power
 * off, does anything) and the FADT reset register. The SCI is asserted while an
 * enabled status bit is set.
 */
#ifndef KVMINI_DEVICES_ACPI_PM_H
#define KVMINI_DEVICES_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "devices/irq.h"
#include "devices/platform.h"

#define ACPI_PM1_PWRBTN_STS 0x0100 /* in PM1_STS; PWRBTN_EN is the same bit of PM1_EN */
#define ACPI_PM1_SCI_EN	    0x0001 /* in PM1_CNT */
#define ACPI_PM1_SLP_EN	    0x2000
#define ACPI_PM1_SLP_TYP(v) (((v)&7) << 10)

struct acpi_pm;

/*
 * sci: IRQ_ACPI_SCI's line (level-triggered, active high in the MADT); req:
 * where power-off and reset requests go. Both are copied and may be NULL;
 * neither may call back into this device; requests are sent without the
 * device lock held. Returns NULL when out of memory.
 */
struct acpi_pm *acpi_pm_create(const struct irq_line *sci, const struct vm_requester *req);
void acpi_pm_destroy(struct acpi_pm *pm);
/*
 * Three bus_io_fn, all with opaque = struct acpi_pm *:
 *   acpi_pm_evt_io   at PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN (4) ports:
 *                    PM1_STS (offset 0, write 1 to clear) and PM1_EN (offset 2);
 *   acpi_pm_cnt_io   at PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN (2) ports: PM1_CNT;
 *   acpi_pm_reset_io at PORT_ACPI_RESET, 1 port: writing ACPI_RESET_VALUE resets.
 * Each block is a little-endian byte array: any width at any offset reaches the
 * bytes it covers; bytes past the block read 0xff and are ignored on write.
 */
void acpi_pm_evt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void acpi_pm_cnt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void acpi_pm_reset_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Sets PWRBTN_STS (any thread); the guest sees an SCI once it has set PWRBTN_EN. */
void acpi_pm_press_power_button(struct acpi_pm *pm);
/* Power-on state: status, enables and control cleared, SCI lowered. */
void acpi_pm_reset(struct acpi_pm *pm);

/*
 * Saved state (docs/MIGRATION.md): a version, PM1_STS (the power-button
 * latch), PM1_EN, PM1_CNT (what it keeps) and the SCI level. The reset
 * register has no state.
 */
void acpi_pm_save(const struct acpi_pm *pm, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller):
 * 0, or -EINVAL with e naming the problem and the device unchanged. No power
 * request is sent (PM1_CNT keeps no SLP_EN); the SCI is driven only when the
 * restored level differs from the one this device last drove.
 */
int acpi_pm_load(struct acpi_pm *pm, struct sreader *in, struct err *e);

#endif
