/* server.c - CivetWeb setup and the single dispatcher over the route table. */
#include "http/server.h"

#include <civetweb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/slots.h"
#include "core/timeutil.h"
#include "http/ipthrottle.h"
#include "http/edge.h"
#include "http/proxy.h"
#include "http/tls.h"
#include "metrics/metrics.h"
#include "store/db.h"

/* Addresses remembered per authentication throttle table (fixed memory). */
#define THROTTLE_CAPACITY 4096

static struct mg_context *ctx;
static struct ipthrottle *throttles[THROTTLE_COUNT];
static char hsts[48]; /* the Strict-Transport-Security value; empty: none */
static struct server_app app_cur;
static const tg_config_t *cfg_cur;

/* Random bytes for request ids, drawn from the system a block at a time. */
static void id_random(unsigned char *out, size_t n)
{
	static __thread unsigned char pool[256];
	static __thread size_t left;

	if (left < n) {
		randombytes_buf(pool, sizeof(pool));
		left = sizeof(pool);
	}
	memcpy(out, pool + sizeof(pool) - left, n); /* ids are public: no wiping */
	left -= n;
}

/* Accept a client X-Request-Id of 1..64 characters from [A-Za-z0-9._:-];
 * otherwise make one: "req_", the time in milliseconds (12 hex digits) and
 * 64 random bits (16). The time first keeps the ids the gateway makes in
 * order, so the indexes on request ids grow at their end instead of
 * touching a random page for every call. */
static void request_id_init(tg_req_t *r)
{
	static const char hex[] = "0123456789abcdef";
	const char *given = req_header(r, "X-Request-Id");
	unsigned char rnd[8];
	uint64_t ms;
	size_t i, n;

	if (given) {
		n = strlen(given);
		for (i = 0; i < n; i++) {
			char c = given[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
			      c == '-'))
				break;
		}
		if (n > 0 && n <= REQ_ID_MAX && i == n) {
			memcpy(r->request_id, given, n + 1);
			r->request_id_given = 1;
			return;
		}
	}
	ms = (uint64_t)time_now_ms();
	id_random(rnd, sizeof(rnd));
	memcpy(r->request_id, "req_", 4);
	for (i = 0; i < 12; i++)
		r->request_id[4 + i] = hex[(ms >> (44 - 4 * i)) & 15];
	for (i = 0; i < sizeof(rnd); i++) {
		r->request_id[16 + 2 * i] = hex[rnd[i] >> 4];
		r->request_id[17 + 2 * i] = hex[rnd[i] & 15];
	}
	r->request_id[16 + 2 * sizeof(rnd)] = '\0';
}

/* ---------------------------------------------------- connection limit
 *
 * CivetWeb serves a connection on one worker thread for the connection's
 * whole life (keep-alive included) and queues accepted connections while all
 * workers are busy. A limit made of the thread count alone would leave the
 * excess waiting silently in that queue until a worker frees up, or until the
 * client times out. So `threads` workers run but only max_connections of them
 * (fewer, see config_max_connections) serve admitted connections; the spare
 * workers exist to answer each connection over the limit at once with a 503,
 * Retry-After and Connection: close, so it is never queued behind the
 * long-running calls. (A burst of more refused connections than spare
 * workers still queues, but only behind refusals, which take microseconds.
 * A client that ignores Connection: close keeps its spare worker until the
 * keep-alive timeout, getting a 503 per request unless a slot frees up.)
 *
 * A connection takes its slot at its first request (a socket that never
 * sends one holds no slot) and gives it back when CivetWeb closes it; a
 * refused connection tries again at its next request. Idle keep-alive
 * connections keep their slot, so while every slot is taken each answer
 * carries Connection: close and clients give their idle slots back.
 * /health and /metrics take no slot and are answered even over the limit
 * (they are cheap, and monitoring should see an overloaded server, not a
 * failing one); a connection that only polls them runs on a spare worker.
 */
static struct slots conn_slots;
static int64_t conn_max;
static int64_t in_flight;  /* requests in dispatch now (atomic) */
static int draining;       /* set by server_drain_begin (atomic) */
static char conn_admitted; /* its address marks an admitted connection */

