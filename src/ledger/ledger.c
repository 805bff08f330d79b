/* ledger.c - the credits ledger: entries, the hash chain, balances, grants and
 * adjustments, spend sums; see ledger.h. Holds and settlement are in holds.c,
 * redemption codes in codes.c, the audit in audit.c.
 *
 * Every entry is chained to the previous entry of its org:
 *
 *     chain = BLAKE2b-256(prev || id || org_id || created_at || kind || amount
 *                         || balance_after || request_id || key_id || code_id
 *                         || actor || memo)
 *
 * where prev is the chain of the org's previous entry (32 zero bytes for its
 * first), integers are 8 bytes big-endian (NULL ids as 0) and text is an
 * 8-byte big-endian length followed by its bytes (NULL as ""). Fixed widths
 * and length prefixes make the encoding unambiguous, so `tollgate audit`
 * finds an edited row even when the append-only triggers were dropped.
 * actor_user_id is left out on purpose: it is ON DELETE SET NULL.
 */
#include "ledger/ledger.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "ledger/ledger_internal.h"
#include "ledger/money.h"
#include "store/db.h"

const struct audit_actor ledger_system_actor = { 0, "system", "" };

const char *ledger_kind_name(enum ledger_kind k)
{
	switch (k) {
	case LEDGER_GRANT:
		return "grant";
	case LEDGER_ADJUST:
		return "adjust";
	case LEDGER_REDEEM:
		return "redeem";
	case LEDGER_USAGE:
		return "usage";
	}
	return "?";
}

int64_t ledger_month_start(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		return 0;
	tm.tm_mday = 1;
	tm.tm_hour = 0;
	tm.tm_min = 0;
	tm.tm_sec = 0;
	return (int64_t)timegm(&tm);
}

/* ------------------------------------------------------------- reading */

int ledger_balance(int64_t org_id, int64_t *balance)
{
	tg_stmt *st = db_stmt("SELECT balance FROM orgs WHERE id = :id");
	int ret = TG_ENOTFOUND;

	if (!st || db_bind_int64(st, ":id", org_id) != TG_OK)
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		*balance = db_col_int64(st, 0);
		ret = TG_OK;
	}
	db_done(st);
	return ret;
}

/* One int64 from a statement with :id and :since bound (0 on any error). */
static int64_t sum_since(const char *sql, int64_t id, int64_t since)
{
	tg_stmt *st = db_stmt(sql);
	int64_t v = 0;

	if (!st || db_bind_int64(st, ":id", id) != TG_OK ||
	    db_bind_int64(st, ":since", since) != TG_OK)
		return 0;
	if (db_step(st) == DB_ROW)
		v = db_col_int64(st, 0);
	db_done(st);
	return v;
}

int64_t ledger_key_spend(int64_t key_id, int64_t since)
{
	return sum_since("SELECT coalesce(sum(-amount), 0) FROM ledger_entries"
			 " WHERE key_id = :id AND created_at >= :since AND kind = 'usage'",
			 key_id, since);
}

int64_t ledger_org_spend(int64_t org_id, int64_t since)
{
	return sum_since("SELECT coalesce(sum(-amount), 0) FROM ledger_entries"
			 " WHERE org_id = :id AND created_at >= :since AND kind = 'usage'",
			 org_id, since);
}

/* ------------------------------------------------------------ the chain */

static void hash_i64(crypto_generichash_state *hs, int64_t v)
{
	unsigned char b[8];
	uint64_t u = (uint64_t)v;
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(u >> (56 - 8 * i));
	crypto_generichash_update(hs, b, sizeof(b));
}

static void hash_text(crypto_generichash_state *hs, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	hash_i64(hs, (int64_t)n);
	if (n)
		crypto_generichash_update(hs, (const unsigned char *)s, n);
}

void ledger_chain_hash(const unsigned char prev[LEDGER_CHAIN_LEN],
		       const struct ledger_entry_fields *e, unsigned char out[LEDGER_CHAIN_LEN])
{
	crypto_generichash_state hs;

	crypto_generichash_init(&hs, NULL, 0, LEDGER_CHAIN_LEN);
	crypto_generichash_update(&hs, prev, LEDGER_CHAIN_LEN);
	hash_i64(&hs, e->id);
	hash_i64(&hs, e->org_id);
	hash_i64(&hs, e->created_at);
	hash_text(&hs, e->kind);
	hash_i64(&hs, e->amount);
	hash_i64(&hs, e->balance_after);
	hash_text(&hs, e->request_id);
	hash_i64(&hs, e->key_id);
	hash_i64(&hs, e->code_id);
	hash_text(&hs, e->actor);
	hash_text(&hs, e->memo);
	crypto_generichash_final(&hs, out, LEDGER_CHAIN_LEN);
}

