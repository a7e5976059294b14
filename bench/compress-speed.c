/* SPDX-License-Identifier: MIT */
/*
 * compress-speed.c - the raw compressors on the pages multifd bench makes,
 * one thread, no multifd: the reference the engine's compressed throughput
 * is measured against, and what packets that decode on their own cost in
 * ratio against one stream per channel (QEMU's way: a persistent stream,
 * flushed at each packet).
 *
 *   bench/compress-speed [SIZE_MIB [CONTENT]]    (default 256 text)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "tools/bench.h"

#define PS 4096
#define PACKET (128 * PS) /* multifd's default packet */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *method, int level, const char *content,
		   const char *mode, size_t in, size_t out, double secs)
{
	printf("%-4s level %2d %-6s %-22s ratio %5.2f  %7.1f MiB/s\n", method,
	       level, content, mode, (double)in / (double)out,
	       (double)in / (1 << 20) / secs);
}

static void zstd_runs(const uint8_t *mem, size_t len, int level,
		      const char *content, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t total = 0;
	double t;

	/* a frame per packet, the context reset and reused, as multifd */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	t = now();
	for (size_t off = 0; off < len; off += PACKET)
		total += ZSTD_compress2(cc, out, cap, mem + off, PACKET);
	report("zstd", level, content, "frame per packet", len, total,
	       now() - t);

	/* one stream per channel, flushed at each packet */
	ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	total = 0;
	t = now();
	for (size_t off = 0; off < len; off += PACKET) {
		ZSTD_inBuffer in = { mem + off, PACKET, 0 };
		ZSTD_outBuffer o = { out, cap, 0 };

		while (ZSTD_compressStream2(cc, &o, &in, ZSTD_e_flush))
			;
		total += o.pos;
	}
	report("zstd", level, content, "stream per channel", len, total,
	       now() - t);
	ZSTD_freeCCtx(cc);
}

static void zlib_runs(const uint8_t *mem, size_t len, int level,
		      const char *content, uint8_t *out, size_t cap)
{
	z_stream zs = { 0 };
	size_t total = 0;
	double t;

	deflateInit(&zs, level);
	t = now();
	for (size_t off = 0; off < len; off += PACKET) {
		deflateReset(&zs);
		zs.next_in = (uint8_t *)mem + off;
		zs.avail_in = PACKET;
		zs.next_out = out;
		zs.avail_out = (uInt)cap;
		deflate(&zs, Z_FINISH);
		total += cap - zs.avail_out;
	}
	report("zlib", level, content, "stream per packet", len, total,
	       now() - t);

	deflateReset(&zs);
	total = 0;
	t = now();
	for (size_t off = 0; off < len; off += PACKET) {
		zs.next_in = (uint8_t *)mem + off;
		zs.avail_in = PACKET;
		zs.next_out = out;
		zs.avail_out = (uInt)cap;
		deflate(&zs, Z_SYNC_FLUSH);
		total += cap - zs.avail_out;
	}
	report("zlib", level, content, "stream per channel", len, total,
	       now() - t);
	deflateEnd(&zs);
}

int main(int argc, char **argv)
{
	size_t len = (size_t)(argc > 1 ? atoi(argv[1]) : 256) << 20;
	const char *content = argc > 2 ? argv[2] : "text";
	size_t cap = ZSTD_compressBound(PACKET) + 1024;
	uint8_t *mem = malloc(len), *out = malloc(cap);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	enum content c = CONTENT_TEXT;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
			 !strcmp(argv[1], "--version"))) {
		printf("compress-speed (multifd %s): the raw compressors on "
		       "multifd bench's pages\nusage: compress-speed "
		       "[SIZE_MIB [random|text|zero|mixed]]\n",
		       PACKAGE_VERSION);
		return 0;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(content, content_names[i]))
			c = (enum content)i;
	if (!mem || !out || len == 0 || len % PACKET) {
		fprintf(stderr, "usage: compress-speed [SIZE_MIB [CONTENT]] "
				"(SIZE a multiple of 512 KiB)\n");
		return 2;
	}
	for (size_t off = 0; off < len; off += PS)
		fill_page(mem + off, PS, c, &seed);
	zstd_runs(mem, len, 1, content_names[c], out, cap);
	zstd_runs(mem, len, -3, content_names[c], out, cap);
	zlib_runs(mem, len, 1, content_names[c], out, cap);
	free(mem);
	free(out);
	return 0;
}
