/* audit.c - `tollgate audit`: re-derive every balance from the entries and
 * check the chain and every invariant of the ledger; see ledger.h.
 */
#include "ledger/ledger.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger_internal.h"
#include "ledger/money.h"
#include "store/db.h"

struct audit_ctx {
	FILE *out;
	int64_t problems;
};

static void problem(struct audit_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
	tg_stmt *st = db_stmt("SELECT id, org_id, created_at, kind, amount, balance_after,"
			      " request_id, coalesce(key_id, 0), coalesce(code_id, 0), actor, memo,"
			      " chain FROM ledger_entries ORDER BY org_id, id");
	unsigned char prev[LEDGER_CHAIN_LEN], chain[LEDGER_CHAIN_LEN];
	struct derived *d = NULL, *cur = NULL;
	size_t n = 0, cap = 0;
	int64_t prev_after = 0;
	char a1[MONEY_FMT_LEN], a2[MONEY_FMT_LEN];
	int rc = TG_OK, step;

	*entries = 0;
	if (!st)
		return TG_EDB;
	while ((step = db_step(st)) == DB_ROW) {
		struct ledger_entry_fields f;
		const char *kind;
		int64_t expect;
		int has_rid = !db_col_is_null(st, 6);

		memset(&f, 0, sizeof(f));
		f.id = db_col_int64(st, 0);
		f.org_id = db_col_int64(st, 1);
		f.created_at = db_col_int64(st, 2);
		f.kind = kind = db_col_text(st, 3);
		f.amount = db_col_int64(st, 4);
		f.balance_after = db_col_int64(st, 5);
		f.request_id = has_rid ? db_col_text(st, 6) : NULL;
		f.key_id = db_col_int64(st, 7);
		f.code_id = db_col_int64(st, 8);
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
			problem(c, "org %lld: the sum of its entries overflows",
				(long long)f.org_id);
		}
		if (money_add(prev_after, f.amount, &expect) || expect != f.balance_after) {
			money_format(f.balance_after, a1);
			money_format(prev_after, a2);
			problem(c,
				"entry %lld (org %lld): balance_after %s does not follow from the "
				"previous balance %s and its amount",
				(long long)f.id, (long long)f.org_id, a1, a2);
		}
		prev_after = f.balance_after;

		ledger_chain_hash(prev, &f, chain);
		if (db_col_bytes(st, 11) != LEDGER_CHAIN_LEN ||
		    sodium_memcmp(chain, db_col_blob(st, 11), LEDGER_CHAIN_LEN) != 0) {
			problem(c,
				"entry %lld (org %lld): hash chain broken: this entry was altered "
				"or an earlier entry of the org was removed",
				(long long)f.id, (long long)f.org_id);
		}
		if (db_col_bytes(st, 11) == LEDGER_CHAIN_LEN)
			memcpy(prev, db_col_blob(st, 11), LEDGER_CHAIN_LEN);
		else
			memcpy(prev, chain, LEDGER_CHAIN_LEN);

		if (strcmp(kind, "usage") == 0) {
			if (!has_rid || f.amount > 0 || f.code_id)
				problem(c,
					"entry %lld (org %lld): a usage entry needs a request "
					"id, a "
					"non-positive amount and no code",
					(long long)f.id, (long long)f.org_id);
		} else if (strcmp(kind, "grant") == 0 || strcmp(kind, "redeem") == 0) {
			if (f.amount <= 0 || has_rid || (kind[0] == 'r') != (f.code_id != 0))
				problem(c,
					"entry %lld (org %lld): a %s entry needs a positive "
					"amount%s",
					(long long)f.id, (long long)f.org_id, kind,
					kind[0] == 'r' ? " and a code" : " and no code");
		} else if (strcmp(kind, "adjust") == 0) {
			if (f.amount == 0 || has_rid || f.code_id)
				problem(c,
					"entry %lld (org %lld): an adjust entry needs a non-zero "
					"amount",
					(long long)f.id, (long long)f.org_id);
		} else {
			problem(c, "entry %lld (org %lld): unknown kind '%s'", (long long)f.id,
				(long long)f.org_id, kind);
		}
	}
	if (step != DB_DONE)
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
	tg_stmt *st = db_stmt("SELECT id, name, balance FROM orgs ORDER BY id");
	char a1[MONEY_FMT_LEN], a2[MONEY_FMT_LEN];
	size_t j = 0;
	int step;

	*orgs = 0;
	if (!st)
		return TG_EDB;
	while ((step = db_step(st)) == DB_ROW) {
		int64_t id = db_col_int64(st, 0), bal = db_col_int64(st, 2), sum = 0;
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
			problem(c, "org %lld (%s): balance %s but its entries sum to %s",
				(long long)id, db_col_text(st, 1), a1, a2);
		}
	}
	db_done(st);
	return step == DB_DONE ? TG_OK : TG_EDB;
}

