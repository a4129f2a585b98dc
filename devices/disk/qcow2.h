/* SPDX-License-Identifier: MIT */
/*
 * qcow2 images (QEMU docs/interop/qcow2.txt), shared by the qcow2_*.c files.
 * Not for devices: they use disk.h only.
 *
 * Locking: `lock` guards all metadata (header fields, L1, the caches, the
 * refcounts, the pending frees). Reads and in-place writes of allocated data
 * map under `lock`, then take `io_lock` shared and drop `lock` for the data
 * transfer; allocating writes keep `lock` throughout. Freed clusters are only
 * handed back (their refcounts dropped) under `io_lock` held exclusively, so
 * no transfer mapped earlier can land in a cluster that was reused since.
 *
 * Crash safety, as QEMU orders it: a refcount increase reaches the disk
 * before any L2/L1 entry that points at the cluster (`l2_needs_sync`: flush
 * the refcount blocks and fdatasync before writing an L2 table or the L1
 * table); a decrease is only applied after the L2/L1 entries that pointed at
 * the cluster are on disk (`pending`: applied by qcow2_flush_meta()).
 */
#ifndef KVMINI_DEVICES_DISK_QCOW2_H
#define KVMINI_DEVICES_DISK_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/disk/disk.h"

/* --- the on-disk format ------------------------------------------------------------------- */
#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_INCOMPAT_DIRTY	    (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT	    (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2	    (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN	    0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

/* Header field offsets. */
#define QH_INCOMPAT  72
#define QH_AUTOCLEAR 88
#define QH_L1_SIZE   36 /* l1_size (4), l1_table_offset (8) follow */
#define QH_RT_OFFSET 48 /* refcount_table_offset (8), refcount_table_clusters (4) */

#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_DATA_FILE	 0x44415441u

/* L1/L2 entries. */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_L1_OFFSET_MASK   0x00fffffffffffe00ull
#define QCOW2_L2_OFFSET_MASK   0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED      0x7f000000000001ffull
#define QCOW2_L2_RESERVED      0x3f000000000001feull

/* Limits, as QEMU's: larger tables are refused at open (no huge allocations). */
#define QCOW2_MAX_L1_BYTES	(32u << 20)
#define QCOW2_MAX_RT_BYTES	(8u << 20)
#define QCOW2_MAX_SNAPSHOTS	65536
#define QCOW2_MAX_BACKING_DEPTH 32

/* --- the metadata cache --------------------------------------------------------------------- */
struct qcow2_cache_entry {
	uint64_t off;  /* host offset of the table; 0: unused slot */
	uint8_t *buf;  /* one cluster */
	uint64_t used; /* LRU tick */
	bool dirty;
	int pins;
};

struct qcow2_cache {
	const char *what; /* "L2 table" or "refcount block", for messages */
	struct qcow2_cache_entry *e;
	unsigned n;
	uint64_t tick;
	unsigned ndirty;
	unsigned last; /* index of the entry last returned */
};

/* --- one open image ------------------------------------------------------------------------- */
struct qcow2_free {
	uint64_t off; /* host cluster to decrement */
};

struct qcow2 {
	struct disk d;
	struct disk *file; /* the image file as a raw disk (data transfers, O_DIRECT-aware) */
	int mfd;	   /* metadata I/O: buffered even with cache=none */
	bool own_mfd;
	struct disk *backing; /* NULL: none (or backing=off) */

	/* Header. */
	uint32_t version;
	uint32_t header_length;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	bool extl2;		 /* 128-bit L2 entries with subcluster bitmaps */
	uint32_t l2_entry_bytes; /* 8 or 16 */
	uint32_t l2_bits;	 /* log2(entries per L2 table) */
	uint32_t sc_bits;	 /* log2(subcluster size); == cluster_bits without extl2 */
	uint32_t refcount_order; /* refcount width = 1 << refcount_order bits */
	uint64_t refcount_max;
	uint32_t rb_bits; /* log2(entries per refcount block) */
	uint64_t incompat, compat, autoclear;
	bool zstd;
	uint32_t csize_shift; /* compressed L2 entries: offset bits below, sector count above */
	uint64_t csize_mask, coffset_mask;

