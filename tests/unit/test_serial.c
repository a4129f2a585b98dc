/* SPDX-License-Identifier: MIT */
/* Unit tests for the 16550A UART model (devices/serial.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial.h"
#include "vmm/arch/x86/layout.h"

struct fake {
	int level;
	int set_calls;
	unsigned last_gsi;
	uint8_t out[4096];
	size_t nout;
	int tx_calls;
	int rx_space_calls;
};

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake *f = opaque;
	f->level = level;
	f->last_gsi = gsi;
	f->set_calls++;
}

static void fake_tx(void *opaque, const uint8_t *buf, size_t len)
{
	struct fake *f = opaque;
	f->tx_calls++;
	for (size_t i = 0; i < len && f->nout < sizeof(f->out); i++)
		f->out[f->nout++] = buf[i];
}

static void fake_rx_space(void *opaque)
{
	struct fake *f = opaque;
	f->rx_space_calls++;
}

struct ctx {
	struct fake f;
	struct irq_line irq;
	struct serial *s;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->irq = (struct irq_line){.set_level = fake_set_level, .opaque = &c->f, .gsi = IRQ_COM1};
	c->s = serial_create(&c->irq, fake_tx, fake_rx_space, &c->f);
	assert_non_null(c->s);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	serial_destroy(c->s);
	free(c);
	return 0;
}

static uint8_t rd(struct serial *s, unsigned off)
{
	uint8_t v = 0;
	serial_io(s, off, &v, 1, false);
	return v;
}

static void wr(struct serial *s, unsigned off, uint8_t v)
{
	serial_io(s, off, &v, 1, true);
}

static void test_power_on_state(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(rd(c->s, 1), 0x00); /* IER */
	assert_int_equal(rd(c->s, 2), 0x01); /* IIR: no interrupt, FIFOs off */
	assert_int_equal(rd(c->s, 3), 0x00); /* LCR */
	assert_int_equal(rd(c->s, 4), 0x00); /* MCR */
	assert_int_equal(rd(c->s, 5), 0x60); /* LSR: THRE | TEMT */
	assert_int_equal(rd(c->s, 6), 0xb0); /* MSR: DCD | DSR | CTS */
	assert_int_equal(c->f.set_calls, 0);
}

static void test_transmit(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 0, 'h');
	wr(c->s, 0, 'i');
	assert_int_equal(c->f.nout, 2);
	assert_memory_equal(c->f.out, "hi", 2);
	assert_int_equal(rd(c->s, 5) & 0x60, 0x60);
	assert_int_equal(c->f.set_calls, 0); /* IER = 0: no interrupt */
}

static void test_thre_interrupt(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 4, 0x08); /* OUT2 */
	assert_int_equal(c->f.set_calls, 0);
	wr(c->s, 1, 0x02); /* ETBEI 0->1 while THR empty */
	assert_int_equal(c->f.level, 1);
	assert_int_equal(c->f.last_gsi, IRQ_COM1);
	assert_int_equal(c->f.set_calls, 1);
	assert_int_equal(rd(c->s, 2), 0x02); /* reading IIR acknowledges THRI */
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->s, 2), 0x01);
	wr(c->s, 0, 'x'); /* THR written: instantly empty again */
	assert_int_equal(c->f.level, 1);
	wr(c->s, 0, 'y'); /* still pending: no redundant set_level */
	assert_int_equal(c->f.set_calls, 3);
	wr(c->s, 1, 0x00); /* ETBEI off clears */
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->s, 2), 0x01);
	assert_int_equal(c->f.set_calls, 4);
}

/* Linux's serial8250_do_startup checks that THRE re-asserts when ETBEI is toggled. */
static void test_linux_thre_retest(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 1, 0x02);
	uint8_t iir1 = rd(c->s, 2);
	wr(c->s, 1, 0x00);
	wr(c->s, 1, 0x02);
	uint8_t iir = rd(c->s, 2);
	wr(c->s, 1, 0x00);
	assert_false(iir1 & 1);
	assert_false(iir & 1);
}

