/* Unit tests for micro-credit parsing, formatting and call cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ledger/money.h"

/* Deterministic PRNG (splitmix64) so every run checks the same cases. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 2^bits - 1] for a random bits in 0..63: covers small and
 * huge magnitudes alike. */
static int64_t rng_nonneg(void)
{
	unsigned bits = (unsigned)(rng_next() % 64);

	return (int64_t)(rng_next() & ((bits ? (UINT64_C(1) << bits) : 1) - 1));
}

/* Same but at most 2^max_bits - 1. */
static int64_t rng_upto_bits(unsigned max_bits)
{
	unsigned bits = (unsigned)(rng_next() % (max_bits + 1));

	return (int64_t)(rng_next() & ((UINT64_C(1) << bits) - 1));
}

/* --- parse ------------------------------------------------------------- */

struct parse_case {
	const char *s;
	int rc;
	int64_t v;
};

static void test_parse_table(void **state)
{
	static const struct parse_case cases[] = {
		/* good */
		{ "0", TG_OK, 0 },
		{ "-0", TG_OK, 0 },
		{ "+0", TG_OK, 0 },
		{ "0.0", TG_OK, 0 },
		{ "-0.000000", TG_OK, 0 },
		{ "1", TG_OK, 1000000 },
		{ "12.5", TG_OK, 12500000 },
		{ "12.50", TG_OK, 12500000 },
		{ "0.000001", TG_OK, 1 },
		{ "-0.000001", TG_OK, -1 },
		{ "0.1", TG_OK, 100000 },
		{ "1.234567", TG_OK, 1234567 },
		{ "-3", TG_OK, -3000000 },
		{ "+2", TG_OK, 2000000 },
		{ "1000000", TG_OK, 1000000000000LL },
		{ "007.50", TG_OK, 7500000 },
		{ "-007", TG_OK, -7000000 },
		{ "00000000000000000000000000000000001", TG_OK, 1000000 },
		{ "0000000000000000000000000.000001", TG_OK, 1 },
		{ "9223372036854", TG_OK, 9223372036854000000LL },
		{ "9223372036854.775807", TG_OK, INT64_MAX },
		{ "+9223372036854.775807", TG_OK, INT64_MAX },
		{ "00009223372036854.775807", TG_OK, INT64_MAX },
		{ "-9223372036854.775807", TG_OK, -INT64_MAX },
		{ "-9223372036854.775808", TG_OK, INT64_MIN },
		{ "-9223372036854", TG_OK, -9223372036854000000LL },
		/* malformed */
		{ NULL, TG_EINVAL, 0 },
		{ "", TG_EINVAL, 0 },
		{ "+", TG_EINVAL, 0 },
		{ "-", TG_EINVAL, 0 },
		{ ".", TG_EINVAL, 0 },
		{ "-.", TG_EINVAL, 0 },
		{ "1.", TG_EINVAL, 0 },
		{ "-1.", TG_EINVAL, 0 },
		{ ".5", TG_EINVAL, 0 },
		{ "-.5", TG_EINVAL, 0 },
		{ " 1", TG_EINVAL, 0 },
		{ "1 ", TG_EINVAL, 0 },
		{ "\t1", TG_EINVAL, 0 },
		{ "1\n", TG_EINVAL, 0 },
		{ "- 1", TG_EINVAL, 0 },
		{ "1,000", TG_EINVAL, 0 },
		{ "1,5", TG_EINVAL, 0 },
		{ "1_000", TG_EINVAL, 0 },
		{ "1e6", TG_EINVAL, 0 },
		{ "1E6", TG_EINVAL, 0 },
		{ "1.5e-3", TG_EINVAL, 0 },
		{ "0x10", TG_EINVAL, 0 },
		{ "1.5.2", TG_EINVAL, 0 },
		{ "1..5", TG_EINVAL, 0 },
		{ "--1", TG_EINVAL, 0 },
		{ "+-1", TG_EINVAL, 0 },
		{ "1-", TG_EINVAL, 0 },
		{ "1.-5", TG_EINVAL, 0 },
		{ "abc", TG_EINVAL, 0 },
		{ "inf", TG_EINVAL, 0 },
		{ "nan", TG_EINVAL, 0 },
		{ "$5", TG_EINVAL, 0 },
		{ "\xd9\xa1", TG_EINVAL, 0 }, /* ARABIC-INDIC DIGIT ONE */
		{ "0.0000001", TG_EINVAL, 0 },
		{ "1.1234567", TG_EINVAL, 0 },
		{ "0.0000000", TG_EINVAL, 0 },
		/* syntax is judged before range */
		{ "99999999999999999999999.1234567", TG_EINVAL, 0 },
		{ "99999999999999999999999x", TG_EINVAL, 0 },
		/* out of range */
		{ "9223372036854.775808", TG_ERANGE, 0 },
		{ "-9223372036854.775809", TG_ERANGE, 0 },
		{ "9223372036855", TG_ERANGE, 0 },
		{ "-9223372036855", TG_ERANGE, 0 },
		{ "9223372036854.8", TG_ERANGE, 0 },
		{ "9999999999999", TG_ERANGE, 0 },
		{ "18446744073709.551615", TG_ERANGE, 0 },
		{ "18446744073709.551616", TG_ERANGE, 0 },
		{ "18446744073709551615", TG_ERANGE, 0 },
		{ "18446744073709551616", TG_ERANGE, 0 },
		{ "-18446744073709551616", TG_ERANGE, 0 },
		{ "99999999999999999999999999999999999999999", TG_ERANGE, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		const char *why = "untouched";
		int64_t v = 424242;
		int rc = money_parse(cases[i].s, &v, &why);

		if (rc != cases[i].rc || (rc == TG_OK && v != cases[i].v))
			fail_msg("case %zu \"%s\": rc %d (want %d), value %lld (want %lld)", i,
				 cases[i].s ? cases[i].s : "(null)", rc, cases[i].rc, (long long)v,
				 (long long)cases[i].v);
		if (rc == TG_OK) {
			assert_string_equal(why, "untouched");
		} else {
			assert_int_equal(v, 424242); /* untouched on error */
			assert_non_null(why);
			assert_string_not_equal(why, "untouched");
			assert_true(strlen(why) > 5);
			assert_int_equal(money_parse(cases[i].s, &v, NULL), rc); /* why optional */
		}
	}
}

static void test_parse_messages(void **state)
{
	const char *why = NULL;
	int64_t v;

	(void)state;
	assert_int_equal(money_parse("0.0000001", &v, &why), TG_EINVAL);
	assert_string_equal(why, "Too many decimal places (at most 6).");
	assert_int_equal(money_parse("9223372036854.775808", &v, &why), TG_ERANGE);
	assert_string_equal(why, "Amount is too large.");
	assert_int_equal(money_parse(".5", &v, &why), TG_EINVAL);
	assert_non_null(strstr(why, "0.5"));
	assert_int_equal(money_parse("", &v, &why), TG_EINVAL);
	assert_string_equal(why, "Enter an amount.");
}

/* --- format ------------------------------------------------------------ */

struct fmt_case {
	int64_t v;
	const char *full;
	const char *shrt;
};

static void test_format_table(void **state)
{
	static const struct fmt_case cases[] = {
		{ 0, "0.000000", "0.00" },
		{ 1, "0.000001", "0.000001" },
		{ -1, "-0.000001", "-0.000001" },
		{ 10, "0.000010", "0.00001" },
		{ 10000, "0.010000", "0.01" },
		{ 100000, "0.100000", "0.10" },
		{ -100000, "-0.100000", "-0.10" },
		{ 999999, "0.999999", "0.999999" },
		{ -999999, "-0.999999", "-0.999999" },
		{ 1000000, "1.000000", "1.00" },
		{ -1000000, "-1.000000", "-1.00" },
		{ 1230000, "1.230000", "1.23" },
		{ 1234000, "1.234000", "1.234" },
		{ 1234567, "1.234567", "1.234567" },
		{ 12500000, "12.500000", "12.50" },
		{ -12500000, "-12.500000", "-12.50" },
		{ 1000000000000LL, "1000000.000000", "1000000.00" },
		{ 123456789012345678LL, "123456789012.345678", "123456789012.345678" },
		{ INT64_MAX, "9223372036854.775807", "9223372036854.775807" },
		{ INT64_MAX - 775807, "9223372036854.000000", "9223372036854.00" },
		{ INT64_MIN, "-9223372036854.775808", "-9223372036854.775808" },
		{ INT64_MIN + 1, "-9223372036854.775807", "-9223372036854.775807" },
		{ -9223372036854000000LL, "-9223372036854.000000", "-9223372036854.00" },
	};
	char buf[MONEY_FMT_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		memset(buf, 'x', sizeof(buf));
		money_format(cases[i].v, buf);
		assert_string_equal(buf, cases[i].full);
		memset(buf, 'x', sizeof(buf));
		money_format_short(cases[i].v, buf);
		assert_string_equal(buf, cases[i].shrt);
	}
}

static void check_roundtrip(int64_t x)
{
	char buf[MONEY_FMT_LEN];
	int64_t back = 0;
	char *dot;

	money_format(x, buf);
	dot = strchr(buf, '.');
	assert_non_null(dot);
	assert_int_equal(strlen(dot + 1), 6);
	if (money_parse(buf, &back, NULL) != TG_OK || back != x)
		fail_msg("format/parse of %lld gave \"%s\" -> %lld", (long long)x, buf,
			 (long long)back);
	money_format_short(x, buf);
	dot = strchr(buf, '.');
	assert_non_null(dot);
	assert_in_range(strlen(dot + 1), 2, 6);
	if (money_parse(buf, &back, NULL) != TG_OK || back != x)
		fail_msg("format_short/parse of %lld gave \"%s\" -> %lld", (long long)x, buf,
			 (long long)back);
}

static void test_roundtrip_random(void **state)
{
	static const int64_t edges[] = {
		0,
		1,
		-1,
		9,
		-9,
		10,
		99,
		100,
		999999,
		1000000,
		1000001,
		-1000001,
		INT64_MAX,
		INT64_MAX - 1,
		INT64_MIN,
		INT64_MIN + 1,
		INT64_MAX / 2,
	};
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(edges); i++)
		check_roundtrip(edges[i]);
	rng_seed(20240601);
	for (i = 0; i < 200000; i++) {
		int64_t x;

		switch (i % 4) {
		case 0:
			x = (int64_t)rng_next();
			break; /* full range */
		case 1:
			x = rng_nonneg();
			break; /* any magnitude */
		case 2:
			x = -rng_nonneg();
			break;
		default:
			x = rng_upto_bits(40) * 10000 * ((i & 8) ? -1 : 1);
			break; /* round cents */
		}
		check_roundtrip(x);
	}
}

