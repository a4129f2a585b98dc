/* SPDX-License-Identifier: MIT */
/*
 * ACPI table builder (pure: no KVM, no I/O; runs on whichever thread builds
 * the VM). Tables follow ACPI 6.0: the guest is a full (not hardware-reduced)
 * ACPI PC, so the PM1 blocks give it poweroff (S5) and the fixed power button.
 *
 * Buffer layout (offsets from the RSDP, each table aligned):
 *   RSDP | XSDT -> {FADT, MADT} | FADT -> {FACS, DSDT} | MADT | FACS | DSDT
 */
#include "acpi.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/arch/x86/layout.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ACPI tables are little-endian; the packed structs below assume a little-endian host"
#endif

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header hdr;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header hdr;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length;
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length;
	uint8_t processor_uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_header) == 36, "header");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT rev 6");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT");
_Static_assert(sizeof(struct madt_lapic) == 8 && sizeof(struct madt_ioapic) == 12, "MADT entries");
_Static_assert(sizeof(struct madt_iso) == 10 && sizeof(struct madt_lapic_nmi) == 6, "MADT entries");
_Static_assert(sizeof(ACPI_OEM_ID) - 1 == 6 && sizeof(ACPI_OEM_TABLE_ID) - 1 == 8, "OEM ids");
_Static_assert(sizeof(ACPI_CREATOR_ID) - 1 == 4, "creator id");
_Static_assert(ACPI_MAX_CPUS < 0xff, "APIC IDs must stay below the broadcast ID");

#define ACPI_AS_SYSTEM_IO  1
#define ACPI_ACCESS_BYTE   1
#define ACPI_ACCESS_WORD   2
#define ACPI_NO_PM_PROFILE 0 /* Preferred_PM_Profile: unspecified */

#define FADT_REVISION	   6
#define FADT_MINOR_VERSION 0
#define FADT_F_WBINVD	   (1u << 0)
#define FADT_F_PROC_C1	   (1u << 2)
#define FADT_F_PWR_BUTTON  (1u << 4) /* set: control method; clear: fixed-feature button */
#define FADT_F_SLP_BUTTON  (1u << 5) /* set: control method or absent */
#define FADT_F_RESET_REG   (1u << 10)
#define FADT_F_HW_REDUCED  (1u << 20)
#define BOOT_ARCH_LEGACY   (1u << 0)
#define BOOT_ARCH_8042	   (1u << 1)
#define BOOT_ARCH_NO_VGA   (1u << 2)
#define BOOT_ARCH_NO_MSI   (1u << 3)
#define BOOT_ARCH_NO_RTC   (1u << 5)
#define FADT_LAT_NO_C2	   0x0fff /* > 100 us: C2 unsupported */
#define FADT_LAT_NO_C3	   0x0fff /* > 1000 us: C3 unsupported */
/* CMOS index of the century byte, as devices/rtc.c serves it (REG_CENTURY). */
#define CMOS_CENTURY_INDEX  0x32
#define FACS_VERSION	    2
#define MADT_REVISION	    4
#define MADT_PCAT_COMPAT    (1u << 0)
#define MADT_LAPIC_ENABLED  (1u << 0)
#define MADT_TYPE_LAPIC	    0
#define MADT_TYPE_IOAPIC    1
#define MADT_TYPE_ISO	    2
#define MADT_TYPE_LAPIC_NMI 4
#define MADT_ALL_CPUS	    0xff
#define MPS_ACTIVE_HIGH	    0x1
#define MPS_LEVEL	    (0x3 << 2)
#define XSDT_REVISION	    1
#define XSDT_NR_ENTRIES	    2 /* FADT, MADT */
#define RSDP_REVISION	    2

/*
 * PCI0's QWordMemory descriptor in dsdt.asl holds these placeholders until
 * acpi_build() patches in the machine's 64-bit window (iasl cannot take
 * run-time values). Offsets are those of an ACPI 6.0 QWord Address Space
 * Descriptor (6.4.3.5.1).
 */
