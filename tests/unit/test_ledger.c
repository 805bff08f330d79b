/* Unit tests for the credits ledger: grants, adjustments, redemption codes,
 * holds and settlement, the append-only triggers, the audit, and holds under
 * concurrency. Each test runs on a fresh database in a temporary directory. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "core/base62.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "store/migrate.h"

#define C(x) (MONEY_SCALE * (int64_t)(x)) /* whole credits */

static const struct audit_actor actor = { 0, "test", "" };

struct fixture {
	char dir[4096];
	char path[4200];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	int applied = 0;

	if (!f || crypto_init())
		return -1;
	log_set_level(LOG_WARN);
	snprintf(f->dir, sizeof(f->dir), "%s/tg-ledger-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/tollgate.db", f->dir);
	db_close_thread();
	if (db_configure(f->path, 0, 10000) || !db_get() ||
	    migrate_run(&applied, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[4300];

	/* Every test gives back the holds it took. */
	assert_int_equal(ledger_held_total(), 0);
	db_close_thread();
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-commits", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t make_org(const char *name)
{
	char why[160];
	int64_t id = 0;

	assert_int_equal(org_create(name, &id, why, sizeof(why)), TG_OK);
	return id;
}

/* A bare api_keys row, so usage entries can point at a key. */
static int64_t make_key(int64_t org_id)
{
	tg_stmt *st = db_stmt("INSERT INTO api_keys(org_id, name, prefix, key_hash, created_at)"
			      " VALUES (:org, 'test', 'tg_test', randomblob(32), 0)");

	assert_non_null(st);
	assert_int_equal(db_bind_int64(st, ":org", org_id), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	return db_last_id();
}

static int64_t balance_of(int64_t org)
{
	int64_t b = -1;

	assert_int_equal(ledger_balance(org, &b), TG_OK);
	return b;
}

static int64_t count_of(const char *sql_literal)
{
	tg_stmt *st = db_stmt(sql_literal);
	int64_t n = -1;

	assert_non_null(st);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	return n;
}

/* Settle `cost` for a hold in its own transaction, commit, release. */
static int settle_commit(struct ledger_hold *h, const char *rid, int64_t cost)
{
	int64_t after;
	int rc;

	assert_int_equal(db_begin(), TG_OK);
	rc = ledger_settle_tx(h, rid, cost, &after);
	if (rc == TG_OK)
		assert_int_equal(db_commit(), TG_OK);
	else
		db_rollback();
	ledger_release(h);
	return rc;
}

/* Run the audit into a string; returns its result, *text is malloc'ed. */
static int audit_text(char **text)
{
	size_t len = 0;
	FILE *mem = open_memstream(text, &len);
	int rc;

	assert_non_null(mem);
	rc = ledger_audit(mem);
	fclose(mem);
	return rc;
}

/* ------------------------------------------------------------------ tests */

static void test_grant_adjust_balance(void **state)
{
	int64_t org = make_org("Acme"), other = make_org("Globex"), e1 = 0, e2 = 0, b;

	(void)state;
	assert_int_equal(balance_of(org), 0);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "welcome", &actor, &e1), TG_OK);
	assert_true(e1 > 0);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(3), "refund", &actor, &e2), TG_OK);
	assert_true(e2 > e1);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, 500000, "goodwill", &actor, NULL), TG_OK);
	assert_int_equal(balance_of(org), C(7) + 500000);
	assert_int_equal(balance_of(other), 0);
	assert_int_equal(ledger_balance(999, &b), TG_ENOTFOUND);
	assert_int_equal(ledger_grant(999, LEDGER_GRANT, C(1), "nobody", &actor, NULL),
			 TG_ENOTFOUND);

	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries"), 3);
	assert_int_equal(
		count_of("SELECT balance_after FROM ledger_entries ORDER BY id DESC LIMIT 1"),
		C(7) + 500000);
	assert_int_equal(count_of("SELECT count(*) FROM audit_log WHERE action = 'credits.grant'"),
			 1);
	assert_int_equal(count_of("SELECT count(*) FROM audit_log WHERE action = 'credits.adjust'"),
			 2);
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries WHERE actor = 'test'"), 3);
	assert_string_equal(ledger_kind_name(LEDGER_REDEEM), "redeem");
	assert_string_equal(ledger_kind_name(LEDGER_USAGE), "usage");
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_refusals(void **state)
{
	int64_t org = make_org("Acme");

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(5), "start", &actor, NULL), TG_OK);
	/* A deduction may not take the balance below zero. */
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(5) - 1, "too much", &actor, NULL),
			 TG_EFUNDS);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(5), "all of it", &actor, NULL), TG_OK);
	assert_int_equal(balance_of(org), 0);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -1, "below zero", &actor, NULL),
			 TG_EFUNDS);
	/* Amount rules per kind. */
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, 0, "zero", &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, -1, "negative", &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, 0, "zero", &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_USAGE, C(1), "not here", &actor, NULL),
			 TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_REDEEM, C(1), "not here", &actor, NULL),
			 TG_EINVAL);
	/* Overflow of the balance is refused, nothing written. */
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, INT64_MAX, "max", &actor, NULL), TG_OK);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, 1, "one more", &actor, NULL), TG_ERANGE);
	assert_int_equal(balance_of(org), INT64_MAX);
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries"), 3);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

