/* registry.c - which operations serve which provider kind, and what the
 * kinds share about errors.
 */
#include "providers/provider.h"

const struct provider_ops *provider_ops_for(enum provider_kind kind)
{
	switch (kind) {
	case PROVIDER_ECHO:
		return &provider_echo;
	case PROVIDER_ANTHROPIC:
		return &provider_anthropic;
	case PROVIDER_GEMINI:
		return &provider_gemini;
	case PROVIDER_AZURE:
		return &provider_azure;
	default:
		return &provider_openai;
	}
}

const char *prov_error_type_for(int status)
{
	switch (status) {
	case 400:
	case 404:
	case 413:
	case 422:
		return status == 404 ? "not_found_error" : "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_denied";
	case 429:
		return "rate_limit_exceeded";
	default:
		return status >= 500 ? "server_error" : "invalid_request_error";
	}
}
