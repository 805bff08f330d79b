/* billing_pg.c - the money store of several instances sharing one PostgreSQL
 * database. See billing.h for the contract; the SQL functions named here are
 * in migrations/pg/0001_schema.sql.
 *
 * - Holds are rows of `holds`; an org's held credit is their sum. tg_hold
 *   takes one when balance - held covers it, the org's holds taking turns on
 *   an advisory lock, so the holds of all instances together never exceed an
 *   org's balance. A hold expires at a
 *   time the database's clock sets; its instance renews its holds every
 *   ttl/4 while it lives, and the instance holding the reaper's advisory
 *   lock voids the expired ones (tg_release(0): a row is deleted once, so
 *   its amount is freed exactly once).
 * - A finished call goes through the call journal as on SQLite; the
 *   journal's batch deletes the call's hold in the transaction that writes
 *   its debit (ledger_settle_at_tx), so the cost moves from held to the
 *   ledger at once, and a settle retried after the reaper voided its hold
 *   frees nothing twice.
 * - Request ids in flight are rows of inflight_requests (with an expiry, in
 *   case their instance dies); rate-limit buckets are rows of rl_buckets.
 * Any database error fails closed: a claim, limit check or hold that cannot
 * be verified refuses the call (503), it never lets it through.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "billing/billing.h"
#include "billing/inflight.h"
#include "billing/journal.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"

#define REAPER_LOCK 7106150003LL

static int64_t hold_ttl = 120;
static int64_t voided_total;

static int pg_claim_request(const char *id)
{
	tg_stmt *st;
	int rc;

	if (strlen(id) > INFLIGHT_ID_MAX)
		return TG_ECONFLICT;
	/* Taken unless billed already or in flight on a live claim; an expired
	 * claim (its instance died) is taken over. */
	st = db_stmt("INSERT INTO inflight_requests(request_id, instance, expires_at)"
		     " SELECT :id, :inst, tg_now() + :ttl"
		     " WHERE NOT EXISTS (SELECT 1 FROM ledger_entries WHERE request_id = :id)"
		     " ON CONFLICT (request_id) DO UPDATE SET instance = excluded.instance,"
		     " expires_at = excluded.expires_at"
		     " WHERE inflight_requests.expires_at < tg_now()"
		     " RETURNING 1");
	if (!st || db_bind_text(st, ":id", id) || db_bind_text(st, ":inst", db_instance()) ||
	    db_bind_int64(st, ":ttl", hold_ttl)) {
		db_done(st);
		return TG_EDB;
	}
	rc = db_step(st);
	db_done(st);
	if (rc == DB_ROW)
		return TG_OK;
	return rc == DB_DONE ? TG_ECONFLICT : TG_EDB;
}

static void pg_unclaim_request(const char *id)
{
	tg_stmt *st = db_stmt(
		"DELETE FROM inflight_requests WHERE request_id = :id AND instance = :inst");

	if (st && !db_bind_text(st, ":id", id) && !db_bind_text(st, ":inst", db_instance()))
		db_exec_stmt(st);
	else
		db_done(st);
}

