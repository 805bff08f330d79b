/* Unit tests for API keys: create and authenticate, malformed keys, the
 * lookup cache and its invalidation, revoke, rotate with grace, expiry,
 * limits validation, allowed models and spend periods, against a fresh
 * SQLite file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "apikeys/apikeys.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "identity/identity.h"
#include "store/db.h"
#include "store/migrate.h"

static char dbdir[64];
static unsigned char test_pepper[KEYS_PEPPER_LEN];
static int64_t org_id, other_org_id, user_id;

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	char path[128], err[256], why[160];
	const char *uwhy = NULL;
	int applied = 0;

	(void)state;
	if (crypto_init() != TG_OK)
		return -1;
	snprintf(dbdir, sizeof(dbdir), "/tmp/tg-unit-XXXXXX");
	if (!mkdtemp(dbdir))
		return -1;
	snprintf(path, sizeof(path), "%s/t.db", dbdir);
	if (db_configure(path, 0, 1000) || migrate_run(&applied, err, sizeof(err)))
		return -1;
	if (user_create("owner@example.com", "Owner", "a-long-enough-password", 0, 0, &user_id,
			&uwhy))
		return -1;
	if (org_create("Acme", &org_id, why, sizeof(why)) ||
	    org_create("Globex", &other_org_id, why, sizeof(why)))
		return -1;
	randombytes_buf(test_pepper, sizeof(test_pepper));
	apikeys_init(test_pepper);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	db_close_thread();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dbdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Each test starts on the wall clock with an empty cache. */
static int reset(void **state)
{
	(void)state;
	apikeys_set_clock(NULL);
	apikey_cache_invalidate(0);
	return 0;
}

static const struct apikey_limits no_limits = { 0, 0, 0, PERIOD_NONE, 0, NULL };

static int64_t make_key(const char *name, const struct apikey_limits *lim, char key[KEYS_LEN + 1])
{
	const char *why = NULL;
	int64_t id = 0;

	assert_int_equal(apikey_create(org_id, user_id, name, lim ? lim : &no_limits, key, &id,
				       &why),
			 TG_OK);
	assert_true(id > 0);
	return id;
}

static int auth(const char *key, struct apikey *out)
{
	return apikey_authenticate(key, strlen(key), out);
}

static void exec_sql(const char *sql)
{
	assert_int_equal(db_exec(sql), TG_OK);
}

/* ---------------------------------------------------------------- tests */

static void test_create_authenticate_round_trip(void **state)
{
	struct apikey_limits lim = { 60, 100000, 10000000, PERIOD_MONTHLY, 0, "gpt-4o, llama3" };
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	unsigned char h[KEYS_HASH_LEN];
	struct apikey a, b, g;
	tg_stmt *st;
	int64_t id;

	(void)state;
	id = make_key("production backend", &lim, key);
	assert_int_equal(strlen(key), KEYS_LEN);
	assert_int_equal(keys_parse(key, KEYS_LEN), TG_OK);
	keys_prefix_of(key, prefix);

	assert_int_equal(auth(key, &a), TG_OK); /* from the database */
	assert_int_equal(auth(key, &b), TG_OK); /* from the cache */
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(apikey_get(id, &g), TG_OK);
	assert_memory_equal(&a, &g, sizeof(a));
	assert_int_equal(a.id, id);
	assert_int_equal(a.org_id, org_id);
	assert_int_equal(a.created_by, user_id);
	assert_string_equal(a.name, "production backend");
	assert_string_equal(a.prefix, prefix);
	assert_int_equal(a.rpm, 60);
	assert_int_equal(a.tpm, 100000);
	assert_int_equal(a.spend_limit, 10000000);
	assert_int_equal(a.period, PERIOD_MONTHLY);
	assert_string_equal(a.allowed_models, "gpt-4o,llama3");
	assert_int_equal(a.expires_at, 0);
	assert_int_equal(a.revoked_at, 0);
	assert_int_equal(a.rotated_from, 0);
	assert_int_equal(apikey_state_of(&a, time_now()), APIKEY_ACTIVE);

	/* At rest: the peppered hash only, never the key. */
	keys_hash(test_pepper, key, KEYS_LEN, h);
	st = db_stmt("SELECT key_hash, prefix FROM api_keys WHERE id = :id");
	assert_non_null(st);
	assert_int_equal(db_bind_int64(st, ":id", id), TG_OK);
	assert_int_equal(db_step(st), DB_ROW);
	assert_int_equal(db_col_bytes(st, 0), KEYS_HASH_LEN);
	assert_memory_equal(db_col_blob(st, 0), h, KEYS_HASH_LEN);
	assert_string_equal(db_col_text(st, 1), prefix);
	db_done(st);

	/* Without the NUL: the length given is what counts. */
	{
		char longer[KEYS_LEN + 8];

		snprintf(longer, sizeof(longer), "%s   ", key);
		assert_int_equal(apikey_authenticate(longer, KEYS_LEN, &a), TG_OK);
		assert_int_equal(apikey_authenticate(longer, KEYS_LEN + 1, &a), TG_EINVAL);
	}
}

