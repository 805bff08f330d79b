/* fuzz_ledger.c - sequences of ledger operations on a fresh database.
 *
 * Every input gets a new in-memory SQLite database (db_configure() +
 * migrate_run()) with two orgs and one API key of org 0. The input is read
 * three bytes at a time, at most 64 operations: grant, adjust, hold, settle,
 * release, create codes, redeem (a code of the batch, a used one or garbage)
 * and grant/adjust with a fuzzed memo or amount. A model tracks what every
 * balance, hold and key spend must be. After each operation: the balances,
 * the held total and the key's spend equal the model, ledger_audit() is
 * clean, and no balance is below zero unless a settle above its hold made it
 * so (the one documented way). At the end every hold is released and the
 * held total must be back to zero.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "store/db.h"
#include "store/migrate.h"

#define CHECK(c)                                                                                \
	do {                                                                                    \
		if (!(c)) {                                                                     \
			fprintf(stderr, "fuzz_ledger: check failed: %s (line %d, op %d)\n", #c, \
				__LINE__, cur_op);                                              \
			if (devnull)                                                            \
				ledger_audit(stderr);                                           \
			abort();                                                                \
		}                                                                               \
	} while (0)

#define ORGS 2
#define MAX_OPS 64
#define MAX_HOLDS 6
#define MAX_CODES 16
#define KEY_LIMIT 5000000

static int cur_op;
static FILE *devnull;
static const struct audit_actor actor = { 0, "fuzz", "" };

struct open_hold {
	struct ledger_hold h;
	int org, with_key;
	int64_t amount;
};

struct model {
	int64_t org_id[ORGS], balance[ORGS], key_id, key_spent;
	int may_be_negative[ORGS];
	struct open_hold holds[MAX_HOLDS];
	int nholds;
	char *pool[MAX_CODES];
	int64_t pool_amount[MAX_CODES];
	int npool;
	char *used[MAX_CODES];
	int nused;
	char last_rid[32];
	int nrid;
};

static int64_t held(const struct model *m, int org, int key_only)
{
	int64_t s = 0;
	int i;

	for (i = 0; i < m->nholds; i++)
		if (key_only ? m->holds[i].with_key : m->holds[i].org == org)
			s += m->holds[i].amount;
	return s;
}

static void check(const struct model *m)
{
	int64_t total = 0, b;
	int i;

	for (i = 0; i < ORGS; i++) {
		b = -1;
		CHECK(ledger_balance(m->org_id[i], &b) == TG_OK);
		CHECK(b == m->balance[i]);
		CHECK(b >= 0 || m->may_be_negative[i]);
	}
	for (i = 0; i < m->nholds; i++)
		total += m->holds[i].amount;
	CHECK(ledger_held_total() == total);
	CHECK(ledger_key_spend(m->key_id, 0) == m->key_spent);
	CHECK(ledger_audit(devnull) == TG_OK);
}

static void drop_hold(struct model *m, int i)
{
	ledger_release(&m->holds[i].h);
	ledger_release(&m->holds[i].h); /* idempotent */
	m->holds[i] = m->holds[--m->nholds];
}

static void op_grant(struct model *m, int o, int64_t amount, enum ledger_kind kind,
		     const char *memo, int memo_may_fail)
{
	int64_t id = 0;
	int rc = ledger_grant(m->org_id[o], kind, amount, memo, &actor, &id);

	if (memo_may_fail && rc == TG_EINVAL)
		return;
	if ((kind == LEDGER_GRANT && amount <= 0) || (kind == LEDGER_ADJUST && amount == 0)) {
		CHECK(rc == TG_EINVAL);
		return;
	}
	/* A deduction leaves calls in flight what they reserved. */
	if (kind == LEDGER_ADJUST && amount < 0 &&
	    (m->balance[o] + amount < 0 || m->balance[o] + amount < held(m, o, 0))) {
		CHECK(rc == TG_EFUNDS);
		return;
	}
	CHECK(rc == TG_OK);
	CHECK(id > 0);
	m->balance[o] += amount;
}

