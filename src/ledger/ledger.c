/* ledger.c - the credits ledger: entries, balances, redemption codes, holds
 * and the audit; see ledger.h.
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

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base62.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "crypto/tokens.h"
#include "ledger/money.h"
#include "store/db.h"

#define CHAIN_LEN 32

static const struct audit_actor system_actor = { 0, "system", "" };

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
	sqlite3_stmt *st = db_stmt("SELECT balance FROM orgs WHERE id = :id");
	int ret = TG_ENOTFOUND;

	if (!st || db_bind_int64(st, ":id", org_id) != TG_OK)
		return TG_EDB;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*balance = sqlite3_column_int64(st, 0);
		ret = TG_OK;
	}
	db_done(st);
	return ret;
}

/* One int64 from a statement with :id and :since bound (0 on any error). */
static int64_t sum_since(const char *sql, int64_t id, int64_t since)
{
	sqlite3_stmt *st = db_stmt(sql);
	int64_t v = 0;

	if (!st || db_bind_int64(st, ":id", id) != TG_OK ||
	    db_bind_int64(st, ":since", since) != TG_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
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

struct entry_fields {
	int64_t id, org_id, created_at, amount, balance_after, key_id, code_id;
	const char *kind, *request_id, *actor, *memo;
};

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

static void chain_hash(const unsigned char prev[CHAIN_LEN], const struct entry_fields *e,
		       unsigned char out[CHAIN_LEN])
{
	crypto_generichash_state hs;

	crypto_generichash_init(&hs, NULL, 0, CHAIN_LEN);
	crypto_generichash_update(&hs, prev, CHAIN_LEN);
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
	crypto_generichash_final(&hs, out, CHAIN_LEN);
}

/* ------------------------------------------------------------- appending */

struct new_entry {
	int64_t org_id;
	enum ledger_kind kind;
	int64_t amount;
	const char *request_id; /* usage only, else NULL */
	int64_t key_id;         /* 0 = none */
	int64_t code_id;        /* 0 = none */
	const struct audit_actor *actor;
	const char *memo;
	int no_negative;        /* refuse (TG_EFUNDS) a result below `reserved` */
	int64_t reserved;       /* with no_negative: what calls in flight hold */
	int64_t created_at;     /* 0 = now */
};

static int bind_id_or_null(sqlite3_stmt *st, const char *name, int64_t v)
{
	return v > 0 ? db_bind_int64(st, name, v) : db_bind_null(st, name);
}

/* Append one entry and move orgs.balance, inside the caller's transaction.
 * Reads the balance and the previous chain, so the transaction must hold the
 * write lock (BEGIN IMMEDIATE) for the result to be right. */
static int append_entry(const struct new_entry *ne, int64_t *entry_id, int64_t *balance_after)
{
	const struct audit_actor *a = ne->actor ? ne->actor : &system_actor;
	unsigned char prev[CHAIN_LEN], chain[CHAIN_LEN];
	struct entry_fields f;
	sqlite3_stmt *st;
	int64_t balance = 0, after = 0, id = 0;
	int rc;

	if ((rc = ledger_balance(ne->org_id, &balance)))
		return rc;
	if ((rc = money_add(balance, ne->amount, &after)))
		return rc;
	if (ne->no_negative && (after < 0 || after < ne->reserved))
		return TG_EFUNDS;

	memset(prev, 0, sizeof(prev));
	st = db_stmt("SELECT chain FROM ledger_entries WHERE org_id = :org ORDER BY id DESC LIMIT 1");
	if (!st || db_bind_int64(st, ":org", ne->org_id))
		return TG_EDB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != CHAIN_LEN) {
			db_done(st);
			log_error("ledger: the last entry of org %lld has a malformed chain",
				  (long long)ne->org_id);
			return TG_EDB;
		}
		memcpy(prev, sqlite3_column_blob(st, 0), CHAIN_LEN);
	} else if (rc != SQLITE_DONE) {
		db_done(st);
		return TG_EDB;
	}
	db_done(st);

	st = db_stmt("SELECT coalesce(max(id), 0) + 1 FROM ledger_entries");
	if (!st)
		return TG_EDB;
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	db_done(st);
	if (id <= 0)
		return TG_EDB;

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
	chain_hash(prev, &f, chain);

	st = db_stmt("INSERT INTO ledger_entries(id, org_id, created_at, kind, amount, balance_after,"
		     " request_id, key_id, code_id, actor_user_id, actor, memo, chain)"
		     " VALUES (:id, :org, :at, :kind, :amount, :after, :rid, :key, :code, :uid,"
		     " :actor, :memo, :chain)");
	if (!st || db_bind_int64(st, ":id", f.id) || db_bind_int64(st, ":org", f.org_id) ||
	    db_bind_int64(st, ":at", f.created_at) || db_bind_text(st, ":kind", f.kind) ||
	    db_bind_int64(st, ":amount", f.amount) || db_bind_int64(st, ":after", f.balance_after) ||
	    db_bind_text(st, ":rid", f.request_id) || bind_id_or_null(st, ":key", f.key_id) ||
	    bind_id_or_null(st, ":code", f.code_id) || bind_id_or_null(st, ":uid", a->user_id) ||
	    db_bind_text(st, ":actor", f.actor) || db_bind_text(st, ":memo", f.memo) ||
	    db_bind_blob(st, ":chain", chain, CHAIN_LEN))
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
static int text_ok(const char *s, size_t max_chars)
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

static pthread_mutex_t hold_mu; /* defined with the holds, below */
static int org_reserved_locked(int64_t org_id, int64_t *reserved);

int ledger_grant(int64_t org_id, enum ledger_kind kind, int64_t amount, const char *memo,
		 const struct audit_actor *actor, int64_t *entry_id)
{
	const struct audit_actor *a = actor ? actor : &system_actor;
	struct new_entry ne;
	char amt[MONEY_FMT_LEN], target[48], detail[LEDGER_MEMO_MAX * 4 + 64];
	int64_t id = 0;
	int rc, locked = 0;

	if (org_id <= 0 || !text_ok(memo, LEDGER_MEMO_MAX))
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
		 * leaves them what they reserved. hold_mu is kept until the commit,
		 * so no hold is admitted against the old balance meanwhile (the
		 * order is the write lock, then hold_mu, as the journal's writer
		 * takes them). Other processes' holds are not seen here. */
		pthread_mutex_lock(&hold_mu);
		locked = 1;
		if ((rc = org_reserved_locked(org_id, &ne.reserved)))
			goto out;
	}
	if ((rc = append_entry(&ne, &id, NULL)))
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
		pthread_mutex_unlock(&hold_mu);
	return rc;
}

