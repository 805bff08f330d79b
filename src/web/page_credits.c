/* page_credits.c - credits: the org's balance and ledger (with filters,
 * keyset pagination and a CSV export), grants and deductions by instance
 * admins, redemption of codes by org admins, and the admin's code batches.
 * Every write goes through ledger/ledger.h. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/web.h"

/* ------------------------------------------------------------- helpers */

/* Money; sign: a credit shows its "+" ("+5.00"). */
static void add_money(cJSON *o, const char *key, int64_t v, int sign)
{
	char s[MONEY_FMT_LEN + 1] = "+";

	if (!sign || v <= 0) {
		web_add_money(o, key, v);
		return;
	}
	money_format_short(v, s + 1);
	cJSON_AddStringToObject(o, key, s);
}

static void add_time_full(cJSON *o, const char *key, int64_t t)
{
	char s[20];

	time_format(t, s);
	cJSON_AddStringToObject(o, key, s);
}

/* A code expiring at t (midnight UTC) is valid through the day before. */
static void add_through(cJSON *o, const char *key, int64_t t)
{
	char s[11];

	if (t <= 0) {
		cJSON_AddStringToObject(o, key, "");
		return;
	}
	time_format_date(t - 1, s);
	cJSON_AddStringToObject(o, key, s);
}

/* ------------------------------------------------------------- filters */

struct ledger_filter {
	char kind[8];  /* "" = every kind */
	char from[24]; /* as typed, for the form */
	char to[24];
	int64_t from_t; /* created_at >= from_t */
	int64_t to_t;   /* created_at < to_t */
	int64_t before; /* keyset cursors */
	int64_t after;
	const char *error;
	char qs[96]; /* the filters as a query string, for links */
};

static void filter_parse(tg_req_t *r, struct ledger_filter *f)
{
	static const char *const kinds[] = { "grant", "adjust", "redeem", "usage" };
	char *kind = req_query(r, "kind"), *from = req_query(r, "from"), *to = req_query(r, "to");
	char *before = req_query(r, "before"), *after = req_query(r, "after");
	const char *k = web_trim(kind), *fr = web_trim(from), *t = web_trim(to);
	buf_t qs;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->to_t = INT64_MAX;
	f->before = web_parse_id(before);
	f->after = f->before ? 0 : web_parse_id(after);
	if (k && *k) {
		for (i = 0; i < TG_ARRAY_LEN(kinds); i++)
			if (strcmp(k, kinds[i]) == 0)
				snprintf(f->kind, sizeof(f->kind), "%s", kinds[i]);
		if (!f->kind[0])
			f->error = "Choose a kind from the list: grant, adjust, redeem or usage.";
	}
	web_day_range(fr, t, f->from, f->to, &f->from_t, &f->to_t, &f->error);
	if (!f->error && f->from_t >= f->to_t)
		f->error = "The start date is after the end date.";
	buf_init(&qs, sizeof(f->qs) - 1);
	if (f->kind[0]) {
		buf_puts(&qs, "kind=");
		buf_puts(&qs, f->kind);
	}
	if (f->from[0]) {
		buf_puts(&qs, qs.len ? "&from=" : "from=");
		web_urlencode(&qs, f->from);
	}
	if (f->to[0]) {
		buf_puts(&qs, qs.len ? "&to=" : "to=");
		web_urlencode(&qs, f->to);
	}
	snprintf(f->qs, sizeof(f->qs), "%s", buf_cstr(&qs));
	buf_free(&qs);
	free(kind);
	free(from);
	free(to);
	free(before);
	free(after);
}

static int bind_filter(tg_stmt *st, int64_t org, const struct ledger_filter *f)
{
	return !st || db_bind_int64(st, ":org", org) || db_bind_text(st, ":kind", f->kind) ||
	       db_bind_int64(st, ":from", f->from_t) || db_bind_int64(st, ":to", f->to_t);
}

