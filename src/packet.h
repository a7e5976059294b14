/* SPDX-License-Identifier: MIT */
/*
 * packet.h - the wire format (docs/protocol.md is the reference): encoding
 * and validation of the channel handshake and of page, SYNC and END
 * packets. Pure functions: no I/O, no allocation, no session state, so
 * that tests and fuzzers can call them on any buffer.
 */
#ifndef MFD_PACKET_H
#define MFD_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "multifd.h"

#define MFD_PROTO_VERSION 1

#define MFD_MAGIC_INIT 0x4d464449u /* "MFDI" */
#define MFD_MAGIC_ACK 0x4d464441u  /* "MFDA" */
#define MFD_MAGIC_PKT 0x4d464450u  /* "MFDP" */
#define MFD_MAGIC_CHAL 0x4d464443u /* "MFDC" */
#define MFD_MAGIC_PROOF 0x4d464452u /* "MFDR" */

#define MFD_INIT_SIZE 48
#define MFD_ACK_SIZE 16
#define MFD_HDR_SIZE 48
#define MFD_REGION_ENTRY_MAX (2 + MFD_MAX_REGION_NAME + 8)

/* Authentication (feature MFD_FEAT_AUTH): after the init, the sender's
 * nonce; the receiver answers with a challenge (magic, reserved, its
 * nonce, its proof), the sender with a proof (magic, reserved, proof). */
#define MFD_NONCE_SIZE 32
#define MFD_MAC_SIZE 32
#define MFD_CHAL_SIZE (8 + MFD_NONCE_SIZE + MFD_MAC_SIZE)
#define MFD_PROOF_SIZE (8 + MFD_MAC_SIZE)

/* A FIN may carry the receiver's reason for failing the session. */
#define MFD_FIN_MSG_MAX 1024

/* Packet types. */
enum {
	MFD_PKT_PAGES = 1,
	MFD_PKT_SYNC = 2,
	MFD_PKT_END = 3,
	MFD_PKT_FIN = 4, /* receiver -> sender: all pages are in place, or
			    (with a message as payload) why not */
	MFD_PKT_VERIFY = 5, /* channel 0, before END: a digest per region */
	MFD_PKT_SYNC_ACK = 6, /* receiver -> sender on one-sided transports:
				 every page of the round is applied */
	MFD_PKT_KEEPALIVE = 7, /* sender -> receiver: an idle channel is
				  alive; nothing to do */
	MFD_PKT_ABORT = 8, /* sender -> receiver: the sender failed the
			      session; its payload says why */
	MFD_PKT_ZERO_RANGE = 9, /* sender -> receiver: a range of pages of
				   one region reads zero */
	MFD_PKT_BLOB = 10, /* sender -> receiver: one piece of a named byte
			      stream (device state), delivered whole at the
			      round's end */
	MFD_PKT_POSTCOPY = 11, /* sender -> receiver, on every channel: the
				  switch to postcopy; ends the round like a
				  SYNC, and on channel 0 carries the pages
				  still to come (protocol.md 12) */
	MFD_PKT_REQUEST = 12, /* receiver -> sender, on the urgent channel:
				 send these pages now */
	MFD_PKT_LOST = 13, /* receiver -> sender, with FAILOVER, before a
			      SYNC_ACK or FIN: channel `region` was lost
			      since the last barrier, its payload says why
			      (protocol.md 15) */
};

/* A REQUEST payload: offset and length, u64 each, as a ZERO_RANGE's. */
#define MFD_REQUEST_SIZE MFD_RANGE_SIZE

/* A ZERO_RANGE payload: offset and length, u64 each. */
#define MFD_RANGE_SIZE 16

/*
 * A BLOB packet carries, after its header and in place of offsets, a
 * descriptor: the blob's total length (u64), the offset of this piece in
 * it (u64), the name's length (u16), 6 reserved bytes, then the name.
 * The pieces are fixed: piece k covers bytes [k * P, (k + 1) * P) of the
 * blob, with P = pages_per_packet * page_size, and travels as hdr.normal
 * pages, the last one padded with zeros.
 */
#define MFD_BLOB_DESC_SIZE 24
#define MFD_BLOB_DESC_MAX (MFD_BLOB_DESC_SIZE + MFD_MAX_REGION_NAME)

struct mfd_blob_desc {
	uint64_t total;	 /* bytes of the whole blob */
	uint64_t offset; /* of this piece: a multiple of P */
	uint16_t name_len;
	char name[MFD_MAX_REGION_NAME + 1];
};

