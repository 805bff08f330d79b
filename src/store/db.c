/* db.c - pooled SQLite connections and their statement caches; see db.h. */
#include "store/db.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/timeutil.h"
#include "store/db_internal.h"

#define DB_CHECKPOINT_BYTES (16 << 20) /* restart the WAL once it passes this */
#define DB_CHECKPOINT_FRAMES 1000      /* checkpoint (passively) past this, as SQLite would */
#define STMT_SLOTS 512 /* power of two; more distinct statements than this still work, uncached */
#define STMT_PROBES 8
#define STMT_USED_MAX 256 /* cached statements tracked as handed out */
#define STMT_LOOSE_MAX 64 /* uncached statements handed out at once */

/* A statement is in use from db_stmt until db_done or db_exec_stmt: only a
 * slot not in use may be evicted (its statement finalized). When every
 * candidate slot is in use, db_stmt prepares a loose statement instead, which
 * db_done / db_exec_stmt finalize. */
struct stmt_slot {
	const char *sql;
	sqlite3_stmt *st;
	int in_use;
};

#define AFTER_COMMIT_MAX 8

struct db_thread {
	sqlite3 *db;
	struct stmt_slot slots[STMT_SLOTS];
	size_t used[STMT_USED_MAX]; /* the slots in use */
	int n_used;
	sqlite3_stmt *loose[STMT_LOOSE_MAX]; /* uncached statements in use */
	int n_loose;
	int in_tx;
	uint64_t *after_commit[AFTER_COMMIT_MAX]; /* counters to bump once the transaction ends */
	int n_after;
};

static char db_path[4096];
/* One serving process per database (the lock file), so one writer at a time
 * is enforced here: threads queue on this mutex instead of sleeping in
 * SQLite's busy handler, which under load costs milliseconds per call. */
static pthread_mutex_t db_write_mu = PTHREAD_MUTEX_INITIALIZER;
static int db_sync_full;
static int db_busy_ms = 5000;
static pthread_key_t db_key;
/* Idle connections, each with its statement cache (db_release). */
static struct pool db_idle = POOL_INIT(64);
static int db_private; /* an in-memory database: one per connection */
static pthread_once_t db_key_once = PTHREAD_ONCE_INIT;
/* Bumped after every commit of any process using the database (db_commit_seq);
 * mapped by db_configure, before any connection exists. */
static uint64_t *commit_counter;
/* Added to the count: another for every db_configure, so the counts of two
 * databases one process opened in turn (tests) never look alike. */
static uint64_t commit_base;
/* Set once a connection is in WAL mode: only then does the WAL hook see
 * every commit (an in-memory database has no WAL, and no counter). */
static int commits_counted;

static int wal_wanted(void);

/* PostgreSQL instead of SQLite (db_configure_pg): every public function
 * below hands over to db_pg.c first. */
static int use_pg;
#define LITE(st) ((sqlite3_stmt *)(st))

int db_configure_pg(const char *url, const char *instance, int connect_timeout_s)
{
	int rc = pg_configure(url, instance, connect_timeout_s);

	if (rc == TG_OK)
		use_pg = 1;
	return rc;
}

int db_is_pg(void)
{
	return use_pg;
}

const char *db_instance(void)
{
	return use_pg ? pg_instance_name() : "";
}

static void db_thread_free(void *p)
{
	struct db_thread *t = p;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < STMT_SLOTS; i++)
		if (t->slots[i].st)
			sqlite3_finalize(t->slots[i].st);
	for (i = 0; i < (size_t)t->n_loose; i++)
		sqlite3_finalize(t->loose[i]);
	if (t->db)
		sqlite3_close(t->db);
	free(t);
}

static void db_thread_free_any(void *p)
{
	db_thread_free(p);
}

static void db_key_make(void)
{
	/* Before SQLite initialises: its memory statistics take one global
	 * mutex on every allocation, which every worker thread then queues on.
	 * Nothing here reads them. (SQLITE_MISUSE when already initialised,
	 * e.g. in a test that opened a database first: harmless.) */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	pthread_key_create(&db_key, db_thread_free);
}

