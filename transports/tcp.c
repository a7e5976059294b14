/* SPDX-License-Identifier: MIT */
/*
 * tcp.c - the tcp: and unix: transports. Both are stream sockets and share
 * every op but address handling. A list goes out in one sendmsg() where
 * the kernel takes it whole, and comes in with MSG_WAITALL; short
 * transfers, EINTR and lists longer than IOV_MAX are continued in place.
 *
 * Zero-copy (tcp only): pages go with MSG_ZEROCOPY, completions are reaped
 * from the socket's error queue after every send and counted, and flush()
 * waits for the rest. ENOBUFS (optmem or locked-memory limit) is answered
 * by a flush and one retry, then by a copying send for that list.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"
#include "fault.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/* Zero-copy sends in flight before the error queue is read again. */
#define ZC_REAP_BATCH 8

struct sock_conn {
	struct mfd_conn base;
	int fd;
	unsigned timeout_ms;
	bool zerocopy;
	/* MSG_ZEROCOPY sends are numbered from 0 by the kernel; those below
	 * zc_done have completed. Only the channel thread touches these. */
	uint32_t zc_next;
	uint32_t zc_done;
	struct iovec scratch[IOV_MAX]; /* the rest of a list after a short
					  transfer */
};

struct sock_listener {
	struct mfd_listener base;
	int fd;
	int wake_fd;
	char unlink_path[108]; /* unix: removed on close */
};

static int fail(struct mfd_conn *c, int e, const char *what)
{
	snprintf(c->err, sizeof(c->err), "%s: %s", what, strerror(e));
	return -e;
}

static struct sock_conn *conn_new(const struct mfd_transport_ops *ops, int fd)
{
	struct sock_conn *sc = calloc(1, sizeof(*sc));

