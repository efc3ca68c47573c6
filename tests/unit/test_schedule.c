/* test_schedule.c — unit tests for lib/schedule.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "schedule.h"

/* "YYYY-MM-DD HH:MM" (UTC) to unix seconds. */
static int64_t
utc(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &tm.tm_hour, &tm.tm_min), 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static struct schedule
parse_ok(const char *text)
{
	struct schedule s;
	char err[256];
	int rc = schedule_parse(text, &s, err, sizeof(err));
	if (rc != 0)
		fail_msg("schedule_parse(%s): %s", text, err);
	return s;
}

struct next_case {
	const char *sched, *after, *want;    /* want NULL: -1 */
};

static void
check_next(const struct next_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct schedule s = parse_ok(c[i].sched);
		int64_t got = schedule_next(&s, utc(c[i].after));
		int64_t want = c[i].want != NULL ? utc(c[i].want) : -1;
		if (got != want) {
			char g[64] = "-1";
			if (got >= 0) {
				time_t tt = (time_t)got;
				struct tm tm;
				gmtime_r(&tt, &tm);
				strftime(g, sizeof(g), "%Y-%m-%d %H:%M (%a)", &tm);
			}
			fail_msg("%s after %s: got %s, want %s", c[i].sched, c[i].after, g,
			    c[i].want != NULL ? c[i].want : "-1");
		}
	}
}

static void
test_manual_at_start(void **state)
{
	(void)state;
	struct schedule s = parse_ok("manual");
	assert_int_equal(s.kind, SCHEDULE_MANUAL);
	assert_int_equal(schedule_next(&s, 1000), -1);
	s = parse_ok("  AT_START ");
	assert_int_equal(s.kind, SCHEDULE_AT_START);
	assert_int_equal(schedule_next(&s, 1000), -1);
	assert_string_equal(schedule_kind_name(SCHEDULE_AT_START), "at_start");
	assert_string_equal(schedule_kind_name(SCHEDULE_CRON), "cron");
}

static void
test_every(void **state)
{
	(void)state;
	struct schedule s = parse_ok("every 30m");
	assert_int_equal(s.kind, SCHEDULE_EVERY);
	assert_int_equal(s.period, 1800);
	assert_int_equal(schedule_next(&s, 1000), 2800);
	s = parse_ok("every 4h");
	assert_int_equal(s.period, 4 * 3600);
	assert_int_equal(schedule_next(&s, 7), 7 + 4 * 3600);
	s = parse_ok("Every 2 H");
	assert_int_equal(s.period, 7200);
	s = parse_ok("every 8784h");      /* exactly 366 days */
	assert_int_equal(s.period, 366 * 86400);
	s = parse_ok("every 1m");
	assert_int_equal(schedule_next(&s, -60), 0);
}

static void
test_daily_weekly(void **state)
{
	(void)state;
	static const struct next_case c[] = {
		{ "daily 02:30", "2024-01-01 00:00", "2024-01-01 02:30" },
		{ "daily 02:30", "2024-01-01 02:29", "2024-01-01 02:30" },
		{ "daily 02:30", "2024-01-01 02:30", "2024-01-02 02:30" },   /* strictly after */
		{ "daily 2:30", "2024-12-31 23:59", "2025-01-01 02:30" },
		{ "daily 00:00", "2024-02-28 12:00", "2024-02-29 00:00" },
		{ "daily 23:59", "2023-02-28 23:59", "2023-03-01 23:59" },
		/* 2024-09-03 is a Tuesday */
		{ "weekly MON,THU 09:00", "2024-09-03 12:00", "2024-09-05 09:00" },
		{ "weekly mon,thu 09:00", "2024-09-05 09:00", "2024-09-09 09:00" },
		{ "weekly SUN 00:00", "2024-12-30 00:00", "2025-01-05 00:00" },
		{ "weekly MON-FRI 08:15", "2024-09-06 09:00", "2024-09-09 08:15" },
		{ "weekly FRI-MON 08:15", "2024-09-03 09:00", "2024-09-06 08:15" },
		{ "weekly FRI-MON 08:15", "2024-09-08 09:00", "2024-09-09 08:15" },
	};
	check_next(c, sizeof(c) / sizeof(c[0]));

	struct schedule s = parse_ok("weekly FRI-MON 08:15");
	assert_int_equal(s.wdays, (1 << 5) | (1 << 6) | (1 << 0) | (1 << 1));
	assert_false(s.wday_star);
	assert_true(s.mday_star);
}

