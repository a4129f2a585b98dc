/* SPDX-License-Identifier: MIT */
/*
 * The arm64 device tree, written front to back with libfdt's sequential-write
 * API. Each node follows its Linux binding (Documentation/devicetree/bindings,
 * named at each node below); addresses and interrupts come from layout.h.
 */
#include "vmm/arch/arm64/fdt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <libfdt.h>
#include <linux/input-event-codes.h>

#include "vmm/arch/arm64/layout.h"

/* Interrupt specifier cells of the GICv3 binding (dt-bindings/interrupt-controller/{arm-gic,irq}.h). */
#define GIC_SPI		    0
#define GIC_PPI		    1
#define IRQ_TYPE_LEVEL_HIGH 4
#define IRQ_TYPE_LEVEL_LOW  8

/* PCI bus addresses, phys.hi cell (IEEE 1275 PCI binding): space code in bits 25:24, prefetchable bit 30. */
#define PCI_SPACE_MEM32	 0x02000000u
#define PCI_SPACE_MEM64	 0x03000000u
#define PCI_DEVICE_SHIFT 11 /* phys.hi bits 15:11 are the device (slot) number */

#define PAGE_SIZE_4K 0x1000ULL
#define PCI_SLOTS    32
#define INTX_PINS    4

_Static_assert(ARM64_MAX_CPUS *ARM64_GICR_STRIDE <= ARM64_GICR_MAX_SIZE, "GICR region too small");
_Static_assert(ARM64_GICD_BASE + ARM64_GICD_SIZE <= ARM64_GITS_BASE, "GICD overlaps the ITS");
_Static_assert(ARM64_GITS_BASE + ARM64_GITS_SIZE <= ARM64_GICR_BASE, "ITS overlaps the GICR");
_Static_assert(ARM64_GICR_BASE + ARM64_GICR_MAX_SIZE <= ARM64_UART_BASE, "GICR overlaps the UART");
_Static_assert(ARM64_UART_BASE + ARM64_UART_SIZE <= ARM64_RTC_BASE, "UART overlaps the RTC");
_Static_assert(ARM64_RTC_BASE + ARM64_RTC_SIZE <= ARM64_GPIO_BASE, "RTC overlaps the GPIO");
_Static_assert(ARM64_GPIO_BASE + ARM64_GPIO_SIZE <= ARM64_PCI_ECAM_BASE, "GPIO overlaps the ECAM");
_Static_assert(ARM64_PCI_ECAM_BASE % ARM64_PCI_ECAM_SIZE == 0, "ECAM must be aligned to its size");
_Static_assert(ARM64_PCI_ECAM_BASE + ARM64_PCI_ECAM_SIZE <= ARM64_PCI_MMIO32_BASE, "ECAM overlaps MMIO32");
_Static_assert(ARM64_PCI_MMIO32_BASE + ARM64_PCI_MMIO32_SIZE <= ARM64_RAM_BASE, "MMIO32 overlaps RAM");
_Static_assert((ARM64_GICD_BASE | ARM64_GITS_BASE | ARM64_GICR_BASE) % 0x10000 == 0,
	       "GIC frames are 64K aligned");

uint64_t arm64_vcpu_mpidr(unsigned i)
{
	return (uint64_t)(i & 0xf) | (uint64_t)((i >> 4) & 0xff) << 8 | (uint64_t)((i >> 12) & 0xff) << 16;
}

unsigned arm64_pci_intx_spi(unsigned slot, unsigned pin)
{
	return ARM64_SPI_PCI_INTX_BASE + ((slot & 0x1f) + ((pin - 1) & 3)) % ARM64_PCI_INTX_COUNT;
}

/* The writer: the first libfdt error sticks and turns every later call into a no-op. */
struct fdtw {
	void *fdt;
	int err;
};

static void chk(struct fdtw *w, int r)
{
	if (r < 0 && !w->err)
		w->err = r;
}

static void begin(struct fdtw *w, const char *name)
{
	if (!w->err)
		chk(w, fdt_begin_node(w->fdt, name));
}

static void begin_at(struct fdtw *w, const char *name, uint64_t addr)
{
	char s[64];

	snprintf(s, sizeof(s), "%s@%llx", name, (unsigned long long)addr);
	begin(w, s);
}

static void end(struct fdtw *w)
{
	if (!w->err)
		chk(w, fdt_end_node(w->fdt));
}

static void prop(struct fdtw *w, const char *name, const void *val, size_t len)
{
	if (!w->err)
		chk(w, fdt_property(w->fdt, name, val, (int)len));
}

