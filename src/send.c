/* SPDX-License-Identifier: MIT */
/*
 * send.c - the send engine. The owner thread fills a batch of offsets; a
 * full batch is handed to the next idle channel by swapping buffers (no
 * offset is copied). Each channel thread detects zero pages, asks the
 * method for the packet's scatter-gather list and gives it to its
 * transport. A sync ends a round on every channel; the end of session
 * waits for the receiver's FIN on every channel.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "escape.h"
#include "failover.h"
#include "guard.h"
#include "integrity.h"
#include "populate.h"
#include "session.h"

/* A page is zero when every byte is; unrolled so that the compiler
 * vectorises it, with an early exit per 256 bytes for pages with data. */
static bool page_is_zero(const uint8_t *p, uint32_t size)
{
	const uint64_t *w = (const uint64_t *)p;

	for (uint32_t i = 0; i < size / 8; i += 32) {
		uint64_t acc = 0;

		for (int j = 0; j < 32; j++)
			acc |= w[i + j];
		if (acc)
			return false;
	}
	return true;
}

static int send_hdr(struct mfd_channel *ch, uint8_t type, uint32_t round)
{
	struct mfd_hdr h = { .type = type, .round = round };
	uint8_t buf[MFD_HDR_SIZE];
	int r;

	mfd__hdr_encode(&h, buf);
	r = mfd__tp_send_buf(ch->conn, buf, sizeof(buf));
	if (!r)
		mfd__stat_add(&ch->st.bytes, sizeof(buf));
	return r;
}

/* A channel waiting for its share of a low rate is not a stall. */
static int rate_tick(void *arg)
{
	struct mfd_channel *ch = arg;

	return send_hdr(ch, MFD_PKT_KEEPALIVE, 0);
}

static int send_zero_range(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_hdr h = { .type = MFD_PKT_ZERO_RANGE,
			     .packet_num = ch->job_packet_num,
			     .round = ch->job_round,
			     .region = ch->job_region,
			     .payload_len = MFD_RANGE_SIZE };
	uint8_t buf[MFD_HDR_SIZE + MFD_RANGE_SIZE];
	int r;

	mfd__hdr_encode(&h, buf);
	mfd__range_encode(ch->job_range_offset, ch->job_range_length,
			  buf + MFD_HDR_SIZE);
	if (s->features & MFD_FEAT_CHECKSUM)
		mfd__hdr_set_checksum(buf, mfd__packet_checksum(buf, sizeof(buf),
								NULL, 0));
	r = mfd__ratelimit_take(&s->ratelimit, sizeof(buf), &s->failed,
				s->keepalive_ms, rate_tick, ch);
	if (!r)
		r = mfd__tp_send_buf(ch->conn, buf, sizeof(buf));
	if (r)
		return r;
	mfd__stat_add(&ch->st.bytes, sizeof(buf));
	mfd__stat_add(&ch->st.packets, 1);
	mfd__stat_add(&ch->st.zero_pages,
		      ch->job_range_length / s->cfg.page_size);
	return 0;
}

/*
 * One piece of a blob: its bytes are copied into the channel's own
 * buffer, padded with zeros to whole pages, and go through the method
 * like the pages of a packet; a descriptor takes the offsets' place. On a
 * one-sided transport the buffer is no region, so it goes on the stream.
 */
static int send_blob(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_packet *p = &ch->pkt;
	const struct mfd_blob_desc *d = &ch->job_blob;
	uint32_t ps = s->cfg.page_size, ppp = s->cfg.pages_per_packet;
	uint32_t n = mfd__blob_piece_pages(d->total, d->offset, ps, ppp);
	uint64_t len = d->total - d->offset;
	struct mfd_region piece = { .length = (uint64_t)n * ps };
	uint8_t desc[MFD_BLOB_DESC_MAX];
	int r;

	if (len > (uint64_t)n * ps)
		len = (uint64_t)n * ps;
	if (!ch->blob_buf) {
		ch->blob_buf = malloc((size_t)ppp * ps);
		if (!ch->blob_buf) {
			mfd__session_fail(s, (int)ch->index, -ENOMEM,
					  "no memory for a blob buffer");
			return -ENOMEM;
		}
	}
	if (len) /* an empty blob has no data pointer to copy from */
		memcpy(ch->blob_buf, ch->job_blob_data, len);
	memset(ch->blob_buf + len, 0, (size_t)n * ps - len);
	piece.mem = ch->blob_buf;
	memset(&p->hdr, 0, sizeof(p->hdr));
	p->hdr.type = MFD_PKT_BLOB;
	p->hdr.method = s->cfg.method;
	p->hdr.packet_num = ch->job_packet_num;
	p->hdr.round = ch->job_round;
	p->hdr.region = ch->job_region; /* the blob's number */
	p->hdr.normal = n;
	for (uint32_t i = 0; i < n; i++)
		p->offsets[i] = (uint64_t)i * ps;
	p->region = &piece;
	p->header_apart = false;
	p->copy = ch->blob_buf;
	p->stable = NULL;
	p->raw_from_region = false;
	p->staged = false;
	p->desc = desc;
	p->desc_len = mfd__blob_desc_encode(d, desc);
	r = s->method->send_prepare(&ch->mctx, p);
	p->desc_len = 0;
	if (r) {
		mfd__session_fail(s, ch->index, r, "blob '%s': %s", d->name,
				  ch->mctx.err);
		return r;
	}
	if (s->features & MFD_FEAT_CHECKSUM)
		mfd__hdr_set_checksum(p->wire,
				      mfd__packet_checksum(p->wire, p->wire_len,
							   p->iov + 1,
							   p->niov - 1));
	r = mfd__ratelimit_take(&s->ratelimit, p->next_packet_size, &s->failed,
				s->keepalive_ms, rate_tick, ch);
	if (!r)
		r = mfd__tp_send(ch->conn, p->iov, p->niov, 0);
	if (r)
		return r;
	mfd__stat_add(&ch->st.bytes, p->next_packet_size);
	mfd__stat_add(&ch->st.blob_bytes, len);
	if (d->offset + len == d->total) /* its last piece */
		mfd__stat_add(&ch->st.blobs, 1);
	return 0;
}

/*
 * Sort the job's pages into normal (from the front, in their order, so
 * that runs stay adjacent) and zero ones (from the back). With a stable
 * copy, each page is copied first and judged on the copy, so that what is
 * judged, compressed, checksummed and sent is the same content even when
 * the page is rewritten meanwhile.
 */
