/* alerts.h - budget alerts: thresholds per org (balance below an amount) and
 * per key (a share of the key's spend limit for its period), crossing
 * detection after every billed call, the conditions behind the dashboard
 * banner, and signed webhook deliveries on a background thread.
 *
 * This module owns alert_thresholds, alert_webhooks and alert_deliveries.
 *
 * Crossings:
 *   balance_below - fires when a debit takes the balance from >= value to
 *                   < value (exact: the ledger gives each debit's balance
 *                   after, so one debit in a run crosses). A top-up that lifts
 *                   the balance back re-arms it by itself.
 *   key_share     - fires when the key's spend in its period reaches
 *                   value% of its spend limit; re-armed when that no longer
 *                   holds (a new period, a higher limit).
 * The hot path (alerts_after_debit) only looks at thresholds cached in
 * memory; key spend, the payload and the webhook POST are work for the
 * background thread. A crossing fires once; the webhook gets up to three
 * attempts (1 s and 3 s apart, 5 s timeout each), each recorded in
 * alert_deliveries.
 *
 * Webhook request: POST, Content-Type: application/json, body
 *   {"id","type":"budget.threshold_crossed","org","org_id",
 *    "key":{"id","prefix","name"}|null,
 *    "threshold":{"kind":"key_share"|"balance_below","value":"80%"|"5.00"},
 *    "current":{"spent","limit"}|{"balance"},"at":<unix seconds>}
 * and `X-Tollgate-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with
 * the org's webhook secret>`. The secret is shown once when made; at rest it
 * is sealed with the server's box key. Nothing here logs secrets or URLs.
 */
#ifndef TG_ALERTS_H
#define TG_ALERTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/common.h"
#include "crypto/secrets.h"

enum alert_kind { ALERT_BALANCE_BELOW = 0, ALERT_KEY_SHARE };

#define ALERTS_URL_MAX 512
#define ALERTS_SECRET_LEN 49 /* "whsec_" + 43 characters */
#define ALERTS_SIG_LEN 71    /* "sha256=" + 64 hex digits */
#define ALERTS_ATTEMPTS 3
#define ALERTS_TIMEOUT_MS 5000
#define ALERTS_MAX_PER_ORG 64 /* thresholds an org may have */

/* Keep the box key for webhook secrets. Call once at start (app.c). */
void alerts_init(const tg_secrets_t *secrets);
/* Whether webhooks may go to addresses that are not public (loopback,
 * private, link-local, ...): off unless the operator sets webhook_private_ok.
 * Set once before serving. */
void alerts_allow_private(int yes);
/* 1 when the address is not a public unicast one (see webhook.c). */
int alerts_addr_private(const struct sockaddr *sa);
/* The delivery thread (serve only). Stop joins it (an attempt in flight is
 * aborted, events still queued are dropped) and frees the threshold cache;
 * it is safe to call when the thread never started. */
int alerts_worker_start(void);
void alerts_worker_stop(void);

/* After a billed call committed: cost debited and the org's balance after it.
 * Cheap: a lookup in the cached thresholds; any further work is queued for
 * the background thread. Does nothing while the thread is not running. */
void alerts_after_debit(int64_t org_id, int64_t key_id, int64_t cost, int64_t balance_after);

/* --- crossing logic (pure; the unit tests drive these) --- */
/* 1 when a debit taking the balance from before to after crosses below. */
int alerts_balance_crossed(int64_t threshold, int64_t before, int64_t after);
/* 1 when spent is at least percent% of limit (limit <= 0: never). */
int alerts_share_holds(int64_t spent, int64_t limit, int64_t percent);
struct alerts_share_state {
	int armed;      /* the next observation that holds fires */
	int64_t period; /* period start of the last observation */
};
/* One observation of a key_share threshold in the period starting at
 * period_start; returns 1 when it fires. A new period re-arms. */
int alerts_share_step(struct alerts_share_state *s, int64_t period_start, int holds);

/* --- validation and signing --- */
/* http(s)://host..., at most ALERTS_URL_MAX characters, no spaces or control
 * characters (CR/LF included). TG_EINVAL with a sentence in *why. */
int alerts_check_url(const char *url, const char **why);
/* "sha256=<hex>" of body keyed with secret. */
void alerts_sign(const char *secret, const void *body, size_t n, char out[ALERTS_SIG_LEN + 1]);

/* --- settings (the alerts page); each reloads the cache --- */
/* value > 0 micro-credits; TG_EINVAL otherwise. */
int alerts_set_balance(int64_t org_id, int64_t value);
/* TG_ENOTFOUND when there was none. */
int alerts_clear_balance(int64_t org_id);
/* percent 1..100 of a key of org_id that has a spend limit (TG_EINVAL with
 * *why); replaces the key's threshold. Armed only if it does not hold now. */
int alerts_set_key_share(int64_t org_id, int64_t key_id, int64_t percent, const char **why);
int alerts_clear_key_share(int64_t org_id, int64_t key_id);
/* Set the org's webhook URL. When the org had no webhook a new secret is made
 * and written to secret_out (shown once; *made = 1); otherwise the secret is
 * kept and secret_out is "". TG_EINVAL with *why for a bad URL. */
int alerts_webhook_set(int64_t org_id, const char *url, char secret_out[ALERTS_SECRET_LEN + 1],
		       int *made, const char **why);
/* New secret for an existing webhook (TG_ENOTFOUND when none). */
int alerts_webhook_rotate(int64_t org_id, char secret_out[ALERTS_SECRET_LEN + 1]);
int alerts_webhook_remove(int64_t org_id);
/* The org's webhook URL (TG_ENOTFOUND when none). */
int alerts_webhook_get(int64_t org_id, char url[ALERTS_URL_MAX + 1]);

/* --- conditions that hold now (the banner) --- */
struct alert_condition {
	enum alert_kind kind;
	int64_t value;   /* micro-credits or percent */
	int64_t current; /* balance or spend in the period */
	int64_t limit;   /* key spend limit */
	int64_t key_id;
	char prefix[16];
	char name[401];
	int period; /* enum spend_period of the key */
};
/* Up to max conditions of org_id that hold now; returns how many. Returns 0
 * at once (no database read) when the org has no thresholds. */
int alerts_active(int64_t org_id, struct alert_condition *out, int max);

#endif
