/* SPDX-License-Identifier: MIT */
/*
 * recv.c - the receive engine. mfd_recv_wait() accepts the sender's
 * channels (refusing strays and bad inits without disturbing the
 * session), matches the announced regions, then runs one thread per
 * channel that validates each header completely before it touches memory,
 * reads the payload where the method says, applies zero pages, and at a
 * SYNC waits until every channel has finished the same round.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "escape.h"
#include "failover.h"
#include "guard.h"
#include "integrity.h"
#include "populate.h"
#include "session.h"

/* The longest a connection may take over its handshake. */
#define HANDSHAKE_MS 5000

/* Regions larger than this are refused as hostile (16 TiB). */
#define MAX_REGION_BYTES (1ull << 44)

static void prefault_stop(struct mfd_session *s);

static const char *type_name(uint8_t t)
{
	return t == MFD_PKT_SYNC       ? "SYNC"
	       : t == MFD_PKT_END      ? "END"
	       : t == MFD_PKT_POSTCOPY ? "POSTCOPY"
				       : "?";
}

/* VERIFY: the sender's digest of every region, kept until the END
 * barrier, when every page of every round is in place, to be compared
 * with ours (compare_digests). Channel 0 only, once, in the channel's
 * round. */
static int take_verify(struct mfd_session *s, struct mfd_channel *ch)
{
	uint8_t buf[8 * MFD_MAX_REGIONS];
	int r;

	r = mfd__tp_recv_buf(ch->conn, buf, ch->pkt.hdr.payload_len);
	if (r)
		return r;
	/* with failover it comes on the first channel still alive */
	if (ch->index != 0 && !mfd__failover(s)) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "VERIFY on a channel other than 0");
		return -EPROTO;
	}
	if (ch->pkt.hdr.round != ch->round) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "VERIFY for round %u (the channel is in "
				  "round %u)",
				  ch->pkt.hdr.round, ch->round);
		return -EPROTO;
	}
	pthread_mutex_lock(&s->lock);
	/* after a lost channel the last round is sent again, and so is
	 * its VERIFY */
	if (s->verified && !s->nlost) {
		pthread_mutex_unlock(&s->lock);
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "a second VERIFY packet");
		return -EPROTO;
	}
	s->verified = true;
	for (int i = 0; i < s->nregions; i++) {
		s->sent_digest[i] = 0;
		for (int b = 0; b < 8; b++)
			s->sent_digest[i] = s->sent_digest[i] << 8 |
					    buf[8 * i + b];
	}
	pthread_mutex_unlock(&s->lock);
	mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + ch->pkt.hdr.payload_len);
	return 0;
}

/* At the END barrier, by its last channel, before any FIN: our digests
 * against the sender's; the first region that differs is reported in
 * every FIN. */
static void compare_digests(struct mfd_session *s)
{
	for (int i = 0; s->verified && i < s->nregions; i++) {
		uint64_t d = mfd__region_digest(s->regions[i].mem,
						s->regions[i].length);

		if (d == s->sent_digest[i])
			continue;
		pthread_mutex_lock(&s->lock);
		snprintf(s->verify_msg, sizeof(s->verify_msg),
			 "region '%s' differs from the sender's (digest "
			 "%016llx, the sender's %016llx)",
			 s->regions[i].name, (unsigned long long)d,
			 (unsigned long long)s->sent_digest[i]);
		pthread_mutex_unlock(&s->lock);
		break;
	}
}

/* At the END barrier, while the channel threads wait: whether the sender
 * closed a live channel or sent anything after its END (it gave up); with
 * failover, every live one (a link may die, its sender still waits on the
 * others). Only looks: the keep-alive thread may be sending meanwhile. */
static bool sender_gone(struct mfd_session *s)
{
	unsigned live = 0, gone = 0;

	for (unsigned i = 0; i < s->nchannels; i++) {
		if (s->ch[i].lost)
			continue;
		live++;
		gone += mfd__tp_peer_gone(s->ch[i].conn, true);
	}
	return mfd__failover(s) ? live && gone == live : gone > 0;
}

MFD_EXTERN int mfd_recv_sender_present(struct mfd_session *s)
{
	int r;

	if (!s || s->role != MFD_ROLE_RECV ||
	    !__atomic_load_n(&s->committing, __ATOMIC_ACQUIRE))
		return -EINVAL;
	/* a failure of our own shuts the channels' reads down, which
	 * would look like the sender leaving */
	r = mfd__session_err(s);
	return r ? r : sender_gone(s) ? -EPIPE : 0;
}

/* At the END barrier, after compare_digests: the application's commit,
 * when nothing failed so far; a failed one is reported in every FIN.
 * Cancels are too late from here. Returns what the commit returned (0
 * when there was none to make). */
