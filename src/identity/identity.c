/* identity.c - users, orgs, memberships, sessions, throttle, setup tokens and
 * audit entries; see identity.h. */
#include "identity/identity.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/password.h"
#include "crypto/tokens.h"
#include "store/db.h"

const char *role_name(enum role r)
{
	switch (r) {
	case ROLE_OWNER:
		return "owner";
	case ROLE_ADMIN:
		return "admin";
	case ROLE_MEMBER:
		return "member";
	default:
		return "";
	}
}

enum role role_parse(const char *s)
{
	if (!s)
		return ROLE_NONE;
	if (strcmp(s, "owner") == 0)
		return ROLE_OWNER;
	if (strcmp(s, "admin") == 0)
		return ROLE_ADMIN;
	if (strcmp(s, "member") == 0)
		return ROLE_MEMBER;
	return ROLE_NONE;
}

int identity_check_email(const char *email, const char **why)
{
	const char *at, *p;
	size_t n = email ? strlen(email) : 0;

	if (n == 0) {
		*why = "Email is required.";
		return TG_EINVAL;
	}
	if (n > ID_EMAIL_MAX) {
		*why = "Email is too long (at most 254 characters).";
		return TG_EINVAL;
	}
	at = strchr(email, '@');
	for (p = email; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == '"' ||
		    *p == ',' || *p == ';') {
			*why = "Email contains characters that are not allowed.";
			return TG_EINVAL;
		}
	}
	if (!at || at == email || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.' ||
	    email[n - 1] == '.') {
		*why = "Enter an email address such as name@example.com.";
		return TG_EINVAL;
	}
	return TG_OK;
}

int identity_check_name(const char *name, const char *what, char *why, size_t whylen)
{
	size_t chars = 0;
	const unsigned char *p;

	if (!name || !*name) {
		snprintf(why, whylen, "%s is required.", what);
		return TG_EINVAL;
	}
	for (p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(why, whylen, "%s must not contain control characters.", what);
			return TG_EINVAL;
		}
		if ((*p & 0xc0) != 0x80)
			chars++;
	}
	if (chars > ID_NAME_MAX || strlen(name) > ID_NAME_MAX * 4) {
		snprintf(why, whylen, "%s is too long (at most %d characters).", what, ID_NAME_MAX);
		return TG_EINVAL;
	}
	if (name[0] == ' ' || name[strlen(name) - 1] == ' ') {
		snprintf(why, whylen, "%s must not start or end with a space.", what);
		return TG_EINVAL;
	}
	return TG_OK;
}

/* ---------------------------------------------------------------- users */

static void user_from_row(tg_stmt *st, struct user *u)
{
	memset(u, 0, sizeof(*u));
	u->id = db_col_int64(st, 0);
	snprintf(u->email, sizeof(u->email), "%s", db_col_text(st, 1));
	snprintf(u->name, sizeof(u->name), "%s", db_col_text(st, 2));
	u->is_admin = db_col_int(st, 3);
	u->disabled = !db_col_is_null(st, 4);
	u->must_change_password = db_col_int(st, 5);
	u->created_at = db_col_int64(st, 6);
}

#define USER_COLS "id, email, name, is_admin, disabled_at, must_change_password, created_at"

int user_create(const char *email, const char *name, const char *password, int is_admin,
		int must_change_password, int64_t *id_out, const char **why)
{
	char namewhy[128];
	char hash[crypto_pwhash_STRBYTES];
	tg_stmt *st;
	int64_t now = time_now();
	int rc;

	if ((rc = identity_check_email(email, why)))
		return rc;
	if (name && *name && identity_check_name(name, "Name", namewhy, sizeof(namewhy))) {
		*why = "Name must be 1 to 100 characters without control characters.";
		return TG_EINVAL;
	}
	if ((rc = password_check_policy(password, why)))
		return rc;
	if ((rc = password_hash(password, hash))) {
		*why = "Could not hash the password.";
		return rc;
	}
	st = db_stmt("INSERT INTO users(email, name, password_hash, is_admin, must_change_password,"
		     " created_at, updated_at) VALUES (:email, :name, :hash, :admin, :must, "
		     ":now, :now)");
	if (!st || db_bind_text(st, ":email", email) ||
	    db_bind_text(st, ":name", name ? name : "") || db_bind_text(st, ":hash", hash) ||
	    db_bind_int64(st, ":admin", is_admin ? 1 : 0) ||
	    db_bind_int64(st, ":must", must_change_password ? 1 : 0) ||
	    db_bind_int64(st, ":now", now)) {
		*why = "Database error.";
		return TG_EDB;
	}
	rc = db_exec_stmt(st);
	sodium_memzero(hash, sizeof(hash));
	if (rc == TG_ECONFLICT) {
		*why = "A user with this email already exists.";
		return rc;
	}
	if (rc) {
		*why = "Database error.";
		return rc;
	}
	if (id_out)
		*id_out = db_last_id();
	return TG_OK;
}

