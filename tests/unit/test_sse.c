/* Unit tests for the incremental event-stream parser and writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "gateway/sse.h"

/* Events are recorded as "[name|data]" one after another. */
struct collect {
	buf_t log;
	int events;
	int stop_at; /* return 42 from this event (1-based); 0 never */
};

static int collect_cb(void *ud, const char *event, const char *data, size_t data_len)
{
	struct collect *c = ud;

	assert_int_equal(data[data_len], '\0');
	assert_int_equal(buf_putc(&c->log, '['), TG_OK);
	assert_int_equal(buf_puts(&c->log, event), TG_OK);
	assert_int_equal(buf_putc(&c->log, '|'), TG_OK);
	assert_int_equal(buf_append(&c->log, data, data_len), TG_OK);
	assert_int_equal(buf_putc(&c->log, ']'), TG_OK);
	c->events++;
	return c->events == c->stop_at ? 42 : 0;
}

static void collect_init(struct collect *c)
{
	buf_init(&c->log, (size_t)1 << 20);
	c->events = 0;
	c->stop_at = 0;
}

/* Parse the pieces in order, then finish; returns sse_finish()'s value. */
static int parse_pieces(const char *const *pieces, const size_t *lens, size_t npieces, size_t max,
			struct collect *c)
{
	sse_parser_t *p = NULL;
	size_t i;
	int pending;

	assert_int_equal(sse_init(&p, max), TG_OK);
	for (i = 0; i < npieces; i++)
		assert_int_equal(sse_feed(p, pieces[i], lens[i], collect_cb, c), TG_OK);
	pending = sse_finish(p);
	sse_free(p);
	return pending;
}

static int parse_whole(const char *s, size_t n, struct collect *c)
{
	const char *pieces[] = { s };
	size_t lens[] = { n };

	return parse_pieces(pieces, lens, 1, 0, c);
}

#define CHUNK_HEAD                                                      \
	"{\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\"," \
	"\"created\":1767225600,\"model\":\"gpt-4o-mini\","

static const char openai_stream[] =
	"data: " CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	"\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n"
	": keep-alive\n\n"
	"data: " CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
	"\"finish_reason\":null}],\"usage\":null}\n\n"
	"data: " CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\\n\"},"
	"\"finish_reason\":null}],\"usage\":null}\n\n"
	"data: " CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
	"\"usage\":null}\n\n"
	"data: " CHUNK_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
	"\"completion_tokens\":3,\"total_tokens\":12}}\n\n"
	"data: [DONE]\n\n";

/* The stream above with every "\n" replaced by eol. */
static char *with_eol(const char *s, const char *eol, size_t *len)
{
	buf_t b;

	buf_init(&b, (size_t)1 << 20);
	for (; *s; s++)
		assert_int_equal(*s == '\n' ? buf_puts(&b, eol) : buf_putc(&b, *s), TG_OK);
	*len = b.len;
	return buf_detach(&b);
}

static void test_openai_stream_any_split(void **state)
{
	static const char *const eols[] = { "\n", "\r\n", "\r" };
	struct collect ref, c;
	size_t e, n, i;

	(void)state;
	collect_init(&ref);
	assert_int_equal(parse_whole(openai_stream, strlen(openai_stream), &ref), 0);
	assert_int_equal(ref.events, 6);
	assert_non_null(strstr(ref.log.data, "\"role\":\"assistant\""));
	assert_non_null(strstr(ref.log.data, "\"total_tokens\":12}}]"));
	assert_non_null(strstr(ref.log.data, "\\n\"}"));
	assert_non_null(strstr(ref.log.data, "[|[DONE]]"));
	assert_int_equal(strncmp(ref.log.data, "[|{\"id\":", 8), 0);

	for (e = 0; e < TG_ARRAY_LEN(eols); e++) {
		char *s = with_eol(openai_stream, eols[e], &n);

		/* whole */
		collect_init(&c);
		assert_int_equal(parse_whole(s, n, &c), 0);
		assert_string_equal(c.log.data, ref.log.data);
		buf_free(&c.log);

		/* byte by byte */
		{
			sse_parser_t *p = NULL;

			collect_init(&c);
			assert_int_equal(sse_init(&p, 0), TG_OK);
			for (i = 0; i < n; i++)
				assert_int_equal(sse_feed(p, s + i, 1, collect_cb, &c), TG_OK);
			assert_int_equal(sse_finish(p), 0);
			sse_free(p);
			assert_string_equal(c.log.data, ref.log.data);
			buf_free(&c.log);
		}

		/* two pieces, split at every offset (including empty pieces) */
		for (i = 0; i <= n; i++) {
			const char *pieces[] = { s, s + i };
			size_t lens[] = { i, n - i };

			collect_init(&c);
			assert_int_equal(parse_pieces(pieces, lens, 2, 0, &c), 0);
			assert_int_equal(c.events, 6);
			assert_string_equal(c.log.data, ref.log.data);
			buf_free(&c.log);
		}
		free(s);
	}
	buf_free(&ref.log);
}

