/* SPDX-License-Identifier: MIT */
/*
 * Saved state of the platform devices: each is driven through its I/O ports
 * into a non-trivial state, saved, loaded into a fresh device, and both must
 * then behave the same; damaged input (truncated, wrong version, values out
 * of range) is refused and leaves the device as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "devices/acpi_pm.h"
#include "devices/exit_dev.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "devices/serial.h"

struct line {
	int level, changes;
};

static void line_set(void *opaque, unsigned gsi, int level)
{
	struct line *l = opaque;
	l->level = level;
	l->changes++;
}

struct reqs {
	int n;
	enum vm_request last;
};

static void on_request(void *opaque, enum vm_request req, int status)
{
	struct reqs *r = opaque;
	r->n++;
	r->last = req;
}

static void io8(void (*fn)(void *, uint64_t, uint8_t *, uint32_t, bool), void *dev, uint64_t off, uint8_t v)
{
	fn(dev, off, &v, 1, true);
}

static uint8_t in8(void (*fn)(void *, uint64_t, uint8_t *, uint32_t, bool), void *dev, uint64_t off)
{
	uint8_t v = 0;
	fn(dev, off, &v, 1, false);
	return v;
}

/*
 * Feeds loader every damaged variant of the good state s (each truncation,
 * a wrong version, and the byte at each offset in bad_at set to bad_val) and
 * checks each is refused with a message naming the device, and that save
 * still gives exactly s afterwards (the device unchanged).
 */
typedef int (*load_fn)(void *dev, struct sreader *in, struct err *e);
typedef void (*save_fn)(const void *dev, struct sbuf *out);

static void check_unchanged(void *dev, save_fn save, const struct sbuf *s)
{
	struct sbuf now;
	sbuf_init(&now);
	save(dev, &now);
	assert_int_equal(now.len, s->len);
	assert_memory_equal(now.data, s->data, s->len);
	sbuf_free(&now);
}

static void refuse(void *dev, load_fn load, save_fn save, const struct sbuf *s, const char *name, size_t off,
		   uint8_t val)
{
	uint8_t *b = malloc(s->len);
	assert_non_null(b);
	memcpy(b, s->data, s->len);
	b[off] = val;
	struct sreader r;
	struct err e = {{0}};
	sreader_init(&r, b, s->len);
	assert_int_not_equal(load(dev, &r, &e), 0);
	if (!strstr(err_msg(&e), name))
		fail_msg("byte %zu = 0x%02x: \"%s\" does not say \"%s\"", off, val, err_msg(&e), name);
	check_unchanged(dev, save, s);
	free(b);
}

/* dev holds the state s; every truncation and a wrong version must be refused. */
static void refuse_damaged(void *dev, load_fn load, save_fn save, const struct sbuf *s, const char *name)
{
	for (size_t n = 0; n < s->len; n++) {
		struct sreader r;
		struct err e = {{0}};
		sreader_init(&r, s->data, n);
		assert_int_not_equal(load(dev, &r, &e), 0);
		assert_non_null(strstr(err_msg(&e), name));
		assert_non_null(strstr(err_msg(&e), "truncated"));
		check_unchanged(dev, save, s);
	}
	refuse(dev, load, save, s, name, 0, (uint8_t)(s->data[0] + 1)); /* the version */
	refuse(dev, load, save, s, "version", 0, 0);
}

static void load_ok(void *dev, load_fn load, const struct sbuf *s)
{
	struct sreader r;
	struct err e = {{0}};
	sreader_init(&r, s->data, s->len);
	assert_int_equal(load(dev, &r, &e), 0);
	assert_true(sreader_done(&r));
	assert_string_equal(err_msg(&e), "");
}

/* ---- serial ---- */

static int serial_load_v(void *d, struct sreader *in, struct err *e)
{
	return serial_load(d, in, e);
}
static void serial_save_v(const void *d, struct sbuf *out)
{
	serial_save(d, out);
}

struct txlog {
	uint8_t buf[64];
	size_t n;
};

static void tx(void *opaque, const uint8_t *buf, size_t len)
{
	struct txlog *t = opaque;
	for (size_t i = 0; i < len && t->n < sizeof(t->buf); i++)
		t->buf[t->n++] = buf[i];
}