static void test_malformed_and_unknown(void **state)
{
	char key[KEYS_LEN + 1], bad[KEYS_LEN + 1], fresh[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	struct apikey k;

	(void)state;
	make_key("checksums", NULL, key);
	memcpy(bad, key, sizeof(bad));
	bad[10] = bad[10] == 'a' ? 'b' : 'a'; /* a random character: checksum fails */
	memset(&k, 0x5a, sizeof(k));

	/* With the table gone, any lookup would be a database error: TG_EINVAL
	 * proves the malformed ones never reach it. */
	exec_sql("ALTER TABLE api_keys RENAME TO api_keys_away");
	assert_int_equal(auth(bad, &k), TG_EINVAL);
	assert_int_equal(auth("", &k), TG_EINVAL);
	assert_int_equal(auth("tg_", &k), TG_EINVAL);
	assert_int_equal(auth("sk-abcdefghijklmnopqrstuvwxyz0123456789abc", &k), TG_EINVAL);
	assert_int_equal(apikey_authenticate(NULL, 0, &k), TG_EINVAL);
	bad[10] = key[10];
	bad[0] = 'T';
	assert_int_equal(auth(bad, &k), TG_EINVAL);
	keys_generate(fresh, prefix);
	assert_int_equal(auth(fresh, &k), TG_EDB);
	exec_sql("ALTER TABLE api_keys_away RENAME TO api_keys");
	assert_int_equal(k.id, 0x5a5a5a5a5a5a5a5aLL); /* untouched on failure */

	/* Well-formed but unknown, twice (the second from the cache). */
	assert_int_equal(auth(fresh, &k), TG_ENOTFOUND);
	assert_int_equal(auth(fresh, &k), TG_ENOTFOUND);
	assert_int_equal(auth(key, &k), TG_OK);
}

static void test_revoke_fails_next_request_even_when_cached(void **state)
{
	char key[KEYS_LEN + 1];
	struct apikey k;
	int64_t id;

	(void)state;
	id = make_key("to revoke", NULL, key);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(auth(key, &k), TG_OK); /* cached now */
	assert_int_equal(apikey_revoke(id), TG_OK);
	memset(&k, 0, sizeof(k));
	assert_int_equal(auth(key, &k), TG_EPERM);
	assert_int_equal(k.id, id); /* filled, so the caller can say why */
	assert_int_equal(apikey_state_of(&k, time_now()), APIKEY_REVOKED);
	assert_int_equal(apikey_revoke(id), TG_ECONFLICT);
	assert_int_equal(apikey_revoke(999999), TG_ENOTFOUND);
}

static void test_other_process_change_seen_within_ttl(void **state)
{
	char key[KEYS_LEN + 1];
	struct apikey k;
	tg_stmt *st;
	int64_t id;

	(void)state;
	fake_now = time_now();
	apikeys_set_clock(fake_clock);
	id = make_key("cli revoked", NULL, key);
	assert_int_equal(auth(key, &k), TG_OK);
	/* Revoked behind the module's back, as the CLI of another process does. */
	st = db_stmt("UPDATE api_keys SET revoked_at = :t WHERE id = :id");
	assert_int_equal(db_bind_int64(st, ":t", fake_now), TG_OK);
	assert_int_equal(db_bind_int64(st, ":id", id), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	fake_now += 1;
	assert_int_equal(auth(key, &k), TG_OK); /* still the cached record */
	fake_now += APIKEY_CACHE_TTL_S;
	assert_int_equal(auth(key, &k), TG_EPERM);
}

/* Another process on the same database (as the CLI next to a server):
 * its revocation is seen on this process's very next lookup. */
static int64_t child_revoke_id;

static void *child_revoke(void *arg)
{
	(void)arg;
	/* A new thread: a connection of its own, not the parent's. */
	apikeys_init(test_pepper);
	if (apikey_revoke(child_revoke_id) != TG_OK)
		_exit(3);
	db_close_thread();
	return NULL;
}

static void test_other_process_revoke_seen_at_once(void **state)
{
	char key[KEYS_LEN + 1], path[160];
	struct apikey k;
	struct stat st;
	pid_t pid;
	int status = -1;

	(void)state;
	snprintf(path, sizeof(path), "%s/t.db-keys", dbdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	child_revoke_id = make_key("revoked elsewhere", NULL, key);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(auth(key, &k), TG_OK); /* cached */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, child_revoke, NULL) || pthread_join(t, NULL))
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(auth(key, &k), TG_EPERM);
}

static void test_rotate_with_grace(void **state)
{
	struct apikey_limits lim = { 30, 0, 5000000, PERIOD_WEEKLY, 0, "m1" };
	char oldkey[KEYS_LEN + 1], newkey[KEYS_LEN + 1], third[KEYS_LEN + 1];
	const char *why = NULL;
	struct apikey o, n;
	tg_stmt *st;
	int64_t old_id, new_id = 0, id3 = 0, now = time_now();

	(void)state;
	old_id = make_key("rotating", &lim, oldkey);
	assert_int_equal(auth(oldkey, &o), TG_OK);
	assert_int_equal(apikey_rotate(old_id, -1, newkey, &new_id, &why), TG_EINVAL);
	assert_int_equal(apikey_rotate(old_id, APIKEY_GRACE_MAX + 1, newkey, &new_id, &why),
			 TG_EINVAL);
	assert_non_null(why);
	assert_int_equal(apikey_rotate(old_id, 3600, newkey, &new_id, &why), TG_OK);
	assert_true(new_id > old_id);
	assert_string_not_equal(oldkey, newkey);

	/* Both work during the grace period. */
	assert_int_equal(auth(oldkey, &o), TG_OK);
	assert_int_equal(apikey_state_of(&o, now), APIKEY_ROTATING);
	assert_true(o.revoked_at >= now + 3600 && o.revoked_at <= time_now() + 3600);
	assert_int_equal(auth(newkey, &n), TG_OK);
	assert_int_equal(n.rotated_from, old_id);
	assert_int_equal(n.org_id, o.org_id);
	assert_int_equal(n.created_by, o.created_by);
	assert_string_equal(n.name, "rotating");
	assert_int_equal(n.rpm, 30);
	assert_int_equal(n.spend_limit, 5000000);
	assert_int_equal(n.period, PERIOD_WEEKLY);
	assert_string_equal(n.allowed_models, "m1");
	assert_int_equal(n.revoked_at, 0);
	assert_string_not_equal(n.prefix, o.prefix);

	/* A key in its grace period cannot be rotated again. */
	why = NULL;
	assert_int_equal(apikey_rotate(old_id, 0, third, &id3, &why), TG_ECONFLICT);
	assert_non_null(why);

	/* Move the end of the grace into the past (test-only SQL): old fails. */
	st = db_stmt("UPDATE api_keys SET revoked_at = :t WHERE id = :id");
	assert_int_equal(db_bind_int64(st, ":t", now - 1), TG_OK);
	assert_int_equal(db_bind_int64(st, ":id", old_id), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	apikey_cache_invalidate(old_id);
	assert_int_equal(auth(oldkey, &o), TG_EPERM);
	assert_int_equal(auth(newkey, &n), TG_OK);
	why = NULL;
	assert_int_equal(apikey_rotate(old_id, 0, third, &id3, &why), TG_ECONFLICT);

	/* The grace also ends by the clock alone, cached or not. */
	fake_now = time_now();
	apikeys_set_clock(fake_clock);
	assert_int_equal(apikey_rotate(new_id, 60, third, &id3, &why), TG_OK);
	assert_int_equal(auth(newkey, &n), TG_OK);
	fake_now += 59;
	assert_int_equal(auth(newkey, &n), TG_OK);
	fake_now += 1;
	assert_int_equal(auth(newkey, &n), TG_EPERM);
	assert_int_equal(auth(third, &n), TG_OK);
	apikeys_set_clock(NULL);

	/* No grace: the old key fails at once, the new one works. */
	assert_int_equal(apikey_rotate(id3, 0, newkey, &new_id, &why), TG_OK);
	assert_int_equal(auth(third, &n), TG_EPERM);
	assert_int_equal(auth(newkey, &n), TG_OK);
	assert_int_equal(n.rotated_from, id3);
	assert_int_equal(apikey_rotate(987654, 0, third, &id3, &why), TG_ENOTFOUND);
}

static void test_expiry(void **state)
{
	struct apikey_limits lim = no_limits;
	char key[KEYS_LEN + 1], other[KEYS_LEN + 1];
	const char *why = NULL;
	struct apikey k;
	int64_t id, id2;

	(void)state;
	fake_now = 1795392000; /* 2026-11-23 00:00:00 UTC */
	apikeys_set_clock(fake_clock);
	lim.expires_at = fake_now;
	assert_int_equal(apikey_create(org_id, user_id, "expired", &lim, key, &id, &why),
			 TG_EINVAL);
	assert_string_equal(why, "The expiry date must be in the future.");
	lim.expires_at = fake_now + 100;
	id = make_key("expiring", &lim, key);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(k.expires_at, fake_now + 100);
	fake_now += 99;
	assert_int_equal(auth(key, &k), TG_OK);
	fake_now += 1;
	assert_int_equal(auth(key, &k), TG_EPERM); /* even from the cache */
	assert_int_equal(apikey_state_of(&k, fake_now), APIKEY_EXPIRED);
	why = NULL;
	assert_int_equal(apikey_rotate(id, 0, other, &id2, &why), TG_ECONFLICT);
	assert_string_equal(why, "This key has expired; create a new key instead.");

	/* Limits of an expired key may change while its expiry stays, or moves
	 * to the future; another past date is refused. */
	lim.rpm = 5;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_OK);
	lim.expires_at = fake_now - 5;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_EINVAL);
	lim.expires_at = fake_now + 3600;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_OK);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(k.rpm, 5);
	lim.expires_at = 0;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_OK);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(k.expires_at, 0);
}