#define ACPI_MEM64_PLACEHOLDER_MIN 0x0000dead00000000ULL
#define ACPI_MEM64_PLACEHOLDER_MAX 0x0000deadffffffffULL
#define ACPI_MEM64_PLACEHOLDER_LEN 0x0000000100000000ULL
#define QWORD_DESC_TAG		   0x8a
#define QWORD_DESC_LEN		   46 /* the 3-byte header + the 43 the length field counts */
#define QWORD_DESC_MEMORY	   0
#define QWORD_DESC_MIN		   14
#define QWORD_DESC_MAX		   22
#define QWORD_DESC_LENGTH	   38

static uint8_t acpi_checksum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += b[i];
	return (uint8_t)-sum;
}

static void header_init(struct acpi_header *h, const char sig[4], uint32_t length, uint8_t revision)
{
	memcpy(h->signature, sig, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, sizeof(h->oem_id));
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, sizeof(h->oem_table_id));
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, sizeof(h->creator_id));
	h->creator_revision = 1;
}

/* Checksum last, once every other byte of the table is final. */
static void header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum(h, h->length);
}

static struct acpi_gas gas_io(uint16_t port, uint8_t bit_width, uint8_t access_size)
{
	return (struct acpi_gas){.space_id = ACPI_AS_SYSTEM_IO,
				 .bit_width = bit_width,
				 .access_size = access_size,
				 .address = port};
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/*
 * Offset in the DSDT of the placeholder 64-bit window descriptor; -1 unless
 * there is exactly one (anything else means the build and this file disagree).
 */
static long find_mem64(const uint8_t *aml, size_t len)
{
	long found = -1;

	for (size_t i = sizeof(struct acpi_header); i + QWORD_DESC_LEN <= len; i++) {
		const uint8_t *p = aml + i;

		if (p[0] != QWORD_DESC_TAG || p[1] != QWORD_DESC_LEN - 3 || p[2] != 0 ||
		    p[3] != QWORD_DESC_MEMORY || get64(p + QWORD_DESC_MIN) != ACPI_MEM64_PLACEHOLDER_MIN ||
		    get64(p + QWORD_DESC_MAX) != ACPI_MEM64_PLACEHOLDER_MAX ||
		    get64(p + QWORD_DESC_LENGTH) != ACPI_MEM64_PLACEHOLDER_LEN)
			continue;
		if (found >= 0)
			return -1;
		found = (long)i;
	}
	return found;
}

/* A window the guest can use: above 4 GiB, not wrapping. Size 0 stands for none. */
static bool mem64_valid(uint64_t base, uint64_t size)
{
	return size == 0 || (base >= LAYOUT_4G && size - 1 <= UINT64_MAX - base);
}

/* Rewrites the placeholder descriptor at desc in the guest's copy of the DSDT, then reseals it. */
static void patch_mem64(struct acpi_header *dsdt, uint8_t *desc, uint64_t base, uint64_t size)
{
	put64(desc + QWORD_DESC_MIN, size ? base : 0);
	put64(desc + QWORD_DESC_MAX, size ? base + (size - 1) : 0);
	put64(desc + QWORD_DESC_LENGTH, size);
	/* The template's End Tag checksum is 0 ("treat as valid"), so only the table's checksum changes. */
	header_seal(dsdt);
}

/* Next offset at or after off whose guest address is a multiple of align (a power of two). */
static size_t place(uint64_t gpa, size_t off, size_t align)
{
	return (size_t)(((gpa + off + align - 1) & ~(uint64_t)(align - 1)) - gpa);
}

static void build_fadt(struct acpi_fadt *f, uint64_t facs_gpa, uint64_t dsdt_gpa)
{
	header_init(&f->hdr, "FACP", sizeof(*f), FADT_REVISION);
	/* FACS below 4 GiB: the spec wants X_FIRMWARE_CTRL zero then. */
	f->firmware_ctrl = (uint32_t)facs_gpa;
	f->dsdt = (uint32_t)dsdt_gpa;
	f->x_dsdt = dsdt_gpa;
	f->preferred_pm_profile = ACPI_NO_PM_PROFILE;
	f->sci_int = IRQ_ACPI_SCI;
	/* No SMI_CMD: the guest finds SCI_EN already set and never switches modes. */
	f->smi_cmd = 0;
	f->pm1a_evt_blk = PORT_ACPI_PM1A_EVT;
	f->pm1_evt_len = PORT_ACPI_PM1A_EVT_LEN;
	f->x_pm1a_evt_blk = gas_io(PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN * 8, ACPI_ACCESS_WORD);
	f->pm1a_cnt_blk = PORT_ACPI_PM1A_CNT;
	f->pm1_cnt_len = PORT_ACPI_PM1A_CNT_LEN;
	f->x_pm1a_cnt_blk = gas_io(PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN * 8, ACPI_ACCESS_WORD);
	f->p_lvl2_lat = FADT_LAT_NO_C2;
	f->p_lvl3_lat = FADT_LAT_NO_C3;
	f->century = CMOS_CENTURY_INDEX;
	/* i8042 and CMOS RTC exist; no VGA; MSI works (the NO_MSI bit stays clear). */
	f->iapc_boot_arch = BOOT_ARCH_LEGACY | BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA;
	/* PWR_BUTTON clear: the power button is PM1's fixed feature, pressed by the API. */
	f->flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG;
	f->reset_reg = gas_io(PORT_ACPI_RESET, 8, ACPI_ACCESS_BYTE);
	f->reset_value = ACPI_RESET_VALUE;
	f->minor_version = FADT_MINOR_VERSION;
	header_seal(&f->hdr);
}

static void build_facs(struct acpi_facs *f)
{
	/* Needed by a full (not hardware-reduced) ACPI machine: it holds the global lock. */
	memcpy(f->signature, "FACS", 4);
	f->length = sizeof(*f);
	f->version = FACS_VERSION;
}

static size_t madt_size(unsigned ncpus)
{
	return sizeof(struct acpi_madt) + ncpus * sizeof(struct madt_lapic) + sizeof(struct madt_ioapic) +
	       sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi);
}

