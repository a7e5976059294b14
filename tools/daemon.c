/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - multifd daemon --control unix:PATH: an offload daemon that a
 * hypervisor drives over a SOCK_SEQPACKET Unix socket. One message is one
 * JSON command with the file descriptors of its memory attached; one
 * message back is one JSON event. docs/daemon.md is the protocol.
 *
 * Threads: the main thread accepts clients and takes the signals (a
 * signalfd); one thread per client connection reads its commands and
 * sends its progress events; one thread per session drives the library
 * (mfd_session_start, the rounds, mfd_recv_wait), so that a session
 * blocked in a call never delays the client's other sessions. A session
 * belongs to the connection that made it: its id is looked up in that
 * connection's list only, so that no other client can name, see or cancel
 * it, and a connection that ends cancels and frees all of its sessions.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "cli.h"

/* json_tokener_get_parse_end() came with json-c 0.15 */
#if JSON_C_VERSION_NUM < ((0 << 16) | (15 << 8))
#define json_tokener_get_parse_end(tok) ((size_t)(tok)->char_offset)
#endif

#define PROTOCOL_VERSION 1
#define MAX_MSG 65536	     /* bytes of one command */
#define MAX_TAG 4096	     /* bytes of its tag, as JSON */
#define MAX_FDS 253	     /* SCM_MAX_FD: descriptors of one command */
#define MAX_CLIENTS 64
#define MAX_SESSIONS 64	     /* per connection */
#define MAX_ALLOW 64	     /* --allow-uid */
#define SEND_TIMEOUT_S 5     /* a client that reads no events this long */
#define DEFAULT_PROGRESS_MS 1000

static const char daemon_usage[] =
	"Usage: multifd daemon --control unix:PATH [OPTIONS]\n"
	"Serve memory transfers to local clients (a hypervisor) over the\n"
	"SOCK_SEQPACKET Unix socket PATH: each message is one JSON command,\n"
	"with the memory it names attached as file descriptors (memfd, shmem\n"
	"or hugetlbfs files); the daemon answers with JSON events. The\n"
	"protocol is in docs/daemon.md. Several sessions run at once, each\n"
	"owned by the connection that started it; a connection that closes\n"
	"cancels its sessions. SIGINT, SIGTERM or SIGHUP cancel every session,\n"
	"remove PATH and exit 0.\n\n"
	"  -C, --control unix:PATH  the socket to serve (a stale socket file\n"
	"                          there is replaced; a live daemon's is not)\n"
	"      --allow-uid UID     also serve clients of user id UID\n"
	"                          (repeatable; the socket file is then\n"
	"                          mode 0666 and the uid check decides)\n"
	"      --any-user          serve clients of every user\n"
	"  -q, --quiet             log nothing but errors on stderr\n"
	"  -h, --help              this help\n"
	"  -V, --version           the version\n"
	"By default only clients with the daemon's own user id are served\n"
	"(SO_PEERCRED), and the socket file is mode 0600.\n"
	"\nExit status: 0 after SIGINT, SIGTERM or SIGHUP, 1 when PATH cannot be\n"
	"served, 2 on a usage error.\n";

struct region {
	char *name;
	int fd;
	void *mem;
	uint64_t len;
};

enum op_kind { OP_DIRTY, OP_SYNC, OP_FINISH };

/* A command queued for a sending session's thread, which answers it. */
struct op {
	struct op *next;
	enum op_kind kind;
	const char *cmd;
	json_object *tag; /* a reference, or NULL */
	unsigned n;	  /* OP_DIRTY: bitmaps, one per named region */
	struct {
		int region;
		uint64_t *map;
		size_t len;
	} bitmaps[];
};

struct client;

struct session {
	/* immutable once the session is in its client's list */
	struct client *c;
	unsigned id;
	enum mfd_role role;
	struct mfd_session *s;
	struct region *regs;
	unsigned nregs;
	uint64_t total_bytes;
	uint32_t page_size;
	bool full;		/* send: queue every region first */
	unsigned progress_ms;	/* 0: no progress events */
	/* protected by c->lock */
	struct session *next;
	struct op *ops, **tail;
	bool cancelled;
	const char *cancel_why; /* NULL: the client's cancel */
	bool finishing;		/* a finish is queued: nothing after it */
	bool started;		/* connected or listening */
	double next_progress;
	pthread_cond_t cond; /* with c->lock: an op or a cancel came */
};

struct client {
	/* immutable after accept */
	int fd;
	uid_t uid;
	pid_t pid;
	/* protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t ended; /* a session thread ended */
	struct session *sessions;
	unsigned nsessions; /* session threads not yet ended */
	unsigned next_id;
	/* protected by send_lock */
	pthread_mutex_t send_lock;
	bool dead; /* gone, or stopped reading: send nothing more */
	/* protected by g.lock */
	struct client *next;
};

static struct {
	/* immutable after start */
	uid_t allow[MAX_ALLOW];
	unsigned nallow;
	bool any_user;
	bool quiet;
	bool stopping; /* atomic: a signal came, no new session */
	/* protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a client thread ended */
	struct client *clients;
	unsigned nclients;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	if (g.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "multifd: daemon: %s\n", buf);
}

/* ---- events ---- */

static json_object *ev_new(const char *event)
{
	json_object *ev = json_object_new_object();

	json_object_object_add(ev, "event", json_object_new_string(event));
	return ev;
}

