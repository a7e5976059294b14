/* SPDX-License-Identifier: MIT */
/*
 * session.c - what senders and receivers share: configuration checks,
 * regions, errors, statistics, channel buffers and teardown.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "escape.h"
#include "failover.h"
#include "guard.h"
#include "integrity.h"
#include "session.h"

MFD_EXTERN const char *mfd_version(void)
{
	return PACKAGE_VERSION;
}

static void config_defaults(struct mfd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
	cfg->channels = 2;
	cfg->method = MFD_METHOD_NONE;
	cfg->page_size = 4096;
	cfg->pages_per_packet = 0; /* 128, fewer for pages over 32 KiB */
	cfg->zero_page_detection = true;
	cfg->timeout_ms = 30000;
	cfg->max_blob_bytes = MFD_DEFAULT_MAX_BLOB_BYTES;
}

/* The defaults, as far as the caller's struct reaches. */
MFD_EXTERN void mfd_config_init_sized(struct mfd_config *cfg, size_t size)
{
	struct mfd_config d;

	if (size < sizeof(cfg->size))
		return;
	config_defaults(&d);
	if (size > sizeof(d)) /* a newer header: its new fields are 0 */
		memset((uint8_t *)cfg + sizeof(d), 0, size - sizeof(d));
	memcpy(cfg, &d, size < sizeof(d) ? size : sizeof(d));
	cfg->size = size;
}

/*
 * The caller's config as this library's struct: fields the caller's
 * header did not have take their defaults; fields this library does not
 * know must be zero (unset), else the caller asks for what it cannot get.
 */
static int config_import(const struct mfd_config *in, struct mfd_config *out,
			 char *err, size_t errlen)
{
	config_defaults(out);
	if (in->size < offsetof(struct mfd_config, uri) + sizeof(in->uri)) {
		snprintf(err, errlen,
			 "struct mfd_config of %zu bytes: start it with "
			 "mfd_config_init()",
			 in->size);
		return -EINVAL;
	}
	for (size_t i = sizeof(*out); i < in->size; i++)
		if (((const uint8_t *)in)[i]) {
			snprintf(err, errlen,
				 "struct mfd_config sets fields (byte %zu of "
				 "%zu) this libmultifd does not know: it is "
				 "older than the program",
				 i, in->size);
			return -ENOTSUP;
		}
	memcpy(out, in, in->size < sizeof(*out) ? in->size : sizeof(*out));
	out->size = sizeof(*out);
	return 0;
}

static int check_config(const struct mfd_config *c, enum mfd_role role,
			char *err, size_t errlen)
{
	int lmin, lmax, ldef;

	if (role != MFD_ROLE_SEND && role != MFD_ROLE_RECV) {
		snprintf(err, errlen, "unknown role %d", role);
		return -EINVAL;
	}
	if (role == MFD_ROLE_SEND &&
	    (c->channels < 1 || c->channels > MFD_MAX_CHANNELS)) {
		snprintf(err, errlen, "channel count %u outside 1..%u",
			 c->channels, MFD_MAX_CHANNELS);
		return -EINVAL;
	}
	if (!mfd_method_name(c->method)) {
		snprintf(err, errlen, "unknown method %d", c->method);
		return -EINVAL;
	}
	if (!mfd__method_get(c->method)) {
		snprintf(err, errlen, "method %s is not built in",
			 mfd_method_name(c->method));
		return -ENOTSUP;
	}
	mfd__method_levels(c->method, &lmin, &lmax, &ldef);
	/* 0 is every method's default, none's only level: a range of
	 * "0..0" would read as if none took levels */
	if (c->level && lmin == lmax) {
		snprintf(err, errlen,
			 "level %d for method %s, which takes no level: "
			 "expected 0 (the default)",
			 c->level, mfd_method_name(c->method));
		return -EINVAL;
	}
	if (c->level && (c->level < lmin || c->level > lmax)) {
		snprintf(err, errlen,
			 "level %d out of range for method %s: expected "
			 "%d..%d, or 0 for its default (%d)",
			 c->level, mfd_method_name(c->method), lmin, lmax,
			 ldef);
		return -EINVAL;
	}
	if (c->page_size < 512 || c->page_size > 65536 ||
	    (c->page_size & (c->page_size - 1))) {
		snprintf(err, errlen,
			 "page size %u is not a power of two in 512..65536",
			 c->page_size);
		return -EINVAL;
	}
	if (c->max_blob_bytes > MFD_MAX_BLOB_BYTES) {
		snprintf(err, errlen,
			 "max_blob_bytes %llu over the most a receiver may "
			 "hold (%llu, 1 TiB)",
			 (unsigned long long)c->max_blob_bytes,
			 (unsigned long long)MFD_MAX_BLOB_BYTES);
		return -EINVAL;
	}
	if (c->pages_per_packet > 1024) {
		snprintf(err, errlen, "pages per packet %u outside 1..1024",
			 c->pages_per_packet);
		return -EINVAL;
	}
	if ((uint64_t)c->pages_per_packet * c->page_size > (4u << 20)) {
		snprintf(err, errlen,
			 "pages per packet %u of %u bytes make packets over "
			 "4 MiB: expected at most %u",
			 c->pages_per_packet, c->page_size,
			 (4u << 20) / c->page_size);
		return -EINVAL;
	}
	return 0;
}

static bool wants_tls(const struct mfd_config *c)
{
	return c->tls || c->tls_cert || c->tls_key || c->tls_ca ||
	       c->tls_hostname;
}

/*
 * Put the tls layer on top of the transport when the configuration asks
 * for TLS: each endpoint's tp becomes the layer, which reaches the
 * transport below through the endpoint's URI. Every file is loaded now, so that a missing
 * or bad one fails mfd_session_new() with a sentence.
 */
/* The name a sender checks the receiver's certificate against: a DNS
 * name or an IP address, never empty (no name would check nothing). */
static int check_tls_name(const char *name, enum mfd_role role, char *err,
			  size_t errlen)
{
	size_t n = name ? strlen(name) : 0;

	if (role != MFD_ROLE_SEND)
		return 0;
	if (!n || n > 253 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-:_") != n) {
		char shown[80];

		snprintf(err, errlen,
			 "TLS: the receiver's name '%s' (tls_hostname, "
			 "--tls-hostname, or the URI's host) is no DNS name or "
			 "IP address; expected 1..253 letters, digits, '.', "
			 "'-', ':' or '_'",
			 mfd__escape(shown, sizeof(shown), name ? name : "", n));
		return -EINVAL;
	}
	return 0;
}

