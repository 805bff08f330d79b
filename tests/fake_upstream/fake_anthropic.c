/* fake_anthropic.c - a strict stand-in for Anthropic's Messages API (POST /v1/messages).
 *
 * Checks a request the way the API reference describes it and refuses, in Anthropic's own
 * error envelope, what Anthropic would refuse: a missing x-api-key or anthropic-version,
 * OpenAI-only fields, a "system" message role, roles that do not alternate, a tool_result
 * without its tool_use. It answers deterministically: the words tok0 tok1 ..., tool_use
 * blocks when the user asks about the weather, or "result: ..." after a tool_result; as
 * one JSON message or as the SSE event stream (message_start ... message_stop).
 */
#include "fake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#define MAX_CALLS 2
#define MSG_MAX 700

/* The first problem found in a request, as Anthropic words it. */
struct check {
	char msg[MSG_MAX];
};

/* What the request asks for, gathered while it is checked. */
struct ask {
	long max_tokens;
	int stream;
	const cJSON *tools;
	const char *tool_choice; /* "auto" when none was given */
	const char *forced_tool; /* tool_choice {type: tool, name} */
	long input_tokens;       /* input tokens counted so far */
};

/* Everything the answer is made of, plain or streamed. */
struct plan {
	char id[48];
	unsigned long long n;
	const char *model;
	long input_tokens;
	long output_tokens;
	long cache_read;
	long cache_write;
	const char *stop_reason;
	int with_usage;
	struct fake_reply reply; /* the text block, when ncalls is 0 */
	char *text;              /* owned by the plan: reply.text, when not the words */
	int ncalls;              /* > 0: tool_use blocks instead of a text block */
	const char *tool;
	char *args[MAX_CALLS]; /* each call's input, printed */
};

static const char *const cities[MAX_CALLS] = { "Paris", "Tokyo" };

static const char *const top_keys[] = {
	"model",          "messages",    "max_tokens",  "system",       "metadata",
	"stop_sequences", "stream",      "temperature", "top_k",        "top_p",
	"tools",          "tool_choice", "thinking",    "service_tier", NULL,
};

static const char *error_type(int status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 500:
		return "api_error";
	case 529:
		return "overloaded_error";
	default:
		return status < 500 ? "invalid_request_error" : "api_error";
	}
}

int anthropic_error(struct mg_connection *conn, int status, const char *message)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err;

	cJSON_AddStringToObject(root, "type", "error");
	err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "type", error_type(status));
	cJSON_AddStringToObject(err, "message", message);
	fake_send_json(conn, status, root, status == 429 ? "retry-after: 1\r\n" : "");
	cJSON_Delete(root);
	return status;
}

static int bad(struct check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* The first key of obj that is not in the NULL-terminated list, or NULL. */
static const char *extra_key(const cJSON *obj, const char *const *allowed)
{
	const cJSON *it;
	size_t i;

	cJSON_ArrayForEach(it, obj) {
		for (i = 0; allowed[i]; i++)
			if (strcmp(it->string, allowed[i]) == 0)
				break;
		if (!allowed[i])
			return it->string;
	}
	return NULL;
}

static const cJSON *get(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static int is(const cJSON *str, const char *value)
{
	return cJSON_IsString(str) && strcmp(str->valuestring, value) == 0;
}

/* A name as the API wants it: ^[a-zA-Z0-9_-]{1,max}$. */
static int good_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n >= 1 && n <= max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int check_number(const cJSON *v, const char *name, double max, struct check *c)
{
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v))
		return bad(c, "%s: Input should be a valid number", name);
	if (v->valuedouble < 0)
		return bad(c, "%s: Input should be greater than or equal to 0", name);
	if (v->valuedouble > max)
		return bad(c, "%s: Input should be less than or equal to %g", name, max);
	return 0;
}

/* A text block {type: "text", text} (where: the path for messages). */
static int check_text_block(const cJSON *b, const char *where, struct check *c)
{
	static const char *const keys[] = { "type", "text", "cache_control", "citations", NULL };
	const char *extra = extra_key(b, keys);
	const cJSON *text = get(b, "text");

	if (extra)
		return bad(c, "%s.%s: Extra inputs are not permitted", where, extra);
	if (!text)
		return bad(c, "%s.text: Field required", where);
	if (!cJSON_IsString(text))
		return bad(c, "%s.text: Input should be a valid string", where);
	if (!text->valuestring[0])
		return bad(c, "messages: text content blocks must be non-empty");
	return 0;
}

