/* fuzz_csrf.c - CSRF token verification.
 *
 * The first 64 input bytes (zero-padded) are the server key and the session
 * hash; the rest is the token a client sends. tokens_csrf_verify() must
 * answer 1 exactly when the given bytes equal the real token (43 characters),
 * read no further than len (exact-size heap copy) and never succeed for a
 * one-character change, a truncation or an extension of the real token.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keys.h"
#include "crypto/tokens.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_csrf: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static int verify_copy(const unsigned char *key, const unsigned char *sh, const char *s, size_t n)
{
	char *c = malloc(n ? n : 1);
	int rc;

	CHECK(c != NULL);
	memcpy(c, s, n);
	rc = tokens_csrf_verify(key, sh, c, n);
	free(c);
	CHECK(rc == 0 || rc == 1);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	unsigned char key[TOKENS_KEY_LEN] = { 0 }, sh[TOKENS_HASH_LEN] = { 0 };
	char real[TOKENS_LEN + 2], again[TOKENS_LEN + 1];
	const char *given;
	size_t n, i;
	int ok;

	if (!inited) {
		CHECK(crypto_init() == TG_OK);
		inited = 1;
	}
	n = size < 64 ? size : 64;
	for (i = 0; i < n; i++) {
		if (i < 32)
			key[i] = data[i];
		else
			sh[i - 32] = data[i];
	}
	given = (const char *)data + n;
	n = size - n;

	tokens_csrf(key, sh, real);
	CHECK(strlen(real) == TOKENS_LEN);
	for (i = 0; i < TOKENS_LEN; i++)
		CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
			     real[i]) &&
		      real[i]);
	tokens_csrf(key, sh, again);
	CHECK(strcmp(real, again) == 0);

	ok = verify_copy(key, sh, given, n);
	CHECK(ok == (n == TOKENS_LEN && memcmp(given, real, TOKENS_LEN) == 0));
	CHECK(tokens_csrf_verify(key, sh, NULL, n) == 0);

	CHECK(verify_copy(key, sh, real, TOKENS_LEN) == 1);
	CHECK(verify_copy(key, sh, real, TOKENS_LEN - 1) == 0);
	real[TOKENS_LEN] = n ? given[0] : 'A';
	CHECK(verify_copy(key, sh, real, TOKENS_LEN + 1) == 0);
	real[TOKENS_LEN] = '\0';
	if (n >= 2) {
		size_t pos = (unsigned char)given[0] % TOKENS_LEN;
		char old = real[pos];

		if ((char)given[1] != old) {
			real[pos] = (char)given[1];
			CHECK(verify_copy(key, sh, real, TOKENS_LEN) == 0);
			real[pos] = old;
		}
	}
	return 0;
}
