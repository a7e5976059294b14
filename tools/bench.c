/* SPDX-License-Identifier: MIT */
/*
 * bench.c - multifd bench: a sender and a receiver in one process over
 * loopback (or any URI), several rounds that rewrite a share of the pages,
 * a byte-for-byte check of the result, and, in the same run, the raw
 * ceiling: the same bytes over the same number of plain sockets.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "memory.h"

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
	"      --uri URI           where the pair meets (default\n"
	"                          tcp:127.0.0.1:0; unix:PATH, rdma:HOST:0)\n"
	"  -c, --channels N        parallel channels, 1..64 (default 2)\n"
	"  -m, --method M          none, zlib or zstd (default none)\n"
	"  -l, --level N           zlib 1..9, zstd -7..19 (default 1)\n"
	"      --zero-copy         tcp: and method none: MSG_ZEROCOPY sends\n"
	"      --page-size BYTES   power of two, 512..65536 (default 4096)\n"
	"      --pages-per-packet N  1..1024 (default 128)\n"
	"      --no-zero-detect    send zero pages with their content\n"
	"      --timeout SECONDS   longest stall of any channel (default 30)\n"
	"      --json              print one JSON object with the results\n"
	"  -q, --quiet             print nothing but errors\n"
	"  -h, --help              this help\n"
	"  -V, --version           the version\n"
	"\nExit status: 0 when the receiver's memory equals the sender's.\n";

enum { OPT_CONTENT = 512, OPT_REWRITE, OPT_PRETOUCH, OPT_NO_CEILING, OPT_URI };

static const struct option bench_opts[] = {
	{ "size", required_argument, NULL, 's' },
	{ "content", required_argument, NULL, OPT_CONTENT },
	{ "rounds", required_argument, NULL, 'r' },
	{ "rewrite", required_argument, NULL, OPT_REWRITE },
	{ "pretouch", no_argument, NULL, OPT_PRETOUCH },
	{ "no-ceiling", no_argument, NULL, OPT_NO_CEILING },
	{ "uri", required_argument, NULL, OPT_URI },
	{ NULL, 0, NULL, 0 },
};

static int bench_opt(int c, const char *arg, struct opts *o)
{
	static const char *names[] = { "random", "text", "zero", "mixed" };

	switch (c) {
	case 's':
		if (parse_size(arg, "size", &o->size))
			return -1;
		if (o->size == 0) {
			die_msg("bad size '%s': expected more than 0", arg);
			return -1;
		}
		return 0;
	case OPT_CONTENT:
		for (unsigned i = 0; i < 4; i++)
			if (!strcmp(arg, names[i])) {
				o->content = (enum content)i;
				return 0;
			}
		die_msg("bad content '%s': expected random, text, zero or "
			"mixed",
			arg);
		return -1;
	case 'r':
		return parse_uint(arg, "rounds", 1, 1000000, &o->rounds);
	case OPT_REWRITE:
		return parse_uint(arg, "rewrite percent", 0, 100,
				  &o->rewrite_pct);
	case OPT_PRETOUCH:
		o->pretouch = true;
		return 0;
	case OPT_NO_CEILING:
		o->no_ceiling = true;
		return 0;
	case OPT_URI:
		o->uri = arg;
		return 0;
	}
	return -1;
}

static uint64_t rng(uint64_t *st)
{
	/* xorshift64*: fast, good enough for page content and choices */
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 0x2545F4914F6CDD1Dull;
}

static void fill_random(uint8_t *p, uint32_t n, uint64_t *st)
{
	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t v = rng(st);

		memcpy(p + i, &v, 8);
	}
}

