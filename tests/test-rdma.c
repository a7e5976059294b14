/* SPDX-License-Identifier: MIT */
/*
 * test-rdma.c - whole transfers over rdma: with 1, 2 and 4 channels, a
 * 64 MiB region, rounds that rewrite pages (some to zero, zero pages back
 * to data), methods none (pages as RDMA WRITEs) and zstd (compressed
 * payloads as WRITEs into the receiver's landing slots, incompressible
 * packets raw as WRITEs), compared
 * byte for byte; and a sender or a receiver process that dies mid-round,
 * which the other end must report as an error within its timeout; a
 * sender gone while the receiver commits, which the commit must see; a
 * region registered in several slices, for longer than the timeout.
 *
 * And what a peer can write: nothing, with the session's rkey, once
 * mfd_recv_wait() returned (after success or failure), nor in its
 * landing slots; nothing in one
 * session's regions from another session's QP, nor from a connection
 * that has not passed the handshake; two sending sessions share no
 * protection domain; and a memlock limit too small for
 * the regions is an error that names it.
 *
 * Needs an RDMA device and its IPv4 address in MFD_RDMA_ADDR (the
 * tests/rxe guest sets both up); exits 77 (skip) without them.
 */
#include "config.h"

#include <errno.h>
#include <infiniband/verbs.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "pair.h"
#include "session.h"
#include "transports/rdma-int.h"

#define SIZE (64ull << 20)
#define TIMEOUT_MS 20000u

static char listen_uri[300];

/* Stretches of 256 pages alternate between random content (whole
 * packets that do not shrink: zstd sends them raw, as WRITEs) and
 * text-like content (compressed: the payload lands in a slot). */
static void fill_page(uint8_t *page, uint32_t ps, uint64_t *st)
{
	if ((uintptr_t)page / ((uintptr_t)ps * 256) % 2) {
		fill_random(page, ps, st);
		return;
	}
	for (uint32_t i = 0; i < ps; i++)
		page[i] = (uint8_t)("multifd over rdma "[i % 18] +
				    (i / 512) % 3);
}

static void transfer(enum mfd_method method, unsigned channels)
{
	struct mfd_config cfg;
	struct mfd_stats st;

	mfd_config_init(&cfg);
	cfg.channels = channels;
	cfg.method = method;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL(run_transfer(&cfg, listen_uri, SIZE, 4, fill_page,
				     &st),
			0);
	CU_ASSERT(st.zero_pages > 0);
	CU_ASSERT_EQUAL(st.rounds, 4 + 1);
	if (method != MFD_METHOD_NONE) {
		/* both paths: compressed payloads landing in the
		 * receiver's slots, raw pages as WRITEs */
		CU_ASSERT(st.raw_packets > 0);
		CU_ASSERT(st.raw_packets < st.packets);
		CU_ASSERT(st.landed_packets > 0);
	} else {
		CU_ASSERT_EQUAL(st.landed_packets, 0);
	}
}

/* The receiver's registration of its region (channel 0's): whether its
 * last slice is registered yet. */
static bool rx_registered(const struct mfd_session *rx)
{
	struct mr_ent *m = ((const struct rd_conn *)rx->ch[0].conn)
				   ->regions[0]
				   .mr;

	return m && mfd__rd_mr_slice(m, m->nmrs - 1);
}

/* Wait up to 20 s for dst's first page to equal src's. */
static bool first_page_lands(const uint8_t *src, const volatile uint8_t *dst)
{
	for (int i = 0; i < 20000; i++) {
		if (!memcmp(src, (const uint8_t *)dst, 4096))
			return true;
		usleep(1000);
	}
	return false;
}

/*
 * A region in several slices (MFD_RDMA_SLICE: 64 MiB and 3 pages, so that
 * slice boundaries fall inside packets), whose registration (a few
 * seconds of pinning fresh memory in the guest) takes longer than the
 * timeout: the WAIT records keep the waiting end from timing out; and
 * the receiver tells each slice as soon as it is registered, so that
 * the first page is in place before the last slice is registered.
 */
