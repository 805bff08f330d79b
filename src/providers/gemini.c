/* gemini.c - the Google Gemini kind (the Gemini API v1beta,
 * generativelanguage.googleapis.com): OpenAI chat completions and embeddings
 * translated to generateContent, streamGenerateContent (SSE) and
 * batchEmbedContents, and what comes back translated to the OpenAI shape.
 *
 * Requests: messages become contents (user and model turns, consecutive turns
 * of one role merged into one), system and developer messages the
 * systemInstruction, tool calls and their results functionCall and
 * functionResponse parts, the sampling fields generationConfig; everything
 * else the client sent is dropped. Answers, stream chunks and errors come
 * back as parsed OpenAI-shaped trees (never PROV_RAW). Gemini counts the
 * thoughts apart from candidatesTokenCount, so usage adds them to the
 * completion; its promptTokenCount already holds the cached tokens.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"
#include "providers/provider.h"

#define GEM_TEXT_MAX BUF_MAX_LARGE /* the text of one message or answer */
#define GEM_STREAM_CHOICES 16      /* choices a stream follows (the gateway's highest n) */
#define GEM_ID_MAX 160

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

/* Why the request cannot go to Gemini (answered 400): TG_EINVAL. */
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
	if (!cJSON_AddItemToArray(arr, item)) {
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
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return TG_ENOMEM;
	}
	return TG_OK;
}

/* A count in usageMetadata: 1 with *out when v is one. */
static int count_of(const cJSON *v, int64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1e12))
		return 0;
	*out = (int64_t)v->valuedouble;
	return 1;
}

/* --- requests --- */

static int model_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") == n;
}

