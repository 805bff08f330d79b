/* keys.h - library start-up and gateway API keys.
 *
 * An API key is `tg_` + 32 random base62 characters + a 6-character base62
 * checksum (the CRC-32 of the first 35 characters), 41 characters in all:
 *
 *     tg_ 4fQ9...(32)... 0Ab3xZ
 *
 * The checksum lets the gateway reject mistyped or truncated keys before any
 * database lookup. Keys are never stored: the database keeps keys_hash() of
 * the key (keyed with a server-wide pepper, see crypto/secrets.h) and the
 * display prefix (`tg_` + the first 8 random characters).
 *
 * Nothing here allocates; all output goes to caller-provided buffers.
 */
#ifndef TG_KEYS_H
#define TG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

#define KEYS_TAG "tg_"
#define KEYS_TAG_LEN 3
#define KEYS_RANDOM_LEN 32
#define KEYS_CHECK_LEN 6
#define KEYS_LEN (KEYS_TAG_LEN + KEYS_RANDOM_LEN + KEYS_CHECK_LEN) /* 41 */
#define KEYS_PREFIX_LEN (KEYS_TAG_LEN + 8)                         /* 11 */
#define KEYS_HASH_LEN 32
#define KEYS_HASH_HEX_LEN (2 * KEYS_HASH_LEN)
#define KEYS_PEPPER_LEN 32

/* Initialise libsodium. Must succeed before anything in crypto/ or
 * base62_random() is used. Idempotent and safe to call from several threads
 * at once. TG_OK, or TG_EIO when libsodium cannot start (no entropy source). */
int crypto_init(void);

/* CRC-32 as in IEEE 802.3 / zlib / PNG (reflected polynomial 0xEDB88320,
 * initial value and final xor 0xFFFFFFFF); crc32("123456789") == 0xCBF43926. */
uint32_t keys_crc32(const void *p, size_t n);

/* Create a new random key (NUL-terminated, KEYS_LEN chars) and its display
 * prefix (NUL-terminated, KEYS_PREFIX_LEN chars). Always TG_OK. */
int keys_generate(char key[KEYS_LEN + 1], char prefix[KEYS_PREFIX_LEN + 1]);

/* TG_OK when the len bytes at s are a well-formed key with a correct
 * checksum; TG_EINVAL otherwise (wrong length or tag, a character outside
 * base62, checksum mismatch). Reads at most len bytes and does no hashing, so
 * it is cheap enough to run on every request before any lookup. */
int keys_parse(const char *s, size_t len);

/* out = BLAKE2b-256 of the len bytes at key, keyed with pepper. */
void keys_hash(const unsigned char pepper[KEYS_PEPPER_LEN], const char *key, size_t len,
	       unsigned char out[KEYS_HASH_LEN]);

/* 1 when the two hashes are equal, 0 otherwise; constant time. */
int keys_hash_equal(const unsigned char a[KEYS_HASH_LEN], const unsigned char b[KEYS_HASH_LEN]);

/* Copy the display prefix (first KEYS_PREFIX_LEN chars) of key and a NUL.
 * key must hold at least KEYS_PREFIX_LEN bytes (any parsed key does). */
void keys_prefix_of(const char *key, char prefix[KEYS_PREFIX_LEN + 1]);

/* Lower-case hex of a 32-byte hash, NUL-terminated. */
void keys_hash_hex(const unsigned char h[KEYS_HASH_LEN], char out[KEYS_HASH_HEX_LEN + 1]);

/* Parse KEYS_HASH_HEX_LEN hex digits at hex into out. TG_OK, or TG_EINVAL
 * when len is wrong or a character is not a hex digit. */
int keys_hash_from_hex(const char *hex, size_t len, unsigned char out[KEYS_HASH_LEN]);

#endif
