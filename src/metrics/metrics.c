/* metrics.c - lock-free process counters and their exposition; see metrics.h.
 *
 * Labeled counters live in fixed open-addressing tables of (key, count)
 * pairs: the key packs the label ids into 64 bits and is claimed with one
 * compare-and-swap, the count is bumped with one fetch-add. Names (models,
 * endpoints) are interned into fixed tables the same way, under a mutex only
 * when a name is new. Nothing here allocates until a scrape renders.
 */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/timeutil.h"

#define KEY_TAG ((uint64_t)1 << 63) /* a claimed key is never 0 */
#define MAX_PROBES 64
#define HTTP_SLOTS 4096 /* power of two */
#define GW_SLOTS 16384  /* power of two */
#define ID_OTHER 0xfffe
#define ID_UNKNOWN 0xffff

/* ------------------------------------------------------------ series */

struct series {
	_Atomic uint64_t key;
	_Atomic uint64_t count;
};

static struct series http_tab[HTTP_SLOTS];
static struct series gw_tab[GW_SLOTS];
#define ATTEMPT_SLOTS 1024 /* power of two */
static struct series attempt_tab[ATTEMPT_SLOTS];
static _Atomic uint64_t series_dropped;

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void series_add(struct series *tab, size_t nslots, uint64_t key)
{
	size_t h = (size_t)mix64(key), i;

	for (i = 0; i < MAX_PROBES && i < nslots; i++) {
		struct series *s = &tab[(h + i) & (nslots - 1)];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);

		if (k == 0) {
			uint64_t expect = 0;

			k = atomic_compare_exchange_strong_explicit(&s->key, &expect, key,
								    memory_order_acq_rel,
								    memory_order_acquire) ?
				    key :
				    expect;
		}
		if (k == key) {
			atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&series_dropped, 1, memory_order_relaxed);
}

struct sample {
	uint64_t key, count;
};

static int sample_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct sample *)a)->key, y = ((const struct sample *)b)->key;

	return x < y ? -1 : x > y;
}

/* Copy the claimed series out, sorted by key. *out is NULL when there are none. */
static int series_snapshot(struct series *tab, size_t nslots, struct sample **out, size_t *n)
{
	struct sample *v = NULL;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	for (i = 0; i < nslots; i++) {
		uint64_t key = atomic_load_explicit(&tab[i].key, memory_order_acquire);

		if (!key)
			continue;
		if (!v && !(v = malloc(nslots * sizeof(*v))))
			return TG_ENOMEM;
		v[k].key = key;
		v[k].count = atomic_load_explicit(&tab[i].count, memory_order_relaxed);
		k++;
	}
	if (k)
		qsort(v, k, sizeof(*v), sample_cmp);
	*out = v;
	*n = k;
	return TG_OK;
}

/* ------------------------------------------------------------- names */

struct names {
	pthread_mutex_t mu;
	size_t cap;    /* names that get their own label */
	size_t nslots; /* power of two, >= 2 * cap */
	char (*name)[METRICS_LABEL_MAX + 1];
	_Atomic uint32_t *slot; /* id + 1, 0 = empty */
	_Atomic size_t n;
	_Atomic int full;
};

static char model_names[METRICS_MODEL_LABELS_MAX][METRICS_LABEL_MAX + 1];
static _Atomic uint32_t model_slots[512];
static struct names models = {
	PTHREAD_MUTEX_INITIALIZER, METRICS_MODEL_LABELS_MAX, 512, model_names, model_slots, 0, 0
};
static char endpoint_names[METRICS_ENDPOINT_LABELS_MAX][METRICS_LABEL_MAX + 1];
static _Atomic uint32_t endpoint_slots[32];
static struct names endpoints = { PTHREAD_MUTEX_INITIALIZER,
				  METRICS_ENDPOINT_LABELS_MAX,
				  32,
				  endpoint_names,
				  endpoint_slots,
				  0,
				  0 };
static char route_names[METRICS_ROUTE_LABELS_MAX][METRICS_LABEL_MAX + 1];
static _Atomic uint32_t route_slots[2 * METRICS_ROUTE_LABELS_MAX];
static struct names routes = { PTHREAD_MUTEX_INITIALIZER,
			       METRICS_ROUTE_LABELS_MAX,
			       2 * METRICS_ROUTE_LABELS_MAX,
			       route_names,
			       route_slots,
			       0,
			       0 };

