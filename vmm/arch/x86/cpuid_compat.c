/* SPDX-License-Identifier: MIT */
/* Pure: the CPUID compatibility rule of a migration's destination (cpuid_compat.h). */
#include "vmm/arch/x86/cpuid_compat.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { EAX, EBX, ECX, EDX };
static const char *const reg_names[] = {"EAX", "EBX", "ECX", "EDX"};

typedef const char *const bit_names[32];

static bit_names n1_ecx = {
    [0] = "sse3",    [1] = "pclmulqdq",	  [3] = "monitor",  [5] = "vmx",     [9] = "ssse3",
    [12] = "fma",    [13] = "cx16",	  [15] = "pdcm",    [17] = "pcid",   [19] = "sse4_1",
    [20] = "sse4_2", [21] = "x2apic",	  [22] = "movbe",   [23] = "popcnt", [24] = "tsc_deadline",
    [25] = "aes",    [26] = "xsave",	  [27] = "osxsave", [28] = "avx",    [29] = "f16c",
    [30] = "rdrand", [31] = "hypervisor",
};
static bit_names n1_edx = {
    [0] = "fpu",  [1] = "vme",	 [2] = "de",	[3] = "pse",   [4] = "tsc",    [5] = "msr",
    [6] = "pae",  [7] = "mce",	 [8] = "cx8",	[9] = "apic",  [11] = "sep",   [12] = "mtrr",
    [13] = "pge", [14] = "mca",	 [15] = "cmov", [16] = "pat",  [17] = "pse36", [19] = "clflush",
    [23] = "mmx", [24] = "fxsr", [25] = "sse",	[26] = "sse2", [27] = "ss",    [28] = "ht",
};
static bit_names n7_ebx = {
    [0] = "fsgsbase",  [1] = "tsc_adjust",  [3] = "bmi1",	 [4] = "hle",	    [5] = "avx2",
    [7] = "smep",      [8] = "bmi2",	    [9] = "erms",	 [10] = "invpcid",  [11] = "rtm",
    [14] = "mpx",      [16] = "avx512f",    [17] = "avx512dq",	 [18] = "rdseed",   [19] = "adx",
    [20] = "smap",     [21] = "avx512ifma", [23] = "clflushopt", [24] = "clwb",	    [25] = "intel_pt",
    [28] = "avx512cd", [29] = "sha_ni",	    [30] = "avx512bw",	 [31] = "avx512vl",
};
static bit_names n7_ecx = {
    [1] = "avx512vbmi",
    [2] = "umip",
    [3] = "pku",
    [4] = "ospke",
    [5] = "waitpkg",
    [6] = "avx512_vbmi2",
    [7] = "cet_ss",
    [8] = "gfni",
    [9] = "vaes",
    [10] = "vpclmulqdq",
    [11] = "avx512_vnni",
    [12] = "avx512_bitalg",
    [14] = "avx512_vpopcntdq",
    [16] = "la57",
    [22] = "rdpid",
    [25] = "cldemote",
    [27] = "movdiri",
    [28] = "movdir64b",
    [29] = "enqcmd",
    [31] = "pks",
};
static bit_names n7_edx = {
    [2] = "avx512_4vnniw",
    [3] = "avx512_4fmaps",
    [4] = "fsrm",
    [8] = "avx512_vp2intersect",
    [10] = "md_clear",
    [14] = "serialize",
    [16] = "tsxldtrk",
    [19] = "arch_lbr",
    [20] = "ibt",
    [22] = "amx_bf16",
    [23] = "avx512_fp16",
    [24] = "amx_tile",
    [25] = "amx_int8",
    [26] = "spec_ctrl",
    [27] = "stibp",
    [28] = "flush_l1d",
    [29] = "arch_capabilities",
    [30] = "core_capabilities",
    [31] = "ssbd",
};
static bit_names n71_eax = {
    [4] = "avx_vnni", [5] = "avx512_bf16", [10] = "fzrm", [11] = "fsrs", [12] = "fsrc", [26] = "lam",
};
static bit_names nd0_eax = {
    [0] = "x87",       [1] = "sse",	 [2] = "avx",  [3] = "bndregs",	  [4] = "bndcsr",     [5] = "opmask",
    [6] = "zmm_hi256", [7] = "hi16_zmm", [9] = "pkru", [17] = "xtilecfg", [18] = "xtiledata",
};
static bit_names nd1_eax = {
    [0] = "xsaveopt", [1] = "xsavec", [2] = "xgetbv1", [3] = "xsaves", [4] = "xfd",
};
static bit_names n81_ecx = {
    [0] = "lahf_lm", [1] = "cmp_legacy", [2] = "svm",	      [3] = "extapic",	     [4] = "cr8_legacy",
    [5] = "abm",     [6] = "sse4a",	 [7] = "misalignsse", [8] = "3dnowprefetch", [9] = "osvw",
    [11] = "xop",    [16] = "fma4",	 [21] = "tbm",	      [22] = "topoext",	     [23] = "perfctr_core",
};
static bit_names n81_edx = {
    [11] = "syscall", [20] = "nx", [22] = "mmxext",   [26] = "pdpe1gb",
    [27] = "rdtscp",  [29] = "lm", [30] = "3dnowext", [31] = "3dnow",
};
static bit_names n87_edx = {[8] = "invariant_tsc"};
static bit_names n88_ebx = {
    [0] = "clzero",    [1] = "irperf",	   [2] = "xsaveerptr",	[4] = "rdpru",
    [9] = "wbnoinvd",  [12] = "ibpb",	   [14] = "ibrs",	[15] = "stibp",
    [24] = "amd_ssbd", [25] = "virt_ssbd", [26] = "amd_ssb_no",
};