static void test_out2_gates_irq(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 1, 0x02);
	assert_int_equal(rd(c->s, 2) & 0x0f, 0x02);
	wr(c->s, 0, 'a'); /* re-arm */
	assert_int_equal(c->f.set_calls, 0);
	wr(c->s, 4, 0x08);
	assert_int_equal(c->f.level, 1);
	wr(c->s, 4, 0x00);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(c->f.set_calls, 2);
}

static void test_receive(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 4, 0x0b); /* DTR | RTS | OUT2 */
	wr(c->s, 1, 0x01); /* ERBFI */
	assert_int_equal(c->f.set_calls, 0);
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"abc", 3), 3);
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->s, 5) & 0x01, 0x01);
	assert_int_equal(rd(c->s, 2), 0x04);
	assert_int_equal(rd(c->s, 0), 'a');
	assert_int_equal(rd(c->s, 0), 'b');
	assert_int_equal(c->f.level, 1);
	assert_int_equal(rd(c->s, 0), 'c');
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->s, 5), 0x60);
	assert_int_equal(rd(c->s, 2), 0x01);
	assert_int_equal(c->f.set_calls, 2);
	assert_int_equal(serial_rx_push(c->s, NULL, 0), 0);
}

static void test_priority(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 4, 0x08);
	wr(c->s, 1, 0x0f);
	wr(c->s, 4, 0x18); /* loopback: modem lines change, so MSR deltas are pending */
	wr(c->s, 0, 'z');  /* loops back into the receiver, and THRI is pending too */
	assert_int_equal(rd(c->s, 2), 0x04);
	assert_int_equal(rd(c->s, 0), 'z');
	assert_int_equal(rd(c->s, 2), 0x02);
	assert_int_equal(rd(c->s, 2), 0x00); /* modem status last */
	assert_int_equal(c->f.level, 1);
	assert_int_not_equal(rd(c->s, 6) & 0x0f, 0);
	assert_int_equal(rd(c->s, 2), 0x01);
	assert_int_equal(c->f.level, 0);
}

static void test_loopback(void **state)
{
	struct ctx *c = *state;
	/* Linux's autoconfig loopback check. */
	wr(c->s, 4, 0x10 | 0x08 | 0x02);
	assert_int_equal(rd(c->s, 6) & 0xf0, 0x90);
	wr(c->s, 4, 0x10 | 0x01 | 0x04);
	uint8_t msr = rd(c->s, 6);
	assert_int_equal(msr & 0xf0, 0x60); /* DSR <- DTR, RI <- OUT1 */
	assert_int_equal(msr & 0x0f, 0x0b); /* DCTS, DDSR, DDCD changed; RI rose: no TERI */
	wr(c->s, 4, 0x10);
	assert_int_equal(rd(c->s, 6), 0x06); /* DSR fell (DDSR), RI fell (TERI) */
	wr(c->s, 0, 'L');
	assert_int_equal(c->f.nout, 0); /* not transmitted */
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"h", 1), 0);
	assert_int_equal(rd(c->s, 5) & 1, 1);
	assert_int_equal(rd(c->s, 0), 'L');
	wr(c->s, 4, 0x00);
	assert_int_equal(rd(c->s, 6) & 0xf0, 0xb0);
	/* Leaving loopback owes the refused host writer a retry. */
	assert_int_equal(c->f.rx_space_calls, 1);
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"h", 1), 1);
}

static void test_dlab(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 1, 0x05);
	wr(c->s, 3, 0x83);
	wr(c->s, 0, 0x01);
	wr(c->s, 1, 0x02);
	assert_int_equal(rd(c->s, 0), 0x01);
	assert_int_equal(rd(c->s, 1), 0x02);
	assert_int_equal(c->f.nout, 0); /* DLL write is not a THR write */
	wr(c->s, 3, 0x03);
	assert_int_equal(rd(c->s, 1), 0x05);
	assert_int_equal(rd(c->s, 3), 0x03);
}

