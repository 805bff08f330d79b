/* page_usage.c - usage charts and totals (/usage, /usage.csv) and the 30-day
 * spend chart other pages show; the request log is page_requests.c.
 *
 * Sums come from usage_daily or usage_hourly (migration 0006), rollups of
 * the `requests` table kept by a trigger in the same transaction as each
 * request row. Spend is therefore sum(requests.cost), which equals the ledger's usage
 * debits for the same calls: the gateway writes the debit and the request
 * row together.
 *
 * Scoping: members see the calls of the keys they created; org admins and
 * owners (instance admins count as owners) the whole org being viewed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/chart.h"
#include "web/fmt.h"
#include "web/page_usage.h"
#include "web/web.h"

#define DAY 86400
#define HOUR 3600
#define MAX_DAYS 366
#define MAX_HOURS 168
#define TOP_SERIES 5     /* split charts: the biggest five, then "Other" */
#define MAX_TRACKED 2000 /* distinct models/keys kept apart in the totals */

enum split { SPLIT_NONE = 0, SPLIT_MODEL = 1, SPLIT_KEY = 2 };

int web_usage_scope_get(tg_req_t *r, struct web_usage_scope *sc)
{
	struct web_session *s = r->session;

	if (!s->org.id || s->role < ROLE_MEMBER)
		return TG_ENOTFOUND;
	sc->org = s->org.id;
	sc->user = s->role >= ROLE_ADMIN ? 0 : s->user.id;
	return TG_OK;
}

/* ------------------------------------------------------------- helpers */

void web_qs_add(buf_t *qs, const char *name, const char *value)
{
	if (!value || !*value)
		return;
	buf_puts(qs, qs->len ? "&" : "");
	buf_puts(qs, name);
	buf_putc(qs, '=');
	web_urlencode(qs, value);
}

void web_filter_key_model(const char *k, const char *m, int64_t *key, char model[WEB_MODEL_MAX],
			  const char **error)
{
	if (k && *k && !(*key = web_parse_id(k)))
		*error = "Choose a key from the list.";
	if (m && *m) {
		if (strlen(m) >= WEB_MODEL_MAX)
			*error = "That model name is too long.";
		else
			snprintf(model, WEB_MODEL_MAX, "%s", m);
	}
}

void web_qs_add_common(buf_t *qs, int64_t key, const char *model, const char *from, const char *to)
{
	if (key)
		buf_appendf(qs, "%skey=%lld", qs->len ? "&" : "", (long long)key);
	web_qs_add(qs, "model", model);
	web_qs_add(qs, "from", from);
	web_qs_add(qs, "to", to);
}

/* "tg_abcd1234 name" for a key id in the org, or a placeholder. */
static void key_label(int64_t org, int64_t key, char *out, size_t n)
{
	tg_stmt *st;

	snprintf(out, n, key ? "key #%lld" : "(no key)", (long long)key);
	if (!key)
		return;
	st = db_stmt("SELECT prefix, name FROM api_keys WHERE id = :id AND org_id = :org");
	if (st && !db_bind_int64(st, ":id", key) && !db_bind_int64(st, ":org", org) &&
	    db_step(st) == DB_ROW)
		snprintf(out, n, "%s %s", db_col_text(st, 0), db_col_text(st, 1));
	db_done(st);
}

/* Bucket labels: full ("2026-11-23", "2026-11-23 14:00") and short ("11-23",
 * "14:00"; midnight of an hourly chart shows the date). */
static void bucket_labels(int64_t t, int hourly, char full[24], char tick[12])
{
	char s[20];

	time_format(t, s);
	if (hourly) {
		snprintf(full, 24, "%.13s:00", s);
		if (t % DAY == 0)
			snprintf(tick, 12, "%.5s", s + 5);
		else
			snprintf(tick, 12, "%.5s", s + 11);
	} else {
		snprintf(full, 24, "%.10s", s);
		snprintf(tick, 12, "%.5s", s + 5);
	}
}

/* ------------------------------------------------------------- filters */

