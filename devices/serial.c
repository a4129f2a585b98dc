/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (serial_io), the console thread (serial_rx_push) and the set-up thread. */
#include "serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Register offsets. */
#define REG_RBR_THR 0 /* DLL when LCR.DLAB */
#define REG_IER	    1 /* DLM when LCR.DLAB */
#define REG_IIR_FCR 2
#define REG_LCR	    3
#define REG_MCR	    4
#define REG_LSR	    5
#define REG_MSR	    6
#define REG_SCR	    7
#define NUM_REGS    8

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f /* bits 7:4 read 0: Linux probes bit 6 to spot XScale UARTs */

#define IIR_NO_INT 0x01
#define IIR_MSI	   0x00
#define IIR_THRI   0x02
#define IIR_RDI	   0x04
#define IIR_RLSI   0x06
#define IIR_FIFO   0xc0 /* both bits set: a 16550A with working FIFOs */

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_KEEP_MASK 0xc9 /* enable, DMA mode, trigger level; the clear bits self-clear */

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS	 0x10
#define MSR_DSR	 0x20
#define MSR_RI	 0x40
#define MSR_DCD	 0x80

#define MSR_DELTAS 0x0f /* MSR bits 3:0 */

#define SERIAL_STATE_VERSION 1

struct serial {
	pthread_mutex_t lock;
	struct irq_line irq;
	serial_tx_fn tx;
	serial_rx_space_fn rx_space;
	void *opaque;

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t msr_delta; /* MSR bits 3:0, cleared by reading MSR */
	uint8_t last_rx;   /* RBR reads this when the buffer is empty */
	bool thr_ipending; /* THR-empty interrupt pending (not yet acknowledged) */
	bool rx_blocked;   /* a push was cut short: owe the writer an rx_space call */
	int irq_level;	   /* last level driven onto the line */

	uint8_t rx[SERIAL_RX_BUF_SIZE];
	size_t rx_head, rx_count;
};

/* Accumulated while the lock is held, acted on after it is dropped. */
struct pending {
	uint8_t tx[8];
	size_t ntx;
	bool rx_space;
};

static bool loopback(const struct serial *s)
{
	return s->mcr & MCR_LOOP;
}

