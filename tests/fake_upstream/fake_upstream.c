/* fake_upstream.c - an OpenAI-compatible provider stand-in for tests.
 *
 * Serves /v1/chat/completions (plain and SSE), /v1/embeddings and /v1/models
 * on loopback with deterministic token counts, so a test can predict exactly
 * what the gateway should bill. Per-request x-fake-* headers (or a /k/...
 * path prefix) add latency, inject errors and break streams, so one server
 * can serve many tests; see README.md next to this file. The same server is a
 * strict Azure OpenAI (here), Anthropic (fake_anthropic.c) and Gemini
 * (fake_gemini.c) stand-in.
 */
#include "fake.h"

#include <ctype.h>
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
#include <civetweb.h>
#include <cjson/cJSON.h>

#define MAX_BODY (16L * 1024 * 1024)
#define MAX_DELAY_MS 3600000L

struct fake_options fake_opt = {
	.listen = "127.0.0.1:0",
	.completion_tokens = 16,
	.threads = 64,
	.keep_alive_ms = 5000,
};

static atomic_int stopping;
static atomic_ullong stat_requests;
static atomic_ullong stat_chat;
static atomic_ullong stat_embeddings;
static atomic_ullong stat_anthropic;
static atomic_ullong stat_gemini;
static atomic_ullong stat_azure;
static atomic_ullong next_id;

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
	struct fake_reply reply; /* the content, when ncalls is 0 */
	char *text;              /* owned: reply.text when it echoes a tool result */
	int ncalls;              /* > 0: tool calls instead of content */
	const char *tool;        /* the function they call */
	unsigned long long n;    /* the answer's number, in the call ids */
};

#define MAX_CALLS 2
static const char *const call_cities[MAX_CALLS] = { "Paris", "Tokyo" };

enum route {
	R_NONE,
	R_CHAT,
	R_EMBEDDINGS,
	R_MODELS,
	R_MODEL,
	R_ANTHROPIC,
	R_ANTHROPIC_NONE,
	R_GEMINI,
	R_GEMINI_NONE,
	R_AZURE_CHAT,
	R_AZURE_EMBEDDINGS,
	R_AZURE_NONE,
};

/* Whose error shape a route answers in. */
enum family { F_OPENAI, F_ANTHROPIC, F_GEMINI, F_AZURE };

#define AZURE_DENIED                                                                         \
	"Access denied due to invalid subscription key or wrong API endpoint. Make sure to " \
	"provide a valid key for an active subscription and use a correct regional API "     \
	"endpoint for your resource."

static const char *const model_ids[] = {
	"gpt-4o",
	"gpt-4o-mini",
	"text-embedding-3-small",
	"fake-model",
};

/* Sleep ms milliseconds in short slices; -1 as soon as the server is stopping. */
int fake_nap(long ms)
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
int fake_json_long(const cJSON *item, long min, long max, long *out)
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

/* Every knob: its name after x-fake- in a header and in a /k/ path prefix, its name
 * in an x_fake body object, its range and its field. */
static const struct knob_def {
	const char *name;
	const char *body_name;
	long min, max;
	size_t off;
	int path_only;
} knob_defs[] = {
	{ "latency-ms", "latency_ms", 0, MAX_DELAY_MS, offsetof(struct knobs, latency_ms), 0 },
	{ "chunks", "chunks", 1, FAKE_MAX_COMPLETION_TOKENS, offsetof(struct knobs, chunks), 0 },
	{ "chunk-interval-ms", "chunk_interval_ms", 0, MAX_DELAY_MS,
	  offsetof(struct knobs, chunk_interval_ms), 0 },
	{ "status", "status", 200, 599, offsetof(struct knobs, status), 0 },
	{ "break-after", "break_after", 0, FAKE_MAX_COMPLETION_TOKENS,
	  offsetof(struct knobs, break_after), 0 },
	{ "completion-tokens", "completion_tokens", 0, FAKE_MAX_COMPLETION_TOKENS,
	  offsetof(struct knobs, completion_tokens), 0 },
	{ "cached-tokens", "cached_tokens", 0, FAKE_MAX_COUNT,
	  offsetof(struct knobs, cached_tokens), 0 },
	{ "no-usage", "no_usage", 0, 1, offsetof(struct knobs, no_usage), 0 },
	{ "echo-body", "echo_body", 0, 1, offsetof(struct knobs, echo_body), 0 },
	{ "usage-every-chunk", "usage_every_chunk", 0, 1, offsetof(struct knobs, usage_every_chunk),
	  0 },
	{ "cache-read", "cache_read", 0, FAKE_MAX_COUNT, offsetof(struct knobs, cache_read), 0 },
	{ "cache-write", "cache_write", 0, FAKE_MAX_COUNT, offsetof(struct knobs, cache_write), 0 },
	{ "thoughts", "thoughts", 0, FAKE_MAX_COUNT, offsetof(struct knobs, thoughts), 0 },
	{ "context-window", "context_window", 1, FAKE_MAX_COUNT,
	  offsetof(struct knobs, context_window), 0 },
	{ "fail-first", NULL, 1, FAKE_MAX_COUNT, offsetof(struct knobs, fail_first), 1 },
};

#define N_KNOBS (sizeof(knob_defs) / sizeof(knob_defs[0]))

static long *knob_field(struct knobs *k, size_t i)
{
	return (long *)((char *)k + knob_defs[i].off);
}

/* status is 0 (normal), 200 (normal) or 400-599. */
static int status_ok(struct knobs *k)
{
	if (k->status != 0 && k->status != 200 && k->status < 400)
		return -1;
	if (k->status == 200)
		k->status = 0;
	return 0;
}

