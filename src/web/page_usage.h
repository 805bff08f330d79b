/* page_usage.h - what the usage page (page_usage.c) shares with the request
 * log (page_requests.c): who sees what, the query string of a filter, and
 * the key and model choices of the filter forms. Only those pages use it.
 */
#ifndef TG_WEB_PAGE_USAGE_H
#define TG_WEB_PAGE_USAGE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "http/http.h"

#define WEB_MODEL_MAX 128 /* a model name in a filter */

/* Who sees what: the org, and 0 or the member whose keys alone count. */
struct web_usage_scope {
	int64_t org;
	int64_t user;
};

/* The scope of the session's org: org admins (instance admins count as
 * owners) the whole org, members the keys they created. TG_ENOTFOUND when
 * there is no org or the user is not a member. */
int web_usage_scope_get(tg_req_t *r, struct web_usage_scope *sc);
/* The key and model fields of a filter form (k, m: trimmed text or NULL):
 * *key a key id (a bad one sets *error), model the name (too long: *error). */
void web_filter_key_model(const char *k, const char *m, int64_t *key, char model[WEB_MODEL_MAX],
			  const char **error);
/* Append "name=value" (value URL-encoded, "&" between) when value is set. */
void web_qs_add(buf_t *qs, const char *name, const char *value);
/* Append the parts both filters have: key (0: none), model, from, to. */
void web_qs_add_common(buf_t *qs, int64_t key, const char *model, const char *from, const char *to);
/* The filter form's "keys" and "models" arrays in jf: the scope's keys and
 * the catalog's models, key and model marked selected (a model since
 * removed from the catalog is still listed when selected). */
void web_usage_filter_choices(cJSON *jf, const struct web_usage_scope *sc, int64_t key,
			      const char *model);
/* Start the data of page (template name) for the session's org, with *sc
 * its scope; the caller renders it. NULL when there is nothing more to do,
 * with *rc the answer already sent: 404 to a non-member, the page's "no_org"
 * state when the user has no org, 500 when out of memory. */
cJSON *web_usage_page_new(tg_req_t *r, const char *page, struct web_usage_scope *sc, int *rc);
/* The head of both pages' data: the filter's error (NULL: none) as a flash,
 * has_org, org, mine_only, and the "filter" object (returned, owned by d)
 * with the form's from, to and query string. */
cJSON *web_usage_page_head(cJSON *d, const tg_req_t *r, const struct web_usage_scope *sc,
			   const char *error, const char *from, const char *to, const char *qs);

#endif