static void sort_pages(struct mfd_session *s, struct mfd_channel *ch,
		       uint8_t *copy, uint32_t *normal, uint32_t *zero)
{
	struct mfd_packet *p = &ch->pkt;
	const struct mfd_region *rg = &s->regions[ch->job_region];
	uint32_t ps = s->cfg.page_size, n = ch->job_count;

	*normal = *zero = 0;
	/* the pages are read here to find zero pages, or copied; with
	 * neither, a region sent from its file is never touched */
	if (copy || s->cfg.zero_page_detection || !rg->by_file)
		mfd__populate(rg->mem, ch->job_offsets, n, ps, false);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = ch->job_offsets[i];
		const uint8_t *page = rg->mem + off;

		if (copy) {
			memcpy(copy + (size_t)*normal * ps, page, ps);
			page = copy + (size_t)*normal * ps;
		}
		if (s->cfg.zero_page_detection && page_is_zero(page, ps))
			p->offsets[n - 1 - (*zero)++] = off;
		else
			p->offsets[(*normal)++] = off;
	}
}

int mfd__send_pages(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_packet *p = &ch->pkt;
	const struct mfd_region *rg = &s->regions[ch->job_region];
	uint32_t ps = s->cfg.page_size, normal, zero;
	uint64_t inlined = ch->conn->inline_sends;
	uint64_t landed = ch->conn->landed_sends;
	int r;

	/* a compressed method over a stream without checksums judges the
	 * pages in place and copies only what it compresses */
	bool defer = ch->stable && !(s->features & MFD_FEAT_CHECKSUM) &&
		     !ch->conn->ops->one_sided;

	sort_pages(s, ch, defer ? NULL : ch->stable, &normal, &zero);
	memset(&p->hdr, 0, sizeof(p->hdr));
	p->hdr.type = MFD_PKT_PAGES;
	p->hdr.method = s->cfg.method;
	p->hdr.packet_num = ch->job_packet_num;
	p->hdr.round = ch->job_round;
	p->hdr.region = ch->job_region;
	p->hdr.normal = normal;
	p->hdr.zero = zero;
	p->region = rg;
	/* the urgent channel sends without zero-copy */
	p->header_apart = s->cfg.zero_copy && ch != s->urgent;
	p->copy = defer ? NULL : ch->stable;
	p->stable = defer ? ch->stable : NULL;
	p->raw_from_region = ch->conn->ops->one_sided;
	p->staged = ch->conn->ops->one_sided &&
		    ((s->features & MFD_FEAT_CHECKSUM) || rg->staged);
	r = s->method->send_prepare(&ch->mctx, p);
	if (r) {
		mfd__session_fail(s, ch->index, r, "packet %llu: %s",
				  (unsigned long long)p->hdr.packet_num,
				  ch->mctx.err);
		return r;
	}
	if (s->features & MFD_FEAT_CHECKSUM) {
		int first = p->header_apart ? 0 : 1;

		mfd__hdr_set_checksum(p->wire,
				      mfd__packet_checksum(p->wire, p->wire_len,
							   p->iov + first,
							   p->niov - first));
	}
	/* answers to page requests go first, whatever the rate */
	if (ch != s->urgent)
		r = mfd__ratelimit_take(&s->ratelimit, p->next_packet_size,
					&s->failed, s->keepalive_ms, rate_tick,
					ch);
	if (r)
		return r;
	if (p->header_apart) {
		/* the header buffer is reused for the next packet, so it
		 * must be copied by the kernel now */
		r = mfd__tp_send_buf(ch->conn, p->wire, p->wire_len);
		/* the copy is rewritten by the next packet, before a
		 * zero-copy send of it would have completed */
		if (!r)
			r = mfd__tp_send(ch->conn, p->iov, p->niov,
					 MFD_SEND_MORE |
						 (p->copy ? 0 : MFD_SEND_ZEROCOPY));
	} else {
		r = mfd__tp_send(ch->conn, p->iov, p->niov, 0);
	}
	if (r)
		return r;
	if (ch->conn->inline_sends != inlined)
		mfd__stat_add(&ch->st.inline_packets, 1);
	if (ch->conn->landed_sends != landed)
		mfd__stat_add(&ch->st.landed_packets, 1);
	mfd__stat_add(&ch->st.bytes, p->next_packet_size);
	mfd__stat_add(&ch->st.payload_bytes, (uint64_t)normal * ps);
	mfd__stat_add(&ch->st.packets, 1);
	mfd__stat_add(&ch->st.normal_pages, normal);
	mfd__stat_add(&ch->st.zero_pages, zero);
	if (p->hdr.flags & MFD_FLAG_RAW)
		mfd__stat_add(&ch->st.raw_packets, 1);
	if (ch != s->urgent && s->pc && s->pc->switched)
		mfd__stat_add(&ch->st.postcopy_stream_pages, normal + zero);
	return 0;
}

/*
 * A send or receive failed: a receiver that failed the session sends its
 * reason (a FIN with a message) on every channel before it stops reading,
 * so look for it before reporting our own, poorer, error (a broken pipe).
 */
static bool receiver_said_why(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_limits lim = { .features = s->features };
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_deadline d;
	struct mfd_hdr h;

	mfd__deadline_start(&d, 500, "the receiver's reason");
	if (mfd__deadline_recv(&d, ch->conn, buf, sizeof(buf)) ||
	    mfd__hdr_decode(buf, &lim, &h, NULL, 0) ||
	    h.type != MFD_PKT_FIN || !h.payload_len)
		return false;
	mfd__peer_failed(s, ch, h.payload_len, &d, -EIO);
	return true;
}

/*
 * Wait for the receiver's answer: FIN after our END (a FIN with a message
 * says why the receiver failed the session, a region that differs), or
 * SYNC_ACK after a SYNC on one-sided transports and with failover (the
 * round is applied). With failover, LOST reports may come first, and an
 * END may be answered with a SYNC_ACK: the receiver lost a channel in the
 * last round, so that round was a sync (protocol.md 15); *as_sync says
 * so.
 */
