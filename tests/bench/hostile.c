/* hostile.c - slow and idle clients against a server, and a probe through them.
 *
 *   hostile --port P [--conns N] [--addrs A] [--secs S] [--probes M]
 *           [--key KEY --model NAME] [--flood F]
 *
 * Keeps N connections open from A loopback addresses (127.0.0.2, 127.0.0.3,
 * ...; Linux routes all of 127/8 to the loopback device), a third each of:
 *   idle     connected, sends nothing;
 *   trickle  sends a request head one byte every 500 ms, never finishing it;
 *   keep     sends one whole request, reads the answer, then idles.
 * A connection the server closes is opened again at once, as an attacker
 * would. Once all N are up it probes from 127.0.0.1, one call at a time on a
 * new connection each: GET /health and, with --key, a non-stream
 * POST /v1/chat/completions, for S seconds or M probes. With --flood F it
 * then holds F idle connections from one further address for 2.5 s, opens F
 * more from it and counts how many of those the server refused within a
 * second (closed, or answered 429).
 *
 * Prints "RESULT conns=N held=H probes=M ok=K health_p50=.. health_p99=..
 * v1_p50=.. v1_p99=.. max=.. reopened=R flood_refused=X" (µs). Exit status 1
 * when a probe failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { IDLE, TRICKLE, KEEP };

struct hconn {
	int fd;
	enum mode mode;
	int addr;     /* 127.0.0.(2 + addr) */
	size_t sent;  /* trickle: bytes of the head sent */
	int answered; /* keep: the answer has been read */
};

static int port;
static struct hconn *conns;
static int nconns, naddrs = 20;
static volatile int stop_flag;
static long reopened;
static int epfd;

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A connection from 127.0.0.1 + the given offset; a blocking one gives up
 * connecting, sending and receiving after 5 s each. */
