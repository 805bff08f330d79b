/* log.h - leveled logging to stderr, one line per event.
 *
 * Never pass secrets (API keys, passwords, cookies, provider keys) to these
 * functions: log lines are meant to be shipped and kept.
 */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The access line: one per HTTP request; client is its address (the real
 * client's behind a trusted proxy), NULL when unknown. */
void log_request(const char *method, const char *path, int status, int64_t dur_us,
		 const char *request_id, const char *client);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
