/* ipthrottle.h - per-client-address failure throttle for authentication:
 * gateway API keys and dashboard sign-in each have one table.
 *
 * Rule: after `limit` failures from one address within `window` (counted
 * from the first of them), the address is blocked for `window`; a blocked
 * address is refused before its credentials are even looked at, so a valid
 * key or password from it is refused too (brute-force protection keyed on
 * the address, not the account). The count starts again from zero once the
 * window has passed with no block. Successes do not reset the count: an
 * attacker holding one valid account could otherwise clear it between
 * guesses.
 *
 * Addresses: IPv4 is taken whole, IPv6 by its /64 prefix (one host usually
 * has the whole /64), an IPv4-mapped IPv6 address as its IPv4 address.
 *
 * Memory is fixed at creation: `capacity` entries in an open-addressing
 * table (keyed SipHash, random key per table), probing at most
 * IPTHROTTLE_PROBES slots. Entries whose window and block have both passed
 * are free. When a new address finds no free slot in its probe run, the
 * entry evicted is an unblocked one with the fewest failures (the oldest
 * among equals), else the blocked one whose block ends first. So the table
 * never grows, and many addresses can at worst make the throttle forget
 * some addresses early, never block an address that did not fail.
 *
 * State is per process and in memory: a restart forgets it. One mutex per
 * table; every function is thread-safe. Times are monotonic milliseconds
 * passed in, so tests control the clock.
 */
#ifndef TG_IPTHROTTLE_H
#define TG_IPTHROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define IPTHROTTLE_PROBES 16

struct ipthrottle;

/* A table of `capacity` entries (rounded up to a power of two, at least
 * IPTHROTTLE_PROBES) for `limit` failures per `window_ms`. NULL when out of
 * memory or when limit or window_ms is not positive. Free with
 * ipthrottle_free. */
struct ipthrottle *ipthrottle_new(size_t capacity, int64_t limit, int64_t window_ms);
void ipthrottle_free(struct ipthrottle *t);

/* 1 when `ip` is blocked at now_ms; *retry_ms (may be NULL) gets the time
 * until the block ends (>= 1). A refusal is counted (ipthrottle_refused).
 * A NULL table never blocks. */
int ipthrottle_blocked(struct ipthrottle *t, const char *ip, int64_t now_ms, int64_t *retry_ms);

/* Record one failure from `ip`. Returns 1 when this failure started a block
 * (callers log or audit that once), else 0. A NULL table does nothing. */
int ipthrottle_fail(struct ipthrottle *t, const char *ip, int64_t now_ms);

/* Addresses remembered at now_ms (entries not yet expired). */
size_t ipthrottle_entries(struct ipthrottle *t, int64_t now_ms);
/* Requests refused so far by ipthrottle_blocked. */
uint64_t ipthrottle_refused(struct ipthrottle *t);
/* The table's settings (0 for a NULL table). */
int64_t ipthrottle_limit(const struct ipthrottle *t);
int64_t ipthrottle_window_ms(const struct ipthrottle *t);

#endif
