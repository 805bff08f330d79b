/* page_requests.c - the request log (/requests, /requests/:id) and the
 * overview's last requests. Reads the `requests` table itself, one row per
 * gateway call; the scope and the filter choices are the usage page's
 * (web/page_usage.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/page_usage.h"
#include "web/web.h"

struct log_filter {
	char status[8]; /* "", "ok", "error" or a code */
	int64_t smin, smax;
	int64_t key;
	char model[WEB_MODEL_MAX];
	char from[24], to[24];
	int64_t from_t, to_t;
	int64_t before;
	const char *error;
	char qs[512];
};

static void log_filter_parse(tg_req_t *r, struct log_filter *f)
{
	char *status = req_query(r, "status"), *key = req_query(r, "key"),
	     *model = req_query(r, "model");
	char *from = req_query(r, "from"), *to = req_query(r, "to"),
	     *before = req_query(r, "before");
	const char *st = web_trim(status), *k = web_trim(key), *m = web_trim(model),
		   *fr = web_trim(from), *t = web_trim(to);
	buf_t qs;

	memset(f, 0, sizeof(*f));
	f->smin = 0;
	f->smax = 999;
	f->to_t = INT64_MAX;
	f->before = web_parse_id(before);
	if (st && *st) {
		if (strcmp(st, "ok") == 0) {
			f->smin = 200;
			f->smax = 399;
		} else if (strcmp(st, "error") == 0) {
			f->smin = 400;
		} else if (strlen(st) == 3 && isdigit((unsigned char)st[0]) && st[0] >= '1' &&
			   isdigit((unsigned char)st[1]) && isdigit((unsigned char)st[2])) {
			f->smin = f->smax = atoi(st);
		} else {
			f->error =
				"Filter the status by ok, error or a three-digit code such as 402.";
		}
		if (!f->error)
			snprintf(f->status, sizeof(f->status), "%s", st);
	}
	web_filter_key_model(k, m, &f->key, f->model, &f->error);
	web_day_range(fr, t, f->from, f->to, &f->from_t, &f->to_t, &f->error);
	if (!f->error && f->from_t >= f->to_t)
		f->error = "The start date is after the end date.";
	buf_init(&qs, sizeof(f->qs) - 1);
	web_qs_add(&qs, "status", f->status);
	web_qs_add_common(&qs, f->key, f->model, f->from, f->to);
	snprintf(f->qs, sizeof(f->qs), "%s", buf_cstr(&qs));
	buf_free(&qs);
	free(status);
	free(key);
	free(model);
	free(from);
	free(to);
	free(before);
}

static const char *status_badge(int64_t status)
{
	return status < 300                   ? "badge-ok" :
	       status == 402 || status == 429 ? "badge-warn" :
						"badge-danger";
}

static void add_ms(cJSON *o, const char *key, int64_t ms)
{
	char s[32];

	if (ms >= 10000)
		snprintf(s, sizeof(s), "%lld.%llds", (long long)(ms / 1000),
			 (long long)(ms % 1000 / 100));
	else
		snprintf(s, sizeof(s), "%lld ms", (long long)ms);
	cJSON_AddStringToObject(o, key, s);
}

/* Columns shared by the log and the overview's last requests. */
#define LOG_COLUMNS                                                                                \
	"r.id, r.created_at, coalesce(k.prefix, ''), coalesce(k.name, ''), coalesce(r.key_id, 0)," \
	" r.model, r.status, r.prompt_tokens, r.completion_tokens, r.cost, r.usage_source,"        \
	" r.total_ms, r.stream, r.endpoint, r.failed_over, r.attempt"