struct usage_filter {
	int hourly;
	enum split split;
	int64_t key;
	char model[WEB_MODEL_MAX];
	char from[24], to[24]; /* as typed */
	int64_t from_t, to_t;  /* [from_t, to_t), aligned to the bucket */
	size_t n;              /* buckets */
	const char *error;
	char qs[512]; /* filters as a query string, for links */
};

static void range_default(struct usage_filter *f, int64_t now)
{
	if (f->hourly) {
		f->to_t = now - now % HOUR + HOUR;
		f->from_t = f->to_t - 48 * HOUR;
	} else {
		f->to_t = now - now % DAY + DAY;
		f->from_t = f->to_t - 30 * DAY;
	}
}

static void usage_filter_parse(tg_req_t *r, struct usage_filter *f)
{
	char *bucket = req_query(r, "bucket"), *split = req_query(r, "split"),
	     *key = req_query(r, "key");
	char *model = req_query(r, "model"), *from = req_query(r, "from"), *to = req_query(r, "to");
	const char *b = web_trim(bucket), *sp = web_trim(split), *k = web_trim(key),
		   *m = web_trim(model);
	const char *fr = web_trim(from), *t = web_trim(to);
	int64_t now = time_now(), span;
	buf_t qs;

	memset(f, 0, sizeof(*f));
	if (b && *b && strcmp(b, "day") != 0) {
		if (strcmp(b, "hour") == 0)
			f->hourly = 1;
		else
			f->error = "Choose per day or per hour.";
	}
	if (sp && *sp) {
		if (strcmp(sp, "model") == 0)
			f->split = SPLIT_MODEL;
		else if (strcmp(sp, "key") == 0)
			f->split = SPLIT_KEY;
		else
			f->error = "Split the charts by model or by key, or not at all.";
	}
	web_filter_key_model(k, m, &f->key, f->model, &f->error);
	range_default(f, now);
	span = f->to_t - f->from_t;
	/* Only a "to" day: keep the default span, ending there. */
	if (web_day_range(fr, t, f->from, f->to, &f->from_t, &f->to_t, &f->error) == 2)
		f->from_t = f->to_t - span;
	if (!f->error && f->from_t >= f->to_t)
		f->error = "The start date is after the end date.";
	if (!f->error) {
		int64_t n = (f->to_t - f->from_t) / (f->hourly ? HOUR : DAY);

		if (f->hourly && n > MAX_HOURS)
			f->error = "Hourly charts cover at most 7 days: choose a shorter range or "
				   "per-day buckets.";
		else if (!f->hourly && n > MAX_DAYS)
			f->error = "Charts cover at most 366 days: choose a shorter range.";
	}
	if (f->error) {
		/* Show the default range with the message. */
		f->from[0] = f->to[0] = '\0';
		range_default(f, now);
	}
	f->n = (size_t)((f->to_t - f->from_t) / (f->hourly ? HOUR : DAY));
	buf_init(&qs, sizeof(f->qs) - 1);
	web_qs_add(&qs, "bucket", f->hourly ? "hour" : "");
	web_qs_add(&qs, "split",
		   f->split == SPLIT_MODEL ? "model" :
		   f->split == SPLIT_KEY   ? "key" :
					     "");
	web_qs_add_common(&qs, f->key, f->model, f->from, f->to);
	snprintf(f->qs, sizeof(f->qs), "%s", buf_cstr(&qs));
	buf_free(&qs);
	free(bucket);
	free(split);
	free(key);
	free(model);
	free(from);
	free(to);
}

/* --------------------------------------------------------------- query */

struct usage_row {
	size_t bucket;
	size_t series;
	int64_t requests, errors, prompt, completion, cost;
};

struct series {
	char id[WEB_MODEL_MAX]; /* model name or key id as text ("" unsplit) */
	char name[160];         /* legend name */
	int64_t requests, errors, prompt, completion, cost;
};

struct usage {
	struct usage_row *rows;
	size_t nrows, caprows;
	struct series *series;
	size_t nseries, capseries;
	struct series total;
};

static void usage_free(struct usage *u)
{
	free(u->rows);
	free(u->series);
	memset(u, 0, sizeof(*u));
}