static void add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static void add_double(json_object *o, const char *k, double v)
{
	json_object_object_add(o, k, json_object_new_double(v));
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

/*
 * Send one event (and drop our reference). A client that does not take
 * its events within SEND_TIMEOUT_S (SO_SNDTIMEO) is cut off: its reader
 * sees the end of the connection and cancels its sessions. Progress
 * events are dropped instead while the socket is full.
 */
static void emit(struct client *c, json_object *ev, bool droppable)
{
	const char *txt = json_object_to_json_string_ext(
		ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	pthread_mutex_lock(&c->send_lock);
	if (!c->dead &&
	    send(c->fd, txt, strlen(txt),
		 MSG_NOSIGNAL | (droppable ? MSG_DONTWAIT : 0)) < 0 &&
	    !(droppable && (errno == EAGAIN || errno == EWOULDBLOCK))) {
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->send_lock);
	json_object_put(ev);
}

/* An "ok" answer about a session; emit_ok() adds the command and tag. */
static json_object *ok_ev(unsigned session)
{
	json_object *ev = ev_new("ok");

	add_int(ev, "session", session);
	return ev;
}

/* A command's tag of JSON null (json-c's NULL, which is also "no tag"):
 * this object stands for it, and is never freed nor counted. */
static json_object *null_tag;

/* A deep copy of the tag v (NULL without memory: the events then have
 * no tag). */
static json_object *tag_copy(json_object *v)
{
	json_object *copy = NULL;

	return json_object_deep_copy(v, &copy, NULL) ? NULL : copy;
}

/* The command's tag, copied as it was, into ev. */
static void add_tag(json_object *ev, json_object *tag)
{
	if (tag)
		json_object_object_add(ev, "tag", tag == null_tag
							  ? NULL
							  : json_object_get(tag));
}

/* ev: an "ok" event with the command's own fields already in */
static void emit_ok(struct client *c, const char *cmd, json_object *tag,
		    json_object *ev)
{
	add_str(ev, "cmd", cmd);
	add_tag(ev, tag);
	emit(c, ev, false);
}

/* A command refused or failed: its answer. session 0: none concerned. */
static void emit_error(struct client *c, const char *cmd, json_object *tag,
		       unsigned session, const char *msg)
{
	json_object *ev = ev_new("error");

	if (cmd)
		add_str(ev, "cmd", cmd);
	add_tag(ev, tag);
	if (session)
		add_int(ev, "session", session);
	add_str(ev, "message", msg);
	emit(c, ev, false);
}

static void add_stats(json_object *ev, const struct mfd_stats *st)
{
	add_int(ev, "bytes", (int64_t)st->bytes);
	add_int(ev, "payload_bytes", (int64_t)st->payload_bytes);
	add_int(ev, "packets", (int64_t)st->packets);
	add_int(ev, "normal_pages", (int64_t)st->normal_pages);
	add_int(ev, "zero_pages", (int64_t)st->zero_pages);
	add_int(ev, "rounds", (int64_t)st->rounds);
	add_double(ev, "seconds", st->seconds);
}

static json_object *session_ev(struct session *d, const char *event)
{
	json_object *ev = ev_new(event);

	add_int(ev, "session", d->id);
	return ev;
}

/* ---- reading commands ---- */

/* A field of the wrong type or out of range: the sentence for it. */
static int field_error(char *err, size_t len, const char *key,
		       json_object *v, const char *expected)
{
	if (v && (json_object_is_type(v, json_type_int) ||
		  json_object_is_type(v, json_type_boolean) ||
		  json_object_is_type(v, json_type_double)))
		snprintf(err, len, "field '%s' is %s; expected %s", key,
			 json_object_to_json_string(v), expected);
	else if (v && json_object_is_type(v, json_type_array))
		snprintf(err, len, "field '%s' is an %sarray; expected %s", key,
			 json_object_array_length(v) ? "" : "empty ", expected);
	else
		snprintf(err, len, "field '%s' is %s %s; expected %s", key,
			 v && json_object_is_type(v, json_type_object) ? "an"
								        : "a",
			 v ? json_type_to_name(json_object_get_type(v))
			   : "null",
			 expected);
	return -EINVAL;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t max,
		   int64_t *out, char *err, size_t len)
{
	json_object *v;
	char want[96];
	int64_t i;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	snprintf(want, sizeof(want), "an integer from %lld to %lld",
		 (long long)min, (long long)max);
	if (!json_object_is_type(v, json_type_int))
		return field_error(err, len, key, v, want);
	errno = 0;
	i = json_object_get_int64(v);
	/* json-c saturates what int64 cannot hold: its text would be the
	 * bound, not what the client wrote */
	if (errno || i == INT64_MAX || i == INT64_MIN) {
		snprintf(err, len, "field '%s' is a number beyond 64 bits; "
			 "expected %s", key, want);
		return -EINVAL;
	}
	if (i < min || i > max)
		return field_error(err, len, key, v, want);
	*out = i;
	return 0;
}

static int get_uint(json_object *o, const char *key, unsigned min,
		    unsigned max, unsigned *out, char *err, size_t len)
{
	int64_t v = *out;
	int r = get_int(o, key, min, max, &v, err, len);

	*out = (unsigned)v;
	return r;
}

/* The required array `key` of 1 to MAX_FDS elements: one per descriptor
 * of the message. `missing` says what it holds when it is absent. */
static int get_fd_array(json_object *o, const char *key, const char *missing,
			const char *expected, json_object **arr, unsigned *n,
			char *err, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		snprintf(err, len, "missing field '%s' (%s)", key, missing);
		return -EINVAL;
	}
	if (!json_object_is_type(v, json_type_array) ||
	    !json_object_array_length(v) ||
	    json_object_array_length(v) > MAX_FDS)
		return field_error(err, len, key, v, expected);
	*arr = v;
	*n = (unsigned)json_object_array_length(v);
	return 0;
}

static int get_bool(json_object *o, const char *key, bool *out, char *err,
		    size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return field_error(err, len, key, v, "true or false");
	*out = json_object_get_boolean(v);
	return 0;
}

/* The C string of a JSON string, or NULL when it is not one or holds a
 * NUL byte ("\u0000"), which would cut it short unseen. */
static const char *cstr(json_object *v)
{
	const char *p;

	if (!json_object_is_type(v, json_type_string))
		return NULL;
	p = json_object_get_string(v);
	return strlen(p) == (size_t)json_object_get_string_len(v) ? p : NULL;
}

/* A string field; *out stays as it is when the field is absent. */
static int get_str(json_object *o, const char *key, bool required,
		   const char **out, char *err, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		if (!required)
			return 0;
		snprintf(err, len, "missing field '%s' (a string)", key);
		return -EINVAL;
	}
	if (!json_object_is_type(v, json_type_string))
		return field_error(err, len, key, v, "a string");
	*out = cstr(v);
	if (!*out) {
		snprintf(err, len,
			 "field '%s' holds a NUL byte (\\u0000) at byte %zu; "
			 "expected a string without one",
			 key, strlen(json_object_get_string(v)));
		return -EINVAL;
	}
	return 0;
}

/* Whether s[0..n) is a JSON number as RFC 8259 writes it:
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_ok(const char *s, size_t n)
{
	size_t i = s[0] == '-';
	size_t d;

	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	else
		return false;
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && isdigit((unsigned char)s[i]); i++)
			;
		if (i == d)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && isdigit((unsigned char)s[i]); i++)
			;
		if (i == d)
			return false;
	}
	return i == n;
}

/* The \uXXXX escape at buf[i] (4 hex digits), or -1. */
static long escape_unit(const char *buf, size_t len, size_t i)
{
	char hex[5];

	if (i + 6 > len || buf[i] != '\\' || buf[i + 1] != 'u')
		return -1;
	memcpy(hex, buf + i + 2, 4);
	hex[4] = 0;
	for (int k = 0; k < 4; k++)
		if (!isxdigit((unsigned char)hex[k]))
			return -1;
	return strtol(hex, NULL, 16);
}

/* Whether the escape at buf[i] is a surrogate without its other half
 * (json-c makes it U+FFFD, so a tag would not come back as it was). */
static bool surrogate_alone(const char *buf, size_t len, size_t i)
{
	long u = escape_unit(buf, len, i), low;

	if (u >= 0xdc00 && u <= 0xdfff)
		return true;
	if (u < 0xd800 || u > 0xdbff)
		return false;
	low = escape_unit(buf, len, i + 6);
	return low < 0xdc00 || low > 0xdfff;
}

/*
 * What json-c takes but RFC 8259 does not, in the message's text: a
 * control character inside a string (JSON escapes it), a number such as
 * 1. or -01, a word such as NaN; and what RFC 7493 (I-JSON) refuses, a
 * lone surrogate. 0, or -EINVAL said in err.
 */
static int check_json_text(const char *buf, size_t len, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < len; i++) {
		size_t n = 0;
		bool number;
		long u;

		if (buf[i] == '"') {
			for (i++; i < len && buf[i] != '"'; i++) {
				if ((unsigned char)buf[i] < 0x20) {
					snprintf(err, errlen,
						 "bad JSON at byte %zu: a control "
						 "character (0x%02x) inside a "
						 "string; JSON writes it escaped",
						 i, (unsigned char)buf[i]);
					return -EINVAL;
				}
				if (buf[i] != '\\')
					continue;
				if (surrogate_alone(buf, len, i)) {
					snprintf(err, errlen,
						 "bad JSON at byte %zu: '%.6s' is half "
						 "of a UTF-16 surrogate pair, no "
						 "character (RFC 7493 2.1)",
						 i, buf + i);
					return -EINVAL;
				}
				u = escape_unit(buf, len, i);
				if (u >= 0xd800 && u <= 0xdbff)
					i += 6; /* to its low half */
				i++;
			}
			continue;
		}
		while (i + n < len &&
		       (isalnum((unsigned char)buf[i + n]) ||
			strchr("+-.", buf[i + n])) && buf[i + n])
			n++;
		if (!n)
			continue;
		number = buf[i] == '-' || isdigit((unsigned char)buf[i]);
		if (number ? json_number_ok(buf + i, n)
			   : (n == 4 && !strncmp(buf + i, "true", 4)) ||
				     (n == 5 && !strncmp(buf + i, "false", 5)) ||
				     (n == 4 && !strncmp(buf + i, "null", 4))) {
			i += n - 1;
			continue;
		}
		snprintf(err, errlen,
			 "bad JSON at byte %zu: '%.*s' is no JSON %s", i,
			 (int)(n > 40 ? 40 : n), buf + i,
			 number ? "number (RFC 8259)"
				: "value (expected true, false or null)");
		return -EINVAL;
	}
	return 0;
}

/*
 * What json-c reads but JSON has no such number for, anywhere in v: NaN,
 * Infinity and a number too large for a double (1e400); and in a tag,
 * which comes back as it was, an integer json-c cannot hold (it clamps
 * 2^64 and above) or another reader could not (past 2^53, RFC 7493).
 * 0, or -EINVAL said in err.
 */