static void prop_u32(struct fdtw *w, const char *name, uint32_t v)
{
	if (!w->err)
		chk(w, fdt_property_u32(w->fdt, name, v));
}

static void prop_u64(struct fdtw *w, const char *name, uint64_t v)
{
	if (!w->err)
		chk(w, fdt_property_u64(w->fdt, name, v));
}

static void prop_str(struct fdtw *w, const char *name, const char *s)
{
	prop(w, name, s, strlen(s) + 1);
}

/* A string list: list is "a\0b" and len its sizeof (the final NUL included). */
static void prop_strs(struct fdtw *w, const char *name, const char *list, size_t len)
{
	prop(w, name, list, len);
}

static void prop_empty(struct fdtw *w, const char *name)
{
	prop(w, name, NULL, 0);
}

/* Cells given in host order, written big-endian. */
static void prop_cells(struct fdtw *w, const char *name, const uint32_t *cells, size_t n)
{
	fdt32_t be[16];

	if (n > 16) { /* a bug here, not a guest's input: fail the build rather than read past be */
		chk(w, -FDT_ERR_INTERNAL);
		return;
	}
	for (size_t i = 0; i < n; i++)
		be[i] = cpu_to_fdt32(cells[i]);
	prop(w, name, be, n * sizeof(be[0]));
}

/* reg = <base size> with #address-cells = #size-cells = 2, one or two entries. */
static void prop_reg2(struct fdtw *w, uint64_t a0, uint64_t s0, uint64_t a1, uint64_t s1, int n)
{
	uint32_t c[8] = {
	    (uint32_t)(a0 >> 32), (uint32_t)a0, (uint32_t)(s0 >> 32), (uint32_t)s0,
	    (uint32_t)(a1 >> 32), (uint32_t)a1, (uint32_t)(s1 >> 32), (uint32_t)s1,
	};
	prop_cells(w, "reg", c, (size_t)n * 4);
}

static void prop_spi(struct fdtw *w, unsigned spi)
{
	uint32_t c[3] = {GIC_SPI, spi, IRQ_TYPE_LEVEL_HIGH};

	prop_cells(w, "interrupts", c, 3);
}

/* Documentation/devicetree/bindings/arm/cpus.yaml; MPIDRs as KVM assigns them. */
static void cpus_node(struct fdtw *w, unsigned ncpus)
{
	begin(w, "cpus");
	prop_u32(w, "#address-cells", 1);
	prop_u32(w, "#size-cells", 0);
	for (unsigned i = 0; i < ncpus; i++) {
		uint64_t mpidr = arm64_vcpu_mpidr(i);

		begin_at(w, "cpu", mpidr);
		prop_str(w, "device_type", "cpu");
		prop_str(w, "compatible", "arm,arm-v8");
		prop_str(w, "enable-method", "psci");
		prop_u32(w, "reg", (uint32_t)mpidr);
		end(w);
	}
	end(w);
}

/* Documentation/devicetree/bindings/arm/psci.yaml: KVM's PSCI, called with HVC #0. */
static void psci_node(struct fdtw *w)
{
	static const char compat[] = "arm,psci-1.0\0arm,psci-0.2";

	begin(w, "psci");
	prop_strs(w, "compatible", compat, sizeof(compat));
	prop_str(w, "method", "hvc");
	end(w);
}

/*
 * Documentation/devicetree/bindings/timer/arm,arch_timer.yaml: four PPIs in
 * the order secure, non-secure, virtual, hypervisor. Level-low as on hardware;
 * the flags carry no CPU mask (bits 15:8 are a GICv2-only field).
 */
static void timer_node(struct fdtw *w)
{
	const uint32_t c[12] = {
	    GIC_PPI, ARM64_PPI_TIMER_SEC,  IRQ_TYPE_LEVEL_LOW,
	    GIC_PPI, ARM64_PPI_TIMER_NS,   IRQ_TYPE_LEVEL_LOW,
	    GIC_PPI, ARM64_PPI_TIMER_VIRT, IRQ_TYPE_LEVEL_LOW,
	    GIC_PPI, ARM64_PPI_TIMER_HYP,  IRQ_TYPE_LEVEL_LOW,
	};

	begin(w, "timer");
	prop_str(w, "compatible", "arm,armv8-timer");
	prop_cells(w, "interrupts", c, 12);
	prop_empty(w, "always-on");
	end(w);
}

