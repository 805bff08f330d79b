/* Unit tests for the catalog: seeded echo models, provider and model upserts,
 * validation messages, sealed provider keys and "test connection". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <sodium.h>

#include "catalog/catalog.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "store/db.h"
#include "store/migrate.h"

static char dir[64];
static char dbpath[128];

static int setup(void **state)
{
	tg_secrets_t s;
	char err[256];
	int applied = 0;

	(void)state;
	if (crypto_init() != TG_OK)
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/tg-catalog-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/tollgate.db", dir);
	if (db_configure(dbpath, 0, 5000) || migrate_run(&applied, err, sizeof(err))) {
		fprintf(stderr, "migrate: %s\n", err);
		return -1;
	}
	randombytes_buf(&s, sizeof(s));
	catalog_init(&s);
	secrets_wipe(&s);
	return 0;
}

static int teardown(void **state)
{
	char path[192];

	(void)state;
	db_close_thread();
	snprintf(path, sizeof(path), "%s-wal", dbpath);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", dbpath);
	unlink(path);
	snprintf(path, sizeof(path), "%s-commits", dbpath);
	unlink(path);
	snprintf(path, sizeof(path), "%s-catalog", dbpath);
	unlink(path);
	unlink(dbpath);
	rmdir(dir);
	return 0;
}

static int64_t count(const char *sql_literal)
{
	tg_stmt *st = db_stmt(sql_literal);
	int64_t n = -1;

	if (st && db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	return n;
}

/* ---- seeded catalog ---- */

static void test_seeded_echo(void **state)
{
	struct provider p;
	struct model m;

	(void)state;
	assert_int_equal(catalog_provider_get_by_name("echo", &p), TG_OK);
	assert_int_equal(p.kind, PROVIDER_ECHO);
	assert_true(p.enabled);
	assert_false(p.has_api_key);
	assert_string_equal(p.base_url, "");
	assert_int_equal(p.timeout_s, 30);
	assert_int_equal(count("SELECT count(*) FROM models"), 3);

	assert_int_equal(catalog_model_get("echo-small", &m), TG_OK);
	assert_int_equal(m.provider_id, p.id);
	assert_string_equal(m.upstream_model, "echo-small");
	assert_int_equal(m.kind, MODEL_CHAT);
	assert_int_equal(m.price.in, 150000);
	assert_int_equal(m.price.cached_in, 75000);
	assert_int_equal(m.price.out, 600000);
	assert_int_equal(m.max_output_tokens, 16384);
	assert_int_equal(m.context_window, 128000);
	assert_true(m.enabled);

	assert_int_equal(catalog_model_get("echo-large", &m), TG_OK);
	assert_int_equal(m.price.in, 2500000);
	assert_int_equal(m.price.cached_in, 1250000);
	assert_int_equal(m.price.out, 10000000);

	assert_int_equal(catalog_model_get("echo-embed", &m), TG_OK);
	assert_int_equal(m.kind, MODEL_EMBEDDING);
	assert_int_equal(m.price.in, 20000);
	assert_int_equal(m.price.cached_in, 0);
	assert_int_equal(m.price.out, 0);
	assert_int_equal(m.max_output_tokens, 1);
	assert_int_equal(m.context_window, 8192);

	assert_int_equal(catalog_model_get("no-such-model", &m), TG_ENOTFOUND);
	assert_int_equal(catalog_model_get("ECHO-SMALL", &m), TG_ENOTFOUND); /* exact names */
	assert_int_equal(catalog_provider_get(999999, &p), TG_ENOTFOUND);
	assert_int_equal(catalog_model_get_by_id(999999, &m), TG_ENOTFOUND);
}

/* ---- providers ---- */

