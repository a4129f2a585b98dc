/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking (vmm/migration/dirty.c) on real KVM: a struct vm with
 * RAM on both sides of the MMIO hole (two memslots, registered by
 * vm_set_ram_slot() as vm_create() does) and one vCPU in long mode, whose
 * few bytes of code write one byte into each of a set of pages and leave
 * through an OUT. The page tables are made with their accessed and dirty bits
 * already set, so the vCPU should write nothing but the bytes it is asked to;
 * some page walkers write those bits anyway, so page-table frames may show up
 * too and are only noted. Each fetch must give exactly the pages written
 * since the previous one, with those written by a "device"
 * (guest_mem_mark_dirty()) merged in. Exit 0
 * only when every check held; prints DIRTY-LOG-OK.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/arch/x86/cpuid.h"
#include "vmm/arch/x86/x86_cpu.h"
#include "vmm/kvm.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"
#include "vmm/migration/dirty.h"
#include "vmm/vm.h"

#define CODE_GPA  0x1000ULL
#define PD_HIGH	  0xf000ULL /* page directory for 4 GiB .. 5 GiB */
#define EXIT_PORT 0x10
/* 3 GiB below the hole and 8 MiB above it: two memslots. */
#define RAM_BYTES (LAYOUT_MMIO32_START + (8ULL << 20))
#define HIGH(pfn) ((LAYOUT_4G >> 12) + (pfn))

#define PTE_A  (1ULL << 5)
#define PTE_D  (1ULL << 6)
#define PTE_PS (1ULL << 7)

/* 1: mov [rsi], al; add rsi, rdx; dec rcx; jnz 1b; out 0x10, al */
static const uint8_t code[] = {
    0x88, 0x06,		   /* mov [rsi], al */
    0x48, 0x01,	     0xd6, /* add rsi, rdx */
    0x48, 0xff,	     0xc9, /* dec rcx */
    0x75, 0xf6,		   /* jnz 1b */
    0xe6, EXIT_PORT,	   /* out 0x10, al */
};

static int fails;
static int cpu;
static struct kvm_run *run;
static struct vm *vm;
static uint64_t *bitmap, *want;
static size_t words;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("dirty_log_check: %s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		fails++;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "dirty_log_check: %s: %s\n", what, why);
	exit(1);
}

static void ioc(int fd, unsigned long req, void *arg, const char *name)
{
	int r = kvm_ioctl(fd, req, arg);
	if (r < 0)
		die(name, strerror(-r));
}

/* Writes one byte into each of n pages from gpa on, stride bytes apart; returns when the OUT exits. */
static void guest_write(uint64_t gpa, uint64_t n, uint64_t stride, uint8_t val)
{
	struct kvm_regs regs = {
	    .rip = CODE_GPA, .rflags = 0x2, .rsi = gpa, .rcx = n, .rdx = stride, .rax = val};
	ioc(cpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	for (;;) {
		int r = kvm_ioctl(cpu, KVM_RUN, NULL);
		if (r < 0)
			die("KVM_RUN", strerror(-r));
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == EXIT_PORT)
			break;
		fprintf(stderr, "dirty_log_check: unexpected exit %u\n", run->exit_reason);
		exit(1);
	}
	uint8_t got = 0;
	guest_mem_read(&vm->mem, gpa + (n - 1) * stride, &got, 1);
	if (got != val)
		die("guest write", "the last byte is not in memory");
}

static void want_clear(void)
{
	memset(want, 0, words * sizeof(*want));
}

static void want_pfn(uint64_t pfn)
{
	want[pfn / 64] |= 1ULL << (pfn % 64);
}

/* The guest's page tables: PML4, PDPT, the four PDs below 4 GiB and the one above. */
static int pt_page(uint64_t pfn)
{
	return (pfn >= LAYOUT_PML4_ADDR >> 12 && pfn < (LAYOUT_PD_ADDR >> 12) + 4) || pfn == PD_HIGH >> 12;
}

