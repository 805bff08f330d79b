/* gw_call.c - one metered call through the gateway, in named phases:
 *
 *   authenticate     the route's AUTH_APIKEY check (gw_auth.c), before the
 *                    body is read
 *   parse            read the body, check its shape (gw_validate.c)
 *   authorize model  known, enabled, allowed for the key, of the endpoint's
 *                    kind, its provider up; then the body rules it decides
 *   admit            a stream slot; the client's request id claimed
 *   rate limit       requests and estimated tokens, per key and per org
 *   hold             the worst case held against the org's credit
 *   forward          through the model's deployments in routing order
 *                    (routing.h), each through its provider's operations
 *                    (providers/provider.h), relayed as it arrives
 *                    (gw_relay.c); a deployment that fails before anything
 *                    reached the client is recorded as an attempt and the
 *                    next one tried, then the fallback model's
 *   settle           the cost of the reported (or estimated) usage
 *   record           the request row and debit handed to the money store
 *                    (billing/billing.h), which releases the hold
 *
 * A phase returns NEXT, or ANSWERED once the call is over (its answer sent
 * and its record handed over: every exit after authentication goes through
 * call_record, so none can leak credit or skip the log).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts/alerts.h"
#include "core/json.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "gateway/gw_call.h"
#include "gateway/routing.h"
#include "gateway/streams.h"
#include "metrics/metrics.h"
#include "store/db.h"

#define SSE_EVENT_MAX ((size_t)4 << 20)

enum { NEXT = 0, ANSWERED = 1 };

/* ------------------------------------------------------------- setup */

int gw_init(const tg_config_t *cfg)
{
	json_arena_install();
	gw_streams_configure(config_max_streams(cfg));
	routing_configure(cfg);
	return providers_init();
}

void gw_shutdown(void)
{
	providers_shutdown();
}

void gw_thread_cleanup(void)
{
	json_arena_thread_free();
}

/* ------------------------------------------------------------ headers */

void call_ratelimit_headers(struct call *c)
{
	static const char *const names[2][3] = {
		{ "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
		  "x-ratelimit-reset-requests" },
		{ "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
		  "x-ratelimit-reset-tokens" },
	};
	int kind, i;

	if (c->attempt > 0) {
		char v[16];

		resp_header(c->r, "X-Provider", c->prov.name);
		snprintf(v, sizeof(v), "%d", c->attempt);
		resp_header(c->r, "x-tollgate-attempts", v);
	}
	/* Per kind, report the bucket that binds first: the smallest remaining. */
	for (kind = 0; kind < 2; kind++) {
		const struct rl_state *best = NULL;
		char v[32];

		for (i = 0; i < c->nasks; i++) {
			int is_tokens = c->asks[i].scope == RL_KEY_TOKENS ||
					c->asks[i].scope == RL_ORG_TOKENS;

			if (is_tokens != kind || c->asks[i].limit_per_min <= 0)
				continue;
			if (!best || c->rl[i].remaining < best->remaining)
				best = &c->rl[i];
		}
		if (!best)
			continue;
		snprintf(v, sizeof(v), "%lld", (long long)best->limit);
		resp_header(c->r, names[kind][0], v);
		snprintf(v, sizeof(v), "%lld",
			 (long long)(best->remaining < 0 ? 0 : best->remaining));
		resp_header(c->r, names[kind][1], v);
		rl_format_duration(best->reset_ms, v);
		resp_header(c->r, names[kind][2], v);
	}
}

/* ---------------------------------------------------- settle and record */

void call_estimate_usage(struct call *c)
{
	c->usage.prompt = (c->body_bytes + 3) / 4;
	c->usage.cached = 0;
	c->usage.cache_write = 0;
	c->usage.reasoning = 0;
	c->usage.completion = (c->content_bytes + 3) / 4;
	c->usage.have = 0;
}

void call_count_content(struct call *c, const cJSON *obj)
{
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(obj, "choices"), *ch;

	cJSON_ArrayForEach(ch, choices) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
		const cJSON *t;

		if (!d)
			d = cJSON_GetObjectItemCaseSensitive(ch, "message");
		t = d ? cJSON_GetObjectItemCaseSensitive(d, "content") : NULL;
		if (cJSON_IsString(t))
			c->content_bytes += (int64_t)strlen(t->valuestring);
	}
}

void call_settle(struct call *c)
{
	int64_t cost = 0;

	if (c->cost_known)
		return;
	if (money_cost_detail(c->usage.prompt, c->usage.cached, c->usage.cache_write,
			      c->usage.completion, &c->price, &cost) != TG_OK)
		cost = c->reserve;
	if (cost > c->reserve) {
		/* Usage beyond what was reserved means the provider reported more than
		 * max_tokens allows; never debit past the hold. */
		log_warn("request %s: reported usage costs %lld, more than the %lld reserved; "
			 "debiting the reserve",
			 c->r->request_id, (long long)cost, (long long)c->reserve);
		cost = c->reserve;
	}
	c->cost = cost;
	c->cost_known = 1;
}

