/* identity.h - users, organizations, memberships, sessions, login throttling
 * and the audit log. This module owns those tables: pages and the CLI read
 * them directly but change them only through these functions.
 */
#ifndef TG_IDENTITY_H
#define TG_IDENTITY_H

#include <stdint.h>

#include "core/common.h"

#define ID_EMAIL_MAX 254
#define ID_NAME_MAX 100

struct user {
	int64_t id;
	char email[ID_EMAIL_MAX + 1];
	char name[ID_NAME_MAX * 4 + 1]; /* up to 100 characters of UTF-8 */
	int is_admin;
	int disabled;
	int must_change_password;
	int64_t created_at;
};

struct org {
	int64_t id;
	char name[ID_NAME_MAX * 4 + 1];
	int64_t created_at;
};

/* Org roles, ordered by power. ROLE_NONE means not a member. */
enum role { ROLE_NONE = 0, ROLE_MEMBER = 1, ROLE_ADMIN = 2, ROLE_OWNER = 3 };
const char *role_name(enum role r);
/* "owner" | "admin" | "member" -> role; ROLE_NONE for anything else. */
enum role role_parse(const char *s);

/* Validation with a human message in *why (static string). */
int identity_check_email(const char *email, const char **why);
int identity_check_name(const char *name, const char *what, char *why, size_t whylen);

/* --- users --- */
/* Validates everything; TG_ECONFLICT if the email is taken, TG_EINVAL with
 * *why set when a field is bad. */
int user_create(const char *email, const char *name, const char *password, int is_admin,
		int must_change_password, int64_t *id_out, const char **why);
int user_get(int64_t id, struct user *u);
int user_get_by_email(const char *email, struct user *u);
/* Verify a password for sign-in; TG_OK, TG_EPERM (wrong, disabled or no such
 * user: indistinguishable), takes the same time whether or not the user exists. */
int user_check_password(const char *email, const char *password, struct user *u);
int user_set_password(int64_t id, const char *password, const char **why);
int user_set_disabled(int64_t id, int disabled);
int64_t user_count(void);

/* --- organizations and memberships --- */
int org_create(const char *name, int64_t *id_out, char *why, size_t whylen);
int org_get(int64_t id, struct org *o);
int org_get_by_name(const char *name, struct org *o);
/* Per-org rate limits for the gateway (0 = unlimited). A running server
 * reads them with its cached API keys: call apikey_cache_invalidate(0)
 * after a change. */
int org_set_limits(int64_t org_id, int64_t rpm, int64_t tpm);
enum role membership_role(int64_t org_id, int64_t user_id);
/* Add or change a membership. Demoting the last owner is TG_ECONFLICT. */
int membership_set(int64_t org_id, int64_t user_id, enum role role);
/* Removing the last owner is TG_ECONFLICT; not a member is TG_ENOTFOUND. */
int membership_remove(int64_t org_id, int64_t user_id);
/* The first org the user belongs to (by name), or 0. */
int64_t membership_first_org(int64_t user_id);

/* --- sessions --- */
struct session_row {
	int64_t id;
	int64_t user_id;
	int64_t org_id; /* 0 when none chosen */
	int64_t created_at;
	int64_t last_seen_at;
	int64_t expires_at;
	unsigned char token_hash[32];
};
/* A new session; token_out (44 bytes) receives the cookie value. */
int session_create(int64_t user_id, int64_t org_id, int64_t absolute_s, const char *ip,
		   char token_out[44], struct session_row *out);
/* Find a live session by cookie value; expired ones are deleted. Touches
 * last_seen_at (at most once a minute). TG_ENOTFOUND when missing/expired. */
int session_lookup(const char *token, int64_t idle_s, struct session_row *out);
int session_delete(int64_t session_id);
int session_delete_user(int64_t user_id, int64_t except_session_id);
int session_set_org(int64_t session_id, int64_t org_id);

/* --- sign-in throttling, per email address whether it exists or not --- */
/* Seconds the caller must still wait before trying this email, 0 if none. */
int64_t throttle_wait(const char *email);
void throttle_fail(const char *email);
void throttle_clear(const char *email);

/* --- first-run setup tokens --- */
/* A new one-time token (44 bytes with NUL) replacing any unused one. */
int setup_token_create(char token_out[44]);
/* TG_OK if valid and unused. */
int setup_token_check(const char *token);
/* Mark used; TG_ECONFLICT if it was used already (a race lost). */
int setup_token_consume(const char *token);

/* --- audit log --- */
struct audit_actor {
	int64_t user_id;   /* 0 for the CLI or the system */
	const char *label; /* email, "cli" or "system" */
	const char *ip;
};
int audit_add(const struct audit_actor *a, int64_t org_id, const char *action, const char *target,
	      const char *detail);

#endif
