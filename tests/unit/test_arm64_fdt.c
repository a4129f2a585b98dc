/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the arm64 device tree (vmm/arch/arm64/fdt.c). The blob is
 * parsed back with libfdt: reg and interrupt cells are decoded with the cell
 * counts the tree itself declares, phandles are resolved, and expected values
 * are written out here rather than taken from the builder's helpers. When
 * dtc is installed it decompiles each blob and must not warn.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/scratch_dir.h"
#include <libfdt.h>

#include "vmm/arch/arm64/fdt.h"
#include "vmm/arch/arm64/layout.h"

#define MiB	 (1ULL << 20)
#define GiB	 (1ULL << 30)
#define BUFSZ	 (64 * 1024)
#define CMDLINE	 "console=ttyS0 earlycon root=/dev/vda rw"
#define GIC_SPI	 0
#define GIC_PPI	 1
#define LVL_HIGH 4
#define LVL_LOW	 8

static struct arm64_fdt_params params(unsigned ncpus, bool initrd, bool its)
{
	struct arm64_fdt_params p = {
	    .ncpus = ncpus,
	    .mem_base = ARM64_RAM_BASE,
	    .mem_size = 512 * MiB,
	    .cmdline = CMDLINE,
	    .its = its,
	};
	if (initrd) {
		p.initrd_start = ARM64_RAM_BASE + 128 * MiB;
		p.initrd_size = 5 * MiB + 123;
	}
	if (its) { /* the ITS configurations also get a 64-bit window */
		p.pci_mmio64_base = 4 * GiB;
		p.pci_mmio64_size = ARM64_PCI_MMIO64_SIZE;
	}
	return p;
}

static void *build(const struct arm64_fdt_params *p)
{
	struct err e = {0};
	void *buf = malloc(BUFSZ);

	assert_non_null(buf);
	int r = arm64_fdt_build(p, buf, BUFSZ, &e);
	if (r)
		fail_msg("arm64_fdt_build: %d: %s", r, err_msg(&e));
	assert_string_equal(err_msg(&e), "");
	assert_int_equal(fdt_check_header(buf), 0);
	assert_true(fdt_totalsize(buf) <= BUFSZ);
	assert_int_equal(fdt_num_mem_rsv(buf), 0);
	return buf;
}

static int node(const void *fdt, const char *path)
{
	int off = fdt_path_offset(fdt, path);

	if (off < 0)
		fail_msg("no node %s: %s", path, fdt_strerror(off));
	return off;
}

static const void *getprop(const void *fdt, int off, const char *name, int *len)
{
	const void *v = fdt_getprop(fdt, off, name, len);

	if (!v)
		fail_msg("%s: no property %s", fdt_get_name(fdt, off, NULL), name);
	return v;
}

static bool has(const void *fdt, int off, const char *name)
{
	return fdt_getprop(fdt, off, name, NULL) != NULL;
}

static uint32_t u32(const void *fdt, int off, const char *name)
{
	int len;
	const fdt32_t *v = getprop(fdt, off, name, &len);

	assert_int_equal(len, 4);
	return fdt32_to_cpu(*v);
}

/* n cells of a property that must have exactly n. */
static void cells(const void *fdt, int off, const char *name, uint32_t *out, int n)
{
	int len;
	const fdt32_t *v = getprop(fdt, off, name, &len);

	if (len != n * 4)
		fail_msg("%s: %s has %d bytes, %d cells expected", fdt_get_name(fdt, off, NULL), name, len,
			 n);
	for (int i = 0; i < n; i++)
		out[i] = fdt32_to_cpu(v[i]);
}

static void expect_str(const void *fdt, int off, const char *name, const char *want)
{
	int len;
	const char *v = getprop(fdt, off, name, &len);

	assert_int_equal(len, (int)strlen(want) + 1);
	assert_string_equal(v, want);
}

