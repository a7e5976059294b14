/* SPDX-License-Identifier: MIT */
/*
 * rdma.c - the rdma: transport: one RC queue pair per connection, set up
 * with rdma_cm.
 *
 * Two ways across, on the same QP so that RC ordering binds them:
 *
 * - Region memory (registered once per protection domain, see the table
 *   below) travels as RDMA WRITEs straight into the peer's copy of the
 *   region at the same offset. The receiver never waits for it: it is in
 *   place before the SEND that follows it on the QP is delivered.
 * - Every other byte (headers, handshake, compressed payloads) is a byte
 *   stream made of SEND WITH IMM messages into a ring of pre-posted
 *   receive buffers. recv() copies out of them. The immediate carries how
 *   many of the peer's messages this side has consumed and re-posted
 *   (credits), so a sender never overruns the receive ring and the
 *   device never sees an RNR. A message with no bytes only returns
 *   credits; the last credit is kept for those, so the two ends cannot
 *   both wait for credits that only the other can return.
 *
 * Waiting: the CQ is polled first; only when it is empty does a thread arm
 * the completion channel and sleep in poll() on it, on the connection's
 * rdma_cm event channel (DISCONNECTED) and on an eventfd that shutdown()
 * writes. Each send, recv and flush has one deadline, the connection's
 * timeout after it started (CLOCK_MONOTONIC): every sleep inside it is
 * bounded by what is left of it, so that completions that keep coming
 * one by one never start the timeout again.
 *
 * rdma-core reports failure as NULL + errno, -1 + errno or a positive
 * errno depending on the call; err_ptr(), err_neg() and err_pos() in
 * rdma-int.h turn each into -errno, and every call goes through one of
 * them. Ops are prefixed rd_ (and the functions that cross the files of
 * the transport mfd__rd_) because rdma_ is librdmacm's namespace; the
 * files are listed in rdma-int.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdma-int.h"

int mfd__rd_fail(struct rd_conn *rc, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rc->base.err, sizeof(rc->base.err), fmt, ap);
	va_end(ap);
	if (e != -ETIMEDOUT)
		rc->failed = e;
	return e;
}

static int rd_set_timeout(struct mfd_conn *c, unsigned timeout_ms)
{
	((struct rd_conn *)c)->timeout_ms = timeout_ms;
	return 0;
}

static int rd_enable_zerocopy(struct mfd_conn *c)
{
	/* Zero-copy sends the header before the pages, but a WRITE must
	 * precede its header on the QP; rdma never copies pages anyway. */
	snprintf(c->err, sizeof(c->err),
		 "rdma: pages always travel without a copy; zero_copy is "
		 "for tcp");
	return -ENOTSUP;
}

/* The peer left when its rdma_cm channel said so (DISCONNECTED); other
 * events (an address change) are not its end. Bytes sent after an END
 * are not seen here, only the close that follows them. */
static bool rd_peer_gone(struct mfd_conn *c)
{
	return mfd__rd_cm_end((struct rd_conn *)c) != NULL;
}

/*
 * The region exchange (protocol.md 13.3), on each channel for each
 * region: the receiver sends its region message (where each slice is),
 * the sender answers READY once its own copy is registered. The
 * receiver registers in the background meanwhile, and tells each slice's
 * rkey in a SLICE record as soon as that slice is registered, so that
 * the first pages move while the rest is still being pinned; all its
 * SLICE records precede any other byte it sends. Every record starts
 * with a big-endian u32: a region message with its slice count (>= 1),
 * then SLICE_MSG bytes per slice; READY; SLICE; or WAIT, which an end
 * sends while it registers, so that a peer waiting for its next record
 * (each wait is a recv with its own timeout) does not time out however
 * long pinning takes.
 */
#define REG_WAIT 0u
#define REG_READY 1u
#define SLICE_MSG 16 /* address, length (8 bytes each) */
#define MAX_SLICES 65536u
/* The receiver's landing slots (13.8), before its first region message:
 * the kind, then address (8 bytes), rkey, slot size, slot count. */
#define REG_LAND 0xffffffffu
#define LAND_MSG 20
/* A slice registered: the kind, then region index, slice index, rkey. */
#define REG_SLICE 0xfffffffeu
#define SLICE_REC 12
/* How often a receiver that waits for its registration looks at it. */
#define ANNOUNCE_EVERY_MS 5

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static int send_bytes(struct rd_conn *rc, const void *rec, size_t len)
{
	struct iovec v = { (void *)rec, len };

	rc->last_record_ms = now_ms();
	return mfd__rd_send(&rc->base, &v, 1, 0);
}

