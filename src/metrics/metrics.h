/* metrics.h - process counters served at GET /metrics in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * Recording is lock-free (C11 atomics): it allocates nothing and formats
 * nothing, since it runs on the gateway's hot path. A mutex is taken only the
 * first time a new model or endpoint name is seen. Label sets are bounded:
 * HTTP routes are the route patterns the dispatcher hands over ("other" for
 * none, and past METRICS_ROUTE_LABELS_MAX of them), at most
 * METRICS_MODEL_LABELS_MAX model names get their own label (later ones count
 * as "other"), and a model that is not in the catalog counts as
 * "unknown", so clients cannot grow the label set.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stdint.h>

#include "core/buf.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MODEL_LABELS_MAX 200
#define METRICS_ENDPOINT_LABELS_MAX 8
#define METRICS_ROUTE_LABELS_MAX 256
#define METRICS_LABEL_MAX 128 /* longer names count as "other" */

/* One finished gateway call. model: the catalog name, or NULL / "" when the
 * requested model is not in the catalog. usage_source: "reported",
 * "estimated" or "none"; tokens count only when it is not "none".
 * cost_micro: micro-credits actually debited. upstream_us < 0 when the call
 * was never forwarded. */
void metrics_gw_call(const char *endpoint, const char *model, int status, int64_t prompt_tokens,
		     int64_t cached_tokens, int64_t completion_tokens, int64_t cost_micro,
		     const char *usage_source, int64_t total_us, int64_t upstream_us);
/* One attempt of a call at a provider and how it ended: "ok", "client_error",
 * "connect", "timeout", "broken", "rate_limited", "server_error",
 * "context_length_exceeded". provider: its catalog name (bounded like model
 * names). */
void metrics_gw_attempt(const char *provider, const char *outcome);
/* A stream started relaying to the client / ended. */
void metrics_stream_start(void);
void metrics_stream_end(void);
/* One answered HTTP request. route: the pattern of the route table entry the
 * dispatcher picked for its method and path (for a 405, the first entry for
 * the path), NULL when none matched (counted as "other"). */
void metrics_http_request(const char *method, const char *route, int status);

/* Values read at scrape time. */
struct metrics_process {
	int db_up;
	int64_t db_size_bytes; /* < 0: unknown, the sample is left out */
	int64_t held_micro;    /* < 0: unknown, the sample is left out */
	int64_t holds_voided;  /* expired holds this instance's reaper voided */
	/* the call journal */
	uint64_t journal_records, journal_batches, journal_queued;
	/* limits: connection slots, streams, authentication throttles */
	int64_t connections_open;
	uint64_t connections_refused;
	uint64_t streams_refused;
	uint64_t auth_throttled_gateway, auth_throttled_login;
	/* the edge (http/edge.h): accepted connections, their addresses, and
	 * connections refused over max_connections_per_ip */
	int64_t edge_open, edge_addresses;
	uint64_t edge_refused;
	int64_t in_flight; /* requests being handled */
};
/* A label value, quoted and escaped as the text format wants. */
int metrics_label_value(buf_t *b, const char *s);
/* Append the whole exposition to out. */
int metrics_render(buf_t *out, const struct metrics_process *p);

/* Zero every counter and forget the label names (tests only; not safe while
 * other threads record). */
void metrics_reset(void);

#endif
