/* apikeys.h - API keys: the api_keys table, the in-memory lookup cache used
 * by the gateway, and the operations the dashboard and CLI perform.
 *
 * This module owns api_keys. The key itself exists only in the return value
 * of apikey_create / apikey_rotate (shown once); at rest it is a BLAKE2b hash
 * keyed with the server pepper.
 */
#ifndef TG_APIKEYS_H
#define TG_APIKEYS_H

#include <stddef.h>
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
	int64_t created_by; /* user id, 0 when created by the CLI */
	char name[APIKEY_NAME_MAX * 4 + 1];
	char prefix[KEYS_PREFIX_LEN + 1];
	int64_t created_at;
	int64_t expires_at;   /* 0 = never */
	int64_t revoked_at;   /* 0 = not revoked; may be in the future (rotation grace) */
	int64_t last_used_at; /* 0 = never */
	int64_t rpm;          /* 0 = unlimited */
	int64_t tpm;          /* 0 = unlimited */
	int64_t spend_limit;  /* micro-credits per period; 0 = none */
	enum spend_period period;
	char allowed_models[APIKEY_MODELS_MAX]; /* comma-separated; "" = all */
	int64_t rotated_from;                   /* the key this one replaced; 0 = none */
	/* Filled by apikey_authenticate only: the org's rate limits (0 =
	 * unlimited), cached with the key; org limit changes must call
	 * apikey_cache_invalidate(0). */
	int64_t org_rpm, org_tpm;
};

/* Settings for create / update, validated by the module. */
struct apikey_limits {
	int64_t rpm, tpm, spend_limit;
	enum spend_period period;
	int64_t expires_at;         /* 0 = never */
	const char *allowed_models; /* comma-separated, may be NULL/"" */
};

const char *apikey_period_name(enum spend_period p);
/* "none" | "daily" | "weekly" | "monthly"; -1 for anything else. */
int apikey_period_parse(const char *s);
/* Start (UTC) of the period containing now: midnight, Monday midnight, or
 * the 1st of the month; 0 for PERIOD_NONE. */
int64_t apikey_period_start(enum spend_period p, int64_t now);

/* Install the pepper (from the secret file) before any other call, after
 * the database is configured (it maps the shared change counter next to it).
 * Calling it again replaces the pepper and empties the cache. */
void apikeys_init(const unsigned char pepper[KEYS_PEPPER_LEN]);

/* Seconds a cached lookup is trusted before the database is read again.
 * Changes made through this module, in this process or in another one on the
 * same database (the CLI next to a running server), invalidate the cache at
 * once through a change counter shared in a file next to the database
 * ("<db>-keys"); the TTL only bounds what anything else, such as a manual SQL
 * edit, can leave stale. Unknown keys are cached the same way. */
#define APIKEY_CACHE_TTL_S 2
/* Cache size: sets x ways, fixed at compile time (no allocation). */
#define APIKEY_CACHE_SETS 512
#define APIKEY_CACHE_WAYS 4

/* Where a key stands at a given time. */
enum apikey_state {
	APIKEY_ACTIVE = 0,
	APIKEY_ROTATING, /* works now, revoked_at is in the future (rotation grace) */
	APIKEY_EXPIRED,
	APIKEY_REVOKED,
};
enum apikey_state apikey_state_of(const struct apikey *k, int64_t now);
/* "active" | "rotating" | "expired" | "revoked" */
const char *apikey_state_name(enum apikey_state s);
/* One line describing the key's limits for audit entries and the CLI, e.g.
 * "rpm 60, tpm none, spend 10.00 monthly, models a,b, expires 2026-12-31".
 * Always NUL-terminated (truncated to n). */
void apikey_limits_text(const struct apikey *k, char *out, size_t n);

/* Gateway lookup. Parses the token (malformed or bad checksum: TG_EINVAL,
 * no lookup at all), then finds the record through an in-memory cache keyed
 * by the hash (O(1)), falling back to the database on a miss. TG_ENOTFOUND
 * for unknown keys, TG_EPERM for revoked (revoked_at <= now) or expired ones.
 * *out is filled on TG_OK and on TG_EPERM (so the caller can tell revoked
 * from expired with apikey_state_of), left untouched otherwise. TG_EDB when
 * the database cannot be read. Thread-safe; allocates nothing on a cache hit. */
int apikey_authenticate(const char *token, size_t len, struct apikey *out);
/* 1 when the key may use this public model name. */
int apikey_model_allowed(const struct apikey *k, const char *model);
/* Drop cached entries (all of them, or the one with this id) so the next
 * lookup reads the database: called after revoke, rotate and limit changes. */
void apikey_cache_invalidate(int64_t id);
/* Record use; cheap, may be called inside the gateway's settle transaction. */
int apikey_mark_used(int64_t id, int64_t now);

int apikey_get(int64_t id, struct apikey *out);
/* The one key whose display prefix starts with `prefix` (at least "tg_" and
 * one more character), in org_id or, with org_id 0, in any org. TG_ENOTFOUND
 * when none matches, TG_ECONFLICT when several do, TG_EINVAL when too short. */
int apikey_find_prefix(int64_t org_id, const char *prefix, struct apikey *out);
/* Create a key. key_out receives the full key (shown once). why gets a
 * human message for TG_EINVAL. */
int apikey_create(int64_t org_id, int64_t created_by, const char *name,
		  const struct apikey_limits *lim, char key_out[KEYS_LEN + 1], int64_t *id_out,
		  const char **why);
/* Replace the limits and expiry of a key that is not revoked (TG_ECONFLICT).
 * An expiry already in the past is accepted only when it is unchanged. */
int apikey_update_limits(int64_t id, const struct apikey_limits *lim, const char **why);
/* Stop the key now (also one still in its rotation grace). TG_ENOTFOUND, or
 * TG_ECONFLICT when it was already revoked. */
int apikey_revoke(int64_t id);
/* Revoke every key a user created, in one org (org_id > 0) or in all of
 * them (0): a member who leaves an org, or a disabled user, keeps no working
 * keys. *count (may be NULL) gets how many were revoked. */
int apikey_revoke_user(int64_t org_id, int64_t user_id, int64_t *count);
/* New secret for the same key settings (same org, owner, name, limits and
 * expiry; the new row's rotated_from is id); the old key stops working after
 * grace_s seconds (0 = at once, at most 86400). TG_ECONFLICT with *why for a
 * key that is revoked, already rotated or expired. */
int apikey_rotate(int64_t id, int64_t grace_s, char key_out[KEYS_LEN + 1], int64_t *new_id,
		  const char **why);

#define APIKEY_GRACE_MAX 86400

/* Tests only: replace the clock used for expiry, revocation and cache ages
 * (NULL restores the wall clock). Not thread-safe; set it before use. */
void apikeys_set_clock(int64_t (*now_fn)(void));

#endif
