/* SPDX-License-Identifier: MIT */
/*
 * method-zstd.c - each packet's pages are one zstd frame, so any packet
 * decodes on its own (and could be re-sent on another channel); the
 * contexts live per channel and are reset, not re-created, per packet.
 * A packet that does not shrink goes raw. The receiver decompresses
 * straight into the destination pages and never past them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "method.h"

/* Packets are at most 4 MiB, so no honest frame needs a larger window;
 * a hostile one asking for more is refused before it allocates. */
#define WINDOW_LOG_MAX 22

struct zstd_send {
	ZSTD_CCtx *cctx;
	uint8_t *out;
};

struct zstd_recv {
	ZSTD_DCtx *dctx;
	uint8_t *staging;
};

static int zstd_send_setup(struct mfd_mctx *m)
{
	struct zstd_send *z = calloc(1, sizeof(*z));

	m->state = z;
	if (!z)
		return -ENOMEM;
	z->cctx = ZSTD_createCCtx();
	z->out = malloc((size_t)m->pages_per_packet * m->page_size);
	if (!z->cctx || !z->out)
		return -ENOMEM;
	m->out = z->out;
	m->out_len = (size_t)m->pages_per_packet * m->page_size;
	/* the frame checksum catches a corrupted payload that would still
	 * decode, at the cost of 4 bytes and a fast hash per packet */
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx,
						ZSTD_c_compressionLevel,
						m->level))) {
		snprintf(m->err, sizeof(m->err), "zstd refused level %d",
			 m->level);
		return -EINVAL;
	}
	return 0;
}

static void zstd_send_cleanup(struct mfd_mctx *m)
{
	struct zstd_send *z = m->state;

	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx);
	free(z->out);
	free(z);
	m->state = NULL;
}

/* Compress the page runs iov[first..n) into out (cap bytes). Returns the
 * compressed size, 0 when it does not fit (send raw), or -errno. */
static long compress_runs(struct mfd_mctx *m, const struct iovec *iov,
			  int first, int n, size_t plain)
{
	struct zstd_send *z = m->state;
	ZSTD_outBuffer out = { z->out, plain - 1, 0 };

	ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_only);
	ZSTD_CCtx_setPledgedSrcSize(z->cctx, plain);
	for (int i = first; i < n; i++) {
		ZSTD_inBuffer in = { iov[i].iov_base, iov[i].iov_len, 0 };
		ZSTD_EndDirective mode = i == n - 1 ? ZSTD_e_end
						    : ZSTD_e_continue;
		size_t left;

		do {
			left = ZSTD_compressStream2(z->cctx, &out, &in, mode);
			if (ZSTD_isError(left)) {
				snprintf(m->err, sizeof(m->err),
					 "zstd compression failed: %s",
					 ZSTD_getErrorName(left));
				return -EIO;
			}
			if (out.pos == out.size &&
			    (in.pos < in.size || left))
				return 0;
		} while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
	}
	return (long)out.pos;
}

static int zstd_send_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zstd_send *z = m->state;

	return mfd__compressed_send_prepare(m, p, compress_runs, z->out);
}

static int zstd_recv_setup(struct mfd_mctx *m)
{
	struct zstd_recv *z = calloc(1, sizeof(*z));

	m->state = z;
	if (!z)
		return -ENOMEM;
	z->dctx = ZSTD_createDCtx();
	z->staging = malloc((size_t)m->pages_per_packet * m->page_size);
	if (!z->dctx || !z->staging)
		return -ENOMEM;
	m->out = z->staging;
	m->out_len = (size_t)m->pages_per_packet * m->page_size;
	ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
	return 0;
}

static void zstd_recv_cleanup(struct mfd_mctx *m)
{
	struct zstd_recv *z = m->state;

	if (!z)
		return;
	ZSTD_freeDCtx(z->dctx);
	free(z->staging);
	free(z);
	m->state = NULL;
}

static int zstd_recv_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zstd_recv *z = m->state;

	mfd__compressed_recv_prepare(m, p, z->staging);
	return 0;
}

static int zstd_recv_finish(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zstd_recv *z = m->state;
	ZSTD_inBuffer in = { z->staging, p->hdr.payload_len, 0 };
	size_t left = 1, plain = (size_t)p->hdr.normal * m->page_size;
	uint8_t extra;
	ZSTD_outBuffer probe = { &extra, 1, 0 };

	if ((p->hdr.flags & MFD_FLAG_RAW) || !plain)
		return 0;
	ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
	/* decompress into the page runs at iov[1..], nothing else */
	p->niov = 1;
	mfd__packet_page_iov(p, m->page_size);
	for (int i = 1; i < p->niov; i++) {
		ZSTD_outBuffer out = { p->iov[i].iov_base, p->iov[i].iov_len,
				       0 };

		while (out.pos < out.size) {
			size_t in_before = in.pos, out_before = out.pos;

			left = ZSTD_decompressStream(z->dctx, &out, &in);
			/* a block larger than its frame's content size, or
			 * than the pages: refused before a byte of it lands */
			if (ZSTD_isError(left) && ZSTD_getErrorCode(left) ==
						  ZSTD_error_dstSize_tooSmall) {
				snprintf(m->err, sizeof(m->err),
					 "zstd payload decompresses to more "
					 "bytes than %u pages (%zu bytes)",
					 p->hdr.normal, plain);
				return -EBADMSG;
			}
			if (ZSTD_isError(left)) {
				snprintf(m->err, sizeof(m->err),
					 "corrupt zstd payload: %s",
					 ZSTD_getErrorName(left));
				return -EBADMSG;
			}
			if (out.pos < out.size && (left == 0 ||
			    (in.pos == in_before && out.pos == out_before))) {
				snprintf(m->err, sizeof(m->err),
					 "zstd payload decompresses to fewer "
					 "bytes than %u pages",
					 p->hdr.normal);
				return -EBADMSG;
			}
		}
	}
	/* every page is full: the frame must end here, exactly */
	if (left != 0)
		left = ZSTD_decompressStream(z->dctx, &probe, &in);
	if (ZSTD_isError(left) || left != 0 || probe.pos ||
	    in.pos != in.size) {
		snprintf(m->err, sizeof(m->err),
			 "zstd payload does not end after %u pages (%zu bytes):"
			 " longer than declared, truncated or trailing bytes",
			 p->hdr.normal, plain);
		return -EBADMSG;
	}
	return 0;
}

const struct mfd_method_ops mfd__method_zstd = {
	.name = "zstd",
	.send_setup = zstd_send_setup,
	.send_prepare = zstd_send_prepare,
	.send_cleanup = zstd_send_cleanup,
	.recv_setup = zstd_recv_setup,
	.recv_prepare = zstd_recv_prepare,
	.recv_finish = zstd_recv_finish,
	.recv_cleanup = zstd_recv_cleanup,
};
