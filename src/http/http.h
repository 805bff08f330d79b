/* http.h - the request object, route table types, and response helpers.
 *
 * One CivetWeb handler receives every request and dispatches it through the
 * route table handed to server_start (http/server.h). A handler gets a
 * tg_req_t, checks what it must, and sends exactly one response with a resp_*
 * function. Responses under /v1 are JSON (OpenAI error envelope); everything
 * else is HTML.
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/proxy.h"

struct mg_connection;
struct mg_request_info;
struct web_session;
struct gw_key;

#define REQ_MAX_PARAMS 4
#define REQ_ID_MAX 64

/* Who may call a route; checked before the handler runs (server_app.authorize). */
enum auth_level {
	AUTH_PUBLIC = 0, /* anyone */
	AUTH_SESSION,    /* a signed-in dashboard user */
	AUTH_ADMIN,      /* a signed-in instance admin */
	AUTH_APIKEY,     /* a valid API key (gateway) */
};

typedef struct tg_req {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *method;
	const char *path;  /* decoded path, without the query string */
	const char *query; /* raw query string, or NULL */
	char request_id[REQ_ID_MAX + 1];
	int request_id_given; /* 1 when the client sent it (a retry may reuse it) */
	int api;              /* 1 for /v1 and other JSON routes: errors as JSON */
	int nparams;
	char *params[REQ_MAX_PARAMS]; /* path parameters, in pattern order (owned) */
	buf_t body;
	int body_read;
	struct web_session *session; /* set for AUTH_SESSION / AUTH_ADMIN routes */
	struct gw_key *key;          /* set for AUTH_APIKEY routes */
	buf_t headers;               /* extra response header lines "Name: value\r\n" */
	buf_t stream_head;           /* a streaming answer's head, sent with its first bytes */
	const char *route;           /* pattern of the route picked for the path, NULL for none */
	int status;                  /* status sent, for the access log (0 = nothing sent) */
	int close; /* 1: close the connection after the answer (set before sending) */
	int64_t start_us;
	int64_t max_body;
	int64_t timeout_ms; /* request_timeout_ms: a body slower than this gets a 408 */
	/* The client (address, scheme) req_ip and req_is_tls answer with: set once
	 * by req_client_init. */
	struct proxy_client client;
} tg_req_t;

typedef int (*route_fn)(tg_req_t *r);

struct route {
	const char *method;  /* "GET", "POST" ... */
	const char *pattern; /* "/orgs/:id/members"; ":x" matches one non-empty segment */
	route_fn fn;
	enum auth_level auth;
};

/* --- routing (router.c) --- */
/* Match path against pattern; on a match fill params (heap copies, caller
 * frees) and return 1. params may be NULL to only test the match. */
int router_match(const char *pattern, const char *path, char **params, int *nparams);
/* The route of routes[0..n) that answers method and path: the first entry
 * matching both (a GET entry also takes HEAD), *method_ok = 1; else the first
 * matching the path alone (a 405), *method_ok = 0; else NULL. Copies nothing. */
const struct route *router_find(const struct route *routes, size_t n, const char *method,
				const char *path, int *method_ok);
/* What the dispatcher does after a handler returned rc with r->status
 * already `status` (0: nothing sent). */
enum dispatch_outcome {
	DISPATCH_DONE,     /* answered: nothing more to do */
	DISPATCH_SEND_500, /* nothing sent: answer 500 in the route's envelope */
	DISPATCH_CLOSE,    /* failed after its answer started: close the connection */
};
enum dispatch_outcome dispatch_outcome(int rc, int status);

/* --- request helpers (req.c) --- */
const char *req_header(const tg_req_t *r, const char *name);
/* Count of headers with this name (duplicate Authorization is an error). */
int req_header_count(const tg_req_t *r, const char *name);
/* Read the body into r->body, up to r->max_body. TG_ETOOBIG when larger;
 * TG_EIO when it ends before its Content-Length, its chunked encoding is
 * malformed, or it does not arrive within request_timeout_ms. */
