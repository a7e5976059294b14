/* SPDX-License-Identifier: MIT */
/*
 * rdma-cm.c - connection setup and teardown of the rdma: transport with
 * rdma_cm: listen, accept, connect, and the QP, CQ and rings of each
 * connection.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rdma-int.h"

/* ENODEV from rdma_cm: this machine has no RDMA device at all. */
static const char *no_device_hint(int e)
{
	return e == ENODEV ? " (no RDMA device on this machine: rdma: needs "
			     "an RDMA NIC, or soft-RoCE: modprobe rdma_rxe; "
			     "rdma link add rxe0 type rxe netdev IFACE)"
			   : "";
}

/* How often a connect's wait looks whether its session stopped. */
#define STOP_LOOK_MS 50

/*
 * Wait for the next event on ech, until deadline (0: forever), until
 * wake_fd is written or until *stop is set (stop may be NULL: a connect
 * of a session that failed meanwhile gives up). The caller acks *ev.
 */
static int cm_wait(struct rdma_event_channel *ech, int wake_fd,
		   int64_t deadline, const bool *stop,
		   struct rdma_cm_event **ev)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = ech->fd, .events = POLLIN },
				       { .fd = wake_fd, .events = POLLIN } };
		int r = rdma_get_cm_event(ech, ev), ms;

		if (!r)
			return 0;
		r = err_neg(r);
		if (r != -EAGAIN)
			return r;
		if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		ms = left_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		if (stop && (ms < 0 || ms > STOP_LOOK_MS))
			ms = STOP_LOOK_MS;
		r = poll(p, wake_fd >= 0 ? 2 : 1, ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && p[1].revents)
			return -ECANCELED;
	}
}