int db_configure(const char *path, int synchronous_full, int busy_timeout_ms)
{
	int on_disk;

	if (strlen(path) >= sizeof(db_path))
		return TG_ETOOBIG;
	pthread_once(&db_key_once, db_key_make);
	db_close_idle(); /* connections to the previous database */
	snprintf(db_path, sizeof(db_path), "%s", path);
	db_sync_full = synchronous_full;
	db_busy_ms = busy_timeout_ms;
	/* A database configured again (tests) gets its own counter; the old
	 * mapping (8 bytes) is left alone, as a thread may still read it. */
	on_disk = strcmp(path, ":memory:") != 0 && strncmp(path, "file:", 5) != 0;
	db_private = strcmp(path, ":memory:") == 0 || strstr(path, "mode=memory") != NULL;
	commit_counter = on_disk ? db_shared_counter("commits") : NULL;
	commit_base += (uint64_t)1 << 40;
	__atomic_store_n(&commits_counted, 0, __ATOMIC_RELEASE);
	if (on_disk && !commit_counter)
		log_warn(
			"db: cannot map %s-commits; balances are read from the database every time",
			db_path);
	return TG_OK;
}

/* SQLite calls this on the committing connection once a write transaction
 * is in the WAL and the write lock released. It replaces SQLite's own
 * auto-checkpoint hook, so it also does that hook's job: past
 * DB_CHECKPOINT_FRAMES frames the checkpointer thread (or, in a process
 * without one, this connection) copies the log into the database. */
static int wal_committed(void *ud, sqlite3 *db, const char *name, int frames)
{
	(void)ud;
	if (commit_counter)
		__atomic_add_fetch(commit_counter, 1, __ATOMIC_ACQ_REL);
	if (frames >= DB_CHECKPOINT_FRAMES && !wal_wanted())
		sqlite3_wal_checkpoint(db, name);
	return SQLITE_OK;
}

int db_commit_seq(uint64_t *seq)
{
	if (use_pg)
		return TG_EIO; /* other instances commit too: no count to trust */
	if (!commit_counter || !__atomic_load_n(&commits_counted, __ATOMIC_ACQUIRE))
		return TG_EIO;
	*seq = commit_base + __atomic_load_n(commit_counter, __ATOMIC_ACQUIRE);
	return TG_OK;
}

static int in_wal_mode(sqlite3 *db)
{
	sqlite3_stmt *st;
	const char *mode;
	int wal = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW && (mode = (const char *)sqlite3_column_text(st, 0)))
		wal = strcmp(mode, "wal") == 0;
	sqlite3_finalize(st);
	return wal;
}

static struct db_thread *db_thread(void)
{
	struct db_thread *t;
	char pragmas[256];
	char *msg = NULL;