static void test_provider_upsert(void **state)
{
	struct provider p;
	const char *why = NULL;
	int64_t id = 0, id2 = 0;
	tg_stmt *st;

	(void)state;
	assert_int_equal(catalog_provider_upsert("p1", PROVIDER_OPENAI, "http://127.0.0.1:9000/v1/",
						 NULL, NULL, 60, 1, &id, &why),
			 TG_OK);
	assert_true(id > 0);
	assert_int_equal(catalog_provider_get(id, &p), TG_OK);
	assert_string_equal(p.name, "p1");
	assert_int_equal(p.kind, PROVIDER_OPENAI);
	assert_string_equal(p.base_url, "http://127.0.0.1:9000/v1"); /* trailing slash stripped */
	assert_int_equal(p.timeout_s, 60);
	assert_true(p.enabled);
	assert_false(p.has_api_key);

	/* Age the row, then update by name (any case): same id, fields replaced. */
	st = db_stmt("UPDATE providers SET updated_at = 1000 WHERE id = :id");
	assert_non_null(st);
	assert_int_equal(db_bind_int64(st, ":id", id), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	assert_int_equal(catalog_provider_upsert("P1", PROVIDER_OPENAI,
						 "https://api.example.com/v1///", NULL, NULL, 30, 0,
						 &id2, &why),
			 TG_OK);
	assert_int_equal(id2, id);
	assert_int_equal(catalog_provider_get_by_name("p1", &p), TG_OK);
	assert_string_equal(p.name, "p1");
	assert_string_equal(p.base_url, "https://api.example.com/v1");
	assert_int_equal(p.timeout_s, 30);
	assert_false(p.enabled);
	st = db_stmt("SELECT updated_at FROM providers WHERE id = :id");
	assert_int_equal(db_bind_int64(st, ":id", id), TG_OK);
	assert_int_equal(db_step(st), DB_ROW);
	assert_true(db_col_int64(st, 0) >= time_now() - 5);
	db_done(st);

	/* echo needs no base URL */
	assert_int_equal(catalog_provider_upsert("echo-2", PROVIDER_ECHO, "", NULL, NULL, 10, 1,
						 &id, &why),
			 TG_OK);
}

struct bad_provider {
	const char *name;
	int kind;
	const char *url;
	const char *key;
	int64_t timeout;
	const char *field;
	const char *why_has;
};

static void test_provider_validation(void **state)
{
	static const struct bad_provider cases[] = {
		{ "", PROVIDER_OPENAI, "http://h/v1", NULL, 60, "name", "1 to 64 characters" },
		{ "has space", PROVIDER_OPENAI, "http://h/v1", NULL, 60, "name",
		  "letters, digits" },
		{ "a<b", PROVIDER_OPENAI, "http://h/v1", NULL, 60, "name", "letters, digits" },
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		  PROVIDER_OPENAI, "http://h/v1", NULL, 60, "name", "1 to 64" }, /* 65 characters */
		{ "p", 7, "http://h/v1", NULL, 60, "kind", "azure or echo" },
		{ "p", PROVIDER_AZURE, "", NULL, 60, "base_url", "NAME.openai.azure.com" },
		{ "p", PROVIDER_OPENAI, "", NULL, 60, "base_url", "required" },
		{ "p", PROVIDER_OPENAI, NULL, NULL, 60, "base_url", "required" },
		{ "p", PROVIDER_OPENAI, "ftp://h/v1", NULL, 60, "base_url", "http:// or https://" },
		{ "p", PROVIDER_OPENAI, "h/v1", NULL, 60, "base_url", "http:// or https://" },
		{ "p", PROVIDER_OPENAI, "http://", NULL, 60, "base_url", "host name" },
		{ "p", PROVIDER_OPENAI, "http://h/v1\r\nX-Evil: 1", NULL, 60, "base_url",
		  "line breaks" },
		{ "p", PROVIDER_OPENAI, "http://h /v1", NULL, 60, "base_url", "spaces" },
		{ "p", PROVIDER_OPENAI, "http://h/v1?x=1", NULL, 60, "base_url", "query" },
		{ "p", PROVIDER_ECHO, "nonsense", NULL, 60, "base_url", "http:// or https://" },
		{ "p", PROVIDER_OPENAI, "http://h/v1", "sk-a\r\nX-Evil: 1", 60, "api_key",
		  "line breaks" },
		{ "p", PROVIDER_OPENAI, "http://h/v1", NULL, 0, "timeout_s", "1 and 3600" },
		{ "p", PROVIDER_OPENAI, "http://h/v1", NULL, 3601, "timeout_s", "1 and 3600" },
	};
	char longurl[600];
	const char *why, *field;
	int64_t id;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		const struct bad_provider *c = &cases[i];

		why = NULL;
		assert_int_equal(catalog_provider_check(c->name, (enum provider_kind)c->kind,
							c->url, NULL, c->key, c->timeout, &field,
							&why),
				 TG_EINVAL);
		assert_string_equal(field, c->field);
		if (!strstr(why, c->why_has))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why, c->why_has);
		why = NULL;
		assert_int_equal(catalog_provider_upsert(c->name, (enum provider_kind)c->kind,
							 c->url, NULL, c->key, c->timeout, 1, &id,
							 &why),
				 TG_EINVAL);
		assert_non_null(why);
	}
	/* The API version: short, and nothing that could break a header. */
	assert_int_equal(catalog_provider_check("p", PROVIDER_AZURE, "https://x.openai.azure.com",
						"2024-10-21\r\nX: 1", NULL, 60, &field, &why),
			 TG_EINVAL);
	assert_string_equal(field, "api_version");
	assert_int_equal(catalog_provider_check("p", PROVIDER_AZURE, "https://x.openai.azure.com",
						"2024-10-21-preview-and-more-than-32", NULL, 60,
						&field, &why),
			 TG_EINVAL);
	assert_string_equal(field, "api_version");
	/* Native kinds get their provider's address when none is given. */
	assert_int_equal(catalog_provider_upsert("claude", PROVIDER_ANTHROPIC, "", "", NULL, 60, 1,
						 &id, &why),
			 TG_OK);
	{
		struct provider got;

		assert_int_equal(catalog_provider_get(id, &got), TG_OK);
		assert_int_equal(got.kind, PROVIDER_ANTHROPIC);
		assert_string_equal(got.base_url, "https://api.anthropic.com/v1");
	}
	assert_int_equal(catalog_provider_upsert("az", PROVIDER_AZURE, "https://r.openai.azure.com",
						 "2024-06-01", NULL, 60, 1, &id, &why),
			 TG_OK);
	{
		struct provider got;

		assert_int_equal(catalog_provider_get(id, &got), TG_OK);
		assert_string_equal(got.api_version, "2024-06-01");
		assert_string_equal(catalog_provider_kind_name(got.kind), "azure");
	}
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = '\0';
	memcpy(longurl, "http://", 7);
	assert_int_equal(catalog_provider_check("p", PROVIDER_OPENAI, longurl, NULL, NULL, 60,
						&field, &why),
			 TG_EINVAL);
	assert_string_equal(why, "Base URL is too long (at most 512 characters).");
	/* Boundaries that are fine. */
	assert_int_equal(catalog_provider_check("a.b_c-D9", PROVIDER_OPENAI, "https://x", NULL,
						NULL, 1, &field, &why),
			 TG_OK);
	assert_int_equal(catalog_provider_check("p", PROVIDER_OPENAI, "http://x", NULL,
						"  sk-trailing\n", 3600, &field, &why),
			 TG_OK);
	/* Nothing invalid was written. */
	assert_int_equal(count("SELECT count(*) FROM providers WHERE name = 'p'"), 0);
}