/* Fill k from the request headers; returns the name of a bad header, or NULL. */
static const char *knobs_parse(struct mg_connection *conn, struct knobs *k, char *bad,
			       size_t badsize)
{
	const char *v;
	char name[64];
	size_t i;

	memset(k, 0, sizeof(*k));
	k->latency_ms = fake_opt.latency_ms;
	k->chunks = fake_opt.chunks;
	k->chunk_interval_ms = fake_opt.chunk_interval_ms;
	k->break_after = -1;
	k->completion_tokens = -1;
	for (i = 0; i < N_KNOBS; i++) {
		if (knob_defs[i].path_only)
			continue;
		snprintf(name, sizeof(name), "x-fake-%s", knob_defs[i].name);
		v = mg_get_header(conn, name);
		if (v && parse_long(v, knob_defs[i].min, knob_defs[i].max, knob_field(k, i)))
			break;
		if (strcmp(knob_defs[i].name, "status") == 0 && status_ok(k))
			break;
	}
	if (i == N_KNOBS)
		return NULL;
	snprintf(bad, badsize, "x-fake-%s", knob_defs[i].name);
	return bad;
}

/* Override k from a /k/ path prefix: seg (len bytes) is name=value[,name=value...] with
 * the header names minus x-fake-, and tag=WORD (no effect but a prefix of its own for
 * fail-first). Returns the bad knob (copied into bad), or NULL. */
static const char *knobs_from_path(const char *seg, size_t len, struct knobs *k, char *bad,
				   size_t badsize)
{
	const char *end = seg + len, *item, *comma, *eq;
	char name[64], val[64];
	size_t i, nlen, vlen;

	for (item = seg; item; item = comma == end ? NULL : comma + 1) {
		comma = memchr(item, ',', (size_t)(end - item));
		if (!comma)
			comma = end;
		eq = memchr(item, '=', (size_t)(comma - item));
		nlen = (size_t)((eq ? eq : comma) - item);
		snprintf(bad, badsize, "%.*s", (int)(nlen < 40 ? nlen : 40), item);
		if (!eq || nlen >= sizeof(name))
			return bad;
		memcpy(name, item, nlen);
		name[nlen] = '\0';
		vlen = (size_t)(comma - eq - 1);
		if (vlen == 0 || vlen >= sizeof(val))
			return bad;
		memcpy(val, eq + 1, vlen);
		val[vlen] = '\0';
		if (strcmp(name, "tag") == 0) {
			if (strspn(val,
				   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				   "-_.") != vlen)
				return bad;
			continue;
		}
		for (i = 0; i < N_KNOBS; i++)
			if (strcmp(name, knob_defs[i].name) == 0)
				break;
		if (i == N_KNOBS ||
		    parse_long(val, knob_defs[i].min, knob_defs[i].max, knob_field(k, i)))
			return bad;
		if (strcmp(name, "status") == 0 && status_ok(k))
			return bad;
	}
	return NULL;
}

/* Override k from an optional `x_fake` object in the request body, with the
 * header names minus the prefix and '_' for '-': {"status":500,
 * "break_after":3, "chunks":10, "chunk_interval_ms":25, "latency_ms":50,
 * "completion_tokens":N, "cached_tokens":N, "no_usage":1, "echo_body":1}.
 * Returns the name of a bad field, or NULL. */
static const char *knobs_from_body(const cJSON *req, struct knobs *k)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(req, "x_fake");
	const cJSON *v;
	size_t i;

	if (!x)
		return NULL;
	if (!cJSON_IsObject(x))
		return "x_fake";
	for (i = 0; i < N_KNOBS; i++) {
		if (knob_defs[i].path_only)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(x, knob_defs[i].body_name);
		if (v && fake_json_long(v, knob_defs[i].min, knob_defs[i].max, knob_field(k, i)))
			return knob_defs[i].body_name;
	}
	if (status_ok(k))
		return "status";
	return NULL;
}

/* fail-first: how many requests each /k/ prefix has had. Never freed: a test server
 * sees a few hundred prefixes at most. */
struct prefix_count {
	struct prefix_count *next;
	unsigned long long count;
	char prefix[];
};

static pthread_mutex_t prefix_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prefix_count *prefix_counts;

/* Count one more request to the prefix; returns the new count, 0 when out of memory. */
static unsigned long long prefix_bump(const char *seg, size_t len)
{
	struct prefix_count *p;
	unsigned long long n = 0;

	pthread_mutex_lock(&prefix_lock);
	for (p = prefix_counts; p; p = p->next)
		if (strlen(p->prefix) == len && memcmp(p->prefix, seg, len) == 0)
			break;
	if (!p) {
		p = malloc(sizeof(*p) + len + 1);
		if (p) {
			p->count = 0;
			memcpy(p->prefix, seg, len);
			p->prefix[len] = '\0';
			p->next = prefix_counts;
			prefix_counts = p;
		}
	}
	if (p)
		n = ++p->count;
	pthread_mutex_unlock(&prefix_lock);
	return n;
}

long fake_status(const struct knobs *k)
{
	if (k->fail_first <= 0 || !k->prefix)
		return k->status;
	if (prefix_bump(k->prefix, k->prefix_len) <= (unsigned long long)k->fail_first)
		return k->status ? k->status : 503;
	return 0;
}

/* Set when this answer is the connection's last (no_keep_alive). */
static __thread int tls_closing;

void fake_no_keep_alive(struct mg_connection *conn)
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
		fake_no_keep_alive(conn);
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
		fake_no_keep_alive(conn);
		return 500;
	}
	if (len)
		memcpy(out + n, body, len);
	if (mg_write(conn, out, (size_t)n + len) != (int)((size_t)n + len))
		fake_no_keep_alive(conn);
	free(out);
	return status;
}

/* extra: more header lines, each ending in CRLF, at most 400 bytes. */
static int send_body(struct mg_connection *conn, int status, const char *content_type,
		     const char *extra, const char *body, size_t len)
{
	char head[512];

	snprintf(head, sizeof(head), "%.400sContent-Length: %zu\r\n", extra, len);
	if (strcmp(mg_get_request_info(conn)->request_method, "HEAD") == 0)
		len = 0;
	return send_answer(conn, status, content_type, head, body, len);
}

