/* fake_upstream.c - an OpenAI-compatible provider stand-in for tests.
 *
 * Serves /v1/chat/completions (plain and SSE), /v1/embeddings and /v1/models
 * on loopback with deterministic token counts, so a test can predict exactly
 * what the gateway should bill. Per-request x-fake-* headers add latency,
 * inject errors and break streams, so one server can serve many tests; see
 * README.md next to this file.
 */
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BODY (16L * 1024 * 1024)
#define MAX_COMPLETION_TOKENS 1000000L
#define MAX_DELAY_MS 3600000L
#define EMBED_DIMS 8

struct options {
	char listen[256];
	long latency_ms;
	long chunks;
	long chunk_interval_ms;
	long completion_tokens;
	long threads;
	long keep_alive_ms;
};

static struct options opt = {
	.listen = "127.0.0.1:0",
	.completion_tokens = 16,
	.threads = 64,
	.keep_alive_ms = 5000,
};

static atomic_int stopping;
static atomic_ullong stat_requests;
static atomic_ullong stat_chat;
static atomic_ullong stat_embeddings;
static atomic_ullong next_id;

/* Per-request behaviour: x-fake-* headers over the command-line defaults. */
struct knobs {
	long latency_ms;
	long chunks; /* 0: one content chunk per token */
	long chunk_interval_ms;
	long status;            /* 0: behave normally */
	long break_after;       /* -1: never */
	long completion_tokens; /* -1: not forced */
	long cached_tokens;
	long no_usage;
	long echo_body;
	long usage_every_chunk; /* 1: every content chunk carries the usage so far */
};

/* Everything a chat completion answer is made of, plain or streamed. */
struct chat_plan {
	char id[48];
	const char *model;
	long long created;
	long prompt_tokens;
	long completion_tokens;
	long cached_tokens;
	const char *finish_reason;
	int with_usage;    /* usage field / usage chunk wanted and not suppressed */
	long usage_so_far; /* >= 0: content chunks carry this running usage (usage_every_chunk) */
	const cJSON *echo; /* the request body to echo back, or NULL */
};

struct sse {
	struct mg_connection *conn;
	int chunked; /* else close-delimited (HTTP/1.0 clients) */
};

enum route { R_NONE, R_CHAT, R_EMBEDDINGS, R_MODELS, R_MODEL };

static const char *const model_ids[] = {
	"gpt-4o",
	"gpt-4o-mini",
	"text-embedding-3-small",
	"fake-model",
};

/* Sleep ms milliseconds in short slices; -1 as soon as the server is stopping. */
static int nap(long ms)
{
	struct timespec now, end, step;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (atomic_load(&stopping))
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long long)(end.tv_sec - now.tv_sec) * 1000000000LL +
		       (end.tv_nsec - now.tv_nsec);
		if (left <= 0)
			return 0;
		step.tv_sec = 0;
		step.tv_nsec = (long)(left < 20000000LL ? left : 20000000LL);
		nanosleep(&step, NULL);
	}
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A JSON number that is a whole number in [min, max]. */
static int json_long(const cJSON *item, long min, long max, long *out)
{
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	if (!(d >= (double)min && d <= (double)max) || d != (double)(long)d)
		return -1;
	*out = (long)d;
	return 0;
}

static int knob(struct mg_connection *conn, const char *name, long min, long max, long *val)
{
	const char *v = mg_get_header(conn, name);

	return v ? parse_long(v, min, max, val) : 0;
}

/* Fill k from the request headers; returns the name of a bad header, or NULL. */
static const char *knobs_parse(struct mg_connection *conn, struct knobs *k)
{
	memset(k, 0, sizeof(*k));
	k->latency_ms = opt.latency_ms;
	k->chunks = opt.chunks;
	k->chunk_interval_ms = opt.chunk_interval_ms;
	k->break_after = -1;
	k->completion_tokens = -1;
	if (knob(conn, "x-fake-latency-ms", 0, MAX_DELAY_MS, &k->latency_ms))
		return "x-fake-latency-ms";
	if (knob(conn, "x-fake-chunks", 1, MAX_COMPLETION_TOKENS, &k->chunks))
		return "x-fake-chunks";
	if (knob(conn, "x-fake-chunk-interval-ms", 0, MAX_DELAY_MS, &k->chunk_interval_ms))
		return "x-fake-chunk-interval-ms";
	if (knob(conn, "x-fake-status", 200, 599, &k->status) ||
	    (k->status != 0 && k->status != 200 && k->status < 400))
		return "x-fake-status";
	if (k->status == 200)
		k->status = 0;
	if (knob(conn, "x-fake-break-after", 0, MAX_COMPLETION_TOKENS, &k->break_after))
		return "x-fake-break-after";
	if (knob(conn, "x-fake-completion-tokens", 0, MAX_COMPLETION_TOKENS, &k->completion_tokens))
		return "x-fake-completion-tokens";
	if (knob(conn, "x-fake-cached-tokens", 0, 1000000000L, &k->cached_tokens))
		return "x-fake-cached-tokens";
	if (knob(conn, "x-fake-no-usage", 0, 1, &k->no_usage))
		return "x-fake-no-usage";
	if (knob(conn, "x-fake-echo-body", 0, 1, &k->echo_body))
		return "x-fake-echo-body";
	if (knob(conn, "x-fake-usage-every-chunk", 0, 1, &k->usage_every_chunk))
		return "x-fake-usage-every-chunk";
	return NULL;
}

