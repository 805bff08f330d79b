/* pool.c - a small free list of idle per-call resources; see pool.h. */
#include "core/pool.h"

#include <stddef.h>

void *pool_get(struct pool *p)
{
	void *item = NULL;

	pthread_mutex_lock(&p->mu);
	if (p->n > 0)
		item = p->items[--p->n];
	pthread_mutex_unlock(&p->mu);
	return item;
}

int pool_put(struct pool *p, void *item)
{
	int kept = 0;

	pthread_mutex_lock(&p->mu);
	if (p->n < p->keep && p->n < POOL_MAX) {
		p->items[p->n++] = item;
		kept = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return kept;
}

void pool_drain(struct pool *p, void (*free_fn)(void *))
{
	for (;;) {
		void *item = pool_get(p);

		if (!item)
			break;
		free_fn(item);
	}
}

int pool_idle(struct pool *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->n;
	pthread_mutex_unlock(&p->mu);
	return n;
}