void call_add_cost(struct call *c, cJSON *usage)
{
	char s[MONEY_FMT_LEN];

	call_settle(c);
	money_format(c->cost, s);
	cJSON_DeleteItemFromObjectCaseSensitive(usage, "cost");
	cJSON_AddRawToObject(usage, "cost", s);
}

/* Where the billed usage came from. */
static const char *record_source(const struct call *c, int billed)
{
	return !billed ? "none" : c->usage.have ? "reported" : "estimated";
}

/* The record of the call as it ends (status, usage, cost, timings). */
static struct call_record *record_new(struct call *c, int status, int billed, int64_t cost)
{
	const char *source = record_source(c, billed);
	struct call_record *rec = calloc(1, sizeof(*rec));
	int64_t now = time_now();

	if (!rec)
		return NULL;
	rec->created_at = now;
	rec->org_id = c->key->org_id;
	rec->key_id = c->key->id;
	rec->provider_id = c->have_model ? c->prov.id : 0;
	rec->stream = c->p.stream;
	rec->status = status;
	rec->prompt = c->usage.prompt;
	rec->cached = c->usage.cached;
	rec->completion = c->usage.completion;
	rec->cache_write = c->usage.cache_write;
	rec->reasoning = c->usage.reasoning;
	rec->attempt = c->attempt > 0 ? c->attempt : 1;
	rec->cost = cost;
	rec->upstream_ms = c->up_us / 1000;
	rec->total_ms = (time_mono_us() - c->r->start_us) / 1000;
	rec->billed = billed && c->hold.active;
	/* last_used_at is shown in minutes: one write a minute is enough. */
	rec->mark_used = billed && now - c->key->last_used_at >= 60;
	snprintf(rec->request_id, sizeof(rec->request_id), "%s", c->r->request_id);
	snprintf(rec->endpoint, sizeof(rec->endpoint), "%s", c->endpoint);
	/* The model that answered: the fallback model's name when it did. */
	snprintf(rec->model, sizeof(rec->model), "%s",
		 c->have_model ? c->model.name : c->model_name);
	snprintf(rec->source, sizeof(rec->source), "%s", rec->billed ? source : "none");
	snprintf(rec->err, sizeof(rec->err), "%s", c->err);
	snprintf(rec->client, sizeof(rec->client), "%s", c->r->ri ? req_ip(c->r) : "");
	return rec;
}

/* The record reaches the store before anything more is sent: its debit
 * (when billed) and request row are durable when this returns, and the hold
 * goes with the record, counting the cost until the debit commits. */
int call_record(struct call *c, int status, int billed, int64_t *balance_out)
{
	int64_t balance = 0, cost = 0;
	struct call_record *rec;
	int known = 0;

	c->up_us = c->up_start_us ? time_mono_us() - c->up_start_us : 0;
	if (billed) {
		call_settle(c);
		cost = c->cost;
	}
	rec = record_new(c, status, billed, cost);
	if (!rec) {
		log_error("request %s: out of memory recording the call; not billed",
			  c->r->request_id);
		goto out;
	}
	if (rec->billed) {
		rec->hold = c->hold;
		c->hold.active = 0; /* the store releases it after its commit */
		/* A client's request id stays claimed until its debit is committed. */
		rec->inflight = c->claimed;
		c->claimed = 0;
	}
	known = rec->billed;
	if (c->store->record(rec) != TG_OK)
		known = 0;
	else if (known && balance_out && c->store->balance_projected(c->key->org_id, &balance))
		known = 0;
	if (!known)
		cost = 0;
out:
	c->store->release(&c->hold);
	if (c->admitted) {
		/* Tokens were taken at admission as an estimate; settle the difference
		 * (all of it back when nothing was billed). */
		int64_t actual = billed ? c->usage.prompt + c->usage.completion : 0;
		int i;

		c->admitted = 0;
		for (i = 0; i < c->nasks; i++)
			if (c->asks[i].scope == RL_KEY_TOKENS || c->asks[i].scope == RL_ORG_TOKENS)
				c->store->rl_adjust(c->asks[i].scope, c->asks[i].id,
						    c->asks[i].limit_per_min, c->tpm_cost - actual,
						    time_mono_us());
	}
	metrics_gw_call(c->endpoint, c->model.name, status, c->usage.prompt, c->usage.cached,
			c->usage.completion, cost, known ? record_source(c, billed) : "none",
			time_mono_us() - c->r->start_us, c->up_start_us ? c->up_us : -1);
	if (balance_out)
		*balance_out = balance;
	return known;
}

/* Log and answer an error that happened before anything was forwarded. */
static int call_fail(struct call *c, const struct gw_error *e)
{
	snprintf(c->err, sizeof(c->err), "%.255s", e->message);
	call_record(c, e->status, 0, NULL);
	call_ratelimit_headers(c);
	resp_error(c->r, e->status, e->type, e->code, e->message);
	return ANSWERED;
}

#define FAIL(c, status, type, code, ...)                            \
	do {                                                        \
		struct gw_error fail_e_;                            \
		gw_fail(&fail_e_, status, type, code, __VA_ARGS__); \
		return call_fail(c, &fail_e_);                      \
	} while (0)

