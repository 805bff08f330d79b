/* edge.c - per-address connection counting and the listeners; see edge.h. */
#include "http/edge.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "core/timeutil.h"

/* A key: the 16-byte address (IPv4 as ::ffff:a.b.c.d), then for a
 * connection the client's and the server's port. */
#define KEY_LEN 20
#define LISTENERS_MAX 8
/* A connection waiting this long without a request is one the cap counts. */
#define STALE_MS 1000
/* Waiting connections an address may have at all, fresh ones included:
 * this many times the cap. */
#define BURST_FACTOR 16

/* One table entry: a connection or an address. */
struct ent {
	unsigned char key[KEY_LEN];
	uint8_t used;
	/* a connection */
	uint8_t busy;  /* a request runs on it */
	uint8_t stale; /* waiting for longer than STALE_MS (counted in its address) */
	int32_t fd;
	int64_t since_ms; /* waiting since */
	/* an address */
	uint8_t exempt;  /* a trusted proxy */
	int32_t waiting; /* connections with no request running */
	int32_t stale_n; /* of those, waiting for longer than STALE_MS */
	int32_t all;
};

/* Open addressing, linear probing, deletion by backward shift; keyed
 * SipHash so no client can pick addresses and ports that collide. */
struct tab {
	struct ent *e;
	size_t cap, n; /* cap: a power of two */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct tab conns, addrs;
static unsigned char hkey[crypto_shorthash_KEYBYTES];
static int on;
static int64_t cap_per_ip;
static const struct proxy_list *exempt_list;
static uint64_t refused;
static int listeners[LISTENERS_MAX], nlisteners;
static int64_t last_sweep_ms;
static int never_readable[2] = { -1, -1 };

static size_t home(const struct tab *t, const unsigned char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, key, KEY_LEN, hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)v & (t->cap - 1);
}

/* The entry for key; with insert, a new, zeroed one when there is none,
 * NULL when the table is three quarters full. */
static struct ent *tab_find(struct tab *t, const unsigned char *key, int insert)
{
	size_t i = home(t, key);

	for (;;) {
		struct ent *e = &t->e[i];

		if (!e->used) {
			if (!insert || (t->n + 1) * 4 > t->cap * 3)
				return NULL;
			memset(e, 0, sizeof(*e));
			memcpy(e->key, key, KEY_LEN);
			e->used = 1;
			t->n++;
			return e;
		}
		if (memcmp(e->key, key, KEY_LEN) == 0)
			return e;
		i = (i + 1) & (t->cap - 1);
	}
}

static void tab_del(struct tab *t, struct ent *e)
{
	size_t mask = t->cap - 1, i = (size_t)(e - t->e), j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (!t->e[j].used)
			break;
		k = home(t, t->e[j].key);
		/* Entry j moves into the hole at i unless its home lies in (i, j]. */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	t->e[i].used = 0;
	t->n--;
}

static int tab_init(struct tab *t, size_t want)
{
	size_t cap = 1024;

	while (cap < want && cap < ((size_t)1 << 22))
		cap <<= 1;
	t->e = calloc(cap, sizeof(*t->e));
	t->cap = t->e ? cap : 0;
	t->n = 0;
	return t->e ? TG_OK : TG_ENOMEM;
}

static void tab_free(struct tab *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/* The 16-byte form of an address; 0 when it is none. */
static int addr_key(const struct sockaddr *sa, unsigned char *key, int *port)
{
	memset(key, 0, KEY_LEN);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return 1;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(key, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
		return 1;
	}
	return 0;
}

static void put_ports(unsigned char *key, int client_port, int server_port)
{
	key[16] = (unsigned char)(client_port >> 8);
	key[17] = (unsigned char)client_port;
	key[18] = (unsigned char)(server_port >> 8);
	key[19] = (unsigned char)server_port;
}

/* The address as text for the exemption list. */
static void key_text(const unsigned char *key, char *out, size_t n)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(key, v4mapped, 12) == 0)
		inet_ntop(AF_INET, key + 12, out, (socklen_t)n);
	else
		inet_ntop(AF_INET6, key, out, (socklen_t)n);
}

/* The answer to a connection over the cap: written to a socket nobody has
 * read from yet, so its send buffer takes it whole, without blocking. */
