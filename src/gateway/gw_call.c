/* gw_call.c - one metered call through the gateway, following the design's
 * per-call flow:
 *
 *   validate -> rate limits -> reserve (hold) -> forward -> relay -> settle
 *
 * Every path after authentication ends at call_finish(), which hands the
 * call's request row and debit (when there is one) to the call journal
 * (journal.h) before anything more is sent, and passes the hold on with
 * them (or releases it), so no exit can leak credit or skip the log.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "gateway/gw.h"
#include "gateway/journal.h"
#include "metrics/metrics.h"
#include "gateway/ratelimit.h"
#include "gateway/sse.h"
#include "gateway/streams.h"
#include "store/db.h"

#define UPSTREAM_BODY_MAX ((size_t)32 << 20) /* a non-stream answer or an error body */
#define SSE_EVENT_MAX ((size_t)4 << 20)
#define RELAY_FLUSH_AT ((size_t)64 << 10) /* queued client events sent even before the provider pauses */
#define MAX_N 16

struct call {
	tg_req_t *r;
	const struct apikey *key;
	const char *endpoint; /* "chat.completions" | "embeddings" */
	const char *path;     /* upstream path */
	char model_name[CATALOG_NAME_MAX + 1];
	struct model model;
	struct provider prov;
	int have_model;
	cJSON *req;
	int stream, want_usage;
	int64_t body_bytes, max_out, n;
	int64_t reserve;
	struct ledger_hold hold;
	int inflight;
	int stream_slot; /* a max_streams slot is held (gateway/streams.c) */
	/* rate limits */
	struct rl_ask asks[4];
	struct rl_state rl[4];
	int nasks;
	int admitted;
	int64_t tpm_cost;
	/* upstream and relay */
	int up_status;
	char up_ctype[128];
	buf_t up_body;
	sse_parser_t *sse;
	int relaying;     /* our 200 event-stream answer has started */
	buf_t relay;      /* events for the client not yet sent (see relay_flush) */
	int relayed_one;  /* the first event went out */
	int client_gone;
	int done_seen;
	char *usage_event; /* the final usage chunk, held back until the debit is recorded */
	int64_t content_bytes;
	struct gw_usage usage;
	int64_t cost;
	int cost_known;
	int64_t first_byte_us, up_start_us, up_us;
	char err[256];
};

/* ------------------------------------------------- in-flight request ids */

#define INFLIGHT_SLOTS 4096
static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static char inflight[INFLIGHT_SLOTS][REQ_ID_MAX + 1];

static size_t id_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Claim a request id for the duration of the call; 0 when already in flight. */
static int inflight_claim(const char *id)
{
	size_t h = id_hash(id), i;
	int ok = 0;

	pthread_mutex_lock(&inflight_mu);
	for (i = 0; i < INFLIGHT_SLOTS; i++) {
		char *slot = inflight[(h + i) & (INFLIGHT_SLOTS - 1)];

		if (strcmp(slot, id) == 0)
			break;
		if (slot[0] == '\0') {
			snprintf(slot, REQ_ID_MAX + 1, "%s", id);
			ok = 1;
			break;
		}
	}
	if (i == INFLIGHT_SLOTS)
		ok = 1; /* table full: the ledger's UNIQUE still prevents a double debit */
	pthread_mutex_unlock(&inflight_mu);
	return ok;
}

void gw_inflight_drop(const char *id)
{
	size_t h = id_hash(id), i, j;

	pthread_mutex_lock(&inflight_mu);
	for (i = 0; i < INFLIGHT_SLOTS; i++) {
		size_t k = (h + i) & (INFLIGHT_SLOTS - 1);

		if (inflight[k][0] == '\0')
			break;
		if (strcmp(inflight[k], id) == 0) {
			/* Backward-shift deletion keeps probe chains intact. */
			inflight[k][0] = '\0';
			for (j = (k + 1) & (INFLIGHT_SLOTS - 1); inflight[j][0];
			     j = (j + 1) & (INFLIGHT_SLOTS - 1)) {
				char tmp[REQ_ID_MAX + 1];

				snprintf(tmp, sizeof(tmp), "%s", inflight[j]);
				inflight[j][0] = '\0';
				{
					size_t h2 = id_hash(tmp), m;

					for (m = 0; m < INFLIGHT_SLOTS; m++) {
						char *slot = inflight[(h2 + m) & (INFLIGHT_SLOTS - 1)];

						if (slot[0] == '\0') {
							snprintf(slot, REQ_ID_MAX + 1, "%s", tmp);
							break;
						}
					}
				}
			}
			break;
		}
	}
	pthread_mutex_unlock(&inflight_mu);
}

/* 1 when a usage debit with this request id is already in the ledger. */
static int request_id_billed(const char *id)
{
	sqlite3_stmt *st = db_stmt("SELECT 1 FROM ledger_entries WHERE request_id = :id");
	int found = 0;

	if (st && !db_bind_text(st, ":id", id))
		found = sqlite3_step(st) == SQLITE_ROW;
	db_done(st);
	return found;
}

/* ------------------------------------------------------------ headers */

static void add_ratelimit_headers(struct call *c)
{
	static const char *const names[2][3] = {
		{ "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
		  "x-ratelimit-reset-requests" },
		{ "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
		  "x-ratelimit-reset-tokens" },
	};
	int kind, i;

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
		snprintf(v, sizeof(v), "%lld", (long long)(best->remaining < 0 ? 0 : best->remaining));
		resp_header(c->r, names[kind][1], v);
		rl_format_duration(best->reset_ms, v);
		resp_header(c->r, names[kind][2], v);
	}
}