	uint64_t *l1; /* host byte order */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty entries [lo, hi); lo == hi: clean */

	uint64_t *rt;	  /* refcount table, host byte order */
	uint64_t rt_size; /* entries */
	uint64_t rt_offset;
	uint32_t rt_clusters;

	uint64_t snap_offset;
	uint32_t nb_snapshots;
	uint64_t snap_size; /* bytes of the snapshot table */
	uint64_t *snap_l1;  /* per snapshot: L1 offset, L1 size (pairs) */

	uint64_t file_size;  /* bytes; grows as clusters are allocated past it */
	uint64_t free_hint;  /* cluster index where the search for free clusters starts */
	bool autoclear_done; /* unknown autoclear bits cleared on the first write */

	pthread_mutex_t lock;
	pthread_rwlock_t io_lock;
	struct qcow2_cache l2c, rbc;
	bool l2_needs_sync; /* see above */
	struct qcow2_free *pending;
	size_t npending, cap_pending;
	uint64_t *meta; /* sorted host offsets of metadata clusters (overlap checks) */
	size_t nmeta, cap_meta;
	bool broken; /* metadata found inconsistent while running: writes fail */
	/*
	 * Not in use here (atomic; I/O fails with -EIO): opened deferred and
	 * not activated yet (meta_loaded false: no tables read), or handed
	 * over to a migration's destination (the tables kept, written out).
	 */
	bool inactive;
	bool meta_loaded;
	uint64_t cache_size;	 /* as asked at open, for a deferred load */
	char backing_name[1024]; /* as the header names it; "" for none */
	uint8_t *zero_cluster;	 /* a cluster of zeroes */
};

static inline uint64_t qcow2_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline uint32_t qcow2_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t qcow2_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void qcow2_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline void qcow2_put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* qcow2_file.c: metadata I/O on mfd. 0 or -errno; reads past the end of the file give zeroes. */
int qcow2_pread(struct qcow2 *q, void *buf, size_t len, uint64_t off);
int qcow2_pwrite(struct qcow2 *q, const void *buf, size_t len, uint64_t off);
int qcow2_sync(struct qcow2 *q);
/* Marks the image broken (once, with a message on stderr naming the problem); returns -EIO. */
int qcow2_broken(struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether [off, off + len) overlaps a metadata cluster. */
bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len);
int qcow2_meta_add(struct qcow2 *q, uint64_t off);
void qcow2_meta_del(struct qcow2 *q, uint64_t off);

/* qcow2_cache.c */
int qcow2_cache_init(struct qcow2_cache *c, const char *what, unsigned n, uint64_t cluster_size);
void qcow2_cache_free(struct qcow2_cache *c);
/* The table at off (read from disk, or zeroed when !read), pinned. 0 or -errno. */
int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool read, uint8_t **buf);
void qcow2_cache_put(struct qcow2_cache *c, const uint8_t *buf);
void qcow2_cache_dirty(struct qcow2_cache *c, const uint8_t *buf);
/* Writes every dirty entry (for the L2 cache: after the refcount blocks and a sync if needed). */
int qcow2_cache_flush(struct qcow2 *q, struct qcow2_cache *c);
/* Forgets the entry for off, if cached (the cluster was freed). */
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off);

/* qcow2_refcount.c */
int qcow2_get_refcount(struct qcow2 *q, uint64_t cluster, uint64_t *rc);
/* Adds delta (+1 or -1) to the refcount of the cluster at host offset off. */
int qcow2_update_refcount(struct qcow2 *q, uint64_t off, int delta);
/* Allocates n contiguous free clusters (refcount 1 each); *off is the first one's host offset. */
int qcow2_alloc_clusters(struct qcow2 *q, uint64_t n, uint64_t *off);
/* Queues a decrement of the cluster at off for after the next metadata write-out. */
int qcow2_free_later(struct qcow2 *q, uint64_t off);
/* Too many frees are queued: the next request writes the metadata out first. */
bool qcow2_pending_full(const struct qcow2 *q);
/* Frees the clusters a compressed L2 entry occupies (queued, as above). */
int qcow2_free_compressed_later(struct qcow2 *q, uint64_t l2e);
/*
 * Writes all metadata in crash-safe order and applies the pending frees;
 * with sync, ends with an fdatasync (a guest FLUSH). Caller holds lock.
 */