static void test_api_key_sealed(void **state)
{
	static const char key[] = "sk-unit-test-0123456789abcdefSECRET";
	struct provider p;
	tg_stmt *st;
	const char *why;
	char *plain = NULL;
	size_t n = 0;
	int64_t id;

	(void)state;
	assert_int_equal(catalog_provider_upsert("sealed", PROVIDER_OPENAI, "http://127.0.0.1:1/v1",
						 NULL, key, 60, 1, &id, &why),
			 TG_OK);
	assert_int_equal(catalog_provider_get(id, &p), TG_OK);
	assert_true(p.has_api_key);
	assert_int_equal(catalog_provider_api_key(id, &plain, &n), TG_OK);
	assert_non_null(plain);
	assert_int_equal(n, strlen(key));
	assert_string_equal(plain, key);
	secrets_plain_free(plain, n);

	/* At rest: sealed, not the key, and not containing it. */
	st = db_stmt("SELECT api_key_sealed FROM providers WHERE id = :id");
	assert_int_equal(db_bind_int64(st, ":id", id), TG_OK);
	assert_int_equal(db_step(st), DB_ROW);
	assert_string_not_equal(db_col_text(st, 0), key);
	assert_null(strstr(db_col_text(st, 0), "SECRET"));
	assert_memory_equal(db_col_text(st, 0), "v1:", 3);
	db_done(st);

	/* NULL keeps the key. */
	assert_int_equal(catalog_provider_upsert("sealed", PROVIDER_OPENAI, "http://127.0.0.1:1/v1",
						 NULL, NULL, 20, 1, &id, &why),
			 TG_OK);
	plain = NULL;
	assert_int_equal(catalog_provider_api_key(id, &plain, &n), TG_OK);
	assert_string_equal(plain, key);
	secrets_plain_free(plain, n);

	/* A pasted key loses its surrounding whitespace. */
	assert_int_equal(catalog_provider_upsert("sealed", PROVIDER_OPENAI, "http://127.0.0.1:1/v1",
						 NULL, " sk-two\n", 20, 1, &id, &why),
			 TG_OK);
	plain = NULL;
	assert_int_equal(catalog_provider_api_key(id, &plain, &n), TG_OK);
	assert_string_equal(plain, "sk-two");
	secrets_plain_free(plain, n);

	/* "" clears it. */
	assert_int_equal(catalog_provider_upsert("sealed", PROVIDER_OPENAI, "http://127.0.0.1:1/v1",
						 NULL, "", 20, 1, &id, &why),
			 TG_OK);
	assert_int_equal(catalog_provider_get(id, &p), TG_OK);
	assert_false(p.has_api_key);
	plain = (char *)"unchanged";
	assert_int_equal(catalog_provider_api_key(id, &plain, &n), TG_OK);
	assert_null(plain);
	assert_int_equal(catalog_provider_api_key(999999, &plain, &n), TG_ENOTFOUND);
}

