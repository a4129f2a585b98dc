/* SPDX-License-Identifier: MIT */
/*
 * The public libkvmini API. A supervisor thread owns the machine: it starts
 * it, waits for a stop, and on a guest reboot builds a fresh machine from the
 * same configuration (unless no_reboot). Callers' threads only read state
 * under k->lock and feed the console.
 */
#include "kvmini.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "devices/disk/disk.h"
#include "devices/serial.h"
#include "net/backend.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vmm/api/server.h"
#include "vmm/arch/arch.h"
#include "vmm/boot_file.h"
#include "vmm/migration/machine_state.h"
#include "vmm/migration/net.h"
#include "vmm/migration/precopy.h"
#include "vmm/kvm.h"
#include "vmm/sandbox.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct kvmini_vm {
	struct kvmini_config cfg;
	char *kernel_path, *initrd_path, *cmdline, *kvm_device;
	struct boot_file kernel, initrd; /* read again for each machine built (vmm/boot_file.h) */
	/* Opened once, kept open (and locked) across guest reboots. */
	struct disk *disks[KVMINI_MAX_DISKS];
	unsigned ndisks;
	struct net_backend *nics[KVMINI_MAX_NICS];
	uint8_t macs[KVMINI_MAX_NICS][6];
	unsigned nnics;
	/* NIC counters and link state, kept across the machines a guest reboot builds. */
	struct virtio_net_shared net_shared[KVMINI_MAX_NICS];
	/* Disk and vCPU counters, kept likewise. */
	struct virtio_blk_stats blk_stats[KVMINI_MAX_DISKS];
	struct vcpu_stats vcpu_stats[KVMINI_MAX_CPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond; /* exit set, machine swapped, or console room */
	/* The machine's stop notification has its own lock: vm_stop() may run with k->lock held. */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	struct vm *vm;	/* the current machine; NULL between boots */
	bool host_stop; /* kvmini_vm_stop() was called */
	bool started;
	/*
	 * Serialises pause, resume and reset with the supervisor's swap of
	 * machines; taken before k->lock, never held while waiting for a stop.
	 */
	pthread_mutex_t ctl_lock;
	bool paused;	/* under ctl_lock and lock: applied to each new machine */
	bool reset_req; /* kvmini_vm_reset(): rebuild even with no_reboot */
	bool announce;	/* restored or migrated in: NICs announce the guest once it runs */
	struct timespec start_time;
	uint64_t create_ns, first_run_ns; /* kvmini_vm_create() entered; the first KVM_RUN (0: none yet) */
	/* Event watchers; ev_lock is held while calling them (they must be quick). */
	pthread_mutex_t ev_lock;
	struct {
		void (*cb)(void *opaque, const struct kvmini_event *ev);
		void *opaque;
	} watchers[KVMINI_MAX_WATCHERS];
	enum kvmini_exit exit;
	int exit_status; /* KVMINI_EXIT_GUEST_STATUS: the guest's byte */
	/* Console output kept for kvmini_console_wait() (under lock; cond is signalled on growth). */
	char *cap;
	size_t cap_len, cap_size, cap_scan; /* cap_scan: where the next wait starts looking */
	struct err err;			    /* why the VM ended with KVMINI_EXIT_ERROR */
	int stopped_fd;			    /* eventfd, readable once exit is set */
	pthread_t supervisor;
	struct api_server *api; /* cfg.api_sock */
	int migrate_cancel;	/* atomic: kvmini_vm_migrate_cancel() */
	bool mig_active;	/* under lock: a migration uses vm; the supervisor waits before freeing it */
	/* cfg.console_in_fd: a thread copies it to the UART until EOF or in_quit_fd. */
	pthread_t in_thread;
	bool in_started;
	int in_quit_fd;
	/* Opened once: a guest reboot builds its machine on it (no path is opened after the jail). */
	int kvm_fd;
	char *jail;		      /* cfg.jail, copied */
	struct sandbox_helper helper; /* removes the socket and macvtaps once we are gone */
};

