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

/*
 * A NIC's counters, for the stats API. Packets and bytes count frames without the vnet header.
 * Notifications are the guest driver's queue kicks (doorbell writes), counted exactly; interrupts
 * are the used-buffer interrupts sent to it (MSI-X messages or INTx), after EVENT_IDX/NO_INTERRUPT
 * suppression. All counters, like the disks', survive guest reboots and only grow.
 */
struct kvmini_net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors; /* host -> guest */
	uint64_t tx_packets, tx_bytes, tx_dropped, tx_errors; /* guest -> host */
	uint64_t rx_notifications;   /* kicks of the receive queues: "more buffers posted" */
	uint64_t tx_notifications;   /* kicks of the transmit queues: "frames to send" */
	uint64_t ctrl_notifications; /* kicks of the control queue */
	uint64_t rx_interrupts;	     /* interrupts for received frames */
	uint64_t tx_interrupts;	     /* interrupts for transmitted (completed) buffers */
	uint64_t ctrl_interrupts;    /* interrupts for completed control commands */
	bool link_up;
};

/* Buckets of kvmini_disk_stats.lat_hist: bucket i counts latencies < 2^i us; the last takes the rest. */
#define KVMINI_DISK_LAT_BUCKETS 24

/*
 * A disk's counters, for the stats API. Each request the guest completes counts once: in its
 * type's *_reqs whatever the outcome, in *_bytes only when it succeeded, and in errors_ioerr or
 * errors_unsupp when it failed. Service time runs from taking a request off the ring to handing
 * it back (CLOCK_MONOTONIC), so it includes the disk I/O and any wait for a worker thread.
 */
struct kvmini_disk_stats {
	uint64_t requests;				/* all requests completed (the sum of the *_reqs) */
	uint64_t read_reqs, read_bytes;			/* VIRTIO_BLK_T_IN: bytes read into the guest */
	uint64_t write_reqs, write_bytes;		/* VIRTIO_BLK_T_OUT: bytes written to the image */
	uint64_t flush_reqs;				/* VIRTIO_BLK_T_FLUSH */
	uint64_t discard_reqs, discard_bytes;		/* VIRTIO_BLK_T_DISCARD: bytes of the ranges */
	uint64_t write_zeroes_reqs, write_zeroes_bytes; /* VIRTIO_BLK_T_WRITE_ZEROES: bytes of the ranges */
	uint64_t get_id_reqs;				/* VIRTIO_BLK_T_GET_ID (the serial) */
	uint64_t other_reqs;	/* unknown request types, or requests without a whole header */
	uint64_t errors_ioerr;	/* completed with status IOERR (bad range, read-only, I/O error) */
	uint64_t errors_unsupp; /* completed with status UNSUPP (unknown type, unsupported operation) */
	uint64_t notifications; /* the guest driver's kicks of the request queues */
	uint64_t interrupts;	/* used-buffer interrupts sent to the guest driver */
	uint64_t lat_sum_ns;	/* the service times of all requests, summed (mean: / requests) */
	uint64_t lat_hist[KVMINI_DISK_LAT_BUCKETS]; /* requests by service time, log2 of microseconds */
};

/*
 * A vCPU's counters: why its KVM_RUN calls returned. Kept across guest reboots. exits_total is the
 * sum of the others.
 */
struct kvmini_vcpu_stats {
	uint64_t exits_total;
	uint64_t exits_io;	       /* port I/O (KVM_EXIT_IO) */
	uint64_t exits_mmio;	       /* MMIO outside guest RAM (KVM_EXIT_MMIO) */
	uint64_t exits_intr;	       /* KVM_EXIT_INTR returned as an exit (rare: see exits_kick) */
	uint64_t exits_kick;	       /* KVM_RUN interrupted (EINTR) by a signal: a stop's kick */
	uint64_t exits_hlt;	       /* KVM_EXIT_HLT (not expected: the LAPIC is in the kernel) */
	uint64_t exits_shutdown;       /* KVM_EXIT_SHUTDOWN: a triple fault (reset) */
	uint64_t exits_system_event;   /* KVM_EXIT_SYSTEM_EVENT: reset or power-off */
	uint64_t exits_internal_error; /* KVM_EXIT_INTERNAL_ERROR (emulation failed) */
	uint64_t exits_fail_entry;     /* KVM_EXIT_FAIL_ENTRY */
	uint64_t exits_other;	       /* any other exit reason */
};

