/* catalog.c - providers and priced models: lookups, validation, upserts and
 * the sealed provider API keys; see catalog.h. */
#include "catalog/catalog.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"

/* Only the box key is kept; the pepper belongs to the API-key module. */
#define SNAPSHOT_TTL_S 5

static tg_secrets_t box;
static int have_box;
static uint64_t local_gen;
static uint64_t *catalog_gen = &local_gen; /* shared with other processes when mapped */

void catalog_init(const tg_secrets_t *secrets)
{
	sodium_memzero(&box, sizeof(box));
	memcpy(box.box_key, secrets->box_key, sizeof(box.box_key));
	have_box = 1;
	if (catalog_gen == &local_gen) {
		uint64_t *p = db_shared_counter("catalog");

		if (p)
			catalog_gen = p;
		else
			log_warn("catalog: cannot map the change counter; catalog changes made by "
				 "this process reach a running server within %d seconds",
				 SNAPSHOT_TTL_S);
	}
	/* Reference counted by libcurl, so other modules may call it too. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_error("catalog: libcurl could not be initialised");
}

/* ------------------------------------------------------------- names */

static const char *const provider_kind_names[PROVIDER_KINDS] = {
	[PROVIDER_OPENAI] = "openai",       [PROVIDER_ECHO] = "echo",
	[PROVIDER_ANTHROPIC] = "anthropic", [PROVIDER_GEMINI] = "gemini",
	[PROVIDER_AZURE] = "azure",
};

const char *catalog_provider_kind_name(enum provider_kind k)
{
	return (unsigned)k < PROVIDER_KINDS ? provider_kind_names[k] : "openai";
}

int catalog_provider_kind_parse(const char *s)
{
	for (int k = 0; s && k < PROVIDER_KINDS; k++)
		if (strcmp(s, provider_kind_names[k]) == 0)
			return k;
	return -1;
}

const char *catalog_model_kind_name(enum model_kind k)
{
	return k == MODEL_EMBEDDING ? "embedding" : "chat";
}

int catalog_model_kind_parse(const char *s)
{
	if (s && strcmp(s, "chat") == 0)
		return MODEL_CHAT;
	if (s && strcmp(s, "embedding") == 0)
		return MODEL_EMBEDDING;
	return -1;
}

/* --------------------------------------------------------- validation */

/* 1 when s is 1..max bytes, each a letter, a digit or one of `extra`. */
static int name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = 0;

	if (!s || !*s)
		return 0;
	for (; *s; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (n >= max)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return 0;
	}
	return 1;
}

/* Check a base URL and copy it to out without trailing slashes. */
static int url_normalize(const char *in, char out[CATALOG_URL_MAX + 1], const char **why)
{
	size_t n, scheme;
	const char *p;

	n = in ? strlen(in) : 0;
	if (n > CATALOG_URL_MAX) {
		*why = "Base URL is too long (at most 512 characters).";
		return TG_EINVAL;
	}
	for (p = in; p && *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= ' ' || c == 0x7f) {
			*why = "Base URL must not contain spaces, line breaks or control "
			       "characters.";
			return TG_EINVAL;
		}
		if (c == '?' || c == '#') {
			*why = "Base URL must not contain a query (?) or fragment (#); paths "
			       "such as "
			       "/chat/completions are added to it.";
			return TG_EINVAL;
		}
	}
	if (strncmp(in ? in : "", "http://", 7) == 0)
		scheme = 7;
	else if (strncmp(in ? in : "", "https://", 8) == 0)
		scheme = 8;
	else {
		*why = "Base URL must start with http:// or https://, like "
		       "https://api.openai.com/v1.";
		return TG_EINVAL;
	}
	while (n > scheme && in[n - 1] == '/')
		n--;
	if (n == scheme || in[scheme] == '/') {
		*why = "Base URL needs a host name after the scheme, like "
		       "https://api.openai.com/v1.";
		return TG_EINVAL;
	}
	memcpy(out, in, n);
	out[n] = '\0';
	return TG_OK;
}

/* The key without surrounding whitespace (pasted keys often carry a newline). */
static void key_trim(const char *k, const char **start, size_t *len)
{
	size_t n = strlen(k);

	while (n && (*k == ' ' || *k == '\t' || *k == '\r' || *k == '\n')) {
		k++;
		n--;
	}
	while (n && (k[n - 1] == ' ' || k[n - 1] == '\t' || k[n - 1] == '\r' || k[n - 1] == '\n'))
		n--;
	*start = k;
	*len = n;
}

