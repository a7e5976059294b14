/* SPDX-License-Identifier: MIT */
/* rounds.c - see rounds.h. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rounds.h"

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

void mfd__rounds_init(struct mfd_rounds *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

void mfd__rounds_free(struct mfd_rounds *r)
{
	free(r->log);
	pthread_mutex_destroy(&r->lock);
}

static bool is_set(const struct timespec *t)
{
	return t->tv_sec || t->tv_nsec;
}

/* The next round's dirty pages count from this round's scan, or, for a
 * round without one (a full round, mfd_send_region()), from its start,
 * when it began to read the memory. */
void mfd__rounds_begin(struct mfd_rounds *r, uint64_t bytes, uint64_t pages)
{
	if (is_set(&r->scan))
		r->prev_scan = r->scan;
	else if (is_set(&r->t0))
		r->prev_scan = r->t0;
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	r->bytes0 = bytes;
	r->pages0 = pages;
	r->dirty = 0;
	r->scan = (struct timespec){ 0 };
	r->busy = (struct timespec){ 0 };
}

void mfd__rounds_busy(struct mfd_rounds *r)
{
	if (!is_set(&r->busy))
		clock_gettime(CLOCK_MONOTONIC, &r->busy);
}

void mfd__rounds_scan(struct mfd_rounds *r)
{
	if (!is_set(&r->scan))
		clock_gettime(CLOCK_MONOTONIC, &r->scan);
}

void mfd__rounds_dirty(struct mfd_rounds *r, uint64_t n)
{
	r->dirty += n;
}

void mfd__rounds_end(struct mfd_rounds *r, uint64_t bytes, uint64_t pages,
		     uint32_t page_size)
{
	struct mfd_round_stats st = { 0 };
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	st.pages = pages - r->pages0;
	st.bytes = bytes - r->bytes0;
	st.seconds = since(&r->t0, &now);
	st.bytes_per_s = st.seconds > 0 ? (double)st.bytes / st.seconds : 0;
	st.send_seconds = is_set(&r->busy) ? since(&r->busy, &now) : st.seconds;
	st.send_bytes_per_s = st.send_seconds > 0
				      ? (double)st.bytes / st.send_seconds
				      : 0;
	st.dirty_pages = r->dirty;
	/* the pages found dirty at this round's scan were dirtied since the
	 * previous round's scan */
	if (r->dirty && is_set(&r->prev_scan) &&
	    since(&r->prev_scan, &r->scan) > 0)
		st.dirty_pages_per_s =
			(double)r->dirty / since(&r->prev_scan, &r->scan);
	/* stopping now leaves what got dirty while this round ran, at the
	 * rate seen, to go at this round's bandwidth */
	if (st.bytes_per_s > 0)
		st.projected_downtime_s = st.dirty_pages_per_s * st.seconds *
					  page_size / st.bytes_per_s;
	pthread_mutex_lock(&r->lock);
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct mfd_round_stats *log =
			realloc(r->log, cap * sizeof(*log));

		if (log) {
			r->log = log;
			r->cap = cap;
		}
	}
	/* out of memory, the figures stop; the round itself completed */
	if (r->n < r->cap) {
		st.round = r->n;
		r->log[r->n++] = st;
	}
	pthread_mutex_unlock(&r->lock);
	mfd__rounds_begin(r, bytes, pages);
}

int mfd__rounds_get(struct mfd_rounds *r, unsigned i, void *out, size_t size)
{
	int err = -ENOENT;

	pthread_mutex_lock(&r->lock);
	if (i < r->n) {
		if (size > sizeof(r->log[i])) {
			memset((uint8_t *)out + sizeof(r->log[i]), 0,
			       size - sizeof(r->log[i]));
			size = sizeof(r->log[i]);
		}
		memcpy(out, &r->log[i], size);
		err = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}
