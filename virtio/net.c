/* SPDX-License-Identifier: MIT */
/*
 * virtio-net device: features and configuration, the per-pair threads, the
 * control queue, link state and counters. The data paths are net_rx.c and
 * net_tx.c, the control commands net_ctrl.c.
 *
 * Threads: one per queue pair, started at DRIVER_OK and joined at a reset or
 * teardown. Each sleeps in poll() on its backend fd, its two kick eventfds
 * and the stop eventfd; pair 0 also serves the control queue. lock guards
 * the configuration, the receive filter (copied by each pair when
 * filter_gen moves) and the active pair count.
 */
#include "virtio/net.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/seccomp.h"
#include "virtio/iov.h"
#include "virtio/net_priv.h"

#define CONFIG_SIZE  12 /* mac, status, max_virtqueue_pairs, mtu */
#define CTRL_SEG_MAX 16

struct virtio_net {
	struct virtio_pci *t;
	struct quiesce *gate; /* the VM's pause gate */
	struct net_backend *nb;
	char name[64];
	unsigned npairs; /* = the backend's queues */
	int stop_fd;
	struct net_pair *pairs;
	uint64_t features; /* negotiated, fixed between start and stop */
	struct virtq *ctrlq;
	unsigned ctrl_index;
	pthread_mutex_t lock;
	struct net_filter filter;
	unsigned filter_gen; /* atomic */
	struct net_ctrl_state ctrl;
	unsigned active_pairs; /* what the driver asked for (VQ_PAIRS_SET), 0 before a start */
	uint64_t offloads;     /* guest offloads in force (CTRL_GUEST_OFFLOADS), 0 before a start */
	bool restored;	       /* a loaded state waits for start(): its filter, pairs and offloads */
	uint8_t config[CONFIG_SIZE];
	struct virtio_net_shared *sh; /* counters; sh->gone (atomic): the backend went away */
};

static bool negotiated(const struct virtio_net *n, unsigned bit)
{
	return n->features & VIRTIO_BIT(bit);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* ---- interrupts ---- */

static void notify_rx(struct net_pair *p)
{
	if (virtio_pci_notify(p->n->t, 2 * p->index))
		__atomic_add_fetch(&p->cnt->rx_interrupts, 1, __ATOMIC_RELAXED);
}

static void notify_tx(struct net_pair *p)
{
	if (virtio_pci_notify(p->n->t, 2 * p->index + 1))
		__atomic_add_fetch(&p->cnt->tx_interrupts, 1, __ATOMIC_RELAXED);
}

/* ---- link state ---- */

static void set_status_bits(struct virtio_net *n, uint16_t set, uint16_t clear)
{
	pthread_mutex_lock(&n->lock);
	uint16_t s = (uint16_t)(n->config[6] | n->config[7] << 8);
	uint16_t ns = (uint16_t)((s | set) & ~clear);
	put_le16(n->config + 6, ns);
	pthread_mutex_unlock(&n->lock);
	if (ns != s)
		virtio_pci_config_changed(n->t);
}

static void backend_gone(struct virtio_net *n)
{
	if (__atomic_exchange_n(&n->sh->gone, true, __ATOMIC_SEQ_CST))
		return;
	fprintf(stderr, "kvmini: %s: %s went away; the link is down\n", n->name, n->nb->ifname);
	set_status_bits(n, 0, NET_S_LINK_UP);
}

void virtio_net_announce(struct virtio_net *n)
{
	if (negotiated(n, VIRTIO_NET_F_GUEST_ANNOUNCE))
		set_status_bits(n, NET_S_ANNOUNCE, 0);
}

/* ---- control commands ---- */

/* TUN_F_* for what the driver takes in (guest offload feature bits). */
static unsigned tun_offloads(const struct virtio_net *n, uint64_t f)
{
	unsigned t = 0;
	if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
		t |= TUN_F_CSUM;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4))
			t |= TUN_F_TSO4;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))
			t |= TUN_F_TSO6;
		if ((f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)) && (t & (TUN_F_TSO4 | TUN_F_TSO6)))
			t |= TUN_F_TSO_ECN;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO))
			t |= TUN_F_UFO;
	}
	return t & n->nb->offload_mask;
}