static int key_check(const char *api_key, const char **why)
{
	const char *k;
	size_t n, i;

	if (!api_key)
		return TG_OK;
	key_trim(api_key, &k, &n);
	if (n > CATALOG_API_KEY_MAX) {
		*why = "API key is too long (at most 4096 characters).";
		return TG_EINVAL;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)k[i] <= ' ' || (unsigned char)k[i] >= 0x7f) {
			*why = "API key must be printable ASCII without spaces or line breaks.";
			return TG_EINVAL;
		}
	}
	return TG_OK;
}

/* The base URL a kind's provider has when none is given ("" when one is
 * required). */
static const char *default_base_url(enum provider_kind kind)
{
	switch (kind) {
	case PROVIDER_ANTHROPIC:
		return "https://api.anthropic.com/v1";
	case PROVIDER_GEMINI:
		return "https://generativelanguage.googleapis.com/v1beta";
	default:
		return "";
	}
}

int catalog_provider_check(const char *name, enum provider_kind kind, const char *base_url,
			   const char *api_version, const char *api_key, int64_t timeout_s,
			   const char **field, const char **why)
{
	char url[CATALOG_URL_MAX + 1];

	*field = "name";
	if (!name_ok(name, CATALOG_PROVIDER_NAME_MAX, "._-")) {
		*why = "Provider name must be 1 to 64 characters: letters, digits, dot, underscore "
		       "or hyphen.";
		return TG_EINVAL;
	}
	*field = "kind";
	if ((unsigned)kind >= PROVIDER_KINDS) {
		*why = "Kind must be openai, anthropic, gemini, azure or echo.";
		return TG_EINVAL;
	}
	*field = "base_url";
	if (kind != PROVIDER_ECHO && (!base_url || !*base_url) && !*default_base_url(kind)) {
		*why = kind == PROVIDER_AZURE ?
			       "Base URL is required for Azure: the resource's endpoint, "
			       "https://NAME.openai.azure.com." :
			       "Base URL is required for an OpenAI-compatible provider.";
		return TG_EINVAL;
	}
	if (base_url && *base_url && url_normalize(base_url, url, why))
		return TG_EINVAL;
	*field = "api_version";
	if (api_version && strlen(api_version) > CATALOG_API_VERSION_MAX) {
		*why = "API version is too long (at most 32 characters).";
		return TG_EINVAL;
	}
	for (const char *v = api_version ? api_version : ""; *v; v++) {
		if (!isalnum((unsigned char)*v) && *v != '-' && *v != '.' && *v != '_') {
			*why = "API version may hold letters, digits, '-', '.' and '_' only "
			       "(e.g. 2024-10-21).";
			return TG_EINVAL;
		}
	}
	*field = "api_key";
	if (key_check(api_key, why))
		return TG_EINVAL;
	*field = "timeout_s";
	if (timeout_s < 1 || timeout_s > CATALOG_TIMEOUT_MAX) {
		*why = "Timeout must be between 1 and 3600 seconds.";
		return TG_EINVAL;
	}
	*field = NULL;
	return TG_OK;
}

static int provider_exists(int64_t id)
{
	tg_stmt *st = db_stmt("SELECT 1 FROM providers WHERE id = :id");
	int found;

	if (!st || db_bind_int64(st, ":id", id))
		return 0;
	found = db_step(st) == DB_ROW;
	db_done(st);
	return found;
}

