/* SPDX-License-Identifier: MIT */
/*
 * session.h - the session and channel structures shared by the session
 * core, the send engine and the receive engine.
 */
#ifndef MFD_SESSION_H
#define MFD_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "multifd.h"
#include "blob.h"
#include "method.h"
#include "postcopy.h"
#include "ratelimit.h"
#include "rounds.h"
#include "transports/transport.h"

/* What a sender channel thread is asked to do next. */
enum mfd_job {
	MFD_JOB_NONE = 0, /* idle */
	MFD_JOB_PAGES,
	MFD_JOB_ZERO_RANGE,
	MFD_JOB_BLOB,
	MFD_JOB_SYNC,
	MFD_JOB_VERIFY,
	MFD_JOB_END,
	MFD_JOB_POSTCOPY, /* the switch: ends the round like a SYNC */
};

struct mfd_channel {
	/* Immutable after setup. */
	struct mfd_session *s;
	unsigned index;
	struct mfd_conn *conn;
	pthread_t thread;
	void *(*main_fn)(void *); /* the role's channel loop, given ch */
	bool thread_started;
	bool thread_done; /* sender: it returned; protected by s->lock */

	/* Sender: protected by s->lock. The owner fills a job (it swaps its
	 * batch buffer with job_offsets, so no offset is copied) and the
	 * channel thread sets job back to MFD_JOB_NONE when done. This is
	 * also the record of the batch in flight on this channel. */
	pthread_cond_t job_cond;
	enum mfd_job job;
	uint64_t *job_offsets;
	uint32_t job_count;
	uint64_t job_range_offset; /* MFD_JOB_ZERO_RANGE */
	uint64_t job_range_length;
	/* MFD_JOB_BLOB: one piece of a blob (the caller's bytes) */
	const uint8_t *job_blob_data;
	struct mfd_blob_desc job_blob;
	uint32_t job_region;
	uint32_t job_round;
	uint64_t job_packet_num;
	/* Failover, protected by s->lock: the channel is retired, why (a
	 * sentence), and (sender) the receiver reported it lost at this
	 * barrier; (receiver) how many of s->lost_order it has reported */
	bool lost;
	bool reported;
	char fate[200];
	unsigned lost_told;
	bool end_as_sync; /* sender: the receiver answered END as a sync */
	/* Sender, with failover, by the owner thread: what the channel was
	 * given in the current round, to send again should the receiver
	 * lose it (failover.c) */
	struct mfd_ledger *ledger;

	/* Only the channel thread touches these. */
	struct mfd_mctx mctx;
	struct mfd_packet pkt;
	uint32_t round; /* receiver: the round this channel is in */
	/* sender: a copy of the packet's pages, read by the method and the
	 * checksum instead of pages that may change meanwhile (or NULL) */
	uint8_t *stable;
	/* receiver: where STAGED payloads land (or NULL until one does) */
	uint8_t *staging;
	/* sender: a blob piece, copied and padded to whole pages (or NULL
	 * until one is sent) */
	uint8_t *blob_buf;
	/* receiver, after the postcopy switch: a packet's offsets, and its
	 * pages received side by side before they are placed atomically
	 * (NULL until the switch) */
	uint64_t *pc_offsets;
	uint8_t *pc_buf;

	/* Written by the channel thread with relaxed atomics, read by
	 * anyone (mfd_channel_stats). */
	struct mfd_stats st;
};

/* One endpoint of a session's URI list ("tcp:A:4444,tcp:B:4444"). */
struct mfd_endpoint {
	struct mfd_uri uri;
	/* the transport, or the tls layer over it */
	const struct mfd_transport_ops *tp;
	void *tp_state; /* uri.session_state points here */
	struct mfd_listener *listener; /* receiver, once started (lock) */
};

struct mfd_session {
	/* Immutable after mfd_session_start() (receiver: after the
	 * handshake, before the channel threads start). */
	enum mfd_role role;
	struct mfd_config cfg;
	char uri[MFD_MAX_ENDPOINTS * 300]; /* cfg.uri; receiver: the bound list */
	/* the URI's endpoints; channel i uses ep[i % nep] */
	struct mfd_endpoint ep[MFD_MAX_ENDPOINTS];
	unsigned nep;
	const struct mfd_method_ops *method;
	uint64_t session_id;
	uint64_t features; /* MFD_FEAT_* of this session */
	uint8_t *secret;   /* cfg.secret, copied; wiped at free */
	struct mfd_tls_ctx *tls; /* the tls layer's, or NULL */
	char *tls_files[4]; /* cfg.tls_cert, _key, _ca, _hostname, copied */
	unsigned nchannels;
	struct mfd_channel *ch;	/* nchannels, and the urgent channel */
	struct mfd_channel *urgent; /* &ch[nchannels] with postcopy, or NULL */
	struct mfd_postcopy *pc;    /* with postcopy, or NULL */
	struct mfd_region regions[MFD_MAX_REGIONS];
	int nregions;
	/* mfd_session_region_file(): the files regions map, by region
	 * name (the receiver's table is in the sender's order only after
	 * the handshake); each fd a duplicate the session closes */
	struct timespec t_start;
	struct mfd_ratelimit ratelimit; /* sender; locks itself */
	unsigned keepalive_ms; /* after the handshake: mfd__keepalive_ms() */
	pthread_t prefault_thread;	/* receiver, cfg.prefault */
	bool prefault_started;
	bool prefault_stop; /* atomic */
	bool committing; /* receiver: inside commit_cb (atomic) */

