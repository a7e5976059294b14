/* SPDX-License-Identifier: MIT */
/* progress.c - see progress.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "progress.h"

static void stats_object(const struct mfd_stats *st)
{
	printf("{\"bytes\":%llu,\"payload_bytes\":%llu,\"packets\":%llu,"
	       "\"normal_pages\":%llu,\"zero_pages\":%llu,\"raw_packets\":%llu,"
	       "\"zerocopy_sends\":%llu,\"zerocopy_copied\":%llu,"
	       "\"zerocopy_fallbacks\":%llu,\"rounds\":%llu,"
	       "\"rejected_connections\":%llu,\"cpu_seconds\":%.3f,"
	       "\"seconds\":%.6f}",
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
	       (double)st->cpu_ns / 1e9, st->seconds);
}

void print_stats_json(const struct mfd_session *s)
{
	unsigned n = mfd_session_channels(s);
	struct mfd_stats st;

	mfd_session_stats(s, &st);
	printf("{\"totals\":");
	stats_object(&st);
	printf(",\"per_channel\":[");
	for (unsigned i = 0; i < n; i++) {
		struct mfd_stats cs;

		mfd_channel_stats(s, i, &cs);
		printf(i ? "," : "");
		stats_object(&cs);
	}
	printf("]}");
}

static void human(double bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", bytes, unit[u]);
}

static void draw(const struct progress *p)
{
	struct mfd_stats st;
	char done[32], total[32] = "?", eta[32] = "", speed[32];
	double rate;

	mfd_session_stats(p->s, &st);
	rate = st.seconds > 0 ? (double)st.payload_bytes / st.seconds : 0;
	human((double)st.payload_bytes, done, sizeof(done));
	human(rate, speed, sizeof(speed));
	if (p->total) {
		human((double)p->total, total, sizeof(total));
		if (rate > 0 && st.payload_bytes < p->total) {
			unsigned left = (unsigned)((double)(p->total -
							    st.payload_bytes) /
						   rate);

			snprintf(eta, sizeof(eta), " ETA %u:%02u:%02u",
				 left / 3600, left / 60 % 60, left % 60);
		}
	}
	fprintf(stderr, "\r%s / %s  %s/s  round %llu%s\033[K", done, total,
		speed, (unsigned long long)st.rounds + 1, eta);
	fflush(stderr);
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	double next_stats = p->stats_interval;
	struct timespec t0, ts;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		double t;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stop)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t = (double)(ts.tv_sec - t0.tv_sec) +
		    (double)(ts.tv_nsec - t0.tv_nsec) / 1e9;
		if (p->line)
			draw(p);
		if (p->stats_interval > 0 && t >= next_stats) {
			print_stats_json(p->s);
			printf("\n");
			fflush(stdout);
			next_stats += p->stats_interval;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void progress_start(struct progress *p)
{
	if (!p->line && p->stats_interval <= 0)
		return;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
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
		draw(p);
		fputc('\n', stderr);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}
