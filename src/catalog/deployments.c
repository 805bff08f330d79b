/* deployments.c - the more places a model's calls can go (table
 * deployments): rows for pages and the CLI; the gateway reads them from the
 * catalog's snapshot (catalog.c).
 */
#include <stdio.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"

#define DEPLOYMENT_COLUMNS                                                                   \
	"SELECT d.id, d.model_id, d.provider_id, d.upstream_model, d.weight, d.priority,"    \
	" d.price_in IS NOT NULL OR d.price_cached_in IS NOT NULL"                           \
	" OR d.price_cache_write IS NOT NULL OR d.price_out IS NOT NULL,"                    \
	" coalesce(d.price_in, m.price_in), coalesce(d.price_cached_in, m.price_cached_in)," \
	" coalesce(d.price_cache_write, m.price_cache_write),"                               \
	" coalesce(d.price_out, m.price_out), d.enabled"                                     \
	" FROM deployments d JOIN models m ON m.id = d.model_id"

int catalog_deployment_row(tg_stmt *st, struct deployment *out)
{
	struct deployment d;
	const char *up = db_col_text(st, 3);

	memset(&d, 0, sizeof(d));
	if (strlen(up) > CATALOG_NAME_MAX)
		return TG_ETOOBIG;
	d.id = db_col_int64(st, 0);
	d.model_id = db_col_int64(st, 1);
	d.provider_id = db_col_int64(st, 2);
	memcpy(d.upstream_model, up, strlen(up) + 1);
	d.weight = db_col_int64(st, 4);
	d.priority = db_col_int64(st, 5);
	d.own_price = db_col_int(st, 6);
	d.price.in = db_col_int64(st, 7);
	d.price.cached_in = db_col_int64(st, 8);
	d.price.cache_write = db_col_int64(st, 9);
	d.price.out = db_col_int64(st, 10);
	d.enabled = db_col_int(st, 11);
	*out = d;
	return TG_OK;
}

int catalog_deployments_of(int64_t model_id, struct deployment *out, int max)
{
	tg_stmt *st = db_stmt(DEPLOYMENT_COLUMNS " WHERE d.model_id = :m"
						 " ORDER BY d.priority, d.id");
	int n = 0, rc;

	if (!st || db_bind_int64(st, ":m", model_id))
		return TG_EDB;
	while ((rc = db_step(st)) == DB_ROW && n < max)
		if (catalog_deployment_row(st, &out[n]) == TG_OK)
			n++;
	db_done(st);
	return rc == DB_ROW || rc == DB_DONE ? n : TG_EDB;
}

int catalog_deployment_get(int64_t id, struct deployment *out)
{
	tg_stmt *st = db_stmt(DEPLOYMENT_COLUMNS " WHERE d.id = :id");
	int rc;

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	rc = db_step(st);
	rc = rc == DB_ROW ? catalog_deployment_row(st, out) : rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	db_done(st);
	return rc;
}

static int row_count(const char *sql_of_count, int64_t id)
{
	tg_stmt *st = db_stmt(sql_of_count);
	int n = -1;

	if (st && db_bind_int64(st, ":id", id) == TG_OK && db_step(st) == DB_ROW)
		n = db_col_int(st, 0);
	db_done(st);
	return n;
}

int catalog_deployment_check(const struct deployment *d, const char **field, const char **why)
{
	const unsigned char *p;
	struct model m;
	struct provider pr;

	*field = "model";
	if (catalog_model_get_by_id(d->model_id, &m) != TG_OK) {
		*why = "The model does not exist.";
		return TG_EINVAL;
	}
	*field = "provider";
	if (catalog_provider_get(d->provider_id, &pr) != TG_OK) {
		*why = "The provider does not exist. Add it first.";
		return TG_EINVAL;
	}
	*field = "upstream_model";
	if (!d->upstream_model[0] || strlen(d->upstream_model) > CATALOG_NAME_MAX) {
		*why = "Upstream model is required (at most 128 characters): the model name the "
		       "provider expects (for Azure, the deployment's name).";
		return TG_EINVAL;
	}
	for (p = (const unsigned char *)d->upstream_model; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*why = "Upstream model must not contain control characters.";
			return TG_EINVAL;
		}
	}
	if (d->provider_id == m.provider_id && strcmp(d->upstream_model, m.upstream_model) == 0) {
		*why = "That is the model's own provider and upstream model already.";
		return TG_EINVAL;
	}
	*field = "weight";
	if (d->weight < 0 || d->weight > CATALOG_WEIGHT_MAX) {
		*why = "Weight must be between 0 and 1000.";
		return TG_EINVAL;
	}
	*field = "priority";
	if (d->priority < 0 || d->priority > CATALOG_PRIORITY_MAX) {
		*why = "Priority must be between 0 (tried first) and 100.";
		return TG_EINVAL;
	}
	*field = "price";
	if (d->own_price && (d->price.in < 0 || d->price.cached_in < 0 ||
			     d->price.cache_write < 0 || d->price.out < 0)) {
		*why = "Prices cannot be negative.";
		return TG_EINVAL;
	}
	*field = NULL;
	return TG_OK;
}

