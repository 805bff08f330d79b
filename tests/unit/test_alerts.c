/* Unit tests for budget alerts: the crossing logic of both kinds (fires once,
 * re-arms after clearing, many debits in a row fire once), the share
 * arithmetic, URL validation, the webhook signature, and the settings and
 * banner conditions on a fresh database. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "apikeys/apikeys.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/keys.h"
#include "crypto/secrets.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "store/migrate.h"

#define C(x) ((int64_t)(x)*MONEY_SCALE)            /* whole credits */
#define CC(x) ((int64_t)(x) * (MONEY_SCALE / 100)) /* hundredths */

/* ------------------------------------------------------ balance_below */

/* Walk a sequence of balances as debits (or top-ups) and count crossings. */
static int walk(int64_t threshold, const int64_t *bal, size_t n)
{
	int fired = 0;
	size_t i;

	for (i = 1; i < n; i++) {
		int64_t cost = bal[i - 1] - bal[i];

		if (cost > 0) /* only debits are observed */
			fired += alerts_balance_crossed(threshold, bal[i] + cost, bal[i]);
	}
	return fired;
}

static void test_balance_fires_once(void **state)
{
	const int64_t seq[] = { C(10), C(7), CC(550), CC(490), C(4), C(3), C(1) };

	(void)state;
	assert_int_equal(walk(C(5), seq, TG_ARRAY_LEN(seq)), 1);
	/* the crossing debit is the one from 5.50 to 4.90 */
	assert_true(alerts_balance_crossed(C(5), CC(550), CC(490)));
	assert_false(alerts_balance_crossed(C(5), CC(490), C(4)));
}

static void test_balance_exact_is_not_below(void **state)
{
	const int64_t seq[] = { C(6), C(5), C(5), CC(499) };

	(void)state;
	assert_false(alerts_balance_crossed(C(5), C(6), C(5)));
	assert_int_equal(walk(C(5), seq, TG_ARRAY_LEN(seq)), 1);
}

static void test_balance_rearms_after_topup(void **state)
{
	/* below, top-up above, below again, top-up to exactly the threshold
	 * (not below: counts as cleared), below again */
	const int64_t seq[] = { C(10), C(4), C(3), C(20), C(6), CC(450), C(5), CC(499) };

	(void)state;
	assert_int_equal(walk(C(5), seq, TG_ARRAY_LEN(seq)), 3);
}

static void test_balance_many_debits_fire_once(void **state)
{
	int64_t b = C(2000), threshold = C(500);
	int fired = 0, i;

	(void)state;
	for (i = 0; i < 100000; i++) {
		int64_t cost = 12345 + (i % 7) * 1000;

		fired += alerts_balance_crossed(threshold, b, b - cost);
		b -= cost;
	}
	assert_true(b < threshold);
	assert_int_equal(fired, 1);
}

static void test_balance_already_below_needs_clearing(void **state)
{
	const int64_t seq[] = { C(3), C(2), C(1), C(0) };

	(void)state;
	/* Set while already below: nothing until it clears. */
	assert_int_equal(walk(C(5), seq, TG_ARRAY_LEN(seq)), 0);
}

/* ---------------------------------------------------------- key_share */

static void test_share_holds(void **state)
{
	(void)state;
	assert_false(alerts_share_holds(CC(499), C(10), 50));
	assert_true(alerts_share_holds(C(5), C(10), 50));
	assert_true(alerts_share_holds(C(11), C(10), 100));
	assert_false(alerts_share_holds(C(5), 0, 50)); /* no limit: never */
	assert_false(alerts_share_holds(C(5), C(10), 0));
	assert_true(alerts_share_holds(1, 3, 33)); /* 1/3 >= 33% */
	assert_false(alerts_share_holds(1, 3, 34));
	/* no overflow with the largest amounts */
	assert_true(alerts_share_holds(INT64_MAX, INT64_MAX, 100));
	assert_false(alerts_share_holds(INT64_MAX - 1, INT64_MAX, 100));
}

static void test_share_fires_once_and_rearms(void **state)
{
	struct alerts_share_state s = { 1, 100 };
	const int64_t limit = C(10), pct = 50;
	const int64_t spent[] = { C(1), C(3), CC(499), C(5), C(6), C(8), C(10) };
	int fired = 0;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(spent); i++) {
		int f = alerts_share_step(&s, 100, alerts_share_holds(spent[i], limit, pct));

		if (spent[i] == C(5))
			assert_int_equal(f, 1); /* at-or-over fires on the first observation */
		fired += f;
	}
	assert_int_equal(fired, 1);
	/* The limit is raised: no longer holds, re-armed; crossing again fires. */
	assert_int_equal(alerts_share_step(&s, 100, alerts_share_holds(C(10), C(40), pct)), 0);
	assert_int_equal(s.armed, 1);
	assert_int_equal(alerts_share_step(&s, 100, alerts_share_holds(C(21), C(40), pct)), 1);
	assert_int_equal(alerts_share_step(&s, 100, alerts_share_holds(C(22), C(40), pct)), 0);
}

