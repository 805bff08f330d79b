/* gemini.c - placeholder: the gemini kind is being written. */
#include "core/common.h"
#include "providers/provider.h"

static int gemini_build_request(const struct prov_call *c, struct prov_request *out)
{
	(void)c;
	(void)out;
	return TG_EINVAL;
}

const struct provider_ops provider_gemini = {
	.kind = "gemini",
	.build_request = gemini_build_request,
	.forward = prov_http_forward,
	.parse_response = openai_parse_response,
	.parse_stream_event = openai_parse_stream_event,
	.extract_usage = openai_extract_usage,
};
