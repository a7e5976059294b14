/* SPDX-License-Identifier: MIT */
/*
 * test-failover.c - a dead channel is not a dead session (min_channels,
 * protocol.md 15), over tcp loopback: a channel whose connection is shut
 * down mid-round, on the sender's side or on the receiver's, is retired,
 * what it carried is sent again on the others, and the transfer ends
 * identical; also across rounds that rewrite pages, with a blob whose
 * pieces a lost channel carried, with VERIFY, and when a channel is lost
 * after the last sync (the END then passes as a sync). Fewer channels
 * than min_channels, or none, fail both ends with a message naming each
 * channel's fate; the settings failover cannot go with are refused.
 * And a session over two endpoints (tcp: and unix:), channels spread.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "pair.h"
#include "session.h"

#define SIZE (32ull << 20)
#define TIMEOUT_MS 3000u
static const char *uri = "tcp:127.0.0.1:0";

/* Shut channel `channel` of s down after `ms` milliseconds, on a thread. */
struct cut {
	struct mfd_session *s;
	unsigned channel, ms;
	pthread_t t;
};

static void *cut_main(void *arg)
{
	struct cut *c = arg;

	usleep(c->ms * 1000);
	mfd__tp_shutdown(c->s->ch[c->channel].conn);
	return NULL;
}

static void cut_start(struct cut *c, struct mfd_session *s, unsigned channel,
		      unsigned ms)
{
	c->s = s;
	c->channel = channel;
	c->ms = ms;
	CU_ASSERT_FATAL(pthread_create(&c->t, NULL, cut_main, c) == 0);
}

static void config(struct mfd_config *cfg, unsigned channels, unsigned min)
{
	mfd_config_init(cfg);
	cfg->channels = channels;
	cfg->min_channels = min;
	cfg->timeout_ms = TIMEOUT_MS;
	/* 32 MiB in about a second: a cut at 300 ms falls mid-round */
	cfg->max_bandwidth = 32ull << 20;
}

/* One full round and `rounds` more that rewrite every 7th page, with
 * channel `victim` of the sender (rx false) or receiver cut during the
 * first; the result. */
static int cut_transfer(bool rx, unsigned victim, unsigned rounds,
			struct mfd_stats *ts, struct mfd_stats *rs)
{
	uint8_t *src = guarded_alloc(SIZE), *dst = guarded_alloc(SIZE);
	uint64_t seed = 11, *offs = malloc(SIZE / 4096 * sizeof(*offs));
	struct mfd_config cfg;
	struct cut c;
	struct pair p;
	size_t n = 0;
	int r;

	CU_ASSERT_FATAL(src && dst && offs);
	fill_random(src, SIZE, &seed);
	config(&cfg, 4, 1);
	r = pair_start(&p, &cfg, uri, src, dst, SIZE);
	CU_ASSERT_FATAL(r == 0);
	cut_start(&c, rx ? p.rx : p.tx, victim, 300);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_sync(p.tx);
	for (unsigned k = 0; !r && k < rounds; k++) {
		n = 0;
		for (uint64_t off = 4096 * k; off < SIZE; off += 7 * 4096) {
			src[off] ^= 0x5a;
			offs[n++] = off;
		}
		r = mfd_send_pages(p.tx, p.region, offs, n);
		if (!r)
			r = mfd_send_sync(p.tx);
	}
	pthread_join(c.t, NULL);
	if (!r)
		r = pair_finish(&p);
	mfd_session_stats(p.tx, ts);
	mfd_session_stats(p.rx, rs);
	fprintf(stderr, "sender: %s\nreceiver: %s\n", mfd_session_error(p.tx),
		mfd_session_error(p.rx));
	CU_ASSERT(!memcmp(src, dst, SIZE));
	pair_free(&p);
	free(offs);
	guarded_free(src, SIZE);
	guarded_free(dst, SIZE);
	return r;
}

static void check_one_lost(int r, const struct mfd_stats *ts,
			   const struct mfd_stats *rs)
{
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(ts->channels_lost, 1);
	CU_ASSERT_EQUAL(rs->channels_lost, 1);
	CU_ASSERT(ts->resent_pages > 0);
	CU_ASSERT(ts->resent_bytes > 0);
	/* a packet carries up to 128 pages */
	CU_ASSERT(ts->resent_packets >= (ts->resent_pages + 127) / 128);
	CU_ASSERT(ts->resent_packets <= ts->resent_pages);
	fprintf(stderr, "resent %llu pages, %llu bytes\n",
		(unsigned long long)ts->resent_pages,
		(unsigned long long)ts->resent_bytes);
}

