/* inflight.c - the table of request ids in flight; see inflight.h. */
#include "billing/inflight.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static char inflight[INFLIGHT_SLOTS][INFLIGHT_ID_MAX + 1];

static size_t id_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t slot_at(size_t h, size_t i)
{
	return (h + i) & (INFLIGHT_SLOTS - 1);
}

int inflight_claim(const char *id)
{
	size_t h = id_hash(id), i;
	int ok = 0;

	pthread_mutex_lock(&inflight_mu);
	for (i = 0; i < INFLIGHT_SLOTS; i++) {
		char *slot = inflight[slot_at(h, i)];

		if (strcmp(slot, id) == 0)
			break;
		if (slot[0] == '\0') {
			snprintf(slot, INFLIGHT_ID_MAX + 1, "%s", id);
			ok = 1;
			break;
		}
	}
	if (i == INFLIGHT_SLOTS)
		ok = 1; /* table full: the ledger's UNIQUE still prevents a double debit */
	pthread_mutex_unlock(&inflight_mu);
	return ok;
}

/* Put an id that followed a deleted one back where its probe chain finds it. */
static void reinsert_locked(const char *id)
{
	size_t h = id_hash(id), m;

	for (m = 0; m < INFLIGHT_SLOTS; m++) {
		char *slot = inflight[slot_at(h, m)];

		if (slot[0] == '\0') {
			snprintf(slot, INFLIGHT_ID_MAX + 1, "%s", id);
			return;
		}
	}
}

void inflight_drop(const char *id)
{
	size_t h = id_hash(id), i, j, k;

	pthread_mutex_lock(&inflight_mu);
	for (i = 0; i < INFLIGHT_SLOTS; i++) {
		k = slot_at(h, i);
		if (inflight[k][0] == '\0')
			break;
		if (strcmp(inflight[k], id) != 0)
			continue;
		/* Backward-shift deletion keeps probe chains intact. */
		inflight[k][0] = '\0';
		for (j = slot_at(k, 1); inflight[j][0]; j = slot_at(j, 1)) {
			char tmp[INFLIGHT_ID_MAX + 1];

			snprintf(tmp, sizeof(tmp), "%s", inflight[j]);
			inflight[j][0] = '\0';
			reinsert_locked(tmp);
		}
		break;
	}
	pthread_mutex_unlock(&inflight_mu);
}
