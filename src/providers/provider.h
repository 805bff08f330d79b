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

/* Token usage of one call, as the provider reported it. */
struct prov_usage {
	int64_t prompt, cached, completion;
	int have; /* reported by the provider */
};

/* Where a forward hands what it receives. Body bytes go to on_body as they
 * arrive; on_status once the status is known. */
struct prov_sink {
	void *ud;
	int (*on_status)(void *ud, int status, const char *content_type);
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
	const char *upstream_model; /* the model's name at the provider */
	int stream;                 /* a chat stream: usage must be asked for */
	const char *raw;            /* the client's body as sent */
	size_t raw_len;
	cJSON *req; /* the same, parsed (a provider may edit it) */
	const char *request_id;
};

/* What build_request makes: the request to send. */
struct prov_request {
	const char *path;        /* appended to the provider's base URL */
	const char *auth_prefix; /* header line before the provider's key, e.g.
				  * "Authorization: Bearer " */
	char *body;              /* cJSON_malloc'ed; free with prov_request_free */
	size_t len;
};

/* A stream's state between events (a kind that translates keeps what it
 * needs in state; it is freed by stream_free). */
struct prov_stream {
	const struct prov_call *call;
	void *state;
	struct prov_usage *usage; /* filled as usage arrives */
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
};

/* The operations of a provider kind; never NULL (unknown kinds are refused
 * when the catalog is written). */
const struct provider_ops *provider_ops_for(enum provider_kind kind);

extern const struct provider_ops provider_openai;
extern const struct provider_ops provider_echo;

void prov_request_free(struct prov_request *rq);

/* The OpenAI-compatible kind's pieces, shared by the kinds that speak the
 * same format (echo). */
int openai_build_request(const struct prov_call *c, struct prov_request *out);
int openai_parse_response(const struct prov_call *c, const char *body, size_t n, cJSON **answer,
			  int *flags, struct prov_usage *u);
int openai_parse_stream_event(struct prov_stream *s, const char *event, const char *data,
			      size_t len, prov_emit_fn emit, void *ud);
int openai_extract_usage(const cJSON *obj, struct prov_usage *u);

/* --- the HTTP transport (http.c) --- */
/* Process-wide setup and teardown of the HTTP client library. */
int providers_init(void);
void providers_shutdown(void);
/* This thread's HTTP client handle (at worker exit). */
void providers_thread_cleanup(void);
/* POST rq to the provider's base URL + rq->path through this thread's
 * reused handle, with the provider's key after rq->auth_prefix. err gets a
 * message for logs and error bodies (no secrets). A prov_fwd_result. */
int prov_http_post(const struct provider *p, const struct prov_request *rq, const char *request_id,
		   struct prov_sink *sink, int64_t *first_byte_us, char *err, size_t errlen);

#endif
