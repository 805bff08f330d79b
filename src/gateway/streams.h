/* streams.h - the cap on gateway streams open at once (max_streams).
 *
 * A streaming call takes a slot right after its request is validated, before
 * any credit is held or the provider is called, and gives it back when the
 * call ends; a stream over the cap is answered 503 `server_busy` with
 * Retry-After (and logged like any failed call, never billed). The slot
 * covers the whole call, the wait for the provider's first byte included, so
 * it counts streams a little earlier than the active-streams gauge (which
 * counts streams relaying). Lock-free.
 */
#ifndef TG_STREAMS_H
#define TG_STREAMS_H

#include <stdint.h>

/* 1 when a stream slot was taken (give it back with gw_stream_end), 0 when
 * max_streams are open; the refusal is counted. */
int gw_stream_begin(void);
void gw_stream_end(void);
/* Set the cap (gw_init: config_max_streams of the server's config); 0 or
 * less: no cap. */
void gw_streams_configure(int64_t max);
/* The cap in force. */
int64_t gw_streams_max(void);
/* Slots held now and streams refused so far. */
void gw_streams_stats(int64_t *open, uint64_t *refused);

#endif