static void op_hold(struct model *m, int o, int with_key, int64_t amount, int since)
{
	struct open_hold *oh;
	int64_t avail = -7, expect;
	int rc;

	if (m->nholds == MAX_HOLDS)
		return;
	with_key = with_key && o == 0;
	oh = &m->holds[m->nholds];
	expect = m->balance[o] - held(m, o, 0);
	if (with_key && KEY_LIMIT - m->key_spent - held(m, 0, 1) < expect)
		expect = KEY_LIMIT - m->key_spent - held(m, 0, 1);
	if (with_key && since)
		rc = ledger_hold_since(m->org_id[o], m->key_id, amount, KEY_LIMIT, 0, &oh->h,
				       &avail);
	else if (with_key)
		rc = ledger_hold(m->org_id[o], m->key_id, amount, KEY_LIMIT, m->key_spent, &oh->h,
				 &avail);
	else
		rc = ledger_hold(m->org_id[o], 0, amount, 0, 0, &oh->h, &avail);
	if (amount < 0) {
		CHECK(rc == TG_EINVAL && !oh->h.active);
		return;
	}
	if (expect >= amount) {
		CHECK(rc == TG_OK && oh->h.active);
		oh->org = o;
		oh->with_key = with_key;
		oh->amount = amount;
		m->nholds++;
	} else {
		CHECK(rc == TG_EFUNDS && !oh->h.active);
		CHECK(avail == (expect < 0 ? 0 : expect));
	}
}

static void op_settle(struct model *m, int a1, int a2)
{
	struct open_hold *oh;
	int64_t cost, after = 0;
	char rid[32];
	int i, dup, rc;

	if (!m->nholds)
		return;
	i = a1 % m->nholds;
	oh = &m->holds[i];
	if (a2 < 240)
		cost = oh->amount * a2 / 239; /* within the hold */
	else
		cost = oh->amount + (int64_t)(a2 - 239) * 100000; /* above it */
	dup = (a1 & 0x80) && m->last_rid[0];
	snprintf(rid, sizeof(rid), "fuzz-%d", ++m->nrid);
	CHECK(db_begin() == TG_OK);
	rc = ledger_settle_tx(&oh->h, dup ? m->last_rid : rid, cost, &after);
	if (dup) {
		CHECK(rc == TG_ECONFLICT);
		db_rollback();
	} else {
		CHECK(rc == TG_OK);
		CHECK(db_commit() == TG_OK);
		m->balance[oh->org] -= cost;
		CHECK(after == m->balance[oh->org]);
		if (cost > oh->amount)
			m->may_be_negative[oh->org] = 1;
		if (oh->with_key)
			m->key_spent += cost;
		snprintf(m->last_rid, sizeof(m->last_rid), "%s", rid);
	}
	drop_hold(m, i);
}

static void op_codes(struct model *m, int a1, int a2)
{
	char *codes[2] = { NULL, NULL };
	int n = 1 + (a1 & 1), i;
	int64_t amount = 1 + (int64_t)a2 * 10000;

	if (m->npool + n > MAX_CODES)
		return;
	CHECK(ledger_codes_create(n, amount, (a1 & 2) ? 0 : time_now() + 3600, "fuzz", &actor,
				  codes) == TG_OK);
	for (i = 0; i < n; i++) {
		CHECK(codes[i] && strlen(codes[i]) == LEDGER_CODE_LEN);
		m->pool[m->npool] = codes[i];
		m->pool_amount[m->npool++] = amount;
	}
}