static int is_monitoring_path(const char *path)
{
	return strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0;
}

/* 1 when the request may be served; 0 when it must get the 503. */
static int connection_admit(tg_req_t *r)
{
	if (mg_get_user_connection_data(r->conn) != &conn_admitted) {
		if (is_monitoring_path(r->path))
			return 1;
		if (!slots_take(&conn_slots, conn_max)) {
			slots_refuse(&conn_slots);
			return 0;
		}
		mg_set_user_connection_data(r->conn, &conn_admitted);
	}
	/* Every slot taken: this keep-alive connection gives its slot back
	 * after the answer. */
	if (slots_used(&conn_slots) >= conn_max)
		r->close = 1;
	return 1;
}

static void on_connection_close(const struct mg_connection *conn)
{
	if (mg_get_user_connection_data(conn) == &conn_admitted) {
		mg_set_user_connection_data(conn, NULL);
		slots_give(&conn_slots);
	}
	edge_connection_closed(mg_get_request_info(conn));
}

static void connection_refuse(tg_req_t *r)
{
	char msg[200];

	snprintf(msg, sizeof(msg),
		 "The server is at its limit of %lld open connections. Retry in a moment.",
		 (long long)conn_max);
	resp_header(r, "Retry-After", "1");
	r->close = 1;
	resp_error(r, 503, "server_error", "server_busy", msg);
}

void server_connection_stats(int64_t *open, uint64_t *refused)
{
	*open = slots_used(&conn_slots);
	*refused = slots_refused(&conn_slots);
}

struct ipthrottle *server_throttle(enum server_throttle which)
{
	return which < THROTTLE_COUNT ? throttles[which] : NULL;
}

static int is_api_path(const char *path)
{
	return strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0 ||
	       strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0;
}

/* JSON under the API, HTML forms in the dashboard; anything else is a 415. */
static int post_content_type_ok(tg_req_t *r)
{
	if (r->api) {
		if (req_content_type_is(r, "application/json"))
			return 1;
		resp_error(r, 415, "invalid_request_error", "unsupported_media_type",
			   "Content-Type must be application/json.");
		return 0;
	}
	if (req_content_type_is(r, "application/x-www-form-urlencoded"))
		return 1;
	resp_error(r, 415, "invalid_request_error", "unsupported_media_type",
		   "This form must be sent as application/x-www-form-urlencoded.");
	return 0;
}

/* The route answering r, its pattern set as r->route (the metrics label);
 * *method_ok as router_find. */
static const struct route *route_pick(tg_req_t *r, int *method_ok)
{
	const struct route *rt = router_find(app_cur.routes, app_cur.nroutes, r->method, r->path,
					     method_ok);

	r->route = rt ? rt->pattern : NULL;
	return rt;
}

/* Every method the route table has for r's path, as an Allow header value. */
static void allowed_methods(const tg_req_t *r, char *allow, size_t size)
{
	size_t i;
	int n;

	allow[0] = '\0';
	for (i = 0; i < app_cur.nroutes; i++) {
		const struct route *rt = &app_cur.routes[i];
		const char *m = rt->method;

		if (!router_match(rt->pattern, r->path, NULL, &n) || strstr(allow, m) ||
		    strlen(allow) + strlen(m) + 3 >= size)
			continue;
		if (allow[0])
			strcat(allow, ", ");
		strcat(allow, m);
	}
}

static void server_error(tg_req_t *r)
{
	resp_error(r, 500, "server_error", NULL, "The server could not complete the request.");
}

/* Run the route's handler and make good what it left undone. */
static void run_handler(tg_req_t *r, const struct route *rt)
{
	int rc = rt->fn(r);

	switch (dispatch_outcome(rc, r->status)) {
	case DISPATCH_DONE:
		break;
	case DISPATCH_SEND_500:
		log_error("%s %s: the handler returned %d without answering", rt->method,
			  rt->pattern, rc);
		server_error(r);
		break;
	case DISPATCH_CLOSE:
		log_warn("%s %s: the handler returned %d after answering %d; closing the "
			 "connection",
			 rt->method, rt->pattern, rc, r->status);
		r->close = 1;
		break;
	}
}

