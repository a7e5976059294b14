/* SPDX-License-Identifier: MIT */
/*
 * fd.c - the fd: transport: channels over stream sockets that the caller
 * opened (a proxy, a tunnel, an orchestrator), one per channel, named by
 * descriptor number: fd:N[,N...]. A sender's channel i takes the i-th
 * descriptor; a receiver "accepts" them as their first bytes arrive (a
 * sender may be waiting on one channel's handshake before it opens the
 * next), and each still says in its handshake which channel it is, so the
 * two ends may list them in different orders. The session works on
 * duplicates, taken at mfd_session_new() (mfd__uri_fds_own()): the caller
 * keeps its descriptors and may close them at any time after; the
 * connection is shut down when the session closes its copy.
 *
 * Once connected, a channel is an ordinary tcp or unix connection (the
 * socket's family decides), with that transport's ops.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

struct fd_listener {
	struct mfd_listener base;
	struct mfd_uri u; /* the caller's numbers, for the messages */
	/* duplicates, taken at listen: the caller may close its own */
	int fds[MFD_URI_MAX_FDS];
	bool taken[MFD_URI_MAX_FDS];
	int wake_fd;
};

#define EXPECTED "expected a connected stream socket, one per channel"

static const char *file_kind(mode_t m)
{
	if (S_ISREG(m))
		return "a regular file";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a pipe";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a socket";
}

static const char *sock_kind(int type)
{
	switch (type) {
	case SOCK_DGRAM:
		return "a datagram socket";
	case SOCK_SEQPACKET:
		return "a seqpacket socket";
	case SOCK_RAW:
		return "a raw socket";
	default:
		return "a socket of another type than stream";
	}
}

/*
 * Without this, a descriptor that can never carry a channel (a listening
 * socket, a datagram socket, a file, a closed number) fails late or not
 * at all: a receiver polls it for bytes that never come and reports a
 * timeout, forever with no timeout. Both roles call it before any wait.
 */
int mfd__sock_fd_check(int fd, int name, char *err, size_t errlen)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int type = 0, on = 0;
	socklen_t olen = sizeof(int);
	struct stat st;

	if (fstat(fd, &st)) {
		int e = errno;

		if (e == EBADF)
			snprintf(err, errlen,
				 "descriptor %d is not open: " EXPECTED, name);
		else
			snprintf(err, errlen, "descriptor %d: %s", name,
				 strerror(e));
		return -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "descriptor %d is %s: " EXPECTED, name,
			 file_kind(st.st_mode));
		return -ENOTSOCK;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen)) {
		int e = errno;

		snprintf(err, errlen, "descriptor %d: SO_TYPE: %s", name,
			 strerror(e));
		return -e;
	}
	if (type != SOCK_STREAM) {
		snprintf(err, errlen, "descriptor %d is %s: " EXPECTED, name,
			 sock_kind(type));
		return -EPROTOTYPE;
	}
	olen = sizeof(on);
	if (!getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) && on) {
		snprintf(err, errlen,
			 "descriptor %d is a listening socket: " EXPECTED, name);
		return -EINVAL;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &len)) {
		int e = errno;

		snprintf(err, errlen,
			 "descriptor %d is not connected (%s): " EXPECTED, name,
			 strerror(e));
		return -e;
	}
	return 0;
}

int mfd__uri_fds_own(struct mfd_uri *u, char *err, size_t errlen)
{
	for (unsigned i = 0; i < u->nfds; i++) {
		int d = fcntl(u->fd_names[i], F_DUPFD_CLOEXEC, 0);

		if (d < 0) {
			int e = errno;

			if (e == EBADF)
				snprintf(err, errlen,
					 "descriptor %d is not open: " EXPECTED,
					 u->fd_names[i]);
			else
				snprintf(err, errlen, "descriptor %d: dup: %s",
					 u->fd_names[i], strerror(e));
			while (i--)
				close(u->fds[i]);
			memcpy(u->fds, u->fd_names, sizeof(u->fds));
			return -e;
		}
		u->fds[i] = d;
	}
	u->fds_owned = true;
	return 0;
}

void mfd__uri_fds_close(struct mfd_uri *u)
{
	for (unsigned i = 0; u->fds_owned && i < u->nfds; i++)
		close(u->fds[i]);
	u->fds_owned = false;
}

static int fd_connect(const struct mfd_uri *u, unsigned timeout_ms,
		      struct mfd_conn **out, char *err, size_t errlen)
{
	(void)timeout_ms; /* connected already */
	if (u->channel >= u->nfds) {
		snprintf(err, errlen,
			 "fd: names %u descriptor%s, none for channel %u: "
			 "expected one per channel",
			 u->nfds, u->nfds == 1 ? "" : "s", u->channel);
		return -EINVAL;
	}
	/* channel 0 comes first: every descriptor is checked before its
	 * handshake, rather than one by one as the session grows */
	for (unsigned i = 0; !u->channel && i < u->nfds; i++) {
		int r = mfd__sock_fd_check(u->fds[i], u->fd_names[i], err,
					   errlen);

		if (r)
			return r;
	}
	return mfd__sock_conn_from_fd(u->fds[u->channel],
				      u->fd_names[u->channel], out, err, errlen);
}

