/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (rtc_io), the event loop (rtc_tick) and the set-up thread. */
#include "rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REG_SEC	      0x00
#define REG_SEC_ALARM 0x01
#define REG_MIN	      0x02
#define REG_MIN_ALARM 0x03
#define REG_HOUR      0x04
#define REG_HOUR_ALRM 0x05
#define REG_WDAY      0x06
#define REG_MDAY      0x07
#define REG_MON	      0x08
#define REG_YEAR      0x09
#define REG_A	      0x0a
#define REG_B	      0x0b
#define REG_C	      0x0c
#define REG_D	      0x0d
#define REG_CENTURY   0x32
#define CMOS_SIZE     128

#define A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate; UIP (bit 7) always clear */

#define B_DSE	  0x01
#define B_24H	  0x02
#define B_DM_BIN  0x04
#define B_UIE	  0x10
#define B_AIE	  0x20
#define B_PIE	  0x40
#define B_SET	  0x80
#define B_DEFAULT B_24H /* BCD, 24-hour */
#define B_IRQ_EN  (B_PIE | B_AIE | B_UIE | 0x08 /* SQWE */)

#define C_UF   0x10
#define C_AF   0x20
#define C_IRQF 0x80

#define D_VRT 0x80 /* RAM and time valid */

#define ALARM_DONT_CARE 0xc0

#define RTC_STATE_VERSION 1

struct rtc {
	pthread_mutex_t lock;
	struct irq_line irq;
	time_t (*now)(void *opaque);
	void *opaque;

	/*
	 * Time registers hold the raw bytes only while B.SET freezes the clock;
	 * otherwise they are computed from the host clock on each read.
	 */
	uint8_t cmos[CMOS_SIZE];
	uint8_t index;
	int64_t offset;	 /* guest time - host time, seconds */
	uint8_t c_flags; /* UF/AF, cleared by reading C */
	int64_t last_tick;
	bool ticked;
	int irq_level;
};

static bool is_time_reg(unsigned reg)
{
	switch (reg) {
	case REG_SEC:
	case REG_MIN:
	case REG_HOUR:
	case REG_WDAY:
	case REG_MDAY:
	case REG_MON:
	case REG_YEAR:
	case REG_CENTURY:
		return true;
	}
	return false;
}

static time_t host_now(struct rtc *rtc)
{
	return rtc->now ? rtc->now(rtc->opaque) : time(NULL);
}

static int64_t guest_now(struct rtc *rtc)
{
	int64_t t;
	if (__builtin_add_overflow((int64_t)host_now(rtc), rtc->offset, &t))
		t = 0;
	return t;
}

static bool binary(const struct rtc *rtc)
{
	return rtc->cmos[REG_B] & B_DM_BIN;
}

static uint8_t enc(const struct rtc *rtc, unsigned v)
{
	v %= 100;
	return binary(rtc) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

static unsigned dec(const struct rtc *rtc, uint8_t v)
{
	/* Bad BCD digits decode to odd values that timegm normalises: the guest gets what it wrote. */
	return binary(rtc) ? v : (unsigned)(v >> 4) * 10 + (v & 0xf);
}

/* Fills the time registers of regs[] with t in the format register B selects. */
static void encode_time(const struct rtc *rtc, int64_t t, uint8_t *regs)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	long year = (long)tm.tm_year + 1900;
	if (year < 0)
		year = 0;
	if (year > 9999)
		year = 9999;

	regs[REG_SEC] = enc(rtc, (unsigned)tm.tm_sec);
	regs[REG_MIN] = enc(rtc, (unsigned)tm.tm_min);
	if (rtc->cmos[REG_B] & B_24H) {
		regs[REG_HOUR] = enc(rtc, (unsigned)tm.tm_hour);
	} else {
		unsigned h = (unsigned)tm.tm_hour % 12;
		regs[REG_HOUR] = enc(rtc, h ? h : 12) | (tm.tm_hour >= 12 ? 0x80 : 0);
	}
	regs[REG_WDAY] = enc(rtc, (unsigned)tm.tm_wday + 1);
	regs[REG_MDAY] = enc(rtc, (unsigned)tm.tm_mday);
	regs[REG_MON] = enc(rtc, (unsigned)tm.tm_mon + 1);
	regs[REG_YEAR] = enc(rtc, (unsigned)(year % 100));
	regs[REG_CENTURY] = enc(rtc, (unsigned)(year / 100));
}