static int ctrl_set_pairs(void *opaque, unsigned pairs)
{
	struct virtio_net *n = opaque;
	int r = 0;
	n->active_pairs = pairs;
	for (unsigned q = 0; q < n->npairs; q++) {
		int rq = net_backend_set_queue(n->nb, q, q < pairs);
		if (rq && !r)
			r = rq;
		__atomic_store_n(&n->pairs[q].active, q < pairs && !rq, __ATOMIC_RELEASE);
	}
	/* Wake the pairs so that they start or stop polling their queue. */
	uint64_t one = 1;
	for (unsigned q = 1; q < n->npairs; q++) {
		if (!n->pairs[q].running)
			continue;
		/* Not the driver's: virtio_count_kicks() leaves it out of rx_notifications. */
		__atomic_add_fetch(&n->pairs[q].own_rx_kicks, 1, __ATOMIC_RELAXED);
		if (write(virtio_pci_kick_fd(n->t, 2 * q), &one, sizeof(one)) < 0) {
			__atomic_sub_fetch(&n->pairs[q].own_rx_kicks, 1, __ATOMIC_RELAXED);
			perror("kvmini: virtio-net kick");
		}
	}
	return r;
}

static int ctrl_set_offloads(void *opaque, uint64_t f)
{
	struct virtio_net *n = opaque;
	int r = net_backend_set_offload(n->nb, tun_offloads(n, f));
	if (r == 0)
		n->offloads = f;
	return r;
}

static void ctrl_set_filter(void *opaque, const struct net_filter *f)
{
	struct virtio_net *n = opaque;
	pthread_mutex_lock(&n->lock);
	n->filter = *f;
	memcpy(n->config, f->mac, 6);
	__atomic_add_fetch(&n->filter_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&n->lock);
}

static void ctrl_announce_ack(void *opaque)
{
	set_status_bits(opaque, 0, NET_S_ANNOUNCE);
}

static const struct net_ctrl_ops ctrl_ops = {
    .set_pairs = ctrl_set_pairs,
    .set_offloads = ctrl_set_offloads,
    .set_filter = ctrl_set_filter,
    .announce_ack = ctrl_announce_ack,
};

/* Serves the control queue; false when the driver broke it. */
static bool ctrl_drain(struct virtio_net *n, const char **why)
{
	struct virtq *q = n->ctrlq;
	struct iovec iov[CTRL_SEG_MAX];
	struct net_ctrl_ops ops = ctrl_ops;
	ops.opaque = n;
	bool pushed = false;

	for (;;) {
		virtq_set_notify(q, false);
		struct virtq_chain c;
		int r;
		while ((r = virtq_pop(q, iov, CTRL_SEG_MAX, &c)) == 1) {
			if (c.nin == 0) {
				*why = "a control command without an ack byte";
				return false;
			}
			uint8_t ack = net_ctrl_command(&n->ctrl, &ops, iov, c.nout, c.out_len);
			iov_from_buf(iov + c.nout, c.nin, 0, &ack, 1);
			virtq_push_iov(q, c.head, iov + c.nout, c.nin, 1);
			pushed = true;
		}
		if (r == -E2BIG) {
			virtq_push(q, c.head, 0);
			pushed = true;
			continue;
		}
		if (r < 0) {
			*why = "a malformed control descriptor chain";
			return false;
		}
		virtq_set_notify(q, true);
		if (!virtq_has_work(q))
			break;
	}
	if (pushed && virtio_pci_notify(n->t, n->ctrl_index))
		__atomic_add_fetch(&n->sh->pair[0].ctrl_interrupts, 1, __ATOMIC_RELAXED);
	return true;
}

/* ---- the pair threads ---- */