static void test_serial_state(void **state)
{
	struct line la = {0}, lb = {0};
	struct txlog ta = {.n = 0}, tb = {.n = 0};
	struct irq_line ia = {line_set, &la, 4}, ib = {line_set, &lb, 4};
	struct serial *a = serial_create(&ia, tx, NULL, &ta);
	struct serial *b = serial_create(&ib, tx, NULL, &tb);
	assert_non_null(a);
	assert_non_null(b);

	/* Divisor, line settings, FIFO, OUT2, receive and THR interrupts, scratch, pending input. */
	io8(serial_io, a, 3, 0x80);
	io8(serial_io, a, 0, 0x01);
	io8(serial_io, a, 1, 0x00);
	io8(serial_io, a, 3, 0x03);
	io8(serial_io, a, 2, 0xc7);
	io8(serial_io, a, 4, 0x0b);
	io8(serial_io, a, 7, 0x5a);
	io8(serial_io, a, 1, 0x0b); /* ERBFI, ETBEI, EDSSI: THRI pending */
	assert_int_equal(serial_rx_push(a, (const uint8_t *)"hello", 5), 5);
	assert_int_equal(in8(serial_io, a, 0), 'h');
	assert_int_equal(la.level, 1);

	struct sbuf s;
	sbuf_init(&s);
	serial_save(a, &s);
	assert_false(s.oom);
	load_ok(b, serial_load_v, &s);
	assert_int_equal(lb.level, 1); /* the line re-raised, once */
	assert_int_equal(lb.changes, 1);
	assert_int_equal(tb.n, 0); /* nothing transmitted by the load */

	/* Every register reads the same, and reads have the same effects on both. */
	for (int round = 0; round < 2; round++) {
		for (unsigned reg = 1; reg < 8; reg++)
			assert_int_equal(in8(serial_io, a, reg), in8(serial_io, b, reg));
		io8(serial_io, a, 3, 0x83);
		io8(serial_io, b, 3, 0x83);
		assert_int_equal(in8(serial_io, a, 0), in8(serial_io, b, 0));
		assert_int_equal(in8(serial_io, a, 1), in8(serial_io, b, 1));
		io8(serial_io, a, 3, 0x03);
		io8(serial_io, b, 3, 0x03);
	}
	for (int i = 0; i < 6; i++) /* "ello", then last_rx repeated */
		assert_int_equal(in8(serial_io, a, 0), in8(serial_io, b, 0));
	assert_int_equal(la.level, lb.level);
	io8(serial_io, a, 0, 'x');
	io8(serial_io, b, 0, 'x');
	assert_int_equal(tb.n, 1);
	assert_int_equal(tb.buf[0], 'x');
	assert_int_equal(in8(serial_io, a, 2), in8(serial_io, b, 2));

	/* Damaged input: b now holds a's state again. */
	load_ok(b, serial_load_v, &s);
	refuse_damaged(b, serial_load_v, serial_save_v, &s, "serial");
	/* Layout: version 4, ier lcr mcr scr dll dlm fcr msr_delta last_rx thri level, count 2, bytes. */
	refuse(b, serial_load_v, serial_save_v, &s, "IER", 4, 0xf0);
	refuse(b, serial_load_v, serial_save_v, &s, "MCR", 6, 0x20);
	refuse(b, serial_load_v, serial_save_v, &s, "FCR", 10, 0x06);
	refuse(b, serial_load_v, serial_save_v, &s, "MSR", 11, 0x10);
	refuse(b, serial_load_v, serial_save_v, &s, "flag", 13, 2);
	refuse(b, serial_load_v, serial_save_v, &s, "IRQ level", 14, 0);
	refuse(b, serial_load_v, serial_save_v, &s, "receive buffer", 16, 0x08); /* 0x0804 bytes */
	sbuf_free(&s);
	serial_destroy(a);
	serial_destroy(b);
}

/* ---- RTC ---- */

static time_t fixed_now(void *opaque)
{
	return *(time_t *)opaque;
}

static int rtc_load_v(void *d, struct sreader *in, struct err *e)
{
	return rtc_load(d, in, e);
}
static void rtc_save_v(const void *d, struct sbuf *out)
{
	rtc_save(d, out);
}

static uint8_t cmos_read(struct rtc *r, uint8_t reg)
{
	io8(rtc_io, r, 0, reg);
	return in8(rtc_io, r, 1);
}

