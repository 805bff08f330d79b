/* money.c - micro-credit parsing, formatting and call cost; see money.h. */
#include "ledger/money.h"

#include <string.h>

/* 128-bit unsigned: three products of two int64 values, each below 2^126,
 * sum to less than 2^128, so nothing in the cost path can wrap. */
__extension__ typedef unsigned __int128 money_u128;

#define MONEY_DECIMALS 6

static int money_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int money_parse(const char *s, int64_t *out, const char **why)
{
	const char *p, *int_start, *frac_start = NULL;
	const char *msg = NULL;
	size_t int_len, frac_len = 0, i;
	uint64_t limit, mag = 0, frac = 0;
	int neg = 0, rc = TG_OK;

	if (!s || !*s) {
		rc = TG_EINVAL;
		msg = "Enter an amount.";
		goto out;
	}

	/* Syntax first, so that a malformed input is never reported as a range
	 * problem. */
	p = s;
	if (*p == '+' || *p == '-') {
		neg = *p == '-';
		p++;
	}
	int_start = p;
	while (money_is_digit(*p))
		p++;
	int_len = (size_t)(p - int_start);
	if (*p == '.') {
		p++;
		frac_start = p;
		while (money_is_digit(*p))
			p++;
		frac_len = (size_t)(p - frac_start);
	}
	if (*p != '\0') {
		rc = TG_EINVAL;
		msg = "Amount must be a plain number like 12.50: digits, an optional sign and "
		      "decimal point, no spaces, commas or exponents.";
		goto out;
	}
	if (int_len == 0) {
		rc = TG_EINVAL;
		msg = frac_start ? "Write a digit before the decimal point, like 0.5." :
				   "Amount has no digits.";
		goto out;
	}
	if (frac_start && frac_len == 0) {
		rc = TG_EINVAL;
		msg = "Write digits after the decimal point, or leave the point out.";
		goto out;
	}
	if (frac_len > MONEY_DECIMALS) {
		rc = TG_EINVAL;
		msg = "Too many decimal places (at most 6).";
		goto out;
	}

	/* Value: magnitude in micro-credits, at most 2^63 when negative. */
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (i = 0; i < int_len; i++) {
		uint64_t d = (uint64_t)(int_start[i] - '0');

		if (mag > (limit - d) / 10)
			goto range;
		mag = mag * 10 + d;
	}
	if (mag > limit / (uint64_t)MONEY_SCALE)
		goto range;
	mag *= (uint64_t)MONEY_SCALE;
	for (i = 0; i < MONEY_DECIMALS; i++)
		frac = frac * 10 + (i < frac_len ? (uint64_t)(frac_start[i] - '0') : 0);
	if (frac > limit - mag)
		goto range;
	mag += frac;

	if (neg)
		*out = mag ? -(int64_t)(mag - 1) - 1 : 0;
	else
		*out = (int64_t)mag;
	goto out;

range:
	rc = TG_ERANGE;
	msg = "Amount is too large.";
out:
	if (rc && why)
		*why = msg;
	return rc;
}

void money_format(int64_t micro, char out[MONEY_FMT_LEN])
{
	char tmp[MONEY_FMT_LEN];
	uint64_t mag = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
	size_t n = 0, o = 0;

	/* Digits in reverse: six decimals, the point, then at least one integer
	 * digit. */
	do {
		tmp[n++] = (char)('0' + mag % 10);
		mag /= 10;
		if (n == MONEY_DECIMALS)
			tmp[n++] = '.';
	} while (mag || n <= MONEY_DECIMALS + 1);
	if (micro < 0)
		out[o++] = '-';
	while (n)
		out[o++] = tmp[--n];
	out[o] = '\0';
}

void money_format_short(int64_t micro, char out[MONEY_FMT_LEN])
{
	size_t len, dot;

	money_format(micro, out);
	len = strlen(out);
	dot = len - MONEY_DECIMALS - 1;
	while (len - dot - 1 > 2 && out[len - 1] == '0')
		len--;
	out[len] = '\0';
}

