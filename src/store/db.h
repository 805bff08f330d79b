/* db.h - database access: one connection per thread, a per-thread cache of
 * prepared statements, named parameters that fail loudly, and transaction
 * helpers. Two backends behind one API: SQLite (the embedded default, a
 * file) and PostgreSQL (db_configure_pg, shared by several instances; see
 * db_pg.c). Statements are written once in SQL both accept.
 *
 * db_stmt(SQL) takes a string LITERAL (the cache is keyed by its address) and
 * returns a reset statement with cleared bindings; the connection owns it, so
 * callers never finalize it, but give it back with db_done() (or
 * db_exec_stmt(), which steps and gives back) when they stop stepping, so no
 * read transaction stays open, and do not touch it after. A statement is never
 * evicted from the cache while handed out: when the cache has no room, db_stmt
 * hands out an uncached one, which giving it back finalizes. SQL text never
 * contains request data: values are always bound.
 */
#ifndef TG_DB_H
#define TG_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "core/common.h"

/* A prepared statement of either backend (opaque). */
typedef struct tg_stmt tg_stmt;

/* db_step results (SQLite's codes, which PostgreSQL results map to). */
#define DB_ROW 100
#define DB_DONE 101
#define DB_CONSTRAINT 19 /* a UNIQUE, CHECK or foreign key constraint refused it */

/* Set the database file and pragmas used by every connection opened later. */
int db_configure(const char *path, int synchronous_full, int busy_timeout_ms);
/* Use PostgreSQL at a libpq connection URI (postgres://...) instead; every
 * connection opened later goes there. instance names this process in the
 * database (holds, claims); connect_timeout_s bounds a connection attempt. */
int db_configure_pg(const char *url, const char *instance, int connect_timeout_s);
/* 1 when the database is PostgreSQL. */
int db_is_pg(void);
/* This instance's name in a shared database ("" on SQLite). */
const char *db_instance(void);
/* Open this thread's connection now: TG_OK, or TG_EDB (logged). */
int db_connect(void);
/* This thread's SQLite connection, opened on first use; NULL (logged) on
 * failure, and always NULL on PostgreSQL. */
sqlite3 *db_get(void);
/* A cached prepared statement for a string literal; NULL (logged) on failure. */
tg_stmt *db_stmt(const char *sql);
/* Step: DB_ROW (a row to read), DB_DONE, DB_CONSTRAINT or another value on
 * an error (logged; db_errmsg() says what). */
int db_step(tg_stmt *st);
/* Columns of the current row (0-based). NULL reads as 0 / "" / NULL blob. */
int64_t db_col_int64(tg_stmt *st, int col);
int db_col_int(tg_stmt *st, int col);
const void *db_col_blob(tg_stmt *st, int col);
int db_col_bytes(tg_stmt *st, int col);
int db_col_is_null(tg_stmt *st, int col);
/* The last error of this thread's connection. */
const char *db_errmsg(void);
/* 1 while this thread has a transaction open. */
int db_in_tx(void);
/* Bind by name (":name"). A name missing from the statement is a programming
 * error: it is logged and returns TG_EINVAL. text may be NULL (binds NULL). */
int db_bind_text(tg_stmt *st, const char *name, const char *text);
int db_bind_int64(tg_stmt *st, const char *name, int64_t v);
int db_bind_null(tg_stmt *st, const char *name);
int db_bind_blob(tg_stmt *st, const char *name, const void *p, int n);
/* Step a statement that returns no rows and give it back (see above). TG_OK,
 * TG_ECONFLICT on a constraint violation, TG_EDB otherwise. */
int db_exec_stmt(tg_stmt *st);
/* Give a statement back after reading: reset (or, if uncached, finalized). */
void db_done(tg_stmt *st);
/* Run SQL text with no parameters (schema, pragmas). */
int db_exec(const char *sql);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on this thread's connection. On
 * PostgreSQL, db_begin takes a transaction-scoped advisory lock that every
 * db_begin of every instance shares, so write transactions are serialized
 * as SQLite's are (statements outside one, such as the guarded updates of
 * holds and rate limits, are not held up by it beyond their rows' locks). */
int db_begin(void);
/* A read-only transaction over one snapshot (COMMIT ends it). */
int db_begin_read(void);
int db_commit(void);
/* COMMIT that, when it fails, leaves the rest to the caller: the writer lock
 * stays held (and SQLite's transaction open unless it ended it itself) until
 * the caller's db_rollback(), so the caller can act before any other commit
 * of this process can happen. */
int db_try_commit(void);
void db_rollback(void);
/* Column helpers that map NULL text to "". */
const char *db_col_text(tg_stmt *st, int col);
int64_t db_changes(void);
int64_t db_last_id(void);
/* Close this thread's connection and its statements (also done at thread exit). */
void db_close_thread(void);
/* Hand this thread's connection back to the pool of idle ones, when no
 * statement of it is in use and no transaction is open (otherwise it stays).
 * The thread's next db_* call borrows one again. A worker calls this before
 * it waits for a long time (a client, a provider): connections then number
 * the calls using the database at once, not the worker threads. */
void db_release(void);
/* Close the idle connections (shutdown; db_configure does it too). */
void db_close_idle(void);
/* Checkpoint the WAL into the database and restart the log (a background
 * thread of the server calls this periodically). */
int db_checkpoint(void);
/* A background thread that checkpoints when a commit leaves 1000 pages or
 * more in the WAL, and restarts the log once it passes 16 MiB. */
int db_checkpointer_start(void);
void db_checkpointer_stop(void);
/* Change counters for in-memory caches of tables (API keys, the catalog):
 * a 64-bit counter in the file "<database>-<suffix>", mapped shared so every
 * process using the database sees a bump at once. NULL when it cannot be
 * mapped (the cache then needs a time limit). */
uint64_t *db_shared_counter(const char *suffix);
/* Bump counter now and, inside a transaction, again when it commits or rolls
 * back: a reader that refilled its cache from the not yet committed state in
 * between sees the second bump. */
void db_changed(uint64_t *counter);
/* The count of commits to the database by every process using it (our
 * connections' WAL hook bumps a shared counter after each commit), for
 * caches of values any commit may change: equal counts mean nothing was
 * committed in between. TG_EIO when there is no count to trust: the counter
 * could not be mapped, or the database is not in WAL mode (in memory). */
int db_commit_seq(uint64_t *seq);
/* 1 when a simple query works, for /health. */
int db_healthy(void);

#endif