static int send_record(struct rd_conn *rc, uint32_t kind)
{
	uint8_t rec[4];

	put_be(rec, kind, 4);
	return send_bytes(rc, rec, sizeof(rec));
}

/* Room for a record without waiting: a credit beyond the reserved one
 * and a free tx slot. */
static bool room(const struct rd_conn *rc)
{
	return rc->credits >= 2 && rc->tx_head - rc->tx_tail < rc->tx.n;
}

/* The reg_tick of a registration: a WAIT, unless the peer has not read
 * the last ones (it is registering too, so not waiting): never block on
 * its credits. */
static int send_wait(void *arg)
{
	struct rd_conn *rc = arg;
	int r = mfd__rd_progress(rc, false, "registering");

	return r || !room(rc) ? r : send_record(rc, REG_WAIT);
}

/* Receiver: the SLICE records of region k's slices registered so far, in
 * order, while there is room; *pending: some are still to come. */
static int announce_region(struct rd_conn *rc, unsigned k, bool *pending)
{
	struct region *g = &rc->regions[k];
	struct mr_ent *m = g->mr;
	int r;

	if (!m || g->announced == m->nmrs)
		return 0;
	r = mfd__rd_mr_error(m);
	if (r) {
		mfd__rd_reg_error(r, m->len - (uint64_t)g->announced * m->slice,
				  "remote writes", rc->base.err,
				  sizeof(rc->base.err));
		rc->failed = r;
		return r;
	}
	while (g->announced < m->nmrs && room(rc)) {
		struct ibv_mr *mr = mfd__rd_mr_slice(m, g->announced);
		uint8_t rec[4 + SLICE_REC];

		if (!mr)
			break;
		put_be(rec, REG_SLICE, 4);
		put_be(rec + 4, k, 4);
		put_be(rec + 8, g->announced, 4);
		put_be(rec + 12, mr->rkey, 4);
		r = send_bytes(rc, rec, sizeof(rec));
		if (r)
			return r;
		g->announced++;
	}
	if (g->announced < m->nmrs)
		*pending = true;
	else if (g->made) {
		rc->base.reg_ns += mfd__rd_mr_ns(m);
		rc->base.reg_bytes += m->len;
	}
	return 0;
}

int mfd__rd_announce(struct rd_conn *rc)
{
	/* called inside another op: its deadline stays */
	int64_t deadline = rc->deadline;
	bool pending = false;
	int r = 0;

	for (unsigned k = 0; !r && k < rc->nregions; k++)
		r = announce_region(rc, k, &pending);
	if (!r && pending && rc->timeout_ms && room(rc) &&
	    now_ms() - rc->last_record_ms >= rc->timeout_ms / 4)
		r = send_record(rc, REG_WAIT);
	rc->announcing = pending && !r;
	rc->deadline = deadline;
	return r;
}

/* Receiver, before any byte that is not a record: every SLICE record.
 * Each record sent (a WAIT at least every quarter of the timeout) starts
 * the wait's timeout again; a peer that returns no credits ends it. */
static int announce_all(struct rd_conn *rc)
{
	int r = 0;

	while (!r && rc->announcing) {
		r = mfd__rd_announce(rc);
		if (r || !rc->announcing)
			break;
		rc->deadline = rc->timeout_ms ? rc->last_record_ms +
							rc->timeout_ms
					      : 0;
		r = mfd__rd_progress(rc, true, "registering");
	}
	return r;
}

/* Sender: the receiver's landing slots, once. */
static int take_landing(struct rd_conn *rc)
{
	uint8_t m[LAND_MSG];
	struct iovec v = { m, sizeof(m) };
	uint32_t size, slots;
	int r = mfd__rd_recv(&rc->base, &v, 1);

	if (r)
		return r;
	size = (uint32_t)get_be(m + 12, 4);
	slots = (uint32_t)get_be(m + 16, 4);
	if (rc->passive || rc->land_addr || rc->regions[0].rs)
		return mfd__rd_fail(rc, -EPROTO, "landing slots offered %s",
				    rc->passive	      ? "by the sender"
				    : rc->land_addr ? "twice"
						    : "after a region message");
	/* the immediate returns at most 15 slots at a time */
	if (!get_be(m, 8) || size < LAND_MIN || !slots || slots > 15)
		return mfd__rd_fail(rc, -EPROTO,
				    "landing slots: %u of %u bytes (expected "
				    "1..15 of %u or more)",
				    slots, size, LAND_MIN);
	rc->land_addr = get_be(m, 8);
	rc->land_rkey = (uint32_t)get_be(m + 8, 4);
	rc->land_size = size;
	rc->land_slots = rc->land_free = slots;
	return 0;
}