static void test_slices(void)
{
	const uint64_t len = 256ull << 20;
	uint8_t *src = guarded_alloc(len), *dst = guarded_alloc(len);
	const size_t pages = len / 4096, first = 128;
	uint64_t *offs = malloc(pages * sizeof(*offs));
	struct mfd_stats ts = { 0 }, rs = { 0 };
	struct mfd_config cfg;
	bool early = false;
	uint64_t seed = 3;
	struct pair p;
	int r;

	CU_ASSERT_FATAL(src && dst && offs);
	fill_random(src, len, &seed);
	for (size_t i = 0; i < pages; i++)
		offs[i] = i * 4096;
	setenv("MFD_RDMA_SLICE", "67121152", 1);
	mfd_config_init(&cfg);
	cfg.channels = 2;
	cfg.timeout_ms = 1000;
	r = pair_start(&p, &cfg, listen_uri, src, dst, len);
	/* one packet first, the rest once its first page is in place */
	if (!r)
		r = mfd_send_pages(p.tx, p.region, offs, first);
	if (!r) {
		CU_ASSERT(first_page_lands(src, dst));
		early = !rx_registered(p.rx);
		r = mfd_send_pages(p.tx, p.region, offs + first,
				   pages - first);
	}
	if (!r)
		r = mfd_send_sync(p.tx);
	if (!r)
		r = pair_finish(&p);
	unsetenv("MFD_RDMA_SLICE");
	if (p.tx)
		mfd_session_stats(p.tx, &ts);
	if (p.rx)
		mfd_session_stats(p.rx, &rs);
	fprintf(stderr, "sender: %s\nreceiver: %s\n",
		p.tx ? mfd_session_error(p.tx) : "not started",
		p.rx ? mfd_session_error(p.rx) : "not started");
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT(!memcmp(src, dst, len));
	CU_ASSERT(early);
	CU_ASSERT_EQUAL(ts.register_bytes, len);
	CU_ASSERT_EQUAL(rs.register_bytes, len);
	fprintf(stderr,
		"256 MiB in 4 slices registered in %.2f s by the sender, "
		"%.2f s by the receiver; timeout 1 s; the first page was in "
		"place %s the receiver's last slice was registered\n",
		ts.register_seconds, rs.register_seconds,
		early ? "before" : "after");
	pair_free(&p);
	free(offs);
	guarded_free(src, len);
	guarded_free(dst, len);
}

/* The receiver's commit, once its sender has gone (cancelled: it
 * disconnects): mfd_recv_sender_present() sees it through the rdma_cm
 * channel, as it sees a closed socket. */
static int commit_sender_left(void *opaque, char *err, size_t errlen)
{
	struct pair *p = opaque;
	int r = mfd_recv_sender_present(p->rx);

	CU_ASSERT_EQUAL(r, 0);
	mfd_session_cancel(p->tx);
	for (int ms = 0; r == 0 && ms < 5000; ms += 10) {
		usleep(10 * 1000);
		r = mfd_recv_sender_present(p->rx);
	}
	CU_ASSERT_EQUAL(r, -EPIPE);
	snprintf(err, errlen, "the sender left");
	return r ? r : -EIO;
}

static void test_sender_left_in_commit(void)
{
	enum { LEN = 4 << 20 };
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	struct mfd_config cfg;
	struct pair p = { 0 };
	const char *e;

	memset(src, 0x5a, LEN);
	mfd_config_init(&cfg);
	cfg.channels = 2;
	cfg.timeout_ms = TIMEOUT_MS;
	cfg.commit_cb = commit_sender_left;
	cfg.commit_opaque = &p;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, listen_uri, src, dst, LEN),
			      0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_NOT_EQUAL(pair_finish(&p), 0);
	e = mfd_session_error(p.rx);
	/* its ABORT, when it arrived before the disconnect, says why */
	if (!e || (!strstr(e, "cannot commit: the sender left") &&
		   !strstr(e, "the sender failed: cancelled"))) {
		fprintf(stderr, "receiver error '%s'\n", e ? e : "");
		CU_FAIL("the receiver's commit did not see its sender leave");
	}
	pair_free(&p);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