static void test_ier_mask_and_scr(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 1, 0xff);
	assert_int_equal(rd(c->s, 1), 0x0f);
	wr(c->s, 7, 0x5a);
	assert_int_equal(rd(c->s, 7), 0x5a);
	wr(c->s, 4, 0xff);
	assert_int_equal(rd(c->s, 4), 0x1f);
}

static void test_fifo(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 2, 0x01);
	assert_int_equal(rd(c->s, 2), 0xc1);
	wr(c->s, 2, 0xc7);
	assert_int_equal(rd(c->s, 2), 0xc1);
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"xy", 2), 2);
	wr(c->s, 2, 0xc3); /* clear receiver */
	assert_int_equal(rd(c->s, 5) & 1, 0);
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"xy", 2), 2);
	wr(c->s, 2, 0x00); /* disabling empties the FIFOs */
	assert_int_equal(rd(c->s, 5) & 1, 0);
	assert_int_equal(rd(c->s, 2), 0x01);
	/* While disabled the clear bits do nothing. */
	assert_int_equal(serial_rx_push(c->s, (const uint8_t *)"q", 1), 1);
	wr(c->s, 2, 0x02);
	assert_int_equal(rd(c->s, 0), 'q');
}

static void test_backpressure(void **state)
{
	struct ctx *c = *state;
	static uint8_t buf[1500];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(serial_rx_push(c->s, buf, sizeof(buf)), SERIAL_RX_BUF_SIZE);
	assert_int_equal(serial_rx_push(c->s, buf, 1), 0);
	for (size_t i = 0; i < SERIAL_RX_BUF_SIZE / 2 - 1; i++)
		assert_int_equal(rd(c->s, 0), (uint8_t)i);
	assert_int_equal(c->f.rx_space_calls, 0);
	assert_int_equal(rd(c->s, 0), (uint8_t)(SERIAL_RX_BUF_SIZE / 2 - 1));
	assert_int_equal(c->f.rx_space_calls, 1);
	assert_int_equal(rd(c->s, 0), (uint8_t)(SERIAL_RX_BUF_SIZE / 2));
	assert_int_equal(c->f.rx_space_calls, 1);
	/* Never OE: the line status shows only DR/THRE/TEMT. */
	assert_int_equal(rd(c->s, 5), 0x61);
	/* The ring wraps correctly. */
	assert_int_equal(serial_rx_push(c->s, buf + 1024, 476), 476);
	for (size_t i = SERIAL_RX_BUF_SIZE / 2 + 1; i < sizeof(buf); i++)
		assert_int_equal(rd(c->s, 0), (uint8_t)i);
	assert_int_equal(rd(c->s, 5), 0x60);
	/* A full buffer emptied by FCR also wakes the writer. */
	assert_int_equal(serial_rx_push(c->s, buf, sizeof(buf)), SERIAL_RX_BUF_SIZE);
	wr(c->s, 2, 0x01);
	assert_int_equal(c->f.rx_space_calls, 2);
	/* ... and so does a reset. */
	assert_int_equal(serial_rx_push(c->s, buf, sizeof(buf)), SERIAL_RX_BUF_SIZE);
	serial_reset(c->s);
	assert_int_equal(c->f.rx_space_calls, 3);
}

