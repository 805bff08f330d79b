/* page_orgs.c - organizations: list, create, detail with members and roles. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys/apikeys.h"
#include "store/db.h"
#include "web/web.h"

static int orgs_render(tg_req_t *r, int status, const char *form_name, const char *error)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(d, "orgs");
	tg_stmt *st;

	/* Instance admins see every org; everyone else only their own. */
	st = db_stmt("SELECT o.id, o.name, o.created_at, coalesce(m.role, ''),"
		     " (SELECT count(*) FROM memberships x WHERE x.org_id = o.id)"
		     " FROM orgs o LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = :user"
		     " WHERE :admin <> 0 OR m.user_id IS NOT NULL ORDER BY o.name LIMIT 1000");
	if (st && !db_bind_int64(st, ":user", s->user.id) &&
	    !db_bind_int64(st, ":admin", s->user.is_admin)) {
		while (db_step(st) == DB_ROW) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddNumberToObject(o, "id", (double)db_col_int64(st, 0));
			cJSON_AddStringToObject(o, "name", db_col_text(st, 1));
			web_add_time(o, "created", db_col_int64(st, 2));
			cJSON_AddStringToObject(o, "role", db_col_text(st, 3));
			cJSON_AddNumberToObject(o, "members", (double)db_col_int64(st, 4));
			cJSON_AddItemToArray(list, o);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_orgs", cJSON_GetArraySize(list) > 0);
	if (form_name)
		cJSON_AddStringToObject(d, "form_name", form_name);
	web_flash_now(d, "error", error);
	return web_render(r, status, "orgs", d);
}

int page_orgs(tg_req_t *r)
{
	return orgs_render(r, 200, NULL, NULL);
}

int page_orgs_create(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	char *name = req_post(r, "name"), why[160], loc[64];
	int64_t id;
	int rc;

	if (!r->session->user.is_admin) {
		free(name);
		return web_not_found(r);
	}
	if (org_create(name ? name : "", &id, why, sizeof(why))) {
		rc = orgs_render(r, 422, name, why);
		free(name);
		return rc;
	}
	audit_add(&a, id, "org.create", name, "");
	/* The creator owns the org unless it is an admin creating it for others. */
	free(name);
	snprintf(loc, sizeof(loc), "/orgs/%lld", (long long)id);
	return web_redirect_flash(r, loc, "ok", "Organization created. Add its first owner below.");
}

static int org_render(tg_req_t *r, int status, const struct org *o, enum role my, const char *email,
		      const char *name, const char *error)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject(), *jo, *members, *form;
	tg_stmt *st;
	int can_manage = my >= ROLE_ADMIN;

	jo = cJSON_AddObjectToObject(d, "org");
	cJSON_AddNumberToObject(jo, "id", (double)o->id);
	cJSON_AddStringToObject(jo, "name", o->name);
	cJSON_AddStringToObject(d, "my_role",
				s->user.is_admin &&
						membership_role(o->id, s->user.id) == ROLE_NONE ?
					"instance admin" :
					role_name(my));
	cJSON_AddBoolToObject(d, "can_manage", can_manage);
	cJSON_AddBoolToObject(d, "is_owner", my == ROLE_OWNER);
	members = cJSON_AddArrayToObject(d, "members");
	st = db_stmt(
		"SELECT u.id, u.name, u.email, m.role, u.disabled_at IS NOT NULL"
		" FROM memberships m JOIN users u ON u.id = m.user_id"
		" WHERE m.org_id = :org ORDER BY m.role = 'owner' DESC, m.role = 'admin' DESC, "
		"u.email"
		" LIMIT 1000");
	if (st && !db_bind_int64(st, ":org", o->id)) {
		while (db_step(st) == DB_ROW) {
			cJSON *m = cJSON_CreateObject(), *roles;
			const char *role = db_col_text(st, 3);
			static const char *const all[] = { "member", "admin", "owner" };
			size_t i;

			cJSON_AddNumberToObject(m, "user_id", (double)db_col_int64(st, 0));
			cJSON_AddStringToObject(m, "name",
						*db_col_text(st, 1) ? db_col_text(st, 1) : "—");
			cJSON_AddStringToObject(m, "email", db_col_text(st, 2));
			cJSON_AddStringToObject(m, "role", role);
			cJSON_AddBoolToObject(m, "is_owner", strcmp(role, "owner") == 0);
			cJSON_AddBoolToObject(m, "disabled", db_col_int(st, 4));
			roles = cJSON_AddArrayToObject(m, "roles");
			for (i = 0; i < 3; i++) {
				cJSON *x;

				/* Only owners may make or unmake owners. */
				if (my != ROLE_OWNER && (i == 2 || strcmp(role, "owner") == 0) &&
				    strcmp(role, all[i]) != 0)
					continue;
				x = cJSON_CreateObject();
				cJSON_AddStringToObject(x, "value", all[i]);
				cJSON_AddBoolToObject(x, "selected", strcmp(role, all[i]) == 0);
				cJSON_AddItemToArray(roles, x);
			}
			cJSON_AddItemToArray(members, m);
		}
	}
	db_done(st);
	form = cJSON_AddObjectToObject(d, "form");
	cJSON_AddStringToObject(form, "email", email ? email : "");
	cJSON_AddStringToObject(form, "name", name ? name : "");
	web_flash_now(d, "error", error);
	cJSON_AddItemToObject(d, "spend_chart",
			      web_usage_chart(o->id, 0, my >= ROLE_ADMIN ? 0 : s->user.id, 30));
	return web_render(r, status, "org", d);
}