int qcow2_flush_meta(struct qcow2 *q, bool sync);
/* Writes the dirty refcount blocks and, when needed, syncs: L2/L1 entries may then go out. */
int qcow2_prepare_l2_write(struct qcow2 *q);
uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *rb, uint64_t i);
void qcow2_rb_set(const struct qcow2 *q, uint8_t *rb, uint64_t i, uint64_t v);
/* qcow2_repair.c: recomputes every refcount from the tables (the dirty bit was set). */
int qcow2_repair(struct qcow2 *q, struct err *e);

/* qcow2_map.c */
enum qcow2_kind { QK_UNALLOC, QK_ZERO, QK_NORMAL, QK_COMPRESSED };
struct qcow2_map {
	enum qcow2_kind kind;
	uint64_t host; /* QK_NORMAL: host offset of the guest offset asked for */
	uint64_t len;  /* bytes from the guest offset with the same kind (and contiguous host) */
	uint64_t l2e;  /* the raw L2 entry (QK_COMPRESSED: for the decompression) */
	bool copied;   /* QK_NORMAL: refcount is 1, writable in place */
};
/* How guest bytes [off, off + len) start: the first run of one kind. Caller holds lock. */
int qcow2_map(struct qcow2 *q, uint64_t off, uint64_t len, struct qcow2_map *m);
/* The L2 entry (and bitmap) of guest cluster gc; with alloc, makes the L2 table writable. */
int qcow2_l2_get(struct qcow2 *q, uint64_t gc, bool alloc, uint8_t **l2, uint32_t *idx);
uint64_t qcow2_l2e(const struct qcow2 *q, const uint8_t *l2, uint32_t idx);
uint64_t qcow2_l2bitmap(const struct qcow2 *q, const uint8_t *l2, uint32_t idx);
void qcow2_l2_set(struct qcow2 *q, uint8_t *l2, uint32_t idx, uint64_t entry, uint64_t bitmap);
/* Writes the dirty part of the L1 table. */
int qcow2_l1_flush(struct qcow2 *q);

/* qcow2_compress.c: inflates one compressed cluster into out (cluster_size bytes). */
int qcow2_decompress(struct qcow2 *q, uint64_t l2e, uint8_t *out);

/* qcow2_io.c: the disk_ops. */
extern const struct disk_ops qcow2_ops;
/* Reads guest bytes as the image shows them (every kind, backing included) into buf. */
int qcow2_read_buf(struct qcow2 *q, uint8_t *buf, uint64_t len, uint64_t off, bool locked);

/* qcow2_open.c */
struct qcow2_open_params {
	struct disk *file; /* the raw layer over fd; owned by the image once open succeeds */
	int fd;
	bool direct;
	bool readonly;
	bool no_backing;
	uint64_t cache_size;
	uint64_t file_size;
	int depth;		/* backing chain depth so far */
	const dev_t *chain_dev; /* the files above, for loop detection */
	const ino_t *chain_ino;
	bool deferred; /* read the header only; the tables at qcow2_activate() */
};
int qcow2_open(const struct qcow2_open_params *p, const char *path, struct disk **out, struct err *e);
void qcow2_free(struct qcow2 *q);
/*
 * Activation (disk_activate): a deferred image reads its header and tables
 * now (the virtual size and backing file name must not have changed since
 * the open); one deactivated goes on with the tables it kept.
 * Deactivation (disk_deactivate): writes every piece of metadata out and
 * refuses I/O until activated again.
 */
int qcow2_activate(struct disk *d, struct err *e);
int qcow2_deactivate(struct disk *d, struct err *e);

/* disk.c: opens a backing file read-only (format as named, or probed), one level deeper. */
int disk_open_backing(const char *path, enum disk_format fmt, bool direct, int depth, const dev_t *devs,
		      const ino_t *inos, struct disk **out, struct err *e);

#endif