/* ------------------------------------------------------------- answers */

/* The provider's JSON answer with the public model name and usage.cost put
 * in by editing its text; NULL when the caller must print the parsed
 * document instead. */
static char *answer_edited(struct call *c, int usage_is_object, size_t *len)
{
	const char *raw = buf_cstr(&c->up_body);
	size_t n = c->up_body.len, ms, me, us, ue, cs, ce;
	char cost[MONEY_FMT_LEN];
	struct json_edit e[2];
	int ne = 0, hm;
	char *out = NULL;

	hm = json_member(raw, n, "model", &ms, &me);
	if (hm < 0 || (hm == 1 && raw[ms] != '"'))
		return NULL;
	memset(e, 0, sizeof(e));
	if (hm == 1) {
		buf_init(&e[ne].text, 2 * CATALOG_NAME_MAX + 8);
		e[ne].start = ms;
		e[ne].end = me;
		if (json_put_string(&e[ne++].text, c->model_name))
			goto out;
	}
	if (usage_is_object) {
		size_t in;

		/* usage must be an object with no cost of its own yet. */
		if (json_member(raw, n, "usage", &us, &ue) != 1 || raw[us] != '{' ||
		    json_member(raw + us, ue - us, "cost", &cs, &ce) != 0)
			goto out;
		for (in = us + 1; in < ue && (raw[in] == ' ' || raw[in] == '\t' ||
					      raw[in] == '\r' || raw[in] == '\n');
		     in++)
			;
		money_format(c->cost, cost);
		buf_init(&e[ne].text, 64);
		e[ne].start = e[ne].end = ue - 1;
		if ((raw[in] != '}' && buf_putc(&e[ne].text, ',')) ||
		    buf_puts(&e[ne].text, "\"cost\":") || buf_puts(&e[ne].text, cost)) {
			ne++;
			goto out;
		}
		ne++;
	}
	out = json_edits_apply(raw, n, e, ne, len);
out:
	json_edits_free(e, ne);
	return out;
}

static int answer_json(struct call *c)
{
	char charged[MONEY_FMT_LEN], remaining[MONEY_FMT_LEN];
	int64_t balance = 0;
	cJSON *obj = NULL, *usage, *m;
	char *out = NULL;
	size_t out_len = 0;
	int flags = 0, known, rc;

	rc = c->ops->parse_response(&c->pc, buf_cstr(&c->up_body), c->up_body.len, &obj, &flags,
				    &c->usage);
	if (rc == TG_EPERM && obj) {
		/* The provider refused the content (a safety block) and said why
		 * in obj, an OpenAI error envelope: a 400, not billed. */
		char *text = cJSON_PrintUnformatted(obj);

		cJSON_Delete(obj);
		snprintf(c->err, sizeof(c->err), "the provider blocked the request's content");
		call_record(c, 400, 0, NULL);
		call_ratelimit_headers(c);
		if (text)
			resp_send(c->r, 400, "application/json", text, strlen(text));
		else
			resp_error(c->r, 500, "server_error", NULL, "Out of memory.");
		cJSON_free(text);
		return ANSWERED;
	}
	if (rc != TG_OK) {
		cJSON_Delete(obj);
		snprintf(c->err, sizeof(c->err),
			 "the provider answered 200 with a body that is not JSON");
		call_record(c, 502, 0, NULL);
		call_ratelimit_headers(c);
		resp_error(c->r, 502, "upstream_error", "upstream_error",
			   "The provider sent an answer that is not valid JSON.");
		return ANSWERED;
	}
	usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	if (!c->usage.have) {
		struct prov_usage est = { 0 };

		/* A kind that reports no usage may have put its own estimate in
		 * the answer (Gemini embeddings): bill what the client is shown,
		 * still marked estimated. */
		if (!(flags & PROV_RAW) && openai_extract_usage(obj, &est)) {
			c->usage = est;
			c->usage.have = 0;
		} else {
			call_count_content(c, obj);
			call_estimate_usage(c);
		}
	}
	call_settle(c);
	if (flags & PROV_RAW)
		out = answer_edited(c, cJSON_IsObject(usage), &out_len);
	if (!out) {
		m = cJSON_GetObjectItemCaseSensitive(obj, "model");
		if (cJSON_IsString(m))
			cJSON_SetValuestring(m, c->model_name);
		if (cJSON_IsObject(usage))
			call_add_cost(c, usage);
	}
	known = call_record(c, 200, 1, &balance);
	money_format(c->cost, charged);
	resp_header(c->r, "x-credits-charged", charged);
	if (known) {
		money_format(balance, remaining);
		resp_header(c->r, "x-credits-remaining", remaining);
	}
	call_ratelimit_headers(c);
	if (!out && (out = cJSON_PrintUnformatted(obj)))
		out_len = strlen(out);
	cJSON_Delete(obj);
	if (!out)
		resp_error(c->r, 500, "server_error", NULL, "Out of memory.");
	else
		resp_send(c->r, 200, "application/json", out, out_len);
	cJSON_free(out);
	return ANSWERED;
}

