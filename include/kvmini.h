/* SPDX-License-Identifier: MIT */
/*
 * libkvmini: create, run and stop a KVM virtual machine from a program.
 * The `kvmini` command is a thin layer over this header. No global state:
 * several VMs may live in one process.
 */
#ifndef KVMINI_H
#define KVMINI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVMINI_MAX_CPUS 64
#define KVMINI_MIN_MEM	(64ULL << 20)

#define KVMINI_MAX_DISKS       16
#define KVMINI_DISK_PATH_MAX   4096 /* bytes of kvmini_disk.path, with the terminating NUL */
#define KVMINI_DISK_SERIAL_MAX 20   /* bytes of a disk serial (the virtio-blk ID) */

enum kvmini_disk_format {
	KVMINI_DISK_FORMAT_AUTO = 0, /* probe the image's first bytes */
	KVMINI_DISK_FORMAT_RAW,
	KVMINI_DISK_FORMAT_QCOW2,
};

/*
 * One virtio-blk disk. The strings are stored in the struct itself, so a
 * config can be copied freely and owns everything it names.
 */
struct kvmini_disk {
	char path[KVMINI_DISK_PATH_MAX]; /* image file or block device; must not be empty */
	enum kvmini_disk_format format;
	bool readonly;				 /* open read-only; the guest sees a read-only disk */
	bool cache_none;			 /* O_DIRECT: bypass the host page cache */
	char serial[KVMINI_DISK_SERIAL_MAX + 1]; /* "" for none */
	bool no_backing;			 /* qcow2: ignore the backing file (reads as zeroes) */
	uint64_t cache_size; /* qcow2 metadata cache in bytes; 0: the default (see --help) */
};

#define KVMINI_MAX_NICS	      8
#define KVMINI_NET_MAX_QUEUES 16 /* queue pairs per NIC */
#define KVMINI_IFNAMSIZ	      16 /* bytes of an interface name, with the terminating NUL (IFNAMSIZ) */

enum kvmini_net_kind {
	KVMINI_NET_TAP = 1, /* a tap by name: attached to, or created (needs CAP_NET_ADMIN) */
	KVMINI_NET_MACVTAP, /* a macvtap created on a parent interface, removed at exit */
	KVMINI_NET_FD,	    /* an already-open tap or macvtap fd (kvmini takes it over and closes it) */
};

enum kvmini_macvtap_mode {
	KVMINI_MACVTAP_BRIDGE = 0,
	KVMINI_MACVTAP_VEPA,
	KVMINI_MACVTAP_PRIVATE,
	KVMINI_MACVTAP_PASSTHRU,
};

/* One virtio-net NIC. Like kvmini_disk, it owns the strings it names. */
struct kvmini_net {
	enum kvmini_net_kind kind;
	char ifname[KVMINI_IFNAMSIZ];  /* TAP: the tap; MACVTAP: its parent (lower) interface */
	char bridge[KVMINI_IFNAMSIZ];  /* TAP: enslave the tap to this bridge; "" for none */
	enum kvmini_macvtap_mode mode; /* MACVTAP */
	int fd;			       /* FD: the descriptor */
	bool mac_set;		       /* false: a stable MAC derived from the VM and the NIC */
	uint8_t mac[6];		       /* unicast */
	unsigned queues;	       /* queue pairs, 1..KVMINI_NET_MAX_QUEUES (0 means 1) */
};

/* A NIC's counters, for the stats API. Packets and bytes count frames without the vnet header. */
struct kvmini_net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors; /* host -> guest */
	uint64_t tx_packets, tx_bytes, tx_dropped, tx_errors; /* guest -> host */
	bool link_up;
};

struct kvmini_config {
	const char *kernel_path;     /* bzImage, or an ELF vmlinux with a PVH note */
	const char *initrd_path;     /* optional */
	const char *cmdline;	     /* NULL: KVMINI_DEFAULT_CMDLINE */
	unsigned cpus;		     /* 1..KVMINI_MAX_CPUS */
	uint64_t mem_bytes;	     /* guest RAM, a multiple of 4 KiB, at least KVMINI_MIN_MEM */
	bool mem_hugepages;	     /* RAM from 2 MiB hugetlbfs pages; mem_bytes a multiple of 2 MiB */
	bool mem_merge;		     /* MADV_MERGEABLE (KSM); private RAM only: not with the others */
	bool mem_shared;	     /* RAM is a memfd ("kvmini-guest") mapped MAP_SHARED */
	bool no_reboot;		     /* a guest reboot ends the VM instead of restarting it */
	unsigned shutdown_timeout_s; /* the kvmini command: grace after SIGTERM (kvmini_config_init: 30) */
	int console_out_fd;	     /* guest serial output goes here; -1 discards it */
	/* Guest serial output is also handed to this callback when set (from a VM thread). */
	void (*console_cb)(void *opaque, const void *buf, size_t len);
	void *console_cb_opaque;
	const char *kvm_device; /* NULL: "/dev/kvm" */
	/* Disks in guest order (vda, vdb, ...): the first ndisks entries are used. */
	struct kvmini_disk disks[KVMINI_MAX_DISKS];
	unsigned ndisks;
	/* NICs in guest order: the first nnics entries are used. */
	struct kvmini_net nics[KVMINI_MAX_NICS];
	unsigned nnics;
};