/* ---- models ---- */

static struct model a_model(const char *name, int64_t provider_id)
{
	struct model m;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.upstream_model, sizeof(m.upstream_model), "%s", "gpt-4o-mini");
	m.kind = MODEL_CHAT;
	m.provider_id = provider_id;
	m.price.in = 150000;
	m.price.cached_in = 75000;
	m.price.out = 600000;
	m.max_output_tokens = 16384;
	m.context_window = 128000;
	m.enabled = 1;
	return m;
}

static void test_model_upsert(void **state)
{
	struct provider p;
	struct model m, got;
	const char *why;
	int64_t id = 0, id2 = 0;

	(void)state;
	assert_int_equal(catalog_provider_get_by_name("echo", &p), TG_OK);
	m = a_model("org/gpt-4o-mini:latest", p.id);
	assert_int_equal(catalog_model_upsert(&m, &id, &why), TG_OK);
	assert_int_equal(catalog_model_get("org/gpt-4o-mini:latest", &got), TG_OK);
	assert_int_equal(got.id, id);
	assert_int_equal(got.price.cached_in, 75000);
	assert_int_equal(catalog_model_get_by_id(id, &got), TG_OK);
	assert_string_equal(got.name, "org/gpt-4o-mini:latest");

	m.price.out = 800000;
	m.kind = MODEL_EMBEDDING;
	m.enabled = 0;
	assert_int_equal(catalog_model_upsert(&m, &id2, &why), TG_OK);
	assert_int_equal(id2, id);
	assert_int_equal(catalog_model_get("org/gpt-4o-mini:latest", &got), TG_OK);
	assert_int_equal(got.price.out, 800000);
	assert_int_equal(got.kind, MODEL_EMBEDDING);
	assert_false(got.enabled);
	/* Zero prices are allowed (free models). */
	m = a_model("free-model", p.id);
	m.price = (money_price_t){ 0, 0, 0, 0 };
	assert_int_equal(catalog_model_upsert(&m, NULL, &why), TG_OK);
}