static bool any_scheme(const struct mfd_session *s, enum mfd_scheme k)
{
	for (unsigned i = 0; i < s->nep; i++)
		if (s->ep[i].uri.scheme == k)
			return true;
	return false;
}

static int setup_tls(struct mfd_session *s, char *err, size_t errlen)
{
	struct mfd_config *c = &s->cfg;
	const char **f[4] = { &c->tls_cert, &c->tls_key, &c->tls_ca,
			      &c->tls_hostname };
	struct mfd_tls_params p = { 0 };
	bool x509 = c->tls_cert || c->tls_key || c->tls_ca;
	int r;

	if (!wants_tls(c))
		return 0;
	if (any_scheme(s, MFD_SCHEME_RDMA)) {
		snprintf(err, errlen,
			 "TLS cannot protect rdma: channels: their pages "
			 "travel as one-sided RDMA WRITEs that no TLS record "
			 "covers; use tcp: or unix: for an encrypted session");
		return -ENOTSUP;
	}
	if (c->tls && x509) {
		snprintf(err, errlen,
			 "TLS with a pre-shared key (tls) and with "
			 "certificates (tls_cert, tls_key, tls_ca) exclude "
			 "each other: choose one");
		return -EINVAL;
	}
	if (c->tls && !c->secret) {
		snprintf(err, errlen,
			 "TLS with a pre-shared key (tls) needs the secret "
			 "it is derived from (secret, --secret-file)");
		return -EINVAL;
	}
	if (c->tls_hostname && (!x509 || s->role != MFD_ROLE_SEND)) {
		snprintf(err, errlen,
			 "tls_hostname (--tls-hostname) names what the "
			 "receiver's certificate must carry: it goes with a "
			 "sender's certificates (tls_cert, tls_key, tls_ca), "
			 "not %s",
			 s->role != MFD_ROLE_SEND ? "with a receiver"
			 : c->tls		  ? "with a pre-shared key (tls)"
						  : "alone");
		return -EINVAL;
	}
	if (!c->tls && (!c->tls_cert || !c->tls_key || !c->tls_ca)) {
		snprintf(err, errlen,
			 "TLS with certificates needs all of tls_cert, "
			 "tls_key and tls_ca (--tls-cert, --tls-key, "
			 "--tls-ca)%s",
			 x509 ? "" : "; or tls with a secret");
		return -EINVAL;
	}
	if (!c->tls && s->role == MFD_ROLE_SEND && !c->tls_hostname &&
	    (any_scheme(s, MFD_SCHEME_UNIX) || any_scheme(s, MFD_SCHEME_FD) ||
	     s->nep > 1)) {
		snprintf(err, errlen,
			 "TLS over %s needs tls_hostname (--tls-hostname): "
			 "the name the receiver's certificate must carry, "
			 "which the URI does not give",
			 s->nep > 1 ? "several endpoints"
			 : any_scheme(s, MFD_SCHEME_UNIX) ? "unix:"
							  : "fd:");
		return -EINVAL;
	}
	/* OpenSSL would block opening a FIFO, or read a device forever */
	for (int i = 0; i < 3; i++) {
		static const char *const name[3] = { "tls_cert (--tls-cert)",
						     "tls_key (--tls-key)",
						     "tls_ca (--tls-ca)" };
		struct stat st;

		if (!*f[i] || stat(*f[i], &st))
			continue; /* OpenSSL says why it cannot be read */
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen,
				 "%s '%s' is %s: expected a regular PEM file",
				 name[i], *f[i],
				 S_ISDIR(st.st_mode)    ? "a directory"
				 : S_ISFIFO(st.st_mode) ? "a FIFO"
				 : S_ISSOCK(st.st_mode) ? "a socket"
							: "a device");
			return -EINVAL;
		}
	}
#ifdef HAVE_LIBSSL
	for (int i = 0; i < 4; i++) {
		if (!*f[i])
			continue;
		s->tls_files[i] = strdup(*f[i]);
		if (!s->tls_files[i]) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*f[i] = s->tls_files[i];
	}
	if (c->tls) {
		p.secret = s->secret;
		p.secret_len = c->secret_len;
	} else {
		p.cert = c->tls_cert;
		p.key = c->tls_key;
		p.ca = c->tls_ca;
		p.hostname = c->tls_hostname ? c->tls_hostname
					     : s->ep[0].uri.host;
		r = check_tls_name(p.hostname, s->role, err, errlen);
		if (r)
			return r;
	}
	r = mfd__tls_ctx_new(&p, s->role == MFD_ROLE_RECV, &s->tls, err,
			     errlen);
	if (r)
		return r;
	for (unsigned k = 0; k < s->nep; k++) {
		s->ep[k].uri.lower = s->ep[k].tp;
		s->ep[k].uri.tls = s->tls;
		s->ep[k].tp = &mfd__tls_ops;
	}
	return 0;
#else
	(void)f;
	(void)p;
	(void)r;
	snprintf(err, errlen,
		 "this build has no TLS (configure found no libssl)");
	return -ENOTSUP;
#endif
}

static void free_tls(struct mfd_session *s)
{
#ifdef HAVE_LIBSSL
	mfd__tls_ctx_free(s->tls);
#endif
	for (int i = 0; i < 4; i++)
		free(s->tls_files[i]);
}

/*
 * The URI's endpoints, each with its transport. Channel i goes to
 * endpoint i % n; tcp:, unix: and rdma: endpoints may be mixed (what a
 * transport does differently goes by each channel's connection), fd: is
 * alone (its descriptors are the channels).
 */
static int parse_endpoints(struct mfd_session *s, const char *uri, char *err,
			   size_t errlen)
{
	struct mfd_uri u[MFD_MAX_ENDPOINTS];
	int r = mfd__uri_parse_list(uri, u, MFD_MAX_ENDPOINTS, &s->nep, err,
				    errlen);

	if (r)
		return r;
	for (unsigned k = 0; k < s->nep; k++) {
		struct mfd_endpoint *e = &s->ep[k];

		if (s->nep > 1 && u[k].scheme == MFD_SCHEME_FD) {
			snprintf(err, errlen,
				 "'%s': fd: takes no other endpoint (its "
				 "descriptors are the channels); expected "
				 "tcp:, unix: and rdma: endpoints",
				 uri);
			return -EINVAL;
		}
		/* a receiver cannot listen twice where it listens, and a
		 * sender's second copy would be no second link */
		for (unsigned j = 0; j < k; j++)
			if (!strcmp(u[j].text, u[k].text) &&
			    (s->role == MFD_ROLE_SEND ||
			     strcmp(u[k].port, "0"))) {
				snprintf(err, errlen,
					 "'%s' lists '%s' twice", uri,
					 u[k].text);
				return -EINVAL;
			}

		e->uri = u[k];
		e->uri.session_state = &e->tp_state;
		e->tp = mfd__transport_get(u[k].scheme);
		if (!e->tp) {
			snprintf(err, errlen,
				 "'%s': this build has no RDMA support "
				 "(configure --enable-rdma with rdma-core "
				 "installed)",
				 uri);
			return -ENOTSUP;
		}
	}
	return 0;
}

