/* SPDX-License-Identifier: MIT */
/*
 * multifd.h - move memory pages between hosts over many parallel channels.
 *
 * The only header applications include. Every function that can fail
 * returns 0 or a negative errno value; constructors return int and fill an
 * out-pointer. After a failure, mfd_session_error() holds a sentence that
 * says what went wrong, naming the channel where one was involved.
 *
 * Threads: a session is driven by one application thread (the "owner").
 * Calls on one session are not thread-safe unless a function says
 * otherwise; the library runs one thread per channel internally.
 * Different sessions are independent.
 */
#ifndef MULTIFD_H
#define MULTIFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MFD_BUILDING_LIBRARY) && defined(__GNUC__)
#define MFD_EXTERN __attribute__((visibility("default")))
#else
#define MFD_EXTERN
#endif

#define MFD_VERSION_STRING "0.1.0"
#define MFD_MAX_CHANNELS 64
#define MFD_MAX_ENDPOINTS 8 /* URIs in one session's list */
#define MFD_MAX_REGIONS 256
#define MFD_MAX_REGION_NAME 255

/* How a batch of pages becomes bytes on the wire. */
enum mfd_method {
	MFD_METHOD_NONE = 0,
	MFD_METHOD_ZLIB = 1,
	MFD_METHOD_ZSTD = 2,
};

enum mfd_role {
	MFD_ROLE_SEND = 1,
	MFD_ROLE_RECV = 2,
};

struct mfd_session;

/*
 * Called on the receiver, from the thread inside mfd_recv_wait(), when the
 * sender announces a region the receiver has not added. Fill *mem with
 * page-aligned memory of `length` bytes that stays valid until the session
 * is freed, and set *zeroed when that memory is known to read as zeros
 * (fresh anonymous memory, a new file), which lets the receiver skip
 * clearing zero pages it never wrote. Return 0, or a negative errno to
 * refuse the region (the session then fails with that error, and the
 * sender is told; call mfd_session_set_error() first to say why in words).
 * `name` is 1..255 printable ASCII characters (0x20..0x7e): the receiver
 * refuses any other name at the handshake.
 */
typedef int (*mfd_region_cb)(void *opaque, const char *name, uint64_t length,
			     void **mem, bool *zeroed);

/*
 * Called on the receiver, from one of the threads that run its
 * handshakes while mfd_recv_wait() waits for the sender's channels, one
 * call at a time (never two at once), with a sentence saying why a
 * connection was refused at the handshake (a stray, a failed
 * authentication); the session goes on.
 */
typedef void (*mfd_log_cb)(void *opaque, const char *msg);

/*
 * Called on the receiver, from one of its channel threads while the others
 * wait, once every page and blob of the session is in place (and with
 * verify, the digests matched), before the receiver confirms the end to
 * the sender: make the result durable and visible (fsync, rename). Return
 * 0, or a negative errno with a sentence in err (errlen bytes): the
 * session then fails on both ends with it, and the sender reports it
 * instead of success. The sender waits for that confirmation meanwhile,
 * kept waiting by keep-alives however long the commit takes; one that
 * left all the same (killed) is told by mfd_recv_sender_present(), to ask
 * between the durable and the visible step.
 */
typedef int (*mfd_commit_cb)(void *opaque, char *err, size_t errlen);

/*
 * Called on the receiver with a blob (mfd_send_blob()): `len` bytes at
 * `data`, valid only during the call, and its name (1..255 printable
 * ASCII characters). It runs on one of the session's channel threads at
 * the end of the round the blob was sent in: every page of that round is
 * in place and no page of the next is applied until it returns, so the
 * memory reads exactly as the sender's round left it. The blobs of a
 * round come one after another, in the order they were sent, each once.
 * Return 0, or a negative errno to fail the session (say why with
 * mfd_session_set_error() first). Do not call the session's functions
 * from it, except mfd_session_set_error().
 */
typedef int (*mfd_blob_cb)(void *opaque, const char *name, const void *data,
			   uint64_t len);

