/* db_pg.c - the PostgreSQL backend of db.h (libpq), for several Tollgate
 * instances sharing one database.
 *
 * The same statements as on SQLite: ":name" parameters are rewritten to $n
 * once per statement, values are sent as text (integers typed int8, blobs
 * binary bytea, other text untyped so the server takes the column's type,
 * e.g. citext), and results come back as text that the column readers parse.
 * Each thread borrows a connection (pooled like SQLite's, db_release) with
 * its own cache of statements, prepared on the server per parameter types.
 *
 * A write transaction (db_begin) takes one transaction-scoped advisory lock
 * that every instance's db_begin shares: writes are serialized exactly as on
 * SQLite, so the code that reads a balance or a chain and then writes stays
 * right with any number of instances. The hot path of a call (claims, rate
 * limits, holds) runs single guarded statements outside that lock
 * (billing_pg.c).
 *
 * Change counters (db_shared_counter) live in the table tg_changes; a
 * watcher thread polls it every WATCH_MS and bumps the local counter of a
 * row whose seq moved, so a cache of another instance (API keys, the
 * catalog) refills within that time.
 */
#include "store/db_internal.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"

#define PG_SLOTS 512 /* power of two */
#define PG_PARAMS_MAX 64
#define PG_LOOSE_MAX 32
#define PG_AFTER_MAX 8
#define PG_WRITE_LOCK 7106150001LL /* the advisory lock of write transactions */
#define WATCH_MS 200
#define OID_INT8 20
#define OID_BYTEA 17

struct pg_conn;

struct pgq {
	const char *key; /* the SQL literal */
	char *text;      /* with $n */
	int np;
	char *names[PG_PARAMS_MAX];
	char *vals[PG_PARAMS_MAX];
	int lens[PG_PARAMS_MAX];
	int fmts[PG_PARAMS_MAX];
	unsigned types[PG_PARAMS_MAX];
	unsigned prep_types[PG_PARAMS_MAX];
	char prep_name[24];
	int prepared;
	PGresult *res;
	int executed, row, nrows;
	unsigned char **blobs; /* decoded bytea of the current row, per column */
	size_t *blob_lens;
	int ncols;
	int in_use, loose;
	struct pg_conn *conn;
};

struct pg_conn {
	PGconn *c;
	struct pgq *slots[PG_SLOTS];
	struct pgq *loose[PG_LOOSE_MAX];
	int n_loose;
	int n_used;
	int in_tx;
	unsigned prep_seq;
	int64_t changes;
	char err[512];
	uint64_t *after[PG_AFTER_MAX];
	int n_after;
};

static char pg_url[2048];
static char pg_instance[128];
static int pg_timeout_s = 5;
static pthread_key_t pg_key;
static pthread_once_t pg_once = PTHREAD_ONCE_INIT;
static struct pool pg_idle = POOL_INIT(64);
static __thread char pg_last_err[512];

static void pgq_free(struct pgq *q);

static void conn_free(void *p)
{
	struct pg_conn *t = p;
	int i;

	if (!t)
		return;
	for (i = 0; i < PG_SLOTS; i++)
		pgq_free(t->slots[i]);
	for (i = 0; i < t->n_loose; i++)
		pgq_free(t->loose[i]);
	if (t->c)
		PQfinish(t->c);
	free(t);
}

static void key_make(void)
{
	pthread_key_create(&pg_key, conn_free);
}

int pg_configure(const char *url, const char *instance, int connect_timeout_s)
{
	if (strlen(url) >= sizeof(pg_url) || strlen(instance) >= sizeof(pg_instance))
		return TG_ETOOBIG;
	pthread_once(&pg_once, key_make);
	pool_drain(&pg_idle, conn_free);
	snprintf(pg_url, sizeof(pg_url), "%s", url);
	snprintf(pg_instance, sizeof(pg_instance), "%s", instance);
	pg_timeout_s = connect_timeout_s > 0 ? connect_timeout_s : 5;
	return TG_OK;
}

const char *pg_instance_name(void)
{
	return pg_instance;
}

