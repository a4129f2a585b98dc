/* SPDX-License-Identifier: MIT */
/* Unit tests for the i8042 keyboard controller model (devices/i8042.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/i8042.h"
#include "vmm/arch/x86/layout.h"

struct fake {
	int level;
	int set_calls;
	int raises;
	unsigned last_gsi;
	int resets, poweroffs;
};

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake *f = opaque;
	f->level = level;
	f->last_gsi = gsi;
	f->set_calls++;
	if (level)
		f->raises++;
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
	struct i8042 *k;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	/* Stack copies: the device must keep its own. */
	struct irq_line irq = {.set_level = fake_set_level, .opaque = &c->f, .gsi = IRQ_I8042_KBD};
	struct vm_requester req = {.request = fake_request, .opaque = &c->f};
	c->k = i8042_create(&irq, &req);
	assert_non_null(c->k);
	memset(&irq, 0, sizeof(irq));
	memset(&req, 0, sizeof(req));
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	i8042_destroy(c->k);
	free(c);
	return 0;
}

static uint8_t st(struct i8042 *k)
{
	uint8_t v = 0;
	i8042_cmd_io(k, 0, &v, 1, false);
	return v;
}

static uint8_t rd(struct i8042 *k)
{
	uint8_t v = 0;
	i8042_data_io(k, 0, &v, 1, false);
	return v;
}

static void cmd(struct i8042 *k, uint8_t v)
{
	i8042_cmd_io(k, 0, &v, 1, true);
}

static void wr(struct i8042 *k, uint8_t v)
{
	i8042_data_io(k, 0, &v, 1, true);
}

/* Reads one byte the way Linux's i8042_wait_read does: OBF must be set. */
static uint8_t reply(struct i8042 *k)
{
	assert_true(st(k) & 0x01);
	return rd(k);
}

static void assert_empty(struct i8042 *k)
{
	assert_int_equal(st(k) & 0x01, 0);
}

static void test_power_on(void **state)
{
	struct ctx *c = *state;
	uint8_t s = st(c->k);
	assert_int_equal(s & 0x01, 0); /* no OBF */
	assert_int_equal(s & 0x02, 0); /* never IBF */
	assert_true(s & 0x04);	       /* SYS */
	assert_true(s & 0x10);	       /* not keylocked */
	assert_int_equal(c->f.set_calls, 0);
}

static void test_ctr(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0x20);
	assert_true(st(c->k) & 0x08); /* last write was a command */
	assert_int_equal(c->f.level, 1);
	assert_int_equal(c->f.last_gsi, IRQ_I8042_KBD);
	uint8_t ctr = reply(c->k);
	assert_int_equal(ctr, 0x65);
	assert_int_equal(c->f.level, 0);
	assert_empty(c->k);

	cmd(c->k, 0x60);
	wr(c->k, 0x44); /* KBDINT off */
	assert_false(st(c->k) & 0x08);
	cmd(c->k, 0x20);
	assert_int_equal(c->f.level, 0); /* interrupts disabled in the command byte */
	assert_int_equal(reply(c->k), 0x44);
	/* Enabling KBDINT with a byte waiting raises the line. */
	cmd(c->k, 0x20);
	cmd(c->k, 0x60);
	wr(c->k, 0x45);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(reply(c->k), 0x44);
	assert_int_equal(c->f.level, 0);
	/* SYS in the status mirrors the command byte. */
	cmd(c->k, 0x60);
	wr(c->k, 0x40);
	assert_false(st(c->k) & 0x04);
	/* Other controller RAM bytes. */
	cmd(c->k, 0x65);
	wr(c->k, 0x9c);
	cmd(c->k, 0x25);
	assert_int_equal(reply(c->k), 0x9c);
	assert_int_equal(c->f.resets, 0);
}

static void test_selftests(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0xaa);
	assert_int_equal(reply(c->k), 0x55);
	cmd(c->k, 0xab);
	assert_int_equal(reply(c->k), 0x00);
	cmd(c->k, 0xa9);
	assert_int_equal(reply(c->k), 0x00);
	cmd(c->k, 0xa4);
	assert_int_equal(reply(c->k), 0xf1);
	assert_empty(c->k);
}

