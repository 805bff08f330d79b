/* page_alerts.c - budget alerts of the current org: the balance threshold,
 * per-key spend-share thresholds, the webhook (its secret shown once) and
 * recent deliveries; plus the banner every member of the org sees while a
 * threshold's condition holds.
 *
 * Org admins and owners (instance admins count as owners) manage alerts;
 * anyone else gets 404 for these pages and sees only the banner.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "apikeys/apikeys.h"
#include "core/timeutil.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/web.h"

#define DELIVERIES_SHOWN 20
#define BANNER_MAX 8

static int may_manage(const tg_req_t *r)
{
	return r->session->org.id != 0 && r->session->role >= ROLE_ADMIN;
}

static const char *period_words(int p)
{
	switch (p) {
	case PERIOD_DAILY:
		return "today";
	case PERIOD_WEEKLY:
		return "this week";
	case PERIOD_MONTHLY:
		return "this month";
	default:
		return "in total";
	}
}

static const char *limit_words(int p)
{
	switch (p) {
	case PERIOD_DAILY:
		return "per day";
	case PERIOD_WEEKLY:
		return "per week";
	case PERIOD_MONTHLY:
		return "per month";
	default:
		return "in total";
	}
}

/* "https://host/..." -> "https://host" for audit entries: a path or query
 * may carry a token. */
static void url_origin(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://");
	size_t len = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : strlen(url);

	snprintf(out, n, "%.*s", (int)len, url);
}

/* Submitted values to show again after a 422. */
struct alerts_form {
	const char *balance, *percent, *url;
	int64_t key_id;
};

/* ------------------------------------------------------------ the page */

static void add_thresholds(cJSON *d, int64_t org_id, const struct alerts_form *f, int64_t balance)
{
	tg_stmt *st = db_stmt("SELECT coalesce(t.key_id, 0), t.value, t.fired_at"
			      " FROM alert_thresholds t WHERE t.org_id = :o"
			      " ORDER BY t.key_id IS NOT NULL, t.id LIMIT 64");
	struct row {
		int64_t key_id, value, fired_at;
	} rows[ALERTS_MAX_PER_ORG];
	int n = 0, i;
	int64_t now = time_now();
	cJSON *list = cJSON_AddArrayToObject(d, "key_alerts");

	if (st && !db_bind_int64(st, ":o", org_id)) {
		while (n < ALERTS_MAX_PER_ORG && db_step(st) == DB_ROW) {
			rows[n].key_id = db_col_int64(st, 0);
			rows[n].value = db_col_int64(st, 1);
			rows[n].fired_at = db_col_int64(st, 2);
			n++;
		}
	}
	db_done(st);
	for (i = 0; i < n; i++) {
		struct apikey k;
		int64_t spent;
		cJSON *o;

		if (rows[i].key_id == 0) {
			char v[MONEY_FMT_LEN];

			o = cJSON_AddObjectToObject(d, "balance_alert");
			money_format_short(rows[i].value, v);
			cJSON_AddStringToObject(o, "value", v);
			cJSON_AddBoolToObject(o, "below", balance < rows[i].value);
			web_add_time(o, "fired", rows[i].fired_at);
			if (!f->balance)
				cJSON_AddStringToObject(cJSON_GetObjectItem(d, "form"), "balance",
							v);
			continue;
		}
		if (apikey_get(rows[i].key_id, &k) != TG_OK)
			continue;
		spent = ledger_key_spend(k.id, apikey_period_start(k.period, now));
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "key_id", (double)k.id);
		cJSON_AddStringToObject(o, "prefix", k.prefix);
		cJSON_AddStringToObject(o, "name", k.name);
		cJSON_AddNumberToObject(o, "percent", (double)rows[i].value);
		web_add_money(o, "spent", spent);
		cJSON_AddStringToObject(o, "period_words", period_words(k.period));
		if (k.spend_limit > 0) {
			web_add_money(o, "limit", k.spend_limit);
			cJSON_AddStringToObject(o, "limit_words", limit_words(k.period));
		}
		cJSON_AddBoolToObject(o, "holds",
				      alerts_share_holds(spent, k.spend_limit, rows[i].value));
		cJSON_AddBoolToObject(o, "inactive", apikey_state_of(&k, now) >= APIKEY_EXPIRED);
		web_add_time(o, "fired", rows[i].fired_at);
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddBoolToObject(d, "has_key_alerts", cJSON_GetArraySize(list) > 0);
}