static void op_redeem(struct model *m, int a1, int a2, const uint8_t *raw)
{
	int o = a1 & 1, rc, i;
	int64_t amount = 0;
	char garbage[LEDGER_CODE_LEN + 1];

	switch ((a1 >> 1) % 3) {
	case 0: /* garbage: a code-shaped or short string from the input */
		memcpy(garbage, "tgc_", 4);
		for (i = 4; i < LEDGER_CODE_LEN; i++)
			garbage[i] = (char)(raw[i % 3] ? raw[i % 3] : 'A');
		garbage[(a2 % 2) ? LEDGER_CODE_LEN : 4 + a2 % 24] = '\0';
		rc = ledger_redeem(garbage, m->org_id[o], &actor, &amount);
		CHECK(rc == TG_ENOTFOUND);
		return;
	case 1: /* a used one */
		if (!m->nused)
			return;
		rc = ledger_redeem(m->used[a2 % m->nused], m->org_id[o], &actor, &amount);
		CHECK(rc == TG_ECONFLICT);
		return;
	default:
		if (!m->npool)
			return;
		i = a2 % m->npool;
		rc = ledger_redeem(m->pool[i], m->org_id[o], &actor, &amount);
		CHECK(rc == TG_OK && amount == m->pool_amount[i]);
		m->balance[o] += amount;
		m->used[m->nused++] = m->pool[i];
		m->pool[i] = m->pool[--m->npool];
		m->pool_amount[i] = m->pool_amount[m->npool];
	}
}

static void setup(struct model *m)
{
	static const char *const names[ORGS] = { "Org A", "Org B" };
	char err[512], why[160];
	sqlite3_stmt *st;
	int applied = 0, i;

	memset(m, 0, sizeof(*m));
	db_close_thread();
	CHECK(db_configure(":memory:", 0, 1000) == TG_OK);
	CHECK(migrate_run(&applied, err, sizeof(err)) == TG_OK);
	for (i = 0; i < ORGS; i++)
		CHECK(org_create(names[i], &m->org_id[i], why, sizeof(why)) == TG_OK);
	st = db_stmt("INSERT INTO api_keys(org_id, name, prefix, key_hash, created_at)"
		     " VALUES (:org, 'fuzz', 'tg_fuzz', randomblob(32), 0)");
	CHECK(st != NULL);
	CHECK(db_bind_int64(st, ":org", m->org_id[0]) == TG_OK);
	CHECK(db_exec_stmt(st) == TG_OK);
	m->key_id = db_last_id();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct model m;
	size_t nops = size / 3, k;
	int i;

	if (!devnull) {
		CHECK(crypto_init() == TG_OK);
		log_set_level(LOG_ERROR);
		devnull = fopen("/dev/null", "w");
		CHECK(devnull != NULL);
	}
	if (nops > MAX_OPS)
		nops = MAX_OPS;
	setup(&m);
	check(&m);
	for (k = 0; k < nops; k++) {
		const uint8_t *o = data + 3 * k;
		int a1 = o[1], a2 = o[2], org = a1 & 1;

		cur_op = (int)k;
		switch (o[0] % 9) {
		case 0:
			op_grant(&m, org, 1 + (int64_t)a2 * (1 + (a1 >> 1)) * 1000, LEDGER_GRANT,
				 "grant", 0);
			break;
		case 1:
			op_grant(&m, org, (int64_t)(int8_t)a2 * 50000, LEDGER_ADJUST, "adjust", 0);
			break;
		case 2:
		case 3:
			op_hold(&m, org, a1 & 2, (int64_t)a2 * 40000 - (a1 == 255), a1 & 4);
			break;
		case 4:
		case 5:
			op_settle(&m, a1, a2);
			break;
		case 6:
			if (m.nholds)
				drop_hold(&m, a1 % m.nholds);
			break;
		case 7:
			if (a1 & 0x80)
				op_codes(&m, a1, a2);
			else
				op_redeem(&m, a1, a2, o);
			break;
		default: {
			/* a memo or amount from the input: may be refused, never half-done */
			char memo[8];
			size_t ml = (size_t)(a1 >> 5);

			memset(memo, a2, ml);
			memo[ml] = '\0';
			op_grant(&m, org, (int64_t)(int8_t)a1 * 1000,
				 (a2 & 1) ? LEDGER_ADJUST : LEDGER_GRANT, memo, 1);
		}
		}
		check(&m);
	}
	cur_op = -1;
	while (m.nholds)
		drop_hold(&m, 0);
	CHECK(ledger_held_total() == 0);
	check(&m);
	for (i = 0; i < m.npool; i++)
		free(m.pool[i]);
	for (i = 0; i < m.nused; i++)
		free(m.used[i]);
	db_close_thread();
	return 0;
}
