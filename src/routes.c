/* routes.c - THE route table: every URL the server answers, its method,
 * handler and who may call it. Authorization by level happens here, before
 * any handler runs; handlers then check finer rules (org roles) first thing.
 */
#include "routes.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "gateway/gw.h"
#include "gateway/routing.h"
#include "metrics_page.h"
#include "store/db.h"
#include "web/web.h"

static int health(tg_req_t *r)
{
	cJSON *j = cJSON_CreateObject();
	int ok = db_healthy(), rc;

	cJSON_AddStringToObject(j, "status", ok ? "ok" : "unavailable");
	cJSON_AddStringToObject(j, "version", TG_VERSION);
	cJSON_AddStringToObject(j, "db", ok ? "ok" : "error");
	rc = resp_json(r, ok ? 200 : 503, j);
	cJSON_Delete(j);
	return rc;
}

/* Deployment health for the catalog pages, from the gateway's routing
 * (web/ and gateway/ do not include each other; this file knows both). */
static void health_copy(const struct route_health *h, struct web_health *out)
{
	out->provider_id = h->provider_id;
	out->failures = h->failures;
	out->cooling_for_ms = h->cooling_for_ms;
	out->ok_total = h->ok_total;
	out->failed_total = h->failed_total;
}

struct health_walk {
	void (*fn)(void *ud, const struct web_health *h);
	void *ud;
};

static void health_step(void *ud, const struct route_health *h)
{
	struct health_walk *w = ud;
	struct web_health wh;

	health_copy(h, &wh);
	w->fn(w->ud, &wh);
}

static void health_each(void (*fn)(void *ud, const struct web_health *h), void *ud)
{
	struct health_walk w = { fn, ud };

	routing_each(health_step, &w);
}

static void health_of(int64_t model_id, int64_t deployment_id, int64_t provider_id,
		      const char *upstream_model, struct web_health *out)
{
	struct route_health h;

	routing_health_of(model_id, deployment_id, provider_id, upstream_model, &h);
	health_copy(&h, out);
}

static const struct web_health_src route_health_src = { health_each, health_of };

static int providers(tg_req_t *r)
{
	return page_providers(r, &route_health_src);
}

static int providers_save(tg_req_t *r)
{
	return page_providers_save(r, &route_health_src);
}

static int provider_test(tg_req_t *r)
{
	return page_provider_test(r, &route_health_src);
}

static int pricing_edit(tg_req_t *r)
{
	return page_pricing_edit(r, &route_health_src);
}

static int pricing_save(tg_req_t *r)
{
	return page_pricing_save(r, &route_health_src);
}

static int deployment_save(tg_req_t *r)
{
	return page_deployment_save(r, &route_health_src);
}

