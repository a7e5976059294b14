/* SPDX-License-Identifier: MIT */
/*
 * rx.h - a receiving session of one region "ram" of `len` bytes (zeroed
 * memory) at `uri`, waiting on a thread of its own; for the tests that
 * build their sender by hand.
 */
#ifndef MFD_TEST_RX_H
#define MFD_TEST_RX_H

#include <pthread.h>

#include "multifd.h"

struct rx {
	struct mfd_session *s;
	pthread_t t;
	int result; /* mfd_recv_wait()'s, once the thread is joined */
};

static inline void *rx_main(void *arg)
{
	struct rx *rx = arg;

	rx->result = mfd_recv_wait(rx->s);
	return NULL;
}

/* 0, or -1 when the session could not start. */
static inline int rx_start_len(struct rx *rx, const char *uri, uint8_t *dst,
			       uint64_t len, unsigned timeout_ms)
{
	struct mfd_config cfg;
	char err[300];

	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.timeout_ms = timeout_ms;
	if (mfd_session_new(&cfg, MFD_ROLE_RECV, &rx->s, err, sizeof(err)) ||
	    mfd_session_add_region(rx->s, "ram", dst, len, true) < 0 ||
	    mfd_session_start(rx->s))
		return -1;
	return pthread_create(&rx->t, NULL, rx_main, rx);
}

#endif
