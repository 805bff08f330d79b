/* bench.c - a small HTTP load client for Tollgate's benchmarks.
 *
 * Three modes, all POSTing one chat completion body to --url:
 *
 *   load (default)  --threads N workers, each reusing one libcurl easy handle
 *                   (keep-alive, TCP_NODELAY), run --requests N in total or for
 *                   --duration S seconds. Every request's latency (µs) is
 *                   recorded; p50/p90/p99/max and requests/second are printed.
 *   --stream        the same, with "stream": true; also records the time to
 *                   first byte (first body byte handed to the write callback).
 *   --open-streams K
 *                   opens K streaming requests at once (one thread, a curl
 *                   multi handle), prints "OPEN K" as soon as every one has
 *                   received its first body byte, then waits for them all to
 *                   finish. Use a provider that streams slowly (many chunks
 *                   with an interval) so that the streams stay open a while.
 *
 * --warmup N sends N unmeasured requests per worker first, on the same
 * connection. --header 'Name: value' (repeatable) adds request headers, e.g.
 * the fake provider's x-fake-* knobs; --key K adds "Authorization: Bearer K".
 *
 * Output: a human summary on stderr and one machine-readable line on stdout:
 *   RESULT label=L ok=N errors=E seconds=S rps=R p50=.. p90=.. p99=.. max=..
 *          [ttfb_p50=.. ttfb_p90=.. ttfb_p99=.. ttfb_max=..] warm=W
 * (latencies in µs). A non-2xx answer or a transport error counts as an
 * error and its latency is not recorded. Exit status 0 when at least one
 * request succeeded and none failed, 1 otherwise, 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 32

struct opts {
	const char *url;
	const char *key;
	const char *model;
	const char *label;
	const char *body; /* overrides the generated body */
	const char *headers[MAX_HEADERS];
	int nheaders;
	long threads;
	long requests;
	double duration;
	long max_tokens;
	long warmup;
	long open_streams;
	long timeout_s;
	int stream;
};

static struct opts o = {
	.model = "bench-chat",
	.label = "bench",
	.threads = 1,
	.max_tokens = 16,
	.timeout_s = 60,
};

static const char *body;
static char body_buf[1024];
static atomic_long next_req; /* count mode: requests handed out */
static atomic_long warm_done;
static int64_t deadline_us; /* duration mode: stop starting requests after this */
static pthread_barrier_t warm_barrier, start_barrier;

struct sample_buf {
	int64_t *v;
	size_t n, cap;
};

struct worker {
	pthread_t tid;
	struct sample_buf lat, ttfb;
	long ok, errors;
	char last_error[256];
	int64_t end_us;
};

struct xfer {
	CURL *h;
	int64_t start_us;
	int64_t first_us;  /* 0 until the first body byte */
	long first_status; /* the HTTP status when that byte came */
	size_t bytes;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int push(struct sample_buf *b, int64_t v)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		int64_t *p = realloc(b->v, cap * sizeof(*p));

		if (!p)
			return -1;
		b->v = p;
		b->cap = cap;
	}
	b->v[b->n++] = v;
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	(void)p;
	if (len && !x->first_us) {
		x->first_us = now_us();
		if (x->h)
			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->first_status);
	}
	x->bytes += len;
	return len;
}

static struct curl_slist *make_headers(void)
{
	struct curl_slist *h = NULL, *t;
	char auth[1024];
	int i;

	h = curl_slist_append(h, "Content-Type: application/json");
	h = h ? curl_slist_append(h, "Expect:") : NULL;
	if (h && o.key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o.key);
		t = curl_slist_append(h, auth);
		h = t;
	}
	for (i = 0; h && i < o.nheaders; i++)
		h = curl_slist_append(h, o.headers[i]);
	return h;
}

static CURL *make_handle(struct curl_slist *hdrs, struct xfer *x)
{
	CURL *e = curl_easy_init();

	if (!e)
		return NULL;
	x->h = e;
	curl_easy_setopt(e, CURLOPT_URL, o.url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, o.timeout_s);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	/* Keep-alive is libcurl's default for a reused easy handle. */
	return e;
}

