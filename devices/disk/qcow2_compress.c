/* SPDX-License-Identifier: MIT */
/*
 * Compressed qcow2 clusters, read side: raw deflate (zlib, no header) or a
 * zstd frame, each expanding to exactly one cluster. The compressed bytes
 * come from the descriptor's offset and sector count; anything that does not
 * expand to precisely a cluster fails the request.
 */
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "devices/disk/qcow2.h"

static int inflate_raw(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
	z_stream s = {0};
	if (inflateInit2(&s, -12) != Z_OK)
		return -ENOMEM;
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)inlen;
	s.next_out = out;
	s.avail_out = (uInt)outlen;
	int ret = inflate(&s, Z_FINISH);
	bool ok = ret == Z_STREAM_END && s.avail_out == 0;
	inflateEnd(&s);
	return ok ? 0 : -EIO;
}

static int unzstd(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	if (!dc)
		return -ENOMEM;
	/* A 2 MiB cluster needs at most a 2 MiB window: refuse frames asking for more memory. */
	ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 22);
	ZSTD_inBuffer ib = {in, inlen, 0};
	ZSTD_outBuffer ob = {out, outlen, 0};
	int r = -EIO;
	for (;;) {
		size_t ret = ZSTD_decompressStream(dc, &ob, &ib);
		if (ZSTD_isError(ret))
			break;
		if (ret == 0) { /* the frame is complete; what follows is padding */
			if (ob.pos == outlen)
				r = 0;
			break;
		}
		if (ob.pos == outlen) {
			/* Output full: the frame must end here, with nothing more to produce. */
			uint8_t extra;
			ZSTD_outBuffer ob2 = {&extra, 1, 0};
			ret = ZSTD_decompressStream(dc, &ob2, &ib);
			if (!ZSTD_isError(ret) && ret == 0 && ob2.pos == 0)
				r = 0;
			break;
		}
		if (ib.pos == ib.size)
			break; /* truncated */
	}
	ZSTD_freeDCtx(dc);
	return r;
}

int qcow2_decompress(struct qcow2 *q, uint64_t l2e, uint8_t *out)
{
	uint64_t coff = l2e & q->coffset_mask;
	uint64_t nsect = ((l2e >> q->csize_shift) & q->csize_mask) + 1;
	size_t len = (size_t)(nsect * 512 - (coff & 511));
	if (coff < q->cluster_size)
		return qcow2_broken(q, "compressed cluster at 0x%llx overlaps the header",
				    (unsigned long long)coff);
	uint8_t *in = malloc(len);
	if (!in)
		return -ENOMEM;
	int r = qcow2_pread(q, in, len, coff);
	if (!r)
		r = q->zstd ? unzstd(in, len, out, q->cluster_size)
			    : inflate_raw(in, len, out, q->cluster_size);
	free(in);
	return r;
}
