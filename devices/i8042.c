/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (i8042_data_io, i8042_cmd_io) and the set-up thread (create, reset, destroy). */
#include "i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Status register (read at the command port). */
#define STR_OBF	    0x01
#define STR_SYS	    0x04
#define STR_CMD	    0x08 /* the last write went to the command port */
#define STR_UNLOCK  0x10 /* keylock off; Linux warns when it is clear */
#define STR_AUXDATA 0x20

/* Command byte (controller RAM byte 0). */
#define CTR_KBDINT 0x01
#define CTR_SYS	   0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40
/* As a PC BIOS leaves it: translation on, keyboard interrupt on, AUX off. */
#define CTR_DEFAULT (CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT)

#define OUTPORT_RESET	0x01 /* active low: clearing it resets the CPU */
#define OUTPORT_DEFAULT 0xcf

#define KBD_ACK	   0xfa
#define KBD_RESEND 0xfe
#define KBD_BAT_OK 0xaa

#define QUEUE_SIZE 16

#define I8042_STATE_VERSION 1

struct out_byte {
	uint8_t val;
	bool aux;
};

struct i8042 {
	pthread_mutex_t lock;
	struct irq_line irq;
	struct vm_requester req;

	uint8_t ram[32]; /* ram[0] is the command byte */
	uint8_t outport;
	uint8_t pending;  /* controller command waiting for its data-port byte, or 0 */
	bool last_cmd;	  /* STR_CMD */
	uint8_t last_out; /* what the data port reads when the queue is empty */
	int irq_level;

	struct out_byte q[QUEUE_SIZE];
	unsigned q_head, q_count;

	/* The keyboard behind the controller. */
	uint8_t kbd_pending; /* keyboard command waiting for its parameter, or 0 */
	uint8_t kbd_set;     /* scancode set 1..3 */
	uint8_t kbd_leds;
	uint8_t kbd_last; /* last byte sent, for the resend command */
	bool kbd_scanning;
};

static void queue(struct i8042 *k, uint8_t val, bool aux)
{
	if (k->q_count == QUEUE_SIZE)
		return; /* a guest that never reads loses replies, as with a real 1-byte buffer */
	k->q[(k->q_head + k->q_count) % QUEUE_SIZE] = (struct out_byte){val, aux};
	k->q_count++;
}

static void kbd_send(struct i8042 *k, uint8_t val)
{
	k->kbd_last = val;
	queue(k, val, false);
}

static void update_irq(struct i8042 *k)
{
	int level = k->q_count && !k->q[k->q_head].aux && (k->ram[0] & CTR_KBDINT);
	if (level != k->irq_level) {
		k->irq_level = level;
		irq_line_set(&k->irq, level);
	}
}

static uint8_t status(const struct i8042 *k)
{
	uint8_t s = STR_UNLOCK;
	if (k->q_count) {
		s |= STR_OBF;
		if (k->q[k->q_head].aux)
			s |= STR_AUXDATA;
	}
	if (k->ram[0] & CTR_SYS)
		s |= STR_SYS;
	if (k->last_cmd)
		s |= STR_CMD;
	return s; /* IBF is never set: every write is consumed at once */
}

static void kbd_defaults(struct i8042 *k)
{
	k->kbd_pending = 0;
	k->kbd_set = 2;
	k->kbd_scanning = true;
}

static void kbd_param(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	/* Scancode-set numbers as they look through the controller's translation. */
	static const uint8_t xlated_set[4] = {0, 0x43, 0x41, 0x3f};

	switch (cmd) {
	case 0xed: /* set LEDs */
		k->kbd_leds = v & 7;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf3: /* typematic rate: nothing repeats here */
		kbd_send(k, KBD_ACK);
		break;
	case 0xf0: /* get (0) or set (1..3) the scancode set */
		if (v > 3) {
			kbd_send(k, KBD_RESEND);
			break;
		}
		kbd_send(k, KBD_ACK);
		if (v == 0)
			kbd_send(k, (k->ram[0] & CTR_XLATE) ? xlated_set[k->kbd_set] : k->kbd_set);
		else
			k->kbd_set = v;
		break;
	}
}

