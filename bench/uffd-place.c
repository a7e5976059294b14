/* SPDX-License-Identifier: MIT */
/*
 * uffd-place.c - what placing a page costs the receiver after the
 * postcopy switch, next to writing it into a page that is there (what a
 * precopy round does), on every other page of a region (the scattered
 * dirty set of a guest), with a second thread of the process running
 * meanwhile, as the channel threads do (it makes TLB shootdowns real):
 *
 *   write      memcpy into resident pages: the precopy round
 *   copy xN    a bounce buffer, then UFFDIO_COPY of runs of N pages
 *              (what the library does: a newly allocated page each)
 *   continue   shmem: the page written through a second mapping, then
 *              UFFDIO_CONTINUE maps it (minor mode: no allocation)
 *   move       UFFDIO_MOVE of a resident page of a pool (the stale
 *              pages, moved out at the switch) into place: no copy, no
 *              allocation (Linux 6.8 and later)
 *
 * It prints each way's cost per page as a ratio to "write", the
 * comparison the postcopy stream's rate is judged by. Ratios, not
 * timings: the machine's speed drifts.
 *
 *   bench/uffd-place [MIB]        (default 512)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFDIO_MOVE /* headers older than Linux 6.8 */
struct uffdio_move {
	__u64 dst, src, len, mode;
	__s64 move;
};
#define _UFFDIO_MOVE 0x05
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#define PS 4096

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile int spinning = 1;

static void *spin(void *arg)
{
	(void)arg;
	while (spinning)
		__asm__ volatile("pause");
	return NULL;
}

static void die(const char *what)
{
	fprintf(stderr, "uffd-place: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int uffd_new(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		die("userfaultfd");
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void uffd_register(int fd, void *mem, size_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)mem, .len = len }, .mode = mode
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
}

enum way { WRITE, COPY, CONTINUE, MOVE };

/* Seconds to place every other page of n, runs of `run` pages at a time
 * (copy only), or a negative value where the kernel lacks the way. */
