/* SPDX-License-Identifier: MIT */
/*
 * test-blob.c - blobs (named byte streams beside the pages): several of
 * 0 B, 1 B and 64 MiB across rounds, with every method and with
 * checksums, each delivered once, whole, in the order sent, at the end of
 * its round (the memory then reads as that round left it, also while the
 * sender already sends the next one); and what fails the session: a
 * receiver without a blob callback, a blob over the receiver's bound, a
 * callback that refuses, bad arguments. Hostile pieces are in
 * test-hostile.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "blob.h"
#include "common.h"
#include "pair.h"

#define LEN (4u << 20)
#define PS 4096u
#define BIG (64u << 20)
#define MAX_SEEN 16

/* What the receiver's callback saw. */
struct seen {
	unsigned n;
	char name[MAX_SEEN][64];
	uint64_t len[MAX_SEEN];
	uint64_t sum[MAX_SEEN];
	bool memory_ok[MAX_SEEN]; /* the region held its round's pattern */
	const uint8_t *dst;
	uint8_t pattern;    /* the byte every page holds at this round's end */
	unsigned linger_ms; /* sleep in the callback: the next round is
			       on the wire meanwhile */
	int refuse;
};

static uint64_t sum_of(const uint8_t *p, uint64_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (uint64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static bool region_is(const uint8_t *p, uint8_t v)
{
	for (size_t i = 0; i < LEN; i++)
		if (p[i] != v)
			return false;
	return true;
}

static int on_blob(void *opaque, const char *name, const void *data,
		   uint64_t len)
{
	struct seen *sn = opaque;
	unsigned i = sn->n;

	if (sn->refuse)
		return sn->refuse;
	if (i == MAX_SEEN)
		return -E2BIG;
	if (sn->linger_ms)
		nanosleep(&(struct timespec){ 0, sn->linger_ms * 1000000l },
			  NULL);
	snprintf(sn->name[i], sizeof(sn->name[i]), "%s", name);
	sn->len[i] = len;
	sn->sum[i] = sum_of(data, len);
	sn->memory_ok[i] = region_is(sn->dst, sn->pattern);
	sn->n++;
	/* the blobs of the next round come after pages set to pattern + 1 */
	if (!strncmp(name, "last", 4))
		sn->pattern++;
	return 0;
}

struct blob {
	const char *name;
	uint8_t *data;
	uint64_t len;
};

/*
 * Round 0: every page 0x10, blobs "empty", "one", a 64 MiB random one and
 * "last-0"; round 1: every page 0x11, blob "last-1"; then finish. The
 * callback of round 0 lingers so that round 1's pages are on the wire
 * while it runs, and checks that the memory is still round 0's.
 */
static void blobs_across_rounds(enum mfd_method m, bool checksum)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	static uint8_t one = 0x7f, last0[] = "round 0", last1[] = "round 1";
	uint8_t *big = malloc(BIG);
	struct blob want[] = { { "empty", NULL, 0 },
			       { "one", &one, 1 },
			       { "device/big state", big, BIG },
			       { "last-0", last0, sizeof(last0) },
			       { "last-1", last1, sizeof(last1) } };
	struct seen sn = { .dst = dst, .pattern = 0x10, .linger_ms = 200 };
	struct mfd_config cfg;
	struct mfd_stats st;
	struct pair p;
	uint64_t seed = 5;

	CU_ASSERT_FATAL(src && dst && big);
	fill_random(big, BIG, &seed);
	mfd_config_init(&cfg);
	cfg.channels = 4;
	cfg.method = m;
	cfg.checksum = checksum;
	cfg.timeout_ms = 10000;
	cfg.blob_cb = on_blob;
	cfg.blob_opaque = &sn;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	memset(src, 0x10, LEN);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(mfd_send_blob(p.tx, want[i].name, want[i].data,
					      want[i].len), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	memset(src, 0x11, LEN);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, want[4].name, want[4].data,
				      want[4].len), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);

	CU_ASSERT_EQUAL(sn.n, 5);
	for (unsigned i = 0; i < 5 && i < sn.n; i++) {
		CU_ASSERT_STRING_EQUAL(sn.name[i], want[i].name);
		CU_ASSERT_EQUAL(sn.len[i], want[i].len);
		CU_ASSERT_EQUAL(sn.sum[i], sum_of(want[i].data ? want[i].data
							       : &one,
						  want[i].len));
		CU_ASSERT(sn.memory_ok[i]);
	}
	CU_ASSERT(region_is(dst, 0x11));
	mfd_session_stats(p.tx, &st);
	CU_ASSERT_EQUAL(st.blobs, 5);
	CU_ASSERT_EQUAL(st.blob_bytes, 1 + BIG + sizeof(last0) + sizeof(last1));
	mfd_session_stats(p.rx, &st);
	CU_ASSERT_EQUAL(st.blobs, 5);
	CU_ASSERT_EQUAL(st.blob_bytes, 1 + BIG + sizeof(last0) + sizeof(last1));
	pair_free(&p);
	free(big);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_none(void)
{
	blobs_across_rounds(MFD_METHOD_NONE, false);
}

static void test_none_checksum(void)
{
	blobs_across_rounds(MFD_METHOD_NONE, true);
}

static void test_zlib(void)
{
	enum mfd_method m;

	if (mfd_method_parse("zlib", &m) == 0)
		blobs_across_rounds(m, false);
}

static void test_zstd_checksum(void)
{
	enum mfd_method m;

	if (mfd_method_parse("zstd", &m) == 0)
		blobs_across_rounds(m, true);
}

static bool has(const char *s, const char *word)
{
	if (strstr(s, word))
		return true;
	fprintf(stderr, "expected '%s' in: %s\n", word, s);
	return false;
}

/* One blob of len bytes to a receiver configured by rcfg: the session
 * fails on both ends, the receiver saying `word`. */
static void blob_fails(const struct mfd_config *rcfg, uint64_t len,
		       const char *word)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	uint8_t *data = calloc(1, len ? len : 1);
	struct mfd_config cfg;
	struct pair p;

	CU_ASSERT_FATAL(src && dst && data);
	CU_ASSERT_FATAL(rx_start(&p, rcfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	CU_ASSERT_FATAL(tx_start(&p, &cfg, src, LEN) == 0);
	/* a big blob's later pieces may already meet the receiver's
	 * failure; else the finish does */
	if (mfd_send_blob(p.tx, "state", data, len) == 0)
		CU_ASSERT_NOT_EQUAL(mfd_send_finish(p.tx), 0);
	CU_ASSERT_NOT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(has(mfd_session_error(p.rx), word));
	/* the sender hears the receiver's reason */
	CU_ASSERT(has(mfd_session_error(p.tx), word));
	pair_free(&p);
	free(data);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_receiver_takes_none(void)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	blob_fails(&cfg, 10, "takes no blobs");
}

static void test_over_the_bound(void)
{
	struct seen sn = { 0 };
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.blob_cb = on_blob;
	cfg.blob_opaque = &sn;
	cfg.max_blob_bytes = 1u << 20;
	blob_fails(&cfg, (1u << 20) + 1, "max_blob_bytes");
	CU_ASSERT_EQUAL(sn.n, 0);
}

static void test_callback_refuses(void)
{
	struct seen sn = { .refuse = -EINVAL };
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.blob_cb = on_blob;
	cfg.blob_opaque = &sn;
	blob_fails(&cfg, 100, "blob 'state'");
}

static void test_bad_arguments(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct seen sn = { .dst = dst, .pattern = 0 };
	char long_name[300];
	struct mfd_config cfg;
	struct pair p;

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	mfd_config_init(&cfg);
	cfg.timeout_ms = 5000;
	cfg.blob_cb = on_blob;
	cfg.blob_opaque = &sn;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, "", "x", 1), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, NULL, "x", 1), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, "tab\there", "x", 1), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, long_name, "x", 1), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, "null", NULL, 1), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_blob(p.rx, "on the receiver", "x", 1),
			-EINVAL);
	/* none of that reached the wire: the session goes on */
	CU_ASSERT_EQUAL(mfd_send_blob(p.tx, "fine", "x", 1), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT_EQUAL(sn.n, 1);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_config_bound(void)
{
	struct mfd_config cfg;
	struct mfd_session *s;
	char err[200] = "";

	mfd_config_init(&cfg);
	CU_ASSERT_EQUAL(cfg.max_blob_bytes, 256u << 20);
	cfg.uri = "tcp:127.0.0.1:0";
	cfg.max_blob_bytes = (1ull << 40) + 1;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_RECV, &s, err,
					sizeof(err)),
			-EINVAL);
	CU_ASSERT(has(err, "max_blob_bytes"));
}

