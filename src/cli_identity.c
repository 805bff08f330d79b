/* cli_identity.c - `tollgate user ...` and `tollgate org ...`. Passwords come
 * from stdin (one line) or a prompt, never from arguments. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "crypto/secrets.h"
#include "cli_commands.h"
#include "apikeys/apikeys.h"
#include "identity/identity.h"

static const struct audit_actor cli_actor = { 0, "cli", "" };

static char *read_password(void)
{
	char *pw = cli_read_secret("Password: ");

	if (!pw)
		fprintf(stderr, "tollgate: no password given on stdin\n");
	return pw;
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static int user_add(struct cli_args *a)
{
	const char *email = cli_opt(a, "email"), *name = cli_opt(a, "name"), *why = NULL;
	int admin = cli_flag(a, "admin");
	char *pw;
	int64_t id;

	if (!email) {
		fprintf(stderr, "usage: tollgate user add --email E [--name N] [--admin]\n");
		return 2;
	}
	if (cli_open_store(a) || !(pw = read_password()))
		return 1;
	if (user_create(email, name, pw, admin, 0, &id, &why)) {
		fprintf(stderr, "tollgate: %s\n", why ? why : "could not create the user");
		free_secret(pw);
		return 1;
	}
	free_secret(pw);
	audit_add(&cli_actor, 0, "user.create", email, admin ? "instance admin" : "");
	printf("created user %s (id %lld)%s\n", email, (long long)id,
	       admin ? " as instance admin" : "");
	return 0;
}

static int user_passwd(struct cli_args *a)
{
	const char *email = cli_opt(a, "email"), *why = NULL;
	struct user u;
	char *pw;

	if (!email) {
		fprintf(stderr, "usage: tollgate user passwd --email E\n");
		return 2;
	}
	if (cli_open_store(a))
		return 1;
	if (user_get_by_email(email, &u)) {
		fprintf(stderr, "tollgate: no user with email %s\n", email);
		return 1;
	}
	if (!(pw = read_password()))
		return 1;
	if (user_set_password(u.id, pw, &why)) {
		fprintf(stderr, "tollgate: %s\n", why);
		free_secret(pw);
		return 1;
	}
	free_secret(pw);
	session_delete_user(u.id, 0);
	audit_add(&cli_actor, 0, "user.password", email, "set from the command line");
	printf("password changed for %s; their sessions were signed out\n", email);
	return 0;
}

static int user_disable(struct cli_args *a)
{
	const char *email = cli_opt(a, "email");
	struct user u;
	tg_secrets_t secrets;
	int64_t revoked = 0;

	if (!email) {
		fprintf(stderr, "usage: tollgate user disable --email E\n");
		return 2;
	}
	if (cli_open_store(a) || app_load_secrets(&a->cfg, &secrets))
		return 1;
	/* So a running server sees the revoked keys at once. */
	app_init_modules(&secrets);
	secrets_wipe(&secrets);
	if (user_get_by_email(email, &u)) {
		fprintf(stderr, "tollgate: no user with email %s\n", email);
		return 1;
	}
	if (user_set_disabled(u.id, 1) || apikey_revoke_user(0, u.id, &revoked)) {
		fprintf(stderr, "tollgate: could not disable %s\n", email);
		return 1;
	}
	audit_add(&cli_actor, 0, "user.disable", email, "signed out; API keys revoked");
	printf("disabled %s, ended their sessions and revoked %lld API key(s)\n", email,
	       (long long)revoked);
	return 0;
}

int cmd_user(struct cli_args *a)
{
	struct cli_args rest;
	const char *sub;

	if (!cli_subcommand(a, &rest, &sub))
		;
	else if (strcmp(sub, "add") == 0)
		return user_add(&rest);
	else if (strcmp(sub, "passwd") == 0)
		return user_passwd(&rest);
	else if (strcmp(sub, "disable") == 0)
		return user_disable(&rest);
	fprintf(stderr, "usage: tollgate user add|passwd|disable --email E ...\n");
	return 2;
}

