/* SPDX-License-Identifier: MIT */
/*
 * A round trip of KVM's state (vmm/migration/kvm_state.c) between two VMs:
 * VM A runs a few bytes of real-mode code that count forever (a dword in
 * memory and EBX, in step), is stopped, and its VM and vCPU state saved;
 * VM B, fresh, gets A's memory and the state, and must go on counting from
 * where A stopped. Then corrupted or truncated state must be refused with a
 * message. Exit 0 only when every check held; prints KVM-STATE-ROUNDTRIP-OK.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "vmm/arch/x86/cpuid.h"
#include "vmm/kvm.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"
#include "vmm/arch/x86/kvm_state.h"

#define CODE_GPA    0x1000
#define COUNTER_GPA 0x2000
#define RUN_MS	    300
/*
 * A runs longer than a second of TSC: KVM before 6.7 takes a TSC write within
 * a second of the vCPU's creation value for an attempt to synchronise vCPUs
 * and keeps its own value, which would hide whether the TSC was carried over.
 */
#define RUN_A_MS 1500

/*
 * 1: inc dword [0x2000]; inc ebx; jmp 1b. The dword is one ahead of EBX at
 * most (when stopped between the two increments).
 */
static const uint8_t code[] = {
    0x66, 0xff, 0x06, 0x00, 0x20, /* inc dword [0x2000] */
    0x66, 0x43,			  /* inc ebx */
    0xeb, 0xf7,			  /* jmp 1b */
};

struct vm {
	int fd, cpu;
	struct kvm_run *run;
	struct guest_mem mem;
	pthread_t thread;
	int run_errno;	   /* KVM_RUN failed with this (not EINTR) */
	unsigned bad_exit; /* an exit other than the stop: its reason + 1 */
};

static int fails;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("kvm_state_roundtrip: %s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		fails++;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "kvm_state_roundtrip: %s: %s\n", what, why);
	exit(1);
}

static void ioc(int fd, unsigned long req, void *arg, const char *name)
{
	if (kvm_ioctl(fd, req, arg) < 0)
		die(name, strerror(errno));
}

/* A VM like kvmini's (in-kernel irqchip and PIT), 1 MiB of RAM, one vCPU. */
static void vm_create(int kvm, struct vm *v)
{
	struct err e = {{0}};
	memset(v, 0, sizeof(*v));
	v->fd = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (v->fd < 0)
		die("KVM_CREATE_VM", strerror(errno));
	ioc(v->fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)LAYOUT_KVM_TSS, "KVM_SET_TSS_ADDR");
	ioc(v->fd, KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	ioc(v->fd, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
	if (guest_mem_alloc(&v->mem, 1 << 20, &e))
		die("guest memory", err_msg(&e));
	struct kvm_userspace_memory_region reg = {
	    .slot = 0,
	    .memory_size = v->mem.regions[0].size,
	    .userspace_addr = (uintptr_t)v->mem.regions[0].hva,
	};
	ioc(v->fd, KVM_SET_USER_MEMORY_REGION, &reg, "KVM_SET_USER_MEMORY_REGION");
	v->cpu = ioctl(v->fd, KVM_CREATE_VCPU, 0UL);
	if (v->cpu < 0)
		die("KVM_CREATE_VCPU", strerror(errno));
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->cpu, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run", strerror(errno));
}

static volatile uint32_t *counter(struct vm *v)
{
	return (volatile uint32_t *)((uint8_t *)v->mem.regions[0].hva + COUNTER_GPA);
}

static void kick_handler(int sig)
{
	(void)sig;
}

static void *runner(void *arg)
{
	struct vm *v = arg;
	while (!__atomic_load_n(&v->run->immediate_exit, __ATOMIC_ACQUIRE)) {
		if (ioctl(v->cpu, KVM_RUN, 0) < 0) {
			if (errno != EINTR)
				v->run_errno = errno;
			break;
		}
		v->bad_exit = v->run->exit_reason + 1;
		break;
	}
	return NULL;
}

/* Runs the vCPU for ms milliseconds, then stops it as vmm/vcpu.c does: immediate_exit and a signal. */
static void run_for(struct vm *v, unsigned ms)
{
	v->run->immediate_exit = 0;
	if (pthread_create(&v->thread, NULL, runner, v))
		die("pthread_create", "failed");
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, SIGUSR1);
	pthread_join(v->thread, NULL);
	if (v->run_errno)
		die("KVM_RUN", strerror(v->run_errno));
	if (v->bad_exit)
		fprintf(stderr, "kvm_state_roundtrip: unexpected exit reason %u\n", v->bad_exit - 1);
}

static uint64_t get_clock(struct vm *v)
{
	struct kvm_clock_data c = {0};
	ioc(v->fd, KVM_GET_CLOCK, &c, "KVM_GET_CLOCK");
	return c.clock;
}