/* ----------------------------------------------------- redemption codes */

static int code_well_formed(const char *code)
{
	size_t tag = strlen(LEDGER_CODE_TAG);

	return code && strlen(code) == LEDGER_CODE_LEN && strncmp(code, LEDGER_CODE_TAG, tag) == 0 &&
	       base62_is_valid(code + tag, LEDGER_CODE_LEN - tag);
}

static int insert_code(const char *batch, int64_t amount, int64_t expires_at, int64_t user_id,
		       int64_t now, char code[LEDGER_CODE_LEN + 1])
{
	size_t tag = strlen(LEDGER_CODE_TAG);
	unsigned char hash[TOKENS_HASH_LEN];
	char prefix[LEDGER_CODE_PREFIX_LEN + 1];
	sqlite3_stmt *st;

	memcpy(code, LEDGER_CODE_TAG, tag);
	base62_random(code + tag, LEDGER_CODE_LEN - tag);
	tokens_hash(code, LEDGER_CODE_LEN, hash);
	memcpy(prefix, code, LEDGER_CODE_PREFIX_LEN);
	prefix[LEDGER_CODE_PREFIX_LEN] = '\0';
	st = db_stmt("INSERT INTO redemption_codes(code_hash, prefix, batch, amount, created_at,"
		     " created_by, expires_at) VALUES (:hash, :prefix, :batch, :amount, :now, :by,"
		     " :expires)");
	if (!st || db_bind_blob(st, ":hash", hash, sizeof(hash)) ||
	    db_bind_text(st, ":prefix", prefix) || db_bind_text(st, ":batch", batch) ||
	    db_bind_int64(st, ":amount", amount) || db_bind_int64(st, ":now", now) ||
	    bind_id_or_null(st, ":by", user_id) || bind_id_or_null(st, ":expires", expires_at))
		return TG_EDB;
	return db_exec_stmt(st);
}

