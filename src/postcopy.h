/* SPDX-License-Identifier: MIT */
/*
 * postcopy.h - the state both ends keep once a session may switch to
 * postcopy (feature MFD_FEAT_POSTCOPY, protocol.md 12), and the calls the
 * session core and the engines make into postcopy.c, postcopy-recv.c and
 * postcopy-send.c.
 *
 * The urgent channel is s->ch[s->nchannels], a channel like the others
 * for its buffers and counters, with a thread of its own on each end once
 * the switch is done (mfd-urgent). On the receiver a second thread
 * (mfd-fault) reads the userfaultfd and sends the requests.
 */
#ifndef MFD_POSTCOPY_H
#define MFD_POSTCOPY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct mfd_session;
struct mfd_channel;
struct mfd_conn;
struct mfd_packet;
struct mfd_stats;

/* The pages an answer carries at most: the one asked for and the next
 * ones not sent yet, as QEMU does. */
#define MFD_PC_ANSWER_PAGES 8

struct mfd_pc_request {
	uint32_t region;
	uint64_t offset;
	struct timespec t0; /* when the fault was read */
};

struct mfd_postcopy {
	/* Set before the switch's threads start, then immutable. map[i]:
	 * sender, the pages of region i not sent since the switch (bits
	 * cleared atomically by whoever sends the page first); receiver,
	 * the pages the switch dropped. */
	uint64_t *map[MFD_MAX_REGIONS];
	int uffd; /* receiver: -1 until the switch */
	uint64_t sys_page;
	pthread_t fault_thread, urgent_thread;
	bool fault_started, urgent_started;

	/* Protected by the session's lock. */
	bool switched;	 /* the switch is done (receiver: registered) */
	bool registered; /* receiver: the regions are under uffd */
	bool complete;	 /* receiver: every page is in place (END) */
	bool stop;	 /* the threads are asked to end */

	/* Protected by lock. */
	pthread_mutex_t lock;
	/* requests not answered yet, one per page: as many as threads
	 * fault at once; the table grows with them */
	struct mfd_pc_request *pending;
	size_t npending, pending_cap;
	uint64_t next_request;
	uint32_t *lat_us; /* every answered request's latency */
	size_t nlat, lat_cap;
};

/* Both ends, postcopy.c. */
int mfd__pc_new(struct mfd_session *s);
/* Keep the urgent connection c alive while it idles (both ends, right
 * after its handshake): 0 or -errno, c->err saying why. */
int mfd__pc_keepalive(const struct mfd_session *s, struct mfd_conn *c);
void mfd__pc_free(struct mfd_session *s);
/* From mfd__session_fail(), with the session's lock held: wake every
 * thread postcopy may block (the urgent channel's reads, faults on
 * missing pages: the regions leave userfaultfd). */
void mfd__pc_on_fail(struct mfd_session *s);
/* The latency percentiles into *st (a stats reader, any thread). */
void mfd__pc_stats(struct mfd_postcopy *pc, struct mfd_stats *st);
/* A tcp: or unix: session; otherwise the reason in err. */
int mfd__pc_transport_ok(const struct mfd_session *s, char *err,
			 size_t errlen);
/* Stop and join the postcopy threads (either end); any thread but
 * theirs. */
void mfd__pc_stop(struct mfd_session *s);

/* Receiver, postcopy-recv.c. */
/* Channel 0's POSTCOPY payload: the dropped pages' maps. */
int mfd__pc_recv_maps(struct mfd_session *s, struct mfd_channel *ch);
/* By the POSTCOPY barrier's last channel, the lock held, every other
 * channel waiting: register the regions, drop the pages (the lock let
 * go meanwhile), start the threads. On failure, the message is in
 * err. */
int mfd__pc_switch(struct mfd_session *s, char *err, size_t errlen);
/* A page packet after the switch: its pages were received in
 * buf (normal ones side by side); place them and the zero ones. */
int mfd__pc_place(struct mfd_session *s, struct mfd_channel *ch,
		  const struct mfd_packet *p, const uint64_t *offsets,
		  const uint8_t *buf);
/* The END barrier passed: every page is in place. */
void mfd__pc_complete(struct mfd_session *s);
/* Postcopy's own userfaultfd is usable; otherwise why in err. */
int mfd__pc_uffd_probe(char *err, size_t errlen);
/* The regions are known and no page has arrived: keep transparent huge
 * pages out of them (see the definition for why). */
void mfd__pc_no_huge_pages(const struct mfd_session *s);

/* Sender, postcopy-send.c: see mfd_send_postcopy(). Owner thread. */
/* Check the caller's bitmaps and copy them into pc->map. */
int mfd__pc_take_maps(struct mfd_session *s, const uint64_t *const *bitmaps);
/* Start the thread that answers requests on the urgent channel. */
int mfd__pc_start_sender(struct mfd_session *s);
/* Channel threads: the POSTCOPY packet (channel 0: with the maps). */
int mfd__pc_send_switch(struct mfd_session *s, struct mfd_channel *ch);

#endif