static int check_image_block(const cJSON *b, const char *where, struct check *c)
{
	static const char *const keys[] = { "type", "source", "cache_control", NULL };
	static const char *const b64_keys[] = { "type", "media_type", "data", NULL };
	static const char *const url_keys[] = { "type", "url", NULL };
	const char *extra = extra_key(b, keys);
	const cJSON *src = get(b, "source"), *mt, *v;

	if (extra)
		return bad(c, "%s.%s: Extra inputs are not permitted", where, extra);
	if (!cJSON_IsObject(src))
		return bad(c, "%s.source: Field required", where);
	if (is(get(src, "type"), "base64")) {
		extra = extra_key(src, b64_keys);
		mt = get(src, "media_type");
		v = get(src, "data");
		if (extra)
			return bad(c, "%s.source.base64.%s: Extra inputs are not permitted", where,
				   extra);
		if (!is(mt, "image/jpeg") && !is(mt, "image/png") && !is(mt, "image/gif") &&
		    !is(mt, "image/webp"))
			return bad(c,
				   "%s.source.base64.media_type: Input should be 'image/jpeg', "
				   "'image/png', 'image/gif' or 'image/webp'",
				   where);
		if (!cJSON_IsString(v) || !v->valuestring[0])
			return bad(c, "%s.source.base64.data: Field required", where);
		return 0;
	}
	if (is(get(src, "type"), "url")) {
		extra = extra_key(src, url_keys);
		v = get(src, "url");
		if (extra)
			return bad(c, "%s.source.url.%s: Extra inputs are not permitted", where,
				   extra);
		if (!cJSON_IsString(v) || !v->valuestring[0])
			return bad(c, "%s.source.url.url: Field required", where);
		return 0;
	}
	return bad(c,
		   "%s.source: Input tag found using 'type' does not match any of the expected "
		   "tags: 'base64', 'url'",
		   where);
}

/* The text a tool_result carries: its string content or its text blocks, joined. */
static char *result_text(const cJSON *content)
{
	const cJSON *b, *t;
	size_t len = 0;
	char *out;

	if (cJSON_IsString(content))
		return strdup(content->valuestring);
	cJSON_ArrayForEach(b, content) {
		t = get(b, "text");
		if (cJSON_IsString(t))
			len += strlen(t->valuestring);
	}
	out = malloc(len + 1);
	if (!out)
		return NULL;
	len = 0;
	cJSON_ArrayForEach(b, content) {
		t = get(b, "text");
		if (cJSON_IsString(t)) {
			memcpy(out + len, t->valuestring, strlen(t->valuestring));
			len += strlen(t->valuestring);
		}
	}
	out[len] = '\0';
	return out;
}

static int check_result_block(const cJSON *b, const char *where, struct check *c)
{
	static const char *const keys[] = { "type",     "tool_use_id",   "content",
					    "is_error", "cache_control", NULL };
	const char *extra = extra_key(b, keys);
	const cJSON *id = get(b, "tool_use_id"), *content = get(b, "content"), *part;
	char sub[MSG_MAX / 2];
	int j = 0;

	if (extra)
		return bad(c, "%s.%s: Extra inputs are not permitted", where, extra);
	if (!cJSON_IsString(id) || !id->valuestring[0])
		return bad(c, "%s.tool_use_id: Field required", where);
	if (get(b, "is_error") && !cJSON_IsBool(get(b, "is_error")))
		return bad(c, "%s.is_error: Input should be a valid boolean", where);
	if (!content || cJSON_IsString(content))
		return 0;
	if (!cJSON_IsArray(content))
		return bad(c, "%s.content: Input should be a valid string or list", where);
	cJSON_ArrayForEach(part, content) {
		snprintf(sub, sizeof(sub), "%s.content.%d", where, j++);
		if (!cJSON_IsObject(part))
			return bad(c, "%s: Input should be a valid dictionary", sub);
		if (is(get(part, "type"), "text")) {
			if (check_text_block(part, sub, c))
				return -1;
		} else if (is(get(part, "type"), "image")) {
			if (check_image_block(part, sub, c))
				return -1;
		} else {
			return bad(c,
				   "%s: Input tag found using 'type' does not match any of the "
				   "expected tags: 'text', 'image'",
				   sub);
		}
	}
	return 0;
}

static int check_use_block(const cJSON *b, const char *where, struct check *c)
{
	static const char *const keys[] = { "type", "id", "name", "input", "cache_control", NULL };
	const char *extra = extra_key(b, keys);
	const cJSON *id = get(b, "id"), *name = get(b, "name");

	if (extra)
		return bad(c, "%s.%s: Extra inputs are not permitted", where, extra);
	if (!cJSON_IsString(id) || !good_name(id->valuestring, 256))
		return bad(c, "%s.id: String should match pattern '^[a-zA-Z0-9_-]+$'", where);
	if (!cJSON_IsString(name) || !name->valuestring[0])
		return bad(c, "%s.name: Field required", where);
	if (!cJSON_IsObject(get(b, "input")))
		return bad(c, "%s.input: Input should be a valid dictionary", where);
	return 0;
}

