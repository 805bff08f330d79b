/* page_keys.c - API keys of the current org: list, create (the key is shown
 * once), detail with limits, revoke and rotate.
 *
 * Members see and manage their own keys; org admins and owners (and instance
 * admins viewing the org) every key of the org, and only they set limits. A
 * key the user may not see answers 404, like any page they may not open.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys/apikeys.h"
#include "core/timeutil.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/web.h"

#define EXPIRY_SOON_S (7 * 86400)

enum list_filter { FILTER_ALL = 0, FILTER_ACTIVE, FILTER_REVOKED, FILTER_EXPIRED };

static const struct {
	const char *value, *label;
} filters[] = {
	{ "", "All" },
	{ "active", "Active" },
	{ "revoked", "Revoked" },
	{ "expired", "Expired" },
};

static const struct {
	const char *value, *label, *words;
} periods[] = {
	{ "none", "In total (never resets)", "in total" },
	{ "daily", "Per day (UTC)", "per day" },
	{ "weekly", "Per week (from Monday, UTC)", "per week" },
	{ "monthly", "Per month (UTC)", "per month" },
};

static const struct {
	int64_t seconds;
	const char *label;
} graces[] = {
	{ 0, "Stop the old key now" },
	{ 3600, "Keep the old key working for 1 hour" },
	{ 86400, "Keep the old key working for 24 hours" },
};

/* ------------------------------------------------------------- helpers */

/* The user may manage keys of the current org at all (any role there). */
static int org_ok(const tg_req_t *r)
{
	return r->session->org.id != 0 && r->session->role != ROLE_NONE;
}

static int is_org_admin(const tg_req_t *r)
{
	return r->session->role >= ROLE_ADMIN;
}

/* Load the key in the path if the user may see it: it belongs to the current
 * org and, for members, to them. Sends the 404 itself otherwise. */
static int load_key(tg_req_t *r, struct apikey *k)
{
	int64_t id = web_param_id(r, 0);

	if (!org_ok(r) || !id || apikey_get(id, k) != TG_OK || k->org_id != r->session->org.id ||
	    (!is_org_admin(r) && k->created_by != r->session->user.id)) {
		web_not_found(r);
		return TG_ENOTFOUND;
	}
	return TG_OK;
}

static void key_path(const struct apikey *k, char *out, size_t n)
{
	snprintf(out, n, "/keys/%lld", (long long)k->id);
}

/* "tg_abcdefgh name", the audit target: never the secret. */
static void key_label(const char *prefix, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s %s", prefix, name);
}

/* A whole number >= 0; "" is 0. */
static int parse_count(const char *s, int64_t *out)
{
	int64_t v = 0;

	for (; s && *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return TG_EINVAL;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return TG_OK;
}

static void add_date(cJSON *o, const char *key, int64_t t)
{
	char s[11] = "";

	if (t > 0)
		time_format_date(t, s);
	cJSON_AddStringToObject(o, key, s);
}

/* Status badge: class and text. */
static void add_status(cJSON *o, const struct apikey *k, int64_t now)
{
	enum apikey_state st = apikey_state_of(k, now);
	char text[48], when[20];

	switch (st) {
	case APIKEY_REVOKED:
		cJSON_AddStringToObject(o, "badge", "badge-danger");
		cJSON_AddStringToObject(o, "status", "revoked");
		break;
	case APIKEY_EXPIRED:
		cJSON_AddStringToObject(o, "badge", "badge-muted");
		cJSON_AddStringToObject(o, "status", "expired");
		break;
	case APIKEY_ROTATING:
		time_format(k->revoked_at, when);
		when[16] = '\0';
		snprintf(text, sizeof(text), "stops %s UTC", when);
		cJSON_AddStringToObject(o, "badge", "badge-warn");
		cJSON_AddStringToObject(o, "status", text);
		break;
	default:
		if (k->expires_at) {
			time_format_date(k->expires_at, when);
			snprintf(text, sizeof(text), "expires %s", when);
			cJSON_AddStringToObject(o, "badge",
						k->expires_at - now < EXPIRY_SOON_S ? "badge-warn" :
										      "badge-ok");
			cJSON_AddStringToObject(o, "status", text);
		} else {
			cJSON_AddStringToObject(o, "badge", "badge-ok");
			cJSON_AddStringToObject(o, "status", "active");
		}
	}
	cJSON_AddBoolToObject(o, "usable", st <= APIKEY_ROTATING);
}

static const char *period_words(enum spend_period p)
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

/* Spend in the key's current period, and its limit when it has one. */
static void add_spend(cJSON *o, const struct apikey *k, int64_t now)
{
	int64_t spent = ledger_key_spend(k->id, apikey_period_start(k->period, now));

	web_add_money(o, "spent", spent);
	cJSON_AddStringToObject(o, "period_words", period_words(k->period));
	if (k->spend_limit > 0) {
		web_add_money(o, "limit", k->spend_limit);
		cJSON_AddBoolToObject(o, "over", spent >= k->spend_limit);
		cJSON_AddBoolToObject(o, "near", spent >= k->spend_limit - k->spend_limit / 5);
	}
}

static cJSON *period_options(const char *selected)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = 0; i < TG_ARRAY_LEN(periods); i++) {
		cJSON *x = cJSON_CreateObject();

		cJSON_AddStringToObject(x, "value", periods[i].value);
		cJSON_AddStringToObject(x, "label", periods[i].label);
		cJSON_AddBoolToObject(x, "selected",
				      selected && strcmp(selected, periods[i].value) == 0);
		cJSON_AddItemToArray(a, x);
	}
	return a;
}