/* Page packet flags. */
#define MFD_FLAG_RAW 0x0001u /* compressed method, payload sent as is */
/* The payload is the pages as they are (method none, or RAW), carried on
 * the stream into the receiver's staging buffer and copied into the pages
 * there: a one-sided transport's sender whose pages must not change under
 * a checksum sends a copy, which it cannot place by address. */
#define MFD_FLAG_STAGED 0x0002u
/* The pages are named by runs of adjacent pages rather than one offset
 * each: normal_runs + zero_runs entries of 8 bytes, each the page index
 * of a run's first page (offset / page size) shifted left by 16, ORed
 * with the run's length in pages minus 1. 128 adjacent pages take one
 * entry: a 56-byte header, which goes inline on RDMA. */
#define MFD_FLAG_RUNS 0x0004u
#define MFD_FLAGS_KNOWN (MFD_FLAG_RAW | MFD_FLAG_STAGED | MFD_FLAG_RUNS)
#define MFD_RUN_PAGES_MAX 65536u

/* Feature bits of the init packet. */
#define MFD_FEAT_AUTH 0x1ull	 /* HMAC-SHA256 challenge-response */
#define MFD_FEAT_CHECKSUM 0x2ull /* xxHash3-64 of every page packet */
#define MFD_FEAT_VERIFY 0x4ull	 /* region digests before END */
/* Postcopy: one more connection, the urgent channel, whose init names
 * the index equal to the channel count (protocol.md 12). */
#define MFD_FEAT_POSTCOPY 0x8ull
/* Failover: a lost channel is retired and what it carried in its round
 * sent again on the others (protocol.md 15). */
#define MFD_FEAT_FAILOVER 0x10ull
#define MFD_FEATURES_KNOWN \
	(MFD_FEAT_AUTH | MFD_FEAT_CHECKSUM | MFD_FEAT_VERIFY | \
	 MFD_FEAT_POSTCOPY | MFD_FEAT_FAILOVER)

/* Channel handshake, sender -> receiver, MFD_INIT_SIZE bytes. */
struct mfd_init {
	uint16_t version;
	uint64_t session_id;
	uint16_t channel;
	uint16_t channels;
	uint8_t method;
	uint32_t page_size;
	uint32_t pages_per_packet;
	uint64_t features;
	uint32_t region_count; /* table follows on channel 0 only */
	uint32_t timeout_ms;   /* the sender's stall limit, 0 = none */
};

/* Handshake answer, receiver -> sender: MFD_ACK_SIZE bytes, then
 * msg_len bytes of an error message when status is not 0. */
struct mfd_ack {
	int32_t status; /* 0 or a negative errno */
	uint16_t msg_len;
	uint32_t timeout_ms; /* the receiver's stall limit, 0 = none */
};

/* A page, SYNC, END or FIN packet header: MFD_HDR_SIZE bytes, followed
 * (page packets) by normal + zero offsets of 8 bytes, then the payload. */
struct mfd_hdr {
	uint8_t type;
	uint8_t method;
	uint16_t flags;
	uint64_t packet_num;
	uint32_t round;
	uint32_t region;
	uint32_t normal;
	uint32_t zero;
	uint32_t payload_len;
	uint16_t normal_runs; /* MFD_FLAG_RUNS: entries naming normal pages */
	uint16_t zero_runs;   /* ... and zero pages; else both 0 */
	uint64_t checksum; /* feature MFD_FEAT_CHECKSUM, page packets */
};

/* The 8-byte entries that follow a page packet's header. */
static inline uint32_t mfd__hdr_entries(const struct mfd_hdr *h)
{
	return (h->flags & MFD_FLAG_RUNS)
		       ? (uint32_t)h->normal_runs + h->zero_runs
		       : h->normal + h->zero;
}

/* Where the checksum sits in the header; it is hashed as zeros. */
#define MFD_HDR_CHECKSUM_AT 40

/* What the receiver negotiated, to validate page headers against. */
struct mfd_limits {
	uint8_t method;
	uint32_t page_size;
	uint32_t pages_per_packet;
	uint32_t region_count;
	uint64_t features;
};

void mfd__init_encode(const struct mfd_init *in, uint8_t buf[MFD_INIT_SIZE]);
/* Validates magic, version, reserved bytes, counts and sizes. */
int mfd__init_decode(const uint8_t buf[MFD_INIT_SIZE], struct mfd_init *out,
		     char *err, size_t errlen);

