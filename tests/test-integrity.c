/* SPDX-License-Identifier: MIT */
/*
 * test-integrity.c - authentication (HMAC-SHA256 challenge-response both
 * ways), per-packet checksums and end-of-session region digests: each
 * works when both ends agree, and each refusal says why.
 */
#include "config.h"

#include <errno.h>

#include "common.h"
#include "integrity.h"
#include "pair.h"

#define LEN (4u << 20)

static const char key[] = "0123456789abcdef-the-secret";
static const char other[] = "fedcba9876543210-not-the-one";

static void fill_page(uint8_t *page, uint32_t ps, uint64_t *st)
{
	fill_random(page, ps, st);
}

static void test_auth_works(void)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.secret = key;
	cfg.secret_len = sizeof(key);
	cfg.channels = 4;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", LEN, 3,
				     fill_page, NULL), 0);
}

/* One receiver config, one sender config: the sender's start must fail
 * with `word`, and a good sender must still get through afterwards. */
static void refused_then_good(const struct mfd_config *rcfg,
			      const struct mfd_config *bad, const char *word)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_stats st;
	struct pair p;
	uint64_t seed = 5;

	fill_random(src, LEN, &seed);
	CU_ASSERT_FATAL(rx_start(&p, rcfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	CU_ASSERT(tx_start(&p, bad, src, LEN) < 0);
	if (!strstr(mfd_session_error(p.tx), word)) {
		fprintf(stderr, "'%s' should say '%s'\n",
			mfd_session_error(p.tx), word);
		CU_FAIL("refusal message");
	}

	/* the session goes on with a sender that has it right */
	CU_ASSERT_EQUAL(tx_start(&p, rcfg, src, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	mfd_session_stats(p.rx, &st);
	CU_ASSERT(st.rejected_connections >= 1);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_wrong_secret(void)
{
	struct mfd_config r, b;

	mfd_config_init(&r);
	r.secret = key;
	r.secret_len = sizeof(key);
	r.timeout_ms = 5000;
	b = r;
	b.secret = other;
	b.secret_len = sizeof(other);
	refused_then_good(&r, &b, "does not know the secret");
}

static void test_secret_missing_on_sender(void)
{
	struct mfd_config r, b;

	mfd_config_init(&r);
	r.secret = key;
	r.secret_len = sizeof(key);
	b = r;
	b.secret = NULL;
	b.secret_len = 0;
	refused_then_good(&r, &b, "authentication required");
}

static void test_secret_missing_on_receiver(void)
{
	struct mfd_config r, b;

	mfd_config_init(&r);
	b = r;
	b.secret = key;
	b.secret_len = sizeof(key);
	refused_then_good(&r, &b, "receiver has no secret");
}

static void test_short_secret(void)
{
	struct mfd_config cfg;
	struct mfd_session *s = NULL;
	char err[200] = "";

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.secret = "short";
	cfg.secret_len = 5;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "at least 16"));
}

static void test_checksum_works(void)
{
	static const enum mfd_method methods[] = { MFD_METHOD_NONE,
						   MFD_METHOD_ZLIB,
						   MFD_METHOD_ZSTD };

	for (int m = 0; m < 3; m++) {
		struct mfd_config cfg;

		mfd_config_init(&cfg);
		cfg.checksum = true;
		cfg.method = methods[m];
		if (!mfd_method_name(cfg.method) ||
		    mfd_method_parse(mfd_method_name(cfg.method), &cfg.method))
			continue;
		CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", LEN, 3,
					     fill_page, NULL), 0);
	}
}

/* A hand-made sender that negotiated checksums sends a packet whose
 * checksum does not match. */
