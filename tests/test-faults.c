/* SPDX-License-Identifier: MIT */
/*
 * test-faults.c - broken and hostile peers: each case must end in an
 * error on the side that sees it, within the timeout, naming the channel
 * and the bad value, with nothing written outside the region (guard
 * pages) and, where the packet was refused, nothing written at all.
 */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "common.h"
#include "pair.h"

#define LEN (1u << 20)
#define TIMEOUT_MS 1500

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rig {
	struct pair p;
	uint8_t *dst;
	struct mfd_conn *c;
	double t0;
};

/* A receiver with one 1 MiB region and a raw channel 0 (of 1) that has
 * passed the handshake. */
static int rig_up(struct rig *g, uint8_t method)
{
	struct mfd_config cfg;
	int32_t status = -1;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	g->dst = guarded_alloc(LEN);
	if (!g->dst || rx_start(&g->p, &cfg, "tcp:127.0.0.1:0", g->dst, LEN))
		return -1;
	g->c = raw_connect(mfd_session_uri(g->p.rx), 0, 1, method, LEN);
	if (!g->c || raw_ack(g->c, &status) || status)
		return -1;
	g->t0 = now();
	return 0;
}

/* The receiver must fail, soon, with an error naming channel 0 and
 * `word`. */
static void rig_expect(struct rig *g, const char *word)
{
	int r = pair_join_rx(&g->p);
	const char *e = mfd_session_error(g->p.rx);

	CU_ASSERT(r < 0);
	CU_ASSERT(now() - g->t0 < 3.0 * TIMEOUT_MS / 1000);
	if (!strstr(e, "channel 0") || !strstr(e, word)) {
		fprintf(stderr, "error '%s' should name channel 0 and '%s'\n",
			e, word);
		CU_FAIL("error message");
	}
}

static void rig_down(struct rig *g)
{
	mfd__tp_close(g->c);
	pair_free(&g->p);
	guarded_free(g->dst, LEN);
}

static struct mfd_hdr pages_hdr(uint32_t normal, uint32_t zero)
{
	return (struct mfd_hdr){ .type = MFD_PKT_PAGES,
				 .normal = normal,
				 .zero = zero,
				 .payload_len = normal * 4096 };
}

static void test_bad_magic(void)
{
	struct rig g;
	uint8_t junk[MFD_HDR_SIZE];

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	memset(junk, 0x41, sizeof(junk));
	mfd__tp_send_buf(g.c, junk, sizeof(junk));
	rig_expect(&g, "magic");
	CU_ASSERT(all_zero(g.dst, LEN));
	rig_down(&g);
}

static void test_offset_out_of_range(void)
{
	struct rig g;
	struct mfd_hdr h = pages_hdr(2, 0);
	uint64_t off[2] = { 0, LEN }; /* the second is one past the end */
	static uint8_t payload[2 * 4096];

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	memset(payload, 0x77, sizeof(payload));
	raw_send_pages(g.c, &h, off);
	mfd__tp_send_buf(g.c, payload, sizeof(payload));
	rig_expect(&g, "outside the region");
	CU_ASSERT(all_zero(g.dst, LEN)); /* validated before any write */
	rig_down(&g);
}

static void test_unaligned_offset(void)
{
	struct rig g;
	struct mfd_hdr h = pages_hdr(1, 0);
	uint64_t off[1] = { 4095 };

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	raw_send_pages(g.c, &h, off);
	rig_expect(&g, "aligned");
	CU_ASSERT(all_zero(g.dst, LEN));
	rig_down(&g);
}

static void test_peer_gone_mid_packet(void)
{
	struct rig g;
	struct mfd_hdr h = pages_hdr(4, 0);
	uint64_t off[4] = { 8 * 4096, 9 * 4096, 10 * 4096, 11 * 4096 };
	static uint8_t half[2 * 4096];

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	memset(half, 0x99, sizeof(half));
	raw_send_pages(g.c, &h, off);
	mfd__tp_send_buf(g.c, half, sizeof(half));
	mfd__tp_close(g.c);
	g.c = NULL;
	rig_expect(&g, "closed");
	/* only the declared pages may have been written */
	CU_ASSERT(all_zero(g.dst, 8 * 4096));
	CU_ASSERT(all_zero(g.dst + 12 * 4096, LEN - 12 * 4096));
	rig_down(&g);
}