	if (!sc)
		return NULL;
	sc->base.ops = ops;
	sc->fd = fd;
	if (ops == &mfd__tcp_ops) {
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return sc;
}

static int sock_set_timeout(struct mfd_conn *c, unsigned timeout_ms)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };

	sc->timeout_ms = timeout_ms;
	if (setsockopt(sc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(sc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return fail(c, errno, "setsockopt(SO_RCVTIMEO)");
	return 0;
}

/* The next window of at most IOV_MAX entries starting `skip` bytes into
 * iov[i]; copies into scratch only when it must adjust the first one. */
static struct iovec *window(struct sock_conn *sc, const struct iovec *iov,
			    int n, int i, size_t skip, int *cnt)
{
	*cnt = n - i < IOV_MAX ? n - i : IOV_MAX;
	if (!skip)
		return (struct iovec *)&iov[i];
	memcpy(sc->scratch, &iov[i], *cnt * sizeof(*iov));
	sc->scratch[0].iov_base = (char *)sc->scratch[0].iov_base + skip;
	sc->scratch[0].iov_len -= skip;
	return sc->scratch;
}

/* Advance (i, skip) by `done` bytes over iov. */
static void advance(const struct iovec *iov, int n, int *i, size_t *skip,
		    size_t done)
{
	while (*i < n && done) {
		size_t left = iov[*i].iov_len - *skip;

		if (done < left) {
			*skip += done;
			return;
		}
		done -= left;
		*skip = 0;
		(*i)++;
	}
	while (*i < n && iov[*i].iov_len == 0)
		(*i)++;
}

/* Reap zero-copy completions that are ready; never blocks. */
static int zc_reap(struct sock_conn *sc)
{
	for (;;) {
		char control[128];
		struct msghdr mh = { .msg_control = control,
				     .msg_controllen = sizeof(control) };
		struct cmsghdr *cm;

		if (recvmsg(sc->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return fail(&sc->base, errno, "recvmsg(MSG_ERRQUEUE)");
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			struct sock_extended_err *ee;
			uint32_t n;

			if (!((cm->cmsg_level == SOL_IP &&
			       cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == SOL_IPV6 &&
			       cm->cmsg_type == IPV6_RECVERR)))
				continue;
			ee = (struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			/* [ee_info, ee_data] completed, inclusive */
			n = ee->ee_data - ee->ee_info + 1;
			sc->base.zc_sends += n;
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				sc->base.zc_copied += n;
			if (ee->ee_data + 1 - sc->zc_done < 0x80000000u)
				sc->zc_done = ee->ee_data + 1;
		}
	}
}

static int sock_flush(struct mfd_conn *c)
{
	struct sock_conn *sc = (struct sock_conn *)c;

	while (sc->zerocopy && sc->zc_done != sc->zc_next) {
		struct pollfd p = { .fd = sc->fd, .events = 0 };
		int timeout = sc->timeout_ms ? (int)sc->timeout_ms : -1;
		int r = poll(&p, 1, timeout);

		if (r < 0 && errno != EINTR)
			return fail(c, errno, "poll(zero-copy completions)");
		if (r == 0) {
			snprintf(c->err, sizeof(c->err),
				 "%u zero-copy sends not completed after %u ms",
				 sc->zc_next - sc->zc_done, sc->timeout_ms);
			return -ETIMEDOUT;
		}
		if (p.revents & (POLLHUP | POLLNVAL) && !(p.revents & POLLERR))
			return fail(c, EPIPE, "zero-copy flush");
		r = zc_reap(sc);
		if (r)
			return r;
	}
	return 0;
}

static ssize_t zc_sendmsg(struct sock_conn *sc, struct msghdr *mh)
{
	ssize_t r;

	if (mfd__fault_take(&mfd__fault_zc_enobufs)) {
		errno = ENOBUFS;
		return -1;
	}
	r = sendmsg(sc->fd, mh, MSG_NOSIGNAL | MSG_ZEROCOPY);
	if (r >= 0)
		sc->zc_next++;
	return r;
}

static int sock_send(struct mfd_conn *c, const struct iovec *iov, int n,
		     unsigned flags)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	bool zc = sc->zerocopy && (flags & MFD_SEND_ZEROCOPY);
	bool retried = false;
	size_t skip = 0;
	int i = 0;

	advance(iov, n, &i, &skip, 0);
	while (i < n) {
		struct msghdr mh = { 0 };
		ssize_t r;
		int cnt;

		mh.msg_iov = window(sc, iov, n, i, skip, &cnt);
		mh.msg_iovlen = cnt;
		r = zc ? zc_sendmsg(sc, &mh) : sendmsg(sc->fd, &mh, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS && zc) {
				/* Completions hold optmem and pinned pages:
				 * let them drain, then try once more, then
				 * copy this list rather than fail. */
				int e = sock_flush(c);

				if (e)
					return e;
				if (retried) {
					zc = false;
					c->zc_fallbacks++;
				}
				retried = true;
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				snprintf(c->err, sizeof(c->err),
					 "send stalled for %u ms",
					 sc->timeout_ms);
				return -ETIMEDOUT;
			}
			return fail(c, errno, "send");
		}
		advance(iov, n, &i, &skip, (size_t)r);
	}
	/* reap as completions come, but not a syscall for every send */
	if (sc->zerocopy && sc->zc_next - sc->zc_done >= ZC_REAP_BATCH)
		return zc_reap(sc);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int sock_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	size_t skip = 0, got = 0;
	uint64_t t0 = 0;
	int i = 0;

	advance(iov, n, &i, &skip, 0);
	while (i < n) {
		struct msghdr mh = { 0 };
		ssize_t r;
		int cnt;

		mh.msg_iov = window(sc, iov, n, i, skip, &cnt);
		mh.msg_iovlen = cnt;
		r = recvmsg(sc->fd, &mh, MSG_WAITALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				snprintf(c->err, sizeof(c->err),
					 "no data for %u ms (%zu bytes of "
					 "this read done)",
					 sc->timeout_ms, got);
				return -ETIMEDOUT;
			}
			return fail(c, errno, "recv");
		}
		if (r == 0) {
			snprintf(c->err, sizeof(c->err),
				 "peer closed the connection%s (%zu bytes of "
				 "this read done)",
				 got ? " in the middle of a packet" : "", got);
			return -EPIPE;
		}
		got += (size_t)r;
		advance(iov, n, &i, &skip, (size_t)r);
		/* each recvmsg() is bounded by the timeout, but a peer that
		 * trickles a byte at a time must not stretch the whole read */
		if (i < n && sc->timeout_ms && !t0)
			t0 = now_ms();
		else if (i < n && sc->timeout_ms &&
			 now_ms() - t0 > sc->timeout_ms) {
			snprintf(c->err, sizeof(c->err),
				 "only %zu bytes in %u ms: the peer trickles",
				 got, sc->timeout_ms);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static int tcp_enable_zerocopy(struct mfd_conn *c)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	int one = 1;

	if (setsockopt(sc->fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
		return fail(c, errno, "setsockopt(SO_ZEROCOPY)");
	sc->zerocopy = true;
	return 0;
}

static void sock_shutdown(struct mfd_conn *c)
{
	shutdown(((struct sock_conn *)c)->fd, SHUT_RDWR);
}

static void sock_close(struct mfd_conn *c)
{
	struct sock_conn *sc = (struct sock_conn *)c;

	close(sc->fd);
	free(sc);
}

/* Wait for a non-blocking connect() to finish. */
static int connect_wait(int fd, unsigned timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int r, e = 0;
	socklen_t len = sizeof(e);

	do
		r = poll(&p, 1, timeout_ms ? (int)timeout_ms : -1);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
		return -errno;
	return -e;
}

static int connect_addr(int family, const struct sockaddr *sa,
			socklen_t salen, unsigned timeout_ms)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (fd < 0)
		return -errno;
	r = connect(fd, sa, salen) ? -errno : 0;
	if (r == -EINPROGRESS)
		r = connect_wait(fd, timeout_ms);
	if (r == 0 && fcntl(fd, F_SETFL, 0))
		r = -errno;
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

static int conn_out(const struct mfd_transport_ops *ops, int fd,
		    struct mfd_conn **out)
{
	struct sock_conn *sc = conn_new(ops, fd);

	if (!sc) {
		close(fd);
		return -ENOMEM;
	}
	*out = &sc->base;
	return 0;
}

static int tcp_connect(const struct mfd_uri *u, unsigned timeout_ms,
		       struct mfd_conn **out, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int r, fd = -EHOSTUNREACH;

	r = getaddrinfo(u->host, u->port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u->host,
			 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen,
				  timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s port %s: %s",
			 u->host, u->port, strerror(-fd));
		return fd;
	}
	return conn_out(&mfd__tcp_ops, fd, out);
}

static int unix_connect(const struct mfd_uri *u, unsigned timeout_ms,
			struct mfd_conn **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	memcpy(sa.sun_path, u->path, strlen(u->path) + 1);
	fd = connect_addr(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa),
			  timeout_ms);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to unix socket '%s': %s",
			 u->path, strerror(-fd));
		return fd;
	}
	return conn_out(&mfd__unix_ops, fd, out);
}

static int listener_new(const struct mfd_transport_ops *ops, int fd,
			struct sock_listener **out)
{
	struct sock_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0 || listen(fd, 128)) {
		int e = -errno;

		if (l->wake_fd >= 0)
			close(l->wake_fd);
		free(l);
		return e;
	}
	l->base.ops = ops;
	l->fd = fd;
	*out = l;
	return 0;
}

