/* cli_catalog.c - `tollgate models import FILE.json`: upsert providers, then
 * priced models, by name, all in one transaction. Prices are decimal strings
 * so no value passes through floating point. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "catalog/catalog.h"
#include "cli.h"
#include "cli_commands.h"
#include "crypto/secrets.h"
#include "identity/identity.h"
#include "ledger/money.h"
#include "store/db.h"

#define IMPORT_MAX_FILE ((size_t)8 << 20)

static const struct audit_actor cli_actor = { 0, "cli", "" };

/* Where an error happened: "models[2]" plus an optional field, and why. */
struct import_err {
	char where[64];
	const char *field;
	char why[300];
};

static int fail(struct import_err *e, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct import_err *e, const char *field, const char *fmt, ...)
{
	va_list ap;

	e->field = field;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	return TG_EINVAL;
}

/* Only the fields in `known` may appear in obj (catches typos in names). */
static int check_fields(const cJSON *obj, const char *const *known, struct import_err *e)
{
	const cJSON *it;
	size_t i;

	cJSON_ArrayForEach(it, obj) {
		for (i = 0; known[i]; i++)
			if (it->string && strcmp(it->string, known[i]) == 0)
				break;
		if (!known[i])
			return fail(e, NULL, "unknown field \"%s\".", it->string ? it->string : "");
	}
	return TG_OK;
}

/* A string field; *out is NULL when absent (or null) and not required. */
static int get_string(const cJSON *obj, const char *name, int required, const char **out,
		      struct import_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return required ? fail(e, name, "is required.") : TG_OK;
	if (!cJSON_IsString(v))
		return fail(e, name, "must be a string.");
	*out = v->valuestring;
	return TG_OK;
}

/* A whole number field within [min, max]; dflt when absent. */
static int get_int(const cJSON *obj, const char *name, int64_t dflt, int64_t min, int64_t max,
		   int64_t *out, struct import_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return TG_OK;
	}
	if (!cJSON_IsNumber(v))
		return fail(e, name, "must be a whole number.");
	d = v->valuedouble; /* a token count or seconds, never money */
	if (d != (double)(int64_t)d || d < (double)min || d > (double)max)
		return fail(e, name, "must be a whole number from %lld to %lld.", (long long)min,
			    (long long)max);
	*out = (int64_t)d;
	return TG_OK;
}

static int get_bool(const cJSON *obj, const char *name, int dflt, int *out, struct import_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return TG_OK;
	}
	if (!cJSON_IsBool(v))
		return fail(e, name, "must be true or false.");
	*out = cJSON_IsTrue(v);
	return TG_OK;
}

/* A price in credits per 1M tokens, written as a decimal string. */
static int get_price(const cJSON *obj, const char *name, const int64_t *dflt, int64_t *out,
		     struct import_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	const char *why = NULL;

	if ((!v || cJSON_IsNull(v)) && dflt) {
		*out = *dflt;
		return TG_OK;
	}
	if (!v || cJSON_IsNull(v))
		return fail(e, name,
			    "is required (credits per 1M tokens, as a string like \"2.50\").");
	if (cJSON_IsNumber(v))
		return fail(e, name,
			    "write prices as quoted decimal strings, like \"2.50\", so they "
			    "are not rounded.");
	if (!cJSON_IsString(v))
		return fail(e, name, "must be a decimal string like \"2.50\".");
	if (money_parse(v->valuestring, out, &why))
		return fail(e, name, "%s", why);
	if (*out < 0)
		return fail(e, name, "Prices cannot be negative.");
	return TG_OK;
}

