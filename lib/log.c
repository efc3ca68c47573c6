/* log.c — see log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "custos";
static int log_to_syslog;
static volatile enum log_level log_level = LOG_LVL_INFO;

void
log_init(const char *ident, const char *target, enum log_level level)
{
	log_ident = ident;
	log_level = level;
	log_to_syslog = target != NULL && strcmp(target, "syslog") == 0;
	if (log_to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *name)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

static void
log_emit(enum log_level lvl, const char *sub, int err, const char *fmt, va_list ap)
{
	static const char *tags[] = { "error", "warn", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];
	int n;

	if (lvl > log_level)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (err && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));

	if (log_to_syslog) {
		syslog(prio[lvl], "%s: %s", sub, msg);
		return;
	}
	char line[2300], ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s %s: %s\n", ts,
	    now.tv_nsec / 1000000, log_ident, (int)getpid(), tags[lvl], sub, msg);
	if (n > 0) {
		size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
		if (write(STDERR_FILENO, line, len) < 0)
			return;
	}
}

#define LOG_FN(name, lvl, witherr)                                    \
	void name(const char *sub, const char *fmt, ...)              \
	{                                                             \
		int saved = errno;                                    \
		va_list ap;                                           \
		va_start(ap, fmt);                                    \
		log_emit(lvl, sub, (witherr) ? saved : 0, fmt, ap);   \
		va_end(ap);                                           \
		errno = saved;                                        \
	}

LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)
LOG_FN(log_error, LOG_LVL_ERROR, 0)

void
fatal(const char *sub, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, sub, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *sub, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, sub, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
