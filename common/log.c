#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

int log_level = LOG_LVL_INFO;

static const char *const level_name[] = { "ERR", "WARN", "INFO", "DBG" };

void log_set_level(int level)
{
	if (level >= LOG_LVL_ERR && level <= LOG_LVL_DBG)
		log_level = level;
}

int log_parse_level(const char *s)
{
	static const char *const names[] = { "err", "warn", "info", "debug" };

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

void log_msg(int level, const char *tag, const char *fmt, ...)
{
	int saved = errno;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s [%s] ",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_name[level], tag);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
	errno = saved;
}

int log_ratelimit_allow(struct log_ratelimit *rl, unsigned burst)
{
	uint64_t now = now_ns();

	if (now - rl->window_start_ns > 1000000000ULL) {
		if (rl->suppressed)
			log_msg(LOG_LVL_WARN, "log", "%u similar messages suppressed",
				rl->suppressed);
		rl->window_start_ns = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < burst) {
		rl->printed++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}
