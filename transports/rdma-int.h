/* SPDX-License-Identifier: MIT */
/*
 * rdma-int.h - what the files of the rdma: transport share (see rdma.c
 * for how it works): the connection's struct, the constants both ends
 * must agree on, and the one place where rdma-core's error conventions
 * become -errno.
 *
 *   rdma.c         the ops table, timeouts, the region exchange
 *   rdma-cm.c      connection setup and teardown with rdma_cm
 *   rdma-mr.c      protection domains, registrations, the stream's rings
 *   rdma-cq.c      posting work requests and waiting for completions
 *   rdma-stream.c  the credit-based byte stream of SENDs
 *   rdma-write.c   send(): region entries as RDMA WRITEs, then the stream
 */
#ifndef MFD_RDMA_INT_H
#define MFD_RDMA_INT_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "multifd.h"
#include "transport.h"

/* rdma-core reports failure as NULL + errno, -1 + errno or a positive
 * errno depending on the call; every call goes through one of these. */

/* NULL + errno */
static inline int err_ptr(const void *p)
{
	return p ? 0 : errno ? -errno : -ENOMEM;
}

/* -1 + errno (and some providers: a negative errno) */
static inline int err_neg(int r)
{
	if (r >= 0)
		return 0;
	return errno ? -errno : r < -1 ? r : -EIO;
}

/* a positive errno (and some providers: -1 + errno) */
static inline int err_pos(int r)
{
	if (r > 0)
		return -r;
	return r < 0 ? (errno ? -errno : -EIO) : 0;
}

/*
 * The stream's receive ring: up to RING_BUFS messages of BUF_SIZE bytes
 * per direction. Both ends use these constants: each posts RING_START
 * receive buffers when it connects, so each starts with RING_START
 * credits, and posts the rest (returned to the peer as credits) once the
 * handshake is over, at the first region: a connection that never gets
 * that far pins only RING_START buffers each way.
 */
#define RING_BUFS 32
#define RING_START 4
#define BUF_SIZE (32u << 10)
#define SQ_DEPTH 256u
/* an unsignalled WR completes with the next signalled one; signal often
 * enough that the send queue never fills with unreaped WRs */
#define SIG_EVERY 16u
#define INLINE_WANT 128u
#define CONNECT_TIMEOUT_MS 30000u

/*
 * Landing (protocol.md 13.8): the receiving end registers LAND_SLOTS
 * buffers of LAND_SLOT bytes for remote writes once the handshake is over
 * and tells the sender where they are. A stream piece of LAND_MIN bytes
 * or more from the buffer the sender's method builds payloads in (a
 * compressed payload) travels as one RDMA WRITE into the next free slot,
 * announced by the SEND that follows it on the QP, instead of as SENDs of
 * BUF_SIZE through the ring. The receiver copies it out and returns the
 * slot in the immediate.
 */
#define LAND_SLOTS 2u
#define LAND_SLOT (1u << 20)
#define LAND_MIN (16u << 10)

/*
 * The immediate of a stream SEND: bits 0-7 receive credits returned,
 * 8-11 landing slots returned, 12-31 how many bytes landed in the next
 * slot, to be read after this message's own bytes (so at most
 * LAND_LEN_MAX).
 */
#define IMM(credits, lands, landed) \
	((uint32_t)(credits) | (uint32_t)(lands) << 8 | (uint32_t)(landed) << 12)
#define IMM_CREDITS(imm) ((imm) & 0xffu)
#define IMM_LANDS(imm) (((imm) >> 8) & 0xfu)
#define IMM_LANDED(imm) ((imm) >> 12)
#define LAND_LEN_MAX ((1u << 20) - 1)

/* wr_id: the kind in the top byte, a sequence number or index below */
#define WR_WRITE 1ull
#define WR_SEND 2ull
#define WR_RECV 3ull
#define WR_ID(kind, v) ((kind) << 56 | (v))
#define WR_KIND(id) ((id) >> 56)
#define WR_VAL(id) ((id) & ((1ull << 56) - 1))


/*
 * A protection domain on one device, on a session's list (rdma-mr.c),
 * with the registrations made in it. Protected by rdma-mr.c's table_lock.
 */
struct dev_ent {
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	unsigned refs;
	void **list; /* its head: a struct dev_ent *; NULL once gone */
	struct dev_ent *next;
	struct mr_ent *mrs;
};

/* A registration, in slices of `slice` bytes (the last may be shorter):
 * slice i covers [mem + i * slice, ...) with mrs[i], NULL until it is
 * registered (read it with mfd__rd_mr_slice()). */
