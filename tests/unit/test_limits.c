/* Unit tests for the limits primitives: the per-address failure throttle
 * (blocking, decay, capacity, eviction, address grouping) and the
 * connection/stream slot counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "core/slots.h"
#include "http/ipthrottle.h"

/* "10.a.b.c" for i, distinct for i < 2^24. */
static const char *ip4(unsigned i, char buf[32])
{
	snprintf(buf, 32, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
	return buf;
}

static void test_blocks_after_limit_and_only_that_address(void **state)
{
	struct ipthrottle *t = ipthrottle_new(64, 3, 1000);
	int64_t retry = -1;

	(void)state;
	assert_non_null(t);
	assert_int_equal(ipthrottle_fail(t, "192.0.2.1", 0), 0);
	assert_int_equal(ipthrottle_fail(t, "192.0.2.1", 10), 0);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.1", 20, &retry), 0);
	assert_int_equal(retry, 0);
	/* the third failure starts the block, reported once */
	assert_int_equal(ipthrottle_fail(t, "192.0.2.1", 100), 1);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.1", 100, &retry), 1);
	assert_int_equal(retry, 1000);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.1", 1099, &retry), 1);
	assert_int_equal(retry, 1);
	/* a failure during the block neither re-reports nor extends it */
	assert_int_equal(ipthrottle_fail(t, "192.0.2.1", 500), 0);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.1", 1099, &retry), 1);
	assert_int_equal(retry, 1);
	/* other addresses are untouched */
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.2", 100, NULL), 0);
	assert_int_equal(ipthrottle_blocked(t, "2001:db8::1", 100, NULL), 0);
	/* the block ends after one window */
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.1", 1100, &retry), 0);
	assert_int_equal(retry, 0);
	assert_int_equal(ipthrottle_refused(t), 3);
	assert_int_equal(ipthrottle_limit(t), 3);
	assert_int_equal(ipthrottle_window_ms(t), 1000);
	ipthrottle_free(t);
}

static void test_failures_decay_with_the_window(void **state)
{
	struct ipthrottle *t = ipthrottle_new(64, 3, 1000);

	(void)state;
	/* two failures, then the window passes: the count starts again */
	ipthrottle_fail(t, "198.51.100.7", 0);
	ipthrottle_fail(t, "198.51.100.7", 600);
	assert_int_equal(ipthrottle_entries(t, 999), 1);
	assert_int_equal(ipthrottle_fail(t, "198.51.100.7", 1000), 0);
	assert_int_equal(ipthrottle_fail(t, "198.51.100.7", 1500), 0);
	assert_int_equal(ipthrottle_blocked(t, "198.51.100.7", 1500, NULL), 0);
	/* the third within the new window (started at 1000) blocks */
	assert_int_equal(ipthrottle_fail(t, "198.51.100.7", 1999), 1);
	assert_int_equal(ipthrottle_blocked(t, "198.51.100.7", 2998, NULL), 1);
	assert_int_equal(ipthrottle_blocked(t, "198.51.100.7", 2999, NULL), 0);
	/* after the block the count starts from zero: one failure does not block */
	assert_int_equal(ipthrottle_fail(t, "198.51.100.7", 3000), 0);
	assert_int_equal(ipthrottle_blocked(t, "198.51.100.7", 3001, NULL), 0);
	/* forgotten entirely once its window has passed */
	assert_int_equal(ipthrottle_entries(t, 3999), 1);
	assert_int_equal(ipthrottle_entries(t, 4000), 0);
	ipthrottle_free(t);
}

static void test_capacity_is_fixed_and_blocks_survive_a_flood(void **state)
{
	struct ipthrottle *t = ipthrottle_new(16, 2, 60000);
	char buf[32];
	unsigned i;

	(void)state;
	assert_int_equal(ipthrottle_fail(t, "203.0.113.9", 0), 0);
	assert_int_equal(ipthrottle_fail(t, "203.0.113.9", 1), 1);
	/* ten thousand other addresses fail once each: the table never holds more
	 * than its 16 entries, and the unblocked ones are evicted first */
	for (i = 0; i < 10000; i++) {
		assert_int_equal(ipthrottle_fail(t, ip4(i, buf), 2 + i), 0);
		assert_true(ipthrottle_entries(t, 2 + i) <= 16);
	}
	assert_int_equal(ipthrottle_entries(t, 10002), 16);
	assert_int_equal(ipthrottle_blocked(t, "203.0.113.9", 10002, NULL), 1);
	/* the most recent single failures are the ones kept */
	assert_int_equal(ipthrottle_fail(t, ip4(9999, buf), 10003), 1);
	ipthrottle_free(t);
}

static void test_eviction_when_every_entry_is_blocked(void **state)
{
	struct ipthrottle *t = ipthrottle_new(16, 1, 60000);
	char buf[32];
	unsigned i;

	(void)state;
	/* sixteen blocked addresses, blocked at t = 0, 10, ..., 150 */
	for (i = 0; i < 16; i++)
		assert_int_equal(ipthrottle_fail(t, ip4(i, buf), 10 * i), 1);
	for (i = 0; i < 16; i++)
		assert_int_equal(ipthrottle_blocked(t, ip4(i, buf), 200, NULL), 1);
	/* a seventeenth takes the place of the block that ends first */
	assert_int_equal(ipthrottle_fail(t, "192.0.2.200", 300), 1);
	assert_int_equal(ipthrottle_blocked(t, ip4(0, buf), 301, NULL), 0);
	for (i = 1; i < 16; i++)
		assert_int_equal(ipthrottle_blocked(t, ip4(i, buf), 301, NULL), 1);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.200", 301, NULL), 1);
	assert_int_equal(ipthrottle_entries(t, 301), 16);
	ipthrottle_free(t);
}

static void test_address_grouping(void **state)
{
	struct ipthrottle *t = ipthrottle_new(64, 2, 1000);

	(void)state;
	/* one IPv6 /64 is one client */
	ipthrottle_fail(t, "2001:db8:1:2::1", 0);
	assert_int_equal(ipthrottle_fail(t, "2001:db8:1:2:ffff:ffff:ffff:9", 1), 1);
	assert_int_equal(ipthrottle_blocked(t, "2001:db8:1:2::77", 2, NULL), 1);
	assert_int_equal(ipthrottle_blocked(t, "2001:db8:1:3::1", 2, NULL), 0);
	/* an IPv4-mapped IPv6 address is its IPv4 address, and only that one */
	ipthrottle_fail(t, "::ffff:192.0.2.50", 0);
	assert_int_equal(ipthrottle_fail(t, "192.0.2.50", 1), 1);
	assert_int_equal(ipthrottle_blocked(t, "::ffff:192.0.2.50", 2, NULL), 1);
	assert_int_equal(ipthrottle_blocked(t, "192.0.2.51", 2, NULL), 0);
	/* text that is no address still gets a key of its own */
	ipthrottle_fail(t, "not-an-address", 0);
	assert_int_equal(ipthrottle_fail(t, "not-an-address", 1), 1);
	assert_int_equal(ipthrottle_blocked(t, "not-an-address", 2, NULL), 1);
	assert_int_equal(ipthrottle_blocked(t, "not-an-addresz", 2, NULL), 0);
	ipthrottle_free(t);
}

static void test_off_and_bad_settings(void **state)
{
	int64_t retry = 5;

	(void)state;
	assert_null(ipthrottle_new(64, 0, 1000));
	assert_null(ipthrottle_new(64, 5, 0));
	/* a NULL table (throttle off) never blocks */
	assert_int_equal(ipthrottle_fail(NULL, "192.0.2.1", 0), 0);
	assert_int_equal(ipthrottle_blocked(NULL, "192.0.2.1", 0, &retry), 0);
	assert_int_equal(retry, 0);
	assert_int_equal(ipthrottle_entries(NULL, 0), 0);
	assert_int_equal(ipthrottle_refused(NULL), 0);
}

/* ----------------------------------------------------------- slots */

static void test_slots_take_give_refuse(void **state)
{
	struct slots s = { 0 };

	(void)state;
	assert_int_equal(slots_take(&s, 2), 1);
	assert_int_equal(slots_take(&s, 2), 1);
	assert_int_equal(slots_take(&s, 2), 0);
	assert_int_equal(slots_used(&s), 2);
	slots_refuse(&s);
	assert_int_equal(slots_refused(&s), 1);
	slots_give(&s);
	assert_int_equal(slots_take(&s, 2), 1);
	assert_int_equal(slots_take(&s, 0), 0);
	assert_int_equal(slots_used(&s), 2);
}

#define THREADS 8
#define ROUNDS 20000
#define CAP 3

static struct slots shared;
static _Atomic int64_t inside, most_inside;

static void *hammer(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < ROUNDS; i++) {
		if (!slots_take(&shared, CAP))
			continue;
		int64_t now = atomic_fetch_add(&inside, 1) + 1;
		int64_t seen = atomic_load(&most_inside);

		while (now > seen && !atomic_compare_exchange_weak(&most_inside, &seen, now))
			;
		atomic_fetch_sub(&inside, 1);
		slots_give(&shared);
	}
	return NULL;
}

static void test_slots_never_exceed_the_cap_under_contention(void **state)
{
	pthread_t th[THREADS];
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_true(atomic_load(&most_inside) <= CAP);
	assert_true(atomic_load(&most_inside) >= 1);
	assert_int_equal(slots_used(&shared), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks_after_limit_and_only_that_address),
		cmocka_unit_test(test_failures_decay_with_the_window),
		cmocka_unit_test(test_capacity_is_fixed_and_blocks_survive_a_flood),
		cmocka_unit_test(test_eviction_when_every_entry_is_blocked),
		cmocka_unit_test(test_address_grouping),
		cmocka_unit_test(test_off_and_bad_settings),
		cmocka_unit_test(test_slots_take_give_refuse),
		cmocka_unit_test(test_slots_never_exceed_the_cap_under_contention),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
