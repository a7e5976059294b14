/* SPDX-License-Identifier: MIT */
/*
 * progress.h - what a running transfer shows: a one-line display on
 * stderr (bytes, total, rate, ETA, round), and for monitoring systems one
 * JSON line of statistics per interval on stdout. Both read the session's
 * statistics from a thread of their own.
 */
#ifndef MFD_PROGRESS_H
#define MFD_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "multifd.h"

struct progress {
	const struct mfd_session *s;
	uint64_t total;	       /* bytes expected, 0 when unknown; atomic
				  (a receiver learns them at the
				  handshake: progress_expect()) */
	bool line;	       /* draw the one-line display */
	bool log;	       /* ... as a line a second, stderr being no
				  terminal (a log file: no \r, no escapes) */
	double stats_interval; /* seconds between JSON lines, 0: none */
	/* the thread's */
	uint64_t shown; /* bytes the display said last */
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

/* bytes more are expected (a region the sender announced). */
void progress_expect(struct progress *p, uint64_t bytes);
/* Start the thread when there is anything to show. */
void progress_start(struct progress *p);
/* Stop it and clear the line. Takes a never-started progress. */
void progress_stop(struct progress *p);

/* One JSON object: totals and per channel, to stdout or f. */
void print_stats_json(const struct mfd_session *s);
void fprint_stats_json(FILE *f, const struct mfd_session *s);
/* text as a JSON string, quotes included: '"' and '\\' escaped, bytes
 * outside 0x20..0x7e as \\u00XX */
void fprint_json_string(FILE *f, const char *text);
/* bytes as "40.0 KiB", "1.5 GiB" into buf. */
void human_size(double bytes, char *buf, size_t len);
/* One round's figures as a JSON object. */
void fprint_round_json(FILE *f, const struct mfd_round_stats *rs);

#endif
