/* req.c - request helpers: headers, body, forms, cookies, JSON. */
#include <civetweb.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/timeutil.h"
#include "http/http.h"
#include "http/proxy.h"

const char *req_header(const tg_req_t *r, const char *name)
{
	int i;

	for (i = 0; i < r->ri->num_headers; i++)
		if (strcasecmp(r->ri->http_headers[i].name, name) == 0)
			return r->ri->http_headers[i].value;
	return NULL;
}

int req_header_count(const tg_req_t *r, const char *name)
{
	int i, n = 0;

	for (i = 0; i < r->ri->num_headers; i++)
		if (strcasecmp(r->ri->http_headers[i].name, name) == 0)
			n++;
	return n;
}

int req_read_body(tg_req_t *r)
{
	char chunk[16384];
	int n, rc;

	if (r->body_read)
		return TG_OK;
	r->body_read = 1;
	if (r->ri->content_length > r->max_body)
		return TG_ETOOBIG;
	buf_init(&r->body, (size_t)r->max_body);
	/* An empty body still yields "" rather than NULL. */
	if ((rc = buf_append(&r->body, "", 0)))
		return rc;
	while ((n = mg_read(r->conn, chunk, sizeof(chunk))) > 0) {
		if ((rc = buf_append(&r->body, chunk, (size_t)n)))
			return rc;
	}
	/* mg_read() also ends with 0 when a Content-Length body stops short (the
	 * client closed, or request_timeout_ms passed): never treat the part
	 * that came as the whole body. */
	if (n < 0 || (r->ri->content_length >= 0 && (int64_t)r->body.len < r->ri->content_length))
		return TG_EIO;
	return TG_OK;
}

int req_body_fail(tg_req_t *r, int rc)
{
	r->close = 1;
	if (rc == TG_ETOOBIG)
		return resp_error(r, 413, "invalid_request_error", "request_too_large",
				  r->api ? "Request body is too large." :
					   "The submitted form is too large.");
	if (r->timeout_ms > 0 && time_mono_us() - r->start_us >= r->timeout_ms * 1000)
		return resp_error(r, 408, "invalid_request_error", "request_timeout",
				  "The request body did not arrive in time.");
	return resp_error(r, 400, "invalid_request_error", "invalid_body",
			  r->api ? "Could not read the request body: it ended before its "
				   "Content-Length, or its chunked encoding is malformed." :
				   "Could not read the submitted form.");
}

int req_content_type_is(const tg_req_t *r, const char *type)
{
	const char *ct = req_header(r, "Content-Type");
	size_t n = strlen(type);

	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, type, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode n bytes of a urlencoded component into a heap string. A path keeps
 * '+' and refuses every control character, not only NUL. */
static char *url_decode(const char *s, size_t n, int path)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		/* A NUL byte, raw or %00, is never legitimate in a form value or name:
		 * it would let two parsers read different things. */
		if (s[i] == '\0' || (path && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)))
			goto bad;
		if (s[i] == '+' && !path) {
			*o++ = ' ';
		} else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			/* A NUL byte inside a value is never legitimate here. */
			if (hi == 0 && lo == 0)
				goto bad;
			if (path && (hi < 2 || (hi == 7 && lo == 15)))
				goto bad;
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *req_path_decode(const char *raw)
{
	char *p = url_decode(raw, strlen(raw), 1);
	const char *seg = p;

	while (seg) {
		size_t len;

		if (*seg == '/')
			seg++;
		len = strcspn(seg, "/");
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
			free(p);
			return NULL;
		}
		seg = strchr(seg, '/');
	}
	return p;
}

char *req_form_get(const char *src, size_t n, const char *name)
{
	size_t nl = strlen(name), i = 0;

	if (!src)
		return NULL;
	while (i < n) {
		size_t end = i, eq;
		char *key;
		int match;

		while (end < n && src[end] != '&')
			end++;
		eq = i;
		while (eq < end && src[eq] != '=')
			eq++;
		key = url_decode(src + i, eq - i, 0);
		match = key && strlen(key) == nl && memcmp(key, name, nl) == 0;
		free(key);
		if (match)
			return eq < end ? url_decode(src + eq + 1, end - eq - 1, 0) : strdup("");
		i = end + 1;
	}
	return NULL;
}

