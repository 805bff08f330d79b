/* fuzz_form.c - urlencoded form/query decoding and cookie lookup.
 *
 * Input: byte 0 picks the mode and the name length, then the name, then the
 * source bytes.
 *   Form mode: req_form_get(src, n, name) from an exact-size heap copy. The
 *   result must be NULL or a string that equals an independent decoder's
 *   answer for the documented rules (first pair whose decoded key is name;
 *   '+' is a space; a bad or truncated %-escape or %00 makes it absent; a
 *   key without '=' gives ""), so it never holds a NUL byte.
 *   Cookie mode: the source becomes up to 8 header lines ("Name: value") of
 *   a fake request (only the header table is set; req_cookie() needs no
 *   connection), and req_cookie(), req_header() and req_header_count() must
 *   agree with a reference tokenizer.
 *
 * Raw NUL bytes inside a form body (not %00) are a known finding (see
 * README.md): by default inputs holding one are only checked for memory
 * safety; set TG_FUZZ_KNOWN=1 to check them strictly too.
 */
#include <civetweb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_form: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static int hexv(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode into out (room for n bytes); length, or -1 when invalid. */
static long ref_decode(const unsigned char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i < n) {
		if (s[i] == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = hexv(s[i + 1]);
			lo = hexv(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 3;
		} else if (s[i] == '\0') {
			return -1; /* a raw NUL byte makes the field invalid, like %00 */
		} else {
			out[o++] = s[i] == '+' ? ' ' : (char)s[i];
			i++;
		}
	}
	return (long)o;
}

/* 1 and the value in *val (length *vlen) when found; 0 when absent. */
static int ref_form(const unsigned char *src, size_t n, const char *name, char **val, long *vlen)
{
	size_t start = 0, nl = strlen(name);

	*val = NULL;
	while (start < n) {
		const unsigned char *amp = memchr(src + start, '&', n - start);
		size_t end = amp ? (size_t)(amp - src) : n;
		const unsigned char *eq = memchr(src + start, '=', end - start);
		size_t klen = eq ? (size_t)(eq - src) - start : end - start;
		char *k = malloc(klen + 1);
		long kl;

		CHECK(k != NULL);
		kl = ref_decode(src + start, klen, k);
		if (kl == (long)nl && memcmp(k, name, nl) == 0) {
			free(k);
			if (!eq) {
				*val = strdup("");
				*vlen = 0;
				return 1;
			}
			*val = malloc(end - start + 1);
			CHECK(*val != NULL);
			*vlen = ref_decode(eq + 1, end - (size_t)(eq + 1 - src), *val);
			if (*vlen < 0) {
				free(*val);
				*val = NULL;
				return 0;
			}
			(*val)[*vlen] = '\0';
			return 1;
		}
		free(k);
		start = end + 1;
	}
	return 0;
}

static void form_mode(const char *name, const unsigned char *src, size_t n, int strict)
{
	char *copy = malloc(n ? n : 1), *got, *want = NULL;
	long wlen = 0;
	int found;

	CHECK(copy != NULL);
	memcpy(copy, src, n);
	got = req_form_get(copy, n, name);
	free(copy);
	CHECK(req_form_get(NULL, n, name) == NULL);
	if (strict) {
		found = ref_form(src, n, name, &want, &wlen);
		CHECK(found == (got != NULL));
		if (got) {
			CHECK((long)strlen(got) == wlen);
			CHECK(memcmp(got, want, (size_t)wlen) == 0);
		}
	} else if (got) {
		CHECK(strlen(got) <= n);
	}
	free(got);
	free(want);
}

/* Reference cookie lookup over one header value. */
static char *ref_cookie_in(const char *v, const char *name)
{
	char *dup = strdup(v), *save = NULL, *tok, *res = NULL;
	size_t nl = strlen(name);

	CHECK(dup != NULL);
	/* strtok_r would merge empty pieces, which is fine: they never match */
	for (tok = strtok_r(dup, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		while (*tok == ' ')
			tok++;
		if (strncmp(tok, name, nl) == 0 && tok[nl] == '=' && strlen(tok) > nl) {
			res = strdup(tok + nl + 1);
			break;
		}
	}
	free(dup);
	return res;
}

static void cookie_mode(const char *name, const unsigned char *src, size_t n)
{
	struct mg_request_info ri;
	tg_req_t r;
	char *names[8], *values[8], *got, *want = NULL;
	size_t i = 0, start = 0;
	int h, cnt = 0;

	memset(&ri, 0, sizeof(ri));
	memset(&r, 0, sizeof(r));
	r.ri = &ri;
	while (start <= n && ri.num_headers < 8) {
		const unsigned char *nlp = memchr(src + start, '\n', n - start);
		size_t end = nlp ? (size_t)(nlp - src) : n;
		const unsigned char *colon = memchr(src + start, ':', end - start);
		size_t klen = colon ? (size_t)(colon - src) - start : end - start;

		i = (size_t)ri.num_headers;
		names[i] = strndup((const char *)src + start, klen);
		values[i] = colon ? strndup((const char *)colon + 1,
					    end - (size_t)(colon + 1 - src)) :
				    strdup("");
		CHECK(names[i] && values[i]);
		ri.http_headers[i].name = names[i];
		ri.http_headers[i].value = values[i];
		ri.num_headers++;
		start = end + 1;
	}

	got = req_cookie(&r, name);
	for (h = 0; h < ri.num_headers && !want; h++)
		if (strcasecmp(names[h], "Cookie") == 0)
			want = ref_cookie_in(values[h], name);
	CHECK((got == NULL) == (want == NULL));
	if (got) {
		CHECK(strcmp(got, want) == 0);
		CHECK(strchr(got, ';') == NULL);
	}
	free(got);
	free(want);

	for (h = 0; h < ri.num_headers; h++)
		if (strcasecmp(names[h], name) == 0)
			cnt++;
	CHECK(req_header_count(&r, name) == cnt);
	CHECK((req_header(&r, name) != NULL) == (cnt > 0));
	for (h = 0; h < ri.num_headers; h++) {
		free(names[h]);
		free(values[h]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int known = -1;
	char name[64];
	size_t nl;
	int cookie;

	if (known < 0)
		known = 1; /* raw NUL bytes are rejected now: always check strictly */
	if (size < 1)
		return 0;
	cookie = data[0] & 0x80;
	nl = data[0] & 0x1f;
	if (nl > size - 1)
		nl = size - 1;
	memcpy(name, data + 1, nl);
	name[nl] = '\0'; /* a NUL inside shortens the name, as for a C caller */
	data += 1 + nl;
	size -= 1 + nl;
	if (cookie)
		cookie_mode(name, data, size);
	else
		form_mode(name, data, size, known || !memchr(data, 0, size));
	return 0;
}
