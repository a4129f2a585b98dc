/* SPDX-License-Identifier: MIT */
/* Unit tests for the ACPI PM1a event/control blocks and the reset register (devices/acpi_pm.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/acpi_pm.h"
#include "vmm/arch/x86/layout.h"

struct fake {
	int level;
	int set_calls;
	unsigned last_gsi;
	int resets, poweroffs;
};

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake *f = opaque;
	f->level = level;
	f->last_gsi = gsi;
	f->set_calls++;
}

static void fake_request(void *opaque, enum vm_request req, int status)
{
	struct fake *f = opaque;
	if (req == VM_REQUEST_RESET)
		f->resets++;
	else if (req == VM_REQUEST_POWEROFF)
		f->poweroffs++;
}

struct ctx {
	struct fake f;
	struct acpi_pm *pm;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	struct irq_line irq = {.set_level = fake_set_level, .opaque = &c->f, .gsi = IRQ_ACPI_SCI};
	struct vm_requester req = {.request = fake_request, .opaque = &c->f};
	c->pm = acpi_pm_create(&irq, &req);
	assert_non_null(c->pm);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	acpi_pm_destroy(c->pm);
	free(c);
	return 0;
}

typedef void (*io_fn)(void *, uint64_t, uint8_t *, uint32_t, bool);

static uint32_t rd(io_fn fn, struct acpi_pm *pm, uint64_t off, uint32_t len)
{
	uint8_t d[8] = {0};
	fn(pm, off, d, len, false);
	uint32_t v = 0;
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void wr(io_fn fn, struct acpi_pm *pm, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[8] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	fn(pm, off, d, len, true);
}

#define EVT acpi_pm_evt_io
#define CNT acpi_pm_cnt_io
#define RST acpi_pm_reset_io

static void test_power_on(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(rd(EVT, c->pm, 0, 2), 0);
	assert_int_equal(rd(EVT, c->pm, 2, 2), 0);
	assert_int_equal(rd(CNT, c->pm, 0, 2), 0x0001); /* SCI_EN: always in ACPI mode */
	assert_int_equal(rd(RST, c->pm, 0, 1), 0);
	assert_int_equal(c->f.set_calls, 0);
}

static void test_power_button(void **state)
{
	struct ctx *c = *state;
	acpi_pm_press_power_button(c->pm);
	assert_int_equal(rd(EVT, c->pm, 0, 2), 0x0100);
	assert_int_equal(c->f.set_calls, 0); /* not enabled yet */
	wr(EVT, c->pm, 2, 2, 0x0100);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(c->f.last_gsi, IRQ_ACPI_SCI);
	/* Writing 0s or other bits does not clear it. */
	wr(EVT, c->pm, 0, 2, 0xfeff);
	assert_int_equal(rd(EVT, c->pm, 0, 2), 0x0100);
	assert_int_equal(c->f.level, 1);
	wr(EVT, c->pm, 0, 2, 0x0100);
	assert_int_equal(rd(EVT, c->pm, 0, 2), 0);
	assert_int_equal(c->f.level, 0);
	/* Pressed again; cleared by a byte write to the high half. */
	acpi_pm_press_power_button(c->pm);
	acpi_pm_press_power_button(c->pm);
	assert_int_equal(c->f.level, 1);
	wr(EVT, c->pm, 1, 1, 0x01);
	assert_int_equal(c->f.level, 0);
	/* Disabling the enable drops the SCI but keeps the status. */
	acpi_pm_press_power_button(c->pm);
	wr(EVT, c->pm, 3, 1, 0x00);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(EVT, c->pm, 1, 1), 0x01);
	assert_int_equal(c->f.set_calls, 6);
}

static void test_evt_widths(void **state)
{
	struct ctx *c = *state;
	wr(EVT, c->pm, 2, 2, 0xffff);
	assert_int_equal(rd(EVT, c->pm, 2, 2), 0x4721);
	acpi_pm_press_power_button(c->pm);
	assert_int_equal(rd(EVT, c->pm, 0, 4), 0x47210100u);
	assert_int_equal(rd(EVT, c->pm, 1, 2), 0x2101);
	assert_int_equal(rd(EVT, c->pm, 3, 1), 0x47);
	/* A dword write clears status and sets enables at once. */
	wr(EVT, c->pm, 0, 4, 0x0100ffffu);
	assert_int_equal(rd(EVT, c->pm, 0, 4), 0x01000000u);
	assert_int_equal(c->f.level, 0);
	/* Bytes past the block. */
	uint8_t d[8];
	memset(d, 0, sizeof(d));
	acpi_pm_evt_io(c->pm, 2, d, 8, false);
	assert_int_equal(d[0], 0x00);
	assert_int_equal(d[1], 0x01);
	for (int i = 2; i < 8; i++)
		assert_int_equal(d[i], 0xff);
}

