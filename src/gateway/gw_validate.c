/* gw_validate.c - parse and validate a gateway request; see gw_validate.h. */
#include "gateway/gw_validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"

int gw_fail(struct gw_error *e, int status, const char *type, const char *code, const char *fmt,
	    ...)
{
	va_list ap;

	e->status = status;
	e->type = type;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return TG_EINVAL;
}

/* A whole number member: TG_OK with *present (and *out when present). */
static int get_int(const cJSON *o, const char *name, int64_t *out, int *present)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*present = v && !cJSON_IsNull(v);
	if (!*present)
		return TG_OK;
	/* Range first: converting an out-of-range double to int64 is undefined. */
	if (!cJSON_IsNumber(v) ||
	    !(v->valuedouble >= -9007199254740992.0 && v->valuedouble <= 9007199254740992.0) ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return TG_EINVAL;
	*out = (int64_t)v->valuedouble;
	return TG_OK;
}

/* A key the gateway reads (and bills by) given twice: the provider may read
 * the other copy (most JSON libraries keep the last, cJSON the first), so
 * `max_tokens: 1, ..., max_tokens: 4000` would be reserved and capped at 1
 * but answered with 4000. Only these keys are counted: O(keys x body). */
static const char *repeated_key(const cJSON *obj)
{
	static const char *const watched[] = { "model",
					       "messages",
					       "input",
					       "stream",
					       "stream_options",
					       "max_tokens",
					       "max_completion_tokens",
					       "n",
					       "include_usage" };
	const cJSON *it;
	size_t i;

	for (i = 0; i < TG_ARRAY_LEN(watched); i++) {
		int seen = 0;

		for (it = obj ? obj->child : NULL; it; it = it->next)
			if (it->string && strcmp(it->string, watched[i]) == 0 && ++seen > 1)
				return watched[i];
	}
	return NULL;
}

static int parse_chat(const cJSON *req, struct gw_parsed *p, struct gw_error *e)
{
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
	const cJSON *opts = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
	int64_t mt = 0, n = 1;
	int present = 0;

	if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
		return gw_fail(e, 400, "invalid_request_error", "invalid_messages",
			       "'messages' must be a non-empty array of chat messages.");
	if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))
		return gw_fail(e, 400, "invalid_request_error", "invalid_type",
			       "'stream' must be true or false.");
	p->stream = cJSON_IsTrue(stream);
	if (opts && !cJSON_IsNull(opts)) {
		if (!cJSON_IsObject(opts))
			return gw_fail(e, 400, "invalid_request_error", "invalid_type",
				       "'stream_options' must be an object.");
		p->want_usage = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
	}
	if (get_int(req, "max_completion_tokens", &mt, &present) ||
	    (!present && get_int(req, "max_tokens", &mt, &present)))
		return gw_fail(e, 400, "invalid_request_error", "invalid_type",
			       "'max_tokens' must be a whole number.");
	if (present && mt < 1)
		return gw_fail(e, 400, "invalid_request_error", "invalid_value",
			       "'max_tokens' must be at least 1.");
	p->max_out_given = present;
	p->max_out = present ? mt : 0;
	if (get_int(req, "n", &n, &present) || (present && (n < 1 || n > GW_MAX_N)))
		return gw_fail(e, 400, "invalid_request_error", "invalid_value",
			       "'n' must be a whole number from 1 to %d.", GW_MAX_N);
	p->n = present ? n : 1;
	return TG_OK;
}

static int parse_embeddings(const cJSON *req, struct gw_error *e)
{
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input"), *it;

	if (cJSON_IsString(input))
		return TG_OK;
	if (cJSON_IsArray(input) && cJSON_GetArraySize(input) > 0) {
		cJSON_ArrayForEach(it, input)
			if (!cJSON_IsString(it) && !cJSON_IsNumber(it) && !cJSON_IsArray(it))
				goto bad;
		return TG_OK;
	}
bad:
	return gw_fail(e, 400, "invalid_request_error", "invalid_input",
		       "'input' must be a string or a non-empty array of strings.");
}

int gw_parse_request(const cJSON *req, enum prov_endpoint ep, struct gw_parsed *out,
		     struct gw_error *err)
{
	const cJSON *model;
	const char *dup;

	memset(out, 0, sizeof(*out));
	out->endpoint = ep;
	out->n = 1;
	if (!cJSON_IsObject(req))
		return gw_fail(err, 400, "invalid_request_error", "invalid_json",
			       "The request body must be a JSON object.");
	dup = repeated_key(req);
	if (!dup)
		dup = repeated_key(cJSON_GetObjectItemCaseSensitive(req, "stream_options"));
	if (dup)
		return gw_fail(err, 400, "invalid_request_error", "duplicate_key",
			       "The request gives '%s' more than once; send each key once.", dup);
	model = cJSON_GetObjectItemCaseSensitive(req, "model");
	if (!cJSON_IsString(model) || !model->valuestring[0])
		return gw_fail(err, 400, "invalid_request_error", "missing_model",
			       "'model' is required: a model name from GET /v1/models.");
	out->model = model->valuestring;
	if (ep == PROV_EMBEDDINGS)
		parse_embeddings(req, &out->body_err);
	else
		parse_chat(req, out, &out->body_err);
	return TG_OK;
}

int gw_check_kind(const struct gw_parsed *p, const struct model *m, struct gw_error *err)
{
	int embeddings = p->endpoint == PROV_EMBEDDINGS;

	if ((m->kind == MODEL_EMBEDDING) == embeddings)
		return TG_OK;
	return gw_fail(err, 400, "invalid_request_error", "wrong_model_kind", "%s",
		       embeddings ?
			       "This model is not an embedding model; use /v1/chat/completions." :
			       "This is an embedding model; use /v1/embeddings.");
}

int gw_check_body(const struct gw_parsed *p, const struct model *m, int64_t *max_out,
		  struct gw_error *err)
{
	int embeddings = p->endpoint == PROV_EMBEDDINGS;

	*max_out = 0;
	if (p->body_err.status) {
		*err = p->body_err;
		return TG_EINVAL;
	}
	if (embeddings)
		return TG_OK;
	if (p->max_out_given && p->max_out > m->max_output_tokens)
		return gw_fail(err, 400, "invalid_request_error", "invalid_value",
			       "max_tokens is too large: %lld. The model '%s' supports at most "
			       "%lld completion tokens.",
			       (long long)p->max_out, m->name, (long long)m->max_output_tokens);
	*max_out = p->max_out_given ? p->max_out : m->max_output_tokens;
	return TG_OK;
}
