/* SPDX-License-Identifier: MIT */
/*
 * claim.c - the claim on a file name is an abstract unix socket, bound to
 * a name made of the directory's device and inode and a hash of the file
 * name: it leaves nothing on disk, and goes with the process however the
 * process ends (SIGKILL included), so no stale claim ever needs clearing.
 * A process that finds the name bound connects to it to learn the
 * holder's pid. Abstract names belong to a network namespace: receivers
 * in two namespaces do not see each other's claims.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "claim.h"
#include "names.h"

/* FNV-1a, 64 bits: file names are up to 255 bytes, the socket's name
 * only 107. Not XXH3 where libxxhash is built in: every build, with the
 * optional library or without, must name a claim the same way, or two
 * receivers of one file from different builds would not see each other. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static int claim_address(const char *path, struct sockaddr_un *a,
			 socklen_t *len)
{
	char dir[4096];
	const char *base;
	struct stat st;
	int n;

	path_split(path, dir, sizeof(dir), &base);
	if (stat(dir, &st))
		return -errno;
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	/* sun_path[0] stays 0: an abstract name */
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1,
		     "multifd-recv/%llx/%llx/%016llx",
		     (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino,
		     (unsigned long long)name_hash(base));
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

static pid_t claim_holder(const struct sockaddr_un *a, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct ucred cred = { 0 };
	socklen_t cl = sizeof(cred);
	pid_t pid = 0;

	if (fd < 0)
		return 0;
	if (!connect(fd, (const struct sockaddr *)a, len) &&
	    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl))
		pid = cred.pid;
	close(fd);
	return pid;
}

int name_claim(const char *path, pid_t *holder)
{
	struct sockaddr_un a;
	socklen_t len;
	int fd, r = claim_address(path, &a, &len);

	*holder = 0;
	if (r)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* listening, so that another claimant can ask who holds it; what
	 * they connect is never taken off the queue, so make it long */
	if (!bind(fd, (const struct sockaddr *)&a, len) &&
	    !listen(fd, SOMAXCONN))
		return fd;
	r = -errno;
	close(fd);
	if (r == -EADDRINUSE) {
		*holder = claim_holder(&a, len);
		return -EBUSY;
	}
	return r;
}