static void test_line_endings(void **state)
{
	static const char s[] = "data: a\r\ndata: b\rdata: c\n\r\n"
				"data: d\r\r"
				"data: e\n\n";
	const char *pieces[] = { "data: x\r", "\ndata: y\r", "\r\n" };
	size_t lens[] = { 8, 9, 2 };
	struct collect c;

	(void)state;
	collect_init(&c);
	assert_int_equal(parse_whole(s, sizeof(s) - 1, &c), 0);
	assert_string_equal(c.log.data, "[|a\nb\nc][|d][|e]");
	buf_free(&c.log);

	/* a "\r\n" split between feeds ends one line, not two */
	collect_init(&c);
	assert_int_equal(parse_pieces(pieces, lens, 3, 0, &c), 0);
	assert_string_equal(c.log.data, "[|x\ny]");
	buf_free(&c.log);
}

static void test_multiline_data(void **state)
{
	static const char s[] = "data: first\ndata:second\ndata:  third\ndata\ndata:\n\n"
				"data:\n\n"
				"data\n\n";
	struct collect c;

	(void)state;
	collect_init(&c);
	assert_int_equal(parse_whole(s, sizeof(s) - 1, &c), 0);
	/* one space stripped, a second kept; "data" alone and "data:" are empty lines */
	assert_string_equal(c.log.data, "[|first\nsecond\n third\n\n][|][|]");
	assert_int_equal(c.events, 3);
	buf_free(&c.log);
}

static void test_comments_and_fields(void **state)
{
	static const char s[] = ": a comment\n"
				"event: delta\n"
				"id: 7\n"
				"retry: 100\n"
				"foo: bar\n"
				"Data: wrong case\n"
				"data: x\n"
				"\n"
				"data: no name after dispatch\n\n"
				"event: ping\n\n" /* no data: not dispatched */
				"data: name was cleared\n\n"
				"event: a\nevent:b\ndata: last name wins\n\n"
				":\n\n\n\n";
	struct collect c;

	(void)state;
	collect_init(&c);
	assert_int_equal(parse_whole(s, sizeof(s) - 1, &c), 0);
	assert_string_equal(c.log.data, "[delta|x][|no name after dispatch][|name was cleared]"
					"[b|last name wins]");
	buf_free(&c.log);
}

static void test_bom_skipped_once(void **state)
{
	static const char s[] = "\xEF\xBB\xBF"
				"data: a\n\n";
	static const char twice[] = "\xEF\xBB\xBF"
				    "data: a\n\n\xEF\xBB\xBF"
				    "data: b\n\n";
	const char *pieces[] = { "\xEF", "\xBB",
				 ("\xBF"
				  "da"),
				 "ta: a\n\n" };
	size_t lens[] = { 1, 1, 3, 7 };
	struct collect c;

	(void)state;
	collect_init(&c);
	assert_int_equal(parse_whole(s, sizeof(s) - 1, &c), 0);
	assert_string_equal(c.log.data, "[|a]");
	buf_free(&c.log);

	collect_init(&c);
	assert_int_equal(parse_pieces(pieces, lens, 4, 0, &c), 0);
	assert_string_equal(c.log.data, "[|a]");
	buf_free(&c.log);

	/* only at the very start: later it makes an unknown field name */
	collect_init(&c);
	assert_int_equal(parse_whole(twice, sizeof(twice) - 1, &c), 0);
	assert_string_equal(c.log.data, "[|a]");
	buf_free(&c.log);
}

