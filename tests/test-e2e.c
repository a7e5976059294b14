/* SPDX-License-Identifier: MIT */
/*
 * test-e2e.c - whole transfers over TCP and Unix sockets with 1, 2 and 8
 * channels: a 256 MiB region, five rounds that rewrite random pages (some
 * to zero, zero pages back to data), compared byte for byte.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "pair.h"

#define SIZE (256ull << 20)

static void fill_page(uint8_t *page, uint32_t ps, uint64_t *st)
{
	fill_random(page, ps, st);
}

static void transfer(const char *uri, unsigned channels)
{
	struct mfd_config cfg;
	struct mfd_stats st;

	mfd_config_init(&cfg);
	cfg.channels = channels;
	cfg.timeout_ms = 20000;
	CU_ASSERT_EQUAL(run_transfer(&cfg, uri, SIZE, 5, fill_page, &st), 0);
	CU_ASSERT(st.zero_pages > 0);
	CU_ASSERT_EQUAL(st.rounds, 5 + 1); /* finish ends one more round */
	CU_ASSERT(st.normal_pages >= SIZE / 4096 * 7 / 8);
}

static void test_tcp_1(void) { transfer("tcp:127.0.0.1:0", 1); }
static void test_tcp_2(void) { transfer("tcp:127.0.0.1:0", 2); }
static void test_tcp_8(void) { transfer("tcp:127.0.0.1:0", 8); }
static void test_tcp6_2(void) { transfer("tcp:[::1]:0", 2); }
/* a socket path of this process's own: two runs at once (make check
 * and a sanitizer build's) must not meet */
static void transfer_unix(unsigned channels)
{
	char uri[64];

	snprintf(uri, sizeof(uri), "unix:/tmp/mfd-e2e-%d-%u.sock",
		 (int)getpid(), channels);
	transfer(uri, channels);
}

static void test_unix_1(void) { transfer_unix(1); }
static void test_unix_2(void) { transfer_unix(2); }
static void test_unix_8(void) { transfer_unix(8); }

/* Without zero-page detection zero pages travel with their content. */
static void test_no_zero_detect(void)
{
	struct mfd_config cfg;
	struct mfd_stats st;

	mfd_config_init(&cfg);
	cfg.zero_page_detection = false;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 16 << 20, 3,
				     fill_page, &st), 0);
	CU_ASSERT_EQUAL(st.zero_pages, 0);
}

/* Odd sizes: 64 KiB pages, one page per packet. */
static void test_geometry(void)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.page_size = 65536;
	cfg.pages_per_packet = 1;
	cfg.channels = 3;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 32 << 20, 3,
				     fill_page, NULL), 0);
	cfg.page_size = 512;
	cfg.pages_per_packet = 1024;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 8 << 20, 3,
				     fill_page, NULL), 0);
}

static int rx_result = -1;

static void *rx_wait(void *rx)
{
	rx_result = mfd_recv_wait(rx);
	return NULL;
}

/* A receiver whose region `dst` holds old data (not zeroed memory) on
 * its thread, and a sender with `src` connected to it and started. */
static void dirty_pair_start(struct mfd_config *cfg, uint8_t *src,
			     uint8_t *dst, uint64_t len, struct mfd_session **rx,
			     struct mfd_session **tx, pthread_t *t)
{
	char err[200];

	cfg->uri = "tcp:127.0.0.1:0";
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(cfg, MFD_ROLE_RECV, rx, err,
					      sizeof(err)), 0);
	CU_ASSERT_EQUAL(mfd_session_add_region(*rx, "ram", dst, len, false), 0);
	CU_ASSERT_EQUAL_FATAL(mfd_session_start(*rx), 0);
	pthread_create(t, NULL, rx_wait, *rx);
	cfg->uri = mfd_session_uri(*rx);
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(cfg, MFD_ROLE_SEND, tx, err,
					      sizeof(err)), 0);
	CU_ASSERT_EQUAL(mfd_session_add_region(*tx, "ram", src, len, false), 0);
	CU_ASSERT_EQUAL(mfd_session_start(*tx), 0);
}

/* The pre-declared region on the receiver is not zeroed memory: zero
 * pages must be cleared there, old content and all. */