/* Bytes of text a message carries, for the input token count. */
static long message_bytes(const cJSON *content)
{
	const cJSON *b;
	char *s;
	long n = 0;

	if (cJSON_IsString(content))
		return (long)strlen(content->valuestring);
	cJSON_ArrayForEach(b, content) {
		if (is(get(b, "type"), "text")) {
			n += (long)strlen(get(b, "text")->valuestring);
		} else if (is(get(b, "type"), "tool_result")) {
			s = result_text(get(b, "content"));
			n += s ? (long)strlen(s) : 0;
			free(s);
		} else if (is(get(b, "type"), "tool_use")) {
			s = cJSON_PrintUnformatted(get(b, "input"));
			n += s ? (long)strlen(s) : 0;
			cJSON_free(s);
		}
	}
	return n;
}

/* Whether the tool_use blocks of content include id. */
static int has_use(const cJSON *content, const char *id)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, content)
		if (is(get(b, "type"), "tool_use") && is(get(b, "id"), id))
			return 1;
	return 0;
}

static int has_result(const cJSON *content, const char *id)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, content)
		if (is(get(b, "type"), "tool_result") && is(get(b, "tool_use_id"), id))
			return 1;
	return 0;
}

/* tool_result blocks answer exactly the tool_use blocks of the previous turn (prev is that
 * turn's content, or NULL). */
static int check_pairs(const cJSON *prev, const cJSON *content, int i, struct check *c)
{
	const cJSON *b;
	int j = 0;

	cJSON_ArrayForEach(b, content) {
		if (is(get(b, "type"), "tool_result") &&
		    (!cJSON_IsArray(prev) || !has_use(prev, get(b, "tool_use_id")->valuestring)))
			return bad(c,
				   "messages.%d.content.%d: unexpected `tool_use_id` found in "
				   "`tool_result` blocks: %s. Each `tool_result` block must have a "
				   "corresponding `tool_use` block in the previous message.",
				   i, j, get(b, "tool_use_id")->valuestring);
		j++;
	}
	if (!cJSON_IsArray(prev))
		return 0;
	cJSON_ArrayForEach(b, prev)
		if (is(get(b, "type"), "tool_use") &&
		    (!cJSON_IsArray(content) || !has_result(content, get(b, "id")->valuestring)))
			return bad(
				c,
				"messages.%d: `tool_use` ids were found without `tool_result` "
				"blocks immediately after: %s. Each `tool_use` block must have a "
				"corresponding `tool_result` block in the next message.",
				i - 1, get(b, "id")->valuestring);
	return 0;
}

/* One message's blocks; *tool_blocks counts tool_use and tool_result blocks. */
static int check_blocks(const cJSON *content, int i, const char *role, int *tool_blocks,
			struct check *c)
{
	const cJSON *b, *type;
	char where[64];
	int j = 0, user = strcmp(role, "user") == 0;

	cJSON_ArrayForEach(b, content) {
		snprintf(where, sizeof(where), "messages.%d.content.%d", i, j++);
		type = get(b, "type");
		if (!cJSON_IsObject(b))
			return bad(c, "%s: Input should be a valid dictionary", where);
		if (!type)
			return bad(c, "%s.type: Field required", where);
		if (is(type, "text")) {
			if (check_text_block(b, where, c))
				return -1;
		} else if (is(type, "image")) {
			if (check_image_block(b, where, c))
				return -1;
		} else if (is(type, "tool_use")) {
			if (user)
				return bad(c,
					   "%s: tool_use blocks can only be in assistant messages",
					   where);
			if (check_use_block(b, where, c))
				return -1;
			(*tool_blocks)++;
		} else if (is(type, "tool_result")) {
			if (!user)
				return bad(c, "%s: tool_result blocks can only be in user messages",
					   where);
			if (check_result_block(b, where, c))
				return -1;
			(*tool_blocks)++;
		} else {
			return bad(
				c,
				"%s: Input tag '%s' found using 'type' does not match any of the "
				"expected tags: 'text', 'image', 'tool_use', 'tool_result'",
				where, cJSON_IsString(type) ? type->valuestring : "?");
		}
	}
	return 0;
}

/* Whether a final assistant turn ends in whitespace (the API refuses that prefill). */
static int trailing_space(const cJSON *content)
{
	const cJSON *last = cJSON_IsArray(content) ?
				    cJSON_GetArrayItem(content, cJSON_GetArraySize(content) - 1) :
				    content;
	const char *s;
	size_t n;

	if (cJSON_IsObject(last))
		last = get(last, "text");
	if (!cJSON_IsString(last))
		return 0;
	s = last->valuestring;
	n = strlen(s);
	return n && strchr(" \t\r\n", s[n - 1]);
}