/* A provider error passed through (4xx) or turned into 502 (5xx and others). */
static int answer_upstream_error(struct call *c)
{
	int client_error = c->up_status >= 400 && c->up_status < 500;

	snprintf(c->err, sizeof(c->err), "provider answered HTTP %d", c->up_status);
	call_record(c, client_error ? c->up_status : 502, 0, NULL);
	call_ratelimit_headers(c);
	if (client_error) {
		resp_send(c->r, c->up_status, c->up_ctype[0] ? c->up_ctype : "application/json",
			  buf_cstr(&c->up_body), c->up_body.len);
		return ANSWERED;
	}
	{
		char msg[300];

		snprintf(msg, sizeof(msg),
			 "The provider '%s' failed with HTTP %d. You were not charged.",
			 c->prov.name, c->up_status);
		resp_error(c->r, 502, "upstream_error", "upstream_error", msg);
	}
	return ANSWERED;
}

/* ------------------------------------------------------------ phases */

static int phase_parse(struct call *c)
{
	struct gw_error e;

	c->req = req_json(c->r);
	if (!c->req) {
		/* req_json answered (400, 408 or 413). */
		snprintf(c->err, sizeof(c->err), "invalid request body");
		call_record(c, c->r->status ? c->r->status : 400, 0, NULL);
		return ANSWERED;
	}
	c->body_bytes = (int64_t)c->r->body.len;
	if (gw_parse_request(c->req, c->p.endpoint, &c->p, &e) != TG_OK)
		return call_fail(c, &e);
	snprintf(c->model_name, sizeof(c->model_name), "%s", c->p.model);
	return NEXT;
}

/* Append m's deployments whose provider is enabled to the plan, in routing
 * order; how many. */
static int plan_add(struct call *c, const struct model *m)
{
	struct deployment deps[CATALOG_DEPLOY_MAX];
	int order[CATALOG_DEPLOY_MAX], n, added = 0;

	n = catalog_gw_deployments(m, deps, CATALOG_DEPLOY_MAX);
	routing_order(deps, n, order);
	for (int i = 0; i < n && c->plan_n < (int)TG_ARRAY_LEN(c->plan); i++) {
		struct provider p;

		if (catalog_gw_provider(deps[order[i]].provider_id, &p) != TG_OK || !p.enabled)
			continue;
		c->plan[c->plan_n++] = deps[order[i]];
		added++;
	}
	return added;
}

/* The dearest price any deployment of the plan may bill at, input priced
 * at the highest of its three rates (for the hold, which must cover
 * whichever answers). */
static void plan_worst_price(const struct call *c, money_price_t *w)
{
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < c->plan_n; i++) {
		const money_price_t *p = &c->plan[i].price;
		int64_t in = p->in > p->cached_in ? p->in : p->cached_in;

		in = in > p->cache_write ? in : p->cache_write;
		w->in = in > w->in ? in : w->in;
		w->out = p->out > w->out ? p->out : w->out;
	}
	w->cached_in = w->cache_write = w->in;
}

static int phase_authorize_model(struct call *c)
{
	struct gw_error e;

	if (strlen(c->p.model) > CATALOG_NAME_MAX ||
	    catalog_gw_model(c->p.model, &c->model) != TG_OK || !c->model.enabled)
		FAIL(c, 404, "invalid_request_error", "model_not_found",
		     "The model '%.128s' does not exist. See GET /v1/models.", c->p.model);
	if (!apikey_model_allowed(c->key, c->model.name))
		FAIL(c, 403, "permission_denied", "model_not_allowed",
		     "This API key may not use the model '%s'.", c->model.name);
	if (gw_check_kind(&c->p, &c->model, &e) != TG_OK)
		return call_fail(c, &e);
	if (plan_add(c, &c->model) == 0)
		FAIL(c, 503, "upstream_error", "provider_unavailable",
		     "The provider for this model is disabled. Try again later.");
	c->plan_fb = c->plan_n;
	/* The fallback model, when the key may use it and it serves this
	 * endpoint too. */
	if (c->model.fallback_model[0] &&
	    catalog_gw_model(c->model.fallback_model, &c->fb_model) == TG_OK &&
	    c->fb_model.enabled && c->fb_model.kind == c->model.kind &&
	    apikey_model_allowed(c->key, c->fb_model.name))
		c->have_fb = plan_add(c, &c->fb_model) > 0;
	c->dep = c->plan[0];
	catalog_gw_provider(c->dep.provider_id, &c->prov);
	c->have_model = 1;
	c->ops = provider_ops_for(c->prov.kind);
	if (gw_check_body(&c->p, &c->model, &c->max_out, &e) != TG_OK)
		return call_fail(c, &e);
	return NEXT;
}

/* A stream over max_streams is refused here, before any hold is taken or the
 * provider called (logged, never billed); a client's request id that already
 * has a debit, or is in flight, is a retry (ids we make are random and
 * cannot collide). */
