/* Unit tests for the server-rendered charts: round ticks, label thinning,
 * escaping inside the SVG, the empty state and geometry inside the viewBox.
 * The SVG is rendered through the real template partial. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "tmpl/tmpl.h"
#include "web/chart.h"

static tmpl_set_t *set;

static int setup(void **state)
{
	const char *src = getenv("TG_SOURCE_DIR");
	char dir[1024], err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/templates", src ? src : ".");
	if (tmpl_set_new(&set) || tmpl_set_load_dir(set, dir, err, sizeof(err))) {
		fprintf(stderr, "templates: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tmpl_set_free(set);
	return 0;
}

/* Render a chart through partials/chart; the caller frees the string. */
static char *render(const struct chart *c)
{
	cJSON *d = chart_json(c);
	buf_t out;

	assert_non_null(d);
	buf_init(&out, (size_t)1 << 20);
	assert_int_equal(tmpl_render(set, "partials/chart", d, &out), 0);
	cJSON_Delete(d);
	return buf_detach(&out);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Tenths from an attribute value "12.3" or "12". */
static long attr10(const char *p, const char *name)
{
	char key[32];
	const char *v;
	long whole, frac = 0;

	snprintf(key, sizeof(key), " %s=\"", name);
	v = strstr(p, key);
	assert_non_null(v);
	v += strlen(key);
	whole = strtol(v, (char **)&v, 10);
	if (*v == '.')
		frac = v[1] - '0';
	return whole * 10 + frac;
}

static void test_nice_step(void **state)
{
	(void)state;
	assert_int_equal(chart_nice_step(0, 4), 1);
	assert_int_equal(chart_nice_step(1, 4), 1);
	assert_int_equal(chart_nice_step(4, 4), 1);
	assert_int_equal(chart_nice_step(5, 4), 2);
	assert_int_equal(chart_nice_step(9, 4), 5); /* 2.5 is not whole below 10 */
	assert_int_equal(chart_nice_step(37, 4), 10);
	assert_int_equal(chart_nice_step(87, 4), 25);
	assert_int_equal(chart_nice_step(100, 4), 25);
	assert_int_equal(chart_nice_step(101, 4), 50);
	assert_int_equal(chart_nice_step(1234567, 4), 500000);
	/* 1.23 credits in micro-credits -> steps of 0.50 credits */
	assert_int_equal(chart_nice_step(1230000, 4), 500000);
	assert_int_equal(chart_nice_step(INT64_MAX, 4) > 0, 1);
	for (int64_t m = 1; m < 100000; m = m * 3 + 1) {
		int64_t s = chart_nice_step(m, 4);

		assert_true((m + s - 1) / s <= 4);
	}
}

static void test_format(void **state)
{
	char s[32];

	(void)state;
	chart_format(CHART_COUNT, 1234567, s);
	assert_string_equal(s, "1,234,567");
	chart_format(CHART_COUNT, 999, s);
	assert_string_equal(s, "999");
	chart_format(CHART_MONEY, 1250000, s);
	assert_string_equal(s, "1.25");
	chart_format(CHART_MONEY, 1, s);
	assert_string_equal(s, "0.000001");
}

static void test_label_every(void **state)
{
	(void)state;
	assert_int_equal(chart_label_every(1, 10), 1);
	assert_int_equal(chart_label_every(3, 5), 1);
	/* Labels never closer than their worst-case width. */
	for (size_t n = 1; n <= 400; n += 7)
		for (size_t chars = 1; chars <= 16; chars += 3) {
			size_t every = chart_label_every(n, chars);
			long slot10 = (long)(CHART_W - CHART_LEFT - CHART_RIGHT) * 10 / (long)n;

			assert_true(every >= 1);
			assert_true((long)every * slot10 >=
				    (long)(chars * CHART_CHAR_W + CHART_LABEL_GAP) * 10 - 10);
		}
}

static void test_thinned_labels(void **state)
{
	const char *labels[48];
	char buf[48][24];
	int64_t v[48];
	struct chart c = {
		"Requests per hour", CHART_COUNT, "requests", NULL, 48, labels, NULL, 1, NULL, v
	};
	char *svg;
	int n;

	(void)state;
	for (int i = 0; i < 48; i++) {
		snprintf(buf[i], sizeof(buf[i]), "2026-11-%02d %02d:00", 21 + i / 24, i % 24);
		labels[i] = buf[i];
		v[i] = i;
	}
	svg = render(&c);
	n = count(svg, "dominant-baseline=\"hanging\"");
	assert_true(n >= 2);
	assert_true(n < 48);
	/* The newest bucket keeps its label. */
	assert_non_null(strstr(svg, ">2026-11-22 23:00</text>"));
	/* 47 non-zero buckets -> 47 bars, each with a hover title. */
	assert_int_equal(count(svg, "<rect class=\"bar\""), 47);
	assert_non_null(strstr(svg, "<title>2026-11-21 05:00: 5 requests</title>"));
	free(svg);
}

static void test_escaping(void **state)
{
	const char *labels[2] = { "<script>alert(1)</script>", "a\"b&c" };
	const char *names[2] = { "<img src=x onerror=alert(1)>", "o'k" };
	int64_t v[4] = { 1000000, 0, 250000, 500000 };
	struct chart c = {
		"Spend <by> \"model\"", CHART_MONEY, "credits", NULL, 2, labels, NULL, 2, names, v
	};
	char *svg;

	(void)state;
	svg = render(&c);
	assert_null(strstr(svg, "<script>"));
	assert_null(strstr(svg, "<img"));
	assert_null(strstr(svg, "a\"b"));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(svg, "&lt;img src=x onerror=alert(1)&gt;"));
	assert_non_null(strstr(svg, "o&#39;k") ? strstr(svg, "o&#39;k") : strstr(svg, "o&#x27;k"));
	assert_non_null(strstr(svg, "aria-label=\"Spend &lt;by&gt; &quot;model&quot;\""));
	/* A legend for the stacked series. */
	assert_int_equal(count(svg, "rx=\"3\""), 2);
	free(svg);
}

