/* Unit tests for base62 encoding and random strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/base62.h"
#include "crypto/keys.h"

static int setup(void **state)
{
	(void)state;
	return crypto_init() == TG_OK ? 0 : -1;
}

static void test_alphabet(void **state)
{
	int c, n = 0;

	(void)state;
	assert_int_equal(strlen(base62_alphabet), 62);
	assert_int_equal(base62_alphabet[0], '0');
	assert_int_equal(base62_alphabet[10], 'A');
	assert_int_equal(base62_alphabet[36], 'a');
	assert_int_equal(base62_alphabet[61], 'z');
	for (c = 0; c < 256; c++) {
		char ch = (char)c;
		int in = memchr(base62_alphabet, c, 62) != NULL && c != 0;

		assert_int_equal(base62_is_valid(&ch, 1), in);
		n += in;
	}
	assert_int_equal(n, 62);
	assert_true(base62_is_valid("", 0));
	assert_true(base62_is_valid(NULL, 0));
	assert_true(base62_is_valid("abcXYZ019", 9));
	assert_false(base62_is_valid("abc-XYZ", 7));
	assert_false(base62_is_valid("abc_", 4));
	/* only n bytes are looked at */
	assert_true(base62_is_valid("abc!", 3));
}

static void test_u32_padding(void **state)
{
	char out[BASE62_U32_LEN + 1];

	(void)state;
	memset(out, 'x', sizeof(out));
	base62_u32(0, out);
	assert_string_equal(out, "000000");
	base62_u32(1, out);
	assert_string_equal(out, "000001");
	base62_u32(61, out);
	assert_string_equal(out, "00000z");
	base62_u32(62, out);
	assert_string_equal(out, "000010");
	base62_u32(62 * 62 * 62 - 1, out);
	assert_string_equal(out, "000zzz");
	base62_u32(UINT32_MAX, out);
	assert_string_equal(out, "4gfFC3");
	base62_u32(0xCBF43926u, out);
	assert_int_equal(strlen(out), 6);
}

static uint32_t decode(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v * 62 + (uint64_t)(strchr(base62_alphabet, s[i]) - base62_alphabet);
	return (uint32_t)v;
}

static void test_u32_roundtrip(void **state)
{
	char out[BASE62_U32_LEN + 1];
	uint32_t v;
	int i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		v = (uint32_t)i * 429497u + (uint32_t)i;
		base62_u32(v, out);
		assert_int_equal(strlen(out), BASE62_U32_LEN);
		assert_true(base62_is_valid(out, BASE62_U32_LEN));
		assert_int_equal(decode(out, BASE62_U32_LEN), v);
	}
}

static void test_random_lengths(void **state)
{
	char buf[130];
	size_t n;

	(void)state;
	for (n = 0; n < 128; n++) {
		memset(buf, '!', sizeof(buf));
		base62_random(buf, n);
		assert_int_equal(strlen(buf), n);
		assert_true(base62_is_valid(buf, n));
		assert_int_equal(buf[n + 1], '!'); /* nothing past the NUL */
	}
}

static void test_random_uniform(void **state)
{
	enum { PER = 2000, TOTAL = 62 * PER };
	char *buf = malloc(TOTAL + 1);
	unsigned counts[256] = { 0 };
	size_t i;
	int d;

	(void)state;
	assert_non_null(buf);
	base62_random(buf, TOTAL);
	for (i = 0; i < TOTAL; i++)
		counts[(unsigned char)buf[i]]++;
	/* each symbol expected PER times, standard deviation about 44 */
	for (d = 0; d < 62; d++) {
		unsigned c = counts[(unsigned char)base62_alphabet[d]];

		assert_in_range(c, PER - 400, PER + 400);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alphabet),       cmocka_unit_test(test_u32_padding),
		cmocka_unit_test(test_u32_roundtrip),  cmocka_unit_test(test_random_lengths),
		cmocka_unit_test(test_random_uniform),
	};
	return cmocka_run_group_tests_name("base62", tests, setup, NULL);
}
