/* SPDX-License-Identifier: MIT */
/*
 * `kvmini run` option parsing. Runs on the main thread before any VM exists.
 * Hand-rolled rather than getopt_long: no global state, no printing, exact
 * option names only (no abbreviations), and one clear message per mistake.
 */
#include "options.h"

#include <errno.h>
#include <ctype.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define SEE_HELP "(see kvmini run --help)"
#define STR_(x)	 #x
#define STR(x)	 STR_(x)

enum opt_id {
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEM,
	OPT_NO_REBOOT,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_KVM_DEVICE,
	OPT_DISK,
	OPT_NET,
	OPT_API_SOCK,
	OPT_RESTORE,
	OPT_INCOMING,
	OPT_USER,
	OPT_GROUP,
	OPT_JAIL,
	OPT_SECCOMP,
	OPT_HELP,
	OPT_COUNT,
};

struct opt_desc {
	const char *name; /* without the leading "--" */
	enum opt_id id;
	bool has_value;
};

static const struct opt_desc opts[] = {
    {"kernel", OPT_KERNEL, true},
    {"initrd", OPT_INITRD, true},
    {"cmdline", OPT_CMDLINE, true},
    {"cpus", OPT_CPUS, true},
    {"mem", OPT_MEM, true},
    {"no-reboot", OPT_NO_REBOOT, false},
    {"shutdown-timeout", OPT_SHUTDOWN_TIMEOUT, true},
    {"kvm-device", OPT_KVM_DEVICE, true},
    {"disk", OPT_DISK, true},
    {"net", OPT_NET, true},
    {"api-sock", OPT_API_SOCK, true},
    {"restore", OPT_RESTORE, true},
    {"incoming", OPT_INCOMING, true},
    {"user", OPT_USER, true},
    {"group", OPT_GROUP, true},
    {"jail", OPT_JAIL, true},
    {"seccomp", OPT_SECCOMP, true},
    {"help", OPT_HELP, false},
};

static const struct opt_desc *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len))
			return &opts[i];
	return NULL;
}

int options_parse_size(const char *s, uint64_t *bytes)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	uint64_t n = 0;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s++ - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	unsigned shift = 20; /* a bare number means MiB */
	if (*s) {
		switch (*s) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		case 't':
		case 'T':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		s++;
		/* Tolerate "KiB", "MB", "gb"... */
		if ((s[0] == 'i' || s[0] == 'I') && (s[1] == 'B' || s[1] == 'b'))
			s += 2;
		else if (s[0] == 'B' || s[0] == 'b')
			s++;
		if (*s)
			return -EINVAL;
	}
	if (n == 0 || n > (UINT64_MAX >> shift))
		return -EINVAL;
	*bytes = n << shift;
	return 0;
}

