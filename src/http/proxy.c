/* proxy.c - trusted proxies and the client behind them; see proxy.h. */
#include "http/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <civetweb.h>

#include "core/common.h"

enum { PROTO_NONE, PROTO_HTTP, PROTO_HTTPS };

/* An address: IPv4 in b[0..4), IPv6 in b[0..16). */
struct addr {
	int family;
	unsigned char b[16];
};

/* One hop of a forwarding header. */
struct hop {
	int ok;    /* 1 when a holds an address */
	int proto; /* PROTO_*: Forwarded's proto=, or X-Forwarded-Proto's entry */
	struct addr a;
};

/* The rightmost PROXY_HOPS_MAX hops of a header, in a ring: `total` were
 * seen, the kept ones start at total - kept. */
struct hops {
	size_t total;
	struct hop h[PROXY_HOPS_MAX];
};

static struct proxy_list trusted; /* set by proxy_configure before the server starts */

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static size_t hops_kept(const struct hops *hs)
{
	return hs->total < PROXY_HOPS_MAX ? hs->total : PROXY_HOPS_MAX;
}

/* The i-th kept hop from the left. */
static const struct hop *hop_at(const struct hops *hs, size_t i)
{
	return &hs->h[(hs->total - hops_kept(hs) + i) % PROXY_HOPS_MAX];
}

static void hops_push(struct hops *hs, const struct hop *h)
{
	hs->h[hs->total % PROXY_HOPS_MAX] = *h;
	hs->total++;
}

/* s[0..n) as an address: IPv4, or IPv6 (an IPv4-mapped one as IPv4). */
static int addr_parse(const char *s, size_t n, struct addr *a)
{
	char text[PROXY_ADDR_MAX];
	struct in6_addr a6;

	memset(a, 0, sizeof(*a));
	if (n == 0 || n >= sizeof(text))
		return 0;
	memcpy(text, s, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, a->b) == 1) {
		a->family = AF_INET;
		return 1;
	}
	if (inet_pton(AF_INET6, text, &a6) != 1)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		a->family = AF_INET;
		memcpy(a->b, a6.s6_addr + 12, 4);
	} else {
		a->family = AF_INET6;
		memcpy(a->b, a6.s6_addr, 16);
	}
	return 1;
}

static void addr_text(const struct addr *a, char out[PROXY_ADDR_MAX])
{
	if (!inet_ntop(a->family, a->b, out, PROXY_ADDR_MAX))
		out[0] = '\0';
}

/* The mask of byte i of a /bits prefix. */
static unsigned char prefix_mask(int bits, int i)
{
	int keep = bits - 8 * i;

	if (keep >= 8)
		return 0xff;
	return keep > 0 ? (unsigned char)(0xff << (8 - keep)) : 0;
}

static int in_net(const struct proxy_net *net, const struct addr *a)
{
	int i, len = net->family == AF_INET ? 4 : 16;

	if (net->family != a->family)
		return 0;
	for (i = 0; i < len && 8 * i < net->bits; i++)
		if ((net->addr[i] ^ a->b[i]) & prefix_mask(net->bits, i))
			return 0;
	return 1;
}

static int trusts(const struct proxy_list *l, const struct addr *a)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (in_net(&l->nets[i], a))
			return 1;
	return 0;
}

/* ---------------------------------------------------------- the list */

