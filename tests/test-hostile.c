/* SPDX-License-Identifier: MIT */
/*
 * test-hostile.c - a peer that lies, one field at a time. Each case sends
 * one bad value by hand and checks that the receiver says which field it
 * refused (to the peer at the handshake, in the session's error after
 * it), soon, and that its memory stays as it was outside the pages the
 * packet declared (guard pages around the region catch the rest). The
 * cases test-faults.c already has (a bad header magic, an offset one past
 * the end or unaligned, a SYNC out of order, a method other than the
 * session's, a peer gone mid-packet) are not repeated here.
 */
#include "config.h"

#include <errno.h>
#include <time.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#include "common.h"
#include "pair.h"

#define LEN (1u << 20)
#define PS 4096u
#define TIMEOUT_MS 1500

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_word(const char *what, const char *msg, const char *word)
{
	if (!strstr(msg, word)) {
		fprintf(stderr, "%s '%s' should name '%s'\n", what, msg, word);
		CU_FAIL("the error does not name the field");
	}
}

/* ---- the handshake: an init or region table of the peer's making ---- */

static struct mfd_init good_init(void)
{
	return (struct mfd_init){ .version = MFD_PROTO_VERSION,
				  .session_id = 0x4057,
				  .channel = 0,
				  .channels = 1,
				  .method = MFD_METHOD_NONE,
				  .page_size = PS,
				  .pages_per_packet = 128,
				  .region_count = 1 };
}

/* in, then one region table entry when in->channel is 0. */
static size_t init_bytes(const struct mfd_init *in, const char *name,
			 uint64_t len, uint8_t *buf, size_t cap)
{
	size_t n = MFD_INIT_SIZE;

	mfd__init_encode(in, buf);
	if (in->channel == 0)
		n += (size_t)mfd__region_encode(name, len, buf + n, cap - n);
	return n;
}

struct hs {
	struct pair p;
	uint8_t *dst;
	struct mfd_conn *c;
	char msg[400];
	int32_t status;
};

static void hs_up(struct hs *h)
{
	struct mfd_config cfg;

	memset(h, 0, sizeof(*h));
	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	h->dst = guarded_alloc(LEN);
	CU_ASSERT_FATAL(h->dst != NULL);
	CU_ASSERT_FATAL(rx_start(&h->p, &cfg, "tcp:127.0.0.1:0", h->dst,
				 LEN) == 0);
}

/* Send buf as a connection's opening; the receiver must refuse it with
 * a reason that names `word`, and write nothing. */
static void hs_refused(struct hs *h, const void *buf, size_t len,
		       const char *word)
{
	h->c = raw_connect_bytes(mfd_session_uri(h->p.rx), buf, len);
	CU_ASSERT_FATAL(h->c != NULL);
	CU_ASSERT_EQUAL(raw_ack_msg(h->c, &h->status, h->msg,
				    sizeof(h->msg)), 0);
	CU_ASSERT(h->status < 0);
	expect_word("refusal", h->msg, word);
	CU_ASSERT(all_zero(h->dst, LEN));
}

static void hs_down(struct hs *h)
{
	mfd__tp_close(h->c);
	pair_free(&h->p);
	guarded_free(h->dst, LEN);
}

/* A bad init is refused and counted, and does not end the session: the
 * receiver goes on waiting for its real channels. */
static void init_refused(const struct mfd_init *in, const char *word)
{
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	struct mfd_stats st;
	struct hs h;
	double t0;

	hs_up(&h);
	hs_refused(&h, buf, init_bytes(in, "ram", LEN, buf, sizeof(buf)),
		   word);
	/* the receiver counts the refusal after it has answered */
	t0 = now();
	do
		mfd_session_stats(h.p.rx, &st);
	while (st.rejected_connections == 0 && now() - t0 < 2);
	CU_ASSERT_EQUAL(st.rejected_connections, 1);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(h.p.rx), "");
	hs_down(&h);
}

static void test_init_magic(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	size_t n = init_bytes(&in, "ram", LEN, buf, sizeof(buf));
	struct hs h;

	buf[3] ^= 0x20; /* "MFDI" -> "MFDi" */
	hs_up(&h);
	hs_refused(&h, buf, n, "init magic");
	hs_down(&h);
}

