/* Unit tests for the metrics counters and their Prometheus text exposition:
 * every line parses, HELP and TYPE come before a family's samples, no label
 * set repeats, histograms are cumulative with +Inf equal to _count, sums are
 * exact decimals, label values are escaped, the model label is capped, and
 * concurrent recording loses nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>

#include "core/buf.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "routes.h"

/* ------------------------------------------------------------ parser */

#define MAX_SAMPLES 2048
#define MAX_FAMILIES 64

struct sample {
	char name[128];
	char labels[1024]; /* raw text between the braces, escapes kept */
	double value;
};

struct family {
	char name[128];
	char type[16];
	int helped, typed, samples;
};

struct exposition {
	struct sample s[MAX_SAMPLES];
	int n;
	struct family f[MAX_FAMILIES];
	int nf;
};

static int is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

static struct family *family_get(struct exposition *e, const char *name)
{
	int i;

	for (i = 0; i < e->nf; i++)
		if (strcmp(e->f[i].name, name) == 0)
			return &e->f[i];
	if (e->nf == MAX_FAMILIES)
		return NULL;
	snprintf(e->f[e->nf].name, sizeof(e->f[e->nf].name), "%s", name);
	return &e->f[e->nf++];
}

/* Parse a metric name at *p; returns its length (0 when there is none). */
static size_t parse_name(const char *p, char *out, size_t outlen)
{
	size_t n = 0;

	if (!is_name_start(p[0]))
		return 0;
	while (is_name_char(p[n]))
		n++;
	if (n >= outlen)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return n;
}

/* The family a sample name belongs to, given the family just typed. */
static int sample_in_family(const char *sample, const struct family *f)
{
	size_t n = strlen(f->name);

	if (strcmp(sample, f->name) == 0)
		return strcmp(f->type, "histogram") != 0;
	if (strcmp(f->type, "histogram") != 0 || strncmp(sample, f->name, n) != 0)
		return 0;
	return strcmp(sample + n, "_bucket") == 0 || strcmp(sample + n, "_sum") == 0 ||
	       strcmp(sample + n, "_count") == 0;
}

/* Check one sample line; fill s. */
static int parse_sample(const char *line, struct sample *s)
{
	const char *p = line, *lab;
	char *end;
	size_t n = parse_name(p, s->name, sizeof(s->name));

	if (!n)
		return -1;
	p += n;
	s->labels[0] = '\0';
	if (*p == '{') {
		lab = ++p;
		while (*p != '}') {
			char lname[128];

			if (!(n = parse_name(p, lname, sizeof(lname))))
				return -1;
			p += n;
			if (p[0] != '=' || p[1] != '"')
				return -1;
			for (p += 2; *p != '"'; p++) {
				if (*p == '\0' || *p == '\n')
					return -1;
				if (*p == '\\') {
					p++;
					if (*p != '\\' && *p != '"' && *p != 'n')
						return -1;
				}
			}
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return -1;
		}
		if ((size_t)(p - lab) >= sizeof(s->labels))
			return -1;
		memcpy(s->labels, lab, (size_t)(p - lab));
		s->labels[p - lab] = '\0';
		p++;
	}
	if (*p++ != ' ')
		return -1;
	if (strcmp(p, "+Inf") == 0) {
		s->value = INFINITY;
		return 0;
	}
	if (*p == '\0' || *p == ' ')
		return -1;
	s->value = strtod(p, &end);
	return *end == '\0' ? 0 : -1;
}

