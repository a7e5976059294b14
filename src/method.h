/* SPDX-License-Identifier: MIT */
/*
 * method.h - the method contract: how a batch of pages becomes the bytes
 * of one packet and back. Methods never do I/O; the core hands what
 * send_prepare() builds to the channel's transport, and reads the payload
 * into what recv_prepare() returns. One const ops table per method.
 *
 * Threads: every op runs on the channel's own thread, with that channel's
 * struct mfd_mctx and struct mfd_packet; nothing is shared between
 * channels. send_setup, send_cleanup, recv_setup, recv_finish and
 * recv_cleanup are optional (NULL: nothing to do).
 */
#ifndef MFD_METHOD_H
#define MFD_METHOD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "packet.h"

struct mfd_region {
	char name[MFD_MAX_REGION_NAME + 1];
	uint8_t *mem;
	uint64_t length;
	/* Receiver: the memory read as zeros before the session, so a zero
	 * page needs clearing only where the session wrote data before;
	 * `written` (one bit per page, like QEMU's receivedmap: 32 KiB per
	 * GiB of 4 KiB pages) records where. */
	bool zeroed;
	uint64_t *written;
	/* Sender, one-sided transports: the region could not be registered
	 * for one-sided writes, so its page packets go STAGED */
	bool staged;
	/* Sender: the file mem maps (mfd_session_region_file()), a
	 * duplicate the session closes, or -1; by_file: every channel's
	 * transport sends the region's pages from it, not from mem */
	int file_fd;
	uint64_t file_off;
	bool by_file;
};

/* One channel's method context. */
struct mfd_mctx {
	/* immutable after setup */
	uint8_t method;
	int level;
	uint32_t page_size;
	uint32_t pages_per_packet;
	/* the method's own per-channel state, from *_setup() */
	void *state;
	/* the buffer payloads are built in (send_setup) or decompressed
	 * from (recv_setup); NULL for none. The core shows it to the
	 * transport (register_buffer) */
	uint8_t *out;
	size_t out_len;
	/* why the last op failed; the core prefixes the channel */
	char err[200];
};

/*
 * One packet in the making (sender) or in the reading (receiver). Buffers
 * are sized for pages_per_packet at setup and reused for every packet.
 */
struct mfd_packet {
	struct mfd_hdr hdr;
	const struct mfd_region *region;
	/* hdr.normal offsets of pages with data, then hdr.zero offsets of
	 * zero pages */
	uint64_t *offsets;
	/* the encoded header and offsets (BLOB packets: the descriptor) */
	uint8_t *wire;
	size_t wire_len;
	/* sender, BLOB packets: the encoded descriptor, which follows the
	 * header in place of offsets (desc_len 0 for page packets) */
	const uint8_t *desc;
	size_t desc_len;
	/*
	 * Sender: the list to send; iov[0] is the header unless
	 * header_apart (zero-copy sends the header with its own copying
	 * write). Receiver: where the payload must land.
	 */
	struct iovec *iov;
	int niov;
	bool header_apart;
	size_t next_packet_size; /* bytes on the wire, header included */
	/*
	 * Sender: when not NULL, the normal pages' content copied side by
	 * side (page i at copy + i * page_size), so that a page rewritten
	 * meanwhile cannot change what is compressed, checksummed and sent.
	 * raw_from_region: a packet sent raw still points at the region
	 * (one-sided transports place region bytes by their address).
	 */
	const uint8_t *copy;
	/* Sender: where a compressed method copies the normal pages before
	 * compressing them, when they were judged in place (copy is NULL):
	 * a packet that looks incompressible goes raw from the region,
	 * uncopied, as method none's pages do; the compressor reads its
	 * input more than once and must read one content (it sets copy) */
	uint8_t *stable;
	bool raw_from_region;
	/* Sender: the pages' bytes go on the stream from the copy, flagged
	 * MFD_FLAG_STAGED (mfd__packet_seal() sets it for none and RAW) */
	bool staged;
};

struct mfd_method_ops {
	const char *name;
	/* Allocate m->state; called once per channel before any packet.
	 * Must leave m->state freeable by send_cleanup on failure. */
	int (*send_setup)(struct mfd_mctx *m);
	/*
	 * Turn p (region, offsets, hdr.normal, hdr.zero, hdr.packet_num,
	 * hdr.round filled by the core) into p->iov: the header first
	 * (encode it with mfd__packet_seal()), then the payload.
	 * Fills next_packet_size. Must not allocate.
	 */
	int (*send_prepare)(struct mfd_mctx *m, struct mfd_packet *p);
	/* Free m->state; takes a half-built or NULL state. */
	void (*send_cleanup)(struct mfd_mctx *m);
	int (*recv_setup)(struct mfd_mctx *m);
	/*
	 * p->hdr is validated and p->offsets checked against the region:
	 * fill p->iov with where hdr.payload_len bytes must land.
	 */
	int (*recv_prepare)(struct mfd_mctx *m, struct mfd_packet *p);
	/*
	 * The payload is in place: finish the pages (decompress). Must
	 * check that every normal page got exactly page_size bytes and
	 * write nothing outside them. May be NULL (nothing to finish).
	 */
	int (*recv_finish)(struct mfd_mctx *m, struct mfd_packet *p);
	void (*recv_cleanup)(struct mfd_mctx *m);
};

extern const struct mfd_method_ops mfd__method_none;
#ifdef HAVE_ZLIB
extern const struct mfd_method_ops mfd__method_zlib;
#endif
#ifdef HAVE_ZSTD
extern const struct mfd_method_ops mfd__method_zstd;
#endif

/* The ops of a method, or NULL when it is unknown or not built in. */
const struct mfd_method_ops *mfd__method_get(unsigned method);

/* Default and range of levels for a method. */
void mfd__method_levels(unsigned method, int *min, int *max, int *def);

/* Encode p->hdr and the offsets (as runs where that is shorter: it may
 * set MFD_FLAG_RUNS) or the descriptor into p->wire and, unless
 * header_apart, make it iov[0]. Sets p->niov to 1 (or 0). */
void mfd__packet_seal(struct mfd_packet *p, uint32_t page_size);

/*
 * Append the normal pages of p as iov entries, one per run of adjacent
 * pages (or one entry for p->copy). Returns the byte count. The receiver and the sender of the
 * `none` method (and raw packets) share it.
 */
size_t mfd__packet_page_iov(struct mfd_packet *p, uint32_t page_size);

/*
 * For compressed methods: `compress` turns the page runs iov[1..n) (plain
 * bytes in all) into out, returning the compressed size, 0 when it did not
 * fit in plain - 1 bytes, or -errno. The helper builds the list: header
 * and compressed bytes, or header and the pages themselves, flagged raw,
 * when compression did not shrink them.
 */
typedef long (*mfd_compress_fn)(struct mfd_mctx *m, const struct iovec *iov,
				int first, int n, size_t plain);
int mfd__compressed_send_prepare(struct mfd_mctx *m, struct mfd_packet *p,
				 mfd_compress_fn compress, uint8_t *out);
/* For compressed methods: a raw payload lands in the pages, a compressed
 * one in the channel's staging buffer. */
void mfd__compressed_recv_prepare(struct mfd_mctx *m, struct mfd_packet *p,
				  uint8_t *staging);

#endif