static void test_init_version(void)
{
	struct mfd_init in = good_init();

	in.version = MFD_PROTO_VERSION + 1;
	init_refused(&in, "protocol version 2");
}

static void test_init_features(void)
{
	struct mfd_init in = good_init();

	in.features = 1ull << 63;
	init_refused(&in, "unknown feature bits 0x8000000000000000");
}

static void test_init_method(void)
{
	struct mfd_init in = good_init();

	in.method = 7;
	init_refused(&in, "unknown method 7");
}

static void test_init_channel_eq_count(void)
{
	struct mfd_init in = good_init();

	in.channel = 2;
	in.channels = 2;
	in.region_count = 0;
	init_refused(&in, "channel index 2 not below the channel count 2");
}

/* Channel 0 of 2 passes; a second channel 0 is refused by name, and the
 * first is not disturbed by it. */
static void test_init_channel_duplicate(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	struct mfd_conn *first;
	struct hs h;
	size_t n;

	in.channels = 2;
	n = init_bytes(&in, "ram", LEN, buf, sizeof(buf));
	hs_up(&h);
	first = raw_connect_bytes(mfd_session_uri(h.p.rx), buf, n);
	CU_ASSERT_FATAL(first != NULL);
	hs_refused(&h, buf, n, "channel index 0 twice");
	CU_ASSERT_STRING_EQUAL(mfd_session_error(h.p.rx), "");
	mfd__tp_close(first);
	hs_down(&h);
}

/* A bad region table ends the session: the peer is told why, and the
 * session's error names channel 0 and the same field. */
static void table_refused(const void *buf, size_t len, const char *word)
{
	struct hs h;

	hs_up(&h);
	hs_refused(&h, buf, len, word);
	CU_ASSERT(pair_join_rx(&h.p) < 0);
	expect_word("session error", mfd_session_error(h.p.rx), "channel 0");
	expect_word("session error", mfd_session_error(h.p.rx), word);
	hs_down(&h);
}

static void test_table_region_over_16tib(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];

	table_refused(buf, init_bytes(&in, "ram", (1ull << 44) + PS, buf,
				      sizeof(buf)),
		      "length 17592186048512");
}

static void test_table_region_not_page_multiple(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];

	table_refused(buf, init_bytes(&in, "ram", LEN + 512, buf, sizeof(buf)),
		      "length 1049088 is not a multiple");
}

static void test_table_name_over_255(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + 2 + 256 + 8] = { 0 };

	mfd__init_encode(&in, buf);
	buf[MFD_INIT_SIZE] = 1; /* name length 256, big-endian */
	memset(buf + MFD_INIT_SIZE + 2, 'r', 256);
	table_refused(buf, sizeof(buf), "region name length 256");
}

static void test_table_unknown_region(void)
{
	struct mfd_init in = good_init();
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];

	table_refused(buf, init_bytes(&in, "rom", LEN, buf, sizeof(buf)),
		      "unknown region 'rom'");
}

/* ---- packets on a channel that passed the handshake ---- */

struct rig {
	struct pair p;
	uint8_t *dst;
	struct mfd_conn *c[2];
	double t0;
};

/* A receiver configured by cfg with one 1 MiB region, and `channels` raw
 * channels of the given method that passed the handshake. */
static void rig_up_cfg(struct rig *g, uint8_t method, uint16_t channels,
		       const struct mfd_config *cfg)
{
	int32_t status;

	memset(g, 0, sizeof(*g));
	g->dst = guarded_alloc(LEN);
	CU_ASSERT_FATAL(g->dst != NULL);
	CU_ASSERT_FATAL(rx_start(&g->p, cfg, "tcp:127.0.0.1:0", g->dst,
				 LEN) == 0);
	for (uint16_t i = 0; i < channels; i++)
		g->c[i] = raw_connect(mfd_session_uri(g->p.rx), i, channels,
				      method, LEN);
	for (uint16_t i = 0; i < channels; i++) {
		status = -1;
		CU_ASSERT_FATAL(g->c[i] && !raw_ack(g->c[i], &status) &&
				!status);
	}
	g->t0 = now();
}

