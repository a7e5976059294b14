/* SPDX-License-Identifier: MIT */
/*
 * bench.c - the multifd bench command: its options, its report (text or
 * JSON), and --sweep, which repeats the run over channels, methods and
 * contents and writes CSV for bench/plot. bench-run.c does each run.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "progress.h"

static const char bench_usage[] =
	"Usage: multifd bench [OPTIONS]\n"
	"Run a sender and a receiver in this process, check that the\n"
	"receiver's memory equals the sender's, and print throughput, CPU\n"
	"seconds per GiB on each side and the raw ceiling (the same bytes\n"
	"over as many plain loopback sockets).\n\n"
	"  -s, --size BYTES        region size, K/M/G suffixes (default 256M)\n"
	"      --content C         random, text, zero or mixed (default random)\n"
	"  -r, --rounds R          rounds (default 1); rounds after the first\n"
	"                          rewrite --rewrite percent of the pages,\n"
	"                          some to zero, some zero pages back to data\n"
	"      --rewrite PERCENT   share rewritten per round (default 10)\n"
	"      --pretouch          receive into memory faulted in beforehand\n"
	"                          (default: fresh memory, as a new host has)\n"
	"      --no-ceiling        skip the raw-socket ceiling\n"
	"      --live              precopy: a writer dirties pages while the\n"
	"                          sender iterates rounds until the dirty set\n"
	"                          fits the downtime, then stop and copy\n"
	"      --dirty-rate MIBS   --live: MiB/s the writer dirties (default 64)\n"
	"      --dirty-pattern P   --live: random or hot (9 in 10 writes to a\n"
	"                          twentieth of the pages; default random)\n"
	"      --downtime MS       --live: the stop-and-copy budget (default 300)\n"
	"      --max-rounds N      --live: give up converging after N rounds\n"
	"                          (default 30)\n"
	"      --postcopy          after the --rounds precopy rounds, rewrite\n"
	"                          --rewrite percent of the pages and switch to\n"
	"                          postcopy: they stream while a guest thread on\n"
	"                          the receiver touches pages, fetching missing\n"
	"                          ones on demand (tcp: and unix: only)\n"
	"      --postcopy-pattern P  --postcopy: the guest touches pages in\n"
	"                          random order or sequential, from the middle\n"
	"                          on (default random)\n"
	"      --sweep             run over 1,2,4,8 channels x none,zlib,zstd x\n"
	"                          random,text,mixed; print CSV (see bench/plot)\n"
	"      --uri URI           where the pair meets (default\n"
	"                          tcp:127.0.0.1:0; unix:PATH, rdma:HOST:0;\n"
	"                          not fd:)\n"
	"  -c, --channels N        parallel channels, 1..64 (default 2)\n"
	"  -m, --method M          none, zlib or zstd (default none)\n"
	"  -l, --level N           zlib 1..9, zstd -7..19 (default 1)\n"
	"      --zero-copy         tcp: and method none: MSG_ZEROCOPY sends\n"
	"      --page-size BYTES   power of two, 512..65536 (default 4096)\n"
	"      --pages-per-packet N  1..1024 (default 128)\n"
	"      --no-zero-detect    send zero pages with their content\n"
	"      --prefault          receiver: fault fresh memory in ahead of the\n"
	"                          data from a thread of its own\n"
"      --timeout SECONDS   longest stall of any channel (default 30)\n"
	"      --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
	"                          TLS 1.3 on every channel, both ends with\n"
	"                          this certificate (it must name the --uri\n"
	"                          host, or give --tls-hostname NAME)\n"
	"      --tls --secret-file PATH  TLS 1.3 with a pre-shared key\n"
	"      --json              print one JSON object with the results\n"
	"  -q, --quiet             print nothing but errors\n"
	"  -h, --help              this help\n"
	"  -V, --version           the version\n"
	"\nExit status: 0 when the receiver's memory equals the sender's.\n";

enum {
	OPT_CONTENT = 512,
	OPT_REWRITE,
	OPT_PRETOUCH,
	OPT_NO_CEILING,
	OPT_URI,
	OPT_LIVE,
	OPT_DIRTY_RATE,
	OPT_DIRTY_PATTERN,
	OPT_DOWNTIME,
	OPT_MAX_ROUNDS,
	OPT_SWEEP,
	OPT_POSTCOPY,
	OPT_POSTCOPY_PATTERN,
};

static const struct option bench_opts[] = {
	{ "size", required_argument, NULL, 's' },
	{ "content", required_argument, NULL, OPT_CONTENT },
	{ "rounds", required_argument, NULL, 'r' },
	{ "rewrite", required_argument, NULL, OPT_REWRITE },
	{ "pretouch", no_argument, NULL, OPT_PRETOUCH },
	{ "no-ceiling", no_argument, NULL, OPT_NO_CEILING },
	{ "uri", required_argument, NULL, OPT_URI },
	{ "live", no_argument, NULL, OPT_LIVE },
	{ "dirty-rate", required_argument, NULL, OPT_DIRTY_RATE },
	{ "dirty-pattern", required_argument, NULL, OPT_DIRTY_PATTERN },
	{ "downtime", required_argument, NULL, OPT_DOWNTIME },
	{ "max-rounds", required_argument, NULL, OPT_MAX_ROUNDS },
	{ "sweep", no_argument, NULL, OPT_SWEEP },
	{ "postcopy", no_argument, NULL, OPT_POSTCOPY },
	{ "postcopy-pattern", required_argument, NULL, OPT_POSTCOPY_PATTERN },
	{ NULL, 0, NULL, 0 },
};

/* --size as given: a whole number of pages is checked once the page
 * size is known */