static cJSON *web_request_row(tg_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	int64_t status = db_col_int64(st, 6);

	cJSON_AddNumberToObject(o, "id", (double)db_col_int64(st, 0));
	web_add_time(o, "time", db_col_int64(st, 1));
	cJSON_AddStringToObject(o, "key_prefix", db_col_text(st, 2));
	cJSON_AddStringToObject(o, "key_name", db_col_text(st, 3));
	cJSON_AddNumberToObject(o, "key_id", (double)db_col_int64(st, 4));
	cJSON_AddStringToObject(o, "model", db_col_text(st, 5));
	web_add_int(o, "status", status);
	cJSON_AddStringToObject(o, "badge", status_badge(status));
	cJSON_AddBoolToObject(o, "failed", status >= 400);
	web_add_count(o, "prompt", db_col_int64(st, 7));
	web_add_count(o, "completion", db_col_int64(st, 8));
	web_add_count(o, "tokens", db_col_int64(st, 7) + db_col_int64(st, 8));
	web_add_money(o, "cost", db_col_int64(st, 9));
	cJSON_AddStringToObject(o, "source", db_col_text(st, 10));
	cJSON_AddBoolToObject(o, "estimated", strcmp(db_col_text(st, 10), "estimated") == 0);
	add_ms(o, "latency", db_col_int64(st, 11));
	cJSON_AddBoolToObject(o, "stream", db_col_int(st, 12));
	cJSON_AddStringToObject(o, "endpoint", db_col_text(st, 13));
	/* An attempt that failed over to another deployment: not a call of
	 * the client's (the call's answer has a row of its own). */
	cJSON_AddBoolToObject(o, "failed_over", db_col_int(st, 14));
	web_add_int(o, "attempt", db_col_int64(st, 15));
	return o;
}

int web_recent_requests(cJSON *list, int64_t org_id, int64_t user_id, int limit)
{
	/* The unary + keeps the planner on (org_id, id), newest first. */
	tg_stmt *st = db_stmt(
		"SELECT " LOG_COLUMNS " FROM requests r"
		" LEFT JOIN api_keys k ON k.id = r.key_id"
		" WHERE r.org_id = :org AND (:user = 0 OR +r.key_id IN"
		" (SELECT id FROM api_keys WHERE org_id = :org AND created_by = :user))"
		" ORDER BY r.id DESC LIMIT :limit");
	int n = 0;

	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id) ||
	    db_bind_int64(st, ":limit", limit)) {
		db_done(st);
		return TG_EDB;
	}
	while (db_step(st) == DB_ROW && n++ < limit)
		cJSON_AddItemToArray(list, web_request_row(st));
	db_done(st);
	return n;
}