static void build_madt(uint8_t *p, unsigned ncpus)
{
	struct acpi_madt *m = (struct acpi_madt *)p;
	size_t off = sizeof(*m);

	header_init(&m->hdr, "APIC", madt_size(ncpus), MADT_REVISION);
	m->lapic_addr = LAYOUT_LAPIC_ADDR;
	m->flags = MADT_PCAT_COMPAT;
	for (unsigned i = 0; i < ncpus; i++) {
		struct madt_lapic *l = (struct madt_lapic *)(p + off);

		*l = (struct madt_lapic){.type = MADT_TYPE_LAPIC,
					 .length = sizeof(*l),
					 .processor_uid = (uint8_t)i,
					 .apic_id = (uint8_t)i,
					 .flags = MADT_LAPIC_ENABLED};
		off += sizeof(*l);
	}
	/* The IOAPIC takes the first ID after the LAPICs so that no ID is shared. */
	*(struct madt_ioapic *)(p + off) = (struct madt_ioapic){.type = MADT_TYPE_IOAPIC,
								.length = sizeof(struct madt_ioapic),
								.ioapic_id = (uint8_t)ncpus,
								.address = LAYOUT_IOAPIC_ADDR,
								.gsi_base = 0};
	off += sizeof(struct madt_ioapic);
	/*
	 * The SCI is level-triggered, active high (the ISA default is edge).
	 * No override for IRQ 0: KVM routes GSI n to IOAPIC pin n.
	 */
	*(struct madt_iso *)(p + off) = (struct madt_iso){.type = MADT_TYPE_ISO,
							  .length = sizeof(struct madt_iso),
							  .bus = 0,
							  .source = IRQ_ACPI_SCI,
							  .gsi = IRQ_ACPI_SCI,
							  .flags = MPS_ACTIVE_HIGH | MPS_LEVEL};
	off += sizeof(struct madt_iso);
	*(struct madt_lapic_nmi *)(p + off) = (struct madt_lapic_nmi){.type = MADT_TYPE_LAPIC_NMI,
								      .length = sizeof(struct madt_lapic_nmi),
								      .processor_uid = MADT_ALL_CPUS,
								      .flags = 0,
								      .lint = 1};
	header_seal(&m->hdr);
}