void kvmini_config_init(struct kvmini_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->mem_bytes = 512ULL << 20;
	cfg->console_out_fd = STDOUT_FILENO;
	cfg->console_in_fd = -1;
	cfg->incoming_cancel_fd = -1;
	cfg->shutdown_timeout_s = 30;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Appends guest output to the capture buffer, keeping its last KVMINI_CONSOLE_KEEP bytes. */
static void capture(struct kvmini_vm *k, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&k->lock);
	if (len > KVMINI_CONSOLE_KEEP) {
		buf += len - KVMINI_CONSOLE_KEEP;
		len = KVMINI_CONSOLE_KEEP;
	}
	if (k->cap_len + len > KVMINI_CONSOLE_KEEP) {
		size_t drop = k->cap_len + len - KVMINI_CONSOLE_KEEP;
		memmove(k->cap, k->cap + drop, k->cap_len - drop);
		k->cap_len -= drop;
		k->cap_scan = k->cap_scan > drop ? k->cap_scan - drop : 0;
	}
	if (k->cap_len + len > k->cap_size) {
		size_t want = k->cap_size ? k->cap_size : 4096;
		while (want < k->cap_len + len)
			want *= 2;
		char *c = realloc(k->cap, want);
		if (!c) {
			pthread_mutex_unlock(&k->lock);
			return; /* out of memory: waits see less output, the guest runs on */
		}
		k->cap = c;
		k->cap_size = want;
	}
	memcpy(k->cap + k->cap_len, buf, len);
	k->cap_len += len;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

static void console_tx(void *opaque, const uint8_t *buf, size_t len)
{
	struct kvmini_vm *k = opaque;
	if (k->cfg.console_cb)
		k->cfg.console_cb(k->cfg.console_cb_opaque, buf, len);
	capture(k, buf, len);
	int fd = k->cfg.console_out_fd;
	while (fd >= 0 && len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the reader went away: guest output is dropped, the guest runs on */
		buf += n;
		len -= n;
	}
}

static void console_rx_space(void *opaque)
{
	struct kvmini_vm *k = opaque;
	pthread_mutex_lock(&k->lock);
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

static void machine_stopped(void *opaque)
{
	struct kvmini_vm *k = opaque;
	pthread_mutex_lock(&k->stop_lock);
	pthread_cond_broadcast(&k->stop_cond);
	pthread_mutex_unlock(&k->stop_lock);
}

static int build_with(struct kvmini_vm *k, const uint8_t *kernel, size_t kernel_len, const uint8_t *initrd,
		      size_t initrd_len, struct vm **out, struct err *e);

/* A machine for k: the kernel and initrd are read for it and let go of once it is built. */
static int build_machine(struct kvmini_vm *k, struct vm **out, struct err *e)
{
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t kernel_len = 0, initrd_len = 0;
	int r = boot_file_load(&k->kernel, &kernel, &kernel_len, e);
	if (!r && k->initrd.fd >= 0)
		r = boot_file_load(&k->initrd, &initrd, &initrd_len, e);
	if (!r)
		r = build_with(k, kernel, kernel_len, initrd, initrd_len, out, e);
	boot_file_unload(kernel, kernel_len);
	boot_file_unload(initrd, initrd_len);
	return r;
}

static int build_with(struct kvmini_vm *k, const uint8_t *kernel, size_t kernel_len, const uint8_t *initrd,
		      size_t initrd_len, struct vm **out, struct err *e)
{
	struct vm_params p = {
	    .kvm_device = k->kvm_device,
	    .kvm_fd = k->kvm_fd >= 0 ? &k->kvm_fd : NULL,
	    .ncpus = k->cfg.cpus,
	    .mem_bytes = k->cfg.mem_bytes,
	    .mem_opts = {.hugepages = k->cfg.mem_hugepages,
			 .merge = k->cfg.mem_merge,
			 .shared = k->cfg.mem_shared},
	    .kernel = kernel,
	    .kernel_len = kernel_len,
	    .initrd = initrd,
	    .initrd_len = initrd_len,
	    .cmdline = k->cmdline,
	    .vcpu_stats = k->vcpu_stats,
	    .first_run_ns = &k->first_run_ns,
	    .console_tx = console_tx,
	    .console_rx_space = console_rx_space,
	    .console_opaque = k,
	    .disks = k->disks,
	    .blk_stats = k->blk_stats,
	    .ndisks = k->ndisks,
	    .nics = k->nics,
	    .net_shared = k->net_shared,
	    .macs = (const uint8_t(*)[6])k->macs,
	    .nnics = k->nnics,
	    .on_stop = machine_stopped,
	    .on_stop_opaque = k,
	};
	return vm_create(&p, out, e);
}

static void finish(struct kvmini_vm *k, enum kvmini_exit why)
{
	/* Called with k->lock held. */
	k->exit = why;
	uint64_t one = 1;
	if (write(k->stopped_fd, &one, sizeof(one)) < 0) {
		/* An eventfd write only fails on counter overflow, which one write cannot cause. */
	}
	pthread_cond_broadcast(&k->cond);
}

static int restore(struct kvmini_vm *k, const char *path, struct err *e);
static int incoming(struct kvmini_vm *k, const char *uri, struct err *e);

/* Tells every watcher; called without k->lock (watchers may read state). */
static void emit(struct kvmini_vm *k, const struct kvmini_event *ev)
{
	pthread_mutex_lock(&k->ev_lock);
	for (unsigned i = 0; i < KVMINI_MAX_WATCHERS; i++)
		if (k->watchers[i].cb)
			k->watchers[i].cb(k->watchers[i].opaque, ev);
	pthread_mutex_unlock(&k->ev_lock);
}

static void *supervisor(void *arg)
{
	struct kvmini_vm *k = arg;
	pthread_mutex_lock(&k->lock);
	for (;;) {
		struct vm *vm = k->vm;
		pthread_mutex_unlock(&k->lock);
		pthread_mutex_lock(&k->stop_lock);
		while (__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) == VM_STOP_NONE)
			pthread_cond_wait(&k->stop_cond, &k->stop_lock);
		pthread_mutex_unlock(&k->stop_lock);
		enum vm_stop_reason why = vm->stop_reason;
		int status = vm->exit_status; /* written before stop_reason, under vm->lock */
		/* A migration reading this machine gives up before it goes. */
		pthread_mutex_lock(&k->lock);
		while (k->mig_active) {
			__atomic_store_n(&k->migrate_cancel, 1, __ATOMIC_RELAXED);
			pthread_cond_wait(&k->cond, &k->lock);
		}
		pthread_mutex_unlock(&k->lock);
		pthread_mutex_lock(&k->ctl_lock);
		pthread_mutex_lock(&k->lock);
		k->vm = NULL;
		pthread_cond_broadcast(
		    &k->cond); /* console writers must not wait on a machine that is gone */
		pthread_mutex_unlock(&k->lock);

		struct err e = {{0}};
		if (why == VM_STOP_ERROR)
			err_set(&e, -EIO, "%s", err_msg(&vm->err));
		vm_destroy(vm);
		vm = NULL;
		bool by_host = k->reset_req;
		k->reset_req = false;
		if (why == VM_STOP_RESET && (by_host || !k->cfg.no_reboot) && !k->host_stop) {
			int r = build_machine(k, &vm, &e);
			if (!r) {
				if (k->paused)
					vm_pause(vm); /* a reset keeps a paused VM paused */
				if ((r = vm_start(vm, &e))) {
					vm_destroy(vm);
					vm = NULL;
				}
			}
			if (!r) {
				pthread_mutex_lock(&k->lock);
				k->vm = vm;
				if (k->host_stop)
					vm_stop(vm, VM_STOP_HOST);
				pthread_cond_broadcast(&k->cond);
				pthread_mutex_unlock(&k->lock);
				pthread_mutex_unlock(&k->ctl_lock);
				emit(k,
				     &(struct kvmini_event){.kind = KVMINI_EVENT_RESET, .by_host = by_host});
				pthread_mutex_lock(&k->lock);
				continue;
			}
			why = VM_STOP_ERROR;
		}
		pthread_mutex_lock(&k->lock);
		if (why == VM_STOP_ERROR)
			err_set(&k->err, -EIO, "%s", err_msg(&e));
		if (why == VM_STOP_GUEST_EXIT)
			k->exit_status = status;
		finish(k, why == VM_STOP_POWEROFF     ? KVMINI_EXIT_POWEROFF
			  : why == VM_STOP_RESET      ? KVMINI_EXIT_REBOOT
			  : why == VM_STOP_HOST	      ? KVMINI_EXIT_STOPPED
			  : why == VM_STOP_PANIC      ? KVMINI_EXIT_PANIC
			  : why == VM_STOP_GUEST_EXIT ? KVMINI_EXIT_GUEST_STATUS
						      : KVMINI_EXIT_ERROR);
		break;
	}
	struct kvmini_event ev = {.kind = KVMINI_EVENT_STOPPED, .exit = k->exit, .status = k->exit_status};
	pthread_mutex_unlock(&k->lock);
	pthread_mutex_unlock(&k->ctl_lock);
	emit(k, &ev);
	return NULL;
}

static int check_config(const struct kvmini_config *cfg, struct err *e)
{
	if (!cfg->kernel_path)
		return err_set(e, -EINVAL, "no kernel given (--kernel PATH)");
	if (cfg->cpus < 1 || cfg->cpus > KVMINI_MAX_CPUS)
		return err_set(e, -EINVAL, "cpus must be between 1 and %d, not %u", KVMINI_MAX_CPUS,
			       cfg->cpus);
	if (cfg->mem_bytes < KVMINI_MIN_MEM)
		return err_set(e, -EINVAL, "mem of %llu KiB is too small: at least %llu MiB are needed",
			       (unsigned long long)(cfg->mem_bytes >> 10), KVMINI_MIN_MEM >> 20);
	if (cfg->mem_bytes % 4096)
		return err_set(e, -EINVAL, "mem must be a multiple of 4 KiB");
	if (cfg->mem_hugepages && cfg->mem_bytes % (2ULL << 20))
		return err_set(e, -EINVAL, "mem must be a multiple of 2 MiB with mem_hugepages");
	if (cfg->mem_merge && (cfg->mem_hugepages || cfg->mem_shared))
		return err_set(
		    e, -EINVAL,
		    "mem_merge (KSM) works on private memory only: not with mem_hugepages or mem_shared");
	if (cfg->ndisks > KVMINI_MAX_DISKS)
		return err_set(e, -EINVAL, "at most %d disks, not %u", KVMINI_MAX_DISKS, cfg->ndisks);
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct kvmini_disk *d = &cfg->disks[i];
		if (!d->path[0] || !memchr(d->path, '\0', sizeof(d->path)))
			return err_set(e, -EINVAL, "disk %u: no path, or one without its terminating NUL", i);
		if (!memchr(d->serial, '\0', sizeof(d->serial)))
			return err_set(e, -EINVAL, "%s: serial longer than %d bytes", d->path,
				       KVMINI_DISK_SERIAL_MAX);
		if (d->format > KVMINI_DISK_FORMAT_QCOW2)
			return err_set(e, -EINVAL, "%s: invalid format %d", d->path, (int)d->format);
	}
	if (cfg->nnics > KVMINI_MAX_NICS)
		return err_set(e, -EINVAL, "at most %d NICs, not %u", KVMINI_MAX_NICS, cfg->nnics);
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct kvmini_net *n = &cfg->nics[i];
		if (n->kind < KVMINI_NET_TAP || n->kind > KVMINI_NET_FD)
			return err_set(e, -EINVAL, "NIC %u: invalid kind %d", i, (int)n->kind);
		if (n->kind != KVMINI_NET_FD &&
		    (!n->ifname[0] || !memchr(n->ifname, '\0', sizeof(n->ifname))))
			return err_set(e, -EINVAL, "NIC %u: no interface name, or one of %d bytes or more", i,
				       KVMINI_IFNAMSIZ);
		if (!memchr(n->bridge, '\0', sizeof(n->bridge)))
			return err_set(e, -EINVAL, "NIC %u: bridge name of %d bytes or more", i,
				       KVMINI_IFNAMSIZ);
		if (n->queues > KVMINI_NET_MAX_QUEUES)
			return err_set(e, -EINVAL, "NIC %u: %u queue pairs (at most %d)", i, n->queues,
				       KVMINI_NET_MAX_QUEUES);
		if (n->mac_set && ((n->mac[0] & 1) ||
				   !(n->mac[0] | n->mac[1] | n->mac[2] | n->mac[3] | n->mac[4] | n->mac[5])))
			return err_set(e, -EINVAL, "NIC %u: the MAC address must be unicast and not zero", i);
		if (n->mode > KVMINI_MACVTAP_PASSTHRU)
			return err_set(e, -EINVAL, "NIC %u: invalid macvtap mode %d", i, (int)n->mode);
	}
	return 0;
}

