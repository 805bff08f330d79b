/* Unit tests for the capped string builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"

static void test_append_and_cstr(void **state)
{
	buf_t b;

	(void)state;
	buf_init(&b, 64);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_puts(&b, "hello"), TG_OK);
	assert_int_equal(buf_putc(&b, ' '), TG_OK);
	assert_int_equal(buf_appendf(&b, "%s-%d", "world", 42), TG_OK);
	assert_string_equal(b.data, "hello world-42");
	assert_int_equal(b.len, 14);
	buf_free(&b);
	assert_null(b.data);
}

static void test_cap_is_enforced_and_leaves_buffer_intact(void **state)
{
	buf_t b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345678"), TG_OK);
	assert_int_equal(buf_putc(&b, '9'), TG_ETOOBIG);
	assert_int_equal(buf_appendf(&b, "%d", 1), TG_ETOOBIG);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(b.len, 8);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_puts(&b, "abc"), TG_OK);
	assert_string_equal(b.data, "abc");
	buf_free(&b);
}

static void test_growth_over_many_appends(void **state)
{
	buf_t b;
	int i;

	(void)state;
	buf_init(&b, 40000);
	for (i = 0; i < 10000; i++)
		assert_int_equal(buf_appendf(&b, "%04d", i % 10000), TG_OK);
	assert_int_equal(b.len, 40000);
	assert_memory_equal(b.data + 39996, "9999", 4);
	assert_int_equal(buf_putc(&b, 'x'), TG_ETOOBIG); /* exactly at the cap */
	buf_free(&b);
}

static void test_html_escape(void **state)
{
	buf_t b;
	const char *in = "<a href=\"x\">Tom & Jerry's</a>";

	(void)state;
	buf_init(&b, 6 * strlen(in)); /* each character at most an entity */
	assert_int_equal(buf_append_html(&b, in, strlen(in)), TG_OK);
	assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
	buf_free(&b);
}

static void test_detach(void **state)
{
	buf_t b;
	char *s;

	(void)state;
	buf_init(&b, 16);
	assert_null(buf_detach(&b));
	buf_puts(&b, "owned");
	s = buf_detach(&b);
	assert_string_equal(s, "owned");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
}

static void test_binary_with_nul(void **state)
{
	buf_t b;

	(void)state;
	buf_init(&b, 3);
	assert_int_equal(buf_append(&b, "a\0b", 3), TG_OK);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	buf_free(&b);
}

/* There is no default cap: 0 means nothing may be appended, as in a zeroed
 * buf_t; a buffer that holds a lot says so with BUF_MAX_LARGE. */
static void test_zero_cap_takes_nothing(void **state)
{
	buf_t b, z;
	char *big;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(b.max, 0);
	assert_int_equal(buf_putc(&b, 'x'), TG_ETOOBIG);
	assert_int_equal(buf_puts(&b, "hello"), TG_ETOOBIG);
	assert_int_equal(buf_appendf(&b, "%d", 1), TG_ETOOBIG);
	assert_int_equal(buf_append_html(&b, "<", 1), TG_ETOOBIG);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(buf_append(&b, "", 0), TG_OK); /* nothing is allowed */
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);

	memset(&z, 0, sizeof(z));
	assert_int_equal(buf_putc(&z, 'x'), TG_ETOOBIG);
	assert_null(z.data);

	big = malloc((size_t)1 << 20);
	assert_non_null(big);
	memset(big, 'a', (size_t)1 << 20);
	buf_init(&b, BUF_MAX_LARGE);
	assert_int_equal(b.max, BUF_MAX_LARGE);
	assert_int_equal(buf_append(&b, big, (size_t)1 << 20), TG_OK);
	assert_int_equal(b.len, (size_t)1 << 20);
	buf_free(&b);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_cstr),
		cmocka_unit_test(test_cap_is_enforced_and_leaves_buffer_intact),
		cmocka_unit_test(test_growth_over_many_appends),
		cmocka_unit_test(test_html_escape),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_binary_with_nul),
		cmocka_unit_test(test_zero_cap_takes_nothing),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