/* Failover sends again what a lost channel carried: not over one-sided
 * writes (a lost QP's last WRITEs could land after the copies sent
 * again), nor with postcopy (its urgent channel has no second). */
static int failover_ok(const struct mfd_session *s, char *err, size_t errlen)
{
	const struct mfd_config *c = &s->cfg;

	if (c->min_channels > c->channels) {
		snprintf(err, errlen,
			 "min_channels (--min-channels) %u is more than the "
			 "%u channels: expected 1..%u (or 0: no failover)",
			 c->min_channels, c->channels, c->channels);
		return -EINVAL;
	}
	if (any_scheme(s, MFD_SCHEME_RDMA) || c->postcopy) {
		snprintf(err, errlen,
			 "failover (min_channels) is for tcp:, unix: and fd: "
			 "sessions without postcopy, not %s",
			 c->postcopy ? "with postcopy" : "over rdma:");
		return -ENOTSUP;
	}
	return 0;
}

MFD_EXTERN int mfd_session_new(const struct mfd_config *caller_cfg,
			       enum mfd_role role, struct mfd_session **out,
			       char *errbuf, size_t errlen)
{
	struct mfd_config own, *cfg = &own;
	char scratch[1];
	struct mfd_session *s;
	int r;

	*out = NULL;
	if (!errbuf) {
		errbuf = scratch;
		errlen = sizeof(scratch);
	}
	r = config_import(caller_cfg, &own, errbuf, errlen);
	if (!r)
		r = check_config(cfg, role, errbuf, errlen);
	if (r)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->role = role;
	s->cfg = *cfg;
	r = parse_endpoints(s, cfg->uri, errbuf, errlen);
	if (r)
		goto fail;
	/* RDMA never copies a page (one-sided writes), and its header must
	 * follow the writes on the queue pair: nothing to switch on */
	if (s->ep[0].uri.scheme == MFD_SCHEME_RDMA)
		s->cfg.zero_copy = false;
	else if (cfg->zero_copy && role == MFD_ROLE_SEND &&
		 (any_scheme(s, MFD_SCHEME_UNIX) ||
		  cfg->method != MFD_METHOD_NONE)) {
		snprintf(errbuf, errlen,
			 "zero-copy needs method none over tcp: or rdma: "
			 "(got method %s, %s)",
			 mfd_method_name(cfg->method), cfg->uri);
		r = -EINVAL;
		goto fail;
	}
	if (role == MFD_ROLE_SEND && s->ep[0].uri.scheme == MFD_SCHEME_FD &&
	    s->ep[0].uri.nfds != cfg->channels) {
		snprintf(errbuf, errlen,
			 "'%s' hands in %u descriptor%s for %u channel%s: "
			 "expected one per channel",
			 cfg->uri, s->ep[0].uri.nfds,
			 s->ep[0].uri.nfds == 1 ? "" : "s", cfg->channels,
			 cfg->channels == 1 ? "" : "s");
		r = -EINVAL;
		goto fail;
	}
	if (!cfg->secret && cfg->secret_len) {
		/* a lost pointer must not mean no authentication */
		snprintf(errbuf, errlen,
			 "secret_len is %zu but secret is NULL: expected both, "
			 "or neither for no authentication",
			 cfg->secret_len);
		r = -EINVAL;
		goto fail;
	}
	if (cfg->secret && cfg->secret_len < 16) {
		snprintf(errbuf, errlen,
			 "a secret of %zu bytes is too short: at least 16",
			 cfg->secret_len);
		r = -EINVAL;
		goto fail;
	}
	if (cfg->postcopy && role == MFD_ROLE_SEND) {
		long sys = sysconf(_SC_PAGESIZE);

		s->features |= MFD_FEAT_POSTCOPY;
		/* userfaultfd places whole pages of the system's */
		if (sys > 0 && s->cfg.page_size < (uint32_t)sys) {
			snprintf(errbuf, errlen,
				 "postcopy needs pages of at least the "
				 "system's %ld bytes; page_size is %u",
				 sys, s->cfg.page_size);
			r = -EINVAL;
			goto fail;
		}
		r = mfd__pc_transport_ok(s, errbuf, errlen);
		if (r)
			goto fail;
	}
	if (cfg->min_channels && role == MFD_ROLE_SEND) {
		r = failover_ok(s, errbuf, errlen);
		if (r)
			goto fail;
		s->features |= MFD_FEAT_FAILOVER;
	}
	if (cfg->secret)
		s->features |= MFD_FEAT_AUTH;
	if (role == MFD_ROLE_SEND && cfg->checksum)
		s->features |= MFD_FEAT_CHECKSUM;
	if (role == MFD_ROLE_SEND && cfg->verify)
		s->features |= MFD_FEAT_VERIFY;
	if (mfd__integrity_missing(s->features)) {
		snprintf(errbuf, errlen, "this build has no %s",
			 mfd__integrity_missing(s->features));
		r = -ENOTSUP;
		goto fail;
	}
	if (cfg->secret) {
		s->secret = malloc(cfg->secret_len);
		if (!s->secret) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(s->secret, cfg->secret, cfg->secret_len);
		s->cfg.secret = s->secret;
	}
	r = setup_tls(s, errbuf, errlen);
	/* last, once nothing else can refuse: the caller may close its fd:
	 * descriptors from here */
	if (!r && s->ep[0].uri.scheme == MFD_SCHEME_FD)
		r = mfd__uri_fds_own(&s->ep[0].uri, errbuf, errlen);
	if (r)
		goto fail;
	snprintf(s->uri, sizeof(s->uri), "%s", cfg->uri);
	s->cfg.uri = s->uri;
	if (!s->cfg.level) {
		int lmin, lmax;

		mfd__method_levels(cfg->method, &lmin, &lmax, &s->cfg.level);
	}
	s->method = mfd__method_get(cfg->method);
	if (!s->cfg.pages_per_packet) /* 512 KiB packets of 4 KiB pages */
		s->cfg.pages_per_packet = s->cfg.page_size <= 32768
						  ? 128 : (4u << 20) / s->cfg.page_size;
	s->batch_region = -1;
	mfd__ratelimit_init(&s->ratelimit, cfg->max_bandwidth);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->log_lock, NULL);
	mfd__cond_init(&s->idle_cond);
	mfd__cond_init(&s->barrier_cond);
	mfd__cond_init(&s->pc_cond);
	mfd__rounds_init(&s->round_log);
	*out = s;
	return 0;