/* ---------------------------------------------------------------- forms */

/* The fields of the create and limits forms, as submitted (heap strings). */
struct key_form {
	char *name, *expires, *rpm, *tpm, *limit, *period, *models;
};

static void form_read(tg_req_t *r, struct key_form *f, int with_name, int with_limits)
{
	memset(f, 0, sizeof(*f));
	if (with_name)
		f->name = req_post(r, "name");
	f->expires = req_post(r, "expires");
	if (with_limits) {
		f->rpm = req_post(r, "rpm");
		f->tpm = req_post(r, "tpm");
		f->limit = req_post(r, "limit");
		f->period = req_post(r, "period");
		f->models = req_post_all(r, "models"); /* checked boxes and typed names */
	}
	web_trim(f->name);
	web_trim(f->expires);
	web_trim(f->rpm);
	web_trim(f->tpm);
	web_trim(f->limit);
}

static void form_free(struct key_form *f)
{
	free(f->name);
	free(f->expires);
	free(f->rpm);
	free(f->tpm);
	free(f->limit);
	free(f->period);
	free(f->models);
	memset(f, 0, sizeof(*f));
}

/* The form as limits; fields left out (members) stay 0. */
static int form_limits(const struct key_form *f, int with_limits, struct apikey_limits *lim,
		       const char **why)
{
	int p;

	memset(lim, 0, sizeof(*lim));
	if (f->expires && *f->expires && time_parse(f->expires, &lim->expires_at)) {
		*why = "Enter the expiry date as YYYY-MM-DD, or leave it empty.";
		return TG_EINVAL;
	}
	if (!with_limits)
		return TG_OK;
	if (parse_count(f->rpm, &lim->rpm)) {
		*why = "Requests per minute must be a whole number (empty or 0 for no limit).";
		return TG_EINVAL;
	}
	if (parse_count(f->tpm, &lim->tpm)) {
		*why = "Tokens per minute must be a whole number (empty or 0 for no limit).";
		return TG_EINVAL;
	}
	if (f->limit && *f->limit && money_parse(f->limit, &lim->spend_limit, why))
		return TG_EINVAL;
	p = apikey_period_parse(f->period && *f->period ? f->period : "none");
	if (p < 0) {
		*why = "Choose a spend period: in total, per day, per week or per month.";
		return TG_EINVAL;
	}
	lim->period = (enum spend_period)p;
	lim->allowed_models = f->models;
	return TG_OK;
}

/* 1 when `name` is one of the comma-separated names in list (spaces ignored). */
static int in_list(const char *list, const char *name)
{
	size_t nl = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *end;
		size_t len;

		while (*p == ' ' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',')
			end++;
		len = (size_t)(end - p);
		while (len && p[len - 1] == ' ')
			len--;
		if (len == nl && len && strncmp(p, name, len) == 0)
			return 1;
		p = end;
	}
	return 0;
}

