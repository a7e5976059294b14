/* SPDX-License-Identifier: MIT */
/*
 * test-rdma.c - whole transfers over rdma: with 1, 2 and 4 channels, a
 * 64 MiB region, rounds that rewrite pages (some to zero, zero pages back
 * to data), methods none (pages as RDMA WRITEs) and zstd (compressed
 * packets on the stream, incompressible ones raw as WRITEs), compared
 * byte for byte; and a sender or a receiver process that dies mid-round,
 * which the other end must report as an error within its timeout.
 *
 * Needs an RDMA device and its IPv4 address in MFD_RDMA_ADDR (the
 * tests/rxe guest sets both up); exits 77 (skip) without them.
 */
#include "config.h"

#include <errno.h>
#include <infiniband/verbs.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "pair.h"

#define SIZE (64ull << 20)
#define TIMEOUT_MS 20000u

static char listen_uri[300];

/* Stretches of 256 pages alternate between random content (whole
 * packets that do not shrink: zstd sends them raw, as WRITEs) and
 * text-like content (compressed, on the stream). */
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
		/* both paths: compressed on the stream, raw as WRITEs */
		CU_ASSERT(st.raw_packets > 0);
		CU_ASSERT(st.raw_packets < st.packets);
	}
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
		{ "sender dies mid-round", test_sender_dies },
		{ "receiver dies mid-round", test_receiver_dies },
		{ NULL, NULL },
	};
	const char *addr = getenv("MFD_RDMA_ADDR");
	struct ibv_device **devs;
	int n = 0;

	if (argc == 3 && !strcmp(argv[1], "--dying-sender"))
		return dying_sender(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--dying-receiver"))
		return dying_receiver(argv[2]);
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
