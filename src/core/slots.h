/* slots.h - a bounded, lock-free count of things in use: open connections,
 * open streams. A caller takes a slot before the work and gives it back
 * after; a take over the limit fails at once, and the caller counts the
 * refusal it answers.
 *
 * Header-only: two atomics and a compare-and-swap loop. A struct slots is
 * zero-initialised (static storage) and needs no set-up or teardown.
 */
#ifndef TG_SLOTS_H
#define TG_SLOTS_H

#include <stdatomic.h>
#include <stdint.h>

struct slots {
	_Atomic int64_t used;
	_Atomic uint64_t refused;
};

/* Take a slot if fewer than max are in use: 1 when taken, 0 when full.
 * max <= 0 refuses everything. */
static inline int slots_take(struct slots *s, int64_t max)
{
	int64_t cur = atomic_load_explicit(&s->used, memory_order_relaxed);

	do {
		if (cur >= max)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&s->used, &cur, cur + 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	return 1;
}

/* Give back a slot taken with slots_take. */
static inline void slots_give(struct slots *s)
{
	atomic_fetch_sub_explicit(&s->used, 1, memory_order_acq_rel);
}

/* Count one refusal (the caller refused the work for want of a slot). */
static inline void slots_refuse(struct slots *s)
{
	atomic_fetch_add_explicit(&s->refused, 1, memory_order_relaxed);
}

static inline int64_t slots_used(struct slots *s)
{
	return atomic_load_explicit(&s->used, memory_order_relaxed);
}

static inline uint64_t slots_refused(struct slots *s)
{
	return atomic_load_explicit(&s->refused, memory_order_relaxed);
}

#endif
