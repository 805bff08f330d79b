/* provider.h - the provider interface: how the gateway talks to an upstream
 * of any kind through one struct of operations.
 *
 * A call's path through a provider, in the gateway's forward phase:
 *
 *   build_request   the client's OpenAI-format body -> the provider's request
 *                   (path, auth header, body)
 *   forward         send it and hand what comes back to a sink as it arrives
 *                   (HTTP through this thread's libcurl handle, or locally)
 *   parse_response  a whole 200 answer -> the OpenAI shape, with its usage
 *   parse_stream_event  one SSE event -> the OpenAI chunks it stands for
 *   extract_usage   the token usage in an object of the provider's shape
 *
 * The OpenAI-compatible kind translates nothing: its request is the client's
 * text with the model's value replaced (no re-encoding), and its answers are
 * passed on as they are (PROV_RAW). Kinds that speak another protocol build
 * their own request and hand back parsed OpenAI-shaped trees.
 *
 * This module knows the catalog's provider rows and the JSON helpers; it
 * knows nothing of HTTP requests from clients, keys, credit or the ledger.
 */
#ifndef TG_PROVIDER_H
#define TG_PROVIDER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/buf.h"

/* Token usage of one call, as the provider reported it, in the OpenAI
 * sense: prompt counts every input token, the cached reads and the cache
 * writes among them; completion counts every output token, reasoning ones
 * among them. A kind whose provider counts them apart (Anthropic's
 * input_tokens leave the cache out, Gemini's candidatesTokenCount leaves the
 * thoughts out) adds them up. */
struct prov_usage {
	int64_t prompt, cached, completion;
	int64_t cache_write; /* prompt tokens written to the provider's cache */
	int64_t reasoning;   /* completion tokens spent on reasoning */
	int have;            /* reported by the provider */
};

/* Where a forward hands what it receives. Body bytes go to on_body as they
 * arrive; on_status once the status is known. */
struct prov_sink {
	void *ud;
	/* retry_after is the answer's Retry-After header, or NULL. */
	int (*on_status)(void *ud, int status, const char *content_type, const char *retry_after);
	/* Return 0 to go on, non-zero to abort the transfer. */
	int (*on_body)(void *ud, const char *p, size_t n);
	/* Optional: what has arrived so far went to on_body and the transfer
	 * is about to wait for more (also about once a second while it waits).
	 * Non-zero aborts the transfer. */
	int (*on_idle)(void *ud);
};

enum prov_fwd_result {
	PROV_FWD_OK = 0,       /* the transfer completed */
	PROV_FWD_CONNECT = -1, /* could not connect / DNS / TLS before any response */
	PROV_FWD_TIMEOUT = -2, /* the provider timeout passed */
	PROV_FWD_BROKEN = -3,  /* the connection broke after the response started */
	PROV_FWD_ABORTED = -4, /* the sink asked to stop (client gone) */
};

enum prov_endpoint { PROV_CHAT = 0, PROV_EMBEDDINGS = 1 };

/* One call as the gateway hands it to a provider (all borrowed). */
struct prov_call {
	const struct provider *prov;
	enum prov_endpoint endpoint;
	const char *upstream_model; /* the model's name at the provider (Azure: the deployment) */
	int stream;                 /* a chat stream: usage must be asked for */
	int64_t max_tokens;         /* the output cap the gateway reserved for (> 0); a kind
				     * whose provider requires one sends this when the
				     * client gave none */
	const char *raw;            /* the client's body as sent */
	size_t raw_len;
	cJSON *req; /* the same, parsed (a provider may edit it) */
	const char *request_id;
};

#define PROV_PATH_MAX 640
#define PROV_HEADERS_MAX 2
#define PROV_HEADER_MAX 160

/* What build_request makes: the request to send. */
struct prov_request {
	char path[PROV_PATH_MAX]; /* appended to the provider's base URL, query
				   * included (e.g. "/chat/completions") */
	const char *auth_prefix;  /* header line before the provider's key, e.g.
				   * "Authorization: Bearer ", "x-api-key: " */
	/* More header lines ("anthropic-version: 2023-06-01"); "" ends them. */
	char headers[PROV_HEADERS_MAX][PROV_HEADER_MAX];
	char *body; /* cJSON_malloc'ed; free with prov_request_free */
	size_t len;
	/* When build_request returns TG_EINVAL: why the request cannot be sent
	 * to this kind (answered 400 invalid_request_error), and the request
	 * field it names ("" for none). */
	char why[200];
	char param[48];
};

/* A provider's error answer in the OpenAI shape (what map_error makes). */
struct prov_error {
	int status;        /* for the client: 400, 401, 403, 404, 429, 500, 503... */
	char type[48];     /* "invalid_request_error", "rate_limit_exceeded", ... */
	char code[48];     /* "" for null; "context_length_exceeded" when the input
			    * does not fit the model (a reason to fall back to
			    * another model) */
	char message[512]; /* the provider's own message where it gave one */
};