/* Fetches and compares with want; names the frames that differ. */
static void fetch_expect(const char *what)
{
	struct err e = {{0}};
	uint64_t n = ~0ULL, nwant = 0;
	int r = vm_dirty_log_fetch(vm, bitmap, &n, &e);
	check(r == 0, "%s: fetch returns 0 (%d %s)", what, r, r ? err_msg(&e) : "");
	char diff[512] = "";
	size_t len = 0;
	unsigned ndiff = 0, npt = 0;
	for (size_t w = 0; w < words; w++) {
		nwant += (uint64_t)__builtin_popcountll(want[w]);
		uint64_t d = bitmap[w] ^ want[w];
		while (d) {
			unsigned b = (unsigned)__builtin_ctzll(d);
			d &= d - 1;
			uint64_t pfn = w * 64 + b;
			/*
			 * The page-table pages may be logged whenever the vCPU ran: some
			 * CPUs' page walkers (seen with KVM on nested SVM under QEMU TCG)
			 * write the accessed/dirty bits even when already set. Extra, so
			 * harmless for migration; anything else must match exactly.
			 */
			if (pt_page(pfn) && !((want[w] >> b) & 1)) {
				npt++;
				continue;
			}
			if (ndiff++ < 16 && len < sizeof(diff) - 40)
				len += (size_t)snprintf(diff + len, sizeof(diff) - len, " %s0x%llx",
							(bitmap[w] >> b) & 1 ? "+" : "-",
							(unsigned long long)pfn);
		}
	}
	check(ndiff == 0, "%s: exactly the %llu frames written are dirty (%u differ:%s)", what,
	      (unsigned long long)nwant, ndiff, ndiff ? diff : " none");
	if (npt)
		printf("dirty_log_check: note: %s: %u page-table frames logged too (the page walker's A/D "
		       "writes)\n",
		       what, npt);
	check(n == nwant + npt, "%s: ndirty %llu == %llu + %u", what, (unsigned long long)n,
	      (unsigned long long)nwant, npt);
}

static void setup_tables(void)
{
	if (x86_write_boot_tables(&vm->mem, BOOT_MODE_LINUX64))
		die("page tables", "x86_write_boot_tables failed");
	uint64_t *pml4 = guest_mem_ptr(&vm->mem, LAYOUT_PML4_ADDR, 4096);
	uint64_t *pdpt = guest_mem_ptr(&vm->mem, LAYOUT_PDPT_ADDR, 4096);
	uint64_t *pd = guest_mem_ptr(&vm->mem, LAYOUT_PD_ADDR, 4 * 4096);
	uint64_t *pdh = guest_mem_ptr(&vm->mem, PD_HIGH, 4096);
	/* 4 GiB .. 5 GiB mapped 1:1 too, for the slot above the hole. */
	pdpt[4] = PD_HIGH | 3;
	for (uint64_t i = 0; i < 512; i++)
		pdh[i] = (LAYOUT_4G + (i << 21)) | 3 | PTE_PS;
	/* Accessed and dirty already: the page walker has nothing to write. */
	pml4[0] |= PTE_A;
	for (unsigned i = 0; i < 5; i++)
		pdpt[i] |= PTE_A;
	for (unsigned i = 0; i < 4 * 512; i++)
		pd[i] |= PTE_A | PTE_D;
	for (unsigned i = 0; i < 512; i++)
		pdh[i] |= PTE_A | PTE_D;
	guest_mem_write(&vm->mem, CODE_GPA, code, sizeof(code));
}