void mfd__ack_encode(const struct mfd_ack *a, uint8_t buf[MFD_ACK_SIZE]);
int mfd__ack_decode(const uint8_t buf[MFD_ACK_SIZE], struct mfd_ack *out,
		    char *err, size_t errlen);

/* One region table entry: name length (u16), name, length (u64). Returns
 * the encoded size, or -ENAMETOOLONG. */
int mfd__region_encode(const char *name, uint64_t length, uint8_t *buf,
		       size_t buflen);

void mfd__hdr_encode(const struct mfd_hdr *h, uint8_t buf[MFD_HDR_SIZE]);
/* Store a checksum into an encoded header. */
void mfd__hdr_set_checksum(uint8_t buf[MFD_HDR_SIZE], uint64_t sum);
/* Validates every field against *lim (page packets: counts, method,
 * region index, payload length). Offsets are checked separately. */
int mfd__hdr_decode(const uint8_t buf[MFD_HDR_SIZE],
		    const struct mfd_limits *lim, struct mfd_hdr *out,
		    char *err, size_t errlen);

/* A ZERO_RANGE payload to and from host order; decoding checks that the
 * range is page-aligned, not empty and inside a region of region_len. */
void mfd__range_encode(uint64_t offset, uint64_t length,
		       uint8_t buf[MFD_RANGE_SIZE]);
int mfd__range_decode(const uint8_t buf[MFD_RANGE_SIZE], uint32_t page_size,
		      uint64_t region_len, uint64_t *offset, uint64_t *length,
		      char *err, size_t errlen);

/* A BLOB descriptor to the wire (returns its size) and back. Decoding
 * reads the fixed part: the name follows (name_len bytes), and
 * mfd__blob_desc_check() judges it all against the header. */
size_t mfd__blob_desc_encode(const struct mfd_blob_desc *d, uint8_t *buf);
int mfd__blob_desc_decode(const uint8_t buf[MFD_BLOB_DESC_SIZE],
			  struct mfd_blob_desc *d, char *err, size_t errlen);
/* The offset starts a piece inside the blob, and hdr->normal is the
 * number of pages that piece takes (the caller judges the name). */
int mfd__blob_desc_check(const struct mfd_blob_desc *d, const struct mfd_hdr *h,
			 uint32_t page_size, uint32_t pages_per_packet,
			 char *err, size_t errlen);
/* Pages the piece of a blob of `total` bytes at `offset` takes. */
uint32_t mfd__blob_piece_pages(uint64_t total, uint64_t offset,
			       uint32_t page_size, uint32_t pages_per_packet);

/* A REQUEST payload to and from host order; decoding checks that the
 * range is whole pages, 1..max_pages of them, inside a region of
 * region_len, and names the bad value in err. */
void mfd__request_encode(uint64_t offset, uint64_t length,
			 uint8_t buf[MFD_REQUEST_SIZE]);
int mfd__request_decode(const uint8_t buf[MFD_REQUEST_SIZE],
			uint32_t page_size, uint32_t max_pages,
			uint64_t region_len, uint64_t *offset,
			uint64_t *length, char *err, size_t errlen);

/* A POSTCOPY payload on channel 0 holds one bitmap per region, in the
 * region table's order, of whole big-endian u64 words (bit i of word
 * i / 64 is page i): this many words for a region. */
uint64_t mfd__dirty_map_words(uint64_t region_len, uint32_t page_size);

/* Offsets in wire order (big-endian u64) to and from host order. */
void mfd__offsets_encode(const uint64_t *off, uint32_t n, uint8_t *buf);
/* Decodes and checks each offset: page-aligned and the whole page inside
 * region_len. Returns 0 or -EBADMSG with the bad offset named in err. */
int mfd__offsets_decode(const uint8_t *buf, uint32_t n, uint32_t page_size,
			uint64_t region_len, uint64_t *off, char *err,
			size_t errlen);
/* The n offsets as runs of adjacent pages (MFD_FLAG_RUNS entries) in buf,
 * which has room for n entries; returns how many entries it wrote. */
uint32_t mfd__runs_encode(const uint64_t *off, uint32_t n, uint32_t page_size,
			  uint8_t *buf);
/* Expands `entries` run entries into exactly `pages` offsets, each
 * checked as mfd__offsets_decode() checks them. 0 or -EBADMSG. */
int mfd__runs_decode(const uint8_t *buf, uint32_t entries, uint32_t pages,
		     uint32_t page_size, uint64_t region_len, uint64_t *off,
		     char *err, size_t errlen);


#endif