static void set_err(struct pg_conn *t, const char *msg)
{
	size_t n;

	snprintf(pg_last_err, sizeof(pg_last_err), "%s", msg ? msg : "unknown error");
	n = strlen(pg_last_err);
	while (n && (pg_last_err[n - 1] == '\n' || pg_last_err[n - 1] == ' '))
		pg_last_err[--n] = '\0';
	if (t)
		snprintf(t->err, sizeof(t->err), "%s", pg_last_err);
}

/* Notices (e.g. "there is no transaction in progress") are not errors. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	log_debug("db: postgres: %s", message);
}

static PGconn *pg_open(void)
{
	char timeout[16];
	const char *keys[] = { "dbname", "connect_timeout", "application_name", "options", NULL };
	const char *vals[] = {
		pg_url, timeout, "tollgate",
		"-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000", NULL
	};
	PGconn *c;

	snprintf(timeout, sizeof(timeout), "%d", pg_timeout_s);
	c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		static int64_t last_logged;
		static int suppressed;
		int64_t now = (int64_t)time(NULL);

		set_err(NULL, c ? PQerrorMessage(c) : "out of memory");
		/* Every call tries while the server is away: one line a second. */
		if (__atomic_exchange_n(&last_logged, now, __ATOMIC_RELAXED) != now) {
			int n = __atomic_exchange_n(&suppressed, 0, __ATOMIC_RELAXED);

			log_error("db: cannot connect to PostgreSQL: %s (%d more attempts failed "
				  "since the last line)",
				  pg_last_err, n);
		} else {
			__atomic_add_fetch(&suppressed, 1, __ATOMIC_RELAXED);
		}
		if (c)
			PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	return c;
}

/* This thread's connection: its own, one from the pool, or a new one. A
 * connection found broken (the server went away) is replaced, with its
 * statement cache, unless a transaction of it is still to be rolled back. */
static struct pg_conn *conn_get(void)
{
	struct pg_conn *t;

	pthread_once(&pg_once, key_make);
	t = pthread_getspecific(pg_key);
	if (!t && (t = pool_get(&pg_idle)))
		pthread_setspecific(pg_key, t);
	if (t && PQstatus(t->c) != CONNECTION_OK && !t->in_tx && !t->n_used && !t->n_loose) {
		pthread_setspecific(pg_key, NULL);
		conn_free(t);
		t = NULL;
	}
	if (t)
		return t;
	if (!pg_url[0]) {
		log_error("db: no database configured");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (!(t->c = pg_open())) {
		free(t);
		return NULL;
	}
	pthread_setspecific(pg_key, t);
	return t;
}

int pg_connect(void)
{
	return conn_get() ? TG_OK : TG_EDB;
}

/* ------------------------------------------------------------ statements */

static int name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_';
}

/* ":name" -> "$n" outside quotes and comments; names repeat as one $n. */
static int translate(struct pgq *q, const char *sql)
{
	size_t n = strlen(sql), o = 0, i;
	char *out = malloc(n * 2 + 16);

	if (!out)
		return TG_ENOMEM;
	for (i = 0; i < n;) {
		char ch = sql[i];

		if (ch == '\'' || ch == '"') {
			char quote = ch;

			out[o++] = sql[i++];
			while (i < n) {
				out[o++] = sql[i];
				if (sql[i++] == quote)
					break;
			}
		} else if (ch == '-' && i + 1 < n && sql[i + 1] == '-') {
			while (i < n && sql[i] != '\n')
				out[o++] = sql[i++];
		} else if (ch == ':' && i + 1 < n && sql[i + 1] == ':') {
			out[o++] = sql[i++];
			out[o++] = sql[i++];
		} else if (ch == ':' && i + 1 < n && name_char(sql[i + 1]) &&
			   !(sql[i + 1] >= '0' && sql[i + 1] <= '9')) {
			size_t s = i, len;
			int k;

			i++;
			while (i < n && name_char(sql[i]))
				i++;
			len = i - s;
			for (k = 0; k < q->np; k++)
				if (strlen(q->names[k]) == len &&
				    !memcmp(q->names[k], sql + s, len))
					break;
			if (k == q->np) {
				if (q->np == PG_PARAMS_MAX ||
				    !(q->names[k] = strndup(sql + s, len))) {
					free(out);
					return TG_ENOMEM;
				}
				q->np++;
			}
			o += (size_t)sprintf(out + o, "$%d", k + 1);
		} else {
			out[o++] = sql[i++];
		}
	}
	out[o] = '\0';
	q->text = out;
	return TG_OK;
}