static char size_opt[80] = "--size";
static const char *size_arg;

static int bench_opt(int c, const char *arg, struct opts *o)
{
	switch (c) {
	case 's':
		snprintf(size_opt, sizeof(size_opt), "%s", cli_current_option());
		size_arg = arg;
		return parse_size(arg, "bytes", 0, CLI_MAX_SIZE, &o->size);
	case OPT_CONTENT:
		for (unsigned i = 0; i < 4; i++)
			if (!strcmp(arg, content_names[i])) {
				o->content = (enum content)i;
				return 0;
			}
		opt_error(arg, "expected random, text, zero or mixed");
		return -1;
	case 'r':
		return parse_uint(arg, "rounds", 1, 1000000, &o->rounds);
	case OPT_REWRITE:
		return parse_uint(arg, "percent", 0, 100, &o->rewrite_pct);
	case OPT_PRETOUCH:
		o->pretouch = true;
		return 0;
	case OPT_NO_CEILING:
		o->no_ceiling = true;
		return 0;
	case OPT_URI:
		o->uri = arg;
		return 0;
	case OPT_LIVE:
		o->live = true;
		return 0;
	case OPT_DIRTY_RATE:
		o->live_only = "--dirty-rate";
		return parse_real(arg, "MiB per second", 0, 1e6,
				  &o->dirty_rate);
	case OPT_DIRTY_PATTERN:
		o->live_only = "--dirty-pattern";
		if (strcmp(arg, "random") && strcmp(arg, "hot")) {
			opt_error(arg, "expected random or hot");
			return -1;
		}
		o->hot_set = !strcmp(arg, "hot");
		return 0;
	case OPT_DOWNTIME:
		o->live_only = "--downtime";
		return parse_uint(arg, "milliseconds", 1, 3600000,
				  &o->downtime_ms);
	case OPT_MAX_ROUNDS:
		o->live_only = "--max-rounds";
		return parse_uint(arg, "max rounds", 2, 100000,
				  &o->max_rounds);
	case OPT_SWEEP:
		o->sweep = true;
		return 0;
	case OPT_POSTCOPY:
		o->postcopy = o->cfg.postcopy = true;
		return 0;
	case OPT_POSTCOPY_PATTERN:
		o->postcopy_only = "--postcopy-pattern";
		if (strcmp(arg, "random") && strcmp(arg, "sequential")) {
			opt_error(arg, "expected random or sequential");
			return -1;
		}
		o->postcopy_sequential = !strcmp(arg, "sequential");
		return 0;
	}
	return -1;
}


