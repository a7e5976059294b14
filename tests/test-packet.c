/* SPDX-License-Identifier: MIT */
/* test-packet.c - the wire codec: round trips and each rejection. */
#include "config.h"

#include <errno.h>

#include "common.h"
#include "packet.h"

static const struct mfd_limits lim = { .method = MFD_METHOD_NONE,
				       .page_size = 4096,
				       .pages_per_packet = 128,
				       .region_count = 2 };

static struct mfd_hdr good_pages(void)
{
	return (struct mfd_hdr){ .type = MFD_PKT_PAGES,
				 .method = MFD_METHOD_NONE,
				 .packet_num = 77,
				 .round = 3,
				 .region = 1,
				 .normal = 5,
				 .zero = 2,
				 .payload_len = 5 * 4096 };
}

/* Encode h, then decode it under l: the error (0 when accepted). */
static int decode(const struct mfd_hdr *h, const struct mfd_limits *l,
		  char *err, size_t errlen)
{
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_hdr out;

	mfd__hdr_encode(h, buf);
	return mfd__hdr_decode(buf, l, &out, err, errlen);
}

static void test_hdr_round_trip(void)
{
	struct mfd_hdr h = good_pages(), out;
	uint8_t buf[MFD_HDR_SIZE];
	char err[200] = "";

	mfd__hdr_encode(&h, buf);
	CU_ASSERT_EQUAL(buf[0], 'M'); /* big-endian magic */
	CU_ASSERT_EQUAL_FATAL(mfd__hdr_decode(buf, &lim, &out, err,
					      sizeof(err)), 0);
	CU_ASSERT(out.type == h.type && out.packet_num == 77 &&
		  out.round == 3 && out.region == 1 && out.normal == 5 &&
		  out.zero == 2 && out.payload_len == 5 * 4096);
}

static void expect_bad(struct mfd_hdr h, const struct mfd_limits *l,
		       const char *word)
{
	char err[200] = "";

	CU_ASSERT_EQUAL(decode(&h, l, err, sizeof(err)), -EBADMSG);
	if (!strstr(err, word)) {
		fprintf(stderr, "error '%s' does not name '%s'\n", err, word);
		CU_FAIL("error message does not name the field");
	}
}

static void test_hdr_rejects(void)
{
	struct mfd_hdr h;
	struct mfd_limits zl = lim;
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_hdr out;
	char err[200];

	h = good_pages();
	h.method = MFD_METHOD_ZSTD;
	expect_bad(h, &lim, "method");
	h = good_pages();
	h.flags = 0x8000;
	expect_bad(h, &lim, "flag");
	h = good_pages();
	h.flags = MFD_FLAG_RAW; /* raw makes no sense with none */
	expect_bad(h, &lim, "raw");
	h = good_pages();
	h.region = 2;
	expect_bad(h, &lim, "region");
	h = good_pages();
	h.normal = 128;
	h.zero = 1;
	h.payload_len = 128 * 4096;
	expect_bad(h, &lim, "pages");
	h = good_pages();
	h.normal = 0;
	h.zero = 0;
	h.payload_len = 0;
	expect_bad(h, &lim, "pages");
	h = good_pages(); /* counts whose sum overflows 32 bits */
	h.normal = 0xffffffffu;
	h.zero = 2;
	expect_bad(h, &lim, "pages");
	h = good_pages();
	h.payload_len += 1;
	expect_bad(h, &lim, "payload length");
	h = good_pages();
	h.type = 13;
	expect_bad(h, &lim, "type");
	h = (struct mfd_hdr){ .type = MFD_PKT_SYNC, .normal = 1 };
	expect_bad(h, &lim, "control");

	/* compressed: payload must be shorter than the pages, raw exact */
	zl.method = MFD_METHOD_ZSTD;
	h = good_pages();
	h.method = MFD_METHOD_ZSTD;
	h.payload_len = 5 * 4096;
	expect_bad(h, &zl, "compressed payload");
	h.payload_len = 0;
	expect_bad(h, &zl, "compressed payload");
	h.payload_len = 100;
	CU_ASSERT_EQUAL(decode(&h, &zl, err, sizeof(err)), 0);
	h.flags = MFD_FLAG_RAW;
	expect_bad(h, &zl, "payload length");
	h.payload_len = 5 * 4096;
	CU_ASSERT_EQUAL(decode(&h, &zl, err, sizeof(err)), 0);

	/* bad magic and reserved bytes */
	h = good_pages();
	mfd__hdr_encode(&h, buf);
	buf[0] ^= 1;
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "magic"));
	buf[0] ^= 1;
	buf[36] = 1;
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "reserved"));
	/* a checksum where none was negotiated */
	buf[36] = 0;
	buf[47] = 1;
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "checksum"));
	/* a VERIFY that was not negotiated, and one of the wrong size */
	h = (struct mfd_hdr){ .type = MFD_PKT_VERIFY, .payload_len = 16 };
	expect_bad(h, &lim, "not negotiated");
	zl = lim;
	zl.features = MFD_FEAT_VERIFY;
	CU_ASSERT_EQUAL(decode(&h, &zl, err, sizeof(err)), 0);
	h.payload_len = 8;
	expect_bad(h, &zl, "VERIFY payload");
	/* a FIN may carry a message, within bounds */
	h = (struct mfd_hdr){ .type = MFD_PKT_FIN, .payload_len = 100 };
	CU_ASSERT_EQUAL(decode(&h, &lim, err, sizeof(err)), 0);
	h.payload_len = MFD_FIN_MSG_MAX + 1;
	expect_bad(h, &lim, "FIN message");
}

