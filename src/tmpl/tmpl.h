/* tmpl.h - Mustache templates rendered over cJSON data.
 *
 * Implements the Mustache spec: escaped and raw variables ({{x}}, {{{x}}},
 * {{&x}}), dotted names, the implicit iterator {{.}}, sections, inverted
 * sections, comments, partials (re-indented when standalone), set delimiters
 * and inheritance: parents {{<layout}} ... {{/layout}} overriding blocks
 * {{$name}}default{{/name}}. Lambdas and dynamic names are not supported.
 *
 * Templates are parsed once, by tmpl_set_add() or tmpl_set_load_dir(), into a
 * node tree; tmpl_render() only walks that tree. Rendering never modifies the
 * set, so any number of threads may render from one set at the same time, as
 * long as nobody adds templates or frees the set meanwhile.
 *
 * Data rules: false, null, a missing name, "" and [] are falsy (everything
 * else, including 0 and {}, is truthy). A section over an array renders once
 * per element; over any other truthy value it renders once with that value
 * pushed on the context stack. Strings interpolate as they are, numbers in
 * their shortest round-trip form (3, 1.5, -0.25), true as "true"; false,
 * null, objects and arrays as nothing. {{x}} escapes & < > " ' as HTML.
 *
 * Partials and parents are looked up by name in the same set at render time;
 * one that does not exist renders as nothing. Nesting partials or parents
 * more than TMPL_MAX_DEPTH deep fails with TG_EINVAL.
 */
#ifndef TG_TMPL_H
#define TG_TMPL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/common.h"

#define TMPL_MAX_DEPTH 64               /* partial/parent nesting at render time */
#define TMPL_MAX_NEST 64                /* section/block nesting inside one template */
#define TMPL_MAX_FILE ((size_t)4 << 20) /* largest file tmpl_set_load_dir reads */

typedef struct tmpl_set tmpl_set_t;

/* Create an empty set. The caller frees it with tmpl_set_free(). */
int tmpl_set_new(tmpl_set_t **out);

/* Free the set and every template in it. NULL is ignored. */
void tmpl_set_free(tmpl_set_t *s);

/* Parse `len` bytes of `text` and store the result under `name`, replacing a
 * template of the same name. The set copies what it needs; the caller keeps
 * ownership of name and text. A syntax error (unclosed tag or section,
 * mismatched close tag, bad set-delimiter tag, bad name, nesting deeper than
 * TMPL_MAX_NEST) returns TG_EINVAL, leaves the set unchanged and, when err is
 * not NULL, writes "name:line: what" into err (errlen bytes, NUL-terminated). */
int tmpl_set_add(tmpl_set_t *s, const char *name, const char *text, size_t len, char *err,
		 size_t errlen);

/* Add every *.mustache file below `dir`, recursively. A template's name is
 * its path relative to dir without ".mustache" ("layout", "partials/pager").
 * Hidden entries (names starting with '.') are skipped. Fails with TG_EIO
 * (unreadable directory or file), TG_ETOOBIG (file over TMPL_MAX_FILE) or
 * TG_EINVAL (syntax error) and a message in err; templates added before the
 * failure stay in the set. */
int tmpl_set_load_dir(tmpl_set_t *s, const char *dir, char *err, size_t errlen);

/* Render template `name` with `data` (may be NULL) as the root context and
 * append the output to `out`. Returns TG_ENOTFOUND if there is no such
 * template, TG_EINVAL if partials or parents nest more than TMPL_MAX_DEPTH
 * deep (or sections, blocks and partials together more than 512), or a
 * buffer error (TG_ENOMEM, TG_ETOOBIG). On failure `out` is restored to its
 * previous length. */
int tmpl_render(const tmpl_set_t *s, const char *name, const cJSON *data, buf_t *out);

#endif