/* Parse the whole text; fails the test on any bad line. */
static void parse(const char *text, struct exposition *e)
{
	const char *p = text;
	struct family *cur = NULL;
	int lineno = 0, i, j;

	memset(e, 0, sizeof(*e));
	assert_true(strlen(text) > 0);
	assert_int_equal(text[strlen(text) - 1], '\n');
	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[2048], name[128];
		size_t len = (size_t)(nl - p);

		lineno++;
		assert_non_null(nl);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0) {
			struct family *f;
			size_t n = parse_name(line + 7, name, sizeof(name));

			assert_true(n > 0);
			assert_int_equal(line[7 + n], ' ');
			assert_non_null(f = family_get(e, name));
			assert_int_equal(f->helped, 0);
			assert_int_equal(f->samples, 0);
			f->helped = 1;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			struct family *f;
			size_t n = parse_name(line + 7, name, sizeof(name));
			const char *t = line + 7 + n + 1;

			assert_true(n > 0);
			assert_int_equal(line[7 + n], ' ');
			assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
				    strcmp(t, "histogram") == 0);
			assert_non_null(f = family_get(e, name));
			assert_int_equal(f->helped, 1); /* HELP first */
			assert_int_equal(f->typed, 0);
			f->typed = 1;
			snprintf(f->type, sizeof(f->type), "%s", t);
			cur = f;
			continue;
		}
		assert_true(line[0] != '#' && line[0] != '\0');
		assert_true(e->n < MAX_SAMPLES);
		if (parse_sample(line, &e->s[e->n]) != 0)
			fail_msg("line %d is not a valid sample: %s", lineno, line);
		/* Every sample belongs to the family typed just before it. */
		assert_non_null(cur);
		if (!sample_in_family(e->s[e->n].name, cur))
			fail_msg("line %d: %s outside its family (%s)", lineno, line, cur->name);
		cur->samples++;
		e->n++;
	}
	/* No name + label set appears twice. */
	for (i = 0; i < e->n; i++)
		for (j = i + 1; j < e->n; j++)
			if (strcmp(e->s[i].name, e->s[j].name) == 0 &&
			    strcmp(e->s[i].labels, e->s[j].labels) == 0)
				fail_msg("duplicate sample %s{%s}", e->s[i].name, e->s[i].labels);
}

/* The value of a sample, or -1 when absent. */
static double value(const struct exposition *e, const char *name, const char *labels)
{
	int i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
			return e->s[i].value;
	return -1;
}

static int count_named(const struct exposition *e, const char *name)
{
	int i, n = 0;

	for (i = 0; i < e->n; i++)
		n += strcmp(e->s[i].name, name) == 0;
	return n;
}

/* Buckets in order, cumulative, ending in +Inf equal to _count. */
static void check_histogram(const struct exposition *e, const char *base)
{
	char bucket[160], count[160];
	double prev = 0, le_prev = -1;
	int i, seen = 0, inf = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", base);
	snprintf(count, sizeof(count), "%s_count", base);
	for (i = 0; i < e->n; i++) {
		const struct sample *s = &e->s[i];
		double le;

		if (strcmp(s->name, bucket) != 0)
			continue;
		assert_int_equal(strncmp(s->labels, "le=\"", 4), 0);
		assert_int_equal(inf, 0); /* +Inf is the last bucket */
		if (strcmp(s->labels, "le=\"+Inf\"") == 0) {
			inf = 1;
		} else {
			le = strtod(s->labels + 4, NULL);
			assert_true(le > le_prev);
			le_prev = le;
		}
		assert_true(s->value >= prev);
		prev = s->value;
		seen++;
	}
	assert_int_equal(seen, 14);
	assert_int_equal(inf, 1);
	assert_true(prev == value(e, count, ""));
}

static struct exposition *render(const struct metrics_process *p, buf_t *text)
{
	static struct exposition e;

	buf_init(text, BUF_MAX_LARGE);
	assert_int_equal(metrics_render(text, p), TG_OK);
	parse(buf_cstr(text), &e);
	return &e;
}

static const struct metrics_process proc = {
	.db_up = 1,
	.db_size_bytes = 4096,
	.held_micro = 77,
	.connections_open = 3,
	.connections_refused = 5,
	.streams_refused = 7,
	.auth_throttled_gateway = 11,
	.auth_throttled_login = 13,
};

/* ------------------------------------------------------------- tests */

static void test_empty_exposition_is_valid(void **state)
{
	struct metrics_process p = { .db_up = 0, .db_size_bytes = -1 };
	struct exposition *e;
	buf_t t;

	(void)state;
	metrics_reset();
	e = render(&p, &t);
	check_histogram(e, "tollgate_gateway_request_duration_seconds");
	check_histogram(e, "tollgate_gateway_upstream_duration_seconds");
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_count", "") == 0);
	assert_true(value(e, "tollgate_gateway_tokens_total", "kind=\"prompt\"") == 0);
	assert_true(value(e, "tollgate_db_up", "") == 0);
	assert_int_equal(count_named(e, "tollgate_db_size_bytes"), 0); /* unknown: left out */
	assert_true(value(e, "tollgate_build_info", "version=\"" TG_VERSION "\"") == 1);
	assert_true(value(e, "tollgate_start_time_seconds", "") > 1.6e9);
	assert_non_null(strstr(buf_cstr(&t), "# TYPE tollgate_http_requests_total counter\n"));
	assert_non_null(strstr(buf_cstr(&t),
			       "# TYPE tollgate_gateway_request_duration_seconds histogram\n"));
	assert_true(value(e, "tollgate_http_connections_open", "") == 0);
	assert_true(value(e, "tollgate_auth_throttled_total", "kind=\"login\"") == 0);
	buf_free(&t);
}

