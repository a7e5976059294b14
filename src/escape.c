/* SPDX-License-Identifier: MIT */
/* escape.c - see escape.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "multifd.h"

static bool plain(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e && c != '\\';
}

char *mfd__escape(char *dst, size_t dstlen, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t o = 0, total = 0;

	if (!dstlen)
		return dst;
	for (size_t i = 0; i < n; i++)
		total += plain(s[i]) ? 1 : 4;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		size_t need = plain(c) ? 1 : 4;

		/* when it is cut, keep room for "..." and the NUL */
		if (total >= dstlen && o + need + 4 > dstlen) {
			if (o + 4 <= dstlen)
				memcpy(dst + o, "...", 3), o += 3;
			break;
		}
		if (need == 1)
			dst[o++] = (char)c;
		else
			o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x", c);
	}
	dst[o < dstlen ? o : dstlen - 1] = 0;
	return dst;
}

bool mfd__region_name_ok(const char *name, size_t n)
{
	if (n == 0 || n > MFD_MAX_REGION_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return false;
	return true;
}