/* -------------------------------------------------------- request log */

/* Estimated usage when the provider reported none: bytes / 4. */
static void estimate_usage(struct call *c)
{
	c->usage.prompt = (c->body_bytes + 3) / 4;
	c->usage.cached = 0;
	c->usage.completion = (c->content_bytes + 3) / 4;
	c->usage.have = 0;
}

static void compute_cost(struct call *c)
{
	int64_t cost = 0;

	if (c->cost_known)
		return;
	if (money_cost_usage(c->usage.prompt, c->usage.cached, c->usage.completion, &c->model.price,
			     &cost) != TG_OK)
		cost = c->reserve;
	if (cost > c->reserve) {
		/* Usage beyond what was reserved means the provider reported more than
		 * max_tokens allows; never debit past the hold. */
		log_warn("request %s: reported usage costs %lld, more than the %lld reserved; "
			 "debiting the reserve", c->r->request_id, (long long)cost, (long long)c->reserve);
		cost = c->reserve;
	}
	c->cost = cost;
	c->cost_known = 1;
}

/* Hand the call to the journal: its debit (when billed) and its request row
 * are durable when this returns and reach the database in the writer's next
 * batch; the hold goes with the record and counts the cost until then.
 * Returns 1 when *balance_out holds the org's balance after the debit. */
static int call_finish(struct call *c, int status, int billed, int64_t *balance_out)
{
	const char *source = !billed ? "none" : c->usage.have ? "reported" : "estimated";
	int64_t balance = 0, cost = 0, now = time_now();
	struct gw_record *rec;
	int known = 0;

	c->up_us = c->up_start_us ? time_mono_us() - c->up_start_us : 0;
	if (billed) {
		compute_cost(c);
		cost = c->cost;
	}
	rec = calloc(1, sizeof(*rec));
	if (!rec) {
		log_error("request %s: out of memory recording the call; not billed", c->r->request_id);
		goto out;
	}
	rec->created_at = now;
	rec->org_id = c->key->org_id;
	rec->key_id = c->key->id;
	rec->provider_id = c->have_model ? c->prov.id : 0;
	rec->stream = c->stream;
	rec->status = status;
	rec->prompt = c->usage.prompt;
	rec->cached = c->usage.cached;
	rec->completion = c->usage.completion;
	rec->cost = cost;
	rec->upstream_ms = c->up_us / 1000;
	rec->total_ms = (time_mono_us() - c->r->start_us) / 1000;
	rec->billed = billed && c->hold.active;
	/* last_used_at is shown in minutes: one write a minute is enough. */
	rec->mark_used = billed && now - c->key->last_used_at >= 60;
	snprintf(rec->request_id, sizeof(rec->request_id), "%s", c->r->request_id);
	snprintf(rec->endpoint, sizeof(rec->endpoint), "%s", c->endpoint);
	snprintf(rec->model, sizeof(rec->model), "%s", c->model_name);
	snprintf(rec->source, sizeof(rec->source), "%s", rec->billed ? source : "none");
	snprintf(rec->err, sizeof(rec->err), "%s", c->err);
	if (rec->billed) {
		ledger_hold_settling(&c->hold, cost);
		rec->hold = c->hold;
		c->hold.active = 0; /* the record releases it after its commit */
	}
	/* A client's request id stays claimed until its debit is committed. */
	if (c->inflight && rec->billed) {
		rec->inflight = 1;
		c->inflight = 0;
	}
	known = rec->billed;
	if (journal_submit(rec) != TG_OK)
		known = 0;
	else if (known && balance_out && ledger_balance_projected(c->key->org_id, &balance) != TG_OK)
		known = 0;
	if (!known)
		cost = 0;
out:
	ledger_release(&c->hold);
	if (c->admitted) {
		/* Tokens were taken at admission as an estimate; settle the difference
		 * (all of it back when nothing was billed). */
		int64_t actual = billed ? c->usage.prompt + c->usage.completion : 0;
		int i;

		c->admitted = 0;
		for (i = 0; i < c->nasks; i++)
			if (c->asks[i].scope == RL_KEY_TOKENS || c->asks[i].scope == RL_ORG_TOKENS)
				rl_adjust(c->asks[i].scope, c->asks[i].id, c->asks[i].limit_per_min,
					  c->tpm_cost - actual, time_mono_us());
	}
	metrics_gw_call(c->endpoint, c->model.name, status, c->usage.prompt, c->usage.cached,
			c->usage.completion, cost, known ? source : "none",
			time_mono_us() - c->r->start_us, c->up_start_us ? c->up_us : -1);
	if (balance_out)
		*balance_out = balance;
	return known;
}

/* Log and answer an error that happened before anything was forwarded. */
static int call_fail(struct call *c, int status, const char *type, const char *code,
		     const char *message)
{
	snprintf(c->err, sizeof(c->err), "%.255s", message);
	call_finish(c, status, 0, NULL);
	add_ratelimit_headers(c);
	return resp_error(c->r, status, type, code, message);
}

/* --------------------------------------------------------- validation */