/* Modem status inputs (MSR 7:4): wired to MCR outputs in loopback, else a present, ready peer. */
static uint8_t msr_lines(const struct serial *s)
{
	if (!loopback(s))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	uint8_t m = 0;
	if (s->mcr & MCR_RTS)
		m |= MSR_CTS;
	if (s->mcr & MCR_DTR)
		m |= MSR_DSR;
	if (s->mcr & MCR_OUT1)
		m |= MSR_RI;
	if (s->mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

static bool fifo_enabled(const struct serial *s)
{
	return s->fcr & FCR_ENABLE;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t iir_id(const struct serial *s)
{
	/* Receiver line status (IIR_RLSI) never fires: backpressure means no overrun, and no line errors. */
	if ((s->ier & IER_ERBFI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_ETBEI) && s->thr_ipending)
		return IIR_THRI;
	if ((s->ier & IER_EDSSI) && s->msr_delta)
		return IIR_MSI;
	return IIR_NO_INT;
}

static void update_irq(struct serial *s)
{
	/* On PCs OUT2 gates the UART's interrupt output onto the ISA line. */
	int level = iir_id(s) != IIR_NO_INT && (s->mcr & MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

static size_t rx_space_left(const struct serial *s)
{
	return SERIAL_RX_BUF_SIZE - s->rx_count;
}

static size_t rx_put(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = len < rx_space_left(s) ? len : rx_space_left(s);
	for (size_t i = 0; i < n; i++)
		s->rx[(s->rx_head + s->rx_count + i) % SERIAL_RX_BUF_SIZE] = buf[i];
	s->rx_count += n;
	return n;
}

/* Owe the blocked writer a wake-up once half the buffer is free (hysteresis: not one per byte). */
static void check_rx_space(struct serial *s, struct pending *p)
{
	if (s->rx_blocked && !loopback(s) && s->rx_count <= SERIAL_RX_BUF_SIZE / 2) {
		s->rx_blocked = false;
		p->rx_space = true;
	}
}

static void rx_clear(struct serial *s, struct pending *p)
{
	s->rx_head = 0;
	s->rx_count = 0;
	check_rx_space(s, p);
}

static uint8_t reg_read(struct serial *s, unsigned reg, struct pending *p)
{
	uint8_t v;

	switch (reg) {
	case REG_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_count) {
			s->last_rx = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_BUF_SIZE;
			s->rx_count--;
			check_rx_space(s, p);
		}
		return s->last_rx;
	case REG_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case REG_IIR_FCR:
		v = iir_id(s);
		/* Reading IIR acknowledges a THR-empty interrupt it reports. */
		if (v == IIR_THRI)
			s->thr_ipending = false;
		return v | (fifo_enabled(s) ? IIR_FIFO : 0);
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		/* Transmission is instant: THR and the shift register are always empty. */
		return LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
	case REG_MSR:
		v = msr_lines(s) | s->msr_delta;
		s->msr_delta = 0;
		return v;
	case REG_SCR:
		return s->scr;
	}
	return 0xff;
}

static void write_mcr(struct serial *s, uint8_t v, struct pending *p)
{
	uint8_t old = msr_lines(s);
	s->mcr = v & MCR_MASK;
	uint8_t now = msr_lines(s);
	uint8_t changed = old ^ now;
	if (changed & MSR_CTS)
		s->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		s->msr_delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		s->msr_delta |= MSR_TERI;
	if (changed & MSR_DCD)
		s->msr_delta |= MSR_DDCD;
	/* Leaving loopback reconnects the host side, which may be waiting. */
	check_rx_space(s, p);
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v, struct pending *p)
{
	switch (reg) {
	case REG_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (loopback(s))
			rx_put(s, &v, 1); /* dropped when full: loopback has no host to push back on */
		else if (p->ntx < sizeof(p->tx))
			p->tx[p->ntx++] = v;
		/* Sent at once, so THR is empty again: the write both clears and re-arms THRI. */
		s->thr_ipending = true;
		break;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		v &= IER_MASK;
		/* Enabling ETBEI while THR is empty raises THRI (THR is always empty here). */
		if ((v ^ s->ier) & IER_ETBEI)
			s->thr_ipending = v & IER_ETBEI;
		s->ier = v;
		break;
	case REG_IIR_FCR:
		/* Changing the enable bit empties both FIFOs; other bits count only while enabled. */
		if ((v ^ s->fcr) & FCR_ENABLE)
			rx_clear(s, p);
		if (v & FCR_ENABLE) {
			if (v & FCR_CLEAR_RX)
				rx_clear(s, p);
			/* FCR_CLEAR_TX: the transmitter is always empty. */
			s->fcr = v & FCR_KEEP_MASK;
		} else {
			s->fcr = 0;
		}
		break;
	case REG_LCR:
		s->lcr = v;
		break;
	case REG_MCR:
		write_mcr(s, v, p);
		break;
	case REG_LSR:
	case REG_MSR:
		break; /* factory test registers: writes ignored */
	case REG_SCR:
		s->scr = v;
		break;
	}
}

static void finish(struct serial *s, struct pending *p)
{
	if (p->ntx && s->tx)
		s->tx(s->opaque, p->tx, p->ntx);
	if (p->rx_space && s->rx_space)
		s->rx_space(s->opaque);
}

void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;
	struct pending p = {.ntx = 0};

	if (len > 8)
		len = 8;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t reg = off + i;
		if (reg < off || reg >= NUM_REGS) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (is_write)
			reg_write(s, (unsigned)reg, data[i], &p);
		else
			data[i] = reg_read(s, (unsigned)reg, &p);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	finish(s, &p);
}

size_t serial_rx_push(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (!loopback(s)) /* in loopback the receiver hears only the transmitter */
		n = rx_put(s, buf, len);
	if (n < len)
		s->rx_blocked = true;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void reset_locked(struct serial *s, struct pending *p)
{
	s->ier = 0;
	s->lcr = 0;
	s->mcr = 0;
	s->scr = 0;
	s->dll = 0x0c; /* 9600 baud */
	s->dlm = 0;
	s->fcr = 0;
	s->msr_delta = 0;
	s->last_rx = 0;
	s->thr_ipending = false;
	rx_clear(s, p);
	update_irq(s);
}

void serial_reset(struct serial *s)
{
	struct pending p = {.ntx = 0};

	pthread_mutex_lock(&s->lock);
	reset_locked(s, &p);
	pthread_mutex_unlock(&s->lock);
	finish(s, &p);
}

struct serial *serial_create(const struct irq_line *irq, serial_tx_fn tx, serial_rx_space_fn rx_space,
			     void *opaque)
{
	struct serial *s = calloc(1, sizeof(*s));
	struct pending p = {.ntx = 0};

	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		return NULL;
	}
	if (irq)
		s->irq = *irq;
	s->tx = tx;
	s->rx_space = rx_space;
	s->opaque = opaque;
	/* The line starts low; no set_level call is needed for it. */
	reset_locked(s, &p);
	return s;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- saved state ---- */

/*
 * Not saved: rx_blocked (a promise to the host-side writer of this process;
 * the destination's writer starts unblocked) and the callbacks.
 */
void serial_save(const struct serial *cs, struct sbuf *out)
{
	struct serial *s = (struct serial *)cs; /* the lock only */

	pthread_mutex_lock(&s->lock);
	sbuf_u32(out, SERIAL_STATE_VERSION);
	sbuf_u8(out, s->ier);
	sbuf_u8(out, s->lcr);
	sbuf_u8(out, s->mcr);
	sbuf_u8(out, s->scr);
	sbuf_u8(out, s->dll);
	sbuf_u8(out, s->dlm);
	sbuf_u8(out, s->fcr);
	sbuf_u8(out, s->msr_delta);
	sbuf_u8(out, s->last_rx);
	sbuf_u8(out, s->thr_ipending);
	sbuf_u8(out, (uint8_t)s->irq_level);
	sbuf_u16(out, (uint16_t)s->rx_count);
	for (size_t i = 0; i < s->rx_count; i++)
		sbuf_u8(out, s->rx[(s->rx_head + i) % SERIAL_RX_BUF_SIZE]);
	pthread_mutex_unlock(&s->lock);
}

int serial_load(struct serial *s, struct sreader *in, struct err *e)
{
	struct serial t; /* the registers only: no lock, no callbacks */
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "serial: saved state truncated");
	if (ver != SERIAL_STATE_VERSION)
		return err_set(e, -EINVAL, "serial: saved state version %u, this build reads %u", ver,
			       SERIAL_STATE_VERSION);
	memset(&t, 0, sizeof(t));
	t.ier = sreader_u8(in);
	t.lcr = sreader_u8(in);
	t.mcr = sreader_u8(in);
	t.scr = sreader_u8(in);
	t.dll = sreader_u8(in);
	t.dlm = sreader_u8(in);
	t.fcr = sreader_u8(in);
	t.msr_delta = sreader_u8(in);
	t.last_rx = sreader_u8(in);
	uint8_t thri = sreader_u8(in), level = sreader_u8(in);
	t.rx_count = sreader_u16(in);
	if (!in->bad && t.rx_count <= SERIAL_RX_BUF_SIZE)
		sreader_get(in, t.rx, t.rx_count);
	if (in->bad)
		return err_set(e, -EINVAL, "serial: saved state truncated");
	t.thr_ipending = thri == 1;
	t.irq_level = level;
	if (t.rx_count > SERIAL_RX_BUF_SIZE)
		return err_set(e, -EINVAL, "serial: receive buffer holds %zu bytes, more than %d", t.rx_count,
			       SERIAL_RX_BUF_SIZE);
	if (t.ier & ~IER_MASK)
		return err_set(e, -EINVAL, "serial: IER 0x%02x has reserved bits set", t.ier);
	if (t.mcr & ~MCR_MASK)
		return err_set(e, -EINVAL, "serial: MCR 0x%02x has reserved bits set", t.mcr);
	if (t.fcr & ~FCR_KEEP_MASK || (t.fcr && !(t.fcr & FCR_ENABLE)))
		return err_set(e, -EINVAL, "serial: FCR 0x%02x is not a value the FIFO control keeps", t.fcr);
	if (t.msr_delta & ~MSR_DELTAS)
		return err_set(e, -EINVAL, "serial: MSR deltas 0x%02x beyond bits 3:0", t.msr_delta);
	if (thri > 1 || level > 1)
		return err_set(e, -EINVAL, "serial: a flag (THRI pending %u, IRQ level %u) is not 0 or 1",
			       thri, level);
	/* The line level follows from the registers: one that does not is a state the model cannot be in. */
	if (level != (iir_id(&t) != IIR_NO_INT && (t.mcr & MCR_OUT2)))
		return err_set(e, -EINVAL, "serial: IRQ level %u contradicts the saved registers", level);

	pthread_mutex_lock(&s->lock);
	s->ier = t.ier;
	s->lcr = t.lcr;
	s->mcr = t.mcr;
	s->scr = t.scr;
	s->dll = t.dll;
	s->dlm = t.dlm;
	s->fcr = t.fcr;
	s->msr_delta = t.msr_delta;
	s->last_rx = t.last_rx;
	s->thr_ipending = t.thr_ipending;
	memcpy(s->rx, t.rx, t.rx_count);
	s->rx_head = 0;
	s->rx_count = t.rx_count;
	/*
	 * The only callback: the line goes to the saved level if it is not there
	 * already (a fresh device's is low). A blocked host writer keeps waiting
	 * for the guest to drain the buffer; rx_space is not called here.
	 */
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
