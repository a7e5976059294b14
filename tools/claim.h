/* SPDX-License-Identifier: MIT */
/*
 * claim.h - a receiver claims each file name it will write for as long as
 * it runs, so that two receivers of one name (each writing a new file
 * that takes the name at its end, the later one winning) are refused.
 */
#ifndef MFD_CLAIM_H
#define MFD_CLAIM_H

#include <sys/types.h>

/* Claim path, a file in an existing directory. Returns the claim (a file
 * descriptor that holds it until closed or the process ends), -EBUSY
 * with *holder the claiming process's pid (0 when it cannot be told), or
 * another -errno when no claim can be made here (go on without one). */
int name_claim(const char *path, pid_t *holder);

#endif
