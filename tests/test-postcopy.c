/* SPDX-License-Identifier: MIT */
/*
 * test-postcopy.c - postcopy: a precopy round, pages dirtied after it,
 * the switch; a guest thread on the receiver touches pages while the
 * stream runs (they fault and are fetched on demand); at the end the
 * memory is the sender's, dirtied pages with their new content. Then
 * failures: a cancelled sender, a silent one, bad answers and requests.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "pair.h"

#define PS 4096u

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Fresh private anonymous memory, as postcopy wants it. */
static uint8_t *anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A shared mapping of a new memfd, as a hypervisor's guest RAM. */
static uint8_t *memfd_shared(size_t len)
{
	int fd = memfd_create("mfd-postcopy", MFD_CLOEXEC);
	void *p = MAP_FAILED;

	if (fd >= 0 && ftruncate(fd, (off_t)len) == 0)
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd); /* the mapping keeps the file */
	return p == MAP_FAILED ? NULL : p;
}

/* Whether the mapping that holds p carries the VmFlags flag `flag` ("nh":
 * MADV_NOHUGEPAGE) in /proc/self/smaps. */
static bool vm_flag(const void *p, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool inside = false, found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char *tok;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (!inside || strncmp(line, "VmFlags:", 8))
			continue;
		for (tok = strtok(line + 8, " \n"); tok && !found;
		     tok = strtok(NULL, " \n"))
			found = !strcmp(tok, flag);
		inside = false;
	}
	fclose(f);
	return found;
}

/* A guest on the receiver: once the switch is done, read `n` pages
 * (random ones of `want`, or in order) and compare each with the
 * sender's final content. */
struct guest {
	struct mfd_session *rx;
	const uint8_t *src, *dst;
	uint64_t pages;
	const uint64_t *want; /* page indexes to touch, or NULL: any */
	uint64_t nwant;
	unsigned n;
	struct mfd_session *cancel; /* cancelled after cancel_after reads */
	unsigned cancel_after;
	int wait_result;
	unsigned wrong; /* pages that read other than the final content */
	double done_at;
	pthread_t t;
};

static void *guest_main(void *arg)
{
	struct guest *g = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	g->wait_result = mfd_recv_postcopy_wait(g->rx, 20000);
	for (unsigned i = 0; g->wait_result == 0 && i < g->n; i++) {
		uint64_t r = test_rng(&seed);
		uint64_t pg = g->want ? g->want[r % g->nwant] : r % g->pages;

		if (memcmp(g->dst + pg * PS, g->src + pg * PS, PS))
			g->wrong++;
		if (g->cancel && i + 1 == g->cancel_after)
			mfd_session_cancel_reason(g->cancel,
						  "the test says stop");
	}
	g->done_at = now_s();
	return NULL;
}

static int guest_start(struct guest *g)
{
	return -pthread_create(&g->t, NULL, guest_main, g);
}

static void set_bit(uint64_t *map, uint64_t pg)
{
	map[pg / 64] |= 1ull << (pg % 64);
}

/*
 * The whole path: round 1 of every page, a quarter of the pages rewritten
 * (a tenth of those to zero), the switch with those as the dirty set, a
 * stream slowed to 32 MiB/s so that the guest's touches come before it.
 */