static void test_zero_range(void)
{
	/* protocol.md 11.8, byte for byte */
	static const uint8_t doc[MFD_HDR_SIZE + MFD_RANGE_SIZE] = {
		0x4d, 0x46, 0x44, 0x50, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
		[32] = 0, 0, 0, 0x10,
		[53] = 0x10, [60] = 0x40 };
	struct mfd_hdr h = { .type = MFD_PKT_ZERO_RANGE, .packet_num = 5,
			     .payload_len = MFD_RANGE_SIZE }, out;
	uint8_t buf[MFD_HDR_SIZE + MFD_RANGE_SIZE];
	uint64_t off = 0, len = 0, region = 2ull << 30;
	char err[200] = "";

	mfd__hdr_encode(&h, buf);
	mfd__range_encode(1 << 20, 1 << 30, buf + MFD_HDR_SIZE);
	CU_ASSERT(memcmp(buf, doc, sizeof(doc)) == 0);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &lim, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mfd__range_decode(buf + MFD_HDR_SIZE, 4096, region,
					  &off, &len, err, sizeof(err)), 0);
	CU_ASSERT(off == 1 << 20 && len == 1 << 30);
	/* a region of the table, a payload of 16 bytes, no page counts */
	h.region = 1;
	CU_ASSERT_EQUAL(decode(&h, &lim, err, sizeof(err)), 0);
	h.region = 2;
	expect_bad(h, &lim, "region");
	h.region = 0;
	h.payload_len = 8;
	expect_bad(h, &lim, "ZERO_RANGE payload");
	h.payload_len = MFD_RANGE_SIZE;
	h.zero = 1;
	expect_bad(h, &lim, "control");
	h.zero = 0;
	/* a checksum only where negotiated, as for page packets */
	h.checksum = 0x1234;
	expect_bad(h, &lim, "checksum");
	{
		struct mfd_limits cl = lim;

		cl.features = MFD_FEAT_CHECKSUM;
		CU_ASSERT_EQUAL(decode(&h, &cl, err, sizeof(err)), 0);
	}
	/* whole pages inside the region, at least one */
	{
		static const uint64_t bad[][2] = {
			{ 100, 4096 }, { 4096, 100 }, { 4096, 0 },
			{ 2ull << 30, 4096 }, { (2ull << 30) - 4096, 8192 },
			{ 4096, ~4095ull }, /* offset + length wraps */
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			mfd__range_encode(bad[i][0], bad[i][1], buf);
			err[0] = 0;
			CU_ASSERT_EQUAL(mfd__range_decode(buf, 4096, region,
							  &off, &len, err,
							  sizeof(err)),
					-EBADMSG);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "zero range"));
		}
	}
}

