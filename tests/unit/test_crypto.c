/* Unit tests for API keys, passwords, the secret file, sealing and tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sodium.h>

#include "core/base62.h"
#include "crypto/keys.h"
#include "crypto/password.h"
#include "crypto/secrets.h"
#include "crypto/tokens.h"

static int setup(void **state)
{
	(void)state;
	if (crypto_init() != TG_OK || crypto_init() != TG_OK)
		return -1;
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
	return 0;
}

/* ---- API keys ---- */

static void test_crc32_vectors(void **state)
{
	(void)state;
	assert_int_equal(keys_crc32("123456789", 9), 0xCBF43926u);
	assert_int_equal(keys_crc32("", 0), 0);
	assert_int_equal(keys_crc32("a", 1), 0xE8B7BE43u);
	assert_int_equal(keys_crc32("The quick brown fox jumps over the lazy dog", 43),
			 0x414FA339u);
}

static void test_generate_parse_many(void **state)
{
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1], other[KEYS_LEN + 1];
	char check[BASE62_U32_LEN + 1];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		assert_int_equal(keys_generate(key, prefix), TG_OK);
		assert_int_equal(strlen(key), KEYS_LEN);
		assert_int_equal(strlen(prefix), KEYS_PREFIX_LEN);
		assert_memory_equal(key, "tg_", 3);
		assert_memory_equal(prefix, key, KEYS_PREFIX_LEN);
		assert_true(base62_is_valid(key + 3, KEYS_LEN - 3));
		base62_u32(keys_crc32(key, 35), check);
		assert_string_equal(key + 35, check);
		assert_int_equal(keys_parse(key, KEYS_LEN), TG_OK);
	}
	assert_int_equal(keys_generate(other, prefix), TG_OK);
	assert_string_not_equal(key, other);
}

static void test_every_single_char_mutation_fails(void **state)
{
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	int pos, c, orig, tried = 0;

	(void)state;
	keys_generate(key, prefix);
	for (pos = 0; pos < KEYS_LEN; pos++) {
		orig = (unsigned char)key[pos];
		for (c = 0; c < 256; c++) {
			if (c == orig)
				continue;
			key[pos] = (char)c;
			assert_int_equal(keys_parse(key, KEYS_LEN), TG_EINVAL);
			tried++;
		}
		key[pos] = (char)orig;
	}
	assert_int_equal(tried, KEYS_LEN * 255);
	assert_int_equal(keys_parse(key, KEYS_LEN), TG_OK);
}

static void test_parse_rejects_shapes(void **state)
{
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1], buf[64], check[7];
	char *exact;

	(void)state;
	keys_generate(key, prefix);
	/* length */
	assert_int_equal(keys_parse(key, KEYS_LEN - 1), TG_EINVAL);
	assert_int_equal(keys_parse(key, 0), TG_EINVAL);
	assert_int_equal(keys_parse(NULL, 0), TG_EINVAL);
	assert_int_equal(keys_parse(NULL, KEYS_LEN), TG_EINVAL);
	snprintf(buf, sizeof(buf), "%sA", key);
	assert_int_equal(keys_parse(buf, KEYS_LEN + 1), TG_EINVAL);
	assert_int_equal(keys_parse("", 0), TG_EINVAL);
	/* prefix, even with a checksum that matches the wrong prefix */
	memcpy(buf, key, KEYS_LEN + 1);
	memcpy(buf, "sk_", 3);
	base62_u32(keys_crc32(buf, 35), check);
	memcpy(buf + 35, check, 6);
	assert_int_equal(keys_parse(buf, KEYS_LEN), TG_EINVAL);
	memcpy(buf, "TG_", 3);
	base62_u32(keys_crc32(buf, 35), check);
	memcpy(buf + 35, check, 6);
	assert_int_equal(keys_parse(buf, KEYS_LEN), TG_EINVAL);
	/* alphabet, with a checksum recomputed over the bad character */
	memcpy(buf, key, KEYS_LEN + 1);
	buf[10] = '-';
	base62_u32(keys_crc32(buf, 35), check);
	memcpy(buf + 35, check, 6);
	assert_int_equal(keys_parse(buf, KEYS_LEN), TG_EINVAL);
	/* checksum: swap two differing random characters */
	memcpy(buf, key, KEYS_LEN + 1);
	buf[3] = 'A';
	buf[4] = 'B';
	base62_u32(keys_crc32(buf, 35), check);
	memcpy(buf + 35, check, 6);
	assert_int_equal(keys_parse(buf, KEYS_LEN), TG_OK);
	buf[3] = 'B';
	buf[4] = 'A';
	assert_int_equal(keys_parse(buf, KEYS_LEN), TG_EINVAL);
	/* exact-size heap copy without NUL: parse must not read past len */
	exact = malloc(KEYS_LEN);
	assert_non_null(exact);
	memcpy(exact, key, KEYS_LEN);
	assert_int_equal(keys_parse(exact, KEYS_LEN), TG_OK);
	free(exact);
	exact = malloc(5);
	assert_non_null(exact);
	memcpy(exact, "tg_ab", 5);
	assert_int_equal(keys_parse(exact, 5), TG_EINVAL);
	free(exact);
}