static void test_sync_out_of_order(void)
{
	struct rig g;
	struct mfd_hdr h = { .type = MFD_PKT_SYNC, .round = 5 };
	uint8_t buf[MFD_HDR_SIZE];

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	mfd__hdr_encode(&h, buf);
	mfd__tp_send_buf(g.c, buf, sizeof(buf));
	rig_expect(&g, "out of order");
	rig_down(&g);
}

static void test_silent_peer_times_out(void)
{
	struct rig g;

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	rig_expect(&g, "no data for");
	rig_down(&g);
}

/* Two channels; one goes on (a page, then the round's SYNC), the other
 * falls silent, as when every packet of one connection is dropped: a
 * timeout error, never a hang. */
static void test_one_channel_silent(void)
{
	struct mfd_config cfg;
	struct mfd_conn *c0, *c1;
	struct mfd_hdr h = pages_hdr(1, 0), sync = { .type = MFD_PKT_SYNC };
	uint8_t *dst = guarded_alloc(LEN), buf[MFD_HDR_SIZE];
	static uint8_t page[4096];
	uint64_t off[1] = { 0 };
	int32_t status = -1;
	struct pair p;
	double t0;
	int r;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	c0 = raw_connect(mfd_session_uri(p.rx), 0, 2, MFD_METHOD_NONE, LEN);
	c1 = raw_connect(mfd_session_uri(p.rx), 1, 2, MFD_METHOD_NONE, LEN);
	CU_ASSERT_FATAL(c0 && c1 && !raw_ack(c0, &status) && !status &&
			!raw_ack(c1, &status) && !status);
	t0 = now();
	raw_send_pages(c0, &h, off);
	mfd__tp_send_buf(c0, page, sizeof(page));
	mfd__hdr_encode(&sync, buf);
	mfd__tp_send_buf(c0, buf, sizeof(buf));
	r = pair_join_rx(&p);
	CU_ASSERT(r == -ETIMEDOUT);
	CU_ASSERT(now() - t0 < 3.0 * TIMEOUT_MS / 1000);
	if (!strstr(mfd_session_error(p.rx), "channel 1: no data for") &&
	    !strstr(mfd_session_error(p.rx), "channel 0: waited")) {
		fprintf(stderr, "error: %s\n", mfd_session_error(p.rx));
		CU_FAIL("the error should name the silent channel's timeout");
	}
	mfd__tp_close(c0);
	mfd__tp_close(c1);
	pair_free(&p);
	guarded_free(dst, LEN);
}

static void test_wrong_method(void)
{
	struct rig g;
	struct mfd_hdr h = pages_hdr(1, 0);
	uint64_t off[1] = { 0 };

	CU_ASSERT_FATAL(rig_up(&g, MFD_METHOD_NONE) == 0);
	h.method = MFD_METHOD_ZLIB;
	h.payload_len = 10;
	raw_send_pages(g.c, &h, off);
	rig_expect(&g, "method");
	CU_ASSERT(all_zero(g.dst, LEN));
	rig_down(&g);
}

/* A stray connection and a duplicate channel index are refused with a
 * reason, and the session goes on with its real channels. */