static int check_messages(const cJSON *messages, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "role", "content", NULL };
	const cJSON *m, *role, *content, *prev = NULL;
	const char *extra, *prev_role = NULL;
	int i = 0, n = cJSON_GetArraySize(messages), tool_blocks = 0, last, empty;

	if (!messages)
		return bad(c, "messages: Field required");
	if (!cJSON_IsArray(messages))
		return bad(c, "messages: Input should be a valid list");
	if (n == 0)
		return bad(c, "messages: at least one message is required");
	cJSON_ArrayForEach(m, messages) {
		last = i == n - 1;
		if (!cJSON_IsObject(m))
			return bad(c, "messages.%d: Input should be a valid dictionary", i);
		extra = extra_key(m, keys);
		if (extra)
			return bad(c, "messages.%d.%s: Extra inputs are not permitted", i, extra);
		role = get(m, "role");
		content = get(m, "content");
		if (!role)
			return bad(c, "messages.%d.role: Field required", i);
		if (is(role, "system"))
			return bad(c,
				   "messages.%d.role: Unexpected role \"system\". The Messages "
				   "API accepts a top-level `system` parameter, not \"system\" "
				   "as an input message role.",
				   i);
		if (!is(role, "user") && !is(role, "assistant"))
			return bad(c, "messages.%d.role: Input should be 'user' or 'assistant'", i);
		if (i == 0 && !is(role, "user"))
			return bad(c, "messages: first message must use the \"user\" role");
		if (prev_role && strcmp(prev_role, role->valuestring) == 0)
			return bad(c,
				   "messages: roles must alternate between \"user\" and "
				   "\"assistant\", but found multiple \"%s\" roles in a row",
				   prev_role);
		if (!content)
			return bad(c, "messages.%d.content: Field required", i);
		if (!cJSON_IsString(content) && !cJSON_IsArray(content))
			return bad(
				c,
				"messages.%d.content: Input should be a valid string or a list of "
				"content blocks",
				i);
		empty = cJSON_IsString(content) ? !content->valuestring[0] :
						  cJSON_GetArraySize(content) == 0;
		if (empty && !(last && is(role, "assistant")))
			return bad(
				c,
				"messages.%d: all messages must have non-empty content except for "
				"the optional final assistant message",
				i);
		if (cJSON_IsArray(content) &&
		    check_blocks(content, i, role->valuestring, &tool_blocks, c))
			return -1;
		if (last && is(role, "assistant") && trailing_space(content))
			return bad(c,
				   "final assistant content cannot end with trailing whitespace");
		if (is(role, "user") && check_pairs(prev, content, i, c))
			return -1;
		a->input_tokens += fake_text_tokens((size_t)message_bytes(content)) + 3;
		prev = is(role, "assistant") ? content : NULL;
		prev_role = role->valuestring;
		i++;
	}
	if (tool_blocks && !cJSON_IsArray(a->tools))
		return bad(c, "Requests which include `tool_use` or `tool_result` blocks must "
			      "define tools.");
	return 0;
}

static int check_system(const cJSON *sys, struct ask *a, struct check *c)
{
	const cJSON *b;
	char where[32];
	long bytes = 0;
	int j = 0;

	if (!sys)
		return 0;
	if (cJSON_IsString(sys)) {
		bytes = (long)strlen(sys->valuestring);
	} else if (cJSON_IsArray(sys)) {
		cJSON_ArrayForEach(b, sys) {
			snprintf(where, sizeof(where), "system.%d", j++);
			if (!cJSON_IsObject(b) || !is(get(b, "type"), "text"))
				return bad(c, "%s.type: Input should be 'text'", where);
			if (check_text_block(b, where, c))
				return -1;
			bytes += (long)strlen(get(b, "text")->valuestring);
		}
	} else {
		return bad(c, "system: Input should be a valid string or a list of text blocks");
	}
	a->input_tokens += fake_text_tokens((size_t)bytes) + 3;
	return 0;
}

static int check_tools(const cJSON *tools, struct check *c)
{
	static const char *const keys[] = { "name",          "description", "input_schema",
					    "cache_control", "type",        NULL };
	const cJSON *t, *name, *schema, *other;
	const char *extra;
	int i = 0, j;

	if (!tools)
		return 0;
	if (!cJSON_IsArray(tools))
		return bad(c, "tools: Input should be a valid list");
	cJSON_ArrayForEach(t, tools) {
		if (!cJSON_IsObject(t))
			return bad(c, "tools.%d: Input should be a valid dictionary", i);
		extra = extra_key(t, keys);
		if (extra)
			return bad(c, "tools.%d.custom.%s: Extra inputs are not permitted", i,
				   extra);
		if (get(t, "type") && !is(get(t, "type"), "custom"))
			return bad(c,
				   "tools.%d: Input tag found using 'type' does not match any of "
				   "the expected tags: 'custom'",
				   i);
		name = get(t, "name");
		schema = get(t, "input_schema");
		if (!name)
			return bad(c, "tools.%d.custom.name: Field required", i);
		if (!cJSON_IsString(name) || !good_name(name->valuestring, 128))
			return bad(c,
				   "tools.%d.custom.name: String should match pattern "
				   "'^[a-zA-Z0-9_-]{1,128}$'",
				   i);
		if (get(t, "description") && !cJSON_IsString(get(t, "description")))
			return bad(c, "tools.%d.custom.description: Input should be a valid string",
				   i);
		if (!schema)
			return bad(c, "tools.%d.custom.input_schema: Field required", i);
		if (!cJSON_IsObject(schema))
			return bad(
				c,
				"tools.%d.custom.input_schema: Input should be a valid dictionary",
				i);
		if (!is(get(schema, "type"), "object"))
			return bad(c, "tools.%d.custom.input_schema.type: Input should be 'object'",
				   i);
		j = 0;
		cJSON_ArrayForEach(other, tools) {
			if (j++ >= i)
				break;
			if (is(get(other, "name"), name->valuestring))
				return bad(c, "tools: Tool names must be unique.");
		}
		i++;
	}
	return 0;
}

