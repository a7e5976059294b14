/* SPDX-License-Identifier: MIT */
/*
 * test-guard.c - region memory that faults (a file mapping whose file
 * was truncated) fails the session with -EFAULT and a sentence naming the
 * region and the offset, on either end and with every method: no signal
 * kills the process.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "pair.h"

#define LEN (1u << 20)

/* LEN bytes of a shared file mapping (memfd), filled with `byte`. */
static uint8_t *file_memory(int *fd, uint8_t byte)
{
	uint8_t *p;

	*fd = memfd_create("multifd-test", MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, LEN))
		return NULL;
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, byte, LEN);
	return p;
}

static void expect_fault(struct mfd_session *s, const char *how)
{
	const char *e = mfd_session_error(s);

	if (!strstr(e, "region 'ram'") || !strstr(e, how))
		fprintf(stderr, "error '%s' should name region 'ram' and '%s'\n",
			e, how);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "region 'ram'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e, how));
}

/* The sender's file shrinks before its pages are read. */
static void sender_file_shrinks(enum mfd_method m, bool checksum)
{
	uint8_t *dst = guarded_alloc(LEN), *src;
	struct mfd_config cfg;
	struct pair p;
	int fd, r;

	src = file_memory(&fd, 0x3c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	mfd_config_init(&cfg);
	cfg.method = m;
	cfg.checksum = checksum;
	cfg.timeout_ms = 3000;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(ftruncate(fd, LEN / 2), 0);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_finish(p.tx);
	CU_ASSERT_EQUAL(r, -EFAULT);
	expect_fault(p.tx, "cannot be read");
	/* and the receiver learns it from the sender */
	pair_join_rx(&p);
	if (!strstr(mfd_session_error(p.rx), "the sender failed: "))
		fprintf(stderr, "receiver: %s\n", mfd_session_error(p.rx));
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "the sender failed: "));
	pair_free(&p);
	munmap(src, LEN);
	close(fd);
	guarded_free(dst, LEN);
}

/* The receiver's file is truncated before the pages land. */
static void receiver_file_shrinks(enum mfd_method m)
{
	uint8_t *src = guarded_alloc(LEN), *dst;
	struct mfd_config cfg;
	struct pair p;
	uint64_t st = 9;
	int fd, r;

	/* compressible, so that the compressed methods' pages are written
	 * by the decompressor (a raw packet is written by the kernel) */
	memset(src, 0x5a, LEN);
	(void)st;
	dst = file_memory(&fd, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
	mfd_config_init(&cfg);
	cfg.method = m;
	cfg.timeout_ms = 3000;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(ftruncate(fd, 0), 0);
	r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_finish(p.tx);
	CU_ASSERT(r < 0);
	CU_ASSERT_EQUAL(pair_join_rx(&p), -EFAULT);
	expect_fault(p.rx, "cannot be written");
	/* and the sender learns it from the receiver */
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "the receiver failed"));
	pair_free(&p);
	munmap(dst, LEN);
	close(fd);
	guarded_free(src, LEN);
}

static void test_send_none(void) { sender_file_shrinks(MFD_METHOD_NONE, false); }
static void test_send_none_checksum(void)
{
	sender_file_shrinks(MFD_METHOD_NONE, true);
}
static void test_recv_none(void) { receiver_file_shrinks(MFD_METHOD_NONE); }
#ifdef HAVE_ZSTD
static void test_send_zstd(void) { sender_file_shrinks(MFD_METHOD_ZSTD, false); }
static void test_recv_zstd(void) { receiver_file_shrinks(MFD_METHOD_ZSTD); }
#endif
#ifdef HAVE_ZLIB
static void test_send_zlib(void) { sender_file_shrinks(MFD_METHOD_ZLIB, false); }
static void test_recv_zlib(void) { receiver_file_shrinks(MFD_METHOD_ZLIB); }
#endif

