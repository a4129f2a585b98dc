/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci modern transport. Threads: vCPU threads access the BARs and the
 * PCI-config-access capability; the device's I/O threads call notify and
 * needs_reset. Locks: status_lock serialises status transitions (it is held
 * while the device starts or stops, so I/O threads never take it); lock
 * guards the registers. Neither is held while calling into the PCI function,
 * so the PCI layer may call back into us.
 */
#include "virtio/virtio_pci.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/le.h"
#include "devices/pci_dev.h"

#define VIRTIO_PCI_VENDOR     0x1af4
#define VIRTIO_PCI_DEVICE(id) (0x1040 + (id))
#define VIRTIO_PCI_SUBSYS     0x40 /* modern-only devices use subsystem ids >= 0x40 */

/* BAR 4 (64-bit memory): the four register blocks; BAR 1: the MSI-X table and PBA. */
#define REGS_BAR	 4
#define REGS_BAR_SIZE	 0x4000
#define COMMON_OFF	 0x0000
#define COMMON_LEN	 0x38 /* struct virtio_pci_common_cfg without the 1.2 queue_reset fields */
#define ISR_OFF		 0x1000
#define DEVICE_OFF	 0x2000
#define NOTIFY_OFF	 0x3000
#define NOTIFY_MULT	 4
#define MSIX_BAR	 1
#define MSIX_BAR_SIZE	 0x2000
#define MSIX_TABLE_OFF	 0x0000
#define MSIX_PBA_OFF	 0x1000
#define MSIX_MAX_VECTORS (MSIX_PBA_OFF / 16)

/* virtio_pci_cap.cfg_type */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4, CAP_PCI = 5 };
#define PCI_CAP_ID_VNDR 0x09

/* Offsets in struct virtio_pci_common_cfg. */
enum {
	CC_DFSELECT = 0,
	CC_DF = 4,
	CC_GFSELECT = 8,
	CC_GF = 12,
	CC_MSIX = 16,
	CC_NUMQ = 18,
	CC_STATUS = 20,
	CC_CFGGEN = 21,
	CC_QSELECT = 22,
	CC_QSIZE = 24,
	CC_QMSIX = 26,
	CC_QENABLE = 28,
	CC_QNOTIFYOFF = 30,
	CC_QDESC = 32,
	CC_QDRIVER = 40,
	CC_QDEVICE = 48,
};

struct vp_queue {
	struct virtq vq;
	uint16_t size;
	uint16_t msix_vector; /* read by I/O threads: atomic accesses */
	bool enable;
	uint64_t desc, driver, device;
	int kick_fd;
	bool ioevent; /* kick_fd is registered as an ioeventfd at the current BAR address */
};

struct virtio_pci {
	struct virtio_pci_env env;
	struct virtio_device_desc d;
	struct pci_dev *pci;
	pthread_mutex_t status_lock;
	pthread_mutex_t lock;
	uint64_t offered;
	uint64_t features; /* what the driver wrote; fixed once FEATURES_OK sticks */
	uint32_t dfselect, gfselect;
	uint16_t config_msix; /* atomic */
	uint8_t status;	      /* atomic: I/O threads may OR in NEEDS_RESET */
	uint8_t config_gen;
	uint16_t qselect;
	uint8_t isr; /* atomic */
	bool started;
	bool start_deferred; /* loaded running: started by virtio_pci_start_deferred() */
	uint64_t regs_addr;  /* where BAR 4 decodes, for the ioeventfds (under lock) */
	bool regs_mapped;
	bool warned_ioevent;
	struct vp_queue *q;
};

/* ---- interrupts ---- */

/* Whether an interrupt went out: an MSI-X message (left pending when masked) or the INTx line. */
static bool raise_vector(struct virtio_pci *t, uint16_t vec, uint8_t isr_bit)
{
	if (pci_dev_msix_enabled(t->pci))
		return vec != VIRTIO_MSI_NO_VECTOR && pci_dev_msix_notify(t->pci, vec);
	__atomic_or_fetch(&t->isr, isr_bit, __ATOMIC_SEQ_CST);
	pci_dev_set_intx(t->pci, 1);
	return true;
}

