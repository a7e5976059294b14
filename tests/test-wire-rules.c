/* SPDX-License-Identifier: MIT */
/*
 * test-wire-rules.c - the rules of docs/protocol.md that an independent
 * implementation asked about, each as the receiver or the sender applies
 * it: a KEEPALIVE's round is 0; a VERIFY is of its channel's round and is
 * compared at END, when every page is in place, wherever in the round it
 * came; a refusal is followed by an orderly close, never a reset, even
 * with the peer's bytes unread; a FIN of another round is refused; an
 * ABORT ends the session with the sender's reason.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>

#include "common.h"
#include "integrity.h"
#include "pair.h"

#define LEN (64u << 10)

/* A raw channel 0 of 1 with `features`, accepted by a receiver with one
 * region "ram" of LEN bytes. */
static struct mfd_conn *raw_channel(struct pair *p, uint8_t *dst,
				    uint64_t features)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 77,
			       .channels = 1,
			       .page_size = 4096,
			       .pages_per_packet = 16,
			       .features = features,
			       .region_count = 1 };
	uint8_t buf[MFD_INIT_SIZE + 16];
	struct mfd_config cfg;
	struct mfd_conn *c;
	int32_t status = -1;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	if (rx_start(p, &cfg, "tcp:127.0.0.1:0", dst, LEN))
		return NULL;
	mfd__init_encode(&in, buf);
	mfd__region_encode("ram", LEN, buf + MFD_INIT_SIZE, 16);
	c = raw_connect_bytes(mfd_session_uri(p->rx), buf,
			      MFD_INIT_SIZE + 2 + 3 + 8);
	if (!c || raw_ack(c, &status) || status)
		return NULL;
	return c;
}

static int send_hdr(struct mfd_conn *c, uint8_t type, uint32_t round)
{
	struct mfd_hdr h = { .type = type, .round = round };
	uint8_t buf[MFD_HDR_SIZE];

	mfd__hdr_encode(&h, buf);
	return mfd__tp_send_buf(c, buf, sizeof(buf));
}

static void expect_rx_error(struct pair *p, const char *word)
{
	const char *e;

	CU_ASSERT(pair_join_rx(p) == -EPROTO);
	e = mfd_session_error(p->rx);
	if (!strstr(e, word))
		fprintf(stderr, "error '%s' should say '%s'\n", e, word);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, word));
}

static void test_keepalive_round(void)
{
	uint8_t *dst = guarded_alloc(LEN);
	struct pair p;
	struct mfd_conn *c = raw_channel(&p, dst, 0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_KEEPALIVE, 0), 0);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_KEEPALIVE, 3), 0);
	expect_rx_error(&p, "KEEPALIVE with round 3 (expected 0)");
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A STAGED page packet (the pages on the stream, as a one-sided
 * sender sends a checksummed copy) lands in the pages; the flag on a
 * compressed payload is refused. */
static void test_staged_pages(void)
{
	uint8_t *dst = guarded_alloc(LEN), *src = guarded_alloc(LEN);
	struct mfd_hdr h = { .type = MFD_PKT_PAGES, .flags = MFD_FLAG_STAGED,
			     .normal = 16, .payload_len = LEN };
	uint64_t off[16], st = 11;
	struct pair p;
	struct mfd_conn *c = raw_channel(&p, dst, 0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	fill_random(src, LEN, &st);
	for (int i = 0; i < 16; i++)
		off[i] = (uint64_t)(15 - i) * 4096; /* any order */
	CU_ASSERT_EQUAL(raw_send_pages(c, &h, off), 0);
	for (int i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(mfd__tp_send_buf(c, src + off[i], 4096), 0);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_SYNC, 0), 0);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_END, 1), 0);
	CU_ASSERT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
	guarded_free(src, LEN);
}

static void test_staged_compressed_refused(void)
{
	struct mfd_limits lim = { .method = MFD_METHOD_ZSTD, .page_size = 4096,
				  .pages_per_packet = 16, .region_count = 1 };
	struct mfd_hdr h = { .type = MFD_PKT_PAGES, .method = MFD_METHOD_ZSTD,
			     .flags = MFD_FLAG_STAGED, .normal = 2,
			     .payload_len = 100 }, out;
	uint8_t buf[MFD_HDR_SIZE];
	char err[200] = "";

	mfd__hdr_encode(&h, buf);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "staged flag on a compressed"));
	/* RAW and STAGED: the pages as they are */
	h.flags |= MFD_FLAG_RAW;
	h.payload_len = 2 * 4096;
	mfd__hdr_encode(&h, buf);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)), 0);
}

/* An ABORT ends the session with the sender's reason, escaped. */
static void test_abort(void)
{
	static const char why[] = "disk gone\x1b[2J";
	struct mfd_hdr h = { .type = MFD_PKT_ABORT,
			     .payload_len = sizeof(why) - 1 };
	uint8_t *dst = guarded_alloc(LEN), buf[MFD_HDR_SIZE + sizeof(why)];
	struct pair p;
	struct mfd_conn *c = raw_channel(&p, dst, 0);
	const char *e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	mfd__hdr_encode(&h, buf);
	memcpy(buf + MFD_HDR_SIZE, why, sizeof(why) - 1);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, buf, MFD_HDR_SIZE + sizeof(why) - 1),
			0);
	CU_ASSERT_EQUAL(pair_join_rx(&p), -ECANCELED);
	e = mfd_session_error(p.rx);
	if (!strstr(e, "the sender failed: disk gone\\x1b[2J"))
		fprintf(stderr, "error '%s'\n", e);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "the sender failed: disk gone\\x1b[2J"));
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

