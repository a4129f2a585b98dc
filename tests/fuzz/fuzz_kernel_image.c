/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: an untrusted kernel image through the whole loader
 * (format detection, bzImage header, ELF program headers and PVH note, initrd
 * placement, boot_params and hvm_start_info), into a small guest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vmm/arch/x86/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static int ready;
	if (!ready) {
		struct err e = {{0}};
		if (guest_mem_alloc(&mem, 96ULL << 20, &e))
			abort();
		ready = 1;
	}
	/* The first byte picks an initrd size so that placement paths are exercised too. */
	static const uint8_t initrd[4096];
	size_t initrd_len = size ? (data[0] % 4) * 1024 : 0;
	struct boot_images im = {
	    .kernel = data,
	    .kernel_len = size,
	    .initrd = initrd_len ? initrd : NULL,
	    .initrd_len = initrd_len,
	    .cmdline = "console=ttyS0",
	    .ncpus = 2,
	};
	struct boot_entry entry;
	struct err e = {{0}};
	boot_load(&mem, &im, &entry, &e);
	return 0;
}