const struct route tg_routes[] = {
	{ "GET", "/health", health, AUTH_PUBLIC },

	/* Dashboard: signing in */
	{ "GET", "/setup", page_setup_get, AUTH_PUBLIC },
	{ "POST", "/setup", page_setup_post, AUTH_PUBLIC },
	{ "GET", "/login", page_login_get, AUTH_PUBLIC },
	{ "POST", "/login", page_login_post, AUTH_PUBLIC },
	{ "POST", "/logout", page_logout_post, AUTH_SESSION },

	/* Dashboard: identity and access */
	{ "GET", "/", page_overview, AUTH_SESSION },
	{ "POST", "/switch-org", page_switch_org, AUTH_SESSION },
	{ "GET", "/orgs", page_orgs, AUTH_SESSION },
	{ "POST", "/orgs", page_orgs_create, AUTH_ADMIN },
	{ "GET", "/orgs/:id", page_org, AUTH_SESSION },
	{ "POST", "/orgs/:id/members", page_org_member_add, AUTH_SESSION },
	{ "POST", "/orgs/:id/members/:uid/role", page_org_member_role, AUTH_SESSION },
	{ "POST", "/orgs/:id/members/:uid/remove", page_org_member_remove, AUTH_SESSION },
	{ "GET", "/users", page_users, AUTH_ADMIN },
	{ "POST", "/users", page_users_create, AUTH_ADMIN },
	{ "POST", "/users/:id/disable", page_user_disable, AUTH_ADMIN },
	{ "POST", "/users/:id/enable", page_user_enable, AUTH_ADMIN },
	{ "GET", "/account", page_account, AUTH_SESSION },
	{ "POST", "/account/password", page_account_password, AUTH_SESSION },
	{ "POST", "/account/logout-all", page_account_logout_all, AUTH_SESSION },
	{ "GET", "/audit", page_audit, AUTH_SESSION },

	/* --- API keys (web/page_keys.c) --- */
	{ "GET", "/keys", page_keys, AUTH_SESSION },
	{ "POST", "/keys", page_keys_create, AUTH_SESSION },
	{ "GET", "/keys/new", page_keys_new, AUTH_SESSION },
	{ "GET", "/keys/:id", page_key, AUTH_SESSION },
	{ "POST", "/keys/:id/limits", page_key_limits, AUTH_SESSION },
	{ "POST", "/keys/:id/revoke", page_key_revoke, AUTH_SESSION },
	{ "POST", "/keys/:id/rotate", page_key_rotate, AUTH_SESSION },
	/* --- end API keys --- */

	/* --- credits and redemption codes (web/page_credits.c) --- */
	{ "GET", "/credits", page_credits, AUTH_SESSION },
	{ "GET", "/credits.csv", page_credits_csv, AUTH_SESSION },
	{ "POST", "/credits/grant", page_credits_grant, AUTH_ADMIN },
	{ "POST", "/credits/redeem", page_credits_redeem, AUTH_SESSION },
	{ "GET", "/codes", page_codes, AUTH_ADMIN },
	{ "POST", "/codes", page_codes_create, AUTH_ADMIN },
	/* --- end credits --- */

	/* --- providers and pricing (web/page_catalog.c) --- */
	{ "GET", "/providers", providers, AUTH_ADMIN },
	{ "POST", "/providers", providers_save, AUTH_ADMIN },
	{ "GET", "/providers/:id", page_provider_edit, AUTH_ADMIN },
	{ "POST", "/providers/:id/test", provider_test, AUTH_ADMIN },
	{ "GET", "/pricing", page_pricing, AUTH_SESSION },
	{ "POST", "/pricing", pricing_save, AUTH_ADMIN },
	{ "GET", "/pricing/:id", pricing_edit, AUTH_ADMIN },
	{ "POST", "/pricing/:id/deployments", deployment_save, AUTH_ADMIN },
	{ "POST", "/pricing/:id/deployments/:did/delete", page_deployment_delete, AUTH_ADMIN },
	/* --- end providers and pricing --- */

	/* --- usage, request log and overview (web/page_usage.c) --- */
	{ "GET", "/usage", page_usage, AUTH_SESSION },
	{ "GET", "/usage.csv", page_usage_csv, AUTH_SESSION },
	{ "GET", "/requests", page_requests, AUTH_SESSION },
	{ "GET", "/requests/:id", page_request, AUTH_SESSION },
	/* --- end usage --- */

	/* --- budget alerts (web/page_alerts.c) --- */
	{ "GET", "/alerts", page_alerts, AUTH_SESSION },
	{ "POST", "/alerts/balance", page_alerts_balance, AUTH_SESSION },
	{ "POST", "/alerts/keys", page_alerts_key, AUTH_SESSION },
	{ "POST", "/alerts/keys/:id/remove", page_alerts_key_remove, AUTH_SESSION },
	{ "POST", "/alerts/webhook", page_alerts_webhook, AUTH_SESSION },
	{ "POST", "/alerts/webhook/rotate", page_alerts_webhook_rotate, AUTH_SESSION },
	{ "POST", "/alerts/webhook/remove", page_alerts_webhook_remove, AUTH_SESSION },
	/* --- end budget alerts --- */

	/* --- metrics (metrics_page.c) --- */
	{ "GET", "/metrics", page_metrics, AUTH_PUBLIC },
	/* --- end metrics --- */

	/* --- gateway (gateway/) --- */
	{ "POST", "/v1/chat/completions", gw_chat_completions, AUTH_APIKEY },
	{ "POST", "/v1/embeddings", gw_embeddings, AUTH_APIKEY },
	{ "GET", "/v1/models", gw_models, AUTH_APIKEY },
	{ "GET", "/v1/providers", gw_providers, AUTH_APIKEY },
	{ "GET", "/v1/key", gw_key_info, AUTH_APIKEY },
	/* --- end gateway --- */
};
const size_t tg_routes_count = TG_ARRAY_LEN(tg_routes);

int routes_authorize(tg_req_t *r, const struct route *route)
{
	switch (route->auth) {
	case AUTH_PUBLIC:
		return TG_OK;
	case AUTH_SESSION:
		return web_authenticate(r, 0);
	case AUTH_ADMIN:
		return web_authenticate(r, 1);
	case AUTH_APIKEY:
		return gw_authenticate(r);
	default:
		resp_error(r, 401, "invalid_request_error", "unauthorized", "Sign in first.");
		return TG_EPERM;
	}
}
