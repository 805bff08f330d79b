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

/* Form values as submitted (or as loaded for editing); never the key. */
struct provider_form {
	const char *name, *kind, *base_url, *timeout_s;
	int enabled;
};

static void providers_list(cJSON *d)
{
	cJSON *list = cJSON_AddArrayToObject(d, "providers");
	sqlite3_stmt *st = db_stmt(
		"SELECT p.id, p.name, p.kind, p.base_url, p.api_key_sealed != '',"
		" p.timeout_s, p.enabled,"
		" (SELECT count(*) FROM models m WHERE m.provider_id = p.id)"
		" FROM providers p ORDER BY p.name LIMIT 1000");

	while (st && sqlite3_step(st) == SQLITE_ROW) {
		cJSON *p = cJSON_CreateObject();
		int echo = strcmp(db_col_text(st, 2), "echo") == 0;

		cJSON_AddNumberToObject(p, "id", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(p, "name", db_col_text(st, 1));
		cJSON_AddStringToObject(p, "kind", echo ? "built-in echo" : "OpenAI-compatible");
		cJSON_AddStringToObject(p, "base_url", db_col_text(st, 3));
		cJSON_AddBoolToObject(p, "echo", echo);
		cJSON_AddBoolToObject(p, "has_key", sqlite3_column_int(st, 4));
		web_add_int(p, "timeout_s", sqlite3_column_int64(st, 5));
		cJSON_AddBoolToObject(p, "enabled", sqlite3_column_int(st, 6));
		web_add_count(p, "models", sqlite3_column_int64(st, 7));
		cJSON_AddItemToArray(list, p);
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_providers", cJSON_GetArraySize(list) > 0);
}

/* The providers page: the table and the add form, or (editing != NULL) the
 * edit form for one provider. */
static int providers_render(tg_req_t *r, int status, const struct provider *editing,
			    const struct provider_form *f, const struct form_err *e,
			    const char *flash_kind, const char *flash)
{
	cJSON *d = cJSON_CreateObject(), *form;
	struct provider_form dflt = { "", "openai", "", "60", 1 };

	if (!f)
		f = &dflt;
	if (editing) {
		cJSON *ed = cJSON_AddObjectToObject(d, "editing");

		cJSON_AddNumberToObject(ed, "id", (double)editing->id);
		cJSON_AddStringToObject(ed, "name", editing->name);
		cJSON_AddBoolToObject(ed, "has_key", editing->has_api_key);
		cJSON_AddBoolToObject(ed, "echo", editing->kind == PROVIDER_ECHO);
	} else {
		providers_list(d);
	}
	form = cJSON_AddObjectToObject(d, "form");
	cJSON_AddStringToObject(form, "name", f->name ? f->name : "");
	cJSON_AddBoolToObject(form, "kind_openai", !f->kind || strcmp(f->kind, "echo") != 0);
	cJSON_AddBoolToObject(form, "kind_echo", f->kind && strcmp(f->kind, "echo") == 0);
	cJSON_AddStringToObject(form, "base_url", f->base_url ? f->base_url : "");
	cJSON_AddStringToObject(form, "timeout_s", f->timeout_s ? f->timeout_s : "");
	cJSON_AddBoolToObject(form, "enabled", f->enabled);
	add_form_err(form, e);
	if (e)
		web_flash_now(d, "error", e->msg);
	else
		web_flash_now(d, flash_kind, flash);
	return web_render(r, status, "providers", d);
}

int page_providers(tg_req_t *r)
{
	if (!r->session->user.is_admin)
		return web_not_found(r);
	return providers_render(r, 200, NULL, NULL, NULL, NULL, NULL);
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
	f.timeout_s = timeout;
	f.enabled = p.enabled;
	return providers_render(r, 200, &p, &f, NULL, NULL, NULL);
}

int page_providers_save(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	struct provider_form f = { NULL, NULL, NULL, NULL, 0 };
	struct form_err e = { NULL, NULL, "" };
	struct provider old, now;
	char *name = NULL, *kind_s = NULL, *url = NULL, *ver = NULL, *key = NULL, *clear = NULL,
	     *timeout_s = NULL;
	char *enabled = NULL, detail[700], msg[200];
	const char *why = NULL, *field = NULL, *key_arg = NULL, *key_note;
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
	f.name = name;
	f.kind = kind_s;
	f.base_url = url;
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
			     "Choose a kind: OpenAI-compatible or built-in echo.");
	else if (timeout < 0)
		form_err_set(&e, "timeout_s", NULL,
			     "Timeout must be a whole number of seconds, from 1 to 3600.");
	else if (is_checked(clear) && key && *key)
		form_err_set(&e, "api_key", NULL,
			     "Either enter a new API key or clear the stored one, not both.");
	else if (catalog_provider_check(name ? name : "", (enum provider_kind)kind, url, ver,
					key_arg, timeout, &field, &why))
		form_err_set(&e, field, NULL, why);
	if (e.why) {
		rc = providers_render(r, 422, existed ? &old : NULL, &f, &e, NULL, NULL);
		goto out;
	}
	rc = catalog_provider_upsert(name, (enum provider_kind)kind, url, ver, key_arg, timeout,
				     f.enabled, &id, &why);
	if (rc || catalog_provider_get(id, &now) != TG_OK) {
		form_err_set(&e, NULL, NULL,
			     rc == TG_EINVAL ? why : "Could not save the provider.");
		rc = providers_render(r, rc == TG_EINVAL ? 422 : 500, existed ? &old : NULL, &f, &e,
				      NULL, NULL);
		goto out;
	}
	key_note = key_arg && *key_arg ? (existed && old.has_api_key ? "key replaced" : "key set") :
		   key_arg             ? (existed && old.has_api_key ? "key cleared" : "no key") :
		   now.has_api_key     ? "key unchanged" :
					 "no key";
	snprintf(detail, sizeof(detail), "%s%s%s, timeout %llds, %s, %s",
		 catalog_provider_kind_name(now.kind), now.base_url[0] ? " " : "", now.base_url,
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

int page_provider_test(tg_req_t *r)
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
			      buf_cstr(&msg));
	buf_free(&msg);
	return rc;
}

/* ------------------------------------------------------------ pricing */

/* Form values as submitted, or as loaded for editing. */
struct model_form {
	const char *name, *provider_id, *upstream_model, *kind, *in, *cached, *out, *max_out, *ctx;
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
	sqlite3_stmt *st = db_stmt(
		"SELECT m.id, m.name, p.name, m.upstream_model, m.kind, m.price_in,"
		" m.price_cached_in, m.price_out, m.max_output_tokens,"
		" m.context_window, m.enabled AND p.enabled, m.enabled"
		" FROM models m JOIN providers p ON p.id = m.provider_id"
		" ORDER BY m.name LIMIT 5000");
	int have_example = 0;

	while (st && sqlite3_step(st) == SQLITE_ROW) {
		cJSON *m = cJSON_CreateObject();
		money_price_t price = { .in = sqlite3_column_int64(st, 5),
					.cached_in = sqlite3_column_int64(st, 6),
					.out = sqlite3_column_int64(st, 7) };
		int usable = sqlite3_column_int(st, 10);

		cJSON_AddNumberToObject(m, "id", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(m, "name", db_col_text(st, 1));
		cJSON_AddStringToObject(m, "provider", db_col_text(st, 2));
		cJSON_AddStringToObject(m, "upstream_model", db_col_text(st, 3));
		cJSON_AddStringToObject(m, "kind", db_col_text(st, 4));
		web_add_money(m, "in", price.in);
		web_add_money(m, "cached", price.cached_in);
		web_add_money(m, "out", price.out);
		web_add_count(m, "max_output", sqlite3_column_int64(st, 8));
		web_add_count(m, "context", sqlite3_column_int64(st, 9));
		cJSON_AddBoolToObject(m, "enabled", usable);
		/* Enabled itself but its provider is off: say why it is unavailable. */
		cJSON_AddBoolToObject(m, "provider_off", sqlite3_column_int(st, 11) && !usable);
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

static void provider_choices(cJSON *d, const char *selected)
{
	cJSON *list = cJSON_AddArrayToObject(d, "provider_choices");
	sqlite3_stmt *st = db_stmt("SELECT id, name FROM providers ORDER BY name LIMIT 1000");
	int64_t sel = web_parse_id(selected);

	cJSON_AddBoolToObject(d, "provider_unset", sel == 0);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		cJSON *p = cJSON_CreateObject();
		int64_t id = sqlite3_column_int64(st, 0);

		cJSON_AddNumberToObject(p, "id", (double)id);
		cJSON_AddStringToObject(p, "name", db_col_text(st, 1));
		cJSON_AddBoolToObject(p, "selected", id == sel);
		cJSON_AddItemToArray(list, p);
	}
	db_done(st);
}

static int pricing_render(tg_req_t *r, int status, const struct model *editing,
			  const struct model_form *f, const struct form_err *e)
{
	int admin = r->session->user.is_admin;
	cJSON *d = cJSON_CreateObject(), *form;
	struct model_form dflt = { "", "", "", "chat", "", "", "", "4096", "8192", 1 };

	cJSON_AddBoolToObject(d, "is_admin", admin);
	if (editing) {
		cJSON *ed = cJSON_AddObjectToObject(d, "editing");

		cJSON_AddNumberToObject(ed, "id", (double)editing->id);
		cJSON_AddStringToObject(ed, "name", editing->name);
		web_add_money(ed, "in", editing->price.in);
		web_add_money(ed, "cached", editing->price.cached_in);
		web_add_money(ed, "out", editing->price.out);
		add_example(ed, "example", &editing->price);
	} else {
		models_list(d, admin);
	}
	if (admin) {
		if (!f)
			f = &dflt;
		provider_choices(d, f->provider_id);
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
		cJSON_AddStringToObject(form, "max_out", f->max_out ? f->max_out : "");
		cJSON_AddStringToObject(form, "ctx", f->ctx ? f->ctx : "");
		cJSON_AddBoolToObject(form, "enabled", f->enabled);
		add_form_err(form, e);
	}
	if (e)
		web_flash_now(d, "error", e->msg);
	return web_render(r, status, "pricing", d);
}

int page_pricing(tg_req_t *r)
{
	return pricing_render(r, 200, NULL, NULL, NULL);
}

int page_pricing_edit(tg_req_t *r)
{
	struct model m;
	struct model_form f;
	char pid[24], in[MONEY_FMT_LEN], cached[MONEY_FMT_LEN], out[MONEY_FMT_LEN];
	char max_out[24], ctx[24];

	if (!r->session->user.is_admin)
		return web_not_found(r);
	if (catalog_model_get_by_id(web_param_id(r, 0), &m) != TG_OK)
		return web_not_found(r);
	snprintf(pid, sizeof(pid), "%lld", (long long)m.provider_id);
	money_format_short(m.price.in, in);
	money_format_short(m.price.cached_in, cached);
	money_format_short(m.price.out, out);
	snprintf(max_out, sizeof(max_out), "%lld", (long long)m.max_output_tokens);
	snprintf(ctx, sizeof(ctx), "%lld", (long long)m.context_window);
	f = (struct model_form){
		m.name,  pid, m.upstream_model, catalog_model_kind_name(m.kind), in, cached, out,
		max_out, ctx, m.enabled
	};
	return pricing_render(r, 200, &m, &f, NULL);
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
		{ "max_output_tokens", "max_out", NULL },
		{ "context_window", "ctx", NULL },
	};
	const char *field = NULL, *why = NULL;
	int kind = catalog_model_kind_parse(f->kind);
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

int page_pricing_save(tg_req_t *r)
{
	static const char *const names[] = {
		"name",         "provider_id", "upstream_model",    "kind",           "input",
		"cached_input", "output",      "max_output_tokens", "context_window", "enabled"
	};
	struct audit_actor a = web_actor(r);
	char *v[TG_ARRAY_LEN(names)] = { NULL }, msg[300], detail[400];
	struct form_err e = { NULL, NULL, "" };
	struct model_form f;
	struct model m, old;
	struct provider p;
	const char *why = NULL, *action;
	int64_t id;
	size_t i;
	int existed, rc;

	if (!r->session->user.is_admin)
		return web_not_found(r);
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		v[i] = req_post(r, names[i]);
	f = (struct model_form){ v[0], v[1], v[2], v[3], v[4],
				 v[5], v[6], v[7], v[8], is_checked(v[9]) };
	existed = catalog_model_get(v[0] ? v[0] : "", &old) == TG_OK;
	if (model_from_form(&f, &m, &e)) {
		rc = pricing_render(r, 422, existed ? &old : NULL, &f, &e);
		goto out;
	}
	rc = catalog_model_upsert(&m, &id, &why);
	if (rc) {
		form_err_set(&e, NULL, NULL, rc == TG_EINVAL ? why : "Could not save the model.");
		rc = pricing_render(r, rc == TG_EINVAL ? 422 : 500, existed ? &old : NULL, &f, &e);
		goto out;
	}
	if (!existed) {
		action = "model.create";
		if (catalog_provider_get(m.provider_id, &p) != TG_OK)
			p.name[0] = '\0';
		catalog_price_detail(NULL, &m.price, msg, sizeof(msg));
		snprintf(detail, sizeof(detail), "provider %.128s, %.200s", p.name, msg);
	} else if (old.price.in != m.price.in || old.price.cached_in != m.price.cached_in ||
		   old.price.out != m.price.out) {
		action = "model.price";
		catalog_price_detail(&old.price, &m.price, detail, sizeof(detail));
	} else {
		action = "model.update";
		snprintf(detail, sizeof(detail),
			 "upstream %s, %s, max output %lld, context %lld, %s", m.upstream_model,
			 catalog_model_kind_name(m.kind), (long long)m.max_output_tokens,
			 (long long)m.context_window, m.enabled ? "enabled" : "disabled");
	}
	audit_add(&a, 0, action, m.name, detail);
	snprintf(msg, sizeof(msg), "%s %s.", existed ? "Saved" : "Added", m.name);
	rc = web_redirect_flash(r, "/pricing", "ok", msg);
out:
	for (i = 0; i < TG_ARRAY_LEN(names); i++)
		free(v[i]);
	return rc;
}
