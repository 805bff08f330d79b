/* web.h - the dashboard framework shared by the page files (web/page_*.c):
 * session authentication, CSRF, flash messages, org scoping and rendering
 * through the layout. Pages include this and never the gateway's headers.
 */
#ifndef TG_WEB_H
#define TG_WEB_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "crypto/secrets.h"
#include "http/http.h"
#include "identity/identity.h"

#define WEB_PAGE_SIZE 50

struct web_session {
	struct session_row row;
	struct user user;
	struct org org; /* the org being viewed; org.id == 0 when none */
	enum role role; /* effective role there (instance admins count as owner) */
	char csrf[44];
};

/* Load templates from cfg->assets_dir and keep the secrets used for CSRF.
 * cfg is borrowed: it must outlive serving (until web_shutdown). */
int web_init(const tg_config_t *cfg, const tg_secrets_t *secrets, char *err, size_t errlen);
void web_shutdown(void);
/* The configuration given to web_init (NULL before it), for the pages. */
const tg_config_t *web_config(void);

/* Per-thread guard for error pages: between begin and end, resp_error on
 * this thread sends the plain HTML page instead of rendering one in the
 * layout (used when the layout itself failed, so it is not re-entered).
 * begin returns the previous state to hand to end; nests. */
int web_plain_errors_begin(void);
void web_plain_errors_end(int prev);
/* 1 while this thread is inside begin/end. */
int web_plain_errors(void);

/* Called by the route table for AUTH_SESSION / AUTH_ADMIN routes: loads the
 * session from the cookie (or redirects to /login), checks CSRF and Origin on
 * POST (403 page), and for admin routes answers 404 to non-admins. */
int web_authenticate(tg_req_t *r, int admin_only);
/* For public forms (login, setup): CSRF bound to a pre-session cookie.
 * TG_OK to go on; otherwise the refusal (403, or the form's 4xx) was sent. */
int web_public_csrf_check(tg_req_t *r);

/* Render `page` inside the layout with `data` (consumed: freed here, even on
 * error) and send it with `status`. */
int web_render(tg_req_t *r, int status, const char *page, cJSON *data);
/* Redirect after a POST, with a message shown on the next page. kind is
 * "ok", "error" or "warn". */
int web_redirect_flash(tg_req_t *r, const char *location, const char *kind, const char *msg);
/* 404 page; the answer for anything the user may not see. */
int web_not_found(tg_req_t *r);

/* The user's effective role in org_id: instance admins get ROLE_OWNER,
 * non-members ROLE_NONE. */
enum role web_org_role(const tg_req_t *r, int64_t org_id);
/* Path parameter i as a positive id, or 0 when malformed. */
int64_t web_param_id(const tg_req_t *r, int i);
/* A positive id from text, or 0. */
int64_t web_parse_id(const char *s);
/* Who is acting, for audit entries. */
struct audit_actor web_actor(const tg_req_t *r);
/* Set-Cookie helper honouring TLS (Secure and the __Host- prefix). */
void web_set_cookie(tg_req_t *r, const char *name, const char *value, int max_age);
/* Name of the cookie on this connection (adds __Host- under TLS); out >= 64 bytes. */
void web_cookie_name(const tg_req_t *r, const char *base, char *out, size_t n);

/* Append s percent-encoded for a URL query value (unreserved characters kept). */
void web_urlencode(buf_t *b, const char *s);
/* Trim spaces, tabs and line ends around s in place; returns s (NULL-safe). */
char *web_trim(char *s);
/* Show a message on the page being rendered (not a redirect): page data
 * key "flash" with kind "ok" | "error" | "warn". msg NULL: nothing. */
void web_flash_now(cJSON *d, const char *kind, const char *msg);
/* A day "YYYY-MM-DD" (exactly) to its UTC midnight; TG_EINVAL otherwise. */
int web_parse_day(const char *s, int64_t *t);
/* The ?from= / ?to= day range of list and chart filters. A given day
 * replaces *from_t, and *to_t becomes the end of the "to" day (the whole day
 * is included); its text goes to from_txt / to_txt (24 bytes) for the form.
 * A bad day keeps the caller's default, blanks its text and sets *error.
 * Returns which days were given and valid: 1 = from, 2 = to. */
int web_day_range(const char *from, const char *to, char from_txt[24], char to_txt[24],
		  int64_t *from_t, int64_t *to_t, const char **error);
/* Small cJSON helpers for page data (money, counts: web/fmt.h). */
void web_add_time(cJSON *obj, const char *key, int64_t t);

/* CSV downloads, streamed: name the file (Content-Disposition), start the
 * stream (resp_stream_start), web_csv_init the buffer, append rows (fields
 * with web_csv_field, web/fmt.h) and call web_csv_flush after each one; it
 * writes the buffer out once it holds WEB_CSV_FLUSH bytes. web_csv_end sends
 * the rest when rc is TG_OK and frees the buffer; it returns rc or the
 * write's error. */