/* --- cost -------------------------------------------------------------- */

static int64_t cost_of(int64_t in, int64_t cached, int64_t out, const money_price_t *p)
{
	int64_t c = -12345;

	assert_int_equal(money_cost(in, cached, out, p, &c), TG_OK);
	return c;
}

static void test_cost_rounding(void **state)
{
	const money_price_t one = { 1, 1, 1, 0 };
	const money_price_t per_credit = { 1000000, 1000000, 1000000, 0 };
	const money_price_t gpt = { 2500000, 1250000, 10000000, 0 }; /* 2.50 / 1.25 / 10.00 */
	const money_price_t zero = { 0, 0, 0, 0 };

	(void)state;
	/* 1 token at 1 micro per 1M tokens still costs 1 micro. */
	assert_int_equal(cost_of(1, 0, 0, &one), 1);
	assert_int_equal(cost_of(0, 1, 0, &one), 1);
	assert_int_equal(cost_of(0, 0, 1, &one), 1);
	assert_int_equal(cost_of(0, 0, 0, &one), 0);
	assert_int_equal(cost_of(0, 0, 0, &gpt), 0);
	assert_int_equal(cost_of(1000000, 1000000, 1000000, &zero), 0);
	/* Exact multiples are not rounded up. */
	assert_int_equal(cost_of(1000000, 0, 0, &one), 1);
	assert_int_equal(cost_of(1000001, 0, 0, &one), 2);
	assert_int_equal(cost_of(999999, 0, 0, &one), 1);
	assert_int_equal(cost_of(2000000, 0, 0, &one), 2);
	assert_int_equal(cost_of(3, 0, 0, &per_credit), 3);
	assert_int_equal(cost_of(1000000, 0, 0, &gpt), 2500000);
	assert_int_equal(cost_of(0, 0, 1000000, &gpt), 10000000);
	assert_int_equal(cost_of(400, 0, 0, &gpt), 1000); /* 400 * 2.5 exactly */
	assert_int_equal(cost_of(401, 0, 0, &gpt), 1003); /* 1002.5 -> 1003 */
	/* 800 * 2.5 + 200 * 1.25 + 500 * 10 = 2000 + 250 + 5000 micro. */
	assert_int_equal(cost_of(800, 200, 500, &gpt), 7250);
	/* One rounding on the sum: per-term ceil would give 1 + 1 = 2 (and 3). */
	assert_int_equal(cost_of(1, 0, 1, &one), 1);
	assert_int_equal(cost_of(1, 1, 1, &one), 1);
	/* 1 * 2.5 + 1 * 10 = 12.5 -> 13; per term: ceil(2.5) + ceil(10) = 13 too,
	 * but 3 * 0.5 = 1.5 -> 2 vs per-term 1 + 1 + 1 = 3. */
	{
		const money_price_t half = { 500000, 500000, 500000, 0 };

		assert_int_equal(cost_of(1, 1, 1, &half), 2);
		assert_int_equal(cost_of(1, 0, 1, &half), 1);
	}
	/* Mixed fractions: 0.3 + 0.3 + 0.4 = 1.0 exactly -> 1, per term 3. */
	{
		const money_price_t mix = { 300000, 300000, 400000, 0 };

		assert_int_equal(cost_of(1, 1, 1, &mix), 1);
	}
}