/* A deduction leaves calls in flight what they reserved: otherwise they
 * would settle into a negative balance (found by the ledger fuzz target). */
static void test_adjust_respects_holds(void **state)
{
	int64_t org = make_org("Reserved"), avail = 0;
	struct ledger_hold h;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, 0, C(8), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(3), "too much", &actor, NULL),
			 TG_EFUNDS);
	assert_int_equal(balance_of(org), C(10));
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(2), "fits", &actor, NULL), TG_OK);
	assert_int_equal(settle_commit(&h, "in-flight", C(8)), TG_OK);
	assert_int_equal(balance_of(org), 0);
}

/* Holds read the org's balance from memory until the next commit of any
 * connection or process (db_commit_seq): each of these changes must be seen
 * by the very next hold. */
struct adjust_arg {
	int64_t org, amount;
	int rc;
};

static void *adjust_thread(void *p)
{
	struct adjust_arg *a = p;

	a->rc = ledger_grant(a->org, LEDGER_ADJUST, a->amount, "elsewhere", &actor, NULL);
	db_close_thread();
	return NULL;
}

static int hold_fits(int64_t org, int64_t amount, int64_t *avail)
{
	struct ledger_hold h;
	int rc = ledger_hold(org, 0, amount, 0, 0, &h, avail);

	ledger_release(&h);
	return rc;
}