int page_requests(tg_req_t *r)
{
	struct log_filter f;
	struct web_usage_scope sc = { 0, 0 };
	cJSON *d, *jf, *list;
	tg_stmt *st;
	int64_t last = 0;
	int n = 0, status = 200;

	if (!(d = web_usage_page_new(r, "requests", &sc, &status)))
		return status;
	log_filter_parse(r, &f);
	status = f.error ? 400 : 200;
	jf = web_usage_page_head(d, r, &sc, f.error, f.from, f.to, f.qs);
	{
		static const struct {
			const char *value, *label;
		} sts[] = {
			{ "ok", "Succeeded" },           { "error", "Failed" },
			{ "402", "402 out of credits" }, { "429", "429 rate limited" },
			{ "502", "502 upstream error" }, { "504", "504 upstream timeout" },
		};
		cJSON *a = cJSON_AddArrayToObject(jf, "statuses");
		size_t i;
		int found = 0;

		for (i = 0; i < TG_ARRAY_LEN(sts); i++) {
			cJSON *o = cJSON_CreateObject();
			int sel = strcmp(f.status, sts[i].value) == 0;

			found |= sel;
			cJSON_AddStringToObject(o, "value", sts[i].value);
			cJSON_AddStringToObject(o, "label", sts[i].label);
			cJSON_AddBoolToObject(o, "selected", sel);
			cJSON_AddItemToArray(a, o);
		}
		if (f.status[0] && !found) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "value", f.status);
			cJSON_AddStringToObject(o, "label", f.status);
			cJSON_AddBoolToObject(o, "selected", 1);
			cJSON_AddItemToArray(a, o);
		}
	}
	web_usage_filter_choices(jf, &sc, f.key, f.model);
	list = cJSON_AddArrayToObject(d, "requests");
	/* Unary + on the filtered columns keeps the planner on (org_id, id):
	 * a page is read newest first and stops after 51 matches. */
	st = db_stmt(
		"SELECT " LOG_COLUMNS " FROM requests r LEFT JOIN api_keys k ON k.id = r.key_id"
		" WHERE r.org_id = :org AND r.id < :before"
		" AND +r.status BETWEEN :smin AND :smax"
		" AND (:key = 0 OR +r.key_id = :key) AND (:model = '' OR r.model || '' = :model)"
		" AND +r.created_at >= :from AND +r.created_at < :to"
		" AND (:user = 0 OR +r.key_id IN (SELECT id FROM api_keys WHERE org_id = :org"
		" AND created_by = :user))"
		" ORDER BY r.id DESC LIMIT :limit");
	if (st && !db_bind_int64(st, ":org", sc.org) &&
	    !db_bind_int64(st, ":before", f.before ? f.before : INT64_MAX) &&
	    !db_bind_int64(st, ":smin", f.smin) && !db_bind_int64(st, ":smax", f.smax) &&
	    !db_bind_int64(st, ":key", f.key) && !db_bind_text(st, ":model", f.model) &&
	    !db_bind_int64(st, ":from", f.from_t) && !db_bind_int64(st, ":to", f.to_t) &&
	    !db_bind_int64(st, ":user", sc.user) &&
	    !db_bind_int64(st, ":limit", WEB_PAGE_SIZE + 1)) {
		while (db_step(st) == DB_ROW) {
			if (++n > WEB_PAGE_SIZE)
				break;
			last = db_col_int64(st, 0);
			cJSON_AddItemToArray(list, web_request_row(st));
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_requests", cJSON_GetArraySize(list) > 0);
	if (n > WEB_PAGE_SIZE)
		cJSON_AddNumberToObject(d, "older", (double)last);
	cJSON_AddBoolToObject(d, "newer", f.before != 0);
	cJSON_AddBoolToObject(d, "pager", n > WEB_PAGE_SIZE || f.before != 0);
	return web_render(r, status, "requests", d);
}

/* d.attempts: every row of the call request_id in attempt order (when it
 * has more than one), the one shown (id) marked. */
static void request_attempts(cJSON *d, const char *rid, int64_t id,
			     const struct web_usage_scope *sc)
{
	tg_stmt *st = db_stmt(
		"SELECT r.id, r.attempt, coalesce(p.name, ''), r.status, r.error, r.failed_over,"
		" r.upstream_ms FROM requests r LEFT JOIN providers p ON p.id = r.provider_id"
		" WHERE r.request_id = :rid AND r.org_id = :org AND (:user = 0 OR r.key_id IN"
		" (SELECT id FROM api_keys WHERE org_id = :org AND created_by = :user))"
		" ORDER BY r.attempt, r.id LIMIT 100");
	cJSON *list = cJSON_CreateArray();

	if (st && !db_bind_text(st, ":rid", rid) && !db_bind_int64(st, ":org", sc->org) &&
	    !db_bind_int64(st, ":user", sc->user)) {
		while (db_step(st) == DB_ROW) {
			cJSON *o = cJSON_CreateObject();
			int64_t status = db_col_int64(st, 3);

			cJSON_AddNumberToObject(o, "id", (double)db_col_int64(st, 0));
			web_add_int(o, "attempt", db_col_int64(st, 1));
			cJSON_AddStringToObject(o, "provider", db_col_text(st, 2));
			web_add_int(o, "status", status);
			cJSON_AddStringToObject(o, "badge", status_badge(status));
			cJSON_AddBoolToObject(o, "ok", status < 400);
			cJSON_AddStringToObject(o, "error", db_col_text(st, 4));
			cJSON_AddBoolToObject(o, "failed_over", db_col_int(st, 5));
			add_ms(o, "upstream", db_col_int64(st, 6));
			cJSON_AddBoolToObject(o, "current", db_col_int64(st, 0) == id);
			cJSON_AddItemToArray(list, o);
		}
	}
	db_done(st);
	if (cJSON_GetArraySize(list) > 1) {
		cJSON_AddItemToObject(d, "attempts", list);
		cJSON_AddBoolToObject(d, "has_attempts", 1);
	} else {
		cJSON_Delete(list);
	}
}

int page_request(tg_req_t *r)
{
	struct web_usage_scope sc = { 0, 0 };
	int64_t id = web_param_id(r, 0);
	tg_stmt *st;
	cJSON *d = NULL, *o;
	char rid[REQ_ID_MAX + 1] = "";
	int64_t pt, ct, cpt;
	int failed_over = 0;

	if (web_usage_scope_get(r, &sc) || !id)
		return web_not_found(r);
	st = db_stmt("SELECT " LOG_COLUMNS ", r.request_id, coalesce(p.name, ''), r.cached_tokens,"
		     " r.upstream_ms, r.error, r.cache_write_tokens, r.reasoning_tokens,"
		     " r.client_ip FROM requests r LEFT JOIN api_keys k ON k.id = r.key_id"
		     " LEFT JOIN providers p ON p.id = r.provider_id"
		     " WHERE r.id = :id AND r.org_id = :org AND (:user = 0 OR r.key_id IN"
		     " (SELECT id FROM api_keys WHERE org_id = :org AND created_by = :user))");
	if (st && !db_bind_int64(st, ":id", id) && !db_bind_int64(st, ":org", sc.org) &&
	    !db_bind_int64(st, ":user", sc.user) && db_step(st) == DB_ROW) {
		d = cJSON_CreateObject();
		o = web_request_row(st);
		{
			char t[20];

			time_format(db_col_int64(st, 1), t);
			cJSON_ReplaceItemInObject(o, "time", cJSON_CreateString(t));
		}
		snprintf(rid, sizeof(rid), "%s", db_col_text(st, 16));
		cJSON_AddStringToObject(o, "request_id", rid);
		cJSON_AddStringToObject(o, "provider", db_col_text(st, 17));
		pt = db_col_int64(st, 7);
		cpt = db_col_int64(st, 8);
		ct = db_col_int64(st, 18);
		web_add_count(o, "cached", ct);
		web_add_count(o, "total_tokens", pt + cpt);
		add_ms(o, "upstream", db_col_int64(st, 19));
		cJSON_AddStringToObject(o, "error", db_col_text(st, 20));
		web_add_count(o, "cache_write", db_col_int64(st, 21));
		web_add_count(o, "reasoning", db_col_int64(st, 22));
		cJSON_AddStringToObject(o, "client", db_col_text(st, 23));
		failed_over = db_col_int(st, 14);
		cJSON_AddItemToObject(d, "req", o);
	}
	db_done(st);
	if (!d)
		return web_not_found(r);
	request_attempts(d, rid, id, &sc);
	/* The ledger entry this call wrote, if it was billed (never a row that
	 * failed over: the call's answer has the entry). */
	st = db_stmt("SELECT id, amount, balance_after FROM ledger_entries"
		     " WHERE request_id = :rid AND org_id = :org");
	if (!failed_over && st && !db_bind_text(st, ":rid", rid) &&
	    !db_bind_int64(st, ":org", sc.org) && db_step(st) == DB_ROW) {
		cJSON *e = cJSON_AddObjectToObject(d, "ledger");

		cJSON_AddNumberToObject(e, "id", (double)db_col_int64(st, 0));
		web_add_money(e, "amount", db_col_int64(st, 1));
		web_add_money(e, "balance_after", db_col_int64(st, 2));
	}
	db_done(st);
	return web_render(r, 200, "requests_detail", d);
}