static void test_postcopy(const char *uri, enum mfd_method method,
			  bool verify_prefault, bool shared)
{
	const uint64_t len = 32ull << 20, pages = len / PS;
	uint8_t *src = anon(len), *dst = shared ? memfd_shared(len) : anon(len);
	uint8_t *old = malloc(len);
	uint64_t *map = calloc(pages / 64 + 1, 8), *dirty = calloc(pages, 8);
	const uint64_t *maps[1] = { map };
	uint64_t seed = 42, ndirty = 0;
	struct mfd_config cfg;
	struct mfd_stats rs, ts;
	struct guest g = { 0 };
	struct pair p;
	unsigned stale = 0, changed = 0;

	CU_ASSERT_FATAL(src && dst && old && map && dirty);
	fill_random(src, len, &seed);
	/* zero pages the receiver never writes: missing after the switch,
	 * and in no stream */
	for (uint64_t pg = 0; pg < pages; pg += 16)
		memset(src + pg * PS, 0, PS);
	mfd_config_init(&cfg);
	cfg.postcopy = true;
	cfg.method = method;
	cfg.channels = 2;
	cfg.timeout_ms = 10000;
	cfg.max_bandwidth = 32u << 20;
	/* digests read every page at the end, the never-sent ones too; a
	 * prefault must not race the drop of the pages still to come */
	cfg.verify = verify_prefault;
	cfg.prefault = verify_prefault;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, uri, src, dst, len), 0);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	memcpy(old, src, len);
	for (uint64_t pg = 0; pg < pages; pg++) {
		if (test_rng(&seed) % 4)
			continue;
		if (ndirty % 10 == 9)
			memset(src + pg * PS, 0, PS);
		else
			fill_random(src + pg * PS, PS, &seed);
		set_bit(map, pg);
		dirty[ndirty++] = pg;
	}
	g.rx = p.rx;
	g.src = src;
	g.dst = dst;
	g.pages = pages;
	g.want = dirty;
	g.nwant = ndirty;
	g.n = 400;
	CU_ASSERT_EQUAL_FATAL(guest_start(&g), 0);
	CU_ASSERT_EQUAL(mfd_send_postcopy(p.tx, maps), 0);
	/* only the end is valid now */
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), -EINVAL);
	CU_ASSERT_EQUAL(mfd_send_postcopy(p.tx, maps), -EALREADY);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	pthread_join(g.t, NULL);
	CU_ASSERT_EQUAL(g.wait_result, 0);
	CU_ASSERT_EQUAL(g.wrong, 0);
	CU_ASSERT(memcmp(src, dst, len) == 0);
	/* single pages dropped out of a huge page would free nothing: the
	 * receiver kept huge pages out of its memory from the start */
	if (!shared)
		CU_ASSERT(vm_flag(dst, "nh"));
	CU_ASSERT(!vm_flag(src, "nh"));
	for (uint64_t i = 0; i < ndirty; i++) {
		uint64_t pg = dirty[i];

		/* a page rewritten to what it held reads the same, fine */
		changed += memcmp(src + pg * PS, old + pg * PS, PS) != 0;
		stale += memcmp(dst + pg * PS, src + pg * PS, PS) != 0;
	}
	CU_ASSERT_EQUAL(stale, 0);
	CU_ASSERT(changed > ndirty / 2);
	mfd_session_stats(p.rx, &rs);
	mfd_session_stats(p.tx, &ts);
	CU_ASSERT(rs.postcopy_requests > 0);
	CU_ASSERT(rs.postcopy_demand_pages > 0);
	CU_ASSERT(rs.postcopy_stream_pages > 0);
	CU_ASSERT(rs.postcopy_demand_pages + rs.postcopy_stream_pages <=
		  ndirty);
	CU_ASSERT_EQUAL(ts.postcopy_requests, rs.postcopy_requests);
	CU_ASSERT(ts.postcopy_stream_pages + ts.postcopy_demand_pages >=
		  ndirty);
	CU_ASSERT(rs.postcopy_latency_p50_us > 0);
	CU_ASSERT(rs.postcopy_latency_p50_us <= rs.postcopy_latency_p90_us);
	CU_ASSERT(rs.postcopy_latency_p99_us <= rs.postcopy_latency_max_us);
	CU_ASSERT(mfd_recv_postcopy_wait(p.rx, 0) == 0);
	pair_free(&p);
	munmap(src, len);
	munmap(dst, len);
	free(old);
	free(map);
	free(dirty);
}

static void test_tcp(void)
{
	test_postcopy("tcp:127.0.0.1:0", MFD_METHOD_NONE, false, false);
}

/* shmem: the switch punches the pages still to come out of the file */
static void test_memfd(void)
{
	test_postcopy("tcp:127.0.0.1:0", MFD_METHOD_NONE, false, true);
}

static void test_memfd_verify(void)
{
	test_postcopy("tcp:127.0.0.1:0", MFD_METHOD_NONE, true, true);
}

