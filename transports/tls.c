/* SPDX-License-Identifier: MIT */
/*
 * tls.c - the tls layer: TLS 1.3 (OpenSSL) over a connection of the
 * transport under it (tcp, unix, or fd: sockets). The layer owns nothing
 * of the connection below but its socket's blocking mode: OpenSSL reads
 * and writes the socket itself, non-blocking, and every wait is a poll()
 * on what is left of the call's deadline, as in tcp.c, so that a peer
 * that stalls or trickles cannot stretch a call beyond its timeout.
 *
 * Authentication is either x509 (each end presents a certificate that the
 * other verifies against its CA; the client also checks the server's
 * name) or an external pre-shared key derived from the session's secret.
 *
 * Kernel TLS: OpenSSL is asked to hand the keys to the kernel after the
 * handshake (SSL_OP_ENABLE_KTLS). Where it could for a direction, that
 * direction goes through the transport below as plain sendmsg/recvmsg on
 * the socket, which the kernel encrypts or decrypts; elsewhere (a kernel
 * without the tls module) SSL_write/SSL_read do it in userspace.
 *
 * Threads: one channel thread uses a connection; shutdown() from any
 * thread only shuts the socket down, never touches the SSL object.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ktls.h"
#include "transport.h"

/* The identity of the external PSK, and the label its key is derived
 * with (protocol.md, "TLS"). */
#define PSK_IDENTITY "multifd-psk"
#define PSK_LABEL "multifd tls 1.3 external psk v1"
/* TLS_AES_128_GCM_SHA256, the PSK's cipher suite (RFC 8446 B.4) */
static const unsigned char psk_suite[2] = { 0x13, 0x01 };

/* Small list entries are gathered into records of up to this many bytes
 * rather than sent as records of their own. */
#define GATHER_MAX (64 * 1024)

struct mfd_tls_ctx {
	SSL_CTX *ctx;
	bool server;
	bool psk_mode;
	char hostname[256]; /* client: the name to check, or "" */
	unsigned char psk[32];
};

/* OpenSSL's read buffer, and the buffer of records written in
 * userspace before they go to the socket: 16 records of 16 KiB and their
 * overhead each, so that a syscall moves many records, not one */
#define READ_AHEAD_BYTES (16 * (16384 + 256))
#define WRITE_BUFFER_BYTES READ_AHEAD_BYTES
/* The most of a peer's last records kept after a failed send: its reason
 * is a header and at most 1 KiB */
#define STASH_MAX (64 * 1024)

struct tls_conn {
	struct mfd_conn base;
	struct mfd_conn *lower;
	const struct mfd_tls_ctx *t;
	SSL *ssl;
	int fd;
	unsigned timeout_ms;
	/* Only the channel thread touches these. */
	bool done;	 /* the handshake completed */
	bool broken;	 /* a fatal TLS error: nothing more goes out */
	bool read_eof;	 /* the stream in ended: writes may go on */
	bool plain_peer; /* server: the peer speaks plaintext multifd */
	bool ktls_send, ktls_recv;
	bool zerocopy;	 /* the session asked for zero-copy sends */
	struct mfd_ktls_secret rx_secret; /* until the handshake ends */
	/* what the peer sent before it reset the connection under a send
	 * (its reason for failing the session), read by peer_alert() and
	 * handed out by the reads that follow */
	uint8_t *stash;
	size_t stash_len, stash_off;
	uint8_t *gather; /* GATHER_MAX bytes, on first use */
};

struct tls_listener {
	struct mfd_listener base;
	struct mfd_listener *lower;
	struct mfd_tls_ctx *t;
};

/* OpenSSL's key log: the peer's traffic secret, for kernel TLS on the
 * receiving side (ktls.h) */
static void keylog(const SSL *ssl, const char *line)
{
	struct tls_conn *tc = SSL_get_app_data(ssl);

	if (tc)
		mfd__ktls_take_secret(line, tc->t->server, &tc->rx_secret);
}

/* The earliest OpenSSL error's reason, and clear the queue. */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error(), first = e;

	while (e)
		e = ERR_get_error();
	if (!first)
		return NULL;
	if (ERR_reason_error_string(first))
		snprintf(buf, len, "%s", ERR_reason_error_string(first));
	else
		ERR_error_string_n(first, buf, len);
	return buf;
}

static const char *peer_name(const struct tls_conn *tc)
{
	return tc->t->server ? "sender" : "receiver";
}

/* What a peer's alert about certificates means here: a pre-shared-key
 * end has none to give, so the two ends use different modes. */
static const char *alert_hint(const struct tls_conn *tc, const char *alert)
{
	if (!strstr(alert, "certificate") && !strstr(alert, "unknown ca"))
		return "";
	return tc->t->psk_mode
		       ? " (it wants a certificate, this end has a pre-shared "
			 "key: one mode on both)"
		       : " (it refused our certificate)";
}

/* ---- contexts ---- */