/* One request; 0 on a 2xx answer. */
static int one(CURL *e, struct xfer *x, char *err, size_t errlen)
{
	CURLcode cc;
	long status = 0;

	x->start_us = now_us();
	x->first_us = 0;
	x->bytes = 0;
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(cc));
		return -1;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		snprintf(err, errlen, "HTTP %ld", status);
		return -1;
	}
	return 0;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	struct curl_slist *hdrs = make_headers();
	struct xfer x;
	CURL *e;
	long i;

	memset(&x, 0, sizeof(x));
	e = hdrs ? make_handle(hdrs, &x) : NULL;
	for (i = 0; e && i < o.warmup; i++) {
		if (one(e, &x, w->last_error, sizeof(w->last_error)) == 0)
			atomic_fetch_add(&warm_done, 1);
	}
	/* All warm-ups are done; then main sets the clock and the deadline. */
	pthread_barrier_wait(&warm_barrier);
	pthread_barrier_wait(&start_barrier);
	if (!e) {
		snprintf(w->last_error, sizeof(w->last_error), "could not set up a curl handle");
		w->errors++;
		w->end_us = now_us();
		curl_slist_free_all(hdrs);
		return NULL;
	}
	for (;;) {
		int64_t end;

		if (o.requests > 0) {
			if (atomic_fetch_add(&next_req, 1) >= o.requests)
				break;
		} else if (now_us() >= deadline_us) {
			break;
		}
		if (one(e, &x, w->last_error, sizeof(w->last_error)) != 0) {
			w->errors++;
			continue;
		}
		end = now_us();
		w->ok++;
		if (push(&w->lat, end - x.start_us) ||
		    (o.stream && push(&w->ttfb, (x.first_us ? x.first_us : end) - x.start_us))) {
			snprintf(w->last_error, sizeof(w->last_error), "out of memory");
			break;
		}
	}
	w->end_us = now_us();
	curl_easy_cleanup(e);
	curl_slist_free_all(hdrs);
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const int64_t *v, size_t n, double p)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static int64_t *merge(struct worker *w, long nw, int ttfb, size_t *n_out)
{
	size_t n = 0, k = 0;
	int64_t *all;
	long i;

	for (i = 0; i < nw; i++)
		n += ttfb ? w[i].ttfb.n : w[i].lat.n;
	all = malloc((n ? n : 1) * sizeof(*all));
	if (!all)
		return NULL;
	for (i = 0; i < nw; i++) {
		struct sample_buf *b = ttfb ? &w[i].ttfb : &w[i].lat;

		memcpy(all + k, b->v, b->n * sizeof(*all));
		k += b->n;
	}
	qsort(all, n, sizeof(*all), cmp64);
	*n_out = n;
	return all;
}