/* The application's dirty bitmap is a file mapping that shrinks before
 * mfd_send_dirty() reads it: the call fails naming the bitmap, the
 * process lives, and the receiver learns that the sender failed. */
static void test_bitmap_shrinks(void)
{
	uint8_t *src = guarded_alloc(LEN), *dst = guarded_alloc(LEN);
	long pg = sysconf(_SC_PAGESIZE);
	struct mfd_config cfg;
	uint64_t *bitmap, queued = 1;
	struct pair p;
	int fd;

	memset(src, 0x77, LEN);
	fd = memfd_create("multifd-bitmap", MFD_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, pg) == 0);
	bitmap = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED,
		      fd, 0);
	CU_ASSERT_FATAL(bitmap != MAP_FAILED);
	bitmap[0] = 0x5;
	bitmap[3] = 1ull << 63;
	mfd_config_init(&cfg);
	cfg.timeout_ms = 3000;
	CU_ASSERT_FATAL(pair_start(&p, &cfg, "tcp:127.0.0.1:0", src, dst,
				   LEN) == 0);
	CU_ASSERT_EQUAL(ftruncate(fd, 0), 0);
	CU_ASSERT_EQUAL(mfd_send_dirty(p.tx, p.region, bitmap, &queued),
			-EFAULT);
	CU_ASSERT_EQUAL(queued, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.tx),
				      "dirty bitmap of region 'ram'"));
	CU_ASSERT(mfd_send_finish(p.tx) < 0);
	CU_ASSERT(pair_join_rx(&p) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mfd_session_error(p.rx),
				      "the sender failed: "));
	pair_free(&p);
	munmap(bitmap, (size_t)pg);
	close(fd);
	guarded_free(src, LEN);
	guarded_free(dst, LEN);
}

/* With no_sigbus_handler, a session leaves the process's SIGBUS
 * disposition alone (checked in a child, whose disposition is its own). */
static void test_no_handler(void)
{
	pid_t pid = fork();
	int st = 0;

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct mfd_config cfg;
		struct mfd_session *s;
		struct sigaction sa;
		char err[200];
		int bad = 0;

		signal(SIGBUS, SIG_DFL);
		mfd_config_init(&cfg);
		cfg.uri = "tcp:127.0.0.1:0";
		cfg.no_sigbus_handler = true;
		bad |= mfd_session_new(&cfg, MFD_ROLE_RECV, &s, err,
				       sizeof(err)) != 0;
		bad |= !bad && mfd_session_start(s) != 0;
		bad |= sigaction(SIGBUS, NULL, &sa) != 0 ||
		       sa.sa_handler != SIG_DFL;
		mfd_session_free(s);
		/* and without it, a handler is installed */
		cfg.no_sigbus_handler = false;
		bad |= mfd_session_new(&cfg, MFD_ROLE_RECV, &s, err,
				       sizeof(err)) != 0;
		bad |= !bad && mfd_session_start(s) != 0;
		bad |= sigaction(SIGBUS, NULL, &sa) != 0 ||
		       sa.sa_handler == SIG_DFL;
		mfd_session_free(s);
		_exit(bad ? 1 : 0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	static const struct test tests[] = {
		{ "no_sigbus_handler: the process's SIGBUS left alone",
		  test_no_handler },
		{ "sender's file shrinks, none", test_send_none },
		{ "the dirty bitmap's file shrinks", test_bitmap_shrinks },
		{ "sender's file shrinks, none + checksum",
		  test_send_none_checksum },
		{ "receiver's file shrinks, none", test_recv_none },
#ifdef HAVE_ZSTD
		{ "sender's file shrinks, zstd", test_send_zstd },
		{ "receiver's file shrinks, zstd", test_recv_zstd },
#endif
#ifdef HAVE_ZLIB
		{ "sender's file shrinks, zlib", test_send_zlib },
		{ "receiver's file shrinks, zlib", test_recv_zlib },
#endif
		{ NULL, NULL },
	};

	return run_tests("guard", tests, 120);
}