/* ------------------------------------------------------------- appending */

int ledger_bind_id_or_null(tg_stmt *st, const char *name, int64_t v)
{
	return v > 0 ? db_bind_int64(st, name, v) : db_bind_null(st, name);
}

/* For a deduction on PostgreSQL: what calls of every instance hold, with
 * the org's hold lock (see tg_hold) taken until the commit, so no hold is
 * admitted against the balance this entry is about to lower. (Other writers
 * of the balance take turns on db_begin's lock.) 0 elsewhere. */
static int held_for_deduction(int64_t org_id, int deduction, int64_t *held)
{
	tg_stmt *st;
	int rc;

	*held = 0;
	if (!db_is_pg() || !deduction)
		return TG_OK;
	st = db_stmt("SELECT pg_advisory_xact_lock(71062, CAST(:id AS INT))");
	if (!st || db_bind_int64(st, ":id", org_id) || db_exec_stmt(st))
		return TG_EDB;
	st = db_stmt("SELECT coalesce(sum(amount), 0) FROM holds WHERE org_id = :id");
	if (!st || db_bind_int64(st, ":id", org_id)) {
		db_done(st);
		return TG_EDB;
	}
	rc = db_step(st);
	if (rc == DB_ROW)
		*held = db_col_int64(st, 0);
	db_done(st);
	return rc == DB_ROW ? TG_OK : TG_EDB;
}

/* What an entry of org_id starts from, in one statement (a batch of debits
 * appends many): the balance, the chain of the org's last entry (zeros for
 * its first) and the next entry id. */
static int append_start(int64_t org_id, int64_t *balance, unsigned char prev[LEDGER_CHAIN_LEN],
			int64_t *id)
{
	tg_stmt *st = db_stmt(
		"SELECT o.balance, (SELECT e.chain FROM ledger_entries e WHERE e.org_id = o.id"
		" ORDER BY e.id DESC LIMIT 1),"
		" (SELECT coalesce(max(id), 0) + 1 FROM ledger_entries)"
		" FROM orgs o WHERE o.id = :org");
	int rc;

	memset(prev, 0, LEDGER_CHAIN_LEN);
	if (!st || db_bind_int64(st, ":org", org_id)) {
		db_done(st);
		return TG_EDB;
	}
	rc = db_step(st);
	if (rc != DB_ROW) {
		db_done(st);
		return rc == DB_DONE ? TG_ENOTFOUND : TG_EDB;
	}
	*balance = db_col_int64(st, 0);
	*id = db_col_int64(st, 2);
	if (!db_col_is_null(st, 1)) {
		if (db_col_bytes(st, 1) != LEDGER_CHAIN_LEN) {
			db_done(st);
			log_error("ledger: the last entry of org %lld has a malformed chain",
				  (long long)org_id);
			return TG_EDB;
		}
		memcpy(prev, db_col_blob(st, 1), LEDGER_CHAIN_LEN);
	}
	db_done(st);
	return *id > 0 ? TG_OK : TG_EDB;
}

/* Append one entry and move orgs.balance, inside the caller's transaction.
 * Reads the balance and the previous chain, so the transaction must hold the
 * write lock (BEGIN IMMEDIATE) for the result to be right. */
