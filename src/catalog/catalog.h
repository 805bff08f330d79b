/* catalog.h - upstream providers and priced models (tables providers and
 * models, owned here). Provider API keys are sealed with secretbox and never
 * returned to pages after saving; only the gateway opens them.
 */
#ifndef TG_CATALOG_H
#define TG_CATALOG_H

#include <stdint.h>

#include "core/common.h"
#include "crypto/secrets.h"
#include "ledger/money.h"

#define CATALOG_NAME_MAX 128
#define CATALOG_URL_MAX 512

enum provider_kind { PROVIDER_OPENAI = 0, PROVIDER_ECHO = 1 };
enum model_kind { MODEL_CHAT = 0, MODEL_EMBEDDING = 1 };

struct provider {
	int64_t id;
	char name[CATALOG_NAME_MAX + 1];
	enum provider_kind kind;
	char base_url[CATALOG_URL_MAX + 1]; /* without a trailing slash, e.g. http://host/v1 */
	int has_api_key;
	int64_t timeout_s;
	int enabled;
};

struct model {
	int64_t id;
	char name[CATALOG_NAME_MAX + 1];           /* public name */
	char upstream_model[CATALOG_NAME_MAX + 1];
	enum model_kind kind;
	int64_t provider_id;
	money_price_t price;                       /* micro-credits per 1M tokens */
	int64_t max_output_tokens;
	int64_t context_window;
	int enabled;
};

/* Install the secrets used to seal/open provider API keys. */
void catalog_init(const tg_secrets_t *secrets);

/* Lookups for the gateway (fast: prepared statements, no allocation). */
int catalog_model_get(const char *name, struct model *out);      /* TG_ENOTFOUND */
int catalog_provider_get(int64_t id, struct provider *out);       /* TG_ENOTFOUND */
/* The provider's API key, opened; caller frees with secrets_plain_free.
 * *key_out is NULL (TG_OK) when none is set. */
int catalog_provider_api_key(int64_t id, char **key_out, size_t *len_out);

/* Upserts by name, used by pages and `tollgate models import`. For
 * providers, api_key NULL keeps the stored key, "" clears it. why gets a
 * human message on TG_EINVAL. */
int catalog_provider_upsert(const char *name, enum provider_kind kind, const char *base_url,
			    const char *api_key, int64_t timeout_s, int enabled, int64_t *id_out,
			    const char **why);
int catalog_model_upsert(const struct model *m, int64_t *id_out, const char **why);

#endif
