/* embed.h - files compiled into the binary (see cmake/embed.cmake). */
#ifndef TG_EMBED_H
#define TG_EMBED_H

#include <stddef.h>

struct embedded_file {
	const char *name; /* base name, e.g. "0001_init.sql" */
	const char *data; /* NUL-terminated contents */
	size_t len;
};

#endif
