/* Unit tests for the JSON text scanner (json_member) and string
 * writer (json_put_string): a table of cases, then a property test over
 * seeded pseudo-random documents checked against cJSON. Whenever the scanner
 * finds a member, the span parsed alone must equal the member cJSON finds,
 * and replacing the span with a string written by json_put_string must
 * give the document cJSON gets by replacing that member; when it finds
 * nothing, cJSON must find nothing either, and a refusal (-1) needs one of
 * the reasons the scanner names (a repeated name, a key with escapes).
 *
 * TG_GW_JSON_SEED=N reruns another sequence; the seed is printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json_text.h"

#define DOCS 600
#define CUTS 4

/* ------------------------------------------------------------ the table */

struct member_case {
	const char *doc;
	size_t len; /* 0: strlen(doc) */
	const char *name;
	int want;
	const char *span; /* the value's text when want == 1 */
};

static const struct member_case member_cases[] = {
	/* absent and present */
	{ "{\"a\":1}", 0, "a", 1, "1" },
	{ "{\"a\":1}", 0, "b", 0, NULL },
	{ "{\"ab\":1}", 0, "a", 0, NULL },
	{ "{\"a\":1}", 0, "ab", 0, NULL },
	{ "{\"\":7,\"a\":1}", 0, "", 1, "7" },
	{ "{\"x\":\"a\"}", 0, "a", 0, NULL },
	{ "{\"model\":\"gpt\",\"messages\":[]}", 0, "model", 1, "\"gpt\"" },
	{ "{\"messages\":[],\"model\":\"gpt\"}", 0, "messages", 1, "[]" },
	/* the empty object */
	{ "{}", 0, "a", 0, NULL },
	{ " \t\r\n{ \n }\r\n ", 0, "a", 0, NULL },
	/* scalars */
	{ "{\"a\":-1.5e+3,\"b\":true}", 0, "a", 1, "-1.5e+3" },
	{ "{\"a\":-1.5e+3,\"b\":true}", 0, "b", 1, "true" },
	{ "{\"a\":false,\"b\":null}", 0, "b", 1, "null" },
	{ "{\"a\":0}", 0, "a", 1, "0" },
	{ "{\"a\":1E-2 }", 0, "a", 1, "1E-2" },
	/* nested objects and arrays: only top-level members count */
	{ "{\"x\":{\"model\":\"no\"},\"model\":\"yes\"}", 0, "model", 1, "\"yes\"" },
	{ "{\"x\":{\"model\":\"no\"}}", 0, "model", 0, NULL },
	{ "{\"x\":[{\"model\":1},[\"model\"]]}", 0, "model", 0, NULL },
	{ "{\"x\":{\"a\":{\"b\":[1,[2,{\"c\":{}}]]}},\"y\":2}", 0, "x", 1,
	  "{\"a\":{\"b\":[1,[2,{\"c\":{}}]]}}" },
	{ "{\"a\":[1,{\"b\":\"]}\"},[]],\"b\":2}", 0, "a", 1, "[1,{\"b\":\"]}\"},[]]" },
	{ "{\"a\":[1,{\"b\":\"]}\"},[]],\"b\":2}", 0, "b", 1, "2" },
	/* strings holding escaped quotes, backslashes, brackets and keys */
	{ "{\"a\":\"he said \\\"}\\\" [\",\"model\":\"m\"}", 0, "model", 1, "\"m\"" },
	{ "{\"a\":\"he said \\\"}\\\" [\",\"model\":\"m\"}", 0, "a", 1, "\"he said \\\"}\\\" [\"" },
	{ "{\"a\":\"\\\\\",\"b\":1}", 0, "b", 1, "1" },
	{ "{\"a\":\"\\\\\\\"\",\"b\":1}", 0, "a", 1, "\"\\\\\\\"\"" },
	{ "{\"a\":\",\\\"model\\\":\\\"x\\\"\"}", 0, "model", 0, NULL },
	{ "{\"a\":\"\\u005d\\u007d\",\"b\":[\"\\\"]\"]}", 0, "b", 1, "[\"\\\"]\"]" },
	{ "{\"x\":{\"mod\\u0065l\":1},\"model\":\"m\"}", 0, "model", 1, "\"m\"" },
	/* a duplicate of the name: which one counts is the parser's choice */
	{ "{\"a\":1,\"a\":2}", 0, "a", -1, NULL },
	{ "{\"a\":1,\"b\":{},\"a\":1}", 0, "a", -1, NULL },
	/* keys spelled with escapes */
	{ "{\"mod\\u0065l\":\"x\"}", 0, "model", -1, NULL },
	{ "{\"a\\\"b\":1,\"model\":\"x\"}", 0, "model", -1, NULL },
	{ "{\"model\":\"x\",\"\\n\":1}", 0, "model", -1, NULL },
	/* trailing garbage */
	{ "{\"a\":1}x", 0, "a", -1, NULL },
	{ "{\"a\":1}{}", 0, "a", -1, NULL },
	{ "{\"a\":1} }", 0, "a", -1, NULL },
	{ "{\"a\":1},", 0, "a", -1, NULL },
	/* whitespace around and between tokens */
	{ " \t\r\n{ \"a\" : 1 , \"b\" :\n[ ] }\n ", 0, "a", 1, "1" },
	{ " \t\r\n{ \"a\" : 1 , \"b\" :\n[ ] }\n ", 0, "b", 1, "[ ]" },
	{ "{\"a\":\t\"s\"\r\n}", 0, "a", 1, "\"s\"" },
	/* raw control bytes: JSON forbids them, cJSON lets some pass */
	{ "{\"a\":\"x\001y\",\"b\":1}", 0, "b", -1, NULL },
	{ "{\"a\":1,\013\"b\":2}", 0, "a", -1, NULL },
	{ "\014{\"a\":1}", 0, "a", -1, NULL },
	{ "{\"a\":[1,\0132]}", 0, "a", -1, NULL },
	{ "{\"a\":\"x\0y\"}", 11, "a", -1, NULL },
	{ "{\"a\":1}\0", 8, "a", -1, NULL },
	{ "{\"a\x1f\":1}", 0, "a", -1, NULL },
	/* not one object */
	{ "", 0, "a", -1, NULL },
	{ "   ", 0, "a", -1, NULL },
	{ "[1]", 0, "a", -1, NULL },
	{ "\"a\"", 0, "a", -1, NULL },
	{ "1", 0, "a", -1, NULL },
	/* cut short */
	{ "{", 0, "a", -1, NULL },
	{ "{\"a\":1", 0, "a", -1, NULL },
	{ "{\"a\":", 0, "a", -1, NULL },
	{ "{\"a\"", 0, "a", -1, NULL },
	{ "{\"a\":\"x", 0, "a", -1, NULL },
	{ "{\"a\":\"\\", 0, "a", -1, NULL },
	{ "{\"a\":{\"b\":1}", 0, "a", -1, NULL },
	{ "{\"a\":[1,2}", 0, "a", -1, NULL },
	{ "{\"a\":1,}", 0, "a", -1, NULL },
	{ "{\"a\" 1}", 0, "a", -1, NULL },
	{ "{a:1}", 0, "a", -1, NULL },
	/* the length is honoured: the text past n is not looked at */
	{ "{\"a\":1}{\"b\":2}", 7, "a", 1, "1" },
	{ "{\"a\":\"xyz\"}", 8, "a", -1, NULL },
};