static void test_empty(void **state)
{
	const char *labels[3] = { "2026-11-21", "2026-11-22", "2026-11-23" };
	int64_t zero[3] = { 0, 0, 0 };
	struct chart c = { "Spend per day",
			   CHART_MONEY,
			   "credits",
			   "No usage in this period.",
			   3,
			   labels,
			   NULL,
			   1,
			   NULL,
			   zero };
	struct chart none = {
		"Spend per day", CHART_MONEY, "credits", NULL, 0, NULL, NULL, 1, NULL, NULL
	};
	char *svg;

	(void)state;
	svg = render(&c);
	assert_non_null(strstr(svg, "<svg"));
	assert_non_null(strstr(svg, "No usage in this period."));
	assert_int_equal(count(svg, "<rect"), 0);
	free(svg);
	svg = render(&none);
	assert_non_null(strstr(svg, "empty-note"));
	assert_int_equal(count(svg, "<rect"), 0);
	free(svg);
}

static void test_fits_viewbox(void **state)
{
	const char *labels[30];
	char buf[30][12];
	int64_t v[90];
	struct chart c = { "Tokens", CHART_COUNT, "tokens", NULL, 30, labels, NULL, 3, NULL, v };
	const char *names[3] = { "a", "b", "c" };
	char *svg;
	const char *p;
	long base10 = (CHART_TOP + CHART_PLOT_H) * 10;
	int bars = 0;

	(void)state;
	c.names = names;
	for (int i = 0; i < 30; i++) {
		snprintf(buf[i], sizeof(buf[i]), "day %d", i);
		labels[i] = buf[i];
		v[i] = (int64_t)i * 1000003;
		v[30 + i] = i % 2 ? 1 : 0; /* tiny: still drawn */
		v[60 + i] = INT64_MAX / 4 / 30 * (i % 3);
	}
	svg = render(&c);
	for (p = svg; (p = strstr(p, "<rect class=\"bar\" x=")); p++) {
		long x = attr10(p, "x"), y = attr10(p, "y"), w = attr10(p, "width"),
		     h = attr10(p, "height");

		assert_true(h > 0);
		assert_true(y >= CHART_TOP * 10);
		assert_true(y + h <= base10);
		assert_true(x >= CHART_LEFT * 10);
		assert_true(x + w <= (CHART_W - CHART_RIGHT) * 10);
		bars++;
	}
	assert_int_equal(bars, 29 + 15 + 20);
	assert_non_null(strstr(svg, "viewBox=\"0 0 960 "));
	free(svg);
}

static void test_rejects_bad_input(void **state)
{
	const char *labels[1] = { "x" };
	int64_t neg[1] = { -1 };
	int64_t big[2] = { INT64_MAX, 1 };
	const char *names[2] = { "a", "b" };
	struct chart c = { "t", CHART_COUNT, "", NULL, 1, labels, NULL, 1, NULL, neg };
	struct chart o = { "t", CHART_COUNT, "", NULL, 1, labels, NULL, 2, names, big };

	(void)state;
	assert_null(chart_json(&c));
	assert_null(chart_json(&o)); /* a column that overflows int64 */
	c.nseries = 0;
	assert_null(chart_json(&c));
	assert_null(chart_json(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nice_step),    cmocka_unit_test(test_format),
		cmocka_unit_test(test_label_every),  cmocka_unit_test(test_thinned_labels),
		cmocka_unit_test(test_escaping),     cmocka_unit_test(test_empty),
		cmocka_unit_test(test_fits_viewbox), cmocka_unit_test(test_rejects_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
