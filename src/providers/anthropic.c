/* anthropic.c - the Anthropic kind (the Messages API, api.anthropic.com/v1):
 * OpenAI chat completions translated to POST /messages, and its answers,
 * SSE events and errors translated back to the OpenAI shape.
 *
 * Requests: system and developer messages become the top-level system text;
 * user, assistant and tool messages become alternating user and assistant
 * turns of content blocks (text, image, tool_use, tool_result; consecutive
 * turns of one role merged into one); tools, tool_choice and the sampling
 * fields are renamed; fields Anthropic has no use for are dropped. Anthropic
 * has no JSON mode, so a JSON response_format becomes one forced tool whose
 * input is handed back to the client as the message's text.
 *
 * Answers, chunks and errors come back as parsed OpenAI-shaped trees (never
 * PROV_RAW). Anthropic's input_tokens leave out the cache reads and writes,
 * so the prompt of the usage adds them up.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"
#include "providers/provider.h"

#define ANT_VERSION_DEFAULT "2023-06-01"
#define ANT_TEXT_MAX BUF_MAX_LARGE /* the text of one message or answer */
#define ANT_ID_MAX 160
#define ANT_TOOL_NAME_MAX 64 /* Anthropic's longest tool name */
#define ANT_JSON_TOOL "json_output"
#define ANT_BLOCKS_MAX 512 /* content blocks a stream follows; later ones are dropped */
/* The turn put before a conversation that starts with the assistant's. */
#define ANT_LEAD_TEXT "(continue)"

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* The string member key of o, or NULL. */
static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* v when it is an array, else NULL (to walk it with cJSON_ArrayForEach). */
static const cJSON *array_of(const cJSON *v)
{
	return cJSON_IsArray(v) ? v : NULL;
}

/* A member that is there and not null. */
static const cJSON *given(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);

	return v && !cJSON_IsNull(v) ? v : NULL;
}

/* Why the request cannot go to Anthropic (answered 400): TG_EINVAL. */
static int refuse(struct prov_request *out, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct prov_request *out, const char *param, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
	snprintf(out->param, sizeof(out->param), "%s", param);
	return TG_EINVAL;
}

/* Adds item to arr; consumed: freed here when it cannot be added. */
static int push(cJSON *arr, cJSON *item)
{
	if (!item)
		return TG_ENOMEM;
	if (!arr || !cJSON_AddItemToArray(arr, item)) {
		cJSON_Delete(item);
		return TG_ENOMEM;
	}
	return TG_OK;
}

/* Adds item to obj as key; consumed like push. */
static int put(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return TG_ENOMEM;
	if (!obj || !cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return TG_ENOMEM;
	}
	return TG_OK;
}

/* A token count: 1 with *out when v is one. */
static int count_of(const cJSON *v, int64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1e12))
		return 0;
	*out = (int64_t)v->valuedouble;
	return 1;
}

/* The forced tool that stands for a JSON response_format: 1 with its name
 * (and the schema of a json_schema, else NULL) when req asks for JSON. */
static int json_tool(const cJSON *req, char name[ANT_TOOL_NAME_MAX + 1], const cJSON **schema)
{
	const cJSON *fmt = given(req, "response_format"), *js = get(fmt, "json_schema");
	const char *type = str_of(fmt, "type"), *n = str_of(js, "name");
	size_t len = n ? strlen(n) : 0;

	*schema = NULL;
	snprintf(name, ANT_TOOL_NAME_MAX + 1, "%s", ANT_JSON_TOOL);
	if (!type)
		return 0;
	if (strcmp(type, "json_object") == 0)
		return 1;
	if (strcmp(type, "json_schema") != 0)
		return 0;
	*schema = get(js, "schema");
	if (len > 0 && len <= ANT_TOOL_NAME_MAX &&
	    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len)
		snprintf(name, ANT_TOOL_NAME_MAX + 1, "%s", n);
	return 1;
}

/* 1 when the call asks for JSON, with the forced tool's name. */
static int call_json_tool(const struct prov_call *c, char name[ANT_TOOL_NAME_MAX + 1])
{
	const cJSON *schema;

	return json_tool(c ? c->req : NULL, name, &schema);
}

/* --- requests --- */

static cJSON *text_block(const char *s)
{
	cJSON *b = cJSON_CreateObject();

	if (b && (!cJSON_AddStringToObject(b, "type", "text") ||
		  !cJSON_AddStringToObject(b, "text", s))) {
		cJSON_Delete(b);
		return NULL;
	}
	return b;
}

/* {"type":type,"source":{"type":"base64","media_type":mime,"data":data}}, or
 * with data NULL {"type":type,"source":{"type":"url","url":url}}. */
static cJSON *source_block(const char *type, const char *mime, const char *data, const char *url)
{
	cJSON *b = cJSON_CreateObject(), *src;

	if (!b || !cJSON_AddStringToObject(b, "type", type) ||
	    !(src = cJSON_AddObjectToObject(b, "source")) ||
	    !cJSON_AddStringToObject(src, "type", data ? "base64" : "url") ||
	    (data ? !cJSON_AddStringToObject(src, "media_type", mime) ||
			     !cJSON_AddStringToObject(src, "data", data) :
		    !cJSON_AddStringToObject(src, "url", url))) {
		cJSON_Delete(b);
		return NULL;
	}
	return b;
}

/* block into the last turn of messages when it is role's, else into a new
 * turn; consumed. */
static int add_block(cJSON *messages, const char *role, cJSON *block)
{
	cJSON *last = messages->child ? messages->child->prev : NULL, *turn, *content = NULL;
	const char *last_role = str_of(last, "role");

	if (!block)
		return TG_ENOMEM;
	if (last_role && strcmp(last_role, role) == 0) {
		content = cJSON_GetObjectItemCaseSensitive(last, "content");
	} else {
		/* Once pushed, the turn is the body's (freed with it). */
		turn = cJSON_CreateObject();
		if (push(messages, turn) || !cJSON_AddStringToObject(turn, "role", role) ||
		    !(content = cJSON_AddArrayToObject(turn, "content"))) {
			cJSON_Delete(block);
			return TG_ENOMEM;
		}
	}
	return push(content, block);
}

/* The text of a content that may only hold text: a string, or an array of
 * {"type":"text","text":...} parts (concatenated), appended to b. */