/* ---------------------------------------------------------------- page */

struct grant_form {
	const char *action; /* "grant" | "deduct" */
	const char *amount;
	const char *memo;
};

static cJSON *entry_json(tg_stmt *st)
{
	cJSON *e = cJSON_CreateObject();
	const char *kind = db_col_text(st, 2);
	int64_t amount = db_col_int64(st, 3);

	cJSON_AddNumberToObject(e, "id", (double)db_col_int64(st, 0));
	add_time_full(e, "time", db_col_int64(st, 1));
	cJSON_AddStringToObject(e, "kind", kind);
	cJSON_AddStringToObject(e, "badge",
				strcmp(kind, "usage") == 0  ? "badge-muted" :
				strcmp(kind, "adjust") == 0 ? "badge-warn" :
							      "badge-ok");
	add_money(e, "amount", amount, 1);
	cJSON_AddBoolToObject(e, "debit", amount < 0);
	add_money(e, "balance_after", db_col_int64(st, 4), 0);
	cJSON_AddStringToObject(e, "memo", db_col_text(st, 5));
	cJSON_AddStringToObject(e, "actor", db_col_text(st, 6));
	cJSON_AddStringToObject(e, "request_id", db_col_text(st, 7));
	cJSON_AddStringToObject(e, "key_prefix", db_col_text(st, 8));
	cJSON_AddStringToObject(e, "key_name", db_col_text(st, 9));
	cJSON_AddNumberToObject(e, "key_id", (double)db_col_int64(st, 10));
	return e;
}

/* The ledger table: one page before/after the cursor, newest first. */
static void add_entries(cJSON *d, int64_t org, const struct ledger_filter *f)
{
	cJSON *list = cJSON_AddArrayToObject(d, "entries"), *tmp = cJSON_CreateArray();
	tg_stmt *st;
	int64_t lo = 0, hi = 0;
	int n = 0, asc = f->after > 0;

	if (asc)
		st = db_stmt("SELECT e.id, e.created_at, e.kind, e.amount, e.balance_after, e.memo,"
			     " e.actor, coalesce(e.request_id, ''), coalesce(k.prefix, ''),"
			     " coalesce(k.name, ''), coalesce(e.key_id, 0)"
			     " FROM ledger_entries e LEFT JOIN api_keys k ON k.id = e.key_id"
			     " WHERE e.org_id = :org AND (:kind = '' OR e.kind = :kind)"
			     " AND e.created_at >= :from AND e.created_at < :to AND e.id > :cursor"
			     " ORDER BY e.id ASC LIMIT :limit");
	else
		st = db_stmt("SELECT e.id, e.created_at, e.kind, e.amount, e.balance_after, e.memo,"
			     " e.actor, coalesce(e.request_id, ''), coalesce(k.prefix, ''),"
			     " coalesce(k.name, ''), coalesce(e.key_id, 0)"
			     " FROM ledger_entries e LEFT JOIN api_keys k ON k.id = e.key_id"
			     " WHERE e.org_id = :org AND (:kind = '' OR e.kind = :kind)"
			     " AND e.created_at >= :from AND e.created_at < :to AND e.id < :cursor"
			     " ORDER BY e.id DESC LIMIT :limit");
	if (!bind_filter(st, org, f) &&
	    !db_bind_int64(st, ":cursor",
			   asc       ? f->after :
			   f->before ? f->before :
				       INT64_MAX) &&
	    !db_bind_int64(st, ":limit", WEB_PAGE_SIZE)) {
		while (db_step(st) == DB_ROW) {
			int64_t id = db_col_int64(st, 0);

			if (!n++ || id < lo)
				lo = id;
			if (id > hi)
				hi = id;
			cJSON_AddItemToArray(tmp, entry_json(st));
		}
	}
	db_done(st);
	/* Newest first on screen. */
	while (cJSON_GetArraySize(tmp) > 0) {
		cJSON *e = cJSON_DetachItemFromArray(tmp, asc ? cJSON_GetArraySize(tmp) - 1 : 0);

		cJSON_AddItemToArray(list, e);
	}
	cJSON_Delete(tmp);
	cJSON_AddBoolToObject(d, "has_entries", n > 0);
	if (!n)
		return;
	st = db_stmt(
		"SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE org_id = :org"
		" AND (:kind = '' OR kind = :kind) AND created_at >= :from AND created_at < :to"
		" AND id > :hi),"
		" EXISTS (SELECT 1 FROM ledger_entries WHERE org_id = :org"
		" AND (:kind = '' OR kind = :kind) AND created_at >= :from AND created_at < :to"
		" AND id < :lo)");
	if (!bind_filter(st, org, f) && !db_bind_int64(st, ":hi", hi) &&
	    !db_bind_int64(st, ":lo", lo) && db_step(st) == DB_ROW) {
		if (db_col_int(st, 0))
			cJSON_AddNumberToObject(d, "newer", (double)hi);
		if (db_col_int(st, 1))
			cJSON_AddNumberToObject(d, "older", (double)lo);
		cJSON_AddBoolToObject(d, "pager", db_col_int(st, 0) || db_col_int(st, 1));
	}
	db_done(st);
}