/* The priced models as checkboxes (checked when in `allowed`); names in
 * `allowed` that the catalog does not list stay in the free-text field. */
static void add_model_choices(cJSON *form, const char *allowed)
{
	cJSON *list = cJSON_AddArrayToObject(form, "model_choices"), *it;
	tg_stmt *st = db_stmt("SELECT name FROM models WHERE enabled = 1 ORDER BY name LIMIT 500");
	const char *p = allowed ? allowed : "";
	buf_t other;

	while (st && db_step(st) == DB_ROW) {
		cJSON *m = cJSON_CreateObject();

		cJSON_AddStringToObject(m, "name", db_col_text(st, 0));
		cJSON_AddBoolToObject(m, "checked", in_list(p, db_col_text(st, 0)));
		cJSON_AddItemToArray(list, m);
	}
	db_done(st);
	buf_init(&other, APIKEY_MODELS_MAX * 2);
	buf_puts(&other, "");
	while (*p) {
		const char *end;
		char name[256];
		size_t len;
		int listed = 0;

		while (*p == ' ' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',')
			end++;
		len = (size_t)(end - p);
		while (len && p[len - 1] == ' ')
			len--;
		if (len && len < sizeof(name)) {
			memcpy(name, p, len);
			name[len] = '\0';
			cJSON_ArrayForEach(it, list)
				if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, name) == 0)
					listed = 1;
			if (!listed && !in_list(buf_cstr(&other), name)) {
				if (other.len)
					buf_puts(&other, ", ");
				buf_puts(&other, name);
			}
		}
		p = end;
	}
	cJSON_AddStringToObject(form, "models", buf_cstr(&other));
	cJSON_AddBoolToObject(form, "has_model_choices", cJSON_GetArraySize(list) > 0);
	buf_free(&other);
}

/* Form values for the template, from a submitted form. */
static void add_form(cJSON *d, const struct key_form *f)
{
	cJSON *o = cJSON_AddObjectToObject(d, "form");

	cJSON_AddStringToObject(o, "name", f->name ? f->name : "");
	cJSON_AddStringToObject(o, "expires", f->expires ? f->expires : "");
	cJSON_AddStringToObject(o, "rpm", f->rpm ? f->rpm : "");
	cJSON_AddStringToObject(o, "tpm", f->tpm ? f->tpm : "");
	cJSON_AddStringToObject(o, "limit", f->limit ? f->limit : "");
	add_model_choices(o, f->models);
	cJSON_AddItemToObject(o, "periods", period_options(f->period ? f->period : "monthly"));
}

/* Form values for the template, from a stored key. */
static void add_form_from_key(cJSON *d, const struct apikey *k)
{
	cJSON *o = cJSON_AddObjectToObject(d, "form");
	char n[24], money[MONEY_FMT_LEN];

	add_date(o, "expires", k->expires_at);
	snprintf(n, sizeof(n), "%lld", (long long)k->rpm);
	cJSON_AddStringToObject(o, "rpm", k->rpm ? n : "");
	snprintf(n, sizeof(n), "%lld", (long long)k->tpm);
	cJSON_AddStringToObject(o, "tpm", k->tpm ? n : "");
	money_format_short(k->spend_limit, money);
	cJSON_AddStringToObject(o, "limit", k->spend_limit ? money : "");
	add_model_choices(o, k->allowed_models);
	cJSON_AddItemToObject(o, "periods",
			      period_options(k->spend_limit ? apikey_period_name(k->period) :
							      "monthly"));
}

/* ----------------------------------------------------------------- list */

