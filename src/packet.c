/* SPDX-License-Identifier: MIT */
/*
 * packet.c - encode and validate the wire format of docs/protocol.md.
 * Every multi-byte field is big-endian. Decoders check every field,
 * reserved ones included, before the caller may act on any of them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "packet.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v >> 32);
	put32(p + 4, v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static int all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

#define BAD(...)                                         \
	do {                                             \
		if (err)                                 \
			snprintf(err, errlen, __VA_ARGS__); \
		return -EBADMSG;                         \
	} while (0)

/*
 * Init: magic u32 | version u16 | reserved u16 | session id u64 |
 * channel u16 | channels u16 | method u8 | reserved 3 | page size u32 |
 * pages per packet u32 | features u64 | region count u32 | timeout u32
 */
void mfd__init_encode(const struct mfd_init *in, uint8_t buf[MFD_INIT_SIZE])
{
	memset(buf, 0, MFD_INIT_SIZE);
	put32(buf, MFD_MAGIC_INIT);
	put16(buf + 4, in->version);
	put64(buf + 8, in->session_id);
	put16(buf + 16, in->channel);
	put16(buf + 18, in->channels);
	buf[20] = in->method;
	put32(buf + 24, in->page_size);
	put32(buf + 28, in->pages_per_packet);
	put64(buf + 32, in->features);
	put32(buf + 40, in->region_count);
	put32(buf + 44, in->timeout_ms);
}

int mfd__init_decode(const uint8_t buf[MFD_INIT_SIZE], struct mfd_init *out,
		     char *err, size_t errlen)
{
	uint32_t magic = get32(buf);

	/* a TLS record of type handshake, version 3.x: a ClientHello */
	if ((magic >> 16) == 0x1603)
		BAD("the sender uses TLS (its first bytes are a TLS "
		    "ClientHello), and this receiver does not: configure "
		    "TLS on both ends");
	if (magic != MFD_MAGIC_INIT)
		BAD("bad init magic 0x%08x (expected 0x%08x)", magic,
		    MFD_MAGIC_INIT);
	out->version = get16(buf + 4);
	if (out->version != MFD_PROTO_VERSION)
		BAD("unsupported protocol version %u (expected %u)",
		    out->version, MFD_PROTO_VERSION);
	if (!all_zero(buf + 6, 2) || !all_zero(buf + 21, 3))
		BAD("reserved bytes of the init packet are not zero");
	out->session_id = get64(buf + 8);
	out->channel = get16(buf + 16);
	out->channels = get16(buf + 18);
	out->method = buf[20];
	out->page_size = get32(buf + 24);
	out->pages_per_packet = get32(buf + 28);
	out->features = get64(buf + 32);
	out->region_count = get32(buf + 40);
	out->timeout_ms = get32(buf + 44);
	if (out->channels < 1 || out->channels > MFD_MAX_CHANNELS)
		BAD("channel count %u outside 1..%u", out->channels,
		    MFD_MAX_CHANNELS);
	/* with postcopy, index `channels` is the urgent channel */
	if (out->channel >= out->channels +
				    !!(out->features & MFD_FEAT_POSTCOPY))
		BAD("channel index %u not below the channel count %u",
		    out->channel, out->channels);
	if (out->method > MFD_METHOD_ZSTD)
		BAD("unknown method %u", out->method);
	if (out->page_size < 512 || out->page_size > 65536 ||
	    (out->page_size & (out->page_size - 1)))
		BAD("page size %u is not a power of two in 512..65536",
		    out->page_size);
	if (out->pages_per_packet < 1 || out->pages_per_packet > 1024 ||
	    (uint64_t)out->pages_per_packet * out->page_size > (4u << 20))
		BAD("pages per packet %u outside 1..1024 or over 4 MiB",
		    out->pages_per_packet);
	if (out->features & ~MFD_FEATURES_KNOWN)
		BAD("unknown feature bits 0x%llx",
		    (unsigned long long)(out->features & ~MFD_FEATURES_KNOWN));
	if (out->region_count > MFD_MAX_REGIONS)
		BAD("region count %u over %u", out->region_count,
		    MFD_MAX_REGIONS);
	if (out->channel == 0 && out->region_count == 0)
		BAD("channel 0 announces no region");
	if (out->channel != 0 && out->region_count != 0)
		BAD("channel %u announces regions (only channel 0 may)",
		    out->channel);
	return 0;
}

