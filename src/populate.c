/* SPDX-License-Identifier: MIT */
/* populate.c - see populate.h. */
#include "config.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "populate.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static uintptr_t sys_page;
static bool supported;

/* Kernels before 5.14 refuse the advice: ask once, on a page of our own
 * stack, which is always mapped. */
static void probe(void)
{
	uint8_t here;

	sys_page = (uintptr_t)sysconf(_SC_PAGESIZE);
	supported = !madvise((void *)((uintptr_t)&here & ~(sys_page - 1)),
			     sys_page, MADV_POPULATE_READ);
}

void mfd__populate(uint8_t *base, const uint64_t *offsets, uint32_t n,
		   uint32_t page_size, bool write)
{
	int advice = write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;

	pthread_once(&probe_once, probe);
	for (uint32_t i = 0; supported && i < n;) {
		uint32_t j = i + 1;
		uintptr_t start, end;

		while (j < n && offsets[j] == offsets[j - 1] + page_size)
			j++;
		/* a page size below the system's: whole system pages */
		start = (uintptr_t)(base + offsets[i]) & ~(sys_page - 1);
		end = ((uintptr_t)(base + offsets[j - 1]) + page_size +
		       sys_page - 1) & ~(sys_page - 1);
		(void)madvise((void *)start, end - start, advice);
		i = j;
	}
}
