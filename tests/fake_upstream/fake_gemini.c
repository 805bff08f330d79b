/* fake_gemini.c - a strict stand-in for the Gemini API (generativelanguage v1beta).
 *
 * POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse,
 * :batchEmbedContents and :embedContent. A request is checked the way the API reference
 * describes it, and what Google would refuse is refused in Google's error envelope: a
 * missing API key, unknown fields anywhere (OpenAI's `messages`, `max_tokens`, ...), roles
 * other than user and model, a part with no data or two, a functionResponse that answers
 * no functionCall. Field names may be lowerCamel or snake_case, as proto JSON allows.
 * Answers are deterministic: the words tok0 tok1 ..., functionCall parts when the user asks
 * about the weather, "result: ..." after a functionResponse, a SAFETY block on "blocked".
 */
#include "fake.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#define MAX_CALLS 2
#define MSG_MAX 700

enum method { M_GENERATE, M_STREAM, M_BATCH_EMBED, M_EMBED };

/* The first problem found in a request, as Google words it. */
struct check {
	char msg[MSG_MAX];
};

/* What the request asks for, gathered while it is checked. */
struct ask {
	long max_tokens;   /* 0: no limit */
	long input_tokens; /* counted from the text */
	const char *mode;  /* function calling mode: "AUTO" unless given */
	const char *tool;  /* the function a call names: first declared or allowed */
	int has_functions; /* any functionDeclarations */
};

/* Everything the answer is made of, plain or streamed. */
struct plan {
	char id[48];
	const char *model;
	long prompt_tokens; /* text count plus cache_read */
	long output_tokens;
	long cached;
	long thoughts;
	const char *finish;
	int with_usage;
	int blocked;
	struct fake_reply reply;
	char *text; /* owned: reply.text, when not the words */
	int ncalls;
	const char *tool;
};

static const char *const cities[MAX_CALLS] = { "Paris", "Tokyo" };

static const char *status_name(int status)
{
	switch (status) {
	case 400:
		return "INVALID_ARGUMENT";
	case 401:
		return "UNAUTHENTICATED";
	case 403:
		return "PERMISSION_DENIED";
	case 404:
		return "NOT_FOUND";
	case 409:
		return "ABORTED";
	case 429:
		return "RESOURCE_EXHAUSTED";
	case 499:
		return "CANCELLED";
	case 500:
		return "INTERNAL";
	case 501:
		return "UNIMPLEMENTED";
	case 503:
		return "UNAVAILABLE";
	case 504:
		return "DEADLINE_EXCEEDED";
	default:
		return status < 500 ? "FAILED_PRECONDITION" : "INTERNAL";
	}
}

int gemini_error(struct mg_connection *conn, int status, const char *message)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	cJSON *details, *info;

	cJSON_AddNumberToObject(err, "code", status);
	cJSON_AddStringToObject(err, "message", message);
	cJSON_AddStringToObject(err, "status", status_name(status));
	if (status == 429) {
		details = cJSON_AddArrayToObject(err, "details");
		info = cJSON_CreateObject();
		cJSON_AddStringToObject(info, "@type", "type.googleapis.com/google.rpc.RetryInfo");
		cJSON_AddStringToObject(info, "retryDelay", "1s");
		fake_push_item(details, info);
	}
	fake_send_json(conn, status, root, "");
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

/* The snake_case spelling of a lowerCamel field name. */
static void snake(const char *camel, char *out, size_t size)
{
	size_t n = 0;

	for (; *camel && n + 2 < size; camel++) {
		if (isupper((unsigned char)*camel)) {
			out[n++] = '_';
			out[n++] = (char)tolower((unsigned char)*camel);
		} else {
			out[n++] = *camel;
		}
	}
	out[n] = '\0';
}

/* Field camel of obj, spelled lowerCamel or snake_case. */
static const cJSON *field(const cJSON *obj, const char *camel)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, camel);
	char s[64];

	if (v || !cJSON_IsObject(obj))
		return v;
	snake(camel, s, sizeof(s));
	return cJSON_GetObjectItemCaseSensitive(obj, s);
}

/* The first key of obj that is none of the allowed names (either spelling), or NULL. */
static const char *unknown_key(const cJSON *obj, const char *const *allowed)
{
	const cJSON *it;
	char s[64];
	size_t i;

	cJSON_ArrayForEach(it, obj) {
		for (i = 0; allowed[i]; i++) {
			snake(allowed[i], s, sizeof(s));
			if (strcmp(it->string, allowed[i]) == 0 || strcmp(it->string, s) == 0)
				break;
		}
		if (!allowed[i])
			return it->string;
	}
	return NULL;
}

/* Unknown fields of obj at where ("" at the top level) are refused. */
static int known_keys(const cJSON *obj, const char *const *allowed, const char *where,
		      struct check *c)
{
	const char *u = unknown_key(obj, allowed);

	if (!u)
		return 0;
	if (!*where)
		return bad(c,
			   "Invalid JSON payload received. Unknown name \"%s\": Cannot find field.",
			   u);
	return bad(c,
		   "Invalid JSON payload received. Unknown name \"%s\" at '%s': Cannot find field.",
		   u, where);
}

/* A value of the wrong type at where. */
static int bad_value(struct check *c, const char *where, const char *type, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	int rc = bad(c, "Invalid value at '%s' (%s), %.200s", where, type, s ? s : "?");

	cJSON_free(s);
	return rc;
}