static int text_of(const cJSON *content, buf_t *b, struct prov_request *out)
{
	const cJSON *p;
	int rc;

	if (!content || cJSON_IsNull(content))
		return TG_OK;
	if (cJSON_IsString(content))
		return buf_puts(b, content->valuestring);
	if (!cJSON_IsArray(content))
		return refuse(out, "messages",
			      "A message's content must be a string or an array of content parts.");
	cJSON_ArrayForEach(p, content) {
		const char *type = str_of(p, "type"), *t = str_of(p, "text");

		if (!type || strcmp(type, "text") != 0 || !t)
			return refuse(out, "messages",
				      "System, developer and tool messages may only hold text.");
		if ((rc = buf_puts(b, t)))
			return rc;
	}
	return TG_OK;
}

/* The parts of "data:<mime>[;...];base64,<data>": 0, or -1 when url is not
 * one. */
static int data_url(const char *url, char *mime, size_t size, const char **data)
{
	const char *comma = strchr(url, ','), *semi;
	size_t n;

	if (strncasecmp(url, "data:", 5) != 0 || !comma || comma - url < 12 ||
	    strncasecmp(comma - 7, ";base64", 7) != 0)
		return -1;
	semi = memchr(url + 5, ';', (size_t)(comma - url - 5));
	n = (size_t)(semi - (url + 5));
	if (n == 0 || n >= size || !comma[1])
		return -1;
	memcpy(mime, url + 5, n);
	mime[n] = '\0';
	*data = comma + 1;
	return 0;
}

/* One part of a user message's content array, into *block (NULL: nothing
 * to send, an empty text: Anthropic refuses empty text blocks). */
static int user_block(const cJSON *p, cJSON **block, struct prov_request *out)
{
	const char *type = str_of(p, "type"), *url, *data, *t;
	const cJSON *img;
	char mime[128];

	*block = NULL;
	if (!type)
		return refuse(out, "messages", "Each content part needs a 'type'.");
	if (strcmp(type, "text") == 0) {
		if (!(t = str_of(p, "text")))
			return refuse(out, "messages", "A text part needs its 'text'.");
		if (!t[0])
			return TG_OK;
		return (*block = text_block(t)) ? TG_OK : TG_ENOMEM;
	}
	if (strcmp(type, "image_url") == 0) {
		img = get(p, "image_url");
		url = cJSON_IsString(img) ? img->valuestring : str_of(img, "url");
		if (!url)
			return refuse(out, "messages", "An image_url part needs its 'url'.");
		if (strncasecmp(url, "data:", 5) == 0) {
			if (data_url(url, mime, sizeof(mime), &data))
				return refuse(
					out, "messages",
					"An image data URL must be data:<type>;base64,<data>.");
			*block = source_block("image", mime, data, NULL);
		} else if (strncasecmp(url, "https://", 8) == 0 ||
			   strncasecmp(url, "http://", 7) == 0) {
			*block = source_block("image", NULL, NULL, url);
		} else {
			return refuse(out, "messages",
				      "An image URL must be an http(s) URL or a base64 data URL.");
		}
		return *block ? TG_OK : TG_ENOMEM;
	}
	if (strcmp(type, "file") == 0) {
		url = str_of(get(p, "file"), "file_data");
		if (!url || data_url(url, mime, sizeof(mime), &data) ||
		    strcasecmp(mime, "application/pdf") != 0)
			return refuse(out, "messages",
				      "A file part must carry a PDF as a base64 data URL in its "
				      "file_data (Anthropic cannot read OpenAI file ids).");
		return (*block = source_block("document", mime, data, NULL)) ? TG_OK : TG_ENOMEM;
	}
	return refuse(out, "messages", "Content parts of type '%.40s' cannot be sent to Anthropic.",
		      type);
}

static int user_message(const cJSON *content, cJSON *messages, struct prov_request *out)
{
	const cJSON *p;
	cJSON *block;
	int rc;

	if (cJSON_IsString(content))
		return content->valuestring[0] ?
			       add_block(messages, "user", text_block(content->valuestring)) :
			       TG_OK;
	if (!cJSON_IsArray(content))
		return refuse(out, "messages",
			      "A user message's content must be a string or an array of parts.");
	cJSON_ArrayForEach(p, content) {
		if ((rc = user_block(p, &block, out)))
			return rc;
		if (block && (rc = add_block(messages, "user", block)))
			return rc;
	}
	return TG_OK;
}

/* A tool call's arguments (a JSON text of an object; "" and null stand for
 * none) as the object tool_use.input takes, into *input. */
static int call_input(const cJSON *fn, cJSON **input, struct prov_request *out)
{
	const cJSON *a = get(fn, "arguments");
	const char *s = cJSON_IsString(a) ? a->valuestring : NULL;
	const char *name = str_of(fn, "name");

	*input = NULL;
	if (cJSON_IsObject(a))
		return (*input = cJSON_Duplicate(a, 1)) ? TG_OK : TG_ENOMEM;
	if (a && !s && !cJSON_IsNull(a))
		return refuse(out, "messages", "A tool call's arguments must be a JSON text.");
	if (s && s[strspn(s, " \t\r\n")]) {
		*input = json_parse(s, strlen(s), NULL);
		if (cJSON_IsObject(*input))
			return TG_OK;
		cJSON_Delete(*input);
		*input = NULL;
		return refuse(out, "messages",
			      "The arguments of tool call '%.60s' are not a JSON object.",
			      name ? name : "");
	}
	return (*input = cJSON_CreateObject()) ? TG_OK : TG_ENOMEM;
}

static int assistant_message(const cJSON *m, cJSON *messages, struct prov_request *out)
{
	const cJSON *content = get(m, "content"), *calls = given(m, "tool_calls"), *p, *tc;
	cJSON *block, *input;
	const char *t;
	int rc;

	if (cJSON_IsString(content)) {
		if (content->valuestring[0] &&
		    (rc = add_block(messages, "assistant", text_block(content->valuestring))))
			return rc;
	} else if (cJSON_IsArray(content)) {
		cJSON_ArrayForEach(p, content) {
			t = str_of(p, "text") ? str_of(p, "text") : str_of(p, "refusal");
			if (!t)
				return refuse(out, "messages",
					      "An assistant message may only hold text parts.");
			if (t[0] && (rc = add_block(messages, "assistant", text_block(t))))
				return rc;
		}
	} else if (content && !cJSON_IsNull(content)) {
		return refuse(out, "messages",
			      "An assistant message's content must be a string or an array.");
	}
	if (calls && !cJSON_IsArray(calls))
		return refuse(out, "messages", "'tool_calls' must be an array.");
	cJSON_ArrayForEach(tc, calls) {
		const cJSON *fn = get(tc, "function");
		const char *id = str_of(tc, "id"), *name = str_of(fn, "name");

		if (!id || !id[0] || !name || !name[0])
			return refuse(out, "messages",
				      "A tool call needs its 'id' and its function's name.");
		if ((rc = call_input(fn, &input, out)))
			return rc;
		block = cJSON_CreateObject();
		if (!block || !cJSON_AddStringToObject(block, "type", "tool_use") ||
		    !cJSON_AddStringToObject(block, "id", id) ||
		    !cJSON_AddStringToObject(block, "name", name)) {
			cJSON_Delete(input);
			cJSON_Delete(block);
			return TG_ENOMEM;
		}
		if (put(block, "input", input)) { /* input freed by put */
			cJSON_Delete(block);
			return TG_ENOMEM;
		}
		if ((rc = add_block(messages, "assistant", block)))
			return rc;
	}
	return TG_OK;
}

