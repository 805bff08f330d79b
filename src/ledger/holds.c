/* holds.c - the in-memory holds against balance - held, and the settlement
 * of a call's cost into a usage entry; see ledger.h.
 *
 * Holds live in one table in memory, guarded by hold_mu. A hold counts
 * against its org (and key) with:
 *   - its amount while it is only reserved;
 *   - once settled (ledger_settle_tx ran inside the caller's transaction),
 *     its cost while that usage entry is not yet committed, and nothing once
 *     it is: from then on the cost is part of orgs.balance.
 *
 * ledger_hold reads, in ONE statement and so in one database snapshot, the
 * org's balance and the largest ledger entry id. Writers are serialized
 * (BEGIN IMMEDIATE), so an entry id is committed in that snapshot exactly
 * when it is <= that largest id. The check therefore counts every settled
 * cost exactly once: in the balance if its commit is in the snapshot, as
 * held if not - whatever the timing of the caller's COMMIT and
 * ledger_release. Reading the snapshot, summing the table and adding the new
 * hold all happen under hold_mu, and ledger_settle_tx marks a hold settled
 * under hold_mu before it returns (so before the commit can happen), and
 * ledger_release removes it under hold_mu: no check ever sees a state in
 * between, so concurrent holds never exceed the balance and a request that
 * fits is never refused because a cost was counted twice.
 *
 * A hold can also be marked settled before its entry exists
 * (ledger_hold_settling: the gateway's call journal writes the entry a
 * moment later, in a batch). It then counts its cost until an entry id is
 * set and committed. If a batch rolls back, the writer marks its holds
 * settling again before it retries, so a cost that is still owed never stops
 * counting; a rolled-back entry id that a later commit reuses could
 * otherwise make it count nothing.
 */
#include "ledger/ledger.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "ledger/ledger_internal.h"
#include "store/db.h"

struct hold_rec {
	uint64_t serial;
	int64_t org_id;
	int64_t key_id;
	int64_t amount;
	int settled;
	int64_t cost;
	int64_t entry_id;
};

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hold_rec *holds;
static size_t holds_len, holds_cap;
static uint64_t holds_serial;

/* hold_mu for ledger_grant's deductions; see ledger_internal.h. */
void ledger_holds_lock(void)
{
	pthread_mutex_lock(&hold_mu);
}

void ledger_holds_unlock(void)
{
	pthread_mutex_unlock(&hold_mu);
}

/* What rec counts against its org / key given the largest committed entry. */
static __int128 hold_weight(const struct hold_rec *rec, int64_t max_committed)
{
	if (!rec->settled)
		return rec->amount;
	return rec->entry_id > 0 && rec->entry_id <= max_committed ? 0 : rec->cost;
}

/* The hold named by h: its slot hint first (right unless a release moved
 * it), else a scan. */
static struct hold_rec *hold_find(const struct ledger_hold *h)
{
	uint64_t serial = h->serial;
	size_t i;

	if (h->slot < holds_len && holds[h->slot].serial == serial)
		return &holds[h->slot];
	for (i = 0; i < holds_len; i++)
		if (holds[i].serial == serial)
			return &holds[i];
	return NULL;
}

static int64_t clamp_i64(__int128 v)
{
	if (v < 0)
		return 0;
	if (v > INT64_MAX)
		return INT64_MAX;
	return (int64_t)v;
}

/* The last snapshot read for an org, kept (under hold_mu) until the next
 * commit to the database by any process: db_commit_seq() moves after every
 * commit, so an entry whose seq is still current is exactly what SQLite
 * would answer now. The count is read before the snapshot, so a commit
 * racing the read leaves the entry stale, never wrong. (The journal's
 * writer commits once per batch, so most calls then find
 * their org's balance here instead of in a read transaction.) */
#define SNAP_SLOTS 64 /* power of two */

struct org_snap {
	int64_t org_id;
	uint64_t seq;
	int64_t balance;
	int64_t max_id;
};

static struct org_snap snaps[SNAP_SLOTS];

/* Snapshot for a hold: balance, largest committed entry id and, when
 * since >= 0, the key's usage since then. With hold_mu held. */
