/* journal.c - the gateway's call journal; see journal.h for the design. */
#include "billing/journal.h"
#include "billing/billing.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "apikeys/apikeys.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "billing/inflight.h"
#include "core/config.h"
#include "store/db.h"

/* TGJ2 is TGJ1 with cache_write, reasoning, attempt and failed_over after the strings;
 * TGJ3 is TGJ2 with the client's address last. Files of each are replayed. */
#define MAGIC "TGJ3"
#define MAGIC_V2 "TGJ2"
#define MAGIC_V1 "TGJ1"
#define MAGIC_PREFIX "TGJ"
#define SUM_LEN 16
#define HEAD_LEN 8 /* magic + payload length */
#define PAYLOAD_MAX 4096
#define NFILES 2
#define FLUSH_WAIT_MS 5000
#define RETRY_MS 200
#define STOP_RETRIES 10
/* Records queued for the writer before callers wait for it: bounds the
 * memory, the holds waiting for their entries and the lag of the pages. */
#define QUEUE_MAX 512
/* A batch gathers for up to GATHER_US after its first record, or until
 * GATHER_MAX records wait (synchronous=full: no gathering, callers wait). */
#define GATHER_US 2000
#define GATHER_MAX 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;    /* the writer waits for records */
static pthread_cond_t applied_cv = PTHREAD_COND_INITIALIZER; /* callers wait for commits */
static pthread_cond_t space_cv = PTHREAD_COND_INITIALIZER;   /* callers wait for queue room */
static pthread_t writer;
static int running, stopping, wait_commit, writer_done, files_broken;
static int fds[NFILES] = { -1, -1 };
static char paths[NFILES][CONFIG_STR_MAX + 32];
static off_t fsize[NFILES]; /* bytes appended to each file since it was emptied */
static int cur;             /* the file appends go to */
static struct call_record *head, **tail = &head;
static uint64_t next_seq, applied_seq, n_records, n_batches, n_queued;

/* ------------------------------------------------------------ encoding */

static int put_i64(buf_t *b, int64_t v)
{
	return buf_append(b, &v, sizeof(v));
}

static int put_str(buf_t *b, const char *s)
{
	size_t n = strlen(s);
	uint16_t len = (uint16_t)n;

	if (n > 0xffff)
		return TG_EINVAL;
	return buf_append(b, &len, sizeof(len)) || buf_append(b, s, n) ? TG_ENOMEM : TG_OK;
}

int journal_encode(const struct call_record *r, buf_t *out)
{
	unsigned char sum[SUM_LEN];
	buf_t p;
	uint32_t len;
	unsigned char flags = (unsigned char)((r->billed ? 1 : 0) | (r->mark_used ? 2 : 0));
	uint64_t seq = r->seq;
	int rc = TG_ENOMEM;

	/* Native byte order: the file is read back only by this binary on this
	 * machine, and only to finish what a crash interrupted. */
	buf_init(&p, PAYLOAD_MAX);
	if (buf_append(&p, &seq, sizeof(seq)) || put_i64(&p, r->created_at) ||
	    put_i64(&p, r->org_id) || put_i64(&p, r->key_id) || put_i64(&p, r->provider_id) ||
	    put_i64(&p, r->stream) || put_i64(&p, r->status) || put_i64(&p, r->prompt) ||
	    put_i64(&p, r->cached) || put_i64(&p, r->completion) || put_i64(&p, r->cost) ||
	    put_i64(&p, r->upstream_ms) || put_i64(&p, r->total_ms) || buf_append(&p, &flags, 1) ||
	    put_str(&p, r->request_id) || put_str(&p, r->endpoint) || put_str(&p, r->model) ||
	    put_str(&p, r->source) || put_str(&p, r->err) || put_i64(&p, r->cache_write) ||
	    put_i64(&p, r->reasoning) || put_i64(&p, r->attempt) || put_i64(&p, r->failed_over) ||
	    put_str(&p, r->client))
		goto out;
	len = (uint32_t)p.len;
	crypto_generichash(sum, SUM_LEN, (const unsigned char *)p.data, p.len, NULL, 0);
	if (buf_append(out, MAGIC, 4) || buf_append(out, &len, sizeof(len)) ||
	    buf_append(out, p.data, p.len) || buf_append(out, sum, SUM_LEN))
		goto out;
	rc = TG_OK;
out:
	buf_free(&p);
	return rc;
}

