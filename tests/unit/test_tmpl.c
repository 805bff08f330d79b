/* Unit tests for the Mustache renderer: the official spec suite plus
 * escaping, directory loading, errors, recursion limits and threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "tmpl/tmpl.h"

/* ---- helpers ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		data = malloc((size_t)n + 1);
		if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
			free(data);
			data = NULL;
		} else if (data) {
			data[n] = '\0';
		}
	}
	fclose(f);
	return data;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Render `text` (added as "t") with JSON data; returns a heap string. */
static char *render_text(const char *text, const char *json)
{
	tmpl_set_t *s = NULL;
	cJSON *data = json ? cJSON_Parse(json) : NULL;
	char err[256];
	buf_t out;
	char *res;

	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_add(s, "t", text, strlen(text), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_render(s, "t", data, &out), TG_OK);
	res = strdup(buf_cstr(&out));
	buf_free(&out);
	cJSON_Delete(data);
	tmpl_set_free(s);
	return res;
}

/* Print s with control characters made visible. */
static void print_visible(const char *label, const char *s)
{
	printf("    %s: \"", label);
	for (; *s; s++) {
		if (*s == '\n')
			printf("\\n");
		else if (*s == '\r')
			printf("\\r");
		else if (*s == '\t')
			printf("\\t");
		else
			putchar(*s);
	}
	printf("\"\n");
}

/* ---- the official spec ---- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run one spec case; returns 1 when it passes. */
static int run_case(const char *file, const cJSON *tc)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(tc, "name");
	const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(tc, "template");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(tc, "expected");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(tc, "data");
	const cJSON *partials = cJSON_GetObjectItemCaseSensitive(tc, "partials");
	const cJSON *pt;
	const char *main_name = "spec-template";
	tmpl_set_t *s = NULL;
	char err[256] = "";
	buf_t out;
	int rc, ok = 0;

	buf_init(&out, (size_t)1 << 20);
	if (!cJSON_IsString(name) || !cJSON_IsString(tpl) || !cJSON_IsString(exp)) {
		printf("  FAIL %s: malformed case\n", file);
		return 0;
	}
	if (tmpl_set_new(&s))
		goto out;
	cJSON_ArrayForEach(pt, partials) {
		if (!cJSON_IsString(pt))
			continue;
		rc = tmpl_set_add(s, pt->string, pt->valuestring, strlen(pt->valuestring), err,
				  sizeof err);
		if (rc) {
			printf("  FAIL %s / %s: partial '%s': %s (%s)\n", file, name->valuestring,
			       pt->string, err, tg_strerror(rc));
			goto out;
		}
	}
	rc = tmpl_set_add(s, main_name, tpl->valuestring, strlen(tpl->valuestring), err,
			  sizeof err);
	if (rc) {
		printf("  FAIL %s / %s: %s (%s)\n", file, name->valuestring, err, tg_strerror(rc));
		goto out;
	}
	rc = tmpl_render(s, main_name, data, &out);
	if (rc) {
		printf("  FAIL %s / %s: render: %s\n", file, name->valuestring, tg_strerror(rc));
		goto out;
	}
	if (strcmp(buf_cstr(&out), exp->valuestring)) {
		printf("  FAIL %s / %s\n", file, name->valuestring);
		print_visible("template", tpl->valuestring);
		print_visible("expected", exp->valuestring);
		print_visible("got     ", buf_cstr(&out));
		goto out;
	}
	ok = 1;
out:
	buf_free(&out);
	tmpl_set_free(s);
	return ok;
}