static int dial(unsigned addr_host_order, int nonblock)
{
	struct sockaddr_in src = { 0 }, dst = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	struct timeval tv = { 5, 0 };
	int one = 1;

	if (fd < 0)
		return -1;
	if (!nonblock) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(addr_host_order);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
		close(fd);
		return -1;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons((unsigned short)port);
	dst.sin_addr.s_addr = htonl(0x7f000001);
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static const char head[] = "GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\n";
static const char whole[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

static void hconn_open(struct hconn *c)
{
	struct epoll_event ev = { 0 };

	c->fd = dial(0x7f000002u + (unsigned)c->addr, 1);
	c->sent = 0;
	c->answered = 0;
	if (c->fd < 0)
		return;
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void hconn_reopen(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	reopened++;
	hconn_open(c);
}

/* The attackers' loop: reads what the server sends (a keep connection's
 * answer, or its close), trickles, reopens what was closed. */
static void *attack(void *arg)
{
	struct epoll_event evs[256];
	long long next_tick = now_us();
	char buf[4096];
	int i;

	(void)arg;
	while (!stop_flag) {
		int n = epoll_wait(epfd, evs, 256, 50);

		for (i = 0; i < n; i++) {
			struct hconn *c = evs[i].data.ptr;
			ssize_t got = recv(c->fd, buf, sizeof(buf), 0);

			if (got > 0 && c->mode == KEEP && !c->answered) {
				c->answered = 1; /* then idle in keep-alive */
				continue;
			}
			if (got == 0 || (got < 0 && errno != EAGAIN) || got > 0)
				hconn_reopen(c); /* closed, reset, or answered (a timeout's 408) */
		}
		if (now_us() >= next_tick) {
			next_tick = now_us() + 500000;
			for (i = 0; i < nconns; i++) {
				struct hconn *c = &conns[i];

				if (c->fd < 0) {
					hconn_reopen(c);
					continue;
				}
				if (c->mode == TRICKLE && c->sent < sizeof(head) - 1) {
					if (send(c->fd, head + c->sent, 1, MSG_NOSIGNAL) == 1)
						c->sent++;
				} else if (c->mode == KEEP && c->sent == 0) {
					if (send(c->fd, whole, sizeof(whole) - 1, MSG_NOSIGNAL) > 0)
						c->sent = sizeof(whole) - 1;
				}
			}
		}
	}
	return NULL;
}

/* One blocking HTTP/1.1 call on a new connection from 127.0.0.1; returns the
 * status (0 on failure) and its time in *us. */
static int probe(const char *req, size_t len, long long *us)
{
	long long t0 = now_us();
	char buf[8192];
	size_t got = 0;
	int fd, status = 0;

	if ((fd = dial(0x7f000001u, 0)) < 0)
		goto out;
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		goto out;
	/* Read to the end of the answer: the probes ask for Connection: close. */
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= sizeof(buf) - 1)
			got = 64; /* keep the status line, drop the rest */
	}
	buf[got] = '\0';
	if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
		status = atoi(buf + 9);
out:
	if (fd >= 0)
		close(fd);
	*us = now_us() - t0;
	return status;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static long long pct(long long *v, int n, int p)
{
	if (n == 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_ll);
	return v[(n - 1) * p / 100];
}

/* The per-address cap: F idle connections from one further address, held
 * for 1.5 s (past the server's grace for a connection without a request),
 * then F more from it; how many of the second F the server refused (closed,
 * or answered 429) within a second. */
static int flood(int f)
{
	int *fds = calloc((size_t)f * 2, sizeof(int)), i, refused = 0;
	long long until;

	for (i = 0; i < f; i++)
		fds[i] = dial(0x7f000002u + (unsigned)naddrs, 1);
	usleep(2500000);
	for (i = f; i < 2 * f; i++)
		fds[i] = dial(0x7f000002u + (unsigned)naddrs, 1);
	until = now_us() + 1000000;
	while (now_us() < until) {
		struct pollfd pf[1];

		for (i = f; i < 2 * f; i++) {
			char buf[256];
			ssize_t n;

			if (fds[i] < 0)
				continue;
			pf[0].fd = fds[i];
			pf[0].events = POLLIN;
			if (poll(pf, 1, 0) <= 0)
				continue;
			n = recv(fds[i], buf, sizeof(buf) - 1, 0);
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0 || (buf[n] = '\0', strstr(buf, " 429 ")))
				refused++;
			close(fds[i]);
			fds[i] = -1;
		}
		usleep(10000);
	}
	for (i = 0; i < 2 * f; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return refused;
}

int main(int argc, char **argv)
{
	const char *key = NULL, *model = "m";
	int secs = 10, probes = 400, f = 0, i, nh = 0, nv = 0, ok = 0, held;
	long long *th, *tv, max = 0, start;
	char v1[2048], hl[256];
	struct rlimit rl;
	pthread_t th_attack;
	int v1len, hllen;

	nconns = 2000;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			break;
		if (!strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--conns"))
			nconns = atoi(v);
		else if (!strcmp(a, "--addrs"))
			naddrs = atoi(v);
		else if (!strcmp(a, "--secs"))
			secs = atoi(v);
		else if (!strcmp(a, "--probes"))
			probes = atoi(v);
		else if (!strcmp(a, "--key"))
			key = v;
		else if (!strcmp(a, "--model"))
			model = v;
		else if (!strcmp(a, "--flood"))
			f = atoi(v);
		else
			break;
		i++;
	}
	if (i < argc || port <= 0 || nconns < 0 || naddrs < 1) {
		fprintf(stderr, "usage: hostile --port P [--conns N] [--addrs A] [--secs S] "
				"[--probes M] [--key KEY --model NAME] [--flood F]\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	epfd = epoll_create1(0);
	conns = calloc((size_t)nconns + 1, sizeof(*conns));
	for (i = 0; i < nconns; i++) {
		conns[i].mode = (enum mode)(i % 3);
		conns[i].addr = i % naddrs;
		hconn_open(&conns[i]);
	}
	reopened = 0;
	pthread_create(&th_attack, NULL, attack, NULL);
	sleep(2); /* every connection up, the keep ones answered and idle */

	hllen = snprintf(hl, sizeof(hl),
			 "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	if (key) {
		char body[512];
		int bl = snprintf(body, sizeof(body),
				  "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
				  "\"hello\"}],\"max_tokens\":16}",
				  model);

		v1len = snprintf(
			v1, sizeof(v1),
			"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %d\r\n\r\n%s",
			key, bl, body);
	} else {
		v1len = 0;
	}
	th = calloc((size_t)probes, sizeof(*th));
	tv = calloc((size_t)probes, sizeof(*tv));
	start = now_us();
	for (i = 0; i < probes && now_us() - start < (long long)secs * 1000000; i++) {
		long long us;
		int st;

		if (key && (i & 1)) {
			st = probe(v1, (size_t)v1len, &us);
			tv[nv++] = us;
		} else {
			st = probe(hl, (size_t)hllen, &us);
			th[nh++] = us;
		}
		if (st == 200)
			ok++;
		else
			fprintf(stderr, "probe %d: status %d after %lld us\n", i, st, us);
		if (us > max)
			max = us;
	}
	for (held = 0, i = 0; i < nconns; i++)
		if (conns[i].fd >= 0)
			held++;
	{
		int refused = f > 0 ? flood(f) : 0;

		stop_flag = 1;
		pthread_join(th_attack, NULL);
		printf("RESULT conns=%d held=%d probes=%d ok=%d health_p50=%lld health_p99=%lld "
		       "v1_p50=%lld v1_p99=%lld max=%lld reopened=%ld flood=%d flood_refused=%d\n",
		       nconns, held, nh + nv, ok, pct(th, nh, 50), pct(th, nh, 99), pct(tv, nv, 50),
		       pct(tv, nv, 99), max, reopened, f, refused);
	}
	return ok == nh + nv ? 0 : 1;
}