static void refuse(int fd)
{
	char body[256], msg[512], junk[4096];
	int nb, nm, k;

	nb = snprintf(body, sizeof(body),
		      "{\"error\":{\"message\":\"Too many open connections from your address "
		      "(at most %lld). Close idle ones, or retry in a moment.\",\"type\":"
		      "\"rate_limit_error\",\"param\":null,\"code\":\"too_many_connections\"}}\n",
		      (long long)cap_per_ip);
	nm = snprintf(msg, sizeof(msg),
		      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
		      "Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		      nb, body);
	if (send(fd, msg, (size_t)nm, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the client is gone already */
	}
	shutdown(fd, SHUT_WR);
	/* What the client sent so far: unread input would turn the close into
	 * a reset, which can cost the client the answer. */
	for (k = 0; k < 4 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; k++)
		;
	close(fd);
}

/* The address entry of connection c (under mu). */
static struct ent *addr_of(const struct ent *c)
{
	unsigned char key[KEY_LEN];

	memcpy(key, c->key, 16);
	memset(key + 16, 0, KEY_LEN - 16);
	return tab_find(&addrs, key, 0);
}

/* Mark the connections that have waited longer than STALE_MS (under mu):
 * a pass over the table, at most every STALE_MS / 4, from the accept path. */
static void sweep(int64_t now)
{
	size_t i;

	last_sweep_ms = now;
	for (i = 0; i < conns.cap; i++) {
		struct ent *c = &conns.e[i], *a;

		if (!c->used || c->busy || c->stale || now - c->since_ms < STALE_MS)
			continue;
		c->stale = 1;
		if ((a = addr_of(c)))
			a->stale_n++;
	}
}

/* Connection c stops waiting, or goes (under mu). */
static void unwait(struct ent *c, struct ent *a)
{
	if (c->busy)
		return;
	if (a) {
		a->waiting--;
		a->stale_n -= c->stale;
	}
	c->stale = 0;
}

/* Count a new connection; 0 to refuse it. */
static int admit(int fd, const struct sockaddr *peer)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	unsigned char key[KEY_LEN];
	char text[INET6_ADDRSTRLEN];
	struct ent *a, *c;
	int cport, sport;
	int exempt;
	int64_t now;

	if (!addr_key(peer, key, &cport) ||
	    getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    !addr_key((struct sockaddr *)&local, (unsigned char[KEY_LEN]){ 0 }, &sport))
		return 1; /* not an IP connection: nothing to count */
	key_text(key, text, sizeof(text));
	exempt = exempt_list && proxy_list_trusts(exempt_list, text);
	now = time_mono_us() / 1000;
	pthread_mutex_lock(&mu);
	if (now - last_sweep_ms >= STALE_MS / 4)
		sweep(now);
	a = tab_find(&addrs, key, 1);
	if (a && cap_per_ip > 0 && !exempt &&
	    (a->stale_n >= cap_per_ip || a->waiting >= cap_per_ip * BURST_FACTOR)) {
		refused++;
		pthread_mutex_unlock(&mu);
		return 0;
	}
	put_ports(key, cport, sport);
	c = a ? tab_find(&conns, key, 1) : NULL;
	if (c) {
		c->fd = fd;
		c->since_ms = now;
		a->waiting++;
		a->all++;
		a->exempt = (uint8_t)exempt;
	} else if (a && a->all == 0) {
		tab_del(&addrs, a); /* full: served uncounted */
	}
	pthread_mutex_unlock(&mu);
	return 1;
}

/* CivetWeb's accept(). glibc declares it with a transparent union for the
 * address (__SOCKADDR_ARG); the definition must match. */
int accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	struct sockaddr_storage ss;
	struct sockaddr *sa = addr.__sockaddr__;
	socklen_t sl = sizeof(ss);
	int c;

	if (!sa) {
		sa = (struct sockaddr *)&ss;
		len = &sl;
	}
	c = accept4(fd, sa, len, SOCK_CLOEXEC);
	if (c < 0 || !__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return c;
	if (admit(c, sa))
		return c;
	refuse(c);
	errno = ECONNABORTED; /* to CivetWeb: nothing accepted, poll again */
	return -1;
}

int edge_configure(int64_t per_ip_max, const struct proxy_list *exempt, char *err, size_t errlen)
{
	struct rlimit rl;
	size_t want = 65536;

	/* libcivetweb's accept() resolves as this lookup does. */
	if (dlsym(RTLD_DEFAULT, "accept") != (void *)accept) {
		snprintf(err, errlen,
			 "the per-address connection cap cannot work: accept() does not reach "
			 "it (is the binary linked statically?)");
		return TG_EINVAL;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur * 2 > want)
		want = (size_t)rl.rlim_cur * 2;
	edge_reset();
	randombytes_buf(hkey, sizeof(hkey));
	if (tab_init(&conns, want) || tab_init(&addrs, want)) {
		edge_reset();
		snprintf(err, errlen, "out of memory");
		return TG_ENOMEM;
	}
	cap_per_ip = per_ip_max;
	exempt_list = exempt;
	refused = 0;
	__atomic_store_n(&on, 1, __ATOMIC_RELEASE);
	return TG_OK;
}

void edge_reset(void)
{
	__atomic_store_n(&on, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&mu);
	tab_free(&conns);
	tab_free(&addrs);
	nlisteners = 0;
	if (never_readable[1] >= 0)
		close(never_readable[1]);
	never_readable[0] = never_readable[1] = -1;
	pthread_mutex_unlock(&mu);
}

/* The connection ri describes and its address's entry (under mu). */
static struct ent *find_conn(const struct mg_request_info *ri, unsigned char *key,
			     struct ent **addr)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	struct ent *c;
	int port;

	*addr = NULL;
	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, ri->remote_addr, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		addr_key((struct sockaddr *)&s4, key, &port);
	} else if (inet_pton(AF_INET6, ri->remote_addr, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		addr_key((struct sockaddr *)&s6, key, &port);
	} else {
		return NULL;
	}
	if (!conns.e)
		return NULL;
	put_ports(key, ri->remote_port, ri->server_port);
	c = tab_find(&conns, key, 0);
	if (c) {
		memset(key + 16, 0, 4);
		*addr = tab_find(&addrs, key, 0);
	}
	return c;
}