static tg_stmt *usage_stmt(const struct web_usage_scope *sc, const struct usage_filter *f)
{
	tg_stmt *st;

	if (f->hourly)
		st = db_stmt(
			"SELECT (hour - :from) / :bucket, CASE :split WHEN 1 THEN model"
			" WHEN 2 THEN CAST(key_id AS TEXT) ELSE '' END, sum(requests), sum(errors),"
			" sum(prompt_tokens), sum(completion_tokens), sum(cost)"
			" FROM usage_hourly WHERE org_id = :org AND hour >= :from AND hour < :to"
			" AND (:key = 0 OR key_id = :key) AND (:model = '' OR model = :model)"
			" AND (:user = 0 OR key_id IN (SELECT id FROM api_keys WHERE org_id = :org"
			" AND created_by = :user))"
			" GROUP BY 1, 2 ORDER BY 1, 2");
	else
		st = db_stmt(
			"SELECT (day - :from) / :bucket, CASE :split WHEN 1 THEN model"
			" WHEN 2 THEN CAST(key_id AS TEXT) ELSE '' END, sum(requests), sum(errors),"
			" sum(prompt_tokens), sum(completion_tokens), sum(cost)"
			" FROM usage_daily WHERE org_id = :org AND day >= :from AND day < :to"
			" AND (:key = 0 OR key_id = :key) AND (:model = '' OR model = :model)"
			" AND (:user = 0 OR key_id IN (SELECT id FROM api_keys WHERE org_id = :org"
			" AND created_by = :user))"
			" GROUP BY 1, 2 ORDER BY 1, 2");

	if (!st || db_bind_int64(st, ":from", f->from_t) || db_bind_int64(st, ":to", f->to_t) ||
	    db_bind_int64(st, ":bucket", f->hourly ? HOUR : DAY) ||
	    db_bind_int64(st, ":split", f->split) || db_bind_int64(st, ":org", sc->org) ||
	    db_bind_int64(st, ":key", f->key) || db_bind_text(st, ":model", f->model) ||
	    db_bind_int64(st, ":user", sc->user)) {
		db_done(st);
		return NULL;
	}
	return st;
}

static size_t series_find(struct usage *u, const char *id)
{
	size_t i;

	for (i = 0; i < u->nseries; i++)
		if (strcmp(u->series[i].id, id) == 0)
			return i;
	if (u->nseries >= MAX_TRACKED)
		return u->nseries - 1; /* beyond that, lumped with the last */
	if (u->nseries == u->capseries) {
		size_t cap = u->capseries ? u->capseries * 2 : 16;
		struct series *p = realloc(u->series, cap * sizeof(*p));

		if (!p)
			return (size_t)-1;
		u->series = p;
		u->capseries = cap;
	}
	memset(&u->series[u->nseries], 0, sizeof(u->series[0]));
	snprintf(u->series[u->nseries].id, sizeof(u->series[0].id), "%s", id);
	return u->nseries++;
}

static void series_add(struct series *s, const struct usage_row *r)
{
	s->requests += r->requests;
	s->errors += r->errors;
	s->prompt += r->prompt;
	s->completion += r->completion;
	s->cost += r->cost;
}

static int usage_load(const struct web_usage_scope *sc, const struct usage_filter *f,
		      struct usage *u)
{
	tg_stmt *st = usage_stmt(sc, f);
	int rc = TG_OK, step;

	memset(u, 0, sizeof(*u));
	if (!st)
		return TG_EDB;
	while ((step = db_step(st)) == DB_ROW) {
		struct usage_row row;
		int64_t b = db_col_int64(st, 0);

		if (b < 0 || (size_t)b >= f->n)
			continue;
		row.bucket = (size_t)b;
		row.series = series_find(u, db_col_text(st, 1));
		row.requests = db_col_int64(st, 2);
		row.errors = db_col_int64(st, 3);
		row.prompt = db_col_int64(st, 4);
		row.completion = db_col_int64(st, 5);
		row.cost = db_col_int64(st, 6);
		if (row.series == (size_t)-1) {
			rc = TG_ENOMEM;
			break;
		}
		if (u->nrows == u->caprows) {
			size_t cap = u->caprows ? u->caprows * 2 : 64;
			struct usage_row *p = realloc(u->rows, cap * sizeof(*p));

			if (!p) {
				rc = TG_ENOMEM;
				break;
			}
			u->rows = p;
			u->caprows = cap;
		}
		u->rows[u->nrows++] = row;
		series_add(&u->series[row.series], &row);
		series_add(&u->total, &row);
	}
	if (rc == TG_OK && step != DB_DONE)
		rc = TG_EDB;
	db_done(st);
	return rc;
}