static void
test_cron(void **state)
{
	(void)state;
	static const struct next_case c[] = {
		{ "cron \"*/15 * * * *\"", "2024-05-05 10:07", "2024-05-05 10:15" },
		{ "cron \"*/15 * * * *\"", "2024-05-05 23:50", "2024-05-06 00:00" },
		{ "cron \"0-30/10 3 * * *\"", "2024-05-05 03:31", "2024-05-06 03:00" },
		{ "cron 5 4 * * *", "2024-05-05 04:05", "2024-05-06 04:05" },
		{ "cron \"0 0 1 * *\"", "2024-01-31 12:00", "2024-02-01 00:00" },
		{ "cron \"0 0 1 1 *\"", "2024-01-01 00:00", "2025-01-01 00:00" },
		/* April has no 31st: the next 31st is in May */
		{ "cron \"0 0 31 * *\"", "2024-04-01 00:00", "2024-05-31 00:00" },
		{ "cron \"0 0 31 * *\"", "2024-07-31 00:00", "2024-08-31 00:00" },
		/* leap days */
		{ "cron \"0 12 29 2 *\"", "2023-03-01 00:00", "2024-02-29 12:00" },
		{ "cron \"0 12 29 2 *\"", "2024-02-29 12:00", "2028-02-29 12:00" },
		{ "cron \"0 12 29 feb *\"", "2096-03-01 00:00", "2104-02-29 12:00" },  /* 2100 is not leap */
		/* DOM and DOW both restricted: either (2024-09-01 is a Sunday) */
		{ "cron \"0 0 13 * 5\"", "2024-09-01 00:00", "2024-09-06 00:00" },
		{ "cron \"0 0 13 * 5\"", "2024-09-06 00:00", "2024-09-13 00:00" },
		{ "cron \"0 0 13 * 5\"", "2024-09-13 00:00", "2024-09-20 00:00" },
		{ "cron \"0 0 13 * *\"", "2024-09-01 00:00", "2024-09-13 00:00" },
		{ "cron \"0 0 * * 5\"", "2024-09-01 00:00", "2024-09-06 00:00" },
		/* a field beginning with '*' counts as unrestricted (Vixie): both must match */
		{ "cron \"0 0 */2 * 5\"", "2024-09-01 00:00", "2024-09-13 00:00" },
		/* 7 and names mean Sunday */
		{ "cron \"0 0 * * 7\"", "2024-09-02 00:00", "2024-09-08 00:00" },
		{ "cron \"0 0 * * sun\"", "2024-09-02 00:00", "2024-09-08 00:00" },
		{ "cron \"0 0 * * 5-7\"", "2024-09-02 00:00", "2024-09-06 00:00" },
		{ "cron \"30 6 * JUL,dec mon\"", "2024-01-10 00:00", "2024-07-01 06:30" },
		{ "cron \"0 0 1 1-3 *\"", "2024-03-02 00:00", "2025-01-01 00:00" },
		/* the month restricts both: the next Monday in February */
		{ "cron \"0 0 29 2 1\"", "2024-03-01 00:00", "2025-02-03 00:00" },
		{ "cron \"0 0 29 2 1\"", "2024-02-27 00:00", "2024-02-29 00:00" },
		{ "cron \"10/20 * * * *\"", "2024-03-01 00:31", "2024-03-01 00:50" },
		{ "cron \"1,2,59 22 * * *\"", "2024-03-01 22:02", "2024-03-01 22:59" },
	};
	check_next(c, sizeof(c) / sizeof(c[0]));

	struct schedule s = parse_ok("cron \"0 0 * * 7\"");
	assert_int_equal(s.wdays, 1);
	s = parse_ok("cron \"* * * * *\"");
	assert_int_equal(s.minutes, (UINT64_C(1) << 60) - 1);
	assert_int_equal(schedule_next(&s, 59), 60);
	assert_int_equal(schedule_next(&s, 60), 120);
	assert_int_equal(schedule_next(&s, -1), 0);
}

/* The search against a minute-by-minute walk with gmtime_r, for random
 * starting points (the walk re-implements the day rule independently). */
