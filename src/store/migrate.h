/* migrate.h - apply the embedded migrations/NNNN_*.sql in order. */
#ifndef TG_MIGRATE_H
#define TG_MIGRATE_H

#include <stddef.h>

/* Apply every pending migration on this thread's connection, each in its own
 * transaction, recording it in schema_migrations. Refuses (TG_ECONFLICT) a
 * database whose schema is newer than this binary. *applied gets the number
 * applied now. err gets a message on failure. */
int migrate_run(int *applied, char *err, size_t errlen);
/* Highest migration version compiled into this binary. */
int migrate_latest(void);
/* Highest version recorded in the database (0 for a fresh one), or < 0 on error. */
int migrate_current(void);

#endif
