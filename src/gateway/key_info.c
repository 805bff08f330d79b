/* key_info.c - GET /v1/key: the calling key's name, org, limits, spend in
 * the current period and what remains of it, and the org's balance (in the
 * spirit of OpenRouter's key endpoint). Amounts are exact decimal strings. */
#include <string.h>
#include <strings.h>

#include "apikeys/apikeys.h"
#include "core/timeutil.h"
#include "gateway/gw.h"
#include "billing/billing.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"

static void add_limit(cJSON *o, const char *name, int64_t v)
{
	if (v > 0)
		cJSON_AddNumberToObject(o, name, (double)v);
	else
		cJSON_AddNullToObject(o, name);
}

int gw_key_info(tg_req_t *r)
{
	const struct apikey *kp = &r->key->k;
	struct apikey k;
	struct org o;
	cJSON *root, *data, *lim, *models, *usage;
	char money[MONEY_FMT_LEN], m[APIKEY_MODELS_MAX];
	int64_t now = time_now(), since, spent, balance = 0;
	const char *p;
	int rc;

	memcpy(&k, kp, sizeof(k));
	root = cJSON_CreateObject();
	data = cJSON_AddObjectToObject(root, "data");
	cJSON_AddStringToObject(data, "name", k.name);
	cJSON_AddStringToObject(data, "prefix", k.prefix);
	cJSON_AddNumberToObject(data, "org_id", (double)k.org_id);
	cJSON_AddStringToObject(data, "org", org_get(k.org_id, &o) == TG_OK ? o.name : "");
	lim = cJSON_AddObjectToObject(data, "limits");
	add_limit(lim, "rpm", k.rpm);
	add_limit(lim, "tpm", k.tpm);
	if (k.spend_limit > 0) {
		money_format_short(k.spend_limit, money);
		cJSON_AddStringToObject(lim, "spend_limit", money);
	} else {
		cJSON_AddNullToObject(lim, "spend_limit");
	}
	cJSON_AddStringToObject(lim, "spend_period", apikey_period_name(k.period));
	models = cJSON_AddArrayToObject(lim, "allowed_models");
	for (p = k.allowed_models; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		memcpy(m, p, len);
		m[len] = '\0';
		cJSON_AddItemToArray(models, cJSON_CreateString(m));
		p += len + (end ? 1 : 0);
	}
	add_limit(data, "expires_at", k.expires_at);
	cJSON_AddNumberToObject(data, "created_at", (double)k.created_at);

	/* Spend in the current period (the whole life of the key without one),
	 * including the caller's calls whose debits are still in the journal. */
	since = k.period != PERIOD_NONE ? apikey_period_start(k.period, now) : 0;
	spent = billing()->key_spend(k.id, since);
	usage = cJSON_AddObjectToObject(data, "usage");
	money_format(spent, money);
	cJSON_AddStringToObject(usage, "spent", money);
	cJSON_AddNumberToObject(usage, "period_start", (double)since);
	if (k.spend_limit > 0 && k.period != PERIOD_NONE) {
		money_format(k.spend_limit > spent ? k.spend_limit - spent : 0, money);
		cJSON_AddStringToObject(usage, "limit_remaining", money);
	} else {
		cJSON_AddNullToObject(usage, "limit_remaining");
	}
	if (billing()->balance(k.org_id, &balance) == TG_OK) {
		money_format(balance, money);
		cJSON_AddStringToObject(data, "org_balance", money);
	}
	rc = resp_json(r, 200, root);
	cJSON_Delete(root);
	return rc;
}
