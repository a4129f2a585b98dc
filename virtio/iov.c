/* SPDX-License-Identifier: MIT */
#include "virtio/iov.h"

#include <string.h>

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)dst + done, (uint8_t *)iov[i].iov_base + skip, k);
		done += k;
		skip = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)src + done, k);
		done += k;
		skip = 0;
	}
	return done;
}

int iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len, struct iovec *dst, unsigned max)
{
	unsigned out = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		size_t k = src[i].iov_len - skip;
		if (k > len)
			k = len;
		if (out == max)
			return -1;
		dst[out].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[out].iov_len = k;
		out++;
		len -= k;
		skip = 0;
	}
	return len ? -1 : (int)out;
}
