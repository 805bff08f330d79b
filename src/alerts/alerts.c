/* alerts.c - budget alerts: thresholds, crossings and what fires; see alerts.h.
 * Delivery (the thread, the POST, retries, address checks) is webhook.c. */
#include "alerts/alerts.h"
#include "alerts/alerts_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "apikeys/apikeys.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"

/* ------------------------------------------------------- crossing logic */

int alerts_balance_crossed(int64_t threshold, int64_t before, int64_t after)
{
	return before >= threshold && after < threshold;
}

int alerts_share_holds(int64_t spent, int64_t limit, int64_t percent)
{
	if (limit <= 0 || percent <= 0)
		return 0;
	return (__int128)spent * 100 >= (__int128)limit * percent;
}

int alerts_share_step(struct alerts_share_state *s, int64_t period_start, int holds)
{
	if (period_start != s->period) {
		s->period = period_start;
		s->armed = 1;
	}
	if (!holds) {
		s->armed = 1;
		return 0;
	}
	if (!s->armed)
		return 0;
	s->armed = 0;
	return 1;
}

/* -------------------------------------------------- threshold cache */

struct cached {
	int64_t org_id, key_id, value;
	enum alert_kind kind;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached *cache; /* sorted by org_id */
static size_t cache_n;
static int cache_loaded;

static int cmp_cached(const void *a, const void *b)
{
	const struct cached *x = a, *y = b;

	return x->org_id < y->org_id ? -1 : x->org_id > y->org_id;
}

/* Read every threshold; with cache_mu held. */
static int cache_load_locked(void)
{
	tg_stmt *st = db_stmt("SELECT org_id, coalesce(key_id, 0), kind, value"
			      " FROM alert_thresholds");
	struct cached *v = NULL, *nv;
	size_t n = 0, cap = 0;
	int rc = TG_OK;

	if (!st)
		return TG_EDB;
	while (db_step(st) == DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = TG_ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n].org_id = db_col_int64(st, 0);
		v[n].key_id = db_col_int64(st, 1);
		v[n].kind = strcmp(db_col_text(st, 2), "key_share") == 0 ? ALERT_KEY_SHARE :
									   ALERT_BALANCE_BELOW;
		v[n].value = db_col_int64(st, 3);
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_cached);
	free(cache);
	cache = v;
	cache_n = n;
	v = NULL;
	cache_loaded = 1;
out:
	db_done(st);
	free(v);
	return rc;
}

static void cache_reload(void)
{
	pthread_mutex_lock(&cache_mu);
	if (cache_load_locked())
		cache_loaded = 0; /* try again on next use */
	pthread_mutex_unlock(&cache_mu);
}

/* First cached entry of org_id (cache_n when none); cache_mu held. */
static size_t cache_find_locked(int64_t org_id)
{
	size_t lo = 0, hi = cache_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cache[mid].org_id < org_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < cache_n && cache[lo].org_id == org_id ? lo : cache_n;
}

/* Copy the org's thresholds (at most max); returns how many. */
static int cache_org(int64_t org_id, struct cached *out, int max)
{
	size_t i;
	int n = 0;

	pthread_mutex_lock(&cache_mu);
	if (!cache_loaded)
		cache_load_locked();
	for (i = cache_find_locked(org_id); i < cache_n && cache[i].org_id == org_id && n < max;
	     i++)
		out[n++] = cache[i];
	pthread_mutex_unlock(&cache_mu);
	return n;
}

/* ---------------------------------------------------------- after a debit */