/* Ack: magic u32 | version u16 | message length u16 | status i32 |
 * timeout u32 */
void mfd__ack_encode(const struct mfd_ack *a, uint8_t buf[MFD_ACK_SIZE])
{
	memset(buf, 0, MFD_ACK_SIZE);
	put32(buf, MFD_MAGIC_ACK);
	put16(buf + 4, MFD_PROTO_VERSION);
	put16(buf + 6, a->msg_len);
	put32(buf + 8, (uint32_t)a->status);
	put32(buf + 12, a->timeout_ms);
}

int mfd__ack_decode(const uint8_t buf[MFD_ACK_SIZE], struct mfd_ack *out,
		    char *err, size_t errlen)
{
	if (get32(buf) != MFD_MAGIC_ACK) {
		char text[4 * MFD_ACK_SIZE + 1];

		/* what answered is likely no multifd receiver at all (an
		 * HTTP server): its bytes say what it is */
		BAD("bad handshake answer magic 0x%08x (the answer began "
		    "\"%s\": is a multifd receiver listening there?)",
		    get32(buf), mfd__escape(text, sizeof(text), buf, 8));
	}
	if (get16(buf + 4) != MFD_PROTO_VERSION)
		BAD("receiver speaks protocol version %u (expected %u)",
		    get16(buf + 4), MFD_PROTO_VERSION);
	out->timeout_ms = get32(buf + 12);
	out->msg_len = get16(buf + 6);
	out->status = (int32_t)get32(buf + 8);
	if (out->status > 0 || (out->status == 0 && out->msg_len))
		BAD("handshake answer with status %d and a %u-byte message",
		    out->status, out->msg_len);
	return 0;
}

int mfd__region_encode(const char *name, uint64_t length, uint8_t *buf,
		       size_t buflen)
{
	size_t n = strlen(name);

	if (n == 0 || n > MFD_MAX_REGION_NAME)
		return -ENAMETOOLONG;
	if (buflen < 2 + n + 8)
		return -ENOSPC;
	put16(buf, (uint16_t)n);
	memcpy(buf + 2, name, n);
	put64(buf + 2 + n, length);
	return (int)(2 + n + 8);
}

/*
 * Header: magic u32 | type u8 | method u8 | flags u16 | packet number u64
 * | round u32 | region u32 | normal u32 | zero u32 | payload length u32 |
 * normal runs u16 | zero runs u16 (MFD_FLAG_RUNS; else reserved, 0) |
 * checksum u64 (page packets, when negotiated; else 0)
 */
void mfd__hdr_encode(const struct mfd_hdr *h, uint8_t buf[MFD_HDR_SIZE])
{
	memset(buf, 0, MFD_HDR_SIZE);
	put32(buf, MFD_MAGIC_PKT);
	buf[4] = h->type;
	buf[5] = h->method;
	put16(buf + 6, h->flags);
	put64(buf + 8, h->packet_num);
	put32(buf + 16, h->round);
	put32(buf + 20, h->region);
	put32(buf + 24, h->normal);
	put32(buf + 28, h->zero);
	put32(buf + 32, h->payload_len);
	put16(buf + 36, h->normal_runs);
	put16(buf + 38, h->zero_runs);
	put64(buf + MFD_HDR_CHECKSUM_AT, h->checksum);
}

void mfd__hdr_set_checksum(uint8_t buf[MFD_HDR_SIZE], uint64_t sum)
{
	put64(buf + MFD_HDR_CHECKSUM_AT, sum);
}

