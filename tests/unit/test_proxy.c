/* Unit tests for running behind a reverse proxy (http/proxy.h): parsing the
 * trusted_proxies list, the rightmost untrusted hop of X-Forwarded-For,
 * forwarding headers from untrusted peers ignored, RFC 7239 Forwarded
 * (quotes, ports, IPv6, obfuscated identifiers), several header lines,
 * X-Forwarded-Proto, and the request accessors built on them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <civetweb.h>
#include <cmocka.h>

#include "core/common.h"
#include "core/config.h"
#include "http/http.h"
#include "http/proxy.h"

static struct mg_request_info ri;

/* A request from `peer` (TLS when ssl) with the NULL-terminated header
 * name/value pairs that follow. */
static void request(const char *peer, int ssl, ...)
{
	const char *name;
	va_list ap;

	memset(&ri, 0, sizeof(ri));
	snprintf(ri.remote_addr, sizeof(ri.remote_addr), "%s", peer);
	ri.is_ssl = ssl;
	va_start(ap, ssl);
	while ((name = va_arg(ap, const char *)) != NULL) {
		ri.http_headers[ri.num_headers].name = name;
		ri.http_headers[ri.num_headers].value = va_arg(ap, const char *);
		ri.num_headers++;
	}
	va_end(ap);
}

static struct proxy_client got;

/* The client of the current request under the list spec. */
static const char *client(const char *spec)
{
	struct proxy_list l;
	char err[256];

	assert_int_equal(proxy_list_parse(&l, spec, err, sizeof(err)), TG_OK);
	proxy_client_of(&l, &ri, &got);
	return got.addr;
}

static void parses(const char *spec, size_t n)
{
	struct proxy_list l;
	char err[256] = "";

	if (proxy_list_parse(&l, spec, err, sizeof(err)) != TG_OK)
		fail_msg("'%s' refused: %s", spec, err);
	assert_int_equal(l.n, n);
}

/* spec is refused with a message naming the setting and containing `says`. */
static void refuses(const char *spec, const char *says)
{
	struct proxy_list l;
	char err[256] = "";

	if (proxy_list_parse(&l, spec, err, sizeof(err)) != TG_EINVAL)
		fail_msg("'%s' accepted", spec);
	assert_int_equal(l.n, 0); /* trusts nobody */
	if (strncmp(err, "trusted_proxies: ", 17) != 0 || !strstr(err, says))
		fail_msg("'%s': message '%s' lacks '%s'", spec, err, says);
}

static int trusted_by(const char *spec, const char *addr)
{
	struct proxy_list l;
	char err[256];

	assert_int_equal(proxy_list_parse(&l, spec, err, sizeof(err)), TG_OK);
	return proxy_list_trusts(&l, addr);
}

static void test_list_parses(void **state)
{
	(void)state;
	parses("", 0);
	parses("   ", 0);
	parses("127.0.0.1", 1);
	parses("127.0.0.1,10.0.0.0/8", 2);
	parses(" 127.0.0.1 , 10.0.0.0/8 ,\t::1 ", 3);
	parses("0.0.0.0/0", 1);
	parses("192.0.2.1/32", 1);
	parses("::/0", 1);
	parses("2001:db8::/32", 1);
	parses("2001:db8::1/128", 1);
	parses("192.0.2.128/25", 1);
	parses("::ffff:10.0.0.0/104", 1);
}

static void test_list_refuses(void **state)
{
	char many[1024];
	size_t k = 0;
	int i;

	(void)state;
	refuses("junk", "'junk' is not an IPv4 or IPv6 address or CIDR block");
	refuses("localhost", "'localhost' is not");
	refuses("127.0.0.1,gateway.internal", "'gateway.internal' is not");
	refuses("1.2.3", "'1.2.3' is not");
	refuses("1.2.3.4.5", "is not");
	refuses("256.0.0.1", "is not");
	refuses("[::1]", "'[::1]' is not");
	refuses("/8", "'/8' is not");
	refuses("2001:db8::zz", "is not");
	refuses("10.0.0.0 /8", "is not");
	refuses("10.0.0.0/", "'10.0.0.0/': the prefix length must be a number from 0 to 32");
	refuses("10.0.0.0/33", "from 0 to 32");
	refuses("10.0.0.0/-1", "from 0 to 32");
	refuses("10.0.0.0/+8", "from 0 to 32");
	refuses("10.0.0.0/8/9", "from 0 to 32");
	refuses("10.0.0.0/abc", "from 0 to 32");
	refuses("10.0.0.0/0008", "from 0 to 32");
	refuses("2001:db8::/129", "from 0 to 128");
	refuses("10.0.0.1/8",
		"'10.0.0.1/8' has bits set after its /8 prefix (the block is 10.0.0.0/8)");
	refuses("2001:db8::1/32", "(the block is 2001:db8::/32)");
	refuses("0.0.0.1/0", "(the block is 0.0.0.0/0)");
	refuses("::ffff:10.0.0.0/64", "needs a prefix of at least /96");
	refuses("127.0.0.1,,10.0.0.0/8", "entry 2 of the list is empty");
	refuses("127.0.0.1,", "entry 2 of the list is empty");
	refuses(",127.0.0.1", "entry 1 of the list is empty");
	for (i = 0; i <= PROXY_NETS_MAX; i++)
		k += (size_t)snprintf(many + k, sizeof(many) - k, "%s10.0.%d.1", i ? "," : "", i);
	refuses(many, "more than 64 entries");
}

