/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile guest driving a virtio-blk PCI function
 * (virtio/blk.c over virtio/virtio_pci.c, devices/pci_dev.c, devices/pci.c)
 * without KVM, the way a vCPU would: configuration cycles on 0xcf8/0xcfc,
 * accesses in the PCI windows, rings and buffers in guest memory, and queue
 * notifications. Each input gets a fresh PCI host and device (1 MiB of guest
 * memory and the 64 KiB disk images are made once per process and reset per
 * input); the device is destroyed at the end, which joins its I/O threads.
 *
 * Determinism: the device serves requests on its own threads (a poll()ing
 * thread per queue, a pool of workers). After every operation that can wake
 * one (any write to config space or a window, kicks, the composite operations
 * below), the harness waits until the device is quiescent: every thread that
 * the input's device created asleep in poll() or on a futex at one and the
 * same moment, so that none can wake another and whatever the operation
 * started has been served (or has put the device into NEEDS_RESET). It reads
 * that from /proc/self/task/TID/wchan (or stat and syscall) and the context
 * switch counts of getrusage(); see settle(). No hook in the device is
 * needed. A device that does not go quiet within 5 s is reported as a hang
 * (abort). KICK can skip the wait, so that resets and teardown also meet
 * requests in flight.
 *
 * Oracles beyond the sanitizers: the fake msi_controller checks that routes
 * are set and deleted only while they exist, with their own eventfd, and that
 * none is left at teardown; the fake KVM ioeventfd registry checks that every
 * deassignment matches an assignment and that none is left; the INTx line must
 * be low after teardown; no file descriptor may leak from one input.
 *
 * Messages the device prints on stderr (NEEDS_RESET, no ioeventfd) are sent to
 * /dev/null unless FUZZ_VIRTIO_BLK_VERBOSE is set; sanitizer reports are not
 * affected (they write to fd 2 directly).
 *
 * ---- Input format (tests/fuzz/gen_virtio_blk_seeds.py writes it too) ----
 * All multi-byte values are little-endian; reading past the end yields zeroes.
 *
 * Header, 2 bytes:
 *   byte 0: bits 0-1  number of queues - 1 (1..4)
 *           bit 2     an msi_controller is present (else INTx only)
 *           bit 3     ioeventfds are offered (emulated as KVM does: a write of
 *                     exactly the registered length at the registered address
 *                     goes to the eventfd, not to the device)
 *           bit 4     ioeventfd assignment fails (-ENOSYS)
 *           bits 5-6  disk: 0 raw read-write, 1 raw read-only, 2 raw with
 *                     cache=none (O_DIRECT), 3 raw read-write
 *           bit 7     "firmware": command register = memory + bus master
 *                     before the first operation
 *   byte 1: bits 0-2  k: route_add fails from the k-th call on (0: never)
 *           bit 3     route_set fails
 *
 * Then operations until the input ends (at most MAX_OPS): one opcode byte,
 * taken modulo NOPS, and its operands:
 *   0 CFG    sel, reg, value[width if write]: a configuration access.
 *            sel bits 0-1 width 1, 2, 4 or 3 (invalid); bit 2 write;
 *            bits 3-4 target: 0 our function 00:01.0, 1 the host bridge
 *            00:00.0, 2 an empty function 00:01.1, 3 our function with the
 *            enable bit clear; bit 5: a raw access to CONFIG_ADDRESS (port
 *            0xcf8 + (reg & 3)) instead. Otherwise CONFIG_ADDRESS is set to
 *            the target's dword at reg, then 0xcfc + (reg & 3) is accessed.
 *   1 MMIO   sel, offset, value[width if write]: a window access.
 *            sel bits 0-1 width 1, 2, 4, 8; bit 2 write; bits 3-5 target:
 *            0 BAR 4 (virtio registers) as now programmed, offset le16 & 0x3fff
 *            (common 0x0, ISR 0x1000, device 0x2000, notify 0x3000);
 *            1 BAR 1 (MSI-X table 0x0, PBA 0x1000), offset le16 & 0x1fff;
 *            2 the 32-bit window, offset le32; 3 the 64-bit window, le32;
 *            4 the I/O window, le16; 5..7 as 0. Addresses go through the
 *            emulated ioeventfds and then to whichever window holds them.
 *   2 MEM    gpa le24 (mod 1 MiB), n, bytes[n]: guest memory (clipped at the end)
 *   3 MEMSET gpa le24, n le16, byte
 *   4 KICK   b: notify queue b & 7 (q as value) at BAR 4 + 0x3000 + 4q;
 *            bit 5: do not wait for the device to go idle (the next
 *            operations race with the requests in flight: a reset, say);
 *            bit 6: 4 bytes wide (misses the 2-byte ioeventfd);
 *            bit 7: through the VIRTIO_PCI_CAP_PCI_CFG window instead
 *   5 DESC   q, i, a, len le16, flags, next: descriptor i of queue q's
 *            conventional table (below); a < 0xc0: buffer BUF(a), else a
 *            special address (end of RAM, beyond it, the rings, ...)
 *   6 IDESC  q, i, a, len le16, flags, next: same, in queue q's indirect table
 *   7 AVAIL  q, head: appends head to queue q's conventional avail ring
 *   8 UP     flags, qlog: a driver bring-up (virtio 1.2, 3.1.1) with every
 *            queue (or queue 0 only) of size 1 << (qlog % 9) at the
 *            conventional addresses. flags: bit 0 EVENT_IDX, bit 1
 *            INDIRECT_DESC, bit 2 the device's feature bits, bit 3 no
 *            VERSION_1, bit 4 MSI-X (table programmed, vectors assigned,
 *            enabled), bit 5 no DRIVER_OK, bit 6 queue 0 only, bit 7 no reset
 *            first
 *   9 REQ    q, type, sector, nseg, len, mode: one virtio-blk request on
 *            queue q: header (type % 16, or type itself when >= 0xf0;
 *            sector < 0xf8: itself, else 2^(sector - 0xf8 + 56) - 1),
 *            nseg % 4 data segments of (len & 7) * 512 bytes (+ (len >> 4)
 *            when len bit 3), status byte; discard and write-zeroes get nseg
 *            16-byte ranges instead. mode: bit 0 indirect, bit 1 no kick,
 *            bit 2 status inside the last writable segment, bit 3 data in
 *            the wrong direction, bit 4 data buffers at odd addresses,
 *            bit 5 a zero-length descriptor after the header, bit 6 unmap
 *            flag on ranges, bit 7 segments of unequal length (same total)
 *  10 IRQ    reads the ISR and drains the MSI eventfds (a guest's handler)
 *  11 PCICFG sel, offset le16, value[width if write]: a BAR 4 access through
 *            the VIRTIO_PCI_CAP_PCI_CFG window: sel bits 0-1 width 1, 2, 4
 *            or 3 (invalid), bit 2 write; offset & 0x3fff
 *
 * Conventional guest memory layout (what UP, REQ, DESC, IDESC, AVAIL use):
 *   queue q rings: descriptors 0x10000 + q * 0x4000, avail + 0x1000, used + 0x2000
 *   queue q indirect table: 0x20000 + q * 0x4000
 *   buffers: BUF(i) = 0x40000 + i * 0x1000 (REQ on queue q uses BUF(16q ..))
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "devices/disk/disk.h"
#include "devices/pci.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "vmm/arch/x86/layout.h"
#include "vmm/memory.h"

#define MEM_SIZE    0x100000ULL
#define DISK_SIZE   0x10000
#define DEVFN	    PCI_DEVFN(1, 0)
#define MAX_Q	    4
#define MAX_OPS	    1024
#define NOPS	    12
#define MEM64_START LAYOUT_4G /* where vm.c puts the 64-bit window when RAM ends below 4 GiB */
#define MEM64_END   (LAYOUT_4G + LAYOUT_PCI_MMIO64_SIZE - 1)
#define DESC(q)	    (0x10000ULL + (q)*0x4000ULL)
#define AVAIL(q)    (DESC(q) + 0x1000)
#define USED(q)	    (DESC(q) + 0x2000)
#define INDIR(q)    (0x20000ULL + (q)*0x4000ULL)
#define BUF(i)	    (0x40000ULL + (uint64_t)(i)*0x1000ULL)
#define SETTLE_NS   5000000000LL

/* Virtio register offsets in BAR 4 (virtio/virtio_pci.c). */
#define CC_DFSELECT 0
#define CC_DF	    4
#define CC_GFSELECT 8
#define CC_GF	    12
#define CC_MSIX	    16
#define CC_STATUS   20
#define CC_QSELECT  22
#define CC_QSIZE    24
#define CC_QMSIX    26
#define CC_QENABLE  28
#define CC_QDESC    32
#define CC_QDRIVER  40
#define CC_QDEVICE  48
#define ISR_OFF	    0x1000
#define NOTIFY_OFF  0x3000

static FILE *log_out;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(log_out, "fuzz_virtio_blk: ");
	vfprintf(log_out, fmt, ap);
	fprintf(log_out, "\n");
	va_end(ap);
	abort();
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the input ---- */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t le(struct input *in, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

/* ---- fakes: MSI routes, KVM ioeventfds, the INTx line ---- */

#define MAX_ROUTES 64
#define ROUTE_BASE 100 /* route numbers the device could not make up */

static struct {
	bool live;
	int efd;
	struct msi_msg msg;
} routes[MAX_ROUTES];
static unsigned route_adds, fail_add_from; /* fail_add_from 0: never */
static bool fail_set;

static bool fd_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

static int fm_add(void *opaque, int efd, const struct msi_msg *msg, unsigned *route)
{
	if (!fd_open(efd))
		die("route_add with a bad eventfd");
	if (fail_add_from && ++route_adds >= fail_add_from)
		return -ENOSPC;
	for (unsigned i = 0; i < MAX_ROUTES; i++) {
		if (routes[i].live)
			continue;
		routes[i].live = true;
		routes[i].efd = efd;
		routes[i].msg = *msg;
		*route = ROUTE_BASE + i;
		return 0;
	}
	return -ENOSPC;
}

static int fm_set(void *opaque, unsigned route, const struct msi_msg *msg)
{
	unsigned i = route - ROUTE_BASE;
	if (route < ROUTE_BASE || i >= MAX_ROUTES || !routes[i].live)
		die("route_set on a route that does not exist");
	if (fail_set)
		return -EINVAL;
	routes[i].msg = *msg;
	return 0;
}

static void fm_del(void *opaque, unsigned route, int efd)
{
	unsigned i = route - ROUTE_BASE;
	if (route < ROUTE_BASE || i >= MAX_ROUTES || !routes[i].live)
		die("route_del on a route that does not exist");
	if (routes[i].efd != efd)
		die("route_del with another eventfd than route_add");
	routes[i].live = false;
}

static const struct msi_controller fake_msi = {fm_add, fm_set, fm_del, NULL};

#define MAX_IOEV 16

static struct {
	bool live;
	uint64_t addr;
	uint32_t len;
	int fd;
} ioev[MAX_IOEV];
static bool ioev_fail;

static int ioev_set(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
	if (!fd_open(fd))
		die("ioeventfd with a bad fd");
	if (!assign) {
		for (unsigned i = 0; i < MAX_IOEV; i++) {
			if (ioev[i].live && ioev[i].addr == addr && ioev[i].len == len && ioev[i].fd == fd) {
				ioev[i].live = false;
				return 0;
			}
		}
		die("deassigning an ioeventfd that is not assigned there");
	}
	if (ioev_fail)
		return -ENOSYS;
	int slot = -1;
	for (unsigned i = 0; i < MAX_IOEV; i++) {
		if (ioev[i].live && ioev[i].addr == addr && ioev[i].len == len)
			return -EEXIST; /* as KVM: one (address, length) pair, one eventfd */
		if (!ioev[i].live && slot < 0)
			slot = (int)i;
	}
	if (slot < 0)
		die("more ioeventfds than queues");
	ioev[slot].live = true;
	ioev[slot].addr = addr;
	ioev[slot].len = len;
	ioev[slot].fd = fd;
	return 0;
}

static const struct ioevent_ops fake_ioevent = {ioev_set, NULL};

static int intx_level;
static unsigned intx_gsi;

static void intx_set(void *opaque, unsigned gsi, int level)
{
	if (gsi != intx_gsi || (level != 0 && level != 1))
		die("INTx on the wrong GSI or with a bad level");
	__atomic_store_n(&intx_level, level, __ATOMIC_SEQ_CST);
}

/*
 * ---- threads: which are the device's, and whether they are all asleep ----
 * Not instrumented for coverage, and no libc string compares (libFuzzer hooks
 * them): how often these loops run is timing, not something to learn from.
 */

#define MAX_TASKS  64
#define NO_COVER   __attribute__((no_sanitize("coverage")))
#define PROC_FILES 3
enum { F_WCHAN, F_STAT, F_SYSCALL };

static DIR *task_dir;		    /* /proc/self/task, kept open */
static pid_t base_tasks[MAX_TASKS]; /* the threads there were when this input started */
static int n_base_tasks;
/* Device threads seen in this input, with their /proc files kept open (pread rereads them). */
static struct watched {
	pid_t tid;
	int fd[PROC_FILES]; /* -2: not opened yet */
} watched[MAX_TASKS];
static int n_watched;
/* The last round of settle() that found every device thread asleep: its threads and switch count. */
static struct {
	bool valid;
	int n;
	pid_t tids[MAX_TASKS];
	long switches;
} quiet;

NO_COVER static int list_tasks(pid_t *out, int max)
{
	int n = 0;
	struct dirent *de;
	rewinddir(task_dir);
	while ((de = readdir(task_dir)) && n < max)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
			out[n++] = (pid_t)atoi(de->d_name);
	return n;
}

NO_COVER static void unwatch(struct watched *w)
{
	for (unsigned i = 0; i < PROC_FILES; i++)
		if (w->fd[i] >= 0)
			close(w->fd[i]);
	*w = watched[--n_watched];
}

NO_COVER static void unwatch_all(void)
{
	while (n_watched)
		unwatch(&watched[0]);
	quiet.valid = false;
}

NO_COVER static struct watched *watch(pid_t tid)
{
	for (int i = 0; i < n_watched; i++)
		if (watched[i].tid == tid)
			return &watched[i];
	if (n_watched == MAX_TASKS)
		die("too many threads");
	struct watched *w = &watched[n_watched++];
	w->tid = tid;
	for (unsigned i = 0; i < PROC_FILES; i++)
		w->fd[i] = -2;
	return w;
}

/* Rereads one of w's files into buf (NUL-terminated); false when it cannot. */
NO_COVER static bool reread(struct watched *w, unsigned file, char *buf, size_t cap)
{
	static const char *const names[PROC_FILES] = {"wchan", "stat", "syscall"};
	if (w->fd[file] == -2) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)w->tid, names[file]);
		w->fd[file] = open(path, O_RDONLY | O_CLOEXEC);
	}
	ssize_t n = w->fd[file] < 0 ? -1 : pread(w->fd[file], buf, cap - 1, 0);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