static void test_update_limits_invalidates_cache(void **state)
{
	struct apikey_limits lim = { 10, 0, 0, PERIOD_NONE, 0, NULL };
	char key[KEYS_LEN + 1];
	const char *why = NULL;
	struct apikey k;
	int64_t id;

	(void)state;
	id = make_key("limited", &lim, key);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(k.rpm, 10);
	lim.rpm = 20;
	lim.allowed_models = "only-this";
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_OK);
	assert_int_equal(auth(key, &k), TG_OK);
	assert_int_equal(k.rpm, 20);
	assert_false(apikey_model_allowed(&k, "gpt-4o"));
	assert_true(apikey_model_allowed(&k, "only-this"));
	lim.rpm = -1;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_EINVAL);
	assert_int_equal(apikey_revoke(id), TG_OK);
	lim.rpm = 1;
	assert_int_equal(apikey_update_limits(id, &lim, &why), TG_ECONFLICT);
	assert_int_equal(apikey_update_limits(999999, &lim, &why), TG_ENOTFOUND);
}

static void test_model_allowed_and_normalization(void **state)
{
	struct apikey_limits lim = no_limits;
	char key[KEYS_LEN + 1];
	const char *why = NULL;
	struct apikey k;
	int64_t id;

	(void)state;
	memset(&k, 0, sizeof(k));
	assert_true(apikey_model_allowed(&k, "anything"));
	assert_false(apikey_model_allowed(&k, ""));
	assert_false(apikey_model_allowed(&k, NULL));
	snprintf(k.allowed_models, sizeof(k.allowed_models), "gpt-4o,llama3:8b");
	assert_true(apikey_model_allowed(&k, "gpt-4o"));
	assert_true(apikey_model_allowed(&k, "llama3:8b"));
	assert_false(apikey_model_allowed(&k, "gpt-4"));
	assert_false(apikey_model_allowed(&k, "gpt-4o-mini"));
	assert_false(apikey_model_allowed(&k, "GPT-4O"));
	assert_false(apikey_model_allowed(&k, "gpt-4o,llama3:8b"));

	lim.allowed_models = " gpt-4o , llama3:8b,,openai/gpt-4o-mini ,gpt-4o,\n";
	id = make_key("models", &lim, key);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_string_equal(k.allowed_models, "gpt-4o,llama3:8b,openai/gpt-4o-mini");
	lim.allowed_models = " , ,";
	id = make_key("models empty", &lim, key);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_string_equal(k.allowed_models, "");

	lim.allowed_models = "gpt 4o";
	assert_int_equal(apikey_create(org_id, user_id, "bad", &lim, key, &id, &why), TG_EINVAL);
	assert_non_null(strstr(why, "letters, digits"));
	lim.allowed_models = "gpt-4o;drop";
	assert_int_equal(apikey_create(org_id, user_id, "bad", &lim, key, &id, &why), TG_EINVAL);
	{
		char many[APIKEY_MODELS_MAX * 2];
		size_t i, len = 0;

		for (i = 0; len + 8 < sizeof(many); i++)
			len += (size_t)snprintf(many + len, sizeof(many) - len, "m%05zu,", i);
		lim.allowed_models = many;
		assert_int_equal(apikey_create(org_id, user_id, "bad", &lim, key, &id, &why),
				 TG_EINVAL);
		assert_string_equal(why, "The list of allowed models is too long.");
	}
}

