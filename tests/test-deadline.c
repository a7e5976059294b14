/* SPDX-License-Identifier: MIT */
/*
 * test-deadline.c - set_timeout(c, ms) bounds each whole send(), recv()
 * and flush(), not each syscall inside it: a peer that stalls after part
 * of a transfer, or that trickles its bytes in or out, is cut after 1x
 * the timeout (plus a small margin), never 2x or later. The transport ops
 * are used directly, on tcp: and unix:, with a hand-driven peer.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "common.h"
#include "transports/transport.h"

#define TIMEOUT_MS 1000
#define LO 0.9 /* seconds: the window a timeout must fire in */
#define HI 1.4
#define BIG (64u << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A connection under test (a, the connecting end, with the timeout) and
 * its peer (b, accepted, no timeout). */
struct link {
	const struct mfd_transport_ops *ops;
	struct mfd_listener *l;
	struct mfd_conn *a, *b;
};

static int link_up(struct link *k, const char *scheme)
{
	char uri[128], err[256];
	struct mfd_uri u;

	memset(k, 0, sizeof(*k));
	if (!strcmp(scheme, "unix"))
		snprintf(uri, sizeof(uri), "unix:/tmp/mfd-deadline-%d.sock",
			 (int)getpid());
	else
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:0");
	if (mfd__uri_parse(uri, &u, err, sizeof(err)))
		return -1;
	k->ops = mfd__transport_get(u.scheme);
	if (!k->ops || k->ops->listen(&u, &k->l, err, sizeof(err))) {
		fprintf(stderr, "listen %s: %s\n", uri, err);
		return -1;
	}
	if (mfd__uri_parse(k->l->uri, &u, err, sizeof(err)) ||
	    k->ops->connect(&u, 5000, &k->a, err, sizeof(err)) ||
	    k->ops->accept(k->l, 5000, &k->b, err, sizeof(err))) {
		fprintf(stderr, "connect %s: %s\n", k->l->uri, err);
		return -1;
	}
	return mfd__tp_set_timeout(k->a, TIMEOUT_MS);
}

static void link_down(struct link *k)
{
	mfd__tp_close(k->a);
	mfd__tp_close(k->b);
	if (k->l)
		mfd__tp_listener_close(k->l);
}

/* The failed call took about the timeout, and said why. */
static void expect_timeout(const char *what, int r, double t,
			   const struct mfd_conn *c, const char *word)
{
	printf("\n    %s: %d after %.3f s: %s\n", what, r, t, c->err);
	CU_ASSERT_EQUAL(r, -ETIMEDOUT);
	CU_ASSERT(t >= LO);
	CU_ASSERT(t <= HI);
	if (!strstr(c->err, word)) {
		fprintf(stderr, "error '%s' lacks '%s'\n", c->err, word);
		CU_FAIL("the error message");
	}
}

/* A peer on its own thread, driving b. */
enum peer_mode {
	READ_THEN_STOP, /* read `n` bytes, then nothing */
	TRICKLE_WRITE,	/* write a byte every `every_ms` */
	TRICKLE_READ,	/* read `n` bytes every `every_ms` */
	PAUSED_WRITE,	/* write `n` bytes with a pause in the middle */
	READ_ALL,	/* read `n` bytes after a pause, and check them */
};

struct peer {
	struct link *k;
	enum peer_mode mode;
	size_t n;
	unsigned every_ms;
	const uint8_t *data; /* what is sent, or expected */
	pthread_t poke; /* the thread that gets a signal in the pause */
	int stop;
	int result;
	pthread_t t;
};

static bool stopped(struct peer *p)
{
	return __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE);
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* A pause of ms, in the middle of which the thread under test gets a
 * signal: its blocked syscall returns early, with part of the bytes. */
static void pause_and_poke(struct peer *p, unsigned ms)
{
	sleep_ms(ms / 2);
	pthread_kill(p->poke, SIGUSR1);
	sleep_ms(ms - ms / 2);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct mfd_conn *b = p->k->b;
	uint8_t *buf = malloc(p->n ? p->n : 1);
	double end = now() + 5; /* a peer that outlives the old code */

	p->result = buf ? 0 : -ENOMEM;
	switch (buf ? p->mode : READ_THEN_STOP) {
	case READ_THEN_STOP:
		if (buf)
			p->result = mfd__tp_recv_buf(b, buf, p->n);
		break;
	case TRICKLE_WRITE:
		for (size_t i = 0; !stopped(p) && now() < end; i++) {
			uint8_t c = p->data[i % 64];

			if (mfd__tp_send_buf(b, &c, 1))
				break;
			sleep_ms(p->every_ms);
		}
		break;
	case TRICKLE_READ:
		while (!stopped(p) && now() < end &&
		       !mfd__tp_recv_buf(b, buf, p->n))
			sleep_ms(p->every_ms);
		break;
	case PAUSED_WRITE:
		p->result = mfd__tp_send_buf(b, p->data, p->n / 3);
		pause_and_poke(p, p->every_ms);
		if (!p->result)
			p->result = mfd__tp_send_buf(b, p->data + p->n / 3,
						     p->n - p->n / 3);
		break;
	case READ_ALL:
		pause_and_poke(p, p->every_ms);
		p->result = mfd__tp_recv_buf(b, buf, p->n);
		if (!p->result && memcmp(buf, p->data, p->n))
			p->result = -EILSEQ;
		break;
	}
	while (!stopped(p))
		sleep_ms(10);
	free(buf);
	return NULL;
}