_Static_assert(KVMINI_NET_MAX_QUEUES == NET_MAX_QUEUES, "queue pair limits differ");

/*
 * A stable MAC for NIC i when none is given: the locally administered
 * 52:54:00 prefix QEMU uses, then 24 bits of an FNV-1a hash of the NIC's
 * kind, interface and position, so the same command line gives the same
 * address every time and two taps give two addresses.
 */
static void default_mac(const struct kvmini_net *n, unsigned i, uint8_t mac[6])
{
	char key[64];
	int len = snprintf(key, sizeof(key), "%d/%s/%d/%u", (int)n->kind, n->ifname,
			   n->kind == KVMINI_NET_FD ? n->fd : 0, i);
	uint32_t h = 2166136261u;
	for (int j = 0; j < len; j++)
		h = (h ^ (uint8_t)key[j]) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int open_nics(struct kvmini_vm *k, const struct kvmini_config *cfg, struct err *e)
{
	static const enum net_macvtap_mode modes[] = {
	    [KVMINI_MACVTAP_BRIDGE] = NET_MACVTAP_BRIDGE,
	    [KVMINI_MACVTAP_VEPA] = NET_MACVTAP_VEPA,
	    [KVMINI_MACVTAP_PRIVATE] = NET_MACVTAP_PRIVATE,
	    [KVMINI_MACVTAP_PASSTHRU] = NET_MACVTAP_PASSTHRU,
	};
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct kvmini_net *n = &cfg->nics[i];
		if (n->mac_set)
			memcpy(k->macs[i], n->mac, 6);
		else
			default_mac(n, i, k->macs[i]);
		struct net_backend_config c = {
		    .kind = n->kind == KVMINI_NET_TAP	    ? NET_BACKEND_TAP
			    : n->kind == KVMINI_NET_MACVTAP ? NET_BACKEND_MACVTAP
							    : NET_BACKEND_FD,
		    .ifname = n->ifname,
		    .bridge = n->bridge[0] ? n->bridge : NULL,
		    .mode = modes[n->mode],
		    .fd = n->fd,
		    .queues = n->queues ? n->queues : 1,
		};
		memcpy(c.mac, k->macs[i], 6);
		struct err ne = {{0}};
		int r = net_backend_open(&c, &k->nics[i], &ne);
		if (r)
			return err_set(e, r, "--net %u: %s", i, err_msg(&ne));
		k->nnics = i + 1;
	}
	return 0;
}

_Static_assert(KVMINI_DISK_SERIAL_MAX == DISK_SERIAL_MAX, "disk serial lengths differ");
_Static_assert(KVMINI_DISK_PATH_MAX <= sizeof(((struct disk *)0)->path), "disk path lengths differ");

static int open_disks(struct kvmini_vm *k, const struct kvmini_config *cfg, struct err *e)
{
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct kvmini_disk *d = &cfg->disks[i];
		struct disk_config dc = {
		    .path = d->path,
		    .format = d->format == KVMINI_DISK_FORMAT_RAW     ? DISK_FORMAT_RAW
			      : d->format == KVMINI_DISK_FORMAT_QCOW2 ? DISK_FORMAT_QCOW2
								      : DISK_FORMAT_AUTO,
		    .readonly = d->readonly,
		    .cache = d->cache_none ? DISK_CACHE_NONE : DISK_CACHE_WRITEBACK,
		    .serial = d->serial[0] ? d->serial : NULL,
		    .no_backing = d->no_backing,
		    .cache_size = d->cache_size,
		    .defer_lock = cfg->incoming != NULL,
		    /* The source writes qcow2 metadata until the handover: read it after (disk_activate). */
		    .defer_meta = cfg->incoming != NULL,
		};
		struct err de = {{0}};
		int r = disk_open(&dc, &k->disks[i], &de);
		if (r == -EBUSY) {
			/* The lock that stopped us may be our own: one image given twice. */
			struct stat a, b;
			for (unsigned j = 0; j < i; j++)
				if (!stat(d->path, &a) && !stat(cfg->disks[j].path, &b) &&
				    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
					return err_set(e, r, "%s: given twice (vd%c and vd%c)", d->path,
						       'a' + j, 'a' + i);
		}
		if (r)
			return err_set(e, r, "%s", err_msg(&de));
		k->ndisks = i + 1;
	}
	return 0;
}

