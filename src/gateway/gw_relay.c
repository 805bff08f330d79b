/* gw_relay.c - the provider's answer as it arrives: a whole answer is
 * collected for the call to settle; a stream's events are turned into OpenAI
 * chunks by the provider and relayed to the client as they come, with the
 * public model name, and the final usage chunk (with usage.cost) held back
 * until the call's debit is recorded.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gw_call.h"
#include "metrics/metrics.h"

#define UPSTREAM_BODY_MAX ((size_t)32 << 20) /* a non-stream answer or an error body */
#define RELAY_FLUSH_AT ((size_t)64 << 10) /* queued events sent even before the provider pauses */
/* Events queued for the client: what one read of the provider can make, an
 * event of SSE_EVENT_MAX bytes of one-byte lines framed as `data: ` lines
 * at worst (7 bytes a byte), with the events around it. */
#define RELAY_MAX ((size_t)64 << 20)

static int relay_flush(struct call *c, int last);

/* Our 200 head, queued to go out with the first event: not before, so a
 * stream that fails before its first event can still be tried on another
 * deployment, or answered with a proper error. */
static int relay_open(struct call *c)
{
	if (c->stream_open)
		return 0;
	call_ratelimit_headers(c);
	if (resp_stream_start(c->r, 200, "text/event-stream; charset=utf-8") != TG_OK) {
		c->client_gone = 1;
		return 1;
	}
	c->stream_open = 1;
	metrics_stream_start();
	return 0;
}

/* Queue one event for the client. The first goes out at once (time to first
 * token); the others that arrived together go out together when the transfer
 * is about to wait for more (sink_idle): one write and one wake-up of the
 * client for them, and no later than they could have been sent one by one. */
static int relay_write(struct call *c, const char *data, size_t len)
{
	if (c->client_gone || relay_open(c))
		return 1;
	/* The parser already capped the event; framing adds a few bytes a line. */
	if (sse_write_event(&c->relay, data, len) != TG_OK) {
		/* Out of memory with the client still there: the stream cannot
		 * go on, and the connection must not be reused half-answered. */
		c->client_gone = 1;
		c->r->close = 1;
		return 1;
	}
	if (!c->relayed_one) {
		c->relayed_one = 1;
		return relay_flush(c, 0);
	}
	return 0;
}

/* Send our head if it still waits and the queued events; with last, end the
 * response in the same write. */
static int relay_flush(struct call *c, int last)
{
	int rc;

	if (c->client_gone || relay_open(c))
		return 1;
	rc = last ? resp_stream_end(c->r, c->relay.data, c->relay.len) :
		    resp_stream_write(c->r, c->relay.data, c->relay.len);
	if (c->relay.cap > 2 * RELAY_FLUSH_AT)
		buf_free(&c->relay); /* after one huge event, not kept for the whole stream */
	else
		buf_reset(&c->relay);
	if (rc != TG_OK) {
		c->client_gone = 1;
		c->r->close = 1; /* gone, or out of memory mid-answer */
		return 1;
	}
	return 0;
}

/* Send the usage chunk held back, if any. */
static int relay_held(struct call *c)
{
	int rc = 0;

	if (c->usage_event) {
		rc = relay_write(c, c->usage_event, strlen(c->usage_event));
		cJSON_free(c->usage_event);
		c->usage_event = NULL;
	}
	return rc;
}

/* One OpenAI chunk from the provider (obj NULL: text that is not JSON,
 * relayed as it came). */