/* A string list, want written as "a\0b" with sizeof (final NUL included). */
static void expect_strs(const void *fdt, int off, const char *name, const char *want, size_t wlen)
{
	int len;
	const char *v = getprop(fdt, off, name, &len);

	assert_int_equal(len, (int)wlen);
	assert_memory_equal(v, want, wlen);
}

static uint64_t number(const uint32_t *c, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 32 | c[i];
	return v;
}

/* Entry idx of a node's reg, decoded with the parent's #address-cells and #size-cells. */
static void reg(const void *fdt, int off, int idx, uint64_t *addr, uint64_t *size)
{
	int parent = fdt_parent_offset(fdt, off);
	int ac = fdt_address_cells(fdt, parent), sc = fdt_size_cells(fdt, parent), len;
	const fdt32_t *v = getprop(fdt, off, "reg", &len);
	uint32_t c[4];

	assert_true(ac >= 1 && ac <= 2 && sc >= 0 && sc <= 2);
	assert_int_equal(len % ((ac + sc) * 4), 0);
	assert_true(idx < len / ((ac + sc) * 4));
	for (int i = 0; i < ac + sc; i++)
		c[i] = fdt32_to_cpu(v[idx * (ac + sc) + i]);
	*addr = number(c, ac);
	*size = number(c + ac, sc);
}

static int reg_count(const void *fdt, int off)
{
	int parent = fdt_parent_offset(fdt, off), len;
	int ac = fdt_address_cells(fdt, parent), sc = fdt_size_cells(fdt, parent);

	getprop(fdt, off, "reg", &len);
	return len / ((ac + sc) * 4);
}

static void expect_reg(const void *fdt, int off, int idx, uint64_t addr, uint64_t size)
{
	uint64_t a, s;

	reg(fdt, off, idx, &a, &s);
	if (a != addr || s != size)
		fail_msg("%s reg[%d]: 0x%llx+0x%llx, expected 0x%llx+0x%llx", fdt_get_name(fdt, off, NULL),
			 idx, (unsigned long long)a, (unsigned long long)s, (unsigned long long)addr,
			 (unsigned long long)size);
}

static int by_phandle(const void *fdt, uint32_t ph)
{
	int off = fdt_node_offset_by_phandle(fdt, ph);

	if (off < 0)
		fail_msg("phandle %u does not resolve: %s", ph, fdt_strerror(off));
	return off;
}

/* The interrupt parent of a node: its own interrupt-parent or the nearest ancestor's. */
static int irq_parent(const void *fdt, int off)
{
	for (; off >= 0; off = fdt_parent_offset(fdt, off))
		if (has(fdt, off, "interrupt-parent"))
			return by_phandle(fdt, u32(fdt, off, "interrupt-parent"));
	fail_msg("no interrupt-parent");
	return -1;
}

/* A device's single interrupt, in its parent's #interrupt-cells (3: type, number, flags). */
static void expect_irq(const void *fdt, int off, uint32_t type, uint32_t num, uint32_t flags)
{
	int gic = irq_parent(fdt, off);
	uint32_t c[3];

	assert_true(has(fdt, gic, "interrupt-controller"));
	assert_int_equal(u32(fdt, gic, "#interrupt-cells"), 3);
	cells(fdt, off, "interrupts", c, 3);
	assert_int_equal(c[0], type);
	assert_int_equal(c[1], num);
	assert_int_equal(c[2], flags);
}

static int gic_node(const void *fdt)
{
	char path[64];

	snprintf(path, sizeof(path), "/interrupt-controller@%llx", ARM64_GICD_BASE);
	return node(fdt, path);
}

static void check_root(const void *fdt)
{
	int root = node(fdt, "/");

	expect_str(fdt, root, "compatible", "linux,dummy-virt");
	assert_int_equal(u32(fdt, root, "#address-cells"), 2);
	assert_int_equal(u32(fdt, root, "#size-cells"), 2);
	assert_int_equal(by_phandle(fdt, u32(fdt, root, "interrupt-parent")), gic_node(fdt));
}