int catalog_model_check(const struct model *m, const char **field, const char **why)
{
	const unsigned char *p;

	*field = "name";
	if (!name_ok(m->name, CATALOG_NAME_MAX, "._:/-")) {
		*why = "Model name must be 1 to 128 characters: letters, digits and . _ : / -";
		return TG_EINVAL;
	}
	*field = "upstream_model";
	if (!m->upstream_model[0]) {
		*why = "Upstream model is required: the model name the provider expects.";
		return TG_EINVAL;
	}
	if (strnlen(m->upstream_model, sizeof(m->upstream_model)) > CATALOG_NAME_MAX) {
		*why = "Upstream model is too long (at most 128 characters).";
		return TG_EINVAL;
	}
	for (p = (const unsigned char *)m->upstream_model; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*why = "Upstream model must not contain control characters.";
			return TG_EINVAL;
		}
	}
	*field = "kind";
	if (m->kind != MODEL_CHAT && m->kind != MODEL_EMBEDDING) {
		*why = "Kind must be chat or embedding.";
		return TG_EINVAL;
	}
	*why = "Prices cannot be negative.";
	*field = "input_per_mtok";
	if (m->price.in < 0)
		return TG_EINVAL;
	*field = "cached_input_per_mtok";
	if (m->price.cached_in < 0)
		return TG_EINVAL;
	*field = "output_per_mtok";
	if (m->price.out < 0)
		return TG_EINVAL;
	*field = "cache_write_per_mtok";
	if (m->price.cache_write < 0)
		return TG_EINVAL;
	*field = "weight";
	if (m->weight < 0 || m->weight > CATALOG_WEIGHT_MAX) {
		*why = "Weight must be between 0 and 1000.";
		return TG_EINVAL;
	}
	*field = "fallback_model";
	if (m->fallback_model[0] && (!name_ok(m->fallback_model, CATALOG_NAME_MAX, "._:/-") ||
				     strcmp(m->fallback_model, m->name) == 0)) {
		*why = "Fallback model must be the name of another model (or empty).";
		return TG_EINVAL;
	}
	*field = "max_output_tokens";
	if (m->max_output_tokens < 1 || m->max_output_tokens > CATALOG_MAX_OUTPUT_MAX) {
		*why = "Max output tokens must be between 1 and 10,000,000.";
		return TG_EINVAL;
	}
	*field = "context_window";
	if (m->context_window < 1 || m->context_window > CATALOG_CONTEXT_MAX) {
		*why = "Context window must be between 1 and 100,000,000 tokens.";
		return TG_EINVAL;
	}
	*field = "provider";
	if (m->provider_id <= 0 || !provider_exists(m->provider_id)) {
		*why = "The provider does not exist. Add it first.";
		return TG_EINVAL;
	}
	*field = NULL;
	*why = NULL;
	return TG_OK;
}

/* ------------------------------------------------------------ lookups */

/* Copy a column into a fixed array; 0 when it does not fit. */
static int col_copy(tg_stmt *st, int col, char *out, size_t n)
{
	const char *s = db_col_text(st, col);
	size_t len = strlen(s);

	if (len >= n)
		return 0;
	memcpy(out, s, len + 1);
	return 1;
}

static int model_row(tg_stmt *st, struct model *out)
{
	struct model m;

	memset(&m, 0, sizeof(m));
	m.id = db_col_int64(st, 0);
	if (!col_copy(st, 1, m.name, sizeof(m.name)) ||
	    !col_copy(st, 2, m.upstream_model, sizeof(m.upstream_model)))
		return TG_ETOOBIG;
	m.kind = strcmp(db_col_text(st, 3), "embedding") == 0 ? MODEL_EMBEDDING : MODEL_CHAT;
	m.provider_id = db_col_int64(st, 4);
	m.price.in = db_col_int64(st, 5);
	m.price.cached_in = db_col_int64(st, 6);
	m.price.out = db_col_int64(st, 7);
	m.max_output_tokens = db_col_int64(st, 8);
	m.context_window = db_col_int64(st, 9);
	m.enabled = db_col_int(st, 10);
	m.price.cache_write = db_col_int64(st, 11);
	m.weight = db_col_int64(st, 12);
	if (!col_copy(st, 13, m.fallback_model, sizeof(m.fallback_model)))
		return TG_ETOOBIG;
	*out = m;
	return TG_OK;
}

static int model_fetch(tg_stmt *st, struct model *out)
{
	int rc;

	if (!st)
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW)
		rc = model_row(st, out);
	else
		rc = rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	db_done(st);
	return rc;
}

int catalog_model_get(const char *name, struct model *out)
{
	tg_stmt *st = db_stmt("SELECT id, name, upstream_model, kind, provider_id, price_in,"
			      " price_cached_in, price_out, max_output_tokens, context_window,"
			      " enabled, price_cache_write, weight, fallback_model FROM models"
			      " WHERE name = :name");

	if (!name || !st || db_bind_text(st, ":name", name))
		return st ? TG_ENOTFOUND : TG_EDB;
	return model_fetch(st, out);
}

int catalog_model_get_by_id(int64_t id, struct model *out)
{
	tg_stmt *st = db_stmt(
		"SELECT id, name, upstream_model, kind, provider_id, price_in,"
		" price_cached_in, price_out, max_output_tokens, context_window,"
		" enabled, price_cache_write, weight, fallback_model FROM models WHERE id = :id");

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	return model_fetch(st, out);
}