static void test_cached_balance_follows_commits(void **state)
{
	struct adjust_arg a;
	pthread_t t;
	int64_t org = make_org("Cached"), avail = 0, b = 0;
	uint64_t s0 = 0, s1 = 0;
	pid_t pid;
	int status = -1;

	(void)state;
	assert_int_equal(db_commit_seq(&s0), TG_OK);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	assert_int_equal(db_commit_seq(&s1), TG_OK);
	assert_true(s1 > s0);
	assert_int_equal(hold_fits(org, C(10), &avail), TG_OK); /* fills the cache */
	assert_int_equal(hold_fits(org, C(10), &avail), TG_OK); /* from it */

	/* Another connection of this process deducts. */
	a = (struct adjust_arg){ org, -C(4), -1 };
	assert_int_equal(pthread_create(&t, NULL, adjust_thread, &a), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, TG_OK);
	assert_int_equal(hold_fits(org, C(10), &avail), TG_EFUNDS);
	assert_int_equal(avail, C(6));

	/* Another process deducts (as the CLI would): the shared counter moves. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		a = (struct adjust_arg){ org, -C(1), -1 };
		if (pthread_create(&t, NULL, adjust_thread, &a) || pthread_join(t, NULL))
			_exit(2);
		_exit(a.rc == TG_OK ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(hold_fits(org, C(6), &avail), TG_EFUNDS);
	assert_int_equal(avail, C(5));

	/* What a transaction saw of its own writes is gone with its rollback,
	 * and nothing of it stays cached. */
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(db_exec("UPDATE orgs SET balance = balance + 100000000"), TG_OK);
	assert_int_equal(ledger_balance_projected(org, &b), TG_OK);
	assert_int_equal(b, C(5) + 100000000);
	db_rollback();
	assert_int_equal(hold_fits(org, C(6), &avail), TG_EFUNDS);
	assert_int_equal(avail, C(5));
	assert_int_equal(hold_fits(org, C(5), &avail), TG_OK);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_memo_required(void **state)
{
	int64_t org = make_org("Acme");
	char memo[LEDGER_MEMO_MAX * 3 + 2];
	size_t i;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), NULL, &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), "", &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), "   ", &actor, NULL), TG_EINVAL);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), "tab\there", &actor, NULL),
			 TG_EINVAL);
	memset(memo, 'x', LEDGER_MEMO_MAX);
	memo[LEDGER_MEMO_MAX] = '\0';
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), memo, &actor, NULL), TG_OK);
	memo[LEDGER_MEMO_MAX] = 'x';
	memo[LEDGER_MEMO_MAX + 1] = '\0';
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), memo, &actor, NULL), TG_EINVAL);
	/* 500 characters of three bytes each are fine too. */
	for (i = 0; i < LEDGER_MEMO_MAX; i++)
		memcpy(memo + 3 * i, "\xe2\x82\xac", 3); /* the euro sign */
	memo[3 * LEDGER_MEMO_MAX] = '\0';
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), memo, &actor, NULL), TG_OK);
	assert_int_equal(balance_of(org), C(2));
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries"), 2);
}

