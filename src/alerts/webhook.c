/* webhook.c - budget alert webhooks: where they may go, the signature, the
 * background thread and its queue, delivery with retries, and the org's
 * webhook settings; see alerts_internal.h and alerts.h. */
#include "alerts/alerts_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/tokens.h"
#include "store/db.h"

#define QUEUE_MAX 1024

static tg_secrets_t box;
static int have_box;

/* ------------------------------------------- where webhooks may go */

/* Webhooks are set by org admins, who are tenants, not operators: without
 * this check one could make the server POST into its own network (cloud
 * metadata, admin ports on loopback) and read the outcome in the delivery
 * log. Off: only public addresses, checked at connect time on the address
 * libcurl resolved (a name that resolves, or later re-resolves, to a private
 * address is refused too). */
static atomic_int private_ok;

void alerts_allow_private(int yes)
{
	atomic_store(&private_ok, yes ? 1 : 0);
}

static int v4_private(uint32_t a) /* host order */
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
	       (a & 0xffc00000u) == 0x64400000u || /* 100.64/10, carrier NAT */
	       (a & 0xffff0000u) == 0xa9fe0000u || /* 169.254/16, link-local, metadata */
	       (a & 0xfff00000u) == 0xac100000u || /* 172.16/12 */
	       (a & 0xffffff00u) == 0xc0000000u || /* 192.0.0/24 */
	       (a & 0xffff0000u) == 0xc0a80000u || /* 192.168/16 */
	       (a & 0xfffe0000u) == 0xc6120000u || /* 198.18/15 */
	       (a >> 28) >= 0xe;                   /* multicast, reserved, broadcast */
}

static uint32_t v4_at(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int alerts_addr_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = {
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
		};
		static const unsigned char nat64[12] = {
			0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0
		};
		static const unsigned char zero[12] = { 0 };

		/* An IPv4 address inside: ::ffff:a.b.c.d, NAT64's 64:ff9b::a.b.c.d
		 * (which reaches a.b.c.d), 6to4's 2002:aabb:ccdd::. */
		if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
			return v4_private(v4_at(b + 12));
		if (b[0] == 0x20 && b[1] == 0x02)
			return v4_private(v4_at(b + 2));
		return memcmp(b, zero, 12) == 0 || /* ::/96: ::, ::1, ::a.b.c.d */
		       (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff &&
			b[3] == 0x9b) || /* 64:ff9b::/32 */
		       (b[0] == 0x01 && b[1] == 0 && !b[2] && !b[3] && !b[4] && !b[5] && !b[6] &&
			!b[7]) ||                                 /* 100::/64, discard */
		       (b[0] & 0xfe) == 0xfc ||                   /* fc00::/7, unique local */
		       (b[0] == 0xfe && (b[1] & 0x80) == 0x80) || /* fe80::/10, fec0::/10 */
		       b[0] == 0xff;                              /* multicast */
	}
	return 1; /* nothing else is ever a webhook's address */
}

struct dest {
	int refused; /* a resolved address was not public */
	char addr[INET6_ADDRSTRLEN];
};

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct dest *d = ud;

	if (purpose == CURLSOCKTYPE_IPCXN && !atomic_load(&private_ok) &&
	    alerts_addr_private(&a->addr)) {
		const void *ip =
			a->family == AF_INET6 ?
				(const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr :
				(const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;

		d->refused = 1;
		if (!inet_ntop(a->family, ip, d->addr, sizeof(d->addr)))
			snprintf(d->addr, sizeof(d->addr), "?");
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* The host of an http(s) URL when it is an IP address, read the way libcurl
 * reads it (so 2130706433, 0x7f.1 and 127.1 are 127.0.0.1 here too). */
static int url_ip(const char *url, struct sockaddr_storage *ss)
{
	CURLU *u = curl_url();
	char *host = NULL, *pct;
	int ok = 0;

	memset(ss, 0, sizeof(*ss));
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
		if (host[0] == '[') {
			host[strcspn(host, "]")] = '\0';
			if ((pct = strchr(host, '%'))) /* a zone id */
				*pct = '\0';
			ss->ss_family = AF_INET6;
			ok = inet_pton(AF_INET6, host + 1,
				       &((struct sockaddr_in6 *)ss)->sin6_addr) == 1;
		} else {
			ss->ss_family = AF_INET;
			ok = inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1;
		}
	}
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* ------------------------------------------------- validation, signing */

int alerts_check_url(const char *url, const char **why)
{
	struct sockaddr_storage ss;
	const char *p, *host;
	size_t n = url ? strlen(url) : 0;

	if (n == 0) {
		*why = "Enter the webhook URL.";
		return TG_EINVAL;
	}
	if (n > ALERTS_URL_MAX) {
		*why = "The webhook URL is too long (at most 512 characters).";
		return TG_EINVAL;
	}
	for (p = url; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why = "The webhook URL may not contain spaces, line breaks or control "
			       "characters.";
			return TG_EINVAL;
		}
	}
	if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else {
		*why = "The webhook URL must start with http:// or https://.";
		return TG_EINVAL;
	}
	if (!*host || *host == '/' || *host == '?' || *host == '#' || *host == ':' ||
	    *host == '@') {
		*why = "The webhook URL needs a host name, e.g. "
		       "https://hooks.example.com/tollgate.";
		return TG_EINVAL;
	}
	if (!atomic_load(&private_ok) && url_ip(url, &ss) &&
	    alerts_addr_private((struct sockaddr *)&ss)) {
		*why = "The webhook URL points at a loopback, private or link-local address. "
		       "Only public addresses are allowed unless the server's operator sets "
		       "webhook_private_ok = 1.";
		return TG_EINVAL;
	}
	return TG_OK;
}

void alerts_sign(const char *secret, const void *body, size_t n, char out[ALERTS_SIG_LEN + 1])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, body, n);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(out, "sha256=", 7);
	sodium_bin2hex(out + 7, 65, mac, sizeof(mac));
	sodium_memzero(&st, sizeof(st));
}