static void test_checksum_mismatch(void)
{
	uint8_t *dst = guarded_alloc(LEN);
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 7, .channels = 1,
			       .page_size = 4096, .pages_per_packet = 128,
			       .features = MFD_FEAT_CHECKSUM,
			       .region_count = 1 };
	uint8_t buf[MFD_INIT_SIZE + 32], ack[MFD_ACK_SIZE];
	struct mfd_hdr h = { .type = MFD_PKT_PAGES, .packet_num = 12,
			     .normal = 1, .payload_len = 4096,
			     .checksum = 0x1234 };
	static uint8_t page[4096];
	uint64_t off[1] = { 8192 };
	struct mfd_config cfg;
	struct mfd_conn *c;
	struct mfd_uri u;
	struct pair p;
	char err[200];
	int n;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 3000;
	CU_ASSERT_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, LEN) == 0);
	mfd__uri_parse(mfd_session_uri(p.rx), &u, err, sizeof(err));
	CU_ASSERT_FATAL(mfd__tcp_ops.connect(&u, 2000, &c, err,
					     sizeof(err)) == 0);
	mfd__tp_set_timeout(c, 5000);
	mfd__init_encode(&in, buf);
	n = mfd__region_encode("ram", LEN, buf + MFD_INIT_SIZE, 32);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, buf, MFD_INIT_SIZE + (size_t)n),
			0);
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, ack, sizeof(ack)), 0);
	memset(page, 0x33, sizeof(page));
	raw_send_pages(c, &h, off);
	mfd__tp_send_buf(c, page, sizeof(page));
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "channel 0: packet 12: checksum "
				      "mismatch"));
	/* nothing outside the declared page */
	CU_ASSERT(all_zero(dst, 8192));
	CU_ASSERT(all_zero(dst + 12288, LEN - 12288));
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(dst, LEN);
}

static void test_verify_identical(void)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.verify = true;
	cfg.checksum = true;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", LEN, 2,
				     fill_page, NULL), 0);
}

/* Half the region never sent: the digests differ and both ends say so. */
static void test_verify_differs(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	uint64_t seed = 11, off[LEN / 2 / 4096];
	struct mfd_config cfg;
	struct pair p;

	fill_random(src, LEN, &seed);
	mfd_config_init(&cfg);
	cfg.verify = true;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	for (size_t i = 0; i < LEN / 2 / 4096; i++)
		off[i] = i * 4096;
	CU_ASSERT_EQUAL(mfd_send_pages(p.tx, p.region, off, LEN / 2 / 4096),
			0);
	CU_ASSERT(mfd_send_finish(p.tx) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "region 'ram' differs"));
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "region 'ram' differs"));
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_proof_binds_everything(void)
{
	uint8_t init[MFD_INIT_SIZE] = { 1 }, ns[MFD_NONCE_SIZE] = { 2 },
		nr[MFD_NONCE_SIZE] = { 3 }, a[MFD_MAC_SIZE], b[MFD_MAC_SIZE];

	CU_ASSERT_EQUAL(mfd__auth_proof(key, 16, 'S', init, ns, nr, a), 0);
	CU_ASSERT_EQUAL(mfd__auth_proof(key, 16, 'S', init, ns, nr, b), 0);
	CU_ASSERT(mfd__auth_equal(a, b));
	CU_ASSERT_EQUAL(mfd__auth_proof(key, 16, 'R', init, ns, nr, b), 0);
	CU_ASSERT(!mfd__auth_equal(a, b)); /* roles differ */
	nr[5] ^= 1;
	CU_ASSERT_EQUAL(mfd__auth_proof(key, 16, 'S', init, ns, nr, b), 0);
	CU_ASSERT(!mfd__auth_equal(a, b)); /* a fresh nonce, a new proof */
	nr[5] ^= 1;
	init[20] ^= 1;
	CU_ASSERT_EQUAL(mfd__auth_proof(key, 16, 'S', init, ns, nr, b), 0);
	CU_ASSERT(!mfd__auth_equal(a, b)); /* the init is bound */
}

int main(void)
{
	static const struct test tests[] = {
		{ "authenticated transfer", test_auth_works },
		{ "wrong secret refused, session goes on", test_wrong_secret },
		{ "sender without a secret refused",
		  test_secret_missing_on_sender },
		{ "receiver without a secret refuses",
		  test_secret_missing_on_receiver },
		{ "short secret", test_short_secret },
		{ "proof binds role, nonces and init",
		  test_proof_binds_everything },
		{ "checksummed transfers", test_checksum_works },
		{ "checksum mismatch", test_checksum_mismatch },
		{ "verify: identical", test_verify_identical },
		{ "verify: regions differ", test_verify_differs },
		{ NULL, NULL },
	};

	return run_tests("integrity", tests, 200);
}