fail:
	free_tls(s);
	if (s->secret) {
		explicit_bzero(s->secret, cfg->secret_len);
		free(s->secret);
	}
	mfd__uri_fds_close(&s->ep[0].uri);
	free(s);
	return r;
}

int mfd__region_overlap(const struct mfd_session *s, const void *mem,
			uint64_t length)
{
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].mem &&
		    mfd__mem_overlap(mem, length, s->regions[i].mem,
				     s->regions[i].length))
			return i;
	return -1;
}

MFD_EXTERN int mfd_session_add_region(struct mfd_session *s, const char *name,
				      void *mem, uint64_t length, bool zeroed)
{
	struct mfd_region *r;
	size_t n = name ? strlen(name) : 0;

	/* a receiver may expect a region it creates when it is announced */
	bool expected = s->role == MFD_ROLE_RECV && !mem && !length;

	if (s->started)
		return mfd__bad_call(s, -EBUSY, "a region added once the "
				     "session started");
	if (!mfd__region_name_ok(name, n))
		return mfd__bad_call(s, -EINVAL, "a region name of %zu bytes: "
				     "expected 1 to %d printable ASCII "
				     "characters", n, MFD_MAX_REGION_NAME);
	if (!expected && (!mem || length == 0 ||
			  (length & (s->cfg.page_size - 1)) ||
			  ((uintptr_t)mem &
			   (mfd__mem_align(s->cfg.page_size) - 1))))
		return mfd__bad_call(s, -EINVAL,
				     "region '%s': %smemory of %llu bytes: "
				     "expected a non-zero multiple of the page "
				     "size %u, aligned to %zu bytes",
				     name, mem ? "" : "no ",
				     (unsigned long long)length,
				     s->cfg.page_size,
				     (size_t)mfd__mem_align(s->cfg.page_size));
	if (expected && !s->cfg.region_cb)
		return mfd__bad_call(s, -EINVAL, "region '%s' expected without "
				     "memory, and no region_cb to make it",
				     name);
	if (s->nregions == MFD_MAX_REGIONS)
		return mfd__bad_call(s, -ENOSPC, "region '%s': a session holds "
				     "at most %d regions", name,
				     MFD_MAX_REGIONS);
	for (int i = 0; i < s->nregions; i++)
		if (!strcmp(s->regions[i].name, name))
			return mfd__bad_call(s, -EEXIST,
					     "region '%s' added twice", name);
	if (s->role == MFD_ROLE_RECV && mem) {
		int other = mfd__region_overlap(s, mem, length);

		if (other >= 0)
			return mfd__bad_call(s, -EINVAL,
					     "region '%s' overlaps region '%s': "
					     "a receiver's regions must not "
					     "share memory (one would receive "
					     "into the other)",
					     name, s->regions[other].name);
	}
	r = &s->regions[s->nregions];
	memcpy(r->name, name, n + 1);
	r->mem = mem;
	r->length = length;
	r->zeroed = zeroed;
	r->file_fd = -1;
	return s->nregions++;
}

MFD_EXTERN int mfd_session_region_file(struct mfd_session *s, int region,
				       int fd, uint64_t offset)
{
	struct mfd_region *rg;
	struct stat st;
	int dup_fd;

	if (s->started)
		return mfd__bad_call(s, -EBUSY, "a region's file is given "
				     "before mfd_session_start()");
	if (s->role != MFD_ROLE_SEND)
		return mfd__bad_call(s, -EINVAL, "a region's file is the "
				     "sender's");
	if (region < 0 || region >= s->nregions)
		return mfd__bad_call(s, -EINVAL, "region %d: the session has "
				     "%d", region, s->nregions);
	if (fd < 0 || (offset & (s->cfg.page_size - 1)))
		return mfd__bad_call(s, -EINVAL, "descriptor %d at offset "
				     "%llu: expected a descriptor and an "
				     "offset that is a multiple of the page "
				     "size %u",
				     fd, (unsigned long long)offset,
				     s->cfg.page_size);
	rg = &s->regions[region];
	if (fstat(fd, &st))
		return mfd__bad_call(s, -errno, "descriptor %d: %s", fd,
				     strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mfd__bad_call(s, -EINVAL, "descriptor %d is no regular "
				     "file", fd);
	if ((uint64_t)st.st_size < offset ||
	    (uint64_t)st.st_size - offset < rg->length)
		return mfd__bad_call(s, -ERANGE, "descriptor %d: %lld bytes "
				     "hold no %llu from offset %llu (region "
				     "'%s')",
				     fd, (long long)st.st_size,
				     (unsigned long long)rg->length,
				     (unsigned long long)offset, rg->name);
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return mfd__bad_call(s, -errno, "descriptor %d: dup: %s", fd,
				     strerror(errno));
	if (rg->file_fd >= 0)
		close(rg->file_fd);
	rg->file_fd = dup_fd;
	rg->file_off = offset;
	return 0;
}

static int start(struct mfd_session *s);

MFD_EXTERN int mfd_session_start(struct mfd_session *s)
{
	int r;

	if (s->started)
		return mfd__bad_call(s, -EBUSY, "the session started already");
	r = start(s);
	/* the session's first failure is the answer: a cancel while
	 * connecting is -ECANCELED, not the broken pipe it caused */
	return r && mfd__session_err(s) ? mfd__session_err(s) : r;
}

static int start(struct mfd_session *s)
{
	struct mfd_listener *l;
	char err[256];
	int r;

	if (mfd__session_err(s)) /* cancelled before it started */
		return mfd__session_err(s);
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_MONOTONIC, &s->t_start);
	pthread_mutex_unlock(&s->lock);
	s->started = true;
	mfd__rounds_begin(&s->round_log, 0, 0);
	r = s->cfg.no_sigbus_handler ? 0 : mfd__guard_install();
	if (r) {
		mfd__session_fail(s, -1, r, "cannot install the SIGBUS handler: %s",
				  strerror(-r));
		return r;
	}
	if (s->role == MFD_ROLE_SEND)
		return mfd__send_start(s);
	s->uri[0] = 0;
	for (unsigned k = 0; k < s->nep; k++) {
		struct mfd_endpoint *e = &s->ep[k];
		size_t n = strlen(s->uri);

		r = e->tp->listen(&e->uri, &l, err, sizeof(err));
		if (r) {
			mfd__session_fail(s, -1, r, "%s", err);
			return r;
		}
		/* mfd_session_cancel() may wake it from another thread */
		pthread_mutex_lock(&s->lock);
		e->listener = l;
		snprintf(e->uri.text, sizeof(e->uri.text), "%s", l->uri);
		pthread_mutex_unlock(&s->lock);
		/* the bound addresses, real ports included, as a list */
		snprintf(s->uri + n, sizeof(s->uri) - n, "%s%s", k ? "," : "",
			 l->uri);
	}
	return 0;
}