static void dispatch_route(tg_req_t *r, const struct route *rt, int method_ok)
{
	char allow[64];

	if (rt && method_ok) {
		if (!router_match(rt->pattern, r->path, r->params, &r->nparams)) {
			server_error(r); /* out of memory copying the parameters */
			return;
		}
		if (strcmp(r->method, "POST") == 0 && !post_content_type_ok(r))
			return;
		if (app_cur.authorize(r, rt) == TG_OK)
			run_handler(r, rt);
		else if (!r->status)
			server_error(r);
		return;
	}
	if (rt) {
		allowed_methods(r, allow, sizeof(allow));
		resp_header(r, "Allow", allow);
		resp_error(r, 405, "invalid_request_error", "method_not_allowed",
			   "This method is not allowed for this path.");
		return;
	}
	if (strncmp(r->path, "/static/", 8) == 0 &&
	    (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)) {
		static_serve(r, cfg_cur->assets_dir);
		return;
	}
	if (r->api)
		resp_error(r, 404, "invalid_request_error", "not_found",
			   "Unknown API route. See GET /v1/models for what this gateway serves.");
	else
		resp_error(r, 404, "invalid_request_error", "not_found",
			   "There is no page at this address.");
}

/* CivetWeb has no call to close a connection after a handler's answer: it
 * keeps the connection open when the request's Connection header (or its
 * absence, in HTTP/1.1) allows it. So the header is set to "close" in its
 * request table, which it reads once the handler returns. */
static void close_after_answer(tg_req_t *r)
{
	struct mg_request_info *ri = (struct mg_request_info *)r->ri;
	int i;

	for (i = 0; i < ri->num_headers; i++)
		if (strcasecmp(ri->http_headers[i].name, "Connection") == 0)
			break;
	if (i >= MG_MAX_HEADERS)
		i = MG_MAX_HEADERS - 1; /* a full table: the request is answered already */
	ri->http_headers[i].name = "Connection";
	ri->http_headers[i].value = "close";
	if (i >= ri->num_headers)
		ri->num_headers = i + 1;
}

/* Every request's start, answered by a route (dispatch) or by CivetWeb's
 * error path (on_http_error). */
static void req_open(tg_req_t *r, struct mg_connection *conn)
{
	memset(r, 0, sizeof(*r));
	r->start_us = time_mono_us();
	r->conn = conn;
	r->ri = mg_get_request_info(conn);
	r->method = r->ri && r->ri->request_method ? r->ri->request_method : "-";
	buf_init(&r->headers, 16384);
	if (r->ri) {
		request_id_init(r);
		req_client_init(r);
		if (hsts[0] && req_is_tls(r))
			resp_header(r, "Strict-Transport-Security", hsts);
	} else
		snprintf(r->request_id, sizeof(r->request_id), "-");
}

/* ...and its end: a stream head still waiting goes out (with an empty body),
 * then the metrics, the access log and what the request owned. */
static void req_close(tg_req_t *r)
{
	int k;

	if (r->stream_head.len)
		resp_stream_end(r, NULL, 0);
	if (r->close && r->ri)
		close_after_answer(r);
	metrics_http_request(r->method, r->route, r->status);
	log_request(r->method, r->path, r->status, time_mono_us() - r->start_us, r->request_id,
		    r->ri ? req_ip(r) : NULL);
	for (k = 0; k < r->nparams; k++)
		free(r->params[k]);
	buf_free(&r->body);
	buf_free(&r->headers);
	buf_free(&r->stream_head);
	/* The worker may now wait on an idle keep-alive client for long. */
	db_release();
}

/* 1 when c is a character of a host name or an IP address literal. */
static int host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
}