/* An object expected at where: 0 if absent or an object. */
static int need_object(const cJSON *v, const char *where, const char *type, struct check *c)
{
	if (v && !cJSON_IsObject(v))
		return bad_value(c, where, type, v);
	return 0;
}

static int is_whole(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
}

static int str_is(const cJSON *v, const char *s)
{
	return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
}

/* The bytes of text a part carries, for the token count. */
static long part_bytes(const cJSON *part)
{
	const cJSON *t = field(part, "text"), *call = field(part, "functionCall");
	const cJSON *resp = field(part, "functionResponse"), *v = NULL;
	char *s;
	long n;

	if (cJSON_IsString(t))
		return (long)strlen(t->valuestring);
	if (call)
		v = field(call, "args");
	else if (resp)
		v = field(resp, "response");
	if (!v)
		return 0;
	s = cJSON_PrintUnformatted(v);
	n = s ? (long)strlen(s) : 0;
	cJSON_free(s);
	return n;
}

/* One part of contents[i]: exactly one data field. *calls / *responses count those. */
static int check_part(const cJSON *part, const char *where, int user, int *calls, int *responses,
		      struct check *c)
{
	static const char *const keys[] = { "text",
					    "inlineData",
					    "fileData",
					    "functionCall",
					    "functionResponse",
					    "executableCode",
					    "codeExecutionResult",
					    "thought",
					    "thoughtSignature",
					    "videoMetadata",
					    NULL };
	static const char *const data[] = { "text",
					    "inlineData",
					    "fileData",
					    "functionCall",
					    "functionResponse",
					    "executableCode",
					    "codeExecutionResult",
					    NULL };
	static const char *const inline_keys[] = { "mimeType", "data", NULL };
	static const char *const file_keys[] = { "mimeType", "fileUri", NULL };
	static const char *const call_keys[] = { "id", "name", "args", NULL };
	static const char *const resp_keys[] = { "id",           "name",       "response",
						 "willContinue", "scheduling", NULL };
	const cJSON *v, *name;
	char sub[128];
	int set = 0, i;

	if (!cJSON_IsObject(part))
		return bad_value(c, where,
				 "type.googleapis.com/google.ai.generativelanguage.v1beta.Part",
				 part);
	if (known_keys(part, keys, where, c))
		return -1;
	for (i = 0; data[i]; i++) {
		v = field(part, data[i]);
		/* proto3: an empty string is an unset field */
		if (!v || (cJSON_IsString(v) && !v->valuestring[0]))
			continue;
		if (set++)
			return bad(
				c,
				"Invalid value at '%s' (oneof), oneof field 'data' is already set. "
				"Cannot set '%s'",
				where, data[i]);
	}
	if (!set)
		return bad(
			c,
			"* GenerateContentRequest.%s.data: required oneof field 'data' must have "
			"one initialized field",
			where);
	v = field(part, "text");
	if (v && !cJSON_IsString(v))
		return bad_value(c, where, "TYPE_STRING", v);
	v = field(part, "inlineData");
	snprintf(sub, sizeof(sub), "%s.inline_data", where);
	if (need_object(v, sub, "type.googleapis.com/google.ai.generativelanguage.v1beta.Blob", c))
		return -1;
	if (v && known_keys(v, inline_keys, sub, c))
		return -1;
	if (v && (!cJSON_IsString(field(v, "mimeType")) || !field(v, "mimeType")->valuestring[0]))
		return bad(c, "* GenerateContentRequest.%s.mime_type: a mime type is required",
			   sub);
	if (v && (!cJSON_IsString(field(v, "data")) || !field(v, "data")->valuestring[0]))
		return bad(c, "* GenerateContentRequest.%s.data: data is required", sub);
	v = field(part, "fileData");
	snprintf(sub, sizeof(sub), "%s.file_data", where);
	if (need_object(v, sub, "type.googleapis.com/google.ai.generativelanguage.v1beta.FileData",
			c))
		return -1;
	if (v && known_keys(v, file_keys, sub, c))
		return -1;
	if (v && (!cJSON_IsString(field(v, "fileUri")) || !field(v, "fileUri")->valuestring[0]))
		return bad(c, "* GenerateContentRequest.%s.file_uri: file_uri is required", sub);
	v = field(part, "functionCall");
	snprintf(sub, sizeof(sub), "%s.function_call", where);
	if (need_object(v, sub,
			"type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCall", c))
		return -1;
	if (v) {
		name = field(v, "name");
		if (known_keys(v, call_keys, sub, c))
			return -1;
		if (!cJSON_IsString(name) || !name->valuestring[0])
			return bad(c, "* GenerateContentRequest.%s.name: Name is required.", sub);
		if (need_object(field(v, "args"), sub, "type.googleapis.com/google.protobuf.Struct",
				c))
			return -1;
		if (user)
			return bad(
				c,
				"Please ensure that function call turn comes immediately after a "
				"user turn or after a function response turn.");
		(*calls)++;
	}
	v = field(part, "functionResponse");
	snprintf(sub, sizeof(sub), "%s.function_response", where);
	if (need_object(v, sub,
			"type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionResponse",
			c))
		return -1;
	if (v) {
		name = field(v, "name");
		if (known_keys(v, resp_keys, sub, c))
			return -1;
		if (!cJSON_IsString(name) || !name->valuestring[0])
			return bad(c, "* GenerateContentRequest.%s.name: Name is required.", sub);
		if (!cJSON_IsObject(field(v, "response")))
			return bad(c, "* GenerateContentRequest.%s.response: response is required",
				   sub);
		if (!user)
			return bad(
				c,
				"Please ensure that function response turn comes immediately after "
				"a function call turn.");
		(*responses)++;
	}
	return 0;
}

