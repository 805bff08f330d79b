/* pool.h - a small free list of idle per-call resources.
 *
 * Worker threads outnumber the calls that touch the database or a provider
 * at any moment by far (most workers wait on a client or a stream), so the
 * expensive per-call resources (SQLite connections with their statement
 * caches, libcurl handles with their kept-alive provider connections) are
 * borrowed for a call and handed back, not owned by a thread for its life.
 * A pool keeps up to `keep` idle items (at most POOL_MAX); the rest are
 * freed by whoever handed them back.
 */
#ifndef TG_POOL_H
#define TG_POOL_H

#include <pthread.h>

#define POOL_MAX 256

struct pool {
	pthread_mutex_t mu;
	int n, keep;
	void *items[POOL_MAX];
};

#define POOL_INIT(keep_)                               \
	{                                              \
		PTHREAD_MUTEX_INITIALIZER, 0, (keep_), \
		{                                      \
			0                              \
		}                                      \
	}

/* An idle item, or NULL when the pool is empty (make a new one). */
void *pool_get(struct pool *p);
/* Hand item back: 1 when the pool kept it, 0 when it is full and the caller
 * must free the item. */
int pool_put(struct pool *p, void *item);
/* Take every idle item out, calling free_fn on each (shutdown, or a change
 * that makes them stale). */
void pool_drain(struct pool *p, void (*free_fn)(void *));
/* Idle items now. */
int pool_idle(struct pool *p);

#endif