static int phase_admit(struct call *c)
{
	if (c->p.stream) {
		if (!gw_stream_begin()) {
			resp_header(c->r, "Retry-After", "1");
			FAIL(c, 503, "server_error", "server_busy",
			     "The gateway is at its limit of %lld open streams. Retry in a moment.",
			     (long long)gw_streams_max());
		}
		c->stream_slot = 1;
	}
	if (c->r->request_id_given) {
		int rc = c->store->claim_request(c->r->request_id);

		if (rc != TG_OK && rc != TG_ECONFLICT) {
			resp_header(c->r, "Retry-After", "1");
			FAIL(c, 503, "server_error", "store_unavailable",
			     "The gateway cannot reach its database to check this X-Request-Id; "
			     "try again.");
		}
		if (rc != TG_OK)
			FAIL(c, 409, "invalid_request_error", "duplicate_request_id",
			     "This X-Request-Id was already used for a billed request or is in "
			     "progress; send a new one for a new call.");
		c->claimed = 1;
	}
	return NEXT;
}

static int rate_limited(struct call *c)
{
	int64_t retry_ms = 0;
	int i, org, tokens;
	char v[32];

	for (i = 0; i < c->nasks; i++)
		if (c->rl[i].refused && c->rl[i].retry_after_ms > retry_ms)
			retry_ms = c->rl[i].retry_after_ms;
	for (i = 0; i < c->nasks && !c->rl[i].refused; i++)
		;
	org = i < c->nasks &&
	      (c->asks[i].scope == RL_ORG_REQUESTS || c->asks[i].scope == RL_ORG_TOKENS);
	tokens = i < c->nasks &&
		 (c->asks[i].scope == RL_KEY_TOKENS || c->asks[i].scope == RL_ORG_TOKENS);
	snprintf(v, sizeof(v), "%lld", (long long)((retry_ms + 999) / 1000));
	resp_header(c->r, "Retry-After", v);
	FAIL(c, 429, "rate_limit_exceeded", "rate_limit_exceeded",
	     "Rate limit reached for %s %s: %lld %s per minute. Retry after %lld s.",
	     org ? "the organization of key" : "key", c->key->prefix,
	     (long long)(i < c->nasks ? c->asks[i].limit_per_min : 0),
	     tokens ? "tokens" : "requests", (long long)((retry_ms + 999) / 1000));
}

/* Requests and (estimated) tokens, per key and per org; the org's limits
 * come with the key from the key cache. */
static int phase_rate_limit(struct call *c)
{
	const struct apikey *k = c->key;
	int rc;

	c->tpm_cost = (c->body_bytes + 3) / 4 + c->max_out * c->p.n;
	c->asks[0] = (struct rl_ask){ RL_KEY_REQUESTS, k->id, k->rpm, 1 };
	c->asks[1] = (struct rl_ask){ RL_KEY_TOKENS, k->id, k->tpm, c->tpm_cost };
	c->asks[2] = (struct rl_ask){ RL_ORG_REQUESTS, k->org_id, k->org_rpm, 1 };
	c->asks[3] = (struct rl_ask){ RL_ORG_TOKENS, k->org_id, k->org_tpm, c->tpm_cost };
	c->nasks = 4;
	rc = c->store->rl_admit(c->asks, c->nasks, time_mono_us(), c->rl);
	if (rc < 0) {
		/* Shared counters that cannot be read are not a pass: fail closed. */
		resp_header(c->r, "Retry-After", "1");
		FAIL(c, 503, "server_error", "store_unavailable",
		     "The gateway cannot reach its database to check this key's rate limits; "
		     "try again.");
	}
	if (!rc)
		return rate_limited(c);
	c->admitted = 1;
	return NEXT;
}

static int insufficient(struct call *c, int64_t available)
{
	char need[MONEY_FMT_LEN], have[MONEY_FMT_LEN];
	int64_t fit, balance = 0;

	money_format(c->reserve, need);
	money_format(available < 0 ? 0 : available, have);
	c->store->balance(c->key->org_id, &balance);
	fit = money_max_output_tokens(available, c->body_bytes, 0, &c->price);
	if (c->p.n > 1 && fit > 0)
		fit /= c->p.n;
	if (c->key->spend_limit > 0 && available < balance)
		FAIL(c, 402, "insufficient_quota", "insufficient_credits",
		     "This key's %s spend limit is reached: the request could cost up to %s "
		     "credits and the limit leaves %s. %s%lld%s",
		     apikey_period_name(c->key->period), need, have,
		     fit >= 1 ? "Lower max_tokens to at most " : "",
		     (long long)(fit >= 1 ? fit : 0),
		     fit >= 1 ? ", or raise the key's limit." :
				" credits fit; raise the key's limit.");
	if (fit >= 1)
		FAIL(c, 402, "insufficient_quota", "insufficient_credits",
		     "Insufficient credits: the request could cost up to %s credits but the "
		     "balance available is %s. Lower max_tokens to at most %lld, or add credits.",
		     need, have, (long long)fit);
	FAIL(c, 402, "insufficient_quota", "insufficient_credits",
	     "Insufficient credits: the request could cost up to %s credits but the balance "
	     "available is %s, too little even for max_tokens=1. Add credits.",
	     need, have);
}

