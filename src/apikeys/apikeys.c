/* apikeys.c - API keys: validation, the api_keys table and the gateway's
 * lookup cache; see apikeys.h.
 *
 * The cache is a fixed set-associative table (APIKEY_CACHE_SETS sets of
 * APIKEY_CACHE_WAYS entries) indexed by the key hash, guarded by one rwlock.
 * Lookups take the read lock and copy the record out, so a hit allocates
 * nothing and makes no system call.
 *
 * Every change to api_keys made here bumps a generation counter after it is
 * committed. The counter lives in a small file next to the database, mapped
 * shared into every process that opens it, so a change made by the CLI is
 * seen by a running server on its very next lookup: an entry is only used
 * while the counter still has the value read before the entry's row was.
 * A lookup that read the database before a change sees the new value when it
 * tries to store its row, and drops it. Without the file (no database file,
 * or it cannot be mapped) the counter is process-local and entries also
 * expire after APIKEY_CACHE_TTL_S seconds, which bounds what other processes
 * can leave stale.
 */
#include "apikeys/apikeys.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "ledger/money.h"
#include "store/db.h"

#define MODEL_NAME_MAX 200
#define RATE_MAX 1000000000000LL /* anything above is surely a typo */

enum slot_kind { SLOT_EMPTY = 0, SLOT_KEY, SLOT_UNKNOWN };

struct cache_entry {
	unsigned char hash[KEYS_HASH_LEN];
	enum slot_kind kind;
	int64_t loaded_at;
	uint64_t gen;   /* the change counter before the row was read */
	uint64_t stamp; /* last use, for eviction within the set */
	struct apikey rec;
};

static struct cache_entry cache[APIKEY_CACHE_SETS][APIKEY_CACHE_WAYS];
/* Writers first: invalidations are rare and must not wait behind a steady
 * stream of lookups. */
#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#else
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
#endif
static uint64_t local_gen;                /* the counter when there is no shared file */
static uint64_t *change_gen = &local_gen; /* atomic; shared with other processes when mapped */
static int change_gen_mapped;             /* change_gen is an mmap of the shared file */
static uint64_t cache_ticks;              /* atomic use counter */
static unsigned char pepper[KEYS_PEPPER_LEN];
static int have_pepper;
static int64_t (*clock_now)(void) = time_now;

/* ---------------------------------------------------------------- basics */

void apikeys_set_clock(int64_t (*now_fn)(void))
{
	clock_now = now_fn ? now_fn : time_now;
}

const char *apikey_period_name(enum spend_period p)
{
	switch (p) {
	case PERIOD_DAILY:
		return "daily";
	case PERIOD_WEEKLY:
		return "weekly";
	case PERIOD_MONTHLY:
		return "monthly";
	default:
		return "none";
	}
}

int apikey_period_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "none") == 0)
		return PERIOD_NONE;
	if (strcmp(s, "daily") == 0)
		return PERIOD_DAILY;
	if (strcmp(s, "weekly") == 0)
		return PERIOD_WEEKLY;
	if (strcmp(s, "monthly") == 0)
		return PERIOD_MONTHLY;
	return -1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (the
 * well-known era-based conversion; exact for every int64 day we can meet). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

int64_t apikey_period_start(enum spend_period p, int64_t now)
{
	int64_t days = floor_div(now, 86400), y, m;

	switch (p) {
	case PERIOD_DAILY:
		return days * 86400;
	case PERIOD_WEEKLY:
		/* 1970-01-01 was a Thursday: (days + 3) mod 7 is 0 on Mondays. */
		return (days - (days + 3 - floor_div(days + 3, 7) * 7)) * 86400;
	case PERIOD_MONTHLY:
		civil_from_days(days, &y, &m);
		return days_from_civil(y, m, 1) * 86400;
	default:
		return 0;
	}
}