struct mr_ent {
	struct dev_ent *dev;
	void *mem;
	uint64_t len;
	int access; /* IBV_ACCESS_* it was registered with */
	uint64_t slice;
	unsigned nmrs;
	struct ibv_mr **mrs;
	struct reg_job *job; /* the threads that register it (rdma-mr.c) */
	unsigned refs;
	struct mr_ent *next;
};

/* One slice of the receiver's copy, at offset `off` of the region; its
 * rkey is known once `ready` (the receiver's SLICE record came). */
struct rslice {
	uint64_t off;
	uint64_t addr;
	uint32_t rkey;
	bool ready;
};

struct region {
	uint8_t *mem;
	uint64_t len;
	struct mr_ent *mr;
	/* sender: the receiver's copy, in slices by ascending offset */
	struct rslice *rs;
	unsigned nrs;
	/* receiver: the slices whose rkey the sender was told (a prefix),
	 * and whether this connection started the registration (and so
	 * counts its time) */
	unsigned announced;
	bool made;
};

/* A ring of RING_BUFS buffers, the first n registered: buffers below
 * RING_START in mr[0], the others in mr[1]. */
struct ring {
	uint8_t *mem;
	struct ibv_mr *mr[2];
	unsigned n;
};

struct rd_conn {
	struct mfd_conn base;

	/* Immutable after connect/accept. */
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct dev_ent *dev;
	/* the list dev is on for a connection outside any session */
	void *own_devs;
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
	/* receiver: regions still registering, whose slices it announces
	 * while it waits (mfd__rd_announce()); sender: slices whose rkey has
	 * not come yet */
	bool announcing;
	unsigned pending_slices;
	bool in_send; /* inside mfd__rd_send(): no record may cut in */
	int64_t last_record_ms; /* receiver: when it last sent a record */
	int64_t deadline; /* of the send, recv or flush under way; 0: none */
	const char *stalled; /* the wait that ran past it */
	bool armed; /* the CQ is armed: a completion will wake poll() */
	bool connected; /* atomic once established */
	/* the rdma_cm events, drained by the connection's own waits and, from
	 * another thread, by rd_peer_gone() (the receiver's commit) */
	pthread_mutex_t cm_lock;
	const char *cm_end; /* the event that ended it, or NULL */
	int failed; /* sticky: the connection is unusable */
	/* send queue: WRs are numbered; those below sq_done completed */
	uint64_t sq_posted, sq_done;
	unsigned unsignalled;
	uint64_t big_msgs; /* stream messages too large to go inline */
	/* tx ring: slot i is reusable once the SEND in tx_seq[i] is done */
	uint64_t tx_seq[RING_BUFS];
	unsigned tx_head, tx_tail;
	/* credits: our SENDs the peer can take; returns we owe the peer */
	unsigned credits;
	unsigned owed, owed_data;
	/* received messages not yet consumed, in order */
	unsigned rxq[RING_BUFS];
	uint32_t rxq_len[RING_BUFS];
	uint32_t rxq_land[RING_BUFS]; /* bytes landed after each */
	unsigned rxq_head, rxq_n;
	uint32_t rx_off; /* bytes of rxq[rxq_head] already consumed */
	uint32_t rx_land_off; /* ... and of the bytes landed after it */
	/* receiving end: the landing slots, the next one to read, and
	 * slots read but not yet returned */
	uint8_t *land_mem;
	struct ibv_mr *land_mr;
	uint64_t land_rx;
	unsigned land_owed;
	/* sending end: the peer's slots (0 until it offered them), the next
	 * one to write, how many are free; and the registration of the
	 * buffer its method builds payloads in (register_buffer) */
	uint64_t land_addr;
	uint32_t land_rkey, land_size, land_slots;
	uint64_t land_tx;
	unsigned land_free;
	/* the WRs posted up to the last landing WRITE: send() returns only
	 * once they completed, as the method reuses its buffer next */
	uint64_t land_wait;
	struct mr_ent *src_mr;
	uint64_t rx_bytes; /* for error messages */
	struct region regions[MFD_MAX_REGIONS];
	unsigned nregions;
};

struct rd_listener {
	struct mfd_listener base;
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	int wake_fd;
	void *devs; /* the domains of the connections it accepts */
};