static void test_member_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(member_cases) / sizeof(member_cases[0]); i++) {
		const struct member_case *c = &member_cases[i];
		size_t n = c->len ? c->len : strlen(c->doc), vs = 0, ve = 0;
		int got = json_member(c->doc, n, c->name, &vs, &ve);

		if (got != c->want)
			fail_msg("case %zu: json_member(%s, \"%s\") = %d, want %d", i, c->doc,
				 c->name, got, c->want);
		if (c->want == 1) {
			assert_true(vs <= ve && ve <= n);
			if (ve - vs != strlen(c->span) ||
			    memcmp(c->doc + vs, c->span, ve - vs) != 0)
				fail_msg("case %zu: span [%.*s], want [%s]", i, (int)(ve - vs),
					 c->doc + vs, c->span);
		}
	}
}

/* Nesting up to the scanner's limit is fine; past it the answer is -1. */
static void test_member_depth(void **state)
{
	static const size_t depths[] = { 1, 100, 511, 512, 513, 2000 };
	size_t d, i;

	(void)state;
	for (d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
		size_t depth = depths[d], vs = 0, ve = 0;
		buf_t b;
		int got;

		buf_init(&b, (size_t)1 << 20);
		assert_int_equal(buf_puts(&b, "{\"a\":"), TG_OK);
		for (i = 0; i < depth; i++)
			assert_int_equal(buf_putc(&b, '['), TG_OK);
		for (i = 0; i < depth; i++)
			assert_int_equal(buf_putc(&b, ']'), TG_OK);
		assert_int_equal(buf_puts(&b, ",\"b\":2}"), TG_OK);
		got = json_member(b.data, b.len, "b", &vs, &ve);
		if (depth <= 512) {
			assert_int_equal(got, 1);
			assert_int_equal(ve - vs, 1);
			assert_int_equal(b.data[vs], '2');
		} else {
			assert_int_equal(got, -1);
		}
		buf_free(&b);
	}
}