int page_keys(tg_req_t *r)
{
	struct web_session *s = r->session;
	struct {
		struct apikey k;
		cJSON *item;
	} *rows = NULL;
	char *status_s, *after_s, href[96];
	int64_t after, now = time_now(), last = 0;
	int all = is_org_admin(r), n = 0, i;
	enum list_filter filter = FILTER_ALL;
	cJSON *d = cJSON_CreateObject(), *list, *tabs;
	tg_stmt *st;
	size_t f;

	/* Keys live in an org: without one there is nothing to list. */
	if (!org_ok(r)) {
		cJSON_AddBoolToObject(d, "no_org", 1);
		return web_render(r, 200, "keys", d);
	}
	status_s = req_query(r, "status");
	after_s = req_query(r, "after");
	after = web_parse_id(after_s);
	free(after_s);
	for (f = 1; f < TG_ARRAY_LEN(filters); f++)
		if (status_s && strcmp(status_s, filters[f].value) == 0)
			filter = (enum list_filter)f;
	free(status_s);
	cJSON_AddBoolToObject(d, "has_org", 1);
	cJSON_AddStringToObject(d, "org", s->org.name);
	cJSON_AddBoolToObject(d, "show_owner", all);
	cJSON_AddStringToObject(d, "scope",
				all ? "Every key in this organization." :
				      "Your keys in this organization.");
	tabs = cJSON_AddArrayToObject(d, "tabs");
	for (f = 0; f < TG_ARRAY_LEN(filters); f++) {
		cJSON *t = cJSON_CreateObject();

		snprintf(href, sizeof(href), "/keys%s%s", f ? "?status=" : "", filters[f].value);
		cJSON_AddStringToObject(t, "href", href);
		cJSON_AddStringToObject(t, "label", filters[f].label);
		cJSON_AddBoolToObject(t, "active", f == (size_t)filter);
		cJSON_AddItemToArray(tabs, t);
	}
	rows = calloc(WEB_PAGE_SIZE, sizeof(*rows));
	list = cJSON_AddArrayToObject(d, "keys");
	st = db_stmt("SELECT k.id, k.name, k.prefix, coalesce(nullif(u.name, ''), u.email, ''),"
		     " k.created_at, coalesce(k.last_used_at, 0), coalesce(k.expires_at, 0),"
		     " coalesce(k.revoked_at, 0), k.spend_limit, k.spend_period"
		     " FROM api_keys k LEFT JOIN users u ON u.id = k.created_by"
		     " WHERE k.org_id = :org AND (:all <> 0 OR k.created_by = :user)"
		     " AND (:after = 0 OR k.id < :after)"
		     " AND (:f = 0"
		     "  OR (:f = 1 AND (k.revoked_at IS NULL OR k.revoked_at > :now)"
		     "      AND (k.expires_at IS NULL OR k.expires_at > :now))"
		     "  OR (:f = 2 AND k.revoked_at <= :now)"
		     "  OR (:f = 3 AND k.expires_at <= :now"
		     "      AND (k.revoked_at IS NULL OR k.revoked_at > :now)))"
		     " ORDER BY k.id DESC LIMIT :limit");
	if (rows && st && !db_bind_int64(st, ":org", s->org.id) &&
	    !db_bind_int64(st, ":all", all) && !db_bind_int64(st, ":user", s->user.id) &&
	    !db_bind_int64(st, ":after", after) && !db_bind_int64(st, ":f", filter) &&
	    !db_bind_int64(st, ":now", now) && !db_bind_int64(st, ":limit", WEB_PAGE_SIZE + 1)) {
		while (db_step(st) == DB_ROW) {
			struct apikey *k;
			cJSON *o;
			int p;

			if (n == WEB_PAGE_SIZE) {
				n++;
				break;
			}
			k = &rows[n].k;
			k->id = last = db_col_int64(st, 0);
			k->expires_at = db_col_int64(st, 6);
			k->revoked_at = db_col_int64(st, 7);
			k->spend_limit = db_col_int64(st, 8);
			p = apikey_period_parse(db_col_text(st, 9));
			k->period = p < 0 ? PERIOD_NONE : (enum spend_period)p;
			o = rows[n++].item = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "id", (double)k->id);
			cJSON_AddStringToObject(o, "name", db_col_text(st, 1));
			cJSON_AddStringToObject(o, "prefix", db_col_text(st, 2));
			cJSON_AddStringToObject(o, "owner",
						*db_col_text(st, 3) ? db_col_text(st, 3) :
								      "command line");
			add_date(o, "created", db_col_int64(st, 4));
			web_add_time(o, "last_used", db_col_int64(st, 5));
			add_status(o, k, now);
			cJSON_AddItemToArray(list, o);
		}
	}
	db_done(st);
	/* Spend needs other queries: after this one is finished. */
	for (i = 0; i < n && i < WEB_PAGE_SIZE; i++)
		add_spend(rows[i].item, &rows[i].k, now);
	free(rows);
	cJSON_AddBoolToObject(d, "has_keys", cJSON_GetArraySize(list) > 0);
	cJSON_AddStringToObject(d, "status", filters[filter].value);
	if (n > WEB_PAGE_SIZE)
		cJSON_AddNumberToObject(d, "next", (double)last);
	cJSON_AddBoolToObject(d, "paged", after != 0);
	cJSON_AddBoolToObject(d, "pager", after != 0 || n > WEB_PAGE_SIZE);
	cJSON_AddBoolToObject(d, "filtered", filter != FILTER_ALL);
	return web_render(r, 200, "keys", d);
}

