/* SPDX-License-Identifier: MIT */
/*
 * test-timeouts.c - every timeout fires at 1x its value however the bytes
 * trickle in (half an init, half a region table entry, half a header),
 * both ends honour each other's timeout (a receiver stricter than the
 * sender, a sender without one), a rate-limited sender is never timed
 * out, the receiver tells a sender why it failed, and a round is counted
 * once, not once per channel.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "pair.h"

#define LEN (1u << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An init for channel 0 of 1 with one region "ram" of LEN bytes, then the
 * first `entry` bytes of its table entry. */
static size_t init_bytes(uint8_t *buf, size_t entry)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 7,
			       .channels = 1,
			       .page_size = 4096,
			       .pages_per_packet = 128,
			       .region_count = 1 };
	uint8_t tab[64];
	int n;

	mfd__init_encode(&in, buf);
	n = mfd__region_encode("ram", LEN, tab, sizeof(tab));
	memcpy(buf + MFD_INIT_SIZE, tab, entry < (size_t)n ? entry : (size_t)n);
	return MFD_INIT_SIZE + entry;
}

/* A connection that sends `len` bytes of its handshake and stalls is
 * refused after the handshake limit (the receiver's 1 s timeout), not
 * after one limit per read. */
static void stalled_handshake(size_t len, bool session_fails)
{
	uint8_t *dst = guarded_alloc(LEN), buf[128];
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct pair p;
	int32_t status = 0;
	char msg[256];
	double t0, dt;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 1000;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	memset(buf, 0, sizeof(buf));
	if (len < MFD_INIT_SIZE)
		init_bytes(buf, 0);
	else
		len = init_bytes(buf, len - MFD_INIT_SIZE);
	t0 = now();
	c = raw_connect_bytes(mfd_session_uri(p.rx), buf, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	raw_ack_msg(c, &status, msg, sizeof(msg));
	dt = now() - t0;
	if (dt < 0.9 || dt > 1.5)
		fprintf(stderr, "refused after %.2f s (%s)\n", dt, msg);
	CU_ASSERT(dt >= 0.9 && dt <= 1.5);
	CU_ASSERT_EQUAL(status, -ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "within 1000 ms"));
	mfd__tp_close(c);
	if (session_fails) {
		CU_ASSERT(pair_join_rx(&p) < 0);
	} else {
		mfd_session_cancel(p.rx);
		pair_join_rx(&p);
	}
	pair_free(&p);
	guarded_free(dst, LEN);
}

static void test_half_an_init(void) { stalled_handshake(20, false); }
/* the name length and one byte of the name */
static void test_half_a_table_entry(void)
{
	stalled_handshake(MFD_INIT_SIZE + 3, true);
}

/* 20 bytes of a header, then nothing: the receiver's channel fails after
 * its timeout, not twice that. */
static void test_half_a_header(void)
{
	uint8_t *dst = guarded_alloc(LEN), hdr[MFD_HDR_SIZE];
	struct mfd_hdr h = { .type = MFD_PKT_SYNC };
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct pair p;
	int32_t status = -1;
	double t0, dt;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 1000;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	c = raw_connect(mfd_session_uri(p.rx), 0, 1, 0, LEN);
	CU_ASSERT_FATAL(c && !raw_ack(c, &status) && !status);
	mfd__hdr_encode(&h, hdr);
	t0 = now();
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, hdr, 20), 0);
	CU_ASSERT(pair_join_rx(&p) == -ETIMEDOUT);
	dt = now() - t0;
	if (dt < 0.9 || dt > 1.5)
		fprintf(stderr, "timed out after %.2f s: %s\n", dt,
			mfd_session_error(p.rx));
	CU_ASSERT(dt >= 0.9 && dt <= 1.5);
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A pause between rounds longer than the receiver's timeout, with a
 * sender whose own timeout is longer (or none): the sender's keep-alives
 * follow the stricter one. */
