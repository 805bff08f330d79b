/* routes.h - the route table (routes.c) the server is started with. */
#ifndef TG_ROUTES_H
#define TG_ROUTES_H

#include <stddef.h>

#include "http/http.h"

/* Every URL the server answers, matched in order. */
extern const struct route tg_routes[];
extern const size_t tg_routes_count;
/* Decide whether r may call route. Returns TG_OK to proceed; otherwise it
 * has already sent a response (401/403/redirect). */
int routes_authorize(tg_req_t *r, const struct route *route);

#endif
