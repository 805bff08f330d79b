/* routing.h - which deployment of a model a call tries first, and the
 * health of each deployment in this process (failures in a row, cooldown).
 *
 * A model's deployments are tried by priority, lower first; within one
 * priority the healthy ones are ordered by a weighted random draw (weight 0:
 * after the others), and deployments cooling down go last of all, so they
 * are tried only when nothing else can answer. Health is per process and
 * in memory: an instance learns from its own calls.
 */
#ifndef TG_ROUTING_H
#define TG_ROUTING_H

#include <stdint.h>

#include "catalog/catalog.h"
#include "core/config.h"

#define ROUTE_HEALTH_SLOTS 1024 /* deployments tracked; more share no slot and are never cooled */

void routing_configure(const tg_config_t *cfg);
int64_t routing_attempts(void);  /* attempts a call may make */
int64_t routing_budget_us(void); /* no new attempt after this much of a call */
int64_t routing_retries(void);   /* rounds over the deployments after the first */

/* The order in which to try deps[0..n): order[] gets n indexes. */
void routing_order(const struct deployment *deps, int n, int *order);

/* An attempt's outcome: ok 1 when the deployment answered (any answer that
 * is not a failure of the deployment itself), 0 when it failed (could not
 * connect, timed out, broke, 429, 5xx). Returns 1 when this failure started
 * a cooldown. */
int routing_report(const struct deployment *d, int ok);

/* Backoff before attempt k (k >= 1, the next one): full jitter on
 * 50 ms * 2^(k-1), capped at 1 s; a provider's Retry-After (seconds, may be
 * NULL) of up to 2 s is honoured instead. Microseconds. */
int64_t routing_backoff_us(int k, const char *retry_after);

/* Each tracked deployment, for pages and /metrics. */
struct route_health {
	int64_t model_id, deployment_id, provider_id;
	char upstream_model[CATALOG_NAME_MAX + 1];
	int64_t failures;       /* in a row */
	int64_t cooling_for_ms; /* > 0 while cooling down */
	uint64_t ok_total, failed_total, cooldowns_total;
};
void routing_each(void (*fn)(void *ud, const struct route_health *h), void *ud);
/* The state of one deployment (zeros when it was never tried). */
void routing_health_of(int64_t model_id, int64_t deployment_id, int64_t provider_id,
		       const char *upstream_model, struct route_health *out);
void routing_reset(void); /* tests */

#endif
