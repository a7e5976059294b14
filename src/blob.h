/* SPDX-License-Identifier: MIT */
/*
 * blob.h - the receiver's store of blobs (named byte streams such as
 * device state) being reassembled from their pieces, until the barrier
 * that ends their round delivers them, whole and in the order they were
 * sent. What it holds is bounded: bytes by the receiver's max_blob_bytes,
 * blobs by MFD_BLOBS_HELD_MAX. Every function is called under the
 * session's lock, except mfd__blobs_take(), whose caller is alone.
 */
#ifndef MFD_BLOB_H
#define MFD_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "packet.h"

/* At most this many blobs are held at once (received, not delivered). */
#define MFD_BLOBS_HELD_MAX 1024

struct mfd_blob {
	uint32_t id;	/* the sender numbers its blobs 0, 1, ... */
	uint32_t round;
	char name[MFD_MAX_REGION_NAME + 1];
	uint64_t total;
	uint8_t *data;	/* total bytes, rounded up to whole pages */
	uint64_t padded;
	uint32_t pieces;
	uint32_t done;	/* pieces whose payload is in place */
	uint8_t *claimed; /* one byte per piece: its packet arrived, its
			     payload is in place (blob.c) */
	struct mfd_blob *next; /* by id */
};

struct mfd_blobs {
	struct mfd_blob *head;
	uint32_t next_id;    /* lower ids were delivered */
	uint64_t held_bytes; /* what the held blobs take */
	unsigned held;
};

/*
 * A piece of blob `id` of round `round` arrived, with descriptor *d
 * (checked against its header): find the blob, or make room for it
 * within `limit` bytes, and claim the piece. *out is the blob, whose
 * data the caller fills at d->offset, then calls mfd__blob_piece_done().
 * Refuses (-EBADMSG or -ENOSPC, with a sentence in err) a blob already
 * delivered, a piece that came before, a name, length or round that
 * differs from the blob's first piece, and what does not fit. With
 * again_ok (failover, after a lost channel) a piece may come again and
 * replaces the first copy, and moves its blob on to `round`; a piece of
 * a blob delivered already returns 1 (to be read and dropped).
 */
int mfd__blob_claim(struct mfd_blobs *b, uint32_t id, uint32_t round,
		    const struct mfd_blob_desc *d, uint64_t piece_bytes,
		    uint32_t page_size, uint64_t limit, bool again_ok,
		    struct mfd_blob **out, char *err, size_t errlen);
/* The piece at offset (of piece_bytes) is in place. */
void mfd__blob_piece_done(struct mfd_blob *bl, uint64_t offset,
			  uint64_t piece_bytes);

/*
 * At the barrier that ends round `round` (every channel is past its
 * pieces, and none touches the store): detach every held blob, which
 * must be complete, of that round and numbered on from the last one
 * delivered; returns the list (by id) in *list, or -EBADMSG with the
 * reason. With `keep` (a channel was lost in the round: its pieces come
 * again in the next) only the complete ones up to the first that is not
 * are taken; the rest wait. The caller delivers them and frees them with
 * mfd__blob_free().
 */
int mfd__blobs_take(struct mfd_blobs *b, uint32_t round, bool keep,
		    struct mfd_blob **list, char *err, size_t errlen);

void mfd__blob_free(struct mfd_blob *bl);
/* Free every held blob (the session ends). */
void mfd__blobs_free(struct mfd_blobs *b);

#endif