static int tcp_listen(const struct mfd_uri *u, struct mfd_listener **out,
		      char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct sock_listener *l;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int fd, r, one = 1;

	r = getaddrinfo(u->host, u->port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u->host,
			 gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, res->ai_addr, res->ai_addrlen)) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on %s port %s: %s",
			 u->host, u->port, strerror(errno));
		freeaddrinfo(res);
		if (fd >= 0)
			close(fd);
		return r;
	}
	freeaddrinfo(res);
	r = listener_new(&mfd__tcp_ops, fd, &l);
	if (r) {
		snprintf(err, errlen, "listen: %s", strerror(-r));
		close(fd);
		return r;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sslen);
	getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), port,
		    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(l->base.uri, sizeof(l->base.uri),
		 ss.ss_family == AF_INET6 ? "tcp:[%s]:%s" : "tcp:%s:%s", host,
		 port);
	*out = &l->base;
	return 0;
}

static int unix_listen(const struct mfd_uri *u, struct mfd_listener **out,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sock_listener *l;
	struct stat st;
	int fd, r;

	/* A socket file left by a dead receiver would make bind() fail;
	 * anything else at that path is not ours to remove. */
	if (!lstat(u->path, &st) && S_ISSOCK(st.st_mode))
		unlink(u->path);
	memcpy(sa.sun_path, u->path, strlen(u->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on unix socket '%s': %s",
			 u->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	r = listener_new(&mfd__unix_ops, fd, &l);
	if (r) {
		snprintf(err, errlen, "listen: %s", strerror(-r));
		close(fd);
		unlink(u->path);
		return r;
	}
	memcpy(l->unlink_path, u->path, strlen(u->path) + 1);
	snprintf(l->base.uri, sizeof(l->base.uri), "unix:%s", u->path);
	*out = &l->base;
	return 0;
}

static int sock_accept(struct mfd_listener *ml, unsigned timeout_ms,
		       struct mfd_conn **out, char *err, size_t errlen)
{
	struct sock_listener *l = (struct sock_listener *)ml;
	struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN },
			       { .fd = l->wake_fd, .events = POLLIN } };
	int r, fd;

	do
		r = poll(p, 2, timeout_ms ? (int)timeout_ms : -1);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(err, errlen, "poll: %s", strerror(errno));
		return -errno;
	}
	if (r == 0) {
		snprintf(err, errlen, "no connection within %u ms",
			 timeout_ms);
		return -ETIMEDOUT;
	}
	if (p[1].revents) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "accept: %s", strerror(errno));
		return -errno;
	}
	return conn_out(ml->ops, fd, out);
}