static int import_provider(const cJSON *p, struct import_err *e)
{
	static const char *const known[] = { "name",    "kind",      "base_url", "api_version",
					     "api_key", "timeout_s", "enabled",  NULL };
	const char *name, *kind_s, *url, *ver, *key, *field, *why = NULL;
	struct provider old, now;
	int64_t timeout = 0, id;
	int kind, enabled = 0, rc, existed;
	char detail[700];

	if (!cJSON_IsObject(p))
		return fail(e, NULL, "must be an object.");
	if ((rc = check_fields(p, known, e)) || (rc = get_string(p, "name", 1, &name, e)) ||
	    (rc = get_string(p, "kind", 0, &kind_s, e)) ||
	    (rc = get_string(p, "base_url", 0, &url, e)) ||
	    (rc = get_string(p, "api_version", 0, &ver, e)) ||
	    (rc = get_string(p, "api_key", 0, &key, e)) ||
	    (rc = get_int(p, "timeout_s", 60, 1, CATALOG_TIMEOUT_MAX, &timeout, e)) ||
	    (rc = get_bool(p, "enabled", 1, &enabled, e)))
		return rc;
	kind = kind_s ? catalog_provider_kind_parse(kind_s) : PROVIDER_OPENAI;
	if (kind < 0)
		return fail(
			e, "kind",
			"must be \"openai\", \"anthropic\", \"gemini\", \"azure\" or \"echo\".");
	if (catalog_provider_check(name, (enum provider_kind)kind, url, ver, key, timeout, &field,
				   &why))
		return fail(e, field, "%s", why);
	existed = catalog_provider_get_by_name(name, &old) == TG_OK;
	rc = catalog_provider_upsert(name, (enum provider_kind)kind, url, ver, key, timeout,
				     enabled, &id, &why);
	if (rc || catalog_provider_get(id, &now) != TG_OK)
		return fail(e, NULL, "%s",
			    rc == TG_EINVAL || rc == TG_EPERM ? why : "could not be saved.");
	snprintf(detail, sizeof(detail), "%s%s%s, timeout %llds, %s, %s (import)",
		 catalog_provider_kind_name(now.kind), now.base_url[0] ? " " : "", now.base_url,
		 (long long)now.timeout_s, now.enabled ? "enabled" : "disabled",
		 key             ? (*key ? "key set" : "key cleared") :
		 now.has_api_key ? "key unchanged" :
				   "no key");
	if (audit_add(&cli_actor, 0, existed ? "provider.update" : "provider.create", now.name,
		      detail))
		return fail(e, NULL, "could not be recorded in the audit log.");
	return TG_OK;
}

/* Copy a name into a fixed model field, refusing what does not fit. */
static int set_name(char *dst, size_t n, const char *src, const char *field, struct import_err *e)
{
	if (strlen(src) >= n)
		return fail(e, field, "is too long (at most %zu characters).", n - 1);
	memcpy(dst, src, strlen(src) + 1);
	return TG_OK;
}

/* One of a model's deployments: {"provider", "upstream_model", "weight",
 * "priority", prices (all four or none: the model's), "enabled"}. */
static int import_deployment(const struct model *m, const cJSON *j, struct import_err *e)
{
	static const char *const known[] = { "provider",
					     "upstream_model",
					     "weight",
					     "priority",
					     "input_per_mtok",
					     "cached_input_per_mtok",
					     "cache_write_per_mtok",
					     "output_per_mtok",
					     "enabled",
					     NULL };
	const char *prov, *upstream, *field, *why = NULL;
	struct deployment d;
	struct provider p;
	char detail[400];
	int rc;

	memset(&d, 0, sizeof(d));
	if (!cJSON_IsObject(j))
		return fail(e, "deployments", "each deployment must be an object.");
	if ((rc = check_fields(j, known, e)) || (rc = get_string(j, "provider", 1, &prov, e)) ||
	    (rc = get_string(j, "upstream_model", 0, &upstream, e)) ||
	    (rc = set_name(d.upstream_model, sizeof(d.upstream_model),
			   upstream ? upstream : m->upstream_model, "upstream_model", e)) ||
	    (rc = get_int(j, "weight", 1, 0, CATALOG_WEIGHT_MAX, &d.weight, e)) ||
	    (rc = get_int(j, "priority", 0, 0, CATALOG_PRIORITY_MAX, &d.priority, e)) ||
	    (rc = get_bool(j, "enabled", 1, &d.enabled, e)))
		return rc;
	if (catalog_provider_get_by_name(prov, &p) != TG_OK)
		return fail(e, "provider", "no provider named \"%s\"; add it under \"providers\".",
			    prov);
	d.model_id = m->id;
	d.provider_id = p.id;
	d.own_price = cJSON_HasObjectItem(j, "input_per_mtok") ||
		      cJSON_HasObjectItem(j, "output_per_mtok");
	if (d.own_price &&
	    ((rc = get_price(j, "input_per_mtok", NULL, &d.price.in, e)) ||
	     (rc = get_price(j, "cached_input_per_mtok", &d.price.in, &d.price.cached_in, e)) ||
	     (rc = get_price(j, "cache_write_per_mtok", &d.price.in, &d.price.cache_write, e)) ||
	     (rc = get_price(j, "output_per_mtok", NULL, &d.price.out, e))))
		return rc;
	if (catalog_deployment_check(&d, &field, &why))
		return fail(e, field, "%s", why);
	if ((rc = catalog_deployment_upsert(&d, NULL, &why)))
		return fail(e, NULL, "%s", rc == TG_EINVAL ? why : "could not be saved.");
	snprintf(detail, sizeof(detail),
		 "%.128s via %.64s/%.128s, weight %lld, priority %lld (import)", m->name, p.name,
		 d.upstream_model, (long long)d.weight, (long long)d.priority);
	if (audit_add(&cli_actor, 0, "deployment.upsert", m->name, detail))
		return fail(e, NULL, "could not be recorded in the audit log.");
	return TG_OK;
}

