/* SPDX-License-Identifier: MIT */
/*
 * failover.h - a dead channel is not a dead session (feature FAILOVER,
 * protocol.md 15). The receiver is the one that decides a channel is
 * lost (its connection failed, closed or went silent past the timeout):
 * it stops that channel's thread, so nothing more of it is applied, and
 * reports it (LOST) before its answer at the next barrier. The sender
 * keeps a ledger of what each channel carried since the last barrier and
 * sends again, in the next round, what the lost ones carried. A sender
 * whose own connection fails retires the channel and closes it, which
 * the receiver then finds.
 */
#ifndef MFD_FAILOVER_H
#define MFD_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "packet.h"
#include "session.h"

static inline bool mfd__failover(const struct mfd_session *s)
{
	return s->features & MFD_FEAT_FAILOVER;
}

/* Retire ch (any thread): why says what happened to it (NULL: its fate
 * was set already). Fails the session when fewer channels than allowed
 * remain; false when ch was retired already. */
bool mfd__retire(struct mfd_session *s, struct mfd_channel *ch,
		 const char *why);

/* Sender, owner thread, with s->lock held: record the job ch is being
 * given (from ch's job fields and, for pages, s->batch). -ENOMEM. */
int mfd__ledger_record(struct mfd_session *s, struct mfd_channel *ch,
		       enum mfd_job job);
void mfd__ledger_free(struct mfd_channel *ch);

/*
 * Sender, owner thread, after every live channel passed a barrier: what
 * the channels the receiver reported lost carried goes again (queued
 * with the calls below, now part of the next round; *resent, unless
 * NULL: anything was), and every ledger starts afresh.
 */
int mfd__failover_barrier(struct mfd_session *s, bool *resent);

/* Sender, a channel thread waiting for an answer: a LOST packet (header
 * h) came; take its reason (under the deadline d). */
int mfd__take_lost(struct mfd_session *s, struct mfd_channel *ch,
		   const struct mfd_hdr *h, const struct mfd_deadline *d);

/* Receiver, a channel thread after a barrier: send the LOST reports ch
 * has not sent yet. */
int mfd__send_lost_reports(struct mfd_session *s, struct mfd_channel *ch);

/* Provided by send.c: queue work as the public calls do. */
int mfd__queue_pages(struct mfd_session *s, int region,
		     const uint64_t *offsets, size_t count);
int mfd__queue_zero_range(struct mfd_session *s, int region, uint64_t offset,
			  uint64_t length);
int mfd__queue_blob_piece(struct mfd_session *s, uint32_t id,
			  const struct mfd_blob_desc *desc,
			  const uint8_t *data);
int mfd__flush_batch(struct mfd_session *s);

#endif