/*
 * Session configuration. Start from mfd_config_init(), which fills the
 * defaults noted beside each field, then change what you need.
 *
 * The struct grows at its end from version to version: `size` records
 * how large the caller's copy is (mfd_config_init() sets it), so that a
 * library newer than the program reads only the fields the program knows
 * and takes the defaults for the rest, and an older library refuses a
 * newer program's fields only when it sets them.
 */
struct mfd_config {
	size_t size;		/* sizeof(struct mfd_config) where the caller
				   was built; set by mfd_config_init() */
	const char *uri;	/* tcp:HOST:PORT, unix:PATH, rdma:HOST:PORT,
				   or fd:N[,N...]: connected stream sockets
				   the caller opened, one per channel (the
				   sender's channels must equal their
				   number; each end may list them in any
				   order, since each channel names itself
				   in its handshake). The session works on
				   duplicates, which mfd_session_new()
				   takes: close yours once it returned
				   (a closed one is refused there) */
	unsigned channels;	/* 1..MFD_MAX_CHANNELS; default 2. The
				   receiver learns it from the sender and
				   ignores this field. */
	enum mfd_method method;	/* default MFD_METHOD_NONE */
	int level;		/* compression level; 0 picks the method's
				   default (zlib 1..9, zstd -7..19) */
	uint32_t page_size;	/* power of two 512..65536; default 4096 */
	uint32_t pages_per_packet; /* 1..1024, and page_size times this at
				      most 4 MiB; default 0: 128, or as
				      many as make 4 MiB for pages over
				      32 KiB */
	bool zero_page_detection; /* default true: zero pages travel as
				     offsets only */
	bool zero_copy;		/* tcp: with method none only: pages are sent
				   with MSG_ZEROCOPY. See mfd_send_sync().
				   rdma: ignored, pages are never copied. */
	unsigned timeout_ms;	/* connect, handshake and any stall of a
				   channel; 0 waits forever; default 30000.
				   Every send and receive completes within
				   it from its start, however the bytes
				   trickle. Both ends tell each other theirs
				   at the handshake, and the sender's idle
				   channels (also those waiting for their
				   share of max_bandwidth) send keep-alives
				   every third of the stricter one, so
				   pauses between rounds are not stalls.
				   A receiver's handshake with one
				   connection takes at most 5 s (or this,
				   when shorter), also with 0 */
	uint64_t max_bandwidth;	/* sender: bytes per second on the wire over
				   all channels together; 0 = no limit
				   (postcopy's answers go ahead of it) */
	mfd_region_cb region_cb; /* receiver only, may be NULL */
	void *region_opaque;
	mfd_log_cb log_cb;	/* receiver only, may be NULL */
	void *log_opaque;
	/* A shared secret of at least 16 bytes (copied): every channel
	   proves knowledge of it both ways at the handshake, HMAC-SHA256
	   over fresh nonces. A receiver with a secret refuses channels
	   without one. NULL (with secret_len 0): no authentication. */
	const void *secret;
	size_t secret_len;
	bool checksum;		/* sender: an xxHash3-64 of every page packet,
				   checked by the receiver; default false.
				   The pages are copied first and the copy
				   is hashed and sent, so pages rewritten
				   meanwhile never fail it (over rdma: the
				   copy goes by SEND, not by one-sided
				   WRITE) */
	bool prefault;		/* receiver: fault zeroed regions in from a
				   thread of their own, ahead of the data, so
				   that channel threads do not stall on first
				   touches; makes the whole region resident,
				   zero pages included; default false */
	bool verify;		/* sender: at the end, compare a digest of
				   every region on both sides; the session
				   succeeds only when all are identical.
				   Hashing takes about 0.1 s per GiB on each
				   side and must fit in timeout_ms */
	/* Receiver policy: a receiver adopts what its sender proposes
	   unless these bound it; a sender outside them is refused at the
	   handshake with a sentence that names the value and the bound
	   (the sender reports it as the receiver's refusal). Defaults:
	   accept anything. */
	unsigned accept_max_channels; /* 0: up to MFD_MAX_CHANNELS */
	unsigned accept_methods;	/* bit (1u << method) per accepted
					   method; 0: every built-in one */
	uint32_t accept_max_page_size;	/* 0: any (up to 65536) */
	bool require_checksum;	/* refuse senders without checksum */
	bool require_verify;	/* refuse senders without verify */
	/* The one process-wide setting the library makes: at the first
	   mfd_session_start() it installs a SIGBUS handler (chained to the
	   one before it; faults outside its channels' work go there), so
	   that a region whose file shrinks or fills its disk fails the
	   session with a sentence instead of killing the process. true:
	   install nothing; such a fault then kills the process as it would
	   without the library. Default false. */
	bool no_sigbus_handler;
	/* Receiver: where blobs go (mfd_send_blob()); NULL: a sender's
	   blob fails the session, saying so. */
	mfd_blob_cb blob_cb;
	void *blob_opaque;
	/* Receiver: the most bytes of blobs held at once, between the
	   arrival of their first piece and the end of their round; a blob
	   that does not fit fails the session before anything is
	   allocated for it. Default 256 MiB; at most 1 TiB. */
	uint64_t max_blob_bytes;
	/* TLS 1.3 on every channel (tcp:, unix:, fd:; refused with rdma:,
	   whose one-sided writes no TLS record covers; with zero_copy, kTLS
	   encrypts straight from the pages and userspace TLS copies, each
	   such send counted in zerocopy_fallbacks).
	   The whole multifd handshake runs inside it. Either x509: all of
	   tls_cert and tls_key (this end's certificate chain and key) and
	   tls_ca (the CAs the peer's certificate must chain to), PEM file
	   paths (copied); each end verifies the other's certificate, and
	   the sender also checks that the receiver's carries the name
	   tls_hostname, or the URI's host when it is NULL (tcp: only:
	   unix: and fd: need tls_hostname). Or tls with a secret: a TLS
	   1.3 external pre-shared key derived from the secret, no
	   certificates. The kernel encrypts where it can (kTLS; see
	   struct mfd_stats). Both ends must agree: a TLS end refuses a
	   plaintext peer with a sentence saying so. Default: no TLS. */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
	const char *tls_hostname; /* sender, x509 */
	bool tls;		  /* PSK mode: needs secret */
	/* Sender: offer postcopy, so that mfd_send_postcopy() may switch
	   the session (the receiver follows its sender; it needs Linux
	   userfaultfd and the right to use it, root or
	   vm.unprivileged_userfaultfd). The session opens one more
	   connection, the urgent channel, for page requests and their
	   answers. tcp: and unix: only: rdma: and fd: refuse it, and so
	   does TLS (mfd_session_new(), -ENOTSUP). Default false. */
	bool postcopy;
	/* Receiver: commit the result before the sender is told it
	   succeeded (mfd_commit_cb); NULL: nothing to commit. */
	mfd_commit_cb commit_cb;
	void *commit_opaque;
	/* Sender: failover (tcp:, unix:, fd:; not with postcopy). A
	   channel whose connection fails (an error, a reset, a stall past
	   the timeout) is retired, what it carried in its round is sent
	   again on the others, and the session goes on while at least
	   min_channels remain. 0 (the default): the first failed channel
	   fails the session. The receiver follows the sender's choice. */
	unsigned min_channels;
};