static int bind_price(tg_stmt *st, const char *name, int own, int64_t v)
{
	return own ? db_bind_int64(st, name, v) : db_bind_null(st, name);
}

int catalog_deployment_upsert(const struct deployment *d, int64_t *id_out, const char **why)
{
	const char *field;
	tg_stmt *st;
	int rc, n;

	if ((rc = catalog_deployment_check(d, &field, why)))
		return rc;
	/* Inside the caller's transaction when it has one (an import); the
	 * count is a guard for pages, the snapshot reads at most
	 * CATALOG_DEPLOY_MAX rows a model whatever happens. */
	n = row_count("SELECT count(*) FROM deployments WHERE model_id = :id", d->model_id);
	if (n < 0) {
		rc = TG_EDB;
		goto out;
	}
	st = db_stmt("SELECT 1 FROM deployments WHERE model_id = :m AND provider_id = :p"
		     " AND upstream_model = :u");
	if (!st || db_bind_int64(st, ":m", d->model_id) ||
	    db_bind_int64(st, ":p", d->provider_id) || db_bind_text(st, ":u", d->upstream_model)) {
		db_done(st);
		rc = TG_EDB;
		goto out;
	}
	if (db_step(st) != DB_ROW && n >= CATALOG_DEPLOY_MAX - 1) {
		db_done(st);
		*why = "A model has at most 7 more deployments.";
		rc = TG_EINVAL;
		goto out;
	}
	db_done(st);
	st = db_stmt("INSERT INTO deployments(model_id, provider_id, upstream_model, weight,"
		     " priority, price_in, price_cached_in, price_cache_write, price_out, enabled,"
		     " created_at, updated_at) VALUES (:m, :p, :u, :w, :prio, :in, :cached,"
		     " :cwrite, :out, :enabled, :now, :now)"
		     " ON CONFLICT(model_id, provider_id, upstream_model) DO UPDATE SET"
		     " weight = excluded.weight, priority = excluded.priority,"
		     " price_in = excluded.price_in, price_cached_in = excluded.price_cached_in,"
		     " price_cache_write = excluded.price_cache_write,"
		     " price_out = excluded.price_out, enabled = excluded.enabled,"
		     " updated_at = excluded.updated_at RETURNING id");
	if (!st || db_bind_int64(st, ":m", d->model_id) ||
	    db_bind_int64(st, ":p", d->provider_id) || db_bind_text(st, ":u", d->upstream_model) ||
	    db_bind_int64(st, ":w", d->weight) || db_bind_int64(st, ":prio", d->priority) ||
	    bind_price(st, ":in", d->own_price, d->price.in) ||
	    bind_price(st, ":cached", d->own_price, d->price.cached_in) ||
	    bind_price(st, ":cwrite", d->own_price, d->price.cache_write) ||
	    bind_price(st, ":out", d->own_price, d->price.out) ||
	    db_bind_int64(st, ":enabled", d->enabled ? 1 : 0) ||
	    db_bind_int64(st, ":now", time_now())) {
		db_done(st);
		rc = TG_EDB;
		goto out;
	}
	if (db_step(st) == DB_ROW) {
		if (id_out)
			*id_out = db_col_int64(st, 0);
		rc = TG_OK;
	} else {
		log_error("catalog: saving a deployment failed: %s", db_errmsg());
		rc = TG_EDB;
	}
	db_done(st);
out:
	if (rc == TG_OK)
		catalog_changed();
	return rc;
}

int catalog_deployment_delete(int64_t id)
{
	tg_stmt *st = db_stmt("DELETE FROM deployments WHERE id = :id");
	int rc;

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc != TG_OK)
		return rc;
	if (db_changes() == 0)
		return TG_ENOTFOUND;
	catalog_changed();
	return TG_OK;
}
