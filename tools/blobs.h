/* SPDX-License-Identifier: MIT */
/*
 * blobs.h - the tool's blobs: send --blob NAME=FILE reads FILE and sends
 * it as blob NAME after the pages (in the last round, so the receiver
 * gets it once every page is in place); recv --blob-dir DIR writes each
 * blob to DIR/NAME, as a new file that takes that name only once the
 * session succeeded.
 */
#ifndef MFD_TOOL_BLOBS_H
#define MFD_TOOL_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "multifd.h"

#define BLOBS_MAX 64

/* Sender: the --blob files, read whole. */
struct blob_files {
	unsigned n;
	struct {
		char name[MFD_MAX_REGION_NAME + 1];
		const char *path;
		uint8_t *data;
		uint64_t len;
	} b[BLOBS_MAX];
};

/* --blob NAME=PATH: checked and noted (read later). 0 or -1 after a
 * message. */
int blob_files_add(struct blob_files *f, const char *arg);
/* Read every file; 0, or -1 with the reason in err. */
int blob_files_read(struct blob_files *f, char *err, size_t errlen);
/* Queue each blob (mfd_send_blob()); 0 or its error. */
int blob_files_send(const struct blob_files *f, struct mfd_session *s);
void blob_files_free(struct blob_files *f);

/* Receiver: where blobs go. dir NULL: blobs are refused, saying how to
 * keep them. */
struct blob_dir {
	const char *dir;
	unsigned mode; /* of the files: 0666 less the umask */
	/* the files the session receives (FILE, or one per --region): no
	 * blob may land on one */
	const char *targets[MFD_MAX_REGIONS];
	unsigned ntargets;
	struct mfd_session *s;
	unsigned n;
	struct {
		char *tmp;  /* written, not yet named; once named, what the
			     * name held (when swapped) */
		char *path; /* DIR/NAME */
		bool named, swapped;
	} f[BLOBS_MAX];
};

/* d->dir (--blob-dir DIR) must be a writable directory. 0 or -1 with
 * err. */
int blob_dir_check(struct blob_dir *d, char *err, size_t errlen);
/* The session's blob_cb, with a struct blob_dir as opaque. */
int blob_dir_take(void *opaque, const char *name, const void *data,
		  uint64_t len);
/* Every page is in: every blob takes its name, keeping what the name
 * held until blob_dir_done(); a refusal gives back the names taken. 0,
 * or -1 with err. */
int blob_dir_commit(struct blob_dir *d, char *err, size_t errlen);
/* The session failed after blob_dir_commit(): every name holds what it
 * held before. 0, or -1 when one could not be given back. */
int blob_dir_undo(struct blob_dir *d);
/* The session succeeded: what the blobs replaced goes. */
void blob_dir_done(struct blob_dir *d);
/* Remove what was not committed, and free. */
void blob_dir_free(struct blob_dir *d);

#endif
