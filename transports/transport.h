/* SPDX-License-Identifier: MIT */
/*
 * transport.h - the transport contract. A transport moves bytes or
 * scatter-gather lists between the two ends of one channel; it never looks
 * inside a packet. One ops table per transport (tcp, unix, rdma), chosen
 * by the URI scheme. The core reaches every op through the mfd__tp_*
 * wrappers below, which answer -ENOTSUP for an optional op left NULL.
 *
 * Threads: a connection is used by one channel thread at a time; the
 * session may call mfd__tp_shutdown() from any thread to wake it. The
 * postcopy urgent channel (tcp and unix only) sends from one thread while
 * another receives: sends and receives of a socket connection keep no
 * state in common but err, which then says either's failure.
 */
#ifndef MFD_TRANSPORT_H
#define MFD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum mfd_scheme {
	MFD_SCHEME_TCP = 1,
	MFD_SCHEME_UNIX,
	MFD_SCHEME_RDMA,
	MFD_SCHEME_FD, /* connections opened by the caller, one per channel */
};

/* fd: names at most one descriptor per channel. */
#define MFD_URI_MAX_FDS 64

/* A parsed URI. */
struct mfd_uri {
	char text[300]; /* as written */
	enum mfd_scheme scheme;
	char host[256]; /* tcp, rdma: without brackets */
	char port[16];
	char path[108]; /* unix: sun_path */
	/* fd: the descriptors, in the URI's order: the caller's numbers
	 * (fd_names, for messages) and those to use (fds: the session's
	 * duplicates, taken at mfd_session_new(), or the caller's) */
	int fds[MFD_URI_MAX_FDS];
	int fd_names[MFD_URI_MAX_FDS];
	unsigned nfds;
	bool fds_owned; /* fds are the session's, closed with it */
	/* connect(): the index of the channel being opened (fd: takes the
	 * channel's own descriptor); set by the sender per channel */
	unsigned channel;
	/* A layer's view of the stack (tls): the transport under it, whose
	 * connect/listen/accept it calls, and its own state. NULL for a
	 * bottom transport. Set by the session. */
	const struct mfd_transport_ops *lower;
	struct mfd_tls_ctx *tls;
	/* connect(): where the transport keeps what the connections of one
	 * session share (rdma: their protection domains), NULL at first;
	 * it outlives them. Set by the session; NULL: each connection
	 * shares nothing. */
	void **session_state;
	/* connect(): true once the session failed or was cancelled; a
	 * connect still waiting then gives up with -ECANCELED. Set by the
	 * session; NULL: nothing stops it but its deadline. */
	const bool *stop;
};

/* Parse tcp:HOST:PORT, tcp:[V6]:PORT, unix:PATH, rdma:HOST:PORT,
 * fd:N[,N...]. */
int mfd__uri_parse(const char *s, struct mfd_uri *u, char *err,
		   size_t errlen);
/* Parse a list of them, comma-separated ("tcp:A:1,tcp:B:1"), into u[0],
 * u[1], ... (at most max; *n: how many). */
int mfd__uri_parse_list(const char *s, struct mfd_uri *u, unsigned max,
			unsigned *n, char *err, size_t errlen);

/* Send flags. */
#define MFD_SEND_ZEROCOPY 0x1u /* the pages may be sent without a copy;
				  flush() before they change */
/* For mfd__tp_send() only, never passed to a transport's send op: */
#define MFD_SEND_MORE 0x100u /* the rest of a packet whose first bytes went
				by the previous send: sent even once stopped */
#define MFD_SEND_LAST 0x200u /* the last words (an ABORT): sent even once
				stopped, never behind a torn packet */

struct mfd_transport_ops;

/* One end of a channel. Transports embed it first in their own struct. */
struct mfd_conn {
	const struct mfd_transport_ops *ops;
	char err[160]; /* why the last op failed, for the session's error */
	/* zero-copy counters, maintained by the transport */
	uint64_t zc_sends, zc_copied, zc_fallbacks;
	/* register_region: time spent registering and the bytes registered
	 * (a registration made once for several channels counts once) */
	uint64_t reg_ns, reg_bytes;
	/* sends whose bytes outside regions all went inline with the
	 * work request (rdma: IBV_SEND_INLINE) */
	uint64_t inline_sends;
	/* sends whose payload went by one-sided write into the peer's
	 * landing buffer (rdma), not on the stream */
	uint64_t landed_sends;
	/* the session's endpoint the connection was made to or accepted
	 * on (set by the session) */
	unsigned endpoint;
	/* MFD_CONN_TLS*: set by the tls layer once its handshake is done,
	 * before the connection becomes a session's channel; read for the
	 * statistics */
	unsigned tls_flags;
	/* Kept by mfd__tp_send() and mfd__tp_stop_sends(): sends stopped
	 * (atomic), and a send that failed, which may have left a packet
	 * half written (the owner's thread). */
	int stopping;
	bool torn;
};

