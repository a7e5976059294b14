/* SPDX-License-Identifier: MIT */
/* blobs.c - see blobs.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs.h"
#include "cli.h"
#include "names.h"

int blob_files_add(struct blob_files *f, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;

	if (!eq || !n || n > MFD_MAX_REGION_NAME || !eq[1]) {
		opt_error(arg, "expected NAME=FILE (a name of 1..%d "
			  "characters)",
			  MFD_MAX_REGION_NAME);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)arg[i] < 0x20 || (unsigned char)arg[i] > 0x7e) {
			cmd_error("bad blob name for --blob: byte %zu is "
				  "0x%02x; expected printable ASCII "
				  "(0x20..0x7e)",
				  i, (unsigned char)arg[i]);
			return -1;
		}
	for (unsigned i = 0; i < f->n; i++)
		if (strlen(f->b[i].name) == n && !memcmp(f->b[i].name, arg, n)) {
			opt_error(arg, "blob '%s' given twice: expected each "
				  "NAME once",
				  f->b[i].name);
			return -1;
		}
	if (f->n == BLOBS_MAX) {
		opt_error(arg, "too many blobs: expected at most %d",
			  BLOBS_MAX);
		return -1;
	}
	memcpy(f->b[f->n].name, arg, n);
	f->b[f->n].name[n] = 0;
	f->b[f->n++].path = eq + 1;
	return 0;
}

/* A pipe, a FIFO or a device (/dev/stdin, <(...)): to its end, at most
 * BLOB_STREAM_MAX bytes. Closes fd. */
#define BLOB_STREAM_MAX (16ull << 30)
static int read_stream(const char *path, int fd, uint8_t **data,
		       uint64_t *len, char *err, size_t errlen)
{
	uint64_t cap = 0;

	*len = 0;
	for (;;) {
		ssize_t r;

		if (*len == cap) {
			uint8_t *more;

			cap = cap ? 2 * cap : 1 << 16;
			if (cap > BLOB_STREAM_MAX + 1)
				cap = BLOB_STREAM_MAX + 1;
			more = *len == cap ? NULL : realloc(*data, cap);
			if (!more) {
				snprintf(err, errlen,
					 *len == cap
						 ? "blob file '%s': more than "
						   "16 GiB"
						 : "blob file '%s': no memory "
						   "for its bytes",
					 path);
				break;
			}
			*data = more;
		}
		r = read(fd, *data + *len, cap - *len);
		if (r == 0) {
			close(fd);
			return 0;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "blob file '%s': %s", path,
				 strerror(errno));
			break;
		}
		*len += (uint64_t)r;
	}
	free(*data);
	*data = NULL;
	close(fd);
	return -1;
}

/* The whole of path into *data (NULL for an empty file). */
static int read_whole(const char *path, uint8_t **data, uint64_t *len,
		      char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint64_t got = 0;

	*data = NULL;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "blob file '%s': %s", path,
			 strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "blob file '%s' is a directory: expected "
			 "a file, a pipe or a device to read", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode))
		return read_stream(path, fd, data, len, err, errlen);
	*len = (uint64_t)st.st_size;
	*data = malloc(*len ? *len : 1);
	if (!*data) {
		snprintf(err, errlen, "blob file '%s': no memory for %llu "
			 "bytes", path, (unsigned long long)*len);
		goto fail;
	}
	while (got < *len) {
		ssize_t r = read(fd, *data + got, *len - got);

		if (r <= 0) {
			snprintf(err, errlen, "blob file '%s': %s", path,
				 r ? strerror(errno)
				   : "it shrank while it was read");
			goto fail;
		}
		got += (uint64_t)r;
	}
	close(fd);
	return 0;
fail:
	free(*data);
	*data = NULL;
	if (fd >= 0)
		close(fd);
	return -1;
}

int blob_files_read(struct blob_files *f, char *err, size_t errlen)
{
	for (unsigned i = 0; i < f->n; i++)
		if (read_whole(f->b[i].path, &f->b[i].data, &f->b[i].len, err,
			       errlen))
			return -1;
	return 0;
}

int blob_files_send(const struct blob_files *f, struct mfd_session *s)
{
	for (unsigned i = 0; i < f->n; i++) {
		int r = mfd_send_blob(s, f->b[i].name, f->b[i].data,
				      f->b[i].len);

		if (r)
			return r;
	}
	return 0;
}

void blob_files_free(struct blob_files *f)
{
	for (unsigned i = 0; i < f->n; i++)
		free(f->b[i].data);
	f->n = 0;
}

