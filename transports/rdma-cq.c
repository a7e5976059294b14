/* SPDX-License-Identifier: MIT */
/*
 * rdma-cq.c - the send queue and the completion queue of an rdma: connection:
 * posting work requests, reaping completions, and sleeping until one
 * comes within the op's deadline.
 */
#include "config.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "rdma-int.h"

/* Drain the rdma_cm events of a connection; DISCONNECTED ends it. */
static int cm_check(struct rd_conn *rc)
{
	const char *end = mfd__rd_cm_end(rc);

	return end ? mfd__rd_fail(rc, -EPIPE,
				  "peer closed the connection (%s)", end)
		   : 0;
}

static const char *wr_name(uint64_t kind)
{
	return kind == WR_WRITE ? "RDMA WRITE"
	       : kind == WR_SEND ? "SEND"
				 : "RECV";
}

static int handle_wc(struct rd_conn *rc, const struct ibv_wc *wc)
{
	uint64_t kind = WR_KIND(wc->wr_id), v = WR_VAL(wc->wr_id);
	uint32_t landed = 0;
	unsigned t;

	if (wc->status != IBV_WC_SUCCESS) {
		/* after a disconnect or shutdown, the QP flushes what was
		 * posted: that is the peer leaving, not a fault */
		if (wc->status == IBV_WC_WR_FLUSH_ERR)
			return mfd__rd_fail(
				rc, -EPIPE, "%s",
				is_down(rc) ? "connection shut down"
					    : "peer closed the connection");
		return mfd__rd_fail(rc, -EIO,
				    "%s failed: %s (status %d, vendor "
				    "error 0x%x)",
				    wr_name(kind),
				    ibv_wc_status_str(wc->status), wc->status,
				    wc->vendor_err);
	}
	if (kind != WR_RECV) {
		rc->sq_done = v + 1;
		while (rc->tx_tail != rc->tx_head &&
		       rc->tx_seq[rc->tx_tail % rc->tx.n] < rc->sq_done)
			rc->tx_tail++;
		return 0;
	}
	if (wc->wc_flags & IBV_WC_WITH_IMM) {
		uint32_t imm = ntohl(wc->imm_data);

		rc->credits += IMM_CREDITS(imm);
		rc->land_free += IMM_LANDS(imm);
		landed = IMM_LANDED(imm);
	}
	/* only slots this end offered can be filled, and only slots it
	 * was given can come back */
	if (landed > (rc->land_mr ? LAND_SLOT : 0))
		return mfd__rd_fail(rc, -EPROTO,
				    "the peer says %u bytes landed: %s", landed,
				    rc->land_mr ? "more than a slot holds"
						: "no landing slot was offered");
	if (rc->land_free > rc->land_slots)
		return mfd__rd_fail(rc, -EPROTO,
				    "the peer returned more landing slots "
				    "than it was given");
	if (wc->byte_len == 0 && !landed) {
		/* credits only: the buffer is free at once */
		rc->owed++;
		return mfd__rd_post_recv(rc, (unsigned)v);
	}
	t = (rc->rxq_head + rc->rxq_n) % RING_BUFS;
	rc->rxq[t] = (unsigned)v;
	rc->rxq_len[t] = wc->byte_len;
	rc->rxq_land[t] = landed;
	rc->rxq_n++;
	return 0;
}

/*
 * Reap completions. With `block`, sleep until at least one arrives, at
 * most until the op's deadline. `what` names the wait in a timeout
 * message. A receiver whose regions are still registering announces the
 * slices done meanwhile (unless a send is under way, which no record may
 * cut), and then also returns after ANNOUNCE_POLL_MS with nothing
 * reaped: callers wait in a loop on what they wait for.
 */
#define ANNOUNCE_POLL_MS 5

