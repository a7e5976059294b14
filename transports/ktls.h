/* SPDX-License-Identifier: MIT */
/*
 * ktls.h - kernel TLS for the receiving direction of the tls layer.
 *
 * OpenSSL 3.0 hands only the sending direction of a TLS 1.3 connection to
 * the kernel. The receiving one is installed here: the peer's application
 * traffic secret comes from OpenSSL's key log callback, its key and IV are
 * derived as RFC 8446 7.3 says, and setsockopt(SOL_TLS, TLS_RX) gives them
 * to the kernel, at record number 0 (no application record has been read
 * when the handshake ends: read-ahead is off until then). After that,
 * reads on the socket return plaintext; a record that is no application
 * data (an alert, a post-handshake message) fails the read with EIO
 * without being delivered, and a record that fails authentication with
 * EBADMSG.
 */
#ifndef MFD_KTLS_H
#define MFD_KTLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct mfd_ktls_secret {
	unsigned char b[48]; /* up to SHA-384's size */
	size_t len;	     /* 0: none seen */
};

/* From one key log line, keep the traffic secret of the direction this
 * end receives (the client's on a server, the server's on a client). */
void mfd__ktls_take_secret(const char *line, bool server,
			   struct mfd_ktls_secret *sec);

/* Give the kernel the receiving direction of a TLS 1.3 connection whose
 * handshake just completed and whose socket already has the tls ULP (the
 * sending direction is in the kernel). Wipes the secret. 0 or -errno
 * (-ENOTSUP for a cipher suite the kernel does not take here). */
int mfd__ktls_install_rx(int fd, const SSL *ssl,
			 struct mfd_ktls_secret *sec);

/* A read of a kernel-TLS socket failed with `err` (-EIO or -EBADMSG): say
 * why in msg, reading the record that is no application data. The error
 * to return: -EPIPE for the peer's close_notify, -EBADMSG for a record
 * that failed authentication, -EPROTO for anything else. */
int mfd__ktls_explain_rx(int fd, int err, char *msg, size_t len);

#endif
