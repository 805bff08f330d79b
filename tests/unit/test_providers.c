/* Unit tests for the provider interface's first two kinds: the
 * OpenAI-compatible kind (a request edited in place, never re-encoded when
 * it can be edited; answers passed on raw; usage read in range) and the echo
 * kind (answers locally through the same sink and parse operations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "providers/provider.h"

static struct provider prov;

static struct prov_call call_of(const char *raw, cJSON *req, int stream, enum prov_endpoint ep)
{
	struct prov_call c = { .prov = &prov,
			       .endpoint = ep,
			       .upstream_model = "up-model",
			       .stream = stream,
			       .max_tokens = 4096,
			       .raw = raw,
			       .raw_len = strlen(raw),
			       .req = req,
			       .request_id = "req_t" };

	return c;
}

static void build(const char *raw, int stream, const char *want)
{
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, stream, PROV_CHAT);
	struct prov_request rq;

	assert_non_null(req);
	assert_int_equal(provider_openai.build_request(&c, &rq), TG_OK);
	assert_string_equal(rq.path, "/chat/completions");
	assert_string_equal(rq.auth_prefix, "Authorization: Bearer ");
	assert_int_equal(rq.len, strlen(rq.body));
	if (strcmp(rq.body, want) != 0)
		fail_msg("built %s\nwanted %s", rq.body, want);
	prov_request_free(&rq);
	assert_null(rq.body);
	cJSON_Delete(req);
}

static void test_request_edited_in_place(void **state)
{
	(void)state;
	/* Only the model's value changes; spacing, order and numbers stay. */
	build("{ \"messages\": [ {\"role\":\"user\",\"content\":\"1.50\"} ],\n \"model\" : "
	      "\"pub\" ,"
	      "\"temperature\":0.70}",
	      0,
	      "{ \"messages\": [ {\"role\":\"user\",\"content\":\"1.50\"} ],\n \"model\" : "
	      "\"up-model\" ,\"temperature\":0.70}");
	/* A stream asks for usage. */
	build("{\"model\":\"pub\",\"stream\":true} ", 1,
	      "{\"model\":\"up-model\",\"stream\":true,"
	      "\"stream_options\":{\"include_usage\":true}} ");
	/* ... unless it already does, exactly so. */
	build("{\"model\":\"pub\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", 1,
	      "{\"model\":\"up-model\",\"stream\":true,"
	      "\"stream_options\":{\"include_usage\":true}}");
}

static void test_request_printed_when_not_editable(void **state)
{
	(void)state;
	/* An escaped key cannot be edited safely: the parsed document is printed. */
	build("{\"mod\\u0065l\":\"pub\",\"n\":1}", 0, "{\"model\":\"up-model\",\"n\":1}");
	/* stream_options with other members: printed, include_usage forced on. */
	build("{\"model\":\"pub\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}", 1,
	      "{\"model\":\"up-model\",\"stream\":true,"
	      "\"stream_options\":{\"include_usage\":true}}");
}

static void test_embeddings_path(void **state)
{
	const char *raw = "{\"model\":\"pub\",\"input\":\"x\"}";
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 0, PROV_EMBEDDINGS);
	struct prov_request rq;

	(void)state;
	assert_int_equal(provider_openai.build_request(&c, &rq), TG_OK);
	assert_string_equal(rq.path, "/embeddings");
	prov_request_free(&rq);
	cJSON_Delete(req);
}

static void test_usage(void **state)
{
	static const struct {
		const char *json;
		int have;
		int64_t prompt, cached, completion;
	} cases[] = {
		{ "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}", 1, 10, 0, 5 },
		{ "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,"
		  "\"prompt_tokens_details\":{\"cached_tokens\":4}}}",
		  1, 10, 4, 5 },
		/* cached above prompt is not believed */
		{ "{\"usage\":{\"prompt_tokens\":3,"
		  "\"prompt_tokens_details\":{\"cached_tokens\":9}}}",
		  1, 3, 0, 0 },
		{ "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":5}}", 0, 0, 0, 0 },
		{ "{\"usage\":{\"prompt_tokens\":1e13}}", 0, 0, 0, 0 },
		{ "{\"usage\":null}", 0, 0, 0, 0 },
		{ "{\"choices\":[]}", 0, 0, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *o = cJSON_Parse(cases[i].json);
		struct prov_usage u = { 0 };

		assert_int_equal(provider_openai.extract_usage(o, &u), cases[i].have);
		assert_int_equal(u.have, cases[i].have);
		if (cases[i].have) {
			assert_int_equal(u.prompt, cases[i].prompt);
			assert_int_equal(u.cached, cases[i].cached);
			assert_int_equal(u.completion, cases[i].completion);
		}
		cJSON_Delete(o);
	}
}

