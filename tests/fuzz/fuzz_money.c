/* fuzz_money.c - credit amounts.
 *
 * Text mode (any input not starting with 0x01): the input up to its first
 * NUL is given to money_parse(). The result (TG_OK / TG_EINVAL / TG_ERANGE
 * and the value) must match an independent reference of the documented
 * grammar, an error must come with a message and leave *out untouched, and
 * on success money_format() and money_format_short() must parse back to the
 * same value exactly.
 * Number mode (0x01 then 56 bytes): seven int64 values drive money_cost(),
 * money_cost_usage(), money_add(), money_sub() and money_max_output_tokens(),
 * each checked against 128-bit reference arithmetic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/money.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_money: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

__extension__ typedef __int128 i128;

static int dig(char c)
{
	return c >= '0' && c <= '9';
}

static int ref_parse(const char *s, i128 *v)
{
	const char *p = s;
	int neg = 0;
	size_t nint = 0, nfrac = 0;
	i128 m = 0;
	int big = 0;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	while (dig(*p)) {
		if (!big) {
			m = m * 10 + (*p - '0');
			if (m > (i128)1 << 100)
				big = 1;
		}
		p++;
		nint++;
	}
	m *= MONEY_SCALE;
	if (*p == '.') {
		i128 f = 0, scale = MONEY_SCALE;

		p++;
		while (dig(*p)) {
			scale /= 10;
			if (nfrac < 6)
				f += (i128)(*p - '0') * scale;
			p++;
			nfrac++;
		}
		if (nfrac == 0 || nfrac > 6)
			return TG_EINVAL;
		m += f;
	}
	if (*p || nint == 0)
		return TG_EINVAL;
	if (neg)
		m = -m;
	if (big || m > INT64_MAX || m < INT64_MIN)
		return TG_ERANGE;
	*v = m;
	return TG_OK;
}

static void text_mode(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), buf[MONEY_FMT_LEN];
	int64_t v = 7, v2 = 0;
	const char *why = NULL;
	i128 want = 0;
	int rc, wrc;

	CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	rc = money_parse(s, &v, &why);
	wrc = ref_parse(s, &want);
	CHECK(rc == wrc);
	if (rc == TG_OK) {
		CHECK(v == (int64_t)want);
		CHECK(why == NULL);
		money_format(v, buf);
		CHECK(strlen(buf) < MONEY_FMT_LEN);
		CHECK(money_parse(buf, &v2, NULL) == TG_OK && v2 == v);
		money_format_short(v, buf);
		CHECK(strlen(buf) < MONEY_FMT_LEN);
		v2 = 0;
		CHECK(money_parse(buf, &v2, NULL) == TG_OK && v2 == v);
	} else {
		CHECK(v == 7);
		CHECK(why != NULL && why[0] != '\0');
	}
	free(s);
}

static i128 ref_cost(int64_t in, int64_t ca, int64_t out, const money_price_t *p, int *ok)
{
	unsigned __int128 sum = (unsigned __int128)in * (uint64_t)p->in +
				(unsigned __int128)ca * (uint64_t)p->cached_in +
				(unsigned __int128)out * (uint64_t)p->out;
	unsigned __int128 q = sum / 1000000u + (sum % 1000000u != 0);

	*ok = q <= (unsigned __int128)INT64_MAX;
	return (i128)q;
}

static void number_mode(const uint8_t *data)
{
	int64_t x[7], cost = -5, r = -5;
	money_price_t p;
	i128 w;
	int rc, ok, i;

	memcpy(x, data, sizeof(x));
	/* Mostly small, sometimes anything: shrink some values by the low bits. */
	for (i = 0; i < 7; i++)
		if (x[i] & 1)
			x[i] >>= (x[i] >> 1 & 63) | 8;
	p.in = x[3];
	p.cached_in = x[4];
	p.out = x[5];

	rc = money_cost(x[0], x[1], x[2], &p, &cost);
	if (x[0] < 0 || x[1] < 0 || x[2] < 0 || p.in < 0 || p.cached_in < 0 || p.out < 0) {
		CHECK(rc == TG_EINVAL && cost == -5);
	} else {
		w = ref_cost(x[0], x[1], x[2], &p, &ok);
		CHECK(rc == (ok ? TG_OK : TG_ERANGE));
		if (ok)
			CHECK(cost == (int64_t)w);
	}
	CHECK(money_cost(x[0], x[1], x[2], NULL, &cost) == TG_EINVAL);

	/* usage form: prompt includes cached */
	rc = money_cost_usage(x[0], x[1], x[2], &p, &cost);
	if (rc == TG_OK) {
		CHECK(x[1] <= x[0]);
		w = ref_cost(x[0] - x[1], x[1], x[2], &p, &ok);
		CHECK(ok && cost == (int64_t)w);
	} else if (x[0] >= 0 && x[1] >= 0 && x[2] >= 0 && x[1] <= x[0] && p.in >= 0 &&
		   p.cached_in >= 0 && p.out >= 0) {
		CHECK(rc == TG_ERANGE);
	}

	/* add / sub */
	w = (i128)x[0] + x[6];
	rc = money_add(x[0], x[6], &r);
	CHECK((rc == TG_OK) == (w >= INT64_MIN && w <= INT64_MAX));
	if (rc == TG_OK)
		CHECK(r == (int64_t)w);
	w = (i128)x[0] - x[6];
	rc = money_sub(x[0], x[6], &r);
	CHECK((rc == TG_OK) == (w >= INT64_MIN && w <= INT64_MAX));
	if (rc == TG_OK)
		CHECK(r == (int64_t)w);

	/* largest output that fits: cost(n) <= avail < cost(n + 1) */
	r = money_max_output_tokens(x[6], x[0], x[1], &p);
	if (r >= 0) {
		CHECK(money_cost(x[0], x[1], r, &p, &cost) == TG_OK && cost <= x[6]);
		if (r < INT64_MAX) {
			rc = money_cost(x[0], x[1], r + 1, &p, &cost);
			CHECK(rc == TG_ERANGE || (rc == TG_OK && cost > x[6]));
		}
	} else {
		CHECK(r == -1);
		rc = money_cost(x[0], x[1], 0, &p, &cost);
		CHECK(rc != TG_OK || cost > x[6]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 57 && data[0] == 0x01)
		number_mode(data + 1);
	else if (size < 4096)
		text_mode(data, size);
	return 0;
}