static SSL_SESSION *psk_session(const struct mfd_tls_ctx *t, SSL *ssl)
{
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, psk_suite);
	SSL_SESSION *sess = c ? SSL_SESSION_new() : NULL;

	if (!sess)
		return NULL;
	if (!SSL_SESSION_set1_master_key(sess, t->psk, sizeof(t->psk)) ||
	    !SSL_SESSION_set_cipher(sess, c) ||
	    !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		      size_t *idlen, SSL_SESSION **sess)
{
	const struct mfd_tls_ctx *t =
		SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, psk_suite);

	*sess = NULL;
	*id = NULL;
	*idlen = 0;
	if (!c)
		return 0;
	if (md && md != SSL_CIPHER_get_handshake_digest(c))
		return 1; /* after a HelloRetryRequest for another hash */
	*sess = psk_session(t, ssl);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)PSK_IDENTITY;
	*idlen = strlen(PSK_IDENTITY);
	return 1;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen,
		       SSL_SESSION **sess)
{
	const struct mfd_tls_ctx *t =
		SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	*sess = NULL;
	if (idlen != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, idlen))
		return 1; /* unknown identity: no PSK, the handshake fails */
	*sess = psk_session(t, ssl);
	return *sess ? 1 : 0;
}

/* The PSK: SHA-256 over a label and the secret, so that the key TLS uses
 * is not the key the multifd challenge (HMAC-SHA256) uses. */
static int derive_psk(struct mfd_tls_ctx *t, const uint8_t *secret,
		      size_t len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned out = 0;
	int ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(m, PSK_LABEL, strlen(PSK_LABEL)) &&
		 EVP_DigestUpdate(m, secret, len) &&
		 EVP_DigestFinal_ex(m, t->psk, &out) && out == sizeof(t->psk);

	EVP_MD_CTX_free(m);
	return ok ? 0 : -EIO;
}

/* OpenSSL's "no start line" means the file holds no PEM block at all */
static const char *pem_hint(const char *reason)
{
	return reason && (strstr(reason, "no start line") ||
			  strstr(reason, "unsupported"))
		       ? " (expected a PEM file: -----BEGIN ...)"
		       : "";
}