/*
 * Per-channel and per-session counters. The struct grows at its end: the
 * library fills as many bytes as the caller's copy has (the macros below
 * pass its size), so a program built against an older header keeps
 * working with a newer library.
 */
struct mfd_stats {
	uint64_t bytes;		/* bytes on the wire, headers included */
	uint64_t payload_bytes;	/* page bytes before compression */
	uint64_t packets;	/* page packets */
	uint64_t normal_pages;	/* pages whose content travelled */
	uint64_t zero_pages;	/* pages that travelled as offsets only */
	uint64_t raw_packets;	/* compressed methods: packets sent raw
				   because compression did not shrink them */
	uint64_t zerocopy_sends; /* MSG_ZEROCOPY sends completed ... */
	uint64_t zerocopy_copied; /* ... of which the kernel copied anyway */
	uint64_t zerocopy_fallbacks; /* sends that fell back to copying
					after ENOBUFS */
	uint64_t rounds;	/* syncs completed */
	uint64_t cpu_ns;	/* CPU time of the channel threads */
	uint64_t rejected_connections; /* receiver: connections refused at
					  the handshake (strays, bad init) */
	double seconds;		/* from start (a receiver: from its
				   sender's first channel) to finish (or
				   to now) */
	/* rdma: wall time the session spent registering (pinning) its
	 * regions for the transport, and how many bytes; 0 elsewhere */
	double register_seconds;
	uint64_t register_bytes;
	uint64_t inline_packets; /* rdma: page packets whose header (and
				    offsets) went inline with the SEND */
	uint64_t blobs;		/* blobs sent, or delivered */
	uint64_t blob_bytes;	/* their bytes before compression */
	/* TLS (per channel 0 or 1; totals: how many channels): channels
	   that run inside TLS, and of those the ones whose sending /
	   receiving direction the kernel encrypts (kTLS) rather than
	   OpenSSL in userspace */
	uint64_t tls_channels;
	uint64_t ktls_send_channels;
	uint64_t ktls_recv_channels;
	/* Postcopy (mfd_send_postcopy()). Receiver: page requests sent;
	 * pages placed by an answer to a request and pages placed by the
	 * stream after the switch (a page is counted by the copy that
	 * placed it first: later copies are dropped); the time from a
	 * fault to its page being placed, in microseconds, over every
	 * request answered so far (0 without any). Sender: requests
	 * served and pages sent in their answers, pages streamed after
	 * the switch; no latencies. Session totals only: a channel's
	 * statistics carry its stream pages. */
	uint64_t postcopy_requests;
	uint64_t postcopy_demand_pages;
	uint64_t postcopy_stream_pages;
	double postcopy_latency_p50_us;
	double postcopy_latency_p90_us;
	double postcopy_latency_p99_us;
	double postcopy_latency_max_us;
	uint64_t landed_packets; /* rdma, sender: packets whose compressed
				    payload went as one RDMA WRITE into the
				    receiver's landing slot, not as SENDs */
	/* Failover (min_channels): channels retired (per channel: 1 for a
	 * retired one), and the pages and bytes the sender sent again on
	 * the others for them (session totals only) */
	uint64_t channels_lost;
	uint64_t resent_pages;
	uint64_t resent_bytes;
	uint64_t resent_packets; /* ... and in how many packets */
};