static void fill_text(uint8_t *p, uint32_t n, uint64_t *st)
{
	static const char *words[] = {
		"the ",	    "page ",   "memory ", "of ",     "a ",
		"virtual ", "machine ", "is ",	   "moved ",  "over ",
		"many ",    "channels ", "and ",   "each ",   "packet ",
		"carries ", "offsets ", "with ",   "data ",   "zero\n",
		"region ",  "round ",  "sync ",	   "header ", "kernel ",
	};
	uint32_t i = 0;

	while (i < n) {
		const char *w = words[rng(st) % 25];
		size_t l = strlen(w);

		if (l > n - i)
			l = n - i;
		memcpy(p + i, w, l);
		i += (uint32_t)l;
	}
}

/* Fill one page by content kind; mixed: a quarter each of zero, text,
 * random, and a short repeated pattern. */
static void fill_page(uint8_t *p, uint32_t ps, enum content c, uint64_t *st)
{
	if (c == CONTENT_MIXED)
		c = (enum content)(rng(st) % 4);
	switch (c) {
	case CONTENT_RANDOM:
		fill_random(p, ps, st);
		break;
	case CONTENT_TEXT:
		fill_text(p, ps, st);
		break;
	case CONTENT_ZERO:
		memset(p, 0, ps);
		break;
	case CONTENT_MIXED: /* here: the repeated pattern */
		memset(p, (int)(rng(st) | 1) & 0xff, ps);
		break;
	}
}

struct receiver {
	struct opts *o;
	struct mfd_session *s;
	struct mapping dst;
	int result;
};

/* The destination is mapped (and, with --pretouch, faulted in) before
 * the clock starts; here it is only handed over. */
static int bench_region(void *opaque, const char *name, uint64_t length,
			void **mem, bool *zeroed)
{
	struct receiver *rc = opaque;

	if (length != rc->dst.len)
		return -EINVAL;
	*mem = rc->dst.mem;
	*zeroed = true;
	return 0;
}

static void *receiver_main(void *arg)
{
	struct receiver *rc = arg;

	rc->result = mfd_recv_wait(rc->s);
	return NULL;
}

/* ---- the raw ceiling: plain sockets, no multifd ---- */

struct raw_end {
	int fd;
	uint8_t *buf;
	uint64_t len;
	int err;
};

static void *raw_writer(void *arg)
{
	struct raw_end *e = arg;

	for (uint64_t done = 0; done < e->len;) {
		size_t chunk = e->len - done < (1u << 20) ? e->len - done
							  : (1u << 20);
		ssize_t n = send(e->fd, e->buf + done, chunk, MSG_NOSIGNAL);

		if (n <= 0) {
			e->err = errno ? errno : EPIPE;
			return NULL;
		}
		done += (uint64_t)n;
	}
	return NULL;
}

static void *raw_reader(void *arg)
{
	struct raw_end *e = arg;

	for (uint64_t done = 0; done < e->len;) {
		ssize_t n = recv(e->fd, e->buf + done, e->len - done,
				 MSG_WAITALL);

		if (n <= 0) {
			e->err = n ? errno : EPIPE;
			return NULL;
		}
		done += (uint64_t)n;
	}
	return NULL;
}

/* GiB/s of `len` bytes of src over n loopback TCP connections into fresh
 * (or pre-touched) memory; < 0 on error. */
