/* SPDX-License-Identifier: MIT */
/*
 * gen-corpus.c - write the seed corpus of the fuzz targets: valid inits,
 * answers, headers, and whole sessions of page packets (none, zlib, zstd),
 * SYNCs and ENDs, so that the fuzzers start past the handshake and from
 * packets the receiver accepts. Run by `make fuzz-corpus`; the output is
 * committed under fuzz/corpus/<target>/.
 *
 *   gen-corpus DIR
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "packet.h"

/* what fuzz-recv.c's prefixed handshake negotiates */
#define REGION_LEN (64u << 10)
#define PS 512
#define PPP 8

struct buf {
	uint8_t b[16384];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > sizeof(b->b))
		abort();
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void save(const char *dir, const char *target, const char *name,
		 const struct buf *b)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void init(struct buf *b, uint16_t ch, uint16_t channels,
		 uint8_t method, uint32_t regions)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0xf022,
			       .channel = ch,
			       .channels = channels,
			       .method = method,
			       .page_size = PS,
			       .pages_per_packet = PPP,
			       .region_count = regions };
	uint8_t w[MFD_INIT_SIZE];

	mfd__init_encode(&in, w);
	put(b, w, sizeof(w));
}

static void region(struct buf *b, const char *name, uint64_t len)
{
	uint8_t w[MFD_REGION_ENTRY_MAX];

	put(b, w, (size_t)mfd__region_encode(name, len, w, sizeof(w)));
}

static void control(struct buf *b, uint8_t type, uint32_t round)
{
	struct mfd_hdr h = { .type = type, .round = round };
	uint8_t w[MFD_HDR_SIZE];

	mfd__hdr_encode(&h, w);
	put(b, w, sizeof(w));
}

/* Pages with text in them: they compress, and differ from each other. */
static void page_content(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)("multifd pages "[i % 14] + (i / PS + seed) % 3);
}

static size_t pack(uint8_t method, uint8_t *out, size_t cap,
		       const uint8_t *in, size_t n)
{
	uLongf zn = cap;

	if (method == MFD_METHOD_ZLIB)
		return compress2(out, &zn, in, n, 6) == Z_OK ? zn : 0;
	zn = ZSTD_compress(out, cap, in, n, 3);
	return ZSTD_isError(zn) ? 0 : zn;
}

/* A page packet of `normal` pages at offsets off[], then `zero` zero
 * pages, compressed unless raw or the method is none; the pages named by
 * runs of adjacent pages when `runs`. */
static void pages_as(struct buf *b, uint8_t method, bool raw, uint32_t round,
		     uint64_t num, uint32_t region_idx, const uint64_t *off,
		     uint32_t normal, uint32_t zero, bool runs)
{
	static uint8_t plain[PPP * PS], packed[2 * PPP * PS];
	struct mfd_hdr h = { .type = MFD_PKT_PAGES,
			     .method = method,
			     .packet_num = num,
			     .round = round,
			     .region = region_idx,
			     .normal = normal,
			     .zero = zero };
	uint8_t w[MFD_HDR_SIZE + 8 * PPP];
	size_t plen = (size_t)normal * PS, clen = plen;

	page_content(plain, plen, (unsigned)num);
	if (method != MFD_METHOD_NONE && !raw && normal) {
		clen = pack(method, packed, sizeof(packed), plain, plen);
		if (!clen || clen >= plen)
			abort();
	} else if (method != MFD_METHOD_NONE && raw) {
		h.flags = MFD_FLAG_RAW;
	}
	h.payload_len = (uint32_t)clen;
	if (runs) {
		h.flags |= MFD_FLAG_RUNS;
		h.normal_runs = (uint16_t)mfd__runs_encode(off, normal, PS,
							   w + MFD_HDR_SIZE);
		h.zero_runs = (uint16_t)mfd__runs_encode(
			off + normal, zero, PS,
			w + MFD_HDR_SIZE + 8 * (size_t)h.normal_runs);
	} else {
		mfd__offsets_encode(off, normal + zero, w + MFD_HDR_SIZE);
	}
	mfd__hdr_encode(&h, w);
	put(b, w, MFD_HDR_SIZE + 8 * (size_t)mfd__hdr_entries(&h));
	put(b, clen == plen ? plain : packed, clen);
}

static void pages(struct buf *b, uint8_t method, bool raw, uint32_t round,
		  uint64_t num, uint32_t region_idx, const uint64_t *off,
		  uint32_t normal, uint32_t zero)
{
	pages_as(b, method, raw, round, num, region_idx, off, normal, zero,
		 false);
}