static void test_sender_cut(void)
{
	struct mfd_stats ts, rs;
	int r = cut_transfer(false, 1, 0, &ts, &rs);

	check_one_lost(r, &ts, &rs);
}

static void test_receiver_cut(void)
{
	struct mfd_stats ts, rs;
	int r = cut_transfer(true, 2, 0, &ts, &rs);

	check_one_lost(r, &ts, &rs);
}

static void test_cut_with_rounds(void)
{
	struct mfd_stats ts, rs;
	int r = cut_transfer(true, 0, 3, &ts, &rs);

	check_one_lost(r, &ts, &rs);
}

/* Channels `a` and `b` of the receiver's (rx) or the sender's session cut
 * at 200 and 400 ms of a transfer over `channels` with min_channels
 * `min`, which must fail on both ends: *secs is how long it took. */
static void cut_two(unsigned channels, unsigned min, bool rx, unsigned a,
		    unsigned b, struct pair *p, double *secs)
{
	uint8_t *src = guarded_alloc(SIZE), *dst = guarded_alloc(SIZE);
	struct timespec t0, t1;
	struct mfd_config cfg;
	struct cut c[2];
	int r;

	CU_ASSERT_FATAL(src && dst);
	memset(src, 0x33, SIZE);
	config(&cfg, channels, min);
	CU_ASSERT_FATAL(pair_start(p, &cfg, uri, src, dst, SIZE) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cut_start(&c[0], rx ? p->rx : p->tx, a, 200);
	cut_start(&c[1], rx ? p->rx : p->tx, b, 400);
	r = mfd_send_region(p->tx, p->region);
	if (!r)
		r = mfd_send_finish(p->tx);
	pthread_join(c[0].t, NULL);
	pthread_join(c[1].t, NULL);
	CU_ASSERT(r < 0);
	CU_ASSERT(pair_join_rx(p) < 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "after %.2f s: sender: %s\nreceiver: %s\n", *secs,
		mfd_session_error(p->tx), mfd_session_error(p->rx));
	guarded_free(src, SIZE);
	guarded_free(dst, SIZE);
}

/* Each channel of the receiver's session cut in turn: the last one
 * fails both ends within the timeout, naming every channel. */
static void test_all_lost(void)
{
	const char *e;
	struct pair p;
	double secs;

	cut_two(2, 1, true, 0, 1, &p, &secs);
	e = mfd_session_error(p.rx);
	CU_ASSERT(secs < 3.0 * TIMEOUT_MS / 1000);
	CU_ASSERT(strstr(e, "every channel was lost (the sender gave up") !=
		  NULL);
	CU_ASSERT(strstr(e, "channel 0: ") && strstr(e, "channel 1: "));
	pair_free(&p);
}

/* min_channels 3 of 4: one lost is borne, two are not. */
static void test_min_channels(void)
{
	const char *e;
	struct pair p;
	double secs;

	cut_two(4, 3, false, 1, 3, &p, &secs);
	e = mfd_session_error(p.tx);
	CU_ASSERT(strstr(e, "(at least 3 needed, min_channels)") != NULL);
	CU_ASSERT(strstr(e, "channel 3: ") != NULL);
	pair_free(&p);
}

/* A blob sent while a channel dies; and a channel lost at the last
 * sync's barrier (cut by the receiver's blob callback, which runs
 * there), so that the END passes as a sync. Both with VERIFY. */
struct blob_seen {
	struct pair *p;
	uint8_t *data;
	uint64_t len;
	unsigned calls;
	int cut; /* the receiver's channel to cut on delivery, or -1 */
};

static int take_blob(void *opaque, const char *name, const void *data,
		     uint64_t len)
{
	struct blob_seen *b = opaque;

	(void)name;
	b->calls++;
	CU_ASSERT(len == b->len && !memcmp(data, b->data, len));
	if (b->cut >= 0)
		mfd__tp_shutdown(b->p->rx->ch[b->cut].conn);
	return 0;
}

static void blob_transfer(bool cut_at_end)
{
	const uint64_t blen = 3ull << 20;
	uint8_t *src = guarded_alloc(SIZE), *dst = guarded_alloc(SIZE);
	uint8_t *blob = malloc(blen);
	struct blob_seen seen = { .len = blen, .cut = cut_at_end ? 1 : -1 };
	struct mfd_stats ts, rs;
	struct mfd_config cfg;
	uint64_t seed = 5;
	struct cut c;
	struct pair p;
	int r;

	CU_ASSERT_FATAL(src && dst && blob);
	fill_random(src, SIZE, &seed);
	fill_random(blob, blen, &seed);
	seen.data = blob;
	seen.p = &p;
	config(&cfg, 3, 1);
	cfg.verify = true;
	cfg.blob_cb = take_blob;
	cfg.blob_opaque = &seen;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, uri, src, dst, SIZE) == 0);
	if (!cut_at_end)
		cut_start(&c, p.rx, 2, 300);
	r = mfd_send_blob(p.tx, "state", blob, blen);
	if (!r)
		r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = pair_finish(&p);
	if (!cut_at_end)
		pthread_join(c.t, NULL);
	mfd_session_stats(p.tx, &ts);
	mfd_session_stats(p.rx, &rs);
	fprintf(stderr, "sender: %s\nreceiver: %s\n", mfd_session_error(p.tx),
		mfd_session_error(p.rx));
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(seen.calls, 1);
	CU_ASSERT_EQUAL(rs.channels_lost, 1);
	/* the last sync, then (lost at its barrier) the END passed as a
	 * sync and one more sync before the END; or (lost mid-round) a
	 * sync, the round sent again and its sync */
	CU_ASSERT_EQUAL(ts.rounds, cut_at_end ? 3 : 2);
	CU_ASSERT(!memcmp(src, dst, SIZE));
	pair_free(&p);
	free(blob);
	guarded_free(src, SIZE);
	guarded_free(dst, SIZE);
}