static int64_t added_since(int64_t org, int64_t since)
{
	tg_stmt *st = db_stmt("SELECT coalesce(sum(amount), 0) FROM ledger_entries"
			      " WHERE org_id = :org AND created_at >= :since AND amount > 0");
	int64_t v = 0;

	if (st && !db_bind_int64(st, ":org", org) && !db_bind_int64(st, ":since", since) &&
	    db_step(st) == DB_ROW)
		v = db_col_int64(st, 0);
	db_done(st);
	return v;
}

static int credits_render(tg_req_t *r, int status, const struct grant_form *g, const char *code,
			  const char *error)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject(), *jf, *jg;
	struct ledger_filter f;
	int64_t balance = 0, month = ledger_month_start(time_now());

	filter_parse(r, &f);
	if (!s->org.id) {
		cJSON_AddBoolToObject(d, "no_org", 1);
		return web_render(r, status, "credits", d);
	}
	cJSON_AddBoolToObject(d, "has_org", 1);
	cJSON_AddStringToObject(d, "org", s->org.name);
	ledger_balance(s->org.id, &balance);
	add_money(d, "balance", balance, 0);
	cJSON_AddBoolToObject(d, "negative", balance < 0);
	add_money(d, "spend_month", ledger_org_spend(s->org.id, month), 0);
	add_money(d, "added_month", added_since(s->org.id, month), 0);
	cJSON_AddBoolToObject(d, "can_grant", s->user.is_admin);
	cJSON_AddBoolToObject(d, "can_redeem", s->role >= ROLE_ADMIN);
	cJSON_AddBoolToObject(d, "has_forms", s->user.is_admin || s->role >= ROLE_ADMIN);

	jg = cJSON_AddObjectToObject(d, "grant");
	cJSON_AddBoolToObject(jg, "deduct", g && g->action && strcmp(g->action, "deduct") == 0);
	cJSON_AddStringToObject(jg, "amount", g && g->amount ? g->amount : "");
	cJSON_AddStringToObject(jg, "memo", g && g->memo ? g->memo : "");
	cJSON_AddStringToObject(d, "code", code ? code : "");

	jf = cJSON_AddObjectToObject(d, "filter");
	cJSON_AddStringToObject(jf, "from", f.from);
	cJSON_AddStringToObject(jf, "to", f.to);
	cJSON_AddStringToObject(jf, "qs", f.qs);
	cJSON_AddBoolToObject(jf, "active", f.qs[0] != '\0');
	{
		static const char *const kinds[] = { "grant", "adjust", "redeem", "usage" };
		cJSON *ks = cJSON_AddArrayToObject(jf, "kinds");
		size_t i;

		for (i = 0; i < TG_ARRAY_LEN(kinds); i++) {
			cJSON *k = cJSON_CreateObject();

			cJSON_AddStringToObject(k, "value", kinds[i]);
			cJSON_AddBoolToObject(k, "selected", strcmp(f.kind, kinds[i]) == 0);
			cJSON_AddItemToArray(ks, k);
		}
	}
	add_entries(d, s->org.id, &f);
	if (error)
		web_flash_now(d, "error", error);
	else if (f.error) {
		web_flash_now(d, "error", f.error);
		if (status == 200)
			status = 400;
	}
	return web_render(r, status, "credits", d);
}

