/* SPDX-License-Identifier: MIT */
/* memory.c - see memory.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "memory.h"
#include "names.h"

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
	m->path = NULL;
	m->temp = NULL;
	m->unnamed = false;
	m->named = m->swapped = m->whole = false;
	return 0;
}

static const char *file_kind(mode_t mode)
{
	return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket" : S_ISCHR(mode) ? "a character device"
	       : S_ISBLK(mode) ? "a block device" : "not a regular file";
}

/*
 * An open file description lock over the whole file: read while sending,
 * write while receiving in place. A file system without locks is no
 * reason to fail.
 */
/* Another process's lock on fd stands in the way of ours (a write lock
 * when write): say whose, sender (a read lock) or receiver (a write
 * lock), and what it would do. */
static int busy(int fd, const char *path, bool write, char *err,
		size_t errlen)
{
	struct flock fl = { .l_type = write ? F_WRLCK : F_RDLCK,
			    .l_whence = SEEK_SET };
	bool receiving = !fcntl(fd, F_OFD_GETLK, &fl) && fl.l_type == F_WRLCK;

	snprintf(err, errlen, "'%s' is being %s by another multifd process: %s",
		 path, receiving ? "received into" : "sent",
		 !write ? "expected a file nobody writes"
		 : receiving ? "two receivers would mix their pages"
			     : "receiving onto it would destroy what it sends");
	return -EBUSY;
}

static int lock_file(int fd, const char *path, bool write, char *err,
		     size_t errlen)
{
	struct flock fl = { .l_type = write ? F_WRLCK : F_RDLCK,
			    .l_whence = SEEK_SET };

	if (!fcntl(fd, F_OFD_SETLK, &fl) ||
	    (errno != EAGAIN && errno != EACCES))
		return 0;
	return busy(fd, path, write, err, errlen);
}

static int map_existing(const char *path, uint32_t page_size, bool write,
			struct mapping *m, char *err, size_t errlen)
{
	struct stat st;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC |
				    O_NONBLOCK | O_NOCTTY);
	int e;

	if (fd < 0 || fstat(fd, &st)) {
		e = errno;
		snprintf(err, errlen, "cannot open '%s': %s", path,
			 strerror(e));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		snprintf(err, errlen,
			 "'%s' is %s: expected a regular file (or a /dev/shm "
			 "object)",
			 path, file_kind(st.st_mode));
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
	e = -lock_file(fd, path, write, err, errlen);
	if (e)
		goto fail;
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
	m->path = path;
	m->temp = NULL;
	m->unnamed = false;
	m->named = m->swapped = m->whole = false;
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

int map_file_inplace(const char *path, uint32_t page_size, struct mapping *m,
		     char *err, size_t errlen)
{
	return map_existing(path, page_size, true, m, err, errlen);
}

/* The attributes that keep a file's name and content whoever asks (root
 * included): immutable (chattr +i) and append-only (+a). 0 for fd -1 or
 * a file system without them. */
static unsigned stuck_flags(int fd)
{
	unsigned flags = 0;

	if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags))
		return 0;
	return flags & (FS_IMMUTABLE_FL | FS_APPEND_FL);
}

static const char *stuck_words(unsigned flags)
{
	return flags & FS_IMMUTABLE_FL ? "immutable (chattr +i)"
				       : "append-only (chattr +a)";
}

/* A stuck file, or one in a stuck directory, keeps its name: the rename
 * at the end would fail once every page had come. fd: the file at path,
 * or -1 for none. False, said in err. */
static bool replace_allowed(int fd, const char *path, char *err,
			    size_t errlen)
{
	unsigned flags = stuck_flags(fd), dflags;
	char dir[4096];
	const char *base;
	int dfd;

	path_split(path, dir, sizeof(dir), &base);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dflags = stuck_flags(dfd);
	if (dfd >= 0)
		close(dfd);
	if (!flags && !dflags)
		return true;
	snprintf(err, errlen,
		 "cannot receive into '%s': %s is %s, so the new file could "
		 "not take its name at the end",
		 path, flags ? "it" : "its directory",
		 stuck_words(flags ? flags : dflags));
	return false;
}