static int get_int(const cJSON *o, const char *name, int64_t *out, int *present)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*present = v && !cJSON_IsNull(v);
	if (!*present)
		return TG_OK;
	/* Range first: converting an out-of-range double to int64 is undefined. */
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9007199254740992.0 &&
				     v->valuedouble <= 9007199254740992.0) ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return TG_EINVAL;
	*out = (int64_t)v->valuedouble;
	return TG_OK;
}

/* A key the gateway reads (and bills by) given twice: the provider may read
 * the other copy (most JSON libraries keep the last, cJSON the first), so
 * `max_tokens: 1, ..., max_tokens: 4000` would be reserved and capped at 1
 * but answered with 4000. Only these keys are counted: O(keys x body). */
static const char *repeated_key(const cJSON *obj)
{
	static const char *const watched[] = { "model", "messages", "input", "stream",
					       "stream_options", "max_tokens",
					       "max_completion_tokens", "n", "include_usage" };
	const cJSON *it;
	size_t i;

	for (i = 0; i < TG_ARRAY_LEN(watched); i++) {
		int seen = 0;

		for (it = obj ? obj->child : NULL; it; it = it->next)
			if (it->string && strcmp(it->string, watched[i]) == 0 && ++seen > 1)
				return watched[i];
	}
	return NULL;
}

static int validate_chat(struct call *c)
{
	const cJSON *messages = cJSON_GetObjectItemCaseSensitive(c->req, "messages");
	const cJSON *stream = cJSON_GetObjectItemCaseSensitive(c->req, "stream");
	const cJSON *opts = cJSON_GetObjectItemCaseSensitive(c->req, "stream_options");
	int64_t mt = 0, n = 1;
	int present = 0;
	char msg[256];

	if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
		return call_fail(c, 400, "invalid_request_error", "invalid_messages",
				 "'messages' must be a non-empty array of chat messages."), TG_EINVAL;
	if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))
		return call_fail(c, 400, "invalid_request_error", "invalid_type",
				 "'stream' must be true or false."), TG_EINVAL;
	c->stream = cJSON_IsTrue(stream);
	if (opts && !cJSON_IsNull(opts)) {
		if (!cJSON_IsObject(opts))
			return call_fail(c, 400, "invalid_request_error", "invalid_type",
					 "'stream_options' must be an object."), TG_EINVAL;
		c->want_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
	}
	if (get_int(c->req, "max_completion_tokens", &mt, &present) ||
	    (!present && get_int(c->req, "max_tokens", &mt, &present)))
		return call_fail(c, 400, "invalid_request_error", "invalid_type",
				 "'max_tokens' must be a whole number."), TG_EINVAL;
	if (present && mt < 1)
		return call_fail(c, 400, "invalid_request_error", "invalid_value",
				 "'max_tokens' must be at least 1."), TG_EINVAL;
	if (present && mt > c->model.max_output_tokens) {
		snprintf(msg, sizeof(msg),
			 "max_tokens is too large: %lld. The model '%s' supports at most %lld "
			 "completion tokens.", (long long)mt, c->model.name,
			 (long long)c->model.max_output_tokens);
		return call_fail(c, 400, "invalid_request_error", "invalid_value", msg), TG_EINVAL;
	}
	c->max_out = present ? mt : c->model.max_output_tokens;
	if (get_int(c->req, "n", &n, &present) || (present && (n < 1 || n > MAX_N)))
		return call_fail(c, 400, "invalid_request_error", "invalid_value",
				 "'n' must be a whole number from 1 to 16."), TG_EINVAL;
	c->n = present ? n : 1;
	return TG_OK;
}

static int validate_embeddings(struct call *c)
{
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(c->req, "input"), *it;

	if (cJSON_IsString(input))
		return TG_OK;
	if (cJSON_IsArray(input) && cJSON_GetArraySize(input) > 0) {
		cJSON_ArrayForEach(it, input)
			if (!cJSON_IsString(it) && !cJSON_IsNumber(it) && !cJSON_IsArray(it))
				goto bad;
		return TG_OK;
	}
bad:
	return call_fail(c, 400, "invalid_request_error", "invalid_input",
			 "'input' must be a string or a non-empty array of strings."), TG_EINVAL;
}

/* Text edits: replace [start, end) of the source with text (end == start
 * inserts); applied in order of start, which must not overlap. */
struct edit {
	size_t start, end;
	buf_t text;
};

/* The source with the edits applied, in memory from cJSON_malloc (callers
 * free both kinds of answer with cJSON_free). */
static char *apply_edits(const char *src, size_t n, struct edit *e, int ne, size_t *len)
{
	size_t at = 0, total = n;
	char *out, *w;
	int i;

	if (ne == 2 && e[1].start < e[0].start) {
		struct edit t = e[0];

		e[0] = e[1];
		e[1] = t;
	}
	for (i = 0; i < ne; i++) {
		if (e[i].start < at || e[i].end < e[i].start || e[i].end > n)
			return NULL;
		at = e[i].end;
		total += e[i].text.len - (e[i].end - e[i].start);
	}
	if (!(out = w = cJSON_malloc(total + 1)))
		return NULL;
	for (at = 0, i = 0; i < ne; i++) {
		memcpy(w, src + at, e[i].start - at);
		w += e[i].start - at;
		memcpy(w, e[i].text.data, e[i].text.len);
		w += e[i].text.len;
		at = e[i].end;
	}
	memcpy(w, src + at, n - at);
	w += n - at;
	*w = '\0';
	*len = total;
	return out;
}

