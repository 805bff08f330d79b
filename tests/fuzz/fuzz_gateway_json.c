/* fuzz_gateway_json.c - request bodies of POST /v1/chat/completions and
 * /v1/embeddings, from parsing to the echo provider's answer, through the
 * gateway's real code: no copy of it is kept here.
 *
 * Per input: the bytes are parsed like req_json() does (cJSON with length,
 * error offset inside the body, must be an object), then the gateway's
 * parse-and-validate phase runs (gw_parse_request, gw_check_kind,
 * gw_check_body from gateway/gw_validate.c) against a model of the
 * endpoint's kind. Every refusal must carry a 4xx status, an OpenAI error
 * type and a message; an accepted body must give a reservation input in
 * range. It is then rewritten for the provider by the OpenAI kind's real
 * build_request (must parse back as an object naming the upstream model, and
 * ask for usage when streaming) and answered by the echo provider's real
 * forward; its answer (JSON, or an SSE stream whose events are JSON or
 * [DONE]) goes through the provider's parse_response / parse_stream_event,
 * and extract_usage runs over it and over the fuzzed body itself (usage
 * numbers must stay in range).
 */
#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "crypto/keys.h"
#include "gateway/gw_validate.h"
#include "gateway/sse.h"
#include "providers/provider.h"

#define CHECK(c)                                                                               \
	do {                                                                                   \
		if (!(c)) {                                                                    \
			fprintf(stderr, "fuzz_gateway_json: check failed: %s (line %d)\n", #c, \
				__LINE__);                                                     \
			abort();                                                               \
		}                                                                              \
	} while (0)

#define MODEL_MAX_OUT 4096

/* --- the translating kinds: an accepted body is either translated into a
 * JSON object or refused with a reason, never anything else */

static void native_check(const struct prov_call *pc)
{
	const struct provider_ops *kinds[] = { &provider_anthropic, &provider_gemini };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct prov_request rq;
		int rc;

		memset(&rq, 0, sizeof(rq));
		rc = kinds[i]->build_request(pc, &rq);

		if (rc == TG_OK) {
			cJSON *j = cJSON_ParseWithLength(rq.body, rq.len);

			CHECK(rq.body != NULL && rq.len == strlen(rq.body) && rq.path[0] == '/');
			CHECK(cJSON_IsObject(j));
			cJSON_Delete(j);
		} else {
			CHECK(rc == TG_EINVAL || rc == TG_ENOMEM || rc == TG_ETOOBIG);
			CHECK(rc != TG_EINVAL || rq.why[0]);
		}
		prov_request_free(&rq);
	}
}

/* --- the echo provider's answer */

struct answer {
	int status;
	buf_t body;
};

static int on_status(void *ud, int status, const char *ctype, const char *retry_after)
{
	(void)retry_after;
	struct answer *a = ud;

	CHECK(ctype != NULL);
	a->status = status;
	return 0;
}

static int on_body(void *ud, const char *p, size_t n)
{
	struct answer *a = ud;

	CHECK(buf_append(&a->body, p, n) == TG_OK);
	return 0;
}

static void check_usage(const cJSON *obj)
{
	struct prov_usage u = { 0 };

	if (provider_openai.extract_usage(obj, &u)) {
		CHECK(u.have);
		CHECK(u.prompt >= 0 && u.prompt <= 1000000000000LL);
		CHECK(u.completion >= 0 && u.completion < 1000000000000LL);
		CHECK(u.cached >= 0 && u.cached <= u.prompt);
	} else {
		CHECK(!u.have);
	}
}

struct stream_check {
	struct prov_stream ps;
	struct prov_usage usage;
	int done_seen, chunks;
};

static int on_chunk(void *ud, cJSON *chunk, const char *data, size_t len, int flags)
{
	struct stream_check *sc = ud;

	CHECK(data != NULL && len == strlen(data));
	CHECK(flags & PROV_RAW);
	CHECK(cJSON_IsObject(chunk));
	check_usage(chunk);
	sc->chunks++;
	cJSON_Delete(chunk);
	return 0;
}

static int on_event_cb(void *ud, const char *event, const char *data, size_t len)
{
	struct stream_check *sc = ud;

	if (strcmp(data, "[DONE]") == 0) {
		sc->done_seen = 1;
		return 0;
	}
	CHECK(!sc->done_seen);
	return provider_echo.parse_stream_event(&sc->ps, event, data, len, on_chunk, sc);
}

