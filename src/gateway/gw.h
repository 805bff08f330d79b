/* gw.h - the metering gateway under /v1: authentication, validation, rate
 * limits, credit reservation, forwarding (libcurl or the built-in echo
 * provider), the SSE relay, settlement and the request log.
 *
 * The per-call flow lives in gw_call.c; upstream.c talks to providers; echo.c
 * answers locally; gw_info.c serves /v1/models, /v1/key and /v1/providers.
 * web/ never includes this header and this module never includes web/.
 */
#ifndef TG_GW_H
#define TG_GW_H

#include <stdint.h>

#include "apikeys/apikeys.h"
#include "catalog/catalog.h"
#include "core/buf.h"
#include "http/http.h"
#include "ledger/ledger.h"

/* The authenticated key of the request in flight (r->key points here). */
struct gw_key {
	struct apikey k;
};

/* Called from the route table for AUTH_APIKEY routes: Bearer or x-api-key,
 * 401 in the OpenAI envelope otherwise. Sets r->key. */
int gw_authenticate(tg_req_t *r);

/* Process-wide setup and teardown (curl global state). */
int gw_init(void);
void gw_shutdown(void);
/* Per-thread cleanup (the reused curl handle); called at worker exit. */
void gw_thread_cleanup(void);

/* Handlers. */
int gw_chat_completions(tg_req_t *r);
int gw_embeddings(tg_req_t *r);
int gw_models(tg_req_t *r);
int gw_key_info(tg_req_t *r);
int gw_providers(tg_req_t *r);

/* --- internal: shared by gw_call.c, journal.c, upstream.c and echo.c --- */

/* JSON text (gw_json.c). In the object p[0..n), the value of the top-level
 * member `name`: 1 and its span [*vs, *ve), 0 when absent, -1 when the text
 * is not one object (whitespace around it allowed), a key is spelled with
 * escapes or the name occurs twice: the caller then works on the parsed
 * document instead. */
int gw_json_member(const char *p, size_t n, const char *name, size_t *vs, size_t *ve);
/* Append s as a JSON string literal. */
int gw_json_put_string(buf_t *b, const char *s);

/* Forget a client request id claimed by a call (the journal calls this once
 * the call's debit is committed). */
void gw_inflight_drop(const char *id);

struct gw_usage {
	int64_t prompt, cached, completion;
	int have; /* reported by the provider */
};

/* Where the forwarding layer hands what it receives. Body bytes go to
 * on_body as they arrive; on_status once the status is known. */
struct gw_sink {
	void *ud;
	int (*on_status)(void *ud, int status, const char *content_type);
	/* Return 0 to go on, non-zero to abort the transfer. */
	int (*on_body)(void *ud, const char *p, size_t n);
	/* Optional: what has arrived so far went to on_body and the transfer
	 * is about to wait for more (also about once a second while it waits).
	 * Non-zero aborts the transfer. */
	int (*on_idle)(void *ud);
};

enum gw_fwd_result {
	GW_FWD_OK = 0,        /* the transfer completed */
	GW_FWD_CONNECT = -1,  /* could not connect / DNS / TLS before any response */
	GW_FWD_TIMEOUT = -2,  /* the provider timeout passed */
	GW_FWD_BROKEN = -3,   /* the connection broke after the response started */
	GW_FWD_ABORTED = -4,  /* the sink asked to stop (client gone) */
};

/* POST body to provider base_url + path through this thread's reused curl
 * handle. err gets a message for logs and error bodies (no secrets). */
int upstream_post(const struct provider *p, const char *path, const char *body, size_t len,
		  const char *request_id, struct gw_sink *sink, int64_t *first_byte_us, char *err,
		  size_t errlen);

/* The echo provider: answers a chat or embeddings request (already rewritten
 * for upstream) the way an OpenAI server would, through the same sink. */
int echo_answer(const char *path, const cJSON *req, struct gw_sink *sink);

#endif
