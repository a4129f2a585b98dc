/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the ACPI tables (vmm/arch/x86/acpi.c, vmm/arch/x86/dsdt.asl).
 * Fields are read at their ACPI 6.0 offsets with byte readers, not through
 * the builder's structs, so a wrong struct layout shows up here.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/scratch_dir.h"

#include "devices/pci.h"
#include "vmm/arch/x86/acpi.h"
#include "vmm/arch/x86/layout.h"

#define ACPI_LEN (LAYOUT_ACPI_END - LAYOUT_ACPI_START)
#define HDR_LEN	 36

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

/* The tables for ncpus, built into a fresh copy of the real ACPI region. */
struct tables {
	uint8_t *buf;
	size_t len;
	uint64_t gpa;
	uint64_t rsdp;
};

/* A 64-bit PCI window as vm.c would compute it for 6 GiB of RAM. */
#define WIN64_BASE 0x180000000ULL
#define WIN64_SIZE LAYOUT_PCI_MMIO64_SIZE

static void build_cfg(struct tables *t, const struct acpi_config *cfg, uint64_t gpa, size_t len)
{
	t->buf = malloc(len);
	assert_non_null(t->buf);
	memset(t->buf, 0xa5, len);
	t->len = len;
	t->gpa = gpa;
	assert_int_equal(acpi_build(t->buf, len, gpa, cfg, &t->rsdp), 0);
}

static void build_at(struct tables *t, unsigned ncpus, uint64_t gpa, size_t len)
{
	struct acpi_config cfg = {.ncpus = ncpus};

	t->buf = malloc(len);
	assert_non_null(t->buf);
	memset(t->buf, 0xa5, len);
	t->len = len;
	t->gpa = gpa;
	assert_int_equal(acpi_build(t->buf, len, gpa, &cfg, &t->rsdp), 0);
}

static void build(struct tables *t, unsigned ncpus)
{
	build_at(t, ncpus, LAYOUT_ACPI_START, ACPI_LEN);
}

static void release(struct tables *t)
{
	free(t->buf);
}

/* A table at guest address gpa: checks it lies in the buffer and sums to 0. */
static const uint8_t *table(const struct tables *t, uint64_t gpa, const char *sig)
{
	assert_true(gpa >= t->gpa && gpa - t->gpa + HDR_LEN <= t->len);
	const uint8_t *p = t->buf + (gpa - t->gpa);
	uint32_t len = rd32(p + 4);

	assert_memory_equal(p, sig, 4);
	assert_true(len >= HDR_LEN && gpa - t->gpa + len <= t->len);
	assert_int_equal(sum8(p, len), 0);
	return p;
}

static const uint8_t *rsdp(const struct tables *t)
{
	return t->buf + (t->rsdp - t->gpa);
}

static uint64_t xsdt_entry(const struct tables *t, unsigned i)
{
	const uint8_t *x = table(t, rd64(rsdp(t) + 24), "XSDT");

	return rd64(x + HDR_LEN + 8 * i);
}

static const uint8_t *fadt(const struct tables *t)
{
	return table(t, xsdt_entry(t, 0), "FACP");
}

static const uint8_t *madt(const struct tables *t)
{
	return table(t, xsdt_entry(t, 1), "APIC");
}

static const uint8_t *dsdt(const struct tables *t)
{
	return table(t, rd64(fadt(t) + 140), "DSDT");
}

static void check_ids(const uint8_t *h)
{
	assert_memory_equal(h + 10, "KVMINI", 6);
	assert_memory_equal(h + 16, "KVMINIVM", 8);
}