static int run_load(void)
{
	struct worker *w = calloc((size_t)o.threads, sizeof(*w));
	int64_t start, end = 0;
	long ok = 0, errors = 0, i;
	int64_t *lat, *ttfb = NULL;
	size_t nlat, nttfb = 0;
	double secs;
	const char *last_error = NULL;

	if (!w || pthread_barrier_init(&warm_barrier, NULL, (unsigned)o.threads + 1) ||
	    pthread_barrier_init(&start_barrier, NULL, (unsigned)o.threads + 1)) {
		fprintf(stderr, "bench: out of memory\n");
		return 1;
	}
	for (i = 0; i < o.threads; i++) {
		if (pthread_create(&w[i].tid, NULL, run_worker, &w[i])) {
			fprintf(stderr, "bench: could not start thread %ld\n", i);
			exit(1);
		}
	}
	/* Every worker has done its warm-up and holds a live connection. */
	pthread_barrier_wait(&warm_barrier);
	start = now_us();
	deadline_us = start + (int64_t)(o.duration * 1e6);
	pthread_barrier_wait(&start_barrier);
	for (i = 0; i < o.threads; i++) {
		pthread_join(w[i].tid, NULL);
		ok += w[i].ok;
		errors += w[i].errors;
		if (w[i].end_us > end)
			end = w[i].end_us;
		if (w[i].last_error[0])
			last_error = w[i].last_error;
	}
	secs = (double)(end - start) / 1e6;
	lat = merge(w, o.threads, 0, &nlat);
	if (o.stream)
		ttfb = merge(w, o.threads, 1, &nttfb);
	if (!lat || (o.stream && !ttfb)) {
		fprintf(stderr, "bench: out of memory\n");
		return 1;
	}
	fprintf(stderr,
		"%s: %ld ok, %ld errors in %.2f s (%.0f req/s, %ld threads)\n"
		"  latency µs: p50 %lld  p90 %lld  p99 %lld  max %lld\n",
		o.label, ok, errors, secs, secs > 0 ? (double)ok / secs : 0.0, o.threads,
		(long long)pct(lat, nlat, 50), (long long)pct(lat, nlat, 90),
		(long long)pct(lat, nlat, 99), (long long)(nlat ? lat[nlat - 1] : 0));
	if (o.stream)
		fprintf(stderr, "  first byte µs: p50 %lld  p90 %lld  p99 %lld  max %lld\n",
			(long long)pct(ttfb, nttfb, 50), (long long)pct(ttfb, nttfb, 90),
			(long long)pct(ttfb, nttfb, 99), (long long)(nttfb ? ttfb[nttfb - 1] : 0));
	if (errors && last_error)
		fprintf(stderr, "  last error: %s\n", last_error);
	printf("RESULT label=%s ok=%ld errors=%ld seconds=%.3f rps=%.1f p50=%lld p90=%lld p99=%lld "
	       "max=%lld",
	       o.label, ok, errors, secs, secs > 0 ? (double)ok / secs : 0.0,
	       (long long)pct(lat, nlat, 50), (long long)pct(lat, nlat, 90),
	       (long long)pct(lat, nlat, 99), (long long)(nlat ? lat[nlat - 1] : 0));
	if (o.stream)
		printf(" ttfb_p50=%lld ttfb_p90=%lld ttfb_p99=%lld ttfb_max=%lld",
		       (long long)pct(ttfb, nttfb, 50), (long long)pct(ttfb, nttfb, 90),
		       (long long)pct(ttfb, nttfb, 99), (long long)(nttfb ? ttfb[nttfb - 1] : 0));
	printf(" warm=%ld\n", (long)atomic_load(&warm_done));
	fflush(stdout);
	for (i = 0; i < o.threads; i++) {
		free(w[i].lat.v);
		free(w[i].ttfb.v);
	}
	free(w);
	free(lat);
	free(ttfb);
	return ok > 0 && errors == 0 ? 0 : 1;
}

static int run_open_streams(void)
{
	long k = o.open_streams, i, open = 0, failed_early = 0, ok = 0, errors = 0;
	struct curl_slist *hdrs = make_headers();
	struct xfer *x = calloc((size_t)k, sizeof(*x));
	CURL **e = calloc((size_t)k, sizeof(*e));
	CURLM *m = curl_multi_init();
	int64_t start, open_at = 0, end;
	int running = 1, announced = 0;
	char *seen = calloc((size_t)k, 1);

	if (!hdrs || !x || !e || !m || !seen) {
		fprintf(stderr, "bench: out of memory\n");
		return 1;
	}
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
	start = now_us();
	for (i = 0; i < k; i++) {
		e[i] = make_handle(hdrs, &x[i]);
		if (!e[i]) {
			fprintf(stderr, "bench: could not set up a curl handle\n");
			return 1;
		}
		curl_easy_setopt(e[i], CURLOPT_PRIVATE, (void *)(intptr_t)i);
		/* Each stream on its own connection, as separate clients would be. */
		curl_easy_setopt(e[i], CURLOPT_FRESH_CONNECT, 1L);
		x[i].start_us = start;
		curl_multi_add_handle(m, e[i]);
	}
	while (running) {
		CURLMsg *msg;
		int left;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg == CURLMSG_DONE) {
				long status = 0;

				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
						  &status);
				if (msg->data.result == CURLE_OK && status >= 200 &&
				    status <= 299) {
					ok++;
				} else {
					if (errors++ < 5)
						fprintf(stderr, "  stream failed: %s, HTTP %ld\n",
							msg->data.result == CURLE_OK ?
								"completed" :
								curl_easy_strerror(
									msg->data.result),
							status);
				}
			}
		}
		/* A stream is open once a 2xx answer has sent its first byte. */
		for (i = 0; i < k && !announced; i++) {
			if (x[i].first_us && !seen[i]) {
				seen[i] = 1;
				if (x[i].first_status >= 200 && x[i].first_status <= 299)
					open++;
				else
					failed_early++;
			}
		}
		if (!announced && open == k) {
			announced = 1;
			open_at = now_us();
			printf("OPEN %ld after_us=%lld\n", k, (long long)(open_at - start));
			fflush(stdout);
			fprintf(stderr, "%s: all %ld streams open after %.0f ms\n", o.label, k,
				(double)(open_at - start) / 1000.0);
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	end = now_us();
	if (!announced)
		fprintf(stderr, "%s: only %ld of %ld streams ever opened (%ld refused)\n", o.label,
			open, k, failed_early);
	if (errors > 5)
		fprintf(stderr, "  ... and %ld more failed streams\n", errors - 5);
	fprintf(stderr, "%s: %ld ok, %ld errors; streams lasted %.2f s in all\n", o.label, ok,
		errors, (double)(end - start) / 1e6);
	printf("RESULT label=%s ok=%ld errors=%ld seconds=%.3f open=%ld open_after_us=%lld\n",
	       o.label, ok, errors, (double)(end - start) / 1e6, open,
	       (long long)(announced ? open_at - start : -1));
	fflush(stdout);
	for (i = 0; i < k; i++) {
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(seen);
	free(e);
	free(x);
	return announced && errors == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench --url URL [--key KEY] [--model NAME] [--label L]\n"
		   "             [--threads N] [--requests N | --duration SECONDS] [--warmup N]\n"
		   "             [--stream] [--max-tokens N] [--header 'Name: value']...\n"
		   "             [--open-streams K] [--body JSON] [--timeout SECONDS]\n"
		   "Prints a summary on stderr and a RESULT line (latencies in µs) on stdout.\n");
}

