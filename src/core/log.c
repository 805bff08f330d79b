/* log.c - leveled logging; see log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile int log_level_cur = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl)
{
	log_level_cur = (int)lvl;
}

enum log_level log_get_level(void)
{
	return (enum log_level)log_level_cur;
}

int log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void log_stamp(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char stamp[80], line[2048], safe[2048];
	size_t i, k = 0;
	va_list ap;
	int n;

	if ((int)lvl < log_level_cur)
		return;
	log_stamp(stamp, sizeof(stamp));
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Whatever a client managed to put in (a method, a path): one line, no
	 * terminal escapes; control characters as \xNN. */
	for (i = 0; line[i] && k + 5 < sizeof(safe); i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			k += (size_t)snprintf(safe + k, sizeof(safe) - k, "\\x%02x", ch);
		else
			safe[k++] = (char)ch;
	}
	safe[k] = '\0';
	/* One fputs per line keeps lines from different threads whole. */
	fprintf(stderr, "%s %-5s %s\n", stamp, level_names[lvl], safe);
}

void log_request(const char *method, const char *path, int status, int64_t dur_us,
		 const char *request_id, const char *client)
{
	if (LOG_INFO < log_level_cur)
		return;
	log_msg(LOG_INFO, "%s %s %d %lld.%03lldms id=%s client=%s", method, path, status,
		(long long)(dur_us / 1000), (long long)(dur_us % 1000),
		request_id && *request_id ? request_id : "-", client && *client ? client : "-");
}
