/* SPDX-License-Identifier: MIT */
/* ktls.c - see ktls.h. */
#include "config.h"

#include <errno.h>
#include <linux/tls.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

#include "ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* TLS record content types (RFC 8446 B.1) */
#define RECORD_ALERT 21
#define RECORD_HANDSHAKE 22

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void mfd__ktls_take_secret(const char *line, bool server,
			   struct mfd_ktls_secret *sec)
{
	const char *want = server ? "CLIENT_TRAFFIC_SECRET_0 "
				  : "SERVER_TRAFFIC_SECRET_0 ";
	const char *hex;
	size_t n = 0;

	if (strncmp(line, want, strlen(want)))
		return;
	hex = strchr(line + strlen(want), ' '); /* past the client random */
	if (!hex)
		return;
	for (hex++; n < sizeof(sec->b); n++, hex += 2) {
		int hi = hexval(hex[0]), lo = hi < 0 ? -1 : hexval(hex[1]);

		if (lo < 0)
			break;
		sec->b[n] = (unsigned char)(hi << 4 | lo);
	}
	sec->len = *hex ? 0 : n; /* all of it, or nothing */
}

/* HKDF-Expand-Label(secret, label, "", len) of RFC 8446 7.1. */
static int expand_label(const char *digest, const struct mfd_ktls_secret *sec,
			const char *label, unsigned char *out, size_t len)
{
	unsigned char info[2 + 1 + 6 + 16 + 1];
	size_t ll = strlen(label), k = 0;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
	OSSL_PARAM p[5];

	info[k++] = (unsigned char)(len >> 8);
	info[k++] = (unsigned char)len;
	info[k++] = (unsigned char)(6 + ll);
	memcpy(info + k, "tls13 ", 6);
	memcpy(info + k + 6, label, ll);
	k += 6 + ll;
	info[k++] = 0; /* no context */
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)digest, 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)sec->b, sec->len);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, k);
	p[4] = OSSL_PARAM_construct_end();
	ok = ctx && EVP_KDF_derive(ctx, out, len, p) == 1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -EIO;
}

int mfd__ktls_install_rx(int fd, const SSL *ssl, struct mfd_ktls_secret *sec)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	uint16_t id = c ? SSL_CIPHER_get_protocol_id(c) : 0;
	union {
		struct tls12_crypto_info_aes_gcm_128 g128;
		struct tls12_crypto_info_aes_gcm_256 g256;
	} ci;
	unsigned char key[32], iv[12];
	size_t klen, cilen;
	const char *digest;
	int r;

	/* TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384 */
	if (id == 0x1301) {
		digest = "SHA256";
		klen = 16;
		cilen = sizeof(ci.g128);
	} else if (id == 0x1302) {
		digest = "SHA384";
		klen = 32;
		cilen = sizeof(ci.g256);
	} else {
		r = -ENOTSUP;
		goto out;
	}
	if (!sec->len || SSL_version(ssl) != TLS1_3_VERSION ||
	    SSL_has_pending(ssl)) {
		r = -ENOTSUP;
		goto out;
	}
	r = expand_label(digest, sec, "key", key, klen);
	if (!r)
		r = expand_label(digest, sec, "iv", iv, sizeof(iv));
	if (r)
		goto out;
	memset(&ci, 0, sizeof(ci));
	/* the same layout for both sizes up to the key; the record
	 * number (rec_seq) starts at 0 */
	if (klen == 16) {
		ci.g128.info.version = TLS_1_3_VERSION;
		ci.g128.info.cipher_type = TLS_CIPHER_AES_GCM_128;
		memcpy(ci.g128.salt, iv, 4);
		memcpy(ci.g128.iv, iv + 4, 8);
		memcpy(ci.g128.key, key, klen);
	} else {
		ci.g256.info.version = TLS_1_3_VERSION;
		ci.g256.info.cipher_type = TLS_CIPHER_AES_GCM_256;
		memcpy(ci.g256.salt, iv, 4);
		memcpy(ci.g256.iv, iv + 4, 8);
		memcpy(ci.g256.key, key, klen);
	}
	r = setsockopt(fd, SOL_TLS, TLS_RX, &ci, (socklen_t)cilen) ? -errno : 0;
out:
	OPENSSL_cleanse(&ci, sizeof(ci));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	OPENSSL_cleanse(sec, sizeof(*sec));
	return r;
}

int mfd__ktls_explain_rx(int fd, int err, char *msg, size_t len)
{
	unsigned char buf[256], type = 0;
	char cbuf[CMSG_SPACE(sizeof(type))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	ssize_t n;

	if (err == -EBADMSG) {
		snprintf(msg, len,
			 "TLS: a record failed its integrity check (kernel "
			 "TLS): the data was changed on the way");
		return -EBADMSG;
	}
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	for (cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm;
	     cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_TLS &&
		    cm->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cm);
	if (type == RECORD_ALERT && n >= 2 && buf[1] == 0) {
		snprintf(msg, len,
			 "peer closed the connection (TLS close_notify)");
		return -EPIPE;
	}
	if (type == RECORD_ALERT && n >= 2)
		snprintf(msg, len, "TLS: the peer sent the alert '%s'",
			 SSL_alert_desc_string_long(buf[1]));
	else if (type == RECORD_HANDSHAKE)
		snprintf(msg, len,
			 "TLS: the peer sent a handshake message after the "
			 "handshake (a key update or a ticket), which kernel "
			 "TLS here cannot take");
	else
		snprintf(msg, len,
			 "TLS: kernel TLS refused a record (type %u) it cannot "
			 "deliver",
			 type);
	return -EPROTO;
}
