/* SPDX-License-Identifier: MIT */
/* Set-up thread. */
#include "x86_cpu.h"

#include <errno.h>
#include <string.h>

#include "vmm/arch/x86/layout.h"

#define CR0_PE	 (1ULL << 0)
#define CR0_ET	 (1ULL << 4)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P  (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define APIC_LVT_LINT0	 0x350
#define APIC_LVT_LINT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

/* A GDT descriptor from flags (G, D/B, L, AVL nibble + access byte), base and limit. */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | (limit & 0x0000ffffu) |
	       ((uint64_t)(flags & 0xf0ffu) << 40);
}

static uint16_t code_flags(enum boot_mode mode)
{
	/* 64-bit: G=1, L=1; 32-bit: G=1, D=1. Access 0x9b: present, code, readable, accessed. */
	return mode == BOOT_MODE_LINUX64 ? 0xa09b : 0xc09b;
}

int x86_write_boot_tables(const struct guest_mem *m, enum boot_mode mode)
{
	uint64_t gdt[4] = {
	    0,
	    0,
	    gdt_entry(code_flags(mode), 0, 0xfffff),
	    gdt_entry(0xc093, 0, 0xfffff),
	};
	if (guest_mem_write(m, LAYOUT_GDT_ADDR, gdt, sizeof(gdt)))
		return -EFAULT;
	if (mode != BOOT_MODE_LINUX64)
		return 0;

	uint64_t *pml4 = guest_mem_ptr(m, LAYOUT_PML4_ADDR, 4096);
	uint64_t *pdpt = guest_mem_ptr(m, LAYOUT_PDPT_ADDR, 4096);
	uint64_t *pd = guest_mem_ptr(m, LAYOUT_PD_ADDR, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT_ADDR | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD_ADDR + i * 4096) | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code,
			 enum boot_mode mode)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = selector;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code && mode == BOOT_MODE_LINUX64;
	s->db = !s->l;
}

void x86_boot_sregs(struct kvm_sregs *s, enum boot_mode mode)
{
	flat_segment(&s->cs, BOOT_CS_SELECTOR, 0xb, true, mode);
	flat_segment(&s->ds, BOOT_DS_SELECTOR, 0x3, false, mode);
	s->es = s->fs = s->gs = s->ss = s->ds;

	s->gdt.base = LAYOUT_GDT_ADDR;
	s->gdt.limit = 4 * 8 - 1;
	s->idt.base = 0;
	s->idt.limit = 0;

	/* A usable TSS descriptor keeps VMX entry checks happy; Linux loads its own later. */
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.limit = 0xfff;
	s->tr.type = 0xb;
	s->tr.present = 1;
	memset(&s->ldt, 0, sizeof(s->ldt));
	s->ldt.type = 0x2;
	s->ldt.present = 1;
	s->ldt.unusable = 1;

	s->cr0 = CR0_PE | CR0_ET;
	s->cr3 = 0;
	s->cr4 = 0;
	s->efer = 0;
	if (mode == BOOT_MODE_LINUX64) {
		s->cr0 |= CR0_PG;
		s->cr3 = LAYOUT_PML4_ADDR;
		s->cr4 = CR4_PAE;
		s->efer = EFER_LME | EFER_LMA;
	}
}

void x86_boot_regs(struct kvm_regs *r, const struct boot_entry *entry)
{
	memset(r, 0, sizeof(*r));
	r->rflags = 0x2; /* bit 1 is reserved and always set; interrupts off */
	r->rip = entry->rip;
	if (entry->mode == BOOT_MODE_LINUX64) {
		r->rsi = entry->info_gpa;
		r->rsp = LAYOUT_BOOT_STACK;
		r->rbp = LAYOUT_BOOT_STACK;
	} else {
		r->rbx = entry->info_gpa;
	}
}

void x86_boot_fpu(struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	f->fcw = 0x37f;	   /* x87 default: all exceptions masked, extended precision */
	f->mxcsr = 0x1f80; /* SSE default: all exceptions masked */
}

unsigned x86_boot_msrs(struct kvm_msr_entry *out, unsigned max)
{
	static const struct kvm_msr_entry msrs[] = {
	    {.index = MSR_IA32_SYSENTER_CS, .data = 0},
	    {.index = MSR_IA32_SYSENTER_ESP, .data = 0},
	    {.index = MSR_IA32_SYSENTER_EIP, .data = 0},
	    {.index = MSR_STAR, .data = 0},
	    {.index = MSR_LSTAR, .data = 0},
	    {.index = MSR_CSTAR, .data = 0},
	    {.index = MSR_SYSCALL_MASK, .data = 0},
	    {.index = MSR_KERNEL_GS_BASE, .data = 0},
	    /* Fast string operations enabled, as firmware leaves them. */
	    {.index = MSR_IA32_MISC_ENABLE, .data = 1},
	    /* MTRRs enabled with write-back as the default memory type. */
	    {.index = MSR_MTRR_DEF_TYPE, .data = (1u << 11) | 6},
	};
	unsigned n = sizeof(msrs) / sizeof(msrs[0]);
	if (n > max)
		return 0;
	memcpy(out, msrs, sizeof(msrs));
	return n;
}

static void lapic_set_lvt_mode(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t v;
	memcpy(&v, &l->regs[reg], sizeof(v));
	v = (v & ~(0x7u << 8)) | (mode << 8);
	memcpy(&l->regs[reg], &v, sizeof(v));
}

void x86_lapic_virtual_wire(struct kvm_lapic_state *lapic)
{
	lapic_set_lvt_mode(lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	lapic_set_lvt_mode(lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
}