int ledger_codes_create(int n, int64_t amount, int64_t expires_at, const char *batch,
			const struct audit_actor *actor, char **codes_out)
{
	const struct audit_actor *a = actor ? actor : &system_actor;
	char code[LEDGER_CODE_LEN + 1], amt[MONEY_FMT_LEN], detail[128];
	int64_t now = time_now();
	int i, made = 0, rc, tries;

	if (n < 1 || n > LEDGER_CODES_MAX || amount <= 0 || expires_at < 0 ||
	    (expires_at > 0 && expires_at <= now) || !text_ok(batch, LEDGER_BATCH_MAX) || !codes_out)
		return TG_EINVAL;
	if ((rc = crypto_init()))
		return rc;
	for (i = 0; i < n; i++)
		codes_out[i] = NULL;
	if ((rc = db_begin()))
		return rc;
	for (made = 0; made < n; made++) {
		/* A collision of 143 random bits will not happen; still, retry. */
		tries = 0;
		do
			rc = insert_code(batch, amount, expires_at, a->user_id, now, code);
		while (rc == TG_ECONFLICT && ++tries < 3);
		if (rc)
			goto out;
		codes_out[made] = strdup(code);
		if (!codes_out[made]) {
			rc = TG_ENOMEM;
			goto out;
		}
	}
	money_format(amount, amt);
	snprintf(detail, sizeof(detail), "%d code%s of %s credits", n, n == 1 ? "" : "s", amt);
	if ((rc = audit_add(a, 0, "codes.create", batch, detail)))
		goto out;
	rc = db_commit();
out:
	sodium_memzero(code, sizeof(code));
	if (rc) {
		db_rollback();
		for (i = 0; i < n && i <= made; i++) {
			if (codes_out[i]) {
				sodium_memzero(codes_out[i], strlen(codes_out[i]));
				free(codes_out[i]);
				codes_out[i] = NULL;
			}
		}
	}
	return rc;
}

int ledger_redeem(const char *code, int64_t org_id, const struct audit_actor *actor,
		  int64_t *amount_out)
{
	const struct audit_actor *a = actor ? actor : &system_actor;
	unsigned char hash[TOKENS_HASH_LEN];
	char prefix[LEDGER_CODE_PREFIX_LEN + 1], memo[LEDGER_BATCH_MAX * 4 + 64];
	char amt[MONEY_FMT_LEN], detail[64];
	struct new_entry ne;
	sqlite3_stmt *st;
	int64_t code_id = 0, amount = 0, expires = 0, now = time_now();
	int rc, redeemed = 0;

	if (!code_well_formed(code))
		return TG_ENOTFOUND;
	if (org_id <= 0)
		return TG_EINVAL;
	if ((rc = crypto_init()))
		return rc;
	tokens_hash(code, LEDGER_CODE_LEN, hash);
	if ((rc = db_begin()))
		return rc;

	st = db_stmt("SELECT 1 FROM orgs WHERE id = :org");
	if (!st || db_bind_int64(st, ":org", org_id)) {
		rc = TG_EDB;
		goto out;
	}
	rc = sqlite3_step(st) == SQLITE_ROW ? TG_OK : TG_EINVAL;
	db_done(st);
	if (rc)
		goto out;

	st = db_stmt("SELECT id, amount, coalesce(expires_at, 0), redeemed_at IS NOT NULL, prefix, batch"
		     " FROM redemption_codes WHERE code_hash = :hash");
	if (!st || db_bind_blob(st, ":hash", hash, sizeof(hash))) {
		rc = TG_EDB;
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_done(st);
		rc = TG_ENOTFOUND;
		goto out;
	}
	code_id = sqlite3_column_int64(st, 0);
	amount = sqlite3_column_int64(st, 1);
	expires = sqlite3_column_int64(st, 2);
	redeemed = sqlite3_column_int(st, 3);
	snprintf(prefix, sizeof(prefix), "%s", db_col_text(st, 4));
	snprintf(memo, sizeof(memo), "Code %s… (batch %s)", prefix, db_col_text(st, 5));
	db_done(st);
	if (redeemed) {
		rc = TG_ECONFLICT;
		goto out;
	}
	if (expires > 0 && expires <= now) {
		rc = TG_EPERM;
		goto out;
	}

	/* The guard that makes a code work once: only the update that finds it
	 * unredeemed changes a row. */
	st = db_stmt("UPDATE redemption_codes SET redeemed_at = :now, redeemed_org_id = :org,"
		     " redeemed_by = :uid WHERE code_hash = :hash AND redeemed_at IS NULL");
	if (!st || db_bind_int64(st, ":now", now) || db_bind_int64(st, ":org", org_id) ||
	    bind_id_or_null(st, ":uid", a->user_id) || db_bind_blob(st, ":hash", hash, sizeof(hash))) {
		rc = TG_EDB;
		goto out;
	}
	if ((rc = db_exec_stmt(st)))
		goto out;
	if (db_changes() != 1) {
		rc = TG_ECONFLICT;
		goto out;
	}

	memset(&ne, 0, sizeof(ne));
	ne.org_id = org_id;
	ne.kind = LEDGER_REDEEM;
	ne.amount = amount;
	ne.code_id = code_id;
	ne.actor = a;
	ne.memo = memo;
	if ((rc = append_entry(&ne, NULL, NULL)))
		goto out;
	money_format(amount, amt);
	snprintf(detail, sizeof(detail), "+%s credits", amt);
	if ((rc = audit_add(a, org_id, "credits.redeem", prefix, detail)))
		goto out;
	rc = db_commit();
out:
	if (rc)
		db_rollback();
	else if (amount_out)
		*amount_out = amount;
	return rc;
}

