/* page_account.c - change password, sign out everywhere. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"
#include "web/web.h"

int page_account(tg_req_t *r)
{
	cJSON *d = cJSON_CreateObject();
	tg_stmt *st = db_stmt("SELECT count(*) FROM sessions WHERE user_id = :user");
	int64_t n = 1;

	if (st && !db_bind_int64(st, ":user", r->session->user.id) && db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	cJSON_AddNumberToObject(d, "session_count", (double)n);
	return web_render(r, 200, "account", d);
}

int page_account_password(tg_req_t *r)
{
	struct web_session *s = r->session;
	struct audit_actor a = web_actor(r);
	char *cur = req_post(r, "current"), *pw = req_post(r, "password");
	const char *why = "Could not change the password.";
	struct user u;
	int rc;

	if (!cur || user_check_password(s->user.email, cur, &u) != TG_OK) {
		rc = web_redirect_flash(r, "/account", "error",
					"The current password is incorrect.");
		goto out;
	}
	if (pw && strcmp(pw, cur) == 0) {
		rc = web_redirect_flash(r, "/account", "error",
					"The new password must differ from the current one.");
		goto out;
	}
	if (user_set_password(s->user.id, pw ? pw : "", &why)) {
		rc = web_redirect_flash(r, "/account", "error", why);
		goto out;
	}
	session_delete_user(s->user.id, s->row.id);
	audit_add(&a, 0, "user.password", s->user.email, "other sessions signed out");
	rc = web_redirect_flash(r, "/", "ok", "Password changed. Other sessions were signed out.");
out:
	if (cur) {
		sodium_memzero(cur, strlen(cur));
		free(cur);
	}
	if (pw) {
		sodium_memzero(pw, strlen(pw));
		free(pw);
	}
	return rc;
}

int page_account_logout_all(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);

	session_delete_user(r->session->user.id, 0);
	audit_add(&a, 0, "user.logout_all", r->session->user.email, "");
	web_set_cookie(r, "tg_session", "", 0);
	return resp_redirect(r, "/login");
}