static void test_limit_values_render(void **state)
{
	struct exposition *e;
	buf_t t;

	(void)state;
	metrics_reset();
	e = render(&proc, &t);
	assert_true(value(e, "tollgate_http_connections_open", "") == 3);
	assert_true(value(e, "tollgate_http_connections_refused_total", "") == 5);
	assert_true(value(e, "tollgate_gateway_streams_refused_total", "") == 7);
	assert_true(value(e, "tollgate_auth_throttled_total", "kind=\"gateway\"") == 11);
	assert_true(value(e, "tollgate_auth_throttled_total", "kind=\"login\"") == 13);
	assert_non_null(strstr(buf_cstr(&t), "# TYPE tollgate_http_connections_open gauge\n"));
	assert_non_null(strstr(buf_cstr(&t), "# TYPE tollgate_auth_throttled_total counter\n"));
	buf_free(&t);
}

static void test_recorded_calls_render_exactly(void **state)
{
	struct exposition *e;
	buf_t t;

	(void)state;
	metrics_reset();
	metrics_gw_call("chat.completions", "m1", 200, 10, 2, 5, 1234, "reported", 1234567,
			1000000);
	metrics_gw_call("chat.completions", "m1", 200, 20, 0, 7, 100, "estimated", 3000, 2000);
	metrics_gw_call("chat.completions", "m1", 402, 0, 0, 0, 0, "none", 500, -1);
	metrics_gw_call("embeddings", "e1", 429, 99, 0, 0, 0, "none", 100, -1);
	metrics_gw_call("chat.completions", NULL, 404, 0, 0, 0, 0, "none", 5000, -1);
	metrics_gw_call("chat.completions", "m1", 502, 3, 0, 0, 0, "none", 5001, 5001);
	metrics_stream_start();
	metrics_stream_start();
	metrics_stream_end();
	e = render(&proc, &t);

	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"m1\",status=\"200\"") == 2);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"m1\",status=\"402\"") == 1);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"embeddings\",model=\"e1\",status=\"429\"") == 1);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"unknown\",status=\"404\"") == 1);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"m1\",status=\"502\"") == 1);
	assert_int_equal(count_named(e, "tollgate_gateway_requests_total"), 5);
	assert_true(value(e, "tollgate_gateway_insufficient_credits_total", "") == 1);
	assert_true(value(e, "tollgate_gateway_rate_limited_total", "") == 1);
	/* Tokens count only for billed calls. */
	assert_true(value(e, "tollgate_gateway_tokens_total", "kind=\"prompt\"") == 30);
	assert_true(value(e, "tollgate_gateway_tokens_total", "kind=\"cached\"") == 2);
	assert_true(value(e, "tollgate_gateway_tokens_total", "kind=\"completion\"") == 12);
	assert_true(value(e, "tollgate_gateway_credits_debited_micro_total", "") == 1334);
	assert_true(value(e, "tollgate_usage_source_total", "source=\"reported\"") == 1);
	assert_true(value(e, "tollgate_usage_source_total", "source=\"estimated\"") == 1);
	assert_true(value(e, "tollgate_usage_source_total", "source=\"none\"") == 4);
	assert_true(value(e, "tollgate_gateway_active_streams", "") == 1);
	assert_true(value(e, "tollgate_ledger_held_micro", "") == 77);
	assert_true(value(e, "tollgate_db_up", "") == 1);
	assert_true(value(e, "tollgate_db_size_bytes", "") == 4096);

	check_histogram(e, "tollgate_gateway_request_duration_seconds");
	check_histogram(e, "tollgate_gateway_upstream_duration_seconds");
	/* le is inclusive: 5000 us lands in 0.005, 5001 us in 0.01. */
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_bucket", "le=\"0.005\"") ==
		    4);
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_bucket", "le=\"0.01\"") ==
		    5);
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_bucket", "le=\"1\"") == 5);
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_bucket", "le=\"2.5\"") ==
		    6);
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_count", "") == 6);
	assert_true(value(e, "tollgate_gateway_upstream_duration_seconds_count", "") == 3);
	assert_true(value(e, "tollgate_gateway_upstream_duration_seconds_bucket", "le=\"0.005\"") ==
		    1);
	assert_true(value(e, "tollgate_gateway_upstream_duration_seconds_bucket", "le=\"1\"") == 3);
	/* Sums are exact decimals of the microseconds recorded. */
	assert_non_null(
		strstr(buf_cstr(&t), "\ntollgate_gateway_request_duration_seconds_sum 1.248168\n"));
	assert_non_null(strstr(buf_cstr(&t),
			       "\ntollgate_gateway_upstream_duration_seconds_sum 1.007001\n"));
	buf_free(&t);
}