/* The worst case: every body byte a prompt token, every output token used. */
static int phase_hold(struct call *c)
{
	struct hold_ask ask = { c->key->org_id, c->key->id, 0, 0, 0 };
	int64_t available = 0;
	int rc;

	plan_worst_price(c, &c->price);
	if (money_cost(c->body_bytes, 0, c->max_out * c->p.n, &c->price, &c->reserve) != TG_OK)
		FAIL(c, 400, "invalid_request_error", "invalid_value",
		     "The request's worst-case cost is too large to reserve; lower max_tokens.");
	ask.amount = c->reserve;
	if (c->key->spend_limit > 0 && c->key->period != PERIOD_NONE) {
		ask.key_limit = c->key->spend_limit;
		ask.key_since = apikey_period_start(c->key->period, time_now());
	}
	rc = c->store->hold(&ask, &c->hold, &available);
	if (rc == TG_EFUNDS)
		return insufficient(c, available);
	if (rc != TG_OK) {
		resp_header(c->r, "Retry-After", "1");
		FAIL(c, 503, "server_error", "store_unavailable",
		     "Credits could not be reserved right now: the gateway cannot reach its "
		     "database. Try again.");
	}
	return NEXT;
}

static void sleep_us(int64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

	while (us > 0 && nanosleep(&ts, &ts) != 0)
		;
}

/* What is left of an attempt that failed, before the next one. */
static void attempt_reset(struct call *c)
{
	if (c->ops && c->ops->stream_free)
		c->ops->stream_free(&c->ps);
	memset(&c->ps, 0, sizeof(c->ps));
	sse_free(c->sse);
	c->sse = NULL;
	prov_request_free(&c->rq);
	cJSON_free(c->usage_event);
	c->usage_event = NULL;
	memset(&c->usage, 0, sizeof(c->usage));
	c->up_status = 0;
	c->up_ctype[0] = c->up_retry_after[0] = c->err[0] = '\0';
	c->relaying = c->done_seen = 0;
	c->content_bytes = 0;
	c->cost_known = 0;
	c->first_byte_us = 0;
}

/* A failure of the deployment itself, before anything reached the client:
 * another deployment may answer instead. */
static int deployment_failed(const struct call *c, int fwd)
{
	if (c->relayed_one || c->client_gone || fwd == PROV_FWD_ABORTED)
		return 0;
	if (fwd != PROV_FWD_OK)
		return 1;
	return c->up_status == 408 || c->up_status == 429 || c->up_status >= 500;
}

/* The provider's error answer in the OpenAI shape: the kind's own mapping,
 * or (OpenAI-compatible kinds) its envelope read as it is, a 4xx kept and
 * anything else a 502. */
static void upstream_error(struct call *c, struct prov_error *e)
{
	const cJSON *err, *v;
	cJSON *body;

	memset(e, 0, sizeof(*e));
	if (c->ops->map_error) {
		c->ops->map_error(&c->pc, c->up_status, c->up_body.data ? c->up_body.data : "",
				  c->up_body.len, e);
		return;
	}
	e->status = c->up_status >= 400 && c->up_status < 500 ? c->up_status : 502;
	snprintf(e->type, sizeof(e->type), "%s", prov_error_type_for(e->status));
	body = json_parse(c->up_body.data ? c->up_body.data : "", c->up_body.len, NULL);
	err = cJSON_GetObjectItemCaseSensitive(body, "error");
	if ((v = cJSON_GetObjectItemCaseSensitive(err, "code")) && cJSON_IsString(v))
		snprintf(e->code, sizeof(e->code), "%s", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(err, "message")) && cJSON_IsString(v))
		snprintf(e->message, sizeof(e->message), "%s", v->valuestring);
	cJSON_Delete(body);
}

/* One row in the request log for an attempt that failed over (never
 * billed), and the deployment's health. */
static void attempt_failed(struct call *c, int status, const char *what)
{
	char note[sizeof(c->err) + 256];
	struct call_record *rec;

	routing_report(&c->dep, 0);
	metrics_gw_attempt(c->prov.name, what);
	snprintf(note, sizeof(note), "attempt %d via %.64s (%.64s) failed over: %.100s", c->attempt,
		 c->prov.name, c->dep.upstream_model, c->err[0] ? c->err : what);
	snprintf(c->err, sizeof(c->err), "%.255s", note);
	c->up_us = time_mono_us() - c->up_start_us;
	rec = record_new(c, status, 0, 0);
	if (rec)
		rec->failed_over = 1;
	if (!rec || c->store->record(rec) != TG_OK)
		log_error("request %s: attempt %d could not be logged", c->r->request_id,
			  c->attempt);
	c->err[0] = '\0';
}