static uint64_t get_tsc(struct vm *v)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry ent;
	} m = {.h.nmsrs = 1, .ent.index = 0x10 /* IA32_TSC */};
	if (kvm_ioctl(v->cpu, KVM_GET_MSRS, &m) != 1)
		die("KVM_GET_MSRS", "IA32_TSC");
	return m.ent.data;
}

/* Loads len bytes of vCPU state into a fresh VM's vCPU: must fail, with a message. */
static void expect_vcpu_refused(int kvm, const uint8_t *p, size_t len, const char *what)
{
	struct vm c;
	vm_create(kvm, &c);
	struct err e = {{0}};
	struct sreader in;
	sreader_init(&in, p, len);
	int r = vcpu_state_load(kvm, c.cpu, &in, &e);
	check(r < 0 && err_msg(&e)[0], "%s refused: %s", what, err_msg(&e));
	/* The refused load changed nothing: the vCPU is still at reset (RIP 0xfff0). */
	struct kvm_regs regs;
	ioc(c.cpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	check(regs.rip == 0xfff0, "%s: the vCPU was left at reset (RIP 0x%llx)", what,
	      (unsigned long long)regs.rip);
	close(c.cpu);
	close(c.fd);
	guest_mem_free(&c.mem);
}

int main(int argc, char **argv)
{
	struct err e = {{0}};
	int kvm = kvm_open(argc > 1 ? argv[1] : "/dev/kvm", &e);
	if (kvm < 0)
		die("open", err_msg(&e));
	struct sigaction sa = {.sa_handler = kick_handler}; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/* VM A: CPUID as kvmini sets it, real mode at CODE_GPA. */
	struct vm a;
	vm_create(kvm, &a);
	struct kvm_cpuid2 *cpuid;
	if (kvm_get_supported_cpuid(kvm, &cpuid, &e))
		die("cpuid", err_msg(&e));
	cpuid_setup_vcpu(cpuid->entries, cpuid->nent, 0, 1);
	ioc(a.cpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
	free(cpuid);
	guest_mem_write(&a.mem, CODE_GPA, code, sizeof(code));
	struct kvm_sregs s;
	ioc(a.cpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
	s.cs.base = s.cs.selector = 0;
	s.ds.base = s.ds.selector = 0;
	ioc(a.cpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = CODE_GPA, .rflags = 0x2};
	ioc(a.cpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

	run_for(&a, RUN_A_MS);
	uint32_t count_a = *counter(&a);
	struct kvm_regs regs_a;
	ioc(a.cpu, KVM_GET_REGS, &regs_a, "KVM_GET_REGS");
	uint64_t clock_a = get_clock(&a), tsc_a = get_tsc(&a);
	check(count_a > 0 && !a.bad_exit, "VM A counted to %u in %d ms (EBX %u, RIP 0x%llx)", count_a,
	      RUN_A_MS, (uint32_t)regs_a.rbx, (unsigned long long)regs_a.rip);

	/* Save: VM-wide first, then the vCPU (the order of a stream). */
	struct sbuf vm_st, cpu_st;
	sbuf_init(&vm_st);
	sbuf_init(&cpu_st);
	if (vm_kvm_state_save(a.fd, &vm_st, &e) || vcpu_state_save(kvm, a.cpu, &cpu_st, &e))
		die("save", err_msg(&e));
	check(1, "saved %zu bytes of VM state, %zu of vCPU state", vm_st.len, cpu_st.len);
	/* How many MSRs came along (their count follows the CPUID table). */
	{
		uint32_t nent, nmsrs;
		memcpy(&nent, cpu_st.data + 4, 4);
		memcpy(&nmsrs, cpu_st.data + 8 + (size_t)nent * sizeof(struct kvm_cpuid_entry2), 4);
		check(nent > 0 && nmsrs > 0, "the state holds %u CPUID entries and %u MSRs", nent, nmsrs);
	}

	/* VM B: fresh, A's memory, A's state. */
	struct vm b;
	vm_create(kvm, &b);
	memcpy(b.mem.regions[0].hva, a.mem.regions[0].hva, a.mem.regions[0].size);
	struct sreader in;
	sreader_init(&in, vm_st.data, vm_st.len);
	int r = vm_kvm_state_load(b.fd, &in, &e);
	check(!r && sreader_done(&in), "VM state loaded into VM B%s%s", r ? ": " : "", err_msg(&e));
	sreader_init(&in, cpu_st.data, cpu_st.len);
	r = vcpu_state_load(kvm, b.cpu, &in, &e);
	check(!r && sreader_done(&in), "vCPU state loaded into VM B%s%s", r ? ": " : "", err_msg(&e));
	if (fails)
		return 1;
	struct kvm_regs regs_b;
	ioc(b.cpu, KVM_GET_REGS, &regs_b, "KVM_GET_REGS");
	check(regs_b.rip == regs_a.rip && regs_b.rbx == regs_a.rbx, "VM B starts at A's RIP 0x%llx, EBX %u",
	      (unsigned long long)regs_b.rip, (uint32_t)regs_b.rbx);
	uint64_t clock_b = get_clock(&b), tsc_b = get_tsc(&b);
	check(clock_b >= clock_a && clock_b - clock_a < 5000000000ULL,
	      "kvmclock goes on: A stopped at %llu ns, B reads %llu ns", (unsigned long long)clock_a,
	      (unsigned long long)clock_b);
	int tsc_khz = ioctl(a.cpu, KVM_GET_TSC_KHZ, 0);
	uint64_t tsc_hz = tsc_khz > 0 ? (uint64_t)tsc_khz * 1000 : 0;
	if (tsc_hz && tsc_a > tsc_hz + tsc_hz / 4)
		check(tsc_b >= tsc_a && tsc_b - tsc_a < 5 * tsc_hz,
		      "the TSC goes on: %llu on A, %llu on B after the load (%d kHz)",
		      (unsigned long long)tsc_a, (unsigned long long)tsc_b, tsc_khz);
	else
		printf("kvm_state_roundtrip: note: IA32_TSC %llu on A, %llu on B (%d kHz): too close to "
		       "A's start to tell\n",
		       (unsigned long long)tsc_a, (unsigned long long)tsc_b, tsc_khz);

	run_for(&b, RUN_MS);
	uint32_t count_b = *counter(&b);
	ioc(b.cpu, KVM_GET_REGS, &regs_b, "KVM_GET_REGS");
	check(!b.bad_exit && count_b > count_a, "VM B went on counting for %d ms: %u -> %u", RUN_MS, count_a,
	      count_b);
	check((uint32_t)regs_b.rbx > (uint32_t)regs_a.rbx && count_b - (uint32_t)regs_b.rbx <= 1,
	      "EBX went on in step with the counter: %u -> %u (counter %u)", (uint32_t)regs_a.rbx,
	      (uint32_t)regs_b.rbx, count_b);
	check(regs_b.rip >= CODE_GPA && regs_b.rip < CODE_GPA + sizeof(code),
	      "VM B's RIP 0x%llx is in the loop", (unsigned long long)regs_b.rip);
	check(*counter(&a) == count_a, "VM A stayed stopped (counter %u)", *counter(&a));

	/* Bad input: refused before any ioctl, the vCPU untouched. */
	expect_vcpu_refused(kvm, cpu_st.data, cpu_st.len - 1, "vCPU state short by 1 byte");
	expect_vcpu_refused(kvm, cpu_st.data, cpu_st.len / 2, "vCPU state cut in half");
	expect_vcpu_refused(kvm, cpu_st.data, 0, "empty vCPU state");
	uint8_t *bad = malloc(cpu_st.len);
	memcpy(bad, cpu_st.data, cpu_st.len);
	bad[0] ^= 0x7f;
	expect_vcpu_refused(kvm, bad, cpu_st.len, "vCPU state with a bad version");
	memcpy(bad, cpu_st.data, cpu_st.len);
	bad[4] = 0xff, bad[5] = 0xff; /* CPUID entries: 65535+ */
	expect_vcpu_refused(kvm, bad, cpu_st.len, "vCPU state with a huge CPUID count");
	{
		/* The XSAVE area's length: after version, CPUID, MSRs, sregs and regs. */
		uint32_t nent, nmsrs, xlen;
		memcpy(&nent, cpu_st.data + 4, 4);
		size_t off = 8 + (size_t)nent * sizeof(struct kvm_cpuid_entry2);
		memcpy(&nmsrs, cpu_st.data + off, 4);
		off += 4 + (size_t)nmsrs * 12 + 4 + sizeof(struct kvm_sregs) + 4 + sizeof(struct kvm_regs);
		memcpy(bad, cpu_st.data, cpu_st.len);
		memcpy(&xlen, bad + off, 4);
		xlen += 64;
		memcpy(bad + off, &xlen, 4);
		expect_vcpu_refused(kvm, bad, cpu_st.len, "vCPU state with a bigger XSAVE area");
	}
	free(bad);
	{
		struct vm c;
		vm_create(kvm, &c);
		sreader_init(&in, vm_st.data, vm_st.len - 3);
		r = vm_kvm_state_load(c.fd, &in, &e);
		check(r < 0, "truncated VM state refused: %s", err_msg(&e));
		err_clear(&e);
		sreader_init(&in, vm_st.data, vm_st.len);
		r = vm_kvm_state_load(c.fd, &in, &e);
		check(!r, "the whole VM state still loads into that VM%s%s", r ? ": " : "", err_msg(&e));
	}

	sbuf_free(&vm_st);
	sbuf_free(&cpu_st);
	if (fails) {
		printf("kvm_state_roundtrip: %d check(s) failed\n", fails);
		return 1;
	}
	printf("KVM-STATE-ROUNDTRIP-OK\n");
	return 0;
}