/* Whether the sandbox drops privileges (capabilities, ids, a jail), seccomp aside. */
static bool wants_drop(const struct kvmini_config *c)
{
	return c->drop_privileges || c->set_uid || c->set_gid || c->jail;
}

/* Whether kvmini_vm_start() enters a sandbox (vmm/sandbox.c). */
static bool sandboxed(const struct kvmini_config *c)
{
	return wants_drop(c) || c->seccomp != KVMINI_SECCOMP_OFF;
}

int kvmini_vm_create(const struct kvmini_config *cfg, struct kvmini_vm **out, char *errbuf, size_t errlen)
{
	struct err e = {{0}};
	*out = NULL;
	struct kvmini_vm *k = calloc(1, sizeof(*k));
	int r = -ENOMEM;
	if (!k) {
		err_set(&e, r, "out of memory");
		goto report;
	}
	k->stopped_fd = -1;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	k->create_ns = (uint64_t)t0.tv_sec * 1000000000ull + (uint64_t)t0.tv_nsec;
	k->in_quit_fd = -1;
	k->kvm_fd = -1;
	k->kernel.fd = k->initrd.fd = -1;
	k->helper.fd = -1;
	k->exit_status = -1;
	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&k->stop_lock, NULL);
	pthread_cond_init(&k->stop_cond, NULL);
	pthread_mutex_init(&k->ctl_lock, NULL);
	pthread_mutex_init(&k->ev_lock, NULL);
	k->cfg = *cfg;
	/* A bad socket path is a mistake worth reporting before the slow work. */
	if ((r = check_config(cfg, &e)) ||
	    (cfg->api_sock && (r = api_server_check_path(cfg->api_sock, &e))) ||
	    (cfg->jail && (r = sandbox_check_jail(cfg->jail, &e))))
		goto fail;
	if (cfg->jail && !(k->jail = strdup(cfg->jail))) {
		r = err_set(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	k->cfg.jail = k->jail;
	k->kernel_path = dup_or_null(cfg->kernel_path);
	k->initrd_path = dup_or_null(cfg->initrd_path);
	k->cmdline = strdup(cfg->cmdline ? cfg->cmdline : KVMINI_DEFAULT_CMDLINE);
	k->kvm_device = strdup(cfg->kvm_device ? cfg->kvm_device : "/dev/kvm");
	k->stopped_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	k->in_quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->in_quit_fd < 0 || !k->kernel_path || !k->cmdline || !k->kvm_device ||
	    (cfg->initrd_path && !k->initrd_path) || k->stopped_fd < 0) {
		r = err_set(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((r = boot_file_open(&k->kernel, "kernel", k->kernel_path, &e)))
		goto fail;
	if (k->initrd_path && (r = boot_file_open(&k->initrd, "initrd", k->initrd_path, &e)))
		goto fail;
	if ((r = open_disks(k, cfg, &e)) || (r = open_nics(k, cfg, &e)))
		goto fail;
	if ((r = kvm_open(k->kvm_device, &e)) < 0)
		goto fail;
	k->kvm_fd = r;
	if ((r = build_machine(k, &k->vm, &e)))
		goto fail;
	if (cfg->restore_path && (r = restore(k, cfg->restore_path, &e)))
		goto fail;
	if (cfg->incoming && (r = incoming(k, cfg->incoming, &e)))
		goto fail;
	k->announce = cfg->restore_path || cfg->incoming;
	k->cfg.incoming = NULL;
	k->cfg.restore_path = NULL; /* the caller's string; a reset boots afresh */
	if (cfg->api_sock && (r = api_server_open(k, cfg->api_sock, &k->api, &e)))
		goto fail;
	/* With a sandbox, its thread starts after it (kvmini_vm_start()). */
	if (k->api && !sandboxed(cfg) && (r = api_server_start(k->api, &e)))
		goto fail;
	k->cfg.api_sock = NULL; /* the caller's string: not kept */
	*out = k;
	return 0;
fail:
	kvmini_vm_destroy(k);
report:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", err_msg(&e));
	return r;
}

static void *console_in_thread(void *arg)
{
	struct kvmini_vm *k = arg;
	char buf[512];
	for (;;) {
		struct pollfd p[2] = {{k->cfg.console_in_fd, POLLIN, 0}, {k->in_quit_fd, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = read(k->cfg.console_in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0 || kvmini_console_write(k, buf, n) < 0)
			break;
	}
	return NULL;
}

/*
 * The sandbox (vmm/sandbox.c) on the calling thread, before any other kvmini
 * thread exists: what needs privilege to clean up goes to the helper.
 */
static int enter_sandbox(struct kvmini_vm *k, struct err *e)
{
	const struct kvmini_config *c = &k->cfg;
	struct sandbox_config sc = {
	    .drop = wants_drop(c),
	    .set_uid = c->set_uid,
	    .uid = c->uid,
	    .set_gid = c->set_gid,
	    .gid = c->gid,
	    .jail = c->jail,
	    .seccomp = c->seccomp == KVMINI_SECCOMP_ON	  ? SB_SECCOMP_ON
		       : c->seccomp == KVMINI_SECCOMP_LOG ? SB_SECCOMP_LOG
							  : SB_SECCOMP_OFF,
	};
	if (!sandboxed(c))
		return 0;
	bool given[KVMINI_MAX_NICS] = {false};
	if (sc.drop) {
		for (unsigned i = 0; i < k->nnics; i++) {
			struct net_backend *nb = k->nics[i];
			if (nb->kind == NET_BACKEND_MACVTAP && nb->created && nb->ifindex > 0 &&
			    sc.nlinks < SB_MAX_CLEANUP_LINKS) {
				sc.links[sc.nlinks++] = nb->ifindex;
				given[i] = true;
			}
		}
		if (k->api)
			sc.sock_path = api_server_path(k->api);
	}
	int r = sandbox_enter(&sc, &k->helper, e);
	if (k->helper.pid) {
		/* The helper removes them: we will lack CAP_NET_ADMIN, and a jail hides the socket's path. */
		for (unsigned i = 0; i < k->nnics; i++)
			if (given[i])
				k->nics[i]->created = false;
		if (sc.sock_path)
			api_server_forget_path(k->api);
	}
	return r;
}

int kvmini_vm_start(struct kvmini_vm *k)
{
	pthread_mutex_lock(&k->lock);
	if (k->started || !k->vm) {
		pthread_mutex_unlock(&k->lock);
		return -EALREADY;
	}
	struct err e = {{0}};
	int r = enter_sandbox(k, &e);
	if (!r && k->api)
		r = api_server_start(k->api, &e);
	if (!r)
		r = vm_start(k->vm, &e);
	if (!r) {
		r = -sandbox_thread_create(&k->supervisor, SB_SUPERVISOR, supervisor, k);
		if (r)
			vm_stop(k->vm, VM_STOP_HOST);
	}
	if (r) {
		err_set(&k->err, r, "%s", e.msg[0] ? e.msg : "cannot start the supervisor thread");
		/* Nobody supervises: end the VM here so that waiters return. */
		struct vm *vm = k->vm;
		k->vm = NULL;
		pthread_mutex_unlock(&k->lock);
		vm_destroy(vm);
		pthread_mutex_lock(&k->lock);
		finish(k, KVMINI_EXIT_ERROR);
	} else {
		k->started = true;
		/* The guest's MAC now sits behind another port (or host): its driver sends
		 * gratuitous ARPs and neighbour advertisements when asked (GUEST_ANNOUNCE). */
		for (unsigned i = 0; k->announce && i < k->vm->nnets; i++)
			virtio_net_announce(k->vm->nets[i]);
		clock_gettime(CLOCK_MONOTONIC, &k->start_time);
		if (k->cfg.console_in_fd >= 0 && k->in_quit_fd >= 0 &&
		    sandbox_thread_create(&k->in_thread, SB_CONSOLE, console_in_thread, k) == 0)
			k->in_started = true;
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* The monotonic deadline timeout_ms from now (k->cond waits on CLOCK_MONOTONIC). */
static struct timespec deadline(int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	return dl;
}

/* One wait on k->cond (k->lock held); false once the deadline passed (timeout_ms >= 0). */
static bool wait_cond(struct kvmini_vm *k, int timeout_ms, const struct timespec *dl)
{
	if (timeout_ms < 0) {
		pthread_cond_wait(&k->cond, &k->lock);
		return true;
	}
	return pthread_cond_timedwait(&k->cond, &k->lock, dl) != ETIMEDOUT;
}

enum kvmini_exit kvmini_vm_wait(struct kvmini_vm *k, int timeout_ms)
{
	struct timespec dl = deadline(timeout_ms < 0 ? 0 : timeout_ms);
	pthread_mutex_lock(&k->lock);
	while (k->exit == KVMINI_EXIT_NONE && wait_cond(k, timeout_ms, &dl))
		;
	enum kvmini_exit x = k->exit;
	pthread_mutex_unlock(&k->lock);
	return x;
}

int kvmini_console_wait(struct kvmini_vm *k, const char *pattern, int timeout_ms)
{
	size_t plen = strlen(pattern);
	if (!plen || plen > KVMINI_CONSOLE_KEEP)
		return -EINVAL;
	struct timespec dl = deadline(timeout_ms < 0 ? 0 : timeout_ms);
	int r;
	pthread_mutex_lock(&k->lock);
	for (;;) {
		const char *hit =
		    k->cap ? memmem(k->cap + k->cap_scan, k->cap_len - k->cap_scan, pattern, plen) : NULL;
		if (hit) {
			k->cap_scan = (size_t)(hit - k->cap) + plen;
			r = 0;
			break;
		}
		if (k->exit != KVMINI_EXIT_NONE) {
			r = -EPIPE;
			break;
		}
		if (!wait_cond(k, timeout_ms, &dl)) {
			r = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

int kvmini_vm_stopped_fd(struct kvmini_vm *k)
{
	return k->stopped_fd;
}

void kvmini_vm_stop(struct kvmini_vm *k)
{
	pthread_mutex_lock(&k->lock);
	k->host_stop = true;
	if (k->vm)
		vm_stop(k->vm, VM_STOP_HOST);
	pthread_mutex_unlock(&k->lock);
}

ssize_t kvmini_console_write(struct kvmini_vm *k, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;
	pthread_mutex_lock(&k->lock);
	while (done < len) {
		if (k->exit != KVMINI_EXIT_NONE || k->host_stop) {
			pthread_mutex_unlock(&k->lock);
			return -EPIPE;
		}
		size_t n = k->vm ? serial_rx_push(k->vm->serial, p + done, len - done) : 0;
		done += n;
		if (n == 0)
			pthread_cond_wait(&k->cond, &k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	return (ssize_t)len;
}

int kvmini_vm_net_stats(struct kvmini_vm *k, unsigned nic, struct kvmini_net_stats *out)
{
	if (nic >= k->nnics)
		return -EINVAL;
	struct virtio_net_stats s;
	virtio_net_stats(&k->net_shared[nic], &s);
	*out = (struct kvmini_net_stats){
	    .rx_packets = s.rx_packets,
	    .rx_bytes = s.rx_bytes,
	    .rx_dropped = s.rx_dropped,
	    .rx_errors = s.rx_errors,
	    .tx_packets = s.tx_packets,
	    .tx_bytes = s.tx_bytes,
	    .tx_dropped = s.tx_dropped,
	    .tx_errors = s.tx_errors,
	    .rx_notifications = s.rx_notifications,
	    .tx_notifications = s.tx_notifications,
	    .ctrl_notifications = s.ctrl_notifications,
	    .rx_interrupts = s.rx_interrupts,
	    .tx_interrupts = s.tx_interrupts,
	    .ctrl_interrupts = s.ctrl_interrupts,
	    .link_up = s.link_up,
	};
	return 0;
}

_Static_assert(KVMINI_DISK_LAT_BUCKETS == VIRTIO_BLK_LAT_BUCKETS, "latency histograms differ");

int kvmini_vm_disk_stats(struct kvmini_vm *k, unsigned disk, struct kvmini_disk_stats *out)
{
	if (disk >= k->ndisks)
		return -EINVAL;
	const struct virtio_blk_stats *s = &k->blk_stats[disk];
#define GET(f) __atomic_load_n(&s->f, __ATOMIC_RELAXED)
	*out = (struct kvmini_disk_stats){
	    .read_reqs = GET(read_reqs),
	    .read_bytes = GET(read_bytes),
	    .write_reqs = GET(write_reqs),
	    .write_bytes = GET(write_bytes),
	    .flush_reqs = GET(flush_reqs),
	    .discard_reqs = GET(discard_reqs),
	    .discard_bytes = GET(discard_bytes),
	    .write_zeroes_reqs = GET(write_zeroes_reqs),
	    .write_zeroes_bytes = GET(write_zeroes_bytes),
	    .get_id_reqs = GET(get_id_reqs),
	    .other_reqs = GET(other_reqs),
	    .errors_ioerr = GET(ioerr),
	    .errors_unsupp = GET(unsupp),
	    .notifications = GET(notifications),
	    .interrupts = GET(interrupts),
	    .lat_sum_ns = GET(lat_sum_ns),
	};
	for (unsigned i = 0; i < KVMINI_DISK_LAT_BUCKETS; i++)
		out->lat_hist[i] = GET(lat_hist[i]);
#undef GET
	out->requests = out->read_reqs + out->write_reqs + out->flush_reqs + out->discard_reqs +
			out->write_zeroes_reqs + out->get_id_reqs + out->other_reqs;
	return 0;
}

int kvmini_vm_vcpu_stats(struct kvmini_vm *k, unsigned cpu, struct kvmini_vcpu_stats *out)
{
	if (cpu >= k->cfg.cpus)
		return -EINVAL;
	uint64_t x[VCPU_EXIT_KINDS];
	for (unsigned i = 0; i < VCPU_EXIT_KINDS; i++)
		x[i] = __atomic_load_n(&k->vcpu_stats[cpu].exits[i], __ATOMIC_RELAXED);
	*out = (struct kvmini_vcpu_stats){
	    .exits_io = x[VCPU_EXIT_IO],
	    .exits_mmio = x[VCPU_EXIT_MMIO],
	    .exits_intr = x[VCPU_EXIT_INTR],
	    .exits_kick = x[VCPU_EXIT_KICK],
	    .exits_hlt = x[VCPU_EXIT_HLT],
	    .exits_shutdown = x[VCPU_EXIT_SHUTDOWN],
	    .exits_system_event = x[VCPU_EXIT_SYSTEM_EVENT],
	    .exits_internal_error = x[VCPU_EXIT_INTERNAL_ERROR],
	    .exits_fail_entry = x[VCPU_EXIT_FAIL_ENTRY],
	    .exits_other = x[VCPU_EXIT_OTHER],
	};
	for (unsigned i = 0; i < VCPU_EXIT_KINDS; i++)
		out->exits_total += x[i];
	return 0;
}

int kvmini_vm_shutdown(struct kvmini_vm *k)
{
	int r = 0;
	pthread_mutex_lock(&k->lock);
	if (k->exit != KVMINI_EXIT_NONE || k->host_stop)
		r = -EPIPE;
	else if (k->vm)
		r = arch_power_button(k->vm);
	/* Between two machines of a guest reboot there is no button: the guest is not up to hear it. */
	pthread_mutex_unlock(&k->lock);
	if (!r)
		emit(k, &(struct kvmini_event){.kind = KVMINI_EVENT_SHUTDOWN_REQUESTED});
	return r;
}

int kvmini_vm_exit_status(struct kvmini_vm *k)
{
	pthread_mutex_lock(&k->lock);
	int status = k->exit == KVMINI_EXIT_GUEST_STATUS ? k->exit_status : -1;
	pthread_mutex_unlock(&k->lock);
	return status;
}

const char *kvmini_vm_error(struct kvmini_vm *k)
{
	return err_msg(&k->err);
}

void kvmini_vm_destroy(struct kvmini_vm *k)
{
	if (!k)
		return;
	if (k->started) {
		kvmini_vm_stop(k);
		pthread_join(k->supervisor, NULL);
	}
	if (k->in_started) {
		/* kvmini_console_write() returns -EPIPE now that the VM has stopped. */
		uint64_t one = 1;
		if (write(k->in_quit_fd, &one, sizeof(one)) < 0) {
			/* cannot fail: the counter is 0 or 1 */
		}
		pthread_join(k->in_thread, NULL);
	}
	if (k->in_quit_fd >= 0)
		close(k->in_quit_fd);
	/* After the supervisor: the last event (stopped) has been queued, and goes out now. */
	api_server_close(k->api);
	vm_destroy(k->vm);
	/* After the machine: its devices may use the disks until vm_destroy() returns. */
	for (unsigned i = 0; i < k->ndisks; i++)
		disk_close(k->disks[i]);
	for (unsigned i = 0; i < k->nnics; i++)
		net_backend_close(k->nics[i]);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	/* Last: the helper removes the socket and macvtaps once everything else is closed. */
	sandbox_helper_finish(&k->helper);
	free(k->jail);
	if (k->stopped_fd >= 0)
		close(k->stopped_fd);
	free(k->kernel_path);
	free(k->initrd_path);
	free(k->cmdline);
	free(k->kvm_device);
	boot_file_close(&k->kernel);
	boot_file_close(&k->initrd);
	free(k->cap);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	pthread_cond_destroy(&k->stop_cond);
	pthread_mutex_destroy(&k->stop_lock);
	pthread_mutex_destroy(&k->ctl_lock);
	pthread_mutex_destroy(&k->ev_lock);
	free(k);
}

int kvmini_vm_pause(struct kvmini_vm *k)
{
	int r = 0;
	pthread_mutex_lock(&k->ctl_lock);
	pthread_mutex_lock(&k->lock);
	if (k->exit != KVMINI_EXIT_NONE || k->host_stop)
		r = -EPIPE;
	else if (k->paused)
		r = -EALREADY;
	else
		k->paused = true;
	struct vm *vm = k->vm;
	pthread_mutex_unlock(&k->lock);
	/* Without k->lock: parking vCPUs may need it to finish their console output. */
	if (!r && vm)
		vm_pause(vm);
	pthread_mutex_unlock(&k->ctl_lock);
	if (!r)
		emit(k, &(struct kvmini_event){.kind = KVMINI_EVENT_PAUSED});
	return r;
}

int kvmini_vm_resume(struct kvmini_vm *k)
{
	int r = 0;
	pthread_mutex_lock(&k->ctl_lock);
	pthread_mutex_lock(&k->lock);
	if (k->exit != KVMINI_EXIT_NONE || k->host_stop)
		r = -EPIPE;
	else if (!k->paused)
		r = -EALREADY;
	else
		k->paused = false;
	struct vm *vm = k->vm;
	pthread_mutex_unlock(&k->lock);
	if (!r && vm)
		vm_resume(vm);
	pthread_mutex_unlock(&k->ctl_lock);
	if (!r)
		emit(k, &(struct kvmini_event){.kind = KVMINI_EVENT_RESUMED});
	return r;
}

int kvmini_vm_reset(struct kvmini_vm *k)
{
	int r = 0;
	pthread_mutex_lock(&k->ctl_lock);
	pthread_mutex_lock(&k->lock);
	if (k->exit != KVMINI_EXIT_NONE || k->host_stop || !k->started)
		r = -EPIPE;
	else if (k->vm) {
		k->reset_req = true;
		vm_stop(k->vm, VM_STOP_RESET);
	}
	pthread_mutex_unlock(&k->lock);
	pthread_mutex_unlock(&k->ctl_lock);
	return r;
}

enum kvmini_state kvmini_vm_state(struct kvmini_vm *k)
{
	pthread_mutex_lock(&k->lock);
	enum kvmini_state s = k->exit != KVMINI_EXIT_NONE ? KVMINI_STATE_STOPPED
			      : !k->started		  ? KVMINI_STATE_CREATED
			      : k->paused		  ? KVMINI_STATE_PAUSED
							  : KVMINI_STATE_RUNNING;
	pthread_mutex_unlock(&k->lock);
	return s;
}

uint64_t kvmini_vm_setup_us(struct kvmini_vm *k)
{
	uint64_t t = __atomic_load_n(&k->first_run_ns, __ATOMIC_RELAXED);
	return t > k->create_ns ? (t - k->create_ns) / 1000 : 0;
}

uint64_t kvmini_vm_uptime_ms(struct kvmini_vm *k)
{
	pthread_mutex_lock(&k->lock);
	struct timespec t0 = k->start_time;
	bool started = k->started;
	pthread_mutex_unlock(&k->lock);
	if (!started)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
}

int kvmini_vm_watch(struct kvmini_vm *k, void (*cb)(void *opaque, const struct kvmini_event *ev),
		    void *opaque)
{
	int id = -ENOSPC;
	pthread_mutex_lock(&k->ev_lock);
	for (unsigned i = 0; i < KVMINI_MAX_WATCHERS; i++)
		if (!k->watchers[i].cb) {
			k->watchers[i].cb = cb;
			k->watchers[i].opaque = opaque;
			id = (int)i;
			break;
		}
	pthread_mutex_unlock(&k->ev_lock);
	return id;
}

void kvmini_vm_unwatch(struct kvmini_vm *k, int id)
{
	if (id < 0 || id >= KVMINI_MAX_WATCHERS)
		return;
	pthread_mutex_lock(&k->ev_lock);
	k->watchers[id].cb = NULL;
	k->watchers[id].opaque = NULL;
	pthread_mutex_unlock(&k->ev_lock);
}

const struct kvmini_config *kvmini_vm_config(struct kvmini_vm *k)
{
	return &k->cfg;
}

int kvmini_vm_disk_info(struct kvmini_vm *k, unsigned disk, struct kvmini_disk_info *out)
{
	if (disk >= k->ndisks)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "vd%c", (char)('a' + disk));
	out->format = k->disks[disk]->ops->format;
	out->size = k->disks[disk]->size;
	return 0;
}

int kvmini_vm_net_info(struct kvmini_vm *k, unsigned nic, struct kvmini_net_info *out)
{
	if (nic >= k->nnics)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "net%u", (unsigned char)nic);
	snprintf(out->ifname, sizeof(out->ifname), "%s", k->nics[nic]->ifname);
	memcpy(out->mac, k->macs[nic], 6);
	out->queues = k->nics[nic]->nqueues;
	return 0;
}

const char *kvmini_vm_cmdline(struct kvmini_vm *k)
{
	return k->cmdline;
}

/*
 * What k's machine vm is, for CONFIG: the configuration and the CPU's
 * description (x86: vCPU 0's CPUID). Every save, restore and migration
 * starts here, so an architecture without saved state refuses them here.
 */
static int describe(const struct kvmini_vm *k, struct vm *vm, struct machine_desc *m, struct err *e)
{
	memset(m, 0, sizeof(*m));
	int r = arch_migration_check(e);
	if (r)
		return r;
	m->ncpus = k->cfg.cpus;
	m->mem_bytes = k->cfg.mem_bytes;
	m->ndisks = k->ndisks;
	for (unsigned i = 0; i < k->ndisks; i++) {
		m->disks[i].size = k->disks[i]->size;
		m->disks[i].readonly = k->disks[i]->readonly;
	}
	m->nnics = k->nnics;
	for (unsigned i = 0; i < k->nnics; i++) {
		memcpy(m->nics[i].mac, k->macs[i], 6);
		m->nics[i].queues = k->nics[i]->nqueues;
	}
	if (!vm)
		return 0;
	return arch_cpu_desc_fill(vm, &m->cpu, e);
}

_Static_assert(MACHINE_MAX_DISKS == KVMINI_MAX_DISKS && MACHINE_MAX_NICS == KVMINI_MAX_NICS,
	       "machine description limits differ");

/* Reads a whole stream from fd into k->vm, built and not started (cancel_fd: as for
 * stream_reader_open). */
static int load_stream(struct kvmini_vm *k, int fd, int cancel_fd, struct err *e)
{
	struct machine_desc m;
	struct stream_reader r;
	int rc = describe(k, k->vm, &m, e);
	if (!rc) {
		rc = stream_reader_open(&r, fd, cancel_fd, e);
		if (!rc)
			rc = machine_state_read(k->vm, &m, &r, e);
		stream_reader_destroy(&r);
	}
	return rc;
}

/* Loads the state at path into k->vm, built and not started. */
static int restore(struct kvmini_vm *k, const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "--restore %s: %s", path, strerror(errno));
	struct err se = {{0}};
	int rc = load_stream(k, fd, -1, &se);
	close(fd);
	if (rc)
		return err_set(e, rc, "--restore %s: %s", path, err_msg(&se));
	return 0;
}

/* Every disk's writes on stable storage (qcow2 metadata included), or the first error. */
static int flush_disks(struct kvmini_vm *k, struct err *e)
{
	for (unsigned i = 0; i < k->ndisks; i++) {
		int r = k->disks[i]->ops->flush(k->disks[i]);
		if (r)
			return err_set(e, r, "cannot flush %s: %s", k->disks[i]->path, strerror(-r));
	}
	return 0;
}

int kvmini_vm_save(struct kvmini_vm *k, const char *path, char *errbuf, size_t errlen)
{
	struct err e = {{0}};
	enum kvmini_state st = kvmini_vm_state(k);
	int r = 0;
	bool paused_here = false;
	if (st != KVMINI_STATE_RUNNING && st != KVMINI_STATE_PAUSED) {
		r = err_set(&e, -EPIPE, "the VM is not running");
		goto out;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = err_set(&e, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (st == KVMINI_STATE_RUNNING) {
		if ((r = kvmini_vm_pause(k))) {
			err_set(&e, r, "cannot pause the VM");
			close(fd);
			unlink(path);
			goto out;
		}
		paused_here = true;
	}
	/* No reset may swap the machine while it is written. */
	pthread_mutex_lock(&k->ctl_lock);
	struct vm *vm = k->vm;
	r = flush_disks(k, &e);
	if (!r && !vm)
		r = err_set(&e, -EPIPE, "the VM is not running");
	struct machine_desc m;
	if (!r)
		r = describe(k, vm, &m, &e);
	if (!r) {
		struct stream_writer *w = malloc(sizeof(*w));
		if (!w) {
			r = err_set(&e, -ENOMEM, "out of memory");
		} else {
			stream_writer_init(w, fd);
			r = machine_state_write(vm, &m, w, &e);
			free(w);
		}
	}
	if (!r && fsync(fd) < 0)
		r = err_set(&e, -errno, "%s: %s", path, strerror(errno));
	pthread_mutex_unlock(&k->ctl_lock);
	if (close(fd) < 0 && !r)
		r = err_set(&e, -errno, "%s: %s", path, strerror(errno));
	if (r) {
		unlink(path);
		if (paused_here)
			kvmini_vm_resume(k);
		goto out;
	}
	kvmini_vm_stop(k);
out:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", err_msg(&e));
	return r;
}

/*
 * The destination of a live migration: one connection, the whole stream
 * into the machine, then the disks' locks (the source lets them go once it
 * has sent END; a few seconds of retries cover that), then the answer.
 */
static int incoming(struct kvmini_vm *k, const char *uri, struct err *e)
{
	int lfd = migrate_listen(uri, e);
	if (lfd < 0)
		return lfd;
	int cancel = k->cfg.incoming_cancel_fd, r = 0;
	for (;;) {
		struct pollfd p[2] = {{lfd, POLLIN, 0}, {cancel, POLLIN, 0}};
		if (poll(p, cancel >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
			r = err_set(e, -errno, "--incoming %s: poll: %s", uri, strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			r = err_set(e, -EINTR, "--incoming %s: stopped while waiting for the source", uri);
			break;
		}
		if (p[0].revents)
			break;
	}
	int fd = r ? -1 : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (!r && fd < 0)
		r = err_set(e, -errno, "--incoming %s: accept: %s", uri, strerror(errno));
	close(lfd);
	if (r)
		return r;
	/* A source that goes silent without closing (a cut link) must not hold us for ever. */
	struct timeval tv = {.tv_sec = MIGRATE_IDLE_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct err se = {{0}};
	/*
	 * Device threads restarted by the load would look at their rings at
	 * once: keep them out until the disks are ours and their metadata read.
	 */
	quiesce_close(&k->vm->gate);
	r = load_stream(k, fd, cancel, &se);
	for (unsigned i = 0; !r && i < k->ndisks; i++) {
		for (int tries = 0;; tries++) {
			struct err le = {{0}};
			r = disk_lock(k->disks[i], &le);
			if (r != -EBUSY || tries == 100) {
				if (r)
					err_set(&se, r, "%s", err_msg(&le));
				break;
			}
			usleep(100000);
		}
	}
	/* The source wrote its metadata out before it let the locks go: read it now. */
	for (unsigned i = 0; !r && i < k->ndisks; i++) {
		struct err ae = {{0}};
		if ((r = disk_activate(k->disks[i], &ae)))
			err_set(&se, r, "%s", err_msg(&ae));
	}
	if (!r && cancel >= 0 && poll(&(struct pollfd){cancel, POLLIN, 0}, 1, 0) == 1)
		r = err_set(&se, -EINTR, "stopped before the handover");
	if (!r) {
		char ack = MIGRATE_ACK;
		if (write(fd, &ack, 1) != 1)
			r = err_set(&se, -errno, "cannot confirm to the source: %s", strerror(errno));
	}
	close(fd);
	if (r) {
		for (unsigned i = 0; i < k->ndisks; i++)
			disk_unlock(k->disks[i]);
		return err_set(e, r, "--incoming %s: %s", uri, err_msg(&se));
	}
	quiesce_open(&k->vm->gate);
	return 0;
}

static int mig_pause(void *opaque)
{
	int r = kvmini_vm_pause(opaque);
	return r == -EALREADY ? 0 : r;
}

static void mig_resume(void *opaque)
{
	kvmini_vm_resume(opaque);
}

/* Paused: everything on stable storage, qcow2 metadata included, and no more writes (disk_deactivate). */
static int mig_flush(void *opaque, struct err *e)
{
	struct kvmini_vm *k = opaque;
	int r = flush_disks(k, e);
	for (unsigned i = 0; !r && i < k->ndisks; i++)
		r = disk_deactivate(k->disks[i], e);
	return r;
}

static void mig_unlock(void *opaque)
{
	struct kvmini_vm *k = opaque;
	for (unsigned i = 0; i < k->ndisks; i++)
		disk_unlock(k->disks[i]);
}

static int mig_lock(void *opaque, struct err *e)
{
	struct kvmini_vm *k = opaque;
	for (unsigned i = 0; i < k->ndisks; i++) {
		int r = disk_lock(k->disks[i], e);
		if (!r)
			r = disk_activate(k->disks[i], e); /* the metadata it kept: nobody else wrote */
		if (r)
			return r;
	}
	return 0;
}

int kvmini_vm_migrate(struct kvmini_vm *k, const struct kvmini_migrate_params *p,
		      void (*progress)(void *opaque, const struct kvmini_migrate_progress *pr), void *opaque,
		      struct kvmini_migrate_result *res, char *errbuf, size_t errlen)
{
	struct err e = {{0}};
	int r = 0;
	enum kvmini_state st = kvmini_vm_state(k);
	bool was_paused = st == KVMINI_STATE_PAUSED;
	if (st != KVMINI_STATE_RUNNING && st != KVMINI_STATE_PAUSED) {
		r = err_set(&e, -EPIPE, "the VM is not running");
		goto out;
	}
	__atomic_store_n(&k->migrate_cancel, 0, __ATOMIC_RELAXED);
	int fd = migrate_connect(p->uri, 10, &e);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	/* Pinned: the supervisor does not free this machine (a stop or reset) until we are done. */
	pthread_mutex_lock(&k->lock);
	struct vm *vm = k->exit == KVMINI_EXIT_NONE && !k->host_stop && !k->mig_active ? k->vm : NULL;
	if (vm)
		k->mig_active = true;
	pthread_mutex_unlock(&k->lock);
	struct precopy_host h = {
	    .vm = vm,
	    .pause = mig_pause,
	    .resume = mig_resume,
	    .flush_disks = mig_flush,
	    .unlock_disks = mig_unlock,
	    .lock_disks = mig_lock,
	    .opaque = k,
	    .cancel = &k->migrate_cancel,
	};
	struct kvmini_migrate_result local;
	if (!vm)
		r = err_set(&e, -EPIPE, "the VM is not running, or is migrating already");
	else if (!(r = describe(k, vm, &h.desc, &e)))
		r = precopy_run(&h, fd, p, progress, opaque, res ? res : &local, &e);
	close(fd);
	if (vm) {
		pthread_mutex_lock(&k->lock);
		k->mig_active = false;
		pthread_cond_broadcast(&k->cond);
		pthread_mutex_unlock(&k->lock);
	}
	if (!r)
		kvmini_vm_stop(k); /* the destination runs it now */
	else if (was_paused)
		kvmini_vm_pause(k);
out:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", err_msg(&e));
	return r;
}

void kvmini_vm_migrate_cancel(struct kvmini_vm *k)
{
	__atomic_store_n(&k->migrate_cancel, 1, __ATOMIC_RELAXED);
}
