/* billing.h - the storage seam of the money path.
 *
 * Everything a metered call does with money and counters goes through one
 * struct of operations: claim the client's request id, check the rate-limit
 * counters, hold credit, hand the finished call over (its debit and request
 * row), read balances and spend. The gateway calls billing() and never knows
 * which store answers; the embedded default is SQLite (billing_sqlite.c: holds
 * in memory against orgs.balance, the call journal's group commit, in-memory
 * token buckets), and a store shared by several instances can be added beside
 * it by filling the same struct.
 *
 * Contract of every store:
 *   - a hold never lets the org's holds exceed what it has, under any
 *     concurrency; a released hold frees its amount exactly once;
 *   - a recorded call with `billed` set debits `cost` once per request id
 *     (a retry of the same id is refused by claim_request, and the ledger's
 *     UNIQUE request id refuses a second debit even past that);
 *   - record() owns the record from the call on, success or not.
 */
#ifndef TG_BILLING_H
#define TG_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include "billing/ratelimit.h"
#include "catalog/catalog.h"
#include "ledger/ledger.h"

#define BILLING_REQUEST_ID_MAX 64

/* One finished call: its request row and, when billed, its debit. */
struct call_record {
	/* Stored (the journal writes these fields). */
	uint64_t seq;                                    /* assigned by the store */
	int64_t created_at, org_id, key_id, provider_id; /* provider_id 0: none */
	int64_t stream, status, prompt, cached, completion, cost, upstream_ms, total_ms;
	int64_t cache_write, reasoning, attempt; /* attempt: 1 for a call tried once */
	int64_t failed_over; /* 1: an attempt another deployment took over from */
	int billed;          /* debit `cost` as a usage entry carrying request_id */
	int mark_used;       /* set the key's last_used_at to created_at */
	char request_id[BILLING_REQUEST_ID_MAX + 1];
	char endpoint[32];
	char model[CATALOG_NAME_MAX + 1];
	char source[16]; /* reported | estimated | none */
	char err[256];
	char client[46]; /* the client's address (behind a trusted proxy, the real one) */
	/* In memory only. */
	struct ledger_hold hold; /* handed over by the call; released after the commit */
	int inflight;            /* the request id was claimed: release it after the commit */
	int debited;             /* this attempt wrote the debit */
	int64_t balance_after;
	struct call_record *next;
};

/* A hold for one call: `amount` of org_id's credit for key_id. With
 * key_limit > 0, the key's usage since key_since plus its holds plus amount
 * must stay within key_limit too. */
struct hold_ask {
	int64_t org_id, key_id, amount;
	int64_t key_limit, key_since;
};

struct billing_ops {
	const char *name;
	/* Claim a client's request id for a call: TG_OK, TG_ECONFLICT when a
	 * call with this id was billed already or is in flight, another TG_E*
	 * when the store cannot answer. */
	int (*claim_request)(const char *request_id);
	/* Give a claim back (a call that ends without a recorded debit). */
	void (*unclaim_request)(const char *request_id);
	/* Rate-limit counters: admit a call against all its buckets at once
	 * (1 admitted, 0 refused, a negative TG_E* when the counters cannot be
	 * read: the caller refuses the call), then correct a bucket by delta
	 * once the actual usage is known. */
	int (*rl_admit)(const struct rl_ask *asks, int n, int64_t now_us, struct rl_state *out);
	void (*rl_adjust)(enum rl_scope scope, int64_t id, int64_t limit_per_min, int64_t delta,
			  int64_t now_us);
	/* TG_OK and h->active, TG_EFUNDS with *available (what the org, or the
	 * key's limit, could still cover) for the 402 message, another TG_E*
	 * when the store cannot answer. */
	int (*hold)(const struct hold_ask *ask, struct ledger_hold *h, int64_t *available);
	/* Give a hold back (idempotent). */
	void (*release)(struct ledger_hold *h);
	/* Hand a finished call over (rec from malloc, owned by the store from
	 * now on; do not touch it afterwards): TG_OK when it is durable, its
	 * debit counted in balance_projected from now on. */
	int (*record)(struct call_record *rec);
	/* The org's committed balance, and the balance once every recorded
	 * debit is applied. */
	int (*balance)(int64_t org_id, int64_t *balance);
	int (*balance_projected)(int64_t org_id, int64_t *balance);
	/* A key's usage debits since a time, the caller's recorded calls
	 * included. */
	int64_t (*key_spend)(int64_t key_id, int64_t since);
};

/* The store in use: SQLite unless billing_use() chose another. */
const struct billing_ops *billing(void);
void billing_use(const struct billing_ops *ops);

extern const struct billing_ops billing_sqlite;
/* Several instances on one PostgreSQL database (billing_pg.c): holds, claims
 * and rate-limit buckets in shared tables, guarded in the database. */
extern const struct billing_ops billing_pg;

/* billing_pg's background work (a thread): renew this instance's holds and
 * claims, and, on the one instance holding the reaper's advisory lock, void
 * expired ones. hold_ttl_s: how long a hold outlives its instance's last
 * renewal. */
int billing_pg_start(int64_t hold_ttl_s);
void billing_pg_stop(void);
/* Holds voided by this instance's reaper since start (for /metrics). */
int64_t billing_pg_voided(void);

#endif