static void test_cost_invalid_and_overflow(void **state)
{
	const money_price_t one = { 1, 1, 1, 0 };
	const money_price_t big = { INT64_MAX, INT64_MAX, INT64_MAX, 0 };
	const money_price_t neg_in = { -1, 0, 0, 0 };
	const money_price_t neg_cached = { 0, -1, 0, 0 };
	const money_price_t neg_out = { 0, 0, -1, 0 };
	const money_price_t scale = { 1000000, 0, 0, 0 };
	int64_t c = 77;

	(void)state;
	assert_int_equal(money_cost(-1, 0, 0, &one, &c), TG_EINVAL);
	assert_int_equal(money_cost(0, -1, 0, &one, &c), TG_EINVAL);
	assert_int_equal(money_cost(0, 0, -1, &one, &c), TG_EINVAL);
	assert_int_equal(money_cost(INT64_MIN, 0, 0, &one, &c), TG_EINVAL);
	assert_int_equal(money_cost(1, 0, 0, &neg_in, &c), TG_EINVAL);
	assert_int_equal(money_cost(0, 1, 0, &neg_cached, &c), TG_EINVAL);
	assert_int_equal(money_cost(0, 0, 1, &neg_out, &c), TG_EINVAL);
	assert_int_equal(money_cost(0, 0, 0, &neg_out, &c), TG_EINVAL); /* even with 0 tokens */
	assert_int_equal(money_cost(1, 1, 1, NULL, &c), TG_EINVAL);
	assert_int_equal(money_cost(1, 1, 1, &one, NULL), TG_EINVAL);
	assert_int_equal(c, 77);

	/* Largest inputs: the 128-bit sum holds, only the int64 result fails. */
	assert_int_equal(money_cost(INT64_MAX, INT64_MAX, INT64_MAX, &big, &c), TG_ERANGE);
	assert_int_equal(money_cost(INT64_MAX, 0, 0, &big, &c), TG_ERANGE);
	assert_int_equal(money_cost(0, 0, INT64_MAX, &big, &c), TG_ERANGE);
	assert_int_equal(c, 77);
	/* Right at the edge: INT64_MAX tokens at 1 credit per 1M tokens. */
	assert_int_equal(money_cost(INT64_MAX, 0, 0, &scale, &c), TG_OK);
	assert_int_equal(c, INT64_MAX);
	assert_int_equal(money_cost(INT64_MAX, 0, 1, &(money_price_t){ 1000000, 0, 1, 0 }, &c),
			 TG_ERANGE);
	/* INT64_MAX * 1 / 1M rounded up: nowhere near overflow. */
	assert_int_equal(money_cost(INT64_MAX, INT64_MAX, INT64_MAX, &one, &c), TG_OK);
	assert_int_equal(c, (int64_t)(((unsigned __int128)INT64_MAX * 3 + 999999) / 1000000));
	/* Products that overflow int64 but whose quotient fits are fine. */
	assert_int_equal(money_cost(4000000000000LL, 0, 0,
				    &(money_price_t){ 4000000000LL, 0, 0, 0 }, &c),
			 TG_OK);
	assert_int_equal(c, 16000000000000000LL);
	/* Sum overflowing just past INT64_MAX * 1M: quotient INT64_MAX + 1. */
	assert_int_equal(money_cost(INT64_MAX, 1000000, 0, &(money_price_t){ 1000000, 1, 0, 0 },
				    &c),
			 TG_ERANGE);
}