/* Fill *cfg with the defaults; size is sizeof(*cfg). Call it through the
 * macro, which passes the size of the struct the caller was built with. */
MFD_EXTERN void mfd_config_init_sized(struct mfd_config *cfg, size_t size);
#define mfd_config_init(cfg) mfd_config_init_sized((cfg), sizeof(*(cfg)))

/*
 * Create a session for `role` from *cfg (copied; cfg->uri is copied too).
 * Checks the configuration and fills *out; nothing is connected yet.
 * On failure *out is NULL and, where possible, the reason is in *errbuf
 * (may be NULL) of errlen bytes.
 */
MFD_EXTERN int mfd_session_new(const struct mfd_config *cfg,
			       enum mfd_role role, struct mfd_session **out,
			       char *errbuf, size_t errlen);

/*
 * Declare a region before mfd_session_start(). On the sender it is sent
 * with the session; on the receiver it is where the sender's region of the
 * same name lands (the lengths must match). `mem` must be aligned to the
 * page size (or to 4 KiB for larger pages) and `length` a multiple of the
 * page size. `zeroed` as in mfd_region_cb. On a receiver with a
 * region_cb, mem NULL and length 0 declare a region the sender must send,
 * created by the callback once its size is announced: a sender that does
 * not send it is refused at the handshake. The name is 1..255 printable
 * ASCII characters. Returns the region's index (>= 0) or a negative errno.
 */
MFD_EXTERN int mfd_session_add_region(struct mfd_session *s, const char *name,
				      void *mem, uint64_t length, bool zeroed);

