/* SPDX-License-Identifier: MIT */
/* array.h - arrays that grow by doubling. */
#ifndef MFD_ARRAY_H
#define MFD_ARRAY_H

#include <stdlib.h>

/* v (*cap elements of elem bytes) with room for element n: doubled,
 * from `first`, when it has none. NULL when out of memory (v stays as it
 * was). */
static inline void *mfd__grow(void *v, size_t *cap, size_t n, size_t first,
			      size_t elem)
{
	size_t c = *cap ? 2 * *cap : first;
	void *nv;

	if (n < *cap)
		return v;
	nv = realloc(v, c * elem);
	if (nv)
		*cap = c;
	return nv;
}

#endif