/* A byte the guest sends to the keyboard (a data-port write with no controller command pending). */
static void kbd_write(struct i8042 *k, uint8_t v)
{
	/* Parameters are below 0x80; a command byte instead aborts the wait, as on real keyboards. */
	if (k->kbd_pending && v < 0x80) {
		uint8_t cmd = k->kbd_pending;
		k->kbd_pending = 0;
		kbd_param(k, cmd, v);
		return;
	}
	k->kbd_pending = 0;
	switch (v) {
	case 0xff: /* reset and self-test */
		kbd_defaults(k);
		k->kbd_leds = 0;
		kbd_send(k, KBD_ACK);
		kbd_send(k, KBD_BAT_OK);
		break;
	case 0xfe: /* resend the last byte */
		kbd_send(k, k->kbd_last);
		break;
	case 0xf6: /* set defaults */
		kbd_defaults(k);
		kbd_send(k, KBD_ACK);
		break;
	case 0xf5: /* disable scanning (and set defaults) */
		kbd_defaults(k);
		k->kbd_scanning = false;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf4: /* enable scanning */
		k->kbd_scanning = true;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf2: /* identify: an MF2 keyboard, second byte as translated or not */
		kbd_send(k, KBD_ACK);
		kbd_send(k, 0xab);
		kbd_send(k, (k->ram[0] & CTR_XLATE) ? 0x41 : 0x83);
		break;
	case 0xee: /* echo */
		kbd_send(k, 0xee);
		break;
	case 0xed:
	case 0xf0:
	case 0xf3:
		k->kbd_pending = v;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf7:
	case 0xf8:
	case 0xf9:
	case 0xfa:
	case 0xfb:
	case 0xfc:
	case 0xfd: /* scancode-set-3 key attributes: accepted, meaningless here */
		kbd_send(k, KBD_ACK);
		break;
	default:
		kbd_send(k, KBD_RESEND);
		break;
	}
}

/* Returns true when the guest asked for a CPU reset. */
static bool data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;
	bool reset = false;

	k->pending = 0;
	k->last_cmd = false;
	if (cmd >= 0x60 && cmd <= 0x7f) {
		k->ram[cmd & 0x1f] = v;
		return false;
	}
	switch (cmd) {
	case 0xd1: /* write output port */
		k->outport = v;
		reset = !(v & OUTPORT_RESET);
		break;
	case 0xd2: /* write keyboard output buffer */
		queue(k, v, false);
		break;
	case 0xd3: /* write AUX output buffer: Linux's AUX loopback test */
		queue(k, v, true);
		break;
	case 0xd4: /* write to the AUX device: nothing is plugged in */
		queue(k, KBD_RESEND, true);
		break;
	default:
		/* Sending to the keyboard re-enables its interface. */
		k->ram[0] &= ~CTR_KBDDIS;
		kbd_write(k, v);
		break;
	}
	return reset;
}

/* Returns true when the guest asked for a CPU reset. */
static bool cmd_write(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	k->last_cmd = true;
	if (cmd >= 0x20 && cmd <= 0x3f) { /* read controller RAM; 0x20 is the command byte */
		queue(k, k->ram[cmd & 0x1f], false);
		return false;
	}
	if ((cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4)) {
		k->pending = cmd; /* the data byte follows on the data port */
		return false;
	}
	if (cmd >= 0xf0) /* pulse output lines; bit 0 clear pulses the reset line */
		return !(cmd & 1);
	switch (cmd) {
	case 0xa4: /* password installed? */
		queue(k, 0xf1, false);
		break;
	case 0xa7:
		k->ram[0] |= CTR_AUXDIS;
		break;
	case 0xa8:
		k->ram[0] &= ~CTR_AUXDIS;
		break;
	case 0xa9: /* AUX interface test: no error */
	case 0xab: /* keyboard interface test: no error */
		queue(k, 0x00, false);
		break;
	case 0xaa: /* controller self-test */
		k->ram[0] |= CTR_SYS;
		queue(k, 0x55, false);
		break;
	case 0xad:
		k->ram[0] |= CTR_KBDDIS;
		break;
	case 0xae:
		k->ram[0] &= ~CTR_KBDDIS;
		break;
	case 0xc0: /* read input port */
	case 0xe0: /* read test inputs */
		queue(k, 0x00, false);
		break;
	case 0xd0: /* read output port */
		queue(k, k->outport, false);
		break;
	default: /* A20 gate (0xdd/0xdf) and the rest: ignored */
		break;
	}
	return false;
}

