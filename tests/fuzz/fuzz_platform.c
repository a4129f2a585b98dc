/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile guest's port I/O and MMIO on the whole platform
 * as vm.c lays it out, without KVM: the 16550A UART, the i8042, the RTC, the
 * ACPI PM blocks and reset register, the exit-status port, PCI configuration
 * cycles on 0xcf8/0xcfc (the host bridge and the pvpanic function, empty
 * slots), and the PCI I/O, 32-bit and 64-bit windows where the guest moves the
 * BARs it programs. Each input gets fresh devices on fresh buses, the way a
 * vCPU's exits reach them (bus_access()), plus what other threads do to them:
 * console input, RTC ticks, the power button, device resets, and saved state
 * loaded back (which must succeed for what save produced).
 *
 * Oracles beyond the sanitizers: interrupt levels are 0 or 1 on known GSIs;
 * requests (poweroff, reset, panic, exit status) carry valid values; reads
 * never touch bytes beyond the access width; state a device saved loads back.
 *
 * Input: operations until the input ends (at most MAX_OPS); one opcode byte
 * (modulo NOPS) and its operands, little-endian, zeroes past the end:
 *   0 PIO    port(2) sel(1) [value(4) if write]: sel bits 0-1 width 1, 2, 4, 3
 *            (invalid widths reach the bus too), bit 2 write
 *   1 MMIO   off(4) sel(1) [value(8) if write]: sel bits 0-1 width 1, 2, 4, 8,
 *            bit 2 write, bit 3 the 64-bit window (else the 32-bit one);
 *            off is within the window (mod its size, 16 MiB at most)
 *   2 CFG    devfn(1) reg(1) sel(1) [value(4) if write]: CONFIG_ADDRESS set to
 *            bus 0, devfn, reg & 0xfc (enable bit unless sel bit 3), then
 *            0xcfc + (reg & 3) accessed with sel's width and write bit
 *   3 RX     n(1) bytes[n & 15]: console input pushed into the UART
 *   4 TICK   the RTC's one-second tick
 *   5 EVENT  which(1): 0 power button, 1 reset every device, else nothing
 *   6 SAVE   every device saved and loaded into fresh twins, used from then on
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/exit_dev.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/platform.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "vmm/arch/x86/layout.h"

#define MAX_OPS	 4096
#define NOPS	 7
#define MEM64	 0x100000000ULL
#define WIN_SPAN (16u << 20) /* the part of each memory window the input addresses */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		uint8_t b = 0;
		if (in->n) {
			b = *in->p++;
			in->n--;
		}
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

static void set_level(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	if ((level != 0 && level != 1) || gsi > IRQ_PCI_INTX_BASE + IRQ_PCI_INTX_COUNT)
		abort();
}

static void request(void *opaque, enum vm_request req, int status)
{
	(void)opaque;
	(void)req;
	if (status < 0 || status > 255)
		abort();
}

static volatile uint8_t sink;

static void tx(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	for (size_t i = 0; i < len; i++) /* every byte read, so that ASan checks the range */
		sink = sink ^ buf[i];
}

static void rx_space(void *opaque)
{
	(void)opaque;
}

struct platform {
	struct serial *serial;
	struct i8042 *kbd;
	struct rtc *rtc;
	struct pci_host *pci;
	struct acpi_pm *pm;
	struct exit_dev *exit;
	struct pvpanic *pvpanic;
	struct bus pio, mmio;
};

static const struct pci_windows windows = {
    .io_start = PORT_PCI_IO_START,
    .io_end = PORT_PCI_IO_END,
    .mem32_start = LAYOUT_PCI_MMIO32_START,
    .mem32_end = LAYOUT_PCI_MMIO32_END,
    .mem64_start = MEM64,
    .mem64_end = MEM64 + LAYOUT_PCI_MMIO64_SIZE - 1,
};
static const struct vm_requester req = {request, NULL};

static time_t fixed_now(void *opaque)
{
	(void)opaque;
	return 1700000000;
}

static void platform_create(struct platform *p)
{
	static const struct irq_line com1 = {set_level, NULL, IRQ_COM1},
				     kbd = {set_level, NULL, IRQ_I8042_KBD}, rtc = {set_level, NULL, IRQ_RTC},
				     sci = {set_level, NULL, IRQ_ACPI_SCI};
	memset(p, 0, sizeof(*p));
	p->serial = serial_create(&com1, tx, rx_space, NULL);
	p->kbd = i8042_create(&kbd, &req);
	p->rtc = rtc_create(&rtc, fixed_now, NULL);
	p->pci = pci_host_create(&windows);
	p->pm = acpi_pm_create(&sci, &req);
	p->exit = exit_dev_create(&req);
	struct err e = {{0}};
	if (!p->serial || !p->kbd || !p->rtc || !p->pci || !p->pm || !p->exit ||
	    !(p->pvpanic = pvpanic_create(p->pci, PCI_DEVFN(1, 0), &req, &e)))
		abort();
	bus_init(&p->pio);
	bus_init(&p->mmio);
	const struct {
		uint64_t base, len;
		bus_io_fn fn;
		void *opaque;
	} pio[] = {
	    {PORT_COM1, PORT_COM1_LEN, serial_io, p->serial},
	    {PORT_I8042_DATA, 1, i8042_data_io, p->kbd},
	    {PORT_I8042_CMD, 1, i8042_cmd_io, p->kbd},
	    {PORT_RTC_INDEX, 2, rtc_io, p->rtc},
	    {PORT_PCI_CONFIG_ADDR, 4, pci_host_addr_io, p->pci},
	    {PORT_PCI_CONFIG_DATA, 4, pci_host_data_io, p->pci},
	    {PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN, acpi_pm_evt_io, p->pm},
	    {PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN, acpi_pm_cnt_io, p->pm},
	    {PORT_ACPI_RESET, 1, acpi_pm_reset_io, p->pm},
	    {PORT_GUEST_EXIT, 1, exit_dev_io, p->exit},
	    {PORT_PCI_IO_START, PORT_PCI_IO_END - PORT_PCI_IO_START + 1, pci_host_io_window, p->pci},
	};
	for (size_t i = 0; i < sizeof(pio) / sizeof(pio[0]); i++)
		if (bus_register(&p->pio, pio[i].base, pio[i].len, pio[i].fn, pio[i].opaque, "fuzz"))
			abort();
	if (bus_register(&p->mmio, windows.mem32_start, windows.mem32_end - windows.mem32_start + 1,
			 pci_host_mem32_window, p->pci, "fuzz") ||
	    bus_register(&p->mmio, windows.mem64_start, windows.mem64_end - windows.mem64_start + 1,
			 pci_host_mem64_window, p->pci, "fuzz"))
		abort();
}

