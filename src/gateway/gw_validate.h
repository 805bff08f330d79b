/* gw_validate.h - the parse-and-validate phase of a gateway call: pure
 * functions over the parsed body, no I/O, no answer sent. Each returns the
 * precise error for the client (status, OpenAI type and code, message); the
 * call path sends it, the fuzz target checks it.
 */
#ifndef TG_GW_VALIDATE_H
#define TG_GW_VALIDATE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "providers/provider.h"

#define GW_MAX_N 16

/* An error for the client, in the OpenAI envelope. */
struct gw_error {
	int status;
	const char *type;
	const char *code; /* may be NULL */
	char message[320];
};

/* What the body asks for. */
struct gw_parsed {
	enum prov_endpoint endpoint;
	const char *model; /* the requested name, in the parsed body */
	int stream, want_usage;
	int max_out_given;
	int64_t max_out; /* max_tokens / max_completion_tokens when given */
	int64_t n;       /* choices asked for (1 when absent; 1 for embeddings) */
	/* A rule of the body broken (status 0: none). It is reported after the
	 * model is known and allowed: an unknown or forbidden model is the
	 * more useful answer. */
	struct gw_error body_err;
};

/* Set *e and return TG_EINVAL (for `return gw_fail(...)`). */
int gw_fail(struct gw_error *e, int status, const char *type, const char *code, const char *fmt,
	    ...) __attribute__((format(printf, 5, 6)));

/* Parse the request object req for endpoint ep. TG_EINVAL with *err for an
 * error reported at once (a key the gateway bills by given twice, no model);
 * TG_OK otherwise, with out->body_err set when a body rule is broken. */
int gw_parse_request(const cJSON *req, enum prov_endpoint ep, struct gw_parsed *out,
		     struct gw_error *err);

/* The rules that depend on the model. Its kind must fit the endpoint: */
int gw_check_kind(const struct gw_parsed *p, const struct model *m, struct gw_error *err);
/* and, once its provider is known to be up, the body's own rules
 * (out->body_err) and max_tokens within its output limit. On TG_OK *max_out
 * is the completion tokens the call may use (what was asked, or the model's
 * limit; 0 for embeddings). */
int gw_check_body(const struct gw_parsed *p, const struct model *m, int64_t *max_out,
		  struct gw_error *err);

#endif