/*
 * Documentation/devicetree/bindings/interrupt-controller/arm,gic-v3.yaml:
 * GICD, then one GICR region for all vCPUs; the ITS as a child. #address-cells
 * is there even without an ITS: the PCI interrupt-map's parent unit address
 * has that many cells (and dtc wants it on every interrupt provider).
 */
static void gic_node(struct fdtw *w, const struct arm64_fdt_params *p)
{
	begin_at(w, "interrupt-controller", ARM64_GICD_BASE);
	prop_str(w, "compatible", "arm,gic-v3");
	prop_u32(w, "#interrupt-cells", 3);
	prop_empty(w, "interrupt-controller");
	prop_reg2(w, ARM64_GICD_BASE, ARM64_GICD_SIZE, ARM64_GICR_BASE, p->ncpus * ARM64_GICR_STRIDE, 2);
	prop_u32(w, "#address-cells", 2);
	prop_u32(w, "#size-cells", 2);
	prop_empty(w, "ranges");
	prop_u32(w, "phandle", ARM64_PHANDLE_GIC);
	if (p->its) {
		begin_at(w, "msi-controller", ARM64_GITS_BASE);
		prop_str(w, "compatible", "arm,gic-v3-its");
		prop_empty(w, "msi-controller");
		prop_u32(w, "#msi-cells", 1);
		prop_reg2(w, ARM64_GITS_BASE, ARM64_GITS_SIZE, 0, 0, 1);
		prop_u32(w, "phandle", ARM64_PHANDLE_ITS);
		end(w);
	}
	end(w);
}

/* Documentation/devicetree/bindings/clock/fixed-clock.yaml: the PrimeCell bus clock. */
static void apb_clock_node(struct fdtw *w)
{
	begin(w, "apb-pclk");
	prop_str(w, "compatible", "fixed-clock");
	prop_u32(w, "#clock-cells", 0);
	prop_u32(w, "clock-frequency", ARM64_APB_CLOCK_HZ);
	prop_str(w, "clock-output-names", "clk24mhz");
	prop_u32(w, "phandle", ARM64_PHANDLE_APB_CLK);
	end(w);
}

/* Documentation/devicetree/bindings/serial/8250.yaml: byte-wide registers, one apart. */
static void uart_node(struct fdtw *w)
{
	begin_at(w, "serial", ARM64_UART_BASE);
	prop_str(w, "compatible", "ns16550a");
	prop_reg2(w, ARM64_UART_BASE, ARM64_UART_SIZE, 0, 0, 1);
	prop_spi(w, ARM64_SPI_UART);
	prop_u32(w, "clock-frequency", ARM64_UART_CLOCK_HZ);
	prop_u32(w, "reg-shift", 0);
	prop_u32(w, "reg-io-width", 1);
	end(w);
}

/*
 * Opens a PrimeCell device's node (Documentation/devicetree/bindings/arm/primecell.yaml): its
 * compatible list (the part's, then "arm,primecell"), registers, SPI and the apb_pclk bus clock.
 * The caller adds the part's own properties and ends the node.
 */
static void begin_primecell(struct fdtw *w, const char *name, const char *compat, size_t compat_len,
			    uint64_t base, uint64_t size, uint32_t spi)
{
	begin_at(w, name, base);
	prop_strs(w, "compatible", compat, compat_len);
	prop_reg2(w, base, size, 0, 0, 1);
	prop_spi(w, spi);
	prop_u32(w, "clocks", ARM64_PHANDLE_APB_CLK);
	prop_str(w, "clock-names", "apb_pclk");
}

/* Documentation/devicetree/bindings/rtc/arm,pl031.yaml. */
static void rtc_node(struct fdtw *w)
{
	static const char compat[] = "arm,pl031\0arm,primecell";

	begin_primecell(w, "rtc", compat, sizeof(compat), ARM64_RTC_BASE, ARM64_RTC_SIZE, ARM64_SPI_RTC);
	end(w);
}

/*
 * Documentation/devicetree/bindings/gpio/pl061-gpio.yaml: the GPIO
 * controller gpio-keys takes its pin from (#gpio-cells: pin, flags).
 */
static void gpio_node(struct fdtw *w)
{
	static const char compat[] = "arm,pl061\0arm,primecell";

	begin_primecell(w, "gpio", compat, sizeof(compat), ARM64_GPIO_BASE, ARM64_GPIO_SIZE, ARM64_SPI_GPIO);
	prop_empty(w, "gpio-controller");
	prop_u32(w, "#gpio-cells", 2);
	prop_u32(w, "phandle", ARM64_PHANDLE_GPIO);
	end(w);
}