/* Override k from an optional `x_fake` object in the request body, with the
 * header names minus the prefix and '_' for '-': {"status":500,
 * "break_after":3, "chunks":10, "chunk_interval_ms":25, "latency_ms":50,
 * "completion_tokens":N, "cached_tokens":N, "no_usage":1, "echo_body":1}.
 * Returns the name of a bad field, or NULL. */
static const char *knobs_from_body(const cJSON *req, struct knobs *k)
{
	static const struct {
		const char *name;
		long min, max;
		size_t off;
	} fields[] = {
		{ "latency_ms", 0, MAX_DELAY_MS, offsetof(struct knobs, latency_ms) },
		{ "chunks", 1, MAX_COMPLETION_TOKENS, offsetof(struct knobs, chunks) },
		{ "chunk_interval_ms", 0, MAX_DELAY_MS, offsetof(struct knobs, chunk_interval_ms) },
		{ "status", 200, 599, offsetof(struct knobs, status) },
		{ "break_after", 0, MAX_COMPLETION_TOKENS, offsetof(struct knobs, break_after) },
		{ "completion_tokens", 0, MAX_COMPLETION_TOKENS,
		  offsetof(struct knobs, completion_tokens) },
		{ "cached_tokens", 0, 1000000000L, offsetof(struct knobs, cached_tokens) },
		{ "no_usage", 0, 1, offsetof(struct knobs, no_usage) },
		{ "echo_body", 0, 1, offsetof(struct knobs, echo_body) },
		{ "usage_every_chunk", 0, 1, offsetof(struct knobs, usage_every_chunk) },
	};
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, "x_fake");
	size_t i;

	if (!x)
		return NULL;
	if (!cJSON_IsObject(x))
		return "x_fake";
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, fields[i].name);

		if (v &&
		    json_long(v, fields[i].min, fields[i].max, (long *)((char *)k + fields[i].off)))
			return fields[i].name;
	}
	if (k->status != 0 && k->status != 200 && k->status < 400)
		return "status";
	if (k->status == 200)
		k->status = 0;
	return NULL;
}

/* Set when this answer is the connection's last (no_keep_alive). */
static __thread int tls_closing;

static void no_keep_alive(struct mg_connection *conn)
{
	tls_closing = 1;
	mg_disable_connection_keep_alive(conn);
}

/* Sends the head (the headers every answer carries, then `extra`: header
 * lines each ending in CRLF) and len bytes of body in one write, as servers
 * send a small response: a client then wakes once for it, not once for the
 * head and again for the body. Returns status, or 500 when nothing could be
 * sent. */
static int send_answer(struct mg_connection *conn, int status, const char *content_type,
		       const char *extra, const char *body, size_t len)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *auth = mg_get_header(conn, "Authorization");
	const char *rid = mg_get_header(conn, "X-Request-Id");
	int closing = tls_closing || strcmp(ri->http_version, "1.1") != 0;
	size_t cap = 512 + strlen(content_type) + strlen(extra) + (auth ? strlen(auth) : 0) +
		     (rid ? strlen(rid) : 0) + len;
	char *out = malloc(cap);
	int n;

	if (!out) {
		no_keep_alive(conn);
		return 500;
	}
	n = snprintf(out, cap,
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nx-fake-echo-authorization: %s\r\n"
		     "%s%s%s%sConnection: %s\r\n\r\n",
		     status, mg_get_response_code_text(conn, status), content_type,
		     auth ? auth : "", rid ? "x-fake-echo-request-id: " : "", rid ? rid : "",
		     rid ? "\r\n" : "", extra, closing ? "close" : "keep-alive");
	if (n < 0 || (size_t)n >= cap - len) {
		free(out);
		no_keep_alive(conn);
		return 500;
	}
	if (len)
		memcpy(out + n, body, len);
	if (mg_write(conn, out, (size_t)n + len) != (int)((size_t)n + len))
		no_keep_alive(conn);
	free(out);
	return status;
}