enum conn_event { EV_CLOSED, EV_BEGIN, EV_END };

/* What happened to ri's connection; for EV_BEGIN, 1 when its address is
 * at the cap even so. */
static int conn_event(const struct mg_request_info *ri, enum conn_event ev)
{
	unsigned char key[KEY_LEN];
	struct ent *a, *c;
	int crowded = 0;

	if (!ri || !__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&mu);
	c = find_conn(ri, key, &a);
	if (c && ev == EV_CLOSED) {
		unwait(c, a);
		if (a && --a->all <= 0)
			tab_del(&addrs, a);
		tab_del(&conns, c);
	} else if (c && a && ev == EV_BEGIN && !c->busy) {
		unwait(c, a);
		c->busy = 1;
		crowded = cap_per_ip > 0 && !a->exempt && a->stale_n >= cap_per_ip;
	} else if (c && a && ev == EV_END && c->busy) {
		c->busy = 0;
		c->since_ms = time_mono_us() / 1000;
		a->waiting++;
	}
	pthread_mutex_unlock(&mu);
	return crowded;
}

void edge_connection_closed(const struct mg_request_info *ri)
{
	conn_event(ri, EV_CLOSED);
}

int edge_request_begin(const struct mg_request_info *ri)
{
	return conn_event(ri, EV_BEGIN);
}

void edge_request_end(const struct mg_request_info *ri)
{
	conn_event(ri, EV_END);
}

void edge_get_stats(struct edge_stats *st)
{
	pthread_mutex_lock(&mu);
	st->open = (int64_t)conns.n;
	st->addresses = (int64_t)addrs.n;
	st->refused = refused;
	st->per_ip_max = cap_per_ip;
	pthread_mutex_unlock(&mu);
}

int edge_find_listeners(const int *ports, int nports)
{
	struct rlimit rl;
	int fd, maxfd = 1024, i;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		maxfd = rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	pthread_mutex_lock(&mu);
	nlisteners = 0;
	for (fd = 0; fd < maxfd && nlisteners < LISTENERS_MAX; fd++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss), ol;
		unsigned char key[KEY_LEN];
		int yes = 0, port;

		ol = sizeof(yes);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &yes, &ol) != 0 || !yes ||
		    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
		    !addr_key((struct sockaddr *)&ss, key, &port))
			continue;
		for (i = 0; i < nports; i++)
			if (ports[i] == port)
				listeners[nlisteners++] = fd;
	}
	i = nlisteners;
	pthread_mutex_unlock(&mu);
	return i;
}

void edge_stop_accepting(void)
{
	int i;

	pthread_mutex_lock(&mu);
	if (never_readable[1] < 0 && pipe2(never_readable, O_CLOEXEC) == 0) {
		for (i = 0; i < nlisteners; i++)
			if (dup2(never_readable[0], listeners[i]) < 0)
				log_warn("shutdown: cannot close listener %d: %s", listeners[i],
					 strerror(errno));
		close(never_readable[0]);
	}
	pthread_mutex_unlock(&mu);
}

void edge_cut_all(void)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < conns.cap; i++)
		if (conns.e[i].used)
			shutdown(conns.e[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&mu);
}
