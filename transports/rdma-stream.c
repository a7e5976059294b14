/* SPDX-License-Identifier: MIT */
/*
 * rdma-stream.c - the rdma: transport's byte stream: SEND WITH IMM
 * messages into the peer's ring of pre-posted receive buffers, with
 * credits in the immediate.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "rdma-int.h"

int mfd__rd_post_recv(struct rd_conn *rc, unsigned i)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(rc->rx.mem + (size_t)i * BUF_SIZE),
		.length = BUF_SIZE,
		.lkey = mfd__rd_ring_lkey(&rc->rx, i),
	};
	struct ibv_recv_wr wr = { .wr_id = WR_ID(WR_RECV, i),
				  .sg_list = &sge,
				  .num_sge = 1 },
			   *bad;
	int r = err_pos(ibv_post_recv(rc->qp, &wr, &bad));

	return r ? mfd__rd_fail(rc, r, "ibv_post_recv: %s", strerror(-r)) : 0;
}

/* A SEND WITH IMM of len bytes from tx slot `slot` (len 0: none), then
 * `landed` bytes the WRITE before it put in the peer's next landing slot;
 * returning every credit and landing slot we owe. */
static int post_msg(struct rd_conn *rc, int slot, uint32_t len,
		    uint32_t landed, bool signal)
{
	struct ibv_sge sge = { 0 };
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND_WITH_IMM };
	int r;

	if (len) {
		sge.addr = (uintptr_t)(rc->tx.mem + (size_t)slot * BUF_SIZE);
		sge.length = len;
		sge.lkey = mfd__rd_ring_lkey(&rc->tx, (unsigned)slot);
		wr.sg_list = &sge;
		wr.num_sge = 1;
		if (len <= rc->max_inline)
			wr.send_flags = IBV_SEND_INLINE;
		else
			rc->big_msgs++;
	}
	wr.imm_data = htonl(IMM(rc->owed, rc->land_owed, landed));
	r = mfd__rd_post_wr(rc, &wr, WR_SEND, signal);
	if (r)
		return r;
	if (len)
		rc->tx_seq[slot] = rc->sq_posted - 1;
	rc->credits--;
	rc->owed = 0;
	rc->owed_data = 0;
	rc->land_owed = 0;
	return 0;
}

/*
 * Before this end sleeps, or when it owes many: return credits, with the
 * reserved last credit if need be. Returns for credit-only messages alone
 * wait for the threshold, so two idle ends never bounce credit-only
 * messages back and forth. A landing slot goes back at once: the sender
 * may be waiting for it with the next payload ready.
 */
static int give_credits(struct rd_conn *rc, bool sleeping)
{
	/* a sender that waits for a landing slot returns the credits of
	 * credit-only messages too: the receiver may hold the slot back
	 * for want of one */
	bool starved = rc->land_addr && !rc->land_free;
	bool credits = (sleeping && (rc->owed_data || (starved && rc->owed))) ||
		       rc->owed >= rc->rx.n / 2;
	/* the last credit goes only to a message that returns credits, so
	 * the peer can always answer it; slots alone wait for the next */
	bool slots = rc->land_owed && (rc->owed || rc->credits >= 2);

	if (!rc->credits || !(credits || slots))
		return 0;
	return post_msg(rc, -1, 0, 0, true);
}

/*
 * The whole ring, once the handshake is over: the rest of the receive
 * buffers posted and returned to the peer as credits, and the rest of the
 * send slots, whose numbering changes, so once every SEND is done.
 */
int mfd__rd_stream_grow(struct rd_conn *rc)
{
	int r;

	if (rc->rx.n == RING_BUFS)
		return 0;
	op_start(rc);
	while (rc->tx_tail != rc->tx_head) {
		r = mfd__rd_progress(rc, true, "growing the stream");
		if (r)
			return r;
	}
	r = mfd__rd_ring_grow(rc, &rc->tx, rc->base.err,
			      sizeof(rc->base.err));
	if (!r)
		r = mfd__rd_ring_grow(rc, &rc->rx, rc->base.err,
				      sizeof(rc->base.err));
	if (r) {
		rc->failed = r;
		return r;
	}
	rc->tx_head = rc->tx_tail = 0;
	for (unsigned i = RING_START; i < RING_BUFS; i++) {
		r = mfd__rd_post_recv(rc, i);
		if (r)
			return r;
		rc->owed++;
	}
	return give_credits(rc, false);
}