static void test_cost_usage(void **state)
{
	const money_price_t gpt = { 2500000, 1250000, 10000000, 0 };
	int64_t c = 5, d = 6;

	(void)state;
	/* prompt 1000 including 200 cached: 800 at input, 200 at cached. */
	assert_int_equal(money_cost_usage(1000, 200, 500, &gpt, &c), TG_OK);
	assert_int_equal(money_cost(800, 200, 500, &gpt, &d), TG_OK);
	assert_int_equal(c, d);
	assert_int_equal(c, 7250);
	assert_int_equal(money_cost_usage(1000, 0, 0, &gpt, &c), TG_OK);
	assert_int_equal(c, 2500);
	assert_int_equal(money_cost_usage(1000, 1000, 0, &gpt, &c), TG_OK);
	assert_int_equal(c, 1250);
	c = 5;
	assert_int_equal(money_cost_usage(100, 101, 0, &gpt, &c), TG_EINVAL);
	assert_int_equal(money_cost_usage(-1, 0, 0, &gpt, &c), TG_EINVAL);
	assert_int_equal(money_cost_usage(10, -1, 0, &gpt, &c), TG_EINVAL);
	assert_int_equal(money_cost_usage(10, 0, -1, &gpt, &c), TG_EINVAL);
	assert_int_equal(money_cost_usage(10, 0, 0, NULL, &c), TG_EINVAL);
	assert_int_equal(c, 5);
	assert_int_equal(money_cost_usage(INT64_MAX, 0, 0, &(money_price_t){ INT64_MAX, 0, 0, 0 },
					  &c),
			 TG_ERANGE);
}