/*
 * Sender: say that region `region` (an index from mfd_session_add_region())
 * is a MAP_SHARED mapping of the regular file fd from byte `offset` (a
 * multiple of the page size). Where the library does not read the pages
 * itself (method none, zero_page_detection off, no checksum) and the
 * transport can (tcp: and unix: without TLS; not fd:, whose sockets are
 * the caller's and would have to become non-blocking), its pages then
 * leave from the page cache with sendfile(): no page-table work and no
 * copy on this end (half the sender's CPU in the README's figures; with
 * zero_copy, there is nothing left for MSG_ZEROCOPY to do). Elsewhere,
 * and for pages sent
 * staged or from a stable copy, the mapping is used as before; it must
 * still be the region's memory. Pages follow the rules of
 * mfd_send_pages(). The session duplicates fd and closes its duplicate
 * in mfd_session_free(). Call it before mfd_session_start(). Returns 0;
 * -EINVAL on a receiver, for a bad index or offset, or a descriptor that
 * is not a regular file; -ERANGE when the file does not hold the region
 * from `offset`; -EBUSY once started.
 */
MFD_EXTERN int mfd_session_region_file(struct mfd_session *s, int region,
				       int fd, uint64_t offset);

/*
 * Sender: connect every channel and complete the handshake (the receiver
 * accepts the region table). Receiver: bind and listen, then return, so
 * that mfd_session_uri() gives the bound address (useful with port 0);
 * the channels are accepted by mfd_recv_wait().
 */
MFD_EXTERN int mfd_session_start(struct mfd_session *s);

/* The URI the session is bound or connected to, with the real port (a
 * list, comma-separated, for several endpoints). */
MFD_EXTERN const char *mfd_session_uri(const struct mfd_session *s);

/*
 * Several endpoints: a URI may list up to MFD_MAX_ENDPOINTS, separated by
 * commas ("tcp:10.0.0.2:4444,tcp:10.0.1.2:4444"; tcp:, unix: and rdma:
 * mix, fd: stands alone); channel i goes to endpoint
 * i % n, and each full batch to whichever channel is idle, so a faster
 * link carries more. How many endpoints, endpoint k's URI (on a started
 * receiver: where it listens), and the endpoint channel `channel` was
 * made to or accepted on (-EINVAL before it is).
 */
MFD_EXTERN unsigned mfd_session_endpoints(const struct mfd_session *s);
MFD_EXTERN const char *mfd_session_endpoint(const struct mfd_session *s,
					    unsigned k);
MFD_EXTERN int mfd_channel_endpoint(const struct mfd_session *s,
				    unsigned channel);

/*
 * Memory that faults. A region may be a file mapping that faults when the
 * file shrinks or its file system is full. mfd_session_start() installs a
 * SIGBUS handler (once per process, chained to the one installed before
 * it) so that such a fault in a channel thread fails that session with
 * -EFAULT and a sentence naming the region and the offset, instead of
 * killing the process. A SIGBUS anywhere else goes to the previous
 * handler. An application that installs its own SIGBUS handler after
 * mfd_session_start() should chain to the one it replaces.
 *
 * Pages that change while they are sent (live precopy) arrive as either
 * content, or a mix of both with method none; the next round's copy of
 * a dirtied page mends it, and no change of a page makes a session fail.
 * Compressed methods and checksums read a per-channel copy of the pages.
 */

/*
 * Sender: queue pages of region `region` (an index from
 * mfd_session_add_region()) by byte offset. Offsets must be page-aligned
 * and inside the region. Pages are grouped into packets of
 * pages_per_packet and handed to idle channels; the call blocks while all
 * channels are busy. A page queued here may be read by a channel thread
 * at any time until mfd_send_sync() returns: do not rewrite it before.
 */
MFD_EXTERN int mfd_send_pages(struct mfd_session *s, int region,
			      const uint64_t *offsets, size_t count);

/* Sender: queue every page of a region (a first, full round). */
MFD_EXTERN int mfd_send_region(struct mfd_session *s, int region);

/*
 * Sender: say that the pages of [offset, offset + length) of a region read
 * zero, without reading them (the holes of a sparse file, which reading
 * would allocate): one packet of 64 bytes whatever the length, on the next
 * idle channel. Both must be multiples of the page size. The receiver
 * clears each such page only where it may hold other data, and gives the
 * range back to the file behind a shared mapping (a hole stays a hole).
 * A page is named at most once per round, by this or mfd_send_pages().
 */
MFD_EXTERN int mfd_send_zero_range(struct mfd_session *s, int region,
				   uint64_t offset, uint64_t length);

