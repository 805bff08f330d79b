/* server.h - CivetWeb lifecycle and request dispatch. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "core/config.h"
#include "http/http.h"

/* The route table (src/routes.c). */
extern const struct route tg_routes[];
extern const size_t tg_routes_count;
/* Decide whether r may call route (src/routes.c). Returns TG_OK to proceed;
 * otherwise it has already sent a response (401/403/redirect). */
int routes_authorize(tg_req_t *r, const struct route *route);

/* Start serving (config must outlive the server). */
int server_start(const tg_config_t *cfg, char *err, size_t errlen);
/* A function every worker thread runs as it exits (closing per-thread
 * resources: database connection, HTTP client). */
void server_on_thread_exit(void (*fn)(void));
/* Stop accepting, let in-flight requests finish, join the workers. */
void server_stop(void);
/* The running configuration. */
const tg_config_t *server_config(void);
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

/* Serve /static/NAME from the assets directory (static.c). */
int static_serve(tg_req_t *r);

#endif
