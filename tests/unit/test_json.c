/* Unit tests for the checks on untrusted JSON text: UTF-8 and nesting depth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/json.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_int_equal(utf8_valid_prefix(S("")), 0);
	assert_int_equal(utf8_valid_prefix(S("plain ascii {}")), 14);
	assert_int_equal(utf8_valid_prefix(S("caf\xc3\xa9")), 5);      /* U+00E9 */
	assert_int_equal(utf8_valid_prefix(S("\xe2\x82\xac")), 3);     /* U+20AC */
	assert_int_equal(utf8_valid_prefix(S("\xef\xbf\xbf")), 3);     /* U+FFFF */
	assert_int_equal(utf8_valid_prefix(S("\xf0\x9f\x98\x80")), 4); /* U+1F600 */
	assert_int_equal(utf8_valid_prefix(S("\xf4\x8f\xbf\xbf")), 4); /* U+10FFFF */
	assert_int_equal(utf8_valid_prefix(S("a\0b")), 3);             /* NUL is ASCII */
}

static void test_utf8_invalid(void **state)
{
	(void)state;
	assert_int_equal(utf8_valid_prefix(S("ab\xff")), 2);
	assert_int_equal(utf8_valid_prefix(S("ab\x80")), 2);           /* lone continuation */
	assert_int_equal(utf8_valid_prefix(S("\xc3\x28")), 0);         /* bad continuation */
	assert_int_equal(utf8_valid_prefix(S("\xc0\xaf")), 0);         /* overlong '/' */
	assert_int_equal(utf8_valid_prefix(S("\xc1\xbf")), 0);         /* overlong */
	assert_int_equal(utf8_valid_prefix(S("\xe0\x80\xaf")), 0);     /* overlong, 3 bytes */
	assert_int_equal(utf8_valid_prefix(S("\xf0\x80\x80\xaf")), 0); /* overlong, 4 bytes */
	assert_int_equal(utf8_valid_prefix(S("\xed\xa0\x80")), 0);     /* surrogate U+D800 */
	assert_int_equal(utf8_valid_prefix(S("\xf4\x90\x80\x80")), 0); /* U+110000 */
	assert_int_equal(utf8_valid_prefix(S("\xf5\x80\x80\x80")), 0);
	assert_int_equal(utf8_valid_prefix(S("x\xe2\x82")), 1); /* cut by the end */
	assert_int_equal(utf8_valid_prefix(S("x\xf0\x9f\x98")), 1);
	assert_int_equal(utf8_valid_prefix(S("ok\xe2\x82\xac\xe2\x28\xac")), 5);
}

static void test_json_depth(void **state)
{
	char *deep;
	size_t n = 100000;

	(void)state;
	assert_int_equal(json_depth_exceeded(S("{}"), 1), 2);
	assert_int_equal(json_depth_exceeded(S("{\"a\":[1,{\"b\":[]}]}"), 4), 18);
	assert_int_equal(json_depth_exceeded(S("{\"a\":[1,{\"b\":[]}]}"), 3), 13);
	/* Brackets in strings (escaped quotes included) do not count. */
	assert_int_equal(json_depth_exceeded(S("[\"[[[\\\"[[\",\"\\\\\"]"), 1), 16);
	assert_int_equal(json_depth_exceeded(S("[\"\\\\\",[[]]]"), 2), 7);
	/* Siblings do not add up. */
	assert_int_equal(json_depth_exceeded(S("[[],[],[[]]]"), 3), 12);
	/* Unbalanced closers are ignored, not counted below zero. */
	assert_int_equal(json_depth_exceeded(S("]]]][["), 1), 5);

	deep = malloc(n);
	assert_non_null(deep);
	memset(deep, '[', n);
	assert_int_equal(json_depth_exceeded(deep, n, JSON_MAX_DEPTH), JSON_MAX_DEPTH);
	assert_int_equal(json_depth_exceeded(deep, JSON_MAX_DEPTH, JSON_MAX_DEPTH), JSON_MAX_DEPTH);
	free(deep);
}

