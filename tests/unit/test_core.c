/* Unit tests for configuration loading, route matching, the dispatcher's
 * handling of handler return codes and time parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/timeutil.h"
#include "http/http.h"
#include "web/web.h"

static void test_config_defaults(void **state)
{
	tg_config_t c;
	char err[256];

	(void)state;
	config_defaults(&c);
	assert_string_equal(c.listen, "127.0.0.1:8081");
	assert_string_equal(c.data_dir, "./data");
	assert_int_equal(c.threads, 4096);
	assert_int_equal(c.session_idle_s, 7200);
	assert_int_equal(c.session_absolute_s, 7 * 86400);
	assert_int_equal(c.request_timeout_ms, 30000);
	assert_int_equal(c.header_timeout_ms, 10000);
	assert_int_equal(c.idle_timeout_ms, 15000);
	assert_int_equal(c.max_connections_per_ip, 128);
	assert_int_equal(c.drain_timeout_s, 30);
	assert_int_equal(c.hsts_max_age_s, 31536000);
	/* 2,000 streams fit the derived limits */
	assert_true(config_max_streams(&c) >= 2000);
	assert_int_equal(config_validate(&c, err, sizeof(err)), TG_OK);
	/* TLS-only settings without a certificate are refused, by name */
	snprintf(c.tls_redirect_from, sizeof(c.tls_redirect_from), "127.0.0.1:8080");
	assert_int_equal(config_validate(&c, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "tls_redirect_from needs tls_cert"));
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/tg-config-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_config_precedence_file_env_flag(void **state)
{
	tg_config_t c;
	char err[256];
	char *path = write_temp(
		"# comment\nlisten = 127.0.0.1:9000\nthreads=8\ndata_dir = /srv/tg\n");
	char *argv[] = { "--threads", "16", "--log-level=debug", "extra" };
	int i, consumed = 0;

	(void)state;
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof(err)), TG_OK);
	assert_string_equal(c.listen, "127.0.0.1:9000");
	assert_int_equal(c.threads, 8);
	setenv("TOLLGATE_LISTEN", "127.0.0.1:9100", 1);
	setenv("TOLLGATE_THREADS", "12", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), TG_OK);
	unsetenv("TOLLGATE_LISTEN");
	unsetenv("TOLLGATE_THREADS");
	assert_string_equal(c.listen, "127.0.0.1:9100"); /* env beats file */
	assert_int_equal(c.threads, 12);
	assert_string_equal(c.data_dir, "/srv/tg"); /* file beats default */
	for (i = 0; i < 4; i++) {
		int rc = config_apply_flag(&c, 4, argv, &i, err, sizeof(err));

		assert_true(rc >= 0);
		consumed += rc;
	}
	assert_int_equal(consumed, 2);   /* --threads 16 and --log-level=debug, not "extra" */
	assert_int_equal(c.threads, 16); /* flag beats env */
	assert_string_equal(c.log_level, "debug");
	unlink(path);
	free(path);
}

static void test_config_errors_are_precise(void **state)
{
	tg_config_t c;
	char err[256];
	char *bad_key = write_temp("listen = 1.2.3.4:5\nnot_a_setting = 1\n");
	char *bad_line = write_temp("threads\n");
	char *bad_num = write_temp("threads = 1\n");
	char *argv[] = { "--threads" };
	int i = 0;

	(void)state;
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, bad_key, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, ":2: unknown setting 'not_a_setting'"));
	assert_int_equal(config_load_file(&c, bad_line, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, ":1: expected 'key = value'"));
	assert_int_equal(config_load_file(&c, bad_num, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "threads: expected a whole number from 2 to 16384"));
	assert_int_equal(config_load_file(&c, "/nonexistent/tollgate.conf", err, sizeof(err)),
			 TG_EIO);
	assert_int_equal(config_apply_flag(&c, 1, argv, &i, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "--threads needs a value"));

	config_defaults(&c);
	snprintf(c.listen, sizeof(c.listen), "localhost");
	assert_int_equal(config_validate(&c, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "expected ADDR:PORT"));
	config_defaults(&c);
	snprintf(c.synchronous, sizeof(c.synchronous), "extra");
	assert_int_equal(config_validate(&c, err, sizeof(err)), TG_EINVAL);
	config_defaults(&c);
	snprintf(c.log_level, sizeof(c.log_level), "loud");
	assert_int_equal(config_validate(&c, err, sizeof(err)), TG_EINVAL);
	unlink(bad_key);
	unlink(bad_line);
	unlink(bad_num);
	free(bad_key);
	free(bad_line);
	free(bad_num);
}

static void free_params(char **p, int n)
{
	for (int i = 0; i < n; i++)
		free(p[i]);
}