static void test_unix(void)
{
	char uri[64];

	/* this process's own path: two runs at once must not meet */
	snprintf(uri, sizeof(uri), "unix:/tmp/mfd-postcopy-%d.sock",
		 (int)getpid());
	test_postcopy(uri, MFD_METHOD_NONE, true, false);
}
static void test_zstd(void)
{
	enum mfd_method m;

	if (mfd_method_parse("zstd", &m) == 0)
		test_postcopy("tcp:127.0.0.1:0", m, false, false);
}

/* This process's TCP sockets with keep-alive probes after idle_s. */
static unsigned keepalive_sockets(int idle_s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name), on = 0, idle = 0;
		socklen_t l1 = sizeof(on), l2 = sizeof(idle);

		if (e->d_name[0] != '.' && fd != dirfd(d) &&
		    !getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &l1) && on &&
		    !getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &l2) &&
		    idle == idle_s)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Without a switch the wait answers 1 at the end: all is there. The
 * urgent connection idles meanwhile: both of its ends send keep-alive
 * probes after a third of the timeout, the other connections none. */
static void test_no_switch(void)
{
	const uint64_t len = 1u << 20;
	uint8_t *src = anon(len), *dst = anon(len);
	struct mfd_config cfg;
	struct pair p;

	mfd_config_init(&cfg);
	cfg.postcopy = true;
	cfg.channels = 2;
	cfg.timeout_ms = 9000;
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
					 len), 0);
	CU_ASSERT_EQUAL(mfd_recv_postcopy_wait(p.rx, 50), -ETIMEDOUT);
	memset(src, 7, len);
	CU_ASSERT_EQUAL(mfd_send_region(p.tx, p.region), 0);
	CU_ASSERT_EQUAL(mfd_send_sync(p.tx), 0);
	CU_ASSERT_EQUAL(keepalive_sockets(3), 2);
	CU_ASSERT_EQUAL(pair_finish(&p), 0);
	CU_ASSERT_EQUAL(mfd_recv_postcopy_wait(p.rx, 1000), 1);
	CU_ASSERT(memcmp(src, dst, len) == 0);
	pair_free(&p);
	munmap(src, len);
	munmap(dst, len);
}

/* rdma: and fd: cannot carry the urgent channel: refused up front. */
static void test_refused_transports(void)
{
	struct mfd_config cfg;
	struct mfd_session *s;
	char err[256] = "";

	mfd_config_init(&cfg);
	cfg.postcopy = true;
	cfg.channels = 1;
	cfg.uri = "fd:0";
	CU_ASSERT_EQUAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err,
					sizeof(err)),
			-ENOTSUP);
	CU_ASSERT(strstr(err, "postcopy needs tcp: or unix: endpoints") != NULL);
	cfg.uri = "rdma:127.0.0.1:0";
	err[0] = 0;
	CU_ASSERT(mfd_session_new(&cfg, MFD_ROLE_SEND, &s, err, sizeof(err)) <
		  0);
	CU_ASSERT(err[0] != 0);
}

/* A sender cancelled while the guest reads pages still missing: the
 * receiver fails soon, with the sender's reason (which comes on a bulk
 * channel while the urgent one closes), and the guest is not left
 * blocked in a fault. */
static void cancelled_sender(const char *uri)
{
	const uint64_t len = 64ull << 20, pages = len / PS;
	uint8_t *src = anon(len), *dst = anon(len);
	uint64_t *map = calloc(pages / 64, 8), seed = 7;
	const uint64_t *maps[1] = { map };
	struct mfd_config cfg;
	struct guest g = { 0 };
	struct pair p;
	double t0;

	CU_ASSERT_FATAL(src && dst && map);
	fill_random(src, len, &seed);
	mfd_config_init(&cfg);
	cfg.postcopy = true;
	cfg.timeout_ms = 3000;
	cfg.max_bandwidth = 8u << 20; /* 8 s of stream: it is cut short */
	CU_ASSERT_EQUAL_FATAL(pair_start(&p, &cfg, uri, src, dst, len), 0);
	memset(map, 0xff, pages / 8);
	g.rx = p.rx;
	g.src = src;
	g.dst = dst;
	g.pages = pages;
	g.n = 20000; /* reads on past the failure */
	g.cancel = p.tx;
	g.cancel_after = 100; /* at most 800 pages fetched by then */
	CU_ASSERT_EQUAL_FATAL(guest_start(&g), 0);
	t0 = now_s();
	CU_ASSERT_EQUAL(mfd_send_postcopy(p.tx, maps), -ECANCELED);
	CU_ASSERT_NOT_EQUAL(pair_join_rx(&p), 0);
	CU_ASSERT(now_s() - t0 < 3.0);
	if (!strstr(mfd_session_error(p.rx),
		    "the sender failed: the test says stop")) {
		fprintf(stderr, "%s: the receiver says '%s'\n", uri,
			mfd_session_error(p.rx));
		CU_FAIL("the receiver was not told why");
	}
	pthread_join(g.t, NULL);
	CU_ASSERT_EQUAL(g.wait_result, 0);
	CU_ASSERT(g.done_at - t0 < 5.0);
	CU_ASSERT(g.wrong > 0); /* missing pages read zero: incomplete */
	pair_free(&p);
	munmap(src, len);
	munmap(dst, len);
	free(map);
}

