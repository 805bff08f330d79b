/* timeutil.h - clocks and timestamp formatting. */
#ifndef TG_TIMEUTIL_H
#define TG_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds since the epoch (wall clock). */
int64_t time_now(void);
/* Milliseconds since the epoch (wall clock). */
int64_t time_now_ms(void);
/* Microseconds from a monotonic clock, for durations. */
int64_t time_mono_us(void);
/* The wall-clock moment `us` microseconds from now, as pthread_cond_timedwait
 * takes its deadline. */
struct timespec;
void time_deadline(struct timespec *ts, int64_t us);
/* "2026-11-23 16:40:05" in UTC; out must hold 20 bytes. */
void time_format(int64_t t, char out[20]);
/* "2026-11-23"; out must hold 11 bytes. */
void time_format_date(int64_t t, char out[11]);
/* Parse "YYYY-MM-DD" (UTC midnight) or "YYYY-MM-DD HH:MM[:SS]" / "YYYY-MM-DDTHH:MM[:SS]";
 * TG_EINVAL on anything else. */
int time_parse(const char *s, int64_t *out);

#endif
