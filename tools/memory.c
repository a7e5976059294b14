/* SPDX-License-Identifier: MIT */
/* memory.c - see memory.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory.h"

#define HUGE_ALIGN (2u << 20)

int map_anon(uint64_t len, struct mapping *m)
{
	size_t span = len + HUGE_ALIGN;
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start;

	if (p == MAP_FAILED)
		return -errno;
	/* trim to a 2 MiB boundary so whole huge pages can back it */
	start = ((uintptr_t)p + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	munmap((void *)(start + len), (uintptr_t)p + span - (start + len));
	madvise((void *)start, len, MADV_HUGEPAGE);
	m->mem = (void *)start;
	m->len = len;
	m->fd = -1;
	return 0;
}

static int map_existing(const char *path, uint32_t page_size, bool write,
			struct mapping *m, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	int e;

	if (fd < 0 || fstat(fd, &st)) {
		e = errno;
		snprintf(err, errlen, "cannot open '%s': %s", path,
			 strerror(e));
		goto fail;
	}
	if (st.st_size == 0 || st.st_size % page_size) {
		e = EINVAL;
		snprintf(err, errlen,
			 "'%s' has %lld bytes: expected a non-zero multiple "
			 "of the page size %u (pad it, or pick --page-size)",
			 path, (long long)st.st_size, page_size);
		goto fail;
	}
	m->mem = mmap(NULL, (size_t)st.st_size,
		      PROT_READ | (write ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	if (m->mem == MAP_FAILED) {
		e = errno;
		snprintf(err, errlen, "cannot map '%s': %s", path, strerror(e));
		goto fail;
	}
	madvise(m->mem, (size_t)st.st_size, MADV_SEQUENTIAL);
	m->len = (uint64_t)st.st_size;
	m->fd = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -e;
}

int map_file_read(const char *path, uint32_t page_size, struct mapping *m,
		  char *err, size_t errlen)
{
	return map_existing(path, page_size, false, m, err, errlen);
}

int map_file_write(const char *path, uint32_t page_size, struct mapping *m,
		   char *err, size_t errlen)
{
	return map_existing(path, page_size, true, m, err, errlen);
}

int map_file_create(const char *path, uint64_t len, struct mapping *m,
		    char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int e;

	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		e = errno;
		snprintf(err, errlen, "cannot create '%s' of %llu bytes: %s",
			 path, (unsigned long long)len, strerror(e));
		goto fail;
	}
	m->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m->mem == MAP_FAILED) {
		e = errno;
		snprintf(err, errlen, "cannot map '%s': %s", path, strerror(e));
		goto fail;
	}
	m->len = len;
	m->fd = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -e;
}

void unmap(struct mapping *m)
{
	if (m->mem && m->mem != MAP_FAILED)
		munmap(m->mem, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->mem = NULL;
	m->fd = -1;
}