static void test_rsdp(void **state)
{
	struct tables t;
	int found = 0;

	build(&t, 1);
	assert_int_equal(t.rsdp, LAYOUT_ACPI_START);
	/* Scan like Linux: 16-byte boundaries of 0xE0000-0xFFFFF, checksum over 20 bytes. */
	for (size_t off = 0; off + 36 <= t.len; off += 16) {
		if (memcmp(t.buf + off, "RSD PTR ", 8) || sum8(t.buf + off, 20))
			continue;
		assert_int_equal(t.gpa + off, t.rsdp);
		found++;
	}
	assert_int_equal(found, 1);

	const uint8_t *r = rsdp(&t);
	assert_memory_equal(r + 9, "KVMINI", 6);
	assert_int_equal(r[15], 2);	   /* revision: ACPI 2.0+ */
	assert_int_equal(rd32(r + 16), 0); /* no RSDT */
	assert_int_equal(rd32(r + 20), 36);
	assert_int_equal(sum8(r, 36), 0);
	assert_int_equal(rd64(r + 24) % 8, 0);
	release(&t);
}

static void test_xsdt(void **state)
{
	struct tables t;

	build(&t, 2);
	const uint8_t *x = table(&t, rd64(rsdp(&t) + 24), "XSDT");
	assert_int_equal(rd32(x + 4), HDR_LEN + 2 * 8);
	assert_int_equal(x[8], 1);
	check_ids(x);
	assert_memory_equal(x + 28, "KVMI", 4);
	/* table() checks each entry lies in the buffer, has its signature and sums to 0. */
	check_ids(fadt(&t));
	check_ids(madt(&t));
	check_ids(dsdt(&t));
	assert_memory_equal(madt(&t) + 28, "KVMI", 4);
	release(&t);
}

static void check_gas_io(const uint8_t *g, unsigned bit_width, uint64_t port)
{
	assert_int_equal(g[0], 1); /* SystemIO */
	assert_int_equal(g[1], bit_width);
	assert_int_equal(g[2], 0);
	assert_int_equal(rd64(g + 4), port);
}

static void check_gas_zero(const uint8_t *g)
{
	static const uint8_t zero[12];

	assert_memory_equal(g, zero, 12);
}

