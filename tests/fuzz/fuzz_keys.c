/* fuzz_keys.c - API key parsing and checksums.
 *
 * 1. keys_parse() on the raw input, from an exact-size heap copy (a read past
 *    len is caught); its answer must match an independent reference check
 *    (length 41, "tg_", base62, CRC-32 of the first 35 characters written as
 *    six base62 digits).
 * 2. A key built from the input (32 bytes mapped onto base62, plus a correct
 *    checksum) always parses; any single-character change of it, a truncation
 *    or an extension never does.
 * 3. keys_crc32() equals a bitwise CRC-32; keys_hash_from_hex() accepts
 *    exactly 64 hex digits and round-trips with keys_hash_hex().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base62.h"
#include "crypto/keys.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_keys: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static uint32_t ref_crc32(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return c ^ 0xFFFFFFFFu;
}

static void ref_check(const char *s35, char out[6])
{
	uint32_t v = ref_crc32((const unsigned char *)s35, 35);
	int i;

	for (i = 5; i >= 0; i--) {
		out[i] = alpha[v % 62];
		v /= 62;
	}
}

static int is_b62(unsigned char c)
{
	return c && strchr(alpha, c) != NULL;
}

static int ref_parse(const char *s, size_t n)
{
	char chk[6];
	size_t i;

	if (n != 41 || memcmp(s, "tg_", 3) != 0)
		return 0;
	for (i = 3; i < n; i++)
		if (!is_b62((unsigned char)s[i]))
			return 0;
	ref_check(s, chk);
	return memcmp(s + 35, chk, 6) == 0;
}

static int parse_copy(const char *s, size_t n)
{
	char *c = malloc(n ? n : 1);
	int rc;

	CHECK(c != NULL);
	memcpy(c, s, n);
	rc = keys_parse(c, n);
	free(c);
	CHECK(rc == TG_OK || rc == TG_EINVAL);
	return rc == TG_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char key[KEYS_LEN + 2], prefix[KEYS_PREFIX_LEN + 1], hex[KEYS_HASH_HEX_LEN + 1];
	unsigned char h[KEYS_HASH_LEN], h2[KEYS_HASH_LEN];
	size_t i;
	int ok;

	/* 1: the raw bytes */
	ok = parse_copy((const char *)data, size);
	CHECK(ok == ref_parse((const char *)data, size));
	CHECK(keys_crc32(data, size) == ref_crc32(data, size));

	/* 2: a well-formed key from the bytes */
	memcpy(key, "tg_", 3);
	for (i = 0; i < KEYS_RANDOM_LEN; i++)
		key[3 + i] = alpha[(i < size ? data[i] : (uint8_t)i) % 62];
	ref_check(key, key + 35);
	key[KEYS_LEN] = '\0';
	CHECK(parse_copy(key, KEYS_LEN));
	CHECK(!parse_copy(key, KEYS_LEN - 1));
	key[KEYS_LEN] = alpha[size % 62];
	CHECK(!parse_copy(key, KEYS_LEN + 1));
	keys_prefix_of(key, prefix);
	CHECK(strlen(prefix) == KEYS_PREFIX_LEN && memcmp(prefix, key, KEYS_PREFIX_LEN) == 0);
	if (size > 33) {
		/* change one character (position and new value from the input) */
		size_t pos = data[32] % KEYS_LEN;
		char old = key[pos], nc;

		nc = pos < 3 ? (char)data[33] : alpha[data[33] % 62];
		if (nc != old) {
			key[pos] = nc;
			CHECK(!parse_copy(key, KEYS_LEN));
			key[pos] = old;
		}
	}

	/* 3: hash hex round trip */
	{
		char *c = malloc(size ? size : 1);
		int rc, want = size == KEYS_HASH_HEX_LEN;

		CHECK(c != NULL);
		memcpy(c, data, size);
		for (i = 0; want && i < size; i++)
			if (!strchr("0123456789abcdefABCDEF", data[i]) || !data[i])
				want = 0;
		rc = keys_hash_from_hex(c, size, h);
		free(c);
		CHECK((rc == TG_OK) == want);
		if (want) {
			keys_hash_hex(h, hex);
			CHECK(keys_hash_from_hex(hex, KEYS_HASH_HEX_LEN, h2) == TG_OK);
			CHECK(memcmp(h, h2, KEYS_HASH_LEN) == 0);
			for (i = 0; i < KEYS_HASH_HEX_LEN; i++)
				CHECK(hex[i] == (char)(data[i] >= 'A' && data[i] <= 'F' ?
							       data[i] + 32 :
							       data[i]));
		}
	}
	return 0;
}
