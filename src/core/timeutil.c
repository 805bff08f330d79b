/* timeutil.c - clocks and timestamp formatting; see timeutil.h. */
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/common.h"

int64_t time_now(void)
{
	return (int64_t)time(NULL);
}

int64_t time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void time_format(int64_t t, char out[20])
{
	time_t tt = (time_t)t;
	struct tm tm;
	char tmp[80];

	gmtime_r(&tt, &tm);
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d %02d:%02d:%02d", (tm.tm_year + 1900) % 10000,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(out, 20, "%.19s", tmp);
}

void time_format_date(int64_t t, char out[11])
{
	time_t tt = (time_t)t;
	struct tm tm;
	char tmp[64];

	gmtime_r(&tt, &tm);
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
		 tm.tm_mday);
	snprintf(out, 11, "%.10s", tmp);
}

static int parse_digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return TG_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return TG_OK;
}

int time_parse(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	size_t len = strlen(s);

	if (len < 10 || parse_digits(s, 4, &y) || s[4] != '-' || parse_digits(s + 5, 2, &mo) ||
	    s[7] != '-' || parse_digits(s + 8, 2, &d))
		return TG_EINVAL;
	if (len > 10) {
		if ((s[10] != ' ' && s[10] != 'T') || len < 16 || parse_digits(s + 11, 2, &h) ||
		    s[13] != ':' || parse_digits(s + 14, 2, &mi))
			return TG_EINVAL;
		if (len > 16 && (len != 19 || s[16] != ':' || parse_digits(s + 17, 2, &sec)))
			return TG_EINVAL;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    sec > 59)
		return TG_EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm);
	/* timegm normalises Feb 30 into March; reject such dates. */
	{
		char back[11];

		time_format_date(*out, back);
		if (strncmp(back, s, 10) != 0)
			return TG_EINVAL;
	}
	return TG_OK;
}

void time_deadline(struct timespec *ts, int64_t us)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(us / 1000000);
	ts->tv_nsec += (long)(us % 1000000) * 1000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}
