/* SPDX-License-Identifier: MIT */
/*
 * method-zlib.c - each packet's pages are one zlib stream, so any packet
 * decodes on its own (and could be re-sent on another channel); the
 * streams live per channel and are reset, not re-created, per packet.
 * A packet that does not shrink goes raw. The receiver inflates straight
 * into the destination pages and never past them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "method.h"

struct zlib_send {
	z_stream zs;
	bool init;
	uint8_t *out;
};

struct zlib_recv {
	z_stream zs;
	bool init;
	uint8_t *staging;
};

static int zlib_send_setup(struct mfd_mctx *m)
{
	struct zlib_send *z = calloc(1, sizeof(*z));

	m->state = z;
	if (!z)
		return -ENOMEM;
	z->out = malloc((size_t)m->pages_per_packet * m->page_size);
	if (!z->out)
		return -ENOMEM;
	m->out = z->out;
	m->out_len = (size_t)m->pages_per_packet * m->page_size;
	if (deflateInit(&z->zs, m->level) != Z_OK) {
		snprintf(m->err, sizeof(m->err), "deflateInit(level %d): %s",
			 m->level, z->zs.msg ? z->zs.msg : "failed");
		return -EINVAL;
	}
	z->init = true;
	return 0;
}

static void zlib_send_cleanup(struct mfd_mctx *m)
{
	struct zlib_send *z = m->state;

	if (!z)
		return;
	if (z->init)
		deflateEnd(&z->zs);
	free(z->out);
	free(z);
	m->state = NULL;
}

/* Deflate the page runs iov[first..n) into out. Returns the compressed
 * size, 0 when it does not fit in plain - 1 bytes (send raw), or -errno. */
static long deflate_runs(struct mfd_mctx *m, const struct iovec *iov,
			 int first, int n, size_t plain)
{
	struct zlib_send *z = m->state;
	z_stream *zs = &z->zs;
	int ret = Z_OK;

	deflateReset(zs);
	zs->next_out = z->out;
	zs->avail_out = (uInt)(plain - 1);
	for (int i = first; i < n; i++) {
		int flush = i == n - 1 ? Z_FINISH : Z_NO_FLUSH;

		zs->next_in = iov[i].iov_base;
		zs->avail_in = (uInt)iov[i].iov_len;
		do {
			ret = deflate(zs, flush);
			if (ret == Z_STREAM_ERROR) {
				snprintf(m->err, sizeof(m->err),
					 "deflate failed");
				return -EIO;
			}
			if (zs->avail_out == 0 && ret != Z_STREAM_END)
				return 0;
		} while (flush == Z_FINISH ? ret != Z_STREAM_END
					   : zs->avail_in > 0);
	}
	return (long)(plain - 1 - zs->avail_out);
}

static int zlib_send_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zlib_send *z = m->state;

	return mfd__compressed_send_prepare(m, p, deflate_runs, z->out);
}

static int zlib_recv_setup(struct mfd_mctx *m)
{
	struct zlib_recv *z = calloc(1, sizeof(*z));

	m->state = z;
	if (!z)
		return -ENOMEM;
	z->staging = malloc((size_t)m->pages_per_packet * m->page_size);
	if (!z->staging || inflateInit(&z->zs) != Z_OK)
		return -ENOMEM;
	m->out = z->staging;
	m->out_len = (size_t)m->pages_per_packet * m->page_size;
	z->init = true;
	return 0;
}

static void zlib_recv_cleanup(struct mfd_mctx *m)
{
	struct zlib_recv *z = m->state;

	if (!z)
		return;
	if (z->init)
		inflateEnd(&z->zs);
	free(z->staging);
	free(z);
	m->state = NULL;
}

static int zlib_recv_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zlib_recv *z = m->state;

	mfd__compressed_recv_prepare(m, p, z->staging);
	return 0;
}

static int corrupt(struct mfd_mctx *m, const z_stream *zs, const char *what)
{
	snprintf(m->err, sizeof(m->err), "corrupt zlib payload: %s",
		 zs->msg ? zs->msg : what);
	return -EBADMSG;
}

static int zlib_recv_finish(struct mfd_mctx *m, struct mfd_packet *p)
{
	struct zlib_recv *z = m->state;
	z_stream *zs = &z->zs;
	uint8_t extra;
	int ret = Z_OK;

	if ((p->hdr.flags & MFD_FLAG_RAW) || !p->hdr.normal)
		return 0;
	inflateReset(zs);
	zs->next_in = z->staging;
	zs->avail_in = p->hdr.payload_len;
	/* inflate into the page runs at iov[1..], nothing else */
	p->niov = 1;
	mfd__packet_page_iov(p, m->page_size);
	for (int i = 1; i < p->niov; i++) {
		zs->next_out = p->iov[i].iov_base;
		zs->avail_out = (uInt)p->iov[i].iov_len;
		while (zs->avail_out) {
			ret = inflate(zs, Z_NO_FLUSH);
			if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR ||
			    ret == Z_STREAM_ERROR || ret == Z_MEM_ERROR)
				return corrupt(m, zs, "bad stream");
			if (zs->avail_out &&
			    (ret == Z_STREAM_END || ret == Z_BUF_ERROR)) {
				snprintf(m->err, sizeof(m->err),
					 "zlib payload inflates to fewer bytes "
					 "than %u pages%s",
					 p->hdr.normal,
					 ret == Z_BUF_ERROR ? " (truncated)"
							    : "");
				return -EBADMSG;
			}
		}
	}
	/* every page is full: the stream must end here, exactly; one byte
	 * of room tells a longer stream from one whose trailer is left */
	zs->next_out = &extra;
	zs->avail_out = 1;
	if (ret != Z_STREAM_END)
		ret = inflate(zs, Z_FINISH);
	if (ret != Z_STREAM_END || zs->avail_out == 0 || zs->avail_in) {
		snprintf(m->err, sizeof(m->err),
			 "zlib payload does not end after %u pages: longer "
			 "than declared, truncated or trailing bytes",
			 p->hdr.normal);
		return -EBADMSG;
	}
	return 0;
}

const struct mfd_method_ops mfd__method_zlib = {
	.name = "zlib",
	.send_setup = zlib_send_setup,
	.send_prepare = zlib_send_prepare,
	.send_cleanup = zlib_send_cleanup,
	.recv_setup = zlib_recv_setup,
	.recv_prepare = zlib_recv_prepare,
	.recv_finish = zlib_recv_finish,
	.recv_cleanup = zlib_recv_cleanup,
};