static void expect_put(const char *in, const char *want)
{
	buf_t b;

	buf_init(&b, (size_t)1 << 20);
	assert_int_equal(json_put_string(&b, in), TG_OK);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void test_put_string_table(void **state)
{
	(void)state;
	expect_put("", "\"\"");
	expect_put("gpt-4o-mini", "\"gpt-4o-mini\"");
	expect_put("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	expect_put("\n\t\r\b\f", "\"\\u000a\\u0009\\u000d\\u0008\\u000c\"");
	expect_put("\001\037 ~\177", "\"\\u0001\\u001f ~\177\"");
	expect_put("caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"");
	expect_put("}]\",", "\"}]\\\",\"");
}

/* Every byte but NUL survives a round trip through cJSON. */
static void test_put_string_round_trip(void **state)
{
	char all[256];
	cJSON *j;
	buf_t b;
	int i;

	(void)state;
	for (i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	buf_init(&b, (size_t)1 << 20);
	assert_int_equal(json_put_string(&b, all), TG_OK);
	for (i = 0; i < (int)b.len; i++)
		assert_true((unsigned char)b.data[i] >= 0x20); /* no raw control byte */
	j = cJSON_ParseWithLengthOpts(b.data, b.len, NULL, 0);
	assert_non_null(j);
	assert_true(cJSON_IsString(j));
	assert_string_equal(j->valuestring, all);
	cJSON_Delete(j);
	buf_free(&b);
}

/* A buffer at its cap refuses the string instead of truncating it. */
static void test_put_string_cap(void **state)
{
	buf_t b;

	(void)state;
	buf_init(&b, 4);
	assert_int_not_equal(json_put_string(&b, "abcd"), TG_OK);
	assert_true(b.len <= 4);
	buf_free(&b);
	buf_init(&b, 6);
	assert_int_equal(json_put_string(&b, "abcd"), TG_OK);
	assert_string_equal(buf_cstr(&b), "\"abcd\"");
	buf_free(&b);
	buf_init(&b, 6);
	assert_int_not_equal(json_put_string(&b, "\001"), TG_OK); /* "\u0001" is 8 bytes */
	buf_free(&b);
}

/* ------------------------------------------------------- the property */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned pick(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void put(buf_t *b, const char *s)
{
	assert_int_equal(buf_puts(b, s), TG_OK);
}

static void gen_ws(buf_t *b)
{
	static const char ws[] = " \t\n\r";
	unsigned n = pick(4) == 0 ? pick(4) : 0;

	while (n--)
		assert_int_equal(buf_putc(b, ws[pick(4)]), TG_OK);
}

/* String bodies that look like JSON structure or the names looked for. */
static const char *const pieces[] = {
	"a",       "model",          "x y",      "{",         "}",   "[",    "]",       ",",
	":",       "\\\"",           "\\\\",     "\\/",       "\\n", "\\t",  "\\u00e9", "\\u005d",
	"\\u007b", "\\\"model\\\":", "\xc3\xa9", "\\b\\f\\r", "0",   "true",
};

static void gen_string(buf_t *b)
{
	unsigned n = pick(5);

	put(b, "\"");
	while (n--)
		put(b, pieces[pick(sizeof(pieces) / sizeof(pieces[0]))]);
	put(b, "\"");
}

/* Names the property looks up; the documents use them as keys. */
static const char *const names[] = { "model", "a", "usage", "stream_options", "x", "", "cost" };
#define NNAMES (sizeof(names) / sizeof(names[0]))
/* Keys spelled with escapes, and what cJSON decodes them to. */
static const char *const escaped_keys[][2] = {
	{ "mod\\u0065l", "model" },
	{ "a\\\"b", "a\"b" },
	{ "\\u0061", "a" },
	{ "x\\n", "x\n" },
};
#define NESCAPED (sizeof(escaped_keys) / sizeof(escaped_keys[0]))

/* A key: one of the names, sometimes spelled with escapes. In nested
 * objects (used != NULL) keys are distinct once decoded, so cJSON_Compare,
 * which looks members up by name, can compare them; the top level may repeat
 * a name. */
static void gen_key(buf_t *b, int *escaped, const char **used, size_t *nused)
{
	const char *raw, *decoded;
	size_t i;

	for (;;) {
		if (pick(12) == 0) {
			i = pick(NESCAPED);
			raw = escaped_keys[i][0];
			decoded = escaped_keys[i][1];
		} else {
			raw = decoded = names[pick(NNAMES)];
		}
		if (!used)
			break;
		for (i = 0; i < *nused && strcmp(used[i], decoded) != 0; i++)
			;
		if (i == *nused) {
			used[(*nused)++] = decoded;
			break;
		}
	}
	if (raw != decoded)
		*escaped = 1;
	put(b, "\"");
	put(b, raw);
	put(b, "\"");
}

static void gen_value(buf_t *b, int depth);

static void gen_members(buf_t *b, int depth, unsigned n, int *escaped)
{
	const char *used[NNAMES + NESCAPED];
	size_t nused = 0;
	unsigned i;

	put(b, "{");
	gen_ws(b);
	for (i = 0; i < n; i++) {
		if (i) {
			put(b, ",");
			gen_ws(b);
		}
		gen_key(b, escaped, depth > 0 ? used : NULL, &nused);
		gen_ws(b);
		put(b, ":");
		gen_ws(b);
		gen_value(b, depth + 1);
		gen_ws(b);
	}
	put(b, "}");
}

static void gen_value(buf_t *b, int depth)
{
	static const char *const numbers[] = {
		"0", "-0", "12", "-7", "3.25", "1e3", "-2.5E-2", "1E+2", "123456789012", "0.5e-10"
	};
	static const char *const literals[] = { "true", "false", "null" };
	unsigned kind = pick(depth >= 4 ? 3 : 5), i, n;
	int ignored = 0;

	switch (kind) {
	case 0:
		gen_string(b);
		break;
	case 1:
		put(b, numbers[pick(sizeof(numbers) / sizeof(numbers[0]))]);
		break;
	case 2:
		put(b, literals[pick(3)]);
		break;
	case 3:
		gen_members(b, depth, pick(4), &ignored);
		break;
	default:
		n = pick(4);
		put(b, "[");
		gen_ws(b);
		for (i = 0; i < n; i++) {
			if (i) {
				put(b, ",");
				gen_ws(b);
			}
			gen_value(b, depth + 1);
			gen_ws(b);
		}
		put(b, "]");
		break;
	}
}

static size_t count_members(const cJSON *obj, const char *name)
{
	const cJSON *it;
	size_t n = 0;

	cJSON_ArrayForEach(it, obj)
		n += strcmp(it->string, name) == 0;
	return n;
}

/* Equal in order, member by member: cJSON_Compare looks members up by name,
 * which a top level holding a name twice defeats. */
static int same_in_order(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	if (!cJSON_IsObject(a) && !cJSON_IsArray(a))
		return cJSON_Compare(a, b, 1);
	for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
		if ((cJSON_IsObject(a) && strcmp(x->string, y->string) != 0) ||
		    !same_in_order(x, y))
			return 0;
	return !x && !y;
}

/* A string for the splice: quotes, backslashes, control bytes, UTF-8. */
static void gen_plain(char *out, size_t cap)
{
	static const char chars[] = "ab\"\\/{}[],: \n\t\001\037\xc3\xa9";
	size_t n = pick((unsigned)cap - 1), i;

	for (i = 0; i < n; i++)
		out[i] = chars[pick(sizeof(chars) - 1)];
	out[n] = '\0';
}

/* The span alone parses to the member cJSON finds, and the document with the
 * span replaced is the document cJSON gets by replacing the member. */
static void check_found(const char *doc, size_t n, const cJSON *root, const char *name, size_t vs,
			size_t ve)
{
	char *span, *spliced, plain[24];
	const char *end = NULL;
	cJSON *alone, *edited, *want;
	buf_t text, out;

	assert_true(vs < ve && ve <= n);
	span = strndup(doc + vs, ve - vs);
	assert_non_null(span);
	alone = cJSON_ParseWithOpts(span, &end, 1);
	if (!alone)
		fail_msg("the span of \"%s\" does not parse alone: [%s] in %s", name, span, doc);
	if (!cJSON_Compare(alone, cJSON_GetObjectItemCaseSensitive(root, name), 1))
		fail_msg("the span of \"%s\" differs from cJSON's member: [%s] in %s", name, span,
			 doc);
	cJSON_Delete(alone);
	free(span);

	gen_plain(plain, sizeof(plain));
	buf_init(&text, (size_t)1 << 20);
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(json_put_string(&text, plain), TG_OK);
	assert_int_equal(buf_append(&out, doc, vs), TG_OK);
	assert_int_equal(buf_append(&out, text.data, text.len), TG_OK);
	assert_int_equal(buf_append(&out, doc + ve, n - ve), TG_OK);
	spliced = buf_detach(&out);
	edited = cJSON_ParseWithOpts(spliced, NULL, 1);
	if (!edited)
		fail_msg("the spliced document does not parse: %s", spliced);
	want = cJSON_Duplicate(root, 1);
	assert_non_null(want);
	assert_true(cJSON_ReplaceItemInObjectCaseSensitive(want, name, cJSON_CreateString(plain)));
	if (!same_in_order(edited, want))
		fail_msg("the spliced document differs from cJSON's edit of \"%s\": %s", name,
			 spliced);
	/* And the scanner finds the new value where it was put. */
	{
		size_t vs2 = 0, ve2 = 0;

		assert_int_equal(json_member(spliced, strlen(spliced), name, &vs2, &ve2), 1);
		assert_int_equal(vs2, vs);
		assert_int_equal(ve2, vs + text.len);
	}
	cJSON_Delete(want);
	cJSON_Delete(edited);
	free(spliced);
	buf_free(&text);
}

static void test_member_property(void **state)
{
	const char *env = getenv("TG_GW_JSON_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : 20261123;
	size_t found = 0, absent = 0, refused = 0, doc_i, k;

	(void)state;
	rng_state = seed;
	printf("gw_json property seed %llu\n", (unsigned long long)seed);
	for (doc_i = 0; doc_i < DOCS; doc_i++) {
		int escaped = 0;
		cJSON *root;
		buf_t b;
		size_t n;

		buf_init(&b, (size_t)1 << 20);
		gen_ws(&b);
		gen_members(&b, 0, pick(7), &escaped);
		gen_ws(&b);
		n = b.len;
		root = cJSON_ParseWithOpts(b.data, NULL, 1);
		if (!cJSON_IsObject(root))
			fail_msg("the generator wrote invalid JSON: %s", b.data);

		for (k = 0; k < NNAMES + 2; k++) {
			const char *name = k < NNAMES ? names[k] : k == NNAMES ? "mode" : "missing";
			size_t vs = 0, ve = 0, count = count_members(root, name);
			int got = json_member(b.data, n, name, &vs, &ve);

			if (got == 1) {
				if (count != 1)
					fail_msg("found \"%s\" but cJSON has %zu of it: %s", name,
						 count, b.data);
				check_found(b.data, n, root, name, vs, ve);
				found++;
			} else if (got == 0) {
				if (count != 0)
					fail_msg("\"%s\" not found but cJSON has %zu of it: %s",
						 name, count, b.data);
				absent++;
			} else {
				assert_int_equal(got, -1);
				/* Refused only for a reason the scanner names. */
				if (!escaped && count < 2)
					fail_msg("\"%s\" refused in a plain document: %s", name,
						 b.data);
				refused++;
			}
		}

		/* A cut inside the object is never taken for an object. */
		for (k = 0; k < CUTS; k++) {
			size_t vs, ve, last = n, cut;

			while (last > 0 && b.data[last - 1] != '}')
				last--;
			cut = pick((unsigned)last);
			assert_int_equal(json_member(b.data, cut, "a", &vs, &ve), -1);
		}
		cJSON_Delete(root);
		buf_free(&b);
	}
	printf("gw_json property: %zu found, %zu absent, %zu refused\n", found, absent, refused);
	/* The documents exercise every answer. */
	assert_true(found > DOCS);
	assert_true(absent > DOCS);
	assert_true(refused > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_table),
		cmocka_unit_test(test_member_depth),
		cmocka_unit_test(test_put_string_table),
		cmocka_unit_test(test_put_string_round_trip),
		cmocka_unit_test(test_put_string_cap),
		cmocka_unit_test(test_member_property),
	};
	return cmocka_run_group_tests_name("gw_json", tests, NULL, NULL);
}
