/* SPDX-License-Identifier: MIT */
/*
 * guard.h - region memory that faults ends a session, not the process.
 *
 * A region may be a file mapping: when the file shrinks (another process
 * truncates it) or its file system cannot allocate a page (a full disk or
 * tmpfs), touching the page raises SIGBUS, which would kill the process
 * with no message. The channel threads touch region memory only inside
 * mfd__guarded(): a SIGBUS there jumps back out of the work and becomes
 * -EFAULT with the faulting address, for the session's error. A SIGBUS
 * anywhere else goes to whatever handler was installed before ours (or to
 * the default action). System calls that meet such a page fail with
 * EFAULT by themselves; no signal is raised for them.
 */
#ifndef MFD_GUARD_H
#define MFD_GUARD_H

#include <stdint.h>

/* Install the process-wide SIGBUS handler once; any thread, idempotent.
 * 0 or -errno. */
int mfd__guard_install(void);

/*
 * Run fn(arg) and return what it returns; when it raised SIGBUS on this
 * thread, return -EFAULT instead with the faulting address in *addr. The
 * work that faulted is abandoned half-way: its state (a compression
 * context) must not be used again, only freed. Not nestable; channel
 * threads only.
 */
int mfd__guarded(int (*fn)(void *), void *arg, uintptr_t *addr);

#endif
