/* SPDX-License-Identifier: MIT */
/*
 * memory.h - the memory the tool moves: files mapped whole, and fresh
 * anonymous memory that asks for transparent huge pages, since on these
 * machines the first touch of 4 KiB pages costs more than the copy.
 */
#ifndef MFD_MEMORY_H
#define MFD_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mapping {
	void *mem;
	uint64_t len;
	int fd; /* -1 for anonymous memory */
};

/* Anonymous, zero, huge-page-advised memory of len bytes, 2 MiB aligned. */
int map_anon(uint64_t len, struct mapping *m);
/* Map an existing file to send. Its size must be a page multiple. */
int map_file_read(const char *path, uint32_t page_size, struct mapping *m,
		  char *err, size_t errlen);
/* Map an existing file to receive into; its size must be a page
 * multiple. */
int map_file_write(const char *path, uint32_t page_size, struct mapping *m,
		   char *err, size_t errlen);
/* Create (or truncate) a file of len bytes and map it for writing. */
int map_file_create(const char *path, uint64_t len, struct mapping *m,
		    char *err, size_t errlen);
void unmap(struct mapping *m);

#endif
