/* gw_info.c - GET /v1/models and GET /v1/providers. */
#include <string.h>

#include "catalog/catalog.h"
#include "gateway/gw.h"
#include "ledger/money.h"

static void add_price(cJSON *obj, const char *name, int64_t micro)
{
	char s[MONEY_FMT_LEN];

	money_format_short(micro, s);
	cJSON_AddStringToObject(obj, name, s);
}

struct models_walk {
	const struct apikey *key;
	cJSON *data;
};

static int add_model(void *ud, const struct catalog_listed_model *lm)
{
	struct models_walk *w = ud;
	const struct model *mod = lm->m;
	cJSON *m, *price;

	if (!apikey_model_allowed(w->key, mod->name))
		return 0;
	m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "id", mod->name);
	cJSON_AddStringToObject(m, "object", "model");
	cJSON_AddNumberToObject(m, "created", (double)lm->created_at);
	cJSON_AddStringToObject(m, "owned_by", lm->provider);
	cJSON_AddStringToObject(m, "type", catalog_model_kind_name(mod->kind));
	cJSON_AddNumberToObject(m, "context_window", (double)mod->context_window);
	cJSON_AddNumberToObject(m, "max_output_tokens", (double)mod->max_output_tokens);
	price = cJSON_AddObjectToObject(m, "pricing");
	add_price(price, "input", mod->price.in);
	add_price(price, "cached_input", mod->price.cached_in);
	add_price(price, "output", mod->price.out);
	cJSON_AddStringToObject(price, "unit", "credits per 1M tokens");
	cJSON_AddItemToArray(w->data, m);
	return 0;
}

/* The models this key may use, in OpenAI's list shape, with prices as exact
 * decimal strings in credits per 1M tokens. */
int gw_models(tg_req_t *r)
{
	cJSON *root = cJSON_CreateObject();
	struct models_walk w = { &r->key->k, NULL };
	int rc;

	cJSON_AddStringToObject(root, "object", "list");
	w.data = cJSON_AddArrayToObject(root, "data");
	catalog_each_listed_model(add_model, &w);
	rc = resp_json(r, 200, root);
	cJSON_Delete(root);
	return rc;
}

static int add_provider(void *ud, const char *name, const char *kind, int64_t models)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddStringToObject(p, "kind", kind);
	cJSON_AddNumberToObject(p, "models", (double)models);
	cJSON_AddItemToArray(ud, p);
	return 0;
}

/* Enabled providers with their model counts; never URLs or keys. */
int gw_providers(tg_req_t *r)
{
	cJSON *root = cJSON_CreateObject(), *data;
	int rc;

	cJSON_AddStringToObject(root, "object", "list");
	data = cJSON_AddArrayToObject(root, "data");
	catalog_each_listed_provider(add_provider, data);
	rc = resp_json(r, 200, root);
	cJSON_Delete(root);
	return rc;
}
