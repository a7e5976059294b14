/* SPDX-License-Identifier: MIT */
/*
 * test-compress.c - methods zlib and zstd: round trips of every content
 * kind with 1 and 4 channels over several rounds; raw packets for pages
 * that do not shrink; and the receiver's refusals (more or fewer bytes
 * than declared, truncated, corrupted, trailing bytes) with nothing
 * written outside the declared pages.
 */
#include "config.h"

#include <errno.h>

#include "common.h"
#include "entropy.h"
#include "method.h"
#include "pair.h"
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

static void fill_rand(uint8_t *p, uint32_t ps, uint64_t *st)
{
	fill_random(p, ps, st);
}

static void fill_text(uint8_t *p, uint32_t ps, uint64_t *st)
{
	static const char *w[] = { "page ", "round ", "sync ", "zero ",
				   "memory\n" };

	for (uint32_t i = 0; i < ps; i++)
		p[i] = (uint8_t)w[test_rng(st) % 5][i % 5];
}

static void fill_zero(uint8_t *p, uint32_t ps, uint64_t *st)
{
	(void)st;
	memset(p, 0, ps);
}

static void fill_mixed(uint8_t *p, uint32_t ps, uint64_t *st)
{
	switch (test_rng(st) % 3) {
	case 0:
		fill_rand(p, ps, st);
		break;
	case 1:
		fill_text(p, ps, st);
		break;
	default:
		memset(p, (int)(test_rng(st) & 0xff), ps);
	}
}