static uint8_t data_read(struct i8042 *k)
{
	if (!k->q_count)
		return k->last_out;
	k->last_out = k->q[k->q_head].val;
	k->q_head = (k->q_head + 1) % QUEUE_SIZE;
	k->q_count--;
	/* Each byte is its own edge on the (edge-triggered) ISA line: drop it before raising it again. */
	if (k->irq_level) {
		k->irq_level = 0;
		irq_line_set(&k->irq, 0);
	}
	return k->last_out;
}

static void port_io(struct i8042 *k, bool is_cmd, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	bool reset = false;

	if (len > 8)
		len = 8;
	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = 0xff;
	if (off != 0 || len == 0)
		return;
	pthread_mutex_lock(&k->lock);
	if (is_write)
		reset = is_cmd ? cmd_write(k, data[0]) : data_write(k, data[0]);
	else
		data[0] = is_cmd ? status(k) : data_read(k);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		vm_requester_send(&k->req, VM_REQUEST_RESET);
}

void i8042_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	port_io(opaque, false, off, data, len, is_write);
}

void i8042_cmd_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	port_io(opaque, true, off, data, len, is_write);
}

static void reset_locked(struct i8042 *k)
{
	for (unsigned i = 0; i < sizeof(k->ram); i++)
		k->ram[i] = 0;
	k->ram[0] = CTR_DEFAULT;
	k->outport = OUTPORT_DEFAULT;
	k->pending = 0;
	k->last_cmd = false;
	k->last_out = 0;
	k->q_head = 0;
	k->q_count = 0;
	kbd_defaults(k);
	k->kbd_leds = 0;
	k->kbd_last = 0;
	update_irq(k);
}

void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	reset_locked(k);
	pthread_mutex_unlock(&k->lock);
}

struct i8042 *i8042_create(const struct irq_line *kbd_irq, const struct vm_requester *req)
{
	struct i8042 *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	if (pthread_mutex_init(&k->lock, NULL)) {
		free(k);
		return NULL;
	}
	if (kbd_irq)
		k->irq = *kbd_irq;
	if (req)
		k->req = *req;
	reset_locked(k); /* the line starts low: no set_level call */
	return k;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* ---- saved state ---- */

void i8042_save(const struct i8042 *ck, struct sbuf *out)
{
	struct i8042 *k = (struct i8042 *)ck; /* the lock only */

	pthread_mutex_lock(&k->lock);
	sbuf_u32(out, I8042_STATE_VERSION);
	sbuf_put(out, k->ram, sizeof(k->ram));
	sbuf_u8(out, k->outport);
	sbuf_u8(out, k->pending);
	sbuf_u8(out, k->last_cmd);
	sbuf_u8(out, k->last_out);
	sbuf_u8(out, (uint8_t)k->irq_level);
	sbuf_u8(out, (uint8_t)k->q_count);
	for (unsigned i = 0; i < k->q_count; i++) {
		const struct out_byte *b = &k->q[(k->q_head + i) % QUEUE_SIZE];
		sbuf_u8(out, b->val);
		sbuf_u8(out, b->aux);
	}
	sbuf_u8(out, k->kbd_pending);
	sbuf_u8(out, k->kbd_set);
	sbuf_u8(out, k->kbd_leds);
	sbuf_u8(out, k->kbd_last);
	sbuf_u8(out, k->kbd_scanning);
	pthread_mutex_unlock(&k->lock);
}

/* A controller command that waits for a data-port byte (what cmd_write() leaves in pending). */
static bool pending_ok(uint8_t cmd)
{
	return cmd == 0 || (cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4);
}

/* A keyboard command that waits for its parameter (what kbd_write() leaves in kbd_pending). */
static bool kbd_pending_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == 0xed || cmd == 0xf0 || cmd == 0xf3;
}