static int fd_listen(const struct mfd_uri *u, struct mfd_listener **out,
		     char *err, size_t errlen)
{
	struct fd_listener *l;
	size_t at;
	int r;

	/* refused here, when the session starts, not after the timeout */
	for (unsigned i = 0; i < u->nfds; i++) {
		r = mfd__sock_fd_check(u->fds[i], u->fd_names[i], err, errlen);
		if (r)
			return r;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < MFD_URI_MAX_FDS; i++)
		l->fds[i] = -1;
	l->base.ops = &mfd__fd_ops;
	l->u = *u;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-r));
		goto fail;
	}
	for (unsigned i = 0; i < u->nfds; i++) {
		l->fds[i] = fcntl(u->fds[i], F_DUPFD_CLOEXEC, 0);
		if (l->fds[i] < 0) {
			r = -errno;
			snprintf(err, errlen, "descriptor %d: dup: %s",
				 u->fd_names[i], strerror(-r));
			goto fail;
		}
	}
	at = (size_t)snprintf(l->base.uri, sizeof(l->base.uri), "fd:");
	for (unsigned i = 0; i < u->nfds && at < sizeof(l->base.uri); i++)
		at += (size_t)snprintf(l->base.uri + at,
				       sizeof(l->base.uri) - at, "%s%d",
				       i ? "," : "", u->fd_names[i]);
	*out = &l->base;
	return 0;
fail:
	mfd__tp_listener_close(&l->base);
	return r;
}

/*
 * The first descriptor not handed out yet that has bytes to read (or is
 * closed or broken, which its handshake then says), as a listener's
 * accept() gives the connection that came first; within timeout_ms (0:
 * forever). When every one is taken, nothing more can come: fail at once
 * rather than wait out the timeout.
 */
static int fd_accept(struct mfd_listener *ml, unsigned timeout_ms,
		     struct mfd_conn **out, char *err, size_t errlen)
{
	struct fd_listener *l = (struct fd_listener *)ml;
	struct pollfd p[MFD_URI_MAX_FDS + 1];
	unsigned idx[MFD_URI_MAX_FDS], n = 0;
	int r;

	p[0] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
	for (unsigned i = 0; i < l->u.nfds; i++)
		if (!l->taken[i]) {
			idx[n] = i;
			p[++n] = (struct pollfd){ .fd = l->fds[i],
						  .events = POLLIN };
		}
	if (!n) {
		snprintf(err, errlen,
			 "every descriptor handed in (%s) is taken, and none "
			 "more can come",
			 ml->uri);
		return -ENOTCONN;
	}
	do
		r = poll(p, n + 1, timeout_ms ? (int)timeout_ms : -1);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(err, errlen, "poll: %s", strerror(errno));
		return -errno;
	}
	if (r == 0) {
		snprintf(err, errlen, "no bytes on %s within %u ms", ml->uri,
			 timeout_ms);
		return -ETIMEDOUT;
	}
	if (p[0].revents) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	for (unsigned k = 1; k <= n; k++)
		if (p[k].revents) {
			unsigned i = idx[k - 1];
			int fd = l->fds[i];

			l->taken[i] = true;
			l->fds[i] = -1;
			r = mfd__sock_conn_from_fd(fd, l->u.fd_names[i], out,
						   err, errlen);
			/* the connection has a copy of its own */
			close(fd);
			return r;
		}
	snprintf(err, errlen, "poll: no descriptor ready");
	return -EIO;
}

static void fd_listener_wake(struct mfd_listener *ml)
{
	uint64_t one = 1;
	ssize_t r = write(((struct fd_listener *)ml)->wake_fd, &one,
			  sizeof(one));

	(void)r; /* a full counter means it is already woken */
}

static void fd_listener_close(struct mfd_listener *ml)
{
	struct fd_listener *l = (struct fd_listener *)ml;

	if (l->wake_fd >= 0)
		close(l->wake_fd);
	for (unsigned i = 0; i < MFD_URI_MAX_FDS; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	free(l);
}

/* The session's table: only the setup ops are its own. Its connections
 * carry the tcp or unix table, which serves every later op. */
const struct mfd_transport_ops mfd__fd_ops = {
	.name = "fd",
	.connect = fd_connect,
	.listen = fd_listen,
	.accept = fd_accept,
	.listener_wake = fd_listener_wake,
	.listener_close = fd_listener_close,
};
