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
 * errno depending on the call; err_ptr(), err_neg() and err_pos() at the
 * top turn each into -errno, and every call goes through one of them.
 * Ops are prefixed rd_ because rdma_ is librdmacm's namespace.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "multifd.h"
#include "transport.h"

/* NULL + errno */
static int err_ptr(const void *p)
{
	return p ? 0 : errno ? -errno : -ENOMEM;
}

/* -1 + errno (and some providers: a negative errno) */
static int err_neg(int r)
{
	if (r >= 0)
		return 0;
	return errno ? -errno : r < -1 ? r : -EIO;
}

/* a positive errno (and some providers: -1 + errno) */
static int err_pos(int r)
{
	if (r > 0)
		return -r;
	return r < 0 ? (errno ? -errno : -EIO) : 0;
}

/*
 * The stream's receive ring: RING_BUFS messages of BUF_SIZE bytes per
 * direction. Both ends use these constants, so each starts with
 * RING_BUFS credits.
 */
#define RING_BUFS 32
#define BUF_SIZE (32u << 10)
#define SQ_DEPTH 256u
/* an unsignalled WR completes with the next signalled one; signal often
 * enough that the send queue never fills with unreaped WRs */
#define SIG_EVERY 16u
#define INLINE_WANT 128u
#define CONNECT_TIMEOUT_MS 30000u

/* wr_id: the kind in the top byte, a sequence number or index below */
#define WR_WRITE 1ull
#define WR_SEND 2ull
#define WR_RECV 3ull
#define WR_ID(kind, v) ((kind) << 56 | (v))
#define WR_KIND(id) ((id) >> 56)
#define WR_VAL(id) ((id) & ((1ull << 56) - 1))

/*
 * Protection domains and region registrations, shared by every
 * connection on the same device: a region is pinned once per process
 * however many channels (or sessions) use it. Protected by table_lock.
 */
struct dev_ent {
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	unsigned refs;
	struct dev_ent *next;
};

struct mr_ent {
	struct dev_ent *dev;
	void *mem;
	uint64_t len;
	int access; /* IBV_ACCESS_* it was registered with */
	struct ibv_mr *mr;
	unsigned refs;
	struct mr_ent *next;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dev_ent *devs;
static struct mr_ent *mrs;

static struct dev_ent *dev_get(struct ibv_context *verbs)
{
	struct dev_ent *d;

	pthread_mutex_lock(&table_lock);
	for (d = devs; d; d = d->next)
		if (d->verbs == verbs)
			break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d) {
			d->verbs = verbs;
			d->pd = ibv_alloc_pd(verbs);
			if (err_ptr(d->pd)) {
				free(d);
				d = NULL;
			} else {
				d->next = devs;
				devs = d;
			}
		}
	}
	if (d)
		d->refs++;
	pthread_mutex_unlock(&table_lock);
	return d;
}

static void dev_put(struct dev_ent *d)
{
	struct dev_ent **pp;

	if (!d)
		return;
	pthread_mutex_lock(&table_lock);
	if (--d->refs == 0) {
		for (pp = &devs; *pp != d; pp = &(*pp)->next)
			;
		*pp = d->next;
		ibv_dealloc_pd(d->pd);
		free(d);
	}
	pthread_mutex_unlock(&table_lock);
}

static int mr_get(struct dev_ent *d, void *mem, uint64_t len, int access,
		  struct mr_ent **out)
{
	struct mr_ent *m;
	int r = 0;

	pthread_mutex_lock(&table_lock);
	for (m = mrs; m; m = m->next)
		if (m->dev == d && m->mem == mem && m->len == len &&
		    m->access == access)
			break;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			goto out;
		}
		m->mr = ibv_reg_mr(d->pd, mem, len, access);
		r = err_ptr(m->mr);
		if (r) {
			free(m);
			goto out;
		}
		m->access = access;
		m->dev = d;
		m->mem = mem;
		m->len = len;
		m->next = mrs;
		mrs = m;
	}
	m->refs++;
	*out = m;
out:
	pthread_mutex_unlock(&table_lock);
	return r;
}

static void mr_put(struct mr_ent *m)
{
	struct mr_ent **pp;

	if (!m)
		return;
	pthread_mutex_lock(&table_lock);
	if (--m->refs == 0) {
		for (pp = &mrs; *pp != m; pp = &(*pp)->next)
			;
		*pp = m->next;
		ibv_dereg_mr(m->mr);
		free(m);
	}
	pthread_mutex_unlock(&table_lock);
}

