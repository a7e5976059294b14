/* SPDX-License-Identifier: MIT */
/*
 * bench-run.c - one benchmark run (see bench.h): page contents, the raw
 * socket ceiling, fixed rounds and live (precopy) rounds.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "memory.h"

const char *const content_names[4] = { "random", "text", "zero", "mixed" };

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

void fill_page(uint8_t *p, uint32_t ps, enum content c, uint64_t *st)
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

/* GiB/s of `len` bytes of src over n loopback TCP connections into
 * memory like the receiver's (fresh or pre-touched); < 0 on error. */
static double raw_ceiling(uint8_t *src, uint64_t len, unsigned n,
			  bool pretouch)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct raw_end w[MFD_MAX_CHANNELS], rd[MFD_MAX_CHANNELS];
	pthread_t tw[MFD_MAX_CHANNELS], tr[MFD_MAX_CHANNELS];
	struct mapping dst = { .fd = -1 };
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t share = len / n;
	unsigned started = 0;
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
	for (; ok && started < n; started++) {
		pthread_create(&tr[started], NULL, raw_reader, &rd[started]);
		pthread_create(&tw[started], NULL, raw_writer, &w[started]);
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tw[i], NULL);
		pthread_join(tr[i], NULL);
		ok = ok && !w[i].err && !rd[i].err;
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

/* ---- the receiver ---- */

struct receiver {
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

/* ---- rounds ---- */

/* Rewrite pct% of the pages: a fifth become zero, the rest new data
 * (zero pages among them come back to data). Marks them in dirty. */
static void rewrite_pages(uint8_t *mem, uint64_t pages, uint32_t ps,
			  unsigned pct, enum content c, uint64_t *dirty,
			  uint64_t *st)
{
	/* each page with the chance pct: that share of distinct pages (a
	 * draw of pages * pct / 100 with repeats rewrote fewer) */
	for (uint64_t pg = 0; pg < pages; pg++) {
		uint8_t *p = mem + pg * ps;

		if (rng(st) % 100 >= pct)
			continue;

		if (rng(st) % 5 == 0)
			memset(p, 0, ps);
		else
			fill_page(p, ps, c == CONTENT_ZERO ? CONTENT_RANDOM : c,
				  st);
		dirty[pg / 64] |= 1ull << (pg % 64);
	}
}

static int fixed_rounds(const struct opts *o, struct mfd_session *snd,
			int region, uint8_t *mem, uint64_t *dirty,
			struct bench_result *res, uint64_t *seed)
{
	uint64_t pages = o->size / o->cfg.page_size;
	int r = 0;

	for (unsigned k = 0; !r && k < o->rounds; k++) {
		if (k == 0)
			r = mfd_send_region(snd, region);
		else
			r = mfd_send_dirty(snd, region, dirty, NULL);
		/* mfd_send_finish() ends the last round: a sync before it
		 * would make one more, empty */
		if (!r && k + 1 < o->rounds)
			r = mfd_send_sync(snd);
		if (k + 1 < o->rounds)
			rewrite_pages(mem, pages, o->cfg.page_size,
				      o->rewrite_pct, o->content, dirty, seed);
	}
	return r;
}

/* A guest that keeps writing: dirty_rate MiB/s of page writes, spread
 * over the region or (hot set) nine in ten into a twentieth of it. */
struct writer {
	uint8_t *mem;
	uint64_t pages;
	uint32_t ps;
	double rate; /* pages per second */
	bool hot;
	uint64_t *dirty;
	bool stop; /* atomic */
	uint64_t written;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = 0xd1e7, hot = w->pages / 20 ? w->pages / 20 : 1;
	double t0 = now_seconds();

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		uint64_t due = (uint64_t)((now_seconds() - t0) * w->rate);
		uint64_t most = (uint64_t)(w->rate / 100) + 1;

