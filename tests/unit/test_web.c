/* Unit tests for the dashboard framework: the per-thread guard that keeps a
 * failed page from re-entering the layout through the error hook (it nests,
 * and one thread's guard is never seen by another), and the configuration
 * handed to web_init. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "crypto/secrets.h"
#include "web/web.h"

static void test_guard_nests(void **state)
{
	int outer, inner;

	(void)state;
	assert_int_equal(web_plain_errors(), 0);
	outer = web_plain_errors_begin();
	assert_int_equal(outer, 0);
	assert_int_equal(web_plain_errors(), 1);
	inner = web_plain_errors_begin();
	assert_int_equal(inner, 1);
	web_plain_errors_end(inner);
	assert_int_equal(web_plain_errors(), 1); /* still inside the outer one */
	web_plain_errors_end(outer);
	assert_int_equal(web_plain_errors(), 0);
}

struct shared {
	pthread_barrier_t set, checked;
	int seen_by_other;
	int other_after;
};

static void *other_thread(void *arg)
{
	struct shared *s = arg;
	int prev;

	pthread_barrier_wait(&s->set); /* the main thread is inside its guard now */
	s->seen_by_other = web_plain_errors();
	prev = web_plain_errors_begin();
	web_plain_errors_end(prev);
	s->other_after = web_plain_errors();
	pthread_barrier_wait(&s->checked);
	return NULL;
}

/* Two requests on two threads: one inside the guard (its page failed) must
 * not turn the other's error page into the plain one, and the other leaving
 * its own guard must not end the first one's. */
static void test_guard_is_per_thread(void **state)
{
	struct shared s = { .seen_by_other = -1, .other_after = -1 };
	pthread_t t;
	int prev;

	(void)state;
	assert_int_equal(pthread_barrier_init(&s.set, NULL, 2), 0);
	assert_int_equal(pthread_barrier_init(&s.checked, NULL, 2), 0);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &s), 0);
	prev = web_plain_errors_begin();
	pthread_barrier_wait(&s.set);
	pthread_barrier_wait(&s.checked);
	assert_int_equal(web_plain_errors(), 1);
	web_plain_errors_end(prev);
	pthread_join(t, NULL);
	assert_int_equal(s.seen_by_other, 0);
	assert_int_equal(s.other_after, 0);
	assert_int_equal(web_plain_errors(), 0);
	pthread_barrier_destroy(&s.set);
	pthread_barrier_destroy(&s.checked);
}

static void test_init_keeps_config(void **state)
{
	const char *src = getenv("TG_SOURCE_DIR");
	tg_config_t cfg;
	tg_secrets_t secrets;
	char err[256] = "";

	(void)state;
	config_defaults(&cfg);
	snprintf(cfg.assets_dir, sizeof(cfg.assets_dir), "%s", src ? src : ".");
	memset(&secrets, 0, sizeof(secrets));
	assert_null(web_config());
	if (web_init(&cfg, &secrets, err, sizeof(err)) != 0)
		fail_msg("web_init: %s", err);
	assert_ptr_equal(web_config(), &cfg);
	web_shutdown();
	assert_null(web_config());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guard_nests),
		cmocka_unit_test(test_guard_is_per_thread),
		cmocka_unit_test(test_init_keeps_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