struct region {
	uint8_t *mem;
	uint64_t len;
	struct mr_ent *mr;
	uint64_t raddr; /* sender: the receiver's copy */
	uint32_t rkey;
};

/* A registered ring of RING_BUFS buffers. */
struct ring {
	uint8_t *mem;
	struct ibv_mr *mr;
};

struct rd_conn {
	struct mfd_conn base;

	/* Immutable after connect/accept. */
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct dev_ent *dev;
	struct ibv_comp_channel *cch;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int wake_fd;
	bool passive; /* accepted: the receiving end of a session */
	uint32_t max_msg;
	uint32_t max_inline;
	uint32_t sq_depth;
	struct ring rx, tx;

	/* Written by shutdown() from any thread. */
	int down;

	/* Only the channel thread touches the rest. */
	unsigned timeout_ms;
	int64_t deadline; /* of the send, recv or flush under way; 0: none */
	const char *stalled; /* the wait that ran past it */
	bool armed; /* the CQ is armed: a completion will wake poll() */
	bool connected;
	int failed; /* sticky: the connection is unusable */
	/* send queue: WRs are numbered; those below sq_done completed */
	uint64_t sq_posted, sq_done;
	unsigned unsignalled;
	/* tx ring: slot i is reusable once the SEND in tx_seq[i] is done */
	uint64_t tx_seq[RING_BUFS];
	unsigned tx_head, tx_tail;
	/* credits: our SENDs the peer can take; returns we owe the peer */
	unsigned credits;
	unsigned owed, owed_data;
	/* received messages not yet consumed, in order */
	unsigned rxq[RING_BUFS];
	uint32_t rxq_len[RING_BUFS];
	unsigned rxq_head, rxq_n;
	uint32_t rx_off; /* bytes of rxq[rxq_head] already consumed */
	uint64_t rx_bytes; /* for error messages */
	struct region regions[MFD_MAX_REGIONS];
	unsigned nregions;
};

struct rd_listener {
	struct mfd_listener base;
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	int wake_fd;
};

static int fail(struct rd_conn *rc, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct rd_conn *rc, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rc->base.err, sizeof(rc->base.err), fmt, ap);
	va_end(ap);
	if (e != -ETIMEDOUT)
		rc->failed = e;
	return e;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline of an op that starts now. */
static void op_start(struct rd_conn *rc)
{
	rc->deadline = rc->timeout_ms ? now_ms() + rc->timeout_ms : 0;
}

/* poll() timeout left before deadline (0: none), at least 0 */
static int left_ms(int64_t deadline)
{
	int64_t l;

	if (!deadline)
		return -1;
	l = deadline - now_ms();
	return l < 0 ? 0 : l > 1000000000 ? 1000000000 : (int)l;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return err_neg(fl < 0 ? fl : fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

/*
 * Wait for the next event on ech other than those the caller skips,
 * until deadline (0: forever) or until wake_fd is written. The caller
 * acks *ev.
 */
static int cm_wait(struct rdma_event_channel *ech, int wake_fd,
		   int64_t deadline, struct rdma_cm_event **ev)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = ech->fd, .events = POLLIN },
				       { .fd = wake_fd, .events = POLLIN } };
		int r = rdma_get_cm_event(ech, ev);

		if (!r)
			return 0;
		r = err_neg(r);
		if (r != -EAGAIN)
			return r;
		r = poll(p, wake_fd >= 0 ? 2 : 1, left_ms(deadline));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (r > 0 && p[1].revents)
			return -ECANCELED;
	}
}

/* Wait for `want` on the connection's own channel during setup. */
static int cm_expect(struct rd_conn *rc, enum rdma_cm_event_type want,
		     int64_t deadline, char *err, size_t errlen)
{
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;
	int status, r;

	r = cm_wait(rc->ech, -1, deadline, &ev);
	if (r) {
		snprintf(err, errlen, "waiting for %s: %s",
			 rdma_event_str(want), strerror(-r));
		return r;
	}
	got = ev->event;
	status = ev->status;
	rdma_ack_cm_event(ev);
	if (got == want)
		return 0;
	snprintf(err, errlen, "%s instead of %s (status %d)",
		 rdma_event_str(got), rdma_event_str(want), status);
	switch (got) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		return -EHOSTUNREACH;
	default:
		return -ECONNABORTED;
	}
}

