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
	size_t i;

	for (i = 0; i < tg_migrations_count; i++) {
		v = migration_version(tg_migrations[i].name);
		if (v > best)
			best = v;
	}
	return best;
}

int migrate_current(void)
{
	sqlite3_stmt *st;
	int v = -1;

	if (db_exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
		    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER "
		    "NOT NULL)"))
		return -1;
	st = db_stmt("SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (!st)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	db_done(st);
	return v;
}

int migrate_run(int *applied, char *err, size_t errlen)
{
	int cur, latest = migrate_latest(), prev = 0, v;
	size_t i;

	*applied = 0;
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
	for (i = 0; i < tg_migrations_count; i++) {
		const struct embedded_file *m = &tg_migrations[i];
		sqlite3_stmt *st;

		v = migration_version(m->name);
		if (v <= prev) {
			snprintf(err, errlen, "migration %s: bad or duplicate version", m->name);
			return TG_EINVAL;
		}
		prev = v;
		if (v <= cur)
			continue;
		if (db_begin()) {
			snprintf(err, errlen, "migration %s: cannot begin a transaction", m->name);
			return TG_EDB;
		}
		if (db_exec(m->data)) {
			db_rollback();
			snprintf(err, errlen, "migration %s failed: %s", m->name,
				 sqlite3_errmsg(db_get()));
			return TG_EDB;
		}
		st = db_stmt("INSERT INTO schema_migrations(version, name, applied_at)"
			     " VALUES (:v, :name, :at)");
		if (!st || db_bind_int64(st, ":v", v) || db_bind_text(st, ":name", m->name) ||
		    db_bind_int64(st, ":at", time_now()) || db_exec_stmt(st) || db_commit()) {
			db_rollback();
			snprintf(err, errlen, "migration %s: cannot record it", m->name);
			return TG_EDB;
		}
		log_info("migrated: %s", m->name);
		(*applied)++;
	}
	return TG_OK;
}
