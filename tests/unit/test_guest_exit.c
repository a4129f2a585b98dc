/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the guest-to-host devices: the exit-status port
 * (devices/exit_dev.c) and pvpanic on PCI (devices/pvpanic.c), the latter
 * driven as a guest does: configuration cycles on 0xcf8/0xcfc and accesses in
 * the host's memory window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/exit_dev.h"
#include "devices/pci.h"
#include "devices/pvpanic.h"
#include "vmm/arch/x86/layout.h"

#define IO_START    0x1000ULL
#define IO_END	    0xffffULL
#define MEM32_START 0xc0000000ULL
#define MEM32_END   0xfebfffffULL
#define DEVFN	    PCI_DEVFN(4, 0)

struct fake {
	int calls;
	enum vm_request last;
	int status;
};

static void fake_request(void *opaque, enum vm_request req, int status)
{
	struct fake *f = opaque;
	f->calls++;
	f->last = req;
	f->status = status;
}

/* ---- the exit-status port ---- */

static void test_exit_port_write(void **state)
{
	struct fake f = {0};
	struct vm_requester req = {fake_request, &f};
	struct exit_dev *x = exit_dev_create(&req);
	assert_non_null(x);
	memset(&req, 0, sizeof(req)); /* the device keeps its own copy */

	uint8_t d[8] = {3};
	exit_dev_io(x, 0, d, 1, true);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.last, VM_REQUEST_GUEST_EXIT);
	assert_int_equal(f.status, 3);

	/* Every byte value is a status, 0 and 255 included. */
	d[0] = 0;
	exit_dev_io(x, 0, d, 1, true);
	assert_int_equal(f.calls, 2);
	assert_int_equal(f.status, 0);
	d[0] = 0xff;
	exit_dev_io(x, 0, d, 1, true);
	assert_int_equal(f.calls, 3);
	assert_int_equal(f.status, 255);

	/* A wider write at offset 0 would take its low byte (the bus only ever passes bytes). */
	uint8_t w[4] = {0x2a, 0x01, 0x02, 0x03};
	exit_dev_io(x, 0, w, 4, true);
	assert_int_equal(f.calls, 4);
	assert_int_equal(f.status, 0x2a);

	/* Past the port: ignored. */
	exit_dev_io(x, 1, d, 1, true);
	assert_int_equal(f.calls, 4);
	exit_dev_destroy(x);
	exit_dev_destroy(NULL);
}

static void test_exit_port_read(void **state)
{
	struct fake f = {0};
	struct vm_requester req = {fake_request, &f};
	struct exit_dev *x = exit_dev_create(&req);
	assert_non_null(x);
	uint8_t d[4] = {0};
	exit_dev_io(x, 0, d, 1, false);
	assert_int_equal(d[0], 0xff);
	memset(d, 0, sizeof(d));
	exit_dev_io(x, 0, d, 4, false);
	for (int i = 0; i < 4; i++)
		assert_int_equal(d[i], 0xff);
	assert_int_equal(f.calls, 0);
	exit_dev_destroy(x);
}

static void test_exit_port_no_requester(void **state)
{
	struct exit_dev *x = exit_dev_create(NULL);
	assert_non_null(x);
	uint8_t d[1] = {7};
	exit_dev_io(x, 0, d, 1, true); /* nobody to tell: nothing happens */
	exit_dev_destroy(x);
}

/* The port is one nothing else in the machine map uses (pvpanic's ISA port is 0x505). */
static void test_exit_port_layout(void **state)
{
	assert_int_equal(PORT_GUEST_EXIT, 0x501);
	static const unsigned taken[][2] = {
	    {PORT_I8042_DATA, 1},
	    {PORT_I8042_CMD, 1},
	    {PORT_RTC_INDEX, 2},
	    {PORT_COM1, PORT_COM1_LEN},
	    {PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN},
	    {PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN},
	    {PORT_ACPI_RESET, 1},
	    {PORT_PCI_CONFIG_ADDR, 8},
	    {PORT_PCI_IO_START, PORT_PCI_IO_END - PORT_PCI_IO_START + 1},
	    {0x505, 1},
	};
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		assert_false(PORT_GUEST_EXIT >= taken[i][0] && PORT_GUEST_EXIT < taken[i][0] + taken[i][1]);
}

