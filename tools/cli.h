/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the multifd subcommands share: their options, the parsing
 * of numbers and sizes, and the printing of results.
 */
#ifndef MFD_CLI_H
#define MFD_CLI_H

#include <getopt.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "multifd.h"

enum content { CONTENT_RANDOM, CONTENT_TEXT, CONTENT_ZERO, CONTENT_MIXED };

struct opts {
	struct mfd_config cfg;
	bool json;
	bool quiet;
	bool progress;
	bool channels_given; /* -c: else fd: URIs give one per descriptor */
	double stats_interval;
	uint8_t secret[4096]; /* --secret-file's bytes */
	/* send, recv: --region NAME=PATH */
	unsigned nregions;
	struct {
		const char *name;
		const char *path;
	} regions[MFD_MAX_REGIONS];
	struct file_id {
		unsigned long long dev, ino; /* the file's, or its directory's */
		const char *base; /* NULL: the file exists; else its last name */
		bool known;	   /* false: compare the paths as strings */
	} region_ids[MFD_MAX_REGIONS]; /* --region PATHs, to refuse one twice */
	bool inplace; /* recv --inplace: write into existing files */
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
	bool postcopy;		  /* bench --postcopy */
	bool postcopy_sequential; /* --postcopy-pattern sequential */
	/* an option given that means something only with --live or
	 * --postcopy, to refuse it without them */
	const char *live_only, *postcopy_only;
};

/*
 * The first thing main() does, before anything is opened: each of fds 0, 1
 * and 2 that is closed becomes /dev/null, so that no file or socket the
 * command opens later is taken for stdin, stdout or stderr (the statistics
 * would land in a received image), and SIGPIPE is ignored, so that a closed
 * pipe is a write error the command handles, not a death. Returns 0, or
 * -1 after a message when /dev/null cannot be opened.
 */
int cli_init(void);

/*
 * A running output could not be written (the statistics on stdout, the
 * progress display on stderr): says so once per stream on stderr, naming
 * err, and that the transfer is not affected. The caller stops that
 * output; the exit status does not change.
 */
void output_failed(FILE *f, const char *what, int err);

/*
 * The last thing before a command's exit status is returned: flushes
 * stdout and returns the status to exit with. What the command was asked
 * to print and could not is an error: "cannot write ... to stdout: ERR"
 * and 1 instead of 0. A --json result is always such an output. Without
 * --json, a stdout that carries --stats-interval lines is a statistics
 * stream that a consumer may close (`| head -1`): losing it draws one
 * warning and leaves the status as the transfer made it.
 */
int finish_output(int status);

/* Where PATH is, to tell two spellings of one file apart from two files
 * (a missing file is its directory plus its last name). */
void file_identity(const char *path, struct file_id *id);
bool same_file(const struct file_id *a, const char *pa,
	       const struct file_id *b, const char *pb);

/* Subcommands. argv[0] is the subcommand's name. Return the exit status. */
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* tools/daemon.c; without json-c, a message that it is left out */
int cmd_daemon(int argc, char **argv);

/*
 * Parse the options every subcommand shares plus `extra` (a getopt_long
 * table ending with a zero entry, may be NULL) handled by `on_extra`.
 * Leaves optind at the first operand. Returns 0, or 2 after printing the
 * error (or 1 for --help/--version, after printing them: exit 0 then).
 */
struct option;
/* Whether the long option getopt_long() just returned was written as
 * less than its whole name: refused, since a prefix may mean another
 * option than the one meant (recv --blob for --blob-dir). */
bool long_option_abbreviated(char **argv, const char *name);
/* getopt_long() returned c, '?' (an unknown option, of which an
 * ambiguous prefix of table's) or ':' (a missing value, with ':' first
 * in its option string): say so, for command cmd. */
void bad_option(const char *cmd, int c, char **argv,
		const struct option *table);
int parse_opts(int argc, char **argv, struct opts *o, const char *usage,
	       const struct option *extra,
	       int (*on_extra)(int opt, const char *arg, struct opts *o));

/*
 * Option values. Every error is said as "multifd: CMD: bad OPTION 'VALUE':
 * WHY; expected WHAT", with the subcommand and the option as the user
 * spelled it (parse_opts() keeps track of both; cli_option() sets them
 * for a parser of its own). Values start with a digit: no blanks around
 * them, no sign. A value out of range says which end and names it.
 *
 * parse_size(): "123", "4K", "2M", "1G", "1T" (powers of 1024) from min to
 * max; unit is what the number counts ("bytes per second"). parse_uint():
 * a whole number from min to max; unit ("channels") may be NULL.
 * parse_real(): a decimal number (no nan, no inf). 0, or -1 after the
 * message.
 */
#define CLI_MAX_SIZE (((1ull << 24) - 1) << 40) /* 16777215T */
int parse_size(const char *s, const char *unit, uint64_t min, uint64_t max,
	       uint64_t *out);
int parse_uint(const char *s, const char *unit, unsigned min, unsigned max,
	       unsigned *out);
int parse_real(const char *s, const char *unit, double min, double max,
	       double *out);
/* v as the tool writes sizes: 4K, 16777215T, 1000 */
void size_text(uint64_t v, char *buf, size_t len);
/* The subcommand (NULL: keep) and the option (NULL: none) errors name. */
void cli_option(const char *cmd, const char *opt);
/* The option being parsed, as spelled ("-s", "--size"). */
const char *cli_current_option(void);
/* "multifd: CMD: bad OPTION 'value': " + the rest */
void opt_error(const char *value, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "multifd: CMD: " + the rest */
void cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What a file that is not a regular one is, for a message: "a directory",
 * "a FIFO", "a socket"... */
const char *file_kind(mode_t mode);

/* Error helper: "multifd: " + message, to stderr. */
void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the final figures of a session, as text or one JSON object;
 * command: "send" or "recv". */
void print_result(const struct opts *o, const char *command,
		  const struct mfd_session *s, bool ok);

double now_seconds(void);

/* Start the progress display and statistics lines the options ask for. */
struct progress;
void progress_from_opts(struct progress *p, const struct opts *o,
			const struct mfd_session *s, uint64_t total);

#endif