int blob_dir_check(struct blob_dir *d, char *err, size_t errlen)
{
	const char *dir = d->dir;
	mode_t mask = umask(0);
	struct stat st;

	/* read here, on the main thread, for the files made later */
	umask(mask);
	d->mode = 0666 & ~mask;
	if (stat(dir, &st)) {
		snprintf(err, errlen, "--blob-dir '%s': %s", dir,
			 strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--blob-dir '%s': not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK)) {
		snprintf(err, errlen, "--blob-dir '%s': %s", dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* A blob's name is the sender's word: it names a file in DIR only when
 * it cannot reach outside it or hide ("..", "a/b", ".x"). */
static bool file_name_ok(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/');
}

static int write_all(int fd, const uint8_t *p, uint64_t len)
{
	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* Whether DIR/NAME is path: the same name in the same directory,
 * however each was spelt. */
static bool same_place(const char *dir, const char *name, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	struct stat a, b;
	char *pdir;
	bool same;

	if (strcmp(name, base))
		return false;
	pdir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
		     : strdup(".");
	same = pdir && !stat(dir, &a) && !stat(pdir, &b) &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	free(pdir);
	return same;
}

int blob_dir_take(void *opaque, const char *name, const void *data,
		  uint64_t len)
{
	struct blob_dir *d = opaque;
	char *tmp = NULL, *path = NULL;
	int fd = -1, r;

	if (!d->dir) {
		mfd_session_set_error(d->s, "this receiver keeps blobs only "
				      "with --blob-dir DIR");
		return -EPROTO;
	}
	if (!file_name_ok(name)) {
		mfd_session_set_error(d->s, "the name is no file name in "
				      "--blob-dir (expected no '/' and no "
				      "leading '.')");
		return -EINVAL;
	}
	for (unsigned i = 0; i < d->n; i++)
		if (!strcmp(strrchr(d->f[i].path, '/') + 1, name)) {
			mfd_session_set_error(d->s, "sent twice");
			return -EEXIST;
		}
	for (unsigned i = 0; i < d->ntargets; i++)
		if (same_place(d->dir, name, d->targets[i])) {
			mfd_session_set_error(d->s,
					      "it would replace '%s', a file "
					      "this session receives (send it "
					      "under another name, or pick "
					      "another --blob-dir)",
					      d->targets[i]);
			return -EEXIST;
		}
	if (d->n == BLOBS_MAX) {
		mfd_session_set_error(d->s, "more than %d blobs", BLOBS_MAX);
		return -ENOSPC;
	}
	if (asprintf(&path, "%s/%s", d->dir, name) < 0 ||
	    asprintf(&tmp, "%s/.%s.multifd-XXXXXX", d->dir, name) < 0) {
		free(path);
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	r = fd < 0 ? -errno : fchmod(fd, d->mode) ? -errno
						  : write_all(fd, data, len);
	if (!r && fsync(fd))
		r = -errno;
	if (fd >= 0 && close(fd) && !r)
		r = -errno;
	if (r) {
		mfd_session_set_error(d->s, "cannot write %s: %s", tmp,
				      strerror(-r));
		if (fd >= 0)
			unlink(tmp);
		free(tmp);
		free(path);
		return r;
	}
	d->f[d->n].tmp = tmp;
	d->f[d->n++].path = path;
	return 0;
}

int blob_dir_commit(struct blob_dir *d, char *err, size_t errlen)
{
	for (unsigned i = 0; i < d->n; i++) {
		int r = name_take(d->f[i].tmp, d->f[i].path, &d->f[i].swapped);

		if (r) {
			snprintf(err, errlen, "blob '%s': %s%s", d->f[i].path,
				 strerror(-r),
				 blob_dir_undo(d) ? "; some blobs before it are "
						    "already in place"
						  : "");
			return -1;
		}
		d->f[i].named = true;
	}
	return 0;
}

int blob_dir_undo(struct blob_dir *d)
{
	int r = 0;

	for (unsigned i = 0; i < d->n; i++) {
		if (!d->f[i].named)
			continue;
		if (name_give_back(d->f[i].tmp, d->f[i].path,
				   d->f[i].swapped)) {
			r = -1;
			continue;
		}
		/* tmp names the new blob again: blob_dir_free() removes it */
		d->f[i].named = d->f[i].swapped = false;
	}
	return r;
}

void blob_dir_done(struct blob_dir *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		if (!d->f[i].named)
			continue;
		if (d->f[i].swapped)
			unlink(d->f[i].tmp); /* what the name held before */
		free(d->f[i].tmp);
		d->f[i].tmp = NULL;
		d->f[i].named = d->f[i].swapped = false;
	}
}

void blob_dir_free(struct blob_dir *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		/* a name not given back keeps what it holds */
		if (d->f[i].tmp && !d->f[i].named)
			unlink(d->f[i].tmp);
		free(d->f[i].tmp);
		free(d->f[i].path);
	}
	d->n = 0;
}