/* What page and BLOB packets share: method, flags, payload length. */
static int check_payload(const struct mfd_hdr *h, const struct mfd_limits *lim,
			 char *err, size_t errlen)
{
	uint64_t plain = (uint64_t)h->normal * lim->page_size;

	if (h->method != lim->method)
		BAD("packet %llu: method %u but the session uses %u",
		    (unsigned long long)h->packet_num, h->method, lim->method);
	if (h->flags & ~MFD_FLAGS_KNOWN)
		BAD("packet %llu: unknown flag bits 0x%x",
		    (unsigned long long)h->packet_num,
		    h->flags & ~MFD_FLAGS_KNOWN);
	if ((h->flags & MFD_FLAG_RAW) && h->method == MFD_METHOD_NONE)
		BAD("packet %llu: raw flag with method none",
		    (unsigned long long)h->packet_num);
	if ((h->flags & MFD_FLAG_STAGED) && h->method != MFD_METHOD_NONE &&
	    !(h->flags & MFD_FLAG_RAW))
		BAD("packet %llu: staged flag on a compressed payload",
		    (unsigned long long)h->packet_num);
	if (h->method == MFD_METHOD_NONE || (h->flags & MFD_FLAG_RAW)) {
		if (h->payload_len != plain)
			BAD("packet %llu: payload length %u, but %u normal "
			    "pages make %llu",
			    (unsigned long long)h->packet_num, h->payload_len,
			    h->normal, (unsigned long long)plain);
	} else if (h->normal == 0 ? h->payload_len != 0
				  : h->payload_len == 0 ||
					    h->payload_len >= plain) {
		/* A compressed payload that did not shrink goes raw. */
		BAD("packet %llu: compressed payload length %u for %u normal "
		    "pages, expected 1..%llu",
		    (unsigned long long)h->packet_num, h->payload_len,
		    h->normal, (unsigned long long)(plain ? plain - 1 : 0));
	}
	return 0;
}

static int check_pages(const struct mfd_hdr *h, const struct mfd_limits *lim,
		       char *err, size_t errlen)
{
	uint64_t pages = (uint64_t)h->normal + h->zero;

	if (h->region >= lim->region_count)
		BAD("packet %llu: unknown region %u (the session has %u)",
		    (unsigned long long)h->packet_num, h->region,
		    lim->region_count);
	if (pages == 0 || pages > lim->pages_per_packet)
		BAD("packet %llu: %u normal + %u zero pages, expected 1..%u",
		    (unsigned long long)h->packet_num, h->normal, h->zero,
		    lim->pages_per_packet);
	/* each run names at least one page, and pages of a kind need a
	 * run of it */
	if ((h->flags & MFD_FLAG_RUNS) &&
	    (h->normal_runs > h->normal || h->zero_runs > h->zero ||
	     !h->normal_runs != !h->normal || !h->zero_runs != !h->zero))
		BAD("packet %llu: %u and %u runs for %u normal and %u zero "
		    "pages, expected 1..pages runs of each kind present",
		    (unsigned long long)h->packet_num, h->normal_runs,
		    h->zero_runs, h->normal, h->zero);
	return check_payload(h, lim, err, errlen);
}

/* A blob's pieces are all pages with data, and not staged: they always
 * travel on the stream. The region field numbers the blob. */
static int check_blob(const struct mfd_hdr *h, const struct mfd_limits *lim,
		      char *err, size_t errlen)
{
	if (h->zero || h->normal > lim->pages_per_packet)
		BAD("packet %llu: blob piece of %u + %u zero pages, expected "
		    "0..%u and no zero pages",
		    (unsigned long long)h->packet_num, h->normal, h->zero,
		    lim->pages_per_packet);
	if (h->flags & (MFD_FLAG_STAGED | MFD_FLAG_RUNS))
		BAD("packet %llu: %s flag on a blob piece",
		    (unsigned long long)h->packet_num,
		    h->flags & MFD_FLAG_STAGED ? "staged" : "runs");
	return check_payload(h, lim, err, errlen);
}