/*
 * Documentation/devicetree/bindings/input/gpio-keys.yaml: the power button, KEY_POWER on the
 * PL061's pin ARM64_GPIO_POWER_PIN, active high (flags 0), as QEMU's virt machine wires it.
 */
static void gpio_keys_node(struct fdtw *w)
{
	const uint32_t gpios[3] = {ARM64_PHANDLE_GPIO, ARM64_GPIO_POWER_PIN, 0};

	begin(w, "gpio-keys");
	prop_str(w, "compatible", "gpio-keys");
	begin(w, "button-power");
	prop_str(w, "label", "Power Button");
	prop_u32(w, "linux,code", KEY_POWER);
	prop_cells(w, "gpios", gpios, 3);
	end(w);
	end(w);
}

/* One ranges entry: PCI address (3 cells) = CPU address (2) for size (2): identity-mapped. */
static void range_entry(fdt32_t *c, uint32_t space, uint64_t base, uint64_t size)
{
	c[0] = cpu_to_fdt32(space);
	c[1] = cpu_to_fdt32((uint32_t)(base >> 32));
	c[2] = cpu_to_fdt32((uint32_t)base);
	c[3] = cpu_to_fdt32((uint32_t)(base >> 32));
	c[4] = cpu_to_fdt32((uint32_t)base);
	c[5] = cpu_to_fdt32((uint32_t)(size >> 32));
	c[6] = cpu_to_fdt32((uint32_t)size);
}

/*
 * Documentation/devicetree/bindings/pci/host-generic-pci.yaml (ECAM) and
 * pci/pci-msi.txt. No I/O window: no kvmini device has an I/O BAR. INTx of
 * every slot and pin through interrupt-map (a device may always fall back to
 * INTx); with an ITS, MSIs through msi-map: the RID is the ITS DeviceID. A
 * bare msi-parent would not do: the ITS has #msi-cells = 1, so a specifier
 * cell is due, and Linux ignores a bare one for PCI (drivers/of/irq.c).
 */
static void pci_node(struct fdtw *w, const struct arm64_fdt_params *p)
{
	fdt32_t ranges[14], map[PCI_SLOTS * INTX_PINS * 10];
	size_t nr = 7;

	begin_at(w, "pcie", ARM64_PCI_ECAM_BASE);
	prop_str(w, "compatible", "pci-host-ecam-generic");
	prop_str(w, "device_type", "pci");
	prop_u32(w, "#address-cells", 3);
	prop_u32(w, "#size-cells", 2);
	prop_u32(w, "#interrupt-cells", 1);
	const uint32_t bus_range[2] = {0, ARM64_PCI_ECAM_BUSES - 1};
	prop_cells(w, "bus-range", bus_range, 2);
	prop_u32(w, "linux,pci-domain", 0);
	prop_reg2(w, ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE, 0, 0, 1);
	range_entry(ranges, PCI_SPACE_MEM32, ARM64_PCI_MMIO32_BASE, ARM64_PCI_MMIO32_SIZE);
	if (p->pci_mmio64_size) {
		range_entry(ranges + 7, PCI_SPACE_MEM64, p->pci_mmio64_base, p->pci_mmio64_size);
		nr += 7;
	}
	prop(w, "ranges", ranges, nr * sizeof(ranges[0]));
	prop_empty(w, "dma-coherent");

	const uint32_t mask[4] = {0x1f << PCI_DEVICE_SHIFT, 0, 0, 7};
	prop_cells(w, "interrupt-map-mask", mask, 4);
	fdt32_t *c = map;
	for (unsigned slot = 0; slot < PCI_SLOTS; slot++)
		for (unsigned pin = 1; pin <= INTX_PINS; pin++) {
			const uint32_t e[10] = {
			    slot << PCI_DEVICE_SHIFT,
			    0,
			    0,
			    pin, /* child unit address, INTx pin */
			    ARM64_PHANDLE_GIC,
			    0,
			    0, /* the GIC and its unit address (2 cells) */
			    GIC_SPI,
			    arm64_pci_intx_spi(slot, pin),
			    IRQ_TYPE_LEVEL_HIGH,
			};
			for (size_t i = 0; i < 10; i++)
				*c++ = cpu_to_fdt32(e[i]);
		}
	prop(w, "interrupt-map", map, sizeof(map));
	if (p->its) {
		const uint32_t msi_map[4] = {0, ARM64_PHANDLE_ITS, 0, 0x10000};
		prop_cells(w, "msi-map", msi_map, 4);
	}
	end(w);
}