/* A tool's result: a tool_result block of a user turn. */
static int tool_message(const cJSON *m, cJSON *messages, struct prov_request *out)
{
	const char *id = str_of(m, "tool_call_id");
	cJSON *block = NULL;
	buf_t text;
	int rc;

	if (!id || !id[0])
		return refuse(out, "messages", "A tool message needs its 'tool_call_id'.");
	buf_init(&text, ANT_TEXT_MAX);
	if ((rc = text_of(get(m, "content"), &text, out)))
		goto out;
	rc = TG_ENOMEM;
	if (!(block = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(block, "type", "tool_result") ||
	    !cJSON_AddStringToObject(block, "tool_use_id", id) ||
	    (text.len && !cJSON_AddStringToObject(block, "content", text.data)))
		goto out;
	rc = add_block(messages, "user", block);
	block = NULL;
out:
	cJSON_Delete(block);
	buf_free(&text);
	return rc;
}

static int add_message(const cJSON *m, cJSON *messages, buf_t *sys, struct prov_request *out)
{
	const char *role = str_of(m, "role");
	buf_t text;
	int rc;

	if (!role)
		return refuse(out, "messages", "Each message must be an object with a 'role'.");
	if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
		buf_init(&text, ANT_TEXT_MAX);
		rc = text_of(get(m, "content"), &text, out);
		if (rc == TG_OK && text.len) {
			if (sys->len)
				rc = buf_puts(sys, "\n\n");
			if (rc == TG_OK)
				rc = buf_append(sys, text.data, text.len);
		}
		buf_free(&text);
		return rc;
	}
	if (strcmp(role, "user") == 0)
		return user_message(get(m, "content"), messages, out);
	if (strcmp(role, "assistant") == 0)
		return assistant_message(m, messages, out);
	if (strcmp(role, "tool") == 0)
		return tool_message(m, messages, out);
	return refuse(out, "messages", "Messages of role '%.40s' cannot be sent to Anthropic.",
		      role);
}

/* Anthropic refuses a final assistant turn (a prefill) that ends with
 * whitespace: its trailing text loses it, and a block or turn left empty
 * goes. */
static void trim_final(cJSON *messages)
{
	cJSON *last = messages->child ? messages->child->prev : NULL, *content, *b, *t;
	size_t n;

	if (!last || strcmp(str_of(last, "role"), "assistant") != 0)
		return;
	content = cJSON_GetObjectItemCaseSensitive(last, "content");
	while ((b = content && content->child ? content->child->prev : NULL)) {
		t = cJSON_GetObjectItemCaseSensitive(b, "text");
		if (!cJSON_IsString(t) || strcmp(str_of(b, "type"), "text") != 0)
			break;
		n = strlen(t->valuestring);
		while (n > 0 && strchr(" \t\r\n", t->valuestring[n - 1]))
			n--;
		t->valuestring[n] = '\0'; /* shorter: in place */
		if (n > 0)
			break;
		cJSON_Delete(cJSON_DetachItemViaPointer(content, b));
	}
	if (!content || !content->child)
		cJSON_Delete(cJSON_DetachItemViaPointer(messages, last));
}

/* The messages, alternating and starting with a user turn. */
static int add_messages(const cJSON *req, cJSON *body, buf_t *sys, struct prov_request *out)
{
	const cJSON *src = get(req, "messages"), *m;
	cJSON *messages = cJSON_AddArrayToObject(body, "messages"), *lead, *content;
	int rc;

	if (!messages)
		return TG_ENOMEM;
	if (!cJSON_IsArray(src))
		return refuse(out, "messages", "'messages' must be an array.");
	cJSON_ArrayForEach(m, src) {
		if ((rc = add_message(m, messages, sys, out)))
			return rc;
	}
	trim_final(messages);
	if (!messages->child)
		return refuse(out, "messages",
			      "Anthropic needs at least one user or assistant message with "
			      "content besides the system prompt.");
	/* Anthropic documents that the first turn must be the user's (its own
	 * API has since let an assistant turn lead, Bedrock and Vertex still
	 * refuse one). A conversation that starts with the assistant's turn
	 * (history cut from the front, a greeting) gets a minimal user turn
	 * before it rather than a refusal: the request works everywhere and the
	 * assistant's words stay where the client put them. */
	if (strcmp(str_of(messages->child, "role"), "user") != 0) {
		lead = cJSON_CreateObject();
		if (!lead || !cJSON_AddStringToObject(lead, "role", "user") ||
		    !(content = cJSON_AddArrayToObject(lead, "content")) ||
		    push(content, text_block(ANT_LEAD_TEXT)) ||
		    !cJSON_InsertItemInArray(messages, 0, lead)) {
			cJSON_Delete(lead);
			return TG_ENOMEM;
		}
	}
	return TG_OK;
}

/* Copies a number from the client's field to Anthropic's, capped at max. */
static int copy_number(const cJSON *req, const char *from, cJSON *body, const char *to, double max,
		       struct prov_request *out)
{
	const cJSON *v = given(req, from);

	if (!v)
		return TG_OK;
	if (!cJSON_IsNumber(v))
		return refuse(out, from, "'%s' must be a number.", from);
	return cJSON_AddNumberToObject(body, to, v->valuedouble > max ? max : v->valuedouble) ?
		       TG_OK :
		       TG_ENOMEM;
}

static int add_stop(const cJSON *req, cJSON *body, struct prov_request *out)
{
	const cJSON *v = given(req, "stop"), *s;
	cJSON *stops;

	if (!v)
		return TG_OK;
	if (!cJSON_IsString(v) && !cJSON_IsArray(v))
		return refuse(out, "stop", "'stop' must be a string or an array of strings.");
	cJSON_ArrayForEach(s, array_of(v)) {
		if (!cJSON_IsString(s))
			return refuse(out, "stop",
				      "'stop' must be a string or an array of strings.");
	}
	if (cJSON_IsString(v) ? !v->valuestring[0] : !v->child)
		return TG_OK;
	if (!(stops = cJSON_AddArrayToObject(body, "stop_sequences")))
		return TG_ENOMEM;
	if (cJSON_IsString(v))
		return push(stops, cJSON_CreateString(v->valuestring));
	cJSON_ArrayForEach(s, v) {
		if (s->valuestring[0] && push(stops, cJSON_CreateString(s->valuestring)))
			return TG_ENOMEM;
	}
	return TG_OK;
}