static void test_dirty_receiver_memory(void)
{
	enum { LEN = 1 << 20 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct mfd_session *rx, *tx;
	pthread_t t;

	memset(dst, 0xaa, LEN); /* old data the sender's zeros must clear */
	memset(src, 0x55, LEN / 2);
	mfd_config_init(&cfg);
	dirty_pair_start(&cfg, src, dst, LEN, &rx, &tx, &t);
	CU_ASSERT_EQUAL(mfd_send_region(tx, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx), 0);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(rx_result, 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_free(tx);
	mfd_session_free(rx);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* The receiver's commit: called once, after every page is in place;
 * when it fails, the sender's finish fails with its sentence. A slow one
 * (a write-back to a slow disk) outlasts the sender's timeout: the
 * receiver's keep-alives hold the sender's wait for the FIN. */
enum commit_kind {
	COMMIT_OK,
	COMMIT_FAILS,
	COMMIT_SLOW,
	COMMIT_CANCELLED,
	COMMIT_SENDER_LEFT,
};
static struct mfd_session *commit_rx, *commit_tx;
static int commits;
static uint8_t *commit_dst, *commit_src;

static int commit_cb(void *opaque, char *err, size_t errlen)
{
	enum commit_kind kind = *(enum commit_kind *)opaque;

	commits++;
	/* every page is in before the commit */
	CU_ASSERT(memcmp(commit_src, commit_dst, 1 << 20) == 0);
	if (kind == COMMIT_SLOW)
		usleep(1500 * 1000); /* five times the timeout */
	/* a signal to the tool once its files took their names */
	if (kind == COMMIT_CANCELLED)
		mfd_session_cancel_reason(commit_rx, "too late");
	/* the sender gives up during the write-out (killed): the commit
	 * sees it before it would make the result visible */
	if (kind == COMMIT_SENDER_LEFT) {
		int r = mfd_recv_sender_present(commit_rx);

		CU_ASSERT_EQUAL(r, 0);
		mfd_session_cancel_reason(commit_tx, "killed");
		for (int ms = 0; r == 0 && ms < 5000; ms += 10) {
			usleep(10 * 1000);
			r = mfd_recv_sender_present(commit_rx);
		}
		CU_ASSERT_EQUAL(r, -EPIPE);
		snprintf(err, errlen, "the sender left");
		return r;
	}
	if (kind != COMMIT_FAILS)
		return 0;
	snprintf(err, errlen, "the disk is on fire");
	return -ENOSPC;
}

static void commit_case(enum commit_kind kind, unsigned channels)
{
	enum { LEN = 1 << 20 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	bool fail = kind == COMMIT_FAILS || kind == COMMIT_SENDER_LEFT;
	struct mfd_config cfg;
	struct mfd_session *rx, *tx;
	const char *e;
	pthread_t t;

	memset(src, 0x3c, LEN);
	commits = 0;
	commit_src = src;
	commit_dst = dst;
	mfd_config_init(&cfg);
	cfg.channels = channels;
	cfg.commit_cb = commit_cb;
	cfg.commit_opaque = &kind;
	if (kind == COMMIT_SLOW)
		cfg.timeout_ms = 300;
	dirty_pair_start(&cfg, src, dst, LEN, &rx, &tx, &t);
	commit_rx = rx;
	commit_tx = tx;
	CU_ASSERT_EQUAL(mfd_send_region(tx, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx) == 0, !fail);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(rx_result == 0, !fail);
	/* the commit's own errno; a sender that said why, its reason's */
	if (kind == COMMIT_FAILS)
		CU_ASSERT_EQUAL(rx_result, -ENOSPC);
	if (kind == COMMIT_SENDER_LEFT)
		CU_ASSERT_EQUAL(rx_result, -ECANCELED);
	CU_ASSERT_EQUAL(commits, 1);
	/* only a receiver's commit may ask */
	CU_ASSERT_EQUAL(mfd_recv_sender_present(rx), -EINVAL);
	CU_ASSERT_EQUAL(mfd_recv_sender_present(tx), -EINVAL);
	CU_ASSERT_EQUAL(mfd_recv_sender_present(NULL), -EINVAL);
	if (kind == COMMIT_SENDER_LEFT) {
		/* it left saying why (an ABORT): that is the error */
		e = mfd_session_error(rx);
		if (!e || !strstr(e, "the sender failed: killed")) {
			fprintf(stderr, "receiver error '%s'\n", e ? e : "");
			CU_FAIL("the receiver does not say why the sender left");
		}
		e = NULL;
	} else {
		e = mfd_session_error(tx);
	}
	if (kind == COMMIT_FAILS &&
	    (!e || !strstr(e, "cannot commit: the disk is on fire"))) {
		fprintf(stderr, "sender error '%s'\n", e ? e : "");
		CU_FAIL("the sender does not say the commit failed");
	}
	if (!fail && e && e[0]) {
		fprintf(stderr, "sender error '%s'\n", e);
		CU_FAIL("the sender failed a session whose commit succeeded");
	}
	mfd_session_free(tx);
	mfd_session_free(rx);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_commit(void) { commit_case(COMMIT_OK, 2); }
static void test_commit_fails(void) { commit_case(COMMIT_FAILS, 2); }
static void test_commit_slow(void) { commit_case(COMMIT_SLOW, 1); }
static void test_commit_slow_4(void) { commit_case(COMMIT_SLOW, 4); }
static void test_commit_cancelled(void) { commit_case(COMMIT_CANCELLED, 2); }
static void test_commit_sender_left(void)
{
	commit_case(COMMIT_SENDER_LEFT, 1);
	commit_case(COMMIT_SENDER_LEFT, 4);
}

/*
 * Zero ranges into zeroed memory: round 1 sends every page but the last
 * quarter, which goes as a range (already zero there); round 2 zeroes the
 * middle half at the source and sends it as one range, which must clear
 * the pages round 1 wrote. With checksums, on 2 channels.
 */
static void test_zero_ranges_fresh(void)
{
	enum { LEN = 4 << 20, PS = 4096 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	uint64_t seed = 3, off[LEN / PS];
	struct mfd_config cfg;
	struct mfd_stats st;
	struct pair p;

	for (uint64_t o = 0; o < LEN * 3 / 4; o += PS)
		fill_random(src + o, PS, &seed);
	mfd_config_init(&cfg);
	cfg.channels = 2;
	cfg.checksum = true;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, LEN), 0);
	for (size_t i = 0; i < LEN * 3 / 4 / PS; i++)
		off[i] = i * PS;
	CU_ASSERT_EQUAL(mfd_send_pages(p.tx, p.region, off, LEN * 3 / 4 / PS),
			0);
	CU_ASSERT_EQUAL(mfd_send_zero_range(p.tx, p.region, LEN * 3 / 4,
					    LEN / 4), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	memset(src + LEN / 4, 0, LEN / 2);
	CU_ASSERT_EQUAL(mfd_send_zero_range(p.tx, p.region, LEN / 4, LEN / 2),
			0);
	/* what the API refuses: half pages, past the end */
	CU_ASSERT_EQUAL(mfd_send_zero_range(p.tx, p.region, 100, PS), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_zero_range(p.tx, p.region, LEN - PS, 2 * PS),
			-EINVAL);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_stats(p.tx, &st);
	CU_ASSERT_EQUAL(st.zero_pages, LEN / 4 / PS + LEN / 2 / PS);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/*
 * Zero ranges into memory with old data: the first half of the region as
 * pages, the second as one range, which must read zero afterwards: in a
 * private mapping (written zeros) and in a shared one (memfd: the range is
 * given back to the file, which keeps only the half with data).
 */
static void zero_range_onto(uint8_t *dst, int memfd)
{
	enum { LEN = 2 << 20, PS = 4096 };
	uint8_t *src = guarded_alloc(LEN);
	uint64_t seed = 4, off[LEN / 2 / PS];
	struct mfd_config cfg;
	struct mfd_session *rx, *tx;
	pthread_t t;

	for (uint64_t o = 0; o < LEN / 2; o += PS)
		fill_random(src + o, PS, &seed);
	memset(dst, 0xaa, LEN);
	mfd_config_init(&cfg);
	/* a packet buffer of one offset: smaller than a range's payload */
	cfg.pages_per_packet = 1;
	dirty_pair_start(&cfg, src, dst, LEN, &rx, &tx, &t);
	for (size_t i = 0; i < LEN / 2 / PS; i++)
		off[i] = i * PS;
	CU_ASSERT_EQUAL(mfd_send_pages(tx, 0, off, LEN / 2 / PS), 0);
	CU_ASSERT_EQUAL(mfd_send_zero_range(tx, 0, LEN / 2, LEN / 2), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx), 0);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(rx_result, 0);
	/* before the comparison, whose reads of a hole allocate pages */
	if (memfd >= 0) {
		struct stat sb;

		CU_ASSERT_EQUAL(fstat(memfd, &sb), 0);
		CU_ASSERT_EQUAL((uint64_t)sb.st_blocks * 512, LEN / 2);
	}
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_free(tx);
	mfd_session_free(rx);
	guarded_free(src, LEN);
}

static void test_zero_range_private(void)
{
	uint8_t *dst = guarded_alloc(2 << 20);

	zero_range_onto(dst, -1);
	guarded_free(dst, 2 << 20);
}

static void test_zero_range_shared(void)
{
	int fd = memfd_create("multifd-e2e", MFD_CLOEXEC);
	uint8_t *dst = MAP_FAILED;

	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, 2 << 20) == 0);
	dst = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(dst != MAP_FAILED);
	zero_range_onto(dst, fd);
	munmap(dst, 2 << 20);
	close(fd);
}

/* A receiver bounded by rx's policy refuses a sender configured by tx,
 * with a reason that names `word`, which the sender reports. */
static void policy_refuses(const struct mfd_config *rx,
			   const struct mfd_config *tx, const char *word)
{
	uint8_t *src = guarded_alloc(1 << 20), *dst = guarded_alloc(1 << 20);
	/* the receiver waits on for a sender it accepts: not for long */
	struct mfd_config quick = *rx;
	struct pair p;
	const char *e;

	quick.timeout_ms = 1000;
	memset(&p, 0, sizeof(p));
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &quick, "tcp:127.0.0.1:0", dst,
				       1 << 20), 0);
	CU_ASSERT(tx_start(&p, tx, src, 1 << 20) == -EPERM);
	e = p.tx ? mfd_session_error(p.tx) : NULL;
	if (!e || !strstr(e, word)) {
		fprintf(stderr, "sender error '%s' does not say '%s'\n", e,
			word);
		CU_FAIL("the refusal does not say why");
	}
	/* the receiver waits on for a sender it accepts; when none came,
	 * its error says why it refused the last one */
	CU_ASSERT(pair_join_rx(&p) == -ETIMEDOUT);
	e = mfd_session_error(p.rx);
	if (!e || !strstr(e, "the last refused") || !strstr(e, word)) {
		fprintf(stderr, "receiver error '%s'\n", e);
		CU_FAIL("the receiver does not say what it refused");
	}
	pair_free(&p);
	guarded_free(src, 1 << 20);
	guarded_free(dst, 1 << 20);
}

static void test_receiver_policy(void)
{
	struct mfd_config rx, tx;

	mfd_config_init(&tx);
	tx.channels = 4;
	tx.timeout_ms = 5000;
	rx = tx;
	rx.accept_max_channels = 2;
	policy_refuses(&rx, &tx, "proposes 4 channels; this receiver accepts "
				 "at most 2");
	rx = tx;
	rx.accept_methods = 1u << MFD_METHOD_ZSTD;
	policy_refuses(&rx, &tx, "method none");
	rx = tx;
	rx.accept_max_page_size = 4096;
	tx.page_size = 8192;
	policy_refuses(&rx, &tx, "pages of 8192 bytes");
	tx.page_size = 4096;
	rx = tx;
	rx.require_checksum = true;
	policy_refuses(&rx, &tx, "requires packet checksums");
	rx = tx;
	rx.require_verify = true;
	policy_refuses(&rx, &tx, "requires region digests");
	/* inside the bounds: accepted */
	rx = tx;
	rx.accept_max_channels = 4;
	rx.accept_methods = 1u << MFD_METHOD_NONE;
	rx.accept_max_page_size = 4096;
	rx.require_checksum = true;
	tx.checksum = true;
	{
		uint8_t *src = guarded_alloc(1 << 20), *dst = guarded_alloc(1 << 20);
		struct pair p;

		memset(&p, 0, sizeof(p));
		CU_ASSERT_EQUAL_FATAL(rx_start(&p, &rx, "tcp:127.0.0.1:0", dst,
					       1 << 20), 0);
		CU_ASSERT_EQUAL(tx_start(&p, &tx, src, 1 << 20), 0);
		CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
		CU_ASSERT_EQUAL(pair_finish(&p), 0);
		pair_free(&p);
		guarded_free(src, 1 << 20);
		guarded_free(dst, 1 << 20);
	}
}

/* A region the receiver's application makes in region_cb, once the
 * sender said its size. */
struct made {
	uint8_t *mem;
	uint64_t len;
	int calls;
};

static int make_region(void *opaque, const char *name, uint64_t length,
		       void **mem, bool *zeroed)
{
	struct made *m = opaque;

	m->calls++;
	if (strcmp(name, "ram"))
		return -ENOENT;
	m->mem = guarded_alloc(length);
	m->len = length;
	*mem = m->mem;
	*zeroed = true;
	return 0;
}

/* The region made in region_cb receives the pages; freeing the session
 * closes no descriptor of the application's (a region's file_fd, 0 in
 * a zeroed struct, is closed only on a sender) */
static void test_region_cb(void)
{
	const uint64_t len = 4 << 20;
	uint8_t *src = guarded_alloc(len);
	struct made made = { 0 };
	struct mfd_config cfg;
	uint64_t st = 7;
	struct pair p;
	int fd0 = -1;

	if (fcntl(0, F_GETFD) < 0) /* the lowest free descriptor: 0 */
		fd0 = open("/dev/null", O_RDONLY);
	CU_ASSERT_FATAL(fcntl(0, F_GETFD) >= 0);
	fill_random(src, len, &st);
	mfd_config_init(&cfg);
	cfg.channels = 2;
	cfg.timeout_ms = 5000;
	cfg.region_cb = make_region;
	cfg.region_opaque = &made;
	/* "ram" declared without memory: made when it is announced */
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", NULL, 0),
			      0);
	cfg.page_size = 8192; /* the sender's, which the receiver takes */
	CU_ASSERT_EQUAL_FATAL(tx_start(&p, &cfg, src, len), 0);
	CU_ASSERT_EQUAL(mfd_session_page_size(p.tx), 8192);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT_EQUAL(mfd_session_page_size(p.rx), 8192);
	pair_free(&p);
	CU_ASSERT_EQUAL(made.calls, 1);
	CU_ASSERT_EQUAL(made.len, len);
	CU_ASSERT(made.mem && !memcmp(made.mem, src, len));
	CU_ASSERT(fcntl(0, F_GETFD) >= 0);
	if (made.mem)
		guarded_free(made.mem, len);
	guarded_free(src, len);
	if (fd0 >= 0)
		close(fd0);
}