static void test_strays_do_not_disturb(void)
{
	struct mfd_config cfg;
	struct pair p;
	struct mfd_stats st;
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_conn *stray, *dup, *c0, *c1;
	int32_t status = 0;
	uint8_t junk[MFD_INIT_SIZE];
	struct mfd_uri u;
	char err[200];

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	memset(src, 0x3c, LEN);
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__uri_parse(mfd_session_uri(p.rx), &u, err, sizeof(err));

	/* garbage instead of an init */
	CU_ASSERT_FATAL(mfd__tcp_ops.connect(&u, 1000, &stray, err,
					     sizeof(err)) == 0);
	memset(junk, 0xee, sizeof(junk));
	mfd__tp_set_timeout(stray, 5000);
	mfd__tp_send_buf(stray, junk, sizeof(junk));
	CU_ASSERT_EQUAL(raw_ack(stray, &status), 0);
	CU_ASSERT(status < 0);

	/* a real session of 2 channels with index 0 offered twice */
	c0 = raw_connect(mfd_session_uri(p.rx), 0, 2, MFD_METHOD_NONE, LEN);
	dup = raw_connect(mfd_session_uri(p.rx), 0, 2, MFD_METHOD_NONE, LEN);
	CU_ASSERT_EQUAL(raw_ack(dup, &status), 0);
	CU_ASSERT(status < 0);
	c1 = raw_connect(mfd_session_uri(p.rx), 1, 2, MFD_METHOD_NONE, LEN);
	CU_ASSERT_EQUAL(raw_ack(c0, &status), 0);
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT_EQUAL(raw_ack(c1, &status), 0);
	CU_ASSERT_EQUAL(status, 0);
	mfd_session_stats(p.rx, &st);
	CU_ASSERT_EQUAL(st.rejected_connections, 2);

	/* one page on channel 1, then the end on both */
	{
		struct mfd_hdr h = pages_hdr(1, 0), e = { .type = MFD_PKT_END };
		uint64_t off[1] = { 4096 };
		uint8_t buf[MFD_HDR_SIZE];

		CU_ASSERT_EQUAL(raw_send_pages(c1, &h, off), 0);
		CU_ASSERT_EQUAL(mfd__tp_send_buf(c1, src, 4096), 0);
		mfd__hdr_encode(&e, buf);
		CU_ASSERT_EQUAL(mfd__tp_send_buf(c0, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL(mfd__tp_send_buf(c1, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL(mfd__tp_recv_buf(c0, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL(buf[4], MFD_PKT_FIN);
	}
	CU_ASSERT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(memcmp(dst + 4096, src, 4096) == 0);
	CU_ASSERT(all_zero(dst, 4096));
	mfd__tp_close(stray);
	mfd__tp_close(dup);
	mfd__tp_close(c0);
	mfd__tp_close(c1);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/*
 * Connections that never send their init hold only their own handshake
 * (for at most 5 s, here the 4 s timeout): 40 of them, more than run at
 * once, connected before the real sender, which proves a secret, and
 * whose channels must all pass within the 4 s (one handshake after
 * another, or waiting for a slot to free by itself, they could not).
 */
static void test_silent_connections_dropped(void)
{
	enum { SILENT = 40 };
	static const char key[] = "the secret of test-faults, 32 b";
	struct mfd_config cfg;
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_conn *silent[SILENT];
	struct mfd_stats st;
	struct mfd_uri u;
	struct pair p;
	char err[200];

	mfd_config_init(&cfg);
	cfg.timeout_ms = 4000;
	cfg.channels = 4;
	cfg.secret = key;
	cfg.secret_len = sizeof(key);
	memset(src, 0x5a, LEN);
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__uri_parse(mfd_session_uri(p.rx), &u, err, sizeof(err));
	for (int i = 0; i < SILENT; i++)
		CU_ASSERT_FATAL(mfd__tcp_ops.connect(&u, 1000, &silent[i], err,
						     sizeof(err)) == 0);
	CU_ASSERT_EQUAL(tx_start(&p, &cfg, src, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_stats(p.rx, &st);
	CU_ASSERT_EQUAL(st.rejected_connections, SILENT);
	for (int i = 0; i < SILENT; i++)
		mfd__tp_close(silent[i]);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

struct killer {
	struct mfd_session *victim;
	unsigned delay_ms;
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;

	usleep(k->delay_ms * 1000);
	mfd_session_cancel(k->victim);
	return NULL;
}

/* A stray that claims channel 1 before the real sender arrives does not
 * define the session: only channel 0's init does. */
static void test_stray_before_channel_0(void)
{
	struct mfd_config cfg;
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_conn *stray;
	struct mfd_stats st;
	int32_t status = 0;
	struct pair p;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	memset(src, 0x6b, LEN);
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	stray = raw_connect(mfd_session_uri(p.rx), 1, 2, MFD_METHOD_NONE, LEN);
	CU_ASSERT_FATAL(stray != NULL);
	CU_ASSERT_EQUAL(tx_start(&p, &cfg, src, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	CU_ASSERT_EQUAL(raw_ack(stray, &status), 0);
	CU_ASSERT(status < 0); /* refused: not this session's id */
	mfd_session_stats(p.rx, &st);
	CU_ASSERT_EQUAL(st.rejected_connections, 1);
	mfd__tp_close(stray);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

struct trickler {
	struct mfd_conn *c;
	bool stop;
};

static void *trickle(void *arg)
{
	struct trickler *t = arg;
	uint8_t junk = 'M';

	while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED) &&
	       !mfd__tp_send_buf(t->c, &junk, 1))
		usleep(1500 * 1000);
	return NULL;
}

/* A connection that sends its init a byte every 1.5 s is dropped once
 * its handshake passes the limit; the real sender then gets through. */
static void test_trickling_connection_dropped(void)
{
	struct mfd_config cfg;
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct trickler t = { 0 };
	struct mfd_uri u;
	struct pair p;
	pthread_t tt;
	char err[200];
	double t0;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 20000;
	memset(src, 0x2d, LEN);
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__uri_parse(mfd_session_uri(p.rx), &u, err, sizeof(err));
	CU_ASSERT_FATAL(mfd__tcp_ops.connect(&u, 1000, &t.c, err,
					     sizeof(err)) == 0);
	pthread_create(&tt, NULL, trickle, &t);
	t0 = now();
	CU_ASSERT_EQUAL(tx_start(&p, &cfg, src, LEN), 0);
	CU_ASSERT(now() - t0 < 12); /* two 5 s limits at the very most */
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	__atomic_store_n(&t.stop, true, __ATOMIC_RELAXED);
	mfd__tp_shutdown(t.c);
	pthread_join(tt, NULL);
	mfd__tp_close(t.c);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* A rate-limited sender that is cancelled stops sleeping at once. */
static void test_cancel_rate_limited(void)
{
	enum { BIG = 16 << 20 };
	uint8_t *src = guarded_alloc(BIG), *dst = guarded_alloc(BIG);
	struct mfd_config cfg;
	struct killer k;
	struct pair p;
	pthread_t kt;
	double t0;
	int r;

	uint64_t seed = 4;

	fill_random(src, BIG, &seed); /* zero pages would cost nothing */
	mfd_config_init(&cfg);
	cfg.channels = 8;
	cfg.max_bandwidth = 100000; /* 512 KiB packets: 5 s each */
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   BIG) == 0);
	k.victim = p.tx;
	k.delay_ms = 300;
	pthread_create(&kt, NULL, kill_later, &k);
	t0 = now();
	r = mfd_send_region(p.tx, p.region);
	CU_ASSERT(r == -ECANCELED);
	pthread_join(kt, NULL);
	pair_free(&p); /* joins the channel threads */
	CU_ASSERT(now() - t0 < 2.0);
	guarded_free(src, BIG);
	guarded_free(dst, BIG);
}

/* A sender that pauses longer than the timeout between rounds (a caller
 * busy elsewhere) keeps its session: idle channels send keep-alives. */
static void test_idle_sender_kept_alive(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	memset(src, 0x4e, LEN);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 600;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	usleep(2000 * 1000); /* more than three timeouts */
	memset(src, 0x4f, LEN);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* The receiver's region is smaller: the sender is told why. */
static void test_region_mismatch(void)
{
	struct mfd_config cfg;
	struct pair p;
	uint8_t *src = guarded_alloc(2 * LEN), *dst = guarded_alloc(LEN);

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	CU_ASSERT(tx_start(&p, &cfg, src, 2 * LEN) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "receiver refused"));
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx), "bytes"));
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx), "'ram'"));
	pair_free(&p);
	guarded_free(src, 2 * LEN);
	guarded_free(dst, LEN);
}


/* Either side going away mid-round ends the other within the timeout. */
static void one_side_dies(bool kill_receiver)
{
	enum { BIG = 64 << 20 };
	struct mfd_config cfg;
	struct pair p;
	uint8_t *src = guarded_alloc(BIG), *dst = guarded_alloc(BIG);
	uint64_t seed = 1;
	struct killer k;
	pthread_t kt;
	double t0;
	int r = 0;

	fill_random(src, BIG, &seed);
	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	cfg.channels = 4;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   BIG) == 0);
	k.victim = kill_receiver ? p.rx : p.tx;
	k.delay_ms = 20;
	pthread_create(&kt, NULL, kill_later, &k);
	t0 = now();
	for (int round = 0; !r && round < 200; round++) {
		r = mfd_send_region(p.tx, p.region);
		if (!r)
			r = mfd_send_sync(p.tx);
	}
	CU_ASSERT(r < 0);
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT(now() - t0 < 3.0 * TIMEOUT_MS / 1000 + 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(kill_receiver ? p.tx
								      : p.rx),
				      "channel"));
	pthread_join(kt, NULL);
	pair_free(&p);
	guarded_free(src, BIG);
	guarded_free(dst, BIG);
}

static void test_receiver_dies(void) { one_side_dies(true); }
static void test_sender_dies(void) { one_side_dies(false); }

static void *cancel_rx(void *arg)
{
	usleep(200 * 1000);
	mfd_session_cancel_reason(arg, "the test says stop");
	return NULL;
}

/* The receiver is cancelled while it waits for the sender's second
 * channel: the first one is answered with a refusal that says why, at
 * once, not left to wait out its timeout. */
static void test_cancel_before_whole(void)
{
	uint8_t *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct mfd_conn *c0;
	struct pair p;
	int32_t status = 0;
	char msg[128] = "";
	pthread_t t;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 30000;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	c0 = raw_connect(mfd_session_uri(p.rx), 0, 2, MFD_METHOD_NONE, LEN);
	CU_ASSERT_FATAL(c0 != NULL);
	mfd__tp_set_timeout(c0, 5000); /* the receiver's 30 s would pass */
	pthread_create(&t, NULL, cancel_rx, p.rx);
	CU_ASSERT_EQUAL(raw_ack_msg(c0, &status, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(status, -ECANCELED);
	CU_ASSERT(strstr(msg, "the test says stop") != NULL);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(pair_join_rx(&p), -ECANCELED);
	mfd__tp_close(c0);
	pair_free(&p);
	guarded_free(dst, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "bad magic", test_bad_magic },
		{ "offset out of range", test_offset_out_of_range },
		{ "unaligned offset", test_unaligned_offset },
		{ "peer gone mid-packet", test_peer_gone_mid_packet },
		{ "SYNC out of order", test_sync_out_of_order },
		{ "silent peer times out", test_silent_peer_times_out },
		{ "one channel of two falls silent", test_one_channel_silent },
		{ "wrong method", test_wrong_method },
		{ "strays do not disturb", test_strays_do_not_disturb },
		{ "region size mismatch", test_region_mismatch },
		{ "silent connection dropped at the handshake",
		  test_silent_connections_dropped },
		{ "stray before channel 0 does not take over",
		  test_stray_before_channel_0 },
		{ "trickling connection dropped at the handshake",
		  test_trickling_connection_dropped },
		{ "cancel a rate-limited sender", test_cancel_rate_limited },
		{ "an idle sender is kept alive", test_idle_sender_kept_alive },
		{ "receiver dies mid-round", test_receiver_dies },
		{ "sender dies mid-round", test_sender_dies },
		{ "a cancel before every channel came is told",
		  test_cancel_before_whole },
		{ NULL, NULL },
	};

	return run_tests("faults", tests, 200);
}