#define MFD_CONN_TLS 0x1u	/* the channel runs inside TLS */
#define MFD_CONN_KTLS_SEND 0x2u /* the kernel encrypts what it sends */
#define MFD_CONN_KTLS_RECV 0x4u /* the kernel decrypts what it receives */

struct mfd_listener {
	const struct mfd_transport_ops *ops;
	char uri[300]; /* the bound address, real port included */
};

struct mfd_transport_ops {
	const char *name;
	/*
	 * Region bytes land in the peer's memory by one-sided writes, as
	 * soon as they are sent, not when the receiver's channel thread
	 * reads them. A sync must then wait for the receiver to finish the
	 * round (zero pages, decompression) before the next round's writes.
	 */
	bool one_sided;
	/*
	 * Open a connection to the listener at *u within timeout_ms (0:
	 * forever). Fills *out. Called from the session's owner thread.
	 */
	int (*connect)(const struct mfd_uri *u, unsigned timeout_ms,
		       struct mfd_conn **out, char *err, size_t errlen);
	/* Bind and listen; fills *out and (*out)->uri. */
	int (*listen)(const struct mfd_uri *u, struct mfd_listener **out,
		      char *err, size_t errlen);
	/* Wait up to timeout_ms for one connection; -ETIMEDOUT. A
	 * connection that came within it may take a few seconds more to
	 * complete (rdma:), whatever timeout_ms: the receiver calls it in
	 * short slices. */
	int (*accept)(struct mfd_listener *l, unsigned timeout_ms,
		      struct mfd_conn **out, char *err, size_t errlen);
	/* Stop accept() from another thread; optional. */
	void (*listener_wake)(struct mfd_listener *l);
	void (*listener_close)(struct mfd_listener *l);
	/*
	 * Bound every later send, recv and flush: each call completes
	 * within timeout_ms of its start or fails with -ETIMEDOUT, c->err
	 * saying so in mfd__tp_deadline_text()'s words: how many bytes
	 * of this call moved, if any. The bound is
	 * on the whole call, not on each wait inside it: bytes that keep
	 * trickling in or out do not extend it. 0: no limit.
	 */
	int (*set_timeout)(struct mfd_conn *c, unsigned timeout_ms);
	/*
	 * Keep a connection that may stay idle for long alive below the
	 * protocol (TCP keep-alive probes after idle_ms of silence, every
	 * idle_ms, 3 unanswered ones end it): a NAT or firewall on the
	 * path keeps its state, and a dead peer is found. Optional: a
	 * transport without the need (unix:) leaves it out.
	 */
	int (*keepalive)(struct mfd_conn *c, unsigned idle_ms);
	/* Ask for zero-copy sends; optional (-ENOTSUP when not offered). */
	int (*enable_zerocopy)(struct mfd_conn *c);
	/*
	 * Make a region known to the transport, on both ends of every
	 * channel, in the same order (index 0, 1, ...), after the handshake.
	 * Optional. RDMA registers the memory once per session and tells the
	 * sender where the receiver's copy is, so that list entries inside a
	 * region can travel as one-sided writes at the same offset: then
	 * recv() of entries inside a region costs nothing, while every byte
	 * outside regions (headers, compressed payloads) goes in order on
	 * the stream.
	 */
	/* Returns 0, 1 when this end's bytes of the region cannot be
	 * placed by one-sided writes and go on the stream (the core then
	 * flags its page packets STAGED), or -errno. */
	int (*register_region)(struct mfd_conn *c, unsigned index, void *mem,
			       uint64_t len);
	/*
	 * Sender: region memory [mem, mem + len) is a shared mapping of
	 * bytes [off, off + len) of the file fd, and the core does not read
	 * those pages itself. A transport that can send from a file in the
	 * kernel (sockets: sendfile()) then sends the list entries that lie
	 * inside it from the file, without touching the mapping: no
	 * page-table work, no copy. The socket then holds the page
	 * cache's pages until the peer has them (past flush(): the round's
	 * sync is what tells). Returns 0 when it will, -ENOTSUP when it
	 * will not (the entries go from the mapping; a descriptor handed
	 * in by the caller, whose flags it would change), or -errno.
	 * Called by the owner thread after register_region; fd stays open
	 * until close(). Optional.
	 */
	int (*register_file)(struct mfd_conn *c, void *mem, uint64_t len,
			     int fd, uint64_t off);
	/*
	 * [mem, mem + len) is the buffer the channel's method builds every
	 * compressed payload in (sender) or decompresses it from
	 * (receiver); called for compressing sessions only, by the owner
	 * thread, after the handshake and before register_region. A
	 * transport may register it so that payloads travel from it
	 * without a copy, or make ready for them (rdma: the sender's
	 * WRITEs come from it; the receiver offers landing slots). The
	 * buffer outlives c. Optional.
	 */
	int (*register_buffer)(struct mfd_conn *c, void *mem, uint64_t len);
	/*
	 * Send the whole list, in order. Returns 0 or -errno; on error the
	 * connection is unusable, but after -ENODATA (the pages could not
	 * be read, and went as zeros), which leaves the stream whole for a
	 * last word. Memory outside regions may be reused as
	 * soon as send() returns. Region memory (and, with
	 * MFD_SEND_ZEROCOPY, any memory) must stay unchanged until flush()
	 * returns.
	 */
	int (*send)(struct mfd_conn *c, const struct iovec *iov, int n,
		    unsigned flags);
	/* Fill the whole list; -EPIPE when the peer closed (c->err says
	 * after how many bytes). */
	int (*recv)(struct mfd_conn *c, const struct iovec *iov, int n);
	/* Wait until every zero-copy send has completed, within one
	 * timeout (see set_timeout) for the whole wait; a socket error
	 * fails it with its own text. Optional. */
	int (*flush)(struct mfd_conn *c);
	/* Make blocked send/recv on c return an error soon; any thread. */
	void (*shutdown)(struct mfd_conn *c);
	/*
	 * Make a blocked recv on c return soon but leave c able to send, so
	 * that the reason for a failure can still reach the peer; any
	 * thread. Optional: the wrapper falls back to shutdown().
	 */
	void (*shutdown_read)(struct mfd_conn *c);
	/*
	 * Withdraw every access to this end's memory that the peer was
	 * given on c (RDMA: the rkeys of its regions): afterwards nothing
	 * the peer sends lands in a region, and the memory is no longer
	 * pinned for it. Called by the receive engine from the owner
	 * thread, once no channel thread uses c, before mfd_recv_wait()
	 * returns, whatever its result. Optional.
	 */
	void (*revoke)(struct mfd_conn *c);
	void (*close)(struct mfd_conn *c);
	/*
	 * The socket under c, for a layer above that must drive it itself
	 * (tls hands it to OpenSSL, and to the kernel for kTLS), and to
	 * see that the peer hung up (mfd__tp_peer_gone()). The layer
	 * may make it non-blocking: the transport's send and recv must
	 * then still work (they wait with poll() for EAGAIN). Optional:
	 * -ENOTSUP.
	 */
	int (*fd)(struct mfd_conn *c);
	/*
	 * Whether the peer is known to have left c, seen without reading
	 * or waiting (rdma: a DISCONNECTED waiting on its rdma_cm
	 * channel). Optional: the socket from fd() is polled instead.
	 */
	bool (*peer_gone)(struct mfd_conn *c);
};

