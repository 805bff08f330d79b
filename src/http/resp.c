/* resp.c - responses: security headers, JSON, HTML, redirects, errors, streams. */
#include <civetweb.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "http/http.h"

static resp_html_error_fn html_error_renderer;

void resp_set_html_error_renderer(resp_html_error_fn fn)
{
	html_error_renderer = fn;
}

const char *resp_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}

int resp_header(tg_req_t *r, const char *name, const char *value)
{
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return TG_EINVAL;
	if (buf_puts(&r->headers, name) || buf_append(&r->headers, ": ", 2) ||
	    buf_puts(&r->headers, value) || buf_append(&r->headers, "\r\n", 2))
		return TG_ENOMEM;
	return TG_OK;
}

/* Status line and every header but the framing ones, into b. Plain appends:
 * this runs for every answer, and printf-style formatting was a visible part
 * of a gateway call's cost. */
static int build_head(tg_req_t *r, buf_t *b, int status, const char *content_type)
{
	static const char fixed[] =
		"X-Content-Type-Options: nosniff\r\n"
		"Referrer-Policy: same-origin\r\n"
		"X-Frame-Options: DENY\r\n"
		"Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; "
		"base-uri 'none'; form-action 'self'\r\n";
	char line[16];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);

	if (buf_append(b, line, (size_t)n) || buf_puts(b, resp_status_text(status)) ||
	    buf_puts(b, "\r\nContent-Type: ") || buf_puts(b, content_type) ||
	    buf_puts(b, "\r\nX-Request-Id: ") || buf_puts(b, r->request_id) ||
	    buf_puts(b, "\r\n") || buf_append(b, fixed, sizeof(fixed) - 1) ||
	    (!strstr(buf_cstr(&r->headers), "Cache-Control:") &&
	     buf_puts(b, "Cache-Control: no-store\r\n")) ||
	    (r->close && buf_puts(b, "Connection: close\r\n")) ||
	    buf_append(b, buf_cstr(&r->headers), r->headers.len))
		return TG_ENOMEM;
	return TG_OK;
}

int resp_send(tg_req_t *r, int status, const char *content_type, const void *body, size_t len)
{
	buf_t b;
	int rc;

	if (r->status) {
		log_error("response already sent for %s %s", r->method, r->path);
		return TG_EINVAL;
	}
	/* One write for head and body: one packet for small answers. */
	buf_init(&b, r->headers.len + 4096 + len); /* head (r->headers, 4 KiB more), body */
	rc = build_head(r, &b, status, content_type);
	if (!rc) {
		char cl[48];
		int n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n", len);

		rc = buf_append(&b, cl, (size_t)n);
	}
	if (!rc && len && strcmp(r->method, "HEAD") != 0)
		rc = buf_append(&b, body, len);
	r->status = status;
	if (!rc && mg_write(r->conn, b.data, b.len) != (int)b.len)
		rc = TG_EIO;
	buf_free(&b);
	return rc;
}

int resp_json(tg_req_t *r, int status, const cJSON *json)
{
	char *s = cJSON_PrintUnformatted(json);
	int rc;

	if (!s) {
		static const char oom[] =
			"{\"error\":{\"message\":\"out of memory\","
			"\"type\":\"server_error\",\"code\":null,\"param\":null}}";

		return resp_send(r, 500, "application/json", oom, sizeof(oom) - 1);
	}
	rc = resp_send(r, status, "application/json", s, strlen(s));
	cJSON_free(s);
	return rc;
}

int resp_html(tg_req_t *r, int status, const buf_t *html)
{
	return resp_send(r, status, "text/html; charset=utf-8", buf_cstr(html), html->len);
}