static void test_list_matches(void **state)
{
	(void)state;
	assert_true(trusted_by("10.0.0.0/8", "10.0.0.0"));
	assert_true(trusted_by("10.0.0.0/8", "10.255.255.255"));
	assert_false(trusted_by("10.0.0.0/8", "11.0.0.0"));
	assert_false(trusted_by("10.0.0.0/8", "9.255.255.255"));
	assert_true(trusted_by("192.0.2.128/25", "192.0.2.200"));
	assert_false(trusted_by("192.0.2.128/25", "192.0.2.127"));
	assert_true(trusted_by("192.0.2.1/32", "192.0.2.1"));
	assert_false(trusted_by("192.0.2.1/32", "192.0.2.2"));
	assert_true(trusted_by("127.0.0.1", "127.0.0.1"));
	assert_false(trusted_by("127.0.0.1", "127.0.0.2"));
	/* /0 is a whole family, never the other one */
	assert_true(trusted_by("0.0.0.0/0", "203.0.113.9"));
	assert_false(trusted_by("0.0.0.0/0", "2001:db8::1"));
	assert_true(trusted_by("::/0", "2001:db8::1"));
	assert_false(trusted_by("::/0", "203.0.113.9"));
	assert_true(trusted_by("2001:db8::/33", "2001:db8:7fff:ffff::1"));
	assert_false(trusted_by("2001:db8::/33", "2001:db8:8000::"));
	assert_true(trusted_by("::1", "0:0:0:0:0:0:0:1"));
	/* an IPv4-mapped peer is its IPv4 address, both ways */
	assert_true(trusted_by("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(trusted_by("::ffff:10.0.0.0/104", "10.1.2.3"));
	assert_false(trusted_by("::ffff:10.0.0.0/104", "11.1.2.3"));
	assert_false(trusted_by("", "127.0.0.1"));
	assert_false(trusted_by("0.0.0.0/0", "junk"));
}

static void test_normalize(void **state)
{
	char out[PROXY_ADDR_MAX];

	(void)state;
	assert_true(proxy_addr_normalize("192.0.2.1", out));
	assert_string_equal(out, "192.0.2.1");
	assert_true(proxy_addr_normalize("::FFFF:192.0.2.1", out));
	assert_string_equal(out, "192.0.2.1");
	assert_true(proxy_addr_normalize("2001:DB8:0:0:0:0:0:1", out));
	assert_string_equal(out, "2001:db8::1");
	assert_false(proxy_addr_normalize("[2001:db8::1]", out));
	assert_false(proxy_addr_normalize("192.0.2.1:80", out));
	assert_false(proxy_addr_normalize("junk", out));
	assert_false(proxy_addr_normalize("", out));
}

static void test_untrusted_peer_headers_ignored(void **state)
{
	(void)state;
	/* A client talking to us directly cannot pick its own address... */
	request("192.0.2.9", 0, "X-Forwarded-For", "203.0.113.7", "Forwarded",
		"for=198.51.100.1;proto=https", "X-Forwarded-Proto", "https", NULL);
	assert_string_equal(client("127.0.0.1,10.0.0.0/8"), "192.0.2.9");
	assert_int_equal(got.tls, 0);
	/* ...nor can anyone when nobody is trusted (the default). */
	request("127.0.0.1", 0, "X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https",
		NULL);
	assert_string_equal(client(""), "127.0.0.1");
	assert_int_equal(got.tls, 0);
	/* the peer is normalised too */
	request("::ffff:192.0.2.9", 1, "X-Forwarded-For", "203.0.113.7", NULL);
	assert_string_equal(client("127.0.0.1"), "192.0.2.9");
	assert_int_equal(got.tls, 1);
	request("2001:DB8::0:9", 0, NULL);
	assert_string_equal(client(""), "2001:db8::9");
}

static void test_rightmost_untrusted_hop(void **state)
{
	const char *trust = "127.0.0.1,10.0.0.0/8,::1";

	(void)state;
	/* A trusted peer without forwarding headers is the client. */
	request("127.0.0.1", 0, NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	/* nginx appends the address it saw: whatever the client put in front
	 * stays on the left and is never taken. */
	request("127.0.0.1", 0, "X-Forwarded-For", "6.6.6.6, 198.51.100.2", NULL);
	assert_string_equal(client(trust), "198.51.100.2");
	/* trusted hops on the right are skipped */
	request("127.0.0.1", 0, "X-Forwarded-For", "6.6.6.6, 198.51.100.2, 10.0.0.5, 10.9.9.9",
		NULL);
	assert_string_equal(client(trust), "198.51.100.2");
	/* every hop trusted: the leftmost */
	request("127.0.0.1", 0, "X-Forwarded-For", "10.0.0.1, 10.0.0.2", NULL);
	assert_string_equal(client(trust), "10.0.0.1");
	/* a malformed entry ends the walk at the last good address */
	request("127.0.0.1", 0, "X-Forwarded-For", "198.51.100.2, junk, 10.0.0.5", NULL);
	assert_string_equal(client(trust), "10.0.0.5");
	request("127.0.0.1", 0, "X-Forwarded-For", "198.51.100.2, unknown", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "X-Forwarded-For", "198.51.100.2, 10.0.0.5:99999999", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	/* ports, brackets, case and mapped addresses are normalised away */
	request("127.0.0.1", 0, "X-Forwarded-For", "203.0.113.7:5555", NULL);
	assert_string_equal(client(trust), "203.0.113.7");
	request("127.0.0.1", 0, "X-Forwarded-For", "[2001:DB8::1]:80", NULL);
	assert_string_equal(client(trust), "2001:db8::1");
	request("127.0.0.1", 0, "X-Forwarded-For", "2001:db8:0::1", NULL);
	assert_string_equal(client(trust), "2001:db8::1");
	request("127.0.0.1", 0, "X-Forwarded-For", "::ffff:203.0.113.7", NULL);
	assert_string_equal(client(trust), "203.0.113.7");
	request("::1", 0, "X-Forwarded-For", "203.0.113.7", NULL);
	assert_string_equal(client(trust), "203.0.113.7");
	/* empty list entries are skipped, spaces and tabs trimmed */
	request("127.0.0.1", 0, "X-Forwarded-For", ",203.0.113.7,, \t,", NULL);
	assert_string_equal(client(trust), "203.0.113.7");
	request("127.0.0.1", 0, "X-Forwarded-For", "", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
}

static void test_many_hops(void **state)
{
	char xff[2048];
	size_t k = 0;
	int i;

	(void)state;
	/* Only the rightmost PROXY_HOPS_MAX hops count: a long spoofed prefix
	 * changes nothing. */
	for (i = 0; i < 100; i++)
		k += (size_t)snprintf(xff + k, sizeof(xff) - k, "6.6.6.%d, ", i);
	snprintf(xff + k, sizeof(xff) - k, "203.0.113.7");
	request("127.0.0.1", 0, "X-Forwarded-For", xff, NULL);
	assert_string_equal(client("127.0.0.1"), "203.0.113.7");
	/* all trusted: the leftmost of those kept */
	for (i = 1, k = 0; i <= 100; i++)
		k += (size_t)snprintf(xff + k, sizeof(xff) - k, "%s10.0.1.%d", i > 1 ? "," : "", i);
	request("127.0.0.1", 0, "X-Forwarded-For", xff, NULL);
	assert_string_equal(client("127.0.0.1,10.0.0.0/8"), "10.0.1.69");
}

static void test_header_lines_joined_in_order(void **state)
{
	const char *trust = "127.0.0.1,10.0.0.0/8";

	(void)state;
	request("127.0.0.1", 0, "X-Forwarded-For", "6.6.6.6", "x-forwarded-for",
		"198.51.100.2, 10.0.0.3", NULL);
	assert_string_equal(client(trust), "198.51.100.2");
	request("127.0.0.1", 0, "X-Forwarded-For", "198.51.100.2", "Accept", "*/*",
		"X-Forwarded-For", "10.0.0.3", NULL);
	assert_string_equal(client(trust), "198.51.100.2");
	/* the leftmost is in the first line */
	request("127.0.0.1", 0, "X-Forwarded-For", "10.0.0.9", "X-Forwarded-For", "10.0.0.8", NULL);
	assert_string_equal(client(trust), "10.0.0.9");
	request("127.0.0.1", 0, "Forwarded", "for=198.51.100.2", "Forwarded",
		"for=10.0.0.3;proto=http", NULL);
	assert_string_equal(client(trust), "198.51.100.2");
}

static void test_forwarded(void **state)
{
	const char *trust = "127.0.0.1,10.0.0.0/8";

	(void)state;
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43", NULL);
	assert_string_equal(client(trust), "192.0.2.60");
	assert_int_equal(got.tls, 1);
	/* quoted IPv6 with a port; names are case-insensitive */
	request("127.0.0.1", 0, "Forwarded", "For=\"[2001:db8:cafe::17]:4711\"", NULL);
	assert_string_equal(client(trust), "2001:db8:cafe::17");
	request("127.0.0.1", 0, "Forwarded", "for=\"192.0.2.43:47011\"", NULL);
	assert_string_equal(client(trust), "192.0.2.43");
	request("127.0.0.1", 0, "Forwarded", "for=\"[2001:db8::1]:_port\"", NULL);
	assert_string_equal(client(trust), "2001:db8::1");
	/* quoted-pair escapes are undone */
	request("127.0.0.1", 0, "Forwarded", "for=\"\\[2001:db8::2\\]\"", NULL);
	assert_string_equal(client(trust), "2001:db8::2");
	/* the rightmost untrusted element wins, as for X-Forwarded-For */
	request("127.0.0.1", 0, "Forwarded", "for=6.6.6.6, for=198.51.100.7, for=10.0.0.2", NULL);
	assert_string_equal(client(trust), "198.51.100.7");
	/* obfuscated and unknown identifiers are not addresses: the walk stops */
	request("127.0.0.1", 0, "Forwarded", "for=unknown", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "Forwarded", "for=_hidden, for=10.0.0.2", NULL);
	assert_string_equal(client(trust), "10.0.0.2");
	request("127.0.0.1", 0, "Forwarded", "for=198.51.100.7, for=\"_gazonk\"", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	/* a comma inside quotes does not end the element */
	request("127.0.0.1", 0, "Forwarded", "for=10.0.0.2;by=\"x,for=6.6.6.6\"", NULL);
	assert_string_equal(client(trust), "10.0.0.2");
	/* empty pairs and elements, spaces around elements */
	request("127.0.0.1", 0, "Forwarded", " , for=192.0.2.1;;proto=https; ,, ", NULL);
	assert_string_equal(client(trust), "192.0.2.1");
	assert_int_equal(got.tls, 1);
	/* malformed elements are not addresses */
	request("127.0.0.1", 0, "Forwarded", "for=\"192.0.2.1", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.1;for=192.0.2.2", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "Forwarded", "for = 192.0.2.1", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "Forwarded", "proto=https", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.1 junk, for=10.0.0.2", NULL);
	assert_string_equal(client(trust), "10.0.0.2");
	request("127.0.0.1", 0, "Forwarded", "for=2001:db8::1", NULL);
	assert_string_equal(client(trust), "2001:db8::1"); /* unquoted IPv6, tolerated */
	/* Forwarded is preferred over X-Forwarded-For */
	request("127.0.0.1", 0, "X-Forwarded-For", "198.51.100.1", "Forwarded", "for=192.0.2.60",
		NULL);
	assert_string_equal(client(trust), "192.0.2.60");
	/* an empty Forwarded line leaves X-Forwarded-For in charge */
	request("127.0.0.1", 0, "Forwarded", " ", "X-Forwarded-For", "198.51.100.1", NULL);
	assert_string_equal(client(trust), "198.51.100.1");
}

static void test_forwarded_proto(void **state)
{
	const char *trust = "127.0.0.1,10.0.0.0/8";

	(void)state;
	request("127.0.0.1", 0, "X-Forwarded-Proto", "https", NULL);
	assert_string_equal(client(trust), "127.0.0.1");
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 0, "X-Forwarded-Proto", " HTTPS ", NULL);
	client(trust);
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 1, "X-Forwarded-Proto", "http", NULL);
	client(trust);
	assert_int_equal(got.tls, 0);
	/* anything but http and https leaves the connection's own scheme */
	request("127.0.0.1", 1, "X-Forwarded-Proto", "gopher", NULL);
	client(trust);
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 0, "X-Forwarded-Proto", "gopher", NULL);
	client(trust);
	assert_int_equal(got.tls, 0);
	/* not from an untrusted peer */
	request("192.0.2.9", 0, "X-Forwarded-Proto", "https", NULL);
	client(trust);
	assert_int_equal(got.tls, 0);
	/* with one entry per hop, the entry of the hop taken */
	request("127.0.0.1", 0, "X-Forwarded-For", "203.0.113.7, 10.0.0.5", "X-Forwarded-Proto",
		"https, http", NULL);
	assert_string_equal(client(trust), "203.0.113.7");
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 0, "X-Forwarded-For", "203.0.113.7, 198.51.100.2", "X-Forwarded-Proto",
		"https", "X-Forwarded-Proto", "http", NULL);
	assert_string_equal(client(trust), "198.51.100.2");
	assert_int_equal(got.tls, 0);
	/* otherwise the rightmost, what the peer itself set */
	request("127.0.0.1", 0, "X-Forwarded-For", "203.0.113.7, 10.0.0.5", "X-Forwarded-Proto",
		"https", NULL);
	client(trust);
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 0, "X-Forwarded-Proto", "http, https", NULL);
	client(trust);
	assert_int_equal(got.tls, 1);
	/* Forwarded's proto= of the element taken; else X-Forwarded-Proto */
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.60;proto=https, for=10.0.0.2;proto=http",
		NULL);
	assert_string_equal(client(trust), "192.0.2.60");
	assert_int_equal(got.tls, 1);
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.60;proto=http", "X-Forwarded-Proto",
		"https", NULL);
	client(trust);
	assert_int_equal(got.tls, 0);
	request("127.0.0.1", 0, "Forwarded", "for=192.0.2.60", "X-Forwarded-Proto", "https", NULL);
	client(trust);
	assert_int_equal(got.tls, 1);
}

