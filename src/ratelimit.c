/* SPDX-License-Identifier: MIT */
/*
 * ratelimit.c - a token bucket kept as a schedule: every send pushes the
 * time at which the bytes sent so far are paid for; a sender that runs
 * ahead of that time by more than the burst sleeps the difference. One
 * lock per packet, never held while sleeping.
 */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "ratelimit.h"

#define SLICE_NS 100000000ull /* 100 ms */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mfd__ratelimit_init(struct mfd_ratelimit *rl, uint64_t rate)
{
	rl->rate = rate;
	/* 20 ms of burst: smooth enough for a 5 % accuracy over seconds,
	 * loose enough that packets of several MiB still flow */
	rl->burst_ns = 20000000;
	rl->next_ns = 0;
	pthread_mutex_init(&rl->lock, NULL);
}

void mfd__ratelimit_destroy(struct mfd_ratelimit *rl)
{
	pthread_mutex_destroy(&rl->lock);
}

int mfd__ratelimit_take(struct mfd_ratelimit *rl, uint64_t bytes,
			const bool *stop, unsigned tick_ms,
			int (*tick)(void *arg), void *arg)
{
	uint64_t now, due, cost, next_tick, tick_ns = tick_ms * 1000000ull;
	struct timespec ts;
	int r;

	if (!rl->rate)
		return 0;
	cost = (uint64_t)((double)bytes * 1e9 / (double)rl->rate);
	pthread_mutex_lock(&rl->lock);
	now = now_ns();
	/* an idle bucket fills up to the burst, no more */
	if (rl->next_ns + rl->burst_ns < now)
		rl->next_ns = now - rl->burst_ns;
	rl->next_ns += cost;
	due = rl->next_ns;
	pthread_mutex_unlock(&rl->lock);
	if (due <= now + rl->burst_ns)
		return 0;
	due -= rl->burst_ns;
	next_tick = now + tick_ns;
	/* in slices, so that a failed or cancelled session is not kept
	 * waiting for a slow schedule */
	while (!__atomic_load_n(stop, __ATOMIC_RELAXED) &&
	       (now = now_ns()) < due) {
		uint64_t until = due - now > SLICE_NS ? now + SLICE_NS : due;

		if (tick && tick_ns && now >= next_tick) {
			r = tick(arg);
			if (r)
				return r;
			next_tick = now + tick_ns;
		}
		if (tick && tick_ns && until > next_tick)
			until = next_tick;
		ts.tv_sec = (time_t)(until / 1000000000u);
		ts.tv_nsec = (long)(until % 1000000000u);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	return 0;
}