static void test_fadt(void **state)
{
	struct tables t;

	build(&t, 1);
	const uint8_t *f = fadt(&t);
	uint32_t flags = rd32(f + 112);
	uint16_t boot = rd16(f + 109);

	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_memory_equal(f + 28, "KVMI", 4);
	assert_in_range(f[45], 0, 1); /* Preferred_PM_Profile */
	assert_int_equal(rd16(f + 46), IRQ_ACPI_SCI);
	assert_int_equal(rd32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	assert_int_equal(rd32(f + 56), PORT_ACPI_PM1A_EVT);
	assert_int_equal(rd32(f + 60), 0);
	assert_int_equal(rd32(f + 64), PORT_ACPI_PM1A_CNT);
	assert_int_equal(rd32(f + 68), 0);
	assert_int_equal(rd32(f + 72), 0); /* PM2 */
	assert_int_equal(rd32(f + 76), 0); /* PM timer */
	assert_int_equal(rd32(f + 80), 0); /* GPE0 */
	assert_int_equal(rd32(f + 84), 0); /* GPE1 */
	assert_int_equal(f[88], PORT_ACPI_PM1A_EVT_LEN);
	assert_int_equal(f[89], PORT_ACPI_PM1A_CNT_LEN);
	assert_int_equal(f[91], 0);
	assert_int_equal(f[92], 0);
	assert_int_equal(f[93], 0);
	assert_int_equal(f[108], 0x32); /* CMOS century index, as devices/rtc.c serves it */

	assert_true(boot & (1u << 0));	/* LEGACY_DEVICES */
	assert_true(boot & (1u << 1));	/* 8042 */
	assert_true(boot & (1u << 2));	/* VGA not present */
	assert_false(boot & (1u << 3)); /* MSI not supported */
	assert_false(boot & (1u << 5)); /* CMOS RTC not present */

	assert_true(flags & (1u << 0));	  /* WBINVD */
	assert_true(flags & (1u << 2));	  /* PROC_C1 */
	assert_false(flags & (1u << 4));  /* PWR_BUTTON: fixed feature */
	assert_true(flags & (1u << 5));	  /* SLP_BUTTON: absent */
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
	assert_false(flags & (1u << 20)); /* HW_REDUCED_ACPI */

	check_gas_io(f + 116, 8, PORT_ACPI_RESET);
	assert_int_equal(f[128], ACPI_RESET_VALUE);
	check_gas_io(f + 148, PORT_ACPI_PM1A_EVT_LEN * 8, PORT_ACPI_PM1A_EVT);
	check_gas_zero(f + 160);
	check_gas_io(f + 172, PORT_ACPI_PM1A_CNT_LEN * 8, PORT_ACPI_PM1A_CNT);
	for (unsigned off = 184; off < 268; off += 12)
		check_gas_zero(f + off);

	/* DSDT through both pointers: the embedded AML, but for the 64-bit window (test_dsdt_mem64). */
	assert_int_equal(rd32(f + 40), rd64(f + 140));
	const uint8_t *d = dsdt(&t);
	assert_int_equal(rd32(d + 4), dsdt_aml_end - dsdt_aml);
	assert_memory_equal(d, dsdt_aml, 9);
	assert_memory_equal(d + 10, dsdt_aml + 10, HDR_LEN - 10);
	assert_int_equal(d[8], 2); /* 64-bit integers */

	/* FACS: 32-bit pointer only, 64-byte aligned, no checksum. */
	uint64_t facs = rd32(f + 36);
	assert_int_equal(rd64(f + 132), 0);
	assert_int_equal(facs % 64, 0);
	assert_true(facs >= t.gpa && facs - t.gpa + 64 <= t.len);
	assert_memory_equal(t.buf + (facs - t.gpa), "FACS", 4);
	assert_int_equal(rd32(t.buf + (facs - t.gpa) + 4), 64);
	release(&t);
}

/* Walks the MADT of an ncpus guest and checks every entry. */
static void check_madt(unsigned ncpus)
{
	struct tables t;
	uint64_t seen_apic_ids = 0;
	unsigned lapics = 0, ioapics = 0, sci_isos = 0, nmis = 0;
	int ioapic_id = -1;

	build(&t, ncpus);
	const uint8_t *m = madt(&t);
	uint32_t len = rd32(m + 4);

	assert_int_equal(rd32(m + 36), LAYOUT_LAPIC_ADDR);
	assert_int_equal(rd32(m + 40), 1); /* PCAT_COMPAT */
	for (uint32_t off = 44; off < len;) {
		const uint8_t *e = m + off;

		assert_true(off + 2 <= len && e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0: /* Processor Local APIC */
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], e[3]); /* UID == APIC ID */
			assert_in_range(e[3], 0, ncpus - 1);
			assert_false(seen_apic_ids & (1ULL << e[3]));
			seen_apic_ids |= 1ULL << e[3];
			assert_int_equal(rd32(e + 4), 1); /* enabled */
			lapics++;
			break;
		case 1: /* I/O APIC */
			assert_int_equal(e[1], 12);
			ioapic_id = e[2];
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC_ADDR);
			assert_int_equal(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2: /* Interrupt Source Override */
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);
			assert_int_equal(e[3], IRQ_ACPI_SCI); /* nothing for IRQ 0 */
			assert_int_equal(rd32(e + 4), IRQ_ACPI_SCI);
			assert_int_equal(rd16(e + 8), 0x000d); /* active high, level */
			sci_isos++;
			break;
		case 4: /* Local APIC NMI */
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(rd16(e + 3), 0);
			assert_int_equal(e[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(seen_apic_ids, ncpus == 64 ? UINT64_MAX : (1ULL << ncpus) - 1);
	assert_int_equal(ioapics, 1);
	assert_true(ioapic_id >= 0 && !(ioapic_id < 64 && (seen_apic_ids & (1ULL << ioapic_id))));
	assert_int_equal(sci_isos, 1);
	assert_int_equal(nmis, 1);
	release(&t);
}

static void test_madt(void **state)
{
	static const unsigned counts[] = {1, 2, 3, 4, 64};

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		check_madt(counts[i]);
}

/* Another base address: the FACS still lands 64-byte aligned, pointers follow the base. */
static void test_other_base(void **state)
{
	struct tables t;

	build_at(&t, 4, 0x10010, 0x4000);
	assert_int_equal(t.rsdp, 0x10010);
	assert_int_equal(rd32(fadt(&t) + 36) % 64, 0);
	madt(&t);
	dsdt(&t);
	release(&t);
}

/* Bytes the tables take for ncpus at the real base. */
static size_t used_bytes(unsigned ncpus)
{
	struct tables t;
	size_t used;

	build(&t, ncpus);
	const uint8_t *d = dsdt(&t);
	used = (size_t)(d - t.buf) + rd32(d + 4);
	release(&t);
	return used;
}

static void test_enospc(void **state)
{
	struct acpi_config cfg = {.ncpus = 64};
	size_t need = used_bytes(64);
	size_t sizes[] = {0, 1, 35, 36, 100, 512, need - 1};
	uint64_t rsdp = 0;

	assert_true(need <= ACPI_LEN);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* Exactly sized allocations, so ASan catches a write past len. */
		uint8_t *b = malloc(sizes[i] ? sizes[i] : 1);

		assert_non_null(b);
		memset(b, 0xa5, sizes[i]);
		assert_int_equal(acpi_build(b, sizes[i], LAYOUT_ACPI_START, &cfg, &rsdp), -ENOSPC);
		for (size_t j = 0; j < sizes[i]; j++)
			assert_int_equal(b[j], 0xa5); /* untouched on error */
		free(b);
	}
	uint8_t *b = malloc(need);
	assert_non_null(b);
	assert_int_equal(acpi_build(b, need, LAYOUT_ACPI_START, &cfg, &rsdp), 0);
	free(b);
}

static void test_einval(void **state)
{
	static uint8_t b[ACPI_LEN];
	struct acpi_config cfg = {.ncpus = 1};
	struct acpi_config zero = {.ncpus = 0}, many = {.ncpus = ACPI_MAX_CPUS + 1};
	uint64_t rsdp;

	assert_int_equal(acpi_build(NULL, sizeof(b), LAYOUT_ACPI_START, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START, NULL, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START, &cfg, NULL), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START, &zero, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START, &many, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START + 8, &cfg, &rsdp), -EINVAL);
	/* 32-bit table pointers cannot reach above 4 GiB. */
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_4G - 0x100, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), UINT64_MAX - 15, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_4G - sizeof(b), &cfg, &rsdp), 0);
}