static void test_model_validation(void **state)
{
	struct provider p;
	struct model m;
	const char *why, *field;
	int64_t before = count("SELECT count(*) FROM models");

	(void)state;
	assert_int_equal(catalog_provider_get_by_name("echo", &p), TG_OK);
#define BAD(mutation, want_field, want_why)                                         \
	do {                                                                        \
		m = a_model("ok-name", p.id);                                       \
		mutation;                                                           \
		assert_int_equal(catalog_model_check(&m, &field, &why), TG_EINVAL); \
		assert_string_equal(field, want_field);                             \
		assert_string_equal(why, want_why);                                 \
		why = NULL;                                                         \
		assert_int_equal(catalog_model_upsert(&m, NULL, &why), TG_EINVAL);  \
		assert_string_equal(why, want_why);                                 \
	} while (0)
	BAD(m.name[0] = '\0', "name",
	    "Model name must be 1 to 128 characters: letters, digits and . _ : / -");
	BAD(strcpy(m.name, "bad name"), "name",
	    "Model name must be 1 to 128 characters: letters, digits and . _ : / -");
	BAD(strcpy(m.name, "bad\"name"), "name",
	    "Model name must be 1 to 128 characters: letters, digits and . _ : / -");
	BAD(m.upstream_model[0] = '\0', "upstream_model",
	    "Upstream model is required: the model name the provider expects.");
	BAD(strcpy(m.upstream_model, "a\nb"), "upstream_model",
	    "Upstream model must not contain control characters.");
	BAD(m.kind = (enum model_kind)5, "kind", "Kind must be chat or embedding.");
	BAD(m.price.in = -1, "input_per_mtok", "Prices cannot be negative.");
	BAD(m.price.cached_in = -1, "cached_input_per_mtok", "Prices cannot be negative.");
	BAD(m.price.out = -1, "output_per_mtok", "Prices cannot be negative.");
	BAD(m.max_output_tokens = 0, "max_output_tokens",
	    "Max output tokens must be between 1 and 10,000,000.");
	BAD(m.max_output_tokens = 10000001, "max_output_tokens",
	    "Max output tokens must be between 1 and 10,000,000.");
	BAD(m.context_window = 0, "context_window",
	    "Context window must be between 1 and 100,000,000 tokens.");
	BAD(m.context_window = 100000001, "context_window",
	    "Context window must be between 1 and 100,000,000 tokens.");
	BAD(m.provider_id = 999999, "provider", "The provider does not exist. Add it first.");
#undef BAD
	/* The largest allowed values pass; 128 characters is the longest name. */
	m = a_model("ok-name", p.id);
	memset(m.name, 'n', CATALOG_NAME_MAX);
	m.name[CATALOG_NAME_MAX] = '\0';
	m.max_output_tokens = 10000000;
	m.context_window = 100000000;
	assert_int_equal(catalog_model_check(&m, &field, &why), TG_OK);
	assert_int_equal(count("SELECT count(*) FROM models"), before);
}

