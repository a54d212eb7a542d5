/* Logging: one line per event, "time level [tag] message", to stderr.
 * log_* preserve errno so callers can log and then return -errno. */
#ifndef URBD_LOG_H
#define URBD_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DBG };

extern int log_level;

void log_set_level(int level);
/* "err", "warn", "info", "debug" -> level, or -1 */
int log_parse_level(const char *s);
void log_msg(int level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(tag, ...) log_msg(LOG_LVL_ERR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_LVL_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...) log_msg(LOG_LVL_INFO, tag, __VA_ARGS__)
#define log_dbg(tag, ...)                                   \
	do {                                                \
		if (log_level >= LOG_LVL_DBG)               \
			log_msg(LOG_LVL_DBG, tag, __VA_ARGS__); \
	} while (0)

/* Rate limit for hot paths (per call site): at most `burst` lines per
 * second; the next line that gets through says how many were dropped. */
struct log_ratelimit {
	uint64_t window_start_ns;
	unsigned printed;
	unsigned suppressed;
};
int log_ratelimit_allow(struct log_ratelimit *rl, unsigned burst);

#define log_rl(level, tag, ...)                                       \
	do {                                                          \
		static __thread struct log_ratelimit rl_;             \
		if (level <= log_level && log_ratelimit_allow(&rl_, 10)) \
			log_msg(level, tag, __VA_ARGS__);              \
	} while (0)

#endif