/* Finds needle in the AML; returns its offset or -1. */
static long aml_find(const uint8_t *needle, size_t n)
{
	size_t len = (size_t)(dsdt_aml_end - dsdt_aml);

	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(dsdt_aml + i, needle, n))
			return (long)i;
	return -1;
}

/* IO (Decode16, port, port, align, len) then IRQNoFlags () {irq}, as iasl encodes them. */
static void check_isa_device(uint16_t port, uint8_t align, uint8_t len, unsigned irq)
{
	uint16_t mask = (uint16_t)(1u << irq);
	uint8_t d[] = {0x47,  0x01, port & 0xff, port >> 8,   port & 0xff, port >> 8,
		       align, len,  0x22,	 mask & 0xff, mask >> 8};

	assert_true(aml_find(d, sizeof(d)) >= 0);
}

/* Large address-space descriptor (Word: 0x88, DWord: 0x87): min/max/length read back. */
static int aml_has_window(uint8_t tag, uint8_t type, uint64_t min, uint64_t max)
{
	size_t len = (size_t)(dsdt_aml_end - dsdt_aml);
	unsigned w = tag == 0x87 ? 4 : 2;

	for (size_t i = 0; i + 6 + 5 * w <= len; i++) {
		const uint8_t *p = dsdt_aml + i;
		const uint8_t *f = p + 6; /* granularity, min, max, translation, length */
		uint64_t rmin, rmax, rlen;

		if (p[0] != tag || rd16(p + 1) != 3 + 5 * w || p[3] != type)
			continue;
		rmin = w == 4 ? rd32(f + w) : rd16(f + w);
		rmax = w == 4 ? rd32(f + 2 * w) : rd16(f + 2 * w);
		rlen = w == 4 ? rd32(f + 4 * w) : rd16(f + 4 * w);
		if (rmin == min && rmax == max && rlen == max - min + 1)
			return 1;
	}
	return 0;
}