/* A call refused for its arguments says why in mfd_session_error(), and
 * the session goes on; a secret length without a secret is refused. */
static void test_bad_calls(void)
{
	const uint64_t len = 1 << 20, bad = 4097, far = 2 << 20;
	uint8_t *src = guarded_alloc(len), *dst = guarded_alloc(len);
	struct mfd_session *s;
	struct mfd_config cfg;
	char err[256];
	struct pair p;

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.secret_len = 32; /* and no secret */
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "secret is NULL"));
	cfg.secret_len = 0;
	/* a count within 1..1024 that makes packets too big says so */
	cfg.page_size = 65536;
	cfg.pages_per_packet = 1024;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pages per packet 1024 of 65536 "
				      "bytes make packets over 4 MiB: "
				      "expected at most 64"));
	cfg.page_size = 4096;
	cfg.pages_per_packet = 0;
	cfg.timeout_ms = 5000;
	memset(src, 7, len);
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, len),
			      0);
	CU_ASSERT_EQUAL(mfd_session_add_region(p.tx, "more", src, len, false),
			-EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "once the session started"));
	CU_ASSERT_EQUAL(mfd_send_pages(p.tx, p.region, &bad, 1), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "page offset 0x1001: expected a multiple "
				      "of 4096 below 0x100000"));
	CU_ASSERT_EQUAL(mfd_send_pages(p.tx, 5, &far, 1), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "region 5: the session has 1"));
	CU_ASSERT_EQUAL(mfd_send_zero_range(p.tx, p.region, 0, far), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx), "zero range"));
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, "", src, 1), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx), "blob name"));
	/* the session goes on */
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(!memcmp(src, dst, len));
	/* a success leaves no error, the refusals before it included, and
	 * a cancel after it changes nothing */
	CU_ASSERT_STRING_EQUAL(mfd_session_error(p.tx), "");
	CU_ASSERT_STRING_EQUAL(mfd_session_error(p.rx), "");
	mfd_session_cancel(p.tx);
	mfd_session_cancel(p.rx);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(p.tx), "");
	CU_ASSERT_STRING_EQUAL(mfd_session_error(p.rx), "");
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "after mfd_send_finish()"));
	CU_ASSERT_EQUAL(mfd_send_sync(p.rx), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "a sender's call on a receiver"));
	pair_free(&p);

	/* a receiver's regions may not share memory (a sender's may) */
	cfg.uri = "tcp:127.0.0.1:0";
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_RECV, &s, err,
					      sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(mfd_session_add_region(s, "a", dst, len, false), 0);
	CU_ASSERT_EQUAL(mfd_session_add_region(s, "b", dst + len / 2, len / 2,
					       false),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(s),
				      "region 'b' overlaps region 'a'"));
	mfd_session_free(s);
	cfg.uri = "tcp:127.0.0.1:1";
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					      sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(mfd_session_add_region(s, "a", src, len, false), 0);
	CU_ASSERT_EQUAL(mfd_session_add_region(s, "b", src, len, false), 1);
	mfd_session_free(s);
	/* a failed start fails the session: every later call says so */
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					      sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(mfd_session_start(s), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_add_region(s, "a", src, len, false),
			-EINVAL);
	CU_ASSERT_EQUAL(mfd_session_start(s), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(s),
				      "no region to send"));
	mfd_session_free(s);
	guarded_free(src, len);
	guarded_free(dst, len);
}