static uint8_t read_ctr(struct i8042 *k)
{
	cmd(k, 0x20);
	return reply(k);
}

static void test_port_enables(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0xa8);
	assert_false(read_ctr(c->k) & 0x20);
	cmd(c->k, 0xa7);
	assert_true(read_ctr(c->k) & 0x20);
	cmd(c->k, 0xad);
	assert_true(read_ctr(c->k) & 0x10);
	cmd(c->k, 0xae);
	assert_false(read_ctr(c->k) & 0x10);
	/* Writing to the keyboard re-enables its interface. */
	cmd(c->k, 0xad);
	wr(c->k, 0xf4);
	assert_int_equal(reply(c->k), 0xfa);
	assert_false(read_ctr(c->k) & 0x10);
}

static void test_reset_pulse(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0xfe);
	assert_int_equal(c->f.resets, 1);
	for (unsigned v = 0xf0; v <= 0xff; v++)
		cmd(c->k, (uint8_t)v);
	assert_int_equal(c->f.resets, 1 + 8); /* the even ones */
	assert_int_equal(c->f.poweroffs, 0);
	assert_empty(c->k);
}

static void test_output_port(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0xd0);
	assert_int_equal(reply(c->k) & 0x01, 0x01);
	cmd(c->k, 0xd1);
	wr(c->k, 0xdf);
	assert_int_equal(c->f.resets, 0);
	cmd(c->k, 0xd0);
	assert_int_equal(reply(c->k), 0xdf);
	cmd(c->k, 0xd1);
	wr(c->k, 0xfe);
	assert_int_equal(c->f.resets, 1);
	/* The byte after the output-port write goes to the keyboard again. */
	wr(c->k, 0xee);
	assert_int_equal(reply(c->k), 0xee);
}

static void test_aux(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0xd4);
	wr(c->k, 0xff);
	assert_int_equal(st(c->k) & 0x21, 0x21); /* OBF from AUX */
	assert_int_equal(c->f.level, 0);	 /* not the keyboard's interrupt */
	assert_int_equal(rd(c->k), 0xfe);
	cmd(c->k, 0xd3); /* loopback, as Linux's AUX and MUX probes use it */
	wr(c->k, 0x5a);
	assert_int_equal(st(c->k) & 0x21, 0x21);
	assert_int_equal(rd(c->k), 0x5a);
	cmd(c->k, 0xd2);
	wr(c->k, 0x77);
	assert_int_equal(st(c->k) & 0x21, 0x01);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->k), 0x77);
	/* A new command cancels a pending data byte. */
	cmd(c->k, 0xd3);
	cmd(c->k, 0xa7);
	wr(c->k, 0xee);
	assert_int_equal(st(c->k) & 0x21, 0x01);
	assert_int_equal(rd(c->k), 0xee);
}

/* What Linux's atkbd sends: reset-disable, get ID, LEDs, typematic rate, enable. */
static void test_keyboard(void **state)
{
	struct ctx *c = *state;
	wr(c->k, 0xf5);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0xf2);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xab);
	assert_int_equal(reply(c->k), 0x41); /* translated */
	wr(c->k, 0xed);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0x00);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0xf3);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0x00);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0xf4);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0xff);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xaa);
	wr(c->k, 0xee);
	assert_int_equal(reply(c->k), 0xee);
	wr(c->k, 0xfe); /* resend */
	assert_int_equal(reply(c->k), 0xee);
	wr(c->k, 0x01); /* not a command */
	assert_int_equal(reply(c->k), 0xfe);
	assert_empty(c->k);
	assert_int_equal(c->f.resets, 0);

	/* Scancode set get/set, untranslated. */
	cmd(c->k, 0x60);
	wr(c->k, 0x05);
	wr(c->k, 0xf2);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xab);
	assert_int_equal(reply(c->k), 0x83);
	wr(c->k, 0xf0);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0x03);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0xf0);
	wr(c->k, 0x00);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0x03);
	wr(c->k, 0xf0);
	wr(c->k, 0x07); /* no such set */
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xfe);
	/* A command while a parameter is awaited is a command. */
	wr(c->k, 0xed);
	wr(c->k, 0xf4);
	assert_int_equal(reply(c->k), 0xfa);
	assert_int_equal(reply(c->k), 0xfa);
	wr(c->k, 0x00); /* no longer a parameter: unknown command */
	assert_int_equal(reply(c->k), 0xfe);
	assert_empty(c->k);
}

