/* SPDX-License-Identifier: MIT */
/*
 * test-zerocopy.c - MSG_ZEROCOPY sends: correct bytes over many rounds
 * (on loopback the kernel copies, and the statistics must say so), many
 * packets in flight, a page rewritten right after a sync, and ENOBUFS
 * forced by fault injection still ending with the right bytes.
 */
#include "config.h"

#include <errno.h>

#include "common.h"
#include "fault.h"
#include "pair.h"

static void fill_page(uint8_t *page, uint32_t ps, uint64_t *st)
{
	fill_random(page, ps, st);
}

static void zc_config(struct mfd_config *cfg, unsigned channels)
{
	mfd_config_init(cfg);
	cfg->zero_copy = true;
	cfg->channels = channels;
	cfg->timeout_ms = 20000;
}

static void test_big_transfer(void)
{
	struct mfd_config cfg;
	struct mfd_stats st;

	zc_config(&cfg, 2);
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 256 << 20, 4,
				     fill_page, &st), 0);
	CU_ASSERT(st.zerocopy_sends > 0);
	/* loopback delivers to a local socket: the kernel had to copy */
	CU_ASSERT(st.zerocopy_copied > 0);
	CU_ASSERT_EQUAL(st.zerocopy_fallbacks, 0);
}

static void test_many_in_flight(void)
{
	struct mfd_config cfg;

	zc_config(&cfg, 8);
	cfg.pages_per_packet = 3;
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 32 << 20, 3,
				     fill_page, NULL), 0);
}

static void test_rewrite_after_sync(void)
{
	enum { LEN = 4 << 20 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;
	uint64_t seed = 3;

	fill_random(src, LEN, &seed);
	zc_config(&cfg, 2);
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	for (int k = 0; k < 20; k++) {
		CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
		CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
		/* allowed right away: the sync has flushed */
		memset(src, k + 1, LEN);
	}
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT(memcmp(src, dst, LEN) == 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_enobufs_falls_back(void)
{
	struct mfd_config cfg;
	struct mfd_stats st;

	zc_config(&cfg, 2);
	__atomic_store_n(&mfd__fault_zc_enobufs, 40, __ATOMIC_RELAXED);
	CU_ASSERT_EQUAL(run_transfer(&cfg, "tcp:127.0.0.1:0", 16 << 20, 3,
				     fill_page, &st), 0);
	CU_ASSERT_EQUAL(__atomic_load_n(&mfd__fault_zc_enobufs,
					__ATOMIC_RELAXED), 0);
	CU_ASSERT(st.zerocopy_fallbacks > 0);
	CU_ASSERT(st.zerocopy_sends > 0);
}

static void test_refused_where_meaningless(void)
{
	struct mfd_config cfg;
	struct mfd_session *s = NULL;
	char err[200] = "";

	zc_config(&cfg, 1);
	cfg.uri = "unix:/tmp/x";
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "zero-copy"));
	cfg.uri = "tcp:127.0.0.1:1";
	cfg.method = MFD_METHOD_ZSTD;
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NULL(s);
}

int main(void)
{
	static const struct test tests[] = {
		{ "256 MiB over rounds", test_big_transfer },
		{ "many packets in flight", test_many_in_flight },
		{ "page rewritten after sync", test_rewrite_after_sync },
		{ "ENOBUFS falls back to copying", test_enobufs_falls_back },
		{ "refused where meaningless", test_refused_where_meaningless },
		{ NULL, NULL },
	};

	return run_tests("zerocopy", tests, 300);
}
