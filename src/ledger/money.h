/* money.h - credit amounts as integer micro-credits, and the cost of a call.
 *
 * Every amount is an int64_t count of micro-credits: 1 credit = MONEY_SCALE
 * micro-credits. There is no floating point anywhere, not even for display.
 * Prices are int64_t micro-credits per one million tokens, so "2.50 credits
 * per 1M tokens" is 2500000.
 *
 * The cost of a call is rounded up once, on the sum of its parts:
 *     cost = ceil((in * p.in + cached * p.cached_in + out * p.out) / 1000000)
 * computed in 128-bit arithmetic, so it never overflows before the final
 * check against the int64_t range.
 *
 * Nothing here allocates. Output parameters are written only on success.
 */
#ifndef TG_MONEY_H
#define TG_MONEY_H

#include <stdint.h>

#include "core/common.h"

#define MONEY_SCALE 1000000LL      /* micro-credits per credit */
#define MONEY_PER_TOKENS 1000000LL /* prices are quoted per this many tokens */
#define MONEY_FMT_LEN 32           /* fits "-9223372036854.775808" and the NUL */

/* Micro-credits per 1M tokens, each >= 0. */
typedef struct money_price {
	int64_t in;          /* uncached input (prompt) tokens */
	int64_t cached_in;   /* input tokens served from the provider's cache */
	int64_t out;         /* output (completion) tokens */
	int64_t cache_write; /* input tokens written to the provider's cache */
} money_price_t;

/* Parse a decimal amount in credits into micro-credits.
 *
 * Grammar: [+|-] DIGITS [ '.' DIGITS ], with 1..6 digits after the point.
 * Leading zeros are accepted ("007.5"), "-0" is 0. Rejected with TG_EINVAL:
 * NULL, "", a sign alone, any space, comma, underscore or exponent, "1."
 * (point without fraction), ".5" (point without integer part) and more than
 * six decimals ("0.0000001" is an error, never rounded). Values outside
 * [-9223372036854.775808, 9223372036854.775807] give TG_ERANGE. Syntax is
 * checked before range, so a malformed long number is TG_EINVAL.
 *
 * On error, if why != NULL, *why is set to a static English sentence fit
 * for showing to a user (never freed). *out and *why are untouched on
 * success. */
int money_parse(const char *s, int64_t *out, const char **why);

/* Exactly six decimals: 12500000 -> "12.500000", -1 -> "-0.000001",
 * INT64_MIN -> "-9223372036854.775808". Always NUL-terminated. */
void money_format(int64_t micro, char out[MONEY_FMT_LEN]);

/* For display: at least two decimals, further trailing zeros dropped:
 * 12500000 -> "12.50", 1 -> "0.000001", 0 -> "0.00", 1230000 -> "1.23".
 * The result is still accepted by money_parse() and gives back micro. */
void money_format_short(int64_t micro, char out[MONEY_FMT_LEN]);

/* Cost in micro-credits of a call with the given token counts, rounded up
 * once on the total. Negative counts or prices, or NULL p/cost, give
 * TG_EINVAL; a cost above INT64_MAX gives TG_ERANGE. */
int money_cost(int64_t in_tok, int64_t cached_tok, int64_t out_tok, const money_price_t *p,
	       int64_t *cost);

/* Same, from the OpenAI usage shape where prompt_tokens INCLUDES
 * prompt_tokens_details.cached_tokens: bills (prompt - cached) at p->in and
 * cached at p->cached_in. cached > prompt is TG_EINVAL. */
int money_cost_usage(int64_t prompt_tokens, int64_t cached_tokens, int64_t completion_tokens,
		     const money_price_t *p, int64_t *cost);

/* Same, with the input tokens written to the provider's cache among the
 * prompt tokens too: (prompt - cached - cache_write) at p->in, cached at
 * p->cached_in, cache_write at p->cache_write, completion at p->out, one
 * rounding on the sum. cached + cache_write > prompt is TG_EINVAL. */
int money_cost_detail(int64_t prompt_tokens, int64_t cached_tokens, int64_t cache_write_tokens,
		      int64_t completion_tokens, const money_price_t *p, int64_t *cost);

/* Largest n >= 0 with money_cost(in_tok, cached_tok, n, p) <= available,
 * for the "largest max_tokens that would fit" message.
 * Returns -1 when even n = 0 does not fit (including available < 0 and a
 * base cost that would overflow) and also for invalid arguments (negative
 * counts or prices, NULL p). When p->out == 0 and the rest fits, or when
 * every representable n fits, returns INT64_MAX. */
int64_t money_max_output_tokens(int64_t available, int64_t in_tok, int64_t cached_tok,
				const money_price_t *p);

/* *out = a + b or a - b; TG_ERANGE on int64 overflow (then *out untouched). */
int money_add(int64_t a, int64_t b, int64_t *out);
int money_sub(int64_t a, int64_t b, int64_t *out);

#endif