static int send_body(struct mg_connection *conn, int status, const char *content_type,
		     const char *body, size_t len)
{
	char clen[48];

	snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", len);
	if (strcmp(mg_get_request_info(conn)->request_method, "HEAD") == 0)
		len = 0;
	return send_answer(conn, status, content_type, clen, body, len);
}

static int send_json(struct mg_connection *conn, int status, const cJSON *body)
{
	static const char oom[] =
		"{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
		"\"code\":null,\"param\":null}}";
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	if (!text)
		return send_body(conn, 500, "application/json", oom, sizeof(oom) - 1);
	send_body(conn, status, "application/json", text, strlen(text));
	cJSON_free(text);
	return status;
}

/* The OpenAI error envelope; 4xx are invalid_request_error, the rest server_error. */
static int send_error(struct mg_connection *conn, int status, const char *message,
		      const char *param, const char *code)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	int client = status >= 400 && status < 500;

	cJSON_AddStringToObject(err, "message", message);
	cJSON_AddStringToObject(err, "type", client ? "invalid_request_error" : "server_error");
	if (code)
		cJSON_AddStringToObject(err, "code", code);
	else
		cJSON_AddNullToObject(err, "code");
	if (param)
		cJSON_AddStringToObject(err, "param", param);
	else
		cJSON_AddNullToObject(err, "param");
	send_json(conn, err ? status : 500, root);
	cJSON_Delete(root);
	return status;
}

/* Read the whole request body, NUL-terminated. 0, or the status to answer. */
static int read_body(struct mg_connection *conn, char **out, size_t *outlen)
{
	long long clen = mg_get_request_info(conn)->content_length;
	size_t cap = clen >= 0 && clen < MAX_BODY ? (size_t)clen + 1 : 4096, len = 0;
	char *buf, *grown;
	int n, rc = 0;

	if (clen > MAX_BODY)
		return 413;
	buf = malloc(cap);
	if (!buf)
		return 500;
	for (;;) {
		if (clen >= 0 && len == (size_t)clen)
			break;
		if (len + 1 >= cap) {
			grown = realloc(buf, cap * 2);
			if (!grown) {
				rc = 500;
				goto out;
			}
			buf = grown;
			cap *= 2;
		}
		n = mg_read(conn, buf + len, cap - len - 1);
		if (n < 0) {
			rc = 400;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)MAX_BODY) {
			rc = 413;
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	return rc;
}

/* "tokFROM tokFROM+1 ... tokTO-1", with a leading space unless FROM is 0, so
 * the pieces of a stream concatenate to the non-stream content. */
static char *words(long long from, long long to)
{
	size_t cap = (size_t)(to - from) * 12 + 1, len = 0;
	char *s = malloc(cap);
	long long i;

	if (!s)
		return NULL;
	s[0] = '\0';
	for (i = from; i < to; i++)
		len += (size_t)snprintf(s + len, cap - len, "%stok%lld", i ? " " : "", i);
	return s;
}

/* Bytes of text in a message's content: a string or an array of parts. */
static long content_bytes(const cJSON *content)
{
	const cJSON *part, *text;
	long n = 0;

	if (cJSON_IsString(content))
		return (long)strlen(content->valuestring);
	cJSON_ArrayForEach(part, content) {
		text = cJSON_IsString(part) ? part : cJSON_GetObjectItemCaseSensitive(part, "text");
		if (cJSON_IsString(text))
			n += (long)strlen(text->valuestring);
	}
	return n;
}

/* cJSON_AddItemToObject that frees the item when it cannot be added. */
static void add_item(cJSON *obj, const char *name, cJSON *item)
{
	if (!cJSON_AddItemToObject(obj, name, item))
		cJSON_Delete(item);
}

static void push_item(cJSON *array, cJSON *item)
{
	if (!cJSON_AddItemToArray(array, item))
		cJSON_Delete(item);
}

/* choices: [ {index: 0} ], returning the choice (NULL when out of memory). */
static cJSON *add_choice(cJSON *root)
{
	cJSON *choices = cJSON_AddArrayToObject(root, "choices");
	cJSON *choice = cJSON_CreateObject();

	if (!cJSON_AddItemToArray(choices, choice)) {
		cJSON_Delete(choice);
		return NULL;
	}
	cJSON_AddNumberToObject(choice, "index", 0);
	return choice;
}

static cJSON *usage_new(long prompt, long completion, long cached)
{
	cJSON *u = cJSON_CreateObject();
	cJSON *d;

	cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
	cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
	cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + completion));
	d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
	cJSON_AddNumberToObject(d, "cached_tokens", (double)cached);
	d = cJSON_AddObjectToObject(u, "completion_tokens_details");
	cJSON_AddNumberToObject(d, "reasoning_tokens", 0);
	return u;
}