static void test_share_new_period_rearms(void **state)
{
	struct alerts_share_state s = { 1, 100 };

	(void)state;
	assert_int_equal(alerts_share_step(&s, 100, 1), 1);
	assert_int_equal(alerts_share_step(&s, 100, 1), 0);
	/* A new period whose first observation already holds is a new crossing. */
	assert_int_equal(alerts_share_step(&s, 200, 1), 1);
	assert_int_equal(s.period, 200);
	assert_int_equal(alerts_share_step(&s, 200, 1), 0);
	/* A new period that starts below, then crosses. */
	assert_int_equal(alerts_share_step(&s, 300, 0), 0);
	assert_int_equal(alerts_share_step(&s, 300, 1), 1);
}

static void test_share_many_debits_fire_once(void **state)
{
	struct alerts_share_state s = { 1, 0 };
	int64_t spent = 0;
	int fired = 0, i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		spent += 1234;
		fired += alerts_share_step(&s, 0, alerts_share_holds(spent, C(5), 80));
	}
	assert_int_equal(fired, 1);
}

static void test_share_set_while_over_does_not_fire(void **state)
{
	/* alerts_set_key_share arms only when the condition does not hold. */
	struct alerts_share_state s = { 0, 100 };

	(void)state;
	assert_int_equal(alerts_share_step(&s, 100, 1), 0);
	assert_int_equal(alerts_share_step(&s, 100, 0), 0);
	assert_int_equal(alerts_share_step(&s, 100, 1), 1);
}

/* ---------------------------------------------------- url and signature */