struct reader {
	const unsigned char *p;
	size_t n, off;
};

static int get_bytes(struct reader *rd, void *dst, size_t n)
{
	if (rd->n - rd->off < n)
		return TG_EINVAL;
	memcpy(dst, rd->p + rd->off, n);
	rd->off += n;
	return TG_OK;
}

static int get_str(struct reader *rd, char *dst, size_t cap)
{
	uint16_t len;

	if (get_bytes(rd, &len, sizeof(len)) || len >= cap || memchr(rd->p + rd->off, 0, len) ||
	    get_bytes(rd, dst, len))
		return TG_EINVAL;
	dst[len] = '\0';
	return TG_OK;
}

int journal_decode(const unsigned char *p, size_t n, struct call_record *r, size_t *used)
{
	unsigned char sum[SUM_LEN], flags = 0;
	struct reader rd;
	uint32_t len;
	int64_t *f[] = { &r->created_at, &r->org_id, &r->key_id,      &r->provider_id,
			 &r->stream,     &r->status, &r->prompt,      &r->cached,
			 &r->completion, &r->cost,   &r->upstream_ms, &r->total_ms };
	size_t i;
	int v1, v2;

	memset(r, 0, sizeof(*r));
	if (n < HEAD_LEN || (memcmp(p, MAGIC, 4) != 0 && memcmp(p, MAGIC_V2, 4) != 0 &&
			     memcmp(p, MAGIC_V1, 4) != 0))
		return TG_EINVAL;
	v1 = memcmp(p, MAGIC_V1, 4) == 0;
	v2 = memcmp(p, MAGIC_V2, 4) == 0;
	memcpy(&len, p + 4, sizeof(len));
	if (len > PAYLOAD_MAX || n - HEAD_LEN < (size_t)len + SUM_LEN)
		return TG_EINVAL;
	crypto_generichash(sum, SUM_LEN, p + HEAD_LEN, len, NULL, 0);
	if (sodium_memcmp(sum, p + HEAD_LEN + len, SUM_LEN) != 0)
		return TG_EINVAL;
	rd.p = p + HEAD_LEN;
	rd.n = len;
	rd.off = 0;
	if (get_bytes(&rd, &r->seq, sizeof(r->seq)))
		return TG_EINVAL;
	for (i = 0; i < TG_ARRAY_LEN(f); i++)
		if (get_bytes(&rd, f[i], sizeof(int64_t)))
			return TG_EINVAL;
	if (get_bytes(&rd, &flags, 1) || get_str(&rd, r->request_id, sizeof(r->request_id)) ||
	    get_str(&rd, r->endpoint, sizeof(r->endpoint)) ||
	    get_str(&rd, r->model, sizeof(r->model)) ||
	    get_str(&rd, r->source, sizeof(r->source)) || get_str(&rd, r->err, sizeof(r->err)) ||
	    (!v1 && (get_bytes(&rd, &r->cache_write, sizeof(int64_t)) ||
		     get_bytes(&rd, &r->reasoning, sizeof(int64_t)) ||
		     get_bytes(&rd, &r->attempt, sizeof(int64_t)) ||
		     get_bytes(&rd, &r->failed_over, sizeof(int64_t)))) ||
	    (!v1 && !v2 && get_str(&rd, r->client, sizeof(r->client))) || rd.off != rd.n ||
	    r->seq == 0 || r->org_id <= 0 || !r->request_id[0] || r->cost < 0)
		return TG_EINVAL;
	if (v1)
		r->attempt = 1;
	r->billed = flags & 1;
	r->mark_used = (flags & 2) != 0;
	*used = HEAD_LEN + len + SUM_LEN;
	return TG_OK;
}