static void test_keyed_hash(void **state)
{
	unsigned char p1[32], p2[32], h1[32], h1b[32], h2[32], h3[32];
	char key[KEYS_LEN + 1], other[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	char hex[KEYS_HASH_HEX_LEN + 1];
	unsigned char back[32];

	(void)state;
	randombytes_buf(p1, sizeof(p1));
	memcpy(p2, p1, sizeof(p2));
	p2[31] ^= 1;
	keys_generate(key, prefix);
	keys_generate(other, prefix);
	keys_hash(p1, key, KEYS_LEN, h1);
	keys_hash(p1, key, KEYS_LEN, h1b);
	keys_hash(p2, key, KEYS_LEN, h2);
	keys_hash(p1, other, KEYS_LEN, h3);
	assert_true(keys_hash_equal(h1, h1b));
	assert_false(keys_hash_equal(h1, h2));
	assert_false(keys_hash_equal(h1, h3));
	assert_memory_equal(h1, h1b, 32);

	keys_hash_hex(h1, hex);
	assert_int_equal(strlen(hex), 64);
	assert_int_equal(keys_hash_from_hex(hex, 64, back), TG_OK);
	assert_memory_equal(back, h1, 32);
	assert_int_equal(keys_hash_from_hex(hex, 63, back), TG_EINVAL);
	hex[5] = 'g';
	assert_int_equal(keys_hash_from_hex(hex, 64, back), TG_EINVAL);
	assert_int_equal(keys_hash_from_hex(NULL, 64, back), TG_EINVAL);
}

static void test_prefix_of(void **state)
{
	char prefix[KEYS_PREFIX_LEN + 1];

	(void)state;
	keys_prefix_of("tg_ABCDEFGHijklmnopqrstuvwxyz0123456789XYZ", prefix);
	assert_string_equal(prefix, "tg_ABCDEFGH");
}

/* ---- passwords ---- */

static void test_password_hash_verify(void **state)
{
	char h[crypto_pwhash_STRBYTES], h2[crypto_pwhash_STRBYTES];

	(void)state;
	assert_int_equal(password_hash("correct horse battery", h), TG_OK);
	assert_memory_equal(h, "$argon2id$", 10);
	assert_int_equal(password_verify(h, "correct horse battery"), TG_OK);
	assert_int_equal(password_verify(h, "correct horse batterY"), TG_EPERM);
	assert_int_equal(password_verify(h, ""), TG_EPERM);
	/* salted: same password, different string, both verify */
	assert_int_equal(password_hash("correct horse battery", h2), TG_OK);
	assert_string_not_equal(h, h2);
	assert_int_equal(password_verify(h2, "correct horse battery"), TG_OK);
	/* an empty password still hashes and verifies (policy is separate) */
	assert_int_equal(password_hash("", h2), TG_OK);
	assert_int_equal(password_verify(h2, ""), TG_OK);
	assert_int_equal(password_verify(h2, "x"), TG_EPERM);
}

static void test_password_malformed(void **state)
{
	char h[crypto_pwhash_STRBYTES], bad[crypto_pwhash_STRBYTES + 16];

	(void)state;
	assert_int_equal(password_verify(NULL, "pw"), TG_EINVAL);
	assert_int_equal(password_verify("", "pw"), TG_EINVAL);
	assert_int_equal(password_verify("plaintext", "plaintext"), TG_EINVAL);
	assert_int_equal(password_verify("$argon2id$", "pw"), TG_EINVAL);
	assert_int_equal(password_verify("$argon2id$v=19$m=8,t=1,p=1$", "pw"), TG_EINVAL);
	assert_int_equal(password_verify("$2b$12$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL", "pw"),
			 TG_EINVAL);
	assert_int_equal(password_hash("some password", h), TG_OK);
	/* truncated */
	memcpy(bad, h, strlen(h) + 1);
	bad[strlen(bad) / 2] = '\0';
	assert_int_equal(password_verify(bad, "some password"), TG_EINVAL);
	/* argon2i is not accepted */
	snprintf(bad, sizeof(bad), "$argon2i$%s", h + strlen("$argon2id$"));
	assert_int_equal(password_verify(bad, "some password"), TG_EINVAL);
	/* unterminated within crypto_pwhash_STRBYTES */
	memset(bad, 'a', sizeof(bad));
	memcpy(bad, "$argon2id$", 10);
	bad[sizeof(bad) - 1] = '\0';
	assert_int_equal(password_verify(bad, "pw"), TG_EINVAL);
	assert_int_equal(password_verify(h, NULL), TG_EINVAL);
	assert_true(password_needs_rehash("garbage"));
	assert_true(password_needs_rehash(NULL));
}

static void test_password_needs_rehash(void **state)
{
	char h[crypto_pwhash_STRBYTES];

	(void)state;
	assert_int_equal(password_hash("rehash me please", h), TG_OK);
	assert_false(password_needs_rehash(h));
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN + 1, crypto_pwhash_MEMLIMIT_MIN);
	assert_true(password_needs_rehash(h));
	/* still verifies under the old parameters */
	assert_int_equal(password_verify(h, "rehash me please"), TG_OK);
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN * 2);
	assert_true(password_needs_rehash(h));
	/* values below the minimum are clamped, back to the original limits */
	password_set_limits(0, 0);
	assert_false(password_needs_rehash(h));
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
	assert_false(password_needs_rehash(h));
}

