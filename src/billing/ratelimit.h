/* ratelimit.h - in-memory token buckets for requests and tokens per minute,
 * per API key and per org.
 *
 * A bucket holds up to `limit` tokens and refills continuously at limit/60
 * tokens per second; a new bucket starts full. Bucket levels are kept in
 * exact integer arithmetic (1 token = 60,000,000 units, so one microsecond
 * of refill adds exactly `limit` units), with no drift and no floating point,
 * for limits up to INT64_MAX.
 *
 * All state is process-wide and guarded by one mutex; every function is
 * thread-safe. Nothing here hands out memory for the caller to free.
 *
 * Memory is bounded: when the table needs to grow, buckets that have been
 * idle for more than RL_IDLE_US and are full again are dropped (a full bucket
 * is exactly what a new one would be, so nothing is lost). If the table still
 * holds RL_MAX_ENTRIES buckets, the least recently used ones are dropped,
 * which can only make a later call more permissive, never stricter.
 */
#ifndef TG_RATELIMIT_H
#define TG_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

#define RL_MAX_ENTRIES 100000 /* buckets kept in memory (may exceed by one call's asks) */
#define RL_IDLE_US (10LL * 60 * 1000000) /* idle time after which a full bucket may be dropped */
#define RL_DURATION_LEN 32

enum rl_scope { RL_KEY_REQUESTS, RL_KEY_TOKENS, RL_ORG_REQUESTS, RL_ORG_TOKENS };

struct rl_ask {
	enum rl_scope scope;
	int64_t id;
	int64_t limit_per_min; /* <= 0 means unlimited: the ask is skipped */
	int64_t cost;          /* tokens to take; a negative cost counts as 0 */
};

/* Per ask, filled by rl_admit whether admitted or not. An unlimited ask gets
 * all zeros. */
struct rl_state {
	int64_t limit;          /* per minute (0 when unlimited) */
	int64_t remaining;      /* after this call if admitted, else what is available now;
				 * whole tokens rounded down, never below 0 */
	int64_t reset_ms;       /* until the bucket is full again (rounded up) */
	int64_t retry_after_ms; /* when refused: until `cost` would fit (>= 1 ms); 0 otherwise */
	int refused;            /* this bucket is one of those that refused */
};

/* Admit a call against all its buckets at once. now_us is a monotonic clock
 * in microseconds (passed in so tests control time; a value earlier than one
 * already seen for a bucket counts as no time passing).
 *
 * Returns 1 when admitted (every bucket debited), 0 when refused (none
 * debited). Each bucket is checked against the total cost of all asks naming
 * it. A cost larger than the limit can never fit: refused with
 * retry_after_ms = 60000. If memory for a new bucket cannot be allocated the
 * call is refused (that bucket reports refused with retry_after_ms = 1000).
 * states may be NULL; otherwise it has n entries. n <= 0 admits. */
int rl_admit(const struct rl_ask *asks, int n, int64_t now_us, struct rl_state *states);

/* Correct a bucket once the actual usage is known: delta = estimate taken
 * at admission - actual. A positive delta gives tokens back (never above the
 * capacity); a negative one takes more, and the bucket may go negative,
 * which delays later calls. No-op when limit_per_min <= 0 or delta == 0. */
void rl_adjust(enum rl_scope scope, int64_t id, int64_t limit_per_min, int64_t delta,
	       int64_t now_us);

/* OpenAI-style duration for x-ratelimit-reset-*, at millisecond precision:
 * "0s", "250ms" (below one second), "1s", "1.5s", "6m0s", "1h2m3.04s".
 * Negative values print as "0s". Always NUL-terminated. */
void rl_format_duration(int64_t ms, char out[RL_DURATION_LEN]);

/* Number of buckets currently held (tests and metrics). */
size_t rl_entries(void);

/* Drop every bucket (tests). */
void rl_reset_all(void);

#endif