/* A stream's state between events (a kind that translates keeps what it
 * needs in state; it is freed by stream_free). */
struct prov_stream {
	const struct prov_call *call;
	void *state;
	struct prov_usage *usage; /* filled as usage arrives */
	int done;                 /* set by a kind whose stream ends with an event of its own
		   * (Anthropic message_stop, Gemini's last chunk): the stream
		   * ended as the protocol says, like OpenAI's [DONE] */
};

/* An answer or chunk in the OpenAI shape, handed back by the parse
 * operations. With PROV_RAW set, its text is the provider's own bytes, so a
 * caller may edit that text instead of printing the tree again. */
#define PROV_RAW 1
/* Receives each OpenAI-format chunk of a stream (the tree is the caller's
 * to keep or delete, the text is borrowed); non-zero stops the stream. */
typedef int (*prov_emit_fn)(void *ud, cJSON *chunk, const char *data, size_t len, int flags);

struct provider_ops {
	const char *kind; /* "openai", "echo" */
	int (*build_request)(const struct prov_call *c, struct prov_request *out);
	int (*forward)(const struct prov_call *c, const struct prov_request *rq,
		       struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen);
	/* A 200 answer body: *answer gets the OpenAI-shaped tree (caller deletes),
	 * *flags PROV_RAW when the body already is that; usage into *u. TG_EINVAL
	 * when the body is not an answer (not JSON, not an object). */
	int (*parse_response)(const struct prov_call *c, const char *body, size_t n, cJSON **answer,
			      int *flags, struct prov_usage *u);
	/* One event of a 200 stream (data is NUL-terminated; event is its
	 * `event:` name or NULL): calls emit for each OpenAI chunk it makes,
	 * none for an event with nothing for the client. "[DONE]" is the
	 * caller's, never passed here. Returns emit's non-zero, else 0. */
	int (*parse_stream_event)(struct prov_stream *s, const char *event, const char *data,
				  size_t len, prov_emit_fn emit, void *ud);
	/* 1 when obj (an answer or chunk of this kind) carries usage, put in *u. */
	int (*extract_usage)(const cJSON *obj, struct prov_usage *u);
	/* Optional: frees a stream's state. */
	void (*stream_free)(struct prov_stream *s);
	/* Optional: a non-200 answer (body as received, n bytes, not
	 * NUL-terminated) in the OpenAI error shape. NULL: the kind's errors
	 * already are that shape and are passed on as they came (a 4xx) or
	 * answered 502 (a 5xx). */
	void (*map_error)(const struct prov_call *c, int status, const char *body, size_t n,
			  struct prov_error *out);
};

/* The operations of a provider kind; never NULL (unknown kinds are refused
 * when the catalog is written). */
const struct provider_ops *provider_ops_for(enum provider_kind kind);

extern const struct provider_ops provider_openai;
extern const struct provider_ops provider_echo;
extern const struct provider_ops provider_anthropic;
extern const struct provider_ops provider_gemini;
extern const struct provider_ops provider_azure;

void prov_request_free(struct prov_request *rq);

/* The OpenAI-compatible kind's pieces, shared by the kinds that speak the
 * same format (echo). */
int openai_build_request(const struct prov_call *c, struct prov_request *out);
int openai_parse_response(const struct prov_call *c, const char *body, size_t n, cJSON **answer,
			  int *flags, struct prov_usage *u);
int openai_parse_stream_event(struct prov_stream *s, const char *event, const char *data,
			      size_t len, prov_emit_fn emit, void *ud);
int openai_extract_usage(const cJSON *obj, struct prov_usage *u);

/* The OpenAI type for a status with no type of its own ("invalid_request_error"
 * for 400, "authentication_error" 401, "permission_denied" 403, "not_found_error"
 * 404, "rate_limit_exceeded" 429, "server_error" 5xx; registry.c). */
const char *prov_error_type_for(int status);

/* --- the HTTP transport (http.c) --- */
/* Process-wide setup and teardown of the HTTP client library. */
int providers_init(void);
void providers_shutdown(void);
/* POST rq to the provider's base URL + rq->path through a pooled, reused
 * handle, with the provider's key after rq->auth_prefix and the
 * header lines of rq->headers. err gets a
 * message for logs and error bodies (no secrets). A prov_fwd_result. */
/* The forward operation of every HTTP kind: prov_http_post to c->prov. */
int prov_http_forward(const struct prov_call *c, const struct prov_request *rq,
		      struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen);
int prov_http_post(const struct provider *p, const struct prov_request *rq, const char *request_id,
		   struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen);

#endif