int mfd__hdr_decode(const uint8_t buf[MFD_HDR_SIZE],
		    const struct mfd_limits *lim, struct mfd_hdr *out,
		    char *err, size_t errlen)
{
	uint32_t magic = get32(buf);

	if (magic != MFD_MAGIC_PKT)
		BAD("bad packet magic 0x%08x (expected 0x%08x)", magic,
		    MFD_MAGIC_PKT);
	out->type = buf[4];
	out->method = buf[5];
	out->flags = get16(buf + 6);
	if (!(out->flags & MFD_FLAG_RUNS) && !all_zero(buf + 36, 4))
		BAD("reserved bytes of the packet header are not zero");
	out->normal_runs = get16(buf + 36);
	out->zero_runs = get16(buf + 38);
	out->packet_num = get64(buf + 8);
	out->round = get32(buf + 16);
	out->region = get32(buf + 20);
	out->normal = get32(buf + 24);
	out->zero = get32(buf + 28);
	out->payload_len = get32(buf + 32);
	out->checksum = get64(buf + MFD_HDR_CHECKSUM_AT);
	if (out->checksum &&
	    ((out->type != MFD_PKT_PAGES && out->type != MFD_PKT_ZERO_RANGE &&
	      out->type != MFD_PKT_BLOB) ||
	     !(lim->features & MFD_FEAT_CHECKSUM)))
		BAD("checksum field set, but checksums were not negotiated "
		    "for packet type %u",
		    out->type);
	if (out->type != MFD_PKT_PAGES && out->type != MFD_PKT_BLOB &&
	    (out->method || out->flags || out->normal || out->zero ||
	     (out->region && out->type != MFD_PKT_ZERO_RANGE &&
	      out->type != MFD_PKT_REQUEST && out->type != MFD_PKT_LOST)))
		BAD("control packet type %u with non-zero page fields",
		    out->type);
	switch (out->type) {
	case MFD_PKT_PAGES:
		return check_pages(out, lim, err, errlen);
	case MFD_PKT_BLOB:
		return check_blob(out, lim, err, errlen);
	case MFD_PKT_SYNC:
	case MFD_PKT_END:
	case MFD_PKT_SYNC_ACK:
	case MFD_PKT_KEEPALIVE:
		if (out->payload_len)
			BAD("control packet type %u with a payload",
			    out->type);
		return 0;
	case MFD_PKT_FIN:
	case MFD_PKT_ABORT:
		if (out->payload_len > MFD_FIN_MSG_MAX)
			BAD("%s message of %u bytes (at most %u)",
			    out->type == MFD_PKT_FIN ? "FIN" : "ABORT",
			    out->payload_len, MFD_FIN_MSG_MAX);
		return 0;
	case MFD_PKT_ZERO_RANGE:
		if (out->region >= lim->region_count)
			BAD("packet %llu: unknown region %u (the session has "
			    "%u)",
			    (unsigned long long)out->packet_num, out->region,
			    lim->region_count);
		if (out->payload_len != MFD_RANGE_SIZE)
			BAD("packet %llu: ZERO_RANGE payload of %u bytes "
			    "(expected %u)",
			    (unsigned long long)out->packet_num,
			    out->payload_len, MFD_RANGE_SIZE);
		return 0;
	case MFD_PKT_POSTCOPY:
		if (!(lim->features & MFD_FEAT_POSTCOPY))
			BAD("POSTCOPY packet, but postcopy was not negotiated");
		return 0; /* its length depends on the channel */
	case MFD_PKT_REQUEST:
		if (!(lim->features & MFD_FEAT_POSTCOPY))
			BAD("REQUEST packet, but postcopy was not negotiated");
		if (out->region >= lim->region_count)
			BAD("request %llu: unknown region %u (the session has "
			    "%u)",
			    (unsigned long long)out->packet_num, out->region,
			    lim->region_count);
		if (out->payload_len != MFD_REQUEST_SIZE)
			BAD("request %llu: payload of %u bytes (expected %u)",
			    (unsigned long long)out->packet_num,
			    out->payload_len, MFD_REQUEST_SIZE);
		if (out->round)
			BAD("request %llu: round %u (expected 0)",
			    (unsigned long long)out->packet_num, out->round);
		return 0;
	case MFD_PKT_LOST:
		if (!(lim->features & MFD_FEAT_FAILOVER))
			BAD("LOST packet, but failover was not negotiated");
		if (out->region >= MFD_MAX_CHANNELS)
			BAD("LOST packet for channel %u (at most %u channels)",
			    out->region, MFD_MAX_CHANNELS);
		if (out->payload_len > MFD_FIN_MSG_MAX)
			BAD("LOST message of %u bytes (at most %u)",
			    out->payload_len, MFD_FIN_MSG_MAX);
		return 0;
	case MFD_PKT_VERIFY:
		if (!(lim->features & MFD_FEAT_VERIFY))
			BAD("VERIFY packet, but verification was not "
			    "negotiated");
		if (out->payload_len != 8 * lim->region_count)
			BAD("VERIFY payload of %u bytes for %u regions",
			    out->payload_len, lim->region_count);
		return 0;
	default:
		BAD("unknown packet type %u", out->type);
	}
}