int mfd__rd_progress(struct rd_conn *rc, bool block, const char *what)
{
	for (;;) {
		bool announcing = rc->announcing && !rc->in_send;
		int wait_ms;
		struct ibv_wc wc[16];
		struct pollfd p[3] = {
			{ .fd = rc->cch->fd, .events = POLLIN },
			{ .fd = rc->ech->fd, .events = POLLIN },
			{ .fd = rc->wake_fd, .events = POLLIN },
		};
		int n = ibv_poll_cq(rc->cq, 16, wc), r;

		if (n < 0)
			return mfd__rd_fail(rc, -EIO, "ibv_poll_cq failed");
		for (int i = 0; i < n; i++) {
			r = handle_wc(rc, &wc[i]);
			if (r)
				return r;
		}
		if (n > 0 || !block)
			return 0;
		if (is_down(rc))
			return mfd__rd_fail(rc, -EPIPE, "connection shut down");
		r = cm_check(rc);
		if (r)
			return r;
		if (announcing) {
			r = mfd__rd_announce(rc);
			if (r)
				return r;
		}
		if (!rc->armed) {
			/* a completion between the poll and the arming
			 * would not wake us: arm, then poll once more */
			r = err_pos(ibv_req_notify_cq(rc->cq, 0));
			if (r)
				return mfd__rd_fail(rc, r,
						    "ibv_req_notify_cq: %s",
						    strerror(-r));
			rc->armed = true;
			continue;
		}
		wait_ms = left_ms(rc->deadline);
		if (announcing &&
		    (wait_ms < 0 || wait_ms > ANNOUNCE_POLL_MS))
			wait_ms = ANNOUNCE_POLL_MS;
		else
			announcing = false;
		r = poll(p, 3, wait_ms);
		if (r < 0 && errno != EINTR)
			return mfd__rd_fail(rc, -errno, "poll: %s",
					    strerror(errno));
		if (r == 0 && announcing)
			return 0;
		if (r == 0) {
			rc->stalled = what;
			return mfd__rd_fail(rc, -ETIMEDOUT,
					    "%s: still waiting when the "
					    "call's %u ms ran out", what,
					    rc->timeout_ms);
		}
		/* a channel fd in error stays readable: it must not spin */
		if ((p[0].revents | p[1].revents) &
		    (POLLERR | POLLHUP | POLLNVAL))
			return mfd__rd_fail(rc, -EIO,
					    "%s: the device's event channel "
					    "failed",
					    what);
		if (p[0].revents) {
			struct ibv_cq *cq;
			void *ctx;

			if (!ibv_get_cq_event(rc->cch, &cq, &ctx)) {
				ibv_ack_cq_events(cq, 1);
				rc->armed = false;
			} else if (errno != EAGAIN) {
				return mfd__rd_fail(
					rc, errno ? -errno : -EIO,
					"ibv_get_cq_event: %s",
					strerror(errno ? errno : EIO));
			}
		}
	}
}

int mfd__rd_usable(struct rd_conn *rc)
{
	if (rc->failed)
		return rc->failed;
	if (is_down(rc))
		return mfd__rd_fail(rc, -EPIPE, "connection shut down");
	return 0;
}

/* Post one WR on the send queue, waiting for room first. */
int mfd__rd_post_wr(struct rd_conn *rc, struct ibv_send_wr *wr, uint64_t kind,
		           bool signal)
{
	struct ibv_send_wr *bad;
	int r;

	while (rc->sq_posted - rc->sq_done >= rc->sq_depth - 1) {
		r = mfd__rd_progress(rc, true, "send queue full");
		if (r)
			return r;
	}
	if (++rc->unsignalled >= SIG_EVERY)
		signal = true;
	if (signal) {
		wr->send_flags |= IBV_SEND_SIGNALED;
		rc->unsignalled = 0;
	}
	wr->wr_id = WR_ID(kind, rc->sq_posted);
	r = err_pos(ibv_post_send(rc->qp, wr, &bad));
	if (r)
		return mfd__rd_fail(rc, r, "ibv_post_send(%s): %s",
				    wr_name(kind), strerror(-r));
	rc->sq_posted++;
	return 0;
}

/* One deadline for the whole flush, however many completions come. */
int mfd__rd_flush(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	int r = mfd__rd_usable(rc);

	op_start(rc);
	/* the last WR of every send() is signalled, so all complete */
	while (!r && rc->sq_done != rc->sq_posted)
		r = mfd__rd_progress(rc, true, "flush");
	if (r == -ETIMEDOUT)
		snprintf(c->err, sizeof(c->err),
			 "flush: %llu work requests not completed after %u ms",
			 (unsigned long long)(rc->sq_posted - rc->sq_done),
			 rc->timeout_ms);
	return r;
}

