/* openai.c - the OpenAI-compatible provider kind (OpenAI, Groq, Mistral,
 * Together, DeepSeek, OpenRouter, vLLM, Ollama...): the client's format is
 * the provider's, so nothing is translated.
 *
 * The request is the client's body with only the model's value replaced (and
 * usage asked for in streams), byte for byte otherwise; answers and stream
 * events pass on as the provider sent them, marked PROV_RAW.
 */
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"
#include "core/json_text.h"
#include "providers/provider.h"

static const char *endpoint_path(enum prov_endpoint e)
{
	return e == PROV_EMBEDDINGS ? "/embeddings" : "/chat/completions";
}

/* The edited text; NULL when the text is not simple enough to edit safely
 * (the caller prints the parsed document instead). */
static char *body_edited(const struct prov_call *c, size_t *len)
{
	static const char usage_on[] = "{\"include_usage\":true}";
	const char *raw = c->raw;
	size_t n = c->raw_len, ms, me, os = 0, oe = 0, close;
	struct json_edit e[2];
	int ne = 0, so = 0;
	char *out = NULL;

	if (!raw || json_member(raw, n, "model", &ms, &me) != 1 || raw[ms] != '"')
		return NULL;
	if (c->stream) {
		so = json_member(raw, n, "stream_options", &os, &oe);
		if (so < 0 || (so == 1 && (oe - os != sizeof(usage_on) - 1 ||
					   memcmp(raw + os, usage_on, oe - os) != 0)))
			return NULL;
	}
	memset(e, 0, sizeof(e));
	buf_init(&e[0].text, 2 * CATALOG_NAME_MAX + 8);
	e[0].start = ms;
	e[0].end = me;
	ne = 1;
	if (json_put_string(&e[0].text, c->upstream_model))
		goto out;
	if (c->stream && so == 0) {
		/* The object ends at its last '}' (only whitespace may follow). */
		for (close = n; close > 0 && raw[close - 1] != '}'; close--)
			;
		if (close == 0)
			goto out;
		buf_init(&e[1].text, 64);
		e[1].start = e[1].end = close - 1;
		ne = 2;
		if (buf_puts(&e[1].text, ",\"stream_options\":") || buf_puts(&e[1].text, usage_on))
			goto out;
	}
	out = json_edits_apply(raw, n, e, ne, len);
out:
	json_edits_free(e, ne);
	return out;
}

int openai_build_request(const struct prov_call *c, struct prov_request *out)
{
	cJSON *m;

	memset(out, 0, sizeof(*out));
	snprintf(out->path, sizeof(out->path), "%s", endpoint_path(c->endpoint));
	out->auth_prefix = "Authorization: Bearer ";
	if ((out->body = body_edited(c, &out->len)))
		return TG_OK;
	/* Print the parsed document with the same two changes. */
	m = cJSON_GetObjectItemCaseSensitive(c->req, "model");
	if (!cJSON_IsString(m) || !cJSON_SetValuestring(m, c->upstream_model))
		return TG_ENOMEM;
	if (c->stream) {
		cJSON *opts = cJSON_GetObjectItemCaseSensitive(c->req, "stream_options");

		if (!cJSON_IsObject(opts)) {
			cJSON_DeleteItemFromObjectCaseSensitive(c->req, "stream_options");
			opts = cJSON_AddObjectToObject(c->req, "stream_options");
		}
		cJSON_DeleteItemFromObjectCaseSensitive(opts, "include_usage");
		if (!cJSON_AddTrueToObject(opts, "include_usage"))
			return TG_ENOMEM;
	}
	if (!(out->body = cJSON_PrintUnformatted(c->req)))
		return TG_ENOMEM;
	out->len = strlen(out->body);
	return TG_OK;
}

void prov_request_free(struct prov_request *rq)
{
	cJSON_free(rq->body);
	rq->body = NULL;
	rq->len = 0;
}

int openai_extract_usage(const cJSON *obj, struct prov_usage *u)
{
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
	const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
	const cJSON *cached = det ? cJSON_GetObjectItemCaseSensitive(det, "cached_tokens") : NULL;

	if (!cJSON_IsObject(usage) || !cJSON_IsNumber(pt) || pt->valuedouble < 0 ||
	    pt->valuedouble > 1e12)
		return 0;
	u->prompt = (int64_t)pt->valuedouble;
	u->completion = cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e12 ?
				(int64_t)ct->valuedouble :
				0;
	u->cached = cJSON_IsNumber(cached) && cached->valuedouble >= 0 &&
				    cached->valuedouble <= pt->valuedouble ?
			    (int64_t)cached->valuedouble :
			    0;
	u->have = 1;
	return 1;
}

int openai_parse_response(const struct prov_call *c, const char *body, size_t n, cJSON **answer,
			  int *flags, struct prov_usage *u)
{
	cJSON *obj = json_parse(body, n, NULL);

	(void)c;
	*answer = NULL;
	*flags = PROV_RAW;
	if (!cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		return TG_EINVAL;
	}
	openai_extract_usage(obj, u);
	*answer = obj;
	return TG_OK;
}

int openai_parse_stream_event(struct prov_stream *s, const char *event, const char *data,
			      size_t len, prov_emit_fn emit, void *ud)
{
	cJSON *obj = json_parse(data, len, NULL);

	(void)event;
	if (obj && s->usage)
		openai_extract_usage(obj, s->usage);
	/* Text that is not JSON is relayed as it came (obj NULL). */
	return emit(ud, obj, data, len, PROV_RAW);
}

int prov_http_forward(const struct prov_call *c, const struct prov_request *rq,
		      struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen)
{
	return prov_http_post(c->prov, rq, c->request_id, sink, first_byte_us, err, errlen);
}

const struct provider_ops provider_openai = {
	.kind = "openai",
	.build_request = openai_build_request,
	.forward = prov_http_forward,
	.parse_response = openai_parse_response,
	.parse_stream_event = openai_parse_stream_event,
	.extract_usage = openai_extract_usage,
};

/* Azure OpenAI: the same format, the deployment in the URL, the version in
 * the query, the key in an api-key header. The base URL is the resource's
 * (https://NAME.openai.azure.com); the model's upstream name is the
 * deployment's. */
#define AZURE_API_VERSION_DEFAULT "2024-10-21"

static int azure_build_request(const struct prov_call *c, struct prov_request *out)
{
	const char *ver = c->prov->api_version[0] ? c->prov->api_version :
						    AZURE_API_VERSION_DEFAULT;
	int rc = openai_build_request(c, out);
	int n;

	if (rc != TG_OK)
		return rc;
	n = snprintf(out->path, sizeof(out->path), "/openai/deployments/%s%s?api-version=%s",
		     c->upstream_model, endpoint_path(c->endpoint), ver);
	if (n < 0 || (size_t)n >= sizeof(out->path)) {
		prov_request_free(out);
		return TG_ETOOBIG;
	}
	out->auth_prefix = "api-key: ";
	return TG_OK;
}

const struct provider_ops provider_azure = {
	.kind = "azure",
	.build_request = azure_build_request,
	.forward = prov_http_forward,
	.parse_response = openai_parse_response,
	.parse_stream_event = openai_parse_stream_event,
	.extract_usage = openai_extract_usage,
};
