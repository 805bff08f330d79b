/* base62.h - base62 text (alphabet 0-9A-Za-z) for API keys and short ids.
 *
 * All functions write into caller-provided buffers; nothing is allocated.
 * base62_random() draws from libsodium's CSPRNG, so crypto_init() (see
 * crypto/keys.h) must have succeeded before it is used.
 */
#ifndef TG_BASE62_H
#define TG_BASE62_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

/* The 62 symbols, in digit-value order. */
extern const char base62_alphabet[63];

/* Width of base62_u32() output: 62^6 > 2^32, so six digits always suffice. */
#define BASE62_U32_LEN 6

/* Fill out[0..n) with n independent, uniformly chosen base62 characters and
 * write a NUL at out[n]; out must hold n + 1 bytes. */
void base62_random(char *out, size_t n);

/* Encode v as exactly BASE62_U32_LEN digits, most significant first, left-
 * padded with '0', then a NUL. */
void base62_u32(uint32_t v, char out[BASE62_U32_LEN + 1]);

/* 1 when each of the n bytes at s is in the alphabet (also for n == 0),
 * 0 otherwise. Reads exactly n bytes; s may be NULL only when n is 0. */
int base62_is_valid(const char *s, size_t n);

#endif