static double place(enum way way, size_t n, size_t run, const uint8_t *src)
{
	bool shared = way == CONTINUE;
	int memfd = -1, uffd = -1;
	uint8_t *g, *alias = NULL, *pool = NULL;
	uint8_t *bounce = aligned_alloc(PS, 64 * PS);
	double t0, t;
	size_t k = 0;

	if (!bounce)
		die("aligned_alloc");
	memset(bounce, 1, 64 * PS);
	if (shared) {
		memfd = memfd_create("uffd-place", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, (off_t)(n * PS)))
			die("memfd_create");
	}
	g = mmap(NULL, n * PS, PROT_READ | PROT_WRITE,
		 shared ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, memfd, 0);
	if (g == MAP_FAILED)
		die("mmap");
	memset(g, 3, n * PS); /* the stale contents, resident */
	if (way == CONTINUE) {
		alias = mremap(g, 0, n * PS, MREMAP_MAYMOVE);
		uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM);
		if (alias == MAP_FAILED || uffd < 0)
			goto lacking;
		uffd_register(uffd, g, n * PS, UFFDIO_REGISTER_MODE_MINOR);
		for (size_t i = 0; i < n; i += 2) /* the switch */
			madvise(g + i * PS, PS, MADV_DONTNEED);
	} else if (way == COPY) {
		uffd = uffd_new(0);
		uffd_register(uffd, g, n * PS, UFFDIO_REGISTER_MODE_MISSING);
		for (size_t i = 0; i < n; i += 2 * run)
			madvise(g + i * PS, run * PS, MADV_DONTNEED);
	} else if (way == MOVE) {
		uffd = uffd_new(UFFD_FEATURE_MOVE);
		pool = mmap(NULL, n / 2 * PS, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (uffd < 0 || pool == MAP_FAILED)
			goto lacking;
		uffd_register(uffd, g, n * PS, UFFDIO_REGISTER_MODE_MISSING);
		uffd_register(uffd, pool, n / 2 * PS,
			      UFFDIO_REGISTER_MODE_MISSING);
		for (size_t i = 0; i < n; i += 2, k++) { /* the switch */
			struct uffdio_move m = { .dst = (uintptr_t)pool + k * PS,
						 .src = (uintptr_t)g + i * PS,
						 .len = PS };

			if (ioctl(uffd, UFFDIO_MOVE, &m))
				goto lacking;
		}
		k = 0;
	}

	t0 = now();
	for (size_t i = 0; i < n; i += 2 * run) {
		const uint8_t *from = src + (i % 64) * PS;

		switch (way) {
		case WRITE:
			memcpy(g + i * PS, from, PS);
			break;
		case COPY: {
			struct uffdio_copy c = { .dst = (uintptr_t)g + i * PS,
						 .src = (uintptr_t)bounce,
						 .len = run * PS };

			memcpy(bounce, from, run * PS);
			if (ioctl(uffd, UFFDIO_COPY, &c))
				die("UFFDIO_COPY");
			break;
		}
		case CONTINUE: {
			struct uffdio_continue c = {
				.range = { .start = (uintptr_t)g + i * PS,
					   .len = PS }
			};

			memcpy(alias + i * PS, from, PS);
			if (ioctl(uffd, UFFDIO_CONTINUE, &c))
				die("UFFDIO_CONTINUE");
			break;
		}
		case MOVE: {
			struct uffdio_move m = { .dst = (uintptr_t)g + i * PS,
						 .src = (uintptr_t)pool + k * PS,
						 .len = PS };

			memcpy(pool + k++ * PS, from, PS);
			if (ioctl(uffd, UFFDIO_MOVE, &m))
				die("UFFDIO_MOVE");
			break;
		}
		}
	}
	t = now() - t0;
	for (size_t i = 0; i < n; i += 2 * run)
		if (memcmp(g + i * PS, src + (i % 64) * PS, run * PS)) {
			fprintf(stderr, "uffd-place: page %zu is wrong\n", i);
			exit(1);
		}
	goto out;
lacking:
	t = -1;
out:
	if (uffd >= 0)
		close(uffd);
	munmap(g, n * PS);
	if (alias && alias != MAP_FAILED)
		munmap(alias, n * PS);
	if (pool && pool != MAP_FAILED)
		munmap(pool, n / 2 * PS);
	if (memfd >= 0)
		close(memfd);
	free(bounce);
	return t;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum way way;
		size_t run;
	} ways[] = {
		{ "write (precopy)", WRITE, 1 },
		{ "copy x1", COPY, 1 },
		{ "copy x2", COPY, 2 },
		{ "copy x8", COPY, 8 },
		{ "continue (shmem)", CONTINUE, 1 },
		{ "move", MOVE, 1 },
	};
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
	size_t n = mib * (1 << 20) / PS / 16 * 16;
	uint8_t *src = malloc(64 * PS);
	double base = 0;
	pthread_t t;

	if (!n || !src) {
		fprintf(stderr, "usage: uffd-place [MIB]\n");
		return 2;
	}
	for (size_t i = 0; i < 64 * PS; i++)
		src[i] = (uint8_t)(i * 7 + 1);
	if (pthread_create(&t, NULL, spin, NULL))
		die("pthread_create");
	printf("uffd-place: every other page of %zu MiB, per page, as a ratio "
	       "to a write into a resident page\n", mib);
	for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
		double secs = place(ways[w].way, n, ways[w].run, src);
		double per_page = secs / (double)(n / 2);

		if (secs < 0) {
			printf("  %-18s not in this kernel\n", ways[w].name);
			continue;
		}
		if (ways[w].way == WRITE)
			base = per_page;
		printf("  %-18s %5.1fx\n", ways[w].name, per_page / base);
	}
	spinning = 0;
	pthread_join(t, NULL);
	free(src);
	return 0;
}
