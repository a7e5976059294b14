/* SPDX-License-Identifier: MIT */
/*
 * test-peer-text.c - what a peer says reaches the operator escaped: a
 * region name or a refusal message holding ESC, newline or BEL is shown
 * as \xNN, never raw, so that no peer can forge log lines or drive the
 * terminal; and a stray is not told the session id it would need to claim
 * a channel.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>

#include "common.h"
#include "escape.h"
#include "pair.h"

#define LEN (1u << 20)

static char logged[4096];

static void log_line(void *opaque, const char *msg)
{
	(void)opaque;
	strncat(logged, msg, sizeof(logged) - strlen(logged) - 2);
	strcat(logged, "|");
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return true;
	return false;
}

static void test_escape(void)
{
	char out[64];

	CU_ASSERT_STRING_EQUAL(mfd__escape(out, sizeof(out), "a\x1b[1m\n\\", 7),
			       "a\\x1b[1m\\x0a\\x5c");
	/* cut short, and said so */
	mfd__escape(out, 8, "abcdefghijk", 11);
	CU_ASSERT_STRING_EQUAL(out, "abcd...");
	CU_ASSERT(mfd__region_name_ok("pc.ram 0", 8));
	CU_ASSERT(!mfd__region_name_ok("a\x07", 2));
	CU_ASSERT(!mfd__region_name_ok("\xc3\xa9", 2));
}

/* A sender announcing a region name with terminal controls is refused,
 * and neither the refusal nor the receiver's error holds them raw. */
static void test_hostile_region_name(void)
{
	static const char name[] = "ram\x1b[2J\nfake: ok\x07";
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 5,
			       .channels = 1,
			       .page_size = 4096,
			       .pages_per_packet = 128,
			       .region_count = 1 };
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	uint8_t *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct pair p;
	int32_t status = 0;
	char msg[512] = "";
	int n;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	cfg.log_cb = log_line;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__init_encode(&in, buf);
	n = mfd__region_encode(name, LEN, buf + MFD_INIT_SIZE,
			       sizeof(buf) - MFD_INIT_SIZE);
	c = raw_connect_bytes(mfd_session_uri(p.rx), buf,
			      MFD_INIT_SIZE + (size_t)n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(raw_ack_msg(c, &status, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(status, -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "ram\\x1b[2J\\x0afake: ok\\x07"));
	CU_ASSERT(!has_control(msg));
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT(!has_control(mfd_session_error(p.rx)));
	CU_ASSERT(!has_control(logged));
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A "receiver" that refuses with terminal controls in its message. */
static void test_hostile_refusal(void)
{
	static const char msg[] = "no\x1b]0;pwned\x07\nmultifd: sent ok";
	struct mfd_ack no = { .status = -EPERM, .msg_len = sizeof(msg) - 1 };
	uint8_t *src = guarded_alloc(LEN), reply[MFD_ACK_SIZE + sizeof(msg)];
	struct liar lr = { .skip = MFD_INIT_SIZE, .reply = reply,
			   .reply_len = MFD_ACK_SIZE + sizeof(msg) - 1,
			   .hold_ms = 200 };
	struct mfd_session *tx;
	struct mfd_config cfg;

	mfd__ack_encode(&no, reply);
	memcpy(reply + MFD_ACK_SIZE, msg, sizeof(msg) - 1);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 3000;
	CU_ASSERT_FATAL(liar_start(&lr) == 0);
	CU_ASSERT_FATAL(liar_sender(&lr, &cfg, src, LEN, &tx) == 0);
	CU_ASSERT(mfd_session_start(tx) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(tx),
				      "no\\x1b]0;pwned\\x07\\x0amultifd: sent ok"));
	CU_ASSERT(!has_control(mfd_session_error(tx)));
	liar_stop(&lr);
	mfd_session_free(tx);
	guarded_free(src, LEN);
}

/* A stray claiming channel 1 with another session id is refused without
 * being told the session's id; the receiver's own log names it. */
static void test_stray_not_told_session_id(void)
{
	uint8_t *dst = guarded_alloc(LEN), buf[MFD_INIT_SIZE];
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0xbad,
			       .channel = 1,
			       .channels = 2,
			       .page_size = 4096,
			       .pages_per_packet = 128 };
	struct mfd_config cfg;
	struct mfd_conn *c0, *c1;
	struct pair p;
	int32_t status = 0;
	char msg[256] = "";

	logged[0] = 0;
	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	cfg.log_cb = log_line;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	/* the real channel 0 (session id 0x1234), then the stray */
	c0 = raw_connect(mfd_session_uri(p.rx), 0, 2, 0, LEN);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c0);
	usleep(100 * 1000);
	mfd__init_encode(&in, buf);
	c1 = raw_connect_bytes(mfd_session_uri(p.rx), buf, sizeof(buf));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
	CU_ASSERT_EQUAL(raw_ack_msg(c1, &status, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(status, -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not this receiver's session"));
	CU_ASSERT_PTR_NULL(strstr(msg, "1234"));
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, "0000000000001234"));
	mfd__tp_close(c1);
	mfd__tp_close(c0);
	mfd_session_cancel(p.rx);
	pair_join_rx(&p);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A "receiver" that accepts, then announces a FIN with a 10-byte reason
 * and sends only 2 bytes of it. */
static void test_fin_reason_stalls(void)
{
	struct mfd_hdr fin = { .type = MFD_PKT_FIN, .payload_len = 10 };
	struct mfd_ack ok = { 0 };
	uint8_t *src = guarded_alloc(LEN), reply[MFD_ACK_SIZE + MFD_HDR_SIZE + 2];
	struct liar lr = { .skip = MFD_INIT_SIZE + 2 + 3 + 8, .reply = reply,
			   .reply_len = sizeof(reply), .hold_ms = 2500 };
	struct mfd_session *tx;
	struct mfd_config cfg;
	int r;

	mfd__ack_encode(&ok, reply);
	mfd__hdr_encode(&fin, reply + MFD_ACK_SIZE);
	memcpy(reply + MFD_ACK_SIZE + MFD_HDR_SIZE, "di", 2);
	memset(src, 7, LEN);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 1000;
	CU_ASSERT_FATAL(liar_start(&lr) == 0);
	CU_ASSERT_FATAL(liar_sender(&lr, &cfg, src, LEN, &tx) == 0);
	r = mfd_session_start(tx);
	if (!r)
		r = mfd_send_finish(tx); /* zero pages only: a few bytes */
	CU_ASSERT(r < 0);
	if (!strstr(mfd_session_error(tx), "reason did not arrive"))
		fprintf(stderr, "sender: %s\n", mfd_session_error(tx));
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(tx),
				      "its 10-byte reason did not arrive"));
	liar_stop(&lr);
	mfd_session_free(tx);
	guarded_free(src, LEN);
}