enum apikey_state apikey_state_of(const struct apikey *k, int64_t now)
{
	if (k->revoked_at > 0 && k->revoked_at <= now)
		return APIKEY_REVOKED;
	if (k->expires_at > 0 && k->expires_at <= now)
		return APIKEY_EXPIRED;
	if (k->revoked_at > 0)
		return APIKEY_ROTATING;
	return APIKEY_ACTIVE;
}

const char *apikey_state_name(enum apikey_state s)
{
	switch (s) {
	case APIKEY_ROTATING:
		return "rotating";
	case APIKEY_EXPIRED:
		return "expired";
	case APIKEY_REVOKED:
		return "revoked";
	default:
		return "active";
	}
}

void apikey_limits_text(const struct apikey *k, char *out, size_t n)
{
	char rpm[24] = "none", tpm[24] = "none", spend[MONEY_FMT_LEN + 16] = "none";
	char money[MONEY_FMT_LEN], expires[11] = "never";

	if (k->rpm)
		snprintf(rpm, sizeof(rpm), "%lld", (long long)k->rpm);
	if (k->tpm)
		snprintf(tpm, sizeof(tpm), "%lld", (long long)k->tpm);
	if (k->spend_limit) {
		money_format_short(k->spend_limit, money);
		snprintf(spend, sizeof(spend), "%s %s", money,
			 k->period == PERIOD_NONE ? "total" : apikey_period_name(k->period));
	}
	if (k->expires_at)
		time_format_date(k->expires_at, expires);
	snprintf(out, n, "rpm %s, tpm %s, spend %s, models %s, expires %s", rpm, tpm, spend,
		 k->allowed_models[0] ? k->allowed_models : "all", expires);
}

int apikey_model_allowed(const struct apikey *k, const char *model)
{
	const char *p = k->allowed_models;
	size_t n;

	if (!model || !*model)
		return 0;
	if (!*p)
		return 1;
	n = strlen(model);
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && memcmp(p, model, n) == 0)
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* ------------------------------------------------------------ validation */

static int check_name(const char *name, const char **why)
{
	const unsigned char *p;
	size_t chars = 0;

	if (!name || !*name) {
		*why = "Give the key a name.";
		return TG_EINVAL;
	}
	for (p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*why = "The name must not contain control characters.";
			return TG_EINVAL;
		}
		if ((*p & 0xc0) != 0x80)
			chars++;
	}
	if (chars > APIKEY_NAME_MAX || strlen(name) > APIKEY_NAME_MAX * 4) {
		*why = "The name is too long (at most 100 characters).";
		return TG_EINVAL;
	}
	if (name[0] == ' ' || name[strlen(name) - 1] == ' ') {
		*why = "The name must not start or end with a space.";
		return TG_EINVAL;
	}
	return TG_OK;
}