/* BLOB headers and descriptors (protocol.md 6.5). */
static void test_blob(void)
{
	struct mfd_hdr h = { .type = MFD_PKT_BLOB, .method = MFD_METHOD_NONE,
			     .region = 123456, .normal = 3,
			     .payload_len = 3 * 4096 };
	struct mfd_blob_desc d = { .total = 1000000, .offset = 0,
				   .name_len = 5 }, out;
	uint8_t buf[MFD_BLOB_DESC_MAX];
	char err[200] = "";
	size_t n;

	/* any blob number; no zero pages; no staging; 0 pages allowed */
	CU_ASSERT_EQUAL(decode(&h, &lim, err, sizeof(err)), 0);
	h.zero = 1;
	expect_bad(h, &lim, "zero pages");
	h.zero = 0;
	h.flags = MFD_FLAG_STAGED;
	expect_bad(h, &lim, "staged");
	h.flags = 0;
	h.payload_len = 4096;
	expect_bad(h, &lim, "payload length");
	h.normal = 0;
	h.payload_len = 0;
	CU_ASSERT_EQUAL(decode(&h, &lim, err, sizeof(err)), 0);

	memcpy(d.name, "state", 6);
	n = mfd__blob_desc_encode(&d, buf);
	CU_ASSERT_EQUAL(n, MFD_BLOB_DESC_SIZE + 5);
	/* big-endian: 1000000 is 0x0f4240 */
	CU_ASSERT(buf[5] == 0x0f && buf[6] == 0x42 && buf[7] == 0x40);
	CU_ASSERT_EQUAL(mfd__blob_desc_decode(buf, &out, err, sizeof(err)), 0);
	CU_ASSERT(out.total == d.total && out.offset == 0 &&
		  out.name_len == 5);
	buf[20] = 1;
	CU_ASSERT_EQUAL(mfd__blob_desc_decode(buf, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT(strstr(err, "reserved") != NULL);
	d.name_len = 0;
	mfd__blob_desc_encode(&d, buf);
	CU_ASSERT_EQUAL(mfd__blob_desc_decode(buf, &out, err, sizeof(err)),
			-EBADMSG);

	/* pieces of 128 pages of 4 KiB: 1000000 bytes take 245 pages, in
	 * a piece of 128 and one of 117 */
	CU_ASSERT_EQUAL(mfd__blob_piece_pages(1000000, 0, 4096, 128), 128);
	CU_ASSERT_EQUAL(mfd__blob_piece_pages(1000000, 128 * 4096, 4096, 128),
			117);
	CU_ASSERT_EQUAL(mfd__blob_piece_pages(0, 0, 4096, 128), 0);
	d.name_len = 5;
	h.normal = 117;
	d.offset = 128 * 4096;
	CU_ASSERT_EQUAL(mfd__blob_desc_check(&d, &h, 4096, 128, err,
					     sizeof(err)), 0);
	h.normal = 116;
	CU_ASSERT_EQUAL(mfd__blob_desc_check(&d, &h, 4096, 128, err,
					     sizeof(err)), -EBADMSG);
	h.normal = 117;
	d.offset = 4096; /* not where a piece starts */
	CU_ASSERT_EQUAL(mfd__blob_desc_check(&d, &h, 4096, 128, err,
					     sizeof(err)), -EBADMSG);
	d.offset = 2 * 128 * 4096; /* past the end */
	h.normal = 0;
	CU_ASSERT_EQUAL(mfd__blob_desc_check(&d, &h, 4096, 128, err,
					     sizeof(err)), -EBADMSG);
	d.total = 0; /* an empty blob: one piece of no page */
	d.offset = 0;
	CU_ASSERT_EQUAL(mfd__blob_desc_check(&d, &h, 4096, 128, err,
					     sizeof(err)), 0);
}

static void test_offsets(void)
{
	uint64_t in[3] = { 0, 4096, 8192 }, out[3];
	uint8_t buf[24];
	char err[200];

	mfd__offsets_encode(in, 3, buf);
	CU_ASSERT_EQUAL(mfd__offsets_decode(buf, 3, 4096, 3 * 4096, out, err,
					    sizeof(err)), 0);
	CU_ASSERT_EQUAL(out[2], 8192);
	/* the last page must fit whole */
	CU_ASSERT_EQUAL(mfd__offsets_decode(buf, 3, 4096, 3 * 4096 - 1, out,
					    err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "outside"));
	in[1] = 4097;
	mfd__offsets_encode(in, 3, buf);
	CU_ASSERT_EQUAL(mfd__offsets_decode(buf, 3, 4096, 1 << 20, out, err,
					    sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "aligned"));
	in[1] = ~0ull & ~4095ull; /* huge: must not wrap */
	mfd__offsets_encode(in, 3, buf);
	CU_ASSERT_EQUAL(mfd__offsets_decode(buf, 3, 4096, 1 << 20, out, err,
					    sizeof(err)), -EBADMSG);
}

/* Runs of adjacent pages (MFD_FLAG_RUNS): what they encode decodes to
 * the same offsets, and every lie about them is refused. */
static void test_runs(void)
{
	static uint64_t many[MFD_RUN_PAGES_MAX + 1];
	uint64_t in[6] = { 0, 4096, 8192, 5 * 4096, 7 * 4096, 8 * 4096 };
	uint64_t out[6];
	uint8_t buf[8 * 6];
	struct mfd_hdr h = good_pages(), back;
	uint8_t hb[MFD_HDR_SIZE];
	char err[200] = "";

	CU_ASSERT_EQUAL_FATAL(mfd__runs_encode(in, 6, 4096, buf), 3);
	CU_ASSERT_EQUAL(mfd__runs_decode(buf, 3, 6, 4096, 9 * 4096, out, err,
					 sizeof(err)), 0);
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(in)), 0);
	/* the header says fewer or more pages than the runs name */
	CU_ASSERT_EQUAL(mfd__runs_decode(buf, 3, 5, 4096, 9 * 4096, out, err,
					 sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than"));
	CU_ASSERT_EQUAL(mfd__runs_decode(buf, 2, 6, 4096, 9 * 4096, out, err,
					 sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "header names 6"));
	/* the last run must fit the region whole, also near 2^48 pages */
	CU_ASSERT_EQUAL(mfd__runs_decode(buf, 3, 6, 4096, 9 * 4096 - 1, out,
					 err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "outside"));
	memset(buf, 0xff, 8); /* page 2^48 - 1, 65536 pages */
	CU_ASSERT_EQUAL(mfd__runs_decode(buf, 1, 6, 4096, ~0ull, out, err,
					 sizeof(err)), -EBADMSG);
	/* a run longer than one entry holds splits */
	for (uint32_t i = 0; i <= MFD_RUN_PAGES_MAX; i++)
		many[i] = (uint64_t)i * 512;
	CU_ASSERT_EQUAL(mfd__runs_encode(many, MFD_RUN_PAGES_MAX + 1, 512,
					 (uint8_t *)many), 2);

	/* the header's run counts */
	h.flags = MFD_FLAG_RUNS;
	h.normal_runs = 2;
	h.zero_runs = 1;
	mfd__hdr_encode(&h, hb);
	CU_ASSERT_EQUAL_FATAL(mfd__hdr_decode(hb, &lim, &back, err,
					      sizeof(err)), 0);
	CU_ASSERT(back.normal_runs == 2 && back.zero_runs == 1 &&
		  mfd__hdr_entries(&back) == 3);
	h.normal_runs = 0; /* 5 normal pages need a run */
	expect_bad(h, &lim, "runs");
	h.normal_runs = 6; /* more runs than pages */
	expect_bad(h, &lim, "runs");
	h.normal_runs = 2;
	h.zero_runs = 0;
	expect_bad(h, &lim, "runs");
	h = (struct mfd_hdr){ .type = MFD_PKT_BLOB, .normal = 1,
			      .flags = MFD_FLAG_RUNS, .normal_runs = 1,
			      .payload_len = 4096 };
	expect_bad(h, &lim, "runs flag on a blob");
}

static struct mfd_init good_init(void)
{
	return (struct mfd_init){ .version = MFD_PROTO_VERSION,
				  .session_id = 42,
				  .channel = 0,
				  .channels = 4,
				  .method = MFD_METHOD_ZLIB,
				  .page_size = 4096,
				  .pages_per_packet = 128,
				  .region_count = 1 };
}

static void expect_bad_init(struct mfd_init in, const char *word)
{
	uint8_t buf[MFD_INIT_SIZE];
	struct mfd_init out;
	char err[200] = "";

	mfd__init_encode(&in, buf);
	CU_ASSERT_EQUAL(mfd__init_decode(buf, &out, err, sizeof(err)),
			-EBADMSG);
	if (!strstr(err, word)) {
		fprintf(stderr, "error '%s' does not name '%s'\n", err, word);
		CU_FAIL("init error message does not name the field");
	}
}

static void test_init(void)
{
	struct mfd_init in = good_init(), out;
	uint8_t buf[MFD_INIT_SIZE];
	char err[200];

	mfd__init_encode(&in, buf);
	CU_ASSERT_EQUAL_FATAL(mfd__init_decode(buf, &out, err, sizeof(err)),
			      0);
	CU_ASSERT(out.session_id == 42 && out.channels == 4 &&
		  out.method == MFD_METHOD_ZLIB && out.region_count == 1);
	/* the sender's timeout travels at offset 44 (protocol.md 4.1) */
	in.timeout_ms = 30000;
	mfd__init_encode(&in, buf);
	CU_ASSERT(buf[44] == 0 && buf[45] == 0 && buf[46] == 0x75 &&
		  buf[47] == 0x30);
	CU_ASSERT_EQUAL(mfd__init_decode(buf, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out.timeout_ms, 30000);

	in = good_init();
	in.version = 2;
	expect_bad_init(in, "version");
	in = good_init();
	in.channel = 4;
	expect_bad_init(in, "channel index");
	in = good_init();
	in.channels = 65;
	expect_bad_init(in, "channel count");
	in = good_init();
	in.method = 7;
	expect_bad_init(in, "method");
	in = good_init();
	in.page_size = 3000;
	expect_bad_init(in, "page size");
	in = good_init();
	in.pages_per_packet = 1025;
	expect_bad_init(in, "pages per packet");
	in = good_init();
	in.features = 0x100;
	expect_bad_init(in, "feature");
	in = good_init();
	in.region_count = 0;
	expect_bad_init(in, "region");
	in = good_init();
	in.channel = 1;
	expect_bad_init(in, "announces regions");
	in = good_init();
	mfd__init_encode(&in, buf);
	buf[3] = 0;
	CU_ASSERT_EQUAL(mfd__init_decode(buf, &out, err, sizeof(err)),
			-EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "magic"));
}

/* The postcopy switch, a request and the urgent channel's init
 * (protocol.md 14). */
static void test_postcopy(void)
{
	/* protocol.md 14.7, byte for byte */
	static const uint8_t req_doc[MFD_HDR_SIZE + MFD_REQUEST_SIZE] = {
		0x4d, 0x46, 0x44, 0x50, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3,
		[32] = 0, 0, 0, 0x10,
		[54] = 0x50, [62] = 0x10 };
	static const uint8_t sw_doc[MFD_HDR_SIZE] = {
		0x4d, 0x46, 0x44, 0x50, 11, [19] = 1, [35] = 8 };
	struct mfd_hdr h = { .type = MFD_PKT_REQUEST, .packet_num = 3,
			     .payload_len = MFD_REQUEST_SIZE }, out;
	struct mfd_limits pl = lim;
	struct mfd_init in = good_init(), iout;
	uint8_t buf[MFD_HDR_SIZE + MFD_REQUEST_SIZE];
	uint64_t off = 0, len = 0, region = 1 << 20;
	char err[200] = "";

	pl.features = MFD_FEAT_POSTCOPY;
	mfd__hdr_encode(&h, buf);
	mfd__request_encode(0x5000, 4096, buf + MFD_HDR_SIZE);
	CU_ASSERT(memcmp(buf, req_doc, sizeof(req_doc)) == 0);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &pl, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mfd__request_decode(buf + MFD_HDR_SIZE, 4096, 128,
					    region, &off, &len, err,
					    sizeof(err)), 0);
	CU_ASSERT(off == 0x5000 && len == 4096);
	expect_bad(h, &lim, "postcopy was not negotiated");
	h.region = 2;
	expect_bad(h, &pl, "unknown region 2");
	h.region = 0;
	h.payload_len = 8;
	expect_bad(h, &pl, "payload of 8 bytes");
	h.payload_len = MFD_REQUEST_SIZE;
	h.round = 1;
	expect_bad(h, &pl, "round 1");
	h.round = 0;
	h.normal = 1;
	expect_bad(h, &pl, "control");
	{
		static const struct {
			uint64_t off, len;
			const char *word;
		} bad[] = {
			{ 100, 4096, "offset 0x64 is not aligned" },
			{ 4096, 100, "length 100" },
			{ 4096, 0, "length 0" },
			{ 0, 129 * 4096, "length 528384" },
			{ 1 << 20, 4096, "offset 0x100000 + 4096 bytes outside" },
			{ (1 << 20) - 4096, 8192, "outside the region" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			mfd__request_encode(bad[i].off, bad[i].len, buf);
			err[0] = 0;
			CU_ASSERT_EQUAL(mfd__request_decode(buf, 4096, 128,
							    region, &off, &len,
							    err, sizeof(err)),
					-EBADMSG);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].word));
		}
	}
	/* the switch: its payload's length is the receiver's to judge */
	h = (struct mfd_hdr){ .type = MFD_PKT_POSTCOPY, .round = 1,
			      .payload_len = 8 };
	mfd__hdr_encode(&h, buf);
	CU_ASSERT(memcmp(buf, sw_doc, sizeof(sw_doc)) == 0);
	CU_ASSERT_EQUAL(mfd__hdr_decode(buf, &pl, &out, err, sizeof(err)), 0);
	expect_bad(h, &lim, "postcopy was not negotiated");
	CU_ASSERT_EQUAL(mfd__dirty_map_words(256 << 10, 4096), 1);
	CU_ASSERT_EQUAL(mfd__dirty_map_words(65 * 4096, 4096), 2);
	/* with POSTCOPY, index `channels` is the urgent channel, no more */
	in.channel = 4;
	in.region_count = 0;
	in.features = MFD_FEAT_POSTCOPY;
	mfd__init_encode(&in, buf);
	CU_ASSERT_EQUAL(mfd__init_decode(buf, &iout, err, sizeof(err)), 0);
	in.channel = 5;
	expect_bad_init(in, "channel index");
	in.channel = 4;
	in.features = 0;
	expect_bad_init(in, "channel index");
}

