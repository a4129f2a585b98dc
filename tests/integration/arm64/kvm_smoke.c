/* kvm_smoke: the smallest arm64 KVM guest, independent of kvmini: checks that the nested arm64
 * host's /dev/kvm runs guest code. A few instructions at 0x80000000 store 'K' to an unbacked
 * address (an MMIO exit the VMM must see with the right address and data), then call PSCI
 * SYSTEM_OFF through HVC (KVM handles PSCI: a SYSTEM_EVENT exit of type SHUTDOWN).
 * Built static for arm64 by tests/integration/arm64/run.sh. Exit 0 and "kvm_smoke: ok", or 1
 * with what went wrong. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_BASE  0x80000000ull
#define RAM_SIZE  0x10000ull
#define MMIO_ADDR 0x10000000ull

/* The guest: x1 = MMIO_ADDR; strb 'K' there; w0 = PSCI_SYSTEM_OFF; hvc #0; loop. */
static const uint32_t guest_code[] = {
    0xd2a20001, /* movz x1, #0x1000, lsl #16 */
    0x52800962, /* movz w2, #0x4b ('K') */
    0x39000022, /* strb w2, [x1] */
    0x52800100, /* movz w0, #0x8 */
    0x72b08000, /* movk w0, #0x8400, lsl #16: 0x84000008, PSCI SYSTEM_OFF */
    0xd4000002, /* hvc #0 */
    0x14000000, /* b . */
};

static int fail(const char *what)
{
	fprintf(stderr, "kvm_smoke: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(void)
{
	struct kvm_vcpu_init init;
	struct kvm_userspace_memory_region region;
	struct kvm_one_reg reg;
	struct kvm_run *run;
	uint64_t pc = RAM_BASE;
	int kvm, vm, vcpu, api, mmap_size;
	void *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("open /dev/kvm");
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != 12) {
		fprintf(stderr, "kvm_smoke: KVM_GET_API_VERSION gave %d, not 12\n", api);
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	memcpy(mem, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .guest_phys_addr = RAM_BASE,
	    .memory_size = RAM_SIZE,
	    .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	memset(&init, 0, sizeof(init));
	if (ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init) < 0)
		return fail("KVM_ARM_PREFERRED_TARGET");
	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	if (ioctl(vcpu, KVM_ARM_VCPU_INIT, &init) < 0)
		return fail("KVM_ARM_VCPU_INIT");
	reg.id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
		 (offsetof(struct kvm_regs, regs.pc) / sizeof(uint32_t));
	reg.addr = (uintptr_t)&pc;
	if (ioctl(vcpu, KVM_SET_ONE_REG, &reg) < 0)
		return fail("KVM_SET_ONE_REG (pc)");
	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");

	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN (1)");
	if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != MMIO_ADDR || !run->mmio.is_write ||
	    run->mmio.len != 1 || run->mmio.data[0] != 'K') {
		fprintf(
		    stderr,
		    "kvm_smoke: expected an MMIO write of 'K' at 0x%llx, got exit reason %u (addr 0x%llx)\n",
		    MMIO_ADDR, run->exit_reason, (unsigned long long)run->mmio.phys_addr);
		return 1;
	}
	printf("kvm_smoke: MMIO write of '%c' at 0x%llx\n", run->mmio.data[0],
	       (unsigned long long)run->mmio.phys_addr);
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN (2)");
	if (run->exit_reason != KVM_EXIT_SYSTEM_EVENT ||
	    run->system_event.type != KVM_SYSTEM_EVENT_SHUTDOWN) {
		fprintf(stderr,
			"kvm_smoke: expected a SYSTEM_EVENT SHUTDOWN exit (PSCI SYSTEM_OFF), got exit reason "
			"%u\n",
			run->exit_reason);
		return 1;
	}
	printf("kvm_smoke: PSCI SYSTEM_OFF -> KVM_EXIT_SYSTEM_EVENT (shutdown)\nkvm_smoke: ok\n");
	return 0;
}