static double raw_ceiling(uint8_t *src, uint64_t len, unsigned n,
			  bool pretouch)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct raw_end w[MFD_MAX_CHANNELS], rd[MFD_MAX_CHANNELS];
	pthread_t tw[MFD_MAX_CHANNELS], tr[MFD_MAX_CHANNELS];
	struct mapping dst;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t share = len / n;
	double t0, t1;
	bool ok = true;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sl) ||
	    listen(lfd, 64) || getsockname(lfd, (struct sockaddr *)&sa, &sl) ||
	    map_anon(len, &dst)) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if (pretouch)
		memset(dst.mem, 0, len);
	for (unsigned i = 0; i < n; i++) {
		uint64_t l = i == n - 1 ? len - share * i : share;

		w[i] = (struct raw_end){ .buf = src + share * i, .len = l };
		rd[i] = (struct raw_end){ .buf = (uint8_t *)dst.mem + share * i,
					  .len = l };
		w[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(w[i].fd, (struct sockaddr *)&sa, sizeof(sa)))
			ok = false;
		rd[i].fd = accept(lfd, NULL, NULL);
	}
	t0 = now_seconds();
	for (unsigned i = 0; ok && i < n; i++) {
		pthread_create(&tr[i], NULL, raw_reader, &rd[i]);
		pthread_create(&tw[i], NULL, raw_writer, &w[i]);
	}
	for (unsigned i = 0; ok && i < n; i++) {
		pthread_join(tw[i], NULL);
		pthread_join(tr[i], NULL);
		ok = !w[i].err && !rd[i].err;
	}
	t1 = now_seconds();
	if (ok && memcmp(src, dst.mem, len))
		ok = false;
	for (unsigned i = 0; i < n; i++) {
		close(w[i].fd);
		close(rd[i].fd);
	}
	close(lfd);
	unmap(&dst);
	return ok ? (double)len / (1u << 30) / (t1 - t0) : -1;
}

/* ---- the run ---- */

struct round_log {
	uint64_t pages;
	double seconds;
};

/* Rewrite pct% of the pages: a fifth become zero, the rest new data
 * (zero pages among them come back to data). Marks them in dirty. */
static void rewrite_pages(uint8_t *mem, uint64_t pages, uint32_t ps,
			  unsigned pct, enum content c, uint64_t *dirty,
			  uint64_t *st)
{
	uint64_t n = pages * pct / 100;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t pg = rng(st) % pages;
		uint8_t *p = mem + pg * ps;

		if (rng(st) % 5 == 0)
			memset(p, 0, ps);
		else
			fill_page(p, ps, c == CONTENT_ZERO ? CONTENT_RANDOM : c,
				  st);
		dirty[pg / 64] |= 1ull << (pg % 64);
	}
}

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double channels_cpu(const struct mfd_session *s)
{
	struct mfd_stats st;

	mfd_session_stats(s, &st);
	return (double)st.cpu_ns / 1e9;
}