static void test_ack_and_region(void)
{
	struct mfd_ack a = { .status = -EINVAL, .msg_len = 5 }, out;
	uint8_t buf[MFD_ACK_SIZE], rb[300];
	char err[200], name[300];

	mfd__ack_encode(&a, buf);
	CU_ASSERT_EQUAL(mfd__ack_decode(buf, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out.status, -EINVAL);
	CU_ASSERT_EQUAL(out.msg_len, 5);
	/* protocol.md 11.6, byte for byte */
	{
		static const uint8_t doc[MFD_ACK_SIZE] = {
			0x4d, 0x46, 0x44, 0x41, 0, 1, 0, 0,
			0, 0, 0, 0, 0, 0, 0x07, 0xd0 };
		struct mfd_ack ok = { .timeout_ms = 2000 };

		mfd__ack_encode(&ok, buf);
		CU_ASSERT(memcmp(buf, doc, sizeof(doc)) == 0);
	}
	/* and the receiver's at offset 12 of its answer (4.5) */
	a.timeout_ms = 2000;
	mfd__ack_encode(&a, buf);
	CU_ASSERT(buf[14] == 0x07 && buf[15] == 0xd0);
	CU_ASSERT_EQUAL(mfd__ack_decode(buf, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out.timeout_ms, 2000);
	a.status = 3; /* positive statuses do not exist */
	mfd__ack_encode(&a, buf);
	CU_ASSERT_EQUAL(mfd__ack_decode(buf, &out, err, sizeof(err)),
			-EBADMSG);

	CU_ASSERT_EQUAL(mfd__region_encode("pc.ram", 1 << 20, rb, sizeof(rb)),
			2 + 6 + 8);
	CU_ASSERT(rb[0] == 0 && rb[1] == 6 && !memcmp(rb + 2, "pc.ram", 6));
	memset(name, 'x', 256);
	name[256] = 0;
	CU_ASSERT_EQUAL(mfd__region_encode(name, 4096, rb, sizeof(rb)),
			-ENAMETOOLONG);
	CU_ASSERT_EQUAL(mfd__region_encode("", 4096, rb, sizeof(rb)),
			-ENAMETOOLONG);
}

int main(void)
{
	static const struct test tests[] = {
		{ "header round trip", test_hdr_round_trip },
		{ "header rejects each bad field", test_hdr_rejects },
		{ "offsets", test_offsets },
		{ "runs of adjacent pages", test_runs },
		{ "zero ranges", test_zero_range },
		{ "blob headers and descriptors", test_blob },
		{ "postcopy switch, request, urgent channel", test_postcopy },
		{ "init packet", test_init },
		{ "ack and region entries", test_ack_and_region },
		{ NULL, NULL },
	};

	return run_tests("packet", tests, 60);
}