static void edits_free(struct edit *e, int ne)
{
	int i;

	for (i = 0; i < ne; i++)
		buf_free(&e[i].text);
}

/* The client's body with only the model's value replaced (and usage asked
 * for in streams), byte for byte otherwise; NULL when the text is not simple
 * enough to edit safely (the caller prints the parsed document instead). */
static char *upstream_body_edited(struct call *c, const char *raw, size_t n, size_t *len)
{
	static const char usage_on[] = "{\"include_usage\":true}";
	struct edit e[2];
	size_t ms, me, os = 0, oe = 0, close;
	int ne = 0, so = 0;
	char *out = NULL;

	if (!raw || gw_json_member(raw, n, "model", &ms, &me) != 1 || raw[ms] != '"')
		return NULL;
	if (c->stream) {
		so = gw_json_member(raw, n, "stream_options", &os, &oe);
		if (so < 0 || (so == 1 && (oe - os != sizeof(usage_on) - 1 ||
					   memcmp(raw + os, usage_on, oe - os) != 0)))
			return NULL;
	}
	memset(e, 0, sizeof(e));
	buf_init(&e[0].text, 2 * CATALOG_NAME_MAX + 8);
	e[0].start = ms;
	e[0].end = me;
	ne = 1;
	if (gw_json_put_string(&e[0].text, c->model.upstream_model))
		goto out;
	if (c->stream && so == 0) {
		/* The object ends at its last '}' (only whitespace may follow). */
		for (close = n; close > 0 && raw[close - 1] != '}'; close--)
			;
		if (close == 0)
			goto out;
		buf_init(&e[1].text, 64);
		e[1].start = e[1].end = close - 1;
		ne = 2;
		if (buf_puts(&e[1].text, ",\"stream_options\":") || buf_puts(&e[1].text, usage_on))
			goto out;
	}
	out = apply_edits(raw, n, e, ne, len);
out:
	edits_free(e, ne);
	return out;
}

/* Rewrite the body for the provider: the upstream model name, and usage
 * reporting for streams. Everything else passes through untouched. */
static char *upstream_body(struct call *c, const char *raw, size_t raw_len, size_t *len)
{
	char *edited = upstream_body_edited(c, raw, raw_len, len);

	if (edited)
		return edited;
	cJSON *m = cJSON_GetObjectItemCaseSensitive(c->req, "model");
	char *s;

	cJSON_SetValuestring(m, c->model.upstream_model);
	if (c->stream) {
		cJSON *opts = cJSON_GetObjectItemCaseSensitive(c->req, "stream_options");

		if (!cJSON_IsObject(opts)) {
			cJSON_DeleteItemFromObjectCaseSensitive(c->req, "stream_options");
			opts = cJSON_AddObjectToObject(c->req, "stream_options");
		}
		cJSON_DeleteItemFromObjectCaseSensitive(opts, "include_usage");
		cJSON_AddTrueToObject(opts, "include_usage");
	}
	s = cJSON_PrintUnformatted(c->req);
	*len = s ? strlen(s) : 0;
	return s;
}

/* ------------------------------------------------------------ the relay */

static void read_usage(struct call *c, const cJSON *usage)
{
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
	const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
	const cJSON *cached = det ? cJSON_GetObjectItemCaseSensitive(det, "cached_tokens") : NULL;

	if (!cJSON_IsNumber(pt) || pt->valuedouble < 0 || pt->valuedouble > 1e12)
		return;
	c->usage.prompt = (int64_t)pt->valuedouble;
	c->usage.completion = cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e12 ?
				      (int64_t)ct->valuedouble : 0;
	c->usage.cached = cJSON_IsNumber(cached) && cached->valuedouble >= 0 &&
					  cached->valuedouble <= pt->valuedouble ?
				  (int64_t)cached->valuedouble : 0;
	c->usage.have = 1;
	c->cost_known = 0;
}

/* usage.cost, as a fixed-point number (never through a double). */
static void add_cost(struct call *c, cJSON *usage)
{
	char s[MONEY_FMT_LEN];

	compute_cost(c);
	money_format(c->cost, s);
	cJSON_DeleteItemFromObjectCaseSensitive(usage, "cost");
	cJSON_AddRawToObject(usage, "cost", s);
}

static void count_content(struct call *c, const cJSON *obj)
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

static int relay_flush(struct call *c, int last);

/* Queue one event for the client. The first goes out at once (time to first
 * token); the others that arrived together go out together when the transfer
 * is about to wait for more (sink_idle): one write and one wake-up of the
 * client for them, and no later than they could have been sent one by one. */
static int relay_write(struct call *c, const char *data, size_t len)
{
	if (c->client_gone)
		return 1;
	/* The parser already capped the event; framing adds a few bytes a line. */
	if (sse_write_event(&c->relay, data, len) != TG_OK) {
		/* Out of memory with the client still there: the stream cannot
		 * go on, and the connection must not be reused half-answered. */
		c->client_gone = 1;
		c->r->close = 1;
		return 1;
	}
	if (!c->relayed_one) {
		c->relayed_one = 1;
		return relay_flush(c, 0);
	}
	return 0;
}

/* Send our head if it still waits and the queued events; with last, end the
 * response in the same write. */
