/* Unit tests for the in-memory token-bucket rate limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "core/timeutil.h"
#include "billing/ratelimit.h"

#define SEC 1000000LL
#define MIN (60 * SEC)

static int reset(void **state)
{
	(void)state;
	rl_reset_all();
	return 0;
}

/* Admit a single ask. */
static int admit1(enum rl_scope scope, int64_t id, int64_t limit, int64_t cost, int64_t now,
		  struct rl_state *st)
{
	struct rl_ask a = { scope, id, limit, cost };

	return rl_admit(&a, 1, now, st);
}

static void test_requests_per_minute(void **state)
{
	struct rl_state st;
	int i;

	(void)state;
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 0, &st), 1);
	assert_int_equal(st.limit, 60);
	assert_int_equal(st.remaining, 59);
	assert_int_equal(st.reset_ms, 1000);
	assert_int_equal(st.retry_after_ms, 0);
	assert_int_equal(st.refused, 0);
	for (i = 1; i < 60; i++)
		assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 0, &st), 1);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(st.reset_ms, 60000);

	/* the 61st at t=0 */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 0, &st), 0);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(st.retry_after_ms, 1000);
	assert_int_equal(st.reset_ms, 60000);

	/* 1 us short of a whole request: still refused, retry rounds up to 1 ms */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, SEC - 1, &st), 0);
	assert_int_equal(st.retry_after_ms, 1);

	/* after 1 s exactly one more fits */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, SEC, &st), 1);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(st.reset_ms, 60000);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, SEC, &st), 0);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, SEC + SEC / 2, &st), 0);
	assert_int_equal(st.retry_after_ms, 500);
	assert_int_equal(st.reset_ms, 59500);

	/* after 10 s, 10 more; the available count is floored */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 0, 11 * SEC + SEC / 2, &st), 1);
	assert_int_equal(st.remaining, 10);
	assert_int_equal(st.reset_ms, 49500);

	/* a full minute later the bucket is full, never more */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 10 * MIN, &st), 1);
	assert_int_equal(st.remaining, 59);
	assert_int_equal(st.reset_ms, 1000);

	/* other ids and scopes are separate buckets */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 2, 60, 1, 0, &st), 1);
	assert_int_equal(st.remaining, 59);
	assert_int_equal(admit1(RL_ORG_REQUESTS, 1, 60, 1, 0, &st), 1);
	assert_int_equal(st.remaining, 59);
	assert_int_equal(rl_entries(), 3);
}

static void test_time_going_backwards(void **state)
{
	struct rl_state st;

	(void)state;
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 60, 5 * SEC, &st), 1);
	/* an earlier clock reading (another thread sampled it first) adds nothing */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 4 * SEC, &st), 0);
	assert_int_equal(st.retry_after_ms, 1000);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 6 * SEC, &st), 1);
}