extern const struct mfd_transport_ops mfd__tcp_ops;
extern const struct mfd_transport_ops mfd__unix_ops;
extern const struct mfd_transport_ops mfd__fd_ops;

/*
 * The tls layer (tls.c): TLS 1.3 over the connection of the transport
 * under it (u->lower: tcp, unix or fd), with u->tls for its settings.
 * connect() runs the client's handshake before it returns; accept()
 * returns at once and the server's handshake runs in the first send or
 * recv, within that call's timeout (the receiver's handshake deadline).
 */
extern const struct mfd_transport_ops mfd__tls_ops;

/* What a session asks of TLS (see struct mfd_config). */
struct mfd_tls_params {
	const char *cert, *key, *ca; /* x509: PEM files, all three */
	const char *hostname;	/* client: the name the receiver's
				   certificate must carry (NULL: none) */
	const uint8_t *secret;	/* PSK mode: the session's secret */
	size_t secret_len;
};

/* Build the context for one end (server: the receiver), loading and
 * checking every file now. 0 or -errno with a sentence in err. */
int mfd__tls_ctx_new(const struct mfd_tls_params *p, bool server,
		     struct mfd_tls_ctx **out, char *err, size_t errlen);
void mfd__tls_ctx_free(struct mfd_tls_ctx *t);

/* Whether fd is what fd: promises, a connected stream socket: 0, or
 * -errno with err saying what it is instead (not open, a regular file, a
 * datagram or a listening socket, not connected). Both roles ask it. */