static int recv_answer(struct mfd_session *s, struct mfd_channel *ch,
		       uint8_t want, bool *as_sync)
{
	struct mfd_limits lim = { .features = s->features,
				  .region_count = (uint32_t)s->nregions };
	uint64_t t = s->cfg.timeout_ms;
	uint8_t buf[MFD_HDR_SIZE];
	char err[160];
	struct mfd_deadline d;
	struct mfd_hdr h;
	int r;

	/* with failover the receiver may first need a whole timeout to find
	 * a silent channel dead before it can answer */
	if (mfd__failover(s) && t)
		t = t * 2 > UINT32_MAX ? UINT32_MAX : t * 2;
	/* the headers and their payloads under one deadline */
	mfd__deadline_start(&d, (unsigned)t,
			    t == s->cfg.timeout_ms
				    ? "the receiver's answer"
				    : "the receiver's answer (failover waits "
				      "twice the timeout)");
	/* at most one LOST per channel before the answer; a KEEPALIVE says
	 * the receiver is still at work on the END (hashing, committing),
	 * and the wait starts again */
	for (unsigned lost = 0;;) {
		r = mfd__deadline_recv(&d, ch->conn, buf, sizeof(buf));
		if (r)
			return r;
		r = mfd__hdr_decode(buf, &lim, &h, err, sizeof(err));
		if (!r && h.type == MFD_PKT_KEEPALIVE && want == MFD_PKT_FIN) {
			mfd__deadline_start(&d, (unsigned)t, d.what);
			continue;
		}
		if (r || h.type != MFD_PKT_LOST)
			break;
		if (lost == s->nchannels) {
			snprintf(err, sizeof(err),
				 "more LOST packets than the %u channels",
				 s->nchannels);
			r = -EBADMSG;
			break;
		}
		r = mfd__take_lost(s, ch, &h, &d);
		if (r)
			return r;
		lost++;
	}
	if (!r && as_sync && mfd__failover(s) && want == MFD_PKT_FIN &&
	    h.type == MFD_PKT_SYNC_ACK && h.round == ch->job_round) {
		*as_sync = true;
		return mfd__tp_set_timeout(ch->conn, s->cfg.timeout_ms);
	}
	/* a FIN with a reason says the receiver failed, in whatever round
	 * it was, whatever answer was due */
	if (!r && h.type == MFD_PKT_FIN && h.payload_len)
		return mfd__peer_failed(s, ch, h.payload_len, &d, -EIO);
	if (!r && (h.type != want || h.round != ch->job_round)) {
		snprintf(err, sizeof(err),
			 "packet type %u round %u instead of type %u round %u",
			 h.type, h.round, want, ch->job_round);
		r = -EBADMSG;
	}
	if (r) {
		mfd__session_fail(s, (int)ch->index, r,
				  "bad answer from the receiver: %s", err);
		return r;
	}
	if (!h.payload_len) /* the channel's own limit again */
		return mfd__tp_set_timeout(ch->conn, s->cfg.timeout_ms);
	return mfd__peer_failed(s, ch, h.payload_len, &d, -EIO);
}

/* The digest of every region, after the last round, on channel 0. */
static int send_verify(struct mfd_session *s, struct mfd_channel *ch)
{
	uint8_t buf[MFD_HDR_SIZE + 8 * MFD_MAX_REGIONS];
	struct mfd_hdr h = { .type = MFD_PKT_VERIFY, .round = ch->job_round,
			     .payload_len = 8 * (uint32_t)s->nregions };
	uint64_t d[MFD_MAX_REGIONS];
	int r;

	for (int i = 0; i < s->nregions; i++)
		d[i] = mfd__region_digest(s->regions[i].mem,
					  s->regions[i].length);
	mfd__hdr_encode(&h, buf);
	mfd__offsets_encode(d, (uint32_t)s->nregions, buf + MFD_HDR_SIZE);
	r = mfd__tp_send_buf(ch->conn, buf, MFD_HDR_SIZE + h.payload_len);
	if (!r)
		mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + h.payload_len);
	return r;
}

static int run_job(struct mfd_session *s, struct mfd_channel *ch,
		   enum mfd_job job)
{
	int r;

	switch (job) {
	case MFD_JOB_PAGES:
		return mfd__send_pages(s, ch);
	case MFD_JOB_ZERO_RANGE:
		return send_zero_range(s, ch);
	case MFD_JOB_BLOB:
		return send_blob(s, ch);
	case MFD_JOB_SYNC:
		/* after this, no page of the round is referenced anymore */
		r = mfd__tp_flush(ch->conn);
		if (r && r != -ENOTSUP)
			return r;
		r = send_hdr(ch, MFD_PKT_SYNC, ch->job_round);
		if (!r && (ch->conn->ops->one_sided || mfd__failover(s)))
			r = recv_answer(s, ch, MFD_PKT_SYNC_ACK, NULL);
		if (!r) /* the channel's end of the round, as on a receiver */
			mfd__stat_add(&ch->st.rounds, 1);
		return r;
	case MFD_JOB_VERIFY:
		return send_verify(s, ch);
	case MFD_JOB_POSTCOPY:
		r = mfd__pc_send_switch(s, ch);
		if (!r)
			mfd__stat_add(&ch->st.rounds, 1);
		return r;
	case MFD_JOB_END:
		r = send_hdr(ch, MFD_PKT_END, ch->job_round);
		return r ? r : recv_answer(s, ch, MFD_PKT_FIN, &ch->end_as_sync);
	case MFD_JOB_NONE:
		break;
	}
	return -EINVAL;
}

static void update_zc_stats(struct mfd_channel *ch)
{
	struct mfd_conn *c = ch->conn;

	__atomic_store_n(&ch->st.zerocopy_sends, c->zc_sends, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->st.zerocopy_copied, c->zc_copied,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&ch->st.zerocopy_fallbacks, c->zc_fallbacks,
			 __ATOMIC_RELAXED);
}

struct job_call {
	struct mfd_session *s;
	struct mfd_channel *ch;
	enum mfd_job job;
};

static int job_call(void *arg)
{
	struct job_call *jc = arg;

	return run_job(jc->s, jc->ch, jc->job);
}

/* Run a job; a fault on region memory (its file shrank) ends the session
 * with a sentence that says where, not the process. */
static int run_guarded(struct mfd_session *s, struct mfd_channel *ch,
		       enum mfd_job job)
{
	struct job_call jc = { s, ch, job };
	uintptr_t addr = 0;
	int r = mfd__guarded(job_call, &jc, &addr);

	if (r == -EFAULT)
		mfd__fail_fault(s, ch, addr, false);
	return r;
}

static bool channel_lost(struct mfd_session *s, struct mfd_channel *ch)
{
	bool lost;

	pthread_mutex_lock(&s->lock);
	lost = ch->lost;
	pthread_mutex_unlock(&s->lock);
	return lost;
}

/* With failover, a channel whose connection failed (r) is retired, not
 * the session; true when so. A failure the session recorded already (a
 * bad answer, the receiver's reason, a fault) is the session's. */
static bool failed_over(struct mfd_session *s, struct mfd_channel *ch, int r,
			const char *what)
{
	char why[sizeof(ch->fate)];

	if (!mfd__failover(s) || mfd__session_err(s) || r == -EFAULT)
		return false;
	snprintf(why, sizeof(why), "%s%s", what,
		 ch->conn->err[0] ? ch->conn->err : strerror(-r));
	mfd__retire(s, ch, why);
	return true;
}