/* Whether the functionCall parts of prev (a model turn) include name. */
static int called(const cJSON *prev, const char *name)
{
	const cJSON *part;

	cJSON_ArrayForEach(part, field(prev, "parts"))
		if (str_is(field(field(part, "functionCall"), "name"), name))
			return 1;
	return 0;
}

/* Each functionResponse of content answers a functionCall of prev, one for one. */
static int check_answers(const cJSON *prev, int prev_calls, const cJSON *content, int responses,
			 struct check *c)
{
	const cJSON *part, *name;

	if (responses == 0 && prev_calls == 0)
		return 0;
	if (responses > 0 && prev_calls == 0)
		return bad(c, "Please ensure that function response turn comes immediately after a "
			      "function call turn.");
	if (responses != prev_calls)
		return bad(c,
			   "Please ensure that the number of function response parts is equal to "
			   "the number of function call parts of the function call turn.");
	cJSON_ArrayForEach(part, field(content, "parts")) {
		name = field(field(part, "functionResponse"), "name");
		if (name && !called(prev, name->valuestring))
			return bad(
				c,
				"Please ensure that the function response turn answers the "
				"function call turn: no functionCall named \"%s\" in the previous "
				"model turn.",
				name->valuestring);
	}
	return 0;
}

static int check_contents(const cJSON *contents, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "role", "parts", NULL };
	const cJSON *content, *role, *parts, *part, *prev = NULL;
	char where[64], pw[96];
	int i = 0, j, n = cJSON_GetArraySize(contents), user, calls, responses, prev_calls = 0;
	long bytes;

	if (!contents || (cJSON_IsArray(contents) && n == 0))
		return bad(c, "* GenerateContentRequest.contents: contents is not specified");
	if (!cJSON_IsArray(contents))
		return bad_value(c, "contents",
				 "type.googleapis.com/google.ai.generativelanguage.v1beta.Content",
				 contents);
	cJSON_ArrayForEach(content, contents) {
		snprintf(where, sizeof(where), "contents[%d]", i);
		if (!cJSON_IsObject(content))
			return bad_value(
				c, where,
				"type.googleapis.com/google.ai.generativelanguage.v1beta.Content",
				content);
		if (known_keys(content, keys, where, c))
			return -1;
		role = field(content, "role");
		/* A lone turn may leave the role out; it is then the user's. */
		if ((!role && n > 1) || (role && !str_is(role, "user") && !str_is(role, "model")))
			return bad(c, "Please use a valid role: user, model.");
		user = !role || str_is(role, "user");
		parts = field(content, "parts");
		if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
			return bad(
				c,
				"* GenerateContentRequest.contents[%d].parts: contents.parts must "
				"not be empty.",
				i);
		j = 0;
		calls = responses = 0;
		bytes = 0;
		cJSON_ArrayForEach(part, parts) {
			snprintf(pw, sizeof(pw), "%s.parts[%d]", where, j++);
			if (check_part(part, pw, user, &calls, &responses, c))
				return -1;
			bytes += part_bytes(part);
		}
		if (user && check_answers(prev, prev_calls, content, responses, c))
			return -1;
		a->input_tokens += fake_text_tokens((size_t)bytes) + 3;
		prev = content;
		prev_calls = user ? 0 : calls;
		i++;
	}
	return 0;
}

static int check_system(const cJSON *sys, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "parts", "role", NULL };
	static const char *const part_keys[] = { "text", NULL };
	const cJSON *parts = field(sys, "parts"), *part, *t;
	char where[64];
	long bytes = 0;
	int j = 0;

	if (!sys)
		return 0;
	if (need_object(sys, "system_instruction",
			"type.googleapis.com/google.ai.generativelanguage.v1beta.Content", c) ||
	    known_keys(sys, keys, "system_instruction", c))
		return -1;
	if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
		return bad(c, "* GenerateContentRequest.system_instruction.parts: contents.parts "
			      "must not be empty.");
	cJSON_ArrayForEach(part, parts) {
		snprintf(where, sizeof(where), "system_instruction.parts[%d]", j++);
		if (need_object(part, where,
				"type.googleapis.com/google.ai.generativelanguage.v1beta.Part",
				c) ||
		    known_keys(part, part_keys, where, c))
			return -1;
		t = field(part, "text");
		if (!cJSON_IsString(t) || !t->valuestring[0])
			return bad(c,
				   "* GenerateContentRequest.%s.data: required oneof field 'data' "
				   "must have one initialized field",
				   where);
		bytes += (long)strlen(t->valuestring);
	}
	a->input_tokens += fake_text_tokens((size_t)bytes) + 3;
	return 0;
}

static int check_number(const cJSON *v, const char *where, double min, double max, struct check *c)
{
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v))
		return bad_value(c, where, "TYPE_FLOAT", v);
	if (v->valuedouble < min || v->valuedouble > max)
		return bad(c, "* GenerateContentRequest.%s: must be in the range [%g, %g]", where,
			   min, max);
	return 0;
}