static const unsigned methods[] = {
#ifdef HAVE_ZLIB
	MFD_METHOD_ZLIB,
#endif
#ifdef HAVE_ZSTD
	MFD_METHOD_ZSTD,
#endif
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static void test_round_trips(void)
{
	static const page_fill_fn fills[] = { fill_rand, fill_text, fill_zero,
					      fill_mixed };
	static const unsigned channels[] = { 1, 4 };

	for (size_t m = 0; m < NMETHODS; m++)
		for (size_t f = 0; f < 4; f++)
			for (size_t c = 0; c < 2; c++) {
				struct mfd_config cfg;
				struct mfd_stats st;
				int r;

				mfd_config_init(&cfg);
				cfg.method = methods[m];
				cfg.channels = channels[c];
				r = run_transfer(&cfg, "tcp:127.0.0.1:0",
						 8 << 20, 3, fills[f], &st);
				if (r)
					fprintf(stderr, "method %u fill %zu "
						"channels %u: %d\n",
						methods[m], f, channels[c], r);
				CU_ASSERT_EQUAL(r, 0);
				/* random pages do not shrink: raw */
				if (f == 0)
					CU_ASSERT(st.raw_packets > 0);
				if (f == 1)
					CU_ASSERT(st.bytes * 2 <
						  st.payload_bytes);
			}
}

/* Unit rig: compress `n` pages of src with the method's own send side,
 * then hand the payload to its receive side for `declared` pages at
 * page 1.. of a guarded 8-page region. */
struct unit {
	const struct mfd_method_ops *ops;
	struct mfd_mctx tx, rx;
	uint64_t off[8];
	uint8_t wire[MFD_HDR_SIZE + 64];
	struct iovec iov[10];
	struct mfd_region src, dst;
	struct mfd_packet p;
	uint8_t payload[8 * 4096];
	uint32_t plen;
};

static int unit_setup(struct unit *u, unsigned method)
{
	uint64_t seed = 9;

	memset(u, 0, sizeof(*u));
	u->ops = mfd__method_get(method);
	u->tx = (struct mfd_mctx){ .method = (uint8_t)method, .level = 1,
				   .page_size = 4096, .pages_per_packet = 8 };
	u->rx = u->tx;
	u->src.mem = guarded_alloc(8 * 4096);
	u->dst.mem = guarded_alloc(8 * 4096);
	u->src.length = u->dst.length = 8 * 4096;
	if (!u->src.mem || !u->dst.mem)
		return -1;
	for (int i = 0; i < 8; i++)
		fill_text(u->src.mem + i * 4096, 4096, &seed);
	if (u->ops->send_setup(&u->tx) || u->ops->recv_setup(&u->rx))
		return -1;
	return 0;
}

/* Compress pages 1..n of src into u->payload. */
static void unit_compress(struct unit *u, uint32_t n)
{
	struct mfd_packet p = { .offsets = u->off, .wire = u->wire,
				.iov = u->iov, .region = &u->src };

	for (uint32_t i = 0; i < n; i++)
		u->off[i] = (i + 1) * 4096;
	p.hdr = (struct mfd_hdr){ .type = MFD_PKT_PAGES, .normal = n };
	CU_ASSERT_EQUAL_FATAL(u->ops->send_prepare(&u->tx, &p), 0);
	CU_ASSERT_FATAL(!(p.hdr.flags & MFD_FLAG_RAW));
	CU_ASSERT_EQUAL_FATAL(p.niov, 2);
	memcpy(u->payload, u->iov[1].iov_base, u->iov[1].iov_len);
	u->plen = (uint32_t)u->iov[1].iov_len;
}

/* Receive u->payload (plen bytes) as `declared` pages at page 1.. */
static int unit_receive(struct unit *u, uint32_t declared, uint32_t plen)
{
	struct mfd_packet p = { .offsets = u->off, .wire = u->wire,
				.iov = u->iov, .region = &u->dst };
	int r;

	for (uint32_t i = 0; i < declared; i++)
		u->off[i] = (i + 1) * 4096;
	p.hdr = (struct mfd_hdr){ .type = MFD_PKT_PAGES, .normal = declared,
				  .payload_len = plen };
	r = u->ops->recv_prepare(&u->rx, &p);
	if (r)
		return r;
	CU_ASSERT_EQUAL_FATAL(p.niov, 1);
	memcpy(p.iov[0].iov_base, u->payload, plen);
	return u->ops->recv_finish(&u->rx, &p);
}

static void unit_down(struct unit *u)
{
	u->ops->send_cleanup(&u->tx);
	u->ops->recv_cleanup(&u->rx);
	/* cleanups are idempotent */
	u->ops->send_cleanup(&u->tx);
	u->ops->recv_cleanup(&u->rx);
	guarded_free(u->src.mem, 8 * 4096);
	guarded_free(u->dst.mem, 8 * 4096);
}

static void expect_refused(struct unit *u, uint32_t declared, uint32_t plen,
			   const char *word)
{
	memset(u->dst.mem, 0, 8 * 4096);
	CU_ASSERT_EQUAL(unit_receive(u, declared, plen), -EBADMSG);
	if (!strstr(u->rx.err, word)) {
		fprintf(stderr, "'%s' should say '%s'\n", u->rx.err, word);
		CU_FAIL("error message");
	}
	/* page 0 and every page after the declared ones stay untouched */
	CU_ASSERT(all_zero(u->dst.mem, 4096));
	CU_ASSERT(all_zero(u->dst.mem + (declared + 1) * 4096,
			   (7 - declared) * 4096));
}

static void test_refusals(void)
{
	for (size_t m = 0; m < NMETHODS; m++) {
		struct unit u;

		CU_ASSERT_FATAL(unit_setup(&u, methods[m]) == 0);
		/* the honest case lands exactly */
		unit_compress(&u, 3);
		CU_ASSERT_EQUAL(unit_receive(&u, 3, u.plen), 0);
		CU_ASSERT(memcmp(u.dst.mem + 4096, u.src.mem + 4096,
				 3 * 4096) == 0);
		/* 3 pages of data declared as 2: a bomb stops at 2 */
		expect_refused(&u, 2, u.plen, "does not end");
		/* 3 pages declared as 4 */
		expect_refused(&u, 4, u.plen, "fewer");
		/* truncated */
		expect_refused(&u, 3, u.plen - 6, "");
		/* trailing garbage */
		u.payload[u.plen] = 0x42;
		expect_refused(&u, 3, u.plen + 1, "");
		/* a corrupted byte in the middle */
		u.payload[u.plen / 2] ^= 0x5a;
		expect_refused(&u, 3, u.plen, "");
#ifdef HAVE_ZSTD
		/* a frame of 3 pages whose header claims 2, sent as 2: a
		 * single segment frame, its content size in 2 bytes (the
		 * size less 256) after the magic and the descriptor */
		if (methods[m] == MFD_METHOD_ZSTD) {
			size_t n = ZSTD_compress(u.payload, sizeof(u.payload),
						 u.src.mem + 4096, 3 * 4096, 1);

			CU_ASSERT_FATAL(!ZSTD_isError(n));
			CU_ASSERT_FATAL((u.payload[4] & 0xe0) == 0x60);
			u.payload[5] = (2 * 4096 - 256) & 0xff;
			u.payload[6] = (2 * 4096 - 256) >> 8;
			expect_refused(&u, 2, (uint32_t)n, "more bytes than 2");
		}
#endif
		unit_down(&u);
	}
}

static void test_levels(void)
{
	struct mfd_config cfg;
	struct mfd_session *s = NULL;
	char err[200] = "";

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.method = MFD_METHOD_ZLIB;
	cfg.level = 10;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "level 10"));
	cfg.method = MFD_METHOD_ZSTD;
	cfg.level = 20;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	cfg.level = -5; /* zstd's fast levels are fine */
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), 0);
	mfd_session_free(s);
	cfg.level = -5;
	cfg.method = MFD_METHOD_ZLIB;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
}