static void *send_thread(void *arg)
{
	struct mfd_channel *ch = arg;
	struct mfd_session *s = ch->s;

	for (;;) {
		enum mfd_job job;
		bool end;
		int r;

		pthread_mutex_lock(&s->lock);
		while (ch->job == MFD_JOB_NONE && !s->failed && !ch->lost) {
			/* the receiver times a silent channel out: an idle
			 * one says it is alive a few times per timeout */
			if (mfd__timed_wait(&ch->job_cond, &s->lock,
					    s->keepalive_ms) == ETIMEDOUT &&
			    ch->job == MFD_JOB_NONE && !s->failed)
				break;
		}
		job = s->failed || ch->lost ? MFD_JOB_NONE : ch->job;
		pthread_mutex_unlock(&s->lock);
		if (job == MFD_JOB_NONE && !mfd__session_err(s) &&
		    !channel_lost(s, ch)) {
			r = send_hdr(ch, MFD_PKT_KEEPALIVE, 0);
			if (r && !failed_over(s, ch, r, "keep-alive: "))
				mfd__session_fail(s, (int)ch->index, r,
						  "keep-alive: %s", ch->conn->err);
			if (r)
				break;
			continue;
		}
		if (job == MFD_JOB_NONE)
			break;

		r = run_guarded(s, ch, job);
		update_zc_stats(ch);
		mfd__stat_cpu(ch);
		if (r && (r == -EPIPE || r == -ECONNRESET) &&
		    !mfd__session_err(s))
			receiver_said_why(s, ch);
		/* a no-op when the failure is already recorded */
		if (r && !failed_over(s, ch, r, ""))
			mfd__session_fail(s, ch->index, r, "%s",
					  ch->conn->err[0] ? ch->conn->err
							   : strerror(-r));

		pthread_mutex_lock(&s->lock);
		/* an END answered as a sync (failover) is not the end; read
		 * before the owner may give the next job */
		end = job == MFD_JOB_END && !ch->end_as_sync;
		ch->job = MFD_JOB_NONE;
		pthread_cond_broadcast(&s->idle_cond);
		pthread_mutex_unlock(&s->lock);
		if (r || end)
			break;
	}
	/* the session failed: tell the receiver why, so that it can say
	 * more than "peer closed" */
	if (mfd__session_err(s)) {
		mfd__tell_peer(s, ch, MFD_PKT_ABORT, 0);
		mfd__tp_shutdown(ch->conn);
	}
	pthread_mutex_lock(&s->lock);
	ch->thread_done = true;
	pthread_cond_broadcast(&s->idle_cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* The receiver refused at the handshake: its answer says why. */
static int refused(struct mfd_session *s, struct mfd_channel *ch,
		   const uint8_t ackbuf[MFD_ACK_SIZE])
{
	struct mfd_ack a;
	char err[160], msg[256], text[300];
	int r = mfd__ack_decode(ackbuf, &a, err, sizeof(err));

	if (r) {
		mfd__session_fail(s, (int)ch->index, r, "%s", err);
		return r;
	}
	if (a.status == 0) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "the receiver accepted before the "
				  "handshake was complete");
		return -EPROTO;
	}
	if (a.msg_len > sizeof(msg))
		a.msg_len = sizeof(msg);
	if (mfd__tp_recv_buf(ch->conn, msg, a.msg_len))
		snprintf(text, sizeof(text), "%s", strerror(-a.status));
	else
		mfd__escape(text, sizeof(text), msg, a.msg_len);
	mfd__session_fail(s, (int)ch->index, a.status, "receiver refused: %s",
			  text);
	return a.status;
}

/*
 * Challenge-response: our nonce went with the init; the receiver answers
 * with its nonce and its proof, which we check before we prove ourselves,
 * so that a receiver without the secret learns nothing it could replay.
 */
static int authenticate(struct mfd_session *s, struct mfd_channel *ch,
			const uint8_t init[MFD_INIT_SIZE],
			const uint8_t ns[MFD_NONCE_SIZE])
{
	uint8_t chal[MFD_CHAL_SIZE], out[MFD_PROOF_SIZE] = { 0 };
	uint8_t want[MFD_MAC_SIZE];
	const uint8_t *nr = chal + 8, *proof = chal + 8 + MFD_NONCE_SIZE;
	struct mfd_deadline d;
	int r;

	/* the challenge's two reads end by one deadline */
	mfd__deadline_start(&d, s->cfg.timeout_ms, "the handshake");
	r = mfd__deadline_recv(&d, ch->conn, chal, MFD_ACK_SIZE);
	if (r)
		return r;
	if (!memcmp(chal, "MFDA", 4))
		return refused(s, ch, chal);
	if (memcmp(chal, "MFDC", 4)) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "expected an authentication challenge");
		return -EPROTO;
	}
	if (memcmp(chal + 4, "\0\0\0\0", 4)) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "reserved bytes of the authentication "
				  "challenge are not zero");
		return -EPROTO;
	}
	r = mfd__deadline_recv(&d, ch->conn, chal + MFD_ACK_SIZE,
			       MFD_CHAL_SIZE - MFD_ACK_SIZE);
	if (!r)
		r = mfd__tp_set_timeout(ch->conn, s->cfg.timeout_ms);
	if (r)
		return r;
	r = mfd__auth_proof(s->secret, s->cfg.secret_len, 'R', init, ns, nr,
			    want);
	if (!r && !mfd__auth_equal(want, proof)) {
		/* say so, so that the receiver's operator learns it too,
		 * but prove nothing */
		static const char why[] = "the sender's secret differs: the "
					  "receiver's proof does not match it";
		struct mfd_ack no = { .status = -EACCES,
				      .msg_len = sizeof(why) - 1 };
		uint8_t ack[MFD_ACK_SIZE];

		mfd__ack_encode(&no, ack);
		if (!mfd__tp_send_buf(ch->conn, ack, sizeof(ack)))
			mfd__tp_send_buf(ch->conn, why, sizeof(why) - 1);
		mfd__session_fail(s, (int)ch->index, -EACCES,
				  "the receiver does not know the secret "
				  "(the two ends hold different secrets)");
		return -EACCES;
	}
	memcpy(out, "MFDR", 4);
	if (!r)
		r = mfd__auth_proof(s->secret, s->cfg.secret_len, 'S', init,
				    ns, nr, out + 8);
	if (!r)
		r = mfd__tp_send_buf(ch->conn, out, sizeof(out));
	return r;
}

/* The init packet, authentication when configured, and on channel 0 the
 * region table. */
static int handshake(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_init in = {
		.version = MFD_PROTO_VERSION,
		.session_id = s->session_id,
		.channel = (uint16_t)ch->index,
		.channels = (uint16_t)s->nchannels,
		.method = (uint8_t)s->cfg.method,
		.page_size = s->cfg.page_size,
		.pages_per_packet = s->cfg.pages_per_packet,
		.features = s->features,
		.region_count = ch->index == 0 ? (uint32_t)s->nregions : 0,
		.timeout_ms = s->cfg.timeout_ms,
	};
	size_t cap = MFD_NONCE_SIZE + in.region_count * MFD_REGION_ENTRY_MAX;
	uint8_t init[MFD_INIT_SIZE], *buf = malloc(cap);
	size_t len = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	mfd__init_encode(&in, init);
	r = mfd__tp_send_buf(ch->conn, init, sizeof(init));
	if (!r && (s->features & MFD_FEAT_AUTH)) {
		if (getrandom(buf, MFD_NONCE_SIZE, 0) != MFD_NONCE_SIZE)
			r = -EIO;
		if (!r)
			r = mfd__tp_send_buf(ch->conn, buf, MFD_NONCE_SIZE);
		if (!r)
			r = authenticate(s, ch, init, buf);
	}
	for (uint32_t i = 0; !r && i < in.region_count; i++) {
		r = mfd__region_encode(s->regions[i].name,
				       s->regions[i].length, buf + len,
				       cap - len);
		if (r < 0)
			break;
		len += (size_t)r;
		r = 0;
	}
	if (!r && len)
		r = mfd__tp_send_buf(ch->conn, buf, len);
	free(buf);
	return r;
}

