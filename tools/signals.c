/* SPDX-License-Identifier: MIT */
/* signals.c - see signals.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "signals.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mfd_session *watched; /* protected by lock */
static int caught;		    /* atomic */
static double first; /* when the first signal came; protected by lock */
static sigset_t set;

const char *signal_name(int sig)
{
	switch (sig) {
	case SIGINT:
		return "SIGINT";
	case SIGTERM:
		return "SIGTERM";
	case SIGHUP:
		return "SIGHUP";
	}
	return "a signal";
}

/* What the peer is told: "the receiver failed: " comes before it there.
 * Under lock. */
static void cancel(struct mfd_session *s, int sig)
{
	char why[80];

	snprintf(why, sizeof(why), "it was stopped by a signal (%s)",
		 signal_name(sig));
	mfd_session_cancel_reason(s, why);
}

static void *signal_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int sig;

		if (sigwait(&set, &sig))
			continue;
		pthread_mutex_lock(&lock);
		/* a copy of the first (a terminal's Ctrl-C reaches both
		 * `timeout` and us, and timeout passes it on) is no reason
		 * to give up the clean end */
		if (caught && now_seconds() - first < 1.0) {
			pthread_mutex_unlock(&lock);
			continue;
		}
		if (!caught)
			first = now_seconds();
		/* the second one, or nothing to unwind: the default action */
		if (__atomic_exchange_n(&caught, sig, __ATOMIC_RELAXED) ||
		    !watched) {
			if (!watched) /* a bench, a session not made yet */
				cmd_error("stopped by a signal (%s)",
					  signal_name(sig));
			signal(sig, SIG_DFL);
			pthread_sigmask(SIG_UNBLOCK, &set, NULL);
			raise(sig);
		}
		cancel(watched, sig);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int signals_start(void)
{
	pthread_t t;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!r)
		r = pthread_create(&t, NULL, signal_thread, NULL);
	if (!r)
		r = pthread_detach(t);
	return -r;
}

void signals_watch(struct mfd_session *s)
{
	pthread_mutex_lock(&lock);
	watched = s;
	if (s && __atomic_load_n(&caught, __ATOMIC_RELAXED))
		cancel(s, __atomic_load_n(&caught, __ATOMIC_RELAXED));
	pthread_mutex_unlock(&lock);
}

int signals_caught(void)
{
	return __atomic_load_n(&caught, __ATOMIC_RELAXED);
}