static int by_cost_desc(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	if (x->cost != y->cost)
		return x->cost > y->cost ? -1 : 1;
	if (x->requests != y->requests)
		return x->requests > y->requests ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Names for the series, biggest spend first; rows are renumbered to match. */
static void usage_order(const struct web_usage_scope *sc, const struct usage_filter *f,
			struct usage *u)
{
	size_t *map, i, j;
	struct series *old;

	if (!u->nseries)
		return;
	old = malloc(u->nseries * sizeof(*old));
	map = malloc(u->nseries * sizeof(*map));
	if (!old || !map) {
		free(old);
		free(map);
		return;
	}
	memcpy(old, u->series, u->nseries * sizeof(*old));
	qsort(u->series, u->nseries, sizeof(*u->series), by_cost_desc);
	for (i = 0; i < u->nseries; i++)
		for (j = 0; j < u->nseries; j++)
			if (strcmp(old[i].id, u->series[j].id) == 0) {
				map[i] = j;
				break;
			}
	for (i = 0; i < u->nrows; i++)
		u->rows[i].series = map[u->rows[i].series];
	for (i = 0; i < u->nseries; i++) {
		struct series *s = &u->series[i];

		if (f->split == SPLIT_KEY)
			key_label(sc->org, web_parse_id(s->id), s->name, sizeof(s->name));
		else
			snprintf(s->name, sizeof(s->name), "%s", s->id[0] ? s->id : "(no model)");
	}
	free(old);
	free(map);
}

/* ---------------------------------------------------------------- charts */

enum metric { M_SPEND, M_REQUESTS, M_TOKENS };

static int64_t row_metric(const struct usage_row *r, enum metric m)
{
	return m == M_SPEND ? r->cost : m == M_REQUESTS ? r->requests : r->prompt + r->completion;
}

/* One chart of metric m over the filter's buckets: split by series (top
 * five and "Other"), or for tokens unsplit, prompt and completion stacked. */
static cJSON *usage_chart(const struct usage_filter *f, const struct usage *u, enum metric m)
{
	static const char *const titles[2][3] = {
		{ "Spend per day", "Requests per day", "Tokens per day" },
		{ "Spend per hour", "Requests per hour", "Tokens per hour" },
	};
	static const char *const words[] = { "credits", "requests", "tokens" };
	char(*full)[24] = calloc(f->n ? f->n : 1, 24), (*tick)[12] = calloc(f->n ? f->n : 1, 12);
	const char **lp = calloc(f->n ? f->n : 1, sizeof(char *)),
		   **tp = calloc(f->n ? f->n : 1, sizeof(char *));
	const char *names[TOP_SERIES + 1];
	size_t ns = 1, i, s;
	int64_t *v = NULL;
	struct chart c;
	cJSON *out = NULL;

	if (!full || !tick || !lp || !tp)
		goto out;
	if (f->split != SPLIT_NONE && u->nseries > 0) {
		ns = u->nseries > TOP_SERIES + 1 ? TOP_SERIES + 1 : u->nseries;
		for (s = 0; s < ns; s++)
			names[s] = s == TOP_SERIES ? "Other" : u->series[s].name;
	} else if (m == M_TOKENS) {
		ns = 2;
		names[0] = "Prompt";
		names[1] = "Completion";
	}
	if (!(v = calloc(ns * (f->n ? f->n : 1), sizeof(*v))))
		goto out;
	for (i = 0; i < f->n; i++) {
		bucket_labels(f->from_t + (int64_t)i * (f->hourly ? HOUR : DAY), f->hourly, full[i],
			      tick[i]);
		lp[i] = full[i];
		tp[i] = tick[i];
	}
	for (i = 0; i < u->nrows; i++) {
		const struct usage_row *r = &u->rows[i];

		if (f->split != SPLIT_NONE) {
			s = r->series < TOP_SERIES ? r->series : TOP_SERIES;
			v[s * f->n + r->bucket] += row_metric(r, m);
		} else if (m == M_TOKENS) {
			v[r->bucket] += r->prompt;
			v[f->n + r->bucket] += r->completion;
		} else {
			v[r->bucket] += row_metric(r, m);
		}
	}
	memset(&c, 0, sizeof(c));
	c.title = titles[f->hourly][m];
	c.unit = m == M_SPEND ? CHART_MONEY : CHART_COUNT;
	c.unit_word = words[m];
	c.empty_text = "No usage in this period.";
	c.n = f->n;
	c.labels = lp;
	c.ticks = tp;
	c.nseries = ns;
	c.names = names;
	c.values = v;
	out = chart_json(&c);
out:
	free(full);
	free(tick);
	free(lp);
	free(tp);
	free(v);
	return out;
}

cJSON *web_usage_chart(int64_t org_id, int64_t key_id, int64_t user_id, int days)
{
	struct web_usage_scope sc = { org_id, user_id };
	struct usage_filter f;
	struct usage u;
	cJSON *c = NULL;
	int64_t now = time_now();

	memset(&f, 0, sizeof(f));
	f.key = key_id;
	f.to_t = now - now % DAY + DAY;
	f.from_t = f.to_t - (int64_t)(days > 0 && days <= MAX_DAYS ? days : 30) * DAY;
	f.n = (size_t)((f.to_t - f.from_t) / DAY);
	if (usage_load(&sc, &f, &u) == TG_OK)
		c = usage_chart(&f, &u, M_SPEND);
	usage_free(&u);
	return c;
}

/* ------------------------------------------------------------ /usage */

static void add_series_json(cJSON *o, const struct series *s, int64_t total_cost)
{
	web_add_count(o, "requests", s->requests);
	web_add_count(o, "errors", s->errors);
	web_add_count(o, "prompt", s->prompt);
	web_add_count(o, "completion", s->completion);
	web_add_count(o, "tokens", s->prompt + s->completion);
	web_add_money(o, "spend", s->cost);
	if (total_cost > 0) {
		int64_t pm = (int64_t)((__int128)s->cost * 1000 / total_cost); /* per mille */
		char p[48];

		snprintf(p, sizeof(p), "%lld.%lld%%", (long long)(pm / 10), (long long)(pm % 10));
		cJSON_AddStringToObject(o, "share", p);
	}
}

void web_usage_filter_choices(cJSON *jf, const struct web_usage_scope *sc, int64_t key,
			      const char *model)
{
	cJSON *keys = cJSON_AddArrayToObject(jf, "keys"),
	      *models = cJSON_AddArrayToObject(jf, "models");
	tg_stmt *st;
	int seen = 0;

	st = db_stmt(
		"SELECT id, prefix, name FROM api_keys WHERE org_id = :org"
		" AND (:user = 0 OR created_by = :user) ORDER BY revoked_at IS NOT NULL, name, id"
		" LIMIT 500");
	if (st && !db_bind_int64(st, ":org", sc->org) && !db_bind_int64(st, ":user", sc->user)) {
		while (db_step(st) == DB_ROW) {
			cJSON *k = cJSON_CreateObject();
			char label[200];

			snprintf(label, sizeof(label), "%s %s", db_col_text(st, 1),
				 db_col_text(st, 2));
			cJSON_AddNumberToObject(k, "id", (double)db_col_int64(st, 0));
			cJSON_AddStringToObject(k, "label", label);
			cJSON_AddBoolToObject(k, "selected", db_col_int64(st, 0) == key);
			cJSON_AddItemToArray(keys, k);
		}
	}
	db_done(st);
	st = db_stmt("SELECT name FROM models ORDER BY name LIMIT 500");
	if (st) {
		while (db_step(st) == DB_ROW) {
			cJSON *m = cJSON_CreateObject();
			int sel = strcmp(db_col_text(st, 0), model) == 0;

			seen |= sel;
			cJSON_AddStringToObject(m, "name", db_col_text(st, 0));
			cJSON_AddBoolToObject(m, "selected", sel);
			cJSON_AddItemToArray(models, m);
		}
	}
	db_done(st);
	if (model[0] && !seen) {
		/* A model since removed from the catalog still filters. */
		cJSON *m = cJSON_CreateObject();

		cJSON_AddStringToObject(m, "name", model);
		cJSON_AddBoolToObject(m, "selected", 1);
		cJSON_AddItemToArray(models, m);
	}
}

cJSON *web_usage_page_new(tg_req_t *r, const char *page, struct web_usage_scope *sc, int *rc)
{
	struct web_session *s = r->session;
	cJSON *d;

	if (s->org.id && s->role < ROLE_MEMBER) {
		*rc = web_not_found(r);
		return NULL;
	}
	d = cJSON_CreateObject();
	if (!s->org.id) {
		cJSON_AddBoolToObject(d, "no_org", 1);
		*rc = web_render(r, 200, page, d);
		return NULL;
	}
	if (!d) {
		*rc = resp_error(r, 500, "server_error", NULL, "Out of memory.");
		return NULL;
	}
	web_usage_scope_get(r, sc);
	return d;
}

cJSON *web_usage_page_head(cJSON *d, const tg_req_t *r, const struct web_usage_scope *sc,
			   const char *error, const char *from, const char *to, const char *qs)
{
	cJSON *jf;

	if (error)
		web_flash_now(d, "error", error);
	cJSON_AddBoolToObject(d, "has_org", 1);
	cJSON_AddStringToObject(d, "org", r->session->org.name);
	cJSON_AddBoolToObject(d, "mine_only", sc->user != 0);
	jf = cJSON_AddObjectToObject(d, "filter");
	cJSON_AddStringToObject(jf, "from", from);
	cJSON_AddStringToObject(jf, "to", to);
	cJSON_AddStringToObject(jf, "qs", qs);
	cJSON_AddBoolToObject(jf, "active", qs[0] != '\0');
	return jf;
}

int page_usage(tg_req_t *r)
{
	struct usage_filter f;
	struct web_usage_scope sc = { 0, 0 };
	struct usage u;
	cJSON *d, *jf, *rows, *c;
	int status = 200;
	size_t i;

	if (!(d = web_usage_page_new(r, "usage", &sc, &status)))
		return status;
	usage_filter_parse(r, &f);
	status = f.error ? 400 : 200;
	jf = web_usage_page_head(d, r, &sc, f.error, f.from, f.to, f.qs);
	cJSON_AddBoolToObject(jf, "hourly", f.hourly);
	cJSON_AddBoolToObject(jf, "split_model", f.split == SPLIT_MODEL);
	cJSON_AddBoolToObject(jf, "split_key", f.split == SPLIT_KEY);
	web_usage_filter_choices(jf, &sc, f.key, f.model);
	{
		char a[24], b[24], tick[12];

		bucket_labels(f.from_t, f.hourly, a, tick);
		bucket_labels(f.to_t - (f.hourly ? HOUR : DAY), f.hourly, b, tick);
		cJSON_AddStringToObject(d, "range_from", a);
		cJSON_AddStringToObject(d, "range_to", b);
	}
	if (usage_load(&sc, &f, &u)) {
		usage_free(&u);
		cJSON_Delete(d);
		return resp_error(r, 500, "server_error", NULL, "The usage could not be read.");
	}
	usage_order(&sc, &f, &u);
	if ((c = usage_chart(&f, &u, M_SPEND)))
		cJSON_AddItemToObject(d, "chart_spend", c);
	if ((c = usage_chart(&f, &u, M_REQUESTS)))
		cJSON_AddItemToObject(d, "chart_requests", c);
	if ((c = usage_chart(&f, &u, M_TOKENS)))
		cJSON_AddItemToObject(d, "chart_tokens", c);
	add_series_json(cJSON_AddObjectToObject(d, "total"), &u.total, u.total.cost);
	cJSON_AddStringToObject(d, "row_head",
				f.split == SPLIT_MODEL ? "Model" :
				f.split == SPLIT_KEY   ? "Key" :
				f.hourly               ? "Hour (UTC)" :
							 "Day (UTC)");
	rows = cJSON_AddArrayToObject(d, "rows");
	if (f.split != SPLIT_NONE) {
		for (i = 0; i < u.nseries; i++) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "label", u.series[i].name);
			if (f.split == SPLIT_KEY && web_parse_id(u.series[i].id))
				cJSON_AddNumberToObject(o, "key_id",
							(double)web_parse_id(u.series[i].id));
			add_series_json(o, &u.series[i], u.total.cost);
			cJSON_AddItemToArray(rows, o);
		}
	} else {
		/* One row per bucket with activity, newest first. */
		struct series *per = calloc(f.n ? f.n : 1, sizeof(*per));

		for (i = 0; per && i < u.nrows; i++)
			series_add(&per[u.rows[i].bucket], &u.rows[i]);
		for (i = f.n; per && i-- > 0;) {
			cJSON *o;
			char full[24], tick[12];

			if (!per[i].requests)
				continue;
			o = cJSON_CreateObject();
			bucket_labels(f.from_t + (int64_t)i * (f.hourly ? HOUR : DAY), f.hourly,
				      full, tick);
			cJSON_AddStringToObject(o, "label", full);
			add_series_json(o, &per[i], u.total.cost);
			cJSON_AddItemToArray(rows, o);
		}
		free(per);
	}
	cJSON_AddBoolToObject(d, "has_rows", cJSON_GetArraySize(rows) > 0);
	cJSON_AddBoolToObject(d, "split", f.split != SPLIT_NONE);
	usage_free(&u);
	return web_render(r, status, "usage", d);
}

