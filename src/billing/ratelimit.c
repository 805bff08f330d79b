/* ratelimit.c - token buckets in a process-wide hash table; see ratelimit.h. */
#include "billing/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Levels are kept in units of 1/RL_UNIT token. One microsecond of refill adds
 * limit/60 * 1e-6 tokens = exactly `limit` units. */
__extension__ typedef __int128 rl_i128;

#define RL_UNIT 60000000LL
#define RL_INITIAL_SLOTS 1024
#define RL_MAX_SLOTS 131072 /* power of two above RL_MAX_ENTRIES / 0.75 */
#define RL_RETRY_NEVER_MS 60000
#define RL_RETRY_NOMEM_MS 1000
/* Floor for a bucket driven negative by rl_adjust: far below anything real,
 * far enough above the int128 minimum that taking one int64 delta in units
 * (<= 2^89) can never wrap. */
#define RL_LEVEL_MIN (-((rl_i128)1 << 120))

struct rl_bucket {
	struct rl_bucket *next;     /* hash chain */
	struct rl_bucket *lru_prev; /* towards the least recently used */
	struct rl_bucket *lru_next; /* towards the most recently used */
	rl_i128 level;              /* units; at most limit * RL_UNIT */
	int64_t id;
	int64_t limit;   /* per minute, > 0 */
	int64_t last_us; /* time of the last refill (= last use) */
	enum rl_scope scope;
};

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_bucket **rl_slots; /* rl_nslots chains, or NULL before first use */
static size_t rl_nslots;
static size_t rl_count;
static struct rl_bucket *rl_lru_head; /* least recently used */
static struct rl_bucket *rl_lru_tail; /* most recently used */