bool virtio_pci_notify(struct virtio_pci *t, unsigned q)
{
	if (q >= t->d.num_queues || !virtq_should_notify(&t->q[q].vq))
		return false;
	return raise_vector(t, __atomic_load_n(&t->q[q].msix_vector, __ATOMIC_ACQUIRE), 1);
}

void virtio_pci_config_changed(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->lock);
	t->config_gen++;
	pthread_mutex_unlock(&t->lock);
	raise_vector(t, __atomic_load_n(&t->config_msix, __ATOMIC_ACQUIRE), 2);
}

void virtio_pci_needs_reset(struct virtio_pci *t, const char *why)
{
	uint8_t old = __atomic_fetch_or(&t->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_SEQ_CST);
	if (old & VIRTIO_STATUS_NEEDS_RESET)
		return;
	fprintf(stderr, "kvmini: %s: the guest driver broke the virtio protocol (%s); device needs a reset\n",
		t->d.name, why);
	raise_vector(t, __atomic_load_n(&t->config_msix, __ATOMIC_ACQUIRE), 2);
}

/* ---- queries for the device ---- */

uint64_t virtio_pci_features(const struct virtio_pci *t)
{
	return t->features;
}

struct virtq *virtio_pci_queue(struct virtio_pci *t, unsigned q)
{
	if (q >= t->d.num_queues || !t->q[q].vq.enabled)
		return NULL;
	return &t->q[q].vq;
}

int virtio_pci_kick_fd(const struct virtio_pci *t, unsigned q)
{
	return q < t->d.num_queues ? t->q[q].kick_fd : -1;
}

/* ---- ioeventfds follow BAR 4 ---- */

static void ioevents_set(struct virtio_pci *t, bool assign)
{
	const struct ioevent_ops *io = t->env.ioevent;
	if (!io)
		return;
	for (unsigned i = 0; i < t->d.num_queues; i++) {
		struct vp_queue *vq = &t->q[i];
		if (vq->ioevent == assign)
			continue;
		/* Linux writes the queue index as 16 bits; other widths still exit to notify_write(). */
		int r = io->set(io->opaque, t->regs_addr + NOTIFY_OFF + (uint64_t)i * NOTIFY_MULT, 2,
				vq->kick_fd, assign);
		if (r == 0)
			vq->ioevent = assign;
		else if (assign && !t->warned_ioevent) {
			t->warned_ioevent = true;
			fprintf(stderr,
				"kvmini: %s: no ioeventfd (%s); queue notifications take the slow path\n",
				t->d.name, strerror(-r));
		}
	}
}

static void regs_remap(void *opaque, unsigned bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *t = opaque;
	pthread_mutex_lock(&t->lock);
	ioevents_set(t, false);
	t->regs_addr = addr;
	t->regs_mapped = mapped;
	if (mapped)
		ioevents_set(t, true);
	pthread_mutex_unlock(&t->lock);
}

/* ---- status transitions ---- */

/* Back to the state after power-on; status_lock held, device stopped. */
static void reset_registers(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->lock);
	t->features = 0;
	t->dfselect = t->gfselect = 0;
	t->qselect = 0;
	__atomic_store_n(&t->config_msix, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
	__atomic_store_n(&t->status, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&t->isr, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < t->d.num_queues; i++) {
		struct vp_queue *vq = &t->q[i];
		virtq_reset(&vq->vq);
		vq->size = t->d.max_queue_size;
		__atomic_store_n(&vq->msix_vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
		vq->enable = false;
		vq->desc = vq->driver = vq->device = 0;
		uint64_t drain;
		while (read(vq->kick_fd, &drain, sizeof(drain)) == sizeof(drain))
			; /* stale kicks from the previous driver */
	}
	pthread_mutex_unlock(&t->lock);
	pci_dev_set_intx(t->pci, 0);
}

static void stop_device(struct virtio_pci *t)
{
	if (t->started) {
		t->d.ops->stop(t->d.opaque);
		t->started = false;
	}
}

/* DRIVER_OK: enable the queues the driver set up and start the device. status_lock held. */
static void start_device(struct virtio_pci *t)
{
	const char *why = NULL;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->d.num_queues && !why; i++) {
		struct vp_queue *vq = &t->q[i];
		if (!vq->enable)
			continue;
		struct virtq_layout l = {
		    .size = vq->size,
		    .desc = vq->desc,
		    .avail = vq->driver,
		    .used = vq->device,
		    .event_idx = t->features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
		    .indirect = t->features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC),
		};
		if (virtq_enable(&vq->vq, t->env.mem, &l))
			why = "a queue's size or ring addresses are invalid";
	}
	pthread_mutex_unlock(&t->lock);
	if (!why) {
		if (t->d.ops->start(t->d.opaque) == 0)
			t->started = true;
		else
			why = "the device could not start";
	}
	if (why)
		virtio_pci_needs_reset(t, why);
}