static void test_limits_validation(void **state)
{
	struct apikey_limits lim = no_limits;
	char key[KEYS_LEN + 1], name[APIKEY_NAME_MAX * 4 + 8];
	const char *why;
	struct apikey k;
	int64_t id;
	size_t i;

#define EXPECT(nm, l, msg)                                                                  \
	do {                                                                                \
		why = NULL;                                                                 \
		assert_int_equal(apikey_create(org_id, user_id, (nm), (l), key, &id, &why), \
				 TG_EINVAL);                                                \
		assert_non_null(why);                                                       \
		assert_string_equal(why, (msg));                                            \
	} while (0)

	(void)state;
	EXPECT("", &lim, "Give the key a name.");
	EXPECT(NULL, &lim, "Give the key a name.");
	EXPECT("tab\there", &lim, "The name must not contain control characters.");
	EXPECT(" padded", &lim, "The name must not start or end with a space.");
	memset(name, 'x', 101);
	name[101] = '\0';
	EXPECT(name, &lim, "The name is too long (at most 100 characters).");
	name[100] = '\0';
	id = make_key(name, &lim, key); /* exactly 100 is fine */
	for (i = 0; i < 100; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2); /* 100 x "é": 200 bytes */
	name[200] = '\0';
	id = make_key(name, &lim, key);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_string_equal(k.name, name);

	lim.rpm = -1;
	EXPECT("n", &lim, "Requests per minute must be 0 (no limit) or a positive whole number.");
	lim.rpm = 0;
	lim.tpm = -5;
	EXPECT("n", &lim, "Tokens per minute must be 0 (no limit) or a positive whole number.");
	lim.tpm = 0;
	lim.spend_limit = -1;
	EXPECT("n", &lim, "The spend limit must be 0 (no limit) or more.");
	lim.spend_limit = 0;
	lim.period = (enum spend_period)7;
	EXPECT("n", &lim, "Choose a spend period: none, daily, weekly or monthly.");
	lim.period = PERIOD_NONE;
	lim.expires_at = 1;
	EXPECT("n", &lim, "The expiry date must be in the future.");
	lim.expires_at = -3;
	EXPECT("n", &lim, "The expiry date must be in the future.");
	lim.expires_at = 0;

	/* A limit without a period is a total cap; a period without a limit
	 * means nothing and is stored as none. */
	lim.spend_limit = 2500000;
	id = make_key("total cap", &lim, key);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_int_equal(k.spend_limit, 2500000);
	assert_int_equal(k.period, PERIOD_NONE);
	lim.spend_limit = 0;
	lim.period = PERIOD_DAILY;
	id = make_key("no cap", &lim, key);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_int_equal(k.period, PERIOD_NONE);

	/* Unknown org: refused by the database, with a message. */
	why = NULL;
	assert_int_equal(apikey_create(424242, user_id, "n", &no_limits, key, &id, &why),
			 TG_ECONFLICT);
	assert_non_null(why);

	assert_int_equal(apikey_period_parse("none"), PERIOD_NONE);
	assert_int_equal(apikey_period_parse("daily"), PERIOD_DAILY);
	assert_int_equal(apikey_period_parse("weekly"), PERIOD_WEEKLY);
	assert_int_equal(apikey_period_parse("monthly"), PERIOD_MONTHLY);
	assert_int_equal(apikey_period_parse("Monthly"), -1);
	assert_int_equal(apikey_period_parse(""), -1);
	assert_int_equal(apikey_period_parse(NULL), -1);
	assert_string_equal(apikey_period_name(PERIOD_WEEKLY), "weekly");
	assert_string_equal(apikey_period_name(PERIOD_NONE), "none");
#undef EXPECT
}