/* A request as the dispatcher records it: labeled with the pattern of the
 * route it picks for method and path (NULL when none). */
static void http_request(const char *method, const char *path, int status)
{
	int ok;
	const struct route *rt = router_find(tg_routes, tg_routes_count, method, path, &ok);

	metrics_http_request(method, rt ? rt->pattern : NULL, status);
}

static void test_http_routes_use_patterns(void **state)
{
	struct exposition *e;
	buf_t t;

	(void)state;
	metrics_reset();
	http_request("GET", "/health", 200);
	http_request("HEAD", "/health", 200);
	http_request("GET", "/keys/12", 303);
	http_request("GET", "/keys/new", 200); /* its own entry, before /keys/:id */
	http_request("GET", "/keys", 200);
	http_request("POST", "/keys", 200);     /* a second entry, same pattern */
	http_request("DELETE", "/health", 405); /* path known, method not */
	http_request("GET", "/nowhere", 404);
	http_request("GET", "/static/app.css", 200);
	http_request("POST", "/v1/chat/completions", 402);
	e = render(&proc, &t);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"/health\",status=\"200\"") ==
		    2);
	assert_true(value(e, "tollgate_http_requests_total",
			  "route=\"/keys/:id\",status=\"303\"") == 1);
	assert_true(value(e, "tollgate_http_requests_total",
			  "route=\"/keys/new\",status=\"200\"") == 1);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"/keys\",status=\"200\"") ==
		    2);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"/health\",status=\"405\"") ==
		    1);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"other\",status=\"404\"") ==
		    1);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"other\",status=\"200\"") ==
		    1);
	assert_true(value(e, "tollgate_http_requests_total",
			  "route=\"/v1/chat/completions\",status=\"402\"") == 1);
	assert_int_equal(count_named(e, "tollgate_http_requests_total"), 8);
	buf_free(&t);
}

/* Route labels are keyed by the pattern's text, not its address; past
 * METRICS_ROUTE_LABELS_MAX distinct ones they count as "other". */
static void test_route_labels_are_capped(void **state)
{
	struct exposition *e;
	char name[32], copy[32];
	buf_t t;
	int i;

	(void)state;
	metrics_reset();
	for (i = 0; i < METRICS_ROUTE_LABELS_MAX + 3; i++) {
		snprintf(name, sizeof(name), "/r%03d", i);
		metrics_http_request("GET", name, 200);
	}
	snprintf(copy, sizeof(copy), "/r%03d", 0);
	metrics_http_request("GET", copy, 200);
	metrics_http_request("GET", NULL, 200);
	e = render(&proc, &t);
	assert_int_equal(count_named(e, "tollgate_http_requests_total"),
			 METRICS_ROUTE_LABELS_MAX + 1);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"/r000\",status=\"200\"") ==
		    2);
	snprintf(name, sizeof(name), "route=\"/r%03d\",status=\"200\"",
		 METRICS_ROUTE_LABELS_MAX - 1);
	assert_true(value(e, "tollgate_http_requests_total", name) == 1);
	assert_true(value(e, "tollgate_http_requests_total", "route=\"other\",status=\"200\"") ==
		    4);
	buf_free(&t);
}

static void test_label_values_are_escaped(void **state)
{
	struct exposition *e;
	buf_t t;

	(void)state;
	metrics_reset();
	metrics_gw_call("chat.completions", "a\"b\\c\nd", 200, 1, 0, 1, 1, "reported", 10, 10);
	e = render(&proc, &t);
	assert_true(
		value(e, "tollgate_gateway_requests_total",
		      "endpoint=\"chat.completions\",model=\"a\\\"b\\\\c\\nd\",status=\"200\"") ==
		1);
	/* The raw newline never reaches the output inside a label. */
	assert_null(strstr(buf_cstr(&t), "c\nd"));
	buf_free(&t);
}