/* ------------------------------------------------------------- applying */

static int insert_request_row(const struct call_record *r, int64_t cost, const char *source,
			      const char *err)
{
	tg_stmt *st = db_stmt(
		"INSERT INTO requests(request_id, created_at, org_id, key_id, endpoint, model,"
		" provider_id, stream, status, prompt_tokens, cached_tokens, completion_tokens,"
		" cost, usage_source, upstream_ms, total_ms, error, cache_write_tokens,"
		" reasoning_tokens, attempt, failed_over, client_ip) VALUES (:rid, :at, :org, :key,"
		" :ep, :model, :prov,"
		" :stream, :status, :pt, :ct, :cpt, :cost, :src, :up, :total, :err, :cw, :rt,"
		" :attempt, :fo, :client)");

	if (!st || db_bind_text(st, ":rid", r->request_id) ||
	    db_bind_int64(st, ":at", r->created_at) || db_bind_int64(st, ":org", r->org_id) ||
	    db_bind_int64(st, ":key", r->key_id) || db_bind_text(st, ":ep", r->endpoint) ||
	    db_bind_text(st, ":model", r->model) || db_bind_int64(st, ":stream", r->stream) ||
	    db_bind_int64(st, ":status", r->status) || db_bind_int64(st, ":pt", r->prompt) ||
	    db_bind_int64(st, ":ct", r->cached) || db_bind_int64(st, ":cpt", r->completion) ||
	    db_bind_int64(st, ":cost", cost) || db_bind_text(st, ":src", source) ||
	    db_bind_int64(st, ":up", r->upstream_ms) || db_bind_int64(st, ":total", r->total_ms) ||
	    db_bind_text(st, ":err", err) || db_bind_int64(st, ":cw", r->cache_write) ||
	    db_bind_int64(st, ":rt", r->reasoning) ||
	    db_bind_int64(st, ":attempt", r->attempt > 0 ? r->attempt : 1) ||
	    db_bind_int64(st, ":fo", r->failed_over ? 1 : 0) ||
	    db_bind_text(st, ":client", r->client))
		return TG_EDB;
	if (r->provider_id > 0 ? db_bind_int64(st, ":prov", r->provider_id) :
				 db_bind_null(st, ":prov"))
		return TG_EDB;
	return db_exec_stmt(st);
}

static int exec_literal(tg_stmt *st)
{
	return st ? db_exec_stmt(st) : TG_EDB;
}

/* One record inside the batch's transaction: its debit (when billed, under
 * the ledger's own savepoint) and its request row (under one of its own).
 * r->billed and r->cost never change; what this attempt did goes to
 * r->debited. A record the ledger refuses for good (a request id already
 * debited, a key that no longer exists) is recorded without its debit,
 * logged; a database error fails the whole batch, which is then retried, so
 * a transient error (disk full, I/O) never drops a debit. */