void mfd__range_encode(uint64_t offset, uint64_t length,
		       uint8_t buf[MFD_RANGE_SIZE])
{
	put64(buf, offset);
	put64(buf + 8, length);
}

int mfd__range_decode(const uint8_t buf[MFD_RANGE_SIZE], uint32_t page_size,
		      uint64_t region_len, uint64_t *offset, uint64_t *length,
		      char *err, size_t errlen)
{
	uint64_t off = get64(buf), len = get64(buf + 8);

	if ((off | len) % page_size || len == 0 || off > region_len ||
	    len > region_len - off)
		BAD("zero range %llu+%llu: expected whole pages of %u bytes "
		    "inside the region's %llu",
		    (unsigned long long)off, (unsigned long long)len,
		    page_size, (unsigned long long)region_len);
	*offset = off;
	*length = len;
	return 0;
}

size_t mfd__blob_desc_encode(const struct mfd_blob_desc *d, uint8_t *buf)
{
	memset(buf, 0, MFD_BLOB_DESC_SIZE);
	put64(buf, d->total);
	put64(buf + 8, d->offset);
	put16(buf + 16, d->name_len);
	memcpy(buf + MFD_BLOB_DESC_SIZE, d->name, d->name_len);
	return MFD_BLOB_DESC_SIZE + d->name_len;
}

int mfd__blob_desc_decode(const uint8_t buf[MFD_BLOB_DESC_SIZE],
			  struct mfd_blob_desc *d, char *err, size_t errlen)
{
	d->total = get64(buf);
	d->offset = get64(buf + 8);
	d->name_len = get16(buf + 16);
	if (!all_zero(buf + 18, 6))
		BAD("reserved bytes of a blob descriptor are not zero");
	if (d->name_len == 0 || d->name_len > MFD_MAX_REGION_NAME)
		BAD("blob name of %u bytes (expected 1..%u)", d->name_len,
		    MFD_MAX_REGION_NAME);
	return 0;
}

uint32_t mfd__blob_piece_pages(uint64_t total, uint64_t offset,
			       uint32_t page_size, uint32_t pages_per_packet)
{
	uint64_t left = total - offset;
	uint64_t pages = left / page_size + (left % page_size != 0);

	return pages < pages_per_packet ? (uint32_t)pages : pages_per_packet;
}

int mfd__blob_desc_check(const struct mfd_blob_desc *d, const struct mfd_hdr *h,
			 uint32_t page_size, uint32_t pages_per_packet,
			 char *err, size_t errlen)
{
	uint64_t piece = (uint64_t)page_size * pages_per_packet;
	uint32_t want;

	if (d->offset % piece || (d->offset >= d->total && d->offset))
		BAD("blob piece at %llu of a blob of %llu bytes (pieces start "
		    "at multiples of %llu inside it)",
		    (unsigned long long)d->offset,
		    (unsigned long long)d->total, (unsigned long long)piece);
	want = mfd__blob_piece_pages(d->total, d->offset, page_size,
				     pages_per_packet);
	if (h->normal != want)
		BAD("blob piece at %llu of a blob of %llu bytes with %u pages "
		    "(expected %u)",
		    (unsigned long long)d->offset,
		    (unsigned long long)d->total, h->normal, want);
	return 0;
}