/* Reads a kick eventfd: the notifications since the last read (0: another wake-up took them). */
static uint64_t drain_eventfd(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0; /* EAGAIN: another wake-up already took it */
	return v;
}

enum { PFD_STOP, PFD_RX, PFD_TX, PFD_BACKEND, PFD_CTRL, PFD_COUNT };

static void *pair_thread(void *arg)
{
	struct net_pair *p = arg;
	struct virtio_net *n = p->n;
	bool rx_ready = true, tx_ready = true, ctrl_ready = p->index == 0 && n->ctrlq, broken = false;
	struct pollfd fds[PFD_COUNT] = {
	    [PFD_STOP] = {.fd = n->stop_fd, .events = POLLIN},
	    [PFD_RX] = {.fd = virtio_pci_kick_fd(n->t, 2 * p->index), .events = POLLIN},
	    [PFD_TX] = {.fd = virtio_pci_kick_fd(n->t, 2 * p->index + 1), .events = POLLIN},
	    [PFD_BACKEND] = {.fd = p->fd},
	    [PFD_CTRL] = {.fd = p->index == 0 && n->ctrlq ? virtio_pci_kick_fd(n->t, n->ctrl_index) : -1,
			  .events = POLLIN},
	};

	for (;;) {
		bool gone = __atomic_load_n(&n->sh->gone, __ATOMIC_ACQUIRE);
		const char *why = NULL;
		if (!broken) {
			/* While the VM is paused the pass waits here: frames stay in the rings and the tap.
			 */
			quiesce_enter(n->gate);
			if (__atomic_load_n(&n->filter_gen, __ATOMIC_ACQUIRE) != p->filter_gen) {
				pthread_mutex_lock(&n->lock);
				p->filter = n->filter;
				p->filter_gen = n->filter_gen;
				pthread_mutex_unlock(&n->lock);
			}
			bool active = __atomic_load_n(&p->active, __ATOMIC_ACQUIRE);
			if (rx_ready && (gone || !active)) {
				rx_ready =
				    false; /* nothing to receive; chains wait for a reset or reactivation */
			} else if (rx_ready) {
				enum net_io r = net_rx_run(p, &p->filter, notify_rx, &why);
				rx_ready = r == NET_IO_MORE;
				if (r == NET_IO_GONE)
					backend_gone(n);
				broken |= r == NET_IO_BROKEN;
			}
			if (tx_ready && !broken) {
				enum net_io r = net_tx_run(p, notify_tx, &why);
				/* A dead backend fails each frame at once: keep draining, counting drops. */
				tx_ready = r == NET_IO_MORE || r == NET_IO_GONE;
				if (r == NET_IO_GONE)
					backend_gone(n);
				broken |= r == NET_IO_BROKEN;
			}
			if (ctrl_ready && !broken) {
				ctrl_ready = false;
				broken = !ctrl_drain(n, &why);
			}
			if (broken)
				virtio_pci_needs_reset(n->t, why);
			quiesce_exit(n->gate);
		}
		gone = __atomic_load_n(&n->sh->gone, __ATOMIC_ACQUIRE);
		fds[PFD_BACKEND].events = 0;
		fds[PFD_BACKEND].fd = __atomic_load_n(&p->active, __ATOMIC_ACQUIRE) ? p->fd : -1;
		if (!gone && !broken) {
			if (!p->rx_starved && p->rxq)
				fds[PFD_BACKEND].events |= POLLIN;
			if (p->tx_blocked)
				fds[PFD_BACKEND].events |= POLLOUT;
		}
		unsigned nfds = broken ? 1 : PFD_COUNT;
		if (poll(fds, nfds, (rx_ready || tx_ready) && !broken ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("kvmini: virtio-net poll");
			break;
		}
		if (fds[PFD_STOP].revents)
			break;
		if (broken)
			continue;
		if (fds[PFD_RX].revents & POLLIN) {
			virtio_count_kicks(&p->cnt->rx_notifications, drain_eventfd(fds[PFD_RX].fd),
					   &p->own_rx_kicks);
			p->rx_starved = false;
			rx_ready = true;
		}
		if (fds[PFD_TX].revents & POLLIN) {
			virtio_count_kicks(&p->cnt->tx_notifications, drain_eventfd(fds[PFD_TX].fd), NULL);
			tx_ready = true;
		}
		if (fds[PFD_CTRL].fd >= 0 && (fds[PFD_CTRL].revents & POLLIN)) {
			virtio_count_kicks(&n->sh->pair[0].ctrl_notifications,
					   drain_eventfd(fds[PFD_CTRL].fd), NULL);
			ctrl_ready = true;
		}
		short be = fds[PFD_BACKEND].revents;
		if (be & (POLLERR | POLLHUP | POLLNVAL))
			backend_gone(n);
		else {
			if (be & POLLIN)
				rx_ready = true;
			if (be & POLLOUT)
				tx_ready = true;
		}
	}
	return NULL;
}

static void net_stop(void *opaque)
{
	struct virtio_net *n = opaque;
	uint64_t one = 1;
	if (write(n->stop_fd, &one, sizeof(one)) < 0)
		perror("kvmini: virtio-net stop");
	for (unsigned i = 0; i < n->npairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (p->running)
			pthread_join(p->thread, NULL);
		p->running = false;
		net_rx_forget(p);
		p->tx_blocked = false;
		p->rxq = p->txq = NULL;
	}
	n->ctrlq = NULL;
	n->active_pairs = 0;
	n->offloads = 0;
	uint64_t v;
	while (read(n->stop_fd, &v, sizeof(v)) == sizeof(v))
		;
}

static struct net_mode mode_for(const struct virtio_net *n)
{
	bool gso = negotiated(n, VIRTIO_NET_F_GUEST_TSO4) || negotiated(n, VIRTIO_NET_F_GUEST_TSO6) ||
		   negotiated(n, VIRTIO_NET_F_GUEST_UFO);
	unsigned mtu = n->nb->mtu > 1500 ? n->nb->mtu : 1500;
	return (struct net_mode){
	    .mrg_rxbuf = negotiated(n, VIRTIO_NET_F_MRG_RXBUF),
	    .guest_csum = negotiated(n, VIRTIO_NET_F_GUEST_CSUM),
	    /* Ethernet header, a VLAN tag, the MTU; or a whole GSO frame. */
	    .rx_need = NET_VNET_HDR_LEN + (gso ? NET_MAX_GSO_LEN : NET_ETH_HLEN + 4 + mtu),
	    .host_csum = negotiated(n, VIRTIO_NET_F_CSUM),
	    .host_tso4 = negotiated(n, VIRTIO_NET_F_HOST_TSO4),
	    .host_tso6 = negotiated(n, VIRTIO_NET_F_HOST_TSO6),
	    .host_ecn = negotiated(n, VIRTIO_NET_F_HOST_ECN),
	    .host_ufo = negotiated(n, VIRTIO_NET_F_HOST_UFO),
	};
}

static int net_start(void *opaque)
{
	struct virtio_net *n = opaque;
	n->features = virtio_pci_features(n->t);
	bool mq = negotiated(n, VIRTIO_NET_F_MQ);
	unsigned pairs = mq ? n->npairs : 1;
	n->ctrl_index = mq ? 2 * n->npairs : 2;
	n->ctrlq = negotiated(n, VIRTIO_NET_F_CTRL_VQ) ? virtio_pci_queue(n->t, n->ctrl_index) : NULL;

	/*
	 * A fresh driver: all frames accepted until it sets filters, one pair until it asks for more,
	 * every negotiated offload. A restored one (net_load()): what the driver had set.
	 */
	bool restored = n->restored;
	n->restored = false;
	pthread_mutex_lock(&n->lock);
	if (!restored) {
		memset(&n->filter, 0, sizeof(n->filter));
		n->filter.promisc = true;
		memcpy(n->filter.mac, n->config, 6);
	}
	n->ctrl = (struct net_ctrl_state){.features = n->features, .max_pairs = pairs, .filter = n->filter};
	__atomic_add_fetch(&n->filter_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&n->lock);
	uint64_t offloads = restored ? n->offloads : n->features & NET_GUEST_OFFLOAD_BITS;
	int r = net_backend_set_offload(n->nb, tun_offloads(n, offloads));
	if (r)
		fprintf(stderr, "kvmini: %s: cannot set the offloads of %s: %s\n", n->name, n->nb->ifname,
			strerror(-r));
	n->offloads = offloads;
	ctrl_set_pairs(n, restored && n->active_pairs ? n->active_pairs : 1);

	struct net_mode m = mode_for(n);
	for (unsigned i = 0; i < pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		p->rxq = virtio_pci_queue(n->t, 2 * i);
		p->txq = virtio_pci_queue(n->t, 2 * i + 1);
		p->mode = m;
		p->filter_gen = 0;
		net_rx_forget(p);
		p->tx_blocked = false;
		__atomic_store_n(&p->own_rx_kicks, 0, __ATOMIC_RELAXED); /* the reset emptied the eventfd */
		if (!p->rxq && !p->txq && i > 0)
			continue; /* the driver left this pair out */
		int e = sandbox_thread_create(&p->thread, SB_NET, pair_thread, p);
		if (e) {
			fprintf(stderr, "kvmini: %s: cannot start an I/O thread: %s\n", n->name, strerror(e));
			net_stop(n);
			return -e;
		}
		p->running = true;
	}
	return 0;
}

static void net_config_read(void *opaque, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = opaque;
	pthread_mutex_lock(&n->lock);
	memcpy(data, n->config + off, len);
	pthread_mutex_unlock(&n->lock);
}

/* ---- saved state ---- */

/*
 * The device's own state: the MAC and status of the configuration, the
 * receive filter, the active pairs and the guest offloads. Frames are not
 * saved: receive chains held ahead are handed back as not taken (held()), so
 * the destination takes them again, and a frame stashed half-delivered for
 * want of buffers is dropped with them (packet loss, which the protocols
 * above recover from); a transmit chain the backend refused is taken again
 * and sent from the destination.
 */
#define NET_STATE_VERSION 1
enum { NF_PROMISC = 1, NF_ALLMULTI = 2, NF_UNI_OVERFLOW = 4, NF_MULTI_OVERFLOW = 8 };

static void net_save(void *opaque, struct sbuf *b)
{
	struct virtio_net *n = opaque;
	pthread_mutex_lock(&n->lock);
	const struct net_filter *f = &n->filter;
	sbuf_u32(b, NET_STATE_VERSION);
	sbuf_put(b, n->config, 6);
	sbuf_u16(b, (uint16_t)(n->config[6] | n->config[7] << 8));
	sbuf_u8(b, (uint8_t)((f->promisc ? NF_PROMISC : 0) | (f->allmulti ? NF_ALLMULTI : 0) |
			     (f->uni_overflow ? NF_UNI_OVERFLOW : 0) |
			     (f->multi_overflow ? NF_MULTI_OVERFLOW : 0)));
	sbuf_put(b, f->mac, 6);
	sbuf_u16(b, (uint16_t)f->nuni);
	sbuf_put(b, f->uni, 6 * (size_t)f->nuni);
	sbuf_u16(b, (uint16_t)f->nmulti);
	sbuf_put(b, f->multi, 6 * (size_t)f->nmulti);
	sbuf_u16(b, (uint16_t)n->active_pairs);
	sbuf_u64(b, n->offloads);
	pthread_mutex_unlock(&n->lock);
}

static int net_load(void *opaque, struct sreader *r, uint64_t features, bool running, struct err *e)
{
	struct virtio_net *n = opaque;
	struct net_filter f = {0};
	uint8_t mac[6];
	uint32_t version = sreader_u32(r);
	sreader_get(r, mac, 6);
	uint16_t status = sreader_u16(r);
	uint8_t flags = sreader_u8(r);
	sreader_get(r, f.mac, 6);
	f.nuni = sreader_u16(r);
	if (sreader_check(r, f.nuni <= NET_MAC_TABLE))
		sreader_get(r, f.uni, 6 * (size_t)f.nuni);
	f.nmulti = sreader_u16(r);
	if (sreader_check(r, f.nmulti <= NET_MAC_TABLE))
		sreader_get(r, f.multi, 6 * (size_t)f.nmulti);
	unsigned pairs = sreader_u16(r);
	uint64_t offloads = sreader_u64(r);
	if (r->bad || !sreader_done(r))
		return err_set(e, -EINVAL,
			       "%s: saved state truncated, too long or with too many MAC filter entries",
			       n->name);
	if (version != NET_STATE_VERSION)
		return err_set(e, -EINVAL, "%s: saved state version %u, not %d", n->name, version,
			       NET_STATE_VERSION);
	f.promisc = flags & NF_PROMISC;
	f.allmulti = flags & NF_ALLMULTI;
	f.uni_overflow = flags & NF_UNI_OVERFLOW;
	f.multi_overflow = flags & NF_MULTI_OVERFLOW;
	bool mq = features & VIRTIO_BIT(VIRTIO_NET_F_MQ);
	const char *why = NULL;
	if (flags & ~(NF_PROMISC | NF_ALLMULTI | NF_UNI_OVERFLOW | NF_MULTI_OVERFLOW))
		why = "unknown filter flags";
	else if ((mac[0] & 1) || (f.mac[0] & 1))
		why = "a multicast MAC address";
	else if ((f.uni_overflow && f.nuni) || (f.multi_overflow && f.nmulti))
		why = "a MAC table both overflowed and filled";
	else if (status & ~(NET_S_LINK_UP | NET_S_ANNOUNCE))
		why = "unknown status bits";
	else if ((status & NET_S_ANNOUNCE) && !(features & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE)))
		why = "an announcement without GUEST_ANNOUNCE";
	else if (pairs > n->npairs || (features && pairs > (mq ? n->npairs : 1)) || (running && pairs < 1))
		why = "active queue pairs out of range";
	else if (offloads & ~NET_GUEST_OFFLOAD_BITS || (features && (offloads & ~features)))
		why = "offloads that were not negotiated";
	if (why)
		return err_set(e, -EINVAL, "%s: saved state: %s", n->name, why);

	pthread_mutex_lock(&n->lock);
	memcpy(n->config, mac, 6);
	/* The link is this host's backend's; whether the guest still owes an announcement is the stream's. */
	uint16_t link = __atomic_load_n(&n->sh->gone, __ATOMIC_ACQUIRE) ? 0 : NET_S_LINK_UP;
	put_le16(n->config + 6, (uint16_t)(link | (status & NET_S_ANNOUNCE)));
	n->filter = f;
	n->active_pairs = pairs;
	n->offloads = offloads;
	n->restored = running;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

static uint16_t net_held(void *opaque, unsigned q)
{
	struct virtio_net *n = opaque;
	/* The control queue (2 * npairs, or 2 without MQ): commands are answered in the pass that takes them.
	 */
	if (q >= 2 * n->npairs || (n->ctrlq && q == n->ctrl_index))
		return 0;
	const struct net_pair *p = &n->pairs[q / 2];
	return (uint16_t)(q % 2 ? p->tx_blocked : p->rx_tail);
}

static const struct virtio_device_ops net_ops = {
    .config_read = net_config_read, /* writes are ignored: the MAC changes through the control queue */
    .start = net_start,
    .stop = net_stop,
    .save = net_save,
    .load = net_load,
    .held = net_held,
};

void virtio_net_stats(const struct virtio_net_shared *sh, struct virtio_net_stats *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < NET_MAX_QUEUES; i++) {
		const struct virtio_net_stats *c = &sh->pair[i];
#define ADD(f) s->f += __atomic_load_n(&c->f, __ATOMIC_RELAXED)
		ADD(rx_packets);
		ADD(rx_bytes);
		ADD(rx_dropped);
		ADD(rx_errors);
		ADD(tx_packets);
		ADD(tx_bytes);
		ADD(tx_dropped);
		ADD(tx_errors);
		ADD(rx_notifications);
		ADD(tx_notifications);
		ADD(ctrl_notifications);
		ADD(rx_interrupts);
		ADD(tx_interrupts);
		ADD(ctrl_interrupts);
#undef ADD
	}
	s->link_up = !__atomic_load_n(&sh->gone, __ATOMIC_ACQUIRE);
}

