/* echo.c - the built-in `echo` provider. It answers locally, the way an
 * OpenAI-compatible server does, so a fresh install works offline and the
 * gateway's relay, metering and billing run exactly as with a real provider:
 * the reply goes through the same sink as upstream bytes.
 *
 * Chat: the reply is "Echo:" followed by the words of the last user message,
 * one token per word, cut at max_tokens. Usage is real for this text:
 * prompt tokens = ceil(bytes/4) of each message + 3 per message.
 * Embeddings: 8 deterministic numbers per input.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/timeutil.h"
#include "core/buf.h"
#include "providers/provider.h"

#define ECHO_DEFAULT_MAX_TOKENS 64

/* Text of a message's content: a string, or an array of {type:"text",text}. */
static void content_text(const cJSON *content, buf_t *out)
{
	const cJSON *part;

	if (cJSON_IsString(content)) {
		buf_puts(out, content->valuestring);
		return;
	}
	cJSON_ArrayForEach(part, content) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");

		if (cJSON_IsString(t)) {
			if (out->len)
				buf_putc(out, ' ');
			buf_puts(out, t->valuestring);
		}
	}
}

static int64_t tokens_of(size_t bytes)
{
	return (int64_t)((bytes + 3) / 4);
}

static int send_json(struct prov_sink *sink, cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	int rc;

	if (!s)
		return TG_ENOMEM;
	rc = sink->on_body(sink->ud, s, strlen(s)) ? TG_EIO : TG_OK;
	cJSON_free(s);
	return rc;
}

static int send_event(struct prov_sink *sink, cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	int rc = TG_ENOMEM;

	if (s) {
		rc = sink->on_body(sink->ud, "data: ", 6) ||
				     sink->on_body(sink->ud, s, strlen(s)) ||
				     sink->on_body(sink->ud, "\n\n", 2) ?
			     TG_EIO :
			     TG_OK;
		cJSON_free(s);
	}
	return rc;
}

static cJSON *chunk_base(const char *id, const char *model, int64_t created)
{
	cJSON *c = cJSON_CreateObject();

	cJSON_AddStringToObject(c, "id", id);
	cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
	cJSON_AddNumberToObject(c, "created", (double)created);
	cJSON_AddStringToObject(c, "model", model);
	return c;
}

static cJSON *usage_obj(int64_t prompt, int64_t completion)
{
	cJSON *u = cJSON_CreateObject(), *d;

	cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
	cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
	cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + completion));
	d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
	cJSON_AddNumberToObject(d, "cached_tokens", 0);
	return u;
}

static int echo_chat(const cJSON *req, struct prov_sink *sink)
{
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages"), *m, *mt;
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
	const cJSON *opts = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
	const char *model_name = cJSON_IsString(model) ? model->valuestring : "echo";
	int64_t prompt = 0, max_tokens = ECHO_DEFAULT_MAX_TOKENS, n_words = 0, created = time_now();
	buf_t last, reply;
	char id[48];
	const char *p, *finish = "stop";
	unsigned char rnd[8];
	int rc = TG_OK, include_usage = 0;

	buf_init(&last, 1 << 20);
	buf_init(&reply, 1 << 20);
	mt = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
	if (!cJSON_IsNumber(mt))
		mt = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
	if (cJSON_IsNumber(mt) && mt->valuedouble >= 1 && mt->valuedouble <= 1e9)
		max_tokens = (int64_t)mt->valuedouble;
	cJSON_ArrayForEach(m, messages) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		buf_t text;

		buf_init(&text, 1 << 20);
		content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &text);
		prompt += tokens_of(text.len) + 3;
		if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
			buf_reset(&last);
			buf_append(&last, buf_cstr(&text), text.len);
		}
		buf_free(&text);
	}
	/* "Echo:" plus the words of the last user message, a token each. */
	buf_puts(&reply, "Echo:");
	n_words = 1;
	for (p = buf_cstr(&last); *p && n_words < max_tokens;) {
		const char *start;

		while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
			p++;
		buf_putc(&reply, ' ');
		buf_append(&reply, start, (size_t)(p - start));
		n_words++;
	}
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p)
		finish = "length";
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(id, sizeof(id), "chatcmpl-echo-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (cJSON_IsObject(opts))
		include_usage = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));

	if (!cJSON_IsTrue(stream)) {
		cJSON *o = cJSON_CreateObject(), *choices, *c, *msg;

		sink->on_status(sink->ud, 200, "application/json", NULL);
		cJSON_AddStringToObject(o, "id", id);
		cJSON_AddStringToObject(o, "object", "chat.completion");
		cJSON_AddNumberToObject(o, "created", (double)created);
		cJSON_AddStringToObject(o, "model", model_name);
		choices = cJSON_AddArrayToObject(o, "choices");
		c = cJSON_CreateObject();
		cJSON_AddNumberToObject(c, "index", 0);
		msg = cJSON_AddObjectToObject(c, "message");
		cJSON_AddStringToObject(msg, "role", "assistant");
		cJSON_AddStringToObject(msg, "content", buf_cstr(&reply));
		cJSON_AddNullToObject(c, "logprobs");
		cJSON_AddStringToObject(c, "finish_reason", finish);
		cJSON_AddItemToArray(choices, c);
		cJSON_AddItemToObject(o, "usage", usage_obj(prompt, n_words));
		rc = send_json(sink, o);
		cJSON_Delete(o);
		goto out;
	}

	sink->on_status(sink->ud, 200, "text/event-stream", NULL);
	{
		cJSON *c = chunk_base(id, model_name, created),
		      *choices = cJSON_AddArrayToObject(c, "choices");
		cJSON *ch = cJSON_CreateObject(), *delta;

		cJSON_AddNumberToObject(ch, "index", 0);
		delta = cJSON_AddObjectToObject(ch, "delta");
		cJSON_AddStringToObject(delta, "role", "assistant");
		cJSON_AddStringToObject(delta, "content", "");
		cJSON_AddNullToObject(ch, "finish_reason");
		cJSON_AddItemToArray(choices, ch);
		rc = send_event(sink, c);
		cJSON_Delete(c);
	}
	/* One chunk per word, as a model would stream tokens. */
	for (p = buf_cstr(&reply); rc == TG_OK && *p;) {
		const char *start = p;
		char word[512];
		size_t wl;
		cJSON *c, *ch, *delta;

		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
		wl = (size_t)(p - start) < sizeof(word) - 1 ? (size_t)(p - start) :
							      sizeof(word) - 1;
		memcpy(word, start, wl);
		word[wl] = '\0';
		c = chunk_base(id, model_name, created);
		ch = cJSON_CreateObject();
		cJSON_AddNumberToObject(ch, "index", 0);
		delta = cJSON_AddObjectToObject(ch, "delta");
		cJSON_AddStringToObject(delta, "content", word);
		cJSON_AddNullToObject(ch, "finish_reason");
		cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), ch);
		rc = send_event(sink, c);
		cJSON_Delete(c);
	}
	if (rc == TG_OK) {
		cJSON *c = chunk_base(id, model_name, created), *ch = cJSON_CreateObject();

		cJSON_AddNumberToObject(ch, "index", 0);
		cJSON_AddObjectToObject(ch, "delta");
		cJSON_AddStringToObject(ch, "finish_reason", finish);
		cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), ch);
		rc = send_event(sink, c);
		cJSON_Delete(c);
	}
	if (rc == TG_OK && include_usage) {
		cJSON *c = chunk_base(id, model_name, created);

		cJSON_AddArrayToObject(c, "choices");
		cJSON_AddItemToObject(c, "usage", usage_obj(prompt, n_words));
		rc = send_event(sink, c);
		cJSON_Delete(c);
	}
	if (rc == TG_OK)
		rc = sink->on_body(sink->ud, "data: [DONE]\n\n", 14) ? TG_EIO : TG_OK;