static void test_password_policy(void **state)
{
	const char *why = "unset";
	char big[PASSWORD_MAX_BYTES + 2];

	(void)state;
	assert_int_equal(password_check_policy("short", &why), TG_EINVAL);
	assert_string_equal(why, "Password must be at least 12 characters.");
	assert_int_equal(password_check_policy("", &why), TG_EINVAL);
	assert_string_equal(why, "Password must be at least 12 characters.");
	assert_int_equal(password_check_policy("12345678901", &why), TG_EINVAL);
	assert_int_equal(password_check_policy("123456789012", &why), TG_OK);
	assert_null(why);
	assert_int_equal(password_check_policy("123456789012", NULL), TG_OK);
	/* 11 two-byte characters are 22 bytes but only 11 characters */
	assert_int_equal(password_check_policy("ééééééééééé", &why), TG_EINVAL);
	assert_int_equal(password_check_policy("éééééééééééé", &why), TG_OK);

	memset(big, 'a', sizeof(big));
	big[PASSWORD_MAX_BYTES] = '\0';
	assert_int_equal(password_check_policy(big, &why), TG_OK);
	big[PASSWORD_MAX_BYTES] = 'a';
	big[PASSWORD_MAX_BYTES + 1] = '\0';
	assert_int_equal(password_check_policy(big, &why), TG_EINVAL);
	assert_non_null(strstr(why, "at most 1024"));

	assert_int_equal(password_check_policy_len("abcdef\0ghijklmn", 15, &why), TG_EINVAL);
	assert_non_null(strstr(why, "NUL"));
	assert_int_equal(password_check_policy(NULL, &why), TG_EINVAL);
	assert_non_null(why);
}