static void test_names_and_detail(void **state)
{
	money_price_t a = { 2500000, 1250000, 10000000, 0 }, b = { 3000000, 1250000, 12000000, 0 };
	char out[200];

	(void)state;
	assert_int_equal(catalog_provider_kind_parse("openai"), PROVIDER_OPENAI);
	assert_int_equal(catalog_provider_kind_parse("echo"), PROVIDER_ECHO);
	assert_int_equal(catalog_provider_kind_parse("OpenAI"), -1);
	assert_int_equal(catalog_provider_kind_parse(NULL), -1);
	assert_int_equal(catalog_model_kind_parse("embedding"), MODEL_EMBEDDING);
	assert_int_equal(catalog_model_kind_parse("chat"), MODEL_CHAT);
	assert_int_equal(catalog_model_kind_parse("image"), -1);
	assert_string_equal(catalog_provider_kind_name(PROVIDER_ECHO), "echo");
	assert_string_equal(catalog_model_kind_name(MODEL_EMBEDDING), "embedding");
	catalog_price_detail(&a, &b, out, sizeof(out));
	assert_string_equal(out,
			    "input 2.50 -> 3.00, cached input 1.25 -> 1.25, output 10.00 -> 12.00");
	catalog_price_detail(NULL, &(money_price_t){ 150000, 75000, 600000, 0 }, out, sizeof(out));
	assert_string_equal(out, "input 0.15, cached input 0.075, output 0.60");
}

/* ---- test connection ---- */

/* A one-shot HTTP server on loopback: answers one request with `reply` and
 * keeps the request head for inspection. */
struct one_shot {
	int fd;
	int port;
	const char *reply;
	size_t reply_len;
	char request[4096];
};

