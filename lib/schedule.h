/* schedule.h — when a task runs: the schedule grammar shared by custosd and
 * custos-agent, and the next run time in UTC.
 *
 *   manual                       only when started by hand
 *   at_start                     when the agent starts
 *   every N m | every N h        N minutes / hours after the previous run
 *   daily HH:MM                  every day at HH:MM UTC
 *   weekly MON[,TUE...] HH:MM    on the listed days (ranges like MON-FRI too)
 *   cron "MIN HOUR DOM MON DOW"  numbers, names (JAN, MON), "*", lists, ranges,
 *                                "*" + "/step" and N-M/step; DOW 0 and 7 = Sunday
 *
 * Keywords and names are case-insensitive; the quotes around a cron
 * expression are optional. As in Vixie cron (Debian's), when both DOM and
 * DOW are restricted (neither begins with '*') a day matches when EITHER
 * matches; otherwise both must.
 *
 * Pure functions, any thread. */
#ifndef CUSTOS_SCHEDULE_H
#define CUSTOS_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHEDULE_TEXT_MAX 256     /* longest accepted schedule string */

enum schedule_kind {
	SCHEDULE_MANUAL = 0,
	SCHEDULE_AT_START,
	SCHEDULE_EVERY,
	SCHEDULE_DAILY,
	SCHEDULE_WEEKLY,
	SCHEDULE_CRON,
};

struct schedule {
	enum schedule_kind kind;
	int64_t period;           /* SCHEDULE_EVERY: seconds (60 .. 366 days) */
	/* DAILY, WEEKLY and CRON are all kept as cron sets: */
	uint64_t minutes;         /* bit m: minute m (0-59) */
	uint32_t hours;           /* bit h: hour h (0-23) */
	uint32_t mdays;           /* bit d: day of month d (1-31) */
	uint16_t months;          /* bit m: month m (1-12) */
	uint8_t wdays;            /* bit d: weekday d (0 = Sunday .. 6) */
	bool mday_star, wday_star; /* the field began with '*' (day rule above) */
};

/* Parses text into *s. On error returns -1 and writes a message naming the
 * schedule to err, e.g. `schedule "every 0h": N must be at least 1`. */
int schedule_parse(const char *text, struct schedule *s, char *err, size_t errlen);

/* The first run time strictly after `after` (unix seconds, UTC).
 * EVERY: after + period (pass the previous run, or when the schedule was
 * first seen). DAILY/WEEKLY/CRON: the next matching minute. -1 for MANUAL
 * and AT_START, and when nothing matches within ten years. */
int64_t schedule_next(const struct schedule *s, int64_t after);

/* "manual", "at_start", "every", "daily", "weekly", "cron". */
const char *schedule_kind_name(enum schedule_kind k);

#endif
