/* codes.c - redemption codes: batches created once, each redeemed once; see
 * ledger.h. A code is stored as its BLAKE2b hash and a display prefix only.
 */
#include "ledger/ledger.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base62.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "crypto/tokens.h"
#include "ledger/ledger_internal.h"
#include "ledger/money.h"
#include "store/db.h"

static int code_well_formed(const char *code)
{
	size_t tag = strlen(LEDGER_CODE_TAG);

	return code && strlen(code) == LEDGER_CODE_LEN &&
	       strncmp(code, LEDGER_CODE_TAG, tag) == 0 &&
	       base62_is_valid(code + tag, LEDGER_CODE_LEN - tag);
}

static int insert_code(const char *batch, int64_t amount, int64_t expires_at, int64_t user_id,
		       int64_t now, char code[LEDGER_CODE_LEN + 1])
{
	size_t tag = strlen(LEDGER_CODE_TAG);
	unsigned char hash[TOKENS_HASH_LEN];
	char prefix[LEDGER_CODE_PREFIX_LEN + 1];
	tg_stmt *st;

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
	    ledger_bind_id_or_null(st, ":by", user_id) ||
	    ledger_bind_id_or_null(st, ":expires", expires_at))
		return TG_EDB;
	return db_exec_stmt(st);
}

int ledger_codes_create(int n, int64_t amount, int64_t expires_at, const char *batch,
			const struct audit_actor *actor, char **codes_out)
{
	const struct audit_actor *a = actor ? actor : &ledger_system_actor;
	char code[LEDGER_CODE_LEN + 1], amt[MONEY_FMT_LEN], detail[128];
	int64_t now = time_now();
	int i, made = 0, rc, tries;

	if (n < 1 || n > LEDGER_CODES_MAX || amount <= 0 || expires_at < 0 ||
	    (expires_at > 0 && expires_at <= now) || !ledger_text_ok(batch, LEDGER_BATCH_MAX) ||
	    !codes_out)
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
	const struct audit_actor *a = actor ? actor : &ledger_system_actor;
	unsigned char hash[TOKENS_HASH_LEN];
	char prefix[LEDGER_CODE_PREFIX_LEN + 1], memo[LEDGER_BATCH_MAX * 4 + 64];
	char amt[MONEY_FMT_LEN], detail[64];
	struct ledger_new_entry ne;
	tg_stmt *st;
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
	rc = db_step(st) == DB_ROW ? TG_OK : TG_EINVAL;
	db_done(st);
	if (rc)
		goto out;

	st = db_stmt(
		"SELECT id, amount, coalesce(expires_at, 0), redeemed_at IS NOT NULL, prefix, batch"
		" FROM redemption_codes WHERE code_hash = :hash");
	if (!st || db_bind_blob(st, ":hash", hash, sizeof(hash))) {
		rc = TG_EDB;
		goto out;
	}
	if (db_step(st) != DB_ROW) {
		db_done(st);
		rc = TG_ENOTFOUND;
		goto out;
	}
	code_id = db_col_int64(st, 0);
	amount = db_col_int64(st, 1);
	expires = db_col_int64(st, 2);
	redeemed = db_col_int(st, 3);
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
	    ledger_bind_id_or_null(st, ":uid", a->user_id) ||
	    db_bind_blob(st, ":hash", hash, sizeof(hash))) {
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
	if ((rc = ledger_append_entry(&ne, NULL, NULL)))
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
