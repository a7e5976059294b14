/* SPDX-License-Identifier: MIT */
/*
 * tcp.c - the tcp: and unix: transports. Both are stream sockets and share
 * every op but address handling. A list goes out in one sendmsg() where
 * the kernel takes it whole, and comes in with MSG_WAITALL; short
 * transfers, EINTR and lists longer than IOV_MAX are continued in place.
 *
 * Timeouts: each send, recv and flush has one deadline on CLOCK_MONOTONIC,
 * timeout_ms after it started. The first syscall is a plain blocking one,
 * bounded by SO_SNDTIMEO/SO_RCVTIMEO, which the kernel counts over the
 * whole call; a continuation after a short transfer is MSG_DONTWAIT, and
 * the waits between them are poll()s on what is left of the deadline, so
 * that bytes trickling in or out never start the timeout again.
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
#include "sock-file.h"

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
	/* a duplicate of a descriptor the caller keeps: closing ours alone
	 * would not end the connection, so close() shuts it down first */
	bool handed_in;
	/* MSG_ZEROCOPY sends made, and how many of them have completed (the
	 * sum of the lengths of the ranges the kernel reported, which may
	 * come in any order). Only the channel thread touches these. */
	uint64_t zc_next;
	uint64_t zc_done;
	/* the rest of a list after a short transfer, one per direction: a
	 * postcopy urgent channel sends from one thread while another
	 * receives */
	struct iovec scratch_tx[IOV_MAX], scratch_rx[IOV_MAX];
	/* sender: regions whose bytes leave from their file
	 * (register_file); NULL when none do */
	struct sock_files *files;
};

struct sock_listener {
	struct mfd_listener base;
	int fd;
	int wake_fd;
	char unlink_path[108]; /* unix: removed on close, if still ours */
	dev_t dev;
	ino_t ino;
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

static int tcp_keepalive(struct mfd_conn *c, unsigned idle_ms)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	int on = 1, cnt = 3, idle = idle_ms < 1000 ? 1 : (int)(idle_ms / 1000);

	if (setsockopt(sc->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) ||
	    setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
		       sizeof(idle)) ||
	    setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle,
		       sizeof(idle)) ||
	    setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)))
		return fail(c, errno, "setsockopt(SO_KEEPALIVE)");
	return 0;
}

/* The next window of at most IOV_MAX entries starting `skip` bytes into
 * iov[i]; copies into scratch only when it must adjust the first one. */
static struct iovec *window(struct iovec *scratch, const struct iovec *iov,
			    int n, int i, size_t skip, int *cnt)
{
	*cnt = n - i < IOV_MAX ? n - i : IOV_MAX;
	if (!skip)
		return (struct iovec *)&iov[i];
	memcpy(scratch, &iov[i], *cnt * sizeof(*iov));
	scratch[0].iov_base = (char *)scratch[0].iov_base + skip;
	scratch[0].iov_len -= skip;
	return scratch;
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

static size_t iov_bytes(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
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
		/* nothing queued: a socket without an error queue (unix:)
		 * answers 0 bytes for ever */
		if (!mh.msg_controllen)
			return 0;
		if (mh.msg_flags & MSG_CTRUNC)
			return fail(&sc->base, EIO, "zero-copy completion "
				    "truncated");
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
			/* sends [ee_info, ee_data] completed, inclusive,
			 * numbered modulo 2^32; ranges are disjoint but may
			 * come out of order, so count them */
			n = ee->ee_data - ee->ee_info + 1;
			sc->base.zc_sends += n;
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				sc->base.zc_copied += n;
			sc->zc_done += n;
		}
	}
}

/*
 * Sleep until fd is ready for `events` (0: only errors and zero-copy
 * completions), at most until deadline (0: none). Returns the poll bits,
 * POLLERR only when zero-copy completions were reaped here; 0 when the
 * deadline passed; -errno with c->err set (a pending socket error fails
 * with its own text, named by `what`). A POLLERR that had neither
 * completions nor a socket error behind it cannot make this spin.
 */