static int provider_row(tg_stmt *st, struct provider *out)
{
	struct provider p;

	memset(&p, 0, sizeof(p));
	p.id = db_col_int64(st, 0);
	if (!col_copy(st, 1, p.name, sizeof(p.name)) ||
	    !col_copy(st, 3, p.base_url, sizeof(p.base_url)))
		return TG_ETOOBIG;
	p.kind = catalog_provider_kind_parse(db_col_text(st, 2)) < 0 ?
			 PROVIDER_OPENAI :
			 (enum provider_kind)catalog_provider_kind_parse(db_col_text(st, 2));
	p.has_api_key = db_col_int(st, 4);
	p.timeout_s = db_col_int64(st, 5);
	p.enabled = db_col_int(st, 6);
	if (!col_copy(st, 7, p.api_version, sizeof(p.api_version)))
		return TG_ETOOBIG;
	*out = p;
	return TG_OK;
}

static int provider_fetch(tg_stmt *st, struct provider *out)
{
	int rc;

	if (!st)
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW)
		rc = provider_row(st, out);
	else
		rc = rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	db_done(st);
	return rc;
}

int catalog_provider_get(int64_t id, struct provider *out)
{
	tg_stmt *st = db_stmt("SELECT id, name, kind, base_url, api_key_sealed != '', timeout_s,"
			      " enabled, api_version FROM providers WHERE id = :id");

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	return provider_fetch(st, out);
}

int catalog_provider_get_by_name(const char *name, struct provider *out)
{
	tg_stmt *st = db_stmt("SELECT id, name, kind, base_url, api_key_sealed != '', timeout_s,"
			      " enabled, api_version FROM providers WHERE name = :name");

	if (!name || !st || db_bind_text(st, ":name", name))
		return st ? TG_ENOTFOUND : TG_EDB;
	return provider_fetch(st, out);
}

static int provider_api_key_db(int64_t id, char **key_out, size_t *len_out)
{
	tg_stmt *st = db_stmt("SELECT api_key_sealed FROM providers WHERE id = :id");
	char *sealed = NULL, *plain = NULL;
	size_t n = 0;
	int rc;

	if (!have_box)
		return TG_EPERM;
	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	rc = db_step(st);
	if (rc != DB_ROW) {
		db_done(st);
		return rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	}
	if (*db_col_text(st, 0))
		sealed = strdup(db_col_text(st, 0));
	rc = *db_col_text(st, 0) && !sealed ? TG_ENOMEM : TG_OK;
	db_done(st);
	if (rc || !sealed)
		goto out;
	rc = secrets_open(&box, sealed, &plain, &n);
	if (rc)
		log_error("catalog: the API key of provider %lld cannot be opened (%s); was the "
			  "secret file replaced?",
			  (long long)id, tg_strerror(rc));
out:
	free(sealed);
	if (rc == TG_OK) {
		*key_out = plain;
		*len_out = n;
	}
	return rc;
}

/* ------------------------------------------------- the gateway's copy
 *
 * The gateway looks a model, its provider and the provider's opened API key
 * up on every call. It reads them from a snapshot of both tables in memory,
 * rebuilt whole when the change counter moved: every upsert bumps it (after
 * its commit too, see db_changed), and it is shared with the CLI through a
 * file next to the database. Whatever happens to that file, a snapshot lives
 * at most SNAPSHOT_TTL_S seconds. Catalogs are small: a rebuild reads every
 * row.
 */

struct snap_provider {
	struct provider p;
	char *key; /* opened API key (NULL: none); wiped when the snapshot goes */
	size_t keylen;
};

struct snapshot {
	uint64_t gen;
	int64_t loaded_at;
	struct model *models; /* sorted by name */
	size_t n_models;
	struct snap_provider *provs; /* sorted by id */
	size_t n_provs;
	struct deployment *deps; /* enabled rows, sorted by model, priority, id */
	size_t n_deps;
};

static pthread_rwlock_t snap_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct snapshot *snap;

static void snapshot_free(struct snapshot *sn)
{
	size_t i;

	if (!sn)
		return;
	for (i = 0; i < sn->n_provs; i++)
		if (sn->provs[i].key)
			secrets_plain_free(sn->provs[i].key, sn->provs[i].keylen);
	free(sn->provs);
	free(sn->deps);
	free(sn->models);
	free(sn);
}

/* The enabled deployment rows, with the model's price where a row sets
 * none. */
