/* SPDX-License-Identifier: MIT */
/* Set-up thread; pure function over a CPUID table. */
#include "cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm.h"

#define CPUID_1_ECX_HYPERVISOR	      (1u << 31)
#define CPUID_1_EDX_HTT		      (1u << 28)
#define CPUID_80000001_ECX_CMP_LEGACY (1u << 1)

/* Number of bits needed to hold ids 0..n-1 (the x2APIC shift for n logical CPUs). */
static unsigned id_bits(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
	/* Level 0: one thread per core (SMT). Level 1: ncpus cores per package. Then invalid. */
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | e->index;
		break;
	case 1:
		e->eax = id_bits(ncpus);
		e->ebx = ncpus;
		e->ecx = (2u << 8) | e->index;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index;
		break;
	}
	e->edx = index;
}

void cpuid_setup_vcpu(struct kvm_cpuid_entry2 *ents, unsigned nent, unsigned index, unsigned ncpus)
{
	for (unsigned i = 0; i < nent; i++) {
		struct kvm_cpuid_entry2 *e = &ents[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id, logical processors per package, CLFLUSH size kept. */
			e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xffu) << 16);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			if (ncpus > 1)
				e->edx |= CPUID_1_EDX_HTT;
			else
				e->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 4:
			/* Deterministic cache parameters (Intel): cores per package - 1 in EAX[31:26]. */
			if (e->eax & 0x1f) {
				e->eax &= 0x03ffffffu;
				e->eax |= ((ncpus - 1) & 0x3fu) << 26;
				/* Threads sharing the cache: L1/L2 per core, L3 and beyond per package. */
				unsigned level = (e->eax >> 5) & 7;
				e->eax &= ~(0xfffu << 14);
				if (level >= 3)
					e->eax |= ((ncpus - 1) & 0xfffu) << 14;
			}
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(e, index, ncpus);
			break;
		case 0x80000001:
			if (ncpus > 1)
				e->ecx |= CPUID_80000001_ECX_CMP_LEGACY;
			else
				e->ecx &= ~CPUID_80000001_ECX_CMP_LEGACY;
			break;
		case 0x80000008:
			/* AMD: NC (cores - 1) and the APIC id bits used for the core id. */
			e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xffu) | (id_bits(ncpus) << 12);
			break;
		case 0x8000001e:
			/* AMD extended APIC id, one thread per compute unit, node 0. */
			e->eax = index;
			e->ebx = index & 0xffu;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
}

int kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct err *e)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return err_set(e, -ENOMEM, "out of memory");
		c->nent = n;
		int r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (r == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (r != -E2BIG)
			return err_set(e, r, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
	}
	return err_set(e, -E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
}