/* Read the receiver's answer to our handshake. */
static int recv_ack(struct mfd_session *s, struct mfd_channel *ch)
{
	uint8_t buf[MFD_ACK_SIZE];
	struct mfd_ack a;
	int r;

	r = mfd__tp_recv_buf(ch->conn, buf, sizeof(buf));
	if (r) {
		/* an endpoint that accepted but is not the receiver stalls
		 * every channel, the first one read included */
		mfd__session_fail(s, (int)ch->index, r,
				  "no handshake answer from the receiver: %s%s",
				  ch->conn->err,
				  r == -ETIMEDOUT && s->nep > 1
					  ? " (a receiver answers once every "
					    "channel has reached it: is every "
					    "endpoint of the list that "
					    "receiver?)"
					  : "");
		return r;
	}
	if (mfd__ack_decode(buf, &a, NULL, 0) == 0 && a.status == 0) {
		/* idle channels must satisfy the stricter timeout */
		s->keepalive_ms =
			mfd__keepalive_ms(s->cfg.timeout_ms, a.timeout_ms);
		return 0;
	}
	return refused(s, ch, buf);
}

/*
 * A receiver that refuses the session (the regions do not match) answers
 * channel 0 and stops listening, so a later channel's connect or
 * handshake fails: the answer waiting on channel 0 says why, and is the
 * error to report.
 */
static void early_refusal(struct mfd_session *s)
{
	uint8_t buf[MFD_ACK_SIZE];
	struct mfd_channel *ch = &s->ch[0];

	if (!ch->conn || mfd__tp_set_timeout(ch->conn, 1000) ||
	    mfd__tp_recv_buf(ch->conn, buf, sizeof(buf)))
		return;
	refused(s, ch, buf);
}

/*
 * Pages may change while they are sent (live precopy). What reads a page
 * more than once must read a copy: a compressor (zlib and zstd read their
 * input more than once) and the checksum, which must cover the bytes that
 * are sent. The plain `none` method sends pages as they are, each byte
 * read once: a page rewritten meanwhile arrives as either content or a
 * mix, and the next round's copy mends it. A compressed method judges
 * the pages in place and copies only those it compresses (a packet that
 * looks incompressible goes raw from the region, as none's pages do),
 * except where a checksum or a one-sided transport needs the copy.
 * One-sided transports place pages from region memory by address: a
 * checksummed page packet sends its copy on the stream instead, flagged
 * STAGED (protocol.md 6).
 */
static bool wants_stable_copy(const struct mfd_session *s)
{
	return s->cfg.method != MFD_METHOD_NONE ||
	       (s->features & MFD_FEAT_CHECKSUM);
}

int mfd__send_start(struct mfd_session *s)
{
	char err[256];
	unsigned n = s->cfg.channels, greeted = 0;
	int r;

	if (s->nregions == 0) {
		mfd__session_fail(s, -1, -EINVAL, "no region to send");
		return -EINVAL;
	}
	if (getrandom(&s->session_id, sizeof(s->session_id), 0) !=
	    sizeof(s->session_id)) {
		mfd__session_fail(s, -1, -errno, "getrandom: %s",
				  strerror(errno));
		return -EIO;
	}
	s->batch = calloc(s->cfg.pages_per_packet, sizeof(uint64_t));
	r = s->batch ? mfd__channels_alloc(s, n) : -ENOMEM;
	if (!r && (s->features & MFD_FEAT_POSTCOPY))
		r = mfd__pc_new(s);
	if (r) {
		mfd__session_fail(s, -1, r, "out of memory");
		return r;
	}
	for (unsigned i = 0; i < mfd__nconns(s); i++, greeted = i) {
		struct mfd_channel *ch = &s->ch[i];
		struct mfd_endpoint *ep;
		struct mfd_conn *c;

		r = mfd__channel_setup(s, ch);
		if (r)
			goto fail;
		if (wants_stable_copy(s)) {
			ch->stable = malloc((size_t)s->cfg.pages_per_packet *
					    s->cfg.page_size);
			if (!ch->stable) {
				mfd__session_fail(s, (int)i, -ENOMEM,
						  "setup: out of memory");
				r = -ENOMEM;
				goto fail;
			}
		}
		ep = &s->ep[i % s->nep];
		if (!strcmp(ep->uri.port, "0") &&
		    (ep->uri.scheme == MFD_SCHEME_TCP ||
		     ep->uri.scheme == MFD_SCHEME_RDMA)) {
			mfd__session_fail(s, (int)i, -EINVAL,
					  "'%s': a sender needs the receiver's "
					  "port (0 is for a receiver, which "
					  "picks one)",
					  ep->uri.text);
			r = -EINVAL;
			goto fail;
		}
		ep->uri.channel = i;
		ep->uri.stop = &s->failed;
		r = ep->tp->connect(&ep->uri, s->cfg.timeout_ms, &c, err,
				    sizeof(err));
		if (!r) {
			c->endpoint = i % s->nep;
			/* mfd__session_fail() walks the connections under
			 * the lock; a failure or a cancel while we connected
			 * found none to stop: no channel more is connected */
			pthread_mutex_lock(&s->lock);
			ch->conn = c;
			r = s->failed ? s->err : 0;
			pthread_mutex_unlock(&s->lock);
			if (r)
				goto fail;
		}
		if (r) {
			early_refusal(s);
			mfd__session_fail(s, (int)i, r, "%s", err);
			goto fail;
		}
		r = mfd__tp_set_timeout(ch->conn, s->cfg.timeout_ms);
		/* one-sided channels never copy a page anyway */
		if (!r && s->cfg.zero_copy && ch != s->urgent &&
		    !ch->conn->ops->one_sided)
			r = mfd__tp_enable_zerocopy(ch->conn);
		if (!r)
			r = handshake(s, ch);
		if (r) {
			/* a later channel may meet the reset of a receiver
			 * that refused channel 0 and left */
			if (i > 0)
				early_refusal(s);
			mfd__session_fail(s, (int)i, r, "handshake: %s",
					  ch->conn->err[0] ? ch->conn->err
							   : strerror(-r));
			goto fail;
		}
	}
	for (unsigned i = 0; i < mfd__nconns(s); i++) {
		r = recv_ack(s, &s->ch[i]);
		if (r)
			goto fail;
	}
	/* requests come when the receiver faults, maybe never: the
	 * urgent channel waits without a limit, and a dead receiver is
	 * the stream's to find (mfd__session_fail wakes the wait) */
	if (s->urgent) {
		r = mfd__tp_set_timeout(s->urgent->conn, 0);
		if (!r)
			r = mfd__pc_keepalive(s, s->urgent->conn);
		if (r) {
			mfd__session_fail(s, (int)n, r, "%s",
					  s->urgent->conn->err);
			return r;
		}
	}
	r = mfd__register_regions(s);
	if (r)
		return r;
	return mfd__channels_start(s, send_thread);
fail:
	/* the channels whose handshake went whole wait for the answer, the
	 * receiver with them: tell it why (a signal, a later channel that
	 * could not connect) rather than only close (protocol.md 4.5) */
	for (unsigned i = 0; i < greeted; i++) {
		mfd__tell_peer(s, &s->ch[i], MFD_PKT_ABORT, 0);
		/* rdma: the SEND completes before the disconnect */
		mfd__tp_flush(s->ch[i].conn);
		mfd__tp_shutdown(s->ch[i].conn);
	}
	return r;
}