	pthread_once(&db_key_once, db_key_make);
	t = pthread_getspecific(db_key);
	if (t)
		return t;
	if ((t = pool_get(&db_idle))) {
		pthread_setspecific(db_key, t);
		return t;
	}
	if (db_path[0] == '\0') {
		log_error("db: no database configured");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (sqlite3_open_v2(db_path, &t->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		log_error("db: cannot open %s: %s", db_path,
			  t->db ? sqlite3_errmsg(t->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(t->db, db_busy_ms);
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
		 "PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=67108864;",
		 db_sync_full ? "FULL" : "NORMAL");
	if (sqlite3_exec(t->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("db: pragmas failed: %s", msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	if (in_wal_mode(t->db)) {
		sqlite3_wal_hook(t->db, wal_committed, NULL);
		__atomic_store_n(&commits_counted, 1, __ATOMIC_RELEASE);
	}
	pthread_setspecific(db_key, t);
	return t;
fail:
	db_thread_free(t);
	return NULL;
}

sqlite3 *db_get(void)
{
	struct db_thread *t = use_pg ? NULL : db_thread();

	return t ? t->db : NULL;
}

/* Mark slot i in use (it is handed out now). 0 when no more can be tracked. */
static int slot_take(struct db_thread *t, size_t i)
{
	if (t->slots[i].in_use)
		return 1;
	if (t->n_used == STMT_USED_MAX)
		return 0;
	t->slots[i].in_use = 1;
	t->used[t->n_used++] = i;
	return 1;
}

/* A statement outside the cache, finalized when its user gives it back. */
static sqlite3_stmt *stmt_loose(struct db_thread *t, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (t->n_loose == STMT_LOOSE_MAX) {
		log_error("db: more than %d uncached statements in use: %s", STMT_LOOSE_MAX, sql);
		return NULL;
	}
	if (sqlite3_prepare_v2(t->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("db: prepare failed: %s: %s", sqlite3_errmsg(t->db), sql);
		return NULL;
	}
	t->loose[t->n_loose++] = st;
	return st;
}

int db_connect(void)
{
	if (use_pg)
		return pg_connect();
	return db_thread() ? TG_OK : TG_EDB;
}

static sqlite3_stmt *lite_stmt(const char *sql)
{
	struct db_thread *t = db_thread();
	struct stmt_slot *s;
	uintptr_t h;
	size_t i, probe, victim = STMT_SLOTS;
	sqlite3_stmt *st = NULL;

	if (!t)
		return NULL;
	h = (uintptr_t)sql;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	for (probe = 0; probe < STMT_PROBES; probe++) {
		i = (size_t)((h >> 20) + probe) & (STMT_SLOTS - 1);
		s = &t->slots[i];
		if (s->sql == sql) {
			/* In use already: an early return skipped db_done, or an
			 * outer caller holds the same SQL. As ever, it is reset
			 * and handed out again. */
			if (!slot_take(t, i))
				return stmt_loose(t, sql);
			sqlite3_reset(s->st);
			sqlite3_clear_bindings(s->st);
			return s->st;
		}
		if (!s->sql)
			break;
		if (!s->in_use && victim == STMT_SLOTS)
			victim = i;
	}
	if (probe < STMT_PROBES)
		victim = i; /* a free slot */
	else if (victim == STMT_SLOTS || t->n_used == STMT_USED_MAX)
		return stmt_loose(t, sql); /* every candidate is in use */
	if (sqlite3_prepare_v3(t->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		log_error("db: prepare failed: %s: %s", sqlite3_errmsg(t->db), sql);
		return NULL;
	}
	/* A free slot, or with the table crowded here the first candidate not
	 * in use, whose statement goes. */
	s = &t->slots[victim];
	if (s->st)
		sqlite3_finalize(s->st);
	s->sql = sql;
	s->st = st;
	s->in_use = 0;
	slot_take(t, victim);
	return st;
}

tg_stmt *db_stmt(const char *sql)
{
	if (use_pg)
		return pg_stmt(sql);
	return (tg_stmt *)lite_stmt(sql);
}

int db_step(tg_stmt *st)
{
	if (use_pg)
		return pg_step(st);
	return sqlite3_step(LITE(st));
}

int64_t db_col_int64(tg_stmt *st, int col)
{
	if (use_pg)
		return pg_col_int64(st, col);
	return sqlite3_column_int64(LITE(st), col);
}

int db_col_int(tg_stmt *st, int col)
{
	if (use_pg)
		return (int)pg_col_int64(st, col);
	return sqlite3_column_int(LITE(st), col);
}

const void *db_col_blob(tg_stmt *st, int col)
{
	if (use_pg)
		return pg_col_blob(st, col);
	return sqlite3_column_blob(LITE(st), col);
}

int db_col_bytes(tg_stmt *st, int col)
{
	if (use_pg)
		return pg_col_bytes(st, col);
	return sqlite3_column_bytes(LITE(st), col);
}

int db_col_is_null(tg_stmt *st, int col)
{
	if (use_pg)
		return pg_col_is_null(st, col);
	return sqlite3_column_type(LITE(st), col) == SQLITE_NULL;
}

const char *db_errmsg(void)
{
	sqlite3 *db;

	if (use_pg)
		return pg_errmsg();
	db = db_get();
	return db ? sqlite3_errmsg(db) : "no database";
}

int db_in_tx(void)
{
	struct db_thread *t;

	if (use_pg)
		return pg_in_tx();
	t = db_thread();
	return t && !sqlite3_get_autocommit(t->db);
}

/* The caller is done with st: a cached statement is reset and may be
 * evicted again, a loose one is finalized. */
static void stmt_give_back(sqlite3_stmt *st)
{
	struct db_thread *t = pthread_getspecific(db_key);
	int i;

	if (!t)
		return; /* the thread's connection is closed: st is gone with it */
	for (i = t->n_used - 1; i >= 0; i--) {
		struct stmt_slot *s = &t->slots[t->used[i]];

		if (s->st == st) {
			sqlite3_reset(st);
			s->in_use = 0;
			t->used[i] = t->used[--t->n_used];
			return;
		}
	}
	for (i = t->n_loose - 1; i >= 0; i--) {
		if (t->loose[i] == st) {
			sqlite3_finalize(st);
			t->loose[i] = t->loose[--t->n_loose];
			return;
		}
	}
	/* Given back twice, or handed out again while in use: reset it if it is
	 * still one of the cache's (a loose one given back is gone). */
	for (i = 0; i < STMT_SLOTS; i++) {
		if (t->slots[i].st == st) {
			sqlite3_reset(st);
			return;
		}
	}
}

static int bind_index(sqlite3_stmt *st, const char *name)
{
	int idx = sqlite3_bind_parameter_index(st, name);

	if (idx == 0)
		log_error("db: statement has no parameter %s: %s", name, sqlite3_sql(st));
	return idx;
}

int db_bind_text(tg_stmt *stmt, const char *name, const char *text)
{
	sqlite3_stmt *st = LITE(stmt);
	int idx;

	if (use_pg)
		return pg_bind_text(stmt, name, text);
	idx = bind_index(st, name);

	if (!idx)
		return TG_EINVAL;
	if (!text)
		return sqlite3_bind_null(st, idx) == SQLITE_OK ? TG_OK : TG_EDB;
	return sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT) == SQLITE_OK ? TG_OK : TG_EDB;
}

int db_bind_int64(tg_stmt *stmt, const char *name, int64_t v)
{
	sqlite3_stmt *st = LITE(stmt);
	int idx;

	if (use_pg)
		return pg_bind_int64(stmt, name, v);
	idx = bind_index(st, name);

	if (!idx)
		return TG_EINVAL;
	return sqlite3_bind_int64(st, idx, v) == SQLITE_OK ? TG_OK : TG_EDB;
}

int db_bind_null(tg_stmt *stmt, const char *name)
{
	sqlite3_stmt *st = LITE(stmt);
	int idx;

	if (use_pg)
		return pg_bind_null(stmt, name);
	idx = bind_index(st, name);

	if (!idx)
		return TG_EINVAL;
	return sqlite3_bind_null(st, idx) == SQLITE_OK ? TG_OK : TG_EDB;
}

int db_bind_blob(tg_stmt *stmt, const char *name, const void *p, int n)
{
	sqlite3_stmt *st = LITE(stmt);
	int idx;

	if (use_pg)
		return pg_bind_blob(stmt, name, p, n);
	idx = bind_index(st, name);

	if (!idx)
		return TG_EINVAL;
	return sqlite3_bind_blob(st, idx, p, n, SQLITE_TRANSIENT) == SQLITE_OK ? TG_OK : TG_EDB;
}

int db_exec_stmt(tg_stmt *stmt)
{
	sqlite3_stmt *st = LITE(stmt);
	int rc, ret = TG_OK;

	if (use_pg) {
		rc = pg_step(stmt);
		pg_done(stmt);
		return rc == DB_DONE || rc == DB_ROW ? TG_OK :
		       rc == DB_CONSTRAINT           ? TG_ECONFLICT :
						       TG_EDB;
	}
	rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		ret = TG_OK;
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		ret = TG_ECONFLICT;
	} else {
		log_error("db: step failed: %s: %s", sqlite3_errmsg(sqlite3_db_handle(st)),
			  sqlite3_sql(st));
		ret = TG_EDB;
	}
	stmt_give_back(st);
	return ret;
}

void db_done(tg_stmt *st)
{
	if (use_pg)
		pg_done(st);
	else if (st)
		stmt_give_back(LITE(st));
}

int db_exec(const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	if (use_pg)
		return pg_exec(sql);
	db = db_get();
	if (!db)
		return TG_EDB;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("db: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return TG_EDB;
	}
	return TG_OK;
}

/* ------------------------------------------------------ change counters */

static void bump_after(struct db_thread *t)
{
	int i;

	for (i = 0; i < t->n_after; i++)
		__atomic_add_fetch(t->after_commit[i], 1, __ATOMIC_ACQ_REL);
	t->n_after = 0;
}

uint64_t *db_shared_counter(const char *suffix)
{
	char path[sizeof(db_path) + 32];
	struct stat st;
	void *p;
	int fd;

	if (use_pg)
		return pg_shared_counter(suffix);
	if (!db_path[0] ||
	    snprintf(path, sizeof(path), "%s-%s", db_path, suffix) >= (int)sizeof(path))
		return NULL;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	/* Extending to 8 bytes is idempotent, so processes racing here agree. */
	if (fstat(fd, &st) != 0 ||
	    (st.st_size < (off_t)sizeof(uint64_t) && ftruncate(fd, sizeof(uint64_t)) != 0)) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

void db_changed(uint64_t *counter)
{
	struct db_thread *t;

	if (use_pg) {
		pg_changed(counter);
		return;
	}
	t = db_thread();
	if (!counter)
		return;
	__atomic_add_fetch(counter, 1, __ATOMIC_ACQ_REL);
	if (t && !sqlite3_get_autocommit(t->db)) {
		int i;

		for (i = 0; i < t->n_after; i++)
			if (t->after_commit[i] == counter)
				return;
		if (t->n_after < AFTER_COMMIT_MAX)
			t->after_commit[t->n_after++] = counter;
		else
			log_warn("db: too many change counters in one transaction");
	}
}

int db_begin(void)
{
	struct db_thread *t;
	tg_stmt *st;

	if (use_pg)
		return pg_begin(0);
	t = db_thread();
	if (!t)
		return TG_EDB;
	if (t->in_tx) {
		log_error("db: nested transaction");
		return TG_EDB;
	}
	st = db_stmt("BEGIN IMMEDIATE");
	if (!st)
		return TG_EDB;
	pthread_mutex_lock(&db_write_mu);
	if (db_exec_stmt(st) != TG_OK) {
		pthread_mutex_unlock(&db_write_mu);
		return TG_EDB;
	}
	t->in_tx = 1;
	return TG_OK;
}

int db_begin_read(void)
{
	tg_stmt *st;

	if (use_pg)
		return pg_begin(1);
	st = db_stmt("BEGIN DEFERRED");
	return st ? db_exec_stmt(st) : TG_EDB;
}

int db_try_commit(void)
{
	struct db_thread *t;
	tg_stmt *st;

	if (use_pg)
		return pg_commit();
	t = db_thread();
	st = db_stmt("COMMIT");

	if (!t || !st || db_exec_stmt(st) != TG_OK)
		return TG_EDB; /* still "in" the transaction: the caller rolls back */
	if (t->in_tx) {
		t->in_tx = 0;
		pthread_mutex_unlock(&db_write_mu);
	}
	bump_after(t);
	return TG_OK;
}

int db_commit(void)
{
	struct db_thread *t;
	tg_stmt *st;
	int rc;

	if (use_pg)
		return pg_commit();
	t = db_thread();
	st = db_stmt("COMMIT");
	if (!t || !st)
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc != TG_OK) {
		db_rollback();
		return TG_EDB;
	}
	if (t->in_tx) {
		t->in_tx = 0;
		pthread_mutex_unlock(&db_write_mu);
	}
	bump_after(t);
	return TG_OK;
}

void db_rollback(void)
{
	struct db_thread *t;

	if (use_pg) {
		pg_rollback();
		return;
	}
	t = db_thread();
	if (!t)
		return;
	if (!sqlite3_get_autocommit(t->db))
		sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
	if (t->in_tx) {
		t->in_tx = 0;
		pthread_mutex_unlock(&db_write_mu);
	}
	bump_after(t);
}

const char *db_col_text(tg_stmt *st, int col)
{
	const unsigned char *s = use_pg ? (const unsigned char *)pg_col_text(st, col) :
					  sqlite3_column_text(LITE(st), col);

	return s ? (const char *)s : "";
}

int64_t db_changes(void)
{
	sqlite3 *db;

	if (use_pg)
		return pg_changes();
	db = db_get();
	return db ? sqlite3_changes64(db) : 0;
}

int64_t db_last_id(void)
{
	sqlite3 *db;

	if (use_pg)
		return pg_last_id();
	db = db_get();
	return db ? sqlite3_last_insert_rowid(db) : 0;
}

void db_release(void)
{
	struct db_thread *t;

	if (use_pg) {
		pg_release();
		return;
	}
	pthread_once(&db_key_once, db_key_make);
	t = pthread_getspecific(db_key);
	/* None, or still in use: it stays with this thread. So does a private
	 * in-memory database, which another connection would not see. */
	if (!t || t->n_used || t->n_loose || t->in_tx || t->n_after || db_private)
		return;
	pthread_setspecific(db_key, NULL);
	if (!pool_put(&db_idle, t))
		db_thread_free(t);
}

void db_close_idle(void)
{
	pg_close_idle();
	pool_drain(&db_idle, db_thread_free_any);
}

void db_close_thread(void)
{
	struct db_thread *t;

	if (use_pg) {
		pg_close_thread();
		return;
	}
	pthread_once(&db_key_once, db_key_make);
	t = pthread_getspecific(db_key);
	if (t) {
		pthread_setspecific(db_key, NULL);
		db_thread_free(t);
	}
}

int db_checkpoint(void)
{
	sqlite3 *db;
	int log = 0, done = 0, rc;

	if (use_pg)
		return TG_OK; /* the server checkpoints itself */
	db = db_get();
	if (!db)
		return TG_EDB;
	/* RESTART waits for readers of the old log and lets writers start the log
	 * over, so it cannot grow without bound under steady load. */
	pthread_mutex_lock(&db_write_mu);
	rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
	pthread_mutex_unlock(&db_write_mu);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		log_warn("db: checkpoint failed: %s", sqlite3_errmsg(db));
		return TG_EDB;
	}
	return TG_OK;
}

static pthread_t ckpt_thread;
static int ckpt_running, ckpt_wanted;
static pthread_mutex_t ckpt_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ckpt_cv = PTHREAD_COND_INITIALIZER;

/* Asks the checkpointer thread for a checkpoint; 0 when there is none. */
static int wal_wanted(void)
{
	int running;

	pthread_mutex_lock(&ckpt_mu);
	running = ckpt_running;
	if (running) {
		ckpt_wanted = 1;
		pthread_cond_signal(&ckpt_cv);
	}
	pthread_mutex_unlock(&ckpt_mu);
	return running;
}

/* Checks the WAL's size every second and checkpoints when a commit asks:
 * passively (copying what no reader still needs) below 16 MiB, with a
 * restart of the log above, so it cannot grow without bound. */
static void *checkpointer(void *arg)
{
	char wal[4200];
	struct stat st;
	struct timespec until;
	sqlite3 *db;
	int wanted;

	(void)arg;
	snprintf(wal, sizeof(wal), "%s-wal", db_path);
	pthread_mutex_lock(&ckpt_mu);
	while (ckpt_running) {
		if (!ckpt_wanted) {
			time_deadline(&until, 1000000);
			pthread_cond_timedwait(&ckpt_cv, &ckpt_mu, &until);
		}
		if (!ckpt_running)
			break;
		wanted = ckpt_wanted;
		ckpt_wanted = 0;
		pthread_mutex_unlock(&ckpt_mu);
		if (stat(wal, &st) == 0 && st.st_size > DB_CHECKPOINT_BYTES)
			db_checkpoint();
		else if (wanted && (db = db_get()))
			sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&ckpt_mu);
	}
	pthread_mutex_unlock(&ckpt_mu);
	db_close_thread();
	return NULL;
}

int db_checkpointer_start(void)
{
	if (use_pg)
		return TG_OK;
	pthread_mutex_lock(&ckpt_mu);
	ckpt_running = 1;
	pthread_mutex_unlock(&ckpt_mu);
	if (pthread_create(&ckpt_thread, NULL, checkpointer, NULL) != 0) {
		pthread_mutex_lock(&ckpt_mu);
		ckpt_running = 0;
		pthread_mutex_unlock(&ckpt_mu);
		return TG_EIO;
	}
	return TG_OK;
}

void db_checkpointer_stop(void)
{
	if (!ckpt_running)
		return;
	pthread_mutex_lock(&ckpt_mu);
	ckpt_running = 0;
	pthread_cond_signal(&ckpt_cv);
	pthread_mutex_unlock(&ckpt_mu);
	pthread_join(ckpt_thread, NULL);
}

int db_healthy(void)
{
	tg_stmt *st = db_stmt("SELECT count(*) FROM schema_migrations");
	int ok;

	if (!st)
		return 0;
	ok = db_step(st) == DB_ROW;
	db_done(st);
	return ok;
}