static void
test_cron_bruteforce(void **state)
{
	(void)state;
	static const char *exprs[] = {
		"cron \"*/7 */5 * * *\"", "cron \"0 0 13 * 5\"", "cron \"15 3 */3 * *\"",
		"cron \"0 12 * * 1-5\"", "cron \"59 23 31 * *\"", "cron \"0 0 1,15 * 0\"",
		"cron \"30 2 28-31 * *\"", "cron \"0 6 * * sat,sun\"", "cron \"0 0 */2 * 3\"",
		"weekly TUE,FRI 23:45", "daily 00:00", "cron \"0 0 29 * 2\"",
	};
	uint64_t rnd = 88172645463325252ull;
	for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
		struct schedule s = parse_ok(exprs[e]);
		for (int k = 0; k < 25; k++) {
			rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17;
			int64_t after = (int64_t)(rnd % (UINT64_C(4102444800) - 946684800)) + 946684800;
			int64_t want = -1;
			for (int64_t t = (after / 60 + 1) * 60; t < after + 62 * 86400; t += 60) {
				time_t tt = (time_t)t;
				struct tm tm;
				gmtime_r(&tt, &tm);
				bool dom = (s.mdays >> tm.tm_mday) & 1, dow = (s.wdays >> tm.tm_wday) & 1;
				bool day = (s.mday_star || s.wday_star) ? dom && dow : dom || dow;
				if (day && ((s.months >> (tm.tm_mon + 1)) & 1) && ((s.hours >> tm.tm_hour) & 1)
				    && ((s.minutes >> tm.tm_min) & 1)) {
					want = t;
					break;
				}
			}
			assert_true(want > 0);
			int64_t got = schedule_next(&s, after);
			if (got != want)
				fail_msg("%s after %lld: got %lld, want %lld", exprs[e], (long long)after,
				    (long long)got, (long long)want);
		}
	}
}

struct bad_case {
	const char *text, *msg;   /* msg: the whole error text */
};