void mfd__request_encode(uint64_t offset, uint64_t length,
			 uint8_t buf[MFD_REQUEST_SIZE])
{
	put64(buf, offset);
	put64(buf + 8, length);
}

int mfd__request_decode(const uint8_t buf[MFD_REQUEST_SIZE],
			uint32_t page_size, uint32_t max_pages,
			uint64_t region_len, uint64_t *offset,
			uint64_t *length, char *err, size_t errlen)
{
	uint64_t off = get64(buf), len = get64(buf + 8);

	if (off % page_size)
		BAD("offset 0x%llx is not aligned to the page size %u",
		    (unsigned long long)off, page_size);
	if (len == 0 || len % page_size ||
	    len > (uint64_t)max_pages * page_size)
		BAD("length %llu is not 1..%u whole pages of %u bytes",
		    (unsigned long long)len, max_pages, page_size);
	if (off >= region_len || len > region_len - off)
		BAD("offset 0x%llx + %llu bytes outside the region (size "
		    "0x%llx)",
		    (unsigned long long)off, (unsigned long long)len,
		    (unsigned long long)region_len);
	*offset = off;
	*length = len;
	return 0;
}

uint64_t mfd__dirty_map_words(uint64_t region_len, uint32_t page_size)
{
	return (region_len / page_size + 63) / 64;
}

void mfd__offsets_encode(const uint64_t *off, uint32_t n, uint8_t *buf)
{
	for (uint32_t i = 0; i < n; i++)
		put64(buf + 8 * i, off[i]);
}

int mfd__offsets_decode(const uint8_t *buf, uint32_t n, uint32_t page_size,
			uint64_t region_len, uint64_t *off, char *err,
			size_t errlen)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t o = get64(buf + 8 * i);

		if (o & (page_size - 1))
			BAD("offset 0x%llx is not aligned to the page size %u",
			    (unsigned long long)o, page_size);
		if (o >= region_len || region_len - o < page_size)
			BAD("offset 0x%llx outside the region (size 0x%llx)",
			    (unsigned long long)o,
			    (unsigned long long)region_len);
		off[i] = o;
	}
	return 0;
}

uint32_t mfd__runs_encode(const uint64_t *off, uint32_t n, uint32_t page_size,
			  uint8_t *buf)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n;) {
		uint32_t len = 1;

		while (i + len < n && len < MFD_RUN_PAGES_MAX &&
		       off[i + len] == off[i] + (uint64_t)len * page_size)
			len++;
		put64(buf + 8 * k++, (off[i] / page_size) << 16 | (len - 1));
		i += len;
	}
	return k;
}

int mfd__runs_decode(const uint8_t *buf, uint32_t entries, uint32_t pages,
		     uint32_t page_size, uint64_t region_len, uint64_t *off,
		     char *err, size_t errlen)
{
	uint64_t region_pages = region_len / page_size;
	uint32_t done = 0;

	for (uint32_t i = 0; i < entries; i++) {
		uint64_t e = get64(buf + 8 * i), first = e >> 16;
		uint32_t len = (uint32_t)(e & 0xffff) + 1;

		if (len > pages - done)
			BAD("run %u of %u pages at page %llu: more than the %u "
			    "pages the header names",
			    i, len, (unsigned long long)first, pages);
		if (first >= region_pages || region_pages - first < len)
			BAD("run %u of %u pages at offset 0x%llx outside the "
			    "region (size 0x%llx)",
			    i, len, (unsigned long long)(first * page_size),
			    (unsigned long long)region_len);
		for (uint32_t j = 0; j < len; j++)
			off[done++] = (first + j) * page_size;
	}
	if (done != pages)
		BAD("%u runs name %u pages, but the header names %u", entries,
		    done, pages);
	return 0;
}