static void test_model_labels_are_capped(void **state)
{
	struct exposition *e;
	char name[32], labels[128];
	buf_t t;
	int i, other_seen = 0;

	(void)state;
	metrics_reset();
	for (i = 0; i < METRICS_MODEL_LABELS_MAX + 5; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		metrics_gw_call("chat.completions", name, 200, 1, 0, 1, 0, "reported", 10, 10);
	}
	/* A name labeled before the cap keeps its label; a new one is "other". */
	metrics_gw_call("chat.completions", "m000", 200, 1, 0, 1, 0, "reported", 10, 10);
	metrics_gw_call("chat.completions", "brand-new", 200, 1, 0, 1, 0, "reported", 10, 10);
	/* Too long for a label: "other" too. */
	{
		char longname[METRICS_LABEL_MAX + 2];

		memset(longname, 'y', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		metrics_gw_call("chat.completions", longname, 200, 1, 0, 1, 0, "reported", 10, 10);
	}
	e = render(&proc, &t);
	assert_int_equal(count_named(e, "tollgate_gateway_requests_total"),
			 METRICS_MODEL_LABELS_MAX + 1);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"m000\",status=\"200\"") == 2);
	snprintf(labels, sizeof(labels),
		 "endpoint=\"chat.completions\",model=\"m%03d\",status=\"200\"",
		 METRICS_MODEL_LABELS_MAX - 1);
	assert_true(value(e, "tollgate_gateway_requests_total", labels) == 1);
	snprintf(labels, sizeof(labels),
		 "endpoint=\"chat.completions\",model=\"m%03d\",status=\"200\"",
		 METRICS_MODEL_LABELS_MAX);
	assert_true(value(e, "tollgate_gateway_requests_total", labels) == -1);
	for (i = 0; i < e->n; i++)
		if (strstr(e->s[i].labels, "model=\"other\""))
			other_seen++;
	assert_int_equal(other_seen, 1);
	assert_true(value(e, "tollgate_gateway_requests_total",
			  "endpoint=\"chat.completions\",model=\"other\",status=\"200\"") == 7);
	buf_free(&t);
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
	static const char *const names[] = { "alpha", "beta", "gamma" };
	int id = (int)(intptr_t)arg, i;

	for (i = 0; i < PER_THREAD; i++) {
		metrics_gw_call(i % 2 ? "chat.completions" : "embeddings", names[(i + id) % 3], 200,
				2, 1, 3, 5, "reported", i % 1000, i % 500);
		metrics_http_request("POST", "/v1/chat/completions", 200);
		metrics_stream_start();
		metrics_stream_end();
	}
	return NULL;
}

static void test_concurrent_recording_loses_nothing(void **state)
{
	pthread_t th[THREADS];
	struct exposition *e;
	double total = 0;
	buf_t t;
	int i;

	(void)state;
	metrics_reset();
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	e = render(&proc, &t);
	for (i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, "tollgate_gateway_requests_total") == 0)
			total += e->s[i].value;
	assert_true(total == THREADS * PER_THREAD);
	assert_int_equal(count_named(e, "tollgate_gateway_requests_total"), 6);
	assert_true(value(e, "tollgate_http_requests_total",
			  "route=\"/v1/chat/completions\",status=\"200\"") == THREADS * PER_THREAD);
	assert_true(value(e, "tollgate_gateway_tokens_total", "kind=\"completion\"") ==
		    3.0 * THREADS * PER_THREAD);
	assert_true(value(e, "tollgate_gateway_credits_debited_micro_total", "") ==
		    5.0 * THREADS * PER_THREAD);
	assert_true(value(e, "tollgate_gateway_request_duration_seconds_count", "") ==
		    THREADS * PER_THREAD);
	assert_true(value(e, "tollgate_gateway_active_streams", "") == 0);
	assert_true(value(e, "tollgate_metrics_series_dropped_total", "") == 0);
	check_histogram(e, "tollgate_gateway_request_duration_seconds");
	buf_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_exposition_is_valid),
		cmocka_unit_test(test_limit_values_render),
		cmocka_unit_test(test_recorded_calls_render_exactly),
		cmocka_unit_test(test_http_routes_use_patterns),
		cmocka_unit_test(test_route_labels_are_capped),
		cmocka_unit_test(test_label_values_are_escaped),
		cmocka_unit_test(test_model_labels_are_capped),
		cmocka_unit_test(test_concurrent_recording_loses_nothing),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
