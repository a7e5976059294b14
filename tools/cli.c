/* SPDX-License-Identifier: MIT */
/* cli.c - option parsing and result printing shared by the subcommands. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int parse_size(const char *s, const char *what, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end != s && *end && !end[1]) {
		const char *units = "KMGT";
		const char *u = strchr(units, *end & ~0x20);

		if (u) {
			shift = 10 * (int)(u - units + 1);
			end++;
		}
	}
	if (errno || end == s || *end || s[0] == '-' ||
	    (shift && v > (~0ull >> shift))) {
		die_msg("bad %s '%s': expected a number with an optional "
			"K, M, G or T suffix",
			what, s);
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_uint(const char *s, const char *what, unsigned min, unsigned max,
	       unsigned *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		die_msg("bad %s '%s': expected a whole number from %u to %u",
			what, s, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* The whole file is the secret, bytes as they are. */
static int read_secret(const char *path, struct opts *o)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		die_msg("cannot read the secret file '%s': %s", path,
			strerror(errno));
		return -1;
	}
	n = fread(o->secret, 1, sizeof(o->secret), f);
	fclose(f);
	if (n < 16 || n == sizeof(o->secret)) {
		die_msg("secret file '%s' has %zu bytes: expected 16 to %zu",
			path, n, sizeof(o->secret) - 1);
		return -1;
	}
	o->cfg.secret = o->secret;
	o->cfg.secret_len = n;
	return 0;
}

static int parse_common(int c, const char *arg, struct opts *o)
{
	unsigned v;
	char *end;
	long lv;
	int r;

	switch (c) {
	case 'c':
		return parse_uint(arg, "channel count", 1, MFD_MAX_CHANNELS,
				  &o->cfg.channels);
	case 'm':
		r = mfd_method_parse(arg, &o->cfg.method);
		if (r == -ENOTSUP)
			die_msg("method '%s' is not built into this multifd",
				arg);
		else if (r)
			die_msg("bad method '%s': expected none, zlib or zstd",
				arg);
		return r ? -1 : 0;
	case 'l':
		errno = 0;
		lv = strtol(arg, &end, 10);
		if (errno || end == arg || *end || lv < -100 || lv > 100 ||
		    lv == 0) {
			die_msg("bad level '%s': expected zlib 1..9 or zstd "
				"-7..19",
				arg);
			return -1;
		}
		o->cfg.level = (int)lv;
		return 0;
	case OPT_ZERO_COPY:
		o->cfg.zero_copy = true;
		return 0;
	case OPT_PAGE_SIZE:
		if (parse_uint(arg, "page size", 512, 65536, &v))
			return -1;
		o->cfg.page_size = v;
		return 0;
	case OPT_PPP:
		return parse_uint(arg, "pages per packet", 1, 1024,
				  &o->cfg.pages_per_packet);
	case OPT_NO_ZERO_DETECT:
		o->cfg.zero_page_detection = false;
		return 0;
	case OPT_TIMEOUT:
		if (parse_uint(arg, "timeout (seconds)", 0, 86400, &v))
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
		errno = 0;
		o->stats_interval = strtod(arg, &end);
		if (errno || end == arg || *end || o->stats_interval <= 0 ||
		    o->stats_interval > 86400) {
			die_msg("bad stats interval '%s': expected seconds, "
				"more than 0",
				arg);
			return -1;
		}
		return 0;
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
	case OPT_MAX_BANDWIDTH:
		if (parse_size(arg, "bandwidth (bytes per second)",
			       &o->cfg.max_bandwidth))
			return -1;
		return 0;
	}
	return -1;
}

void progress_from_opts(struct progress *p, const struct opts *o,
			const struct mfd_session *s, uint64_t total)
{
	p->s = s;
	p->total = total;
	p->line = !o->quiet && (o->progress || isatty(2));
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

int parse_opts(int argc, char **argv, struct opts *o, const char *usage,
	       const struct option *extra,
	       int (*on_extra)(int opt, const char *arg, struct opts *o))
{
	struct option table[64];
	char shorts[64] = "hV";
	size_t n = 0, k = 2;
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
	while ((c = getopt_long(argc, argv, shorts, table, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == 'V') {
			printf("multifd %s (libmultifd %s)\n", PACKAGE_VERSION,
			       mfd_version());
			return 1;
		}
		if (c == '?') {
			fprintf(stderr, "Try 'multifd %s --help'.\n", argv[0]);
			return 2;
		}
		if (is_common(c)) {
			if (parse_common(c, optarg, o))
				return 2;
		} else if (!on_extra || on_extra(c, optarg, o)) {
			return 2;
		}
	}
	return 0;
}

void print_result(const struct opts *o, const char *what,
		  const struct mfd_session *s, bool ok)
{
	struct mfd_stats st;
	double gib;

	mfd_session_stats(s, &st);
	gib = (double)st.payload_bytes / (1u << 30);
	if (o->json) {
		printf("{\"command\":\"%s\",\"ok\":%s,\"channels\":%u,"
		       "\"method\":\"%s\",\"gib_per_s\":%.4f,\"stats\":",
		       what, ok ? "true" : "false", mfd_session_channels(s),
		       mfd_method_name(mfd_session_method(s)),
		       st.seconds > 0 ? gib / st.seconds : 0);
		print_stats_json(s);
		printf("}\n");
		return;
	}
	if (o->quiet)
		return;
	printf("%s %.1f MiB (%llu pages, %llu zero) in %.3f s: %.3f GiB/s, "
	       "%u channels, method %s, %.1f MiB on the wire\n",
	       what, (double)st.payload_bytes / (1 << 20),
	       (unsigned long long)(st.normal_pages + st.zero_pages),
	       (unsigned long long)st.zero_pages, st.seconds,
	       st.seconds > 0 ? gib / st.seconds : 0, mfd_session_channels(s),
	       mfd_method_name(mfd_session_method(s)),
	       (double)st.bytes / (1 << 20));
}