static int sock_wait(struct sock_conn *sc, short events, int64_t deadline,
		     const char *what)
{
	for (;;) {
		struct pollfd p = { .fd = sc->fd, .events = events };
		int ms = mfd__tp_poll_ms(deadline), r, e;
		uint64_t done = sc->zc_done;
		socklen_t len = sizeof(e);

		if (ms == 0)
			return 0;
		r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(&sc->base, errno, "poll");
		if (r == 0)
			continue; /* mfd__tp_poll_ms() says whether time is up */
		if (!(p.revents & POLLERR))
			return p.revents;
		r = sc->zerocopy ? zc_reap(sc) : 0;
		if (r)
			return r;
		if (sc->zc_done != done)
			return p.revents;
		e = 0;
		if (getsockopt(sc->fd, SOL_SOCKET, SO_ERROR, &e, &len))
			e = errno;
		if (e)
			return fail(&sc->base, e, what);
		p.revents &= ~POLLERR;
		if (p.revents)
			return p.revents;
		/* an empty error queue and no error: not seen, but it
		 * must not turn into a busy loop */
		poll(NULL, 0, 1);
	}
}

/* Wait until every zero-copy send has completed, at most until deadline
 * (0: none). */
static int zc_wait(struct sock_conn *sc, int64_t deadline)
{
	struct mfd_conn *c = &sc->base;
	int r = sc->zerocopy ? zc_reap(sc) : 0;

	while (!r && sc->zerocopy && sc->zc_done != sc->zc_next) {
		r = sock_wait(sc, 0, deadline, "zero-copy flush");
		if (r < 0)
			return r;
		if (r == 0) {
			snprintf(c->err, sizeof(c->err),
				 "%llu zero-copy sends not completed after "
				 "%u ms",
				 (unsigned long long)(sc->zc_next -
						      sc->zc_done),
				 sc->timeout_ms);
			return -ETIMEDOUT;
		}
		if (sc->zc_done != sc->zc_next &&
		    (r & (POLLHUP | POLLNVAL)) && !(r & POLLERR))
			return fail(c, EPIPE, "zero-copy flush");
		r = 0;
	}
	return r;
}

/* One deadline for the whole flush. */
static int sock_flush(struct mfd_conn *c)
{
	struct sock_conn *sc = (struct sock_conn *)c;

	if (!sc->zerocopy || sc->zc_done == sc->zc_next)
		return 0;
	return zc_wait(sc, mfd__tp_deadline_in(sc->timeout_ms));
}

static ssize_t zc_sendmsg(struct sock_conn *sc, struct msghdr *mh, int flags)
{
	ssize_t r;

	if (mfd__fault_take(&mfd__fault_zc_enobufs)) {
		errno = ENOBUFS;
		return -1;
	}
	r = sendmsg(sc->fd, mh, flags | MSG_ZEROCOPY);
	if (r >= 0)
		sc->zc_next++;
	return r;
}

/*
 * The timeout bounds the whole call, not each syscall. The first
 * sendmsg() blocks, bounded by SO_SNDTIMEO, and usually takes the whole
 * list; after a short one the rest goes with MSG_DONTWAIT, poll()ing on
 * what is left of the deadline in between. Unix sockets restart their
 * send timeout for every buffer they wait for, so a reader that takes a
 * little now and then would stretch a blocking call: they go
 * MSG_DONTWAIT from the start.
 */
static int sock_send(struct mfd_conn *c, const struct iovec *iov, int n,
		     unsigned flags);

/* The len bytes left of a packet whose pages could not be read, as
 * zeros: 0, or -errno when the socket did not take them. */
static int pad_zeros(struct mfd_conn *c, size_t len)
{
	static const uint8_t zeros[65536];
	int r = 0;

	while (!r && len) {
		struct iovec z = { .iov_base = (void *)zeros,
				   .iov_len = len < sizeof(zeros) ? len
								  : sizeof(zeros) };

		r = sock_send(c, &z, 1, 0);
		len -= z.iov_len;
	}
	return r;
}

