/* router.c - path pattern matching for the route table. */
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
			params[n] = strndup(s, len);
			if (!params[n])
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
	for (i = 0; i < n; i++) {
		free(params[i]);
		params[i] = NULL;
	}
	return 0;
}