/* id, object, created, model: the head of every chat answer. */
static cJSON *chat_root(const struct chat_plan *p, const char *object)
{
	cJSON *root = cJSON_CreateObject();

	cJSON_AddStringToObject(root, "id", p->id);
	cJSON_AddStringToObject(root, "object", object);
	cJSON_AddNumberToObject(root, "created", (double)p->created);
	cJSON_AddStringToObject(root, "model", p->model);
	cJSON_AddStringToObject(root, "system_fingerprint", "fp_fake");
	return root;
}

static void add_echo(cJSON *root, const cJSON *echo)
{
	if (echo)
		add_item(root, "fake_request", cJSON_Duplicate(echo, 1));
}

/* One chat.completion.chunk with a single choice. role and content NULL leave
 * them out of the delta; finish NULL is a null finish_reason. */
static char *chunk_print(const struct chat_plan *p, const char *role, const char *content,
			 const char *finish, int first)
{
	cJSON *root = chat_root(p, "chat.completion.chunk");
	cJSON *choice = add_choice(root);
	cJSON *delta;
	char *out;

	delta = cJSON_AddObjectToObject(choice, "delta");
	if (role)
		cJSON_AddStringToObject(delta, "role", role);
	if (content)
		cJSON_AddStringToObject(delta, "content", content);
	cJSON_AddNullToObject(choice, "logprobs");
	if (finish)
		cJSON_AddStringToObject(choice, "finish_reason", finish);
	else
		cJSON_AddNullToObject(choice, "finish_reason");
	/* As OpenAI does: with include_usage every chunk but the last has usage
	 * null. Some servers (vLLM's continuous usage stats) put the usage so far
	 * in every content chunk instead. */
	if (p->with_usage && content && p->usage_so_far >= 0)
		add_item(root, "usage",
			 usage_new(p->prompt_tokens, p->usage_so_far, p->cached_tokens));
	else if (p->with_usage)
		cJSON_AddNullToObject(root, "usage");
	if (first)
		add_echo(root, p->echo);
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

static char *usage_chunk_print(const struct chat_plan *p)
{
	cJSON *root = chat_root(p, "chat.completion.chunk");
	char *out;

	cJSON_AddArrayToObject(root, "choices");
	add_item(root, "usage",
		 usage_new(p->prompt_tokens, p->completion_tokens, p->cached_tokens));
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* One "data: ...\n\n" event in a single write, so it leaves at once. */
static int sse_send(struct sse *s, const char *data)
{
	size_t n = strlen(data), cap = n + 40;
	char *buf = malloc(cap);
	int len, rc = -1;

	if (!buf)
		return -1;
	if (s->chunked)
		len = snprintf(buf, cap, "%zx\r\ndata: %s\n\n\r\n", n + 8, data);
	else
		len = snprintf(buf, cap, "data: %s\n\n", data);
	if (len > 0 && mg_write(s->conn, buf, (size_t)len) == len)
		rc = 0;
	free(buf);
	return rc;
}

/* Send the event and free its JSON; -1 if there was none or the write failed. */
static int sse_emit(struct sse *s, char *json)
{
	int rc = json ? sse_send(s, json) : -1;

	cJSON_free(json);
	return rc;
}

static int stream_chat(struct mg_connection *conn, const struct chat_plan *p, const struct knobs *k)
{
	struct sse s = { conn, strcmp(mg_get_request_info(conn)->http_version, "1.1") == 0 };
	long long n = p->completion_tokens, nchunks, c;
	char *text;
	int rc, done = 0;

	nchunks = k->chunks > 0 && k->chunks < n ? k->chunks : n;
	if (!s.chunked)
		no_keep_alive(conn);
	send_answer(conn, 200, "text/event-stream",
		    s.chunked ? "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n" :
				"Cache-Control: no-cache\r\n",
		    NULL, 0);

	if (sse_emit(&s, chunk_print(p, "assistant", "", NULL, 1)))
		goto out;
	for (c = 0; c < nchunks; c++) {
		struct chat_plan q = *p;

		if (c == k->break_after || nap(k->chunk_interval_ms))
			goto out;
		text = words(c * n / nchunks, (c + 1) * n / nchunks);
		q.usage_so_far = k->usage_every_chunk ? (c + 1) * n / nchunks : -1;
		rc = sse_emit(&s, text ? chunk_print(&q, NULL, text, NULL, 0) : NULL);
		free(text);
		if (rc)
			goto out;
	}
	/* A break point past the last content chunk drops just the ending. */
	if (k->break_after >= 0)
		goto out;
	if (sse_emit(&s, chunk_print(p, NULL, NULL, p->finish_reason, 0)))
		goto out;
	if (p->with_usage && sse_emit(&s, usage_chunk_print(p)))
		goto out;
	if (sse_send(&s, "[DONE]"))
		goto out;
	if (s.chunked && mg_write(conn, "0\r\n\r\n", 5) != 5)
		goto out;
	done = 1;
out:
	/* Unfinished: close the connection mid-body rather than end the chunked body. */
	if (!done)
		no_keep_alive(conn);
	return 200;
}

static int reply_chat(struct mg_connection *conn, const struct chat_plan *p)
{
	cJSON *root = chat_root(p, "chat.completion");
	cJSON *choice = add_choice(root);
	cJSON *msg;
	char *text = words(0, p->completion_tokens);
	int status;

	if (!text) {
		status = send_error(conn, 500, "out of memory", NULL, NULL);
		goto out;
	}
	msg = cJSON_AddObjectToObject(choice, "message");
	cJSON_AddStringToObject(msg, "role", "assistant");
	cJSON_AddStringToObject(msg, "content", text);
	cJSON_AddNullToObject(msg, "refusal");
	cJSON_AddNullToObject(choice, "logprobs");
	cJSON_AddStringToObject(choice, "finish_reason", p->finish_reason);
	if (p->with_usage)
		add_item(root, "usage",
			 usage_new(p->prompt_tokens, p->completion_tokens, p->cached_tokens));
	add_echo(root, p->echo);
	status = send_json(conn, 200, root);
out:
	cJSON_Delete(root);
	free(text);
	return status;
}

static int handle_chat(struct mg_connection *conn, const cJSON *req, const struct knobs *k)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
	const cJSON *limit_item = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
	const char *limit_name = "max_completion_tokens";
	const cJSON *so, *m;
	struct chat_plan p;
	long limit = 0, bytes;
	int stream;

	memset(&p, 0, sizeof(p));
	p.usage_so_far = -1;
	if (!cJSON_IsString(model) || !model->valuestring[0])
		return send_error(conn, 400, "you must provide a model parameter", "model", NULL);
	if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
		return send_error(conn, 400, "'messages' must be a non-empty array", "messages",
				  NULL);
	if (!limit_item || cJSON_IsNull(limit_item)) {
		limit_item = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
		limit_name = "max_tokens";
	}
	if (limit_item && !cJSON_IsNull(limit_item) &&
	    json_long(limit_item, 1, 1000000000L, &limit))
		return send_error(conn, 400, "max tokens must be a positive integer", limit_name,
				  NULL);

	cJSON_ArrayForEach(m, messages) {
		if (!cJSON_IsObject(m))
			return send_error(conn, 400, "each message must be an object", "messages",
					  NULL);
		bytes = content_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
		p.prompt_tokens += (bytes + 3) / 4 + 3;
	}

	/* Forced lengths are exact; otherwise the reply is the default, cut at max_tokens. */
	if (k->completion_tokens >= 0) {
		p.completion_tokens = k->completion_tokens;
		p.finish_reason = limit && p.completion_tokens >= limit ? "length" : "stop";
	} else if (limit && limit < opt.completion_tokens) {
		p.completion_tokens = limit;
		p.finish_reason = "length";
	} else {
		p.completion_tokens = opt.completion_tokens;
		p.finish_reason = "stop";
	}

	stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"));
	so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
	so = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
	p.with_usage = !k->no_usage && (!stream || cJSON_IsTrue(so));
	snprintf(p.id, sizeof(p.id), "chatcmpl-fake-%llu",
		 (unsigned long long)atomic_fetch_add(&next_id, 1) + 1);
	p.model = model->valuestring;
	p.created = (long long)time(NULL);
	p.cached_tokens = k->cached_tokens;
	p.echo = k->echo_body ? req : NULL;
	return stream ? stream_chat(conn, &p, k) : reply_chat(conn, &p);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void base64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = tab[(v >> 6) & 63];
		*out++ = tab[v & 63];
	}
	if (i < len) {
		v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/* One embedding object; values in [-1, 1] with six decimals, from the text's hash. */
static cJSON *embedding_new(int index, uint64_t hash, int as_base64)
{
	cJSON *obj = cJSON_CreateObject();
	cJSON *vec = NULL;
	unsigned char raw[EMBED_DIMS * 4];
	char b64[sizeof(raw) / 3 * 4 + 8];
	uint32_t bits;
	float f;
	double v;
	int i, j;

	cJSON_AddStringToObject(obj, "object", "embedding");
	cJSON_AddNumberToObject(obj, "index", index);
	if (!as_base64)
		vec = cJSON_AddArrayToObject(obj, "embedding");
	for (i = 0; i < EMBED_DIMS; i++) {
		v = (double)((long)(mix64(hash + (uint64_t)i) % 2000001ULL) - 1000000L) / 1e6;
		if (vec) {
			push_item(vec, cJSON_CreateNumber(v));
			continue;
		}
		f = (float)v;
		memcpy(&bits, &f, sizeof(bits));
		for (j = 0; j < 4; j++)
			raw[i * 4 + j] = (unsigned char)(bits >> (8 * j));
	}
	if (as_base64) {
		base64(raw, sizeof(raw), b64);
		cJSON_AddStringToObject(obj, "embedding", b64);
	}
	return obj;
}

/* Hash and token count of one input: a string, or an array of token ids. */
static int embed_input(const cJSON *item, uint64_t *hash, long *tokens)
{
	const cJSON *t;
	long id;

	if (cJSON_IsString(item)) {
		*hash = fnv1a(0xcbf29ce484222325ULL, item->valuestring, strlen(item->valuestring));
		*tokens = ((long)strlen(item->valuestring) + 3) / 4;
		return 0;
	}
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return -1;
	*hash = 0xcbf29ce484222325ULL;
	*tokens = 0;
	cJSON_ArrayForEach(t, item) {
		if (json_long(t, 0, 0x7fffffffL, &id))
			return -1;
		*hash = fnv1a(*hash, &id, sizeof(id));
		(*tokens)++;
	}
	return 0;
}

static int handle_embeddings(struct mg_connection *conn, const cJSON *req, const struct knobs *k)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input");
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(req, "encoding_format");
	const cJSON *item;
	cJSON *root = NULL, *data, *usage;
	uint64_t hash;
	long tokens, total = 0;
	int as_base64 = 0, index = 0, single, status;

	if (!cJSON_IsString(model) || !model->valuestring[0])
		return send_error(conn, 400, "you must provide a model parameter", "model", NULL);
	if (fmt && !cJSON_IsNull(fmt)) {
		if (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") != 0 &&
					     strcmp(fmt->valuestring, "base64") != 0))
			return send_error(conn, 400, "encoding_format must be float or base64",
					  "encoding_format", NULL);
		as_base64 = strcmp(fmt->valuestring, "base64") == 0;
	}
	/* A string or a flat token array is one input; otherwise each element is one. */
	single = cJSON_IsString(input) || cJSON_IsNumber(cJSON_GetArrayItem(input, 0));
	if (!cJSON_IsString(input) && (!cJSON_IsArray(input) || cJSON_GetArraySize(input) == 0))
		goto bad_input;

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "object", "list");
	data = cJSON_AddArrayToObject(root, "data");
	if (single) {
		if (embed_input(input, &hash, &tokens))
			goto bad_input;
		push_item(data, embedding_new(0, hash, as_base64));
		total = tokens;
	} else {
		cJSON_ArrayForEach(item, input) {
			if (!cJSON_IsString(item) && !cJSON_IsArray(item))
				goto bad_input;
			if (embed_input(item, &hash, &tokens))
				goto bad_input;
			push_item(data, embedding_new(index++, hash, as_base64));
			total += tokens;
		}
	}
	cJSON_AddStringToObject(root, "model", model->valuestring);
	usage = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(usage, "prompt_tokens", (double)total);
	cJSON_AddNumberToObject(usage, "total_tokens", (double)total);
	if (k->no_usage)
		cJSON_DeleteItemFromObjectCaseSensitive(root, "usage");
	if (k->echo_body)
		add_echo(root, req);
	status = send_json(conn, 200, root);
	goto out;
