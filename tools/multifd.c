/* SPDX-License-Identifier: MIT */
/*
 * multifd.c - the multifd command: send, recv and bench, each a thin
 * consumer of the public API.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cli.h"
#include "memory.h"

#define COMMON_HELP                                                          \
	"  -c, --channels N        parallel channels, 1..64 (default 2)\n"      \
	"  -m, --method M          none, zlib or zstd (default none)\n"         \
	"  -l, --level N           compression level: zlib 1..9 (default 1),\n" \
	"                          zstd -7..19 (default 1; negative is faster)\n" \
	"      --zero-copy         tcp: and method none: send pages with\n"     \
	"                          MSG_ZEROCOPY\n"                               \
	"      --page-size BYTES   power of two, 512..65536 (default 4096)\n"   \
	"      --pages-per-packet N  1..1024 (default 128)\n"                   \
	"      --no-zero-detect    send zero pages with their content\n"        \
	"      --timeout SECONDS   longest stall of any channel, 0 = none\n"    \
	"                          (default 30)\n"                              \
	"      --json              print one JSON object with the results\n"   \
	"  -q, --quiet             print nothing but errors\n"                  \
	"  -h, --help              this help\n"                                 \
	"  -V, --version           the version\n"

static const char send_usage[] =
	"Usage: multifd send [OPTIONS] URI FILE\n"
	"Send FILE (a multiple of the page size) as one region to a\n"
	"receiver listening at URI: tcp:HOST:PORT, tcp:[V6ADDR]:PORT,\n"
	"unix:PATH or rdma:HOST:PORT.\n\n" COMMON_HELP
	"\nExit status: 0 when the receiver confirmed every page, 1 on a\n"
	"transfer error, 2 on a usage error.\n";

static const char recv_usage[] =
	"Usage: multifd recv [OPTIONS] URI FILE\n"
	"Listen on URI, receive the sender's region into FILE (created or\n"
	"truncated to the region's size), and exit once every page is in\n"
	"place. The method, page size and channel count come from the\n"
	"sender.\n\n" COMMON_HELP
	"\nExit status: 0 when every page arrived, 1 on a transfer error,\n"
	"2 on a usage error.\n";

static const char main_usage[] =
	"Usage: multifd COMMAND [OPTIONS] ...\n"
	"Move memory pages between hosts over many parallel channels.\n\n"
	"Commands:\n"
	"  send URI FILE   send FILE to a receiver at URI\n"
	"  recv URI FILE   receive into FILE, listening at URI\n"
	"  bench           a sender and a receiver in one process over\n"
	"                  loopback: throughput, CPU cost, the raw ceiling\n\n"
	"'multifd COMMAND --help' describes each command.\n"
	"  -h, --help      this help\n"
	"  -V, --version   the version\n";

int cmd_send(int argc, char **argv)
{
	struct opts o = { 0 };
	struct mapping m = { .fd = -1 };
	struct mfd_session *s = NULL;
	char err[300], *copy = NULL;
	int r, region;

	r = parse_opts(argc, argv, &o, send_usage, NULL, NULL);
	if (r)
		return r == 1 ? 0 : 2;
	if (argc - optind != 2) {
		die_msg("send: expected URI and FILE (try --help)");
		return 2;
	}
	o.cfg.uri = argv[optind];
	r = mfd_session_new(&o.cfg, MFD_ROLE_SEND, &s, err, sizeof(err));
	if (r) {
		die_msg("send: %s", err);
		return 2;
	}
	r = map_file_read(argv[optind + 1], o.cfg.page_size, &m, err,
			  sizeof(err));
	if (r) {
		die_msg("send: %s", err);
		mfd_session_free(s);
		return 1;
	}
	copy = strdup(argv[optind + 1]);
	region = copy ? mfd_session_add_region(s, basename(copy), m.mem, m.len,
					       false)
		      : -ENOMEM;
	r = region < 0 ? region : mfd_session_start(s);
	if (!r)
		r = mfd_send_region(s, region);
	if (!r)
		r = mfd_send_finish(s);
	if (r)
		die_msg("send: %s",
			mfd_session_error(s)[0] ? mfd_session_error(s)
						: strerror(-r));
	print_result(&o, "sent", s, r == 0);
	mfd_session_free(s);
	unmap(&m);
	free(copy);
	return r ? 1 : 0;
}

struct recv_target {
	const char *path;
	struct mapping map;
	char err[300];
};

/* The sender's single region lands in the file named on the command line. */
static int create_target(void *opaque, const char *name, uint64_t length,
			 void **mem, bool *zeroed)
{
	struct recv_target *t = opaque;
	int r;

	if (t->map.mem) {
		snprintf(t->err, sizeof(t->err),
			 "the sender announced a second region '%s'; this "
			 "form receives one",
			 name);
		return -EINVAL;
	}
	r = map_file_create(t->path, length, &t->map, t->err, sizeof(t->err));
	if (r)
		return r;
	*mem = t->map.mem;
	*zeroed = true; /* a new or truncated file reads as zeros */
	return 0;
}

int cmd_recv(int argc, char **argv)
{
	struct opts o = { 0 };
	struct recv_target t = { .map.fd = -1 };
	struct mfd_session *s = NULL;
	char err[300];
	int r;

	r = parse_opts(argc, argv, &o, recv_usage, NULL, NULL);
	if (r)
		return r == 1 ? 0 : 2;
	if (argc - optind != 2) {
		die_msg("recv: expected URI and FILE (try --help)");
		return 2;
	}
	t.path = argv[optind + 1];
	o.cfg.uri = argv[optind];
	o.cfg.region_cb = create_target;
	o.cfg.region_opaque = &t;
	r = mfd_session_new(&o.cfg, MFD_ROLE_RECV, &s, err, sizeof(err));
	if (r) {
		die_msg("recv: %s", err);
		return 2;
	}
	r = mfd_session_start(s);
	if (!r && !o.quiet)
		fprintf(stderr, "multifd: listening on %s\n",
			mfd_session_uri(s));
	if (!r)
		r = mfd_recv_wait(s);
	if (r) {
		die_msg("recv: %s", mfd_session_error(s));
		if (t.err[0])
			die_msg("recv: %s", t.err);
	}
	if (!r && t.map.mem && msync(t.map.mem, t.map.len, MS_SYNC)) {
		r = -errno;
		die_msg("recv: cannot write '%s': %s", t.path, strerror(errno));
	}
	print_result(&o, "received", s, r == 0);
	mfd_session_free(s);
	unmap(&t.map);
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(main_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "send"))
		return cmd_send(argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return cmd_recv(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(main_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("multifd %s (libmultifd %s)\n", PACKAGE_VERSION,
		       mfd_version());
		return 0;
	}
	die_msg("unknown command '%s': expected send, recv or bench (try "
		"--help)",
		argv[1]);
	return 2;
}