static void pause_between_rounds(unsigned tx_timeout_ms)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	memset(src, 0x4e, LEN);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 700; /* the receiver's */
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	cfg.timeout_ms = tx_timeout_ms;
	CU_ASSERT_FATAL(tx_start(&p, &cfg, src, LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	usleep(2500 * 1000);
	memset(src, 0x4f, LEN);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	if (p.rx_result)
		fprintf(stderr, "receiver: %s\n", mfd_session_error(p.rx));
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static char evicted[512]; /* the first log line that says so */

static void log_evicted(void *opaque, const char *msg)
{
	(void)opaque;
	if (!evicted[0] && strstr(msg, "newer connections needed its place"))
		snprintf(evicted, sizeof(evicted), "%s", msg);
}

/* More silent connections than the receiver greets at once (16): the
 * oldest is cut for the newest, which the log says with its age, and a
 * real sender after them all still gets in. */
static void test_silent_flood(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_conn *quiet[20];
	struct mfd_config cfg;
	struct pair p;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 10000;
	cfg.log_cb = log_evicted;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	for (int i = 0; i < 20; i++) {
		quiet[i] = raw_connect_bytes(mfd_session_uri(p.rx), "", 0);
		CU_ASSERT_PTR_NOT_NULL(quiet[i]);
		usleep(20 * 1000); /* the oldest pass the eviction age */
	}
	CU_ASSERT_EQUAL(tx_start(&p, &cfg, src, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(!memcmp(src, dst, LEN));
	CU_ASSERT_PTR_NOT_NULL(strstr(evicted, "dropped: its handshake had run"));
	pair_free(&p);
	for (int i = 0; i < 20; i++)
		mfd__tp_close(quiet[i]);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static int log_inside, log_most, log_calls;

static void log_slowly(void *opaque, const char *msg)
{
	int in = __atomic_add_fetch(&log_inside, 1, __ATOMIC_SEQ_CST);

	(void)opaque;
	(void)msg;
	if (in > __atomic_load_n(&log_most, __ATOMIC_SEQ_CST))
		__atomic_store_n(&log_most, in, __ATOMIC_SEQ_CST);
	usleep(30 * 1000);
	__atomic_sub_fetch(&log_inside, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&log_calls, 1, __ATOMIC_SEQ_CST);
}

/* Eight strays refused at once (their handshakes run on threads of their
 * own): log_cb is called for each, one call at a time. */
static void test_log_one_at_a_time(void)
{
	uint8_t *dst = guarded_alloc(LEN), junk[64];
	struct mfd_conn *stray[8];
	struct mfd_config cfg;
	struct pair p = { 0 };

	memset(junk, 'x', sizeof(junk));
	log_inside = log_most = log_calls = 0;
	mfd_config_init(&cfg);
	cfg.timeout_ms = 10000;
	cfg.log_cb = log_slowly;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	for (int i = 0; i < 8; i++)
		stray[i] = raw_connect_bytes(mfd_session_uri(p.rx), junk,
					     sizeof(junk));
	for (int ms = 0; ms < 5000 &&
			 __atomic_load_n(&log_calls, __ATOMIC_SEQ_CST) < 8;
	     ms += 10)
		usleep(10 * 1000);
	CU_ASSERT_EQUAL(__atomic_load_n(&log_calls, __ATOMIC_SEQ_CST), 8);
	CU_ASSERT_EQUAL(log_most, 1);
	pair_free(&p);
	for (int i = 0; i < 8; i++)
		mfd__tp_close(stray[i]);
	guarded_free(dst, LEN);
}

static void test_stricter_receiver(void) { pause_between_rounds(30000); }
static void test_sender_without_timeout(void) { pause_between_rounds(0); }

/* Eight channels sharing 256 KiB/s, each packet 512 KiB: a channel waits
 * seconds for its share, far past the 1 s timeout of both ends, and the
 * transfer still completes. */
static void test_rate_limited_completes(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;
	uint64_t st = 3;

	fill_random(src, LEN, &st);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 1000;
	cfg.channels = 8;
	cfg.pages_per_packet = 16; /* 8 channels get a packet each */
	cfg.max_bandwidth = 256 << 10;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	if (p.rx_result)
		fprintf(stderr, "receiver: %s; sender: %s\n",
			mfd_session_error(p.rx), mfd_session_error(p.tx));
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* The receiver fails mid-transfer: the sender reports the receiver's
 * reason, not a broken pipe. */
static void test_sender_told_why(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;
	int r;

	memset(src, 0x5a, LEN);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.pages_per_packet = 16;
	cfg.max_bandwidth = 512 << 10;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	usleep(300 * 1000);
	mfd_session_cancel(p.rx);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_finish(p.tx);
	CU_ASSERT(r < 0);
	if (!strstr(mfd_session_error(p.tx), "the receiver failed: cancelled"))
		fprintf(stderr, "sender: %s\n", mfd_session_error(p.tx));
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "the receiver failed: cancelled"));
	pair_join_rx(&p);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* The sender is cancelled mid-transfer: the receiver reports the
 * sender's reason, not a closed connection. */
static void test_receiver_told_why(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	memset(src, 0x5b, LEN);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.channels = 2;
	cfg.pages_per_packet = 16;
	cfg.max_bandwidth = 512 << 10;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_pages(p.tx, p.region, (uint64_t[]){ 0 }, 1),
			0);
	usleep(300 * 1000);
	mfd_session_cancel(p.tx);
	CU_ASSERT(pair_join_rx(&p) < 0);
	if (!strstr(mfd_session_error(p.rx), "the sender failed: cancelled"))
		fprintf(stderr, "receiver: %s\n", mfd_session_error(p.rx));
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "the sender failed: cancelled"));
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void *cancel_later(void *arg)
{
	usleep(300 * 1000);
	mfd_session_cancel(arg);
	return NULL;
}

/* The sender is cancelled while its second channel waits on a listener
 * that never accepts (its handshake went into the queue) and channel 0
 * waits for the receiver's answer, which comes only once both are there:
 * the receiver reports the sender's reason, not that it closed. */
static void test_receiver_told_why_early(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct mfd_config cfg;
	struct mfd_session *tx;
	struct pair p = { 0 };
	char uri[300], err[256];
	pthread_t th;
	const char *e;

	CU_ASSERT_FATAL(l >= 0 && !bind(l, (struct sockaddr *)&a, sizeof(a)) &&
			!listen(l, 4) &&
			!getsockname(l, (struct sockaddr *)&a, &alen));
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.channels = 2;
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN),
			      0);
	snprintf(uri, sizeof(uri), "%s,tcp:127.0.0.1:%u",
		 mfd_session_uri(p.rx), (unsigned)ntohs(a.sin_port));
	cfg.uri = uri;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, LEN, false) >= 0);
	pthread_create(&th, NULL, cancel_later, tx);
	CU_ASSERT(mfd_session_start(tx) < 0);
	pthread_join(th, NULL);
	CU_ASSERT(pair_join_rx(&p) < 0);
	e = mfd_session_error(p.rx);
	if (!strstr(e, "the sender failed: cancelled")) {
		fprintf(stderr, "receiver: %s\n", e);
		CU_FAIL("the receiver was not told why");
	}
	mfd_session_free(tx);
	pair_free(&p);
	close(l);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* Four channels, two rounds: both ends count two rounds. */
