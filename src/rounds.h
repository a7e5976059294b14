/* SPDX-License-Identifier: MIT */
/*
 * rounds.h - a sender's figures per round, for the orchestrator that
 * decides when to stop iterating (mfd_round_stats()): what a round sent,
 * how fast, how fast the caller's memory got dirty meanwhile, and what a
 * stop-and-copy would cost now.
 */
#ifndef MFD_ROUNDS_H
#define MFD_ROUNDS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "multifd.h"

struct mfd_rounds {
	/* the round in progress: owner thread only */
	struct timespec t0;	 /* its start (the previous sync's end) */
	struct timespec busy;	 /* its first send call, or unset */
	uint64_t bytes0, pages0; /* the session's totals then */
	uint64_t dirty;		 /* pages mfd_send_dirty() found in it */
	struct timespec scan;	 /* its first mfd_send_dirty() */
	struct timespec prev_scan; /* the previous round's, or its start */
	/* completed rounds; appended by the owner, read by any thread
	 * under lock */
	pthread_mutex_t lock;
	struct mfd_round_stats *log;
	size_t n, cap;
};

void mfd__rounds_init(struct mfd_rounds *r);
void mfd__rounds_free(struct mfd_rounds *r);
/* A round starts now, with the session's totals so far. */
void mfd__rounds_begin(struct mfd_rounds *r, uint64_t bytes, uint64_t pages);
/* A packet handed to a channel (pages, a sync): the first in a round
 * starts its send time. */
void mfd__rounds_busy(struct mfd_rounds *r);
/* mfd_send_dirty() begins to read the caller's bitmap: the first call in
 * a round is its scan, which the dirty rate is timed by (the queueing
 * after it may take most of the round). */
void mfd__rounds_scan(struct mfd_rounds *r);
/* ... and found n dirty pages. */
void mfd__rounds_dirty(struct mfd_rounds *r, uint64_t n);
/* The round ended (its sync completed) with these totals. Without memory
 * for them its figures are dropped: a sync never fails for its record. */
void mfd__rounds_end(struct mfd_rounds *r, uint64_t bytes, uint64_t pages,
		     uint32_t page_size);
/* Round i's figures into the first size bytes of out; -ENOENT when round
 * i has not completed. */
int mfd__rounds_get(struct mfd_rounds *r, unsigned i, void *out, size_t size);

#endif