/* Two different secrets: both ends say so, not "peer closed". */
static void test_different_secrets(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	logged[0] = 0;
	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	cfg.log_cb = log_line;
	cfg.secret = "the receiver's secret";
	cfg.secret_len = 21;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	cfg.secret = "the sender's own secret";
	cfg.secret_len = 23;
	CU_ASSERT(tx_start(&p, &cfg, src, LEN) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "different secrets"));
	usleep(200 * 1000);
	if (!strstr(logged, "different secrets"))
		fprintf(stderr, "receiver logged: %s\n", logged);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, "different secrets"));
	mfd_session_cancel(p.rx);
	pair_join_rx(&p);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* Non-zero reserved bytes in a proof are named as such, not as a peer
 * that does not know the secret. */
static void test_proof_reserved_bytes(void)
{
	uint8_t *dst = guarded_alloc(LEN);
	uint8_t buf[MFD_INIT_SIZE + MFD_NONCE_SIZE], chal[MFD_CHAL_SIZE];
	uint8_t proof[MFD_PROOF_SIZE] = "MFDR\0\0\0\1";
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 5,
			       .channels = 1,
			       .page_size = 4096,
			       .pages_per_packet = 128,
			       .features = MFD_FEAT_AUTH,
			       .region_count = 1 };
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct pair p;
	int32_t status = 0;
	char msg[256] = "";

	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	cfg.secret = "a secret of some length";
	cfg.secret_len = 23;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__init_encode(&in, buf);
	memset(buf + MFD_INIT_SIZE, 1, MFD_NONCE_SIZE);
	c = raw_connect_bytes(mfd_session_uri(p.rx), buf, sizeof(buf));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, chal, sizeof(chal)), 0);
	CU_ASSERT(!memcmp(chal, "MFDC", 4));
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, proof, sizeof(proof)), 0);
	CU_ASSERT_EQUAL(raw_ack_msg(c, &status, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(status, -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "reserved bytes of the proof"));
	mfd__tp_close(c);
	mfd_session_cancel(p.rx);
	pair_join_rx(&p);
	pair_free(&p);
	guarded_free(dst, LEN);
}

/* A "receiver" whose challenge has non-zero reserved bytes. */
static void test_challenge_reserved_bytes(void)
{
	static const uint8_t chal[MFD_CHAL_SIZE] = "MFDC\0\1";
	uint8_t *src = guarded_alloc(LEN);
	struct liar lr = { .skip = MFD_INIT_SIZE + MFD_NONCE_SIZE,
			   .reply = chal, .reply_len = sizeof(chal),
			   .hold_ms = 200 };
	struct mfd_session *tx;
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 3000;
	cfg.secret = "a secret of some length";
	cfg.secret_len = 23;
	CU_ASSERT_FATAL(liar_start(&lr) == 0);
	CU_ASSERT_FATAL(liar_sender(&lr, &cfg, src, LEN, &tx) == 0);
	CU_ASSERT(mfd_session_start(tx) == -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(tx),
				      "reserved bytes of the authentication "
				      "challenge"));
	liar_stop(&lr);
	mfd_session_free(tx);
	guarded_free(src, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "escaping", test_escape },
		{ "a region name with terminal controls",
		  test_hostile_region_name },
		{ "a refusal with terminal controls", test_hostile_refusal },
		{ "a stray is not told the session id",
		  test_stray_not_told_session_id },
		{ "a FIN whose reason stalls", test_fin_reason_stalls },
		{ "different secrets, said on both ends",
		  test_different_secrets },
		{ "reserved bytes of a proof", test_proof_reserved_bytes },
		{ "reserved bytes of a challenge",
		  test_challenge_reserved_bytes },
		{ NULL, NULL },
	};

	return run_tests("peer-text", tests, 60);
}