int user_get(int64_t id, struct user *u)
{
	tg_stmt *st = db_stmt("SELECT " USER_COLS " FROM users WHERE id = :id");
	int rc = TG_ENOTFOUND;

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		user_from_row(st, u);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

int user_get_by_email(const char *email, struct user *u)
{
	tg_stmt *st = db_stmt("SELECT " USER_COLS " FROM users WHERE email = :email");
	int rc = TG_ENOTFOUND;

	if (!st || db_bind_text(st, ":email", email))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		user_from_row(st, u);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

/* A hash to verify against when the user does not exist, so both paths cost
 * one Argon2id verification. */
static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
	char pw[32];

	randombytes_buf(pw, sizeof(pw) - 1);
	for (size_t i = 0; i < sizeof(pw) - 1; i++)
		pw[i] = (char)('a' + ((unsigned char)pw[i] % 26));
	pw[sizeof(pw) - 1] = '\0';
	if (password_hash(pw, dummy_hash))
		dummy_hash[0] = '\0';
}

int user_check_password(const char *email, const char *password, struct user *u)
{
	char stored[crypto_pwhash_STRBYTES] = "";
	tg_stmt *st;
	int found = 0, rc;

	st = db_stmt("SELECT " USER_COLS ", password_hash FROM users WHERE email = :email");
	if (!st || db_bind_text(st, ":email", email))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		user_from_row(st, u);
		snprintf(stored, sizeof(stored), "%s", db_col_text(st, 7));
		found = 1;
	}
	db_done(st);
	if (!found) {
		pthread_once(&dummy_once, dummy_make);
		password_verify(dummy_hash, password);
		return TG_EPERM;
	}
	rc = password_verify(stored, password);
	if (rc == TG_OK && u->disabled)
		rc = TG_EPERM;
	if (rc == TG_OK && password_needs_rehash(stored)) {
		const char *why;

		if (user_set_password(u->id, password, &why) == TG_OK)
			log_info("rehashed the password of user %lld with current parameters",
				 (long long)u->id);
	}
	sodium_memzero(stored, sizeof(stored));
	return rc == TG_OK ? TG_OK : TG_EPERM;
}

int user_set_password(int64_t id, const char *password, const char **why)
{
	char hash[crypto_pwhash_STRBYTES];
	tg_stmt *st;
	int rc;

	if ((rc = password_check_policy(password, why)))
		return rc;
	if ((rc = password_hash(password, hash))) {
		*why = "Could not hash the password.";
		return rc;
	}
	st = db_stmt("UPDATE users SET password_hash = :hash, must_change_password = 0,"
		     " updated_at = :now WHERE id = :id");
	if (!st || db_bind_text(st, ":hash", hash) || db_bind_int64(st, ":now", time_now()) ||
	    db_bind_int64(st, ":id", id))
		rc = TG_EDB;
	else
		rc = db_exec_stmt(st);
	sodium_memzero(hash, sizeof(hash));
	if (rc == TG_OK && db_changes() == 0)
		rc = TG_ENOTFOUND;
	if (rc)
		*why = "Could not save the password.";
	return rc;
}

