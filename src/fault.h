/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection for tests. Each counter, when set above zero
 * by a test, makes the next that many operations of its kind fail. They
 * cost one relaxed atomic load on the paths they guard.
 */
#ifndef MFD_FAULT_H
#define MFD_FAULT_H

#include <stdbool.h>

/* Zero-copy sendmsg() calls that fail with ENOBUFS. */
extern int mfd__fault_zc_enobufs;

/* True (and one less left) when a fault of this kind is due. */
static inline bool mfd__fault_take(int *counter)
{
	int n = __atomic_load_n(counter, __ATOMIC_RELAXED);

	while (n > 0)
		if (__atomic_compare_exchange_n(counter, &n, n - 1, false,
						__ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

#endif
