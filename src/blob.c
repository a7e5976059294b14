/* SPDX-License-Identifier: MIT */
/*
 * blob.c - reassembly of blobs on the receiver (see blob.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "escape.h"

/* mfd_blob.claimed, per piece */
#define PIECE_CLAIMED 1 /* its packet arrived */
#define PIECE_DONE 2	  /* and its payload is in place */

#define BAD(code, ...)                                   \
	do {                                             \
		snprintf(err, errlen, __VA_ARGS__);      \
		return (code);                           \
	} while (0)

static struct mfd_blob *blob_new(uint32_t id, uint32_t round,
				 const struct mfd_blob_desc *d,
				 uint64_t padded, uint64_t piece_bytes)
{
	struct mfd_blob *bl = calloc(1, sizeof(*bl));

	if (!bl)
		return NULL;
	bl->id = id;
	bl->round = round;
	memcpy(bl->name, d->name, d->name_len);
	bl->total = d->total;
	bl->padded = padded;
	bl->pieces = d->total ? (uint32_t)((d->total + piece_bytes - 1) /
					   piece_bytes)
			      : 1;
	bl->claimed = calloc(bl->pieces, 1);
	/* malloc(0) may return NULL: an empty blob gets one byte */
	bl->data = malloc(padded ? padded : 1);
	if (!bl->claimed || !bl->data) {
		mfd__blob_free(bl);
		return NULL;
	}
	return bl;
}

int mfd__blob_claim(struct mfd_blobs *b, uint32_t id, uint32_t round,
		    const struct mfd_blob_desc *d, uint64_t piece_bytes,
		    uint32_t page_size, uint64_t limit, bool again_ok,
		    struct mfd_blob **out, char *err, size_t errlen)
{
	struct mfd_blob **at = &b->head, *bl;
	char name[4 * MFD_MAX_REGION_NAME + 8];
	uint64_t padded, piece;

	mfd__escape(name, sizeof(name), d->name, d->name_len);
	if (id < b->next_id && again_ok)
		return 1; /* it was whole before the loss */
	if (id < b->next_id)
		BAD(-EBADMSG, "blob %u ('%s') was delivered already", id, name);
	while (*at && (*at)->id < id)
		at = &(*at)->next;
	bl = *at && (*at)->id == id ? *at : NULL;
	/* a piece sent again after a lost channel moves its blob on to
	 * the round it came in */
	if (bl && again_ok)
		bl->round = round;
	if (bl && (bl->total != d->total || bl->round != round ||
		   strlen(bl->name) != d->name_len ||
		   memcmp(bl->name, d->name, d->name_len)))
		BAD(-EBADMSG,
		    "a piece of blob %u says '%s', %llu bytes, round %u; its "
		    "first piece said '%s', %llu bytes, round %u",
		    id, name, (unsigned long long)d->total, round, bl->name,
		    (unsigned long long)bl->total, bl->round);
	if (!bl) {
		/* the length is the peer's word: judge it before allocating */
		padded = d->total > limit ? 0 : d->total +
			 (page_size - d->total % page_size) % page_size;
		if (d->total > limit || padded > limit - b->held_bytes)
			BAD(-ENOSPC,
			    "blob %u ('%s') of %llu bytes does not fit in the "
			    "receiver's limit of %llu bytes (max_blob_bytes; "
			    "%llu held)",
			    id, name, (unsigned long long)d->total,
			    (unsigned long long)limit,
			    (unsigned long long)b->held_bytes);
		if (b->held == MFD_BLOBS_HELD_MAX)
			BAD(-ENOSPC,
			    "blob %u ('%s'): %u blobs are held already, the "
			    "most a round may carry",
			    id, name, MFD_BLOBS_HELD_MAX);
		bl = blob_new(id, round, d, padded, piece_bytes);
		if (!bl)
			BAD(-ENOMEM, "no memory for blob %u ('%s') of %llu "
				     "bytes", id, name,
			    (unsigned long long)d->total);
		bl->next = *at;
		*at = bl;
		b->held_bytes += padded;
		b->held++;
	}
	piece = d->offset / piece_bytes;
	if (bl->claimed[piece] && !again_ok)
		BAD(-EBADMSG, "blob %u ('%s'): the piece at %llu came twice",
		    id, name, (unsigned long long)d->offset);
	if (bl->claimed[piece] == PIECE_DONE)
		bl->done--; /* replaced */
	bl->claimed[piece] = PIECE_CLAIMED;
	*out = bl;
	return 0;
}

void mfd__blob_piece_done(struct mfd_blob *bl, uint64_t offset,
			  uint64_t piece_bytes)
{
	uint8_t *c = &bl->claimed[offset / piece_bytes];

	/* two copies of a piece (failover) may both be claimed first */
	if (*c != PIECE_DONE) {
		*c = PIECE_DONE;
		bl->done++;
	}
}

int mfd__blobs_take(struct mfd_blobs *b, uint32_t round, bool keep,
		    struct mfd_blob **list, char *err, size_t errlen)
{
	uint32_t want = b->next_id;
	struct mfd_blob **end = &b->head;

	*list = NULL;
	for (struct mfd_blob *bl = b->head; bl; bl = bl->next, want++) {
		bool whole = bl->round == round && bl->done == bl->pieces;

		if (keep && (bl->id != want || !whole))
			break; /* it and those after it wait */
		if (bl->id != want)
			BAD(-EBADMSG, "round %u ends with blob %u ('%s') but "
				      "without blob %u",
			    round, bl->id, bl->name, want);
		if (!whole)
			BAD(-EBADMSG, "round %u ends with %u of the %u pieces "
				      "of blob %u ('%s') of round %u",
			    round, bl->done, bl->pieces, bl->id, bl->name,
			    bl->round);
		end = &bl->next;
		b->held_bytes -= bl->padded;
		b->held--;
	}
	if (end != &b->head) {
		*list = b->head;
		b->head = *end;
		*end = NULL;
	}
	/* those kept wait for the next round's barrier, whole or not */
	for (struct mfd_blob *bl = b->head; keep && bl; bl = bl->next)
		bl->round = round + 1;
	b->next_id = want;
	return 0;
}

void mfd__blob_free(struct mfd_blob *bl)
{
	if (!bl)
		return;
	free(bl->data);
	free(bl->claimed);
	free(bl);
}

void mfd__blobs_free(struct mfd_blobs *b)
{
	while (b->head) {
		struct mfd_blob *bl = b->head;

		b->head = bl->next;
		mfd__blob_free(bl);
	}
	b->held_bytes = 0;
	b->held = 0;
}
