/* SPDX-License-Identifier: MIT */
/* cli.c - option parsing and result printing shared by the subcommands. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "progress.h"

enum {
	OPT_ZERO_COPY = 256,
	OPT_PAGE_SIZE,
	OPT_PPP,
	OPT_NO_ZERO_DETECT,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_PROGRESS,
	OPT_STATS_INTERVAL,
	OPT_MAX_BANDWIDTH,
	OPT_SECRET_FILE,
	OPT_CHECKSUM,
	OPT_VERIFY,
	OPT_PREFAULT,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_TLS_HOSTNAME,
	OPT_TLS,
	OPT_MIN_CHANNELS,
};

static const struct option common[] = {
	{ "channels", required_argument, NULL, 'c' },
	{ "method", required_argument, NULL, 'm' },
	{ "level", required_argument, NULL, 'l' },
	{ "zero-copy", no_argument, NULL, OPT_ZERO_COPY },
	{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
	{ "pages-per-packet", required_argument, NULL, OPT_PPP },
	{ "no-zero-detect", no_argument, NULL, OPT_NO_ZERO_DETECT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "stats-interval", required_argument, NULL, OPT_STATS_INTERVAL },
	{ "max-bandwidth", required_argument, NULL, OPT_MAX_BANDWIDTH },
	{ "secret-file", required_argument, NULL, OPT_SECRET_FILE },
	{ "checksum", no_argument, NULL, OPT_CHECKSUM },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "prefault", no_argument, NULL, OPT_PREFAULT },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-hostname", required_argument, NULL, OPT_TLS_HOSTNAME },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "min-channels", required_argument, NULL, OPT_MIN_CHANNELS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
};

#define NCOMMON (sizeof(common) / sizeof(common[0]))

void die_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("multifd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The subcommand being run and the option being parsed, as the user
 * spelled it ("-c", "--max-bandwidth"), for option errors. */
static const char *cur_cmd; /* NULL: none (multifd --help) */
static char cur_opt[80];

void cli_option(const char *cmd, const char *opt)
{
	if (cmd)
		cur_cmd = cmd;
	snprintf(cur_opt, sizeof(cur_opt), "%s", opt ? opt : "");
}

const char *cli_current_option(void)
{
	return cur_opt;
}

static void vcmd_error(const char *value, const char *fmt, va_list ap)
{
	fputs("multifd: ", stderr);
	if (cur_cmd)
		fprintf(stderr, "%s: ", cur_cmd);
	if (value)
		fprintf(stderr, "bad %s '%s': ", cur_opt, value);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cmd_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcmd_error(NULL, fmt, ap);
	va_end(ap);
}

void opt_error(const char *value, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcmd_error(value, fmt, ap);
	va_end(ap);
}

/* fd 1 was closed when the command started (a pipe with no reader took
 * its place): writing to it says so, not "Broken pipe" */
static bool stdout_closed;

/*
 * A closed stdin, stdout or stderr gets a descriptor in its place, so
 * that no socket or file the command opens takes its number (and its
 * output). stdin and stderr get /dev/null; stdout gets a pipe with no
 * reader, so that writing the results fails with EPIPE and the command
 * says that they were lost and exits 1, as with `| head -1`.
 */