/* Sender: a slice's rkey. */
static int take_slice(struct rd_conn *rc)
{
	uint8_t m[SLICE_REC];
	struct iovec v = { m, sizeof(m) };
	uint32_t k, i;
	struct region *g;
	int r = mfd__rd_recv(&rc->base, &v, 1);

	if (r)
		return r;
	k = (uint32_t)get_be(m, 4);
	i = (uint32_t)get_be(m + 4, 4);
	g = k < rc->nregions ? &rc->regions[k] : NULL;
	if (rc->passive || !g || !g->rs || i >= g->nrs || g->rs[i].ready)
		return mfd__rd_fail(
			rc, -EPROTO, "SLICE record for region %u, slice %u: %s",
			k, i,
			rc->passive		  ? "sent by the sender"
			: !g || !g->rs	  ? "no such region message"
			: i >= g->nrs ? "no such slice"
				      : "its rkey came before");
	g->rs[i].rkey = (uint32_t)get_be(m + 8, 4);
	g->rs[i].ready = true;
	rc->pending_slices--;
	return 0;
}

/* Receiver: offer the landing slots, unless MULTIFD_RDMA_LANDING=0 says
 * to stream every byte (for measuring one against the other). */
static int offer_landing(struct rd_conn *rc)
{
	const char *e = getenv("MULTIFD_RDMA_LANDING");
	uint8_t m[4 + LAND_MSG];
	int r;

	if (e && !strcmp(e, "0"))
		return 0;
	r = mfd__rd_land_alloc(rc);
	if (r)
		return r;
	put_be(m, REG_LAND, 4);
	put_be(m + 4, (uintptr_t)rc->land_mem, 8);
	put_be(m + 12, rc->land_mr->rkey, 4);
	put_be(m + 16, LAND_SLOT, 4);
	put_be(m + 20, LAND_SLOTS, 4);
	return send_bytes(rc, m, sizeof(m));
}

/* The next record, its first u32 in *kind; a landing offer or a SLICE
 * record is taken on the way. */
static int next_record(struct rd_conn *rc, uint32_t *kind)
{
	uint8_t rec[4];
	struct iovec v = { rec, sizeof(rec) };
	int r = mfd__rd_recv(&rc->base, &v, 1);

	if (r)
		return r;
	*kind = (uint32_t)get_be(rec, 4);
	if (*kind == REG_LAND)
		return take_landing(rc);
	if (*kind == REG_SLICE)
		return take_slice(rc);
	return 0;
}

/* The next record that is not a WAIT, a landing offer or a SLICE. */
static int recv_record(struct rd_conn *rc, uint32_t *kind)
{
	int r;

	do
		r = next_record(rc, kind);
	while (!r && (*kind == REG_WAIT || *kind == REG_LAND ||
		      *kind == REG_SLICE));
	return r;
}

/* Sender, after the exchange: only records where an rkey is still due. */
static int take_pending(struct rd_conn *rc, const struct rslice *s)
{
	uint32_t kind;
	int r = next_record(rc, &kind);

	if (r || kind == REG_WAIT || kind == REG_SLICE)
		return r;
	return mfd__rd_fail(rc, -EPROTO,
			    "record %u where %s rkey was due", kind,
			    s ? "a slice's" : "the last slices'");
}

int mfd__rd_await_slice(struct rd_conn *rc, const struct rslice *s)
{
	int r = 0;

	while (!r && !s->ready)
		r = take_pending(rc, s);
	return r;
}

/* Receiver: region message of g, the SLICE records of what is registered
 * already, then the sender's READY. */