static int hold_snapshot(int64_t org_id, int64_t key_id, int64_t since, int64_t *balance,
			 int64_t *max_id, int64_t *key_spent)
{
	struct org_snap *snap = &snaps[(uint64_t)org_id & (SNAP_SLOTS - 1)];
	tg_stmt *st;
	uint64_t seq = 0;
	int rc, cacheable;

	/* Inside a transaction the connection sees its own uncommitted writes,
	 * which a rollback would take back without a commit to mark it: such a
	 * read neither uses nor fills the cache. */
	cacheable = since < 0 && !db_in_tx() && db_commit_seq(&seq) == TG_OK;

	if (cacheable && snap->org_id == org_id && snap->seq == seq) {
		*balance = snap->balance;
		*max_id = snap->max_id;
		return TG_OK;
	}
	if (since >= 0) {
		st = db_stmt(
			"SELECT o.balance, (SELECT coalesce(max(id), 0) FROM ledger_entries),"
			" (SELECT coalesce(sum(-amount), 0) FROM ledger_entries WHERE key_id = :key"
			" AND created_at >= :since AND kind = 'usage')"
			" FROM orgs o WHERE o.id = :org");
		if (!st || db_bind_int64(st, ":key", key_id) || db_bind_int64(st, ":since", since))
			return TG_EDB;
	} else {
		st = db_stmt(
			"SELECT o.balance, (SELECT coalesce(max(id), 0) FROM ledger_entries), 0"
			" FROM orgs o WHERE o.id = :org");
		if (!st)
			return TG_EDB;
	}
	if (db_bind_int64(st, ":org", org_id))
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW) {
		*balance = db_col_int64(st, 0);
		*max_id = db_col_int64(st, 1);
		if (since >= 0)
			*key_spent = db_col_int64(st, 2);
		rc = TG_OK;
	} else {
		rc = rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	}
	db_done(st);
	if (rc == TG_OK && cacheable)
		*snap = (struct org_snap){ org_id, seq, *balance, *max_id };
	return rc;
}

static int hold_common(int64_t org_id, int64_t key_id, int64_t amount, int64_t key_limit,
		       int64_t key_spent, int64_t key_since, struct ledger_hold *h,
		       int64_t *available)
{
	__int128 org_held = 0, key_held = 0, org_avail, key_avail, avail;
	int64_t balance = 0, max_id = 0;
	struct hold_rec *rec;
	size_t i;
	int rc;

	if (!h)
		return TG_EINVAL;
	memset(h, 0, sizeof(*h));
	if (org_id <= 0 || amount < 0 || key_spent < 0)
		return TG_EINVAL;
	h->org_id = org_id;
	h->key_id = key_id > 0 ? key_id : 0;
	h->amount = amount;

	pthread_mutex_lock(&hold_mu);
	rc = hold_snapshot(org_id, h->key_id, key_limit > 0 && h->key_id ? key_since : -1, &balance,
			   &max_id, &key_spent);
	if (rc)
		goto out;
	for (i = 0; i < holds_len; i++) {
		__int128 w = hold_weight(&holds[i], max_id);

		if (holds[i].org_id == org_id)
			org_held += w;
		if (h->key_id && holds[i].key_id == h->key_id)
			key_held += w;
	}
	org_avail = (__int128)balance - org_held;
	avail = org_avail;
	if (key_limit > 0) {
		key_avail = (__int128)key_limit - key_spent - key_held;
		if (key_avail < avail)
			avail = key_avail;
	}
	if (avail < amount) {
		if (available)
			*available = clamp_i64(avail);
		rc = TG_EFUNDS;
		goto out;
	}
	if (holds_len == holds_cap) {
		size_t cap = holds_cap ? holds_cap * 2 : 64;
		struct hold_rec *grown = realloc(holds, cap * sizeof(*grown));

		if (!grown) {
			rc = TG_ENOMEM;
			goto out;
		}
		holds = grown;
		holds_cap = cap;
	}
	rec = &holds[holds_len++];
	memset(rec, 0, sizeof(*rec));
	rec->serial = ++holds_serial;
	rec->org_id = org_id;
	rec->key_id = h->key_id;
	rec->amount = amount;
	h->serial = rec->serial;
	h->slot = holds_len - 1;
	h->active = 1;
out:
	pthread_mutex_unlock(&hold_mu);
	return rc;
}

/* With hold_mu held: the org's committed balance and what its holds count
 * now (only settled ones, whose costs are on their way to the ledger, when
 * settled_only), read against one snapshot. */
static int org_weight_locked(int64_t org_id, int settled_only, int64_t *balance, __int128 *weight)
{
	int64_t max_id = 0, unused = 0;
	size_t i;
	int rc = hold_snapshot(org_id, 0, -1, balance, &max_id, &unused);

	*weight = 0;
	if (rc)
		return rc;
	for (i = 0; i < holds_len; i++)
		if (holds[i].org_id == org_id && (holds[i].settled || !settled_only))
			*weight += hold_weight(&holds[i], max_id);
	return TG_OK;
}

/* What the org's holds count now, with hold_mu held (for a deduction). */
int ledger_org_reserved_locked(int64_t org_id, int64_t *reserved)
{
	int64_t balance = 0;
	__int128 w = 0;
	int rc = org_weight_locked(org_id, 0, &balance, &w);

	*reserved = clamp_i64(w);
	return rc;
}

int ledger_hold(int64_t org_id, int64_t key_id, int64_t amount, int64_t key_limit,
		int64_t key_spent, struct ledger_hold *h, int64_t *available)
{
	return hold_common(org_id, key_id, amount, key_limit, key_spent < 0 ? 0 : key_spent, -1, h,
			   available);
}

int ledger_hold_since(int64_t org_id, int64_t key_id, int64_t amount, int64_t key_limit,
		      int64_t key_since, struct ledger_hold *h, int64_t *available)
{
	return hold_common(org_id, key_id, amount, key_limit, 0, key_since < 0 ? 0 : key_since, h,
			   available);
}