static void write_status(struct virtio_pci *t, uint8_t v)
{
	pthread_mutex_lock(&t->status_lock);
	if (v == 0) {
		stop_device(t);
		reset_registers(t);
		pthread_mutex_unlock(&t->status_lock);
		return;
	}
	pthread_mutex_lock(&t->lock);
	uint8_t old = __atomic_load_n(&t->status, __ATOMIC_ACQUIRE);
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Refuse features we did not offer, and legacy drivers (no VERSION_1). */
		if ((t->features & ~t->offered) || !(t->features & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	bool go = (v & VIRTIO_STATUS_DRIVER_OK) && (v & VIRTIO_STATUS_FEATURES_OK) &&
		  !(old & VIRTIO_STATUS_DRIVER_OK) && !t->started;
	/* NEEDS_RESET is the device's to set, and sticks until a reset. */
	v = (uint8_t)((v & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
	__atomic_store_n(&t->status, v, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);
	if (go && !(v & VIRTIO_STATUS_NEEDS_RESET))
		start_device(t);
	pthread_mutex_unlock(&t->status_lock);
}

/* ---- the common configuration block ---- */

static void common_snapshot(struct virtio_pci *t, uint8_t *b)
{
	memset(b, 0, COMMON_LEN);
	put_le(b + CC_DFSELECT, t->dfselect, 4);
	put_le(b + CC_DF, t->dfselect < 2 ? (uint32_t)(t->offered >> (32 * t->dfselect)) : 0, 4);
	put_le(b + CC_GFSELECT, t->gfselect, 4);
	put_le(b + CC_GF, t->gfselect < 2 ? (uint32_t)(t->features >> (32 * t->gfselect)) : 0, 4);
	put_le(b + CC_MSIX, __atomic_load_n(&t->config_msix, __ATOMIC_ACQUIRE), 2);
	put_le(b + CC_NUMQ, t->d.num_queues, 2);
	b[CC_STATUS] = __atomic_load_n(&t->status, __ATOMIC_ACQUIRE);
	b[CC_CFGGEN] = t->config_gen;
	put_le(b + CC_QSELECT, t->qselect, 2);
	if (t->qselect < t->d.num_queues) {
		struct vp_queue *vq = &t->q[t->qselect];
		put_le(b + CC_QSIZE, vq->size, 2);
		put_le(b + CC_QMSIX, __atomic_load_n(&vq->msix_vector, __ATOMIC_ACQUIRE), 2);
		put_le(b + CC_QENABLE, vq->enable, 2);
		put_le(b + CC_QNOTIFYOFF, t->qselect, 2);
		put_le(b + CC_QDESC, vq->desc, 8);
		put_le(b + CC_QDRIVER, vq->driver, 8);
		put_le(b + CC_QDEVICE, vq->device, 8);
	}
}

static bool touches(uint32_t off, uint32_t len, uint32_t field, uint32_t flen)
{
	return off < field + flen && field < off + len;
}

static uint16_t valid_vector(const struct virtio_pci *t, uint64_t v)
{
	/* A vector we do not have reads back as NO_VECTOR: that is how the driver learns it failed. */
	return v < t->d.num_queues + 1u ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static void common_write(struct virtio_pci *t, uint32_t off, const uint8_t *data, uint32_t len)
{
	uint8_t b[COMMON_LEN];
	bool status_written = false;
	uint8_t status = 0;

	pthread_mutex_lock(&t->lock);
	common_snapshot(t, b);
	memcpy(b + off, data, len);
	uint8_t st = __atomic_load_n(&t->status, __ATOMIC_ACQUIRE);
	bool features_fixed = st & VIRTIO_STATUS_FEATURES_OK;
	bool live = st & VIRTIO_STATUS_DRIVER_OK;
	struct vp_queue *vq = t->qselect < t->d.num_queues ? &t->q[t->qselect] : NULL;

	if (touches(off, len, CC_DFSELECT, 4))
		t->dfselect = (uint32_t)get_le(b + CC_DFSELECT, 4);
	if (touches(off, len, CC_GFSELECT, 4))
		t->gfselect = (uint32_t)get_le(b + CC_GFSELECT, 4);
	if (touches(off, len, CC_GF, 4) && t->gfselect < 2 && !features_fixed) {
		unsigned sh = 32 * t->gfselect;
		t->features = (t->features & ~(0xffffffffULL << sh)) | (get_le(b + CC_GF, 4) << sh);
	}
	if (touches(off, len, CC_MSIX, 2))
		__atomic_store_n(&t->config_msix, valid_vector(t, get_le(b + CC_MSIX, 2)), __ATOMIC_RELEASE);
	if (touches(off, len, CC_STATUS, 1)) {
		status_written = true;
		status = b[CC_STATUS];
	}
	if (touches(off, len, CC_QSELECT, 2))
		t->qselect = (uint16_t)get_le(b + CC_QSELECT, 2);
	else if (vq && !live) {
		/* Queue registers are the driver's to set up before DRIVER_OK only. */
		if (touches(off, len, CC_QSIZE, 2))
			vq->size = (uint16_t)get_le(b + CC_QSIZE, 2);
		if (touches(off, len, CC_QENABLE, 2) && get_le(b + CC_QENABLE, 2) == 1)
			vq->enable = true;
		if (touches(off, len, CC_QDESC, 8))
			vq->desc = get_le(b + CC_QDESC, 8);
		if (touches(off, len, CC_QDRIVER, 8))
			vq->driver = get_le(b + CC_QDRIVER, 8);
		if (touches(off, len, CC_QDEVICE, 8))
			vq->device = get_le(b + CC_QDEVICE, 8);
	}
	if (vq && touches(off, len, CC_QMSIX, 2) && !touches(off, len, CC_QSELECT, 2))
		__atomic_store_n(&vq->msix_vector, valid_vector(t, get_le(b + CC_QMSIX, 2)),
				 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);

	if (status_written)
		write_status(t, status);
}

/* ---- BAR 4 ---- */

static void regs_access(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_pci *t = opaque;

	if (!is_write)
		memset(data, 0, len);
	if (off + len <= COMMON_OFF + COMMON_LEN) { /* COMMON_OFF is 0 */
		uint32_t o = (uint32_t)(off - COMMON_OFF);
		if (is_write) {
			common_write(t, o, data, len);
		} else {
			uint8_t b[COMMON_LEN];
			pthread_mutex_lock(&t->lock);
			common_snapshot(t, b);
			pthread_mutex_unlock(&t->lock);
			memcpy(data, b + o, len);
		}
	} else if (off == ISR_OFF) {
		if (!is_write) {
			/* Reading the ISR acknowledges the interrupt. */
			data[0] = __atomic_exchange_n(&t->isr, 0, __ATOMIC_SEQ_CST);
			pci_dev_set_intx(t->pci, 0);
		}
	} else if (off >= DEVICE_OFF && off + len <= DEVICE_OFF + t->d.config_size) {
		uint32_t o = (uint32_t)(off - DEVICE_OFF);
		if (is_write) {
			if (t->d.ops->config_write)
				t->d.ops->config_write(t->d.opaque, o, data, len);
		} else if (t->d.ops->config_read) {
			t->d.ops->config_read(t->d.opaque, o, data, len);
		}
	} else if (off >= NOTIFY_OFF && off < NOTIFY_OFF + (uint64_t)t->d.num_queues * NOTIFY_MULT) {
		/* A notification that did not hit an ioeventfd (another width, or none registered). */
		if (is_write) {
			uint64_t one = 1;
			if (write(t->q[(off - NOTIFY_OFF) / NOTIFY_MULT].kick_fd, &one, sizeof(one)) < 0) {
				/* The counter cannot overflow in practice; nothing to do. */
			}
		}
	}
}

static const struct pci_bar_ops regs_ops = {.access = regs_access, .remap = regs_remap};

/* ---- VIRTIO_PCI_CAP_PCI_CFG: BAR access through configuration space ---- */

#define PCICFG_BAR    4
#define PCICFG_OFFSET 8
#define PCICFG_LENGTH 12
#define PCICFG_DATA   16

static bool pcicfg_target(const uint8_t *cap, uint64_t *off, uint32_t *len)
{
	*off = get_le(cap + PCICFG_OFFSET, 4);
	*len = (uint32_t)get_le(cap + PCICFG_LENGTH, 4);
	return cap[PCICFG_BAR] == REGS_BAR && (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
	       *off + *len <= REGS_BAR_SIZE;
}

static void pcicfg_read(void *opaque, uint32_t off, uint8_t *cap, uint32_t cap_len)
{
	uint64_t boff;
	uint32_t blen;
	if (off + 1 <= PCICFG_DATA || cap_len < PCICFG_DATA + 4)
		return;
	memset(cap + PCICFG_DATA, 0, 4);
	if (pcicfg_target(cap, &boff, &blen))
		regs_access(opaque, REGS_BAR, boff, cap + PCICFG_DATA, blen, false);
}

static void pcicfg_write(void *opaque, uint32_t off, const uint8_t *data, uint32_t len, uint8_t *cap,
			 uint32_t cap_len)
{
	uint64_t boff;
	uint32_t blen;
	if (cap_len < PCICFG_DATA + 4 || off + len > cap_len)
		return;
	if (off >= PCICFG_DATA) {
		memcpy(cap + off, data, len);
		if (pcicfg_target(cap, &boff, &blen)) {
			uint8_t buf[4];
			memcpy(buf, cap + PCICFG_DATA, 4);
			regs_access(opaque, REGS_BAR, boff, buf, blen, true);
		}
	} else if (off >= PCICFG_BAR && off != PCICFG_BAR + 1 && off + len <= PCICFG_DATA) {
		/* bar, offset and length are the driver's to set; the padding and type stay ours. */
		for (uint32_t i = 0; i < len; i++)
			if (off + i == PCICFG_BAR || off + i >= PCICFG_OFFSET)
				cap[off + i] = data[i];
	}
}

static const struct pci_cap_ops pcicfg_ops = {.read = pcicfg_read, .write = pcicfg_write};

/* ---- creation ---- */

static int add_vndr_cap(struct virtio_pci *t, uint8_t type, uint32_t off, uint32_t len, const uint8_t *extra,
			uint32_t extra_len, const struct pci_cap_ops *ops)
{
	uint8_t cap[24] = {0};
	uint32_t cap_len = 16 + extra_len;
	cap[0] = PCI_CAP_ID_VNDR;
	cap[2] = (uint8_t)cap_len;
	cap[3] = type;
	cap[4] = REGS_BAR;
	put_le(cap + 8, off, 4);
	put_le(cap + 12, len, 4);
	if (extra_len)
		memcpy(cap + 16, extra, extra_len);
	int r = pci_dev_add_cap(t->pci, cap, cap_len, ops, t);
	return r < 0 ? r : 0;
}

static uint32_t class_of(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* network controller, Ethernet */
	case VIRTIO_ID_BLOCK:
		return 0x010000; /* mass storage, SCSI (as QEMU reports virtio-blk) */
	default:
		return 0xff0000;
	}
}

struct virtio_pci *virtio_pci_create(const struct virtio_pci_env *env, unsigned devfn,
				     const struct virtio_device_desc *desc, struct err *e)
{
	if (desc->num_queues < 1 || desc->num_queues > VIRTIO_MAX_QUEUES ||
	    desc->num_queues + 1 > MSIX_MAX_VECTORS || desc->max_queue_size < 1 ||
	    desc->max_queue_size > VIRTQ_MAX_SIZE || (desc->max_queue_size & (desc->max_queue_size - 1)) ||
	    desc->config_size > NOTIFY_OFF - DEVICE_OFF) {
		err_set(e, -EINVAL, "%s: bad virtio device description", desc->name);
		return NULL;
	}
	struct virtio_pci *t = calloc(1, sizeof(*t));
	if (!t || !(t->q = calloc(desc->num_queues, sizeof(*t->q)))) {
		free(t);
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	t->env = *env;
	t->d = *desc;
	t->offered = desc->features | VIRTIO_BIT(VIRTIO_F_VERSION_1) |
		     VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	pthread_mutex_init(&t->status_lock, NULL);
	pthread_mutex_init(&t->lock, NULL);
	for (unsigned i = 0; i < desc->num_queues; i++)
		t->q[i].kick_fd = -1;
	for (unsigned i = 0; i < desc->num_queues; i++) {
		t->q[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->q[i].kick_fd < 0) {
			err_set(e, -errno, "%s: eventfd: %s", desc->name, strerror(errno));
			goto fail;
		}
	}

	struct pci_dev_id id = {
	    .vendor = VIRTIO_PCI_VENDOR,
	    .device = VIRTIO_PCI_DEVICE(desc->device_id),
	    .subsys_vendor = VIRTIO_PCI_VENDOR,
	    .subsys = VIRTIO_PCI_SUBSYS,
	    .revision = 1,
	    .class_code = class_of(desc->device_id),
	    .int_pin = 1,
	};
	t->pci = pci_dev_create(env->host, devfn, &id, &env->intx, env->msi, e);
	if (!t->pci)
		goto fail;
	int r;
	uint8_t mult[4], pcicfg[4] = {0};
	put_le(mult, NOTIFY_MULT, 4);
	if ((r = pci_dev_add_bar(t->pci, MSIX_BAR, PCI_BAR_MEM32, false, MSIX_BAR_SIZE, NULL, NULL)) ||
	    (r = pci_dev_add_bar(t->pci, REGS_BAR, PCI_BAR_MEM64, true, REGS_BAR_SIZE, &regs_ops, t)) ||
	    (r = pci_dev_add_msix(t->pci, desc->num_queues + 1, MSIX_BAR, MSIX_TABLE_OFF, MSIX_PBA_OFF)) ||
	    (r = add_vndr_cap(t, CAP_COMMON, COMMON_OFF, COMMON_LEN, NULL, 0, NULL)) ||
	    (r = add_vndr_cap(t, CAP_NOTIFY, NOTIFY_OFF, desc->num_queues * NOTIFY_MULT, mult, 4, NULL)) ||
	    (r = add_vndr_cap(t, CAP_ISR, ISR_OFF, 1, NULL, 0, NULL)) ||
	    (desc->config_size &&
	     (r = add_vndr_cap(t, CAP_DEVICE, DEVICE_OFF, desc->config_size, NULL, 0, NULL))) ||
	    (r = add_vndr_cap(t, CAP_PCI, 0, 0, pcicfg, 4, &pcicfg_ops))) {
		err_set(e, r, "%s: cannot set up its PCI function: %s", desc->name, strerror(-r));
		goto fail;
	}
	reset_registers(t);
	return t;
fail:
	virtio_pci_destroy(t);
	return NULL;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->status_lock);
	stop_device(t);
	pthread_mutex_unlock(&t->status_lock);
	/* Unplug first: no vCPU reaches regs_access or regs_remap after this. */
	pci_dev_destroy(t->pci);
	pthread_mutex_lock(&t->lock);
	ioevents_set(t, false);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->d.num_queues; i++)
		if (t->q[i].kick_fd >= 0)
			close(t->q[i].kick_fd);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->status_lock);
	free(t->q);
	free(t);
}

/* ---- saved state ---- */

#define VIRTIO_PCI_STATE_VERSION 1
#define STATUS_KNOWN                                                                                         \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |                        \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

void virtio_pci_save(const struct virtio_pci *ct, struct sbuf *b)
{
	struct virtio_pci *t = (struct virtio_pci *)ct; /* for the locks only */
	pthread_mutex_lock(&t->lock);
	sbuf_u32(b, VIRTIO_PCI_STATE_VERSION);
	sbuf_u8(b, __atomic_load_n(&t->status, __ATOMIC_ACQUIRE));
	sbuf_u8(b, __atomic_load_n(&t->isr, __ATOMIC_ACQUIRE));
	sbuf_u8(b, t->config_gen);
	sbuf_u32(b, t->dfselect);
	sbuf_u32(b, t->gfselect);
	sbuf_u64(b, t->features);
	sbuf_u16(b, __atomic_load_n(&t->config_msix, __ATOMIC_ACQUIRE));
	sbuf_u16(b, t->qselect);
	sbuf_u16(b, (uint16_t)t->d.num_queues);
	for (unsigned i = 0; i < t->d.num_queues; i++) {
		const struct vp_queue *vq = &t->q[i];
		sbuf_u16(b, vq->size);
		sbuf_u16(b, __atomic_load_n(&vq->msix_vector, __ATOMIC_ACQUIRE));
		sbuf_u8(b, vq->enable);
		sbuf_u64(b, vq->desc);
		sbuf_u64(b, vq->driver);
		sbuf_u64(b, vq->device);
		uint16_t held =
		    vq->vq.enabled && t->started && t->d.ops->held ? t->d.ops->held(t->d.opaque, i) : 0;
		virtq_save(&vq->vq, held, b);
	}
	pthread_mutex_unlock(&t->lock);
	/* The device's own state, length first so that the transport can bound it. */
	size_t at = b->len;
	sbuf_u32(b, 0);
	if (t->d.ops->save)
		t->d.ops->save(t->d.opaque, b);
	if (!b->oom)
		put_le(b->data + at, b->len - at - 4, 4);
}

static bool vector_ok(const struct virtio_pci *t, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < t->d.num_queues + 1u;
}

int virtio_pci_load(struct virtio_pci *t, struct sreader *r, struct err *e)
{
	const char *name = t->d.name;
	uint32_t version = sreader_u32(r);
	uint8_t status = sreader_u8(r), isr = sreader_u8(r), config_gen = sreader_u8(r);
	uint32_t dfselect = sreader_u32(r), gfselect = sreader_u32(r);
	uint64_t features = sreader_u64(r);
	uint16_t config_msix = sreader_u16(r), qselect = sreader_u16(r), nq = sreader_u16(r);
	if (r->bad)
		return err_set(e, -EINVAL, "%s: saved transport state truncated", name);
	if (version != VIRTIO_PCI_STATE_VERSION)
		return err_set(e, -EINVAL, "%s: saved transport state version %u, not %d", name, version,
			       VIRTIO_PCI_STATE_VERSION);
	if (nq != t->d.num_queues)
		return err_set(e, -EINVAL, "%s: saved state has %u queues, this device %u", name, nq,
			       t->d.num_queues);
	if (status & ~STATUS_KNOWN)
		return err_set(e, -EINVAL, "%s: saved device status %#x has unknown bits", name, status);
	bool features_ok = status & VIRTIO_STATUS_FEATURES_OK;
	/* What write_status() lets through: FEATURES_OK only for offered features with VERSION_1 ... */
	if (features_ok && ((features & ~t->offered) || !(features & VIRTIO_BIT(VIRTIO_F_VERSION_1))))
		return err_set(e, -EINVAL,
			       "%s: saved features %#" PRIx64 " with FEATURES_OK, not offered %#" PRIx64,
			       name, features, t->offered);
	/* ... and NEEDS_RESET only from a device that the driver started (DRIVER_OK). */
	if ((status & VIRTIO_STATUS_NEEDS_RESET) && !(status & VIRTIO_STATUS_DRIVER_OK))
		return err_set(e, -EINVAL, "%s: saved status %#x: NEEDS_RESET without DRIVER_OK", name,
			       status);
	if (isr & ~3u)
		return err_set(e, -EINVAL, "%s: saved ISR %#x has unknown bits", name, isr);
	if (!vector_ok(t, config_msix))
		return err_set(e, -EINVAL, "%s: saved configuration vector %u out of range", name,
			       config_msix);
	bool live = (status & VIRTIO_STATUS_DRIVER_OK) && features_ok;
	bool running = live && !(status & VIRTIO_STATUS_NEEDS_RESET);
	if (t->started)
		return err_set(e, -EBUSY, "%s: cannot load state into a device the driver started", name);

	struct vp_queue *nqs = calloc(nq, sizeof(*nqs));
	if (!nqs)
		return err_set(e, -ENOMEM, "out of memory");
	int ret = 0;
	for (unsigned i = 0; i < nq && !ret; i++) {
		struct vp_queue *vq = &nqs[i];
		vq->size = sreader_u16(r);
		vq->msix_vector = sreader_u16(r);
		uint8_t enable = sreader_u8(r);
		vq->enable = enable;
		vq->desc = sreader_u64(r);
		vq->driver = sreader_u64(r);
		vq->device = sreader_u64(r);
		struct err qe = {0};
		int qr = virtq_load(&vq->vq, t->env.mem, r, &qe);
		if (r->bad)
			ret = err_set(e, -EINVAL, "%s: saved transport state truncated", name);
		else if (qr)
			ret = err_set(e, qr, "%s: queue %u: %s", name, i, qe.msg);
		else if (enable > 1 || vq->size > t->d.max_queue_size)
			ret = err_set(e, -EINVAL, "%s: queue %u: saved size %u or enable %u out of range",
				      name, i, vq->size, enable);
		else if (!vector_ok(t, vq->msix_vector))
			ret = err_set(e, -EINVAL, "%s: queue %u: saved vector %u out of range", name, i,
				      vq->msix_vector);
		else if (running && vq->enable && !vq->vq.enabled)
			ret = err_set(e, -EINVAL, "%s: queue %u: enabled in a running device but not loaded",
				      name, i);
		else if (vq->vq.enabled) {
			const struct virtq_layout *l = &vq->vq.l;
			if (!live || !vq->enable || l->size != vq->size || l->desc != vq->desc ||
			    l->avail != vq->driver || l->used != vq->device ||
			    l->event_idx != !!(features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX)) ||
			    l->indirect != !!(features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC)))
				ret =
				    err_set(e, -EINVAL,
					    "%s: queue %u: saved ring state does not match the registers or "
					    "features",
					    name, i);
		}
	}
	/* The device's own state, within its length. */
	uint32_t dlen = sreader_u32(r);
	if (!ret && (r->bad || !sreader_check(r, dlen <= r->len - r->off)))
		ret = err_set(e, -EINVAL, "%s: saved transport state truncated", name);
	if (!ret) {
		struct sreader dr;
		sreader_init(&dr, r->p + r->off, dlen);
		r->off += dlen;
		if (t->d.ops->load)
			ret = t->d.ops->load(t->d.opaque, &dr, features_ok ? features : 0, running, e);
		else if (dlen)
			ret = err_set(e, -EINVAL, "%s: saved device state where this device has none", name);
	}
	if (ret) {
		free(nqs);
		return ret;
	}

	/* Everything checked, the device's part in: nothing can fail from here. */
	pthread_mutex_lock(&t->status_lock);
	pthread_mutex_lock(&t->lock);
	t->features = features;
	t->dfselect = dfselect;
	t->gfselect = gfselect;
	t->config_gen = config_gen;
	t->qselect = qselect;
	__atomic_store_n(&t->config_msix, config_msix, __ATOMIC_RELEASE);
	__atomic_store_n(&t->isr, isr, __ATOMIC_RELEASE); /* the INTx level is pci_dev's state */
	__atomic_store_n(&t->status, status, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nq; i++) {
		struct vp_queue *vq = &t->q[i], *s = &nqs[i];
		vq->vq = s->vq;
		vq->size = s->size;
		__atomic_store_n(&vq->msix_vector, s->msix_vector, __ATOMIC_RELEASE);
		vq->enable = s->enable;
		vq->desc = s->desc;
		vq->driver = s->driver;
		vq->device = s->device;
		uint64_t drain;
		while (read(vq->kick_fd, &drain, sizeof(drain)) == sizeof(drain))
			; /* kicks for this device's old rings; start() looks at the rings anyway */
	}
	/* Already there when BAR 4 was placed (pci_dev state loads first); harmless twice. */
	if (t->regs_mapped)
		ioevents_set(t, true);
	pthread_mutex_unlock(&t->lock);
	free(nqs);
	/*
	 * What start_device() does after enabling the queues (they are enabled at their saved
	 * places) waits for virtio_pci_start_deferred(): the device's threads are then started by
	 * the thread that starts the vCPUs, after the sandbox, not by the one loading the state.
	 */
	t->start_deferred = running;
	pthread_mutex_unlock(&t->status_lock);
	return 0;
}

void virtio_pci_start_deferred(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->status_lock);
	if (t->start_deferred && !t->started) {
		if (t->d.ops->start(t->d.opaque) == 0)
			t->started = true;
		else
			virtio_pci_needs_reset(t, "the device could not start");
	}
	t->start_deferred = false;
	pthread_mutex_unlock(&t->status_lock);
}

struct pci_dev *virtio_pci_function(struct virtio_pci *t)
{
	return t->pci;
}