static int offer_region(struct rd_conn *rc, unsigned index, struct region *g)
{
	const struct mr_ent *m = g->mr;
	size_t len = 4 + (size_t)m->nmrs * SLICE_MSG;
	uint8_t *msg = malloc(len);
	uint32_t kind;
	int r;

	if (!msg)
		return mfd__rd_fail(rc, -ENOMEM, "out of memory");
	put_be(msg, m->nmrs, 4);
	for (unsigned i = 0; i < m->nmrs; i++) {
		uint8_t *p = msg + 4 + (size_t)i * SLICE_MSG;
		uint64_t off = (uint64_t)i * m->slice;

		put_be(p, (uintptr_t)m->mem + off, 8);
		put_be(p + 8, m->len - off < m->slice ? m->len - off : m->slice,
		       8);
	}
	r = send_bytes(rc, msg, len);
	free(msg);
	rc->announcing = true;
	if (!r)
		r = mfd__rd_announce(rc);
	if (!r)
		r = recv_record(rc, &kind);
	if (!r && kind != REG_READY)
		r = mfd__rd_fail(rc, -EPROTO,
				 "region %u: record %u where READY was due",
				 index, kind);
	return r;
}

/* Sender: the receiver's region message for g (len bytes here), then
 * READY; the slices' rkeys come later. */
static int take_region(struct rd_conn *rc, unsigned index, struct region *g,
		       uint64_t len)
{
	uint64_t off = 0;
	uint8_t *msg = NULL;
	struct iovec v;
	uint32_t n;
	int r = recv_record(rc, &n);

	if (r)
		return r;
	if (n > MAX_SLICES)
		return mfd__rd_fail(rc, -EPROTO,
				    "region %u: %u slices (at most %u)", index,
				    n, MAX_SLICES);
	msg = malloc((size_t)n * SLICE_MSG);
	g->rs = calloc(n, sizeof(*g->rs));
	if (!msg || !g->rs) {
		free(msg);
		return mfd__rd_fail(rc, -ENOMEM, "out of memory");
	}
	v = (struct iovec){ msg, (size_t)n * SLICE_MSG };
	r = mfd__rd_recv(&rc->base, &v, 1);
	for (unsigned i = 0; !r && i < n; i++) {
		const uint8_t *p = msg + (size_t)i * SLICE_MSG;
		uint64_t slen = get_be(p + 8, 8);

		if (!slen || slen > len - off)
			r = mfd__rd_fail(rc, -EPROTO,
					 "region %u: slice %u of %llu bytes at "
					 "offset %llu: empty or past the %llu "
					 "bytes here",
					 index, i, (unsigned long long)slen,
					 (unsigned long long)off,
					 (unsigned long long)len);
		g->rs[i] = (struct rslice){ .off = off,
					    .addr = get_be(p, 8) };
		off += slen;
	}
	free(msg);
	if (r)
		return r;
	g->nrs = n;
	rc->pending_slices += n;
	if (off != len)
		return mfd__rd_fail(rc, -EPROTO,
				    "region %u: %llu bytes here, %llu in the "
				    "peer's %u slices",
				    index, (unsigned long long)len,
				    (unsigned long long)off, n);
	return send_record(rc, REG_READY);
}

static int rd_register_region(struct mfd_conn *c, unsigned index, void *mem,
			      uint64_t len)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	/* often enough that a waiting peer never sees a whole timeout */
	struct reg_tick tick = { send_wait, rc,
				 rc->timeout_ms / 4 ? rc->timeout_ms / 4 : 1 };
	struct region *g;
	uint64_t ns;
	int r = mfd__rd_usable(rc);

	if (r)
		return r;
	if (index >= MFD_MAX_REGIONS || index < rc->nregions)
		return mfd__rd_fail(rc, -EINVAL, "region index %u out of order",
				    index);
	/* regions come after the handshake: the peer proved itself, and
	 * gets the whole ring */
	r = mfd__rd_stream_grow(rc);
	if (r)
		return r;
	g = &rc->regions[index];
	rc->nregions = index + 1;
	/* The least access each end needs: the sender's pages are only the
	 * source of its WRITEs (and may be a read-only mapping); only the
	 * receiver's are written, locally and by the peer. The receiver's
	 * slices are used as they come; the sender's memory (written
	 * already, so pinned much faster) is registered before READY, which
	 * also tells whether its pages can be WRITEs at all. */
	if (rc->passive)
		r = mfd__rd_mr_start(rc->dev, mem, len,
				     IBV_ACCESS_LOCAL_WRITE |
					     IBV_ACCESS_REMOTE_WRITE,
				     &g->made, &g->mr);
	else
		r = mfd__rd_mr_get(rc->dev, mem, len, 0,
				   rc->timeout_ms ? &tick : NULL, &ns, &g->mr);
	if (!r && !rc->passive && ns) {
		c->reg_ns += ns;
		c->reg_bytes += len;
	}
	/* Kernels before 6.2 pin every registration for writing, which a
	 * read-only file mapping refuses (EFAULT): the sender's pages of
	 * such a region then go on the stream (the core flags them STAGED).
	 * The exchange still takes place, to keep the stream. */
	if (r == -EFAULT && !rc->passive) {
		g->mr = NULL;
		r = take_region(rc, index, g, len);
		return r ? r : 1;
	}
	if (r) {
		if (!rc->failed)
			mfd__rd_reg_error(r, len,
					  rc->passive ? "remote writes"
						      : "local reads",
					  c->err, sizeof(c->err));
		return r;
	}
	g->mem = mem;
	g->len = len;
	/* The accepting end receives: it tells the sender where to write.
	 * The exchange precedes every packet on the stream, so it cannot
	 * be taken for region memory or a header. */
	return rc->passive ? offer_region(rc, index, g)
			   : take_region(rc, index, g, len);
}