int resp_text(tg_req_t *r, int status, const char *text)
{
	return resp_send(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

int resp_redirect(tg_req_t *r, const char *location)
{
	/* Only local paths: an open redirect is a phishing tool. */
	if (location[0] != '/' || location[1] == '/' || location[1] == '\\')
		location = "/";
	if (resp_header(r, "Location", location))
		return resp_error(r, 400, "invalid_request_error", NULL, "Bad redirect target.");
	return resp_send(r, 303, "text/plain; charset=utf-8", "", 0);
}

static int send_plain_html_error(tg_req_t *r, int status, const char *message)
{
	buf_t b;
	int rc;

	buf_init(&b, (size_t)64 << 10); /* fixed markup and one message; else plain text */
	rc = buf_appendf(&b,
			 "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
			 "<title>%d %s</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
			 "</head><body><main class=\"container\"><h1>%d %s</h1><p>",
			 status, resp_status_text(status), status, resp_status_text(status));
	if (!rc)
		rc = buf_append_html(&b, message, strlen(message));
	if (!rc)
		rc = buf_puts(
			&b,
			"</p><p><a href=\"/\">Back to the dashboard</a></p></main></body></html>");
	rc = rc ? resp_text(r, status, message) : resp_html(r, status, &b);
	buf_free(&b);
	return rc;
}

int resp_error(tg_req_t *r, int status, const char *type, const char *code, const char *message)
{
	cJSON *root, *err;
	int rc;

	if (!r->api) {
		if (html_error_renderer &&
		    html_error_renderer(r, status, resp_status_text(status), message) == 0)
			return TG_OK;
		return send_plain_html_error(r, status, message);
	}
	root = cJSON_CreateObject();
	err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "message", message);
	cJSON_AddStringToObject(err, "type", type);
	if (code)
		cJSON_AddStringToObject(err, "code", code);
	else
		cJSON_AddNullToObject(err, "code");
	cJSON_AddNullToObject(err, "param");
	rc = resp_json(r, status, root);
	cJSON_Delete(root);
	return rc;
}

int resp_stream_start(tg_req_t *r, int status, const char *content_type)
{
	int rc;

	buf_init(&r->stream_head, BUF_MAX_LARGE); /* the first chunk joins it (stream_send) */
	rc = build_head(r, &r->stream_head, status, content_type);
	/* Event streams must not wait in a proxy's buffer (nginx honours this). */
	if (!rc && strncmp(content_type, "text/event-stream", 17) == 0)
		rc = buf_puts(&r->stream_head, "X-Accel-Buffering: no\r\n");
	if (!rc)
		rc = buf_puts(&r->stream_head, "Transfer-Encoding: chunked\r\n\r\n");
	if (rc) {
		buf_free(&r->stream_head);
		return rc;
	}
	r->status = status;
	return TG_OK;
}

/* The head if it still waits, one chunk of n bytes (none when n is 0), then
 * the last chunk if last: all in one write, one packet. */
static int stream_send(tg_req_t *r, const void *p, size_t n, int last)
{
	buf_t b;
	int rc = TG_OK;

	if (r->method && strcmp(r->method, "HEAD") == 0)
		n = 0, last = 0; /* the head only */
	if (!n && !last && !r->stream_head.len)
		return TG_OK;
	b = r->stream_head; /* the head's buffer becomes the write's */
	memset(&r->stream_head, 0, sizeof(r->stream_head));
	if (!b.data)
		buf_init(&b, n + 64); /* one chunk: its size line, data and the last chunk */
	if (n) {
		rc = buf_appendf(&b, "%zx\r\n", n);
		if (!rc)
			rc = buf_append(&b, p, n);
		if (!rc)
			rc = buf_puts(&b, "\r\n");
	}
	if (!rc && last)
		rc = buf_puts(&b, "0\r\n\r\n");
	if (!rc && b.len && mg_write(r->conn, b.data, b.len) != (int)b.len)
		rc = TG_EIO;
	buf_free(&b);
	return rc;
}

int resp_stream_write(tg_req_t *r, const void *p, size_t n)
{
	return stream_send(r, p, n, 0);
}

int resp_stream_end(tg_req_t *r, const void *p, size_t n)
{
	return stream_send(r, p, n, 1);
}