static void test_settle_idempotent(void **state)
{
	int64_t org = make_org("Acme"), key = make_key(org), avail = 0, after = 0;
	struct ledger_hold h, h2;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);

	/* Outside a transaction settle is refused. */
	assert_int_equal(ledger_hold(org, key, C(2), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(ledger_settle_tx(&h, "req-1", 1500000, &after), TG_EINVAL);

	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(ledger_settle_tx(&h, "req-1", 1500000, &after), TG_OK);
	assert_int_equal(after, C(10) - 1500000);
	assert_int_equal(db_commit(), TG_OK);
	ledger_release(&h);
	assert_int_equal(ledger_held_total(), 0);

	/* A retry of the same request id: conflict, nothing written. */
	assert_int_equal(ledger_hold(org, key, C(2), 0, 0, &h2, &avail), TG_OK);
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(ledger_settle_tx(&h2, "req-1", 1500000, &after), TG_ECONFLICT);
	/* The caller's transaction is still usable after the conflict. */
	assert_int_equal(db_commit(), TG_OK);
	ledger_release(&h2);

	assert_int_equal(balance_of(org), C(10) - 1500000);
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries WHERE kind = 'usage'"), 1);
	assert_int_equal(count_of("SELECT amount FROM ledger_entries WHERE request_id = 'req-1'"),
			 -1500000);
	assert_int_equal(ledger_key_spend(key, 0), 1500000);
	assert_int_equal(ledger_key_spend(key, time_now() + 10), 0);
	assert_int_equal(ledger_org_spend(org, 0), 1500000);
	assert_int_equal(ledger_org_spend(org, ledger_month_start(time_now())), 1500000);

	/* A cost of zero is recorded (the request id is spent) and moves nothing. */
	assert_int_equal(ledger_hold(org, key, 0, 0, 0, &h, &avail), TG_OK);
	assert_int_equal(settle_commit(&h, "req-0", 0), TG_OK);
	assert_int_equal(balance_of(org), C(10) - 1500000);
	/* Bad arguments. */
	assert_int_equal(ledger_hold(org, key, C(1), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(ledger_settle_tx(&h, "", 1, &after), TG_EINVAL);
	assert_int_equal(ledger_settle_tx(&h, "req-neg", -1, &after), TG_EINVAL);
	db_rollback();
	ledger_release(&h);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_holds_exceed_balance(void **state)
{
	int64_t org = make_org("Acme"), avail = -1;
	struct ledger_hold a, b;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, 0, C(6), 0, 0, &a, &avail), TG_OK);
	assert_true(a.active);
	assert_int_equal(ledger_held_total(), C(6));
	assert_int_equal(ledger_hold(org, 0, C(5), 0, 0, &b, &avail), TG_EFUNDS);
	assert_false(b.active);
	assert_int_equal(avail, C(4));
	/* Exactly what is left fits. */
	assert_int_equal(ledger_hold(org, 0, C(4), 0, 0, &b, &avail), TG_OK);
	assert_int_equal(ledger_held_total(), C(10));
	ledger_release(&b);
	ledger_release(&a);
	assert_int_equal(ledger_hold(org, 0, C(10), 0, 0, &b, &avail), TG_OK);
	ledger_release(&b);
	assert_int_equal(ledger_hold(org, 0, C(10) + 1, 0, 0, &b, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(10));
	/* Unknown org, negative amount. */
	assert_int_equal(ledger_hold(999, 0, 1, 0, 0, &b, &avail), TG_ENOTFOUND);
	assert_int_equal(ledger_hold(org, 0, -1, 0, 0, &b, &avail), TG_EINVAL);
	assert_int_equal(ledger_held_total(), 0);
}

static void test_key_limit_hold(void **state)
{
	int64_t org = make_org("Acme"), key = make_key(org), other = make_key(org), avail = -1;
	struct ledger_hold a, b, c;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(100), "start", &actor, NULL), TG_OK);
	/* Limit 5, already spent 2: 3 left for this key. */
	assert_int_equal(ledger_hold(org, key, C(4), C(5), C(2), &a, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(3));
	assert_int_equal(ledger_hold(org, key, C(3), C(5), C(2), &a, &avail), TG_OK);
	assert_int_equal(ledger_hold(org, key, 1, C(5), C(2), &b, &avail), TG_EFUNDS);
	assert_int_equal(avail, 0);
	/* Another key of the org is not limited by this one. */
	assert_int_equal(ledger_hold(org, other, C(50), 0, 0, &c, &avail), TG_OK);
	/* The org cap is the smaller one now: 100 - 3 - 50 = 47 < key limit. */
	assert_int_equal(ledger_hold(org, other, C(48), C(1000), 0, &b, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(47));
	ledger_release(&c);
	ledger_release(&a);

	/* ledger_hold_since reads the key's spend itself. */
	assert_int_equal(ledger_hold_since(org, key, C(4), C(5), 0, &a, &avail), TG_OK);
	assert_int_equal(settle_commit(&a, "k-1", C(4)), TG_OK);
	assert_int_equal(ledger_key_spend(key, 0), C(4));
	assert_int_equal(ledger_hold_since(org, key, C(2), C(5), 0, &a, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(1));
	/* A later period start forgets the earlier spend. */
	assert_int_equal(ledger_hold_since(org, key, C(5), C(5), time_now() + 5, &a, &avail),
			 TG_OK);
	ledger_release(&a);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_release_idempotent(void **state)
{
	int64_t org = make_org("Acme"), avail;
	struct ledger_hold h, zero;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	ledger_release(&zero);
	ledger_release(NULL);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(3), "start", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, 0, C(2), 0, 0, &h, &avail), TG_OK);
	ledger_release(&h);
	ledger_release(&h);
	assert_false(h.active);
	assert_int_equal(ledger_held_total(), 0);
	/* A settled hold is released once too. */
	assert_int_equal(ledger_hold(org, 0, C(2), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(settle_commit(&h, "r-1", C(1)), TG_OK);
	ledger_release(&h);
	assert_int_equal(ledger_held_total(), 0);
	assert_int_equal(balance_of(org), C(2));
}

/* The settled cost is counted exactly once between the commit and the
 * release, and before the commit as well. */
struct fit_arg {
	int64_t org, amount;
	int rc;
	int64_t avail;
};

static void *fit_thread(void *p)
{
	struct fit_arg *a = p;
	struct ledger_hold h;

	a->rc = ledger_hold(a->org, 0, a->amount, 0, 0, &h, &a->avail);
	ledger_release(&h);
	db_close_thread();
	return NULL;
}

static int other_thread_hold(int64_t org, int64_t amount, int64_t *avail)
{
	struct fit_arg a = { org, amount, -1, 0 };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, fit_thread, &a), 0);
	pthread_join(t, NULL);
	if (avail)
		*avail = a.avail;
	return a.rc;
}

static void test_no_double_count(void **state)
{
	int64_t org = make_org("Acme"), avail = 0, after;
	struct ledger_hold a, b;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, 0, C(10), 0, 0, &a, &avail), TG_OK);
	assert_int_equal(other_thread_hold(org, 1, &avail), TG_EFUNDS);
	assert_int_equal(avail, 0);

	/* Settled, not committed: the cost (4) counts, not the hold (10). */
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(ledger_settle_tx(&a, "r-1", C(4), &after), TG_OK);
	assert_int_equal(other_thread_hold(org, C(6), NULL), TG_OK);
	assert_int_equal(other_thread_hold(org, C(6) + 1, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(6));
	/* This thread sees its own uncommitted debit: the same answer. */
	assert_int_equal(ledger_hold(org, 0, C(6), 0, 0, &b, &avail), TG_OK);
	ledger_release(&b);
	assert_int_equal(ledger_hold(org, 0, C(6) + 1, 0, 0, &b, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(6));
	assert_int_equal(db_commit(), TG_OK);

	/* Committed, not yet released: the balance (6) already has it. */
	assert_int_equal(balance_of(org), C(6));
	assert_int_equal(other_thread_hold(org, C(6), NULL), TG_OK);
	assert_int_equal(other_thread_hold(org, C(6) + 1, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(6));
	ledger_release(&a);
	assert_int_equal(other_thread_hold(org, C(6), NULL), TG_OK);

	/* Settled then rolled back: until released it may count its cost, never more. */
	assert_int_equal(ledger_hold(org, 0, C(5), 0, 0, &a, &avail), TG_OK);
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(ledger_settle_tx(&a, "r-2", C(2), &after), TG_OK);
	db_rollback();
	assert_int_equal(other_thread_hold(org, C(4), NULL), TG_OK);
	ledger_release(&a);
	assert_int_equal(other_thread_hold(org, C(6), NULL), TG_OK);
	assert_int_equal(balance_of(org), C(6));
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries WHERE request_id = 'r-2'"),
			 0);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_redeem_once(void **state)
{
	int64_t org = make_org("Acme"), other = make_org("Globex"), amount = 0;
	char *codes[3] = { 0 };
	char bad[LEDGER_CODE_LEN + 1];
	int i;

	(void)state;
	assert_int_equal(ledger_codes_create(3, C(25), 0, "launch", &actor, codes), TG_OK);
	for (i = 0; i < 3; i++) {
		assert_non_null(codes[i]);
		assert_int_equal(strlen(codes[i]), LEDGER_CODE_LEN);
		assert_memory_equal(codes[i], "tgc_", 4);
		assert_true(base62_is_valid(codes[i] + 4, 24));
	}
	assert_string_not_equal(codes[0], codes[1]);
	/* Stored hashed: the prefix is there, the code is not. */
	assert_int_equal(count_of("SELECT count(*) FROM redemption_codes WHERE length(prefix) = 12"
				  " AND length(code_hash) = 32 AND batch = 'launch'"),
			 3);

	assert_int_equal(ledger_redeem(codes[0], org, &actor, &amount), TG_OK);
	assert_int_equal(amount, C(25));
	assert_int_equal(balance_of(org), C(25));
	assert_int_equal(ledger_redeem(codes[0], org, &actor, &amount), TG_ECONFLICT);
	assert_int_equal(ledger_redeem(codes[0], other, &actor, &amount), TG_ECONFLICT);
	assert_int_equal(balance_of(other), 0);
	assert_int_equal(ledger_redeem(codes[1], other, &actor, &amount), TG_OK);
	assert_int_equal(balance_of(other), C(25));

	/* Malformed or unknown codes. */
	assert_int_equal(ledger_redeem("", org, &actor, &amount), TG_ENOTFOUND);
	assert_int_equal(ledger_redeem(NULL, org, &actor, &amount), TG_ENOTFOUND);
	assert_int_equal(ledger_redeem("tgc_short", org, &actor, &amount), TG_ENOTFOUND);
	snprintf(bad, sizeof(bad), "%s", codes[2]);
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	assert_int_equal(ledger_redeem(bad, org, &actor, &amount), TG_ENOTFOUND);
	bad[10] = '-';
	assert_int_equal(ledger_redeem(bad, org, &actor, &amount), TG_ENOTFOUND);
	/* An unknown org does not spend the code. */
	assert_int_equal(ledger_redeem(codes[2], 999, &actor, &amount), TG_EINVAL);
	assert_int_equal(count_of(
				 "SELECT count(*) FROM redemption_codes WHERE redeemed_at IS NULL"),
			 1);

	/* Batch arguments. */
	assert_int_equal(ledger_codes_create(0, C(1), 0, "x", &actor, codes), TG_EINVAL);
	assert_int_equal(ledger_codes_create(LEDGER_CODES_MAX + 1, C(1), 0, "x", &actor, codes),
			 TG_EINVAL);
	assert_int_equal(ledger_codes_create(1, 0, 0, "x", &actor, codes), TG_EINVAL);
	assert_int_equal(ledger_codes_create(1, C(1), 0, "", &actor, codes), TG_EINVAL);
	assert_int_equal(ledger_codes_create(1, C(1), time_now() - 1, "x", &actor, codes),
			 TG_EINVAL);
	assert_int_equal(count_of("SELECT count(*) FROM audit_log WHERE action = 'credits.redeem'"),
			 2);
	assert_int_equal(count_of("SELECT count(*) FROM audit_log WHERE action = 'codes.create'"),
			 1);
	for (i = 0; i < 3; i++)
		free(codes[i]);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_expired_code(void **state)
{
	int64_t org = make_org("Acme"), amount = 0;
	char *code = NULL;

	(void)state;
	assert_int_equal(ledger_codes_create(1, C(5), time_now() + 3600, "soon", &actor, &code),
			 TG_OK);
	assert_int_equal(db_exec("UPDATE redemption_codes SET expires_at = 1000"), TG_OK);
	assert_int_equal(ledger_redeem(code, org, &actor, &amount), TG_EPERM);
	assert_int_equal(balance_of(org), 0);
	assert_int_equal(count_of(
				 "SELECT count(*) FROM redemption_codes WHERE redeemed_at IS NULL"),
			 1);
	assert_int_equal(db_exec("UPDATE redemption_codes SET expires_at = NULL"), TG_OK);
	assert_int_equal(ledger_redeem(code, org, &actor, &amount), TG_OK);
	assert_int_equal(balance_of(org), C(5));
	free(code);
	assert_int_equal(ledger_audit(NULL), TG_OK);
}

static void test_append_only(void **state)
{
	int64_t org = make_org("Acme");
	sqlite3 *db = db_get();

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(1), "start", &actor, NULL), TG_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE ledger_entries SET amount = 2", NULL, NULL,
					  NULL),
			     SQLITE_OK);
	assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM ledger_entries", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
	assert_int_equal(count_of("SELECT amount FROM ledger_entries"), C(1));
}

static void test_audit_drift(void **state)
{
	int64_t org = make_org("Acme"), avail;
	struct ledger_hold h;
	char *text = NULL, *code = NULL;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, 0, C(1), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(settle_commit(&h, "r-1", 250000), TG_OK);
	assert_int_equal(ledger_codes_create(1, C(2), 0, "b", &actor, &code), TG_OK);
	assert_int_equal(ledger_redeem(code, org, &actor, NULL), TG_OK);
	free(code);

	assert_int_equal(audit_text(&text), TG_OK);
	assert_string_equal(text, "audit: 1 orgs, 3 entries, balances OK\n");
	free(text);

	assert_int_equal(db_exec("UPDATE orgs SET balance = balance + 1"), TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(
		strstr(text, "org 1 (Acme): balance 11.750001 but its entries sum to 11.750000"));
	assert_non_null(strstr(text, "1 problem found"));
	free(text);
	assert_int_equal(db_exec("UPDATE orgs SET balance = balance - 1"), TG_OK);
	assert_int_equal(ledger_audit(NULL), TG_OK);

	/* A code marked redeemed without its entry. */
	assert_int_equal(ledger_codes_create(1, C(2), 0, "c", &actor, &code), TG_OK);
	free(code);
	assert_int_equal(db_exec("UPDATE redemption_codes SET redeemed_at = 1, redeemed_org_id = 1"
				 " WHERE redeemed_at IS NULL"),
			 TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "redeemed but has 0 redeem entries"));
	free(text);
}

static void test_audit_tamper(void **state)
{
	int64_t org = make_org("Acme");
	char *text = NULL;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "one", &actor, NULL), TG_OK);
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(20), "two", &actor, NULL), TG_OK);
	assert_int_equal(ledger_grant(org, LEDGER_ADJUST, -C(5), "three", &actor, NULL), TG_OK);
	assert_int_equal(ledger_audit(NULL), TG_OK);

	assert_int_equal(db_exec("DROP TRIGGER ledger_entries_no_update"), TG_OK);
	/* A memo edit breaks only the chain. */
	assert_int_equal(db_exec("UPDATE ledger_entries SET memo = 'edited' WHERE id = 1"), TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "entry 1 (org 1): hash chain broken"));
	assert_null(strstr(text, "entry 2 (org 1)"));
	free(text);
	assert_int_equal(db_exec("UPDATE ledger_entries SET memo = 'one' WHERE id = 1"), TG_OK);
	assert_int_equal(ledger_audit(NULL), TG_OK);

	/* An amount edited with balance_after and the cached balance kept
	 * consistent: only the chain can tell. */
	assert_int_equal(db_exec("UPDATE ledger_entries SET amount = amount + 1000000,"
				 " balance_after = balance_after + 1000000 WHERE id >= 2"),
			 TG_OK);
	assert_int_equal(
		db_exec("UPDATE ledger_entries SET amount = amount - 1000000 WHERE id = 3"), TG_OK);
	assert_int_equal(db_exec("UPDATE orgs SET balance = balance + 1000000"), TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "entry 2 (org 1): hash chain broken"));
	assert_null(strstr(text, "balance_after"));
	free(text);

	/* A plain amount edit: chain, continuity and balance all complain. */
	assert_int_equal(db_exec("UPDATE ledger_entries SET amount = amount + 7 WHERE id = 1"),
			 TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "entry 1 (org 1): hash chain broken"));
	assert_non_null(strstr(text, "entry 1 (org 1): balance_after"));
	assert_non_null(strstr(text, "but its entries sum to"));
	free(text);

	/* A deleted entry (trigger dropped) breaks the next one's chain. */
	assert_int_equal(db_exec("DROP TRIGGER ledger_entries_no_delete"), TG_OK);
	assert_int_equal(db_exec("DELETE FROM ledger_entries WHERE id = 2"), TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "entry 3 (org 1): hash chain broken"));
	free(text);
}

