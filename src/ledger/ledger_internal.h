/* ledger_internal.h - what the ledger's own files share (ledger.c, holds.c,
 * codes.c, audit.c); not for use outside src/ledger/.
 *
 * ledger.c appends entries (the only writer of ledger_entries and
 * orgs.balance) and owns the hash chain; holds.c owns the in-memory hold
 * table and its lock.
 */
#ifndef TG_LEDGER_INTERNAL_H
#define TG_LEDGER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "identity/identity.h"
#include "ledger/ledger_kind.h"
#include "store/db.h"

#define LEDGER_CHAIN_LEN 32

/* The actor of writes nobody in particular asked for. */
extern const struct audit_actor ledger_system_actor;

/* One entry's chained fields (see the encoding in ledger.c). */
struct ledger_entry_fields {
	int64_t id, org_id, created_at, amount, balance_after, key_id, code_id;
	const char *kind, *request_id, *actor, *memo;
};

/* out = the chain of e after prev (32 zero bytes for an org's first entry). */
void ledger_chain_hash(const unsigned char prev[LEDGER_CHAIN_LEN],
		       const struct ledger_entry_fields *e, unsigned char out[LEDGER_CHAIN_LEN]);

struct ledger_new_entry {
	int64_t org_id;
	enum ledger_kind kind;
	int64_t amount;
	const char *request_id;          /* usage only, else NULL */
	int64_t key_id;                  /* 0 = none */
	int64_t code_id;                 /* 0 = none */
	const struct audit_actor *actor; /* NULL = ledger_system_actor */
	const char *memo;
	int no_negative;    /* refuse (TG_EFUNDS) a result below `reserved` */
	int64_t reserved;   /* with no_negative: what calls in flight hold */
	int64_t created_at; /* 0 = now */
};

/* Append one entry and move orgs.balance, inside the caller's transaction,
 * which must hold the write lock (BEGIN IMMEDIATE). entry_id and
 * balance_after may be NULL. TG_OK or a negative TG_E* code. */
int ledger_append_entry(const struct ledger_new_entry *ne, int64_t *entry_id,
			int64_t *balance_after);

/* Bind v to name, or NULL when v <= 0 (no such row). */
int ledger_bind_id_or_null(tg_stmt *st, const char *name, int64_t v);

/* 1 when s is 1..max_chars characters of UTF-8 text, not only spaces, with
 * no control characters; else 0. */
int ledger_text_ok(const char *s, size_t max_chars);

/* The hold table's lock (holds.c). The order is the database write lock
 * first, then this one. */
void ledger_holds_lock(void);
void ledger_holds_unlock(void);
/* What the org's holds count now; with the holds lock held. */
int ledger_org_reserved_locked(int64_t org_id, int64_t *reserved);

#endif