static int org_add(struct cli_args *a)
{
	static const char *const takes[] = { "data-dir", NULL };
	const char *name = cli_positional(a, 0, takes);
	char why[160];
	int64_t id;

	if (!name) {
		fprintf(stderr, "usage: tollgate org add NAME\n");
		return 2;
	}
	if (cli_open_store(a))
		return 1;
	if (org_create(name, &id, why, sizeof(why))) {
		fprintf(stderr, "tollgate: %s\n", why);
		return 1;
	}
	audit_add(&cli_actor, id, "org.create", name, "");
	printf("created organization %s (id %lld)\n", name, (long long)id);
	return 0;
}

static int org_member(struct cli_args *a)
{
	const char *org = cli_opt(a, "org"), *email = cli_opt(a, "email"),
		   *role_s = cli_opt(a, "role");
	enum role role = role_parse(role_s);
	struct org o;
	struct user u;
	int rc;

	if (!org || !email || role == ROLE_NONE) {
		fprintf(stderr, "usage: tollgate org member --org NAME --email E --role "
				"owner|admin|member\n");
		return 2;
	}
	if (cli_open_store(a))
		return 1;
	if (org_get_by_name(org, &o)) {
		fprintf(stderr, "tollgate: no organization named %s\n", org);
		return 1;
	}
	if (user_get_by_email(email, &u)) {
		fprintf(stderr,
			"tollgate: no user with email %s (create it with 'tollgate user add')\n",
			email);
		return 1;
	}
	rc = membership_set(o.id, u.id, role);
	if (rc == TG_ECONFLICT) {
		fprintf(stderr,
			"tollgate: %s is the last owner of %s; make someone else owner first\n",
			email, org);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tollgate: could not set the membership\n");
		return 1;
	}
	audit_add(&cli_actor, o.id, "member.add", email, role_name(role));
	printf("%s is now %s of %s\n", email, role_name(role), org);
	return 0;
}

static int parse_count(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return TG_EINVAL;
	v = strtoll(s, &end, 10);
	if (*end || v < 0)
		return TG_EINVAL;
	*out = v;
	return TG_OK;
}

static int org_limits(struct cli_args *a)
{
	const char *org = cli_opt(a, "org"), *rpm_s = cli_opt(a, "rpm"), *tpm_s = cli_opt(a, "tpm");
	int64_t rpm = 0, tpm = 0;
	char detail[96];
	struct org o;

	if (!org || (!rpm_s && !tpm_s) || (rpm_s && parse_count(rpm_s, &rpm)) ||
	    (tpm_s && parse_count(tpm_s, &tpm))) {
		fprintf(stderr, "usage: tollgate org limits --org NAME [--rpm N] [--tpm N]"
				" (whole numbers; 0 = unlimited)\n");
		return 2;
	}
	if (cli_open_store(a))
		return 1;
	if (org_get_by_name(org, &o)) {
		fprintf(stderr, "tollgate: no organization named %s\n", org);
		return 1;
	}
	if (org_set_limits(o.id, rpm, tpm)) {
		fprintf(stderr, "tollgate: could not set the limits\n");
		return 1;
	}
	apikey_cache_invalidate(0); /* running servers hold the limits with the keys */
	snprintf(detail, sizeof(detail), "rpm %lld, tpm %lld", (long long)rpm, (long long)tpm);
	audit_add(&cli_actor, o.id, "org.limits", org, detail);
	printf("%s: %lld requests and %lld tokens per minute across all its keys (0 = unlimited)\n",
	       org, (long long)rpm, (long long)tpm);
	return 0;
}

int cmd_org(struct cli_args *a)
{
	struct cli_args rest;
	const char *sub;

	if (!cli_subcommand(a, &rest, &sub))
		;
	else if (strcmp(sub, "add") == 0)
		return org_add(&rest);
	else if (strcmp(sub, "member") == 0)
		return org_member(&rest);
	else if (strcmp(sub, "limits") == 0)
		return org_limits(&rest);
	fprintf(stderr, "usage: tollgate org add NAME | org member --org NAME --email E --role R"
			" | org limits --org NAME [--rpm N] [--tpm N]\n");
	return 2;
}
