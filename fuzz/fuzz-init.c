/* SPDX-License-Identifier: MIT */
/*
 * fuzz-init.c - libFuzzer target: the handshake's init packet (what the
 * receiver reads from anyone who connects) and the receiver's answer
 * (what the sender reads back). An init that passes must hold values the
 * receiver can size its session from, and both must encode back to the
 * bytes they came from.
 *
 * Input: init (48 bytes) | ack (16 bytes); a short input is zero-padded.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[MFD_INIT_SIZE + MFD_ACK_SIZE] = { 0 };
	uint8_t again[MFD_INIT_SIZE];
	struct mfd_init in;
	struct mfd_ack a;
	char err[256];

	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	if (!mfd__init_decode(buf, &in, err, sizeof(err))) {
		check(in.channels >= 1 && in.channels <= MFD_MAX_CHANNELS);
		/* postcopy: index `channels` is the urgent channel */
		check(in.channel <
		      in.channels + !!(in.features & MFD_FEAT_POSTCOPY));
		check(in.method <= MFD_METHOD_ZSTD);
		check(in.page_size >= 512 && in.page_size <= 65536 &&
		      !(in.page_size & (in.page_size - 1)));
		check(in.pages_per_packet >= 1 &&
		      (uint64_t)in.pages_per_packet * in.page_size <=
			      (4u << 20));
		check(in.region_count <= MFD_MAX_REGIONS);
		check((in.channel == 0) == (in.region_count > 0));
		mfd__init_encode(&in, again);
		check(!memcmp(again, buf, MFD_INIT_SIZE));
	}
	if (!mfd__ack_decode(buf + MFD_INIT_SIZE, &a, err, sizeof(err))) {
		check(a.status <= 0 && (a.status < 0 || !a.msg_len));
		mfd__ack_encode(&a, again);
		check(!memcmp(again, buf + MFD_INIT_SIZE, MFD_ACK_SIZE));
	}
	return 0;
}