static void test_blob_and_verify(void) { blob_transfer(false); }
static void test_lost_before_end(void) { blob_transfer(true); }

/* What failover cannot go with, and a channel failure without it. */
static void test_refusals(void)
{
	struct mfd_session *s = NULL;
	struct mfd_config cfg;
	char err[256];

	config(&cfg, 2, 3);
	cfg.uri = "tcp:127.0.0.1:1";
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "min_channels (--min-channels) 3 is more than the 2 channels") !=
		  NULL);
	config(&cfg, 2, 1);
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.postcopy = true;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-ENOTSUP);
	CU_ASSERT(strstr(err, "not with postcopy") != NULL);
	CU_ASSERT(s == NULL);
}

/* Without min_channels, a cut channel still fails the session. */
static void test_without_failover(void)
{
	uint8_t *src = guarded_alloc(SIZE), *dst = guarded_alloc(SIZE);
	struct mfd_config cfg;
	struct cut c;
	struct pair p;
	int r;

	CU_ASSERT_FATAL(src && dst);
	memset(src, 0x55, SIZE);
	config(&cfg, 2, 0);
	CU_ASSERT_FATAL(pair_start(&p, &cfg, uri, src, dst, SIZE) == 0);
	cut_start(&c, p.rx, 1, 300);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_finish(p.tx);
	pthread_join(c.t, NULL);
	CU_ASSERT(r < 0);
	CU_ASSERT(pair_join_rx(&p) < 0);
	pair_free(&p);
	guarded_free(src, SIZE);
	guarded_free(dst, SIZE);
}

/* Two endpoints, tcp: and unix:, the channels spread over both; one cut:
 * the transfer ends identical over the rest, and each channel says which
 * endpoint it used. A list with fd: is refused. */
