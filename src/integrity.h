/* SPDX-License-Identifier: MIT */
/*
 * integrity.h - what proves a session: the HMAC-SHA256 proofs of the
 * channel handshake (OpenSSL's libcrypto), and the xxHash3 checksums of
 * packets and digests of regions (libxxhash). Each part is there only
 * when its library was found; mfd__integrity_missing() says which is not.
 */
#ifndef MFD_INTEGRITY_H
#define MFD_INTEGRITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "packet.h"

/* NULL when every feature in `features` is built in, else the name of
 * the library a missing one needs. */
const char *mfd__integrity_missing(uint64_t features);

/*
 * proof = HMAC-SHA256(secret, role || init || ns || nr): the role ('S'
 * for the sender, 'R' for the receiver) keeps one side's proof from
 * serving as the other's; the init packet binds every negotiated field;
 * the two fresh nonces make a proof worthless for any other connection.
 */
int mfd__auth_proof(const void *secret, size_t secret_len, char role,
		    const uint8_t init[MFD_INIT_SIZE],
		    const uint8_t ns[MFD_NONCE_SIZE],
		    const uint8_t nr[MFD_NONCE_SIZE],
		    uint8_t proof[MFD_MAC_SIZE]);
/* Constant-time comparison of two proofs. */
bool mfd__auth_equal(const uint8_t a[MFD_MAC_SIZE],
		     const uint8_t b[MFD_MAC_SIZE]);

/* xxHash3-64 of an encoded header (its checksum field taken as zero) and
 * offsets (wire, wire_len bytes), then the payload. */
uint64_t mfd__packet_checksum(const uint8_t *wire, size_t wire_len,
			      const struct iovec *payload, int n);
/* xxHash3-64 of a region's memory. */
uint64_t mfd__region_digest(const void *mem, uint64_t len);

#endif
