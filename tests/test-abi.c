/* SPDX-License-Identifier: MIT */
/*
 * test-abi.c - struct mfd_config and struct mfd_stats grow at their end:
 * a program built with an older (smaller) or newer (larger) header keeps
 * working, fields past the caller's size are neither read nor written,
 * and fields the library does not know are refused only when set.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "common.h"
#include "pair.h"

#define LEN (1u << 20)

/* A config as an older header had it: everything up to the policy
 * fields, with garbage behind that the library must not read. */
static void test_older_config(void)
{
	size_t old = offsetof(struct mfd_config, accept_max_channels);
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p;

	memset(&cfg, 0xff, sizeof(cfg));
	mfd_config_init_sized(&cfg, old);
	CU_ASSERT_EQUAL(cfg.size, old);
	/* mfd_config_init_sized() wrote only the old fields */
	CU_ASSERT_EQUAL(cfg.accept_max_channels, 0xffffffffu);
	cfg.accept_max_channels = 1; /* beyond the size: not read */
	cfg.channels = 2;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, LEN), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* A config from a newer header: larger, its new fields zero unless set. */
static void test_newer_config(void)
{
	struct {
		struct mfd_config cfg;
		uint64_t future[2];
	} big;
	struct mfd_session *s = NULL;
	char err[300] = "";

	memset(&big, 0xff, sizeof(big));
	mfd_config_init_sized(&big.cfg, sizeof(big));
	CU_ASSERT_EQUAL(big.cfg.size, sizeof(big));
	CU_ASSERT(big.future[0] == 0 && big.future[1] == 0);
	big.cfg.uri = "tcp:127.0.0.1:0";
	CU_ASSERT_EQUAL(mfd_session_new(&big.cfg, MFD_ROLE_RECV, &s, err,
					sizeof(err)), 0);
	mfd_session_free(s);
	s = NULL;
	big.future[1] = 1;
	CU_ASSERT_EQUAL(mfd_session_new(&big.cfg, MFD_ROLE_RECV, &s, err,
					sizeof(err)), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not know"));
	CU_ASSERT_PTR_NULL(s);
}

static void test_uninitialised_config(void)
{
	struct mfd_config cfg = { .uri = "tcp:127.0.0.1:0", .channels = 2 };
	struct mfd_session *s = NULL;
	char err[300] = "";

	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "mfd_config_init"));
}

/* Statistics into an older, smaller struct: only its bytes are written;
 * into a newer, larger one: the bytes beyond ours are zeroed. */
static void test_stats_sizes(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	size_t old = offsetof(struct mfd_stats, normal_pages);
	struct {
		struct mfd_stats st;
		uint64_t future;
	} big;
	struct mfd_stats st;
	struct mfd_config cfg;
	struct pair p;

	mfd_config_init(&cfg);
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src,
					 dst, LEN), 0);
	memset(src, 1, LEN);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	memset(&st, 0xee, sizeof(st));
	mfd_session_stats_sized(p.tx, &st, old);
	CU_ASSERT(st.packets > 0 && st.payload_bytes == LEN);
	CU_ASSERT_EQUAL(st.normal_pages, 0xeeeeeeeeeeeeeeeeull);
	memset(&big, 0xee, sizeof(big));
	mfd_session_stats_sized(p.tx, &big.st, sizeof(big));
	CU_ASSERT_EQUAL(big.st.normal_pages, LEN / 4096);
	CU_ASSERT_EQUAL(big.future, 0);
	memset(&st, 0xee, sizeof(st));
	CU_ASSERT_EQUAL(mfd_channel_stats_sized(p.tx, 0, &st, old), 0);
	CU_ASSERT_EQUAL(st.normal_pages, 0xeeeeeeeeeeeeeeeeull);
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

int main(void)
{
	static const struct test tests[] = {
		{ "a config from an older header", test_older_config },
		{ "a config from a newer header", test_newer_config },
		{ "a config not made by mfd_config_init", test_uninitialised_config },
		{ "statistics into older and newer structs", test_stats_sizes },
		{ NULL, NULL },
	};

	return run_tests("abi", tests, 60);
}