/*
 * The feature-flag words compared, and in each the bits not compared: those
 * KVM or kvmini set on their own whatever KVM_GET_SUPPORTED_CPUID says, or
 * that follow guest state (KVM_GET_CPUID2 on the source reports them as the
 * guest last set them):
 *   1 ECX  x2apic (21) and tsc_deadline (24): emulated by KVM, absent from
 *          the supported table of older kernels; osxsave (27): follows
 *          CR4.OSXSAVE; hypervisor (31): kvmini sets it.
 *   1 EDX  apic (9): follows the APIC base MSR's enable bit; ht (28): kvmini
 *          sets it from the vCPU count (compared in CONFIG already).
 *   7.0 ECX ospke (4): follows CR4.PKE.
 *   0x80000001 ECX cmp_legacy (1): kvmini sets it from the vCPU count;
 *          EDX apic (9): the AMD mirror of 1 EDX's.
 * Everything else in these words is a feature the guest may have probed and
 * used: missing here, the move is refused.
 */
static const struct feature_word {
	uint32_t function, index;
	bool subleaf; /* the message names the index */
	uint8_t reg;
	uint32_t ignore;
	const char *const *names;
} words[] = {
    {0x1, 0, false, ECX, 1u << 21 | 1u << 24 | 1u << 27 | 1u << 31, n1_ecx},
    {0x1, 0, false, EDX, 1u << 9 | 1u << 28, n1_edx},
    {0x7, 0, true, EBX, 0, n7_ebx},
    {0x7, 0, true, ECX, 1u << 4, n7_ecx},
    {0x7, 0, true, EDX, 0, n7_edx},
    {0x7, 1, true, EAX, 0, n71_eax},
    {0xd, 0, true, EAX, 0, nd0_eax}, /* XCR0 components, low half */
    {0xd, 0, true, EDX, 0, NULL},    /* XCR0 components, high half */
    {0xd, 1, true, EAX, 0, nd1_eax},
    {0xd, 1, true, ECX, 0, NULL}, /* IA32_XSS components */
    {0xd, 1, true, EDX, 0, NULL},
    {0x80000001, 0, false, ECX, 1u << 1, n81_ecx},
    {0x80000001, 0, false, EDX, 1u << 9, n81_edx},
    {0x80000007, 0, false, EDX, 0, n87_edx},
    {0x80000008, 0, false, EBX, 0, n88_ebx},
};

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *t, unsigned n, uint32_t function,
					   uint32_t index)
{
	for (unsigned i = 0; i < n; i++)
		if (t[i].function == function &&
		    (t[i].index == index || !(t[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)))
			return &t[i];
	return NULL;
}

static uint32_t reg(const struct kvm_cpuid_entry2 *x, uint8_t r)
{
	if (!x)
		return 0;
	return r == EAX ? x->eax : r == EBX ? x->ebx : r == ECX ? x->ecx : x->edx;
}

/* Leaf 0's vendor string: EBX, EDX, ECX; "" when the table has no leaf 0. */
static void vendor(const struct kvm_cpuid_entry2 *x, char out[13])
{
	memset(out, 0, 13);
	if (!x)
		return;
	memcpy(out, &x->ebx, 4);
	memcpy(out + 4, &x->edx, 4);
	memcpy(out + 8, &x->ecx, 4);
	for (unsigned i = 0; i < 12; i++)
		if (out[i] && (out[i] < 0x20 || out[i] > 0x7e))
			out[i] = '?';
}

int cpuid_compat_check(const struct kvm_cpuid_entry2 *guest, unsigned nguest,
		       const struct kvm_cpuid_entry2 *host, unsigned nhost, struct err *e)
{
	char gv[13], hv[13];
	vendor(find(guest, nguest, 0, 0), gv);
	vendor(find(host, nhost, 0, 0), hv);
	if (strcmp(gv, hv))
		return err_set(e, -EINVAL,
			       "CPU vendor: the source's guest sees \"%s\", this host's is \"%s\"; a guest "
			       "cannot move between them",
			       gv, hv);
	for (unsigned w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		const struct feature_word *fw = &words[w];
		uint32_t g = reg(find(guest, nguest, fw->function, fw->index), fw->reg);
		uint32_t h = reg(find(host, nhost, fw->function, fw->index), fw->reg);
		uint32_t missing = g & ~h & ~fw->ignore;
		if (!missing)
			continue;
		unsigned bit = (unsigned)__builtin_ctz(missing);
		const char *name = fw->names ? fw->names[bit] : NULL;
		char leaf[32];
		if (fw->subleaf)
			snprintf(leaf, sizeof(leaf), "0x%x.%u", fw->function, fw->index);
		else
			snprintf(leaf, sizeof(leaf), "0x%x", fw->function);
		return err_set(e, -EINVAL,
			       "CPUID %s %s bit %u%s%s%s: the source's guest uses it, this host's KVM does "
			       "not offer it",
			       leaf, reg_names[fw->reg], bit, name ? " (" : "", name ? name : "",
			       name ? ")" : "");
	}
	return 0;
}