static int tool_named(const cJSON *tools, const char *name)
{
	const cJSON *t;

	cJSON_ArrayForEach(t, tools)
		if (is(get(t, "name"), name))
			return 1;
	return 0;
}

static int check_tool_choice(const cJSON *tc, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "type", "name", "disable_parallel_tool_use", NULL };
	const cJSON *type = get(tc, "type"), *name = get(tc, "name");
	const char *extra;

	a->tool_choice = "auto";
	if (!tc)
		return 0;
	if (!cJSON_IsObject(tc))
		return bad(c, "tool_choice: Input should be a valid dictionary");
	if (!is(type, "auto") && !is(type, "any") && !is(type, "tool") && !is(type, "none"))
		return bad(c, "tool_choice: Input tag found using 'type' does not match any of the "
			      "expected tags: 'auto', 'any', 'tool', 'none'");
	extra = extra_key(tc, keys);
	if (extra || (name && !is(type, "tool")))
		return bad(c, "tool_choice.%s.%s: Extra inputs are not permitted",
			   type->valuestring, extra ? extra : "name");
	if (get(tc, "disable_parallel_tool_use") &&
	    !cJSON_IsBool(get(tc, "disable_parallel_tool_use")))
		return bad(c,
			   "tool_choice.%s.disable_parallel_tool_use: Input should be a valid "
			   "boolean",
			   type->valuestring);
	a->tool_choice = type->valuestring;
	if (is(type, "tool")) {
		if (!cJSON_IsString(name) || !name->valuestring[0])
			return bad(c, "tool_choice.tool.name: Field required");
		if (!tool_named(a->tools, name->valuestring))
			return bad(c,
				   "tool_choice.tool.name: Tool '%s' not found in provided tools",
				   name->valuestring);
		a->forced_tool = name->valuestring;
	}
	if ((is(type, "any") || is(type, "tool")) && cJSON_GetArraySize(a->tools) == 0)
		return bad(c, "tool_choice: tool_choice.type '%s' requires tools to be defined",
			   type->valuestring);
	return 0;
}

static int check_misc(const cJSON *req, const struct ask *a, struct check *c)
{
	const cJSON *v = get(req, "stop_sequences"), *s, *t;
	int i = 0;

	if (get(req, "stream") && !cJSON_IsBool(get(req, "stream")))
		return bad(c, "stream: Input should be a valid boolean");
	if (check_number(get(req, "temperature"), "temperature", 1, c) ||
	    check_number(get(req, "top_p"), "top_p", 1, c))
		return -1;
	t = get(req, "top_k");
	if (t && (!cJSON_IsNumber(t) || t->valuedouble < 0 ||
		  t->valuedouble != (double)(long)t->valuedouble))
		return bad(c, "top_k: Input should be a valid integer greater than or equal to 0");
	if (v && !cJSON_IsArray(v))
		return bad(c, "stop_sequences: Input should be a valid list");
	cJSON_ArrayForEach(s, v) {
		if (!cJSON_IsString(s))
			return bad(c, "stop_sequences.%d: Input should be a valid string", i);
		i++;
	}
	v = get(req, "metadata");
	if (v) {
		static const char *const keys[] = { "user_id", NULL };

		if (!cJSON_IsObject(v))
			return bad(c, "metadata: Input should be a valid dictionary");
		if (extra_key(v, keys))
			return bad(c, "metadata.%s: Extra inputs are not permitted",
				   extra_key(v, keys));
		t = get(v, "user_id");
		if (t && !cJSON_IsString(t) && !cJSON_IsNull(t))
			return bad(c, "metadata.user_id: Input should be a valid string");
	}
	v = get(req, "thinking");
	if (v) {
		t = get(v, "budget_tokens");
		if (is(get(v, "type"), "enabled")) {
			if (!cJSON_IsNumber(t) || t->valuedouble < 1024)
				return bad(c, "thinking.enabled.budget_tokens: Input should be "
					      "greater than or equal to 1024");
			if (t->valuedouble >= (double)a->max_tokens)
				return bad(c, "`max_tokens` must be greater than "
					      "`thinking.budget_tokens`");
		} else if (!is(get(v, "type"), "disabled")) {
			return bad(c,
				   "thinking: Input tag found using 'type' does not match any of "
				   "the expected tags: 'enabled', 'disabled'");
		}
	}
	v = get(req, "service_tier");
	if (v && !is(v, "auto") && !is(v, "standard_only"))
		return bad(c, "service_tier: Input should be 'auto' or 'standard_only'");
	return 0;
}