static void test_request_accessors(void **state)
{
	struct mg_request_info info;
	tg_req_t r;
	char err[256];
	tg_config_t c;
	char *argv[] = { "--trusted-proxies", "127.0.0.1, 10.0.0.0/8" };
	int i = 0;

	(void)state;
	config_defaults(&c);
	assert_string_equal(c.trusted_proxies, "");
	assert_int_equal(config_apply_flag(&c, 2, argv, &i, err, sizeof(err)), 1);
	assert_string_equal(c.trusted_proxies, "127.0.0.1, 10.0.0.0/8");
	assert_int_equal(proxy_configure(c.trusted_proxies, err, sizeof(err)), TG_OK);
	assert_int_equal(proxy_trusted()->n, 2);

	memset(&info, 0, sizeof(info));
	memset(&r, 0, sizeof(r));
	snprintf(info.remote_addr, sizeof(info.remote_addr), "127.0.0.1");
	info.http_headers[0].name = "X-Forwarded-For";
	info.http_headers[0].value = "6.6.6.6, 198.51.100.2";
	info.http_headers[1].name = "X-Forwarded-Proto";
	info.http_headers[1].value = "https";
	info.num_headers = 2;
	r.ri = &info;
	/* before req_client_init: the peer */
	assert_string_equal(req_ip(&r), "127.0.0.1");
	assert_int_equal(req_is_tls(&r), 0);
	req_client_init(&r);
	assert_string_equal(req_ip(&r), "198.51.100.2");
	assert_int_equal(req_is_tls(&r), 1);

	/* a bad list is refused and leaves nobody trusted */
	assert_int_equal(proxy_configure("127.0.0.1,10.0.0.0/88", err, sizeof(err)), TG_EINVAL);
	assert_string_equal(err, "trusted_proxies: '10.0.0.0/88': the prefix length must be a "
				 "number from 0 to 32");
	assert_int_equal(proxy_trusted()->n, 0);
	req_client_init(&r);
	assert_string_equal(req_ip(&r), "127.0.0.1");
	assert_int_equal(req_is_tls(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_parses),
		cmocka_unit_test(test_list_refuses),
		cmocka_unit_test(test_list_matches),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_untrusted_peer_headers_ignored),
		cmocka_unit_test(test_rightmost_untrusted_hop),
		cmocka_unit_test(test_many_hops),
		cmocka_unit_test(test_header_lines_joined_in_order),
		cmocka_unit_test(test_forwarded),
		cmocka_unit_test(test_forwarded_proto),
		cmocka_unit_test(test_request_accessors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