static void check_chosen(const void *fdt, const struct arm64_fdt_params *p)
{
	int chosen = node(fdt, "/chosen"), len;
	char path[64];

	expect_str(fdt, chosen, "bootargs", CMDLINE);
	/* stdout-path names the UART node itself (no console= needed). */
	const char *out = getprop(fdt, chosen, "stdout-path", &len);
	snprintf(path, sizeof(path), "/serial@%llx", ARM64_UART_BASE);
	assert_int_equal(fdt_path_offset(fdt, out), node(fdt, path));
	assert_int_equal(fdt_node_check_compatible(fdt, fdt_path_offset(fdt, out), "ns16550a"), 0);
	if (p->initrd_size) {
		/* 64-bit values, only 4-byte aligned in the blob: fdt64_ld() reads them. */
		const fdt64_t *v = getprop(fdt, chosen, "linux,initrd-start", &len);
		assert_int_equal(len, 8);
		assert_int_equal(fdt64_ld(v), ARM64_RAM_BASE + 128 * MiB);
		v = getprop(fdt, chosen, "linux,initrd-end", &len);
		assert_int_equal(len, 8);
		assert_int_equal(fdt64_ld(v), ARM64_RAM_BASE + 133 * MiB + 123);
	} else {
		assert_false(has(fdt, chosen, "linux,initrd-start"));
		assert_false(has(fdt, chosen, "linux,initrd-end"));
	}
}

static void check_memory(const void *fdt, const struct arm64_fdt_params *p)
{
	int mem = node(fdt, "/memory@80000000");

	expect_str(fdt, mem, "device_type", "memory");
	assert_int_equal(reg_count(fdt, mem), 1);
	expect_reg(fdt, mem, 0, 0x80000000ULL, p->mem_size);
}

/* MPIDR affinity as KVM's reset_mpidr() forms it, written out: 16 vCPUs per Aff1 cluster. */
static uint32_t want_mpidr(unsigned i)
{
	return (i / 16) << 8 | (i % 16);
}

static void check_cpus(const void *fdt, unsigned ncpus)
{
	int cpus = node(fdt, "/cpus"), n = 0, child;
	char path[64];

	assert_int_equal(u32(fdt, cpus, "#address-cells"), 1);
	assert_int_equal(u32(fdt, cpus, "#size-cells"), 0);
	fdt_for_each_subnode(child, fdt, cpus) n++;
	assert_int_equal(n, ncpus);
	for (unsigned i = 0; i < ncpus; i++) {
		snprintf(path, sizeof(path), "/cpus/cpu@%x", want_mpidr(i));
		int cpu = node(fdt, path);
		expect_str(fdt, cpu, "device_type", "cpu");
		expect_str(fdt, cpu, "compatible", "arm,arm-v8");
		expect_str(fdt, cpu, "enable-method", "psci");
		assert_int_equal(u32(fdt, cpu, "reg"), want_mpidr(i));
		assert_int_equal(arm64_vcpu_mpidr(i), want_mpidr(i));
	}
}

static void check_psci_timer(const void *fdt)
{
	static const char psci_compat[] = "arm,psci-1.0\0arm,psci-0.2";
	int psci = node(fdt, "/psci"), timer = node(fdt, "/timer");
	uint32_t c[12];

	expect_strs(fdt, psci, "compatible", psci_compat, sizeof(psci_compat));
	expect_str(fdt, psci, "method", "hvc");
	assert_false(has(fdt, psci, "cpu_on")); /* PSCI 0.2+: standard function IDs */

	expect_str(fdt, timer, "compatible", "arm,armv8-timer");
	assert_true(has(fdt, timer, "always-on"));
	assert_true(has(fdt, irq_parent(fdt, timer), "interrupt-controller"));
	cells(fdt, timer, "interrupts", c, 12);
	/* secure 13, non-secure 14, virtual 11, hypervisor 10: PPIs, level-low. */
	const uint32_t want[12] = {1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8};
	assert_memory_equal(c, want, sizeof(want));
}