int req_read_body(tg_req_t *r);
/* Answer a failed req_read_body() (413, 408 or 400 in the route's envelope)
 * and close the connection after it: what is left of that body cannot be
 * told apart from a next request. */
int req_body_fail(tg_req_t *r, int rc);
/* Decode the %-escapes of a request path (CivetWeb hands it over raw, its dot
 * segments already removed). NULL for a malformed escape, a control character
 * (NUL would cut the path short, CR or LF would forge log lines), or a "." or
 * ".." segment (spelled %2e to slip past that removal). Caller frees. */
char *req_path_decode(const char *raw);
/* 1 when the Content-Type's media type equals `type` (parameters ignored). */
int req_content_type_is(const tg_req_t *r, const char *type);
/* Decode a form or query string value: the first `name` in `src` (a
 * urlencoded string of n bytes). Returns a heap string (caller frees) or NULL
 * if absent. Invalid %-escapes make the value absent. */
char *req_form_get(const char *src, size_t n, const char *name);
/* Every value of `name` (a repeated field, e.g. checkboxes), joined with
 * commas; NULL when absent. Caller frees. */
char *req_form_get_all(const char *src, size_t n, const char *name);
/* Shorthands over the body / the query string. */
char *req_post_all(tg_req_t *r, const char *name);
char *req_post(tg_req_t *r, const char *name);
char *req_query(const tg_req_t *r, const char *name);
/* The value of cookie `name` from the Cookie header (caller frees), or NULL. */
char *req_cookie(const tg_req_t *r, const char *name);
/* Parse the body as JSON; on failure sends a 400 (also for invalid UTF-8 or
 * nesting deeper than JSON_MAX_DEPTH), 408 or 413 and returns NULL. Caller
 * frees with cJSON_Delete. */
cJSON *req_json(tg_req_t *r);
/* Work out the request's client once (http/proxy.h, with the server's
 * trusted_proxies): its address, and whether it came over TLS. The server
 * calls it as each request starts. */
void req_client_init(tg_req_t *r);
/* The client's address as text, normalised: the peer's, or behind a trusted
 * proxy the one it forwarded for (http/proxy.h). Throttles, sessions, the
 * audit log and the access log all key on it. */
const char *req_ip(const tg_req_t *r);
/* 1 when the client's connection is TLS: its own, or a trusted proxy's
 * X-Forwarded-Proto / Forwarded proto= saying https. */
int req_is_tls(const tg_req_t *r);

/* --- responses (resp.c) --- */
/* Add a header to the response; values with CR or LF are refused (TG_EINVAL). */
int resp_header(tg_req_t *r, const char *name, const char *value);
/* Send a whole response with the security headers. */
int resp_send(tg_req_t *r, int status, const char *content_type, const void *body, size_t len);
int resp_json(tg_req_t *r, int status, const cJSON *json);
int resp_html(tg_req_t *r, int status, const buf_t *html);
int resp_text(tg_req_t *r, int status, const char *text);
/* 303 See Other to a local path. */
int resp_redirect(tg_req_t *r, const char *location);
/* An error in the envelope the route expects: OpenAI JSON under /v1, HTML
 * page elsewhere. type/code are the OpenAI fields (code may be NULL). */
int resp_error(tg_req_t *r, int status, const char *type, const char *code, const char *message);
/* Hook the dashboard sets to render HTML error pages in the layout; without
 * it a plain page is sent. It returns 0 when it sent the response. */
typedef int (*resp_html_error_fn)(tg_req_t *r, int status, const char *title, const char *message);
void resp_set_html_error_renderer(resp_html_error_fn fn);
/* Start a streaming response (chunked transfer encoding); then write with
 * resp_stream_write and finish with resp_stream_end, which sends its n bytes
 * (n may be 0) and the end of the response in one write. The head waits for
 * the first write (resp_stream_write with n = 0 sends it alone); one still
 * waiting when the handler returns goes out with an empty body. */
int resp_stream_start(tg_req_t *r, int status, const char *content_type);
int resp_stream_write(tg_req_t *r, const void *p, size_t n);
int resp_stream_end(tg_req_t *r, const void *p, size_t n);
const char *resp_status_text(int status);

#endif