static void test_none_1(void) { transfer(MFD_METHOD_NONE, 1); }
static void test_none_2(void) { transfer(MFD_METHOD_NONE, 2); }
static void test_none_4(void) { transfer(MFD_METHOD_NONE, 4); }
#ifdef HAVE_ZSTD
static void test_zstd_1(void) { transfer(MFD_METHOD_ZSTD, 1); }
static void test_zstd_2(void) { transfer(MFD_METHOD_ZSTD, 2); }
static void test_zstd_4(void) { transfer(MFD_METHOD_ZSTD, 4); }
#endif

/* The child of test_sender_dies: start a round, then vanish in it. */
static int dying_sender(const char *uri)
{
	struct mfd_config cfg;
	struct mfd_session *tx;
	uint8_t *src = guarded_alloc(SIZE);
	uint64_t seed = 1;
	char err[256];

	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.channels = 2;
	cfg.timeout_ms = TIMEOUT_MS;
	if (!src || mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
				    sizeof(err)))
		return 2;
	fill_random(src, SIZE, &seed);
	if (mfd_session_add_region(tx, "ram", src, SIZE, false) < 0 ||
	    mfd_session_start(tx)) {
		fprintf(stderr, "dying sender: %s\n", mfd_session_error(tx));
		return 2;
	}
	for (uint64_t off = 0; off < SIZE / 2; off += 4096)
		if (mfd_send_pages(tx, 0, &off, 1))
			return 2;
	/* no sync, no finish: the process ends with packets in flight */
	_exit(0);
}

/* The child of test_receiver_dies: tell the parent where to connect,
 * then vanish once some pages have arrived. */
static int dying_receiver(const char *uri)
{
	uint8_t *dst = guarded_alloc(SIZE);
	struct mfd_config cfg;
	struct mfd_stats st;
	struct pair p;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	if (!dst || rx_start(&p, &cfg, uri, dst, SIZE))
		return 2;
	printf("%s\n", mfd_session_uri(p.rx));
	fflush(stdout);
	do {
		usleep(10000);
		mfd_session_stats(p.rx, &st);
	} while (st.normal_pages < 1000);
	_exit(0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A sender process that dies mid-round: the receiver fails, well within
 * its timeout, instead of waiting forever. The child is a fresh process
 * (exec), since a forked copy of an RDMA user cannot use the device. */
static void test_sender_dies(void)
{
	uint8_t *dst = guarded_alloc(SIZE);
	struct mfd_config cfg;
	struct pair p;
	double t0;
	int status = -1;
	pid_t pid;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(dst != NULL);
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, listen_uri, dst, SIZE), 0);
	t0 = now_s();
	pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "test-rdma", "--dying-sender",
		      mfd_session_uri(p.rx), (char *)NULL);
		_exit(127);
	}
	CU_ASSERT_FATAL(pid > 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT(pair_join_rx(&p) < 0);
	fprintf(stderr, "receiver after %.1f s: %s\n", now_s() - t0,
		mfd_session_error(p.rx));
	CU_ASSERT(now_s() - t0 < TIMEOUT_MS / 1000.0);
	pair_free(&p);
	guarded_free(dst, SIZE);
}

/* A receiver process that dies mid-round: the sender fails within its
 * timeout, in whichever call it is. */
static void test_receiver_dies(void)
{
	uint8_t *src = guarded_alloc(SIZE);
	struct mfd_session *tx = NULL;
	struct mfd_config cfg;
	char uri[300] = "", err[256];
	uint64_t seed = 7;
	int fd[2], status = -1, r;
	double t0;
	FILE *f;
	pid_t pid;

	CU_ASSERT_FATAL(src != NULL && pipe(fd) == 0);
	fill_random(src, SIZE, &seed);
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		execl("/proc/self/exe", "test-rdma", "--dying-receiver",
		      listen_uri, (char *)NULL);
		_exit(127);
	}
	CU_ASSERT_FATAL(pid > 0);
	close(fd[1]);
	f = fdopen(fd[0], "r");
	CU_ASSERT_FATAL(f && fgets(uri, sizeof(uri), f));
	fclose(f);
	uri[strcspn(uri, "\n")] = 0;
	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, SIZE, false) == 0);
	t0 = now_s();
	r = mfd_session_start(tx);
	for (int k = 0; !r && k < 8; k++) {
		r = mfd_send_region(tx, 0);
		if (!r)
			r = mfd_send_sync(tx);
	}
	if (!r)
		r = mfd_send_finish(tx);
	CU_ASSERT(r < 0);
	fprintf(stderr, "sender after %.1f s: %s\n", now_s() - t0,
		mfd_session_error(tx));
	CU_ASSERT(now_s() - t0 < TIMEOUT_MS / 1000.0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	mfd_session_free(tx);
	guarded_free(src, SIZE);
}