	pthread_mutex_t log_lock; /* receiver: one cfg.log_cb call at a time */
	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t idle_cond; /* sender: a channel became idle */
	pthread_cond_t barrier_cond;
	bool cancel_too_late; /* receiver: its END passed whole, the commit
				 began (mfd__session_fail) */
	bool completed; /* it succeeded: a later cancel does nothing */
	pthread_cond_t pc_cond; /* the postcopy switch is done, or the end */
	bool failed;
	bool peer_failed; /* the failure is the peer's, which said why */
	int err;
	char errmsg[400];
	unsigned barrier_count; /* receiver: channels at the barrier */
	uint64_t barrier_gen;
	uint8_t barrier_type;
	uint32_t barrier_round;
	struct timespec t_end; /* zero until finished */
	uint64_t rejected; /* connections refused at the handshake */
	char last_refusal[300]; /* why the last of them was refused */
	uint64_t reg_ns, reg_bytes; /* the transport's registrations */
	char verify_msg[300]; /* receiver: why the digests differ or the
				 commit failed, or "" */
	int commit_err; /* receiver: what a failed commit returned, or 0 */
	bool verified;	      /* receiver: the VERIFY packet arrived */
	uint64_t sent_digest[MFD_MAX_REGIONS]; /* receiver: VERIFY's */
	uint64_t rounds;      /* receiver: rounds every channel completed */
	/* Failover: channels not retired; receiver: the retired ones in
	 * the order they went, and whether one went since the last
	 * barrier (which then cannot be the end: protocol.md 15) */
	unsigned nlive;
	unsigned lost_order[MFD_MAX_CHANNELS];
	unsigned nlost;
	bool lost_since_barrier;
	bool barrier_as_sync; /* the last END barrier passed as a sync */
	uint64_t resent_pages, resent_bytes, resent_packets; /* sender;
								 atomic */
	struct mfd_rounds round_log; /* sender: each round's figures */
	struct mfd_blobs blobs; /* receiver: blobs not yet delivered */
	char cb_err[300];     /* mfd_session_set_error() from a callback */

	/* Only the owner thread touches these. */
	bool started;
	bool finished;
	uint64_t *batch; /* offsets queued for the next packet */
	uint32_t batch_n;
	int batch_region;
	uint32_t round;
	uint64_t next_packet_num;
	uint32_t next_blob_id;
	unsigned next_channel;
};

/* The receiver's default bound on blobs held, and the largest allowed. */
#define MFD_DEFAULT_MAX_BLOB_BYTES (256ull << 20)
#define MFD_MAX_BLOB_BYTES (1ull << 40)

/* Region memory must be aligned to the page size, or to 4 KiB (what mmap
 * guarantees) when pages are larger. */
static inline uint32_t mfd__mem_align(uint32_t page_size)
{
	return page_size < 4096 ? page_size : 4096;
}

/* A call refused for its arguments or the session's state: err, with
 * the sentence as mfd_session_error() until a failure of the session
 * says more (the session goes on). */
/* Whether [a, a + alen) and [b, b + blen) share a byte. */
static inline bool mfd__mem_overlap(const void *a, uint64_t alen,
				    const void *b, uint64_t blen)
{
	return (uintptr_t)a < (uintptr_t)b + blen &&
	       (uintptr_t)b < (uintptr_t)a + alen;
}

/* The first region whose memory overlaps [mem, mem + length), or -1. */
int mfd__region_overlap(const struct mfd_session *s, const void *mem,
			uint64_t length);
/* With s->lock held, when the session succeeded: later cancels do
 * nothing, and mfd_session_error() says "" (not a refused call's reason). */