static void test_router_match(void **state)
{
	char *p[REQ_MAX_PARAMS] = { 0 };
	int n;

	(void)state;
	assert_true(router_match("/health", "/health", p, &n));
	assert_int_equal(n, 0);
	assert_false(router_match("/health", "/health/", p, &n));
	assert_false(router_match("/health", "/healthz", p, &n));
	assert_false(router_match("/orgs", "/org", p, &n));

	assert_true(router_match("/orgs/:id", "/orgs/42", p, &n));
	assert_int_equal(n, 1);
	assert_string_equal(p[0], "42");
	free_params(p, n);

	assert_true(router_match("/orgs/:id/members/:uid/role", "/orgs/7/members/9/role", p, &n));
	assert_int_equal(n, 2);
	assert_string_equal(p[0], "7");
	assert_string_equal(p[1], "9");
	free_params(p, n);

	/* a parameter matches exactly one non-empty segment */
	assert_false(router_match("/orgs/:id", "/orgs/", p, &n));
	assert_false(router_match("/orgs/:id", "/orgs/1/2", p, &n));
	assert_false(router_match("/orgs/:id/members", "/orgs//members", p, &n));
	assert_false(router_match("/orgs/:id/members/:uid/role", "/orgs/7/members/9", p, &n));
	assert_int_equal(n, 0);
	assert_true(router_match("/", "/", p, &n));
	assert_false(router_match("/", "/x", p, &n));
	/* without params: only the test, nothing copied */
	assert_true(
		router_match("/orgs/:id/members/:uid/role", "/orgs/7/members/9/role", NULL, &n));
	assert_int_equal(n, 2);
	assert_false(router_match("/orgs/:id", "/orgs/1/2", NULL, &n));
}

static int route_stub(tg_req_t *r)
{
	(void)r;
	return TG_OK;
}

static void test_router_find(void **state)
{
	static const struct route routes[] = {
		{ "GET", "/keys", route_stub, AUTH_PUBLIC },
		{ "POST", "/keys", route_stub, AUTH_PUBLIC },
		{ "GET", "/keys/new", route_stub, AUTH_PUBLIC },
		{ "GET", "/keys/:id", route_stub, AUTH_PUBLIC },
		{ "POST", "/keys/:id/revoke", route_stub, AUTH_PUBLIC },
	};
	size_t n = sizeof(routes) / sizeof(routes[0]);
	int ok = -1;

	(void)state;
	assert_ptr_equal(router_find(routes, n, "GET", "/keys", &ok), &routes[0]);
	assert_int_equal(ok, 1);
	assert_ptr_equal(router_find(routes, n, "HEAD", "/keys", &ok), &routes[0]);
	assert_int_equal(ok, 1);
	assert_ptr_equal(router_find(routes, n, "POST", "/keys", &ok), &routes[1]);
	assert_int_equal(ok, 1);
	/* the first entry wins: /keys/new before /keys/:id */
	assert_ptr_equal(router_find(routes, n, "GET", "/keys/new", &ok), &routes[2]);
	assert_ptr_equal(router_find(routes, n, "GET", "/keys/12", &ok), &routes[3]);
	/* the path is known, the method is not: the first entry for the path */
	assert_ptr_equal(router_find(routes, n, "DELETE", "/keys", &ok), &routes[0]);
	assert_int_equal(ok, 0);
	assert_ptr_equal(router_find(routes, n, "GET", "/keys/12/revoke", &ok), &routes[4]);
	assert_int_equal(ok, 0);
	assert_null(router_find(routes, n, "GET", "/nowhere", &ok));
	assert_int_equal(ok, 0);
	assert_null(router_find(routes, 0, "GET", "/keys", &ok));
}

/* What the dispatcher does with a handler's return code. */
static void test_dispatch_outcome(void **state)
{
	(void)state;
	assert_int_equal(dispatch_outcome(TG_OK, 200), DISPATCH_DONE);
	assert_int_equal(dispatch_outcome(TG_OK, 404), DISPATCH_DONE);
	/* nothing sent, whatever it returned: a 500 */
	assert_int_equal(dispatch_outcome(TG_OK, 0), DISPATCH_SEND_500);
	assert_int_equal(dispatch_outcome(TG_EDB, 0), DISPATCH_SEND_500);
	/* failed after its answer started (a stream cut short): close */
	assert_int_equal(dispatch_outcome(TG_EIO, 200), DISPATCH_CLOSE);
	assert_int_equal(dispatch_outcome(TG_ENOMEM, 500), DISPATCH_CLOSE);
}

static void test_form_parsing(void **state)
{
	static const char body[] = "email=a%40b.c&name=Ada+L&empty=&flag&x=%2";
	static const char nul_value[] = "email=abc\0evil";
	static const char nul_key[] = "email\0x=attacker@example.com&email=user@example.com";
	static const char repeated[] = "models=a&other=1&models=b&models=&models=c";
	char *v;

	(void)state;
	v = req_form_get(body, strlen(body), "email");
	assert_string_equal(v, "a@b.c");
	free(v);
	v = req_form_get(body, strlen(body), "name");
	assert_string_equal(v, "Ada L");
	free(v);
	v = req_form_get(body, strlen(body), "empty");
	assert_string_equal(v, "");
	free(v);
	v = req_form_get(body, strlen(body), "flag");
	assert_string_equal(v, "");
	free(v);
	assert_null(req_form_get(body, strlen(body), "x")); /* truncated %-escape */
	assert_null(req_form_get(body, strlen(body), "missing"));
	assert_null(req_form_get("a=%00b", 6, "a")); /* %00 */
	/* A raw NUL byte neither truncates a value nor lets a key stand in for another. */
	assert_null(req_form_get(nul_value, sizeof(nul_value) - 1, "email"));
	v = req_form_get(nul_key, sizeof(nul_key) - 1, "email");
	assert_string_equal(v, "user@example.com");
	free(v);
	/* Repeated fields (checkboxes) join with commas; empty values are skipped. */
	v = req_form_get_all(repeated, strlen(repeated), "models");
	assert_string_equal(v, "a,b,c");
	free(v);
	assert_null(req_form_get_all(repeated, strlen(repeated), "none"));
}