/* A corrupted compressed payload over the network ends the session with
 * the channel and packet named, and no write outside declared pages. */
static void test_corrupt_over_network(void)
{
	enum { LEN = 1 << 20 };
	for (size_t m = 0; m < NMETHODS; m++) {
		struct mfd_config cfg;
		struct pair p;
		struct unit u;
		uint8_t *dst = guarded_alloc(LEN);
		struct mfd_conn *c;
		int32_t status = -1;
		struct mfd_hdr h;
		uint64_t off[3] = { 4096, 8192, 12288 };

		CU_ASSERT_FATAL(unit_setup(&u, methods[m]) == 0);
		unit_compress(&u, 3);
		u.payload[u.plen / 2] ^= 0x5a;
		mfd_config_init(&cfg);
		cfg.timeout_ms = 2000;
		CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst,
					 LEN) == 0);
		c = raw_connect(mfd_session_uri(p.rx), 0, 1,
				(uint8_t)methods[m], LEN);
		CU_ASSERT_FATAL(c && !raw_ack(c, &status) && !status);
		h = (struct mfd_hdr){ .type = MFD_PKT_PAGES,
				      .method = (uint8_t)methods[m],
				      .packet_num = 41,
				      .normal = 3,
				      .payload_len = u.plen };
		raw_send_pages(c, &h, off);
		mfd__tp_send_buf(c, u.payload, u.plen);
		CU_ASSERT(pair_join_rx(&p) < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
					      "channel 0: packet 41"));
		CU_ASSERT(all_zero(dst, 4096));
		CU_ASSERT(all_zero(dst + 4 * 4096, LEN - 4 * 4096));
		mfd__tp_close(c);
		pair_free(&p);
		unit_down(&u);
		guarded_free(dst, LEN);
	}
}

/* Judge a packet of n pages made by fill (one page of fill_text every
 * text_every pages when text_every is not 0). */
static bool judge(void (*fill)(uint8_t *, uint32_t, uint64_t *), uint32_t n,
		  uint32_t text_every)
{
	static uint8_t buf[128 * 4096];
	struct iovec iov[2] = { { buf, (size_t)n / 2 * 4096 },
				{ buf + (size_t)n / 2 * 4096,
				  (size_t)(n - n / 2) * 4096 } };
	uint64_t seed = 5;

	for (uint32_t i = 0; i < n; i++)
		(text_every && i % text_every == 0 ? fill_text : fill)(
			buf + (size_t)i * 4096, 4096, &seed);
	return mfd__looks_incompressible(iov, 2, (size_t)n * 4096);
}

/* Bytes spread evenly over 200 values: 7.6 bits each, compressible. */
static void fill_biased(uint8_t *p, uint32_t ps, uint64_t *st)
{
	for (uint32_t i = 0; i < ps; i++)
		p[i] = (uint8_t)(test_rng(st) % 200);
}