static int commit(struct mfd_session *s)
{
	char err[sizeof(s->verify_msg) - 32] = "";
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->failed || s->verify_msg[0] ||
	    (!s->verified && (s->features & MFD_FEAT_VERIFY));
	/* every page is in place: from here a cancel (a signal to the
	 * tool) would only make the sender report a failure for files
	 * that took their names; the commit's own failure still counts */
	s->cancel_too_late = !r;
	pthread_mutex_unlock(&s->lock);
	if (r || !s->cfg.commit_cb)
		return 0;
	/* hashing can be long too: a sender gone meanwhile would never
	 * hear of the commit */
	if (sender_gone(s)) {
		snprintf(err, sizeof(err), "the sender left before the "
			 "commit (it gave up or died)");
		r = -EPIPE;
	} else {
		__atomic_store_n(&s->committing, true, __ATOMIC_RELEASE);
		r = s->cfg.commit_cb(s->cfg.commit_opaque, err, sizeof(err));
		__atomic_store_n(&s->committing, false, __ATOMIC_RELEASE);
	}
	if (!r)
		return 0;
	pthread_mutex_lock(&s->lock);
	snprintf(s->verify_msg, sizeof(s->verify_msg), "cannot commit: %s",
		 err[0] ? err : strerror(-r));
	s->commit_err = r < 0 ? r : -EIO;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/*
 * At the end of a round, by the barrier's last channel while the others
 * wait: the round's blobs, whole, in the order they were sent (after a
 * lost channel, those not whole wait for their pieces sent again).
 * Returns 0 or the error that fails the session.
 */
static int deliver_blobs(struct mfd_session *s, struct mfd_channel *ch,
			 uint32_t round, bool lost)
{
	struct mfd_blob *list;
	char err[600];
	int r;

	pthread_mutex_lock(&s->lock);
	r = mfd__blobs_take(&s->blobs, round, lost, &list, err, sizeof(err));
	pthread_mutex_unlock(&s->lock);
	if (r) {
		mfd__session_fail(s, (int)ch->index, r, "%s", err);
		return r;
	}
	while (list) {
		struct mfd_blob *bl = list;

		list = bl->next;
		if (!r) {
			s->cb_err[0] = 0;
			r = s->cfg.blob_cb(s->cfg.blob_opaque, bl->name,
					   bl->data, bl->total);
			if (r)
				mfd__session_fail(s, (int)ch->index, r,
						  "blob '%s': %s", bl->name,
						  s->cb_err[0] ? s->cb_err
							       : strerror(-r));
			mfd__stat_add(&ch->st.blobs, !r);
			mfd__stat_add(&ch->st.blob_bytes, r ? 0 : bl->total);
		}
		mfd__blob_free(bl);
	}
	return r;
}

/*
 * Read a header where nothing but a sender's ABORT may come (behind its
 * END, before the handshake's answer), within ms: 1 when it was one,
 * the session then failed with its reason and err; 0 for anything else;
 * or the read's -errno (-ETIMEDOUT: nothing came).
 */
static int read_abort(struct mfd_session *s, struct mfd_channel *ch,
		      unsigned ms, int err)
{
	struct mfd_limits lim;
	struct mfd_deadline d;
	struct mfd_hdr h;
	uint8_t buf[MFD_HDR_SIZE];
	int r;

	mfd__session_limits(s, &lim);
	mfd__deadline_start(&d, ms, "a look for the sender's ABORT");
	r = mfd__deadline_recv(&d, ch->conn, buf, sizeof(buf));
	if (r)
		return r;
	if (mfd__hdr_decode(buf, &lim, &h, NULL, 0) || h.type != MFD_PKT_ABORT)
		return 0;
	mfd__deadline_start(&d, MFD_ABORT_GRACE_MS, "the sender's reason");
	mfd__peer_failed(s, ch, h.payload_len, &d, err);
	return 1;
}

/*
 * At the END barrier, before the commit: nothing follows an END on a
 * channel but what a sender that gave up sends, an ABORT, or its close.
 * A receiver stopped for longer than the sender's timeout (SIGSTOP, a
 * stall) finds its sender gone although every page is here: it must not
 * then commit and report success the sender never heard of. Each live
 * channel is looked at for a millisecond (the others wait at the barrier
 * and touch no connection). True when the sender left, the session then
 * failed with why. abort_only: after a commit that saw the sender leave,
 * only the reason it may have sent first (an ABORT) is looked for.
 */
static bool sender_left(struct mfd_session *s, bool abort_only)
{
	unsigned live = 0, closed = 0, first = 0;
	bool more = false;
	int first_r = 0;

	for (unsigned i = 0; i < s->nchannels; i++) {
		struct mfd_channel *ch = &s->ch[i];
		int r;

		if (ch->lost)
			continue;
		live++;
		r = read_abort(s, ch, 1, -ECANCELED);
		mfd__tp_set_timeout(ch->conn, s->cfg.timeout_ms);
		if (r == -ETIMEDOUT)
			continue;
		if (r == 1)
			return true;
		if (abort_only)
			continue;
		/* with failover a link may die after its END while the
		 * sender waits on the others: only all of them closed is
		 * the sender leaving */
		if (r && mfd__failover(s)) {
			if (!closed++)
				first = i, first_r = r;
			continue;
		}
		first = i, first_r = r ? r : -EPROTO, closed = live = 1;
		more = !r;
		break;
	}
	if (!closed || closed != live)
		return false;
	mfd__session_fail(s, (int)first, first_r,
			  "the sender %s after its END, before the end was "
			  "confirmed: it gave up (was this receiver stopped "
			  "for longer than the sender's timeout?)",
			  more ? "sent more" : "closed the channel");
	return true;
}

/*
 * While the END barrier's last channel hashes the regions and commits (a
 * write-back to a slow disk can outlast the sender's timeout), the sender
 * waits for its FIN: a KEEPALIVE on every live channel each keep-alive
 * interval tells it the receiver is at work. The other channels wait at
 * the barrier and touch no connection, so this thread has them all. A
 * channel whose send fails is left alone: its FIN will fail the same way.
 */
struct end_keepalive {
	struct mfd_session *s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	bool running;
};

static void *end_keepalive_run(void *arg)
{
	struct end_keepalive *k = arg;
	struct mfd_session *s = k->s;
	struct mfd_hdr h = { .type = MFD_PKT_KEEPALIVE };
	uint8_t buf[MFD_HDR_SIZE];
	bool *dead = calloc(s->nchannels, sizeof(*dead));

	mfd__hdr_encode(&h, buf);
	pthread_mutex_lock(&k->lock);
	while (!k->done && dead) {
		if (mfd__timed_wait(&k->cond, &k->lock, s->keepalive_ms) !=
			    ETIMEDOUT ||
		    k->done)
			continue;
		pthread_mutex_unlock(&k->lock);
		for (unsigned i = 0; i < s->nchannels; i++)
			if (!s->ch[i].lost && !dead[i])
				dead[i] = mfd__tp_send_buf(s->ch[i].conn, buf,
							   sizeof(buf)) != 0;
		pthread_mutex_lock(&k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	free(dead);
	return NULL;
}

static void end_keepalive_start(struct mfd_session *s, struct end_keepalive *k)
{
	*k = (struct end_keepalive){ .s = s };
	if (!s->keepalive_ms)
		return;
	pthread_mutex_init(&k->lock, NULL);
	mfd__cond_init(&k->cond);
	k->running = !pthread_create(&k->thread, NULL, end_keepalive_run, k);
	if (!k->running) {
		pthread_cond_destroy(&k->cond);
		pthread_mutex_destroy(&k->lock);
	}
}

static void end_keepalive_stop(struct end_keepalive *k)
{
	if (!k->running)
		return;
	pthread_mutex_lock(&k->lock);
	k->done = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
}

/*
 * The last live channel at the barrier (with s->lock held, which it may
 * drop meanwhile): what the barrier does, then wake the others. With
 * failover, an END barrier that a channel was lost before is a sync:
 * what the lost channel carried is still to come (*as_sync).
 */
static int barrier_pass(struct mfd_session *s, struct mfd_channel *ch,
			uint8_t type, uint32_t round)
{
	bool lost = s->lost_since_barrier;
	int r = 0;

	/* before the lock is dropped below: no waiter may pass it too */
	s->barrier_count = 0;
	s->barrier_as_sync = type == MFD_PKT_END && lost;
	if (s->barrier_as_sync)
		type = MFD_PKT_SYNC;
	s->lost_since_barrier = false;
	if (s->blobs.head) {
		/* every channel waits here and none touches the store:
		 * call back without the lock */
		pthread_mutex_unlock(&s->lock);
		r = deliver_blobs(s, ch, round, lost);
		pthread_mutex_lock(&s->lock);
	}
	if (type == MFD_PKT_END && !r) {
		/* every page sent is in place (a page still missing now was
		 * never sent: it faults in as zeros) */
		if (s->pc)
			mfd__pc_complete(s);
		/* hash and commit, without the lock */
		pthread_mutex_unlock(&s->lock);
		if (!sender_left(s, false)) {
			struct end_keepalive k;
			int c;

			end_keepalive_start(s, &k);
			compare_digests(s);
			c = commit(s);
			end_keepalive_stop(&k);
			/* a sender seen to leave during the commit may have
			 * said why first (a signal): its ABORT is the error */
			if (c == -EPIPE)
				sender_left(s, true);
		}
		pthread_mutex_lock(&s->lock);
	}
	if (type == MFD_PKT_POSTCOPY && !r && !s->failed) {
		char err[300];

		s->urgent->round = round + 1; /* the answers' round */
		/* a populate racing the drop would map a zero page that no
		 * later copy could replace */
		prefault_stop(s);
		r = mfd__pc_switch(s, err, sizeof(err));
		if (r) {
			pthread_mutex_unlock(&s->lock);
			mfd__session_fail(s, (int)ch->index, r, "postcopy: %s",
					  err);
			pthread_mutex_lock(&s->lock);
		}
	}
	s->barrier_gen++;
	if (type != MFD_PKT_END) /* atomic: stats read it */
		__atomic_store_n(&s->rounds, s->rounds + 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->barrier_cond);
	return r;
}

/*
 * Wait until every live channel reached the same barrier (SYNC or END).
 * 1 when an END barrier passed as a sync (failover), 0, or -errno. The
 * wait itself has no time limit: every channel not here yet is reading,
 * and its reads are bounded by the timeout (keep-alives show a live
 * sender channel that waits for its share of a low rate), so a dead
 * channel fails the session and wakes this one.
 */
static int barrier(struct mfd_session *s, struct mfd_channel *ch,
		   uint8_t type, uint32_t round)
{
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (s->barrier_count &&
	    (s->barrier_type != type || s->barrier_round != round)) {
		uint8_t ot = s->barrier_type;
		uint32_t orr = s->barrier_round;

		pthread_mutex_unlock(&s->lock);
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "%s of round %u while another channel waits "
				  "at %s of round %u",
				  type_name(type), round, type_name(ot), orr);
		return -EPROTO;
	}
	s->barrier_type = type;
	s->barrier_round = round;
	if (++s->barrier_count >= s->nlive) {
		r = barrier_pass(s, ch, type, round);
	} else {
		uint64_t gen = s->barrier_gen;

		/* a channel lost meanwhile no longer counts: the last one
		 * here passes the barrier then */
		while (gen == s->barrier_gen && !s->failed) {
			if (s->barrier_count >= s->nlive) {
				r = barrier_pass(s, ch, type, round);
				break;
			}
			pthread_cond_wait(&s->barrier_cond, &s->lock);
		}
	}
	if (s->failed)
		r = s->err;
	else if (!r && type == MFD_PKT_END && s->barrier_as_sync)
		r = 1;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void apply_zero_pages(struct mfd_region *rg, const uint64_t *off,
			     uint32_t n, uint32_t ps)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t pg = off[i] / ps;

		/* Clear only what may hold old data: never-written pages of
		 * zeroed memory stay untouched (and unfaulted). */
		if (!rg->zeroed) {
			memset(rg->mem + off[i], 0, ps);
		} else if (__atomic_load_n(&rg->written[pg / 64],
					   __ATOMIC_RELAXED) &
			   (1ull << (pg % 64))) {
			memset(rg->mem + off[i], 0, ps);
			__atomic_fetch_and(&rg->written[pg / 64],
					   ~(1ull << (pg % 64)),
					   __ATOMIC_RELAXED);
		}
	}
}

/*
 * Memory with content: give the range back to the file (a hole in a shared
 * file mapping, freed pages in shared memory), so that a sparse image
 * stays sparse; where the mapping cannot (a private one), write zeros.
 */
static void clear_memory(uint8_t *mem, uint64_t len)
{
	uintptr_t sys = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)mem + sys - 1) & ~(sys - 1);
	uintptr_t b = ((uintptr_t)mem + len) & ~(sys - 1);

	if (a < b && !madvise((void *)a, b - a, MADV_REMOVE)) {
		memset(mem, 0, a - (uintptr_t)mem);
		memset((void *)b, 0, (uintptr_t)mem + len - b);
	} else {
		memset(mem, 0, len);
	}
}

/* Pages off .. off + len of a region read zero. Zeroed memory needs only
 * the pages written earlier in the session cleared, found a word of the
 * map (64 pages) at a time. */
static void apply_zero_range(struct mfd_region *rg, uint64_t off, uint64_t len,
			     uint32_t ps)
{
	uint64_t first = off / ps, end = (off + len) / ps;

	if (!rg->zeroed) {
		clear_memory(rg->mem + off, len);
		return;
	}
	for (uint64_t pg = first; pg < end;) {
		uint64_t w = pg / 64, upto = (w + 1) * 64 < end ? (w + 1) * 64
								 : end;
		uint64_t mask = (upto - pg == 64 ? ~0ull
						 : ((1ull << (upto - pg)) - 1))
				<< (pg % 64);
		uint64_t hit = __atomic_fetch_and(&rg->written[w], ~mask,
						  __ATOMIC_RELAXED) &
			       mask;

		for (; hit; hit &= hit - 1)
			memset(rg->mem + (w * 64 + (uint64_t)__builtin_ctzll(hit)) * ps,
			       0, ps);
		pg = upto;
	}
}

/* Set the pages' bits, one atomic per word of the map rather than per
 * page (a packet's pages are mostly adjacent). */
static void mark_written(struct mfd_region *rg, const uint64_t *off,
			 uint32_t n, uint32_t ps)
{
	uint64_t word = 0, mask = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t pg = off[i] / ps;

		if (mask && pg / 64 != word) {
			__atomic_fetch_or(&rg->written[word], mask,
					  __ATOMIC_RELAXED);
			mask = 0;
		}
		word = pg / 64;
		mask |= 1ull << (pg % 64);
	}
	if (mask)
		__atomic_fetch_or(&rg->written[word], mask, __ATOMIC_RELAXED);
}

