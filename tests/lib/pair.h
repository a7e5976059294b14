/* SPDX-License-Identifier: MIT */
/*
 * pair.h - a receiver session on a thread and a sender session in the
 * calling thread, connected over a URI, each with one region "ram"; and a
 * raw peer that speaks the wire protocol by hand for the fault tests.
 */
#ifndef MFD_TEST_PAIR_H
#define MFD_TEST_PAIR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "multifd.h"
#include "packet.h"
#include "transports/transport.h"

struct pair {
	struct mfd_session *rx, *tx;
	pthread_t rt;
	bool rt_started;
	int rx_result;
	int region; /* the sender's index of "ram" */
};

/* Start a receiver listening on listen_uri with dst, then a sender with
 * src connected to it. cfg's uri is ignored. 0 or -errno. */
int pair_start(struct pair *p, const struct mfd_config *cfg,
	       const char *listen_uri, uint8_t *src, uint8_t *dst,
	       uint64_t len);
/* A sender with src as region "ram", connected to p->rx and started;
 * mfd_session_start()'s result (p->tx stays for its error message). A
 * sender p already had is freed first. */
int tx_start(struct pair *p, const struct mfd_config *cfg, uint8_t *src,
	     uint64_t len);
/* Finish the sender, wait for the receiver; 0 when both succeeded. */
int pair_finish(struct pair *p);
/* Wait for the receiver thread; its result. */
int pair_join_rx(struct pair *p);
void pair_free(struct pair *p);

/* A receiver session alone, on a thread. */
int rx_start(struct pair *p, const struct mfd_config *cfg,
	     const char *listen_uri, uint8_t *dst, uint64_t len);

/* A hand-made sender: connect to uri and send the init for channel `ch`
 * of `channels` (region "ram" of len bytes on channel 0). Returns the
 * connection or NULL. */
struct mfd_conn *raw_connect(const char *uri, uint16_t ch, uint16_t channels,
			     uint8_t method, uint64_t len);
/* Connect to uri and send len bytes as they are: an init of one's own
 * making, and a region table or none. The connection or NULL. */
struct mfd_conn *raw_connect_bytes(const char *uri, const void *buf,
				   size_t len);
/* Read the receiver's answer to the init; *status 0 when accepted. */
int raw_ack(struct mfd_conn *c, int32_t *status);
/* The same, and the receiver's reason for a refusal into msg (len bytes,
 * NUL-terminated; "" when accepted). */
int raw_ack_msg(struct mfd_conn *c, int32_t *status, char *msg, size_t len);

/*
 * A hand-made receiver, for what a sender does with a lying one: a
 * loopback listener and a thread that accepts one connection, reads the
 * first `skip` bytes the sender writes, answers with `reply` (reply_len
 * bytes), holds the connection open for hold_ms and closes it.
 */
struct liar {
	size_t skip;
	const void *reply;
	size_t reply_len;
	unsigned hold_ms;
	/* filled by liar_start() */
	struct mfd_listener *l;
	pthread_t t;
};

/* Listen and start the thread; 0 or -errno. */
int liar_start(struct liar *lr);
/* A one-channel sender for the liar, with src as region "ram" of len
 * bytes, not started yet (cfg's uri and channels are set here). */
int liar_sender(struct liar *lr, const struct mfd_config *cfg, uint8_t *src,
		uint64_t len, struct mfd_session **tx);
/* Wait for the thread and close the listener. */
void liar_stop(struct liar *lr);

/* Send a page header and its offsets. */
int raw_send_pages(struct mfd_conn *c, const struct mfd_hdr *h,
		   const uint64_t *off);

#endif

/* Fill one page of test content. */
typedef void (*page_fill_fn)(uint8_t *page, uint32_t ps, uint64_t *st);

/*
 * A whole transfer through a pair: len bytes filled page by page (an
 * eighth of them zero), a first round of every page, then rounds-1 rounds
 * that each rewrite a random tenth of the pages (a quarter of those to
 * zero, zero pages back to data) and send that subset in random order.
 * Then finish, and compare byte for byte. Fills *st with the sender's
 * statistics when not NULL. Returns 0 when everything matched.
 */
int run_transfer(const struct mfd_config *cfg, const char *listen_uri,
		 uint64_t len, unsigned rounds, page_fill_fn fill,
		 struct mfd_stats *st);