/* ------------------------------------------------------------- queue */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct webhook_job *q_head, *q_tail;
static size_t q_len;
static atomic_int running;
static atomic_int stopping;
static pthread_t worker;
static webhook_job_fn run_job;

void webhook_enqueue(enum webhook_job_type type, int64_t org_id, int64_t key_id, int64_t value,
		     int64_t balance)
{
	struct webhook_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->type = type;
	j->org_id = org_id;
	j->key_id = key_id;
	j->value = value;
	j->balance = balance;
	j->at = time_now();
	pthread_mutex_lock(&q_mu);
	if (q_len >= QUEUE_MAX || !atomic_load(&running)) {
		int full = q_len >= QUEUE_MAX;

		pthread_mutex_unlock(&q_mu);
		free(j);
		if (full)
			log_warn("budget alerts: queue full, an alert check was dropped");
		return;
	}
	if (q_tail)
		q_tail->next = j;
	else
		q_head = j;
	q_tail = j;
	q_len++;
	pthread_cond_signal(&q_cv);
	pthread_mutex_unlock(&q_mu);
}

/* -------------------------------------------------------------- webhook */

static int xfer_cb(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	return atomic_load(&stopping) ? 1 : 0;
}

static size_t discard_cb(char *p, size_t size, size_t n, void *u)
{
	return size * n;
}

/* One POST; *status gets the HTTP status (0 when none), err a short reason. */
static int post_once(const char *url, const char *body, const char *sig, long *status, char *err,
		     size_t errlen)
{
	struct curl_slist *h = NULL, *t;
	char sighdr[ALERTS_SIG_LEN + 40];
	struct dest d = { 0, "" };
	CURL *c = curl_easy_init();
	CURLcode cc;
	int rc = TG_EIO;

	*status = 0;
	err[0] = '\0';
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return TG_ENOMEM;
	}
	snprintf(sighdr, sizeof(sighdr), "X-Tollgate-Signature: %s", sig);
	if (!(t = curl_slist_append(h, "Content-Type: application/json")) || !(h = t) ||
	    !(t = curl_slist_append(h, sighdr)) || !(h = t) ||
	    !(t = curl_slist_append(h, "X-Tollgate-Event: budget.threshold_crossed")) || !(h = t) ||
	    !(t = curl_slist_append(h, "Expect:")) || !(h = t)) {
		snprintf(err, errlen, "out of memory");
		rc = TG_ENOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_USERAGENT, "Tollgate/" TG_VERSION);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ALERTS_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &d);
	/* Straight to the receiver: through a proxy from the environment the
	 * check above would only ever see the proxy's address. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK && d.refused) {
		/* The address stays in the server's log: the delivery log is the
		 * tenant's, and must not turn into a resolver for internal names. */
		log_warn("budget alerts: a webhook host resolved to %s, not a public address; "
			 "not delivered (webhook_private_ok)",
			 d.addr);
		snprintf(err, errlen,
			 "refused: the host resolves to an address that is not public");
		rc = TG_EPERM;
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s",
			 cc == CURLE_OPERATION_TIMEDOUT ? "timed out after 5 s" :
							  curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status < 300)
		rc = TG_OK;
	else
		snprintf(err, errlen, "answered HTTP %ld", *status);
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

