/* password.c - Argon2id password hashing and policy; see password.h. */
#include "crypto/password.h"

#include <stdatomic.h>
#include <string.h>

_Static_assert(PASSWORD_MIN_CHARS == 12 && PASSWORD_MAX_BYTES == 1024,
	       "update the policy messages below");

static _Atomic unsigned long long password_ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
static _Atomic size_t password_mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;

void password_set_limits(unsigned long long ops, size_t mem)
{
	if (ops < crypto_pwhash_OPSLIMIT_MIN)
		ops = crypto_pwhash_OPSLIMIT_MIN;
	if (ops > crypto_pwhash_OPSLIMIT_MAX)
		ops = crypto_pwhash_OPSLIMIT_MAX;
	if (mem < crypto_pwhash_MEMLIMIT_MIN)
		mem = crypto_pwhash_MEMLIMIT_MIN;
	if (mem > crypto_pwhash_MEMLIMIT_MAX)
		mem = crypto_pwhash_MEMLIMIT_MAX;
	atomic_store(&password_ops, ops);
	atomic_store(&password_mem, mem);
}

int password_hash(const char *pw, char out[crypto_pwhash_STRBYTES])
{
	if (!pw)
		return TG_EINVAL;
	/* crypto_pwhash_str() only fails when Argon2 cannot allocate its
	 * memory (the limits are clamped, the length is a C string's). */
	if (crypto_pwhash_str(out, pw, strlen(pw), atomic_load(&password_ops),
			      atomic_load(&password_mem)) != 0)
		return TG_ENOMEM;
	return TG_OK;
}

/* -1 when stored is not a well-formed Argon2id string, else 0 or 1 as
 * crypto_pwhash_str_needs_rehash() (which decodes the whole string). */
static int password_inspect(const char *stored)
{
	if (!stored || strnlen(stored, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES)
		return -1;
	if (strncmp(stored, crypto_pwhash_argon2id_STRPREFIX,
		    strlen(crypto_pwhash_argon2id_STRPREFIX)) != 0)
		return -1;
	return crypto_pwhash_str_needs_rehash(stored, atomic_load(&password_ops),
					      atomic_load(&password_mem));
}

int password_verify(const char *stored, const char *pw)
{
	if (password_inspect(stored) < 0 || !pw)
		return TG_EINVAL;
	if (crypto_pwhash_str_verify(stored, pw, strlen(pw)) != 0)
		return TG_EPERM;
	return TG_OK;
}

int password_needs_rehash(const char *stored)
{
	return password_inspect(stored) != 0;
}

int password_check_policy_len(const char *pw, size_t len, const char **why)
{
	const char *msg = NULL;
	size_t i, chars = 0;

	if (!pw) {
		msg = "Password is required.";
		goto out;
	}
	if (len > PASSWORD_MAX_BYTES) {
		msg = "Password must be at most 1024 bytes long.";
		goto out;
	}
	if (memchr(pw, '\0', len)) {
		msg = "Password must not contain NUL characters.";
		goto out;
	}
	/* Count code points: every byte that is not a UTF-8 continuation byte. */
	for (i = 0; i < len; i++)
		if (((unsigned char)pw[i] & 0xC0) != 0x80)
			chars++;
	if (chars < PASSWORD_MIN_CHARS)
		msg = "Password must be at least 12 characters.";
out:
	if (why)
		*why = msg;
	return msg ? TG_EINVAL : TG_OK;
}

int password_check_policy(const char *pw, const char **why)
{
	/* strnlen: a longer input is rejected without walking all of it. */
	return password_check_policy_len(pw, pw ? strnlen(pw, PASSWORD_MAX_BYTES + 1) : 0, why);
}