static void report_json(const struct opts *o, const struct bench_result *r)
{
	const struct mfd_stats *st = &r->st;
	/* no ceiling measured (--no-ceiling): null, not a rate of 0 */
	char ceiling[32] = "null", ratio[32] = "null";

	if (r->ceiling > 0) {
		snprintf(ceiling, sizeof(ceiling), "%.4f", r->ceiling);
		snprintf(ratio, sizeof(ratio), "%.4f",
			 r->gib_per_s / r->ceiling);
	}

	printf("{\"command\":\"bench\",\"ok\":%s,\"uri\":\"%s\","
	       "\"size\":%llu,\"channels\":%u,\"method\":\"%s\","
	       "\"level\":%d,\"content\":\"%s\",\"zero_copy\":%s,"
	       "\"pretouch\":%s,\"live\":%s,\"seconds\":%.6f,"
	       "\"payload_bytes\":%llu,\"wire_bytes\":%llu,"
	       "\"gib_per_s\":%.4f,\"ceiling_gib_per_s\":%s,"
	       "\"ratio_to_ceiling\":%s,\"compression_ratio\":%.4f,"
	       "\"send_cpu_s_per_gib\":%.4f,\"recv_cpu_s_per_gib\":%.4f,"
	       "\"register_s_per_gib\":%.4f,"
	       "\"send_register_s_per_gib\":%.4f,"
	       "\"recv_register_s_per_gib\":%.4f,"
	       "\"zero_pages\":%llu,\"raw_packets\":%llu,"
	       "\"zerocopy_sends\":%llu,\"zerocopy_copied\":%llu,"
	       "\"zerocopy_fallbacks\":%llu,\"inline_packets\":%llu,"
	       "\"inline_share\":%.4f,\"landed_packets\":%llu",
	       r->identical ? "true" : "false", o->uri ? o->uri : "tcp",
	       (unsigned long long)o->size, o->cfg.channels,
	       mfd_method_name(o->cfg.method), o->cfg.level,
	       content_names[o->content], o->cfg.zero_copy ? "true" : "false",
	       o->pretouch ? "true" : "false", o->live ? "true" : "false",
	       r->seconds, (unsigned long long)st->payload_bytes,
	       (unsigned long long)st->bytes, r->gib_per_s, ceiling, ratio,
	       st->bytes ? (double)st->payload_bytes / (double)st->bytes : 0,
	       r->send_cpu_per_gib, r->recv_cpu_per_gib,
	       r->send_reg_per_gib > r->recv_reg_per_gib ? r->send_reg_per_gib
							 : r->recv_reg_per_gib,
	       r->send_reg_per_gib, r->recv_reg_per_gib,
	       (unsigned long long)st->zero_pages,
	       (unsigned long long)st->raw_packets,
	       (unsigned long long)st->zerocopy_sends,
	       (unsigned long long)st->zerocopy_copied,
	       (unsigned long long)st->zerocopy_fallbacks,
	       (unsigned long long)st->inline_packets,
	       st->packets ? (double)st->inline_packets / (double)st->packets
			   : 0,
	       (unsigned long long)st->landed_packets);
	/* the sender's channels; its kTLS send is the receiver's receive */
	printf(",\"tls_channels\":%llu,\"ktls_send_channels\":%llu,"
	       "\"ktls_recv_channels\":%llu",
	       (unsigned long long)st->tls_channels,
	       (unsigned long long)st->ktls_send_channels,
	       (unsigned long long)st->ktls_recv_channels);
	/* failover (--min-channels), the sender's view */
	printf(",\"channels_lost\":%llu,\"resent_pages\":%llu,"
	       "\"resent_bytes\":%llu,\"resent_packets\":%llu",
	       (unsigned long long)st->channels_lost,
	       (unsigned long long)st->resent_pages,
	       (unsigned long long)st->resent_bytes,
	       (unsigned long long)st->resent_packets);
	if (o->live)
		printf(",\"converged\":%s,\"downtime_s\":%.6f",
		       r->converged ? "true" : "false", r->downtime);
	if (o->postcopy)
		printf(",\"postcopy\":{\"pattern\":\"%s\",\"touches\":%llu,"
		       "\"requests\":%llu,\"demand_pages\":%llu,"
		       "\"stream_pages\":%llu,\"postcopy_latency_us\":"
		       "{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"max\":%.0f},"
		       "\"precopy_bytes_per_s\":%.0f,"
		       "\"stream_bytes_per_s\":%.0f,\"stream_ratio\":%.4f,"
		       "\"switch_seconds\":%.6f,\"total_seconds\":%.6f}",
		       o->postcopy_sequential ? "sequential" : "random",
		       (unsigned long long)r->touches,
		       (unsigned long long)r->rx.postcopy_requests,
		       (unsigned long long)r->rx.postcopy_demand_pages,
		       (unsigned long long)r->rx.postcopy_stream_pages,
		       r->rx.postcopy_latency_p50_us,
		       r->rx.postcopy_latency_p90_us,
		       r->rx.postcopy_latency_p99_us,
		       r->rx.postcopy_latency_max_us, r->precopy_bps,
		       r->postcopy_bps,
		       r->precopy_bps > 0 ? r->postcopy_bps / r->precopy_bps : 0,
		       r->switch_s, r->seconds);
	printf(",\"round_log\":[");
	for (unsigned k = 0; k < r->nrounds; k++) {
		fputs(k ? "," : "", stdout);
		fprint_round_json(stdout, &r->rounds[k]);
	}
	printf("]}\n");
}