/* Forward to the deployment in c->dep; the prov_fwd_result. */
static int attempt_forward(struct call *c, struct prov_sink *sink)
{
	/* The wait for the provider (a whole stream, perhaps) needs no
	 * database connection: hand this thread's back to the pool. */
	db_release();
	relay_sink(c, sink);
	c->up_start_us = time_mono_us();
	return c->ops->forward(&c->pc, &c->rq, sink, &c->first_byte_us, c->err, sizeof(c->err));
}

/* The answer when the last attempt failed: the provider's error in the
 * OpenAI shape, or ours for a transfer that failed. */
static int answer_failed(struct call *c, int fwd)
{
	struct prov_error e;

	if (fwd == PROV_FWD_TIMEOUT)
		FAIL(c, 504, "upstream_error", "upstream_timeout",
		     "The provider '%s' did not answer within %lld s. You were not charged.",
		     c->prov.name, (long long)c->prov.timeout_s);
	if (fwd != PROV_FWD_OK)
		FAIL(c, 502, "upstream_error", "upstream_error",
		     "The provider '%s' could not be reached (%s). You were not charged.",
		     c->prov.name, c->err[0] ? c->err : "connection failed");
	if (!c->ops->map_error) {
		/* OpenAI's format: a 4xx passed on as the provider wrote it (a 429
		 * with its Retry-After), anything else a 502. */
		if (c->up_status == 429)
			resp_header(c->r, "Retry-After",
				    c->up_retry_after[0] ? c->up_retry_after : "1");
		return answer_upstream_error(c);
	}
	upstream_error(c, &e);
	if (e.status == 429 || e.status == 503) {
		resp_header(c->r, "Retry-After", c->up_retry_after[0] ? c->up_retry_after : "1");
	}
	if (e.status >= 500 && !e.message[0])
		snprintf(e.message, sizeof(e.message), "The provider '%s' failed with HTTP %d.",
			 c->prov.name, c->up_status);
	snprintf(c->err, sizeof(c->err), "provider answered HTTP %d", c->up_status);
	if (!e.message[0])
		snprintf(e.message, sizeof(e.message), "The provider answered HTTP %d.",
			 c->up_status);
	{
		char msg[600];

		snprintf(msg, sizeof(msg), "%s%s", e.message,
			 e.status >= 500 ? " You were not charged." : "");
		call_record(c, e.status, 0, NULL);
		call_ratelimit_headers(c);
		resp_error(c->r, e.status, e.type, e.code[0] ? e.code : NULL, msg);
	}
	return ANSWERED;
}

/* The plan's next entry to try after index i, or -1: round after round over
 * the plan (a deployment cooling down is skipped while another is not),
 * from the fallback model's part on once to_fallback is set. */
static int plan_next(const struct call *c, int i, int to_fallback)
{
	int first = to_fallback ? c->plan_fb : 0, n = c->plan_n - first;

	if (n <= 0)
		return -1;
	if (i < first)
		i = first - 1;
	for (int k = 1; k <= n; k++) {
		int j = first + (i + k - first) % n;
		struct route_health h;

		routing_health_of(c->plan[j].model_id, c->plan[j].id, c->plan[j].provider_id,
				  c->plan[j].upstream_model, &h);
		if (!h.cooling_for_ms || k == n)
			return j;
	}
	return first;
}