/* A STAGED payload (the pages as they are, on the stream) lands in the
 * channel's staging buffer, made on the first such packet. */
static int stage(struct mfd_channel *ch, struct mfd_packet *p)
{
	if (!ch->staging) {
		ch->staging = malloc((size_t)ch->mctx.pages_per_packet *
				     ch->mctx.page_size);
		if (!ch->staging) {
			mfd__session_fail(ch->s, (int)ch->index, -ENOMEM,
					  "no memory for a staging buffer");
			return -ENOMEM;
		}
	}
	p->iov[0].iov_base = ch->staging;
	p->iov[0].iov_len = p->hdr.payload_len;
	p->niov = 1;
	return 0;
}

/* ...and is copied into its pages once checked. */
static void unstage(struct mfd_channel *ch, const struct mfd_packet *p,
		    uint32_t ps)
{
	for (uint32_t i = 0; i < p->hdr.normal; i++)
		memcpy(p->region->mem + p->offsets[i],
		       ch->staging + (size_t)i * ps, ps);
}

/* A packet's round must be the channel's. */
static int check_round(struct mfd_session *s, struct mfd_channel *ch)
{
	const struct mfd_hdr *h = &ch->pkt.hdr;

	if (h->round == ch->round)
		return 0;
	mfd__session_fail(s, (int)ch->index, -EPROTO,
			  "packet %llu: round %u, but the channel is in round "
			  "%u",
			  (unsigned long long)h->packet_num, h->round,
			  ch->round);
	return -EPROTO;
}

/* Checked against the header's when checksums were negotiated. */
static int check_sum(struct mfd_session *s, struct mfd_channel *ch,
		     const uint8_t *wire, size_t wire_len,
		     const struct iovec *iov, int niov)
{
	struct mfd_packet *p = &ch->pkt;
	uint64_t sum;

	if (!(s->features & MFD_FEAT_CHECKSUM))
		return 0;
	sum = mfd__packet_checksum(wire, wire_len, iov, niov);
	if (sum == p->hdr.checksum)
		return 0;
	mfd__session_fail(s, (int)ch->index, -EBADMSG,
			  "packet %llu: checksum mismatch (sent %016llx, "
			  "computed %016llx)",
			  (unsigned long long)p->hdr.packet_num,
			  (unsigned long long)p->hdr.checksum,
			  (unsigned long long)sum);
	return -EBADMSG;
}

static int recv_zero_range(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_packet *p = &ch->pkt;
	struct mfd_region *rg = &s->regions[p->hdr.region];
	/* the packet buffer holds a header and pages_per_packet offsets,
	 * which may be fewer bytes than the range */
	uint8_t buf[MFD_HDR_SIZE + MFD_RANGE_SIZE];
	uint64_t off, len;
	char err[160];
	int r = check_round(s, ch);

	memcpy(buf, p->wire, MFD_HDR_SIZE);
	if (!r)
		r = mfd__tp_recv_buf(ch->conn, buf + MFD_HDR_SIZE,
				     MFD_RANGE_SIZE);
	if (!r)
		r = check_sum(s, ch, buf, sizeof(buf), NULL, 0);
	if (r)
		return r;
	r = mfd__range_decode(buf + MFD_HDR_SIZE, s->cfg.page_size,
			      rg->length, &off, &len, err, sizeof(err));
	if (r) {
		mfd__session_fail(s, (int)ch->index, r, "packet %llu: %s of "
				  "region '%s'",
				  (unsigned long long)p->hdr.packet_num, err,
				  rg->name);
		return r;
	}
	apply_zero_range(rg, off, len, s->cfg.page_size);
	mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + MFD_RANGE_SIZE);
	mfd__stat_add(&ch->st.packets, 1);
	mfd__stat_add(&ch->st.zero_pages, len / s->cfg.page_size);
	return 0;
}

/*
 * A blob piece: the descriptor is judged, the blob found or made room
 * for, and the piece claimed, all before its payload is read; the payload
 * then lands in the blob's buffer as a packet's pages land in a region.
 */
static int recv_blob(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_packet *p = &ch->pkt;
	uint32_t ps = s->cfg.page_size, ppp = s->cfg.pages_per_packet;
	unsigned long long num = (unsigned long long)p->hdr.packet_num;
	uint8_t buf[MFD_HDR_SIZE + MFD_BLOB_DESC_MAX];
	uint8_t *wire = buf + MFD_HDR_SIZE;
	struct mfd_region piece = { 0 };
	struct mfd_blob_desc d;
	struct mfd_blob *bl = NULL;
	char err[600];
	int r = check_round(s, ch);

	memcpy(buf, p->wire, MFD_HDR_SIZE);
	if (!r)
		r = mfd__tp_recv_buf(ch->conn, wire, MFD_BLOB_DESC_SIZE);
	if (r)
		return r;
	r = mfd__blob_desc_decode(wire, &d, err, sizeof(err));
	if (r)
		goto bad;
	r = mfd__tp_recv_buf(ch->conn, wire + MFD_BLOB_DESC_SIZE, d.name_len);
	if (r)
		return r;
	memcpy(d.name, wire + MFD_BLOB_DESC_SIZE, d.name_len);
	d.name[d.name_len] = 0;
	if (!mfd__region_name_ok(d.name, d.name_len)) {
		snprintf(err, sizeof(err), "blob name is not printable ASCII");
		r = -EBADMSG;
		goto bad;
	}
	r = mfd__blob_desc_check(&d, &p->hdr, ps, ppp, err, sizeof(err));
	if (r)
		goto bad;
	if (!s->cfg.blob_cb) { /* the name is printable: checked above */
		snprintf(err, sizeof(err), "the sender sent blob '%s', but "
			 "this receiver takes no blobs", d.name);
		r = -EPROTO;
		goto bad;
	}
	pthread_mutex_lock(&s->lock);
	r = mfd__blob_claim(&s->blobs, p->hdr.region, p->hdr.round, &d,
			    (uint64_t)ps * ppp, ps, s->cfg.max_blob_bytes,
			    s->nlost > 0, &bl, err, sizeof(err));
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		goto bad;
	/* sent again after a loss, of a blob whole before it: dropped */
	if (r == 1 && stage(ch, p))
		return -ENOMEM;
	piece.mem = r == 1 ? ch->staging : bl->data + d.offset;
	piece.length = (uint64_t)p->hdr.normal * ps;
	for (uint32_t i = 0; i < p->hdr.normal; i++)
		p->offsets[i] = (uint64_t)i * ps;
	p->region = &piece;
	p->niov = 0;
	r = s->method->recv_prepare(&ch->mctx, p);
	if (!r && p->hdr.payload_len)
		r = mfd__tp_recv(ch->conn, p->iov, p->niov);
	if (!r)
		r = check_sum(s, ch, buf,
			      MFD_HDR_SIZE + MFD_BLOB_DESC_SIZE + d.name_len,
			      p->iov, p->niov);
	if (!r && s->method->recv_finish) {
		r = s->method->recv_finish(&ch->mctx, p);
		if (r) {
			snprintf(err, sizeof(err), "%s", ch->mctx.err);
			goto bad;
		}
	}
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	if (bl)
		mfd__blob_piece_done(bl, d.offset, (uint64_t)ps * ppp);
	pthread_mutex_unlock(&s->lock);
	mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + MFD_BLOB_DESC_SIZE +
					     d.name_len + p->hdr.payload_len);
	return 0;
bad:
	mfd__session_fail(s, (int)ch->index, r, "packet %llu: %s", num, err);
	return r;
}

/*
 * After the postcopy switch, a write into a missing page would fault in
 * this thread: the pages land side by side in the channel's pc_buf, like
 * a blob's piece, and are then placed atomically (mfd__pc_place).
 */
static void to_scratch(struct mfd_channel *ch, struct mfd_region *scratch,
		       const struct mfd_region *rg)
{
	struct mfd_packet *p = &ch->pkt;
	uint32_t n = p->hdr.normal + p->hdr.zero, ps = ch->mctx.page_size;

	memcpy(ch->pc_offsets, p->offsets, n * sizeof(uint64_t));
	memcpy(scratch->name, rg->name, sizeof(rg->name));
	scratch->mem = ch->pc_buf;
	scratch->length = (uint64_t)ch->mctx.pages_per_packet * ps;
	for (uint32_t i = 0; i < p->hdr.normal; i++)
		p->offsets[i] = (uint64_t)i * ps;
	p->region = scratch;
}