/* The key's passphrase callback: multifd asks for none (a prompt would
 * block a tool or a daemon without any deadline); it notes the ask. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (asked)
		*(bool *)asked = true;
	return 0;
}

static int ctx_fail(struct mfd_tls_ctx *t, char *err, size_t errlen,
		    const char *what, const char *file)
{
	char why[200];
	const char *r = ssl_reason(why, sizeof(why));

	snprintf(err, errlen, "TLS: %s '%s': %s%s", what, file,
		 r ? r : "failed", pem_hint(r));
	mfd__tls_ctx_free(t);
	return -EINVAL;
}

int mfd__tls_ctx_new(const struct mfd_tls_params *p, bool server,
		     struct mfd_tls_ctx **out, char *err, size_t errlen)
{
	struct mfd_tls_ctx *t = calloc(1, sizeof(*t));
	bool asked = false; /* for a passphrase, while the key loads */
	bool loaded;
	/* An end of the stream without close_notify is a closed connection
	 * (the protocol's END/FIN tell an orderly end from a cut), and
	 * OpenSSL must not answer it with a fatal decode_error alert: a
	 * cancelled receiver shuts its reads down, then tells the sender
	 * why on the same connection. */
	uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			SSL_OP_IGNORE_UNEXPECTED_EOF;

	*out = NULL;
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->server = server;
	t->psk_mode = p->secret != NULL;
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx) {
		snprintf(err, errlen, "TLS: cannot create an OpenSSL context");
		mfd__tls_ctx_free(t);
		return -ENOMEM;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	if (getenv("MULTIFD_NO_KTLS") == NULL) {
		opts |= SSL_OP_ENABLE_KTLS;
		SSL_CTX_set_keylog_callback(t->ctx, keylog);
	}
	SSL_CTX_set_options(t->ctx, opts);
	/* TLS 1.3 only; AES-128-GCM first: the cheapest per byte where
	 * the CPU has AES instructions, and one the kernel offloads */
	if (!SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(t->ctx,
				      t->psk_mode
					      ? "TLS_AES_128_GCM_SHA256"
					      : "TLS_AES_128_GCM_SHA256:"
						"TLS_AES_256_GCM_SHA384:"
						"TLS_CHACHA20_POLY1305_SHA256")) {
		snprintf(err, errlen, "TLS: this OpenSSL has no TLS 1.3");
		mfd__tls_ctx_free(t);
		return -ENOTSUP;
	}
	/* no session tickets: nothing comes after the handshake but data,
	 * which kernel TLS requires, and no session is ever resumed */
	SSL_CTX_set_num_tickets(t->ctx, 0);
	/* room for many records per read once read-ahead is on */
	SSL_CTX_set_default_read_buffer_len(t->ctx, READ_AHEAD_BYTES);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	if (t->psk_mode) {
		if (derive_psk(t, p->secret, p->secret_len)) {
			snprintf(err, errlen, "TLS: cannot derive the key");
			mfd__tls_ctx_free(t);
			return -EIO;
		}
		if (server)
			SSL_CTX_set_psk_find_session_callback(t->ctx,
							      psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(t->ctx,
							     psk_use_cb);
		*out = t;
		return 0;
	}
	{
		const char *files[3][2] = { { "certificate", p->cert },
					    { "key", p->key },
					    { "CA certificates", p->ca } };

		for (int i = 0; i < 3; i++) {
			struct stat st;
			int e = access(files[i][1], R_OK) ? errno
				: stat(files[i][1], &st)  ? errno
				: S_ISDIR(st.st_mode)	  ? EISDIR
							  : 0;

			if (e) {
				snprintf(err, errlen,
					 "TLS: cannot read the %s '%s': %s%s",
					 files[i][0], files[i][1], strerror(e),
					 e == EISDIR ? " (expected a PEM file)"
						     : "");
				mfd__tls_ctx_free(t);
				return -e;
			}
		}
	}
	ERR_clear_error();
	SSL_CTX_set_default_passwd_cb(t->ctx, no_passphrase);
	SSL_CTX_set_default_passwd_cb_userdata(t->ctx, &asked);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, p->cert) != 1)
		return ctx_fail(t, err, errlen, "cannot load the certificate",
				p->cert);
	loaded = SSL_CTX_use_PrivateKey_file(t->ctx, p->key,
					     SSL_FILETYPE_PEM) == 1 &&
		 SSL_CTX_check_private_key(t->ctx) == 1;
	SSL_CTX_set_default_passwd_cb_userdata(t->ctx, NULL);
	if (!loaded) {
		char why[200];
		const char *r = ssl_reason(why, sizeof(why));

		if (r && strstr(r, "mismatch")) {
			snprintf(err, errlen,
				 "TLS: the key '%s' does not match the "
				 "certificate '%s'",
				 p->key, p->cert);
			mfd__tls_ctx_free(t);
			return -EINVAL;
		}
		if (asked)
			snprintf(err, errlen,
				 "TLS: the key '%s' is protected by a "
				 "passphrase, which multifd does not ask for: "
				 "give a key without one (openssl pkey -in KEY "
				 "-out NEW)",
				 p->key);
		else
			snprintf(err, errlen,
				 "TLS: cannot load the key '%s': %s%s", p->key,
				 r ? r : "failed", pem_hint(r));
		mfd__tls_ctx_free(t);
		return -EINVAL;
	}
	if (SSL_CTX_load_verify_locations(t->ctx, p->ca, NULL) != 1)
		return ctx_fail(t, err, errlen,
				"cannot load the CA certificates", p->ca);
	/* mutual: each end verifies the other's certificate */
	SSL_CTX_set_verify(t->ctx,
			   SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   NULL);
	if (p->hostname)
		snprintf(t->hostname, sizeof(t->hostname), "%s", p->hostname);
	*out = t;
	return 0;
}

void mfd__tls_ctx_free(struct mfd_tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	OPENSSL_cleanse(t->psk, sizeof(t->psk));
	free(t);
}

/* ---- connections ---- */

static int wrap(struct mfd_tls_ctx *t, struct mfd_conn *lower,
		struct tls_conn **out, char *err, size_t errlen)
{
	struct tls_conn *tc = calloc(1, sizeof(*tc));
	int fd = lower->ops->fd ? lower->ops->fd(lower) : -ENOTSUP;
	int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;

	*out = NULL;
	if (!tc || fd < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
		snprintf(err, errlen, "TLS: %s",
			 !tc ? "out of memory"
			     : "the transport under it has no socket");
		free(tc);
		return !tc ? -ENOMEM : -ENOTSUP;
	}
	tc->base.ops = &mfd__tls_ops;
	tc->lower = lower;
	tc->t = t;
	tc->fd = fd;
	tc->ssl = SSL_new(t->ctx);
	if (!tc->ssl || SSL_set_fd(tc->ssl, fd) != 1 ||
	    !SSL_set_app_data(tc->ssl, tc)) {
		snprintf(err, errlen, "TLS: cannot create a connection");
		SSL_free(tc->ssl);
		free(tc);
		return -ENOMEM;
	}
	if (!t->server && t->hostname[0]) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(tc->ssl);
		unsigned char ip[16];
		bool is_ip = inet_pton(AF_INET, t->hostname, ip) == 1 ||
			     inet_pton(AF_INET6, t->hostname, ip) == 1;
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->hostname)
			       : SSL_set1_host(tc->ssl, t->hostname) &&
					 SSL_set_tlsext_host_name(tc->ssl,
								  t->hostname);

		if (ok != 1) {
			snprintf(err, errlen, "TLS: bad host name '%s'",
				 t->hostname);
			SSL_free(tc->ssl);
			free(tc);
			return -EINVAL;
		}
	}
	*out = tc;
	return 0;
}