void mfd__session_completed(struct mfd_session *s);
int mfd__bad_call(struct mfd_session *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the session's first error (later ones are dropped), wake every
 * waiter and shut every connection down so no thread stays blocked.
 * `channel` < 0 for an error that belongs to no channel, MFD_CANCEL_CALL
 * for the application's cancel (which can come too late). Any thread. */
#define MFD_CANCEL_CALL (-2)
void mfd__session_fail(struct mfd_session *s, int channel, int err,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A condition variable whose timed waits use CLOCK_MONOTONIC, so that a
 * step of the wall clock cannot end or stretch a wait. */
/* How long an end may leave the other without a word before it sends a
 * KEEPALIVE: a third of the stricter of both ends' timeouts (0 when
 * neither has one). The sender's idle channels, and the receiver while it
 * hashes and commits at the END. */
unsigned mfd__keepalive_ms(unsigned ours, unsigned theirs);
void mfd__cond_init(pthread_cond_t *c);

/* pthread_cond_wait for at most ms milliseconds (0: no limit) on a
 * condition variable from mfd__cond_init(); returns ETIMEDOUT when the
 * time ran out. */
int mfd__timed_wait(pthread_cond_t *c, pthread_mutex_t *m, unsigned ms);

/* A time limit over several reads: each gets what is left of it. */
struct mfd_deadline {
	unsigned limit_ms; /* 0: none */
	struct timespec end;
	const char *what;  /* what must complete: "the handshake" */
};

void mfd__deadline_start(struct mfd_deadline *d, unsigned limit_ms,
			 const char *what);
/* Milliseconds left, at least 1 while any is (0 when there is no limit
 * or it has passed: check with limit_ms). */
unsigned mfd__deadline_left(const struct mfd_deadline *d);
/* Read len bytes from c within what is left; -ETIMEDOUT with "WHAT did
 * not complete within N ms" in c->err when it ran out. */
int mfd__deadline_recv(const struct mfd_deadline *d, struct mfd_conn *c,
		       void *buf, size_t len);

/* The channel's work faulted at addr (0: a system call met the fault):
 * fail the session with a sentence naming the region and the offset. */
void mfd__fail_fault(struct mfd_session *s, struct mfd_channel *ch,
		     uintptr_t addr, bool write);

/* The peer failed the session and says why in the len bytes that follow
 * on ch (a FIN with a message, an ABORT): read them within *d and fail
 * with err and "the receiver/sender failed: ...". Returns err. Channel
 * threads. */
int mfd__peer_failed(struct mfd_session *s, struct mfd_channel *ch,
		     uint32_t len, const struct mfd_deadline *d, int err);

/*
 * A peer that fails says why (ABORT, FIN) on the channel that failed,
 * and closes the others: give that reason half a second to arrive
 * (behind the data still queued on its channel) before a closed
 * connection becomes the session's error.
 */
void mfd__wait_for_reason(struct mfd_session *s);
/* This end failed: tell the peer why on ch, in a packet of `type` (FIN
 * from the receiver, ABORT from the sender) carrying the session's
 * error; nothing when the peer failed first, or behind a packet that a
 * failed send left half written. Best effort, MFD_ABORT_GRACE_MS. */
#define MFD_ABORT_GRACE_MS 500
void mfd__tell_peer(struct mfd_session *s, struct mfd_channel *ch,
		    uint8_t type, uint32_t round);

/* The message for a fault at addr while a channel thread read (write:
 * false) or wrote region memory: the region, the offset and the likely
 * cause, into buf. */
void mfd__fault_text(const struct mfd_session *s, uintptr_t addr, bool write,
		     char *buf, size_t len);

/* The session's error code, or 0. Takes the lock. */
int mfd__session_err(struct mfd_session *s);

/* Allocate s->ch with n channels (and the urgent one when s->features
 * has MFD_FEAT_POSTCOPY), each with its condition variable, and set
 * s->nchannels. */
int mfd__channels_alloc(struct mfd_session *s, unsigned n);

/* Start one thread per channel running fn(channel); records a failure. */
int mfd__channels_start(struct mfd_session *s, void *(*fn)(void *));
/* The connections of the session: the channels and the urgent one. */
static inline unsigned mfd__nconns(const struct mfd_session *s)
{
	return s->nchannels + (s->urgent != NULL);
}

/* Set up (recording any failure) and tear down a channel's method context
 * and packet buffers. */
int mfd__channel_setup(struct mfd_session *s, struct mfd_channel *ch);
void mfd__channel_cleanup(struct mfd_session *s, struct mfd_channel *ch);

static inline void mfd__stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* Tell every channel's transport about every region (both sides, after
 * the handshake, before the channel threads start). */
int mfd__register_regions(struct mfd_session *s);
/* s->reg_ns and reg_bytes from what the channels' transports say; by the
 * owner thread, while no channel thread runs. */
void mfd__session_reg_time(struct mfd_session *s);

/* Publish the calling channel thread's CPU time in its statistics. */
static inline void mfd__stat_cpu(struct mfd_channel *ch)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	__atomic_store_n(&ch->st.cpu_ns,
			 (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			 __ATOMIC_RELAXED);
}

/* The limits page headers are validated against. */
void mfd__session_limits(const struct mfd_session *s, struct mfd_limits *l);

/* Receiver: a PAGES packet whose header is in ch->pkt (recv.c). Channel
 * threads and the urgent one. */
int mfd__recv_pages(struct mfd_session *s, struct mfd_channel *ch);

/* Sender: ch's job as one PAGES packet (send.c). */
int mfd__send_pages(struct mfd_session *s, struct mfd_channel *ch);

/* Sender and receiver engines, called by session.c. */
int mfd__send_start(struct mfd_session *s);
void mfd__send_stop(struct mfd_session *s);
void mfd__recv_stop(struct mfd_session *s);

#endif