/*
 * Sender: send the pages whose bit is set in `bitmap` (bit i of word
 * i / 64 is page i of the region; the caller owns the bitmap) and clear
 * each bit it queued. This is one step of precopy: send all, then resend
 * what was dirtied, round after round. The caller must not set bits
 * concurrently unless it does so with atomic operations: the bits are
 * cleared with an atomic exchange per word. *queued (may be NULL) gets the
 * number of pages queued. A bitmap in a file mapping that shrank (SIGBUS
 * on reading it) fails the session with -EFAULT and a sentence naming the
 * bitmap, unless no_sigbus_handler is set.
 */
MFD_EXTERN int mfd_send_dirty(struct mfd_session *s, int region,
			      uint64_t *bitmap, uint64_t *queued);

/*
 * Sender: send `len` bytes at `data` as a blob named `name` (device
 * state, a checkpoint's metadata: 1..255 printable ASCII characters)
 * beside the pages of the current round: compressed by the session's
 * method, in pieces of up to pages_per_packet pages spread over the
 * channels like pages. The receiver hands it whole to its blob_cb at the
 * end of this round (see mfd_blob_cb), after the blobs sent before it.
 * `data` must stay valid and unchanged until the next mfd_send_sync()
 * (or mfd_send_finish()) returns. The receiver bounds what it holds
 * (max_blob_bytes): a larger blob fails the session there.
 */
MFD_EXTERN int mfd_send_blob(struct mfd_session *s, const char *name,
			     const void *data, uint64_t len);

/*
 * Sender: end the current round. Every channel sends what it holds,
 * waits for its zero-copy sends to complete, and sends a SYNC packet; the
 * call returns when all of that is done. The receiver applies every page
 * of this round before any page of the next. When it returns, the pages
 * sent so far are no longer referenced by the library (also with
 * zero-copy) and the caller may rewrite them. It does not wait for the
 * receiver (but with min_channels, or over a one-sided transport): a
 * receiver that failed while what it was sent still fit in the sockets
 * is found by a later call, mfd_send_finish() at the latest.
 */
MFD_EXTERN int mfd_send_sync(struct mfd_session *s);

/*
 * Sender: the figures of one completed round (rounds end at each
 * mfd_send_sync(), the last at mfd_send_finish()), for deciding when to
 * stop iterating. The struct grows at its end, like struct mfd_stats.
 */
struct mfd_round_stats {
	uint64_t round;		/* 0, 1, ... */
	uint64_t pages;		/* pages the round named, zero ones too */
	uint64_t bytes;		/* bytes on the wire */
	double seconds;		/* from the previous round's end (or the
				   session's start) to this one's */
	double bytes_per_s;	/* bytes / seconds */
	uint64_t dirty_pages;	/* pages mfd_send_dirty() found in it */
	double dirty_pages_per_s; /* those over the time since the previous
				     round's first mfd_send_dirty() (or
				     its start, for a round without one:
				     mfd_send_region()) */
	double projected_downtime_s; /* what stopping after this round
					would take: the pages dirtied
					during it at that rate, sent at
					its bandwidth */
	/* Since 0.2: from the round's first packet handed to a channel
	   (its sync, for a round of nothing) to its end, without the
	   caller's pauses between rounds (or the handshake, for round
	   0); and the rate over that: the link's, where bytes_per_s is
	   the caller's */
	double send_seconds;
	double send_bytes_per_s;
};

/* Round `round`'s figures; -ENOENT when it has not completed. Thread-safe.
 * Call it through the macro. */
MFD_EXTERN int mfd_round_stats_sized(const struct mfd_session *s,
				     unsigned round,
				     struct mfd_round_stats *st, size_t size);
#define mfd_round_stats(s, round, st) \
	mfd_round_stats_sized((s), (round), (st), sizeof(*(st)))

/*
 * Sender: end the session: a final sync, an END packet on every channel,
 * and a wait for the receiver's acknowledgement that every page is in
 * place. Returns 0 only when the receiver confirmed.
 */
MFD_EXTERN int mfd_send_finish(struct mfd_session *s);