void alerts_after_debit(int64_t org_id, int64_t key_id, int64_t cost, int64_t balance_after)
{
	struct cached mine[ALERTS_MAX_PER_ORG];
	int64_t before;
	int n, i;

	if (!webhook_worker_running() || cost <= 0)
		return;
	n = cache_org(org_id, mine, ALERTS_MAX_PER_ORG);
	for (i = 0; i < n; i++) {
		if (mine[i].kind == ALERT_BALANCE_BELOW) {
			if (money_add(balance_after, cost, &before) == TG_OK &&
			    alerts_balance_crossed(mine[i].value, before, balance_after))
				webhook_enqueue(WEBHOOK_JOB_BALANCE_FIRE, org_id, 0, mine[i].value,
						balance_after);
		} else if (mine[i].key_id == key_id) {
			webhook_enqueue(WEBHOOK_JOB_KEY_CHECK, org_id, key_id, mine[i].value, 0);
		}
	}
}

/* ------------------------------------------------------------- events */

static void money_str(cJSON *o, const char *name, int64_t v)
{
	char s[MONEY_FMT_LEN];

	money_format_short(v, s);
	cJSON_AddStringToObject(o, name, s);
}

/* Build and deliver one crossing. k is NULL for balance_below. */
static void fire(int64_t org_id, const struct apikey *k, enum alert_kind kind, int64_t value,
		 int64_t current, int64_t at)
{
	const char *kname = kind == ALERT_KEY_SHARE ? "key_share" : "balance_below";
	unsigned char rnd[12];
	char id[4 + sizeof(rnd) * 2 + 1], pct[24];
	cJSON *j = cJSON_CreateObject(), *o;
	char *body = NULL;
	struct org org;

	if (!j)
		return;
	memcpy(id, "evt_", 4);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(id + 4, sizeof(id) - 4, rnd, sizeof(rnd));
	if (org_get(org_id, &org) != TG_OK)
		snprintf(org.name, sizeof(org.name), "%s", "");
	cJSON_AddStringToObject(j, "id", id);
	cJSON_AddStringToObject(j, "type", "budget.threshold_crossed");
	cJSON_AddStringToObject(j, "org", org.name);
	cJSON_AddNumberToObject(j, "org_id", (double)org_id);
	if (k) {
		o = cJSON_AddObjectToObject(j, "key");
		cJSON_AddNumberToObject(o, "id", (double)k->id);
		cJSON_AddStringToObject(o, "prefix", k->prefix);
		cJSON_AddStringToObject(o, "name", k->name);
	} else {
		cJSON_AddNullToObject(j, "key");
	}
	o = cJSON_AddObjectToObject(j, "threshold");
	cJSON_AddStringToObject(o, "kind", kname);
	if (kind == ALERT_KEY_SHARE) {
		snprintf(pct, sizeof(pct), "%lld%%", (long long)value);
		cJSON_AddStringToObject(o, "value", pct);
	} else {
		money_str(o, "value", value);
	}
	o = cJSON_AddObjectToObject(j, "current");
	if (k) {
		money_str(o, "spent", current);
		money_str(o, "limit", k->spend_limit);
	} else {
		money_str(o, "balance", current);
	}
	cJSON_AddNumberToObject(j, "at", (double)at);
	body = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!body)
		return;
	log_info("budget alert: org %lld crossed its %s threshold (%s)", (long long)org_id, kname,
		 id);
	webhook_deliver(org_id, id, kname, body);
	free(body);
}

static void job_balance(const struct webhook_job *j)
{
	tg_stmt *st = db_stmt("UPDATE alert_thresholds SET fired_at = :at WHERE org_id = :o"
			      " AND key_id IS NULL AND value = :v");

	if (!st || db_bind_int64(st, ":at", j->at) || db_bind_int64(st, ":o", j->org_id) ||
	    db_bind_int64(st, ":v", j->value) || db_exec_stmt(st)) {
		log_warn("budget alerts: could not record a crossing for org %lld",
			 (long long)j->org_id);
		return;
	}
	if (db_changes() == 0)
		return; /* the threshold was changed or removed meanwhile */
	fire(j->org_id, NULL, ALERT_BALANCE_BELOW, j->value, j->balance, j->at);
}