static int64_t at(const char *s)
{
	int64_t t = 0;

	assert_int_equal(time_parse(s, &t), TG_OK);
	return t;
}

static void test_period_start(void **state)
{
	(void)state;
	/* 2026-11-23 is a Monday. */
	assert_int_equal(apikey_period_start(PERIOD_DAILY, at("2026-11-25 13:45:10")),
			 at("2026-11-25"));
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, at("2026-11-25 13:45:10")),
			 at("2026-11-23"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2026-11-25 13:45:10")),
			 at("2026-11-01"));
	assert_int_equal(apikey_period_start(PERIOD_NONE, at("2026-11-25 13:45:10")), 0);
	/* Edges: the first and last second of a week, a month, a day. */
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, at("2026-11-23")), at("2026-11-23"));
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, at("2026-11-29 23:59:59")),
			 at("2026-11-23"));
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, at("2026-11-30")), at("2026-11-30"));
	assert_int_equal(apikey_period_start(PERIOD_DAILY, at("2026-11-25 23:59:59")),
			 at("2026-11-25"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2026-11-30 23:59:59")),
			 at("2026-11-01"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2026-12-01")), at("2026-12-01"));
	/* Weeks across a year, months in leap years. */
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, at("2027-01-01 08:00")),
			 at("2026-12-28"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2028-02-29 12:00")),
			 at("2028-02-01"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2028-03-01")), at("2028-03-01"));
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, at("2000-02-29 00:00:01")),
			 at("2000-02-01"));
	/* 1970-01-01 was a Thursday: its week began on Monday 1969-12-29. */
	assert_int_equal(apikey_period_start(PERIOD_WEEKLY, 0), -3 * 86400);
	assert_int_equal(apikey_period_start(PERIOD_MONTHLY, 86399), 0);
	assert_int_equal(apikey_period_start(PERIOD_DAILY, -1), -86400);
}

static void test_find_prefix_and_mark_used(void **state)
{
	char key[KEYS_LEN + 1], key2[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1], part[8];
	struct apikey k;
	tg_stmt *st;
	int64_t id, id2;

	(void)state;
	id = make_key("by prefix", NULL, key);
	keys_prefix_of(key, prefix);
	assert_int_equal(apikey_find_prefix(0, prefix, &k), TG_OK);
	assert_int_equal(k.id, id);
	assert_int_equal(apikey_find_prefix(org_id, prefix, &k), TG_OK);
	assert_int_equal(apikey_find_prefix(other_org_id, prefix, &k), TG_ENOTFOUND);
	assert_int_equal(apikey_find_prefix(0, "tg_", &k), TG_EINVAL);
	assert_int_equal(apikey_find_prefix(0, "xx_abcdef", &k), TG_EINVAL);
	assert_int_equal(apikey_find_prefix(0, key, &k), TG_EINVAL); /* longer than a prefix */
	assert_int_equal(apikey_find_prefix(0, "tg_%", &k), TG_ENOTFOUND); /* no wildcards */

	/* Two keys sharing the first characters: a short prefix is ambiguous. */
	id2 = make_key("twin", NULL, key2);
	st = db_stmt("UPDATE api_keys SET prefix = :p WHERE id = :id");
	memcpy(part, prefix, 6);
	part[6] = '\0';
	{
		char twin[KEYS_PREFIX_LEN + 1];

		memcpy(twin, prefix, 6);
		memcpy(twin + 6, "ZZZZZ", 6);
		assert_int_equal(db_bind_text(st, ":p", twin), TG_OK);
	}
	assert_int_equal(db_bind_int64(st, ":id", id2), TG_OK);
	assert_int_equal(db_exec_stmt(st), TG_OK);
	assert_int_equal(apikey_find_prefix(0, part, &k), TG_ECONFLICT);
	assert_int_equal(apikey_find_prefix(0, prefix, &k), TG_OK);
	assert_int_equal(k.id, id);

	assert_int_equal(apikey_mark_used(id, 1000), TG_OK);
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_int_equal(k.last_used_at, 1000);
	assert_int_equal(apikey_mark_used(id, 900), TG_OK); /* never moves back */
	assert_int_equal(apikey_get(id, &k), TG_OK);
	assert_int_equal(k.last_used_at, 1000);
}

static void test_cache_is_bounded(void **state)
{
	enum { N = APIKEY_CACHE_SETS * APIKEY_CACHE_WAYS + 200 };
	char(*keys)[KEYS_LEN + 1] = calloc(N, KEYS_LEN + 1);
	struct apikey k;
	int64_t first = 0;
	int i, round;

	(void)state;
	assert_non_null(keys);
	assert_int_equal(db_begin(), TG_OK);
	for (i = 0; i < N; i++) {
		int64_t id = make_key("many", NULL, keys[i]);

		if (!first)
			first = id;
	}
	assert_int_equal(db_commit(), TG_OK);
	/* More keys than cache entries: everything still authenticates, and
	 * what was evicted is read again. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < N; i++) {
			assert_int_equal(auth(keys[i], &k), TG_OK);
			assert_int_equal(k.id, first + i);
		}
	}
	assert_int_equal(apikey_revoke(first), TG_OK);
	assert_int_equal(auth(keys[0], &k), TG_EPERM);
	free(keys);
}

/* Threads authenticate while the main thread revokes: every lookup that
 * starts after apikey_revoke returned must fail. */
#define THREADS 4
static char race_key[KEYS_LEN + 1];
static int race_revoked;
static int race_errors;
static int race_ok_after;

static void *race_worker(void *arg)
{
	struct apikey k;
	int i;

	(void)arg;
	for (i = 0; i < 3000; i++) {
		int revoked = __atomic_load_n(&race_revoked, __ATOMIC_ACQUIRE);
		int rc = apikey_authenticate(race_key, KEYS_LEN, &k);

		if (rc != TG_OK && rc != TG_EPERM)
			__atomic_add_fetch(&race_errors, 1, __ATOMIC_RELAXED);
		if (revoked && rc == TG_OK)
			__atomic_add_fetch(&race_ok_after, 1, __ATOMIC_RELAXED);
	}
	db_close_thread();
	return NULL;
}

static void test_concurrent_revoke(void **state)
{
	pthread_t t[THREADS];
	struct apikey k;
	int64_t id;
	int i;

	(void)state;
	id = make_key("raced", NULL, race_key);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_worker, NULL), 0);
	usleep(20000);
	assert_int_equal(apikey_revoke(id), TG_OK);
	__atomic_store_n(&race_revoked, 1, __ATOMIC_RELEASE);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(race_errors, 0);
	assert_int_equal(race_ok_after, 0);
	assert_int_equal(auth(race_key, &k), TG_EPERM);
}

