/* buf.h - a capped, growable string builder (in the spirit of curl's dynbuf).
 *
 * A buf_t owns its heap memory; buf_free() releases it. The contents are
 * always NUL-terminated after any successful append, so buf->data can be used
 * as a C string (it is NULL until the first append). `max` caps the length:
 * an append that would exceed it fails with TG_ETOOBIG and leaves the buffer
 * unchanged. All appends return TG_OK or a negative TG_E* code.
 *
 * Every buffer states its cap: there is no default. A cap of 0 means nothing
 * may be appended (the same as a zeroed buf_t); an empty append still succeeds.
 * Pick the cap from what the buffer holds (a header block, a path, one
 * template); BUF_MAX_LARGE is for the few that hold a whole response, page or
 * stream chunk and have no tighter natural bound.
 */
#ifndef TG_BUF_H
#define TG_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/common.h"

typedef struct buf {
	char *data; /* NUL-terminated contents, or NULL when empty and unallocated */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* largest allowed len */
} buf_t;

#define BUF_MAX_LARGE ((size_t)64 << 20) /* 64 MiB: a whole response, page or chunk */

/* An empty buffer that may grow to max bytes (0: none at all; see above). */
void buf_init(buf_t *b, size_t max);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_putc(buf_t *b, char c);
int buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(buf_t *b, const char *fmt, va_list ap);
/* Append s (n bytes) with & < > " ' replaced by HTML entities. */
int buf_append_html(buf_t *b, const char *s, size_t n);
/* Contents as a C string; "" for an empty buffer (never NULL). */
const char *buf_cstr(const buf_t *b);
/* Forget the contents but keep the allocation. */
void buf_reset(buf_t *b);
/* Hand the heap string to the caller (who frees it with free()); the buffer is
 * left empty. Returns NULL for an empty buffer that never allocated. */
char *buf_detach(buf_t *b);
void buf_free(buf_t *b);

#endif