static void test_truncated_stream(void **state)
{
	static const struct {
		const char *s;
		int pending;
		const char *log;
	} cases[] = {
		{ "data: a\n\ndata: b\n", 1, "[|a]" },
		{ "data: a\n\ndata: b", 1, "[|a]" },
		{ "data: a\n\ndata: b\n\r", 0, "[|a][|b]" },
		{ "data: a\n\nevent: x", 1, "[|a]" },
		{ "data: a\n\n: trailing comment", 0, "[|a]" },
		{ "data: a\n\nevent: x\n", 0, "[|a]" },
		{ "", 0, NULL },
	};
	struct collect c;
	sse_parser_t *p = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		collect_init(&c);
		assert_int_equal(parse_whole(cases[i].s, strlen(cases[i].s), &c), cases[i].pending);
		if (cases[i].log)
			assert_string_equal(c.log.data, cases[i].log);
		else
			assert_int_equal(c.events, 0);
		buf_free(&c.log);
	}

	/* finish resets: the partial event does not leak into the next stream */
	collect_init(&c);
	assert_int_equal(sse_init(&p, 0), TG_OK);
	assert_int_equal(sse_feed(p, "event: e\ndata: stale\r", 21, collect_cb, &c), TG_OK);
	assert_int_equal(sse_finish(p), 1);
	assert_int_equal(sse_feed(p, "\ndata: fresh\n\n", 14, collect_cb, &c), TG_OK);
	assert_int_equal(sse_finish(p), 0);
	assert_string_equal(c.log.data, "[|fresh]");
	sse_free(p);
	buf_free(&c.log);
}

static void test_event_cap(void **state)
{
	struct collect c;
	sse_parser_t *p = NULL;
	char big[200];
	size_t i;
	int rc = TG_OK;

	(void)state;
	memset(big, 'x', sizeof(big));

	/* one long line, whole */
	collect_init(&c);
	assert_int_equal(sse_init(&p, 64), TG_OK);
	assert_int_equal(sse_feed(p, "data: ", 6, collect_cb, &c), TG_OK);
	assert_int_equal(sse_feed(p, big, sizeof(big), collect_cb, &c), TG_ETOOBIG);
	sse_finish(p);

	/* the same byte by byte */
	assert_int_equal(sse_feed(p, "data: ", 6, collect_cb, &c), TG_OK);
	for (i = 0; i < sizeof(big) && rc == TG_OK; i++)
		rc = sse_feed(p, big + i, 1, collect_cb, &c);
	assert_int_equal(rc, TG_ETOOBIG);
	assert_true(i <= 64);
	sse_finish(p);

	/* many short data lines add up */
	rc = TG_OK;
	for (i = 0; i < 100 && rc == TG_OK; i++)
		rc = sse_feed(p, "data: 0123456789\n", 17, collect_cb, &c);
	assert_int_equal(rc, TG_ETOOBIG);
	sse_finish(p);

	/* an event of exactly the cap is fine, and the cap is per event: the
	 * stream as a whole can be much longer */
	for (i = 0; i < 50; i++) {
		char ev[80];

		memcpy(ev, "data: ", 6);
		memset(ev + 6, 'y', 58); /* "data: " + 58 bytes = 64 held at most */
		memcpy(ev + 64, "\n\n", 2);
		assert_int_equal(sse_feed(p, ev, 66, collect_cb, &c), TG_OK);
	}
	assert_int_equal(sse_finish(p), 0);
	assert_int_equal(c.events, 50);

	/* comments do not count: they are dropped line by line */
	for (i = 0; i < 100; i++)
		assert_int_equal(sse_feed(p, ": 0123456789012345678901234567890123456789\n", 43,
					  collect_cb, &c),
				 TG_OK);
	assert_int_equal(sse_finish(p), 0);

	sse_free(p);
	buf_free(&c.log);
}

static void test_callback_stop(void **state)
{
	struct collect c;
	sse_parser_t *p = NULL;

	(void)state;
	collect_init(&c);
	c.stop_at = 2;
	assert_int_equal(sse_init(&p, 0), TG_OK);
	assert_int_equal(sse_feed(p, openai_stream, strlen(openai_stream), collect_cb, &c), 42);
	assert_int_equal(c.events, 2);
	sse_finish(p);
	sse_free(p);
	buf_free(&c.log);
}