/* The sender reads the rkeys still due before anything else the receiver
 * sent. */
static int rd_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	int r = 0;

	while (!r && rc->pending_slices)
		r = take_pending(rc, NULL);
	return r ? r : mfd__rd_recv(c, iov, n);
}

/* The receiver tells every rkey before anything else. */
static int rd_send(struct mfd_conn *c, const struct iovec *iov, int n,
		   unsigned flags)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	int r = mfd__rd_usable(rc);

	if (!r && rc->announcing)
		r = announce_all(rc);
	return r ? r : mfd__rd_send(c, iov, n, flags);
}

/*
 * Deregistering (rather than moving the QP to error) ends the rkeys in
 * the whole domain, not just on this QP, unpins the memory at once, and
 * gives a WRITE that still comes a remote access error at the sender
 * instead of a silent drop and a retry timeout; the stream stays up for
 * what the session still has to say.
 */
static void rd_revoke(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;

	if (!rc->passive)
		return; /* its registrations grant no remote access */
	for (unsigned i = 0; i < rc->nregions; i++) {
		mfd__rd_mr_put(rc->regions[i].mr);
		rc->regions[i].mr = NULL;
	}
	mfd__rd_land_free(rc);
}

/*
 * The method's buffer, for a compressing session only, before the
 * regions. Sender: registered for local reads, so that payloads land from
 * it without a copy. Receiver: the sign that payloads will come, so it
 * offers its landing slots (13.8) ahead of the first region message; a
 * session of method none pins none.
 */
static int rd_register_buffer(struct mfd_conn *c, void *mem, uint64_t len)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	uint64_t ns;
	int r = mfd__rd_usable(rc);

	if (r)
		return r;
	if (rc->passive) {
		/* after the handshake: the peer proved itself */
		r = mfd__rd_stream_grow(rc);
		return r ? r : offer_landing(rc);
	}
	if (rc->src_mr)
		return 0;
	r = mfd__rd_mr_get(rc->dev, mem, len, 0, NULL, &ns, &rc->src_mr);
	if (r) {
		rc->src_mr = NULL;
		mfd__rd_reg_error(r, len, "the payload buffer", c->err,
				  sizeof(c->err));
		return r;
	}
	/* one slice: a WRITE names one lkey */
	if (rc->src_mr->nmrs != 1) {
		mfd__rd_mr_put(rc->src_mr);
		rc->src_mr = NULL;
		return -ENOTSUP;
	}
	return 0;
}

const struct mfd_transport_ops mfd__rdma_ops = {
	.name = "rdma",
	.one_sided = true,
	.connect = mfd__rd_connect,
	.listen = mfd__rd_listen,
	.accept = mfd__rd_accept,
	.listener_wake = mfd__rd_listener_wake,
	.listener_close = mfd__rd_listener_close,
	.set_timeout = rd_set_timeout,
	.enable_zerocopy = rd_enable_zerocopy,
	.peer_gone = rd_peer_gone,
	.register_region = rd_register_region,
	.register_buffer = rd_register_buffer,
	.send = rd_send,
	.recv = rd_recv,
	.flush = mfd__rd_flush,
	.shutdown = mfd__rd_shutdown,
	.revoke = rd_revoke,
	.close = mfd__rd_close,
};