int mfd__recv_pages(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_packet *p = &ch->pkt;
	uint32_t ps = s->cfg.page_size, n = mfd__hdr_entries(&p->hdr);
	struct mfd_region *rg = &s->regions[p->hdr.region];
	unsigned long long num = (unsigned long long)p->hdr.packet_num;
	struct mfd_region scratch;
	/* set by the barrier every channel passed, or before the urgent
	 * thread started */
	bool postcopy = ch->pc_buf != NULL;
	char err[160];
	bool staged;
	int r;

	r = check_round(s, ch);
	if (!r)
		r = mfd__tp_recv_buf(ch->conn, p->wire + MFD_HDR_SIZE,
				     8 * (size_t)n);
	if (r)
		return r;
	if (p->hdr.flags & MFD_FLAG_RUNS) {
		const uint8_t *at = p->wire + MFD_HDR_SIZE;

		r = mfd__runs_decode(at, p->hdr.normal_runs, p->hdr.normal, ps,
				     rg->length, p->offsets, err, sizeof(err));
		if (!r)
			r = mfd__runs_decode(at + 8 * (size_t)p->hdr.normal_runs,
					     p->hdr.zero_runs, p->hdr.zero, ps,
					     rg->length,
					     p->offsets + p->hdr.normal, err,
					     sizeof(err));
	} else {
		r = mfd__offsets_decode(p->wire + MFD_HDR_SIZE, n, ps,
					rg->length, p->offsets, err,
					sizeof(err));
	}
	if (r) {
		mfd__session_fail(s, (int)ch->index, r,
				  "packet %llu: %s of region '%s'", num, err,
				  rg->name);
		return r;
	}
	p->region = rg;
	p->niov = 0;
	/* Fresh (zeroed) memory is populated for writing: a read would map
	 * the shared zero page, and the write copy it again. Memory with
	 * content (a file received in place) is populated for reading,
	 * which maps sixteen pages per fault and, for a shared tmpfs file,
	 * maps them writable: 0.12 s per GiB here against 0.29 s for
	 * writing and 0.52 s for a fault per page. */
	if (postcopy)
		to_scratch(ch, &scratch, rg);
	else
		mfd__populate(rg->mem, p->offsets, p->hdr.normal, ps,
			      rg->zeroed);
	staged = p->hdr.flags & MFD_FLAG_STAGED;
	r = staged ? stage(ch, p) : s->method->recv_prepare(&ch->mctx, p);
	if (!r && p->hdr.payload_len)
		r = mfd__tp_recv(ch->conn, p->iov, p->niov);
	if (!r)
		r = check_sum(s, ch, p->wire, MFD_HDR_SIZE + 8 * (size_t)n,
			      p->iov, p->niov);
	if (r == 0 && staged) {
		unstage(ch, p, ps);
	} else if (r == 0 && s->method->recv_finish) {
		r = s->method->recv_finish(&ch->mctx, p);
		if (r) {
			mfd__session_fail(s, (int)ch->index, r,
					  "packet %llu: %s", num,
					  ch->mctx.err);
			return r;
		}
	}
	if (!r && postcopy)
		r = mfd__pc_place(s, ch, p, ch->pc_offsets, ch->pc_buf);
	if (r)
		return r;
	if (!postcopy && rg->written)
		mark_written(rg, p->offsets, p->hdr.normal, ps);
	if (!postcopy)
		apply_zero_pages(rg, p->offsets + p->hdr.normal, p->hdr.zero,
				 ps);
	mfd__stat_add(&ch->st.bytes,
		      MFD_HDR_SIZE + 8 * (uint64_t)n + p->hdr.payload_len);
	mfd__stat_add(&ch->st.payload_bytes, (uint64_t)p->hdr.normal * ps);
	mfd__stat_add(&ch->st.packets, 1);
	mfd__stat_add(&ch->st.normal_pages, p->hdr.normal);
	mfd__stat_add(&ch->st.zero_pages, p->hdr.zero);
	if (p->hdr.flags & MFD_FLAG_RAW)
		mfd__stat_add(&ch->st.raw_packets, 1);
	return 0;
}

/* Why the session fails although every packet was good (the regions
 * differ, or the promised digests never came), or "". Call after the END
 * barrier. */
static void end_verdict(struct mfd_session *s, char *msg, size_t len)
{
	pthread_mutex_lock(&s->lock);
	if (!s->verified && (s->features & MFD_FEAT_VERIFY))
		snprintf(msg, len,
			 "the sender ended without the region digests it "
			 "promised");
	else
		snprintf(msg, len, "%s", s->verify_msg);
	pthread_mutex_unlock(&s->lock);
}

/* Every channel is past its last page: confirm, or say why not. The
 * session fails only once every channel has sent its FIN (in
 * mfd_recv_wait), so that every FIN reaches the sender. */
/* The errno of a failed end: the commit's own, else -EIO (a region
 * differs, its digests did not come). */
static int verdict_err(struct mfd_session *s)
{
	int e;

	pthread_mutex_lock(&s->lock);
	e = s->commit_err ? s->commit_err : -EIO;
	pthread_mutex_unlock(&s->lock);
	return e;
}

static int send_fin(struct mfd_session *s, struct mfd_channel *ch)
{
	uint8_t buf[MFD_HDR_SIZE + sizeof(s->verify_msg)];
	struct mfd_hdr h = { .type = MFD_PKT_FIN, .round = ch->round };
	char msg[sizeof(s->verify_msg)];
	int r;

	end_verdict(s, msg, sizeof(msg));
	h.payload_len = (uint32_t)strlen(msg);
	mfd__hdr_encode(&h, buf);
	memcpy(buf + MFD_HDR_SIZE, msg, h.payload_len);
	r = mfd__tp_send_buf(ch->conn, buf, MFD_HDR_SIZE + h.payload_len);
	/* a sender told on another channel may have closed this one: the
	 * verdict is the session's failure, not the broken pipe */
	if (r && msg[0])
		mfd__session_fail(s, -1, verdict_err(s), "%s", msg);
	return r ? r : 1;
}

/* On one-sided transports the sender may write the next round only once
 * every channel has applied this one (the barrier is behind us). */
static int send_sync_ack(struct mfd_channel *ch, uint32_t round)
{
	struct mfd_hdr h = { .type = MFD_PKT_SYNC_ACK, .round = round };
	uint8_t buf[MFD_HDR_SIZE];

	mfd__hdr_encode(&h, buf);
	return mfd__tp_send_buf(ch->conn, buf, sizeof(buf));
}

/* One packet: 0 to go on, 1 at the end of the session, or -errno. */
static int recv_one(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_limits lim;
	struct mfd_packet *p = &ch->pkt;
	char err[200];
	int r;

	mfd__session_limits(s, &lim);
	r = mfd__tp_recv_buf(ch->conn, p->wire, MFD_HDR_SIZE);
	if (r)
		return r;
	r = mfd__hdr_decode(p->wire, &lim, &p->hdr, err, sizeof(err));
	if (r) {
		mfd__session_fail(s, (int)ch->index, r, "%s", err);
		return r;
	}
	/* after the switch only pages come, and only once */
	if (ch->pc_buf &&
	    (p->hdr.type == MFD_PKT_ZERO_RANGE || p->hdr.type == MFD_PKT_BLOB ||
	     p->hdr.type == MFD_PKT_POSTCOPY)) {
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "packet type %u after the postcopy switch",
				  p->hdr.type);
		return -EPROTO;
	}
	switch (p->hdr.type) {
	case MFD_PKT_PAGES:
		return mfd__recv_pages(s, ch);
	case MFD_PKT_ZERO_RANGE:
		return recv_zero_range(s, ch);
	case MFD_PKT_BLOB:
		return recv_blob(s, ch);
	case MFD_PKT_SYNC:
	case MFD_PKT_END:
	case MFD_PKT_POSTCOPY:
		if (p->hdr.round != ch->round) {
			mfd__session_fail(s, (int)ch->index, -EPROTO,
					  "%s for round %u out of order "
					  "(the channel is in round %u)",
					  type_name(p->hdr.type), p->hdr.round,
					  ch->round);
			return -EPROTO;
		}
		if (p->hdr.type == MFD_PKT_POSTCOPY) {
			r = mfd__pc_recv_maps(s, ch);
			if (r)
				return r;
		} else {
			mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE);
		}
		r = barrier(s, ch, p->hdr.type, p->hdr.round);
		if (r < 0)
			return r;
		/* with failover the sender learns of lost channels here */
		if (mfd__failover(s) && mfd__send_lost_reports(s, ch))
			return -EPIPE;
		if (p->hdr.type != MFD_PKT_END || r == 1) {
			ch->round++;
			mfd__stat_add(&ch->st.rounds, 1);
			return ch->conn->ops->one_sided || mfd__failover(s)
				       ? send_sync_ack(ch, p->hdr.round)
				       : 0;
		}
		return send_fin(s, ch);
	case MFD_PKT_VERIFY:
		return take_verify(s, ch);
	case MFD_PKT_ABORT: {
		struct mfd_deadline d;

		mfd__deadline_start(&d, s->cfg.timeout_ms, "the sender's reason");
		return mfd__peer_failed(s, ch, p->hdr.payload_len, &d,
					-ECANCELED);
	}
	case MFD_PKT_KEEPALIVE:
		/* not part of any round: its round is 0 (protocol.md 7) */
		if (p->hdr.round) {
			mfd__session_fail(s, (int)ch->index, -EPROTO,
					  "KEEPALIVE with round %u (expected "
					  "0)",
					  p->hdr.round);
			return -EPROTO;
		}
		mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE);
		return 0;
	default:
		mfd__session_fail(s, (int)ch->index, -EPROTO,
				  "unexpected packet type %u from the sender",
				  p->hdr.type);
		return -EPROTO;
	}
}

struct recv_call {
	struct mfd_session *s;
	struct mfd_channel *ch;
};

static int recv_call(void *arg)
{
	struct recv_call *rc = arg;

	return recv_one(rc->s, rc->ch);
}


/*
 * Read and drop what the peer sent after what was read (its nonce, its
 * region table; a failed session's pages in flight), for at most 200 ms
 * and 1 MiB, so that closing sends a FIN and not a RST, which on a real
 * network can destroy the refusal still in flight. The peer closes once
 * it has read the refusal.
 */
static void drain(struct mfd_conn *c)
{
	struct mfd_deadline d;
	char junk[512];

	mfd__deadline_start(&d, 200, "the drain");
	for (int i = 0; i < 2048; i++)
		if (mfd__deadline_recv(&d, c, junk, sizeof(junk)))
			return;
}

