/* billing_sqlite.c - the embedded money store: one SQLite database and this
 * process's memory. See billing.h for the contract.
 *
 * Holds live in memory against orgs.balance (ledger/holds.c), so a hold
 * costs no write; a finished call goes to the call journal (journal.h), whose
 * writer group-commits debits and request rows; rate-limit buckets are in
 * memory (ratelimit.h) and request ids in flight in a table (inflight.h). All
 * of it is right for one serving process per database, which the lock file
 * enforces.
 */
#include <string.h>

#include "billing/billing.h"
#include "billing/inflight.h"
#include "billing/journal.h"
#include "core/log.h"
#include "store/db.h"

static const struct billing_ops *current = &billing_sqlite;

const struct billing_ops *billing(void)
{
	return current;
}

void billing_use(const struct billing_ops *ops)
{
	current = ops ? ops : &billing_sqlite;
}

/* 1 when a usage debit with this request id is already in the ledger. */
static int request_id_billed(const char *id)
{
	tg_stmt *st = db_stmt("SELECT 1 FROM ledger_entries WHERE request_id = :id");
	int found = 0;

	if (st && !db_bind_text(st, ":id", id))
		found = db_step(st) == DB_ROW;
	db_done(st);
	return found;
}

static int sqlite_claim_request(const char *id)
{
	if (strlen(id) > INFLIGHT_ID_MAX || request_id_billed(id) || !inflight_claim(id))
		return TG_ECONFLICT;
	return TG_OK;
}

static int sqlite_hold(const struct hold_ask *a, struct ledger_hold *h, int64_t *available)
{
	/* The key's spend this period is read with the balance, under the
	 * ledger's lock, so a key limit holds exactly under concurrent calls. */
	if (a->key_limit > 0)
		return ledger_hold_since(a->org_id, a->key_id, a->amount, a->key_limit,
					 a->key_since, h, available);
	return ledger_hold(a->org_id, a->key_id, a->amount, 0, 0, h, available);
}

static int sqlite_record(struct call_record *rec)
{
	/* Until its entry commits, the hold counts the cost, not the reserve. */
	if (rec->billed)
		ledger_hold_settling(&rec->hold, rec->cost);
	return journal_submit(rec);
}

static int64_t sqlite_key_spend(int64_t key_id, int64_t since)
{
	journal_flush(); /* the caller's own calls still on their way */
	return ledger_key_spend(key_id, since);
}

const struct billing_ops billing_sqlite = {
	.name = "sqlite",
	.claim_request = sqlite_claim_request,
	.unclaim_request = inflight_drop,
	.rl_admit = rl_admit,
	.rl_adjust = rl_adjust,
	.hold = sqlite_hold,
	.release = ledger_release,
	.record = sqlite_record,
	.balance = ledger_balance,
	.balance_projected = ledger_balance_projected,
	.key_spend = sqlite_key_spend,
};
