/* streams.c - the max_streams cap; see streams.h. */
#include "gateway/streams.h"

#include "core/config.h"
#include "core/slots.h"
#include "http/server.h"

static struct slots stream_slots;

int64_t gw_streams_max(void)
{
	const tg_config_t *cfg = server_config();

	/* No running server (tests that drive the gateway directly): no cap. */
	return cfg ? config_max_streams(cfg) : INT64_MAX;
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