static void *recv_thread(void *arg)
{
	struct mfd_channel *ch = arg;
	struct mfd_session *s = ch->s;
	struct recv_call rc = { s, ch };
	uintptr_t addr = 0;
	int r;

	do {
		addr = 0;
		r = mfd__guarded(recv_call, &rc, &addr);
		mfd__stat_cpu(ch);
	} while (r == 0);
	if (r == -EFAULT)
		mfd__fail_fault(s, ch, addr, true);
	if (r == -EPIPE || r == -ECONNRESET)
		mfd__wait_for_reason(s);
	/* with failover a failed connection is a lost channel, unless the
	 * session failed (a bad packet, the sender's ABORT) */
	if (r < 0 && mfd__failover(s) && !mfd__session_err(s)) {
		mfd__retire(s, ch,
			    ch->conn->err[0] ? ch->conn->err : strerror(-r));
		return NULL;
	}
	if (r < 0) { /* a no-op when the failure is already recorded */
		mfd__session_fail(s, (int)ch->index, r, "%s",
				  ch->conn->err[0] ? ch->conn->err
						   : strerror(-r));
		/* tell the sender why (a FIN with the reason); then the
		 * connection goes down and what the sender had queued is
		 * dropped: a TCP sender blocked on our full window would
		 * otherwise wait out its timeout before it reads the FIN,
		 * while its next bytes now meet a reset */
		mfd__tell_peer(s, ch, MFD_PKT_FIN, ch->round);
		mfd__tp_shutdown(ch->conn);
		drain(ch->conn);
	}
	return NULL;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Fresh memory costs a page fault and a page clearing at first touch,
 * more than the copy of the data itself. This thread takes that cost
 * ahead of the channels, 2 MiB at a time from the start of each zeroed
 * region (where the first round's pages arrive first), on a core the
 * channels may not be using.
 */
static void *prefault_main(void *arg)
{
	struct mfd_session *s = arg;
	const uint64_t step = 2u << 20;

	for (int i = 0; i < s->nregions; i++) {
		struct mfd_region *rg = &s->regions[i];

		for (uint64_t off = 0; rg->zeroed && off < rg->length;
		     off += step) {
			uint64_t n = rg->length - off < step ? rg->length - off
							     : step;

			if (__atomic_load_n(&s->prefault_stop, __ATOMIC_RELAXED) ||
			    madvise(rg->mem + off, n, MADV_POPULATE_WRITE))
				return NULL; /* kernels before 5.14: no help */
		}
	}
	return NULL;
}

static void prefault_start(struct mfd_session *s)
{
	if (s->cfg.prefault)
		s->prefault_started = !pthread_create(&s->prefault_thread, NULL,
						      prefault_main, s);
	if (s->prefault_started)
		pthread_setname_np(s->prefault_thread, "mfd-prefault");
}

static void prefault_stop(struct mfd_session *s)
{
	if (!s->prefault_started)
		return;
	__atomic_store_n(&s->prefault_stop, true, __ATOMIC_RELAXED);
	pthread_join(s->prefault_thread, NULL);
	s->prefault_started = false;
}

/*
 * Tell a connection why it is refused, then drop it. The local log says
 * `why` (NULL: the same as msg; "": nothing, the session's error will).
 */
/* refuse() but leave c open, for its owner to close. */
/* The handshake's answer that refuses: status (a negative errno) and
 * msg. 0, or the send's -errno. */
static int send_refusal(struct mfd_conn *c, int status, const char *msg)
{
	size_t len = strlen(msg);
	struct mfd_ack a = { .status = status, .msg_len = (uint16_t)len };
	uint8_t buf[MFD_ACK_SIZE];

	mfd__ack_encode(&a, buf);
	return mfd__tp_send_buf(c, buf, sizeof(buf)) ?:
	       mfd__tp_send_buf(c, msg, len);
}

static void refuse_open(struct mfd_session *s, struct mfd_conn *c, int status,
			const char *msg, const char *why)
{
	if (!why)
		why = msg;
	pthread_mutex_lock(&s->lock);
	s->rejected++;
	if (why[0]) /* for the wait's error, should no sender come */
		snprintf(s->last_refusal, sizeof(s->last_refusal), "%s", why);
	pthread_mutex_unlock(&s->lock);
	if (s->cfg.log_cb && why[0]) {
		char line[400];

		snprintf(line, sizeof(line), "refused a connection: %s", why);
		/* handshakes run on threads of their own: one call at a
		 * time, as the callback's contract says */
		pthread_mutex_lock(&s->log_lock);
		s->cfg.log_cb(s->cfg.log_opaque, line);
		pthread_mutex_unlock(&s->log_lock);
	}
	if (!send_refusal(c, status ? status : -EPROTO, msg))
		drain(c);
}

/* Answer c with status and msg, log why (msg when NULL; "" for no
 * line), close it. */
static void refuse(struct mfd_session *s, struct mfd_conn *c, int status,
		   const char *msg, const char *why)
{
	refuse_open(s, c, status, msg, why);
	mfd__tp_close(c);
}

/* One connection's handshake: all of its reads (init, nonce, proof,
 * region table) end by one deadline, however the bytes trickle in. */
struct handshake {
	struct mfd_conn *c;
	struct mfd_deadline d;
	/* atomic: why it was cut while it ran (0: it was not) */
	enum { CUT_NOT, CUT_EVICTED, CUT_ENDED } cut;
};

/* How long one connection may take over its handshake. */
static unsigned handshake_ms(const struct mfd_session *s)
{
	unsigned t = s->cfg.timeout_ms;

	return t && t < HANDSHAKE_MS ? t : HANDSHAKE_MS;
}

static int hs_recv(struct handshake *h, void *buf, size_t len)
{
	return mfd__deadline_recv(&h->d, h->c, buf, len);
}

/*
 * The receiver's half of the challenge-response (see integrity.h): read
 * the sender's nonce, prove ourselves with a fresh nonce of ours, then
 * check the sender's proof. A sender that finds our proof wrong answers
 * with a refusal instead of its proof. 0, or -errno with the reason in
 * err.
 */
static int authenticate(struct mfd_session *s, struct handshake *h,
			const uint8_t init[MFD_INIT_SIZE], char *err,
			size_t errlen)
{
	uint8_t ns[MFD_NONCE_SIZE], chal[MFD_CHAL_SIZE] = { 0 };
	uint8_t proof[MFD_PROOF_SIZE], want[MFD_MAC_SIZE];
	uint8_t *nr = chal + 8;
	struct mfd_ack no;
	char msg[256], text[300];
	int r;

	r = hs_recv(h, ns, sizeof(ns));
	if (!r && getrandom(nr, MFD_NONCE_SIZE, 0) != MFD_NONCE_SIZE)
		r = -EIO;
	memcpy(chal, "MFDC", 4);
	if (!r)
		r = mfd__auth_proof(s->secret, s->cfg.secret_len, 'R', init,
				    ns, nr, chal + 8 + MFD_NONCE_SIZE);
	if (!r)
		r = mfd__tp_send_buf(h->c, chal, sizeof(chal));
	if (!r)
		r = hs_recv(h, proof, MFD_ACK_SIZE);
	if (!r && !memcmp(proof, "MFDA", 4) &&
	    !mfd__ack_decode(proof, &no, NULL, 0) && no.status) {
		size_t n = no.msg_len < sizeof(msg) ? no.msg_len : sizeof(msg);

		if (hs_recv(h, msg, n))
			n = 0;
		snprintf(err, errlen,
			 "authentication failed: the sender refused our "
			 "proof (%s): the two ends hold different secrets",
			 n ? mfd__escape(text, sizeof(text), msg, n)
			   : strerror(-no.status));
		return -EACCES;
	}
	if (!r)
		r = hs_recv(h, proof + MFD_ACK_SIZE,
			    sizeof(proof) - MFD_ACK_SIZE);
	if (!r)
		r = mfd__auth_proof(s->secret, s->cfg.secret_len, 'S', init,
				    ns, nr, want);
	if (r) {
		snprintf(err, errlen, "authentication: %s",
			 h->c->err[0] ? h->c->err : strerror(-r));
		return r;
	}
	if (memcmp(proof, "MFDR", 4)) {
		snprintf(err, errlen,
			 "authentication failed: expected a proof (magic "
			 "MFDR), got magic 0x%02x%02x%02x%02x",
			 proof[0], proof[1], proof[2], proof[3]);
		return -EPROTO;
	}
	if (memcmp(proof + 4, "\0\0\0\0", 4)) {
		snprintf(err, errlen,
			 "authentication failed: reserved bytes of the proof "
			 "are not zero");
		return -EPROTO;
	}
	if (!mfd__auth_equal(proof + 8, want)) {
		snprintf(err, errlen,
			 "authentication failed: the peer does not know the "
			 "secret");
		return -EACCES;
	}
	return 0;
}

static int read_region_entry(struct handshake *h, char name[256],
			     uint64_t *len, uint32_t ps, char *err,
			     size_t errlen)
{
	char text[MFD_MAX_REGION_NAME * 4 + 8];
	uint8_t b[8];
	uint16_t n;
	int r;

	r = hs_recv(h, b, 2);
	if (r)
		goto io;
	n = (uint16_t)(b[0] << 8 | b[1]);
	if (n == 0 || n > MFD_MAX_REGION_NAME) {
		snprintf(err, errlen, "region name length %u outside 1..%u", n,
			 MFD_MAX_REGION_NAME);
		return -EBADMSG;
	}
	r = hs_recv(h, name, n);
	if (r)
		goto io;
	name[n] = 0;
	if (strlen(name) != n) {
		snprintf(err, errlen, "region name with a NUL byte");
		return -EBADMSG;
	}
	if (!mfd__region_name_ok(name, n)) {
		snprintf(err, errlen,
			 "region name '%s' has a byte outside printable ASCII",
			 mfd__escape(text, sizeof(text), name, n));
		return -EBADMSG;
	}
	r = hs_recv(h, b, 8);
	if (r)
		goto io;
	*len = 0;
	for (int i = 0; i < 8; i++)
		*len = *len << 8 | b[i];
	if (*len == 0 || *len % ps || *len > MAX_REGION_BYTES) {
		snprintf(err, errlen,
			 "region '%s': length %llu is not a multiple of the "
			 "page size %u in 1..%llu",
			 name, (unsigned long long)*len, ps, MAX_REGION_BYTES);
		return -EBADMSG;
	}
	return 0;
io:
	snprintf(err, errlen, "reading the region table: %s", h->c->err);
	return r;
}

/* Ask the application for a region the receiver has not declared. */
static int create_region(struct mfd_session *s, struct mfd_region *o,
			 uint64_t len, char *err, size_t errlen)
{
	uint32_t ps = s->cfg.page_size;
	void *mem = NULL;
	int r;

	s->cb_err[0] = 0;
	r = s->cfg.region_cb(s->cfg.region_opaque, o->name, len, &mem,
			     &o->zeroed);
	if (!r && (!mem || (uintptr_t)mem % mfd__mem_align(ps))) {
		snprintf(s->cb_err, sizeof(s->cb_err),
			 "the application gave %s memory",
			 mem ? "misaligned" : "no");
		r = -EINVAL;
	}
	if (r)
		snprintf(err, errlen,
			 "cannot create region '%s' of %llu bytes: %.200s",
			 o->name, (unsigned long long)len,
			 s->cb_err[0] ? s->cb_err : strerror(-r));
	o->mem = mem;
	return r;
}

/* Match the sender's region table with the receiver's regions, in the
 * sender's order (packets name regions by the sender's index). */
static int match_regions(struct mfd_session *s, struct handshake *h,
			 uint32_t count, char *err, size_t errlen)
{
	struct mfd_region *ordered = calloc(count, sizeof(*ordered));
	bool used[MFD_MAX_REGIONS] = { false };
	uint32_t ps = s->cfg.page_size;
	int r = 0;

	if (!ordered)
		return -ENOMEM;
	for (uint32_t i = 0; i < count && !r; i++) {
		struct mfd_region *o = &ordered[i];
		uint64_t len;
		int j;

		o->file_fd = -1; /* no file (a sender's only) */
		r = read_region_entry(h, o->name, &len, ps, err, errlen);
		if (r)
			break;
		for (uint32_t k = 0; k < i; k++)
			if (!strcmp(ordered[k].name, o->name)) {
				snprintf(err, errlen,
					 "region '%s' announced twice",
					 o->name);
				r = -EBADMSG;
			}
		for (j = 0; j < s->nregions; j++)
			if (!strcmp(s->regions[j].name, o->name))
				break;
		if (r) {
			break;
		} else if (j < s->nregions && !s->regions[j].mem) {
			/* expected, and created now that its size is known */
			used[j] = true;
			r = create_region(s, o, len, err, errlen);
		} else if (j < s->nregions) {
			if (s->regions[j].length != len) {
				snprintf(err, errlen,
					 "region '%s': the sender has %llu "
					 "bytes, the receiver %llu",
					 o->name, (unsigned long long)len,
					 (unsigned long long)s->regions[j].length);
				r = -EINVAL;
				break;
			}
			*o = s->regions[j];
			used[j] = true;
		} else if (s->cfg.region_cb) {
			r = create_region(s, o, len, err, errlen);
		} else {
			snprintf(err, errlen,
				 "unknown region '%s' (%llu bytes)", o->name,
				 (unsigned long long)len);
			r = -ENOENT;
		}
		o->length = len;
	}
	for (int j = 0; !r && j < s->nregions; j++)
		if (!used[j]) {
			snprintf(err, errlen,
				 "region '%s' was not sent by the sender",
				 s->regions[j].name);
			r = -ENOENT;
		}
	/* memory a region_cb gave twice would take two regions' pages */
	for (uint32_t i = 0; !r && i < count; i++)
		for (uint32_t k = 0; !r && k < i; k++) {
			if (mfd__mem_overlap(ordered[i].mem, ordered[i].length,
					     ordered[k].mem,
					     ordered[k].length)) {
				snprintf(err, errlen,
					 "regions '%s' and '%s' share memory: "
					 "one would receive into the other",
					 ordered[k].name, ordered[i].name);
				r = -EINVAL;
			}
		}
	/* the sender decides whether zero pages travel as offsets, so the
	 * map is needed whatever this receiver's own setting is */
	for (uint32_t i = 0; !r && i < count; i++) {
		if (!ordered[i].zeroed)
			continue;
		ordered[i].written = calloc((ordered[i].length / ps + 63) / 64,
					    sizeof(uint64_t));
		if (!ordered[i].written)
			r = -ENOMEM;
	}
	if (r) {
		for (uint32_t i = 0; i < count; i++)
			free(ordered[i].written);
		free(ordered);
		return r;
	}
	memcpy(s->regions, ordered, count * sizeof(*ordered));
	s->nregions = (int)count;
	free(ordered);
	if (s->features & MFD_FEAT_POSTCOPY)
		mfd__pc_no_huge_pages(s);
	return 0;
}

/* Adopt the first valid init's parameters for the session. */
static int adopt(struct mfd_session *s, const struct mfd_init *in)
{
	s->session_id = in->session_id;
	s->features = in->features;
	s->keepalive_ms = mfd__keepalive_ms(s->cfg.timeout_ms, in->timeout_ms);
	s->cfg.method = in->method;
	s->cfg.page_size = in->page_size;
	s->cfg.pages_per_packet = in->pages_per_packet;
	s->method = mfd__method_get(in->method);
	if ((s->features & MFD_FEAT_POSTCOPY) && mfd__pc_new(s))
		return -ENOMEM;
	return mfd__channels_alloc(s, in->channels);
}

/* The sender's proposal is inside the embedder's bounds (mfd_config's
 * receiver policy). */
static int policy_allows(const struct mfd_config *c, const struct mfd_init *in,
			 char *err, size_t errlen)
{
	if (c->accept_max_channels && in->channels > c->accept_max_channels)
		snprintf(err, errlen,
			 "the sender proposes %u channels; this receiver "
			 "accepts at most %u",
			 in->channels, c->accept_max_channels);
	else if (c->accept_methods && !(c->accept_methods & (1u << in->method)))
		snprintf(err, errlen,
			 "the sender proposes method %s, which this receiver "
			 "does not accept",
			 mfd_method_name(in->method));
	else if (c->accept_max_page_size &&
		 in->page_size > c->accept_max_page_size)
		snprintf(err, errlen,
			 "the sender proposes pages of %u bytes; this "
			 "receiver accepts at most %u",
			 in->page_size, c->accept_max_page_size);
	else if (c->require_checksum && !(in->features & MFD_FEAT_CHECKSUM))
		snprintf(err, errlen,
			 "this receiver requires packet checksums: the sender "
			 "must use checksum (--checksum)");
	else if (c->require_verify && !(in->features & MFD_FEAT_VERIFY))
		snprintf(err, errlen,
			 "this receiver requires region digests: the sender "
			 "must use verify (--verify)");
	else
		return 0;
	return -EPERM;
}

/* A channel's authentication matches what this receiver demands. */
static int auth_agrees(const struct mfd_session *s, const struct mfd_init *in,
		       char *err, size_t errlen)
{
	bool want = s->secret != NULL, has = in->features & MFD_FEAT_AUTH;

	if (want == has)
		return 0;
	snprintf(err, errlen,
		 want ? "authentication required: this receiver has a secret"
		      : "the sender asks for authentication, but this "
			"receiver has no secret");
	return -EACCES;
}

/*
 * 1 when a later channel's init matches the session. Else 0, with what
 * the peer is told in `tell` and what the local log says in `why`: a
 * stray is not told the session id it would need to claim a channel.
 */
static int same_session(const struct mfd_session *s, const struct mfd_init *in,
			char *tell, size_t tell_len, char *why, size_t why_len)
{
	if (in->session_id != s->session_id) {
		snprintf(tell, tell_len, "not this receiver's session");
		snprintf(why, why_len,
			 "channel %u: session id %016llx is not this "
			 "session's (%016llx)",
			 in->channel, (unsigned long long)in->session_id,
			 (unsigned long long)s->session_id);
		return 0;
	}
	if (in->channels != s->nchannels || in->method != s->cfg.method ||
	    in->page_size != s->cfg.page_size ||
	    in->pages_per_packet != s->cfg.pages_per_packet ||
	    in->features != s->features)
		snprintf(tell, tell_len,
			 "channel %u's parameters differ from the session's",
			 in->channel);
	else if (s->ch[in->channel].conn)
		snprintf(tell, tell_len, "channel index %u twice", in->channel);
	else
		return 1;
	snprintf(why, why_len, "%s", tell);
	return 0;
}

/* Refuse a later channel that does not belong to the session; true
 * when it was refused. */
static bool refused_stray(struct mfd_session *s, struct mfd_conn *c,
			  const struct mfd_init *in)
{
	char tell[128], why[256];

	if (same_session(s, in, tell, sizeof(tell), why, sizeof(why)))
		return false;
	refuse(s, c, -EPROTO, tell, why);
	return true;
}

/* Make c the session's channel `index`. */
static int place(struct mfd_session *s, struct mfd_conn *c, uint16_t index)
{
	int r = mfd__tp_set_timeout(c, s->cfg.timeout_ms);

	if (r) {
		refuse(s, c, r, "cannot set the channel's timeout", NULL);
		return r;
	}
	if (&s->ch[index] == s->urgent) {
		r = mfd__pc_keepalive(s, c);
		if (r) {
			refuse(s, c, r, c->err, NULL);
			return r;
		}
	}
	/* mfd__session_fail() walks the connections under the lock */
	pthread_mutex_lock(&s->lock);
	s->ch[index].conn = c;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Read and check one connection's init (and prove each other when there
 * is a secret), starting its handshake's clock in *h. 0, or -errno after
 * the connection was refused (left open: greet_main() closes it). */
static int greet(struct mfd_session *s, struct mfd_conn *c,
		 struct mfd_init *in, struct handshake *h)
{
	uint8_t buf[MFD_INIT_SIZE];
	char err[256];
	int r;

	/* each connection in a thread of its own (accept_channels): a
	 * silent or trickling one holds only that thread, for this long */
	h->c = c;
	mfd__deadline_start(&h->d, handshake_ms(s), "the handshake");
	r = hs_recv(h, buf, sizeof(buf));
	if (r) {
		/* a TLS layer's failure (its handshake, a plaintext peer)
		 * says what happened before any init could come */
		int cut = __atomic_load_n(&h->cut, __ATOMIC_ACQUIRE);

		if (cut == CUT_EVICTED)
			snprintf(err, sizeof(err),
				 "dropped: its handshake had run %u ms and "
				 "newer connections needed its place",
				 handshake_ms(s) - mfd__deadline_left(&h->d));
		else if (cut == CUT_ENDED)
			snprintf(err, sizeof(err),
				 "dropped: its handshake was still running "
				 "when the session began or failed");
		else if (strstr(c->err, "TLS"))
			snprintf(err, sizeof(err), "%s", c->err);
		else
			snprintf(err, sizeof(err), "no init packet: %s",
				 c->err);
		refuse_open(s, c, r, err, NULL);
		return r;
	}
	r = mfd__init_decode(buf, in, err, sizeof(err));
	if (!r && !mfd__method_get(in->method)) {
		snprintf(err, sizeof(err),
			 "method %s is not built into this receiver",
			 mfd_method_name(in->method));
		r = -ENOTSUP;
	}
	if (!r && mfd__integrity_missing(in->features)) {
		snprintf(err, sizeof(err), "this receiver has no %s",
			 mfd__integrity_missing(in->features));
		r = -ENOTSUP;
	}
	if (!r && (in->features & MFD_FEAT_POSTCOPY)) {
		r = mfd__pc_transport_ok(s, err, sizeof(err));
		if (!r)
			r = mfd__pc_uffd_probe(err, sizeof(err));
	}
	/* what a C sender never asks for (protocol.md 15) */
	if (!r && (in->features & MFD_FEAT_FAILOVER) &&
	    ((in->features & MFD_FEAT_POSTCOPY) || c->ops->one_sided)) {
		snprintf(err, sizeof(err),
			 "the sender asks for failover %s, which cannot have "
			 "it",
			 c->ops->one_sided ? "over one-sided writes (rdma:)"
					   : "with postcopy");
		r = -EPROTO;
	}
	if (!r)
		r = policy_allows(&s->cfg, in, err, sizeof(err));
	if (!r)
		r = auth_agrees(s, in, err, sizeof(err));
	/* nothing from an unproven peer shapes the session */
	if (!r && s->secret)
		r = authenticate(s, h, buf, err, sizeof(err));
	if (r)
		refuse_open(s, c, r, err, NULL);
	return r;
}

/*
 * Handshakes run side by side, each in a thread of its own, at most
 * GREETERS at once: a connection that stays silent or trickles holds its
 * own thread for at most the handshake's 5 s, never the real channels
 * behind it. Without a free slot the accepting waits for one.
 */
#define GREETERS 16
/* How often the accepting looks at finished handshakes. */
#define ACCEPT_SLICE_MS 20

struct greeting {
	struct mfd_session *s;
	struct greeters *gs;
	struct mfd_conn *c;
	struct mfd_init in;
	struct handshake h;
	int r;
	bool done; /* under gs->lock */
	int64_t started_ns;
	pthread_t t;
};

struct greeters {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct greeting *slot[GREETERS];
};

static void *greet_main(void *arg)
{
	struct greeting *g = arg;
	int r = greet(g->s, g->c, &g->in, &g->h);

	/* a refused connection is closed under the lock, once done: the
	 * accepting thread shuts down only those not done, under it too */
	pthread_mutex_lock(&g->gs->lock);
	g->r = r;
	g->done = true;
	if (r)
		mfd__tp_close(g->c);
	pthread_cond_signal(&g->gs->cond);
	pthread_mutex_unlock(&g->gs->lock);
	return NULL;
}

/* Start c's handshake in a free slot; 0, or -errno with c closed. */
static int greet_start(struct mfd_session *s, struct greeters *gs,
		       struct mfd_conn *c)
{
	struct greeting *g = calloc(1, sizeof(*g));
	int k = 0;

	while (k < GREETERS && gs->slot[k])
		k++;
	if (!g || k == GREETERS) {
		free(g);
		mfd__tp_close(c);
		return -ENOMEM;
	}
	*g = (struct greeting){ .s = s, .gs = gs, .c = c,
				.started_ns = mfd__tp_now_ns() };
	if (pthread_create(&g->t, NULL, greet_main, g)) {
		free(g);
		refuse(s, c, -EAGAIN, "no thread for its handshake", NULL);
		return -EAGAIN;
	}
	gs->slot[k] = g;
	return 0;
}

/* A finished handshake, its slot freed (the caller frees it), or NULL
 * after waiting up to ms for one. */
static struct greeting *greet_done(struct greeters *gs, unsigned ms)
{
	struct mfd_deadline d;
	struct greeting *g = NULL;
	unsigned left;

	mfd__deadline_start(&d, ms, "a handshake");
	pthread_mutex_lock(&gs->lock);
	for (;;) {
		for (int k = 0; k < GREETERS && !g; k++)
			if (gs->slot[k] && gs->slot[k]->done) {
				g = gs->slot[k];
				gs->slot[k] = NULL;
			}
		left = mfd__deadline_left(&d);
		if (g || !left ||
		    mfd__timed_wait(&gs->cond, &gs->lock, left))
			break;
	}
	pthread_mutex_unlock(&gs->lock);
	if (g)
		pthread_join(g->t, NULL);
	return g;
}

/* How many slots hold a handshake (the slots are the accepting
 * thread's own). */
static int greeters_taken(const struct greeters *gs)
{
	int n = 0;

	for (int k = 0; k < GREETERS; k++)
		n += gs->slot[k] != NULL;
	return n;
}

/* Every slot taken: the handshake that has run longest, if longer than
 * a real sender's ever does, is cut for the next connection; so a flood
 * of silent connections cannot keep a real sender waiting for a slot. */
#define EVICT_AFTER_MS 200
static void greeters_evict(struct greeters *gs)
{
	struct greeting *old = NULL;

	pthread_mutex_lock(&gs->lock);
	for (int k = 0; k < GREETERS; k++) {
		struct greeting *g = gs->slot[k];

		if (g && !g->done && !g->h.cut &&
		    (!old || g->started_ns < old->started_ns))
			old = g;
	}
	if (old && mfd__tp_now_ns() - old->started_ns >
			   (int64_t)EVICT_AFTER_MS * 1000000) {
		__atomic_store_n(&old->h.cut, CUT_EVICTED, __ATOMIC_RELEASE);
		mfd__tp_shutdown(old->c);
	}
	pthread_mutex_unlock(&gs->lock);
}

static bool greeters_running(const struct greeters *gs)
{
	for (int k = 0; k < GREETERS; k++)
		if (gs->slot[k] && !gs->slot[k]->done)
			return true;
	return false;
}

/*
 * The accepting is over: the handshakes still running (strays, or
 * channels of a failed session) get grace_ms to end by themselves (a
 * stray whose own deadline falls with the session's is then told that
 * it timed out), then they are cut; what was never placed is closed.
 */
static void greeters_end(struct greeters *gs, unsigned grace_ms)
{
	struct mfd_deadline d;
	unsigned left;

	mfd__deadline_start(&d, grace_ms, "the grace");
	pthread_mutex_lock(&gs->lock);
	while (greeters_running(gs) && (left = mfd__deadline_left(&d)) &&
	       !mfd__timed_wait(&gs->cond, &gs->lock, left))
		;
	for (int k = 0; k < GREETERS; k++)
		if (gs->slot[k] && !gs->slot[k]->done) {
			__atomic_store_n(&gs->slot[k]->h.cut, CUT_ENDED,
					 __ATOMIC_RELEASE);
			mfd__tp_shutdown(gs->slot[k]->c);
		}
	pthread_mutex_unlock(&gs->lock);
	for (int k = 0; k < GREETERS; k++) {
		struct greeting *g = gs->slot[k];

		if (!g)
			continue;
		pthread_join(g->t, NULL);
		if (!g->r)
			mfd__tp_close(g->c);
		free(g);
	}
}

/* The connections that passed their handshake before channel 0 did. */
struct early {
	struct {
		struct mfd_conn *c;
		struct mfd_init in;
	} e[MFD_MAX_CHANNELS + 1]; /* + postcopy's urgent channel */
	unsigned n;
};

/*
 * Take one connection that passed its handshake into the session. 0 to
 * go on, or -errno when the session failed.
 */
static int admit(struct mfd_session *s, struct greeting *g, struct early *ea,
		 unsigned *have, struct mfd_deadline *until)
{
	char err[768];
	int r;

	if (!s->ch && g->in.channel != 0) {
		if (ea->n == MFD_MAX_CHANNELS + 1)
			refuse(s, g->c, -EBUSY,
			       "too many channels before channel 0", NULL);
		else
			ea->e[ea->n++] = (typeof(ea->e[0])){ g->c, g->in };
		return 0;
	}
	if (s->ch) {
		if (!refused_stray(s, g->c, &g->in) &&
		    !place(s, g->c, g->in.channel))
			(*have)++;
		return 0;
	}
	r = adopt(s, &g->in);
	if (!r)
		r = match_regions(s, &g->h, g->in.region_count, err,
				  sizeof(err));
	if (r) {
		if (r == -ENOMEM)
			snprintf(err, sizeof(err), "out of memory");
		/* the session's error says it: no log line too */
		refuse(s, g->c, r, err, "");
		mfd__session_fail(s, 0, r, "%s", err);
		return r;
	}
	if (place(s, g->c, 0)) {
		mfd__session_fail(s, 0, -EIO, "cannot set up channel 0");
		return -EIO;
	}
	(*have)++;
	/* the receiver's time (its rate) counts from its sender, not
	 * from its wait for one */
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_MONOTONIC, &s->t_start);
	pthread_mutex_unlock(&s->lock);
	mfd__deadline_start(until, s->cfg.timeout_ms,
			    "the wait for the sender");
	/* the channels that came before channel 0 */
	for (unsigned i = 0; i < ea->n; i++) {
		if (!refused_stray(s, ea->e[i].c, &ea->e[i].in) &&
		    !place(s, ea->e[i].c, ea->e[i].in.channel))
			(*have)++;
	}
	ea->n = 0;
	return 0;
}

/*
 * An admitted channel closed while the sender's others had not all come:
 * a sender that failed (a signal, a channel it could not connect) sends
 * its reason first, an ABORT, which fails the session with it; one that
 * died only closed (err says so). -EPIPE.
 */
static int closed_early(struct mfd_session *s, struct mfd_channel *ch,
			char *err, size_t errlen)
{
	if (read_abort(s, ch, MFD_ABORT_GRACE_MS, -EPIPE) == 1)
		return -EPIPE;
	snprintf(err, errlen,
		 "the sender closed channel %u before its other channels came",
		 ch->index);
	return -EPIPE;
}

/*
 * Accept until every channel of the session has passed the handshake.
 * Only channel 0's init (the one with the region table) defines the
 * session: other channels that come first wait for it, so that a stray
 * claiming some channel cannot make the real channels look like strays.
 * The sender must come within the timeout, and its other channels within
 * the timeout after channel 0, however many strays come meanwhile: the
 * handshakes run side by side (GREETERS).
 */
static int accept_channels(struct mfd_session *s)
{
	struct greeters gs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct early ea = { .n = 0 };
	unsigned have = 0, t = s->cfg.timeout_ms, next_ep = 0;
	struct mfd_deadline until;
	char err[768];
	int r = 0;

	mfd__cond_init(&gs.cond); /* mfd__timed_wait() wants it */
	mfd__deadline_start(&until, t, "the wait for the sender");
	while (!s->ch || have < mfd__nconns(s)) {
		unsigned left = mfd__deadline_left(&until), wait_ms = 0;
		unsigned slice = t && left < ACCEPT_SLICE_MS ? left
							     : ACCEPT_SLICE_MS;
		struct greeting *g;
		struct mfd_conn *c;

		r = mfd__session_err(s); /* cancelled meanwhile */
		if (r)
			break;
		if (t && !left) {
			r = -ETIMEDOUT;
		} else if (greeters_taken(&gs) == GREETERS) {
			greeters_evict(&gs);
			wait_ms = slice;
		} else {
			/* the endpoints' listeners in turn, a slice each */
			struct mfd_listener *l = s->ep[next_ep].listener;

			r = l->ops->accept(l, slice / s->nep ? slice / s->nep : 1,
					   &c, err, sizeof(err));
			if (!r)
				c->endpoint = next_ep;
			next_ep = (next_ep + 1) % s->nep;
			if (!r && greet_start(s, &gs, c) == -ENOMEM) {
				snprintf(err, sizeof(err), "out of memory");
				r = -ENOMEM;
			} else if (r == -ETIMEDOUT && (!t || mfd__deadline_left(&until)))
				r = 0;
			/* fd: every descriptor is taken, and their
			 * handshakes may still run */
			else if (r == -ENOTCONN && greeters_taken(&gs))
				r = 0, wait_ms = slice;
		}
		/* a sender that failed or died before its last channel came
		 * closed those it had: said now, not at the timeout */
		for (unsigned i = 0; !r && s->ch && i < mfd__nconns(s); i++)
			if (mfd__tp_peer_gone(s->ch[i].conn, false))
				r = closed_early(s, &s->ch[i], err,
						 sizeof(err));
		if (r)
			break;
		g = greet_done(&gs, wait_ms);
		if (g) {
			r = g->r ? 0 : admit(s, g, &ea, &have, &until);
			free(g);
			if (r)
				goto out; /* admit failed the session */
		}
	}
	if (r && !mfd__session_err(s)) {
		if (r == -ETIMEDOUT)
			snprintf(err, sizeof(err), "%s within %u ms%s%s",
				 s->rejected ? "no connection accepted"
					     : "no connection",
				 t, s->rejected ? "; the last refused: " : "",
				 s->rejected ? s->last_refusal : "");
		if (s->ch)
			mfd__session_fail(s, -1, r,
					  "waiting for the sender's channels "
					  "(%u of %u arrived): %s",
					  have, mfd__nconns(s), err);
		else
			mfd__session_fail(s, -1, r, "waiting for the sender: %s",
					  err);
	}
out:
	greeters_end(&gs, r ? 250 : 0);
	pthread_cond_destroy(&gs.cond);
	for (unsigned i = 0; i < ea.n; i++)
		mfd__tp_close(ea.e[i].c);
	return r;
}

/*
 * The session failed before its channels ran (a cancel while it waited
 * for the sender's other channels, a setup or a registration that
 * failed): every channel the sender opened is told why at once, rather
 * than left to wait out its timeout for an answer. Those not answered
 * yet get a refusal; those already accepted (the first `acked`) a FIN
 * with the reason.
 */
static void tell_admitted(struct mfd_session *s, int r, unsigned acked)
{
	char msg[sizeof(s->errmsg)];

	pthread_mutex_lock(&s->lock);
	snprintf(msg, sizeof(msg), "%s", s->errmsg);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; s->ch && i < mfd__nconns(s); i++) {
		struct mfd_channel *ch = &s->ch[i];

		if (!ch->conn)
			continue;
		if (i < acked) {
			mfd__tell_peer(s, ch, MFD_PKT_FIN, ch->round);
		} else if (!mfd__tp_set_timeout(ch->conn, MFD_ABORT_GRACE_MS)) {
			send_refusal(ch->conn, r < 0 ? r : -EIO, msg);
		}
		mfd__tp_shutdown(ch->conn);
		drain(ch->conn);
	}
}