static int relay_flush(struct call *c, int last)
{
	int rc;

	if (c->client_gone)
		return 1;
	rc = last ? resp_stream_end(c->r, c->relay.data, c->relay.len)
		  : resp_stream_write(c->r, c->relay.data, c->relay.len);
	if (c->relay.cap > 2 * RELAY_FLUSH_AT)
		buf_free(&c->relay); /* after one huge event, not kept for the whole stream */
	else
		buf_reset(&c->relay);
	if (rc != TG_OK) {
		c->client_gone = 1;
		c->r->close = 1; /* gone, or out of memory mid-answer */
		return 1;
	}
	return 0;
}

/* Send the usage chunk held back, if any. */
static int relay_held(struct call *c)
{
	int rc = 0;

	if (c->usage_event) {
		rc = relay_write(c, c->usage_event, strlen(c->usage_event));
		cJSON_free(c->usage_event);
		c->usage_event = NULL;
	}
	return rc;
}

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
	struct call *c = ud;
	cJSON *obj, *usage, *choices;
	char *out;
	int rc, hold_back;

	(void)event;
	if (strcmp(data, "[DONE]") == 0) {
		/* Held back with the usage chunk: a client that saw the end of the
		 * stream (and its cost) must find the debit recorded, even if the
		 * server dies right after. answer_stream_end sends both. */
		c->done_seen = 1;
		return 0;
	}
	obj = json_parse(data, len, NULL);
	if (!obj)
		return relay_held(c) || relay_write(c, data, len);
	usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	choices = cJSON_GetObjectItemCaseSensitive(obj, "choices");
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, "model")))
		cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(obj, "model"), c->model_name);
	count_content(c, obj);
	if (cJSON_IsObject(usage)) {
		read_usage(c, usage);
		if (c->want_usage) {
			add_cost(c, usage);
		} else if (cJSON_GetArraySize(choices) == 0) {
			cJSON_Delete(obj); /* the usage-only chunk the client did not ask for */
			return 0;
		} else {
			cJSON_DeleteItemFromObjectCaseSensitive(obj, "usage");
		}
	} else if (usage && !c->want_usage) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "usage"); /* "usage": null */
	}
	hold_back = cJSON_IsObject(usage) && c->want_usage;
	out = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!out)
		return 1;
	/* A chunk held back goes out before anything that came after it. */
	rc = relay_held(c);
	if (hold_back) {
		/* Usage in more than one chunk: only the latest one waits. */
		c->usage_event = out;
		return rc;
	}
	rc = rc || relay_write(c, out, strlen(out));
	cJSON_free(out);
	return rc;
}

static int sink_status(void *ud, int status, const char *ctype)
{
	struct call *c = ud;

	c->up_status = status;
	snprintf(c->up_ctype, sizeof(c->up_ctype), "%s", ctype ? ctype : "");
	if (c->stream && status == 200 && strstr(c->up_ctype, "text/event-stream")) {
		add_ratelimit_headers(c);
		if (resp_stream_start(c->r, 200, "text/event-stream; charset=utf-8") != TG_OK) {
			c->client_gone = 1;
			return 1;
		}
		c->relaying = 1;
		metrics_stream_start();
	}
	return 0;
}

static int sink_idle(void *ud)
{
	struct call *c = ud;

	return c->relaying ? relay_flush(c, 0) : 0;
}

