/* static.c - /static/NAME from ASSETS/static, with ETag revalidation.
 *
 * Names are restricted to [A-Za-z0-9._-] with no leading dot, so no path can
 * climb out of the directory whatever the decoder did before us.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/server.h"

#define STATIC_MAX_BYTES (4 << 20)

static const char *mime_for(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(name, '.');
	size_t i;

	for (i = 0; dot && i < TG_ARRAY_LEN(types); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static int name_ok(const char *name)
{
	const char *p;

	if (!*name || *name == '.' || strlen(name) > 128)
		return 0;
	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

int static_serve(tg_req_t *r, const char *assets_dir)
{
	const char *name = r->path + strlen("/static/");
	const char *inm;
	char path[1024], etag[64];
	struct stat st;
	char *data = NULL;
	int fd = -1, rc;
	ssize_t got;

	if (!name_ok(name) ||
	    snprintf(path, sizeof(path), "%s/static/%s", assets_dir, name) >= (int)sizeof(path))
		return resp_error(r, 404, "invalid_request_error", "not_found", "No such file.");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > STATIC_MAX_BYTES) {
		rc = resp_error(r, 404, "invalid_request_error", "not_found", "No such file.");
		goto out;
	}
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
			 (unsigned long long)st.st_mtim.tv_nsec);
	resp_header(r, "ETag", etag);
	resp_header(r, "Cache-Control", "public, max-age=300");
	inm = req_header(r, "If-None-Match");
	if (inm && strcmp(inm, etag) == 0) {
		rc = resp_send(r, 304, mime_for(name), "", 0);
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = resp_error(r, 500, "server_error", NULL, "Out of memory.");
		goto out;
	}
	got = read(fd, data, (size_t)st.st_size);
	if (got != st.st_size) {
		rc = resp_error(r, 500, "server_error", NULL, "Could not read the file.");
		goto out;
	}
	rc = resp_send(r, 200, mime_for(name), data, (size_t)got);
out:
	free(data);
	if (fd >= 0)
		close(fd);
	return rc;
}