/* Claim piece `off` of blob id (total bytes) in round r and fill it. */
static int piece(struct mfd_blobs *b, uint32_t id, uint64_t total,
		 uint64_t off, uint32_t r, bool again)
{
	struct mfd_blob_desc d = { .total = total, .offset = off,
				   .name_len = 1, .name = "b" };
	struct mfd_blob *bl = NULL;
	char err[300];
	int k = mfd__blob_claim(b, id, r, &d, PS, PS, 1u << 20, again, &bl,
				err, sizeof(err));

	if (k == 0)
		mfd__blob_piece_done(bl, off, PS);
	return k;
}

/*
 * The store after a lost channel (failover): blob 0 misses a piece at
 * the barrier of round 3, blob 1 is whole; both wait (in order), move
 * on to round 4 and are delivered there once blob 0's piece came again.
 * Two copies of one piece count once; a piece of a delivered blob is
 * dropped (1).
 */
static void test_store_after_a_loss(void)
{
	struct mfd_blobs b = { 0 };
	struct mfd_blob *list = NULL;
	char err[300];

	CU_ASSERT_EQUAL(piece(&b, 0, 2 * PS, 0, 3, false), 0);
	CU_ASSERT_EQUAL(piece(&b, 1, PS, 0, 3, false), 0);
	CU_ASSERT_EQUAL(mfd__blobs_take(&b, 3, true, &list, err, sizeof(err)),
			0);
	CU_ASSERT(list == NULL);
	CU_ASSERT_EQUAL(mfd__blobs_take(&b, 4, false, &list, err,
					sizeof(err)),
			-EBADMSG); /* blob 0 is still short of a piece */
	CU_ASSERT_EQUAL(piece(&b, 0, 2 * PS, PS, 4, true), 0);
	CU_ASSERT_EQUAL(piece(&b, 0, 2 * PS, PS, 4, true), 0); /* twice */
	CU_ASSERT_EQUAL(mfd__blobs_take(&b, 4, false, &list, err,
					sizeof(err)),
			0);
	CU_ASSERT(list && list->id == 0 && list->done == 2 && list->next &&
		  list->next->id == 1 && !list->next->next);
	while (list) {
		struct mfd_blob *bl = list;

		list = bl->next;
		mfd__blob_free(bl);
	}
	CU_ASSERT_EQUAL(piece(&b, 1, PS, 0, 5, true), 1);
	CU_ASSERT_EQUAL(piece(&b, 1, PS, 0, 5, false), -EBADMSG);
	{
		/* two copies claimed before either is in place: blob 2's
		 * other piece is still missing, so it is not whole */
		struct mfd_blob_desc d = { .total = 2 * PS, .name_len = 1,
					   .name = "b" };
		struct mfd_blob *x = NULL, *y = NULL;

		CU_ASSERT_EQUAL(mfd__blob_claim(&b, 2, 6, &d, PS, PS, 1u << 20,
						true, &x, err, sizeof(err)),
				0);
		CU_ASSERT_EQUAL(mfd__blob_claim(&b, 2, 6, &d, PS, PS, 1u << 20,
						true, &y, err, sizeof(err)),
				0);
		mfd__blob_piece_done(x, 0, PS);
		mfd__blob_piece_done(y, 0, PS);
		CU_ASSERT(x && x->done == 1);
		CU_ASSERT_EQUAL(mfd__blobs_take(&b, 6, false, &list, err,
						sizeof(err)),
				-EBADMSG);
	}
	CU_ASSERT_EQUAL(b.held, 1);
	CU_ASSERT_EQUAL(b.held_bytes, 2 * PS);
	mfd__blobs_free(&b);
}

int main(void)
{
	static const struct test tests[] = {
		{ "0 B, 1 B, 64 MiB across rounds, none", test_none },
		{ "the same with checksums", test_none_checksum },
		{ "the same with zlib", test_zlib },
		{ "the same with zstd and checksums", test_zstd_checksum },
		{ "a receiver without a blob callback", test_receiver_takes_none },
		{ "a blob over the receiver's bound", test_over_the_bound },
		{ "a callback that refuses", test_callback_refuses },
		{ "bad arguments", test_bad_arguments },
		{ "max_blob_bytes bounded", test_config_bound },
		{ "the store after a lost channel", test_store_after_a_loss },
		{ NULL, NULL },
	};

	return run_tests("blob", tests, 240);
}