static int check_numbers(json_object *v, bool tag, int depth, char *err,
			 size_t len)
{
	const int64_t exact = (1ll << 53) - 1;

	switch (json_object_get_type(v)) {
	case json_type_double:
		if (isfinite(json_object_get_double(v)))
			return 0;
		snprintf(err, len, "bad JSON: %s is no JSON number; expected a "
			 "finite one",
			 json_object_to_json_string(v));
		return -EINVAL;
	case json_type_int:
		if (!tag || (json_object_get_int64(v) <= exact &&
			     json_object_get_int64(v) >= -exact))
			return 0;
		snprintf(err, len, "'tag' holds an integer of 2^53 or more, "
			 "which could not come back as it was; expected a "
			 "smaller one, or a string");
		return -EINVAL;
	case json_type_object: {
		json_object_object_foreach(v, key, val)
		{
			bool in_tag = tag || (!depth && !strcmp(key, "tag"));

			if (check_numbers(val, in_tag, depth + 1, err, len))
				return -EINVAL;
		}
		return 0;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (check_numbers(json_object_array_get_idx(v, i), tag,
					  depth + 1, err, len))
				return -EINVAL;
		return 0;
	default:
		return 0;
	}
}

/* Every field of the command is one it knows: a typo is not a default. */
static int check_fields(json_object *o, const char *cmd,
			const char *const *known, char *err, size_t len)
{
	json_object_object_foreach(o, key, val)
	{
		bool found = !strcmp(key, "cmd") || !strcmp(key, "tag");

		(void)val;
		for (unsigned i = 0; !found && known[i]; i++)
			found = !strcmp(key, known[i]);
		if (!found) {
			int n = snprintf(err, len,
					 "unknown field '%s' for '%s': expected",
					 key, cmd);

			for (unsigned i = 0; known[i] && n > 0 &&
					     (size_t)n < len; i++)
				n += snprintf(err + n, len - (size_t)n,
					      "%s '%s'", i ? "," : "",
					      known[i]);
			if (!known[0] && n > 0 && (size_t)n < len)
				snprintf(err + n, len - (size_t)n,
					 " only 'cmd' and 'tag'");
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_hex_secret(const char *hex, uint8_t *out, size_t *len,
			    char *err, size_t errlen)
{
	size_t n = strlen(hex);

	if (n % 2 || n < 32 || n / 2 > 4096) {
		snprintf(err, errlen,
			 "field 'secret' has %zu hex digits; expected an even "
			 "number from 32 to 8192 (16 bytes or more)",
			 n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)hex[i])) {
			snprintf(err, errlen,
				 "field 'secret': character %zu is not a hex "
				 "digit; expected hex digits only",
				 i);
			return -EINVAL;
		}
	for (size_t i = 0; i < n; i += 2) {
		unsigned v;

		if (sscanf(hex + i, "%2x", &v) != 1)
			return -EINVAL;
		out[i / 2] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

/*
 * Descriptor `fd` (the n-th of its message) must be a regular file
 * (memfd, shmem, hugetlbfs) open for reading, and for writing too when
 * `rw`. *size gets its size.
 */
static int check_fd(int fd, unsigned n, const char *what, bool rw,
		    uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fstat(fd, &st)) {
		int e = errno;

		snprintf(err, errlen, "%s: descriptor %u: %s", what, n,
			 strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen,
			 "%s: descriptor %u is %s; expected a memfd, shmem or "
			 "hugetlbfs file",
			 what, n, file_kind(st.st_mode));
		return -EINVAL;
	}
	if ((fl & O_ACCMODE) != O_RDWR &&
	    (rw || (fl & O_ACCMODE) != O_RDONLY)) {
		snprintf(err, errlen,
			 "%s: descriptor %u is open %s; expected %s", what, n,
			 (fl & O_ACCMODE) == O_WRONLY ? "write-only"
						      : "read-only",
			 rw ? "read-write (O_RDWR)" : "for reading");
		return -EBADF;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Whether descriptors a and b are the same file. */
static bool same_fd_file(int a, int b)
{
	struct stat sa, sb;

	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* Map the first `len` bytes of a descriptor check_fd() took, MAP_SHARED,
 * writable when `rw`. */
static int map_fd(int fd, unsigned n, const char *what, bool rw,
		  uint64_t len, void **mem, char *err, size_t errlen)
{
	*mem = mmap(NULL, len, PROT_READ | (rw ? PROT_WRITE : 0), MAP_SHARED,
		    fd, 0);
	if (*mem == MAP_FAILED) {
		int e = errno;

		snprintf(err, errlen, "%s: cannot map descriptor %u (%llu "
			 "bytes): %s", what, n, (unsigned long long)len,
			 strerror(e));
		*mem = NULL;
		return -e;
	}
	return 0;
}

/* ---- sessions ---- */

static void op_free(struct op *op)
{
	if (!op)
		return;
	for (unsigned i = 0; i < op->n; i++)
		if (op->bitmaps[i].map)
			munmap(op->bitmaps[i].map, op->bitmaps[i].len);
	if (op->tag != null_tag)
		json_object_put(op->tag);
	free(op);
}

/* Frees what a session holds; the session is in no list any more. */
static void session_free(struct session *d)
{
	if (!d)
		return;
	mfd_session_free(d->s);
	for (unsigned i = 0; d->regs && i < d->nregs; i++) {
		if (d->regs[i].mem)
			munmap(d->regs[i].mem, d->regs[i].len);
		if (d->regs[i].fd >= 0)
			close(d->regs[i].fd);
		free(d->regs[i].name);
	}
	free(d->regs);
	while (d->ops) {
		struct op *op = d->ops;

		d->ops = op->next;
		op_free(op);
	}
	pthread_cond_destroy(&d->cond);
	free(d);
}

static const char *error_of(struct session *d, int r)
{
	const char *e = mfd_session_error(d->s);

	return e[0] ? e : strerror(-r);
}

/* The next queued op, or NULL once the session is cancelled. */
static struct op *next_op(struct session *d)
{
	struct client *c = d->c;
	struct op *op = NULL;

	pthread_mutex_lock(&c->lock);
	while (!d->cancelled && !d->ops)
		pthread_cond_wait(&d->cond, &c->lock);
	if (!d->cancelled) {
		op = d->ops;
		d->ops = op->next;
		if (!d->ops)
			d->tail = &d->ops;
	}
	pthread_mutex_unlock(&c->lock);
	return op;
}

static void emit_round(struct session *d, unsigned round, bool final)
{
	struct mfd_round_stats st;
	json_object *ev;

	if (mfd_round_stats(d->s, round, &st))
		return;
	ev = session_ev(d, "round");
	add_int(ev, "round", (int64_t)st.round);
	add_int(ev, "pages", (int64_t)st.pages);
	add_int(ev, "bytes", (int64_t)st.bytes);
	add_double(ev, "seconds", st.seconds);
	add_double(ev, "bytes_per_s", st.bytes_per_s);
	add_int(ev, "dirty_pages", (int64_t)st.dirty_pages);
	add_double(ev, "dirty_pages_per_s", st.dirty_pages_per_s);
	add_double(ev, "projected_downtime_s", st.projected_downtime_s);
	add_double(ev, "send_seconds", st.send_seconds);
	add_double(ev, "send_bytes_per_s", st.send_bytes_per_s);
	if (final)
		json_object_object_add(ev, "final", json_object_new_boolean(1));
	emit(d->c, ev, false);
}

static void emit_finished(struct session *d)
{
	struct mfd_stats st;
	json_object *ev = session_ev(d, "finished");

	mfd_session_stats(d->s, &st);
	add_stats(ev, &st);
	add_int(ev, "total_bytes", (int64_t)d->total_bytes);
	emit(d->c, ev, false);
}

/* Runs one op on a sending session; answers it when it succeeded. */
static int run_op(struct session *d, struct op *op, unsigned *round)
{
	json_object *ev;
	uint64_t queued = 0;
	int r = 0;

	switch (op->kind) {
	case OP_DIRTY:
		for (unsigned i = 0; !r && i < op->n; i++) {
			uint64_t q = 0;

			r = mfd_send_dirty(d->s, op->bitmaps[i].region,
					   op->bitmaps[i].map, &q);
			queued += q;
		}
		break;
	case OP_SYNC:
		r = mfd_send_sync(d->s);
		if (!r)
			emit_round(d, (*round)++, false);
		break;
	case OP_FINISH:
		r = mfd_send_finish(d->s);
		if (!r) {
			emit_round(d, (*round)++, true);
			emit_finished(d);
		}
		break;
	}
	if (r)
		return r;
	ev = ok_ev(d->id);
	if (op->kind == OP_DIRTY)
		add_int(ev, "queued", (int64_t)queued);
	emit_ok(d->c, op->cmd, op->tag, ev);
	return 0;
}

/* With d->c->lock held. why: the "cancelled" event's message; NULL for
 * the client's own cancel. Once only: the first reason stays. */
static void cancel_session(struct session *d, const char *why)
{
	if (d->cancelled)
		return;
	d->cancelled = true;
	d->cancel_why = why;
	/* the peer is told why: "the sender failed: the daemon is
	 * stopping" */
	mfd_session_cancel_reason(d->s, why ? why
					   : "cancelled by the client");
	pthread_cond_signal(&d->cond);
}

static bool is_cancelled(struct session *d)
{
	bool b;

	pthread_mutex_lock(&d->c->lock);
	b = d->cancelled;
	pthread_mutex_unlock(&d->c->lock);
	return b;
}

static void *session_main(void *arg)
{
	struct session *d = arg;
	struct client *c = d->c;
	struct op *op = NULL, *left;
	unsigned round = 0;
	bool cancelled;
	int r;

	r = is_cancelled(d) ? -ECANCELED : mfd_session_start(d->s);
	if (!r) {
		json_object *ev = session_ev(d, "started");

		add_str(ev, "uri", mfd_session_uri(d->s));
		pthread_mutex_lock(&c->lock);
		d->started = true;
		d->next_progress = now_seconds() + d->progress_ms / 1000.0;
		pthread_mutex_unlock(&c->lock);
		emit(c, ev, false);
	}
	if (d->role == MFD_ROLE_RECV) {
		if (!r)
			r = mfd_recv_wait(d->s);
		if (!r)
			emit_finished(d);
	} else {
		for (unsigned i = 0; !r && d->full && i < d->nregs; i++)
			r = mfd_send_region(d->s, (int)i);
		while (!r) {
			bool last;

			op = next_op(d);
			if (!op) {
				r = -ECANCELED;
				break;
			}
			r = run_op(d, op, &round);
			if (r)
				break;
			last = op->kind == OP_FINISH;
			op_free(op);
			op = NULL;
			if (last)
				break;
		}
	}

	/* out of the client's list first: nobody can queue, cancel or read
	 * its statistics any more, and its id is never given again */
	pthread_mutex_lock(&c->lock);
	for (struct session **p = &c->sessions; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	cancelled = d->cancelled;
	left = d->ops;
	d->ops = NULL;
	d->tail = &d->ops;
	pthread_mutex_unlock(&c->lock);

	if (r) {
		char msg[700];
		json_object *ev;

		if (cancelled) {
			ev = session_ev(d, "cancelled");
			add_str(ev, "message",
				d->cancel_why ? d->cancel_why
					      : "cancelled by the client");
			snprintf(msg, sizeof(msg), "session %u was cancelled",
				 d->id);
		} else {
			ev = session_ev(d, "error");
			add_str(ev, "message", error_of(d, r));
			snprintf(msg, sizeof(msg), "session %u failed: %s",
				 d->id, error_of(d, r));
		}
		emit(c, ev, false);
		if (op)
			emit_error(c, op->cmd, op->tag, d->id, msg);
		while (left) {
			struct op *o = left;

			left = o->next;
			emit_error(c, o->cmd, o->tag, d->id, msg);
			op_free(o);
		}
	}
	op_free(op);
	session_free(d);

	pthread_mutex_lock(&c->lock);
	c->nsessions--;
	pthread_cond_broadcast(&c->ended);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* The session `id` of this connection, with c->lock held; NULL when it
 * has none of that id (another connection's are not its). */
static struct session *find_session(struct client *c, json_object *cmd,
				    char *err, size_t len)
{
	int64_t id = 0;

	if (!json_object_object_get_ex(cmd, "session", NULL)) {
		snprintf(err, len, "missing field 'session' (an integer, "
			 "the id that the 'ok' answer to send or recv gave)");
		return NULL;
	}
	if (get_int(cmd, "session", 1, UINT32_MAX, &id, err, len))
		return NULL;
	for (struct session *d = c->sessions; d; d = d->next)
		if (d->id == id)
			return d;
	snprintf(err, len,
		 "no session %lld on this connection (a session is known "
		 "only to the connection that started it, until it ends)",
		 (long long)id);
	return NULL;
}

/* ---- commands ---- */

struct msg {
	const char *cmd;
	json_object *tag;
	json_object *obj;
	int *fds;
	unsigned nfds;
	char err[700];
};

static const char *const send_fields[] = {
	"uri", "regions", "channels", "method", "level", "page_size",
	"pages_per_packet", "zero_page_detection", "zero_copy", "timeout_ms",
	"max_bandwidth", "secret", "checksum", "verify", "full",
	"progress_ms", "tls", "tls_cert", "tls_key", "tls_ca", "tls_hostname",
	"min_channels", NULL
};
static const char *const recv_fields[] = {
	"uri", "regions", "page_size", "timeout_ms", "secret", "prefault",
	"accept_max_channels", "accept_methods", "accept_max_page_size",
	"require_checksum", "require_verify", "progress_ms", "tls",
	"tls_cert", "tls_key", "tls_ca", NULL
};

static int parse_methods(json_object *o, unsigned *mask, char *err,
			 size_t len)
{
	json_object *v;
	size_t n;

	if (!json_object_object_get_ex(o, "accept_methods", &v))
		return 0;
	if (!json_object_is_type(v, json_type_array) ||
	    !(n = json_object_array_length(v)))
		return field_error(err, len, "accept_methods", v,
				   "a non-empty array of method names "
				   "(\"none\", \"zlib\", \"zstd\")");
	*mask = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		enum mfd_method m;

		if (!cstr(e) || mfd_method_parse(cstr(e), &m)) {
			snprintf(err, len,
				 "field 'accept_methods': element %zu is %s; "
				 "expected a method built in: \"none\", "
				 "\"zlib\" or \"zstd\"",
				 i, json_object_to_json_string(e));
			return -EINVAL;
		}
		*mask |= 1u << m;
	}
	return 0;
}

/* The schemes a client may name: addresses, not descriptors. */
static const char *const addressed_schemes[] = { "tcp:", "unix:", "rdma:",
						 NULL };

static bool starts_with_any(const char *s, const char *const *prefixes)
{
	for (; *prefixes; prefixes++)
		if (!strncmp(s, *prefixes, strlen(*prefixes)))
			return true;
	return false;
}

/* send and recv: the configuration, checked by the library itself. */
static int parse_config(struct msg *m, enum mfd_role role,
			struct mfd_config *cfg, uint8_t *secret,
			unsigned *progress_ms, bool *full)
{
	json_object *o = m->obj;
	const char *str = NULL;
	int64_t v;
	size_t slen = 0;
	char *e = m->err;
	size_t el = sizeof(m->err);
	bool fd_named;

	mfd_config_init(cfg);
	if (check_fields(o, m->cmd,
			 role == MFD_ROLE_SEND ? send_fields : recv_fields, e,
			 el) ||
	    get_str(o, "uri", true, &cfg->uri, e, el) ||
	    get_uint(o, "page_size", 512, 65536, &cfg->page_size, e, el) ||
	    get_uint(o, "timeout_ms", 0, UINT32_MAX, &cfg->timeout_ms, e,
		     el) ||
	    get_uint(o, "progress_ms", 0, 3600000, progress_ms, e, el) ||
	    get_str(o, "secret", false, &str, e, el))
		return -EINVAL;
	/* fd:N would be the daemon's own descriptor N: another connection's
	 * channel socket, say. Only what a client can name by address, and
	 * said so here: the library's sentence would offer fd: too. */
	fd_named = !strncmp(cfg->uri, "fd:", 3) || strstr(cfg->uri, ",fd:");
	if (fd_named || !starts_with_any(cfg->uri, addressed_schemes)) {
		snprintf(e, el,
			 "field 'uri' is \"%.200s\"; expected tcp:HOST:PORT, "
			 "unix:PATH or rdma:HOST:PORT%s",
			 cfg->uri,
			 fd_named ? " (fd: would name the daemon's own "
				    "descriptors)"
				  : "");
		return -EINVAL;
	}
	if (str && parse_hex_secret(str, secret, &slen, e, el))
		return -EINVAL;
	if (str) {
		cfg->secret = secret;
		cfg->secret_len = slen;
	}
	/* TLS: the library checks the combination and reads the files
	 * (the daemon's, as the client's uid) */
	if (get_bool(o, "tls", &cfg->tls, e, el) ||
	    get_str(o, "tls_cert", false, &cfg->tls_cert, e, el) ||
	    get_str(o, "tls_key", false, &cfg->tls_key, e, el) ||
	    get_str(o, "tls_ca", false, &cfg->tls_ca, e, el) ||
	    get_str(o, "tls_hostname", false, &cfg->tls_hostname, e, el))
		return -EINVAL;
	if (role == MFD_ROLE_RECV)
		return get_bool(o, "prefault", &cfg->prefault, e, el) ||
			       get_uint(o, "accept_max_channels", 1,
					MFD_MAX_CHANNELS,
					&cfg->accept_max_channels, e, el) ||
			       parse_methods(o, &cfg->accept_methods, e, el) ||
			       get_uint(o, "accept_max_page_size", 512, 65536,
					&cfg->accept_max_page_size, e, el) ||
			       get_bool(o, "require_checksum",
					&cfg->require_checksum, e, el) ||
			       get_bool(o, "require_verify",
					&cfg->require_verify, e, el)
		       ? -EINVAL
		       : 0;
	str = NULL;
	v = 0;
	if (get_uint(o, "channels", 1, MFD_MAX_CHANNELS, &cfg->channels, e,
		     el) ||
	    get_uint(o, "min_channels", 0, MFD_MAX_CHANNELS,
		     &cfg->min_channels, e, el) ||
	    get_str(o, "method", false, &str, e, el) ||
	    get_int(o, "level", -7, 19, &v, e, el) ||
	    get_uint(o, "pages_per_packet", 1, 1024, &cfg->pages_per_packet,
		     e, el) ||
	    get_bool(o, "zero_page_detection", &cfg->zero_page_detection, e,
		     el) ||
	    get_bool(o, "zero_copy", &cfg->zero_copy, e, el) ||
	    get_bool(o, "checksum", &cfg->checksum, e, el) ||
	    get_bool(o, "verify", &cfg->verify, e, el) ||
	    get_bool(o, "full", full, e, el))
		return -EINVAL;
	cfg->level = (int)v;
	v = 0;
	if (get_int(o, "max_bandwidth", 0, INT64_MAX, &v, e, el))
		return -EINVAL;
	/* as multifd send --max-bandwidth: under a page per second, a
	 * packet of a few pages would take minutes */
	if (v && v < (int64_t)cfg->page_size) {
		snprintf(e, el,
			 "field 'max_bandwidth' is %lld; expected 0 (no "
			 "limit) or at least %u (bytes per second: one page "
			 "per second)",
			 (long long)v, cfg->page_size);
		return -EINVAL;
	}
	cfg->max_bandwidth = (uint64_t)v;
	if (str) {
		int r = mfd_method_parse(str, &cfg->method);

		if (r) {
			snprintf(e, el,
				 "field 'method' is \"%s\"; expected %s", str,
				 r == -ENOTSUP ? "a method built into this "
						 "daemon (that one is not)"
					       : "\"none\", \"zlib\" or "
						 "\"zstd\"");
			return -EINVAL;
		}
	}
	return 0;
}

/* send / recv: a new session of this connection, running on its own
 * thread once this returns 0. secret: room for the command's. */
static int start_session(struct client *c, struct msg *m, enum mfd_role role,
			 uint8_t *secret)
{
	struct mfd_config cfg;
	struct session *d;
	json_object *regions;
	pthread_attr_t attr;
	pthread_t t;
	unsigned progress_ms = DEFAULT_PROGRESS_MS, n;
	bool full = true;
	char err[300];
	int r;

	if (parse_config(m, role, &cfg, secret, &progress_ms, &full))
		return -EINVAL;
	if (get_fd_array(m->obj, "regions",
			 "an array of {\"name\": NAME}, one per descriptor "
			 "attached, in order",
			 "an array of 1 to 253 objects {\"name\": NAME}",
			 &regions, &n, m->err, sizeof(m->err)))
		return -EINVAL;
	if (n != m->nfds) {
		snprintf(m->err, sizeof(m->err),
			 "the message carries %u file descriptor%s for %u "
			 "region%s; expected one descriptor per region, in "
			 "the order of 'regions'",
			 m->nfds, m->nfds == 1 ? "" : "s", n, n == 1 ? "" : "s");
		return -EINVAL;
	}
	pthread_mutex_lock(&c->lock);
	r = c->nsessions >= MAX_SESSIONS;
	pthread_mutex_unlock(&c->lock);
	if (r) {
		snprintf(m->err, sizeof(m->err),
			 "this connection has %d sessions running; expected "
			 "at most %d at once",
			 MAX_SESSIONS, MAX_SESSIONS);
		return -EBUSY;
	}

	d = calloc(1, sizeof(*d));
	if (!d || !(d->regs = calloc(n, sizeof(*d->regs)))) {
		free(d);
		snprintf(m->err, sizeof(m->err), "out of memory");
		return -ENOMEM;
	}
	pthread_cond_init(&d->cond, NULL);
	d->c = c;
	d->role = role;
	d->full = full;
	d->progress_ms = progress_ms;
	d->page_size = cfg.page_size;
	d->tail = &d->ops;
	for (unsigned i = 0; i < n; i++)
		d->regs[i].fd = -1;
	d->nregs = n;
	r = mfd_session_new(&cfg, role, &d->s, err, sizeof(err));
	if (r) {
		snprintf(m->err, sizeof(m->err), "%s", err);
		goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		json_object *reg = json_object_array_get_idx(regions, i);
		struct region *rg = &d->regs[i];
		const char *name = NULL;
		char what[300];
		static const char *const known[] = { "name", NULL };

		if (!json_object_is_type(reg, json_type_object)) {
			snprintf(m->err, sizeof(m->err),
				 "field 'regions': element %u is %s; expected "
				 "an object {\"name\": NAME}",
				 i, json_object_to_json_string(reg));
			r = -EINVAL;
			goto fail;
		}
		r = get_str(reg, "name", true, &name, what, sizeof(what));
		if (!r)
			r = check_fields(reg, "regions", known, what,
					 sizeof(what));
		if (r) {
			snprintf(m->err, sizeof(m->err), "region %u: %s", i,
				 what);
			goto fail;
		}
		if (!name[0] || strlen(name) > MFD_MAX_REGION_NAME) {
			snprintf(m->err, sizeof(m->err),
				 "region %u: name of %zu bytes; expected 1 to "
				 "%d printable ASCII characters",
				 i, strlen(name), MFD_MAX_REGION_NAME);
			r = -EINVAL;
			goto fail;
		}
		for (const char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 ||
			    (unsigned char)*q > 0x7e) {
				snprintf(m->err, sizeof(m->err),
					 "region %u: byte %d of its name is "
					 "0x%02x; expected printable ASCII "
					 "(0x20..0x7e)",
					 i, (int)(q - name), (unsigned char)*q);
				r = -EINVAL;
				goto fail;
			}
		rg->fd = m->fds[i];
		m->fds[i] = -1; /* the session's now */
		rg->name = strdup(name);
		if (!rg->name) {
			snprintf(m->err, sizeof(m->err), "out of memory");
			r = -ENOMEM;
			goto fail;
		}
		snprintf(what, sizeof(what), "region '%s'", name);
		/* the whole file is the region */
		r = check_fd(rg->fd, i, what, role == MFD_ROLE_RECV, &rg->len,
			     m->err, sizeof(m->err));
		if (!r && (!rg->len || rg->len % cfg.page_size)) {
			snprintf(m->err, sizeof(m->err),
				 "%s: the file of descriptor %u has %llu "
				 "bytes; expected a non-zero multiple of %u",
				 what, i, (unsigned long long)rg->len,
				 cfg.page_size);
			r = -EINVAL;
		}
		/* two mappings of one file are two addresses of the same
		 * pages: a receiver would take one region's pages into the
		 * other's */
		for (unsigned k = 0; !r && role == MFD_ROLE_RECV && k < i; k++)
			if (same_fd_file(d->regs[k].fd, rg->fd)) {
				snprintf(m->err, sizeof(m->err),
					 "%s: descriptor %u is the file of "
					 "region '%s' (descriptor %u) too; a "
					 "receiver's regions need files of "
					 "their own",
					 what, i, d->regs[k].name, k);
				r = -EINVAL;
			}
		if (!r)
			r = map_fd(rg->fd, i, what, role == MFD_ROLE_RECV,
				   rg->len, &rg->mem, m->err, sizeof(m->err));
		if (r)
			goto fail;
		r = mfd_session_add_region(d->s, name, rg->mem, rg->len, false);
		if (r < 0) {
			snprintf(m->err, sizeof(m->err), "region '%s': %s",
				 name,
				 r == -EEXIST ? "named twice; expected each "
						"name once"
					      : error_of(d, r));
			goto fail;
		}
		d->total_bytes += rg->len;
	}

	pthread_mutex_lock(&c->lock);
	/* checked under c->lock, which cancel_all() holds after setting it */
	if (__atomic_load_n(&g.stopping, __ATOMIC_SEQ_CST)) {
		pthread_mutex_unlock(&c->lock);
		snprintf(m->err, sizeof(m->err),
			 "the daemon is stopping; no new session");
		r = -ESHUTDOWN;
		goto fail;
	}
	d->id = ++c->next_id;
	d->next = c->sessions;
	c->sessions = d;
	c->nsessions++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &attr, session_main, d);
	pthread_attr_destroy(&attr);
	if (r) {
		c->sessions = d->next;
		c->nsessions--;
		pthread_mutex_unlock(&c->lock);
		snprintf(m->err, sizeof(m->err),
			 "cannot start the session's thread: %s", strerror(-r));
		goto fail;
	}
	/* the answer goes before any event of the session: under c->lock,
	 * which its thread takes before it says "started" */
	emit_ok(c, m->cmd, m->tag, ok_ev(d->id));
	pthread_mutex_unlock(&c->lock);
	return 0;
fail:
	session_free(d);
	return r ? r : -EINVAL;
}

static int cmd_start(struct client *c, struct msg *m, enum mfd_role role)
{
	uint8_t secret[4096];
	int r = start_session(c, m, role, secret);

	/* the session has its own copy (mfd_session_new) */
	explicit_bzero(secret, sizeof(secret));
	return r;
}

/* send-dirty, sync, finish: queued for the session's thread */
static int cmd_queue(struct client *c, struct msg *m, enum op_kind kind)
{
	static const char *const dirty_fields[] = { "session", "regions",
						    NULL };
	static const char *const plain_fields[] = { "session", NULL };
	json_object *regions = NULL;
	struct session *d;
	struct op *op;
	unsigned n = 0;
	int r;

	if (check_fields(m->obj, m->cmd,
			 kind == OP_DIRTY ? dirty_fields : plain_fields,
			 m->err, sizeof(m->err)))
		return -EINVAL;
	if (kind == OP_DIRTY &&
	    get_fd_array(m->obj, "regions",
			 "an array of region names, one per bitmap "
			 "descriptor attached",
			 "an array of 1 to 253 region names", &regions, &n,
			 m->err, sizeof(m->err)))
		return -EINVAL;
	if (m->nfds != n) {
		snprintf(m->err, sizeof(m->err),
			 "the message carries %u file descriptor%s; '%s' "
			 "expects %u%s",
			 m->nfds, m->nfds == 1 ? "" : "s", m->cmd, n,
			 kind == OP_DIRTY ? " (one bitmap per name in "
					    "'regions', in order)"
					  : "");
		return -EINVAL;
	}
	op = calloc(1, sizeof(*op) + n * sizeof(op->bitmaps[0]));
	if (!op) {
		snprintf(m->err, sizeof(m->err), "out of memory");
		return -ENOMEM;
	}
	op->kind = kind;
	op->cmd = kind == OP_DIRTY ? "send-dirty"
		  : kind == OP_SYNC ? "sync"
				    : "finish";
	/* a copy of its own: the operation outlives the message in
	 * another thread, and json-c counts references without atomics
	 * unless it was built for threads */
	op->tag = !m->tag || m->tag == null_tag ? m->tag
						 : tag_copy(m->tag);

	pthread_mutex_lock(&c->lock);
	d = find_session(c, m->obj, m->err, sizeof(m->err));
	r = d ? 0 : -ENOENT;
	if (d && d->role != MFD_ROLE_SEND) {
		snprintf(m->err, sizeof(m->err),
			 "session %u receives; '%s' applies to a sending "
			 "session only",
			 d->id, m->cmd);
		r = -EINVAL;
	} else if (d && d->finishing) {
		snprintf(m->err, sizeof(m->err),
			 "session %u is finishing; nothing but 'cancel' may "
			 "follow 'finish'",
			 d->id);
		r = -EINVAL;
	}
	for (unsigned i = 0; !r && i < n; i++) {
		json_object *e = json_object_array_get_idx(regions, i);
		const char *name = cstr(e);
		uint64_t pages, need, len;
		void *map;
		char what[300];
		int k = -1;

		for (unsigned j = 0; name && j < d->nregs; j++)
			if (!strcmp(d->regs[j].name, name))
				k = (int)j;
		if (k < 0) {
			snprintf(m->err, sizeof(m->err),
				 "field 'regions': element %u is %s; expected "
				 "the name of a region of session %u",
				 i, json_object_to_json_string(e), d->id);
			r = -EINVAL;
			break;
		}
		for (unsigned j = 0; j < i; j++)
			if (op->bitmaps[j].region == k) {
				snprintf(m->err, sizeof(m->err),
					 "field 'regions': region '%s' named "
					 "twice; expected one bitmap per "
					 "region",
					 name);
				r = -EINVAL;
			}
		if (r)
			break;
		pages = d->regs[k].len / d->page_size;
		need = (pages + 63) / 64 * 8;
		snprintf(what, sizeof(what), "bitmap of region '%s'", name);
		/* any length the words fit in; only they are mapped */
		r = check_fd(m->fds[i], i, what, true, &len, m->err,
			     sizeof(m->err));
		if (!r && len < need) {
			snprintf(m->err, sizeof(m->err),
				 "%s: the file of descriptor %u has %llu "
				 "bytes; expected at least %llu (one bit per "
				 "page of %u bytes, in 64-bit words)",
				 what, i, (unsigned long long)len,
				 (unsigned long long)need, d->page_size);
			r = -EINVAL;
		}
		if (!r)
			r = map_fd(m->fds[i], i, what, true, need, &map, m->err,
				   sizeof(m->err));
		if (r)
			break;
		op->bitmaps[i].region = k;
		op->bitmaps[i].map = map;
		op->bitmaps[i].len = need;
		op->n = i + 1;
	}
	if (!r) {
		op->next = NULL;
		*d->tail = op;
		d->tail = &op->next;
		d->finishing |= kind == OP_FINISH;
		pthread_cond_signal(&d->cond);
		op = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	op_free(op);
	return r;
}

static int cmd_cancel(struct client *c, struct msg *m)
{
	static const char *const fields[] = { "session", NULL };
	struct session *d;

	if (check_fields(m->obj, m->cmd, fields, m->err, sizeof(m->err)))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	d = find_session(c, m->obj, m->err, sizeof(m->err));
	if (!d) {
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	cancel_session(d, NULL);
	/* before the session's "cancelled": its thread needs c->lock to
	 * leave the list first */
	emit_ok(c, m->cmd, m->tag, ok_ev(d->id));
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int cmd_list(struct client *c, struct msg *m)
{
	static const char *const fields[] = { NULL };
	json_object *ev, *arr;

	if (check_fields(m->obj, m->cmd, fields, m->err, sizeof(m->err)))
		return -EINVAL;
	ev = ev_new("ok");
	arr = json_object_new_array();
	pthread_mutex_lock(&c->lock);
	for (struct session *d = c->sessions; d; d = d->next) {
		json_object *e = json_object_new_object();

		add_int(e, "session", d->id);
		add_str(e, "role", d->role == MFD_ROLE_SEND ? "send" : "recv");
		add_str(e, "state", d->cancelled   ? "cancelled"
				    : d->finishing ? "finishing"
				    : d->started   ? "running"
						   : "starting");
		json_object_array_add(arr, e);
	}
	pthread_mutex_unlock(&c->lock);
	json_object_object_add(ev, "sessions", arr);
	emit_ok(c, m->cmd, m->tag, ev);
	return 0;
}

static const char commands[] =
	"'send', 'recv', 'send-dirty', 'sync', 'finish', 'cancel' or 'list'";

static void handle_message(struct client *c, const char *buf, size_t len,
			   int *fds, unsigned nfds)
{
	struct msg m = { .fds = fds, .nfds = nfds };
	json_tokener *tok = json_tokener_new();
	enum json_tokener_error jerr;
	json_object *v;
	int r = -EINVAL;

	/* JSON as RFC 8259 has it: no 01, no trailing comma */
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT
#ifdef JSON_TOKENER_ALLOW_TRAILING_CHARS
				       /* said below, in our words */
				       | JSON_TOKENER_ALLOW_TRAILING_CHARS
#endif
#ifdef JSON_TOKENER_VALIDATE_UTF8
				       /* what is echoed (a tag) must stay
					* UTF-8, as events are */
				       | JSON_TOKENER_VALIDATE_UTF8
#endif
		);
	m.obj = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
	jerr = tok ? json_tokener_get_error(tok) : json_tokener_error_depth;
	if (m.obj && jerr == json_tokener_success) {
		size_t end = json_tokener_get_parse_end(tok);

		while (end < len && strchr(" \t\r\n", buf[end]))
			end++;
		if (end < len) {
			snprintf(m.err, sizeof(m.err),
				 "bad JSON: text after the object at byte "
				 "%zu; expected one JSON object per message",
				 end);
			goto out;
		}
	} else {
		size_t blanks = 0;

		json_object_put(m.obj);
		m.obj = NULL;
		while (blanks < len && strchr(" \t\r\n", buf[blanks]) &&
		       buf[blanks])
			blanks++;
		if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
			snprintf(m.err, sizeof(m.err),
				 "bad JSON: the message begins with a "
				 "byte-order mark (EF BB BF), which JSON "
				 "between programs must not have (RFC 8259 "
				 "8.1); expected one JSON object per message");
		else if (jerr == json_tokener_continue && blanks == len)
			snprintf(m.err, sizeof(m.err),
				 "an empty message (%zu byte%s of blanks); "
				 "expected one JSON object per message",
				 len, len == 1 ? "" : "s");
		else if (jerr == json_tokener_continue)
			snprintf(m.err, sizeof(m.err),
				 "bad JSON: the message (%zu bytes) ends "
				 "inside a value; expected one whole JSON "
				 "object per message",
				 len);
		else
			snprintf(m.err, sizeof(m.err),
				 "bad JSON at byte %zu: %s; expected one JSON "
				 "object per message",
				 tok ? json_tokener_get_parse_end(tok) : 0,
				 json_tokener_error_desc(jerr));
		goto out;
	}
	if (!json_object_is_type(m.obj, json_type_object)) {
		snprintf(m.err, sizeof(m.err),
			 "the message is a JSON %s; expected an object "
			 "{\"cmd\": ...}",
			 json_type_to_name(json_object_get_type(m.obj)));
		goto out;
	}
	if (check_json_text(buf, len, m.err, sizeof(m.err)) ||
	    check_numbers(m.obj, false, 0, m.err, sizeof(m.err)))
		goto out;
	if (json_object_object_get_ex(m.obj, "tag", &v)) {
		size_t n = v ? strlen(json_object_to_json_string_ext(
				       v, JSON_C_TO_STRING_PLAIN))
			     : 4;

		/* its answers carry it: they must stay within a message */
		if (n > MAX_TAG) {
			snprintf(m.err, sizeof(m.err),
				 "'tag' is %zu bytes as JSON; expected at most "
				 "%d",
				 n, MAX_TAG);
			goto out;
		}
		m.tag = v ? v : null_tag;
	}
	if (!json_object_object_get_ex(m.obj, "cmd", &v)) {
		snprintf(m.err, sizeof(m.err),
			 "missing field 'cmd' (a string: %s)", commands);
		goto out;
	}
	m.cmd = cstr(v);
	if (!m.cmd) {
		field_error(m.err, sizeof(m.err), "cmd", v, commands);
		goto out;
	}
	if (!strcmp(m.cmd, "send"))
		r = cmd_start(c, &m, MFD_ROLE_SEND);
	else if (!strcmp(m.cmd, "recv"))
		r = cmd_start(c, &m, MFD_ROLE_RECV);
	else if (!strcmp(m.cmd, "send-dirty"))
		r = cmd_queue(c, &m, OP_DIRTY);
	else if (!strcmp(m.cmd, "sync"))
		r = cmd_queue(c, &m, OP_SYNC);
	else if (!strcmp(m.cmd, "finish"))
		r = cmd_queue(c, &m, OP_FINISH);
	else if (strcmp(m.cmd, "cancel") && strcmp(m.cmd, "list"))
		snprintf(m.err, sizeof(m.err),
			 "unknown command '%.100s': expected %s%s", m.cmd,
			 commands,
			 !strcmp(m.cmd, "postcopy")
				 ? " (postcopy is not supported yet)"
				 : "");
	else if (m.nfds)
		snprintf(m.err, sizeof(m.err),
			 "the message carries %u file descriptor%s; '%s' "
			 "expects none",
			 m.nfds, m.nfds == 1 ? "" : "s", m.cmd);
	else if (!strcmp(m.cmd, "cancel"))
		r = cmd_cancel(c, &m);
	else
		r = cmd_list(c, &m);
out:
	if (r) {
		char cmd[104] = "";

		if (m.cmd)
			snprintf(cmd, sizeof(cmd), "%.100s", m.cmd);
		emit_error(c, m.cmd ? cmd : NULL, m.tag, 0, m.err);
	}
	json_object_put(m.obj);
	if (tok)
		json_tokener_free(tok);
}

/* ---- connections ---- */

/* Progress events due now; returns the poll timeout until the next. */
static int progress_tick(struct client *c)
{
	double now = now_seconds(), next = 0;
	int timeout = -1;

	pthread_mutex_lock(&c->lock);
	for (struct session *d = c->sessions; d; d = d->next) {
		struct mfd_stats st;
		json_object *ev;

		if (!d->progress_ms || !d->started || d->cancelled)
			continue;
		if (d->next_progress <= now) {
			d->next_progress = now + d->progress_ms / 1000.0;
			mfd_session_stats(d->s, &st);
			ev = session_ev(d, "progress");
			add_stats(ev, &st);
			add_int(ev, "total_bytes", (int64_t)d->total_bytes);
			emit(c, ev, true);
		}
		if (!next || d->next_progress < next)
			next = d->next_progress;
	}
	/* a session that starts later must not wait for the next command */
	if (c->sessions)
		timeout = 200;
	pthread_mutex_unlock(&c->lock);
	if (next && (int)((next - now) * 1000) + 1 < timeout)
		timeout = (int)((next - now) * 1000) + 1;
	return timeout;
}

/* Cancel every session of c (with c->lock held). */
static void cancel_all(struct client *c, const char *why)
{
	for (struct session *d = c->sessions; d; d = d->next)
		cancel_session(d, why);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char *buf = malloc(MAX_MSG);
	union {
		char b[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	int fds[MAX_FDS];

	while (buf) {
		struct iovec iov = { .iov_base = buf, .iov_len = MAX_MSG };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.b,
				     .msg_controllen = sizeof(ctl.b) };
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		unsigned nfds = 0;
		ssize_t n;
		int timeout = progress_tick(c);

		if (poll(&p, 1, timeout) <= 0)
			continue;
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL;
		     cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && nfds < MAX_FDS; i++)
				memcpy(&fds[nfds++],
				       CMSG_DATA(cm) + i * sizeof(int),
				       sizeof(int));
		}
		/* an empty message is how a SEQPACKET peer's end reads */
		if (n <= 0)
			break;
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
			char err[200];

			snprintf(err, sizeof(err),
				 mh.msg_flags & MSG_TRUNC
					 ? "the message is over %d bytes; "
					   "expected at most %d"
					 : "the message carries more than %d "
					   "file descriptors; expected at "
					   "most %d",
				 mh.msg_flags & MSG_TRUNC ? MAX_MSG : MAX_FDS,
				 mh.msg_flags & MSG_TRUNC ? MAX_MSG : MAX_FDS);
			emit_error(c, NULL, NULL, 0, err);
		} else {
			handle_message(c, buf, (size_t)n, fds, nfds);
		}
		/* what the command did not take is closed: no fd is kept
		 * for a refused command */
		for (unsigned i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(buf);

	pthread_mutex_lock(&c->send_lock);
	c->dead = true;
	pthread_mutex_unlock(&c->send_lock);
	pthread_mutex_lock(&c->lock);
	cancel_all(c, "the client closed its connection");
	while (c->nsessions)
		pthread_cond_wait(&c->ended, &c->lock);
	pthread_mutex_unlock(&c->lock);
	logf_("client pid %ld (uid %lu) gone", (long)c->pid,
	      (unsigned long)c->uid);
	/* out of the list before its fd and locks go: the main thread
	 * reaches them through it */
	pthread_mutex_lock(&g.lock);
	for (struct client **p = &g.clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	close(c->fd);
	g.nclients--;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_cond_destroy(&c->ended);
	free(c);
	return NULL;
}

/* Refuse a connection with one error event, then close it. */
static void refuse(int fd, const char *msg)
{
	json_object *ev = ev_new("error");
	const char *txt;

	add_str(ev, "message", msg);
	txt = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN);
	if (send(fd, txt, strlen(txt), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0; /* it is gone already: nothing to tell */
	json_object_put(ev);
	close(fd);
}

static bool uid_allowed(uid_t uid)
{
	if (g.any_user || uid == geteuid())
		return true;
	for (unsigned i = 0; i < g.nallow; i++)
		if (g.allow[i] == uid)
			return true;
	return false;
}

static void accept_client(int lfd)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
	struct client *c;
	pthread_attr_t attr;
	pthread_t t;
	json_object *ev;
	char msg[300];
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		refuse(fd, "cannot learn the client's user id (SO_PEERCRED)");
		return;
	}
	if (!uid_allowed(cred.uid)) {
		snprintf(msg, sizeof(msg),
			 "uid %lu is not allowed to use this daemon; expected "
			 "uid %lu%s (the daemon's --allow-uid or --any-user "
			 "would allow it)",
			 (unsigned long)cred.uid, (unsigned long)geteuid(),
			 g.nallow ? " or an --allow-uid one" : "");
		logf_("refused client pid %ld: %s", (long)cred.pid, msg);
		refuse(fd, msg);
		return;
	}
	pthread_mutex_lock(&g.lock);
	if (g.nclients >= MAX_CLIENTS) {
		pthread_mutex_unlock(&g.lock);
		snprintf(msg, sizeof(msg),
			 "the daemon serves %d connections already; expected "
			 "at most %d at once",
			 MAX_CLIENTS, MAX_CLIENTS);
		refuse(fd, msg);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		pthread_mutex_unlock(&g.lock);
		refuse(fd, "out of memory");
		return;
	}
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_cond_init(&c->ended, NULL);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* hello first, before its thread can send anything */
	ev = ev_new("hello");
	add_int(ev, "protocol", PROTOCOL_VERSION);
	add_str(ev, "version", mfd_version());
	add_int(ev, "pid", (int64_t)getpid());
	add_int(ev, "max_message", MAX_MSG);
	add_int(ev, "max_fds", MAX_FDS);
	emit(c, ev, false);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, client_main, c)) {
		pthread_mutex_unlock(&g.lock);
		pthread_attr_destroy(&attr);
		pthread_mutex_destroy(&c->lock);
		pthread_mutex_destroy(&c->send_lock);
		pthread_cond_destroy(&c->ended);
		free(c);
		refuse(fd, "cannot start a thread for this connection");
		return;
	}
	pthread_attr_destroy(&attr);
	c->next = g.clients;
	g.clients = c;
	g.nclients++;
	pthread_mutex_unlock(&g.lock);
	logf_("client pid %ld (uid %lu) connected", (long)cred.pid,
	      (unsigned long)cred.uid);
}

/* ---- the control socket ---- */

/*
 * Bind PATH: a socket file nobody answers on is stale and replaced; one a
 * live process answers on is not, whatever its kind; anything else at
 * PATH is left alone.
 */
static int listen_control(const char *path, struct stat *bound)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, probe, e;

	if (strlen(path) >= sizeof(a.sun_path)) {
		die_msg("daemon: socket path '%s' has %zu bytes; expected at "
			"most %zu",
			path, strlen(path), sizeof(a.sun_path) - 1);
		return -1;
	}
	strcpy(a.sun_path, path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			die_msg("daemon: '%s' exists and is not a socket; "
				"expected a free path or a stale socket file",
				path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe < 0) {
			die_msg("daemon: socket: %s", strerror(errno));
			return -1;
		}
		e = connect(probe, (struct sockaddr *)&a, sizeof(a)) ? errno
								     : 0;
		close(probe);
		if (!e || e == EPROTOTYPE) {
			die_msg("daemon: %s is in use by a live %s; stop it "
				"first or choose another path",
				path, e ? "socket of another kind" : "daemon");
			return -1;
		}
		if (e != ECONNREFUSED && e != EAGAIN) {
			die_msg("daemon: cannot probe %s: %s", path,
				strerror(e));
			return -1;
		}
		if (e == EAGAIN) { /* alive, its backlog full */
			die_msg("daemon: %s is in use by a live daemon", path);
			return -1;
		}
		logf_("replacing the stale socket %s", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		die_msg("daemon: socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    chmod(path, g.nallow || g.any_user ? 0666 : 0600) ||
	    listen(fd, 16) || stat(path, bound)) {
		die_msg("daemon: cannot listen on unix:%s: %s", path,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

enum { OPT_ALLOW_UID = 256, OPT_ANY_USER };

static const struct option daemon_opts[] = {
	{ "control", required_argument, NULL, 'C' },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
	{ "any-user", no_argument, NULL, OPT_ANY_USER },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int cmd_daemon(int argc, char **argv)
{
	const char *control = NULL, *path;
	struct stat bound, now;
	sigset_t set;
	int c, lfd, sfd, sig = 0, li = -1;
	unsigned uid;

	cli_option("daemon", NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, ":C:qhV", daemon_opts, &li)) !=
	       -1) {
		if (li >= 0 &&
		    long_option_abbreviated(argv, daemon_opts[li].name)) {
			die_msg("daemon: unknown option '%s' (did you mean "
				"'--%s'? try 'multifd daemon --help')",
				argv[optind - (optarg && optarg ==
						       argv[optind - 1] ? 2 : 1)],
				daemon_opts[li].name);
			return 2;
		}
		li = -1;
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case OPT_ALLOW_UID:
			cli_option("daemon", "--allow-uid");
			if (parse_uint(optarg, NULL, 0, UINT32_MAX - 1,
				       &uid))
				return 2;
			if (g.nallow == MAX_ALLOW) {
				die_msg("daemon: too many --allow-uid at '%s': "
					"expected at most %d",
					optarg, MAX_ALLOW);
				return 2;
			}
			g.allow[g.nallow++] = (uid_t)uid;
			break;
		case OPT_ANY_USER:
			g.any_user = true;
			break;
		case 'q':
			g.quiet = true;
			break;
		case 'h':
			fputs(daemon_usage, stdout);
			return 0;
		case 'V':
			printf("multifd %s (libmultifd %s)\n", PACKAGE_VERSION,
			       mfd_version());
			return 0;
		default:
			bad_option("daemon", c, argv, daemon_opts);
			return 2;
		}
	}
	if (optind < argc) {
		die_msg("daemon: unexpected argument '%s': expected options "
			"only (try 'multifd daemon --help')",
			argv[optind]);
		return 2;
	}
	if (!control || strncmp(control, "unix:", 5) || !control[5]) {
		die_msg("daemon: %s%s%s; expected --control unix:PATH",
			control ? "bad --control '" : "missing --control",
			control ? control : "", control ? "'" : "");
		return 2;
	}
	path = control + 5;
	null_tag = json_object_new_object();
	if (!null_tag) {
		die_msg("daemon: out of memory");
		return 1;
	}

	/* before any thread: every thread inherits the blocked signals,
	 * which only the signalfd below takes */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) ||
	    (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		die_msg("daemon: cannot take signals: %s", strerror(errno));
		return 1;
	}
	lfd = listen_control(path, &bound);
	if (lfd < 0) {
		close(sfd);
		return 1;
	}
	logf_("listening on unix:%s", path);
	fflush(stderr);

	while (!sig) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				sig = (int)si.ssi_signo;
		}
		if (!sig && (p[0].revents & POLLIN))
			accept_client(lfd);
	}
	logf_("%s: cancelling every session and stopping", strsignal(sig));
	close(lfd);
	__atomic_store_n(&g.stopping, true, __ATOMIC_SEQ_CST);
	/* the sessions say "cancelled" to their clients, then the clients'
	 * connections end, and each connection thread frees its client */
	pthread_mutex_lock(&g.lock);
	for (struct client *cl = g.clients; cl; cl = cl->next) {
		pthread_mutex_lock(&cl->lock);
		cancel_all(cl, "the daemon is stopping");
		pthread_mutex_unlock(&cl->lock);
	}
	for (struct client *cl = g.clients; cl; cl = cl->next) {
		pthread_mutex_lock(&cl->lock);
		while (cl->nsessions)
			pthread_cond_wait(&cl->ended, &cl->lock);
		pthread_mutex_unlock(&cl->lock);
		shutdown(cl->fd, SHUT_RDWR);
	}
	while (g.nclients)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	/* only while it is still ours: another daemon may have replaced it
	 * after it was removed by hand */
	if (!stat(path, &now) && now.st_ino == bound.st_ino &&
	    now.st_dev == bound.st_dev)
		unlink(path);
	close(sfd);
	json_object_put(null_tag); /* every client is gone */
	return 0;
}