/* A stuck file cannot be written in place, by root either (access()
 * says it can). False, said. */
static bool writable_in_place(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	unsigned flags;

	if (fd < 0)
		return true; /* said by what follows */
	flags = stuck_flags(fd);
	close(fd);
	if (!flags)
		return true;
	snprintf(err, errlen, "cannot write '%s' in place: it is %s", path,
		 stuck_words(flags));
	return false;
}

/*
 * What is at path now must be a regular file nobody is sending (or
 * nothing). Fills *mode with the mode the new file should have.
 */
static int check_replaced(const char *path, bool renamed, mode_t *mode,
			  char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	*mode = 0644;
	if (fd < 0) /* nothing there (or nothing we may read) */
		return renamed && !replace_allowed(-1, path, err, errlen)
			       ? -EPERM
			       : 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen,
			 "'%s' is %s: expected a regular file to replace, or "
			 "a new name",
			 path, file_kind(st.st_mode));
		close(fd);
		return -EINVAL;
	}
	*mode = st.st_mode & 07777;
	if (renamed && !replace_allowed(fd, path, err, errlen)) {
		close(fd);
		return -EPERM;
	}
	if (!fcntl(fd, F_OFD_GETLK, &fl) && fl.l_type != F_UNLCK) {
		busy(fd, path, true, err, errlen);
		close(fd);
		return -EBUSY;
	}
	close(fd);
	return 0;
}

static int open_temp(const char *path, mode_t mode, struct mapping *m,
		     char *err, size_t errlen);

/* A file can be made beside path (a file system that takes none, such
 * as /proc, is found before a sender comes); nothing is left. */
static int try_create(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct mapping m = { .fd = -1 };
	int fd = open_temp(path, mode, &m, err, errlen);

	if (fd < 0)
		return fd;
	m.fd = fd;
	unmap(&m);
	return 0;
}

int check_destination(const char *path, bool inplace, char *err,
		      size_t errlen)
{
	char dir[4096];
	const char *base;
	struct stat st;
	mode_t mode;

	if (inplace) {
		int e = access(path, W_OK) ? errno : 0;

		if ((!e || e == EPERM) && !writable_in_place(path, err, errlen))
			return -EPERM;

		if (!e)
			return check_replaced(path, false, &mode, err, errlen);
		/* a file there is written in place: one that cannot be is
		 * said now, not once a sender has come */
		if (!access(path, F_OK)) {
			snprintf(err, errlen, "cannot write '%s' in place: %s",
				 path, strerror(e));
			return -e;
		}
	}
	path_split(path, dir, sizeof(dir), &base);
	if (!*base) {
		snprintf(err, errlen, "'%s' names a directory: expected a file",
			 path);
		return -EISDIR;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot receive into '%s': '%s' %s", path,
			 dir, errno == ENOENT ? "does not exist"
					      : "is not a directory");
		return -ENOENT;
	}
	if (access(dir, W_OK | X_OK)) {
		int e = errno;

		snprintf(err, errlen, "cannot create files in '%s': %s", dir,
			 strerror(e));
		return -e;
	}
	return check_replaced(path, true, &mode, err, errlen) ?:
	       try_create(path, mode, err, errlen);
}

static int open_temp(const char *path, mode_t mode, struct mapping *m,
		     char *err, size_t errlen)
{
	char dir[4096];
	const char *base;
	int fd = -1;

	path_split(path, dir, sizeof(dir), &base);
	/* unnamed until it is complete: nothing is left behind by a
	 * failure, a signal or a crash (the name comes from /proc) */
	if (!access("/proc/self/fd", X_OK))
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd >= 0) {
		m->unnamed = true;
		return fd;
	}
	if (asprintf(&m->temp, "%s/.%s.multifd-XXXXXX", dir, base) < 0) {
		m->temp = NULL;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	fd = mkostemp(m->temp, O_CLOEXEC);
	if (fd < 0 || fchmod(fd, mode)) {
		int e = errno;

		snprintf(err, errlen, "cannot create a file in '%s': %s", dir,
			 strerror(e));
		if (fd >= 0) {
			unlink(m->temp);
			close(fd);
		}
		free(m->temp);
		m->temp = NULL;
		return -e;
	}
	return fd;
}

