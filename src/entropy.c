/* SPDX-License-Identifier: MIT */
/* entropy.c - see entropy.h. */
#include "config.h"

#include <stdint.h>

#include "entropy.h"

#define SAMPLE_EVERY 4096
#define SAMPLE_LEN 64
/* Below this many sampled bytes the estimate means nothing: compress. */
#define MIN_SAMPLE 1024

/*
 * The collision entropy -log2(sum q^2) of the sampled bytes, in integers:
 * a sample counts as random when its estimate of sum q^2, unbiased as
 * (sum count^2 - total) / (total (total - 1)), is within 15 % of what
 * uniform bytes give (1 / 256), that is above 7.8 bits per byte. A sample
 * of 1 KiB of random bytes lands within a few per cent of it; text
 * measures near 4 bits (16 times the uniform sum), code near 6.
 */
bool mfd__looks_incompressible(const struct iovec *iov, int n, size_t plain)
{
	uint32_t count[256] = { 0 };
	uint64_t total = 0, squares = 0;

	if (plain < (size_t)MIN_SAMPLE / SAMPLE_LEN * SAMPLE_EVERY)
		return false;
	for (int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;

		for (size_t off = 0; off + SAMPLE_LEN <= iov[i].iov_len;
		     off += SAMPLE_EVERY) {
			for (int k = 0; k < SAMPLE_LEN; k++)
				count[b[off + k]]++;
			total += SAMPLE_LEN;
		}
	}
	if (total < MIN_SAMPLE)
		return false;
	for (int v = 0; v < 256; v++)
		squares += (uint64_t)count[v] * count[v];
	return (squares - total) * 256 * 100 <= total * (total - 1) * 115;
}