static void test_path_decode(void **state)
{
	static const char *const refused[] = {
		"/static/app.css%00.js", /* NUL would cut the path short */
		"/x%0d%0aforged: line",  /* CR LF in the log */
		"/x%1b[31m",
		"/x%7f",
		"/x\001",
		"/static/%2e%2e/README.md",
		"/static/..%2fMakefile",
		"/static/%2E%2E%2FMakefile",
		"/a/%2e/b",
		"/%2e",
		"/x/.%2e",
		"/x%zz",
		"/x%2",
		"/x%",
	};
	static const char *const decoded[][2] = {
		{ "/keys/12/limits", "/keys/12/limits" },
		{ "/static/app%2Ecss", "/static/app.css" },
		/* '+' stays in a path; UTF-8 and encoded slashes decode. */
		{ "/a+b%20c/%C3%A9%2fd", "/a+b c/\xc3\xa9/d" },
		/* Dots inside a segment are not dot segments. */
		{ "/static/...x/.hidden/..y", "/static/...x/.hidden/..y" },
		{ "", "" },
	};
	size_t i;
	char *p;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(decoded); i++) {
		p = req_path_decode(decoded[i][0]);
		if (!p)
			fail_msg("refused %s", decoded[i][0]);
		assert_string_equal(p, decoded[i][1]);
		free(p);
	}
	for (i = 0; i < TG_ARRAY_LEN(refused); i++) {
		p = req_path_decode(refused[i]);
		if (p)
			fail_msg("accepted %s as %s", refused[i], p);
	}
}

static void test_day_range(void **state)
{
	char from[24] = "", to[24] = "";
	int64_t from_t = 111, to_t = 222;
	const char *err = NULL;

	(void)state;
	/* Nothing given: defaults stay, no error. */
	assert_int_equal(web_day_range(NULL, "", from, to, &from_t, &to_t, &err), 0);
	assert_int_equal(from_t, 111);
	assert_int_equal(to_t, 222);
	assert_null(err);
	/* Both: the "to" day is included whole. */
	assert_int_equal(web_day_range("2026-11-01", "2026-11-23", from, to, &from_t, &to_t, &err),
			 3);
	assert_int_equal(from_t, 1793491200);
	assert_int_equal(to_t, 1795392000 + 86400);
	assert_string_equal(from, "2026-11-01");
	assert_null(err);
	/* A bad day (Feb 30 normalises in timegm) keeps the default and blanks its text. */
	from_t = 111;
	assert_int_equal(web_day_range("2026-02-30", "2026-11-23", from, to, &from_t, &to_t, &err),
			 2);
	assert_int_equal(from_t, 111);
	assert_string_equal(from, "");
	assert_non_null(strstr(err, "YYYY-MM-DD"));
	assert_int_equal(web_parse_day("2026-11-23 10:00", &from_t), TG_EINVAL);
}

static void test_time_parse(void **state)
{
	int64_t t;
	char s[20];

	(void)state;
	assert_int_equal(time_parse("2026-11-23", &t), TG_OK);
	assert_int_equal(t, 1795392000);
	assert_int_equal(time_parse("2026-11-23 16:40:05", &t), TG_OK);
	time_format(t, s);
	assert_string_equal(s, "2026-11-23 16:40:05");
	assert_int_equal(time_parse("2026-11-23T16:40", &t), TG_OK);
	assert_int_equal(time_parse("2024-02-29", &t), TG_OK);
	assert_int_equal(time_parse("2026-02-29", &t), TG_EINVAL);
	assert_int_equal(time_parse("2026-13-01", &t), TG_EINVAL);
	assert_int_equal(time_parse("2026-1-01", &t), TG_EINVAL);
	assert_int_equal(time_parse("26-11-23", &t), TG_EINVAL);
	assert_int_equal(time_parse("2026-11-23 25:00", &t), TG_EINVAL);
	assert_int_equal(time_parse("2026-11-23x", &t), TG_EINVAL);
	assert_int_equal(time_parse("", &t), TG_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_precedence_file_env_flag),
		cmocka_unit_test(test_config_errors_are_precise),
		cmocka_unit_test(test_router_match),
		cmocka_unit_test(test_router_find),
		cmocka_unit_test(test_dispatch_outcome),
		cmocka_unit_test(test_form_parsing),
		cmocka_unit_test(test_path_decode),
		cmocka_unit_test(test_day_range),
		cmocka_unit_test(test_time_parse),
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
