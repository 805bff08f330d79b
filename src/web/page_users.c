/* page_users.c - instance admin: list, create, disable and enable users. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys/apikeys.h"
#include "store/db.h"
#include "web/web.h"

static int users_render(tg_req_t *r, int status, const char *email, const char *name,
			const char *error)
{
	cJSON *d = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(d, "users"), *form;
	tg_stmt *st = db_stmt(
		"SELECT id, name, email, is_admin, disabled_at IS NOT NULL, created_at"
		" FROM users ORDER BY email LIMIT 5000");

	while (st && db_step(st) == DB_ROW) {
		cJSON *u = cJSON_CreateObject();
		int64_t id = db_col_int64(st, 0);

		cJSON_AddNumberToObject(u, "id", (double)id);
		cJSON_AddStringToObject(u, "name", *db_col_text(st, 1) ? db_col_text(st, 1) : "—");
		cJSON_AddStringToObject(u, "email", db_col_text(st, 2));
		cJSON_AddBoolToObject(u, "is_admin", db_col_int(st, 3));
		cJSON_AddBoolToObject(u, "disabled", db_col_int(st, 4));
		cJSON_AddBoolToObject(u, "self", id == r->session->user.id);
		web_add_time(u, "created", db_col_int64(st, 5));
		cJSON_AddItemToArray(list, u);
	}
	db_done(st);
	form = cJSON_AddObjectToObject(d, "form");
	cJSON_AddStringToObject(form, "email", email ? email : "");
	cJSON_AddStringToObject(form, "name", name ? name : "");
	web_flash_now(d, "error", error);
	return web_render(r, status, "users", d);
}

int page_users(tg_req_t *r)
{
	return users_render(r, 200, NULL, NULL, NULL);
}

int page_users_create(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	char *email = req_post(r, "email"), *name = req_post(r, "name");
	char *password = req_post(r, "password"), *admin = req_post(r, "admin"), msg[300];
	const char *why = NULL;
	int64_t id;
	int rc, is_admin = admin && strcmp(admin, "1") == 0;

	if (user_create(email ? email : "", name, password ? password : "", is_admin, 1, &id,
			&why)) {
		rc = users_render(r, 422, email, name, why);
		goto out;
	}
	audit_add(&a, 0, "user.create", email, is_admin ? "instance admin" : "");
	snprintf(msg, sizeof(msg),
		 "Created %s. They must change the temporary password at first sign-in.", email);
	rc = web_redirect_flash(r, "/users", "ok", msg);
out:
	free(email);
	free(name);
	free(admin);
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	return rc;
}

static int set_disabled(tg_req_t *r, int disabled)
{
	struct audit_actor a = web_actor(r);
	int64_t id = web_param_id(r, 0);
	struct user u;

	if (!id || user_get(id, &u) != TG_OK)
		return web_not_found(r);
	if (id == r->session->user.id)
		return web_redirect_flash(r, "/users", "error", "You cannot disable yourself.");
	if (user_set_disabled(id, disabled))
		return web_redirect_flash(r, "/users", "error", "Could not change the user.");
	if (disabled)
		apikey_revoke_user(0, id, NULL);
	audit_add(&a, 0, disabled ? "user.disable" : "user.enable", u.email,
		  disabled ? "signed out; API keys revoked" : "");
	return web_redirect_flash(r, "/users", "ok",
				  disabled ?
					  "User disabled, signed out, and their API keys revoked." :
					  "User enabled.");
}

int page_user_disable(tg_req_t *r)
{
	return set_disabled(r, 1);
}

int page_user_enable(tg_req_t *r)
{
	return set_disabled(r, 0);
}
