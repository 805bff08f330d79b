/* tls.h - HTTPS with CivetWeb's TLS: the listening ports it needs, loading
 * the certificate and key into CivetWeb's SSL_CTX, and the checks that make a
 * bad certificate a clear startup error instead of a silent plain listener.
 *
 * With tls_cert set, `listen` serves HTTPS only; tls_redirect_from, when set,
 * adds a plain listener whose every request is redirected to the HTTPS one.
 */
#ifndef TG_TLS_H
#define TG_TLS_H

#include <stddef.h>

#include "core/config.h"

/* CivetWeb's listening_ports value for cfg: cfg->listen as is without TLS;
 * with TLS "LISTENs" and, with tls_redirect_from, ",FROM" (plain: dispatch()
 * redirects each of its requests to HTTPS). TG_EINVAL with err set when it
 * does not fit or an address is malformed. */
int tls_listening_ports(const tg_config_t *cfg, char *out, size_t n, char *err, size_t errlen);
/* With TLS on, check the certificate and key files load and match; TG_OK
 * without TLS. err names the file and OpenSSL's reason. */
int tls_check(const tg_config_t *cfg, char *err, size_t errlen);
/* CivetWeb's init_ssl callback (user data: the tg_config_t): loads the
 * certificate chain and key, sets the protocol floor (TLS 1.2) and returns
 * 1 (done) or -1. */
int tls_init_ssl(void *ssl_ctx, void *user_data);

#endif