bad_input:
	status = send_error(conn, 400,
			    "input must be a string, an array of strings or token arrays", "input",
			    NULL);
out:
	cJSON_Delete(root);
	return status;
}

static cJSON *model_new(const char *id)
{
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "object", "model");
	cJSON_AddNumberToObject(m, "created", 1700000000);
	cJSON_AddStringToObject(m, "owned_by", "fake-upstream");
	return m;
}

static int handle_models(struct mg_connection *conn, const char *one)
{
	cJSON *root = NULL, *data;
	size_t i;
	int status;

	if (one) {
		for (i = 0; i < sizeof(model_ids) / sizeof(model_ids[0]); i++)
			if (strcmp(one, model_ids[i]) == 0)
				root = model_new(model_ids[i]);
		if (!root)
			return send_error(conn, 404, "The model does not exist", "model",
					  "model_not_found");
	} else {
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "object", "list");
		data = cJSON_AddArrayToObject(root, "data");
		for (i = 0; i < sizeof(model_ids) / sizeof(model_ids[0]); i++)
			push_item(data, model_new(model_ids[i]));
	}
	status = send_json(conn, 200, root);
	cJSON_Delete(root);
	return status;
}

static int reply_stats(struct mg_connection *conn)
{
	cJSON *root = cJSON_CreateObject();
	int status;

	cJSON_AddNumberToObject(root, "requests", (double)atomic_load(&stat_requests));
	cJSON_AddNumberToObject(root, "chat", (double)atomic_load(&stat_chat));
	cJSON_AddNumberToObject(root, "embeddings", (double)atomic_load(&stat_embeddings));
	status = send_json(conn, 200, root);
	cJSON_Delete(root);
	return status;
}