/* seccomp filters (kvmini_config.seccomp). */
enum kvmini_seccomp {
	KVMINI_SECCOMP_OFF = 0,
	KVMINI_SECCOMP_ON,  /* a forbidden system call kills the process, with one line on stderr */
	KVMINI_SECCOMP_LOG, /* forbidden calls are allowed and logged by the kernel (development) */
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
	/*
	 * Console input: bytes read from this descriptor (a pipe, socket or
	 * pty; kvmini_config_init: -1, none) go to the guest's serial port, as
	 * kvmini_console_write() does, from a library thread. End of file ends
	 * console input, not the VM. The caller keeps ownership of the fd. With
	 * console_out_fd on the same socket, the console is one descriptor.
	 */
	int console_in_fd;
	/* Guest serial output is also handed to this callback when set (from a VM thread). */
	void (*console_cb)(void *opaque, const void *buf, size_t len);
	void *console_cb_opaque;
	const char *kvm_device; /* NULL: "/dev/kvm" */
	/*
	 * Serve the control socket (docs/API.md) on this path from
	 * kvmini_vm_create() to kvmini_vm_destroy(), which removes it. The path
	 * must not exist. NULL: none.
	 */
	const char *api_sock;
	/*
	 * Start from a state saved by kvmini_vm_save() instead of booting the
	 * kernel: the configuration must describe the same machine (vCPUs,
	 * memory, disks of the same sizes, NICs with the same MACs and
	 * queues); kvmini_vm_create() fails with a line naming the first
	 * difference, or what is wrong with the file. NULL: boot.
	 */
	const char *restore_path;
	/*
	 * Wait for a live migration on tcp:ADDR:PORT (kvmini_vm_create()
	 * listens, accepts one connection and loads the whole stream before it
	 * returns; the guest runs from kvmini_vm_start()). The disks are opened
	 * at once but locked only at the handover. NULL: boot.
	 */
	const char *incoming;
	/*
	 * While kvmini_vm_create() waits for or receives an incoming migration,
	 * this descriptor becoming readable (e.g. a signalfd) abandons it:
	 * kvmini_vm_create() fails with -EINTR before the source is told it may
	 * stop. The caller keeps ownership. kvmini_config_init: -1, none.
	 */
	int incoming_cancel_fd;
	/* Disks in guest order (vda, vdb, ...): the first ndisks entries are used. */
	struct kvmini_disk disks[KVMINI_MAX_DISKS];
	unsigned ndisks;
	/* NICs in guest order: the first nnics entries are used. */
	struct kvmini_net nics[KVMINI_MAX_NICS];
	unsigned nnics;
	/*
	 * Least privilege (docs/SECURITY.md), applied by kvmini_vm_start() to the calling thread
	 * and to every thread kvmini starts, before the guest's first instruction; everything that
	 * needs privilege happened in kvmini_vm_create(). All off by default (an embedding program
	 * is not surprised by a filter on its own thread); the kvmini command turns
	 * drop_privileges and seccomp on.
	 */
	bool drop_privileges; /* clear every capability (and the bounding set), no_new_privs; a
				 helper process removes the socket and macvtaps at exit. Implied by
				 set_uid, set_gid and jail */
	bool set_uid;	      /* switch to uid (setresuid), after the groups */
	uid_t uid;
	bool set_gid; /* switch to gid (setresgid), supplementary groups cleared */
	gid_t gid;
	const char *jail;	     /* chroot into this directory (and chdir /); NULL: none */
	enum kvmini_seccomp seccomp; /* per-thread syscall allow-lists; KVMINI_SECCOMP_OFF: none */
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
/* What a disk turned out to be once opened. */
struct kvmini_disk_info {
	char name[8];	    /* the guest's name for it: "vda", "vdb", ... */
	const char *format; /* "raw" or "qcow2" (also when the config said AUTO) */
	uint64_t size;	    /* bytes the guest sees */
};
/* 0, or -EINVAL for no such disk. */
int kvmini_vm_disk_info(struct kvmini_vm *vm, unsigned disk, struct kvmini_disk_info *out);
/* What a NIC turned out to be once opened. */
struct kvmini_net_info {
	char name[8];		      /* "net0", "net1", ...: kvmini's name, in guest PCI order */
	char ifname[KVMINI_IFNAMSIZ]; /* the host interface: the tap, or the macvtap kvmini created */
	uint8_t mac[6];		      /* the guest's MAC (given, or the derived default) */
	unsigned queues;	      /* queue pairs */
};
/* 0, or -EINVAL for no such NIC. */
int kvmini_vm_net_info(struct kvmini_vm *vm, unsigned nic, struct kvmini_net_info *out);
/* The kernel command line the guest boots with (the given one or the default). */
const char *kvmini_vm_cmdline(struct kvmini_vm *vm);
/* ---- lifecycle ---- */
enum kvmini_state {
	KVMINI_STATE_CREATED = 0, /* kvmini_vm_start() not called yet */
	KVMINI_STATE_RUNNING,
	KVMINI_STATE_PAUSED,
	KVMINI_STATE_STOPPED, /* kvmini_vm_wait() returns the reason */
};
enum kvmini_state kvmini_vm_state(struct kvmini_vm *vm);
/*
 * Pauses the VM: every vCPU stops and every device thread finishes what it
 * was doing with guest memory and waits; nothing changes guest memory until
 * kvmini_vm_resume(). Guest time stands still too (kvmclock is frozen), so
 * the guest sees no jump when it resumes. Console input written meanwhile
 * waits in the UART (kvmini_console_write() blocks once it is full); none is
 * lost. A paused VM stays paused across kvmini_vm_reset(); it can be
 * stopped. Returns 0 once paused, -EALREADY when already paused, -EPIPE when
 * the VM has stopped. May be called before kvmini_vm_start(): the VM then
 * starts paused.
 */
int kvmini_vm_pause(struct kvmini_vm *vm);
/* Resumes a paused VM: 0, -EALREADY when it is not paused, -EPIPE when it has stopped. */
int kvmini_vm_resume(struct kvmini_vm *vm);
/*
 * Resets the machine at once, as a reset button does: the guest boots again
 * from the same configuration (also with no_reboot, which only concerns
 * resets the guest asks for). 0, or -EPIPE when the VM is not running.
 */
int kvmini_vm_reset(struct kvmini_vm *vm);
/* Milliseconds since kvmini_vm_start() (0 before). */
uint64_t kvmini_vm_uptime_ms(struct kvmini_vm *vm);
/*
 * kvmini's own set-up time: microseconds from kvmini_vm_create() to the first
 * KVM_RUN of any vCPU (0 before it): opening images and /dev/kvm, building the
 * machine and loading the kernel, and for --restore/--incoming reading the
 * state (an incoming migration: waiting for the source too).
 */
uint64_t kvmini_vm_setup_us(struct kvmini_vm *vm);
/* The configuration the VM was created with (the library's copy). */
const struct kvmini_config *kvmini_vm_config(struct kvmini_vm *vm);

/*
 * Saves the VM's whole state (memory, vCPUs, devices) to a new file at path
 * (mode 0600; an existing file is refused, never overwritten), then stops the
 * VM: kvmini_vm_wait() returns KVMINI_EXIT_STOPPED. Disks are flushed first;
 * the state refers to them, so a restore must use the same images,
 * unchanged. A VM that was running is paused while saving and resumed if
 * the save fails (the file is then removed). 0, or -errno with one line in
 * err.
 */
int kvmini_vm_save(struct kvmini_vm *vm, const char *path, char *err, size_t errlen);

/* ---- live migration (docs/MIGRATION.md) ---- */
struct kvmini_migrate_params {
	const char *uri;	  /* tcp:HOST:PORT of a kvmini run ... --incoming */
	uint64_t max_downtime_ms; /* the pause the guest may see; 0: 300 */
	uint64_t bandwidth;	  /* bytes per second for pre-copy; 0: unlimited */
	unsigned timeout_s;	  /* give up when pre-copy has not converged by then; 0: 600 */
	/*
	 * When the guest dirties memory faster than half what a pass sends, two
	 * passes running, make its vCPUs sleep 20 % of their time, then 10 % more
	 * after each such pass, up to 99 % (QEMU's auto-converge); off: the
	 * migration fails at timeout_s instead.
	 */
	bool auto_converge;
};
struct kvmini_migrate_progress {
	unsigned pass;		       /* 1: all of RAM; then the pages dirtied meanwhile */
	uint64_t bytes_sent;	       /* so far, all passes */
	uint64_t remaining_bytes;      /* dirty after this pass */
	uint64_t dirty_rate;	       /* bytes per second the guest dirtied during the pass */
	uint64_t bandwidth;	       /* bytes per second the pass achieved */
	uint64_t expected_downtime_ms; /* remaining_bytes at bandwidth */
	uint64_t elapsed_ms;
	unsigned throttle_pct; /* auto-converge: the share of time the vCPUs sleep from now on */
	bool final;	       /* the last report: the destination has taken over */
};
struct kvmini_migrate_result {
	uint64_t total_ms, downtime_ms, bytes_sent;
	unsigned passes;
	unsigned throttle_pct; /* auto-converge: the vCPUs' throttle at the end (0: none) */
};
/*
 * Live-migrates the VM to a destination started with the same configuration
 * and cfg.incoming (`kvmini run ... --incoming tcp:ADDR:PORT`). Blocks until
 * it ends, calling progress (if set) after each pass. On success the
 * destination runs the guest and this VM has stopped (KVMINI_EXIT_STOPPED);
 * on any failure (connection lost, destination gone or refusing, timeout,
 * kvmini_vm_migrate_cancel()) it runs on as before. The disks must be
 * shared storage both sides open under the same paths (the lock passes to
 * the destination at the handover; qcow2 metadata is written out first and
 * read there only after it). 0 or -errno with one line in err.
 */
int kvmini_vm_migrate(struct kvmini_vm *vm, const struct kvmini_migrate_params *p,
		      void (*progress)(void *opaque, const struct kvmini_migrate_progress *pr), void *opaque,
		      struct kvmini_migrate_result *res, char *err, size_t errlen);
/* Makes a running kvmini_vm_migrate() give up (any thread). */
void kvmini_vm_migrate_cancel(struct kvmini_vm *vm);

/* ---- events ---- */
enum kvmini_event_kind {
	KVMINI_EVENT_PAUSED = 1,
	KVMINI_EVENT_RESUMED,
	KVMINI_EVENT_RESET,		 /* a fresh machine booted: the guest rebooted, or by_host */
	KVMINI_EVENT_SHUTDOWN_REQUESTED, /* the ACPI power button was pressed */
	KVMINI_EVENT_STOPPED,		 /* the VM ended: exit (and status) say why */
};
struct kvmini_event {
	enum kvmini_event_kind kind;
	bool by_host;	       /* RESET: kvmini_vm_reset() rather than the guest */
	enum kvmini_exit exit; /* STOPPED */
	int status;	       /* STOPPED with KVMINI_EXIT_GUEST_STATUS: the guest's byte */
};
#define KVMINI_MAX_WATCHERS 8
/*
 * Calls cb for every event from now on, from whichever thread caused it
 * (never with a library lock a caller could need held, except that cb must
 * not call kvmini_vm_watch/unwatch). cb should be quick. Returns a watch id
 * (>= 0) or -ENOSPC when KVMINI_MAX_WATCHERS are registered.
 */
int kvmini_vm_watch(struct kvmini_vm *vm, void (*cb)(void *opaque, const struct kvmini_event *ev),
		    void *opaque);
/* Ends a watch; cb is not running and will not be called once this returns. */
void kvmini_vm_unwatch(struct kvmini_vm *vm, int id);

/*
 * The counters (any thread, at any time after kvmini_vm_create(); they only grow, across guest
 * reboots too, so callers take differences of two reads). Each counter is read atomically, the
 * struct as a whole is not a snapshot: counters move while it is filled.
 */
/* NIC nic's counters (summed over its queues) and link state; 0, or -EINVAL for no such NIC. */
int kvmini_vm_net_stats(struct kvmini_vm *vm, unsigned nic, struct kvmini_net_stats *out);
/* Disk disk's counters (summed over its queues); 0, or -EINVAL for no such disk. */
int kvmini_vm_disk_stats(struct kvmini_vm *vm, unsigned disk, struct kvmini_disk_stats *out);
/* vCPU cpu's exit counters; 0, or -EINVAL for no such vCPU. */
int kvmini_vm_vcpu_stats(struct kvmini_vm *vm, unsigned cpu, struct kvmini_vcpu_stats *out);
/* Stops the VM if needed and frees everything. */
void kvmini_vm_destroy(struct kvmini_vm *vm);

#ifdef __cplusplus
}
#endif

#endif
