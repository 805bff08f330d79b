/* Unit tests for the store's connection set-up: the durability setting goes
 * from the configuration (flag or environment) through app_open_store to the
 * pragmas of every connection, on every thread, and the other per-connection
 * pragmas (WAL, foreign keys) hold in both modes. And the statement cache:
 * a statement handed out is never finalized under its user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "app.h"
#include "core/config.h"
#include "core/log.h"
#include "store/db.h"

#define NTHREADS 4

struct pragmas {
	int64_t synchronous; /* 1 NORMAL, 2 FULL */
	int64_t foreign_keys;
	char journal_mode[16];
};

static int64_t pragma_int(const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db_get(), sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* This thread's connection (opened on first use), as SQLite reports it. */
static void read_pragmas(struct pragmas *p)
{
	sqlite3_stmt *st = NULL;

	assert_non_null(db_get());
	p->synchronous = pragma_int("PRAGMA synchronous");
	p->foreign_keys = pragma_int("PRAGMA foreign_keys");
	p->journal_mode[0] = '\0';
	if (sqlite3_prepare_v2(db_get(), "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(p->journal_mode, sizeof(p->journal_mode), "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void *thread_pragmas(void *arg)
{
	struct pragmas *p = arg;
	tg_stmt *st;

	/* Each worker opens its own connection, as a server thread does; a
	 * write proves it is a working connection, not just an open handle. */
	read_pragmas(p);
	st = db_stmt("INSERT INTO schema_probe(v) VALUES (1)");
	if (!st || db_exec_stmt(st) != TG_OK)
		p->synchronous = -2;
	db_close_thread();
	return NULL;
}

struct fixture {
	char dir[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	log_set_level(LOG_WARN);
	snprintf(f->dir, sizeof(f->dir), "%s/tg-db-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	static const char *const files[] = { "tollgate.db", "tollgate.db-wal", "tollgate.db-shm",
					     "tollgate.db-commits" };
	char p[300];
	size_t i;

	db_close_thread();
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Open the store as the server and the CLI do, then check the pragmas on this
 * thread's connection and on NTHREADS new ones opened at the same time. */
static void check_store(const tg_config_t *c, int64_t want_sync)
{
	struct pragmas main_p, p[NTHREADS];
	pthread_t th[NTHREADS];
	char err[256] = "";
	int64_t rows;
	int i;

	db_close_thread();
	assert_int_equal(config_validate(c, err, sizeof(err)), TG_OK);
	assert_int_equal(app_open_store(c, err, sizeof(err)), TG_OK);
	assert_int_equal(db_exec("CREATE TABLE IF NOT EXISTS schema_probe(v INTEGER)"), TG_OK);
	rows = pragma_int("SELECT COUNT(*) FROM schema_probe");
	read_pragmas(&main_p);
	assert_int_equal(main_p.synchronous, want_sync);
	assert_int_equal(main_p.foreign_keys, 1);
	assert_string_equal(main_p.journal_mode, "wal");

	memset(p, 0, sizeof(p));
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_pragmas, &p[i]), 0);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].synchronous, want_sync);
		assert_int_equal(p[i].foreign_keys, 1);
		assert_string_equal(p[i].journal_mode, "wal");
	}
	assert_int_equal(pragma_int("SELECT COUNT(*) FROM schema_probe"), rows + NTHREADS);
}

static void config_for(tg_config_t *c, const struct fixture *f)
{
	config_defaults(c);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", f->dir);
}

static void test_default_is_normal(void **state)
{
	tg_config_t c;

	config_for(&c, *state);
	assert_string_equal(c.synchronous, "normal");
	check_store(&c, 1);
}

static void test_flag_full(void **state)
{
	char *argv[] = { "--synchronous", "full" };
	char err[256];
	tg_config_t c;
	int i = 0;

	config_for(&c, *state);
	assert_int_equal(config_apply_flag(&c, 2, argv, &i, err, sizeof(err)), 1);
	assert_string_equal(c.synchronous, "full");
	check_store(&c, 2);
}

static void test_env_full(void **state)
{
	char err[256];
	tg_config_t c;

	config_for(&c, *state);
	setenv("TOLLGATE_SYNCHRONOUS", "full", 1);
	assert_int_equal(config_load_env(&c, err, sizeof(err)), TG_OK);
	unsetenv("TOLLGATE_SYNCHRONOUS");
	check_store(&c, 2);
}

/* The same database reopened with the other setting: the pragma is per
 * connection, never left over in the file. */
static void test_full_then_normal(void **state)
{
	char *argv[] = { "--synchronous=normal" };
	char err[256];
	tg_config_t c;
	int i = 0;

	config_for(&c, *state);
	snprintf(c.synchronous, sizeof(c.synchronous), "full");
	check_store(&c, 2);
	assert_int_equal(config_apply_flag(&c, 1, argv, &i, err, sizeof(err)), 1);
	check_store(&c, 1);
}

/* ------------------------------------------------------- statement cache */

#define CACHE_SLOTS 512          /* STMT_SLOTS in db.c */
#define CHURN (16 * CACHE_SLOTS) /* enough to hit every slot of the cache */

static void open_plain(const struct fixture *f)
{
	char path[300];

	db_close_thread();
	snprintf(path, sizeof(path), "%s/tollgate.db", f->dir);
	assert_int_equal(db_configure(path, 0, 5000), TG_OK);
	assert_int_equal(db_exec("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES (1), (2), (3)"),
			 TG_OK);
}

/* n distinct SQL strings; the cache is keyed by address, so they stay
 * allocated until the connection is closed. */
static char **distinct_sql(int n)
{
	char **v = calloc((size_t)n, sizeof(*v));
	int i;

	assert_non_null(v);
	for (i = 0; i < n; i++) {
		v[i] = malloc(32);
		assert_non_null(v[i]);
		snprintf(v[i], 32, "SELECT %d", i);
	}
	return v;
}

static void free_sql(char **v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int connection_has(tg_stmt *st)
{
	sqlite3_stmt *p = NULL;

	while ((p = sqlite3_next_stmt(db_get(), p)))
		if ((tg_stmt *)p == st)
			return 1;
	return 0;
}

static int connection_stmts(void)
{
	sqlite3_stmt *p = NULL;
	int n = 0;

	while ((p = sqlite3_next_stmt(db_get(), p)))
		n++;
	return n;
}

/* Each of sql[0..n) once, given back at once. */
static void churn(char **sql, int n)
{
	tg_stmt *st;
	int i;

	for (i = 0; i < n; i++) {
		st = db_stmt(sql[i]);
		assert_non_null(st);
		assert_int_equal(db_step(st), DB_ROW);
		assert_int_equal(db_col_int(st, 0), i);
		db_done(st);
	}
}

/* A statement handed out and being stepped is never finalized under its
 * user, however many other statements the thread prepares meanwhile. */
static void test_stmt_in_use_not_evicted(void **state)
{
	char **sql = distinct_sql(CHURN);
	tg_stmt *first;

	open_plain(*state);
	first = db_stmt("SELECT v FROM t ORDER BY v");
	assert_non_null(first);
	assert_int_equal(db_step(first), DB_ROW);
	assert_int_equal(db_col_int(first, 0), 1);

	churn(sql, CHURN);

	assert_true(connection_has(first));
	assert_int_equal(db_step(first), DB_ROW);
	assert_int_equal(db_col_int(first, 0), 2);
	assert_int_equal(db_step(first), DB_ROW);
	assert_int_equal(db_col_int(first, 0), 3);
	assert_int_equal(db_step(first), DB_DONE);
	db_done(first);
	/* given back, it is cached again: the same statement, reset */
	assert_ptr_equal(db_stmt("SELECT v FROM t ORDER BY v"), first);
	assert_int_equal(db_step(first), DB_ROW);
	assert_int_equal(db_col_int(first, 0), 1);
	db_done(first);
	db_close_thread();
	free_sql(sql, CHURN);
}

/* Many statements in use at once, more than the cache can keep where they
 * hash: the ones it cannot keep are handed out uncached, all keep working,
 * and giving them back finalizes the uncached ones. */
#define HELD 300

static void test_stmt_many_in_use(void **state)
{
	char **held = distinct_sql(HELD), **sql = distinct_sql(CHURN);
	tg_stmt *st[HELD];
	int i;

	open_plain(*state);
	for (i = 0; i < HELD; i++) {
		st[i] = db_stmt(held[i]);
		assert_non_null(st[i]);
		assert_int_equal(db_step(st[i]), DB_ROW);
	}
	churn(sql, CHURN);
	for (i = 0; i < HELD; i++) {
		assert_true(connection_has(st[i]));
		assert_int_equal(db_col_int(st[i], 0), i);
		assert_int_equal(db_step(st[i]), DB_DONE);
	}
	for (i = 0; i < HELD; i++)
		db_done(st[i]);
	assert_true(connection_stmts() <= CACHE_SLOTS);
	/* db_exec_stmt gives a statement back as db_done does */
	for (i = 0; i < HELD; i++) {
		st[i] = db_stmt(held[i]);
		assert_non_null(st[i]);
	}
	for (i = 0; i < HELD; i++)
		assert_int_equal(db_exec_stmt(st[i]), TG_OK);
	assert_true(connection_stmts() <= CACHE_SLOTS);
	db_close_thread();
	free_sql(held, HELD);
	free_sql(sql, CHURN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_is_normal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flag_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_then_normal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stmt_in_use_not_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stmt_many_in_use, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
