/* tokens.h - random bearer tokens (sessions, setup links) and CSRF tokens.
 *
 * Tokens are 32 random bytes written as unpadded base64url (43 characters).
 * Session tokens are stored only as tokens_hash(); CSRF tokens are derived
 * from the session hash with a server key, so they need no storage.
 * Nothing here allocates. crypto_init() (see crypto/keys.h) must have
 * succeeded first.
 */
#ifndef TG_TOKENS_H
#define TG_TOKENS_H

#include <stddef.h>

#include "core/common.h"

#define TOKENS_LEN 43 /* characters, without the NUL */
#define TOKENS_HASH_LEN 32
#define TOKENS_KEY_LEN 32

/* Write a fresh random token and a NUL into out. TG_OK, or TG_ETOOBIG when
 * outlen < TOKENS_LEN + 1 (out is then untouched). */
int tokens_random(char *out, size_t outlen);

/* out = BLAKE2b-256 of the len bytes at tok. */
void tokens_hash(const char *tok, size_t len, unsigned char out[TOKENS_HASH_LEN]);

/* out = base64url(BLAKE2b-256 keyed with key over "csrf-v1" || session_hash),
 * TOKENS_LEN characters and a NUL. */
void tokens_csrf(const unsigned char key[TOKENS_KEY_LEN],
		 const unsigned char session_hash[TOKENS_HASH_LEN], char out[TOKENS_LEN + 1]);

/* 1 when the len bytes at given are the CSRF token of session_hash, else 0
 * (also for NULL, a wrong length or garbage). Constant time in the contents;
 * reads at most len bytes. */
int tokens_csrf_verify(const unsigned char key[TOKENS_KEY_LEN],
		       const unsigned char session_hash[TOKENS_HASH_LEN], const char *given,
		       size_t len);

#endif