/* One entry s[0..n): ADDR or ADDR/BITS. */
static int net_parse(const char *s, size_t n, struct proxy_net *net, char *err, size_t errlen)
{
	const char *slash = memchr(s, '/', n);
	size_t al = slash ? (size_t)(slash - s) : n, i;
	int show = n > 80 ? 80 : (int)n, max, bits, len, bad_bits = 0;
	char text[PROXY_ADDR_MAX];
	struct in6_addr a6;
	struct addr block;

	memset(net, 0, sizeof(*net));
	memset(&a6, 0, sizeof(a6));
	if (al == 0 || al >= sizeof(text))
		goto not_an_address;
	memcpy(text, s, al);
	text[al] = '\0';
	if (inet_pton(AF_INET, text, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, &a6) == 1) {
		net->family = AF_INET6;
		memcpy(net->addr, a6.s6_addr, 16);
		max = 128;
	} else {
		goto not_an_address;
	}
	bits = max;
	if (slash) {
		const char *d = slash + 1;
		size_t dl = n - al - 1;

		bits = 0;
		bad_bits = dl == 0 || dl > 3;
		for (i = 0; i < dl && !bad_bits; i++) {
			if (!isdigit((unsigned char)d[i]))
				bad_bits = 1;
			bits = bits * 10 + (d[i] - '0');
		}
		if (bad_bits || bits > max) {
			snprintf(err, errlen,
				 "trusted_proxies: '%.*s': the prefix length must be a "
				 "number from 0 to %d",
				 show, s, max);
			return TG_EINVAL;
		}
	}
	/* Addresses are compared after IPv4-mapped ones became IPv4: so must
	 * a mapped block be. */
	if (net->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6)) {
		if (bits < 96) {
			snprintf(err, errlen,
				 "trusted_proxies: '%.*s': an IPv4-mapped block needs a "
				 "prefix of at least /96",
				 show, s);
			return TG_EINVAL;
		}
		net->family = AF_INET;
		memmove(net->addr, net->addr + 12, 4);
		memset(net->addr + 4, 0, 12);
		bits -= 96;
	}
	net->bits = bits;
	len = net->family == AF_INET ? 4 : 16;
	memset(&block, 0, sizeof(block));
	block.family = net->family;
	for (i = 0; i < (size_t)len; i++)
		block.b[i] = net->addr[i] & prefix_mask(bits, (int)i);
	if (memcmp(block.b, net->addr, (size_t)len) != 0) {
		addr_text(&block, text);
		snprintf(err, errlen,
			 "trusted_proxies: '%.*s' has bits set after its /%d prefix (the block is "
			 "%s/%d)",
			 show, s, bits, text, bits);
		return TG_EINVAL;
	}
	return TG_OK;
not_an_address:
	snprintf(err, errlen,
		 "trusted_proxies: '%.*s' is not an IPv4 or IPv6 address or CIDR block (such as "
		 "10.0.0.0/8 or 2001:db8::/32)",
		 show, s);
	return TG_EINVAL;
}

int proxy_list_parse(struct proxy_list *l, const char *spec, char *err, size_t errlen)
{
	const char *p = spec;
	int entry = 0, rc;

	memset(l, 0, sizeof(*l));
	while (is_ows(*p))
		p++;
	if (*p == '\0')
		return TG_OK;
	for (;;) {
		const char *comma = strchr(p, ','), *s = p;
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		entry++;
		while (n > 0 && is_ows(*s)) {
			s++;
			n--;
		}
		while (n > 0 && is_ows(s[n - 1]))
			n--;
		if (n == 0) {
			snprintf(err, errlen, "trusted_proxies: entry %d of the list is empty",
				 entry);
			rc = TG_EINVAL;
			goto fail;
		}
		if (l->n == PROXY_NETS_MAX) {
			snprintf(err, errlen, "trusted_proxies: more than %d entries",
				 PROXY_NETS_MAX);
			rc = TG_EINVAL;
			goto fail;
		}
		if ((rc = net_parse(s, n, &l->nets[l->n], err, errlen)))
			goto fail;
		l->n++;
		if (!comma)
			return TG_OK;
		p = comma + 1;
	}
fail:
	l->n = 0; /* a list that did not parse trusts nobody */
	return rc;
}

int proxy_list_trusts(const struct proxy_list *l, const char *addr)
{
	struct addr a;

	return addr_parse(addr, strlen(addr), &a) && trusts(l, &a);
}

int proxy_addr_normalize(const char *addr, char out[PROXY_ADDR_MAX])
{
	struct addr a;

	out[0] = '\0';
	if (!addr_parse(addr, strlen(addr), &a))
		return 0;
	addr_text(&a, out);
	return out[0] != '\0';
}

