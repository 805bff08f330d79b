/* passthrough.c - an unmetered HTTP pass-through for the benchmarks.
 *
 *   passthrough LISTEN UPSTREAM_URL
 *
 * The same parts as the gateway and nothing else: CivetWeb (a thread per
 * connection, keep-alive) in front, one reused libcurl easy handle per worker
 * thread behind. Every POST body is forwarded to UPSTREAM_URL and the
 * answer's status, Content-Type and body are sent back. No key check, no JSON,
 * no ledger: run.sh measures it beside the gateway so that the report can tell
 * what the design costs (two sockets and two thread wake-ups per call) from
 * what metering costs. Non-stream answers only; bodies up to 1 MiB.
 */
#include <civetweb.h>
#include <pthread.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MAX (1 << 20)

static const char *upstream;
static __thread CURL *curl;
static __thread char *body; /* BODY_MAX bytes, kept for the thread's life */

struct answer {
	char *data;
	size_t len, cap;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct answer *a = ud;
	size_t len = size * n;

	if (a->len + len > BODY_MAX)
		return 0;
	if (a->len + len > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		char *grown;

		while (cap < a->len + len)
			cap *= 2;
		if (!(grown = realloc(a->data, cap)))
			return 0;
		a->data = grown;
		a->cap = cap;
	}
	memcpy(a->data + a->len, p, len);
	a->len += len;
	return len;
}

static int fail(struct mg_connection *conn, int status, const char *why)
{
	mg_printf(conn,
		  "HTTP/1.1 %d Error\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
		  status, strlen(why), why);
	return status;
}

static int forward(struct mg_connection *conn, void *ud)
{
	struct answer a = { 0 };
	struct curl_slist *hdrs = NULL;
	char *ctype = NULL;
	long status = 0;
	int n = 0, r;

	(void)ud;
	if (!body && !(body = malloc(BODY_MAX)))
		return fail(conn, 500, "out of memory");
	while (n < BODY_MAX && (r = mg_read(conn, body + n, (size_t)(BODY_MAX - n))) > 0)
		n += r;
	if (!curl) {
		curl = curl_easy_init();
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(curl, CURLOPT_URL, upstream);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)n);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
	r = curl_easy_perform(curl) == CURLE_OK;
	curl_slist_free_all(hdrs);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	if (!r) {
		free(a.data);
		return fail(conn, 502, "upstream failed");
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
	mg_printf(conn, "HTTP/1.1 %ld OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		  status, ctype ? ctype : "application/octet-stream", a.len);
	mg_write(conn, a.data, a.len);
	free(a.data);
	return (int)status;
}

int main(int argc, char **argv)
{
	/* clang-format off: name and value pairs */
	const char *options[] = {
		"listening_ports", NULL, "num_threads", "64", "enable_keep_alive", "yes",
		"tcp_nodelay",     "1",  NULL,
	};
	/* clang-format on */

	struct mg_callbacks cb;
	struct mg_context *ctx;
	struct mg_server_port port;
	sigset_t set;
	int sig;

	if (argc != 3) {
		fprintf(stderr, "usage: passthrough LISTEN UPSTREAM_URL\n");
		return 2;
	}
	options[1] = argv[1];
	upstream = argv[2];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&cb, 0, sizeof(cb));
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!(ctx = mg_start(&cb, NULL, options)) || mg_get_server_ports(ctx, 1, &port) < 1) {
		fprintf(stderr, "passthrough: cannot listen on %s\n", argv[1]);
		return 1;
	}
	mg_set_request_handler(ctx, "/", forward, NULL);
	printf("listening on 127.0.0.1:%d\n", port.port);
	fflush(stdout);
	sigwait(&set, &sig);
	mg_stop(ctx);
	curl_global_cleanup();
	return 0;
}
