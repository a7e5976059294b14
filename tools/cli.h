/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the multifd subcommands share: their options, the parsing
 * of numbers and sizes, and the printing of results.
 */
#ifndef MFD_CLI_H
#define MFD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "multifd.h"

enum content { CONTENT_RANDOM, CONTENT_TEXT, CONTENT_ZERO, CONTENT_MIXED };

struct opts {
	struct mfd_config cfg;
	bool json;
	bool quiet;
	bool progress;
	double stats_interval;
	uint8_t secret[4096]; /* --secret-file's bytes */
	/* send, recv: --region NAME=PATH */
	unsigned nregions;
	struct {
		const char *name;
		const char *path;
	} regions[MFD_MAX_REGIONS];
	/* bench */
	uint64_t size;
	enum content content;
	unsigned rounds;
	unsigned rewrite_pct;
	bool pretouch;
	bool no_ceiling;
	const char *uri; /* bench: where the in-process pair meets */
	bool live;	 /* bench --live */
	double dirty_rate; /* MiB/s */
	bool hot_set;
	unsigned downtime_ms;
	unsigned max_rounds;
	bool sweep;
};

/* Subcommands. argv[0] is the subcommand's name. Return the exit status. */
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/*
 * Parse the options every subcommand shares plus `extra` (a getopt_long
 * table ending with a zero entry, may be NULL) handled by `on_extra`.
 * Leaves optind at the first operand. Returns 0, or 2 after printing the
 * error (or 1 for --help/--version, after printing them: exit 0 then).
 */
struct option;
int parse_opts(int argc, char **argv, struct opts *o, const char *usage,
	       const struct option *extra,
	       int (*on_extra)(int opt, const char *arg, struct opts *o));

/* "123", "4K", "2M", "1G", "1T" (powers of 1024). 0 or -1 and a message. */
int parse_size(const char *s, const char *what, uint64_t *out);
int parse_uint(const char *s, const char *what, unsigned min, unsigned max,
	       unsigned *out);

/* Error helper: "multifd: " + message, to stderr. */
void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the final figures of a session, as text or one JSON object. */
void print_result(const struct opts *o, const char *what,
		  const struct mfd_session *s, bool ok);

double now_seconds(void);

/* Start the progress display and statistics lines the options ask for. */
struct progress;
void progress_from_opts(struct progress *p, const struct opts *o,
			const struct mfd_session *s, uint64_t total);

#endif