#define KVMINI_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"

/* Why a VM stopped. */
enum kvmini_exit {
	KVMINI_EXIT_NONE = 0,	  /* still running */
	KVMINI_EXIT_POWEROFF = 1, /* the guest powered off */
	KVMINI_EXIT_REBOOT = 2,	  /* the guest rebooted and no_reboot was set */
	KVMINI_EXIT_STOPPED = 3,  /* kvmini_vm_stop() was called */
	KVMINI_EXIT_ERROR = 4,	  /* an emulation error; kvmini_vm_error() says which */
	KVMINI_EXIT_PANIC = 5,	  /* the guest kernel panicked (it wrote PANICKED to pvpanic) */
	/* The guest wrote a byte to the exit-status port; kvmini_vm_exit_status() returns it. */
	KVMINI_EXIT_GUEST_STATUS = 6,
};

/*
 * Guest-to-host devices every VM has:
 *  - the exit-status port, I/O port KVMINI_EXIT_PORT: a byte written there
 *    (outb; wider accesses are not decoded) stops the VM with
 *    KVMINI_EXIT_GUEST_STATUS and that byte as its status; reads give 0xff.
 *    The DSDT reserves the port (a PNP0C02 device), so Linux leaves it alone.
 *  - pvpanic, QEMU's PCI function 1b36:0011 (Linux's pvpanic-pci driver), in
 *    the PCI slot after the disks and NICs: a guest kernel panic stops the VM
 *    with KVMINI_EXIT_PANIC, even when the guest would reboot on panic (the
 *    panic is reported before the reboot; the VM is not restarted). A panic
 *    with a kdump kernel loaded (CRASH_LOADED) does not stop the VM.
 */
#define KVMINI_EXIT_PORT 0x501

struct kvmini_vm;

/* Fills cfg with defaults (1 CPU, 512 MiB, console on stdout). */
void kvmini_config_init(struct kvmini_config *cfg);

/*
 * Creates the VM: opens the disk images (and keeps them open, locked, until
 * kvmini_vm_destroy()), opens KVM, maps memory, loads the kernel and initrd. Returns 0
 * or a negative errno; on failure, err (errlen bytes) receives one line naming
 * the problem.
 */
int kvmini_vm_create(const struct kvmini_config *cfg, struct kvmini_vm **out, char *err, size_t errlen);
/* Starts the vCPUs. */
int kvmini_vm_start(struct kvmini_vm *vm);
/*
 * Waits until the VM stops (a guest reboot restarts it unless no_reboot is set).
 * timeout_ms < 0 waits forever. Returns the exit reason, or KVMINI_EXIT_NONE on timeout.
 */
enum kvmini_exit kvmini_vm_wait(struct kvmini_vm *vm, int timeout_ms);
/* A file descriptor that becomes readable once the VM has stopped (for poll loops). */
int kvmini_vm_stopped_fd(struct kvmini_vm *vm);
/* Asks the VM to stop from any thread; kvmini_vm_wait() then returns KVMINI_EXIT_STOPPED. */
void kvmini_vm_stop(struct kvmini_vm *vm);
/*
 * Feeds bytes to the guest's serial console. Blocks while the UART's receive
 * buffer is full; returns len, or -EPIPE once the VM has stopped.
 */
ssize_t kvmini_console_write(struct kvmini_vm *vm, const void *buf, size_t len);
/* Bytes of recent console output the library keeps for kvmini_console_wait(). */
#define KVMINI_CONSOLE_KEEP (1U << 20)
/*
 * Waits until the guest's console output contains pattern (plain text), looking
 * from just after the previous match (or the start of output). Returns 0 when
 * seen, -ETIMEDOUT after timeout_ms (< 0: no limit), -EPIPE when the VM stopped
 * without printing it, -EINVAL for an empty pattern. For test harnesses:
 * wait for a prompt, kvmini_console_write() a command, wait for its answer.
 */
int kvmini_console_wait(struct kvmini_vm *vm, const char *pattern, int timeout_ms);
/*
 * The guest's exit status (0..255) once the VM stopped with
 * KVMINI_EXIT_GUEST_STATUS; -1 otherwise (still running, or another reason).
 */
int kvmini_vm_exit_status(struct kvmini_vm *vm);
/* The message for KVMINI_EXIT_ERROR, or "". */
const char *kvmini_vm_error(struct kvmini_vm *vm);
/*
 * Asks the guest to shut down in order: presses its ACPI power button (the
 * guest's power-button handler then powers off; kvmini_vm_wait() returns
 * KVMINI_EXIT_POWEROFF). Returns at once: 0, or -EPIPE when the VM has
 * stopped. A caller that needs a bound calls kvmini_vm_stop() after its timeout.
 */
int kvmini_vm_shutdown(struct kvmini_vm *vm);
/* NIC nic's counters (summed over its queues) and link state; 0, or -EINVAL for no such NIC. */
int kvmini_vm_net_stats(struct kvmini_vm *vm, unsigned nic, struct kvmini_net_stats *out);
/* Stops the VM if needed and frees everything. */
void kvmini_vm_destroy(struct kvmini_vm *vm);

#ifdef __cplusplus
}
#endif

#endif
