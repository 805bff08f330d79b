/* streams.c - the max_streams cap; see streams.h. */
#include "gateway/streams.h"

#include "core/slots.h"

static struct slots stream_slots;
/* Until gw_init sets it (tests that drive the gateway directly): no cap. */
static int64_t stream_max = INT64_MAX;

void gw_streams_configure(int64_t max)
{
	stream_max = max > 0 ? max : INT64_MAX;
}

int64_t gw_streams_max(void)
{
	return stream_max;
}

int gw_stream_begin(void)
{
	if (slots_take(&stream_slots, gw_streams_max()))
		return 1;
	slots_refuse(&stream_slots);
	return 0;
}

void gw_stream_end(void)
{
	slots_give(&stream_slots);
}

void gw_streams_stats(int64_t *open, uint64_t *refused)
{
	*open = slots_used(&stream_slots);
	*refused = slots_refused(&stream_slots);
}
