/* Unit tests for the store (migrations, statement cache, binds) and the
 * identity module (users, sessions, throttling, memberships, setup tokens),
 * each against a fresh SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/timeutil.h"
#include "crypto/password.h"
#include "identity/identity.h"
#include "store/db.h"
#include "store/migrate.h"

static char dbdir[64];

static int setup_db(void **state)
{
	char path[128], err[256];
	int applied = 0;

	(void)state;
	snprintf(dbdir, sizeof(dbdir), "/tmp/tg-unit-XXXXXX");
	assert_non_null(mkdtemp(dbdir));
	snprintf(path, sizeof(path), "%s/t.db", dbdir);
	assert_int_equal(db_configure(path, 0, 1000), TG_OK);
	assert_int_equal(migrate_run(&applied, err, sizeof(err)), TG_OK);
	assert_int_equal(applied, migrate_latest());
	return 0;
}

static int teardown_db(void **state)
{
	char cmd[128];

	(void)state;
	db_close_thread();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dbdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void exec_sql(const char *sql)
{
	assert_int_equal(db_exec(sql), TG_OK);
}

static void test_migrations_idempotent_and_refuse_newer(void **state)
{
	char err[256];
	int applied = -1;

	(void)state;
	assert_int_equal(migrate_current(), migrate_latest());
	assert_int_equal(migrate_run(&applied, err, sizeof(err)), TG_OK);
	assert_int_equal(applied, 0);
	/* Pragmas are in force on the connection. */
	{
		tg_stmt *st = db_stmt("PRAGMA foreign_keys");

		assert_int_equal(db_step(st), DB_ROW);
		assert_int_equal(db_col_int(st, 0), 1);
		db_done(st);
		st = db_stmt("PRAGMA journal_mode");
		assert_int_equal(db_step(st), DB_ROW);
		assert_string_equal(db_col_text(st, 0), "wal");
		db_done(st);
	}
	exec_sql("INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, "
		 "'0999_future.sql', 0)");
	assert_int_equal(migrate_run(&applied, err, sizeof(err)), TG_ECONFLICT);
	assert_non_null(strstr(err, "newer than this binary"));
}

static void test_statement_cache_and_named_binds(void **state)
{
	static const char sql[] = "SELECT :a + :b";
	tg_stmt *s1, *s2;

	(void)state;
	s1 = db_stmt(sql);
	assert_non_null(s1);
	assert_int_equal(db_bind_int64(s1, ":a", 2), TG_OK);
	assert_int_equal(db_bind_int64(s1, ":b", 3), TG_OK);
	assert_int_equal(db_step(s1), DB_ROW);
	assert_int_equal(db_col_int(s1, 0), 5);
	db_done(s1);
	s2 = db_stmt(sql);
	assert_ptr_equal(s1, s2); /* cached, and handed back reset with bindings cleared */
	assert_int_equal(db_step(s2), DB_ROW);
	assert_true(db_col_is_null(s2, 0));
	db_done(s2);
	/* A misspelt parameter is an error, never a silent NULL. */
	assert_int_equal(db_bind_int64(s2, ":c", 1), TG_EINVAL);
	assert_null(db_stmt("SELECT * FROM no_such_table"));
}

static void test_transactions_roll_back(void **state)
{
	const char *why;
	int64_t id;

	(void)state;
	assert_int_equal(db_begin(), TG_OK);
	assert_int_equal(db_begin(), TG_EDB); /* no nesting */
	assert_int_equal(user_create("tx@example.com", "Tx", "long-enough-password", 0, 0, &id,
				     &why),
			 TG_OK);
	db_rollback();
	assert_int_equal(user_count(), 0);
}