int user_set_disabled(int64_t id, int disabled)
{
	tg_stmt *st = db_stmt("UPDATE users SET disabled_at = CASE WHEN :d <> 0 THEN"
			      " coalesce(disabled_at, :now) ELSE NULL END, updated_at = :now"
			      " WHERE id = :id");
	int rc;

	if (!st || db_bind_int64(st, ":d", disabled ? 1 : 0) ||
	    db_bind_int64(st, ":now", time_now()) || db_bind_int64(st, ":id", id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	if (db_changes() == 0)
		return TG_ENOTFOUND;
	if (disabled)
		return session_delete_user(id, 0);
	return TG_OK;
}

int64_t user_count(void)
{
	tg_stmt *st = db_stmt("SELECT count(*) FROM users");
	int64_t n = -1;

	if (st && db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	return n;
}

/* ----------------------------------------------------------------- orgs */

int org_create(const char *name, int64_t *id_out, char *why, size_t whylen)
{
	tg_stmt *st;
	int rc;

	if ((rc = identity_check_name(name, "Organization name", why, whylen)))
		return rc;
	st = db_stmt("INSERT INTO orgs(name, created_at) VALUES (:name, :now)");
	if (!st || db_bind_text(st, ":name", name) || db_bind_int64(st, ":now", time_now()))
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc == TG_ECONFLICT)
		snprintf(why, whylen, "An organization with this name already exists.");
	else if (rc)
		snprintf(why, whylen, "Database error.");
	else if (id_out)
		*id_out = db_last_id();
	return rc;
}

static int org_from_stmt(tg_stmt *st, struct org *o)
{
	int rc = TG_ENOTFOUND;

	if (db_step(st) == DB_ROW) {
		memset(o, 0, sizeof(*o));
		o->id = db_col_int64(st, 0);
		snprintf(o->name, sizeof(o->name), "%s", db_col_text(st, 1));
		o->created_at = db_col_int64(st, 2);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

int org_get(int64_t id, struct org *o)
{
	tg_stmt *st = db_stmt("SELECT id, name, created_at FROM orgs WHERE id = :id");

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	return org_from_stmt(st, o);
}

int org_get_by_name(const char *name, struct org *o)
{
	tg_stmt *st = db_stmt("SELECT id, name, created_at FROM orgs WHERE name = :name");

	if (!st || db_bind_text(st, ":name", name))
		return TG_EDB;
	return org_from_stmt(st, o);
}

int org_set_limits(int64_t org_id, int64_t rpm, int64_t tpm)
{
	tg_stmt *st = db_stmt("UPDATE orgs SET rpm = :rpm, tpm = :tpm WHERE id = :id");
	int rc;

	if (rpm < 0 || tpm < 0)
		return TG_EINVAL;
	if (!st || db_bind_int64(st, ":rpm", rpm) || db_bind_int64(st, ":tpm", tpm) ||
	    db_bind_int64(st, ":id", org_id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	return db_changes() ? TG_OK : TG_ENOTFOUND;
}

enum role membership_role(int64_t org_id, int64_t user_id)
{
	tg_stmt *st = db_stmt("SELECT role FROM memberships m JOIN users u ON u.id = m.user_id"
			      " WHERE m.org_id = :org AND m.user_id = :user"
			      " AND u.disabled_at IS NULL");
	enum role r = ROLE_NONE;

	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id))
		return ROLE_NONE;
	if (db_step(st) == DB_ROW)
		r = role_parse(db_col_text(st, 0));
	db_done(st);
	return r;
}

static int64_t owner_count(int64_t org_id)
{
	tg_stmt *st = db_stmt("SELECT count(*) FROM memberships WHERE org_id = :org"
			      " AND role = 'owner'");
	int64_t n = 0;

	if (!st || db_bind_int64(st, ":org", org_id))
		return -1;
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	return n;
}

static enum role role_raw(int64_t org_id, int64_t user_id)
{
	tg_stmt *st = db_stmt(
		"SELECT role FROM memberships WHERE org_id = :org AND user_id = :user");
	enum role r = ROLE_NONE;

	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id))
		return ROLE_NONE;
	if (db_step(st) == DB_ROW)
		r = role_parse(db_col_text(st, 0));
	db_done(st);
	return r;
}

int membership_set(int64_t org_id, int64_t user_id, enum role role)
{
	tg_stmt *st;
	int rc;

	if (role == ROLE_NONE)
		return TG_EINVAL;
	if ((rc = db_begin()))
		return rc;
	if (role_raw(org_id, user_id) == ROLE_OWNER && role != ROLE_OWNER &&
	    owner_count(org_id) <= 1) {
		rc = TG_ECONFLICT;
		goto out;
	}
	st = db_stmt("INSERT INTO memberships(org_id, user_id, role, created_at)"
		     " VALUES (:org, :user, :role, :now)"
		     " ON CONFLICT(org_id, user_id) DO UPDATE SET role = excluded.role");
	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id) ||
	    db_bind_text(st, ":role", role_name(role)) || db_bind_int64(st, ":now", time_now())) {
		rc = TG_EDB;
		goto out;
	}
	rc = db_exec_stmt(st);
out:
	if (rc == TG_OK)
		return db_commit();
	db_rollback();
	return rc;
}