static void test_all_or_nothing(void **state)
{
	struct rl_ask asks[4] = {
		{ RL_KEY_REQUESTS, 10, 60, 1 },
		{ RL_KEY_TOKENS, 10, 1000, 100 },
		{ RL_ORG_REQUESTS, 20, 1, 1 },
		{ RL_ORG_TOKENS, 20, 0, 100 },
	};
	struct rl_state st[4];
	int i;

	(void)state;
	assert_int_equal(rl_admit(asks, 4, 0, st), 1);
	assert_int_equal(st[0].remaining, 59);
	assert_int_equal(st[1].remaining, 900);
	assert_int_equal(st[2].remaining, 0);
	assert_int_equal(st[3].limit, 0);

	/* the key buckets allow it, the org request bucket refuses: nothing taken */
	assert_int_equal(rl_admit(asks, 4, 0, st), 0);
	assert_int_equal(st[0].refused, 0);
	assert_int_equal(st[0].retry_after_ms, 0);
	assert_int_equal(st[0].remaining, 59);
	assert_int_equal(st[1].refused, 0);
	assert_int_equal(st[1].remaining, 900);
	assert_int_equal(st[2].refused, 1);
	assert_int_equal(st[2].retry_after_ms, 60000);
	assert_int_equal(st[3].refused, 0);

	/* with the org unlimited the key buckets still hold 59 and 900 */
	asks[2].limit_per_min = 0;
	asks[1].cost = 0;
	for (i = 0; i < 59; i++)
		assert_int_equal(rl_admit(asks, 4, 0, st), 1);
	assert_int_equal(st[0].remaining, 0);
	assert_int_equal(rl_admit(asks, 4, 0, st), 0);
	assert_int_equal(st[0].refused, 1);
	asks[0].limit_per_min = 0;
	asks[1].cost = 900;
	assert_int_equal(rl_admit(asks, 4, 0, st), 1);
	assert_int_equal(st[1].remaining, 0);

	/* two refusing buckets are both flagged */
	asks[0].limit_per_min = 60;
	assert_int_equal(rl_admit(asks, 4, 0, st), 0);
	assert_int_equal(st[0].refused, 1);
	assert_int_equal(st[1].refused, 1);
	assert_int_equal(st[1].retry_after_ms, 54000); /* 900 tokens at 1000/min */
}

static void test_same_bucket_twice(void **state)
{
	struct rl_ask asks[2] = {
		{ RL_KEY_TOKENS, 1, 100, 60 },
		{ RL_KEY_TOKENS, 1, 100, 60 },
	};
	struct rl_state st[2];

	(void)state;
	/* each alone fits, together they do not: checked as 120 against 100 */
	assert_int_equal(rl_admit(asks, 2, 0, st), 0);
	assert_int_equal(st[0].retry_after_ms, 60000);
	asks[1].cost = 40;
	assert_int_equal(rl_admit(asks, 2, 0, st), 1);
	assert_int_equal(st[0].remaining, 0);
	assert_int_equal(st[1].remaining, 0);
	assert_int_equal(rl_entries(), 1);
}

static void test_unlimited_is_skipped(void **state)
{
	struct rl_ask asks[2] = {
		{ RL_KEY_REQUESTS, 1, 0, INT64_MAX },
		{ RL_ORG_TOKENS, 1, -5, 1 },
	};
	struct rl_state st[2];
	int i;

	(void)state;
	memset(st, 0xff, sizeof(st));
	for (i = 0; i < 1000; i++)
		assert_int_equal(rl_admit(asks, 2, 0, st), 1);
	assert_int_equal(st[0].limit, 0);
	assert_int_equal(st[0].remaining, 0);
	assert_int_equal(st[0].reset_ms, 0);
	assert_int_equal(st[0].retry_after_ms, 0);
	assert_int_equal(st[0].refused, 0);
	assert_int_equal(st[1].limit, 0);
	assert_int_equal(rl_entries(), 0);
	assert_int_equal(rl_admit(asks, 0, 0, NULL), 1);
	assert_int_equal(rl_admit(NULL, 0, 0, NULL), 1);
	/* states are optional */
	asks[0].limit_per_min = 1;
	asks[0].cost = 1;
	assert_int_equal(rl_admit(asks, 2, 0, NULL), 1);
	assert_int_equal(rl_admit(asks, 2, 0, NULL), 0);
}

