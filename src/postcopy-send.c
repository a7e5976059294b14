/* SPDX-License-Identifier: MIT */
/*
 * postcopy-send.c - the sender's postcopy: the maps of the pages still to
 * send, the POSTCOPY packet that carries them, and the urgent thread
 * (mfd-urgent), which answers each page request with the page and the
 * next ones not sent yet, ahead of the stream and of the rate limit.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "session.h"

int mfd__pc_take_maps(struct mfd_session *s, const uint64_t *const *bitmaps)
{
	struct mfd_postcopy *pc = s->pc;
	uint32_t ps = s->cfg.page_size;
	uint64_t total = 0;

	if (ps < pc->sys_page)
		return mfd__bad_call(s, -EINVAL, "postcopy needs pages of at "
				     "least the system's %llu bytes",
				     (unsigned long long)pc->sys_page);
	if (!bitmaps)
		return mfd__bad_call(s, -EINVAL, "postcopy without bitmaps");
	for (int i = 0; i < s->nregions; i++) {
		uint64_t pages = s->regions[i].length / ps;
		uint64_t words = mfd__dirty_map_words(s->regions[i].length, ps);
		const uint64_t *b = bitmaps[i];

		total += 8 * words;
		if (b && pages % 64 && b[words - 1] >> (pages % 64))
			return mfd__bad_call(s, -EINVAL,
					     "region '%s': its bitmap marks "
					     "pages past its %llu",
					     s->regions[i].name,
					     (unsigned long long)pages);
	}
	if (total > UINT32_MAX) /* a payload length is a u32 */
		return mfd__bad_call(s, -E2BIG, "the postcopy maps come to "
				     "%llu bytes: at most 4 GiB",
				     (unsigned long long)total);
	for (int i = 0; i < s->nregions; i++) {
		uint64_t words = mfd__dirty_map_words(s->regions[i].length, ps);

		free(pc->map[i]); /* a call that failed before this one */
		pc->map[i] = calloc(words, 8);
		if (!pc->map[i])
			return -ENOMEM;
		if (bitmaps[i])
			memcpy(pc->map[i], bitmaps[i], words * 8);
	}
	return 0;
}

int mfd__pc_send_switch(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_hdr h = { .type = MFD_PKT_POSTCOPY, .round = ch->job_round };
	uint64_t words = 0, at = 0;
	uint64_t *buf;
	int r;

	for (int i = 0; ch->index == 0 && i < s->nregions; i++)
		words += mfd__dirty_map_words(s->regions[i].length,
					      s->cfg.page_size);
	h.payload_len = (uint32_t)(8 * words);
	/* the header, then the maps as big-endian words */
	buf = malloc(MFD_HDR_SIZE + 8 * words);
	if (!buf)
		return -ENOMEM;
	mfd__hdr_encode(&h, (uint8_t *)buf);
	for (int i = 0; words && i < s->nregions; i++) {
		uint64_t n = mfd__dirty_map_words(s->regions[i].length,
						  s->cfg.page_size);

		for (uint64_t w = 0; w < n; w++, at++) {
			uint64_t v = htobe64(s->pc->map[i][w]);

			memcpy((uint8_t *)buf + MFD_HDR_SIZE + 8 * at, &v, 8);
		}
	}
	r = mfd__tp_send_buf(ch->conn, buf, MFD_HDR_SIZE + 8 * words);
	free(buf);
	if (!r)
		mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + 8 * words);
	return r;
}

/* Whether page pg of region i is still to be streamed. An answer never
 * takes a page from the map: the stream sends every page of it before
 * END, so END still means "every page is in place" whatever answers are
 * in flight on the urgent channel (the receiver drops the second copy). */
static bool pending(struct mfd_postcopy *pc, uint32_t i, uint64_t pg)
{
	return __atomic_load_n(&pc->map[i][pg / 64], __ATOMIC_ACQUIRE) &
	       (1ull << (pg % 64));
}

