/* json.h - checks on untrusted JSON text before cJSON parses it.
 *
 * cJSON recurses once per level of nesting and accepts any bytes inside
 * strings. CivetWeb's worker threads have small stacks (about 100 KB), so a
 * body of a few thousand '[' would overflow one and take the server down;
 * and JSON text must be UTF-8 (RFC 8259), which cJSON does not check.
 */
#ifndef TG_JSON_H
#define TG_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Deepest nesting of arrays and objects accepted from a client or provider. */
#define JSON_MAX_DEPTH 128

/* Length of the longest prefix of the n bytes at s that is well-formed UTF-8
 * (no overlong forms, surrogates, or code points above U+10FFFF); n when all
 * of it is. A sequence cut by the end counts as malformed. */
size_t utf8_valid_prefix(const char *s, size_t n);

/* Offset of the first '[' or '{' that opens level max + 1 in the n bytes of
 * JSON text at s (brackets inside strings do not count), or n when no
 * nesting goes deeper than max. Only nesting is checked, not syntax. */
size_t json_depth_exceeded(const char *s, size_t n, int max);

/* cJSON_ParseWithLengthOpts(s, n, end, 0) for untrusted text: NULL also when
 * it nests deeper than JSON_MAX_DEPTH, with *end (when given) at the bracket
 * that went too deep. */
cJSON *json_parse(const char *s, size_t n, const char **end);

/* A per-thread arena for the cJSON trees of one gateway call: a call parses
 * its request and its provider's answer (and each event of a stream) into a
 * hundred or so small nodes, which malloc and free one by one would cost
 * more than the parsing. json_arena_install() routes cJSON's allocations
 * through the arena once at start (before any thread uses cJSON); between
 * json_arena_begin() and json_arena_end() on a thread, cJSON memory comes
 * from that thread's arena (malloc once it is full) and cJSON_free of it
 * does nothing; json_arena_end() takes it all back at once. Everything
 * cJSON allocated in between must be dead by then and must not move to
 * another thread; outside that span cJSON uses malloc and free as usual.
 * Under AddressSanitizer the arena is off, so use-after-free stays visible. */
void json_arena_install(void);
void json_arena_begin(void);
void json_arena_end(void);
/* 1 when the arena is in use (0 under AddressSanitizer). */
int json_arena_enabled(void);
/* Frees this thread's arena (at thread exit). */
void json_arena_thread_free(void);

#endif