static int deployments_load(struct snapshot *sn)
{
	tg_stmt *st = db_stmt(
		"SELECT d.id, d.model_id, d.provider_id, d.upstream_model, d.weight, d.priority,"
		" d.price_in IS NOT NULL OR d.price_cached_in IS NOT NULL"
		" OR d.price_cache_write IS NOT NULL OR d.price_out IS NOT NULL,"
		" coalesce(d.price_in, m.price_in), coalesce(d.price_cached_in, m.price_cached_in),"
		" coalesce(d.price_cache_write, m.price_cache_write),"
		" coalesce(d.price_out, m.price_out), d.enabled"
		" FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.enabled = 1"
		" ORDER BY d.model_id, d.priority, d.id");
	size_t cap = 0;
	int rc;

	if (!st)
		return TG_EDB;
	while ((rc = db_step(st)) == DB_ROW) {
		if (sn->n_deps == cap) {
			struct deployment *g = realloc(sn->deps, (cap ? cap * 2 : 16) * sizeof(*g));

			if (!g) {
				db_done(st);
				return TG_ENOMEM;
			}
			sn->deps = g;
			cap = cap ? cap * 2 : 16;
		}
		if (catalog_deployment_row(st, &sn->deps[sn->n_deps]) == TG_OK)
			sn->n_deps++;
	}
	db_done(st);
	return rc == DB_DONE ? TG_OK : TG_EDB;
}

static int snapshot_load(struct snapshot *sn)
{
	tg_stmt *st;
	size_t cap = 0;
	int rc;

	st = db_stmt(
		"SELECT id, name, upstream_model, kind, provider_id, price_in,"
		" price_cached_in, price_out, max_output_tokens, context_window,"
		" enabled, price_cache_write, weight, fallback_model FROM models ORDER BY name");
	if (!st)
		return TG_EDB;
	while ((rc = db_step(st)) == DB_ROW) {
		if (sn->n_models == cap) {
			struct model *g = realloc(sn->models, (cap ? cap * 2 : 32) * sizeof(*g));

			if (!g) {
				db_done(st);
				return TG_ENOMEM;
			}
			sn->models = g;
			cap = cap ? cap * 2 : 32;
		}
		if (model_row(st, &sn->models[sn->n_models]) == TG_OK)
			sn->n_models++;
	}
	db_done(st);
	if (rc != DB_DONE)
		return TG_EDB;

	cap = 0;
	st = db_stmt("SELECT id, name, kind, base_url, api_key_sealed != '', timeout_s,"
		     " enabled, api_version FROM providers ORDER BY id");
	if (!st)
		return TG_EDB;
	while ((rc = db_step(st)) == DB_ROW) {
		struct provider p;

		if (provider_row(st, &p) != TG_OK)
			continue;
		if (sn->n_provs == cap) {
			struct snap_provider *g = realloc(sn->provs,
							  (cap ? cap * 2 : 8) * sizeof(*g));

			if (!g) {
				db_done(st);
				return TG_ENOMEM;
			}
			sn->provs = g;
			cap = cap ? cap * 2 : 8;
		}
		sn->provs[sn->n_provs].p = p;
		sn->provs[sn->n_provs].key = NULL;
		sn->provs[sn->n_provs].keylen = 0;
		sn->n_provs++;
	}
	db_done(st);
	if (rc != DB_DONE)
		return TG_EDB;
	rc = deployments_load(sn);
	if (rc != TG_OK)
		return rc;
	for (cap = 0; cap < sn->n_provs; cap++)
		if (sn->provs[cap].p.has_api_key &&
		    provider_api_key_db(sn->provs[cap].p.id, &sn->provs[cap].key,
					&sn->provs[cap].keylen) != TG_OK)
			sn->provs[cap].key = NULL; /* logged; calls fail as before */
	return TG_OK;
}

/* Fresh: the counter has not moved, and (a backstop for a counter file that
 * was replaced or that another process cannot map) it is younger than
 * SNAPSHOT_TTL_S. */
static int snapshot_fresh(const struct snapshot *sn, uint64_t gen, int64_t now)
{
	return sn && sn->gen == gen && now >= sn->loaded_at && now - sn->loaded_at < SNAPSHOT_TTL_S;
}

/* Take the read lock on a fresh snapshot (rebuilding it first when needed).
 * TG_OK with the lock held; otherwise no lock and the caller reads SQL. */