static enum route route_of(const char *path)
{
	if (strcmp(path, "/v1/chat/completions") == 0)
		return R_CHAT;
	if (strcmp(path, "/v1/embeddings") == 0)
		return R_EMBEDDINGS;
	if (strcmp(path, "/v1/models") == 0)
		return R_MODELS;
	if (strncmp(path, "/v1/models/", 11) == 0 && path[11] && !strchr(path + 11, '/'))
		return R_MODEL;
	return R_NONE;
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri ? ri->local_uri : "/";
	const char *method = ri->request_method;
	enum route route = route_of(path);
	int post = route == R_CHAT || route == R_EMBEDDINGS;
	const char *bad;
	char msg[160];
	struct knobs k;
	char *body = NULL;
	size_t len = 0;
	cJSON *req = NULL;
	int status;

	(void)cbdata;
	tls_closing = 0;
	if (strcmp(path, "/health") == 0) {
		status = send_body(conn, 200, "text/plain", "ok", 2);
		goto out;
	}
	if (strcmp(path, "/fake/stats") == 0) {
		status = reply_stats(conn);
		goto out;
	}
	if (strncmp(path, "/v1/", 4) == 0) {
		atomic_fetch_add(&stat_requests, 1);
		if (route == R_CHAT)
			atomic_fetch_add(&stat_chat, 1);
		else if (route == R_EMBEDDINGS)
			atomic_fetch_add(&stat_embeddings, 1);
	}
	status = read_body(conn, &body, &len);
	if (status) {
		no_keep_alive(conn);
		status = send_error(conn, status,
				    status == 413 ? "request body too large" :
						    "could not read the request body",
				    NULL, NULL);
		goto out;
	}
	if (route == R_NONE) {
		snprintf(msg, sizeof(msg), "Unknown request URL: %s %.100s", method, path);
		status = send_error(conn, 404, msg, NULL, "unknown_url");
		goto out;
	}
	if (strcmp(method, post ? "POST" : "GET") != 0) {
		snprintf(msg, sizeof(msg), "Method %s not allowed on %.100s", method, path);
		status = send_error(conn, 405, msg, NULL, NULL);
		goto out;
	}
	bad = knobs_parse(conn, &k);
	if (bad) {
		snprintf(msg, sizeof(msg), "invalid %s header", bad);
		status = send_error(conn, 400, msg, bad, NULL);
		goto out;
	}
	if (post) {
		req = cJSON_ParseWithOpts(body, NULL, 1);
		if (!cJSON_IsObject(req)) {
			status = send_error(conn, 400,
					    "We could not parse the JSON body of your request.",
					    NULL, NULL);
			goto out;
		}
		/* The same knobs from a body field, for callers that can only shape
		 * the body (a gateway forwards unknown fields but not headers). */
		bad = knobs_from_body(req, &k);
		if (bad) {
			snprintf(msg, sizeof(msg), "invalid x_fake.%s", bad);
			status = send_error(conn, 400, msg, bad, NULL);
			goto out;
		}
	}
	if (nap(k.latency_ms)) {
		no_keep_alive(conn);
		status = 503;
		goto out;
	}
	if (k.status) {
		status = send_error(conn, (int)k.status, "injected failure", NULL, NULL);
		goto out;
	}
	switch (route) {
	case R_CHAT:
		status = handle_chat(conn, req, &k);
		break;
	case R_EMBEDDINGS:
		status = handle_embeddings(conn, req, &k);
		break;
	case R_MODELS:
		status = handle_models(conn, NULL);
		break;
	default:
		status = handle_models(conn, path + 11);
		break;
	}
out:
	cJSON_Delete(req);
	free(body);
	return status;
}