/* Sleep up to ms, waking early when the thread is asked to stop. */
static void backoff(int ms)
{
	struct timespec ts;

	time_deadline(&ts, (int64_t)ms * 1000);
	pthread_mutex_lock(&q_mu);
	while (!atomic_load(&stopping))
		if (pthread_cond_timedwait(&q_cv, &q_mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&q_mu);
}

static void record_attempt(int64_t org_id, const char *event_id, const char *kind, int attempt,
			   long status, int ok, const char *err, int64_t ms)
{
	tg_stmt *st = db_stmt("INSERT INTO alert_deliveries (org_id, event_id, kind, attempt,"
			      " status, ok, error, duration_ms, created_at) VALUES (:o, :e, :k,"
			      " :a, :s, :ok, :err, :ms, :now)");

	if (!st || db_bind_int64(st, ":o", org_id) || db_bind_text(st, ":e", event_id) ||
	    db_bind_text(st, ":k", kind) || db_bind_int64(st, ":a", attempt) ||
	    db_bind_int64(st, ":s", status) || db_bind_int64(st, ":ok", ok) ||
	    db_bind_text(st, ":err", err) || db_bind_int64(st, ":ms", ms) ||
	    db_bind_int64(st, ":now", time_now()) || db_exec_stmt(st))
		log_warn("budget alerts: could not record a delivery attempt for org %lld",
			 (long long)org_id);
}

/* Deliver an event to the org's webhook, if it has one. */
void webhook_deliver(int64_t org_id, const char *event_id, const char *kind, const char *body)
{
	static const int waits_ms[ALERTS_ATTEMPTS - 1] = { 1000, 3000 };
	tg_stmt *st = db_stmt("SELECT url, secret FROM alert_webhooks WHERE org_id = :o");
	char url[ALERTS_URL_MAX + 1], sig[ALERTS_SIG_LEN + 1], err[160];
	char *sealed = NULL, *secret = NULL;
	size_t secret_n = 0;
	int attempt, rc = TG_EIO;

	if (!st || db_bind_int64(st, ":o", org_id) || db_step(st) != DB_ROW) {
		db_done(st);
		return;
	}
	snprintf(url, sizeof(url), "%s", db_col_text(st, 0));
	sealed = strdup(db_col_text(st, 1));
	db_done(st);
	if (!sealed || !have_box || secrets_open(&box, sealed, &secret, &secret_n) != TG_OK) {
		record_attempt(org_id, event_id, kind, 1, 0, 0,
			       "the webhook secret could not be read", 0);
		goto out;
	}
	alerts_sign(secret, body, strlen(body), sig);
	/* A refused address is not retried: it would be refused again. */
	for (attempt = 1;
	     attempt <= ALERTS_ATTEMPTS && rc != TG_OK && rc != TG_EPERM && !atomic_load(&stopping);
	     attempt++) {
		int64_t t0;
		long status = 0;

		if (attempt > 1)
			backoff(waits_ms[attempt - 2]);
		if (atomic_load(&stopping))
			break;
		t0 = time_mono_us();
		rc = post_once(url, body, sig, &status, err, sizeof(err));
		record_attempt(org_id, event_id, kind, attempt, status, rc == TG_OK,
			       rc == TG_OK ? "" : err, (time_mono_us() - t0) / 1000);
	}
	if (rc != TG_OK)
		log_warn("budget alerts: webhook of org %lld failed after %d attempts",
			 (long long)org_id, attempt - 1);
out:
	if (secret)
		secrets_plain_free(secret, secret_n);
	free(sealed);
}

/* --------------------------------------------------------------- worker */

static void *worker_main(void *arg)
{
	for (;;) {
		struct webhook_job *j;

		pthread_mutex_lock(&q_mu);
		while (!atomic_load(&stopping) && !q_head)
			pthread_cond_wait(&q_cv, &q_mu);
		if (atomic_load(&stopping)) {
			pthread_mutex_unlock(&q_mu);
			break;
		}
		j = q_head;
		q_head = j->next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
		pthread_mutex_unlock(&q_mu);
		run_job(j);
		free(j);
	}
	db_close_thread();
	return NULL;
}

int webhook_worker_running(void)
{
	return atomic_load(&running);
}

int webhook_worker_start(webhook_job_fn run)
{
	if (atomic_load(&running))
		return TG_OK;
	run_job = run;
	atomic_store(&stopping, 0);
	atomic_store(&running, 1);
	if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
		atomic_store(&running, 0);
		log_warn("budget alerts: could not start the delivery thread; webhooks are off");
		return TG_ENOMEM;
	}
	return TG_OK;
}

