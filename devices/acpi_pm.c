/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (the I/O handlers), the API thread (power button) and the set-up thread. */
#include "acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "vmm/arch/x86/layout.h"

#define EVT_LEN 4 /* PM1_STS (2 bytes) + PM1_EN (2 bytes) */
#define CNT_LEN 2

/* TMR, GBL, PWRBTN, SLPBTN, RTC enables and PCIEXP_WAKE_DIS; the rest is reserved. */
#define PM1_EN_WMASK 0x4721
/* BM_RLD and SLP_TYP keep what is written; SLP_EN and GBL_RLS are write-only, SCI_EN fixed at 1. */
#define PM1_CNT_KEEP	0x1c02
#define PM1_CNT_SLP_TYP 0x1c00
/* The only status bit this model ever sets. */
#define PM1_STS_MASK ACPI_PM1_PWRBTN_STS

#define ACPI_PM_STATE_VERSION 1

struct acpi_pm {
	pthread_mutex_t lock;
	struct irq_line sci;
	struct vm_requester req;
	uint16_t sts, en, cnt;
	int sci_level;
};

static void update_sci(struct acpi_pm *pm)
{
	int level = (pm->sts & pm->en) != 0;
	if (level != pm->sci_level) {
		pm->sci_level = level;
		irq_line_set(&pm->sci, level);
	}
}

static uint32_t clamp_len(uint32_t len)
{
	return len > 8 ? 8 : len;
}

/* The byte at position p of a block, or -1 when p lies outside it. */
static int64_t block_pos(uint64_t off, uint32_t i, uint64_t block_len)
{
	uint64_t p = off + i;
	return (p < off || p >= block_len) ? -1 : (int64_t)p;
}

void acpi_pm_evt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;

	len = clamp_len(len);
	pthread_mutex_lock(&pm->lock);
	for (uint32_t i = 0; i < len; i++) {
		int64_t p = block_pos(off, i, EVT_LEN);
		if (p < 0) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		unsigned shift = 8 * (unsigned)(p & 1);
		uint16_t *reg = p < 2 ? &pm->sts : &pm->en;
		if (!is_write) {
			data[i] = (uint8_t)(*reg >> shift);
		} else if (p < 2) {
			pm->sts &= (uint16_t) ~((unsigned)data[i] << shift); /* write 1 to clear */
		} else {
			uint16_t m = (uint16_t)(0xffu << shift);
			pm->en =
			    (uint16_t)((pm->en & ~m) | (((unsigned)data[i] << shift) & m & PM1_EN_WMASK));
		}
	}
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_cnt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	bool poweroff = false;

	len = clamp_len(len);
	pthread_mutex_lock(&pm->lock);
	uint16_t v = pm->cnt | ACPI_PM1_SCI_EN;
	bool touched = false;
	for (uint32_t i = 0; i < len; i++) {
		int64_t p = block_pos(off, i, CNT_LEN);
		if (p < 0) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		unsigned shift = 8 * (unsigned)p;
		if (is_write) {
			v = (uint16_t)((v & ~(0xffu << shift)) | ((unsigned)data[i] << shift));
			touched = true;
		} else {
			data[i] = (uint8_t)(v >> shift);
		}
	}
	if (is_write && touched) {
		/* A byte write to the high half still sees the low half as last written, and vice versa. */
		if ((v & ACPI_PM1_SLP_EN) && (v & PM1_CNT_SLP_TYP) == ACPI_PM1_SLP_TYP(ACPI_S5_SLP_TYP))
			poweroff = true;
		/* Other sleep states are not supported: the guest carries on. */
		pm->cnt = v & PM1_CNT_KEEP;
	}
	pthread_mutex_unlock(&pm->lock);
	if (poweroff)
		vm_requester_send(&pm->req, VM_REQUEST_POWEROFF);
}

void acpi_pm_reset_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;

	len = clamp_len(len);
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = block_pos(off, i, 1) < 0 ? 0xff : 0x00;
		return;
	}
	/* Stateless, so no lock: only the byte at offset 0 is the register. */
	if (off == 0 && len >= 1 && data[0] == ACPI_RESET_VALUE)
		vm_requester_send(&pm->req, VM_REQUEST_RESET);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= ACPI_PM1_PWRBTN_STS;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_reset(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts = 0;
	pm->en = 0;
	pm->cnt = 0;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

struct acpi_pm *acpi_pm_create(const struct irq_line *sci, const struct vm_requester *req)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return NULL;
	if (pthread_mutex_init(&pm->lock, NULL)) {
		free(pm);
		return NULL;
	}
	if (sci)
		pm->sci = *sci;
	if (req)
		pm->req = *req;
	return pm;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

/* ---- saved state ---- */

void acpi_pm_save(const struct acpi_pm *cpm, struct sbuf *out)
{
	struct acpi_pm *pm = (struct acpi_pm *)cpm; /* the lock only */

	pthread_mutex_lock(&pm->lock);
	sbuf_u32(out, ACPI_PM_STATE_VERSION);
	sbuf_u16(out, pm->sts);
	sbuf_u16(out, pm->en);
	sbuf_u16(out, pm->cnt);
	sbuf_u8(out, (uint8_t)pm->sci_level);
	pthread_mutex_unlock(&pm->lock);
}

int acpi_pm_load(struct acpi_pm *pm, struct sreader *in, struct err *e)
{
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "acpi_pm: saved state truncated");
	if (ver != ACPI_PM_STATE_VERSION)
		return err_set(e, -EINVAL, "acpi_pm: saved state version %u, this build reads %u", ver,
			       ACPI_PM_STATE_VERSION);
	uint16_t sts = sreader_u16(in), en = sreader_u16(in), cnt = sreader_u16(in);
	uint8_t level = sreader_u8(in);
	if (in->bad)
		return err_set(e, -EINVAL, "acpi_pm: saved state truncated");
	if (sts & ~PM1_STS_MASK)
		return err_set(e, -EINVAL, "acpi_pm: PM1_STS 0x%04x has bits this model never sets", sts);
	if (en & ~PM1_EN_WMASK)
		return err_set(e, -EINVAL, "acpi_pm: PM1_EN 0x%04x has reserved bits set", en);
	if (cnt & ~PM1_CNT_KEEP)
		return err_set(e, -EINVAL, "acpi_pm: PM1_CNT 0x%04x has bits the register does not keep",
			       cnt);
	if (level > 1 || level != ((sts & en) != 0))
		return err_set(e, -EINVAL, "acpi_pm: SCI level %u contradicts PM1_STS and PM1_EN", level);

	pthread_mutex_lock(&pm->lock);
	pm->sts = sts;
	pm->en = en;
	pm->cnt = cnt;
	update_sci(pm); /* the only callback: the SCI to the saved level when it is not there */
	pthread_mutex_unlock(&pm->lock);
	return 0;
}