int page_usage_csv(tg_req_t *r)
{
	struct usage_filter f;
	struct web_usage_scope sc = { 0, 0 };
	char name[96], day[11], amt[MONEY_FMT_LEN], label[200], full[24], tick[12];
	tg_stmt *st;
	buf_t b;
	int rc;

	if (web_usage_scope_get(r, &sc))
		return web_not_found(r);
	usage_filter_parse(r, &f);
	if (f.error)
		return resp_error(r, 400, "invalid_request_error", NULL, f.error);
	if (!(st = usage_stmt(&sc, &f)))
		return resp_error(r, 500, "server_error", NULL, "The export could not be read.");
	time_format_date(time_now(), day);
	snprintf(name, sizeof(name), "usage-org%lld-%s.csv", (long long)sc.org, day);
	web_csv_attachment(r, name);
	if ((rc = resp_stream_start(r, 200, "text/csv; charset=utf-8"))) {
		db_done(st);
		return rc;
	}
	web_csv_init(&b);
	buf_puts(&b, f.hourly ? "hour" : "day");
	buf_puts(&b, f.split == SPLIT_MODEL ? ",model" : f.split == SPLIT_KEY ? ",key_id,key" : "");
	buf_puts(&b, ",requests,errors,prompt_tokens,completion_tokens,spend\r\n");
	while (rc == TG_OK && db_step(st) == DB_ROW) {
		int64_t bucket = db_col_int64(st, 0);

		if (bucket < 0 || (size_t)bucket >= f.n)
			continue;
		bucket_labels(f.from_t + bucket * (f.hourly ? HOUR : DAY), f.hourly, full, tick);
		buf_puts(&b, full);
		if (f.split == SPLIT_MODEL) {
			buf_putc(&b, ',');
			web_csv_field(&b, db_col_text(st, 1), 1);
		} else if (f.split == SPLIT_KEY) {
			int64_t key = web_parse_id(db_col_text(st, 1));

			key_label(sc.org, key, label, sizeof(label));
			buf_appendf(&b, ",%lld,", (long long)key);
			web_csv_field(&b, label, 1);
		}
		money_format(db_col_int64(st, 6), amt);
		buf_appendf(&b, ",%lld,%lld,%lld,%lld,%s\r\n", (long long)db_col_int64(st, 2),
			    (long long)db_col_int64(st, 3), (long long)db_col_int64(st, 4),
			    (long long)db_col_int64(st, 5), amt);
		rc = web_csv_flush(r, &b);
	}
	db_done(st);
	return web_csv_end(r, &b, rc);
}
