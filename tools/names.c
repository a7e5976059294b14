/* SPDX-License-Identifier: MIT */
/*
 * names.c - a received file takes its name by an atomic exchange with
 * what the name held (renameat2 RENAME_EXCHANGE), so that the old file
 * stays, under the temporary name, until the commit is done. Where the
 * file system or the kernel has no exchange (NFS, CIFS, FUSE, kernels
 * before 3.15, sandboxes that refuse renameat2), it is made of a hard
 * link and two renames, or of three renames where hard links are not
 * allowed either: the old file never loses its last name.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "names.h"

void path_split(const char *path, char *dir, size_t dirlen,
		       const char **base)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		snprintf(dir, dirlen, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(dir, dirlen, "/");
		*base = slash + 1;
	} else {
		snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
		*base = slash + 1;
	}
}

/* The kernel or the file system has no exchange. */
static bool no_exchange(int e)
{
	return e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP;
}

/* a and b swap names without an exchange: b's file gets a third name
 * first (a hard link, or a rename where links are not allowed), so that
 * it is never without one; a step that fails puts both names back.
 * -ENOENT when b names nothing, -EISDIR when it is a directory (which a
 * rename cannot put back over a file). */
static int swap_names(const char *a, const char *b)
{
	struct stat st;
	char *third;
	bool linked;
	int e = 0;

	if (lstat(b, &st))
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (asprintf(&third, "%s.old", a) < 0)
		return -ENOMEM;
	unlink(third); /* what a dead multifd of this pid left */
	linked = !link(b, third);
	if (!linked && rename(b, third)) {
		e = -errno;
	} else if (rename(a, b)) {
		e = -errno;
		if (!linked) /* where this fails, b's file keeps the third */
			rename(third, b);
	} else if (rename(third, a)) {
		e = -errno;
		/* b holds a's file and third b's: both go back */
		if (!rename(b, a))
			rename(third, b);
		linked = false;
	}
	if (linked) /* the link's spare name, where one is left */
		unlink(third);
	free(third);
	return e;
}

/* Swap the names a and b; -ENOENT when b names nothing. */
static int exchange(const char *a, const char *b)
{
	if (!renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE))
		return 0;
	if (!no_exchange(errno))
		return -errno;
	return swap_names(a, b);
}

int name_take(const char *temp, const char *path, bool *swapped)
{
	struct stat st;
	int r = exchange(temp, path);

	*swapped = false;
	if (r == -ENOENT)
		return rename(temp, path) ? -errno : 0;
	if (r)
		return r;
	/* a directory that took the path since it was checked is no file
	 * to replace: it gets its name back */
	if (!lstat(temp, &st) && S_ISDIR(st.st_mode)) {
		exchange(temp, path);
		return -EISDIR;
	}
	*swapped = true;
	return 0;
}

int name_give_back(const char *temp, const char *path, bool swapped)
{
	if (!swapped)
		return rename(path, temp) ? -errno : 0;
	return exchange(temp, path);
}
