/* SPDX-License-Identifier: MIT */
/* Small helpers for request vectors that point into guest memory. */
#ifndef KVMINI_VIRTIO_IOV_H
#define KVMINI_VIRTIO_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copies up to len bytes starting skip bytes into iov to dst; returns the bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *dst, size_t len);
/* Copies up to len bytes from src into iov starting skip bytes in; returns the bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *src, size_t len);
/*
 * Points dst (room for max entries) at the len bytes that start skip bytes
 * into src. Returns the number of entries, or -1 when src is too short or
 * dst too small.
 */
int iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len, struct iovec *dst, unsigned max);

#endif