static void test_irq_edge_per_byte(void **state)
{
	struct ctx *c = *state;
	wr(c->k, 0xff); /* two bytes queued */
	assert_int_equal(c->f.raises, 1);
	assert_int_equal(rd(c->k), 0xfa);
	assert_int_equal(c->f.raises, 2); /* dropped and raised again for the second byte */
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->k), 0xaa);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->k), 0xaa); /* empty: repeats the last byte, no edge */
	assert_int_equal(c->f.raises, 2);
	assert_int_equal(c->f.set_calls, 4);
}

static void test_queue_overflow(void **state)
{
	struct ctx *c = *state;
	for (int i = 0; i < 40; i++)
		cmd(c->k, 0xaa);
	int n = 0;
	while (st(c->k) & 1) {
		assert_int_equal(rd(c->k), 0x55);
		n++;
		assert_true(n <= 40);
	}
	assert_int_equal(n, 16);
}

static void test_hostile_access(void **state)
{
	struct ctx *c = *state;
	uint8_t d[8];
	for (uint64_t off = 0; off < 4; off++)
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(d, 0, sizeof(d));
			i8042_data_io(c->k, off, d, len, false);
			for (uint32_t i = off ? 0 : 1; i < len; i++)
				assert_int_equal(d[i], 0xff);
			i8042_cmd_io(c->k, off, d, len, false);
			memset(d, 0x11, sizeof(d));
			i8042_cmd_io(c->k, off, d, len, true);
			i8042_data_io(c->k, off, d, len, true);
		}
	memset(d, 0xfe, sizeof(d));
	i8042_cmd_io(c->k, 1, d, 1, true); /* not at offset 0: ignored */
	i8042_cmd_io(c->k, UINT64_MAX, d, 8, true);
	assert_int_equal(c->f.resets, 0);
	i8042_cmd_io(c->k, 0, d, 4, true); /* the low byte counts */
	assert_int_equal(c->f.resets, 1);
	uint8_t big[16];
	memset(big, 0x33, sizeof(big));
	i8042_data_io(c->k, 0, big, 1000, false);
	assert_int_equal(big[8], 0x33);
	/* Every byte value on both ports: no crash, and the queue keeps draining. */
	for (unsigned v = 0; v < 256; v++) {
		if (v >= 0xf0 && !(v & 1))
			continue;
		cmd(c->k, (uint8_t)v);
		wr(c->k, (uint8_t)(v ^ 0x5a));
		wr(c->k, (uint8_t)v);
	}
	for (int i = 0; i < 32 && (st(c->k) & 1); i++)
		rd(c->k);
	assert_empty(c->k);
}

static void test_reset_state(void **state)
{
	struct ctx *c = *state;
	cmd(c->k, 0x60);
	wr(c->k, 0x00);
	cmd(c->k, 0x60);
	wr(c->k, 0x01);
	wr(c->k, 0xff);
	assert_int_equal(c->f.level, 1);
	i8042_reset(c->k);
	assert_int_equal(c->f.level, 0);
	assert_empty(c->k);
	assert_int_equal(read_ctr(c->k), 0x65);
}

static void test_null_callbacks(void **state)
{
	(void)state;
	struct i8042 *k = i8042_create(NULL, NULL);
	assert_non_null(k);
	cmd(k, 0xfe);
	wr(k, 0xff);
	assert_int_equal(reply(k), 0xfa);
	i8042_reset(k);
	i8042_destroy(k);
	i8042_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_power_on, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_selftests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_port_enables, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_pulse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_port, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_aux, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyboard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_irq_edge_per_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_access, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
	    cmocka_unit_test(test_null_callbacks),
	};
	return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
