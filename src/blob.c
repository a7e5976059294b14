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
		    uint32_t page_size, uint64_t limit, struct mfd_blob **out,
		    char *err, size_t errlen)
{
	struct mfd_blob **at = &b->head, *bl;
	char name[4 * MFD_MAX_REGION_NAME + 8];
	uint64_t padded, piece;

	mfd__escape(name, sizeof(name), d->name, d->name_len);
	if (id < b->next_id)
		BAD(-EBADMSG, "blob %u ('%s') was delivered already", id, name);
	while (*at && (*at)->id < id)
		at = &(*at)->next;
	bl = *at && (*at)->id == id ? *at : NULL;
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
	if (bl->claimed[piece])
		BAD(-EBADMSG, "blob %u ('%s'): the piece at %llu came twice",
		    id, name, (unsigned long long)d->offset);
	bl->claimed[piece] = 1;
	*out = bl;
	return 0;
}

void mfd__blob_piece_done(struct mfd_blob *bl)
{
	bl->done++;
}

int mfd__blobs_take(struct mfd_blobs *b, uint32_t round,
		    struct mfd_blob **list, char *err, size_t errlen)
{
	uint32_t want = b->next_id;

	*list = NULL;
	for (struct mfd_blob *bl = b->head; bl; bl = bl->next, want++) {
		if (bl->id != want)
			BAD(-EBADMSG, "round %u ends with blob %u ('%s') but "
				      "without blob %u",
			    round, bl->id, bl->name, want);
		if (bl->round != round || bl->done != bl->pieces)
			BAD(-EBADMSG, "round %u ends with %u of the %u pieces "
				      "of blob %u ('%s') of round %u",
			    round, bl->done, bl->pieces, bl->id, bl->name,
			    bl->round);
	}
	*list = b->head;
	b->head = NULL;
	b->next_id = want;
	b->held_bytes = 0;
	b->held = 0;
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