/* The literals that dsdt.asl cannot take from layout.h, checked against it here. */
static void test_dsdt_aml(void **state)
{
	static const uint8_t pnp0a03[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};
	static const uint8_t cfg_io[] = {0x47,
					 0x01,
					 PORT_PCI_CONFIG_ADDR & 0xff,
					 PORT_PCI_CONFIG_ADDR >> 8,
					 PORT_PCI_CONFIG_ADDR & 0xff,
					 PORT_PCI_CONFIG_ADDR >> 8,
					 0x01,
					 PORT_PCI_CONFIG_DATA + 4 - PORT_PCI_CONFIG_ADDR};
	long s5 = aml_find((const uint8_t *)"_S5_", 4);

	assert_memory_equal(dsdt_aml, "DSDT", 4);
	assert_int_equal(rd32(dsdt_aml + 4), dsdt_aml_end - dsdt_aml);
	assert_int_equal(sum8(dsdt_aml, dsdt_aml_end - dsdt_aml), 0);
	assert_true(aml_find(pnp0a03, sizeof(pnp0a03)) >= 0);
	assert_true(aml_find(cfg_io, sizeof(cfg_io)) >= 0);
	assert_true(aml_has_window(0x88, 2, 0, 0)); /* bus 0 only */
	assert_true(aml_has_window(0x88, 1, 0, PORT_PCI_CONFIG_ADDR - 1));
	assert_true(aml_has_window(0x88, 1, PORT_PCI_CONFIG_DATA + 4, PORT_PCI_IO_END));
	assert_true(PORT_PCI_CONFIG_DATA + 4 <= PORT_PCI_IO_START);
	assert_true(aml_has_window(0x87, 0, LAYOUT_PCI_MMIO32_START, LAYOUT_PCI_MMIO32_END));

	check_isa_device(PORT_COM1, 0x08, PORT_COM1_LEN, IRQ_COM1);
	check_isa_device(PORT_RTC_INDEX, 0x01, 2, IRQ_RTC);
	check_isa_device(PORT_I8042_CMD, 0x01, 1, IRQ_I8042_KBD);

	/* The exit-status port, reserved by a motherboard-resources device. */
	static const uint8_t pnp0c02[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x02};
	static const uint8_t exit_io[] = {0x47,
					  0x01,
					  PORT_GUEST_EXIT & 0xff,
					  PORT_GUEST_EXIT >> 8,
					  PORT_GUEST_EXIT & 0xff,
					  PORT_GUEST_EXIT >> 8,
					  0x01,
					  0x01};
	assert_true(aml_find(pnp0c02, sizeof(pnp0c02)) >= 0);
	assert_true(aml_find(exit_io, sizeof(exit_io)) >= 0);

	/* Name (_S5, Package () {typ, typ, 0, 0}): PackageOp, PkgLength, count, BytePrefix typ... */
	assert_true(s5 >= 0);
	const uint8_t *p = dsdt_aml + s5 + 4;
	assert_int_equal(p[0], 0x12);
	assert_int_equal(p[2], 4);
	assert_true(ACPI_S5_SLP_TYP > 1); /* else iasl encodes it as ZeroOp/OneOp */
	assert_int_equal(p[3], 0x0a);
	assert_int_equal(p[4], ACPI_S5_SLP_TYP);
	assert_int_equal(p[5], 0x0a);
	assert_int_equal(p[6], ACPI_S5_SLP_TYP);
}

/* An AML integer (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix) at p; advances p. */
static uint64_t aml_int(const uint8_t **p)
{
	const uint8_t *q = *p;
	unsigned n = q[0] == 0x0a ? 1 : q[0] == 0x0b ? 2 : q[0] == 0x0c ? 4 : q[0] == 0x0e ? 8 : 0;
	uint64_t v = 0;

	if (n == 0) {
		assert_true(q[0] == 0x00 || q[0] == 0x01);
		*p = q + 1;
		return q[0];
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)q[1 + i] << (8 * i);
	*p = q + 1 + n;
	return v;
}