static void check_gic(const void *fdt, const struct arm64_fdt_params *p)
{
	int gic = gic_node(fdt);
	char path[96];

	expect_str(fdt, gic, "compatible", "arm,gic-v3");
	assert_int_equal(u32(fdt, gic, "#interrupt-cells"), 3);
	assert_true(has(fdt, gic, "interrupt-controller"));
	assert_int_equal(fdt_get_phandle(fdt, gic), ARM64_PHANDLE_GIC);
	assert_int_equal(reg_count(fdt, gic), 2);
	expect_reg(fdt, gic, 0, 0x08000000ULL, 0x10000);
	expect_reg(fdt, gic, 1, 0x08100000ULL, p->ncpus * 0x20000ULL);
	assert_int_equal(u32(fdt, gic, "#address-cells"), 2);

	snprintf(path, sizeof(path), "/interrupt-controller@%llx/msi-controller@%llx", ARM64_GICD_BASE,
		 ARM64_GITS_BASE);
	int its = fdt_path_offset(fdt, path);
	if (!p->its) {
		assert_int_equal(its, -FDT_ERR_NOTFOUND);
		assert_int_equal(fdt_node_offset_by_phandle(fdt, ARM64_PHANDLE_ITS), -FDT_ERR_NOTFOUND);
		return;
	}
	assert_true(its >= 0);
	expect_str(fdt, its, "compatible", "arm,gic-v3-its");
	assert_true(has(fdt, its, "msi-controller"));
	assert_int_equal(u32(fdt, its, "#msi-cells"), 1);
	expect_reg(fdt, its, 0, 0x08040000ULL, 0x20000);
	assert_int_equal(by_phandle(fdt, ARM64_PHANDLE_ITS), its);
}

static void check_uart_rtc(const void *fdt)
{
	static const char rtc_compat[] = "arm,pl031\0arm,primecell";
	char path[64];

	snprintf(path, sizeof(path), "/serial@%llx", ARM64_UART_BASE);
	int uart = node(fdt, path);
	expect_str(fdt, uart, "compatible", "ns16550a");
	expect_reg(fdt, uart, 0, 0x0a000000ULL, 0x1000);
	expect_irq(fdt, uart, GIC_SPI, 1, LVL_HIGH);
	assert_int_equal(u32(fdt, uart, "clock-frequency"), 1843200);
	assert_int_equal(u32(fdt, uart, "reg-shift"), 0);
	assert_int_equal(u32(fdt, uart, "reg-io-width"), 1);

	snprintf(path, sizeof(path), "/rtc@%llx", ARM64_RTC_BASE);
	int rtc = node(fdt, path);
	expect_strs(fdt, rtc, "compatible", rtc_compat, sizeof(rtc_compat));
	expect_reg(fdt, rtc, 0, 0x0a010000ULL, 0x1000);
	expect_irq(fdt, rtc, GIC_SPI, 2, LVL_HIGH);
	expect_str(fdt, rtc, "clock-names", "apb_pclk");
	int clk = by_phandle(fdt, u32(fdt, rtc, "clocks"));
	expect_str(fdt, clk, "compatible", "fixed-clock");
	assert_int_equal(u32(fdt, clk, "#clock-cells"), 0);
	assert_int_equal(u32(fdt, clk, "clock-frequency"), 24000000);
}

