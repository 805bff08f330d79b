/* config.c - configuration table, file/env/flag loading; see config.h. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/log.h"

enum opt_type { OPT_STR, OPT_INT };

struct opt {
	const char *name; /* file key; flag is --name with '_' -> '-'; env is TOLLGATE_NAME */
	enum opt_type type;
	size_t off;
	size_t size;      /* for strings */
	int64_t min, max; /* for integers */
	const char *help;
};

/* clang-format off: one setting a line reads best as a table */
#define S(field, help)                                                                            \
	{                                                                                         \
#field, OPT_STR, offsetof(tg_config_t, field), sizeof(((tg_config_t *)0)->field), \
			0, 0, help                                                                \
	}
#define I(field, lo, hi, help)                                                 \
	{                                                                      \
#field, OPT_INT, offsetof(tg_config_t, field), 0, lo, hi, help \
	}

static const struct opt opts[] = {
	S(listen, "address and port to serve on (127.0.0.1:8081)"),
	S(data_dir, "directory for the database, secret file and lock (./data)"),
	S(database, "postgres://... URL of a PostgreSQL database shared by several instances "
		    "(empty: SQLite in data_dir)"),
	S(instance, "this instance's name in a shared database (HOSTNAME-PID)"),
	I(hold_ttl_s, 2, 86400,
	  "shared database: seconds an instance's holds outlive its last renewal (120)"),
	S(assets_dir, "directory holding templates/ and static/"),
	S(log_level, "debug | info | warn | error (info)"),
	S(synchronous, "SQLite durability: normal | full (normal)"),
	S(password_hashing, "Argon2id cost: interactive | moderate (interactive)"),
	S(public_url, "base URL browsers use, for printed links (http://LISTEN)"),
	S(metrics_token, "Bearer token GET /metrics requires (empty: no token)"),
	I(threads, 2, 16384,
	  "worker threads (small stacks); each open connection holds one (4096)"),
	I(max_connections, 0, 16383,
	  "connections served at once, below threads; more get a fast 503 (0: threads - "
	  "threads/8)"),
	I(max_streams, 0, 16383, "streams open at once; more get 503 (0: 3/4 of max_connections)"),
	I(auth_fail_limit, 0, 1000000,
	  "failed gateway key checks per address before it is blocked (20; 0: off)"),
	I(auth_fail_window_s, 1, 86400, "window and block time for auth_fail_limit (60)"),
	I(login_fail_limit, 0, 1000000,
	  "failed sign-ins per address before it is blocked (20; 0: off)"),
	I(login_fail_window_s, 1, 86400, "window and block time for login_fail_limit (300)"),
	I(max_body_bytes, 1024, 64 << 20, "largest accepted request body (1048576)"),
	I(session_idle_s, 60, 365 * 86400, "dashboard session idle timeout in seconds (7200)"),
	I(session_absolute_s, 300, 365 * 86400, "dashboard session absolute lifetime (604800)"),
	I(busy_timeout_ms, 0, 600000, "SQLite busy timeout in milliseconds (5000)"),
	I(request_timeout_ms, 100, 600000, "ms a client may take to send a request's body (30000)"),
	I(header_timeout_ms, 100, 600000,
	  "ms a client may take to send a request's head, or stall one read or write (10000)"),
	I(idle_timeout_ms, 100, 600000,
	  "ms an idle kept-alive connection is kept open between requests (15000)"),
	I(max_connections_per_ip, 0, 1000000,
	  "connections open at once from one address; more are refused with a 429 (128; 0: off)"),
	I(drain_timeout_s, 0, 3600,
	  "on SIGTERM, seconds in-flight calls and streams get to finish (30)"),
	S(tls_cert, "PEM certificate (chain) file: serve HTTPS on listen (empty: plain HTTP)"),
	S(tls_key, "PEM private key file for tls_cert (empty: read from tls_cert)"),
	I(hsts_max_age_s, 0, 63072000,
	  "Strict-Transport-Security max-age sent over HTTPS (31536000; 0: none)"),
	S(tls_redirect_from,
	  "ADDR:PORT of a plain HTTP listener redirecting to HTTPS (empty: none)"),
	I(webhook_private_ok, 0, 1,
	  "1: alert webhooks may go to loopback, private and link-local addresses (0)"),
	I(route_attempts, 1, 10,
	  "attempts a call may make over its model's deployments and fallback model (3)"),
	I(route_retries, 0, 5,
	  "rounds of retries over a model's deployments after each failed once (0)"),
	I(route_budget_ms, 100, 3600000,
	  "no new attempt starts once a call is this old (milliseconds) (30000)"),
	I(cooldown_failures, 1, 1000,
	  "failures in a row after which a deployment is cooled down (3)"),
	I(cooldown_s, 1, 86400, "seconds a cooled-down deployment is skipped (30)"),
	S(trusted_proxies,
	  "reverse proxies (addresses and CIDRs, comma-separated) whose X-Forwarded-For, "
	  "Forwarded and X-Forwarded-Proto are believed (empty: none)"),
};
/* clang-format on */