static void job_key(const struct webhook_job *j)
{
	tg_stmt *st = db_stmt("SELECT id, value, armed, fired_period FROM alert_thresholds"
			      " WHERE org_id = :o AND key_id = :k");
	struct alerts_share_state s;
	int64_t id, value, start, spent, now = time_now();
	struct apikey k;
	int fires, old_armed;

	if (!st || db_bind_int64(st, ":o", j->org_id) || db_bind_int64(st, ":k", j->key_id) ||
	    db_step(st) != DB_ROW) {
		db_done(st);
		return;
	}
	id = db_col_int64(st, 0);
	value = db_col_int64(st, 1);
	s.armed = old_armed = (int)db_col_int64(st, 2);
	s.period = db_col_int64(st, 3);
	db_done(st);
	if (apikey_get(j->key_id, &k) != TG_OK || k.org_id != j->org_id)
		return;
	start = apikey_period_start(k.period, now);
	spent = ledger_key_spend(k.id, start);
	fires = alerts_share_step(&s, start, alerts_share_holds(spent, k.spend_limit, value));
	if (fires || s.armed != old_armed || s.period != start) {
		st = db_stmt(
			"UPDATE alert_thresholds SET armed = :a, fired_period = :p,"
			" fired_at = CASE WHEN :f <> 0 THEN :now ELSE fired_at END WHERE id = :id");
		if (!st || db_bind_int64(st, ":a", s.armed) || db_bind_int64(st, ":p", s.period) ||
		    db_bind_int64(st, ":f", fires) || db_bind_int64(st, ":now", now) ||
		    db_bind_int64(st, ":id", id) || db_exec_stmt(st))
			return;
	}
	if (fires)
		fire(j->org_id, &k, ALERT_KEY_SHARE, value, spent, now);
}

static void run_job(const struct webhook_job *j)
{
	if (j->type == WEBHOOK_JOB_BALANCE_FIRE)
		job_balance(j);
	else
		job_key(j);
}

int alerts_worker_start(void)
{
	return webhook_worker_start(run_job);
}

void alerts_worker_stop(void)
{
	webhook_worker_stop();
	pthread_mutex_lock(&cache_mu);
	free(cache);
	cache = NULL;
	cache_n = 0;
	cache_loaded = 0;
	pthread_mutex_unlock(&cache_mu);
}

void alerts_init(const tg_secrets_t *secrets)
{
	webhook_init(secrets);
}

/* ------------------------------------------------------------ settings */

static int org_threshold_count(int64_t org_id)
{
	tg_stmt *st = db_stmt("SELECT count(*) FROM alert_thresholds WHERE org_id = :o");
	int n = 0;

	if (st && !db_bind_int64(st, ":o", org_id) && db_step(st) == DB_ROW)
		n = (int)db_col_int64(st, 0);
	db_done(st);
	return n;
}

int alerts_set_balance(int64_t org_id, int64_t value)
{
	tg_stmt *st;
	int rc;

	if (value <= 0)
		return TG_EINVAL;
	st = db_stmt(
		"INSERT INTO alert_thresholds (org_id, kind, value, updated_at)"
		" VALUES (:o, 'balance_below', :v, :now)"
		" ON CONFLICT (org_id) WHERE key_id IS NULL DO UPDATE SET value = excluded.value,"
		" fired_at = 0, updated_at = excluded.updated_at");
	if (!st || db_bind_int64(st, ":o", org_id) || db_bind_int64(st, ":v", value) ||
	    db_bind_int64(st, ":now", time_now()))
		return TG_EDB;
	rc = db_exec_stmt(st);
	cache_reload();
	return rc;
}

int alerts_clear_balance(int64_t org_id)
{
	tg_stmt *st = db_stmt("DELETE FROM alert_thresholds WHERE org_id = :o AND key_id IS NULL");
	int rc;

	if (!st || db_bind_int64(st, ":o", org_id))
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc == TG_OK && db_changes() == 0)
		rc = TG_ENOTFOUND;
	cache_reload();
	return rc;
}

