/* page_auth.c - first-run setup, sign in and sign out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"
#include "http/ipthrottle.h"
#include "http/server.h"
#include "web/web.h"

/* Start a fresh session for user u (new token: no fixation) and go to next. */
static int start_session(tg_req_t *r, const struct user *u, const char *next)
{
	const tg_config_t *cfg = web_config();
	struct session_row row;
	char token[44];
	char *old = NULL, name[64];

	/* A session cookie brought to the login form is dropped server-side. */
	web_cookie_name(r, "tg_session", name, sizeof(name));
	old = req_cookie(r, name);
	if (old) {
		struct session_row prev;

		if (session_lookup(old, cfg->session_idle_s, &prev) == TG_OK)
			session_delete(prev.id);
		free(old);
	}
	if (session_create(u->id, membership_first_org(u->id), cfg->session_absolute_s, req_ip(r),
			   token, &row))
		return resp_error(r, 500, "server_error", NULL, "Could not start a session.");
	web_set_cookie(r, "tg_session", token, -1);
	return resp_redirect(r, next && next[0] == '/' && next[1] != '/' ? next : "/");
}

int page_setup_get(tg_req_t *r)
{
	char *token = req_query(r, "token");
	cJSON *d;
	int rc;

	if (user_count() != 0 || setup_token_check(token) != TG_OK) {
		free(token);
		return resp_error(
			r, 404, "invalid_request_error", "not_found",
			"This setup link is invalid or was already used. Sign in instead.");
	}
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "token", token);
	free(token);
	rc = web_render(r, 200, "setup", d);
	return rc;
}

int page_setup_post(tg_req_t *r)
{
	char *token = NULL, *email = NULL, *name = NULL, *password = NULL;
	struct audit_actor actor = { 0, "setup", req_ip(r) };
	const char *why = NULL;
	struct user u;
	int64_t id;
	cJSON *d;
	int rc;

	if (web_public_csrf_check(r))
		return TG_OK; /* refused, and answered */
	token = req_post(r, "token");
	email = req_post(r, "email");
	name = req_post(r, "name");
	password = req_post(r, "password");
	if (user_count() != 0 || setup_token_check(token) != TG_OK) {
		rc = resp_error(r, 404, "invalid_request_error", "not_found",
				"This setup link is invalid or was already used. Sign in instead.");
		goto out;
	}
	if (db_begin()) {
		rc = resp_error(r, 503, "server_error", NULL, "The database is busy; try again.");
		goto out;
	}
	rc = setup_token_consume(token);
	if (rc == TG_OK)
		rc = user_create(email ? email : "", name, password ? password : "", 1, 0, &id,
				 &why);
	if (rc) {
		db_rollback();
		if (!why)
			why = "This setup link was already used.";
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "token", token ? token : "");
		cJSON_AddStringToObject(d, "email", email ? email : "");
		cJSON_AddStringToObject(d, "name", name ? name : "");
		cJSON_AddStringToObject(d, "error", why);
		rc = web_render(r, 422, "setup", d);
		goto out;
	}
	actor.label = email;
	actor.user_id = id;
	audit_add(&actor, 0, "user.setup", email, "first instance administrator");
	if (db_commit() || user_get(id, &u)) {
		rc = resp_error(r, 500, "server_error", NULL, "Could not save the administrator.");
		goto out;
	}
	log_info("first administrator created (user %lld)", (long long)id);
	rc = start_session(r, &u, "/");
out:
	free(token);
	free(email);
	free(name);
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	return rc;
}

int page_login_get(tg_req_t *r)
{
	char *next = req_query(r, "next");
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "next", next ? next : "");
	free(next);
	return web_render(r, 200, "login", d);
}

static int login_fail(tg_req_t *r, int status, const char *email, const char *next, const char *msg)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "email", email ? email : "");
	cJSON_AddStringToObject(d, "next", next ? next : "");
	cJSON_AddStringToObject(d, "error", msg);
	return web_render(r, status, "login", d);
}

int page_login_post(tg_req_t *r)
{
	char *email = NULL, *password = NULL, *next = NULL, msg[160];
	struct audit_actor actor = { 0, "", req_ip(r) };
	struct ipthrottle *ip_throttle = server_throttle(THROTTLE_LOGIN);
	struct user u;
	int64_t wait;
	int rc;

	if (web_public_csrf_check(r))
		return TG_OK; /* refused, and answered */
	email = req_post(r, "email");
	password = req_post(r, "password");
	next = req_post(r, "next");
	if (!email || !*email || !password || !*password || strlen(email) > ID_EMAIL_MAX ||
	    strlen(password) > 1024) {
		rc = login_fail(r, 400, email, next, "Enter your email and password.");
		goto out;
	}
	actor.label = email;
	/* Per address first (in memory, per process; http/ipthrottle.h): a blocked
	 * address is refused whatever the email, before any password check. */
	if (ipthrottle_blocked(ip_throttle, req_ip(r), time_mono_us() / 1000, &wait)) {
		char v[24];

		wait = (wait + 999) / 1000;
		snprintf(v, sizeof(v), "%lld", (long long)wait);
		resp_header(r, "Retry-After", v);
		snprintf(msg, sizeof(msg),
			 "Too many failed sign-in attempts. Try again in %lld seconds.",
			 (long long)wait);
		rc = login_fail(r, 429, email, next, msg);
		goto out;
	}
	wait = throttle_wait(email);
	if (wait > 0) {
		snprintf(msg, sizeof(msg),
			 "Too many failed sign-in attempts. Try again in %lld seconds.",
			 (long long)wait);
		audit_add(&actor, 0, "login.throttled", email, "");
		rc = login_fail(r, 429, email, next, msg);
		goto out;
	}
	if (user_check_password(email, password, &u) != TG_OK) {
		throttle_fail(email);
		if (ipthrottle_fail(ip_throttle, req_ip(r), time_mono_us() / 1000)) {
			char detail[96];

			snprintf(detail, sizeof(detail), "%lld failed sign-ins; blocked for %lld s",
				 (long long)ipthrottle_limit(ip_throttle),
				 (long long)(ipthrottle_window_ms(ip_throttle) / 1000));
			audit_add(&actor, 0, "login.ip_blocked", req_ip(r), detail);
			log_warn("sign-in: %s blocked: %s", req_ip(r), detail);
		}
		audit_add(&actor, 0, "login.failed", email, "");
		rc = login_fail(r, 401, email, next, "Email or password is incorrect.");
		goto out;
	}
	throttle_clear(email);
	actor.user_id = u.id;
	audit_add(&actor, 0, "login.ok", email, "");
	rc = start_session(r, &u, next);
out:
	free(email);
	free(next);
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	return rc;
}

int page_logout_post(tg_req_t *r)
{
	session_delete(r->session->row.id);
	web_set_cookie(r, "tg_session", "", 0);
	return resp_redirect(r, "/login");
}
