/* json_text.c - finding top-level members in JSON text and editing it; see
 * json_text.h. The text has already been parsed by cJSON; the scanner still
 * checks every bound and answers -1 for anything it does not fully
 * understand, and the callers then print the parsed document as before.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json_text.h"

#define DEPTH_MAX 512

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && is_ws(p[i]))
		i++;
	return i;
}

/* p[i] is '"': the index after the closing quote, or 0 (also for a raw
 * control character, which JSON forbids in strings though cJSON lets it
 * pass: the printed document escapes it). *escaped set when the string holds
 * a backslash. */
static size_t skip_string(const char *p, size_t n, size_t i, int *escaped)
{
	for (i++; i < n; i++) {
		if ((unsigned char)p[i] < 0x20)
			return 0;
		if (p[i] == '\\') {
			if (escaped)
				*escaped = 1;
			i++;
		} else if (p[i] == '"') {
			return i + 1;
		}
	}
	return 0;
}

/* The index after the value starting at p[i], or 0 when malformed. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
	int depth = 0;

	if (i >= n)
		return 0;
	if (p[i] == '"')
		return skip_string(p, n, i, NULL);
	if (p[i] != '{' && p[i] != '[') {
		/* number, true, false, null */
		size_t s = i;

		while (i < n && (p[i] == '+' || p[i] == '-' || p[i] == '.' || p[i] == 'E' ||
				 (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z')))
			i++;
		return i > s ? i : 0;
	}
	for (; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 && !is_ws(p[i]))
			return 0; /* cJSON skips these as space; JSON does not */
		if (p[i] == '"') {
			if (!(i = skip_string(p, n, i, NULL)))
				return 0;
			i--;
		} else if (p[i] == '{' || p[i] == '[') {
			if (++depth > DEPTH_MAX)
				return 0;
		} else if (p[i] == '}' || p[i] == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0;
}

int json_member(const char *p, size_t n, const char *name, size_t *vs, size_t *ve)
{
	size_t i = skip_ws(p, n, 0), nlen = strlen(name);
	int found = 0;

	if (i >= n || p[i] != '{')
		return -1;
	i = skip_ws(p, n, i + 1);
	if (i < n && p[i] == '}') {
		i++;
		goto end;
	}
	for (;;) {
		size_t ks, ke, s;
		int escaped = 0;

		if (i >= n || p[i] != '"' || !(ke = skip_string(p, n, i, &escaped)))
			return -1;
		ks = i + 1;
		if (escaped)
			return -1; /* a key spelled with escapes could be the name */
		i = skip_ws(p, n, ke);
		if (i >= n || p[i] != ':')
			return -1;
		s = skip_ws(p, n, i + 1);
		if (!(i = skip_value(p, n, s)))
			return -1;
		if (ke - 1 - ks == nlen && memcmp(p + ks, name, nlen) == 0) {
			/* A duplicate: which one counts is the parser's choice. */
			if (found)
				return -1;
			found = 1;
			*vs = s;
			*ve = i;
		}
		i = skip_ws(p, n, i);
		if (i < n && p[i] == ',') {
			i = skip_ws(p, n, i + 1);
			continue;
		}
		if (i < n && p[i] == '}') {
			i++;
			break;
		}
		return -1;
	}
end:
	return skip_ws(p, n, i) == n ? found : -1;
}

int json_put_string(buf_t *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = buf_putc(b, '"');

	for (; !rc && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };

			rc = buf_append(b, esc, 2);
		} else if (ch < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };

			rc = buf_append(b, esc, 6);
		} else {
			rc = buf_putc(b, (char)ch);
		}
	}
	return rc ? rc : buf_putc(b, '"');
}

char *json_edits_apply(const char *src, size_t n, struct json_edit *e, int ne, size_t *len)
{
	size_t at = 0, total = n;
	char *out, *w;
	int i;

	if (ne < 0 || ne > 2)
		return NULL;
	if (ne == 2 && e[1].start < e[0].start) {
		struct json_edit t = e[0];

		e[0] = e[1];
		e[1] = t;
	}
	for (i = 0; i < ne; i++) {
		if (e[i].start < at || e[i].end < e[i].start || e[i].end > n)
			return NULL;
		at = e[i].end;
		total += e[i].text.len - (e[i].end - e[i].start);
	}
	if (!(out = w = cJSON_malloc(total + 1)))
		return NULL;
	for (at = 0, i = 0; i < ne; i++) {
		memcpy(w, src + at, e[i].start - at);
		w += e[i].start - at;
		if (e[i].text.len)
			memcpy(w, e[i].text.data, e[i].text.len);
		w += e[i].text.len;
		at = e[i].end;
	}
	memcpy(w, src + at, n - at);
	w += n - at;
	*w = '\0';
	*len = total;
	return out;
}

void json_edits_free(struct json_edit *e, int ne)
{
	int i;

	for (i = 0; i < ne; i++)
		buf_free(&e[i].text);
}