		/* a writer that cannot keep up (a slow machine, a sanitizer)
		 * writes at the rate it can, 10 ms of writes at a time, and
		 * sees the stop between them, instead of chasing a schedule
		 * it never meets */
		if (due - w->written > most)
			w->written = due - most;
		for (; w->written < due; w->written++) {
			uint64_t pg = w->hot && rng(&seed) % 10
					      ? rng(&seed) % hot
					      : rng(&seed) % w->pages;
			uint64_t v = rng(&seed);

			/* change the page, then mark it: a page the sender
			 * read before this write is sent again */
			memcpy(w->mem + pg * w->ps + (v % (w->ps / 8)) * 8, &v,
			       8);
			__atomic_fetch_or(&w->dirty[pg / 64], 1ull << (pg % 64),
					  __ATOMIC_RELEASE);
		}
		usleep(1000);
	}
	return NULL;
}

static uint64_t count_dirty(const uint64_t *dirty, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(
			__atomic_load_n(&dirty[i], __ATOMIC_RELAXED));
	return n;
}

/* Precopy: send everything, then resend what was dirtied, round after
 * round, until what is dirty can go within the downtime at the rate the
 * last round measured; then stop the writer and send the rest. */
static int live_rounds(const struct opts *o, struct mfd_session *snd,
		       int region, uint8_t *mem, uint64_t *dirty,
		       struct bench_result *res)
{
	uint64_t pages = o->size / o->cfg.page_size;
	struct writer w = { .mem = mem, .pages = pages, .ps = o->cfg.page_size,
			    .rate = o->dirty_rate * (1 << 20) /
				    o->cfg.page_size,
			    .hot = o->hot_set, .dirty = dirty };
	pthread_t wt;
	double t;
	int r = 0;

	pthread_create(&wt, NULL, writer_main, &w);
	for (unsigned k = 0; !r; k++) {
		struct mfd_stats before, after;
		uint64_t left;
		double secs, rate;

		mfd_session_stats(snd, &before);
		t = now_seconds();
		r = k == 0 ? mfd_send_region(snd, region)
			   : mfd_send_dirty(snd, region, dirty, NULL);
		if (!r)
			r = mfd_send_sync(snd);
		secs = now_seconds() - t;
		mfd_session_stats(snd, &after);
		/* the link rate as this round saw it, wire bytes per second */
		rate = secs > 0 ? (double)(after.bytes - before.bytes) / secs
				: 0;
		left = count_dirty(dirty, (pages + 63) / 64) * o->cfg.page_size;
		if (rate > 0 && (double)left / rate * 1000 <= o->downtime_ms) {
			res->converged = true;
			break;
		}
		if (k + 2 >= o->max_rounds)
			break;
	}
	__atomic_store_n(&w.stop, true, __ATOMIC_RELEASE);
	pthread_join(wt, NULL);
	if (r)
		return r;
	/* stop and copy: the guest is paused, the rest goes */
	t = now_seconds();
	r = mfd_send_dirty(snd, region, dirty, NULL);
	if (!r)
		r = mfd_send_finish(snd);
	res->downtime = now_seconds() - t;
	return r;
}

/*
 * Postcopy: the precopy rounds (every page, then what each rewrite
 * dirtied), a last rewrite of --rewrite percent of the pages, and the
 * switch with those as the dirty set: they stream while the receiver's
 * guest touches pages, and the ones it touches first come on demand.
 */
static int postcopy_rounds(const struct opts *o, struct mfd_session *snd,
			   int region, uint8_t *mem, uint64_t *dirty,
			   struct bench_result *res, uint64_t *seed)
{
	uint64_t pages = o->size / o->cfg.page_size;
	const uint64_t *maps[1] = { dirty };
	struct mfd_stats before, after;
	int r = 0;

	/* the last precopy round's rate is its send_bytes_per_s (the
	 * rewrite not counted): from -r 2 on, a round of scattered pages
	 * as the stream's */
	for (unsigned k = 0; !r && k < o->rounds; k++) {
		r = k == 0 ? mfd_send_region(snd, region)
			   : mfd_send_dirty(snd, region, dirty, NULL);
		if (!r)
			r = mfd_send_sync(snd);
		rewrite_pages(mem, pages, o->cfg.page_size, o->rewrite_pct,
			      o->content, dirty, seed);
	}
	/* the writer is stopped: dirty is the final dirty set; the stream's
	 * rate is bench_run's to take, once the guest knows when the
	 * receiver switched */
	mfd_session_stats(snd, &before);
	res->postcopy_t0 = now_seconds();
	if (!r)
		r = mfd_send_postcopy(snd, maps);
	mfd_session_stats(snd, &after);
	res->postcopy_t1 = now_seconds();
	res->postcopy_bytes = (double)(after.bytes - before.bytes);
	return r ? r : mfd_send_finish(snd);
}