static void rig_up(struct rig *g, uint8_t method, uint16_t channels)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	rig_up_cfg(g, method, channels, &cfg);
}

/* The receiver fails within its timeout, naming `channel` and `word`. */
static void rig_expect(struct rig *g, int channel, const char *word)
{
	const char *e;
	char ch[32];

	CU_ASSERT(pair_join_rx(&g->p) < 0);
	CU_ASSERT(now() - g->t0 < 2.0 * TIMEOUT_MS / 1000);
	e = mfd_session_error(g->p.rx);
	snprintf(ch, sizeof(ch), "channel %d", channel);
	expect_word("session error", e, ch);
	expect_word("session error", e, word);
}

/* Nothing written outside pages [first, first + n) of the region. */
static void rig_untouched_but(struct rig *g, uint32_t first, uint32_t n)
{
	CU_ASSERT(all_zero(g->dst, (size_t)first * PS));
	CU_ASSERT(all_zero(g->dst + (size_t)(first + n) * PS,
			   LEN - (size_t)(first + n) * PS));
}

static void rig_down(struct rig *g)
{
	mfd__tp_close(g->c[0]);
	mfd__tp_close(g->c[1]);
	pair_free(&g->p);
	guarded_free(g->dst, LEN);
}

static struct mfd_hdr pages_hdr(uint8_t method, uint32_t normal,
				uint32_t zero, uint32_t payload_len)
{
	return (struct mfd_hdr){ .type = MFD_PKT_PAGES,
				 .method = method,
				 .packet_num = 7,
				 .normal = normal,
				 .zero = zero,
				 .payload_len = payload_len };
}

/* One page packet that must be refused at its header or offsets: the
 * header, noff offsets and the payload it claims, and nothing written
 * at all. */
static void header_refused(const struct mfd_hdr *h, const uint64_t *off,
			   uint32_t noff, const char *word)
{
	static uint8_t payload[2 * PS];
	uint8_t buf[MFD_HDR_SIZE + 8 * 129];
	struct rig g;

	rig_up(&g, h->method, 1);
	memset(payload, 0x5a, sizeof(payload));
	mfd__hdr_encode(h, buf);
	mfd__offsets_encode(off, noff, buf + MFD_HDR_SIZE);
	mfd__tp_send_buf(g.c[0], buf, MFD_HDR_SIZE + 8 * (size_t)noff);
	mfd__tp_send_buf(g.c[0], payload, sizeof(payload));
	rig_expect(&g, 0, word);
	CU_ASSERT(all_zero(g.dst, LEN));
	rig_down(&g);
}

static const uint64_t some_offsets[2] = { 3 * PS, 4 * PS };

static void test_header_flags_unknown(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);

	h.flags = 0x8000;
	header_refused(&h, some_offsets, 2, "unknown flag bits 0x8000");
}

/* Runs of adjacent pages (MFD_FLAG_RUNS) that lie: each is refused
 * before a byte is written. An entry is page << 16 | (pages - 1). */
static void runs_refused(uint32_t normal, uint64_t entry, const char *word)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, normal, 0, normal * PS);

	h.flags = MFD_FLAG_RUNS;
	h.normal_runs = 1;
	header_refused(&h, &entry, 1, word);
}

static void test_runs_past_region(void)
{
	runs_refused(2, (uint64_t)(LEN / PS - 1) << 16 | 1,
		     "outside the region");
}

static void test_runs_huge_page(void)
{
	runs_refused(2, ~0ull << 16 | 1, "outside the region");
}

static void test_runs_fewer_pages(void)
{
	runs_refused(2, 3ull << 16, "1 runs name 1 pages, but the header names 2");
}

static void test_runs_more_pages(void)
{
	runs_refused(1, 3ull << 16 | 1, "more than the 1 pages");
}

static void test_header_counts_over_negotiated(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 129, 0, 129 * PS);
	uint64_t off[129];

	for (int i = 0; i < 129; i++)
		off[i] = (uint64_t)i * PS;
	header_refused(&h, off, 129, "129 normal + 0 zero pages, expected 1..128");
}