static void test_sleep(void **state)
{
	struct ctx *c = *state;
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	wr(CNT, c->pm, 0, 2, 0x1401);
	assert_int_equal(c->f.poweroffs, 0);
	assert_int_equal(rd(CNT, c->pm, 0, 2), 0x1401);
	wr(CNT, c->pm, 0, 2, 0x3401);
	assert_int_equal(c->f.poweroffs, 1);
	assert_int_equal(rd(CNT, c->pm, 0, 2) & 0x2000, 0); /* SLP_EN reads 0 */
	/* Other sleep types are ignored. */
	for (unsigned typ = 0; typ < 8; typ++)
		if (typ != ACPI_S5_SLP_TYP)
			wr(CNT, c->pm, 0, 2, 0x2000 | typ << 10);
	assert_int_equal(c->f.poweroffs, 1);
	/* A byte write to the high half is enough. */
	wr(CNT, c->pm, 1, 1, (0x2000 | ACPI_PM1_SLP_TYP(ACPI_S5_SLP_TYP)) >> 8);
	assert_int_equal(c->f.poweroffs, 2);
	/* Halves written separately without SLP_EN do nothing. */
	wr(CNT, c->pm, 1, 1, 0x14);
	wr(CNT, c->pm, 0, 1, 0x00);
	assert_int_equal(c->f.poweroffs, 2);
	wr(CNT, c->pm, 0, 4, 0x3400); /* a dword at offset 0: the upper half falls outside */
	assert_int_equal(c->f.poweroffs, 3);
	/* SCI_EN cannot be cleared; GBL_RLS does not stick; BM_RLD does. */
	wr(CNT, c->pm, 0, 2, 0x0006);
	assert_int_equal(rd(CNT, c->pm, 0, 2), 0x0003);
	assert_int_equal(c->f.resets, 0);
	assert_int_equal(c->f.set_calls, 0);
}

static void test_reset_register(void **state)
{
	struct ctx *c = *state;
	wr(RST, c->pm, 0, 1, 0x00);
	wr(RST, c->pm, 0, 1, 0x02);
	wr(RST, c->pm, 0, 1, 0xff);
	wr(RST, c->pm, 1, 1, ACPI_RESET_VALUE);
	assert_int_equal(c->f.resets, 0);
	wr(RST, c->pm, 0, 1, ACPI_RESET_VALUE);
	assert_int_equal(c->f.resets, 1);
	wr(RST, c->pm, 0, 4, 0xffffff00u | ACPI_RESET_VALUE);
	assert_int_equal(c->f.resets, 2);
	assert_int_equal(c->f.poweroffs, 0);
	assert_int_equal(rd(RST, c->pm, 0, 2), 0xff00);
}

static void test_hostile(void **state)
{
	struct ctx *c = *state;
	io_fn fns[] = {EVT, CNT, RST};
	uint8_t d[8];
	for (int f = 0; f < 3; f++)
		for (uint64_t off = 0; off < 10; off++)
			for (uint32_t len = 1; len <= 8; len *= 2) {
				memset(d, 0, sizeof(d));
				fns[f](c->pm, off, d, len, false);
				for (uint32_t i = 0; i < len; i++)
					if (off + i >= (f == 0 ? 4u : f == 1 ? 2u : 1u))
						assert_int_equal(d[i], 0xff);
				memset(d, 0x5a, sizeof(d)); /* no SLP_EN, not the reset value */
				fns[f](c->pm, off, d, len, true);
			}
	for (int f = 0; f < 3; f++) {
		memset(d, 0, sizeof(d));
		fns[f](c->pm, UINT64_MAX - 1, d, 8, false);
		for (int i = 0; i < 8; i++)
			assert_int_equal(d[i], 0xff);
		fns[f](c->pm, UINT64_MAX, d, 8, true);
		uint8_t big[16];
		memset(big, 0x33, sizeof(big));
		fns[f](c->pm, 0, big, 5000, false);
		assert_int_equal(big[8], 0x33);
	}
	assert_int_equal(c->f.resets, 0);
	assert_int_equal(c->f.poweroffs, 0);
}

static void test_reset(void **state)
{
	struct ctx *c = *state;
	wr(EVT, c->pm, 2, 2, 0x0100);
	acpi_pm_press_power_button(c->pm);
	wr(CNT, c->pm, 0, 2, 0x1402);
	assert_int_equal(c->f.level, 1);
	acpi_pm_reset(c->pm);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(EVT, c->pm, 0, 4), 0);
	assert_int_equal(rd(CNT, c->pm, 0, 2), 0x0001);
}

static void test_null_callbacks(void **state)
{
	(void)state;
	struct acpi_pm *pm = acpi_pm_create(NULL, NULL);
	assert_non_null(pm);
	wr(EVT, pm, 2, 2, 0x0100);
	acpi_pm_press_power_button(pm);
	wr(CNT, pm, 0, 2, 0x3400);
	wr(RST, pm, 0, 1, ACPI_RESET_VALUE);
	acpi_pm_reset(pm);
	acpi_pm_destroy(pm);
	acpi_pm_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_power_on, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_button, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_evt_widths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sleep, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test(test_null_callbacks),
	};
	return cmocka_run_group_tests_name("acpi_pm", tests, NULL, NULL);
}