static int import_model(const cJSON *j, struct import_err *e)
{
	static const char *const known[] = { "name",
					     "provider",
					     "upstream_model",
					     "kind",
					     "input_per_mtok",
					     "cached_input_per_mtok",
					     "output_per_mtok",
					     "cache_write_per_mtok",
					     "max_output_tokens",
					     "context_window",
					     "weight",
					     "fallback_model",
					     "deployments",
					     "enabled",
					     NULL };
	const char *name, *prov, *upstream, *kind_s, *fallback, *field, *why = NULL, *action;
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(j, "deployments"), *it;
	char detail[300];
	struct provider p;
	struct model m, old;
	int kind, rc, existed;

	memset(&m, 0, sizeof(m));
	if (!cJSON_IsObject(j))
		return fail(e, NULL, "must be an object.");
	if ((rc = check_fields(j, known, e)) || (rc = get_string(j, "name", 1, &name, e)) ||
	    (rc = get_string(j, "provider", 1, &prov, e)) ||
	    (rc = get_string(j, "upstream_model", 0, &upstream, e)) ||
	    (rc = get_string(j, "kind", 0, &kind_s, e)) ||
	    (rc = get_string(j, "fallback_model", 0, &fallback, e)))
		return rc;
	if (deps && !cJSON_IsNull(deps) && !cJSON_IsArray(deps))
		return fail(e, "deployments", "must be an array of deployments.");
	if (cJSON_GetArraySize(deps) > CATALOG_DEPLOY_MAX - 1)
		return fail(e, "deployments", "a model has at most %d more deployments.",
			    CATALOG_DEPLOY_MAX - 1);
	if (fallback && (rc = set_name(m.fallback_model, sizeof(m.fallback_model), fallback,
				       "fallback_model", e)))
		return rc;
	if ((rc = set_name(m.name, sizeof(m.name), name, "name", e)) ||
	    (rc = set_name(m.upstream_model, sizeof(m.upstream_model), upstream ? upstream : name,
			   "upstream_model", e)))
		return rc;
	kind = kind_s ? catalog_model_kind_parse(kind_s) : MODEL_CHAT;
	if (kind < 0)
		return fail(e, "kind", "must be \"chat\" or \"embedding\".");
	m.kind = (enum model_kind)kind;
	if (catalog_provider_get_by_name(prov, &p) != TG_OK)
		return fail(e, "provider", "no provider named \"%s\"; add it under \"providers\".",
			    prov);
	m.provider_id = p.id;
	/* Without a cached-input price, cached tokens cost the input price. */
	if ((rc = get_price(j, "input_per_mtok", NULL, &m.price.in, e)) ||
	    (rc = get_price(j, "cached_input_per_mtok", &m.price.in, &m.price.cached_in, e)) ||
	    (rc = get_price(j, "output_per_mtok", NULL, &m.price.out, e)) ||
	    (rc = get_price(j, "cache_write_per_mtok", &m.price.in, &m.price.cache_write, e)) ||
	    (rc = get_int(j, "weight", 1, 0, CATALOG_WEIGHT_MAX, &m.weight, e)) ||
	    (rc = get_int(j, "max_output_tokens", 4096, 1, CATALOG_MAX_OUTPUT_MAX,
			  &m.max_output_tokens, e)) ||
	    (rc = get_int(j, "context_window", 8192, 1, CATALOG_CONTEXT_MAX, &m.context_window,
			  e)) ||
	    (rc = get_bool(j, "enabled", 1, &m.enabled, e)))
		return rc;
	if (catalog_model_check(&m, &field, &why))
		return fail(e, field, "%s", why);
	existed = catalog_model_get(m.name, &old) == TG_OK;
	if ((rc = catalog_model_upsert(&m, &m.id, &why)))
		return fail(e, NULL, "%s", rc == TG_EINVAL ? why : "could not be saved.");
	cJSON_ArrayForEach(it, deps) {
		if ((rc = import_deployment(&m, it, e)))
			return rc;
	}
	if (!existed) {
		action = "model.create";
		catalog_price_detail(NULL, &m.price, detail, sizeof(detail));
	} else if (old.price.in != m.price.in || old.price.cached_in != m.price.cached_in ||
		   old.price.out != m.price.out) {
		action = "model.price";
		catalog_price_detail(&old.price, &m.price, detail, sizeof(detail));
	} else {
		action = "model.update";
		snprintf(detail, sizeof(detail), "prices unchanged");
	}
	if (audit_add(&cli_actor, 0, action, m.name, detail))
		return fail(e, NULL, "could not be recorded in the audit log.");
	return TG_OK;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "tollgate: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	data = malloc(IMPORT_MAX_FILE + 1);
	if (!data) {
		fprintf(stderr, "tollgate: out of memory\n");
		goto out;
	}
	n = fread(data, 1, IMPORT_MAX_FILE + 1, f);
	if (ferror(f) || n > IMPORT_MAX_FILE) {
		fprintf(stderr, "tollgate: %s: %s\n", path,
			ferror(f) ? "read error" : "the file is too large (at most 8 MiB)");
		free(data);
		data = NULL;
		goto out;
	}
	data[n] = '\0';
	*len = n;
out:
	fclose(f);
	return data;
}