static void test_mustache_spec(void **state)
{
	const char *root = getenv("TG_SOURCE_DIR");
	char dir[4096], path[4200];
	char *names[64], *text;
	size_t nnames = 0, i;
	struct dirent *de;
	cJSON *doc, *tc;
	int total = 0, passed = 0, nfiles = 0;
	DIR *d;

	(void)state;
	if (!root || !*root)
		fail_msg("TG_SOURCE_DIR is not set; run this test through ctest");
	snprintf(dir, sizeof dir, "%s/tests/fixtures/mustache", root);
	d = opendir(dir);
	if (!d)
		fail_msg("cannot open spec directory %s", dir);
	while ((de = readdir(d)) && nnames < TG_ARRAY_LEN(names)) {
		size_t n = strlen(de->d_name);

		if (n > 5 && !strcmp(de->d_name + n - 5, ".json"))
			names[nnames++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, nnames, sizeof names[0], cmp_names);

	for (i = 0; i < nnames; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		text = slurp(path);
		assert_non_null(text);
		doc = cJSON_Parse(text);
		free(text);
		if (!doc)
			fail_msg("%s is not valid JSON", path);
		nfiles++;
		cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(doc, "tests")) {
			total++;
			passed += run_case(names[i], tc);
		}
		cJSON_Delete(doc);
	}
	for (i = 0; i < nnames; i++)
		free(names[i]);
	printf("mustache spec: %d/%d passed (%d files)\n", passed, total, nfiles);
	assert_int_equal(nfiles, 7);
	assert_true(total > 0);
	assert_int_equal(passed, total);
}

/* ---- focused tests ---- */

static void test_escaping(void **state)
{
	const char *data = "{\"x\": \"a&b<c>d\\\"e'f\"}";
	char *r;

	(void)state;
	r = render_text("{{x}}|{{{x}}}|{{&x}}", data);
	assert_string_equal(r, "a&amp;b&lt;c&gt;d&quot;e&#39;f|a&b<c>d\"e'f|a&b<c>d\"e'f");
	free(r);
	/* Template text itself is never escaped. */
	r = render_text("<p class=\"x\">&</p>", NULL);
	assert_string_equal(r, "<p class=\"x\">&</p>");
	free(r);
}

static void test_values_and_truthiness(void **state)
{
	char *r;

	(void)state;
	r = render_text("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}} [{{h}}] [{{i}}]",
			"{\"a\": 3, \"b\": 1.5, \"c\": -0.25, \"d\": 1e21, \"e\": 123456789012,"
			" \"f\": 0.1, \"g\": true, \"h\": false, \"i\": null}");
	assert_string_equal(r, "3 1.5 -0.25 1e+21 123456789012 0.1 true [] []");
	free(r);
	r = render_text("{{#s}}s{{/s}}{{^s}}!s{{/s}} {{#l}}l{{/l}}{{^l}}!l{{/l}} "
			"{{#z}}z{{/z}} {{#o}}o{{/o}}",
			"{\"s\": \"\", \"l\": [], \"z\": 0, \"o\": {}}");
	assert_string_equal(r, "!s !l z o");
	free(r);
	/* Lists iterate, objects push context, dotted names descend. */
	r = render_text(
		"{{#items}}<{{name}}:{{meta.n}}>{{/items}}",
		"{\"items\": [{\"name\": \"a\", \"meta\": {\"n\": 1}}, {\"name\": \"b\"}]}");
	assert_string_equal(r, "<a:1><b:>");
	free(r);
}