/* An AML PkgLength at p: returns the length it encodes (counting itself); advances p past it. */
static size_t aml_pkglen(const uint8_t **p)
{
	const uint8_t *q = *p;
	unsigned extra = q[0] >> 6;
	size_t len = extra ? q[0] & 0x0f : q[0] & 0x3f;

	for (unsigned i = 0; i < extra; i++)
		len |= (size_t)q[1 + i] << (4 + 8 * i);
	*p = q + 1 + extra;
	return len;
}

/* Every _PRT entry routes slot/pin exactly as pci_host_intx_gsi() does, for slots 1-31, pins A-D. */
static void test_dsdt_prt(void **state)
{
	long at = aml_find((const uint8_t *)"_PRT", 4);
	bool seen[32][4] = {{false}};

	assert_true(at >= 0);
	assert_int_equal(aml_find((const uint8_t *)"_PRT", 4), at);
	const uint8_t *p = dsdt_aml + at + 4, *end;
	assert_int_equal(*p++, 0x12); /* PackageOp */
	const uint8_t *start = p;
	end = start + aml_pkglen(&p);
	assert_true(end <= dsdt_aml_end);
	unsigned n = *p++;
	assert_int_equal(n, 31 * 4);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(*p++, 0x12);
		const uint8_t *e = p;
		const uint8_t *e_end = e + aml_pkglen(&p);
		assert_int_equal(*p++, 4);
		uint64_t adr = aml_int(&p), pin = aml_int(&p), src = aml_int(&p), gsi = aml_int(&p);
		assert_true(p == e_end);
		assert_int_equal(adr & 0xffff, 0xffff); /* any function */
		unsigned slot = (unsigned)(adr >> 16);
		assert_in_range(slot, 1, 31);
		assert_in_range(pin, 0, 3);
		assert_false(seen[slot][pin]);
		seen[slot][pin] = true;
		assert_int_equal(src, 0); /* a GSI, not a link device */
		assert_int_equal(gsi, pci_host_intx_gsi(PCI_DEVFN(slot, 0), (unsigned)pin + 1));
		assert_int_equal(gsi, pci_host_intx_gsi(PCI_DEVFN(slot, 7), (unsigned)pin + 1));
		assert_in_range(gsi, IRQ_PCI_INTX_BASE, IOAPIC_NUM_PINS - 1);
	}
	assert_true(p == end);
}

/* The QWordMemory descriptors (tag 0x8a, memory) in a DSDT; returns how many have min/max/len. */
static int qword_windows(const uint8_t *d, uint64_t min, uint64_t max, uint64_t len)
{
	int found = 0;

	for (uint32_t i = HDR_LEN; i + 46 <= rd32(d + 4); i++) {
		const uint8_t *p = d + i;
		if (p[0] != 0x8a || rd16(p + 1) != 43 || p[3] != 0)
			continue;
		if (rd64(p + 14) == min && rd64(p + 22) == max && rd64(p + 38) == len)
			found++;
	}
	return found;
}