static int send_verify(struct mfd_conn *c, uint32_t round, uint64_t digest)
{
	struct mfd_hdr h = { .type = MFD_PKT_VERIFY, .round = round,
			     .payload_len = 8 };
	uint8_t buf[MFD_HDR_SIZE + 8];

	mfd__hdr_encode(&h, buf);
	mfd__offsets_encode(&digest, 1, buf + MFD_HDR_SIZE);
	return mfd__tp_send_buf(c, buf, sizeof(buf));
}

static void test_verify_round(void)
{
	uint8_t *dst = guarded_alloc(LEN);
	struct pair p;
	struct mfd_conn *c = raw_channel(&p, dst, MFD_FEAT_VERIFY);

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(send_verify(c, 9, 0), 0);
	expect_rx_error(&p, "VERIFY for round 9 (the channel is in round 0)");
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* The digests of the final content, sent before the pages: the receiver
 * compares at END, so the session succeeds. */
static void test_verify_compared_at_end(void)
{
	uint8_t *dst = guarded_alloc(LEN), *src = guarded_alloc(LEN);
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_hdr h = { .type = MFD_PKT_PAGES, .normal = 16,
			     .payload_len = LEN };
	struct mfd_limits lim = { 0 };
	uint64_t off[16];
	struct pair p;
	struct mfd_conn *c = raw_channel(&p, dst, MFD_FEAT_VERIFY);
	uint64_t st = 5;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	fill_random(src, LEN, &st);
	for (int i = 0; i < 16; i++)
		off[i] = (uint64_t)i * 4096;
	CU_ASSERT_EQUAL(send_verify(c, 0, mfd__region_digest(src, LEN)), 0);
	CU_ASSERT_EQUAL(raw_send_pages(c, &h, off), 0);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, src, LEN), 0);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_SYNC, 0), 0);
	CU_ASSERT_EQUAL(send_hdr(c, MFD_PKT_END, 1), 0);
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &h, NULL, 0), 0);
	CU_ASSERT_EQUAL(h.type, MFD_PKT_FIN);
	CU_ASSERT_EQUAL(h.payload_len, 0); /* no "differs" message */
	CU_ASSERT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
	guarded_free(src, LEN);
}

/* An init the receiver refuses, followed by 64 KiB it never reads: the
 * refusal arrives, then an orderly end of stream, not a reset. */
static void test_refusal_then_orderly_close(void)
{
	static uint8_t buf[MFD_INIT_SIZE + (64u << 10)];
	struct mfd_init in = { .version = 2, .channels = 1 };
	uint8_t *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct pair p;
	int32_t status = 0;
	char msg[256], more[1];

	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__init_encode(&in, buf);
	buf[5] = 2; /* version 2: refused right after the 48 bytes */
	c = raw_connect_bytes(mfd_session_uri(p.rx), buf, sizeof(buf));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(raw_ack_msg(c, &status, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(status, -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "version"));
	/* -EPIPE: the peer closed; a reset would be -ECONNRESET */
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, more, 1), -EPIPE);
	mfd__tp_close(c);
	mfd_session_cancel(p.rx);
	pair_join_rx(&p);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A "receiver" that accepts, then answers END with a FIN of round 5. */
static void test_fin_of_another_round(void)
{
	struct mfd_hdr fin = { .type = MFD_PKT_FIN, .round = 5 };
	struct mfd_ack ok = { 0 };
	uint8_t *src = guarded_alloc(LEN), reply[MFD_ACK_SIZE + MFD_HDR_SIZE];
	struct liar lr = { .skip = MFD_INIT_SIZE + 2 + 3 + 8, .reply = reply,
			   .reply_len = sizeof(reply), .hold_ms = 500 };
	struct mfd_session *tx;
	struct mfd_config cfg;
	int r;

	mfd__ack_encode(&ok, reply);
	mfd__hdr_encode(&fin, reply + MFD_ACK_SIZE);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	CU_ASSERT_FATAL(liar_start(&lr) == 0);
	CU_ASSERT_FATAL(liar_sender(&lr, &cfg, src, LEN, &tx) == 0);
	r = mfd_session_start(tx);
	if (!r)
		r = mfd_send_finish(tx);
	CU_ASSERT(r < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(tx),
				      "bad answer from the receiver: packet "
				      "type 4 round 5 instead of type 4 "
				      "round 1"));
	liar_stop(&lr);
	mfd_session_free(tx);
	guarded_free(src, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "a KEEPALIVE's round is 0", test_keepalive_round },
		{ "a VERIFY of another round", test_verify_round },
#ifdef HAVE_XXHASH
		{ "a VERIFY is compared at END", test_verify_compared_at_end },
#endif
		{ "a refusal, then an orderly close",
		  test_refusal_then_orderly_close },
		{ "a FIN of another round", test_fin_of_another_round },
		{ "an ABORT says why the sender failed", test_abort },
		{ "a STAGED page packet lands in the pages", test_staged_pages },
		{ "STAGED only for pages as they are",
		  test_staged_compressed_refused },
		{ NULL, NULL },
	};

	return run_tests("wire-rules", tests, 60);
}