/* normal + zero is 2^32: 0 if added in 32 bits */
static void test_header_counts_sum_overflow(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 0x80000000u,
				     0x80000000u, 0);

	header_refused(&h, some_offsets, 2,
		       "2147483648 normal + 2147483648 zero pages");
}

/* normal * page size is 2^32: a payload length of 0 if multiplied in 32
 * bits */
static void test_header_counts_bytes_overflow(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1u << 20, 0, 0);

	header_refused(&h, some_offsets, 2, "1048576 normal + 0 zero pages");
}

static void test_header_counts_zero(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 0, 0, 0);

	header_refused(&h, some_offsets, 2, "0 normal + 0 zero pages");
}

static void test_header_region_unknown(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);

	h.region = 1;
	header_refused(&h, some_offsets, 2, "unknown region 1");
}

static void test_header_payload_len_none(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 2, 0, 2 * PS - 1);

	header_refused(&h, some_offsets, 2, "payload length 8191");
}

static void test_header_payload_len_raw(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);

	h.flags = MFD_FLAG_RAW;
	header_refused(&h, some_offsets, 2, "raw flag with method none");
}

static void test_header_payload_len_sync(void)
{
	struct mfd_hdr h = { .type = MFD_PKT_SYNC, .payload_len = 16 };

	header_refused(&h, NULL, 0, "control packet type 2 with");
}

/* A zero range that reaches past the region, one of no pages, one in a
 * round the channel is not in, one for a region that does not exist. */
static void zero_range_bad(uint32_t round, uint32_t region, uint64_t off,
			   uint64_t len, const char *word)
{
	struct mfd_hdr h = { .type = MFD_PKT_ZERO_RANGE, .round = round,
			     .region = region,
			     .payload_len = MFD_RANGE_SIZE };
	uint8_t buf[MFD_HDR_SIZE + MFD_RANGE_SIZE];
	struct rig g;

	rig_up(&g, MFD_METHOD_NONE, 1);
	mfd__hdr_encode(&h, buf);
	mfd__range_encode(off, len, buf + MFD_HDR_SIZE);
	mfd__tp_send_buf(g.c[0], buf, sizeof(buf));
	rig_expect(&g, 0, word);
	rig_down(&g);
}

static void test_zero_range_hostile(void)
{
	zero_range_bad(0, 0, LEN - PS, 2 * PS, "zero range");
	zero_range_bad(0, 0, PS, 0, "zero range");
	zero_range_bad(0, 0, 100, PS, "zero range");
	zero_range_bad(0, 0, PS, ~(uint64_t)PS + 1, "zero range");
	zero_range_bad(1, 0, 0, PS, "round 1");
	zero_range_bad(0, 1, 0, PS, "unknown region 1");
}

static unsigned blobs_delivered;

static int count_blob(void *opaque, const char *name, const void *data,
		      uint64_t len)
{
	(void)opaque;
	(void)name;
	(void)data;
	(void)len;
	blobs_delivered++;
	return 0;
}

/* A receiver that takes blobs, up to 1 MiB held, on one raw channel. */
static void blob_rig_up(struct rig *g)
{
	struct mfd_config cfg;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	cfg.blob_cb = count_blob;
	cfg.max_blob_bytes = 1u << 20;
	blobs_delivered = 0;
	rig_up_cfg(g, MFD_METHOD_NONE, 1, &cfg);
}

/* One piece of blob `id`, with `pages` pages of 0x5a as its payload
 * (method none), and the name's bytes as given. */
static void send_piece(struct rig *g, uint32_t id, uint32_t round,
		       uint64_t total, uint64_t offset, uint32_t pages,
		       const char *name)
{
	static uint8_t payload[128 * PS];
	struct mfd_hdr h = { .type = MFD_PKT_BLOB, .round = round,
			     .region = id, .normal = pages,
			     .payload_len = pages * PS };
	struct mfd_blob_desc d = { .total = total, .offset = offset,
				   .name_len = (uint16_t)strlen(name) };
	uint8_t buf[MFD_HDR_SIZE + MFD_BLOB_DESC_MAX];
	size_t n;

	memset(payload, 0x5a, sizeof(payload));
	memcpy(d.name, name, d.name_len);
	mfd__hdr_encode(&h, buf);
	n = mfd__blob_desc_encode(&d, buf + MFD_HDR_SIZE);
	mfd__tp_send_buf(g->c[0], buf, MFD_HDR_SIZE + n);
	mfd__tp_send_buf(g->c[0], payload, (size_t)pages * PS);
}

