/* SPDX-License-Identifier: MIT */
/*
 * The PCI host: configuration mechanism #1 (ports 0xcf8/0xcfc) on bus 0, a host
 * bridge at 00:00.0, and slots that other devices plug into with config-space
 * callbacks. Absent functions read all ones.
 */
#ifndef KVMINI_DEVICES_PCI_H
#define KVMINI_DEVICES_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_HOST_VENDOR_ID    0x1b36 /* Red Hat, Inc. */
#define PCI_HOST_DEVICE_ID    0x0008 /* QEMU PCIe host bridge */
#define PCI_CONFIG_SPACE_SIZE 256
/* Spelled as in <linux/pci.h>, so that both headers may be included. */
#define PCI_DEVFN(slot, func) ((((slot)&0x1f) << 3) | ((func)&0x07))

struct pci_host;

/*
 * A device's configuration space. reg is a byte offset below 256, len is 1, 2
 * or 4 and reg is a multiple of len (the host splits unaligned guest accesses
 * into bytes), so an access never crosses the end. data is little-endian; a
 * read must fill all len bytes (they arrive preset to 0xff). Called on vCPU
 * threads without the host's lock held: the device serialises itself, and may
 * not call back into the pci_host.
 */
struct pci_device_ops {
	void (*config_read)(void *opaque, uint32_t reg, uint8_t *data, uint32_t len);
	void (*config_write)(void *opaque, uint32_t reg, const uint8_t *data, uint32_t len);
};

/* Returns NULL when out of memory. */
struct pci_host *pci_host_create(void);
void pci_host_destroy(struct pci_host *h);
/*
 * Plugs a device into bus 0 at devfn (PCI_DEVFN(dev, fn), 1 to 255; 00:00.0 is
 * the host bridge, so use dev >= 1). ops must outlive the host; either callback may be NULL
 * (reads then give all ones, writes are dropped). Call it before the vCPUs run.
 * Returns 0, -EINVAL (bad devfn or no ops) or -EEXIST (slot taken).
 * Linux scans functions 1-7 only when function 0's header type has bit 7 set.
 */
int pci_register_device(struct pci_host *h, unsigned devfn, const struct pci_device_ops *ops, void *opaque);
/*
 * bus_io_fn for PORT_PCI_CONFIG_ADDR, 4 ports (opaque: struct pci_host *).
 * Only a 32-bit access at offset 0 reads or latches CONFIG_ADDRESS (bit 31
 * enable, 23:16 bus, 15:11 device, 10:8 function, 7:2 register; other bits read
 * 0). Narrower accesses are not configuration cycles: reads give 0xff bytes,
 * writes are ignored.
 */
void pci_host_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/*
 * bus_io_fn for PORT_PCI_CONFIG_DATA, 4 ports (opaque: struct pci_host *): an
 * access of len 1, 2 or 4 at offset off reaches register (CONFIG_ADDRESS 7:2)*4
 * + off of the addressed function, when the enable bit is set. Anything else
 * reads all ones and writes nothing.
 */
void pci_host_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* CONFIG_ADDRESS and the host bridge's registers back to power-on; plugged devices reset themselves. */
void pci_host_reset(struct pci_host *h);

#endif