static void recv_seeds(const char *dir)
{
	static const uint64_t off[] = { 0, 3 * PS, 4 * PS, 9 * PS, 63 * PS,
					127 * PS };
	static const char *names[] = { "none", "zlib", "zstd" };
	struct buf b;
	char name[32];

	/* a whole handshake from the fuzz input: mode 0 */
	b.n = 0;
	put(&b, "\0", 1);
	init(&b, 0, 1, MFD_METHOD_NONE, 1);
	region(&b, "ram", REGION_LEN);
	pages(&b, MFD_METHOD_NONE, false, 0, 1, 0, off, 2, 1);
	control(&b, MFD_PKT_END, 0);
	save(dir, "recv", "handshake-none", &b);

	/* two regions, the second made by the callback, memory zeroed */
	b.n = 0;
	put(&b, "\x18", 1);
	init(&b, 0, 1, MFD_METHOD_NONE, 2);
	region(&b, "ram", REGION_LEN);
	region(&b, "extra", 16 * PS);
	pages(&b, MFD_METHOD_NONE, false, 0, 1, 1, off, 2, 0);
	pages(&b, MFD_METHOD_NONE, false, 0, 2, 1, off + 1, 0, 1);
	control(&b, MFD_PKT_SYNC, 0);
	pages(&b, MFD_METHOD_NONE, false, 1, 3, 0, off, 1, 1);
	control(&b, MFD_PKT_END, 1);
	save(dir, "recv", "callback-region", &b);

	/* the prefixed handshake (mode 4 + method): packets only */
	for (uint8_t m = MFD_METHOD_NONE; m <= MFD_METHOD_ZSTD; m++) {
		b.n = 0;
		put(&b, (uint8_t[]){ (uint8_t)(4 | m) }, 1);
		pages(&b, m, false, 0, 1, 0, off, 3, 2);
		if (m != MFD_METHOD_NONE)
			pages(&b, m, true, 0, 2, 0, off + 2, 2, 0);
		control(&b, MFD_PKT_SYNC, 0);
		pages(&b, m, false, 1, 3, 0, off + 1, PPP - 2, 0);
		pages(&b, m, false, 1, 4, 0, off + 4, 0, 2);
		control(&b, MFD_PKT_END, 1);
		snprintf(name, sizeof(name), "pages-%s", names[m]);
		save(dir, "recv", name, &b);
	}
	b.n = 0;
	put(&b, "\x04", 1);
	pages_as(&b, MFD_METHOD_NONE, false, 0, 1, 0, off + 1, 4, 1, true);
	control(&b, MFD_PKT_END, 0);
	save(dir, "recv", "pages-runs", &b);
	b.n = 0;
	put(&b, "\x04", 1);
	control(&b, MFD_PKT_SYNC, 0);
	control(&b, MFD_PKT_SYNC, 1);
	control(&b, MFD_PKT_END, 2);
	save(dir, "recv", "sync", &b);
	b.n = 0;
	put(&b, "\x0c", 1);
	control(&b, MFD_PKT_END, 0);
	save(dir, "recv", "end", &b);
}

/* fuzz-header.c's prefix: method, page size shift, pages per packet,
 * region count, region length */
static void header_prefix(struct buf *b, uint8_t method)
{
	uint8_t p[13] = { method, 0, 0, PPP, 1 };

	p[5 + 5] = (uint8_t)(REGION_LEN >> 16);
	put(b, p, sizeof(p));
}

static void header_seeds(const char *dir)
{
	static const uint64_t off[] = { 0, PS, 5 * PS, 2 * PS };
	struct buf b;

	b.n = 0;
	header_prefix(&b, MFD_METHOD_NONE);
	pages(&b, MFD_METHOD_NONE, false, 0, 1, 0, off, 2, 2);
	save(dir, "header", "pages-none", &b);
	b.n = 0;
	header_prefix(&b, MFD_METHOD_ZSTD);
	pages(&b, MFD_METHOD_ZSTD, false, 3, 7, 0, off, 3, 1);
	save(dir, "header", "pages-zstd", &b);
	b.n = 0;
	header_prefix(&b, MFD_METHOD_ZLIB);
	pages(&b, MFD_METHOD_ZLIB, true, 3, 7, 0, off, 1, 0);
	save(dir, "header", "pages-zlib-raw", &b);
	b.n = 0;
	header_prefix(&b, MFD_METHOD_NONE);
	pages_as(&b, MFD_METHOD_NONE, false, 0, 1, 0, off, 3, 1, true);
	save(dir, "header", "pages-none-runs", &b);
	b.n = 0;
	header_prefix(&b, MFD_METHOD_NONE);
	control(&b, MFD_PKT_SYNC, 4);
	save(dir, "header", "sync", &b);
	b.n = 0;
	header_prefix(&b, MFD_METHOD_NONE);
	control(&b, MFD_PKT_END, 4);
	save(dir, "header", "end", &b);
}

static void init_seeds(const char *dir)
{
	struct mfd_ack ok = { 0 }, no = { .status = -71, .msg_len = 20 };
	uint8_t w[MFD_ACK_SIZE];
	struct buf b;

	b.n = 0;
	init(&b, 0, 4, MFD_METHOD_ZSTD, 2);
	mfd__ack_encode(&ok, w);
	put(&b, w, sizeof(w));
	save(dir, "init", "channel0-ok", &b);
	b.n = 0;
	init(&b, 3, 4, MFD_METHOD_ZLIB, 0);
	mfd__ack_encode(&no, w);
	put(&b, w, sizeof(w));
	save(dir, "init", "channel3-refused", &b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	recv_seeds(argv[1]);
	header_seeds(argv[1]);
	init_seeds(argv[1]);
	return 0;
}
