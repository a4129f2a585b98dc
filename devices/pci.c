/* SPDX-License-Identifier: MIT */
/* Runs on vCPU threads (config accesses) and the set-up thread (create, register, reset, destroy). */
#include "pci.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_ENABLE	  0x80000000u
#define CONFIG_ADDR_MASK  0x80fffffcu /* reserved bits 30:24 and bits 1:0 read as 0 */
#define PCI_COMMAND	  0x04
#define PCI_COMMAND_WMASK 0x0547u /* I/O, memory, bus master, parity, SERR#, INTx disable */
#define HB_COMMAND_INIT	  0x0006u /* memory + bus master, as a PC host bridge reports */
#define NUM_DEVFN	  256

struct pci_slot {
	const struct pci_device_ops *ops;
	void *opaque;
};

struct pci_host {
	pthread_mutex_t lock; /* guards addr, hb_cfg and slots */
	uint32_t addr;	      /* CONFIG_ADDRESS */
	uint8_t hb_cfg[PCI_CONFIG_SPACE_SIZE];
	struct pci_slot slots[NUM_DEVFN];
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void hb_init(struct pci_host *h)
{
	uint8_t *c = h->hb_cfg;
	memset(c, 0, PCI_CONFIG_SPACE_SIZE);
	put16(c + 0x00, PCI_HOST_VENDOR_ID);
	put16(c + 0x02, PCI_HOST_DEVICE_ID);
	put16(c + PCI_COMMAND, HB_COMMAND_INIT);
	/* status 0: no capabilities; revision 0; prog-if 0 */
	c[0x0a] = 0x00; /* subclass: host bridge */
	c[0x0b] = 0x06; /* class: bridge */
	c[0x0e] = 0x00; /* header type 0, single function */
			/* BARs, interrupt pin and line stay 0: the bridge decodes nothing itself. */
}

static uint8_t hb_read(const struct pci_host *h, uint32_t reg)
{
	return h->hb_cfg[reg];
}

static void hb_write(struct pci_host *h, uint32_t reg, uint8_t v)
{
	/* Only the command register is writable, and only its harmless bits. */
	if (reg == PCI_COMMAND || reg == PCI_COMMAND + 1) {
		uint8_t m = (uint8_t)(PCI_COMMAND_WMASK >> ((reg - PCI_COMMAND) * 8));
		h->hb_cfg[reg] = (uint8_t)((h->hb_cfg[reg] & ~m) | (v & m));
	}
}

static void fill_ones(uint8_t *data, uint32_t len)
{
	memset(data, 0xff, len > 8 ? 8 : len);
}

void pci_host_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;

	if (off != 0 || len != 4) {
		/* Not a configuration cycle (on PCs 0xcf9 is the reset control register, not emulated). */
		if (!is_write)
			fill_ones(data, len);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (is_write) {
		uint32_t v = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			     (uint32_t)data[3] << 24;
		h->addr = v & CONFIG_ADDR_MASK;
	} else {
		for (int i = 0; i < 4; i++)
			data[i] = (uint8_t)(h->addr >> (8 * i));
	}
	pthread_mutex_unlock(&h->lock);
}

void pci_host_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	struct pci_slot slot = {0};

	if (!is_write)
		fill_ones(data, len);
	if ((len != 1 && len != 2 && len != 4) || off >= 4 || off + len > 4)
		return;

	pthread_mutex_lock(&h->lock);
	uint32_t addr = h->addr;
	uint32_t bus = (addr >> 16) & 0xff, devfn = (addr >> 8) & 0xff;
	uint32_t reg = (addr & 0xfc) + (uint32_t)off;
	bool on = (addr & CONFIG_ENABLE) && bus == 0;
	if (on && devfn == 0) {
		for (uint32_t i = 0; i < len; i++) {
			if (is_write)
				hb_write(h, reg + i, data[i]);
			else
				data[i] = hb_read(h, reg + i);
		}
		on = false;
	} else if (on) {
		slot = h->slots[devfn];
	}
	pthread_mutex_unlock(&h->lock);
	if (!on || !slot.ops)
		return;

	/* Devices see naturally aligned accesses only: split the rest (e.g. a word at offset 1) into bytes.
	 */
	uint32_t step = (reg % len) ? 1 : len;
	for (uint32_t i = 0; i < len; i += step) {
		if (is_write) {
			if (slot.ops->config_write)
				slot.ops->config_write(slot.opaque, reg + i, data + i, step);
		} else if (slot.ops->config_read) {
			slot.ops->config_read(slot.opaque, reg + i, data + i, step);
		}
	}
}

int pci_register_device(struct pci_host *h, unsigned devfn, const struct pci_device_ops *ops, void *opaque)
{
	int r = 0;

	if (!h || !ops || devfn >= NUM_DEVFN)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	if (devfn == 0 || h->slots[devfn].ops)
		r = -EEXIST;
	else
		h->slots[devfn] = (struct pci_slot){ops, opaque};
	pthread_mutex_unlock(&h->lock);
	return r;
}

void pci_host_reset(struct pci_host *h)
{
	pthread_mutex_lock(&h->lock);
	h->addr = 0;
	hb_init(h);
	pthread_mutex_unlock(&h->lock);
}

struct pci_host *pci_host_create(void)
{
	struct pci_host *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->lock, NULL)) {
		free(h);
		return NULL;
	}
	hb_init(h);
	return h;
}

void pci_host_destroy(struct pci_host *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h);
}