static void peer_start(struct peer *p, struct link *k, enum peer_mode mode,
		       size_t n, unsigned every_ms, const uint8_t *data)
{
	memset(p, 0, sizeof(*p));
	p->k = k;
	p->mode = mode;
	p->n = n;
	p->every_ms = every_ms;
	p->data = data;
	p->poke = pthread_self();
	CU_ASSERT_FATAL(pthread_create(&p->t, NULL, peer_main, p) == 0);
}

/* Stop the peer: a is shut down first, so that a peer blocked on b
 * returns. */
static int peer_stop(struct peer *p)
{
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	mfd__tp_shutdown(p->k->a);
	pthread_join(p->t, NULL);
	return p->result;
}

static uint8_t *pattern(size_t n)
{
	uint8_t *m = malloc(n);
	uint64_t st = 0x9e3779b97f4a7c15ull;

	if (m)
		fill_random(m, n, &st);
	return m;
}

/* 20 bytes of a 64-byte read, then silence: one timeout, not two. */
static void recv_partial(const char *scheme)
{
	static const uint8_t part[20] = "twenty bytes of 64..";
	uint8_t buf[64];
	struct link k;
	double t0;
	int r;

	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	CU_ASSERT_FATAL(mfd__tp_send_buf(k.b, part, sizeof(part)) == 0);
	t0 = now();
	r = mfd__tp_recv_buf(k.a, buf, sizeof(buf));
	expect_timeout("recv, 20 of 64 bytes", r, now() - t0, k.a,
		       "this read of 64 bytes did not complete within 1000 ms "
		       "(20 arrived)");
	link_down(&k);
}

/* Nothing at all: only then is it "no data". */
static void recv_silent(const char *scheme)
{
	uint8_t buf[64];
	struct link k;
	double t0;
	int r;

	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	t0 = now();
	r = mfd__tp_recv_buf(k.a, buf, sizeof(buf));
	expect_timeout("recv, nothing sent", r, now() - t0, k.a,
		       "no data for 1000 ms (none of this read's 64 bytes "
		       "arrived)");
	link_down(&k);
}

/* A byte every 200 ms: the read is cut at the timeout, however many
 * bytes keep coming. */
static void recv_trickle(const char *scheme)
{
	static const uint8_t text[64] = "a peer that sends one byte at a time, "
					"never enough";
	uint8_t buf[64];
	struct peer p;
	struct link k;
	double t0;
	int r;

	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	t0 = now();
	peer_start(&p, &k, TRICKLE_WRITE, 0, 200, text);
	r = mfd__tp_recv_buf(k.a, buf, sizeof(buf));
	expect_timeout("recv from a trickling peer", r, now() - t0, k.a,
		       "this read of 64 bytes did not complete within 1000 ms");
	peer_stop(&p);
	link_down(&k);
}

/* 64 MiB to a peer that reads `chunk` bytes every every_ms (0: once, then
 * stops): the send fails after its timeout from its start. */
static void send_times_out(const char *scheme, enum peer_mode mode,
			   size_t chunk, unsigned every_ms, const char *what)
{
	uint8_t *m = calloc(1, BIG);
	struct peer p;
	struct link k;
	double t0;
	int r;

	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	peer_start(&p, &k, mode, chunk, every_ms, NULL);
	t0 = now();
	r = mfd__tp_send_buf(k.a, m, BIG);
	/* some of it went: the sentence must not say it stalled throughout */
	expect_timeout(what, r, now() - t0, k.a,
		       "this send of 67108864 bytes did not complete within "
		       "1000 ms (");
	/* a reader that stopped read exactly what it was to */
	r = peer_stop(&p);
	if (mode == READ_THEN_STOP)
		CU_ASSERT_EQUAL(r, 0);
	link_down(&k);
	free(m);
}

/* as a receiver stopped with SIGSTOP mid-packet */
static void send_stalled(const char *scheme)
{
	send_times_out(scheme, READ_THEN_STOP, 1u << 20, 0,
		       "send to a reader that stopped");
}

/* a reader that takes a little now and then must not restart the
 * timeout */
static void send_trickle(const char *scheme)
{
	send_times_out(scheme, TRICKLE_READ, 16u << 10, 100,
		       "send to a trickling reader");
}

/* What is slow but on time still arrives whole: a recv across a 300 ms
 * pause, a send to a reader that starts 300 ms late, each interrupted by
 * a signal after part of its bytes, so that it goes on after a short
 * transfer. */