int proxy_configure(const char *spec, char *err, size_t errlen)
{
	return proxy_list_parse(&trusted, spec, err, errlen);
}

const struct proxy_list *proxy_trusted(void)
{
	return &trusted;
}

/* ---------------------------------------------------------- the headers */

static int proto_of(const char *s, size_t n)
{
	if (n == 5 && strncasecmp(s, "https", 5) == 0)
		return PROTO_HTTPS;
	if (n == 4 && strncasecmp(s, "http", 4) == 0)
		return PROTO_HTTP;
	return PROTO_NONE;
}

/* ":4711", or RFC 7239's obfuscated port ":_name". */
static int port_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 2 || s[0] != ':')
		return 0;
	if (s[1] == '_') {
		for (i = 2; i < n; i++)
			if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
				return 0;
		return n > 2;
	}
	if (n > 6)
		return 0;
	for (i = 1; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* A hop as proxies write it: 192.0.2.1, 2001:db8::1 or [2001:db8::1], the
 * first and the last perhaps with a port. */
static int node_parse(const char *s, size_t n, struct addr *a)
{
	const char *c;

	if (n > 0 && s[0] == '[') {
		c = memchr(s, ']', n);
		if (!c || (c + 1 < s + n && !port_ok(c + 1, (size_t)(s + n - c - 1))))
			return 0;
		return addr_parse(s + 1, (size_t)(c - s - 1), a);
	}
	c = memchr(s, ':', n);
	if (c && !memchr(c + 1, ':', (size_t)(s + n - c - 1))) /* one colon: IPv4:port */
		return port_ok(c, (size_t)(s + n - c)) && addr_parse(s, (size_t)(c - s), a) &&
		       a->family == AF_INET;
	return addr_parse(s, n, a);
}

/* The entries of a comma-separated header line (X-Forwarded-For, or with
 * `protos` X-Forwarded-Proto), spaces around them dropped, empty ones
 * skipped (RFC 9110 lists). */
static void list_parse(const char *v, int protos, struct hops *hs)
{
	while (*v) {
		const char *comma = strchr(v, ','), *s = v;
		size_t n = comma ? (size_t)(comma - v) : strlen(v);
		struct hop h;

		v += n + (comma ? 1 : 0);
		while (n > 0 && is_ows(*s)) {
			s++;
			n--;
		}
		while (n > 0 && is_ows(s[n - 1]))
			n--;
		if (n == 0)
			continue;
		memset(&h, 0, sizeof(h));
		if (protos)
			h.proto = proto_of(s, n);
		else
			h.ok = node_parse(s, n, &h.a);
		hops_push(hs, &h);
	}
}

/* A Forwarded parameter's value at *pp: a quoted-string (its escapes undone)
 * or the bytes up to ; , a quote or a space. 0 when malformed or longer than
 * out; *pp moves past what was read either way. */
static int fwd_value(const char **pp, char *out, size_t size, size_t *len)
{
	const char *p = *pp;
	size_t n = 0;
	int ok = 1;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 < size)
				out[n++] = *p;
			else
				ok = 0;
		}
		if (*p == '"')
			p++;
		else
			ok = 0;
	} else {
		for (; *p && *p != ';' && *p != ',' && *p != '"' && !is_ows(*p); p++) {
			if (n + 1 < size)
				out[n++] = *p;
			else
				ok = 0;
		}
		ok = ok && n > 0;
	}
	out[n] = '\0';
	*len = n;
	*pp = p;
	return ok;
}

/* One element of a Forwarded line at *pp, as a hop: an address when it has
 * exactly one for= naming one and no syntax error. *pp moves to the comma
 * that ends it (or the end). */