/* dt-schema's chosen.yaml; Linux reads linux,initrd-* as a number of the property's size. */
static void chosen_node(struct fdtw *w, const struct arm64_fdt_params *p)
{
	char path[64];

	begin(w, "chosen");
	if (p->cmdline && p->cmdline[0])
		prop_str(w, "bootargs", p->cmdline);
	snprintf(path, sizeof(path), "/serial@%llx", (unsigned long long)ARM64_UART_BASE);
	prop_str(w, "stdout-path", path);
	if (p->initrd_size) {
		prop_u64(w, "linux,initrd-start", p->initrd_start);
		prop_u64(w, "linux,initrd-end", p->initrd_start + p->initrd_size);
	}
	end(w);
}

static int check_params(const struct arm64_fdt_params *p, struct err *e)
{
	uint64_t mem_end = p->mem_base + p->mem_size;

	if (p->ncpus < 1 || p->ncpus > ARM64_MAX_CPUS)
		return err_set(e, -EINVAL, "device tree: %u vCPUs (1 to %d)", p->ncpus, ARM64_MAX_CPUS);
	if (!p->mem_size || mem_end < p->mem_base || p->mem_base < ARM64_RAM_BASE ||
	    (p->mem_base | p->mem_size) % PAGE_SIZE_4K)
		return err_set(e, -EINVAL, "device tree: bad RAM range 0x%llx+0x%llx",
			       (unsigned long long)p->mem_base, (unsigned long long)p->mem_size);
	if (p->initrd_size &&
	    (p->initrd_start < p->mem_base || p->initrd_start + p->initrd_size < p->initrd_start ||
	     p->initrd_start + p->initrd_size > mem_end))
		return err_set(e, -EINVAL, "device tree: initrd 0x%llx+0x%llx is not inside RAM",
			       (unsigned long long)p->initrd_start, (unsigned long long)p->initrd_size);
	if (p->cmdline && strlen(p->cmdline) >= ARM64_CMDLINE_MAX)
		return err_set(e, -EINVAL, "device tree: command line of %zu bytes (at most %d)",
			       strlen(p->cmdline), ARM64_CMDLINE_MAX - 1);
	if (p->pci_mmio64_size &&
	    (p->pci_mmio64_base % ARM64_PCI_MMIO64_ALIGN || p->pci_mmio64_base < mem_end ||
	     p->pci_mmio64_size > ARM64_PCI_MMIO64_SIZE ||
	     p->pci_mmio64_base + p->pci_mmio64_size < p->pci_mmio64_base))
		return err_set(e, -EINVAL, "device tree: bad 64-bit PCI window 0x%llx+0x%llx",
			       (unsigned long long)p->pci_mmio64_base,
			       (unsigned long long)p->pci_mmio64_size);
	return 0;
}

int arm64_fdt_build(const struct arm64_fdt_params *p, void *buf, size_t size, struct err *e)
{
	struct fdtw w = {.fdt = buf};
	int r;

	if (!p || !buf)
		return err_set(e, -EINVAL, "device tree: no parameters or no buffer");
	if ((r = check_params(p, e)))
		return r;

	chk(&w, fdt_create(buf, size > INT_MAX ? INT_MAX : (int)size));
	if (!w.err)
		chk(&w, fdt_finish_reservemap(buf));

	/* Documentation/devicetree/usage-model.rst; the root's interrupt-parent is inherited by every device.
	 */
	begin(&w, "");
	prop_str(&w, "compatible", "linux,dummy-virt");
	prop_u32(&w, "#address-cells", 2);
	prop_u32(&w, "#size-cells", 2);
	prop_u32(&w, "interrupt-parent", ARM64_PHANDLE_GIC);

	chosen_node(&w, p);
	begin_at(&w, "memory", p->mem_base);
	prop_str(&w, "device_type", "memory");
	prop_reg2(&w, p->mem_base, p->mem_size, 0, 0, 1);
	end(&w);
	cpus_node(&w, p->ncpus);
	psci_node(&w);
	timer_node(&w);
	gic_node(&w, p);
	apb_clock_node(&w);
	uart_node(&w);
	rtc_node(&w);
	gpio_node(&w);
	gpio_keys_node(&w);
	pci_node(&w, p);
	end(&w);

	if (!w.err)
		chk(&w, fdt_finish(buf));
	if (w.err == -FDT_ERR_NOSPACE)
		return err_set(e, -ENOSPC, "device tree does not fit in %zu bytes", size);
	if (w.err)
		return err_set(e, -EINVAL, "device tree: libfdt: %s", fdt_strerror(w.err));
	return 0;
}