#define WEB_CSV_FLUSH 65536
void web_csv_attachment(tg_req_t *r, const char *filename);
void web_csv_init(buf_t *b);
int web_csv_flush(tg_req_t *r, buf_t *b);
int web_csv_end(tg_req_t *r, buf_t *b, int rc);

/* Page handlers, one file each (web/page_*.c). */
int page_setup_get(tg_req_t *r);
int page_setup_post(tg_req_t *r);
int page_login_get(tg_req_t *r);
int page_login_post(tg_req_t *r);
int page_logout_post(tg_req_t *r);
int page_overview(tg_req_t *r);
int page_switch_org(tg_req_t *r);
int page_orgs(tg_req_t *r);
int page_orgs_create(tg_req_t *r);
int page_org(tg_req_t *r);
int page_org_member_add(tg_req_t *r);
int page_org_member_role(tg_req_t *r);
int page_org_member_remove(tg_req_t *r);
int page_users(tg_req_t *r);
int page_users_create(tg_req_t *r);
int page_user_disable(tg_req_t *r);
int page_user_enable(tg_req_t *r);
int page_account(tg_req_t *r);
int page_account_password(tg_req_t *r);
int page_account_logout_all(tg_req_t *r);
int page_audit(tg_req_t *r);

/* --- API keys (web/page_keys.c) --- */
int page_keys(tg_req_t *r);
int page_keys_new(tg_req_t *r);
int page_keys_create(tg_req_t *r);
int page_key(tg_req_t *r);
int page_key_limits(tg_req_t *r);
int page_key_revoke(tg_req_t *r);
int page_key_rotate(tg_req_t *r);
/* --- end API keys --- */

/* --- credits and redemption codes (web/page_credits.c) --- */
int page_credits(tg_req_t *r);
int page_credits_csv(tg_req_t *r);
int page_credits_grant(tg_req_t *r);
int page_credits_redeem(tg_req_t *r);
int page_codes(tg_req_t *r);
int page_codes_create(tg_req_t *r);
/* --- end credits --- */

/* --- usage and the spend chart (web/page_usage.c) --- */
int page_usage(tg_req_t *r);
int page_usage_csv(tg_req_t *r);
/* A spend-per-day chart over the last `days` days as data for the
 * "partials/chart" template (caller frees; NULL when out of memory): the org,
 * one key of it (key_id), or only the keys user_id created (user_id 0: all). */
cJSON *web_usage_chart(int64_t org_id, int64_t key_id, int64_t user_id, int days);
/* --- end usage --- */

/* --- the request log (web/page_requests.c) --- */
int page_requests(tg_req_t *r);
int page_request(tg_req_t *r);
/* Append the newest `limit` request rows of the org (or of user_id's keys)
 * to list, as the request log shows them. Returns the count or TG_EDB. */
int web_recent_requests(cJSON *list, int64_t org_id, int64_t user_id, int limit);
/* --- end request log --- */

/* --- budget alerts (web/page_alerts.c) --- */
int page_alerts(tg_req_t *r);
int page_alerts_balance(tg_req_t *r);
int page_alerts_key(tg_req_t *r);
int page_alerts_key_remove(tg_req_t *r);
int page_alerts_webhook(tg_req_t *r);
int page_alerts_webhook_rotate(tg_req_t *r);
int page_alerts_webhook_remove(tg_req_t *r);
/* From add_layout(): the `budget_alert` banner while a threshold's condition
 * holds, and the "Alerts" navigation entry for org admins. */
void web_alerts_layout(tg_req_t *r, cJSON *data);
/* --- end budget alerts --- */

/* --- providers and pricing (web/page_catalog.c) --- */
/* The health of a model's deployments in this process (failures in a row,
 * cooldown), as these pages show it. web/ does not include gateway/: the
 * route table (routes.c) reads it from the gateway's routing and hands it
 * to the handlers that show it. */
struct web_health {
	int64_t provider_id;
	int64_t failures;       /* in a row */
	int64_t cooling_for_ms; /* > 0 while cooling down */
	uint64_t ok_total, failed_total;
};
struct web_health_src {
	/* fn once for each deployment this process has tried */
	void (*each)(void (*fn)(void *ud, const struct web_health *h), void *ud);
	/* one deployment (deployment_id 0: the model's own); zeros when never tried */
	void (*of)(int64_t model_id, int64_t deployment_id, int64_t provider_id,
		   const char *upstream_model, struct web_health *out);
};
int page_providers(tg_req_t *r, const struct web_health_src *hs);
int page_provider_edit(tg_req_t *r);
int page_providers_save(tg_req_t *r, const struct web_health_src *hs);
int page_provider_test(tg_req_t *r, const struct web_health_src *hs);
int page_pricing(tg_req_t *r);
int page_pricing_edit(tg_req_t *r, const struct web_health_src *hs);
int page_pricing_save(tg_req_t *r, const struct web_health_src *hs);
/* POST /pricing/:id/deployments (add or update one by provider and upstream
 * model) and /pricing/:id/deployments/:did/delete. */
int page_deployment_save(tg_req_t *r, const struct web_health_src *hs);
int page_deployment_delete(tg_req_t *r);
/* --- end providers and pricing --- */

#endif