static void test_audit_orphans(void **state)
{
	int64_t org = make_org("Acme"), key = make_key(org), avail;
	struct ledger_hold h;
	char *text = NULL;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "one", &actor, NULL), TG_OK);
	assert_int_equal(ledger_hold(org, key, C(1), 0, 0, &h, &avail), TG_OK);
	assert_int_equal(settle_commit(&h, "r-1", C(1)), TG_OK);
	assert_int_equal(ledger_audit(NULL), TG_OK);
	/* With foreign keys off, remove the key row under the entry. */
	assert_int_equal(db_exec("PRAGMA foreign_keys = OFF"), TG_OK);
	assert_int_equal(db_exec("DELETE FROM api_keys"), TG_OK);
	assert_int_equal(db_exec("PRAGMA foreign_keys = ON"), TG_OK);
	assert_int_equal(audit_text(&text), TG_ECONFLICT);
	assert_non_null(strstr(text, "entry 2 points at missing API key 1"));
	free(text);
}

/* ---------------------------------------------------------- concurrency */

#define THREADS 8
#define CYCLES 200

struct worker {
	int64_t org;
	uint64_t seed;
	int64_t settled; /* sum of costs this thread settled */
	int ok, refused, errors;
	int idx;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	char rid[48];
	int i;

	for (i = 0; i < CYCLES; i++) {
		struct ledger_hold h;
		int64_t amount = 1000 + (int64_t)(xorshift(&w->seed) % 200000), avail = 0, after;
		int rc = ledger_hold(w->org, 0, amount, 0, 0, &h, &avail);

		if (rc == TG_EFUNDS) {
			w->refused++;
			if (avail < 0 || avail >= amount)
				w->errors++;
			continue;
		}
		if (rc) {
			w->errors++;
			continue;
		}
		w->ok++;
		if (xorshift(&w->seed) % 3) {
			/* Often the whole hold, so any over-admission would show as
			 * a negative balance. */
			int64_t cost = xorshift(&w->seed) % 2 ? amount :
								(int64_t)(xorshift(&w->seed) %
									  (uint64_t)(amount + 1));

			snprintf(rid, sizeof(rid), "t%d-%d", w->idx, i);
			if (db_begin()) {
				w->errors++;
			} else if (ledger_settle_tx(&h, rid, cost, &after) != TG_OK) {
				db_rollback();
				w->errors++;
			} else if (db_commit() != TG_OK) {
				w->errors++;
			} else {
				w->settled += cost;
				if (after < 0)
					w->errors++;
			}
		}
		ledger_release(&h);
	}
	db_close_thread();
	return NULL;
}

static void test_concurrent_holds(void **state)
{
	int64_t org = make_org("Acme"), total = 0, start = C(20);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	int i, ok = 0, refused = 0;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, start, "small", &actor, NULL), TG_OK);
	for (i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].org = org;
		w[i].idx = i;
		w[i].seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].errors, 0);
		total += w[i].settled;
		ok += w[i].ok;
		refused += w[i].refused;
	}
	assert_int_equal(ok + refused, THREADS * CYCLES);
	assert_true(refused > 0); /* the balance was small enough to run out */
	assert_true(balance_of(org) >= 0);
	assert_int_equal(balance_of(org), start - total);
	assert_int_equal(ledger_org_spend(org, 0), total);
	assert_true(count_of("SELECT coalesce(min(balance_after), 0) FROM ledger_entries") >= 0);
	assert_int_equal(ledger_held_total(), 0);
	assert_int_equal(ledger_audit(NULL), TG_OK);
	print_message("concurrency: %d holds granted, %d refused, %lld micro-credits settled\n", ok,
		      refused, (long long)total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_grant_adjust_balance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adjust_respects_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached_balance_follows_commits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_memo_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holds_exceed_balance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_limit_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_double_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redeem_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_orphans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_holds, setup, teardown),
	};
	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
