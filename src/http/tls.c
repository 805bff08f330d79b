/* tls.c - HTTPS through CivetWeb's TLS; see tls.h. */
#include "http/tls.h"

#include <civetweb.h>
#include <link.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/log.h"

int tls_listening_ports(const tg_config_t *cfg, char *out, size_t n, char *err, size_t errlen)
{
	int w;

	if (!cfg->tls_cert[0])
		w = snprintf(out, n, "%s", cfg->listen);
	else if (!cfg->tls_redirect_from[0])
		w = snprintf(out, n, "%ss", cfg->listen);
	else
		/* Plain, not CivetWeb's own redirect port ("r"): CivetWeb would
		 * answer those itself, before any handler, with a Location built
		 * from its authentication_domain ("mydomain.com" by default).
		 * dispatch() redirects every plain request (server.c). */
		w = snprintf(out, n, "%ss,%s", cfg->listen, cfg->tls_redirect_from);
	if (w < 0 || (size_t)w >= n) {
		snprintf(err, errlen, "listen and tls_redirect_from are too long");
		return TG_EINVAL;
	}
	/* CivetWeb reads its own suffixes (s, r) off a port: an address that
	 * already ends in one would change meaning. */
	if ((cfg->listen[0] && strchr("sr", cfg->listen[strlen(cfg->listen) - 1])) ||
	    (cfg->tls_redirect_from[0] &&
	     strchr("sr", cfg->tls_redirect_from[strlen(cfg->tls_redirect_from) - 1]))) {
		snprintf(err, errlen,
			 "listen and tls_redirect_from take ADDR:PORT; HTTPS is switched on "
			 "by tls_cert");
		return TG_EINVAL;
	}
	return TG_OK;
}

/* OpenSSL's reason for the last failure, into err after what. */
static void ssl_error(char *err, size_t errlen, const char *what, const char *file)
{
	char reason[256];
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "unknown error");
	ERR_clear_error();
	snprintf(err, errlen, "%s %s: %s", what, file, reason);
}

/* Load cfg's certificate chain and key into ctx; 0 or -1 with err set. */
static int load(SSL_CTX *ctx, const tg_config_t *cfg, char *err, size_t errlen)
{
	const char *key = cfg->tls_key[0] ? cfg->tls_key : cfg->tls_cert;

	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		ssl_error(err, errlen, "tls:", "cannot require TLS 1.2");
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		ssl_error(err, errlen, "tls_cert: cannot load", cfg->tls_cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL 3 compares the key with the certificate already here
		 * (X509_check_private_key): a key of another pair fails now, not
		 * at SSL_CTX_check_private_key below. Say so, not "cannot load". */
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			ssl_error(err, errlen,
				  cfg->tls_key[0] ? "tls_key: does not match the certificate in" :
						    "tls_cert: its private key does not match the "
						    "certificate in",
				  cfg->tls_cert);
		else
			ssl_error(err, errlen,
				  cfg->tls_key[0] ? "tls_key: cannot load" :
						    "tls_cert: no private key in",
				  key);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, errlen, "tls_key: does not match the certificate in", cfg->tls_cert);
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	return 0;
}

int tls_check(const tg_config_t *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int rc;

	if (!cfg->tls_cert[0])
		return TG_OK;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_error(err, errlen, "tls:", "cannot create a context");
		return TG_EINVAL;
	}
	rc = load(ctx, cfg, err, errlen);
	SSL_CTX_free(ctx);
	return rc ? TG_EINVAL : TG_OK;
}

/* ---------------------------------------------------- CivetWeb 1.15's gap
 *
 * CivetWeb 1.15 loads OpenSSL by name at run time into a table of
 * {name, [flag,] pointer} entries, and calls SSL_get_peer_certificate on
 * every TLS connection it accepts. OpenSSL 3 has no such symbol (it became
 * a macro for SSL_get1_peer_certificate), so that entry stays NULL and the
 * first HTTPS connection crashes the server (CivetWeb issue 1334; Debian
 * 12 ships exactly that pair). tls_fill_gap finds the entry in CivetWeb's
 * writable data, by the address of its name, and fills it with
 * SSL_get1_peer_certificate (same arguments, same result). A CivetWeb that
 * filled it itself is left alone; one whose table cannot be recognised
 * refuses TLS with a clear error rather than crash later. */

struct seg {
	uintptr_t lo, hi;
};

struct civet_image {
	uintptr_t target; /* an address inside libcivetweb */
	struct seg ro[8], rw[8];
	size_t nro, nrw;
	int found;
};

static int in_segs(const struct seg *sg, size_t n, uintptr_t a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a >= sg[i].lo && a < sg[i].hi)
			return 1;
	return 0;
}

static int image_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct civet_image *im = data;
	int i;

	(void)size;
	im->nro = im->nrw = 0;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		struct seg sg = { info->dlpi_addr + ph->p_vaddr,
				  info->dlpi_addr + ph->p_vaddr + ph->p_memsz };

		if (ph->p_type != PT_LOAD)
			continue;
		if ((ph->p_flags & PF_W) && im->nrw < TG_ARRAY_LEN(im->rw))
			im->rw[im->nrw++] = sg;
		else if (!(ph->p_flags & PF_W) && im->nro < TG_ARRAY_LEN(im->ro))
			im->ro[im->nro++] = sg;
	}
	/* The object whose read-only segments hold the target is CivetWeb. */
	im->found = in_segs(im->ro, im->nro, im->target);
	return im->found;
}

/* 1 when word w is the address of a NUL-terminated function name in the
 * image's read-only data ("SSL_...", "ERR_...", "TLS_..."). */
static int is_name(const struct civet_image *im, uintptr_t w)
{
	const char *s = (const char *)w;

	return w && in_segs(im->ro, im->nro, w) && in_segs(im->ro, im->nro, w + 3) && s[0] >= 'A' &&
	       s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

static int tls_fill_gap(char *err, size_t errlen)
{
	static const char want[] = "SSL_get_peer_certificate";
	struct civet_image im;
	size_t i, k;

	memset(&im, 0, sizeof(im));
	im.target = (uintptr_t)mg_version(); /* a string in CivetWeb's read-only data */
	dl_iterate_phdr(image_cb, &im);
	if (!im.found || !im.nrw)
		goto unknown;
	for (i = 0; i < im.nrw; i++) {
		uintptr_t *w = (uintptr_t *)((im.rw[i].lo + 7) & ~(uintptr_t)7);
		uintptr_t *end = (uintptr_t *)im.rw[i].hi;

		for (; w + 4 <= end; w++) {
			if (!is_name(&im, *w) || strcmp((const char *)*w, want) != 0)
				continue;
			/* Entries of 2 or 3 words: the next entry's name follows. */
			for (k = 2; k <= 3; k++) {
				if (!is_name(&im, w[k]))
					continue;
				if (w[k - 1] == 0)
					w[k - 1] = (uintptr_t)SSL_get1_peer_certificate;
				return TG_OK;
			}
		}
	}
unknown:
	snprintf(err, errlen,
		 "tls: this CivetWeb's OpenSSL table has no %s entry it can use; TLS would "
		 "crash on the first connection, so it stays off (terminate TLS in a proxy, "
		 "see README)",
		 want);
	return TG_EINVAL;
}

int tls_init_ssl(void *ssl_ctx, void *user_data)
{
	char err[512];

	if (tls_fill_gap(err, sizeof(err)) || load(ssl_ctx, user_data, err, sizeof(err))) {
		log_error("%s", err);
		return -1;
	}
	return 1;
}
