/* metrics_page.c - GET /metrics; see metrics_page.h. */
#include "metrics_page.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "billing/billing.h"
#include "billing/journal.h"
#include "catalog/catalog.h"
#include "gateway/routing.h"
#include "gateway/streams.h"
#include "http/edge.h"
#include "http/ipthrottle.h"
#include "http/server.h"
#include "ledger/ledger.h"
#include "metrics/metrics.h"
#include "store/db.h"

static const tg_config_t *page_cfg;

void metrics_page_init(const tg_config_t *cfg)
{
	page_cfg = cfg;
}

/* Constant time in the token: both sides are hashed to a fixed size first. */
static int token_ok(const tg_req_t *r, const char *token)
{
	unsigned char want[32], got[32];
	const char *h;

	if (req_header_count(r, "Authorization") != 1)
		return 0;
	h = req_header(r, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	for (h += 7; *h == ' '; h++)
		;
	crypto_generichash(want, sizeof(want), (const unsigned char *)token, strlen(token), NULL,
			   0);
	crypto_generichash(got, sizeof(got), (const unsigned char *)h, strlen(h), NULL, 0);
	return sodium_memcmp(want, got, sizeof(want)) == 0;
}

/* Held by calls in flight: this process's table on SQLite, every
 * instance's holds on PostgreSQL (-1: unknown). */
static int64_t held_now(void)
{
	tg_stmt *st;
	int64_t held = -1;

	if (!db_is_pg())
		return ledger_held_total();
	st = db_stmt("SELECT coalesce(sum(amount), 0) FROM holds");
	if (st && db_step(st) == DB_ROW)
		held = db_col_int64(st, 0);
	db_done(st);
	return held;
}

static int64_t db_size(void)
{
	tg_stmt *st = db_is_pg() ? db_stmt("SELECT pg_database_size(current_database())") :
				   db_stmt("SELECT page_count * page_size FROM pragma_page_count(),"
					   " pragma_page_size()");
	int64_t size = -1;

	if (st && db_step(st) == DB_ROW)
		size = db_col_int64(st, 0);
	db_done(st);
	return size;
}

struct health_out {
	buf_t *b;
	int rc, which;
};

/* One deployment's line of the family in ho->which. */
static void health_line(void *ud, const struct route_health *h)
{
	static const char *const names[] = { "tollgate_deployment_cooling",
					     "tollgate_deployment_failures_in_a_row" };
	struct health_out *ho = ud;
	struct model m;
	struct provider p;

	if (ho->rc || catalog_model_get_by_id(h->model_id, &m) != TG_OK ||
	    catalog_gw_provider(h->provider_id, &p) != TG_OK)
		return;
	ho->rc = buf_appendf(ho->b, "%s{model=", names[ho->which]);
	if (!ho->rc)
		ho->rc = metrics_label_value(ho->b, m.name);
	if (!ho->rc)
		ho->rc = buf_puts(ho->b, ",provider=");
	if (!ho->rc)
		ho->rc = metrics_label_value(ho->b, p.name);
	if (!ho->rc)
		ho->rc = buf_puts(ho->b, ",upstream_model=");
	if (!ho->rc)
		ho->rc = metrics_label_value(ho->b, h->upstream_model);
	if (!ho->rc)
		ho->rc = buf_appendf(ho->b, "} %lld\n",
				     ho->which == 0 ? (long long)(h->cooling_for_ms > 0) :
						      (long long)h->failures);
}

/* The health of the deployments this process has tried (routing.h). */
static int render_health(buf_t *b)
{
	struct health_out ho = { b, 0, 0 };

	ho.rc = buf_puts(b, "# HELP tollgate_deployment_cooling 1 while a deployment is cooled "
			    "down after failing again and again (skipped while another can "
			    "answer).\n# TYPE tollgate_deployment_cooling gauge\n");
	routing_each(health_line, &ho);
	if (!ho.rc)
		ho.rc = buf_puts(b, "# HELP tollgate_deployment_failures_in_a_row Failed attempts "
				    "at a deployment since its last answer.\n"
				    "# TYPE tollgate_deployment_failures_in_a_row gauge\n");
	ho.which = 1;
	routing_each(health_line, &ho);
	return ho.rc;
}

int page_metrics(tg_req_t *r)
{
	struct metrics_process p;
	struct edge_stats es;
	int64_t streams_open;
	buf_t b;
	int rc;

	buf_init(&b, BUF_MAX_LARGE); /* the whole exposition */
	if (page_cfg && page_cfg->metrics_token[0] && !token_ok(r, page_cfg->metrics_token)) {
		resp_header(r, "WWW-Authenticate", "Bearer realm=\"metrics\"");
		rc = resp_text(r, 401,
			       "A valid metrics token is required (Authorization: Bearer).\n");
		goto out;
	}
	p.db_up = db_healthy();
	p.db_size_bytes = p.db_up ? db_size() : -1;
	p.held_micro = p.db_up ? held_now() : -1;
	p.holds_voided = billing_pg_voided();
	journal_stats(&p.journal_records, &p.journal_batches, &p.journal_queued);
	server_connection_stats(&p.connections_open, &p.connections_refused);
	edge_get_stats(&es);
	p.edge_open = es.open;
	p.edge_addresses = es.addresses;
	p.edge_refused = es.refused;
	p.in_flight = server_in_flight();
	gw_streams_stats(&streams_open, &p.streams_refused);
	p.auth_throttled_gateway = ipthrottle_refused(server_throttle(THROTTLE_GATEWAY_AUTH));
	p.auth_throttled_login = ipthrottle_refused(server_throttle(THROTTLE_LOGIN));
	if ((rc = metrics_render(&b, &p)) || (rc = render_health(&b))) {
		rc = resp_text(r, 500, "The metrics could not be rendered.\n");
		goto out;
	}
	rc = resp_send(r, 200, METRICS_CONTENT_TYPE, b.data, b.len);
out:
	buf_free(&b);
	return rc;
}
