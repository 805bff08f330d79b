/* cli_keys.c - `tollgate keys create|list|revoke`. A new key is printed once,
 * alone on its line on stdout (so `KEY=$(tollgate keys create ...)` works);
 * every other message goes to stderr.
 *
 * A server running on the same data directory sees these changes on its next
 * request: the keys module shares a change counter with it (apikeys.h).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys/apikeys.h"
#include "app.h"
#include "cli.h"
#include "cli_commands.h"
#include "core/timeutil.h"
#include "crypto/secrets.h"
#include "identity/identity.h"
#include "ledger/money.h"
#include "store/db.h"

static const struct audit_actor cli_actor = { 0, "cli", "" };

/* Open the store and hand the pepper to the keys module. */
static int open_keys(const struct cli_args *a)
{
	tg_secrets_t s;

	if (cli_open_store(a))
		return 1;
	memset(&s, 0, sizeof(s));
	if (app_load_secrets(&a->cfg, &s))
		return 1;
	app_init_modules(&s);
	secrets_wipe(&s);
	return 0;
}

static int find_org(const char *name, struct org *o)
{
	if (org_get_by_name(name, o)) {
		fprintf(stderr, "tollgate: no organization named %s\n", name);
		return 1;
	}
	return 0;
}

/* A whole number >= 0 for --NAME; absent is 0. */
static int count_opt(const struct cli_args *a, const char *name, int64_t *out)
{
	const char *s = cli_opt(a, name);
	int64_t v = 0;

	*out = 0;
	if (!s)
		return 0;
	if (!*s)
		goto bad;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			goto bad;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
bad:
	fprintf(stderr, "tollgate: --%s must be a whole number (0 for no limit)\n", name);
	return 1;
}

static int keys_create(struct cli_args *a)
{
	const char *org = cli_opt(a, "org"), *name = cli_opt(a, "name"),
		   *limit = cli_opt(a, "limit");
	const char *period = cli_opt(a, "period"), *expires = cli_opt(a, "expires"), *why = NULL;
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1], target[APIKEY_NAME_MAX * 4 + 32];
	char detail[APIKEY_MODELS_MAX + 160];
	struct apikey_limits lim;
	struct apikey k;
	struct org o;
	int64_t id;
	int p, rc = 1;

	if (!org || !name) {
		fprintf(stderr,
			"usage: tollgate keys create --org NAME --name N [--rpm R] [--tpm T] "
			"[--limit AMOUNT --period none|daily|weekly|monthly] [--models a,b] "
			"[--expires YYYY-MM-DD]\n");
		return 2;
	}
	memset(&lim, 0, sizeof(lim));
	if (count_opt(a, "rpm", &lim.rpm) || count_opt(a, "tpm", &lim.tpm))
		return 2;
	if (limit && money_parse(limit, &lim.spend_limit, &why)) {
		fprintf(stderr, "tollgate: --limit: %s\n", why);
		return 2;
	}
	if (period && limit == NULL) {
		fprintf(stderr, "tollgate: --period needs --limit\n");
		return 2;
	}
	p = apikey_period_parse(period ? period : "none");
	if (p < 0) {
		fprintf(stderr, "tollgate: --period must be none, daily, weekly or monthly\n");
		return 2;
	}
	lim.period = (enum spend_period)p;
	lim.allowed_models = cli_opt(a, "models");
	if (expires && time_parse(expires, &lim.expires_at)) {
		fprintf(stderr, "tollgate: --expires must be a date as YYYY-MM-DD\n");
		return 2;
	}
	if (open_keys(a) || find_org(org, &o))
		return 1;
	if (apikey_create(o.id, 0, name, &lim, key, &id, &why)) {
		fprintf(stderr, "tollgate: %s\n", why ? why : "could not create the key");
		goto out;
	}
	keys_prefix_of(key, prefix);
	snprintf(target, sizeof(target), "%s %s", prefix, name);
	if (apikey_get(id, &k) == TG_OK)
		apikey_limits_text(&k, detail, sizeof(detail));
	else
		detail[0] = '\0';
	audit_add(&cli_actor, o.id, "key.create", target, detail);
	fprintf(stderr,
		"created key %s \"%s\" in %s (%s)\n"
		"the key is printed below once; it cannot be shown again\n",
		prefix, name, o.name, detail);
	fflush(stderr);
	printf("%s\n", key);
	fflush(stdout);
	rc = 0;