static void pgq_clear_row(struct pgq *q)
{
	int i;

	if (q->blobs) {
		for (i = 0; i < q->ncols; i++)
			PQfreemem(q->blobs[i]);
		free(q->blobs);
		free(q->blob_lens);
	}
	q->blobs = NULL;
	q->blob_lens = NULL;
	q->ncols = 0;
}

static void pgq_reset(struct pgq *q)
{
	int i;

	pgq_clear_row(q);
	if (q->res)
		PQclear(q->res);
	q->res = NULL;
	q->executed = 0;
	q->row = -1;
	q->nrows = 0;
	for (i = 0; i < q->np; i++) {
		free(q->vals[i]);
		q->vals[i] = NULL;
		q->lens[i] = 0;
		q->fmts[i] = 0;
		q->types[i] = 0;
	}
}

static void pgq_free(struct pgq *q)
{
	int i;

	if (!q)
		return;
	pgq_reset(q);
	for (i = 0; i < q->np; i++)
		free(q->names[i]);
	free(q->text);
	free(q);
}

static struct pgq *pgq_new(struct pg_conn *t, const char *sql)
{
	struct pgq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->key = sql;
	q->conn = t;
	q->row = -1;
	if (translate(q, sql)) {
		pgq_free(q);
		return NULL;
	}
	return q;
}

tg_stmt *pg_stmt(const char *sql)
{
	struct pg_conn *t = conn_get();
	struct pgq *q;
	uintptr_t h;
	size_t i, probe;

	if (!t)
		return NULL;
	h = (uintptr_t)sql;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	for (probe = 0; probe < 8; probe++) {
		i = (size_t)((h >> 20) + probe) & (PG_SLOTS - 1);
		q = t->slots[i];
		if (q && q->key == sql && !q->in_use) {
			pgq_reset(q);
			q->in_use = 1;
			t->n_used++;
			return (tg_stmt *)q;
		}
		if (!q) {
			if (!(q = pgq_new(t, sql)))
				return NULL;
			t->slots[i] = q;
			q->in_use = 1;
			t->n_used++;
			return (tg_stmt *)q;
		}
	}
	/* Crowded, or the same statement in use already: a loose one. */
	if (t->n_loose == PG_LOOSE_MAX) {
		log_error("db: more than %d uncached statements in use: %s", PG_LOOSE_MAX, sql);
		return NULL;
	}
	if (!(q = pgq_new(t, sql)))
		return NULL;
	q->loose = 1;
	q->in_use = 1;
	t->loose[t->n_loose++] = q;
	return (tg_stmt *)q;
}

void pg_done(tg_stmt *st)
{
	struct pgq *q = (struct pgq *)st;
	struct pg_conn *t;
	int i;

	if (!q || !q->in_use)
		return;
	t = q->conn;
	q->in_use = 0;
	if (q->loose) {
		for (i = 0; i < t->n_loose; i++)
			if (t->loose[i] == q) {
				t->loose[i] = t->loose[--t->n_loose];
				break;
			}
		pgq_free(q);
		return;
	}
	pgq_reset(q);
	t->n_used--;
}

static int param_index(struct pgq *q, const char *name)
{
	int k;

	for (k = 0; k < q->np; k++)
		if (strcmp(q->names[k], name) == 0)
			return k;
	log_error("db: statement has no parameter %s: %s", name, q->key);
	return -1;
}

static int bind_value(tg_stmt *st, const char *name, char *v, int len, int fmt, unsigned type)
{
	struct pgq *q = (struct pgq *)st;
	int k = param_index(q, name);

	if (k < 0) {
		free(v);
		return TG_EINVAL;
	}
	free(q->vals[k]);
	q->vals[k] = v;
	q->lens[k] = len;
	q->fmts[k] = fmt;
	q->types[k] = type;
	return TG_OK;
}

int pg_bind_text(tg_stmt *st, const char *name, const char *text)
{
	char *v = NULL;

	if (text && !(v = strdup(text)))
		return TG_ENOMEM;
	return bind_value(st, name, v, 0, 0, 0);
}

