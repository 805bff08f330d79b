/* catalog_internal.h - what the catalog's files share (part of the module). */
#ifndef TG_CATALOG_INTERNAL_H
#define TG_CATALOG_INTERNAL_H

#include "store/db.h"

#include "catalog/catalog.h"

/* A row of the deployments query in deployments.c's column order: id,
 * model_id, provider_id, upstream_model, weight, priority, own_price, the
 * four prices (in, cached, cache write, out) and enabled. */
int catalog_deployment_row(tg_stmt *st, struct deployment *out);
/* After a write: bump the change counter the snapshots watch. */
void catalog_changed(void);

#endif