static void cmos_write(struct rtc *r, uint8_t reg, uint8_t v)
{
	io8(rtc_io, r, 0, reg);
	io8(rtc_io, r, 1, v);
}

static void test_rtc_state(void **state)
{
	time_t now = 1700000000;
	struct line la = {0}, lb = {0};
	struct irq_line ia = {line_set, &la, 8}, ib = {line_set, &lb, 8};
	struct rtc *a = rtc_create(&ia, fixed_now, &now);
	struct rtc *b = rtc_create(&ib, fixed_now, &now);
	assert_non_null(a);
	assert_non_null(b);

	/* Set the guest's clock to another date (binary mode), RAM bytes, UIE, then an update cycle. */
	cmos_write(a, 0x0b, 0x86); /* SET, binary, 24h */
	cmos_write(a, 0x00, 30);
	cmos_write(a, 0x02, 15);
	cmos_write(a, 0x04, 9);
	cmos_write(a, 0x07, 24);
	cmos_write(a, 0x08, 12);
	cmos_write(a, 0x09, 99);
	cmos_write(a, 0x32, 19);
	cmos_write(a, 0x0b, 0x16); /* run, UIE */
	for (uint8_t i = 0x0e; i < 0x40; i++)
		cmos_write(a, i, (uint8_t)(i * 7));
	rtc_tick(a);
	now++;
	rtc_tick(a);
	assert_int_equal(la.level, 1);
	io8(rtc_io, a, 0, 0x21); /* index left pointing at a RAM byte */

	struct sbuf s;
	sbuf_init(&s);
	rtc_save(a, &s);
	load_ok(b, rtc_load_v, &s);
	assert_int_equal(lb.level, 1);
	assert_int_equal(lb.changes, 1);

	assert_int_equal(in8(rtc_io, a, 1), in8(rtc_io, b, 1)); /* the saved index */
	now += 100;
	for (unsigned reg = 0; reg < 0x80; reg++)
		assert_int_equal(cmos_read(a, (uint8_t)reg),
				 cmos_read(b, (uint8_t)reg)); /* C read and cleared */
	assert_int_equal(la.level, 0);
	assert_int_equal(lb.level, 0);
	now++;
	rtc_tick(a);
	rtc_tick(b);
	assert_int_equal(la.level, lb.level);
	assert_int_equal(cmos_read(a, 0x0c), cmos_read(b, 0x0c));

	load_ok(b, rtc_load_v, &s);
	refuse_damaged(b, rtc_load_v, rtc_save_v, &s, "rtc");
	/* Layout: version 4, cmos 128 (A at 4 + 10), index 132, offset 133..140, C 141, last 142..149, ticked
	 * 150, level 151. */
	refuse(b, rtc_load_v, rtc_save_v, &s, "register A", 4 + 0x0a, 0xa6);
	refuse(b, rtc_load_v, rtc_save_v, &s, "index", 132, 0x80);
	refuse(b, rtc_load_v, rtc_save_v, &s, "register C", 141, 0x40);
	refuse(b, rtc_load_v, rtc_save_v, &s, "flag", 150, 3);
	refuse(b, rtc_load_v, rtc_save_v, &s, "IRQ level", 151, 0);
	sbuf_free(&s);
	rtc_destroy(a);
	rtc_destroy(b);
}

/* ---- i8042 ---- */

static int i8042_load_v(void *d, struct sreader *in, struct err *e)
{
	return i8042_load(d, in, e);
}
static void i8042_save_v(const void *d, struct sbuf *out)
{
	i8042_save(d, out);
}