static long num(const char *flag, const char *v, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		fprintf(stderr, "bench: %s wants a number from %ld to %ld\n", flag, min, max);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	int i, rc;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--stream")) {
			o.stream = 1;
			takes = 0;
		} else if (!v) {
			usage(stderr);
			return 2;
		} else if (!strcmp(a, "--url")) {
			o.url = v;
		} else if (!strcmp(a, "--key")) {
			o.key = v;
		} else if (!strcmp(a, "--model")) {
			o.model = v;
		} else if (!strcmp(a, "--label")) {
			o.label = v;
		} else if (!strcmp(a, "--body")) {
			o.body = v;
		} else if (!strcmp(a, "--header")) {
			if (o.nheaders == MAX_HEADERS) {
				fprintf(stderr, "bench: at most %d headers\n", MAX_HEADERS);
				return 2;
			}
			o.headers[o.nheaders++] = v;
		} else if (!strcmp(a, "--threads")) {
			o.threads = num(a, v, 1, 4096);
		} else if (!strcmp(a, "--requests")) {
			o.requests = num(a, v, 1, 100000000L);
		} else if (!strcmp(a, "--duration")) {
			o.duration = (double)num(a, v, 1, 3600);
		} else if (!strcmp(a, "--warmup")) {
			o.warmup = num(a, v, 0, 1000000L);
		} else if (!strcmp(a, "--max-tokens")) {
			o.max_tokens = num(a, v, 1, 1000000L);
		} else if (!strcmp(a, "--open-streams")) {
			o.open_streams = num(a, v, 1, 100000L);
		} else if (!strcmp(a, "--timeout")) {
			o.timeout_s = num(a, v, 1, 3600);
		} else {
			fprintf(stderr, "bench: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		i += takes;
	}
	if (!o.url || (!o.open_streams && !o.requests && o.duration <= 0)) {
		fprintf(stderr, "bench: --url and one of --requests, --duration or --open-streams "
				"are needed\n");
		usage(stderr);
		return 2;
	}
	if (o.open_streams)
		o.stream = 1;
	if (o.body) {
		body = o.body;
	} else {
		body = body_buf;
		snprintf(body_buf, sizeof(body_buf),
			 "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
			 "\"content\":\"hello\"}],"
			 "\"max_tokens\":%ld%s}",
			 o.model, o.max_tokens, o.stream ? ",\"stream\":true" : "");
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "bench: curl_global_init failed\n");
		return 1;
	}
	rc = o.open_streams ? run_open_streams() : run_load();
	curl_global_cleanup();
	return rc;
}