static int check_int(const cJSON *v, const char *where, long min, struct check *c)
{
	if (!v)
		return 0;
	if (!is_whole(v))
		return bad_value(c, where, "TYPE_INT32", v);
	if (v->valuedouble < (double)min)
		return bad(c, "* GenerateContentRequest.%s: must be at least %ld", where, min);
	return 0;
}

static int check_config(const cJSON *g, struct ask *a, struct check *c)
{
	static const char *const keys[] = {
		"temperature",
		"topP",
		"topK",
		"maxOutputTokens",
		"stopSequences",
		"candidateCount",
		"responseMimeType",
		"responseSchema",
		"responseJsonSchema",
		"seed",
		"presencePenalty",
		"frequencyPenalty",
		"thinkingConfig",
		"responseModalities",
		"responseLogprobs",
		"logprobs",
		"mediaResolution",
		"speechConfig",
		NULL,
	};
	static const char *const think_keys[] = { "thinkingBudget", "includeThoughts",
						  "thinkingLevel", NULL };
	const cJSON *v, *s;
	int i = 0;

	if (!g)
		return 0;
	if (need_object(g, "generation_config",
			"type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig",
			c) ||
	    known_keys(g, keys, "generation_config", c))
		return -1;
	if (check_number(field(g, "temperature"), "generation_config.temperature", 0, 2, c) ||
	    check_number(field(g, "topP"), "generation_config.top_p", 0, 1, c) ||
	    check_int(field(g, "topK"), "generation_config.top_k", 1, c) ||
	    check_int(field(g, "maxOutputTokens"), "generation_config.max_output_tokens", 1, c) ||
	    check_int(field(g, "seed"), "generation_config.seed", -2147483647L, c) ||
	    check_number(field(g, "presencePenalty"), "generation_config.presence_penalty", -2, 2,
			 c) ||
	    check_number(field(g, "frequencyPenalty"), "generation_config.frequency_penalty", -2, 2,
			 c) ||
	    check_int(field(g, "candidateCount"), "generation_config.candidate_count", 1, c))
		return -1;
	v = field(g, "candidateCount");
	if (v && v->valuedouble != 1)
		return bad(c, "* GenerateContentRequest.generation_config.candidate_count: "
			      "fake_upstream answers one candidate only; candidateCount must be 1");
	v = field(g, "maxOutputTokens");
	if (v)
		a->max_tokens = (long)v->valuedouble;
	v = field(g, "stopSequences");
	if (v && !cJSON_IsArray(v))
		return bad_value(c, "generation_config.stop_sequences", "TYPE_STRING", v);
	cJSON_ArrayForEach(s, v) {
		if (!cJSON_IsString(s))
			return bad_value(c, "generation_config.stop_sequences", "TYPE_STRING", s);
		i++;
	}
	if (i > 5)
		return bad(c,
			   "* GenerateContentRequest.generation_config.stop_sequences: at most 5 "
			   "stop sequences are allowed");
	v = field(g, "responseMimeType");
	if (v && !str_is(v, "text/plain") && !str_is(v, "application/json") &&
	    !str_is(v, "application/xml") && !str_is(v, "application/yaml") &&
	    !str_is(v, "text/x.enum"))
		return bad(c,
			   "* GenerateContentRequest.generation_config.response_mime_type: allowed "
			   "mimetypes are `text/plain`, `application/json`, `application/xml`, "
			   "`application/yaml` and `text/x.enum`.");
	if (need_object(field(g, "responseSchema"), "generation_config.response_schema",
			"type.googleapis.com/google.ai.generativelanguage.v1beta.Schema", c))
		return -1;
	v = field(g, "thinkingConfig");
	if (need_object(v, "generation_config.thinking_config",
			"type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig",
			c) ||
	    (v && known_keys(v, think_keys, "generation_config.thinking_config", c)) ||
	    check_int(field(v, "thinkingBudget"),
		      "generation_config.thinking_config.thinking_budget", -1, c))
		return -1;
	if (field(v, "includeThoughts") && !cJSON_IsBool(field(v, "includeThoughts")))
		return bad_value(c, "generation_config.thinking_config.include_thoughts",
				 "TYPE_BOOL", field(v, "includeThoughts"));
	return 0;
}