/* --------------------------------------------------------------- create */

static int new_render(tg_req_t *r, int status, const struct key_form *f, const char *error)
{
	cJSON *d = cJSON_CreateObject();
	struct key_form empty;

	memset(&empty, 0, sizeof(empty));
	cJSON_AddStringToObject(d, "org", r->session->org.name);
	cJSON_AddBoolToObject(d, "can_limits", is_org_admin(r));
	add_form(d, f ? f : &empty);
	if (error)
		web_flash_now(d, "error", error);
	return web_render(r, status, "keys_new", d);
}

int page_keys_new(tg_req_t *r)
{
	if (!org_ok(r))
		return web_not_found(r);
	return new_render(r, 200, NULL, NULL);
}

/* The one-time page with a new key. Rendered directly (never a redirect),
 * and the response carries Cache-Control: no-store. */
static int reveal_render(tg_req_t *r, const char *key, int64_t id, const char *name,
			 const struct apikey *old, int64_t grace_s)
{
	const tg_config_t *cfg = web_config();
	const char *host = req_header(r, "Host");
	cJSON *d = cJSON_CreateObject();
	char base[CONFIG_STR_MAX + 16] = "", prefix[KEYS_PREFIX_LEN + 1], when[20];

	keys_prefix_of(key, prefix);
	if (cfg && cfg->public_url[0])
		snprintf(base, sizeof(base), "%s", cfg->public_url);
	else if (host && strlen(host) < 256)
		snprintf(base, sizeof(base), "%s://%s", req_is_tls(r) ? "https" : "http", host);
	cJSON_AddStringToObject(d, "key", key);
	cJSON_AddNumberToObject(d, "id", (double)id);
	cJSON_AddStringToObject(d, "name", name);
	cJSON_AddStringToObject(d, "prefix", prefix);
	cJSON_AddStringToObject(d, "org", r->session->org.name);
	cJSON_AddStringToObject(d, "base_url", base);
	cJSON_AddStringToObject(d, "heading", old ? "Key rotated" : "API key created");
	if (old) {
		cJSON *o = cJSON_AddObjectToObject(d, "rotated");
		struct apikey now_old;

		cJSON_AddStringToObject(o, "old_prefix", old->prefix);
		cJSON_AddNumberToObject(o, "old_id", (double)old->id);
		if (grace_s > 0 && apikey_get(old->id, &now_old) == TG_OK && now_old.revoked_at) {
			time_format(now_old.revoked_at, when);
			when[16] = '\0';
			cJSON_AddStringToObject(o, "until", when);
		}
	}
	return web_render(r, 200, "keys_reveal", d);
}

int page_keys_create(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct apikey_limits lim;
	struct apikey k;
	struct key_form f;
	char key[KEYS_LEN + 1] = "", prefix[KEYS_PREFIX_LEN + 1], target[APIKEY_NAME_MAX * 4 + 32];
	char detail[APIKEY_MODELS_MAX + 160];
	const char *why = NULL;
	int admin = is_org_admin(r), rc;
	int64_t id;

	if (!org_ok(r))
		return web_not_found(r);
	/* Members may not set limits: those fields are not even read. */
	form_read(r, &f, 1, admin);
	if (form_limits(&f, admin, &lim, &why) ||
	    apikey_create(r->session->org.id, r->session->user.id, f.name ? f.name : "", &lim, key,
			  &id, &why)) {
		rc = new_render(r, 422, &f, why ? why : "Could not create the key.");
		goto out;
	}
	keys_prefix_of(key, prefix);
	key_label(prefix, f.name, target, sizeof(target));
	if (apikey_get(id, &k) == TG_OK)
		apikey_limits_text(&k, detail, sizeof(detail));
	else
		detail[0] = '\0';
	audit_add(&a, r->session->org.id, "key.create", target, detail);
	rc = reveal_render(r, key, id, f.name, NULL, 0);
out:
	sodium_memzero(key, sizeof(key));
	form_free(&f);
	return rc;
}

