/* gw_call.h - one call's state, shared by the phases (gw_call.c) and the
 * stream relay (gw_relay.c). Internal to the gateway.
 */
#ifndef TG_GW_CALL_H
#define TG_GW_CALL_H

#include <stdint.h>

#include "billing/billing.h"
#include "gateway/gw.h"
#include "gateway/gw_validate.h"
#include "gateway/sse.h"
#include "providers/provider.h"

struct call {
	tg_req_t *r;
	const struct apikey *key;
	const struct billing_ops *store;
	const char *endpoint; /* "chat.completions" | "embeddings" (labels, logs) */
	struct gw_parsed p;
	char model_name[CATALOG_NAME_MAX + 1]; /* as the client named it */
	struct model model;
	struct provider prov;
	const struct provider_ops *ops;
	int have_model;
	cJSON *req;
	int64_t body_bytes, max_out;
	int64_t reserve;
	struct ledger_hold hold;
	int claimed;     /* the client's request id is claimed in the store */
	int stream_slot; /* a max_streams slot is held (gateway/streams.c) */
	/* rate limits */
	struct rl_ask asks[4];
	struct rl_state rl[4];
	int nasks;
	int admitted;
	int64_t tpm_cost;
	/* routing: the deployments to try, the model's then its fallback
	 * model's, in order (routing.h) */
	struct deployment plan[2 * CATALOG_DEPLOY_MAX];
	int plan_n, plan_fb; /* entries; index of the fallback model's first */
	struct model fb_model;
	int have_fb;
	struct deployment dep; /* the one being tried */
	money_price_t price;   /* what it costs: the answering deployment's */
	int attempt;           /* 1 for the first */
	/* the provider */
	struct prov_call pc;
	struct prov_request rq;
	struct prov_stream ps;
	int up_status;
	char up_ctype[128];
	char up_retry_after[32]; /* the provider's Retry-After, "" for none */
	buf_t up_body;
	/* the relay (gw_relay.c) */
	sse_parser_t *sse;
	int relaying;    /* our 200 event-stream answer has started */
	buf_t relay;     /* events for the client not yet sent (see relay_flush) */
	int relayed_one; /* the first event went out */
	int stream_open; /* our 200 head is queued (resp_stream_start) */
	int client_gone;
	int done_seen;
	char *usage_event; /* the final usage chunk, held back until the debit is recorded */
	int64_t content_bytes;
	/* settlement */
	struct prov_usage usage;
	int64_t cost;
	int cost_known;
	int64_t first_byte_us, up_start_us, up_us;
	char err[256];
};

/* --- gw_call.c, for the relay --- */
void call_ratelimit_headers(struct call *c);
/* The cost of the usage so far (one rounding, never above the reserve). */
void call_settle(struct call *c);
/* Hand the call's record to the store; 1 when *balance_out (may be NULL)
 * holds the org's balance after the debit. */
int call_record(struct call *c, int status, int billed, int64_t *balance_out);
/* Estimated usage when the provider reported none: bytes / 4. */
void call_estimate_usage(struct call *c);
/* usage.cost, as a fixed-point number. */
void call_add_cost(struct call *c, cJSON *usage);
/* Count the content bytes of an answer or chunk (for estimates). */
void call_count_content(struct call *c, const cJSON *obj);

/* --- gw_relay.c --- */
/* The sink the provider's bytes go to (a stream relays when idle too). */
void relay_sink(struct call *c, struct prov_sink *sink);
/* The stream's end: settle, record, then the held-back usage chunk,
 * [DONE] and the end of the response. fwd is the prov_fwd_result. */
int relay_end(struct call *c, int fwd);

#endif