static void test_dsdt_mem64(void **state)
{
	struct acpi_config cfg = {.ncpus = 1, .pci_mem64_base = WIN64_BASE, .pci_mem64_size = WIN64_SIZE};
	struct tables t;

	/* The blob holds the placeholder; the guest's copy holds the window, checksum resealed. */
	assert_int_equal(qword_windows(dsdt_aml, 0x0000dead00000000ULL, 0x0000deadffffffffULL, 1ULL << 32),
			 1);
	build_cfg(&t, &cfg, LAYOUT_ACPI_START, ACPI_LEN);
	const uint8_t *d = dsdt(&t); /* checks the checksum */
	assert_int_equal(qword_windows(d, WIN64_BASE, WIN64_BASE + WIN64_SIZE - 1, WIN64_SIZE), 1);
	assert_int_equal(qword_windows(d, 0x0000dead00000000ULL, 0x0000deadffffffffULL, 1ULL << 32), 0);
	/* Everything else is the blob, byte for byte. */
	size_t diff = 0;
	for (size_t i = 0; i < (size_t)(dsdt_aml_end - dsdt_aml); i++)
		diff += d[i] != dsdt_aml[i];
	assert_in_range(diff, 1, 1 + 3 * 8);
	release(&t);

	/* A window that ends at the top of the address space. */
	cfg.pci_mem64_base = UINT64_MAX - WIN64_SIZE + 1;
	build_cfg(&t, &cfg, LAYOUT_ACPI_START, ACPI_LEN);
	assert_int_equal(qword_windows(dsdt(&t), cfg.pci_mem64_base, UINT64_MAX, WIN64_SIZE), 1);
	release(&t);

	/* No window: an empty descriptor, which guests skip. */
	cfg.pci_mem64_base = 0;
	cfg.pci_mem64_size = 0;
	build_cfg(&t, &cfg, LAYOUT_ACPI_START, ACPI_LEN);
	assert_int_equal(qword_windows(dsdt(&t), 0, 0, 0), 1);
	release(&t);

	/* Below 4 GiB, or wrapping: refused, buffer untouched. */
	static const uint64_t bad[][2] = {{LAYOUT_4G - 4096, 4096 * 2}, {0, 4096}, {UINT64_MAX - 4095, 8192}};
	static uint8_t b[ACPI_LEN];
	uint64_t rsdp;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct acpi_config c = {.ncpus = 1, .pci_mem64_base = bad[i][0], .pci_mem64_size = bad[i][1]};
		memset(b, 0xa5, sizeof(b));
		assert_int_equal(acpi_build(b, sizeof(b), LAYOUT_ACPI_START, &c, &rsdp), -EINVAL);
		for (size_t j = 0; j < sizeof(b); j++)
			assert_int_equal(b[j], 0xa5);
	}
}

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;
	size_t w;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	w = fwrite(p, 1, n, f);
	return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Reads dir/name into a heap string, runs of blanks squeezed to one space (iasl pads to align). */
static char *read_text(const char *dir, const char *name)
{
	char path[512];
	char *s;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	size_t o = 0;
	for (long i = 0; i < n; i++)
		if (!(s[i] == ' ' || s[i] == '\t') || (o > 0 && s[o - 1] != ' '))
			s[o++] = s[i] == '\t' ? ' ' : s[i];
	s[o] = 0;
	return s;
}

static void expect_in(const char *text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect_in(const char *text, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!strstr(text, what))
		fail_msg("iasl output lacks \"%s\"", what);
}