static void test_token_costs(void **state)
{
	struct rl_state st;

	(void)state;
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 400, 0, &st), 1);
	assert_int_equal(st.remaining, 600);
	assert_int_equal(st.reset_ms, 24000);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 400, 0, &st), 1);
	assert_int_equal(st.remaining, 200);
	/* 300 needs 100 more tokens at 1000 per minute: 6 s */
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 300, 0, &st), 0);
	assert_int_equal(st.retry_after_ms, 6000);
	assert_int_equal(st.remaining, 200);
	assert_int_equal(st.reset_ms, 48000);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 300, 6 * SEC - 1, &st), 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 300, 6 * SEC, &st), 1);
	assert_int_equal(st.remaining, 0);
	/* a negative cost counts as 0 */
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, -50, 6 * SEC, &st), 1);
	assert_int_equal(st.remaining, 0);

	/* a limit that does not divide evenly refills exactly, no drift:
	 * 7 per minute is one token every 8.571428... s */
	assert_int_equal(admit1(RL_KEY_TOKENS, 2, 7, 7, 0, &st), 1);
	assert_int_equal(st.reset_ms, 60000);
	assert_int_equal(admit1(RL_KEY_TOKENS, 2, 7, 1, 0, &st), 0);
	assert_int_equal(st.retry_after_ms, 8572);
	assert_int_equal(admit1(RL_KEY_TOKENS, 2, 7, 1, 8571428, &st), 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 2, 7, 1, 8571429, &st), 1);
	assert_int_equal(admit1(RL_KEY_TOKENS, 2, 7, 6, 60 * SEC, &st), 1);
	assert_int_equal(st.remaining, 0);

	/* very large limits do not overflow */
	assert_int_equal(admit1(RL_ORG_TOKENS, 3, 1000000000000LL, 999999999999LL, 0, &st), 1);
	assert_int_equal(st.remaining, 1);
	assert_int_equal(admit1(RL_ORG_TOKENS, 3, 1000000000000LL, 2, 0, &st), 0);
	assert_int_equal(st.retry_after_ms, 1);
	assert_int_equal(admit1(RL_ORG_TOKENS, 3, 1000000000000LL, 1000000000000LL, MIN, &st), 1);
	assert_int_equal(admit1(RL_ORG_TOKENS, 4, INT64_MAX, INT64_MAX, 0, &st), 1);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(st.reset_ms, 60000);
	assert_int_equal(admit1(RL_ORG_TOKENS, 4, INT64_MAX, INT64_MAX / 2, INT64_MAX, &st), 1);
}

static void test_cost_above_limit(void **state)
{
	struct rl_state st;

	(void)state;
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 1001, 0, &st), 0);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.retry_after_ms, 60000);
	assert_int_equal(st.remaining, 1000);
	assert_int_equal(st.reset_ms, 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 1000, 0, &st), 1);
	assert_int_equal(st.remaining, 0);
	/* still refused with 60000 when the bucket is empty */
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 5000, 0, &st), 0);
	assert_int_equal(st.retry_after_ms, 60000);
}

static void test_limit_change(void **state)
{
	struct rl_state st;

	(void)state;
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 60, 1, 0, &st), 1);
	assert_int_equal(st.remaining, 59);
	/* lowered: the level is clamped to the new capacity */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 10, 1, 0, &st), 1);
	assert_int_equal(st.limit, 10);
	assert_int_equal(st.remaining, 9);
	/* raised: the level stays, the bucket refills towards the new capacity */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 600, 1, 0, &st), 1);
	assert_int_equal(st.remaining, 8);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 600, 0, SEC, &st), 1);
	assert_int_equal(st.remaining, 18);
}