static void test_incompressible(void)
{
	CU_ASSERT_TRUE(judge(fill_rand, 128, 0));
	CU_ASSERT_TRUE(judge(fill_rand, 16, 0));
	CU_ASSERT_FALSE(judge(fill_text, 128, 0));
	CU_ASSERT_FALSE(judge(fill_zero, 128, 0));
	CU_ASSERT_FALSE(judge(fill_mixed, 128, 0));
	CU_ASSERT_FALSE(judge(fill_biased, 128, 0));
	/* one text page in four is worth compressing the packet for */
	CU_ASSERT_FALSE(judge(fill_rand, 128, 4));
	/* too small a sample to judge: compress */
	CU_ASSERT_FALSE(judge(fill_rand, 2, 0));
}

/* Pages judged in place (no copy yet, a stable buffer given): random
 * ones go raw straight from the region, uncopied; compressible ones are
 * copied first and compressed from the copy. 16 pages: the least the
 * sample judges. */
#define INPLACE_PAGES 16
static void prepare_in_place(unsigned method, page_fill_fn fill, bool raw)
{
	const size_t len = INPLACE_PAGES * 4096;
	const struct mfd_method_ops *ops = mfd__method_get(method);
	struct mfd_mctx tx = { .method = (uint8_t)method, .level = 1,
			       .page_size = 4096,
			       .pages_per_packet = INPLACE_PAGES };
	uint8_t wire[MFD_HDR_SIZE + 8 * INPLACE_PAGES];
	uint64_t off[INPLACE_PAGES], seed = 5;
	struct iovec iov[INPLACE_PAGES + 2];
	struct mfd_region src = { .mem = guarded_alloc(len), .length = len };
	uint8_t *stable = malloc(len);
	struct mfd_packet p = { .offsets = off, .wire = wire, .iov = iov,
				.region = &src, .stable = stable };

	CU_ASSERT_FATAL(src.mem && stable && !ops->send_setup(&tx));
	for (int i = 0; i < INPLACE_PAGES; i++) {
		fill(src.mem + i * 4096, 4096, &seed);
		off[i] = (uint64_t)i * 4096;
	}
	memset(stable, 0xee, len);
	p.hdr = (struct mfd_hdr){ .type = MFD_PKT_PAGES,
				  .normal = INPLACE_PAGES };
	CU_ASSERT_EQUAL_FATAL(ops->send_prepare(&tx, &p), 0);
	if (raw) {
		CU_ASSERT(p.hdr.flags & MFD_FLAG_RAW);
		CU_ASSERT_PTR_NULL(p.copy);
		CU_ASSERT_EQUAL(p.niov, 2);
		CU_ASSERT_PTR_EQUAL(p.iov[1].iov_base, src.mem);
		CU_ASSERT_EQUAL(p.iov[1].iov_len, len);
		CU_ASSERT(stable[0] == 0xee && stable[len - 1] == 0xee);
	} else {
		CU_ASSERT(!(p.hdr.flags & MFD_FLAG_RAW));
		CU_ASSERT_PTR_EQUAL(p.copy, stable);
		CU_ASSERT(!memcmp(stable, src.mem, len));
		CU_ASSERT(p.hdr.payload_len < len);
	}
	ops->send_cleanup(&tx);
	guarded_free(src.mem, len);
	free(stable);
}

static void test_copy_only_what_compresses(void)
{
	for (unsigned mi = 0; mi < NMETHODS; mi++) {
		prepare_in_place(methods[mi], fill_rand, true);
		prepare_in_place(methods[mi], fill_text, false);
	}
}

int main(void)
{
	static const struct test tests[] = {
		{ "round trips", test_round_trips },
		{ "receiver refusals", test_refusals },
		{ "levels", test_levels },
		{ "incompressible packets told by a sample",
		  test_incompressible },
		{ "only what is compressed is copied",
		  test_copy_only_what_compresses },
		{ "corrupt payload over the network", test_corrupt_over_network },
		{ NULL, NULL },
	};

	return run_tests("compress", tests, 400);
}