static void report_text(const struct opts *o, const struct bench_result *r)
{
	const struct mfd_stats *st = &r->st;

	printf("multifd bench: %s, %u channel%s, method %s, %s pages, %.0f MiB"
	       "%s, %s memory\n",
	       o->uri ? o->uri : "tcp loopback", o->cfg.channels,
	       o->cfg.channels == 1 ? "" : "s",
	       mfd_method_name(o->cfg.method), content_names[o->content],
	       (double)o->size / (1 << 20),
	       o->live ? ", live" : o->postcopy ? ", postcopy" : "",
	       o->pretouch ? "pre-touched" : "fresh");
	for (unsigned k = 0; (r->nrounds > 2 || o->postcopy) &&
			     k < r->nrounds; k++) {
		const struct mfd_round_stats *rs = &r->rounds[k];
		const char *what = "";

		/* its send time and rate: the link's, without the bench's
		 * rewrite between rounds */
		printf("  round %llu: %llu pages (%.1f MiB) in %.3f s, %.0f MB/s",
		       (unsigned long long)rs->round,
		       (unsigned long long)rs->pages,
		       (double)rs->pages * o->cfg.page_size / (1 << 20),
		       rs->send_seconds, rs->send_bytes_per_s / 1e6);
		if (rs->dirty_pages_per_s > 0)
			printf("; dirtied at %.0f pages/s, a stop now: %.1f ms",
			       rs->dirty_pages_per_s,
			       rs->projected_downtime_s * 1000);
		if (o->live && k + 1 == r->nrounds)
			what = " (stop and copy)";
		else if (o->postcopy && k + 1 == o->rounds)
			what = " (the last precopy round)";
		else if (o->postcopy && k == o->rounds)
			what = " (the switch)";
		else if (o->postcopy && k == o->rounds + 1)
			what = " (the stream, the switch's pause included)";
		printf("%s\n", what);
	}
	if (o->postcopy) {
		printf("  postcopy (%s touches): %llu touches, %llu request%s, "
		       "%llu pages on demand, %llu by the stream\n",
		       o->postcopy_sequential ? "sequential" : "random",
		       (unsigned long long)r->touches,
		       (unsigned long long)r->rx.postcopy_requests,
		       r->rx.postcopy_requests == 1 ? "" : "s",
		       (unsigned long long)r->rx.postcopy_demand_pages,
		       (unsigned long long)r->rx.postcopy_stream_pages);
		if (r->rx.postcopy_requests)
			printf("  request latency: p50 %.0f us, p90 %.0f us, "
			       "p99 %.0f us, max %.0f us\n",
			       r->rx.postcopy_latency_p50_us,
			       r->rx.postcopy_latency_p90_us,
			       r->rx.postcopy_latency_p99_us,
			       r->rx.postcopy_latency_max_us);
		else
			printf("  request latency: no requests (the guest "
			       "touched only pages already there)\n");
		printf("  switch %.1f ms; stream after it: %.0f MB/s, %.2f of "
		       "round %u's (the last precopy round) %.0f MB/s; total "
		       "%.3f s\n",
		       r->switch_s * 1e3, r->postcopy_bps / 1e6,
		       r->precopy_bps > 0 ? r->postcopy_bps / r->precopy_bps
					  : 0,
		       o->rounds - 1, r->precopy_bps / 1e6, r->seconds);
	}
	if (o->live)
		printf("  %s; downtime %.1f ms (budget %u ms)\n",
		       r->converged ? "converged"
				    : "did not converge within --max-rounds",
		       r->downtime * 1000, o->downtime_ms);
	printf("  moved %.1f MiB (%.1f MiB on the wire, ratio %.2f) in %.3f "
	       "s: %.3f GiB/s\n",
	       (double)st->payload_bytes / (1 << 20),
	       (double)st->bytes / (1 << 20),
	       st->bytes ? (double)st->payload_bytes / (double)st->bytes : 0,
	       r->seconds, r->gib_per_s);
	printf("  CPU: sender %.3f s/GiB, receiver %.3f s/GiB\n",
	       r->send_cpu_per_gib, r->recv_cpu_per_gib);
	if (r->send_reg_per_gib > 0 || r->recv_reg_per_gib > 0)
		printf("  registration: sender %.3f s/GiB, receiver %.3f "
		       "s/GiB; headers inline: %llu of %llu packets\n",
		       r->send_reg_per_gib, r->recv_reg_per_gib,
		       (unsigned long long)st->inline_packets,
		       (unsigned long long)st->packets);
	if (o->cfg.zero_copy)
		printf("  zero-copy: %llu sends completed, %llu of them copied "
		       "by the kernel, %llu fell back\n",
		       (unsigned long long)st->zerocopy_sends,
		       (unsigned long long)st->zerocopy_copied,
		       (unsigned long long)st->zerocopy_fallbacks);
	if (st->tls_channels)
		printf("  TLS 1.3 on %llu channels; kernel TLS (sender): send "
		       "on %llu, receive on %llu, the rest in userspace\n",
		       (unsigned long long)st->tls_channels,
		       (unsigned long long)st->ktls_send_channels,
		       (unsigned long long)st->ktls_recv_channels);
	if (r->ceiling > 0)
		printf("  raw ceiling (%u plain socket%s): %.3f GiB/s; multifd "
		       "at %.2f of it\n",
		       o->cfg.channels, o->cfg.channels == 1 ? "" : "s",
		       r->ceiling, r->gib_per_s / r->ceiling);
	printf("  verified: %s\n", r->identical ? "identical" : "DIFFERENT");
}