static void platform_destroy(struct platform *p)
{
	pvpanic_destroy(p->pvpanic);
	serial_destroy(p->serial);
	i8042_destroy(p->kbd);
	rtc_destroy(p->rtc);
	pci_host_destroy(p->pci);
	acpi_pm_destroy(p->pm);
	exit_dev_destroy(p->exit);
	bus_free(&p->pio);
	bus_free(&p->mmio);
}

/* One access; reads must not write past the width. */
static void access(const struct bus *b, uint64_t addr, uint32_t width, bool write, uint64_t value)
{
	uint8_t data[16];
	memset(data, 0xee, sizeof(data));
	if (write)
		memcpy(data, &value, width <= 8 ? width : 8);
	bus_access(b, addr, data, width, write);
	for (unsigned i = width; i < sizeof(data); i++)
		if (data[i] != 0xee)
			abort();
}

/* Saves every device and loads the state into fresh twins, which replace them. */
static void save_load(struct platform *p)
{
	struct sbuf b[7];
	for (int i = 0; i < 7; i++)
		sbuf_init(&b[i]);
	serial_save(p->serial, &b[0]);
	i8042_save(p->kbd, &b[1]);
	rtc_save(p->rtc, &b[2]);
	pci_host_save(p->pci, &b[3]);
	acpi_pm_save(p->pm, &b[4]);
	exit_dev_save(p->exit, &b[5]);
	pvpanic_save(p->pvpanic, &b[6]);
	platform_destroy(p);
	platform_create(p);
	struct err e = {{0}};
	struct sreader r[7];
	for (int i = 0; i < 7; i++)
		sreader_init(&r[i], b[i].data, b[i].len);
	int rc = serial_load(p->serial, &r[0], &e) || i8042_load(p->kbd, &r[1], &e) ||
		 rtc_load(p->rtc, &r[2], &e) || pci_host_load(p->pci, &r[3], &e) ||
		 acpi_pm_load(p->pm, &r[4], &e) || exit_dev_load(p->exit, &r[5], &e) ||
		 pvpanic_load(p->pvpanic, &r[6], &e);
	if (rc) {
		fprintf(stderr, "loading saved state failed: %s\n", e.msg);
		abort();
	}
	for (int i = 0; i < 7; i++)
		sbuf_free(&b[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t widths[] = {1, 2, 4, 3}, mwidths[] = {1, 2, 4, 8};
	struct input in = {data, size};
	struct platform p;
	platform_create(&p);
	for (unsigned ops = 0; in.n && ops < MAX_OPS; ops++) {
		switch (take(&in, 1) % NOPS) {
		case 0: {
			uint64_t port = take(&in, 2);
			uint8_t sel = take(&in, 1);
			bool w = sel & 4;
			access(&p.pio, port, widths[sel & 3], w, w ? take(&in, 4) : 0);
			break;
		}
		case 1: {
			uint64_t off = take(&in, 4) % WIN_SPAN;
			uint8_t sel = take(&in, 1);
			bool w = sel & 4;
			uint64_t base = (sel & 8) ? windows.mem64_start : windows.mem32_start;
			access(&p.mmio, base + off, mwidths[sel & 3], w, w ? take(&in, 8) : 0);
			break;
		}
		case 2: {
			uint8_t devfn = take(&in, 1), reg = take(&in, 1), sel = take(&in, 1);
			uint32_t addr = (sel & 8 ? 0 : 0x80000000u) | (uint32_t)devfn << 8 | (reg & 0xfc);
			access(&p.pio, PORT_PCI_CONFIG_ADDR, 4, true, addr);
			bool w = sel & 4;
			access(&p.pio, PORT_PCI_CONFIG_DATA + (reg & 3), widths[sel & 3], w,
			       w ? take(&in, 4) : 0);
			break;
		}
		case 3: {
			uint8_t n = take(&in, 1) & 15, buf[15];
			for (unsigned i = 0; i < n; i++)
				buf[i] = take(&in, 1);
			serial_rx_push(p.serial, buf, n);
			break;
		}
		case 4:
			rtc_tick(p.rtc);
			break;
		case 5: {
			uint8_t which = take(&in, 1);
			if (which == 0) {
				acpi_pm_press_power_button(p.pm);
			} else if (which == 1) {
				serial_reset(p.serial);
				i8042_reset(p.kbd);
				rtc_reset(p.rtc);
				pci_host_reset(p.pci);
				acpi_pm_reset(p.pm);
			}
			break;
		}
		case 6:
			save_load(&p);
			break;
		}
	}
	platform_destroy(&p);
	return 0;
}
