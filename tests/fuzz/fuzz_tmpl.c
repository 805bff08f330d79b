/* fuzz_tmpl.c - Mustache parsing and rendering.
 *
 * Input: up to three template texts separated by NUL bytes, added as "P0",
 * "P1" and "P2"; P0 is rendered against a small fixed cJSON context (and
 * again with NULL data). Checks: tmpl_set_add() succeeds or fails with
 * TG_EINVAL and a "name:line: what" message; tmpl_render() returns TG_OK,
 * TG_EINVAL (depth), TG_ENOTFOUND (P0 did not parse) or TG_ETOOBIG (output
 * cap), restores the output buffer on failure and renders the same text
 * twice; no crash, no leak, no sanitizer report.
 *
 * Templates are trusted files, and some shapes take exponential time by
 * design: 64 nested sections over a two-element list, or partials that call
 * each other several times over data that ends the recursion. Inputs are
 * limited to shapes that finish: either at most one reference to a template
 * name in all texts and no use of the two-element list, or partials that
 * only point "forward" (P0 -> P1 -> P2) with no blocks and at most three
 * uses of the list.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "tmpl/tmpl.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_tmpl: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static const char context_json[] =
	"{\"name\":\"Tollgate\",\"html\":\"<b>&\\\"'</b>\",\"n\":3,\"f\":1.5,\"neg\":-0.25,"
	"\"big\":1e300,\"t\":true,\"no\":false,\"nil\":null,\"empty\":\"\",\"none\":[],"
	"\"obj\":{\"a\":{\"b\":{\"c\":\"deep\"}},\"x\":1},\"one\":[{\"k\":\"v\","
	"\"name\":\"inner\"}],"
	"\"two\":[1,\"two\"],\"org\":{\"name\":\"Acme & Co\",\"balance\":\"12.50\"}}";

static size_t count(const char *s, size_t n, const char *w)
{
	size_t c = 0, wl = strlen(w), i;

	for (i = 0; i + wl <= n; i++)
		if (memcmp(s + i, w, wl) == 0)
			c++;
	return c;
}

static int bounded(const char **t, const size_t *n, int parts)
{
	static const char *const names[3] = { "P0", "P1", "P2" };
	size_t refs = 0, lists = 0;
	int i, j, forward = 1, blocks = 0;

	for (i = 0; i < parts; i++) {
		lists += count(t[i], n[i], "two");
		blocks |= memchr(t[i], '$', n[i]) != NULL;
		for (j = 0; j < 3; j++) {
			size_t c = count(t[i], n[i], names[j]);

			refs += c;
			if (c && j <= i)
				forward = 0;
		}
	}
	if (refs <= 1 && lists == 0)
		return 1;
	return forward && !blocks && lists <= 3;
}

static void render_check(const tmpl_set_t *set, const cJSON *ctx, int added)
{
	buf_t a, b;
	int rc, rc2;

	buf_init(&a, (size_t)1 << 20);
	buf_init(&b, (size_t)1 << 20);
	CHECK(buf_puts(&a, "prefix") == TG_OK);
	CHECK(buf_puts(&b, "prefix") == TG_OK);
	rc = tmpl_render(set, "P0", ctx, &a);
	CHECK(rc == TG_OK || rc == TG_EINVAL || rc == TG_ENOTFOUND || rc == TG_ETOOBIG);
	if (!added)
		CHECK(rc == TG_ENOTFOUND);
	if (rc != TG_OK)
		CHECK(a.len == 6 && memcmp(a.data, "prefix", 6) == 0);
	rc2 = tmpl_render(set, "P0", ctx, &b);
	CHECK(rc == rc2);
	CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cJSON *ctx;
	static const char *const names[3] = { "P0", "P1", "P2" };
	const char *t[3];
	size_t n[3], off = 0;
	tmpl_set_t *set = NULL;
	char err[128];
	int parts = 0, i, rc, added = 0;

	if (!ctx) {
		ctx = cJSON_Parse(context_json);
		CHECK(ctx != NULL);
	}
	while (parts < 3) {
		const uint8_t *z = memchr(data + off, 0, size - off);
		size_t end = z ? (size_t)(z - data) : size;

		t[parts] = (const char *)data + off;
		n[parts] = end - off;
		parts++;
		if (!z)
			break;
		off = end + 1;
	}
	if (!bounded(t, n, parts))
		return 0;

	CHECK(tmpl_set_new(&set) == TG_OK);
	for (i = 0; i < parts; i++) {
		char *copy = malloc(n[i] ? n[i] : 1); /* exact size: reads past the end show */

		CHECK(copy != NULL);
		memcpy(copy, t[i], n[i]);
		memset(err, 'x', sizeof(err));
		rc = tmpl_set_add(set, names[i], copy, n[i], err, sizeof(err));
		free(copy);
		CHECK(rc == TG_OK || rc == TG_EINVAL);
		if (rc == TG_OK) {
			if (i == 0)
				added = 1;
		} else {
			CHECK(memchr(err, '\0', sizeof(err)) != NULL);
			CHECK(strncmp(err, names[i], 2) == 0 && err[2] == ':');
		}
	}
	render_check(set, ctx, added);
	render_check(set, NULL, added);
	tmpl_set_free(set);
	return 0;
}
