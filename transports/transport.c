/* SPDX-License-Identifier: MIT */
/*
 * transport.c - URI parsing, the scheme -> ops table map, and the one-line
 * wrappers through which the core reaches every transport op.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport.h"

static int split_host_port(const char *rest, struct mfd_uri *u, char *err,
			   size_t errlen)
{
	const char *colon, *host = rest;
	size_t hlen;

	if (rest[0] == '[') {
		const char *close = strchr(rest, ']');

		if (!close || close[1] != ':') {
			snprintf(err, errlen,
				 "bad address '%s': expected [IPV6]:PORT",
				 rest);
			return -EINVAL;
		}
		host = rest + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon || strchr(rest, ':') != colon) {
			snprintf(err, errlen,
				 "bad address '%s': expected HOST:PORT "
				 "(IPv6 addresses go in brackets)",
				 rest);
			return -EINVAL;
		}
		hlen = (size_t)(colon - rest);
	}
	if (hlen == 0 || hlen >= sizeof(u->host)) {
		snprintf(err, errlen,
			 "bad host in '%s': expected HOST:PORT with a host "
			 "name or address of 1 to %zu characters",
			 rest, sizeof(u->host) - 1);
		return -EINVAL;
	}
	memcpy(u->host, host, hlen);
	u->host[hlen] = 0;

	const char *port = colon + 1;
	size_t plen = strlen(port);
	char *end;
	long p = strtol(port, &end, 10);

	if (plen == 0 || *end || p < 0 || p > 65535 ||
	    plen >= sizeof(u->port)) {
		snprintf(err, errlen,
			 "bad port '%s' in '%s': expected a number 0..65535",
			 port, rest);
		return -EINVAL;
	}
	memcpy(u->port, port, plen + 1);
	return 0;
}

/* fd:N[,N...]: decimal descriptor numbers, each named once. */
static int parse_fds(const char *s, struct mfd_uri *u, char *err,
		     size_t errlen)
{
	const char *p = s + 3;

	for (;;) {
		char *end = NULL;
		long v = -1;

		errno = 0;
		if (*p >= '0' && *p <= '9')
			v = strtol(p, &end, 10);
		if (v < 0 || errno || v > INT_MAX || (*end && *end != ',')) {
			snprintf(err, errlen,
				 "bad descriptor list in '%s': expected "
				 "fd:N[,N...], N a file descriptor number",
				 s);
			return -EINVAL;
		}
		for (unsigned i = 0; i < u->nfds; i++)
			if (u->fds[i] == (int)v) {
				snprintf(err, errlen,
					 "'%s' names descriptor %ld twice: "
					 "expected one per channel",
					 s, v);
				return -EINVAL;
			}
		if (u->nfds == MFD_URI_MAX_FDS) {
			snprintf(err, errlen,
				 "'%s' names more than %u descriptors: at "
				 "most one per channel",
				 s, MFD_URI_MAX_FDS);
			return -EINVAL;
		}
		u->fd_names[u->nfds] = (int)v;
		u->fds[u->nfds++] = (int)v;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

int mfd__uri_parse(const char *s, struct mfd_uri *u, char *err,
		   size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (!s) {
		snprintf(err, errlen, "no URI given");
		return -EINVAL;
	}
	snprintf(u->text, sizeof(u->text), "%s", s);
	if (!strncmp(s, "tcp:", 4)) {
		u->scheme = MFD_SCHEME_TCP;
		return split_host_port(s + 4, u, err, errlen);
	}
	if (!strncmp(s, "rdma:", 5)) {
		u->scheme = MFD_SCHEME_RDMA;
		return split_host_port(s + 5, u, err, errlen);
	}
	if (!strncmp(s, "unix:", 5)) {
		size_t n = strlen(s + 5);

		u->scheme = MFD_SCHEME_UNIX;
		if (n == 0 || n >= sizeof(u->path)) {
			snprintf(err, errlen,
				 "bad unix socket path in '%s': expected "
				 "1..%zu characters",
				 s, sizeof(u->path) - 1);
			return -EINVAL;
		}
		memcpy(u->path, s + 5, n + 1);
		return 0;
	}
	if (!strncmp(s, "fd:", 3)) {
		u->scheme = MFD_SCHEME_FD;
		return parse_fds(s, u, err, errlen);
	}
	snprintf(err, errlen,
		 "unknown URI '%s': expected tcp:HOST:PORT, unix:PATH, "
		 "rdma:HOST:PORT or fd:N[,N...]",
		 s);
	return -EINVAL;
}

/* Whether p starts with a scheme this parser knows. */
static bool starts_scheme(const char *p)
{
	return !strncmp(p, "tcp:", 4) || !strncmp(p, "rdma:", 5) ||
	       !strncmp(p, "unix:", 5) || !strncmp(p, "fd:", 3);
}

int mfd__uri_parse_list(const char *s, struct mfd_uri *u, unsigned max,
			unsigned *n, char *err, size_t errlen)
{
	char one[512];
	const char *p = s;
	int r;

	*n = 0;
	if (!s)
		return mfd__uri_parse(s, u, err, errlen);
	for (;;) {
		/* a comma starts the next endpoint only before a scheme:
		 * fd:'s own commas separate its descriptors */
		const char *q = p;
		size_t len;

		while ((q = strchr(q, ',')) && !starts_scheme(q + 1)) {
			/* a comma that ends the list, or doubles, or comes
			 * before a scheme this build does not know */
			size_t w = strspn(q + 1, "abcdefghijklmnopqrstuvwxyz");

			if (!q[1] || q[1] == ',' || (w && q[1 + w] == ':')) {
				snprintf(err, errlen,
					 "'%s': %s after a comma; expected "
					 "URI,URI,... of tcp:, unix:, rdma: "
					 "and fd:",
					 s, w ? "an unknown scheme"
					      : "no endpoint");
				return -EINVAL;
			}
			q++;
		}
		len = q ? (size_t)(q - p) : strlen(p);
		if (*n == max) {
			snprintf(err, errlen,
				 "'%s' lists more than %u endpoints", s, max);
			return -EINVAL;
		}
		if (len >= sizeof(one)) {
			snprintf(err, errlen, "an endpoint of '%s' is longer "
				 "than %zu characters", s, sizeof(one) - 1);
			return -EINVAL;
		}
		memcpy(one, p, len);
		one[len] = 0;
		r = mfd__uri_parse(one, &u[*n], err, errlen);
		if (r)
			return r;
		++*n;
		if (!q)
			return 0;
		p = q + 1;
	}
}

const struct mfd_transport_ops *mfd__transport_get(enum mfd_scheme s)
{
	switch (s) {
	case MFD_SCHEME_TCP:
		return &mfd__tcp_ops;
	case MFD_SCHEME_UNIX:
		return &mfd__unix_ops;
	case MFD_SCHEME_FD:
		return &mfd__fd_ops;
	case MFD_SCHEME_RDMA:
#ifdef HAVE_RDMA
		return &mfd__rdma_ops;
#else
		return NULL;
#endif
	}
	return NULL;
}

int mfd__tp_send(struct mfd_conn *c, const struct iovec *iov, int n,
		 unsigned flags)
{
	int r;

	if ((flags & MFD_SEND_LAST) && c->torn)
		return -EPIPE;
	if (!(flags & (MFD_SEND_MORE | MFD_SEND_LAST)) &&
	    __atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	r = c->ops->send(c, iov, n, flags & MFD_SEND_ZEROCOPY);
	/* -ENODATA: failed, but the packet went whole (padded) */
	if (r && r != -ENODATA)
		c->torn = true;
	return r;
}

int mfd__tp_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	return c->ops->recv(c, iov, n);
}

int mfd__tp_flush(struct mfd_conn *c)
{
	return c->ops->flush ? c->ops->flush(c) : -ENOTSUP;
}

int mfd__tp_register_region(struct mfd_conn *c, unsigned index, void *mem,
			    uint64_t len)
{
	return c->ops->register_region
		       ? c->ops->register_region(c, index, mem, len)
		       : -ENOTSUP;
}

int mfd__tp_register_file(struct mfd_conn *c, void *mem, uint64_t len,
			  int fd, uint64_t off)
{
	return c->ops->register_file
		       ? c->ops->register_file(c, mem, len, fd, off)
		       : -ENOTSUP;
}

int mfd__tp_register_buffer(struct mfd_conn *c, void *mem, uint64_t len)
{
	return c->ops->register_buffer ? c->ops->register_buffer(c, mem, len)
				       : -ENOTSUP;
}

int mfd__tp_set_timeout(struct mfd_conn *c, unsigned timeout_ms)
{
	return c->ops->set_timeout ? c->ops->set_timeout(c, timeout_ms)
				   : -ENOTSUP;
}

int mfd__tp_keepalive(struct mfd_conn *c, unsigned idle_ms)
{
	return c->ops->keepalive ? c->ops->keepalive(c, idle_ms) : 0;
}

int64_t mfd__tp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mfd__tp_deadline_in(unsigned timeout_ms)
{
	return timeout_ms ? mfd__tp_now_ns() + (int64_t)timeout_ms * 1000000
			  : 0;
}

int mfd__tp_poll_ms(int64_t deadline)
{
	int64_t left;

	if (!deadline)
		return -1;
	left = deadline - mfd__tp_now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * One deadline bounds the whole call, so a peer that trickles bytes
 * fails it as surely as a silent one: "no data" would then be untrue,
 * and the sentence says how far the call got instead.
 */
void mfd__tp_deadline_text(char *err, size_t errlen, bool send, unsigned ms,
			   size_t done, size_t total, const char *moved,
			   const char *detail)
{
	const char *what = send ? "send" : "read";

	if (!done)
		snprintf(err, errlen, "%s for %u ms (%s%snone of this %s's "
			 "%zu bytes %s)",
			 send ? "send stalled" : "no data", ms,
			 detail ? detail : "", detail ? "; " : "", what,
			 total, moved);
	else
		snprintf(err, errlen, "this %s of %zu bytes did not complete "
			 "within %u ms (%s%s%zu %s)",
			 what, total, ms, detail ? detail : "",
			 detail ? "; " : "", done, moved);
}

/* How often a wait that can be stopped looks at its flag. */
#define STOP_LOOK_MS 50

int mfd__tp_poll_until(int fd, short events, int64_t deadline,
		       const bool *stop)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int ms = mfd__tp_poll_ms(deadline), r;

		if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		if (ms == 0)
			return 0;
		if (stop && (ms < 0 || ms > STOP_LOOK_MS))
			ms = STOP_LOOK_MS;
		r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

bool mfd__tp_peer_gone(struct mfd_conn *c, bool quiet)
{
	struct pollfd p = { .events = POLLRDHUP | (quiet ? POLLIN : 0) };

	if (c && c->ops->peer_gone)
		return c->ops->peer_gone(c);
	if (!c || !c->ops->fd || (p.fd = c->ops->fd(c)) < 0)
		return false;
	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLIN));
}

int mfd__tp_enable_zerocopy(struct mfd_conn *c)
{
	return c->ops->enable_zerocopy ? c->ops->enable_zerocopy(c)
				       : -ENOTSUP;
}

void mfd__tp_shutdown(struct mfd_conn *c)
{
	if (c && c->ops->shutdown)
		c->ops->shutdown(c);
}

void mfd__tp_shutdown_read(struct mfd_conn *c)
{
	if (c && c->ops->shutdown_read)
		c->ops->shutdown_read(c);
	else
		mfd__tp_shutdown(c);
}

void mfd__tp_stop_sends(struct mfd_conn *c)
{
	if (!c)
		return;
	__atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
	mfd__tp_shutdown_read(c);
}

void mfd__tp_revoke(struct mfd_conn *c)
{
	if (c && c->ops->revoke)
		c->ops->revoke(c);
}

void mfd__tp_close(struct mfd_conn *c)
{
	if (c)
		c->ops->close(c);
}

void mfd__tp_listener_wake(struct mfd_listener *l)
{
	if (l && l->ops->listener_wake)
		l->ops->listener_wake(l);
}

void mfd__tp_listener_close(struct mfd_listener *l)
{
	if (l)
		l->ops->listener_close(l);
}

int mfd__tp_send_buf(struct mfd_conn *c, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return mfd__tp_send(c, &iov, 1, 0);
}

int mfd__tp_recv_buf(struct mfd_conn *c, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return mfd__tp_recv(c, &iov, 1);
}