NO_COVER static bool has(const char *s, const char *what)
{
	for (; *s; s++) {
		size_t i = 0;
		while (what[i] && s[i] == what[i])
			i++;
		if (!what[i])
			return true;
	}
	return false;
}

NO_COVER static bool waits_for_a_thread(long nr)
{
	return
#ifdef SYS_poll
	    nr == SYS_poll ||
#endif
#ifdef SYS_ppoll
	    nr == SYS_ppoll ||
#endif
	    nr == SYS_futex;
}

/*
 * Whether the thread sleeps where only another thread or we can wake it: in
 * poll() (the queue threads, on their kick and stop eventfds) or on a futex
 * (workers waiting for jobs, or for a lock). wchan, where the kernel has
 * symbols for it, says at once: a function name while the thread sleeps, "0"
 * while it runs or is being woken. Without it (always "0"), stat must say S
 * (asleep, not being woken) and syscall where. -1: the thread is gone.
 */
NO_COVER static int asleep(struct watched *w, char *why, size_t why_len)
{
	char wc[128], st[512], sc[256];
	if (!reread(w, F_WCHAN, wc, sizeof(wc)))
		return -1;
	if (wc[0] != '0' || wc[1] != '\0') {
		if (has(wc, "poll") || has(wc, "futex"))
			return 1;
		snprintf(why, why_len, "thread %d sleeps in %.60s", (int)w->tid, wc);
		return 0;
	}
	if (!reread(w, F_SYSCALL, sc, sizeof(sc)) || !reread(w, F_STAT, st, sizeof(st)))
		return -1;
	char *end;
	long nr = strtol(sc, &end, 10);
	const char *paren = strrchr(st, ')');
	char state = paren && paren[1] == ' ' ? paren[2] : '?';
	if (end != sc && waits_for_a_thread(nr) && state == 'S')
		return 1;
	snprintf(why, why_len, "thread %d: state %c, syscall %.40s", (int)w->tid, state, sc);
	return 0;
}

