/* config.h - server configuration.
 *
 * Precedence, lowest first: built-in defaults < config file (--config FILE or
 * TOLLGATE_CONFIG) < environment (TOLLGATE_*) < command-line flags.
 * Every setting has one row in the table in config.c; the file key, the
 * env var and the flag are derived from its name.
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_STR_MAX 512

typedef struct tg_config {
	char listen[CONFIG_STR_MAX];     /* ADDR:PORT */
	char data_dir[CONFIG_STR_MAX];   /* SQLite database, secret file, lock */
	char database[CONFIG_STR_MAX];   /* postgres://... shared by instances; empty: SQLite */
	char instance[128];              /* this instance's name in the database */
	int64_t hold_ttl_s;              /* a dead instance's holds are voided after this */
	char assets_dir[CONFIG_STR_MAX]; /* templates/ and static/ live here */
	char log_level[16];
	char synchronous[16];            /* "normal" or "full" */
	char password_hashing[16];       /* "interactive", "moderate" or "min" (tests only) */
	char public_url[CONFIG_STR_MAX]; /* how browsers reach us; default http://LISTEN */
	char metrics_token[256];         /* Bearer token for GET /metrics; empty = none */
	int64_t threads;                 /* CivetWeb workers: one per open connection */
	int64_t max_connections;         /* 0: derived, see config_max_connections */
	int64_t max_streams;             /* 0: derived, see config_max_streams */
	int64_t auth_fail_limit;         /* per client address; 0 = no throttle */
	int64_t auth_fail_window_s;
	int64_t login_fail_limit; /* per client address; 0 = no throttle */
	int64_t login_fail_window_s;
	int64_t max_body_bytes;
	int64_t session_idle_s;
	int64_t session_absolute_s;
	int64_t busy_timeout_ms;
	int64_t request_timeout_ms;     /* a request body slower than this gets a 408 */
	int64_t header_timeout_ms;      /* a request head, or one stalled read or write */
	int64_t idle_timeout_ms;        /* an idle kept-alive connection */
	int64_t max_connections_per_ip; /* open at once from one address; 0 = no cap */
	int64_t drain_timeout_s;        /* SIGTERM: time in-flight calls get to finish */
	int64_t webhook_private_ok;     /* 1: webhooks may go to non-public addresses */
	int64_t route_attempts;         /* a call's attempts over its deployments, at most */
	int64_t route_retries;          /* more rounds over the deployments after the first */
	int64_t route_budget_ms;        /* no new attempt starts after this much of a call */
	int64_t cooldown_failures;      /* failures in a row that cool a deployment down */
	int64_t cooldown_s;             /* how long a cooled-down deployment is skipped */
	/* Comma-separated addresses and CIDRs of reverse proxies whose forwarding
	 * headers are believed (http/proxy.h); empty = none. */
	char trusted_proxies[CONFIG_STR_MAX];
	char tls_cert[CONFIG_STR_MAX];          /* PEM; set: listen serves HTTPS */
	char tls_key[CONFIG_STR_MAX];           /* PEM; empty: the key is in tls_cert */
	int64_t hsts_max_age_s;                 /* HSTS over HTTPS; 0 = none */
	char tls_redirect_from[CONFIG_STR_MAX]; /* plain listener redirecting to HTTPS */
} tg_config_t;

/* Fill with defaults. */
void config_defaults(tg_config_t *c);
/* Apply a config file of `key = value` lines (# comments). On error, err holds
 * "FILE:LINE: message". */
int config_load_file(tg_config_t *c, const char *path, char *err, size_t errlen);
/* Apply TOLLGATE_* environment variables. */
int config_load_env(tg_config_t *c, char *err, size_t errlen);
/* Try to apply argv[*i] (and its value) as a config flag such as
 * `--listen ADDR` or `--listen=ADDR`. Returns 1 if consumed (advancing *i
 * past a separate value), 0 if the flag is not a config flag, or a negative
 * TG_E* code with err set. */
int config_apply_flag(tg_config_t *c, int argc, char **argv, int *i, char *err, size_t errlen);
/* Check cross-field rules after loading (ranges, enums). */
int config_validate(const tg_config_t *c, char *err, size_t errlen);
/* Connections served at once: max_connections, or by default threads less
 * one eighth (at least one) kept spare to refuse the connections over it. */
int64_t config_max_connections(const tg_config_t *c);
/* Gateway streams open at once: max_streams, or by default three quarters of
 * the connections (at least one), so streams cannot take every connection
 * from short calls and the dashboard. */
int64_t config_max_streams(const tg_config_t *c);
/* Print the flag list for --help. */
void config_print_help(void);
/* Full path of a file in the data directory. */
int config_data_path(const tg_config_t *c, const char *name, char *out, size_t n);

#endif
