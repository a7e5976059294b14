/* SPDX-License-Identifier: MIT */
/*
 * sock-file.c - a sender's region bytes from the region's file to the
 * socket with sendfile() (see sock-file.h).
 *
 * Why: a page sent from a shared file mapping costs a page-table entry (a
 * fault, or MADV_POPULATE_READ) and a copy into the socket. sendfile()
 * hands the page cache's pages to the socket, which keeps references: no
 * mapping, no copy on the sender. The core asks for it only where it does
 * not read the pages itself (no zero-page detection): with detection the
 * pages are mapped anyway, and the copy from a mapped page cost less here
 * than sendfile's per-page bookkeeping (README, "Against QEMU's own
 * multifd").
 *
 * Not on the receiver: splice() from the socket into the file writes
 * through the file's write path, which takes the inode lock, so the
 * channels' writes into one file ran one at a time (30 % of the
 * receiver's samples spinning on that lock, 4 channels, tmpfs).
 */
#include "config.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "sock-file.h"

int mfd__sock_files_add(struct sock_files *fs, const void *mem, uint64_t len,
			int fd, uint64_t off)
{
	if (fs->n == MFD_MAX_REGIONS)
		return -ENOSPC;
	fs->f[fs->n++] = (struct sock_file){ mem, len, fd, off };
	return 0;
}

const struct sock_file *mfd__sock_file_find(const struct sock_files *fs,
					    const void *p, size_t len)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < fs->n; i++) {
		const struct sock_file *f = &fs->f[i];

		if (b >= f->mem && len <= f->len &&
		    (uint64_t)(b - f->mem) <= f->len - len)
			return f;
	}
	return NULL;
}

uint64_t mfd__sock_file_off(const struct sock_file *f, const void *p)
{
	return f->off + (uint64_t)((const uint8_t *)p - f->mem);
}

ssize_t mfd__sock_file_send(int sock, const struct sock_file *f,
			    const void *p, size_t len)
{
	off_t off = (off_t)mfd__sock_file_off(f, p);
	ssize_t r = sendfile(sock, f->fd, &off, len);

	if (r < 0)
		return -errno;
	/* nothing sent of a non-empty range: the file ends before it */
	return r == 0 && len ? -ENODATA : r;
}