/* ---- pvpanic ---- */

struct fx {
	struct pci_windows w;
	struct pci_host *host;
	struct pvpanic *p;
	struct fake f;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->w = (struct pci_windows){IO_START, IO_END, MEM32_START, MEM32_END, 1, 0};
	x->host = pci_host_create(&x->w);
	assert_non_null(x->host);
	struct vm_requester req = {fake_request, &x->f};
	struct err e = {{0}};
	x->p = pvpanic_create(x->host, DEVFN, &req, &e);
	assert_non_null(x->p);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	pvpanic_destroy(x->p);
	pci_host_destroy(x->host);
	free(x);
	return 0;
}

static uint32_t cfg_read(struct fx *x, unsigned reg, unsigned len)
{
	uint32_t a = 0x80000000u | DEVFN << 8 | (reg & 0xfc);
	uint8_t d[4] = {(uint8_t)a, (uint8_t)(a >> 8), (uint8_t)(a >> 16), (uint8_t)(a >> 24)};
	pci_host_addr_io(x->host, 0, d, 4, true);
	memset(d, 0, sizeof(d));
	pci_host_data_io(x->host, reg & 3, d, len, false);
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void cfg_write(struct fx *x, unsigned reg, unsigned len, uint32_t v)
{
	uint32_t a = 0x80000000u | DEVFN << 8 | (reg & 0xfc);
	uint8_t d[4] = {(uint8_t)a, (uint8_t)(a >> 8), (uint8_t)(a >> 16), (uint8_t)(a >> 24)};
	pci_host_addr_io(x->host, 0, d, 4, true);
	for (unsigned i = 0; i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_host_data_io(x->host, reg & 3, d, len, true);
}

static uint64_t mem_read(struct fx *x, uint64_t a, uint32_t len)
{
	uint8_t d[8] = {0};
	pci_host_mem32_window(x->host, a - MEM32_START, d, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void mem_write(struct fx *x, uint64_t a, uint64_t v, uint32_t len)
{
	uint8_t d[8];
	for (uint32_t i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_host_mem32_window(x->host, a - MEM32_START, d, len, true);
}

/* BAR 0's address, with memory decoding turned on as a driver's pci_enable_device() does. */
static uint64_t enable(struct fx *x)
{
	uint32_t bar = cfg_read(x, 0x10, 4);
	assert_int_equal(bar & 0xf, 0); /* 32-bit memory, not prefetchable */
	uint64_t a = bar & ~0xfu;
	assert_true(a >= MEM32_START && a + PVPANIC_BAR_SIZE - 1 <= MEM32_END);
	cfg_write(x, 0x04, 2, 0x0002);
	return a;
}

static void test_pvpanic_config(void **state)
{
	struct fx *x = *state;
	assert_int_equal(cfg_read(x, 0x00, 2), 0x1b36);
	assert_int_equal(cfg_read(x, 0x02, 2), 0x0011);
	assert_int_equal(cfg_read(x, 0x08, 1), 1);	     /* revision */
	assert_int_equal(cfg_read(x, 0x09, 1), 0x00);	     /* prog-if */
	assert_int_equal(cfg_read(x, 0x0a, 2), 0x0880);	     /* system peripheral, other */
	assert_int_equal(cfg_read(x, 0x0e, 1), 0x00);	     /* type 0, single function */
	assert_int_equal(cfg_read(x, 0x2c, 4), 0x11001af4u); /* subsystem, as QEMU's default */
	assert_int_equal(cfg_read(x, 0x3d, 1), 0);	     /* no interrupt pin */
	/* BAR 0 sizes as 4 KiB of 32-bit memory; the others are absent. */
	uint32_t bar = cfg_read(x, 0x10, 4);
	cfg_write(x, 0x10, 4, 0xffffffffu);
	assert_int_equal(cfg_read(x, 0x10, 4), (uint32_t) ~(PVPANIC_BAR_SIZE - 1));
	cfg_write(x, 0x10, 4, bar);
	assert_int_equal(cfg_read(x, 0x10, 4), bar);
	for (unsigned reg = 0x14; reg <= 0x24; reg += 4)
		assert_int_equal(cfg_read(x, reg, 4), 0);
}

static void test_pvpanic_read_events(void **state)
{
	struct fx *x = *state;
	uint64_t a = enable(x);
	assert_int_equal(mem_read(x, a, 1), PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
	assert_int_equal(mem_read(x, a, 1), 3);
	assert_int_equal(mem_read(x, a, 4), 3); /* the register is the low byte */
	assert_int_equal(mem_read(x, a + 1, 1), 0);
	assert_int_equal(mem_read(x, a + 0x800, 4), 0);
	assert_int_equal(x->f.calls, 0);
	assert_int_equal(pvpanic_events_seen(x->p), 0);
}

static void test_pvpanic_panicked(void **state)
{
	struct fx *x = *state;
	uint64_t a = enable(x);
	mem_write(x, a, PVPANIC_PANICKED, 1);
	assert_int_equal(x->f.calls, 1);
	assert_int_equal(x->f.last, VM_REQUEST_PANIC);
	assert_int_equal(pvpanic_events_seen(x->p), PVPANIC_PANICKED);
	/* Both bits: still a panic. */
	mem_write(x, a, PVPANIC_PANICKED | PVPANIC_CRASH_LOADED, 1);
	assert_int_equal(x->f.calls, 2);
	assert_int_equal(x->f.last, VM_REQUEST_PANIC);
	assert_int_equal(pvpanic_events_seen(x->p), 3);
}

static void test_pvpanic_other_writes(void **state)
{
	struct fx *x = *state;
	uint64_t a = enable(x);
	/* CRASH_LOADED: recorded, the guest runs on (a kdump kernel takes over). */
	mem_write(x, a, PVPANIC_CRASH_LOADED, 1);
	assert_int_equal(x->f.calls, 0);
	assert_int_equal(pvpanic_events_seen(x->p), PVPANIC_CRASH_LOADED);
	/* Unknown bits (SHUTDOWN = 4 in newer specs, and the rest) are ignored. */
	mem_write(x, a, 0xfc, 1);
	mem_write(x, a, 0x04, 1);
	mem_write(x, a, 0, 1);
	assert_int_equal(x->f.calls, 0);
	assert_int_equal(pvpanic_events_seen(x->p), PVPANIC_CRASH_LOADED);
	/* Other offsets are not the register. */
	mem_write(x, a + 1, PVPANIC_PANICKED, 1);
	mem_write(x, a + 4, PVPANIC_PANICKED, 4);
	assert_int_equal(x->f.calls, 0);
	/* A wider write at offset 0 carries the event in its low byte. */
	mem_write(x, a, 0xff00u | PVPANIC_PANICKED, 2);
	assert_int_equal(x->f.calls, 1);
	assert_int_equal(x->f.last, VM_REQUEST_PANIC);
}

/* With memory decoding off, the guest reaches nothing. */
static void test_pvpanic_not_decoding(void **state)
{
	struct fx *x = *state;
	uint64_t a = cfg_read(x, 0x10, 4) & ~0xfu;
	assert_int_equal(mem_read(x, a, 1), 0xff);
	mem_write(x, a, PVPANIC_PANICKED, 1);
	assert_int_equal(x->f.calls, 0);
}

static void test_pvpanic_slot_taken(void **state)
{
	struct fx *x = *state;
	struct err e = {{0}};
	assert_null(pvpanic_create(x->host, DEVFN, NULL, &e));
	assert_true(strstr(err_msg(&e), "slot taken") != NULL);
	pvpanic_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_port_write),
	    cmocka_unit_test(test_exit_port_read),
	    cmocka_unit_test(test_exit_port_no_requester),
	    cmocka_unit_test(test_exit_port_layout),
	    cmocka_unit_test_setup_teardown(test_pvpanic_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvpanic_read_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvpanic_panicked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvpanic_other_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvpanic_not_decoding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvpanic_slot_taken, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
