/* cli_ledger.c - `tollgate credits ...`, `tollgate audit` and `tollgate backup`.
 * Amounts are decimal credits ("12.5"), parsed exactly by money_parse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_commands.h"
#include "identity/identity.h"
#include "billing/journal.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"

static const struct audit_actor cli_actor = { 0, "cli", "" };

static int find_org(const char *name, struct org *o)
{
	if (org_get_by_name(name, o)) {
		fprintf(stderr, "tollgate: no organization named %s\n", name);
		return 1;
	}
	return 0;
}

/* credits grant|adjust --org NAME AMOUNT --memo M */
static int credits_write(struct cli_args *a, enum ledger_kind kind)
{
	static const char *const takes[] = { "org", "memo", NULL };
	const char *org = cli_opt(a, "org"), *memo = cli_opt(a, "memo");
	const char *amount_s = cli_positional(a, 0, takes), *why = NULL;
	char amt[MONEY_FMT_LEN], bal[MONEY_FMT_LEN];
	int64_t amount, id = 0, balance = 0;
	struct org o;
	int rc;

	if (!org || !amount_s || !memo) {
		fprintf(stderr, "usage: tollgate credits %s --org NAME AMOUNT --memo TEXT\n",
			ledger_kind_name(kind));
		return 2;
	}
	if (money_parse(amount_s, &amount, &why)) {
		fprintf(stderr, "tollgate: %s\n", why);
		return 2;
	}
	if (cli_open_store(a) || find_org(org, &o))
		return 1;
	rc = ledger_grant(o.id, kind, amount, memo, &cli_actor, &id);
	if (rc == TG_EINVAL) {
		fprintf(stderr, "tollgate: %s\n",
			kind == LEDGER_GRANT && amount <= 0 ?
				"a grant must be a positive amount (use 'credits adjust' to "
				"deduct)" :
			amount == 0 ? "the amount must not be zero" :
				      "the memo is required (1 to 500 characters, no control "
				      "characters)");
		return 2;
	}
	if (rc == TG_EFUNDS) {
		ledger_balance(o.id, &balance);
		money_format(balance, bal);
		fprintf(stderr,
			"tollgate: %s has only %s credits; a deduction may not make it negative, "
			"nor take what calls in flight have reserved\n",
			o.name, bal);
		return 1;
	}
	if (rc == TG_ERANGE) {
		fprintf(stderr, "tollgate: the balance would be out of range\n");
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tollgate: could not record the entry (%s)\n", tg_strerror(rc));
		return 1;
	}
	ledger_balance(o.id, &balance);
	money_format(amount, amt);
	money_format(balance, bal);
	if (kind == LEDGER_GRANT)
		printf("granted %s credits to %s (entry %lld); balance now %s\n", amt, o.name,
		       (long long)id, bal);
	else
		printf("adjusted %s by %s credits (entry %lld); balance now %s\n", o.name, amt,
		       (long long)id, bal);
	return 0;
}

static int credits_balance(struct cli_args *a)
{
	const char *org = cli_opt(a, "org");
	char bal[MONEY_FMT_LEN];
	int64_t balance = 0;
	struct org o;

	if (!org) {
		fprintf(stderr, "usage: tollgate credits balance --org NAME\n");
		return 2;
	}
	if (cli_open_store(a) || find_org(org, &o))
		return 1;
	if (ledger_balance(o.id, &balance)) {
		fprintf(stderr, "tollgate: could not read the balance\n");
		return 1;
	}
	money_format(balance, bal);
	printf("%s\n", bal);
	return 0;
}

int cmd_credits(struct cli_args *a)
{
	struct cli_args rest;
	const char *sub;

	if (!cli_subcommand(a, &rest, &sub))
		;
	else if (strcmp(sub, "grant") == 0)
		return credits_write(&rest, LEDGER_GRANT);
	else if (strcmp(sub, "adjust") == 0)
		return credits_write(&rest, LEDGER_ADJUST);
	else if (strcmp(sub, "balance") == 0)
		return credits_balance(&rest);
	fprintf(stderr,
		"usage: tollgate credits grant --org NAME AMOUNT --memo TEXT\n"
		"       tollgate credits adjust --org NAME AMOUNT --memo TEXT  (negative deducts)\n"
		"       tollgate credits balance --org NAME\n");
	return 2;
}

int cmd_audit(struct cli_args *a)
{
	int rc;

	uint64_t calls = 0;
	int64_t debits = 0;
	char amount[MONEY_FMT_LEN];

	if (cli_open_store(a))
		return 1;
	rc = ledger_audit(stdout);
	/* Not drift: calls answered and in the journal, not yet in the ledger. */
	if (journal_pending(a->cfg.data_dir, &calls, &debits) == TG_OK && calls > 0) {
		money_format(debits, amount);
		printf("audit: %llu answered calls are in the call journal, not yet in the ledger "
		       "(%s credits of debits); the running server, or the next start, applies "
		       "them\n",
		       (unsigned long long)calls, amount);
	}
	return rc == TG_OK ? 0 : 1;
}

/* A consistent copy of the live database with VACUUM INTO: a read
 * transaction, so it works while the server runs. The file is created empty
 * first (mode 0600, never over an existing file), which VACUUM INTO accepts. */
int cmd_backup(struct cli_args *a)
{
	const char *file = cli_positional(a, 0, NULL);
	tg_stmt *st;
	struct stat sb;
	int fd, rc;

	if (!file || !*file) {
		fprintf(stderr, "usage: tollgate backup FILE\n");
		return 2;
	}
	if (stat(file, &sb) == 0) {
		fprintf(stderr, "tollgate: %s already exists; choose a new file name\n", file);
		return 1;
	}
	if (cli_open_store(a))
		return 1;
	if (db_is_pg()) {
		fprintf(stderr, "tollgate: backup copies a SQLite database; back up a PostgreSQL "
				"database with pg_dump\n");
		return 1;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tollgate: cannot create %s: %s\n", file, strerror(errno));
		return 1;
	}
	close(fd);
	st = db_stmt("VACUUM INTO :file");
	rc = st ? db_bind_text(st, ":file", file) : TG_EDB;
	if (!rc)
		rc = db_exec_stmt(st);
	if (rc) {
		fprintf(stderr, "tollgate: the backup failed: %s\n", db_errmsg());
		unlink(file);
		return 1;
	}
	if (stat(file, &sb) != 0) {
		fprintf(stderr, "tollgate: the backup file %s is missing\n", file);
		return 1;
	}
	printf("backup written to %s (%lld bytes)\n", file, (long long)sb.st_size);
	return 0;
}