/* Makes the time registers in regs[] the current time, by moving the offset. */
static void commit_time(struct rtc *rtc, const uint8_t *regs)
{
	struct tm tm = {0};
	uint8_t h = regs[REG_HOUR];

	tm.tm_sec = (int)dec(rtc, regs[REG_SEC]);
	tm.tm_min = (int)dec(rtc, regs[REG_MIN]);
	if (rtc->cmos[REG_B] & B_24H)
		tm.tm_hour = (int)dec(rtc, h);
	else
		tm.tm_hour = (int)(dec(rtc, h & 0x7f) % 12) + ((h & 0x80) ? 12 : 0);
	tm.tm_mday = (int)dec(rtc, regs[REG_MDAY]);
	tm.tm_mon = (int)dec(rtc, regs[REG_MON]) - 1;
	tm.tm_year = (int)(dec(rtc, regs[REG_CENTURY]) * 100 + dec(rtc, regs[REG_YEAR])) - 1900;
	/* The day of the week follows from the date. */
	int64_t t = (int64_t)timegm(&tm);
	int64_t off;
	if (!__builtin_sub_overflow(t, (int64_t)host_now(rtc), &off))
		rtc->offset = off;
	rtc->ticked = false; /* a jump is not an update cycle */
}

static void update_irq(struct rtc *rtc)
{
	int level = (rtc->c_flags & rtc->cmos[REG_B] & (C_UF | C_AF)) != 0;
	if (level != rtc->irq_level) {
		rtc->irq_level = level;
		irq_line_set(&rtc->irq, level);
	}
}

static uint8_t data_read(struct rtc *rtc)
{
	unsigned reg = rtc->index;
	uint8_t regs[CMOS_SIZE], v;

	if (is_time_reg(reg)) {
		if (rtc->cmos[REG_B] & B_SET)
			return rtc->cmos[reg];
		encode_time(rtc, guest_now(rtc), regs);
		return regs[reg];
	}
	switch (reg) {
	case REG_A:
		return rtc->cmos[REG_A] & 0x7f;
	case REG_C:
		v = rtc->c_flags;
		if (v & rtc->cmos[REG_B] & (C_UF | C_AF))
			v |= C_IRQF;
		rtc->c_flags = 0;
		return v;
	case REG_D:
		return D_VRT;
	}
	return rtc->cmos[reg];
}

static void data_write(struct rtc *rtc, uint8_t v)
{
	unsigned reg = rtc->index;
	uint8_t regs[CMOS_SIZE];

	if (is_time_reg(reg)) {
		if (rtc->cmos[REG_B] & B_SET) {
			rtc->cmos[reg] = v; /* takes effect when SET is cleared */
			return;
		}
		encode_time(rtc, guest_now(rtc), regs);
		regs[reg] = v;
		commit_time(rtc, regs);
		return;
	}
	switch (reg) {
	case REG_A:
		rtc->cmos[REG_A] = v & 0x7f;
		return;
	case REG_B:
		if ((v & B_SET) && !(rtc->cmos[REG_B] & B_SET)) {
			/* Freeze: the registers hold the time of this instant, in the old format. */
			encode_time(rtc, guest_now(rtc), rtc->cmos);
		} else if (!(v & B_SET) && (rtc->cmos[REG_B] & B_SET)) {
			/* Run again from what the guest wrote, read in the new format. */
			rtc->cmos[REG_B] = v | B_SET;
			commit_time(rtc, rtc->cmos);
		}
		rtc->cmos[REG_B] = v;
		return;
	case REG_C:
	case REG_D:
		return; /* read-only */
	}
	rtc->cmos[reg] = v;
}

void rtc_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *rtc = opaque;

	if (len > 8)
		len = 8;
	pthread_mutex_lock(&rtc->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t port = off + i;
		if (port < off || port > 1) {
			if (!is_write)
				data[i] = 0xff;
		} else if (port == 0) {
			if (is_write)
				rtc->index = data[i] & 0x7f; /* bit 7 masks NMIs on PCs: not ours to model */
			else
				data[i] = 0xff; /* the index register is write-only */
		} else if (is_write) {
			data_write(rtc, data[i]);
		} else {
			data[i] = data_read(rtc);
		}
	}
	update_irq(rtc);
	pthread_mutex_unlock(&rtc->lock);
}

static bool alarm_match(uint8_t alarm, uint8_t now)
{
	return (alarm & ALARM_DONT_CARE) == ALARM_DONT_CARE || alarm == now;
}