/* ----------------------------------------------------------------- holds
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
	sqlite3 *db = db_get();
	sqlite3_stmt *st;
	uint64_t seq = 0;
	int rc, cacheable;

	/* Inside a transaction the connection sees its own uncommitted writes,
	 * which a rollback would take back without a commit to mark it: such a
	 * read neither uses nor fills the cache. */
	if (!db)
		return TG_EDB;
	cacheable = since < 0 && sqlite3_get_autocommit(db) && db_commit_seq(&seq) == TG_OK;

	if (cacheable && snap->org_id == org_id && snap->seq == seq) {
		*balance = snap->balance;
		*max_id = snap->max_id;
		return TG_OK;
	}
	if (since >= 0) {
		st = db_stmt("SELECT o.balance, (SELECT coalesce(max(id), 0) FROM ledger_entries),"
			     " (SELECT coalesce(sum(-amount), 0) FROM ledger_entries WHERE key_id = :key"
			     " AND created_at >= :since AND kind = 'usage')"
			     " FROM orgs o WHERE o.id = :org");
		if (!st || db_bind_int64(st, ":key", key_id) || db_bind_int64(st, ":since", since))
			return TG_EDB;
	} else {
		st = db_stmt("SELECT o.balance, (SELECT coalesce(max(id), 0) FROM ledger_entries), 0"
			     " FROM orgs o WHERE o.id = :org");
		if (!st)
			return TG_EDB;
	}
	if (db_bind_int64(st, ":org", org_id))
		return TG_EDB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*balance = sqlite3_column_int64(st, 0);
		*max_id = sqlite3_column_int64(st, 1);
		if (since >= 0)
			*key_spent = sqlite3_column_int64(st, 2);
		rc = TG_OK;
	} else {
		rc = rc == SQLITE_DONE ? TG_ENOTFOUND : TG_EDB;
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
static int org_reserved_locked(int64_t org_id, int64_t *reserved)
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
	struct new_entry ne;
	struct hold_rec *rec;
	sqlite3_stmt *st;
	sqlite3 *db = db_get();
	int64_t id = 0, after = 0;
	int rc, found;

	if (!h || !h->active || h->org_id <= 0 || !request_id || !*request_id ||
	    strlen(request_id) > LEDGER_REQUEST_ID_MAX || cost < 0 || created_at < 0 || !db)
		return TG_EINVAL;
	if (sqlite3_get_autocommit(db)) {
		log_error("ledger: settle called outside a transaction");
		return TG_EINVAL;
	}
	st = db_stmt("SELECT 1 FROM ledger_entries WHERE request_id = :rid");
	if (!st || db_bind_text(st, ":rid", request_id))
		return TG_EDB;
	found = sqlite3_step(st) == SQLITE_ROW;
	db_done(st);
	if (found)
		return TG_ECONFLICT;

	/* A savepoint so that any failure below leaves the caller's
	 * transaction exactly as it was. */
	st = db_stmt("SAVEPOINT ledger_settle");
	if (!st || db_exec_stmt(st))
		return TG_EDB;
	memset(&ne, 0, sizeof(ne));
	ne.org_id = h->org_id;
	ne.kind = LEDGER_USAGE;
	ne.amount = -cost;
	ne.request_id = request_id;
	ne.key_id = h->key_id;
	ne.actor = &(const struct audit_actor){ 0, "gateway", "" };
	ne.memo = "";
	ne.created_at = created_at;
	rc = append_entry(&ne, &id, &after);
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

/* ----------------------------------------------------------------- audit */

struct audit_ctx {
	FILE *out;
	int64_t problems;
};

static void problem(struct audit_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct audit_ctx *c, const char *fmt, ...)
{
	va_list ap;

	c->problems++;
	if (!c->out || c->problems > 200)
		return;
	fputs("audit: ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

struct derived {
	int64_t org_id;
	int64_t sum;
	int overflow;
};

/* Walk every entry by org and id: balance_after continuity, the hash chain,
 * per-kind rules; collects each org's sum of amounts. */
static int audit_walk(struct audit_ctx *c, struct derived **out, size_t *n_out, int64_t *entries)
{
	sqlite3_stmt *st = db_stmt("SELECT id, org_id, created_at, kind, amount, balance_after,"
				   " request_id, coalesce(key_id, 0), coalesce(code_id, 0), actor, memo,"
				   " chain FROM ledger_entries ORDER BY org_id, id");
	unsigned char prev[CHAIN_LEN], chain[CHAIN_LEN];
	struct derived *d = NULL, *cur = NULL;
	size_t n = 0, cap = 0;
	int64_t prev_after = 0;
	char a1[MONEY_FMT_LEN], a2[MONEY_FMT_LEN];
	int rc = TG_OK, step;

	*entries = 0;
	if (!st)
		return TG_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct entry_fields f;
		const char *kind;
		int64_t expect;
		int has_rid = sqlite3_column_type(st, 6) != SQLITE_NULL;

		memset(&f, 0, sizeof(f));
		f.id = sqlite3_column_int64(st, 0);
		f.org_id = sqlite3_column_int64(st, 1);
		f.created_at = sqlite3_column_int64(st, 2);
		f.kind = kind = db_col_text(st, 3);
		f.amount = sqlite3_column_int64(st, 4);
		f.balance_after = sqlite3_column_int64(st, 5);
		f.request_id = has_rid ? db_col_text(st, 6) : NULL;
		f.key_id = sqlite3_column_int64(st, 7);
		f.code_id = sqlite3_column_int64(st, 8);
		f.actor = db_col_text(st, 9);
		f.memo = db_col_text(st, 10);
		(*entries)++;

		if (!cur || cur->org_id != f.org_id) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct derived *g = realloc(d, nc * sizeof(*g));

				if (!g) {
					rc = TG_ENOMEM;
					goto out;
				}
				d = g;
				cap = nc;
			}
			cur = &d[n++];
			cur->org_id = f.org_id;
			cur->sum = 0;
			cur->overflow = 0;
			memset(prev, 0, sizeof(prev));
			prev_after = 0;
		}
		if (!cur->overflow && money_add(cur->sum, f.amount, &cur->sum)) {
			cur->overflow = 1;
			problem(c, "org %lld: the sum of its entries overflows", (long long)f.org_id);
		}
		if (money_add(prev_after, f.amount, &expect) || expect != f.balance_after) {
			money_format(f.balance_after, a1);
			money_format(prev_after, a2);
			problem(c, "entry %lld (org %lld): balance_after %s does not follow from the "
				   "previous balance %s and its amount",
				(long long)f.id, (long long)f.org_id, a1, a2);
		}
		prev_after = f.balance_after;

		chain_hash(prev, &f, chain);
		if (sqlite3_column_bytes(st, 11) != CHAIN_LEN ||
		    sodium_memcmp(chain, sqlite3_column_blob(st, 11), CHAIN_LEN) != 0) {
			problem(c, "entry %lld (org %lld): hash chain broken: this entry was altered "
				   "or an earlier entry of the org was removed",
				(long long)f.id, (long long)f.org_id);
		}
		if (sqlite3_column_bytes(st, 11) == CHAIN_LEN)
			memcpy(prev, sqlite3_column_blob(st, 11), CHAIN_LEN);
		else
			memcpy(prev, chain, CHAIN_LEN);

		if (strcmp(kind, "usage") == 0) {
			if (!has_rid || f.amount > 0 || f.code_id)
				problem(c, "entry %lld (org %lld): a usage entry needs a request id, a "
					   "non-positive amount and no code",
					(long long)f.id, (long long)f.org_id);
		} else if (strcmp(kind, "grant") == 0 || strcmp(kind, "redeem") == 0) {
			if (f.amount <= 0 || has_rid || (kind[0] == 'r') != (f.code_id != 0))
				problem(c, "entry %lld (org %lld): a %s entry needs a positive amount%s",
					(long long)f.id, (long long)f.org_id, kind,
					kind[0] == 'r' ? " and a code" : " and no code");
		} else if (strcmp(kind, "adjust") == 0) {
			if (f.amount == 0 || has_rid || f.code_id)
				problem(c, "entry %lld (org %lld): an adjust entry needs a non-zero amount",
					(long long)f.id, (long long)f.org_id);
		} else {
			problem(c, "entry %lld (org %lld): unknown kind '%s'", (long long)f.id,
				(long long)f.org_id, kind);
		}
	}
	if (step != SQLITE_DONE)
		rc = TG_EDB;
out:
	db_done(st);
	if (rc) {
		free(d);
		return rc;
	}
	*out = d;
	*n_out = n;
	return TG_OK;
}

