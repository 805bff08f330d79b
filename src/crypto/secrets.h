/* secrets.h - the server's secret file and sealing of stored credentials.
 *
 * The secret file holds two independent random 32-byte keys:
 *   pepper  - keys the API-key hashes (crypto/keys.h), so a stolen database
 *             alone does not allow offline guessing;
 *   box_key - seals values kept in the database that must be recoverable,
 *             such as upstream provider API keys (secrets_seal/secrets_open).
 * Format (text, mode 0600):
 *     tollgate-secret-v1
 *     pepper=<64 hex digits>
 *     box=<64 hex digits>
 *
 * Nothing in this module ever writes key material to err or to any log.
 * crypto_init() (see crypto/keys.h) must have succeeded first.
 */
#ifndef TG_SECRETS_H
#define TG_SECRETS_H

#include <stddef.h>

#include <sodium.h>

#include "core/common.h"

typedef struct tg_secrets {
	unsigned char pepper[32];
	unsigned char box_key[crypto_secretbox_KEYBYTES];
} tg_secrets_t;

/* Largest plaintext secrets_seal() accepts. */
#define SECRETS_MAX_PLAIN ((size_t)1 << 20)

/* Load the secret file at path into *out, or, when it does not exist yet,
 * create it (O_CREAT|O_EXCL, mode 0600, fsync) with fresh random keys.
 * Errors (with a one-line explanation in err, which may be NULL / errlen 0):
 *   TG_EPERM  - the file is accessible by group or others (mode & 077);
 *   TG_EIO    - it cannot be opened, read, created or written;
 *   TG_EINVAL - it is not a regular file or is not in the format above.
 * *out is only written on success; wipe it with secrets_wipe() when done. */
int secrets_load_or_create(const char *path, tg_secrets_t *out, char *err, size_t errlen);

/* Zero the keys in *s. */
void secrets_wipe(tg_secrets_t *s);

/* Encrypt and authenticate the n bytes at plain (plain may be NULL when n is
 * 0) with s->box_key and a random nonce. *out receives a printable,
 * NUL-terminated string "v1:" + base64url(nonce || ciphertext) that the caller
 * frees with free(). TG_OK, TG_ETOOBIG (n > SECRETS_MAX_PLAIN), TG_ENOMEM. */
int secrets_seal(const tg_secrets_t *s, const void *plain, size_t n, char **out);

/* Reverse secrets_seal(). On TG_OK *plain_out holds the *n_out plaintext bytes
 * followed by a NUL (so text can be used as a C string); the caller releases
 * it with secrets_plain_free(*plain_out, *n_out), which wipes it first.
 * TG_EINVAL when sealed is malformed, was sealed with another key, or was
 * altered; TG_ENOMEM. The outputs are untouched on error. */
int secrets_open(const tg_secrets_t *s, const char *sealed, char **plain_out, size_t *n_out);

/* Zero n bytes at p, then free(p). p may be NULL. */
void secrets_plain_free(char *p, size_t n);

#endif