/* The PL061 (a PrimeCell GPIO controller) and the gpio-keys power button on its pin 3. */
static void check_gpio_keys(const void *fdt)
{
	static const char compat[] = "arm,pl061\0arm,primecell";
	char path[64];
	uint32_t c[3];

	snprintf(path, sizeof(path), "/gpio@%llx", ARM64_GPIO_BASE);
	int gpio = node(fdt, path);
	expect_strs(fdt, gpio, "compatible", compat, sizeof(compat));
	expect_reg(fdt, gpio, 0, 0x0a020000ULL, 0x1000);
	expect_irq(fdt, gpio, GIC_SPI, 3, LVL_HIGH);
	assert_true(has(fdt, gpio, "gpio-controller"));
	assert_int_equal(u32(fdt, gpio, "#gpio-cells"), 2);
	expect_str(fdt, gpio, "clock-names", "apb_pclk");
	int clk = by_phandle(fdt, u32(fdt, gpio, "clocks"));
	expect_str(fdt, clk, "compatible", "fixed-clock");

	int keys = node(fdt, "/gpio-keys");
	expect_str(fdt, keys, "compatible", "gpio-keys");
	int n = 0, key = -1, off;
	fdt_for_each_subnode(off, fdt, keys)
	{
		key = off;
		n++;
	}
	assert_int_equal(n, 1);
	assert_int_equal(u32(fdt, key, "linux,code"), 116); /* KEY_POWER */
	cells(fdt, key, "gpios", c, 3);
	assert_int_equal(by_phandle(fdt, c[0]), gpio);
	assert_int_equal(c[1], 3); /* the pin */
	assert_int_equal(c[2], 0); /* active high */
	assert_true(has(fdt, key, "label"));
}

static void check_pci(const void *fdt, const struct arm64_fdt_params *p)
{
	char path[64];
	uint32_t c[4];
	int len;

	snprintf(path, sizeof(path), "/pcie@%llx", ARM64_PCI_ECAM_BASE);
	int pci = node(fdt, path);
	expect_str(fdt, pci, "compatible", "pci-host-ecam-generic");
	expect_str(fdt, pci, "device_type", "pci");
	assert_int_equal(u32(fdt, pci, "#address-cells"), 3);
	assert_int_equal(u32(fdt, pci, "#size-cells"), 2);
	assert_int_equal(u32(fdt, pci, "#interrupt-cells"), 1);
	assert_true(has(fdt, pci, "dma-coherent"));
	cells(fdt, pci, "bus-range", c, 2);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[1], 255);
	/* ECAM: 1 MiB per bus (bus << 20), aligned to its size. */
	expect_reg(fdt, pci, 0, 0x10000000ULL, 256 * MiB);

	/* ranges: PCI address (3 cells), CPU address (root's 2), size (2): identity-mapped memory windows. */
	const fdt32_t *r = getprop(fdt, pci, "ranges", &len);
	int n = len / (7 * 4);
	assert_int_equal(len % (7 * 4), 0);
	assert_int_equal(n, p->pci_mmio64_size ? 2 : 1);
	for (int i = 0; i < n; i++) {
		uint32_t e[7];
		for (int j = 0; j < 7; j++)
			e[j] = fdt32_to_cpu(r[i * 7 + j]);
		uint64_t pci_addr = number(e + 1, 2), cpu = number(e + 3, 2), size = number(e + 5, 2);
		assert_int_equal(pci_addr, cpu);
		if (i == 0) {
			assert_int_equal(e[0], 0x02000000); /* 32-bit memory, non-prefetchable */
			assert_int_equal(cpu, 0x40000000ULL);
			assert_int_equal(size, 1 * GiB);
		} else {
			assert_int_equal(e[0], 0x03000000); /* 64-bit memory */
			assert_int_equal(cpu, p->pci_mmio64_base);
			assert_int_equal(size, p->pci_mmio64_size);
		}
	}

	/* INTx: every slot and pin through the GIC, swizzled over 8 SPIs from 16. */
	int gic = gic_node(fdt);
	int gac = (int)u32(fdt, gic, "#address-cells"), gic_cells = (int)u32(fdt, gic, "#interrupt-cells");
	cells(fdt, pci, "interrupt-map-mask", c, 4);
	assert_int_equal(c[0], 0xf800);
	assert_int_equal(c[1], 0);
	assert_int_equal(c[2], 0);
	assert_int_equal(c[3], 7);
	const fdt32_t *m = getprop(fdt, pci, "interrupt-map", &len);
	int ecells = 3 + 1 + 1 + gac + gic_cells;
	assert_int_equal(len, 32 * 4 * ecells * 4);
	for (int i = 0; i < 32 * 4; i++) {
		const fdt32_t *e = m + i * ecells;
		unsigned slot = (unsigned)i / 4, pin = (unsigned)i % 4 + 1;
		assert_int_equal(fdt32_to_cpu(e[0]), slot << 11);
		assert_int_equal(fdt32_to_cpu(e[1]), 0);
		assert_int_equal(fdt32_to_cpu(e[2]), 0);
		assert_int_equal(fdt32_to_cpu(e[3]), pin);
		assert_int_equal(by_phandle(fdt, fdt32_to_cpu(e[4])), gic);
		for (int j = 0; j < gac; j++)
			assert_int_equal(fdt32_to_cpu(e[5 + j]), 0);
		const fdt32_t *irq = e + 5 + gac;
		unsigned spi = 16 + (slot + pin - 1) % 8;
		assert_int_equal(fdt32_to_cpu(irq[0]), GIC_SPI);
		assert_int_equal(fdt32_to_cpu(irq[1]), spi);
		assert_int_equal(fdt32_to_cpu(irq[2]), LVL_HIGH);
		assert_int_equal(arm64_pci_intx_spi(slot, pin), spi);
		assert_true(spi != ARM64_SPI_UART && spi != ARM64_SPI_RTC);
	}

	/* MSIs: RID -> ITS DeviceID, identity, for all 65536 RIDs; never a bare msi-parent. */
	assert_false(has(fdt, pci, "msi-parent"));
	if (!p->its) {
		assert_false(has(fdt, pci, "msi-map"));
		return;
	}
	uint32_t mm[4];
	cells(fdt, pci, "msi-map", mm, 4);
	assert_int_equal(mm[0], 0);
	assert_int_equal(by_phandle(fdt, mm[1]), by_phandle(fdt, ARM64_PHANDLE_ITS));
	assert_int_equal(u32(fdt, by_phandle(fdt, mm[1]), "#msi-cells"), 1);
	assert_int_equal(mm[2], 0);
	assert_int_equal(mm[3], 0x10000);
}