int pg_bind_int64(tg_stmt *st, const char *name, int64_t x)
{
	char *v = malloc(24);

	if (!v)
		return TG_ENOMEM;
	snprintf(v, 24, "%lld", (long long)x);
	return bind_value(st, name, v, 0, 0, OID_INT8);
}

int pg_bind_null(tg_stmt *st, const char *name)
{
	return bind_value(st, name, NULL, 0, 0, 0);
}

int pg_bind_blob(tg_stmt *st, const char *name, const void *p, int n)
{
	char *v = malloc(n > 0 ? (size_t)n : 1);

	if (!v)
		return TG_ENOMEM;
	if (n > 0)
		memcpy(v, p, (size_t)n);
	return bind_value(st, name, v, n, 1, OID_BYTEA);
}

/* Run the statement: prepared once per connection and parameter types. */
static int pgq_execute(struct pgq *q)
{
	struct pg_conn *t = q->conn;
	const char *state;
	PGresult *r;
	int st;

	if (!q->prepared || memcmp(q->prep_types, q->types, sizeof(unsigned) * (size_t)q->np)) {
		snprintf(q->prep_name, sizeof(q->prep_name), "tg%u", ++t->prep_seq);
		r = PQprepare(t->c, q->prep_name, q->text, q->np, (const Oid *)q->types);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			set_err(t, PQresultErrorMessage(r));
			log_error("db: prepare failed: %s: %s", pg_last_err, q->key);
			PQclear(r);
			return 1;
		}
		PQclear(r);
		memcpy(q->prep_types, q->types, sizeof(unsigned) * (size_t)q->np);
		q->prepared = 1;
	}
	q->res = PQexecPrepared(t->c, q->prep_name, q->np, (const char *const *)q->vals, q->lens,
				q->fmts, 0);
	st = PQresultStatus(q->res);
	q->executed = 1;
	if (st == PGRES_TUPLES_OK) {
		q->nrows = PQntuples(q->res);
		t->changes = atoll(PQcmdTuples(q->res));
		return 0;
	}
	if (st == PGRES_COMMAND_OK) {
		t->changes = atoll(PQcmdTuples(q->res));
		return 0;
	}
	set_err(t, PQresultErrorMessage(q->res));
	state = PQresultErrorField(q->res, PG_DIAG_SQLSTATE);
	if (state && strncmp(state, "23", 2) == 0)
		return DB_CONSTRAINT;
	log_error("db: step failed: %s: %s", pg_last_err, q->key);
	if (PQstatus(t->c) != CONNECTION_OK)
		q->prepared = 0;
	return 1;
}

int pg_step(tg_stmt *st)
{
	struct pgq *q = (struct pgq *)st;
	int rc;

	if (!q)
		return 1;
	if (!q->executed) {
		if ((rc = pgq_execute(q)))
			return rc;
	}
	pgq_clear_row(q);
	if (!q->res || PQresultStatus(q->res) != PGRES_TUPLES_OK)
		return DB_DONE;
	if (++q->row < q->nrows)
		return DB_ROW;
	return DB_DONE;
}

static const char *cell(struct pgq *q, int col)
{
	if (!q || !q->res || q->row < 0 || q->row >= q->nrows || col < 0 ||
	    col >= PQnfields(q->res) || PQgetisnull(q->res, q->row, col))
		return NULL;
	return PQgetvalue(q->res, q->row, col);
}

int64_t pg_col_int64(tg_stmt *st, int col)
{
	const char *v = cell((struct pgq *)st, col);

	if (!v)
		return 0;
	if (v[0] == 't' && !v[1])
		return 1; /* a boolean */
	if (v[0] == 'f' && !v[1])
		return 0;
	return strtoll(v, NULL, 10);
}

const char *pg_col_text(tg_stmt *st, int col)
{
	return cell((struct pgq *)st, col);
}

int pg_col_is_null(tg_stmt *st, int col)
{
	return cell((struct pgq *)st, col) == NULL;
}