static uint64_t rl_hash(enum rl_scope scope, int64_t id)
{
	uint64_t x = (uint64_t)id ^ ((uint64_t)scope << 58);

	/* splitmix64 finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static rl_i128 rl_capacity(int64_t limit)
{
	return (rl_i128)limit * RL_UNIT;
}

/* Microseconds (rounded up) for `units` to refill at `limit`, then
 * milliseconds rounded up; saturates at INT64_MAX. */
static int64_t rl_units_to_ms(rl_i128 units, int64_t limit)
{
	rl_i128 us, ms;

	if (units <= 0)
		return 0;
	us = (units + limit - 1) / limit;
	ms = (us + 999) / 1000;
	return ms > INT64_MAX ? INT64_MAX : (int64_t)ms;
}

static void rl_lru_unlink(struct rl_bucket *b)
{
	if (b->lru_prev)
		b->lru_prev->lru_next = b->lru_next;
	else
		rl_lru_head = b->lru_next;
	if (b->lru_next)
		b->lru_next->lru_prev = b->lru_prev;
	else
		rl_lru_tail = b->lru_prev;
	b->lru_prev = NULL;
	b->lru_next = NULL;
}

static void rl_lru_append(struct rl_bucket *b)
{
	b->lru_prev = rl_lru_tail;
	b->lru_next = NULL;
	if (rl_lru_tail)
		rl_lru_tail->lru_next = b;
	else
		rl_lru_head = b;
	rl_lru_tail = b;
}

/* Bring the level up to now_us. Time never runs backwards for a bucket. */
static void rl_refill(struct rl_bucket *b, int64_t now_us)
{
	rl_i128 cap = rl_capacity(b->limit);
	rl_i128 elapsed;

	if (now_us <= b->last_us)
		return;
	/* Clamped so limit * elapsed < 2^126 and adding it cannot wrap. */
	elapsed = (rl_i128)now_us - b->last_us;
	if (elapsed > INT64_MAX)
		elapsed = INT64_MAX;
	if (b->level < cap) {
		b->level += (rl_i128)b->limit * elapsed;
		if (b->level > cap)
			b->level = cap;
	}
	b->last_us = now_us;
}

static struct rl_bucket *rl_find(enum rl_scope scope, int64_t id)
{
	struct rl_bucket *b;

	if (!rl_slots)
		return NULL;
	for (b = rl_slots[rl_hash(scope, id) & (rl_nslots - 1)]; b; b = b->next)
		if (b->id == id && b->scope == scope)
			return b;
	return NULL;
}

static void rl_remove(struct rl_bucket *b)
{
	struct rl_bucket **pp = &rl_slots[rl_hash(b->scope, b->id) & (rl_nslots - 1)];

	while (*pp != b)
		pp = &(*pp)->next;
	*pp = b->next;
	rl_lru_unlink(b);
	rl_count--;
	free(b);
}

/* Rehash into twice as many chains; on allocation failure keep the old
 * table (chains just get longer). */
static void rl_grow(void)
{
	struct rl_bucket **slots, *b, *next;
	size_t n, i, h;

	if (rl_nslots >= RL_MAX_SLOTS)
		return;
	n = rl_nslots * 2;
	slots = calloc(n, sizeof(*slots));
	if (!slots)
		return;
	for (i = 0; i < rl_nslots; i++) {
		for (b = rl_slots[i]; b; b = next) {
			next = b->next;
			h = rl_hash(b->scope, b->id) & (n - 1);
			b->next = slots[h];
			slots[h] = b;
		}
	}
	free(rl_slots);
	rl_slots = slots;
	rl_nslots = n;
}

/* Drop buckets idle for more than RL_IDLE_US that are full again, walking
 * from the least recently used end and stopping at the first fresh bucket.
 * An idle bucket still below capacity (driven far negative by rl_adjust) is
 * refilled, which stamps it with now_us, and moved to the fresh end, so the
 * walk never meets it twice. */
static void rl_sweep_idle(int64_t now_us)
{
	struct rl_bucket *b;

	while ((b = rl_lru_head) && (rl_i128)now_us - b->last_us > RL_IDLE_US) {
		rl_refill(b, now_us);
		if (b->level >= rl_capacity(b->limit)) {
			rl_remove(b);
			continue;
		}
		rl_lru_unlink(b);
		rl_lru_append(b);
	}
}

/* Make room for `need` new buckets: sweep idle ones when the table is due
 * to grow, drop the least recently used past RL_MAX_ENTRIES, then grow.
 * If the first table cannot be allocated rl_slots stays NULL and rl_get()
 * fails, which refuses the call. */
static void rl_make_room(size_t need, int64_t now_us)
{
	if (!rl_slots) {
		rl_slots = calloc(RL_INITIAL_SLOTS, sizeof(*rl_slots));
		if (!rl_slots)
			return;
		rl_nslots = RL_INITIAL_SLOTS;
	}
	if (rl_count + need <= rl_nslots / 4 * 3)
		return;
	rl_sweep_idle(now_us);
	while (rl_count + need > RL_MAX_ENTRIES && rl_lru_head)
		rl_remove(rl_lru_head);
	while (rl_count + need > rl_nslots / 4 * 3 && rl_nslots < RL_MAX_SLOTS) {
		size_t before = rl_nslots;

		rl_grow();
		if (rl_nslots == before)
			break;
	}
}

/* Find or create the bucket, refill it to now and apply a changed limit.
 * Never evicts, so pointers returned earlier in the same locked section stay
 * valid. NULL on allocation failure. */
static struct rl_bucket *rl_get(enum rl_scope scope, int64_t id, int64_t limit, int64_t now_us)
{
	struct rl_bucket *b = rl_find(scope, id);
	size_t h;

	if (b) {
		rl_refill(b, now_us);
		if (b->limit != limit) {
			b->limit = limit;
			if (b->level > rl_capacity(limit))
				b->level = rl_capacity(limit);
		}
		rl_lru_unlink(b);
		rl_lru_append(b);
		return b;
	}
	if (!rl_slots)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->scope = scope;
	b->id = id;
	b->limit = limit;
	b->level = rl_capacity(limit);
	b->last_us = now_us;
	h = rl_hash(scope, id) & (rl_nslots - 1);
	b->next = rl_slots[h];
	rl_slots[h] = b;
	rl_lru_append(b);
	rl_count++;
	return b;
}

static int64_t rl_cost(const struct rl_ask *a)
{
	return a->cost > 0 ? a->cost : 0;
}

static void rl_refuse_nomem(struct rl_state *st, const struct rl_ask *a)
{
	st->limit = a->limit_per_min;
	st->refused = 1;
	st->retry_after_ms = RL_RETRY_NOMEM_MS;
}

static void rl_fill_state(struct rl_state *st, const struct rl_bucket *b)
{
	rl_i128 whole = b->level / RL_UNIT;

	st->limit = b->limit;
	st->remaining = whole < 0 ? 0 : (int64_t)whole;
	st->reset_ms = rl_units_to_ms(rl_capacity(b->limit) - b->level, b->limit);
}

int rl_admit(const struct rl_ask *asks, int n, int64_t now_us, struct rl_state *states)
{
	struct rl_bucket *stack_b[8], **bk = stack_b;
	size_t missing = 0;
	int i, j, admitted = 1;

	if (n <= 0 || !asks)
		return n <= 0;
	if (states)
		for (i = 0; i < n; i++)
			states[i] = (struct rl_state){ 0 };
	if ((size_t)n > TG_ARRAY_LEN(stack_b)) {
		bk = calloc((size_t)n, sizeof(*bk));
		if (!bk) {
			for (i = 0; states && i < n; i++)
				if (asks[i].limit_per_min > 0)
					rl_refuse_nomem(&states[i], &asks[i]);
			return 0;
		}
	}

	pthread_mutex_lock(&rl_lock);
	for (i = 0; i < n; i++)
		if (asks[i].limit_per_min > 0 && !rl_find(asks[i].scope, asks[i].id))
			missing++;
	rl_make_room(missing, now_us);
	for (i = 0; i < n; i++) {
		bk[i] = NULL;
		if (asks[i].limit_per_min <= 0)
			continue;
		bk[i] = rl_get(asks[i].scope, asks[i].id, asks[i].limit_per_min, now_us);
		if (!bk[i]) {
			admitted = 0;
			if (states)
				rl_refuse_nomem(&states[i], &asks[i]);
		}
	}

	/* Check every bucket against the total asked of it by this call. */
	for (i = 0; i < n; i++) {
		rl_i128 want = 0;
		int64_t retry;

		if (!bk[i])
			continue;
		for (j = 0; j < n; j++)
			if (bk[j] == bk[i])
				want += rl_cost(&asks[j]);
		if (want > bk[i]->limit)
			retry = RL_RETRY_NEVER_MS;
		else if (bk[i]->level < want * RL_UNIT)
			retry = rl_units_to_ms(want * RL_UNIT - bk[i]->level, bk[i]->limit);
		else
			continue;
		admitted = 0;
		if (states) {
			states[i].refused = 1;
			states[i].retry_after_ms = retry < 1 ? 1 : retry;
		}
	}

	if (admitted)
		for (i = 0; i < n; i++)
			if (bk[i])
				bk[i]->level -= (rl_i128)rl_cost(&asks[i]) * RL_UNIT;
	if (states)
		for (i = 0; i < n; i++)
			if (bk[i])
				rl_fill_state(&states[i], bk[i]);
	pthread_mutex_unlock(&rl_lock);

	if (bk != stack_b)
		free(bk);
	return admitted;
}

void rl_adjust(enum rl_scope scope, int64_t id, int64_t limit_per_min, int64_t delta,
	       int64_t now_us)
{
	struct rl_bucket *b;

	if (limit_per_min <= 0 || delta == 0)
		return;
	pthread_mutex_lock(&rl_lock);
	b = rl_find(scope, id);
	if (!b) {
		/* A missing bucket is a full one: giving back changes nothing. */
		if (delta > 0)
			goto out;
		rl_make_room(1, now_us);
	}
	b = rl_get(scope, id, limit_per_min, now_us);
	if (!b)
		goto out;
	b->level += (rl_i128)delta * RL_UNIT;
	if (b->level > rl_capacity(b->limit))
		b->level = rl_capacity(b->limit);
	if (b->level < RL_LEVEL_MIN)
		b->level = RL_LEVEL_MIN;
out:
	pthread_mutex_unlock(&rl_lock);
}

void rl_format_duration(int64_t ms, char out[RL_DURATION_LEN])
{
	int64_t h, m, s, frac;
	char fbuf[8] = "";
	int len = 0;

	if (ms <= 0) {
		snprintf(out, RL_DURATION_LEN, "0s");
		return;
	}
	if (ms < 1000) {
		snprintf(out, RL_DURATION_LEN, "%lldms", (long long)ms);
		return;
	}
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	frac = ms % 1000;
	if (frac) {
		snprintf(fbuf, sizeof(fbuf), ".%03lld", (long long)frac);
		len = 4;
		while (fbuf[len - 1] == '0')
			fbuf[--len] = '\0';
	}
	if (h)
		snprintf(out, RL_DURATION_LEN, "%lldh%lldm%lld%ss", (long long)h, (long long)m,
			 (long long)s, fbuf);
	else if (m)
		snprintf(out, RL_DURATION_LEN, "%lldm%lld%ss", (long long)m, (long long)s, fbuf);
	else
		snprintf(out, RL_DURATION_LEN, "%lld%ss", (long long)s, fbuf);
}

size_t rl_entries(void)
{
	size_t n;

	pthread_mutex_lock(&rl_lock);
	n = rl_count;
	pthread_mutex_unlock(&rl_lock);
	return n;
}

void rl_reset_all(void)
{
	struct rl_bucket *b, *next;

	pthread_mutex_lock(&rl_lock);
	for (b = rl_lru_head; b; b = next) {
		next = b->lru_next;
		free(b);
	}
	free(rl_slots);
	rl_slots = NULL;
	rl_nslots = 0;
	rl_count = 0;
	rl_lru_head = NULL;
	rl_lru_tail = NULL;
	pthread_mutex_unlock(&rl_lock);
}
