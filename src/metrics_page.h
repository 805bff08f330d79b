/* metrics_page.h - GET /metrics: the process counters (metrics/metrics.h) and
 * the values read at scrape time from the journal, the streams, the server
 * limits, the ledger and the database. */
#ifndef TG_METRICS_PAGE_H
#define TG_METRICS_PAGE_H

#include "core/config.h"
#include "http/http.h"

/* Take the settings the page reads (metrics_token); cfg must outlive the
 * server. Before this call the page asks for no token. */
void metrics_page_init(const tg_config_t *cfg);

/* GET /metrics. When metrics_token is set, requires "Authorization: Bearer
 * TOKEN" (401 otherwise). */
int page_metrics(tg_req_t *r);

#endif