int cmd_bench(int argc, char **argv)
{
	static const char *content_names[] = { "random", "text", "zero",
					       "mixed" };
	struct opts o = { .size = 256u << 20, .rounds = 1, .rewrite_pct = 10 };
	struct receiver rc = { .o = &o, .dst.fd = -1 };
	struct mapping src = { .fd = -1 };
	struct mfd_session *snd = NULL;
	struct mfd_config rcfg;
	struct round_log *log = NULL;
	uint64_t *dirty = NULL, pages, seed = 0x9e3779b97f4a7c15ull;
	struct mfd_stats sst;
	pthread_t rt;
	bool rt_started = false, identical = false;
	double t0, t1, cpu0, send_cpu, recv_cpu, ceiling = 0, gib;
	char err[300];
	int r, region, status = 1;

	r = parse_opts(argc, argv, &o, bench_usage, bench_opts, bench_opt);
	if (r)
		return r == 1 ? 0 : 2;
	if (optind != argc) {
		die_msg("bench: unexpected argument '%s' (try --help)",
			argv[optind]);
		return 2;
	}
	if (o.size % o.cfg.page_size) {
		die_msg("bench: size %llu is not a multiple of the page size "
			"%u",
			(unsigned long long)o.size, o.cfg.page_size);
		return 2;
	}
	pages = o.size / o.cfg.page_size;

	/* the receiver: listens first, so that port 0 becomes a real one */
	rcfg = o.cfg;
	rcfg.uri = o.uri ? o.uri : "tcp:127.0.0.1:0";
	rcfg.region_cb = bench_region;
	rcfg.region_opaque = &rc;
	r = mfd_session_new(&rcfg, MFD_ROLE_RECV, &rc.s, err, sizeof(err));
	if (r) {
		die_msg("bench: %s", err);
		return 2;
	}
	/* check the sender's side of the configuration before any work */
	o.cfg.uri = rcfg.uri;
	r = mfd_session_new(&o.cfg, MFD_ROLE_SEND, &snd, err, sizeof(err));
	mfd_session_free(snd);
	snd = NULL;
	if (r) {
		die_msg("bench: %s", err);
		mfd_session_free(rc.s);
		return 2;
	}
	if (map_anon(o.size, &src) || map_anon(o.size, &rc.dst) ||
	    !(dirty = calloc((pages + 63) / 64, 8)) ||
	    !(log = calloc(o.rounds, sizeof(*log)))) {
		die_msg("bench: out of memory for %llu bytes",
			(unsigned long long)o.size);
		goto out;
	}
	if (o.pretouch)
		memset(rc.dst.mem, 0, o.size);
	for (uint64_t pg = 0; pg < pages; pg++)
		fill_page((uint8_t *)src.mem + pg * o.cfg.page_size,
			  o.cfg.page_size, o.content, &seed);

	r = mfd_session_start(rc.s);
	if (r) {
		die_msg("bench: receiver: %s", mfd_session_error(rc.s));
		goto out;
	}
	pthread_create(&rt, NULL, receiver_main, &rc);
	rt_started = true;
	o.cfg.uri = mfd_session_uri(rc.s);
	r = mfd_session_new(&o.cfg, MFD_ROLE_SEND, &snd, err, sizeof(err));
	region = r ? r : mfd_session_add_region(snd, "bench", src.mem, o.size,
						false);
	if (region < 0) {
		die_msg("bench: %s", err);
		mfd_session_cancel(rc.s);
		goto out;
	}

	t0 = now_seconds();
	cpu0 = thread_cpu();
	r = mfd_session_start(snd);
	for (unsigned k = 0; !r && k < o.rounds; k++) {
		double rs = now_seconds();
		uint64_t queued = pages;

		if (k == 0)
			r = mfd_send_region(snd, region);
		else
			r = mfd_send_dirty(snd, region, dirty, &queued);
		if (!r)
			r = mfd_send_sync(snd);
		log[k].pages = queued;
		log[k].seconds = now_seconds() - rs;
		if (k + 1 < o.rounds)
			rewrite_pages(src.mem, pages, o.cfg.page_size,
				      o.rewrite_pct, o.content, dirty, &seed);
	}
	if (!r)
		r = mfd_send_finish(snd);
	t1 = now_seconds();
	send_cpu = thread_cpu() - cpu0 + channels_cpu(snd);
	if (r) {
		die_msg("bench: sender: %s", mfd_session_error(snd));
		mfd_session_cancel(rc.s);
	}
	pthread_join(rt, NULL);
	rt_started = false;
	recv_cpu = channels_cpu(rc.s);
	if (rc.result) {
		die_msg("bench: receiver: %s", mfd_session_error(rc.s));
		goto out;
	}
	if (r)
		goto out;
	identical = rc.dst.mem && !memcmp(src.mem, rc.dst.mem, o.size);
	if (!identical)
		die_msg("bench: the receiver's memory differs from the "
			"sender's");

	if (!o.no_ceiling)
		ceiling = raw_ceiling(src.mem, o.size, o.cfg.channels,
				      o.pretouch);

	mfd_session_stats(snd, &sst);
	gib = (double)sst.payload_bytes / (1u << 30);
	if (o.json) {
		printf("{\"command\":\"bench\",\"ok\":%s,\"uri\":\"%s\","
		       "\"size\":%llu,\"channels\":%u,\"method\":\"%s\","
		       "\"level\":%d,\"content\":\"%s\",\"zero_copy\":%s,"
		       "\"pretouch\":%s,\"rounds\":%u,\"seconds\":%.6f,"
		       "\"payload_bytes\":%llu,\"wire_bytes\":%llu,"
		       "\"gib_per_s\":%.4f,\"ceiling_gib_per_s\":%.4f,"
		       "\"ratio_to_ceiling\":%.4f,\"compression_ratio\":%.4f,"
		       "\"send_cpu_s_per_gib\":%.4f,"
		       "\"recv_cpu_s_per_gib\":%.4f,\"zero_pages\":%llu,"
		       "\"raw_packets\":%llu,\"zerocopy_sends\":%llu,"
		       "\"zerocopy_copied\":%llu,\"zerocopy_fallbacks\":%llu,"
		       "\"round_log\":[",
		       identical ? "true" : "false", o.cfg.uri,
		       (unsigned long long)o.size, o.cfg.channels,
		       mfd_method_name(o.cfg.method), o.cfg.level,
		       content_names[o.content],
		       o.cfg.zero_copy ? "true" : "false",
		       o.pretouch ? "true" : "false", o.rounds, t1 - t0,
		       (unsigned long long)sst.payload_bytes,
		       (unsigned long long)sst.bytes, gib / (t1 - t0), ceiling,
		       ceiling > 0 ? gib / (t1 - t0) / ceiling : 0,
		       sst.bytes ? (double)sst.payload_bytes / sst.bytes : 0,
		       gib > 0 ? send_cpu / gib : 0,
		       gib > 0 ? recv_cpu / gib : 0,
		       (unsigned long long)sst.zero_pages,
		       (unsigned long long)sst.raw_packets,
		       (unsigned long long)sst.zerocopy_sends,
		       (unsigned long long)sst.zerocopy_copied,
		       (unsigned long long)sst.zerocopy_fallbacks);
		for (unsigned k = 0; k < o.rounds; k++)
			printf("%s{\"pages\":%llu,\"seconds\":%.6f}",
			       k ? "," : "", (unsigned long long)log[k].pages,
			       log[k].seconds);
		printf("]}\n");
	} else if (!o.quiet) {
		printf("multifd bench: %s, %u channels, method %s, %s pages, "
		       "%.0f MiB x %u rounds, %s memory\n",
		       o.cfg.uri, o.cfg.channels, mfd_method_name(o.cfg.method),
		       content_names[o.content],
		       (double)o.size / (1 << 20), o.rounds,
		       o.pretouch ? "pre-touched" : "fresh");
		for (unsigned k = 0; o.rounds > 1 && k < o.rounds; k++)
			printf("  round %u: %llu pages in %.3f s\n", k + 1,
			       (unsigned long long)log[k].pages,
			       log[k].seconds);
		printf("  moved %.1f MiB (%.1f MiB on the wire, ratio %.2f) "
		       "in %.3f s: %.3f GiB/s\n",
		       (double)sst.payload_bytes / (1 << 20),
		       (double)sst.bytes / (1 << 20),
		       sst.bytes ? (double)sst.payload_bytes / sst.bytes : 0,
		       t1 - t0, gib / (t1 - t0));
		printf("  CPU: sender %.3f s/GiB, receiver %.3f s/GiB\n",
		       send_cpu / gib, recv_cpu / gib);
		if (o.cfg.zero_copy)
			printf("  zero-copy: %llu sends completed, %llu of "
			       "them copied by the kernel, %llu fell back\n",
			       (unsigned long long)sst.zerocopy_sends,
			       (unsigned long long)sst.zerocopy_copied,
			       (unsigned long long)sst.zerocopy_fallbacks);
		if (ceiling > 0)
			printf("  raw ceiling (%u plain sockets): %.3f GiB/s; "
			       "multifd at %.2f of it\n",
			       o.cfg.channels, ceiling,
			       gib / (t1 - t0) / ceiling);
		printf("  verified: %s\n", identical ? "identical" : "DIFFERENT");
	}
	status = identical ? 0 : 1;
out:
	if (rt_started) {
		mfd_session_cancel(rc.s);
		pthread_join(rt, NULL);
	}
	mfd_session_free(snd);
	mfd_session_free(rc.s);
	unmap(&src);
	unmap(&rc.dst);
	free(dirty);
	free(log);
	return status;
}
