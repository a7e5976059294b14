/* SPDX-License-Identifier: MIT */
/* integrity.c - see integrity.h. */
#include "config.h"

#include <errno.h>
#include <string.h>

#ifdef HAVE_OPENSSL
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
#ifdef HAVE_XXHASH
/* the streaming state lives on the stack: no allocation per packet */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* libxxhash picks AVX2 or AVX-512 at run time through its _dispatch
 * functions, which this header substitutes for the plain ones: three
 * times faster than the SSE2 baseline a distribution builds for */
#include <xxh_x86dispatch.h>
#endif
#endif

#include "integrity.h"

const char *mfd__integrity_missing(uint64_t features)
{
#ifndef HAVE_OPENSSL
	if (features & MFD_FEAT_AUTH)
		return "OpenSSL's libcrypto (authentication)";
#endif
#ifndef HAVE_XXHASH
	if (features & (MFD_FEAT_CHECKSUM | MFD_FEAT_VERIFY))
		return "libxxhash (checksums and verification)";
#endif
	(void)features;
	return NULL;
}

#ifdef HAVE_OPENSSL
int mfd__auth_proof(const void *secret, size_t secret_len, char role,
		    const uint8_t init[MFD_INIT_SIZE],
		    const uint8_t ns[MFD_NONCE_SIZE],
		    const uint8_t nr[MFD_NONCE_SIZE],
		    uint8_t proof[MFD_MAC_SIZE])
{
	uint8_t msg[1 + MFD_INIT_SIZE + 2 * MFD_NONCE_SIZE];
	unsigned len = MFD_MAC_SIZE;

	msg[0] = (uint8_t)role;
	memcpy(msg + 1, init, MFD_INIT_SIZE);
	memcpy(msg + 1 + MFD_INIT_SIZE, ns, MFD_NONCE_SIZE);
	memcpy(msg + 1 + MFD_INIT_SIZE + MFD_NONCE_SIZE, nr, MFD_NONCE_SIZE);
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, msg, sizeof(msg),
		  proof, &len) ||
	    len != MFD_MAC_SIZE)
		return -EIO;
	return 0;
}

bool mfd__auth_equal(const uint8_t a[MFD_MAC_SIZE],
		     const uint8_t b[MFD_MAC_SIZE])
{
	return CRYPTO_memcmp(a, b, MFD_MAC_SIZE) == 0;
}
#else
int mfd__auth_proof(const void *secret, size_t secret_len, char role,
		    const uint8_t init[MFD_INIT_SIZE],
		    const uint8_t ns[MFD_NONCE_SIZE],
		    const uint8_t nr[MFD_NONCE_SIZE],
		    uint8_t proof[MFD_MAC_SIZE])
{
	return -ENOTSUP;
}

bool mfd__auth_equal(const uint8_t a[MFD_MAC_SIZE],
		     const uint8_t b[MFD_MAC_SIZE])
{
	return false;
}
#endif

#ifdef HAVE_XXHASH
uint64_t mfd__packet_checksum(const uint8_t *wire, size_t wire_len,
			      const struct iovec *payload, int n)
{
	static const uint8_t zero[8];
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, wire, MFD_HDR_CHECKSUM_AT);
	XXH3_64bits_update(&st, zero, sizeof(zero));
	XXH3_64bits_update(&st, wire + MFD_HDR_SIZE, wire_len - MFD_HDR_SIZE);
	for (int i = 0; i < n; i++)
		XXH3_64bits_update(&st, payload[i].iov_base,
				   payload[i].iov_len);
	return XXH3_64bits_digest(&st);
}

uint64_t mfd__region_digest(const void *mem, uint64_t len)
{
	return XXH3_64bits(mem, len);
}
#else
uint64_t mfd__packet_checksum(const uint8_t *wire, size_t wire_len,
			      const struct iovec *payload, int n)
{
	return 0;
}

uint64_t mfd__region_digest(const void *mem, uint64_t len)
{
	return 0;
}
#endif