static int snapshot_acquire(void)
{
	int64_t now = time_now();
	uint64_t gen = __atomic_load_n(catalog_gen, __ATOMIC_ACQUIRE);
	struct snapshot *sn;

	pthread_rwlock_rdlock(&snap_lock);
	if (snapshot_fresh(snap, gen, now))
		return TG_OK;
	pthread_rwlock_unlock(&snap_lock);

	/* Read the counter before the rows: a change committed meanwhile bumps
	 * it again and the next call rebuilds. */
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return TG_ENOMEM;
	sn->gen = gen;
	sn->loaded_at = now;
	if (snapshot_load(sn) != TG_OK) {
		snapshot_free(sn);
		return TG_EDB;
	}
	pthread_rwlock_wrlock(&snap_lock);
	/* Another thread may have installed one meanwhile: keep the newer. */
	if (!snap || snap->gen < gen || (snap->gen == gen && snap->loaded_at <= now)) {
		snapshot_free(snap);
		snap = sn;
	} else {
		snapshot_free(sn);
	}
	pthread_rwlock_unlock(&snap_lock);
	pthread_rwlock_rdlock(&snap_lock);
	if (snap)
		return TG_OK;
	pthread_rwlock_unlock(&snap_lock);
	return TG_EDB;
}

static int model_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct model *)elem)->name);
}

static int prov_cmp(const void *key, const void *elem)
{
	int64_t a = *(const int64_t *)key, b = ((const struct snap_provider *)elem)->p.id;

	return a < b ? -1 : a > b;
}

int catalog_gw_model(const char *name, struct model *out)
{
	const struct model *m;

	if (!name)
		return TG_ENOTFOUND;
	if (snapshot_acquire() != TG_OK)
		return catalog_model_get(name, out);
	m = bsearch(name, snap->models, snap->n_models, sizeof(*m), model_cmp);
	if (m)
		*out = *m;
	pthread_rwlock_unlock(&snap_lock);
	return m ? TG_OK : TG_ENOTFOUND;
}

/* The model's own deployment. */
static void own_deployment(const struct model *m, struct deployment *d)
{
	memset(d, 0, sizeof(*d));
	d->model_id = m->id;
	d->provider_id = m->provider_id;
	snprintf(d->upstream_model, sizeof(d->upstream_model), "%s", m->upstream_model);
	d->weight = m->weight;
	d->price = m->price;
	d->enabled = 1;
}

int catalog_gw_deployments(const struct model *m, struct deployment *out, int max)
{
	size_t lo = 0, hi;
	int n = 0;

	if (max < 1)
		return 0;
	own_deployment(m, &out[n++]);
	if (snapshot_acquire() != TG_OK) {
		/* No snapshot: the rows from SQL, the model's prices where they
		 * set none. */
		int k = catalog_deployments_of(m->id, out + 1, max - 1);

		for (int i = 0; k > 0 && i < k; i++) {
			if (!out[1 + i].own_price)
				out[1 + i].price = m->price;
			if (out[1 + i].enabled)
				out[n++] = out[1 + i];
		}
		return n;
	}
	/* The first row of the model (rows are sorted by model id). */
	hi = snap->n_deps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (snap->deps[mid].model_id < m->id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < snap->n_deps && snap->deps[lo].model_id == m->id && n < max; lo++)
		out[n++] = snap->deps[lo];
	pthread_rwlock_unlock(&snap_lock);
	return n;
}

void catalog_changed(void)
{
	db_changed(catalog_gen);
}

int catalog_gw_provider(int64_t id, struct provider *out)
{
	const struct snap_provider *sp;

	if (snapshot_acquire() != TG_OK)
		return catalog_provider_get(id, out);
	sp = bsearch(&id, snap->provs, snap->n_provs, sizeof(*sp), prov_cmp);
	if (sp)
		*out = sp->p;
	pthread_rwlock_unlock(&snap_lock);
	return sp ? TG_OK : TG_ENOTFOUND;
}

int catalog_provider_api_key(int64_t id, char **key_out, size_t *len_out)
{
	const struct snap_provider *sp;
	int rc = TG_OK;

	if (!have_box)
		return TG_EPERM;
	if (snapshot_acquire() != TG_OK)
		return provider_api_key_db(id, key_out, len_out);
	sp = bsearch(&id, snap->provs, snap->n_provs, sizeof(*sp), prov_cmp);
	*key_out = NULL;
	*len_out = 0;
	if (!sp) {
		rc = TG_ENOTFOUND;
	} else if (sp->p.has_api_key && !sp->key) {
		rc = TG_EINVAL; /* could not be opened; logged at load */
	} else if (sp->key) {
		char *copy = malloc(sp->keylen + 1);

		if (!copy) {
			rc = TG_ENOMEM;
		} else {
			memcpy(copy, sp->key, sp->keylen);
			copy[sp->keylen] = '\0';
			*key_out = copy;
			*len_out = sp->keylen;
		}
	}
	pthread_rwlock_unlock(&snap_lock);
	return rc;
}