/* Each org's cached balance against the sum of its entries (both lists are
 * sorted by org id). */
static int audit_balances(struct audit_ctx *c, const struct derived *d, size_t n, int64_t *orgs)
{
	sqlite3_stmt *st = db_stmt("SELECT id, name, balance FROM orgs ORDER BY id");
	char a1[MONEY_FMT_LEN], a2[MONEY_FMT_LEN];
	size_t j = 0;
	int step;

	*orgs = 0;
	if (!st)
		return TG_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), bal = sqlite3_column_int64(st, 2), sum = 0;
		int overflow = 0;

		(*orgs)++;
		while (j < n && d[j].org_id < id)
			j++; /* entries of a missing org: reported as orphans */
		if (j < n && d[j].org_id == id) {
			sum = d[j].sum;
			overflow = d[j].overflow;
		}
		if (!overflow && sum != bal) {
			money_format(bal, a1);
			money_format(sum, a2);
			problem(c, "org %lld (%s): balance %s but its entries sum to %s", (long long)id,
				db_col_text(st, 1), a1, a2);
		}
	}
	db_done(st);
	return step == SQLITE_DONE ? TG_OK : TG_EDB;
}

/* Duplicate request ids, orphans and redemption codes. */
static int audit_links(struct audit_ctx *c)
{
	sqlite3_stmt *st;
	int step;

	st = db_stmt("SELECT request_id, count(*) FROM ledger_entries WHERE request_id IS NOT NULL"
		     " GROUP BY request_id HAVING count(*) > 1");
	if (!st)
		return TG_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		problem(c, "request id %s is settled %lld times", db_col_text(st, 0),
			(long long)sqlite3_column_int64(st, 1));
	db_done(st);
	if (step != SQLITE_DONE)
		return TG_EDB;

	st = db_stmt("SELECT e.id, e.org_id, e.key_id, e.code_id,"
		     " o.id IS NULL, e.key_id IS NOT NULL AND k.id IS NULL,"
		     " e.code_id IS NOT NULL AND c.id IS NULL"
		     " FROM ledger_entries e LEFT JOIN orgs o ON o.id = e.org_id"
		     " LEFT JOIN api_keys k ON k.id = e.key_id"
		     " LEFT JOIN redemption_codes c ON c.id = e.code_id"
		     " WHERE o.id IS NULL OR (e.key_id IS NOT NULL AND k.id IS NULL)"
		     " OR (e.code_id IS NOT NULL AND c.id IS NULL) ORDER BY e.id");
	if (!st)
		return TG_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		long long id = (long long)sqlite3_column_int64(st, 0);

		if (sqlite3_column_int(st, 4))
			problem(c, "entry %lld points at missing org %lld", id,
				(long long)sqlite3_column_int64(st, 1));
		if (sqlite3_column_int(st, 5))
			problem(c, "entry %lld points at missing API key %lld", id,
				(long long)sqlite3_column_int64(st, 2));
		if (sqlite3_column_int(st, 6))
			problem(c, "entry %lld points at missing redemption code %lld", id,
				(long long)sqlite3_column_int64(st, 3));
	}
	db_done(st);
	if (step != SQLITE_DONE)
		return TG_EDB;

	st = db_stmt("SELECT c.id, c.prefix, c.amount, c.redeemed_at IS NOT NULL,"
		     " coalesce(c.redeemed_org_id, 0), coalesce(x.n, 0), x.org_lo, x.org_hi, x.total"
		     " FROM redemption_codes c LEFT JOIN (SELECT code_id, count(*) AS n,"
		     " min(org_id) AS org_lo, max(org_id) AS org_hi, sum(amount) AS total"
		     " FROM ledger_entries WHERE code_id IS NOT NULL GROUP BY code_id) x"
		     " ON x.code_id = c.id ORDER BY c.id");
	if (!st)
		return TG_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		long long id = (long long)sqlite3_column_int64(st, 0);
		const char *prefix = db_col_text(st, 1);
		int64_t amount = sqlite3_column_int64(st, 2), org = sqlite3_column_int64(st, 4);
		int redeemed = sqlite3_column_int(st, 3);
		int64_t nent = sqlite3_column_int64(st, 5);

		if (!redeemed && nent) {
			problem(c, "code %lld (%s): not redeemed but has %lld ledger entries", id, prefix,
				(long long)nent);
		} else if (redeemed && nent != 1) {
			problem(c, "code %lld (%s): redeemed but has %lld redeem entries (expected 1)", id,
				prefix, (long long)nent);
		} else if (redeemed && (sqlite3_column_int64(st, 6) != org ||
					sqlite3_column_int64(st, 8) != amount)) {
			problem(c, "code %lld (%s): its redeem entry does not match the org or the amount "
				   "of the code", id, prefix);
		}
	}
	db_done(st);
	return step == SQLITE_DONE ? TG_OK : TG_EDB;
}