static void test_wide_and_out_of_range(void **state)
{
	struct ctx *c = *state;
	uint8_t d[8];
	for (uint64_t off = 0; off < 20; off++) {
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(d, 0, sizeof(d));
			serial_io(c->s, off, d, len, false);
			for (uint32_t i = 0; i < len; i++)
				if (off + i >= 8)
					assert_int_equal(d[i], 0xff);
		}
	}
	/* A two-byte write at offset 3 sets LCR and MCR, like two ISA byte cycles. */
	uint8_t w[2] = {0x03, 0x0b};
	serial_io(c->s, 3, w, 2, true);
	assert_int_equal(rd(c->s, 3), 0x03);
	assert_int_equal(rd(c->s, 4), 0x0b);
	/* Huge offsets and lengths do not wrap or overrun. */
	memset(d, 0, sizeof(d));
	serial_io(c->s, UINT64_MAX - 2, d, 8, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 0xff);
	serial_io(c->s, UINT64_MAX, d, 8, true);
	uint8_t big[16];
	memset(big, 0xaa, sizeof(big));
	serial_io(c->s, 0, big, 4096, false); /* clamped to 8 bytes */
	assert_int_equal(big[8], 0xaa);
	/* Hammer every offset with writes of every size: must not crash. */
	for (uint64_t off = 0; off < 8; off++)
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(d, 0xff, sizeof(d));
			serial_io(c->s, off, d, len, true);
			serial_io(c->s, off, d, len, false);
		}
}

static void test_reset(void **state)
{
	struct ctx *c = *state;
	wr(c->s, 4, 0x08);
	wr(c->s, 1, 0x02);
	assert_int_equal(c->f.level, 1);
	wr(c->s, 7, 0x11);
	serial_reset(c->s);
	assert_int_equal(c->f.level, 0);
	assert_int_equal(rd(c->s, 7), 0);
	assert_int_equal(rd(c->s, 1), 0);
	assert_int_equal(rd(c->s, 2), 0x01);
}

static void test_null_callbacks(void **state)
{
	(void)state;
	struct serial *s = serial_create(NULL, NULL, NULL, NULL);
	assert_non_null(s);
	wr(s, 4, 0x08);
	wr(s, 1, 0x03);
	wr(s, 0, 'a');
	assert_int_equal(serial_rx_push(s, (const uint8_t *)"abc", 3), 3);
	assert_int_equal(rd(s, 0), 'a');
	serial_reset(s);
	serial_destroy(s);
	serial_destroy(NULL);
}

/* A console thread pushing with retry-on-rx_space against a guest draining RBR keeps every byte in order. */
struct stream {
	struct serial *s;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int wakeups;
	size_t total;
};

static void stream_rx_space(void *opaque)
{
	struct stream *st = opaque;
	pthread_mutex_lock(&st->m);
	st->wakeups++;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->m);
}

static void *producer(void *arg)
{
	struct stream *st = arg;
	uint8_t chunk[300];
	size_t sent = 0;
	while (sent < st->total) {
		size_t n = st->total - sent < sizeof(chunk) ? st->total - sent : sizeof(chunk);
		for (size_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)((sent + i) * 7);
		size_t off = 0;
		while (off < n) {
			pthread_mutex_lock(&st->m);
			int seen = st->wakeups;
			pthread_mutex_unlock(&st->m);
			size_t got = serial_rx_push(st->s, chunk + off, n - off);
			off += got;
			if (off < n) {
				pthread_mutex_lock(&st->m);
				while (st->wakeups == seen)
					pthread_cond_wait(&st->cv, &st->m);
				pthread_mutex_unlock(&st->m);
			}
		}
		sent += n;
	}
	return NULL;
}

static void test_threaded_stream(void **state)
{
	(void)state;
	struct stream st = {.total = 200000};
	pthread_mutex_init(&st.m, NULL);
	pthread_cond_init(&st.cv, NULL);
	st.s = serial_create(NULL, NULL, stream_rx_space, &st);
	assert_non_null(st.s);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, &st), 0);
	size_t got = 0;
	while (got < st.total) {
		if (!(rd(st.s, 5) & 1))
			continue;
		assert_int_equal(rd(st.s, 0), (uint8_t)(got * 7));
		got++;
	}
	pthread_join(t, NULL);
	assert_int_equal(rd(st.s, 5) & 1, 0);
	serial_destroy(st.s);
	pthread_cond_destroy(&st.cv);
	pthread_mutex_destroy(&st.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_power_on_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_linux_thre_retest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out2_gates_irq, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_priority, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dlab, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ier_mask_and_scr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wide_and_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test(test_null_callbacks),
	    cmocka_unit_test(test_threaded_stream),
	};
	return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