void catalog_forget(void)
{
	pthread_rwlock_wrlock(&snap_lock);
	snapshot_free(snap);
	snap = NULL;
	pthread_rwlock_unlock(&snap_lock);
}

/* ------------------------------------------------------------ upserts */

int catalog_provider_upsert(const char *name, enum provider_kind kind, const char *base_url,
			    const char *api_version, const char *api_key, int64_t timeout_s,
			    int enabled, int64_t *id_out, const char **why)
{
	tg_stmt *st;
	char url[CATALOG_URL_MAX + 1] = "", *sealed = NULL;
	const char *field, *key;
	size_t keylen;
	int rc;

	if ((rc = catalog_provider_check(name, kind, base_url, api_version, api_key, timeout_s,
					 &field, why)))
		return rc;
	if ((!base_url || !*base_url) && kind != PROVIDER_ECHO)
		base_url = default_base_url(kind);
	if (base_url && *base_url && (rc = url_normalize(base_url, url, why)))
		return rc;
	if (api_key) {
		key_trim(api_key, &key, &keylen);
		if (keylen && !have_box) {
			*why = "Provider keys cannot be sealed: the server secrets are not loaded.";
			return TG_EPERM;
		}
		if (keylen && (rc = secrets_seal(&box, key, keylen, &sealed)))
			return rc;
		if (!keylen && !(sealed = strdup("")))
			return TG_ENOMEM;
	}
	st = db_stmt(
		"INSERT INTO providers(name, kind, base_url, api_key_sealed, timeout_s, enabled,"
		" created_at, updated_at, api_version) VALUES (:name, :kind, :url,"
		" coalesce(:sealed, ''), :timeout, :enabled, :now, :now, :ver)"
		" ON CONFLICT(name) DO UPDATE SET kind = excluded.kind,"
		" api_version = excluded.api_version,"
		" base_url = excluded.base_url, api_key_sealed = CASE WHEN :sealed IS NULL"
		" THEN providers.api_key_sealed ELSE excluded.api_key_sealed END,"
		" timeout_s = excluded.timeout_s, enabled = excluded.enabled,"
		" updated_at = excluded.updated_at RETURNING id");
	if (!st || db_bind_text(st, ":name", name) ||
	    db_bind_text(st, ":kind", catalog_provider_kind_name(kind)) ||
	    db_bind_text(st, ":url", url) || db_bind_text(st, ":sealed", sealed) ||
	    db_bind_text(st, ":ver", api_version ? api_version : "") ||
	    db_bind_int64(st, ":timeout", timeout_s) ||
	    db_bind_int64(st, ":enabled", enabled ? 1 : 0) ||
	    db_bind_int64(st, ":now", time_now())) {
		rc = TG_EDB;
		goto out;
	}
	rc = db_step(st);
	if (rc == DB_ROW) {
		if (id_out)
			*id_out = db_col_int64(st, 0);
		rc = TG_OK;
	} else {
		log_error("catalog: saving provider failed: %s", db_errmsg());
		rc = (rc & 0xff) == DB_CONSTRAINT ? TG_ECONFLICT : TG_EDB;
	}
	db_done(st);
	if (rc == TG_OK)
		db_changed(catalog_gen);
out:
	free(sealed);
	return rc;
}

