/* log.h — levelled logging with a subsystem token, to stderr or syslog.
 *
 * log_warn() appends strerror(errno); log_warnx() does not (OpenBSD style).
 * fatal()/fatalx() log and exit(1): only for start-up failures.
 * Thread-safe: each message is formatted into a local buffer and written with
 * one write(2) (stderr) or one syslog(3) call. */
#ifndef CUSTOS_LOG_H
#define CUSTOS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* ident: program name; target: "stderr" or "syslog". */
void log_init(const char *ident, const char *target, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error"/"warn"/"info"/"debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
enum log_level log_get_level(void);

void log_warn(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warnx(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_debug(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fatal(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void fatalx(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