/* The first bytes waiting on the socket, without taking them; 0 when
 * none are there yet. */
static ssize_t peek(int fd, uint8_t *buf, size_t len)
{
	ssize_t r = recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT);

	return r < 0 ? 0 : r;
}

/* A TLS record starts with its content type, 20..23 (RFC 8446 5.1);
 * "MFD" is how every multifd handshake packet starts. */
static bool is_plaintext_multifd(const uint8_t *b, ssize_t n)
{
	return n >= 3 && !memcmp(b, "MFD", 3);
}

static bool is_tls_record(const uint8_t *b, ssize_t n)
{
	return n < 1 || (b[0] >= 20 && b[0] <= 23);
}

/* Why the handshake failed, in c->err, as -errno. */
static int handshake_failed(struct tls_conn *tc, int e, int ret)
{
	struct mfd_conn *c = &tc->base;
	long v = SSL_get_verify_result(tc->ssl);
	char why[200];
	const char *r = ssl_reason(why, sizeof(why));
	const char *peer = peer_name(tc);

	tc->broken = true;
	if (!tc->t->psk_mode && v != X509_V_OK) {
		bool name = v == X509_V_ERR_HOSTNAME_MISMATCH ||
			    v == X509_V_ERR_IP_ADDRESS_MISMATCH;
		int n = snprintf(c->err, sizeof(c->err),
				 "TLS handshake failed: the %s's certificate "
				 "does not verify: %s",
				 peer, X509_verify_cert_error_string(v));

		/* the name is ours (the URI's host or --tls-hostname),
		 * never the peer's text */
		if (name && n > 0 && (size_t)n < sizeof(c->err) &&
		    snprintf(c->err + n, sizeof(c->err) - (size_t)n,
			     " (the name checked: '%s')", tc->t->hostname) < 0)
			c->err[n] = '\0';
		return -EACCES;
	}
	if (r && strstr(r, "binder does not verify")) {
		snprintf(c->err, sizeof(c->err),
			 "TLS handshake failed: the %s holds another pre-shared "
			 "key (the secrets differ)",
			 peer);
		return -EACCES;
	}
	if (r && strstr(r, "alert")) {
		snprintf(c->err, sizeof(c->err),
			 "TLS handshake failed: the %s refused it (%s)%s", peer,
			 r,
			 tc->t->psk_mode && (strstr(r, "decrypt error") ||
					     strstr(r, "illegal parameter"))
				 ? ": the two ends' secrets differ, or one "
				   "has none"
				 : "");
		return -EACCES;
	}
	if (e == SSL_ERROR_SYSCALL && ret <= 0 && errno && errno != EAGAIN) {
		snprintf(c->err, sizeof(c->err), "TLS handshake failed: %s",
			 strerror(errno));
		return -errno;
	}
	if (!r || e == SSL_ERROR_SYSCALL || strstr(r, "unexpected eof")) {
		snprintf(c->err, sizeof(c->err),
			 "TLS handshake failed: the %s closed the connection",
			 peer);
		return -EPIPE;
	}
	snprintf(c->err, sizeof(c->err), "TLS handshake failed: %s%s", r,
		 strstr(r, "no suitable") || strstr(r, "no shared")
			 ? " (one end uses certificates, the other a "
			   "pre-shared key?)"
			 : "");
	return -EPROTO;
}

/* Userspace encryption: records gather in a buffer BIO on top of the
 * socket's, flushed at the end of each send (flush_writes()); where that
 * cannot be set up, each record is written as it is made. */
static void buffer_writes(struct tls_conn *tc)
{
	BIO *sock = SSL_get_wbio(tc->ssl), *buf = BIO_new(BIO_f_buffer());

	if (!buf || BIO_set_write_buffer_size(buf, WRITE_BUFFER_BYTES) != 1 ||
	    BIO_up_ref(sock) != 1) {
		BIO_free(buf);
		return;
	}
	/* the SSL drops its reference to the socket BIO, the chain holds
	 * the one taken above */
	SSL_set0_wbio(tc->ssl, BIO_push(buf, sock));
}

/* A call on a connection that broke earlier: its error stays the
 * sentence it broke with (another thread's send may come second and must
 * not replace the first, better, reason). */
static void broken_why(struct tls_conn *tc)
{
	if (!tc->base.err[0])
		snprintf(tc->base.err, sizeof(tc->base.err),
			 "TLS: the connection failed");
}