static void fwd_element(const char **pp, struct hop *h)
{
	const char *p = *pp;
	int fors = 0, bad = 0, quoted = 0;

	memset(h, 0, sizeof(*h));
	for (;;) {
		const char *name;
		char val[PROXY_ADDR_MAX + 16];
		size_t nl, vl;

		while (is_ows(*p))
			p++;
		if (*p == ';') { /* an empty pair */
			p++;
			continue;
		}
		if (*p == ',' || *p == '\0')
			break;
		name = p;
		while (*p && *p != '=' && *p != ';' && *p != ',' && *p != '"' && !is_ows(*p))
			p++;
		nl = (size_t)(p - name);
		if (*p != '=' || nl == 0) {
			bad = 1;
			break;
		}
		p++;
		if (!fwd_value(&p, val, sizeof(val), &vl)) {
			bad = 1;
			break;
		}
		if (nl == 3 && strncasecmp(name, "for", 3) == 0) {
			fors++;
			h->ok = node_parse(val, vl, &h->a);
		} else if (nl == 5 && strncasecmp(name, "proto", 5) == 0) {
			h->proto = proto_of(val, vl);
		}
		while (is_ows(*p))
			p++;
		if (*p != ';' && *p != ',' && *p != '\0') {
			bad = 1;
			break;
		}
	}
	/* After a syntax error, skip to the next comma outside quotes. */
	for (; bad && *p && (quoted || *p != ','); p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (quoted && *p == '\\' && p[1])
			p++;
	}
	if (bad || fors != 1)
		h->ok = 0;
	*pp = p;
}

static void forwarded_parse(const char *v, struct hops *hs)
{
	struct hop h;

	for (;;) {
		while (is_ows(*v) || *v == ',')
			v++;
		if (*v == '\0')
			return;
		fwd_element(&v, &h);
		hops_push(hs, &h);
	}
}

/* Every line of header `name`, in order, into hs. */
static void header_hops(const struct mg_request_info *ri, const char *name, int forwarded,
			int protos, struct hops *hs)
{
	int i;

	for (i = 0; i < ri->num_headers; i++) {
		if (strcasecmp(ri->http_headers[i].name, name) != 0 || !ri->http_headers[i].value)
			continue;
		if (forwarded)
			forwarded_parse(ri->http_headers[i].value, hs);
		else
			list_parse(ri->http_headers[i].value, protos, hs);
	}
}

/* Walk hs from the right (see proxy.h): *cur starts as the peer and ends as
 * the client. Returns the index of the hop the walk ended on, -1 for none. */
static int walk(const struct proxy_list *l, const struct hops *hs, struct addr *cur)
{
	size_t n = hops_kept(hs), i = n;

	while (i > 0) {
		const struct hop *h = hop_at(hs, --i);

		if (!h->ok)
			return (int)i;
		*cur = h->a;
		if (!trusts(l, cur))
			return (int)i;
	}
	return n ? 0 : -1;
}

void proxy_client_of(const struct proxy_list *l, const struct mg_request_info *ri,
		     struct proxy_client *out)
{
	struct hops hs, xfp;
	struct addr cur;
	int at, fwd, proto = PROTO_NONE;

	memset(out, 0, sizeof(*out));
	out->tls = ri->is_ssl ? 1 : 0;
	if (!addr_parse(ri->remote_addr, strnlen(ri->remote_addr, sizeof(ri->remote_addr)), &cur)) {
		snprintf(out->addr, sizeof(out->addr), "%.*s", (int)sizeof(out->addr) - 1,
			 ri->remote_addr);
		return;
	}
	if (l->n > 0 && trusts(l, &cur)) {
		hs.total = 0;
		header_hops(ri, "Forwarded", 1, 0, &hs);
		fwd = hs.total > 0;
		if (!fwd)
			header_hops(ri, "X-Forwarded-For", 0, 0, &hs);
		at = walk(l, &hs, &cur);
		if (fwd && at >= 0)
			proto = hop_at(&hs, (size_t)at)->proto;
		xfp.total = 0;
		if (proto == PROTO_NONE)
			header_hops(ri, "X-Forwarded-Proto", 0, 1, &xfp);
		if (xfp.total > 0)
			proto = hop_at(&xfp, at >= 0 && xfp.total == hs.total ? (size_t)at :
										hops_kept(&xfp) - 1)
					->proto;
		if (proto != PROTO_NONE)
			out->tls = proto == PROTO_HTTPS;
	}
	addr_text(&cur, out->addr);
}