/* ^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$ */
static int good_function_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 && (isalpha((unsigned char)s[0]) || s[0] == '_') &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int check_tools(const cJSON *tools, struct ask *a, struct check *c)
{
	static const char *const keys[] = {
		"functionDeclarations", "googleSearch", "googleSearchRetrieval",
		"codeExecution",        "urlContext",   NULL
	};
	static const char *const fn_keys[] = { "name",       "description",
					       "parameters", "parametersJsonSchema",
					       "response",   "responseJsonSchema",
					       "behavior",   NULL };
	const cJSON *tool, *decls, *fn, *name;
	char where[64], fw[160];
	int i = 0, j;

	if (!tools)
		return 0;
	if (!cJSON_IsArray(tools))
		return bad_value(c, "tools",
				 "type.googleapis.com/google.ai.generativelanguage.v1beta.Tool",
				 tools);
	cJSON_ArrayForEach(tool, tools) {
		snprintf(where, sizeof(where), "tools[%d]", i);
		if (need_object(tool, where,
				"type.googleapis.com/google.ai.generativelanguage.v1beta.Tool",
				c) ||
		    known_keys(tool, keys, where, c))
			return -1;
		decls = field(tool, "functionDeclarations");
		if (decls && !cJSON_IsArray(decls))
			return bad_value(c, where, "FunctionDeclaration", decls);
		j = 0;
		cJSON_ArrayForEach(fn, decls) {
			snprintf(fw, sizeof(fw), "%s.function_declarations[%d]", where, j++);
			if (need_object(fn, fw, "FunctionDeclaration", c) ||
			    known_keys(fn, fn_keys, fw, c))
				return -1;
			name = field(fn, "name");
			if (!cJSON_IsString(name) || !good_function_name(name->valuestring))
				return bad(
					c,
					"* GenerateContentRequest.%s.name: Invalid function name. "
					"Must start with a letter or an underscore. Must be "
					"alphameric (a-z, A-Z, 0-9), underscores (_), dots (.) or "
					"dashes (-), with a maximum length of 64.",
					fw);
			if (field(fn, "description") && !cJSON_IsString(field(fn, "description")))
				return bad_value(c, fw, "TYPE_STRING", field(fn, "description"));
			if (need_object(field(fn, "parameters"), fw, "Schema", c))
				return -1;
			if (!a->tool)
				a->tool = name->valuestring;
			a->has_functions = 1;
		}
		i++;
	}
	return 0;
}

static int check_tool_config(const cJSON *tc, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "functionCallingConfig", NULL };
	static const char *const fc_keys[] = { "mode", "allowedFunctionNames", NULL };
	const cJSON *fc = field(tc, "functionCallingConfig"), *mode, *allowed, *n;

	a->mode = "AUTO";
	if (!tc)
		return 0;
	if (need_object(tc, "tool_config", "ToolConfig", c) ||
	    known_keys(tc, keys, "tool_config", c) ||
	    need_object(fc, "tool_config.function_calling_config", "FunctionCallingConfig", c) ||
	    (fc && known_keys(fc, fc_keys, "tool_config.function_calling_config", c)))
		return -1;
	mode = field(fc, "mode");
	allowed = field(fc, "allowedFunctionNames");
	if (mode && !str_is(mode, "AUTO") && !str_is(mode, "ANY") && !str_is(mode, "NONE") &&
	    !str_is(mode, "VALIDATED") && !str_is(mode, "MODE_UNSPECIFIED"))
		return bad_value(c, "tool_config.function_calling_config.mode",
				 "type.googleapis.com/google.ai.generativelanguage.v1beta."
				 "FunctionCallingConfig.Mode",
				 mode);
	if (mode && !str_is(mode, "MODE_UNSPECIFIED"))
		a->mode = mode->valuestring;
	if (allowed && !cJSON_IsArray(allowed))
		return bad_value(c, "tool_config.function_calling_config.allowed_function_names",
				 "TYPE_STRING", allowed);
	cJSON_ArrayForEach(n, allowed)
		if (!cJSON_IsString(n))
			return bad_value(
				c, "tool_config.function_calling_config.allowed_function_names",
				"TYPE_STRING", n);
	if (cJSON_GetArraySize(allowed) > 0) {
		if (strcmp(a->mode, "ANY") != 0)
			return bad(c,
				   "* GenerateContentRequest.tool_config.function_calling_config."
				   "allowed_function_names: allowed_function_names may only be set "
				   "when the mode is ANY.");
		a->tool = cJSON_GetArrayItem(allowed, 0)->valuestring;
	}
	return 0;
}

static int check_safety(const cJSON *ss, struct check *c)
{
	static const char *const keys[] = { "category", "threshold", "method", NULL };
	const cJSON *s;
	char where[48];
	int i = 0;

	if (!ss)
		return 0;
	if (!cJSON_IsArray(ss))
		return bad_value(c, "safety_settings", "SafetySetting", ss);
	cJSON_ArrayForEach(s, ss) {
		snprintf(where, sizeof(where), "safety_settings[%d]", i++);
		if (need_object(s, where, "SafetySetting", c) || known_keys(s, keys, where, c))
			return -1;
		if (!cJSON_IsString(field(s, "category")) || !cJSON_IsString(field(s, "threshold")))
			return bad(c,
				   "* GenerateContentRequest.%s: category and threshold are "
				   "required",
				   where);
	}
	return 0;
}

static int check_generate(const cJSON *req, struct ask *a, struct check *c)
{
	static const char *const keys[] = { "contents",         "systemInstruction",
					    "generationConfig", "tools",
					    "toolConfig",       "safetySettings",
					    "cachedContent",    NULL };

	memset(a, 0, sizeof(*a));
	if (known_keys(req, keys, "", c))
		return -1;
	if (field(req, "cachedContent") && !cJSON_IsString(field(req, "cachedContent")))
		return bad_value(c, "cached_content", "TYPE_STRING", field(req, "cachedContent"));
	if (check_tools(field(req, "tools"), a, c) ||
	    check_tool_config(field(req, "toolConfig"), a, c) ||
	    check_config(field(req, "generationConfig"), a, c) ||
	    check_safety(field(req, "safetySettings"), c) ||
	    check_system(field(req, "systemInstruction"), a, c) ||
	    check_contents(field(req, "contents"), a, c))
		return -1;
	return 0;
}

/* Whether the text parts of content contain word. */
static int says(const cJSON *content, const char *word)
{
	const cJSON *part, *t;

	cJSON_ArrayForEach(part, field(content, "parts")) {
		t = field(part, "text");
		if (cJSON_IsString(t) && fake_has_word(t->valuestring, word))
			return 1;
	}
	return 0;
}