static int post_recv(struct rd_conn *rc, unsigned i)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(rc->rx.mem + (size_t)i * BUF_SIZE),
		.length = BUF_SIZE,
		.lkey = rc->rx.mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = WR_ID(WR_RECV, i),
				  .sg_list = &sge,
				  .num_sge = 1 },
			   *bad;
	int r = err_pos(ibv_post_recv(rc->qp, &wr, &bad));

	return r ? fail(rc, r, "ibv_post_recv: %s", strerror(-r)) : 0;
}

static const char *wr_name(uint64_t kind)
{
	return kind == WR_WRITE ? "RDMA WRITE"
	       : kind == WR_SEND ? "SEND"
				 : "RECV";
}

static bool is_down(struct rd_conn *rc)
{
	return __atomic_load_n(&rc->down, __ATOMIC_ACQUIRE);
}

static int handle_wc(struct rd_conn *rc, const struct ibv_wc *wc)
{
	uint64_t kind = WR_KIND(wc->wr_id), v = WR_VAL(wc->wr_id);
	unsigned t;

	if (wc->status != IBV_WC_SUCCESS) {
		/* after a disconnect or shutdown, the QP flushes what was
		 * posted: that is the peer leaving, not a fault */
		if (wc->status == IBV_WC_WR_FLUSH_ERR)
			return fail(rc, -EPIPE,
				    "%s", is_down(rc) ? "connection shut down"
				    : "peer closed the connection");
		return fail(rc, -EIO, "%s failed: %s (status %d, vendor "
			    "error 0x%x)",
			    wr_name(kind), ibv_wc_status_str(wc->status),
			    wc->status, wc->vendor_err);
	}
	if (kind != WR_RECV) {
		rc->sq_done = v + 1;
		while (rc->tx_tail != rc->tx_head &&
		       rc->tx_seq[rc->tx_tail % RING_BUFS] < rc->sq_done)
			rc->tx_tail++;
		return 0;
	}
	if (wc->wc_flags & IBV_WC_WITH_IMM)
		rc->credits += ntohl(wc->imm_data);
	if (wc->byte_len == 0) {
		/* credits only: the buffer is free at once */
		rc->owed++;
		return post_recv(rc, (unsigned)v);
	}
	t = (rc->rxq_head + rc->rxq_n) % RING_BUFS;
	rc->rxq[t] = (unsigned)v;
	rc->rxq_len[t] = wc->byte_len;
	rc->rxq_n++;
	return 0;
}

/* Drain the rdma_cm events of a connection; DISCONNECTED ends it. */
static int cm_check(struct rd_conn *rc)
{
	struct rdma_cm_event *ev;

	while (!rdma_get_cm_event(rc->ech, &ev)) {
		enum rdma_cm_event_type e = ev->event;

		rdma_ack_cm_event(ev);
		if (e == RDMA_CM_EVENT_DISCONNECTED ||
		    e == RDMA_CM_EVENT_DEVICE_REMOVAL ||
		    e == RDMA_CM_EVENT_TIMEWAIT_EXIT) {
			rc->connected = false;
			return fail(rc, -EPIPE, "peer closed the connection "
				    "(%s)", rdma_event_str(e));
		}
	}
	return 0;
}

/*
 * Reap completions. With `block`, sleep until at least one arrives, at
 * most until the op's deadline. `what` names the wait in a timeout
 * message.
 */
static int progress(struct rd_conn *rc, bool block, const char *what)
{
	for (;;) {
		struct ibv_wc wc[16];
		struct pollfd p[3] = {
			{ .fd = rc->cch->fd, .events = POLLIN },
			{ .fd = rc->ech->fd, .events = POLLIN },
			{ .fd = rc->wake_fd, .events = POLLIN },
		};
		int n = ibv_poll_cq(rc->cq, 16, wc), r;

		if (n < 0)
			return fail(rc, -EIO, "ibv_poll_cq failed");
		for (int i = 0; i < n; i++) {
			r = handle_wc(rc, &wc[i]);
			if (r)
				return r;
		}
		if (n > 0 || !block)
			return 0;
		if (is_down(rc))
			return fail(rc, -EPIPE, "connection shut down");
		r = cm_check(rc);
		if (r)
			return r;
		if (!rc->armed) {
			/* a completion between the poll and the arming
			 * would not wake us: arm, then poll once more */
			r = err_pos(ibv_req_notify_cq(rc->cq, 0));
			if (r)
				return fail(rc, r, "ibv_req_notify_cq: %s",
					    strerror(-r));
			rc->armed = true;
			continue;
		}
		r = poll(p, 3, left_ms(rc->deadline));
		if (r < 0 && errno != EINTR)
			return fail(rc, -errno, "poll: %s", strerror(errno));
		if (r == 0) {
			rc->stalled = what;
			return fail(rc, -ETIMEDOUT, "%s: nothing for %u ms",
				    what, rc->timeout_ms);
		}
		/* a channel fd in error stays readable: it must not spin */
		if ((p[0].revents | p[1].revents) &
		    (POLLERR | POLLHUP | POLLNVAL))
			return fail(rc, -EIO, "%s: the device's event channel "
				    "failed", what);
		if (p[0].revents) {
			struct ibv_cq *cq;
			void *ctx;

			if (!ibv_get_cq_event(rc->cch, &cq, &ctx)) {
				ibv_ack_cq_events(cq, 1);
				rc->armed = false;
			} else if (errno != EAGAIN) {
				return fail(rc, errno ? -errno : -EIO,
					    "ibv_get_cq_event: %s",
					    strerror(errno ? errno : EIO));
			}
		}
	}
}