/* The handshake, until deadline (0: none) or *stop (NULL: none). */
static int handshake(struct tls_conn *tc, int64_t deadline, const bool *stop)
{
	struct mfd_conn *c = &tc->base;
	uint8_t head[4];
	ssize_t n;

	if (tc->broken) {
		broken_why(tc);
		return -EPIPE;
	}
	/* A plaintext multifd sender: say so in words, and let the refusal
	 * go back in plaintext so that it can tell its user. */
	if (tc->t->server) {
		int w = mfd__tp_poll_until(tc->fd, POLLIN, deadline, NULL);

		if (w == 0) {
			tc->broken = true;
			snprintf(c->err, sizeof(c->err),
				 "no TLS handshake within %u ms",
				 tc->timeout_ms);
			return -ETIMEDOUT;
		}
		n = peek(tc->fd, head, sizeof(head));
		if (is_plaintext_multifd(head, n)) {
			tc->plain_peer = true;
			snprintf(c->err, sizeof(c->err),
				 "the sender does not use TLS (it sent a "
				 "plaintext init), and this receiver requires "
				 "it: configure TLS on both ends");
			return -EPROTO;
		}
	}
	for (;;) {
		int r, e, w;

		ERR_clear_error();
		errno = 0;
		r = tc->t->server ? SSL_accept(tc->ssl) : SSL_connect(tc->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(tc->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			n = tc->t->server ? 0 : peek(tc->fd, head, sizeof(head));
			if (!is_tls_record(head, n)) {
				tc->broken = true;
				ERR_clear_error();
				snprintf(c->err, sizeof(c->err),
					 "the receiver does not use TLS (it "
					 "answered in plaintext%s): configure "
					 "TLS on both ends",
					 is_plaintext_multifd(head, n)
						 ? " multifd" : "");
				return -EPROTO;
			}
			return handshake_failed(tc, e, r);
		}
		w = mfd__tp_poll_until(tc->fd,
				       e == SSL_ERROR_WANT_READ ? POLLIN
								: POLLOUT,
				       deadline, stop);
		if (w == -ECANCELED) {
			snprintf(c->err, sizeof(c->err),
				 "the TLS handshake was stopped: the session "
				 "failed or was cancelled");
			return w;
		}
		if (w < 0) {
			snprintf(c->err, sizeof(c->err),
				 "TLS handshake: poll: %s", strerror(-w));
			return w;
		}
		if (w == 0) {
			tc->broken = true;
			snprintf(c->err, sizeof(c->err),
				 "the TLS handshake did not complete within "
				 "%u ms",
				 tc->timeout_ms);
			return -ETIMEDOUT;
		}
		/* a plaintext answer (a receiver without TLS refusing our
		 * ClientHello as a bad init) is not a TLS record */
		n = tc->t->server ? 0 : peek(tc->fd, head, sizeof(head));
		if (!is_tls_record(head, n)) {
			tc->broken = true;
			snprintf(c->err, sizeof(c->err),
				 "the receiver does not use TLS (it answered "
				 "in plaintext%s): configure TLS on both ends",
				 is_plaintext_multifd(head, n) ? " multifd"
							       : "");
			return -EPROTO;
		}
	}
	tc->done = true;
	tc->ktls_send = BIO_get_ktls_send(SSL_get_wbio(tc->ssl));
	tc->ktls_recv = BIO_get_ktls_recv(SSL_get_rbio(tc->ssl));
	/* OpenSSL 3.0 gives the kernel only the sending side of TLS 1.3;
	 * the socket has the tls ULP then, and the receiving side can
	 * follow (wipes the secret either way) */
	if (tc->ktls_send && !tc->ktls_recv)
		tc->ktls_recv = !mfd__ktls_install_rx(tc->fd, tc->ssl,
						      &tc->rx_secret);
	OPENSSL_cleanse(&tc->rx_secret, sizeof(tc->rx_secret));
	/* userspace decryption: read as much as has arrived per syscall,
	 * not a record header and then its body (set only now: kTLS must
	 * find no record read ahead of the handshake's end) */
	if (!tc->ktls_recv)
		SSL_set_read_ahead(tc->ssl, 1);
	if (!tc->ktls_send)
		buffer_writes(tc);
	c->tls_flags = MFD_CONN_TLS |
		       (tc->ktls_send ? MFD_CONN_KTLS_SEND : 0) |
		       (tc->ktls_recv ? MFD_CONN_KTLS_RECV : 0);
	return 0;
}

/* An alert the peer sent before it reset the connection: read what is
 * still queued on the socket. True with its text in buf. */
static bool peer_alert(struct tls_conn *tc, char *buf, size_t len)
{
	const char *r;
	size_t k;

	if (!tc->stash && !(tc->stash = malloc(STASH_MAX)))
		return false;
	ERR_clear_error();
	while (tc->stash_len < STASH_MAX &&
	       SSL_read_ex(tc->ssl, tc->stash + tc->stash_len,
			   STASH_MAX - tc->stash_len, &k) == 1)
		tc->stash_len += k;
	r = ssl_reason(buf, len);
	return r && strstr(r, "alert");
}


/* What an SSL_read/SSL_write failure means, in c->err, as -errno. */
static int io_failed(struct tls_conn *tc, int e, const char *what,
		     size_t done, size_t total)
{
	struct mfd_conn *c = &tc->base;
	int sys = errno;
	char why[200];
	const char *r = ssl_reason(why, sizeof(why));

	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && !sys) ||
	    (r && strstr(r, "unexpected eof"))) {
		/* nothing more comes in; this end may still say why it
		 * stops (an end of a write is a broken connection) */
		if (!strcmp(what, "read"))
			tc->read_eof = true;
		else
			tc->broken = true;
		snprintf(c->err, sizeof(c->err),
			 "peer closed the connection%s (%zu bytes of this "
			 "%s done)",
			 done ? " in the middle of a packet" : "", done,
			 what);
		return -EPIPE;
	}
	tc->broken = true;
	if (e == SSL_ERROR_SYSCALL &&
	    (sys == ECONNRESET || sys == EPIPE) && peer_alert(tc, why,
							     sizeof(why))) {
		/* TLS 1.3: a client learns that the server refused its
		 * certificate only from the alert that follows the
		 * handshake, and the reset that follows the alert */
		snprintf(c->err, sizeof(c->err),
			 "the %s ended the TLS session: %.45s%s", peer_name(tc),
			 why, alert_hint(tc, why));
		return -EACCES;
	}
	if (e == SSL_ERROR_SYSCALL) {
		snprintf(c->err, sizeof(c->err), "%s: %s", what,
			 strerror(sys));
		return -sys;
	}
	if (r && (strstr(r, "bad record mac") ||
		  strstr(r, "decryption failed"))) {
		snprintf(c->err, sizeof(c->err),
			 "TLS: a record failed its integrity check (%.40s): the "
			 "bytes were altered on the way (%zu of %zu bytes of "
			 "this %s done)",
			 r, done, total, what);
		return -EBADMSG;
	}
	if (r && strstr(r, "alert")) {
		snprintf(c->err, sizeof(c->err),
			 "the %s ended the TLS session: %.45s%s", peer_name(tc),
			 r, alert_hint(tc, r));
		return -EACCES;
	}
	snprintf(c->err, sizeof(c->err), "TLS %s failed: %.100s", what,
		 r ? r : "error");
	return -EPROTO;
}