static const cJSON *first_response(const cJSON *content)
{
	const cJSON *part, *r;

	cJSON_ArrayForEach(part, field(content, "parts")) {
		r = field(part, "functionResponse");
		if (r)
			return r;
	}
	return NULL;
}

/* Decide the answer: 0, or -1 when out of memory. */
static int plan_answer(const cJSON *req, const char *model, const struct ask *a,
		       const struct knobs *k, struct plan *p)
{
	const cJSON *contents = field(req, "contents");
	const cJSON *last = cJSON_GetArrayItem(contents, cJSON_GetArraySize(contents) - 1);
	const cJSON *resp = NULL;
	int user = !field(last, "role") || str_is(field(last, "role"), "user");
	size_t len, cut;
	char *r;

	snprintf(p->id, sizeof(p->id), "fake-resp-%llu", fake_next_id());
	p->model = model;
	p->cached = k->cache_read;
	p->thoughts = k->thoughts;
	p->prompt_tokens = a->input_tokens + p->cached;
	p->with_usage = !k->no_usage;
	p->finish = "STOP";
	if (user)
		resp = first_response(last);
	if (resp) {
		r = cJSON_PrintUnformatted(field(resp, "response"));
		if (!r)
			return -1;
		len = strlen(r) + 9;
		p->text = malloc(len);
		if (!p->text) {
			cJSON_free(r);
			return -1;
		}
		snprintf(p->text, len, "result: %s", r);
		cJSON_free(r);
		p->reply.text = p->text;
		p->reply.tokens = fake_text_tokens(strlen(p->text));
		if (a->max_tokens && p->reply.tokens > a->max_tokens) {
			cut = (size_t)a->max_tokens * 4;
			while (cut > 0 && ((unsigned char)p->text[cut] & 0xC0) == 0x80)
				cut--;
			p->text[cut] = '\0';
			p->reply.tokens = a->max_tokens;
			p->finish = "MAX_TOKENS";
		}
		p->output_tokens = p->reply.tokens;
		return 0;
	}
	if (user && says(last, "blocked")) {
		p->blocked = 1;
		return 0;
	}
	if (user && a->has_functions && strcmp(a->mode, "NONE") != 0 &&
	    (says(last, "weather") || strcmp(a->mode, "ANY") == 0)) {
		p->ncalls = says(last, "both") ? 2 : 1;
		p->tool = a->tool;
		/* {"city":"Paris"} and {"city":"Tokyo"} are 16 bytes each */
		p->output_tokens = p->ncalls * fake_text_tokens(strlen(p->tool) + 16);
		return 0;
	}
	if (k->completion_tokens >= 0) {
		p->reply.tokens = k->completion_tokens;
		if (a->max_tokens && p->reply.tokens >= a->max_tokens)
			p->finish = "MAX_TOKENS";
	} else if (a->max_tokens && a->max_tokens < fake_opt.completion_tokens) {
		p->reply.tokens = a->max_tokens;
		p->finish = "MAX_TOKENS";
	} else {
		p->reply.tokens = fake_opt.completion_tokens;
	}
	p->output_tokens = p->reply.tokens;
	return 0;
}

/* usageMetadata with output candidate tokens so far. */
static cJSON *usage_new(const struct plan *p, long output, int blocked)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddNumberToObject(u, "promptTokenCount", (double)p->prompt_tokens);
	if (!blocked)
		cJSON_AddNumberToObject(u, "candidatesTokenCount", (double)output);
	cJSON_AddNumberToObject(u, "totalTokenCount",
				(double)(p->prompt_tokens + (blocked ? 0 : output + p->thoughts)));
	if (p->cached)
		cJSON_AddNumberToObject(u, "cachedContentTokenCount", (double)p->cached);
	if (p->thoughts && !blocked)
		cJSON_AddNumberToObject(u, "thoughtsTokenCount", (double)p->thoughts);
	return u;
}

/* One GenerateContentResponse: text (NULL: the calls, or nothing when blocked), finished
 * or not, with the usage for output tokens so far. */
static cJSON *response_new(const struct plan *p, const char *text, int finished, long output)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *cands, *cand, *content, *parts, *part, *call, *args;
	int i;

	if (p->blocked) {
		cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "promptFeedback"),
					"blockReason", "SAFETY");
	} else {
		cands = cJSON_AddArrayToObject(root, "candidates");
		cand = cJSON_CreateObject();
		content = cJSON_AddObjectToObject(cand, "content");
		parts = cJSON_AddArrayToObject(content, "parts");
		for (i = 0; !text && i < p->ncalls; i++) {
			part = cJSON_CreateObject();
			call = cJSON_AddObjectToObject(part, "functionCall");
			cJSON_AddStringToObject(call, "name", p->tool);
			args = cJSON_AddObjectToObject(call, "args");
			cJSON_AddStringToObject(args, "city", cities[i]);
			fake_push_item(parts, part);
		}
		if (text) {
			part = cJSON_CreateObject();
			cJSON_AddStringToObject(part, "text", text);
			fake_push_item(parts, part);
		}
		cJSON_AddStringToObject(content, "role", "model");
		if (finished)
			cJSON_AddStringToObject(cand, "finishReason", p->finish);
		cJSON_AddNumberToObject(cand, "index", 0);
		fake_push_item(cands, cand);
	}
	if (p->with_usage)
		fake_add_item(root, "usageMetadata", usage_new(p, output, p->blocked));
	cJSON_AddStringToObject(root, "modelVersion", p->model);
	cJSON_AddStringToObject(root, "responseId", p->id);
	return root;
}