static void test_cancelled_sender(void)
{
	cancelled_sender("tcp:127.0.0.1:0");
	cancelled_sender("unix:/tmp/mfd-postcopy-cancel.sock");
}

/*
 * A hand-made postcopy sender of one channel and its urgent channel,
 * region "ram" of len bytes; it switches at once with every page still
 * to come.
 */
struct raw_pc {
	struct mfd_conn *c0, *cu;
};

static int raw_pc_start(struct raw_pc *rp, const char *uri, uint64_t len)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0x5ca1ab1e,
			       .channels = 1,
			       .page_size = PS,
			       .pages_per_packet = 128,
			       .features = MFD_FEAT_POSTCOPY,
			       .region_count = 1 };
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	uint64_t words = len / PS / 64;
	uint8_t sw[MFD_HDR_SIZE + 8 * 64];
	struct mfd_hdr h = { .type = MFD_PKT_POSTCOPY,
			     .payload_len = (uint32_t)(8 * words) };
	int32_t st0 = -1, stu = -1;
	size_t n = MFD_INIT_SIZE;

	mfd__init_encode(&in, buf);
	n += (size_t)mfd__region_encode("ram", len, buf + n, sizeof(buf) - n);
	rp->c0 = raw_connect_bytes(uri, buf, n);
	in.channel = 1;
	in.region_count = 0;
	mfd__init_encode(&in, buf);
	rp->cu = raw_connect_bytes(uri, buf, MFD_INIT_SIZE);
	if (!rp->c0 || !rp->cu || raw_ack(rp->c0, &st0) || raw_ack(rp->cu, &stu) ||
	    st0 || stu || words > 64)
		return -EPROTO;
	mfd__hdr_encode(&h, sw);
	memset(sw + MFD_HDR_SIZE, 0xff, 8 * words);
	return mfd__tp_send_buf(rp->c0, sw, MFD_HDR_SIZE + 8 * words);
}

static void raw_pc_close(struct raw_pc *rp)
{
	mfd__tp_close(rp->c0);
	mfd__tp_close(rp->cu);
}

/* Read a request: its offset, or -1. */
static int64_t raw_read_request(struct raw_pc *rp, uint64_t len)
{
	uint8_t buf[MFD_HDR_SIZE + MFD_REQUEST_SIZE];
	struct mfd_limits lim = { .page_size = PS, .pages_per_packet = 128,
				  .region_count = 1,
				  .features = MFD_FEAT_POSTCOPY };
	struct mfd_hdr h;
	uint64_t off, n;

	if (mfd__tp_recv_buf(rp->cu, buf, sizeof(buf)) ||
	    mfd__hdr_decode(buf, &lim, &h, NULL, 0) ||
	    h.type != MFD_PKT_REQUEST || h.region != 0 ||
	    mfd__request_decode(buf + MFD_HDR_SIZE, PS, 128, len, &off, &n, NULL,
				0) ||
	    n != PS)
		return -1;
	return (int64_t)off;
}

