/* Property test for the ledger: a seeded PRNG drives thousands of random
 * grants, adjustments, holds (settled or released), code batches and
 * redemptions over a few orgs, against a simple model of what every balance,
 * hold and key spend must be. After each operation the balances and the held
 * total must match the model and `ledger_audit` must find nothing.
 *
 * TG_LEDGER_SEED=N reruns a given sequence; the seed is printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "store/migrate.h"

#define ORGS 4
#define OPS 2000
#define MAX_HOLDS 6
#define KEY_LIMIT 20000000 /* micro-credits, for the key of org 0 */

static uint64_t rng;

static uint64_t next(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int64_t upto(int64_t n) /* 0..n */
{
	return (int64_t)(next() % (uint64_t)(n + 1));
}

struct open_hold {
	struct ledger_hold h;
	int org;
	int with_key;
	int64_t amount;
};

struct model {
	int64_t org_id[ORGS];
	int64_t balance[ORGS];
	int64_t key_id;
	int64_t key_spent;
	struct open_hold holds[MAX_HOLDS];
	int nholds;
	char *pool[64]; /* unredeemed codes */
	int64_t pool_amount[64];
	int npool;
	char *used[64]; /* redeemed codes */
	int nused;
	int64_t settles;
	const char *last_rid;
};

static const struct audit_actor actor = { 0, "prop", "" };

static int64_t model_held(const struct model *m, int org, int key_only)
{
	int64_t sum = 0;
	int i;

	for (i = 0; i < m->nholds; i++)
		if (key_only ? m->holds[i].with_key : m->holds[i].org == org)
			sum += m->holds[i].amount;
	return sum;
}

static void check(const struct model *m, FILE *devnull, int op)
{
	int64_t total = 0;
	int i;

	for (i = 0; i < ORGS; i++) {
		int64_t b = 0;

		assert_int_equal(ledger_balance(m->org_id[i], &b), TG_OK);
		if (b != m->balance[i])
			fail_msg("op %d: org %d balance %lld, model %lld", op, i, (long long)b,
				 (long long)m->balance[i]);
	}
	for (i = 0; i < m->nholds; i++)
		total += m->holds[i].amount;
	assert_int_equal(ledger_held_total(), total);
	assert_int_equal(ledger_key_spend(m->key_id, 0), m->key_spent);
	if (ledger_audit(devnull) != TG_OK) {
		ledger_audit(stderr);
		fail_msg("op %d: the audit found drift", op);
	}
}

static void op_grant(struct model *m)
{
	int o = (int)upto(ORGS - 1);
	int64_t amount = 1 + upto(5000000);

	assert_int_equal(ledger_grant(m->org_id[o], LEDGER_GRANT, amount, "grant", &actor, NULL),
			 TG_OK);
	m->balance[o] += amount;
}

static void op_adjust(struct model *m)
{
	int o = (int)upto(ORGS - 1);
	int64_t amount = upto(6000000) - 3000000;
	int rc;

	if (amount == 0)
		amount = 1;
	rc = ledger_grant(m->org_id[o], LEDGER_ADJUST, amount, "adjust", &actor, NULL);
	if (amount < 0 && m->balance[o] + amount < 0) {
		assert_int_equal(rc, TG_EFUNDS);
	} else {
		assert_int_equal(rc, TG_OK);
		m->balance[o] += amount;
	}
}

static void op_hold(struct model *m)
{
	struct open_hold *oh;
	int o = (int)upto(ORGS - 1), with_key = o == 0 && upto(1), rc;
	int64_t amount = upto(4000000), avail = -1, expect;
	int64_t org_avail, key_avail;

	if (m->nholds == MAX_HOLDS)
		return;
	oh = &m->holds[m->nholds];
	org_avail = m->balance[o] - model_held(m, o, 0);
	expect = org_avail;
	if (with_key) {
		key_avail = KEY_LIMIT - m->key_spent - model_held(m, 0, 1);
		if (key_avail < expect)
			expect = key_avail;
		/* Both forms of the call must agree. */
		if (upto(1))
			rc = ledger_hold_since(m->org_id[o], m->key_id, amount, KEY_LIMIT, 0,
					       &oh->h, &avail);
		else
			rc = ledger_hold(m->org_id[o], m->key_id, amount, KEY_LIMIT, m->key_spent,
					 &oh->h, &avail);
	} else {
		rc = ledger_hold(m->org_id[o], 0, amount, 0, 0, &oh->h, &avail);
	}
	if (expect >= amount) {
		assert_int_equal(rc, TG_OK);
		oh->org = o;
		oh->with_key = with_key;
		oh->amount = amount;
		m->nholds++;
	} else {
		assert_int_equal(rc, TG_EFUNDS);
		assert_int_equal(avail, expect < 0 ? 0 : expect);
	}
}

static void drop_hold(struct model *m, int i)
{
	ledger_release(&m->holds[i].h);
	m->holds[i] = m->holds[--m->nholds];
}

static void op_settle(struct model *m, int64_t seq)
{
	struct open_hold *oh;
	char rid[32];
	int64_t cost, after = 0;
	int i, dup;

	if (!m->nholds)
		return;
	i = (int)upto(m->nholds - 1);
	oh = &m->holds[i];
	/* Mostly within the hold; now and then above it (the balance may then
	 * dip below zero, as documented). */
	cost = upto(10) ? upto(oh->amount) : oh->amount + upto(1000000);
	dup = m->last_rid && !upto(7);
	snprintf(rid, sizeof(rid), "prop-%lld", (long long)seq);
	assert_int_equal(db_begin(), TG_OK);
	if (dup) {
		assert_int_equal(ledger_settle_tx(&oh->h, m->last_rid, cost, &after), TG_ECONFLICT);
		db_rollback();
	} else {
		assert_int_equal(ledger_settle_tx(&oh->h, rid, cost, &after), TG_OK);
		assert_int_equal(db_commit(), TG_OK);
		m->balance[oh->org] -= cost;
		assert_int_equal(after, m->balance[oh->org]);
		if (oh->with_key)
			m->key_spent += cost;
		m->settles++;
	}
	drop_hold(m, i);
	if (!dup) {
		static char last[32];

		snprintf(last, sizeof(last), "%s", rid);
		m->last_rid = last;
	}
}

static void op_release(struct model *m)
{
	if (m->nholds)
		drop_hold(m, (int)upto(m->nholds - 1));
}

static void op_codes(struct model *m)
{
	char *codes[3];
	int n = 1 + (int)upto(2), i;
	int64_t amount = 1 + upto(3000000);

	if (m->npool + n > 64)
		return;
	assert_int_equal(ledger_codes_create(n, amount, upto(1) ? 0 : time_now() + 3600, "prop",
					     &actor, codes),
			 TG_OK);
	for (i = 0; i < n; i++) {
		m->pool[m->npool] = codes[i];
		m->pool_amount[m->npool++] = amount;
	}
}

static void op_redeem(struct model *m)
{
	int o = (int)upto(ORGS - 1), i;
	int64_t amount = 0;

	if (m->nused && !upto(4)) {
		i = (int)upto(m->nused - 1);
		assert_int_equal(ledger_redeem(m->used[i], m->org_id[o], &actor, &amount),
				 TG_ECONFLICT);
		return;
	}
	if (!m->npool)
		return;
	i = (int)upto(m->npool - 1);
	assert_int_equal(ledger_redeem(m->pool[i], m->org_id[o], &actor, &amount), TG_OK);
	assert_int_equal(amount, m->pool_amount[i]);
	m->balance[o] += amount;
	if (m->nused < 64)
		m->used[m->nused++] = m->pool[i];
	else
		free(m->pool[i]);
	m->pool[i] = m->pool[--m->npool];
	m->pool_amount[i] = m->pool_amount[m->npool];
}

static void test_random_sequences(void **state)
{
	static const char *const names[ORGS] = { "Org A", "Org B", "Org C", "Org D" };
	const char *env = getenv("TG_LEDGER_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : 20261123ULL;
	int64_t counts[8] = { 0 };
	struct model m;
	char dir[4096], path[4200], err[4300], why[160];
	FILE *devnull = fopen("/dev/null", "w");
	int applied = 0, op, i;
	tg_stmt *st;

	(void)state;
	assert_non_null(devnull);
	assert_int_equal(crypto_init(), TG_OK);
	log_set_level(LOG_WARN);
	snprintf(dir, sizeof(dir), "%s/tg-ledger-prop-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tollgate.db", dir);
	assert_int_equal(db_configure(path, 0, 10000), TG_OK);
	assert_int_equal(migrate_run(&applied, err, sizeof(err)), TG_OK);

	memset(&m, 0, sizeof(m));
	for (i = 0; i < ORGS; i++)
		assert_int_equal(org_create(names[i], &m.org_id[i], why, sizeof(why)), TG_OK);
	st = db_stmt("INSERT INTO api_keys(org_id, name, prefix, key_hash, created_at)"
		     " VALUES (:org, 'prop', 'tg_prop', randomblob(32), 0)");
	assert_non_null(st);
	assert_int_equal(db_bind_int64(st, ":org", m.org_id[0]), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	m.key_id = db_last_id();

	rng = seed;
	print_message("ledger property: seed %llu (set TG_LEDGER_SEED to rerun)\n",
		      (unsigned long long)seed);
	for (op = 0; op < OPS; op++) {
		int kind = (int)upto(99);

		if (kind < 12) {
			op_grant(&m);
			counts[0]++;
		} else if (kind < 22) {
			op_adjust(&m);
			counts[1]++;
		} else if (kind < 50) {
			op_hold(&m);
			counts[2]++;
		} else if (kind < 72) {
			op_settle(&m, op);
			counts[3]++;
		} else if (kind < 84) {
			op_release(&m);
			counts[4]++;
		} else if (kind < 90) {
			op_codes(&m);
			counts[5]++;
		} else {
			op_redeem(&m);
			counts[6]++;
		}
		check(&m, devnull, op);
	}
	while (m.nholds)
		drop_hold(&m, 0);
	check(&m, devnull, op);
	print_message(
		"ledger property: %d operations: %lld grants, %lld adjusts, %lld holds, "
		"%lld settles (%lld applied), %lld releases, %lld code batches, %lld redeems\n",
		OPS, (long long)counts[0], (long long)counts[1], (long long)counts[2],
		(long long)counts[3], (long long)m.settles, (long long)counts[4],
		(long long)counts[5], (long long)counts[6]);

	for (i = 0; i < m.npool; i++)
		free(m.pool[i]);
	for (i = 0; i < m.nused; i++)
		free(m.used[i]);
	fclose(devnull);
	db_close_thread();
	unlink(path);
	snprintf(err, sizeof(err), "%s-wal", path);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", path);
	unlink(err);
	snprintf(err, sizeof(err), "%s-commits", path);
	unlink(err);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_sequences),
	};
	return cmocka_run_group_tests_name("ledger_property", tests, NULL, NULL);
}
