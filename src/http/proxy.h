/* proxy.h - running behind a reverse proxy: the trusted proxy addresses (the
 * trusted_proxies setting) and, for each request, the client's address and
 * scheme worked out from its TCP peer and its forwarding headers.
 *
 * Rules. Forwarding headers are believed only when the peer (the TCP remote
 * address) is a trusted proxy; from anyone else they are ignored and the
 * client is the peer, over the connection's own scheme.
 *
 * The client address comes from the standard Forwarded header (RFC 7239,
 * its for= parameters) when the request has one, else from X-Forwarded-For;
 * every line of the header counts, joined in order. The list is walked from
 * the right (the hop the peer itself added) skipping trusted proxies, and the
 * first untrusted address is the client (the rightmost untrusted hop: a
 * client can prepend whatever it likes, never append). When every hop is
 * trusted the leftmost is taken. An entry that is not an address (junk,
 * RFC 7239's "unknown" and obfuscated "_name" identifiers) ends the walk:
 * the client is the last address taken, or the peer.
 *
 * The scheme: proto= of the Forwarded element the walk ended on, else
 * X-Forwarded-Proto (with as many entries as there are hops, the one of that
 * hop; otherwise the rightmost), else the connection's. Only "http" and
 * "https" count.
 *
 * Addresses are normalised (inet_pton, inet_ntop; an IPv4-mapped IPv6
 * address as IPv4), so every spelling of one client is one throttle key.
 * Forwarded addresses may carry a port ("192.0.2.1:4711",
 * "[2001:db8::1]:4711"); it is dropped.
 *
 * Knows nothing of requests beyond CivetWeb's request_info; thread-safe once
 * proxy_configure has run (before the server starts).
 */
#ifndef TG_PROXY_H
#define TG_PROXY_H

#include <stddef.h>

#define PROXY_NETS_MAX 64 /* entries in trusted_proxies */
#define PROXY_HOPS_MAX 32 /* hops of a forwarding header looked at, the rightmost */
#define PROXY_ADDR_MAX 46 /* INET6_ADDRSTRLEN: an address as text, with its NUL */

struct mg_request_info;

/* One trusted network: an address and prefix length, per family. */
struct proxy_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

struct proxy_list {
	size_t n;
	struct proxy_net nets[PROXY_NETS_MAX];
};

/* What a request's client is. */
struct proxy_client {
	char addr[PROXY_ADDR_MAX]; /* normalised address */
	int tls;                   /* 1 when the client's scheme is https */
};

/* Parse a comma-separated list of IPv4/IPv6 addresses and CIDR blocks
 * ("127.0.0.1, 10.0.0.0/8, 2001:db8::/32"); spaces around entries are
 * allowed, an empty or blank list trusts nobody. A bad entry (junk, a host
 * name, a prefix length out of range, bits set after the prefix, an empty
 * entry, more than PROXY_NETS_MAX entries) is TG_EINVAL with err naming the
 * setting and the entry. */
int proxy_list_parse(struct proxy_list *l, const char *spec, char *err, size_t errlen);
/* 1 when the address text is in one of l's networks (0 for a non-address). */
int proxy_list_trusts(const struct proxy_list *l, const char *addr);
/* The normalised text of an address (IPv4, or IPv6 without brackets or
 * port), into out (PROXY_ADDR_MAX bytes); 0 when it is not one. */
int proxy_addr_normalize(const char *addr, char out[PROXY_ADDR_MAX]);
/* The client of a request from its peer (ri->remote_addr, ri->is_ssl) and
 * headers, by the rules above. */
void proxy_client_of(const struct proxy_list *l, const struct mg_request_info *ri,
		     struct proxy_client *out);

/* The server's list: parse trusted_proxies once at startup (errors as
 * proxy_list_parse), then read it from any thread. */
int proxy_configure(const char *spec, char *err, size_t errlen);
const struct proxy_list *proxy_trusted(void);

#endif