static void test_i8042_state(void **state)
{
	struct line la = {0}, lb = {0};
	struct reqs ra = {0}, rb = {0};
	struct irq_line ia = {line_set, &la, 1}, ib = {line_set, &lb, 1};
	struct vm_requester qa = {on_request, &ra}, qb = {on_request, &rb};
	struct i8042 *a = i8042_create(&ia, &qa);
	struct i8042 *b = i8042_create(&ib, &qb);
	assert_non_null(a);
	assert_non_null(b);

	io8(i8042_cmd_io, a, 0, 0x61); /* controller RAM byte 1 */
	io8(i8042_data_io, a, 0, 0x42);
	io8(i8042_data_io, a, 0, 0xf0); /* set scancode set: ACK, waiting for the parameter */
	io8(i8042_data_io, a, 0, 0x03);
	io8(i8042_data_io, a, 0, 0xed); /* set LEDs: ACK, waits */
	io8(i8042_cmd_io, a, 0, 0xd3);	/* AUX byte queued */
	io8(i8042_data_io, a, 0, 0x99);
	io8(i8042_cmd_io, a, 0, 0x21);			  /* RAM byte 1 queued */
	assert_int_equal(in8(i8042_data_io, a, 0), 0xfa); /* first ACK read */
	io8(i8042_cmd_io, a, 0, 0xd1);			  /* a controller command waiting for its byte */
	assert_int_equal(la.level, 1);

	struct sbuf s;
	sbuf_init(&s);
	i8042_save(a, &s);
	load_ok(b, i8042_load_v, &s);
	assert_int_equal(lb.level, 1);
	assert_int_equal(rb.n, 0);

	assert_int_equal(in8(i8042_cmd_io, a, 0), in8(i8042_cmd_io, b, 0));
	/* The pending D1 takes this byte on both (reset line kept high: no request). */
	io8(i8042_data_io, a, 0, 0xcf);
	io8(i8042_data_io, b, 0, 0xcf);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(in8(i8042_cmd_io, a, 0), in8(i8042_cmd_io, b, 0));
		assert_int_equal(in8(i8042_data_io, a, 0), in8(i8042_data_io, b, 0));
		assert_int_equal(la.level, lb.level);
	}
	/* The keyboard still waits for its LED parameter, and uses set 3. */
	io8(i8042_data_io, a, 0, 0x07);
	io8(i8042_data_io, b, 0, 0x07);
	io8(i8042_data_io, a, 0, 0xf0);
	io8(i8042_data_io, b, 0, 0xf0);
	io8(i8042_data_io, a, 0, 0x00);
	io8(i8042_data_io, b, 0, 0x00);
	for (int i = 0; i < 4; i++)
		assert_int_equal(in8(i8042_data_io, a, 0), in8(i8042_data_io, b, 0));
	assert_int_equal(rb.n, 0);

	load_ok(b, i8042_load_v, &s);
	refuse_damaged(b, i8042_load_v, i8042_save_v, &s, "i8042");
	/* Layout: version 4, ram 32, outport 36, pending 37, last_cmd 38, last_out 39, level 40, count 41,
	 * 2 bytes per queued byte (4 here), then kbd_pending, set, leds, last, scanning. */
	assert_int_equal(s.data[41], 4);
	refuse(b, i8042_load_v, i8042_save_v, &s, "pending controller", 37, 0xd5);
	refuse(b, i8042_load_v, i8042_save_v, &s, "flag", 38, 2);
	refuse(b, i8042_load_v, i8042_save_v, &s, "IRQ level", 40, 0);
	refuse(b, i8042_load_v, i8042_save_v, &s, "output queue", 41, 17);
	refuse(b, i8042_load_v, i8042_save_v, &s, "AUX", 43, 2);
	refuse(b, i8042_load_v, i8042_save_v, &s, "keyboard command", 50, 0xf4);
	refuse(b, i8042_load_v, i8042_save_v, &s, "scancode set", 51, 4);
	refuse(b, i8042_load_v, i8042_save_v, &s, "LEDs", 52, 8);
	sbuf_free(&s);
	i8042_destroy(a);
	i8042_destroy(b);
}

/* ---- ACPI PM ---- */

static int acpi_pm_load_v(void *d, struct sreader *in, struct err *e)
{
	return acpi_pm_load(d, in, e);
}
static void acpi_pm_save_v(const void *d, struct sbuf *out)
{
	acpi_pm_save(d, out);
}