int acpi_build(uint8_t *buf, size_t len, uint64_t buf_gpa, const struct acpi_config *cfg, uint64_t *rsdp_gpa)
{
	size_t dsdt_len = (size_t)(dsdt_aml_end - dsdt_aml);
	const struct acpi_header *dsdt_hdr = (const struct acpi_header *)dsdt_aml;
	size_t xsdt_len = sizeof(struct acpi_header) + XSDT_NR_ENTRIES * sizeof(uint64_t);
	size_t off_xsdt, off_fadt, off_madt, off_facs, off_dsdt, end;

	if (!buf || !cfg || !rsdp_gpa || cfg->ncpus < 1 || cfg->ncpus > ACPI_MAX_CPUS)
		return -EINVAL;
	/* Linux scans for the RSDP on 16-byte boundaries; table pointers are 32-bit. */
	if ((buf_gpa & 15) || buf_gpa >= LAYOUT_4G)
		return -EINVAL;
	/* A DSDT whose header disagrees with the blob means a broken build. */
	if (dsdt_len < sizeof(*dsdt_hdr) || dsdt_hdr->length != dsdt_len)
		return -EINVAL;
	long mem64_off = find_mem64(dsdt_aml, dsdt_len);
	if (mem64_off < 0 || !mem64_valid(cfg->pci_mem64_base, cfg->pci_mem64_size))
		return -EINVAL;

	off_xsdt = place(buf_gpa, sizeof(struct acpi_rsdp), 16);
	off_fadt = place(buf_gpa, off_xsdt + xsdt_len, 16);
	off_madt = place(buf_gpa, off_fadt + sizeof(struct acpi_fadt), 16);
	off_facs = place(buf_gpa, off_madt + madt_size(cfg->ncpus), 64); /* FACS must be 64-byte aligned */
	off_dsdt = place(buf_gpa, off_facs + sizeof(struct acpi_facs), 16);
	end = off_dsdt + dsdt_len;
	if (end > len)
		return -ENOSPC;
	/* FIRMWARE_CTRL and DSDT hold 32-bit guest addresses. */
	if (end > LAYOUT_4G - buf_gpa)
		return -EINVAL;

	/* Zero all of it: stale bytes in the scanned area could pass for a second RSDP. */
	memset(buf, 0, len);

	build_fadt((struct acpi_fadt *)(buf + off_fadt), buf_gpa + off_facs, buf_gpa + off_dsdt);
	build_madt(buf + off_madt, cfg->ncpus);
	build_facs((struct acpi_facs *)(buf + off_facs));
	memcpy(buf + off_dsdt, dsdt_aml, dsdt_len);
	patch_mem64((struct acpi_header *)(buf + off_dsdt), buf + off_dsdt + mem64_off, cfg->pci_mem64_base,
		    cfg->pci_mem64_size);

	struct acpi_header *xsdt = (struct acpi_header *)(buf + off_xsdt);
	uint64_t entries[XSDT_NR_ENTRIES] = {buf_gpa + off_fadt, buf_gpa + off_madt};

	header_init(xsdt, "XSDT", xsdt_len, XSDT_REVISION);
	memcpy(xsdt + 1, entries, sizeof(entries));
	header_seal(xsdt);

	struct acpi_rsdp *rsdp = (struct acpi_rsdp *)buf;

	memcpy(rsdp->signature, "RSD PTR ", sizeof(rsdp->signature));
	memcpy(rsdp->oem_id, ACPI_OEM_ID, sizeof(rsdp->oem_id));
	rsdp->revision = RSDP_REVISION;
	rsdp->rsdt_address = 0; /* XSDT only */
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = buf_gpa + off_xsdt;
	rsdp->checksum = acpi_checksum(rsdp, offsetof(struct acpi_rsdp, length));
	rsdp->extended_checksum = acpi_checksum(rsdp, sizeof(*rsdp));

	*rsdp_gpa = buf_gpa;
	return 0;
}