static void test_rounds_counted_once(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct mfd_stats ts, rs;
	struct pair p;

	memset(src, 0x11, LEN);
	mfd_config_init(&cfg);
	cfg.channels = 4;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	mfd_session_stats(p.tx, &ts);
	mfd_session_stats(p.rx, &rs);
	CU_ASSERT_EQUAL(ts.rounds, 2);
	CU_ASSERT_EQUAL(rs.rounds, 2);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* Pages of 64 KiB with the default packet size are a valid session. */
static void test_large_pages_default_packet(void)
{
	struct mfd_session *s;
	struct mfd_config cfg;
	char err[200];

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.page_size = 65536;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), 0);
	mfd_session_free(s);
}

static void *accept_later(void *arg)
{
	int fd = *(int *)arg, c;

	usleep(300 * 1000);
	c = accept(fd, NULL, NULL); /* one of the queue: room for ours */
	usleep(200 * 1000);
	if (c >= 0)
		close(c);
	return NULL;
}

/* A unix listener whose queue is full answers a connect with EAGAIN at
 * once: the transport tries again until its timeout (tcp waits for the
 * SYN to be taken), and then says why. */
static void test_unix_queue_full(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const struct mfd_transport_ops *tp = mfd__transport_get(MFD_SCHEME_UNIX);
	int l = socket(AF_UNIX, SOCK_STREAM, 0), fill[8], nfill = 0;
	struct mfd_conn *c = NULL;
	char uri[128], err[256];
	struct mfd_uri u;
	pthread_t th;
	double t0, dt;
	int r;

	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/mfd-queue-%d.sock",
		 (int)getpid());
	unlink(a.sun_path);
	CU_ASSERT_FATAL(l >= 0 && !bind(l, (struct sockaddr *)&a, sizeof(a)) &&
			!listen(l, 0));
	/* fill the queue until the kernel refuses */
	while (nfill < 8) {
		int f = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

		if (connect(f, (struct sockaddr *)&a, sizeof(a))) {
			close(f);
			break;
		}
		fill[nfill++] = f;
	}
	snprintf(uri, sizeof(uri), "unix:%s", a.sun_path);
	CU_ASSERT_EQUAL_FATAL(mfd__uri_parse(uri, &u, err, sizeof(err)), 0);

	/* nobody takes one: refused after the timeout, saying why */
	t0 = now();
	r = tp->connect(&u, 400, &c, err, sizeof(err));
	dt = now() - t0;
	CU_ASSERT_EQUAL(r, -ETIMEDOUT);
	CU_ASSERT(dt >= 0.35);
	if (!strstr(err, "took no connection within 400 ms (its queue stayed "
			 "full)")) {
		fprintf(stderr, "connect: %d '%s'\n", r, err);
		CU_FAIL("a full queue not said");
	}

	/* the listener takes one after 0.3 s: the connect gets through */
	pthread_create(&th, NULL, accept_later, &l);
	r = tp->connect(&u, 5000, &c, err, sizeof(err));
	CU_ASSERT_EQUAL(r, 0);
	if (r)
		fprintf(stderr, "connect: %d '%s'\n", r, err);
	else
		mfd__tp_close(c);
	pthread_join(th, NULL);
	while (nfill)
		close(fill[--nfill]);
	close(l);
	unlink(a.sun_path);
}

int main(void)
{
	static const struct test tests[] = {
		{ "half an init refused at 1x", test_half_an_init },
		{ "half a table entry refused at 1x", test_half_a_table_entry },
		{ "half a header times out at 1x", test_half_a_header },
		{ "a flood of silent connections: the oldest cut",
		  test_silent_flood },
		{ "log_cb is called one call at a time",
		  test_log_one_at_a_time },
		{ "a stricter receiver's timeout is kept",
		  test_stricter_receiver },
		{ "a sender without a timeout keeps a receiver's",
		  test_sender_without_timeout },
		{ "a sender cancelled before its answer tells why",
		  test_receiver_told_why_early },
		{ "a rate-limited transfer completes",
		  test_rate_limited_completes },
		{ "the sender is told why the receiver failed",
		  test_sender_told_why },
		{ "the receiver is told why the sender failed",
		  test_receiver_told_why },
		{ "a unix listener with a full queue: connect waits for it",
		  test_unix_queue_full },
		{ "rounds counted once", test_rounds_counted_once },
		{ "64 KiB pages with the default packet",
		  test_large_pages_default_packet },
		{ NULL, NULL },
	};

	return run_tests("timeouts", tests, 120);
}