static void test_adjust(void **state)
{
	struct rl_state st;

	(void)state;
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 800, 0, &st), 1);
	assert_int_equal(st.remaining, 200);
	/* the call used 300, not 800: give back 500 */
	rl_adjust(RL_KEY_TOKENS, 1, 1000, 500, 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 700, 0, &st), 1);
	assert_int_equal(st.remaining, 0);
	/* refunds never go above capacity */
	rl_adjust(RL_KEY_TOKENS, 1, 1000, 5000, 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 0, 0, &st), 1);
	assert_int_equal(st.remaining, 1000);
	assert_int_equal(st.reset_ms, 0);

	/* used more than estimated: the bucket goes negative and delays calls */
	rl_adjust(RL_KEY_TOKENS, 1, 1000, -1500, 0);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 1, 0, &st), 0);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(st.retry_after_ms, 30060); /* 501 tokens at 1000/min */
	assert_int_equal(st.reset_ms, 90000);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1000, 1, 30060 * 1000LL, &st), 1);

	/* a refund for a bucket not held creates nothing; a charge does */
	rl_adjust(RL_ORG_TOKENS, 99, 1000, 10, 0);
	assert_int_equal(rl_entries(), 1);
	rl_adjust(RL_ORG_TOKENS, 99, 0, -10, 0);
	rl_adjust(RL_ORG_TOKENS, 99, 1000, 0, 0);
	assert_int_equal(rl_entries(), 1);
	rl_adjust(RL_ORG_TOKENS, 99, 1000, -400, 0);
	assert_int_equal(rl_entries(), 2);
	assert_int_equal(admit1(RL_ORG_TOKENS, 99, 1000, 0, 0, &st), 1);
	assert_int_equal(st.remaining, 600);

	/* huge charges saturate instead of wrapping */
	rl_adjust(RL_ORG_TOKENS, 99, 1000, INT64_MIN, 0);
	rl_adjust(RL_ORG_TOKENS, 99, 1000, INT64_MIN, 0);
	assert_int_equal(admit1(RL_ORG_TOKENS, 99, 1000, 1, 0, &st), 0);
	assert_true(st.retry_after_ms > 0);
	assert_int_equal(st.reset_ms, INT64_MAX);
	assert_int_equal(st.remaining, 0);
}

static void test_format_duration(void **state)
{
	static const struct {
		int64_t ms;
		const char *want;
	} cases[] = {
		{ 0, "0s" },
		{ -5, "0s" },
		{ 1, "1ms" },
		{ 250, "250ms" },
		{ 999, "999ms" },
		{ 1000, "1s" },
		{ 1001, "1.001s" },
		{ 1230, "1.23s" },
		{ 1500, "1.5s" },
		{ 8640, "8.64s" },
		{ 59999, "59.999s" },
		{ 60000, "1m0s" },
		{ 61500, "1m1.5s" },
		{ 360000, "6m0s" },
		{ 3599000, "59m59s" },
		{ 3600000, "1h0m0s" },
		{ 3723040, "1h2m3.04s" },
		{ 90000000, "25h0m0s" },
		{ INT64_MAX, "2562047788015h12m55.807s" },
	};
	char out[RL_DURATION_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		rl_format_duration(cases[i].ms, out);
		assert_string_equal(out, cases[i].want);
	}
}

/* ---- concurrency ---- */

#define STRESS_THREADS 4
#define STRESS_CALLS 20000
#define STRESS_KEY_RPM 6000
#define STRESS_ORG_RPM 3000

struct stress_arg {
	int64_t key_id;
	int64_t admitted;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	struct rl_ask asks[2] = {
		{ RL_KEY_REQUESTS, a->key_id, STRESS_KEY_RPM, 1 },
		{ RL_ORG_REQUESTS, 1, STRESS_ORG_RPM, 1 },
	};
	struct rl_state st[2];
	int i;

	for (i = 0; i < STRESS_CALLS; i++)
		if (rl_admit(asks, 2, time_mono_us(), st))
			a->admitted++;
	return NULL;
}

static void test_threads_never_overadmit(void **state)
{
	pthread_t th[STRESS_THREADS];
	struct stress_arg args[STRESS_THREADS];
	int64_t start, end, total = 0, bound;
	int i;

	(void)state;
	/* two threads share key 1, two share key 2; all share org 1 */
	start = time_mono_us();
	for (i = 0; i < STRESS_THREADS; i++) {
		args[i].key_id = 1 + i % 2;
		args[i].admitted = 0;
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &args[i]), 0);
	}
	for (i = 0; i < STRESS_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	end = time_mono_us();

	for (i = 0; i < STRESS_THREADS; i++)
		total += args[i].admitted;
	/* every admission took one from the org: capacity plus refill over the
	 * run, plus one for the fractional token at the end */
	bound = STRESS_ORG_RPM + STRESS_ORG_RPM * (end - start) / MIN + 1;
	assert_true(total <= bound);
	/* the bucket starts full and only refusals could stop it filling up */
	assert_true(total >= STRESS_ORG_RPM);
	/* each key, shared by two threads, is bounded by its own bucket too */
	assert_true(args[0].admitted + args[2].admitted <=
		    STRESS_KEY_RPM + STRESS_KEY_RPM * (end - start) / MIN + 1);
	assert_int_equal(rl_entries(), 3);
}