static int log_civetweb(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	fprintf(stderr, "fake_upstream: %s\n", message);
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fake_upstream [--listen HOST:PORT] [--latency-ms N] [--threads N]\n"
		   "                     [--chunks N] [--chunk-interval-ms N]\n"
		   "                     [--completion-tokens N] [--keep-alive-ms N]\n"
		   "Port 0 picks a free port; the chosen one is printed as\n"
		   "\"listening on HOST:PORT\". See README.md for the x-fake-* headers.\n");
}

/* 0 to run, 1 to exit successfully (--help), -1 on a usage error. */
static int parse_args(int argc, char **argv)
{
	static const struct {
		const char *name;
		long *val;
		long min, max;
	} flags[] = {
		{ "--latency-ms", &opt.latency_ms, 0, MAX_DELAY_MS },
		{ "--threads", &opt.threads, 1, 4096 },
		{ "--chunks", &opt.chunks, 0, MAX_COMPLETION_TOKENS },
		{ "--chunk-interval-ms", &opt.chunk_interval_ms, 0, MAX_DELAY_MS },
		{ "--completion-tokens", &opt.completion_tokens, 0, MAX_COMPLETION_TOKENS },
		{ "--keep-alive-ms", &opt.keep_alive_ms, 0, 3600000L },
	};
	char name[32];
	const char *arg = "", *val, *eq;
	size_t f, nlen;
	int i;

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			return 1;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		if (nlen >= sizeof(name))
			goto bad;
		memcpy(name, arg, nlen);
		name[nlen] = '\0';
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			goto bad;
		if (strcmp(name, "--listen") == 0) {
			if (!*val || strlen(val) + 11 >= sizeof(opt.listen))
				goto bad;
			snprintf(opt.listen, sizeof(opt.listen), "%s%s",
				 strchr(val, ':') ? "" : "127.0.0.1:", val);
			continue;
		}
		for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			if (strcmp(name, flags[f].name) == 0)
				break;
		if (f == sizeof(flags) / sizeof(flags[0]) ||
		    parse_long(val, flags[f].min, flags[f].max, flags[f].val))
			goto bad;
	}
	return 0;