#define SMALL (4ull << 20)

/* Bytes pinned by this process (VmPin), which every registration adds
 * to and every deregistration takes from. */
static uint64_t vm_pin(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long kb = 0;
	char line[128];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb << 10;
}

/* A receiver for dst and a hand-made one-channel sender of `method` that
 * has passed the handshake and learnt where the region is (p->rx, the
 * connection). */
static struct mfd_conn *peer_start_method(struct pair *p, uint8_t *src,
					  uint8_t *dst, uint64_t len,
					  enum mfd_method method)
{
	struct mfd_config cfg;
	struct mfd_conn *c;
	int32_t status = -1;

	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	if (rx_start(p, &cfg, listen_uri, dst, len))
		return NULL;
	c = raw_connect(mfd_session_uri(p->rx), 0, 1, method, len);
	if (!c || raw_ack(c, &status) || status ||
	    mfd__tp_register_region(c, 0, src, len)) {
		fprintf(stderr, "peer: %s\n", c ? c->err : "cannot connect");
		mfd__tp_close(c);
		return NULL;
	}
	return c;
}

static struct mfd_conn *peer_start(struct pair *p, uint8_t *src, uint8_t *dst,
				   uint64_t len)
{
	return peer_start_method(p, src, dst, len, MFD_METHOD_NONE);
}

static uint64_t peer_raddr(struct mfd_conn *c)
{
	return ((struct rd_conn *)c)->regions[0].rs[0].addr;
}

static uint32_t peer_rkey(struct mfd_conn *c)
{
	return ((struct rd_conn *)c)->regions[0].rs[0].rkey;
}

/* RDMA WRITE len bytes of src to (raddr, rkey) over c's QP, as any peer
 * can with a stale or guessed rkey: 0 when the peer took it, or -errno
 * with c->err saying why not. */
static int raw_write(struct mfd_conn *c, void *src, size_t len,
		     uint64_t raddr, uint32_t rkey)
{
	struct rd_conn *rc = (struct rd_conn *)c;
	struct ibv_mr *mr = ibv_reg_mr(rc->dev->pd, src, len, 0);
	struct ibv_sge sge = { .addr = (uintptr_t)src,
			       .length = (uint32_t)len,
			       .lkey = mr ? mr->lkey : 0 };
	struct ibv_send_wr wr = { .opcode = IBV_WR_RDMA_WRITE,
				  .sg_list = &sge,
				  .num_sge = 1,
				  .wr.rdma.remote_addr = raddr,
				  .wr.rdma.rkey = rkey };
	int r;

	if (!mr)
		return -errno;
	op_start(rc);
	r = mfd__rd_post_wr(rc, &wr, WR_WRITE, true);
	if (!r)
		r = mfd__rd_flush(c);
	ibv_dereg_mr(mr);
	fprintf(stderr, "WRITE with rkey 0x%x: %s\n", rkey,
		r ? c->err : "landed");
	return r;
}

/* The whole session (END, FIN), then a WRITE with its rkey: refused by
 * the receiver's device, and the region no longer pinned. */
