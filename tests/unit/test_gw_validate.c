/* Unit tests for the gateway's parse-and-validate phase (gw_validate.c):
 * each rule of a chat or embeddings body gives its precise error (status,
 * type, code), the order of the rules is the one clients see, and what an
 * accepted body asks for is read right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "gateway/gw_validate.h"

struct rule_case {
	enum prov_endpoint ep;
	const char *body;
	int status;       /* 0: accepted */
	const char *code; /* the error code when refused */
	int at_parse;     /* refused by gw_parse_request itself (not deferred) */
};

static const struct rule_case cases[] = {
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 0,
	  NULL, 0 },
	{ PROV_CHAT, "{\"messages\":[{}]}", 400, "missing_model", 1 },
	{ PROV_CHAT, "{\"model\":\"\",\"messages\":[{}]}", 400, "missing_model", 1 },
	{ PROV_CHAT, "{\"model\":7,\"messages\":[{}]}", 400, "missing_model", 1 },
	{ PROV_CHAT, "{\"model\":\"m\",\"model\":\"n\",\"messages\":[{}]}", 400, "duplicate_key",
	  1 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":1,\"max_tokens\":9}", 400,
	  "duplicate_key", 1 },
	{ PROV_CHAT,
	  "{\"model\":\"m\",\"messages\":[{}],\"stream_options\":{\"include_usage\":true,"
	  "\"include_usage\":false}}",
	  400, "duplicate_key", 1 },
	{ PROV_CHAT, "{\"model\":\"m\"}", 400, "invalid_messages", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[]}", 400, "invalid_messages", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":{}}", 400, "invalid_messages", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"stream\":\"yes\"}", 400, "invalid_type",
	  0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"stream_options\":3}", 400,
	  "invalid_type", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":1.5}", 400, "invalid_type",
	  0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":1e300}", 400,
	  "invalid_type", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":0}", 400, "invalid_value",
	  0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":1001}", 400,
	  "invalid_value", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"max_completion_tokens\":1000}", 0, NULL,
	  0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"n\":17}", 400, "invalid_value", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"n\":0}", 400, "invalid_value", 0 },
	{ PROV_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"n\":16}", 0, NULL, 0 },
	{ PROV_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"text\"}", 0, NULL, 0 },
	{ PROV_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",[1,2],3]}", 0, NULL, 0 },
	{ PROV_EMBEDDINGS, "{\"model\":\"m\",\"input\":[]}", 400, "invalid_input", 0 },
	{ PROV_EMBEDDINGS, "{\"model\":\"m\",\"input\":[{}]}", 400, "invalid_input", 0 },
	{ PROV_EMBEDDINGS, "{\"model\":\"m\"}", 400, "invalid_input", 0 },
};

static struct model model_of(enum prov_endpoint ep)
{
	struct model m;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "m");
	m.kind = ep == PROV_EMBEDDINGS ? MODEL_EMBEDDING : MODEL_CHAT;
	m.max_output_tokens = 1000;
	return m;
}

static void test_rules(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rule_case *t = &cases[i];
		cJSON *req = cJSON_Parse(t->body);
		struct model m = model_of(t->ep);
		struct gw_parsed p;
		struct gw_error e;
		int64_t max_out = -1;
		int rc;

		assert_non_null(req);
		memset(&e, 0, sizeof(e));
		rc = gw_parse_request(req, t->ep, &p, &e);
		if (t->at_parse) {
			assert_int_equal(rc, TG_EINVAL);
		} else {
			assert_int_equal(rc, TG_OK);
			assert_string_equal(p.model, "m");
			assert_int_equal(gw_check_kind(&p, &m, &e), TG_OK);
			rc = gw_check_body(&p, &m, &max_out, &e);
		}
		if (t->status == 0) {
			assert_int_equal(rc, TG_OK);
		} else {
			if (rc != TG_EINVAL || e.status != t->status || !e.code ||
			    strcmp(e.code, t->code) != 0)
				fail_msg("case %zu (%s): got %d %s, want %d %s", i, t->body,
					 e.status, e.code ? e.code : "-", t->status, t->code);
			assert_string_equal(e.type, "invalid_request_error");
			assert_true(strlen(e.message) > 10);
		}
		cJSON_Delete(req);
	}
}

static void test_accepted_shape(void **state)
{
	cJSON *req = cJSON_Parse("{\"model\":\"m\",\"messages\":[{}],\"stream\":true,"
				 "\"stream_options\":{\"include_usage\":true},\"n\":3}");
	struct model m = model_of(PROV_CHAT);
	struct gw_parsed p;
	struct gw_error e;
	int64_t max_out = 0;

	(void)state;
	assert_int_equal(gw_parse_request(req, PROV_CHAT, &p, &e), TG_OK);
	assert_int_equal(gw_check_body(&p, &m, &max_out, &e), TG_OK);
	assert_true(p.stream);
	assert_true(p.want_usage);
	assert_int_equal(p.n, 3);
	assert_false(p.max_out_given);
	assert_int_equal(max_out, 1000); /* the model's limit when none is asked */
	cJSON_Delete(req);

	req = cJSON_Parse("{\"model\":\"m\",\"messages\":[{}],\"max_tokens\":12,"
			  "\"max_completion_tokens\":34}");
	assert_int_equal(gw_parse_request(req, PROV_CHAT, &p, &e), TG_OK);
	assert_int_equal(gw_check_body(&p, &m, &max_out, &e), TG_OK);
	assert_int_equal(max_out, 34); /* max_completion_tokens wins */
	assert_false(p.stream);
	cJSON_Delete(req);
}

/* The model's kind is checked before the body's rules, and both after the
 * model itself: a bad body for the wrong kind of model names the kind. */
static void test_order(void **state)
{
	cJSON *req = cJSON_Parse("{\"model\":\"m\",\"messages\":[]}");
	struct model emb = model_of(PROV_EMBEDDINGS);
	struct gw_parsed p;
	struct gw_error e;
	int64_t max_out;

	(void)state;
	assert_int_equal(gw_parse_request(req, PROV_CHAT, &p, &e), TG_OK);
	assert_int_equal(p.body_err.status, 400); /* deferred, not yet reported */
	assert_int_equal(gw_check_kind(&p, &emb, &e), TG_EINVAL);
	assert_string_equal(e.code, "wrong_model_kind");
	emb.kind = MODEL_CHAT;
	assert_int_equal(gw_check_body(&p, &emb, &max_out, &e), TG_EINVAL);
	assert_string_equal(e.code, "invalid_messages");
	cJSON_Delete(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_accepted_shape),
		cmocka_unit_test(test_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
