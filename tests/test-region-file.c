/* SPDX-License-Identifier: MIT */
/*
 * test-region-file.c - a sender's region backed by a file
 * (mfd_session_region_file()): with zero-page detection off its pages
 * leave by sendfile() and the sender's mapping of them is never touched
 * (its Rss stays 0; with detection on, the same transfer maps them, which
 * shows the check can fail); over tcp: and unix:; fd: channels, whose
 * flags are the caller's, left as they were; a file that shrinks
 * mid-transfer fails both ends, the sender naming the offset; and the
 * calls refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "rx.h"
#include "multifd.h"

#define LEN (32u << 20)
#define TIMEOUT_MS 3000

static int rx_start(struct rx *rx, const char *uri, uint8_t *dst)
{
	return rx_start_len(rx, uri, dst, LEN, TIMEOUT_MS);
}

/* A memfd of LEN random bytes (every page non-zero), and its read-only
 * shared mapping, never touched here. */
static int source_file(uint8_t **map)
{
	int fd = memfd_create("test-region-file", MFD_CLOEXEC);
	uint8_t *buf = malloc(1 << 20);
	uint64_t seed = 7;

	CU_ASSERT_FATAL(fd >= 0 && buf);
	for (unsigned i = 0; i < LEN >> 20; i++) {
		fill_random(buf, 1 << 20, &seed);
		CU_ASSERT_FATAL(write(fd, buf, 1 << 20) == 1 << 20);
	}
	free(buf);
	*map = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(*map != MAP_FAILED);
	return fd;
}

/* The Rss, in KiB, of the mapping that starts at p (/proc/self/smaps). */
static long mapping_rss_kb(const void *p)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false;
	long kb = -1;

	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = true;
		else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

static struct mfd_session *sender(const char *uri, bool zero_detect)
{
	struct mfd_session *tx;
	struct mfd_config cfg;
	char err[300];

	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.channels = 4;
	cfg.timeout_ms = TIMEOUT_MS;
	cfg.zero_page_detection = zero_detect;
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err,
					      sizeof(err)), 0);
	return tx;
}

/* The file's pages from a sender at suri (NULL: where the receiver
 * listens) to a receiver at ruri; returns the Rss of the sender's mapping
 * after the transfer. */
static long transfer_at(const char *ruri, const char *suri, bool zero_detect)
{
	uint8_t *src, *dst = guarded_alloc(LEN), *want = malloc(LEN);
	int fd = source_file(&src);
	struct mfd_session *tx;
	struct rx rx = { 0 };
	long rss;

	CU_ASSERT_FATAL(want != NULL);
	CU_ASSERT_FATAL(pread(fd, want, LEN, 0) == LEN);
	CU_ASSERT_EQUAL_FATAL(rx_start(&rx, ruri, dst), 0);
	tx = sender(suri ? suri : mfd_session_uri(rx.s), zero_detect);
	CU_ASSERT_EQUAL(mfd_session_add_region(tx, "ram", src, LEN, false), 0);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 0), 0);
	close(fd); /* the session keeps its duplicate */
	CU_ASSERT_EQUAL(mfd_session_start(tx), 0);
	CU_ASSERT_EQUAL(mfd_send_region(tx, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_finish(tx), 0);
	pthread_join(rx.t, NULL);
	CU_ASSERT_EQUAL(rx.result, 0);
	CU_ASSERT(memcmp(want, dst, LEN) == 0);
	rss = mapping_rss_kb(src);
	mfd_session_free(tx);
	mfd_session_free(rx.s);
	munmap(src, LEN);
	free(want);
	guarded_free(dst, LEN);
	return rss;
}

static long transfer(const char *uri, bool zero_detect)
{
	return transfer_at(uri, NULL, zero_detect);
}

static void test_tcp(void)
{
	long rss = transfer("tcp:127.0.0.1:0", false);

	if (rss != 0)
		fprintf(stderr, "sender's mapping: Rss %ld kB\n", rss);
	CU_ASSERT_EQUAL(rss, 0);
}

static void test_unix(void)
{
	char uri[80];
	long rss;

	snprintf(uri, sizeof(uri), "unix:/tmp/test-region-file-%d.sock",
		 (int)getpid());
	rss = transfer(uri, false);
	if (rss != 0)
		fprintf(stderr, "sender's mapping: Rss %ld kB\n", rss);
	CU_ASSERT_EQUAL(rss, 0);
}

/* fd: channels are the caller's sockets: their flags stay as they were
 * (no O_NONBLOCK for sendfile), and the pages go through the mapping. */
