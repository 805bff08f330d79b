/* ledger.h - credits: the append-only ledger, org balances, redemption codes,
 * in-memory holds, usage settlement and the audit of all of it.
 *
 * Only this module writes ledger_entries, orgs.balance and redemption_codes.
 * Every write is one transaction that appends an entry (chained to the
 * previous one of the org) and moves orgs.balance by the same amount.
 */
#ifndef TG_LEDGER_H
#define TG_LEDGER_H

#include <stdint.h>

#include "core/common.h"
#include "identity/identity.h"
#include "ledger/ledger_kind.h" /* enum ledger_kind */

const char *ledger_kind_name(enum ledger_kind k);

#define LEDGER_MEMO_MAX 500   /* characters in a grant / adjust memo */
#define LEDGER_BATCH_MAX 100  /* characters in a code batch label */
#define LEDGER_CODES_MAX 1000 /* codes per batch */
#define LEDGER_CODE_TAG "tgc_"
#define LEDGER_CODE_LEN 28 /* "tgc_" + 24 base62 characters */
#define LEDGER_CODE_PREFIX_LEN 12
#define LEDGER_REQUEST_ID_MAX 64

/* Midnight UTC of the first day of t's month, for "spend this month". */
int64_t ledger_month_start(int64_t t);

/* Current balance (micro-credits) from orgs.balance; TG_ENOTFOUND. */
int ledger_balance(int64_t org_id, int64_t *balance);
/* Sum of usage debits (as a positive number) of a key since a time, and of
 * an org since a time. */
int64_t ledger_key_spend(int64_t key_id, int64_t since);
int64_t ledger_org_spend(int64_t org_id, int64_t since);

/* Grant (amount > 0) or adjust (any non-zero amount; a deduction may not
 * take the balance below zero: TG_EFUNDS). memo is required (TG_EINVAL):
 * 1..LEDGER_MEMO_MAX characters, not only spaces, no control characters.
 * TG_ERANGE when the balance would overflow, TG_ENOTFOUND for an unknown
 * org. Writes the entry, the balance and an audit_log entry (credits.grant /
 * credits.adjust) in one transaction. */
int ledger_grant(int64_t org_id, enum ledger_kind kind, int64_t amount, const char *memo,
		 const struct audit_actor *actor, int64_t *entry_id);

/* Redemption codes: create a batch of n codes (each printed once into
 * codes_out[i], KEYS-like "tgc_" strings, caller frees each with free()).
 * 1 <= n <= LEDGER_CODES_MAX, amount > 0, expires_at 0 (never) or in the
 * future, batch 1..LEDGER_BATCH_MAX characters; else TG_EINVAL. Codes are
 * stored as BLAKE2b hashes with a display prefix of LEDGER_CODE_PREFIX_LEN
 * characters; on failure nothing is stored and codes_out[] is all NULL. */
int ledger_codes_create(int n, int64_t amount, int64_t expires_at, const char *batch,
			const struct audit_actor *actor, char **codes_out);
/* Redeem once, even under concurrent attempts: TG_OK (amount_out set),
 * TG_ENOTFOUND (no such code, or malformed), TG_ECONFLICT (already used),
 * TG_EPERM (expired), TG_EINVAL (no such org). One transaction: the code is
 * marked, the redeem entry appended and an audit_log entry written. */
int ledger_redeem(const char *code, int64_t org_id, const struct audit_actor *actor,
		  int64_t *amount_out);

/* --- holds: reservations in memory against balance - held --- */
struct ledger_hold {
	int64_t org_id;
	int64_t key_id;
	int64_t amount;
	int active;
	uint64_t serial; /* internal: names the hold in the in-memory table */
	size_t slot;     /* internal: where it probably is in that table */
};
/* Reserve `amount` for a call by key_id of org_id. Fits when
 *   balance - org_held >= amount, and, when key_limit > 0,
 *   key_spent + key_held + amount <= key_limit.
 * On TG_EFUNDS, *available gets what the org (or the key's limit, whichever
 * is smaller) could still cover (never below 0), for the 402 message.
 * Thread-safe; never lets concurrent holds exceed the balance. The balance is
 * read from the database each time (the CLI may grant while a server runs).
 * A settled hold counts its cost until its entry is committed and nothing
 * after, so a cost is never counted twice between COMMIT and release.
 * key_spent comes from the caller (ledger_key_spend just before). TG_EINVAL
 * for a negative amount, TG_ENOTFOUND for an unknown org. h is always
 * written (h->active = 1 only on TG_OK). */
int ledger_hold(int64_t org_id, int64_t key_id, int64_t amount, int64_t key_limit,
		int64_t key_spent, struct ledger_hold *h, int64_t *available);
/* Same, but reads the key's usage since `key_since` itself, in the same
 * database snapshot as the balance, so the key limit is exact even while
 * other calls of the key settle concurrently. key_limit <= 0: no limit. */
int ledger_hold_since(int64_t org_id, int64_t key_id, int64_t amount, int64_t key_limit,
		      int64_t key_since, struct ledger_hold *h, int64_t *available);
/* Give a hold back (idempotent). */
void ledger_release(struct ledger_hold *h);
/* Total held now (for /metrics and tests). */
int64_t ledger_held_total(void);

/* Settle a call: debit `cost` (>= 0) from the hold's org as a usage entry
 * carrying request_id, inside the caller's open transaction (db_begin), and
 * mark the hold settled so ledger_release() after the commit frees it.
 * TG_ECONFLICT when request_id was already settled (a retry): nothing is
 * written. A cost above the balance is still recorded (the balance may go
 * slightly negative only if the hold was smaller than the actual cost).
 * TG_EINVAL outside a transaction, for an inactive hold, an empty or longer
 * than LEDGER_REQUEST_ID_MAX request id or a negative cost. On any error the
 * caller's transaction is left as it was (a savepoint undoes partial work). */
int ledger_settle_tx(struct ledger_hold *h, const char *request_id, int64_t cost,
		     int64_t *balance_after);
/* The same with the entry's created_at given (0 = now): the gateway's call
 * journal writes entries a moment after the call, or after a restart. A hold
 * with serial 0 (rebuilt from the journal, not in the in-memory table) only
 * names the org and key. */
int ledger_settle_at_tx(struct ledger_hold *h, const char *request_id, int64_t cost,
			int64_t created_at, int64_t *balance_after);
/* Mark a hold settled at `cost` before its entry is written: from now on it
 * counts `cost` (not its reserve) until ledger_settle_at_tx's entry commits,
 * and nothing after. Also used to re-arm holds whose batch rolled back. */
void ledger_hold_settling(struct ledger_hold *h, int64_t cost);
/* The org's balance once every settled hold's entry is committed: the
 * committed balance minus the costs still on their way. */
int ledger_balance_projected(int64_t org_id, int64_t *balance);

/* Re-derive every balance from the entries and check every invariant
 * (balance = sum, balance_after chain, hash chain, unique request ids,
 * no orphans, one redeem entry per redeemed code). Prints each problem on
 * its own line and a summary to `out` (FILE *, may be NULL) and returns TG_OK
 * when clean, TG_ECONFLICT on any drift, TG_EDB when it cannot read. Reads
 * one consistent snapshot, so it may run while a server writes. */
int ledger_audit(void *out);

#endif
