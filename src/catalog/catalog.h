/* catalog.h - upstream providers and priced models (tables providers and
 * models, owned here). Provider API keys are sealed with secretbox and never
 * returned to pages after saving; only the gateway opens them.
 */
#ifndef TG_CATALOG_H
#define TG_CATALOG_H

#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"
#include "crypto/secrets.h"
#include "ledger/money.h"

#define CATALOG_NAME_MAX 128
#define CATALOG_URL_MAX 512
#define CATALOG_PROVIDER_NAME_MAX 64
#define CATALOG_API_KEY_MAX 4096        /* longest provider API key accepted */
#define CATALOG_TIMEOUT_MAX 3600        /* seconds */
#define CATALOG_MAX_OUTPUT_MAX 10000000 /* max_output_tokens upper bound */
#define CATALOG_CONTEXT_MAX 100000000   /* context_window upper bound */
#define CATALOG_TEST_TIMEOUT_MAX 10     /* seconds, for catalog_provider_test */

enum provider_kind {
	PROVIDER_OPENAI = 0,
	PROVIDER_ECHO = 1,
	PROVIDER_ANTHROPIC = 2,
	PROVIDER_GEMINI = 3,
	PROVIDER_AZURE = 4,
};
#define PROVIDER_KINDS 5
#define CATALOG_API_VERSION_MAX 32
enum model_kind { MODEL_CHAT = 0, MODEL_EMBEDDING = 1 };

struct provider {
	int64_t id;
	char name[CATALOG_NAME_MAX + 1];
	enum provider_kind kind;
	char base_url[CATALOG_URL_MAX + 1]; /* without a trailing slash, e.g. http://host/v1 */
	/* Azure's api-version query value; Anthropic's anthropic-version header
	 * ("" for the kind's default) */
	char api_version[CATALOG_API_VERSION_MAX + 1];
	int has_api_key;
	int64_t timeout_s;
	int enabled;
};

struct model {
	int64_t id;
	char name[CATALOG_NAME_MAX + 1]; /* public name */
	char upstream_model[CATALOG_NAME_MAX + 1];
	enum model_kind kind;
	int64_t provider_id;
	money_price_t price; /* micro-credits per 1M tokens */
	int64_t max_output_tokens;
	int64_t context_window;
	int enabled;
	int64_t weight; /* of its own deployment among those of priority 0 */
	/* tried when no deployment of this model can answer, or the input does
	 * not fit its context window ("" for none) */
	char fallback_model[CATALOG_NAME_MAX + 1];
};

/* Where a model's calls can go: its own provider and upstream model
 * (id 0, priority 0, the model's weight and price) and the rows of the
 * deployments table. Lower priorities are tried first; among the healthy
 * deployments of one priority, calls are spread by weight (0: only when the
 * others failed). */
#define CATALOG_DEPLOY_MAX 8 /* per model, its own included */
#define CATALOG_WEIGHT_MAX 1000
#define CATALOG_PRIORITY_MAX 100
struct deployment {
	int64_t id;
	int64_t model_id, provider_id;
	char upstream_model[CATALOG_NAME_MAX + 1];
	int64_t weight, priority;
	money_price_t price; /* the model's, unless own_price */
	int own_price;
	int enabled;
};

/* Install the secrets used to seal/open provider API keys (a copy of the box
 * key is kept) and initialise libcurl. Call once at startup, before threads. */
void catalog_init(const tg_secrets_t *secrets);

/* Lookups for the gateway (fast: prepared statements, no allocation). They
 * return disabled models and providers too; check `enabled`. */
int catalog_model_get(const char *name, struct model *out); /* TG_ENOTFOUND */
int catalog_provider_get(int64_t id, struct provider *out); /* TG_ENOTFOUND */
/* The same two lookups from an in-memory snapshot of the catalog, rebuilt
 * when any process changed it (the gateway's per-call path). */
int catalog_gw_model(const char *name, struct model *out); /* TG_ENOTFOUND */
int catalog_gw_provider(int64_t id, struct provider *out); /* TG_ENOTFOUND */
/* m's enabled deployments (its own first, then by priority and id) from
 * the snapshot, at most max; the count. */
int catalog_gw_deployments(const struct model *m, struct deployment *out, int max);
/* Drop the snapshot (tests, shutdown). */
void catalog_forget(void);
/* The provider's API key, opened (from the snapshot when it is fresh);
 * caller frees with secrets_plain_free.
 * *key_out is NULL (TG_OK) when none is set. TG_EPERM before catalog_init. */