/* Answer with one page at off (which may lie) of content `fill`. */
static int raw_answer(struct raw_pc *rp, uint64_t off, uint8_t fill)
{
	struct mfd_hdr h = { .type = MFD_PKT_PAGES, .round = 1, .normal = 1,
			     .payload_len = PS };
	uint8_t page[PS];

	memset(page, fill, sizeof(page));
	if (raw_send_pages(rp->cu, &h, &off))
		return -EIO;
	return mfd__tp_send_buf(rp->cu, page, sizeof(page));
}

/* One guest read of page `pg` and what it saw. */
struct toucher {
	struct mfd_session *rx;
	const volatile uint8_t *page;
	int wait_result;
	uint8_t seen;
	double done_at;
	pthread_t t;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	t->wait_result = mfd_recv_postcopy_wait(t->rx, 5000);
	if (!t->wait_result)
		t->seen = t->page[100];
	t->done_at = now_s();
	return NULL;
}

/* mode 0: a right answer; 1: an answer outside the region; 2: an
 * answer misaligned; 3: none at all (the sender went silent). */
static void hand_made_sender(int mode)
{
	const uint64_t len = 1u << 20;
	uint8_t *dst = anon(len);
	struct mfd_config cfg;
	struct toucher t = { 0 };
	struct raw_pc rp = { 0 };
	struct mfd_stats st;
	struct pair p;
	int64_t off;
	double t0;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 1000;
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, len),
			      0);
	CU_ASSERT_EQUAL_FATAL(raw_pc_start(&rp, mfd_session_uri(p.rx), len), 0);
	t.rx = p.rx;
	t.page = dst + 5 * PS;
	pthread_create(&t.t, NULL, toucher_main, &t);
	off = raw_read_request(&rp, len);
	CU_ASSERT_EQUAL(off, 5 * PS);
	t0 = now_s();
	if (mode == 0)
		CU_ASSERT_EQUAL(raw_answer(&rp, (uint64_t)off, 0xab), 0);
	if (mode == 1)
		CU_ASSERT_EQUAL(raw_answer(&rp, len, 0xab), 0);
	if (mode == 2)
		CU_ASSERT_EQUAL(raw_answer(&rp, (uint64_t)off + 8, 0xab), 0);
	pthread_join(t.t, NULL);
	CU_ASSERT_EQUAL(t.wait_result, 0);
	CU_ASSERT(t.done_at - t0 < 3.0);
	if (mode == 0) {
		CU_ASSERT_EQUAL(t.seen, 0xab);
		/* the counters follow the placement that woke the guest */
		for (int i = 0; i < 100; i++) {
			mfd_session_stats(p.rx, &st);
			if (st.postcopy_demand_pages)
				break;
			usleep(10 * 1000);
		}
		CU_ASSERT_EQUAL(st.postcopy_requests, 1);
		CU_ASSERT_EQUAL(st.postcopy_demand_pages, 1);
		mfd_session_cancel(p.rx);
	}
	CU_ASSERT_NOT_EQUAL(pair_join_rx(&p), 0);
	if (mode == 1)
		CU_ASSERT(strstr(mfd_session_error(p.rx),
				 "offset 0x100000 outside the region") != NULL);
	if (mode == 2)
		CU_ASSERT(strstr(mfd_session_error(p.rx),
				 "offset 0x5008 is not aligned") != NULL);
	if (mode != 0)
		CU_ASSERT_EQUAL(t.seen, 0); /* woken, on a page of zeros */
	if (mode == 3)
		CU_ASSERT(now_s() - t0 < 3.0);
	raw_pc_close(&rp);
	pair_free(&p);
	munmap(dst, len);
}

/* Keep-alives on a hand-made sender's channel 0 every 200 ms, so that
 * only the urgent channel's silence can end the session. */
struct alive {
	struct raw_pc *rp;
	bool stop; /* atomic */
	pthread_t t;
};

static void *alive_main(void *arg)
{
	struct alive *a = arg;
	struct mfd_hdr h = { .type = MFD_PKT_KEEPALIVE };
	uint8_t buf[MFD_HDR_SIZE];

	mfd__hdr_encode(&h, buf);
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE) &&
	       mfd__tp_send_buf(a->rp->c0, buf, sizeof(buf)) == 0)
		usleep(200 * 1000);
	return NULL;
}

