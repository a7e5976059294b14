/* SPDX-License-Identifier: MIT */
/*
 * postcopy.c - what both ends of a postcopy session share: its state,
 * the wake-up on failure, the threads' stop and the latency figures.
 */
#include "config.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "session.h"

int mfd__pc_new(struct mfd_session *s)
{
	struct mfd_postcopy *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return -ENOMEM;
	pc->uffd = -1;
	pc->sys_page = (uint64_t)sysconf(_SC_PAGESIZE);
	pthread_mutex_init(&pc->lock, NULL);
	/* mfd_recv_postcopy_wait() and the statistics look from any thread */
	pthread_mutex_lock(&s->lock);
	s->pc = pc;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void mfd__pc_free(struct mfd_session *s)
{
	struct mfd_postcopy *pc = s->pc;

	if (!pc)
		return;
	for (int i = 0; i < MFD_MAX_REGIONS; i++)
		free(pc->map[i]);
	if (pc->uffd >= 0)
		close(pc->uffd);
	free(pc->lat_us);
	free(pc->pending);
	pthread_mutex_destroy(&pc->lock);
	free(pc);
	s->pc = NULL;
}

/*
 * The urgent channel carries nothing until the switch, which may come
 * after a precopy of hours: a NAT or firewall on the path would forget
 * it, and the first request after the switch would meet a dead
 * connection. Probes below the protocol every third of the timeout (a
 * minute without one) keep it, and need no reader on either end.
 */
int mfd__pc_keepalive(const struct mfd_session *s, struct mfd_conn *c)
{
	unsigned t = s->cfg.timeout_ms;

	return mfd__tp_keepalive(c, t ? t / 3 : 60000);
}

int mfd__pc_transport_ok(const struct mfd_session *s, char *err,
			 size_t errlen)
{
	/* the urgent channel is written by the fault thread while another
	 * reads it, which an OpenSSL connection does not allow */
	if (s->cfg.tls || s->cfg.tls_cert) {
		snprintf(err, errlen,
			 "postcopy does not run over TLS yet (its urgent "
			 "channel is read and written by two threads at once)");
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < s->nep; i++) {
		enum mfd_scheme k = s->ep[i].uri.scheme;

		if (k != MFD_SCHEME_TCP && k != MFD_SCHEME_UNIX) {
			snprintf(err, errlen,
				 "postcopy needs tcp: or unix: endpoints ('%s' "
				 "cannot carry its urgent channel)",
				 s->ep[i].uri.text);
			return -ENOTSUP;
		}
	}
	return 0;
}

/*
 * Leaving userfaultfd wakes every thread blocked in a fault on the range,
 * and from then on a missing page faults in as zeros: nothing can stay
 * blocked on a page that will never come.
 */
static void unregister_all(struct mfd_session *s)
{
	struct mfd_postcopy *pc = s->pc;

	for (int i = 0; pc->registered && i < s->nregions; i++) {
		struct uffdio_range r = {
			.start = (uintptr_t)s->regions[i].mem,
			.len = s->regions[i].length,
		};

		ioctl(pc->uffd, UFFDIO_UNREGISTER, &r);
	}
	pc->registered = false;
}

void mfd__pc_on_fail(struct mfd_session *s)
{
	if (s->urgent)
		mfd__tp_shutdown(s->urgent->conn);
	unregister_all(s);
}

void mfd__pc_stop(struct mfd_session *s)
{
	struct mfd_postcopy *pc = s->pc;

	if (!pc)
		return;
	pthread_mutex_lock(&s->lock);
	pc->stop = true;
	if (s->urgent)
		mfd__tp_shutdown(s->urgent->conn);
	pthread_mutex_unlock(&s->lock);
	if (pc->fault_started)
		pthread_join(pc->fault_thread, NULL);
	if (pc->urgent_started)
		pthread_join(pc->urgent_thread, NULL);
	pc->fault_started = pc->urgent_started = false;
	pthread_mutex_lock(&s->lock);
	unregister_all(s);
	pthread_mutex_unlock(&s->lock);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of n sorted values. */
static double rank(const uint32_t *v, size_t n, unsigned pct)
{
	size_t k = (n * pct + 99) / 100;

	return v[k ? k - 1 : 0];
}

void mfd__pc_stats(struct mfd_postcopy *pc, struct mfd_stats *st)
{
	uint32_t *v;
	size_t n;

	pthread_mutex_lock(&pc->lock);
	n = pc->nlat;
	v = n ? malloc(n * sizeof(*v)) : NULL;
	if (v)
		memcpy(v, pc->lat_us, n * sizeof(*v));
	pthread_mutex_unlock(&pc->lock);
	if (!v)
		return;
	qsort(v, n, sizeof(*v), cmp_u32);
	st->postcopy_latency_p50_us = rank(v, n, 50);
	st->postcopy_latency_p90_us = rank(v, n, 90);
	st->postcopy_latency_p99_us = rank(v, n, 99);
	st->postcopy_latency_max_us = v[n - 1];
	free(v);
}
