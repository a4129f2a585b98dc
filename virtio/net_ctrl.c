/* SPDX-License-Identifier: MIT */
/*
 * virtio-net control commands (5.1.6.5): a class and command byte, data,
 * then one writable ack byte (the caller writes it). Every length is checked
 * against the chain before anything is read; a command we do not know or a
 * malformed one gets VIRTIO_NET_ERR and changes nothing.
 */
#include <string.h>

#include "common/le.h"
#include "virtio/iov.h"
#include "virtio/net_priv.h"

#define NET_OK	0
#define NET_ERR 1

enum { CLASS_RX = 0, CLASS_MAC = 1, CLASS_ANNOUNCE = 3, CLASS_MQ = 4, CLASS_GUEST_OFFLOADS = 5 };
enum { RX_PROMISC = 0, RX_ALLMULTI = 1 };
enum { MAC_TABLE_SET = 0, MAC_ADDR_SET = 1 };

#define GUEST_OFFLOAD_BITS NET_GUEST_OFFLOAD_BITS

static bool has(const struct net_ctrl_state *s, unsigned bit)
{
	return s->features & VIRTIO_BIT(bit);
}

/* One MAC table {le32 entries; entries * 6 bytes} at *off; advances *off. */
static bool read_table(const struct iovec *out, unsigned nout, uint64_t end, uint64_t *off, uint8_t (*t)[6],
		       unsigned *n, bool *overflow)
{
	uint8_t b[4];
	if (*off + 4 > end)
		return false;
	iov_to_buf(out, nout, *off, b, 4);
	uint64_t entries = get_le(b, 4);
	*off += 4;
	if (entries * 6 > end - *off)
		return false;
	*overflow = entries > NET_MAC_TABLE;
	*n = *overflow ? 0 : (unsigned)entries;
	for (unsigned i = 0; i < *n; i++)
		iov_to_buf(out, nout, *off + 6ULL * i, t[i], 6);
	*off += entries * 6;
	return true;
}

static uint8_t mac_command(struct net_ctrl_state *s, const struct net_ctrl_ops *ops, uint8_t cmd,
			   const struct iovec *out, unsigned nout, uint64_t len)
{
	struct net_filter f = s->filter;
	if (cmd == MAC_ADDR_SET) {
		if (!has(s, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != 2 + 6)
			return NET_ERR;
		iov_to_buf(out, nout, 2, f.mac, 6);
		if (f.mac[0] & 1)
			return NET_ERR; /* a NIC's own address is unicast */
	} else if (cmd == MAC_TABLE_SET) {
		uint64_t off = 2;
		if (!has(s, VIRTIO_NET_F_CTRL_RX) ||
		    !read_table(out, nout, len, &off, f.uni, &f.nuni, &f.uni_overflow) ||
		    !read_table(out, nout, len, &off, f.multi, &f.nmulti, &f.multi_overflow) || off != len)
			return NET_ERR;
	} else {
		return NET_ERR;
	}
	s->filter = f;
	ops->set_filter(ops->opaque, &s->filter);
	return NET_OK;
}

uint8_t net_ctrl_command(struct net_ctrl_state *s, const struct net_ctrl_ops *ops, const struct iovec *out,
			 unsigned nout, uint64_t out_len)
{
	uint8_t h[2], d[8];
	if (out_len < 2)
		return NET_ERR;
	iov_to_buf(out, nout, 0, h, 2);
	uint64_t dlen = out_len - 2;
	if (dlen <= sizeof(d))
		iov_to_buf(out, nout, 2, d, dlen);

	switch (h[0]) {
	case CLASS_RX:
		if (!has(s, VIRTIO_NET_F_CTRL_RX) || dlen != 1 || h[1] > RX_ALLMULTI)
			return NET_ERR;
		*(h[1] == RX_PROMISC ? &s->filter.promisc : &s->filter.allmulti) = d[0] != 0;
		ops->set_filter(ops->opaque, &s->filter);
		return NET_OK;
	case CLASS_MAC:
		return mac_command(s, ops, h[1], out, nout, out_len);
	case CLASS_ANNOUNCE:
		if (!has(s, VIRTIO_NET_F_GUEST_ANNOUNCE) || h[1] != 0 || dlen != 0)
			return NET_ERR;
		ops->announce_ack(ops->opaque);
		return NET_OK;
	case CLASS_MQ: {
		if (!has(s, VIRTIO_NET_F_MQ) || h[1] != 0 || dlen != 2)
			return NET_ERR;
		unsigned pairs = (unsigned)get_le(d, 2);
		if (pairs < 1 || pairs > s->max_pairs)
			return NET_ERR;
		return ops->set_pairs(ops->opaque, pairs) ? NET_ERR : NET_OK;
	}
	case CLASS_GUEST_OFFLOADS: {
		if (!has(s, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || h[1] != 0 || dlen != 8)
			return NET_ERR;
		uint64_t want = get_le(d, 8);
		/* Only offloads that were negotiated, and no segmentation without checksums. */
		if (want & ~(s->features & GUEST_OFFLOAD_BITS))
			return NET_ERR;
		if ((want & ~VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)) &&
		    !(want & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)))
			return NET_ERR;
		return ops->set_offloads(ops->opaque, want) ? NET_ERR : NET_OK;
	}
	default:
		return NET_ERR;
	}
}