/* Wait for `want` on the connection's own channel during setup. */
static int cm_expect(struct rd_conn *rc, enum rdma_cm_event_type want,
		     int64_t deadline, const bool *stop, char *err,
		     size_t errlen)
{
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;
	int status, r;

	r = cm_wait(rc->ech, -1, deadline, stop, &ev);
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

void mfd__rd_shutdown(struct mfd_conn *c)
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

static void conn_free(struct rd_conn *rc)
{
	if (rc->id && rc->qp)
		rdma_destroy_qp(rc->id);
	if (rc->cq)
		ibv_destroy_cq(rc->cq);
	if (rc->cch)
		ibv_destroy_comp_channel(rc->cch);
	mfd__rd_ring_free(&rc->rx);
	mfd__rd_ring_free(&rc->tx);
	mfd__rd_land_free(rc);
	mfd__rd_mr_put(rc->src_mr);
	for (unsigned i = 0; i < rc->nregions; i++) {
		mfd__rd_mr_put(rc->regions[i].mr);
		free(rc->regions[i].rs);
	}
	mfd__rd_dev_put(rc->dev);
	if (rc->id)
		rdma_destroy_id(rc->id);
	if (rc->ech)
		rdma_destroy_event_channel(rc->ech);
	if (rc->wake_fd >= 0)
		close(rc->wake_fd);
	pthread_mutex_destroy(&rc->cm_lock);
	free(rc);
}

void mfd__rd_close(struct mfd_conn *c)
{
	struct rd_conn *rc = (struct rd_conn *)c;

	/* a last message (the receiver's FIN) must leave before the QP
	 * is torn down, or the peer never sees it */
	if (rc->connected && !rc->failed && !is_down(rc)) {
		if (!rc->timeout_ms || rc->timeout_ms > 5000)
			rc->timeout_ms = 5000;
		mfd__rd_flush(c);
	}
	if (rc->connected)
		rdma_disconnect(rc->id);
	conn_free(rc);
}

const char *mfd__rd_cm_end(struct rd_conn *rc)
{
	struct rdma_cm_event *ev;
	const char *end;

	pthread_mutex_lock(&rc->cm_lock);
	while (!rc->cm_end && !rdma_get_cm_event(rc->ech, &ev)) {
		enum rdma_cm_event_type e = ev->event;

		rdma_ack_cm_event(ev);
		if (e == RDMA_CM_EVENT_DISCONNECTED ||
		    e == RDMA_CM_EVENT_DEVICE_REMOVAL ||
		    e == RDMA_CM_EVENT_TIMEWAIT_EXIT) {
			rc->cm_end = rdma_event_str(e);
			__atomic_store_n(&rc->connected, false,
					 __ATOMIC_RELEASE);
		}
	}
	end = rc->cm_end;
	pthread_mutex_unlock(&rc->cm_lock);
	return end;
}

static struct rd_conn *conn_new(void)
{
	struct rd_conn *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->base.ops = &mfd__rdma_ops;
	pthread_mutex_init(&rc->cm_lock, NULL);
	rc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc->ech = rdma_create_event_channel();
	if (rc->wake_fd < 0 || err_ptr(rc->ech) ||
	    set_nonblock(rc->ech->fd)) {
		conn_free(rc);
		return NULL;
	}
	rc->credits = RING_START;
	return rc;
}

/* PD (from the domains on devs), CQ, QP and the stream's rings for
 * rc->id, receives posted. */
static int conn_setup(struct rd_conn *rc, void **devs, char *err,
		      size_t errlen)
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
	rc->dev = mfd__rd_dev_get(devs, verbs);
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
	r = mfd__rd_ring_alloc(rc, &rc->rx, err, errlen);
	if (!r)
		r = mfd__rd_ring_alloc(rc, &rc->tx, err, errlen);
	if (r)
		return r;
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
	for (unsigned i = 0; i < RING_START && !r; i++)
		r = mfd__rd_post_recv(rc, i);
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

int mfd__rd_connect(const struct mfd_uri *u, unsigned timeout_ms,
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
		snprintf(err, errlen, "rdma_create_event_channel: %s%s",
			 strerror(errno), no_device_hint(errno));
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
	r = cm_expect(rc, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, u->stop,
		      why, sizeof(why));
	if (!r)
		r = err_neg(rdma_resolve_route(
			rc->id,
			deadline ? (left_ms(deadline) > 0 ? left_ms(deadline)
							  : 1)
				 : step));
	if (!r)
		r = cm_expect(rc, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline,
			      u->stop, why, sizeof(why));
	if (!r)
		r = conn_setup(rc,
			       u->session_state ? u->session_state
						: &rc->own_devs,
			       why, sizeof(why));
	if (r)
		goto fail;
	conn_param(&param);
	r = err_neg(rdma_connect(rc->id, &param));
	if (r) {
		snprintf(why, sizeof(why), "rdma_connect: %s", strerror(-r));
		goto fail;
	}
	r = cm_expect(rc, RDMA_CM_EVENT_ESTABLISHED, deadline, u->stop,
		      why, sizeof(why));
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

void mfd__rd_listener_wake(struct mfd_listener *ml)
{
	uint64_t one = 1;
	ssize_t w = write(((struct rd_listener *)ml)->wake_fd, &one,
			  sizeof(one));

	(void)w; /* a full counter means it is already woken */
}

void mfd__rd_listener_close(struct mfd_listener *ml)
{
	struct rd_listener *l = (struct rd_listener *)ml;

	mfd__rd_devs_release(&l->devs);
	if (l->id)
		rdma_destroy_id(l->id);
	if (l->ech)
		rdma_destroy_event_channel(l->ech);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l);
}

int mfd__rd_listen(const struct mfd_uri *u, struct mfd_listener **out,
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
		snprintf(err, errlen, "cannot listen on %s port %s: %s%s",
			 u->host, u->port, strerror(-r), no_device_hint(-r));
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
	mfd__rd_listener_close(&l->base);
	return r;
}

/* How long an accepted connection request may take to be established. */
#define ESTABLISH_MS 5000

int mfd__rd_accept(struct mfd_listener *ml, unsigned timeout_ms,
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
		r = cm_wait(l->ech, l->wake_fd, deadline, NULL, &ev);
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
	r = conn_setup(rc, &l->devs, why, sizeof(why));
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
	/* a connection that came is completed within a bound of its own,
	 * not the caller's wait, which may be a short slice (the receiver
	 * looks at its other handshakes in between) */
	if (deadline && deadline < now_ms() + ESTABLISH_MS)
		deadline = now_ms() + ESTABLISH_MS;
	r = cm_expect(rc, RDMA_CM_EVENT_ESTABLISHED, deadline, NULL, why,
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