static int apply_one(struct call_record *r)
{
	const char *source = r->source, *err = r->err;
	int64_t cost = r->billed ? r->cost : 0;
	int rc;

	r->debited = 0;
	if (r->billed && !r->hold.active) {
		/* Rebuilt from the file (or handed over without one): the entry
		 * only needs the org and the key; serial 0 names no in-memory hold. */
		memset(&r->hold, 0, sizeof(r->hold));
		r->hold.org_id = r->org_id;
		r->hold.key_id = r->key_id;
		r->hold.amount = r->cost;
		r->hold.active = 1;
	}
	if (r->billed) {
		rc = ledger_settle_at_tx(&r->hold, r->request_id, r->cost, r->created_at,
					 &r->balance_after);
		if (rc == TG_OK) {
			r->debited = 1;
		} else if (rc == TG_ECONFLICT) {
			log_warn("request %s: already settled; not debiting again", r->request_id);
			cost = 0;
			source = "none";
		} else if (rc == TG_EINVAL) {
			log_error("request %s: the ledger refuses its debit of %lld; recorded "
				  "unbilled",
				  r->request_id, (long long)r->cost);
			cost = 0;
			source = "none";
			err = "the debit could not be written";
		} else {
			goto fail;
		}
	}
	/* The row under its own savepoint: a row the schema refuses must not
	 * take the debit with it. */
	if ((rc = exec_literal(db_stmt("SAVEPOINT journal_row"))))
		goto fail;
	rc = insert_request_row(r, cost, source, err);
	if (rc == TG_OK && r->mark_used)
		rc = apikey_mark_used(r->key_id, r->created_at);
	if (rc == TG_ECONFLICT) {
		log_error("request %s: its request row is refused by the schema; the debit stands",
			  r->request_id);
		exec_literal(db_stmt("ROLLBACK TO journal_row"));
	} else if (rc != TG_OK) {
		goto fail;
	}
	return exec_literal(db_stmt("RELEASE journal_row"));
fail:
	r->debited = 0;
	return rc ? rc : TG_EDB;
}

/* Before a batch's transaction ends without its commit: its holds count
 * their costs again. Done while the write lock is still held, so no other
 * commit can reuse a rolled-back entry id in between. */
static void rearm(struct call_record *list)
{
	struct call_record *r;

	for (r = list; r; r = r->next)
		if (r->billed && r->hold.active && r->hold.serial)
			ledger_hold_settling(&r->hold, r->cost);
}

/* Write a batch (in seq order) in one transaction; update_seq also moves
 * journal_state.applied_seq (records from the files only: a record applied
 * directly has no seq). On failure nothing is written. */
static int apply_batch(struct call_record *list, int update_seq)
{
	struct call_record *r;
	uint64_t last = 0;
	tg_stmt *st;
	int rc;

	if ((rc = db_begin()) != TG_OK)
		return rc;
	for (r = list; r; r = r->next) {
		if ((rc = apply_one(r)))
			goto fail;
		/* A batch is background work that can run for a millisecond or
		 * more: between records, a call woken on this core (its provider
		 * answered, its client sent the next request) runs first instead
		 * of waiting the batch out. This is the gateway's tail latency
		 * when it shares a few cores with its load (c=1 p99 ~1 ms ->
		 * ~0.6 ms in make bench). Not when callers wait for this commit. */
		if (r->next && !wait_commit)
			sched_yield();
		if (r->seq > last)
			last = r->seq;
	}
	if (update_seq) {
		st = db_stmt("UPDATE journal_state SET applied_seq = CASE WHEN applied_seq > :seq"
			     " THEN applied_seq ELSE :seq END WHERE id = 1");
		if (!st || db_bind_int64(st, ":seq", (int64_t)last) || (rc = db_exec_stmt(st)))
			goto fail;
	}
	if ((rc = db_try_commit()))
		goto fail;
	return TG_OK;
fail:
	rearm(list);
	db_rollback();
	return rc ? rc : TG_EDB;
}

/* After the commit: alerts, holds, in-flight ids; frees the list. */
static void finish_batch(struct call_record *list)
{
	struct call_record *r, *next;

	for (r = list; r; r = next) {
		next = r->next;
		if (r->debited && r->hold.serial)
			alerts_after_debit(r->org_id, r->key_id, r->cost, r->balance_after);
		/* A shared hold went with its debit's transaction (ledger_settle_at_tx). */
		if (r->debited && db_is_pg())
			r->hold.active = 0;
		billing()->release(&r->hold);
		if (r->inflight)
			billing()->unclaim_request(r->request_id);
		free(r);
	}
}

