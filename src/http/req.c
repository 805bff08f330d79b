/* req.c - request helpers: headers, body, forms, cookies, JSON. */
#include <civetweb.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

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
	if (n < 0)
		return TG_EIO;
	return TG_OK;
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

/* Decode n bytes of a urlencoded component into a heap string. */
static char *url_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		/* A NUL byte, raw or %00, is never legitimate in a form value or name:
		 * it would let two parsers read different things. */
		if (s[i] == '\0')
			goto bad;
		if (s[i] == '+') {
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
		key = url_decode(src + i, eq - i);
		match = key && strlen(key) == nl && memcmp(key, name, nl) == 0;
		free(key);
		if (match)
			return eq < end ? url_decode(src + eq + 1, end - eq - 1) : strdup("");
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
		key = url_decode(src + i, eq - i);
		if (key && strlen(key) == nl && memcmp(key, name, nl) == 0) {
			val = eq < end ? url_decode(src + eq + 1, end - eq - 1) : strdup("");
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
	cJSON *j;
	int rc;

	if ((rc = req_read_body(r))) {
		if (rc == TG_ETOOBIG)
			resp_error(r, 413, "invalid_request_error", "request_too_large",
				   "Request body is too large.");
		else
			resp_error(r, 400, "invalid_request_error", "invalid_body",
				   "Could not read the request body.");
		return NULL;
	}
	if (r->body.len == 0) {
		resp_error(r, 400, "invalid_request_error", "invalid_json",
			   "Request body is empty; expected a JSON object.");
		return NULL;
	}
	j = cJSON_ParseWithLengthOpts(r->body.data, r->body.len, &end, 0);
	if (!j) {
		char msg[160];
		size_t off = end && end >= r->body.data ? (size_t)(end - r->body.data) : 0;

		snprintf(msg, sizeof(msg),
			 "We could not parse the JSON body of your request (error near byte %zu).",
			 off);
		resp_error(r, 400, "invalid_request_error", "invalid_json", msg);
		return NULL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		resp_error(r, 400, "invalid_request_error", "invalid_json",
			   "The request body must be a JSON object.");
		return NULL;
	}
	return j;
}

const char *req_ip(const tg_req_t *r)
{
	return r->ri->remote_addr;
}

int req_is_tls(const tg_req_t *r)
{
	return r->ri->is_ssl;
}
