/* SPDX-License-Identifier: MIT */
/*
 * The saved-state stream (docs/MIGRATION.md, "Stream format"): one format for
 * live migration, save and restore. A writer over a file or socket, a reader
 * that checks every record (its input comes from the network), and helpers for
 * the payload headers of RAM, VCPU and DEVICE records.
 *
 *   header:  "KVMINIMS"  u32 version (2)  u32 flags (0)
 *   record:  u32 type  u32 flags (0)  u64 length  payload[length]  u64 check
 *
 * check = XXH64(payload, seed XXH64(the 16-byte record header, seed 0)). A RAM
 * record's check covers its head only (RAM header and the pages' own XXH64s).
 * So RAM is sent straight from guest memory, which a vCPU may write meanwhile:
 * the reader takes a RAM record with pages that fail their own check, flagged
 * (stream_reader.torn), and the destination requires each page's last record
 * to pass (a page written during the send is dirty, so it is sent again).
 *
 * The reader checks that nothing follows END, so it waits for end of file
 * there: on a socket, stream_write_end shuts down the sending side (the other
 * direction stays open for the destination's reply).
 */
#ifndef KVMINI_VMM_MIGRATION_STREAM_H
#define KVMINI_VMM_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sbuf.h"

#define STREAM_MAGIC	  "KVMINIMS"
#define STREAM_VERSION	  2u
#define STREAM_HDR_LEN	  16u /* magic, version, flags */
#define STREAM_REC_HDR	  16u /* type, flags, length */
#define STREAM_CHECK	  8u  /* the XXH64 after each payload */
#define STREAM_PAGE	  4096u
#define STREAM_RAM_HDR	  16u /* gpa, npages, flags; then (not ZERO) npages x u64 XXH64 */
#define STREAM_RAM_PAGES  256u
#define STREAM_RAM_MAX	  (STREAM_RAM_HDR + STREAM_RAM_PAGES * (8u + STREAM_PAGE))
#define STREAM_RECORD_MAX (16u << 20) /* every type but RAM and END */
#define STREAM_RAM_ZERO	  1u	      /* RAM flags: the pages are zero, no data follows */
#define STREAM_DEV_NAME	  64u	      /* longest DEVICE name */

enum stream_type {
	STREAM_CONFIG = 1, /* the machine the state is for */
	STREAM_RAM = 2,	   /* u64 gpa, u32 npages, u32 flags, npages x u64 xxh64, npages x 4 KiB */
	STREAM_VM = 3,	   /* KVM VM-wide state */
	STREAM_VCPU = 4,   /* u32 index, state */
	STREAM_DEVICE = 5, /* u16 name length, name, u32 instance, u32 version, state */
	STREAM_END = 6,	   /* no payload; nothing may follow */
};

/* "RAM", "DEVICE", ...; "unknown" for any other value. */
const char *stream_type_name(uint32_t type);

/* ---- Writer: buffered; errors are sticky (every later call fails the same way). ---- */
#define STREAM_WBUF (128u << 10)

struct stream_writer {
	int fd;
	bool sock;  /* send(MSG_NOSIGNAL): a peer gone is an error, not SIGPIPE */
	int error;  /* first failure (-errno), 0 if none */
	size_t len; /* bytes waiting in buf */
	uint64_t records, bytes;
	uint8_t buf[STREAM_WBUF];
};

/* fd stays the caller's (blocking; a file, pipe or socket). */
void stream_writer_init(struct stream_writer *w, int fd);
int stream_write_header(struct stream_writer *w, struct err *err);
/* Any type; a payload the reader would refuse (length, RAM layout, DEVICE/VCPU header) is -EINVAL. */
int stream_write_record(struct stream_writer *w, uint32_t type, const void *payload, size_t len,
			struct err *err);
/* A RAM record straight from guest pages (npages 1..256, gpa page aligned); pages NULL writes a
 * ZERO record. The pages go from where they are to the fd (one writev with what is buffered);
 * a vCPU writing them meanwhile can make them fail their check at the reader (see above). */
int stream_write_ram(struct stream_writer *w, uint64_t gpa, uint32_t npages, const void *pages,
		     struct err *err);
/* END, then flush; on a socket, then shutdown(SHUT_WR). */
int stream_write_end(struct stream_writer *w, struct err *err);
int stream_flush(struct stream_writer *w, struct err *err);