int catalog_model_upsert(const struct model *m, int64_t *id_out, const char **why)
{
	tg_stmt *st;
	const char *field;
	int rc;

	if ((rc = catalog_model_check(m, &field, why)))
		return rc;
	st = db_stmt(
		"INSERT INTO models(name, provider_id, upstream_model, kind, price_in,"
		" price_cached_in, price_out, max_output_tokens, context_window, enabled,"
		" created_at, updated_at, price_cache_write, weight, fallback_model)"
		" VALUES (:name, :provider, :upstream, :kind, :in, :cached, :out, :max_out, :ctx,"
		" :enabled, :now, :now, :cwrite, :weight, :fallback)"
		" ON CONFLICT(name) DO UPDATE SET provider_id = excluded.provider_id,"
		" price_cache_write = excluded.price_cache_write, weight = excluded.weight,"
		" fallback_model = excluded.fallback_model,"
		" upstream_model = excluded.upstream_model, kind = excluded.kind,"
		" price_in = excluded.price_in, price_cached_in = excluded.price_cached_in,"
		" price_out = excluded.price_out, max_output_tokens = excluded.max_output_tokens,"
		" context_window = excluded.context_window, enabled = excluded.enabled,"
		" updated_at = excluded.updated_at RETURNING id");
	if (!st || db_bind_text(st, ":name", m->name) ||
	    db_bind_int64(st, ":provider", m->provider_id) ||
	    db_bind_text(st, ":upstream", m->upstream_model) ||
	    db_bind_text(st, ":kind", catalog_model_kind_name(m->kind)) ||
	    db_bind_int64(st, ":in", m->price.in) ||
	    db_bind_int64(st, ":cached", m->price.cached_in) ||
	    db_bind_int64(st, ":out", m->price.out) ||
	    db_bind_int64(st, ":cwrite", m->price.cache_write) ||
	    db_bind_int64(st, ":weight", m->weight) ||
	    db_bind_text(st, ":fallback", m->fallback_model) ||
	    db_bind_int64(st, ":max_out", m->max_output_tokens) ||
	    db_bind_int64(st, ":ctx", m->context_window) ||
	    db_bind_int64(st, ":enabled", m->enabled ? 1 : 0) ||
	    db_bind_int64(st, ":now", time_now()))
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW) {
		if (id_out)
			*id_out = db_col_int64(st, 0);
		rc = TG_OK;
	} else if ((rc & 0xff) == DB_CONSTRAINT) {
		/* The provider went away between the check and the write. */
		*why = "The provider does not exist. Add it first.";
		rc = TG_EINVAL;
	} else {
		log_error("catalog: saving model failed: %s", db_errmsg());
		rc = TG_EDB;
	}
	db_done(st);
	if (rc == TG_OK)
		db_changed(catalog_gen);
	return rc;
}

/* ------------------------------------------------------------- audit */

void catalog_price_detail(const money_price_t *before, const money_price_t *after, char *out,
			  size_t n)
{
	char a[3][MONEY_FMT_LEN], b[3][MONEY_FMT_LEN];

	money_format_short(after->in, a[0]);
	money_format_short(after->cached_in, a[1]);
	money_format_short(after->out, a[2]);
	if (!before) {
		snprintf(out, n, "input %s, cached input %s, output %s", a[0], a[1], a[2]);
		return;
	}
	money_format_short(before->in, b[0]);
	money_format_short(before->cached_in, b[1]);
	money_format_short(before->out, b[2]);
	snprintf(out, n, "input %s -> %s, cached input %s -> %s, output %s -> %s", b[0], a[0], b[1],
		 a[1], b[2], a[2]);
}

int catalog_each_listed_model(int (*fn)(void *ud, const struct catalog_listed_model *lm), void *ud)
{
	tg_stmt *st = db_stmt("SELECT m.name, m.created_at, p.name, m.kind, m.price_in,"
			      " m.price_cached_in, m.price_out, m.max_output_tokens,"
			      " m.context_window"
			      " FROM models m JOIN providers p ON p.id = m.provider_id"
			      " WHERE m.enabled = 1 AND p.enabled = 1 ORDER BY m.name");
	int rc = st ? TG_OK : TG_EDB, step;

	while (st && (step = db_step(st)) == DB_ROW) {
		struct model m;
		struct catalog_listed_model lm = { &m, db_col_text(st, 2), db_col_int64(st, 1) };

		memset(&m, 0, sizeof(m));
		snprintf(m.name, sizeof(m.name), "%s", db_col_text(st, 0));
		m.kind = catalog_model_kind_parse(db_col_text(st, 3)) == MODEL_EMBEDDING ?
				 MODEL_EMBEDDING :
				 MODEL_CHAT;
		m.price.in = db_col_int64(st, 4);
		m.price.cached_in = db_col_int64(st, 5);
		m.price.out = db_col_int64(st, 6);
		m.max_output_tokens = db_col_int64(st, 7);
		m.context_window = db_col_int64(st, 8);
		m.enabled = 1;
		if (fn(ud, &lm))
			break;
	}
	db_done(st);
	return rc;
}

int catalog_each_listed_provider(int (*fn)(void *ud, const char *name, const char *kind,
					   int64_t models),
				 void *ud)
{
	tg_stmt *st = db_stmt("SELECT p.name, p.kind, (SELECT count(*) FROM models m"
			      " WHERE m.provider_id = p.id AND m.enabled = 1)"
			      " FROM providers p WHERE p.enabled = 1 ORDER BY p.name");
	int rc = st ? TG_OK : TG_EDB;

	while (st && db_step(st) == DB_ROW)
		if (fn(ud, db_col_text(st, 0), db_col_text(st, 1), db_col_int64(st, 2)))
			break;
	db_done(st);
	return rc;
}
