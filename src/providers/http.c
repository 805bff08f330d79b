/* http.c - the HTTP transport of the remote provider kinds, with libcurl.
 *
 * A call borrows an easy handle from a pool of idle ones and hands it back
 * after, so connections to a provider stay alive between calls and handles
 * number the calls under way, not the worker threads (core/pool.h). Bytes
 * are handed to the sink as they arrive; nothing buffers a whole stream here.
 */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/timeutil.h"
#include "crypto/secrets.h"
#include "providers/provider.h"

static struct pool idle_handles = POOL_INIT(128);

struct xfer {
	CURL *h;
	struct prov_sink *sink;
	long status;
	char content_type[128];
	char retry_after[32];
	int status_sent;
	int aborted;
	int64_t start_us;
	int64_t *first_byte_us;
};

int providers_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? TG_OK : TG_EIO;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud);
static size_t on_body(char *p, size_t size, size_t n, void *ud);
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow);

static void handle_free(void *h)
{
	curl_easy_cleanup(h);
}

void providers_shutdown(void)
{
	pool_drain(&idle_handles, handle_free);
	curl_global_cleanup();
}

/* A handle from the pool, or a new one with what is the same for every call. */
static CURL *handle_get(void)
{
	CURL *h = pool_get(&idle_handles);

	if (h || !(h = curl_easy_init()))
		return h;
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tollgate/" TG_VERSION);
	return h;
}

static void handle_put(CURL *h)
{
	if (!pool_put(&idle_handles, h))
		curl_easy_cleanup(h);
}

/* A header's value (after the colon), trimmed, cut to fit out. */
static void header_value(const char *p, size_t len, char *out, size_t outlen)
{
	size_t i = 0, k = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (i < len && p[i] != '\r' && p[i] != '\n' && k + 1 < outlen)
		out[k++] = p[i++];
	out[k] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue or a redirect): reset. */
		x->content_type[0] = '\0';
		x->retry_after[0] = '\0';
	} else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		header_value(p + 12, len - 12, x->retry_after, sizeof(x->retry_after));
	} else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
		header_value(p + 13, len - 13, x->content_type, sizeof(x->content_type));
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (!x->status_sent) {
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
		if (x->first_byte_us)
			*x->first_byte_us = time_mono_us() - x->start_us;
		x->status_sent = 1;
		if (x->sink->on_status(x->sink->ud, (int)x->status, x->content_type,
				       x->retry_after[0] ? x->retry_after : NULL)) {
			x->aborted = 1;
			return 0;
		}
	}
	if (len && x->sink->on_body(x->sink->ud, p, len)) {
		x->aborted = 1;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return len;
}

/* libcurl calls this after each pass over the bytes that arrived, before it
 * waits for more, and about once a second while it waits. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = ud;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (x->status_sent && x->sink->on_idle(x->sink->ud)) {
		x->aborted = 1;
		return 1; /* makes curl stop with CURLE_ABORTED_BY_CALLBACK */
	}
	return 0;
}

int prov_http_post(const struct provider *prov, const struct prov_request *rq,
		   const char *request_id, struct prov_sink *sink, int64_t *first_byte_us,
		   char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	char url[CATALOG_URL_MAX + PROV_PATH_MAX + 1], line[256];
	char *key = NULL;
	size_t keylen = 0;
	struct xfer x;
	CURLcode cc;
	int rc;

	memset(&x, 0, sizeof(x));
	x.sink = sink;
	x.start_us = time_mono_us();
	x.first_byte_us = first_byte_us;
	snprintf(url, sizeof(url), "%s%s", prov->base_url, rq->path);
	if (catalog_provider_api_key(prov->id, &key, &keylen) != TG_OK) {
		snprintf(err, errlen, "the provider's API key could not be opened");
		return PROV_FWD_CONNECT;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json, text/event-stream");
	hdrs = curl_slist_append(hdrs, "Expect:");
	snprintf(line, sizeof(line), "X-Request-Id: %s", request_id);
	hdrs = curl_slist_append(hdrs, line);
	for (int i = 0; i < PROV_HEADERS_MAX && rq->headers[i][0]; i++)
		hdrs = curl_slist_append(hdrs, rq->headers[i]);
	if (key && keylen && rq->auth_prefix) {
		buf_t auth;

		buf_init(&auth, 8192);
		if (buf_puts(&auth, rq->auth_prefix) == TG_OK &&
		    buf_append(&auth, key, keylen) == TG_OK)
			hdrs = curl_slist_append(hdrs, auth.data);
		sodium_memzero(auth.data, auth.len);
		buf_free(&auth);
	}
	if (key)
		secrets_plain_free(key, keylen);
	if (!(x.h = handle_get())) {
		curl_slist_free_all(hdrs);
		snprintf(err, errlen, "could not create an HTTP client");
		return PROV_FWD_CONNECT;
	}
	curl_easy_setopt(x.h, CURLOPT_URL, url);
	curl_easy_setopt(x.h, CURLOPT_POSTFIELDS, rq->body);
	curl_easy_setopt(x.h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len);
	curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x.h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(x.h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(x.h, CURLOPT_NOPROGRESS, sink->on_idle ? 0L : 1L);
	curl_easy_setopt(x.h, CURLOPT_TIMEOUT_MS, (long)(prov->timeout_s * 1000));

	cc = curl_easy_perform(x.h);
	curl_slist_free_all(hdrs);
	/* Forget the pointers into this call held by the handle before it is reused. */
	curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(x.h, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(x.h, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(x.h, CURLOPT_XFERINFODATA, NULL);

	if (cc == CURLE_OK && !x.status_sent) {
		/* A response with an empty body still has a status. */
		curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, &x.status);
		x.status_sent = 1;
		if (first_byte_us)
			*first_byte_us = time_mono_us() - x.start_us;
		sink->on_status(sink->ud, (int)x.status, x.content_type,
				x.retry_after[0] ? x.retry_after : NULL);
	}
	if (cc == CURLE_OK) {
		rc = PROV_FWD_OK;
	} else if (x.aborted) {
		rc = PROV_FWD_ABORTED;
		snprintf(err, errlen, "transfer stopped");
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = PROV_FWD_TIMEOUT;
		snprintf(err, errlen, "the provider did not answer within %lld s",
			 (long long)prov->timeout_s);
	} else if (x.status_sent) {
		rc = PROV_FWD_BROKEN;
		snprintf(err, errlen, "the provider's connection broke: %s",
			 curl_easy_strerror(cc));
	} else {
		rc = PROV_FWD_CONNECT;
		snprintf(err, errlen, "could not reach the provider: %s", curl_easy_strerror(cc));
	}
	handle_put(x.h);
	return rc;
}