void config_defaults(tg_config_t *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8081");
	snprintf(c->data_dir, sizeof(c->data_dir), "./data");
	snprintf(c->assets_dir, sizeof(c->assets_dir), "%s", TG_ASSET_DIR);
	snprintf(c->log_level, sizeof(c->log_level), "info");
	snprintf(c->synchronous, sizeof(c->synchronous), "normal");
	snprintf(c->password_hashing, sizeof(c->password_hashing), "interactive");
	c->threads = 4096;
	c->hold_ttl_s = 120;
	c->auth_fail_limit = 20;
	c->auth_fail_window_s = 60;
	c->login_fail_limit = 20;
	c->login_fail_window_s = 300;
	c->max_body_bytes = 1 << 20;
	c->session_idle_s = 2 * 3600;
	c->session_absolute_s = 7 * 86400;
	c->busy_timeout_ms = 5000;
	c->request_timeout_ms = 30000;
	c->header_timeout_ms = 10000;
	c->idle_timeout_ms = 15000;
	c->max_connections_per_ip = 128;
	c->drain_timeout_s = 30;
	c->hsts_max_age_s = 31536000;
	c->route_attempts = 3;
	c->route_budget_ms = 30000;
	c->cooldown_failures = 3;
	c->cooldown_s = 30;
}

/* Short names accepted too: --data DIR and TOLLGATE_DATA. */
static const struct {
	const char *alias, *name;
} aliases[] = { { "data", "data_dir" } };

static const struct opt *opt_find(const char *name, size_t len)
{
	size_t i, k;

	for (i = 0; i < TG_ARRAY_LEN(aliases); i++)
		if (strlen(aliases[i].alias) == len && strncmp(name, aliases[i].alias, len) == 0)
			return opt_find(aliases[i].name, strlen(aliases[i].name));

	for (i = 0; i < TG_ARRAY_LEN(opts); i++) {
		const char *n = opts[i].name;

		for (k = 0; k < len && n[k]; k++) {
			char a = name[k] == '-' ? '_' : (char)tolower((unsigned char)name[k]);

			if (a != n[k])
				break;
		}
		if (k == len && n[k] == '\0')
			return &opts[i];
	}
	return NULL;
}

static int opt_set(tg_config_t *c, const struct opt *o, const char *val, char *err, size_t errlen)
{
	char *end;
	long long v;

	if (o->type == OPT_STR) {
		if (strlen(val) >= o->size) {
			snprintf(err, errlen, "%s: value is too long (at most %zu bytes)", o->name,
				 o->size - 1);
			return TG_EINVAL;
		}
		memcpy((char *)c + o->off, val, strlen(val) + 1);
		return TG_OK;
	}
	errno = 0;
	v = strtoll(val, &end, 10);
	if (errno || end == val || *end != '\0' || v < o->min || v > o->max) {
		snprintf(err, errlen, "%s: expected a whole number from %lld to %lld, got '%s'",
			 o->name, (long long)o->min, (long long)o->max, val);
		return TG_EINVAL;
	}
	*(int64_t *)((char *)c + o->off) = v;
	return TG_OK;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_load_file(tg_config_t *c, const char *path, char *err, size_t errlen)
{
	char line[1024], msg[256];
	FILE *f;
	int lineno = 0, rc = TG_OK;

	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return TG_EIO;
	}
	while (fgets(line, sizeof(line), f)) {
		char *eq, *key, *val;
		const struct opt *o;

		lineno++;
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
			rc = TG_EINVAL;
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		o = opt_find(key, strlen(key));
		if (!o) {
			snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, key);
			rc = TG_EINVAL;
			goto out;
		}
		if ((rc = opt_set(c, o, val, msg, sizeof(msg)))) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
	}
out:
	fclose(f);
	return rc;
}

int config_load_env(tg_config_t *c, char *err, size_t errlen)
{
	char name[64], msg[256];
	size_t i, k;
	int rc;

	for (i = 0; i < TG_ARRAY_LEN(opts); i++) {
		const char *v;

		k = (size_t)snprintf(name, sizeof(name), "TOLLGATE_");
		for (const char *p = opts[i].name; *p && k + 1 < sizeof(name); p++)
			name[k++] = (char)toupper((unsigned char)*p);
		name[k] = '\0';
		v = getenv(name);
		for (k = 0; !v && k < TG_ARRAY_LEN(aliases); k++) {
			char alt[64];
			size_t j;

			if (strcmp(aliases[k].name, opts[i].name) != 0)
				continue;
			j = (size_t)snprintf(alt, sizeof(alt), "TOLLGATE_");
			for (const char *p = aliases[k].alias; *p && j + 1 < sizeof(alt); p++)
				alt[j++] = (char)toupper((unsigned char)*p);
			alt[j] = '\0';
			v = getenv(alt);
		}
		if (!v)
			continue;
		if ((rc = opt_set(c, &opts[i], v, msg, sizeof(msg)))) {
			snprintf(err, errlen, "%s: %s", name, msg);
			return rc;
		}
	}
	return TG_OK;
}