/*
 * 300 threads fault at once, each on a page of its own: every request
 * is tracked, the first 256 as the rest. All are answered but the one
 * read last, which the receiver must time out by itself, naming it,
 * and wake its thread on zeros.
 */
static void test_many_faults(void)
{
	enum { N = 300 };
	const uint64_t len = 2u << 20; /* 512 pages */
	uint8_t *dst = anon(len);
	struct toucher *t = calloc(N, sizeof(*t));
	struct mfd_config cfg;
	struct raw_pc rp = { 0 };
	struct alive al = { .rp = &rp };
	struct pair p;
	unsigned got = 0, right = 0;
	int64_t off = -1, last = -1;
	char want[80];
	double t0;

	CU_ASSERT_FATAL(dst && t);
	mfd_config_init(&cfg);
	cfg.timeout_ms = 1500;
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, len),
			      0);
	CU_ASSERT_EQUAL_FATAL(raw_pc_start(&rp, mfd_session_uri(p.rx), len), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&al.t, NULL, alive_main, &al), 0);
	for (unsigned k = 0; k < N; k++) {
		t[k].rx = p.rx;
		t[k].page = dst + (uint64_t)k * PS;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[k].t, NULL,
						     toucher_main, &t[k]),
				      0);
	}
	/* every request first, then the answers: all N wait at once */
	int64_t *offs = calloc(N, sizeof(*offs));

	CU_ASSERT_FATAL(offs != NULL);
	while (got < N && (off = raw_read_request(&rp, len)) >= 0)
		offs[got++] = off;
	CU_ASSERT_EQUAL(got, N);
	if (got)
		last = offs[got - 1];
	for (unsigned k = 0; k + 1 < got; k++)
		CU_ASSERT_EQUAL(raw_answer(&rp, (uint64_t)offs[k], 0xab), 0);
	t0 = now_s();
	CU_ASSERT_EQUAL(pair_join_rx(&p), -ETIMEDOUT);
	CU_ASSERT(now_s() - t0 < 5.0);
	__atomic_store_n(&al.stop, true, __ATOMIC_RELEASE);
	pthread_join(al.t, NULL);
	snprintf(want, sizeof(want), "the request for page 0x%llx of region",
		 (unsigned long long)last);
	CU_ASSERT(strstr(mfd_session_error(p.rx), want) != NULL);
	for (unsigned k = 0; k < N; k++) {
		pthread_join(t[k].t, NULL);
		if ((int64_t)k * PS == last) {
			CU_ASSERT_EQUAL(t[k].seen, 0);
		} else {
			right += t[k].seen == 0xab;
		}
	}
	CU_ASSERT_EQUAL(right, N - 1);
	raw_pc_close(&rp);
	pair_free(&p);
	free(offs);
	free(t);
	munmap(dst, len);
}

static void test_answer_good(void) { hand_made_sender(0); }
static void test_answer_outside(void) { hand_made_sender(1); }
static void test_answer_misaligned(void) { hand_made_sender(2); }
static void test_sender_silent(void) { hand_made_sender(3); }

/* A receiver into dst, to which a hand-made sender switches: the
 * switch must fail the session with err, naming `want`, and the
 * application must learn it from mfd_recv_postcopy_wait() too. */
static void switch_refused(uint8_t *dst, uint64_t len, int err,
			   const char *want)
{
	struct mfd_config cfg;
	struct raw_pc rp = { 0 };
	struct pair p;

	mfd_config_init(&cfg);
	cfg.timeout_ms = 2000;
	CU_ASSERT_EQUAL_FATAL(rx_start(&p, &cfg, "tcp:127.0.0.1:0", dst, len),
			      0);
	CU_ASSERT_EQUAL(raw_pc_start(&rp, mfd_session_uri(p.rx), len), 0);
	CU_ASSERT_EQUAL(pair_join_rx(&p), err);
	CU_ASSERT(strstr(mfd_session_error(p.rx), want) != NULL);
	CU_ASSERT_EQUAL(mfd_recv_postcopy_wait(p.rx, 0), err);
	raw_pc_close(&rp);
	pair_free(&p);
}