/*
 * The stream's rate from the receiver's switch on: the switch (the map
 * sent, the pages dropped, the regions registered) is a pause of its
 * own, reported apart. What the sockets held when the receiver switched
 * (a few MiB) counts as streamed after it.
 */
static void postcopy_rates(struct bench_result *res, double switched_at)
{
	double t0 = switched_at > res->postcopy_t0 ? switched_at
						   : res->postcopy_t0;

	if (res->postcopy_t1 <= t0) /* the guest woke late: all of it */
		t0 = res->postcopy_t0;
	res->switch_s = t0 - res->postcopy_t0;
	if (res->postcopy_t1 > t0)
		res->postcopy_bps = res->postcopy_bytes /
				    (res->postcopy_t1 - t0);
}

/* The receiver's guest: from the switch on, it reads a byte of one page
 * after another (random, or in order), a page every 100 us, until the
 * session ends; a page not there yet is fetched on demand. The ordered
 * scan starts halfway: the stream starts at page 0 and runs far faster
 * than the guest, so a scan from page 0 would only meet pages it already
 * placed and measure nothing. */
struct guest {
	struct mfd_session *rx;
	const volatile uint8_t *mem;
	uint64_t pages;
	uint32_t ps;
	bool sequential;
	bool stop; /* atomic */
	uint64_t touches;
	double switched_at; /* when mfd_recv_postcopy_wait() returned */
};

static void *guest_main(void *arg)
{
	struct guest *g = arg;
	uint64_t seed = 0x6e57;

	if (mfd_recv_postcopy_wait(g->rx, 0))
		return NULL;
	g->switched_at = now_seconds();
	while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
		uint64_t pg = g->sequential
				      ? (g->pages / 2 + g->touches) % g->pages
				      : rng(&seed) % g->pages;

		(void)g->mem[pg * g->ps];
		g->touches++;
		usleep(100);
	}
	return NULL;
}

/* Seconds of registration per GiB registered (0: none). */
static double reg_per_gib(const struct mfd_session *s)
{
	struct mfd_stats st;

	mfd_session_stats(s, &st);
	return st.register_bytes ? st.register_seconds /
					   ((double)st.register_bytes /
					    (1u << 30))
				 : 0;
}