/* A region_cb that gives one memory for two regions: the receiver
 * refuses the session rather than take one region into the other. */
static int same_memory(void *opaque, const char *name, uint64_t length,
		       void **mem, bool *zeroed)
{
	(void)name;
	(void)length;
	*mem = opaque;
	*zeroed = false;
	return 0;
}

static void test_region_cb_same_memory(void)
{
	const uint64_t len = 1 << 20;
	uint8_t *src = guarded_alloc(len), *dst = guarded_alloc(len);
	struct mfd_config cfg;
	char err[256];
	struct pair p = { 0 };

	memset(src, 5, len);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.region_cb = same_memory;
	cfg.region_opaque = dst;
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", NULL, 0),
			      0);
	cfg.uri = mfd_session_uri(p.rx);
	cfg.region_cb = NULL;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &p.tx, err,
					      sizeof(err)),
			      0);
	/* "ram", which the receiver expects, and one more it makes */
	CU_ASSERT(mfd_session_add_region(p.tx, "ram", src, len, false) == 0);
	CU_ASSERT(mfd_session_add_region(p.tx, "b", src, len, false) == 1);
	CU_ASSERT(mfd_session_start(p.tx) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "regions 'ram' and 'b' share memory"));
	CU_ASSERT(pair_join_rx(&p) < 0);
	pair_free(&p);
	guarded_free(src, len);
	guarded_free(dst, len);
}