int cli_init(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int p[2] = { -1, -1 }, in;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (fd == 1 && !pipe(p))
			close(p[0]);
		if (fd == 1)
			stdout_closed = true;
		/* the lowest free number: fd itself, as those below are open */
		in = fd == 1 ? p[1] : open("/dev/null", O_RDWR);
		if (in < 0) {
			die_msg("fd %d is closed and nothing can be opened to "
				"take its place: %s",
				fd, strerror(errno));
			return -1;
		}
		if (in != fd) {
			dup2(in, fd);
			close(in);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* What finish_output() needs to know of the command's options. */
static struct {
	bool json;  /* stdout's result is a --json object */
	bool stats; /* stdout carries --stats-interval lines */
	bool lost[3]; /* stdout, stderr: failed and said so */
	const char *outcome; /* "the transfer": what the status is about */
	pthread_mutex_t lock;
} output = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Why stdout cannot be written, for a message: a stdout that was closed
 * when the command started is said to be closed, not a broken pipe. */
static const char *stdout_error(int err)
{
	return stdout_closed ? "stdout is closed" : strerror(err ? err : EIO);
}

void output_failed(FILE *f, const char *what, int err)
{
	int i = f == stdout ? 1 : f == stderr ? 2 : 0;
	bool said;

	pthread_mutex_lock(&output.lock);
	said = output.lost[i];
	output.lost[i] = true;
	pthread_mutex_unlock(&output.lock);
	if (!said)
		cmd_error("warning: cannot write the %s to %s: %s (stopped; "
			  "the transfer is not affected)",
			  what,
			  i == 1 ? "stdout" : i == 2 ? "stderr" : "its file",
			  i == 1 ? stdout_error(err)
				 : strerror(err ? err : EIO));
}

/* A pipe whose reader closed it (`| head -1`) polls as an error. */
static bool stdout_reader_gone(void)
{
	struct pollfd p = { .fd = 1, .events = POLLOUT };
	struct stat st;

	return !fstat(1, &st) && S_ISFIFO(st.st_mode) && poll(&p, 1, 0) == 1 &&
	       (p.revents & POLLERR);
}

int finish_output(int status)
{
	bool failed;
	int e;

	errno = 0;
	failed = fflush(stdout) == EOF;
	e = errno;
	failed |= ferror(stdout) != 0;
	if (!failed)
		return status;
	if (!e) /* stdio lost the errno of an earlier failed write */
		e = stdout_reader_gone() ? EPIPE : EIO;
	if (!output.json && output.stats) {
		output_failed(stdout, "statistics", e);
		return status;
	}
	/* the report is lost; what it reported is not misreported */
	cmd_error("cannot write %s to stdout: %s%s%s%s",
		  output.json ? "the JSON report" : "its output",
		  stdout_error(e), output.outcome ? " (" : "",
		  output.outcome ? output.outcome : "",
		  !output.outcome ? ""
		  : status ? " failed too, as said above)"
			   : " itself succeeded)");
	return status ? status : 1;
}

void file_identity(const char *path, struct file_id *id)
{
	const char *slash = strrchr(path, '/');
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (!stat(path, &st)) {
		id->known = true;
	} else if (errno == ENOENT) {
		/* a file to be created: its directory and its name there */
		char *dir = slash ? strndup(path, (size_t)(slash - path) + 1)
				  : strdup(".");

		id->known = dir && !stat(dir, &st);
		id->base = slash ? slash + 1 : path;
		free(dir);
	}
	if (id->known) {
		id->dev = (unsigned long long)st.st_dev;
		id->ino = (unsigned long long)st.st_ino;
	}
}

bool same_file(const struct file_id *a, const char *pa,
	       const struct file_id *b, const char *pb)
{
	if (!strcmp(pa, pb))
		return true;
	if (!a->known || !b->known || a->dev != b->dev || a->ino != b->ino)
		return false;
	if (!a->base || !b->base)
		return !a->base && !b->base;
	return !strcmp(a->base, b->base);
}

double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void size_text(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "TGMK";
	int shift = 40;

	for (const char *u = units; *u; u++, shift -= 10)
		if (v && !(v & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%llu%c",
				 (unsigned long long)(v >> shift), *u);
			return;
		}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Digits first: strtoull() and its kin skip leading blanks and take a
 * sign, which no size or count here has. */
static bool starts_with_digit(const char *s)
{
	return isdigit((unsigned char)s[0]);
}

int parse_size(const char *s, const char *unit, uint64_t min, uint64_t max,
	       uint64_t *out)
{
	char lo[32], hi[32], *end;
	unsigned long long v;
	bool big;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	big = errno == ERANGE;
	if (end != s && *end && !end[1]) {
		const char *units = "KMGT";
		const char *u = strchr(units, *end & ~0x20);

		if (u) {
			shift = 10 * (int)(u - units + 1);
			end++;
		}
	}
	size_text(min, lo, sizeof(lo));
	size_text(max, hi, sizeof(hi));
	if (end == s || *end || !starts_with_digit(s)) {
		opt_error(s, "expected a number of %s with an optional K, M, "
			  "G or T suffix (powers of 1024), from %s to %s",
			  unit, lo, hi);
		return -1;
	}
	big |= shift && v > (~0ull >> shift);
	if (big || (v << shift) > max) {
		opt_error(s, "too large: expected at most %s %s", hi, unit);
		return -1;
	}
	if ((v << shift) < min) {
		opt_error(s, "too small: expected %s to %s %s", lo, hi, unit);
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_uint(const char *s, const char *unit, unsigned min, unsigned max,
	       unsigned *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end || !starts_with_digit(s)) {
		opt_error(s, "expected a whole number%s%s from %u to %u",
			  unit ? " of " : "", unit ? unit : "", min, max);
		return -1;
	}
	if (errno == ERANGE || v > max) {
		opt_error(s, "too large: expected at most %u%s%s", max,
			  unit ? " " : "", unit ? unit : "");
		return -1;
	}
	if (v < min) {
		opt_error(s, "too small: expected %u to %u%s%s", min, max,
			  unit ? " " : "", unit ? unit : "");
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

int parse_real(const char *s, const char *unit, double min, double max,
	       double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* digits first: no blanks, no sign, no "nan" or "inf" */
	if (end == s || *end || (!isfinite(v) && errno != ERANGE) ||
	    strspn(s, "0123456789.eE+-") != strlen(s) ||
	    !(starts_with_digit(s) ||
	      (s[0] == '.' && isdigit((unsigned char)s[1])))) {
		opt_error(s, "expected a number of %s from %g to %g", unit,
			  min, max);
		return -1;
	}
	if (v > max || (errno == ERANGE && (v >= 1 || !isfinite(v)))) {
		opt_error(s, "too large: expected at most %g %s", max, unit);
		return -1;
	}
	if (v < min || errno == ERANGE) {
		opt_error(s, "too small: expected %g to %g %s", min, max,
			  unit);
		return -1;
	}
	*out = v;
	return 0;
}

const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	}
	return "not a regular file";
}

/* The whole file is the secret, bytes as they are. Only a regular file:
 * a FIFO or a device would block or never end, and it is opened with
 * O_NONBLOCK so that nothing blocks before fstat() has said what it is. */
static int read_secret(const char *path, struct opts *o)
{
	static bool warned;
	struct stat st;
	size_t n = 0;
	ssize_t k = 0;
	int fd;

	if (!stat(path, &st) && !S_ISREG(st.st_mode))
		goto not_regular;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		opt_error(path, "cannot read the secret file: %s",
			  strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		goto not_regular;
	}
	while (n < sizeof(o->secret) &&
	       ((k = read(fd, o->secret + n, sizeof(o->secret) - n)) > 0 ||
		(k < 0 && errno == EINTR)))
		n += k > 0 ? (size_t)k : 0;
	if (k < 0 && n < sizeof(o->secret)) {
		opt_error(path, "cannot read the secret file: %s",
			  strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (n == sizeof(o->secret)) {
		if ((unsigned long long)st.st_size >= n)
			opt_error(path, "the secret file has %llu bytes: "
				  "expected 16 to %zu",
				  (unsigned long long)st.st_size, n - 1);
		else
			opt_error(path, "the secret file has more than %zu "
				  "bytes: expected 16 to %zu",
				  n - 1, n - 1);
		return -1;
	}
	if (n < 16) {
		opt_error(path, "the secret file has %zu bytes: expected 16 "
			  "to %zu",
			  n, sizeof(o->secret) - 1);
		return -1;
	}
	if ((st.st_mode & 077) && !warned) {
		warned = true;
		cmd_error("warning: secret file '%s' is %s by others (mode "
			  "%04o): chmod 600 it",
			path, st.st_mode & 044 ? "readable" : "writable",
			(unsigned)(st.st_mode & 07777));
	}
	o->cfg.secret = o->secret;
	o->cfg.secret_len = n;
	return 0;
not_regular:
	opt_error(path, "the secret file is %s: expected a regular file of 16 "
		  "to %zu bytes",
		  file_kind(st.st_mode), sizeof(o->secret) - 1);
	return -1;
}

/* " none, zlib" and so on: the methods this build has */
static const char *built_in_methods(void)
{
	static const char *const names[] = { "none", "zlib", "zstd" };
	static char list[64];
	enum mfd_method m;

	list[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!mfd_method_parse(names[i], &m))
			snprintf(list + strlen(list), sizeof(list) - strlen(list),
				 "%s %s", list[0] ? "," : "", names[i]);
	return list;
}

/* --max-bandwidth as given, to refuse a rate under a page per second
 * once --page-size is known too */
static char bw_opt[80];
static const char *bw_arg;

static int parse_common(int c, const char *arg, struct opts *o)
{
	uint64_t size;
	unsigned v;
	char *end;
	long lv;
	int r;

	switch (c) {
	case 'c':
		o->channels_given = true;
		return parse_uint(arg, "channels", 1, MFD_MAX_CHANNELS,
				  &o->cfg.channels);
	case OPT_MIN_CHANNELS:
		return parse_uint(arg, "channels (0: no failover)", 0,
				  MFD_MAX_CHANNELS, &o->cfg.min_channels);
	case 'm':
		r = mfd_method_parse(arg, &o->cfg.method);
		if (r == -ENOTSUP)
			opt_error(arg, "that method is not built into this "
				  "multifd: expected one of%s",
				  built_in_methods());
		else if (r)
			opt_error(arg, "expected none, zlib or zstd");
		return r ? -1 : 0;
	case 'l':
		errno = 0;
		lv = strtol(arg, &end, 10);
		/* no blanks or '+' (strtol() takes them), a '-' only
		 * before a digit */
		if (errno || end == arg || *end || lv < -100 || lv > 100 ||
		    !isdigit((unsigned char)arg[arg[0] == '-'])) {
			opt_error(arg, "expected a compression level: 0 (the "
				  "method's default), zlib 1..9 or zstd "
				  "-7..19");
			return -1;
		}
		o->cfg.level = (int)lv;
		return 0;
	case OPT_ZERO_COPY:
		o->cfg.zero_copy = true;
		return 0;
	case OPT_PAGE_SIZE:
		if (parse_size(arg, "bytes", 512, 65536, &size))
			return -1;
		v = (unsigned)size;
		if (v & (v - 1)) {
			opt_error(arg, "expected a power of two from 512 to "
				  "65536 bytes");
			return -1;
		}
		o->cfg.page_size = v;
		return 0;
	case OPT_PPP:
		return parse_uint(arg, "pages", 1, 1024,
				  &o->cfg.pages_per_packet);
	case OPT_NO_ZERO_DETECT:
		o->cfg.zero_page_detection = false;
		return 0;
	case OPT_TIMEOUT:
		if (parse_uint(arg, "seconds", 0, 86400, &v))
			return -1;
		o->cfg.timeout_ms = v * 1000;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case OPT_PROGRESS:
		o->progress = true;
		return 0;
	case OPT_STATS_INTERVAL:
		return parse_real(arg, "seconds", 0.01, 86400,
				  &o->stats_interval);
	case OPT_SECRET_FILE:
		return read_secret(arg, o);
	case OPT_CHECKSUM:
		o->cfg.checksum = true;
		return 0;
	case OPT_VERIFY:
		o->cfg.verify = true;
		return 0;
	case OPT_PREFAULT:
		o->cfg.prefault = true;
		return 0;
	case OPT_TLS_CERT:
		o->cfg.tls_cert = arg;
		return 0;
	case OPT_TLS_KEY:
		o->cfg.tls_key = arg;
		return 0;
	case OPT_TLS_CA:
		o->cfg.tls_ca = arg;
		return 0;
	case OPT_TLS_HOSTNAME:
		o->cfg.tls_hostname = arg;
		return 0;
	case OPT_TLS:
		o->cfg.tls = true;
		return 0;
	case OPT_MAX_BANDWIDTH:
		/* the least rate is checked once the page size is known */
		snprintf(bw_opt, sizeof(bw_opt), "%s", cur_opt);
		bw_arg = arg;
		return parse_size(arg, "bytes per second", 0, CLI_MAX_SIZE,
				  &o->cfg.max_bandwidth);
	}
	return -1;
}

void progress_from_opts(struct progress *p, const struct opts *o,
			const struct mfd_session *s, uint64_t total)
{
	p->s = s;
	/* added: a receiver's regions may have told theirs already */
	progress_expect(p, total);
	p->line = !o->quiet && (o->progress || isatty(2));
	p->log = p->line && !isatty(2);
	p->stats_interval = o->stats_interval;
	progress_start(p);
}

static bool is_common(int c)
{
	for (size_t i = 0; i < NCOMMON; i++)
		if (common[i].val == c)
			return true;
	return false;
}

/* The long option getopt_long() just returned, as the user wrote it: the
 * word before its value, or the one with it (--name=value). */
static const char *long_option_word(char **argv)
{
	if (optarg && optind >= 2 && optarg == argv[optind - 1])
		return argv[optind - 2];
	return argv[optind - 1];
}

bool long_option_abbreviated(char **argv, const char *name)
{
	const char *word = long_option_word(argv) + 2;
	size_t n = strcspn(word, "=");

	return n != strlen(name) || strncmp(word, name, n);
}

/* An ambiguous prefix of long options ("--tls-c"): "did you mean
 * '--tls-cert' or '--tls-ca'? " in buf, or nothing. */
static void options_meant(const struct option *table, const char *word,
			  char *buf, size_t len)
{
	size_t n = strcspn(word + 2, "="), used = 0;
	const char *last = NULL;
	char list[360] = "";

	buf[0] = 0;
	if (strncmp(word, "--", 2) || !n)
		return;
	for (const struct option *op = table; op->name; op++) {
		if (strncmp(op->name, word + 2, n))
			continue;
		if (last && used < sizeof(list))
			used += (size_t)snprintf(list + used,
						 sizeof(list) - used, "%s'--%s'",
						 used ? ", " : "", last);
		last = op->name;
	}
	if (last && used < sizeof(list))
		snprintf(list + used, sizeof(list) - used, "%s'--%s'",
			 used ? " or " : "", last);
	if (last)
		snprintf(buf, len, "did you mean %s? ", list);
}

/* "--json=1": an option without a value, given one. */
static bool takes_no_value(const struct option *table, const char *word)
{
	size_t n = strcspn(word, "=");

	if (strncmp(word, "--", 2) || !word[n])
		return false;
	for (const struct option *op = table; op->name; op++)
		if (strlen(op->name) == n - 2 &&
		    !strncmp(op->name, word + 2, n - 2))
			return op->has_arg == no_argument;
	return false;
}

void bad_option(const char *cmd, int c, char **argv,
		const struct option *table)
{
	const char *opt = argv[optind - 1];
	char letter[3] = { '-', (char)optopt, 0 };
	char meant[400] = "", where[64] = "", help[64];

	/* cmd NULL: the top level, before any command */
	if (cmd)
		snprintf(where, sizeof(where), "%s: ", cmd);
	snprintf(help, sizeof(help), "multifd %s%s--help", cmd ? cmd : "",
		 cmd ? " " : "");
	/* a short option's letter, else the word as given */
	if (optopt && (opt[0] != '-' || opt[1] != '-'))
		opt = letter;
	else if (c == '?' && takes_no_value(table, opt)) {
		die_msg("%soption '%.*s' takes no value (try '%s')", where,
			(int)strcspn(opt, "="), opt, help);
		return;
	} else if (c == '?')
		options_meant(table, opt, meant, sizeof(meant));
	die_msg("%s%s '%s' (%stry '%s')", where,
		c == ':' ? "missing the value of option" : "unknown option",
		opt, meant, help);
}

int parse_opts(int argc, char **argv, struct opts *o, const char *usage,
	       const struct option *extra,
	       int (*on_extra)(int opt, const char *arg, struct opts *o))
{
	struct option table[64];
	/* ':' first: a missing argument is told from an unknown option,
	 * and both are said here, in the tool's own words */
	char shorts[64] = ":hV";
	size_t n = 0, k = 3;
	int c;

	mfd_config_init(&o->cfg);
	for (size_t i = 0; i < NCOMMON; i++)
		table[n++] = common[i];
	for (; extra && extra->name; extra++)
		table[n++] = *extra;
	memset(&table[n], 0, sizeof(table[n]));
	/* the short options are those table entries whose value is a letter */
	for (size_t i = 0; i < n; i++) {
		if (table[i].val >= 128 || strchr(shorts, table[i].val))
			continue;
		shorts[k++] = (char)table[i].val;
		if (table[i].has_arg == required_argument)
			shorts[k++] = ':';
	}
	shorts[k] = 0;

	optind = 1;
	output.json = output.stats = false;
	output.outcome = NULL;
	bw_arg = NULL;
	cli_option(argv[0], NULL);
	for (;;) {
		int li = -1;

		c = getopt_long(argc, argv, shorts, table, &li);
		if (c == -1)
			break;
		/* getopt_long() takes a prefix for the whole name (--blob
		 * for --blob-dir): a word that is not an option's name is
		 * refused, whatever option it could be short for */
		if (li >= 0 && long_option_abbreviated(argv, table[li].name)) {
			char word[64];

			snprintf(word, sizeof(word), "%.*s",
				 (int)strcspn(long_option_word(argv), "="),
				 long_option_word(argv));
			die_msg("%s: unknown option '%s' (did you mean '--%s'? "
				"try 'multifd %s --help')",
				argv[0], word, table[li].name, argv[0]);
			return 2;
		}
		/* the option as the user spelled it, for its errors */
		if (li >= 0)
			snprintf(cur_opt, sizeof(cur_opt), "--%s",
				 table[li].name);
		else
			snprintf(cur_opt, sizeof(cur_opt), "-%c", c);
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == 'V') {
			printf("multifd %s (libmultifd %s)\n", PACKAGE_VERSION,
			       mfd_version());
			return 1;
		}
		if (c == '?' || c == ':') {
			bad_option(argv[0], c, argv, table);
			return 2;
		}
		if (is_common(c)) {
			if (parse_common(c, optarg, o))
				return 2;
		} else if (!on_extra || on_extra(c, optarg, o)) {
			return 2;
		}
	}
	if (o->cfg.tls && !o->cfg.secret) {
		cmd_error("--tls needs --secret-file: the pre-shared key is "
			  "derived from the secret (or use --tls-cert, "
			  "--tls-key and --tls-ca)");
		return 2;
	}
	/* a rate under a page per second would take minutes per packet of
	 * a few pages: what is meant is a typo (1 for 1M) */
	if (o->cfg.max_bandwidth && o->cfg.max_bandwidth < o->cfg.page_size) {
		char least[32];

		size_text(o->cfg.page_size, least, sizeof(least));
		cli_option(NULL, bw_opt);
		opt_error(bw_arg, "too small: expected 0 (no limit) or at least "
			  "%s bytes per second (one page per second at a "
			  "page size of %u)",
			  least, o->cfg.page_size);
		return 2;
	}
	output.json = o->json;
	output.outcome = strcmp(argv[0], "bench") ? "the transfer"
						   : "the benchmark";
	output.stats = o->stats_interval > 0;
	return 0;
}

void print_result(const struct opts *o, const char *command,
		  const struct mfd_session *s, bool ok)
{
	const char *what = strcmp(command, "send") ? "received" : "sent";
	struct mfd_stats st;
	double gib, covered;
	char data[32], wire[32], rate[32];
	FILE *out;

	mfd_session_stats(s, &st);
	gib = (double)st.payload_bytes / (1u << 30);
	if (o->json) {
		printf("{\"command\":\"%s\",\"ok\":%s,\"channels\":%u,"
		       "\"method\":\"%s\",\"gib_per_s\":%.4f,\"stats\":",
		       command, ok ? "true" : "false", mfd_session_channels(s),
		       mfd_method_name(mfd_session_method(s)),
		       st.seconds > 0 ? gib / st.seconds : 0);
		print_stats_json(s);
		if (!ok) {
			fputs(",\"error\":", stdout);
			fprint_json_string(stdout, mfd_session_error(s));
		}
		printf("}\n");
		return;
	}
	if (o->quiet)
		return;
	/* --stats-interval makes stdout a stream of JSON lines */
	out = o->stats_interval > 0 ? stderr : stdout;
	/* the pages in place, zero ones too (a sparse image's size, not
	 * the little data it holds), and at what rate */
	covered = (double)(st.normal_pages + st.zero_pages) *
		  mfd_session_page_size(s);
	human_size((double)st.payload_bytes, data, sizeof(data));
	human_size((double)st.bytes, wire, sizeof(wire));
	human_size(st.seconds > 0 ? covered / st.seconds : 0, rate,
		   sizeof(rate));
	fprintf(out, "%s %.1f MiB (%llu pages, %llu zero%s%s%s) in %.3f s: %s/s, "
	       "%u channel%s, method %s, %s on the wire\n",
	       what, covered / (1 << 20),
	       (unsigned long long)(st.normal_pages + st.zero_pages),
	       (unsigned long long)st.zero_pages,
	       st.zero_pages ? "; " : "", st.zero_pages ? data : "",
	       st.zero_pages ? " of data" : "", st.seconds, rate,
	       mfd_session_channels(s),
	       mfd_session_channels(s) == 1 ? "" : "s",
	       mfd_method_name(mfd_session_method(s)), wire);
	if (st.channels_lost && st.resent_pages)
		fprintf(out, "failover: %llu of %u channels lost; %llu pages "
		       "(%.1f MiB) sent again on the others, counted above\n",
		       (unsigned long long)st.channels_lost,
		       mfd_session_channels(s),
		       (unsigned long long)st.resent_pages,
		       (double)st.resent_bytes / (1 << 20));
	else if (st.channels_lost) /* a receiver cannot tell them apart */
		fprintf(out, "failover: %llu of %u channels lost; pages sent again "
		       "on the others, if any, are counted above\n",
		       (unsigned long long)st.channels_lost,
		       mfd_session_channels(s));
	if (st.tls_channels && !st.ktls_send_channels && !st.ktls_recv_channels)
		fprintf(out, "TLS 1.3 on %llu channels, by OpenSSL in userspace (no "
		       "kernel TLS here)\n",
		       (unsigned long long)st.tls_channels);
	else if (st.tls_channels && st.ktls_send_channels == st.tls_channels &&
		 st.ktls_recv_channels == st.tls_channels)
		fprintf(out, "TLS 1.3 on %llu channels, by the kernel (kernel TLS) "
		       "both ways\n",
		       (unsigned long long)st.tls_channels);
	else if (st.tls_channels)
		fprintf(out, "TLS 1.3 on %llu channels; the kernel encrypts the sending "
		       "side of %llu, decrypts the receiving side of %llu "
		       "(OpenSSL the rest)\n",
		       (unsigned long long)st.tls_channels,
		       (unsigned long long)st.ktls_send_channels,
		       (unsigned long long)st.ktls_recv_channels);
	if (st.zerocopy_fallbacks)
		fprintf(out, "zero-copy: %llu sends copied instead%s\n",
		       (unsigned long long)st.zerocopy_fallbacks,
		       st.tls_channels > st.ktls_send_channels
			       ? " (OpenSSL encrypts in userspace: no kernel "
				 "TLS here)"
			       : "");
}