int mfd__sock_fd_check(int fd, int name, char *err, size_t errlen);
/* A connection over a duplicate of fd, a connected stream socket handed in
 * by the caller (tcp or unix ops by its family). 0 or -errno, err saying
 * what fd is when it is not such a socket (mfd__sock_fd_check()). `name`:
 * the caller's number for fd, which the messages say. */
int mfd__sock_conn_from_fd(int fd, int name, struct mfd_conn **out,
			   char *err, size_t errlen);
/* Take duplicates of an fd: URI's descriptors for the session (the
 * caller may close its own from then on); 0, or -errno said in err with
 * none taken. mfd__uri_fds_close() gives them back. */
int mfd__uri_fds_own(struct mfd_uri *u, char *err, size_t errlen);
void mfd__uri_fds_close(struct mfd_uri *u);
#ifdef HAVE_RDMA
extern const struct mfd_transport_ops mfd__rdma_ops;
#endif

/* The ops table for a scheme, or NULL when it is not built in. */
const struct mfd_transport_ops *mfd__transport_get(enum mfd_scheme s);

/* Wrappers: optional ops that are NULL answer -ENOTSUP (or do nothing). */
int mfd__tp_send(struct mfd_conn *c, const struct iovec *iov, int n,
		 unsigned flags);
int mfd__tp_recv(struct mfd_conn *c, const struct iovec *iov, int n);
int mfd__tp_flush(struct mfd_conn *c);
int mfd__tp_register_region(struct mfd_conn *c, unsigned index, void *mem,
			    uint64_t len);
int mfd__tp_register_file(struct mfd_conn *c, void *mem, uint64_t len,
			  int fd, uint64_t off);
int mfd__tp_register_buffer(struct mfd_conn *c, void *mem, uint64_t len);
int mfd__tp_set_timeout(struct mfd_conn *c, unsigned timeout_ms);
/* The keepalive op where the transport has one, else 0. */
int mfd__tp_keepalive(struct mfd_conn *c, unsigned idle_ms);
int mfd__tp_enable_zerocopy(struct mfd_conn *c);
/* CLOCK_MONOTONIC in ns; the deadline timeout_ms from now (0: none). */
int64_t mfd__tp_now_ns(void);
int64_t mfd__tp_deadline_in(unsigned timeout_ms);
/* poll() timeout until deadline, rounded up (-1: none); 0 once it
 * passed. */
int mfd__tp_poll_ms(int64_t deadline);
/* poll() one fd until it is ready for events or deadline (0: none)
 * passes, EINTR included; with stop, until *stop is set too (looked at
 * every 50 ms). >0 ready, 0 timed out, -ECANCELED stopped, -errno. */
int mfd__tp_poll_until(int fd, short events, int64_t deadline,
		       const bool *stop);
void mfd__tp_shutdown(struct mfd_conn *c);
void mfd__tp_shutdown_read(struct mfd_conn *c);
/* From any thread: the packets that follow are refused (-ECANCELED), so
 * that the owner's thread can still send its last words (MFD_SEND_LAST)
 * once the packet it is sending is whole; a read is woken by a shutdown
 * of reads. A send in progress is let finish: one blocked on a peer that
 * reads no more needs mfd__tp_shutdown(). */
void mfd__tp_stop_sends(struct mfd_conn *c);
void mfd__tp_revoke(struct mfd_conn *c);
void mfd__tp_close(struct mfd_conn *c);
void mfd__tp_listener_wake(struct mfd_listener *l);
void mfd__tp_listener_close(struct mfd_listener *l);

/*
 * The sentence for a recv or send that set_timeout's deadline cut short,
 * into err: "no data for N ms" or "send stalled for N ms" only when none
 * of the call's total bytes moved, else how many of them did (moved:
 * "arrived", "went out", "posted"). detail, when not NULL, says more
 * (what an RDMA send waited for).
 */
void mfd__tp_deadline_text(char *err, size_t errlen, bool send, unsigned ms,
			   size_t done, size_t total, const char *moved,
			   const char *detail);

/* Convenience: send or receive one plain buffer. */
/* Whether the peer closed or reset c, seen without reading. With
 * `quiet` nothing may come on c now (the receiver after the END), so
 * bytes waiting are the peer giving up too (its ABORT before its close;
 * a transport that cannot see them, rdma, only sees the close). */
bool mfd__tp_peer_gone(struct mfd_conn *c, bool quiet);
int mfd__tp_send_buf(struct mfd_conn *c, const void *buf, size_t len);
int mfd__tp_recv_buf(struct mfd_conn *c, void *buf, size_t len);

#endif
