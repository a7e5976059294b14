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
#include <sys/stat.h>

#include "blobs.h"
#include "claim.h"
#include "cli.h"
#include "memory.h"
#include "progress.h"
#include "signals.h"

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
	"                          K/M/G/T suffixes (sender; default 0: none;\n" \
	"                          at least one page per second, 4K at the\n" \
	"                          default page size)\n"                      \
	"      --min-channels N    sender: failover; a channel whose connection\n" \
	"                          fails is retired and what it carried sent\n" \
	"                          again on the others, while N are left\n"  \
	"                          (tcp:, unix:, fd:; default 0: none)\n"    \
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
	"      --tls-cert FILE     TLS 1.3 on every channel: this end's PEM\n" \
	"                          certificate (chain); with --tls-key and\n" \
	"                          --tls-ca, each end verifies the other's\n" \
	"      --tls-key FILE      this end's PEM private key\n"              \
	"      --tls-ca FILE       the CAs the peer's certificate must chain to\n" \
	"      --tls-hostname NAME sender: the name the receiver's certificate\n" \
	"                          must carry (default: the URI's host;\n"    \
	"                          needed with unix: and fd:)\n"              \
	"      --tls               TLS 1.3 with a key derived from\n"        \
	"                          --secret-file instead of certificates\n"  \
	"      --json              print one JSON object with the results\n"   \
	"  -q, --quiet             print nothing but errors\n"                  \
	"  -h, --help              this help\n"                                 \
	"  -V, --version           the version\n"

static const char send_usage[] =
	"Usage: multifd send [OPTIONS] URI FILE\n"
	"       multifd send [OPTIONS] URI --region NAME=PATH...\n"
	"Send FILE (a multiple of the page size) as one region, or each\n"
	"--region file as a region of that name, to a receiver listening at\n"
	"URI: tcp:HOST:PORT, tcp:[V6ADDR]:PORT, unix:PATH, rdma:HOST:PORT,\n"
	"or fd:N[,N...], connected sockets this process inherited, one per\n"
	"channel (the channel count defaults to their number).\n"
	"Files may be regular files, /dev/shm objects or the memory-backend\n"
	"files of a paused hypervisor.\n\n" COMMON_HELP
	"  -R, --region NAME=PATH  send PATH as region NAME (repeatable)\n"
	"  -B, --blob NAME=FILE    send FILE's bytes as blob NAME after the\n"
	"                          pages (repeatable; device state, metadata)\n"
	"\nExit status: 0 when the receiver confirmed every page, 1 on a\n"
	"transfer error, 2 on a usage error, 128 + N when signal N ended it.\n";

static const char recv_usage[] =
	"Usage: multifd recv [OPTIONS] URI FILE\n"
	"       multifd recv [OPTIONS] URI --region NAME=PATH...\n"
	"Listen on URI, receive the sender's single region into FILE, or\n"
	"each region into the PATH of its --region. Each is received into a\n"
	"new file that replaces FILE only once the session succeeded: a\n"
	"failed session leaves an existing FILE as it was. Exit once every\n"
	"page is in place. The method, page size and channel count come from\n"
	"the sender. With fd:N[,N...] it listens nowhere: the channels are\n"
	"the connected sockets it inherited.\n\n"
	COMMON_HELP
	"  -R, --region NAME=PATH  receive region NAME into PATH (repeatable)\n"
	"      --inplace           write into an existing FILE (of the\n"
	"                          region's size) where it is; a failed\n"
	"                          session leaves it a mix of old and new\n"
	"                          (a missing FILE is made as without it)\n"
	"      --blob-dir DIR      write each blob the sender sends to\n"
	"                          DIR/NAME (without it, blobs are refused)\n"
	"      --max-blob-bytes SIZE  hold at most SIZE bytes of blobs at\n"
	"                          once (default 256M)\n"
	"What a sender may propose (refused at the handshake otherwise):\n"
	"      --max-channels N    at most N channels\n"
	"      --methods LIST      only these methods (none,zlib,zstd)\n"
	"      --max-page-size BYTES  pages of at most BYTES\n"
	"      --require-checksum  senders must use --checksum\n"
	"      --require-verify    senders must use --verify\n"
	"The method, level, page size, packet size, zero-copy, bandwidth,\n"
	"checksum and verify options belong to the sender: the receiver\n"
	"takes them from it and ignores its own.\n"
	"\nExit status: 0 when every page arrived, 1 on a transfer error,\n"
	"2 on a usage error, 128 + N when signal N ended it.\n";