int i8042_load(struct i8042 *k, struct sreader *in, struct err *e)
{
	struct i8042 t; /* the state only: no lock, no callbacks */
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "i8042: saved state truncated");
	if (ver != I8042_STATE_VERSION)
		return err_set(e, -EINVAL, "i8042: saved state version %u, this build reads %u", ver,
			       I8042_STATE_VERSION);
	memset(&t, 0, sizeof(t));
	sreader_get(in, t.ram, sizeof(t.ram));
	t.outport = sreader_u8(in);
	t.pending = sreader_u8(in);
	uint8_t last_cmd = sreader_u8(in);
	t.last_out = sreader_u8(in);
	uint8_t level = sreader_u8(in);
	t.q_count = sreader_u8(in);
	if (!in->bad && t.q_count > QUEUE_SIZE) /* before reading the entries it counts */
		return err_set(e, -EINVAL, "i8042: output queue holds %u bytes, more than %d", t.q_count,
			       QUEUE_SIZE);
	bool aux_ok = true;
	for (unsigned i = 0; i < t.q_count; i++) {
		t.q[i].val = sreader_u8(in);
		uint8_t aux = sreader_u8(in);
		aux_ok = aux_ok && aux <= 1;
		t.q[i].aux = aux;
	}
	t.kbd_pending = sreader_u8(in);
	t.kbd_set = sreader_u8(in);
	t.kbd_leds = sreader_u8(in);
	t.kbd_last = sreader_u8(in);
	uint8_t scanning = sreader_u8(in);
	if (in->bad)
		return err_set(e, -EINVAL, "i8042: saved state truncated");
	if (!aux_ok)
		return err_set(e, -EINVAL, "i8042: an output queue byte's AUX flag is not 0 or 1");
	if (!pending_ok(t.pending))
		return err_set(e, -EINVAL, "i8042: pending controller command 0x%02x takes no data byte",
			       t.pending);
	if (!kbd_pending_ok(t.kbd_pending))
		return err_set(e, -EINVAL, "i8042: pending keyboard command 0x%02x takes no parameter",
			       t.kbd_pending);
	if (t.kbd_set < 1 || t.kbd_set > 3)
		return err_set(e, -EINVAL, "i8042: scancode set %u is not 1..3", t.kbd_set);
	if (t.kbd_leds & ~7)
		return err_set(e, -EINVAL, "i8042: keyboard LEDs 0x%02x beyond bits 2:0", t.kbd_leds);
	if (last_cmd > 1 || scanning > 1 || level > 1)
		return err_set(e, -EINVAL,
			       "i8042: a flag (command %u, scanning %u, IRQ level %u) is not 0 or 1",
			       last_cmd, scanning, level);
	t.last_cmd = last_cmd;
	t.kbd_scanning = scanning;
	/* The line follows from the queue and the command byte after every access. */
	if (level != (t.q_count && !t.q[0].aux && (t.ram[0] & CTR_KBDINT)))
		return err_set(e, -EINVAL, "i8042: IRQ level %u contradicts the output queue", level);

	pthread_mutex_lock(&k->lock);
	memcpy(k->ram, t.ram, sizeof(k->ram));
	k->outport = t.outport;
	k->pending = t.pending;
	k->last_cmd = t.last_cmd;
	k->last_out = t.last_out;
	memcpy(k->q, t.q, sizeof(k->q));
	k->q_head = 0;
	k->q_count = t.q_count;
	k->kbd_pending = t.kbd_pending;
	k->kbd_set = t.kbd_set;
	k->kbd_leds = t.kbd_leds;
	k->kbd_last = t.kbd_last;
	k->kbd_scanning = t.kbd_scanning;
	/*
	 * The only callback: the line to the saved level when it is not there. An
	 * output port with the reset line low sends no reset request: the source
	 * already sent it when the guest wrote it.
	 */
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
