/* SPDX-License-Identifier: MIT */
/* progress.c - see progress.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "progress.h"

static void stats_object(FILE *f, const struct mfd_stats *st)
{
	fprintf(f, "{\"bytes\":%llu,\"payload_bytes\":%llu,\"packets\":%llu,"
	       "\"normal_pages\":%llu,\"zero_pages\":%llu,\"raw_packets\":%llu,"
	       "\"zerocopy_sends\":%llu,\"zerocopy_copied\":%llu,"
	       "\"zerocopy_fallbacks\":%llu,\"rounds\":%llu,"
	       "\"rejected_connections\":%llu,\"blobs\":%llu,"
	       "\"blob_bytes\":%llu,\"cpu_seconds\":%.3f,"
	       "\"seconds\":%.6f,\"tls_channels\":%llu,"
	       "\"ktls_send_channels\":%llu,\"ktls_recv_channels\":%llu,"
	       "\"inline_packets\":%llu,\"landed_packets\":%llu,"
	       "\"channels_lost\":%llu,\"resent_pages\":%llu,"
	       "\"resent_bytes\":%llu,\"resent_packets\":%llu}",
	       (unsigned long long)st->bytes,
	       (unsigned long long)st->payload_bytes,
	       (unsigned long long)st->packets,
	       (unsigned long long)st->normal_pages,
	       (unsigned long long)st->zero_pages,
	       (unsigned long long)st->raw_packets,
	       (unsigned long long)st->zerocopy_sends,
	       (unsigned long long)st->zerocopy_copied,
	       (unsigned long long)st->zerocopy_fallbacks,
	       (unsigned long long)st->rounds,
	       (unsigned long long)st->rejected_connections,
	       (unsigned long long)st->blobs,
	       (unsigned long long)st->blob_bytes,
	       (double)st->cpu_ns / 1e9, st->seconds,
	       (unsigned long long)st->tls_channels,
	       (unsigned long long)st->ktls_send_channels,
	       (unsigned long long)st->ktls_recv_channels,
	       (unsigned long long)st->inline_packets,
	       (unsigned long long)st->landed_packets,
	       (unsigned long long)st->channels_lost,
	       (unsigned long long)st->resent_pages,
	       (unsigned long long)st->resent_bytes,
	       (unsigned long long)st->resent_packets);
}

void fprint_round_json(FILE *f, const struct mfd_round_stats *rs)
{
	fprintf(f, "{\"round\":%llu,\"pages\":%llu,\"bytes\":%llu,"
		"\"seconds\":%.6f,\"bytes_per_s\":%.0f,\"dirty_pages\":%llu,"
		"\"dirty_pages_per_s\":%.1f,\"projected_downtime_s\":%.6f,"
		"\"send_seconds\":%.6f,\"send_bytes_per_s\":%.0f}",
		(unsigned long long)rs->round, (unsigned long long)rs->pages,
		(unsigned long long)rs->bytes, rs->seconds, rs->bytes_per_s,
		(unsigned long long)rs->dirty_pages, rs->dirty_pages_per_s,
		rs->projected_downtime_s, rs->send_seconds,
		rs->send_bytes_per_s);
}

void fprint_json_string(FILE *f, const char *text)
{
	fputc('"', f);
	for (; text && *text; text++) {
		unsigned char c = (unsigned char)*text;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Each endpoint of the URI: its channels and what they carried. */
static void fprint_endpoints_json(FILE *f, const struct mfd_session *s,
				  unsigned n)
{
	for (unsigned k = 0; k < mfd_session_endpoints(s); k++) {
		unsigned channels = 0;
		struct mfd_stats sum = { 0 };

		for (unsigned i = 0; i < n; i++) {
			struct mfd_stats cs;

			if (mfd_channel_endpoint(s, i) != (int)k ||
			    mfd_channel_stats(s, i, &cs))
				continue;
			channels++;
			sum.bytes += cs.bytes;
			sum.normal_pages += cs.normal_pages;
			sum.zero_pages += cs.zero_pages;
			sum.channels_lost += cs.channels_lost;
		}
		fputs(k ? ",{\"uri\":" : "{\"uri\":", f);
		fprint_json_string(f, mfd_session_endpoint(s, k));
		fprintf(f,
			",\"channels\":%u,\"bytes\":%llu,"
			"\"normal_pages\":%llu,\"zero_pages\":%llu,"
			"\"channels_lost\":%llu}",
			channels, (unsigned long long)sum.bytes,
			(unsigned long long)sum.normal_pages,
			(unsigned long long)sum.zero_pages,
			(unsigned long long)sum.channels_lost);
	}
}

void fprint_stats_json(FILE *f, const struct mfd_session *s)
{
	unsigned n = mfd_session_channels(s);
	struct mfd_round_stats rs;
	struct mfd_stats st;

	mfd_session_stats(s, &st);
	fputs("{\"totals\":", f);
	stats_object(f, &st);
	fputs(",\"per_channel\":[", f);
	for (unsigned i = 0; i < n; i++) {
		struct mfd_stats cs;

		mfd_channel_stats(s, i, &cs);
		fputs(i ? "," : "", f);
		stats_object(f, &cs);
	}
	fputs("],\"per_endpoint\":[", f);
	fprint_endpoints_json(f, s, n);
	/* a sender's completed rounds (a receiver has none) */
	fputs("],\"rounds\":[", f);
	for (unsigned k = 0; !mfd_round_stats(s, k, &rs); k++) {
		fputs(k ? "," : "", f);
		fprint_round_json(f, &rs);
	}
	fputs("]}", f);
}