void webhook_worker_stop(void)
{
	struct webhook_job *j;

	if (atomic_load(&running)) {
		pthread_mutex_lock(&q_mu);
		atomic_store(&running, 0);
		atomic_store(&stopping, 1);
		pthread_cond_broadcast(&q_cv);
		pthread_mutex_unlock(&q_mu);
		pthread_join(worker, NULL);
	}
	pthread_mutex_lock(&q_mu);
	while ((j = q_head)) {
		q_head = j->next;
		free(j);
	}
	q_tail = NULL;
	q_len = 0;
	pthread_mutex_unlock(&q_mu);
}

void webhook_init(const tg_secrets_t *secrets)
{
	sodium_memzero(&box, sizeof(box));
	memcpy(box.box_key, secrets->box_key, sizeof(box.box_key));
	have_box = 1;
	/* Reference counted by libcurl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_error("budget alerts: libcurl could not be initialised");
}

/* ---------------------------------------------------- webhook settings */

/* A new secret, sealed for storage. */
static int new_secret(char out[ALERTS_SECRET_LEN + 1], char **sealed)
{
	int rc;

	memcpy(out, "whsec_", 6);
	if ((rc = tokens_random(out + 6, ALERTS_SECRET_LEN + 1 - 6)))
		return rc;
	if (!have_box)
		return TG_EINVAL;
	return secrets_seal(&box, out, strlen(out), sealed);
}

int alerts_webhook_set(int64_t org_id, const char *url, char secret_out[ALERTS_SECRET_LEN + 1],
		       int *made, const char **why)
{
	tg_stmt *st;
	char *sealed = NULL;
	int rc;

	secret_out[0] = '\0';
	*made = 0;
	if ((rc = alerts_check_url(url, why)))
		return rc;
	st = db_stmt("UPDATE alert_webhooks SET url = :u, updated_at = :now WHERE org_id = :o");
	if (!st || db_bind_text(st, ":u", url) || db_bind_int64(st, ":now", time_now()) ||
	    db_bind_int64(st, ":o", org_id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	if (db_changes() > 0)
		return TG_OK;
	if ((rc = new_secret(secret_out, &sealed)))
		goto out;
	st = db_stmt("INSERT INTO alert_webhooks (org_id, url, secret, updated_at)"
		     " VALUES (:o, :u, :s, :now)");
	if (!st || db_bind_int64(st, ":o", org_id) || db_bind_text(st, ":u", url) ||
	    db_bind_text(st, ":s", sealed) || db_bind_int64(st, ":now", time_now())) {
		rc = TG_EDB;
		goto out;
	}
	if ((rc = db_exec_stmt(st)) == TG_OK)
		*made = 1;
out:
	if (rc)
		sodium_memzero(secret_out, ALERTS_SECRET_LEN + 1);
	free(sealed);
	return rc;
}

int alerts_webhook_rotate(int64_t org_id, char secret_out[ALERTS_SECRET_LEN + 1])
{
	tg_stmt *st;
	char *sealed = NULL;
	int rc;

	secret_out[0] = '\0';
	if ((rc = new_secret(secret_out, &sealed)))
		goto out;
	st = db_stmt("UPDATE alert_webhooks SET secret = :s, updated_at = :now WHERE org_id = :o");
	if (!st || db_bind_text(st, ":s", sealed) || db_bind_int64(st, ":now", time_now()) ||
	    db_bind_int64(st, ":o", org_id)) {
		rc = TG_EDB;
		goto out;
	}
	rc = db_exec_stmt(st);
	if (rc == TG_OK && db_changes() == 0)
		rc = TG_ENOTFOUND;
out:
	if (rc)
		sodium_memzero(secret_out, ALERTS_SECRET_LEN + 1);
	free(sealed);
	return rc;
}

int alerts_webhook_remove(int64_t org_id)
{
	tg_stmt *st = db_stmt("DELETE FROM alert_webhooks WHERE org_id = :o");
	int rc;

	if (!st || db_bind_int64(st, ":o", org_id))
		return TG_EDB;
	rc = db_exec_stmt(st);
	if (rc == TG_OK && db_changes() == 0)
		rc = TG_ENOTFOUND;
	return rc;
}

int alerts_webhook_get(int64_t org_id, char url[ALERTS_URL_MAX + 1])
{
	tg_stmt *st = db_stmt("SELECT url FROM alert_webhooks WHERE org_id = :o");
	int rc = TG_ENOTFOUND;

	url[0] = '\0';
	if (!st || db_bind_int64(st, ":o", org_id))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		snprintf(url, ALERTS_URL_MAX + 1, "%s", db_col_text(st, 0));
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}