static void test_revoked_after_success(void)
{
	uint8_t *src = guarded_alloc(SMALL), *dst = guarded_alloc(SMALL);
	struct mfd_hdr e = { .type = MFD_PKT_END };
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_conn *c;
	uint64_t pinned;
	struct pair p;

	CU_ASSERT_FATAL(src && dst);
	memset(src, 0xa5, SMALL);
	c = peer_start(&p, src, dst, SMALL);
	CU_ASSERT_FATAL(c != NULL);
	/* method none: no landing slots offered, none pinned */
	CU_ASSERT_EQUAL(((struct rd_conn *)c)->land_addr, 0);
	/* the receiver registers in the background: its slice's rkey
	 * comes once it is pinned */
	CU_ASSERT_EQUAL(mfd__rd_await_slice((struct rd_conn *)c,
					    &((struct rd_conn *)c)
						     ->regions[0].rs[0]),
			0);
	pinned = vm_pin();
	mfd__hdr_encode(&e, buf);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(buf[4], MFD_PKT_FIN);
	CU_ASSERT_EQUAL(pair_join_rx(&p), 0);
	fprintf(stderr, "pinned: %llu bytes in the session, %llu after\n",
		(unsigned long long)pinned, (unsigned long long)vm_pin());
	CU_ASSERT(vm_pin() + SMALL <= pinned);
	CU_ASSERT(raw_write(c, src, 4096, peer_raddr(c), peer_rkey(c)) < 0);
	CU_ASSERT(strstr(c->err, "remote access error") != NULL);
	CU_ASSERT(all_zero(dst, SMALL));
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(src, SMALL);
	guarded_free(dst, SMALL);
}

#ifdef HAVE_ZSTD
/* The landing slots (protocol.md 13.8) of a compressing session take the
 * peer's WRITEs while the session runs, and refuse them once it ended. */