static void test_limits_text(void **state)
{
	struct apikey k;
	char s[256];

	(void)state;
	memset(&k, 0, sizeof(k));
	apikey_limits_text(&k, s, sizeof(s));
	assert_string_equal(s, "rpm none, tpm none, spend none, models all, expires never");
	k.rpm = 60;
	k.spend_limit = 12500000;
	k.period = PERIOD_MONTHLY;
	k.expires_at = at("2026-12-31");
	snprintf(k.allowed_models, sizeof(k.allowed_models), "a,b");
	apikey_limits_text(&k, s, sizeof(s));
	assert_string_equal(
		s, "rpm 60, tpm none, spend 12.50 monthly, models a,b, expires 2026-12-31");
	assert_string_equal(apikey_state_name(APIKEY_ROTATING), "rotating");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_create_authenticate_round_trip, reset),
		cmocka_unit_test_setup(test_malformed_and_unknown, reset),
		cmocka_unit_test_setup(test_revoke_fails_next_request_even_when_cached, reset),
		cmocka_unit_test_setup(test_other_process_change_seen_within_ttl, reset),
		cmocka_unit_test_setup(test_other_process_revoke_seen_at_once, reset),
		cmocka_unit_test_setup(test_rotate_with_grace, reset),
		cmocka_unit_test_setup(test_expiry, reset),
		cmocka_unit_test_setup(test_update_limits_invalidates_cache, reset),
		cmocka_unit_test_setup(test_model_allowed_and_normalization, reset),
		cmocka_unit_test_setup(test_limits_validation, reset),
		cmocka_unit_test_setup(test_period_start, reset),
		cmocka_unit_test_setup(test_find_prefix_and_mark_used, reset),
		cmocka_unit_test_setup(test_cache_is_bounded, reset),
		cmocka_unit_test_setup(test_concurrent_revoke, reset),
		cmocka_unit_test_setup(test_limits_text, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