static int sock_send(struct mfd_conn *c, const struct iovec *iov, int n,
		     unsigned flags)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	bool zc = sc->zerocopy && (flags & MFD_SEND_ZEROCOPY);
	bool retried = false;
	int64_t deadline = mfd__tp_deadline_in(sc->timeout_ms);
	int wflags = MSG_NOSIGNAL;
	size_t skip = 0, done = 0;
	int i = 0;

	if (deadline && c->ops == &mfd__unix_ops)
		wflags |= MSG_DONTWAIT;
	advance(iov, n, &i, &skip, 0);
	while (i < n) {
		const struct sock_file *f = NULL;
		struct msghdr mh = { 0 };
		ssize_t r;
		int cnt, more = 0;

		mh.msg_iov = window(sc->scratch_tx, iov, n, i, skip, &cnt);
		if (sc->files) {
			/* a file's entry goes alone by sendfile(); the
			 * window stops before the next one */
			f = mfd__sock_file_find(sc->files, mh.msg_iov[0].iov_base,
						mh.msg_iov[0].iov_len);
			for (int k = 1; !f && k < cnt; k++)
				if (mfd__sock_file_find(sc->files,
							mh.msg_iov[k].iov_base,
							mh.msg_iov[k].iov_len)) {
					cnt = k;
					more = MSG_MORE;
				}
		}
		mh.msg_iovlen = cnt;
		if (f) {
			r = mfd__sock_file_send(sc->fd, f, mh.msg_iov[0].iov_base,
						mh.msg_iov[0].iov_len);
			if (r == -ENODATA) {
				unsigned long long at = mfd__sock_file_off(
					f, mh.msg_iov[0].iov_base);

				/* the packet goes whole, so that the ABORT
				 * behind it can say why */
				r = pad_zeros(c, iov_bytes(iov, n) - done);
				snprintf(c->err, sizeof(c->err),
					 "sendfile: the region's file ends "
					 "before byte %llu of it: it shrank", at);
				return r ? -EIO : -ENODATA;
			}
			if (r < 0) {
				errno = (int)-r;
				r = -1;
			}
		} else {
			r = zc ? zc_sendmsg(sc, &mh, wflags | more)
			       : sendmsg(sc->fd, &mh, wflags | more);
		}
		if (deadline)
			wflags |= MSG_DONTWAIT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS && zc && !f) {
				/* Completions hold optmem and pinned pages:
				 * let them drain, then try once more, then
				 * copy this list rather than fail. */
				int e = zc_wait(sc, deadline);

				if (e == -ETIMEDOUT)
					break;
				if (e)
					return e;
				if (retried) {
					zc = false;
					c->zc_fallbacks++;
				}
				retried = true;
				continue;
			}
			/* also without a deadline: a layer above (tls)
			 * may have made the socket non-blocking */
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int w = sock_wait(sc, POLLOUT, deadline, "send");

				if (w < 0)
					return w;
				if (w == 0)
					break;
				continue;
			}
			return fail(c, errno, f ? "sendfile" : "send");
		}
		done += (size_t)r;
		advance(iov, n, &i, &skip, (size_t)r);
	}
	if (i < n) {
		mfd__tp_deadline_text(c->err, sizeof(c->err), true,
				      sc->timeout_ms, done, iov_bytes(iov, n),
				      "went out", NULL);
		return -ETIMEDOUT;
	}
	/* reap as completions come, but not a syscall for every send */
	if (sc->zerocopy && sc->zc_next - sc->zc_done >= ZC_REAP_BATCH)
		return zc_reap(sc);
	return 0;
}

/* The same for reading: one blocking recvmsg(MSG_WAITALL), bounded by
 * SO_RCVTIMEO, then MSG_DONTWAIT and poll() until the deadline. */
static int sock_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	int64_t deadline = mfd__tp_deadline_in(sc->timeout_ms);
	int rflags = MSG_WAITALL;
	size_t skip = 0, got = 0;
	int i = 0;

	advance(iov, n, &i, &skip, 0);
	while (i < n) {
		struct msghdr mh = { 0 };
		ssize_t r;
		int cnt;

		mh.msg_iov = window(sc->scratch_rx, iov, n, i, skip, &cnt);
		mh.msg_iovlen = cnt;
		r = recvmsg(sc->fd, &mh, rflags);
		if (deadline)
			rflags = MSG_DONTWAIT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int w = sock_wait(sc, POLLIN, deadline, "recv");

				if (w < 0)
					return w;
				if (w == 0)
					break;
				continue;
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
	}
	if (i < n) {
		mfd__tp_deadline_text(c->err, sizeof(c->err), false,
				      sc->timeout_ms, got, iov_bytes(iov, n),
				      "arrived", NULL);
		return -ETIMEDOUT;
	}
	return 0;
}

