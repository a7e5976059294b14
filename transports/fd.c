/* SPDX-License-Identifier: MIT */
/*
 * fd.c - the fd: transport: channels over stream sockets that the caller
 * opened (a proxy, a tunnel, an orchestrator), one per channel, named by
 * descriptor number: fd:N[,N...]. A sender's channel i takes the i-th
 * descriptor; a receiver "accepts" them in the URI's order, and each
 * still says in its handshake which channel it is, so the two ends may
 * list them in different orders. The session works on duplicates: the
 * caller keeps its descriptors and may close them at any time; the
 * connection is shut down when the session closes its copy.
 *
 * Once connected, a channel is an ordinary tcp or unix connection (the
 * socket's family decides), with that transport's ops.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport.h"

struct fd_listener {
	struct mfd_listener base;
	struct mfd_uri u;
	unsigned next; /* the next descriptor to hand out */
	int wake_fd;
};

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
	return mfd__sock_conn_from_fd(u->fds[u->channel], out, err, errlen);
}

static int fd_listen(const struct mfd_uri *u, struct mfd_listener **out,
		     char *err, size_t errlen)
{
	struct fd_listener *l = calloc(1, sizeof(*l));
	size_t at;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		int e = errno;

		snprintf(err, errlen, "eventfd: %s", strerror(e));
		free(l);
		return -e;
	}
	l->base.ops = &mfd__fd_ops;
	l->u = *u;
	at = (size_t)snprintf(l->base.uri, sizeof(l->base.uri), "fd:");
	for (unsigned i = 0; i < u->nfds && at < sizeof(l->base.uri); i++)
		at += (size_t)snprintf(l->base.uri + at,
				       sizeof(l->base.uri) - at, "%s%d",
				       i ? "," : "", u->fds[i]);
	*out = &l->base;
	return 0;
}

/*
 * The next descriptor, at once. When every one is taken, nothing more can
 * come: fail at once rather than wait out the timeout, unless woken.
 */
static int fd_accept(struct mfd_listener *ml, unsigned timeout_ms,
		     struct mfd_conn **out, char *err, size_t errlen)
{
	struct fd_listener *l = (struct fd_listener *)ml;
	struct pollfd p = { .fd = l->wake_fd, .events = POLLIN };

	(void)timeout_ms;
	if (poll(&p, 1, 0) > 0) {
		snprintf(err, errlen, "cancelled");
		return -ECANCELED;
	}
	if (l->next == l->u.nfds) {
		snprintf(err, errlen,
			 "every descriptor handed in (%s) is taken, and none "
			 "more can come",
			 ml->uri);
		return -ENOTCONN;
	}
	return mfd__sock_conn_from_fd(l->u.fds[l->next++], out, err, errlen);
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

	close(l->wake_fd);
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