/* With TLS on, a request over plain HTTP came in on tls_redirect_from: a
 * 308 to the same path and query over HTTPS. The origin is public_url when
 * that is https://, else the host the client asked for (Host, its port
 * dropped; the listen address when Host is missing or malformed) with the
 * HTTPS port. The Host a client sends can only send that client elsewhere. */
static void https_redirect(tg_req_t *r)
{
	const char *h = req_header(r, "Host");
	char host[256], origin[CONFIG_STR_MAX + 16], loc[4096];
	size_t n = 0, i;
	int port = server_port();

	if (strncmp(cfg_cur->public_url, "https://", 8) == 0) {
		snprintf(origin, sizeof(origin), "%s", cfg_cur->public_url);
		n = strlen(origin);
		while (n > 8 && origin[n - 1] == '/')
			origin[--n] = '\0';
	} else {
		if (h && h[0] == '[')
			n = strcspn(h, "]") + 1;
		else if (h)
			n = strcspn(h, ":");
		if (!h || n < 1 || n >= sizeof(host) || (h[0] == '[' && h[n - 1] != ']'))
			n = 0;
		for (i = 0; i < n; i++)
			if (!host_char(h[i]))
				n = 0;
		if (n)
			memcpy(host, h, n);
		else
			n = (size_t)snprintf(host, sizeof(host), "%.*s",
					     (int)strcspn(cfg_cur->listen, ":"), cfg_cur->listen);
		host[n] = '\0';
		snprintf(origin, sizeof(origin), port == 443 ? "https://%s" : "https://%s:%d", host,
			 port);
	}
	snprintf(loc, sizeof(loc), "%s%s%s%s", origin,
		 r->ri->request_uri ? r->ri->request_uri : "/", r->query ? "?" : "",
		 r->query ? r->query : "");
	r->close = 1;
	if (resp_header(r, "Location", loc)) {
		resp_error(r, 400, "invalid_request_error", "invalid_path",
			   "The request cannot be redirected to HTTPS.");
		return;
	}
	resp_text(r, 308, "This server is served over HTTPS.\n");
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
	const struct route *rt;
	tg_req_t r;
	char *path;
	int method_ok;

	(void)cbdata;
	__atomic_add_fetch(&in_flight, 1, __ATOMIC_ACQ_REL);
	req_open(&r, conn);
	if (edge_request_begin(r.ri))
		r.close = 1; /* its address has enough idle connections open */
	/* CivetWeb leaves the path encoded (decode_url=no) with its dot segments
	 * removed; decoding here refuses what it would let through. */
	r.path = r.ri->local_uri ? r.ri->local_uri : "/";
	path = req_path_decode(r.path);
	if (path)
		r.path = path;
	r.query = r.ri->query_string;
	r.api = is_api_path(r.path);
	r.max_body = cfg_cur->max_body_bytes;
	r.timeout_ms = cfg_cur->request_timeout_ms;
	rt = route_pick(&r, &method_ok);
	if (__atomic_load_n(&draining, __ATOMIC_ACQUIRE))
		r.close = 1; /* shutting down: no next request on this connection */

	if (cfg_cur->tls_cert[0] && !r.ri->is_ssl && !req_is_tls(&r)) {
		https_redirect(&r);
	} else if (!connection_admit(&r)) {
		connection_refuse(&r);
	} else if (!path) {
		r.close = 1;
		resp_error(&r, 400, "invalid_request_error", "invalid_path",
			   "The path has a malformed %-escape, an encoded control character or an "
			   "encoded dot segment.");
	} else if (r.ri->num_headers >= MG_MAX_HEADERS) {
		/* CivetWeb keeps the first MG_MAX_HEADERS and drops the rest unseen:
		 * a second Authorization there would go unnoticed. */
		r.close = 1;
		resp_error(&r, 431, "invalid_request_error", "too_many_headers",
			   "The request has too many header fields.");
	} else if (r.ri->content_length > r.max_body) {
		/* Refuse before reading a byte of it; the connection cannot be reused. */
		r.close = 1;
		resp_error(&r, 413, "invalid_request_error", "request_too_large",
			   r.api ? "Request body is too large." :
				   "The submitted form is too large.");
	} else {
		dispatch_route(&r, rt, method_ok);
	}
	req_close(&r);
	free(path);
	edge_request_end(r.ri);
	__atomic_sub_fetch(&in_flight, 1, __ATOMIC_ACQ_REL);
	return r.status ? r.status : 500;
}

