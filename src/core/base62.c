/* base62.c - base62 encoding and random strings; see base62.h. */
#include "core/base62.h"

#include <sodium.h>

const char base62_alphabet[63] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void base62_random(char *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = base62_alphabet[randombytes_uniform(62)];
	out[n] = '\0';
}

void base62_u32(uint32_t v, char out[BASE62_U32_LEN + 1])
{
	int i;

	for (i = BASE62_U32_LEN - 1; i >= 0; i--) {
		out[i] = base62_alphabet[v % 62];
		v /= 62;
	}
	out[BASE62_U32_LEN] = '\0';
}

/* Explicit ranges rather than isalnum(): the result must not depend on the
 * locale. */
static int base62_is_digit(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int base62_is_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!base62_is_digit((unsigned char)s[i]))
			return 0;
	return 1;
}