int config_apply_flag(tg_config_t *c, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *arg = argv[*i], *eq, *val;
	const struct opt *o;
	size_t len;
	int rc;

	if (strncmp(arg, "--", 2) != 0)
		return 0;
	arg += 2;
	eq = strchr(arg, '=');
	len = eq ? (size_t)(eq - arg) : strlen(arg);
	o = opt_find(arg, len);
	if (!o)
		return 0;
	if (eq) {
		val = eq + 1;
	} else {
		if (*i + 1 >= argc) {
			snprintf(err, errlen, "--%.*s needs a value", (int)len, arg);
			return TG_EINVAL;
		}
		val = argv[++*i];
	}
	if ((rc = opt_set(c, o, val, err, errlen)))
		return rc;
	return 1;
}

int config_validate(const tg_config_t *c, char *err, size_t errlen)
{
	const char *colon = strrchr(c->listen, ':');

	if (!colon || colon == c->listen || atoi(colon + 1) < 0 || atoi(colon + 1) > 65535 ||
	    colon[1] == '\0') {
		snprintf(err, errlen, "listen: expected ADDR:PORT such as 127.0.0.1:8081, got '%s'",
			 c->listen);
		return TG_EINVAL;
	}
	if (c->database[0] && strncmp(c->database, "postgres://", 11) != 0 &&
	    strncmp(c->database, "postgresql://", 13) != 0) {
		snprintf(err, errlen,
			 "database: expected a postgres:// URL such as "
			 "postgres://tollgate@db.internal/tollgate (or nothing for SQLite in "
			 "data_dir)");
		return TG_EINVAL;
	}
	if (log_level_parse(c->log_level) < 0) {
		snprintf(err, errlen, "log_level: expected debug, info, warn or error, got '%s'",
			 c->log_level);
		return TG_EINVAL;
	}
	if (strcmp(c->synchronous, "normal") && strcmp(c->synchronous, "full")) {
		snprintf(err, errlen, "synchronous: expected normal or full, got '%s'",
			 c->synchronous);
		return TG_EINVAL;
	}
	if (strcmp(c->password_hashing, "interactive") && strcmp(c->password_hashing, "moderate") &&
	    strcmp(c->password_hashing, "min")) {
		snprintf(err, errlen,
			 "password_hashing: expected interactive or moderate, got '%s'",
			 c->password_hashing);
		return TG_EINVAL;
	}
	if (c->max_connections >= c->threads) {
		snprintf(err, errlen,
			 "max_connections (%lld) must be below threads (%lld): the spare threads "
			 "answer connections over the limit with a 503",
			 (long long)c->max_connections, (long long)c->threads);
		return TG_EINVAL;
	}
	if (config_max_streams(c) > config_max_connections(c)) {
		snprintf(err, errlen,
			 "max_streams (%lld) must not be above max_connections (%lld): each stream "
			 "holds a connection",
			 (long long)config_max_streams(c), (long long)config_max_connections(c));
		return TG_EINVAL;
	}
	if (!c->tls_cert[0] && (c->tls_key[0] || c->tls_redirect_from[0])) {
		snprintf(err, errlen, "%s needs tls_cert: it only means something with HTTPS on",
			 c->tls_key[0] ? "tls_key" : "tls_redirect_from");
		return TG_EINVAL;
	}
	if (c->data_dir[0] == '\0') {
		snprintf(err, errlen, "data_dir must not be empty");
		return TG_EINVAL;
	}
	return TG_OK;
}

void config_print_help(void)
{
	size_t i;

	printf("Settings (flag / TOLLGATE_ env var / config file key):\n");
	for (i = 0; i < TG_ARRAY_LEN(opts); i++) {
		char flag[64];
		size_t k;

		for (k = 0; opts[i].name[k] && k + 1 < sizeof(flag); k++)
			flag[k] = opts[i].name[k] == '_' ? '-' : opts[i].name[k];
		flag[k] = '\0';
		printf("  --%-20s %s\n", flag, opts[i].help);
	}
	printf("  --%-20s %s\n", "data DIR", "same as --data-dir (env TOLLGATE_DATA)");
	printf("  --%-20s %s\n", "config FILE", "read settings from FILE (key = value lines)");
}

int64_t config_max_connections(const tg_config_t *c)
{
	int64_t spare = c->threads / 8 > 1 ? c->threads / 8 : 1;

	return c->max_connections > 0 ? c->max_connections : c->threads - spare;
}

int64_t config_max_streams(const tg_config_t *c)
{
	int64_t conns = config_max_connections(c);

	if (c->max_streams > 0)
		return c->max_streams;
	return conns * 3 / 4 > 1 ? conns * 3 / 4 : 1;
}

int config_data_path(const tg_config_t *c, const char *name, char *out, size_t n)
{
	int k = snprintf(out, n, "%s/%s", c->data_dir, name);

	return (k < 0 || (size_t)k >= n) ? TG_ETOOBIG : TG_OK;
}
