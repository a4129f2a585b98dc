/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile driver's split virtqueue. The input is an
 * 8-byte layout header followed by the guest memory image (loaded at
 * guest-physical 0); the device pops and pushes until the ring is empty or
 * broken, and every iovec it is handed must lie inside guest memory.
 *
 * Header: byte 0 bits 0-3 log2 of the queue size (mod 11), bit 4 event_idx,
 * bit 5 indirect, bit 6 ring addresses taken as they are (else aligned down);
 * byte 1 max_iov (mod 17), bit 7 of it set: disable notifications while
 * draining; bytes 2-3, 4-5, 6-7: desc, avail, used addresses (LE16).
 *
 * Guest memory is 64 KiB in two regions with a gap, contiguous on the host,
 * so that a range that crosses the gap would be caught here too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtqueue.h"

#define MEM_SIZE  0x10000
#define LOW_SIZE  0xc000
#define HIGH_GPA  0x100000
#define HDR	  8
#define MAX_IOV	  16
#define MAX_STEPS 4096 /* pushes may rewrite avail->idx when the rings overlap */

static uint8_t *buf;
static volatile uint8_t sink;

static void check_chain(const struct iovec *iov, const struct virtq_chain *c, unsigned max_iov)
{
	if (c->nout + c->nin > max_iov)
		abort();
	uint64_t out = 0, in = 0;
	for (unsigned i = 0; i < c->nout + c->nin; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		if (len == 0 || p < buf || p > buf + MEM_SIZE || len > (size_t)(buf + MEM_SIZE - p))
			abort();
		/* Touch every byte, as a device would, so that ASan checks the range too. */
		if (i < c->nout) {
			for (size_t k = 0; k < len; k++)
				sink ^= p[k];
			out += len;
		} else {
			memset(p, 0xa5, len);
			in += len;
		}
	}
	if (out != c->out_len || in != c->in_len || out + in > UINT32_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!buf && !(buf = malloc(MEM_SIZE)))
		abort();
	if (size < HDR)
		return 0;
	struct guest_mem mem = {
	    .regions = {{0, LOW_SIZE, buf}, {HIGH_GPA, MEM_SIZE - LOW_SIZE, buf + LOW_SIZE}},
	    .nregions = 2,
	    .ram_size = MEM_SIZE,
	    .map = buf,
	};
	size_t n = size - HDR < MEM_SIZE ? size - HDR : MEM_SIZE;
	memset(buf, 0, MEM_SIZE);
	memcpy(buf, data + HDR, n);

	bool raw = data[0] & 0x40;
	struct virtq_layout l = {
	    .size = (uint16_t)(1u << ((data[0] & 15) % 11)),
	    .desc = (data[2] | data[3] << 8) & (raw ? 0xffff : ~15u),
	    .avail = (data[4] | data[5] << 8) & (raw ? 0xffff : ~1u),
	    .used = (data[6] | data[7] << 8) & (raw ? 0xffff : ~3u),
	    .event_idx = data[0] & 0x10,
	    .indirect = data[0] & 0x20,
	};
	unsigned max_iov = (data[1] & 0x7f) % (MAX_IOV + 1);
	bool quiet = data[1] & 0x80;
	struct virtq q;
	if (virtq_enable(&q, &mem, &l))
		return 0;

	struct iovec iov[MAX_IOV];
	struct virtq_chain c;
	int r = 0;
	if (quiet)
		virtq_set_notify(&q, false);
	for (unsigned step = 0; step < MAX_STEPS; step++) {
		r = virtq_pop(&q, iov, max_iov, &c);
		if (r == 1) {
			check_chain(iov, &c, max_iov);
			virtq_push(&q, c.head, (uint32_t)c.in_len);
		} else if (r == -E2BIG) {
			if (c.nout || c.nin || c.out_len || c.in_len || c.head >= l.size)
				abort();
			virtq_push(&q, c.head, 0);
		} else {
			break;
		}
		virtq_should_notify(&q);
	}
	if (r != 0 && r != -EINVAL && r != 1 && r != -E2BIG)
		abort();
	virtq_set_notify(&q, true);
	virtq_has_work(&q);
	virtq_reset(&q);
	return 0;
}