MFD_EXTERN unsigned mfd_session_endpoints(const struct mfd_session *s)
{
	return s->nep;
}

MFD_EXTERN const char *mfd_session_endpoint(const struct mfd_session *s,
					    unsigned k)
{
	return k < s->nep ? s->ep[k].uri.text : NULL;
}

MFD_EXTERN int mfd_channel_endpoint(const struct mfd_session *s,
				    unsigned channel)
{
	const struct mfd_conn *c = NULL;

	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	if (s->ch && channel < s->nchannels)
		c = s->ch[channel].conn;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return c ? (int)c->endpoint : -EINVAL;
}

MFD_EXTERN const char *mfd_session_uri(const struct mfd_session *s)
{
	return s->uri;
}

void mfd__session_completed(struct mfd_session *s)
{
	s->completed = true;
	s->errmsg[0] = 0; /* a refused call's sentence is no failure */
}

int mfd__bad_call(struct mfd_session *s, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!s->failed) {
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	} else {
		err = s->err; /* a failed session answers with its failure */
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

void mfd__session_fail(struct mfd_session *s, int channel, int err,
		       const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	pthread_mutex_lock(&s->lock);
	/* a cancel (mfd_session_cancel_reason()) once the receiver's END
	 * passed whole and its commit began is too late: the session ends
	 * as the commit does; once it completed, there is nothing to stop */
	if (s->failed || ((s->cancel_too_late || s->completed) &&
			  channel == MFD_CANCEL_CALL)) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	/* atomic: the rate limiter reads it without the lock */
	__atomic_store_n(&s->failed, true, __ATOMIC_RELAXED);
	s->err = err < 0 ? err : -EIO;
	if (channel >= 0)
		n = snprintf(s->errmsg, sizeof(s->errmsg), "channel %d: ",
			     channel);
	va_start(ap, fmt);
	vsnprintf(s->errmsg + n, sizeof(s->errmsg) - n, fmt, ap);
	va_end(ap);
	for (unsigned i = 0; s->ch && i < s->nchannels; i++) {
		struct mfd_channel *ch = &s->ch[i];

		pthread_cond_broadcast(&ch->job_cond);
		/* Channel threads still tell the peer why: the receiver's all
		 * (they wait in reads); on the sender, the failing channel
		 * (its own thread, which is not blocked, or none yet) and
		 * every other one once its packet is whole. One blocked
		 * writing to a peer that reads no more is shut down by
		 * mfd__send_stop(). */
		if (s->role == MFD_ROLE_RECV)
			mfd__tp_shutdown_read(ch->conn);
		else if ((int)i != channel)
			mfd__tp_stop_sends(ch->conn);
	}
	if (s->pc)
		mfd__pc_on_fail(s);
	pthread_cond_broadcast(&s->idle_cond);
	pthread_cond_broadcast(&s->barrier_cond);
	pthread_cond_broadcast(&s->pc_cond);
	for (unsigned k = 0; k < s->nep; k++)
		mfd__tp_listener_wake(s->ep[k].listener);
	pthread_mutex_unlock(&s->lock);
}

unsigned mfd__keepalive_ms(unsigned ours, unsigned theirs)
{
	unsigned t = !ours ? theirs : !theirs ? ours
				      : ours < theirs ? ours : theirs;

	return t == 0 ? 0 : t / 3 < 100 ? 100 : t / 3;
}

void mfd__cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

int mfd__timed_wait(pthread_cond_t *c, pthread_mutex_t *m, unsigned ms)
{
	struct timespec ts;

	if (!ms)
		return pthread_cond_wait(c, m);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(c, m, &ts);
}

int mfd__session_err(struct mfd_session *s)
{
	int e;

	pthread_mutex_lock(&s->lock);
	e = s->failed ? s->err : 0;
	pthread_mutex_unlock(&s->lock);
	return e;
}

MFD_EXTERN void mfd_session_cancel(struct mfd_session *s)
{
	mfd__session_fail(s, MFD_CANCEL_CALL, -ECANCELED, "cancelled");
}

MFD_EXTERN void mfd_session_cancel_reason(struct mfd_session *s,
					  const char *reason)
{
	if (!reason || !reason[0])
		reason = "cancelled";
	/* the peer is told it as any failure's reason: escaped there */
	mfd__session_fail(s, MFD_CANCEL_CALL, -ECANCELED, "%s", reason);
}

MFD_EXTERN void mfd_session_set_error(struct mfd_session *s, const char *fmt,
				      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->cb_err, sizeof(s->cb_err), fmt, ap);
	va_end(ap);
}

void mfd__deadline_start(struct mfd_deadline *d, unsigned limit_ms,
			 const char *what)
{
	d->limit_ms = limit_ms;
	d->what = what;
	clock_gettime(CLOCK_MONOTONIC, &d->end);
	d->end.tv_sec += limit_ms / 1000;
	d->end.tv_nsec += (long)(limit_ms % 1000) * 1000000;
	if (d->end.tv_nsec >= 1000000000) {
		d->end.tv_sec++;
		d->end.tv_nsec -= 1000000000;
	}
}

unsigned mfd__deadline_left(const struct mfd_deadline *d)
{
	struct timespec now;
	int64_t ns;

	if (!d->limit_ms)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(d->end.tv_sec - now.tv_sec) * 1000000000 +
	     (d->end.tv_nsec - now.tv_nsec);
	return ns <= 0 ? 0 : (unsigned)((ns + 999999) / 1000000);
}