int page_credits(tg_req_t *r)
{
	struct web_session *s = r->session;

	if (s->org.id && s->role < ROLE_MEMBER)
		return web_not_found(r);
	return credits_render(r, 200, NULL, NULL, NULL);
}

/* ----------------------------------------------------------------- CSV */

int page_credits_csv(tg_req_t *r)
{
	struct web_session *s = r->session;
	struct ledger_filter f;
	char name[96], day[11], amt[MONEY_FMT_LEN], after[MONEY_FMT_LEN], at[20];
	tg_stmt *st;
	buf_t b;
	int rc;

	if (!s->org.id || s->role < ROLE_MEMBER)
		return web_not_found(r);
	filter_parse(r, &f);
	if (f.error)
		return resp_error(r, 400, "invalid_request_error", NULL, f.error);
	time_format_date(time_now(), day);
	snprintf(name, sizeof(name), "credits-org%lld-%s.csv", (long long)s->org.id, day);
	web_csv_attachment(r, name);
	st = db_stmt("SELECT id, created_at, kind, amount, balance_after, coalesce(request_id, ''),"
		     " coalesce(key_id, 0), memo FROM ledger_entries"
		     " WHERE org_id = :org AND (:kind = '' OR kind = :kind)"
		     " AND created_at >= :from AND created_at < :to ORDER BY id");
	if (bind_filter(st, s->org.id, &f)) {
		db_done(st);
		return resp_error(r, 500, "server_error", NULL, "The export could not be read.");
	}
	if ((rc = resp_stream_start(r, 200, "text/csv; charset=utf-8"))) {
		db_done(st);
		return rc;
	}
	web_csv_init(&b);
	buf_puts(&b, "id,created_at,kind,amount,balance_after,request_id,key_id,memo\r\n");
	while (rc == TG_OK && db_step(st) == DB_ROW) {
		int64_t key = db_col_int64(st, 6);

		time_format(db_col_int64(st, 1), at);
		at[10] = 'T'; /* ISO 8601, UTC */
		money_format(db_col_int64(st, 3), amt);
		money_format(db_col_int64(st, 4), after);
		buf_appendf(&b, "%lld,%sZ,%s,%s,%s,", (long long)db_col_int64(st, 0), at,
			    db_col_text(st, 2), amt, after);
		web_csv_field(&b, db_col_text(st, 5), 1);
		if (key)
			buf_appendf(&b, ",%lld,", (long long)key);
		else
			buf_puts(&b, ",,");
		web_csv_field(&b, db_col_text(st, 7), 1);
		buf_puts(&b, "\r\n");
		rc = web_csv_flush(r, &b);
	}
	db_done(st);
	return web_csv_end(r, &b, rc);
}

/* --------------------------------------------------------------- grant */