/* bytea comes back as "\x0a1b..."; decoded once per row and column. */
static const unsigned char *blob_of(struct pgq *q, int col, size_t *len)
{
	const char *v = cell(q, col);

	*len = 0;
	if (!v)
		return NULL;
	if (!q->blobs) {
		q->ncols = PQnfields(q->res);
		q->blobs = calloc((size_t)q->ncols, sizeof(*q->blobs));
		q->blob_lens = calloc((size_t)q->ncols, sizeof(*q->blob_lens));
		if (!q->blobs || !q->blob_lens) {
			free(q->blobs);
			free(q->blob_lens);
			q->blobs = NULL;
			q->blob_lens = NULL;
			q->ncols = 0;
			return NULL;
		}
	}
	if (!q->blobs[col])
		q->blobs[col] = PQunescapeBytea((const unsigned char *)v, &q->blob_lens[col]);
	*len = q->blob_lens[col];
	return q->blobs[col];
}

const void *pg_col_blob(tg_stmt *st, int col)
{
	size_t len;

	return blob_of((struct pgq *)st, col, &len);
}

int pg_col_bytes(tg_stmt *st, int col)
{
	struct pgq *q = (struct pgq *)st;
	const char *v = cell(q, col);
	size_t len;

	if (!v)
		return 0;
	if (PQftype(q->res, col) == OID_BYTEA) {
		blob_of(q, col, &len);
		return (int)len;
	}
	return (int)strlen(v);
}

/* -------------------------------------------------------- plain commands */

/* Run SQL text (one or more statements, no parameters); with status, the
 * command tag of the last one is copied there. */
static int run(struct pg_conn *t, const char *sql, char *status, size_t n)
{
	PGresult *r = PQexec(t->c, sql);
	int st = PQresultStatus(r), ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		set_err(t, PQresultErrorMessage(r));
	else if (status)
		snprintf(status, n, "%s", PQcmdStatus(r));
	PQclear(r);
	return ok ? TG_OK : TG_EDB;
}

int pg_exec(const char *sql)
{
	struct pg_conn *t = conn_get();

	if (!t)
		return TG_EDB;
	if (run(t, sql, NULL, 0)) {
		log_error("db: %s", pg_last_err);
		return TG_EDB;
	}
	return TG_OK;
}

static void bump_after(struct pg_conn *t)
{
	int i;

	for (i = 0; i < t->n_after; i++)
		__atomic_add_fetch(t->after[i], 1, __ATOMIC_ACQ_REL);
	t->n_after = 0;
}

int pg_begin(int read_only)
{
	struct pg_conn *t = conn_get();
	char sql[160];

	if (!t)
		return TG_EDB;
	if (t->in_tx) {
		log_error("db: nested transaction");
		return TG_EDB;
	}
	if (read_only)
		snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	else
		snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
			 (long long)PG_WRITE_LOCK);
	if (run(t, sql, NULL, 0)) {
		log_error("db: BEGIN failed: %s", pg_last_err);
		run(t, "ROLLBACK", NULL, 0);
		return TG_EDB;
	}
	t->in_tx = 1;
	return TG_OK;
}

int pg_commit(void)
{
	struct pg_conn *t = conn_get();
	char status[32] = "";
	int rc;

	if (!t)
		return TG_EDB;
	rc = run(t, "COMMIT", status, sizeof(status));
	/* COMMIT of a transaction an error aborted answers ROLLBACK. */
	if (rc == TG_OK && strcmp(status, "COMMIT") != 0) {
		set_err(t, "the transaction was rolled back after an error");
		rc = TG_EDB;
	}
	if (rc)
		log_error("db: COMMIT failed: %s", t->err);
	t->in_tx = 0;
	bump_after(t);
	return rc;
}

void pg_rollback(void)
{
	struct pg_conn *t = pthread_getspecific(pg_key);

	if (!t)
		return;
	if (PQstatus(t->c) == CONNECTION_OK && PQtransactionStatus(t->c) != PQTRANS_IDLE)
		run(t, "ROLLBACK", NULL, 0);
	t->in_tx = 0;
	bump_after(t);
}

int pg_in_tx(void)
{
	struct pg_conn *t = pthread_getspecific(pg_key);

	return t && t->in_tx;
}

const char *pg_errmsg(void)
{
	return pg_last_err[0] ? pg_last_err : "no error";
}