void mfd__send_stop(struct mfd_session *s)
{
	struct mfd_deadline grace;

	if (s->started && !s->finished)
		mfd__session_fail(s, -1, -ECANCELED,
				  "session freed before it finished");
	/* A channel sending when the session failed finishes its packet
	 * and tells the receiver why; one still at it after the grace is
	 * blocked on a receiver that reads no more. */
	mfd__deadline_start(&grace, MFD_ABORT_GRACE_MS, "");
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; s->ch && i < s->nchannels; i++) {
		struct mfd_channel *ch = &s->ch[i];
		unsigned left;

		while (ch->thread_started && !ch->thread_done &&
		       (left = mfd__deadline_left(&grace)))
			mfd__timed_wait(&s->idle_cond, &s->lock, left);
		if (ch->thread_started && !ch->thread_done)
			mfd__tp_shutdown(ch->conn);
	}
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; s->ch && i < s->nchannels; i++)
		if (s->ch[i].thread_started)
			pthread_join(s->ch[i].thread, NULL);
	mfd__pc_stop(s);
}

/* Wait until channel c is idle or retired (c < 0: any live channel
 * idle, which it returns). */
static int wait_idle(struct mfd_session *s, int c)
{
	int r = -1;

	pthread_mutex_lock(&s->lock);
	while (!s->failed) {
		if (c >= 0) {
			if (s->ch[c].job == MFD_JOB_NONE || s->ch[c].lost) {
				r = c;
				break;
			}
		} else {
			for (unsigned i = 0; i < s->nchannels; i++) {
				unsigned k = (s->next_channel + i) % s->nchannels;

				if (s->ch[k].job == MFD_JOB_NONE &&
				    !s->ch[k].lost) {
					s->next_channel = k + 1;
					r = (int)k;
					break;
				}
			}
			if (r >= 0)
				break;
		}
		pthread_cond_wait(&s->idle_cond, &s->lock);
	}
	if (s->failed)
		r = s->err;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Give channel c (idle) a job; false when it was retired meanwhile (the
 * job is not given). For pages, the batch buffer changes hands. */
static bool give_job(struct mfd_session *s, unsigned c, enum mfd_job job)
{
	struct mfd_channel *ch = &s->ch[c];
	int r;

	pthread_mutex_lock(&s->lock);
	if (ch->lost) {
		pthread_mutex_unlock(&s->lock);
		return false;
	}
	r = mfd__ledger_record(s, ch, job);
	if (r) {
		pthread_mutex_unlock(&s->lock);
		mfd__session_fail(s, (int)c, r, "failover: out of memory");
		return false;
	}
	if (job == MFD_JOB_PAGES) {
		uint64_t *t = ch->job_offsets;

		ch->job_offsets = s->batch;
		s->batch = t;
		ch->job_count = s->batch_n;
		ch->job_region = (uint32_t)s->batch_region;
		ch->job_packet_num = s->next_packet_num++;
		s->batch_n = 0;
	}
	ch->end_as_sync = false;
	ch->job_round = s->round;
	ch->job = job;
	mfd__rounds_busy(&s->round_log);
	pthread_cond_signal(&ch->job_cond);
	pthread_mutex_unlock(&s->lock);
	return true;
}

/* The next live idle channel, given the job (its fields, if any, set by
 * fill under the lock); retries while channels are retired under it. */
static int give_any(struct mfd_session *s, enum mfd_job job,
		    void (*fill)(struct mfd_channel *ch, const void *arg),
		    const void *arg)
{
	for (;;) {
		int c = wait_idle(s, -1);

		if (c < 0)
			return c;
		if (fill) {
			pthread_mutex_lock(&s->lock);
			fill(&s->ch[c], arg);
			pthread_mutex_unlock(&s->lock);
		}
		if (give_job(s, (unsigned)c, job))
			return 0;
	}
}

int mfd__flush_batch(struct mfd_session *s)
{
	return s->batch_n ? give_any(s, MFD_JOB_PAGES, NULL, NULL) : 0;
}

/* A call that sends is valid now; after the postcopy switch, only
 * mfd_send_finish() is (postcopy_ok). */
static int check_state(struct mfd_session *s, bool postcopy_ok)
{
	if (s->role != MFD_ROLE_SEND)
		return mfd__bad_call(s, -EINVAL, "a sender's call on a "
				     "receiver");
	if (!s->started || !s->ch)
		return mfd__bad_call(s, -EINVAL, "a sender's call before "
				     "mfd_session_start() connected");
	if (s->finished)
		return mfd__bad_call(s, -EPIPE, "a call after "
				     "mfd_send_finish()");
	if (!postcopy_ok && s->pc && s->pc->switched)
		return mfd__bad_call(s, -EINVAL, "a precopy call after the "
				     "switch to postcopy");
	return mfd__session_err(s);
}

/* region is an index of the session's; false with the sentence said */
static bool region_ok(struct mfd_session *s, int region)
{
	if (region >= 0 && region < s->nregions)
		return true;
	mfd__bad_call(s, -EINVAL, "region %d: the session has %d", region,
		      s->nregions);
	return false;
}

static int check_sending(struct mfd_session *s)
{
	return check_state(s, false);
}

/* Queue checked offsets into the batch. */
int mfd__queue_pages(struct mfd_session *s, int region,
		     const uint64_t *offsets, size_t count)
{
	int r;

	if (s->batch_region != region) {
		r = mfd__flush_batch(s);
		if (r)
			return r;
		s->batch_region = region;
	}
	for (size_t i = 0; i < count; i++) {
		s->batch[s->batch_n++] = offsets[i];
		if (s->batch_n == s->cfg.pages_per_packet) {
			r = mfd__flush_batch(s);
			if (r)
				return r;
		}
	}
	return 0;
}

MFD_EXTERN int mfd_send_pages(struct mfd_session *s, int region,
			      const uint64_t *offsets, size_t count)
{
	uint32_t ps = s->cfg.page_size;
	int r = check_sending(s);

	if (r)
		return r;
	if (!region_ok(s, region))
		return -EINVAL;
	for (size_t i = 0; i < count; i++)
		if ((offsets[i] & (ps - 1)) ||
		    offsets[i] >= s->regions[region].length)
			return mfd__bad_call(
				s, -EINVAL,
				"region '%s': page offset 0x%llx: expected a "
				"multiple of %u below 0x%llx",
				s->regions[region].name,
				(unsigned long long)offsets[i], ps,
				(unsigned long long)s->regions[region].length);
	return mfd__queue_pages(s, region, offsets, count);
}

struct range_job {
	uint32_t region;
	uint64_t offset, length, packet_num;
};

static void fill_range(struct mfd_channel *ch, const void *arg)
{
	const struct range_job *j = arg;

	ch->job_region = j->region;
	ch->job_range_offset = j->offset;
	ch->job_range_length = j->length;
	ch->job_packet_num = j->packet_num;
}

int mfd__queue_zero_range(struct mfd_session *s, int region, uint64_t offset,
			  uint64_t length)
{
	struct range_job j = { (uint32_t)region, offset, length,
			       s->next_packet_num++ };

	return give_any(s, MFD_JOB_ZERO_RANGE, fill_range, &j);
}

/* The range goes in one packet, on the next idle channel, without a page
 * of it being read. */
MFD_EXTERN int mfd_send_zero_range(struct mfd_session *s, int region,
				   uint64_t offset, uint64_t length)
{
	uint32_t ps = s->cfg.page_size;
	int r = check_sending(s);

	if (r)
		return r;
	if (!region_ok(s, region))
		return -EINVAL;
	if ((offset | length) & (ps - 1) ||
	    offset > s->regions[region].length ||
	    length > s->regions[region].length - offset)
		return mfd__bad_call(
			s, -EINVAL,
			"region '%s': zero range 0x%llx+0x%llx: expected "
			"multiples of %u inside its 0x%llx bytes",
			s->regions[region].name, (unsigned long long)offset,
			(unsigned long long)length, ps,
			(unsigned long long)s->regions[region].length);
	if (!length)
		return 0;
	return mfd__queue_zero_range(s, region, offset, length);
}

struct blob_job {
	uint32_t id;
	const struct mfd_blob_desc *desc;
	const uint8_t *data;
	uint64_t packet_num;
};

static void fill_blob(struct mfd_channel *ch, const void *arg)
{
	const struct blob_job *j = arg;

	ch->job_region = j->id;
	ch->job_blob_data = j->data;
	ch->job_blob = *j->desc;
	ch->job_packet_num = j->packet_num;
}

int mfd__queue_blob_piece(struct mfd_session *s, uint32_t id,
			  const struct mfd_blob_desc *desc, const uint8_t *data)
{
	struct blob_job j = { id, desc, data, s->next_packet_num++ };

	return give_any(s, MFD_JOB_BLOB, fill_blob, &j);
}

MFD_EXTERN int mfd_send_blob(struct mfd_session *s, const char *name,
			     const void *data, uint64_t len)
{
	uint64_t piece = (uint64_t)s->cfg.page_size * s->cfg.pages_per_packet;
	size_t name_len = name ? strlen(name) : 0;
	struct mfd_blob_desc desc = { .total = len,
				      .name_len = (uint16_t)name_len };
	uint32_t id;
	int r = check_sending(s);

	if (r)
		return r;
	if (!mfd__region_name_ok(name, name_len))
		return mfd__bad_call(s, -EINVAL, "a blob name of %zu bytes: "
				     "expected 1 to %d printable ASCII "
				     "characters", name_len,
				     MFD_MAX_REGION_NAME);
	if ((!data && len) || len > MFD_MAX_BLOB_BYTES)
		return mfd__bad_call(s, -EINVAL, "blob '%s': %s%llu bytes "
				     "(at most %llu)", name,
				     data ? "" : "no data for ",
				     (unsigned long long)len,
				     (unsigned long long)MFD_MAX_BLOB_BYTES);
	memcpy(desc.name, name, name_len + 1);
	id = s->next_blob_id++;
	/* one piece at least: an empty blob is delivered too */
	do {
		/* an empty blob may come without data: no NULL + 0 */
		r = mfd__queue_blob_piece(
			s, id, &desc,
			len ? (const uint8_t *)data + desc.offset : NULL);
		if (r)
			return r;
		desc.offset += piece;
	} while (desc.offset < len);
	return 0;
}

MFD_EXTERN int mfd_send_region(struct mfd_session *s, int region)
{
	uint64_t chunk[256];
	uint64_t len, off = 0;
	int r;

	if (region < 0 || region >= s->nregions)
		return -EINVAL;
	len = s->regions[region].length;
	while (off < len) {
		size_t n = 0;

		while (n < 256 && off < len) {
			chunk[n++] = off;
			off += s->cfg.page_size;
		}
		r = mfd_send_pages(s, region, chunk, n);
		if (r)
			return r;
	}
	return 0;
}

/* A walk over a dirty bitmap: the next word from `w` with dirty bits. */
struct dirty_walk {
	uint64_t *bitmap;
	uint64_t w, words, pages;
	uint64_t word, bits; /* the word found and the bits taken from it */
};

/*
 * Take (clear) the bits of the next dirty word; 1 when one was found, 0
 * at the end. Runs guarded: the bitmap is the application's memory and
 * may be a shared file mapping that shrank (a SIGBUS then fails the call,
 * not the process). Nothing in here holds a lock.
 */
static int take_dirty_word(void *arg)
{
	struct dirty_walk *d = arg;

	for (; d->w < d->words; d->w++) {
		uint64_t mask = ~0ull;

		if (d->w == d->words - 1 && d->pages % 64)
			mask = (1ull << (d->pages % 64)) - 1;
		if (!__atomic_load_n(&d->bitmap[d->w], __ATOMIC_RELAXED))
			continue;
		d->bits = __atomic_fetch_and(&d->bitmap[d->w], ~mask,
					     __ATOMIC_ACQ_REL) &
			  mask;
		if (d->bits) {
			d->word = d->w++;
			return 1;
		}
	}
	return 0;
}

MFD_EXTERN int mfd_send_dirty(struct mfd_session *s, int region,
			      uint64_t *bitmap, uint64_t *queued)
{
	struct dirty_walk d = { .bitmap = bitmap };
	uint64_t total = 0;
	uint64_t chunk[64];
	uintptr_t addr;
	int r;

	if (queued)
		*queued = 0;
	if (!region_ok(s, region))
		return -EINVAL;
	if (!bitmap)
		return mfd__bad_call(s, -EINVAL, "region '%s': no bitmap",
				     s->regions[region].name);
	mfd__rounds_scan(&s->round_log);
	d.pages = s->regions[region].length / s->cfg.page_size;
	d.words = (d.pages + 63) / 64;
	while ((r = mfd__guarded(take_dirty_word, &d, &addr)) > 0) {
		size_t n = 0;

		while (d.bits) {
			unsigned b = (unsigned)__builtin_ctzll(d.bits);

			d.bits &= d.bits - 1;
			chunk[n++] = (d.word * 64 + b) * s->cfg.page_size;
		}
		r = mfd_send_pages(s, region, chunk, n);
		if (r)
			return r;
		total += n;
		if (queued)
			*queued = total;
	}
	if (r == -EFAULT) {
		/* the pages of words already taken are queued; the rest of
		 * the round is lost: the session cannot go on */
		mfd__session_fail(s, -1, r,
				  "the dirty bitmap of region '%s' cannot be "
				  "read at %p (%llu bytes in; SIGBUS: a file "
				  "mapping that shrank?)",
				  s->regions[region].name, (void *)addr,
				  (unsigned long long)((uint8_t *)addr -
						       (uint8_t *)bitmap));
		return r;
	}
	mfd__rounds_dirty(&s->round_log, total);
	return 0;
}

/* Give every channel `job` once it is idle, then wait for all of them. */
static int all_channels(struct mfd_session *s, enum mfd_job job)
{
	int r = mfd__flush_batch(s);

	for (unsigned i = 0; !r && i < s->nchannels; i++) {
		r = wait_idle(s, (int)i);
		if (r >= 0) {
			give_job(s, i, job);
			r = 0;
		}
	}
	for (unsigned i = 0; !r && i < s->nchannels; i++) {
		r = wait_idle(s, (int)i);
		if (r >= 0)
			r = 0;
	}
	return r;
}

/* Every live channel passed the barrier: the next round begins, with
 * what the channels the receiver lost carried in it (*resent, unless
 * NULL). */
static int next_round(struct mfd_session *s, bool *resent)
{
	struct mfd_stats st;

	/* atomic: mfd_session_stats() reads it from any thread */
	__atomic_store_n(&s->round, s->round + 1, __ATOMIC_RELAXED);
	mfd_session_stats(s, &st);
	mfd__rounds_end(&s->round_log, st.bytes,
			st.normal_pages + st.zero_pages, s->cfg.page_size);
	return mfd__failover_barrier(s, resent);
}

/* End the round on every channel with `job` (SYNC, or POSTCOPY); with
 * failover, also the rounds that send again what lost channels carried,
 * until one passes with no channel lost. */
static int end_round(struct mfd_session *s, enum mfd_job job)
{
	bool resent = true;
	int r = 0;

	while (!r && resent) {
		r = all_channels(s, job);
		if (!r)
			r = next_round(s, &resent);
	}
	return r;
}

MFD_EXTERN int mfd_send_sync(struct mfd_session *s)
{
	int r = check_sending(s);

	return r ? r : end_round(s, MFD_JOB_SYNC);
}

/* Queue every page of region i in the postcopy map, in order (answers
 * may have sent some already: the receiver keeps the first copy). */
static int stream_region(struct mfd_session *s, int i)
{
	uint64_t *m = s->pc->map[i], chunk[64];
	uint64_t words = mfd__dirty_map_words(s->regions[i].length,
					      s->cfg.page_size);
	int r;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits;
		size_t n = 0;

		if (!__atomic_load_n(&m[w], __ATOMIC_RELAXED))
			continue;
		bits = __atomic_exchange_n(&m[w], 0, __ATOMIC_ACQ_REL);
		for (; bits; bits &= bits - 1)
			chunk[n++] = (w * 64 + (uint64_t)__builtin_ctzll(bits)) *
				     s->cfg.page_size;
		r = mfd__queue_pages(s, i, chunk, n);
		if (r)
			return r;
	}
	return 0;
}

