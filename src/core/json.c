/* json.c - checks on untrusted JSON text; see json.h. */
#include "core/json.h"

#include <stdlib.h>

size_t utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len, k;

	while (i < n) {
		unsigned char c = p[i];
		unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* UTF-16 surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return i; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
		}
		if (len > n - i || p[i + 1] < lo || p[i + 1] > hi)
			return i;
		for (k = 2; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

size_t json_depth_exceeded(const char *s, size_t n, int max)
{
	size_t i;
	int depth = 0, in_str = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return i;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return n;
}

cJSON *json_parse(const char *s, size_t n, const char **end)
{
	size_t deep = json_depth_exceeded(s, n, JSON_MAX_DEPTH);

	if (deep < n) {
		if (end)
			*end = s + deep;
		return NULL;
	}
	return cJSON_ParseWithLengthOpts(s, n, end, 0);
}

/* ------------------------------------------------------------------ arena */

#define ARENA_BYTES (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_OFF 1
#endif
#endif
#ifndef ARENA_OFF
#define ARENA_OFF 0
#endif

struct arena {
	char *base;
	size_t used;
	int active;
};

static __thread struct arena tls_arena;

static void *arena_malloc(size_t n)
{
	struct arena *a = &tls_arena;
	size_t need = (n + 15) & ~(size_t)15;

	if (a->active && need >= n && need <= ARENA_BYTES - a->used) {
		void *p = a->base + a->used;

		a->used += need;
		return p;
	}
	return malloc(n);
}

static void arena_free(void *p)
{
	struct arena *a = &tls_arena;

	if (a->base && (char *)p >= a->base && (char *)p < a->base + ARENA_BYTES)
		return;
	free(p);
}

void json_arena_install(void)
{
	cJSON_Hooks hooks = { arena_malloc, arena_free };

	if (!ARENA_OFF)
		cJSON_InitHooks(&hooks);
}

int json_arena_enabled(void)
{
	return !ARENA_OFF;
}

void json_arena_begin(void)
{
	struct arena *a = &tls_arena;

	if (ARENA_OFF)
		return;
	if (!a->base && !(a->base = malloc(ARENA_BYTES)))
		return;
	a->used = 0;
	a->active = 1;
}

void json_arena_end(void)
{
	tls_arena.active = 0;
	tls_arena.used = 0;
}

void json_arena_thread_free(void)
{
	struct arena *a = &tls_arena;

	free(a->base);
	a->base = NULL;
	a->used = 0;
	a->active = 0;
}
