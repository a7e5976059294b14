/* SPDX-License-Identifier: MIT */
/*
 * entropy.h - tell incompressible pages before compressing them.
 *
 * Random or already compressed pages do not shrink, but finding that out
 * by running the compressor costs its full price: zlib level 1 spends
 * about 31 CPU seconds per GiB of random pages, only to send them raw.
 * A sample of the bytes (64 of every 4 KiB, the heuristic btrfs uses for
 * the same decision) whose byte entropy is near 8 bits says the same for
 * under 1 % of that. It can be wrong for data whose repeats span pages
 * but whose bytes look random (a packet of copies of one random page);
 * such a packet then goes raw, which is correct, only larger.
 */
#ifndef MFD_ENTROPY_H
#define MFD_ENTROPY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* True when the n buffers of iov (plain bytes in all) look incompressible. */
bool mfd__looks_incompressible(const struct iovec *iov, int n, size_t plain);

#endif