/* --------------------------------------------------------------- files */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return TG_EIO;
		p += w;
		n -= (size_t)w;
	}
	return TG_OK;
}

static int read_file(const char *path, buf_t *out)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? TG_OK : TG_EIO;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || buf_append(out, chunk, (size_t)n)) {
			close(fd);
			return TG_EIO;
		}
	}
	close(fd);
	return TG_OK;
}

static int seq_cmp(const void *a, const void *b)
{
	const struct call_record *x = *(struct call_record *const *)a,
				 *y = *(struct call_record *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int read_applied_seq(uint64_t *out)
{
	tg_stmt *st = db_stmt("SELECT applied_seq FROM journal_state WHERE id = 1");
	int rc = TG_EDB;

	if (st && db_step(st) == DB_ROW) {
		*out = (uint64_t)db_col_int64(st, 0);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

/* Every intact record with a seq above `above` in the journal files of
 * data_dir, in seq order (each seq once), as a list the caller frees (or
 * hands to apply_batch). *max_seen gets the largest seq found at all. */
static int load_pending(const char *data_dir, uint64_t above, struct call_record **list_out,
			size_t *count, uint64_t *max_seen, char *err, size_t errlen)
{
	struct call_record **recs = NULL, *list = NULL, **lt = &list;
	size_t n = 0, cap = 0, i;
	int rc = TG_OK, f;

	*list_out = NULL;
	*count = 0;
	*max_seen = 0;
	for (f = 0; f < NFILES && rc == TG_OK; f++) {
		char path[CONFIG_STR_MAX + 32];
		size_t off = 0, used, torn = 0;
		buf_t data;

		snprintf(path, sizeof(path), "%s/calls.journal.%d", data_dir, f);
		buf_init(&data, (size_t)1 << 40);
		if (read_file(path, &data)) {
			snprintf(err, errlen, "cannot read the call journal %s: %s", path,
				 strerror(errno));
			rc = TG_EIO;
		}
		while (rc == TG_OK && off < data.len) {
			struct call_record *r;

			if (n == cap) {
				struct call_record **grown = realloc(recs, (cap ? cap * 2 : 64) *
										   sizeof(*recs));

				if (!grown) {
					rc = TG_ENOMEM;
					break;
				}
				recs = grown;
				cap = cap ? cap * 2 : 64;
			}
			if (!(r = malloc(sizeof(*r)))) {
				rc = TG_ENOMEM;
				break;
			}
			if (journal_decode((const unsigned char *)data.data + off, data.len - off,
					   r, &used) != TG_OK) {
				/* A torn record (a crash or a short write mid-append):
				 * look for the next intact one after it, which the
				 * checksum tells from chance bytes. */
				const char *next = memmem(data.data + off + 1, data.len - off - 1,
							  MAGIC_PREFIX, 3);
				size_t skip = next ? (size_t)(next - (data.data + off)) :
						     data.len - off;

				free(r);
				torn += skip;
				off += skip;
				continue;
			}
			off += used;
			if (r->seq > *max_seen)
				*max_seen = r->seq;
			if (r->seq <= above) {
				free(r);
				continue;
			}
			recs[n++] = r;
		}
		buf_free(&data);
		if (rc == TG_ENOMEM)
			snprintf(err, errlen, "out of memory reading the call journal");
		if (torn)
			log_warn(
				"call journal %s: skipped %zu bytes of torn or corrupt records (no "
				"answer was sent for them)",
				path, torn);
	}
	if (rc == TG_OK && n > 0) {
		qsort(recs, n, sizeof(*recs), seq_cmp);
		for (i = 0; i < n; i++) {
			if (i > 0 && recs[i]->seq == recs[i - 1]->seq) {
				free(recs[i]);
				continue;
			}
			*lt = recs[i];
			lt = &recs[i]->next;
			(*count)++;
		}
		*list_out = list;
	} else {
		for (i = 0; i < n; i++)
			free(recs[i]);
	}
	free(recs);
	return rc;
}

static void list_free(struct call_record *list)
{
	while (list) {
		struct call_record *next = list->next;

		free(list);
		list = next;
	}
}

int journal_pending(const char *data_dir, uint64_t *calls, int64_t *debits)
{
	struct call_record *list = NULL, *r;
	uint64_t applied = 0, max_seen;
	size_t n = 0;
	char err[256];
	int rc;

	*calls = 0;
	*debits = 0;
	if (read_applied_seq(&applied))
		return TG_EDB;
	if ((rc = load_pending(data_dir, applied, &list, &n, &max_seen, err, sizeof(err))))
		return rc;
	for (r = list; r; r = r->next)
		if (r->billed)
			*debits += r->cost;
	*calls = n;
	list_free(list);
	return TG_OK;
}

/* Apply every intact record above applied_seq from both files, in seq order. */
static int replay(const char *data_dir, char *err, size_t errlen)
{
	struct call_record *list = NULL;
	uint64_t max_seen = 0;
	size_t applied = 0;
	int rc, f;

	if (read_applied_seq(&applied_seq)) {
		snprintf(err, errlen, "cannot read the journal state from the database");
		return TG_EDB;
	}
	rc = load_pending(data_dir, applied_seq, &list, &applied, &max_seen, err, errlen);
	if (rc == TG_OK && list) {
		if (apply_batch(list, 1) != TG_OK) {
			snprintf(err, errlen,
				 "cannot apply the %zu calls left in the call journal "
				 "(database error); they stay in the journal files",
				 applied);
			rc = TG_EDB;
		} else {
			log_info("call journal: applied %zu calls finished before the last stop",
				 applied);
			if (read_applied_seq(&applied_seq))
				rc = TG_EDB;
		}
		finish_batch(list);
	} else {
		list_free(list);
	}
	if (rc == TG_OK) {
		for (f = 0; f < NFILES; f++)
			if (ftruncate(fds[f], 0) != 0) {
				snprintf(err, errlen, "cannot truncate the call journal %s",
					 paths[f]);
				rc = TG_EIO;
			}
		next_seq = max_seen > applied_seq ? max_seen : applied_seq;
	}
	return rc;
}

/* -------------------------------------------------------------- writer */

static void *writer_main(void *arg)
{
	struct call_record *batch = NULL;
	uint64_t last = 0;
	int from = 0, failures = 0;

	(void)arg;
	/* Not at a lower priority: the writer takes hold_mu (ledger holds) for
	 * moments, and preempted there it would stall the calls waiting on it. */
	for (;;) {
		struct call_record *r;

		pthread_mutex_lock(&mu);
		if (!batch) {
			while (!head && !stopping)
				pthread_cond_wait(&work_cv, &mu);
			if (head && !stopping && !wait_commit) {
				/* Nobody waits for this commit: let a batch gather for a
				 * moment, so a quiet server writes a few calls per
				 * transaction instead of one (less work beside the calls). */
				struct timespec ts;

				time_deadline(&ts, GATHER_US);
				while (!stopping && n_queued < GATHER_MAX &&
				       pthread_cond_timedwait(&work_cv, &mu, &ts) != ETIMEDOUT)
					;
			}
			if (!head) {
				pthread_mutex_unlock(&mu);
				break;
			}
			batch = head;
			head = NULL;
			tail = &head;
			n_queued = 0;
			pthread_cond_broadcast(&space_cv);
			from = cur;
			cur = (cur + 1) % NFILES;
		}
		pthread_mutex_unlock(&mu);

		for (last = 0, r = batch; r; r = r->next)
			last = r->seq;
		if (apply_batch(batch, 1) != TG_OK) {
			failures++;
			/* 1, 2, 4, 8... then every 64 attempts: the log must not flood. */
			if ((failures & (failures - 1)) == 0 || failures % 64 == 0)
				log_error("call journal: could not write a batch of calls to the "
					  "database (attempt %d); retrying every %d ms",
					  failures, RETRY_MS);
			if (stopping && failures >= STOP_RETRIES) {
				log_error("call journal: giving up at stop; the calls stay in the "
					  "journal and are applied at the next start");
				break;
			}
			nanosleep(&(struct timespec){ 0, RETRY_MS * 1000000L }, NULL);
			continue;
		}
		if (failures)
			log_info("call journal: the database took the waiting calls again after %d "
				 "attempts",
				 failures);
		failures = 0;
		/* Holds and in-flight ids go before the file is emptied: an empty
		 * journal then means every answered call is settled, which is
		 * what tests and operators can observe from outside. */
		finish_batch(batch);
		batch = NULL;
		if (ftruncate(fds[from], 0) != 0)
			log_warn("call journal: cannot truncate %s (%s); replay will skip what is "
				 "applied",
				 paths[from], strerror(errno));
		pthread_mutex_lock(&mu);
		fsize[from] = 0;
		applied_seq = last;
		n_batches++;
		pthread_cond_broadcast(&applied_cv);
		pthread_mutex_unlock(&mu);
	}
	/* Leftovers after giving up: their holds go, the files keep them. */
	pthread_mutex_lock(&mu);
	writer_done = 1;
	if (head) {
		*tail = NULL;
		if (batch) {
			struct call_record *t = batch;

			while (t->next)
				t = t->next;
			t->next = head;
		} else {
			batch = head;
		}
		head = NULL;
		tail = &head;
	}
	pthread_cond_broadcast(&applied_cv);
	pthread_cond_broadcast(&space_cv);
	pthread_mutex_unlock(&mu);
	while (batch) {
		struct call_record *next = batch->next;

		billing()->release(&batch->hold);
		if (batch->inflight)
			billing()->unclaim_request(batch->request_id);
		free(batch);
		batch = next;
	}
	db_close_thread();
	return NULL;
}

/* ---------------------------------------------------------------- public */

int journal_start(const char *data_dir, int wait_for_commit, char *err, size_t errlen)
{
	int f, rc;

	for (f = 0; f < NFILES; f++) {
		if (snprintf(paths[f], sizeof(paths[f]), "%s/calls.journal.%d", data_dir, f) >=
		    (int)sizeof(paths[f])) {
			snprintf(err, errlen, "data directory path is too long");
			return TG_EINVAL;
		}
		fds[f] = open(paths[f], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fds[f] < 0) {
			snprintf(err, errlen, "cannot open the call journal %s: %s", paths[f],
				 strerror(errno));
			return TG_EIO;
		}
	}
	if ((rc = replay(data_dir, err, errlen)))
		return rc;
	wait_commit = wait_for_commit;
	stopping = 0;
	writer_done = 0;
	files_broken = 0;
	cur = 0;
	fsize[0] = fsize[1] = 0; /* replay emptied both */
	if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
		snprintf(err, errlen, "cannot start the call journal's writer thread");
		return TG_EIO;
	}
	running = 1;
	return TG_OK;
}

void journal_stop(void)
{
	int f;

	if (!running)
		return;
	pthread_mutex_lock(&mu);
	stopping = 1;
	pthread_cond_broadcast(&work_cv);
	pthread_cond_broadcast(&space_cv);
	pthread_mutex_unlock(&mu);
	pthread_join(writer, NULL);
	pthread_mutex_lock(&mu);
	running = 0;
	pthread_cond_broadcast(&applied_cv);
	pthread_mutex_unlock(&mu);
	for (f = 0; f < NFILES; f++) {
		if (fds[f] >= 0)
			close(fds[f]);
		fds[f] = -1;
	}
}

/* No writer (the CLI, tests, or after the writer stopped): apply the record
 * now, in its own transaction. It takes no seq: applied_seq only ever covers
 * records written to the files. */
static int submit_inline(struct call_record *r)
{
	int rc;

	r->next = NULL;
	r->seq = 0;
	rc = apply_batch(r, 0);
	finish_batch(r);
	return rc == TG_OK ? TG_OK : TG_EIO;
}

/* Append one encoded record to the active file, under mu. A short or failed
 * write is cut off again, so no later record sits behind a torn one; if even
 * that fails the files are not used again until a restart. */
static int append_record(const buf_t *enc)
{
	if (files_broken)
		return TG_EIO;
	if (write_all(fds[cur], enc->data, enc->len) == TG_OK) {
		fsize[cur] += (off_t)enc->len;
		return TG_OK;
	}
	if (ftruncate(fds[cur], fsize[cur]) != 0) {
		files_broken = 1;
		log_error("call journal: cannot cut a failed write off %s (%s); calls now wait for "
			  "the database instead",
			  paths[cur], strerror(errno));
	}
	return TG_EIO;
}

int journal_submit(struct call_record *r)
{
	char id[BILLING_REQUEST_ID_MAX + 1];
	struct timespec ts;
	buf_t enc;
	uint64_t seq;
	int durable, wait;

	if (!running)
		return submit_inline(r);
	r->next = NULL;
	buf_init(&enc, PAYLOAD_MAX * 2);
	pthread_mutex_lock(&mu);
	/* Back-pressure, bounded: past a second the record is queued anyway (it
	 * is in the file; only memory grows while the database refuses writes). */
	time_deadline(&ts, 1000000);
	while (running && !writer_done && n_queued >= QUEUE_MAX &&
	       pthread_cond_timedwait(&space_cv, &mu, &ts) != ETIMEDOUT)
		;
	if (!running || writer_done) {
		pthread_mutex_unlock(&mu);
		buf_free(&enc);
		return submit_inline(r);
	}
	seq = r->seq = ++next_seq;
	snprintf(id, sizeof(id), "%s", r->request_id);
	durable = journal_encode(r, &enc) == TG_OK && append_record(&enc) == TG_OK;
	if (!durable)
		log_error("request %s: cannot write the call journal; the answer waits for the "
			  "database",
			  id);
	/* A billed call answers once its record is durable: in the file, or
	 * (synchronous=full, or the file failed) committed. */
	wait = r->billed && (wait_commit || !durable);
	*tail = r;
	tail = &r->next;
	n_records++;
	n_queued++;
	/* The writer needs waking for the first record of a batch and for a
	 * full one; in between it is gathering and would only go back to sleep
	 * (a context switch per call for nothing). */
	if (n_queued == 1 || n_queued >= GATHER_MAX || wait)
		pthread_cond_signal(&work_cv);
	/* r belongs to the writer from here on (it may already be freed). */
	if (wait) {
		time_deadline(&ts, FLUSH_WAIT_MS * 2000);
		while (running && !writer_done && applied_seq < seq)
			if (pthread_cond_timedwait(&applied_cv, &mu, &ts) == ETIMEDOUT) {
				log_error("request %s: its debit is not committed after %d s; "
					  "answering anyway",
					  id, FLUSH_WAIT_MS * 2 / 1000);
				break;
			}
	}
	pthread_mutex_unlock(&mu);
	buf_free(&enc);
	return TG_OK;
}

void journal_flush(void)
{
	struct timespec ts;
	uint64_t target;

	pthread_mutex_lock(&mu);
	target = next_seq;
	time_deadline(&ts, FLUSH_WAIT_MS * 1000);
	while (running && !writer_done && applied_seq < target)
		if (pthread_cond_timedwait(&applied_cv, &mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&mu);
}

void journal_stats(uint64_t *records, uint64_t *batches, uint64_t *queued)
{
	pthread_mutex_lock(&mu);
	*records = n_records;
	*batches = n_batches;
	*queued = n_queued;
	pthread_mutex_unlock(&mu);
}