static void send_sync(struct rig *g, uint32_t round)
{
	struct mfd_hdr h = { .type = MFD_PKT_SYNC, .round = round };
	uint8_t buf[MFD_HDR_SIZE];

	mfd__hdr_encode(&h, buf);
	mfd__tp_send_buf(g->c[0], buf, sizeof(buf));
}

/* A blob of 1 GiB claimed by its first piece: refused at once by the
 * bound, before anything is allocated (the refusal names the bound, not
 * a failed allocation) */
static void test_blob_too_long(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 1ull << 30, 0, 128, "state");
	rig_expect(&g, 0, "max_blob_bytes");
	rig_down(&g);
	blob_rig_up(&g); /* and the largest length there is */
	send_piece(&g, 0, 0, ~0ull, 0, 128, "state");
	rig_expect(&g, 0, "does not fit");
	rig_down(&g);
	/* two that fit alone, but not together */
	blob_rig_up(&g);
	send_piece(&g, 0, 0, 600 << 10, 0, 128, "a");
	send_piece(&g, 1, 0, 600 << 10, 0, 128, "b");
	rig_expect(&g, 0, "614400 held");
	CU_ASSERT_EQUAL(blobs_delivered, 0);
	rig_down(&g);
}

static void test_blob_piece_twice(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 600 << 10, 0, 128, "state");
	send_piece(&g, 0, 0, 600 << 10, 0, 128, "state");
	rig_expect(&g, 0, "came twice");
	rig_down(&g);
}

static void test_blob_pieces_disagree(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 600 << 10, 0, 128, "state");
	send_piece(&g, 0, 0, 600 << 10, 128 * PS, 22, "other");
	rig_expect(&g, 0, "first piece said 'state'");
	rig_down(&g);
}

/* Names with terminal controls, DEL or a tab: refused, not printed. */
static void test_blob_bad_names(void)
{
	static const char *const names[] = { "esc\x1b[2J", "\x7f del",
					      "tab\there" };
	struct rig g;

	for (int i = 0; i < 3; i++) {
		blob_rig_up(&g);
		send_piece(&g, 0, 0, 10, 0, 1, names[i]);
		rig_expect(&g, 0, "not printable");
		CU_ASSERT(strchr(mfd_session_error(g.p.rx), 0x1b) == NULL);
		rig_down(&g);
	}
}

static void test_blob_wrong_geometry(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 10, 0, 2, "state"); /* 10 bytes in 2 pages */
	rig_expect(&g, 0, "expected 1");
	rig_down(&g);
	blob_rig_up(&g);
	send_piece(&g, 0, 0, 600 << 10, PS, 1, "state"); /* mid-piece */
	rig_expect(&g, 0, "pieces start at multiples");
	rig_down(&g);
}

/* The round ends while a blob misses a piece, or misses a blob before it:
 * nothing is delivered, the session fails naming what is missing. */
static void test_blob_round_incomplete(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 600 << 10, 0, 128, "state");
	send_sync(&g, 0);
	rig_expect(&g, 0, "1 of the 2 pieces of blob 0");
	CU_ASSERT_EQUAL(blobs_delivered, 0);
	rig_down(&g);
	blob_rig_up(&g);
	send_piece(&g, 1, 0, 10, 0, 1, "second");
	send_sync(&g, 0);
	rig_expect(&g, 0, "without blob 0");
	CU_ASSERT_EQUAL(blobs_delivered, 0);
	rig_down(&g);
}

/* A blob delivered at the end of round 0, sent again in round 1: refused,
 * delivered once. */
static void test_blob_replayed(void)
{
	struct rig g;

	blob_rig_up(&g);
	send_piece(&g, 0, 0, 10, 0, 1, "state");
	send_sync(&g, 0);
	send_piece(&g, 0, 1, 10, 0, 1, "state");
	rig_expect(&g, 0, "delivered already");
	CU_ASSERT_EQUAL(blobs_delivered, 1);
	rig_down(&g);
}

