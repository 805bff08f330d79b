/* page_catalog.c - providers (instance admin) and pricing (everyone signed
 * in; the instance admin also edits it). Provider API keys go in through a
 * password field and are never rendered again. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/fmt.h"
#include "web/web.h"

/* ------------------------------------------------------------ helpers */

/* A whole number of at most 12 digits; -1 when s is anything else. */
static int64_t parse_count(const char *s)
{
	char *end;
	long long v;

	if (!s || !*s || strlen(s) > 12 || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end ? -1 : (int64_t)v;
}

static int is_checked(const char *v)
{
	return v && strcmp(v, "1") == 0;
}

/* A rejected form: the field to mark (form key) with a short reason under
 * it, and the full sentence for the flash. */
struct form_err {
	const char *field;
	const char *why;
	char msg[300];
};

static void form_err_set(struct form_err *e, const char *field, const char *label, const char *why)
{
	e->field = field;
	e->why = why;
	if (label)
		snprintf(e->msg, sizeof(e->msg), "%s: %s", label, why);
	else
		snprintf(e->msg, sizeof(e->msg), "%s", why);
}

/* form.err.<field> = why, for the template to mark that field. */
static void add_form_err(cJSON *form, const struct form_err *e)
{
	cJSON *err = cJSON_AddObjectToObject(form, "err");

	if (e && e->field)
		cJSON_AddStringToObject(err, e->field, e->why);
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* ---------------------------------------------------------- providers */

/* The kinds in the order the form offers them, with their human names and
 * the base URL used when the field is left empty. */
static const struct {
	enum provider_kind kind;
	const char *label, *default_url;
} kinds[] = {
	{ PROVIDER_OPENAI, "OpenAI-compatible", NULL },
	{ PROVIDER_ANTHROPIC, "Anthropic", "https://api.anthropic.com/v1" },
	{ PROVIDER_GEMINI, "Google Gemini", "https://generativelanguage.googleapis.com/v1beta" },
	{ PROVIDER_AZURE, "Azure OpenAI", NULL },
	{ PROVIDER_ECHO, "Built-in echo", NULL },
};

/* The kinds[] index of a kind name; 0 (OpenAI-compatible) for anything else. */
static size_t kind_index(const char *name)
{
	int k = catalog_provider_kind_parse(name);
	size_t i;

	for (i = 0; i < TG_ARRAY_LEN(kinds); i++)
		if ((int)kinds[i].kind == k)
			return i;
	return 0;
}

/* Deployment health as a badge: text, badge class and the ok/failed totals
 * ("" when never tried). provider: the wording of the providers table. */
static void add_health(cJSON *o, const struct web_health *h, int provider)
{
	char text[64], totals[80], ok[WEB_COUNT_LEN], failed[WEB_COUNT_LEN];
	const char *badge;

	totals[0] = '\0';
	if (h->cooling_for_ms > 0) {
		long long s = (long long)((h->cooling_for_ms + 999) / 1000);

		snprintf(text, sizeof(text),
			 provider ? "cooling down (%llds)" : "cooling down %llds", s);
		badge = "badge-danger";
	} else if (h->failures > 0) {
		if (provider)
			snprintf(text, sizeof(text), "failing (%lld in a row)",
				 (long long)h->failures);
		else
			snprintf(text, sizeof(text), "%lld failure%s in a row",
				 (long long)h->failures, h->failures == 1 ? "" : "s");
		badge = "badge-warn";
	} else if (h->ok_total || h->failed_total) {
		snprintf(text, sizeof(text), "ok");
		badge = "badge-ok";
	} else {
		snprintf(text, sizeof(text), "no calls yet");
		badge = "badge-muted";
	}
	if (h->ok_total || h->failed_total) {
		web_fmt_count((int64_t)h->ok_total, ok);
		web_fmt_count((int64_t)h->failed_total, failed);
		snprintf(totals, sizeof(totals), "%s ok · %s failed", ok, failed);
	}
	cJSON_AddStringToObject(o, "health", text);
	cJSON_AddStringToObject(o, "health_badge", badge);
	cJSON_AddStringToObject(o, "health_totals", totals);
}

/* Per provider, over every deployment using it: the longest cooldown, the
 * most failures in a row and the call totals. */
struct provider_health {
	struct web_health *h;
	int n, cap;
};

static void provider_health_add(void *ud, const struct web_health *h)
{
	struct provider_health *ph = ud;
	struct web_health *t;
	int i;

	for (i = 0; i < ph->n; i++)
		if (ph->h[i].provider_id == h->provider_id)
			break;
	if (i == ph->n) {
		if (ph->n == ph->cap)
			return;
		ph->h[ph->n++] = (struct web_health){ .provider_id = h->provider_id };
	}
	t = &ph->h[i];
	if (h->cooling_for_ms > t->cooling_for_ms)
		t->cooling_for_ms = h->cooling_for_ms;
	if (h->failures > t->failures)
		t->failures = h->failures;
	t->ok_total += h->ok_total;
	t->failed_total += h->failed_total;
}

/* Form values as submitted (or as loaded for editing); never the key. */
struct provider_form {
	const char *name, *kind, *base_url, *api_version, *timeout_s;
	int enabled;
};

static void providers_list(cJSON *d, const struct web_health_src *hs)
{
	cJSON *list = cJSON_AddArrayToObject(d, "providers");
	tg_stmt *st;
	struct provider_health ph = { NULL, 0, 1024 };

	ph.h = calloc((size_t)ph.cap, sizeof(*ph.h));
	if (ph.h && hs)
		hs->each(provider_health_add, &ph);
	st = db_stmt("SELECT p.id, p.name, p.kind, p.base_url, p.api_key_sealed != '',"
		     " p.timeout_s, p.enabled,"
		     " (SELECT count(*) FROM models m WHERE m.provider_id = p.id), p.api_version"
		     " FROM providers p ORDER BY p.name LIMIT 1000");
	while (st && db_step(st) == DB_ROW) {
		cJSON *p = cJSON_CreateObject();
		int64_t id = db_col_int64(st, 0);
		size_t k = kind_index(db_col_text(st, 2));
		struct web_health h = { .provider_id = id };
		int echo = kinds[k].kind == PROVIDER_ECHO, i;

		for (i = 0; i < ph.n; i++)
			if (ph.h[i].provider_id == id)
				h = ph.h[i];
		cJSON_AddNumberToObject(p, "id", (double)id);
		cJSON_AddStringToObject(p, "name", db_col_text(st, 1));
		cJSON_AddStringToObject(p, "kind", kinds[k].label);
		cJSON_AddStringToObject(p, "base_url", db_col_text(st, 3));
		if (kinds[k].default_url)
			cJSON_AddStringToObject(p, "default_url", kinds[k].default_url);
		cJSON_AddStringToObject(p, "api_version", db_col_text(st, 8));
		cJSON_AddBoolToObject(p, "echo", echo);
		cJSON_AddBoolToObject(p, "has_key", db_col_int(st, 4));
		web_add_int(p, "timeout_s", db_col_int64(st, 5));
		cJSON_AddBoolToObject(p, "enabled", db_col_int(st, 6));
		web_add_count(p, "models", db_col_int64(st, 7));
		add_health(p, &h, 1);
		cJSON_AddItemToArray(list, p);
	}
	db_done(st);
	free(ph.h);
	cJSON_AddBoolToObject(d, "has_providers", cJSON_GetArraySize(list) > 0);
}

/* The providers page: the table and the add form, or (editing != NULL) the
 * edit form for one provider. */
static int providers_render(tg_req_t *r, int status, const struct provider *editing,
			    const struct provider_form *f, const struct form_err *e,
			    const char *flash_kind, const char *flash,
			    const struct web_health_src *hs)
{
	cJSON *d = cJSON_CreateObject(), *form, *ks;
	struct provider_form dflt = { "", "openai", "", "", "60", 1 };
	size_t i, sel;

	if (!f)
		f = &dflt;
	if (editing) {
		cJSON *ed = cJSON_AddObjectToObject(d, "editing");

		cJSON_AddNumberToObject(ed, "id", (double)editing->id);
		cJSON_AddStringToObject(ed, "name", editing->name);
		cJSON_AddBoolToObject(ed, "has_key", editing->has_api_key);
		cJSON_AddBoolToObject(ed, "echo", editing->kind == PROVIDER_ECHO);
	} else {
		providers_list(d, hs);
	}
	form = cJSON_AddObjectToObject(d, "form");
	cJSON_AddStringToObject(form, "name", f->name ? f->name : "");
	ks = cJSON_AddArrayToObject(form, "kinds");
	sel = kind_index(f->kind);
	for (i = 0; i < TG_ARRAY_LEN(kinds); i++) {
		cJSON *k = cJSON_CreateObject();

		cJSON_AddStringToObject(k, "value", catalog_provider_kind_name(kinds[i].kind));
		cJSON_AddStringToObject(k, "label", kinds[i].label);
		cJSON_AddBoolToObject(k, "selected", i == sel);
		cJSON_AddItemToArray(ks, k);
	}
	cJSON_AddStringToObject(form, "base_url", f->base_url ? f->base_url : "");
	cJSON_AddStringToObject(form, "api_version", f->api_version ? f->api_version : "");
	cJSON_AddStringToObject(form, "timeout_s", f->timeout_s ? f->timeout_s : "");
	cJSON_AddBoolToObject(form, "enabled", f->enabled);
	add_form_err(form, e);
	if (e)
		web_flash_now(d, "error", e->msg);
	else
		web_flash_now(d, flash_kind, flash);
	return web_render(r, status, "providers", d);
}

int page_providers(tg_req_t *r, const struct web_health_src *hs)
{
	if (!r->session->user.is_admin)
		return web_not_found(r);
	return providers_render(r, 200, NULL, NULL, NULL, NULL, NULL, hs);
}

int page_provider_edit(tg_req_t *r)
{
	struct provider p;
	struct provider_form f;
	char timeout[24];

	if (!r->session->user.is_admin)
		return web_not_found(r);
	if (catalog_provider_get(web_param_id(r, 0), &p) != TG_OK)
		return web_not_found(r);
	snprintf(timeout, sizeof(timeout), "%lld", (long long)p.timeout_s);
	f.name = p.name;
	f.kind = catalog_provider_kind_name(p.kind);
	f.base_url = p.base_url;
	f.api_version = p.api_version;
	f.timeout_s = timeout;
	f.enabled = p.enabled;
	return providers_render(r, 200, &p, &f, NULL, NULL, NULL, NULL);
}

int page_providers_save(tg_req_t *r, const struct web_health_src *hs)
{
	struct audit_actor a = web_actor(r);
	struct provider_form f = { NULL, NULL, NULL, NULL, NULL, 0 };
	struct form_err e = { NULL, NULL, "" };
	struct provider old, now;
	char *name = NULL, *kind_s = NULL, *url = NULL, *ver = NULL, *key = NULL, *clear = NULL,
	     *timeout_s = NULL;
	char *enabled = NULL, detail[700], msg[200];
	const char *why = NULL, *field = NULL, *key_arg = NULL, *key_note, *version;
	int64_t timeout, id;
	int kind, existed, rc;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	name = req_post(r, "name");
	kind_s = req_post(r, "kind");
	url = req_post(r, "base_url");
	ver = req_post(r, "api_version");
	key = req_post(r, "api_key");
	clear = req_post(r, "clear_key");
	timeout_s = req_post(r, "timeout_s");
	enabled = req_post(r, "enabled");
	version = ver ? web_trim(ver) : "";
	f.name = name;
	f.kind = kind_s;
	f.base_url = url;
	f.api_version = version;
	f.timeout_s = timeout_s;
	f.enabled = is_checked(enabled);
	existed = catalog_provider_get_by_name(name ? name : "", &old) == TG_OK;
	kind = catalog_provider_kind_parse(kind_s);
	timeout = parse_count(timeout_s);
	/* An empty key field keeps the stored key; the checkbox clears it. */
	if (is_checked(clear))
		key_arg = "";
	else if (key && *key)
		key_arg = key;
	if (kind < 0)
		form_err_set(&e, "kind", NULL,
			     "Choose a kind: OpenAI-compatible, Anthropic, Google Gemini, Azure "
			     "OpenAI or built-in echo.");
	else if (timeout < 0)
		form_err_set(&e, "timeout_s", NULL,
			     "Timeout must be a whole number of seconds, from 1 to 3600.");
	else if (is_checked(clear) && key && *key)
		form_err_set(&e, "api_key", NULL,
			     "Either enter a new API key or clear the stored one, not both.");
	else if (catalog_provider_check(name ? name : "", (enum provider_kind)kind, url, version,
					key_arg, timeout, &field, &why))
		form_err_set(&e, field, NULL, why);
	if (e.why) {
		rc = providers_render(r, 422, existed ? &old : NULL, &f, &e, NULL, NULL, hs);
		goto out;
	}
	rc = catalog_provider_upsert(name, (enum provider_kind)kind, url, version, key_arg, timeout,
				     f.enabled, &id, &why);
	if (rc || catalog_provider_get(id, &now) != TG_OK) {
		form_err_set(&e, NULL, NULL,
			     rc == TG_EINVAL ? why : "Could not save the provider.");
		rc = providers_render(r, rc == TG_EINVAL ? 422 : 500, existed ? &old : NULL, &f, &e,
				      NULL, NULL, hs);
		goto out;
	}
	key_note = key_arg && *key_arg ? (existed && old.has_api_key ? "key replaced" : "key set") :
		   key_arg             ? (existed && old.has_api_key ? "key cleared" : "no key") :
		   now.has_api_key     ? "key unchanged" :
					 "no key";
	snprintf(detail, sizeof(detail), "%s%s%s%s%s, timeout %llds, %s, %s",
		 catalog_provider_kind_name(now.kind), now.base_url[0] ? " " : "", now.base_url,
		 now.api_version[0] ? ", api version " : "", now.api_version,
		 (long long)now.timeout_s, now.enabled ? "enabled" : "disabled", key_note);
	audit_add(&a, 0, existed ? "provider.update" : "provider.create", now.name, detail);
	snprintf(msg, sizeof(msg), "%s provider %s.", existed ? "Saved" : "Added", now.name);
	rc = web_redirect_flash(r, "/providers", "ok", msg);
out:
	free(name);
	free(kind_s);
	free(url);
	free(ver);
	free_secret(key);
	free(clear);
	free(timeout_s);
	free(enabled);
	return rc;
}

int page_provider_test(tg_req_t *r, const struct web_health_src *hs)
{
	buf_t msg;
	int rc;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	buf_init(&msg, 4096);
	rc = catalog_provider_test(web_param_id(r, 0), &msg);
	if (rc == TG_ENOTFOUND) {
		buf_free(&msg);
		return web_not_found(r);
	}
	/* Shown right here rather than through the flash cookie, which is too
	 * small for an upstream error body. */
	rc = providers_render(r, 200, NULL, NULL, NULL, rc == TG_OK ? "ok" : "error",
			      buf_cstr(&msg), hs);
	buf_free(&msg);
	return rc;
}

/* ------------------------------------------------------------ pricing */

/* Form values as submitted, or as loaded for editing. cwrite empty: the
 * input price. */
struct model_form {
	const char *name, *provider_id, *upstream_model, *kind, *in, *cached, *out, *max_out, *ctx,
		*cwrite, *weight, *fallback;
	int enabled;
};

/* A deployment's form: prices all empty for the model's own. */
struct dep_form {
	const char *provider_id, *upstream_model, *weight, *priority, *in, *cached, *cwrite, *out;
	int enabled;
};

/* "Example: 1,000 input and 500 output tokens cost 0.00045 credits." for
 * the given prices. */
static void add_example(cJSON *obj, const char *key, const money_price_t *p)
{
	char cost_s[MONEY_FMT_LEN], text[200];
	int64_t cost;

	if (money_cost(1000, 0, 500, p, &cost))
		return;
	money_format_short(cost, cost_s);
	snprintf(text, sizeof(text), "1,000 input and 500 output tokens cost %s credits.", cost_s);
	cJSON_AddStringToObject(obj, key, text);
}

static void models_list(cJSON *d, int admin)
{
	cJSON *list = cJSON_AddArrayToObject(d, "models");
	tg_stmt *st = db_stmt(
		"SELECT m.id, m.name, p.name, m.upstream_model, m.kind, m.price_in,"
		" m.price_cached_in, m.price_out, m.max_output_tokens,"
		" m.context_window, m.enabled * p.enabled, m.enabled, m.price_cache_write,"
		" m.fallback_model, (SELECT count(*) FROM deployments d WHERE d.model_id = m.id)"
		" FROM models m JOIN providers p ON p.id = m.provider_id"
		" ORDER BY m.name LIMIT 5000");
	int have_example = 0;

	while (st && db_step(st) == DB_ROW) {
		cJSON *m = cJSON_CreateObject();
		money_price_t price = { .in = db_col_int64(st, 5),
					.cached_in = db_col_int64(st, 6),
					.out = db_col_int64(st, 7),
					.cache_write = db_col_int64(st, 12) };
		int usable = db_col_int(st, 10);
		int64_t deps = db_col_int64(st, 14);

		cJSON_AddNumberToObject(m, "id", (double)db_col_int64(st, 0));
		cJSON_AddStringToObject(m, "name", db_col_text(st, 1));
		cJSON_AddStringToObject(m, "provider", db_col_text(st, 2));
		cJSON_AddStringToObject(m, "upstream_model", db_col_text(st, 3));
		cJSON_AddStringToObject(m, "kind", db_col_text(st, 4));
		web_add_money(m, "in", price.in);
		web_add_money(m, "cached", price.cached_in);
		web_add_money(m, "out", price.out);
		web_add_money(m, "cache_write", price.cache_write);
		web_add_count(m, "max_output", db_col_int64(st, 8));
		web_add_count(m, "context", db_col_int64(st, 9));
		cJSON_AddStringToObject(m, "fallback", db_col_text(st, 13));
		web_add_count(m, "deployments", deps + 1);
		cJSON_AddBoolToObject(m, "several", deps > 0);
		cJSON_AddBoolToObject(m, "enabled", usable);
		/* Enabled itself but its provider is off: say why it is unavailable. */
		cJSON_AddBoolToObject(m, "provider_off", db_col_int(st, 11) && !usable);
		cJSON_AddBoolToObject(m, "admin", admin);
		cJSON_AddItemToArray(list, m);
		if (!have_example && usable && strcmp(db_col_text(st, 4), "chat") == 0) {
			cJSON *ex = cJSON_AddObjectToObject(d, "example");

			cJSON_AddStringToObject(ex, "model", db_col_text(st, 1));
			add_example(ex, "text", &price);
			have_example = 1;
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_models", cJSON_GetArraySize(list) > 0);
}

/* obj.key = every provider (name and kind), the one with id `selected`
 * marked; obj.key_unset when none is. */
static void provider_choices(cJSON *obj, const char *key, const char *unset_key,
			     const char *selected)
{
	cJSON *list = cJSON_AddArrayToObject(obj, key);
	tg_stmt *st = db_stmt("SELECT id, name, kind FROM providers ORDER BY name LIMIT 1000");
	int64_t sel = web_parse_id(selected);
	int found = 0;

	while (st && db_step(st) == DB_ROW) {
		cJSON *p = cJSON_CreateObject();
		int64_t id = db_col_int64(st, 0);

		cJSON_AddNumberToObject(p, "id", (double)id);
		cJSON_AddStringToObject(p, "name", db_col_text(st, 1));
		cJSON_AddStringToObject(p, "kind", kinds[kind_index(db_col_text(st, 2))].label);
		cJSON_AddBoolToObject(p, "selected", id == sel);
		found |= id == sel;
		cJSON_AddItemToArray(list, p);
	}
	db_done(st);
	cJSON_AddBoolToObject(obj, unset_key, !found);
}

/* d.fallback_groups: the models a model may fall back to, by kind (only
 * its own kind, without itself, when editing one), `selected` marked. */
static void fallback_choices(cJSON *d, const struct model *editing, const char *selected)
{
	static const char *const kind_names[] = { "chat", "embedding" };
	cJSON *groups = cJSON_AddArrayToObject(d, "fallback_groups");
	size_t k;

	for (k = 0; k < TG_ARRAY_LEN(kind_names); k++) {
		tg_stmt *st;
		cJSON *g, *list;

		if (editing && strcmp(catalog_model_kind_name(editing->kind), kind_names[k]) != 0)
			continue;
		g = cJSON_CreateObject();
		cJSON_AddStringToObject(g, "label", kind_names[k]);
		list = cJSON_AddArrayToObject(g, "models");
		st = db_stmt("SELECT name FROM models WHERE kind = :kind AND name != :self"
			     " ORDER BY name LIMIT 5000");
		if (st && !db_bind_text(st, ":kind", kind_names[k]) &&
		    !db_bind_text(st, ":self", editing ? editing->name : "")) {
			while (db_step(st) == DB_ROW) {
				cJSON *m = cJSON_CreateObject();

				cJSON_AddStringToObject(m, "name", db_col_text(st, 0));
				cJSON_AddBoolToObject(m, "selected",
						      selected && strcmp(selected,
									 db_col_text(st, 0)) == 0);
				cJSON_AddItemToArray(list, m);
			}
		}
		db_done(st);
		if (cJSON_GetArraySize(list) > 0)
			cJSON_AddItemToArray(groups, g);
		else
			cJSON_Delete(g);
	}
}

/* "model's price", or the deployment's four prices. */
static void add_dep_price(cJSON *o, const struct deployment *dp)
{
	char in[MONEY_FMT_LEN], cached[MONEY_FMT_LEN], cw[MONEY_FMT_LEN], out[MONEY_FMT_LEN];
	char text[200];

	cJSON_AddBoolToObject(o, "own_price", dp->own_price);
	if (!dp->own_price)
		return;
	money_format_short(dp->price.in, in);
	money_format_short(dp->price.cached_in, cached);
	money_format_short(dp->price.cache_write, cw);
	money_format_short(dp->price.out, out);
	snprintf(text, sizeof(text), "input %s · cached %s · cache write %s · output %s", in,
		 cached, cw, out);
	cJSON_AddStringToObject(o, "price", text);
}

/* The model's deployments (its own first) with their health, and the form
 * to add or update one. */
static void deployments_panel(cJSON *d, const struct model *m, const struct web_health_src *hs,
			      const struct dep_form *f, const struct form_err *e)
{
	struct dep_form dflt = { "", "", "1", "0", "", "", "", "", 1 };
	struct deployment deps[CATALOG_DEPLOY_MAX], own;
	cJSON *list = cJSON_AddArrayToObject(d, "deployments"), *form;
	struct web_health h;
	struct provider p;
	int n, i;

	memset(&own, 0, sizeof(own));
	own.model_id = m->id;
	own.provider_id = m->provider_id;
	snprintf(own.upstream_model, sizeof(own.upstream_model), "%s", m->upstream_model);
	own.weight = m->weight;
	own.enabled = m->enabled;
	n = catalog_deployments_of(m->id, deps, CATALOG_DEPLOY_MAX);
	for (i = -1; i < (n > 0 ? n : 0); i++) {
		const struct deployment *dp = i < 0 ? &own : &deps[i];
		cJSON *o = cJSON_CreateObject();

		memset(&h, 0, sizeof(h));
		if (hs)
			hs->of(m->id, dp->id, dp->provider_id, dp->upstream_model, &h);
		if (catalog_provider_get(dp->provider_id, &p) != TG_OK)
			snprintf(p.name, sizeof(p.name), "#%lld", (long long)dp->provider_id);
		cJSON_AddNumberToObject(o, "id", (double)dp->id);
		cJSON_AddNumberToObject(o, "model_id", (double)m->id);
		cJSON_AddBoolToObject(o, "own", i < 0);
		cJSON_AddStringToObject(o, "provider", p.name);
		cJSON_AddStringToObject(o, "upstream_model", dp->upstream_model);
		web_add_int(o, "weight", dp->weight);
		web_add_int(o, "priority", dp->priority);
		add_dep_price(o, dp);
		cJSON_AddBoolToObject(o, "enabled", dp->enabled);
		add_health(o, &h, 0);
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddBoolToObject(d, "deployments_error", n < 0);
	cJSON_AddBoolToObject(d, "deployments_full", n >= CATALOG_DEPLOY_MAX - 1);
	if (!f)
		f = &dflt;
	form = cJSON_AddObjectToObject(d, "dep");
	provider_choices(form, "providers", "provider_unset", f->provider_id);
	cJSON_AddStringToObject(form, "upstream_model", f->upstream_model ? f->upstream_model : "");
	cJSON_AddStringToObject(form, "weight", f->weight ? f->weight : "");
	cJSON_AddStringToObject(form, "priority", f->priority ? f->priority : "");
	cJSON_AddStringToObject(form, "in", f->in ? f->in : "");
	cJSON_AddStringToObject(form, "cached", f->cached ? f->cached : "");
	cJSON_AddStringToObject(form, "cwrite", f->cwrite ? f->cwrite : "");
	cJSON_AddStringToObject(form, "out", f->out ? f->out : "");
	cJSON_AddBoolToObject(form, "enabled", f->enabled);
	add_form_err(form, e);
}

static int pricing_render(tg_req_t *r, int status, const struct model *editing,
			  const struct model_form *f, const struct form_err *e,
			  const struct web_health_src *hs, const struct dep_form *df,
			  const struct form_err *de)
{
	int admin = r->session->user.is_admin;
	cJSON *d = cJSON_CreateObject(), *form;
	struct model_form dflt = { "", "", "", "chat", "", "", "", "4096", "8192", "", "1", "", 1 };

	cJSON_AddBoolToObject(d, "is_admin", admin);
	if (editing) {
		cJSON *ed = cJSON_AddObjectToObject(d, "editing");

		cJSON_AddNumberToObject(ed, "id", (double)editing->id);
		cJSON_AddStringToObject(ed, "name", editing->name);
		web_add_money(ed, "in", editing->price.in);
		web_add_money(ed, "cached", editing->price.cached_in);
		web_add_money(ed, "cache_write", editing->price.cache_write);
		web_add_money(ed, "out", editing->price.out);
		add_example(ed, "example", &editing->price);
		if (admin)
			deployments_panel(d, editing, hs, df, de);
	} else {
		models_list(d, admin);
	}
	if (admin) {
		if (!f)
			f = &dflt;
		provider_choices(d, "provider_choices", "provider_unset", f->provider_id);
		fallback_choices(d, editing, f->fallback);
		form = cJSON_AddObjectToObject(d, "form");
		cJSON_AddStringToObject(form, "name", f->name ? f->name : "");
		cJSON_AddStringToObject(form, "upstream_model",
					f->upstream_model ? f->upstream_model : "");
		cJSON_AddBoolToObject(form, "kind_chat",
				      !f->kind || strcmp(f->kind, "embedding") != 0);
		cJSON_AddBoolToObject(form, "kind_embedding",
				      f->kind && strcmp(f->kind, "embedding") == 0);
		cJSON_AddStringToObject(form, "in", f->in ? f->in : "");
		cJSON_AddStringToObject(form, "cached", f->cached ? f->cached : "");
		cJSON_AddStringToObject(form, "out", f->out ? f->out : "");
		cJSON_AddStringToObject(form, "cwrite", f->cwrite ? f->cwrite : "");
		cJSON_AddStringToObject(form, "weight", f->weight ? f->weight : "");
		cJSON_AddBoolToObject(form, "no_fallback", !f->fallback || !*f->fallback);
		cJSON_AddStringToObject(form, "max_out", f->max_out ? f->max_out : "");
		cJSON_AddStringToObject(form, "ctx", f->ctx ? f->ctx : "");
		cJSON_AddBoolToObject(form, "enabled", f->enabled);
		add_form_err(form, e);
	}
	if (e)
		web_flash_now(d, "error", e->msg);
	else if (de)
		web_flash_now(d, "error", de->msg);
	return web_render(r, status, "pricing", d);
}

int page_pricing(tg_req_t *r)
{
	return pricing_render(r, 200, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* Text for a model's saved values in its edit form. */
struct model_text {
	char pid[24], in[MONEY_FMT_LEN], cached[MONEY_FMT_LEN], out[MONEY_FMT_LEN];
	char cwrite[MONEY_FMT_LEN], max_out[24], ctx[24], weight[24];
};

static void model_form_load(const struct model *m, struct model_text *t, struct model_form *f)
{
	snprintf(t->pid, sizeof(t->pid), "%lld", (long long)m->provider_id);
	money_format_short(m->price.in, t->in);
	money_format_short(m->price.cached_in, t->cached);
	money_format_short(m->price.out, t->out);
	/* The same as the input price shows empty, and follows it. */
	if (m->price.cache_write == m->price.in)
		t->cwrite[0] = '\0';
	else
		money_format_short(m->price.cache_write, t->cwrite);
	snprintf(t->max_out, sizeof(t->max_out), "%lld", (long long)m->max_output_tokens);
	snprintf(t->ctx, sizeof(t->ctx), "%lld", (long long)m->context_window);
	snprintf(t->weight, sizeof(t->weight), "%lld", (long long)m->weight);
	*f = (struct model_form){ .name = m->name,
				  .provider_id = t->pid,
				  .upstream_model = m->upstream_model,
				  .kind = catalog_model_kind_name(m->kind),
				  .in = t->in,
				  .cached = t->cached,
				  .out = t->out,
				  .max_out = t->max_out,
				  .ctx = t->ctx,
				  .cwrite = t->cwrite,
				  .weight = t->weight,
				  .fallback = m->fallback_model,
				  .enabled = m->enabled };
}

/* The edit view of m with its saved values, and the deployment form as
 * given (NULL: empty). */
static int pricing_edit_render(tg_req_t *r, int status, const struct model *m,
			       const struct web_health_src *hs, const struct dep_form *df,
			       const struct form_err *de)
{
	struct model_text t;
	struct model_form f;

	model_form_load(m, &t, &f);
	return pricing_render(r, status, m, &f, NULL, hs, df, de);
}

int page_pricing_edit(tg_req_t *r, const struct web_health_src *hs)
{
	struct model m;
	struct deployment dp;
	struct dep_form df;
	char *which, pid[24], w[24], prio[24], in[MONEY_FMT_LEN], cached[MONEY_FMT_LEN];
	char cw[MONEY_FMT_LEN], out[MONEY_FMT_LEN];
	int have;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	if (catalog_model_get_by_id(web_param_id(r, 0), &m) != TG_OK)
		return web_not_found(r);
	/* ?deployment=ID fills the deployment form with that row, to change it. */
	which = req_query(r, "deployment");
	have = which && catalog_deployment_get(web_parse_id(which), &dp) == TG_OK &&
	       dp.model_id == m.id;
	free(which);
	if (!have)
		return pricing_edit_render(r, 200, &m, hs, NULL, NULL);
	snprintf(pid, sizeof(pid), "%lld", (long long)dp.provider_id);
	snprintf(w, sizeof(w), "%lld", (long long)dp.weight);
	snprintf(prio, sizeof(prio), "%lld", (long long)dp.priority);
	in[0] = cached[0] = cw[0] = out[0] = '\0';
	if (dp.own_price) {
		money_format_short(dp.price.in, in);
		money_format_short(dp.price.cached_in, cached);
		money_format_short(dp.price.cache_write, cw);
		money_format_short(dp.price.out, out);
	}
	df = (struct dep_form){ pid, dp.upstream_model, w, prio, in, cached, cw, out, dp.enabled };
	return pricing_edit_render(r, 200, &m, hs, &df, NULL);
}

/* Parse one price field (credits per 1M tokens, decimal text). */
static int price_field(const char *key, const char *label, const char *s, int64_t *out,
		       struct form_err *e)
{
	const char *why = NULL;

	if (money_parse(s ? s : "", out, &why) == TG_OK && *out >= 0)
		return TG_OK;
	form_err_set(e, key, label, why ? why : "Prices cannot be negative.");
	return TG_EINVAL;
}

static int is_empty(const char *s)
{
	return !s || !*s;
}

/* A whole number from 0 to max, or dflt when s is empty; -1 otherwise. */
static int64_t parse_bounded(const char *s, int64_t max, int64_t dflt)
{
	int64_t v;

	if (is_empty(s))
		return dflt;
	v = parse_count(s);
	return v > max ? -1 : v;
}

/* Turn the form into a model and validate it; e says what is wrong. */
static int model_from_form(const struct model_form *f, struct model *m, struct form_err *e)
{
	static const struct {
		const char *field, *key, *label;
	} labels[] = {
		{ "name", "name", NULL },
		{ "provider", "provider", NULL },
		{ "upstream_model", "upstream_model", NULL },
		{ "kind", "kind", NULL },
		{ "input_per_mtok", "in", "Input price" },
		{ "cached_input_per_mtok", "cached", "Cached input price" },
		{ "output_per_mtok", "out", "Output price" },
		{ "cache_write_per_mtok", "cwrite", "Cache-write price" },
		{ "weight", "weight", NULL },
		{ "fallback_model", "fallback", NULL },
		{ "max_output_tokens", "max_out", NULL },
		{ "context_window", "ctx", NULL },
	};
	const char *field = NULL, *why = NULL;
	int kind = catalog_model_kind_parse(f->kind);
	struct model fb;
	size_t i;

	memset(m, 0, sizeof(*m));
	if (!f->name || !*f->name || strlen(f->name) > CATALOG_NAME_MAX) {
		form_err_set(
			e, "name", NULL,
			"Model name must be 1 to 128 characters: letters, digits and . _ : / -");
		return TG_EINVAL;
	}
	if (!(m->provider_id = web_parse_id(f->provider_id))) {
		form_err_set(e, "provider", NULL, "Choose a provider.");
		return TG_EINVAL;
	}
	if (f->upstream_model && strlen(f->upstream_model) > CATALOG_NAME_MAX) {
		form_err_set(e, "upstream_model", NULL,
			     "Upstream model is too long (at most 128 characters).");
		return TG_EINVAL;
	}
	if (kind < 0) {
		form_err_set(e, "kind", NULL, "Choose a kind: chat or embedding.");
		return TG_EINVAL;
	}
	snprintf(m->name, sizeof(m->name), "%s", f->name);
	snprintf(m->upstream_model, sizeof(m->upstream_model), "%s",
		 f->upstream_model ? f->upstream_model : "");
	m->kind = (enum model_kind)kind;
	m->enabled = f->enabled;
	if (price_field("in", "Input price", f->in, &m->price.in, e) ||
	    price_field("cached", "Cached input price", f->cached, &m->price.cached_in, e) ||
	    price_field("out", "Output price", f->out, &m->price.out, e))
		return TG_EINVAL;
	if (is_empty(f->cwrite))
		m->price.cache_write = m->price.in;
	else if (price_field("cwrite", "Cache-write price", f->cwrite, &m->price.cache_write, e))
		return TG_EINVAL;
	if ((m->weight = parse_bounded(f->weight, CATALOG_WEIGHT_MAX, 1)) < 0) {
		form_err_set(e, "weight", NULL, "Weight must be a whole number from 0 to 1000.");
		return TG_EINVAL;
	}
	if (!is_empty(f->fallback)) {
		if (strlen(f->fallback) > CATALOG_NAME_MAX ||
		    catalog_model_get(f->fallback, &fb) != TG_OK || fb.kind != m->kind ||
		    strcmp(fb.name, m->name) == 0) {
			form_err_set(e, "fallback", NULL,
				     m->kind == MODEL_CHAT ?
					     "Fallback model must be another chat model, or none." :
					     "Fallback model must be another embedding model, or "
					     "none.");
			return TG_EINVAL;
		}
		snprintf(m->fallback_model, sizeof(m->fallback_model), "%s", fb.name);
	}
	if ((m->max_output_tokens = parse_count(f->max_out)) < 0) {
		form_err_set(e, "max_out", NULL,
			     "Max output tokens must be a whole number from 1 to 10000000.");
		return TG_EINVAL;
	}
	if ((m->context_window = parse_count(f->ctx)) < 0) {
		form_err_set(
			e, "ctx", NULL,
			"Context window must be a whole number of tokens from 1 to 100000000.");
		return TG_EINVAL;
	}
	if (catalog_model_check(m, &field, &why) == TG_OK)
		return TG_OK;
	for (i = 0; i < TG_ARRAY_LEN(labels); i++)
		if (field && strcmp(field, labels[i].field) == 0)
			break;
	form_err_set(e, i < TG_ARRAY_LEN(labels) ? labels[i].key : NULL,
		     i < TG_ARRAY_LEN(labels) ? labels[i].label : NULL, why);
	return TG_EINVAL;
}

/* "..., cache write 2.50 -> 3.75" (or ", cache write 3.75" without before). */
static void cache_write_detail(const money_price_t *before, const money_price_t *after, char *out,
			       size_t n)
{
	char a[MONEY_FMT_LEN], b[MONEY_FMT_LEN];
	size_t len = strlen(out);

	money_format_short(after->cache_write, a);
	if (before) {
		money_format_short(before->cache_write, b);
		snprintf(out + len, n - len, ", cache write %s -> %s", b, a);
	} else {
		snprintf(out + len, n - len, ", cache write %s", a);
	}
}

int page_pricing_save(tg_req_t *r, const struct web_health_src *hs)
{
	static const char *const names[] = {
		"name",           "provider_id",          "upstream_model", "kind",
		"input",          "cached_input",         "output",         "max_output_tokens",
		"context_window", "cache_write_per_mtok", "weight",         "fallback_model",
		"enabled"
	};
	struct audit_actor a = web_actor(r);
	char *v[TG_ARRAY_LEN(names)] = { NULL }, msg[300], detail[500];
	struct form_err e = { NULL, NULL, "" };
	struct model_form f;
	struct model m, old;
	struct provider p;
	const char *why = NULL;
	int64_t id;
	size_t i;
	int existed, rc, priced, other;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		v[i] = req_post(r, names[i]);
	f = (struct model_form){ .name = v[0],
				 .provider_id = v[1],
				 .upstream_model = v[2],
				 .kind = v[3],
				 .in = v[4],
				 .cached = v[5],
				 .out = v[6],
				 .max_out = v[7],
				 .ctx = v[8],
				 .cwrite = v[9],
				 .weight = v[10],
				 .fallback = v[11],
				 .enabled = is_checked(v[12]) };
	existed = catalog_model_get(v[0] ? v[0] : "", &old) == TG_OK;
	if (model_from_form(&f, &m, &e)) {
		rc = pricing_render(r, 422, existed ? &old : NULL, &f, &e, hs, NULL, NULL);
		goto out;
	}
	rc = catalog_model_upsert(&m, &id, &why);
	if (rc) {
		form_err_set(&e, NULL, NULL, rc == TG_EINVAL ? why : "Could not save the model.");
		rc = pricing_render(r, rc == TG_EINVAL ? 422 : 500, existed ? &old : NULL, &f, &e,
				    hs, NULL, NULL);
		goto out;
	}
	if (!existed) {
		if (catalog_provider_get(m.provider_id, &p) != TG_OK)
			p.name[0] = '\0';
		catalog_price_detail(NULL, &m.price, msg, sizeof(msg));
		snprintf(detail, sizeof(detail), "provider %.128s, %.200s", p.name, msg);
		cache_write_detail(NULL, &m.price, detail, sizeof(detail));
		audit_add(&a, 0, "model.create", m.name, detail);
		goto saved;
	}
	priced = old.price.in != m.price.in || old.price.cached_in != m.price.cached_in ||
		 old.price.out != m.price.out || old.price.cache_write != m.price.cache_write;
	other = old.provider_id != m.provider_id ||
		strcmp(old.upstream_model, m.upstream_model) != 0 || old.kind != m.kind ||
		old.max_output_tokens != m.max_output_tokens ||
		old.context_window != m.context_window || old.enabled != m.enabled ||
		old.weight != m.weight || strcmp(old.fallback_model, m.fallback_model) != 0;
	if (priced) {
		catalog_price_detail(&old.price, &m.price, detail, sizeof(detail));
		cache_write_detail(&old.price, &m.price, detail, sizeof(detail));
		audit_add(&a, 0, "model.price", m.name, detail);
	}
	if (other || !priced) {
		snprintf(detail, sizeof(detail),
			 "upstream %s, %s, max output %lld, context %lld, weight %lld, "
			 "fallback %s, %s",
			 m.upstream_model, catalog_model_kind_name(m.kind),
			 (long long)m.max_output_tokens, (long long)m.context_window,
			 (long long)m.weight, m.fallback_model[0] ? m.fallback_model : "none",
			 m.enabled ? "enabled" : "disabled");
		audit_add(&a, 0, "model.update", m.name, detail);
	}
saved:
	snprintf(msg, sizeof(msg), "%s %s.", existed ? "Saved" : "Added", m.name);
	rc = web_redirect_flash(r, "/pricing", "ok", msg);
out:
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		free(v[i]);
	return rc;
}

/* ------------------------------------------------------- deployments */

/* Turn the deployment form into a deployment of m and validate it. */
static int dep_from_form(const struct dep_form *f, const struct model *m, struct deployment *dp,
			 struct form_err *e)
{
	static const struct {
		const char *field, *key;
	} keys[] = {
		{ "provider", "provider" }, { "upstream_model", "upstream_model" },
		{ "weight", "weight" },     { "priority", "priority" },
		{ "price", "in" },
	};
	const char *field = NULL, *why = NULL;
	size_t i;

	memset(dp, 0, sizeof(*dp));
	dp->model_id = m->id;
	dp->enabled = f->enabled;
	if (!(dp->provider_id = web_parse_id(f->provider_id))) {
		form_err_set(e, "provider", NULL, "Choose a provider.");
		return TG_EINVAL;
	}
	if (is_empty(f->upstream_model) || strlen(f->upstream_model) > CATALOG_NAME_MAX) {
		form_err_set(e, "upstream_model", NULL,
			     "Upstream model is required (at most 128 characters): the model "
			     "name the provider expects (for Azure, the deployment's name).");
		return TG_EINVAL;
	}
	snprintf(dp->upstream_model, sizeof(dp->upstream_model), "%s", f->upstream_model);
	if ((dp->weight = parse_bounded(f->weight, CATALOG_WEIGHT_MAX, 1)) < 0) {
		form_err_set(e, "weight", NULL, "Weight must be a whole number from 0 to 1000.");
		return TG_EINVAL;
	}
	if ((dp->priority = parse_bounded(f->priority, CATALOG_PRIORITY_MAX, 0)) < 0) {
		form_err_set(e, "priority", NULL,
			     "Priority must be a whole number from 0 (tried first) to 100.");
		return TG_EINVAL;
	}
	/* All four prices empty: the model's. Otherwise input, cached input and
	 * output are needed; an empty cache-write price is the input price. */
	if (!is_empty(f->in) || !is_empty(f->cached) || !is_empty(f->cwrite) || !is_empty(f->out)) {
		dp->own_price = 1;
		if (price_field("in", "Input price", f->in, &dp->price.in, e) ||
		    price_field("cached", "Cached input price", f->cached, &dp->price.cached_in,
				e) ||
		    price_field("out", "Output price", f->out, &dp->price.out, e))
			return TG_EINVAL;
		if (is_empty(f->cwrite))
			dp->price.cache_write = dp->price.in;
		else if (price_field("cwrite", "Cache-write price", f->cwrite,
				     &dp->price.cache_write, e))
			return TG_EINVAL;
	}
	if (catalog_deployment_check(dp, &field, &why) == TG_OK)
		return TG_OK;
	for (i = 0; i < TG_ARRAY_LEN(keys); i++)
		if (field && strcmp(field, keys[i].field) == 0)
			break;
	form_err_set(e, i < TG_ARRAY_LEN(keys) ? keys[i].key : NULL, NULL,
		     why ? why : "The deployment is not valid.");
	return TG_EINVAL;
}

/* "weight 2, priority 1, model's price, enabled" for the audit log. */
static void dep_detail(const struct deployment *dp, char *out, size_t n)
{
	char in[MONEY_FMT_LEN], cached[MONEY_FMT_LEN], cw[MONEY_FMT_LEN], o[MONEY_FMT_LEN];
	char price[200];

	if (dp->own_price) {
		money_format_short(dp->price.in, in);
		money_format_short(dp->price.cached_in, cached);
		money_format_short(dp->price.cache_write, cw);
		money_format_short(dp->price.out, o);
		snprintf(price, sizeof(price),
			 "input %s, cached input %s, cache write %s, output %s", in, cached, cw, o);
	} else {
		snprintf(price, sizeof(price), "model's price");
	}
	snprintf(out, n, "weight %lld, priority %lld, %s, %s", (long long)dp->weight,
		 (long long)dp->priority, price, dp->enabled ? "enabled" : "disabled");
}

int page_deployment_save(tg_req_t *r, const struct web_health_src *hs)
{
	static const char *const names[] = {
		"dep_provider_id", "dep_upstream_model", "dep_weight",
		"dep_priority",    "dep_input",          "dep_cached_input",
		"dep_output",      "dep_cache_write",    "dep_enabled",
	};
	struct audit_actor a = web_actor(r);
	char *v[TG_ARRAY_LEN(names)] = { NULL }, before[300], after[300], detail[1024];
	char msg[400], loc[48];
	struct form_err e = { NULL, NULL, "" };
	struct deployment dp, old, list[CATALOG_DEPLOY_MAX];
	struct dep_form f;
	struct model m;
	struct provider p;
	const char *why = NULL;
	int64_t id;
	size_t i;
	int n, k, existed = 0, rc;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	if (catalog_model_get_by_id(web_param_id(r, 0), &m) != TG_OK)
		return web_not_found(r);
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		v[i] = req_post(r, names[i]);
	f = (struct dep_form){ .provider_id = v[0],
			       .upstream_model = web_trim(v[1]),
			       .weight = v[2],
			       .priority = v[3],
			       .in = v[4],
			       .cached = v[5],
			       .out = v[6],
			       .cwrite = v[7],
			       .enabled = is_checked(v[8]) };
	if (dep_from_form(&f, &m, &dp, &e)) {
		rc = pricing_edit_render(r, 422, &m, hs, &f, &e);
		goto out;
	}
	n = catalog_deployments_of(m.id, list, CATALOG_DEPLOY_MAX);
	for (k = 0; k < n; k++) {
		if (list[k].provider_id == dp.provider_id &&
		    strcmp(list[k].upstream_model, dp.upstream_model) == 0) {
			old = list[k];
			existed = 1;
		}
	}
	rc = catalog_deployment_upsert(&dp, &id, &why);
	if (rc) {
		form_err_set(&e, NULL, NULL,
			     rc == TG_EINVAL ? why : "Could not save the deployment.");
		rc = pricing_edit_render(r, rc == TG_EINVAL ? 422 : 500, &m, hs, &f, &e);
		goto out;
	}
	if (catalog_provider_get(dp.provider_id, &p) != TG_OK)
		p.name[0] = '\0';
	dep_detail(&dp, after, sizeof(after));
	if (existed) {
		dep_detail(&old, before, sizeof(before));
		snprintf(detail, sizeof(detail), "updated %s · %s: %s -> %s", p.name,
			 dp.upstream_model, before, after);
	} else {
		snprintf(detail, sizeof(detail), "added %s · %s: %s", p.name, dp.upstream_model,
			 after);
	}
	audit_add(&a, 0, "deployment.upsert", m.name, detail);
	snprintf(msg, sizeof(msg), "%s deployment %.64s · %.64s of %.64s.",
		 existed ? "Saved" : "Added", p.name, dp.upstream_model, m.name);
	snprintf(loc, sizeof(loc), "/pricing/%lld", (long long)m.id);
	rc = web_redirect_flash(r, loc, "ok", msg);
out:
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		free(v[i]);
	return rc;
}

int page_deployment_delete(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct deployment dp;
	struct model m;
	struct provider p;
	char detail[800], after[300], msg[400], loc[48];
	int rc;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	/* Only a deployment of the model in the URL. */
	if (catalog_model_get_by_id(web_param_id(r, 0), &m) != TG_OK ||
	    catalog_deployment_get(web_param_id(r, 1), &dp) != TG_OK || dp.model_id != m.id)
		return web_not_found(r);
	snprintf(loc, sizeof(loc), "/pricing/%lld", (long long)m.id);
	rc = catalog_deployment_delete(dp.id);
	if (rc == TG_ENOTFOUND)
		return web_not_found(r);
	if (rc)
		return web_redirect_flash(r, loc, "error", "Could not remove the deployment.");
	if (catalog_provider_get(dp.provider_id, &p) != TG_OK)
		p.name[0] = '\0';
	dep_detail(&dp, after, sizeof(after));
	snprintf(detail, sizeof(detail), "removed %s · %s (%s)", p.name, dp.upstream_model, after);
	audit_add(&a, 0, "deployment.delete", m.name, detail);
	snprintf(msg, sizeof(msg), "Removed deployment %.64s · %.64s of %.64s.", p.name,
		 dp.upstream_model, m.name);
	return web_redirect_flash(r, loc, "ok", msg);
}