/* A send waits for the socket (events), within the deadline: 0, or
 * -errno with the sentence in err. */
static int send_wait(struct tls_conn *tc, short events, int64_t deadline,
		     size_t done, size_t total)
{
	int p = mfd__tp_poll_until(tc->fd, events, deadline, NULL);

	if (p < 0) {
		snprintf(tc->base.err, sizeof(tc->base.err), "send: poll: %s",
			 strerror(-p));
		return p;
	}
	if (p == 0) {
		mfd__tp_deadline_text(tc->base.err, sizeof(tc->base.err),
				      true, tc->timeout_ms, done, total,
				      "went out", NULL);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Write len bytes whole, by the deadline. */
static int write_all(struct tls_conn *tc, const void *buf, size_t len,
		     int64_t deadline, size_t *done, size_t total)
{
	while (len) {
		size_t w = 0;
		int r, e;

		ERR_clear_error();
		errno = 0;
		r = SSL_write_ex(tc->ssl, buf, len, &w);
		if (r == 1) {
			*done += w;
			buf = (const uint8_t *)buf + w;
			len -= w;
			continue;
		}
		e = SSL_get_error(tc->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			r = send_wait(tc,
				      e == SSL_ERROR_WANT_WRITE ? POLLOUT
								: POLLIN,
				      deadline, *done, total);
			if (r)
				return r;
			continue;
		}
		return io_failed(tc, e, "send", *done, total);
	}
	return 0;
}

static size_t iov_bytes(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Send what buffer_writes() holds, within the deadline. */
static int flush_writes(struct tls_conn *tc, int64_t deadline, size_t done,
			size_t total)
{
	BIO *b = SSL_get_wbio(tc->ssl);

	while (BIO_wpending(b) > 0) {
		int r;

		errno = 0;
		if (BIO_flush(b) == 1)
			break;
		if (!BIO_should_retry(b))
			return io_failed(tc, SSL_ERROR_SYSCALL, "send", done,
					 total);
		r = send_wait(tc, POLLOUT, deadline, done, total);
		if (r)
			return r;
	}
	return 0;
}

/* A result of the connection below, with its sentence as ours. */
static int from_lower(struct tls_conn *tc, int r)
{
	if (r)
		snprintf(tc->base.err, sizeof(tc->base.err), "%s",
			 tc->lower->err);
	return r;
}

static int tls_send(struct mfd_conn *c, const struct iovec *iov, int n,
		    unsigned flags)
{
	struct tls_conn *tc = (struct tls_conn *)c;
	int64_t deadline = mfd__tp_deadline_in(tc->timeout_ms);
	size_t total = iov_bytes(iov, n), done = 0, have = 0;
	int r;

	/* only a refusal goes to a plaintext peer, which TLS never began
	 * with: nothing of the session can follow it */
	if (tc->plain_peer)
		return tc->lower->ops->send(tc->lower, iov, n, 0);
	if (tc->broken) {
		broken_why(tc);
		return -EPIPE;
	}
	if (!tc->done) {
		r = handshake(tc, deadline, NULL);
		if (r)
			return r;
	}
	/* The kernel's tls layer refuses MSG_ZEROCOPY, but it encrypts full
	 * records straight from the caller's pages: no plaintext copy is
	 * made, which is what zero-copy is for. OpenSSL in userspace
	 * encrypts into its own buffer, which is then copied into the
	 * socket: a zero-copy send that falls back, and is counted. */
	if (tc->ktls_send)
		return from_lower(tc, tc->lower->ops->send(tc->lower, iov, n,
					     flags & ~MFD_SEND_ZEROCOPY));
	if (tc->zerocopy && (flags & MFD_SEND_ZEROCOPY))
		c->zc_fallbacks++;
	if (!tc->gather) {
		tc->gather = malloc(GATHER_MAX);
		if (!tc->gather) {
			snprintf(c->err, sizeof(c->err), "out of memory");
			return -ENOMEM;
		}
	}
	/* small entries (headers, offsets) share records with what follows;
	 * large ones go straight from where they are */
	for (int i = 0; i < n; i++) {
		size_t len = iov[i].iov_len;

		bool direct = len >= GATHER_MAX / 4;

		if (have && (direct || have + len > GATHER_MAX)) {
			r = write_all(tc, tc->gather, have, deadline, &done,
				      total);
			if (r)
				return r;
			have = 0;
		}
		if (direct) {
			r = write_all(tc, iov[i].iov_base, len, deadline,
				      &done, total);
			if (r)
				return r;
			continue;
		}
		memcpy(tc->gather + have, iov[i].iov_base, len);
		have += len;
	}
	r = have ? write_all(tc, tc->gather, have, deadline, &done, total) : 0;
	return r ? r : flush_writes(tc, deadline, done, total);
}

/* Zero-copy is decided per send, after the handshake has shown whether
 * the kernel encrypts (see tls_send()); the socket below takes no
 * SO_ZEROCOPY, whose MSG_ZEROCOPY the kernel's tls layer refuses. */
static int tls_enable_zerocopy(struct mfd_conn *c)
{
	((struct tls_conn *)c)->zerocopy = true;
	return 0;
}

/* A read after a failed connection: what peer_alert() kept, then the
 * end of the stream. */
static int recv_stash(struct tls_conn *tc, const struct iovec *iov, int n)
{
	size_t got = 0, total = iov_bytes(iov, n);

	for (int i = 0; i < n && tc->stash_off < tc->stash_len; i++) {
		size_t k = tc->stash_len - tc->stash_off;

		if (k > iov[i].iov_len)
			k = iov[i].iov_len;
		memcpy(iov[i].iov_base, tc->stash + tc->stash_off, k);
		tc->stash_off += k;
		got += k;
	}
	if (got == total)
		return 0;
	if (got || tc->stash_len || tc->read_eof)
		snprintf(tc->base.err, sizeof(tc->base.err),
			 "peer closed the connection (%zu of %zu bytes of "
			 "this read done)",
			 got, total);
	else
		broken_why(tc);
	return -EPIPE;
}

static int tls_recv(struct mfd_conn *c, const struct iovec *iov, int n)
{
	struct tls_conn *tc = (struct tls_conn *)c;
	int64_t deadline = mfd__tp_deadline_in(tc->timeout_ms);
	size_t total = iov_bytes(iov, n), got = 0;
	int r;

	/* a plaintext peer's bytes are read only to drop them after its
	 * refusal (so that closing sends a FIN, not a RST that would
	 * destroy the refusal in flight) */
	if (tc->plain_peer)
		return from_lower(tc, tc->lower->ops->recv(tc->lower, iov, n));
	if (tc->broken || tc->read_eof)
		return recv_stash(tc, iov, n);
	if (!tc->done) {
		r = handshake(tc, deadline, NULL);
		if (r)
			return r;
	}
	if (tc->ktls_recv && !SSL_pending(tc->ssl)) {
		r = tc->lower->ops->recv(tc->lower, iov, n);
		/* the kernel delivers application data only */
		if (r == -EIO || r == -EBADMSG)
			return mfd__ktls_explain_rx(tc->fd, r, c->err,
						    sizeof(c->err));
		return from_lower(tc, r);
	}
	for (int i = 0; i < n; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			size_t k = 0;
			int e;

			ERR_clear_error();
			errno = 0;
			r = SSL_read_ex(tc->ssl, p, left, &k);
			if (r == 1) {
				p += k;
				left -= k;
				got += k;
				continue;
			}
			e = SSL_get_error(tc->ssl, r);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE) {
				int w = mfd__tp_poll_until(
					tc->fd,
					e == SSL_ERROR_WANT_READ ? POLLIN
								 : POLLOUT,
					deadline, NULL);

				if (w < 0)
					return w;
				if (w == 0) {
					mfd__tp_deadline_text(
						c->err, sizeof(c->err), false,
						tc->timeout_ms, got, total,
						"arrived", NULL);
					return -ETIMEDOUT;
				}
				continue;
			}
			return io_failed(tc, e, "read", got, total);
		}
	}
	return 0;
}

static int tls_set_timeout(struct mfd_conn *c, unsigned timeout_ms)
{
	struct tls_conn *tc = (struct tls_conn *)c;
	int r = tc->lower->ops->set_timeout
			? tc->lower->ops->set_timeout(tc->lower, timeout_ms)
			: 0;

	tc->timeout_ms = timeout_ms;
	if (r)
		snprintf(c->err, sizeof(c->err), "%s", tc->lower->err);
	return r;
}

static int tls_keepalive(struct mfd_conn *c, unsigned idle_ms)
{
	struct tls_conn *tc = (struct tls_conn *)c;
	int r = mfd__tp_keepalive(tc->lower, idle_ms);

	if (r)
		snprintf(c->err, sizeof(c->err), "%s", tc->lower->err);
	return r;
}

static void tls_shutdown(struct mfd_conn *c)
{
	mfd__tp_shutdown(((struct tls_conn *)c)->lower);
}

static void tls_shutdown_read(struct mfd_conn *c)
{
	mfd__tp_shutdown_read(((struct tls_conn *)c)->lower);
}

static void tls_close(struct mfd_conn *c)
{
	struct tls_conn *tc = (struct tls_conn *)c;

	/* close_notify, once and without waiting: the peer then tells an
	 * orderly end from a cut connection */
	if (tc->done && !tc->broken && SSL_shutdown(tc->ssl) >= 0)
		(void)BIO_flush(SSL_get_wbio(tc->ssl));
	SSL_free(tc->ssl);
	ERR_clear_error();
	mfd__tp_close(tc->lower);
	free(tc->gather);
	free(tc->stash);
	free(tc);
}

static int tls_connect(const struct mfd_uri *u, unsigned timeout_ms,
		       struct mfd_conn **out, char *err, size_t errlen)
{
	int64_t deadline = mfd__tp_deadline_in(timeout_ms);
	struct mfd_conn *lower;
	struct tls_conn *tc;
	int r = u->lower->connect(u, timeout_ms, &lower, err, errlen);

	if (r)
		return r;
	r = wrap(u->tls, lower, &tc, err, errlen);
	if (r) {
		mfd__tp_close(lower);
		return r;
	}
	tc->timeout_ms = timeout_ms;
	r = handshake(tc, deadline, u->stop);
	if (r) {
		snprintf(err, errlen, "%s", tc->base.err);
		tls_close(&tc->base);
		return r;
	}
	*out = &tc->base;
	return 0;
}

static int tls_listen(const struct mfd_uri *u, struct mfd_listener **out,
		      char *err, size_t errlen)
{
	struct tls_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = u->lower->listen(u, &l->lower, err, errlen);
	if (r) {
		free(l);
		return r;
	}
	l->base.ops = &mfd__tls_ops;
	l->t = u->tls;
	memcpy(l->base.uri, l->lower->uri, sizeof(l->base.uri));
	*out = &l->base;
	return 0;
}

/* The handshake waits for the connection's first send or recv, so that
 * it runs within the receiver's per-connection handshake deadline and a
 * failed one is refused like any bad init, without ending the wait. */
static int tls_accept(struct mfd_listener *ml, unsigned timeout_ms,
		      struct mfd_conn **out, char *err, size_t errlen)
{
	struct tls_listener *l = (struct tls_listener *)ml;
	struct mfd_conn *lower;
	struct tls_conn *tc;
	int r = l->lower->ops->accept(l->lower, timeout_ms, &lower, err,
				      errlen);

	if (r)
		return r;
	r = wrap(l->t, lower, &tc, err, errlen);
	if (r) {
		mfd__tp_close(lower);
		return r;
	}
	*out = &tc->base;
	return 0;
}

static void tls_listener_wake(struct mfd_listener *ml)
{
	mfd__tp_listener_wake(((struct tls_listener *)ml)->lower);
}

static void tls_listener_close(struct mfd_listener *ml)
{
	struct tls_listener *l = (struct tls_listener *)ml;

	mfd__tp_listener_close(l->lower);
	free(l);
}

/* The socket under the records: for a look at whether the peer hung up,
 * never for bytes (they are records). */
static int tls_fd(struct mfd_conn *c)
{
	return ((struct tls_conn *)c)->fd;
}

const struct mfd_transport_ops mfd__tls_ops = {
	.name = "tls",
	.connect = tls_connect,
	.listen = tls_listen,
	.accept = tls_accept,
	.listener_wake = tls_listener_wake,
	.listener_close = tls_listener_close,
	.set_timeout = tls_set_timeout,
	.keepalive = tls_keepalive,
	.enable_zerocopy = tls_enable_zerocopy,
	.send = tls_send,
	.recv = tls_recv,
	.shutdown = tls_shutdown,
	.shutdown_read = tls_shutdown_read,
	.close = tls_close,
	.fd = tls_fd,
};