void rtc_tick(struct rtc *rtc)
{
	uint8_t regs[CMOS_SIZE];

	pthread_mutex_lock(&rtc->lock);
	if (!(rtc->cmos[REG_B] & B_SET)) { /* SET stops update cycles */
		int64_t t = guest_now(rtc);
		if (rtc->ticked && t != rtc->last_tick) {
			rtc->c_flags |= C_UF;
			encode_time(rtc, t, regs);
			if (alarm_match(rtc->cmos[REG_SEC_ALARM], regs[REG_SEC]) &&
			    alarm_match(rtc->cmos[REG_MIN_ALARM], regs[REG_MIN]) &&
			    alarm_match(rtc->cmos[REG_HOUR_ALRM], regs[REG_HOUR]))
				rtc->c_flags |= C_AF;
		}
		rtc->last_tick = t;
		rtc->ticked = true;
	}
	update_irq(rtc);
	pthread_mutex_unlock(&rtc->lock);
}

void rtc_reset(struct rtc *rtc)
{
	pthread_mutex_lock(&rtc->lock);
	rtc->cmos[REG_B] &= (uint8_t)~B_IRQ_EN;
	rtc->c_flags = 0;
	rtc->index = 0;
	update_irq(rtc);
	pthread_mutex_unlock(&rtc->lock);
}

struct rtc *rtc_create(const struct irq_line *irq, time_t (*now)(void *opaque), void *opaque)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));

	if (!rtc)
		return NULL;
	if (pthread_mutex_init(&rtc->lock, NULL)) {
		free(rtc);
		return NULL;
	}
	if (irq)
		rtc->irq = *irq;
	rtc->now = now;
	rtc->opaque = opaque;
	rtc->cmos[REG_A] = A_DEFAULT;
	rtc->cmos[REG_B] = B_DEFAULT;
	return rtc;
}

void rtc_destroy(struct rtc *rtc)
{
	if (!rtc)
		return;
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

/* ---- saved state ---- */

void rtc_save(const struct rtc *crtc, struct sbuf *out)
{
	struct rtc *rtc = (struct rtc *)crtc; /* the lock only */

	pthread_mutex_lock(&rtc->lock);
	sbuf_u32(out, RTC_STATE_VERSION);
	sbuf_put(out, rtc->cmos, CMOS_SIZE);
	sbuf_u8(out, rtc->index);
	sbuf_u64(out, (uint64_t)rtc->offset);
	sbuf_u8(out, rtc->c_flags);
	sbuf_u64(out, (uint64_t)rtc->last_tick);
	sbuf_u8(out, rtc->ticked);
	sbuf_u8(out, (uint8_t)rtc->irq_level);
	pthread_mutex_unlock(&rtc->lock);
}

int rtc_load(struct rtc *rtc, struct sreader *in, struct err *e)
{
	uint8_t cmos[CMOS_SIZE];
	uint32_t ver = sreader_u32(in);

	if (in->bad)
		return err_set(e, -EINVAL, "rtc: saved state truncated");
	if (ver != RTC_STATE_VERSION)
		return err_set(e, -EINVAL, "rtc: saved state version %u, this build reads %u", ver,
			       RTC_STATE_VERSION);
	sreader_get(in, cmos, CMOS_SIZE);
	uint8_t index = sreader_u8(in);
	int64_t offset = (int64_t)sreader_u64(in); /* any value: guest_now() saturates on overflow */
	uint8_t c_flags = sreader_u8(in);
	int64_t last_tick = (int64_t)sreader_u64(in);
	uint8_t ticked = sreader_u8(in), level = sreader_u8(in);
	if (in->bad)
		return err_set(e, -EINVAL, "rtc: saved state truncated");
	if (index >= CMOS_SIZE)
		return err_set(e, -EINVAL, "rtc: index register 0x%02x beyond the %d bytes of CMOS", index,
			       CMOS_SIZE);
	if (cmos[REG_A] & 0x80)
		return err_set(e, -EINVAL, "rtc: register A 0x%02x has UIP set, which this model never does",
			       cmos[REG_A]);
	if (c_flags & ~(C_UF | C_AF))
		return err_set(e, -EINVAL, "rtc: register C flags 0x%02x beyond UF and AF", c_flags);
	if (ticked > 1 || level > 1)
		return err_set(e, -EINVAL, "rtc: a flag (ticked %u, IRQ level %u) is not 0 or 1", ticked,
			       level);
	if (level != ((c_flags & cmos[REG_B] & (C_UF | C_AF)) != 0))
		return err_set(e, -EINVAL, "rtc: IRQ level %u contradicts registers B and C", level);

	pthread_mutex_lock(&rtc->lock);
	memcpy(rtc->cmos, cmos, CMOS_SIZE);
	rtc->index = index;
	rtc->offset = offset;
	rtc->c_flags = c_flags;
	rtc->last_tick = last_tick;
	rtc->ticked = ticked;
	update_irq(rtc); /* the only callback: the line to the saved level, when it is not there */
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}