static cJSON *text_part(const char *s)
{
	cJSON *p = cJSON_CreateObject();

	if (p && !cJSON_AddStringToObject(p, "text", s)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* {"inlineData":{"mimeType":mime,"data":data}} */
static cJSON *inline_part(const char *mime, const char *data)
{
	cJSON *p = cJSON_CreateObject(), *d;

	if (!p || !(d = cJSON_AddObjectToObject(p, "inlineData")) ||
	    !cJSON_AddStringToObject(d, "mimeType", mime) ||
	    !cJSON_AddStringToObject(d, "data", data)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* {"fileData":{"fileUri":uri,"mimeType":mime}} */
static cJSON *file_part(const char *uri, const char *mime)
{
	cJSON *p = cJSON_CreateObject(), *d;

	if (!p || !(d = cJSON_AddObjectToObject(p, "fileData")) ||
	    !cJSON_AddStringToObject(d, "fileUri", uri) ||
	    !cJSON_AddStringToObject(d, "mimeType", mime)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* part into the last turn of contents when it is role's, else into a new
 * turn; consumed. */
static int add_part(cJSON *contents, const char *role, cJSON *part)
{
	cJSON *last = contents->child ? contents->child->prev : NULL, *turn, *parts = NULL;
	const char *last_role = str_of(last, "role");

	if (!part)
		return TG_ENOMEM;
	if (last_role && strcmp(last_role, role) == 0) {
		parts = cJSON_GetObjectItemCaseSensitive(last, "parts");
	} else {
		/* Once pushed, the turn is the body's (freed with it). */
		turn = cJSON_CreateObject();
		if (push(contents, turn) || !cJSON_AddStringToObject(turn, "role", role) ||
		    !(parts = cJSON_AddArrayToObject(turn, "parts"))) {
			cJSON_Delete(part);
			return TG_ENOMEM;
		}
	}
	return push(parts, part);
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

/* The image type of a URL's extension; JPEG when it has none we know. */
static const char *image_mime(const char *url)
{
	static const struct {
		const char *ext, *mime;
	} types[] = {
		{ "png", "image/png" },   { "jpeg", "image/jpeg" }, { "jpg", "image/jpeg" },
		{ "webp", "image/webp" }, { "gif", "image/gif" },
	};
	size_t end = strcspn(url, "?#"), start = end, i;

	while (start > 0 && url[start - 1] != '.' && url[start - 1] != '/')
		start--;
	if (start == 0 || url[start - 1] != '.')
		return "image/jpeg";
	for (i = 0; i < TG_ARRAY_LEN(types); i++)
		if (strlen(types[i].ext) == end - start &&
		    strncasecmp(url + start, types[i].ext, end - start) == 0)
			return types[i].mime;
	return "image/jpeg";
}

/* One part of a user message's content array, into *part (NULL: nothing to
 * send, an empty text). */
static int user_part(const cJSON *p, cJSON **part, struct prov_request *out)
{
	const char *type = str_of(p, "type"), *url, *data;
	const cJSON *img, *sub;
	char mime[128];

	*part = NULL;
	if (!type)
		return refuse(out, "messages", "Each content part needs a 'type'.");
	if (strcmp(type, "text") == 0) {
		if (!str_of(p, "text"))
			return refuse(out, "messages", "A text part needs its 'text'.");
		if (!str_of(p, "text")[0])
			return TG_OK;
		return (*part = text_part(str_of(p, "text"))) ? TG_OK : TG_ENOMEM;
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
			*part = inline_part(mime, data);
		} else if (strncasecmp(url, "https://", 8) == 0 ||
			   strncasecmp(url, "http://", 7) == 0) {
			*part = file_part(url, image_mime(url));
		} else {
			return refuse(out, "messages",
				      "An image URL must be an http(s) URL or a base64 data URL.");
		}
		return *part ? TG_OK : TG_ENOMEM;
	}
	if (strcmp(type, "input_audio") == 0) {
		sub = get(p, "input_audio");
		if (!str_of(sub, "data") || !str_of(sub, "format") ||
		    strlen(str_of(sub, "format")) > 32)
			return refuse(out, "messages",
				      "An input_audio part needs its 'data' and 'format'.");
		snprintf(mime, sizeof(mime), "audio/%s", str_of(sub, "format"));
		return (*part = inline_part(mime, str_of(sub, "data"))) ? TG_OK : TG_ENOMEM;
	}
	if (strcmp(type, "file") == 0) {
		url = str_of(get(p, "file"), "file_data");
		if (!url || data_url(url, mime, sizeof(mime), &data))
			return refuse(out, "messages",
				      "A file part must carry its file_data as a base64 data URL "
				      "(Gemini cannot read OpenAI file ids).");
		return (*part = inline_part(mime, data)) ? TG_OK : TG_ENOMEM;
	}
	return refuse(out, "messages", "Content parts of type '%.40s' cannot be sent to Gemini.",
		      type);
}

static int user_message(const cJSON *content, cJSON *contents, struct prov_request *out)
{
	const cJSON *p;
	cJSON *part;
	int rc;

	if (cJSON_IsString(content))
		return content->valuestring[0] ?
			       add_part(contents, "user", text_part(content->valuestring)) :
			       TG_OK;
	if (!cJSON_IsArray(content))
		return refuse(out, "messages",
			      "A user message's content must be a string or an array of parts.");
	cJSON_ArrayForEach(p, content) {
		if ((rc = user_part(p, &part, out)))
			return rc;
		if (part && (rc = add_part(contents, "user", part)))
			return rc;
	}
	return TG_OK;
}

/* A tool call's arguments (a JSON text; "" and null stand for none) as the
 * object functionCall.args takes, into *args. */
static int call_args(const cJSON *fn, cJSON **args, struct prov_request *out)
{
	const cJSON *a = get(fn, "arguments");
	const char *s = cJSON_IsString(a) ? a->valuestring : NULL;

	*args = NULL;
	if (cJSON_IsObject(a))
		return (*args = cJSON_Duplicate(a, 1)) ? TG_OK : TG_ENOMEM;
	if (a && !s && !cJSON_IsNull(a))
		return refuse(out, "messages", "A tool call's arguments must be a JSON text.");
	if (s && s[strspn(s, " \t\r\n")]) {
		*args = json_parse(s, strlen(s), NULL);
		if (cJSON_IsObject(*args))
			return TG_OK;
		if (!cJSON_IsNull(*args)) {
			cJSON_Delete(*args);
			*args = NULL;
			return refuse(out, "messages",
				      "The arguments of tool call '%.60s' are not a JSON object.",
				      str_of(fn, "name") ? str_of(fn, "name") : "");
		}
		cJSON_Delete(*args);
	}
	return (*args = cJSON_CreateObject()) ? TG_OK : TG_ENOMEM;
}

static int assistant_message(const cJSON *m, cJSON *contents, struct prov_request *out)
{
	const cJSON *content = get(m, "content"), *calls = given(m, "tool_calls"), *p, *tc;
	cJSON *part, *fc, *args;
	const char *t;
	int rc;

	if (cJSON_IsString(content) && content->valuestring[0]) {
		if ((rc = add_part(contents, "model", text_part(content->valuestring))))
			return rc;
	} else if (cJSON_IsArray(content)) {
		cJSON_ArrayForEach(p, content) {
			t = str_of(p, "text") ? str_of(p, "text") : str_of(p, "refusal");
			if (!t)
				return refuse(out, "messages",
					      "An assistant message may only hold text parts.");
			if (t[0] && (rc = add_part(contents, "model", text_part(t))))
				return rc;
		}
	} else if (content && !cJSON_IsNull(content) && !cJSON_IsString(content)) {
		return refuse(out, "messages",
			      "An assistant message's content must be a string or an array.");
	}
	if (calls && !cJSON_IsArray(calls))
		return refuse(out, "messages", "'tool_calls' must be an array.");
	cJSON_ArrayForEach(tc, calls) {
		const cJSON *fn = get(tc, "function");

		if (!str_of(fn, "name") || !str_of(fn, "name")[0])
			return refuse(out, "messages", "A tool call needs its function's name.");
		if ((rc = call_args(fn, &args, out)))
			return rc;
		part = cJSON_CreateObject();
		fc = part ? cJSON_AddObjectToObject(part, "functionCall") : NULL;
		if (!fc || !cJSON_AddStringToObject(fc, "name", str_of(fn, "name"))) {
			cJSON_Delete(args);
			cJSON_Delete(part);
			return TG_ENOMEM;
		}
		if (put(fc, "args", args)) { /* args freed by put */
			cJSON_Delete(part);
			return TG_ENOMEM;
		}
		if ((rc = add_part(contents, "model", part)))
			return rc;
	}
	return TG_OK;
}

/* The function name of the tool call id made by an assistant message before
 * upto (the latest such call), or NULL. */
static const char *call_name(const cJSON *messages, const cJSON *upto, const char *id)
{
	const cJSON *m, *tc;
	const char *name = NULL, *role;

	for (m = messages->child; m && m != upto; m = m->next) {
		role = str_of(m, "role");
		if (!role || strcmp(role, "assistant") != 0 || !cJSON_IsArray(get(m, "tool_calls")))
			continue;
		cJSON_ArrayForEach(tc, get(m, "tool_calls")) {
			const char *tid = str_of(tc, "id");

			if (tid && strcmp(tid, id) == 0 && str_of(get(tc, "function"), "name"))
				name = str_of(get(tc, "function"), "name");
		}
	}
	return name;
}

/* A tool's result as a user functionResponse part: its content as the
 * response when that is a JSON object, else {"content": text}. */
static int tool_message(const cJSON *messages, const cJSON *m, const char *name, cJSON *contents,
			struct prov_request *out)
{
	cJSON *part = NULL, *fr, *resp = NULL;
	buf_t text;
	int rc;

	buf_init(&text, GEM_TEXT_MAX);
	if (!name) {
		const char *id = str_of(m, "tool_call_id");

		if (!id) {
			rc = refuse(out, "messages", "A tool message needs its 'tool_call_id'.");
			goto out;
		}
		if (!(name = call_name(messages, m, id))) {
			rc = refuse(out, "messages",
				    "The tool message for '%.60s' answers no tool call of an "
				    "earlier assistant message.",
				    id);
			goto out;
		}
	}
	if ((rc = text_of(get(m, "content"), &text, out)))
		goto out;
	resp = json_parse(buf_cstr(&text), text.len, NULL);
	if (!cJSON_IsObject(resp)) {
		cJSON_Delete(resp);
		resp = cJSON_CreateObject();
		if (!resp || !cJSON_AddStringToObject(resp, "content", buf_cstr(&text))) {
			rc = TG_ENOMEM;
			goto out;
		}
	}
	rc = TG_ENOMEM;
	if (!(part = cJSON_CreateObject()) ||
	    !(fr = cJSON_AddObjectToObject(part, "functionResponse")) ||
	    !cJSON_AddStringToObject(fr, "name", name))
		goto out;
	rc = put(fr, "response", resp);
	resp = NULL;
	if (rc)
		goto out;
	rc = add_part(contents, "user", part);
	part = NULL;
out:
	cJSON_Delete(resp);
	cJSON_Delete(part);
	buf_free(&text);
	return rc;
}

static int add_message(const cJSON *messages, const cJSON *m, cJSON *contents, buf_t *sys,
		       struct prov_request *out)
{
	const char *role = str_of(m, "role");
	buf_t text;
	int rc;

	if (!role)
		return refuse(out, "messages", "Each message must be an object with a 'role'.");
	if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
		buf_init(&text, GEM_TEXT_MAX);
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
		return user_message(get(m, "content"), contents, out);
	if (strcmp(role, "assistant") == 0)
		return assistant_message(m, contents, out);
	if (strcmp(role, "tool") == 0)
		return tool_message(messages, m, NULL, contents, out);
	if (strcmp(role, "function") == 0) {
		if (!str_of(m, "name"))
			return refuse(out, "messages", "A function message needs its 'name'.");
		return tool_message(messages, m, str_of(m, "name"), contents, out);
	}
	return refuse(out, "messages", "Messages of role '%.40s' cannot be sent to Gemini.", role);
}

static int add_tools(const cJSON *req, cJSON *body, struct prov_request *out)
{
	const cJSON *tools = given(req, "tools"), *choice = given(req, "tool_choice"), *t;
	const char *mode = NULL, *only = NULL;
	cJSON *decls = NULL, *d, *cfg, *tool;

	if (tools && !cJSON_IsArray(tools))
		return refuse(out, "tools", "'tools' must be an array.");
	cJSON_ArrayForEach(t, tools) {
		const cJSON *fn = get(t, "function"), *params = given(fn, "parameters");
		const char *type = str_of(t, "type"), *desc = str_of(fn, "description");

		if ((type && strcmp(type, "function") != 0) || !str_of(fn, "name"))
			return refuse(out, "tools",
				      "Gemini takes function tools only, each named.");
		if (!decls) {
			tool = cJSON_CreateObject();
			if (push(cJSON_AddArrayToObject(body, "tools"), tool) ||
			    !(decls = cJSON_AddArrayToObject(tool, "functionDeclarations")))
				return TG_ENOMEM;
		}
		if (!(d = cJSON_CreateObject()) || push(decls, d) ||
		    !cJSON_AddStringToObject(d, "name", str_of(fn, "name")) ||
		    (desc && !cJSON_AddStringToObject(d, "description", desc)) ||
		    (params && put(d, "parameters", cJSON_Duplicate(params, 1))))
			return TG_ENOMEM;
	}
	if (!choice)
		return TG_OK;
	if (cJSON_IsString(choice)) {
		mode = strcmp(choice->valuestring, "auto") == 0     ? "AUTO" :
		       strcmp(choice->valuestring, "required") == 0 ? "ANY" :
		       strcmp(choice->valuestring, "none") == 0     ? "NONE" :
								      NULL;
	} else if ((only = str_of(get(choice, "function"), "name"))) {
		mode = "ANY";
	}
	if (!mode)
		return refuse(out, "tool_choice",
			      "'tool_choice' must be auto, required, none or a named function.");
	cfg = cJSON_AddObjectToObject(body, "toolConfig");
	if (!cfg || !(cfg = cJSON_AddObjectToObject(cfg, "functionCallingConfig")) ||
	    !cJSON_AddStringToObject(cfg, "mode", mode))
		return TG_ENOMEM;
	if (only) {
		d = cJSON_AddArrayToObject(cfg, "allowedFunctionNames");
		if (!d || push(d, cJSON_CreateString(only)))
			return TG_ENOMEM;
	}
	return TG_OK;
}

/* Copies a number from the client's field to Gemini's. */
static int copy_number(const cJSON *req, const char *from, cJSON *g, const char *to,
		       struct prov_request *out)
{
	const cJSON *v = given(req, from);

	if (!v)
		return TG_OK;
	if (!cJSON_IsNumber(v))
		return refuse(out, from, "'%s' must be a number.", from);
	return cJSON_AddNumberToObject(g, to, v->valuedouble) ? TG_OK : TG_ENOMEM;
}

static int add_config(const struct prov_call *c, cJSON *body, struct prov_request *out)
{
	const cJSON *req = c->req, *v, *s, *fmt = given(c->req, "response_format");
	cJSON *g = cJSON_CreateObject(), *stops;
	const char *type;
	int rc = TG_ENOMEM;

	if (!g)
		return TG_ENOMEM;
	if ((rc = copy_number(req, "temperature", g, "temperature", out)) ||
	    (rc = copy_number(req, "top_p", g, "topP", out)))
		goto out;
	rc = TG_ENOMEM;
	v = given(req, "max_completion_tokens");
	if (!cJSON_IsNumber(v))
		v = given(req, "max_tokens");
	if (cJSON_IsNumber(v)) {
		if (!cJSON_AddNumberToObject(g, "maxOutputTokens", v->valuedouble))
			goto out;
	} else if (c->max_tokens > 0 &&
		   !cJSON_AddNumberToObject(g, "maxOutputTokens", (double)c->max_tokens)) {
		goto out;
	}
	v = given(req, "stop");
	if (v) {
		if (!(stops = cJSON_AddArrayToObject(g, "stopSequences")))
			goto out;
		if (cJSON_IsString(v)) {
			if (push(stops, cJSON_CreateString(v->valuestring)))
				goto out;
		} else if (cJSON_IsArray(v)) {
			cJSON_ArrayForEach(s, v) {
				if (!cJSON_IsString(s)) {
					rc = refuse(out, "stop",
						    "'stop' must be a string or strings.");
					goto out;
				}
				if (push(stops, cJSON_CreateString(s->valuestring)))
					goto out;
			}
		} else {
			rc = refuse(out, "stop", "'stop' must be a string or an array of strings.");
			goto out;
		}
	}
	if ((rc = copy_number(req, "n", g, "candidateCount", out)) ||
	    (rc = copy_number(req, "seed", g, "seed", out)) ||
	    (rc = copy_number(req, "presence_penalty", g, "presencePenalty", out)) ||
	    (rc = copy_number(req, "frequency_penalty", g, "frequencyPenalty", out)))
		goto out;
	rc = TG_ENOMEM;
	type = str_of(fmt, "type");
	if (fmt && !type) {
		rc = refuse(out, "response_format", "'response_format' needs a 'type'.");
		goto out;
	}
	if (type && strcmp(type, "json_object") == 0) {
		if (!cJSON_AddStringToObject(g, "responseMimeType", "application/json"))
			goto out;
	} else if (type && strcmp(type, "json_schema") == 0) {
		v = get(get(fmt, "json_schema"), "schema");
		if (!cJSON_IsObject(v)) {
			rc = refuse(out, "response_format",
				    "A json_schema response_format needs json_schema.schema.");
			goto out;
		}
		if (!cJSON_AddStringToObject(g, "responseMimeType", "application/json") ||
		    put(g, "responseJsonSchema", cJSON_Duplicate(v, 1)))
			goto out;
	} else if (type && strcmp(type, "text") != 0) {
		rc = refuse(out, "response_format", "response_format '%.40s' is not known.", type);
		goto out;
	}
	rc = TG_OK;
	if (g->child) {
		rc = put(body, "generationConfig", g);
		g = NULL;
	}
out:
	cJSON_Delete(g);
	return rc;
}

static int chat_body(const struct prov_call *c, struct prov_request *out, cJSON **bodyp)
{
	const cJSON *messages = get(c->req, "messages"), *m;
	cJSON *body = cJSON_CreateObject(), *contents = NULL, *sys_obj, *parts;
	buf_t sys;
	int rc = TG_ENOMEM;

	buf_init(&sys, GEM_TEXT_MAX);
	if (!body || !(contents = cJSON_AddArrayToObject(body, "contents")))
		goto out;
	if (!cJSON_IsArray(messages)) {
		rc = refuse(out, "messages", "'messages' must be an array.");
		goto out;
	}
	cJSON_ArrayForEach(m, messages) {
		if ((rc = add_message(messages, m, contents, &sys, out)))
			goto out;
	}
	rc = TG_ENOMEM;
	if (sys.len && (!(sys_obj = cJSON_AddObjectToObject(body, "systemInstruction")) ||
			!(parts = cJSON_AddArrayToObject(sys_obj, "parts")) ||
			push(parts, text_part(sys.data))))
		goto out;
	if ((rc = add_tools(c->req, body, out)) || (rc = add_config(c, body, out)))
		goto out;
	*bodyp = body;
	body = NULL;
out:
	buf_free(&sys);
	cJSON_Delete(body);
	return rc;
}

static int embed_request(cJSON *requests, const char *model, const char *text, const cJSON *dims)
{
	cJSON *r = cJSON_CreateObject(), *content, *parts;

	if (push(requests, r) || !cJSON_AddStringToObject(r, "model", model) ||
	    !(content = cJSON_AddObjectToObject(r, "content")) ||
	    !(parts = cJSON_AddArrayToObject(content, "parts")) || push(parts, text_part(text)) ||
	    (dims && !cJSON_AddNumberToObject(r, "outputDimensionality", dims->valuedouble)))
		return TG_ENOMEM;
	return TG_OK;
}

static int embed_body(const struct prov_call *c, struct prov_request *out, cJSON **bodyp)
{
	const cJSON *input = get(c->req, "input"), *dims = given(c->req, "dimensions"), *it;
	cJSON *body = NULL, *requests;
	char model[PROV_PATH_MAX];
	int rc;

	if (dims && !cJSON_IsNumber(dims))
		return refuse(out, "dimensions", "'dimensions' must be a number.");
	if (!cJSON_IsString(input) && !cJSON_IsArray(input))
		return refuse(out, "input", "'input' must be a string or an array of strings.");
	cJSON_ArrayForEach(it, array_of(input)) {
		if (!cJSON_IsString(it))
			return refuse(out, "input",
				      "Gemini embeddings take text input, not token arrays.");
	}
	snprintf(model, sizeof(model), "models/%s", c->upstream_model);
	rc = TG_ENOMEM;
	if (!(body = cJSON_CreateObject()) ||
	    !(requests = cJSON_AddArrayToObject(body, "requests")))
		goto out;
	if (cJSON_IsString(input)) {
		if ((rc = embed_request(requests, model, input->valuestring, dims)))
			goto out;
	} else {
		cJSON_ArrayForEach(it, input) {
			if ((rc = embed_request(requests, model, it->valuestring, dims)))
				goto out;
		}
	}
	rc = TG_OK;
	*bodyp = body;
	body = NULL;
out:
	cJSON_Delete(body);
	return rc;
}

static int gemini_build_request(const struct prov_call *c, struct prov_request *out)
{
	const char *method = c->endpoint == PROV_EMBEDDINGS ? "batchEmbedContents" :
			     c->stream                      ? "streamGenerateContent?alt=sse" :
							      "generateContent";
	cJSON *body = NULL;
	int rc, n;

	memset(out, 0, sizeof(*out));
	out->auth_prefix = "x-goog-api-key: ";
	if (!model_name_ok(c->upstream_model))
		return refuse(out, "model",
			      "The model's name at Gemini may only hold letters, digits, '.', "
			      "'_' and '-'.");
	n = snprintf(out->path, sizeof(out->path), "/models/%s:%s", c->upstream_model, method);
	if (n < 0 || (size_t)n >= sizeof(out->path))
		return TG_ETOOBIG;
	if (!cJSON_IsObject(c->req))
		return refuse(out, "", "The request body must be a JSON object.");
	rc = c->endpoint == PROV_EMBEDDINGS ? embed_body(c, out, &body) : chat_body(c, out, &body);
	if (rc != TG_OK)
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

/* --- answers --- */

/* 1 when obj carries usageMetadata, read into *u. */
static int gemini_extract_usage(const cJSON *obj, struct prov_usage *u)
{
	const cJSON *m = get(obj, "usageMetadata");
	int64_t prompt, cand = 0, thoughts = 0, cached = 0;

	if (!count_of(get(m, "promptTokenCount"), &prompt))
		return 0;
	count_of(get(m, "candidatesTokenCount"), &cand);
	count_of(get(m, "thoughtsTokenCount"), &thoughts);
	if (!count_of(get(m, "cachedContentTokenCount"), &cached) || cached > prompt)
		cached = 0;
	u->prompt = prompt;
	u->cached = cached;
	u->cache_write = 0;
	u->completion = cand + thoughts;
	u->reasoning = thoughts;
	u->have = 1;
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

/* OpenAI's finish_reason for Gemini's (NULL: none given). */
static const char *finish_of(const char *reason, int calls)
{
	static const char *const filtered[] = { "SAFETY",    "RECITATION",
						"BLOCKLIST", "PROHIBITED_CONTENT",
						"SPII",      "IMAGE_SAFETY" };
	size_t i;

	if (reason && strcmp(reason, "MAX_TOKENS") == 0)
		return "length";
	for (i = 0; reason && i < TG_ARRAY_LEN(filtered); i++)
		if (strcmp(reason, filtered[i]) == 0)
			return "content_filter";
	return calls ? "tool_calls" : "stop";
}

/* "chatcmpl-" + the responseId, or random hex when there is none. */
static void answer_id(const cJSON *obj, char id[GEM_ID_MAX])
{
	const char *rid = str_of(obj, "responseId");
	unsigned char r[12];
	size_t i;

	if (rid && rid[0]) {
		snprintf(id, GEM_ID_MAX, "chatcmpl-%.140s", rid);
		return;
	}
	randombytes_buf(r, sizeof(r));
	memcpy(id, "chatcmpl-", 9);
	for (i = 0; i < sizeof(r); i++)
		snprintf(id + 9 + 2 * i, 3, "%02x", r[i]);
}

static const char *model_of(const struct prov_call *c, const cJSON *obj)
{
	const char *m = str_of(obj, "modelVersion");

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

/* An OpenAI tool call for a functionCall part: call number k (its id when
 * Gemini gave none), with "index" when index >= 0 (a stream's delta). */
static cJSON *tool_call(const cJSON *fc, int k, int index)
{
	const char *name = str_of(fc, "name"), *fid = str_of(fc, "id");
	const cJSON *args = get(fc, "args");
	char *printed = args ? cJSON_PrintUnformatted(args) : NULL;
	cJSON *tc = cJSON_CreateObject(), *fn;
	char id[32];

	snprintf(id, sizeof(id), "call_%d", k);
	if (!tc || (args && !printed) ||
	    (index >= 0 && !cJSON_AddNumberToObject(tc, "index", index)) ||
	    !cJSON_AddStringToObject(tc, "id", fid && fid[0] ? fid : id) ||
	    !cJSON_AddStringToObject(tc, "type", "function") ||
	    !(fn = cJSON_AddObjectToObject(tc, "function")) ||
	    !cJSON_AddStringToObject(fn, "name", name ? name : "") ||
	    !cJSON_AddStringToObject(fn, "arguments", printed ? printed : "{}")) {
		cJSON_Delete(tc);
		tc = NULL;
	}
	cJSON_free(printed);
	return tc;
}

static int is_thought(const cJSON *part)
{
	return cJSON_IsTrue(get(part, "thought"));
}

/* One candidate as an OpenAI choice; *k numbers the tool calls of the answer. */
static cJSON *candidate_choice(const cJSON *cand, int pos, int *k)
{
	const cJSON *parts = get(get(cand, "content"), "parts"), *p, *v = get(cand, "index");
	cJSON *ch = cJSON_CreateObject(), *msg, *calls = NULL;
	int have_text = 0, ncalls = 0;
	buf_t text;

	buf_init(&text, GEM_TEXT_MAX);
	if (!ch ||
	    !cJSON_AddNumberToObject(ch, "index", cJSON_IsNumber(v) ? v->valuedouble : pos) ||
	    !(msg = cJSON_AddObjectToObject(ch, "message")) ||
	    !cJSON_AddStringToObject(msg, "role", "assistant"))
		goto fail;
	cJSON_ArrayForEach(p, array_of(parts)) {
		if (is_thought(p))
			continue;
		if (str_of(p, "text")) {
			have_text = 1;
			if (buf_puts(&text, str_of(p, "text")))
				goto fail;
		} else if (cJSON_IsObject(get(p, "functionCall"))) {
			if (!calls && !(calls = cJSON_CreateArray()))
				goto fail;
			if (push(calls, tool_call(get(p, "functionCall"), (*k)++, -1)))
				goto fail;
			ncalls++;
		}
	}
	if (!(have_text ? cJSON_AddStringToObject(msg, "content", buf_cstr(&text)) :
			  cJSON_AddNullToObject(msg, "content")))
		goto fail;
	if (calls) {
		if (put(msg, "tool_calls", calls)) {
			calls = NULL;
			goto fail;
		}
		calls = NULL;
	}
	if (!cJSON_AddNullToObject(ch, "logprobs") ||
	    !cJSON_AddStringToObject(ch, "finish_reason",
				     finish_of(str_of(cand, "finishReason"), ncalls)))
		goto fail;
	buf_free(&text);
	return ch;
fail:
	cJSON_Delete(calls);
	cJSON_Delete(ch);
	buf_free(&text);
	return NULL;
}

/* The OpenAI error envelope for a prompt Gemini refused to answer. */
static cJSON *blocked_envelope(const char *reason)
{
	cJSON *o = cJSON_CreateObject(), *e;
	char msg[160];

	snprintf(msg, sizeof(msg), "Gemini blocked the prompt (%.100s).", reason);
	if (!o || !(e = cJSON_AddObjectToObject(o, "error")) ||
	    !cJSON_AddStringToObject(e, "message", msg) ||
	    !cJSON_AddStringToObject(e, "type", "invalid_request_error") ||
	    !cJSON_AddNullToObject(e, "param") ||
	    !cJSON_AddStringToObject(e, "code", "content_filter")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int chat_answer(const struct prov_call *c, const cJSON *obj, cJSON **answer,
		       struct prov_usage *u)
{
	const cJSON *cands = get(obj, "candidates"), *cand;
	const char *block = str_of(get(obj, "promptFeedback"), "blockReason");
	cJSON *a = NULL, *choices;
	char id[GEM_ID_MAX];
	int k = 0, pos = 0, rc = TG_ENOMEM;

	gemini_extract_usage(obj, u);
	if (!cJSON_IsArray(cands))
		cands = NULL;
	if (block && block[0] && cJSON_GetArraySize(cands) == 0) {
		*answer = blocked_envelope(block);
		return *answer ? TG_EPERM : TG_ENOMEM;
	}
	answer_id(obj, id);
	if (!(a = answer_head(id, "chat.completion", (int64_t)time(NULL), model_of(c, obj))) ||
	    !(choices = cJSON_AddArrayToObject(a, "choices")))
		goto out;
	cJSON_ArrayForEach(cand, cands) {
		if (push(choices, candidate_choice(cand, pos++, &k)))
			goto out;
	}
	if (u->have && put(a, "usage", usage_json(u)))
		goto out;
	*answer = a;
	a = NULL;
	rc = TG_OK;
out:
	cJSON_Delete(a);
	return rc;
}

/* values as OpenAI's base64 encoding: little-endian float32s, standard
 * base64. TG_EINVAL when a value is not a number. */
static int floats_base64(const cJSON *values, cJSON **out)
{
	size_t n = (size_t)cJSON_GetArraySize(values), i = 0, len;
	unsigned char *bin = malloc(n * 4 + 1);
	char *b64 = NULL;
	const cJSON *v;
	int rc = TG_ENOMEM;

	*out = NULL;
	len = sodium_base64_ENCODED_LEN(n * 4, sodium_base64_VARIANT_ORIGINAL);
	if (!bin || !(b64 = malloc(len)))
		goto out;
	cJSON_ArrayForEach(v, values) {
		float f;
		uint32_t w;

		if (!cJSON_IsNumber(v)) {
			rc = TG_EINVAL;
			goto out;
		}
		f = (float)v->valuedouble;
		memcpy(&w, &f, sizeof(w));
		bin[i++] = (unsigned char)(w & 0xff);
		bin[i++] = (unsigned char)((w >> 8) & 0xff);
		bin[i++] = (unsigned char)((w >> 16) & 0xff);
		bin[i++] = (unsigned char)((w >> 24) & 0xff);
	}
	sodium_bin2base64(b64, len, bin, i, sodium_base64_VARIANT_ORIGINAL);
	rc = (*out = cJSON_CreateString(b64)) ? TG_OK : TG_ENOMEM;
out:
	free(bin);
	free(b64);
	return rc;
}

/* ceil(bytes / 4) of each input: Gemini counts no tokens for embeddings. */
static int64_t embed_tokens(const cJSON *input)
{
	const cJSON *it;
	int64_t n = 0;

	if (cJSON_IsString(input))
		return (int64_t)((strlen(input->valuestring) + 3) / 4);
	cJSON_ArrayForEach(it, array_of(input)) {
		if (cJSON_IsString(it))
			n += (int64_t)((strlen(it->valuestring) + 3) / 4);
	}
	return n;
}

static int embed_answer(const struct prov_call *c, const cJSON *obj, cJSON **answer)
{
	const cJSON *embs = get(obj, "embeddings"), *e, *values, *v;
	const char *fmt = str_of(c->req, "encoding_format");
	int b64 = fmt && strcmp(fmt, "base64") == 0, index = 0, rc = TG_ENOMEM;
	int64_t tokens = embed_tokens(get(c->req, "input"));
	cJSON *a = NULL, *data, *item, *vec, *usage;

	if (!cJSON_IsArray(embs))
		return TG_EINVAL;
	if (!(a = cJSON_CreateObject()) || !cJSON_AddStringToObject(a, "object", "list") ||
	    !(data = cJSON_AddArrayToObject(a, "data")))
		goto out;
	cJSON_ArrayForEach(e, embs) {
		values = get(e, "values");
		if (!cJSON_IsArray(values)) {
			rc = TG_EINVAL;
			goto out;
		}
		if (!(item = cJSON_CreateObject()) || push(data, item) ||
		    !cJSON_AddStringToObject(item, "object", "embedding") ||
		    !cJSON_AddNumberToObject(item, "index", index++)) {
			rc = TG_ENOMEM;
			goto out;
		}
		if (b64) {
			if ((rc = floats_base64(values, &vec)) ||
			    (rc = put(item, "embedding", vec)))
				goto out;
			continue;
		}
		rc = TG_ENOMEM;
		if (!(vec = cJSON_AddArrayToObject(item, "embedding")))
			goto out;
		cJSON_ArrayForEach(v, values) {
			if (!cJSON_IsNumber(v)) {
				rc = TG_EINVAL;
				goto out;
			}
			if (push(vec, cJSON_CreateNumber(v->valuedouble)))
				goto out;
		}
	}
	rc = TG_ENOMEM;
	if (!cJSON_AddStringToObject(a, "model", c->upstream_model ? c->upstream_model : "") ||
	    !(usage = cJSON_AddObjectToObject(a, "usage")) ||
	    !cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens) ||
	    !cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens))
		goto out;
	*answer = a;
	a = NULL;
	rc = TG_OK;
out:
	cJSON_Delete(a);
	return rc;
}

static int gemini_parse_response(const struct prov_call *c, const char *body, size_t n,
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
	rc = c->endpoint == PROV_EMBEDDINGS ? embed_answer(c, obj, answer) :
					      chat_answer(c, obj, answer, u);
	cJSON_Delete(obj);
	return rc;
}

/* --- errors --- */

static int client_status(int status)
{
	if (status == 503 || status == 504 || (status >= 400 && status < 500))
		return status;
	return 502;
}

/* Gemini's status name ("RESOURCE_EXHAUSTED") as an OpenAI-style code. */
static void lower_code(const char *s, char *out, size_t size)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++)
		out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	out[i] = '\0';
}

/* "Gemini: " + message, cut at a character boundary when too long. */
static void gemini_message(const char *msg, char *out, size_t size)
{
	snprintf(out, size, "Gemini: %s", msg);
	out[utf8_valid_prefix(out, strlen(out))] = '\0';
}

static void gemini_map_error(const struct prov_call *c, int status, const char *body, size_t n,
			     struct prov_error *out)
{
	cJSON *obj = json_parse(body, n, NULL);
	const cJSON *err = get(cJSON_IsArray(obj) ? cJSON_GetArrayItem(obj, 0) : obj, "error");
	const char *msg = str_of(err, "message"), *st = str_of(err, "status");

	(void)c;
	memset(out, 0, sizeof(*out));
	out->status = client_status(status);
	snprintf(out->type, sizeof(out->type), "%s", prov_error_type_for(out->status));
	if (st)
		lower_code(st, out->code, sizeof(out->code));
	if (msg) {
		gemini_message(msg, out->message, sizeof(out->message));
		if (status == 400 && (strstr(msg, "exceeds the maximum number of tokens") ||
				      strstr(msg, "input token count")))
			snprintf(out->code, sizeof(out->code), "context_length_exceeded");
	} else {
		snprintf(out->message, sizeof(out->message), "Gemini answered HTTP %d.", status);
	}
	cJSON_Delete(obj);
}

/* --- streams --- */

struct gem_choice {
	int began;    /* the role chunk went out */
	int finished; /* the finish chunk went out */
	int calls;    /* tool calls so far (their delta index) */
};

struct gem_stream {
	char id[GEM_ID_MAX];
	char model[GEM_ID_MAX];
	int64_t created;
	int choices;   /* choices that end the stream: the request's n */
	int finished;  /* choices that have ended */
	int next_call; /* tool calls of the stream, for their ids */
	struct prov_usage usage;
	struct gem_choice ch[GEM_STREAM_CHOICES];
};

/* A chunk for choice index with delta (consumed) and finish (NULL: null),
 * handed to emit. */
static int send_chunk(struct gem_stream *st, int index, cJSON *delta, const char *finish,
		      prov_emit_fn emit, void *ud)
{
	cJSON *chunk = answer_head(st->id, "chat.completion.chunk", st->created, st->model);
	cJSON *choices, *ch;

	/* Once pushed, ch is the chunk's. */
	if (!chunk || !delta || !(choices = cJSON_AddArrayToObject(chunk, "choices")) ||
	    push(choices, ch = cJSON_CreateObject()) ||
	    !cJSON_AddNumberToObject(ch, "index", index))
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

static int send_text(struct gem_stream *st, int index, buf_t *text, prov_emit_fn emit, void *ud)
{
	cJSON *delta;

	if (!text->len)
		return 0;
	delta = cJSON_CreateObject();
	if (delta && !cJSON_AddStringToObject(delta, "content", text->data)) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	buf_reset(text);
	return send_chunk(st, index, delta, NULL, emit, ud);
}

static int send_call(struct gem_stream *st, int index, const cJSON *fc, prov_emit_fn emit, void *ud)
{
	cJSON *delta = cJSON_CreateObject(), *calls;

	if (delta && (!(calls = cJSON_AddArrayToObject(delta, "tool_calls")) ||
		      push(calls, tool_call(fc, st->next_call++, st->ch[index].calls++)))) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	return send_chunk(st, index, delta, NULL, emit, ud);
}

static int send_finish(struct gem_stream *st, int index, const char *finish, prov_emit_fn emit,
		       void *ud)
{
	st->ch[index].finished = 1;
	st->finished++;
	return send_chunk(st, index, cJSON_CreateObject(), finish, emit, ud);
}

static int begin_choice(struct gem_stream *st, int index, prov_emit_fn emit, void *ud)
{
	cJSON *delta;

	if (st->ch[index].began)
		return 0;
	st->ch[index].began = 1;
	delta = cJSON_CreateObject();
	if (delta && (!cJSON_AddStringToObject(delta, "role", "assistant") ||
		      !cJSON_AddStringToObject(delta, "content", ""))) {
		cJSON_Delete(delta);
		delta = NULL;
	}
	return send_chunk(st, index, delta, NULL, emit, ud);
}

static int stream_candidate(struct gem_stream *st, const cJSON *cand, int pos, prov_emit_fn emit,
			    void *ud)
{
	const cJSON *v = get(cand, "index"), *parts = get(get(cand, "content"), "parts"), *p;
	const char *reason = str_of(cand, "finishReason");
	int index = pos, rc;
	buf_t text;

	if (cJSON_IsNumber(v))
		index = v->valuedouble >= 0 && v->valuedouble < GEM_STREAM_CHOICES ?
				(int)v->valuedouble :
				-1;
	if (index < 0 || index >= GEM_STREAM_CHOICES || st->ch[index].finished)
		return 0;
	if ((rc = begin_choice(st, index, emit, ud)))
		return rc;
	buf_init(&text, GEM_TEXT_MAX);
	cJSON_ArrayForEach(p, array_of(parts)) {
		if (is_thought(p))
			continue;
		if (str_of(p, "text")) {
			if ((rc = buf_puts(&text, str_of(p, "text"))))
				goto out;
		} else if (cJSON_IsObject(get(p, "functionCall"))) {
			if ((rc = send_text(st, index, &text, emit, ud)) ||
			    (rc = send_call(st, index, get(p, "functionCall"), emit, ud)))
				goto out;
		}
	}
	if ((rc = send_text(st, index, &text, emit, ud)))
		goto out;
	if (reason && reason[0])
		rc = send_finish(st, index, finish_of(reason, st->ch[index].calls), emit, ud);
out:
	buf_free(&text);
	return rc;
}

/* The usage-only chunk that ends the stream (none when Gemini sent no usage). */
static int send_usage(struct gem_stream *st, prov_emit_fn emit, void *ud)
{
	cJSON *chunk;

	if (!st->usage.have)
		return 0;
	chunk = answer_head(st->id, "chat.completion.chunk", st->created, st->model);
	if (!chunk || !cJSON_AddArrayToObject(chunk, "choices") ||
	    put(chunk, "usage", usage_json(&st->usage))) {
		cJSON_Delete(chunk);
		return TG_ENOMEM;
	}
	return emit(ud, chunk, NULL, 0, 0);
}

/* {"error":{"code":429,"message":"...","status":"RESOURCE_EXHAUSTED"}} in a
 * stream, in the OpenAI shape. */
static int send_error(const cJSON *err, prov_emit_fn emit, void *ud)
{
	const cJSON *code = get(err, "code");
	const char *msg = str_of(err, "message"), *st = str_of(err, "status");
	int status = client_status(cJSON_IsNumber(code) && code->valuedouble >= 100 &&
						   code->valuedouble < 600 ?
					   (int)code->valuedouble :
					   500);
	cJSON *o = cJSON_CreateObject(), *e;
	char message[512], lower[48];

	gemini_message(msg ? msg : "the stream failed.", message, sizeof(message));
	lower_code(st ? st : "", lower, sizeof(lower));
	if (!o || !(e = cJSON_AddObjectToObject(o, "error")) ||
	    !cJSON_AddStringToObject(e, "message", message) ||
	    !cJSON_AddStringToObject(e, "type", prov_error_type_for(status)) ||
	    !(lower[0] ? cJSON_AddStringToObject(e, "code", lower) :
			 cJSON_AddNullToObject(e, "code")) ||
	    !cJSON_AddNullToObject(e, "param")) {
		cJSON_Delete(o);
		return TG_ENOMEM;
	}
	return emit(ud, o, NULL, 0, 0);
}

static struct gem_stream *stream_state(struct prov_stream *s, const cJSON *obj)
{
	struct gem_stream *st = s->state;
	const cJSON *n = s->call ? get(s->call->req, "n") : NULL;
	char id[GEM_ID_MAX];

	if (st)
		return st;
	if (!(st = calloc(1, sizeof(*st))))
		return NULL;
	answer_id(obj, id);
	snprintf(st->id, sizeof(st->id), "%s", id);
	snprintf(st->model, sizeof(st->model), "%s", model_of(s->call, obj));
	st->created = (int64_t)time(NULL);
	st->choices = !cJSON_IsNumber(n) || !(n->valuedouble >= 1) ? 1 :
		      n->valuedouble > GEM_STREAM_CHOICES          ? GEM_STREAM_CHOICES :
								     (int)n->valuedouble;
	s->state = st;
	return st;
}

static int gemini_parse_stream_event(struct prov_stream *s, const char *event, const char *data,
				     size_t len, prov_emit_fn emit, void *ud)
{
	cJSON *obj = json_parse(data, len, NULL);
	const cJSON *cands, *cand, *err;
	const char *block;
	struct gem_stream *st;
	int rc = 0, pos = 0;

	(void)event;
	if (!cJSON_IsObject(obj))
		goto out; /* nothing for the client */
	err = get(obj, "error");
	if (cJSON_IsObject(err)) {
		rc = send_error(err, emit, ud);
		goto out;
	}
	if (!(st = stream_state(s, obj))) {
		rc = TG_ENOMEM;
		goto out;
	}
	if (gemini_extract_usage(obj, &st->usage) && s->usage)
		*s->usage = st->usage;
	if (s->done)
		goto out;
	cands = get(obj, "candidates");
	block = str_of(get(obj, "promptFeedback"), "blockReason");
	if (block && block[0] && cJSON_GetArraySize(cands) == 0) {
		/* Blocked before a word: the stream ends filtered. */
		if ((rc = begin_choice(st, 0, emit, ud)) ||
		    (rc = send_finish(st, 0, "content_filter", emit, ud)))
			goto out;
		st->finished = st->choices;
	}
	cJSON_ArrayForEach(cand, array_of(cands)) {
		if ((rc = stream_candidate(st, cand, pos++, emit, ud)))
			goto out;
	}
	if (st->finished >= st->choices) {
		if ((rc = send_usage(st, emit, ud)))
			goto out;
		s->done = 1;
	}
out:
	cJSON_Delete(obj);
	return rc;
}

static void gemini_stream_free(struct prov_stream *s)
{
	free(s->state);
	s->state = NULL;
}

const struct provider_ops provider_gemini = {
	.kind = "gemini",
	.build_request = gemini_build_request,
	.forward = prov_http_forward,
	.parse_response = gemini_parse_response,
	.parse_stream_event = gemini_parse_stream_event,
	.extract_usage = gemini_extract_usage,
	.stream_free = gemini_stream_free,
	.map_error = gemini_map_error,
};