/* A switch whose map names a page past the region's end is refused. */
static void test_bad_map(void)
{
	const uint64_t len = (1u << 20) + 3 * PS; /* 259 pages: 5 words */
	uint8_t *dst = anon(len);

	/* raw_pc_start sends len / PS / 64 = 4 words: one short */
	switch_refused(dst, len, -EBADMSG,
		       "POSTCOPY with a payload of 32 bytes (expected 40)");
	munmap(dst, len);
}

static void *start_main(void *tx)
{
	mfd_session_start(tx);
	return NULL;
}

/* A private mapping of a file: its file's pages would show through
 * where a page must fault, so the switch is refused. */
static void test_private_file_refused(void)
{
	const uint64_t len = 1u << 20;
	int fd = memfd_create("mfd-postcopy", 0);
	uint8_t *dst;

	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CU_ASSERT_FATAL(dst != MAP_FAILED);
	CU_ASSERT_EQUAL(pwrite(fd, "x", 1, 0), 1); /* the file has a page */
	memset(dst + PS, 1, len - PS);
	switch_refused(dst, len, -EINVAL,
		       "region 'ram' is neither private anonymous memory nor "
		       "a shared mapping of shmem");
	munmap(dst, len);
	close(fd);
}

/* A file on a disk file system cannot be put under userfaultfd: refused
 * before any page is dropped, so the file keeps its content. */
static void test_disk_file_refused(void)
{
	const uint64_t len = 1u << 20;
	char path[] = "/var/tmp/mfd-postcopy-XXXXXX";
	int fd = mkstemp(path);
	struct statfs fs;
	uint8_t *dst;
	unsigned changed = 0;

	CU_ASSERT_FATAL(fd >= 0);
	unlink(path);
	if (fstatfs(fd, &fs) || fs.f_type == TMPFS_MAGIC) {
		fprintf(stderr, "(/var/tmp is tmpfs: no disk file to try)\n");
		close(fd);
		return;
	}
	CU_ASSERT_FATAL(ftruncate(fd, (off_t)len) == 0);
	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(dst != MAP_FAILED);
	memset(dst, 0x5a, len);
	switch_refused(dst, len, -EINVAL,
		       "region 'ram' cannot be put under userfaultfd");
	for (uint64_t i = 0; i < len; i++)
		changed += dst[i] != 0x5a;
	CU_ASSERT_EQUAL(changed, 0);
	munmap(dst, len);
	close(fd);
}

/*
 * A hand-made receiver for a real postcopy sender: it accepts channel 0
 * and the urgent channel, then sends a request outside the region. The
 * sender must fail naming the offset, without reading outside.
 */
/* A hand-made receiver's request for [off, off + rlen): the sender
 * fails naming `want`. */
