/* SPDX-License-Identifier: MIT */
/*
 * virtio-net internals shared by net.c (device, threads), net_rx.c,
 * net_tx.c and net_ctrl.c, and by the unit tests and fuzz targets that drive
 * the data paths over fake guest memory and a socketpair in place of a tap.
 */
#ifndef KVMINI_VIRTIO_NET_PRIV_H
#define KVMINI_VIRTIO_NET_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/net.h"
#include "virtio/virtqueue.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM		 0
#define VIRTIO_NET_F_GUEST_CSUM		 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU		 3
#define VIRTIO_NET_F_MAC		 5
#define VIRTIO_NET_F_GUEST_TSO4		 7
#define VIRTIO_NET_F_GUEST_TSO6		 8
#define VIRTIO_NET_F_GUEST_ECN		 9
#define VIRTIO_NET_F_GUEST_UFO		 10
#define VIRTIO_NET_F_HOST_TSO4		 11
#define VIRTIO_NET_F_HOST_TSO6		 12
#define VIRTIO_NET_F_HOST_ECN		 13
#define VIRTIO_NET_F_HOST_UFO		 14
#define VIRTIO_NET_F_MRG_RXBUF		 15
#define VIRTIO_NET_F_STATUS		 16
#define VIRTIO_NET_F_CTRL_VQ		 17
#define VIRTIO_NET_F_CTRL_RX		 18
#define VIRTIO_NET_F_GUEST_ANNOUNCE	 21
#define VIRTIO_NET_F_MQ			 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR	 23

/* Offload features the driver may switch at run time (5.1.6.5.6.1). */
#define NET_GUEST_OFFLOAD_BITS                                                                               \
	(VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |                         \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |                          \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO))

/* struct virtio_net_hdr_v1 (5.1.6). */
#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_F_DATA_VALID 2
#define NET_GSO_NONE	     0
#define NET_GSO_TCPV4	     1
#define NET_GSO_UDP	     3
#define NET_GSO_TCPV6	     4
#define NET_GSO_ECN	     0x80
#define NET_HDR_NUM_BUFFERS  10 /* offset of le16 num_buffers */

/* Config status bits. */
#define NET_S_LINK_UP  1
#define NET_S_ANNOUNCE 2

#define NET_ETH_HLEN	14
#define NET_MAX_GSO_LEN 65550 /* largest frame a GSO packet carries: 64 KiB IP + Ethernet + VLAN */
#define NET_QUEUE_SIZE	256
#define NET_RX_PENDING	64 /* receive chains held between frames (mergeable buffers) */
#define NET_RX_SEG_MAX	32 /* segments of one receive chain */
#define NET_TX_SEG_MAX	128
#define NET_MAC_TABLE	64
#define NET_BATCH	64 /* frames per direction before interrupting and looking at the other */

struct net_filter {
	bool promisc, allmulti, uni_overflow, multi_overflow;
	uint8_t mac[6];
	unsigned nuni, nmulti;
	uint8_t uni[NET_MAC_TABLE][6], multi[NET_MAC_TABLE][6];
};

/* What the data paths need to know about the negotiated device, fixed between start and stop. */
struct net_mode {
	bool mrg_rxbuf;	  /* MRG_RXBUF: a frame may span several receive chains */
	bool guest_csum;  /* GUEST_CSUM: receive headers keep their flags */
	unsigned rx_need; /* bytes of receive room a frame may take (header included) */
	bool host_csum, host_tso4, host_tso6, host_ecn, host_ufo; /* what the driver may send */
};

/* A receive chain taken from the ring but not yet used. */
struct net_rx_chain {
	uint16_t head;
	unsigned niov;
	uint32_t len;
	struct iovec iov[NET_RX_SEG_MAX];
};

