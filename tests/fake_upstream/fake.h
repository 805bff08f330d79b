/* fake.h - what the parts of fake_upstream share: options, knobs, answers and streams.
 *
 * fake_upstream.c owns the server, the routing, the knobs (headers, path prefixes, the
 * x_fake body object, the fail-first counters) and the OpenAI and Azure routes.
 * fake_anthropic.c and fake_gemini.c each own one native protocol, its strictness rules
 * and its error shape; they get the knobs already parsed and know nothing of each other.
 */
#ifndef TG_FAKE_H
#define TG_FAKE_H

#include <stddef.h>
#include <stdint.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#define FAKE_MAX_COMPLETION_TOKENS 1000000L
#define FAKE_MAX_COUNT 1000000000L
#define FAKE_EMBED_DIMS 8

struct fake_options {
	char listen[256];
	long latency_ms;
	long chunks;
	long chunk_interval_ms;
	long completion_tokens;
	long threads;
	long keep_alive_ms;
};

/* The command-line options (fake_upstream.c). */
extern struct fake_options fake_opt;

/* Per-request behaviour: the command-line defaults, then x-fake-* headers, then a
 * /k/... path prefix, then (OpenAI and Azure routes) the x_fake body object. */
struct knobs {
	long latency_ms;
	long chunks; /* 0: one content chunk per token */
	long chunk_interval_ms;
	long status;            /* 0: behave normally (fail-first already applied) */
	long break_after;       /* -1: never */
	long completion_tokens; /* -1: not forced */
	long cached_tokens;
	long no_usage;
	long echo_body;
	long usage_every_chunk; /* 1: every content chunk carries the usage so far */
	long cache_read;        /* Anthropic and Gemini: cached prompt tokens read */
	long cache_write;       /* Anthropic: prompt tokens written to the cache */
	long thoughts;          /* Gemini: thoughtsTokenCount */
	long context_window;    /* 0: none; else a chat input over it is refused as too long */
	long fail_first;        /* path only: the first N requests to the prefix fail */
	const char *prefix;     /* the /k/ knob text (not NUL-terminated), or NULL */
	size_t prefix_len;
};

/* A stream being written: chunked, or close-delimited for HTTP/1.0 clients. */
struct sse {
	struct mg_connection *conn;
	int chunked;
};

/* A reply's text: the words "tok0 tok1 ... tok<tokens-1>" when text is NULL, else text
 * (which the reply does not own). tokens is what the usage reports for it. */
struct fake_reply {
	const char *text;
	long tokens;
};

/* Sleep ms milliseconds; -1 as soon as the server is stopping. */
int fake_nap(long ms);

/* A JSON number that is a whole number in [min, max]: 0, else -1. */
int fake_json_long(const cJSON *item, long min, long max, long *out);

/* cJSON_AddItemToObject / ToArray that free the item when it cannot be added. */
void fake_add_item(cJSON *obj, const char *name, cJSON *item);
void fake_push_item(cJSON *array, cJSON *item);

/* The connection ends after this answer. */
void fake_no_keep_alive(struct mg_connection *conn);

/* Send body as JSON with status; extra is more header lines, each ending in CRLF ("" for
 * none). Returns status (500 when out of memory). */
int fake_send_json(struct mg_connection *conn, int status, const cJSON *body, const char *extra);

/* Send the head of a 200 text/event-stream answer. */
void fake_sse_begin(struct sse *s, struct mg_connection *conn);

/* Write len bytes of already framed event text in one write (one chunk): 0, else -1. */
int fake_sse_write(struct sse *s, const char *text, size_t len);

/* End the body cleanly (the zero-length chunk): 0, else -1. */
int fake_sse_end(struct sse *s);

/* "tokFROM tokFROM+1 ... tokTO-1", with a leading space unless FROM is 0, so the pieces
 * of a stream concatenate to the whole. Caller frees; NULL when out of memory. */
char *fake_words(long long from, long long to);

/* Tokens for bytes of text: ceil(bytes / 4). */
long fake_text_tokens(size_t bytes);

/* Whether text contains word, ASCII case-insensitively (as a substring). */
int fake_has_word(const char *text, const char *word);

/* How many stream pieces the reply is cut into: `chunks` (at most one per token, or per
 * byte of text), or one per token when chunks is 0. */
long fake_reply_chunks(const struct fake_reply *r, long chunks);

/* Piece c of n (0 <= c < n) of the reply; the pieces concatenate to the whole. Caller
 * frees; NULL when out of memory. */
char *fake_reply_piece(const struct fake_reply *r, long c, long n);

/* The whole reply text; caller frees. */
char *fake_reply_text(const struct fake_reply *r);

/* Embedding values: the same text gives the same values on every route. */
uint64_t fake_text_hash(const char *text, size_t len);
double fake_embed_value(uint64_t hash, int i);

/* The status to inject now (0: none). With fail-first this counts the request against its
 * /k/ prefix, so call it once, when the request would otherwise be answered. */
long fake_status(const struct knobs *k);

/* A process-wide counter for ids (msg_fake_<n>, ...). */
unsigned long long fake_next_id(void);

/* POST /v1/messages, the whole exchange: headers, body checks, knobs, answer. */
int anthropic_handle(struct mg_connection *conn, const char *body, const struct knobs *k);

/* An Anthropic error envelope with the error type of status. */
int anthropic_error(struct mg_connection *conn, int status, const char *message);

/* POST /v1beta/models/{model}:{method}; path is the part after "/v1beta/models/". */
int gemini_handle(struct mg_connection *conn, const char *path, const char *body,
		  const struct knobs *k);

/* A Google error envelope ({"error":{"code","message","status"}}) for status. */
int gemini_error(struct mg_connection *conn, int status, const char *message);

#endif
