/* ipthrottle.c - a fixed-size table of failing client addresses; see
 * ipthrottle.h. */
#include "http/ipthrottle.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 16

struct ipt_entry {
	unsigned char key[KEY_LEN];
	int64_t window_start; /* ms of the first failure of the current window */
	int64_t blocked_until;
	int64_t last;     /* ms of the latest failure */
	int64_t failures; /* in the current window */
	int used;
};

struct ipthrottle {
	pthread_mutex_t mu;
	size_t mask;
	int64_t limit, window;
	uint64_t refused;
	int64_t horizon; /* no block lasts past this (atomic reads): the fast path */
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	struct ipt_entry *e;
};

struct ipthrottle *ipthrottle_new(size_t capacity, int64_t limit, int64_t window_ms)
{
	struct ipthrottle *t;
	size_t n = IPTHROTTLE_PROBES;

	if (limit <= 0 || window_ms <= 0 || sodium_init() < 0)
		return NULL;
	while (n < capacity && n < ((size_t)1 << 24))
		n <<= 1;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->e = calloc(n, sizeof(*t->e));
	if (!t->e) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->mask = n - 1;
	t->limit = limit;
	t->window = window_ms;
	randombytes_buf(t->hash_key, sizeof(t->hash_key));
	return t;
}

void ipthrottle_free(struct ipthrottle *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->e);
	free(t);
}

/* The address as 16 bytes: IPv4 (also IPv4-mapped IPv6) in the mapped form,
 * IPv6 as its /64 prefix; anything else (never expected from the server)
 * hashed, so it still has a stable key of its own. */
static void ip_key(const char *ip, unsigned char key[KEY_LEN])
{
	struct in_addr a4;
	struct in6_addr a6;

	memset(key, 0, KEY_LEN);
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6))
			memcpy(key, &a6, KEY_LEN);
		else
			memcpy(key, &a6, 8);
	} else {
		crypto_generichash(key, KEY_LEN, (const unsigned char *)ip, strlen(ip), NULL, 0);
	}
}

static size_t slot_of(const struct ipthrottle *t, const unsigned char key[KEY_LEN])
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, key, KEY_LEN, t->hash_key);
	memcpy(&v, h, sizeof(v));
	return (size_t)v & t->mask;
}

static int expired(const struct ipthrottle *t, const struct ipt_entry *e, int64_t now)
{
	return !e->used || (now >= e->blocked_until && now - e->window_start >= t->window);
}

static struct ipt_entry *find(struct ipthrottle *t, const unsigned char key[KEY_LEN])
{
	size_t h = slot_of(t, key), i;

	for (i = 0; i < IPTHROTTLE_PROBES; i++) {
		struct ipt_entry *e = &t->e[(h + i) & t->mask];

		if (e->used && memcmp(e->key, key, KEY_LEN) == 0)
			return e;
	}
	return NULL;
}

/* 1 when a is a better eviction victim than b. */
static int better_victim(const struct ipt_entry *a, const struct ipt_entry *b, int64_t now)
{
	int ab = a->blocked_until > now, bb = b->blocked_until > now;

	if (ab != bb)
		return !ab;
	if (ab)
		return a->blocked_until < b->blocked_until;
	if (a->failures != b->failures)
		return a->failures < b->failures;
	return a->last < b->last;
}

/* A slot for a new key: a free or expired one in the probe run, else the
 * best victim. Never NULL. */
static struct ipt_entry *claim(struct ipthrottle *t, const unsigned char key[KEY_LEN], int64_t now)
{
	size_t h = slot_of(t, key), i;
	struct ipt_entry *victim = NULL;

	for (i = 0; i < IPTHROTTLE_PROBES; i++) {
		struct ipt_entry *e = &t->e[(h + i) & t->mask];

		if (expired(t, e, now)) {
			victim = e;
			break;
		}
		if (!victim || better_victim(e, victim, now))
			victim = e;
	}
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->key, key, KEY_LEN);
	victim->used = 1;
	victim->window_start = now;
	return victim;
}

int ipthrottle_blocked(struct ipthrottle *t, const char *ip, int64_t now_ms, int64_t *retry_ms)
{
	unsigned char key[KEY_LEN];
	struct ipt_entry *e;
	int blocked = 0;

	if (retry_ms)
		*retry_ms = 0;
	if (!t || !ip)
		return 0;
	/* Nothing blocked anywhere (the usual case): no hash, no lock. */
	if (__atomic_load_n(&t->horizon, __ATOMIC_ACQUIRE) <= now_ms)
		return 0;
	ip_key(ip, key);
	pthread_mutex_lock(&t->mu);
	e = find(t, key);
	if (e && e->blocked_until > now_ms) {
		blocked = 1;
		t->refused++;
		if (retry_ms)
			*retry_ms = e->blocked_until - now_ms;
	}
	pthread_mutex_unlock(&t->mu);
	return blocked;
}

int ipthrottle_fail(struct ipthrottle *t, const char *ip, int64_t now_ms)
{
	unsigned char key[KEY_LEN];
	struct ipt_entry *e;
	int started = 0;

	if (!t || !ip)
		return 0;
	ip_key(ip, key);
	pthread_mutex_lock(&t->mu);
	e = find(t, key);
	if (!e)
		e = claim(t, key, now_ms);
	if (e->blocked_until > now_ms)
		goto out; /* already blocked: the block is not extended */
	if (now_ms - e->window_start >= t->window) {
		e->failures = 0;
		e->window_start = now_ms;
	}
	e->failures++;
	e->last = now_ms;
	if (e->failures >= t->limit) {
		e->blocked_until = now_ms + t->window;
		if (e->blocked_until > t->horizon)
			__atomic_store_n(&t->horizon, e->blocked_until, __ATOMIC_RELEASE);
		started = 1;
	}
out:
	pthread_mutex_unlock(&t->mu);
	return started;
}

size_t ipthrottle_entries(struct ipthrottle *t, int64_t now_ms)
{
	size_t i, n = 0;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	for (i = 0; i <= t->mask; i++)
		n += !expired(t, &t->e[i], now_ms);
	pthread_mutex_unlock(&t->mu);
	return n;
}

uint64_t ipthrottle_refused(struct ipthrottle *t)
{
	uint64_t n;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	n = t->refused;
	pthread_mutex_unlock(&t->mu);
	return n;
}

int64_t ipthrottle_limit(const struct ipthrottle *t)
{
	return t ? t->limit : 0;
}

int64_t ipthrottle_window_ms(const struct ipthrottle *t)
{
	return t ? t->window : 0;
}