int mfd__deadline_recv(const struct mfd_deadline *d, struct mfd_conn *c,
		       void *buf, size_t len)
{
	unsigned left = mfd__deadline_left(d);
	int r = d->limit_ms && !left ? -ETIMEDOUT
				     : mfd__tp_set_timeout(c, left);

	if (!r)
		r = mfd__tp_recv_buf(c, buf, len);
	if (r == -ETIMEDOUT)
		snprintf(c->err, sizeof(c->err),
			 "%s did not complete within %u ms", d->what,
			 d->limit_ms);
	return r;
}

void mfd__fail_fault(struct mfd_session *s, struct mfd_channel *ch,
		     uintptr_t addr, bool write)
{
	char text[300];

	/* a system call that met the fault says EFAULT by itself, without
	 * an address: the packet's first page stands for it */
	if (!addr && ch->pkt.region)
		addr = (uintptr_t)(ch->pkt.region->mem + ch->pkt.offsets[0]);
	mfd__fault_text(s, addr, write, text, sizeof(text));
	mfd__session_fail(s, (int)ch->index, -EFAULT, "%s", text);
}

int mfd__peer_failed(struct mfd_session *s, struct mfd_channel *ch,
		     uint32_t len, const struct mfd_deadline *d, int err)
{
	const char *who = s->role == MFD_ROLE_SEND ? "receiver" : "sender";
	char msg[MFD_FIN_MSG_MAX], text[MFD_FIN_MSG_MAX];
	int r = mfd__deadline_recv(d, ch->conn, msg, len);

	pthread_mutex_lock(&s->lock);
	s->peer_failed = true;
	pthread_mutex_unlock(&s->lock);
	if (r)
		mfd__session_fail(s, (int)ch->index, err,
				  "the %s failed, but its %u-byte reason did "
				  "not arrive: %s",
				  who, len, ch->conn->err);
	else
		mfd__session_fail(s, (int)ch->index, err, "the %s failed: %s",
				  who, mfd__escape(text, sizeof(text), msg, len));
	return err;
}

void mfd__wait_for_reason(struct mfd_session *s)
{
	for (int i = 0; i < 50 && !mfd__session_err(s); i++)
		usleep(10 * 1000);
}

void mfd__tell_peer(struct mfd_session *s, struct mfd_channel *ch,
		    uint8_t type, uint32_t round)
{
	uint8_t buf[MFD_HDR_SIZE + sizeof(s->errmsg)];
	struct mfd_hdr h = { .type = type, .round = round };
	struct iovec iov;

	pthread_mutex_lock(&s->lock);
	if (!s->peer_failed) { /* a peer that failed first knows why */
		h.payload_len = (uint32_t)strlen(s->errmsg);
		memcpy(buf + MFD_HDR_SIZE, s->errmsg, h.payload_len);
	}
	pthread_mutex_unlock(&s->lock);
	if (!h.payload_len)
		return;
	mfd__hdr_encode(&h, buf);
	iov.iov_base = buf;
	iov.iov_len = MFD_HDR_SIZE + h.payload_len;
	/* not behind half a packet, where it would be read as pages */
	if (!mfd__tp_set_timeout(ch->conn, MFD_ABORT_GRACE_MS))
		mfd__tp_send(ch->conn, &iov, 1, MFD_SEND_LAST);
}

void mfd__fault_text(const struct mfd_session *s, uintptr_t addr, bool write,
		     char *buf, size_t len)
{
	const char *how = write ? "written" : "read";

	for (int i = 0; i < s->nregions; i++) {
		const struct mfd_region *rg = &s->regions[i];
		uintptr_t base = (uintptr_t)rg->mem;

		if (addr < base || addr - base >= rg->length)
			continue;
		snprintf(buf, len,
			 "region '%s': the page at offset 0x%llx cannot be %s "
			 "(SIGBUS or EFAULT): the file behind the region "
			 "shrank, or its file system is full",
			 rg->name,
			 (unsigned long long)((addr - base) &
					      ~(uintptr_t)(s->cfg.page_size - 1)),
			 how);
		return;
	}
	snprintf(buf, len,
		 "region memory cannot be %s (SIGBUS or EFAULT at %#llx): "
		 "the file behind a region shrank, or its file system is full",
		 how, (unsigned long long)addr);
}

MFD_EXTERN const char *mfd_session_error(const struct mfd_session *s)
{
	return s->errmsg;
}