int64_t pg_changes(void)
{
	struct pg_conn *t = pthread_getspecific(pg_key);

	return t ? t->changes : 0;
}

int64_t pg_last_id(void)
{
	struct pg_conn *t = conn_get();
	PGresult *r;
	int64_t id = 0;

	if (!t)
		return 0;
	r = PQexec(t->c, "SELECT lastval()");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return id;
}

void pg_release(void)
{
	struct pg_conn *t;

	pthread_once(&pg_once, key_make);
	t = pthread_getspecific(pg_key);
	if (!t || t->n_used || t->n_loose || t->in_tx || t->n_after)
		return;
	pthread_setspecific(pg_key, NULL);
	if (PQstatus(t->c) != CONNECTION_OK || !pool_put(&pg_idle, t))
		conn_free(t);
}

void pg_close_idle(void)
{
	pool_drain(&pg_idle, conn_free);
}

void pg_close_thread(void)
{
	struct pg_conn *t;

	pthread_once(&pg_once, key_make);
	t = pthread_getspecific(pg_key);
	if (t) {
		pthread_setspecific(pg_key, NULL);
		conn_free(t);
	}
}

/* ------------------------------------------------------ change counters */

#define WATCH_MAX 8

struct watched {
	char name[32];
	uint64_t local; /* what caches compare */
	int64_t seen;   /* the table's seq last read */
	int valid;
};

static struct watched watch[WATCH_MAX];
static int n_watch;
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t watch_thread;
static int watch_started;

static void *watcher(void *arg)
{
	(void)arg;
	for (;;) {
		tg_stmt *st = pg_stmt("SELECT name, seq FROM tg_changes");
		int i;

		while (st && pg_step(st) == DB_ROW) {
			const char *name = pg_col_text(st, 0);
			int64_t seq = pg_col_int64(st, 1);

			pthread_mutex_lock(&watch_mu);
			for (i = 0; i < n_watch; i++) {
				if (!name || strcmp(watch[i].name, name) != 0)
					continue;
				if (watch[i].valid && watch[i].seen != seq)
					__atomic_add_fetch(&watch[i].local, 1, __ATOMIC_ACQ_REL);
				watch[i].seen = seq;
				watch[i].valid = 1;
			}
			pthread_mutex_unlock(&watch_mu);
		}
		pg_done(st);
		pg_release();
		usleep(WATCH_MS * 1000);
	}
	return NULL;
}

uint64_t *pg_shared_counter(const char *name)
{
	uint64_t *p = NULL;
	int i;

	pthread_mutex_lock(&watch_mu);
	for (i = 0; i < n_watch; i++)
		if (strcmp(watch[i].name, name) == 0)
			p = &watch[i].local;
	if (!p && n_watch < WATCH_MAX && strlen(name) < sizeof(watch[0].name)) {
		snprintf(watch[n_watch].name, sizeof(watch[0].name), "%s", name);
		p = &watch[n_watch++].local;
	}
	if (p && !watch_started) {
		if (pthread_create(&watch_thread, NULL, watcher, NULL) == 0) {
			pthread_detach(watch_thread);
			watch_started = 1;
		} else {
			p = NULL; /* no watcher: the caller's cache keeps a time limit */
		}
	}
	pthread_mutex_unlock(&watch_mu);
	return p;
}

void pg_changed(uint64_t *counter)
{
	struct pg_conn *t = conn_get();
	const char *name = NULL;
	tg_stmt *st;
	int i;

	if (!counter)
		return;
	__atomic_add_fetch(counter, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&watch_mu);
	for (i = 0; i < n_watch; i++)
		if (&watch[i].local == counter)
			name = watch[i].name;
	pthread_mutex_unlock(&watch_mu);
	if (name && (st = pg_stmt("UPDATE tg_changes SET seq = seq + 1 WHERE name = :name"))) {
		if (pg_bind_text(st, ":name", name) == TG_OK)
			pg_step(st);
		pg_done(st);
	}
	if (t && t->in_tx) {
		for (i = 0; i < t->n_after; i++)
			if (t->after[i] == counter)
				return;
		if (t->n_after < PG_AFTER_MAX)
			t->after[t->n_after++] = counter;
	}
}