/* Wait until a SEND can be posted (a credit beyond the reserved one) and,
 * with `slot`, a tx slot is free, and with `land`, a landing slot. */
static int wait_room(struct rd_conn *rc, bool slot, bool land)
{
	int r;

	while ((slot && rc->tx_head - rc->tx_tail == rc->tx.n) ||
	       rc->credits < 2 || (land && !rc->land_free)) {
		const char *why = rc->credits < 2 ? "waiting for receive credits"
				  : land && !rc->land_free
					  ? "waiting for a landing slot"
					  : "waiting for send buffers";

		r = give_credits(rc, true);
		if (!r)
			r = mfd__rd_progress(rc, true, why);
		if (r)
			return r;
	}
	return 0;
}

/* Whether [b, b + len) lands: a piece of the registered payload buffer
 * large enough to be worth a WRITE, and slots to take it. */
static bool landable(const struct rd_conn *rc, const uint8_t *b, size_t len)
{
	const struct mr_ent *m = rc->src_mr;
	const uint8_t *base = m ? m->mem : NULL;

	return m && rc->land_addr && len >= LAND_MIN &&
	       len <= rc->land_size && len <= LAND_LEN_MAX && b >= base &&
	       (uint64_t)(b - base) <= m->len - len;
}

/* [b, b + len) as one WRITE into the peer's next landing slot, then the
 * `fill` bytes gathered in the current tx slot (maybe none) as the SEND
 * that announces it. */
static int land(struct rd_conn *rc, const uint8_t *b, uint32_t len,
		uint32_t fill, bool last)
{
	const struct mr_ent *m = rc->src_mr;
	struct ibv_sge sge = { .addr = (uintptr_t)b,
			       .length = len,
			       .lkey = m->mrs[0]->lkey };
	struct ibv_send_wr wr = {
		.opcode = IBV_WR_RDMA_WRITE,
		.sg_list = &sge,
		.num_sge = 1,
		.wr.rdma.remote_addr =
			rc->land_addr +
			(rc->land_tx % rc->land_slots) * (uint64_t)rc->land_size,
		.wr.rdma.rkey = rc->land_rkey,
	};
	int r = wait_room(rc, false, true);

	/* signalled: send() waits for it before the buffer is reused */
	if (!r)
		r = mfd__rd_post_wr(rc, &wr, WR_WRITE, true);
	if (!r)
		rc->land_wait = rc->sq_posted;
	if (!r)
		r = post_msg(rc, fill ? (int)(rc->tx_head % rc->tx.n) : -1,
			     fill, len, last);
	if (r)
		return r;
	if (fill)
		rc->tx_head++;
	rc->land_tx++;
	rc->land_free--;
	rc->base.landed_sends++;
	return 0;
}

/* Every byte of the list outside regions (`stream` of them), on the
 * stream, after the WRITEs that send() posted before on the same QP:
 * the peer sees them only once the pages are in place. *done counts
 * them. */
int mfd__rd_stream_send(struct rd_conn *rc, const struct iovec *iov, int n,
			size_t stream, size_t *done)
{
	uint32_t fill = 0;
	int r;

	for (int i = 0; i < n && stream; i++) {
		const uint8_t *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (!len || mfd__rd_find_region(rc, b, len))
			continue;
		if (landable(rc, b, len)) {
			stream -= len;
			r = land(rc, b, (uint32_t)len, fill, !stream);
			if (r)
				return r;
			*done += len;
			fill = 0;
			continue;
		}
		while (len) {
			uint32_t k = BUF_SIZE - fill < len ? BUF_SIZE - fill
							   : (uint32_t)len;
			uint8_t *slot;

			/* gather into the next tx slot until it is full */
			if (!fill) {
				r = wait_room(rc, true, false);
				if (r)
					return r;
			}
			slot = rc->tx.mem +
			       (size_t)(rc->tx_head % rc->tx.n) * BUF_SIZE;
			memcpy(slot + fill, b, k);
			fill += k;
			b += k;
			len -= k;
			stream -= k;
			*done += k;
			if (fill == BUF_SIZE || !stream) {
				r = post_msg(rc, (int)(rc->tx_head % rc->tx.n),
					     fill, 0, !stream);
				if (r)
					return r;
				rc->tx_head++;
				fill = 0;
			}
		}
	}
	return 0;
}

