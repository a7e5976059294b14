/* SPDX-License-Identifier: MIT */
/*
 * test-fd-channels.c - channels handed in as connected sockets (fd:):
 * socketpairs and TCP connections the test opens itself, listed in
 * different orders on the two ends; and what is refused: a count that is
 * not the channel count, a descriptor that is not a connected socket, too
 * few descriptors on the receiver.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "rx.h"
#include "multifd.h"

#define LEN (8u << 20)
#define TIMEOUT_MS 3000

/* "fd:a,b,..." from n descriptors, in the order given by order[] */
static void fd_uri(char *buf, size_t len, const int *fds, const int *order,
		   unsigned n)
{
	size_t at = (size_t)snprintf(buf, len, "fd:");

	for (unsigned i = 0; i < n; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "",
				       fds[order ? order[i] : (int)i]);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int rx_start(struct rx *rx, const char *uri, uint8_t *dst)
{
	return rx_start_len(rx, uri, dst, LEN, TIMEOUT_MS);
}

/* Send LEN bytes of src over suri (n channels) to the receiver rx runs,
 * which must have them all in dst; both sessions are freed. */
static void send_to(struct rx *rx, const char *suri, unsigned n,
		    uint8_t *src, const uint8_t *dst)
{
	struct mfd_session *tx;
	struct mfd_config cfg;
	char err[300];

	mfd_config_init(&cfg);
	cfg.uri = suri;
	cfg.channels = n;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, LEN, false) >= 0);
	CU_ASSERT_EQUAL(mfd_session_start(tx), 0);
	CU_ASSERT_EQUAL(mfd_send_region(tx, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx), 0);
	pthread_join(rx->t, NULL);
	CU_ASSERT_EQUAL(rx->result, 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_free(tx);
	mfd_session_free(rx->s);
}

/* Move LEN random bytes over n channels: the receiver lists its ends in
 * order, the sender its ends backwards. */
static void transfer(const int *a, const int *b, unsigned n)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	int backwards[8];
	char ruri[200], suri[200];
	uint64_t seed = 11;
	struct rx rx = { 0 };

	for (unsigned i = 0; i < n; i++)
		backwards[i] = (int)(n - 1 - i);
	fill_random(src, LEN, &seed);
	fd_uri(ruri, sizeof(ruri), a, NULL, n);
	fd_uri(suri, sizeof(suri), b, backwards, n);
	CU_ASSERT_EQUAL_FATAL(rx_start(&rx, ruri, dst), 0);
	CU_ASSERT_STRING_EQUAL(mfd_session_uri(rx.s), ruri);
	send_to(&rx, suri, n, src, dst);
	/* the sessions worked on duplicates: ours are still open */
	for (unsigned i = 0; i < n; i++)
		CU_ASSERT(fcntl(a[i], F_GETFD) >= 0 && fcntl(b[i], F_GETFD) >= 0);
	for (unsigned i = 0; i < n; i++) {
		close(a[i]);
		close(b[i]);
	}
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_socketpairs(void)
{
	int a[4], b[4];

	for (int i = 0; i < 4; i++) {
		int sv[2];

		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		a[i] = sv[0];
		b[i] = sv[1];
	}
	transfer(a, b, 4);
}

/* Two loopback TCP connections: connected here, accepted here. */
static void test_tcp(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), a[2], b[2];

	CU_ASSERT_FATAL(l >= 0 && !bind(l, (struct sockaddr *)&sa, sizeof(sa)) &&
			!listen(l, 4) &&
			!getsockname(l, (struct sockaddr *)&sa, &sl));
	for (int i = 0; i < 2; i++) {
		b[i] = socket(AF_INET, SOCK_STREAM, 0);
		CU_ASSERT_FATAL(!connect(b[i], (struct sockaddr *)&sa,
					 sizeof(sa)));
		a[i] = accept(l, NULL, NULL);
		CU_ASSERT_FATAL(a[i] >= 0);
	}
	close(l);
	transfer(a, b, 2);
}

/* mfd_session_new() refuses the URI as a sender; its error names want. */
static void refused_new_as(enum mfd_role role, const char *uri,
			   unsigned channels, int want_r, const char *want)
{
	struct mfd_session *tx = NULL;
	struct mfd_config cfg;
	char err[300] = "";

	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.channels = channels;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, role, &tx, err, sizeof(err)),
			want_r);
	if (!strstr(err, want)) {
		fprintf(stderr, "error '%s' does not say '%s'\n", err, want);
		CU_FAIL("the refusal does not say why");
	}
}

static void refused_new(const char *uri, unsigned channels, const char *want)
{
	refused_new_as(MFD_ROLE_SEND, uri, channels, -EINVAL, want);
}