static void *cancel_later(void *arg)
{
	usleep(300 * 1000);
	mfd_session_cancel_reason(arg, "the test says stop");
	return NULL;
}

/* A cancel before the start, while the start waits for a receiver that
 * accepted and never answers, or while it connects to an endpoint that
 * never answers: -ECANCELED, with its reason, at once. */
static void test_cancel_start(void)
{
	uint8_t *src = guarded_alloc(1 << 20);
	struct mfd_conn *silent = NULL;
	struct mfd_listener *l = NULL;
	struct mfd_session *s;
	struct mfd_config cfg;
	struct mfd_uri u;
	char err[256];
	pthread_t t;

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:1";
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					      sizeof(err)),
			      0);
	CU_ASSERT(mfd_session_add_region(s, "ram", src, 1 << 20, false) >= 0);
	mfd_session_cancel(s);
	CU_ASSERT_EQUAL(mfd_session_start(s), -ECANCELED);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(s), "cancelled");
	mfd_session_free(s);

	/* a listener that accepts and says nothing */
	CU_ASSERT_EQUAL_FATAL(mfd__uri_parse("tcp:127.0.0.1:0", &u, err,
					     sizeof(err)),
			      0);
	CU_ASSERT_EQUAL_FATAL(mfd__transport_get(MFD_SCHEME_TCP)
				      ->listen(&u, &l, err, sizeof(err)),
			      0);
	cfg.uri = l->uri;
	cfg.timeout_ms = 10000;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					      sizeof(err)),
			      0);
	CU_ASSERT(mfd_session_add_region(s, "ram", src, 1 << 20, false) >= 0);
	pthread_create(&t, NULL, cancel_later, s);
	CU_ASSERT_EQUAL(mfd_session_start(s), -ECANCELED);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(s), "the test says stop");
	pthread_join(t, NULL);
	mfd_session_free(s);
	if (!l->ops->accept(l, 1000, &silent, err, sizeof(err)))
		mfd__tp_close(silent);
	mfd__tp_listener_close(l);

	/* an endpoint that drops SYNs (its backlog is full): the cancel
	 * stops the connect that waits on it, not its 30 s timeout */
	{
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr =
						 htonl(INADDR_LOOPBACK) };
		socklen_t alen = sizeof(a);
		int hole = socket(AF_INET, SOCK_STREAM, 0), fill[4];
		char uri[64];
		struct timespec t0, t1;

		CU_ASSERT_FATAL(hole >= 0 &&
				!bind(hole, (struct sockaddr *)&a, sizeof(a)) &&
				!listen(hole, 0) &&
				!getsockname(hole, (struct sockaddr *)&a,
					     &alen));
		for (int i = 0; i < 4; i++) {
			fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK,
					 0);
			(void)!connect(fill[i], (struct sockaddr *)&a,
				       sizeof(a));
		}
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u",
			 ntohs(a.sin_port));
		cfg.uri = uri;
		cfg.timeout_ms = 30000;
		CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s,
						      err, sizeof(err)),
				      0);
		CU_ASSERT(mfd_session_add_region(s, "ram", src, 1 << 20,
						 false) >= 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pthread_create(&t, NULL, cancel_later, s);
		CU_ASSERT_EQUAL(mfd_session_start(s), -ECANCELED);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_join(t, NULL);
		/* 0.3 s and a look every 50 ms; the timeout would be 30 s */
		CU_ASSERT(t1.tv_sec - t0.tv_sec < 10);
		CU_ASSERT_STRING_EQUAL(mfd_session_error(s),
				       "the test says stop");
		mfd_session_free(s);
		for (int i = 0; i < 4; i++)
			close(fill[i]);
		close(hole);
	}
	guarded_free(src, 1 << 20);
}