static void test_parse_response(void **state)
{
	const char *ok = "{\"id\":\"x\",\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}";
	struct prov_call c = call_of("{}", NULL, 0, PROV_CHAT);
	struct prov_usage u = { 0 };
	cJSON *answer = NULL;
	int flags = 0;

	(void)state;
	assert_int_equal(provider_openai.parse_response(&c, ok, strlen(ok), &answer, &flags, &u),
			 TG_OK);
	assert_true(cJSON_IsObject(answer));
	assert_true(flags & PROV_RAW);
	assert_true(u.have);
	assert_int_equal(u.prompt, 2);
	cJSON_Delete(answer);
	assert_int_equal(provider_openai.parse_response(&c, "[1]", 3, &answer, &flags, &u),
			 TG_EINVAL);
	assert_null(answer);
	assert_int_equal(provider_openai.parse_response(&c, "<html>", 6, &answer, &flags, &u),
			 TG_EINVAL);
}

struct chunks {
	int n, raw_text;
	char last[256];
};

static int collect(void *ud, cJSON *chunk, const char *data, size_t len, int flags)
{
	struct chunks *k = ud;

	assert_true(flags & PROV_RAW);
	k->n++;
	if (!chunk)
		k->raw_text++;
	snprintf(k->last, sizeof(k->last), "%.*s", (int)len, data);
	cJSON_Delete(chunk);
	return 0;
}

static void test_stream_events(void **state)
{
	const char *ev = "{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}";
	struct prov_call c = call_of("{}", NULL, 1, PROV_CHAT);
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct chunks k = { 0 };

	(void)state;
	assert_int_equal(provider_openai.parse_stream_event(&s, NULL, ev, strlen(ev), collect, &k),
			 0);
	assert_int_equal(k.n, 1);
	assert_true(u.have);
	assert_int_equal(u.completion, 3);
	assert_int_equal(provider_openai.parse_stream_event(&s, NULL, "not json", 8, collect, &k),
			 0);
	assert_int_equal(k.n, 2);
	assert_int_equal(k.raw_text, 1);
	assert_string_equal(k.last, "not json");
}

struct answer {
	int status;
	char ctype[64];
	char body[8192];
	size_t len;
};

static int on_status(void *ud, int status, const char *ctype, const char *retry_after)
{
	(void)retry_after;
	struct answer *a = ud;

	a->status = status;
	snprintf(a->ctype, sizeof(a->ctype), "%s", ctype);
	return 0;
}

static int on_body(void *ud, const char *p, size_t n)
{
	struct answer *a = ud;

	assert_true(a->len + n < sizeof(a->body));
	memcpy(a->body + a->len, p, n);
	a->len += n;
	a->body[a->len] = '\0';
	return 0;
}

static void test_echo_answers_through_the_interface(void **state)
{
	const char *raw = "{\"model\":\"pub\",\"messages\":[{\"role\":\"user\",\"content\":"
			  "\"one two three\"}],\"max_tokens\":2}";
	cJSON *req = cJSON_Parse(raw), *answer = NULL, *choice;
	struct prov_call c = call_of(raw, req, 0, PROV_CHAT);
	struct prov_request rq;
	struct answer a = { 0 };
	struct prov_sink sink = { &a, on_status, on_body, NULL };
	struct prov_usage u = { 0 };
	int64_t first = -1;
	char err[128] = "";
	int flags = 0;

	(void)state;
	prov.kind = PROVIDER_ECHO;
	assert_ptr_equal(provider_ops_for(PROVIDER_ECHO), &provider_echo);
	assert_ptr_equal(provider_ops_for(PROVIDER_OPENAI), &provider_openai);
	assert_int_equal(provider_echo.build_request(&c, &rq), TG_OK);
	assert_int_equal(provider_echo.forward(&c, &rq, &sink, &first, err, sizeof(err)),
			 PROV_FWD_OK);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.ctype, "application/json");
	assert_int_equal(provider_echo.parse_response(&c, a.body, a.len, &answer, &flags, &u),
			 TG_OK);
	assert_true(u.have);
	assert_int_equal(u.completion, 2); /* cut at max_tokens */
	assert_true(u.prompt > 0);
	choice = cJSON_GetArrayItem(cJSON_GetObjectItem(answer, "choices"), 0);
	assert_string_equal(cJSON_GetObjectItem(choice, "finish_reason")->valuestring, "length");
	/* The echo kind answers with the model name it was sent: the upstream one. */
	assert_string_equal(cJSON_GetObjectItem(answer, "model")->valuestring, "up-model");
	cJSON_Delete(answer);
	prov_request_free(&rq);
	cJSON_Delete(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_edited_in_place),
		cmocka_unit_test(test_request_printed_when_not_editable),
		cmocka_unit_test(test_embeddings_path),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_parse_response),
		cmocka_unit_test(test_stream_events),
		cmocka_unit_test(test_echo_answers_through_the_interface),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
