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

/* A SEND WITH IMM of len bytes from tx slot `slot` (len 0: credits
 * only, no slot), returning every credit we owe. */
static int post_msg(struct rd_conn *rc, int slot, uint32_t len, bool signal)
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
	wr.imm_data = htonl(rc->owed);
	r = mfd__rd_post_wr(rc, &wr, WR_SEND, signal);
	if (r)
		return r;
	if (len)
		rc->tx_seq[slot] = rc->sq_posted - 1;
	rc->credits--;
	rc->owed = 0;
	rc->owed_data = 0;
	return 0;
}

/*
 * Before this end sleeps, or when it owes many: return credits, with the
 * reserved last credit if need be. Returns for credit-only messages alone
 * wait for the threshold, so two idle ends never bounce credit-only
 * messages back and forth.
 */
static int give_credits(struct rd_conn *rc, bool sleeping)
{
	if (!rc->credits ||
	    !((sleeping && rc->owed_data) || rc->owed >= rc->rx.n / 2))
		return 0;
	return post_msg(rc, -1, 0, true);
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
		while (len) {
			uint32_t k = BUF_SIZE - fill < len ? BUF_SIZE - fill
							   : (uint32_t)len;
			uint8_t *slot;

			/* gather into the next tx slot until it is full */
			while (rc->tx_head - rc->tx_tail == rc->tx.n ||
			       rc->credits < 2) {
				const char *why = rc->credits < 2
					? "waiting for receive credits"
					: "waiting for send buffers";

				r = give_credits(rc, true);
				if (!r)
					r = mfd__rd_progress(rc, true, why);
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
					     fill, !stream);
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
			uint32_t k, avail;

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
					snprintf(c->err, sizeof(c->err),
						 "no data for %u ms (%llu of "
						 "%zu bytes of this read done)",
						 rc->timeout_ms,
						 (unsigned long long)got,
						 stream_bytes(rc, iov, n));
				if (r)
					return r;
				continue;
			}
			buf = rc->rxq[rc->rxq_head];
			avail = rc->rxq_len[rc->rxq_head] - rc->rx_off;
			k = avail < len ? avail : (uint32_t)len;
			memcpy(b, rc->rx.mem + (size_t)buf * BUF_SIZE +
					  rc->rx_off,
			       k);
			b += k;
			len -= k;
			got += k;
			rc->rx_off += k;
			if (rc->rx_off < rc->rxq_len[rc->rxq_head])
				continue;
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

