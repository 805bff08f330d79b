/* edge.h - what happens between the kernel and CivetWeb: every accepted
 * connection is counted per client address, over the cap it is refused at
 * once, and on shutdown the listeners stop taking connections and the open
 * ones can be cut.
 *
 * CivetWeb 1.15 has no hook between accept() and handing a socket to a
 * worker, so this module defines accept() itself: libcivetweb's call binds
 * to it (the executable's definition comes first in the dynamic linker's
 * lookup), and it calls the kernel's accept4. edge_configure checks that the
 * binding took; without it, the cap would silently not apply.
 *
 * An accepted connection is remembered by (client address, client port,
 * server port), the fields CivetWeb's request_info carries, until CivetWeb
 * closes it (edge_connection_closed, from its connection_close callback).
 *
 * The cap, max_connections_per_ip, counts an address's *waiting*
 * connections: those holding a worker with no request running on them (the
 * request head not in yet, or idle between keep-alive requests). That is
 * what slow and idle clients are made of, while a connection running a
 * request (a stream of a minute, say) does not count, so one address (a
 * team behind one NAT, a server of agents) may run thousands of streams.
 * A new connection from an address already at the cap gets a canned 429
 * JSON answer with Retry-After and is closed without reaching a worker; a
 * request that starts while its address is at the cap is answered with
 * Connection: close, so it does not come back as one more idle one.
 * Trusted proxies are exempt: they carry many clients.
 */
#ifndef TG_EDGE_H
#define TG_EDGE_H

#include <stdint.h>

#include "http/proxy.h"

struct mg_request_info;

struct edge_stats {
	int64_t open;       /* connections accepted and not closed yet */
	int64_t addresses;  /* distinct client addresses among them */
	uint64_t refused;   /* connections refused over the per-address cap */
	int64_t per_ip_max; /* the cap (0: none) */
};

/* Start counting with the cap (0: count, never refuse) and the addresses
 * exempt from it. TG_EINVAL with err set when CivetWeb's accept() does not
 * reach this module; TG_ENOMEM. Call before the server starts. */
int edge_configure(int64_t per_ip_max, const struct proxy_list *exempt, char *err, size_t errlen);
/* Forget everything (after the server stopped). */
void edge_reset(void);
/* CivetWeb closed the connection ri describes. */
void edge_connection_closed(const struct mg_request_info *ri);
/* A request starts on ri's connection (it stops waiting); 1 when its
 * address has max_connections_per_ip waiting connections even so: answer
 * with Connection: close. */
int edge_request_begin(const struct mg_request_info *ri);
/* The request ended: the connection waits again. */
void edge_request_end(const struct mg_request_info *ri);
void edge_get_stats(struct edge_stats *st);

/* Note the listening sockets serving the given ports (after mg_start);
 * returns how many were found. */
int edge_find_listeners(const int *ports, int nports);
/* Stop taking connections: each listening socket is replaced by a
 * descriptor that never becomes readable, so its port is closed (new
 * connections are refused by the kernel) while CivetWeb's accept loop runs
 * on undisturbed until it is stopped. */
void edge_stop_accepting(void);
/* Shut down every open connection (both directions): blocked reads see the
 * end of input, writes fail, so workers finish at once. */
void edge_cut_all(void);

#endif
