/* SPDX-License-Identifier: MIT */
/*
 * ratelimit.h - one token bucket shared by every channel of a sender, so
 * that the session as a whole stays under a byte rate.
 */
#ifndef MFD_RATELIMIT_H
#define MFD_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct mfd_ratelimit {
	/* immutable after init */
	uint64_t rate;	   /* bytes per second; 0: no limit */
	uint64_t burst_ns; /* how far ahead of the schedule a sender may be */
	/* protected by lock */
	pthread_mutex_t lock;
	uint64_t next_ns; /* when the bytes taken so far are paid for */
};

void mfd__ratelimit_init(struct mfd_ratelimit *rl, uint64_t rate);
void mfd__ratelimit_destroy(struct mfd_ratelimit *rl);
/*
 * Account for `bytes` about to be sent, sleeping as long as the rate
 * requires, or until *stop turns true. A wait longer than tick_ms (when
 * not 0) calls tick(arg) every tick_ms: a channel waiting for its share
 * of a low rate says it is alive meanwhile. Returns 0, or the first
 * non-zero value of tick(), which ends the wait. Any thread.
 */
int mfd__ratelimit_take(struct mfd_ratelimit *rl, uint64_t bytes,
			const bool *stop, unsigned tick_ms,
			int (*tick)(void *arg), void *arg);

#endif