int catalog_provider_api_key(int64_t id, char **key_out, size_t *len_out);

/* What the gateway lists (GET /v1/models, GET /v1/providers): the enabled
 * models of enabled providers by name, with their provider's name; the
 * enabled providers by name, with their count of enabled models. fn is
 * called once per row (the strings are valid during the call); a non-zero
 * return stops the walk. TG_OK, or TG_EDB. */
struct catalog_listed_model {
	const struct model *m;
	const char *provider;
	int64_t created_at;
};
int catalog_each_listed_model(int (*fn)(void *ud, const struct catalog_listed_model *lm), void *ud);
int catalog_each_listed_provider(int (*fn)(void *ud, const char *name, const char *kind,
					   int64_t models),
				 void *ud);

/* Same lookups by the other key, for pages and the CLI. Provider names
 * compare without regard to case. */
int catalog_model_get_by_id(int64_t id, struct model *out);               /* TG_ENOTFOUND */
int catalog_provider_get_by_name(const char *name, struct provider *out); /* TG_ENOTFOUND */

/* Upserts by name, used by pages and `tollgate models import`. For
 * providers, api_key NULL keeps the stored key, "" clears it. why gets a
 * human message on TG_EINVAL. */
int catalog_provider_upsert(const char *name, enum provider_kind kind, const char *base_url,
			    const char *api_version, const char *api_key, int64_t timeout_s,
			    int enabled, int64_t *id_out, const char **why);
int catalog_model_upsert(const struct model *m, int64_t *id_out, const char **why);

/* The deployments table, for pages and the CLI: every row of a model (its
 * own deployment not included), at most max, by priority and id; the count
 * or TG_EDB. Upsert by (model, provider, upstream model); d->id is ignored.
 * A model holds at most CATALOG_DEPLOY_MAX - 1 rows. */
int catalog_deployments_of(int64_t model_id, struct deployment *out, int max);
int catalog_deployment_check(const struct deployment *d, const char **field, const char **why);
int catalog_deployment_upsert(const struct deployment *d, int64_t *id_out, const char **why);
int catalog_deployment_delete(int64_t id);                      /* TG_ENOTFOUND */
int catalog_deployment_get(int64_t id, struct deployment *out); /* TG_ENOTFOUND */

/* The validation the upserts run, without writing. On TG_EINVAL *field names
 * the offending field as in the import file ("name", "kind", "base_url",
 * "api_key", "timeout_s"; for models "name", "provider", "upstream_model",
 * "kind", "input_per_mtok", "cached_input_per_mtok", "output_per_mtok",
 * "max_output_tokens", "context_window") and *why says what is wrong (both
 * static strings). api_key may be NULL. */
int catalog_provider_check(const char *name, enum provider_kind kind, const char *base_url,
			   const char *api_version, const char *api_key, int64_t timeout_s,
			   const char **field, const char **why);
int catalog_model_check(const struct model *m, const char **field, const char **why);

/* Kind names: "openai" | "echo" | "anthropic" | "gemini" | "azure", and
 * "chat" | "embedding". The parsers return -1 for anything else (including
 * NULL). */
const char *catalog_provider_kind_name(enum provider_kind k);
int catalog_provider_kind_parse(const char *s);
const char *catalog_model_kind_name(enum model_kind k);
int catalog_model_kind_parse(const char *s);

/* Audit detail for a price change: "input 2.50 -> 3.00, cached input 1.25 ->
 * 1.25, output 10.00 -> 12.00", or with before == NULL just the new prices.
 * Always NUL-terminated; out should hold 200 bytes. */
void catalog_price_detail(const money_price_t *before, const money_price_t *after, char *out,
			  size_t n);

/* "Test connection" (catalog_probe.c): GET {base_url}/models with the
 * provider's key (Bearer), its timeout capped at CATALOG_TEST_TIMEOUT_MAX,
 * at most 1 MiB of body, no redirects. Appends a one-line human report to
 * msg: "OK: HTTP 200, N models (a, b, c)" or the precise failure (transfer
 * error, or HTTP status with the first 200 bytes of the body, with control
 * characters and broken UTF-8 replaced). The echo kind answers locally with
 * its models. TG_OK when the provider answered with a model list, TG_EIO
 * otherwise, TG_ENOTFOUND for an unknown id. The key is never in msg. */
int catalog_provider_test(int64_t id, buf_t *msg);

#endif
