/* SPDX-License-Identifier: MIT */
/*
 * bench.h - one benchmark run: a receiver and a sender in this process,
 * rounds (fixed, or live with a writer dirtying pages until the dirty set
 * fits the downtime), a byte-for-byte check and the raw ceiling.
 */
#ifndef MFD_BENCH_H
#define MFD_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

struct bench_result {
	bool identical;
	double seconds;	/* sender: start to finish */
	double gib_per_s;  /* page bytes moved per second */
	double ceiling;	   /* raw sockets, GiB/s; 0 when skipped */
	double send_cpu_per_gib, recv_cpu_per_gib;
	double send_reg_per_gib, recv_reg_per_gib; /* rdma: registration */
	struct mfd_stats st; /* the sender's */
	unsigned nrounds;
	/* the library's figures of every round, the one mfd_send_finish()
	 * ends included; nrounds entries; free() it */
	struct mfd_round_stats *rounds;
	/* --live */
	bool converged;	 /* the dirty set fitted the downtime */
	double downtime; /* seconds of the final stop-and-copy round */
	/* --postcopy: the receiver's statistics (requests, latencies), the
	 * wire rate of the last precopy round and of the stream from the
	 * receiver's switch on (bytes per second), the switch's seconds
	 * (from mfd_send_postcopy() until the receiver's regions are under
	 * userfaultfd), and the guest's touches */
	struct mfd_stats rx;
	double precopy_bps, postcopy_bps, switch_s;
	double postcopy_t0, postcopy_t1, postcopy_bytes; /* the sender's */
	uint64_t touches;
};

/* One run as the options say; errors are printed. 0 when the run
 * completed (res->identical says whether the memory matched). */
int bench_run(const struct opts *o, struct bench_result *res);

extern const char *const content_names[4];

/* Fill one page by content kind; mixed: a quarter each of zero, text,
 * random, and a short repeated pattern. */
void fill_page(uint8_t *p, uint32_t ps, enum content c, uint64_t *st);

#endif