MFD_EXTERN int mfd_send_postcopy(struct mfd_session *s,
				 const uint64_t *const *bitmaps)
{
	int r = check_state(s, true);

	if (r)
		return r;
	if (!s->pc)
		return mfd__bad_call(s, -EINVAL, "postcopy on a session made "
				     "without it (mfd_config.postcopy)");
	if (s->pc->switched)
		return mfd__bad_call(s, -EALREADY, "the session switched to "
				     "postcopy already");
	r = mfd__pc_take_maps(s, bitmaps);
	if (r)
		return r;
	/* the urgent thread runs before any request can come */
	r = mfd__pc_start_sender(s);
	if (!r)
		r = end_round(s, MFD_JOB_POSTCOPY);
	if (!r) { /* channel threads read it for their statistics */
		pthread_mutex_lock(&s->lock);
		s->pc->switched = true;
		pthread_mutex_unlock(&s->lock);
	}
	for (int i = 0; !r && i < s->nregions; i++)
		r = stream_region(s, i);
	if (!r)
		r = mfd__flush_batch(s);
	for (unsigned i = 0; !r && i < s->nchannels; i++) {
		r = wait_idle(s, (int)i);
		if (r >= 0)
			r = 0;
	}
	return r;
}

/* Whether the receiver answered the END as a sync (it lost a channel in
 * the last round, protocol.md 15). */