/*
 * A sender's region file: its entries go by sendfile(), which has no
 * MSG_DONTWAIT, so the socket becomes non-blocking, which send and recv
 * already handle (they poll() on EAGAIN within their deadline).
 */
static int sock_register_file(struct mfd_conn *c, void *mem, uint64_t len,
			      int fd, uint64_t off)
{
	struct sock_conn *sc = (struct sock_conn *)c;
	int fl, r;

	/* a descriptor handed in shares its flags with the caller's */
	if (sc->handed_in)
		return -ENOTSUP;
	if (!sc->files) {
		sc->files = calloc(1, sizeof(*sc->files));
		if (!sc->files)
			return fail(c, ENOMEM, "register_file");
	}
	fl = fcntl(sc->fd, F_GETFL);
	if (fl < 0 || fcntl(sc->fd, F_SETFL, fl | O_NONBLOCK))
		return fail(c, errno, "fcntl(O_NONBLOCK)");
	r = mfd__sock_files_add(sc->files, mem, len, fd, off);
	return r ? fail(c, -r, "register_file") : 0;
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

static int sock_fd(struct mfd_conn *c)
{
	return ((struct sock_conn *)c)->fd;
}

static void sock_shutdown(struct mfd_conn *c)
{
	shutdown(((struct sock_conn *)c)->fd, SHUT_RDWR);
}

static void sock_shutdown_read(struct mfd_conn *c)
{
	shutdown(((struct sock_conn *)c)->fd, SHUT_RD);
}

static void sock_close(struct mfd_conn *c)
{
	struct sock_conn *sc = (struct sock_conn *)c;

	if (sc->handed_in)
		shutdown(sc->fd, SHUT_RDWR);
	close(sc->fd);
	free(sc->files);
	free(sc);
}

/* Wait for a non-blocking connect() to finish, until deadline (0: none)
 * or until *stop is set (a cancel, or another channel failed). */
static int connect_wait(int fd, int64_t deadline, const bool *stop)
{
	int r = mfd__tp_poll_until(fd, POLLOUT, deadline, stop), e = 0;
	socklen_t len = sizeof(e);

	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
		return -errno;
	return -e;
}

static int connect_addr(int family, const struct sockaddr *sa,
			socklen_t salen, int64_t deadline, const bool *stop)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (fd < 0)
		return -errno;
	r = connect(fd, sa, salen) ? -errno : 0;
	if (r == -EINPROGRESS)
		r = connect_wait(fd, deadline, stop);
	/* a unix listener whose queue is full refuses at once (EAGAIN),
	 * where tcp would wait for its SYN to be taken: try again every
	 * 20 ms until the deadline */
	while (r == -EAGAIN && family == AF_UNIX) {
		int64_t next = mfd__tp_deadline_in(20);

		if (deadline && deadline < next)
			next = deadline;
		r = mfd__tp_poll_until(-1, 0, next, stop);
		if (r < 0)
			break;
		if (deadline && mfd__tp_now_ns() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = connect(fd, sa, salen) ? -errno : 0;
	}
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

int mfd__sock_conn_from_fd(int fd, int name, struct mfd_conn **out,
			   char *err, size_t errlen)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int copy, r = mfd__sock_fd_check(fd, name, err, errlen);

	if (r)
		return r;
	if (getpeername(fd, (struct sockaddr *)&peer, &len)) {
		/* mfd__sock_fd_check() just saw it connected: shut down
		 * since, or replaced by another descriptor */
		int e = errno;

		snprintf(err, errlen, "descriptor %d: getpeername: %s", name,
			 strerror(e));
		return -e;
	}
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0) {
		snprintf(err, errlen, "descriptor %d: dup: %s", name,
			 strerror(errno));
		return -errno;
	}
	if (conn_out(peer.ss_family == AF_UNIX ? &mfd__unix_ops
					       : &mfd__tcp_ops,
		     copy, out)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	((struct sock_conn *)*out)->handed_in = true;
	return 0;
}

static int tcp_connect(const struct mfd_uri *u, unsigned timeout_ms,
		       struct mfd_conn **out, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int64_t deadline = mfd__tp_deadline_in(timeout_ms); /* for all addresses */
	int r, fd = -EHOSTUNREACH;

	r = getaddrinfo(u->host, u->port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u->host,
			 gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen,
				  deadline, u->stop);
		if (fd >= 0 || fd == -ETIMEDOUT || fd == -ECANCELED)
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
			  mfd__tp_deadline_in(timeout_ms), u->stop);
	if (fd == -ETIMEDOUT)
		snprintf(err, errlen,
			 "cannot connect to unix socket '%s': its listener "
			 "took no connection within %u ms (its queue stayed "
			 "full)",
			 u->path, timeout_ms);
	else if (fd < 0)
		snprintf(err, errlen, "cannot connect to unix socket '%s': %s",
			 u->path, strerror(-fd));
	if (fd < 0)
		return fd;
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

/*
 * Whether a listener answers on the unix socket at path: 1 yes, 0 nobody
 * does (a socket file left by a receiver that died), -errno when it
 * cannot be told. A connection it makes is closed at once; the listener
 * sees a connection that sends nothing.
 */
static int unix_answers(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 1;
	close(fd);
	if (r == -EAGAIN || r == -EINPROGRESS)
		return 1; /* its backlog is full: someone listens */
	if (r == -ECONNREFUSED || r == -ENOENT)
		return 0;
	return r;
}

static int unix_listen(const struct mfd_uri *u, struct mfd_listener **out,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sock_listener *l;
	struct stat st;
	int fd, r;

	/* A socket file left by a dead receiver would make bind() fail and
	 * may go; one a live receiver listens on, or anything that is not
	 * a socket, is not ours to remove. */
	if (!lstat(u->path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "cannot listen on unix:%s: '%s' "
				 "exists and is not a socket",
				 u->path, u->path);
			return -EEXIST;
		}
		r = unix_answers(u->path);
		if (r > 0) {
			snprintf(err, errlen, "another receiver is listening "
				 "on unix:%s", u->path);
			return -EADDRINUSE;
		}
		if (r == -EPROTOTYPE) {
			snprintf(err, errlen, "cannot listen on unix:%s: a "
				 "live socket of another kind (not a stream: a "
				 "daemon's control socket?) is there",
				 u->path);
			return -EADDRINUSE;
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot listen on unix:%s: the "
				 "socket there cannot be probed: %s",
				 u->path, strerror(-r));
			return r;
		}
		unlink(u->path);
	}
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
	/* what close() checks before it removes the file */
	if (stat(u->path, &st)) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on unix socket '%s': "
			 "stat: %s", u->path, strerror(errno));
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
	l->dev = st.st_dev;
	l->ino = st.st_ino;
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
	int64_t deadline = mfd__tp_deadline_in(timeout_ms);
	int r, fd;

	do {
		int ms = mfd__tp_poll_ms(deadline);

		r = ms ? poll(p, 2, ms) : 0;
	} while (r < 0 && errno == EINTR);
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
	struct stat st;

	close(l->fd);
	close(l->wake_fd);
	/* only the socket we bound: another receiver may have replaced a
	 * file it thought stale */
	if (l->unlink_path[0] && !lstat(l->unlink_path, &st) &&
	    st.st_dev == l->dev && st.st_ino == l->ino)
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
	.keepalive = tcp_keepalive,
	.enable_zerocopy = tcp_enable_zerocopy,
	.register_file = sock_register_file,
	.send = sock_send,
	.recv = sock_recv,
	.flush = sock_flush,
	.shutdown = sock_shutdown,
	.shutdown_read = sock_shutdown_read,
	.close = sock_close,
	.fd = sock_fd,
};

const struct mfd_transport_ops mfd__unix_ops = {
	.name = "unix",
	.connect = unix_connect,
	.listen = unix_listen,
	.accept = sock_accept,
	.listener_wake = sock_listener_wake,
	.listener_close = sock_listener_close,
	.set_timeout = sock_set_timeout,
	.register_file = sock_register_file,
	.send = sock_send,
	.recv = sock_recv,
	.flush = sock_flush,
	.shutdown = sock_shutdown,
	.shutdown_read = sock_shutdown_read,
	.close = sock_close,
	.fd = sock_fd,
};