out:
	buf_free(&last);
	buf_free(&reply);
	return rc;
}

static int echo_embeddings(const cJSON *req, struct prov_sink *sink)
{
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input"), *item;
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
	cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data"), *u;
	int64_t prompt = 0;
	int index = 0, rc;

	cJSON_AddStringToObject(o, "object", "list");
	sink->on_status(sink->ud, 200, "application/json", NULL);
	for (item = cJSON_IsString(input) ? input : (input ? input->child : NULL); item;
	     item = cJSON_IsString(input) ? NULL : item->next) {
		unsigned char h[8];
		cJSON *e = cJSON_CreateObject(), *vec;
		const char *text = cJSON_IsString(item) ? item->valuestring : "";
		int i;

		crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL,
				   0);
		prompt += tokens_of(strlen(text));
		cJSON_AddStringToObject(e, "object", "embedding");
		cJSON_AddNumberToObject(e, "index", index++);
		vec = cJSON_AddArrayToObject(e, "embedding");
		for (i = 0; i < 8; i++)
			cJSON_AddItemToArray(vec, cJSON_CreateNumber(((int)h[i] - 128) / 128.0));
		cJSON_AddItemToArray(data, e);
	}
	cJSON_AddStringToObject(o, "model", cJSON_IsString(model) ? model->valuestring : "echo");
	u = cJSON_AddObjectToObject(o, "usage");
	cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
	cJSON_AddNumberToObject(u, "total_tokens", (double)prompt);
	rc = send_json(sink, o);
	cJSON_Delete(o);
	return rc;
}

/* The request as it would go upstream (built by the OpenAI kind), answered
 * here. */
static int echo_forward(const struct prov_call *c, const struct prov_request *rq,
			struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen)
{
	cJSON *req = cJSON_ParseWithLength(rq->body, rq->len);
	int rc;

	*first_byte_us = 0;
	if (!req) {
		snprintf(err, errlen, "the echo provider could not read the request");
		return PROV_FWD_BROKEN;
	}
	rc = c->endpoint == PROV_EMBEDDINGS ? echo_embeddings(req, sink) : echo_chat(req, sink);
	cJSON_Delete(req);
	/* A sink that stopped the answer is a client gone; anything else broke. */
	return rc == TG_OK ? PROV_FWD_OK : rc == TG_EIO ? PROV_FWD_ABORTED : PROV_FWD_BROKEN;
}

const struct provider_ops provider_echo = {
	.kind = "echo",
	.build_request = openai_build_request,
	.forward = echo_forward,
	.parse_response = openai_parse_response,
	.parse_stream_event = openai_parse_stream_event,
	.extract_usage = openai_extract_usage,
};