static void test_header_type_unknown(void)
{
	struct mfd_hdr h = { .type = 14 };

	header_refused(&h, NULL, 0, "packet type 14");
}

/* A sender that claims a channel was lost (the receiver's word only),
 * in a session without failover. */
static void test_lost_from_sender(void)
{
	struct mfd_hdr h = { .type = MFD_PKT_LOST, .region = 1 };

	header_refused(&h, NULL, 0,
		       "LOST packet, but failover was not negotiated");
}

/* The postcopy switch and a request, in a session without postcopy. */
static void test_postcopy_not_negotiated(void)
{
	static const uint8_t types[] = { MFD_PKT_POSTCOPY, MFD_PKT_REQUEST };

	for (int i = 0; i < 2; i++) {
		struct mfd_hdr h = { .type = types[i] };
		uint8_t buf[MFD_HDR_SIZE];
		struct rig g;

		rig_up(&g, MFD_METHOD_NONE, 1);
		mfd__hdr_encode(&h, buf);
		mfd__tp_send_buf(g.c[0], buf, sizeof(buf));
		rig_expect(&g, 0, "postcopy was not negotiated");
		rig_down(&g);
	}
}

static void test_header_reserved(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);
	uint8_t buf[MFD_HDR_SIZE + 8];
	struct rig g;

	rig_up(&g, MFD_METHOD_NONE, 1);
	mfd__hdr_encode(&h, buf);
	buf[37] = 1;
	mfd__offsets_encode(some_offsets, 1, buf + MFD_HDR_SIZE);
	mfd__tp_send_buf(g.c[0], buf, sizeof(buf));
	rig_expect(&g, 0, "reserved bytes");
	CU_ASSERT(all_zero(g.dst, LEN));
	rig_down(&g);
}

/* an aligned offset so large that offset + page size wraps around */
static void test_offset_wraps(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);
	uint64_t off[1] = { ~(uint64_t)PS + 1 };

	header_refused(&h, off, 1, "offset 0xfffffffffffff000 outside the region");
}

/* the second of two offsets is bad: the first page is not written
 * either, since offsets are checked before any payload lands */
static void test_offset_second_bad(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 2, 0, 2 * PS);
	uint64_t off[2] = { 0, LEN + PS };

	header_refused(&h, off, 2, "outside the region");
}

static void test_round_page_packet(void)
{
	struct mfd_hdr h = pages_hdr(MFD_METHOD_NONE, 1, 0, PS);

	h.round = 3;
	header_refused(&h, some_offsets, 2, "round 3, but the channel is in "
					 "round 0");
}

static void test_end_out_of_order(void)
{
	struct mfd_hdr h = { .type = MFD_PKT_END, .round = 1 };
	uint8_t buf[MFD_HDR_SIZE];
	struct rig g;

	rig_up(&g, MFD_METHOD_NONE, 1);
	mfd__hdr_encode(&h, buf);
	mfd__tp_send_buf(g.c[0], buf, sizeof(buf));
	rig_expect(&g, 0, "END for round 1 out of order");
	rig_down(&g);
}

/* Two channels disagree on what ends round 0. */
static void test_sync_end_disagree(void)
{
	struct mfd_hdr s = { .type = MFD_PKT_SYNC }, e = { .type = MFD_PKT_END };
	uint8_t buf[MFD_HDR_SIZE];
	struct rig g;

	rig_up(&g, MFD_METHOD_NONE, 2);
	mfd__hdr_encode(&s, buf);
	mfd__tp_send_buf(g.c[0], buf, sizeof(buf));
	usleep(100 * 1000); /* channel 0 waits at the SYNC first */
	mfd__hdr_encode(&e, buf);
	mfd__tp_send_buf(g.c[1], buf, sizeof(buf));
	rig_expect(&g, 1, "END of round 0 while another channel waits at "
			  "SYNC of round 0");
	rig_down(&g);
}

/* ---- compressed payloads ---- */

#if defined(HAVE_ZLIB) || defined(HAVE_ZSTD)
#define BOMB_PAGES 64