static int check_request(const cJSON *req, struct ask *a, struct check *c)
{
	const char *extra = extra_key(req, top_keys);
	const cJSON *model = get(req, "model"), *mt = get(req, "max_tokens");

	memset(a, 0, sizeof(*a));
	if (extra)
		return bad(c, "%s: Extra inputs are not permitted", extra);
	if (!model)
		return bad(c, "model: Field required");
	if (!cJSON_IsString(model) || !model->valuestring[0])
		return bad(c, "model: Input should be a valid string");
	if (!mt)
		return bad(c, "max_tokens: Field required");
	if (!cJSON_IsNumber(mt) || mt->valuedouble != (double)(long)mt->valuedouble)
		return bad(c, "max_tokens: Input should be a valid integer");
	if (fake_json_long(mt, 1, FAKE_MAX_COUNT, &a->max_tokens))
		return bad(c, "max_tokens: Input should be greater than or equal to 1");
	a->stream = cJSON_IsTrue(get(req, "stream"));
	a->tools = get(req, "tools");
	if (check_tools(a->tools, c) || check_tool_choice(get(req, "tool_choice"), a, c) ||
	    check_misc(req, a, c) || check_system(get(req, "system"), a, c) ||
	    check_messages(get(req, "messages"), a, c))
		return -1;
	return 0;
}

/* Whether the user's text blocks (or string content) contain word. */
static int says(const cJSON *content, const char *word)
{
	const cJSON *b, *t;

	if (cJSON_IsString(content))
		return fake_has_word(content->valuestring, word);
	cJSON_ArrayForEach(b, content) {
		t = get(b, "text");
		if (is(get(b, "type"), "text") && cJSON_IsString(t) &&
		    fake_has_word(t->valuestring, word))
			return 1;
	}
	return 0;
}

static const cJSON *first_result(const cJSON *content)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, content)
		if (is(get(b, "type"), "tool_result"))
			return b;
	return NULL;
}

/* Decide the answer: 0, or -1 when out of memory. */
static int plan_answer(const cJSON *req, const struct ask *a, const struct knobs *k, struct plan *p)
{
	const cJSON *messages = get(req, "messages");
	const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
	const cJSON *content = get(last, "content"), *result = NULL;
	cJSON *input;
	size_t len, cut;
	int user = is(get(last, "role"), "user"), i;
	char *r;

	p->n = fake_next_id();
	snprintf(p->id, sizeof(p->id), "msg_fake_%llu", p->n);
	p->model = get(req, "model")->valuestring;
	p->input_tokens = a->input_tokens;
	p->cache_read = k->cache_read;
	p->cache_write = k->cache_write;
	p->with_usage = !k->no_usage;
	p->stop_reason = "end_turn";
	if (user && cJSON_IsArray(content))
		result = first_result(content);
	if (result) {
		r = result_text(get(result, "content"));
		if (!r)
			return -1;
		len = strlen(r) + 9;
		p->text = malloc(len);
		if (!p->text) {
			free(r);
			return -1;
		}
		snprintf(p->text, len, "result: %s", r);
		free(r);
		p->reply.text = p->text;
		p->reply.tokens = fake_text_tokens(strlen(p->text));
		if (p->reply.tokens > a->max_tokens) {
			cut = (size_t)a->max_tokens * 4;
			while (cut > 0 && ((unsigned char)p->text[cut] & 0xC0) == 0x80)
				cut--;
			p->text[cut] = '\0';
			p->reply.tokens = a->max_tokens;
			p->stop_reason = "max_tokens";
		}
		p->output_tokens = p->reply.tokens;
		return 0;
	}
	if (user && cJSON_GetArraySize(a->tools) > 0 && strcmp(a->tool_choice, "none") != 0 &&
	    (says(content, "weather") || strcmp(a->tool_choice, "auto") != 0)) {
		p->ncalls = says(content, "both") ? 2 : 1;
		p->tool = a->forced_tool ?
				  a->forced_tool :
				  get(cJSON_GetArrayItem(a->tools, 0), "name")->valuestring;
		for (i = 0; i < p->ncalls; i++) {
			input = cJSON_CreateObject();
			cJSON_AddStringToObject(input, "city", cities[i]);
			p->args[i] = cJSON_PrintUnformatted(input);
			cJSON_Delete(input);
			if (!p->args[i])
				return -1;
			p->output_tokens += fake_text_tokens(strlen(p->tool) + strlen(p->args[i]));
		}
		p->stop_reason = "tool_use";
		return 0;
	}
	/* Forced lengths are exact; otherwise the default, cut at max_tokens. */
	if (k->completion_tokens >= 0) {
		p->reply.tokens = k->completion_tokens;
		if (p->reply.tokens >= a->max_tokens)
			p->stop_reason = "max_tokens";
	} else if (a->max_tokens < fake_opt.completion_tokens) {
		p->reply.tokens = a->max_tokens;
		p->stop_reason = "max_tokens";
	} else {
		p->reply.tokens = fake_opt.completion_tokens;
	}
	p->output_tokens = p->reply.tokens;
	return 0;
}

