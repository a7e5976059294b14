/* SPDX-License-Identifier: MIT */
/*
 * names.h - a received file takes the name it was received for, keeping
 * what that name held under the file's temporary name until every file
 * of the session took its own, so that a later refusal can give every
 * name back: all of a session's files (and blobs) replace what they
 * replace, or none does.
 */
#ifndef MFD_NAMES_H
#define MFD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* path's directory ("." or "/" where it names none) in dir, its last
 * component in *base (a part of path). */
void path_split(const char *path, char *dir, size_t dirlen, const char **base);

/* temp's file takes the name path. *swapped: path named a file before,
 * which temp now names (false: path named nothing). 0 or -errno, with
 * both names as they were. */
int name_take(const char *temp, const char *path, bool *swapped);
/* Undo name_take(): path names what it named before (or nothing), and
 * temp the received file again. 0 or -errno. */
int name_give_back(const char *temp, const char *path, bool swapped);

#endif