static int model_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 1 when the comma list `list` already holds the n bytes at name. */
static int list_has(const char *list, size_t list_len, const char *name, size_t n)
{
	size_t i = 0;

	while (i < list_len) {
		size_t j = i;

		while (j < list_len && list[j] != ',')
			j++;
		if (j - i == n && memcmp(list + i, name, n) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* Normalize a free-text comma list: trim each name, drop empty and repeated
 * ones, check the characters, join with ','. */
static int models_normalize(const char *in, char out[APIKEY_MODELS_MAX], const char **why)
{
	size_t len = 0;
	const char *p = in ? in : "";

	out[0] = '\0';
	while (*p) {
		const char *start, *end;
		size_t n, i;

		while (is_space(*p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		if (*p == ',')
			p++;
		while (end > start && is_space(end[-1]))
			end--;
		n = (size_t)(end - start);
		if (n == 0)
			continue;
		for (i = 0; i < n; i++) {
			if (!model_char((unsigned char)start[i])) {
				*why = "Model names may contain only letters, digits and . _ : / "
				       "- ; "
				       "separate them with commas.";
				return TG_EINVAL;
			}
		}
		if (n > MODEL_NAME_MAX) {
			*why = "A model name is too long (at most 200 characters).";
			return TG_EINVAL;
		}
		if (list_has(out, len, start, n))
			continue;
		if (len + (len ? 1 : 0) + n >= APIKEY_MODELS_MAX) {
			*why = "The list of allowed models is too long.";
			return TG_EINVAL;
		}
		if (len)
			out[len++] = ',';
		memcpy(out + len, start, n);
		len += n;
		out[len] = '\0';
	}
	return TG_OK;
}

/* Check lim into the values to store. keep_expiry: an expiry that may stay
 * even if it is already past (the key's current one), or 0. */
static int check_limits(const struct apikey_limits *lim, int64_t now, int64_t keep_expiry,
			struct apikey *k, const char **why)
{
	int rc;

	if (lim->rpm < 0 || lim->rpm > RATE_MAX) {
		*why = "Requests per minute must be 0 (no limit) or a positive whole number.";
		return TG_EINVAL;
	}
	if (lim->tpm < 0 || lim->tpm > RATE_MAX) {
		*why = "Tokens per minute must be 0 (no limit) or a positive whole number.";
		return TG_EINVAL;
	}
	if (lim->spend_limit < 0) {
		*why = "The spend limit must be 0 (no limit) or more.";
		return TG_EINVAL;
	}
	if ((int)lim->period < PERIOD_NONE || (int)lim->period > PERIOD_MONTHLY) {
		*why = "Choose a spend period: none, daily, weekly or monthly.";
		return TG_EINVAL;
	}
	if (lim->expires_at < 0 ||
	    (lim->expires_at > 0 && lim->expires_at <= now && lim->expires_at != keep_expiry)) {
		*why = "The expiry date must be in the future.";
		return TG_EINVAL;
	}
	if ((rc = models_normalize(lim->allowed_models, k->allowed_models, why)))
		return rc;
	k->rpm = lim->rpm;
	k->tpm = lim->tpm;
	k->spend_limit = lim->spend_limit;
	/* Without a limit the period means nothing; store "none". */
	k->period = lim->spend_limit > 0 ? lim->period : PERIOD_NONE;
	k->expires_at = lim->expires_at;
	return TG_OK;
}

/* ----------------------------------------------------------------- rows */

#define KEY_COLS                                                                                  \
	"id, org_id, coalesce(created_by, 0), name, prefix, created_at, coalesce(expires_at, 0)," \
	" coalesce(revoked_at, 0), coalesce(last_used_at, 0), rpm, tpm, spend_limit,"             \
	" spend_period, allowed_models, coalesce(rotated_from, 0)"

static void key_from_row(tg_stmt *st, struct apikey *k)
{
	int p;

	memset(k, 0, sizeof(*k));
	k->id = db_col_int64(st, 0);
	k->org_id = db_col_int64(st, 1);
	k->created_by = db_col_int64(st, 2);
	snprintf(k->name, sizeof(k->name), "%s", db_col_text(st, 3));
	snprintf(k->prefix, sizeof(k->prefix), "%s", db_col_text(st, 4));
	k->created_at = db_col_int64(st, 5);
	k->expires_at = db_col_int64(st, 6);
	k->revoked_at = db_col_int64(st, 7);
	k->last_used_at = db_col_int64(st, 8);
	k->rpm = db_col_int64(st, 9);
	k->tpm = db_col_int64(st, 10);
	k->spend_limit = db_col_int64(st, 11);
	p = apikey_period_parse(db_col_text(st, 12));
	k->period = p < 0 ? PERIOD_NONE : (enum spend_period)p;
	snprintf(k->allowed_models, sizeof(k->allowed_models), "%s", db_col_text(st, 13));
	k->rotated_from = db_col_int64(st, 14);
}

int apikey_get(int64_t id, struct apikey *out)
{
	tg_stmt *st = db_stmt("SELECT " KEY_COLS " FROM api_keys WHERE id = :id");
	int rc = TG_ENOTFOUND;

	if (!st || db_bind_int64(st, ":id", id))
		return TG_EDB;
	if (db_step(st) == DB_ROW) {
		key_from_row(st, out);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

int apikey_find_prefix(int64_t org_id, const char *prefix, struct apikey *out)
{
	tg_stmt *st;
	size_t n = prefix ? strlen(prefix) : 0;
	int rc = TG_ENOTFOUND, found = 0;

	if (n <= KEYS_TAG_LEN || n > KEYS_PREFIX_LEN || memcmp(prefix, KEYS_TAG, KEYS_TAG_LEN) != 0)
		return TG_EINVAL;
	/* substr, not LIKE: the prefix is compared as plain text. */
	st = db_stmt(
		"SELECT " KEY_COLS " FROM api_keys"
		" WHERE substr(prefix, 1, CAST(:n AS INTEGER)) = :p AND (:org = 0 OR org_id = :org)"
		" ORDER BY id LIMIT 2");
	if (!st || db_bind_int64(st, ":n", (int64_t)n) || db_bind_text(st, ":p", prefix) ||
	    db_bind_int64(st, ":org", org_id))
		return TG_EDB;
	while (db_step(st) == DB_ROW) {
		if (found++) {
			rc = TG_ECONFLICT;
			break;
		}
		key_from_row(st, out);
		rc = TG_OK;
	}
	db_done(st);
	return rc;
}

/* The row with this hash: TG_OK, TG_ENOTFOUND or TG_EDB. */
static int load_by_hash(const unsigned char h[KEYS_HASH_LEN], struct apikey *out)
{
	tg_stmt *st = db_stmt("SELECT " KEY_COLS ", key_hash,"
			      " (SELECT o.rpm FROM orgs o WHERE o.id = api_keys.org_id),"
			      " (SELECT o.tpm FROM orgs o WHERE o.id = api_keys.org_id)"
			      " FROM api_keys WHERE key_hash = :h");
	int rc = TG_ENOTFOUND, step;

	if (!st || db_bind_blob(st, ":h", h, KEYS_HASH_LEN))
		return TG_EDB;
	step = db_step(st);
	if (step == DB_ROW) {
		const void *stored = db_col_blob(st, 15);

		if (stored && db_col_bytes(st, 15) == KEYS_HASH_LEN && keys_hash_equal(stored, h)) {
			key_from_row(st, out);
			out->org_rpm = db_col_int64(st, 16);
			out->org_tpm = db_col_int64(st, 17);
			rc = TG_OK;
		}
	} else if (step != DB_DONE) {
		log_error("apikeys: lookup failed: %s", db_errmsg());
		rc = TG_EDB;
	}
	db_done(st);
	return rc;
}

/* ---------------------------------------------------------------- cache */

static struct cache_entry *cache_set(const unsigned char h[KEYS_HASH_LEN])
{
	/* The hash is keyed with the pepper, so callers cannot aim at one set. */
	uint32_t i = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
		     (uint32_t)h[3] << 24;

	return cache[i & (APIKEY_CACHE_SETS - 1)];
}

/* Look in the cache. Returns the slot kind found (SLOT_EMPTY on a miss or a
 * stale entry) and, for SLOT_KEY, copies the record. *gen receives the
 * generation seen, to pass to cache_put after a database read. */
static enum slot_kind cache_get(const unsigned char h[KEYS_HASH_LEN], int64_t now,
				struct apikey *out, uint64_t *gen)
{
	struct cache_entry *set = cache_set(h);
	enum slot_kind kind = SLOT_EMPTY;
	int i, hit = -1;

	pthread_rwlock_rdlock(&cache_lock);
	*gen = __atomic_load_n(change_gen, __ATOMIC_ACQUIRE);
	/* Compare with every way, in constant time, whatever matches. */
	for (i = 0; i < APIKEY_CACHE_WAYS; i++)
		if (set[i].kind != SLOT_EMPTY && keys_hash_equal(set[i].hash, h))
			hit = i;
	if (hit >= 0 && set[hit].gen == *gen && now >= set[hit].loaded_at &&
	    now - set[hit].loaded_at < APIKEY_CACHE_TTL_S) {
		kind = set[hit].kind;
		if (kind == SLOT_KEY)
			memcpy(out, &set[hit].rec, sizeof(*out));
		__atomic_store_n(&set[hit].stamp,
				 __atomic_add_fetch(&cache_ticks, 1, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
	}
	pthread_rwlock_unlock(&cache_lock);
	return kind;
}

/* Remember a lookup (rec NULL: unknown key) unless the cache changed since
 * the caller's cache_get. */
static void cache_put(const unsigned char h[KEYS_HASH_LEN], const struct apikey *rec, int64_t now,
		      uint64_t gen)
{
	struct cache_entry *set = cache_set(h), *e = NULL;
	int i;

	pthread_rwlock_wrlock(&cache_lock);
	if (gen != __atomic_load_n(change_gen, __ATOMIC_ACQUIRE))
		goto out;
	for (i = 0; i < APIKEY_CACHE_WAYS && !e; i++)
		if (set[i].kind != SLOT_EMPTY && keys_hash_equal(set[i].hash, h))
			e = &set[i];
	for (i = 0; i < APIKEY_CACHE_WAYS && !e; i++)
		if (set[i].kind == SLOT_EMPTY)
			e = &set[i];
	if (!e) {
		/* Evict the least recently used way, unknown keys first. An
		 * unknown key never pushes out a real one: a flood of made-up
		 * keys cannot empty the cache. */
		e = &set[0];
		for (i = 1; i < APIKEY_CACHE_WAYS; i++) {
			int better = (set[i].kind == SLOT_UNKNOWN) > (e->kind == SLOT_UNKNOWN) ||
				     ((set[i].kind == SLOT_UNKNOWN) == (e->kind == SLOT_UNKNOWN) &&
				      set[i].stamp < e->stamp);

			if (better)
				e = &set[i];
		}
		if (!rec && e->kind == SLOT_KEY)
			goto out;
	}
	memcpy(e->hash, h, KEYS_HASH_LEN);
	e->kind = rec ? SLOT_KEY : SLOT_UNKNOWN;
	e->loaded_at = now;
	e->gen = gen;
	e->stamp = __atomic_add_fetch(&cache_ticks, 1, __ATOMIC_RELAXED);
	if (rec)
		memcpy(&e->rec, rec, sizeof(e->rec));
	else
		memset(&e->rec, 0, sizeof(e->rec));
out:
	pthread_rwlock_unlock(&cache_lock);
}

void apikey_cache_invalidate(int64_t id)
{
	int s, w;

	pthread_rwlock_wrlock(&cache_lock);
	__atomic_add_fetch(change_gen, 1, __ATOMIC_ACQ_REL);
	for (s = 0; s < APIKEY_CACHE_SETS; s++) {
		for (w = 0; w < APIKEY_CACHE_WAYS; w++) {
			struct cache_entry *e = &cache[s][w];

			if (id == 0 || (e->kind == SLOT_KEY && e->rec.id == id))
				memset(e, 0, sizeof(*e));
		}
	}
	pthread_rwlock_unlock(&cache_lock);
	/* Other instances on a shared database learn of it from the table of
	 * change counters (within its poll interval). */
	if (db_is_pg() && change_gen != &local_gen)
		db_changed(change_gen);
}

/* Forget what the cache knows about one hash (a key that now exists). */
static void cache_forget(const unsigned char h[KEYS_HASH_LEN])
{
	struct cache_entry *set = cache_set(h);
	int i;

	pthread_rwlock_wrlock(&cache_lock);
	__atomic_add_fetch(change_gen, 1, __ATOMIC_ACQ_REL);
	for (i = 0; i < APIKEY_CACHE_WAYS; i++)
		if (set[i].kind != SLOT_EMPTY && keys_hash_equal(set[i].hash, h))
			memset(&set[i], 0, sizeof(set[i]));
	pthread_rwlock_unlock(&cache_lock);
}

/* Map the change counter shared by every process using this database (the
 * file "<database>-keys"). */
static void shared_gen_open(void)
{
	uint64_t *p;

	pthread_rwlock_wrlock(&cache_lock);
	if (change_gen != &local_gen) {
		if (change_gen_mapped)
			munmap(change_gen, sizeof(uint64_t));
		change_gen = &local_gen;
	}
	change_gen_mapped = !db_is_pg(); /* on PostgreSQL: db.c's counter, not a mapping */
	pthread_rwlock_unlock(&cache_lock);
	p = db_shared_counter("keys");
	if (!p) {
		log_warn("apikeys: cannot map the key change counter; other processes' key "
			 "changes reach this one within %d seconds",
			 APIKEY_CACHE_TTL_S);
		return;
	}
	pthread_rwlock_wrlock(&cache_lock);
	change_gen = p;
	pthread_rwlock_unlock(&cache_lock);
}

void apikeys_init(const unsigned char pep[KEYS_PEPPER_LEN])
{
	memcpy(pepper, pep, KEYS_PEPPER_LEN);
	have_pepper = 1;
	shared_gen_open();
	apikey_cache_invalidate(0);
}

/* ---------------------------------------------------------- gateway path */

int apikey_authenticate(const char *token, size_t len, struct apikey *out)
{
	unsigned char h[KEYS_HASH_LEN];
	int64_t now;
	uint64_t gen;
	enum slot_kind kind;
	int rc;

	if (!token || keys_parse(token, len) != TG_OK)
		return TG_EINVAL;
	if (!have_pepper) {
		log_error("apikeys: used before apikeys_init");
		return TG_EDB;
	}
	now = clock_now();
	keys_hash(pepper, token, len, h);
	/* Both fill *out only when they find the key. */
	kind = cache_get(h, now, out, &gen);
	if (kind == SLOT_EMPTY) {
		rc = load_by_hash(h, out);
		if (rc == TG_EDB)
			return rc;
		cache_put(h, rc == TG_OK ? out : NULL, now, gen);
		kind = rc == TG_OK ? SLOT_KEY : SLOT_UNKNOWN;
	}
	if (kind == SLOT_UNKNOWN)
		return TG_ENOTFOUND;
	return apikey_state_of(out, now) <= APIKEY_ROTATING ? TG_OK : TG_EPERM;
}

int apikey_mark_used(int64_t id, int64_t now)
{
	tg_stmt *st = db_stmt("UPDATE api_keys SET last_used_at = :now"
			      " WHERE id = :id AND coalesce(last_used_at, 0) < :now");

	if (!st || db_bind_int64(st, ":now", now) || db_bind_int64(st, ":id", id))
		return TG_EDB;
	return db_exec_stmt(st);
}

/* ------------------------------------------------------------- changes */

static int bind_settings(tg_stmt *st, const struct apikey *k)
{
	int rc;

	if ((rc = db_bind_int64(st, ":rpm", k->rpm)) || (rc = db_bind_int64(st, ":tpm", k->tpm)) ||
	    (rc = db_bind_int64(st, ":limit", k->spend_limit)) ||
	    (rc = db_bind_text(st, ":period", apikey_period_name(k->period))) ||
	    (rc = db_bind_text(st, ":models", k->allowed_models)))
		return rc;
	return k->expires_at ? db_bind_int64(st, ":expires", k->expires_at) :
			       db_bind_null(st, ":expires");
}

/* A fresh key and its hash; TG_OK. */
static void new_secret(char key[KEYS_LEN + 1], char prefix[KEYS_PREFIX_LEN + 1],
		       unsigned char h[KEYS_HASH_LEN])
{
	keys_generate(key, prefix);
	keys_hash(pepper, key, KEYS_LEN, h);
}

int apikey_create(int64_t org_id, int64_t created_by, const char *name,
		  const struct apikey_limits *lim, char key_out[KEYS_LEN + 1], int64_t *id_out,
		  const char **why)
{
	static const struct apikey_limits none = { 0, 0, 0, PERIOD_NONE, 0, NULL };
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	unsigned char h[KEYS_HASH_LEN];
	struct apikey k;
	tg_stmt *st;
	int64_t now = clock_now();
	int rc;

	memset(&k, 0, sizeof(k));
	if (!have_pepper) {
		*why = "The server's secrets are not loaded.";
		return TG_EINVAL;
	}
	if ((rc = check_name(name, why)) || (rc = check_limits(lim ? lim : &none, now, 0, &k, why)))
		return rc;
	new_secret(key, prefix, h);
	st = db_stmt(
		"INSERT INTO api_keys(org_id, created_by, name, prefix, key_hash, created_at,"
		" expires_at, rpm, tpm, spend_limit, spend_period, allowed_models)"
		" VALUES (:org, :by, :name, :prefix, :hash, :now, :expires, :rpm, :tpm, :limit,"
		" :period, :models)");
	rc = TG_EDB;
	if (!st || db_bind_int64(st, ":org", org_id) ||
	    (created_by ? db_bind_int64(st, ":by", created_by) : db_bind_null(st, ":by")) ||
	    db_bind_text(st, ":name", name) || db_bind_text(st, ":prefix", prefix) ||
	    db_bind_blob(st, ":hash", h, KEYS_HASH_LEN) || db_bind_int64(st, ":now", now) ||
	    bind_settings(st, &k))
		goto out;
	rc = db_exec_stmt(st);
	if (rc == TG_ECONFLICT) {
		*why = "No such organization or user.";
		goto out;
	}
	if (rc)
		goto out;
	if (id_out)
		*id_out = db_last_id();
	cache_forget(h);
	memcpy(key_out, key, KEYS_LEN + 1);
out:
	if (rc && rc != TG_ECONFLICT)
		*why = "Could not save the key.";
	sodium_memzero(key, sizeof(key));
	return rc;
}

int apikey_update_limits(int64_t id, const struct apikey_limits *lim, const char **why)
{
	struct apikey cur, k;
	tg_stmt *st;
	int64_t now = clock_now();
	int rc;

	if ((rc = apikey_get(id, &cur))) {
		*why = rc == TG_ENOTFOUND ? "No such key." : "Could not read the key.";
		return rc;
	}
	if (apikey_state_of(&cur, now) == APIKEY_REVOKED) {
		*why = "This key is revoked; its settings can no longer change.";
		return TG_ECONFLICT;
	}
	memset(&k, 0, sizeof(k));
	if ((rc = check_limits(lim, now, cur.expires_at, &k, why)))
		return rc;
	st = db_stmt("UPDATE api_keys SET rpm = :rpm, tpm = :tpm, spend_limit = :limit,"
		     " spend_period = :period, allowed_models = :models, expires_at = :expires"
		     " WHERE id = :id");
	if (!st || db_bind_int64(st, ":id", id) || bind_settings(st, &k) || db_exec_stmt(st)) {
		*why = "Could not save the limits.";
		return TG_EDB;
	}
	apikey_cache_invalidate(id);
	return TG_OK;
}

int apikey_revoke(int64_t id)
{
	tg_stmt *st = db_stmt("UPDATE api_keys SET revoked_at = :now"
			      " WHERE id = :id AND (revoked_at IS NULL OR revoked_at > :now)");
	struct apikey k;
	int64_t now = clock_now();
	int rc;

	if (!st || db_bind_int64(st, ":now", now) || db_bind_int64(st, ":id", id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	if (db_changes() == 0)
		return apikey_get(id, &k) == TG_ENOTFOUND ? TG_ENOTFOUND : TG_ECONFLICT;
	apikey_cache_invalidate(id);
	return TG_OK;
}

int apikey_revoke_user(int64_t org_id, int64_t user_id, int64_t *count)
{
	tg_stmt *st = db_stmt("UPDATE api_keys SET revoked_at = :now"
			      " WHERE created_by = :user AND (:org = 0 OR org_id = :org)"
			      " AND (revoked_at IS NULL OR revoked_at > :now)");
	int64_t now = clock_now();
	int rc;

	if (count)
		*count = 0;
	if (!st || db_bind_int64(st, ":now", now) || db_bind_int64(st, ":user", user_id) ||
	    db_bind_int64(st, ":org", org_id))
		return TG_EDB;
	if ((rc = db_exec_stmt(st)))
		return rc;
	if (count)
		*count = db_changes();
	apikey_cache_invalidate(0);
	return TG_OK;
}

int apikey_rotate(int64_t id, int64_t grace_s, char key_out[KEYS_LEN + 1], int64_t *new_id,
		  const char **why)
{
	char key[KEYS_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	unsigned char h[KEYS_HASH_LEN];
	struct apikey old;
	tg_stmt *st;
	int64_t now = clock_now(), nid = 0;
	int rc;

	if (grace_s < 0 || grace_s > APIKEY_GRACE_MAX) {
		*why = "The grace period must be between 0 and 24 hours.";
		return TG_EINVAL;
	}
	if (!have_pepper) {
		*why = "The server's secrets are not loaded.";
		return TG_EINVAL;
	}
	if (db_begin()) {
		*why = "Could not start a transaction.";
		return TG_EDB;
	}
	new_secret(key, prefix, h);
	if ((rc = apikey_get(id, &old))) {
		*why = rc == TG_ENOTFOUND ? "No such key." : "Could not read the key.";
		goto out;
	}
	rc = TG_ECONFLICT;
	if (old.revoked_at > now) {
		*why = "This key was already rotated; rotate its replacement instead.";
		goto out;
	}
	if (old.revoked_at) {
		*why = "This key is revoked; create a new key instead.";
		goto out;
	}
	if (old.expires_at && old.expires_at <= now) {
		*why = "This key has expired; create a new key instead.";
		goto out;
	}
	rc = TG_EDB;
	*why = "Could not save the new key.";
	st = db_stmt(
		"INSERT INTO api_keys(org_id, created_by, name, prefix, key_hash, created_at,"
		" expires_at, rpm, tpm, spend_limit, spend_period, allowed_models, rotated_from)"
		" SELECT org_id, created_by, name, :prefix, :hash, :now, expires_at, rpm, tpm,"
		" spend_limit, spend_period, allowed_models, id FROM api_keys WHERE id = :id");
	if (!st || db_bind_text(st, ":prefix", prefix) ||
	    db_bind_blob(st, ":hash", h, KEYS_HASH_LEN) || db_bind_int64(st, ":now", now) ||
	    db_bind_int64(st, ":id", id) || (rc = db_exec_stmt(st)))
		goto out;
	nid = db_last_id();
	st = db_stmt("UPDATE api_keys SET revoked_at = :at WHERE id = :id");
	rc = TG_EDB;
	if (!st || db_bind_int64(st, ":at", now + grace_s) || db_bind_int64(st, ":id", id) ||
	    (rc = db_exec_stmt(st)))
		goto out;
	rc = db_commit();
out:
	if (rc) {
		db_rollback();
	} else {
		apikey_cache_invalidate(id);
		cache_forget(h);
		memcpy(key_out, key, KEYS_LEN + 1);
		if (new_id)
			*new_id = nid;
	}
	sodium_memzero(key, sizeof(key));
	return rc;
}