/* Active keys of the org with a spend limit, for the key select. */
static void add_key_choices(cJSON *d, int64_t org_id, int64_t selected)
{
	tg_stmt *st = db_stmt("SELECT id, prefix, name, spend_limit, spend_period FROM api_keys"
			      " WHERE org_id = :o AND spend_limit > 0"
			      " AND (revoked_at IS NULL OR revoked_at > :now)"
			      " AND (expires_at IS NULL OR expires_at > :now)"
			      " ORDER BY name, id LIMIT 500");
	cJSON *a = cJSON_AddArrayToObject(d, "key_choices");

	if (st && !db_bind_int64(st, ":o", org_id) && !db_bind_int64(st, ":now", time_now())) {
		while (db_step(st) == DB_ROW) {
			char label[600], lim[MONEY_FMT_LEN];
			int64_t id = db_col_int64(st, 0);
			int p = apikey_period_parse(db_col_text(st, 4));
			cJSON *o = cJSON_CreateObject();

			money_format_short(db_col_int64(st, 3), lim);
			snprintf(label, sizeof(label), "%s… %s (limit %s %s)", db_col_text(st, 1),
				 db_col_text(st, 2), lim, limit_words(p < 0 ? PERIOD_NONE : p));
			cJSON_AddNumberToObject(o, "id", (double)id);
			cJSON_AddStringToObject(o, "label", label);
			cJSON_AddBoolToObject(o, "selected", id == selected);
			cJSON_AddItemToArray(a, o);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_key_choices", cJSON_GetArraySize(a) > 0);
}

static void add_deliveries(cJSON *d, int64_t org_id)
{
	tg_stmt *st = db_stmt("SELECT created_at, event_id, kind, attempt, status, ok, error,"
			      " duration_ms FROM alert_deliveries WHERE org_id = :o"
			      " ORDER BY id DESC LIMIT :n");
	cJSON *a = cJSON_AddArrayToObject(d, "deliveries");

	if (st && !db_bind_int64(st, ":o", org_id) && !db_bind_int64(st, ":n", DELIVERIES_SHOWN)) {
		while (db_step(st) == DB_ROW) {
			cJSON *o = cJSON_CreateObject();
			char status[16];
			int64_t code = db_col_int64(st, 4);

			web_add_time(o, "time", db_col_int64(st, 0));
			cJSON_AddStringToObject(o, "event", db_col_text(st, 1));
			cJSON_AddStringToObject(o, "kind",
						strcmp(db_col_text(st, 2), "key_share") == 0 ?
							"Key spend" :
							"Balance");
			cJSON_AddNumberToObject(o, "attempt", (double)db_col_int64(st, 3));
			snprintf(status, sizeof(status), "%lld", (long long)code);
			cJSON_AddStringToObject(o, "status", code ? status : "—");
			cJSON_AddBoolToObject(o, "ok", db_col_int64(st, 5) != 0);
			cJSON_AddStringToObject(o, "error", db_col_text(st, 6));
			cJSON_AddNumberToObject(o, "ms", (double)db_col_int64(st, 7));
			cJSON_AddItemToArray(a, o);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_deliveries", cJSON_GetArraySize(a) > 0);
}

/* Render the page; error (a 422) and secret (shown once) may be NULL. */
static int render(tg_req_t *r, int status, const struct alerts_form *f, const char *error,
		  const char *secret)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject(), *form;
	char url[ALERTS_URL_MAX + 1];
	int64_t balance = 0;

	if (!d)
		return resp_error(r, 500, "server_error", NULL, "Out of memory.");
	ledger_balance(s->org.id, &balance);
	cJSON_AddStringToObject(d, "org", s->org.name);
	web_add_money(d, "balance", balance);
	form = cJSON_AddObjectToObject(d, "form");
	if (f->balance)
		cJSON_AddStringToObject(form, "balance", f->balance);
	cJSON_AddStringToObject(form, "percent", f->percent ? f->percent : "80");
	add_thresholds(d, s->org.id, f, balance);
	add_key_choices(d, s->org.id, f->key_id);
	if (alerts_webhook_get(s->org.id, url) == TG_OK) {
		cJSON *w = cJSON_AddObjectToObject(d, "webhook");

		cJSON_AddStringToObject(w, "url", url);
	}
	cJSON_AddStringToObject(form, "url", f->url ? f->url : url);
	if (secret)
		cJSON_AddStringToObject(d, "secret", secret);
	add_deliveries(d, s->org.id);
	web_flash_now(d, "error", error);
	return web_render(r, status, "alerts", d);
}

int page_alerts(tg_req_t *r)
{
	struct alerts_form f = { 0 };

	if (!may_manage(r))
		return web_not_found(r);
	return render(r, 200, &f, NULL, NULL);
}

/* ------------------------------------------------------------- actions */

int page_alerts_balance(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct alerts_form f = { 0 };
	char *value = NULL, *action = NULL, shown[MONEY_FMT_LEN], detail[96];
	const char *why = NULL;
	int64_t v = 0;
	int rc;

	if (!may_manage(r))
		return web_not_found(r);
	action = req_post(r, "action");
	if (action && strcmp(action, "remove") == 0) {
		rc = alerts_clear_balance(r->session->org.id);
		if (rc == TG_OK)
			audit_add(&a, r->session->org.id, "alerts.balance_remove",
				  r->session->org.name, "");
		rc = web_redirect_flash(r, "/alerts", rc == TG_OK ? "ok" : "warn",
					rc == TG_OK ? "Balance alert removed." :
						      "There was no balance alert to remove.");
		goto out;
	}
	value = req_post(r, "balance");
	web_trim(value);
	f.balance = value ? value : "";
	if (!value || !*value)
		why = "Enter the balance, in credits, below which to alert (e.g. 5.00).";
	else if (money_parse(value, &v, &why) == TG_OK && v <= 0)
		why = "The balance threshold must be more than zero.";
	if (why) {
		rc = render(r, 422, &f, why, NULL);
		goto out;
	}
	if ((rc = alerts_set_balance(r->session->org.id, v))) {
		rc = render(r, 500, &f, "Could not save the balance alert.", NULL);
		goto out;
	}
	money_format_short(v, shown);
	snprintf(detail, sizeof(detail), "balance below %s", shown);
	audit_add(&a, r->session->org.id, "alerts.balance", r->session->org.name, detail);
	rc = web_redirect_flash(
		r, "/alerts", "ok",
		"Balance alert saved. It fires when a call takes the balance below it.");
out:
	free(value);
	free(action);
	return rc;
}

int page_alerts_key(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct alerts_form f = { 0 };
	char *key_s = NULL, *pct_s = NULL, target[APIKEY_NAME_MAX * 4 + 32], detail[64];
	const char *why = NULL;
	int64_t key_id, pct = 0;
	struct apikey k;
	int rc;

	if (!may_manage(r))
		return web_not_found(r);
	key_s = req_post(r, "key_id");
	pct_s = req_post(r, "percent");
	web_trim(pct_s);
	key_id = web_parse_id(key_s);
	f.key_id = key_id;
	f.percent = pct_s ? pct_s : "";
	if (!key_id) {
		why = "Choose a key.";
	} else {
		pct = web_parse_id(pct_s);
		if (!pct || pct > 100)
			why = "Enter a share between 1 and 100 percent (a whole number).";
	}
	if (why || (rc = alerts_set_key_share(r->session->org.id, key_id, pct, &why))) {
		rc = render(r, why ? 422 : 500, &f, why ? why : "Could not save the key alert.",
			    NULL);
		goto out;
	}
	if (apikey_get(key_id, &k) == TG_OK)
		snprintf(target, sizeof(target), "%s %s", k.prefix, k.name);
	else
		snprintf(target, sizeof(target), "key %lld", (long long)key_id);
	snprintf(detail, sizeof(detail), "spend at %lld%% of the limit", (long long)pct);
	audit_add(&a, r->session->org.id, "alerts.key", target, detail);
	rc = web_redirect_flash(r, "/alerts", "ok", "Key spend alert saved.");
out:
	free(key_s);
	free(pct_s);
	return rc;
}

int page_alerts_key_remove(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	int64_t key_id = web_param_id(r, 0);
	char target[APIKEY_NAME_MAX * 4 + 32];
	struct apikey k;

	if (!may_manage(r))
		return web_not_found(r);
	if (!key_id || apikey_get(key_id, &k) != TG_OK || k.org_id != r->session->org.id ||
	    alerts_clear_key_share(r->session->org.id, key_id) != TG_OK)
		return web_redirect_flash(r, "/alerts", "warn", "There was no such key alert.");
	snprintf(target, sizeof(target), "%s %s", k.prefix, k.name);
	audit_add(&a, r->session->org.id, "alerts.key_remove", target, "");
	return web_redirect_flash(r, "/alerts", "ok", "Key spend alert removed.");
}

int page_alerts_webhook(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct alerts_form f = { 0 };
	char *url = NULL, secret[ALERTS_SECRET_LEN + 1] = "", origin[ALERTS_URL_MAX + 1];
	const char *why = NULL;
	int made = 0, rc;

	if (!may_manage(r))
		return web_not_found(r);
	url = req_post(r, "url");
	web_trim(url);
	f.url = url ? url : "";
	rc = alerts_webhook_set(r->session->org.id, url ? url : "", secret, &made, &why);
	if (rc) {
		rc = render(r, why ? 422 : 500, &f, why ? why : "Could not save the webhook.",
			    NULL);
		goto out;
	}
	url_origin(url, origin, sizeof(origin));
	audit_add(&a, r->session->org.id, made ? "alerts.webhook_create" : "alerts.webhook_update",
		  r->session->org.name, origin);
	if (made) {
		/* The secret is shown on this response only (never a redirect). */
		struct alerts_form none = { 0 };

		rc = render(r, 200, &none, NULL, secret);
	} else {
		rc = web_redirect_flash(r, "/alerts", "ok",
					"Webhook URL saved. The secret is unchanged.");
	}
out:
	sodium_memzero(secret, sizeof(secret));
	free(url);
	return rc;
}

int page_alerts_webhook_rotate(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct alerts_form f = { 0 };
	char secret[ALERTS_SECRET_LEN + 1] = "";
	int rc;

	if (!may_manage(r))
		return web_not_found(r);
	rc = alerts_webhook_rotate(r->session->org.id, secret);
	if (rc == TG_ENOTFOUND)
		return web_redirect_flash(r, "/alerts", "warn", "Set a webhook URL first.");
	if (rc)
		return web_redirect_flash(r, "/alerts", "error", "Could not rotate the secret.");
	audit_add(&a, r->session->org.id, "alerts.webhook_rotate", r->session->org.name, "");
	rc = render(r, 200, &f, NULL, secret);
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

int page_alerts_webhook_remove(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);

	if (!may_manage(r))
		return web_not_found(r);
	if (alerts_webhook_remove(r->session->org.id) != TG_OK)
		return web_redirect_flash(r, "/alerts", "warn", "There was no webhook to remove.");
	audit_add(&a, r->session->org.id, "alerts.webhook_remove", r->session->org.name, "");
	return web_redirect_flash(r, "/alerts", "ok",
				  "Webhook removed. Alerts now show only in the dashboard.");
}

/* -------------------------------------------------------------- banner */

void web_alerts_layout(tg_req_t *r, cJSON *data)
{
	struct web_session *s = r->session;
	struct alert_condition c[BANNER_MAX];
	cJSON *b, *items;
	int n, i;

	if (!s || !s->org.id || s->role == ROLE_NONE)
		return;
	n = alerts_active(s->org.id, c, BANNER_MAX);
	if (n <= 0)
		return;
	b = cJSON_AddObjectToObject(data, "budget_alert");
	items = cJSON_AddArrayToObject(b, "items");
	for (i = 0; i < n; i++) {
		char text[800], cur[MONEY_FMT_LEN], val[MONEY_FMT_LEN];
		cJSON *o = cJSON_CreateObject();

		money_format_short(c[i].current, cur);
		if (c[i].kind == ALERT_BALANCE_BELOW) {
			money_format_short(c[i].value, val);
			snprintf(
				text, sizeof(text),
				"The balance of %s is %s credits, below the alert threshold of %s.",
				s->org.name, cur, val);
		} else {
			money_format_short(c[i].limit, val);
			snprintf(text, sizeof(text),
				 "Key %s… (%s) has spent %s of its %s credit limit %s, at or over "
				 "its %lld%% alert.",
				 c[i].prefix, c[i].name, cur, val, period_words(c[i].period),
				 (long long)c[i].value);
		}
		cJSON_AddStringToObject(o, "text", text);
		cJSON_AddItemToArray(items, o);
	}
	cJSON_AddBoolToObject(b, "manage", s->role >= ROLE_ADMIN);
}