/* The oracle: iasl's disassembler must parse every table and see the fields we meant. */
static void test_iasl_disassembly(void **state)
{
	static const char *const names[] = {"dsdt", "facp", "apic", "xsdt", "facs"};
	char *dir = *state;
	char cmd[1024], file[64];
	struct tables t;
	char *txt;

	struct acpi_config cfg = {.ncpus = 2, .pci_mem64_base = WIN64_BASE, .pci_mem64_size = WIN64_SIZE};

	if (system("command -v iasl >/dev/null 2>&1") != 0)
		skip();
	build_cfg(&t, &cfg, LAYOUT_ACPI_START, ACPI_LEN);
	const uint8_t *x = table(&t, rd64(rsdp(&t) + 24), "XSDT");
	const uint8_t *f = fadt(&t);
	const uint8_t *tabs[] = {dsdt(&t), f, madt(&t), x, t.buf + (rd32(f + 36) - t.gpa)};

	for (size_t i = 0; i < 5; i++) {
		snprintf(file, sizeof(file), "%s.dat", names[i]);
		assert_int_equal(write_file(dir, file, tabs[i], rd32(tabs[i] + 4)), 0);
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s >%s.log 2>&1", dir, file, names[i]);
		int rc = system(cmd);
		snprintf(file, sizeof(file), "%s.log", names[i]);
		txt = read_text(dir, file);
		if (rc != 0 || strstr(txt, "Warning") || strstr(txt, "Error"))
			fail_msg("iasl -d %s.dat: rc %d\n%s", names[i], rc, txt);
		free(txt);
	}

	txt = read_text(dir, "dsdt.dsl");
	expect_in(txt, "\"PNP0A03\"");
	expect_in(txt, "\"PNP0501\"");
	expect_in(txt, "\"PNP0B00\"");
	expect_in(txt, "\"PNP0303\"");
	expect_in(txt, "\"PNP0C02\"");
	expect_in(txt, "_S5_");
	expect_in(txt, "DWordMemory");
	expect_in(txt, "0x%08llX", LAYOUT_PCI_MMIO32_END);
	expect_in(txt, "QWordMemory");
	expect_in(txt, "0x%016llX, // Range Minimum", WIN64_BASE);
	expect_in(txt, "0x%016llX, // Range Maximum", WIN64_BASE + WIN64_SIZE - 1);
	expect_in(txt, "0x%016llX, // Length", WIN64_SIZE);
	expect_in(txt, "Name (_PRT, Package (0x%02X)", 31 * 4);
	free(txt);

	txt = read_text(dir, "facp.dsl");
	expect_in(txt, "Revision : 06");
	expect_in(txt, "Table Length : 00000114");
	expect_in(txt, "SCI Interrupt : %04X", IRQ_ACPI_SCI);
	expect_in(txt, "PM1A Event Block Address : %08X", PORT_ACPI_PM1A_EVT);
	expect_in(txt, "PM1A Control Block Address : %08X", PORT_ACPI_PM1A_CNT);
	expect_in(txt, "Reset Register Supported (V2) : 1");
	expect_in(txt, "Control Method Power Button (V1) : 0");
	expect_in(txt, "Control Method Sleep Button (V1) : 1");
	expect_in(txt, "Hardware Reduced (V5) : 0");
	expect_in(txt, "Value to cause reset : %02X", ACPI_RESET_VALUE);
	expect_in(txt, "Address : %016X", PORT_ACPI_RESET);
	expect_in(txt, "Bit Width : %02X", PORT_ACPI_PM1A_EVT_LEN * 8);
	expect_in(txt, "Address : %016X", PORT_ACPI_PM1A_EVT);
	expect_in(txt, "Address : %016X", PORT_ACPI_PM1A_CNT);
	free(txt);

	txt = read_text(dir, "apic.dsl");
	expect_in(txt, "Local Apic Address : %08llX", LAYOUT_LAPIC_ADDR);
	expect_in(txt, "Subtable Type : 01 [I/O APIC]");
	expect_in(txt, "Address : %08llX", LAYOUT_IOAPIC_ADDR);
	expect_in(txt, "Subtable Type : 02 [Interrupt Source Override]");
	expect_in(txt, "Source : %02X", IRQ_ACPI_SCI);
	expect_in(txt, "Subtable Type : 04 [Local APIC NMI]");
	free(txt);

	txt = read_text(dir, "xsdt.dsl");
	expect_in(txt, "ACPI Table Address 1");
	free(txt);

	release(&t);
}

/* A scratch directory for iasl (tests/unit/scratch_dir.h). */
static int make_tmpdir(void **state)
{
	return scratch_dir_make(state, "test_acpi");
}

static int remove_tmpdir(void **state)
{
	return scratch_dir_remove(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsdp),
	    cmocka_unit_test(test_xsdt),
	    cmocka_unit_test(test_fadt),
	    cmocka_unit_test(test_madt),
	    cmocka_unit_test(test_other_base),
	    cmocka_unit_test(test_enospc),
	    cmocka_unit_test(test_einval),
	    cmocka_unit_test(test_dsdt_aml),
	    cmocka_unit_test(test_dsdt_prt),
	    cmocka_unit_test(test_dsdt_mem64),
	    cmocka_unit_test_setup_teardown(test_iasl_disassembly, make_tmpdir, remove_tmpdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
