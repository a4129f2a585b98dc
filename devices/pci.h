/* SPDX-License-Identifier: MIT */
/*
 * The PCI host: configuration mechanism #1 (ports 0xcf8/0xcfc) on bus 0, a host
 * bridge at 00:00.0, and slots that other devices plug into with config-space
 * callbacks. Absent functions read all ones. It also owns the address windows
 * BARs live in: it places BARs there and routes window accesses to the BAR
 * that decodes the address (devices/pci_dev.h builds PCI functions on this).
 *
 * Locking: CONFIG_ADDRESS and the bridge's registers have a mutex; slots and
 * BAR decoders a rwlock that vCPUs take for reading on every window access
 * and that plugging and BAR changes take for writing. No host lock is held
 * while a device callback (config or BAR access) runs: a per-slot count of
 * callbacks in flight lets pci_unregister_device() wait them out instead.
 */
#ifndef KVMINI_DEVICES_PCI_H
#define KVMINI_DEVICES_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"

#define PCI_HOST_VENDOR_ID    0x1b36 /* Red Hat, Inc. */
#define PCI_HOST_DEVICE_ID    0x0008 /* QEMU PCIe host bridge */
#define PCI_CONFIG_SPACE_SIZE 256
#define PCI_LAST_SLOT	      31 /* device numbers 1..31 on bus 0 are for plugged devices */
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

/* Address windows the host places BARs in and decodes (inclusive ends; an empty window has end < start). */
struct pci_windows {
	uint64_t io_start, io_end;
	uint64_t mem32_start, mem32_end;
	uint64_t mem64_start, mem64_end;
};

/*
 * Returns NULL when out of memory. w (copied; NULL: no windows) says where
 * pci_host_alloc_bar() places BARs and what the window functions below decode.
 */
struct pci_host *pci_host_create(const struct pci_windows *w);
/*
 * bus_io_fns for the three windows (register each on the VM's PIO or MMIO bus
 * at the window's start, length end - start + 1, opaque: struct pci_host *):
 * dispatch to the BAR that decodes the address now; nothing there reads all
 * ones. Both memory windows reach every memory BAR (a guest may move a 64-bit
 * BAR below 4 GiB). An access must lie inside one BAR; len 1, 2, 4 or 8.
 * Take only the host's rwlock for reading: vCPUs do not serialise here.
 */
void pci_host_io_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void pci_host_mem32_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void pci_host_mem64_window(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/*
 * The GSI that INTx pin (1..4 = INTA#..INTD#; other values are taken modulo 4)
 * of a device at devfn raises: IRQ_PCI_INTX_BASE + (slot + pin - 1) %
 * IRQ_PCI_INTX_COUNT (vmm/arch/x86/layout.h), the swizzle the DSDT's _PRT describes.
 */
unsigned pci_host_intx_gsi(unsigned devfn, unsigned pin);
/* Unregister (destroy) every device first. NULL is a no-op. */
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
 * Unplugs the device at devfn and stops decoding its BARs; returns once no
 * callback of it is running (so never call it from one of its own callbacks).
 * Its BAR allocations stay until pci_host_free_bar(). Any thread.
 */
void pci_unregister_device(struct pci_host *h, unsigned devfn);

/* ---- BARs: placement and decoding (for devices/pci_dev.c) ---- */

enum pci_window_id { PCI_WINDOW_IO, PCI_WINDOW_MEM32, PCI_WINDOW_MEM64 };

/*
 * Places size bytes (a power of two) at a naturally aligned address in window
 * win, first fit, as firmware would. PCI_WINDOW_MEM64 falls back to the 32-bit
 * window when the 64-bit one is empty or full. 0 with *addr set, -EINVAL (size
 * not a power of two), or -ENOSPC.
 */
int pci_host_alloc_bar(struct pci_host *h, enum pci_window_id win, uint64_t size, uint64_t *addr);
/* Gives back an allocation made by pci_host_alloc_bar() (addr as returned); unknown addresses are ignored. */
void pci_host_free_bar(struct pci_host *h, uint64_t addr);

/*
 * One access to a decoding BAR: off + len <= the BAR's size, len 1, 2, 4 or 8.
 * Runs on a vCPU thread with no host lock held.
 */
typedef void (*pci_bar_io_fn)(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write);
/*
 * BAR bar (0..5) of the registered device at devfn now decodes [addr, addr +
 * size) of I/O (io) or memory space, dispatching to fn(opaque, bar, ...);
 * size 0 stops it decoding. Accesses already dispatched may still complete at
 * the old place. Takes the host's rwlock for writing, briefly; calls nothing.
 * 0, -EINVAL (bad bar, wrapping range, no fn) or -ENOENT (no device at devfn).
 */
int pci_host_set_bar(struct pci_host *h, unsigned devfn, unsigned bar, bool io, uint64_t addr, uint64_t size,
		     pci_bar_io_fn fn, void *opaque);
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
/*
 * ECAM (PCIe enhanced configuration access, as pci-host-ecam-generic): the
 * function's configuration space at bus << 20 | devfn << 12 | reg of a
 * PCI_ECAM_SIZE-byte MMIO region (256 buses).
 */
#define PCI_ECAM_SIZE (256ULL << 20)
struct pci_ecam_addr {
	uint32_t bus, devfn, reg; /* reg: 0..4095 */
};
/*
 * Decodes an access of len bytes at offset off of the ECAM region: false
 * unless off < PCI_ECAM_SIZE, len is 1, 2 or 4 and off a multiple of it
 * (an access never crosses a register). Pure.
 */
bool pci_ecam_decode(uint64_t off, uint32_t len, struct pci_ecam_addr *out);
/*
 * bus_io_fn for the ECAM region (opaque: struct pci_host *): the access
 * pci_ecam_decode() gives reaches bus 0's functions (the host bridge at
 * devfn 0) below register 256; everything else (other buses, extended
 * space, odd sizes or alignment) reads all ones and writes nothing.
 */
void pci_host_ecam_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* CONFIG_ADDRESS and the host bridge's registers back to power-on; plugged devices reset themselves. */
void pci_host_reset(struct pci_host *h);

/*
 * Saved state (docs/MIGRATION.md): a version, CONFIG_ADDRESS (the 0xcf8
 * latch) and the host bridge's 256-byte configuration space. Plugged
 * functions save their own (pci_dev_save), BAR decoding included; the
 * windows' allocations are fixed by the configuration and not saved.
 */
void pci_host_save(const struct pci_host *h, struct sbuf *out);
/*
 * Reads one saved state from in (bytes after it are left for the caller):
 * 0, or -EINVAL with e naming the problem and the host unchanged. Only the
 * bridge's writable command bits may differ from their power-on values.
 * Calls nothing.
 */
int pci_host_load(struct pci_host *h, struct sreader *in, struct err *e);

#endif