static void test_acpi_pm_state(void **state)
{
	struct line la = {0}, lb = {0};
	struct reqs ra = {0}, rb = {0};
	struct irq_line ia = {line_set, &la, 9}, ib = {line_set, &lb, 9};
	struct vm_requester qa = {on_request, &ra}, qb = {on_request, &rb};
	struct acpi_pm *a = acpi_pm_create(&ia, &qa);
	struct acpi_pm *b = acpi_pm_create(&ib, &qb);
	assert_non_null(a);
	assert_non_null(b);

	io8(acpi_pm_evt_io, a, 3, 0x01); /* PWRBTN_EN */
	io8(acpi_pm_evt_io, a, 2, 0x21);
	io8(acpi_pm_cnt_io, a, 1, 0x14); /* SLP_TYP 5, no SLP_EN */
	acpi_pm_press_power_button(a);
	assert_int_equal(la.level, 1);

	struct sbuf s;
	sbuf_init(&s);
	acpi_pm_save(a, &s);
	load_ok(b, acpi_pm_load_v, &s);
	assert_int_equal(lb.level, 1);
	assert_int_equal(rb.n, 0);
	for (unsigned off = 0; off < 4; off++)
		assert_int_equal(in8(acpi_pm_evt_io, a, off), in8(acpi_pm_evt_io, b, off));
	for (unsigned off = 0; off < 2; off++)
		assert_int_equal(in8(acpi_pm_cnt_io, a, off), in8(acpi_pm_cnt_io, b, off));
	io8(acpi_pm_evt_io, a, 1, 0x01); /* acknowledge the button */
	io8(acpi_pm_evt_io, b, 1, 0x01);
	assert_int_equal(lb.level, 0);
	assert_int_equal(la.level, 0);

	load_ok(b, acpi_pm_load_v, &s);
	refuse_damaged(b, acpi_pm_load_v, acpi_pm_save_v, &s, "acpi_pm");
	/* Layout: version 4, sts 4..5, en 6..7, cnt 8..9, level 10. */
	refuse(b, acpi_pm_load_v, acpi_pm_save_v, &s, "PM1_STS", 4, 0x01);
	refuse(b, acpi_pm_load_v, acpi_pm_save_v, &s, "PM1_EN", 7, 0x81);
	refuse(b, acpi_pm_load_v, acpi_pm_save_v, &s, "PM1_CNT", 9, 0x34);
	refuse(b, acpi_pm_load_v, acpi_pm_save_v, &s, "SCI level", 10, 0);
	sbuf_free(&s);
	acpi_pm_destroy(a);
	acpi_pm_destroy(b);
}

/* ---- PCI host ---- */

static int pci_host_load_v(void *d, struct sreader *in, struct err *e)
{
	return pci_host_load(d, in, e);
}
static void pci_host_save_v(const void *d, struct sbuf *out)
{
	pci_host_save(d, out);
}

static void out32(struct pci_host *h, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_host_addr_io(h, 0, d, 4, true);
}