/* Duplicate request ids, orphans and redemption codes. */
static int audit_links(struct audit_ctx *c)
{
	tg_stmt *st;
	int step;

	st = db_stmt("SELECT request_id, count(*) FROM ledger_entries WHERE request_id IS NOT NULL"
		     " GROUP BY request_id HAVING count(*) > 1");
	if (!st)
		return TG_EDB;
	while ((step = db_step(st)) == DB_ROW)
		problem(c, "request id %s is settled %lld times", db_col_text(st, 0),
			(long long)db_col_int64(st, 1));
	db_done(st);
	if (step != DB_DONE)
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
	while ((step = db_step(st)) == DB_ROW) {
		long long id = (long long)db_col_int64(st, 0);

		if (db_col_int(st, 4))
			problem(c, "entry %lld points at missing org %lld", id,
				(long long)db_col_int64(st, 1));
		if (db_col_int(st, 5))
			problem(c, "entry %lld points at missing API key %lld", id,
				(long long)db_col_int64(st, 2));
		if (db_col_int(st, 6))
			problem(c, "entry %lld points at missing redemption code %lld", id,
				(long long)db_col_int64(st, 3));
	}
	db_done(st);
	if (step != DB_DONE)
		return TG_EDB;

	st = db_stmt(
		"SELECT c.id, c.prefix, c.amount, c.redeemed_at IS NOT NULL,"
		" coalesce(c.redeemed_org_id, 0), coalesce(x.n, 0), x.org_lo, x.org_hi, x.total"
		" FROM redemption_codes c LEFT JOIN (SELECT code_id, count(*) AS n,"
		" min(org_id) AS org_lo, max(org_id) AS org_hi, sum(amount) AS total"
		" FROM ledger_entries WHERE code_id IS NOT NULL GROUP BY code_id) x"
		" ON x.code_id = c.id ORDER BY c.id");
	if (!st)
		return TG_EDB;
	while ((step = db_step(st)) == DB_ROW) {
		long long id = (long long)db_col_int64(st, 0);
		const char *prefix = db_col_text(st, 1);
		int64_t amount = db_col_int64(st, 2), org = db_col_int64(st, 4);
		int redeemed = db_col_int(st, 3);
		int64_t nent = db_col_int64(st, 5);

		if (!redeemed && nent) {
			problem(c, "code %lld (%s): not redeemed but has %lld ledger entries", id,
				prefix, (long long)nent);
		} else if (redeemed && nent != 1) {
			problem(c,
				"code %lld (%s): redeemed but has %lld redeem entries (expected 1)",
				id, prefix, (long long)nent);
		} else if (redeemed &&
			   (db_col_int64(st, 6) != org || db_col_int64(st, 8) != amount)) {
			problem(c,
				"code %lld (%s): its redeem entry does not match the org or the "
				"amount of the code",
				id, prefix);
		}
	}
	db_done(st);
	return step == DB_DONE ? TG_OK : TG_EDB;
}

/* Shared holds (PostgreSQL): per org, available + held + spent = credits
 * with available >= 0, where held is the sum of its hold rows, credits what
 * the org was given (every entry but usage), spent its usage and available
 * = balance - held. */
static int audit_holds(struct audit_ctx *c)
{
	tg_stmt *st;
	int rc;

	if (!db_is_pg())
		return TG_OK;
	st = db_stmt("SELECT o.id, o.name, o.balance,"
		     " (SELECT coalesce(sum(h.amount), 0) FROM holds h WHERE h.org_id = o.id),"
		     " (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
		     "  WHERE e.org_id = o.id AND e.kind <> 'usage'),"
		     " (SELECT coalesce(sum(-e.amount), 0) FROM ledger_entries e"
		     "  WHERE e.org_id = o.id AND e.kind = 'usage')"
		     " FROM orgs o ORDER BY o.id");
	if (!st)
		return TG_EDB;
	while ((rc = db_step(st)) == DB_ROW) {
		int64_t id = db_col_int64(st, 0), balance = db_col_int64(st, 2);
		int64_t held = db_col_int64(st, 3);
		int64_t credits = db_col_int64(st, 4), spent = db_col_int64(st, 5);
		__int128 available = (__int128)balance - held;
		char a1[MONEY_FMT_LEN];

		if (held < 0)
			problem(c, "org %lld (%s): a hold of a negative amount", (long long)id,
				db_col_text(st, 1));
		if (available < 0) {
			money_format((int64_t)-available, a1);
			problem(c, "org %lld (%s): available credit is -%s", (long long)id,
				db_col_text(st, 1), a1);
		}
		if (available + held + spent != (__int128)credits)
			problem(c, "org %lld (%s): available + held + spent is not its credits",
				(long long)id, db_col_text(st, 1));
	}
	db_done(st);
	return rc == DB_DONE ? TG_OK : TG_EDB;
}

int ledger_audit(void *out)
{
	struct audit_ctx c = { out, 0 };
	struct derived *d = NULL;
	size_t n = 0;
	int64_t entries = 0, orgs = 0;
	tg_stmt *st;
	int own_tx, rc;

	/* One read transaction, so the audit sees one consistent snapshot even
	 * while a server keeps writing (WAL lets it). */
	own_tx = !db_in_tx();
	if (own_tx && db_begin_read())
		return TG_EDB;
	rc = audit_walk(&c, &d, &n, &entries);
	if (!rc)
		rc = audit_balances(&c, d, n, &orgs);
	if (!rc)
		rc = audit_links(&c);
	if (!rc)
		rc = audit_holds(&c);
	if (own_tx) {
		st = db_stmt("COMMIT");
		if (st)
			db_exec_stmt(st);
	}
	free(d);
	if (rc) {
		if (c.out)
			fprintf(c.out, "audit: could not read the database (%s)\n",
				tg_strerror(rc));
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
			fprintf(c.out, "audit: %lld orgs, %lld entries, balances OK\n",
				(long long)orgs, (long long)entries);
		fflush(c.out);
	}
	return c.problems ? TG_ECONFLICT : TG_OK;
}
