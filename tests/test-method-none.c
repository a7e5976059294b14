/* SPDX-License-Identifier: MIT */
/*
 * test-method-none.c - the shape of the list that method none builds:
 * the header first, one entry per run of adjacent normal pages pointing
 * into the region itself, zero pages absent from the payload.
 */
#include "config.h"

#include "common.h"
#include "method.h"

static void test_list_shape(void)
{
	enum { PPP = 16, PS = 4096 };
	uint64_t offsets[PPP];
	uint8_t wire[MFD_HDR_SIZE + 8 * PPP];
	struct iovec iov[PPP + 2];
	uint8_t *mem = guarded_alloc(64 * PS);
	struct mfd_region rg = { .name = "ram", .mem = mem,
				 .length = 64 * PS };
	struct mfd_mctx m = { .method = MFD_METHOD_NONE, .page_size = PS,
			      .pages_per_packet = PPP };
	struct mfd_packet p = { .offsets = offsets, .wire = wire, .iov = iov,
				.region = &rg };
	struct mfd_hdr back;
	struct mfd_limits lim = { .method = MFD_METHOD_NONE, .page_size = PS,
				  .pages_per_packet = PPP,
				  .region_count = 1 };
	char err[200];

	CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
	/* normal pages 3,4,5 (one run), 9, 10 (a second run), 20 (third);
	 * zero pages 7 and 30 at the end */
	uint64_t pages[] = { 3, 4, 5, 9, 10, 20, 7, 30 };
	for (int i = 0; i < 8; i++)
		offsets[i] = pages[i] * PS;
	p.hdr = (struct mfd_hdr){ .type = MFD_PKT_PAGES, .normal = 6,
				  .zero = 2, .packet_num = 5 };
	CU_ASSERT_EQUAL_FATAL(mfd__method_none.send_prepare(&m, &p), 0);
	CU_ASSERT_EQUAL_FATAL(p.niov, 4);
	CU_ASSERT_PTR_EQUAL(iov[0].iov_base, wire);
	/* 3 runs of normal pages and 2 of zero pages: 5 entries, not 8 */
	CU_ASSERT_EQUAL(iov[0].iov_len, MFD_HDR_SIZE + 5 * 8);
	CU_ASSERT_PTR_EQUAL(iov[1].iov_base, mem + 3 * PS);
	CU_ASSERT_EQUAL(iov[1].iov_len, 3 * PS);
	CU_ASSERT_PTR_EQUAL(iov[2].iov_base, mem + 9 * PS);
	CU_ASSERT_EQUAL(iov[2].iov_len, 2 * PS);
	CU_ASSERT_PTR_EQUAL(iov[3].iov_base, mem + 20 * PS);
	CU_ASSERT_EQUAL(iov[3].iov_len, PS);
	CU_ASSERT_EQUAL(p.next_packet_size, MFD_HDR_SIZE + 40 + 6 * PS);
	/* the header in the list is a valid one for these pages, and its
	 * runs name them again */
	CU_ASSERT_EQUAL(mfd__hdr_decode(wire, &lim, &back, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(back.payload_len, 6 * PS);
	CU_ASSERT(back.flags & MFD_FLAG_RUNS);
	CU_ASSERT_EQUAL(back.normal_runs, 3);
	CU_ASSERT_EQUAL(back.zero_runs, 2);
	{
		uint64_t again[8];

		CU_ASSERT_EQUAL(mfd__runs_decode(wire + MFD_HDR_SIZE, 3, 6, PS,
						 64 * PS, again, err,
						 sizeof(err)),
				0);
		CU_ASSERT_EQUAL(mfd__runs_decode(wire + MFD_HDR_SIZE + 24, 2, 2,
						 PS, 64 * PS, again + 6, err,
						 sizeof(err)),
				0);
		CU_ASSERT_EQUAL(memcmp(again, offsets, sizeof(again)), 0);
	}

	/* zero-copy: the header travels apart, the list is pages only */
	p.header_apart = true;
	CU_ASSERT_EQUAL(mfd__method_none.send_prepare(&m, &p), 0);
	CU_ASSERT_EQUAL(p.niov, 3);
	CU_ASSERT_PTR_EQUAL(iov[0].iov_base, mem + 3 * PS);

	/* the receiver's list: the same runs, nothing else */
	p.header_apart = false;
	CU_ASSERT_EQUAL(mfd__method_none.recv_prepare(&m, &p), 0);
	CU_ASSERT_EQUAL(p.niov, 3);
	CU_ASSERT_PTR_EQUAL(iov[2].iov_base, mem + 20 * PS);
	guarded_free(mem, 64 * PS);
}

static void test_all_zero_packet(void)
{
	uint64_t offsets[4] = { 0, 4096 };
	uint8_t wire[MFD_HDR_SIZE + 32];
	struct iovec iov[6];
	uint8_t mem[8192];
	struct mfd_region rg = { .mem = mem, .length = sizeof(mem) };
	struct mfd_mctx m = { .page_size = 4096, .pages_per_packet = 4 };
	struct mfd_packet p = { .offsets = offsets, .wire = wire, .iov = iov,
				.region = &rg };

	p.hdr = (struct mfd_hdr){ .type = MFD_PKT_PAGES, .zero = 2 };
	CU_ASSERT_EQUAL(mfd__method_none.send_prepare(&m, &p), 0);
	CU_ASSERT_EQUAL(p.niov, 1); /* header only */
	CU_ASSERT_EQUAL(p.hdr.payload_len, 0);
	/* two adjacent zero pages: one run */
	CU_ASSERT_EQUAL(p.next_packet_size, MFD_HDR_SIZE + 8);
}

int main(void)
{
	static const struct test tests[] = {
		{ "list shape", test_list_shape },
		{ "all-zero packet", test_all_zero_packet },
		{ NULL, NULL },
	};

	return run_tests("method-none", tests, 30);
}
