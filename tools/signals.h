/* SPDX-License-Identifier: MIT */
/*
 * signals.h - SIGINT, SIGTERM and SIGHUP end a transfer cleanly: they are
 * blocked in every thread and taken by one thread of their own, which
 * cancels the running session (the peer is told "it was stopped by a
 * signal (SIGTERM)"), so that the command unwinds as after any
 * failure (temporary files removed, the unix: socket file unlinked). A
 * second signal (a second or more after the first), or one while no
 * session is watched, ends the process at once.
 */
#ifndef MFD_SIGNALS_H
#define MFD_SIGNALS_H

#include "multifd.h"

/* Call before any other thread exists. 0, or -errno. */
int signals_start(void);
/* The session a signal cancels from now on (NULL: none). */
void signals_watch(struct mfd_session *s);
/* The signal that arrived, or 0. */
int signals_caught(void);
/* "SIGTERM", "SIGINT", "SIGHUP" (else "a signal") */
const char *signal_name(int sig);

#endif