/*
 * Reserve the file's space where it is tight, so that a full disk is
 * found now and not by a fault half-way. With twice the room free, the
 * reservation is not worth its cost (on tmpfs it allocates every page up
 * front, serially): a disk filled meanwhile still fails the session with
 * a sentence that says so. Where the file does not fit, the sender's data
 * still may (a sparse image): the space is given back, and 1 returned
 * with a warning in err.
 */
static int reserve(int fd, const char *path, uint64_t len, char *err,
		   size_t errlen)
{
	struct statvfs vfs;
	uint64_t avail;

	if (fstatvfs(fd, &vfs))
		return 0;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail / 2 >= len || !fallocate(fd, 0, 0, (off_t)len) ||
	    errno != ENOSPC)
		return 0;
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)len)) {
		int e = errno;

		snprintf(err, errlen, "cannot make '%s' %llu bytes: %s", path,
			 (unsigned long long)len, strerror(e));
		return -e;
	}
	snprintf(err, errlen,
		 "'%s' needs %llu bytes and only %llu are free: the transfer "
		 "fails unless the sender's pages are mostly zero",
		 path, (unsigned long long)len, (unsigned long long)avail);
	return 1;
}

int map_file_new(const char *path, uint64_t len, struct mapping *m,
		 char *err, size_t errlen)
{
	mode_t mode;
	int fd, e;

	m->temp = NULL;
	m->unnamed = false;
	m->named = m->swapped = m->whole = false;
	m->path = path;
	e = check_replaced(path, true, &mode, err, errlen);
	if (e)
		return e;
	fd = open_temp(path, mode, m, err, errlen);
	if (fd < 0)
		return fd;
	m->fd = fd;
	m->mem = NULL;
	m->len = len;
	if (ftruncate(fd, (off_t)len)) {
		e = errno;
		snprintf(err, errlen, "cannot make '%s' %llu bytes: %s", path,
			 (unsigned long long)len, strerror(e));
		goto fail;
	}
	e = reserve(fd, path, len, err, errlen);
	if (e < 0)
		goto fail_e;
	m->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m->mem == MAP_FAILED) {
		e = errno;
		m->mem = NULL;
		snprintf(err, errlen, "cannot map '%s': %s", path, strerror(e));
		goto fail;
	}
	return e; /* 0, or 1 with a warning in err */
fail:
	e = -e;
fail_e:
	unmap(m);
	return e;
}

/* In place: the path must still name the file that was written. */
static int check_still_there(const struct mapping *m, const struct stat *st,
			     char *err, size_t errlen)
{
	struct stat now;

	if (!stat(m->path, &now) && now.st_dev == st->st_dev &&
	    now.st_ino == st->st_ino)
		return 0;
	snprintf(err, errlen,
		 "'%s' was removed or replaced during the transfer: the pages "
		 "went into a file that no longer has that name",
		 m->path);
	return -ENOENT;
}

int commit_prepare(struct mapping *m, char *err, size_t errlen)
{
	char dir[4096], proc[64], *name = NULL;
	const char *base;
	struct stat st;
	mode_t mode;
	int e = 0;

	if (msync(m->mem, m->len, MS_SYNC) || fstat(m->fd, &st)) {
		e = errno;
		snprintf(err, errlen, "cannot write '%s': %s", m->path,
			 strerror(e));
		return -e;
	}
	if ((uint64_t)st.st_size != m->len) {
		snprintf(err, errlen,
			 "'%s' was truncated by another process to %lld bytes "
			 "(expected %llu)",
			 m->path, (long long)st.st_size,
			 (unsigned long long)m->len);
		return -EIO;
	}
	m->whole = true;
	if (!m->unnamed && !m->temp)
		return check_still_there(m, &st, err, errlen);
	/* what took the path meanwhile (a directory) refuses it now,
	 * before any file of the session takes its name */
	e = check_replaced(m->path, true, &mode, err, errlen);
	if (e || !m->unnamed)
		return e;
	path_split(m->path, dir, sizeof(dir), &base);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
	for (int i = 0; !name && i < 100; i++) {
		if (asprintf(&name, "%s/.%s.multifd-%d-%d", dir, base,
			     (int)getpid(), i) < 0)
			return -ENOMEM;
		if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW)) {
			e = errno;
			free(name);
			name = NULL;
			if (e != EEXIST)
				break;
		}
	}
	if (!name) {
		snprintf(err, errlen, "cannot name the file received for '%s': %s",
			 m->path, strerror(e));
		return -e;
	}
	m->unnamed = false;
	m->temp = name;
	return 0;
}

