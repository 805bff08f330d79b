/* page_audit.c - the audit log: instance admins see everything, org admins
 * and owners their current org's entries; keyset pagination by id. */
#include <stdlib.h>

#include "store/db.h"
#include "web/web.h"

int page_audit(tg_req_t *r)
{
	struct web_session *s = r->session;
	char *before_s = req_query(r, "before");
	int64_t before = web_parse_id(before_s), last = 0;
	cJSON *d, *list;
	tg_stmt *st;
	int n = 0, all = s->user.is_admin;

	free(before_s);
	if (!all && (s->org.id == 0 || s->role < ROLE_ADMIN))
		return web_not_found(r);
	d = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(d, "entries");
	cJSON_AddStringToObject(d, "scope", all ? "All organizations" : s->org.name);
	st = db_stmt(
		"SELECT a.id, a.at, a.actor, coalesce(o.name, ''), a.action, a.target, a.detail, "
		"a.ip"
		" FROM audit_log a LEFT JOIN orgs o ON o.id = a.org_id"
		" WHERE (:all <> 0 OR a.org_id = :org) AND (:before = 0 OR a.id < :before)"
		" ORDER BY a.id DESC LIMIT :limit");
	if (st && !db_bind_int64(st, ":all", all) && !db_bind_int64(st, ":org", s->org.id) &&
	    !db_bind_int64(st, ":before", before) &&
	    !db_bind_int64(st, ":limit", WEB_PAGE_SIZE + 1)) {
		while (db_step(st) == DB_ROW) {
			cJSON *e;

			if (++n > WEB_PAGE_SIZE)
				break;
			e = cJSON_CreateObject();
			last = db_col_int64(st, 0);
			web_add_time(e, "at", db_col_int64(st, 1));
			cJSON_AddStringToObject(e, "actor", db_col_text(st, 2));
			cJSON_AddStringToObject(e, "org", db_col_text(st, 3));
			cJSON_AddStringToObject(e, "action", db_col_text(st, 4));
			cJSON_AddStringToObject(e, "target", db_col_text(st, 5));
			cJSON_AddStringToObject(e, "detail", db_col_text(st, 6));
			cJSON_AddStringToObject(e, "ip", db_col_text(st, 7));
			cJSON_AddItemToArray(list, e);
		}
	}
	db_done(st);
	cJSON_AddBoolToObject(d, "has_entries", cJSON_GetArraySize(list) > 0);
	if (n > WEB_PAGE_SIZE)
		cJSON_AddNumberToObject(d, "older", (double)last);
	cJSON_AddBoolToObject(d, "newer", before != 0);
	return web_render(r, 200, "audit", d);
}