static void test_fd_channels(void)
{
	char ruri[64], suri[64];
	int sv[4][2];

	for (int i = 0; i < 4; i++)
		CU_ASSERT_FATAL(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]));
	snprintf(ruri, sizeof(ruri), "fd:%d,%d,%d,%d", sv[0][0], sv[1][0],
		 sv[2][0], sv[3][0]);
	snprintf(suri, sizeof(suri), "fd:%d,%d,%d,%d", sv[0][1], sv[1][1],
		 sv[2][1], sv[3][1]);
	/* through the mapping: its pages are mapped afterwards */
	CU_ASSERT(transfer_at(ruri, suri, false) > 0);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT(!(fcntl(sv[i][1], F_GETFL) & O_NONBLOCK));
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

/* Zero-page detection reads the pages: through the mapping, as before. */
static void test_zero_detection_maps(void)
{
	CU_ASSERT(transfer("tcp:127.0.0.1:0", true) > 0);
}

/* The file loses its second half after the start: the sender fails,
 * saying the file ends, and the receiver within its timeout. */
static void test_shrinks(void)
{
	uint8_t *src, *dst = guarded_alloc(LEN);
	int fd = source_file(&src);
	struct mfd_session *tx;
	struct rx rx = { 0 };
	const char *e;

	CU_ASSERT_EQUAL_FATAL(rx_start(&rx, "tcp:127.0.0.1:0", dst), 0);
	tx = sender(mfd_session_uri(rx.s), false);
	CU_ASSERT_EQUAL(mfd_session_add_region(tx, "ram", src, LEN, false), 0);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 0), 0);
	CU_ASSERT_EQUAL(mfd_session_start(tx), 0);
	CU_ASSERT_FATAL(ftruncate(fd, LEN / 2) == 0);
	CU_ASSERT(mfd_send_region(tx, 0) < 0 || mfd_send_finish(tx) < 0);
	e = mfd_session_error(tx);
	if (!e || !strstr(e, "file ends before byte") || !strstr(e, "shrank")) {
		fprintf(stderr, "sender error '%s'\n", e);
		CU_FAIL("the sender does not say its file ended");
	}
	pthread_join(rx.t, NULL);
	CU_ASSERT(rx.result < 0);
	mfd_session_free(tx);
	mfd_session_free(rx.s);
	munmap(src, LEN);
	close(fd);
	guarded_free(dst, LEN);
}

static void test_refused(void)
{
	uint8_t *src, *dst = guarded_alloc(4096);
	int fd = source_file(&src), p[2];
	struct mfd_session *tx, *rxs;
	struct mfd_config cfg;
	char err[300];

	CU_ASSERT_FATAL(pipe(p) == 0);
	tx = sender("tcp:127.0.0.1:1", false);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 0), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_add_region(tx, "ram", src, LEN, false), 0);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 1, fd, 0), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, -1, fd, 0), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, -1, 0), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 100), -EINVAL);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, p[0], 0), -EINVAL);
	/* the file does not hold the region from that offset */
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 4096), -ERANGE);
	/* each refusal says why */
	CU_ASSERT(strstr(mfd_session_error(tx), "from offset 4096") != NULL);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, p[0], 0), -EINVAL);
	CU_ASSERT(strstr(mfd_session_error(tx), "is no regular file") != NULL);
	/* said twice: the second one counts, and nothing leaks */
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 0), 0);
	CU_ASSERT_EQUAL(mfd_session_region_file(tx, 0, fd, 0), 0);
	mfd_session_free(tx);

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:0";
	CU_ASSERT_EQUAL_FATAL(mfd_session_new(&cfg, MFD_ROLE_RECV, &rxs, err,
					      sizeof(err)), 0);
	CU_ASSERT_EQUAL(mfd_session_add_region(rxs, "ram", dst, 4096, true), 0);
	CU_ASSERT_EQUAL(mfd_session_region_file(rxs, 0, fd, 0), -EINVAL);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(rxs),
			       "a region's file is the sender's");
	CU_ASSERT_EQUAL(mfd_session_start(rxs), 0);
	CU_ASSERT_EQUAL(mfd_session_start(rxs), -EBUSY);
	CU_ASSERT_STRING_EQUAL(mfd_session_error(rxs),
			       "the session started already");
	mfd_session_cancel(rxs);
	mfd_session_free(rxs);
	close(p[0]);
	close(p[1]);
	munmap(src, LEN);
	close(fd);
	guarded_free(dst, 4096);
}

int main(void)
{
	static const struct test tests[] = {
		{ "tcp: pages by sendfile, the mapping untouched", test_tcp },
		{ "unix: pages by sendfile, the mapping untouched", test_unix },
		{ "fd: channels keep their flags", test_fd_channels },
		{ "zero-page detection on: through the mapping",
		  test_zero_detection_maps },
		{ "the file shrinks mid-transfer", test_shrinks },
		{ "calls refused", test_refused },
		{ NULL, NULL },
	};

	return run_tests("region-file", tests, 120);
}
