/* routing.c - deployment order and health; see routing.h. */
#include "gateway/routing.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"

struct slot {
	int used;
	struct route_health h;
	int64_t cool_until_us;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[ROUTE_HEALTH_SLOTS];
static int64_t attempts = 3, retries = 0, budget_us = 30000000, cool_after = 3, cool_us = 30000000;

void routing_configure(const tg_config_t *cfg)
{
	attempts = cfg->route_attempts;
	budget_us = cfg->route_budget_ms * 1000;
	retries = cfg->route_retries;
	cool_after = cfg->cooldown_failures;
	cool_us = cfg->cooldown_s * 1000000;
}

int64_t routing_attempts(void)
{
	return attempts;
}

int64_t routing_retries(void)
{
	return retries;
}

int64_t routing_budget_us(void)
{
	return budget_us;
}

static uint64_t key_hash(int64_t model_id, int64_t dep_id, int64_t prov_id, const char *up)
{
	uint64_t h = 1469598103934665603ULL;
	int64_t parts[3] = { model_id, dep_id, prov_id };
	const unsigned char *p = (const unsigned char *)parts;

	for (size_t i = 0; i < sizeof(parts); i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	for (p = (const unsigned char *)up; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static int same(const struct slot *s, int64_t model_id, int64_t dep_id, int64_t prov_id,
		const char *up)
{
	return s->h.model_id == model_id && s->h.deployment_id == dep_id &&
	       s->h.provider_id == prov_id && strcmp(s->h.upstream_model, up) == 0;
}

/* The slot of a deployment (mu held); NULL when the table is full and
 * create is set, or when it is not there. */
static struct slot *slot_of(int64_t model_id, int64_t dep_id, int64_t prov_id, const char *up,
			    int create)
{
	size_t i = (size_t)(key_hash(model_id, dep_id, prov_id, up) % ROUTE_HEALTH_SLOTS);

	for (size_t k = 0; k < ROUTE_HEALTH_SLOTS; k++, i = (i + 1) % ROUTE_HEALTH_SLOTS) {
		struct slot *s = &slots[i];

		if (s->used && same(s, model_id, dep_id, prov_id, up))
			return s;
		if (!s->used) {
			if (!create)
				return NULL;
			memset(s, 0, sizeof(*s));
			s->used = 1;
			s->h.model_id = model_id;
			s->h.deployment_id = dep_id;
			s->h.provider_id = prov_id;
			snprintf(s->h.upstream_model, sizeof(s->h.upstream_model), "%s", up);
			return s;
		}
	}
	return NULL;
}

static int cooling(const struct deployment *d, int64_t now)
{
	struct slot *s;
	int c;

	pthread_mutex_lock(&mu);
	s = slot_of(d->model_id, d->id, d->provider_id, d->upstream_model, 0);
	c = s && s->cool_until_us > now;
	pthread_mutex_unlock(&mu);
	return c;
}

void routing_order(const struct deployment *deps, int n, int *order)
{
	int64_t now = time_mono_us();
	int cool[CATALOG_DEPLOY_MAX] = { 0 }, taken[CATALOG_DEPLOY_MAX] = { 0 };
	int k = 0;

	if (n > CATALOG_DEPLOY_MAX)
		n = CATALOG_DEPLOY_MAX;
	for (int i = 0; i < n; i++)
		cool[i] = cooling(&deps[i], now);
	/* Healthy ones, priority by priority, by a weighted draw without
	 * replacement; then weight 0; then the cooling ones by priority. */
	for (int pass = 0; pass < 2; pass++) {
		for (;;) {
			int64_t prio = -1, total = 0;

			for (int i = 0; i < n; i++)
				if (!taken[i] && cool[i] == pass &&
				    (prio < 0 || deps[i].priority < prio))
					prio = deps[i].priority;
			if (prio < 0)
				break;
			for (int i = 0; i < n; i++)
				if (!taken[i] && cool[i] == pass && deps[i].priority == prio)
					total += deps[i].weight;
			if (total > 0) {
				int64_t pick = (int64_t)randombytes_uniform((uint32_t)total);

				for (int i = 0; i < n; i++) {
					if (taken[i] || cool[i] != pass ||
					    deps[i].priority != prio || deps[i].weight == 0)
						continue;
					if (pick < deps[i].weight) {
						taken[i] = 1;
						order[k++] = i;
						break;
					}
					pick -= deps[i].weight;
				}
				continue;
			}
			/* Only weight 0 is left at this priority: in table order. */
			for (int i = 0; i < n; i++) {
				if (!taken[i] && cool[i] == pass && deps[i].priority == prio) {
					taken[i] = 1;
					order[k++] = i;
				}
			}
		}
	}
}

int routing_report(const struct deployment *d, int ok)
{
	int64_t now = time_mono_us();
	struct slot *s;
	int started = 0;

	pthread_mutex_lock(&mu);
	s = slot_of(d->model_id, d->id, d->provider_id, d->upstream_model, 1);
	if (s && ok) {
		s->h.ok_total++;
		s->h.failures = 0;
		s->cool_until_us = 0;
	} else if (s) {
		s->h.failed_total++;
		s->h.failures++;
		if (s->h.failures >= cool_after && s->cool_until_us <= now) {
			s->cool_until_us = now + cool_us;
			s->h.cooldowns_total++;
			started = 1;
		}
	}
	pthread_mutex_unlock(&mu);
	if (started)
		log_warn("routing: deployment %lld of model %lld (provider %lld, %s) failed %lld "
			 "times in a row; cooled down for %lld s",
			 (long long)d->id, (long long)d->model_id, (long long)d->provider_id,
			 d->upstream_model, (long long)cool_after, (long long)(cool_us / 1000000));
	return started;
}

int64_t routing_backoff_us(int k, const char *retry_after)
{
	int64_t cap = 50000LL << (k > 5 ? 5 : k - 1 < 0 ? 0 : k - 1);

	if (retry_after && *retry_after >= '0' && *retry_after <= '9') {
		char *end;
		long v = strtol(retry_after, &end, 10);

		if (*end == '\0' && v >= 0 && v <= 2)
			return (int64_t)v * 1000000;
	}
	if (cap > 1000000)
		cap = 1000000;
	return (int64_t)randombytes_uniform((uint32_t)cap + 1);
}

static void fill(const struct slot *s, int64_t now, struct route_health *out)
{
	*out = s->h;
	out->cooling_for_ms = s->cool_until_us > now ? (s->cool_until_us - now + 999) / 1000 : 0;
}

void routing_each(void (*fn)(void *ud, const struct route_health *h), void *ud)
{
	struct route_health *copy = malloc(sizeof(*copy) * ROUTE_HEALTH_SLOTS);
	int64_t now = time_mono_us();
	size_t n = 0;

	if (!copy)
		return;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ROUTE_HEALTH_SLOTS; i++)
		if (slots[i].used)
			fill(&slots[i], now, &copy[n++]);
	pthread_mutex_unlock(&mu);
	for (size_t i = 0; i < n; i++)
		fn(ud, &copy[i]);
	free(copy);
}

void routing_health_of(int64_t model_id, int64_t deployment_id, int64_t provider_id,
		       const char *upstream_model, struct route_health *out)
{
	struct slot *s;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&mu);
	s = slot_of(model_id, deployment_id, provider_id, upstream_model, 0);
	if (s)
		fill(s, time_mono_us(), out);
	pthread_mutex_unlock(&mu);
}

void routing_reset(void)
{
	pthread_mutex_lock(&mu);
	memset(slots, 0, sizeof(slots));
	pthread_mutex_unlock(&mu);
}