static void
test_invalid(void **state)
{
	(void)state;
	static const struct bad_case c[] = {
		{ "every 0h", "schedule \"every 0h\": N must be at least 1" },
		{ "every 0m", "schedule \"every 0m\": N must be at least 1" },
		{ "every 5x", "schedule \"every 5x\": expected the unit m (minutes) or h (hours) after N" },
		{ "every 5 hours", "schedule \"every 5 hours\": expected the unit m (minutes) or h (hours) after N" },
		{ "every h", "schedule \"every h\": expected \"every N m\" or \"every N h\"" },
		{ "every", "schedule \"every\": expected \"every N m\" or \"every N h\"" },
		{ "every 8785h", "schedule \"every 8785h\": the period must not exceed 366 days" },
		{ "every 99999999999m", "schedule \"every 99999999999m\": the period must not exceed 366 days" },
		{ "daily 24:00", "schedule \"daily 24:00\": expected a time HH:MM (00:00 to 23:59)" },
		{ "daily 12:60", "schedule \"daily 12:60\": expected a time HH:MM (00:00 to 23:59)" },
		{ "daily 2:5", "schedule \"daily 2:5\": expected a time HH:MM (00:00 to 23:59)" },
		{ "daily", "schedule \"daily\": expected a time HH:MM (00:00 to 23:59)" },
		{ "daily 02:30 x", "schedule \"daily 02:30 x\": unexpected \"x\" after the time" },
		{ "weekly MOX 09:00", "schedule \"weekly MOX 09:00\": unknown day \"MOX\" (use MON, TUE, WED, THU, FRI, SAT, SUN)" },
		{ "weekly 09:00", "schedule \"weekly 09:00\": unknown day \"09:00\" (use MON, TUE, WED, THU, FRI, SAT, SUN)" },
		{ "weekly MON", "schedule \"weekly MON\": expected a time HH:MM after the days" },
		{ "weekly", "schedule \"weekly\": expected days and a time, e.g. \"weekly MON,THU 02:30\"" },
		{ "weekly MON, 09:00", "schedule \"weekly MON, 09:00\": unknown day \"\" (use MON, TUE, WED, THU, FRI, SAT, SUN)" },
		{ "cron \"61 * * * *\"", "schedule \"cron \"61 * * * *\"\": minute: 61 is out of range 0-59" },
		{ "cron \"* 24 * * *\"", "schedule \"cron \"* 24 * * *\"\": hour: 24 is out of range 0-23" },
		{ "cron \"* * 0 * *\"", "schedule \"cron \"* * 0 * *\"\": day of month: 0 is out of range 1-31" },
		{ "cron \"* * * 13 *\"", "schedule \"cron \"* * * 13 *\"\": month: 13 is out of range 1-12" },
		{ "cron \"* * * * 8\"", "schedule \"cron \"* * * * 8\"\": day of week: 8 is out of range 0-7" },
		{ "cron \"* * * *\"", "schedule \"cron \"* * * *\"\": cron needs 5 fields (minute hour day-of-month month day-of-week), got 4" },
		{ "cron \"* * * * * *\"", "schedule \"cron \"* * * * * *\"\": cron needs 5 fields (minute hour day-of-month month day-of-week), got more" },
		{ "cron \"5-1 * * * *\"", "schedule \"cron \"5-1 * * * *\"\": minute: range 5-1 goes backwards" },
		{ "cron \"*/0 * * * *\"", "schedule \"cron \"*/0 * * * *\"\": minute: step 0 is out of range 1-60" },
		{ "cron \"*/x * * * *\"", "schedule \"cron \"*/x * * * *\"\": minute: bad step \"x\"" },
		{ "cron \"1, * * * *\"", "schedule \"cron \"1, * * * *\"\": minute: list ends with a comma" },
		{ "cron \"1,,2 * * * *\"", "schedule \"cron \"1,,2 * * * *\"\": minute: missing number" },
		{ "cron \"x * * * *\"", "schedule \"cron \"x * * * *\"\": minute: \"x\" is not a number" },
		{ "cron \"* * * foo *\"", "schedule \"cron \"* * * foo *\"\": month: \"foo\" is not a number or a name" },
		{ "cron \"0 0 30 2 *\"", "schedule \"cron \"0 0 30 2 *\"\": the day of month never occurs in the listed months" },
		{ "cron \"0 0 31 2,4,6 *\"", "schedule \"cron \"0 0 31 2,4,6 *\"\": the day of month never occurs in the listed months" },
		{ "cron \"0 0 * * *", "schedule \"cron \"0 0 * * *\": the cron expression has no closing quote" },
		{ "cron \"0 0 * * *\" x", "schedule \"cron \"0 0 * * *\" x\": unexpected \"x\" after the cron expression" },
		{ "hourly", "schedule \"hourly\": unknown schedule; use manual, at_start, every N m|h, daily HH:MM, weekly DAYS HH:MM or cron \"MIN HOUR DOM MON DOW\"" },
		{ "", "schedule \"\": unknown schedule; use manual, at_start, every N m|h, daily HH:MM, weekly DAYS HH:MM or cron \"MIN HOUR DOM MON DOW\"" },
		{ "manualx", "schedule \"manualx\": unknown schedule; use manual, at_start, every N m|h, daily HH:MM, weekly DAYS HH:MM or cron \"MIN HOUR DOM MON DOW\"" },
		{ "manual now", "schedule \"manual now\": \"manual\" takes no arguments" },
		{ "at_start 5", "schedule \"at_start 5\": \"at_start\" takes no arguments" },
		{ "daily 02:30\n", "schedule \"daily 02:30\n\": contains a control character" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct schedule s;
		char err[512];
		memset(&s, 0x5a, sizeof(s));
		struct schedule before = s;
		if (schedule_parse(c[i].text, &s, err, sizeof(err)) != -1)
			fail_msg("\"%s\" parsed", c[i].text);
		if (strcmp(err, c[i].msg) != 0)
			fail_msg("\"%s\": got '%s', want '%s'", c[i].text, err, c[i].msg);
		assert_memory_equal(&s, &before, sizeof(s));   /* untouched on error */
	}

	/* too long, NULL, and a tiny error buffer */
	char lng[SCHEDULE_TEXT_MAX + 10];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	struct schedule s;
	char err[128];
	assert_int_equal(schedule_parse(lng, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "schedule \"...\": longer than 256 characters");
	assert_int_equal(schedule_parse(NULL, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "schedule \"\": no schedule given");
	char tiny[8];
	assert_int_equal(schedule_parse("every 0h", &s, tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "schedul");
	assert_int_equal(schedule_parse("every 0h", &s, NULL, 0), -1);
}

static void
test_next_bounds(void **state)
{
	(void)state;
	struct schedule s = parse_ok("daily 01:00");
	/* far outside the supported range */
	assert_int_equal(schedule_next(&s, INT64_MAX), -1);
	assert_int_equal(schedule_next(&s, INT64_MIN), -1);
	/* before the epoch works too */
	assert_int_equal(schedule_next(&s, utc("1969-12-31 12:00")), utc("1970-01-01 01:00"));
	/* a hand-made impossible schedule gives -1 instead of looping */
	struct schedule bad = s;
	bad.kind = SCHEDULE_CRON;
	bad.mdays = 1u << 31;
	bad.months = 1u << 2;
	bad.wday_star = true;
	assert_int_equal(schedule_next(&bad, 0), -1);
	bad.months = 0;
	assert_int_equal(schedule_next(&bad, 0), -1);
	struct schedule ev = { .kind = SCHEDULE_EVERY, .period = 0 };
	assert_int_equal(schedule_next(&ev, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manual_at_start),
		cmocka_unit_test(test_every),
		cmocka_unit_test(test_daily_weekly),
		cmocka_unit_test(test_cron),
		cmocka_unit_test(test_cron_bruteforce),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_next_bounds),
	};
	return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
