/* SPDX-License-Identifier: MIT */
/*
 * fuzz-header.c - libFuzzer target: a page header and its offsets, as the
 * receiver decodes them, against limits that come from the input too.
 * Beyond "no crash", it checks what the receive path relies on: a header
 * that passes describes a packet the receiver can hold, encodes back to
 * the same bytes, and every offset that passes names a whole page inside
 * the region.
 *
 * Input: method (low bits) and features (high nibble) u8 | page size
 * shift u8 | pages per packet u16 | region count u8 | region length u64 |
 * header (48 bytes) | offsets.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

#define PREFIX 13

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t off[1024];
	struct mfd_limits lim = { 0 };
	uint8_t again[MFD_HDR_SIZE];
	struct mfd_hdr h;
	uint64_t region_len, pages;
	uint32_t n;
	char err[256];

	if (size < PREFIX + MFD_HDR_SIZE)
		return 0;
	/* limits as the receiver's handshake can produce them */
	lim.method = data[0] % 3;
	lim.features = (data[0] >> 4) & MFD_FEATURES_KNOWN;
	lim.page_size = 512u << (data[1] % 8);
	lim.pages_per_packet = 1 + (uint32_t)get_be(data + 2, 2) % 1024;
	if ((uint64_t)lim.pages_per_packet * lim.page_size > (4u << 20))
		lim.pages_per_packet = (4u << 20) / lim.page_size;
	lim.region_count = 1 + data[4] % MFD_MAX_REGIONS;
	region_len = get_be(data + 5, 8);
	data += PREFIX;
	size -= PREFIX;

	if (mfd__hdr_decode(data, &lim, &h, err, sizeof(err)))
		return 0;
	/* what passed must encode back to the very same bytes: no field
	 * the decoder ignored can carry anything */
	mfd__hdr_encode(&h, again);
	check(!memcmp(again, data, MFD_HDR_SIZE));
	if (h.type != MFD_PKT_PAGES)
		return 0;
	pages = (uint64_t)h.normal + h.zero;
	check(pages >= 1 && pages <= lim.pages_per_packet);
	check(h.method == lim.method && h.region < lim.region_count);
	if (h.method == MFD_METHOD_NONE || (h.flags & MFD_FLAG_RAW))
		check(h.payload_len == (uint64_t)h.normal * lim.page_size);
	else
		check(h.payload_len < (uint64_t)h.normal * lim.page_size ||
		      (h.normal == 0 && h.payload_len == 0));

	n = mfd__hdr_entries(&h);
	if ((size - MFD_HDR_SIZE) / 8 < n)
		return 0;
	if (h.flags & MFD_FLAG_RUNS) {
		/* runs expand to exactly the pages the header names */
		if (mfd__runs_decode(data + MFD_HDR_SIZE, h.normal_runs,
				     h.normal, lim.page_size, region_len, off,
				     err, sizeof(err)) ||
		    mfd__runs_decode(data + MFD_HDR_SIZE + 8 * h.normal_runs,
				     h.zero_runs, h.zero, lim.page_size,
				     region_len, off + h.normal, err,
				     sizeof(err)))
			return 0;
		n = (uint32_t)pages;
	} else if (mfd__offsets_decode(data + MFD_HDR_SIZE, n, lim.page_size,
				       region_len, off, err, sizeof(err))) {
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		check(off[i] % lim.page_size == 0);
		check(off[i] < region_len &&
		      region_len - off[i] >= lim.page_size);
	}
	return 0;
}