int ledger_append_entry(const struct ledger_new_entry *ne, int64_t *entry_id,
			int64_t *balance_after)
{
	const struct audit_actor *a = ne->actor ? ne->actor : &ledger_system_actor;
	unsigned char prev[LEDGER_CHAIN_LEN], chain[LEDGER_CHAIN_LEN];
	struct ledger_entry_fields f;
	tg_stmt *st;
	int64_t balance = 0, after = 0, id = 0, held = 0;
	int rc;

	if ((rc = held_for_deduction(ne->org_id, ne->no_negative, &held)) ||
	    (rc = append_start(ne->org_id, &balance, prev, &id)))
		return rc;
	if ((rc = money_add(balance, ne->amount, &after)))
		return rc;
	if (ne->no_negative && (after < 0 || after < ne->reserved || after < held))
		return TG_EFUNDS;

	memset(&f, 0, sizeof(f));
	f.id = id;
	f.org_id = ne->org_id;
	f.created_at = ne->created_at > 0 ? ne->created_at : time_now();
	f.kind = ledger_kind_name(ne->kind);
	f.amount = ne->amount;
	f.balance_after = after;
	f.request_id = ne->request_id;
	f.key_id = ne->key_id > 0 ? ne->key_id : 0;
	f.code_id = ne->code_id > 0 ? ne->code_id : 0;
	f.actor = a->label ? a->label : "";
	f.memo = ne->memo ? ne->memo : "";
	ledger_chain_hash(prev, &f, chain);

	st = db_stmt(
		"INSERT INTO ledger_entries(id, org_id, created_at, kind, amount, balance_after,"
		" request_id, key_id, code_id, actor_user_id, actor, memo, chain)"
		" VALUES (:id, :org, :at, :kind, :amount, :after, :rid, :key, :code, :uid,"
		" :actor, :memo, :chain)");
	if (!st || db_bind_int64(st, ":id", f.id) || db_bind_int64(st, ":org", f.org_id) ||
	    db_bind_int64(st, ":at", f.created_at) || db_bind_text(st, ":kind", f.kind) ||
	    db_bind_int64(st, ":amount", f.amount) ||
	    db_bind_int64(st, ":after", f.balance_after) ||
	    db_bind_text(st, ":rid", f.request_id) ||
	    ledger_bind_id_or_null(st, ":key", f.key_id) ||
	    ledger_bind_id_or_null(st, ":code", f.code_id) ||
	    ledger_bind_id_or_null(st, ":uid", a->user_id) || db_bind_text(st, ":actor", f.actor) ||
	    db_bind_text(st, ":memo", f.memo) ||
	    db_bind_blob(st, ":chain", chain, LEDGER_CHAIN_LEN))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;

	st = db_stmt("UPDATE orgs SET balance = :balance WHERE id = :org");
	if (!st || db_bind_int64(st, ":balance", after) || db_bind_int64(st, ":org", ne->org_id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	if (db_changes() != 1)
		return TG_EDB;
	if (entry_id)
		*entry_id = id;
	if (balance_after)
		*balance_after = after;
	return TG_OK;
}

/* 1..max characters of UTF-8 text, not only spaces, no control characters. */
int ledger_text_ok(const char *s, size_t max_chars)
{
	const unsigned char *p;
	size_t chars = 0;
	int visible = 0;

	if (!s || !*s || strlen(s) > max_chars * 4)
		return 0;
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p != ' ')
			visible = 1;
		if ((*p & 0xc0) != 0x80)
			chars++;
	}
	return visible && chars <= max_chars;
}

int ledger_grant(int64_t org_id, enum ledger_kind kind, int64_t amount, const char *memo,
		 const struct audit_actor *actor, int64_t *entry_id)
{
	const struct audit_actor *a = actor ? actor : &ledger_system_actor;
	struct ledger_new_entry ne;
	char amt[MONEY_FMT_LEN], target[48], detail[LEDGER_MEMO_MAX * 4 + 64];
	int64_t id = 0;
	int rc, locked = 0;

	if (org_id <= 0 || !ledger_text_ok(memo, LEDGER_MEMO_MAX))
		return TG_EINVAL;
	if (kind == LEDGER_GRANT ? amount <= 0 : kind != LEDGER_ADJUST || amount == 0)
		return TG_EINVAL;
	memset(&ne, 0, sizeof(ne));
	ne.org_id = org_id;
	ne.kind = kind;
	ne.amount = amount;
	ne.actor = a;
	ne.memo = memo;
	ne.no_negative = amount < 0;

	if ((rc = db_begin()))
		return rc;
	if (amount < 0) {
		/* Calls in flight were admitted against this money: a deduction
		 * leaves them what they reserved. The holds lock is kept until the
		 * commit, so no hold is admitted against the old balance meanwhile
		 * (the order is the write lock, then the holds lock, as the
		 * journal's writer takes them). Other processes' holds are not seen
		 * here. */
		ledger_holds_lock();
		locked = 1;
		if ((rc = ledger_org_reserved_locked(org_id, &ne.reserved)))
			goto out;
	}
	if ((rc = ledger_append_entry(&ne, &id, NULL)))
		goto out;
	money_format(amount, amt);
	snprintf(target, sizeof(target), "ledger entry %lld", (long long)id);
	snprintf(detail, sizeof(detail), "%s%s credits: %s", amount > 0 ? "+" : "", amt, memo);
	if ((rc = audit_add(a, org_id, kind == LEDGER_GRANT ? "credits.grant" : "credits.adjust",
			    target, detail)))
		goto out;
	rc = db_commit();
out:
	if (rc)
		db_rollback();
	else if (entry_id)
		*entry_id = id;
	if (locked)
		ledger_holds_unlock();
	return rc;
}
