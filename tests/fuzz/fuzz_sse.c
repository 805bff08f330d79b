/* fuzz_sse.c - the incremental SSE parser fed in random pieces.
 *
 * Input: byte 0 picks the event cap (16..4096 bytes), byte 1 seeds the split
 * sizes, the rest is the stream. The stream is parsed twice, in one piece and
 * in random pieces, and both runs must agree (same events, same result, same
 * sse_finish() answer). Every event must respect the cap and the documented
 * shape (NUL after data, no CR or LF in the name, no CR in the data). The
 * stream bytes are also written as one event with sse_write_event() and
 * parsed back: the data must survive, with "\r\n" and "\r" turned into "\n".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gateway/sse.h"

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c)) {                                                                      \
			fprintf(stderr, "fuzz_sse: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

struct run {
	size_t cap;
	buf_t log; /* every event, serialised: len(name) name len(data) data */
	size_t events;
};

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
	struct run *r = ud;
	size_t elen = strlen(event);
	uint32_t n;

	CHECK(data != NULL && event != NULL);
	CHECK(data[len] == '\0');
	CHECK(len + elen <= r->cap);
	CHECK(memchr(event, '\n', elen) == NULL && memchr(event, '\r', elen) == NULL);
	CHECK(memchr(data, '\r', len) == NULL);
	r->events++;
	n = (uint32_t)elen;
	CHECK(buf_append(&r->log, &n, sizeof(n)) == TG_OK);
	CHECK(buf_append(&r->log, event, elen) == TG_OK);
	n = (uint32_t)len;
	CHECK(buf_append(&r->log, &n, sizeof(n)) == TG_OK);
	CHECK(buf_append(&r->log, data, len) == TG_OK);
	return 0;
}

/* Feed the stream in pieces chosen by seed (0: one piece). Returns the first
 * non-zero sse_feed() result or 0; *fin gets sse_finish() when all was fed. */
static int parse(const char *s, size_t n, size_t cap, unsigned seed, struct run *r, int *fin)
{
	sse_parser_t *p = NULL;
	uint32_t x = seed * 2654435761u + 1;
	size_t off = 0;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->cap = cap;
	buf_init(&r->log, (size_t)64 << 20);
	CHECK(sse_init(&p, cap) == TG_OK);
	*fin = -1;
	while (off < n) {
		size_t piece = n - off;
		char *copy;

		if (seed) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			piece = (x % 8 == 0) ? 0 : 1 + x % 13; /* empty pieces too */
			if (piece > n - off)
				piece = n - off;
		}
		/* Exact-size copy, so a read past the piece is caught. */
		copy = malloc(piece ? piece : 1);
		CHECK(copy != NULL);
		memcpy(copy, s + off, piece);
		rc = sse_feed(p, copy, piece, on_event, r);
		free(copy);
		if (rc)
			break;
		off += piece;
	}
	if (!rc)
		*fin = sse_finish(p);
	CHECK(rc == 0 || rc == TG_ETOOBIG);
	sse_free(p);
	return rc;
}

static void write_roundtrip(const char *s, size_t n)
{
	buf_t out, want;
	sse_parser_t *p = NULL;
	struct run r;
	size_t i;
	uint32_t len;
	int rc;

	buf_init(&out, (size_t)1 << 20);
	buf_init(&want, (size_t)1 << 20);
	CHECK(sse_write_event(&out, s, n) == TG_OK);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r') {
			if (i + 1 < n && s[i + 1] == '\n')
				i++;
			CHECK(buf_putc(&want, '\n') == TG_OK);
		} else {
			CHECK(buf_putc(&want, s[i]) == TG_OK);
		}
	}
	memset(&r, 0, sizeof(r));
	r.cap = SSE_DEFAULT_MAX_EVENT;
	buf_init(&r.log, (size_t)64 << 20);
	CHECK(sse_init(&p, 0) == TG_OK);
	rc = sse_feed(p, out.data, out.len, on_event, &r);
	CHECK(rc == TG_OK);
	CHECK(sse_finish(p) == 0);
	CHECK(r.events == 1);
	/* log: 0-length name, then the data */
	memcpy(&len, r.log.data + 4, sizeof(len));
	CHECK(len == want.len);
	CHECK(want.len == 0 || memcmp(r.log.data + 8, want.data, want.len) == 0);
	sse_free(p);
	buf_free(&r.log);
	buf_free(&out);
	buf_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, split;
	size_t cap;
	int rc1, rc2, fin1, fin2;

	if (size < 2)
		return 0;
	cap = 16 + (size_t)data[0] * 16;
	rc1 = parse((const char *)data + 2, size - 2, cap, 0, &one, &fin1);
	rc2 = parse((const char *)data + 2, size - 2, cap, (unsigned)data[1] + 1, &split, &fin2);
	CHECK(rc1 == rc2);
	CHECK(fin1 == fin2);
	CHECK(one.events == split.events);
	CHECK(one.log.len == split.log.len);
	CHECK(one.log.len == 0 || memcmp(one.log.data, split.log.data, one.log.len) == 0);
	buf_free(&one.log);
	buf_free(&split.log);
	if (size - 2 < 65536)
		write_roundtrip((const char *)data + 2, size - 2);
	return 0;
}