/* Strict decimal unsigned integer: digits only, no sign, no spaces, no overflow. */
static int parse_uint(const char *s, unsigned long *out)
{
	if (!*s)
		return -EINVAL;
	unsigned long n = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (n > (ULONG_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static uint64_t host_ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psize = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psize <= 0)
		return 0; /* unknown: no limit */
	if ((uint64_t)pages > UINT64_MAX / (uint64_t)psize)
		return UINT64_MAX;
	return (uint64_t)pages * (uint64_t)psize;
}

/* The keys of --disk. */
enum disk_key { DK_PATH, DK_FORMAT, DK_READONLY, DK_CACHE, DK_SERIAL, DK_BACKING, DK_CACHE_SIZE, DK_COUNT };
static const char *const disk_keys[DK_COUNT] = {"path",	  "format",  "readonly",  "cache",
						"serial", "backing", "cache-size"};

static int disk_value(struct kvmini_disk *d, enum disk_key k, const char *v, size_t len, struct err *e)
{
	switch (k) {
	case DK_PATH:
		if (len >= sizeof(d->path))
			return err_set(e, -EINVAL, "--disk: path is longer than %zu bytes",
				       sizeof(d->path) - 1);
		memcpy(d->path, v, len + 1);
		return 0;
	case DK_FORMAT:
		if (!strcmp(v, "raw"))
			d->format = KVMINI_DISK_FORMAT_RAW;
		else if (!strcmp(v, "qcow2"))
			d->format = KVMINI_DISK_FORMAT_QCOW2;
		else
			return err_set(e, -EINVAL, "--disk: invalid format '%s': expected raw or qcow2", v);
		return 0;
	case DK_READONLY:
		if (strcmp(v, "on") && strcmp(v, "off"))
			return err_set(e, -EINVAL, "--disk: invalid readonly '%s': expected on or off", v);
		d->readonly = !strcmp(v, "on");
		return 0;
	case DK_CACHE:
		if (strcmp(v, "none") && strcmp(v, "writeback"))
			return err_set(e, -EINVAL, "--disk: invalid cache '%s': expected none or writeback",
				       v);
		d->cache_none = !strcmp(v, "none");
		return 0;
	case DK_SERIAL:
		for (size_t i = 0; i < len; i++)
			if (v[i] < 0x20 || v[i] > 0x7e)
				return err_set(
				    e, -EINVAL,
				    "--disk: invalid serial: only printable ASCII characters are allowed");
		if (len > KVMINI_DISK_SERIAL_MAX)
			return err_set(e, -EINVAL, "--disk: invalid serial '%s': longer than %d bytes", v,
				       KVMINI_DISK_SERIAL_MAX);
		memcpy(d->serial, v, len + 1);
		return 0;
	case DK_BACKING:
		if (strcmp(v, "on") && strcmp(v, "off"))
			return err_set(e, -EINVAL, "--disk: invalid backing '%s': expected on or off", v);
		d->no_backing = !strcmp(v, "off");
		return 0;
	case DK_CACHE_SIZE: {
		uint64_t n;
		if (options_parse_size(v, &n) || n > (1ULL << 40))
			return err_set(e, -EINVAL,
				       "--disk: invalid cache-size '%s': expected a size such as 4M (K, M or "
				       "G suffix; a bare number is MiB)",
				       v);
		d->cache_size = n;
		return 0;
	}
	case DK_COUNT:
		break;
	}
	return 0;
}

/*
 * One "key=value" item of a --disk or --net value, starting at *pp: the key's
 * index in keys (nkeys of them; `expected` lists them for the message), the
 * value in val with ",," read as a literal comma (truncated to valsz - 1
 * bytes; *len is its whole length), and *pp moved past the item and its ','
 * (to the NUL after the last item). -EINVAL with e set when the item is not
 * key=value, the key is unknown or given twice (seen[]), or the value empty.
 */
static int next_item(const char **pp, const char *opt, const char *const *keys, int nkeys,
		     const char *expected, bool *seen, char *val, size_t valsz, size_t *len, struct err *e)
{
	const char *p = *pp;
	size_t klen = strcspn(p, "=,");
	if (p[klen] != '=') {
		if (!klen)
			return err_set(e, -EINVAL, "%s: empty item (a stray ',')", opt);
		return err_set(e, -EINVAL, "%s: '%.*s' is not key=value", opt, (int)klen, p);
	}
	if (!klen)
		return err_set(e, -EINVAL, "%s: '=' without a key", opt);
	int k = -1;
	for (int i = 0; i < nkeys; i++)
		if (strlen(keys[i]) == klen && !memcmp(keys[i], p, klen))
			k = i;
	if (k < 0)
		return err_set(e, -EINVAL, "%s: unknown key '%.*s' (expected %s)", opt, (int)klen, p,
			       expected);
	if (seen[k])
		return err_set(e, -EINVAL, "%s: key '%s' given more than once", opt, keys[k]);
	seen[k] = true;
	p += klen + 1;
	size_t n = 0;
	for (; *p && (*p != ',' || p[1] == ','); p += *p == ',' ? 2 : 1, n++)
		if (n < valsz - 1)
			val[n] = *p;
	val[n < valsz - 1 ? n : valsz - 1] = '\0';
	if (!n)
		return err_set(e, -EINVAL, "%s: key '%s' has an empty value", opt, keys[k]);
	if (*p == ',' && !p[1])
		return err_set(e, -EINVAL, "%s: empty item (a stray ',')", opt);
	*len = n;
	*pp = *p ? p + 1 : p;
	return k;
}

/*
 * "path=PATH[,key=value]...": values up to the next lone ',' with ",," for a
 * literal comma, as in QEMU. The values are copied into the config, which
 * therefore owns them.
 */
static int parse_disk(struct kvmini_config *cfg, const char *spec, struct err *e)
{
	if (cfg->ndisks >= KVMINI_MAX_DISKS)
		return err_set(e, -EINVAL, "too many --disk options: at most %d", KVMINI_MAX_DISKS);
	if (!*spec)
		return err_set(e, -EINVAL, "--disk: empty value (expected path=PATH[,key=value...])");
	struct kvmini_disk *d = &cfg->disks[cfg->ndisks];
	memset(d, 0, sizeof(*d));
	bool seen[DK_COUNT] = {false};
	char val[KVMINI_DISK_PATH_MAX + 1];
	for (const char *p = spec; *p;) {
		size_t n;
		int k = next_item(&p, "--disk", disk_keys, DK_COUNT,
				  "path, format, readonly, cache, serial, backing or cache-size", seen, val,
				  sizeof(val), &n, e);
		if (k < 0)
			return k;
		/* A path too long for val is cut at the size that disk_value() refuses. */
		int r = disk_value(d, (enum disk_key)k, val, n < sizeof(val) - 1 ? n : sizeof(val) - 1, e);
		if (r)
			return r;
	}
	if (!seen[DK_PATH])
		return err_set(e, -EINVAL, "--disk: missing path=PATH");
	cfg->ndisks++;
	return 0;
}

/* The keys of --net: the first three name the backend, and exactly one of them is given. */
enum net_key { NK_TAP, NK_MACVTAP, NK_FD, NK_BRIDGE, NK_MODE, NK_MAC, NK_QUEUES, NK_COUNT };
static const char *const net_keys[NK_COUNT] = {"tap", "macvtap", "fd", "bridge", "mode", "mac", "queues"};

/* A name the kernel accepts for an interface (dev_valid_name()): 1 to 15 bytes, no '/', ':' or space. */
static bool valid_ifname(const char *v, size_t len)
{
	if (!len || len >= KVMINI_IFNAMSIZ || !strcmp(v, ".") || !strcmp(v, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (v[i] == '/' || v[i] == ':' || isspace((unsigned char)v[i]))
			return false;
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "52:54:00:12:34:56": six pairs of hex digits (either case) separated by ':'. */
static bool parse_mac(const char *v, uint8_t mac[6])
{
	if (strlen(v) != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(v[3 * i]), lo = hex_digit(v[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && v[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static int net_value(struct kvmini_net *n, enum net_key k, const char *v, size_t len, struct err *e)
{
	switch (k) {
	case NK_TAP:
	case NK_MACVTAP:
	case NK_BRIDGE:
		if (!valid_ifname(v, len))
			return err_set(
			    e, -EINVAL,
			    "--net: invalid interface name '%s' for %s=: 1 to %d bytes, without '/', "
			    "':' or whitespace, and not '.' or '..'",
			    v, net_keys[k], KVMINI_IFNAMSIZ - 1);
		memcpy(k == NK_BRIDGE ? n->bridge : n->ifname, v, len + 1);
		if (k != NK_BRIDGE)
			n->kind = k == NK_TAP ? KVMINI_NET_TAP : KVMINI_NET_MACVTAP;
		return 0;
	case NK_FD: {
		/* Only the syntax: whether it is open, and a tap, is for the backend to tell at start. */
		unsigned long fd;
		if (parse_uint(v, &fd) || fd > INT_MAX)
			return err_set(e, -EINVAL, "--net: invalid fd '%s': expected a descriptor number", v);
		n->kind = KVMINI_NET_FD;
		n->fd = (int)fd;
		return 0;
	}
	case NK_MODE:
		if (!strcmp(v, "bridge"))
			n->mode = KVMINI_MACVTAP_BRIDGE;
		else if (!strcmp(v, "vepa"))
			n->mode = KVMINI_MACVTAP_VEPA;
		else if (!strcmp(v, "private"))
			n->mode = KVMINI_MACVTAP_PRIVATE;
		else if (!strcmp(v, "passthru"))
			n->mode = KVMINI_MACVTAP_PASSTHRU;
		else
			return err_set(e, -EINVAL,
				       "--net: invalid mode '%s': expected bridge, vepa, private or passthru",
				       v);
		return 0;
	case NK_MAC:
		if (!parse_mac(v, n->mac))
			return err_set(
			    e, -EINVAL,
			    "--net: invalid mac '%s': expected six hex pairs such as 52:54:00:12:34:56", v);
		if (n->mac[0] & 1)
			return err_set(e, -EINVAL,
				       "--net: mac %s is a multicast address; a NIC needs a unicast one", v);
		if (!(n->mac[0] | n->mac[1] | n->mac[2] | n->mac[3] | n->mac[4] | n->mac[5]))
			return err_set(e, -EINVAL, "--net: mac %s is all zeros; a NIC needs a real address",
				       v);
		n->mac_set = true;
		return 0;
	case NK_QUEUES: {
		unsigned long q;
		if (parse_uint(v, &q) || q < 1 || q > KVMINI_NET_MAX_QUEUES)
			return err_set(e, -EINVAL,
				       "--net: invalid queues '%s': expected an integer from 1 to %d", v,
				       KVMINI_NET_MAX_QUEUES);
		n->queues = (unsigned)q;
		return 0;
	}
	case NK_COUNT:
		break;
	}
	return 0;
}

/* The same tap or fd twice would be two NICs fighting over one set of queues. */
static int net_duplicate(const struct kvmini_config *cfg, const struct kvmini_net *n, struct err *e)
{
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct kvmini_net *o = &cfg->nics[i];
		if (o->kind != n->kind)
			continue;
		if (n->kind == KVMINI_NET_TAP && !strcmp(o->ifname, n->ifname))
			return err_set(e, -EINVAL, "--net: tap %s is given to two NICs", n->ifname);
		if (n->kind == KVMINI_NET_FD && o->fd == n->fd)
			return err_set(e, -EINVAL, "--net: fd %d is given to two NICs", n->fd);
	}
	return 0;
}

/*
 * "tap=NAME[,bridge=BR]", "macvtap=IFACE[,mode=MODE]" or "fd=N", each with
 * optional mac= and queues=; values as in --disk (",," for a comma, which no
 * valid value has, but the syntax is shared).
 */
static int parse_net(struct kvmini_config *cfg, const char *spec, struct err *e)
{
	if (cfg->nnics >= KVMINI_MAX_NICS)
		return err_set(e, -EINVAL, "too many --net options: at most %d", KVMINI_MAX_NICS);
	if (!*spec)
		return err_set(e, -EINVAL, "--net: empty value (expected tap=NAME, macvtap=IFACE or fd=N)");
	struct kvmini_net *n = &cfg->nics[cfg->nnics];
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	n->queues = 1;
	bool seen[NK_COUNT] = {false};
	char val[64];
	for (const char *p = spec; *p;) {
		size_t len;
		bool had_backend = seen[NK_TAP] || seen[NK_MACVTAP] || seen[NK_FD];
		int k = next_item(&p, "--net", net_keys, NK_COUNT,
				  "tap, macvtap, fd, bridge, mode, mac or queues", seen, val, sizeof(val),
				  &len, e);
		if (k < 0)
			return k;
		if (k <= NK_FD && had_backend)
			return err_set(e, -EINVAL, "--net: only one of tap=, macvtap= or fd= may be given");
		if (len >= sizeof(val))
			return err_set(e, -EINVAL, "--net: the value of %s= is too long", net_keys[k]);
		int r = net_value(n, (enum net_key)k, val, len, e);
		if (r)
			return r;
	}
	if (!seen[NK_TAP] && !seen[NK_MACVTAP] && !seen[NK_FD])
		return err_set(e, -EINVAL, "--net: missing tap=NAME, macvtap=IFACE or fd=N");
	if (seen[NK_BRIDGE] && !seen[NK_TAP])
		return err_set(e, -EINVAL, "--net: bridge= goes with tap= only");
	if (seen[NK_MODE] && !seen[NK_MACVTAP])
		return err_set(e, -EINVAL, "--net: mode= goes with macvtap= only");
	if (seen[NK_FD] && n->queues > 1)
		return err_set(e, -EINVAL, "--net: fd= gives one queue pair, not %u", n->queues);
	int r = net_duplicate(cfg, n, e);
	if (r)
		return r;
	cfg->nnics++;
	return 0;
}

/* The keys of --mem, after its size. */
enum mem_key { MK_HUGEPAGES, MK_MERGE, MK_SHARED, MK_COUNT };
static const char *const mem_keys[MK_COUNT] = {"hugepages", "merge", "shared"};

/* "SIZE[,hugepages=on|off][,merge=on|off][,shared=on|off]". */
static int parse_mem(struct kvmini_config *cfg, const char *val, struct err *e)
{
	char size[32] = "";
	size_t slen = strcspn(val, ",");
	if (slen < sizeof(size))
		memcpy(size, val, slen); /* longer: no sane size, refused below */
	uint64_t bytes;
	if (slen >= sizeof(size) || options_parse_size(size, &bytes))
		return err_set(e, -EINVAL,
			       "invalid --mem value '%.*s': expected a size such as 512M or 2G "
			       "(suffix K, M, G or T; a bare number means MiB)",
			       (int)slen, val);
	if (bytes % 4096)
		return err_set(e, -EINVAL, "--mem %s is not a multiple of 4 KiB", size);
	if (bytes < KVMINI_MIN_MEM)
		return err_set(e, -EINVAL, "--mem %s is too small: the minimum is %llu MiB", size,
			       (unsigned long long)(KVMINI_MIN_MEM >> 20));
	uint64_t host = host_ram_bytes();
	if (host && bytes > host)
		return err_set(e, -EINVAL, "--mem %s is too large for this host (%llu MiB of RAM)", size,
			       (unsigned long long)(host >> 20));

	bool seen[MK_COUNT] = {false}, on[MK_COUNT] = {false};
	const char *p = strchr(val, ',');
	if (p && !*++p)
		return err_set(e, -EINVAL, "--mem: empty item (a stray ',')");
	while (p && *p) {
		char v[16];
		size_t len;
		int k = next_item(&p, "--mem", mem_keys, MK_COUNT, "hugepages, merge or shared", seen, v,
				  sizeof(v), &len, e);
		if (k < 0)
			return k;
		if (strcmp(v, "on") && strcmp(v, "off"))
			return err_set(e, -EINVAL, "--mem: invalid %s '%s%s': expected on or off",
				       mem_keys[k], v, len >= sizeof(v) ? "..." : "");
		on[k] = !strcmp(v, "on");
	}
	if (on[MK_HUGEPAGES] && bytes % (2ULL << 20))
		return err_set(e, -EINVAL, "--mem %s is not a multiple of 2 MiB, as hugepages=on needs",
			       size);
	if (on[MK_MERGE] && (on[MK_HUGEPAGES] || on[MK_SHARED]))
		return err_set(e, -EINVAL,
			       "--mem: merge=on does not go with %s=on: KSM merges private memory only, not "
			       "huge or shared pages",
			       on[MK_HUGEPAGES] ? "hugepages" : "shared");
	cfg->mem_bytes = bytes;
	cfg->mem_hugepages = on[MK_HUGEPAGES];
	cfg->mem_merge = on[MK_MERGE];
	cfg->mem_shared = on[MK_SHARED];
	return 0;
}

/*
 * --user NAME|UID or --group NAME|GID: a name from the user or group database
 * (read now, before any jail), or a number, which need not have an entry.
 */
static int parse_id(struct kvmini_config *cfg, bool user, const char *val, struct err *e)
{
	const char *opt = user ? "--user" : "--group";
	if (!*val)
		return err_set(e, -EINVAL, "option '%s' needs a name or a number " SEE_HELP, opt);
	unsigned long n = 0;
	bool numeric = !parse_uint(val, &n);
	if (numeric && n >= (unsigned long)(uid_t)-1)
		return err_set(e, -EINVAL, "invalid %s value '%s': the number is too large", opt, val);
	if (user) {
		struct passwd *pw = numeric ? NULL : getpwnam(val);
		if (!numeric && !pw)
			return err_set(e, -EINVAL, "invalid --user value '%s': no such user", val);
		cfg->set_uid = true;
		cfg->uid = numeric ? (uid_t)n : pw->pw_uid;
	} else {
		struct group *gr = numeric ? NULL : getgrnam(val);
		if (!numeric && !gr)
			return err_set(e, -EINVAL, "invalid --group value '%s': no such group", val);
		cfg->set_gid = true;
		cfg->gid = numeric ? (gid_t)n : gr->gr_gid;
	}
	return 0;
}

static int set_value(struct kvmini_config *cfg, enum opt_id id, const char *opt, const char *val,
		     struct err *e)
{
	switch (id) {
	case OPT_KERNEL:
	case OPT_INITRD:
	case OPT_KVM_DEVICE:
	case OPT_API_SOCK:
	case OPT_RESTORE:
	case OPT_INCOMING:
	case OPT_JAIL:
		if (!*val)
			return err_set(e, -EINVAL, "option '%s' needs a non-empty path " SEE_HELP, opt);
		if (id == OPT_KERNEL)
			cfg->kernel_path = val;
		else if (id == OPT_INITRD)
			cfg->initrd_path = val;
		else if (id == OPT_API_SOCK)
			cfg->api_sock = val;
		else if (id == OPT_RESTORE)
			cfg->restore_path = val;
		else if (id == OPT_INCOMING)
			cfg->incoming = val;
		else if (id == OPT_JAIL)
			cfg->jail = val; /* checked by kvmini_vm_create(): it must be a directory */
		else
			cfg->kvm_device = val;
		return 0;
	case OPT_CMDLINE:
		cfg->cmdline = val; /* used as is, even empty */
		return 0;
	case OPT_USER:
	case OPT_GROUP:
		return parse_id(cfg, id == OPT_USER, val, e);
	case OPT_SECCOMP:
		if (!strcmp(val, "on"))
			cfg->seccomp = KVMINI_SECCOMP_ON;
		else if (!strcmp(val, "off"))
			cfg->seccomp = KVMINI_SECCOMP_OFF;
		else if (!strcmp(val, "log"))
			cfg->seccomp = KVMINI_SECCOMP_LOG;
		else
			return err_set(e, -EINVAL, "invalid --seccomp value '%s': expected on, off or log",
				       val);
		return 0;
	case OPT_DISK:
		return parse_disk(cfg, val, e);
	case OPT_NET:
		return parse_net(cfg, val, e);
	case OPT_CPUS: {
		unsigned long n;
		if (parse_uint(val, &n) || n < 1 || n > KVMINI_MAX_CPUS)
			return err_set(e, -EINVAL,
				       "invalid --cpus value '%s': expected an integer from 1 to %d", val,
				       KVMINI_MAX_CPUS);
		cfg->cpus = (unsigned)n;
		return 0;
	}
	case OPT_MEM:
		return parse_mem(cfg, val, e);
	case OPT_SHUTDOWN_TIMEOUT: {
		unsigned long n;
		if (parse_uint(val, &n) || n > 3600)
			return err_set(
			    e, -EINVAL,
			    "invalid --shutdown-timeout value '%s': expected seconds from 0 to 3600", val);
		cfg->shutdown_timeout_s = (unsigned)n;
		return 0;
	}
	case OPT_NO_REBOOT:
	case OPT_HELP:
	case OPT_COUNT:
		break;
	}
	return 0;
}

/* Whether argv[i..] (before a "--") asks for help. */
static bool help_later(int i, int argc, char **argv)
{
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
}

static int parse(int argc, char **argv, struct kvmini_config *cfg, int *failed_at, struct err *e)
{
	bool seen[OPT_COUNT] = {false};
	bool end_of_opts = false;
	/* The command gives up every capability and filters system calls unless told otherwise. */
	cfg->drop_privileges = true;
	cfg->seccomp = KVMINI_SECCOMP_ON;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		*failed_at = i;
		if (end_of_opts || arg[0] != '-' || !strcmp(arg, "-"))
			return err_set(e, -EINVAL, "unexpected argument '%s' " SEE_HELP, arg);
		if (!strcmp(arg, "--")) {
			end_of_opts = true;
			continue;
		}
		if (!strcmp(arg, "-h"))
			return 1;
		if (arg[1] != '-')
			return err_set(e, -EINVAL, "unknown option '%s' " SEE_HELP, arg);

		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
		const struct opt_desc *o = find_opt(name, name_len);
		if (!o)
			return err_set(e, -EINVAL, "unknown option '--%.*s' " SEE_HELP, (int)name_len, name);
		const char *opt = o->name;

		if (!o->has_value) {
			if (eq)
				return err_set(e, -EINVAL, "option '--%s' takes no value " SEE_HELP, opt);
			if (o->id == OPT_HELP)
				return 1;
			cfg->no_reboot = true;
			continue;
		}

		const char *val;
		if (eq) {
			val = eq + 1;
		} else {
			/*
			 * "--kernel --cpus 2" is a forgotten value, not a kernel named
			 * "--cpus"; a value that starts with "--" needs "--opt=value".
			 */
			if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2) || !strcmp(argv[i + 1], "-h"))
				return err_set(e, -EINVAL, "option '--%s' needs a value " SEE_HELP, opt);
			val = argv[++i];
		}
		if (seen[o->id] && o->id != OPT_DISK && o->id != OPT_NET)
			return err_set(e, -EINVAL, "option '--%s' given more than once", opt);
		seen[o->id] = true;
		char optname[32] = "--";
		strncat(optname, opt, sizeof(optname) - 3);
		int r = set_value(cfg, o->id, optname, val, e);
		if (r)
			return r;
	}
	if (!seen[OPT_KERNEL])
		return err_set(e, -EINVAL, "missing --kernel PATH " SEE_HELP);
	if (seen[OPT_USER] && !seen[OPT_GROUP]) {
		/* The user's own group, as login would give it. */
		struct passwd *pw = getpwuid(cfg->uid);
		if (!pw)
			return err_set(e, -EINVAL,
				       "--user %u has no entry in the user database: give --group too",
				       (unsigned)cfg->uid);
		cfg->set_gid = true;
		cfg->gid = pw->pw_gid;
	}
	return 0;
}

int options_parse_run(int argc, char **argv, struct kvmini_config *cfg, struct err *e)
{
	/* Work on a copy so that cfg changes only on success. */
	struct kvmini_config tmp = *cfg;
	struct err local = {{0}};
	int failed_at = 0;

	int r = parse(argc, argv, &tmp, &failed_at, &local);
	if (r == 1)
		return 1;
	if (r < 0) {
		/* "kvmini run --bogus --help" shows the help rather than the complaint. */
		if (help_later(failed_at + 1, argc, argv))
			return 1;
		return err_set(e, r, "%s", local.msg);
	}
	*cfg = tmp;
	return 0;
}

/* The help text reads best laid out as it prints. */
/* clang-format off */
const char *options_run_usage(void)
{
	return "Usage: kvmini run --kernel PATH [options]\n"
	       "\n"
	       "Boots a Linux kernel in a new KVM virtual machine, with its serial console\n"
	       "(ttyS0) on this terminal.\n"
	       "\n"
	       "Options:\n"
	       "  --kernel PATH       kernel to boot: a bzImage, or an ELF vmlinux with a PVH\n"
	       "                      entry note (required)\n"
	       "  --initrd PATH       initial ramdisk\n"
	       "  --cmdline STR       kernel command line, used as is (default: \"" KVMINI_DEFAULT_CMDLINE "\")\n"
	       "  --cpus N            number of vCPUs, 1 to " STR(KVMINI_MAX_CPUS) " (default: 1)\n"
	       "  --mem SIZE[,KEY=on|off]...\n"
	       "                      guest RAM: a number with a K, M or G suffix, a bare number\n"
	       "                      means MiB; at least 64M, a multiple of 4K (default: 512M).\n"
	       "                      Keys, all off by default (RAM is then private anonymous\n"
	       "                      memory, with transparent huge pages where the host has them):\n"
	       "                        hugepages=on    2 MiB hugetlbfs pages, all taken at start:\n"
	       "                                        SIZE a multiple of 2M, and enough free\n"
	       "                                        pages reserved beforehand (as root:\n"
	       "                                        echo N > /proc/sys/vm/nr_hugepages)\n"
	       "                        merge=on        let KSM merge identical pages (within\n"
	       "                                        and across guests); needs a kernel with\n"
	       "                                        KSM, and not with hugepages or shared\n"
	       "                        shared=on       RAM is a memfd (\"kvmini-guest\") mapped\n"
	       "                                        shared, which other processes could map\n"
	       "  --disk path=PATH[,KEY=VALUE]...\n"
	       "                      a virtio-blk disk; repeat for more (at most " STR(KVMINI_MAX_DISKS) "), which\n"
	       "                      the guest sees as vda, vdb, ... in this order. PATH is an\n"
	       "                      image file or a block device, locked while in use. Keys:\n"
	       "                        format=raw|qcow2      default: probed from the image's\n"
	       "                                              first bytes\n"
	       "                        readonly=on|off       default: off\n"
	       "                        cache=none|writeback  none bypasses the host's page cache\n"
	       "                                              (O_DIRECT); default: writeback\n"
	       "                        serial=STR            up to 20 printable characters\n"
	       "                        backing=on|off        qcow2: off ignores the backing file\n"
	       "                                              (unallocated clusters read as zeroes)\n"
	       "                        cache-size=SIZE       qcow2 metadata cache (L2 tables and\n"
	       "                                              refcount blocks); default: enough to\n"
	       "                                              map the whole disk, at most 32M\n"
	       "                      A comma inside a value is written \",,\".\n"
	       "  --net tap=NAME[,bridge=BR][,mac=MAC][,queues=N]\n"
	       "  --net macvtap=IFACE[,mode=MODE][,mac=MAC][,queues=N]\n"
	       "  --net fd=N[,mac=MAC]\n"
	       "                      a virtio-net NIC; repeat for more (at most " STR(KVMINI_MAX_NICS) "), which the\n"
	       "                      guest finds in this order. The host side is one of:\n"
	       "                        tap=NAME        the tap NAME, created if missing\n"
	       "                                        (that needs CAP_NET_ADMIN, and it\n"
	       "                                        goes away at exit)\n"
	       "                        macvtap=IFACE   a macvtap (kvmtapN) made on IFACE,\n"
	       "                                        deleted at exit; needs CAP_NET_ADMIN\n"
	       "                        fd=N            an open tap or macvtap descriptor with\n"
	       "                                        IFF_VNET_HDR, which kvmini takes over\n"
	       "                      Keys:\n"
	       "                        bridge=BR       tap: add the tap to the bridge BR\n"
	       "                        mode=bridge|vepa|private|passthru\n"
	       "                                        macvtap: its mode; default: bridge\n"
	       "                        mac=MAC         the guest's unicast address, such as\n"
	       "                                        52:54:00:12:34:56; default: derived from\n"
	       "                                        the NIC's configuration, so the same\n"
	       "                                        command line always gives the same MAC\n"
	       "                        queues=N        queue pairs, 1 to " STR(KVMINI_NET_MAX_QUEUES) "; default: 1.\n"
	       "                                        More than one needs a multi-queue tap\n"
	       "                                        (`ip tuntap add dev NAME mode tap\n"
	       "                                        multi_queue`); an fd gives one\n"
	       "  --no-reboot         end when the guest reboots instead of restarting it\n"
	       "  --shutdown-timeout S  on SIGTERM, press the guest's ACPI power button and give\n"
	       "                      it S seconds to power off before stopping it (default: 30;\n"
	       "                      0 stops at once); a second SIGTERM stops it at once\n"
	       "  --api-sock PATH     serve the control socket (JSON, one object per line; see\n"
	       "                      docs/API.md and kvmini ctl) on this unix socket path,\n"
	       "                      which must not exist; removed at exit\n"
	       "  --restore FILE      start from a state saved with `kvmini ctl SOCK save FILE`\n"
	       "                      instead of booting; the other options must describe the\n"
	       "                      same machine (vCPUs, memory, disks, NICs), and --kernel is\n"
	       "                      still required\n"
	       "  --incoming tcp:ADDR:PORT\n"
	       "                      wait for a live migration (kvmini ctl SOCK migrate) on\n"
	       "                      this address instead of booting; the other options must\n"
	       "                      describe the same machine, on the same (shared) disks\n"
	       "  --kvm-device PATH   KVM device to open (default: /dev/kvm)\n"
	       "\n"
	       "Least privilege (see docs/SECURITY.md): once everything is open, before the\n"
	       "guest runs, kvmini drops every capability (the bounding set too) and sets\n"
	       "no_new_privs; a small helper process keeps its privileges only to remove the\n"
	       "control socket and the macvtaps kvmini made when kvmini exits.\n"
	       "  --user NAME|UID     then switch to this user (and, without --group, to its\n"
	       "                      group); supplementary groups are cleared\n"
	       "  --group NAME|GID    then switch to this group\n"
	       "  --jail DIR          then chroot into DIR, an existing directory; nothing is\n"
	       "                      opened by path afterwards except `ctl save FILE`, whose\n"
	       "                      FILE is then inside DIR\n"
	       "  --seccomp on|off|log\n"
	       "                      system call allow-lists per thread (default: on); a call\n"
	       "                      outside them ends kvmini with a line naming it; log lets\n"
	       "                      it through and has the kernel log it (for development)\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "Options take their value as \"--opt value\" or \"--opt=value\"; a value that begins\n"
	       "with \"--\" needs the \"--opt=value\" form.\n"
	       "\n"
	       "Console: Ctrl-A x quits; Ctrl-A Ctrl-A sends a literal Ctrl-A.\n"
	       "\n"
	       "Exit status:\n"
	       "  0      the guest powered off (also after SIGTERM), or rebooted with --no-reboot\n"
	       "  N      the guest wrote byte N (0-255) to the exit-status port, I/O port 0x501\n"
	       "  101    the guest kernel panicked (pvpanic)\n"
	       "  128+S  kvmini was stopped by signal S\n"
	       "  1      an error (bad options, the VM could not start, or an emulation failure)\n";
}
/* clang-format on */

const char *options_main_usage(void)
{
	return "Usage: kvmini COMMAND [options]\n"
	       "\n"
	       "A minimal KVM hypervisor.\n"
	       "\n"
	       "Commands:\n"
	       "  run       boot a kernel in a new virtual machine\n"
	       "  ctl       drive a running one through its control socket (--api-sock)\n"
	       "\n"
	       "Options:\n"
	       "  -h, --help  show this help\n"
	       "\n"
	       "The guest's serial console is stdin/stdout; on a terminal, Ctrl-A x quits.\n"
	       "Run 'kvmini run --help' for the options of 'kvmini run', and\n"
	       "'kvmini ctl --help' for the commands of 'kvmini ctl'.\n";
}