static void *one_shot_run(void *arg)
{
	struct one_shot *s = arg;
	size_t got = 0, sent = 0;
	int c = accept(s->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	while (got < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
		ssize_t n = read(c, s->request + got, sizeof(s->request) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		s->request[got] = '\0';
	}
	while (sent < s->reply_len) {
		ssize_t n = write(c, s->reply + sent, s->reply_len - sent);

		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	close(c);
	return NULL;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Run catalog_provider_test against a one-shot server answering `reply`. */
static int probe_with(const char *reply, size_t reply_len, const char *key, struct one_shot *s,
		      buf_t *msg)
{
	char url[64];
	const char *why;
	pthread_t t;
	int64_t id;
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = listen_loopback(&s->port);
	s->reply = reply;
	s->reply_len = reply_len;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", s->port);
	assert_int_equal(catalog_provider_upsert("probe", PROVIDER_OPENAI, url, NULL,
						 key ? key : "", 5, 1, &id, &why),
			 TG_OK);
	assert_int_equal(pthread_create(&t, NULL, one_shot_run, s), 0);
	rc = catalog_provider_test(id, msg);
	pthread_join(t, NULL);
	close(s->fd);
	return rc;
}

#define LIST_REPLY                                                                           \
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"     \
	"{\"object\":\"list\",\"data\":[{\"id\":\"m-a\"},{\"id\":\"m-b\"},{\"id\":\"m-c\"}," \
	"{\"id\":\"m-d\"},{\"id\":\"m-e\"},{\"id\":\"m-f\"}]}"

static void test_probe_ok_sends_key(void **state)
{
	struct one_shot s;
	buf_t msg;

	(void)state;
	buf_init(&msg, 4096);
	assert_int_equal(probe_with(LIST_REPLY, strlen(LIST_REPLY), "sk-probe-key", &s, &msg),
			 TG_OK);
	assert_string_equal(buf_cstr(&msg), "OK: HTTP 200, 6 models (m-a, m-b, m-c, m-d, m-e, …).");
	assert_non_null(strstr(s.request, "GET /v1/models HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer sk-probe-key\r\n"));
	assert_null(strstr(buf_cstr(&msg), "sk-probe-key"));
	buf_reset(&msg);

	/* Without a key, no Authorization header at all. */
	assert_int_equal(probe_with(LIST_REPLY, strlen(LIST_REPLY), NULL, &s, &msg), TG_OK);
	assert_null(strstr(s.request, "Authorization"));
	buf_free(&msg);
}

static void test_probe_http_error_snippet(void **state)
{
	static const char reply[] =
		"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: "
		"close\r\n\r\n"
		"{\"error\":\"<b>bad key</b>\"}\n\x01"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxx\xc3\xa9THE-END-IS-NOT-SHOWN";
	struct one_shot s;
	const char *m;
	buf_t msg;

	(void)state;
	buf_init(&msg, 4096);
	assert_int_equal(probe_with(reply, sizeof(reply) - 1, "k", &s, &msg), TG_EIO);
	m = buf_cstr(&msg);
	assert_non_null(strstr(m, "HTTP 401 from GET http://127.0.0.1:"));
	assert_non_null(strstr(m, "/v1/models: {\"error\":\"<b>bad key</b>\"}  xxx"));
	assert_null(strstr(m, "THE-END"));
	assert_null(strchr(m, '\n'));
	assert_null(strchr(m, '\x01'));
	/* Exactly 200 bytes of the body: the two-byte é straddles the limit and is dropped. */
	assert_non_null(strstr(m, "xxx"));
	assert_null(strstr(m, "\xc3"));
	buf_free(&msg);
}

static void test_probe_not_a_list(void **state)
{
	static const char reply[] =
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<html>hello</html>";
	struct one_shot s;
	buf_t msg;

	(void)state;
	buf_init(&msg, 4096);
	assert_int_equal(probe_with(reply, sizeof(reply) - 1, NULL, &s, &msg), TG_EIO);
	assert_string_equal(
		buf_cstr(&msg),
		"HTTP 200, but the answer is not an OpenAI model list: <html>hello</html>");
	buf_free(&msg);
}

static void test_probe_closed_port_and_echo(void **state)
{
	struct provider p;
	const char *why;
	char url[64];
	int64_t id;
	buf_t msg;
	int port, fd;

	(void)state;
	fd = listen_loopback(&port);
	close(fd); /* nothing listens there now */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
	assert_int_equal(catalog_provider_upsert("closed", PROVIDER_OPENAI, url, NULL, NULL, 5, 1,
						 &id, &why),
			 TG_OK);
	buf_init(&msg, 4096);
	assert_int_equal(catalog_provider_test(id, &msg), TG_EIO);
	assert_non_null(strstr(buf_cstr(&msg), "Couldn't connect to server"));
	assert_non_null(strstr(buf_cstr(&msg), url));
	buf_reset(&msg);

	assert_int_equal(catalog_provider_get_by_name("echo", &p), TG_OK);
	assert_int_equal(catalog_provider_test(p.id, &msg), TG_OK);
	assert_memory_equal(buf_cstr(&msg), "OK: built-in echo provider", 26);
	assert_non_null(strstr(buf_cstr(&msg), "echo-embed, echo-large, echo-small"));
	buf_reset(&msg);
	assert_int_equal(catalog_provider_test(999999, &msg), TG_ENOTFOUND);
	buf_free(&msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seeded_echo),
		cmocka_unit_test(test_provider_upsert),
		cmocka_unit_test(test_provider_validation),
		cmocka_unit_test(test_api_key_sealed),
		cmocka_unit_test(test_model_upsert),
		cmocka_unit_test(test_model_validation),
		cmocka_unit_test(test_names_and_detail),
		cmocka_unit_test(test_probe_ok_sends_key),
		cmocka_unit_test(test_probe_http_error_snippet),
		cmocka_unit_test(test_probe_not_a_list),
		cmocka_unit_test(test_probe_closed_port_and_echo),
	};

	return cmocka_run_group_tests_name("catalog", tests, setup, teardown);
}