bad:
	fprintf(stderr, "fake_upstream: bad or incomplete argument '%s'\n", arg);
	return -1;
}

int main(int argc, char **argv)
{
	char threads[24], keep_alive[24], errtext[256] = "";
	/* clang-format off: name and value pairs */
	const char *options[] = {
		"listening_ports",
		opt.listen,
		"num_threads",
		threads,
		"enable_keep_alive",
		"yes",
		"keep_alive_timeout_ms",
		keep_alive,
		"tcp_nodelay",
		"1",
		"request_timeout_ms",
		"120000",
		"max_request_size",
		"65536",
		NULL,
	};
	/* clang-format on */

	struct mg_callbacks cb;
	struct mg_init_data init;
	struct mg_error_data error;
	struct mg_server_port ports[4];
	struct mg_context *ctx = NULL;
	unsigned errcode = 0;
	sigset_t stop_set;
	int rc = 1, lib = 0, sig, hostlen;

	switch (parse_args(argc, argv)) {
	case 1:
		usage(stdout);
		return 0;
	case -1:
		usage(stderr);
		return 2;
	}
	snprintf(threads, sizeof(threads), "%ld", opt.threads);
	snprintf(keep_alive, sizeof(keep_alive), "%ld", opt.keep_alive_ms);

	/* Block the stop signals in every thread; main takes them with sigwait. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	mg_init_library(0);
	lib = 1;
	memset(&cb, 0, sizeof(cb));
	cb.log_message = log_civetweb;
	memset(&init, 0, sizeof(init));
	init.callbacks = &cb;
	init.configuration_options = options;
	memset(&error, 0, sizeof(error));
	error.code = &errcode;
	error.text = errtext;
	error.text_buffer_size = sizeof(errtext);
	ctx = mg_start2(&init, &error);
	if (!ctx) {
		fprintf(stderr, "fake_upstream: cannot listen on %s: %s\n", opt.listen, errtext);
		goto out;
	}
	mg_set_request_handler(ctx, "/", dispatch, NULL);
	if (mg_get_server_ports(ctx, 4, ports) < 1) {
		fprintf(stderr, "fake_upstream: no listening port\n");
		goto out;
	}
	hostlen = (int)(strrchr(opt.listen, ':') - opt.listen);
	printf("listening on %.*s:%d\n", hostlen, opt.listen, ports[0].port);
	fflush(stdout);

	while (sigwait(&stop_set, &sig) != 0)
		;
	rc = 0;
out:
	atomic_store(&stopping, 1);
	if (ctx)
		mg_stop(ctx);
	if (lib)
		mg_exit_library();
	return rc;
}