int mfd__rd_fail(struct rd_conn *rc, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int64_t now_ms(void)
{
	return mfd__tp_now_ns() / 1000000;
}

/* The deadline of an op that starts now. */
static inline void op_start(struct rd_conn *rc)
{
	rc->deadline = rc->timeout_ms ? now_ms() + rc->timeout_ms : 0;
}

/* poll() timeout left before deadline (0: none), at least 0 */
static inline int left_ms(int64_t deadline)
{
	int64_t l;

	if (!deadline)
		return -1;
	l = deadline - now_ms();
	return l < 0 ? 0 : l > 1000000000 ? 1000000000 : (int)l;
}

static inline int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return err_neg(fl < 0 ? fl : fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

static inline bool is_down(struct rd_conn *rc)
{
	return __atomic_load_n(&rc->down, __ATOMIC_ACQUIRE);
}

/* rdma-mr.c */
struct dev_ent *mfd__rd_dev_get(void **list, struct ibv_context *verbs);
void mfd__rd_dev_put(struct dev_ent *d);
void mfd__rd_devs_release(void **list);
void mfd__rd_reg_error(int r, uint64_t len, const char *what, char *err,
		       size_t errlen);
/* What mfd__rd_mr_get() calls every every_ms while it registers. */
struct reg_tick {
	int (*fn)(void *arg);
	void *arg;
	unsigned every_ms;
};

/* The registration of [mem, mem + len) in d with `access`, made once
 * (in slices, in parallel) and shared: mfd__rd_mr_start() returns at
 * once, its slices usable one by one as they are registered (*made: this
 * call started it); mfd__rd_mr_get() returns once every slice is (*ns:
 * how long it took, 0 when it was made before). */
int mfd__rd_mr_start(struct dev_ent *d, void *mem, uint64_t len, int access,
		     bool *made, struct mr_ent **out);
int mfd__rd_mr_get(struct dev_ent *d, void *mem, uint64_t len, int access,
		   const struct reg_tick *tick, uint64_t *ns,
		   struct mr_ent **out);
/* Slice i's registration, or NULL while it is not registered yet. */
struct ibv_mr *mfd__rd_mr_slice(struct mr_ent *m, unsigned i);
/* The first slice's failure to register, or 0. */
int mfd__rd_mr_error(struct mr_ent *m);
/* Once every slice is registered: how long it took. */
uint64_t mfd__rd_mr_ns(struct mr_ent *m);
void mfd__rd_mr_put(struct mr_ent *m);
int mfd__rd_ring_alloc(struct rd_conn *rc, struct ring *g, char *err,
		       size_t errlen);
int mfd__rd_ring_grow(struct rd_conn *rc, struct ring *g, char *err,
		      size_t errlen);
uint32_t mfd__rd_ring_lkey(const struct ring *g, unsigned i);
void mfd__rd_ring_free(struct ring *g);
int mfd__rd_land_alloc(struct rd_conn *rc);
void mfd__rd_land_free(struct rd_conn *rc);

/* rdma.c: the receiver's SLICE records for what has been registered
 * since (and a WAIT when nothing was for long), without blocking; the
 * sender's wait for slice s of g. */
int mfd__rd_announce(struct rd_conn *rc);
int mfd__rd_await_slice(struct rd_conn *rc, const struct rslice *s);

/* rdma-cq.c */
int mfd__rd_progress(struct rd_conn *rc, bool block, const char *what);
int mfd__rd_usable(struct rd_conn *rc);
int mfd__rd_post_wr(struct rd_conn *rc, struct ibv_send_wr *wr,
		    uint64_t kind, bool signal);
int mfd__rd_flush(struct mfd_conn *c);

/* rdma-stream.c */
int mfd__rd_post_recv(struct rd_conn *rc, unsigned i);
int mfd__rd_stream_grow(struct rd_conn *rc);
int mfd__rd_stream_send(struct rd_conn *rc, const struct iovec *iov, int n,
			size_t stream, size_t *done);
int mfd__rd_recv(struct mfd_conn *c, const struct iovec *iov, int n);

/* rdma-write.c */
struct region *mfd__rd_find_region(struct rd_conn *rc, const void *p,
				   size_t len);
int mfd__rd_send(struct mfd_conn *c, const struct iovec *iov, int n,
		 unsigned flags);

/* rdma-cm.c */
/* Drain rc's rdma_cm events: the one that ended the connection
 * (DISCONNECTED, DEVICE_REMOVAL, TIMEWAIT_EXIT), by name, or NULL while
 * none has; any thread. */
const char *mfd__rd_cm_end(struct rd_conn *rc);
int mfd__rd_connect(const struct mfd_uri *u, unsigned timeout_ms,
		    struct mfd_conn **out, char *err, size_t errlen);
int mfd__rd_listen(const struct mfd_uri *u, struct mfd_listener **out,
		   char *err, size_t errlen);
int mfd__rd_accept(struct mfd_listener *ml, unsigned timeout_ms,
		   struct mfd_conn **out, char *err, size_t errlen);
void mfd__rd_listener_wake(struct mfd_listener *ml);
void mfd__rd_listener_close(struct mfd_listener *ml);
void mfd__rd_shutdown(struct mfd_conn *c);
void mfd__rd_close(struct mfd_conn *c);

#endif