static void test_two_endpoints(void)
{
	char path[64], list[128], err[256];
	uint8_t *src = guarded_alloc(SIZE), *dst = guarded_alloc(SIZE);
	struct mfd_session *s = NULL;
	struct mfd_config cfg;
	uint64_t seed = 2;
	struct cut c;
	struct pair p;
	int r;

	CU_ASSERT_FATAL(src && dst);
	fill_random(src, SIZE, &seed);
	snprintf(path, sizeof(path), "/tmp/mfd-ep-%d.sock", (int)getpid());
	snprintf(list, sizeof(list), "tcp:127.0.0.1:0,unix:%s", path);
	config(&cfg, 4, 1);
	CU_ASSERT_FATAL(pair_start(&p, &cfg, list, src, dst, SIZE) == 0);
	CU_ASSERT_EQUAL(mfd_session_endpoints(p.tx), 2);
	CU_ASSERT_EQUAL(mfd_session_endpoints(p.rx), 2);
	CU_ASSERT(strncmp(mfd_session_endpoint(p.rx, 0), "tcp:127.0.0.1:", 14) ==
		  0);
	CU_ASSERT(strcmp(mfd_session_endpoint(p.rx, 0), "tcp:127.0.0.1:0") != 0);
	CU_ASSERT(strstr(mfd_session_uri(p.rx), ",unix:/tmp/mfd-ep-") != NULL);
	CU_ASSERT(mfd_session_endpoint(p.rx, 2) == NULL);
	for (unsigned i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(mfd_channel_endpoint(p.tx, i), (int)(i % 2));
	CU_ASSERT_EQUAL(mfd_channel_endpoint(p.tx, 4), -EINVAL);
	cut_start(&c, p.tx, 1, 300);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = pair_finish(&p);
	pthread_join(c.t, NULL);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT(!memcmp(src, dst, SIZE));
	/* the receiver took channels on both of its listeners */
	for (unsigned i = 0; i < 4; i++)
		CU_ASSERT(mfd_channel_endpoint(p.rx, i) >= 0 &&
			  mfd_channel_endpoint(p.rx, i) < 2);
	pair_free(&p);
	unlink(path);
	guarded_free(src, SIZE);
	guarded_free(dst, SIZE);

	config(&cfg, 2, 0);
	cfg.uri = "tcp:127.0.0.1:1,fd:3";
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "fd: takes no other endpoint") != NULL);
}

/* A sender of its own making that asks for failover and then claims a
 * channel was lost (the receiver's word, never the sender's): refused,
 * and nothing retired. */
static void test_sender_claims_a_loss(void)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0x77,
			       .channels = 1,
			       .page_size = 4096,
			       .pages_per_packet = 128,
			       .features = MFD_FEAT_FAILOVER,
			       .region_count = 1 };
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	struct mfd_hdr h = { .type = MFD_PKT_LOST, .region = 0 };
	uint8_t *dst = guarded_alloc(1 << 20);
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct mfd_stats rs;
	struct pair p;
	int32_t status = -1;
	size_t n = MFD_INIT_SIZE;

	CU_ASSERT_FATAL(dst != NULL);
	config(&cfg, 1, 0);
	CU_ASSERT_FATAL(rx_start(&p, &cfg, uri, dst, 1 << 20) == 0);
	mfd__init_encode(&in, buf);
	n += (size_t)mfd__region_encode("ram", 1 << 20, buf + n,
					sizeof(buf) - n);
	c = raw_connect_bytes(mfd_session_uri(p.rx), buf, n);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(raw_ack(c, &status) == 0 && status == 0);
	mfd__hdr_encode(&h, buf);
	CU_ASSERT(mfd__tp_send_buf(c, buf, MFD_HDR_SIZE) == 0);
	CU_ASSERT(pair_join_rx(&p) < 0);
	fprintf(stderr, "receiver: %s\n", mfd_session_error(p.rx));
	CU_ASSERT(strstr(mfd_session_error(p.rx),
			 "unexpected packet type 13 from the sender") != NULL);
	mfd_session_stats(p.rx, &rs);
	CU_ASSERT_EQUAL(rs.channels_lost, 0);
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, 1 << 20);
}

int main(void)
{
	static const struct test tests[] = {
		{ "sender's channel cut mid-round", test_sender_cut },
		{ "receiver's channel cut mid-round", test_receiver_cut },
		{ "cut, then rounds that rewrite pages", test_cut_with_rounds },
		{ "every channel lost: both ends fail in time", test_all_lost },
		{ "fewer than min_channels left", test_min_channels },
		{ "a blob and VERIFY across a lost channel",
		  test_blob_and_verify },
		{ "lost at the last sync: END passes as a sync",
		  test_lost_before_end },
		{ "what failover cannot go with", test_refusals },
		{ "without min_channels a cut fails", test_without_failover },
		{ "two endpoints, one channel cut", test_two_endpoints },
		{ "a sender that claims a loss", test_sender_claims_a_loss },
		{ NULL, NULL },
	};

	return run_tests("failover", tests, 300);
}