static bool end_was_sync(struct mfd_session *s)
{
	unsigned sync = 0, fin = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nchannels; i++) {
		sync += !s->ch[i].lost && s->ch[i].end_as_sync;
		fin += !s->ch[i].lost && !s->ch[i].end_as_sync;
	}
	pthread_mutex_unlock(&s->lock);
	/* the receiver decides once for every channel */
	if (sync && fin)
		mfd__session_fail(s, -1, -EBADMSG,
				  "bad answer from the receiver: END answered "
				  "with FIN on %u channels and as a sync on %u",
				  fin, sync);
	return sync && !fin;
}

/* The first live channel (VERIFY goes there), or -errno. */
static int first_live(struct mfd_session *s)
{
	int r = mfd__session_err(s);

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; !r && i < s->nchannels; i++)
		if (!s->ch[i].lost) {
			r = (int)i;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return r;
}

MFD_EXTERN int mfd_send_finish(struct mfd_session *s)
{
	int r = check_state(s, true);

	for (;;) {
		if (!r)
			r = end_round(s, MFD_JOB_SYNC);
		while (!r && (s->features & MFD_FEAT_VERIFY)) {
			int c = first_live(s);

			r = c < 0 ? c : wait_idle(s, c);
			if (r >= 0 && give_job(s, (unsigned)c, MFD_JOB_VERIFY))
				r = 0;
			else if (r >= 0)
				continue; /* retired meanwhile */
			break;
		}
		if (!r)
			r = all_channels(s, MFD_JOB_END);
		if (r)
			return r;
		if (!end_was_sync(s)) {
			r = mfd__session_err(s);
			if (r)
				return r;
			break;
		}
		/* what the lost channels carried goes in the sync's round */
		r = next_round(s, NULL);
	}
	mfd__pc_stop(s);
	s->finished = true;
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_MONOTONIC, &s->t_end);
	mfd__session_completed(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