int page_credits_grant(tg_req_t *r)
{
	struct web_session *s = r->session;
	struct audit_actor a = web_actor(r);
	struct grant_form g = { 0 };
	char *action = NULL, *amount_s = NULL, *memo = NULL;
	char msg[600], amt[MONEY_FMT_LEN], bal[MONEY_FMT_LEN];
	const char *why = NULL;
	int64_t amount = 0, balance = 0;
	int deduct, rc;

	if (!s->user.is_admin || !s->org.id)
		return web_not_found(r);
	action = req_post(r, "action");
	amount_s = req_post(r, "amount");
	memo = req_post(r, "memo");
	g.action = web_trim(action);
	g.amount = web_trim(amount_s);
	g.memo = memo;
	deduct = g.action && strcmp(g.action, "deduct") == 0;
	if (!g.action || (!deduct && strcmp(g.action, "grant") != 0)) {
		rc = credits_render(r, 422, &g, NULL,
				    "Choose whether to grant or to deduct credits.");
		goto out;
	}
	if (!g.amount || !*g.amount) {
		rc = credits_render(r, 422, &g, NULL,
				    "Enter an amount in credits, for example 25 or 2.50.");
		goto out;
	}
	if (money_parse(g.amount, &amount, &why)) {
		rc = credits_render(r, 422, &g, NULL, why);
		goto out;
	}
	if (amount <= 0) {
		rc = credits_render(
			r, 422, &g, NULL,
			"Enter an amount above zero; choose Deduct to take credits away.");
		goto out;
	}
	if (!memo || !*web_trim(memo)) {
		rc = credits_render(
			r, 422, &g, NULL,
			"A memo is required: say why, it is shown in the ledger and the "
			"audit log.");
		goto out;
	}
	g.memo = web_trim(memo);
	rc = ledger_grant(s->org.id, deduct ? LEDGER_ADJUST : LEDGER_GRANT,
			  deduct ? -amount : amount, g.memo, &a, NULL);
	money_format_short(amount, amt);
	if (rc == TG_EINVAL) {
		rc = credits_render(r, 422, &g, NULL,
				    "The memo must be 1 to 500 characters on one line.");
	} else if (rc == TG_EFUNDS) {
		ledger_balance(s->org.id, &balance);
		money_format_short(balance, bal);
		snprintf(msg, sizeof(msg),
			 "%s has %s credits; deducting %s would make the balance negative or take "
			 "what calls in flight have reserved.",
			 s->org.name, bal, amt);
		rc = credits_render(r, 422, &g, NULL, msg);
	} else if (rc == TG_ERANGE) {
		rc = credits_render(r, 422, &g, NULL,
				    "That amount would put the balance out of range.");
	} else if (rc) {
		rc = credits_render(r, 500, &g, NULL,
				    "The entry could not be recorded; try again.");
	} else {
		snprintf(msg, sizeof(msg),
			 deduct ? "Deducted %s credits from %s." : "Granted %s credits to %s.", amt,
			 s->org.name);
		rc = web_redirect_flash(r, "/credits", "ok", msg);
	}
out:
	free(action);
	free(amount_s);
	free(memo);
	return rc;
}

/* -------------------------------------------------------------- redeem */

int page_credits_redeem(tg_req_t *r)
{
	struct web_session *s = r->session;
	struct audit_actor a = web_actor(r);
	char *raw = NULL, msg[600], amt[MONEY_FMT_LEN], bal[MONEY_FMT_LEN];
	const char *code;
	int64_t amount = 0, balance = 0;
	int rc;

	if (!s->org.id || s->role < ROLE_ADMIN)
		return web_not_found(r);
	raw = req_post(r, "code");
	code = web_trim(raw);
	if (!code || !*code) {
		rc = credits_render(r, 422, NULL, NULL, "Enter a redemption code.");
		goto out;
	}
	if (strlen(code) > 64)
		code = "";
	rc = ledger_redeem(code, s->org.id, &a, &amount);
	if (rc == TG_OK) {
		ledger_balance(s->org.id, &balance);
		money_format_short(amount, amt);
		money_format_short(balance, bal);
		snprintf(msg, sizeof(msg),
			 "Redeemed %s credits into %s. The balance is now %s credits.", amt,
			 s->org.name, bal);
		rc = web_redirect_flash(r, "/credits", "ok", msg);
	} else if (rc == TG_ENOTFOUND) {
		rc = credits_render(
			r, 422, NULL, code,
			"No such code. Check it for typos: a code is tgc_ followed by 24 "
			"letters and digits.");
	} else if (rc == TG_ECONFLICT) {
		rc = credits_render(r, 409, NULL, NULL, "This code has already been used.");
	} else if (rc == TG_EPERM) {
		rc = credits_render(r, 422, NULL, NULL, "This code has expired.");
	} else {
		rc = credits_render(r, 500, NULL, code,
				    "The code could not be redeemed; try again.");
	}
out:
	if (raw) {
		sodium_memzero(raw, strlen(raw));
		free(raw);
	}
	return rc;
}