/* Fields with no Anthropic counterpart that change the answer: refused. */
static int check_unsupported(const cJSON *req, struct prov_request *out)
{
	const cJSON *n = given(req, "n"), *lp = given(req, "logprobs");
	const cJSON *top = given(req, "top_logprobs");

	if (n && (!cJSON_IsNumber(n) || n->valuedouble != 1))
		return refuse(out, "n", "Anthropic returns one choice per request; n must be 1.");
	if (lp && !cJSON_IsFalse(lp))
		return refuse(out, "logprobs", "Anthropic does not return log probabilities.");
	if (top && !(cJSON_IsNumber(top) && top->valuedouble == 0))
		return refuse(out, "top_logprobs", "Anthropic does not return log probabilities.");
	return TG_OK;
}

static int add_sampling(const struct prov_call *c, cJSON *body, struct prov_request *out)
{
	const cJSON *req = c->req, *v = given(req, "max_completion_tokens");
	const char *user = str_of(req, "user");
	cJSON *meta;
	int rc;

	if (!v)
		v = given(req, "max_tokens");
	if (v && !cJSON_IsNumber(v))
		return refuse(out, "max_tokens", "'max_tokens' must be a number.");
	if (!cJSON_AddNumberToObject(body, "max_tokens",
				     v ? v->valuedouble : (double)c->max_tokens))
		return TG_ENOMEM;
	/* Anthropic's temperature goes from 0 to 1 (OpenAI's to 2). */
	if ((rc = copy_number(req, "temperature", body, "temperature", 1, out)) ||
	    (rc = copy_number(req, "top_p", body, "top_p", 1, out)) ||
	    (rc = add_stop(req, body, out)))
		return rc;
	if ((c->stream || cJSON_IsTrue(get(req, "stream"))) &&
	    !cJSON_AddTrueToObject(body, "stream"))
		return TG_ENOMEM;
	if (user && user[0] &&
	    (!(meta = cJSON_AddObjectToObject(body, "metadata")) ||
	     !cJSON_AddStringToObject(meta, "user_id", user)))
		return TG_ENOMEM;
	return TG_OK;
}

/* {"name":name,"description":desc,"input_schema":schema (a copy, or an
 * empty object schema)} */
static cJSON *tool_def(const char *name, const char *desc, const cJSON *schema)
{
	cJSON *t = cJSON_CreateObject(), *s;

	if (!t || !cJSON_AddStringToObject(t, "name", name) ||
	    (desc && !cJSON_AddStringToObject(t, "description", desc)))
		goto fail;
	if (schema) {
		if (put(t, "input_schema", cJSON_Duplicate(schema, 1)))
			goto fail;
	} else if (!(s = cJSON_AddObjectToObject(t, "input_schema")) ||
		   !cJSON_AddStringToObject(s, "type", "object") ||
		   !cJSON_AddObjectToObject(s, "properties")) {
		goto fail;
	}
	return t;
fail:
	cJSON_Delete(t);
	return NULL;
}

/* response_format json_object / json_schema: one tool, forced. */
static int add_json_tool(const cJSON *req, cJSON *body, struct prov_request *out)
{
	const cJSON *fmt = given(req, "response_format"), *schema, *tools = given(req, "tools");
	const char *type = str_of(fmt, "type");
	const char *desc = str_of(get(fmt, "json_schema"), "description");
	char name[ANT_TOOL_NAME_MAX + 1];
	cJSON *t, *choice, *obj = NULL;
	int rc = TG_ENOMEM;

	if (fmt && !type)
		return refuse(out, "response_format", "'response_format' needs a 'type'.");
	if (!json_tool(req, name, &schema)) {
		if (type && strcmp(type, "text") != 0)
			return refuse(out, "response_format",
				      "response_format '%.40s' is not known.", type);
		return TG_OK;
	}
	if (strcmp(type, "json_schema") == 0 && !cJSON_IsObject(schema))
		return refuse(out, "response_format",
			      "A json_schema response_format needs json_schema.schema.");
	if (cJSON_GetArraySize(tools) > 0)
		return refuse(out, "response_format",
			      "Anthropic has no JSON mode: the gateway asks for JSON through a "
			      "tool, so response_format cannot be used together with 'tools'.");
	if (!schema) {
		if (!(obj = cJSON_CreateObject()) ||
		    !cJSON_AddStringToObject(obj, "type", "object"))
			goto out;
		schema = obj;
	}
	if (!desc)
		desc = "Give your answer as the input of this tool: JSON that matches its schema.";
	if (!(t = tool_def(name, desc, schema)) || push(cJSON_AddArrayToObject(body, "tools"), t))
		goto out;
	if (!(choice = cJSON_AddObjectToObject(body, "tool_choice")) ||
	    !cJSON_AddStringToObject(choice, "type", "tool") ||
	    !cJSON_AddStringToObject(choice, "name", name))
		goto out;
	rc = TG_OK;
out:
	cJSON_Delete(obj);
	return rc;
}

static int add_tools(const cJSON *req, cJSON *body, struct prov_request *out)
{
	const cJSON *tools = given(req, "tools"), *choice = given(req, "tool_choice"), *t;
	const cJSON *parallel = given(req, "parallel_tool_calls");
	const char *type = "auto", *only = NULL;
	cJSON *defs = NULL, *tc;

	if (tools && !cJSON_IsArray(tools))
		return refuse(out, "tools", "'tools' must be an array.");
	cJSON_ArrayForEach(t, tools) {
		const cJSON *fn = get(t, "function"), *params = given(fn, "parameters");
		const char *tt = str_of(t, "type"), *name = str_of(fn, "name");

		if ((tt && strcmp(tt, "function") != 0) || !name || !name[0])
			return refuse(out, "tools",
				      "Anthropic takes function tools only, each named.");
		if (params && !cJSON_IsObject(params))
			return refuse(out, "tools", "A function's 'parameters' must be an object.");
		if (!defs && !(defs = cJSON_AddArrayToObject(body, "tools")))
			return TG_ENOMEM;
		if (push(defs, tool_def(name, str_of(fn, "description"), params)))
			return TG_ENOMEM;
	}
	if (cJSON_IsString(choice)) {
		type = strcmp(choice->valuestring, "auto") == 0     ? "auto" :
		       strcmp(choice->valuestring, "required") == 0 ? "any" :
		       strcmp(choice->valuestring, "none") == 0     ? "none" :
								      NULL;
	} else if (choice) {
		type = (only = str_of(get(choice, "function"), "name")) ? "tool" : NULL;
	}
	if (!type)
		return refuse(out, "tool_choice",
			      "'tool_choice' must be auto, required, none or a named function.");
	if (!defs) {
		/* No tools: nothing to choose from. */
		if (strcmp(type, "any") == 0 || strcmp(type, "tool") == 0)
			return refuse(out, "tool_choice", "'tool_choice' needs 'tools'.");
		return TG_OK;
	}
	if (!choice && !cJSON_IsFalse(parallel))
		return TG_OK; /* Anthropic's default: auto, calls in parallel allowed */
	if (!(tc = cJSON_AddObjectToObject(body, "tool_choice")) ||
	    !cJSON_AddStringToObject(tc, "type", type) ||
	    (only && !cJSON_AddStringToObject(tc, "name", only)) ||
	    (cJSON_IsFalse(parallel) && strcmp(type, "none") != 0 &&
	     !cJSON_AddTrueToObject(tc, "disable_parallel_tool_use")))
		return TG_ENOMEM;
	return TG_OK;
}