#define PROVIDER_LABELS_MAX 64
static char provider_names[PROVIDER_LABELS_MAX][METRICS_LABEL_MAX + 1];
static _Atomic uint32_t provider_slots[2 * PROVIDER_LABELS_MAX];
static struct names providers = { PTHREAD_MUTEX_INITIALIZER,
				  PROVIDER_LABELS_MAX,
				  2 * PROVIDER_LABELS_MAX,
				  provider_names,
				  provider_slots,
				  0,
				  0 };

static size_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* Probe for s; the id, or -1 when absent (slot gets the first empty slot). */
static int names_probe(struct names *t, const char *s, size_t h, size_t *slot)
{
	size_t i;

	for (i = 0; i < t->nslots; i++) {
		size_t k = (h + i) & (t->nslots - 1);
		uint32_t v = atomic_load_explicit(&t->slot[k], memory_order_acquire);

		if (v == 0) {
			*slot = k;
			return -1;
		}
		if (strcmp(t->name[v - 1], s) == 0)
			return (int)(v - 1);
	}
	*slot = t->nslots;
	return -1;
}

/* The label id of name s: its index, or ID_OTHER once the table is full. */
static uint32_t names_id(struct names *t, const char *s)
{
	size_t h, slot = 0, n;
	int id;

	if (strlen(s) > METRICS_LABEL_MAX)
		return ID_OTHER;
	h = str_hash(s);
	if ((id = names_probe(t, s, h, &slot)) >= 0)
		return (uint32_t)id;
	if (atomic_load_explicit(&t->full, memory_order_acquire))
		return ID_OTHER;
	pthread_mutex_lock(&t->mu);
	id = names_probe(t, s, h, &slot);
	if (id < 0) {
		n = atomic_load_explicit(&t->n, memory_order_relaxed);
		if (n < t->cap && slot < t->nslots) {
			/* The name is written before the slot publishes it. */
			memcpy(t->name[n], s, strlen(s) + 1);
			atomic_store_explicit(&t->slot[slot], (uint32_t)n + 1,
					      memory_order_release);
			atomic_store_explicit(&t->n, n + 1, memory_order_release);
			id = (int)n;
		} else {
			atomic_store_explicit(&t->full, 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return id < 0 ? ID_OTHER : (uint32_t)id;
}

static const char *names_get(const struct names *t, uint32_t id)
{
	if (id == ID_UNKNOWN)
		return "unknown";
	if (id < t->cap && id < atomic_load_explicit(&t->n, memory_order_acquire))
		return t->name[id];
	return "other";
}

static void names_reset(struct names *t)
{
	size_t i;

	pthread_mutex_lock(&t->mu);
	for (i = 0; i < t->nslots; i++)
		atomic_store(&t->slot[i], 0);
	atomic_store(&t->n, 0);
	atomic_store(&t->full, 0);
	pthread_mutex_unlock(&t->mu);
}

/* -------------------------------------------------------- histograms */

static const int64_t bucket_us[] = {
	5000,    10000,   25000,   50000,    100000,   250000,   500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
static const char *const bucket_le[] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60",
};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct histogram {
	_Atomic uint64_t bucket[NBUCKETS + 1]; /* not cumulative; the last is +Inf */
	_Atomic int64_t sum_us;
};

static void histogram_observe(struct histogram *hg, int64_t us)
{
	size_t i;

	if (us < 0)
		us = 0;
	for (i = 0; i < NBUCKETS && us > bucket_us[i]; i++)
		;
	atomic_fetch_add_explicit(&hg->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hg->sum_us, us, memory_order_relaxed);
}

/* --------------------------------------------------- plain counters */

enum { TOK_PROMPT, TOK_CACHED, TOK_COMPLETION, TOK_KINDS };
static const char *const tok_names[TOK_KINDS] = { "prompt", "cached", "completion" };
enum { SRC_REPORTED, SRC_ESTIMATED, SRC_NONE, SRC_KINDS };
static const char *const src_names[SRC_KINDS] = { "reported", "estimated", "none" };

static _Atomic uint64_t tokens[TOK_KINDS];
static _Atomic uint64_t usage_source[SRC_KINDS];
static _Atomic int64_t debited_micro;
static _Atomic uint64_t insufficient_total, rate_limited_total;
static _Atomic int64_t active_streams;
static struct histogram duration_total, duration_upstream;
static int64_t start_ms;

__attribute__((constructor)) static void metrics_boot(void)
{
	start_ms = time_now_ms();
}

/* ------------------------------------------------------------ record */

static uint32_t status_label(int status)
{
	return status >= 0 && status <= 999 ? (uint32_t)status : 0;
}

void metrics_gw_call(const char *endpoint, const char *model, int status, int64_t prompt_tokens,
		     int64_t cached_tokens, int64_t completion_tokens, int64_t cost_micro,
		     const char *usage_source_name, int64_t total_us, int64_t upstream_us)
{
	uint32_t ep = names_id(&endpoints, endpoint ? endpoint : "");
	uint32_t mo = model && model[0] ? names_id(&models, model) : ID_UNKNOWN;
	int src = SRC_NONE;

	series_add(gw_tab, GW_SLOTS,
		   KEY_TAG | (uint64_t)ep << 32 | (uint64_t)mo << 16 | status_label(status));
	if (status == 402)
		atomic_fetch_add_explicit(&insufficient_total, 1, memory_order_relaxed);
	else if (status == 429)
		atomic_fetch_add_explicit(&rate_limited_total, 1, memory_order_relaxed);
	if (usage_source_name && strcmp(usage_source_name, "reported") == 0)
		src = SRC_REPORTED;
	else if (usage_source_name && strcmp(usage_source_name, "estimated") == 0)
		src = SRC_ESTIMATED;
	atomic_fetch_add_explicit(&usage_source[src], 1, memory_order_relaxed);
	if (src != SRC_NONE) {
		atomic_fetch_add_explicit(&tokens[TOK_PROMPT],
					  prompt_tokens > 0 ? (uint64_t)prompt_tokens : 0,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&tokens[TOK_CACHED],
					  cached_tokens > 0 ? (uint64_t)cached_tokens : 0,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&tokens[TOK_COMPLETION],
					  completion_tokens > 0 ? (uint64_t)completion_tokens : 0,
					  memory_order_relaxed);
	}
	if (cost_micro > 0)
		atomic_fetch_add_explicit(&debited_micro, cost_micro, memory_order_relaxed);
	histogram_observe(&duration_total, total_us);
	if (upstream_us >= 0)
		histogram_observe(&duration_upstream, upstream_us);
}

static const char *const outcome_names[] = { "ok",           "client_error",
					     "connect",      "timeout",
					     "broken",       "rate_limited",
					     "server_error", "context_length_exceeded" };

void metrics_gw_attempt(const char *provider, const char *outcome)
{
	uint32_t pr = names_id(&providers, provider ? provider : "");
	uint32_t o = 0;

	while (o < TG_ARRAY_LEN(outcome_names) && strcmp(outcome_names[o], outcome) != 0)
		o++;
	if (o == TG_ARRAY_LEN(outcome_names))
		o = 6; /* an outcome this table does not name counts as server_error */
	series_add(attempt_tab, ATTEMPT_SLOTS, KEY_TAG | (uint64_t)pr << 16 | o);
}

void metrics_stream_start(void)
{
	atomic_fetch_add_explicit(&active_streams, 1, memory_order_relaxed);
}

void metrics_stream_end(void)
{
	atomic_fetch_sub_explicit(&active_streams, 1, memory_order_relaxed);
}

void metrics_http_request(const char *method, const char *route, int status)
{
	uint32_t id = route ? names_id(&routes, route) : ID_OTHER;

	(void)method;
	series_add(http_tab, HTTP_SLOTS, KEY_TAG | (uint64_t)id << 16 | status_label(status));
}

void metrics_reset(void)
{
	size_t i;

	for (i = 0; i < HTTP_SLOTS; i++) {
		atomic_store(&http_tab[i].key, 0);
		atomic_store(&http_tab[i].count, 0);
	}
	for (i = 0; i < GW_SLOTS; i++) {
		atomic_store(&gw_tab[i].key, 0);
		atomic_store(&gw_tab[i].count, 0);
	}
	for (i = 0; i < ATTEMPT_SLOTS; i++) {
		atomic_store(&attempt_tab[i].key, 0);
		atomic_store(&attempt_tab[i].count, 0);
	}
	names_reset(&providers);
	atomic_store(&series_dropped, 0);
	names_reset(&models);
	names_reset(&endpoints);
	names_reset(&routes);
	for (i = 0; i < TOK_KINDS; i++)
		atomic_store(&tokens[i], 0);
	for (i = 0; i < SRC_KINDS; i++)
		atomic_store(&usage_source[i], 0);
	atomic_store(&debited_micro, 0);
	atomic_store(&insufficient_total, 0);
	atomic_store(&rate_limited_total, 0);
	atomic_store(&active_streams, 0);
	for (i = 0; i <= NBUCKETS; i++) {
		atomic_store(&duration_total.bucket[i], 0);
		atomic_store(&duration_upstream.bucket[i], 0);
	}
	atomic_store(&duration_total.sum_us, 0);
	atomic_store(&duration_upstream.sum_us, 0);
}

/* ------------------------------------------------------------ render */

static int family(buf_t *b, const char *name, const char *type, const char *help)
{
	return buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped: backslash, double quote and newline. */
int metrics_label_value(buf_t *b, const char *s)
{
	int rc = buf_putc(b, '"');

	for (; !rc && *s; s++) {
		if (*s == '\\')
			rc = buf_puts(b, "\\\\");
		else if (*s == '"')
			rc = buf_puts(b, "\\\"");
		else if (*s == '\n')
			rc = buf_puts(b, "\\n");
		else
			rc = buf_putc(b, *s);
	}
	return rc ? rc : buf_putc(b, '"');
}

/* Microseconds as seconds, exactly: 1234567 -> "1.234567". */
static int put_seconds(buf_t *b, int64_t us)
{
	if (us < 0)
		us = 0;
	return buf_appendf(b, "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
}

static int render_http(buf_t *b)
{
	struct sample *v = NULL;
	size_t n = 0, i;
	int rc;

	if ((rc = family(b, "tollgate_http_requests_total", "counter",
			 "HTTP requests answered, by route pattern and status.")) ||
	    (rc = series_snapshot(http_tab, HTTP_SLOTS, &v, &n)))
		goto out;
	for (i = 0; i < n && !rc; i++) {
		uint32_t route = (uint32_t)(v[i].key >> 16) & 0xffff;

		rc = buf_puts(b, "tollgate_http_requests_total{route=");
		if (!rc)
			rc = metrics_label_value(b, names_get(&routes, route));
		if (!rc)
			rc = buf_appendf(b, ",status=\"%u\"} %llu\n", (unsigned)(v[i].key & 0xffff),
					 (unsigned long long)v[i].count);
	}
out:
	free(v);
	return rc;
}

static int render_gateway_requests(buf_t *b)
{
	struct sample *v = NULL;
	size_t n = 0, i;
	int rc;

	if ((rc = family(b, "tollgate_gateway_requests_total", "counter",
			 "Gateway calls finished, by endpoint, model and status.")) ||
	    (rc = series_snapshot(gw_tab, GW_SLOTS, &v, &n)))
		goto out;
	for (i = 0; i < n && !rc; i++) {
		uint32_t ep = (uint32_t)(v[i].key >> 32) & 0xffff;
		uint32_t mo = (uint32_t)(v[i].key >> 16) & 0xffff;

		rc = buf_puts(b, "tollgate_gateway_requests_total{endpoint=");
		if (!rc)
			rc = metrics_label_value(b, names_get(&endpoints, ep));
		if (!rc)
			rc = buf_puts(b, ",model=");
		if (!rc)
			rc = metrics_label_value(b, names_get(&models, mo));
		if (!rc)
			rc = buf_appendf(b, ",status=\"%u\"} %llu\n", (unsigned)(v[i].key & 0xffff),
					 (unsigned long long)v[i].count);
	}
out:
	free(v);
	return rc;
}

static int render_attempts(buf_t *b)
{
	struct sample *v = NULL;
	size_t n = 0, i;
	int rc;

	if ((rc = family(b, "tollgate_upstream_attempts_total", "counter",
			 "Attempts at providers, by provider and outcome (a call that fell over "
			 "to another deployment has several).")) ||
	    (rc = series_snapshot(attempt_tab, ATTEMPT_SLOTS, &v, &n)))
		goto out;
	for (i = 0; i < n && !rc; i++) {
		uint32_t pr = (uint32_t)(v[i].key >> 16) & 0xffff;
		uint32_t o = (uint32_t)(v[i].key & 0xffff);

		rc = buf_puts(b, "tollgate_upstream_attempts_total{provider=");
		if (!rc)
			rc = metrics_label_value(b, names_get(&providers, pr));
		if (!rc)
			rc = buf_appendf(b, ",outcome=\"%s\"} %llu\n",
					 o < TG_ARRAY_LEN(outcome_names) ? outcome_names[o] :
									   "other",
					 (unsigned long long)v[i].count);
	}
out:
	free(v);
	return rc;
}

static int render_histogram(buf_t *b, const char *name, const char *help, struct histogram *hg)
{
	uint64_t cum = 0;
	size_t i;
	int rc = family(b, name, "histogram", help);

	for (i = 0; i <= NBUCKETS && !rc; i++) {
		cum += atomic_load_explicit(&hg->bucket[i], memory_order_relaxed);
		rc = buf_appendf(b, "%s_bucket{le=\"%s\"} %llu\n", name,
				 i < NBUCKETS ? bucket_le[i] : "+Inf", (unsigned long long)cum);
	}
	if (!rc)
		rc = buf_appendf(b, "%s_sum ", name);
	if (!rc)
		rc = put_seconds(b, atomic_load_explicit(&hg->sum_us, memory_order_relaxed));
	/* _count is the +Inf bucket as read above, so the two always agree. */
	if (!rc)
		rc = buf_appendf(b, "\n%s_count %llu\n", name, (unsigned long long)cum);
	return rc;
}

static int render_scalar(buf_t *b, const char *name, const char *type, const char *help,
			 long long value)
{
	int rc = family(b, name, type, help);

	return rc ? rc : buf_appendf(b, "%s %lld\n", name, value);
}

int metrics_render(buf_t *out, const struct metrics_process *p)
{
	size_t i;
	int rc;

	if ((rc = render_http(out)) || (rc = render_gateway_requests(out)) ||
	    (rc = render_attempts(out)) ||
	    (rc = render_histogram(out, "tollgate_gateway_request_duration_seconds",
				   "Gateway call time from request to the last byte, in seconds.",
				   &duration_total)) ||
	    (rc = render_histogram(
		     out, "tollgate_gateway_upstream_duration_seconds",
		     "Time spent waiting on the provider per forwarded call, in seconds.",
		     &duration_upstream)))
		goto out;
	if ((rc = family(out, "tollgate_gateway_tokens_total", "counter",
			 "Tokens billed, by kind (cached is part of prompt).")))
		goto out;
	for (i = 0; i < TOK_KINDS && !rc; i++)
		rc = buf_appendf(out, "tollgate_gateway_tokens_total{kind=\"%s\"} %llu\n",
				 tok_names[i], (unsigned long long)atomic_load(&tokens[i]));
	{
		const struct {
			const char *name, *type, *help;
			long long value;
		} scalars[] = {
			{ "tollgate_gateway_credits_debited_micro_total", "counter",
			  "Credits debited for gateway calls, in micro-credits.",
			  (long long)atomic_load(&debited_micro) },
			{ "tollgate_gateway_insufficient_credits_total", "counter",
			  "Gateway calls answered 402 (insufficient credits).",
			  (long long)atomic_load(&insufficient_total) },
			{ "tollgate_gateway_rate_limited_total", "counter",
			  "Gateway calls answered 429 (rate limited).",
			  (long long)atomic_load(&rate_limited_total) },
			{ "tollgate_gateway_active_streams", "gauge",
			  "Streams relaying to clients now.",
			  (long long)atomic_load(&active_streams) },
			{ "tollgate_holds_voided_total", "counter",
			  "Expired holds of stopped instances this instance voided (shared "
			  "database only).",
			  (long long)p->holds_voided },
			{ "tollgate_journal_records_total", "counter",
			  "Finished calls written to the call journal.",
			  (long long)p->journal_records },
			{ "tollgate_journal_batches_total", "counter",
			  "Batches of calls the journal's writer committed to the database.",
			  (long long)p->journal_batches },
			{ "tollgate_journal_queued", "gauge",
			  "Calls in the journal waiting for the writer's next batch.",
			  (long long)p->journal_queued },
			{ "tollgate_http_connections_open", "gauge",
			  "Connections holding one of the max_connections slots now.",
			  (long long)p->connections_open },
			{ "tollgate_http_connections_refused_total", "counter",
			  "Requests answered 503 because every connection slot was taken.",
			  (long long)p->connections_refused },
			{ "tollgate_tcp_connections_open", "gauge",
			  "Connections accepted and not closed yet, idle ones included.",
			  (long long)p->edge_open },
			{ "tollgate_tcp_client_addresses", "gauge",
			  "Distinct client addresses with a connection open.",
			  (long long)p->edge_addresses },
			{ "tollgate_tcp_connections_refused_total", "counter",
			  "Connections refused at accept with a 429 over max_connections_per_ip.",
			  (long long)p->edge_refused },
			{ "tollgate_http_requests_in_flight", "gauge",
			  "Requests being handled now, streams included.",
			  (long long)p->in_flight },
			{ "tollgate_gateway_streams_refused_total", "counter",
			  "Streaming calls answered 503 because max_streams were open.",
			  (long long)p->streams_refused },
		};

		for (i = 0; i < sizeof(scalars) / sizeof(scalars[0]) && !rc; i++)
			rc = render_scalar(out, scalars[i].name, scalars[i].type, scalars[i].help,
					   scalars[i].value);
	}
	if (rc)
		goto out;
	if ((rc = family(
		     out, "tollgate_auth_throttled_total", "counter",
		     "Requests refused because their address failed authentication too often.")) ||
	    (rc = buf_appendf(out,
			      "tollgate_auth_throttled_total{kind=\"gateway\"} %llu\n"
			      "tollgate_auth_throttled_total{kind=\"login\"} %llu\n",
			      (unsigned long long)p->auth_throttled_gateway,
			      (unsigned long long)p->auth_throttled_login)))
		goto out;
	if ((rc = family(out, "tollgate_usage_source_total", "counter",
			 "Gateway calls by where their billed usage came from.")))
		goto out;
	for (i = 0; i < SRC_KINDS && !rc; i++)
		rc = buf_appendf(out, "tollgate_usage_source_total{source=\"%s\"} %llu\n",
				 src_names[i], (unsigned long long)atomic_load(&usage_source[i]));
	if (rc ||
	    (rc = render_scalar(out, "tollgate_db_up", "gauge",
				"1 when the database answers a simple query.", p->db_up ? 1 : 0)))
		goto out;
	if ((rc = family(out, "tollgate_ledger_held_micro", "gauge",
			 "Credits reserved by calls in flight (on a shared database: of every "
			 "instance), or owed by finished calls whose debit is not committed yet, "
			 "in micro-credits.")))
		goto out;
	if (p->held_micro >= 0 &&
	    (rc = buf_appendf(out, "tollgate_ledger_held_micro %lld\n", (long long)p->held_micro)))
		goto out;
	if ((rc = family(out, "tollgate_db_size_bytes", "gauge",
			 "Size of the database (SQLite: its file).")))
		goto out;
	if (p->db_size_bytes >= 0 &&
	    (rc = buf_appendf(out, "tollgate_db_size_bytes %lld\n", (long long)p->db_size_bytes)))
		goto out;
	if ((rc = family(out, "tollgate_build_info", "gauge",
			 "Always 1; the version is a label.")) ||
	    (rc = buf_puts(out, "tollgate_build_info{version=")) ||
	    (rc = metrics_label_value(out, TG_VERSION)) || (rc = buf_puts(out, "} 1\n")) ||
	    (rc = family(out, "tollgate_start_time_seconds", "gauge",
			 "When the process started, in seconds since the epoch.")) ||
	    (rc = buf_appendf(out, "tollgate_start_time_seconds %lld.%03lld\n",
			      (long long)(start_ms / 1000), (long long)(start_ms % 1000))))
		goto out;
	rc = render_scalar(out, "tollgate_metrics_series_dropped_total", "counter",
			   "Samples not counted because a label table was full.",
			   (long long)atomic_load(&series_dropped));
out:
	return rc;
}