static void slow_but_on_time(const char *scheme)
{
	size_t n = 16u << 20;
	uint8_t *m = pattern(n), *got = malloc(n);
	struct peer p;
	struct link k;
	int r;

	CU_ASSERT_FATAL(m && got);
	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	peer_start(&p, &k, PAUSED_WRITE, 4096, 300, m);
	r = mfd__tp_recv_buf(k.a, got, 4096);
	CU_ASSERT_EQUAL(r, 0);
	if (r)
		fprintf(stderr, "recv: %s\n", k.a->err);
	CU_ASSERT(!memcmp(got, m, 4096));
	CU_ASSERT_EQUAL(peer_stop(&p), 0);
	link_down(&k);

	CU_ASSERT_FATAL(link_up(&k, scheme) == 0);
	peer_start(&p, &k, READ_ALL, n, 300, m);
	r = mfd__tp_send_buf(k.a, m, n);
	CU_ASSERT_EQUAL(r, 0);
	if (r)
		fprintf(stderr, "send: %s\n", k.a->err);
	sleep_ms(500);
	CU_ASSERT_EQUAL(peer_stop(&p), 0);
	link_down(&k);
	free(m);
	free(got);
}

/* Zero-copy sends whose completions come one at a time, as a slow
 * reader acknowledges them: one deadline for the whole flush. */
static void flush_trickle(void)
{
	static uint8_t chunk[16u << 10];
	struct peer p;
	struct link k;
	uint64_t before;
	double t0;
	int r = 0;

	CU_ASSERT_FATAL(link_up(&k, "tcp") == 0);
	if (mfd__tp_enable_zerocopy(k.a)) {
		printf("\n    skip: no MSG_ZEROCOPY here: %s\n", k.a->err);
		link_down(&k);
		return;
	}
	/* 2 MiB that the reader takes in 64 KiB every 100 ms: 3 s to drain,
	 * a completion every few hundred ms, none of them late */
	peer_start(&p, &k, TRICKLE_READ, 64u << 10, 100, NULL);
	for (int i = 0; i < 128 && !r; i++) {
		struct iovec v = { chunk, sizeof(chunk) };

		r = mfd__tp_send(k.a, &v, 1, MFD_SEND_ZEROCOPY);
	}
	CU_ASSERT_EQUAL_FATAL(r, 0);
	before = k.a->zc_sends;
	t0 = now();
	r = mfd__tp_flush(k.a);
	/* completions did trickle in during the flush: else a timer that
	 * restarts at each completion would pass this test too */
	if (k.a->zc_sends == before)
		printf("\n    no completion during the flush\n");
	CU_ASSERT(k.a->zc_sends > before);
	if (!r) {
		printf("\n    flush: done after %.3f s (%llu sends, %llu "
		       "copied)\n",
		       now() - t0, (unsigned long long)k.a->zc_sends,
		       (unsigned long long)k.a->zc_copied);
		CU_FAIL("the flush outlasted its timeout and succeeded");
	} else {
		expect_timeout("zero-copy flush", r, now() - t0, k.a,
			       "not completed after 1000 ms");
	}
	peer_stop(&p);
	link_down(&k);
}

static void test_tcp_recv_partial(void) { recv_partial("tcp"); }
static void test_unix_recv_partial(void) { recv_partial("unix"); }
static void test_tcp_recv_silent(void) { recv_silent("tcp"); }
static void test_unix_recv_silent(void) { recv_silent("unix"); }
static void test_tcp_recv_trickle(void) { recv_trickle("tcp"); }
static void test_unix_recv_trickle(void) { recv_trickle("unix"); }
static void test_tcp_send_stalled(void) { send_stalled("tcp"); }
static void test_unix_send_stalled(void) { send_stalled("unix"); }
static void test_tcp_send_trickle(void) { send_trickle("tcp"); }
static void test_unix_send_trickle(void) { send_trickle("unix"); }
static void test_tcp_slow(void) { slow_but_on_time("tcp"); }
static void test_unix_slow(void) { slow_but_on_time("unix"); }

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	static const struct test tests[] = {
		{ "tcp: 20 of 64 bytes, then silence", test_tcp_recv_partial },
		{ "unix: 20 of 64 bytes, then silence",
		  test_unix_recv_partial },
		{ "tcp: nothing at all", test_tcp_recv_silent },
		{ "unix: nothing at all", test_unix_recv_silent },
		{ "tcp: a byte every 200 ms", test_tcp_recv_trickle },
		{ "unix: a byte every 200 ms", test_unix_recv_trickle },
		{ "tcp: 64 MiB to a reader that stops after 1 MiB",
		  test_tcp_send_stalled },
		{ "unix: 64 MiB to a reader that stops after 1 MiB",
		  test_unix_send_stalled },
		{ "tcp: 64 MiB to a reader of 16 KiB per 100 ms",
		  test_tcp_send_trickle },
		{ "unix: 64 MiB to a reader of 16 KiB per 100 ms",
		  test_unix_send_trickle },
		{ "tcp: slow but on time arrives whole", test_tcp_slow },
		{ "unix: slow but on time arrives whole", test_unix_slow },
		{ "tcp: zero-copy flush with trickling completions",
		  flush_trickle },
		{ NULL, NULL },
	};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	return run_tests("deadline", tests, 120);
}