static void echo_check(const struct prov_call *pc, const struct prov_request *rq)
{
	struct answer a = { 0 };
	struct prov_sink sink = { &a, on_status, on_body, NULL };
	char err[256] = "";
	int64_t first = -1;
	int rc;

	buf_init(&a.body, (size_t)16 << 20);
	rc = provider_echo.forward(pc, rq, &sink, &first, err, sizeof(err));
	CHECK(rc == PROV_FWD_OK);
	CHECK(a.status >= 200 && a.status < 600);
	if (a.status == 200 && pc->stream && pc->endpoint == PROV_CHAT) {
		struct stream_check sc;
		sse_parser_t *p = NULL;

		memset(&sc, 0, sizeof(sc));
		sc.ps.call = pc;
		sc.ps.usage = &sc.usage;
		CHECK(sse_init(&p, 0) == TG_OK);
		CHECK(sse_feed(p, buf_cstr(&a.body), a.body.len, on_event_cb, &sc) == TG_OK);
		CHECK(sse_finish(p) == 0);
		CHECK(sc.done_seen && sc.chunks > 0);
		CHECK(sc.usage.have); /* the echo provider reports usage when asked */
		sse_free(p);
	} else {
		struct prov_usage u = { 0 };
		cJSON *answer = NULL;
		int flags = 0;

		CHECK(provider_echo.parse_response(pc, buf_cstr(&a.body), a.body.len, &answer,
						   &flags, &u) == TG_OK);
		CHECK(cJSON_IsObject(answer) && (flags & PROV_RAW));
		CHECK(u.have);
		check_usage(answer);
		cJSON_Delete(answer);
	}
	buf_free(&a.body);
}

static void check_refusal(const struct gw_error *e)
{
	CHECK(e->status >= 400 && e->status < 500);
	CHECK(e->type != NULL && e->type[0]);
	CHECK(e->message[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	struct provider prov;
	struct model model;
	struct gw_parsed p;
	struct gw_error e;
	struct prov_call pc;
	struct prov_request rq;
	const char *end = NULL;
	cJSON *req = NULL;
	int64_t max_out = 0;
	char *copy;

	if (!inited) {
		CHECK(crypto_init() == TG_OK);
		inited = 1;
	}
	if (size == 0)
		return 0;
	memset(&rq, 0, sizeof(rq));
	/* like req_json(): an exact-size copy of the body */
	copy = malloc(size);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	req = cJSON_ParseWithLengthOpts(copy, size, &end, 0);
	if (!req) {
		CHECK(end == NULL || (end >= copy && end <= copy + size));
		goto out;
	}
	if (!cJSON_IsObject(req))
		goto out;

	check_usage(req); /* the body read as if it were a provider's answer */

	memset(&p, 0, sizeof(p));
	memset(&e, 0, sizeof(e));
	if (gw_parse_request(req,
			     cJSON_GetObjectItemCaseSensitive(req, "input") ? PROV_EMBEDDINGS :
									      PROV_CHAT,
			     &p, &e) != TG_OK) {
		check_refusal(&e);
		goto out;
	}
	CHECK(p.model != NULL && p.model[0]);
	if (strlen(p.model) > CATALOG_NAME_MAX)
		goto out; /* the gateway answers 404: no such model */
	memset(&model, 0, sizeof(model));
	memset(&prov, 0, sizeof(prov));
	snprintf(model.name, sizeof(model.name), "%s", p.model);
	snprintf(model.upstream_model, sizeof(model.upstream_model), "upstream-%.50s", p.model);
	model.kind = p.endpoint == PROV_EMBEDDINGS ? MODEL_EMBEDDING : MODEL_CHAT;
	model.max_output_tokens = MODEL_MAX_OUT;
	prov.kind = PROVIDER_ECHO;
	CHECK(gw_check_kind(&p, &model, &e) == TG_OK);
	if (gw_check_body(&p, &model, &max_out, &e) != TG_OK) {
		check_refusal(&e);
		CHECK(e.status == 400);
		goto out;
	}
	CHECK(p.n >= 1 && p.n <= GW_MAX_N);
	if (p.endpoint == PROV_CHAT)
		CHECK(max_out >= 1 && max_out <= MODEL_MAX_OUT);
	else
		CHECK(max_out == 0 && p.n == 1 && !p.stream);
	/* the reservation input: never overflows for an accepted body */
	CHECK(max_out * p.n <= (int64_t)MODEL_MAX_OUT * GW_MAX_N);

	pc = (struct prov_call){ .prov = &prov,
				 .endpoint = p.endpoint,
				 .upstream_model = model.upstream_model,
				 .stream = p.stream,
				 .max_tokens = max_out,
				 .raw = copy,
				 .raw_len = size,
				 .req = req,
				 .request_id = "req_fuzz" };
	CHECK(provider_echo.build_request(&pc, &rq) == TG_OK);
	CHECK(rq.body != NULL && rq.len == strlen(rq.body));
	{
		cJSON *j = cJSON_ParseWithLength(rq.body, rq.len);
		const cJSON *m, *o;

		CHECK(cJSON_IsObject(j));
		m = cJSON_GetObjectItemCaseSensitive(j, "model");
		CHECK(cJSON_IsString(m) && strcmp(m->valuestring, model.upstream_model) == 0);
		if (p.stream) {
			o = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
			CHECK(cJSON_IsObject(o));
			CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "include_usage")));
		}
		cJSON_Delete(j);
	}
	echo_check(&pc, &rq);
	native_check(&pc);
out:
	prov_request_free(&rq);
	cJSON_Delete(req);
	free(copy);
	return 0;
}