static size_t squeeze(uint8_t method, const uint8_t *in, size_t n,
		      uint8_t *out, size_t cap)
{
#ifdef HAVE_ZLIB
	if (method == MFD_METHOD_ZLIB) {
		uLongf zn = cap;

		return compress2(out, &zn, in, n, 9) == Z_OK ? zn : 0;
	}
#endif
#ifdef HAVE_ZSTD
	if (method == MFD_METHOD_ZSTD) {
		size_t zn = ZSTD_compress(out, cap, in, n, 19);

		return ZSTD_isError(zn) ? 0 : zn;
	}
#endif
	return 0;
}

/*
 * A payload of `pages` pages of text squeezed by `method`, sent as a
 * packet that declares `declared` pages at pages 5.. with payload_len
 * `cut` bytes short of the payload; only the declared pages may change.
 */
static void payload_refused(uint8_t method, uint32_t pages,
			    uint32_t declared, size_t cut, const char *word)
{
	static uint8_t plain[BOMB_PAGES * PS], packed[BOMB_PAGES * PS];
	uint64_t off[BOMB_PAGES];
	struct mfd_hdr h;
	struct rig g;
	size_t n;

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)"a page of text\n"[i % 15];
	n = squeeze(method, plain, (size_t)pages * PS, packed,
		    sizeof(packed));
	CU_ASSERT_FATAL(n > cut && n - cut < (size_t)declared * PS);
	n -= cut;
	for (uint32_t i = 0; i < declared; i++)
		off[i] = (5 + (uint64_t)i) * PS;
	h = pages_hdr(method, declared, 0, (uint32_t)n);
	rig_up(&g, method, 1);
	raw_send_pages(g.c[0], &h, off);
	mfd__tp_send_buf(g.c[0], packed, n);
	rig_expect(&g, 0, word);
	rig_untouched_but(&g, 5, declared);
	rig_down(&g);
}
#endif

#if defined(HAVE_ZLIB) || defined(HAVE_ZSTD)
/* Two streams (frames) of 2 pages each, back to back, in a packet that
 * declares 4: refused where the first ends (protocol.md 6.1). */
static void payload_concatenated(uint8_t method, const char *word)
{
	static uint8_t plain[2 * PS], packed[8 * PS];
	uint64_t off[4];
	struct mfd_hdr h;
	struct rig g;
	size_t n;

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)"two frames\n"[i % 11];
	n = squeeze(method, plain, sizeof(plain), packed, sizeof(packed));
	CU_ASSERT_FATAL(n > 0 && 2 * n < 4 * PS);
	memcpy(packed + n, packed, n);
	for (uint32_t i = 0; i < 4; i++)
		off[i] = (5 + (uint64_t)i) * PS;
	h = pages_hdr(method, 4, 0, (uint32_t)(2 * n));
	rig_up(&g, method, 1);
	raw_send_pages(g.c[0], &h, off);
	mfd__tp_send_buf(g.c[0], packed, 2 * n);
	rig_expect(&g, 0, word);
	rig_untouched_but(&g, 5, 4);
	rig_down(&g);
}
#endif

static void test_payload_concatenated_zlib(void)
{
#ifdef HAVE_ZLIB
	payload_concatenated(MFD_METHOD_ZLIB,
			     "zlib payload inflates to fewer bytes than 4 pages");
#endif
}

static void test_payload_concatenated_zstd(void)
{
#ifdef HAVE_ZSTD
	payload_concatenated(MFD_METHOD_ZSTD, "zstd payload decompresses to "
					      "fewer bytes than 4 pages");
#endif
}

/* 64 pages squeezed into a packet that declares 1 */
static void test_payload_bomb_zlib(void)
{
#ifdef HAVE_ZLIB
	payload_refused(MFD_METHOD_ZLIB, BOMB_PAGES, 1, 0,
			"zlib payload does not end after 1 pages");
#endif
}

static void test_payload_bomb_zstd(void)
{
#ifdef HAVE_ZSTD
	payload_refused(MFD_METHOD_ZSTD, BOMB_PAGES, 1, 0,
			"zstd payload does not end after 1 pages");
#endif
}