static uint32_t in32(void (*fn)(void *, uint64_t, uint8_t *, uint32_t, bool), struct pci_host *h)
{
	uint8_t d[4];
	fn(h, 0, d, 4, false);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void test_pci_host_state(void **state)
{
	struct pci_host *a = pci_host_create(NULL), *b = pci_host_create(NULL);
	assert_non_null(a);
	assert_non_null(b);
	out32(a, 0x80000004u); /* the bridge's command register */
	uint8_t cmd[2] = {0x47, 0x01};
	pci_host_data_io(a, 0, cmd, 2, true);
	out32(a, 0x80000008u); /* latch left at the class register */

	struct sbuf s;
	sbuf_init(&s);
	pci_host_save(a, &s);
	load_ok(b, pci_host_load_v, &s);
	assert_int_equal(in32(pci_host_addr_io, b), 0x80000008u);
	assert_int_equal(in32(pci_host_data_io, b), in32(pci_host_data_io, a));
	out32(b, 0x80000004u);
	out32(a, 0x80000004u);
	assert_int_equal(in32(pci_host_data_io, b), 0x0147u);
	assert_int_equal(in32(pci_host_data_io, b), in32(pci_host_data_io, a));

	load_ok(b, pci_host_load_v, &s);
	refuse_damaged(b, pci_host_load_v, pci_host_save_v, &s, "pci host");
	/* Layout: version 4, address 4..7, bridge config 8..263. */
	refuse(b, pci_host_load_v, pci_host_save_v, &s, "CONFIG_ADDRESS", 7, 0x81);
	refuse(b, pci_host_load_v, pci_host_save_v, &s, "register 0x00", 8, 0x34);
	refuse(b, pci_host_load_v, pci_host_save_v, &s, "register 0x04", 8 + 4, 0xff);
	refuse(b, pci_host_load_v, pci_host_save_v, &s, "register 0x3c", 8 + 0x3c, 0x0b);
	sbuf_free(&s);
	pci_host_destroy(a);
	pci_host_destroy(b);
}

/* ---- pvpanic (its PCI function's own state is tested in test_pci_dev.c) ---- */

static int pvpanic_load_v(void *d, struct sreader *in, struct err *e)
{
	return pvpanic_load(d, in, e);
}
static void pvpanic_save_v(const void *d, struct sbuf *out)
{
	pvpanic_save(d, out);
}

#define MEM32_START 0xc0000000ULL

static void test_pvpanic_state(void **state)
{
	struct pci_windows w = {0x1000, 0xffff, MEM32_START, 0xfebfffffULL, 1, 0};
	struct pci_host *ha = pci_host_create(&w), *hb = pci_host_create(&w);
	struct reqs ra = {0}, rb = {0};
	struct vm_requester qa = {on_request, &ra}, qb = {on_request, &rb};
	struct err e = {{0}};
	struct pvpanic *a = pvpanic_create(ha, PCI_DEVFN(5, 0), &qa, &e);
	struct pvpanic *b = pvpanic_create(hb, PCI_DEVFN(5, 0), &qb, &e);
	assert_non_null(a);
	assert_non_null(b);

	/* Move BAR 0 to 0xd0000000, enable memory decoding, report a crash kernel. */
	out32(ha, 0x80000000u | PCI_DEVFN(5, 0) << 8 | 0x10);
	uint8_t bar[4] = {0x00, 0x00, 0x00, 0xd0};
	pci_host_data_io(ha, 0, bar, 4, true);
	out32(ha, 0x80000000u | PCI_DEVFN(5, 0) << 8 | 0x04);
	uint8_t cmd[2] = {0x02, 0x00};
	pci_host_data_io(ha, 0, cmd, 2, true);
	uint8_t ev = PVPANIC_CRASH_LOADED;
	pci_host_mem32_window(ha, 0xd0000000ULL - MEM32_START, &ev, 1, true);
	assert_int_equal(pvpanic_events_seen(a), PVPANIC_CRASH_LOADED);

	struct sbuf s;
	sbuf_init(&s);
	pvpanic_save(a, &s);
	load_ok(b, pvpanic_load_v, &s);
	assert_int_equal(pvpanic_events_seen(b), PVPANIC_CRASH_LOADED);
	assert_int_equal(rb.n, 0);
	/* The register answers at the address the guest chose. */
	uint8_t v = 0;
	pci_host_mem32_window(hb, 0xd0000000ULL - MEM32_START, &v, 1, false);
	assert_int_equal(v, PVPANIC_EVENTS);
	v = PVPANIC_PANICKED;
	pci_host_mem32_window(hb, 0xd0000000ULL - MEM32_START, &v, 1, true);
	assert_int_equal(rb.n, 1);
	assert_int_equal(rb.last, VM_REQUEST_PANIC);

	load_ok(b, pvpanic_load_v, &s);
	refuse_damaged(b, pvpanic_load_v, pvpanic_save_v, &s, "");
	refuse(b, pvpanic_load_v, pvpanic_save_v, &s, "pvpanic: events", 4, 0x04);
	refuse(b, pvpanic_load_v, pvpanic_save_v, &s, "PCI function 05.0: saved state version", 5, 9);
	sbuf_free(&s);
	pvpanic_destroy(a);
	pvpanic_destroy(b);
	pci_host_destroy(ha);
	pci_host_destroy(hb);
}

/* ---- the exit port ---- */

static int exit_dev_load_v(void *d, struct sreader *in, struct err *e)
{
	return exit_dev_load(d, in, e);
}
static void exit_dev_save_v(const void *d, struct sbuf *out)
{
	exit_dev_save(d, out);
}

static void test_exit_dev_state(void **state)
{
	struct exit_dev *a = exit_dev_create(NULL), *b = exit_dev_create(NULL);
	struct sbuf s;
	sbuf_init(&s);
	exit_dev_save(a, &s);
	assert_int_equal(s.len, 4);
	load_ok(b, exit_dev_load_v, &s);
	refuse_damaged(b, exit_dev_load_v, exit_dev_save_v, &s, "exit port");
	sbuf_free(&s);
	exit_dev_destroy(a);
	exit_dev_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serial_state),   cmocka_unit_test(test_rtc_state),
	    cmocka_unit_test(test_i8042_state),	   cmocka_unit_test(test_acpi_pm_state),
	    cmocka_unit_test(test_pci_host_state), cmocka_unit_test(test_pvpanic_state),
	    cmocka_unit_test(test_exit_dev_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