/* --------------------------------------------------------------- detail */

static int detail_render(tg_req_t *r, int status, const struct apikey *k, const struct key_form *f,
			 const char *error)
{
	cJSON *d = cJSON_CreateObject(), *o, *lim, *models;
	int64_t now = time_now();
	enum apikey_state state = apikey_state_of(k, now);
	struct apikey other;
	struct user u;
	char n[32], when[20];
	tg_stmt *st;
	size_t i;

	o = cJSON_AddObjectToObject(d, "key");
	cJSON_AddNumberToObject(o, "id", (double)k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	cJSON_AddStringToObject(o, "prefix", k->prefix);
	cJSON_AddStringToObject(o, "org", r->session->org.name);
	if (k->created_by && user_get(k->created_by, &u) == TG_OK) {
		cJSON_AddStringToObject(o, "owner", u.name[0] ? u.name : u.email);
		cJSON_AddStringToObject(o, "owner_email", u.email);
	} else {
		cJSON_AddStringToObject(o, "owner", "command line");
	}
	web_add_time(o, "created", k->created_at);
	web_add_time(o, "last_used", k->last_used_at);
	add_date(o, "expires", k->expires_at);
	if (k->revoked_at) {
		time_format(k->revoked_at, when);
		when[16] = '\0';
		cJSON_AddStringToObject(o, "revoked", when);
		cJSON_AddBoolToObject(o, "revoked_future", k->revoked_at > now);
	}
	add_status(o, k, now);
	add_spend(o, k, now);
	/* The key it replaced and the one that replaced it, when visible. */
	if (k->rotated_from && apikey_get(k->rotated_from, &other) == TG_OK &&
	    other.org_id == k->org_id) {
		cJSON *x = cJSON_AddObjectToObject(o, "rotated_from");

		cJSON_AddNumberToObject(x, "id", (double)other.id);
		cJSON_AddStringToObject(x, "prefix", other.prefix);
	}
	st = db_stmt(
		"SELECT id, prefix FROM api_keys WHERE rotated_from = :id ORDER BY id LIMIT 1");
	if (st && !db_bind_int64(st, ":id", k->id) && db_step(st) == DB_ROW) {
		cJSON *x = cJSON_AddObjectToObject(o, "replaced_by");

		cJSON_AddNumberToObject(x, "id", (double)db_col_int64(st, 0));
		cJSON_AddStringToObject(x, "prefix", db_col_text(st, 1));
	}
	db_done(st);

	lim = cJSON_AddObjectToObject(d, "limits");
	web_fmt_count(k->rpm, n);
	cJSON_AddStringToObject(lim, "rpm", k->rpm ? n : "");
	web_fmt_count(k->tpm, n);
	cJSON_AddStringToObject(lim, "tpm", k->tpm ? n : "");
	if (k->spend_limit) {
		web_add_money(lim, "spend", k->spend_limit);
		for (i = 0; i < TG_ARRAY_LEN(periods); i++)
			if (strcmp(periods[i].value, apikey_period_name(k->period)) == 0)
				cJSON_AddStringToObject(lim, "period", periods[i].words);
	}
	models = cJSON_AddArrayToObject(lim, "models");
	{
		const char *p = k->allowed_models;

		while (*p) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			char m[APIKEY_MODELS_MAX];

			snprintf(m, sizeof(m), "%.*s", (int)len, p);
			cJSON_AddItemToArray(models, cJSON_CreateString(m));
			p += len + (end ? 1 : 0);
		}
	}

	cJSON_AddBoolToObject(d, "can_limits", is_org_admin(r) && state != APIKEY_REVOKED);
	cJSON_AddBoolToObject(d, "can_revoke", state != APIKEY_REVOKED);
	cJSON_AddBoolToObject(d, "can_rotate", state == APIKEY_ACTIVE);
	if (f)
		add_form(d, f);
	else
		add_form_from_key(d, k);
	{
		cJSON *g = cJSON_AddArrayToObject(d, "graces");

		for (i = 0; i < TG_ARRAY_LEN(graces); i++) {
			cJSON *x = cJSON_CreateObject();

			cJSON_AddNumberToObject(x, "value", (double)graces[i].seconds);
			cJSON_AddStringToObject(x, "label", graces[i].label);
			cJSON_AddBoolToObject(x, "selected", graces[i].seconds == 3600);
			cJSON_AddItemToArray(g, x);
		}
	}
	cJSON_AddItemToObject(d, "spend_chart", web_usage_chart(k->org_id, k->id, 0, 30));
	if (error)
		web_flash_now(d, "error", error);
	return web_render(r, status, "keys_detail", d);
}