/*
 * Postcopy: the receiver runs on its memory before every page has
 * arrived; a page it touches that has not arrived yet is fetched on
 * demand. The sender (cfg.postcopy) sends precopy rounds as usual, then:
 *
 * Sender, owner thread: stop every writer of the regions first (no page
 * may change from here on), then call mfd_send_postcopy() with the
 * final dirty set: bitmaps[i] (in the layout of mfd_send_dirty(); NULL
 * for none) names the pages of region i whose content the receiver
 * does not hold, those dirtied since they were last sent and those
 * never sent. The call ends the current round (every page sent so far
 * is in place on the receiver before the switch), tells the receiver
 * these pages, which it drops and puts under userfaultfd, and streams
 * them on the channels in region order, while a thread of the library
 * answers the receiver's page requests on the urgent channel first
 * (the page asked for and up to 7 following ones not sent yet). It
 * returns once every named page was sent; the session then takes only
 * mfd_send_finish() (other calls return -EINVAL), which returns 0 once
 * the receiver holds every page. The bitmaps are read during the call,
 * never changed nor kept. -EINVAL without cfg.postcopy, a bitmap bit
 * past the region's end, or pages smaller than the system's; -EALREADY
 * on a second call.
 *
 * Receiver: mfd_recv_wait() runs as always (the owner thread) and
 * returns 0 once every page is in place and the regions are no longer
 * under userfaultfd. The regions must be private anonymous memory
 * (mmap MAP_PRIVATE | MAP_ANONYMOUS) or a shared mapping of shmem (a
 * memfd or a tmpfs file, MAP_SHARED: the pages still to come are
 * punched out of the file, and no other process may touch the file
 * until mfd_recv_wait() returns); a region of another kind fails the
 * session at the switch. Once its sender offers postcopy, the receiver
 * advises its regions MADV_NOHUGEPAGE before the first page arrives, as
 * QEMU's destination does: a single page dropped out of a transparent
 * huge page frees nothing until the kernel splits it, so the stale
 * pages would stay allocated beside the stream's (memory already in
 * huge pages keeps them). The advice stays after the session: an
 * application that wants huge pages there again advises MADV_HUGEPAGE
 * itself (QEMU does, once postcopy ended). Do not run on the memory before the switch:
 * from another thread, mfd_recv_postcopy_wait() returns 0 once the
 * switch is done (from then on the memory may be read and written by
 * any thread; a touch of a page still missing blocks that thread until
 * the page is in place, usually well under a millisecond), 1 when the
 * session completed without a switch (every page is in place), or the
 * session's error when it failed first; -ETIMEDOUT after timeout_ms
 * (0: no limit). Thread-safe; may be called before mfd_recv_wait().
 *
 * Failure during postcopy (a dead sender or link, a cancel, a bad
 * packet): the session fails within its timeout as always, and at once
 * the regions leave userfaultfd, so no thread stays blocked on a
 * missing page: each missing page then reads as zeros. The memory is
 * incomplete, neither the sender's old nor its new content: the
 * application must not go on running on it. The pages sent before the
 * switch are in place; the sender still holds every page.
 */
MFD_EXTERN int mfd_send_postcopy(struct mfd_session *s,
				 const uint64_t *const *bitmaps);
MFD_EXTERN int mfd_recv_postcopy_wait(struct mfd_session *s,
				      unsigned timeout_ms);

/*
 * Receiver: accept the sender's channels, receive until the sender
 * finishes, and return 0 once every page is in place, or a negative errno
 * (mfd_session_error() says why). Connections that fail the handshake are
 * closed and do not disturb the session.
 */
MFD_EXTERN int mfd_recv_wait(struct mfd_session *s);

/*
 * Receiver, from inside its mfd_commit_cb, before it makes the result
 * visible (after a long write-out, just before the renames): 0 while the
 * sender still waits for the end to be confirmed, -EPIPE once it is seen
 * to have left (it gave up at its timeout, or died): the commit should
 * then leave the old result as it was and return an error, since the
 * sender will never hear that it succeeded and reports a failure. Only a
 * look at the connections without waiting, not a promise: the sender can
 * still leave just after. With failover, the sender has left when every
 * live channel closed; over rdma only its close is seen. The session's
 * error when it failed meanwhile (a cancel does not count there);
 * -EINVAL outside a receiver's commit.
 */