static int sink_body(void *ud, const char *p, size_t n)
{
	struct call *c = ud;

	if (c->relaying) {
		if (sse_feed(c->sse, p, n, on_event, c))
			return 1;
		return c->relay.len >= RELAY_FLUSH_AT ? relay_flush(c, 0) : 0;
	}
	if (buf_append(&c->up_body, p, n) != TG_OK) {
		snprintf(c->err, sizeof(c->err), "the provider's answer is larger than %zu bytes",
			 UPSTREAM_BODY_MAX);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------- answers */

/* The provider's JSON answer with the public model name and usage.cost put
 * in by editing its text (see upstream_body_edited); NULL when the caller
 * must print the parsed document instead. */
static char *answer_edited(struct call *c, int usage_is_object, size_t *len)
{
	const char *raw = buf_cstr(&c->up_body);
	size_t n = c->up_body.len, ms, me, us, ue, cs, ce;
	char cost[MONEY_FMT_LEN];
	struct edit e[2];
	int ne = 0, hm;
	char *out = NULL;

	hm = gw_json_member(raw, n, "model", &ms, &me);
	if (hm < 0 || (hm == 1 && raw[ms] != '"'))
		return NULL;
	memset(e, 0, sizeof(e));
	if (hm == 1) {
		buf_init(&e[ne].text, 2 * CATALOG_NAME_MAX + 8);
		e[ne].start = ms;
		e[ne].end = me;
		if (gw_json_put_string(&e[ne++].text, c->model_name))
			goto out;
	}
	if (usage_is_object) {
		size_t in;

		/* usage must be an object with no cost of its own yet. */
		if (gw_json_member(raw, n, "usage", &us, &ue) != 1 || raw[us] != '{' ||
		    gw_json_member(raw + us, ue - us, "cost", &cs, &ce) != 0)
			goto out;
		for (in = us + 1; in < ue && (raw[in] == ' ' || raw[in] == '\t' || raw[in] == '\r' ||
					     raw[in] == '\n'); in++)
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
	out = apply_edits(raw, n, e, ne, len);
out:
	edits_free(e, ne);
	return out;
}

static int answer_json(struct call *c)
{
	char charged[MONEY_FMT_LEN], remaining[MONEY_FMT_LEN];
	cJSON *obj = json_parse(buf_cstr(&c->up_body), c->up_body.len, NULL), *usage, *m;
	int64_t balance = 0;
	char *out;
	size_t out_len = 0;
	int rc, known;

	if (!cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		snprintf(c->err, sizeof(c->err), "the provider answered 200 with a body that is not JSON");
		call_finish(c, 502, 0, NULL);
		add_ratelimit_headers(c);
		return resp_error(c->r, 502, "upstream_error", "upstream_error",
				  "The provider sent an answer that is not valid JSON.");
	}
	usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	if (cJSON_IsObject(usage))
		read_usage(c, usage);
	if (!c->usage.have) {
		count_content(c, obj);
		estimate_usage(c);
	}
	compute_cost(c);
	out = answer_edited(c, cJSON_IsObject(usage), &out_len);
	if (!out) {
		m = cJSON_GetObjectItemCaseSensitive(obj, "model");
		if (cJSON_IsString(m))
			cJSON_SetValuestring(m, c->model_name);
		if (cJSON_IsObject(usage))
			add_cost(c, usage);
	}
	known = call_finish(c, 200, 1, &balance);
	money_format(c->cost, charged);
	resp_header(c->r, "x-credits-charged", charged);
	if (known) {
		money_format(balance, remaining);
		resp_header(c->r, "x-credits-remaining", remaining);
	}
	add_ratelimit_headers(c);
	if (!out && (out = cJSON_PrintUnformatted(obj)))
		out_len = strlen(out);
	cJSON_Delete(obj);
	if (!out)
		return resp_error(c->r, 500, "server_error", NULL, "Out of memory.");
	rc = resp_send(c->r, 200, "application/json", out, out_len);
	cJSON_free(out);
	return rc;
}

/* A provider error passed through (4xx) or turned into 502 (5xx and others). */
static int answer_upstream_error(struct call *c)
{
	char msg[300];

	snprintf(c->err, sizeof(c->err), "provider answered HTTP %d", c->up_status);
	call_finish(c, c->up_status >= 400 && c->up_status < 500 ? c->up_status : 502, 0, NULL);
	add_ratelimit_headers(c);
	if (c->up_status >= 400 && c->up_status < 500)
		return resp_send(c->r, c->up_status,
				 c->up_ctype[0] ? c->up_ctype : "application/json",
				 buf_cstr(&c->up_body), c->up_body.len);
	snprintf(msg, sizeof(msg), "The provider '%s' failed with HTTP %d. You were not charged.",
		 c->prov.name, c->up_status);
	return resp_error(c->r, 502, "upstream_error", "upstream_error", msg);
}

static int answer_stream_end(struct call *c, int fwd)
{
	if (!c->usage.have)
		estimate_usage(c);
	if (fwd != GW_FWD_OK && !c->client_gone) {
		char ev[400];

		snprintf(ev, sizeof(ev),
			 "{\"error\":{\"message\":\"The provider's stream broke after output had "
			 "started; you were billed for what was streamed.\",\"type\":\"upstream_error\","
			 "\"code\":\"upstream_error\",\"param\":null}}");
		relay_write(c, ev, strlen(ev));
	}
	if (c->client_gone && !c->err[0])
		snprintf(c->err, sizeof(c->err), "the client went away mid-stream");
	call_finish(c, 200, 1, NULL);
	metrics_stream_end();
	relay_held(c);
	if (c->done_seen)
		relay_write(c, "[DONE]", 6);
	relay_flush(c, 1);
	return TG_OK;
}

/* ------------------------------------------------------------ the flow */

static int insufficient(struct call *c, int64_t available)
{
	char need[MONEY_FMT_LEN], have[MONEY_FMT_LEN], msg[512];
	int64_t fit, balance = 0;

	money_format(c->reserve, need);
	money_format(available < 0 ? 0 : available, have);
	ledger_balance(c->key->org_id, &balance);
	fit = money_max_output_tokens(available, c->body_bytes, 0, &c->model.price);
	if (c->n > 1 && fit > 0)
		fit /= c->n;
	if (c->key->spend_limit > 0 && available < balance) {
		snprintf(msg, sizeof(msg),
			 "This key's %s spend limit is reached: the request could cost up to %s credits "
			 "and the limit leaves %s. %s%lld%s",
			 apikey_period_name(c->key->period), need, have,
			 fit >= 1 ? "Lower max_tokens to at most " : "", (long long)(fit >= 1 ? fit : 0),
			 fit >= 1 ? ", or raise the key's limit." : " credits fit; raise the key's limit.");
	} else if (fit >= 1) {
		snprintf(msg, sizeof(msg),
			 "Insufficient credits: the request could cost up to %s credits but the balance "
			 "available is %s. Lower max_tokens to at most %lld, or add credits.",
			 need, have, (long long)fit);
	} else {
		snprintf(msg, sizeof(msg),
			 "Insufficient credits: the request could cost up to %s credits but the balance "
			 "available is %s, too little even for max_tokens=1. Add credits.",
			 need, have);
	}
	return call_fail(c, 402, "insufficient_quota", "insufficient_credits", msg);
}

static int rate_limited(struct call *c)
{
	char msg[300], v[32];
	int64_t retry_ms = 0;
	int i;

	for (i = 0; i < c->nasks; i++)
		if (c->rl[i].refused && c->rl[i].retry_after_ms > retry_ms)
			retry_ms = c->rl[i].retry_after_ms;
	for (i = 0; i < c->nasks && !c->rl[i].refused; i++)
		;
	snprintf(msg, sizeof(msg), "Rate limit reached for %s %s: %lld %s per minute. Retry after %lld s.",
		 i < c->nasks && (c->asks[i].scope == RL_ORG_REQUESTS || c->asks[i].scope == RL_ORG_TOKENS) ?
			 "the organization of key" : "key",
		 c->key->prefix, (long long)(i < c->nasks ? c->asks[i].limit_per_min : 0),
		 i < c->nasks && (c->asks[i].scope == RL_KEY_TOKENS || c->asks[i].scope == RL_ORG_TOKENS) ?
			 "tokens" : "requests",
		 (long long)((retry_ms + 999) / 1000));
	snprintf(v, sizeof(v), "%lld", (long long)((retry_ms + 999) / 1000));
	resp_header(c->r, "Retry-After", v);
	return call_fail(c, 429, "rate_limit_exceeded", "rate_limit_exceeded", msg);
}

static int run_call(tg_req_t *r, const char *endpoint, const char *path, int embeddings)
{
	struct call c;
	const cJSON *model;
	char *body = NULL;
	size_t body_len = 0;
	int64_t org_rpm, org_tpm, available = 0, fwd;
	int rc;

	memset(&c, 0, sizeof(c));
	/* The call's cJSON trees live in this thread's arena, all of them gone
	 * by the json_arena_end() below (core/json.h). */
	json_arena_begin();
	c.r = r;
	c.key = &r->key->k;
	c.endpoint = endpoint;
	c.path = path;
	buf_init(&c.up_body, UPSTREAM_BODY_MAX);
	buf_init(&c.relay, 0);

	c.req = req_json(r);
	if (!c.req) {
		snprintf(c.err, sizeof(c.err), "invalid request body");
		call_finish(&c, r->status ? r->status : 400, 0, NULL);
		rc = TG_OK;
		goto out;
	}
	c.body_bytes = (int64_t)r->body.len;
	{
		const char *dup = repeated_key(c.req);

		if (!dup)
			dup = repeated_key(cJSON_GetObjectItemCaseSensitive(c.req, "stream_options"));
		if (dup) {
			char msg[160];

			snprintf(msg, sizeof(msg), "The request gives '%s' more than once; send each "
				 "key once.", dup);
			rc = call_fail(&c, 400, "invalid_request_error", "duplicate_key", msg);
			goto out;
		}
	}
	model = cJSON_GetObjectItemCaseSensitive(c.req, "model");
	if (!cJSON_IsString(model) || !model->valuestring[0]) {
		rc = call_fail(&c, 400, "invalid_request_error", "missing_model",
			       "'model' is required: a model name from GET /v1/models.");
		goto out;
	}
	snprintf(c.model_name, sizeof(c.model_name), "%s", model->valuestring);
	if (strlen(model->valuestring) > CATALOG_NAME_MAX ||
	    catalog_gw_model(model->valuestring, &c.model) != TG_OK || !c.model.enabled) {
		char msg[300];

		snprintf(msg, sizeof(msg), "The model '%.128s' does not exist. See GET /v1/models.",
			 model->valuestring);
		rc = call_fail(&c, 404, "invalid_request_error", "model_not_found", msg);
		goto out;
	}
	if (!apikey_model_allowed(c.key, c.model.name)) {
		char msg[300];

		snprintf(msg, sizeof(msg), "This API key may not use the model '%s'.", c.model.name);
		rc = call_fail(&c, 403, "permission_denied", "model_not_allowed", msg);
		goto out;
	}
	if ((c.model.kind == MODEL_EMBEDDING) != embeddings) {
		rc = call_fail(&c, 400, "invalid_request_error", "wrong_model_kind",
			       embeddings ? "This model is not an embedding model; use /v1/chat/completions." :
					    "This is an embedding model; use /v1/embeddings.");
		goto out;
	}
	if (catalog_gw_provider(c.model.provider_id, &c.prov) != TG_OK || !c.prov.enabled) {
		rc = call_fail(&c, 503, "upstream_error", "provider_unavailable",
			       "The provider for this model is disabled. Try again later.");
		goto out;
	}
	c.have_model = 1;
	if ((embeddings ? validate_embeddings(&c) : validate_chat(&c)) != TG_OK) {
		rc = TG_OK;
		goto out;
	}
	if (embeddings) {
		c.max_out = 0;
		c.n = 1;
	}
	/* Limits: a stream over max_streams is refused here, before any hold is
	 * taken or the provider called (logged, never billed). */
	if (c.stream) {
		if (!gw_stream_begin()) {
			char msg[200];

			snprintf(msg, sizeof(msg), "The gateway is at its limit of %lld open streams. "
				 "Retry in a moment.", (long long)gw_streams_max());
			resp_header(r, "Retry-After", "1");
			rc = call_fail(&c, 503, "server_error", "server_busy", msg);
			goto out;
		}
		c.stream_slot = 1;
	}

	/* A client's request id that already has a debit, or is in flight, is a
	 * retry. (Ids we generate are random and cannot collide.) */
	if (r->request_id_given &&
	    (request_id_billed(r->request_id) || !(c.inflight = inflight_claim(r->request_id)))) {
		rc = call_fail(&c, 409, "invalid_request_error", "duplicate_request_id",
			       "This X-Request-Id was already used for a billed request or is in "
			       "progress; send a new one for a new call.");
		goto out;
	}

	/* Rate limits: requests and (estimated) tokens, per key and per org. */
	/* The org's limits come with the key from the key cache. */
	org_rpm = c.key->org_rpm;
	org_tpm = c.key->org_tpm;
	c.tpm_cost = (c.body_bytes + 3) / 4 + c.max_out * c.n;
	c.asks[0] = (struct rl_ask){ RL_KEY_REQUESTS, c.key->id, c.key->rpm, 1 };
	c.asks[1] = (struct rl_ask){ RL_KEY_TOKENS, c.key->id, c.key->tpm, c.tpm_cost };
	c.asks[2] = (struct rl_ask){ RL_ORG_REQUESTS, c.key->org_id, org_rpm, 1 };
	c.asks[3] = (struct rl_ask){ RL_ORG_TOKENS, c.key->org_id, org_tpm, c.tpm_cost };
	c.nasks = 4;
	if (!rl_admit(c.asks, c.nasks, time_mono_us(), c.rl)) {
		rc = rate_limited(&c);
		goto out;
	}
	c.admitted = 1;

	/* Reserve the worst case: every body byte a prompt token, every output token used. */
	if (money_cost(c.body_bytes, 0, c.max_out * c.n, &c.model.price, &c.reserve) != TG_OK) {
		rc = call_fail(&c, 400, "invalid_request_error", "invalid_value",
			       "The request's worst-case cost is too large to reserve; lower max_tokens.");
		goto out;
	}
	/* The key's spend this period is read with the balance, under the ledger's
	 * lock, so a key limit holds exactly under concurrent calls too. */
	if (c.key->spend_limit > 0 && c.key->period != PERIOD_NONE)
		rc = ledger_hold_since(c.key->org_id, c.key->id, c.reserve, c.key->spend_limit,
				       apikey_period_start(c.key->period, time_now()), &c.hold,
				       &available);
	else
		rc = ledger_hold(c.key->org_id, c.key->id, c.reserve, 0, 0, &c.hold, &available);
	if (rc == TG_EFUNDS) {
		rc = insufficient(&c, available);
		goto out;
	}
	if (rc != TG_OK) {
		rc = call_fail(&c, 503, "server_error", "unavailable",
			       "Credits could not be reserved right now; try again.");
		goto out;
	}

	/* Forward. */
	body = upstream_body(&c, r->body.data, r->body.len, &body_len);
	if (!body) {
		rc = call_fail(&c, 500, "server_error", NULL, "Out of memory.");
		goto out;
	}
	if (c.stream && sse_init(&c.sse, SSE_EVENT_MAX) != TG_OK) {
		rc = call_fail(&c, 500, "server_error", NULL, "Out of memory.");
		goto out;
	}
	{
		/* Only a stream has events to send while the provider pauses; a
		 * plain call keeps libcurl's progress callback off. */
		struct gw_sink sink = { &c, sink_status, sink_body, c.stream ? sink_idle : NULL };

		c.up_start_us = time_mono_us();
		if (c.prov.kind == PROVIDER_ECHO) {
			cJSON *rewritten = cJSON_ParseWithLength(body, body_len);

			fwd = echo_answer(c.path, rewritten, &sink) == TG_OK ? GW_FWD_OK :
			      c.client_gone ? GW_FWD_ABORTED : GW_FWD_BROKEN;
			cJSON_Delete(rewritten);
		} else {
			fwd = upstream_post(&c.prov, c.path, body, body_len, r->request_id, &sink,
					    &c.first_byte_us, c.err, sizeof(c.err));
		}
	}
	if (c.relaying) {
		rc = answer_stream_end(&c, (int)fwd);
	} else if (fwd == GW_FWD_TIMEOUT) {
		char msg[200];

		snprintf(msg, sizeof(msg), "The provider '%s' did not answer within %lld s. You were "
			 "not charged.", c.prov.name, (long long)c.prov.timeout_s);
		rc = call_fail(&c, 504, "upstream_error", "upstream_timeout", msg);
	} else if (fwd != GW_FWD_OK) {
		char msg[700];

		snprintf(msg, sizeof(msg), "The provider '%s' could not be reached (%s). You were not "
			 "charged.", c.prov.name, c.err[0] ? c.err : "connection failed");
		rc = call_fail(&c, 502, "upstream_error", "upstream_error", msg);
	} else if (c.up_status != 200) {
		rc = answer_upstream_error(&c);
	} else {
		rc = answer_json(&c);
	}
out:
	ledger_release(&c.hold);
	if (c.stream_slot)
		gw_stream_end();
	if (c.inflight)
		gw_inflight_drop(r->request_id);
	sse_free(c.sse);
	cJSON_free(c.usage_event);
	cJSON_Delete(c.req);
	cJSON_free(body);
	buf_free(&c.up_body);
	buf_free(&c.relay);
	json_arena_end();
	return rc;
}

int gw_chat_completions(tg_req_t *r)
{
	return run_call(r, "chat.completions", "/chat/completions", 0);
}

int gw_embeddings(tg_req_t *r)
{
	return run_call(r, "embeddings", "/embeddings", 1);
}