out:
	sodium_memzero(key, sizeof(key));
	return rc;
}

static int keys_list(struct cli_args *a)
{
	const char *org = cli_opt(a, "org");
	tg_stmt *st;
	struct org o;
	int64_t now = time_now();
	int n = 0;

	if (!org) {
		fprintf(stderr, "usage: tollgate keys list --org NAME\n");
		return 2;
	}
	if (open_keys(a) || find_org(org, &o))
		return 1;
	st = db_stmt("SELECT prefix, name, created_at, coalesce(last_used_at, 0),"
		     " coalesce(expires_at, 0), coalesce(revoked_at, 0)"
		     " FROM api_keys WHERE org_id = :org ORDER BY id");
	if (!st || db_bind_int64(st, ":org", o.id)) {
		fprintf(stderr, "tollgate: could not read the keys\n");
		return 1;
	}
	printf("%-13s %-10s %-16s %-16s %s\n", "PREFIX", "STATUS", "CREATED", "LAST USED", "NAME");
	while (db_step(st) == DB_ROW) {
		struct apikey k;
		char created[20], used[20] = "never";

		memset(&k, 0, sizeof(k));
		k.expires_at = db_col_int64(st, 4);
		k.revoked_at = db_col_int64(st, 5);
		time_format(db_col_int64(st, 2), created);
		created[16] = '\0';
		if (db_col_int64(st, 3)) {
			time_format(db_col_int64(st, 3), used);
			used[16] = '\0';
		}
		printf("%-13s %-10s %-16s %-16s %s\n", db_col_text(st, 0),
		       apikey_state_name(apikey_state_of(&k, now)), created, used,
		       db_col_text(st, 1));
		n++;
	}
	db_done(st);
	fprintf(stderr, "%d key%s in %s\n", n, n == 1 ? "" : "s", o.name);
	return 0;
}

static int keys_revoke(struct cli_args *a)
{
	const char *prefix = cli_positional(a, 0, NULL);
	char target[APIKEY_NAME_MAX * 4 + 32];
	struct apikey k;
	int rc;

	if (!prefix) {
		fprintf(stderr, "usage: tollgate keys revoke PREFIX\n");
		return 2;
	}
	if (open_keys(a))
		return 1;
	rc = apikey_find_prefix(0, prefix, &k);
	if (rc == TG_EINVAL) {
		fprintf(stderr, "tollgate: give the key's prefix as shown in lists, such as "
				"tg_AbCd1234\n");
		return 2;
	}
	if (rc == TG_ENOTFOUND) {
		fprintf(stderr, "tollgate: no key starts with %s\n", prefix);
		return 1;
	}
	if (rc == TG_ECONFLICT) {
		fprintf(stderr, "tollgate: several keys start with %s; give more characters\n",
			prefix);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tollgate: could not read the keys\n");
		return 1;
	}
	rc = apikey_revoke(k.id);
	if (rc == TG_ECONFLICT) {
		fprintf(stderr, "tollgate: key %s (%s) was already revoked\n", k.prefix, k.name);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tollgate: could not revoke %s\n", k.prefix);
		return 1;
	}
	snprintf(target, sizeof(target), "%s %s", k.prefix, k.name);
	audit_add(&cli_actor, k.org_id, "key.revoke", target, "");
	printf("revoked key %s (%s); requests with it now fail\n", k.prefix, k.name);
	return 0;
}

int cmd_keys(struct cli_args *a)
{
	struct cli_args rest;
	const char *sub;

	if (!cli_subcommand(a, &rest, &sub))
		;
	else if (strcmp(sub, "create") == 0)
		return keys_create(&rest);
	else if (strcmp(sub, "list") == 0)
		return keys_list(&rest);
	else if (strcmp(sub, "revoke") == 0)
		return keys_revoke(&rest);
	fprintf(stderr, "usage: tollgate keys create --org NAME --name N [options] | "
			"keys list --org NAME | keys revoke PREFIX\n");
	return 2;
}
