/* migrate.c - schema migrations runner; see migrate.h. */
#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/embed.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"

extern const struct embedded_file tg_migrations[];
extern const size_t tg_migrations_count;
extern const struct embedded_file tg_pg_migrations[];
extern const size_t tg_pg_migrations_count;

/* The series of the database in use: SQLite's, or PostgreSQL's own. */
static const struct embedded_file *series(size_t *n)
{
	if (db_is_pg()) {
		*n = tg_pg_migrations_count;
		return tg_pg_migrations;
	}
	*n = tg_migrations_count;
	return tg_migrations;
}

/* "0007_name.sql" -> 7; -1 if the name does not start with 4 digits and '_'. */
static int migration_version(const char *name)
{
	int i, v = 0;

	for (i = 0; i < 4; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (name[i] - '0');
	}
	return name[4] == '_' ? v : -1;
}

int migrate_latest(void)
{
	int v, best = 0;
	size_t i, n;
	const struct embedded_file *ms = series(&n);

	for (i = 0; i < n; i++) {
		v = migration_version(ms[i].name);
		if (v > best)
			best = v;
	}
	return best;
}

int migrate_current(void)
{
	tg_stmt *st;
	int v = -1;

	/* In a write transaction: instances starting together on PostgreSQL
	 * take turns. */
	if (db_begin())
		return -1;
	if (db_exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
		    " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT "
		    "NOT NULL)") ||
	    db_commit()) {
		db_rollback();
		return -1;
	}
	st = db_stmt("SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (!st)
		return -1;
	if (db_step(st) == DB_ROW)
		v = db_col_int(st, 0);
	db_done(st);
	return v;
}

#define FK_OFF_MARK "-- migrate: foreign-keys-off\n"

/* Inside the migration's transaction: TG_EDB and a message when a row
 * points at a parent that is not there. */
static int fk_violations(const char *name, char *err, size_t errlen)
{
	tg_stmt *st = db_stmt("PRAGMA foreign_key_check");
	int rc;

	if (!st)
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW)
		snprintf(err, errlen, "migration %s: a row of %s breaks a foreign key", name,
			 db_col_text(st, 0));
	db_done(st);
	return rc == DB_DONE ? TG_OK : TG_EDB;
}

int migrate_run(int *applied, char *err, size_t errlen)
{
	int cur, latest = migrate_latest(), prev = 0, v, fk_off = 0, rc = TG_OK;
	size_t i, n;
	const struct embedded_file *ms = series(&n);

	*applied = 0;
	if (errlen)
		err[0] = '\0';
	cur = migrate_current();
	if (cur < 0) {
		snprintf(err, errlen, "cannot read schema_migrations");
		return TG_EDB;
	}
	if (cur > latest) {
		snprintf(err, errlen,
			 "the database schema (version %d) is newer than this binary supports "
			 "(version %d); run a newer tollgate",
			 cur, latest);
		return TG_ECONFLICT;
	}
	for (i = 0; i < n; i++) {
		const struct embedded_file *m = &ms[i];
		tg_stmt *st;
		int done = 0;

		v = migration_version(m->name);
		if (v <= prev) {
			snprintf(err, errlen, "migration %s: bad or duplicate version", m->name);
			return TG_EINVAL;
		}
		prev = v;
		if (v <= cur)
			continue;
		/* A migration that rebuilds a table others reference runs with
		 * foreign keys off (they can only be switched outside a
		 * transaction) and checks them all before it commits. */
		fk_off = strncmp(m->data, FK_OFF_MARK, sizeof(FK_OFF_MARK) - 1) == 0;
		if (fk_off && db_exec("PRAGMA foreign_keys=OFF")) {
			snprintf(err, errlen, "migration %s: cannot turn foreign keys off",
				 m->name);
			return TG_EDB;
		}
		if (db_begin()) {
			snprintf(err, errlen, "migration %s: cannot begin a transaction", m->name);
			rc = TG_EDB;
			goto fail;
		}
		/* Another instance may have applied it since cur was read. */
		st = db_stmt("SELECT 1 FROM schema_migrations WHERE version = :v");
		if (st && db_bind_int64(st, ":v", v) == TG_OK)
			done = db_step(st) == DB_ROW;
		db_done(st);
		if (done) {
			db_rollback();
			continue;
		}
		if (db_exec(m->data) || (fk_off && fk_violations(m->name, err, errlen))) {
			if (!err[0])
				snprintf(err, errlen, "migration %s failed: %s", m->name,
					 db_errmsg());
			db_rollback();
			rc = TG_EDB;
			goto fail;
		}
		st = db_stmt("INSERT INTO schema_migrations(version, name, applied_at)"
			     " VALUES (:v, :name, :at)");
		if (!st || db_bind_int64(st, ":v", v) || db_bind_text(st, ":name", m->name) ||
		    db_bind_int64(st, ":at", time_now()) || db_exec_stmt(st) || db_commit()) {
			db_rollback();
			snprintf(err, errlen, "migration %s: cannot record it", m->name);
			rc = TG_EDB;
			goto fail;
		}
		if (fk_off && db_exec("PRAGMA foreign_keys=ON")) {
			snprintf(err, errlen, "migration %s: cannot turn foreign keys on", m->name);
			return TG_EDB;
		}
		log_info("migrated: %s", m->name);
		(*applied)++;
	}
	return TG_OK;
fail:
	if (fk_off)
		db_exec("PRAGMA foreign_keys=ON");
	return rc;
}