static int chat_body(const struct prov_call *c, struct prov_request *out, cJSON **bodyp)
{
	cJSON *body = cJSON_CreateObject(), *msgs;
	buf_t sys;
	int rc = TG_ENOMEM;

	buf_init(&sys, ANT_TEXT_MAX);
	if ((rc = check_unsupported(c->req, out)))
		goto out;
	rc = TG_ENOMEM;
	if (!body || !cJSON_AddStringToObject(body, "model", c->upstream_model))
		goto out;
	if ((rc = add_sampling(c, body, out)) || (rc = add_messages(c->req, body, &sys, out)))
		goto out;
	/* "system" before "messages", as the API reference lists them. */
	if (sys.len) {
		rc = TG_ENOMEM;
		msgs = cJSON_DetachItemFromObjectCaseSensitive(body, "messages");
		if (!cJSON_AddStringToObject(body, "system", sys.data)) {
			cJSON_Delete(msgs);
			goto out;
		}
		if (put(body, "messages", msgs))
			goto out;
	}
	if ((rc = add_tools(c->req, body, out)) || (rc = add_json_tool(c->req, body, out)))
		goto out;
	*bodyp = body;
	body = NULL;
out:
	buf_free(&sys);
	cJSON_Delete(body);
	return rc;
}

static int anthropic_build_request(const struct prov_call *c, struct prov_request *out)
{
	const char *ver = c->prov && c->prov->api_version[0] ? c->prov->api_version :
							       ANT_VERSION_DEFAULT;
	cJSON *body = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->auth_prefix = "x-api-key: ";
	snprintf(out->path, sizeof(out->path), "/messages");
	snprintf(out->headers[0], sizeof(out->headers[0]), "anthropic-version: %s", ver);
	out->headers[1][0] = '\0';
	if (c->endpoint == PROV_EMBEDDINGS)
		return refuse(out, "model",
			      "Anthropic has no embeddings API; use a model of another provider.");
	if (!cJSON_IsObject(c->req))
		return refuse(out, "", "The request body must be a JSON object.");
	if ((rc = chat_body(c, out, &body)))
		goto out;
	if (!(out->body = cJSON_PrintUnformatted(body))) {
		rc = TG_ENOMEM;
		goto out;
	}
	out->len = strlen(out->body);
out:
	cJSON_Delete(body);
	return rc;
}

/* --- usage --- */

/* Anthropic's counts, as it reports them. */
struct ant_counts {
	int64_t input, cache_read, cache_write, output;
	int seen; /* some count was there */
};

/* Takes the counts present in usage (an Anthropic usage object) into *k. */
static void counts_take(const cJSON *usage, struct ant_counts *k)
{
	k->seen |= count_of(get(usage, "input_tokens"), &k->input);
	k->seen |= count_of(get(usage, "output_tokens"), &k->output);
	k->seen |= count_of(get(usage, "cache_read_input_tokens"), &k->cache_read);
	k->seen |= count_of(get(usage, "cache_creation_input_tokens"), &k->cache_write);
}

/* Anthropic's counts in the OpenAI sense: the prompt holds the cache reads
 * and writes. */
static void counts_usage(const struct ant_counts *k, struct prov_usage *u)
{
	u->prompt = k->input + k->cache_read + k->cache_write;
	u->cached = k->cache_read;
	u->cache_write = k->cache_write;
	u->completion = k->output;
	u->reasoning = 0; /* counted in output_tokens, never told apart */
	u->have = 1;
}

/* 1 when obj (a message, or a message_start or message_delta event) carries
 * usage, read into *u. */
static int anthropic_extract_usage(const cJSON *obj, struct prov_usage *u)
{
	const cJSON *usage = get(obj, "usage");
	struct ant_counts k = { 0 };

	if (!cJSON_IsObject(usage))
		usage = get(get(obj, "message"), "usage");
	counts_take(usage, &k);
	if (!k.seen)
		return 0;
	counts_usage(&k, u);
	return 1;
}

