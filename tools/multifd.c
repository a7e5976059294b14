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
#include <unistd.h>
#include <sys/mman.h>

#include "cli.h"
#include "memory.h"
#include "progress.h"

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
	"      --max-bandwidth RATE  bytes per second over all channels,\n"   \
	"                          K/M/G suffixes (sender; default none)\n"  \
	"      --progress          show progress on stderr also when it is\n"  \
	"                          not a terminal\n"                          \
	"      --stats-interval S  print a JSON line of statistics every S\n"  \
	"                          seconds\n"                                  \
	"      --secret-file PATH  both ends prove they hold the secret in PATH\n" \
	"                          (16 bytes or more; HMAC-SHA256)\n"        \
	"      --checksum          sender: an xxHash3-64 checksum per packet\n" \
	"      --verify            sender: compare a digest of every region on\n" \
	"                          both sides at the end\n"                  \
	"      --prefault          receiver: fault new memory in ahead of the\n" \
	"                          data from a thread of its own\n"          \
	"      --json              print one JSON object with the results\n"   \
	"  -q, --quiet             print nothing but errors\n"                  \
	"  -h, --help              this help\n"                                 \
	"  -V, --version           the version\n"

static const char send_usage[] =
	"Usage: multifd send [OPTIONS] URI FILE\n"
	"       multifd send [OPTIONS] URI --region NAME=PATH...\n"
	"Send FILE (a multiple of the page size) as one region, or each\n"
	"--region file as a region of that name, to a receiver listening at\n"
	"URI: tcp:HOST:PORT, tcp:[V6ADDR]:PORT, unix:PATH or rdma:HOST:PORT.\n"
	"Files may be regular files, /dev/shm objects or the memory-backend\n"
	"files of a paused hypervisor.\n\n" COMMON_HELP
	"  -R, --region NAME=PATH  send PATH as region NAME (repeatable)\n"
	"\nExit status: 0 when the receiver confirmed every page, 1 on a\n"
	"transfer error, 2 on a usage error.\n";

static const char recv_usage[] =
	"Usage: multifd recv [OPTIONS] URI FILE\n"
	"       multifd recv [OPTIONS] URI --region NAME=PATH...\n"
	"Listen on URI, receive the sender's single region into FILE\n"
	"(created or truncated to the region's size), or each region into\n"
	"the PATH of its --region: an existing file must have the region's\n"
	"size, a missing one is created. Exit once every page is in place.\n"
	"The method, page size and channel count come from the sender.\n\n"
	COMMON_HELP
	"  -R, --region NAME=PATH  receive region NAME into PATH (repeatable)\n"
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

/* --region NAME=PATH, on send and recv */
static const struct option region_opt[] = {
	{ "region", required_argument, NULL, 'R' },
	{ NULL, 0, NULL, 0 },
};

static int region_arg(int c, const char *arg, struct opts *o)
{
	const char *eq = strchr(arg, '=');
	char *name;

	if (c != 'R')
		return -1;
	if (!eq || eq == arg || !eq[1] || eq - arg > MFD_MAX_REGION_NAME) {
		die_msg("bad region '%s': expected NAME=PATH (a name of 1..%d "
			"characters)",
			arg, MFD_MAX_REGION_NAME);
		return -1;
	}
	if (o->nregions == MFD_MAX_REGIONS) {
		die_msg("too many regions: at most %d", MFD_MAX_REGIONS);
		return -1;
	}
	name = strndup(arg, (size_t)(eq - arg));
	if (!name)
		return -1;
	o->regions[o->nregions].name = name;
	o->regions[o->nregions++].path = eq + 1;
	return 0;
}

static void free_region_names(struct opts *o)
{
	for (unsigned i = 0; i < o->nregions; i++)
		free((char *)o->regions[i].name);
}

static const char *error_of(struct mfd_session *s, int r)
{
	return mfd_session_error(s)[0] ? mfd_session_error(s) : strerror(-r);
}

int cmd_send(int argc, char **argv)
{
	struct opts o = { 0 };
	struct mapping maps[MFD_MAX_REGIONS];
	struct mfd_session *s = NULL;
	struct progress pg = { 0 };
	char err[300], *file_name = NULL;
	uint64_t total = 0;
	unsigned nmaps = 0;
	int r, status = 1;

	r = parse_opts(argc, argv, &o, send_usage, region_opt, region_arg);
	if (r) {
		free_region_names(&o);
		return r == 1 ? 0 : 2;
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    (argc - optind == 1 && !o.nregions)) {
		die_msg("send: expected URI and FILE, or URI and --region "
			"options (try --help)");
		free_region_names(&o);
		return 2;
	}
	/* the FILE form is one more region, named after the file */
	if (argc - optind == 2) {
		file_name = strdup(argv[optind + 1]);
		if (file_name && o.nregions < MFD_MAX_REGIONS) {
			o.regions[o.nregions].name = strdup(basename(file_name));
			o.regions[o.nregions++].path = argv[optind + 1];
		}
	}
	o.cfg.uri = argv[optind];
	r = mfd_session_new(&o.cfg, MFD_ROLE_SEND, &s, err, sizeof(err));
	if (r) {
		die_msg("send: %s", err);
		status = 2;
		goto out;
	}
	for (; nmaps < o.nregions; nmaps++) {
		struct mapping *m = &maps[nmaps];

		r = map_file_read(o.regions[nmaps].path, o.cfg.page_size, m,
				  err, sizeof(err));
		if (r) {
			die_msg("send: %s", err);
			goto out;
		}
		r = mfd_session_add_region(s, o.regions[nmaps].name, m->mem,
					   m->len, false);
		if (r < 0) {
			die_msg("send: region '%s': %s", o.regions[nmaps].name,
				r == -EEXIST ? "named twice" : strerror(-r));
			nmaps++;
			goto out;
		}
		total += m->len;
	}
	r = mfd_session_start(s);
	progress_from_opts(&pg, &o, s, total);
	for (unsigned i = 0; !r && i < nmaps; i++)
		r = mfd_send_region(s, (int)i);
	if (!r)
		r = mfd_send_finish(s);
	progress_stop(&pg);
	if (r)
		die_msg("send: %s", error_of(s, r));
	else if (o.cfg.verify && !o.quiet && !o.json)
		printf("verified: the receiver's %u region%s identical\n",
		       nmaps, nmaps == 1 ? " is" : "s are");
	if (!r || o.json)
		print_result(&o, "sent", s, r == 0);
	status = r ? 1 : 0;
out:
	mfd_session_free(s);
	while (nmaps)
		unmap(&maps[--nmaps]);
	free(file_name);
	free_region_names(&o);
	return status;
}