/* One "data: JSON\r\n\r\n" event (Google frames its SSE with CRLF); consumes data. */
static int emit(struct sse *s, cJSON *data)
{
	char *json = data ? cJSON_PrintUnformatted(data) : NULL;
	size_t cap = json ? strlen(json) + 16 : 0;
	char *buf = json ? malloc(cap) : NULL;
	int n, rc = -1;

	cJSON_Delete(data);
	if (buf) {
		n = snprintf(buf, cap, "data: %s\r\n\r\n", json);
		rc = fake_sse_write(s, buf, (size_t)n);
	}
	free(buf);
	cJSON_free(json);
	return rc;
}

static int stream_answer(struct mg_connection *conn, const struct plan *p, const struct knobs *k)
{
	struct sse s;
	long n, c;
	int last, done = 0, rc;
	char *piece;

	fake_sse_begin(&s, conn);
	/* Calls and blocks come whole, in one chunk; text in pieces. */
	n = p->ncalls || p->blocked ? 1 : fake_reply_chunks(&p->reply, k->chunks);
	if (n == 0)
		n = 1;
	for (c = 0; c < n; c++) {
		if (c == k->break_after || fake_nap(k->chunk_interval_ms))
			goto out;
		/* A break point past the last piece sends it unfinished, then cuts. */
		last = c == n - 1 && k->break_after < 0;
		piece = p->ncalls || p->blocked ? NULL : fake_reply_piece(&p->reply, c, n);
		if (!p->ncalls && !p->blocked && !piece)
			goto out;
		rc = emit(&s,
			  response_new(p, p->ncalls || p->blocked ? NULL : piece, last,
				       last ? p->output_tokens : (c + 1) * p->output_tokens / n));
		free(piece);
		if (rc)
			goto out;
	}
	if (k->break_after >= 0 || fake_sse_end(&s))
		goto out;
	done = 1;
out:
	if (!done)
		fake_no_keep_alive(conn);
	return 200;
}

static int reply_generate(struct mg_connection *conn, const cJSON *req, const char *model,
			  int stream, const struct knobs *k)
{
	struct check c;
	struct ask a;
	struct plan p;
	cJSON *root = NULL;
	char *text = NULL;
	long st;
	int status;

	memset(&p, 0, sizeof(p));
	if (check_generate(req, &a, &c))
		return gemini_error(conn, 400, c.msg);
	st = fake_status(k);
	if (st)
		return gemini_error(conn, (int)st, "injected failure");
	/* The window holds the whole prompt: the counted input and the cached tokens. */
	if (k->context_window && a.input_tokens + k->cache_read > k->context_window) {
		snprintf(c.msg, sizeof(c.msg),
			 "The input token count (%ld) exceeds the maximum number of tokens allowed "
			 "(%ld).",
			 a.input_tokens + k->cache_read, k->context_window);
		return gemini_error(conn, 400, c.msg);
	}
	if (plan_answer(req, model, &a, k, &p)) {
		status = gemini_error(conn, 500, "out of memory");
		goto out;
	}
	if (stream) {
		status = stream_answer(conn, &p, k);
		goto out;
	}
	if (!p.ncalls && !p.blocked) {
		text = fake_reply_text(&p.reply);
		if (!text) {
			status = gemini_error(conn, 500, "out of memory");
			goto out;
		}
	}
	root = response_new(&p, text, 1, p.output_tokens);
	status = fake_send_json(conn, 200, root, "");
out:
	cJSON_Delete(root);
	free(text);
	free(p.text);
	return status;
}

/* The text of an embed request's content, joined; NULL with c set when it is not text. */
static char *embed_text(const cJSON *content, const char *where, struct check *c)
{
	static const char *const keys[] = { "parts", "role", NULL };
	static const char *const part_keys[] = { "text", NULL };
	const cJSON *parts = field(content, "parts"), *part, *t;
	size_t len = 0;
	char *out;

	if (!cJSON_IsObject(content)) {
		bad(c, "* %s.content: content is required", where);
		return NULL;
	}
	if (known_keys(content, keys, where, c))
		return NULL;
	if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0) {
		bad(c, "* %s.content.parts: contents.parts must not be empty.", where);
		return NULL;
	}
	cJSON_ArrayForEach(part, parts) {
		t = field(part, "text");
		if (!cJSON_IsObject(part) || unknown_key(part, part_keys) || !cJSON_IsString(t)) {
			bad(c, "* %s.content.parts: only text parts can be embedded", where);
			return NULL;
		}
		len += strlen(t->valuestring);
	}
	out = malloc(len + 1);
	if (!out) {
		bad(c, "out of memory");
		return NULL;
	}
	len = 0;
	cJSON_ArrayForEach(part, parts) {
		t = field(part, "text");
		memcpy(out + len, t->valuestring, strlen(t->valuestring));
		len += strlen(t->valuestring);
	}
	out[len] = '\0';
	return out;
}