int alerts_set_key_share(int64_t org_id, int64_t key_id, int64_t percent, const char **why)
{
	struct apikey k;
	tg_stmt *st;
	int64_t now = time_now(), start, spent;
	int holds, rc;

	if (percent < 1 || percent > 100) {
		*why = "Enter a share between 1 and 100 percent.";
		return TG_EINVAL;
	}
	if (apikey_get(key_id, &k) != TG_OK || k.org_id != org_id) {
		*why = "Choose one of this organization's keys.";
		return TG_EINVAL;
	}
	if (apikey_state_of(&k, now) >= APIKEY_EXPIRED) {
		*why = "This key no longer works; choose an active key.";
		return TG_EINVAL;
	}
	if (k.spend_limit <= 0) {
		*why = "This key has no spend limit. Set one on the key's page first.";
		return TG_EINVAL;
	}
	if (org_threshold_count(org_id) >= ALERTS_MAX_PER_ORG) {
		*why = "This organization has as many alerts as it may have; remove one first.";
		return TG_EINVAL;
	}
	start = apikey_period_start(k.period, now);
	spent = ledger_key_spend(k.id, start);
	holds = alerts_share_holds(spent, k.spend_limit, percent);
	st = db_stmt("INSERT INTO alert_thresholds (org_id, key_id, kind, value, armed,"
		     " fired_period, updated_at) VALUES (:o, :k, 'key_share', :v, :a, :p, :now)"
		     " ON CONFLICT (key_id) WHERE key_id IS NOT NULL DO UPDATE SET"
		     " value = excluded.value, armed = excluded.armed,"
		     " fired_period = excluded.fired_period, fired_at = 0,"
		     " updated_at = excluded.updated_at");
	if (!st || db_bind_int64(st, ":o", org_id) || db_bind_int64(st, ":k", key_id) ||
	    db_bind_int64(st, ":v", percent) || db_bind_int64(st, ":a", !holds) ||
	    db_bind_int64(st, ":p", start) || db_bind_int64(st, ":now", now))
		return TG_EDB;
	rc = db_exec_stmt(st);
	cache_reload();
	return rc;
}

int alerts_clear_key_share(int64_t org_id, int64_t key_id)
{
	tg_stmt *st = db_stmt("DELETE FROM alert_thresholds WHERE org_id = :o AND key_id = :k");
	int rc;

	if (!st || db_bind_int64(st, ":o", org_id) || db_bind_int64(st, ":k", key_id))
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc == TG_OK && db_changes() == 0)
		rc = TG_ENOTFOUND;
	cache_reload();
	return rc;
}

/* ----------------------------------------------------------- conditions */

int alerts_active(int64_t org_id, struct alert_condition *out, int max)
{
	struct cached mine[ALERTS_MAX_PER_ORG];
	int64_t now = time_now();
	int n, i, got = 0;

	n = cache_org(org_id, mine, ALERTS_MAX_PER_ORG);
	for (i = 0; i < n && got < max; i++) {
		struct alert_condition *c = &out[got];

		memset(c, 0, sizeof(*c));
		c->kind = mine[i].kind;
		c->value = mine[i].value;
		if (mine[i].kind == ALERT_BALANCE_BELOW) {
			if (ledger_balance(org_id, &c->current) != TG_OK || c->current >= c->value)
				continue;
		} else {
			struct apikey k;

			if (apikey_get(mine[i].key_id, &k) != TG_OK || k.org_id != org_id ||
			    apikey_state_of(&k, now) >= APIKEY_EXPIRED)
				continue;
			c->current = ledger_key_spend(k.id, apikey_period_start(k.period, now));
			if (!alerts_share_holds(c->current, k.spend_limit, c->value))
				continue;
			c->key_id = k.id;
			c->limit = k.spend_limit;
			c->period = (int)k.period;
			snprintf(c->prefix, sizeof(c->prefix), "%s", k.prefix);
			snprintf(c->name, sizeof(c->name), "%s", k.name);
		}
		got++;
	}
	return got;
}
