/* SPDX-License-Identifier: MIT */
/*
 * failover.c - retiring channels, the sender's ledger of what each channel
 * carried in the current round, and the LOST reports (see failover.h and
 * protocol.md 15).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "escape.h"
#include "failover.h"
#include "transports/transport.h"

struct ledger_range {
	uint32_t region;
	uint64_t offset, length;
};

struct ledger_blob {
	uint32_t id;
	struct mfd_blob_desc desc;
	const uint8_t *data;
};

/* A ledger's summary has a bit per LEDGER_BLOCK words of its page map,
 * set where any bit of those words is: clearing and reading the map at a
 * barrier then cost what the round sent, not what the region holds (a
 * TiB of 4 KiB pages maps to 32 MiB per channel, whose pages stay
 * unallocated where nothing was recorded). */
#define LEDGER_BLOCK 64

struct mfd_ledger {
	uint64_t *pages[MFD_MAX_REGIONS]; /* a bit per page, NULL until used */
	uint64_t *summary[MFD_MAX_REGIONS];
	bool any_pages;
	struct ledger_range *ranges;
	size_t nranges, cap_ranges;
	struct ledger_blob *blobs;
	size_t nblobs, cap_blobs;
};

/* The session's channels that still count: at least min_channels (and
 * at least one) must. */
static unsigned min_live(const struct mfd_session *s)
{
	return s->cfg.min_channels ? s->cfg.min_channels : 1;
}

bool mfd__retire(struct mfd_session *s, struct mfd_channel *ch,
		 const char *why)
{
	char msg[sizeof(s->errmsg)];
	size_t n = 0;
	bool last;

	pthread_mutex_lock(&s->lock);
	if (ch->lost) {
		pthread_mutex_unlock(&s->lock);
		return false;
	}
	ch->lost = true;
	if (why) /* NULL: the receiver's report said it already */
		snprintf(ch->fate, sizeof(ch->fate), "%s", why);
	__atomic_store_n(&ch->st.channels_lost, 1, __ATOMIC_RELAXED);
	s->nlive--;
	if (s->role == MFD_ROLE_RECV) {
		s->lost_order[s->nlost++] = ch->index;
		s->lost_since_barrier = true;
	}
	last = s->nlive < min_live(s);
	if (last) {
		/* the message names each channel's fate; a receiver knows
		 * the sender's minimum only when it is none left */
		if (s->nlive == 0)
			n = (size_t)snprintf(msg, sizeof(msg),
					     "every channel was lost%s:",
					     s->role == MFD_ROLE_RECV
						     ? " (the sender gave up, "
						       "or every link failed)"
						     : "");
		else
			n = (size_t)snprintf(msg, sizeof(msg),
					     "%u of %u channels left (at "
					     "least %u needed, min_channels):",
					     s->nlive, s->nchannels,
					     min_live(s));
		for (unsigned i = 0; i < s->nchannels && n < sizeof(msg); i++)
			if (s->ch[i].lost)
				n += (size_t)snprintf(msg + n, sizeof(msg) - n,
						      " channel %u: %s;", i,
						      s->ch[i].fate);
		if (n && n < sizeof(msg))
			msg[n - 1] = '\0';
	}
	/* a barrier may now be complete without it; a sender's channel
	 * thread waiting for a job leaves */
	pthread_cond_broadcast(&s->barrier_cond);
	pthread_cond_broadcast(&s->idle_cond);
	pthread_cond_signal(&ch->job_cond);
	pthread_mutex_unlock(&s->lock);
	mfd__tp_shutdown(ch->conn);
	if (last)
		mfd__session_fail(s, -1, -ENOTCONN, "%s", msg);
	return true;
}

static struct mfd_ledger *ledger_of(struct mfd_channel *ch)
{
	if (!ch->ledger)
		ch->ledger = calloc(1, sizeof(*ch->ledger));
	return ch->ledger;
}

int mfd__ledger_record(struct mfd_session *s, struct mfd_channel *ch,
		       enum mfd_job job)
{
	struct mfd_ledger *l;
	uint32_t ps = s->cfg.page_size;