static int on_chunk(void *ud, cJSON *obj, const char *data, size_t len, int flags)
{
	struct call *c = ud;
	cJSON *usage, *choices, *model;
	char *out;
	int rc, hold_back;

	(void)flags; /* every chunk is printed again: its model name changes */
	if (!obj)
		return relay_held(c) || relay_write(c, data, len);
	usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
	choices = cJSON_GetObjectItemCaseSensitive(obj, "choices");
	model = cJSON_GetObjectItemCaseSensitive(obj, "model");
	if (cJSON_IsString(model))
		cJSON_SetValuestring(model, c->model_name);
	call_count_content(c, obj);
	if (cJSON_IsObject(usage)) {
		c->cost_known = 0; /* the provider read it into c->usage */
		if (c->p.want_usage) {
			call_add_cost(c, usage);
		} else if (cJSON_GetArraySize(choices) == 0) {
			cJSON_Delete(obj); /* the usage-only chunk the client did not ask for */
			return 0;
		} else {
			cJSON_DeleteItemFromObjectCaseSensitive(obj, "usage");
		}
	} else if (usage && !c->p.want_usage) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "usage"); /* "usage": null */
	}
	hold_back = cJSON_IsObject(usage) && c->p.want_usage;
	out = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!out)
		return 1;
	/* A chunk held back goes out before anything that came after it. */
	rc = relay_held(c);
	if (hold_back) {
		/* Usage in more than one chunk: only the latest one waits. */
		c->usage_event = out;
		return rc;
	}
	rc = rc || relay_write(c, out, strlen(out));
	cJSON_free(out);
	return rc;
}

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
	struct call *c = ud;

	if (strcmp(data, "[DONE]") == 0) {
		/* Held back with the usage chunk: a client that saw the end of the
		 * stream (and its cost) must find the debit recorded, even if the
		 * server dies right after. relay_end sends both. */
		c->done_seen = 1;
		return 0;
	}
	return c->ops->parse_stream_event(&c->ps, event, data, len, on_chunk, c);
}

static int sink_status(void *ud, int status, const char *ctype, const char *retry_after)
{
	struct call *c = ud;

	snprintf(c->up_retry_after, sizeof(c->up_retry_after), "%s",
		 retry_after ? retry_after : "");

	c->up_status = status;
	snprintf(c->up_ctype, sizeof(c->up_ctype), "%s", ctype ? ctype : "");
	if (c->p.stream && status == 200 && strstr(c->up_ctype, "text/event-stream"))
		c->relaying = 1;
	return 0;
}

static int sink_idle(void *ud)
{
	struct call *c = ud;

	return c->relaying && c->relayed_one ? relay_flush(c, 0) : 0;
}

static int sink_body(void *ud, const char *p, size_t n)
{
	struct call *c = ud;

	if (c->relaying) {
		if (sse_feed(c->sse, p, n, on_event, c))
			return 1;
		return c->relayed_one && c->relay.len >= RELAY_FLUSH_AT ? relay_flush(c, 0) : 0;
	}
	if (buf_append(&c->up_body, p, n) != TG_OK) {
		snprintf(c->err, sizeof(c->err), "the provider's answer is larger than %zu bytes",
			 UPSTREAM_BODY_MAX);
		return 1;
	}
	return 0;
}

void relay_sink(struct call *c, struct prov_sink *sink)
{
	buf_free(&c->up_body);
	buf_free(&c->relay);
	buf_init(&c->up_body, UPSTREAM_BODY_MAX);
	buf_init(&c->relay, RELAY_MAX);
	c->ps.call = &c->pc;
	c->ps.usage = &c->usage;
	sink->ud = c;
	sink->on_status = sink_status;
	sink->on_body = sink_body;
	/* Only a stream has events to send while the provider pauses; a plain
	 * call keeps the transport's progress callback off. */
	sink->on_idle = c->p.stream ? sink_idle : NULL;
}

int relay_end(struct call *c, int fwd)
{
	if (!c->usage.have)
		call_estimate_usage(c);
	if (fwd != PROV_FWD_OK && !c->client_gone) {
		static const char ev[] =
			"{\"error\":{\"message\":\"The provider's stream broke after output had "
			"started; you were billed for what was "
			"streamed.\",\"type\":\"upstream_error\","
			"\"code\":\"upstream_error\",\"param\":null}}";

		relay_write(c, ev, sizeof(ev) - 1);
	}
	if (c->client_gone && !c->err[0])
		snprintf(c->err, sizeof(c->err), "the client went away mid-stream");
	call_record(c, 200, 1, NULL);
	relay_held(c);
	if (c->done_seen || c->ps.done)
		relay_write(c, "[DONE]", 6);
	relay_flush(c, 1);
	if (c->stream_open)
		metrics_stream_end();
	return TG_OK;
}
