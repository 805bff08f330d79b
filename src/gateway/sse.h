/* sse.h - incremental text/event-stream parser, and a writer for one event.
 *
 * The parser follows the HTML event-stream rules that OpenAI-compatible
 * servers use, fed bytes in pieces of any size:
 *   - lines end with "\n", "\r\n" or "\r" (a "\r\n" split between two feeds
 *     counts once); a UTF-8 byte order mark at the very start is skipped;
 *   - "data:" lines are joined with "\n"; one space after the colon is
 *     stripped; a line without a colon is a field with an empty value;
 *   - "event:" sets the event name passed to the callback; "id:", "retry:",
 *     unknown fields and comments (lines starting with ':') are ignored;
 *   - a blank line ends the event; it is dispatched only if it had at least
 *     one data line (so "data:" alone gives an event with data ""), and the
 *     name and data are then cleared.
 *
 * One event (its data, its name and the line being read) is capped at
 * max_event_bytes; going over makes sse_feed() fail with TG_ETOOBIG. Memory
 * held by the parser never exceeds about that cap.
 */
#ifndef TG_SSE_H
#define TG_SSE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

#define SSE_DEFAULT_MAX_EVENT ((size_t)1 << 20) /* 1 MiB */

typedef struct sse_parser sse_parser_t; /* opaque */

/* Called for each complete event. event is the name ("" if none); data is
 * the joined data lines, NUL-terminated, data_len bytes long (it may hold NUL
 * bytes). Both are valid only during the call. Return 0 to continue, or
 * non-zero to stop: sse_feed() then returns that value at once. */
typedef int (*sse_event_fn)(void *ud, const char *event, const char *data, size_t data_len);

/* New parser in *out, freed with sse_free(). max_event_bytes 0 means
 * SSE_DEFAULT_MAX_EVENT. TG_EINVAL (out NULL) or TG_ENOMEM. */
int sse_init(sse_parser_t **out, size_t max_event_bytes);
void sse_free(sse_parser_t *p); /* NULL is fine */

/* Parse n more bytes, calling cb for every event completed by them. Returns
 * TG_OK, the callback's non-zero value, TG_ETOOBIG (event over the cap) or
 * TG_ENOMEM. After a non-zero return the rest of the bytes are not parsed
 * and the parser must not be fed again until sse_finish() resets it. */
int sse_feed(sse_parser_t *p, const char *bytes, size_t n, sse_event_fn cb, void *ud);

/* End of stream. An event without its terminating blank line is NOT
 * dispatched (per the spec). Returns 1 when such partial event content was
 * pending (data lines, or an unterminated line other than a comment) so the
 * caller can tell a truncated stream, else 0. The parser is reset and may be
 * used for a new stream. */
int sse_finish(sse_parser_t *p);

/* Append one event to out: "data: <line>\n" for each line of data (split at
 * "\n", "\r\n" or "\r"; an empty data gives one empty line), then a blank
 * line. Parsed back, the data comes out the same except that "\r\n" and
 * "\r" have become "\n". On failure (TG_ETOOBIG, TG_ENOMEM) out is left as
 * it was. */
int sse_write_event(buf_t *out, const char *data, size_t len);

#endif
