/* sse.c - incremental text/event-stream parser and event writer; see sse.h. */
#include "gateway/sse.h"

#include <stdlib.h>
#include <string.h>

struct sse_parser {
	buf_t line;        /* the line being read, without its terminator */
	buf_t data;        /* data lines of the current event, joined with '\n' */
	buf_t event;       /* event name of the current event */
	size_t max;        /* cap on line + data + event */
	size_t data_lines; /* data lines in the current event */
	int last_cr;       /* the last byte was '\r': a following '\n' ends nothing */
	int first_line;    /* no line finished yet (a BOM may start it) */
};

int sse_init(sse_parser_t **out, size_t max_event_bytes)
{
	sse_parser_t *p;

	if (!out)
		return TG_EINVAL;
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return TG_ENOMEM;
	p->max = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX_EVENT;
	buf_init(&p->line, p->max);
	buf_init(&p->data, p->max);
	buf_init(&p->event, p->max);
	p->first_line = 1;
	*out = p;
	return TG_OK;
}

void sse_free(sse_parser_t *p)
{
	if (!p)
		return;
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
	free(p);
}

/* Would holding `more` bytes on top of what is held go over the cap? */
static int sse_over_cap(const sse_parser_t *p, size_t more)
{
	size_t held = p->line.len + p->data.len + p->event.len;

	return held > p->max || more > p->max - held;
}

static int sse_dispatch(sse_parser_t *p, sse_event_fn cb, void *ud)
{
	int rc = 0;

	if (p->data_lines > 0 && cb)
		rc = cb(ud, buf_cstr(&p->event), buf_cstr(&p->data), p->data.len);
	buf_reset(&p->data);
	buf_reset(&p->event);
	p->data_lines = 0;
	return rc;
}

static int sse_field_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* One complete line is in p->line. */
static int sse_line(sse_parser_t *p, sse_event_fn cb, void *ud)
{
	const char *s = buf_cstr(&p->line), *colon, *val;
	size_t len = p->line.len, name_len, val_len;
	int rc = TG_OK;

	if (p->first_line) {
		p->first_line = 0;
		if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
			s += 3;
			len -= 3;
		}
	}
	if (len == 0) {
		rc = sse_dispatch(p, cb, ud);
		goto out;
	}
	if (s[0] == ':')
		goto out;

	colon = memchr(s, ':', len);
	name_len = colon ? (size_t)(colon - s) : len;
	val = colon ? colon + 1 : s + len;
	val_len = len - (size_t)(val - s);
	if (val_len > 0 && val[0] == ' ') {
		val++;
		val_len--;
	}

	if (sse_field_is(s, name_len, "data")) {
		/* The line itself is dropped right after, so only the separator
		 * can push the total over the cap here. */
		if (p->data_lines > 0) {
			if (sse_over_cap(p, 1)) {
				rc = TG_ETOOBIG;
				goto out;
			}
			if ((rc = buf_putc(&p->data, '\n')))
				goto out;
		}
		if ((rc = buf_append(&p->data, val, val_len)))
			goto out;
		p->data_lines++;
	} else if (sse_field_is(s, name_len, "event")) {
		buf_reset(&p->event);
		rc = buf_append(&p->event, val, val_len);
	}
	/* id, retry and unknown fields are ignored. */
out:
	buf_reset(&p->line);
	return rc;
}

int sse_feed(sse_parser_t *p, const char *bytes, size_t n, sse_event_fn cb, void *ud)
{
	size_t i = 0, j;
	int rc = TG_OK;

	if (!p || (!bytes && n))
		return TG_EINVAL;
	while (i < n) {
		if (p->last_cr) {
			p->last_cr = 0;
			if (bytes[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < n && bytes[j] != '\n' && bytes[j] != '\r'; j++)
			;
		if (j > i) {
			if (sse_over_cap(p, j - i)) {
				rc = TG_ETOOBIG;
				goto out;
			}
			if ((rc = buf_append(&p->line, bytes + i, j - i)))
				goto out;
		}
		if (j == n)
			break;
		p->last_cr = bytes[j] == '\r';
		if ((rc = sse_line(p, cb, ud)))
			goto out;
		i = j + 1;
	}
out:
	return rc;
}

int sse_finish(sse_parser_t *p)
{
	int pending;

	if (!p)
		return 0;
	pending = p->data_lines > 0 || (p->line.len > 0 && p->line.data[0] != ':');
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
	p->data_lines = 0;
	p->last_cr = 0;
	p->first_line = 1;
	return pending;
}

int sse_write_event(buf_t *out, const char *data, size_t len)
{
	size_t start, i = 0, j;
	int rc = TG_OK;

	if (!out || (!data && len))
		return TG_EINVAL;
	if (!data)
		data = "";
	start = out->len;
	for (;;) {
		for (j = i; j < len && data[j] != '\n' && data[j] != '\r'; j++)
			;
		if ((rc = buf_puts(out, "data: ")) || (rc = buf_append(out, data + i, j - i)) ||
		    (rc = buf_putc(out, '\n')))
			goto out;
		if (j == len)
			break;
		if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
			j++;
		i = j + 1;
	}
	rc = buf_putc(out, '\n');
out:
	if (rc && out->data) {
		out->len = start;
		out->data[start] = '\0';
	}
	return rc;
}