	if (!mfd__failover(s) ||
	    (job != MFD_JOB_PAGES && job != MFD_JOB_ZERO_RANGE &&
	     job != MFD_JOB_BLOB))
		return 0;
	l = ledger_of(ch);
	if (!l)
		return -ENOMEM;
	if (job == MFD_JOB_PAGES) {
		uint64_t **m = &l->pages[s->batch_region];
		uint64_t **sum = &l->summary[s->batch_region];
		uint64_t words = mfd__dirty_map_words(
			s->regions[s->batch_region].length, ps);

		if (!*m)
			*m = calloc(words, sizeof(**m));
		if (!*sum)
			*sum = calloc((words + 64 * LEDGER_BLOCK - 1) /
					      (64 * LEDGER_BLOCK),
				      sizeof(**sum));
		if (!*m || !*sum)
			return -ENOMEM;
		for (uint32_t i = 0; i < s->batch_n; i++) {
			uint64_t pg = s->batch[i] / ps;
			uint64_t block = pg / 64 / LEDGER_BLOCK;

			(*m)[pg / 64] |= 1ull << (pg % 64);
			(*sum)[block / 64] |= 1ull << (block % 64);
		}
		l->any_pages = true;
	} else if (job == MFD_JOB_ZERO_RANGE) {
		struct ledger_range *g = mfd__grow(l->ranges, &l->cap_ranges,
						   l->nranges, 8, sizeof(*g));

		if (!g)
			return -ENOMEM;
		l->ranges = g;
		g[l->nranges++] = (struct ledger_range){
			ch->job_region, ch->job_range_offset,
			ch->job_range_length
		};
	} else {
		struct ledger_blob *b = mfd__grow(l->blobs, &l->cap_blobs,
						  l->nblobs, 8, sizeof(*b));

		if (!b)
			return -ENOMEM;
		l->blobs = b;
		b[l->nblobs++] = (struct ledger_blob){ ch->job_region,
						       ch->job_blob,
						       ch->job_blob_data };
	}
	return 0;
}

/* Call fn for each block of region k's page map that the summary marks:
 * its first word and how many words it has. */
static int each_block(struct mfd_session *s, struct mfd_ledger *l, int k,
		      int (*fn)(struct mfd_session *s, int k, uint64_t *m,
				uint64_t w, uint64_t n, void *arg),
		      void *arg)
{
	uint64_t words = mfd__dirty_map_words(s->regions[k].length,
					      s->cfg.page_size);
	uint64_t blocks = (words + LEDGER_BLOCK - 1) / LEDGER_BLOCK;
	uint64_t *sum = l->summary[k];
	int r = 0;

	for (uint64_t i = 0; !r && sum && i < (blocks + 63) / 64; i++)
		for (uint64_t bits = sum[i]; !r && bits; bits &= bits - 1) {
			uint64_t b = i * 64 + (uint64_t)__builtin_ctzll(bits);
			uint64_t w = b * LEDGER_BLOCK;

			r = fn(s, k, l->pages[k], w,
			       words - w < LEDGER_BLOCK ? words - w
							: LEDGER_BLOCK,
			       arg);
		}
	return r;
}

static int clear_block(struct mfd_session *s, int k, uint64_t *m, uint64_t w,
		       uint64_t n, void *arg)
{
	(void)s, (void)k, (void)arg;
	memset(m + w, 0, n * sizeof(*m));
	return 0;
}

static void ledger_clear(struct mfd_session *s, struct mfd_ledger *l)
{
	if (!l)
		return;
	for (int k = 0; l->any_pages && k < s->nregions; k++) {
		uint64_t words = mfd__dirty_map_words(s->regions[k].length,
						      s->cfg.page_size);

		each_block(s, l, k, clear_block, NULL);
		if (l->summary[k])
			memset(l->summary[k], 0,
			       (words + 64 * LEDGER_BLOCK - 1) /
				       (64 * LEDGER_BLOCK) * sizeof(uint64_t));
	}
	l->any_pages = false;
	l->nranges = 0;
	l->nblobs = 0;
}

void mfd__ledger_free(struct mfd_channel *ch)
{
	struct mfd_ledger *l = ch->ledger;

	if (!l)
		return;
	for (int k = 0; k < MFD_MAX_REGIONS; k++) {
		free(l->pages[k]);
		free(l->summary[k]);
	}
	free(l->ranges);
	free(l->blobs);
	free(l);
	ch->ledger = NULL;
}

struct resent {
	uint64_t pages, bytes;
};

/* Queue again the pages of words w..w+n of region k's map. */
static int resend_block(struct mfd_session *s, int k, uint64_t *m,
			uint64_t w, uint64_t n, void *arg)
{
	struct resent *t = arg;
	uint32_t ps = s->cfg.page_size;
	uint64_t chunk[64];
	int r = 0;

	for (uint64_t end = w + n; !r && w < end; w++) {
		size_t got = 0;

		for (uint64_t bits = m[w]; bits; bits &= bits - 1)
			chunk[got++] =
				(w * 64 + (uint64_t)__builtin_ctzll(bits)) * ps;
		if (got)
			r = mfd__queue_pages(s, k, chunk, got);
		t->pages += got;
		t->bytes += (uint64_t)got * ps;
	}
	return r;
}