/* ---- Reader ---- */

/* Where a RAM record's pages belong: the reader reads them there, without a copy. NULL when
 * [gpa, gpa + len) is not all memory of the caller's (the record is then an error). */
typedef uint8_t *(*stream_ram_sink)(void *opaque, uint64_t gpa, uint64_t len);

struct stream_ram {
	uint64_t gpa;
	uint32_t npages, flags;
	const uint8_t *checks; /* npages x u64 LE: each page's XXH64 as the writer saw it; NULL for ZERO */
	const uint8_t *data;   /* npages x 4 KiB; NULL for ZERO */
};

struct stream_reader {
	int fd;
	int cancel_fd;	/* -1, or an fd whose readability ends the wait for data (-EINTR) */
	uint64_t index; /* records read (the next one's index, counting from 0) */
	bool ended;	/* END was read */
	int error;	/* first failure: later reads fail too */
	/* After a RAM record: bit i set if page i failed its own check (none for other types). */
	uint64_t torn[STREAM_RAM_PAGES / 64];
	bool data_ok;	      /* no bit set in torn */
	stream_ram_sink sink; /* NULL: RAM pages come in the payload like any other record's */
	void *sink_opaque;
	struct stream_ram ram; /* with a sink: the last RAM record (data points into the sink's memory) */
	uint8_t *buf;	       /* payload + check; grows with the bytes that arrive, never past the limit */
	size_t cap;
};

/* Reads and checks the header. fd stays the caller's; stream_reader_destroy frees the buffer. */
int stream_reader_init(struct stream_reader *r, int fd, struct err *err);
/* The same, giving up with -EINTR as soon as cancel_fd (if >= 0) becomes readable. */
int stream_reader_open(struct stream_reader *r, int fd, int cancel_fd, struct err *err);
void stream_reader_destroy(struct stream_reader *r);
/* From now on, RAM pages go straight where sink says (zero pages are cleared there): a RAM record
 * is then returned with only its head (header and page checks) as payload, described in r->ram. */
void stream_reader_set_ram_sink(struct stream_reader *r, stream_ram_sink sink, void *opaque);
/* The next record, checked (CRC, bounds, and the RAM/VCPU/DEVICE payload headers); *payload is
 * valid until the next call. After END, also checks that the stream ends there. */
int stream_read_record(struct stream_reader *r, uint32_t *type, const uint8_t **payload, size_t *len,
		       struct err *err);

/* ---- Payload headers ---- */
int stream_parse_ram(const uint8_t *payload, size_t len, struct stream_ram *out, struct err *err);

void stream_put_vcpu_header(struct sbuf *b, uint32_t index);
int stream_parse_vcpu(const uint8_t *payload, size_t len, uint32_t *index, const uint8_t **state,
		      size_t *state_len, struct err *err);

struct stream_device {
	char name[STREAM_DEV_NAME + 1]; /* NUL-terminated */
	uint32_t instance, version;
	const uint8_t *state;
	size_t state_len;
};
/* name: 1..64 printable ASCII bytes, else -EINVAL. */
int stream_put_device_header(struct sbuf *b, const char *name, uint32_t instance, uint32_t version,
			     struct err *err);
int stream_parse_device(const uint8_t *payload, size_t len, struct stream_device *out, struct err *err);

/* Internal (record.c), shared by writer and reader so both take the same records: 0 if the
 * payload is acceptable for type, else -EINVAL with what is wrong in why. For RAM only the
 * RAM header is read, and len is the whole payload's length. */
int stream_check_payload(uint32_t type, const uint8_t *payload, size_t len, char *why, size_t whylen);
/* The record check (see above) of a record header and the payload bytes it covers. */
uint64_t stream_check(const uint8_t hdr[STREAM_REC_HDR], const void *covered, size_t len);
/* XXH64 of one 4 KiB page of a RAM record. */
uint64_t stream_page_check(const void *page);
/* The bytes of a RAM payload the record check covers: the header, and the page checks unless ZERO.
 * head: at least STREAM_RAM_HDR bytes. */
size_t stream_ram_head_len(const uint8_t *head);
/* The largest payload of a known type; 0 for an unknown type (and for END, which has none). */
size_t stream_max_len(uint32_t type);
bool stream_type_known(uint32_t type);

#endif
