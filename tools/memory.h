/* SPDX-License-Identifier: MIT */
/*
 * memory.h - the memory the tool moves: files mapped whole, and fresh
 * anonymous memory that asks for transparent huge pages, since on these
 * machines the first touch of 4 KiB pages costs more than the copy.
 *
 * Files received are written into a temporary file beside the target
 * and renamed over it only when the session succeeded, so that a refused
 * or failed session never touches an existing file nor leaves one that
 * looks complete (--inplace writes into the existing file on purpose).
 * A file being sent holds a read lock and a file received into in place
 * a write lock (open file description locks), so that no multifd process
 * receives onto a file another one is sending.
 */
#ifndef MFD_MEMORY_H
#define MFD_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mapping {
	void *mem;
	uint64_t len;
	int fd;		  /* -1 for anonymous memory */
	const char *path; /* the file as the user named it, or NULL */
	char *temp;	  /* receiver: the temporary file's name, or NULL */
	bool unnamed;	  /* receiver: an O_TMPFILE, given a name at commit */
	/* receiver, after commit_name(): path names the new file, and
	 * temp (when swapped) what path named before */
	bool named, swapped;
	/* receiver: written out at its full size by commit_prepare() */
	bool whole;
};

/* Anonymous, zero, huge-page-advised memory of len bytes, 2 MiB aligned. */
int map_anon(uint64_t len, struct mapping *m);
/* Map an existing regular file to send; its size must be a page
 * multiple. */
int map_file_read(const char *path, uint32_t page_size, struct mapping *m,
		  char *err, size_t errlen);
/* Map an existing regular file to receive into in place; its size must
 * be a page multiple. */
int map_file_inplace(const char *path, uint32_t page_size, struct mapping *m,
		     char *err, size_t errlen);
/* A new file of len bytes that replaces path at commit_name(); its space
 * is reserved where it is tight. 0; 1 with a warning in err when the
 * space is short; or -errno. */
int map_file_new(const char *path, uint64_t len, struct mapping *m,
		 char *err, size_t errlen);
/* Before listening: path's directory exists and takes new files, and
 * what is at path (if anything) is a regular file nobody is sending.
 * inplace: a file at path that may be written is enough (it is written
 * as it is, its directory untouched). */
int check_destination(const char *path, bool inplace, char *err,
		      size_t errlen);
/* A received file, written out and checked (its size; in place, that
 * its path still names it; else that nothing but a regular file took its
 * path), and given a temporary name where it had none: all that can fail
 * before any file of the session takes its name. */
int commit_prepare(struct mapping *m, char *err, size_t errlen);
/* Then put it in place of its path (nothing to do in place), keeping
 * what was there under the temporary name (an atomic exchange) until
 * commit_done(), or commit_undo() puts it back. */
int commit_name(struct mapping *m, char *err, size_t errlen);
/* The session failed after commit_name(): path names what it named
 * before (nothing, or the old file); 0 or -errno. */
int commit_undo(struct mapping *m);
/* Every file took its name: what they replaced goes. */
void commit_done(struct mapping *m);
/* A file sent whole that grew meanwhile: the sentence that says what
 * the receiver has (only its first m->len bytes) into buf, or "". */
void explain_growth(const struct mapping *m, char *buf, size_t len);
/* Why touching the file's pages failed (it shrank, its file system is
 * full), as a sentence; "" when neither is the case. */
void explain_fault(const struct mapping *m, bool sending, char *buf,
		   size_t len);
/* Unmap and close; a temporary file not committed is removed. */
void unmap(struct mapping *m);

#endif