static int phase_forward(struct call *c)
{
	struct prov_sink sink;
	int fwd = PROV_FWD_CONNECT, i = 0, to_fb = 0;

	for (;;) {
		const struct deployment *d = &c->plan[i];

		if (c->attempt > 0)
			attempt_reset(c);
		c->attempt++;
		c->dep = *d;
		c->price = d->price;
		if (catalog_gw_provider(d->provider_id, &c->prov) != TG_OK)
			FAIL(c, 503, "upstream_error", "provider_unavailable",
			     "The provider for this model is gone. Try again later.");
		c->ops = provider_ops_for(c->prov.kind);
		if (i >= c->plan_fb && c->have_fb)
			c->model = c->fb_model; /* billed and logged as the fallback model */
		memset(&c->rq, 0, sizeof(c->rq));
		if (c->p.stream && sse_init(&c->sse, SSE_EVENT_MAX) != TG_OK)
			FAIL(c, 500, "server_error", NULL, "Out of memory.");
		{
			struct prov_call pc = {
				.prov = &c->prov,
				.endpoint = c->p.endpoint,
				.upstream_model = c->dep.upstream_model,
				.stream = c->p.stream,
				.max_tokens = c->max_out,
				.raw = c->r->body.data,
				.raw_len = c->r->body.len,
				.req = c->req,
				.request_id = c->r->request_id,
			};
			int rc;

			c->pc = pc;
			rc = c->ops->build_request(&c->pc, &c->rq);
			if (rc == TG_EINVAL && c->rq.why[0])
				FAIL(c, 400, "invalid_request_error", "unsupported_parameter", "%s",
				     c->rq.why);
			if (rc != TG_OK)
				FAIL(c, 500, "server_error", NULL,
				     "The request could not be prepared for the provider.");
		}
		fwd = attempt_forward(c, &sink);
		if (c->relayed_one) {
			routing_report(&c->dep, fwd == PROV_FWD_OK || fwd == PROV_FWD_ABORTED);
			metrics_gw_attempt(c->prov.name, fwd == PROV_FWD_OK ? "ok" : "broken");
			relay_end(c, fwd);
			return ANSWERED;
		}
		if (!deployment_failed(c, fwd)) {
			struct prov_error e;

			/* The input does not fit this model: its fallback model may
			 * take it. */
			if (fwd == PROV_FWD_OK && c->up_status != 200 && c->have_fb && !to_fb &&
			    i < c->plan_fb && c->attempt < routing_attempts()) {
				upstream_error(c, &e);
				if (strcmp(e.code, "context_length_exceeded") == 0) {
					routing_report(&c->dep, 1);
					attempt_failed(c, e.status, "context_length_exceeded");
					to_fb = 1;
					i = c->plan_fb;
					continue;
				}
			}
			break;
		}
		{
			int next = plan_next(c, i, to_fb);

			/* A deployment that timed out is not waited on twice. */
			if (c->attempt >= routing_attempts() ||
			    c->attempt >= c->plan_n * (1 + routing_retries()) ||
			    time_mono_us() - c->r->start_us > routing_budget_us() || next < 0 ||
			    (next == i && fwd == PROV_FWD_TIMEOUT))
				break;
			i = next;
		}
		{
			int status = fwd == PROV_FWD_TIMEOUT ? 504 :
				     fwd != PROV_FWD_OK      ? 502 :
							       c->up_status;
			const char *what = fwd == PROV_FWD_TIMEOUT ? "timeout" :
					   fwd == PROV_FWD_CONNECT ? "connect" :
					   fwd != PROV_FWD_OK      ? "broken" :
					   c->up_status == 429     ? "rate_limited" :
								     "server_error";

			if (fwd == PROV_FWD_OK && !c->err[0])
				snprintf(c->err, sizeof(c->err), "provider answered HTTP %d",
					 c->up_status);
			attempt_failed(c, status, what);
			sleep_us(routing_backoff_us(c->attempt, c->up_retry_after));
		}
	}
	if (c->relaying && fwd == PROV_FWD_OK) {
		/* A whole stream with nothing for the client: still an answer. */
		routing_report(&c->dep, 1);
		metrics_gw_attempt(c->prov.name, "ok");
		relay_end(c, fwd);
		return ANSWERED;
	}
	if (fwd == PROV_FWD_OK && c->up_status == 200) {
		routing_report(&c->dep, 1);
		metrics_gw_attempt(c->prov.name, "ok");
		return answer_json(c);
	}
	if (deployment_failed(c, fwd)) {
		routing_report(&c->dep, 0);
		metrics_gw_attempt(c->prov.name, fwd == PROV_FWD_TIMEOUT ? "timeout" :
						 fwd == PROV_FWD_CONNECT ? "connect" :
						 fwd != PROV_FWD_OK      ? "broken" :
						 c->up_status == 429     ? "rate_limited" :
									   "server_error");
		if (c->relaying && fwd != PROV_FWD_OK)
			FAIL(c, 502, "upstream_error", "upstream_error",
			     "The provider '%s' broke the stream before any output (%s). You were "
			     "not charged.",
			     c->prov.name, c->err[0] ? c->err : "connection lost");
	} else if (fwd == PROV_FWD_OK) {
		routing_report(&c->dep, 1); /* a client error: the deployment is fine */
		metrics_gw_attempt(c->prov.name, "client_error");
	}
	return answer_failed(c, fwd);
}

/* ------------------------------------------------------------ the call */

static int run_call(tg_req_t *r, const char *endpoint, enum prov_endpoint ep)
{
	struct call c;

	memset(&c, 0, sizeof(c));
	/* The call's cJSON trees live in this thread's arena, all of them gone
	 * by the json_arena_end() below (core/json.h). */
	json_arena_begin();
	c.r = r;
	c.key = &r->key->k;
	c.store = billing();
	c.endpoint = endpoint;
	c.p.endpoint = ep;

	if (phase_parse(&c) == NEXT && phase_authorize_model(&c) == NEXT &&
	    phase_admit(&c) == NEXT && phase_rate_limit(&c) == NEXT && phase_hold(&c) == NEXT)
		phase_forward(&c);

	c.store->release(&c.hold);
	if (c.stream_slot)
		gw_stream_end();
	if (c.claimed)
		c.store->unclaim_request(r->request_id);
	if (c.ops && c.ops->stream_free)
		c.ops->stream_free(&c.ps);
	sse_free(c.sse);
	cJSON_free(c.usage_event);
	cJSON_Delete(c.req);
	prov_request_free(&c.rq);
	buf_free(&c.up_body);
	buf_free(&c.relay);
	json_arena_end();
	/* Every path above answered the client. */
	return r->status ? TG_OK : TG_EIO;
}

int gw_chat_completions(tg_req_t *r)
{
	return run_call(r, "chat.completions", PROV_CHAT);
}

int gw_embeddings(tg_req_t *r)
{
	return run_call(r, "embeddings", PROV_EMBEDDINGS);
}