/* --------------------------------------------------------------- codes */

struct codes_form {
	const char *count;
	const char *amount;
	const char *expires;
	const char *batch;
};

static void add_batches(cJSON *d)
{
	cJSON *list = cJSON_AddArrayToObject(d, "batches");
	tg_stmt *st;
	int64_t now = time_now();

	st = db_stmt("SELECT batch, created_at, amount, coalesce(expires_at, 0), count(*),"
		     " sum(CASE WHEN redeemed_at IS NOT NULL THEN 1 ELSE 0 END), min(id)"
		     " FROM redemption_codes GROUP BY batch, created_at, amount, expires_at"
		     " ORDER BY min(id) DESC LIMIT 100");
	if (st) {
		while (db_step(st) == DB_ROW) {
			cJSON *b = cJSON_CreateObject();
			int64_t exp = db_col_int64(st, 3), n = db_col_int64(st, 4);
			int64_t used = db_col_int64(st, 5);

			cJSON_AddStringToObject(b, "batch", db_col_text(st, 0));
			web_add_time(b, "created", db_col_int64(st, 1));
			add_money(b, "amount", db_col_int64(st, 2), 0);
			add_through(b, "expires", exp);
			cJSON_AddNumberToObject(b, "count", (double)n);
			cJSON_AddNumberToObject(b, "redeemed", (double)used);
			cJSON_AddBoolToObject(b, "expired", exp > 0 && exp <= now && used < n);
			cJSON_AddItemToArray(list, b);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_batches", cJSON_GetArraySize(list) > 0);
}

static void add_codes(cJSON *d, int64_t before)
{
	cJSON *list = cJSON_AddArrayToObject(d, "codes");
	tg_stmt *st;
	int64_t now = time_now(), last = 0;
	int n = 0;

	st = db_stmt("SELECT c.id, c.prefix, c.batch, c.amount, coalesce(c.expires_at, 0),"
		     " coalesce(c.redeemed_at, 0), coalesce(o.name, '')"
		     " FROM redemption_codes c LEFT JOIN orgs o ON o.id = c.redeemed_org_id"
		     " WHERE c.id < :before ORDER BY c.id DESC LIMIT :limit");
	if (st && !db_bind_int64(st, ":before", before ? before : INT64_MAX) &&
	    !db_bind_int64(st, ":limit", WEB_PAGE_SIZE + 1)) {
		while (db_step(st) == DB_ROW) {
			cJSON *c;
			int64_t exp = db_col_int64(st, 4), used = db_col_int64(st, 5);

			if (++n > WEB_PAGE_SIZE)
				break;
			c = cJSON_CreateObject();
			last = db_col_int64(st, 0);
			cJSON_AddStringToObject(c, "prefix", db_col_text(st, 1));
			cJSON_AddStringToObject(c, "batch", db_col_text(st, 2));
			add_money(c, "amount", db_col_int64(st, 3), 0);
			add_through(c, "expires", exp);
			web_add_time(c, "redeemed_at", used);
			cJSON_AddStringToObject(c, "redeemed_by", db_col_text(st, 6));
			cJSON_AddStringToObject(c, "status",
						used                  ? "redeemed" :
						exp > 0 && exp <= now ? "expired" :
									"available");
			cJSON_AddStringToObject(c, "badge",
						used                  ? "badge-muted" :
						exp > 0 && exp <= now ? "badge-danger" :
									"badge-ok");
			cJSON_AddItemToArray(list, c);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_codes", cJSON_GetArraySize(list) > 0);
	if (n > WEB_PAGE_SIZE)
		cJSON_AddNumberToObject(d, "older", (double)last);
	cJSON_AddBoolToObject(d, "newer", before != 0);
	cJSON_AddBoolToObject(d, "pager", n > WEB_PAGE_SIZE || before != 0);
}

static void add_summary(cJSON *d)
{
	cJSON *sum = cJSON_AddObjectToObject(d, "summary");
	tg_stmt *st;
	int64_t v[5] = { 0, 0, 0, 0, 0 };
	int i;

	st = db_stmt(
		"SELECT coalesce(sum(CASE WHEN redeemed_at IS NULL AND (expires_at IS NULL OR"
		" expires_at > :now) THEN 1 ELSE 0 END), 0),"
		" coalesce(sum(CASE WHEN redeemed_at IS NULL AND (expires_at IS NULL OR"
		" expires_at > :now) THEN amount ELSE 0 END), 0),"
		" coalesce(sum(CASE WHEN redeemed_at IS NOT NULL THEN 1 ELSE 0 END), 0),"
		" coalesce(sum(CASE WHEN redeemed_at IS NOT NULL THEN amount ELSE 0 END), 0),"
		" coalesce(sum(CASE WHEN redeemed_at IS NULL AND expires_at <= :now THEN 1 ELSE 0"
		" END), 0)"
		" FROM redemption_codes");
	if (st && !db_bind_int64(st, ":now", time_now()) && db_step(st) == DB_ROW)
		for (i = 0; i < 5; i++)
			v[i] = db_col_int64(st, i);
	db_done(st);
	cJSON_AddNumberToObject(sum, "available", (double)v[0]);
	add_money(sum, "outstanding", v[1], 0);
	cJSON_AddNumberToObject(sum, "redeemed", (double)v[2]);
	add_money(sum, "redeemed_credits", v[3], 0);
	cJSON_AddNumberToObject(sum, "expired", (double)v[4]);
}

static int codes_render(tg_req_t *r, int status, const struct codes_form *form, const char *error)
{
	cJSON *d = cJSON_CreateObject(), *jf;
	char *before_s = req_query(r, "before");
	int64_t before = web_parse_id(before_s);

	free(before_s);
	jf = cJSON_AddObjectToObject(d, "form");
	cJSON_AddStringToObject(jf, "count", form && form->count ? form->count : "10");
	cJSON_AddStringToObject(jf, "amount", form && form->amount ? form->amount : "");
	cJSON_AddStringToObject(jf, "expires", form && form->expires ? form->expires : "");
	cJSON_AddStringToObject(jf, "batch", form && form->batch ? form->batch : "");
	cJSON_AddNumberToObject(d, "max", LEDGER_CODES_MAX);
	add_summary(d);
	add_batches(d);
	add_codes(d, before);
	if (error)
		web_flash_now(d, "error", error);
	return web_render(r, status, "codes", d);
}

int page_codes(tg_req_t *r)
{
	if (!r->session->user.is_admin)
		return web_not_found(r);
	return codes_render(r, 200, NULL, NULL);
}

static int parse_count(const char *s, int *n)
{
	int v = 0;

	if (!s || !*s || strlen(s) > 4)
		return TG_EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return TG_EINVAL;
		v = v * 10 + (*s - '0');
	}
	*n = v;
	return v >= 1 && v <= LEDGER_CODES_MAX ? TG_OK : TG_EINVAL;
}

int page_codes_create(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct codes_form form = { 0 };
	char *count_s = NULL, *amount_s = NULL, *expires_s = NULL, *batch_s = NULL;
	char **codes = NULL, label[32], now_s[20], msg[96];
	const char *why = NULL, *batch;
	int64_t amount = 0, expires = 0, now = time_now();
	int n = 0, i, rc;
	cJSON *d, *list;
	buf_t all;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	count_s = req_post(r, "count");
	amount_s = req_post(r, "amount");
	expires_s = req_post(r, "expires");
	batch_s = req_post(r, "batch");
	form.count = web_trim(count_s);
	form.amount = web_trim(amount_s);
	form.expires = web_trim(expires_s);
	form.batch = web_trim(batch_s);
	if (parse_count(form.count, &n)) {
		snprintf(msg, sizeof(msg),
			 "Enter how many codes to make: a whole number from 1 to %d.",
			 LEDGER_CODES_MAX);
		n = 0;
		rc = codes_render(r, 422, &form, msg);
		goto out;
	}
	if (!form.amount || !*form.amount) {
		rc = codes_render(r, 422, &form,
				  "Enter the credits each code is worth, for example 25.");
		goto out;
	}
	if (money_parse(form.amount, &amount, &why)) {
		rc = codes_render(r, 422, &form, why);
		goto out;
	}
	if (amount <= 0) {
		rc = codes_render(r, 422, &form, "Each code must be worth more than zero credits.");
		goto out;
	}
	if (form.expires && *form.expires) {
		if (web_parse_day(form.expires, &expires)) {
			rc = codes_render(
				r, 422, &form,
				"The expiry must be a real day written YYYY-MM-DD, for example "
				"2026-12-31.");
			goto out;
		}
		expires += 86400; /* valid through the whole day (UTC) */
		if (expires <= now) {
			rc = codes_render(r, 422, &form, "The expiry date is in the past.");
			goto out;
		}
	}
	batch = form.batch;
	if (!batch || !*batch) {
		time_format(now, now_s);
		now_s[16] = '\0';
		snprintf(label, sizeof(label), "Batch %s", now_s);
		batch = label;
	}
	codes = calloc((size_t)n, sizeof(*codes));
	if (!codes) {
		rc = codes_render(r, 500, &form, "Out of memory.");
		goto out;
	}
	rc = ledger_codes_create(n, amount, expires, batch, &a, codes);
	if (rc == TG_EINVAL) {
		rc = codes_render(r, 422, &form,
				  "The batch label must be 1 to 100 characters on one line.");
		goto out;
	}
	if (rc) {
		rc = codes_render(r, 500, &form, "The codes could not be created; try again.");
		goto out;
	}

	/* Shown once, right here: only their hashes are stored. */
	d = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(d, "codes");
	buf_init(&all, (size_t)n * (LEDGER_CODE_LEN + 1)); /* one code and '\n' a line */
	for (i = 0; i < n; i++) {
		cJSON_AddItemToArray(list, cJSON_CreateString(codes[i]));
		buf_puts(&all, codes[i]);
		buf_putc(&all, '\n');
	}
	cJSON_AddStringToObject(d, "all", buf_cstr(&all));
	if (all.data)
		sodium_memzero(all.data, all.len);
	buf_free(&all);
	cJSON_AddNumberToObject(d, "count", n);
	cJSON_AddNumberToObject(d, "rows", n < 12 ? n + 1 : 12);
	cJSON_AddBoolToObject(d, "plural", n != 1);
	web_add_money(d, "amount", amount);
	cJSON_AddStringToObject(d, "batch", batch);
	if (expires)
		add_through(d, "expires", expires);
	resp_header(r, "Cache-Control", "no-store");
	rc = web_render(r, 200, "codes_reveal", d);
out:
	if (codes) {
		for (i = 0; i < n; i++) {
			if (codes[i]) {
				sodium_memzero(codes[i], strlen(codes[i]));
				free(codes[i]);
			}
		}
		free(codes);
	}
	free(count_s);
	free(amount_s);
	free(expires_s);
	free(batch_s);
	return rc;
}