static void test_bad_lists(void)
{
	refused_new("fd:3,4", 4, "2 descriptors for 4 channels");
	refused_new("fd:3,3", 2, "twice");
	refused_new("fd:", 1, "expected fd:N");
	refused_new("fd:3,x", 2, "expected fd:N");
	refused_new("fd:-1", 1, "expected fd:N");
	refused_new("fd:99999999999", 1, "expected fd:N");
}

/* A session whose descriptor is not a connected socket fails to start,
 * at once (not after its timeout), saying which descriptor and what it
 * is: the sender's, in role MFD_ROLE_SEND, the receiver's otherwise. */
static void refused_start(enum mfd_role role, int fd, const char *want)
{
	struct mfd_session *s;
	struct mfd_config cfg;
	uint8_t *page = guarded_alloc(4096);
	char uri[32], err[300], text[64];
	double t0 = now_s();
	const char *e;

	snprintf(uri, sizeof(uri), "fd:%d", fd);
	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.channels = 1;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, role, &s, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(s, "ram", page, 4096,
					 role == MFD_ROLE_RECV) >= 0);
	CU_ASSERT(mfd_session_start(s) < 0);
	e = mfd_session_error(s);
	snprintf(text, sizeof(text), "descriptor %d %s", fd, want);
	if (!e || !strstr(e, text) ||
	    !strstr(e, "expected a connected stream socket, one per channel")) {
		fprintf(stderr, "%s error '%s' does not say '%s'\n",
			role == MFD_ROLE_SEND ? "sender" : "receiver", e, text);
		CU_FAIL("the failure does not say why");
	}
	if (now_s() - t0 > 1.0) {
		fprintf(stderr, "refused after %.1f s\n", now_s() - t0);
		CU_FAIL("the refusal waited for the timeout");
	}
	mfd_session_free(s);
	guarded_free(page, 4096);
}

static void test_not_sockets(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int u = socket(AF_INET, SOCK_STREAM, 0), d = socket(AF_INET, SOCK_DGRAM, 0);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	int f = open("/dev/null", O_RDONLY), closed = dup(f);
	char path[] = "/tmp/test-fd-channels-XXXXXX", uri[32], want[100];
	int reg = mkstemp(path);

	CU_ASSERT_FATAL(reg >= 0 && l >= 0 &&
			!bind(l, (struct sockaddr *)&sa, sizeof(sa)) &&
			!listen(l, 4));
	unlink(path);
	close(closed);
	for (int k = 0; k < 2; k++) {
		enum mfd_role role = k ? MFD_ROLE_RECV : MFD_ROLE_SEND;

		refused_start(role, f, "is a character device");
		refused_start(role, reg, "is a regular file");
		refused_start(role, d, "is a datagram socket");
		refused_start(role, l, "is a listening socket");
		refused_start(role, u, "is not connected");
		/* a closed one cannot be duplicated: refused at once */
		snprintf(uri, sizeof(uri), "fd:%d", closed);
		snprintf(want, sizeof(want), "descriptor %d is not open: "
			 "expected a connected stream socket", closed);
		refused_new_as(role, uri, 1, -EBADF, want);
	}
	close(reg);
	close(l);
	close(u);
	close(d);
	close(f);
}

/* The caller closes its descriptors right after mfd_session_new(), on
 * both ends, and new sockets take their numbers: the sessions work on
 * their duplicates, and nothing reaches the sockets that took the
 * numbers. */
static void test_closed_after_new(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	int a[2], b[2], decoy[4][2], order[2] = { 0, 1 };
	struct mfd_session *tx;
	struct mfd_config cfg;
	char ruri[100], suri[100], err[300], byte;
	uint64_t seed = 12;
	struct rx rx = { 0 };

	for (int i = 0; i < 2; i++) {
		int sv[2];

		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		a[i] = sv[0];
		b[i] = sv[1];
	}
	fill_random(src, LEN, &seed);
	fd_uri(ruri, sizeof(ruri), a, order, 2);
	fd_uri(suri, sizeof(suri), b, order, 2);
	mfd_config_init(&cfg);
	cfg.uri = ruri;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_RECV, &rx.s, err,
					      sizeof(err)), 0);
	cfg.uri = suri;
	cfg.channels = 2;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	/* the lowest free numbers: those just closed */
	for (int i = 0; i < 4; i++)
		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0,
					   decoy[i]) == 0);
	CU_ASSERT(mfd_session_add_region(rx.s, "ram", dst, LEN, true) >= 0);
	CU_ASSERT_EQUAL_FATAL(mfd_session_start(rx.s), 0);
	CU_ASSERT_FATAL(pthread_create(&rx.t, NULL, rx_main, &rx) == 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, LEN, false) >= 0);
	CU_ASSERT_EQUAL(mfd_session_start(tx), 0);
	CU_ASSERT_EQUAL(mfd_send_region(tx, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx), 0);
	pthread_join(rx.t, NULL);
	CU_ASSERT_EQUAL(rx.result, 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 2; k++) {
			ssize_t n = recv(decoy[i][k], &byte, 1, MSG_DONTWAIT);

			if (n >= 0 || errno != EAGAIN)
				fprintf(stderr, "decoy %d (fd %d): %zd %s\n", i,
					decoy[i][k], n, strerror(errno));
			CU_ASSERT(n < 0 && errno == EAGAIN);
		}
	for (int i = 0; i < 8; i++)
		close(decoy[i / 2][i % 2]);
	mfd_session_free(tx);
	mfd_session_free(rx.s);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* A sender's second descriptor is bad: refused before the first
 * channel's handshake, which would wait for a receiver. */