int bench_run(const struct opts *o, struct bench_result *res)
{
	struct receiver rc = { .dst.fd = -1 };
	struct mapping src = { .fd = -1 };
	struct mfd_session *snd = NULL;
	struct mfd_config rcfg = o->cfg, scfg = o->cfg;
	struct guest g = { .ps = o->cfg.page_size,
			   .sequential = o->postcopy_sequential };
	pthread_t gt;
	bool gt_started = false;
	uint64_t *dirty = NULL, pages, seed = 0x9e3779b97f4a7c15ull;
	pthread_t rt;
	bool rt_started = false;
	double t0, cpu0, send_cpu, gib;
	char err[300];
	int r = -ENOMEM, region;
	unsigned max_rounds = o->live	    ? o->max_rounds + 1
			      : o->postcopy ? o->rounds + 1
					    : o->rounds;

	memset(res, 0, sizeof(*res));
	pages = o->size / o->cfg.page_size;
	res->rounds = calloc(max_rounds + 1, sizeof(*res->rounds));
	if (!res->rounds || map_anon(o->size, &src) ||
	    map_anon(o->size, &rc.dst) ||
	    !(dirty = calloc((pages + 63) / 64, 8))) {
		die_msg("bench: out of memory for %llu bytes",
			(unsigned long long)o->size);
		goto out;
	}
	if (o->pretouch)
		memset(rc.dst.mem, 0, o->size);
	for (uint64_t pg = 0; pg < pages; pg++)
		fill_page((uint8_t *)src.mem + pg * o->cfg.page_size,
			  o->cfg.page_size, o->content, &seed);

	/* the receiver listens first, so that port 0 becomes a real one */
	rcfg.uri = o->uri ? o->uri : "tcp:127.0.0.1:0";
	rcfg.region_cb = bench_region;
	rcfg.region_opaque = &rc;
	r = mfd_session_new(&rcfg, MFD_ROLE_RECV, &rc.s, err, sizeof(err));
	if (!r) {
		r = mfd_session_start(rc.s);
		snprintf(err, sizeof(err), "receiver: %s",
			 mfd_session_error(rc.s));
	}
	if (r) {
		die_msg("bench: %s", err);
		goto out;
	}
	pthread_create(&rt, NULL, receiver_main, &rc);
	rt_started = true;
	if (o->postcopy) {
		g.rx = rc.s;
		g.mem = rc.dst.mem;
		g.pages = pages;
		gt_started = !pthread_create(&gt, NULL, guest_main, &g);
	}
	scfg.uri = mfd_session_uri(rc.s);
	r = mfd_session_new(&scfg, MFD_ROLE_SEND, &snd, err, sizeof(err));
	region = r ? r : mfd_session_add_region(snd, "bench", src.mem, o->size,
						false);
	if (region < 0) {
		die_msg("bench: %s", r ? err : strerror(-region));
		r = region;
		goto out;
	}

	t0 = now_seconds();
	cpu0 = thread_cpu();
	r = mfd_session_start(snd);
	if (!r && o->live)
		r = live_rounds(o, snd, region, src.mem, dirty, res);
	else if (!r && o->postcopy)
		r = postcopy_rounds(o, snd, region, src.mem, dirty, res, &seed);
	else if (!r)
		r = fixed_rounds(o, snd, region, src.mem, dirty, res, &seed);
	if (!r && !o->live && !o->postcopy)
		r = mfd_send_finish(snd);
	res->seconds = now_seconds() - t0;
	send_cpu = thread_cpu() - cpu0 + channels_cpu(snd);
	if (r) {
		die_msg("bench: sender: %s", mfd_session_error(snd));
		mfd_session_cancel(rc.s);
	}
	pthread_join(rt, NULL);
	rt_started = false;
	if (gt_started) {
		__atomic_store_n(&g.stop, true, __ATOMIC_RELEASE);
		pthread_join(gt, NULL);
		gt_started = false;
		res->touches = g.touches;
		postcopy_rates(res, g.switched_at);
	}
	if (rc.result) {
		die_msg("bench: receiver: %s", mfd_session_error(rc.s));
		r = rc.result;
	}
	if (r)
		goto out;
	res->identical = !memcmp(src.mem, rc.dst.mem, o->size);
	if (!res->identical)
		die_msg("bench: the receiver's memory differs from the "
			"sender's");
	if (!o->no_ceiling)
		res->ceiling = raw_ceiling(src.mem, o->size, o->cfg.channels,
					   o->pretouch);
	mfd_session_stats(snd, &res->st);
	mfd_session_stats(rc.s, &res->rx);
	while (res->nrounds < max_rounds + 1 &&
	       !mfd_round_stats(snd, res->nrounds, &res->rounds[res->nrounds]))
		res->nrounds++;
	if (o->postcopy && res->nrounds >= o->rounds)
		res->precopy_bps = res->rounds[o->rounds - 1].send_bytes_per_s;
	gib = (double)res->st.payload_bytes / (1u << 30);
	res->gib_per_s = gib / res->seconds;
	res->send_cpu_per_gib = gib > 0 ? send_cpu / gib : 0;
	res->recv_cpu_per_gib = gib > 0 ? channels_cpu(rc.s) / gib : 0;
	res->send_reg_per_gib = reg_per_gib(snd);
	res->recv_reg_per_gib = reg_per_gib(rc.s);
out:
	if (rt_started) {
		mfd_session_cancel(rc.s);
		pthread_join(rt, NULL);
	}
	if (gt_started) { /* the cancel ended its wait, or the session */
		__atomic_store_n(&g.stop, true, __ATOMIC_RELEASE);
		pthread_join(gt, NULL);
	}
	mfd_session_free(snd);
	mfd_session_free(rc.s);
	unmap(&src);
	unmap(&rc.dst);
	free(dirty);
	return r;
}