/* Every reg range in the tree (RAM included) and the PCI windows: none overlaps another. */
static void check_no_overlap(const void *fdt, const struct arm64_fdt_params *p)
{
	struct {
		uint64_t a, s;
	} r[32];
	int n = 0, off;

	for (off = fdt_next_node(fdt, -1, NULL); off >= 0; off = fdt_next_node(fdt, off, NULL)) {
		if (!has(fdt, off, "reg") || fdt_parent_offset(fdt, off) == node(fdt, "/cpus"))
			continue;
		for (int i = 0; i < reg_count(fdt, off); i++, n++) {
			assert_true(n < 30);
			reg(fdt, off, i, &r[n].a, &r[n].s);
		}
	}
	r[n].a = ARM64_PCI_MMIO32_BASE, r[n++].s = ARM64_PCI_MMIO32_SIZE;
	if (p->pci_mmio64_size)
		r[n].a = p->pci_mmio64_base, r[n++].s = p->pci_mmio64_size;
	for (int i = 0; i < n; i++) {
		assert_true(r[i].s > 0);
		for (int j = i + 1; j < n; j++)
			if (r[i].a < r[j].a + r[j].s && r[j].a < r[i].a + r[i].s)
				fail_msg("0x%llx+0x%llx overlaps 0x%llx+0x%llx", (unsigned long long)r[i].a,
					 (unsigned long long)r[i].s, (unsigned long long)r[j].a,
					 (unsigned long long)r[j].s);
	}
}

static void check_all(unsigned ncpus, bool initrd, bool its)
{
	struct arm64_fdt_params p = params(ncpus, initrd, its);
	void *fdt = build(&p);

	check_root(fdt);
	check_chosen(fdt, &p);
	check_memory(fdt, &p);
	check_cpus(fdt, ncpus);
	check_psci_timer(fdt);
	check_gic(fdt, &p);
	check_uart_rtc(fdt);
	check_gpio_keys(fdt);
	check_pci(fdt, &p);
	check_no_overlap(fdt, &p);
	free(fdt);
}

