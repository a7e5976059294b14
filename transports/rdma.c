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

#define REGION_MSG 20 /* address, length (8 bytes each), rkey */

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

static int rd_register_region(struct mfd_conn *c, unsigned index, void *mem,
			      uint64_t len)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	struct region *g;
	uint8_t msg[REGION_MSG];
	struct iovec v = { msg, sizeof(msg) };
	int r = mfd__rd_usable(rc);

	if (r)
		return r;
	if (index >= MFD_MAX_REGIONS || index < rc->nregions)
		return mfd__rd_fail(rc, -EINVAL, "region index %u out of order",
				    index);
	/* regions come after the handshake: the peer proved itself */
	r = mfd__rd_stream_grow(rc);
	if (r)
		return r;
	g = &rc->regions[index];
	/* the least access each end needs: the sender's pages are only the
	 * source of its WRITEs (and may be a read-only mapping); only the
	 * receiver's are written, locally and by the peer */
	r = mfd__rd_mr_get(rc->dev, mem, len,
			   rc->passive ? IBV_ACCESS_LOCAL_WRITE |
						 IBV_ACCESS_REMOTE_WRITE
				       : 0,
			   &g->mr);
	/* Kernels before 6.2 pin every registration for writing, which a
	 * read-only file mapping refuses (EFAULT): the sender's pages of
	 * such a region then go on the stream (the core flags them STAGED).
	 * The peer's region message is still read, to keep the stream. */
	if (r == -EFAULT && !rc->passive) {
		g->mr = NULL;
		rc->nregions = index + 1;
		r = mfd__rd_recv(c, &v, 1);
		return r ? r : 1;
	}
	if (r) {
		mfd__rd_reg_error(r, len,
				  rc->passive ? "remote writes" : "local reads",
				  c->err, sizeof(c->err));
		return r;
	}
	g->mem = mem;
	g->len = len;
	rc->nregions = index + 1;
	/* The accepting end receives: it tells the sender where to write.
	 * The message is sent before any region is known on the stream,
	 * so it cannot be taken for region memory. */
	if (rc->passive) {
		put_be(msg, (uintptr_t)mem, 8);
		put_be(msg + 8, len, 8);
		put_be(msg + 16, g->mr->mr->rkey, 4);
		return mfd__rd_send(c, &v, 1, 0);
	}
	r = mfd__rd_recv(c, &v, 1);
	if (r)
		return r;
	if (get_be(msg + 8, 8) != len)
		return mfd__rd_fail(rc, -EPROTO,
				    "region %u: %llu bytes here, %llu at "
				    "the peer",
				    index, (unsigned long long)len,
				    (unsigned long long)get_be(msg + 8, 8));
	g->raddr = get_be(msg, 8);
	g->rkey = (uint32_t)get_be(msg + 16, 4);
	return 0;
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
	.register_region = rd_register_region,
	.send = mfd__rd_send,
	.recv = mfd__rd_recv,
	.flush = mfd__rd_flush,
	.shutdown = mfd__rd_shutdown,
	.revoke = rd_revoke,
	.close = mfd__rd_close,
};