MFD_EXTERN int mfd_recv_sender_present(struct mfd_session *s);

/*
 * Ask a running session to stop: blocked calls return -ECANCELED soon.
 * Thread-safe, and async-signal-safe enough to call from another thread
 * (not from a signal handler). On a receiver whose every page is in place
 * and whose commit (mfd_commit_cb) has begun, it is too late and does
 * nothing: the session ends as the commit does, on both ends.
 */
MFD_EXTERN void mfd_session_cancel(struct mfd_session *s);

/*
 * mfd_session_cancel() with a reason in the caller's words, such as "it
 * was stopped by a signal (SIGTERM)": mfd_session_error() says it, and
 * the peer's session fails with "the receiver failed: REASON" (or "the
 * sender failed: REASON") instead of "... failed: cancelled".
 * The text is copied (up to the error message's size); NULL or "" is
 * "cancelled". Only the first failure of a session counts: a reason given
 * after another failure is dropped. Thread-safe as mfd_session_cancel().
 */
MFD_EXTERN void mfd_session_cancel_reason(struct mfd_session *s,
					  const char *reason);

/* Totals over all channels, into the first size bytes of *st. Thread-safe;
 * counters may lag by a packet. Call it through the macro. */
MFD_EXTERN void mfd_session_stats_sized(const struct mfd_session *s,
					struct mfd_stats *st, size_t size);
#define mfd_session_stats(s, st) \
	mfd_session_stats_sized((s), (st), sizeof(*(st)))

/* Counters of one channel; -EINVAL for a bad index. Thread-safe. */
MFD_EXTERN int mfd_channel_stats_sized(const struct mfd_session *s,
				       unsigned channel, struct mfd_stats *st,
				       size_t size);
#define mfd_channel_stats(s, channel, st) \
	mfd_channel_stats_sized((s), (channel), (st), sizeof(*(st)))

/* The number of channels (on the receiver, known after the handshake). */
MFD_EXTERN unsigned mfd_session_channels(const struct mfd_session *s);

/* The session's method (on the receiver, known after the handshake). */
MFD_EXTERN enum mfd_method mfd_session_method(const struct mfd_session *s);

/* The session's page size in bytes (on the receiver, the sender's, known
 * after the handshake): what a page of mfd_stats counts. Since 0.2. */
MFD_EXTERN uint32_t mfd_session_page_size(const struct mfd_session *s);

/* Region lookup on either side, after the handshake on the receiver. */
MFD_EXTERN int mfd_session_region_count(const struct mfd_session *s);
MFD_EXTERN int mfd_session_region_info(const struct mfd_session *s, int region,
				       const char **name, void **mem,
				       uint64_t *length);

/*
 * From inside a callback (mfd_region_cb), before it returns an error: the
 * sentence that says why, in place of the errno's text, in the session's
 * error and in the refusal the sender gets.
 */
MFD_EXTERN void mfd_session_set_error(struct mfd_session *s, const char *fmt,
				      ...) __attribute__((format(printf, 2, 3)));

/* The session's failure as a sentence; while it runs and has not failed,
 * the reason of the last call refused for its arguments (which fails
 * nothing); "" when there is neither, and once the session succeeded
 * (a cancel after that does nothing; a call refused after it says why
 * again). Valid until free. */
MFD_EXTERN const char *mfd_session_error(const struct mfd_session *s);

/* Stop every thread, close every channel and free. Takes NULL. A sender
 * whose session failed first lets each channel finish the packet it is
 * sending and tell the receiver why, for at most 500 ms. */
MFD_EXTERN void mfd_session_free(struct mfd_session *s);

/* Name of a method ("none", "zlib", "zstd"), NULL for an unknown one. */
MFD_EXTERN const char *mfd_method_name(enum mfd_method m);

/* Method by name; -EINVAL when unknown, -ENOTSUP when not built in. */
MFD_EXTERN int mfd_method_parse(const char *name, enum mfd_method *m);

/* Library version, "MAJOR.MINOR.PATCH". */
MFD_EXTERN const char *mfd_version(void);

#ifdef __cplusplus
}
#endif
#endif /* MULTIFD_H */