int membership_remove(int64_t org_id, int64_t user_id)
{
	tg_stmt *st;
	enum role cur;
	int rc;

	if ((rc = db_begin()))
		return rc;
	cur = role_raw(org_id, user_id);
	if (cur == ROLE_NONE) {
		rc = TG_ENOTFOUND;
		goto out;
	}
	if (cur == ROLE_OWNER && owner_count(org_id) <= 1) {
		rc = TG_ECONFLICT;
		goto out;
	}
	st = db_stmt("DELETE FROM memberships WHERE org_id = :org AND user_id = :user");
	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id)) {
		rc = TG_EDB;
		goto out;
	}
	rc = db_exec_stmt(st);
	if (rc == TG_OK) {
		/* Sessions looking at that org fall back to none. */
		st = db_stmt("UPDATE sessions SET org_id = NULL WHERE user_id = :user AND org_id "
			     "= :org");
		if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":user", user_id))
			rc = TG_EDB;
		else
			rc = db_exec_stmt(st);
	}
out:
	if (rc == TG_OK)
		return db_commit();
	db_rollback();
	return rc;
}

int64_t membership_first_org(int64_t user_id)
{
	tg_stmt *st = db_stmt("SELECT o.id FROM memberships m JOIN orgs o ON o.id = m.org_id"
			      " WHERE m.user_id = :user ORDER BY o.name LIMIT 1");
	int64_t id = 0;

	if (!st || db_bind_int64(st, ":user", user_id))
		return 0;
	if (db_step(st) == DB_ROW)
		id = db_col_int64(st, 0);
	db_done(st);
	return id;
}

/* ------------------------------------------------------------- sessions */

int session_create(int64_t user_id, int64_t org_id, int64_t absolute_s, const char *ip,
		   char token_out[44], struct session_row *out)
{
	tg_stmt *st;
	int64_t now = time_now();
	int rc;

	if ((rc = tokens_random(token_out, 44)))
		return rc;
	memset(out, 0, sizeof(*out));
	tokens_hash(token_out, strlen(token_out), out->token_hash);
	st = db_stmt("INSERT INTO sessions(token_hash, user_id, org_id, created_at, last_seen_at,"
		     " expires_at, ip) VALUES (:hash, :user, :org, :now, :now, :exp, :ip)");
	if (!st || db_bind_blob(st, ":hash", out->token_hash, 32) ||
	    db_bind_int64(st, ":user", user_id) || db_bind_int64(st, ":now", now) ||
	    db_bind_int64(st, ":exp", now + absolute_s) || db_bind_text(st, ":ip", ip ? ip : ""))
		return TG_EDB;
	if (org_id)
		rc = db_bind_int64(st, ":org", org_id);
	else
		rc = db_bind_null(st, ":org");
	if (rc || (rc = db_exec_stmt(st)))
		return rc;
	out->id = db_last_id();
	out->user_id = user_id;
	out->org_id = org_id;
	out->created_at = now;
	out->last_seen_at = now;
	out->expires_at = now + absolute_s;
	return TG_OK;
}

