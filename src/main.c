/* main.c - the tollgate command line: serve, migrate, version and the admin
 * commands. Each command is one row in `commands` below. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "alerts/alerts.h"
#include "app.h"
#include "cli.h"
#include "cli_commands.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "crypto/password.h"
#include "crypto/secrets.h"
#include "gateway/gw.h"
#include "billing/billing.h"
#include "billing/journal.h"
#include "identity/identity.h"
#include "http/server.h"
#include "metrics_page.h"
#include "routes.h"
#include "store/db.h"
#include "store/migrate.h"
#include "web/web.h"

struct command {
	const char *name;
	int (*fn)(struct cli_args *a);
	const char *usage;
	const char *help;
};

static int cmd_help(struct cli_args *a);

static int cmd_version(struct cli_args *a)
{
	(void)a;
	printf("tollgate %s (schema %d)\n", TG_VERSION, migrate_latest());
	return 0;
}

static int cmd_migrate(struct cli_args *a)
{
	int before;

	if (cli_open_store(a))
		return 1;
	before = migrate_current();
	printf("database schema at version %d (this binary: %d)\n", before, migrate_latest());
	return 0;
}

/* Argon2id cost from the password_hashing setting. */
static void apply_password_cost(const tg_config_t *cfg)
{
	if (strcmp(cfg->password_hashing, "moderate") == 0)
		password_set_limits(crypto_pwhash_OPSLIMIT_MODERATE,
				    crypto_pwhash_MEMLIMIT_MODERATE);
	else if (strcmp(cfg->password_hashing, "min") == 0)
		password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
	else
		password_set_limits(crypto_pwhash_OPSLIMIT_INTERACTIVE,
				    crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

/* With no users yet, print a one-time link that creates the first admin. */
static void print_setup_url(const struct cli_args *a)
{
	char token[44], base[CONFIG_STR_MAX + 16];

	if (user_count() != 0)
		return;
	if (setup_token_create(token)) {
		log_error("could not create a setup token");
		return;
	}
	if (a->cfg.public_url[0])
		snprintf(base, sizeof(base), "%s", a->cfg.public_url);
	else
		snprintf(base, sizeof(base), "%s://127.0.0.1:%d", server_scheme(), server_port());
	printf("\nNo users yet. Create the first administrator (this link works once):\n"
	       "  %s/setup?token=%s\n\n",
	       base, token);
}

/* Each open stream holds about six descriptors (client, provider, the
 * client library's internals, the worker's database files): raise the soft
 * limit to the hard one, as a service manager would. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("could not raise the open-file limit");
	}
}

/* A server worker's exit: its HTTP client handle and database connection. */
static void serve_thread_exit(void)
{
	gw_thread_cleanup();
	db_close_thread();
}

/* Graceful shutdown (server.h): stop accepting, give what is in flight
 * drain_timeout_s to finish, then cut the rest. A second signal cuts at once. */
static void drain(const tg_config_t *cfg, const sigset_t *set, int sig)
{
	int64_t deadline = time_mono_us() + cfg->drain_timeout_s * 1000000;
	struct timespec tick = { 0, 50 * 1000 * 1000 };
	int64_t left;

	server_drain_begin();
	log_info("received %s: no new connections; %lld requests in flight get up to %lld s",
		 sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)server_in_flight(),
		 (long long)cfg->drain_timeout_s);
	while ((left = server_in_flight()) > 0 && time_mono_us() < deadline) {
		if (sigtimedwait(set, NULL, &tick) > 0) {
			log_warn("second signal: cutting %lld requests now", (long long)left);
			break;
		}
	}
	if ((left = server_in_flight()) > 0)
		log_warn("drain: %lld requests still running; cutting their connections (streams "
			 "are settled on what they delivered)",
			 (long long)left);
	else
		log_info("drain: every request finished");
	server_drain_cut();
}

static int cmd_serve(struct cli_args *a)
{
	struct server_app app;
	char err[512];
	tg_secrets_t secrets;
	sigset_t set;
	int sig = 0, rc = 1;

	memset(&secrets, 0, sizeof(secrets));
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Workers inherit this mask, so only sigwait() below sees the signals. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	if (app_lock(&a->cfg, err, sizeof(err))) {
		fprintf(stderr, "tollgate: %s\n", err);
		return 1;
	}
	if (cli_open_store(a))
		goto out;
	if (app_load_secrets(&a->cfg, &secrets))
		goto out;
	app_init_modules(&secrets);
	if (web_init(&a->cfg, &secrets, err, sizeof(err))) {
		fprintf(stderr, "tollgate: templates: %s\n", err);
		goto out;
	}
	if (gw_init(&a->cfg)) {
		fprintf(stderr, "tollgate: cannot initialise the HTTP client library\n");
		goto out;
	}
	if (db_is_pg()) {
		billing_use(&billing_pg);
		if (billing_pg_start(a->cfg.hold_ttl_s)) {
			fprintf(stderr, "tollgate: cannot start the hold renewal thread\n");
			goto out;
		}
	}
	if (journal_start(a->cfg.data_dir, strcmp(a->cfg.synchronous, "full") == 0, err,
			  sizeof(err))) {
		fprintf(stderr, "tollgate: %s\n", err);
		goto out;
	}
	metrics_page_init(&a->cfg);
	if (db_checkpointer_start())
		log_warn("could not start the WAL checkpointer; relying on automatic checkpoints");
	alerts_allow_private((int)a->cfg.webhook_private_ok);
	alerts_worker_start(); /* budget alert webhooks; logs its own failure */
	app.routes = tg_routes;
	app.nroutes = tg_routes_count;
	app.authorize = routes_authorize;
	app.thread_exit = serve_thread_exit;
	if (server_start(&a->cfg, &app, err, sizeof(err))) {
		fprintf(stderr, "tollgate: %s\n", err);
		goto out;
	}
	log_info("tollgate %s listening on %s://%s (port %d, data in %s)", TG_VERSION,
		 server_scheme(), a->cfg.listen, server_port(), a->cfg.data_dir);
	printf("listening on %s port %d\n", a->cfg.listen, server_port());
	print_setup_url(a);
	fflush(stdout);
	sigwait(&set, &sig);
	drain(&a->cfg, &set, sig);
	server_stop();
	journal_stop(); /* the last calls' debits and request rows */
	billing_pg_stop();
	db_checkpointer_stop();
	alerts_worker_stop();
	gw_shutdown();
	db_close_idle();
	catalog_forget(); /* wipes the opened provider keys */
	rc = 0;
out:
	web_shutdown();
	secrets_wipe(&secrets);
	db_close_thread();
	app_unlock();
	if (rc == 0)
		log_info("stopped cleanly");
	return rc;
}

static const struct command commands[] = {
	{ "serve", cmd_serve, "serve [settings]", "run the dashboard and the /v1 gateway" },
	{ "migrate", cmd_migrate, "migrate [--data-dir DIR]", "create or upgrade the database" },
	{ "user", cmd_user,
	  "user add --email E [--name N] [--admin] | user passwd --email E | user disable "
	  "--email E",
	  "manage users (the password is read from stdin or a prompt)" },
	{ "org", cmd_org,
	  "org add NAME | org member --org NAME --email E --role owner|admin|member | "
	  "org limits --org NAME [--rpm N] [--tpm N]",
	  "manage organizations and their members" },
	{ "keys", cmd_keys,
	  "keys create --org NAME --name N [--rpm R] [--tpm T] [--limit AMOUNT --period P] "
	  "[--models a,b] [--expires DATE] | keys list --org NAME | keys revoke PREFIX",
	  "create, list and revoke API keys" },
	{ "credits", cmd_credits,
	  "credits grant --org NAME AMOUNT --memo M | credits balance --org NAME",
	  "grant credits and read balances" },
	{ "audit", cmd_audit, "audit",
	  "re-derive every balance from the ledger; exit 1 on any drift" },
	{ "backup", cmd_backup, "backup FILE", "write a consistent copy of the database to FILE" },
	{ "models", cmd_models, "models import FILE.json",
	  "upsert providers and priced models from a JSON file" },
	{ "version", cmd_version, "version", "print the version" },
	{ "help", cmd_help, "help [COMMAND]", "show help for all commands or one" },
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: tollgate COMMAND [options]\n\nCommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'tollgate help COMMAND' or 'tollgate COMMAND --help' for details.\n");
}

static void print_command_help(const struct command *c)
{
	printf("Usage: tollgate %s\n\n%s\n\n", c->usage, c->help);
	config_print_help();
}

static int cmd_help(struct cli_args *a)
{
	const struct command *c;

	if (a->argc > 0) {
		c = find_command(a->argv[0]);
		if (!c) {
			fprintf(stderr, "tollgate: unknown command '%s'\n", a->argv[0]);
			return 2;
		}
		print_command_help(c);
		return 0;
	}
	print_usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const struct command *c;
	struct cli_args a;
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		argv[1] = "version";
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "tollgate: unknown command '%s'\n\n", argv[1]);
		print_usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_command_help(c);
			return 0;
		}
	}
	if (cli_parse(argc - 2, argv + 2, &a))
		return 2;
	if (crypto_init()) {
		fprintf(stderr, "tollgate: cannot initialise libsodium\n");
		return 1;
	}
	apply_password_cost(&a.cfg);
	rc = c->fn(&a);
	cli_args_free(&a);
	return rc;
}
