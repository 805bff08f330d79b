/* db_internal.h - the PostgreSQL backend behind db.h (store/ only): db.c calls
 * these when db_configure_pg chose PostgreSQL. See db_pg.c. */
#ifndef TG_DB_INTERNAL_H
#define TG_DB_INTERNAL_H

#include <stdint.h>

#include "store/db.h"

int pg_configure(const char *url, const char *instance, int connect_timeout_s);
const char *pg_instance_name(void);
int pg_connect(void);
tg_stmt *pg_stmt(const char *sql);
void pg_done(tg_stmt *st);
int pg_bind_text(tg_stmt *st, const char *name, const char *text);
int pg_bind_int64(tg_stmt *st, const char *name, int64_t v);
int pg_bind_null(tg_stmt *st, const char *name);
int pg_bind_blob(tg_stmt *st, const char *name, const void *p, int n);
int pg_step(tg_stmt *st);
int64_t pg_col_int64(tg_stmt *st, int col);
const char *pg_col_text(tg_stmt *st, int col); /* NULL for NULL */
int pg_col_is_null(tg_stmt *st, int col);
const void *pg_col_blob(tg_stmt *st, int col);
int pg_col_bytes(tg_stmt *st, int col);
int pg_exec(const char *sql);
int pg_begin(int read_only);
int pg_commit(void);
void pg_rollback(void);
int pg_in_tx(void);
const char *pg_errmsg(void);
int64_t pg_changes(void);
int64_t pg_last_id(void);
void pg_release(void);
void pg_close_idle(void);
void pg_close_thread(void);
uint64_t *pg_shared_counter(const char *name);
void pg_changed(uint64_t *counter);

#endif
