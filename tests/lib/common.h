/* SPDX-License-Identifier: MIT */
/*
 * common.h - what every CUnit program here shares: running a table of
 * tests with a wall-clock limit and an exit status that is non-zero when
 * any assertion failed, and memory fenced by guard pages.
 */
#ifndef MFD_TEST_COMMON_H
#define MFD_TEST_COMMON_H

#include <CUnit/Basic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct test {
	const char *name;
	void (*fn)(void);
};

static void test_timeout(int sig)
{
	static const char msg[] = "test timed out: a thread is hung\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);

	(void)r;
	(void)sig;
	_exit(124);
}

/* Run the tests; exit status 1 when any assertion failed, 124 when the
 * whole program ran past limit_s seconds. */
static inline int run_tests(const char *suite_name, const struct test *t,
			    unsigned limit_s)
{
	CU_pSuite suite;
	unsigned failures;

	signal(SIGALRM, test_timeout);
	signal(SIGPIPE, SIG_IGN);
	alarm(limit_s);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite(suite_name, NULL, NULL);
	for (; suite && t->name; t++)
		CU_add_test(suite, t->name, t->fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() +
		   CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}

/* len bytes (a page multiple) of zeroed memory between two inaccessible
 * guard pages: a write outside it kills the test. */
static inline uint8_t *guarded_alloc(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *p = mmap(NULL, len + 2 * pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	mprotect(p, pg, PROT_NONE);
	mprotect(p + pg + len, pg, PROT_NONE);
	return p + pg;
}

static inline void guarded_free(uint8_t *p, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	if (p)
		munmap(p - pg, len + 2 * pg);
}

static inline uint64_t test_rng(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 0x2545F4914F6CDD1Dull;
}

static inline void fill_random(uint8_t *p, size_t n, uint64_t *st)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v = test_rng(st);

		memcpy(p + i, &v, 8);
	}
}

static inline int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

#endif