static void test_landing_revoked(void)
{
	uint8_t *src = guarded_alloc(SMALL), *dst = guarded_alloc(SMALL);
	struct mfd_hdr e = { .type = MFD_PKT_END };
	uint8_t buf[MFD_HDR_SIZE];
	struct mfd_conn *c;
	struct rd_conn *rc;
	struct pair p;

	CU_ASSERT_FATAL(src && dst);
	memset(src, 0x5a, SMALL);
	c = peer_start_method(&p, src, dst, SMALL, MFD_METHOD_ZSTD);
	CU_ASSERT_FATAL(c != NULL);
	rc = (struct rd_conn *)c;
	CU_ASSERT_FATAL(rc->land_addr != 0 && rc->land_slots > 0);
	CU_ASSERT_EQUAL(raw_write(c, src, 4096, rc->land_addr, rc->land_rkey),
			0);
	mfd__hdr_encode(&e, buf);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(c, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(mfd__tp_recv_buf(c, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(raw_write(c, src, 4096, rc->land_addr, rc->land_rkey) < 0);
	CU_ASSERT(strstr(c->err, "remote access error") != NULL);
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(src, SMALL);
	guarded_free(dst, SMALL);
}
#endif

/* A session that fails (an offset outside the region): the same. */
static void test_revoked_after_failure(void)
{
	uint8_t *src = guarded_alloc(SMALL), *dst = guarded_alloc(SMALL);
	struct mfd_hdr h = { .type = MFD_PKT_PAGES,
			     .normal = 1,
			     .payload_len = 4096 };
	uint64_t off[1] = { SMALL };
	struct mfd_conn *c;
	uint64_t pinned;
	struct pair p;

	CU_ASSERT_FATAL(src && dst);
	memset(src, 0xa5, SMALL);
	c = peer_start(&p, src, dst, SMALL);
	CU_ASSERT_FATAL(c != NULL);
	pinned = vm_pin();
	raw_send_pages(c, &h, off);
	CU_ASSERT(pair_join_rx(&p) < 0);
	fprintf(stderr, "receiver: %s\n", mfd_session_error(p.rx));
	CU_ASSERT(vm_pin() + SMALL <= pinned);
	CU_ASSERT(raw_write(c, src, 4096, peer_raddr(c), peer_rkey(c)) < 0);
	CU_ASSERT(all_zero(dst, SMALL));
	mfd__tp_close(c);
	pair_free(&p);
	guarded_free(src, SMALL);
	guarded_free(dst, SMALL);
}

/* Two receiving sessions in one process: the sender of each, with the
 * other's rkey, cannot write into the other's region (and its own
 * rkey still works while the session runs). */
static void test_sessions_apart(void)
{
	uint8_t *src = guarded_alloc(SMALL), *da = guarded_alloc(SMALL),
		*db = guarded_alloc(SMALL);
	struct mfd_conn *a, *b;
	struct pair pa, pb;

	CU_ASSERT_FATAL(src && da && db);
	memset(src, 0xa5, SMALL);
	a = peer_start(&pa, src, da, SMALL);
	b = peer_start(&pb, src, db, SMALL);
	CU_ASSERT_FATAL(a && b);
	CU_ASSERT(raw_write(b, src, 4096, peer_raddr(a), peer_rkey(a)) < 0);
	CU_ASSERT(raw_write(a, src, 4096, peer_raddr(b), peer_rkey(b)) < 0);
	CU_ASSERT(all_zero(da, SMALL));
	CU_ASSERT(all_zero(db, SMALL));
	mfd__tp_close(a);
	mfd__tp_close(b);
	pair_free(&pa);
	pair_free(&pb);
	guarded_free(src, SMALL);
	guarded_free(da, SMALL);
	guarded_free(db, SMALL);
}

/* The protection domain of a session's channel i. */
static struct ibv_pd *pd_of(const struct mfd_session *s, unsigned i)
{
	return ((const struct rd_conn *)s->ch[i].conn)->dev->pd;
}

/* Two sending sessions at once in one process: each has a protection
 * domain of its own, which its channels share (nothing of one session's
 * is valid on the other's QPs), and both transfers complete. */
static void test_senders_apart(void)
{
	uint8_t *src = guarded_alloc(SMALL), *da = guarded_alloc(SMALL),
		*db = guarded_alloc(SMALL);
	struct mfd_config cfg;
	struct pair pa, pb;
	int ra, rb;

	CU_ASSERT_FATAL(src && da && db);
	memset(src, 0x5a, SMALL);
	mfd_config_init(&cfg);
	cfg.channels = 2;
	cfg.timeout_ms = TIMEOUT_MS;
	ra = pair_start(&pa, &cfg, listen_uri, src, da, SMALL);
	rb = pair_start(&pb, &cfg, listen_uri, src, db, SMALL);
	CU_ASSERT_FATAL(ra == 0 && rb == 0);
	CU_ASSERT(pd_of(pa.tx, 0) == pd_of(pa.tx, 1));
	CU_ASSERT(pd_of(pb.tx, 0) == pd_of(pb.tx, 1));
	CU_ASSERT(pd_of(pa.tx, 0) != pd_of(pb.tx, 0));
	CU_ASSERT(pd_of(pa.tx, 0)->handle != pd_of(pb.tx, 0)->handle);
	ra = mfd_send_region(pa.tx, pa.region);
	rb = mfd_send_region(pb.tx, pb.region);
	CU_ASSERT_EQUAL(ra ? ra : pair_finish(&pa), 0);
	CU_ASSERT_EQUAL(rb ? rb : pair_finish(&pb), 0);
	CU_ASSERT(!memcmp(src, da, SMALL));
	CU_ASSERT(!memcmp(src, db, SMALL));
	pair_free(&pa);
	pair_free(&pb);
	guarded_free(src, SMALL);
	guarded_free(da, SMALL);
	guarded_free(db, SMALL);
}

/* A connection in its handshake (accepted, no init sent yet) with a
 * running session's rkey cannot write into it. */
static void test_stray_cannot_write(void)
{
	uint8_t *src = guarded_alloc(SMALL), *da = guarded_alloc(SMALL),
		*db = guarded_alloc(SMALL);
	struct mfd_config cfg;
	struct mfd_conn *a, *stray = NULL;
	struct mfd_uri u;
	struct pair pa, pb;
	char err[256];

	CU_ASSERT_FATAL(src && da && db);
	memset(src, 0xa5, SMALL);
	a = peer_start(&pa, src, da, SMALL);
	CU_ASSERT_FATAL(a != NULL);
	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	CU_ASSERT_FATAL(rx_start(&pb, &cfg, listen_uri, db, SMALL) == 0);
	CU_ASSERT_FATAL(mfd__uri_parse(mfd_session_uri(pb.rx), &u, err,
				       sizeof(err)) == 0);
	CU_ASSERT_FATAL(mfd__rdma_ops.connect(&u, 5000, &stray, err,
					      sizeof(err)) == 0);
	mfd__tp_set_timeout(stray, 10000);
	CU_ASSERT(raw_write(stray, src, 4096, peer_raddr(a), peer_rkey(a)) <
		  0);
	CU_ASSERT(all_zero(da, SMALL));
	mfd__tp_close(stray);
	mfd__tp_close(a);
	pair_free(&pa);
	pair_free(&pb);
	guarded_free(src, SMALL);
	guarded_free(da, SMALL);
	guarded_free(db, SMALL);
}

/* The child of test_memlock: without CAP_IPC_LOCK and with 8 MiB of
 * RLIMIT_MEMLOCK, a 16 MiB session; 0 when it failed saying so. */
static int memlock_child(const char *uri)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct cd[2];
	struct rlimit rl = { 8 << 20, 8 << 20 };
	uint8_t *src = guarded_alloc(SIZE / 4), *dst = guarded_alloc(SIZE / 4);
	struct mfd_config cfg;
	const char *e[2];
	struct pair p;
	int r;

	if (!src || !dst || syscall(SYS_capget, &h, cd))
		return 2;
	cd[CAP_IPC_LOCK / 32].effective &= ~(1u << CAP_IPC_LOCK % 32);
	cd[CAP_IPC_LOCK / 32].permitted &= ~(1u << CAP_IPC_LOCK % 32);
	if (syscall(SYS_capset, &h, cd) || setrlimit(RLIMIT_MEMLOCK, &rl))
		return 2;
	mfd_config_init(&cfg);
	cfg.timeout_ms = TIMEOUT_MS;
	r = pair_start(&p, &cfg, uri, src, dst, SIZE / 4);
	if (!r)
		r = pair_finish(&p);
	e[0] = p.tx ? mfd_session_error(p.tx) : "";
	e[1] = p.rx ? mfd_session_error(p.rx) : "";
	fprintf(stderr, "sender: %s\nreceiver: %s\n", e[0], e[1]);
	for (int i = 0; r && i < 2; i++)
		if (strstr(e[i], "RLIMIT_MEMLOCK is 8192 KiB") &&
		    strstr(e[i], "ulimit -l"))
			r = 1;
	/* no library thread may still run when the process exits */
	pair_free(&p);
	return r == 1 ? 0 : 1;
}

static void test_memlock(void)
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		execl("/proc/self/exe", "test-rdma", "--memlock", listen_uri,
		      (char *)NULL);
		_exit(127);
	}
	CU_ASSERT_FATAL(pid > 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
	static const struct test tests[] = {
		{ "none, 1 channel", test_none_1 },
		{ "none, 2 channels", test_none_2 },
		{ "none, 4 channels", test_none_4 },
#ifdef HAVE_ZSTD
		{ "zstd, 1 channel", test_zstd_1 },
		{ "zstd, 2 channels", test_zstd_2 },
		{ "zstd, 4 channels", test_zstd_4 },
#endif
		{ "slices, registering longer than the timeout",
		  test_slices },
		{ "sender dies mid-round", test_sender_dies },
		{ "receiver dies mid-round", test_receiver_dies },
		{ "a sender gone during the commit is seen by it",
		  test_sender_left_in_commit },
		{ "rkey revoked after success", test_revoked_after_success },
		{ "rkey revoked after failure", test_revoked_after_failure },
#ifdef HAVE_ZSTD
		{ "landing slots revoked with the regions",
		  test_landing_revoked },
#endif
		{ "sessions cannot write into each other",
		  test_sessions_apart },
		{ "senders have domains of their own", test_senders_apart },
		{ "a stray cannot write", test_stray_cannot_write },
		{ "memlock too small: a clear error", test_memlock },
		{ NULL, NULL },
	};
	const char *addr = getenv("MFD_RDMA_ADDR");
	struct ibv_device **devs;
	int n = 0;

	if (argc == 3 && !strcmp(argv[1], "--dying-sender"))
		return dying_sender(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--dying-receiver"))
		return dying_receiver(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--memlock"))
		return memlock_child(argv[2]);
	if (!addr || !*addr) {
		printf("SKIP: MFD_RDMA_ADDR is not set (tests/rxe/"
		       "run-in-guest.sh sets it)\n");
		return 77;
	}
	devs = ibv_get_device_list(&n);
	if (devs)
		ibv_free_device_list(devs);
	if (n <= 0) {
		printf("SKIP: no RDMA device\n");
		return 77;
	}
	snprintf(listen_uri, sizeof(listen_uri), "rdma:%s:0", addr);
	return run_tests("rdma", tests, 900);
}
