/* SPDX-License-Identifier: MIT */
/*
 * populate.h - map a packet's pages in before they are touched.
 *
 * Touching a page that is not mapped yet costs a page fault per page: a
 * trap, the kernel's lookup and (for new memory) a clearing. For a shared
 * file mapping the trap alone is most of it (measured on the development
 * machine: 1.8 us per resident tmpfs page, against 0.5 us per page for
 * MADV_POPULATE_* over the same range). Asking the kernel to map a whole
 * run of adjacent pages in one call takes the same work without the
 * traps. It is a hint: any failure is ignored, and the touch that follows
 * meets the same fault (and, for a truncated file, the same SIGBUS, which
 * the caller is guarded against).
 */
#ifndef MFD_POPULATE_H
#define MFD_POPULATE_H

#include <stdbool.h>
#include <stdint.h>

/* Map in the pages of base + offsets[0..n) (page_size each), one call per
 * run of adjacent offsets, for writing when write, else for reading. */
void mfd__populate(uint8_t *base, const uint64_t *offsets, uint32_t n,
		   uint32_t page_size, bool write);

#endif