static void test_check_url(void **state)
{
	const char *why = NULL;
	char longurl[600];

	(void)state;
	assert_int_equal(alerts_check_url("https://hooks.example.com/tollgate", &why), TG_OK);
	assert_int_equal(alerts_check_url("http://203.0.113.7:8080/h?x=1", &why), TG_OK);
	assert_int_equal(alerts_check_url("HTTPS://Example.com", &why), TG_OK);
	assert_int_equal(alerts_check_url("", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("ftp://example.com/", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("javascript:alert(1)", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("https://", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("https:///path", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("https://a.example/\r\nX-Evil: 1", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("https://a.example/\n", &why), TG_EINVAL);
	assert_int_equal(alerts_check_url("https://a example/", &why), TG_EINVAL);
	assert_non_null(why);
	memcpy(longurl, "https://example.com/", 20);
	memset(longurl + 20, 'a', 492);
	longurl[512] = '\0';
	assert_int_equal(alerts_check_url(longurl, &why), TG_OK);
	longurl[512] = 'a';
	longurl[513] = '\0';
	assert_int_equal(alerts_check_url(longurl, &why), TG_EINVAL);
}

/* Is this address (text) private, by alerts_addr_private? */
static int private_ip(const char *ip)
{
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;

	memset(&in4, 0, sizeof(in4));
	memset(&in6, 0, sizeof(in6));
	if (inet_pton(AF_INET, ip, &in4.sin_addr) == 1) {
		in4.sin_family = AF_INET;
		return alerts_addr_private((struct sockaddr *)&in4);
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
	in6.sin6_family = AF_INET6;
	return alerts_addr_private((struct sockaddr *)&in6);
}

static void test_private_addresses(void **state)
{
	static const char *const private[] = {
		"127.0.0.1",
		"127.255.0.9",
		"0.0.0.0",
		"10.1.2.3",
		"172.16.0.1",
		"172.31.255.255",
		"192.168.1.1",
		"169.254.169.254",
		"100.64.0.1",
		"192.0.0.8",
		"198.18.0.1",
		"224.0.0.1",
		"255.255.255.255",
		"::",
		"::1",
		"fe80::1",
		"fc00::1",
		"fd12:3456::1",
		"ff02::1",
		"::ffff:127.0.0.1",
		"::ffff:10.0.0.1",
		"::127.0.0.1",
		"::a00:8",
		"64:ff9b::7f00:1",
		"64:ff9b::a00:8",
		"64:ff9b:1::1",
		"fec0::1",
		"100::1",
		"2002:7f00:1::1",
		"2002:a00:8::",
	};
	static const char *const public[] = {
		"1.1.1.1",         "8.8.8.8",        "172.15.255.255", "172.32.0.0",
		"192.169.0.1",     "100.63.255.255", "100.128.0.0",    "203.0.113.7",
		"2606:4700::1111", "2001:db8::1",    "::ffff:8.8.8.8", "64:ff9b::808:808",
		"2002:808:808::1",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(private) / sizeof(private[0]); i++)
		if (!private_ip(private[i]))
			fail_msg("%s should count as private", private[i]);
	for (i = 0; i < sizeof(public) / sizeof(public[0]); i++)
		if (private_ip(public[i]))
			fail_msg("%s should count as public", public[i]);
}

static void test_check_url_private_hosts(void **state)
{
	static const char *const refused[] = {
		"http://127.0.0.1:8080/h",
		"https://10.0.0.5/hook",
		"http://user@169.254.169.254/latest",
		"http://[::1]:9000/x",
		"http://[fd00::5]/",
		"http://192.168.1.10?x",
		"http://0.0.0.0#f",
		/* the other ways libcurl reads an IPv4 address */
		"http://2130706433/",
		"http://0x7f.1/",
		"http://0177.0.0.1/",
		"http://127.1:80/",
		"http://[fe80::1%25eth0]/",
	};
	const char *why = NULL;
	size_t i;

	(void)state;
	alerts_allow_private(0);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		why = NULL;
		if (alerts_check_url(refused[i], &why) != TG_EINVAL)
			fail_msg("%s should be refused", refused[i]);
		assert_non_null(strstr(why, "webhook_private_ok"));
	}
	/* Names are checked on the address they resolve to, when delivering. */
	assert_int_equal(alerts_check_url("http://localhost:8080/h", &why), TG_OK);
	assert_int_equal(alerts_check_url("http://[2606:4700::1111]/h", &why), TG_OK);
	alerts_allow_private(1);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(alerts_check_url(refused[i], &why), TG_OK);
	alerts_allow_private(0);
}

static void test_sign_is_hmac_sha256(void **state)
{
	char sig[ALERTS_SIG_LEN + 1];
	const char *data = "what do ya want for nothing?";

	(void)state;
	/* RFC 4231, test case 2 */
	alerts_sign("Jefe", data, strlen(data), sig);
	assert_string_equal(
		sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	assert_int_equal(strlen(sig), ALERTS_SIG_LEN);
}

/* ------------------------------------------------ settings on a database */

struct fixture {
	char dir[4096];
	char path[4200];
};

static int db_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned char pepper[KEYS_PEPPER_LEN];
	tg_secrets_t s;
	char err[256];
	int applied = 0;

	if (!f || crypto_init())
		return -1;
	log_set_level(LOG_ERROR);
	snprintf(f->dir, sizeof(f->dir), "%s/tg-alerts-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/tollgate.db", f->dir);
	db_close_thread();
	if (db_configure(f->path, 0, 10000) || !db_get() ||
	    migrate_run(&applied, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	randombytes_buf(pepper, sizeof(pepper));
	apikeys_init(pepper);
	randombytes_buf(&s, sizeof(s));
	alerts_init(&s);
	secrets_wipe(&s);
	*state = f;
	return 0;
}

static int db_teardown(void **state)
{
	struct fixture *f = *state;
	const char *sfx[] = { "", "-wal", "-shm", "-keys", "-commits" };
	char p[4300];
	size_t i;

	alerts_worker_stop(); /* also drops the cached thresholds */
	db_close_thread();
	for (i = 0; i < TG_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t make_org(const char *name)
{
	char why[160];
	int64_t id = 0;

	assert_int_equal(org_create(name, &id, why, sizeof(why)), TG_OK);
	return id;
}

static void test_settings_and_conditions(void **state)
{
	static const struct audit_actor actor = { 0, "test", "" };
	struct alert_condition c[4];
	struct apikey_limits lim = { 0 };
	char key[KEYS_LEN + 1], url[ALERTS_URL_MAX + 1];
	const char *why = NULL;
	int64_t org = make_org("Acme"), other = make_org("Other"), k_limited, k_free, k_other;

	(void)state;
	assert_int_equal(ledger_grant(org, LEDGER_GRANT, C(10), "start", &actor, NULL), TG_OK);
	lim.spend_limit = C(4);
	lim.period = PERIOD_MONTHLY;
	assert_int_equal(apikey_create(org, 0, "limited", &lim, key, &k_limited, &why), TG_OK);
	memset(&lim, 0, sizeof(lim));
	assert_int_equal(apikey_create(org, 0, "free", &lim, key, &k_free, &why), TG_OK);
	lim.spend_limit = C(4);
	assert_int_equal(apikey_create(other, 0, "theirs", &lim, key, &k_other, &why), TG_OK);
	sodium_memzero(key, sizeof(key));

	/* No thresholds: nothing holds. */
	assert_int_equal(alerts_active(org, c, 4), 0);
	assert_int_equal(alerts_set_balance(org, 0), TG_EINVAL);
	assert_int_equal(alerts_set_balance(org, C(5)), TG_OK);
	assert_int_equal(alerts_active(org, c, 4), 0);           /* 10 >= 5 */
	assert_int_equal(alerts_set_balance(org, C(12)), TG_OK); /* replaces it */
	assert_int_equal(alerts_active(org, c, 4), 1);
	assert_int_equal(c[0].kind, ALERT_BALANCE_BELOW);
	assert_int_equal(c[0].current, C(10));
	assert_int_equal(c[0].value, C(12));
	assert_int_equal(alerts_active(other, c, 4), 0);
	assert_int_equal(alerts_clear_balance(org), TG_OK);
	assert_int_equal(alerts_clear_balance(org), TG_ENOTFOUND);
	assert_int_equal(alerts_active(org, c, 4), 0);

	/* Key shares: only the org's own keys, with a limit, 1..100 percent. */
	assert_int_equal(alerts_set_key_share(org, k_limited, 0, &why), TG_EINVAL);
	assert_int_equal(alerts_set_key_share(org, k_limited, 101, &why), TG_EINVAL);
	assert_int_equal(alerts_set_key_share(org, k_free, 50, &why), TG_EINVAL);
	assert_non_null(strstr(why, "spend limit"));
	assert_int_equal(alerts_set_key_share(org, k_other, 50, &why), TG_EINVAL);
	assert_int_equal(alerts_set_key_share(org, k_limited, 50, &why), TG_OK);
	assert_int_equal(alerts_active(org, c, 4), 0); /* nothing spent yet */
	assert_int_equal(alerts_clear_key_share(org, k_limited), TG_OK);
	assert_int_equal(alerts_clear_key_share(org, k_limited), TG_ENOTFOUND);

	/* Webhook: the secret is made once, kept on URL changes, rotated. */
	{
		char s1[ALERTS_SECRET_LEN + 1], s2[ALERTS_SECRET_LEN + 1];
		int made = 0;

		assert_int_equal(alerts_webhook_get(org, url), TG_ENOTFOUND);
		assert_int_equal(alerts_webhook_set(org, "gopher://x", s1, &made, &why), TG_EINVAL);
		assert_int_equal(alerts_webhook_set(org, "https://h.example/a", s1, &made, &why),
				 TG_OK);
		assert_int_equal(made, 1);
		assert_int_equal(strlen(s1), ALERTS_SECRET_LEN);
		assert_memory_equal(s1, "whsec_", 6);
		assert_int_equal(alerts_webhook_set(org, "https://h.example/b", s2, &made, &why),
				 TG_OK);
		assert_int_equal(made, 0);
		assert_string_equal(s2, "");
		assert_int_equal(alerts_webhook_get(org, url), TG_OK);
		assert_string_equal(url, "https://h.example/b");
		assert_int_equal(alerts_webhook_rotate(org, s2), TG_OK);
		assert_int_equal(strlen(s2), ALERTS_SECRET_LEN);
		assert_string_not_equal(s1, s2);
		assert_int_equal(alerts_webhook_rotate(other, s2), TG_ENOTFOUND);
		assert_int_equal(alerts_webhook_remove(org), TG_OK);
		assert_int_equal(alerts_webhook_remove(org), TG_ENOTFOUND);
		/* The secret is stored sealed, never in clear text. */
		{
			tg_stmt *st = db_stmt(
				"SELECT count(*) FROM alert_webhooks WHERE secret LIKE 'whsec_%'");

			assert_non_null(st);
			assert_int_equal(db_step(st), DB_ROW);
			assert_int_equal(db_col_int64(st, 0), 0);
			db_done(st);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_balance_fires_once),
		cmocka_unit_test(test_balance_exact_is_not_below),
		cmocka_unit_test(test_balance_rearms_after_topup),
		cmocka_unit_test(test_balance_many_debits_fire_once),
		cmocka_unit_test(test_balance_already_below_needs_clearing),
		cmocka_unit_test(test_share_holds),
		cmocka_unit_test(test_share_fires_once_and_rearms),
		cmocka_unit_test(test_share_new_period_rearms),
		cmocka_unit_test(test_share_many_debits_fire_once),
		cmocka_unit_test(test_share_set_while_over_does_not_fire),
		cmocka_unit_test(test_check_url),
		cmocka_unit_test(test_private_addresses),
		cmocka_unit_test(test_check_url_private_hosts),
		cmocka_unit_test(test_sign_is_hmac_sha256),
		cmocka_unit_test_setup_teardown(test_settings_and_conditions, db_setup,
						db_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