static void bad_request(uint64_t off, uint64_t rlen, const char *want)
{
	const uint64_t len = 1u << 20;
	uint8_t *src = anon(len);
	struct mfd_listener *l;
	struct mfd_conn *c[2] = { 0 }, *cu = NULL;
	struct mfd_uri u;
	struct mfd_config cfg;
	struct mfd_session *tx;
	uint64_t map[4] = { 0 };
	const uint64_t *maps[1] = { map };
	uint8_t buf[MFD_HDR_SIZE + MFD_REQUEST_SIZE + MFD_REGION_ENTRY_MAX];
	struct mfd_ack a = { 0 };
	struct mfd_hdr h = { .type = MFD_PKT_REQUEST, .packet_num = 9,
			     .payload_len = MFD_REQUEST_SIZE };
	char err[256];
	pthread_t st;

	memset(src, 1, len);
	CU_ASSERT_EQUAL_FATAL(mfd__uri_parse("tcp:127.0.0.1:0", &u, err,
					     sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(mfd__tcp_ops.listen(&u, &l, err, sizeof(err)),
			      0);
	mfd_config_init(&cfg);
	cfg.uri = l->uri;
	cfg.channels = 1;
	cfg.postcopy = true;
	cfg.timeout_ms = 3000;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	CU_ASSERT(mfd_session_add_region(tx, "ram", src, len, false) == 0);
	/* the sender connects both and waits for both answers */
	CU_ASSERT_EQUAL_FATAL(pthread_create(&st, NULL, start_main, tx), 0);
	for (int i = 0; i < 2; i++) {
		struct mfd_init in;

		CU_ASSERT_EQUAL_FATAL(mfd__tcp_ops.accept(l, 5000, &c[i], err,
							  sizeof(err)), 0);
		mfd__tp_set_timeout(c[i], 5000);
		CU_ASSERT_EQUAL(mfd__tp_recv_buf(c[i], buf, MFD_INIT_SIZE), 0);
		CU_ASSERT_EQUAL(mfd__init_decode(buf, &in, err, sizeof(err)), 0);
		CU_ASSERT(in.features & MFD_FEAT_POSTCOPY);
		if (in.channel == 1)
			cu = c[i];
		else /* the region table: "ram" and its length */
			CU_ASSERT_EQUAL(mfd__tp_recv_buf(c[i], buf, 2 + 3 + 8),
					0);
	}
	CU_ASSERT_FATAL(cu != NULL);
	mfd__ack_encode(&a, buf);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(mfd__tp_send_buf(c[i], buf, MFD_ACK_SIZE), 0);
	pthread_join(st, NULL);
	map[0] = 1; /* one page to stream, well inside the buffers */
	CU_ASSERT_EQUAL(mfd_send_postcopy(tx, maps), 0);
	mfd__hdr_encode(&h, buf);
	mfd__request_encode(off, rlen, buf + MFD_HDR_SIZE);
	CU_ASSERT_EQUAL(mfd__tp_send_buf(cu, buf, MFD_HDR_SIZE +
							  MFD_REQUEST_SIZE),
			0);
	CU_ASSERT_NOT_EQUAL(mfd_send_finish(tx), 0);
	CU_ASSERT(strstr(mfd_session_error(tx), "request 9 for region 'ram'") !=
		  NULL);
	if (!strstr(mfd_session_error(tx), want))
		fprintf(stderr, "'%s' does not say '%s'\n",
			mfd_session_error(tx), want);
	CU_ASSERT(strstr(mfd_session_error(tx), want) != NULL);
	mfd_session_free(tx);
	for (int i = 0; i < 2; i++)
		mfd__tp_close(c[i]);
	mfd__tp_listener_close(l);
	munmap(src, len);
}

static void test_bad_request(void)
{
	bad_request(1u << 20, PS, "offset 0x100000 + 4096 bytes outside the region");
}

/* more than one answer's worth (8 pages) from 32 bytes of request */
static void test_request_too_long(void)
{
	bad_request(0, 9 * PS, "length 36864 is not 1..8 whole pages");
}

int main(void)
{
	static const struct test tests[] = {
		{ "postcopy over tcp", test_tcp },
		{ "postcopy over unix, verify and prefault", test_unix },
		{ "postcopy with zstd", test_zstd },
		{ "postcopy into a shared memfd", test_memfd },
		{ "postcopy into a shared memfd, verify and prefault",
		  test_memfd_verify },
		{ "postcopy offered, never switched; urgent keep-alive",
		  test_no_switch },
		{ "rdma: and fd: refuse postcopy", test_refused_transports },
		{ "a sender cancelled during postcopy", test_cancelled_sender },
		{ "an answer from a hand-made sender", test_answer_good },
		{ "an answer outside the region", test_answer_outside },
		{ "a misaligned answer", test_answer_misaligned },
		{ "a sender that goes silent", test_sender_silent },
		{ "300 faults at once, the last one unanswered",
		  test_many_faults },
		{ "a switch map of the wrong size", test_bad_map },
		{ "a private mapping of a file is refused",
		  test_private_file_refused },
		{ "a file on disk is refused, its content kept",
		  test_disk_file_refused },
		{ "a request outside the region", test_bad_request },
		{ "a request of more than 8 pages", test_request_too_long },
		{ NULL, NULL },
	};

	if (geteuid() != 0 && access("/proc/sys/vm/unprivileged_userfaultfd",
				     F_OK) == 0) {
		FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
		int v = f ? fgetc(f) : '0';

		if (f)
			fclose(f);
		if (v != '1') {
			fprintf(stderr, "SKIP: userfaultfd needs root or "
					"vm.unprivileged_userfaultfd = 1\n");
			return 77;
		}
	}
	return run_tests("postcopy", tests, 300);
}