/* The bytes of a list that travel on the stream, outside regions. */
static size_t stream_bytes(struct rd_conn *rc, const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		if (iov[i].iov_len &&
		    !mfd__rd_find_region(rc, iov[i].iov_base, iov[i].iov_len))
			t += iov[i].iov_len;
	return t;
}

/* Up to len bytes of the oldest message into b: its own bytes, then
 * those that landed after it. The count, or -errno. */
static ssize_t take(struct rd_conn *rc, uint8_t *b, size_t len)
{
	unsigned h = rc->rxq_head;
	uint32_t avail = rc->rxq_len[h] - rc->rx_off;
	const uint8_t *from = rc->rx.mem + (size_t)rc->rxq[h] * BUF_SIZE +
			      rc->rx_off;
	uint32_t *off = &rc->rx_off;

	if (!avail) {
		/* revoke() may have ended the slots under a queued one */
		if (!rc->land_mem)
			return mfd__rd_fail(rc, -EPROTO,
					    "bytes landed after the landing "
					    "slots were withdrawn");
		avail = rc->rxq_land[h] - rc->rx_land_off;
		from = rc->land_mem +
		       (size_t)(rc->land_rx % LAND_SLOTS) * LAND_SLOT +
		       rc->rx_land_off;
		off = &rc->rx_land_off;
	}
	if (avail > len)
		avail = (uint32_t)len;
	memcpy(b, from, avail);
	*off += avail;
	return avail;
}

int mfd__rd_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	uint64_t got = 0;
	int r = mfd__rd_usable(rc);

	if (r)
		return r;
	op_start(rc);
	for (int i = 0; i < n; i++) {
		uint8_t *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		/* region bytes came as WRITEs before this message */
		if (!len || mfd__rd_find_region(rc, b, len))
			continue;
		while (len) {
			unsigned buf;
			ssize_t k;

			if (!rc->rxq_n) {
				/* about to sleep: the peer may be waiting
				 * for the buffers we freed */
				r = give_credits(rc, true);
				if (!r)
					r = mfd__rd_progress(rc, true, "recv");
				if (r == -EPIPE && !is_down(rc))
					snprintf(c->err, sizeof(c->err),
						 "peer closed the connection"
						 "%s (%llu bytes of this read "
						 "done)",
						 got ? " in the middle of a "
						       "packet" : "",
						 (unsigned long long)got);
				if (r == -ETIMEDOUT)
					mfd__tp_deadline_text(
						c->err, sizeof(c->err), false,
						rc->timeout_ms, (size_t)got,
						stream_bytes(rc, iov, n),
						"arrived", NULL);
				if (r)
					return r;
				continue;
			}
			buf = rc->rxq[rc->rxq_head];
			k = take(rc, b, len);
			if (k < 0)
				return (int)k;
			b += k;
			len -= (size_t)k;
			got += (uint64_t)k;
			if (rc->rx_off < rc->rxq_len[rc->rxq_head] ||
			    rc->rx_land_off < rc->rxq_land[rc->rxq_head])
				continue;
			if (rc->rxq_land[rc->rxq_head]) {
				/* the slot is read: back to the sender */
				rc->land_rx++;
				rc->land_owed++;
				rc->rx_land_off = 0;
			}
			rc->rx_off = 0;
			rc->rxq_head = (rc->rxq_head + 1) % RING_BUFS;
			rc->rxq_n--;
			r = mfd__rd_post_recv(rc, buf);
			if (r)
				return r;
			rc->owed++;
			rc->owed_data++;
			r = give_credits(rc, false);
			if (r)
				return r;
		}
	}
	return 0;
}