static void test_1cpu(void **state)
{
	check_all(1, false, false);
	check_all(1, true, false);
	check_all(1, false, true);
}

static void test_2cpus(void **state)
{
	check_all(2, true, true);
	check_all(2, false, false);
}

static void test_8cpus(void **state)
{
	check_all(8, true, true);
	check_all(8, false, true);
	check_all(8, true, false);
}

/* Beyond 16 vCPUs the affinity moves to Aff1: cpu@100 is vCPU 16. */
static void test_max_cpus(void **state)
{
	check_all(17, true, true);
	check_all(ARM64_MAX_CPUS, true, true);
	assert_int_equal(arm64_vcpu_mpidr(16), 0x100);
	assert_int_equal(arm64_vcpu_mpidr(63), 0x30f);
	assert_int_equal(arm64_vcpu_mpidr(4096), 0x10000); /* Aff2 from bit 12 */
}

static void test_no_cmdline(void **state)
{
	struct arm64_fdt_params p = params(1, false, false);

	p.cmdline = NULL;
	void *fdt = build(&p);
	assert_false(has(fdt, node(fdt, "/chosen"), "bootargs"));
	assert_true(has(fdt, node(fdt, "/chosen"), "stdout-path"));
	free(fdt);
}

static size_t needed(const struct arm64_fdt_params *p)
{
	void *fdt = build(p);
	size_t n = fdt_totalsize(fdt);

	free(fdt);
	return n;
}

static void test_enospc(void **state)
{
	struct arm64_fdt_params p = params(ARM64_MAX_CPUS, true, true);
	size_t need = needed(&p);
	size_t sizes[] = {0, 1, 39, 40, 100, need / 2, need - 1};
	struct err e;

	assert_true(need < ARM64_FDT_MAX_SIZE);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* Exactly sized allocations, so ASan catches a write past size. */
		void *b = malloc(sizes[i] ? sizes[i] : 1);
		assert_non_null(b);
		err_clear(&e);
		assert_int_equal(arm64_fdt_build(&p, b, sizes[i], &e), -ENOSPC);
		assert_non_null(strstr(err_msg(&e), "does not fit"));
		assert_null(strchr(err_msg(&e), '\n'));
		free(b);
	}
	void *b = malloc(need);
	assert_non_null(b);
	err_clear(&e);
	assert_int_equal(arm64_fdt_build(&p, b, need, &e), 0);
	assert_int_equal(fdt_check_header(b), 0);
	assert_int_equal(fdt_totalsize(b), need);
	free(b);
}

static void expect_einval(const struct arm64_fdt_params *p, const char *what)
{
	struct err e = {0};
	char buf[BUFSZ];

	assert_int_equal(arm64_fdt_build(p, buf, sizeof(buf), &e), -EINVAL);
	if (!strstr(err_msg(&e), what))
		fail_msg("message \"%s\" lacks \"%s\"", err_msg(&e), what);
}