/* The errors CivetWeb answers itself, before any handler runs (a request it
 * cannot parse, a body without a valid Content-Length, an HTTP version it
 * does not speak), in the envelopes of ours: JSON under the API and when the
 * path is unknown, HTML in the dashboard; with a request id and the security
 * headers, the connection closed after it. */
static int on_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
	static const struct {
		int status;
		const char *code, *message;
	} known[] = {
		{ 400, "bad_request", "The request could not be read as HTTP/1.1." },
		{ 408, "request_timeout", "The request did not arrive in time." },
		{ 411, "length_required",
		  "A request body needs a valid Content-Length or chunked transfer encoding." },
		{ 413, "request_too_large", "The request is too large." },
		{ 431, "headers_too_large", "The request's header fields are too large." },
		{ 505, "http_version_not_supported",
		  "Only HTTP/1.0 and HTTP/1.1 are served here." },
	};
	const char *code = status < 500 ? "bad_request" : "server_error";
	const char *message = status < 500 ? "The request could not be read as HTTP/1.1." :
					     "The server could not handle the request.";
	char path[256];
	tg_req_t r;
	size_t i;
	int method_ok;

	(void)errmsg; /* CivetWeb's wording, with bytes of the request in it */
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].status == status) {
			code = known[i].code;
			message = known[i].message;
			break;
		}
	req_open(&r, conn);
	if (r.ri && (r.ri->local_uri || r.ri->request_uri)) {
		/* Only as far as the query: this decides the envelope. */
		snprintf(path, sizeof(path), "%s",
			 r.ri->local_uri ? r.ri->local_uri : r.ri->request_uri);
		path[strcspn(path, "?")] = '\0';
		r.path = path;
	}
	r.api = !r.path || is_api_path(r.path);
	if (!r.path)
		r.path = "-";
	route_pick(&r, &method_ok);
	r.close = 1;
	resp_error(&r, status, status < 500 ? "invalid_request_error" : "server_error", code,
		   message);
	req_close(&r);
	return 0;
}

static int log_civetweb(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	log_warn("http: %s", message);
	return 1;
}

static void thread_exit(const struct mg_context *c, int thread_type, void *user)
{
	(void)c;
	(void)thread_type;
	(void)user;
	if (app_cur.thread_exit)
		app_cur.thread_exit();
}

static void throttles_free(void)
{
	size_t i;

	for (i = 0; i < THROTTLE_COUNT; i++) {
		ipthrottle_free(throttles[i]);
		throttles[i] = NULL;
	}
}

static int allow_all(struct mg_connection *conn, void *ud)
{
	(void)conn;
	(void)ud;
	return 1;
}