/* Every combination, one CSV row each; the ceiling once per channel
 * count (it does not depend on the method or content). */
static int sweep(struct opts o)
{
	static const unsigned channels[] = { 1, 2, 4, 8 };
	static const enum mfd_method methods[] = { MFD_METHOD_NONE,
						   MFD_METHOD_ZLIB,
						   MFD_METHOD_ZSTD };
	static const enum content contents[] = { CONTENT_RANDOM, CONTENT_TEXT,
						 CONTENT_MIXED };
	int status = 0;

	printf("channels,method,content,gib_per_s,ceiling_gib_per_s,"
	       "send_cpu_s_per_gib,recv_cpu_s_per_gib,compression_ratio,"
	       "identical\n");
	for (size_t c = 0; c < 4; c++) {
		double ceiling = 0;

		for (size_t m = 0; m < 3; m++)
			for (size_t k = 0; k < 3; k++) {
				struct bench_result r;

				o.cfg.channels = channels[c];
				o.cfg.method = methods[m];
				o.cfg.level = 0;
				o.content = contents[k];
				o.no_ceiling = ceiling > 0;
				if (mfd_method_parse(mfd_method_name(methods[m]),
						     &o.cfg.method))
					continue; /* not built in */
				if (bench_run(&o, &r) || !r.identical)
					status = 1;
				if (!o.no_ceiling)
					ceiling = r.ceiling;
				printf("%u,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%d\n",
				       channels[c], mfd_method_name(methods[m]),
				       content_names[contents[k]], r.gib_per_s,
				       ceiling, r.send_cpu_per_gib,
				       r.recv_cpu_per_gib,
				       r.st.bytes ? (double)r.st.payload_bytes /
							    (double)r.st.bytes
						  : 0,
				       r.identical);
				fflush(stdout);
				free(r.rounds);
			}
	}
	return status;
}

