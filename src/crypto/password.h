/* password.h - dashboard password hashing (Argon2id) and password policy.
 *
 * Hashes are libsodium's self-describing `$argon2id$v=19$m=...,t=...,p=1$...`
 * strings; they carry their own parameters, so verification keeps working
 * after the limits change, and password_needs_rehash() tells the login code
 * when to store a fresh hash. Nothing here allocates. crypto_init() (see
 * crypto/keys.h) must have succeeded first.
 */
#ifndef TG_PASSWORD_H
#define TG_PASSWORD_H

#include <stddef.h>

#include <sodium.h>

#include "core/common.h"

#define PASSWORD_MIN_CHARS 12
#define PASSWORD_MAX_BYTES 1024

/* Set the Argon2id cost used by password_hash() and password_needs_rehash().
 * Defaults are crypto_pwhash_OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE.
 * Values are clamped to libsodium's MIN..MAX. Call at start-up, before other
 * threads hash passwords (the limits are plain process-wide settings). */
void password_set_limits(unsigned long long ops, size_t mem);

/* Hash pw (a C string) into out, a NUL-terminated string. TG_OK, or
 * TG_ENOMEM when Argon2 could not get its working memory. */
int password_hash(const char *pw, char out[crypto_pwhash_STRBYTES]);

/* TG_OK when pw matches stored; TG_EPERM when it does not; TG_EINVAL when
 * stored is not a well-formed Argon2id hash string (also for NULL). */
int password_verify(const char *stored, const char *pw);

/* 1 when stored was made with other limits than the current ones (or is not
 * a well-formed Argon2id hash at all), 0 when it is up to date. */
int password_needs_rehash(const char *stored);

/* TG_OK when pw is acceptable as a new password; otherwise TG_EINVAL and, when
 * why is not NULL, *why points at a static, user-facing sentence. Rules: at
 * least PASSWORD_MIN_CHARS characters (UTF-8 code points), at most
 * PASSWORD_MAX_BYTES bytes, no NUL byte. */
int password_check_policy(const char *pw, const char **why);

/* The same for a password of len bytes that need not be NUL-terminated (for
 * form values that might carry an embedded NUL). Reads at most len bytes. */
int password_check_policy_len(const char *pw, size_t len, const char **why);

#endif
