/* SPDX-License-Identifier: MIT */
/*
 * method.c - the method registry and the packet helpers every method
 * shares.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "entropy.h"
#include "method.h"

const struct mfd_method_ops *mfd__method_get(unsigned method)
{
	switch (method) {
	case MFD_METHOD_NONE:
		return &mfd__method_none;
#ifdef HAVE_ZLIB
	case MFD_METHOD_ZLIB:
		return &mfd__method_zlib;
#endif
#ifdef HAVE_ZSTD
	case MFD_METHOD_ZSTD:
		return &mfd__method_zstd;
#endif
	}
	return NULL;
}

void mfd__method_levels(unsigned method, int *min, int *max, int *def)
{
	*def = 1;
	switch (method) {
	case MFD_METHOD_ZLIB:
		*min = 1;
		*max = 9;
		break;
	case MFD_METHOD_ZSTD:
		/* zstd's negative levels trade ratio for speed */
		*min = -7;
		*max = 19;
		break;
	default:
		*min = *max = *def = 0;
	}
}

MFD_EXTERN const char *mfd_method_name(enum mfd_method m)
{
	switch (m) {
	case MFD_METHOD_NONE:
		return "none";
	case MFD_METHOD_ZLIB:
		return "zlib";
	case MFD_METHOD_ZSTD:
		return "zstd";
	}
	return NULL;
}

MFD_EXTERN int mfd_method_parse(const char *name, enum mfd_method *m)
{
	for (unsigned i = MFD_METHOD_NONE; i <= MFD_METHOD_ZSTD; i++) {
		if (strcmp(name, mfd_method_name(i)))
			continue;
		if (!mfd__method_get(i))
			return -ENOTSUP;
		*m = i;
		return 0;
	}
	return -EINVAL;
}

void mfd__packet_seal(struct mfd_packet *p, uint32_t page_size)
{
	uint32_t n = p->hdr.normal + p->hdr.zero;
	uint8_t *at = p->wire + MFD_HDR_SIZE;

	if (p->staged && (p->hdr.method == MFD_METHOD_NONE ||
			  (p->hdr.flags & MFD_FLAG_RAW)))
		p->hdr.flags |= MFD_FLAG_STAGED;
	if (p->desc_len) {
		memcpy(at, p->desc, p->desc_len);
		p->wire_len = MFD_HDR_SIZE + p->desc_len;
	} else {
		/* runs of adjacent pages where they name the pages in fewer
		 * bytes (always at most n entries: they fit where offsets
		 * would) */
		uint32_t nr = mfd__runs_encode(p->offsets, p->hdr.normal,
					       page_size, at);
		uint32_t zr = mfd__runs_encode(p->offsets + p->hdr.normal,
					       p->hdr.zero, page_size,
					       at + 8 * (size_t)nr);

		if (nr + zr < n) {
			p->hdr.flags |= MFD_FLAG_RUNS;
			p->hdr.normal_runs = (uint16_t)nr;
			p->hdr.zero_runs = (uint16_t)zr;
		} else {
			p->hdr.normal_runs = p->hdr.zero_runs = 0;
			mfd__offsets_encode(p->offsets, n, at);
		}
		p->wire_len = MFD_HDR_SIZE + 8 * (size_t)mfd__hdr_entries(&p->hdr);
	}
	mfd__hdr_encode(&p->hdr, p->wire);
	p->niov = 0;
	if (!p->header_apart) {
		p->iov[0].iov_base = p->wire;
		p->iov[0].iov_len = p->wire_len;
		p->niov = 1;
	}
}

size_t mfd__packet_page_iov(struct mfd_packet *p, uint32_t page_size)
{
	uint8_t *base = p->region->mem;
	struct iovec *last = NULL;
	size_t total = 0;

	if (p->copy && p->hdr.normal) {
		last = &p->iov[p->niov++];
		last->iov_base = (void *)p->copy;
		last->iov_len = (size_t)p->hdr.normal * page_size;
		return last->iov_len;
	}

	for (uint32_t i = 0; i < p->hdr.normal; i++) {
		uint8_t *page = base + p->offsets[i];

		if (last && (uint8_t *)last->iov_base + last->iov_len == page) {
			last->iov_len += page_size;
		} else {
			last = &p->iov[p->niov++];
			last->iov_base = page;
			last->iov_len = page_size;
		}
		total += page_size;
	}
	return total;
}

/* The runs of iov side by side at dst. */
static void copy_runs(uint8_t *dst, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

int mfd__compressed_send_prepare(struct mfd_mctx *m, struct mfd_packet *p,
				 mfd_compress_fn compress, uint8_t *out)
{
	size_t plain = (size_t)p->hdr.normal * m->page_size;
	long clen = 0;
	int runs;

	/* the page runs go to iov[1..]; iov[0] is kept for the header */
	p->niov = 1;
	mfd__packet_page_iov(p, m->page_size);
	runs = p->niov;
	if (plain && !mfd__looks_incompressible(p->iov + 1, runs - 1, plain)) {
		if (!p->copy && p->stable) {
			copy_runs(p->stable, p->iov + 1, runs - 1);
			p->copy = p->stable;
			p->iov[1] = (struct iovec){ p->stable, plain };
			runs = 2;
		}
		clen = compress(m, p->iov, 1, runs, plain);
		if (clen < 0)
			return (int)clen;
	}
	if (plain && clen == 0) {
		p->hdr.flags |= MFD_FLAG_RAW;
		p->hdr.payload_len = (uint32_t)plain;
		mfd__packet_seal(p, m->page_size);
		if (p->copy && p->raw_from_region && !p->staged) {
			p->copy = NULL;
			mfd__packet_page_iov(p, m->page_size);
		} else {
			p->niov = runs;
		}
	} else {
		p->hdr.payload_len = (uint32_t)clen;
		mfd__packet_seal(p, m->page_size);
		p->iov[1].iov_base = out;
		p->iov[1].iov_len = (size_t)clen;
		p->niov = clen ? 2 : 1;
	}
	p->next_packet_size = p->wire_len + p->hdr.payload_len;
	return 0;
}

void mfd__compressed_recv_prepare(struct mfd_mctx *m, struct mfd_packet *p,
				  uint8_t *staging)
{
	p->niov = 0;
	if (p->hdr.flags & MFD_FLAG_RAW) {
		mfd__packet_page_iov(p, m->page_size);
		return;
	}
	p->iov[0].iov_base = staging;
	p->iov[0].iov_len = p->hdr.payload_len;
	p->niov = 1;
}