void print_stats_json(const struct mfd_session *s)
{
	fprint_stats_json(stdout, s);
}

/* One statistics line, written whole so that its errno is its own.
 * Returns 0 or the errno of the failed write. */
static int stats_line(const struct mfd_session *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int e = 0;

	if (!m)
		return errno;
	fprint_stats_json(m, s);
	fputc('\n', m);
	if (fclose(m)) {
		free(buf);
		return errno ? errno : ENOMEM;
	}
	errno = 0;
	if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) == EOF ||
	    ferror(stdout))
		e = errno ? errno : EIO;
	free(buf);
	return e;
}

void progress_expect(struct progress *p, uint64_t bytes)
{
	__atomic_fetch_add(&p->total, bytes, __ATOMIC_RELAXED);
}

void human_size(double bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", bytes, unit[u]);
}

/* Returns 0 or the errno of the failed write. */
static int draw(struct progress *p)
{
	struct mfd_stats st;
	char done[32], total[32] = "?", eta[32] = "", speed[32], lost[64] = "";
	char round[32] = "";
	uint64_t covered, expected;
	double rate;

	mfd_session_stats(p->s, &st);
	/* the pages in place, zero pages and holes too (a sparse image
	 * reaches its size); what failover sent again is not progress */
	covered = (st.normal_pages + st.zero_pages) *
		  mfd_session_page_size(p->s);
	covered -= st.resent_bytes < covered ? st.resent_bytes : covered;
	/* a lost channel's round is counted as sent again before its
	 * pages are: the figure never steps back */
	if (covered < p->shown)
		covered = p->shown;
	p->shown = covered;
	rate = st.seconds > 0 ? (double)covered / st.seconds : 0;
	human_size((double)covered, done, sizeof(done));
	human_size(rate, speed, sizeof(speed));
	expected = __atomic_load_n(&p->total, __ATOMIC_RELAXED);
	if (expected) {
		human_size((double)expected, total, sizeof(total));
		if (rate > 0 && covered < expected) {
			unsigned left = (unsigned)((double)(expected -
							    covered) /
						   rate);

			snprintf(eta, sizeof(eta), "  ETA %u:%02u:%02u",
				 left / 3600, left / 60 % 60, left % 60);
		}
	}
	if (st.channels_lost)
		snprintf(lost, sizeof(lost), "  %llu channel%s lost, %llu "
			 "pages sent again",
			 (unsigned long long)st.channels_lost,
			 st.channels_lost == 1 ? "" : "s",
			 (unsigned long long)st.resent_pages);
	errno = 0;
	/* the round once there are several (a one-pass transfer's end is a
	 * round of its own, which would read as a second pass) */
	if (st.rounds >= 2)
		snprintf(round, sizeof(round), "  round %llu",
			 (unsigned long long)st.rounds + 1);
	if (fprintf(stderr, p->log ? "%s / %s  %s/s%s%s%s\n"
				   : "\r%s / %s  %s/s%s%s%s\033[K",
		    done, total, speed, round, eta, lost) < 0 ||
	    fflush(stderr) == EOF)
		return errno ? errno : EIO;
	return 0;
}

static void add_seconds(struct timespec *ts, double s)
{
	long long ns = ts->tv_nsec + (long long)(s * 1e9);

	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

static double since(const struct timespec *t0)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - t0->tv_sec) +
	       (double)(ts.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Draws the line every 0.25 s (a log's every second) and writes a
 * statistics line every stats_interval. An output that cannot be written (a closed pipe, a full
 * disk) stops, with one warning: the transfer is none of its business.
 */
static void *progress_main(void *arg)
{
	struct progress *p = arg;
	const double tick = p->log ? 1 : 0.25;
	double next_draw = tick, next_stats = p->stats_interval;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&p->lock);
	while (!p->stop && (p->line || p->stats_interval > 0)) {
		struct timespec ts = t0;
		double t, wake = p->line ? next_draw : 1e300;
		int e;

		if (p->stats_interval > 0 && next_stats < wake)
			wake = next_stats;
		add_seconds(&ts, wake);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stop)
			break;
		t = since(&t0);
		if (p->line && t >= next_draw) {
			if ((e = draw(p))) {
				p->line = false;
				output_failed(stderr, "progress display", e);
			}
			while (next_draw <= t)
				next_draw += tick;
		}
		if (p->stats_interval > 0 && t >= next_stats) {
			if ((e = stats_line(p->s))) {
				p->stats_interval = 0;
				output_failed(stdout, "statistics", e);
			}
			/* a late wake-up writes one line, not a burst */
			next_stats += p->stats_interval;
			if (next_stats <= t)
				next_stats = t + p->stats_interval;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void progress_start(struct progress *p)
{
	if (!p->line && p->stats_interval <= 0)
		return;
	pthread_condattr_t ca;

	pthread_mutex_init(&p->lock, NULL);
	/* deadlines on the monotonic clock: a step of the wall clock must
	 * not stop the display or flood the statistics */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->stop = false;
	p->running = !pthread_create(&p->thread, NULL, progress_main, p);
}

void progress_stop(struct progress *p)
{
	if (!p->running)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->running = false;
	if (p->line) {
		int e = draw(p);

		if (!e && !p->log && fputc('\n', stderr) == EOF)
			e = errno ? errno : EIO;
		if (e)
			output_failed(stderr, "progress display", e);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}