/* ---- memory bound ---- */

static void test_eviction_bounds_memory(void **state)
{
	struct rl_state st;
	int64_t i, t;
	int k;

	(void)state;
	/* 200k distinct keys within a second, each partly used: nothing is
	 * idle, so the least recently used are dropped at the cap */
	for (i = 0; i < 200000; i++) {
		assert_int_equal(admit1(RL_KEY_REQUESTS, i, 10, 1, i, &st), 1);
		assert_int_equal(st.remaining, 9);
		if (i % 10000 == 0)
			assert_true(rl_entries() <= RL_MAX_ENTRIES);
	}
	assert_true(rl_entries() <= RL_MAX_ENTRIES);
	assert_true(rl_entries() >= RL_MAX_ENTRIES - 10);
	t = 200000;

	/* the most recent buckets are still there and still debited */
	assert_int_equal(admit1(RL_KEY_REQUESTS, 199999, 10, 9, t, &st), 1);
	assert_int_equal(st.remaining, 0);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 199999, 10, 1, t, &st), 0);
	/* and a new one works as usual */
	for (k = 0; k < 10; k++)
		assert_int_equal(admit1(RL_KEY_REQUESTS, -1, 10, 1, t, &st), 1);
	assert_int_equal(admit1(RL_KEY_REQUESTS, -1, 10, 1, t, &st), 0);

	/* eleven minutes on, every bucket is idle and full again: the next new
	 * bucket sweeps them away, and a fresh debit survives the sweep */
	t += 11 * MIN;
	assert_int_equal(admit1(RL_ORG_REQUESTS, 5, 1, 1, t, &st), 1);
	assert_true(rl_entries() <= 2);
	assert_int_equal(admit1(RL_ORG_REQUESTS, 5, 1, 1, t, &st), 0);
	assert_int_equal(st.retry_after_ms, 60000);

	/* buckets driven negative for longer than the idle time are kept, and
	 * a sweep over nothing but such buckets ends (1536 fills the table to
	 * the point where one more bucket makes it sweep and grow) */
	rl_reset_all();
	for (i = 0; i < 1536; i++)
		rl_adjust(RL_KEY_TOKENS, i, 1, -100, 0); /* 99 in debt, refilling 1 a minute */
	assert_int_equal(rl_entries(), 1536);
	assert_int_equal(admit1(RL_KEY_REQUESTS, 1, 10, 1, 20 * MIN, &st), 1);
	assert_int_equal(rl_entries(), 1537);
	assert_int_equal(admit1(RL_KEY_TOKENS, 1, 1, 1, 20 * MIN, &st), 0);
	assert_int_equal(st.retry_after_ms, 80 * 60000); /* from -79 to 1 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_requests_per_minute, reset),
		cmocka_unit_test_setup(test_time_going_backwards, reset),
		cmocka_unit_test_setup(test_all_or_nothing, reset),
		cmocka_unit_test_setup(test_same_bucket_twice, reset),
		cmocka_unit_test_setup(test_unlimited_is_skipped, reset),
		cmocka_unit_test_setup(test_token_costs, reset),
		cmocka_unit_test_setup(test_cost_above_limit, reset),
		cmocka_unit_test_setup(test_limit_change, reset),
		cmocka_unit_test_setup(test_adjust, reset),
		cmocka_unit_test_setup(test_format_duration, reset),
		cmocka_unit_test_setup(test_threads_never_overadmit, reset),
		cmocka_unit_test_setup(test_eviction_bounds_memory, reset),
	};
	int rc = cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);

	rl_reset_all();
	return rc;
}