int ledger_audit(void *out)
{
	struct audit_ctx c = { out, 0 };
	struct derived *d = NULL;
	size_t n = 0;
	int64_t entries = 0, orgs = 0;
	sqlite3 *db = db_get();
	sqlite3_stmt *st;
	int own_tx, rc;

	if (!db)
		return TG_EDB;
	/* One read transaction, so the audit sees one consistent snapshot even
	 * while a server keeps writing (WAL lets it). */
	own_tx = sqlite3_get_autocommit(db);
	if (own_tx) {
		st = db_stmt("BEGIN DEFERRED");
		if (!st || db_exec_stmt(st))
			return TG_EDB;
	}
	rc = audit_walk(&c, &d, &n, &entries);
	if (!rc)
		rc = audit_balances(&c, d, n, &orgs);
	if (!rc)
		rc = audit_links(&c);
	if (own_tx) {
		st = db_stmt("COMMIT");
		if (st)
			db_exec_stmt(st);
	}
	free(d);
	if (rc) {
		if (c.out)
			fprintf(c.out, "audit: could not read the database (%s)\n", tg_strerror(rc));
		return rc;
	}
	if (c.out) {
		if (c.problems > 200)
			fprintf(c.out, "audit: ... and %lld more\n", (long long)(c.problems - 200));
		if (c.problems)
			fprintf(c.out, "audit: %lld orgs, %lld entries, %lld problem%s found\n",
				(long long)orgs, (long long)entries, (long long)c.problems,
				c.problems == 1 ? "" : "s");
		else
			fprintf(c.out, "audit: %lld orgs, %lld entries, balances OK\n", (long long)orgs,
				(long long)entries);
		fflush(c.out);
	}
	return c.problems ? TG_ECONFLICT : TG_OK;
}