static void test_bad_arguments(void **state)
{
	sse_parser_t *p = NULL;
	buf_t b;

	(void)state;
	assert_int_equal(sse_init(NULL, 0), TG_EINVAL);
	assert_int_equal(sse_init(&p, 0), TG_OK);
	assert_int_equal(sse_feed(NULL, "x", 1, NULL, NULL), TG_EINVAL);
	assert_int_equal(sse_feed(p, NULL, 1, NULL, NULL), TG_EINVAL);
	assert_int_equal(sse_feed(p, NULL, 0, NULL, NULL), TG_OK);
	/* no callback: events are parsed and dropped */
	assert_int_equal(sse_feed(p, "data: a\n\n", 9, NULL, NULL), TG_OK);
	assert_int_equal(sse_finish(p), 0);
	assert_int_equal(sse_finish(NULL), 0);
	sse_free(p);
	sse_free(NULL);

	buf_init(&b, (size_t)1 << 20);
	assert_int_equal(sse_write_event(NULL, "a", 1), TG_EINVAL);
	assert_int_equal(sse_write_event(&b, NULL, 1), TG_EINVAL);
	assert_int_equal(sse_write_event(&b, NULL, 0), TG_OK);
	assert_string_equal(b.data, "data: \n\n");
	buf_free(&b);
}

static void test_write_event_format(void **state)
{
	buf_t b;

	(void)state;
	buf_init(&b, (size_t)1 << 20);
	assert_int_equal(sse_write_event(&b, "[DONE]", 6), TG_OK);
	assert_string_equal(b.data, "data: [DONE]\n\n");
	buf_reset(&b);
	assert_int_equal(sse_write_event(&b, "a\nb\r\nc\rd\n", 9), TG_OK);
	assert_string_equal(b.data, "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
	buf_free(&b);

	/* a capped buffer is left as it was */
	buf_init(&b, 20);
	assert_int_equal(buf_puts(&b, "keep"), TG_OK);
	assert_int_equal(sse_write_event(&b, "0123456789", 10), TG_ETOOBIG);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	assert_int_equal(sse_write_event(&b, "0123", 4), TG_OK);
	assert_string_equal(b.data, "keepdata: 0123\n\n");
	buf_free(&b);
}

static void test_write_event_round_trip(void **state)
{
	static const struct {
		const char *data;
		size_t len;
		const char *back; /* NULL: same as data */
	} cases[] = {
		{ "", 0, NULL },
		{ "hello", 5, NULL },
		{ "{\"choices\":[]}", 14, NULL },
		{ "a\nb", 3, NULL },
		{ "a\n", 2, NULL },
		{ "\n", 1, NULL },
		{ "\n\n\n", 3, NULL },
		{ " leading space", 14, NULL },
		{ "  two\n three", 12, NULL },
		{ ": looks like a comment", 22, NULL },
		{ "data: nested", 12, NULL },
		{ "event: x\n\nid: 3", 15, NULL },
		{ "nul\0inside", 10, NULL },
		{ "a\r\nb\rc", 6, "a\nb\nc" },
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		const char *want = cases[i].back ? cases[i].back : cases[i].data;
		size_t want_len = cases[i].back ? strlen(cases[i].back) : cases[i].len;
		struct collect c;
		buf_t b, expect;

		buf_init(&b, (size_t)1 << 20);
		/* two events back to back, to check each one is terminated */
		assert_int_equal(sse_write_event(&b, cases[i].data, cases[i].len), TG_OK);
		assert_int_equal(sse_write_event(&b, "next", 4), TG_OK);

		buf_init(&expect, (size_t)1 << 20);
		assert_int_equal(buf_puts(&expect, "[|"), TG_OK);
		assert_int_equal(buf_append(&expect, want, want_len), TG_OK);
		assert_int_equal(buf_puts(&expect, "][|next]"), TG_OK);

		/* whole and split at every offset */
		for (j = 0; j <= b.len; j++) {
			const char *pieces[] = { b.data, b.data + j };
			size_t lens[] = { j, b.len - j };

			collect_init(&c);
			assert_int_equal(parse_pieces(pieces, lens, 2, 0, &c), 0);
			assert_int_equal(c.events, 2);
			assert_int_equal(c.log.len, expect.len);
			assert_memory_equal(c.log.data, expect.data, expect.len);
			buf_free(&c.log);
		}
		buf_free(&expect);
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_stream_any_split),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_multiline_data),
		cmocka_unit_test(test_comments_and_fields),
		cmocka_unit_test(test_bom_skipped_once),
		cmocka_unit_test(test_truncated_stream),
		cmocka_unit_test(test_event_cap),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_write_event_format),
		cmocka_unit_test(test_write_event_round_trip),
	};
	return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
