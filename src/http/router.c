/* router.c - path pattern matching for the route table, and what the
 * dispatcher makes of a handler's return code. */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int router_match(const char *pattern, const char *path, char **params, int *nparams)
{
	const char *p = pattern, *s = path;
	int n = 0, i;

	*nparams = 0;
	while (*p && *s) {
		if (*p == ':') {
			const char *end = strchr(s, '/');
			size_t len = end ? (size_t)(end - s) : strlen(s);

			if (len == 0 || n >= REQ_MAX_PARAMS)
				goto nomatch;
			if (params && !(params[n] = strndup(s, len)))
				goto nomatch;
			n++;
			s += len;
			while (*p && *p != '/')
				p++;
			continue;
		}
		if (*p != *s)
			goto nomatch;
		p++;
		s++;
	}
	if (*p || *s)
		goto nomatch;
	*nparams = n;
	return 1;
nomatch:
	for (i = 0; params && i < n; i++) {
		free(params[i]);
		params[i] = NULL;
	}
	return 0;
}

static int methods_equal(const char *route_method, const char *method)
{
	return strcmp(route_method, method) == 0 ||
	       (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

const struct route *router_find(const struct route *routes, size_t n, const char *method,
				const char *path, int *method_ok)
{
	const struct route *first = NULL;
	size_t i;
	int np;

	*method_ok = 0;
	for (i = 0; i < n; i++) {
		if (!router_match(routes[i].pattern, path, NULL, &np))
			continue;
		if (methods_equal(routes[i].method, method)) {
			*method_ok = 1;
			return &routes[i];
		}
		if (!first)
			first = &routes[i];
	}
	return first;
}

enum dispatch_outcome dispatch_outcome(int rc, int status)
{
	if (!status)
		return DISPATCH_SEND_500;
	return rc < 0 ? DISPATCH_CLOSE : DISPATCH_DONE;
}