int page_key(tg_req_t *r)
{
	struct apikey k;

	if (load_key(r, &k))
		return TG_OK;
	return detail_render(r, 200, &k, NULL, NULL);
}

int page_key_limits(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct apikey_limits lim;
	struct apikey k;
	struct key_form f;
	char loc[48], target[APIKEY_NAME_MAX * 4 + 32], detail[APIKEY_MODELS_MAX + 160];
	const char *why = NULL;
	int rc;

	if (load_key(r, &k))
		return TG_OK;
	if (!is_org_admin(r))
		return web_not_found(r);
	form_read(r, &f, 0, 1);
	if (form_limits(&f, 1, &lim, &why) || apikey_update_limits(k.id, &lim, &why)) {
		rc = detail_render(r, 422, &k, &f, why ? why : "Could not save the limits.");
		goto out;
	}
	if (apikey_get(k.id, &k) == TG_OK)
		apikey_limits_text(&k, detail, sizeof(detail));
	else
		detail[0] = '\0';
	key_label(k.prefix, k.name, target, sizeof(target));
	audit_add(&a, k.org_id, "key.limits", target, detail);
	key_path(&k, loc, sizeof(loc));
	rc = web_redirect_flash(r, loc, "ok", "Limits saved. They apply to the next request.");
out:
	form_free(&f);
	return rc;
}

int page_key_revoke(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct apikey k;
	char loc[48], target[APIKEY_NAME_MAX * 4 + 32], msg[96];
	int rc;

	if (load_key(r, &k))
		return TG_OK;
	key_path(&k, loc, sizeof(loc));
	rc = apikey_revoke(k.id);
	if (rc == TG_ECONFLICT)
		return web_redirect_flash(r, loc, "warn", "This key was already revoked.");
	if (rc)
		return web_redirect_flash(r, loc, "error", "Could not revoke the key.");
	key_label(k.prefix, k.name, target, sizeof(target));
	audit_add(&a, k.org_id, "key.revoke", target, "");
	snprintf(msg, sizeof(msg), "Key %s revoked. Requests with it now fail.", k.prefix);
	return web_redirect_flash(r, loc, "ok", msg);
}

int page_key_rotate(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct apikey k;
	char *grace_s = NULL, key[KEYS_LEN + 1] = "", loc[48], prefix[KEYS_PREFIX_LEN + 1];
	char target[APIKEY_NAME_MAX * 4 + 32], detail[96];
	const char *why = NULL;
	int64_t grace = 0, id;
	int rc;

	if (load_key(r, &k))
		return TG_OK;
	key_path(&k, loc, sizeof(loc));
	grace_s = req_post(r, "grace");
	rc = parse_count(grace_s, &grace);
	free(grace_s);
	if (rc || grace > APIKEY_GRACE_MAX)
		return web_redirect_flash(r, loc, "error",
					  "Choose how long the old key keeps working.");
	if ((rc = apikey_rotate(k.id, grace, key, &id, &why)))
		return web_redirect_flash(r, loc, "error", why ? why : "Could not rotate the key.");
	keys_prefix_of(key, prefix);
	key_label(k.prefix, k.name, target, sizeof(target));
	snprintf(detail, sizeof(detail), "replaced by %s; old key works %lld more seconds", prefix,
		 (long long)grace);
	audit_add(&a, k.org_id, "key.rotate", target, detail);
	rc = reveal_render(r, key, id, k.name, &k, grace);
	sodium_memzero(key, sizeof(key));
	return rc;
}
