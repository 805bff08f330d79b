/* server.h - CivetWeb lifecycle and request dispatch. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "core/config.h"
#include "http/http.h"

/* What the server serves, handed over by the program that runs it. */
struct server_app {
	const struct route *routes; /* matched in order; the first match wins */
	size_t nroutes;
	/* Decide whether r may call route: TG_OK to run the handler; otherwise
	 * it has already sent a response (401/403/redirect). */
	int (*authorize)(tg_req_t *r, const struct route *route);
	/* Run by every worker thread as it exits, to close per-thread resources
	 * (database connection, HTTP client); may be NULL. */
	void (*thread_exit)(void);
};

/* Start serving. cfg and app (and the route table) must outlive the server. */
int server_start(const tg_config_t *cfg, const struct server_app *app, char *err, size_t errlen);
/* Graceful shutdown, in three steps. server_drain_begin: the listening
 * ports close (new connections are refused by the kernel), and every answer
 * from now on carries Connection: close. server_in_flight: requests being
 * handled now (streams included); wait for 0, or a deadline. Then
 * server_drain_cut: every connection still open is shut down, so what still
 * runs ends as if its client had gone (streams are settled on what they
 * delivered), and server_stop joins the workers. */
void server_drain_begin(void);
int64_t server_in_flight(void);
void server_drain_cut(void);
/* Stop accepting, wait for the workers to finish and join them. */
void server_stop(void);
/* "https" with TLS on, else "http". */
const char *server_scheme(void);
/* Port actually bound (useful with port 0). */
int server_port(void);

/* Connections admitted now and requests refused with 503 for want of a
 * connection slot so far (see the comment in server.c). */
void server_connection_stats(int64_t *open, uint64_t *refused);

/* The per-address authentication throttles (http/ipthrottle.h), made by
 * server_start from the config; NULL when switched off (limit 0) or before
 * the server starts. */
enum server_throttle { THROTTLE_GATEWAY_AUTH, THROTTLE_LOGIN, THROTTLE_COUNT };
struct ipthrottle *server_throttle(enum server_throttle which);

/* Serve /static/NAME from assets_dir/static (static.c). */
int static_serve(tg_req_t *r, const char *assets_dir);

#endif