int main(void)
{
	struct err e = {{0}};
	alarm(120);
	int kvm = kvm_open("/dev/kvm", &e);
	if (kvm < 0)
		die("kvm_open", err_msg(&e));
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		die("calloc", "out of memory");
	vm->kvm_fd = kvm;
	vm->vm_fd = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vm->vm_fd < 0)
		die("KVM_CREATE_VM", strerror(errno));
	ioc(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)LAYOUT_KVM_TSS, "KVM_SET_TSS_ADDR");
	if (guest_mem_alloc(&vm->mem, RAM_BYTES, &e))
		die("guest memory", err_msg(&e));
	check(vm->mem.nregions == 2, "RAM in %u memslots (below and above the hole)", vm->mem.nregions);
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		if (vm_set_ram_slot(vm, i, 0, &e))
			die("vm_set_ram_slot", err_msg(&e));
	setup_tables();

	cpu = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0UL);
	if (cpu < 0)
		die("KVM_CREATE_VCPU", strerror(errno));
	struct kvm_cpuid2 *cpuid;
	if (kvm_get_supported_cpuid(kvm, &cpuid, &e))
		die("cpuid", err_msg(&e));
	cpuid_setup_vcpu(cpuid->entries, cpuid->nent, 0, 1);
	ioc(cpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
	free(cpuid);
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run", strerror(errno));
	struct kvm_sregs sregs;
	ioc(cpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	x86_boot_sregs(&sregs, BOOT_MODE_LINUX64);
	ioc(cpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");

	words = vm_dirty_bitmap_words(vm);
	check(words == (HIGH(2048) + 63) / 64, "the bitmap has %zu words (frames up to RAM's end)", words);
	bitmap = calloc(words, sizeof(*bitmap));
	want = calloc(words, sizeof(*want));
	if (!bitmap || !want)
		die("calloc", "out of memory");

	/* Before the start: a fetch is refused. */
	uint64_t n;
	check(vm_dirty_log_fetch(vm, bitmap, &n, &e) == -EINVAL, "fetch before the start: -EINVAL");

	/* A run before the start must not count. */
	guest_write(0x400000, 4, 0x1000, 0x11);
	if (vm_dirty_log_start(vm, &e))
		die("vm_dirty_log_start", err_msg(&e));
	printf("dirty_log_check: KVM manual protect (KVM_CLEAR_DIRTY_LOG): %s\n",
	       vm->dirty_manual ? "yes" : "no");
	check(vm_dirty_log_start(vm, &e) == -EBUSY, "a second start: -EBUSY");

	want_clear();
	fetch_expect("right after the start");

	/* Pages 0x100..0x10f. */
	guest_write(0x100000, 16, 0x1000, 0x22);
	want_clear();
	for (uint64_t p = 0x100; p <= 0x10f; p++)
		want_pfn(p);
	fetch_expect("16 pages written by the vCPU");

	want_clear();
	fetch_expect("again without running");

	/* Three others, one above the hole. */
	guest_write(0x180000, 1, 0, 0x33);
	guest_write(0x2345000, 1, 0, 0x33);
	guest_write(LAYOUT_4G + 0x5000, 1, 0, 0x33);
	want_clear();
	want_pfn(0x180);
	want_pfn(0x2345);
	want_pfn(HIGH(5));
	fetch_expect("3 pages, one above the hole");

	/* A page fetched before, written again: dirty again (re-protected by the fetch). */
	guest_write(0x100000, 2, 0x1000, 0x44);
	want_clear();
	want_pfn(0x100);
	want_pfn(0x101);
	fetch_expect("2 pages fetched before, written again");

	/* A device's writes, one range across two frames above the hole, merged with the vCPU's. */
	guest_mem_mark_dirty(&vm->mem, 0x300000, 1);
	guest_mem_mark_dirty(&vm->mem, LAYOUT_4G + 0x7fff, 2);
	guest_write(0x105000, 1, 0, 0x55);
	want_clear();
	want_pfn(0x300);
	want_pfn(HIGH(7));
	want_pfn(HIGH(8));
	want_pfn(0x105);
	fetch_expect("device-marked pages and a vCPU one");

	want_clear();
	fetch_expect("again without running");

	vm_dirty_log_stop(vm);
	check(!vm->dirty_logging && !guest_mem_dirty_logging(&vm->mem), "stopped: KVM and device logs off");
	check(vm_dirty_log_fetch(vm, bitmap, &n, &e) == -EINVAL, "fetch after the stop: -EINVAL");
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = bitmap};
	check(kvm_ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) == -ENOENT, "KVM: slot 0 logs no more (-ENOENT)");
	/* Writes while stopped do not count at the next start. */
	guest_write(0x200000, 3, 0x1000, 0x66);
	guest_mem_mark_dirty(&vm->mem, 0x310000, 1);

	if (vm_dirty_log_start(vm, &e))
		die("vm_dirty_log_start (again)", err_msg(&e));
	want_clear();
	fetch_expect("restarted");
	guest_write(LAYOUT_4G + 0x7ff000, 1, 0, 0x77);
	want_clear();
	want_pfn(HIGH(0x7ff));
	fetch_expect("restarted: the last page of RAM");
	vm_dirty_log_stop(vm);
	vm_dirty_log_stop(vm); /* harmless twice */

	check(fails == 0, "%d failed checks", fails);
	if (fails)
		return 1;
	printf("DIRTY-LOG-OK\n");
	return 0;
}