static int recv_run(struct mfd_session *s)
{
	struct mfd_ack ok = { .timeout_ms = s->cfg.timeout_ms };
	uint8_t ack[MFD_ACK_SIZE];
	unsigned acked;
	int r;

	r = accept_channels(s);
	if (!r)
		r = mfd__session_err(s); /* cancelled meanwhile */
	if (r) {
		tell_admitted(s, r, 0);
		return r;
	}
	mfd__ack_encode(&ok, ack);
	for (acked = 0; acked < mfd__nconns(s); acked++) {
		struct mfd_channel *ch = &s->ch[acked];

		r = mfd__channel_setup(s, ch);
		if (r)
			break;
		r = mfd__tp_send_buf(ch->conn, ack, sizeof(ack));
		if (r) {
			mfd__session_fail(s, (int)acked, r, "handshake: %s",
					  ch->conn->err);
			break;
		}
	}
	if (!r)
		r = mfd__register_regions(s);
	if (r) {
		tell_admitted(s, r, acked);
		return r;
	}
	prefault_start(s);
	r = mfd__channels_start(s, recv_thread);
	if (r)
		return r;
	for (unsigned i = 0; i < s->nchannels; i++) {
		pthread_join(s->ch[i].thread, NULL);
		s->ch[i].thread_started = false;
	}
	/* a transport may finish registering while the pages come */
	mfd__session_reg_time(s);
	prefault_stop(s);
	mfd__pc_stop(s);
	if (!mfd__session_err(s)) {
		char msg[sizeof(s->verify_msg)];

		end_verdict(s, msg, sizeof(msg));
		if (msg[0])
			mfd__session_fail(s, -1, verdict_err(s), "%s", msg);
	}
	s->finished = true;
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_MONOTONIC, &s->t_end);
	pthread_cond_broadcast(&s->pc_cond);
	r = s->failed ? s->err : 0;
	if (!r)
		mfd__session_completed(s);
	pthread_mutex_unlock(&s->lock);
	return r;
}

MFD_EXTERN int mfd_recv_wait(struct mfd_session *s)
{
	int r;

	if (!s->started || s->role != MFD_ROLE_RECV || s->finished)
		return -EINVAL;
	r = recv_run(s);
	/* the sender's grant to write into our memory ends with the call,
	 * on success and on failure (no channel thread is left after
	 * mfd__recv_stop) */
	mfd__recv_stop(s);
	for (unsigned i = 0; s->ch && i < s->nchannels; i++)
		mfd__tp_revoke(s->ch[i].conn);
	return r;
}

void mfd__recv_stop(struct mfd_session *s)
{
	bool running = false;

	for (unsigned i = 0; s->ch && i < s->nchannels; i++)
		running |= s->ch[i].thread_started;
	if (running)
		mfd__session_fail(s, -1, -ECANCELED,
				  "session freed before it finished");
	for (unsigned i = 0; s->ch && i < s->nchannels; i++)
		if (s->ch[i].thread_started)
			pthread_join(s->ch[i].thread, NULL);
	prefault_stop(s);
	mfd__pc_stop(s);
}