void ledger_release(struct ledger_hold *h)
{
	struct hold_rec *rec;

	if (!h || !h->active)
		return;
	pthread_mutex_lock(&hold_mu);
	rec = hold_find(h);
	if (rec)
		*rec = holds[--holds_len];
	pthread_mutex_unlock(&hold_mu);
	h->active = 0;
}

int64_t ledger_held_total(void)
{
	__int128 total = 0;
	size_t i;

	pthread_mutex_lock(&hold_mu);
	for (i = 0; i < holds_len; i++)
		total += holds[i].settled ? holds[i].cost : holds[i].amount;
	pthread_mutex_unlock(&hold_mu);
	return clamp_i64(total);
}

void ledger_hold_settling(struct ledger_hold *h, int64_t cost)
{
	struct hold_rec *rec;

	if (!h || !h->active || cost < 0)
		return;
	pthread_mutex_lock(&hold_mu);
	rec = hold_find(h);
	if (rec) {
		rec->settled = 1;
		rec->cost = cost;
		rec->entry_id = 0;
	}
	pthread_mutex_unlock(&hold_mu);
}

int ledger_balance_projected(int64_t org_id, int64_t *balance)
{
	__int128 pending = 0, v;
	int rc;

	pthread_mutex_lock(&hold_mu);
	rc = org_weight_locked(org_id, 1, balance, &pending);
	if (rc == TG_OK) {
		v = (__int128)*balance - pending;
		*balance = v < INT64_MIN ? INT64_MIN : (int64_t)(v > INT64_MAX ? INT64_MAX : v);
	}
	pthread_mutex_unlock(&hold_mu);
	return rc;
}

int ledger_settle_at_tx(struct ledger_hold *h, const char *request_id, int64_t cost,
			int64_t created_at, int64_t *balance_after)
{
	struct ledger_new_entry ne;
	struct hold_rec *rec;
	tg_stmt *st;
	int64_t id = 0, after = 0;
	int rc, found;

	if (!h || !h->active || h->org_id <= 0 || !request_id || !*request_id ||
	    strlen(request_id) > LEDGER_REQUEST_ID_MAX || cost < 0 || created_at < 0)
		return TG_EINVAL;
	if (!db_in_tx()) {
		log_error("ledger: settle called outside a transaction");
		return TG_EINVAL;
	}
	st = db_stmt("SELECT 1 FROM ledger_entries WHERE request_id = :rid");
	if (!st || db_bind_text(st, ":rid", request_id))
		return TG_EDB;
	found = db_step(st) == DB_ROW;
	db_done(st);
	if (found)
		return TG_ECONFLICT;

	/* A savepoint so that any failure below leaves the caller's
	 * transaction exactly as it was. */
	st = db_stmt("SAVEPOINT ledger_settle");
	if (!st || db_exec_stmt(st))
		return TG_EDB;
	/* Shared holds (PostgreSQL): the hold is deleted in the transaction
	 * that debits its cost. Deleting its row is the one
	 * release: if the reaper voided it first, nothing is freed twice. */
	if (db_is_pg() && h->serial) {
		st = db_stmt("SELECT tg_release(:id)");
		if (!st || db_bind_int64(st, ":id", (int64_t)h->serial) || db_exec_stmt(st)) {
			st = db_stmt("ROLLBACK TO ledger_settle");
			if (st)
				db_exec_stmt(st);
			return TG_EDB;
		}
	}
	memset(&ne, 0, sizeof(ne));
	ne.org_id = h->org_id;
	ne.kind = LEDGER_USAGE;
	ne.amount = -cost;
	ne.request_id = request_id;
	ne.key_id = h->key_id;
	ne.actor = &(const struct audit_actor){ 0, "gateway", "" };
	ne.memo = "";
	ne.created_at = created_at;
	rc = ledger_append_entry(&ne, &id, &after);
	if (rc) {
		if (rc == TG_ECONFLICT)
			rc = TG_EINVAL; /* not a duplicate (checked above): a bad key id */
		st = db_stmt("ROLLBACK TO ledger_settle");
		if (st)
			db_exec_stmt(st);
	}
	st = db_stmt("RELEASE ledger_settle");
	if (!st || db_exec_stmt(st))
		rc = rc ? rc : TG_EDB;
	if (rc)
		return rc;

	pthread_mutex_lock(&hold_mu);
	rec = h->serial ? hold_find(h) : NULL;
	if (rec) {
		rec->settled = 1;
		rec->cost = cost;
		rec->entry_id = id;
	}
	pthread_mutex_unlock(&hold_mu);
	if (balance_after)
		*balance_after = after;
	return TG_OK;
}

int ledger_settle_tx(struct ledger_hold *h, const char *request_id, int64_t cost,
		     int64_t *balance_after)
{
	return ledger_settle_at_tx(h, request_id, cost, 0, balance_after);
}