int session_lookup(const char *token, int64_t idle_s, struct session_row *out)
{
	tg_stmt *st;
	unsigned char h[32];
	int64_t now = time_now();
	int found = 0;

	if (!token || strlen(token) != TOKENS_LEN)
		return TG_ENOTFOUND;
	tokens_hash(token, strlen(token), h);
	st = db_stmt("SELECT id, user_id, coalesce(org_id, 0), created_at, last_seen_at, expires_at"
		     " FROM sessions WHERE token_hash = :hash");
	if (!st || db_bind_blob(st, ":hash", h, 32))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		memset(out, 0, sizeof(*out));
		out->id = db_col_int64(st, 0);
		out->user_id = db_col_int64(st, 1);
		out->org_id = db_col_int64(st, 2);
		out->created_at = db_col_int64(st, 3);
		out->last_seen_at = db_col_int64(st, 4);
		out->expires_at = db_col_int64(st, 5);
		memcpy(out->token_hash, h, 32);
		found = 1;
	}
	db_done(st);
	if (!found)
		return TG_ENOTFOUND;
	if (now >= out->expires_at || now - out->last_seen_at >= idle_s) {
		session_delete(out->id);
		return TG_ENOTFOUND;
	}
	if (now - out->last_seen_at >= 60) {
		st = db_stmt("UPDATE sessions SET last_seen_at = :now WHERE id = :id");
		if (st && !db_bind_int64(st, ":now", now) && !db_bind_int64(st, ":id", out->id))
			db_exec_stmt(st);
		out->last_seen_at = now;
	}
	return TG_OK;
}

int session_delete(int64_t session_id)
{
	tg_stmt *st = db_stmt("DELETE FROM sessions WHERE id = :id");

	if (!st || db_bind_int64(st, ":id", session_id))
		return TG_EDB;
	return db_exec_stmt(st);
}

int session_delete_user(int64_t user_id, int64_t except_session_id)
{
	tg_stmt *st = db_stmt("DELETE FROM sessions WHERE user_id = :user AND id != :except");

	if (!st || db_bind_int64(st, ":user", user_id) ||
	    db_bind_int64(st, ":except", except_session_id))
		return TG_EDB;
	return db_exec_stmt(st);
}

int session_set_org(int64_t session_id, int64_t org_id)
{
	tg_stmt *st = db_stmt("UPDATE sessions SET org_id = :org WHERE id = :id");

	if (!st || db_bind_int64(st, ":org", org_id) || db_bind_int64(st, ":id", session_id))
		return TG_EDB;
	return db_exec_stmt(st);
}

/* ------------------------------------------------------------- throttle */

#define THROTTLE_FREE_FAILURES 5
#define THROTTLE_BASE_S 30
#define THROTTLE_MAX_S 900
#define THROTTLE_FORGET_S 3600

int64_t throttle_wait(const char *email)
{
	tg_stmt *st = db_stmt("SELECT locked_until FROM login_throttle WHERE email = :email");
	int64_t until = 0, now = time_now();

	if (!st || db_bind_text(st, ":email", email))
		return 0;
	if (db_step(st) == DB_ROW)
		until = db_col_int64(st, 0);
	db_done(st);
	return until > now ? until - now : 0;
}

void throttle_fail(const char *email)
{
	tg_stmt *st;
	int64_t now = time_now();

	/* Failures older than an hour are forgotten; from the sixth failure on,
	 * each one locks the address for twice as long as the last (30 s .. 15 min). */
	st = db_stmt("INSERT INTO login_throttle(email, failures, last_failure_at, locked_until)"
		     " VALUES (:email, 1, :now, 0)"
		     " ON CONFLICT(email) DO UPDATE SET"
		     "  failures = CASE WHEN login_throttle.last_failure_at < :now - :forget THEN 1"
		     " ELSE login_throttle.failures + 1 END,"
		     "  last_failure_at = :now");
	if (!st || db_bind_text(st, ":email", email) || db_bind_int64(st, ":now", now) ||
	    db_bind_int64(st, ":forget", THROTTLE_FORGET_S) || db_exec_stmt(st))
		return;
	st = db_stmt("UPDATE login_throttle SET locked_until = :now + CASE"
		     " WHEN (:base << CAST(CASE WHEN failures - :free < 10 THEN failures - :free"
		     " ELSE 10 END AS INTEGER)) < :max"
		     " THEN (:base << CAST(CASE WHEN failures - :free < 10 THEN failures - :free"
		     " ELSE 10 END AS INTEGER)) ELSE :max END"
		     " WHERE email = :email AND failures >= :free");
	if (!st || db_bind_text(st, ":email", email) || db_bind_int64(st, ":now", now) ||
	    db_bind_int64(st, ":max", THROTTLE_MAX_S) ||
	    db_bind_int64(st, ":base", THROTTLE_BASE_S) ||
	    db_bind_int64(st, ":free", THROTTLE_FREE_FAILURES))
		return;
	db_exec_stmt(st);
}

