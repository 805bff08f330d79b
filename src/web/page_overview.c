/* page_overview.c - the landing page and the org switcher. */
#include <stdlib.h>

#include "core/timeutil.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "web/web.h"

int page_overview(tg_req_t *r)
{
	struct web_session *s = r->session;
	cJSON *d = cJSON_CreateObject();

	if (s->org.id) {
		cJSON *o = cJSON_AddObjectToObject(d, "current_org");

		cJSON_AddStringToObject(o, "name", s->org.name);
		cJSON_AddStringToObject(o, "role", s->user.is_admin && membership_role(s->org.id, s->user.id) == ROLE_NONE ?
					"instance admin" : role_name(s->role));
		{
			char money[MONEY_FMT_LEN];
			int64_t balance = 0;

			ledger_balance(s->org.id, &balance);
			money_format_short(balance, money);
			cJSON_AddStringToObject(o, "balance", money);
			money_format_short(ledger_org_spend(s->org.id, ledger_month_start(time_now())), money);
			cJSON_AddStringToObject(o, "spend_month", money);
		}
		cJSON_AddStringToObject(o, "requests_today", "0");
	}
	return web_render(r, 200, "overview", d);
}

int page_switch_org(tg_req_t *r)
{
	char *v = req_post(r, "org_id");
	int64_t id = web_parse_id(v);

	free(v);
	if (!id || web_org_role(r, id) == ROLE_NONE)
		return web_not_found(r);
	session_set_org(r->session->row.id, id);
	return resp_redirect(r, "/");
}