/* ---- secret file ---- */

struct tmpdir {
	char dir[64];
	char path[96];
};

static void tmp_make(struct tmpdir *t)
{
	strcpy(t->dir, "/tmp/tg-crypto-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/secret", t->dir);
}

static void tmp_clean(struct tmpdir *t)
{
	unlink(t->path);
	assert_int_equal(rmdir(t->dir), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secrets_create_and_reload(void **state)
{
	struct tmpdir t;
	tg_secrets_t a, b;
	struct stat st;
	char err[256];
	static const unsigned char zero[32];

	(void)state;
	tmp_make(&t);
	assert_int_equal(secrets_load_or_create(t.path, &a, err, sizeof(err)), TG_OK);
	assert_int_equal(stat(t.path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_memory_not_equal(a.pepper, zero, 32);
	assert_memory_not_equal(a.box_key, zero, 32);
	assert_memory_not_equal(a.pepper, a.box_key, 32);
	assert_int_equal(secrets_load_or_create(t.path, &b, err, sizeof(err)), TG_OK);
	assert_memory_equal(a.pepper, b.pepper, 32);
	assert_memory_equal(a.box_key, b.box_key, sizeof(a.box_key));
	secrets_wipe(&b);
	assert_memory_equal(b.pepper, zero, 32);
	/* err may be NULL */
	assert_int_equal(secrets_load_or_create(t.path, &b, NULL, 0), TG_OK);
	assert_memory_equal(a.pepper, b.pepper, 32);
	tmp_clean(&t);
}

static void test_secrets_created_file_format(void **state)
{
	struct tmpdir t;
	tg_secrets_t a;
	char err[256], text[512], hex[65];
	FILE *f;
	size_t n;

	(void)state;
	tmp_make(&t);
	assert_int_equal(secrets_load_or_create(t.path, &a, err, sizeof(err)), TG_OK);
	f = fopen(t.path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_memory_equal(text, "tollgate-secret-v1\npepper=", 26);
	sodium_bin2hex(hex, sizeof(hex), a.pepper, 32);
	assert_non_null(strstr(text, hex));
	sodium_bin2hex(hex, sizeof(hex), a.box_key, 32);
	assert_non_null(strstr(text, hex));
	tmp_clean(&t);
}

static void test_secrets_refuses_open_mode(void **state)
{
	struct tmpdir t;
	tg_secrets_t a, b;
	char err[512], want[512];

	(void)state;
	tmp_make(&t);
	assert_int_equal(secrets_load_or_create(t.path, &a, err, sizeof(err)), TG_OK);
	assert_int_equal(chmod(t.path, 0644), 0);
	assert_int_equal(secrets_load_or_create(t.path, &b, err, sizeof(err)), TG_EPERM);
	snprintf(want, sizeof(want),
		 "secret file %s is readable by group or others (mode 0644); run chmod 600 %s",
		 t.path, t.path);
	assert_string_equal(err, want);
	assert_int_equal(chmod(t.path, 0640), 0);
	assert_int_equal(secrets_load_or_create(t.path, &b, err, sizeof(err)), TG_EPERM);
	assert_non_null(strstr(err, "0640"));
	assert_int_equal(chmod(t.path, 0602), 0);
	assert_int_equal(secrets_load_or_create(t.path, &b, err, sizeof(err)), TG_EPERM);
	/* owner-only modes are fine */
	assert_int_equal(chmod(t.path, 0400), 0);
	assert_int_equal(secrets_load_or_create(t.path, &b, err, sizeof(err)), TG_OK);
	assert_memory_equal(a.pepper, b.pepper, 32);
	tmp_clean(&t);
}

static void expect_malformed(const char *text)
{
	struct tmpdir t;
	tg_secrets_t s;
	char err[512];

	tmp_make(&t);
	write_file(t.path, text, 0600);
	memset(&s, 0x5a, sizeof(s));
	err[0] = '\0';
	assert_int_equal(secrets_load_or_create(t.path, &s, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "malformed"));
	assert_non_null(strstr(err, t.path));
	/* never echo file contents (the hex below) */
	assert_null(strstr(err, "00112233"));
	/* *out untouched on error */
	assert_int_equal(s.pepper[0], 0x5a);
	tmp_clean(&t);
}

#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static void test_secrets_refuses_garbage(void **state)
{
	struct tmpdir t;
	tg_secrets_t s;
	char err[512];

	(void)state;
	expect_malformed("hello world\n");
	expect_malformed("");
	expect_malformed("tollgate-secret-v1\n");
	expect_malformed("tollgate-secret-v1\npepper=" HEX_A "\n");
	expect_malformed("tollgate-secret-v1\nbox=" HEX_B "\n");
	expect_malformed("tollgate-secret-v1\npepper=" HEX_A "0\nbox=" HEX_B "\n");
	expect_malformed("tollgate-secret-v1\npepper=" HEX_A "\nbox=zz" HEX_B "\n");
	expect_malformed("tollgate-secret-v1\npepper=" HEX_A "\npepper=" HEX_A "\nbox=" HEX_B "\n");
	expect_malformed("tollgate-secret-v1\npepper=" HEX_A "\nbox=" HEX_B "\nextra=1\n");
	expect_malformed("tollgate-secret-v2\npepper=" HEX_A "\nbox=" HEX_B "\n");

	/* well-formed by hand, including CRLF line ends: accepted */
	tmp_make(&t);
	write_file(t.path, "tollgate-secret-v1\r\npepper=" HEX_A "\r\nbox=" HEX_B "\r\n", 0600);
	assert_int_equal(secrets_load_or_create(t.path, &s, err, sizeof(err)), TG_OK);
	assert_int_equal(s.pepper[1], 0x11);
	assert_int_equal(s.box_key[0], 0xff);
	tmp_clean(&t);

	/* a directory is not a secret file */
	tmp_make(&t);
	assert_int_equal(mkdir(t.path, 0700), 0);
	assert_int_equal(secrets_load_or_create(t.path, &s, err, sizeof(err)), TG_EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(t.path), 0);
	tmp_clean(&t);
}

static void test_secrets_io_errors(void **state)
{
	struct tmpdir t;
	tg_secrets_t s;
	char err[512], path[160];

	(void)state;
	tmp_make(&t);
	/* parent directory missing: cannot create */
	snprintf(path, sizeof(path), "%s/missing/secret", t.dir);
	assert_int_equal(secrets_load_or_create(path, &s, err, sizeof(err)), TG_EIO);
	assert_non_null(strstr(err, "cannot create secret file"));
	/* unreadable (only meaningful when not running with root's override) */
	if (geteuid() != 0) {
		write_file(t.path, "tollgate-secret-v1\n", 0000);
		assert_int_equal(secrets_load_or_create(t.path, &s, err, sizeof(err)), TG_EIO);
		assert_non_null(strstr(err, "cannot open secret file"));
	}
	assert_int_equal(secrets_load_or_create(NULL, &s, err, sizeof(err)), TG_EINVAL);
	assert_int_equal(secrets_load_or_create("", &s, err, sizeof(err)), TG_EINVAL);
	tmp_clean(&t);
}

static void make_secrets(tg_secrets_t *s)
{
	randombytes_buf(s->pepper, sizeof(s->pepper));
	randombytes_buf(s->box_key, sizeof(s->box_key));
}

static void test_seal_open_roundtrip(void **state)
{
	tg_secrets_t s;
	const char *msg = "sk-upstream-provider-key-1234567890";
	char *sealed = NULL, *sealed2 = NULL, *plain = NULL;
	size_t n = 0, i;
	unsigned char bin[300];

	(void)state;
	make_secrets(&s);
	assert_int_equal(secrets_seal(&s, msg, strlen(msg), &sealed), TG_OK);
	assert_memory_equal(sealed, "v1:", 3);
	for (i = 3; sealed[i]; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_",
				       sealed[i]));
	assert_null(strstr(sealed, msg));
	assert_int_equal(secrets_open(&s, sealed, &plain, &n), TG_OK);
	assert_int_equal(n, strlen(msg));
	assert_string_equal(plain, msg);
	secrets_plain_free(plain, n);
	/* random nonce: sealing twice differs */
	assert_int_equal(secrets_seal(&s, msg, strlen(msg), &sealed2), TG_OK);
	assert_string_not_equal(sealed, sealed2);
	free(sealed2);
	free(sealed);

	/* empty and binary payloads */
	assert_int_equal(secrets_seal(&s, NULL, 0, &sealed), TG_OK);
	assert_int_equal(secrets_open(&s, sealed, &plain, &n), TG_OK);
	assert_int_equal(n, 0);
	assert_string_equal(plain, "");
	secrets_plain_free(plain, n);
	free(sealed);
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	assert_int_equal(secrets_seal(&s, bin, sizeof(bin), &sealed), TG_OK);
	assert_int_equal(secrets_open(&s, sealed, &plain, &n), TG_OK);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(plain, bin, sizeof(bin));
	secrets_plain_free(plain, n);
	free(sealed);

	assert_int_equal(secrets_seal(&s, NULL, 1, &sealed), TG_EINVAL);
	assert_int_equal(secrets_seal(&s, msg, SECRETS_MAX_PLAIN + 1, &sealed), TG_ETOOBIG);
	secrets_plain_free(NULL, 0);
}

static void test_open_rejects_tampering(void **state)
{
	tg_secrets_t s, other;
	const char *msg = "provider secret";
	char *sealed = NULL, *copy, *plain = (char *)"untouched";
	size_t n = 12345, i, len;
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	(void)state;
	make_secrets(&s);
	make_secrets(&other);
	assert_int_equal(secrets_seal(&s, msg, strlen(msg), &sealed), TG_OK);
	len = strlen(sealed);
	copy = malloc(len + 1);
	assert_non_null(copy);
	/* every position, replaced by another base64url character */
	for (i = 3; i < len; i++) {
		memcpy(copy, sealed, len + 1);
		copy[i] = copy[i] == b64[i % 64] ? b64[(i + 1) % 64] : b64[i % 64];
		assert_int_equal(secrets_open(&s, copy, &plain, &n), TG_EINVAL);
	}
	/* a flipped bit */
	memcpy(copy, sealed, len + 1);
	copy[len / 2] ^= 1;
	assert_int_equal(secrets_open(&s, copy, &plain, &n), TG_EINVAL);
	/* truncated, extended, wrong tag, wrong key, garbage */
	memcpy(copy, sealed, len + 1);
	copy[len - 1] = '\0';
	assert_int_equal(secrets_open(&s, copy, &plain, &n), TG_EINVAL);
	memcpy(copy, sealed, len + 1);
	copy[1] = '2';
	assert_int_equal(secrets_open(&s, copy, &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&other, sealed, &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, "v1:", &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, "v1:AAAA", &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, "v1:!!!!", &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, "", &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, NULL, &plain, &n), TG_EINVAL);
	assert_int_equal(secrets_open(&s, msg, &plain, &n), TG_EINVAL);
	/* outputs untouched on failure */
	assert_string_equal(plain, "untouched");
	assert_int_equal(n, 12345);
	/* the original still opens */
	assert_int_equal(secrets_open(&s, sealed, &plain, &n), TG_OK);
	assert_string_equal(plain, msg);
	secrets_plain_free(plain, n);
	free(copy);
	free(sealed);
}

/* ---- tokens ---- */

static void test_tokens_random(void **state)
{
	char a[TOKENS_LEN + 1], b[TOKENS_LEN + 1], small[TOKENS_LEN];
	size_t i;

	(void)state;
	assert_int_equal(tokens_random(a, sizeof(a)), TG_OK);
	assert_int_equal(tokens_random(b, sizeof(b)), TG_OK);
	assert_int_equal(strlen(a), 43);
	assert_int_equal(strlen(b), 43);
	assert_string_not_equal(a, b);
	for (i = 0; i < TOKENS_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_",
				       a[i]));
	memset(small, 'x', sizeof(small));
	assert_int_equal(tokens_random(small, sizeof(small)), TG_ETOOBIG);
	assert_int_equal(small[0], 'x');
	assert_int_equal(tokens_random(NULL, 64), TG_ETOOBIG);
}

static void test_tokens_hash(void **state)
{
	char a[TOKENS_LEN + 1], b[TOKENS_LEN + 1];
	unsigned char ha[32], ha2[32], hb[32];

	(void)state;
	tokens_random(a, sizeof(a));
	tokens_random(b, sizeof(b));
	tokens_hash(a, TOKENS_LEN, ha);
	tokens_hash(a, TOKENS_LEN, ha2);
	tokens_hash(b, TOKENS_LEN, hb);
	assert_memory_equal(ha, ha2, 32);
	assert_memory_not_equal(ha, hb, 32);
}

static void test_tokens_csrf(void **state)
{
	unsigned char key[32], key2[32], sh[32], sh2[32];
	char tok[TOKENS_LEN + 1], tok2[TOKENS_LEN + 1], bad[TOKENS_LEN + 2];

	(void)state;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(key2, sizeof(key2));
	randombytes_buf(sh, sizeof(sh));
	memcpy(sh2, sh, sizeof(sh2));
	sh2[0] ^= 0x80;
	tokens_csrf(key, sh, tok);
	assert_int_equal(strlen(tok), 43);
	tokens_csrf(key, sh, tok2);
	assert_string_equal(tok, tok2); /* deterministic */
	assert_true(tokens_csrf_verify(key, sh, tok, strlen(tok)));
	assert_false(tokens_csrf_verify(key, sh2, tok, strlen(tok)));
	assert_false(tokens_csrf_verify(key2, sh, tok, strlen(tok)));
	assert_false(tokens_csrf_verify(key, sh, tok, TOKENS_LEN - 1));
	assert_false(tokens_csrf_verify(key, sh, "", 0));
	assert_false(tokens_csrf_verify(key, sh, NULL, 0));
	assert_false(tokens_csrf_verify(key, sh, NULL, TOKENS_LEN));
	snprintf(bad, sizeof(bad), "%sA", tok);
	assert_false(tokens_csrf_verify(key, sh, bad, TOKENS_LEN + 1));
	memcpy(bad, tok, sizeof(tok));
	bad[TOKENS_LEN - 1] = bad[TOKENS_LEN - 1] == 'A' ? 'B' : 'A';
	assert_false(tokens_csrf_verify(key, sh, bad, TOKENS_LEN));
	memset(bad, 'A', TOKENS_LEN);
	assert_false(tokens_csrf_verify(key, sh, bad, TOKENS_LEN));
	tokens_csrf(key, sh2, tok2);
	assert_string_not_equal(tok, tok2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32_vectors),
		cmocka_unit_test(test_generate_parse_many),
		cmocka_unit_test(test_every_single_char_mutation_fails),
		cmocka_unit_test(test_parse_rejects_shapes),
		cmocka_unit_test(test_keyed_hash),
		cmocka_unit_test(test_prefix_of),
		cmocka_unit_test(test_password_hash_verify),
		cmocka_unit_test(test_password_malformed),
		cmocka_unit_test(test_password_needs_rehash),
		cmocka_unit_test(test_password_policy),
		cmocka_unit_test(test_secrets_create_and_reload),
		cmocka_unit_test(test_secrets_created_file_format),
		cmocka_unit_test(test_secrets_refuses_open_mode),
		cmocka_unit_test(test_secrets_refuses_garbage),
		cmocka_unit_test(test_secrets_io_errors),
		cmocka_unit_test(test_seal_open_roundtrip),
		cmocka_unit_test(test_open_rejects_tampering),
		cmocka_unit_test(test_tokens_random),
		cmocka_unit_test(test_tokens_hash),
		cmocka_unit_test(test_tokens_csrf),
	};
	return cmocka_run_group_tests_name("crypto", tests, setup, NULL);
}