static void sock_listener_wake(struct mfd_listener *ml)
{
	uint64_t one = 1;
	ssize_t r = write(((struct sock_listener *)ml)->wake_fd, &one,
			  sizeof(one));

	(void)r; /* a full counter means it is already woken */
}

static void sock_listener_close(struct mfd_listener *ml)
{
	struct sock_listener *l = (struct sock_listener *)ml;

	close(l->fd);
	close(l->wake_fd);
	if (l->unlink_path[0])
		unlink(l->unlink_path);
	free(l);
}

const struct mfd_transport_ops mfd__tcp_ops = {
	.name = "tcp",
	.connect = tcp_connect,
	.listen = tcp_listen,
	.accept = sock_accept,
	.listener_wake = sock_listener_wake,
	.listener_close = sock_listener_close,
	.set_timeout = sock_set_timeout,
	.enable_zerocopy = tcp_enable_zerocopy,
	.send = sock_send,
	.recv = sock_recv,
	.flush = sock_flush,
	.shutdown = sock_shutdown,
	.close = sock_close,
};

const struct mfd_transport_ops mfd__unix_ops = {
	.name = "unix",
	.connect = unix_connect,
	.listen = unix_listen,
	.accept = sock_accept,
	.listener_wake = sock_listener_wake,
	.listener_close = sock_listener_close,
	.set_timeout = sock_set_timeout,
	.send = sock_send,
	.recv = sock_recv,
	.flush = sock_flush,
	.shutdown = sock_shutdown,
	.close = sock_close,
};