static const char main_usage[] =
	"Usage: multifd COMMAND [OPTIONS] ...\n"
	"Move memory pages between hosts over many parallel channels.\n\n"
	"Commands:\n"
	"  send URI FILE   send FILE to a receiver at URI\n"
	"  recv URI FILE   receive into FILE, listening at URI\n"
	"  bench           a sender and a receiver in one process over\n"
	"                  loopback: throughput, CPU cost, the raw ceiling\n"
	"  daemon --control unix:PATH\n"
	"                  serve transfers of memory passed as descriptors\n"
	"                  by local clients (docs/daemon.md)\n\n"
	"'multifd COMMAND --help' describes each command.\n"
	"  -h, --help      this help\n"
	"  -V, --version   the version\n";

/* send: --region NAME=PATH, --blob NAME=FILE */
static const struct option send_opt[] = {
	{ "region", required_argument, NULL, 'R' },
	{ "blob", required_argument, NULL, 'B' },
	{ NULL, 0, NULL, 0 },
};

/* send --blob's files; recv --blob-dir's */
static struct blob_files send_blobs;
static struct blob_dir recv_blobs;

static int region_arg(int c, const char *arg, struct opts *o)
{
	const char *eq = strchr(arg, '=');
	char *name;

	if (c != 'R')
		return -1;
	if (!eq || eq == arg || !eq[1] || eq - arg > MFD_MAX_REGION_NAME) {
		opt_error(arg, "expected NAME=PATH (a name of 1..%d "
			  "characters)",
			  MFD_MAX_REGION_NAME);
		return -1;
	}
	for (const char *q = arg; q < eq; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e) {
			cmd_error("bad region name for --region: byte %d is "
				  "0x%02x; expected printable ASCII "
				  "(0x20..0x7e)",
				  (int)(q - arg), (unsigned char)*q);
			return -1;
		}
	if (o->nregions == MFD_MAX_REGIONS) {
		opt_error(arg, "too many regions: expected at most %d",
			  MFD_MAX_REGIONS);
		return -1;
	}
	/* a name or a file given twice: the last would silently win, or two
	 * regions would land in one file */
	file_identity(eq + 1, &o->region_ids[o->nregions]);
	for (unsigned i = 0; i < o->nregions; i++) {
		if (strlen(o->regions[i].name) == (size_t)(eq - arg) &&
		    !memcmp(o->regions[i].name, arg, (size_t)(eq - arg))) {
			opt_error(arg, "region '%s' given twice ('%s=%s' and "
				  "'%s'): expected each NAME once",
				  o->regions[i].name, o->regions[i].name,
				  o->regions[i].path, arg);
			return -1;
		}
		if (same_file(&o->region_ids[i], o->regions[i].path,
			      &o->region_ids[o->nregions], eq + 1)) {
			opt_error(arg, "file '%s' given for two regions "
				  "('%s=%s' and '%s'): expected a file of its "
				  "own for each",
				  eq + 1, o->regions[i].name,
				  o->regions[i].path, arg);
			return -1;
		}
	}
	name = strndup(arg, (size_t)(eq - arg));
	if (!name) {
		die_msg("out of memory for region '%s'", arg);
		return -1;
	}
	o->regions[o->nregions].name = name;
	o->regions[o->nregions++].path = eq + 1;
	return 0;
}