void throttle_clear(const char *email)
{
	tg_stmt *st = db_stmt("DELETE FROM login_throttle WHERE email = :email");

	if (st && !db_bind_text(st, ":email", email))
		db_exec_stmt(st);
}

/* --------------------------------------------------------- setup tokens */

int setup_token_create(char token_out[44])
{
	tg_stmt *st;
	unsigned char h[32];
	int rc;

	if ((rc = tokens_random(token_out, 44)))
		return rc;
	tokens_hash(token_out, strlen(token_out), h);
	if ((rc = db_exec("DELETE FROM setup_tokens WHERE used_at IS NULL")))
		return rc;
	st = db_stmt("INSERT INTO setup_tokens(token_hash, created_at) VALUES (:hash, :now)");
	if (!st || db_bind_blob(st, ":hash", h, 32) || db_bind_int64(st, ":now", time_now()))
		return TG_EDB;
	return db_exec_stmt(st);
}

int setup_token_check(const char *token)
{
	tg_stmt *st;
	unsigned char h[32];
	int rc = TG_ENOTFOUND;

	if (!token || strlen(token) != TOKENS_LEN)
		return TG_ENOTFOUND;
	tokens_hash(token, strlen(token), h);
	st = db_stmt("SELECT 1 FROM setup_tokens WHERE token_hash = :hash AND used_at IS NULL");
	if (!st || db_bind_blob(st, ":hash", h, 32))
		return TG_EDB;
	if (db_step(st) == DB_ROW)
		rc = TG_OK;
	db_done(st);
	return rc;
}

int setup_token_consume(const char *token)
{
	tg_stmt *st;
	unsigned char h[32];
	int rc;

	if (!token || strlen(token) != TOKENS_LEN)
		return TG_ENOTFOUND;
	tokens_hash(token, strlen(token), h);
	st = db_stmt(
		"UPDATE setup_tokens SET used_at = :now WHERE token_hash = :hash AND used_at IS "
		"NULL");
	if (!st || db_bind_blob(st, ":hash", h, 32) || db_bind_int64(st, ":now", time_now()))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	return db_changes() == 1 ? TG_OK : TG_ECONFLICT;
}

/* ---------------------------------------------------------------- audit */

int audit_add(const struct audit_actor *a, int64_t org_id, const char *action, const char *target,
	      const char *detail)
{
	tg_stmt *st = db_stmt("INSERT INTO audit_log(at, actor_user_id, actor, org_id, action,"
			      " target, detail, ip) VALUES (:at, :uid, :actor, :org, :action,"
			      " :target, :detail, :ip)");
	int rc;

	if (!st || db_bind_int64(st, ":at", time_now()) ||
	    db_bind_text(st, ":actor", a->label ? a->label : "system") ||
	    db_bind_text(st, ":action", action) ||
	    db_bind_text(st, ":target", target ? target : "") ||
	    db_bind_text(st, ":detail", detail ? detail : "") ||
	    db_bind_text(st, ":ip", a->ip ? a->ip : ""))
		return TG_EDB;
	rc = a->user_id ? db_bind_int64(st, ":uid", a->user_id) : db_bind_null(st, ":uid");
	if (!rc)
		rc = org_id ? db_bind_int64(st, ":org", org_id) : db_bind_null(st, ":org");
	if (!rc)
		rc = db_exec_stmt(st);
	if (rc)
		log_error("audit: could not record %s", action);
	return rc;
}
