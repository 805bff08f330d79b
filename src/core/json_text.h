/* json_text.h - working on JSON text without printing the document again.
 *
 * The gateway forwards a body with one value replaced (the model name, usage
 * asked for in a stream) and puts usage.cost into a provider's answer by
 * editing the text: most of a call's bytes pass through untouched. Every
 * function here checks its bounds and answers "I do not know" for anything it
 * does not fully understand; callers then print the parsed document instead.
 */
#ifndef TG_JSON_TEXT_H
#define TG_JSON_TEXT_H

#include <stddef.h>

#include "core/buf.h"

/* In the object p[0..n), the value of the top-level member `name`: 1 and its
 * span [*vs, *ve), 0 when absent, -1 when the text is not one object
 * (whitespace around it allowed), a key is spelled with escapes or the name
 * occurs twice. */
int json_member(const char *p, size_t n, const char *name, size_t *vs, size_t *ve);
/* Append s as a JSON string literal. */
int json_put_string(buf_t *b, const char *s);

/* One text edit: replace [start, end) of the source with text (end == start
 * inserts). */
struct json_edit {
	size_t start, end;
	buf_t text;
};

/* The source src[0..n) with the ne (at most 2) edits applied, which must not
 * overlap, in memory from cJSON_malloc (free with cJSON_free); *len gets its
 * length. NULL when the edits are out of bounds or memory runs out. */
char *json_edits_apply(const char *src, size_t n, struct json_edit *e, int ne, size_t *len);
/* Free the edits' texts. */
void json_edits_free(struct json_edit *e, int ne);

#endif