/* a stream cut short, with a payload length that says so */
static void test_payload_truncated_zlib(void)
{
#ifdef HAVE_ZLIB
	payload_refused(MFD_METHOD_ZLIB, 4, 4, 8, "zlib payload");
#endif
}

static void test_payload_truncated_zstd(void)
{
#ifdef HAVE_ZSTD
	payload_refused(MFD_METHOD_ZSTD, 4, 4, 8, "zstd payload");
#endif
}

/* a compressed payload as long as the pages it stands for */
static void test_header_payload_len_compressed(void)
{
#ifdef HAVE_ZLIB
	struct mfd_hdr h = pages_hdr(MFD_METHOD_ZLIB, 1, 0, PS);

	header_refused(&h, some_offsets, 2, "compressed payload length 4096");
#endif
}

int main(void)
{
	static const struct test tests[] = {
		{ "payload: two zlib streams back to back",
		  test_payload_concatenated_zlib },
		{ "payload: two zstd frames back to back",
		  test_payload_concatenated_zstd },
		{ "init magic", test_init_magic },
		{ "init version", test_init_version },
		{ "init features: unknown bits", test_init_features },
		{ "init method: unknown", test_init_method },
		{ "init channel index: equal to the count",
		  test_init_channel_eq_count },
		{ "init channel index: duplicate",
		  test_init_channel_duplicate },
		{ "region table: length over 16 TiB",
		  test_table_region_over_16tib },
		{ "region table: length not a page multiple",
		  test_table_region_not_page_multiple },
		{ "region table: name length over 255",
		  test_table_name_over_255 },
		{ "region table: unknown name", test_table_unknown_region },
		{ "header flags: unknown bits", test_header_flags_unknown },
		{ "runs: past the region's end", test_runs_past_region },
		{ "runs: a page index near 2^48", test_runs_huge_page },
		{ "runs: fewer pages than the header", test_runs_fewer_pages },
		{ "runs: more pages than the header", test_runs_more_pages },
		{ "header type: unknown", test_header_type_unknown },
		{ "LOST from a sender", test_lost_from_sender },
		{ "postcopy packets without postcopy",
		  test_postcopy_not_negotiated },
		{ "blob: longer than the receiver holds", test_blob_too_long },
		{ "blob: a piece twice", test_blob_piece_twice },
		{ "blob: pieces that disagree", test_blob_pieces_disagree },
		{ "blob: names not printable", test_blob_bad_names },
		{ "blob: pages that do not match the piece",
		  test_blob_wrong_geometry },
		{ "blob: round ends without all of it",
		  test_blob_round_incomplete },
		{ "blob: replayed after delivery", test_blob_replayed },
		{ "zero ranges: outside, empty, unaligned, wrong round",
		  test_zero_range_hostile },
		{ "header reserved bytes: not zero", test_header_reserved },
		{ "header counts: more pages than negotiated",
		  test_header_counts_over_negotiated },
		{ "header counts: normal + zero overflows 32 bits",
		  test_header_counts_sum_overflow },
		{ "header counts: normal * page size overflows 32 bits",
		  test_header_counts_bytes_overflow },
		{ "header counts: no page at all", test_header_counts_zero },
		{ "header region: unknown index", test_header_region_unknown },
		{ "header payload length: none, not the page bytes",
		  test_header_payload_len_none },
		{ "header flags: raw with method none",
		  test_header_payload_len_raw },
		{ "header payload length: compressed, not smaller",
		  test_header_payload_len_compressed },
		{ "header payload length: SYNC with a payload",
		  test_header_payload_len_sync },
		{ "header round: page packet of another round",
		  test_round_page_packet },
		{ "offset: wraps around 2^64", test_offset_wraps },
		{ "offset: the second one past the end",
		  test_offset_second_bad },
		{ "END round: out of order", test_end_out_of_order },
		{ "SYNC/END: channels disagree", test_sync_end_disagree },
		{ "payload: zlib bomb", test_payload_bomb_zlib },
		{ "payload: zstd bomb", test_payload_bomb_zstd },
		{ "payload: zlib stream truncated",
		  test_payload_truncated_zlib },
		{ "payload: zstd frame truncated",
		  test_payload_truncated_zstd },
		{ NULL, NULL },
	};

	return run_tests("hostile", tests, 200);
}