static void plan_free(struct plan *p)
{
	int i;

	free(p->text);
	for (i = 0; i < MAX_CALLS; i++)
		cJSON_free(p->args[i]);
}

static cJSON *usage_new(const struct plan *p, long output_tokens)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddNumberToObject(u, "input_tokens", (double)p->input_tokens);
	cJSON_AddNumberToObject(u, "cache_creation_input_tokens", (double)p->cache_write);
	cJSON_AddNumberToObject(u, "cache_read_input_tokens", (double)p->cache_read);
	cJSON_AddNumberToObject(u, "output_tokens", (double)output_tokens);
	return u;
}

static void call_id(const struct plan *p, int i, char *out, size_t size)
{
	snprintf(out, size, "toolu_fake_%llu_%d", p->n, i);
}

/* The message object; with content empty and no stop reason for message_start. */
static cJSON *message_new(const struct plan *p, int start)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *content, *block;
	char id[64], *text;
	int i;

	cJSON_AddStringToObject(root, "id", p->id);
	cJSON_AddStringToObject(root, "type", "message");
	cJSON_AddStringToObject(root, "role", "assistant");
	cJSON_AddStringToObject(root, "model", p->model);
	content = cJSON_AddArrayToObject(root, "content");
	for (i = 0; !start && i < p->ncalls; i++) {
		block = cJSON_CreateObject();
		call_id(p, i, id, sizeof(id));
		cJSON_AddStringToObject(block, "type", "tool_use");
		cJSON_AddStringToObject(block, "id", id);
		cJSON_AddStringToObject(block, "name", p->tool);
		fake_add_item(block, "input", cJSON_Parse(p->args[i]));
		fake_push_item(content, block);
	}
	if (!start && !p->ncalls) {
		text = fake_reply_text(&p->reply);
		block = cJSON_CreateObject();
		cJSON_AddStringToObject(block, "type", "text");
		cJSON_AddStringToObject(block, "text", text ? text : "");
		fake_push_item(content, block);
		free(text);
	}
	if (start)
		cJSON_AddNullToObject(root, "stop_reason");
	else
		cJSON_AddStringToObject(root, "stop_reason", p->stop_reason);
	cJSON_AddNullToObject(root, "stop_sequence");
	if (p->with_usage)
		fake_add_item(root, "usage", usage_new(p, start ? 1 : p->output_tokens));
	return root;
}

/* One "event: NAME\ndata: JSON\n\n" in one write; data is consumed. 0, else -1. */
static int emit(struct sse *s, const char *name, cJSON *data)
{
	char *json = data ? cJSON_PrintUnformatted(data) : NULL;
	size_t cap = json ? strlen(json) + strlen(name) + 32 : 0;
	char *buf = json ? malloc(cap) : NULL;
	int n, rc = -1;

	cJSON_Delete(data);
	if (buf) {
		n = snprintf(buf, cap, "event: %s\ndata: %s\n\n", name, json);
		rc = fake_sse_write(s, buf, (size_t)n);
	}
	free(buf);
	cJSON_free(json);
	return rc;
}

static cJSON *event_new(const char *type, int index)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "type", type);
	if (index >= 0)
		cJSON_AddNumberToObject(e, "index", index);
	return e;
}

static cJSON *block_start(const struct plan *p, int i)
{
	cJSON *e = event_new("content_block_start", i);
	cJSON *b = cJSON_AddObjectToObject(e, "content_block");
	char id[64];

	if (!p->ncalls) {
		cJSON_AddStringToObject(b, "type", "text");
		cJSON_AddStringToObject(b, "text", "");
		return e;
	}
	call_id(p, i, id, sizeof(id));
	cJSON_AddStringToObject(b, "type", "tool_use");
	cJSON_AddStringToObject(b, "id", id);
	cJSON_AddStringToObject(b, "name", p->tool);
	cJSON_AddObjectToObject(b, "input");
	return e;
}

static cJSON *block_delta(int i, int json, const char *piece)
{
	cJSON *e = event_new("content_block_delta", i);
	cJSON *d = cJSON_AddObjectToObject(e, "delta");

	cJSON_AddStringToObject(d, "type", json ? "input_json_delta" : "text_delta");
	cJSON_AddStringToObject(d, json ? "partial_json" : "text", piece);
	return e;
}

