/* SPDX-License-Identifier: MIT */
/*
 * sock-file.h - a sender's region bytes from the file the region maps
 * straight to the socket with sendfile() (the register_file op of tcp:
 * and unix:). Used by tcp.c's send loop, which keeps the deadline; the
 * call never waits for the socket (it may wait for the file's pages to
 * be read in, as a read() would).
 */
#ifndef MFD_SOCK_FILE_H
#define MFD_SOCK_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "multifd.h"

struct sock_file {
	const uint8_t *mem; /* the region's mapping */
	uint64_t len;
	int fd;
	uint64_t off; /* of mem[0] in the file */
};

struct sock_files {
	struct sock_file f[MFD_MAX_REGIONS];
	unsigned n;
};

int mfd__sock_files_add(struct sock_files *fs, const void *mem, uint64_t len,
			int fd, uint64_t off);

/* The file that holds [p, p + len) whole, or NULL. */
const struct sock_file *mfd__sock_file_find(const struct sock_files *fs,
					    const void *p, size_t len);

/* The offset in f's file of the byte at p. */
uint64_t mfd__sock_file_off(const struct sock_file *f, const void *p);

/* One non-blocking sendfile() of [p, p + len), inside f, to sock: the
 * bytes sent, or -errno (-EAGAIN: the socket is full; -ENODATA: the file
 * ends before p + len, it shrank). */
ssize_t mfd__sock_file_send(int sock, const struct sock_file *f,
			    const void *p, size_t len);

#endif
