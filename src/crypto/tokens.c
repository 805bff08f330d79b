/* tokens.c - random, session and CSRF tokens; see tokens.h. */
#include "crypto/tokens.h"

#include <sodium.h>

#define TOKENS_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TOKENS_CSRF_CONTEXT "csrf-v1"

_Static_assert(sodium_base64_ENCODED_LEN(32, TOKENS_B64) == TOKENS_LEN + 1,
	       "32 bytes are 43 base64url characters plus a NUL");

int tokens_random(char *out, size_t outlen)
{
	unsigned char raw[32];

	if (!out || outlen < TOKENS_LEN + 1)
		return TG_ETOOBIG;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, TOKENS_LEN + 1, raw, sizeof(raw), TOKENS_B64);
	sodium_memzero(raw, sizeof(raw));
	return TG_OK;
}

void tokens_hash(const char *tok, size_t len, unsigned char out[TOKENS_HASH_LEN])
{
	(void)crypto_generichash(out, TOKENS_HASH_LEN, (const unsigned char *)tok, len, NULL, 0);
}

void tokens_csrf(const unsigned char key[TOKENS_KEY_LEN],
		 const unsigned char session_hash[TOKENS_HASH_LEN], char out[TOKENS_LEN + 1])
{
	crypto_generichash_state st;
	unsigned char mac[32];

	(void)crypto_generichash_init(&st, key, TOKENS_KEY_LEN, sizeof(mac));
	(void)crypto_generichash_update(&st, (const unsigned char *)TOKENS_CSRF_CONTEXT,
					sizeof(TOKENS_CSRF_CONTEXT) - 1);
	(void)crypto_generichash_update(&st, session_hash, TOKENS_HASH_LEN);
	(void)crypto_generichash_final(&st, mac, sizeof(mac));
	sodium_bin2base64(out, TOKENS_LEN + 1, mac, sizeof(mac), TOKENS_B64);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
}

int tokens_csrf_verify(const unsigned char key[TOKENS_KEY_LEN],
		       const unsigned char session_hash[TOKENS_HASH_LEN], const char *given,
		       size_t len)
{
	char want[TOKENS_LEN + 1];
	int ok;

	if (!given || len != TOKENS_LEN)
		return 0;
	tokens_csrf(key, session_hash, want);
	/* Compare the text, not decoded bytes: base64 has spare bits in the
	 * last character, and only the canonical spelling is accepted. */
	ok = sodium_memcmp(want, given, TOKENS_LEN) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}
