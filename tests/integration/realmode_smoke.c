/* SPDX-License-Identifier: MIT */
/*
 * The smallest real guest: a few bytes of 16-bit real-mode code that print a
 * string through the project's 16550 model at port 0x3f8 and halt. It proves
 * that /dev/kvm works here (directly or nested) and that the I/O exit path
 * reaches the devices. Exit 0 only when the guest printed the whole string
 * and halted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/irq.h"
#include "devices/serial.h"
#include "vmm/kvm.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define CODE_GPA 0x1000

static const char expect[] = "Hello from real mode\n";

static char out[128];
static size_t out_len;

static void tx(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	for (size_t i = 0; i < len && out_len < sizeof(out) - 1; i++)
		out[out_len++] = (char)buf[i];
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "realmode_smoke: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

int main(int argc, char **argv)
{
	struct err e = {{0}};
	int kvm = kvm_open(argc > 1 ? argv[1] : "/dev/kvm", &e);
	if (kvm < 0) {
		fprintf(stderr, "realmode_smoke: %s\n", err_msg(&e));
		return 1;
	}
	int vmfd = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vmfd < 0)
		return fail("KVM_CREATE_VM", errno);
	if (ioctl(vmfd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0)
		return fail("KVM_SET_TSS_ADDR", errno);

	struct guest_mem mem;
	if (guest_mem_alloc(&mem, 1 << 20, &e)) {
		fprintf(stderr, "realmode_smoke: %s\n", err_msg(&e));
		return 1;
	}
	static const uint8_t code[] = {
	    0xba, 0xf8, 0x03, /* mov dx, 0x3f8 */
	    0xbe, 0x0f, 0x10, /* mov si, msg (0x100f) */
	    0xac,	      /* 1: lodsb */
	    0x84, 0xc0,	      /* test al, al */
	    0x74, 0x03,	      /* jz 2f */
	    0xee,	      /* out dx, al */
	    0xeb, 0xf8,	      /* jmp 1b */
	    0xf4,	      /* 2: hlt */
	};
	guest_mem_write(&mem, CODE_GPA, code, sizeof(code));
	guest_mem_write(&mem, CODE_GPA + sizeof(code), expect, sizeof(expect));

	struct kvm_userspace_memory_region reg = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = mem.regions[0].size,
	    .userspace_addr = (uintptr_t)mem.regions[0].hva,
	};
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &reg) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION", errno);
	int cpu = ioctl(vmfd, KVM_CREATE_VCPU, 0UL);
	if (cpu < 0)
		return fail("KVM_CREATE_VCPU", errno);
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run", errno);

	struct kvm_sregs s;
	if (ioctl(cpu, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS", errno);
	s.cs.base = 0;
	s.cs.selector = 0;
	s.ds.base = 0;
	s.ds.selector = 0;
	if (ioctl(cpu, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS", errno);
	struct kvm_regs regs = {.rip = CODE_GPA, .rflags = 0x2};
	if (ioctl(cpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS", errno);

	/* The guest's output goes through the real UART model on a real bus. */
	struct bus pio;
	bus_init(&pio);
	struct irq_line no_irq = {0};
	struct serial *uart = serial_create(&no_irq, tx, NULL, NULL);
	if (!uart || bus_register(&pio, PORT_COM1, PORT_COM1_LEN, serial_io, uart, "serial"))
		return fail("serial", ENOMEM);

	unsigned exits = 0;
	for (;;) {
		if (ioctl(cpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN", errno);
		exits++;
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		if (run->exit_reason != KVM_EXIT_IO || exits > 1000) {
			fprintf(stderr, "realmode_smoke: unexpected exit %u after %u exits\n",
				run->exit_reason, exits);
			return 1;
		}
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < run->io.count; i++)
			bus_access(&pio, run->io.port, data + i * run->io.size, run->io.size,
				   run->io.direction == KVM_EXIT_IO_OUT);
	}
	fwrite(out, 1, out_len, stdout);
	if (out_len != strlen(expect) || memcmp(out, expect, out_len)) {
		fprintf(stderr,
			"realmode_smoke: guest printed %zu bytes, expected \"Hello from real mode\"\n",
			out_len);
		return 1;
	}
	printf("realmode_smoke: %u exits, halted\n", exits);
	serial_destroy(uart);
	bus_free(&pio);
	guest_mem_free(&mem);
	return 0;
}