int mfd__channels_alloc(struct mfd_session *s, unsigned n)
{
	bool urgent = s->features & MFD_FEAT_POSTCOPY;
	struct mfd_channel *ch = calloc(n + urgent, sizeof(*ch));

	if (!ch)
		return -ENOMEM;
	for (unsigned i = 0; i < n + urgent; i++) {
		ch[i].s = s;
		ch[i].index = i;
		mfd__cond_init(&ch[i].job_cond);
	}
	/* mfd__session_fail() may walk the channels from another thread */
	pthread_mutex_lock(&s->lock);
	s->ch = ch;
	s->nchannels = n;
	s->nlive = n;
	s->urgent = urgent ? &ch[n] : NULL;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int mfd__channel_setup(struct mfd_session *s, struct mfd_channel *ch)
{
	uint32_t ppp = s->cfg.pages_per_packet;
	struct mfd_packet *p = &ch->pkt;
	int r;

	ch->mctx.method = s->cfg.method;
	ch->mctx.level = s->cfg.level;
	ch->mctx.page_size = s->cfg.page_size;
	ch->mctx.pages_per_packet = ppp;
	ch->job_offsets = calloc(ppp, sizeof(uint64_t));
	p->offsets = calloc(ppp, sizeof(uint64_t));
	/* offsets, or a blob's descriptor */
	p->wire = malloc(MFD_HDR_SIZE + (8 * (size_t)ppp > MFD_BLOB_DESC_MAX
						 ? 8 * (size_t)ppp
						 : MFD_BLOB_DESC_MAX));
	/* header, one entry per page at worst, and one spare */
	p->iov = calloc(ppp + 2, sizeof(struct iovec));
	if (!ch->job_offsets || !p->offsets || !p->wire || !p->iov) {
		mfd__session_fail(s, (int)ch->index, -ENOMEM,
				  "setup: out of memory");
		return -ENOMEM;
	}
	if (s->role == MFD_ROLE_SEND)
		r = s->method->send_setup ? s->method->send_setup(&ch->mctx)
					  : 0;
	else
		r = s->method->recv_setup ? s->method->recv_setup(&ch->mctx)
					  : 0;
	if (r)
		mfd__session_fail(s, (int)ch->index, r, "setup: %s",
				  ch->mctx.err[0] ? ch->mctx.err : strerror(-r));
	return r;
}

/* A channel thread names itself for top, perf and gdb (mfd-tx-3,
 * mfd-rx-0) before it does anything: named by its creator, it could have
 * run its whole round first. */
static void *channel_thread(void *arg)
{
	struct mfd_channel *ch = arg;
	char name[16];

	snprintf(name, sizeof(name), "mfd-%s-%u",
		 ch->s->role == MFD_ROLE_SEND ? "tx" : "rx",
		 ch->index % MFD_MAX_CHANNELS);
	pthread_setname_np(pthread_self(), name);
	return ch->main_fn(ch);
}

int mfd__channels_start(struct mfd_session *s, void *(*fn)(void *))
{
	for (unsigned i = 0; i < s->nchannels; i++) {
		int r;

		s->ch[i].main_fn = fn;
		r = pthread_create(&s->ch[i].thread, NULL, channel_thread,
				   &s->ch[i]);
		if (r) {
			mfd__session_fail(s, (int)i, -r, "pthread_create: %s",
					  strerror(r));
			return -r;
		}
		s->ch[i].thread_started = true;
	}
	return 0;
}

void mfd__channel_cleanup(struct mfd_session *s, struct mfd_channel *ch)
{
	/* first: the transport may have registered the method's buffer */
	mfd__tp_close(ch->conn);
	ch->conn = NULL;
	if (s->role == MFD_ROLE_SEND) {
		if (s->method->send_cleanup)
			s->method->send_cleanup(&ch->mctx);
	} else if (s->method->recv_cleanup) {
		s->method->recv_cleanup(&ch->mctx);
	}
	mfd__ledger_free(ch);
	free(ch->job_offsets);
	free(ch->stable);
	free(ch->staging);
	free(ch->blob_buf);
	free(ch->pc_offsets);
	free(ch->pc_buf);
	free(ch->pkt.offsets);
	free(ch->pkt.wire);
	free(ch->pkt.iov);
	pthread_cond_destroy(&ch->job_cond);
}

void mfd__session_limits(const struct mfd_session *s, struct mfd_limits *l)
{
	l->method = (uint8_t)s->cfg.method;
	l->page_size = s->cfg.page_size;
	l->pages_per_packet = s->cfg.pages_per_packet;
	l->region_count = (uint32_t)s->nregions;
	l->features = s->features;
}

/* Region k on channel i: its registration, then, on a sender that does
 * not read the pages (no zero-page detection), its file. Returns 0, 1
 * when the transport needs no registration, or -errno (the session
 * failed). */
static int register_one(struct mfd_session *s, unsigned i, int k,
			bool *by_file)
{
	struct mfd_conn *c = s->ch[i].conn;
	struct mfd_region *rg = &s->regions[k];
	int r = mfd__tp_register_region(c, (unsigned)k, rg->mem, rg->length);
	int none = r == -ENOTSUP;

	if (r == 1) /* its pages go on the stream */
		rg->staged = true;
	else if (r && !none)
		goto fail;
	r = *by_file && !rg->staged
		    ? mfd__tp_register_file(c, rg->mem, rg->length,
					    rg->file_fd, rg->file_off)
		    : -ENOTSUP;
	if (r == -ENOTSUP)
		*by_file = false;
	else if (r)
		goto fail;
	return none;
fail:
	mfd__session_fail(s, (int)i, r, "region '%s': %s", rg->name, c->err);
	return r;
}

/* Every channel, as their transports may differ (endpoints of several
 * kinds); one that needs no registration answers at once. */
static int register_all(struct mfd_session *s)
{
	for (int k = 0; k < s->nregions; k++) {
		struct mfd_region *rg = &s->regions[k];
		bool by_file = s->role == MFD_ROLE_SEND && rg->file_fd >= 0 &&
			       !s->cfg.zero_page_detection;

		for (unsigned i = 0; i < s->nchannels; i++) {
			int r = register_one(s, i, k, &by_file);

			if (r < 0)
				return r;
		}
		rg->by_file = by_file;
	}
	return 0;
}

/* The methods' payload buffers (compressing sessions), before the
 * regions, where the transport takes them. */
static int register_buffers(struct mfd_session *s)
{
	for (unsigned i = 0; i < s->nchannels; i++) {
		struct mfd_channel *ch = &s->ch[i];
		int r = ch->mctx.out ? mfd__tp_register_buffer(ch->conn,
							       ch->mctx.out,
							       ch->mctx.out_len)
				     : -ENOTSUP;

		if (r && r != -ENOTSUP) {
			mfd__session_fail(s, (int)i, r, "%s", ch->conn->err);
			return r;
		}
	}
	return 0;
}

void mfd__session_reg_time(struct mfd_session *s)
{
	uint64_t ns = 0, bytes = 0;

	for (unsigned i = 0; i < s->nchannels; i++) {
		ns += s->ch[i].conn->reg_ns;
		bytes += s->ch[i].conn->reg_bytes;
	}
	pthread_mutex_lock(&s->lock);
	s->reg_ns = ns;
	s->reg_bytes = bytes;
	pthread_mutex_unlock(&s->lock);
}

int mfd__register_regions(struct mfd_session *s)
{
	int r = register_buffers(s);

	if (!r)
		r = register_all(s);

	mfd__session_reg_time(s);
	return r;
}

static double elapsed(const struct mfd_session *s)
{
	struct timespec now, end, begin;

	if (!s->started)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	end = s->t_end;
	begin = s->t_start; /* a receiver's moves to its sender's arrival */
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	if (!end.tv_sec && !end.tv_nsec) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		end = now;
	}
	return (double)(end.tv_sec - begin.tv_sec) +
	       (double)(end.tv_nsec - begin.tv_nsec) / 1e9;
}

/* The counters a channel keeps, summed field by field (a new field of
 * struct mfd_stats that channels count is added here). */
