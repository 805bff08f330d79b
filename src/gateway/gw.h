/* gw.h - the metering gateway under /v1: authentication, validation, rate
 * limits, credit reservation, forwarding through a provider (providers/),
 * the SSE relay, settlement and the request log through the money store
 * (billing/).
 *
 * The per-call flow lives in gw_call.c, its parse-and-validate phase in
 * gw_validate.c, the stream relay in gw_relay.c; gw_info.c and key_info.c
 * serve /v1/models, /v1/key and /v1/providers. web/ never includes this
 * header and this module never includes web/.
 */
#ifndef TG_GW_H
#define TG_GW_H

#include <stdint.h>

#include "apikeys/apikeys.h"
#include "core/config.h"
#include "http/http.h"

/* The authenticated key of the request in flight (r->key points here). */
struct gw_key {
	struct apikey k;
};

/* Called from the route table for AUTH_APIKEY routes: Bearer or x-api-key,
 * 401 in the OpenAI envelope otherwise. Sets r->key. */
int gw_authenticate(tg_req_t *r);

/* Process-wide setup (the providers' HTTP client, the JSON arena, the caps
 * taken from cfg, which must outlive the gateway) and teardown. */
int gw_init(const tg_config_t *cfg);
void gw_shutdown(void);
/* Per-thread cleanup (the reused HTTP client handle, the JSON arena); called
 * at worker exit. */
void gw_thread_cleanup(void);

/* Handlers. */
int gw_chat_completions(tg_req_t *r);
int gw_embeddings(tg_req_t *r);
int gw_models(tg_req_t *r);
int gw_key_info(tg_req_t *r);
int gw_providers(tg_req_t *r);

#endif
