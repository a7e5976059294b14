/* SPDX-License-Identifier: MIT */
/*
 * escape.h - text that came from a peer (region names, refusal and
 * failure messages) is printed and logged only through mfd__escape(), so
 * that no peer can write terminal controls or forge log lines.
 */
#ifndef MFD_ESCAPE_H
#define MFD_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Copy n bytes of src into dst (dstlen bytes, always NUL-terminated),
 * bytes outside 0x20..0x7e and the backslash written as \xNN; cut short
 * with "..." when it does not fit. Returns dst. */
char *mfd__escape(char *dst, size_t dstlen, const void *src, size_t n);

/* A region name is 1..MFD_MAX_REGION_NAME printable ASCII characters
 * (0x20..0x7e): safe to print, to log and to compare. */
bool mfd__region_name_ok(const char *name, size_t n);

#endif