int commit_name(struct mapping *m, char *err, size_t errlen)
{
	int r;

	if (!m->temp)
		return 0; /* received in place */
	/* an old file stays, under the temporary name, until every file
	 * of the session took its name */
	r = name_take(m->temp, m->path, &m->swapped);
	if (r) {
		snprintf(err, errlen,
			 "the file received for '%s' cannot take its name: %s",
			 m->path, strerror(-r));
		return r; /* unmap() removes the temporary file */
	}
	m->named = true;
	return 0;
}

int commit_undo(struct mapping *m)
{
	int r;

	if (!m->named)
		return 0;
	r = name_give_back(m->temp, m->path, m->swapped);
	if (r)
		return r;
	/* temp names the new file again: unmap() removes it */
	m->named = m->swapped = false;
	return 0;
}

void commit_done(struct mapping *m)
{
	char dir[4096];
	const char *base;
	int dfd;

	if (!m->named)
		return;
	if (m->swapped)
		unlink(m->temp); /* what the path named before */
	/* the new name on disk before the sender hears of success */
	path_split(m->path, dir, sizeof(dir), &base);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(m->temp);
	m->temp = NULL;
	m->named = m->swapped = false;
}

void explain_growth(const struct mapping *m, char *buf, size_t len)
{
	struct stat st;

	buf[0] = 0;
	if (m->fd >= 0 && !fstat(m->fd, &st) && (uint64_t)st.st_size > m->len)
		snprintf(buf, len,
			 "'%s' grew from %llu to %lld bytes while it was being "
			 "sent: the receiver has its first %llu bytes",
			 m->path, (unsigned long long)m->len,
			 (long long)st.st_size, (unsigned long long)m->len);
}

void explain_fault(const struct mapping *m, bool sending, char *buf,
		   size_t len)
{
	char dir[4096];
	const char *base;
	struct statvfs vfs;
	struct stat st;

	buf[0] = 0;
	if (m->fd < 0 || fstat(m->fd, &st))
		return;
	if ((uint64_t)st.st_size < m->len) {
		snprintf(buf, len,
			 sending ? "'%s' shrank from %llu to %lld bytes while "
				   "it was being sent"
				 : "'%s' was truncated by another process to "
				   "%llu bytes (from %lld)",
			 m->path,
			 sending ? (unsigned long long)m->len
				 : (unsigned long long)st.st_size,
			 sending ? (long long)st.st_size : (long long)m->len);
		return;
	}
	if (sending || fstatvfs(m->fd, &vfs))
		return;
	/* only a file short of its blocks, on a file system without room
	 * for them, is the one that filled it (of several, on several) */
	if ((uint64_t)st.st_blocks * 512 >= m->len ||
	    (uint64_t)vfs.f_bavail * vfs.f_frsize >=
		    m->len - (uint64_t)st.st_blocks * 512)
		return;
	path_split(m->path, dir, sizeof(dir), &base);
	/* what is free now says nothing: the transfer filled it */
	snprintf(buf, len,
		 "no space left on %s: '%s' needs %llu bytes, and its file "
		 "system filled up with %llu of them written",
		 dir, m->path, (unsigned long long)m->len,
		 (unsigned long long)st.st_blocks * 512);
}

void unmap(struct mapping *m)
{
	if (m->mem && m->mem != MAP_FAILED)
		munmap(m->mem, m->len);
	if (m->fd >= 0)
		close(m->fd);
	if (m->temp) { /* a received file that did not make it */
		/* named: its old file, which a failed undo left under the
		 * temporary name, stays there */
		if (!m->named)
			unlink(m->temp);
		free(m->temp);
	}
	m->temp = NULL;
	m->mem = NULL;
	m->fd = -1;
}