/* Queue again what l holds; the bytes it comes to are added to *bytes. */
static int resend(struct mfd_session *s, struct mfd_ledger *l,
		  uint64_t *pages, uint64_t *bytes)
{
	uint32_t ps = s->cfg.page_size;
	struct resent t = { 0, 0 };
	int r = 0;

	for (int k = 0; !r && l->any_pages && k < s->nregions; k++)
		r = each_block(s, l, k, resend_block, &t);
	*pages += t.pages;
	*bytes += t.bytes;
	for (size_t i = 0; !r && i < l->nranges; i++) {
		r = mfd__queue_zero_range(s, (int)l->ranges[i].region,
					  l->ranges[i].offset,
					  l->ranges[i].length);
		*pages += l->ranges[i].length / ps;
	}
	for (size_t i = 0; !r && i < l->nblobs; i++) {
		const struct ledger_blob *b = &l->blobs[i];
		uint64_t piece = (uint64_t)ps * s->cfg.pages_per_packet;
		uint64_t left = b->desc.total - b->desc.offset;

		r = mfd__queue_blob_piece(s, b->id, &b->desc, b->data);
		*bytes += left < piece ? left : piece;
	}
	return r;
}

int mfd__failover_barrier(struct mfd_session *s, bool *resent)
{
	struct mfd_ledger *again[MFD_MAX_CHANNELS];
	uint64_t pages = 0, bytes = 0, first;
	unsigned n = 0;
	int r = 0;

	if (resent)
		*resent = false;
	if (!mfd__failover(s))
		return 0;
	/* what a reported channel carried may not have been applied;
	 * everything the others carried was */
	for (unsigned i = 0; i < s->nchannels; i++) {
		struct mfd_channel *ch = &s->ch[i];
		bool reported;

		pthread_mutex_lock(&s->lock);
		reported = ch->reported;
		ch->reported = false;
		pthread_mutex_unlock(&s->lock);
		if (reported) {
			mfd__retire(s, ch, NULL);
			if (ch->ledger)
				again[n++] = ch->ledger;
		} else {
			ledger_clear(s, ch->ledger);
		}
	}
	/* each packet takes a number: what the resending took is its count */
	first = s->next_packet_num;
	for (unsigned i = 0; !r && i < n; i++)
		r = resend(s, again[i], &pages, &bytes);
	for (unsigned i = 0; i < n; i++)
		ledger_clear(s, again[i]);
	if (!r)
		r = mfd__flush_batch(s);
	__atomic_fetch_add(&s->resent_pages, pages, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->resent_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->resent_packets, s->next_packet_num - first,
			   __ATOMIC_RELAXED);
	if (resent)
		*resent = n > 0;
	return r ? r : mfd__session_err(s);
}

int mfd__take_lost(struct mfd_session *s, struct mfd_channel *ch,
		   const struct mfd_hdr *h, const struct mfd_deadline *d)
{
	char msg[MFD_FIN_MSG_MAX], text[160];
	struct mfd_channel *lost;
	int r = mfd__deadline_recv(d, ch->conn, msg, h->payload_len);

	if (r)
		return r;
	if (h->region >= s->nchannels) {
		mfd__session_fail(s, (int)ch->index, -EBADMSG,
				  "bad answer from the receiver: LOST for "
				  "channel %u of %u",
				  h->region, s->nchannels);
		return -EBADMSG;
	}
	lost = &s->ch[h->region];
	pthread_mutex_lock(&s->lock);
	lost->reported = true;
	if (!lost->lost)
		snprintf(lost->fate, sizeof(lost->fate),
			 "the receiver lost it: %s",
			 mfd__escape(text, sizeof(text), msg, h->payload_len));
	pthread_mutex_unlock(&s->lock);
	/* at once: its thread may be waiting for an answer that will not
	 * come, and the sync with it */
	mfd__retire(s, lost, NULL);
	return 0;
}

int mfd__send_lost_reports(struct mfd_session *s, struct mfd_channel *ch)
{
	for (;;) {
		uint8_t buf[MFD_HDR_SIZE + sizeof(ch->fate)];
		struct mfd_hdr h = { .type = MFD_PKT_LOST, .round = ch->round };
		int r;

		pthread_mutex_lock(&s->lock);
		if (ch->lost_told == s->nlost) {
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		h.region = s->lost_order[ch->lost_told++];
		h.payload_len = (uint32_t)strlen(s->ch[h.region].fate);
		memcpy(buf + MFD_HDR_SIZE, s->ch[h.region].fate,
		       h.payload_len);
		pthread_mutex_unlock(&s->lock);
		mfd__hdr_encode(&h, buf);
		r = mfd__tp_send_buf(ch->conn, buf,
				     MFD_HDR_SIZE + h.payload_len);
		if (r)
			return r;
	}
}