static int send_arg(int c, const char *arg, struct opts *o)
{
	if (c == 'B')
		return blob_files_add(&send_blobs, arg);
	return region_arg(c, arg, o);
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

/* The FILE form's region is named after the file, in the printable ASCII
 * that region names are made of. */
static char *region_name_of(const char *path)
{
	char *copy = strdup(path), *name;

	if (!copy)
		return NULL;
	name = strdup(basename(copy));
	free(copy);
	for (char *c = name; c && *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '_';
	if (name && strlen(name) > MFD_MAX_REGION_NAME)
		name[MFD_MAX_REGION_NAME] = 0;
	return name;
}

/*
 * Queue every page of a file's region: the data as pages, the holes of a
 * sparse file as zero pages without reading them (reading a hole of a
 * tmpfs file allocates a page for it).
 */
static int send_file(struct mfd_session *s, int region, const struct mapping *m,
		     uint32_t ps)
{
	uint64_t off = 0, chunk[256];

	while (off < m->len) {
		off_t data = lseek(m->fd, (off_t)off, SEEK_DATA);
		off_t hole;
		uint64_t end;
		int r;

		if (data < 0 && errno == ENXIO) /* only a hole is left */
			data = (off_t)m->len;
		else if (data < 0) /* no SEEK_DATA here: all of it is data */
			data = (off_t)off;
		data = (off_t)((uint64_t)data & ~(uint64_t)(ps - 1));
		if ((uint64_t)data > m->len)
			data = (off_t)m->len;
		if ((uint64_t)data > off) {
			r = mfd_send_zero_range(s, region, off,
						(uint64_t)data - off);
			if (r)
				return r;
			off = (uint64_t)data;
		}
		if (off == m->len)
			break;
		hole = lseek(m->fd, (off_t)off, SEEK_HOLE);
		end = hole < 0 ? m->len
			       : ((uint64_t)hole + ps - 1) & ~(uint64_t)(ps - 1);
		if (end > m->len || end <= off)
			end = m->len;
		while (off < end) {
			size_t n = 0;

			for (; n < 256 && off < end; n++, off += ps)
				chunk[n] = off;
			r = mfd_send_pages(s, region, chunk, n);
			if (r)
				return r;
		}
	}
	return 0;
}

/* What the session's error comes down to for the operator: a file that
 * shrank or a full disk where region memory faulted, else its sentence. */
static void report(const char *cmd, struct mfd_session *s, int r,
		   const struct mapping *maps, unsigned n, bool sending)
{
	char why[600];

	if (signals_caught()) {
		die_msg("%s: stopped by a signal (%s)", cmd,
			signal_name(signals_caught()));
		return;
	}
	/* a sender's file that shrank explains any failure (sendfile()
	 * meets its end as an I/O error, a mapping as a fault) */
	for (unsigned i = 0; (r == -EFAULT || sending) && i < n; i++) {
		explain_fault(&maps[i], sending, why, sizeof(why));
		if (why[0]) {
			die_msg("%s: %s", cmd, why);
			return;
		}
	}
	die_msg("%s: %s", cmd, error_of(s, r));
}

/* The exit status of a command that failed: 128 + the signal that ended
 * it, as a shell reports a process killed by one, else 1. */
static int failed_status(void)
{
	return signals_caught() ? 128 + signals_caught() : 1;
}

int cmd_send(int argc, char **argv)
{
	struct opts o = { 0 };
	struct mapping maps[MFD_MAX_REGIONS];
	struct mfd_session *s = NULL;
	struct progress pg = { 0 };
	char err[300];
	uint64_t total = 0;
	unsigned nmaps = 0;
	int r, status = 1;

	r = parse_opts(argc, argv, &o, send_usage, send_opt, send_arg);
	if (r) {
		free_region_names(&o);
		return r == 1 ? 0 : 2;
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    (argc - optind == 2) == (o.nregions > 0)) {
		die_msg("send: expected URI and either FILE or --region "
			"options (try 'multifd send --help')");
		free_region_names(&o);
		return 2;
	}
	/* the FILE form is one region, named after the file */
	if (argc - optind == 2) {
		o.regions[o.nregions].name = region_name_of(argv[optind + 1]);
		o.regions[o.nregions++].path = argv[optind + 1];
	}
	o.cfg.uri = argv[optind];
	/* fd:N,N,...: a channel per descriptor unless -c says otherwise */
	if (!o.channels_given && !strncmp(o.cfg.uri, "fd:", 3)) {
		o.cfg.channels = 1;
		for (const char *p = o.cfg.uri; *p; p++)
			o.cfg.channels += *p == ',';
	}
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
		/* where no page is read to find zero pages, the pages
		 * then leave from the page cache, unmapped */
		if (r >= 0)
			r = mfd_session_region_file(s, r, m->fd, 0);
		if (r < 0) {
			die_msg("send: region '%s': %s", o.regions[nmaps].name,
				r == -EEXIST ? "named twice" : strerror(-r));
			nmaps++;
			goto out;
		}
		total += m->len;
	}
	if (blob_files_read(&send_blobs, err, sizeof(err))) {
		die_msg("send: %s", err);
		goto out;
	}
	signals_watch(s);
	r = mfd_session_start(s);
	progress_from_opts(&pg, &o, s, total);
	for (unsigned i = 0; !r && i < nmaps; i++)
		r = send_file(s, (int)i, &maps[i], o.cfg.page_size);
	/* in the last round: the receiver has every page when it gets them */
	if (!r)
		r = blob_files_send(&send_blobs, s);
	if (!r)
		r = mfd_send_finish(s);
	progress_stop(&pg);
	if (r)
		report("send", s, r, maps, nmaps, true);
	/* a file that shrank was not sent as it is, fault or not */
	for (unsigned i = 0; !r && i < nmaps; i++) {
		explain_fault(&maps[i], true, err, sizeof(err));
		if (err[0]) {
			die_msg("send: %s", err);
			r = -EIO;
		}
	}
	/* what was appended meanwhile did not go: said, not failed */
	for (unsigned i = 0; !r && i < nmaps; i++) {
		explain_growth(&maps[i], err, sizeof(err));
		if (err[0])
			die_msg("send: warning: %s", err);
	}
	if (!r && o.cfg.verify && !o.quiet && !o.json)
		fprintf(o.stats_interval > 0 ? stderr : stdout,
			"verified: the receiver's %u region%s identical\n",
			nmaps, nmaps == 1 ? " is" : "s are");
	if (!r || o.json)
		print_result(&o, "send", s, r == 0);
	status = r ? failed_status() : 0;
out:
	signals_watch(NULL);
	mfd_session_free(s);
	while (nmaps)
		unmap(&maps[--nmaps]);
	blob_files_free(&send_blobs);
	free_region_names(&o);
	return status;
}

/* Where the sender's regions land: the FILE of the single-file form, or
 * the --region files. Each becomes a new file that replaces its path
 * once the session succeeded; with --inplace an existing one is written
 * as it is. */
struct recv_target {
	const struct opts *o;
	struct mfd_session *s;
	const char *file; /* the FILE form, or NULL */
	struct mapping maps[MFD_MAX_REGIONS];
	unsigned nmaps;
	bool inplace_used; /* an existing file was written in place */
	bool all_in;	   /* every page arrived: the commit was reached */
	bool committed;	   /* the files and blobs took their names */
	struct progress *pg; /* told each region's size */
};

/* --inplace: FILE must have the region's size. */
static int same_size(const char *path, uint64_t have, const char *name,
		     uint64_t length, char *err, size_t errlen)
{
	if (have == length)
		return 0;
	snprintf(err, errlen,
		 "'%s' has %llu bytes, the sender's region '%s' %llu: "
		 "--inplace needs the same size",
		 path, (unsigned long long)have, name,
		 (unsigned long long)length);
	return -EINVAL;
}

static int create_target(void *opaque, const char *name, uint64_t length,
			 void **mem, bool *zeroed)
{
	struct recv_target *t = opaque;
	struct mapping *m = &t->maps[t->nmaps];
	const char *path = t->file;
	char err[600];
	int r;

	for (unsigned i = 0; !t->file && i < t->o->nregions; i++)
		if (!strcmp(t->o->regions[i].name, name))
			path = t->o->regions[i].path;
	if (!path || (t->file && t->nmaps)) {
		mfd_session_set_error(t->s,
			t->file ? "the sender announced a second region '%s';"
				  " use --region NAME=PATH for each"
				: "the sender's region '%s' has no --region "
				  "NAME=PATH on the receiver",
			name);
		return -ENOENT;
	}
	m->fd = -1;
	if (t->o->inplace && !access(path, F_OK)) {
		struct stat st;

		/* the size first: a file of 4 bytes is not a page-size
		 * question here */
		r = 0;
		if (!stat(path, &st) && S_ISREG(st.st_mode))
			r = same_size(path, (uint64_t)st.st_size, name, length,
				      err, sizeof(err));
		if (!r)
			r = map_file_inplace(path, t->o->cfg.page_size, m, err,
					     sizeof(err));
		/* or it changed meanwhile */
		if (!r && (r = same_size(path, m->len, name, length, err,
					 sizeof(err))))
			unmap(m);
		*zeroed = false;
		t->inplace_used |= !r;
	} else {
		r = map_file_new(path, length, m, err, sizeof(err));
		/* --prefault makes every page resident, zero pages too: a
		 * file that does not fit would fail wherever it ran out */
		if (r == 1 && t->o->cfg.prefault) {
			size_t n = strlen(err);

			snprintf(err + n, sizeof(err) - n,
				 "; --prefault makes every page resident: "
				 "receive without it");
			unmap(m);
			r = -ENOSPC;
		} else if (r == 1) {
			die_msg("recv: warning: %s", err);
			r = 0;
		}
		*zeroed = true; /* a new file reads as zeros */
	}
	if (r) {
		mfd_session_set_error(t->s, "%s", err);
		return r;
	}
	*mem = t->maps[t->nmaps++].mem;
	progress_expect(t->pg, length);
	return 0;
}

/* Every page is in: the files and the blobs take their names, before the
 * sender is told that the session succeeded (a rename that fails then
 * fails it on both ends). */
static int commit_targets(void *opaque, char *err, size_t errlen)
{
	struct recv_target *t = opaque;
	size_t at;
	int r = 0;

	/* first what can fail, for every file, so that a refusal leaves
	 * every FILE as it was; every page arrived, unless a file could
	 * not be written out whole */
	t->all_in = true;
	for (unsigned i = 0; !r && i < t->nmaps; i++) {
		r = commit_prepare(&t->maps[i], err, errlen);
		if (r && !t->maps[i].whole)
			t->all_in = false;
	}
	/* the write-out can outlast the sender (killed meanwhile): it
	 * would never hear that the files took their names */
	if (!r && mfd_recv_sender_present(t->s)) {
		snprintf(err, errlen, "the sender left while the files were "
			 "written out (it gave up or died)%s",
			 t->inplace_used ? "" : ": every FILE is as it was");
		r = -EPIPE;
	}
	/* a signal during the write-out stops it too; once the renames
	 * began it is too late (undone, FILE would show the new data for
	 * a moment) */
	if (!r && signals_caught()) {
		snprintf(err, errlen, "stopped by a signal (%s) before the "
			 "files took their names",
			 signal_name(signals_caught()));
		r = -ECANCELED;
	}
	for (unsigned i = 0; !r && i < t->nmaps; i++)
		r = commit_name(&t->maps[i], err, errlen);
	if (!r && blob_dir_commit(&recv_blobs, err, errlen))
		r = -EIO;
	/* a rename refused: the files that took their names give them
	 * back; say any that cannot */
	for (unsigned k = 0, told = 0; r && k < t->nmaps; k++)
		if (commit_undo(&t->maps[k])) {
			at = strlen(err);
			snprintf(err + at, errlen - at, "%s'%s'",
				 told++ ? ", " : "; already in place: ",
				 t->maps[k].path);
		}
	for (unsigned k = 0; !r && k < t->nmaps; k++)
		commit_done(&t->maps[k]);
	if (!r)
		blob_dir_done(&recv_blobs);
	t->committed = !r;
	return r;
}

/* Connections refused at the handshake: said, and the session goes on. */
static void log_line(void *opaque, const char *msg)
{
	fprintf(stderr, "multifd: recv: %s\n", msg);
}

enum {
	OPT_INPLACE = 300,
	OPT_MAX_CHANNELS,
	OPT_METHODS,
	OPT_MAX_PAGE_SIZE,
	OPT_REQUIRE_CHECKSUM,
	OPT_REQUIRE_VERIFY,
	OPT_BLOB_DIR,
	OPT_MAX_BLOB_BYTES,
};

static const struct option recv_opt[] = {
	{ "region", required_argument, NULL, 'R' },
	{ "inplace", no_argument, NULL, OPT_INPLACE },
	{ "max-channels", required_argument, NULL, OPT_MAX_CHANNELS },
	{ "methods", required_argument, NULL, OPT_METHODS },
	{ "max-page-size", required_argument, NULL, OPT_MAX_PAGE_SIZE },
	{ "require-checksum", no_argument, NULL, OPT_REQUIRE_CHECKSUM },
	{ "require-verify", no_argument, NULL, OPT_REQUIRE_VERIFY },
	{ "blob-dir", required_argument, NULL, OPT_BLOB_DIR },
	{ "max-blob-bytes", required_argument, NULL, OPT_MAX_BLOB_BYTES },
	{ NULL, 0, NULL, 0 },
};

/* --methods none,zstd: the methods a receiver accepts */
static int parse_methods(const char *arg, unsigned *mask)
{
	char buf[64], *save = NULL;

	/* strtok_r would skip an empty name: "none," is a typo, not none */
	if (strlen(arg) >= sizeof(buf) || !arg[0] || arg[0] == ',' ||
	    arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		goto bad;
	strcpy(buf, arg);
	*mask = 0;
	for (char *w = strtok_r(buf, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		enum mfd_method m;

		if (mfd_method_parse(w, &m))
			goto bad;
		*mask |= 1u << m;
	}
	if (*mask)
		return 0;
bad:
	opt_error(arg, "expected methods from none, zlib and zstd, "
		  "separated by commas");
	return -1;
}

static int recv_arg(int c, const char *arg, struct opts *o)
{
	uint64_t size;

	switch (c) {
	case OPT_INPLACE:
		o->inplace = true;
		return 0;
	case OPT_MAX_CHANNELS:
		return parse_uint(arg, "channels", 1, MFD_MAX_CHANNELS,
				  &o->cfg.accept_max_channels);
	case OPT_METHODS:
		return parse_methods(arg, &o->cfg.accept_methods);
	case OPT_MAX_PAGE_SIZE:
		if (parse_size(arg, "bytes", 512, 65536, &size))
			return -1;
		o->cfg.accept_max_page_size = (uint32_t)size;
		return 0;
	case OPT_REQUIRE_CHECKSUM:
		o->cfg.require_checksum = true;
		return 0;
	case OPT_REQUIRE_VERIFY:
		o->cfg.require_verify = true;
		return 0;
	case OPT_BLOB_DIR:
		recv_blobs.dir = arg;
		return 0;
	case OPT_MAX_BLOB_BYTES:
		if (parse_size(arg, "bytes", 0, 1ull << 40, &size))
			return -1;
		o->cfg.max_blob_bytes = size;
		return 0;
	}
	return region_arg(c, arg, o);
}

/*
 * Each file the receiver writes is claimed while it runs (tools/claim.c):
 * a second receiver of one name is refused before it listens, as is a
 * name given for two regions. The claims, one per region and FILE (-1
 * where there is none), or NULL when refused (said).
 */
static void claims_release(int *claims, unsigned n)
{
	for (unsigned i = 0; claims && i < n; i++)
		if (claims[i] >= 0)
			close(claims[i]);
	free(claims);
}

static int *claim_destinations(const struct opts *o, const char *file)
{
	int *claims = malloc((o->nregions + 1) * sizeof(*claims));

	if (!claims) {
		die_msg("recv: out of memory");
		return NULL;
	}
	for (unsigned i = 0; i <= o->nregions; i++) {
		const char *path = i < o->nregions ? o->regions[i].path : file;
		pid_t holder;

		claims[i] = path ? name_claim(path, &holder) : -1;
		if (claims[i] != -EBUSY)
			continue;
		if (holder == getpid())
			die_msg("recv: '%s' is given for two regions: they would "
				"write one file",
				path);
		else if (holder)
			die_msg("recv: '%s' is being received by another "
				"multifd process (pid %d): two receivers would "
				"replace each other's file",
				path, (int)holder);
		else
			die_msg("recv: '%s' is being received by another "
				"multifd process: two receivers would replace "
				"each other's file",
				path);
		claims_release(claims, i);
		return NULL;
	}
	return claims;
}

int cmd_recv(int argc, char **argv)
{
	struct opts o = { 0 };
	struct progress pg = { 0 };
	struct recv_target t = { .o = &o, .pg = &pg };
	struct mfd_session *s = NULL;
	char err[600] = "";
	int r, status = 1, *claims = NULL;

	r = parse_opts(argc, argv, &o, recv_usage, recv_opt, recv_arg);
	if (r) {
		free_region_names(&o);
		return r == 1 ? 0 : 2;
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    (argc - optind == 2) == (o.nregions > 0)) {
		die_msg("recv: expected URI and either FILE or --region "
			"options (try 'multifd recv --help')");
		free_region_names(&o);
		return 2;
	}
	t.file = argc - optind == 2 ? argv[optind + 1] : NULL;
	/* a destination that cannot be written is said now, not once a
	 * sender has come */
	for (unsigned i = 0; i <= o.nregions; i++) {
		const char *path = i < o.nregions ? o.regions[i].path : t.file;

		if (path &&
		    check_destination(path, o.inplace, err, sizeof(err))) {
			die_msg("recv: %s", err);
			free_region_names(&o);
			return 1;
		}
	}
	claims = claim_destinations(&o, t.file);
	if (!claims) {
		free_region_names(&o);
		return 1;
	}
	for (unsigned i = 0; i <= o.nregions; i++) {
		const char *path = i < o.nregions ? o.regions[i].path : t.file;

		if (path && recv_blobs.ntargets < MFD_MAX_REGIONS)
			recv_blobs.targets[recv_blobs.ntargets++] = path;
	}
	if (recv_blobs.dir && blob_dir_check(&recv_blobs, err, sizeof(err))) {
		die_msg("recv: %s", err);
		goto out;
	}
	o.cfg.uri = argv[optind];
	o.cfg.region_cb = create_target;
	o.cfg.region_opaque = &t;
	o.cfg.commit_cb = commit_targets;
	o.cfg.commit_opaque = &t;
	o.cfg.log_cb = log_line;
	o.cfg.blob_cb = blob_dir_take;
	o.cfg.blob_opaque = &recv_blobs;
	r = mfd_session_new(&o.cfg, MFD_ROLE_RECV, &s, err, sizeof(err));
	if (r) {
		die_msg("recv: %s", err);
		status = 2;
		goto out;
	}
	t.s = s;
	recv_blobs.s = s;
	/* every --region must come, or the session is refused */
	for (unsigned i = 0; i < o.nregions; i++) {
		r = mfd_session_add_region(s, o.regions[i].name, NULL, 0, false);
		if (r < 0) {
			die_msg("recv: region '%s': %s", o.regions[i].name,
				strerror(-r));
			status = 2;
			goto out;
		}
	}
	signals_watch(s);
	r = mfd_session_start(s);
	/* with port 0 the address is news even to a quiet caller */
	if (!r && (!o.quiet || (strlen(o.cfg.uri) > 2 &&
				!strcmp(o.cfg.uri + strlen(o.cfg.uri) - 2,
					":0"))))
		fprintf(stderr, "multifd: listening on %s\n",
			mfd_session_uri(s));
	progress_from_opts(&pg, &o, s, 0);
	if (!r)
		r = mfd_recv_wait(s);
	progress_stop(&pg);
	if (r)
		report("recv", s, r, t.maps, t.nmaps, false);
	/* the session failed after the commit (the sender's end of it):
	 * what the files hold now is said, whatever else failed */
	if (r && t.committed && !t.inplace_used)
		die_msg("recv: every page arrived and the files took their "
			"names before the session failed");
	else if (r && t.inplace_used)
		die_msg(t.all_in ? "recv: every page arrived in the files "
				   "received in place, but the session failed "
				   "(the sender, if still there, reports a "
				   "failure)"
				 : "recv: the files received in place may now "
				   "hold a mix of the sender's pages and what "
				   "they held before");
	if (!r && signals_caught())
		die_msg("recv: %s came after the files took their names: the "
			"transfer completed",
			signal_name(signals_caught()));
	if (!r || o.json)
		print_result(&o, "recv", s, r == 0);
	status = r ? failed_status() : 0;
out:
	signals_watch(NULL);
	mfd_session_free(s);
	while (t.nmaps)
		unmap(&t.maps[--t.nmaps]);
	blob_dir_free(&recv_blobs);
	claims_release(claims, o.nregions + 1);
	free_region_names(&o);
	return status;
}

#ifndef HAVE_JSONC
int cmd_daemon(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	die_msg("daemon: this multifd was built without json-c, so the daemon "
		"subcommand is left out (apt-get install libjson-c-dev, then "
		"./configure again)");
	return 2;
}
#endif

/* multifd -h or --version, as the commands take them: no prefix of a
 * long name, and the first one wins over whatever follows (as GNU tools
 * do). */
static int main_options(int argc, char **argv)
{
	static const struct option table[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, li = -1;

	opterr = 0;
	c = getopt_long(argc, argv, "+:hV", table, &li);
	if (c != 'h' && c != 'V') {
		bad_option(NULL, c, argv, table);
		return 2;
	}
	if (li >= 0 && long_option_abbreviated(argv, table[li].name)) {
		die_msg("unknown option '%s' (did you mean '--%s'? try "
			"'multifd --help')",
			argv[1], table[li].name);
		return 2;
	}
	if (c == 'h')
		fputs(main_usage, stdout);
	else
		printf("multifd %s (libmultifd %s)\n", PACKAGE_VERSION,
		       mfd_version());
	return finish_output(0);
}

int main(int argc, char **argv)
{
	/* fds 0-2 and SIGPIPE first: nothing may be opened before */
	if (cli_init())
		return 1;
	/* the daemon takes its signals itself (a signalfd), from before its
	 * first thread */
	if (argc >= 2 && !strcmp(argv[1], "daemon"))
		return finish_output(cmd_daemon(argc - 1, argv + 1));
	/* before any thread: the library's threads inherit the blocked mask */
	if (signals_start()) {
		die_msg("cannot start the signal thread");
		return 1;
	}
	if (argc < 2) {
		die_msg("expected a command: send, recv, bench or daemon");
		fputs(main_usage, stderr);
		return 2;
	}
	/* each path ends in finish_output(): what it printed reached stdout,
	 * or the exit status says it did not */
	if (!strcmp(argv[1], "send"))
		return finish_output(cmd_send(argc - 1, argv + 1));
	if (!strcmp(argv[1], "recv"))
		return finish_output(cmd_recv(argc - 1, argv + 1));
	if (!strcmp(argv[1], "bench"))
		return finish_output(cmd_bench(argc - 1, argv + 1));
	if (argv[1][0] == '-' && argv[1][1] && strcmp(argv[1], "--"))
		return main_options(argc, argv);
	die_msg("unknown command '%s': expected send, recv, bench or daemon (try "
		"'multifd --help')",
		argv[1]);
	return 2;
}
