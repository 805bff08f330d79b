/* apikeys.h - API keys: the api_keys table, the in-memory lookup cache used
 * by the gateway, and the operations the dashboard and CLI perform.
 *
 * This module owns api_keys. The key itself exists only in the return value
 * of apikey_create / apikey_rotate (shown once); at rest it is a BLAKE2b hash
 * keyed with the server pepper.
 */
#ifndef TG_APIKEYS_H
#define TG_APIKEYS_H

#include <stdint.h>

#include "core/common.h"
#include "crypto/keys.h"
#include "identity/identity.h"

#define APIKEY_NAME_MAX 100
#define APIKEY_MODELS_MAX 1024

enum spend_period { PERIOD_NONE = 0, PERIOD_DAILY, PERIOD_WEEKLY, PERIOD_MONTHLY };

struct apikey {
	int64_t id;
	int64_t org_id;
	int64_t created_by;      /* user id, 0 when created by the CLI */
	char name[APIKEY_NAME_MAX * 4 + 1];
	char prefix[KEYS_PREFIX_LEN + 1];
	int64_t created_at;
	int64_t expires_at;      /* 0 = never */
	int64_t revoked_at;      /* 0 = not revoked; may be in the future (rotation grace) */
	int64_t last_used_at;    /* 0 = never */
	int64_t rpm;             /* 0 = unlimited */
	int64_t tpm;             /* 0 = unlimited */
	int64_t spend_limit;     /* micro-credits per period; 0 = none */
	enum spend_period period;
	char allowed_models[APIKEY_MODELS_MAX]; /* comma-separated; "" = all */
};

/* Settings for create / update, validated by the module. */
struct apikey_limits {
	int64_t rpm, tpm, spend_limit;
	enum spend_period period;
	int64_t expires_at;      /* 0 = never */
	const char *allowed_models; /* comma-separated, may be NULL/"" */
};

const char *apikey_period_name(enum spend_period p);
/* "none" | "daily" | "weekly" | "monthly"; -1 for anything else. */
int apikey_period_parse(const char *s);
/* Start (UTC) of the period containing now: midnight, Monday midnight, or
 * the 1st of the month; 0 for PERIOD_NONE. */
int64_t apikey_period_start(enum spend_period p, int64_t now);

/* Install the pepper (from the secret file) before any other call. */
void apikeys_init(const unsigned char pepper[KEYS_PEPPER_LEN]);

/* Gateway lookup. Parses the token (malformed or bad checksum: TG_EINVAL,
 * no lookup at all), then finds the record through an in-memory cache keyed
 * by the hash (O(1)), falling back to the database on a miss. TG_ENOTFOUND
 * for unknown keys, TG_EPERM for revoked (revoked_at <= now) or expired ones.
 * Thread-safe. */
int apikey_authenticate(const char *token, size_t len, struct apikey *out);
/* 1 when the key may use this public model name. */
int apikey_model_allowed(const struct apikey *k, const char *model);
/* Drop cached entries (all of them, or the one with this id) so the next
 * lookup reads the database: called after revoke, rotate and limit changes. */
void apikey_cache_invalidate(int64_t id);
/* Record use; cheap, may be called inside the gateway's settle transaction. */
int apikey_mark_used(int64_t id, int64_t now);

int apikey_get(int64_t id, struct apikey *out);
/* Create a key. key_out receives the full key (shown once). why gets a
 * human message for TG_EINVAL. */
int apikey_create(int64_t org_id, int64_t created_by, const char *name,
		  const struct apikey_limits *lim, char key_out[KEYS_LEN + 1], int64_t *id_out,
		  const char **why);
int apikey_update_limits(int64_t id, const struct apikey_limits *lim, const char **why);
int apikey_revoke(int64_t id);
/* New secret for the same key settings; the old key stops working after
 * grace_s seconds (0 = at once, at most 86400). */
int apikey_rotate(int64_t id, int64_t grace_s, char key_out[KEYS_LEN + 1], int64_t *new_id,
		  const char **why);

#endif
