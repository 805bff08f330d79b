/* gw_auth.c - API key authentication for every AUTH_APIKEY route: the key
 * comes as `Authorization: Bearer tg_...` or in `x-api-key`; each way it can
 * fail gets its own 401 message in the OpenAI envelope.
 *
 * Every 401 counts against the client's address (http/ipthrottle.h); after
 * auth_fail_limit of them within auth_fail_window_s the address gets 429
 * with Retry-After for that long, before its key is even parsed, so a valid
 * key from a blocked address is refused too. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "gateway/gw.h"
#include "http/ipthrottle.h"
#include "http/server.h"

/* One request is served by one thread: the key lives in thread-local storage. */
static __thread struct gw_key tls_key;

/* The key in a header value: surrounding spaces and tabs skipped. */
static const char *token_of(const char *v, size_t *len)
{
	while (*v == ' ' || *v == '\t')
		v++;
	*len = strlen(v);
	while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
		(*len)--;
	return v;
}

static int unauthorized(tg_req_t *r, const char *msg)
{
	struct ipthrottle *t = server_throttle(THROTTLE_GATEWAY_AUTH);

	if (ipthrottle_fail(t, req_ip(r), time_mono_us() / 1000))
		log_warn("gateway: %s blocked for %lld s after %lld failed API key checks",
			 req_ip(r), (long long)(ipthrottle_window_ms(t) / 1000),
			 (long long)ipthrottle_limit(t));
	resp_header(r, "WWW-Authenticate", "Bearer");
	resp_error(r, 401, "invalid_request_error", "invalid_api_key", msg);
	return TG_EPERM;
}

int gw_authenticate(tg_req_t *r)
{
	const char *auth = req_header(r, "Authorization");
	const char *xkey = req_header(r, "x-api-key");
	const char *tok = NULL, *other;
	int64_t retry_ms;
	size_t len = 0, olen;
	int rc;

	if (ipthrottle_blocked(server_throttle(THROTTLE_GATEWAY_AUTH), req_ip(r),
			       time_mono_us() / 1000, &retry_ms)) {
		char msg[200], v[24];

		snprintf(v, sizeof(v), "%lld", (long long)((retry_ms + 999) / 1000));
		snprintf(msg, sizeof(msg),
			 "Too many failed API key checks from this address. Retry "
			 "after %s s.",
			 v);
		resp_header(r, "Retry-After", v);
		resp_error(r, 429, "rate_limit_exceeded", "too_many_auth_failures", msg);
		return TG_EPERM;
	}
	if (req_header_count(r, "Authorization") > 1 || req_header_count(r, "x-api-key") > 1)
		return unauthorized(r, "Send the API key once: several Authorization or x-api-key "
				       "headers were given.");
	if (auth) {
		if (strncasecmp(auth, "Bearer ", 7) != 0)
			return unauthorized(r, "The Authorization header must be 'Bearer tg_...'.");
		tok = token_of(auth + 7, &len);
		/* Both headers may carry the key, but never two different keys:
		 * which one pays must not depend on a precedence rule. */
		if (xkey) {
			other = token_of(xkey, &olen);
			if (olen != len || memcmp(other, tok, len) != 0)
				return unauthorized(r,
						    "The Authorization and x-api-key headers name "
						    "different keys; send one key.");
		}
	} else if (xkey) {
		tok = token_of(xkey, &len);
	}
	if (!tok || !len)
		return unauthorized(r,
				    "Missing API key. Send it as 'Authorization: Bearer tg_...' or "
				    "in the x-api-key header.");
	rc = apikey_authenticate(tok, len, &tls_key.k);
	switch (rc) {
	case TG_OK:
		r->key = &tls_key;
		return TG_OK;
	case TG_EINVAL:
		return unauthorized(
			r, "The API key is malformed: a Tollgate key is tg_ followed by 38 "
			   "letters and digits, and this one has the wrong length, "
			   "characters or checksum. Check that it was copied completely.");
	case TG_ENOTFOUND:
		return unauthorized(r,
				    "The API key is not recognized. Create a key in the Tollgate "
				    "dashboard.");
	case TG_EPERM:
		return unauthorized(r, apikey_state_of(&tls_key.k, time_now()) == APIKEY_EXPIRED ?
					       "This API key has expired." :
					       "This API key has been revoked.");
	default:
		resp_header(r, "Retry-After", "1");
		resp_error(r, 503, "server_error", "store_unavailable",
			   "The key could not be checked right now: the gateway cannot reach its "
			   "database. Try again.");
		return TG_EDB;
	}
}