char *req_form_get_all(const char *src, size_t n, const char *name)
{
	size_t nl = strlen(name), i = 0;
	buf_t out;
	int found = 0;

	if (!src)
		return NULL;
	buf_init(&out, n + 1);
	while (i < n) {
		size_t end = i, eq;
		char *key, *val;

		while (end < n && src[end] != '&')
			end++;
		eq = i;
		while (eq < end && src[eq] != '=')
			eq++;
		key = url_decode(src + i, eq - i, 0);
		if (key && strlen(key) == nl && memcmp(key, name, nl) == 0) {
			val = eq < end ? url_decode(src + eq + 1, end - eq - 1, 0) : strdup("");
			if (val && *val) {
				if (found)
					buf_putc(&out, ',');
				buf_puts(&out, val);
				found = 1;
			}
			free(val);
		}
		free(key);
		i = end + 1;
	}
	if (!found) {
		buf_free(&out);
		return NULL;
	}
	return buf_detach(&out);
}

char *req_post_all(tg_req_t *r, const char *name)
{
	if (!r->body_read || !r->body.data)
		return NULL;
	return req_form_get_all(r->body.data, r->body.len, name);
}

char *req_post(tg_req_t *r, const char *name)
{
	if (!r->body_read || !r->body.data)
		return NULL;
	return req_form_get(r->body.data, r->body.len, name);
}

char *req_query(const tg_req_t *r, const char *name)
{
	if (!r->query)
		return NULL;
	return req_form_get(r->query, strlen(r->query), name);
}

char *req_cookie(const tg_req_t *r, const char *name)
{
	size_t nl = strlen(name);
	int i;

	/* Browsers send one Cookie header, but look at all of them. */
	for (i = 0; i < r->ri->num_headers; i++) {
		const char *s;

		if (strcasecmp(r->ri->http_headers[i].name, "Cookie") != 0)
			continue;
		s = r->ri->http_headers[i].value;
		while (s && *s) {
			const char *end;

			while (*s == ' ' || *s == ';')
				s++;
			end = strchr(s, ';');
			if (!end)
				end = s + strlen(s);
			if ((size_t)(end - s) > nl && strncmp(s, name, nl) == 0 && s[nl] == '=')
				return strndup(s + nl + 1, (size_t)(end - s - (ptrdiff_t)nl - 1));
			s = end;
		}
	}
	return NULL;
}

cJSON *req_json(tg_req_t *r)
{
	const char *end = NULL;
	char msg[160];
	size_t off;
	cJSON *j;
	int rc;

	if ((rc = req_read_body(r))) {
		req_body_fail(r, rc);
		return NULL;
	}
	if (r->body.len == 0) {
		resp_error(r, 400, "invalid_request_error", "invalid_json",
			   "Request body is empty; expected a JSON object.");
		return NULL;
	}
	/* A body that does not parse may be one whose Content-Length was wrong:
	 * what follows it on the connection is not trusted as a next request. */
	if ((off = utf8_valid_prefix(r->body.data, r->body.len)) < r->body.len) {
		snprintf(msg, sizeof(msg),
			 "The request body is not valid UTF-8 (invalid byte at offset %zu).", off);
		goto bad;
	}
	if ((off = json_depth_exceeded(r->body.data, r->body.len, JSON_MAX_DEPTH)) < r->body.len) {
		snprintf(msg, sizeof(msg),
			 "The JSON body nests deeper than %d levels (at byte %zu).", JSON_MAX_DEPTH,
			 off);
		goto bad;
	}
	j = cJSON_ParseWithLengthOpts(r->body.data, r->body.len, &end, 0);
	if (!j) {
		off = end && end >= r->body.data ? (size_t)(end - r->body.data) : 0;
		snprintf(msg, sizeof(msg),
			 "We could not parse the JSON body of your request (error near byte %zu).",
			 off);
		goto bad;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		resp_error(r, 400, "invalid_request_error", "invalid_json",
			   "The request body must be a JSON object.");
		return NULL;
	}
	return j;
bad:
	r->close = 1;
	resp_error(r, 400, "invalid_request_error", "invalid_json", msg);
	return NULL;
}

void req_client_init(tg_req_t *r)
{
	if (r->ri)
		proxy_client_of(proxy_trusted(), r->ri, &r->client);
}

/* A request made without req_client_init (tests) has its peer as client. */
const char *req_ip(const tg_req_t *r)
{
	return r->client.addr[0] ? r->client.addr : r->ri->remote_addr;
}

int req_is_tls(const tg_req_t *r)
{
	return r->client.addr[0] ? r->client.tls : r->ri->is_ssl;
}