int server_start(const tg_config_t *cfg, const struct server_app *app, char *err, size_t errlen)
{
	struct mg_callbacks cb;
	char threads[16], timeout[24], keep_alive[24], ports[2 * CONFIG_STR_MAX + 8];
	/* clang-format off: name and value pairs */
	const char *options[] = {
		"listening_ports",
		ports,
		"num_threads",
		threads,
		"enable_keep_alive",
		"yes",
		"keep_alive_timeout_ms",
		keep_alive,
		"tcp_nodelay",
		"1",
		"request_timeout_ms",
		timeout,
		"max_request_size",
		"65536",
		"enable_directory_listing",
		"no",
		"decode_url",
		"no", /* dispatch() decodes, refusing what must not pass */
		NULL,
	};
	/* clang-format on */

	if (proxy_configure(cfg->trusted_proxies, err, errlen) ||
	    tls_listening_ports(cfg, ports, sizeof(ports), err, errlen) ||
	    tls_check(cfg, err, errlen) ||
	    edge_configure(cfg->max_connections_per_ip, proxy_trusted(), err, errlen))
		return TG_EINVAL;
	hsts[0] = '\0';
	if (cfg->tls_cert[0] && cfg->hsts_max_age_s > 0)
		snprintf(hsts, sizeof(hsts), "max-age=%lld", (long long)cfg->hsts_max_age_s);
	in_flight = 0;
	draining = 0;
	cfg_cur = cfg;
	app_cur = *app;
	conn_max = config_max_connections(cfg);
	snprintf(threads, sizeof(threads), "%lld", (long long)cfg->threads);
	if ((cfg->auth_fail_limit > 0 &&
	     !(throttles[THROTTLE_GATEWAY_AUTH] = ipthrottle_new(
		       THROTTLE_CAPACITY, cfg->auth_fail_limit, cfg->auth_fail_window_s * 1000))) ||
	    (cfg->login_fail_limit > 0 &&
	     !(throttles[THROTTLE_LOGIN] = ipthrottle_new(THROTTLE_CAPACITY, cfg->login_fail_limit,
							  cfg->login_fail_window_s * 1000)))) {
		snprintf(err, errlen, "out of memory");
		throttles_free();
		return TG_ENOMEM;
	}
	/* CivetWeb's request_timeout_ms bounds reading a request head and each
	 * read or write that stalls; our own request_timeout_ms bounds a body
	 * (req_body). */
	snprintf(timeout, sizeof(timeout), "%lld", (long long)cfg->header_timeout_ms);
	snprintf(keep_alive, sizeof(keep_alive), "%lld", (long long)cfg->idle_timeout_ms);
	memset(&cb, 0, sizeof(cb));
	cb.log_message = log_civetweb;
	cb.exit_thread = thread_exit;
	cb.connection_close = on_connection_close;
	cb.http_error = on_http_error;
	if (cfg->tls_cert[0])
		cb.init_ssl = tls_init_ssl;
	mg_init_library(cfg->tls_cert[0] ? MG_FEATURES_SSL : 0);
	ctx = mg_start(&cb, (void *)cfg, options);
	if (!ctx) {
		snprintf(err, errlen, "cannot listen on %s (address in use or not available)",
			 cfg->listen);
		mg_exit_library();
		throttles_free();
		edge_reset();
		return TG_EIO;
	}
	{
		struct mg_server_port sp[4];
		int k, n = mg_get_server_ports(ctx, 4, sp), pn[4];

		for (k = 0; k < n; k++)
			pn[k] = sp[k].port;
		if (n <= 0 || edge_find_listeners(pn, n) < n)
			log_warn("shutdown: not every listening socket was found; a drain will "
				 "not close them");
	}
	/* Access is checked by each handler (sessions, roles, API keys), never
	 * by CivetWeb's .htpasswd files; saying so spares a stat() of a password
	 * file on every request. */
	mg_set_auth_handler(ctx, "/", allow_all, NULL);
	mg_set_request_handler(ctx, "/", dispatch, NULL);
	return TG_OK;
}

int server_port(void)
{
	struct mg_server_port ports[4];
	int n;

	if (!ctx)
		return -1;
	n = mg_get_server_ports(ctx, 4, ports);
	return n > 0 ? ports[0].port : -1;
}

void server_drain_begin(void)
{
	__atomic_store_n(&draining, 1, __ATOMIC_RELEASE);
	edge_stop_accepting();
}

int64_t server_in_flight(void)
{
	return __atomic_load_n(&in_flight, __ATOMIC_ACQUIRE);
}

void server_drain_cut(void)
{
	edge_cut_all();
}

const char *server_scheme(void)
{
	return cfg_cur && cfg_cur->tls_cert[0] ? "https" : "http";
}

void server_stop(void)
{
	if (!ctx)
		return;
	/* Idle keep-alive connections would hold their workers until the idle
	 * timeout: end them. */
	__atomic_store_n(&draining, 1, __ATOMIC_RELEASE);
	edge_cut_all();
	mg_stop(ctx);
	ctx = NULL;
	mg_exit_library();
	throttles_free();
	edge_reset();
}