/* "{1,2,3}" for an int8[] parameter. */
static void int_array(char *out, size_t n, const int64_t *v, int count)
{
	size_t o = 0;
	int i;

	o += (size_t)snprintf(out + o, n - o, "{");
	for (i = 0; i < count && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%lld", i ? "," : "", (long long)v[i]);
	if (o < n)
		snprintf(out + o, n - o, "}");
}

static int64_t units_to_ms(long double units, int64_t limit)
{
	long double ms;

	if (limit <= 0 || units <= 0)
		return 0;
	ms = units / (long double)limit / 1000.0L;
	return (int64_t)ms + ((long double)(int64_t)ms < ms ? 1 : 0);
}

#define RL_UNIT_LD 60000000.0L
#define RL_ASKS_MAX 16

static int pg_rl_admit(const struct rl_ask *asks, int n, int64_t now_us, struct rl_state *out)
{
	int64_t scopes[RL_ASKS_MAX], ids[RL_ASKS_MAX], limits[RL_ASKS_MAX], costs[RL_ASKS_MAX];
	int map[RL_ASKS_MAX], m = 0, i, j, admitted = 1, rc;
	char a1[RL_ASKS_MAX * 24], a2[RL_ASKS_MAX * 24], a3[RL_ASKS_MAX * 24], a4[RL_ASKS_MAX * 24];
	tg_stmt *st;

	(void)now_us; /* the database's clock: one for every instance */
	if (out)
		for (i = 0; i < n; i++)
			out[i] = (struct rl_state){ 0 };
	for (i = 0; i < n && m < RL_ASKS_MAX; i++) {
		if (asks[i].limit_per_min <= 0)
			continue;
		scopes[m] = asks[i].scope;
		ids[m] = asks[i].id;
		limits[m] = asks[i].limit_per_min;
		costs[m] = asks[i].cost > 0 ? asks[i].cost : 0;
		map[m++] = i;
	}
	if (m == 0)
		return 1;
	int_array(a1, sizeof(a1), scopes, m);
	int_array(a2, sizeof(a2), ids, m);
	int_array(a3, sizeof(a3), limits, m);
	int_array(a4, sizeof(a4), costs, m);
	st = db_stmt("SELECT idx, level, refused FROM tg_rl_admit(CAST(:s AS BIGINT[]),"
		     " CAST(:i AS BIGINT[]), CAST(:l AS BIGINT[]), CAST(:c AS BIGINT[]))");
	if (!st || db_bind_text(st, ":s", a1) || db_bind_text(st, ":i", a2) ||
	    db_bind_text(st, ":l", a3) || db_bind_text(st, ":c", a4)) {
		db_done(st);
		return TG_EDB;
	}
	j = 0;
	while ((rc = db_step(st)) == DB_ROW) {
		int k = db_col_int(st, 0) - 1;
		const char *lv = db_col_text(st, 1);
		long double level = strtold(lv, NULL);
		int refused = db_col_int64(st, 2) != 0;
		struct rl_state *s;
		long double want = 0;

		j++;
		if (k < 0 || k >= m)
			continue;
		if (refused)
			admitted = 0;
		if (!out)
			continue;
		s = &out[map[k]];
		s->limit = limits[k];
		s->remaining = level <= 0 ? 0 : (int64_t)(level / RL_UNIT_LD);
		s->reset_ms = units_to_ms((long double)limits[k] * RL_UNIT_LD - level, limits[k]);
		if (refused) {
			for (i = 0; i < m; i++)
				if (scopes[i] == scopes[k] && ids[i] == ids[k])
					want += (long double)costs[i];
			s->refused = 1;
			s->retry_after_ms = want > (long double)limits[k] ?
						    60000 :
						    units_to_ms(want * RL_UNIT_LD - level,
								limits[k]);
			if (s->retry_after_ms < 1)
				s->retry_after_ms = 1;
		}
	}
	db_done(st);
	if (rc != DB_DONE || j != m)
		return TG_EDB;
	return admitted;
}

static void pg_rl_adjust(enum rl_scope scope, int64_t id, int64_t limit_per_min, int64_t delta,
			 int64_t now_us)
{
	tg_stmt *st;

	(void)now_us;
	if (limit_per_min <= 0 || delta == 0)
		return;
	st = db_stmt("SELECT tg_rl_adjust(:scope, :id, :limit, :delta)");
	if (st && !db_bind_int64(st, ":scope", scope) && !db_bind_int64(st, ":id", id) &&
	    !db_bind_int64(st, ":limit", limit_per_min) && !db_bind_int64(st, ":delta", delta))
		db_exec_stmt(st);
	else
		db_done(st);
}

static int pgb_hold(const struct hold_ask *a, struct ledger_hold *h, int64_t *available)
{
	tg_stmt *st;
	int64_t id = 0, avail = 0;
	int rc;

	memset(h, 0, sizeof(*h));
	if (a->org_id <= 0 || a->amount < 0)
		return TG_EINVAL;
	st = db_stmt("SELECT hold_id, available FROM tg_hold(:org, :key, :amount, :klimit,"
		     " :ksince, :inst, :ttl, '')");
	if (!st || db_bind_int64(st, ":org", a->org_id) ||
	    db_bind_int64(st, ":key", a->key_id > 0 ? a->key_id : 0) ||
	    db_bind_int64(st, ":amount", a->amount) || db_bind_int64(st, ":klimit", a->key_limit) ||
	    db_bind_int64(st, ":ksince", a->key_since) ||
	    db_bind_text(st, ":inst", db_instance()) || db_bind_int64(st, ":ttl", hold_ttl)) {
		db_done(st);
		return TG_EDB;
	}
	rc = db_step(st);
	if (rc == DB_ROW) {
		id = db_col_int64(st, 0);
		avail = db_col_int64(st, 1);
	}
	db_done(st);
	if (rc != DB_ROW)
		return TG_EDB;
	if (id <= 0) {
		if (avail < 0)
			return TG_ENOTFOUND;
		if (available)
			*available = avail;
		return TG_EFUNDS;
	}
	h->org_id = a->org_id;
	h->key_id = a->key_id > 0 ? a->key_id : 0;
	h->amount = a->amount;
	h->serial = (uint64_t)id;
	h->active = 1;
	return TG_OK;
}

static void pgb_release(struct ledger_hold *h)
{
	tg_stmt *st;

	if (!h || !h->active)
		return;
	h->active = 0;
	if (!h->serial)
		return;
	st = db_stmt("SELECT tg_release(:id)");
	if (!st || db_bind_int64(st, ":id", (int64_t)h->serial) || db_exec_stmt(st))
		/* The row stays until it expires; the reaper frees it then. */
		log_warn("billing: hold %llu could not be released now; it expires in %llds",
			 (unsigned long long)h->serial, (long long)hold_ttl);
}

static int pgb_record(struct call_record *rec)
{
	return journal_submit(rec);
}

static int64_t pg_key_spend(int64_t key_id, int64_t since)
{
	journal_flush();
	return ledger_key_spend(key_id, since);
}

const struct billing_ops billing_pg = {
	.name = "postgres",
	.claim_request = pg_claim_request,
	.unclaim_request = pg_unclaim_request,
	.rl_admit = pg_rl_admit,
	.rl_adjust = pg_rl_adjust,
	.hold = pgb_hold,
	.release = pgb_release,
	.record = pgb_record,
	.balance = ledger_balance,
	.balance_projected = ledger_balance,
	.key_spend = pg_key_spend,
};

/* ------------------------------------------------------- background work */

static pthread_t bg_thread;
static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cv = PTHREAD_COND_INITIALIZER;
static int bg_running;

/* Renew this instance's holds and claims, and report in. */
static void renew(void)
{
	tg_stmt *st = db_stmt(
		"UPDATE holds SET expires_at = tg_now() + :ttl WHERE instance = :inst");

	if (st && !db_bind_int64(st, ":ttl", hold_ttl) && !db_bind_text(st, ":inst", db_instance()))
		db_exec_stmt(st);
	else
		db_done(st);
	st = db_stmt("UPDATE inflight_requests SET expires_at = tg_now() + :ttl"
		     " WHERE instance = :inst");
	if (st && !db_bind_int64(st, ":ttl", hold_ttl) && !db_bind_text(st, ":inst", db_instance()))
		db_exec_stmt(st);
	else
		db_done(st);
	st = db_stmt("INSERT INTO instances(name, started_at, seen_at) VALUES (:inst, tg_now(),"
		     " tg_now()) ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at");
	if (st && !db_bind_text(st, ":inst", db_instance()))
		db_exec_stmt(st);
	else
		db_done(st);
}

/* 1 while this thread's connection holds the reaper's lock (a session
 * lock: it goes with the connection, so a dead leader frees it). */
static int lead(int leading)
{
	tg_stmt *st;
	int got = 0;

	if (leading)
		return 1;
	st = db_stmt("SELECT pg_try_advisory_lock(:k)");
	if (st && !db_bind_int64(st, ":k", REAPER_LOCK) && db_step(st) == DB_ROW)
		got = db_col_int64(st, 0) != 0;
	db_done(st);
	if (got)
		log_info("billing: this instance (%s) now voids expired holds", db_instance());
	return got;
}

/* In a write transaction, so it takes its turn with the journals' batches
 * (which lock several orgs' rows) instead of deadlocking with one. */
static int reap(int64_t grace_s)
{
	tg_stmt *st;
	int64_t n = 0;
	int rc;

	if (db_begin())
		return TG_EDB;
	st = db_stmt("SELECT tg_release(:arg)");
	rc = st && !db_bind_int64(st, ":arg", -grace_s) ? db_step(st) : TG_EDB;
	if (rc == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	st = rc == DB_ROW ? db_stmt("DELETE FROM inflight_requests WHERE expires_at < tg_now()") :
			    NULL;
	if (!st || db_exec_stmt(st) || db_commit()) {
		db_rollback();
		return TG_EDB;
	}
	if (n > 0) {
		__atomic_add_fetch(&voided_total, n, __ATOMIC_RELAXED);
		log_warn("billing: voided %lld expired hold%s (their instance stopped renewing)",
			 (long long)n, n == 1 ? "" : "s");
	}
	return TG_OK;
}

static void *background(void *arg)
{
	int64_t every_ms = hold_ttl * 1000 / 4, last_renew = 0, last_sweep = 0;
	int leading = 0;
	struct timespec until;

	(void)arg;
	if (every_ms < 250)
		every_ms = 250;
	pthread_mutex_lock(&bg_mu);
	while (bg_running) {
		int64_t now = time_mono_us() / 1000;

		pthread_mutex_unlock(&bg_mu);
		if (now - last_renew >= every_ms) {
			renew();
			last_renew = now;
		}
		leading = lead(leading);
		if (leading && reap(0) != TG_OK) {
			leading = 0; /* the connection may have gone, and the lock with it */
			db_close_thread();
		}
		/* A leader can stall too (SIGSTOP, a long pause) and keep its lock:
		 * past another ttl, any instance voids what it would have. */
		if (!leading && now - last_sweep >= every_ms * 4) {
			reap(hold_ttl);
			last_sweep = now;
		}
		if (!leading)
			db_release(); /* keep the connection (and its lock) only as leader */
		pthread_mutex_lock(&bg_mu);
		if (bg_running) {
			time_deadline(&until, 500000);
			pthread_cond_timedwait(&bg_cv, &bg_mu, &until);
		}
	}
	pthread_mutex_unlock(&bg_mu);
	db_close_thread();
	return NULL;
}

int billing_pg_start(int64_t hold_ttl_s)
{
	hold_ttl = hold_ttl_s > 0 ? hold_ttl_s : 120;
	pthread_mutex_lock(&bg_mu);
	bg_running = 1;
	pthread_mutex_unlock(&bg_mu);
	if (pthread_create(&bg_thread, NULL, background, NULL) != 0) {
		bg_running = 0;
		return TG_EIO;
	}
	return TG_OK;
}

void billing_pg_stop(void)
{
	if (!bg_running)
		return;
	pthread_mutex_lock(&bg_mu);
	bg_running = 0;
	pthread_cond_signal(&bg_cv);
	pthread_mutex_unlock(&bg_mu);
	pthread_join(bg_thread, NULL);
}

int64_t billing_pg_voided(void)
{
	return __atomic_load_n(&voided_total, __ATOMIC_RELAXED);
}