/* Load the org in the path if the user may see it; 404 otherwise. */
static int load_org(tg_req_t *r, struct org *o, enum role *my)
{
	int64_t id = web_param_id(r, 0);

	*my = id ? web_org_role(r, id) : ROLE_NONE;
	if (*my == ROLE_NONE || org_get(id, o) != TG_OK) {
		web_not_found(r);
		return TG_ENOTFOUND;
	}
	return TG_OK;
}

int page_org(tg_req_t *r)
{
	struct org o;
	enum role my;

	if (load_org(r, &o, &my))
		return TG_OK;
	return org_render(r, 200, &o, my, NULL, NULL, NULL);
}

static void org_path(const struct org *o, char *out, size_t n)
{
	snprintf(out, n, "/orgs/%lld", (long long)o->id);
}

int page_org_member_add(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	char *email = NULL, *name = NULL, *password = NULL, *role_s = NULL, loc[64], msg[400];
	const char *why = NULL;
	struct org o;
	struct user u;
	enum role my, role;
	int64_t uid;
	int rc;

	if (load_org(r, &o, &my))
		return TG_OK;
	if (my < ROLE_ADMIN)
		return web_not_found(r);
	email = req_post(r, "email");
	name = req_post(r, "name");
	password = req_post(r, "password");
	role_s = req_post(r, "role");
	role = role_parse(role_s);
	if (role == ROLE_NONE) {
		rc = org_render(r, 422, &o, my, email, name,
				"Choose a role: member, admin or owner.");
		goto out;
	}
	if (role == ROLE_OWNER && my != ROLE_OWNER) {
		rc = org_render(r, 403, &o, my, email, name, "Only owners can add owners.");
		goto out;
	}
	if (user_get_by_email(email ? email : "", &u) == TG_OK) {
		uid = u.id;
		if (membership_role(o.id, uid) != ROLE_NONE) {
			rc = org_render(
				r, 409, &o, my, email, name,
				"This user is already a member; change their role in the table.");
			goto out;
		}
	} else {
		if (!password || !*password) {
			rc = org_render(
				r, 422, &o, my, email, name,
				"No user has this email. Give a temporary password to create one.");
			goto out;
		}
		if (user_create(email ? email : "", name, password, 0, 1, &uid, &why)) {
			rc = org_render(r, 422, &o, my, email, name, why);
			goto out;
		}
		audit_add(&a, o.id, "user.create", email, "created when added to the organization");
	}
	if (membership_set(o.id, uid, role)) {
		rc = org_render(r, 500, &o, my, email, name, "Could not add the member.");
		goto out;
	}
	audit_add(&a, o.id, "member.add", email, role_name(role));
	org_path(&o, loc, sizeof(loc));
	snprintf(msg, sizeof(msg), "Added %s as %s.", email, role_name(role));
	rc = web_redirect_flash(r, loc, "ok", msg);
out:
	free(email);
	free(name);
	free(role_s);
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	return rc;
}

int page_org_member_role(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	char *role_s, loc[64], detail[64];
	struct org o;
	struct user u;
	enum role my, role, cur;
	int64_t uid = web_param_id(r, 1);
	int rc;

	if (load_org(r, &o, &my))
		return TG_OK;
	if (my < ROLE_ADMIN || !uid || user_get(uid, &u) != TG_OK)
		return web_not_found(r);
	role_s = req_post(r, "role");
	role = role_parse(role_s);
	free(role_s);
	cur = membership_role(o.id, uid);
	org_path(&o, loc, sizeof(loc));
	if (cur == ROLE_NONE)
		return web_not_found(r);
	if (role == ROLE_NONE)
		return web_redirect_flash(r, loc, "error",
					  "Choose a role: member, admin or owner.");
	if ((role == ROLE_OWNER || cur == ROLE_OWNER) && my != ROLE_OWNER)
		return web_redirect_flash(r, loc, "error",
					  "Only owners can make or change owners.");
	rc = membership_set(o.id, uid, role);
	if (rc == TG_ECONFLICT)
		return web_redirect_flash(
			r, loc, "error",
			"An organization needs at least one owner. Make someone else "
			"owner first.");
	if (rc)
		return web_redirect_flash(r, loc, "error", "Could not change the role.");
	snprintf(detail, sizeof(detail), "%s -> %s", role_name(cur), role_name(role));
	audit_add(&a, o.id, "member.role", u.email, detail);
	return web_redirect_flash(r, loc, "ok", "Role changed.");
}

int page_org_member_remove(tg_req_t *r)
{
	struct audit_actor a = web_actor(r);
	char loc[64];
	struct org o;
	struct user u;
	enum role my, cur;
	int64_t uid = web_param_id(r, 1);
	int rc;

	if (load_org(r, &o, &my))
		return TG_OK;
	if (my < ROLE_ADMIN || !uid || user_get(uid, &u) != TG_OK)
		return web_not_found(r);
	cur = membership_role(o.id, uid);
	org_path(&o, loc, sizeof(loc));
	if (cur == ROLE_OWNER && my != ROLE_OWNER)
		return web_redirect_flash(r, loc, "error", "Only owners can remove owners.");
	rc = membership_remove(o.id, uid);
	if (rc == TG_ECONFLICT)
		return web_redirect_flash(r, loc, "error",
					  "This is the last owner. Make someone else owner first.");
	if (rc == TG_ENOTFOUND)
		return web_not_found(r);
	if (rc)
		return web_redirect_flash(r, loc, "error", "Could not remove the member.");
	{
		int64_t n = 0;
		char detail[96];

		apikey_revoke_user(o.id, uid, &n);
		snprintf(detail, sizeof(detail), "%s; %lld API key(s) revoked", role_name(cur),
			 (long long)n);
		audit_add(&a, o.id, "member.remove", u.email, detail);
	}
	return web_redirect_flash(
		r, loc, "ok", "Member removed; their API keys in this organization were revoked.");
}