/* MemAvailable of /proc/meminfo in bytes; "unlimited" when unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kib = 0;
	char line[128];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib ? (uint64_t)kib << 10 : UINT64_MAX / 2;
}

int cmd_bench(int argc, char **argv)
{
	struct opts o = { .size = 256u << 20, .rounds = 1, .rewrite_pct = 10,
			  .dirty_rate = 64, .downtime_ms = 300,
			  .max_rounds = 30 };
	struct mfd_session *check;
	struct bench_result res;
	char err[300];
	int r;

	r = parse_opts(argc, argv, &o, bench_usage, bench_opts, bench_opt);
	if (r)
		return r == 1 ? 0 : 2;
	if (optind != argc) {
		die_msg("bench: unexpected argument '%s' (try 'multifd bench "
			"--help')",
			argv[optind]);
		return 2;
	}
	if (!o.size || o.size % o.cfg.page_size) {
		cli_option(NULL, size_opt);
		opt_error(size_arg, "expected a whole number of pages (a "
			  "multiple of the page size %u, at least one)",
			  o.cfg.page_size);
		return 2;
	}
	/* a source and a destination of --size each: refuse what does
	 * not fit, rather than fill the machine's memory to its limit */
	if (o.size > mem_available() / 2) {
		die_msg("bench: --size %llu needs twice that in memory (a "
			"source and a destination), and %llu bytes are "
			"available: pick a smaller --size",
			(unsigned long long)o.size,
			(unsigned long long)mem_available());
		return 2;
	}
	/* bench is both ends: descriptors handed in have their peer
	 * elsewhere, and each end would wait out its timeout for the other */
	if (o.uri && !strncmp(o.uri, "fd:", 3)) {
		die_msg("bench: --uri '%s': bench pairs its own two ends, so "
			"it cannot use descriptors handed in: expected a "
			"tcp:, unix: or rdma: URI",
			o.uri);
		return 2;
	}
	/* refuse a bad configuration before any memory is filled */
	o.cfg.uri = o.uri ? o.uri : "tcp:127.0.0.1:0";
	r = mfd_session_new(&o.cfg, MFD_ROLE_SEND, &check, err, sizeof(err));
	mfd_session_free(check);
	if (r) {
		die_msg("bench: %s", err);
		return 2;
	}
	if (o.live_only && !o.live) {
		die_msg("bench: %s means something only with --live",
			o.live_only);
		return 2;
	}
	if (o.postcopy_only && !o.postcopy) {
		die_msg("bench: %s means something only with --postcopy",
			o.postcopy_only);
		return 2;
	}
	if (o.postcopy && (o.live || o.sweep)) {
		die_msg("bench: --postcopy goes with neither --live nor "
			"--sweep");
		return 2;
	}
	/* one summary, not a stream of figures */
	if (o.stats_interval > 0) {
		die_msg("bench: --stats-interval is for send and recv: bench "
			"prints one summary (--json for it as JSON)");
		return 2;
	}
	/* its table is CSV, for bench/plot, over what it sweeps */
	if (o.sweep && (o.json || o.live || o.channels_given ||
			o.cfg.method != MFD_METHOD_NONE || o.rounds != 1 ||
			o.content != CONTENT_RANDOM)) {
		die_msg("bench: --sweep writes CSV (for bench/plot) over "
			"channels, methods and contents: it takes none of "
			"--json, --live, -c, -m, -r and --content");
		return 2;
	}
	if (o.sweep)
		return sweep(o);
	r = bench_run(&o, &res);
	if (!r && o.json)
		report_json(&o, &res);
	else if (!r && !o.quiet)
		report_text(&o, &res);
	free(res.rounds);
	return !r && res.identical ? 0 : 1;
}
