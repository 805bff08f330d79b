/* catalog_probe.c - "test connection" for a provider: list its models the
 * way an OpenAI client would and report the outcome in one line. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "core/json.h"
#include "store/db.h"

#define PROBE_MAX_BODY ((size_t)1 << 20) /* 1 MiB */
#define PROBE_SNIPPET 200                /* bytes of an error body shown */
#define PROBE_NAMES 5                    /* model names listed in the report */

/* Append up to `max` bytes of s as one line of valid UTF-8: control
 * characters become spaces, broken sequences '?', and a character cut by
 * the limit is dropped. */
static void put_snippet(buf_t *out, const char *s, size_t n, size_t max)
{
	size_t i = 0, len, k;

	if (n > max)
		n = max;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80) {
			buf_putc(out, c < 0x20 || c == 0x7f ? ' ' : (char)c);
			i++;
			continue;
		}
		len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
		if (len && i + len > n)
			break; /* cut by the limit */
		for (k = 1; len && k < len; k++)
			if (((unsigned char)s[i + k] & 0xc0) != 0x80)
				len = 0;
		if (!len) {
			buf_putc(out, '?');
			i++;
			continue;
		}
		buf_append(out, s + i, len);
		i += len;
	}
}

/* "N models (a, b, c)" from a list of names. */
static void put_names(buf_t *out, const char *const *names, int count)
{
	int i;

	buf_appendf(out, "%d model%s", count, count == 1 ? "" : "s");
	if (count == 0)
		return;
	buf_puts(out, " (");
	for (i = 0; i < count && i < PROBE_NAMES; i++) {
		if (i)
			buf_puts(out, ", ");
		put_snippet(out, names[i], strlen(names[i]), 100);
	}
	buf_puts(out, count > PROBE_NAMES ? ", …)" : ")");
}

/* The built-in echo provider answers locally: report its catalog models. */
static int echo_report(const struct provider *p, buf_t *msg)
{
	tg_stmt *st = db_stmt("SELECT name FROM models WHERE provider_id = :id ORDER BY name");
	const char *names[PROBE_NAMES];
	char *held[PROBE_NAMES] = { NULL };
	int count = 0, i, rc = TG_OK;

	if (!st || db_bind_int64(st, ":id", p->id))
		return TG_EDB;
	while (db_step(st) == DB_ROW) {
		if (count < PROBE_NAMES && !(held[count] = strdup(db_col_text(st, 0)))) {
			rc = TG_ENOMEM;
			break;
		}
		count++;
	}
	db_done(st);
	if (rc)
		goto out;
	for (i = 0; i < count && i < PROBE_NAMES; i++)
		names[i] = held[i];
	buf_puts(msg, "OK: built-in echo provider, answers locally with ");
	put_names(msg, names, count);
	buf_putc(msg, '.');
out:
	for (i = 0; i < PROBE_NAMES; i++)
		free(held[i]);
	return rc;
}

struct sink {
	buf_t body;
	int too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct sink *k = ud;
	int rc = buf_append(&k->body, p, size * n);

	k->too_big = rc == TG_ETOOBIG;
	return rc == TG_OK ? size * n : 0;
}

/* Wipe the header values (one holds the key) before libcurl frees them. */
static void headers_free(struct curl_slist *h)
{
	struct curl_slist *i;

	for (i = h; i; i = i->next)
		sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

/* Read an OpenAI model list; the number of models and the first names. */
static int read_list(const buf_t *body, buf_t *msg, long status)
{
	cJSON *root = json_parse(buf_cstr(body), body->len, NULL), *data, *m;
	const char *names[PROBE_NAMES];
	int count = 0;

	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (!cJSON_IsArray(data)) {
		cJSON_Delete(root);
		buf_appendf(msg, "HTTP %ld, but the answer is not an OpenAI model list: ", status);
		put_snippet(msg, buf_cstr(body), body->len, PROBE_SNIPPET);
		return TG_EIO;
	}
	cJSON_ArrayForEach(m, data) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");

		if (count < PROBE_NAMES)
			names[count] = cJSON_IsString(id) ? id->valuestring : "?";
		count++;
	}
	buf_appendf(msg, "OK: HTTP %ld, ", status);
	put_names(msg, names, count);
	buf_putc(msg, '.');
	cJSON_Delete(root);
	return TG_OK;
}

int catalog_provider_test(int64_t id, buf_t *msg)
{
	struct provider p;
	struct curl_slist *headers = NULL, *more;
	char url[CATALOG_URL_MAX + 16], errbuf[CURL_ERROR_SIZE] = "",
					auth[CATALOG_API_KEY_MAX + 32];
	char *key = NULL;
	size_t keylen = 0;
	CURL *curl = NULL;
	CURLcode cc;
	struct sink sink = { .too_big = 0 };
	long status = 0, timeout;
	int rc;

	buf_init(&sink.body, PROBE_MAX_BODY);
	if ((rc = catalog_provider_get(id, &p))) {
		buf_puts(msg,
			 rc == TG_ENOTFOUND ? "No such provider." : "Could not read the provider.");
		return rc;
	}
	if (p.kind == PROVIDER_ECHO)
		return echo_report(&p, msg);
	if ((rc = catalog_provider_api_key(id, &key, &keylen))) {
		buf_puts(msg,
			 "The stored API key cannot be decrypted with this server's secret file. "
			 "Enter the key again.");
		rc = TG_EIO;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/models", p.base_url);
	timeout = p.timeout_s < CATALOG_TEST_TIMEOUT_MAX ? (long)p.timeout_s :
							   CATALOG_TEST_TIMEOUT_MAX;
	if (!(curl = curl_easy_init()) ||
	    !(headers = curl_slist_append(NULL, "Accept: application/json"))) {
		rc = TG_ENOMEM;
		buf_puts(msg, "Out of memory.");
		goto out;
	}
	if (key && keylen + 23 < sizeof(auth)) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		more = curl_slist_append(headers, auth);
		sodium_memzero(auth, sizeof(auth));
		if (!more) {
			rc = TG_ENOMEM;
			buf_puts(msg, "Out of memory.");
			goto out;
		}
		headers = more;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "tollgate/" TG_VERSION);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && sink.too_big) {
		buf_appendf(msg, "HTTP %ld, but the answer is larger than 1 MiB (GET %s).", status,
			    url);
		rc = TG_EIO;
	} else if (cc != CURLE_OK) {
		buf_appendf(msg, "%s", curl_easy_strerror(cc));
		if (errbuf[0] && strcmp(errbuf, curl_easy_strerror(cc)) != 0) {
			buf_puts(msg, ": ");
			put_snippet(msg, errbuf, strlen(errbuf), sizeof(errbuf));
		}
		buf_appendf(msg, " (GET %s).", url);
		rc = TG_EIO;
	} else if (status < 200 || status > 299) {
		buf_appendf(msg, "HTTP %ld from GET %s", status, url);
		if (sink.body.len) {
			buf_puts(msg, ": ");
			put_snippet(msg, buf_cstr(&sink.body), sink.body.len, PROBE_SNIPPET);
		}
		rc = TG_EIO;
	} else {
		rc = read_list(&sink.body, msg, status);
	}
out:
	if (curl)
		curl_easy_cleanup(curl);
	headers_free(headers);
	secrets_plain_free(key, keylen);
	buf_free(&sink.body);
	return rc;
}
