/* gw_info.c - GET /v1/models and GET /v1/providers. */
#include <string.h>

#include "gateway/gw.h"
#include "ledger/money.h"
#include "store/db.h"

static void add_price(cJSON *obj, const char *name, int64_t micro)
{
	char s[MONEY_FMT_LEN];

	money_format_short(micro, s);
	cJSON_AddStringToObject(obj, name, s);
}

/* The models this key may use, in OpenAI's list shape, with prices as exact
 * decimal strings in credits per 1M tokens. */
int gw_models(tg_req_t *r)
{
	const struct apikey *k = &r->key->k;
	cJSON *root = cJSON_CreateObject(), *data;
	sqlite3_stmt *st;
	int rc;

	cJSON_AddStringToObject(root, "object", "list");
	data = cJSON_AddArrayToObject(root, "data");
	st = db_stmt("SELECT m.name, m.created_at, p.name, m.kind, m.price_in, m.price_cached_in,"
		     " m.price_out, m.max_output_tokens, m.context_window"
		     " FROM models m JOIN providers p ON p.id = m.provider_id"
		     " WHERE m.enabled = 1 AND p.enabled = 1 ORDER BY m.name");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = db_col_text(st, 0);
		cJSON *m, *price;

		if (!apikey_model_allowed(k, name))
			continue;
		m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "id", name);
		cJSON_AddStringToObject(m, "object", "model");
		cJSON_AddNumberToObject(m, "created", (double)sqlite3_column_int64(st, 1));
		cJSON_AddStringToObject(m, "owned_by", db_col_text(st, 2));
		cJSON_AddStringToObject(m, "type", db_col_text(st, 3));
		cJSON_AddNumberToObject(m, "context_window", (double)sqlite3_column_int64(st, 8));
		cJSON_AddNumberToObject(m, "max_output_tokens", (double)sqlite3_column_int64(st, 7));
		price = cJSON_AddObjectToObject(m, "pricing");
		add_price(price, "input", sqlite3_column_int64(st, 4));
		add_price(price, "cached_input", sqlite3_column_int64(st, 5));
		add_price(price, "output", sqlite3_column_int64(st, 6));
		cJSON_AddStringToObject(price, "unit", "credits per 1M tokens");
		cJSON_AddItemToArray(data, m);
	}
	db_done(st);
	rc = resp_json(r, 200, root);
	cJSON_Delete(root);
	return rc;
}

/* Enabled providers with their model counts; never URLs or keys. */
int gw_providers(tg_req_t *r)
{
	cJSON *root = cJSON_CreateObject(), *data;
	sqlite3_stmt *st;
	int rc;

	cJSON_AddStringToObject(root, "object", "list");
	data = cJSON_AddArrayToObject(root, "data");
	st = db_stmt("SELECT p.name, p.kind, (SELECT count(*) FROM models m WHERE m.provider_id = p.id"
		     " AND m.enabled = 1) FROM providers p WHERE p.enabled = 1 ORDER BY p.name");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		cJSON *p = cJSON_CreateObject();

		cJSON_AddStringToObject(p, "name", db_col_text(st, 0));
		cJSON_AddStringToObject(p, "kind", db_col_text(st, 1));
		cJSON_AddNumberToObject(p, "models", (double)sqlite3_column_int64(st, 2));
		cJSON_AddItemToArray(data, p);
	}
	db_done(st);
	rc = resp_json(r, 200, root);
	cJSON_Delete(root);
	return rc;
}
