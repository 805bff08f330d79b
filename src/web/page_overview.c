/* page_overview.c - the landing page and the org switcher.
 *
 * The overview shows the org's balance, spend today and this month, requests
 * and tokens today, a 30-day spend chart, the top models and keys of the
 * month and the last requests. Members see what their own keys did; org
 * admins, owners and instance admins the whole org. Sums read the daily
 * rollup (see page_usage.c); the balance comes from the ledger.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/timeutil.h"
#include "ledger/ledger.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/web.h"

#define TOP_N 5
#define RECENT_N 10

/* Requests, tokens and spend since `since` in the scope. */
static void add_totals(cJSON *o, const char *prefix, int64_t org, int64_t user, int64_t since)
{
	tg_stmt *st = db_stmt("SELECT coalesce(sum(requests), 0), coalesce(sum(prompt_tokens"
			      " + completion_tokens), 0), coalesce(sum(cost), 0)"
			      " FROM usage_daily WHERE org_id = :org AND day >= :since"
			      " AND (:user = 0 OR key_id IN (SELECT id FROM api_keys"
			      " WHERE org_id = :org AND created_by = :user))");
	int64_t v[3] = { 0, 0, 0 };
	char k[32];
	int i;

	if (st && !db_bind_int64(st, ":org", org) && !db_bind_int64(st, ":user", user) &&
	    !db_bind_int64(st, ":since", since) && db_step(st) == DB_ROW)
		for (i = 0; i < 3; i++)
			v[i] = db_col_int64(st, i);
	db_done(st);
	snprintf(k, sizeof(k), "%s_requests", prefix);
	web_add_count(o, k, v[0]);
	snprintf(k, sizeof(k), "%s_tokens", prefix);
	web_add_count(o, k, v[1]);
	snprintf(k, sizeof(k), "%s_spend", prefix);
	web_add_money(o, k, v[2]);
}

/* The month's top models (by_key 0) or keys (1) by spend. */
static void add_top(cJSON *d, const char *name, int by_key, int64_t org, int64_t user,
		    int64_t since)
{
	cJSON *list = cJSON_AddArrayToObject(d, name);
	tg_stmt *st;
	char has[48];

	if (by_key)
		st = db_stmt(
			"SELECT u.key_id, coalesce(k.prefix, ''), coalesce(k.name, ''),"
			" sum(u.requests), sum(u.prompt_tokens + u.completion_tokens), sum(u.cost)"
			" FROM usage_daily u LEFT JOIN api_keys k ON k.id = u.key_id"
			" WHERE u.org_id = :org AND u.day >= :since"
			" AND (:user = 0 OR u.key_id IN (SELECT id FROM api_keys"
			" WHERE org_id = :org AND created_by = :user))"
			" GROUP BY u.key_id, k.prefix, k.name"
			" ORDER BY sum(u.cost) DESC, sum(u.requests) DESC"
			" LIMIT :limit");
	else
		st = db_stmt(
			"SELECT 0, model, '', sum(requests), sum(prompt_tokens + "
			"completion_tokens),"
			" sum(cost) FROM usage_daily WHERE org_id = :org AND day >= :since"
			" AND (:user = 0 OR key_id IN (SELECT id FROM api_keys"
			" WHERE org_id = :org AND created_by = :user))"
			" GROUP BY model ORDER BY sum(cost) DESC, sum(requests) DESC LIMIT :limit");
	if (st && !db_bind_int64(st, ":org", org) && !db_bind_int64(st, ":user", user) &&
	    !db_bind_int64(st, ":since", since) && !db_bind_int64(st, ":limit", TOP_N)) {
		while (db_step(st) == DB_ROW) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddNumberToObject(o, "key_id", (double)db_col_int64(st, 0));
			cJSON_AddStringToObject(o, "label", db_col_text(st, 1));
			cJSON_AddStringToObject(o, "name", db_col_text(st, 2));
			web_add_count(o, "requests", db_col_int64(st, 3));
			web_add_count(o, "tokens", db_col_int64(st, 4));
			web_add_money(o, "spend", db_col_int64(st, 5));
			cJSON_AddItemToArray(list, o);
		}
	}
	db_done(st);
	snprintf(has, sizeof(has), "has_%s", name);
	cJSON_AddBoolToObject(d, has, cJSON_GetArraySize(list) > 0);
}

int page_overview(tg_req_t *r)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject(), *o, *c, *recent;
	int64_t now = time_now(), user, balance = 0;

	if (!s->org.id || s->role < ROLE_MEMBER)
		return web_render(r, 200, "overview", d);
	user = s->role >= ROLE_ADMIN ? 0 : s->user.id;
	o = cJSON_AddObjectToObject(d, "current_org");
	cJSON_AddNumberToObject(o, "id", (double)s->org.id);
	cJSON_AddStringToObject(o, "name", s->org.name);
	cJSON_AddStringToObject(o, "role",
				s->user.is_admin && membership_role(s->org.id, s->user.id) ==
							    ROLE_NONE ?
					"instance admin" :
					role_name(s->role));
	ledger_balance(s->org.id, &balance);
	web_add_money(o, "balance", balance);
	cJSON_AddBoolToObject(o, "negative", balance < 0);
	cJSON_AddBoolToObject(d, "mine_only", user != 0);
	add_totals(d, "today", s->org.id, user, now - now % 86400);
	add_totals(d, "month", s->org.id, user, ledger_month_start(now));
	if ((c = web_usage_chart(s->org.id, 0, user, 30)))
		cJSON_AddItemToObject(d, "spend_chart", c);
	add_top(d, "top_models", 0, s->org.id, user, ledger_month_start(now));
	add_top(d, "top_keys", 1, s->org.id, user, ledger_month_start(now));
	recent = cJSON_AddArrayToObject(d, "requests");
	cJSON_AddBoolToObject(d, "has_recent",
			      web_recent_requests(recent, s->org.id, user, RECENT_N) > 0);
	return web_render(r, 200, "overview", d);
}

int page_switch_org(tg_req_t *r)
{
	char *v = req_post(r, "org_id");
	int64_t id = web_parse_id(v);

	free(v);
	if (!id || web_org_role(r, id) == ROLE_NONE)
		return web_not_found(r);
	session_set_org(r->session->row.id, id);
	return resp_redirect(r, "/");
}