static void test_second_bad(void)
{
	struct mfd_session *tx;
	struct mfd_config cfg;
	uint8_t *page = guarded_alloc(4096);
	int sv[2], d = socket(AF_INET, SOCK_DGRAM, 0);
	char uri[64], err[300];
	double t0 = now_s();
	const char *e;

	CU_ASSERT_FATAL(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv) && d >= 0);
	snprintf(uri, sizeof(uri), "fd:%d,%d", sv[0], d);
	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.channels = 2;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", page, 4096, false) >= 0);
	CU_ASSERT(mfd_session_start(tx) < 0);
	e = mfd_session_error(tx);
	snprintf(err, sizeof(err), "descriptor %d is a datagram socket", d);
	if (!e || !strstr(e, err)) {
		fprintf(stderr, "error '%s' does not say '%s'\n", e, err);
		CU_FAIL("the failure does not say why");
	}
	CU_ASSERT(now_s() - t0 < 1.0);
	mfd_session_free(tx);
	close(sv[0]);
	close(sv[1]);
	close(d);
	guarded_free(page, 4096);
}

/* The receiver works on duplicates too: the caller may close its own
 * descriptors once the session started. */
static void test_receiver_duplicates(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	char ruri[64], suri[64];
	struct rx rx = { 0 };
	uint64_t seed = 5;
	int sv[2];

	fill_random(src, LEN, &seed);
	CU_ASSERT_FATAL(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	snprintf(ruri, sizeof(ruri), "fd:%d", sv[0]);
	snprintf(suri, sizeof(suri), "fd:%d", sv[1]);
	CU_ASSERT_EQUAL_FATAL(rx_start(&rx, ruri, dst), 0);
	close(sv[0]);
	send_to(&rx, suri, 1, src, dst);
	close(sv[1]);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* Two channels, but the receiver was handed only one end: it fails at
 * once (not after its timeout), saying that no more can come. */
static void test_too_few_on_receiver(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	int p0[2], p1[2];
	char ruri[64], suri[64], err[300];
	struct mfd_session *tx;
	struct mfd_config cfg;
	struct rx rx = { 0 };
	const char *e;

	CU_ASSERT_FATAL(!socketpair(AF_UNIX, SOCK_STREAM, 0, p0) &&
			!socketpair(AF_UNIX, SOCK_STREAM, 0, p1));
	snprintf(ruri, sizeof(ruri), "fd:%d", p0[0]);
	snprintf(suri, sizeof(suri), "fd:%d,%d", p0[1], p1[1]);
	CU_ASSERT_EQUAL_FATAL(rx_start(&rx, ruri, dst), 0);
	mfd_config_init(&cfg);
	cfg.uri = suri;
	cfg.channels = 2;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, LEN, false) >= 0);
	/* the second channel's handshake is never answered: it fails */
	CU_ASSERT(mfd_session_start(tx) < 0);
	pthread_join(rx.t, NULL);
	CU_ASSERT(rx.result < 0);
	e = mfd_session_error(rx.s);
	if (!e || !strstr(e, "none more can come")) {
		fprintf(stderr, "receiver error '%s'\n", e);
		CU_FAIL("the receiver does not say its descriptors ran out");
	}
	mfd_session_free(tx);
	mfd_session_free(rx.s);
	close(p0[0]);
	close(p0[1]);
	close(p1[0]);
	close(p1[1]);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "4 socketpairs, listed in opposite orders", test_socketpairs },
		{ "2 TCP connections opened by the caller", test_tcp },
		{ "descriptor lists refused", test_bad_lists },
		{ "descriptors that are not connected sockets",
		  test_not_sockets },
		{ "a sender's second descriptor is bad", test_second_bad },
		{ "descriptors closed after mfd_session_new(), numbers reused",
		  test_closed_after_new },
		{ "the receiver's own duplicates", test_receiver_duplicates },
		{ "a receiver handed too few", test_too_few_on_receiver },
		{ NULL, NULL },
	};

	return run_tests("fd-channels", tests, 60);
}