/* {"values": [...]} for one embed request (where: for messages); NULL with c set. */
static cJSON *embed_one(const cJSON *r, const char *model, const char *where, int need_model,
			struct check *c)
{
	static const char *const keys[] = {
		"model", "content", "taskType", "title", "outputDimensionality", NULL
	};
	const cJSON *m = field(r, "model");
	cJSON *e, *values;
	char want[200], *text;
	uint64_t hash;
	int i;

	snprintf(want, sizeof(want), "models/%s", model);
	if (!cJSON_IsObject(r)) {
		bad(c, "* %s: an EmbedContentRequest is expected", where);
		return NULL;
	}
	if (known_keys(r, keys, where, c))
		return NULL;
	if ((need_model || m) && !str_is(m, want)) {
		bad(c, "* %s.model: the request's model (%.80s) must be the batch's model %s",
		    where, cJSON_IsString(m) ? m->valuestring : "missing", want);
		return NULL;
	}
	text = embed_text(field(r, "content"), where, c);
	if (!text)
		return NULL;
	hash = fake_text_hash(text, strlen(text));
	free(text);
	e = cJSON_CreateObject();
	values = cJSON_AddArrayToObject(e, "values");
	for (i = 0; i < FAKE_EMBED_DIMS; i++)
		fake_push_item(values, cJSON_CreateNumber(fake_embed_value(hash, i)));
	return e;
}

static int reply_embed(struct mg_connection *conn, const cJSON *req, const char *model, int batch,
		       const struct knobs *k)
{
	static const char *const keys[] = { "requests", NULL };
	const cJSON *requests = field(req, "requests"), *r;
	cJSON *root = cJSON_CreateObject(), *list = NULL, *e;
	struct check c;
	char where[64];
	long st;
	int i = 0, status;

	if (batch) {
		if (known_keys(req, keys, "", &c))
			goto invalid;
		if (!cJSON_IsArray(requests) || cJSON_GetArraySize(requests) == 0) {
			bad(&c, "* BatchEmbedContentsRequest.requests: requests is not specified");
			goto invalid;
		}
		list = cJSON_AddArrayToObject(root, "embeddings");
		cJSON_ArrayForEach(r, requests) {
			snprintf(where, sizeof(where), "BatchEmbedContentsRequest.requests[%d]",
				 i++);
			e = embed_one(r, model, where, 1, &c);
			if (!e)
				goto invalid;
			fake_push_item(list, e);
		}
	} else {
		e = embed_one(req, model, "EmbedContentRequest", 0, &c);
		if (!e)
			goto invalid;
		fake_add_item(root, "embedding", e);
	}
	st = fake_status(k);
	status = st ? gemini_error(conn, (int)st, "injected failure") :
		      fake_send_json(conn, 200, root, "");
	goto out;
invalid:
	/* Messages without the leading "* " come from known_keys. */
	status = gemini_error(conn, 400, c.msg);
out:
	cJSON_Delete(root);
	return status;
}

int gemini_handle(struct mg_connection *conn, const char *path, const char *body,
		  const struct knobs *k)
{
	static const struct {
		const char *name;
		enum method m;
	} methods[] = {
		{ "generateContent", M_GENERATE },
		{ "streamGenerateContent", M_STREAM },
		{ "batchEmbedContents", M_BATCH_EMBED },
		{ "embedContent", M_EMBED },
	};
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *colon = strrchr(path, ':');
	const char *key = mg_get_header(conn, "x-goog-api-key");
	const char *qs = ri->query_string ? ri->query_string : "";
	char model[160], qkey[256], alt[16];
	cJSON *req = NULL;
	size_t i;
	int status;

	if (!colon || colon == path || (size_t)(colon - path) >= sizeof(model))
		return gemini_error(conn, 404, "Method not found.");
	snprintf(model, sizeof(model), "%.*s", (int)(colon - path), path);
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(colon + 1, methods[i].name) == 0)
			break;
	if (i == sizeof(methods) / sizeof(methods[0]))
		return gemini_error(conn, 404, "Method not found.");
	if ((!key || !*key) && mg_get_var(qs, strlen(qs), "key", qkey, sizeof(qkey)) <= 0) {
		if (mg_get_header(conn, "Authorization"))
			return gemini_error(
				conn, 401,
				"Request had invalid authentication credentials. Expected "
				"OAuth 2 access token, login cookie or other valid "
				"authentication credential. See https://developers.google.com/"
				"identity/sign-in/web/devconsole-project.");
		return gemini_error(
			conn, 403,
			"Method doesn't allow unregistered callers (callers without "
			"established identity). Please use API Key or other form of API "
			"consumer identity to call this API.");
	}
	if (methods[i].m == M_STREAM &&
	    (mg_get_var(qs, strlen(qs), "alt", alt, sizeof(alt)) <= 0 || strcmp(alt, "sse") != 0))
		return gemini_error(conn, 400,
				    "fake_upstream: streamGenerateContent needs ?alt=sse (the "
				    "JSON-array stream is not modelled)");
	req = cJSON_ParseWithOpts(body, NULL, 1);
	if (!cJSON_IsObject(req)) {
		status = gemini_error(
			conn, 400, "Invalid JSON payload received. The body is not a JSON object.");
		goto out;
	}
	if (methods[i].m == M_GENERATE || methods[i].m == M_STREAM)
		status = reply_generate(conn, req, model, methods[i].m == M_STREAM, k);
	else
		status = reply_embed(conn, req, model, methods[i].m == M_BATCH_EMBED, k);
out:
	cJSON_Delete(req);
	return status;
}