/* The OpenAI usage object of u. */
static cJSON *usage_json(const struct prov_usage *u)
{
	cJSON *o = cJSON_CreateObject(), *d;

	if (!o || !cJSON_AddNumberToObject(o, "prompt_tokens", (double)u->prompt) ||
	    !cJSON_AddNumberToObject(o, "completion_tokens", (double)u->completion) ||
	    !cJSON_AddNumberToObject(o, "total_tokens", (double)(u->prompt + u->completion)) ||
	    !(d = cJSON_AddObjectToObject(o, "prompt_tokens_details")) ||
	    !cJSON_AddNumberToObject(d, "cached_tokens", (double)u->cached) ||
	    !(d = cJSON_AddObjectToObject(o, "completion_tokens_details")) ||
	    !cJSON_AddNumberToObject(d, "reasoning_tokens", (double)u->reasoning)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* --- answers --- */

/* OpenAI's finish_reason for Anthropic's stop_reason; json: the tool use
 * is the JSON answer, which ends as a plain stop. */
static const char *finish_of(const char *reason, int json)
{
	if (!reason)
		return "stop";
	if (strcmp(reason, "max_tokens") == 0 ||
	    strcmp(reason, "model_context_window_exceeded") == 0)
		return "length";
	if (strcmp(reason, "tool_use") == 0)
		return json ? "stop" : "tool_calls";
	if (strcmp(reason, "refusal") == 0)
		return "content_filter";
	return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* The message's id, or chatcmpl- and random hex when there is none. */
static void answer_id(const cJSON *msg, char id[ANT_ID_MAX])
{
	const char *mid = str_of(msg, "id");
	unsigned char r[12];
	size_t i;

	if (mid && mid[0]) {
		snprintf(id, ANT_ID_MAX, "%s", mid);
		return;
	}
	randombytes_buf(r, sizeof(r));
	memcpy(id, "chatcmpl-", 9);
	for (i = 0; i < sizeof(r); i++)
		snprintf(id + 9 + 2 * i, 3, "%02x", r[i]);
}

static const char *model_of(const struct prov_call *c, const cJSON *msg)
{
	const char *m = str_of(msg, "model");

	if (m && m[0])
		return m;
	return c && c->upstream_model ? c->upstream_model : "";
}

/* {id, object, created, model} */
static cJSON *answer_head(const char *id, const char *object, int64_t created, const char *model)
{
	cJSON *a = cJSON_CreateObject();

	if (!a || !cJSON_AddStringToObject(a, "id", id) ||
	    !cJSON_AddStringToObject(a, "object", object) ||
	    !cJSON_AddNumberToObject(a, "created", (double)created) ||
	    !cJSON_AddStringToObject(a, "model", model)) {
		cJSON_Delete(a);
		return NULL;
	}
	return a;
}

/* An OpenAI tool call for a tool_use block. */
static cJSON *tool_call(const cJSON *block)
{
	const char *name = str_of(block, "name"), *id = str_of(block, "id");
	const cJSON *input = get(block, "input");
	char *args = input ? cJSON_PrintUnformatted(input) : NULL;
	cJSON *tc = cJSON_CreateObject(), *fn;

	if (!tc || (input && !args) || !cJSON_AddStringToObject(tc, "id", id ? id : "") ||
	    !cJSON_AddStringToObject(tc, "type", "function") ||
	    !(fn = cJSON_AddObjectToObject(tc, "function")) ||
	    !cJSON_AddStringToObject(fn, "name", name ? name : "") ||
	    !cJSON_AddStringToObject(fn, "arguments", args ? args : "{}")) {
		cJSON_Delete(tc);
		tc = NULL;
	}
	cJSON_free(args);
	return tc;
}

/* The message's content: its text blocks, or in JSON mode the forced
 * tool's input printed (the text when it is not there); *have 0 for none. */
static int answer_text(const cJSON *blocks, const char *json_name, buf_t *text, int *have)
{
	const cJSON *b;
	char *printed;
	int rc;

	*have = 0;
	cJSON_ArrayForEach(b, blocks) {
		const char *type = str_of(b, "type"), *name = str_of(b, "name");

		if (json_name && type && strcmp(type, "tool_use") == 0 && name &&
		    strcmp(name, json_name) == 0) {
			printed = get(b, "input") ? cJSON_PrintUnformatted(get(b, "input")) : NULL;
			if (get(b, "input") && !printed)
				return TG_ENOMEM;
			buf_reset(text);
			rc = buf_puts(text, printed ? printed : "{}");
			cJSON_free(printed);
			*have = 1;
			return rc;
		}
	}
	cJSON_ArrayForEach(b, blocks) {
		const char *type = str_of(b, "type"), *t = str_of(b, "text");

		/* thinking and redacted_thinking blocks are not the answer */
		if (type && strcmp(type, "text") == 0 && t) {
			*have = 1;
			if ((rc = buf_puts(text, t)))
				return rc;
		}
	}
	return TG_OK;
}

static int chat_answer(const struct prov_call *c, const cJSON *obj, cJSON **answer,
		       struct prov_usage *u)
{
	const cJSON *blocks = array_of(get(obj, "content")), *b;
	char id[ANT_ID_MAX], jname[ANT_TOOL_NAME_MAX + 1];
	int json = call_json_tool(c, jname), have_text = 0, rc = TG_ENOMEM, in_json = 0;
	cJSON *a = NULL, *choices, *ch, *msg, *calls = NULL;
	struct prov_usage none = { 0 };
	buf_t text;

	buf_init(&text, ANT_TEXT_MAX);
	if (!anthropic_extract_usage(obj, u))
		u = &none;
	if ((rc = answer_text(blocks, json ? jname : NULL, &text, &have_text)))
		goto out;
	rc = TG_ENOMEM;
	answer_id(obj, id);
	if (!(a = answer_head(id, "chat.completion", (int64_t)time(NULL), model_of(c, obj))) ||
	    !(choices = cJSON_AddArrayToObject(a, "choices")) ||
	    push(choices, ch = cJSON_CreateObject()) || !cJSON_AddNumberToObject(ch, "index", 0) ||
	    !(msg = cJSON_AddObjectToObject(ch, "message")) ||
	    !cJSON_AddStringToObject(msg, "role", "assistant") ||
	    !(have_text ? cJSON_AddStringToObject(msg, "content", buf_cstr(&text)) :
			  cJSON_AddNullToObject(msg, "content")))
		goto out;
	cJSON_ArrayForEach(b, blocks) {
		const char *type = str_of(b, "type"), *name = str_of(b, "name");

		if (!type || strcmp(type, "tool_use") != 0)
			continue;
		if (json && name && strcmp(name, jname) == 0) {
			in_json = 1;
			continue;
		}
		if (!calls && !(calls = cJSON_AddArrayToObject(msg, "tool_calls")))
			goto out;
		if (push(calls, tool_call(b)))
			goto out;
	}
	if (!cJSON_AddNullToObject(ch, "logprobs") ||
	    !cJSON_AddStringToObject(ch, "finish_reason",
				     finish_of(str_of(obj, "stop_reason"), in_json && !calls)))
		goto out;
	if (put(a, "usage", usage_json(u)))
		goto out;
	*answer = a;
	a = NULL;
	rc = TG_OK;
out:
	cJSON_Delete(a);
	buf_free(&text);
	return rc;
}

static int anthropic_parse_response(const struct prov_call *c, const char *body, size_t n,
				    cJSON **answer, int *flags, struct prov_usage *u)
{
	cJSON *obj = json_parse(body, n, NULL);
	int rc;

	*answer = NULL;
	*flags = 0;
	if (!cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		return TG_EINVAL;
	}
	rc = chat_answer(c, obj, answer, u);
	cJSON_Delete(obj);
	return rc;
}

/* --- errors --- */

static int client_status(int status)
{
	if (status == 529)
		return 503; /* overloaded_error: try again later */
	if (status >= 400 && status < 500)
		return status;
	return 502;
}

/* The HTTP status Anthropic gives an error type (for errors in a stream). */
static int type_status(const char *type)
{
	static const struct {
		const char *type;
		int status;
	} types[] = {
		{ "invalid_request_error", 400 },
		{ "authentication_error", 401 },
		{ "permission_error", 403 },
		{ "not_found_error", 404 },
		{ "request_too_large", 413 },
		{ "rate_limit_error", 429 },
		{ "api_error", 500 },
		{ "overloaded_error", 529 },
	};
	size_t i;

	for (i = 0; type && i < TG_ARRAY_LEN(types); i++)
		if (strcmp(type, types[i].type) == 0)
			return types[i].status;
	return 500;
}

/* "Anthropic: " + message, cut at a character boundary when too long. */
static void ant_message(const char *msg, char *out, size_t size)
{
	snprintf(out, size, "Anthropic: %s", msg);
	out[utf8_valid_prefix(out, strlen(out))] = '\0';
}

/* 1 when a 400's message says the input does not fit the model. */
static int too_long(const char *msg)
{
	static const char *const says[] = { "prompt is too long", "exceed context limit",
					    "exceeds context limit", "context window" };
	char low[512];
	size_t i;

	for (i = 0; msg[i] && i + 1 < sizeof(low); i++)
		low[i] = msg[i] >= 'A' && msg[i] <= 'Z' ? (char)(msg[i] - 'A' + 'a') : msg[i];
	low[i] = '\0';
	for (i = 0; i < TG_ARRAY_LEN(says); i++)
		if (strstr(low, says[i]))
			return 1;
	return 0;
}

static void anthropic_map_error(const struct prov_call *c, int status, const char *body, size_t n,
				struct prov_error *out)
{
	cJSON *obj = body ? json_parse(body, n, NULL) : NULL;
	const cJSON *err = get(obj, "error");
	const char *msg = str_of(err, "message"), *type = str_of(err, "type");

	(void)c;
	memset(out, 0, sizeof(*out));
	out->status = client_status(status);
	snprintf(out->type, sizeof(out->type), "%s", prov_error_type_for(out->status));
	if (type)
		snprintf(out->code, sizeof(out->code), "%s", type);
	if (msg) {
		ant_message(msg, out->message, sizeof(out->message));
		if (status == 400 && too_long(msg))
			snprintf(out->code, sizeof(out->code), "context_length_exceeded");
	} else {
		snprintf(out->message, sizeof(out->message), "Anthropic answered HTTP %d.", status);
	}
	cJSON_Delete(obj);
}

/* --- streams --- */

enum ant_block {
	BLOCK_NONE = 0, /* thinking, server tools...: nothing for the client */
	BLOCK_TEXT,
	BLOCK_TOOL, /* a tool call: its index among the tool calls in k */
	BLOCK_JSON, /* the forced tool of JSON mode: its input is the text */
};

struct ant_stream {
	char id[ANT_ID_MAX];
	char model[ANT_ID_MAX];
	int64_t created;
	int json; /* JSON mode, its tool named jname */
	char jname[ANT_TOOL_NAME_MAX + 1];
	int started; /* the role chunk went out */
	int tools;   /* tool calls so far */
	struct ant_counts counts;
	struct {
		unsigned char kind; /* an ant_block */
		int k;
	} block[ANT_BLOCKS_MAX];
};

/* A chunk with delta (consumed) and finish (NULL: null), handed to emit. */
static int send_chunk(struct ant_stream *st, cJSON *delta, const char *finish, prov_emit_fn emit,
		      void *ud)
{
	cJSON *chunk = answer_head(st->id, "chat.completion.chunk", st->created, st->model);
	cJSON *choices, *ch;

	/* Once pushed, ch is the chunk's. */
	if (!chunk || !delta || !(choices = cJSON_AddArrayToObject(chunk, "choices")) ||
	    push(choices, ch = cJSON_CreateObject()) || !cJSON_AddNumberToObject(ch, "index", 0))
		goto fail;
	if (put(ch, "delta", delta)) {
		delta = NULL;
		goto fail;
	}
	delta = NULL;
	if (!(finish ? cJSON_AddStringToObject(ch, "finish_reason", finish) :
		       cJSON_AddNullToObject(ch, "finish_reason")))
		goto fail;
	return emit(ud, chunk, NULL, 0, 0);
fail:
	cJSON_Delete(delta);
	cJSON_Delete(chunk);
	return TG_ENOMEM;
}

/* delta {"content": text} */
static int send_text(struct ant_stream *st, const char *text, prov_emit_fn emit, void *ud)
{
	cJSON *delta;

	if (!text || !text[0])
		return 0;
	delta = cJSON_CreateObject();
	if (delta && !cJSON_AddStringToObject(delta, "content", text)) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	return send_chunk(st, delta, NULL, emit, ud);
}

/* delta {"tool_calls":[{"index":k, ["id","type",] "function":{...}}]}: the
 * call's start (id and name given) or a piece of its arguments. */
static int send_call(struct ant_stream *st, int k, const char *id, const char *name,
		     const char *args, prov_emit_fn emit, void *ud)
{
	cJSON *delta = cJSON_CreateObject(), *calls, *tc, *fn;

	if (delta &&
	    (!(calls = cJSON_AddArrayToObject(delta, "tool_calls")) ||
	     push(calls, tc = cJSON_CreateObject()) || !cJSON_AddNumberToObject(tc, "index", k) ||
	     (id && (!cJSON_AddStringToObject(tc, "id", id) ||
		     !cJSON_AddStringToObject(tc, "type", "function"))) ||
	     !(fn = cJSON_AddObjectToObject(tc, "function")) ||
	     (name && !cJSON_AddStringToObject(fn, "name", name)) ||
	     !cJSON_AddStringToObject(fn, "arguments", args))) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	return send_chunk(st, delta, NULL, emit, ud);
}

static int send_start(struct ant_stream *st, prov_emit_fn emit, void *ud)
{
	cJSON *delta;

	if (st->started)
		return 0;
	st->started = 1;
	delta = cJSON_CreateObject();
	if (delta && (!cJSON_AddStringToObject(delta, "role", "assistant") ||
		      !cJSON_AddStringToObject(delta, "content", ""))) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	return send_chunk(st, delta, NULL, emit, ud);
}

/* The usage-only chunk that ends the stream. */
static int send_usage(struct ant_stream *st, prov_emit_fn emit, void *ud)
{
	struct prov_usage u = { 0 };
	cJSON *chunk;

	counts_usage(&st->counts, &u);
	chunk = answer_head(st->id, "chat.completion.chunk", st->created, st->model);
	if (!chunk || !cJSON_AddArrayToObject(chunk, "choices") ||
	    put(chunk, "usage", usage_json(&u))) {
		cJSON_Delete(chunk);
		return TG_ENOMEM;
	}
	return emit(ud, chunk, NULL, 0, 0);
}

/* {"type":"error","error":{"type":...,"message":...}} in a stream, in the
 * OpenAI shape. */
static int send_error(const cJSON *err, prov_emit_fn emit, void *ud)
{
	const char *msg = str_of(err, "message"), *type = str_of(err, "type");
	int status = client_status(type_status(type));
	cJSON *o = cJSON_CreateObject(), *e;
	char message[512];

	ant_message(msg ? msg : "the stream failed.", message, sizeof(message));
	if (!o || !(e = cJSON_AddObjectToObject(o, "error")) ||
	    !cJSON_AddStringToObject(e, "message", message) ||
	    !cJSON_AddStringToObject(e, "type", prov_error_type_for(status)) ||
	    !(type ? cJSON_AddStringToObject(e, "code", type) : cJSON_AddNullToObject(e, "code")) ||
	    !cJSON_AddNullToObject(e, "param")) {
		cJSON_Delete(o);
		return TG_ENOMEM;
	}
	return emit(ud, o, NULL, 0, 0);
}

/* The stream's state, made at its first event (msg: message_start's
 * message, for the id and model). */
static struct ant_stream *stream_state(struct prov_stream *s, const cJSON *msg)
{
	struct ant_stream *st = s->state;

	if (st)
		return st;
	if (!(st = calloc(1, sizeof(*st))))
		return NULL;
	answer_id(msg, st->id);
	snprintf(st->model, sizeof(st->model), "%s", model_of(s->call, msg));
	st->created = (int64_t)time(NULL);
	st->json = call_json_tool(s->call, st->jname);
	s->state = st;
	return st;
}

static int block_start(struct ant_stream *st, const cJSON *obj, prov_emit_fn emit, void *ud)
{
	const cJSON *b = get(obj, "content_block"), *idx = get(obj, "index");
	const char *type = str_of(b, "type"), *name = str_of(b, "name");
	int i;

	if (!cJSON_IsNumber(idx) || !(idx->valuedouble >= 0 && idx->valuedouble < ANT_BLOCKS_MAX))
		return 0;
	i = (int)idx->valuedouble;
	st->block[i].kind = BLOCK_NONE;
	if (!type)
		return 0;
	if (strcmp(type, "text") == 0) {
		st->block[i].kind = BLOCK_TEXT;
		return send_text(st, str_of(b, "text"), emit, ud);
	}
	if (strcmp(type, "tool_use") != 0)
		return 0;
	if (st->json && name && strcmp(name, st->jname) == 0) {
		st->block[i].kind = BLOCK_JSON;
		return 0;
	}
	st->block[i].kind = BLOCK_TOOL;
	st->block[i].k = st->tools++;
	return send_call(st, st->block[i].k, str_of(b, "id") ? str_of(b, "id") : "",
			 name ? name : "", "", emit, ud);
}

static int block_delta(struct ant_stream *st, const cJSON *obj, prov_emit_fn emit, void *ud)
{
	const cJSON *d = get(obj, "delta"), *idx = get(obj, "index");
	const char *type = str_of(d, "type"), *piece;
	int i;

	if (!cJSON_IsNumber(idx) || !(idx->valuedouble >= 0 && idx->valuedouble < ANT_BLOCKS_MAX) ||
	    !type)
		return 0;
	i = (int)idx->valuedouble;
	if (strcmp(type, "text_delta") == 0 && st->block[i].kind == BLOCK_TEXT)
		return send_text(st, str_of(d, "text"), emit, ud);
	if (strcmp(type, "input_json_delta") != 0 || !(piece = str_of(d, "partial_json")) ||
	    !piece[0])
		return 0; /* thinking_delta, signature_delta, citations_delta... */
	if (st->block[i].kind == BLOCK_JSON)
		return send_text(st, piece, emit, ud);
	if (st->block[i].kind == BLOCK_TOOL)
		return send_call(st, st->block[i].k, NULL, NULL, piece, emit, ud);
	return 0;
}

static int anthropic_parse_stream_event(struct prov_stream *s, const char *event, const char *data,
					size_t len, prov_emit_fn emit, void *ud)
{
	cJSON *obj = json_parse(data, len, NULL);
	const char *type = str_of(obj, "type");
	const cJSON *msg = get(obj, "message"), *err = get(obj, "error");
	struct ant_stream *st;
	int rc = 0;

	if (!type)
		type = event;
	if (!cJSON_IsObject(obj) || !type || strcmp(type, "ping") == 0)
		goto out; /* nothing for the client */
	if (strcmp(type, "error") == 0 || cJSON_IsObject(err)) {
		rc = send_error(err, emit, ud);
		goto out;
	}
	if (!(st = stream_state(s, msg))) {
		rc = TG_ENOMEM;
		goto out;
	}
	if (s->done)
		goto out;
	if (strcmp(type, "message_start") == 0) {
		counts_take(get(msg, "usage"), &st->counts);
		rc = send_start(st, emit, ud);
	} else if (strcmp(type, "content_block_start") == 0) {
		if (!(rc = send_start(st, emit, ud)))
			rc = block_start(st, obj, emit, ud);
	} else if (strcmp(type, "content_block_delta") == 0) {
		if (!(rc = send_start(st, emit, ud)))
			rc = block_delta(st, obj, emit, ud);
	} else if (strcmp(type, "message_delta") == 0) {
		const char *reason = str_of(get(obj, "delta"), "stop_reason");

		/* Its usage is the message's so far (the output count final). */
		counts_take(get(obj, "usage"), &st->counts);
		if (s->usage && st->counts.seen)
			counts_usage(&st->counts, s->usage);
		if (reason && !(rc = send_start(st, emit, ud)))
			rc = send_chunk(st, cJSON_CreateObject(), finish_of(reason, st->json), emit,
					ud);
	} else if (strcmp(type, "message_stop") == 0) {
		if (s->usage)
			counts_usage(&st->counts, s->usage);
		s->done = 1;
		rc = send_usage(st, emit, ud);
	}
out:
	cJSON_Delete(obj);
	return rc;
}

static void anthropic_stream_free(struct prov_stream *s)
{
	free(s->state);
	s->state = NULL;
}

const struct provider_ops provider_anthropic = {
	.kind = "anthropic",
	.build_request = anthropic_build_request,
	.forward = prov_http_forward,
	.parse_response = anthropic_parse_response,
	.parse_stream_event = anthropic_parse_stream_event,
	.extract_usage = anthropic_extract_usage,
	.stream_free = anthropic_stream_free,
	.map_error = anthropic_map_error,
};