/* Apply both lists inside the caller's transaction; stops at the first error. */
static int apply(const cJSON *providers, const cJSON *models, struct import_err *e, int *np,
		 int *nm)
{
	const cJSON *it;
	int i = 0, rc;

	cJSON_ArrayForEach(it, providers) {
		snprintf(e->where, sizeof(e->where), "providers[%d]", i++);
		if ((rc = import_provider(it, e)))
			return rc;
		(*np)++;
	}
	i = 0;
	cJSON_ArrayForEach(it, models) {
		snprintf(e->where, sizeof(e->where), "models[%d]", i++);
		if ((rc = import_model(it, e)))
			return rc;
		(*nm)++;
	}
	return TG_OK;
}

static int models_import(struct cli_args *a)
{
	static const char *const takes[] = { "data-dir", NULL };
	static const char *const known[] = { "providers", "models", NULL };
	const char *path = cli_positional(a, 0, takes);
	struct import_err e = { "", NULL, "" };
	const cJSON *providers, *models;
	tg_secrets_t secrets;
	cJSON *root = NULL;
	char *text = NULL;
	size_t len = 0;
	int np = 0, nm = 0, rc = 1, began = 0;

	memset(&secrets, 0, sizeof(secrets));
	if (!path) {
		fprintf(stderr, "usage: tollgate models import FILE.json\n");
		return 2;
	}
	if (!(text = read_file(path, &len)))
		return 1;
	root = cJSON_ParseWithLength(text, len);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();

		fprintf(stderr, "tollgate: %s is not valid JSON (near byte %ld)\n", path,
			at && at >= text && at <= text + len ? (long)(at - text) : 0L);
		goto out;
	}
	providers = cJSON_GetObjectItemCaseSensitive(root, "providers");
	models = cJSON_GetObjectItemCaseSensitive(root, "models");
	if (!cJSON_IsObject(root) || check_fields(root, known, &e)) {
		fprintf(stderr, "tollgate: %s: %s\n", path,
			cJSON_IsObject(root) ?
				e.why :
				"expected an object with \"providers\" and \"models\" arrays.");
		goto out;
	}
	if ((providers && !cJSON_IsArray(providers)) || (models && !cJSON_IsArray(models))) {
		fprintf(stderr, "tollgate: %s: \"providers\" and \"models\" must be arrays\n",
			path);
		goto out;
	}
	if (cli_open_store(a) || app_load_secrets(&a->cfg, &secrets))
		goto out;
	app_init_modules(&secrets);
	if (db_begin()) {
		fprintf(stderr, "tollgate: the database is busy; try again\n");
		goto out;
	}
	began = 1;
	if (apply(providers, models, &e, &np, &nm)) {
		fprintf(stderr, "tollgate: %s%s%s: %s\n", e.where, e.field ? "." : "",
			e.field ? e.field : "", e.why);
		fprintf(stderr, "tollgate: nothing was imported\n");
		goto out;
	}
	if (db_commit()) {
		began = 0;
		fprintf(stderr, "tollgate: could not commit the import; nothing was imported\n");
		goto out;
	}
	began = 0;
	printf("imported %d providers and %d models\n", np, nm);
	rc = 0;
out:
	if (began)
		db_rollback();
	secrets_wipe(&secrets);
	cJSON_Delete(root);
	free(text);
	return rc;
}

int cmd_models(struct cli_args *a)
{
	struct cli_args rest;
	const char *sub;

	if (cli_subcommand(a, &rest, &sub) && strcmp(sub, "import") == 0)
		return models_import(&rest);
	fprintf(stderr, "usage: tollgate models import FILE.json\n");
	return 2;
}
