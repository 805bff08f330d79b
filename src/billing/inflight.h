/* inflight.h - client request ids of the calls in flight on this instance.
 *
 * A client that retries with the same X-Request-Id while its first call is
 * still running must not be billed twice: the first call claims the id, and
 * the claim holds until the call's debit is committed (the journal drops it)
 * or the call ends unbilled. A fixed open-addressing table under one mutex;
 * when it is full, claims succeed and the ledger's UNIQUE request id is the
 * last guard against a double debit.
 */
#ifndef TG_INFLIGHT_H
#define TG_INFLIGHT_H

#define INFLIGHT_SLOTS 4096
#define INFLIGHT_ID_MAX 64

/* Claim id (1..INFLIGHT_ID_MAX characters) for the duration of the call:
 * 1 when claimed, 0 when already in flight. */
int inflight_claim(const char *id);
/* Forget a claim (idempotent). */
void inflight_drop(const char *id);

#endif