/* --- max output tokens -------------------------------------------------- */

/* Does n output tokens fit? An overflowing cost never fits. */
static int fits(int64_t avail, int64_t in, int64_t cached, int64_t n, const money_price_t *p)
{
	int64_t c;
	int rc = money_cost(in, cached, n, p, &c);

	if (rc == TG_ERANGE)
		return 0;
	assert_int_equal(rc, TG_OK);
	return c <= avail;
}

/* Reference answer by binary search over [0, INT64_MAX] using money_cost. */
static int64_t ref_max(int64_t avail, int64_t in, int64_t cached, const money_price_t *p)
{
	int64_t lo = 0, hi = INT64_MAX;

	if (!fits(avail, in, cached, 0, p))
		return -1;
	if (fits(avail, in, cached, hi, p))
		return hi;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (fits(avail, in, cached, mid, p))
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void check_max(int64_t avail, int64_t in, int64_t cached, const money_price_t *p)
{
	int64_t n = money_max_output_tokens(avail, in, cached, p);
	int64_t want = ref_max(avail, in, cached, p);

	if (n != want)
		fail_msg("avail %lld in %lld cached %lld price %lld/%lld/%lld: got %lld want %lld",
			 (long long)avail, (long long)in, (long long)cached, (long long)p->in,
			 (long long)p->cached_in, (long long)p->out, (long long)n, (long long)want);
	if (n >= 0) {
		assert_true(fits(avail, in, cached, n, p));
		if (n < INT64_MAX)
			assert_false(fits(avail, in, cached, n + 1, p));
	} else {
		assert_false(fits(avail, in, cached, 0, p));
	}
}

static void test_max_output_random(void **state)
{
	int i;

	(void)state;
	rng_seed(402);
	/* Realistic sizes: a linear scan is cheap enough to double-check. */
	for (i = 0; i < 3000; i++) {
		money_price_t p = {
			(int64_t)(rng_next() % 20000000),
			(int64_t)(rng_next() % 10000000),
			(int64_t)(rng_next() % 80000000) + 1000,
			0,
		};
		int64_t in = (int64_t)(rng_next() % 5000);
		int64_t cached = (int64_t)(rng_next() % 5000);
		int64_t avail = (int64_t)(rng_next() % 300000) - 1000;
		int64_t n = money_max_output_tokens(avail, in, cached, &p), k;

		check_max(avail, in, cached, &p);
		if (n >= 0 && n < 200000) {
			for (k = 0; k <= n; k += 1 + n / 50)
				assert_true(fits(avail, in, cached, k, &p));
			for (k = n + 1; k < n + 100; k++)
				assert_false(fits(avail, in, cached, k, &p));
		}
	}
	/* Any magnitude, including overflowing bases and zero prices. */
	for (i = 0; i < 5000; i++) {
		money_price_t p = { rng_nonneg(), rng_nonneg(), rng_nonneg(), 0 };

		if (i % 7 == 0)
			p.out = 0;
		if (i % 11 == 0)
			p.in = 1;
		check_max(rng_nonneg(), rng_nonneg(), rng_nonneg(), &p);
		check_max(rng_upto_bits(40), rng_upto_bits(32), rng_upto_bits(32), &p);
		check_max(-rng_upto_bits(20) - 1, rng_upto_bits(20), 0, &p);
	}
}

static void test_max_output_edges(void **state)
{
	const money_price_t gpt = { 2500000, 1250000, 10000000, 0 };
	const money_price_t free_out = { 1000000, 0, 0, 0 };
	const money_price_t tiny = { 0, 0, 1, 0 };
	const money_price_t neg = { 0, 0, -1, 0 };

	(void)state;
	/* 1000 input tokens cost 2500 micro; each output token 10 micro. */
	assert_int_equal(money_max_output_tokens(2500, 1000, 0, &gpt), 0);
	assert_int_equal(money_max_output_tokens(2499, 1000, 0, &gpt), -1);
	assert_int_equal(money_max_output_tokens(2510, 1000, 0, &gpt), 1);
	assert_int_equal(money_max_output_tokens(2519, 1000, 0, &gpt), 1);
	assert_int_equal(money_max_output_tokens(1000000, 0, 0, &gpt), 100000);
	/* Rounding slack: 1 input token = 2.5 micro, so 3 micro leaves 0.5
	 * micro, worth 0 output tokens at 10 micro each ... */
	assert_int_equal(money_max_output_tokens(3, 1, 0, &gpt), 0);
	/* ... but at 1 micro per 1M output tokens the slack buys 500000. */
	assert_int_equal(money_max_output_tokens(3, 1, 0, &(money_price_t){ 2500000, 0, 1, 0 }),
			 500000);
	/* Free output: everything fits once the input does. */
	assert_int_equal(money_max_output_tokens(1, 1, 0, &free_out), INT64_MAX);
	assert_int_equal(money_max_output_tokens(0, 1, 0, &free_out), -1);
	assert_int_equal(money_max_output_tokens(0, 0, 0, &free_out), INT64_MAX);
	/* Negative balance: nothing fits, not even a free call. */
	assert_int_equal(money_max_output_tokens(-1, 0, 0, &free_out), -1);
	assert_int_equal(money_max_output_tokens(INT64_MIN, 0, 0, &gpt), -1);
	/* Huge balance, tiny price: clamp to INT64_MAX. */
	assert_int_equal(money_max_output_tokens(INT64_MAX, 0, 0, &tiny), INT64_MAX);
	/* Base cost overflows int64: does not fit. */
	assert_int_equal(money_max_output_tokens(INT64_MAX, INT64_MAX, 0,
						 &(money_price_t){ INT64_MAX, 0, 1, 0 }),
			 -1);
	/* Invalid arguments. */
	assert_int_equal(money_max_output_tokens(100, -1, 0, &gpt), -1);
	assert_int_equal(money_max_output_tokens(100, 0, -1, &gpt), -1);
	assert_int_equal(money_max_output_tokens(100, 0, 0, &neg), -1);
	assert_int_equal(money_max_output_tokens(100, 0, 0, NULL), -1);
}

/* --- add / sub ---------------------------------------------------------- */

static void test_add_sub(void **state)
{
	int64_t r = 99;

	(void)state;
	assert_int_equal(money_add(1, 2, &r), TG_OK);
	assert_int_equal(r, 3);
	assert_int_equal(money_add(-5, 3, &r), TG_OK);
	assert_int_equal(r, -2);
	assert_int_equal(money_add(INT64_MAX, 0, &r), TG_OK);
	assert_int_equal(r, INT64_MAX);
	assert_int_equal(money_add(INT64_MAX, INT64_MIN, &r), TG_OK);
	assert_int_equal(r, -1);
	assert_int_equal(money_add(INT64_MIN, 0, &r), TG_OK);
	assert_int_equal(r, INT64_MIN);
	r = 99;
	assert_int_equal(money_add(INT64_MAX, 1, &r), TG_ERANGE);
	assert_int_equal(money_add(1, INT64_MAX, &r), TG_ERANGE);
	assert_int_equal(money_add(INT64_MIN, -1, &r), TG_ERANGE);
	assert_int_equal(money_add(INT64_MIN, INT64_MIN, &r), TG_ERANGE);
	assert_int_equal(money_add(INT64_MAX, INT64_MAX, &r), TG_ERANGE);
	assert_int_equal(r, 99);

	assert_int_equal(money_sub(5, 3, &r), TG_OK);
	assert_int_equal(r, 2);
	assert_int_equal(money_sub(3, 5, &r), TG_OK);
	assert_int_equal(r, -2);
	assert_int_equal(money_sub(0, INT64_MAX, &r), TG_OK);
	assert_int_equal(r, -INT64_MAX);
	assert_int_equal(money_sub(-1, INT64_MAX, &r), TG_OK);
	assert_int_equal(r, INT64_MIN);
	assert_int_equal(money_sub(INT64_MIN, INT64_MIN, &r), TG_OK);
	assert_int_equal(r, 0);
	r = 99;
	assert_int_equal(money_sub(0, INT64_MIN, &r), TG_ERANGE);
	assert_int_equal(money_sub(-2, INT64_MAX, &r), TG_ERANGE);
	assert_int_equal(money_sub(INT64_MAX, -1, &r), TG_ERANGE);
	assert_int_equal(money_sub(INT64_MIN, 1, &r), TG_ERANGE);
	assert_int_equal(r, 99);
}

static void test_add_sub_random(void **state)
{
	int i;

	(void)state;
	rng_seed(7);
	for (i = 0; i < 100000; i++) {
		int64_t a = (i & 1) ? (int64_t)rng_next() : rng_nonneg();
		int64_t b = (i & 2) ? (int64_t)rng_next() : -rng_nonneg();
		__int128 s = (__int128)a + b, d = (__int128)a - b;
		int64_t r;
		int rc;

		rc = money_add(a, b, &r);
		if (s > INT64_MAX || s < INT64_MIN) {
			assert_int_equal(rc, TG_ERANGE);
		} else {
			assert_int_equal(rc, TG_OK);
			assert_true(r == (int64_t)s);
		}
		rc = money_sub(a, b, &r);
		if (d > INT64_MAX || d < INT64_MIN) {
			assert_int_equal(rc, TG_ERANGE);
		} else {
			assert_int_equal(rc, TG_OK);
			assert_true(r == (int64_t)d);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_messages),
		cmocka_unit_test(test_format_table),
		cmocka_unit_test(test_roundtrip_random),
		cmocka_unit_test(test_cost_rounding),
		cmocka_unit_test(test_cost_invalid_and_overflow),
		cmocka_unit_test(test_cost_usage),
		cmocka_unit_test(test_max_output_random),
		cmocka_unit_test(test_max_output_edges),
		cmocka_unit_test(test_add_sub),
		cmocka_unit_test(test_add_sub_random),
	};
	return cmocka_run_group_tests_name("money", tests, NULL, NULL);
}