#define CHANNEL_COUNTERS(X)                                                \
	X(bytes) X(payload_bytes) X(packets) X(normal_pages) X(zero_pages) \
	X(raw_packets) X(zerocopy_sends) X(zerocopy_copied)                \
	X(zerocopy_fallbacks) X(rounds) X(cpu_ns) X(inline_packets)       \
	X(blobs) X(blob_bytes) X(postcopy_requests) X(landed_packets)       \
	X(postcopy_demand_pages) X(postcopy_stream_pages) X(channels_lost)

static void stats_read(const struct mfd_stats *src, struct mfd_stats *dst)
{
#define ADD(f) dst->f += __atomic_load_n(&src->f, __ATOMIC_RELAXED);
	CHANNEL_COUNTERS(ADD)
#undef ADD
}

/* How many of the n channels at ch run inside TLS, and with kTLS which
 * way. A channel's connection is set under the lock, its flags before. */
static void tls_read(const struct mfd_session *s, const struct mfd_channel *ch,
		     unsigned n, struct mfd_stats *st)
{
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	for (unsigned i = 0; ch && i < n; i++) {
		const struct mfd_conn *c =
			__atomic_load_n(&ch[i].conn, __ATOMIC_ACQUIRE);
		unsigned f = c ? c->tls_flags : 0;

		st->tls_channels += !!(f & MFD_CONN_TLS);
		st->ktls_send_channels += !!(f & MFD_CONN_KTLS_SEND);
		st->ktls_recv_channels += !!(f & MFD_CONN_KTLS_RECV);
	}
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
}

/* The first size bytes of *st (a caller's older, smaller struct), or all
 * of it and zeros beyond (a newer header's larger one). */
static void stats_out(const struct mfd_stats *st, void *out, size_t size)
{
	if (size > sizeof(*st)) {
		memset((uint8_t *)out + sizeof(*st), 0, size - sizeof(*st));
		size = sizeof(*st);
	}
	memcpy(out, st, size);
}

MFD_EXTERN void mfd_session_stats_sized(const struct mfd_session *s,
					struct mfd_stats *out, size_t size)
{
	struct mfd_stats total, *st = &total;
	struct mfd_postcopy *pc;
	struct mfd_channel *ch;
	unsigned n;

	memset(st, 0, sizeof(*st));
	/* the receiver's channels appear during the handshake */
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	pc = s->pc;
	ch = s->ch;
	n = s->ch ? mfd__nconns(s) : 0;
	st->rejected_connections = s->rejected;
	st->register_seconds = (double)s->reg_ns / 1e9;
	st->register_bytes = s->reg_bytes;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	for (unsigned i = 0; ch && i < n; i++)
		stats_read(&ch[i].st, st);
	tls_read(s, ch, n, st);
	/* a round is the session's, not a channel's */
	if (s->role == MFD_ROLE_SEND)
		st->rounds = __atomic_load_n(&s->round, __ATOMIC_RELAXED);
	else
		st->rounds = __atomic_load_n(&s->rounds, __ATOMIC_RELAXED);
	st->seconds = elapsed(s);
	st->resent_pages = __atomic_load_n(&s->resent_pages, __ATOMIC_RELAXED);
	st->resent_bytes = __atomic_load_n(&s->resent_bytes, __ATOMIC_RELAXED);
	st->resent_packets =
		__atomic_load_n(&s->resent_packets, __ATOMIC_RELAXED);
	if (pc)
		mfd__pc_stats(pc, st);
	stats_out(st, out, size);
}

MFD_EXTERN int mfd_channel_stats_sized(const struct mfd_session *s,
				       unsigned channel, struct mfd_stats *out,
				       size_t size)
{
	struct mfd_stats one, *st = &one;
	struct mfd_channel *ch;
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	ch = s->ch;
	n = s->nchannels;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	if (!ch || channel >= n)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	stats_read(&ch[channel].st, st);
	tls_read(s, &ch[channel], 1, st);
	st->seconds = elapsed(s);
	stats_out(st, out, size);
	return 0;
}

MFD_EXTERN unsigned mfd_session_channels(const struct mfd_session *s)
{
	unsigned n;

	/* the receiver learns it at the handshake, while others may ask */
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	n = s->nchannels;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return n;
}

MFD_EXTERN enum mfd_method mfd_session_method(const struct mfd_session *s)
{
	return s->cfg.method;
}

MFD_EXTERN uint32_t mfd_session_page_size(const struct mfd_session *s)
{
	return s->cfg.page_size;
}

MFD_EXTERN int mfd_session_region_count(const struct mfd_session *s)
{
	return s->nregions;
}

MFD_EXTERN int mfd_session_region_info(const struct mfd_session *s, int region,
				       const char **name, void **mem,
				       uint64_t *length)
{
	if (region < 0 || region >= s->nregions)
		return -EINVAL;
	if (name)
		*name = s->regions[region].name;
	if (mem)
		*mem = s->regions[region].mem;
	if (length)
		*length = s->regions[region].length;
	return 0;
}

MFD_EXTERN void mfd_session_free(struct mfd_session *s)
{
	if (!s)
		return;
	if (s->role == MFD_ROLE_SEND)
		mfd__send_stop(s);
	else
		mfd__recv_stop(s);
	for (unsigned i = 0; s->ch && i < mfd__nconns(s); i++)
		mfd__channel_cleanup(s, &s->ch[i]);
	free(s->ch);
	mfd__pc_free(s);
	for (unsigned k = 0; k < s->nep; k++) {
		mfd__tp_listener_close(s->ep[k].listener);
		mfd__uri_fds_close(&s->ep[k].uri);
	}
	for (int i = 0; i < s->nregions; i++)
		free(s->regions[i].written);
	for (int i = 0; s->role == MFD_ROLE_SEND && i < s->nregions; i++)
		if (s->regions[i].file_fd >= 0)
			close(s->regions[i].file_fd);
	free(s->batch);
	mfd__blobs_free(&s->blobs);
	if (s->secret) {
		explicit_bzero(s->secret, s->cfg.secret_len);
		free(s->secret);
	}
	free_tls(s);
	pthread_cond_destroy(&s->barrier_cond);
	pthread_cond_destroy(&s->pc_cond);
	pthread_cond_destroy(&s->idle_cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->log_lock);
	mfd__ratelimit_destroy(&s->ratelimit);
	mfd__rounds_free(&s->round_log);
	free(s);
}

MFD_EXTERN int mfd_round_stats_sized(const struct mfd_session *s,
				     unsigned round,
				     struct mfd_round_stats *st, size_t size)
{
	return mfd__rounds_get((struct mfd_rounds *)&s->round_log, round, st,
			       size);
}