/* A receiver cancelled in the middle of a transfer, its session kept
 * (to read its error and figures): the sender is told why at once, over
 * TCP too, where it is blocked on the receiver's full window (it used to
 * wait out its timeout, and forever without one). */
static void test_receiver_cancel_told(void)
{
	static const char *uris[] = { "tcp:127.0.0.1:0",
				      "unix:/tmp/mfd-e2e-rxcancel.sock" };
	/* more than the sockets' buffers hold once the receiver stops */
	const uint64_t len = 256 << 20;
	uint8_t *src = guarded_alloc(len), *dst = guarded_alloc(len);
	struct mfd_config cfg;
	uint64_t seed = 3;

	fill_random(src, len, &seed);
	for (int u = 0; u < 2; u++) {
		struct timespec t0, t1;
		struct pair p;
		pthread_t t;
		int r;

		mfd_config_init(&cfg);
		cfg.channels = 4;
		cfg.timeout_ms = 30000;
		cfg.max_bandwidth = 200 << 20; /* 1.3 s: the cancel at 0.3 */
		CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, uris[u], src, dst,
						 len), 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pthread_create(&t, NULL, cancel_later, p.rx);
		r = mfd_send_region(p.tx, p.region);
		if (!r)
			r = mfd_send_finish(p.tx);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_join(t, NULL);
		CU_ASSERT(r < 0);
		CU_ASSERT(t1.tv_sec - t0.tv_sec < 10);
		if (!strstr(mfd_session_error(p.tx),
			    "the receiver failed: the test says stop")) {
			fprintf(stderr, "%s: the sender says '%s'\n", uris[u],
				mfd_session_error(p.tx));
			CU_FAIL("the sender was not told why");
		}
		CU_ASSERT_EQUAL(pair_join_rx(&p), -ECANCELED);
		pair_free(&p);
	}
	guarded_free(src, len);
	guarded_free(dst, len);
}