/* Where the sender's regions land: the FILE of the single-file form, or
 * the --region files that did not exist yet (created at the announced
 * size). */
struct recv_target {
	const struct opts *o;
	const char *file; /* the FILE form, or NULL */
	struct mapping maps[MFD_MAX_REGIONS];
	unsigned nmaps;
	char err[300];
};

static int create_target(void *opaque, const char *name, uint64_t length,
			 void **mem, bool *zeroed)
{
	struct recv_target *t = opaque;
	const char *path = t->file;
	int r;

	for (unsigned i = 0; !t->file && i < t->o->nregions; i++)
		if (!strcmp(t->o->regions[i].name, name))
			path = t->o->regions[i].path;
	if (!path || (t->file && t->nmaps)) {
		snprintf(t->err, sizeof(t->err),
			 t->file ? "the sender announced a second region '%s';"
				   " use --region NAME=PATH for each"
				 : "the sender's region '%s' has no --region "
				   "on the receiver",
			 name);
		return -ENOENT;
	}
	r = map_file_create(path, length, &t->maps[t->nmaps], t->err,
			    sizeof(t->err));
	if (r)
		return r;
	*mem = t->maps[t->nmaps++].mem;
	*zeroed = true; /* a new or truncated file reads as zeros */
	return 0;
}

/* --region files that exist already are the sender's regions' places:
 * their sizes must match. The others are created when announced. */
static int open_existing_regions(struct mfd_session *s, struct recv_target *t)
{
	const struct opts *o = t->o;

	for (unsigned i = 0; i < o->nregions; i++) {
		struct mapping *m = &t->maps[t->nmaps];
		int r;

		if (access(o->regions[i].path, F_OK))
			continue;
		r = map_file_write(o->regions[i].path, o->cfg.page_size, m,
				   t->err, sizeof(t->err));
		if (r)
			return r;
		t->nmaps++;
		r = mfd_session_add_region(s, o->regions[i].name, m->mem,
					   m->len, false);
		if (r < 0) {
			snprintf(t->err, sizeof(t->err), "region '%s': %s",
				 o->regions[i].name,
				 r == -EEXIST ? "named twice" : strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Connections refused at the handshake: said, and the session goes on. */
static void log_line(void *opaque, const char *msg)
{
	fprintf(stderr, "multifd: recv: %s\n", msg);
}

int cmd_recv(int argc, char **argv)
{
	struct opts o = { 0 };
	struct recv_target t = { .o = &o };
	struct mfd_session *s = NULL;
	struct progress pg = { 0 };
	char err[300];
	int r, status = 1;

	r = parse_opts(argc, argv, &o, recv_usage, region_opt, region_arg);
	if (r) {
		free_region_names(&o);
		return r == 1 ? 0 : 2;
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    (argc - optind == 2) == (o.nregions > 0)) {
		die_msg("recv: expected URI and either FILE or --region "
			"options (try --help)");
		free_region_names(&o);
		return 2;
	}
	t.file = argc - optind == 2 ? argv[optind + 1] : NULL;
	o.cfg.uri = argv[optind];
	o.cfg.region_cb = create_target;
	o.cfg.region_opaque = &t;
	o.cfg.log_cb = log_line;
	r = mfd_session_new(&o.cfg, MFD_ROLE_RECV, &s, err, sizeof(err));
	if (r) {
		die_msg("recv: %s", err);
		status = 2;
		goto out;
	}
	r = open_existing_regions(s, &t);
	if (r) {
		die_msg("recv: %s", t.err);
		goto out;
	}
	r = mfd_session_start(s);
	if (!r && !o.quiet)
		fprintf(stderr, "multifd: listening on %s\n",
			mfd_session_uri(s));
	progress_from_opts(&pg, &o, s, 0);
	if (!r)
		r = mfd_recv_wait(s);
	progress_stop(&pg);
	if (r) {
		die_msg("recv: %s", error_of(s, r));
		if (t.err[0])
			die_msg("recv: %s", t.err);
	}
	for (unsigned i = 0; !r && i < t.nmaps; i++)
		if (msync(t.maps[i].mem, t.maps[i].len, MS_SYNC)) {
			r = -errno;
			die_msg("recv: cannot write region %u: %s", i,
				strerror(errno));
		}
	if (!r || o.json)
		print_result(&o, "received", s, r == 0);
	status = r ? 1 : 0;
out:
	mfd_session_free(s);
	while (t.nmaps)
		unmap(&t.maps[--t.nmaps]);
	free_region_names(&o);
	return status;
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