struct net_pair {
	struct virtio_net *n;
	unsigned index;
	int fd;
	bool active; /* atomic: within the pairs the driver asked for (a detached tap queue is neither
		      * readable nor writable, so an inactive pair drops what the driver sends) */
	struct virtq *rxq, *txq;
	struct net_mode mode;
	/* Receive: chains popped ahead (a ring of NET_RX_PENDING), oldest at rx_first. */
	struct net_rx_chain rx[NET_RX_PENDING];
	unsigned rx_first, rx_count;
	/*
	 * How many of those, newest first, are the last chains taken off the ring
	 * (a chain given back unused in between, for too many segments, breaks the
	 * run): what a saved state may hand back as not taken (virtio_device_ops.held).
	 */
	unsigned rx_tail;
	bool rx_starved; /* not enough buffers for a frame: wait for a kick before reading */
	/*
	 * A frame read while the guest was short of buffers: its first stash_at bytes
	 * landed in the chains ahead, the stash_len others here until more come. Also
	 * where readv() puts the excess of a frame too big for any buffers (dropped).
	 */
	size_t stash_frame, stash_at, stash_len;
	uint8_t stash[NET_VNET_HDR_LEN + NET_MAX_GSO_LEN + 1];
	/* Transmit: a chain the backend refused with EAGAIN, retried when it is writable. */
	bool tx_blocked;
	uint16_t tx_head;
	uint32_t tx_len;
	struct iovec tx_iov[NET_TX_SEG_MAX];
	/*
	 * What is written to the backend: the header as checked, copied here (the
	 * guest may rewrite its own copy meanwhile, and a refused chain is sent
	 * again later), then the frame straight from guest memory.
	 */
	uint8_t tx_hdr[NET_VNET_HDR_LEN];
	struct iovec tx_out[NET_TX_SEG_MAX + 1];
	unsigned tx_nout;
	/* Local copy of the receive filter, refreshed when the generation moves. */
	struct net_filter filter;
	unsigned filter_gen;
	struct virtio_net_stats *cnt; /* this pair's counters (relaxed atomics: readers sum them) */
	uint64_t own_rx_kicks;	      /* atomic: the device's writes to the rx kick eventfd not yet read */
	pthread_t thread;
	bool running;
};

/* Result of one pass of a data path. */
enum net_io {
	NET_IO_IDLE,   /* nothing more to do until an fd wakes us */
	NET_IO_MORE,   /* a batch ended with work left */
	NET_IO_BROKEN, /* the driver broke the ring: the device needs a reset (why in *why) */
	NET_IO_GONE,   /* the backend went away */
};

/* net_rx.c: moves frames from p->fd into the receive ring; notify() after each batch. */
enum net_io net_rx_run(struct net_pair *p, const struct net_filter *f, void (*notify)(struct net_pair *),
		       const char **why);
/* Drops the chains held ahead (at stop: the ring is being reset). */
void net_rx_forget(struct net_pair *p);
/* Whether a frame to dst passes the filter. */
bool net_filter_accepts(const struct net_filter *f, const uint8_t dst[6]);

/* net_tx.c: moves frames from the transmit ring to p->fd. */
enum net_io net_tx_run(struct net_pair *p, void (*notify)(struct net_pair *), const char **why);
/* 0 when the 12-byte header hdr of a frame of len bytes (header excluded) is one the device accepts. */
int net_tx_check_hdr(const struct net_mode *m, const uint8_t *hdr, uint64_t len);

/* net_ctrl.c: one control command; returns the ack (0 OK, 1 ERR). */
struct net_ctrl_ops {
	int (*set_pairs)(void *opaque, unsigned pairs);
	int (*set_offloads)(void *opaque, uint64_t guest_features);
	void (*set_filter)(void *opaque, const struct net_filter *f);
	void (*announce_ack)(void *opaque);
	void *opaque;
};
struct net_ctrl_state {
	uint64_t features; /* negotiated */
	unsigned max_pairs;
	struct net_filter filter; /* the filter being built (the device's copy) */
};
uint8_t net_ctrl_command(struct net_ctrl_state *s, const struct net_ctrl_ops *ops, const struct iovec *out,
			 unsigned nout, uint64_t out_len);

#endif