static void test_einval(void **state)
{
	struct arm64_fdt_params p = params(2, true, true);
	struct err e = {0};
	char buf[BUFSZ];

	p.ncpus = 0;
	expect_einval(&p, "0 vCPUs");
	p.ncpus = ARM64_MAX_CPUS + 1;
	expect_einval(&p, "vCPUs");
	p = params(2, true, true);
	p.mem_size = 0;
	expect_einval(&p, "RAM");
	p = params(2, true, true);
	p.mem_base = ARM64_RAM_BASE - 1 * GiB; /* would overlap the PCI window */
	expect_einval(&p, "RAM");
	p = params(2, true, true);
	p.mem_base = UINT64_MAX - 0xfff; /* wraps */
	expect_einval(&p, "RAM");
	p = params(2, true, true);
	p.initrd_start = ARM64_RAM_BASE + p.mem_size - 4096; /* runs past RAM */
	expect_einval(&p, "initrd");
	p = params(2, true, true);
	p.pci_mmio64_base = ARM64_RAM_BASE; /* on RAM */
	expect_einval(&p, "64-bit PCI window");
	p = params(2, true, true);
	char *big = malloc(ARM64_CMDLINE_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', ARM64_CMDLINE_MAX);
	big[ARM64_CMDLINE_MAX] = '\0';
	p.cmdline = big;
	expect_einval(&p, "command line");
	big[ARM64_CMDLINE_MAX - 1] = '\0'; /* the longest that fits */
	assert_int_equal(arm64_fdt_build(&p, buf, sizeof(buf), &e), 0);
	free(big);
	assert_int_equal(arm64_fdt_build(NULL, buf, sizeof(buf), &e), -EINVAL);
	assert_int_equal(arm64_fdt_build(&p, NULL, sizeof(buf), NULL), -EINVAL);
}

/* The oracle: dtc decompiles each blob without a warning (it runs its semantic checks on any input). */
static void test_dtc(void **state)
{
	const struct {
		unsigned ncpus;
		bool initrd, its;
	} cfgs[] = {{1, false, false}, {2, true, false}, {8, true, true}, {ARM64_MAX_CPUS, true, true}};
	const char *dir = *state;
	char cmd[1024], path[128];

	if (system("command -v dtc >/dev/null 2>&1") != 0) {
		print_message("dtc not installed: skipping the dtc check (scripts/install-deps.sh installs "
			      "device-tree-compiler)\n");
		skip();
	}
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		struct arm64_fdt_params p = params(cfgs[i].ncpus, cfgs[i].initrd, cfgs[i].its);
		void *fdt = build(&p);

		snprintf(path, sizeof(path), "%s/t.dtb", dir);
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(fdt, 1, fdt_totalsize(fdt), f), fdt_totalsize(fdt));
		assert_int_equal(fclose(f), 0);
		free(fdt);

		snprintf(cmd, sizeof(cmd), "dtc -I dtb -O dts -o %s/t.dts %s/t.dtb 2>%s/t.log", dir, dir,
			 dir);
		int rc = system(cmd);
		snprintf(path, sizeof(path), "%s/t.log", dir);
		f = fopen(path, "r");
		assert_non_null(f);
		char log[4096];
		size_t n = fread(log, 1, sizeof(log) - 1, f);
		log[n] = '\0';
		fclose(f);
		if (rc != 0 || n != 0)
			fail_msg("dtc on %u vCPUs%s%s: rc %d\n%s", cfgs[i].ncpus,
				 cfgs[i].initrd ? ", initrd" : "", cfgs[i].its ? ", ITS" : "", rc, log);

		/* The source names what we meant. */
		snprintf(cmd, sizeof(cmd),
			 "grep -qF 'compatible = \"pci-host-ecam-generic\";' %s/t.dts && "
			 "grep -qF 'compatible = \"arm,pl031\\0arm,primecell\";' %s/t.dts && "
			 "grep -qF 'compatible = \"arm,pl061\\0arm,primecell\";' %s/t.dts && "
			 "grep -qF 'linux,code = <0x74>;' %s/t.dts && "
			 "grep -qF 'stdout-path = \"/serial@a000000\";' %s/t.dts",
			 dir, dir, dir, dir, dir);
		assert_int_equal(system(cmd), 0);
	}
}

/* A scratch directory for dtc (tests/unit/scratch_dir.h). */
static int make_tmpdir(void **state)
{
	return scratch_dir_make(state, "test_arm64_fdt");
}

static int remove_tmpdir(void **state)
{
	return scratch_dir_remove(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_1cpu),
	    cmocka_unit_test(test_2cpus),
	    cmocka_unit_test(test_8cpus),
	    cmocka_unit_test(test_max_cpus),
	    cmocka_unit_test(test_no_cmdline),
	    cmocka_unit_test(test_enospc),
	    cmocka_unit_test(test_einval),
	    cmocka_unit_test_setup_teardown(test_dtc, make_tmpdir, remove_tmpdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