/* Context switches of every thread but this one, so far (exited threads included). */
NO_COVER static long other_switches(void)
{
	for (;;) {
		struct rusage t1, all, t2;
		getrusage(RUSAGE_THREAD, &t1);
		getrusage(RUSAGE_SELF, &all);
		getrusage(RUSAGE_THREAD, &t2);
		if (t1.ru_nvcsw == t2.ru_nvcsw && t1.ru_nivcsw == t2.ru_nivcsw)
			return all.ru_nvcsw + all.ru_nivcsw - t2.ru_nvcsw - t2.ru_nivcsw;
	}
}

NO_COVER static bool timed_out(const struct timespec *t0, const char *why)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - t0->tv_sec) * 1000000000LL + (now.tv_nsec - t0->tv_nsec) > SETTLE_NS)
		die("the device's threads did not go idle within 5 s (%s)", why);
	return false;
}

/* One attempt; false when a thread's files failed (it is gone, or its tid reused): start again. */
NO_COVER static bool settle_once(const struct timespec *t0, char *why, size_t why_len)
{
	/* Threads come and go only in our own calls (start, stop, create, destroy), not while we wait. */
	pid_t tids[MAX_TASKS];
	int n = 0, nall = list_tasks(tids, MAX_TASKS);
	for (int i = 0; i < nall; i++) {
		bool base = false;
		for (int j = 0; j < n_base_tasks && !base; j++)
			base = tids[i] == base_tasks[j];
		if (!base)
			tids[n++] = tids[i];
	}
	for (int i = 0; i < n_watched;) { /* forget threads that are gone */
		bool listed = false;
		for (int j = 0; j < n && !listed; j++)
			listed = watched[i].tid == tids[j];
		if (listed)
			i++;
		else
			unwatch(&watched[i]);
	}
	/* The last quiet round counts as the first of two if the threads are the same. */
	bool prev_ok = quiet.valid && quiet.n == n && !memcmp(quiet.tids, tids, n * sizeof(tids[0]));
	long prev_start = quiet.switches;
	quiet.valid = false;
	for (unsigned iter = 0;; iter++) {
		long start = other_switches();
		bool ok = true;
		for (int i = 0; i < n && ok; i++) {
			struct watched *w = watch(tids[i]);
			int a = asleep(w, why, why_len);
			if (a < 0) {
				unwatch(w);
				return false;
			}
			ok = a;
		}
		if (ok && prev_ok && other_switches() == prev_start) {
			quiet.valid = true;
			quiet.n = n;
			memcpy(quiet.tids, tids, n * sizeof(tids[0]));
			quiet.switches = start;
			return true;
		}
		prev_ok = ok;
		prev_start = start;
		timed_out(t0, why);
		if (ok)
			continue; /* the confirming round at once */
		if (iter < 4) {
			sched_yield();
		} else {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * Waits until the device is quiescent: every thread that was not there when
 * this input started asleep (see asleep()) at one and the same moment, so
 * that none can wake another. Two rounds of reads in which every thread is
 * asleep, with no context switch of any thread but ours from the start of
 * the first to the end of the second, prove such a moment (a thread that ran
 * in between either switched out, or still runs, or is being woken, and
 * then its wchan says "0"). Only then has whatever the last operation
 * started (a kick, DRIVER_OK, a reset) been served completely. The last
 * round of the previous settle() serves as the first round when the threads
 * are the same, so that after an operation that woke nothing one round is
 * enough.
 */
NO_COVER static void settle(void)
{
	struct timespec t0;
	char why[160] = "a thread's /proc files";
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!settle_once(&t0, why, sizeof(why)))
		timed_out(&t0, why);
}

NO_COVER static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the machine ---- */

static struct guest_mem mem;
static struct pci_host *host;
static struct disk *disks[3];
static int disk_fds[3] = {-1, -1, -1}; /* our own descriptors, to reset the images */
static const struct pci_windows windows = {
    .io_start = PORT_PCI_IO_START,
    .io_end = PORT_PCI_IO_END,
    .mem32_start = LAYOUT_PCI_MMIO32_START,
    .mem32_end = LAYOUT_PCI_MMIO32_END,
    .mem64_start = MEM64_START,
    .mem64_end = MEM64_END,
};

struct run {
	unsigned nq;
	uint16_t qsize[MAX_Q];
	uint16_t next_desc[MAX_Q];
};

/* An image in /dev/shm (flushes cost nothing there), else in $TMPDIR or /tmp. */
static int make_image(bool readonly, bool direct, struct disk **out, int *fd_out)
{
	const char *dirs[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
	for (unsigned i = 0; i < 3; i++) {
		if (!dirs[i])
			continue;
		char path[256];
		snprintf(path, sizeof(path), "%s/fuzz-virtio-blk.XXXXXX", dirs[i]);
		int fd = mkstemp(path);
		if (fd < 0)
			continue;
		if (ftruncate(fd, DISK_SIZE) < 0) {
			close(fd);
			unlink(path);
			continue;
		}
		struct disk_config dc = {
		    .path = path,
		    .format = DISK_FORMAT_RAW,
		    .readonly = readonly,
		    .cache = direct ? DISK_CACHE_NONE : DISK_CACHE_WRITEBACK,
		    .serial = "FUZZ-SERIAL",
		};
		struct err e = {{0}};
		int r = disk_open(&dc, out, &e);
		unlink(path); /* the open descriptors keep it */
		if (r == 0) {
			*fd_out = fd;
			return 0;
		}
		close(fd);
	}
	return -1;
}

static void init(void)
{
	log_out = stderr;
	if (!getenv("FUZZ_VIRTIO_BLK_VERBOSE")) {
		FILE *null = fopen("/dev/null", "w");
		if (null)
			stderr = null; /* the device's own messages; see the top of the file */
	}
	struct err e = {{0}};
	if (guest_mem_alloc(&mem, MEM_SIZE, &e))
		die("cannot allocate guest memory: %s", e.msg);
	if (make_image(false, false, &disks[0], &disk_fds[0]) ||
	    make_image(true, false, &disks[1], &disk_fds[1]))
		die("cannot create the disk images");
	/* cache=none needs O_DIRECT; without it, that variant uses the first image. */
	if (make_image(false, true, &disks[2], &disk_fds[2])) {
		disks[2] = disks[0];
		disk_fds[2] = -1;
	}
	intx_gsi = pci_host_intx_gsi(DEVFN, 1);
	if (!(task_dir = opendir("/proc/self/task")))
		die("cannot open /proc/self/task");
}

/* ---- configuration space ---- */

static uint32_t addr_get(void)
{
	uint8_t a[4];
	pci_host_addr_io(host, 0, a, 4, false);
	return (uint32_t)get_le(a, 4);
}

static void addr_set(uint32_t v)
{
	uint8_t a[4];
	put_le(a, v, 4);
	pci_host_addr_io(host, 0, a, 4, true);
}

static uint32_t cfg_addr(unsigned devfn, unsigned reg)
{
	return 0x80000000u | devfn << 8 | (reg & 0xfc);
}

/* The harness's own config accesses leave CONFIG_ADDRESS as the guest set it. */
static uint32_t cfg_read(unsigned reg, unsigned len)
{
	uint32_t saved = addr_get();
	uint8_t d[4];
	addr_set(cfg_addr(DEVFN, reg));
	pci_host_data_io(host, reg & 3, d, len, false);
	addr_set(saved);
	return (uint32_t)get_le(d, len);
}

static void cfg_write(unsigned reg, uint32_t v, unsigned len)
{
	uint32_t saved = addr_get();
	uint8_t d[4];
	put_le(d, v, 4);
	addr_set(cfg_addr(DEVFN, reg));
	pci_host_data_io(host, reg & 3, d, len, true);
	addr_set(saved);
}

/* Where BAR bar decodes if enabled, as the guest programmed it (0 when not a BAR). */
static uint64_t bar_addr(unsigned bar)
{
	uint32_t lo = cfg_read(0x10 + 4 * bar, 4);
	if (lo & 1)
		return lo & ~3u;
	uint64_t a = lo & ~0xfu;
	if ((lo & 6) == 4 && bar < 5)
		a |= (uint64_t)cfg_read(0x14 + 4 * bar, 4) << 32;
	return a;
}

/* The capability with this ID (and cfg_type, for vendor capabilities); 0 if none. */
static unsigned find_cap(uint8_t id, uint8_t type)
{
	unsigned p = cfg_read(0x34, 1) & 0xfc;
	for (unsigned n = 0; n < 48 && p >= 0x40; n++) {
		uint32_t h = cfg_read(p, 4); /* dword 0 of a capability has no side effects */
		if ((h & 0xff) == id && (id != 9 || (h >> 24) == type))
			return p;
		p = (h >> 8) & 0xfc;
	}
	return 0;
}

/* ---- windows ---- */

static void mmio(uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write) {
		for (unsigned i = 0; i < MAX_IOEV; i++) {
			if (ioev[i].live && ioev[i].addr == addr && ioev[i].len == len) {
				uint64_t one = 1;
				if (write(ioev[i].fd, &one, sizeof(one)) != sizeof(one))
					die("ioeventfd write failed");
				return;
			}
		}
	}
	if (addr >= MEM64_START && addr <= MEM64_END)
		pci_host_mem64_window(host, addr - MEM64_START, data, len, is_write);
	else if (addr >= LAYOUT_PCI_MMIO32_START && addr <= LAYOUT_PCI_MMIO32_END)
		pci_host_mem32_window(host, addr - LAYOUT_PCI_MMIO32_START, data, len, is_write);
	else if (!is_write)
		memset(data, 0xff, len); /* RAM or nothing: not the device's */
}

static void reg_write(uint64_t regs, uint64_t off, uint64_t v, uint32_t len)
{
	uint8_t d[8];
	put_le(d, v, len);
	mmio(regs + off, d, len, true);
}

static uint64_t reg_read(uint64_t regs, uint64_t off, uint32_t len)
{
	uint8_t d[8];
	mmio(regs + off, d, len, false);
	return get_le(d, len);
}

/* ---- guest memory ---- */

static void mem_put(uint64_t gpa, const void *src, size_t len)
{
	if (gpa >= MEM_SIZE)
		return;
	if (len > MEM_SIZE - gpa)
		len = MEM_SIZE - gpa;
	memcpy(mem.map + gpa, src, len);
}

static void mem_le(uint64_t gpa, uint64_t v, unsigned n)
{
	uint8_t b[8];
	put_le(b, v, n);
	mem_put(gpa, b, n);
}

static uint64_t special_addr(uint8_t a, unsigned q)
{
	static const uint64_t fixed[] = {
	    MEM_SIZE - 16, MEM_SIZE - 1, MEM_SIZE, 0, 0xfffffffffffffff0ULL, 0x100000000ULL, 0xc0000000ULL, 8,
	};
	if (a < 0xc0)
		return BUF(a);
	switch (a & 0x0f) {
	case 0x8:
		return INDIR(q);
	case 0x9:
		return DESC(q);
	case 0xa:
		return AVAIL(q);
	case 0xb:
		return USED(q);
	case 0xc:
		return USED(q) + 4; /* the used ring's elements */
	default:
		return fixed[a & 7];
	}
}

/* ---- operations ---- */

static void op_cfg(struct input *in)
{
	static const unsigned devfns[] = {DEVFN, 0, PCI_DEVFN(1, 1), DEVFN};
	uint8_t sel = u8(in), reg = u8(in);
	unsigned len = (sel & 3) == 0 ? 1 : (sel & 3) == 1 ? 2 : (sel & 3) == 2 ? 4 : 3;
	bool w = sel & 4;
	uint8_t d[4] = {0};
	if (w)
		put_le(d, le(in, len), len);
	if (sel & 0x20) {
		pci_host_addr_io(host, reg & 3, d, len, w);
	} else {
		unsigned t = (sel >> 3) & 3;
		uint32_t a = cfg_addr(devfns[t], reg);
		if (t == 3)
			a &= ~0x80000000u;
		addr_set(a);
		pci_host_data_io(host, reg & 3, d, len, w);
	}
	if (w)
		settle();
}

static void op_mmio(struct input *in)
{
	uint8_t sel = u8(in);
	uint32_t len = 1u << (sel & 3);
	bool w = sel & 4;
	unsigned t = (sel >> 3) & 7;
	uint64_t addr;
	uint8_t d[8] = {0};
	switch (t) {
	case 1:
		addr = bar_addr(1) + (le(in, 2) & 0x1fff);
		break;
	case 2:
		addr = LAYOUT_PCI_MMIO32_START + le(in, 4);
		break;
	case 3:
		addr = MEM64_START + le(in, 4);
		break;
	case 4:
		addr = le(in, 2);
		break;
	default:
		addr = bar_addr(4) + (le(in, 2) & 0x3fff);
		break;
	}
	if (w)
		put_le(d, le(in, len), len);
	if (t == 4) {
		if (addr >= PORT_PCI_IO_START && addr <= PORT_PCI_IO_END)
			pci_host_io_window(host, addr - PORT_PCI_IO_START, d, len, w);
	} else {
		mmio(addr, d, len, w);
	}
	if (w)
		settle();
}

static void op_mem(struct input *in)
{
	uint64_t gpa = le(in, 3) % MEM_SIZE;
	size_t n = u8(in);
	if (n > in->n)
		n = in->n;
	mem_put(gpa, in->p, n);
	in->p += n;
	in->n -= n;
}

static void op_memset(struct input *in)
{
	uint64_t gpa = le(in, 3) % MEM_SIZE;
	uint64_t n = le(in, 2);
	uint8_t v = u8(in);
	if (n > MEM_SIZE - gpa)
		n = MEM_SIZE - gpa;
	memset(mem.map + gpa, v, n);
}

/* A BAR 4 access through the VIRTIO_PCI_CAP_PCI_CFG capability: bar, offset, length, then data. */
static void pcicfg_access(uint32_t off, uint8_t *data, uint32_t len, bool w)
{
	unsigned cap = find_cap(9, 5);
	if (!cap)
		return;
	cfg_write(cap + 4, 4, 1);
	cfg_write(cap + 8, off, 4);
	cfg_write(cap + 12, len, 4);
	uint32_t saved = addr_get();
	addr_set(cfg_addr(DEVFN, cap + 16));
	pci_host_data_io(host, 0, data, len == 3 ? 4 : len, w);
	addr_set(saved);
}

static void op_kick(struct input *in)
{
	uint8_t b = u8(in);
	unsigned q = b & 7;
	uint32_t len = b & 0x40 ? 4 : 2;
	uint8_t d[4];
	put_le(d, q, 4);
	if (b & 0x80)
		pcicfg_access(NOTIFY_OFF + 4 * q, d, len, true);
	else
		mmio(bar_addr(4) + NOTIFY_OFF + 4 * q, d, len, true);
	if (!(b & 0x20))
		settle();
}

static void write_desc(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t d[16];
	put_le(d, addr, 8);
	put_le(d + 8, len, 4);
	put_le(d + 12, flags, 2);
	put_le(d + 14, next, 2);
	mem_put(gpa, d, 16);
}

static void op_desc(struct input *in, const struct run *r, bool indirect)
{
	unsigned q = u8(in) % r->nq;
	uint8_t i = u8(in), a = u8(in);
	uint16_t len = (uint16_t)le(in, 2);
	uint8_t flags = u8(in), next = u8(in);
	write_desc((indirect ? INDIR(q) : DESC(q)) + 16u * i, special_addr(a, q), len, flags, next);
}

static void avail_push(const struct run *r, unsigned q, uint16_t head)
{
	uint16_t idx = (uint16_t)get_le(mem.map + AVAIL(q) + 2, 2);
	mem_le(AVAIL(q) + 4 + 2 * (idx & (r->qsize[q] - 1)), head, 2);
	uint16_t n = (uint16_t)(idx + 1);
	__atomic_store_n((uint16_t *)(mem.map + AVAIL(q) + 2), n, __ATOMIC_RELEASE); /* x86: LE */
}

static void op_avail(struct input *in, const struct run *r)
{
	unsigned q = u8(in) % r->nq;
	avail_push(r, q, u8(in));
}

static void op_bringup(struct input *in, struct run *r)
{
	uint8_t flags = u8(in), qlog = u8(in);
	/* pci_enable_device(): memory decoding and bus mastering. */
	cfg_write(0x04, (cfg_read(0x04, 2) | 6), 2);
	uint64_t regs = bar_addr(4);
	if (!(flags & 0x80))
		reg_write(regs, CC_STATUS, 0, 1);
	reg_write(regs, CC_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	reg_write(regs, CC_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	reg_write(regs, CC_DFSELECT, 0, 4);
	uint64_t offered = reg_read(regs, CC_DF, 4);
	reg_write(regs, CC_DFSELECT, 1, 4);
	offered |= reg_read(regs, CC_DF, 4) << 32;
	uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (flags & 1)
		want |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (flags & 2)
		want |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	if (flags & 4)
		want |= offered & 0xffffff;
	if (flags & 8)
		want &= ~VIRTIO_BIT(VIRTIO_F_VERSION_1);
	want &= offered;
	reg_write(regs, CC_GFSELECT, 0, 4);
	reg_write(regs, CC_GF, (uint32_t)want, 4);
	reg_write(regs, CC_GFSELECT, 1, 4);
	reg_write(regs, CC_GF, want >> 32, 4);
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	reg_write(regs, CC_STATUS, st, 1);
	bool msix = flags & 0x10;
	if (msix) {
		unsigned cap = find_cap(0x11, 0);
		if (cap) {
			uint32_t tbl = cfg_read(cap + 4, 4);
			uint64_t base = bar_addr(tbl & 7) + (tbl & ~7u);
			for (unsigned v = 0; v <= r->nq; v++) {
				reg_write(base, 16 * v, 0xfee00000, 4);
				reg_write(base, 16 * v + 4, 0, 4);
				reg_write(base, 16 * v + 8, 0x4020 + v, 4);
				reg_write(base, 16 * v + 12, 0, 4);
			}
			cfg_write(cap + 2, (cfg_read(cap + 2, 2) | 0x8000) & ~0x4000u, 2);
		}
		reg_write(regs, CC_MSIX, 0, 2);
	}
	for (unsigned q = 0; q < r->nq; q++) {
		if (q && (flags & 0x40))
			break;
		uint16_t size = (uint16_t)(1u << (qlog % 9));
		reg_write(regs, CC_QSELECT, q, 2);
		reg_write(regs, CC_QSIZE, size, 2);
		memset(mem.map + DESC(q), 0, 0x3000);
		reg_write(regs, CC_QDESC, (uint32_t)DESC(q), 4); /* as Linux: two halves */
		reg_write(regs, CC_QDESC + 4, DESC(q) >> 32, 4);
		reg_write(regs, CC_QDRIVER, AVAIL(q), 8);
		reg_write(regs, CC_QDEVICE, USED(q), 8);
		if (msix)
			reg_write(regs, CC_QMSIX, q + 1, 2);
		reg_write(regs, CC_QENABLE, 1, 2);
		r->qsize[q] = size;
		r->next_desc[q] = 0;
	}
	if (!(flags & 0x20))
		reg_write(regs, CC_STATUS, st | VIRTIO_STATUS_DRIVER_OK, 1);
	settle();
}

struct chain {
	unsigned n;
	struct {
		uint64_t addr;
		uint32_t len;
		bool wr;
	} d[8];
};

static void chain_add(struct chain *c, uint64_t addr, uint32_t len, bool wr)
{
	c->d[c->n].addr = addr;
	c->d[c->n].len = len;
	c->d[c->n].wr = wr;
	c->n++;
}

static void op_req(struct input *in, struct run *r)
{
	unsigned q = u8(in) % r->nq;
	uint8_t type_b = u8(in), sec_b = u8(in), nseg_b = u8(in), len_b = u8(in), mode = u8(in);
	uint32_t type = type_b >= 0xf0 ? type_b : type_b % 16u;
	uint64_t sector = sec_b < 0xf8 ? sec_b : (1ULL << (sec_b - 0xf8 + 56)) - 1;
	unsigned nseg = nseg_b % 4;
	uint32_t seg_len = (len_b & 7) * 512u + ((len_b & 8) ? (len_b >> 4) : 0);
	uint64_t hdr = BUF(16 * q), status = hdr + 0x800;
	bool ranges = type == 11 || type == 13;
	bool in_dir = (type == 0 || type == 8) != ((mode & 8) != 0);

	mem_le(hdr, type, 4);
	mem_le(hdr + 4, 0, 4);
	mem_le(hdr + 8, sector, 8);
	mem_le(status, 0xee, 1);
	struct chain c = {0};
	chain_add(&c, hdr, 16, false);
	if (mode & 0x20)
		chain_add(&c, hdr + 16, 0, false);
	for (unsigned k = 0; k < nseg; k++) {
		uint64_t buf = BUF(16 * q + 1 + k) + ((mode & 0x10) ? 1 + 3 * k : 0);
		uint32_t len = seg_len;
		if ((mode & 0x80) && nseg > 1 && seg_len >= 100)
			len += k == 0 ? 100 : k == nseg - 1 ? -100u : 0;
		if (ranges) {
			mem_le(buf, sector + k, 8);
			mem_le(buf + 8, len_b % 9, 4);
			mem_le(buf + 12, (mode & 0x40) ? 1 : 0, 4);
			chain_add(&c, buf, 16, (mode & 8) != 0);
		} else {
			chain_add(&c, buf, len, in_dir);
		}
	}
	if ((mode & 4) && c.n > 1 && c.d[c.n - 1].wr)
		c.d[c.n - 1].len++; /* the status byte is the last writable byte */
	else
		chain_add(&c, status, 1, true);

	uint16_t size = r->qsize[q];
	uint16_t head;
	if (mode & 1) {
		for (unsigned i = 0; i < c.n; i++)
			write_desc(INDIR(q) + 16 * i, c.d[i].addr, c.d[i].len,
				   (i + 1 < c.n ? 1 : 0) | (c.d[i].wr ? 2 : 0), (uint16_t)(i + 1));
		head = r->next_desc[q]++ & (size - 1);
		write_desc(DESC(q) + 16u * head, INDIR(q), 16 * c.n, 4, 0);
	} else {
		uint16_t slot[8];
		for (unsigned i = 0; i < c.n; i++)
			slot[i] = r->next_desc[q]++ & (size - 1);
		for (unsigned i = 0; i < c.n; i++)
			write_desc(DESC(q) + 16u * slot[i], c.d[i].addr, c.d[i].len,
				   (i + 1 < c.n ? 1 : 0) | (c.d[i].wr ? 2 : 0),
				   i + 1 < c.n ? slot[i + 1] : 0);
		head = slot[0];
	}
	avail_push(r, q, head);
	if (!(mode & 2)) {
		uint8_t d[2];
		put_le(d, q, 2);
		mmio(bar_addr(4) + NOTIFY_OFF + 4 * q, d, 2, true);
		settle();
	}
}

static void op_irq(void)
{
	uint8_t d;
	mmio(bar_addr(4) + ISR_OFF, &d, 1, false);
	for (unsigned i = 0; i < MAX_ROUTES; i++) {
		uint64_t v;
		if (routes[i].live && read(routes[i].efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing delivered */
		}
	}
}

static void op_pcicfg(struct input *in)
{
	uint8_t sel = u8(in);
	uint32_t off = (uint32_t)le(in, 2) & 0x3fff;
	unsigned len = (sel & 3) == 0 ? 1 : (sel & 3) == 1 ? 2 : (sel & 3) == 2 ? 4 : 3;
	bool w = sel & 4;
	uint8_t d[4] = {0};
	if (w)
		put_le(d, le(in, len), len);
	pcicfg_access(off, d, len, w);
	if (w)
		settle();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	if (size < 2)
		return 0;
	struct input in = {data, size};
	uint8_t h0 = u8(&in), h1 = u8(&in);
	struct run r = {.nq = (h0 & 3) + 1};
	for (unsigned q = 0; q < MAX_Q; q++)
		r.qsize[q] = 256;
	unsigned dsel = (h0 >> 5) & 3;
	struct disk *disk = disks[dsel == 3 ? 0 : dsel];
	int dfd = disk_fds[dsel == 3 ? 0 : dsel];

	/* Fresh state: guest memory, disk contents, fakes. */
	if (madvise(mem.map, MEM_SIZE, MADV_DONTNEED)) /* zero-fills, cheaper than memset */
		die("madvise: %s", strerror(errno));
	if (dfd >= 0 && !disk->readonly && (ftruncate(dfd, 0) < 0 || ftruncate(dfd, DISK_SIZE) < 0))
		die("cannot reset the disk image");
	memset(routes, 0, sizeof(routes));
	memset(ioev, 0, sizeof(ioev));
	route_adds = 0;
	fail_add_from = h1 & 7;
	fail_set = h1 & 8;
	ioev_fail = h0 & 0x10;
	intx_level = 0;
	n_base_tasks = list_tasks(base_tasks, MAX_TASKS);
	int fds = count_fds();

	host = pci_host_create(&windows);
	if (!host)
		die("pci_host_create failed");
	struct virtio_pci_env env = {
	    .host = host,
	    .mem = &mem,
	    .msi = (h0 & 4) ? &fake_msi : NULL,
	    .intx = {intx_set, NULL, intx_gsi},
	    .ioevent = (h0 & 8) ? &fake_ioevent : NULL,
	};
	struct err e = {{0}};
	static struct virtio_blk_stats stats;
	struct virtio_blk *blk = virtio_blk_create(&env, DEVFN, disk, r.nq, &stats, "virtio-blk fuzz", &e);
	if (!blk)
		die("virtio_blk_create failed: %s", e.msg);
	if (h0 & 0x80)
		cfg_write(0x04, 6, 2);

	for (unsigned ops = 0; in.n && ops < MAX_OPS; ops++) {
		switch (u8(&in) % NOPS) {
		case 0:
			op_cfg(&in);
			break;
		case 1:
			op_mmio(&in);
			break;
		case 2:
			op_mem(&in);
			break;
		case 3:
			op_memset(&in);
			break;
		case 4:
			op_kick(&in);
			break;
		case 5:
			op_desc(&in, &r, false);
			break;
		case 6:
			op_desc(&in, &r, true);
			break;
		case 7:
			op_avail(&in, &r);
			break;
		case 8:
			op_bringup(&in, &r);
			break;
		case 9:
			op_req(&in, &r);
			break;
		case 10:
			op_irq();
			break;
		case 11:
			op_pcicfg(&in);
			break;
		}
	}

	virtio_blk_destroy(blk);
	pci_host_destroy(host);
	host = NULL;
	unwatch_all();
	for (unsigned i = 0; i < MAX_ROUTES; i++)
		if (routes[i].live)
			die("an MSI route outlived the device");
	for (unsigned i = 0; i < MAX_IOEV; i++)
		if (ioev[i].live)
			die("an ioeventfd outlived the device");
	if (__atomic_load_n(&intx_level, __ATOMIC_SEQ_CST))
		die("INTx left asserted after teardown");
	if (fds >= 0 && count_fds() != fds)
		die("file descriptors leaked");
	return 0;
}