static void test_users_and_passwords(void **state)
{
	struct user u;
	const char *why = NULL;
	int64_t id;

	(void)state;
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
	assert_int_equal(user_create("Ada@Example.com", "Ada", "correct horse battery", 1, 0, &id,
				     &why),
			 TG_OK);
	assert_int_equal(user_create("ada@example.com", "Other", "another long password", 0, 0,
				     NULL, &why),
			 TG_ECONFLICT);
	assert_string_equal(why, "A user with this email already exists.");
	assert_int_equal(user_create("bob@example.com", "Bob", "short", 0, 0, NULL, &why),
			 TG_EINVAL);
	assert_non_null(strstr(why, "at least 12"));
	assert_int_equal(user_create("not-an-email", "X", "long enough password", 0, 0, NULL, &why),
			 TG_EINVAL);
	assert_int_equal(user_create("a@b.c", "bad\001name", "long enough password", 0, 0, NULL,
				     &why),
			 TG_EINVAL);

	assert_int_equal(user_check_password("ADA@example.com", "correct horse battery", &u),
			 TG_OK);
	assert_int_equal(u.id, id);
	assert_true(u.is_admin);
	assert_int_equal(user_check_password("ada@example.com", "wrong password!!", &u), TG_EPERM);
	assert_int_equal(user_check_password("ghost@example.com", "whatever password", &u),
			 TG_EPERM);
	/* The hash at rest is Argon2id, never the password. */
	{
		tg_stmt *st = db_stmt("SELECT password_hash FROM users WHERE id = :id");

		db_bind_int64(st, ":id", id);
		assert_int_equal(db_step(st), DB_ROW);
		assert_non_null(strstr(db_col_text(st, 0), "$argon2id$"));
		assert_null(strstr(db_col_text(st, 0), "correct horse"));
		db_done(st);
	}
	assert_int_equal(user_set_password(id, "a brand new password", &why), TG_OK);
	assert_int_equal(user_check_password("ada@example.com", "a brand new password", &u), TG_OK);
	assert_int_equal(user_set_disabled(id, 1), TG_OK);
	assert_int_equal(user_check_password("ada@example.com", "a brand new password", &u),
			 TG_EPERM);
}

static void test_sessions_expire_and_are_hashed(void **state)
{
	struct session_row row, got;
	char token[44];
	const char *why;
	int64_t uid;

	(void)state;
	assert_int_equal(user_create("s@example.com", "S", "long enough password", 0, 0, &uid,
				     &why),
			 TG_OK);
	assert_int_equal(session_create(uid, 0, 3600, "127.0.0.1", token, &row), TG_OK);
	assert_int_equal(strlen(token), 43);
	assert_int_equal(session_lookup(token, 600, &got), TG_OK);
	assert_int_equal(got.user_id, uid);
	assert_int_equal(got.id, row.id);
	/* Only the hash is stored. */
	{
		tg_stmt *st = db_stmt("SELECT count(*) FROM sessions WHERE token_hash = :h");

		db_bind_text(st, ":h", token);
		assert_int_equal(db_step(st), DB_ROW);
		assert_int_equal(db_col_int(st, 0), 0);
		db_done(st);
	}
	assert_int_equal(session_lookup("x", 600, &got), TG_ENOTFOUND);
	token[0] = token[0] == 'A' ? 'B' : 'A';
	assert_int_equal(session_lookup(token, 600, &got), TG_ENOTFOUND);
	token[0] = 0;

	/* Idle timeout: last seen long ago. */
	assert_int_equal(session_create(uid, 0, 3600, "", token, &row), TG_OK);
	exec_sql("UPDATE sessions SET last_seen_at = last_seen_at - 700");
	assert_int_equal(session_lookup(token, 600, &got), TG_ENOTFOUND);
	/* Expired sessions are deleted, not just refused. */
	exec_sql("UPDATE sessions SET last_seen_at = strftime('%s','now')");
	assert_int_equal(session_lookup(token, 600, &got), TG_ENOTFOUND);

	/* Absolute timeout. */
	assert_int_equal(session_create(uid, 0, 3600, "", token, &row), TG_OK);
	exec_sql("UPDATE sessions SET expires_at = strftime('%s','now') - 1");
	assert_int_equal(session_lookup(token, 600, &got), TG_ENOTFOUND);

	/* Sign out everywhere except one. */
	{
		char t1[44], t2[44];
		struct session_row r1, r2;

		session_create(uid, 0, 3600, "", t1, &r1);
		session_create(uid, 0, 3600, "", t2, &r2);
		assert_int_equal(session_delete_user(uid, r2.id), TG_OK);
		assert_int_equal(session_lookup(t1, 600, &got), TG_ENOTFOUND);
		assert_int_equal(session_lookup(t2, 600, &got), TG_OK);
		/* Disabling a user ends their sessions. */
		assert_int_equal(user_set_disabled(uid, 1), TG_OK);
		assert_int_equal(session_lookup(t2, 600, &got), TG_ENOTFOUND);
	}
}