int money_cost(int64_t in_tok, int64_t cached_tok, int64_t out_tok, const money_price_t *p,
	       int64_t *cost)
{
	money_u128 sum, q;
	int rc = TG_OK;

	if (!p || !cost || in_tok < 0 || cached_tok < 0 || out_tok < 0 || p->in < 0 ||
	    p->cached_in < 0 || p->out < 0) {
		rc = TG_EINVAL;
		goto out;
	}
	sum = (money_u128)in_tok * (money_u128)p->in +
	      (money_u128)cached_tok * (money_u128)p->cached_in +
	      (money_u128)out_tok * (money_u128)p->out;
	q = sum / (money_u128)MONEY_PER_TOKENS;
	if (sum % (money_u128)MONEY_PER_TOKENS)
		q++;
	if (q > (money_u128)INT64_MAX) {
		rc = TG_ERANGE;
		goto out;
	}
	*cost = (int64_t)q;
out:
	return rc;
}

int money_cost_usage(int64_t prompt_tokens, int64_t cached_tokens, int64_t completion_tokens,
		     const money_price_t *p, int64_t *cost)
{
	if (prompt_tokens < 0 || cached_tokens < 0 || cached_tokens > prompt_tokens)
		return TG_EINVAL;
	return money_cost(prompt_tokens - cached_tokens, cached_tokens, completion_tokens, p, cost);
}

int money_cost_detail(int64_t prompt_tokens, int64_t cached_tokens, int64_t cache_write_tokens,
		      int64_t completion_tokens, const money_price_t *p, int64_t *cost)
{
	money_u128 sum, q;
	int64_t uncached;

	if (!p || !cost || prompt_tokens < 0 || cached_tokens < 0 || cache_write_tokens < 0 ||
	    completion_tokens < 0 || cached_tokens > prompt_tokens ||
	    cache_write_tokens > prompt_tokens - cached_tokens || p->in < 0 || p->cached_in < 0 ||
	    p->out < 0 || p->cache_write < 0)
		return TG_EINVAL;
	uncached = prompt_tokens - cached_tokens - cache_write_tokens;
	sum = (money_u128)uncached * (money_u128)p->in +
	      (money_u128)cached_tokens * (money_u128)p->cached_in +
	      (money_u128)cache_write_tokens * (money_u128)p->cache_write +
	      (money_u128)completion_tokens * (money_u128)p->out;
	q = sum / (money_u128)MONEY_PER_TOKENS;
	if (sum % (money_u128)MONEY_PER_TOKENS)
		q++;
	if (q > (money_u128)INT64_MAX)
		return TG_ERANGE;
	*cost = (int64_t)q;
	return TG_OK;
}

int64_t money_max_output_tokens(int64_t available, int64_t in_tok, int64_t cached_tok,
				const money_price_t *p)
{
	money_u128 base, room, n;

	if (!p || available < 0 || in_tok < 0 || cached_tok < 0 || p->in < 0 || p->cached_in < 0 ||
	    p->out < 0)
		return -1;
	/* For integers x >= 0 and A >= 0: ceil(x / T) <= A  <=>  x <= A * T.
	 * So n fits exactly when base + n * p->out <= available * T. */
	base = (money_u128)in_tok * (money_u128)p->in +
	       (money_u128)cached_tok * (money_u128)p->cached_in;
	room = (money_u128)available * (money_u128)MONEY_PER_TOKENS;
	if (base > room)
		return -1;
	if (p->out == 0)
		return INT64_MAX;
	n = (room - base) / (money_u128)p->out;
	return n > (money_u128)INT64_MAX ? INT64_MAX : (int64_t)n;
}

int money_add(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return TG_ERANGE;
	*out = r;
	return TG_OK;
}

int money_sub(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return TG_ERANGE;
	*out = r;
	return TG_OK;
}