/* Each round's figures: a full round, then two rounds of dirty pages
 * found 100 ms apart, whose rate and projected downtime follow, and
 * whose send time leaves the caller's pause out. */
static void test_round_figures(void)
{
	enum { LEN = 4 << 20, PAGES = LEN / 4096 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	uint64_t bitmap[PAGES / 64] = { 0 }, queued = 0, seed = 8;
	struct mfd_round_stats r[3], small;
	struct mfd_config cfg;
	struct pair p;

	fill_random(src, LEN, &seed);
	mfd_config_init(&cfg);
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	bitmap[0] = 0x3ff; /* 10 pages */
	CU_ASSERT_EQUAL(mfd_send_dirty(p.tx, p.region, bitmap, &queued), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	usleep(100 * 1000);
	bitmap[1] = 0xfffff; /* 20 pages */
	CU_ASSERT_EQUAL(mfd_send_dirty(p.tx, p.region, bitmap, &queued), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	for (unsigned i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(mfd_round_stats(p.tx, i, &r[i]), 0);
	CU_ASSERT_EQUAL(mfd_round_stats(p.tx, 3, &small), -ENOENT);
	CU_ASSERT(r[0].round == 0 && r[0].pages == PAGES &&
		  r[0].bytes > (uint64_t)LEN && r[0].seconds > 0 &&
		  r[0].bytes_per_s > 0 && r[0].dirty_pages == 0);
	/* dirtied since the full round began */
	CU_ASSERT(r[1].pages == 10 && r[1].dirty_pages == 10 &&
		  r[1].dirty_pages_per_s > 0);
	CU_ASSERT(r[2].pages == 20 && r[2].dirty_pages == 20);
	/* 20 pages over the 0.1 s or more since the previous scan */
	CU_ASSERT(r[2].dirty_pages_per_s > 20 && r[2].dirty_pages_per_s <= 200);
	CU_ASSERT(r[2].projected_downtime_s > 0);
	/* round 2's time holds the 0.1 s pause before it; its send time
	 * does not */
	CU_ASSERT(r[2].send_seconds > 0 &&
		  r[2].seconds - r[2].send_seconds >= 0.099);
	CU_ASSERT(r[2].send_bytes_per_s > r[2].bytes_per_s);
	for (unsigned i = 0; i < 3; i++)
		CU_ASSERT(r[i].send_seconds <= r[i].seconds);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT_EQUAL(mfd_round_stats(p.tx, 3, &small), 0); /* the last */
	/* an older, smaller struct: only its bytes */
	memset(&small, 0xee, sizeof(small));
	CU_ASSERT_EQUAL(mfd_round_stats_sized(p.tx, 2, &small,
					      offsetof(struct mfd_round_stats,
						       dirty_pages)), 0);
	CU_ASSERT(small.pages == 20 && small.dirty_pages ==
						  0xeeeeeeeeeeeeeeeeull);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* Does a thread of this process carry the name? */
static bool thread_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
		found = !strcmp(comm, name);
	}
	if (d)
		closedir(d);
	return found;
}

/* Channel threads are named after their role and channel. */
static void test_thread_names(void)
{
	enum { LEN = 1 << 20 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	mfd_config_init(&cfg);
	cfg.channels = 2;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	/* after a sync the receiver's channels are running too */
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	CU_ASSERT(thread_named("mfd-tx-0") && thread_named("mfd-tx-1"));
	CU_ASSERT(thread_named("mfd-rx-0") && thread_named("mfd-rx-1"));
	CU_ASSERT_FALSE(thread_named("mfd-tx-2"));
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "tcp, 1 channel", test_tcp_1 },
		{ "tcp, 2 channels", test_tcp_2 },
		{ "tcp, 8 channels", test_tcp_8 },
		{ "tcp over IPv6, 2 channels", test_tcp6_2 },
		{ "unix, 1 channel", test_unix_1 },
		{ "unix, 2 channels", test_unix_2 },
		{ "unix, 8 channels", test_unix_8 },
		{ "no zero-page detection", test_no_zero_detect },
		{ "page and packet geometry", test_geometry },
		{ "receiver memory with old data", test_dirty_receiver_memory },
		{ "the receiver commits before the end is confirmed",
		  test_commit },
		{ "a failed commit fails the sender too", test_commit_fails },
		{ "a commit longer than the sender's timeout (1 channel)",
		  test_commit_slow },
		{ "a commit longer than the sender's timeout (4 channels)",
		  test_commit_slow_4 },
		{ "a cancel during the commit is too late: both succeed",
		  test_commit_cancelled },
		{ "a sender gone during the commit is seen by it",
		  test_commit_sender_left },
		{ "zero ranges into fresh memory", test_zero_ranges_fresh },
		{ "zero ranges onto old data, private", test_zero_range_private },
		{ "zero ranges onto old data, shared", test_zero_range_shared },
		{ "channel threads are named", test_thread_names },
		{ "figures of each round", test_round_figures },
		{ "a region made in region_cb", test_region_cb },
		{ "calls refused for their arguments say why", test_bad_calls },
		{ "a cancel before or during the start", test_cancel_start },
		{ "a receiver cancelled mid-transfer tells the sender",
		  test_receiver_cancel_told },
		{ "one memory for two regions from region_cb is refused",
		  test_region_cb_same_memory },
		{ "receiver policy bounds what a sender proposes",
		  test_receiver_policy },
		{ NULL, NULL },
	};

	return run_tests("e2e", tests, 500);
}
