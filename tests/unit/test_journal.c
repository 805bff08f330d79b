/* Unit tests for the gateway's call journal: record framing, replay after a
 * crash (once, in order, skipping what is applied, ignoring a torn tail), the
 * writer thread with holds, and the direct path without a writer. Each test
 * runs on a fresh database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "crypto/keys.h"
#include "billing/journal.h"
#include "identity/identity.h"
#include "ledger/ledger.h"
#include "ledger/money.h"
#include "store/db.h"
#include "store/migrate.h"

#define C(x) (MONEY_SCALE * (int64_t)(x))

struct fixture {
	char dir[4096];
	char path[4200];
	int64_t org, key;
};

static void rm_file(const char *dir, const char *name)
{
	char p[4300];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256], why[160];
	tg_stmt *st;
	int applied = 0;

	if (!f || crypto_init())
		return -1;
	log_set_level(LOG_ERROR);
	snprintf(f->dir, sizeof(f->dir), "%s/tg-journal-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/tollgate.db", f->dir);
	db_close_thread();
	if (db_configure(f->path, 0, 10000) || !db_get() ||
	    migrate_run(&applied, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	if (org_create("Acme", &f->org, why, sizeof(why)) ||
	    ledger_grant(f->org, LEDGER_GRANT, C(10), "start", NULL, NULL))
		return -1;
	st = db_stmt("INSERT INTO api_keys(org_id, name, prefix, key_hash, created_at)"
		     " VALUES (:org, 'test', 'tg_test', randomblob(32), 0)");
	if (!st || db_bind_int64(st, ":org", f->org) || db_exec_stmt(st))
		return -1;
	f->key = db_last_id();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	journal_stop();
	assert_int_equal(ledger_held_total(), 0);
	assert_int_equal(ledger_audit(NULL), TG_OK);
	db_close_thread();
	rm_file(f->dir, "tollgate.db");
	rm_file(f->dir, "tollgate.db-wal");
	rm_file(f->dir, "tollgate.db-shm");
	rm_file(f->dir, "tollgate.db-commits");
	rm_file(f->dir, "calls.journal.0");
	rm_file(f->dir, "calls.journal.1");
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct call_record *record(const struct fixture *f, uint64_t seq, const char *rid,
				  int64_t cost, int billed)
{
	struct call_record *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->seq = seq;
	r->created_at = 1700000000 + (int64_t)seq;
	r->org_id = f->org;
	r->key_id = f->key;
	r->status = billed ? 200 : 502;
	r->prompt = 10;
	r->completion = 20;
	r->cost = cost;
	r->billed = billed;
	r->total_ms = 3;
	snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
	snprintf(r->endpoint, sizeof(r->endpoint), "chat.completions");
	snprintf(r->model, sizeof(r->model), "m");
	snprintf(r->client, sizeof(r->client), "192.0.2.7");
	snprintf(r->source, sizeof(r->source), "%s", billed ? "reported" : "none");
	return r;
}

static int64_t count_of(const char *sql_literal)
{
	tg_stmt *st = db_stmt(sql_literal);
	int64_t n = -1;

	assert_non_null(st);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_done(st);
	return n;
}

static int64_t balance(const struct fixture *f)
{
	int64_t b = -1;

	assert_int_equal(ledger_balance(f->org, &b), TG_OK);
	return b;
}

/* Append raw bytes to one of the journal files, as a crashed server left them. */
static void file_append(const struct fixture *f, int n, const void *p, size_t len)
{
	char path[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/calls.journal.%d", f->dir, n);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static off_t file_size(const struct fixture *f, int n)
{
	char path[4300];
	struct stat st;

	snprintf(path, sizeof(path), "%s/calls.journal.%d", f->dir, n);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void encode_into(buf_t *b, const struct fixture *f, uint64_t seq, const char *rid,
			int64_t cost, int billed)
{
	struct call_record *r = record(f, seq, rid, cost, billed);

	assert_int_equal(journal_encode(r, b), TG_OK);
	free(r);
}

/* ------------------------------------------------------------------ */

static void test_encode_decode_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct call_record *r = record(f, 42, "req-1", 1234, 1), back;
	buf_t b;
	size_t used = 0, i;

	snprintf(r->err, sizeof(r->err), "line\nbreak and \"quotes\"");
	r->cache_write = 77;
	r->reasoning = 55;
	r->attempt = 3;
	buf_init(&b, 1 << 20);
	assert_int_equal(journal_encode(r, &b), TG_OK);
	assert_int_equal(journal_decode((const unsigned char *)b.data, b.len, &back, &used), TG_OK);
	assert_int_equal(used, b.len);
	assert_int_equal(back.seq, 42);
	assert_int_equal(back.org_id, f->org);
	assert_int_equal(back.key_id, f->key);
	assert_int_equal(back.cost, 1234);
	assert_int_equal(back.billed, 1);
	assert_int_equal(back.created_at, r->created_at);
	assert_string_equal(back.request_id, "req-1");
	assert_string_equal(back.model, "m");
	assert_string_equal(back.err, r->err);
	assert_int_equal(back.cache_write, 77);
	assert_int_equal(back.reasoning, 55);
	assert_int_equal(back.attempt, 3);
	assert_memory_equal(b.data, "TGJ3", 4);
	assert_string_equal(back.client, "192.0.2.7");

	/* Every truncation and every flipped byte is refused. */
	for (i = 0; i < b.len; i++)
		assert_int_equal(journal_decode((const unsigned char *)b.data, i, &back, &used),
				 TG_EINVAL);
	for (i = 0; i < b.len; i++) {
		b.data[i] ^= 0x40;
		assert_int_equal(journal_decode((const unsigned char *)b.data, b.len, &back, &used),
				 TG_EINVAL);
		b.data[i] ^= 0x40;
	}
	buf_free(&b);
	free(r);
}

/* A record an older binary wrote (TGJ1: no cache writes, reasoning or
 * attempt) still decodes, as attempt 1. */
static void test_decode_v1(void **state)
{
	struct fixture *f = *state;
	struct call_record *r = record(f, 7, "req-v1", 99, 1), back;
	unsigned char sum[16];
	uint32_t len;
	size_t used = 0;
	buf_t b;

	buf_init(&b, 1 << 20);
	assert_int_equal(journal_encode(r, &b), TG_OK);
	/* Drop the four trailing fields, the client's address and the
	 * checksum, then seal it as v1. */
	memcpy(&len, b.data + 4, sizeof(len));
	len -= 4 * sizeof(int64_t) + sizeof(uint16_t) + strlen(r->client);
	memcpy(b.data, "TGJ1", 4);
	memcpy(b.data + 4, &len, sizeof(len));
	crypto_generichash(sum, sizeof(sum), (const unsigned char *)b.data + 8, len, NULL, 0);
	memcpy(b.data + 8 + len, sum, sizeof(sum));
	b.len = 8 + len + sizeof(sum);
	assert_int_equal(journal_decode((const unsigned char *)b.data, b.len, &back, &used), TG_OK);
	assert_int_equal(used, b.len);
	assert_int_equal(back.cost, 99);
	assert_int_equal(back.attempt, 1);
	assert_int_equal(back.cache_write, 0);
	assert_string_equal(back.request_id, "req-v1");
	assert_string_equal(back.client, "");
	buf_free(&b);
	free(r);
}

/* A crash left three records in the files (one not billed) and half of a
 * fourth: a start applies the three once, in order, and empties the files. */
static void test_replay_applies_once(void **state)
{
	struct fixture *f = *state;
	char err[256];
	buf_t a, b;

	buf_init(&a, 1 << 20);
	buf_init(&b, 1 << 20);
	encode_into(&a, f, 1, "req-a", C(1), 1);
	encode_into(&b, f, 2, "req-b", 0, 0);
	encode_into(&a, f, 3, "req-c", C(2), 1);
	file_append(f, 0, a.data, a.len);
	file_append(f, 1, b.data, b.len);
	buf_reset(&a);
	encode_into(&a, f, 4, "req-torn", C(3), 1);
	file_append(f, 1, a.data, a.len / 2);
	/* A record after the torn one (a short write that could not be cut
	 * off) is still found. */
	buf_reset(&a);
	encode_into(&a, f, 5, "req-after-torn", C(1), 1);
	file_append(f, 1, a.data, a.len);

	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	assert_int_equal(balance(f), C(6));
	assert_int_equal(count_of("SELECT count(*) FROM ledger_entries WHERE kind = 'usage'"), 3);
	assert_int_equal(count_of("SELECT count(*) FROM requests"), 4);
	assert_int_equal(count_of("SELECT count(*) FROM requests WHERE request_id = 'req-torn'"),
			 0);
	assert_int_equal(count_of("SELECT applied_seq FROM journal_state"), 5);
	/* The usage entry keeps the call's time, not the replay's. */
	assert_int_equal(
		count_of("SELECT created_at FROM ledger_entries WHERE request_id = 'req-c'"),
		1700000003);
	assert_int_equal(file_size(f, 0), 0);
	assert_int_equal(file_size(f, 1), 0);
	journal_stop();

	/* The same records again (a crash after the commit, before the files
	 * were emptied): nothing is applied twice. */
	buf_reset(&a);
	encode_into(&a, f, 1, "req-a", C(1), 1);
	encode_into(&a, f, 3, "req-c", C(2), 1);
	file_append(f, 0, a.data, a.len);
	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	assert_int_equal(balance(f), C(6));
	assert_int_equal(count_of("SELECT count(*) FROM requests"), 4);
	buf_free(&a);
	buf_free(&b);
}

/* What `tollgate audit` reports: calls in the files not yet in the ledger,
 * and nothing once a start has applied them. */
static void test_pending_before_replay(void **state)
{
	struct fixture *f = *state;
	uint64_t calls = 9;
	int64_t debits = 9;
	char err[256];
	buf_t a;

	assert_int_equal(journal_pending(f->dir, &calls, &debits), TG_OK);
	assert_int_equal(calls, 0);
	assert_int_equal(debits, 0);
	buf_init(&a, 1 << 20);
	encode_into(&a, f, 1, "p-1", C(1), 1);
	encode_into(&a, f, 2, "p-2", 0, 0);
	encode_into(&a, f, 3, "p-3", C(2), 1);
	file_append(f, 1, a.data, a.len);
	file_append(f, 1, a.data, 10); /* a torn start of one more */
	assert_int_equal(journal_pending(f->dir, &calls, &debits), TG_OK);
	assert_int_equal(calls, 3);
	assert_int_equal(debits, C(3));
	assert_int_equal(balance(f), C(10)); /* reading applies nothing */
	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	assert_int_equal(balance(f), C(7));
	assert_int_equal(journal_pending(f->dir, &calls, &debits), TG_OK);
	assert_int_equal(calls, 0);
	buf_free(&a);
}

/* A request id already debited (a retry that raced) is recorded, not billed. */
static void test_replay_duplicate_request_id(void **state)
{
	struct fixture *f = *state;
	char err[256];
	buf_t a;

	buf_init(&a, 1 << 20);
	encode_into(&a, f, 5, "same", C(1), 1);
	encode_into(&a, f, 6, "same", C(1), 1);
	file_append(f, 0, a.data, a.len);
	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	assert_int_equal(balance(f), C(9));
	assert_int_equal(count_of("SELECT count(*) FROM requests WHERE request_id = 'same'"), 2);
	assert_int_equal(count_of("SELECT count(*) FROM requests WHERE cost > 0"), 1);
	buf_free(&a);
}

/* With the writer running: a hold handed over with its record counts its
 * cost until the entry commits, then nothing; the seq carries on after a
 * restart. */
static void test_writer_settles_holds(void **state)
{
	struct fixture *f = *state;
	struct ledger_hold h, h2;
	struct call_record *r;
	int64_t avail = 0, projected = 0;
	char err[256];
	int i;

	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	for (i = 0; i < 50; i++) {
		char rid[32];

		assert_int_equal(ledger_hold(f->org, f->key, C(1), 0, 0, &h, &avail), TG_OK);
		snprintf(rid, sizeof(rid), "w-%d", i);
		r = record(f, 0, rid, MONEY_SCALE / 10, 1);
		ledger_hold_settling(&h, r->cost);
		r->hold = h;
		assert_int_equal(journal_submit(r), TG_OK);
		/* Whether or not the writer got to it, the cost counts exactly once. */
		assert_int_equal(ledger_balance_projected(f->org, &projected), TG_OK);
		assert_int_equal(projected, C(10) - (int64_t)(i + 1) * (MONEY_SCALE / 10));
	}
	journal_flush();
	assert_int_equal(ledger_held_total(), 0);
	assert_int_equal(balance(f), C(5));
	assert_int_equal(count_of("SELECT count(*) FROM requests"), 50);
	/* Everything is spent but 5: a hold for 5 fits, one for more does not. */
	assert_int_equal(ledger_hold(f->org, f->key, C(5) + 1, 0, 0, &h2, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(5));
	journal_stop();
	assert_int_equal(file_size(f, 0) + file_size(f, 1), 0);

	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	r = record(f, 0, "after-restart", 1, 1);
	assert_int_equal(journal_submit(r), TG_OK);
	journal_flush();
	assert_int_equal(count_of("SELECT applied_seq FROM journal_state"), 51);
}

/* While another connection holds the write lock, the writer cannot commit:
 * the calls keep counting their costs, and once the lock goes every one is
 * debited (none is dropped or recorded unbilled by the retries). */
static void test_writer_retries_without_dropping(void **state)
{
	struct fixture *f = *state;
	struct ledger_hold h;
	sqlite3 *blocker;
	char err[256];
	int64_t avail = 0;
	int i;

	db_close_thread();
	assert_int_equal(db_configure(f->path, 0, 20), TG_OK);
	assert_int_equal(sqlite3_open(f->path, &blocker), SQLITE_OK);
	assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(journal_start(f->dir, 0, err, sizeof(err)), TG_OK);
	for (i = 0; i < 5; i++) {
		char rid[32];
		struct call_record *r;

		assert_int_equal(ledger_hold(f->org, f->key, C(2), 0, 0, &h, &avail), TG_OK);
		snprintf(rid, sizeof(rid), "blocked-%d", i);
		r = record(f, 0, rid, C(1), 1);
		ledger_hold_settling(&h, r->cost);
		r->hold = h;
		assert_int_equal(journal_submit(r), TG_OK);
	}
	usleep(600 * 1000); /* a few failed attempts */
	/* Still owed, still counted: 10 - 5 leaves 5, not 10. */
	assert_int_equal(ledger_hold(f->org, f->key, C(5) + 1, 0, 0, &h, &avail), TG_EFUNDS);
	assert_int_equal(avail, C(5));
	assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(blocker);
	journal_flush();
	assert_int_equal(balance(f), C(5));
	assert_int_equal(count_of("SELECT count(*) FROM requests WHERE cost = 1000000"), 5);
	assert_int_equal(ledger_held_total(), 0);
}

/* Without a writer (the CLI, tests) a record is applied at once. */
static void test_direct_without_writer(void **state)
{
	struct fixture *f = *state;
	struct call_record *r = record(f, 0, "direct", C(2), 1);

	assert_int_equal(journal_submit(r), TG_OK);
	assert_int_equal(balance(f), C(8));
	assert_int_equal(count_of("SELECT count(*) FROM requests WHERE request_id = 'direct'"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_encode_decode_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_applies_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_before_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_duplicate_request_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_settles_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_retries_without_dropping, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_direct_without_writer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