static void test_throttle_grows_after_five_failures(void **state)
{
	int i;
	int64_t w1, w2;

	(void)state;
	for (i = 0; i < 4; i++)
		throttle_fail("victim@example.com");
	assert_int_equal(throttle_wait("victim@example.com"), 0);
	throttle_fail("victim@example.com");
	w1 = throttle_wait("VICTIM@example.com");
	assert_true(w1 > 0 && w1 <= 30);
	throttle_fail("victim@example.com");
	w2 = throttle_wait("victim@example.com");
	assert_true(w2 > 30 && w2 <= 60);
	for (i = 0; i < 20; i++)
		throttle_fail("victim@example.com");
	assert_true(throttle_wait("victim@example.com") <= 900);
	throttle_clear("victim@example.com");
	assert_int_equal(throttle_wait("victim@example.com"), 0);
	assert_int_equal(throttle_wait("other@example.com"), 0);
}

static void test_memberships_keep_an_owner(void **state)
{
	char why[160];
	const char *w;
	int64_t org, a, b;

	(void)state;
	assert_int_equal(org_create("Acme", &org, why, sizeof(why)), TG_OK);
	assert_int_equal(org_create("acme", NULL, why, sizeof(why)), TG_ECONFLICT);
	assert_int_equal(org_create("", NULL, why, sizeof(why)), TG_EINVAL);
	user_create("a@example.com", "A", "long enough password", 0, 0, &a, &w);
	user_create("b@example.com", "B", "long enough password", 0, 0, &b, &w);
	assert_int_equal(membership_set(org, a, ROLE_OWNER), TG_OK);
	assert_int_equal(membership_set(org, b, ROLE_MEMBER), TG_OK);
	assert_int_equal(membership_role(org, a), ROLE_OWNER);
	assert_int_equal(membership_set(org, a, ROLE_ADMIN), TG_ECONFLICT);
	assert_int_equal(membership_remove(org, a), TG_ECONFLICT);
	assert_int_equal(membership_set(org, b, ROLE_OWNER), TG_OK);
	assert_int_equal(membership_set(org, a, ROLE_ADMIN), TG_OK);
	assert_int_equal(membership_remove(org, b), TG_ECONFLICT);
	assert_int_equal(membership_remove(org, a), TG_OK);
	assert_int_equal(membership_remove(org, a), TG_ENOTFOUND);
	assert_int_equal(membership_role(org, a), ROLE_NONE);
	assert_int_equal(membership_first_org(b), org);
	assert_int_equal(role_parse("owner"), ROLE_OWNER);
	assert_int_equal(role_parse("root"), ROLE_NONE);
}

static void test_setup_token_works_once(void **state)
{
	char tok[44], tok2[44];

	(void)state;
	assert_int_equal(setup_token_create(tok), TG_OK);
	assert_int_equal(setup_token_check(tok), TG_OK);
	assert_int_equal(setup_token_check("nope"), TG_ENOTFOUND);
	assert_int_equal(setup_token_consume(tok), TG_OK);
	assert_int_equal(setup_token_consume(tok), TG_ECONFLICT);
	assert_int_equal(setup_token_check(tok), TG_ENOTFOUND);
	/* A new token replaces an unused old one. */
	assert_int_equal(setup_token_create(tok), TG_OK);
	assert_int_equal(setup_token_create(tok2), TG_OK);
	assert_int_equal(setup_token_check(tok), TG_ENOTFOUND);
	assert_int_equal(setup_token_check(tok2), TG_OK);
}

static void test_audit_entries(void **state)
{
	struct audit_actor a = { 0, "cli", "" };
	tg_stmt *st;

	(void)state;
	assert_int_equal(audit_add(&a, 0, "org.create", "Acme", "detail"), TG_OK);
	st = db_stmt("SELECT actor, action, target, org_id IS NULL FROM audit_log");
	assert_int_equal(db_step(st), DB_ROW);
	assert_string_equal(db_col_text(st, 0), "cli");
	assert_string_equal(db_col_text(st, 1), "org.create");
	assert_string_equal(db_col_text(st, 2), "Acme");
	assert_int_equal(db_col_int(st, 3), 1);
	db_done(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations_idempotent_and_refuse_newer,
						setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_statement_cache_and_named_binds, setup_db,
						teardown_db),
		cmocka_unit_test_setup_teardown(test_transactions_roll_back, setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_users_and_passwords, setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_sessions_expire_and_are_hashed, setup_db,
						teardown_db),
		cmocka_unit_test_setup_teardown(test_throttle_grows_after_five_failures, setup_db,
						teardown_db),
		cmocka_unit_test_setup_teardown(test_memberships_keep_an_owner, setup_db,
						teardown_db),
		cmocka_unit_test_setup_teardown(test_setup_token_works_once, setup_db, teardown_db),
		cmocka_unit_test_setup_teardown(test_audit_entries, setup_db, teardown_db),
	};

	if (sodium_init() < 0)
		return 1;
	password_set_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
	return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
