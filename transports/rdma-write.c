/* SPDX-License-Identifier: MIT */
/*
 * rdma-write.c - send() on the rdma: transport: the list's region entries
 * as RDMA WRITEs into the peer's copy at the same offset, then every other
 * byte on the stream, on the same QP.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "rdma-int.h"

/* The region that holds [p, p + len) whole, or NULL. */
struct region *mfd__rd_find_region(struct rd_conn *rc, const void *p,
				          size_t len)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < rc->nregions; i++) {
		struct region *g = &rc->regions[i];

		if (g->mr && b >= g->mem && len <= g->len &&
		    (uint64_t)(b - g->mem) <= g->len - len)
			return g;
	}
	return NULL;
}

/* The slice of the receiver's copy that holds offset off of g. */
static const struct rslice *find_rslice(const struct region *g, uint64_t off)
{
	unsigned lo = 0, hi = g->nrs;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;

		if (g->rs[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &g->rs[lo];
}

/* RDMA WRITE [p, p + len) of region g to the peer's copy, one WR per
 * piece within one local slice, one remote slice and the port's
 * max_msg_sz. */
static int post_write(struct rd_conn *rc, struct region *g, uint8_t *p,
		      uint64_t len, bool last)
{
	const struct mr_ent *m = g->mr;

	while (len) {
		uint64_t off = (uint64_t)(p - g->mem);
		unsigned li = (unsigned)(off / m->slice);
		const struct rslice *s = find_rslice(g, off);
		uint64_t rend = s + 1 < g->rs + g->nrs ? s[1].off : g->len;
		uint64_t n = len < rc->max_msg ? len : rc->max_msg;
		struct ibv_sge sge;
		struct ibv_send_wr wr;
		int r = s->ready ? 0 : mfd__rd_await_slice(rc, s);

		if (r)
			return r;
		if (n > (uint64_t)(li + 1) * m->slice - off)
			n = (uint64_t)(li + 1) * m->slice - off;
		if (n > rend - off)
			n = rend - off;
		sge = (struct ibv_sge){ .addr = (uintptr_t)p,
					.length = (uint32_t)n,
					.lkey = m->mrs[li]->lkey };
		wr = (struct ibv_send_wr){
			.opcode = IBV_WR_RDMA_WRITE,
			.sg_list = &sge,
			.num_sge = 1,
			.wr.rdma.remote_addr = s->addr + (off - s->off),
			.wr.rdma.rkey = s->rkey,
		};
		r = mfd__rd_post_wr(rc, &wr, WR_WRITE, last && n == len);
		if (r)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

/* mfd__rd_send() under the deadline op_start() set; *done counts the bytes
 * posted. */
static int rd_send_list(struct rd_conn *rc, const struct iovec *iov, int n,
			size_t *done)
{
	struct region *wg = NULL;
	uint8_t *wp = NULL;
	uint64_t wlen = 0;
	size_t stream = 0;
	int r;

	/* Region entries first, as WRITEs; adjacent ones (mfd__packet_
	 * page_iov already joins page runs) become one WR, so one SGE per
	 * WR is all it takes. */
	for (int i = 0; i < n; i++) {
		uint8_t *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		struct region *g;

		if (!len)
			continue;
		g = mfd__rd_find_region(rc, b, len);
		if (!g) {
			stream += len;
			continue;
		}
		if (g == wg && wp + wlen == b) {
			wlen += len;
			continue;
		}
		if (wg) {
			r = post_write(rc, wg, wp, wlen, false);
			if (r)
				return r;
			*done += wlen;
		}
		wg = g;
		wp = b;
		wlen = len;
	}
	if (wg) {
		r = post_write(rc, wg, wp, wlen, !stream);
		if (r)
			return r;
		*done += wlen;
	}
	if (stream) {
		uint64_t big = rc->big_msgs;

		r = mfd__rd_stream_send(rc, iov, n, stream, done);
		if (r)
			return r;
		if (rc->big_msgs == big)
			rc->base.inline_sends++;
	}
	/* a landed payload's buffer is the caller's again on return */
	while (rc->sq_done < rc->land_wait) {
		r = mfd__rd_progress(rc, true, "landing the payload");
		if (r)
			return r;
	}
	/* reap what is done without waiting, so the CQ never backs up */
	return mfd__rd_progress(rc, false, "send");
}

int mfd__rd_send(struct mfd_conn *c, const struct iovec *iov, int n,
		        unsigned flags)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	size_t done = 0, all = 0;
	int r = mfd__rd_usable(rc);

	if (r)
		return r;
	op_start(rc);
	/* whatever it waits for, no record may go out in the middle */
	rc->in_send = true;
	r = rd_send_list(rc, iov, n, &done);
	rc->in_send = false;
	if (r == -ETIMEDOUT) {
		for (int i = 0; i < n; i++)
			all += iov[i].iov_len;
		mfd__tp_deadline_text(c->err, sizeof(c->err), true,
				      rc->timeout_ms, done, all, "posted",
				      rc->stalled);
	}
	return r;
}