static void test_inheritance_layout(void **state)
{
	tmpl_set_t *s = NULL;
	const char *layout = "<html>\n"
			     "  <title>{{$title}}Tollgate{{/title}}</title>\n"
			     "  <body>\n"
			     "    {{$body}}\n"
			     "    <p>empty</p>\n"
			     "    {{/body}}\n"
			     "  </body>\n"
			     "</html>\n";
	const char *page = "{{<layout}}\n"
			   "{{$title}}Keys - {{org}}{{/title}}\n"
			   "{{$body}}\n"
			   "<ul>\n"
			   "{{#keys}}\n"
			   "  <li>{{.}}</li>\n"
			   "{{/keys}}\n"
			   "</ul>\n"
			   "{{/body}}\n"
			   "{{/layout}}\n";
	cJSON *data = cJSON_Parse("{\"org\": \"A&B\", \"keys\": [\"k1\", \"k2\"]}");
	char err[256];
	buf_t out;

	(void)state;
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_add(s, "layout", layout, strlen(layout), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_set_add(s, "page", page, strlen(page), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_render(s, "page", data, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "<html>\n"
					    "  <title>Keys - A&amp;B</title>\n"
					    "  <body>\n"
					    "    <ul>\n"
					    "      <li>k1</li>\n"
					    "      <li>k2</li>\n"
					    "    </ul>\n"
					    "  </body>\n"
					    "</html>\n");
	buf_reset(&out);
	assert_int_equal(tmpl_render(s, "layout", NULL, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "<html>\n"
					    "  <title>Tollgate</title>\n"
					    "  <body>\n"
					    "    <p>empty</p>\n"
					    "  </body>\n"
					    "</html>\n");
	buf_free(&out);
	cJSON_Delete(data);
	tmpl_set_free(s);
}

static void test_load_dir(void **state)
{
	char dir[] = "/tmp/tg_tmpl_XXXXXX";
	char path[512], err[256];
	tmpl_set_t *s = NULL;
	cJSON *data;
	buf_t out;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/partials", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/partials/deeper", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/layout.mustache", dir);
	write_file(path, "<main>\n  {{>partials/pager}}\n</main>\n");
	snprintf(path, sizeof path, "%s/partials/pager.mustache", dir);
	write_file(path, "<nav>{{page}}</nav>\n{{>partials/deeper/item}}\n");
	snprintf(path, sizeof path, "%s/partials/deeper/item.mustache", dir);
	write_file(path, "<i>{{page}}</i>\n");
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	write_file(path, "{{#broken");
	snprintf(path, sizeof path, "%s/.hidden.mustache", dir);
	write_file(path, "{{#broken");

	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_load_dir(s, dir, err, sizeof err), TG_OK);
	data = cJSON_Parse("{\"page\": 2}");
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_render(s, "layout", data, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "<main>\n  <nav>2</nav>\n  <i>2</i>\n</main>\n");
	buf_reset(&out);
	assert_int_equal(tmpl_render(s, "partials/deeper/item", data, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "<i>2</i>\n");
	assert_int_equal(tmpl_render(s, "notes", data, &out), TG_ENOTFOUND);
	assert_int_equal(tmpl_render(s, ".hidden", data, &out), TG_ENOTFOUND);

	/* A syntax error names the file-relative template and the line. */
	snprintf(path, sizeof path, "%s/partials/bad.mustache", dir);
	write_file(path, "ok\n{{#open}}\n");
	assert_int_equal(tmpl_set_load_dir(s, dir, err, sizeof err), TG_EINVAL);
	assert_non_null(strstr(err, "partials/bad:2:"));
	unlink(path);

	/* A missing directory is an I/O error with a message. */
	snprintf(path, sizeof path, "%s/nope", dir);
	assert_int_equal(tmpl_set_load_dir(s, path, err, sizeof err), TG_EIO);
	assert_true(err[0] != '\0');

	buf_free(&out);
	cJSON_Delete(data);
	tmpl_set_free(s);
	snprintf(path, sizeof path, "%s/partials/deeper/item.mustache", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/partials/pager.mustache", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/layout.mustache", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/.hidden.mustache", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/partials/deeper", dir);
	rmdir(path);
	snprintf(path, sizeof path, "%s/partials", dir);
	rmdir(path);
	rmdir(dir);
}

static void expect_parse_error(const char *text, const char *where)
{
	tmpl_set_t *s = NULL;
	char err[256] = "";

	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_add(s, "page", text, strlen(text), err, sizeof err), TG_EINVAL);
	if (!strstr(err, where))
		fail_msg("error \"%s\" does not contain \"%s\"", err, where);
	/* The failed add left nothing behind. */
	assert_int_equal(tmpl_render(s, "page", NULL, &(buf_t){ 0 }), TG_ENOTFOUND);
	tmpl_set_free(s);
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_parse_error("a\nb\n{{#items}}\nc\n", "page:3: unclosed section 'items'");
	expect_parse_error("{{#a}}\n\n{{/b}}\n", "page:3: close tag 'b' does not match 'a'");
	expect_parse_error("x\n{{/a}}", "page:2: close tag 'a' without");
	expect_parse_error("x\n\n\n{{name", "page:4: unclosed tag");
	expect_parse_error("x\n{{=<% =}}", "page:2: bad set-delimiter");
	expect_parse_error("{{=<% %>=}}\n<%a%>\n<%b", "page:3: unclosed tag");
	expect_parse_error("{{<layout}}\n{{$x}}\n{{/layout}}",
			   "page:3: close tag 'layout' does not match 'x' opened at line 2");
	expect_parse_error("{{a..b}}", "page:1: bad name");
	expect_parse_error("{{}}", "page:1: empty tag");
}

static void test_deep_nesting_is_rejected(void **state)
{
	char text[1024] = "";
	size_t i;

	(void)state;
	for (i = 0; i <= TMPL_MAX_NEST; i++)
		strcat(text, "{{#a}}");
	expect_parse_error(text, "nest deeper");
}

static void test_recursion_limit(void **state)
{
	const char *node = "{{#child}}[{{>node}}]{{/child}}";
	const char *self = "again {{>self}}";
	tmpl_set_t *s = NULL;
	cJSON *root, *cur, *next;
	char err[256];
	buf_t out;
	int i;

	(void)state;
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_add(s, "node", node, strlen(node), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_set_add(s, "self", self, strlen(self), err, sizeof err), TG_OK);
	buf_init(&out, (size_t)1 << 20);

	/* 10 levels of data: fine. The innermost level says child: false, or
	 * the lookup would find its parent's child on the context stack. */
	root = cJSON_CreateObject();
	for (cur = root, i = 0; i < 10; i++, cur = next)
		cJSON_AddItemToObject(cur, "child", next = cJSON_CreateObject());
	cJSON_AddFalseToObject(cur, "child");
	assert_int_equal(tmpl_render(s, "node", root, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "[[[[[[[[[[]]]]]]]]]]");
	cJSON_Delete(root);

	/* 1000 levels: an error, and the output buffer is left as it was. */
	root = cJSON_CreateObject();
	for (cur = root, i = 0; i < 1000; i++, cur = next)
		cJSON_AddItemToObject(cur, "child", next = cJSON_CreateObject());
	assert_int_equal(tmpl_render(s, "node", root, &out), TG_EINVAL);
	assert_string_equal(buf_cstr(&out), "[[[[[[[[[[]]]]]]]]]]");
	cJSON_Delete(root);

	/* Unconditional self-inclusion. */
	buf_reset(&out);
	assert_int_equal(tmpl_render(s, "self", NULL, &out), TG_EINVAL);
	assert_int_equal(out.len, 0);

	/* A parent that is its own parent. */
	assert_int_equal(tmpl_set_add(s, "loop", "{{<loop}}{{/loop}}", 18, err, sizeof err), TG_OK);
	assert_int_equal(tmpl_render(s, "loop", NULL, &out), TG_EINVAL);
	buf_free(&out);
	tmpl_set_free(s);
}

static void test_missing_template_and_partial(void **state)
{
	tmpl_set_t *s = NULL;
	char err[256];
	buf_t out;

	(void)state;
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_render(s, "nothing", NULL, &out), TG_ENOTFOUND);
	assert_int_equal(tmpl_set_add(s, "a", "[{{>gone}}|{{<gone}}{{/gone}}]", 30, err,
				      sizeof err),
			 TG_OK);
	assert_int_equal(tmpl_render(s, "nothing", NULL, &out), TG_ENOTFOUND);
	assert_int_equal(tmpl_render(s, "a", NULL, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "[|]");
	/* Adding under an existing name replaces the template. */
	assert_int_equal(tmpl_set_add(s, "a", "new", 3, err, sizeof err), TG_OK);
	buf_reset(&out);
	assert_int_equal(tmpl_render(s, "a", NULL, &out), TG_OK);
	assert_string_equal(buf_cstr(&out), "new");
	buf_free(&out);
	tmpl_set_free(s);
}

static void test_many_templates(void **state)
{
	tmpl_set_t *s = NULL;
	char name[32], text[64], err[256];
	buf_t out;
	int i;

	(void)state;
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof name, "t%d", i);
		snprintf(text, sizeof text, "%d{{#more}}-{{>t%d}}{{/more}}", i, i + 1);
		assert_int_equal(tmpl_set_add(s, name, text, strlen(text), err, sizeof err), TG_OK);
	}
	for (i = 0; i < 500; i += 97) {
		snprintf(name, sizeof name, "t%d", i);
		buf_reset(&out);
		assert_int_equal(tmpl_render(s, name, NULL, &out), TG_OK);
		snprintf(text, sizeof text, "%d", i);
		assert_string_equal(buf_cstr(&out), text);
	}
	buf_free(&out);
	tmpl_set_free(s);
}

struct thread_job {
	const tmpl_set_t *set;
	const cJSON *data;
	const char *expect;
	int failures;
};

static void *render_thread(void *arg)
{
	struct thread_job *job = arg;
	buf_t out;
	int i;

	buf_init(&out, (size_t)1 << 20);
	for (i = 0; i < 300; i++) {
		buf_reset(&out);
		if (tmpl_render(job->set, "page", job->data, &out) ||
		    strcmp(buf_cstr(&out), job->expect))
			job->failures++;
	}
	buf_free(&out);
	return NULL;
}

static void test_concurrent_render(void **state)
{
	const char *layout = "<h1>{{$title}}x{{/title}}</h1>\n  {{$body}}{{/body}}\n";
	const char *row = "<tr><td>{{name}}</td><td>{{amount}}</td></tr>\n";
	const char *page =
		"{{<layout}}{{$title}}{{org}}{{/title}}{{$body}}\n"
		"<table>\n{{#rows}}\n  {{>row}}\n{{/rows}}\n</table>\n{{/body}}{{/layout}}";
	struct thread_job jobs[4];
	pthread_t th[4];
	tmpl_set_t *s = NULL;
	cJSON *data, *rows, *r;
	char err[256];
	buf_t ref;
	int i;

	(void)state;
	assert_int_equal(tmpl_set_new(&s), TG_OK);
	assert_int_equal(tmpl_set_add(s, "layout", layout, strlen(layout), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_set_add(s, "row", row, strlen(row), err, sizeof err), TG_OK);
	assert_int_equal(tmpl_set_add(s, "page", page, strlen(page), err, sizeof err), TG_OK);
	data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "org", "<Acme & Co>");
	rows = cJSON_AddArrayToObject(data, "rows");
	for (i = 0; i < 50; i++) {
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "name", i % 2 ? "o'brien" : "\"q\"");
		cJSON_AddNumberToObject(r, "amount", i * 1.25);
		cJSON_AddItemToArray(rows, r);
	}
	buf_init(&ref, (size_t)1 << 20);
	assert_int_equal(tmpl_render(s, "page", data, &ref), TG_OK);
	assert_non_null(strstr(ref.data, "<h1>&lt;Acme &amp; Co&gt;</h1>\n  <table>\n"
					 "    <tr><td>&quot;q&quot;</td><td>0</td></tr>\n"
					 "    <tr><td>o&#39;brien</td><td>1.25</td></tr>\n"));
	for (i = 0; i < 4; i++) {
		jobs[i] = (struct thread_job){ s, data, ref.data, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, render_thread, &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].failures, 0);
	}
	buf_free(&ref);
	cJSON_Delete(data);
	tmpl_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mustache_spec),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_values_and_truthiness),
		cmocka_unit_test(test_inheritance_layout),
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_deep_nesting_is_rejected),
		cmocka_unit_test(test_recursion_limit),
		cmocka_unit_test(test_missing_template_and_partial),
		cmocka_unit_test(test_many_templates),
		cmocka_unit_test(test_concurrent_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
