/* alerts_internal.h - what the alerts module's own files share: webhook
 * delivery, implemented in webhook.c (the background thread and its queue of
 * alert jobs, the signed POST through libcurl with its retries and delivery
 * log, and the checks that keep webhooks on public addresses). alerts.c
 * decides what fires; webhook.c gets it to the receiver. Only the files of
 * src/alerts/ include this; the rest of the program uses alerts.h.
 */
#ifndef TG_ALERTS_INTERNAL_H
#define TG_ALERTS_INTERNAL_H

#include <stdint.h>

#include "alerts/alerts.h"

enum webhook_job_type { WEBHOOK_JOB_BALANCE_FIRE = 0, WEBHOOK_JOB_KEY_CHECK };

/* One unit of work for the background thread; the queue owns the copy. */
struct webhook_job {
	struct webhook_job *next;
	enum webhook_job_type type;
	int64_t org_id, key_id, value, balance, at;
};

/* Called on the background thread for each job taken from the queue. */
typedef void (*webhook_job_fn)(const struct webhook_job *j);

/* Keep the box key that opens and seals webhook secrets. */
void webhook_init(const tg_secrets_t *secrets);
/* Start the thread that runs each queued job through run. Stop joins it
 * (an attempt in flight is aborted) and drops the jobs still queued; safe
 * when it never started. */
int webhook_worker_start(webhook_job_fn run);
void webhook_worker_stop(void);
/* 1 while the thread runs (jobs are accepted). */
int webhook_worker_running(void);
/* Queue a job (at = now); dropped when the thread is not running or the
 * queue is full. */
void webhook_enqueue(enum webhook_job_type type, int64_t org_id, int64_t key_id, int64_t value,
		     int64_t balance);
/* Sign body with the org's webhook secret and POST it, up to ALERTS_ATTEMPTS
 * times, recording each attempt in alert_deliveries. Nothing when the org
 * has no webhook. */
void webhook_deliver(int64_t org_id, const char *event_id, const char *kind, const char *body);

#endif