/* Read one request and check it; 1 when the channel closed. */
static int read_request(struct mfd_session *s, struct mfd_channel *ch,
			uint64_t *off, uint64_t *len)
{
	struct mfd_packet *p = &ch->pkt;
	uint8_t buf[MFD_HDR_SIZE + MFD_REQUEST_SIZE];
	uint32_t ps = s->cfg.page_size, ppp = s->cfg.pages_per_packet;
	struct mfd_limits lim;
	char err[200];
	int r;

	mfd__session_limits(s, &lim);
	if (mfd__tp_recv_buf(ch->conn, buf, MFD_HDR_SIZE))
		return 1;
	r = mfd__hdr_decode(buf, &lim, &p->hdr, err, sizeof(err));
	if (!r && p->hdr.type != MFD_PKT_REQUEST) {
		snprintf(err, sizeof(err),
			 "packet type %u on the urgent channel (expected "
			 "REQUEST)",
			 p->hdr.type);
		r = -EPROTO;
	}
	if (r) {
		mfd__session_fail(s, (int)ch->index, r, "%s", err);
		return r;
	}
	if (mfd__tp_recv_buf(ch->conn, buf + MFD_HDR_SIZE, MFD_REQUEST_SIZE))
		return 1;
	/* at most one answer's worth: a request of 32 bytes must not make
	 * the sender send more, ahead of the rate limit */
	r = mfd__request_decode(buf + MFD_HDR_SIZE, ps,
				ppp < MFD_PC_ANSWER_PAGES ? ppp
							  : MFD_PC_ANSWER_PAGES,
				s->regions[p->hdr.region].length, off, len, err,
				sizeof(err));
	if (r)
		mfd__session_fail(s, (int)ch->index, r,
				  "request %llu for region '%s': %s",
				  (unsigned long long)p->hdr.packet_num,
				  s->regions[p->hdr.region].name, err);
	return r;
}

/* The answer: the pages asked for, then the next ones the stream has not
 * sent yet, up to MFD_PC_ANSWER_PAGES (or the request's length) in one
 * packet. */
static int answer(struct mfd_session *s, struct mfd_channel *ch,
		  uint64_t off, uint64_t len)
{
	uint32_t ps = s->cfg.page_size, ppp = s->cfg.pages_per_packet;
	uint32_t i = ch->pkt.hdr.region, n = 0, most;
	uint64_t end = s->regions[i].length;
	int r;

	most = (uint32_t)(len / ps);
	if (most < MFD_PC_ANSWER_PAGES)
		most = MFD_PC_ANSWER_PAGES < ppp ? MFD_PC_ANSWER_PAGES : ppp;
	for (uint64_t o = off; o < off + len; o += ps)
		ch->job_offsets[n++] = o;
	for (uint64_t o = off + len; n < most && o < end; o += ps) {
		if (!pending(s->pc, i, o / ps))
			break;
		ch->job_offsets[n++] = o;
	}
	ch->job_count = n;
	ch->job_region = i;
	ch->job_packet_num = ch->pkt.hdr.packet_num;
	r = mfd__send_pages(s, ch);
	if (r)
		return r;
	mfd__stat_add(&ch->st.postcopy_requests, 1);
	mfd__stat_add(&ch->st.postcopy_demand_pages, n);
	return 0;
}

struct answer_call {
	struct mfd_session *s;
	uint64_t off, len;
};

static int answer_call(void *arg)
{
	struct answer_call *a = arg;

	return answer(a->s, a->s->urgent, a->off, a->len);
}

static void *urgent_main(void *arg)
{
	struct mfd_session *s = arg;
	struct mfd_channel *ch = s->urgent;

	for (;;) {
		struct answer_call a = { s, 0, 0 };
		uintptr_t addr = 0;
		bool stop;
		int r = read_request(s, ch, &a.off, &a.len);

		if (r == 0) {
			/* a region whose file shrank faults in the read */
			r = mfd__guarded(answer_call, &a, &addr);
			if (r == -EFAULT)
				mfd__fail_fault(s, ch, addr, false);
		}
		if (r == 0)
			continue;
		pthread_mutex_lock(&s->lock);
		stop = s->pc->stop;
		pthread_mutex_unlock(&s->lock);
		/* a closed urgent channel is no news: a dead receiver fails
		 * the stream, and a live one the session with its reason */
		if (r < 0 && !stop)
			mfd__session_fail(s, (int)ch->index, r,
					  "urgent channel: %s",
					  ch->conn->err[0] ? ch->conn->err
							   : strerror(-r));
		break;
	}
	return NULL;
}

int mfd__pc_start_sender(struct mfd_session *s)
{
	struct mfd_postcopy *pc = s->pc;
	struct mfd_channel *ch = s->urgent;
	int r;

	/* every answer is in the postcopy round, the one after the switch */
	ch->job_round = s->round + 1;
	r = pthread_create(&pc->urgent_thread, NULL, urgent_main, s);
	if (r) {
		mfd__session_fail(s, -1, -r, "pthread_create: %s",
				  strerror(r));
		return -r;
	}
	pc->urgent_started = true;
	pthread_setname_np(pc->urgent_thread, "mfd-urgent");
	return 0;
}