int fake_send_json(struct mg_connection *conn, int status, const cJSON *body, const char *extra)
{
	static const char oom[] =
		"{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
		"\"code\":null,\"param\":null}}";
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	if (!text)
		return send_body(conn, 500, "application/json", "", oom, sizeof(oom) - 1);
	send_body(conn, status, "application/json", extra, text, strlen(text));
	cJSON_free(text);
	return status;
}

static int send_json(struct mg_connection *conn, int status, const cJSON *body)
{
	return fake_send_json(conn, status, body, "");
}

/* The OpenAI error envelope; 4xx are invalid_request_error, the rest server_error.
 * extra: more header lines. */
static int send_error_extra(struct mg_connection *conn, int status, const char *message,
			    const char *param, const char *code, const char *extra)
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
	fake_send_json(conn, err ? status : 500, root, extra);
	cJSON_Delete(root);
	return status;
}

static int send_error(struct mg_connection *conn, int status, const char *message,
		      const char *param, const char *code)
{
	return send_error_extra(conn, status, message, param, code, "");
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
char *fake_words(long long from, long long to)
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
void fake_add_item(cJSON *obj, const char *name, cJSON *item)
{
	if (!cJSON_AddItemToObject(obj, name, item))
		cJSON_Delete(item);
}

void fake_push_item(cJSON *array, cJSON *item)
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
		fake_add_item(root, "fake_request", cJSON_Duplicate(echo, 1));
}

/* One chat.completion.chunk with a single choice whose delta is delta (taken);
 * content: the delta carries content. finish NULL is a null finish_reason. */