static int stream_answer(struct mg_connection *conn, const struct plan *p, const struct knobs *k)
{
	struct sse s;
	struct fake_reply r;
	cJSON *e, *d;
	long sent = 0, c, n, len;
	int i, nblocks = p->ncalls ? p->ncalls : 1, done = 0, rc;
	char *piece;

	fake_sse_begin(&s, conn);
	e = event_new("message_start", -1);
	fake_add_item(e, "message", message_new(p, 1));
	if (emit(&s, "message_start", e))
		goto out;
	for (i = 0; i < nblocks; i++) {
		if (emit(&s, "content_block_start", block_start(p, i)))
			goto out;
		if (i == 0 && emit(&s, "ping", event_new("ping", -1)))
			goto out;
		if (p->ncalls) {
			/* A tool's input JSON in two or more pieces, as the API streams it. */
			r.text = p->args[i];
			len = (long)strlen(r.text);
			r.tokens = len;
			n = k->chunks >= 2 ? (k->chunks < len ? k->chunks : len) : 2;
		} else {
			r = p->reply;
			n = fake_reply_chunks(&r, k->chunks);
		}
		for (c = 0; c < n; c++) {
			if (sent++ == k->break_after || fake_nap(k->chunk_interval_ms))
				goto out;
			piece = fake_reply_piece(&r, c, n);
			rc = piece ? emit(&s, "content_block_delta",
					  block_delta(i, p->ncalls > 0, piece)) :
				     -1;
			free(piece);
			if (rc)
				goto out;
		}
		/* A break point past the last piece drops just the ending. */
		if (i == nblocks - 1 && k->break_after >= 0)
			goto out;
		if (emit(&s, "content_block_stop", event_new("content_block_stop", i)))
			goto out;
	}
	e = event_new("message_delta", -1);
	d = cJSON_AddObjectToObject(e, "delta");
	cJSON_AddStringToObject(d, "stop_reason", p->stop_reason);
	cJSON_AddNullToObject(d, "stop_sequence");
	if (p->with_usage) {
		d = cJSON_AddObjectToObject(e, "usage");
		cJSON_AddNumberToObject(d, "output_tokens", (double)p->output_tokens);
	}
	if (emit(&s, "message_delta", e) ||
	    emit(&s, "message_stop", event_new("message_stop", -1)) || fake_sse_end(&s))
		goto out;
	done = 1;
out:
	/* Unfinished: close the connection mid-body rather than end the chunked body. */
	if (!done)
		fake_no_keep_alive(conn);
	return 200;
}

/* Content-Type is application/json (parameters such as charset allowed). */
static int json_type(const char *ct)
{
	return ct && strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

int anthropic_handle(struct mg_connection *conn, const char *body, const struct knobs *k)
{
	const char *key = mg_get_header(conn, "x-api-key");
	const char *version = mg_get_header(conn, "anthropic-version");
	cJSON *req = NULL, *msg = NULL;
	struct check c;
	struct ask a;
	struct plan p;
	long st;
	int status;

	memset(&p, 0, sizeof(p));
	if (!key || !*key)
		return anthropic_error(conn, 401, "x-api-key header is required");
	if (!version || !*version)
		return anthropic_error(conn, 400, "anthropic-version: header is required");
	if (strcmp(version, "2023-06-01") != 0 && strcmp(version, "2023-01-01") != 0) {
		snprintf(c.msg, sizeof(c.msg), "anthropic-version: unknown version '%.64s'",
			 version);
		return anthropic_error(conn, 400, c.msg);
	}
	if (!json_type(mg_get_header(conn, "Content-Type")))
		return anthropic_error(conn, 400, "Content-Type must be application/json");
	req = cJSON_ParseWithOpts(body, NULL, 1);
	if (!cJSON_IsObject(req)) {
		status = anthropic_error(conn, 400,
					 "There was an error parsing the body of your request: it "
					 "is not a valid JSON object.");
		goto out;
	}
	if (check_request(req, &a, &c)) {
		status = anthropic_error(conn, 400, c.msg);
		goto out;
	}
	st = fake_status(k);
	if (st) {
		status = anthropic_error(conn, (int)st,
					 st == 529 ? "Overloaded" : "injected failure");
		goto out;
	}
	/* The window holds the whole prompt: the counted input and the cached tokens. */
	if (k->context_window &&
	    a.input_tokens + k->cache_read + k->cache_write > k->context_window) {
		snprintf(c.msg, sizeof(c.msg), "prompt is too long: %ld tokens > %ld maximum",
			 a.input_tokens + k->cache_read + k->cache_write, k->context_window);
		status = anthropic_error(conn, 400, c.msg);
		goto out;
	}
	if (plan_answer(req, &a, k, &p)) {
		status = anthropic_error(conn, 500, "out of memory");
		goto out;
	}
	if (a.stream) {
		status = stream_answer(conn, &p, k);
		goto out;
	}
	msg = message_new(&p, 0);
	status = fake_send_json(conn, 200, msg, "");
out:
	plan_free(&p);
	cJSON_Delete(msg);
	cJSON_Delete(req);
	return status;
}