static int check_usable(struct rd_conn *rc)
{
	if (rc->failed)
		return rc->failed;
	if (is_down(rc))
		return fail(rc, -EPIPE, "connection shut down");
	return 0;
}

/* Post one WR on the send queue, waiting for room first. */
static int post_wr(struct rd_conn *rc, struct ibv_send_wr *wr, uint64_t kind,
		   bool signal)
{
	struct ibv_send_wr *bad;
	int r;

	while (rc->sq_posted - rc->sq_done >= rc->sq_depth - 1) {
		r = progress(rc, true, "send queue full");
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
		return fail(rc, r, "ibv_post_send(%s): %s", wr_name(kind),
			    strerror(-r));
	rc->sq_posted++;
	return 0;
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
		sge.lkey = rc->tx.mr->lkey;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		if (len <= rc->max_inline)
			wr.send_flags = IBV_SEND_INLINE;
	}
	wr.imm_data = htonl(rc->owed);
	r = post_wr(rc, &wr, WR_SEND, signal);
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
	    !((sleeping && rc->owed_data) || rc->owed >= RING_BUFS / 2))
		return 0;
	return post_msg(rc, -1, 0, true);
}

/* The region that holds [p, p + len) whole, or NULL. */
static struct region *find_region(struct rd_conn *rc, const void *p,
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

/* RDMA WRITE [p, p + len) of region g to the peer's copy, in pieces of
 * at most the port's max_msg_sz. */
static int post_write(struct rd_conn *rc, struct region *g, uint8_t *p,
		      uint64_t len, bool last)
{
	while (len) {
		uint32_t n = len < rc->max_msg ? (uint32_t)len : rc->max_msg;
		struct ibv_sge sge = { .addr = (uintptr_t)p,
				       .length = n,
				       .lkey = g->mr->mr->lkey };
		struct ibv_send_wr wr = {
			.opcode = IBV_WR_RDMA_WRITE,
			.sg_list = &sge,
			.num_sge = 1,
			.wr.rdma.remote_addr = g->raddr +
					       (uint64_t)(p - g->mem),
			.wr.rdma.rkey = g->rkey,
		};
		int r = post_wr(rc, &wr, WR_WRITE, last && n == len);

		if (r)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

/* rd_send() under the deadline op_start() set; *done counts the bytes
 * posted. */
static int rd_send_list(struct rd_conn *rc, const struct iovec *iov, int n,
			size_t *done)
{
	struct region *wg = NULL;
	uint8_t *wp = NULL;
	uint64_t wlen = 0;
	size_t stream = 0;
	uint32_t fill = 0;
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
		g = find_region(rc, b, len);
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
	/* Then every other byte on the stream, after the WRITEs on the
	 * same QP: the peer sees them only once the pages are in place. */
	for (int i = 0; i < n && stream; i++) {
		const uint8_t *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (!len || find_region(rc, b, len))
			continue;
		while (len) {
			uint32_t k = BUF_SIZE - fill < len ? BUF_SIZE - fill
							   : (uint32_t)len;
			uint8_t *slot;

			/* gather into the next tx slot until it is full */
			while (rc->tx_head - rc->tx_tail == RING_BUFS ||
			       rc->credits < 2) {
				r = give_credits(rc, true);
				if (!r)
					r = progress(rc, true, rc->credits < 2
						? "waiting for receive credits"
						: "waiting for send buffers");
				if (r)
					return r;
			}
			slot = rc->tx.mem +
			       (size_t)(rc->tx_head % RING_BUFS) * BUF_SIZE;
			memcpy(slot + fill, b, k);
			fill += k;
			b += k;
			len -= k;
			stream -= k;
			*done += k;
			if (fill == BUF_SIZE || !stream) {
				r = post_msg(rc, (int)(rc->tx_head % RING_BUFS),
					     fill, !stream);
				if (r)
					return r;
				rc->tx_head++;
				fill = 0;
			}
		}
	}
	/* reap what is done without waiting, so the CQ never backs up */
	return progress(rc, false, "send");
}

static int rd_send(struct mfd_conn *c, const struct iovec *iov, int n,
		   unsigned flags)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	size_t done = 0, all = 0;
	int r = check_usable(rc);

	if (r)
		return r;
	op_start(rc);
	r = rd_send_list(rc, iov, n, &done);
	if (r == -ETIMEDOUT) {
		for (int i = 0; i < n; i++)
			all += iov[i].iov_len;
		snprintf(c->err, sizeof(c->err),
			 "send stalled for %u ms (%s; %zu of %zu bytes of this "
			 "send posted)",
			 rc->timeout_ms, rc->stalled, done, all);
	}
	return r;
}

/* The bytes of a list that travel on the stream, outside regions. */
static size_t stream_bytes(struct rd_conn *rc, const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		if (iov[i].iov_len &&
		    !find_region(rc, iov[i].iov_base, iov[i].iov_len))
			t += iov[i].iov_len;
	return t;
}

static int rd_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	uint64_t got = 0;
	int r = check_usable(rc);

	if (r)
		return r;
	op_start(rc);
	for (int i = 0; i < n; i++) {
		uint8_t *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		/* region bytes came as WRITEs before this message */
		if (!len || find_region(rc, b, len))
			continue;
		while (len) {
			unsigned buf;
			uint32_t k, avail;

			if (!rc->rxq_n) {
				/* about to sleep: the peer may be waiting
				 * for the buffers we freed */
				r = give_credits(rc, true);
				if (!r)
					r = progress(rc, true, "recv");
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
			r = post_recv(rc, buf);
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

/* One deadline for the whole flush, however many completions come. */
static int rd_flush(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	int r = check_usable(rc);

	op_start(rc);
	/* the last WR of every send() is signalled, so all complete */
	while (!r && rc->sq_done != rc->sq_posted)
		r = progress(rc, true, "flush");
	if (r == -ETIMEDOUT)
		snprintf(c->err, sizeof(c->err),
			 "flush: %llu work requests not completed after %u ms",
			 (unsigned long long)(rc->sq_posted - rc->sq_done),
			 rc->timeout_ms);
	return r;
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
	int r = check_usable(rc);

	if (r)
		return r;
	if (index >= MFD_MAX_REGIONS || index < rc->nregions)
		return fail(rc, -EINVAL, "region index %u out of order", index);
	g = &rc->regions[index];
	/* the least access each end needs: the sender's pages are only the
	 * source of its WRITEs (and may be a read-only mapping); only the
	 * receiver's are written, locally and by the peer */
	r = mr_get(rc->dev, mem, len,
		   rc->passive ? IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE
			       : 0,
		   &g->mr);
	/* Kernels before 6.2 pin every registration for writing, which a
	 * read-only file mapping refuses (EFAULT): the sender's pages of
	 * such a region then go on the stream (the core flags them STAGED).
	 * The peer's region message is still read, to keep the stream. */
	if (r == -EFAULT && !rc->passive) {
		g->mr = NULL;
		rc->nregions = index + 1;
		r = rd_recv(c, &v, 1);
		return r ? r : 1;
	}
	if (r) {
		struct rlimit rl;

		getrlimit(RLIMIT_MEMLOCK, &rl);
		if ((r == -ENOMEM || r == -EPERM || r == -EAGAIN) &&
		    rl.rlim_cur != RLIM_INFINITY)
			snprintf(c->err, sizeof(c->err),
				 "ibv_reg_mr of %llu bytes: %s (RLIMIT_MEMLOCK "
				 "is %llu bytes; raise it with ulimit -l)",
				 (unsigned long long)len, strerror(-r),
				 (unsigned long long)rl.rlim_cur);
		else
			snprintf(c->err, sizeof(c->err),
				 "ibv_reg_mr of %llu bytes for %s: %s",
				 (unsigned long long)len,
				 rc->passive ? "remote writes" : "local reads",
				 strerror(-r));
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
		return rd_send(c, &v, 1, 0);
	}
	r = rd_recv(c, &v, 1);
	if (r)
		return r;
	if (get_be(msg + 8, 8) != len)
		return fail(rc, -EPROTO, "region %u: %llu bytes here, %llu at "
			    "the peer",
			    index, (unsigned long long)len,
			    (unsigned long long)get_be(msg + 8, 8));
	g->raddr = get_be(msg, 8);
	g->rkey = (uint32_t)get_be(msg + 16, 4);
	return 0;
}

static void rd_shutdown(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	uint64_t one = 1;
	ssize_t w;

	if (!rc)
		return;
	__atomic_store_n(&rc->down, 1, __ATOMIC_RELEASE);
	w = write(rc->wake_fd, &one, sizeof(one));
	(void)w; /* a full counter is already a wake-up */
	/* flushes what is posted, and tells the peer */
	rdma_disconnect(rc->id);
}

static void ring_free(struct ring *g)
{
	if (g->mr)
		ibv_dereg_mr(g->mr);
	free(g->mem);
}

static void conn_free(struct rd_conn *rc)
{
	if (rc->id && rc->qp)
		rdma_destroy_qp(rc->id);
	if (rc->cq)
		ibv_destroy_cq(rc->cq);
	if (rc->cch)
		ibv_destroy_comp_channel(rc->cch);
	ring_free(&rc->rx);
	ring_free(&rc->tx);
	for (unsigned i = 0; i < rc->nregions; i++)
		mr_put(rc->regions[i].mr);
	dev_put(rc->dev);
	if (rc->id)
		rdma_destroy_id(rc->id);
	if (rc->ech)
		rdma_destroy_event_channel(rc->ech);
	if (rc->wake_fd >= 0)
		close(rc->wake_fd);
	free(rc);
}

static void rd_close(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;

	/* a last message (the receiver's FIN) must leave before the QP
	 * is torn down, or the peer never sees it */
	if (rc->connected && !rc->failed && !is_down(rc)) {
		if (!rc->timeout_ms || rc->timeout_ms > 5000)
			rc->timeout_ms = 5000;
		rd_flush(c);
	}
	if (rc->connected)
		rdma_disconnect(rc->id);
	conn_free(rc);
}

static int ring_alloc(struct rd_conn *rc, struct ring *g)
{
	size_t len = (size_t)RING_BUFS * BUF_SIZE;
	int r;

	r = -posix_memalign((void **)&g->mem, 4096, len);
	if (r)
		return r;
	g->mr = ibv_reg_mr(rc->dev->pd, g->mem, len, IBV_ACCESS_LOCAL_WRITE);
	return err_ptr(g->mr);
}

static struct rd_conn *conn_new(void)
{
	struct rd_conn *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->base.ops = &mfd__rdma_ops;
	rc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc->ech = rdma_create_event_channel();
	if (rc->wake_fd < 0 || err_ptr(rc->ech) ||
	    set_nonblock(rc->ech->fd)) {
		conn_free(rc);
		return NULL;
	}
	rc->credits = RING_BUFS;
	return rc;
}

/* PD, CQ, QP and the stream's rings for rc->id, receives posted. */
static int conn_setup(struct rd_conn *rc, char *err, size_t errlen)
{
	struct ibv_context *verbs = rc->id->verbs;
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	struct ibv_qp_init_attr qa = { 0 };
	const char *what;
	int r;

	what = "ibv_query_device";
	r = err_pos(ibv_query_device(verbs, &da));
	if (!r) {
		what = "ibv_query_port";
		r = err_pos(ibv_query_port(verbs, rc->id->port_num, &pa));
	}
	if (r)
		goto out;
	rc->max_msg = pa.max_msg_sz ? pa.max_msg_sz : 1u << 30;
	rc->sq_depth = (unsigned)da.max_qp_wr;
	if (rc->sq_depth > SQ_DEPTH)
		rc->sq_depth = SQ_DEPTH;
	if ((unsigned)da.max_qp_wr < RING_BUFS + 1 ||
	    (unsigned)da.max_cqe < rc->sq_depth + RING_BUFS) {
		snprintf(err, errlen, "device %s too small: max_qp_wr %d, "
			 "max_cqe %d",
			 ibv_get_device_name(verbs->device), da.max_qp_wr,
			 da.max_cqe);
		return -ENOSPC;
	}
	what = "ibv_alloc_pd";
	rc->dev = dev_get(verbs);
	r = rc->dev ? 0 : (errno ? -errno : -ENOMEM);
	if (r)
		goto out;
	what = "ibv_create_comp_channel";
	rc->cch = ibv_create_comp_channel(verbs);
	r = err_ptr(rc->cch);
	if (!r)
		r = set_nonblock(rc->cch->fd);
	if (r)
		goto out;
	what = "ibv_create_cq";
	rc->cq = ibv_create_cq(verbs, (int)(rc->sq_depth + RING_BUFS), NULL,
			       rc->cch, 0);
	r = err_ptr(rc->cq);
	if (r)
		goto out;
	what = "registering the stream buffers";
	r = ring_alloc(rc, &rc->rx);
	if (!r)
		r = ring_alloc(rc, &rc->tx);
	if (r)
		goto out;
	qa.send_cq = rc->cq;
	qa.recv_cq = rc->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = rc->sq_depth;
	qa.cap.max_recv_wr = RING_BUFS;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	qa.cap.max_inline_data = INLINE_WANT;
	what = "rdma_create_qp";
	r = err_neg(rdma_create_qp(rc->id, rc->dev->pd, &qa));
	if (r) {
		/* some devices have no inline data at all */
		qa.cap.max_inline_data = 0;
		r = err_neg(rdma_create_qp(rc->id, rc->dev->pd, &qa));
	}
	if (r)
		goto out;
	rc->qp = rc->id->qp;
	rc->max_inline = qa.cap.max_inline_data;
	for (unsigned i = 0; i < RING_BUFS && !r; i++)
		r = post_recv(rc, i);
	if (r) {
		snprintf(err, errlen, "%s", rc->base.err);
		return r;
	}
	return 0;
out:
	snprintf(err, errlen, "%s: %s", what, strerror(-r));
	return r;
}

static void conn_param(struct rdma_conn_param *p)
{
	memset(p, 0, sizeof(*p));
	/* only WRITEs and SENDs: no RDMA READ resources needed */
	p->retry_count = 7;
	p->rnr_retry_count = 7;
}

static int resolve(const struct mfd_uri *u, bool passive,
		   struct sockaddr_storage *ss, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 },
			*res;
	int r = getaddrinfo(u->host, u->port, &hints, &res);

	if (r) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u->host,
			 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int rd_connect(const struct mfd_uri *u, unsigned timeout_ms,
		      struct mfd_conn **out, char *err, size_t errlen)
{
	int64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;
	int step = timeout_ms ? (int)timeout_ms : (int)CONNECT_TIMEOUT_MS;
	struct rdma_conn_param param;
	struct sockaddr_storage ss;
	struct rd_conn *rc;
	char why[160];
	int r;

	r = resolve(u, false, &ss, err, errlen);
	if (r)
		return r;
	rc = conn_new();
	if (!rc) {
		snprintf(err, errlen, "rdma_create_event_channel: %s",
			 strerror(errno));
		return errno ? -errno : -ENOMEM;
	}
	r = err_neg(rdma_create_id(rc->ech, &rc->id, NULL, RDMA_PS_TCP));
	if (r) {
		snprintf(why, sizeof(why), "rdma_create_id: %s",
			 strerror(-r));
		goto fail;
	}
	r = err_neg(rdma_resolve_addr(rc->id, NULL, (struct sockaddr *)&ss,
				      step));
	if (r) {
		snprintf(why, sizeof(why), "rdma_resolve_addr: %s",
			 strerror(-r));
		goto fail;
	}
	r = cm_expect(rc, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, why,
		      sizeof(why));
	if (!r)
		r = err_neg(rdma_resolve_route(rc->id, deadline
				? (left_ms(deadline) > 0 ? left_ms(deadline) : 1)
				: step));
	if (!r)
		r = cm_expect(rc, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, why,
			      sizeof(why));
	if (!r)
		r = conn_setup(rc, why, sizeof(why));
	if (r)
		goto fail;
	conn_param(&param);
	r = err_neg(rdma_connect(rc->id, &param));
	if (r) {
		snprintf(why, sizeof(why), "rdma_connect: %s", strerror(-r));
		goto fail;
	}
	r = cm_expect(rc, RDMA_CM_EVENT_ESTABLISHED, deadline, why,
		      sizeof(why));
	if (r)
		goto fail;
	rc->connected = true;
	*out = &rc->base;
	return 0;
fail:
	snprintf(err, errlen, "cannot connect to %s port %s: %s", u->host,
		 u->port, why);
	conn_free(rc);
	return r;
}

static void rd_listener_wake(struct mfd_listener *ml)
{
	uint64_t one = 1;
	ssize_t w = write(((struct rd_listener *)ml)->wake_fd, &one,
			  sizeof(one));

	(void)w; /* a full counter means it is already woken */
}

static void rd_listener_close(struct mfd_listener *ml)
{
	struct rd_listener *l = (struct rd_listener *)ml;

	if (l->id)
		rdma_destroy_id(l->id);
	if (l->ech)
		rdma_destroy_event_channel(l->ech);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l);
}

static int rd_listen(const struct mfd_uri *u, struct mfd_listener **out,
		     char *err, size_t errlen)
{
	struct rd_listener *l = calloc(1, sizeof(*l));
	struct sockaddr_storage ss;
	struct sockaddr *sa;
	char host[NI_MAXHOST];
	int r;

	if (!l)
		return -ENOMEM;
	l->base.ops = &mfd__rdma_ops;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = resolve(u, true, &ss, err, errlen);
	if (r)
		goto fail;
	l->ech = rdma_create_event_channel();
	r = err_ptr(l->ech);
	if (!r)
		r = set_nonblock(l->ech->fd);
	if (!r)
		r = err_neg(rdma_create_id(l->ech, &l->id, NULL, RDMA_PS_TCP));
	if (!r)
		r = err_neg(rdma_bind_addr(l->id, (struct sockaddr *)&ss));
	if (!r)
		r = err_neg(rdma_listen(l->id, 128));
	if (r) {
		snprintf(err, errlen, "cannot listen on %s port %s: %s",
			 u->host, u->port, strerror(-r));
		goto fail;
	}
	sa = rdma_get_local_addr(l->id);
	if (getnameinfo(sa, sa->sa_family == AF_INET6
				    ? sizeof(struct sockaddr_in6)
				    : sizeof(struct sockaddr_in),
			host, sizeof(host), NULL, 0, NI_NUMERICHOST))
		snprintf(host, sizeof(host), "%s", u->host);
	snprintf(l->base.uri, sizeof(l->base.uri),
		 sa->sa_family == AF_INET6 ? "rdma:[%s]:%u" : "rdma:%s:%u",
		 host, ntohs(rdma_get_src_port(l->id)));
	*out = &l->base;
	return 0;
fail:
	rd_listener_close(&l->base);
	return r;
}

static int rd_accept(struct mfd_listener *ml, unsigned timeout_ms,
		     struct mfd_conn **out, char *err, size_t errlen)
{
	struct rd_listener *l = (struct rd_listener *)ml;
	int64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	struct rd_conn *rc;
	char why[160];
	int r;

	for (;;) {
		r = cm_wait(l->ech, l->wake_fd, deadline, &ev);
		if (r == -ETIMEDOUT)
			snprintf(err, errlen, "no connection within %u ms",
				 timeout_ms);
		else if (r == -ECANCELED)
			snprintf(err, errlen, "cancelled");
		else if (r)
			snprintf(err, errlen, "rdma_get_cm_event: %s",
				 strerror(-r));
		if (r)
			return r;
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
			break;
		/* events of ids that left before migrating: not ours */
		rdma_ack_cm_event(ev);
	}
	id = ev->id;
	rdma_ack_cm_event(ev);
	rc = conn_new();
	if (!rc) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc->passive = true;
	r = err_neg(rdma_migrate_id(id, rc->ech));
	if (r) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		snprintf(why, sizeof(why), "rdma_migrate_id: %s",
			 strerror(-r));
		goto fail;
	}
	rc->id = id;
	r = conn_setup(rc, why, sizeof(why));
	if (r) {
		rdma_reject(id, NULL, 0);
		goto fail;
	}
	conn_param(&param);
	r = err_neg(rdma_accept(id, &param));
	if (r) {
		snprintf(why, sizeof(why), "rdma_accept: %s", strerror(-r));
		goto fail;
	}
	r = cm_expect(rc, RDMA_CM_EVENT_ESTABLISHED, deadline, why,
		      sizeof(why));
	if (r)
		goto fail;
	rc->connected = true;
	*out = &rc->base;
	return 0;
fail:
	snprintf(err, errlen, "accepting a connection: %s", why);
	conn_free(rc);
	return r;
}

const struct mfd_transport_ops mfd__rdma_ops = {
	.name = "rdma",
	.one_sided = true,
	.connect = rd_connect,
	.listen = rd_listen,
	.accept = rd_accept,
	.listener_wake = rd_listener_wake,
	.listener_close = rd_listener_close,
	.set_timeout = rd_set_timeout,
	.enable_zerocopy = rd_enable_zerocopy,
	.register_region = rd_register_region,
	.send = rd_send,
	.recv = rd_recv,
	.flush = rd_flush,
	.shutdown = rd_shutdown,
	.close = rd_close,
};