static void test_json_parse(void **state)
{
	char text[2 * JSON_MAX_DEPTH + 8];
	const char *end = NULL;
	cJSON *j;
	int d;

	(void)state;
	j = json_parse(S("{\"model\":\"m\"}"), NULL);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "m");
	cJSON_Delete(j);
	assert_null(json_parse(S("{\"model\":"), &end));

	/* Exactly JSON_MAX_DEPTH levels parse; one more is refused at its bracket. */
	for (d = 0; d < JSON_MAX_DEPTH; d++) {
		text[d] = '[';
		text[2 * JSON_MAX_DEPTH - 1 - d] = ']';
	}
	j = json_parse(text, 2 * JSON_MAX_DEPTH, NULL);
	assert_non_null(j);
	cJSON_Delete(j);
	memmove(text + 1, text, 2 * JSON_MAX_DEPTH);
	text[0] = '[';
	text[2 * JSON_MAX_DEPTH + 1] = ']';
	assert_null(json_parse(text, 2 * JSON_MAX_DEPTH + 2, &end));
	assert_ptr_equal(end, text + JSON_MAX_DEPTH);
}

/* The arena for one call's cJSON trees: trees built inside the span work
 * like any other, a span that outgrows the arena goes on with malloc, trees
 * from before the span are freed normally inside it, and after the span
 * cJSON is back on malloc (a tree made then outlives the next span). */
static char *big_doc(int items)
{
	size_t cap = (size_t)items * 32 + 16, len = 0;
	char *s = malloc(cap);
	int i;

	assert_non_null(s);
	len += (size_t)snprintf(s + len, cap - len, "[");
	for (i = 0; i < items; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s{\"n\":%d,\"s\":\"x%d\"}",
					i ? "," : "", i, i);
	snprintf(s + len, cap - len, "]");
	return s;
}

static void test_json_arena(void **state)
{
	cJSON *before, *small, *big, *after, *again;
	char *text = big_doc(5000), *out;

	(void)state;
	json_arena_install();
	before = cJSON_Parse("{\"kept\":\"from before\"}");
	assert_non_null(before);

	json_arena_begin();
	if (json_arena_enabled()) {
		char *a = cJSON_malloc(10), *b = cJSON_malloc(10);

		assert_ptr_equal(b, a + 16); /* bump allocation, 16-byte aligned */
		cJSON_free(b);
		cJSON_free(a);
	}
	small = cJSON_Parse("{\"model\":\"m\",\"usage\":{\"prompt_tokens\":3}}");
	assert_non_null(small);
	assert_int_equal(
		cJSON_GetObjectItem(cJSON_GetObjectItem(small, "usage"), "prompt_tokens")->valueint,
		3);
	assert_true(cJSON_SetValuestring(cJSON_GetObjectItem(small, "model"),
					 "a longer model name") != NULL);
	out = cJSON_PrintUnformatted(small);
	assert_string_equal(out,
			    "{\"model\":\"a longer model name\",\"usage\":{\"prompt_tokens\":3}}");
	cJSON_free(out);
	big = cJSON_Parse(text); /* far more than the arena holds */
	assert_non_null(big);
	assert_int_equal(cJSON_GetArraySize(big), 5000);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(big, 4999), "s")->valuestring,
			    "x4999");
	cJSON_Delete(big);
	cJSON_Delete(small);
	cJSON_Delete(before); /* a malloc'ed tree freed inside the span */
	json_arena_end();

	after = cJSON_Parse("{\"made\":\"after\"}");
	assert_non_null(after);
	json_arena_begin();
	again = cJSON_Parse("{\"fills\":\"the arena again\",\"pad\":\"0123456789abcdef\"}");
	assert_non_null(again);
	assert_string_equal(cJSON_GetObjectItem(after, "made")->valuestring, "after");
	cJSON_Delete(again);
	json_arena_end();
	assert_string_equal(cJSON_GetObjectItem(after, "made")->valuestring, "after");
	cJSON_Delete(after);
	json_arena_thread_free();
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_valid), cmocka_unit_test(test_utf8_invalid),
		cmocka_unit_test(test_json_depth), cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_json_arena),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