static uint64_t offered_features(const struct virtio_net *n)
{
	unsigned m = n->nb->offload_mask;
	uint64_t f = VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
		     VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
		     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) |
		     VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
		     VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) |
		     VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |
		     VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
	/* What the guest may receive is what the backend can hand us. */
	if (m & TUN_F_CSUM) {
		f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
		if (m & TUN_F_TSO4)
			f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
		if (m & TUN_F_TSO6)
			f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
		if (m & TUN_F_TSO_ECN)
			f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
		if (m & TUN_F_UFO)
			f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO);
	}
	/* UFO from the guest only where the kernel still takes it (it went in 4.14 and came back as USO). */
	if (m & TUN_F_UFO)
		f |= VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO);
	if (n->npairs > 1)
		f |= VIRTIO_BIT(VIRTIO_NET_F_MQ);
	return f;
}

static void net_free(struct virtio_net *n)
{
	if (n->stop_fd >= 0)
		close(n->stop_fd);
	free(n->pairs);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

struct virtio_net *virtio_net_create(const struct virtio_pci_env *env, unsigned devfn, struct net_backend *nb,
				     struct virtio_net_shared *sh, const uint8_t mac[6], const char *name,
				     struct err *e)
{
	if (nb->nqueues < 1 || nb->nqueues > NET_MAX_QUEUES) {
		err_set(e, -EINVAL, "%s: %u queue pairs (1..%d)", name, nb->nqueues, NET_MAX_QUEUES);
		return NULL;
	}
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	n->nb = nb;
	n->gate = env->gate;
	n->sh = sh;
	n->npairs = nb->nqueues;
	n->stop_fd = -1;
	snprintf(n->name, sizeof(n->name), "%s", name);
	pthread_mutex_init(&n->lock, NULL);
	if (!(n->pairs = calloc(n->npairs, sizeof(*n->pairs)))) {
		err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < n->npairs; i++) {
		n->pairs[i].n = n;
		n->pairs[i].index = i;
		n->pairs[i].fd = nb->fds[i];
		n->pairs[i].cnt = &sh->pair[i];
	}
	n->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->stop_fd < 0) {
		err_set(e, -errno, "%s: eventfd: %s", name, strerror(errno));
		goto fail;
	}
	memcpy(n->config, mac, 6);
	put_le16(n->config + 6, __atomic_load_n(&sh->gone, __ATOMIC_ACQUIRE) ? 0 : NET_S_LINK_UP);
	put_le16(n->config + 8, (uint16_t)n->npairs);
	put_le16(n->config + 10, (uint16_t)(nb->mtu >= 68 && nb->mtu <= 65535 ? nb->mtu : 1500));

	struct virtio_device_desc desc = {
	    .name = n->name,
	    .device_id = VIRTIO_ID_NET,
	    .features = offered_features(n),
	    .num_queues = 2 * n->npairs + 1,
	    .max_queue_size = NET_QUEUE_SIZE,
	    .config_size = CONFIG_SIZE,
	    .ops = &net_ops,
	    .opaque = n,
	};
	n->t = virtio_pci_create(env, devfn, &desc, e);
	if (n->t)
		return n;
fail:
	net_free(n);
	return NULL;
}

struct virtio_pci *virtio_net_transport(struct virtio_net *n)
{
	return n->t;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	virtio_pci_destroy(n->t); /* stops the pair threads first */
	net_free(n);
}