static char *chunk_print_delta(const struct chat_plan *p, cJSON *delta, int content,
			       const char *finish, int first)
{
	cJSON *root = chat_root(p, "chat.completion.chunk");
	cJSON *choice = add_choice(root);
	char *out;

	fake_add_item(choice, "delta", delta);
	cJSON_AddNullToObject(choice, "logprobs");
	if (finish)
		cJSON_AddStringToObject(choice, "finish_reason", finish);
	else
		cJSON_AddNullToObject(choice, "finish_reason");
	/* As OpenAI does: with include_usage every chunk but the last has usage
	 * null. Some servers (vLLM's continuous usage stats) put the usage so far
	 * in every content chunk instead. */
	if (p->with_usage && content && p->usage_so_far >= 0)
		fake_add_item(root, "usage",
			      usage_new(p->prompt_tokens, p->usage_so_far, p->cached_tokens));
	else if (p->with_usage)
		cJSON_AddNullToObject(root, "usage");
	if (first)
		add_echo(root, p->echo);
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* One chat.completion.chunk with a single choice. role and content NULL leave
 * them out of the delta; finish NULL is a null finish_reason. */
static char *chunk_print(const struct chat_plan *p, const char *role, const char *content,
			 const char *finish, int first)
{
	cJSON *delta = cJSON_CreateObject();

	if (role)
		cJSON_AddStringToObject(delta, "role", role);
	if (content)
		cJSON_AddStringToObject(delta, "content", content);
	return chunk_print_delta(p, delta, content != NULL, finish, first);
}

/* Tool call i: {"id","type":"function","function":{"name","arguments"}}; in a stream
 * (stream set) with its index, the head (head set) with id, type and name, a later
 * piece with only arguments. */
static cJSON *tool_call_new(const struct chat_plan *p, int i, int stream, int head,
			    const char *args)
{
	cJSON *call = cJSON_CreateObject(), *fn;
	char id[64];

	if (stream)
		cJSON_AddNumberToObject(call, "index", i);
	if (head) {
		snprintf(id, sizeof(id), "call_fake_%llu_%d", p->n, i);
		cJSON_AddStringToObject(call, "id", id);
		cJSON_AddStringToObject(call, "type", "function");
	}
	fn = cJSON_AddObjectToObject(call, "function");
	if (head)
		cJSON_AddStringToObject(fn, "name", p->tool);
	cJSON_AddStringToObject(fn, "arguments", args);
	return call;
}

/* Call i's arguments: {"city":"Paris"} (16 bytes, as on the native routes). */
static void call_args(int i, char *out, size_t size)
{
	snprintf(out, size, "{\"city\":\"%s\"}", call_cities[i]);
}

/* A chunk whose delta is a piece of tool call i. */
static char *call_chunk_print(const struct chat_plan *p, int i, int head, const char *args)
{
	cJSON *delta = cJSON_CreateObject();

	fake_push_item(cJSON_AddArrayToObject(delta, "tool_calls"),
		       tool_call_new(p, i, 1, head, args));
	return chunk_print_delta(p, delta, 0, NULL, 0);
}

static char *usage_chunk_print(const struct chat_plan *p)
{
	cJSON *root = chat_root(p, "chat.completion.chunk");
	char *out;

	cJSON_AddArrayToObject(root, "choices");
	fake_add_item(root, "usage",
		      usage_new(p->prompt_tokens, p->completion_tokens, p->cached_tokens));
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

void fake_sse_begin(struct sse *s, struct mg_connection *conn)
{
	s->conn = conn;
	s->chunked = strcmp(mg_get_request_info(conn)->http_version, "1.1") == 0;
	if (!s->chunked)
		fake_no_keep_alive(conn);
	send_answer(conn, 200, "text/event-stream",
		    s->chunked ? "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n" :
				 "Cache-Control: no-cache\r\n",
		    NULL, 0);
}

int fake_sse_write(struct sse *s, const char *text, size_t n)
{
	size_t cap = n + 32;
	char *buf = malloc(cap);
	int len = 0, rc = -1;

	if (!buf)
		return -1;
	if (s->chunked)
		len = snprintf(buf, cap, "%zx\r\n", n);
	memcpy(buf + len, text, n);
	len += (int)n;
	if (s->chunked) {
		memcpy(buf + len, "\r\n", 2);
		len += 2;
	}
	if (mg_write(s->conn, buf, (size_t)len) == len)
		rc = 0;
	free(buf);
	return rc;
}

int fake_sse_end(struct sse *s)
{
	if (s->chunked && mg_write(s->conn, "0\r\n\r\n", 5) != 5)
		return -1;
	return 0;
}

/* One "data: ...\n\n" event in a single write, so it leaves at once. */
static int sse_send(struct sse *s, const char *data)
{
	size_t n = strlen(data), cap = n + 16;
	char *buf = malloc(cap);
	int len, rc = -1;

	if (!buf)
		return -1;
	len = snprintf(buf, cap, "data: %s\n\n", data);
	if (len > 0)
		rc = fake_sse_write(s, buf, (size_t)len);
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

/* The tool calls of a stream: each call's head, then its arguments in 2 pieces (or
 * x-fake-chunks). *sent counts the pieces, as content chunks for break_after. 0, or -1
 * when the stream ends here. */
static int stream_calls(struct sse *s, const struct chat_plan *p, const struct knobs *k,
			long long *sent)
{
	struct fake_reply r;
	char args[32], *piece;
	long c, n;
	int i, rc;

	for (i = 0; i < p->ncalls; i++) {
		call_args(i, args, sizeof(args));
		if (sse_emit(s, call_chunk_print(p, i, 1, "")))
			return -1;
		r.text = args;
		r.tokens = (long)strlen(args);
		n = fake_reply_chunks(&r, k->chunks > 0 ? k->chunks : 2);
		for (c = 0; c < n; c++) {
			if ((*sent)++ == k->break_after || fake_nap(k->chunk_interval_ms))
				return -1;
			piece = fake_reply_piece(&r, c, n);
			rc = sse_emit(s, piece ? call_chunk_print(p, i, 0, piece) : NULL);
			free(piece);
			if (rc)
				return -1;
		}
	}
	return 0;
}

static int stream_chat(struct mg_connection *conn, const struct chat_plan *p, const struct knobs *k)
{
	struct sse s;
	long long n = p->completion_tokens, nchunks, c, sent = 0;
	cJSON *delta;
	char *text;
	int rc, done = 0;

	fake_sse_begin(&s, conn);
	if (p->ncalls) {
		delta = cJSON_CreateObject();
		cJSON_AddStringToObject(delta, "role", "assistant");
		cJSON_AddNullToObject(delta, "content");
		if (sse_emit(&s, chunk_print_delta(p, delta, 0, NULL, 1)) ||
		    stream_calls(&s, p, k, &sent))
			goto out;
	} else {
		nchunks = fake_reply_chunks(&p->reply, k->chunks);
		if (sse_emit(&s, chunk_print(p, "assistant", "", NULL, 1)))
			goto out;
		for (c = 0; c < nchunks; c++) {
			struct chat_plan q = *p;

			if (c == k->break_after || fake_nap(k->chunk_interval_ms))
				goto out;
			text = fake_reply_piece(&p->reply, (long)c, (long)nchunks);
			q.usage_so_far = k->usage_every_chunk ? (c + 1) * n / nchunks : -1;
			rc = sse_emit(&s, text ? chunk_print(&q, NULL, text, NULL, 0) : NULL);
			free(text);
			if (rc)
				goto out;
		}
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
	if (fake_sse_end(&s))
		goto out;
	done = 1;
out:
	/* Unfinished: close the connection mid-body rather than end the chunked body. */
	if (!done)
		fake_no_keep_alive(conn);
	return 200;
}

static int reply_chat(struct mg_connection *conn, const struct chat_plan *p)
{
	cJSON *root = chat_root(p, "chat.completion");
	cJSON *choice = add_choice(root);
	cJSON *msg, *calls;
	char *text = p->ncalls ? NULL : fake_reply_text(&p->reply), args[32];
	int status, i;

	if (!text && !p->ncalls) {
		status = send_error(conn, 500, "out of memory", NULL, NULL);
		goto out;
	}
	msg = cJSON_AddObjectToObject(choice, "message");
	cJSON_AddStringToObject(msg, "role", "assistant");
	if (text) {
		cJSON_AddStringToObject(msg, "content", text);
	} else {
		cJSON_AddNullToObject(msg, "content");
		calls = cJSON_AddArrayToObject(msg, "tool_calls");
		for (i = 0; i < p->ncalls; i++) {
			call_args(i, args, sizeof(args));
			fake_push_item(calls, tool_call_new(p, i, 0, 1, args));
		}
	}
	cJSON_AddNullToObject(msg, "refusal");
	cJSON_AddNullToObject(choice, "logprobs");
	cJSON_AddStringToObject(choice, "finish_reason", p->finish_reason);
	if (p->with_usage)
		fake_add_item(root, "usage",
			      usage_new(p->prompt_tokens, p->completion_tokens, p->cached_tokens));
	add_echo(root, p->echo);
	status = send_json(conn, 200, root);
out:
	cJSON_Delete(root);
	free(text);
	return status;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

static const char *role_of(const cJSON *m)
{
	const cJSON *r = member(m, "role");

	return cJSON_IsString(r) ? r->valuestring : "";
}

/* Whether a message's content (a string or text parts) contains word. */
static int says(const cJSON *content, const char *word)
{
	const cJSON *part, *text;

	if (cJSON_IsString(content))
		return fake_has_word(content->valuestring, word);
	cJSON_ArrayForEach(part, (cJSON_IsArray(content) ? content : NULL)) {
		text = cJSON_IsString(part) ? part : member(part, "text");
		if (cJSON_IsString(text) && fake_has_word(text->valuestring, word))
			return 1;
	}
	return 0;
}

/* Whether a tool message among those after assistant message m answers call id. */
static int answered(const cJSON *m, const char *id)
{
	const cJSON *t, *v;

	for (t = m->next; t && strcmp(role_of(t), "tool") == 0; t = t->next) {
		v = member(t, "tool_call_id");
		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
			return 1;
	}
	return 0;
}

/* Whether assistant message m made a tool call with this id. */
static int called(const cJSON *m, const char *id)
{
	const cJSON *calls = member(m, "tool_calls"), *call, *v;

	cJSON_ArrayForEach(call, (cJSON_IsArray(calls) ? calls : NULL)) {
		v = member(call, "id");
		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
			return 1;
	}
	return 0;
}

/* OpenAI's tool rules: tools are functions with names; a tool message answers a call of
 * the assistant message before its run of tool messages, and every call is answered.
 * 0, or -1 with msg and param set. */
static int check_tools(const cJSON *req, const cJSON *messages, char *msg, size_t size, char *param,
		       size_t psize)
{
	const cJSON *tools = member(req, "tools"), *m, *calls, *call, *id, *asked = NULL;
	int i = 0;

	if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) {
		snprintf(msg, size, "Invalid type for 'tools': expected an array.");
		snprintf(param, psize, "tools");
		return -1;
	}
	cJSON_ArrayForEach(m, (cJSON_IsArray(tools) ? tools : NULL)) {
		if (!cJSON_IsString(member(member(m, "function"), "name"))) {
			snprintf(msg, size,
				 "Missing required parameter: 'tools[%d].function.name'.", i);
			snprintf(param, psize, "tools[%d].function.name", i);
			return -1;
		}
		i++;
	}
	i = 0;
	cJSON_ArrayForEach(m, messages) {
		if (strcmp(role_of(m), "tool") == 0) {
			id = member(m, "tool_call_id");
			if (!cJSON_IsString(id)) {
				snprintf(msg, size,
					 "Missing parameter 'tool_call_id': "
					 "messages with role 'tool' "
					 "must have a 'tool_call_id'.");
				snprintf(param, psize, "messages.[%d].tool_call_id", i);
				return -1;
			}
			if (!asked || !called(asked, id->valuestring)) {
				snprintf(msg, size,
					 "Invalid parameter: messages with role 'tool' must be a "
					 "response to a preceeding message with 'tool_calls'.");
				snprintf(param, psize, "messages.[%d].role", i);
				return -1;
			}
			i++;
			continue;
		}
		asked = NULL;
		calls = member(m, "tool_calls");
		if (strcmp(role_of(m), "assistant") == 0 && cJSON_IsArray(calls) && calls->child)
			asked = m;
		cJSON_ArrayForEach(call, (asked ? calls : NULL)) {
			id = member(call, "id");
			if (!cJSON_IsString(id)) {
				snprintf(msg, size,
					 "Missing required parameter: "
					 "'messages.[%d].tool_calls.id'.",
					 i);
				snprintf(param, psize, "messages.[%d].tool_calls.id", i);
				return -1;
			}
			if (!answered(m, id->valuestring)) {
				snprintf(msg, size,
					 "An assistant message with 'tool_calls' "
					 "must be followed by "
					 "tool messages responding to each "
					 "'tool_call_id'. The following "
					 "tool_call_ids did not have response messages: %.100s",
					 id->valuestring);
				snprintf(param, psize, "messages.[%d].role", i);
				return -1;
			}
		}
		i++;
	}
	return 0;
}

/* "result: " and the content of the first tool message of the run that ends messages.
 * Caller frees; NULL when out of memory. */
static char *tool_result(const cJSON *messages)
{
	const cJSON *first = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
	const cJSON *content, *part, *text;
	size_t cap, len;
	char *out;

	while (first != messages->child && strcmp(role_of(first->prev), "tool") == 0)
		first = first->prev;
	content = member(first, "content");
	cap = (size_t)content_bytes(content) + 9;
	out = malloc(cap);
	if (!out)
		return NULL;
	len = (size_t)snprintf(out, cap, "result: ");
	if (cJSON_IsString(content)) {
		snprintf(out + len, cap - len, "%s", content->valuestring);
		return out;
	}
	cJSON_ArrayForEach(part, (cJSON_IsArray(content) ? content : NULL)) {
		text = cJSON_IsString(part) ? part : member(part, "text");
		if (cJSON_IsString(text))
			len += (size_t)snprintf(out + len, cap - len, "%s", text->valuestring);
	}
	return out;
}

/* The function the answer calls, or NULL for none: with tools and tool_choice not
 * "none", the named one of a tool_choice {"type":"function"}, else the first tool when
 * tool_choice is "required" or the last message is the user's and says "weather". */
static const char *wanted_tool(const cJSON *req, const cJSON *last)
{
	const cJSON *tools = member(req, "tools"), *tc = member(req, "tool_choice"), *name;

	name = member(member(cJSON_GetArrayItem(tools, 0), "function"), "name");
	if (!cJSON_IsArray(tools) || !cJSON_IsString(name))
		return NULL;
	if (cJSON_IsString(tc) && strcmp(tc->valuestring, "none") == 0)
		return NULL;
	if (cJSON_IsString(member(member(tc, "function"), "name")))
		return member(member(tc, "function"), "name")->valuestring;
	if (cJSON_IsString(tc) && strcmp(tc->valuestring, "required") == 0)
		return name->valuestring;
	if (strcmp(role_of(last), "user") == 0 && says(member(last, "content"), "weather"))
		return name->valuestring;
	return NULL;
}

static int handle_chat(struct mg_connection *conn, const cJSON *req, const struct knobs *k)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
	const cJSON *limit_item = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
	const char *limit_name = "max_completion_tokens";
	const cJSON *so, *m, *last;
	struct chat_plan p;
	long limit = 0, bytes;
	int stream, status;
	char msg[400], param[64];
	size_t cut;

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
	    fake_json_long(limit_item, 1, 1000000000L, &limit))
		return send_error(conn, 400, "max tokens must be a positive integer", limit_name,
				  NULL);
	if (check_tools(req, messages, msg, sizeof(msg), param, sizeof(param)))
		return send_error(conn, 400, msg, param, NULL);

	cJSON_ArrayForEach(m, messages) {
		if (!cJSON_IsObject(m))
			return send_error(conn, 400, "each message must be an object", "messages",
					  NULL);
		bytes = content_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
		p.prompt_tokens += (bytes + 3) / 4 + 3;
	}
	if (k->context_window && p.prompt_tokens > k->context_window) {
		snprintf(msg, sizeof(msg),
			 "This model's maximum context length is %ld tokens. However, your "
			 "messages resulted in %ld tokens.",
			 k->context_window, p.prompt_tokens);
		return send_error(conn, 400, msg, "messages", "context_length_exceeded");
	}

	/* A tool result is echoed, a question about the weather answered with tool calls;
	 * else forced lengths are exact, and the reply is the default, cut at max_tokens. */
	last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
	p.n = fake_next_id();
	if (strcmp(role_of(last), "tool") == 0) {
		p.text = tool_result(messages);
		if (!p.text)
			return send_error(conn, 500, "out of memory", NULL, NULL);
		p.reply.text = p.text;
		p.completion_tokens = fake_text_tokens(strlen(p.text));
		p.finish_reason = "stop";
		if (limit && limit < p.completion_tokens) {
			p.completion_tokens = limit;
			p.finish_reason = "length";
			for (cut = (size_t)limit * 4;
			     cut && ((unsigned char)p.text[cut] & 0xC0) == 0x80; cut--)
				;
			p.text[cut] = '\0';
		}
	} else if ((p.tool = wanted_tool(req, last))) {
		p.ncalls = says(member(last, "content"), "both") ? 2 : 1;
		p.completion_tokens = p.ncalls * fake_text_tokens(strlen(p.tool) + 16);
		p.finish_reason = "tool_calls";
	} else if (k->completion_tokens >= 0) {
		p.completion_tokens = k->completion_tokens;
		p.finish_reason = limit && p.completion_tokens >= limit ? "length" : "stop";
	} else if (limit && limit < fake_opt.completion_tokens) {
		p.completion_tokens = limit;
		p.finish_reason = "length";
	} else {
		p.completion_tokens = fake_opt.completion_tokens;
		p.finish_reason = "stop";
	}

	stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"));
	so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
	so = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
	p.with_usage = !k->no_usage && (!stream || cJSON_IsTrue(so));
	snprintf(p.id, sizeof(p.id), "chatcmpl-fake-%llu", p.n);
	p.reply.tokens = p.completion_tokens;
	p.model = model->valuestring;
	p.created = (long long)time(NULL);
	p.cached_tokens = k->cached_tokens;
	p.echo = k->echo_body ? req : NULL;
	status = stream ? stream_chat(conn, &p, k) : reply_chat(conn, &p);
	free(p.text);
	return status;
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

uint64_t fake_text_hash(const char *text, size_t len)
{
	return fnv1a(0xcbf29ce484222325ULL, text, len);
}

double fake_embed_value(uint64_t hash, int i)
{
	return (double)((long)(mix64(hash + (uint64_t)i) % 2000001ULL) - 1000000L) / 1e6;
}

unsigned long long fake_next_id(void)
{
	return (unsigned long long)atomic_fetch_add(&next_id, 1) + 1;
}

long fake_text_tokens(size_t bytes)
{
	return (long)((bytes + 3) / 4);
}

int fake_has_word(const char *text, const char *word)
{
	size_t n = strlen(word), i;
	const char *t;

	for (t = text; *t; t++) {
		for (i = 0; i < n && t[i]; i++)
			if (tolower((unsigned char)t[i]) != tolower((unsigned char)word[i]))
				break;
		if (i == n)
			return 1;
	}
	return 0;
}

long fake_reply_chunks(const struct fake_reply *r, long chunks)
{
	long cap = r->text ? (long)strlen(r->text) : r->tokens;

	if (chunks <= 0)
		return r->tokens < cap ? r->tokens : cap;
	return chunks < cap ? chunks : cap;
}

/* A byte offset moved forward off the middle of a UTF-8 sequence. */
static size_t utf8_edge(const char *text, size_t off)
{
	while (text[off] && ((unsigned char)text[off] & 0xC0) == 0x80)
		off++;
	return off;
}

char *fake_reply_piece(const struct fake_reply *r, long c, long n)
{
	size_t len, from, to;
	char *out;

	if (!r->text)
		return fake_words((long long)c * r->tokens / n, (long long)(c + 1) * r->tokens / n);
	len = strlen(r->text);
	from = utf8_edge(r->text, (size_t)((unsigned long long)c * len / (unsigned long long)n));
	to = utf8_edge(r->text,
		       (size_t)((unsigned long long)(c + 1) * len / (unsigned long long)n));
	out = malloc(to - from + 1);
	if (!out)
		return NULL;
	memcpy(out, r->text + from, to - from);
	out[to - from] = '\0';
	return out;
}

char *fake_reply_text(const struct fake_reply *r)
{
	return r->text ? strdup(r->text) : fake_words(0, r->tokens);
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
	unsigned char raw[FAKE_EMBED_DIMS * 4];
	char b64[sizeof(raw) / 3 * 4 + 8];
	uint32_t bits;
	float f;
	double v;
	int i, j;

	cJSON_AddStringToObject(obj, "object", "embedding");
	cJSON_AddNumberToObject(obj, "index", index);
	if (!as_base64)
		vec = cJSON_AddArrayToObject(obj, "embedding");
	for (i = 0; i < FAKE_EMBED_DIMS; i++) {
		v = fake_embed_value(hash, i);
		if (vec) {
			fake_push_item(vec, cJSON_CreateNumber(v));
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
		*hash = fake_text_hash(item->valuestring, strlen(item->valuestring));
		*tokens = ((long)strlen(item->valuestring) + 3) / 4;
		return 0;
	}
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return -1;
	*hash = 0xcbf29ce484222325ULL;
	*tokens = 0;
	cJSON_ArrayForEach(t, item) {
		if (fake_json_long(t, 0, 0x7fffffffL, &id))
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
		fake_push_item(data, embedding_new(0, hash, as_base64));
		total = tokens;
	} else {
		cJSON_ArrayForEach(item, input) {
			if (!cJSON_IsString(item) && !cJSON_IsArray(item))
				goto bad_input;
			if (embed_input(item, &hash, &tokens))
				goto bad_input;
			fake_push_item(data, embedding_new(index++, hash, as_base64));
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
			fake_push_item(data, model_new(model_ids[i]));
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
	cJSON_AddNumberToObject(root, "anthropic", (double)atomic_load(&stat_anthropic));
	cJSON_AddNumberToObject(root, "gemini", (double)atomic_load(&stat_gemini));
	cJSON_AddNumberToObject(root, "azure", (double)atomic_load(&stat_azure));
	status = send_json(conn, 200, root);
	cJSON_Delete(root);
	return status;
}

/* The route of path; for Azure routes the deployment name goes to dep. */
static enum route route_of(const char *path, char *dep, size_t depsize)
{
	const char *d, *slash;

	if (strcmp(path, "/v1/chat/completions") == 0)
		return R_CHAT;
	if (strcmp(path, "/v1/embeddings") == 0)
		return R_EMBEDDINGS;
	if (strcmp(path, "/v1/models") == 0)
		return R_MODELS;
	if (strncmp(path, "/v1/models/", 11) == 0 && path[11] && !strchr(path + 11, '/'))
		return R_MODEL;
	if (strcmp(path, "/v1/messages") == 0)
		return R_ANTHROPIC;
	if (strncmp(path, "/v1/messages/", 13) == 0)
		return R_ANTHROPIC_NONE;
	if (strncmp(path, "/v1beta/models/", 15) == 0 && path[15] && !strchr(path + 15, '/'))
		return R_GEMINI;
	if (strncmp(path, "/v1beta/", 8) == 0)
		return R_GEMINI_NONE;
	if (strncmp(path, "/openai/", 8) != 0)
		return R_NONE;
	if (strncmp(path, "/openai/deployments/", 20) != 0)
		return R_AZURE_NONE;
	d = path + 20;
	slash = strchr(d, '/');
	if (!slash || slash == d || (size_t)(slash - d) >= depsize)
		return R_AZURE_NONE;
	snprintf(dep, depsize, "%.*s", (int)(slash - d), d);
	if (strcmp(slash, "/chat/completions") == 0)
		return R_AZURE_CHAT;
	if (strcmp(slash, "/embeddings") == 0)
		return R_AZURE_EMBEDDINGS;
	return R_AZURE_NONE;
}

static enum family family_of(enum route route)
{
	switch (route) {
	case R_ANTHROPIC:
	case R_ANTHROPIC_NONE:
		return F_ANTHROPIC;
	case R_GEMINI:
	case R_GEMINI_NONE:
		return F_GEMINI;
	case R_AZURE_CHAT:
	case R_AZURE_EMBEDDINGS:
	case R_AZURE_NONE:
		return F_AZURE;
	default:
		return F_OPENAI;
	}
}

/* Azure's own envelope for its routing and key errors: {"error":{"code":"404",...}}. */
static int azure_error(struct mg_connection *conn, int status, const char *message)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	char code[8];

	snprintf(code, sizeof(code), "%d", status);
	cJSON_AddStringToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", message);
	send_json(conn, status, root);
	cJSON_Delete(root);
	return status;
}

/* An error in the shape of the route's provider. */
static int route_error(struct mg_connection *conn, enum route route, int status,
		       const char *message, const char *param)
{
	switch (family_of(route)) {
	case F_ANTHROPIC:
		return anthropic_error(conn, status, message);
	case F_GEMINI:
		return gemini_error(conn, status, message);
	default:
		return send_error(conn, status, message, param, NULL);
	}
}

/* Azure wants its api-key header (a bearer token alone is refused) and an api-version. */
static int azure_check(struct mg_connection *conn)
{
	const char *key = mg_get_header(conn, "api-key");
	const char *qs = mg_get_request_info(conn)->query_string;
	char ver[64];

	if (!key || !*key)
		return azure_error(conn, 401, AZURE_DENIED);
	if (!qs || mg_get_var(qs, strlen(qs), "api-version", ver, sizeof(ver)) <= 0)
		return azure_error(conn, 404, "Resource not found");
	return 0;
}

/* The OpenAI routes and their Azure twins, with model = the deployment on Azure. */
static int handle_openai(struct mg_connection *conn, enum route route, const char *dep, cJSON *req,
			 const struct knobs *k, const char *path)
{
	long st = fake_status(k);

	if (st)
		return send_error_extra(conn, (int)st, "injected failure", NULL, NULL,
					route == R_AZURE_CHAT || route == R_AZURE_EMBEDDINGS ?
						(st == 429 ? "retry-after: 1\r\n" : "") :
						"");
	if (route == R_AZURE_CHAT || route == R_AZURE_EMBEDDINGS) {
		cJSON_DeleteItemFromObjectCaseSensitive(req, "model");
		cJSON_AddStringToObject(req, "model", dep);
	}
	switch (route) {
	case R_CHAT:
	case R_AZURE_CHAT:
		return handle_chat(conn, req, k);
	case R_EMBEDDINGS:
	case R_AZURE_EMBEDDINGS:
		return handle_embeddings(conn, req, k);
	case R_MODELS:
		return handle_models(conn, NULL);
	default:
		return handle_models(conn, path + 11);
	}
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri ? ri->local_uri : "/";
	const char *method = ri->request_method;
	const char *prefix = NULL, *bad;
	size_t prefix_len = 0;
	enum route route;
	enum family family;
	int post, openai_body;
	char msg[200], dep[128] = "", badbuf[64];
	struct knobs k;
	char *body = NULL;
	size_t len = 0;
	cJSON *req = NULL;
	int status;

	(void)cbdata;
	tls_closing = 0;
	/* /k/name=value,.../rest: knobs for callers that cannot send headers. */
	if (strncmp(path, "/k/", 3) == 0) {
		prefix = path + 3;
		bad = strchr(prefix, '/');
		prefix_len = bad ? (size_t)(bad - prefix) : strlen(prefix);
		path = bad ? bad : "/";
	}
	route = route_of(path, dep, sizeof(dep));
	family = family_of(route);
	post = route != R_MODELS && route != R_MODEL;
	openai_body = route == R_CHAT || route == R_EMBEDDINGS || route == R_AZURE_CHAT ||
		      route == R_AZURE_EMBEDDINGS;
	if (strcmp(path, "/health") == 0) {
		status = send_body(conn, 200, "text/plain", "", "ok", 2);
		goto out;
	}
	if (strcmp(path, "/fake/stats") == 0) {
		status = reply_stats(conn);
		goto out;
	}
	if (strncmp(path, "/v1/", 4) == 0 || strncmp(path, "/v1beta/", 8) == 0 ||
	    strncmp(path, "/openai/", 8) == 0) {
		atomic_fetch_add(&stat_requests, 1);
		if (route == R_CHAT)
			atomic_fetch_add(&stat_chat, 1);
		else if (route == R_EMBEDDINGS)
			atomic_fetch_add(&stat_embeddings, 1);
		else if (family == F_ANTHROPIC)
			atomic_fetch_add(&stat_anthropic, 1);
		else if (family == F_GEMINI)
			atomic_fetch_add(&stat_gemini, 1);
		else if (family == F_AZURE)
			atomic_fetch_add(&stat_azure, 1);
	}
	status = read_body(conn, &body, &len);
	if (status) {
		fake_no_keep_alive(conn);
		status = route_error(conn, route, status,
				     status == 413 ? "request body too large" :
						     "could not read the request body",
				     NULL);
		goto out;
	}
	if (route == R_NONE) {
		snprintf(msg, sizeof(msg), "Unknown request URL: %s %.100s", method, path);
		status = send_error(conn, 404, msg, NULL, "unknown_url");
		goto out;
	}
	if (route == R_ANTHROPIC_NONE || route == R_GEMINI_NONE) {
		status = route_error(conn, route, 404,
				     route == R_GEMINI_NONE ? "Requested entity was not found." :
							      "Not Found",
				     NULL);
		goto out;
	}
	if (route == R_AZURE_NONE) {
		status = azure_error(conn, 404, "Resource not found");
		goto out;
	}
	if (strcmp(method, post ? "POST" : "GET") != 0) {
		snprintf(msg, sizeof(msg), "Method %s not allowed on %.100s", method, path);
		status = route_error(conn, route, 405, msg, NULL);
		goto out;
	}
	bad = knobs_parse(conn, &k, badbuf, sizeof(badbuf));
	if (bad) {
		snprintf(msg, sizeof(msg), "invalid %s header", bad);
		status = route_error(conn, route, 400, msg, bad);
		goto out;
	}
	if (prefix && knobs_from_path(prefix, prefix_len, &k, badbuf, sizeof(badbuf))) {
		snprintf(msg, sizeof(msg), "invalid knob '%s' in the /k/ path prefix", badbuf);
		status = route_error(conn, route, 400, msg, NULL);
		goto out;
	}
	k.prefix = prefix;
	k.prefix_len = prefix_len;
	if (family == F_AZURE) {
		status = azure_check(conn);
		if (status)
			goto out;
	}
	if (openai_body) {
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
	if (fake_nap(k.latency_ms)) {
		fake_no_keep_alive(conn);
		status = 503;
		goto out;
	}
	if (family == F_ANTHROPIC)
		status = anthropic_handle(conn, body, &k);
	else if (family == F_GEMINI)
		status = gemini_handle(conn, path + 15, body, &k);
	else
		status = handle_openai(conn, route, dep, req, &k, path);
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
		   "\"listening on HOST:PORT\". See README.md for the x-fake-* headers,\n"
		   "the /k/ path knobs and the Anthropic, Gemini and Azure routes.\n");
}

/* 0 to run, 1 to exit successfully (--help), -1 on a usage error. */
static int parse_args(int argc, char **argv)
{
	static const struct {
		const char *name;
		long *val;
		long min, max;
	} flags[] = {
		{ "--latency-ms", &fake_opt.latency_ms, 0, MAX_DELAY_MS },
		{ "--threads", &fake_opt.threads, 1, 4096 },
		{ "--chunks", &fake_opt.chunks, 0, FAKE_MAX_COMPLETION_TOKENS },
		{ "--chunk-interval-ms", &fake_opt.chunk_interval_ms, 0, MAX_DELAY_MS },
		{ "--completion-tokens", &fake_opt.completion_tokens, 0,
		  FAKE_MAX_COMPLETION_TOKENS },
		{ "--keep-alive-ms", &fake_opt.keep_alive_ms, 0, 3600000L },
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
			if (!*val || strlen(val) + 11 >= sizeof(fake_opt.listen))
				goto bad;
			snprintf(fake_opt.listen, sizeof(fake_opt.listen), "%s%s",
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
		fake_opt.listen,
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
	snprintf(threads, sizeof(threads), "%ld", fake_opt.threads);
	snprintf(keep_alive, sizeof(keep_alive), "%ld", fake_opt.keep_alive_ms);

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
		fprintf(stderr, "fake_upstream: cannot listen on %s: %s\n", fake_opt.listen,
			errtext);
		goto out;
	}
	mg_set_request_handler(ctx, "/", dispatch, NULL);
	if (mg_get_server_ports(ctx, 4, ports) < 1) {
		fprintf(stderr, "fake_upstream: no listening port\n");
		goto out;
	}
	hostlen = (int)(strrchr(fake_opt.listen, ':') - fake_opt.listen);
	printf("listening on %.*s:%d\n", hostlen, fake_opt.listen, ports[0].port);
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
