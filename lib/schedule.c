/* schedule.c — see schedule.h. Times are UTC; calendar arithmetic is done
 * here (days <-> civil date) so nothing depends on TZ or the C library's
 * time functions. */
#include "schedule.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define DAY_S 86400
#define PERIOD_MAX ((int64_t)366 * DAY_S)
#define SEARCH_YEARS 10

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec",
};
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

struct perr {
	const char *text;
	char *err;
	size_t errlen;
};

static int perr_set(struct perr *pe, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes `schedule "TEXT": message`; always returns -1. */
static int
perr_set(struct perr *pe, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (pe->err == NULL || pe->errlen == 0)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(void)snprintf(pe->err, pe->errlen, "schedule \"%s\": %s", pe->text, msg);
	return -1;
}

/* ---- calendar (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
month_days(int m, bool leap)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap ? 29 : days[m - 1];
}

/* ---- parsing helpers ---- */

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Matches keyword kw (case-insensitive) followed by whitespace or the end. */
static bool
keyword(const char **pp, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(*pp, kw, n) != 0)
		return false;
	char c = (*pp)[n];
	if (c != '\0' && c != ' ' && c != '\t')
		return false;
	*pp += n;
	return true;
}

/* HH:MM at *pp; the rest of the text must be blank. */
static int
parse_time_end(const char *p, int *hour, int *minute, struct perr *pe)
{
	int h = 0, m = 0, nd;

	p = skip_ws(p);
	for (nd = 0; isdigit((unsigned char)*p) && nd < 3; nd++, p++)
		h = h * 10 + (*p - '0');
	if (nd < 1 || nd > 2 || *p != ':')
		return perr_set(pe, "expected a time HH:MM (00:00 to 23:59)");
	p++;
	for (nd = 0; isdigit((unsigned char)*p) && nd < 3; nd++, p++)
		m = m * 10 + (*p - '0');
	if (nd != 2 || h > 23 || m > 59)
		return perr_set(pe, "expected a time HH:MM (00:00 to 23:59)");
	if (*skip_ws(p) != '\0')
		return perr_set(pe, "unexpected \"%s\" after the time", skip_ws(p));
	*hour = h;
	*minute = m;
	return 0;
}

static int
name_index(const char *p, size_t len, const char *const *names, size_t nnames)
{
	if (len != 3)
		return -1;
	for (size_t i = 0; i < nnames; i++)
		if (strncasecmp(p, names[i], 3) == 0)
			return (int)i;
	return -1;
}

static void
set_all_days(struct schedule *s)
{
	s->mdays = 0xfffffffeu;        /* 1..31 */
	s->months = 0x1ffe;            /* 1..12 */
	s->wdays = 0x7f;
	s->mday_star = s->wday_star = true;
}

static int
parse_every(const char *p, struct schedule *s, struct perr *pe)
{
	int64_t n = 0;
	int nd;

	p = skip_ws(p);
	for (nd = 0; isdigit((unsigned char)*p); nd++, p++) {
		if (nd >= 9)
			return perr_set(pe, "the period must not exceed 366 days");
		n = n * 10 + (*p - '0');
	}
	if (nd == 0)
		return perr_set(pe, "expected \"every N m\" or \"every N h\"");
	p = skip_ws(p);
	int64_t unit;
	if ((*p == 'm' || *p == 'M') && *skip_ws(p + 1) == '\0')
		unit = 60;
	else if ((*p == 'h' || *p == 'H') && *skip_ws(p + 1) == '\0')
		unit = 3600;
	else
		return perr_set(pe, "expected the unit m (minutes) or h (hours) after N");
	if (n < 1)
		return perr_set(pe, "N must be at least 1");
	if (n * unit > PERIOD_MAX)
		return perr_set(pe, "the period must not exceed 366 days");
	s->kind = SCHEDULE_EVERY;
	s->period = n * unit;
	return 0;
}

static int
parse_daily(const char *p, struct schedule *s, struct perr *pe)
{
	int h, m;
	if (parse_time_end(p, &h, &m, pe) < 0)
		return -1;
	s->kind = SCHEDULE_DAILY;
	s->minutes = (uint64_t)1 << m;
	s->hours = (uint32_t)1 << h;
	set_all_days(s);
	return 0;
}

/* One day name at *pp: its index (0 = Sunday) or -1 with an error set. */
static int
weekday_at(const char **pp, struct perr *pe)
{
	const char *p = *pp;
	size_t len = 0;
	while (isalpha((unsigned char)p[len]))
		len++;
	int i = name_index(p, len, day_names, ARRAY_LEN(day_names));
	if (i < 0) {
		size_t show = len > 0 ? len : strcspn(p, " \t,-");
		return perr_set(pe, "unknown day \"%.*s\" (use MON, TUE, WED, THU, FRI, SAT, SUN)",
		    (int)(show < 20 ? show : 20), p);
	}
	*pp = p + len;
	return i;
}

static int
parse_weekly(const char *p, struct schedule *s, struct perr *pe)
{
	uint8_t days = 0;

	p = skip_ws(p);
	if (*p == '\0')
		return perr_set(pe, "expected days and a time, e.g. \"weekly MON,THU 02:30\"");
	for (;;) {
		int a = weekday_at(&p, pe);
		if (a < 0)
			return -1;
		int b = a;
		if (*p == '-') {
			p++;
			if ((b = weekday_at(&p, pe)) < 0)
				return -1;
		}
		/* a range may wrap past Saturday: FRI-MON */
		for (int d = a;; d = (d + 1) % 7) {
			days |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		if (*p != ',')
			break;
		p++;
	}
	if (*p != ' ' && *p != '\t')
		return perr_set(pe, "expected a time HH:MM after the days");
	int h, m;
	if (parse_time_end(p, &h, &m, pe) < 0)
		return -1;
	s->kind = SCHEDULE_WEEKLY;
	s->minutes = (uint64_t)1 << m;
	s->hours = (uint32_t)1 << h;
	set_all_days(s);
	s->wdays = days;
	s->wday_star = false;
	return 0;
}

struct cron_field {
	const char *what;
	int lo, hi;
	const char *const *names;
	size_t nnames;
	int name_base;            /* value of names[0] */
};

static const struct cron_field cron_fields[5] = {
	{ "minute", 0, 59, NULL, 0, 0 },
	{ "hour", 0, 23, NULL, 0, 0 },
	{ "day of month", 1, 31, NULL, 0, 0 },
	{ "month", 1, 12, month_names, 12, 1 },
	{ "day of week", 0, 7, day_names, 7, 0 },
};

/* A number or a name in [p, end): its value or -1 with an error set. */
static int
cron_value(const char *p, const char *end, const struct cron_field *f, struct perr *pe)
{
	size_t len = (size_t)(end - p);
	int v = 0;

	if (len == 0)
		return perr_set(pe, "%s: missing number", f->what);
	if (isdigit((unsigned char)*p)) {
		if (len > 3)
			return perr_set(pe, "%s: %.*s is out of range %d-%d", f->what,
			    (int)(len < 20 ? len : 20), p, f->lo, f->hi);
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)p[i]))
				return perr_set(pe, "%s: \"%.*s\" is not a number", f->what, (int)len, p);
			v = v * 10 + (p[i] - '0');
		}
		if (v < f->lo || v > f->hi)
			return perr_set(pe, "%s: %d is out of range %d-%d", f->what, v, f->lo, f->hi);
		return v;
	}
	if (f->names != NULL) {
		int i = name_index(p, len, f->names, f->nnames);
		if (i >= 0)
			return i + f->name_base;
	}
	return perr_set(pe, "%s: \"%.*s\" is not a number%s", f->what,
	    (int)(len < 20 ? len : 20), p, f->names != NULL ? " or a name" : "");
}

/* One cron field [p, end) into a bit set. */
static int
cron_field_parse(const char *p, const char *end, const struct cron_field *f,
    uint64_t *bits, bool *star, struct perr *pe)
{
	*bits = 0;
	*star = *p == '*';
	while (p < end) {
		const char *item_end = memchr(p, ',', (size_t)(end - p));
		if (item_end == NULL)
			item_end = end;
		const char *slash = memchr(p, '/', (size_t)(item_end - p));
		const char *base_end = slash != NULL ? slash : item_end;
		int a, b, step = 1;

		if (base_end - p == 1 && *p == '*') {
			a = f->lo;
			b = f->hi;
		} else {
			const char *dash = memchr(p, '-', (size_t)(base_end - p));
			if ((a = cron_value(p, dash != NULL ? dash : base_end, f, pe)) < 0)
				return -1;
			if (dash != NULL) {
				if ((b = cron_value(dash + 1, base_end, f, pe)) < 0)
					return -1;
				if (b < a)
					return perr_set(pe, "%s: range %d-%d goes backwards", f->what, a, b);
			} else
				b = slash != NULL ? f->hi : a;  /* N/step = N-max/step */
		}
		if (slash != NULL) {
			size_t sl = (size_t)(item_end - slash - 1);
			step = 0;
			if (sl == 0 || sl > 3)
				return perr_set(pe, "%s: bad step \"%.*s\"", f->what,
				    (int)(sl < 20 ? sl : 20), slash + 1);
			for (size_t i = 0; i < sl; i++) {
				if (!isdigit((unsigned char)slash[1 + i]))
					return perr_set(pe, "%s: bad step \"%.*s\"", f->what, (int)sl, slash + 1);
				step = step * 10 + (slash[1 + i] - '0');
			}
			if (step < 1 || step > f->hi - f->lo + 1)
				return perr_set(pe, "%s: step %d is out of range 1-%d", f->what, step,
				    f->hi - f->lo + 1);
		}
		for (int v = a; v <= b; v += step)
			*bits |= (uint64_t)1 << v;
		if (item_end < end && item_end + 1 == end)
			return perr_set(pe, "%s: list ends with a comma", f->what);
		p = item_end + (item_end < end);
	}
	return 0;
}

/* Whether some listed day of month exists in some listed month. */
static bool
mdays_possible(uint32_t mdays, uint16_t months)
{
	for (int m = 1; m <= 12; m++) {
		if (!(months & (1u << m)))
			continue;
		for (int d = 1; d <= month_days(m, true); d++)
			if (mdays & (1u << d))
				return true;
	}
	return false;
}

static int
parse_cron(const char *p, struct schedule *s, struct perr *pe)
{
	const char *end;

	p = skip_ws(p);
	if (*p == '"') {
		p++;
		end = strchr(p, '"');
		if (end == NULL)
			return perr_set(pe, "the cron expression has no closing quote");
		if (*skip_ws(end + 1) != '\0')
			return perr_set(pe, "unexpected \"%s\" after the cron expression", skip_ws(end + 1));
	} else
		end = p + strlen(p);

	const char *fs[5], *fe[5];
	int n = 0;
	for (;;) {
		p = skip_ws(p);
		if (p >= end)
			break;
		const char *q = p;
		while (q < end && *q != ' ' && *q != '\t')
			q++;
		if (n == 5)
			return perr_set(pe, "cron needs 5 fields (minute hour day-of-month month "
			    "day-of-week), got more");
		fs[n] = p;
		fe[n] = q;
		n++;
		p = q;
	}
	if (n != 5)
		return perr_set(pe, "cron needs 5 fields (minute hour day-of-month month "
		    "day-of-week), got %d", n);

	uint64_t bits[5];
	bool star[5];
	for (int i = 0; i < 5; i++)
		if (cron_field_parse(fs[i], fe[i], &cron_fields[i], &bits[i], &star[i], pe) < 0)
			return -1;
	s->kind = SCHEDULE_CRON;
	s->minutes = bits[0];
	s->hours = (uint32_t)bits[1];
	s->mdays = (uint32_t)bits[2];
	s->months = (uint16_t)bits[3];
	s->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);  /* 7 = Sunday */
	s->mday_star = star[2];
	s->wday_star = star[4];
	/* With a day-of-week restriction some day always matches; without one
	 * the listed days of month must exist in a listed month. */
	if (s->wday_star && !mdays_possible(s->mdays, s->months))
		return perr_set(pe, "the day of month never occurs in the listed months");
	return 0;
}

int
schedule_parse(const char *text, struct schedule *s, char *err, size_t errlen)
{
	struct perr pe = { text != NULL ? text : "", err, errlen };
	struct schedule out;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (text == NULL)
		return perr_set(&pe, "no schedule given");
	if (strnlen(text, SCHEDULE_TEXT_MAX + 1) > SCHEDULE_TEXT_MAX) {
		pe.text = "...";
		return perr_set(&pe, "longer than %d characters", SCHEDULE_TEXT_MAX);
	}
	for (const char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return perr_set(&pe, "contains a control character");

	memset(&out, 0, sizeof(out));
	const char *p = skip_ws(text);
	int rc;
	if (keyword(&p, "manual")) {
		out.kind = SCHEDULE_MANUAL;
		rc = *skip_ws(p) == '\0' ? 0 : perr_set(&pe, "\"manual\" takes no arguments");
	} else if (keyword(&p, "at_start")) {
		out.kind = SCHEDULE_AT_START;
		rc = *skip_ws(p) == '\0' ? 0 : perr_set(&pe, "\"at_start\" takes no arguments");
	} else if (keyword(&p, "every"))
		rc = parse_every(p, &out, &pe);
	else if (keyword(&p, "daily"))
		rc = parse_daily(p, &out, &pe);
	else if (keyword(&p, "weekly"))
		rc = parse_weekly(p, &out, &pe);
	else if (keyword(&p, "cron"))
		rc = parse_cron(p, &out, &pe);
	else
		rc = perr_set(&pe, "unknown schedule; use manual, at_start, every N m|h, "
		    "daily HH:MM, weekly DAYS HH:MM or cron \"MIN HOUR DOM MON DOW\"");
	if (rc < 0)
		return -1;
	*s = out;
	return 0;
}

static bool
day_matches(const struct schedule *s, int mday, int wday)
{
	bool dom = (s->mdays >> mday) & 1, dow = (s->wdays >> wday) & 1;
	if (s->mday_star || s->wday_star)
		return dom && dow;
	return dom || dow;
}

int64_t
schedule_next(const struct schedule *s, int64_t after)
{
	/* keep every intermediate value far from int64 overflow */
	const int64_t limit = (int64_t)1 << 40;
	if (after < -limit || after > limit)
		return -1;
	switch (s->kind) {
	case SCHEDULE_MANUAL:
	case SCHEDULE_AT_START:
		return -1;
	case SCHEDULE_EVERY:
		return s->period > 0 ? after + s->period : -1;
	case SCHEDULE_DAILY:
	case SCHEDULE_WEEKLY:
	case SCHEDULE_CRON:
		break;
	}
	if (s->minutes == 0 || s->hours == 0 || s->months == 0)
		return -1;

	int64_t t = (floor_div(after, 60) + 1) * 60;
	int64_t y0;
	int m, d;
	civil_from_days(floor_div(t, DAY_S), &y0, &m, &d);
	for (;;) {
		int64_t days = floor_div(t, DAY_S), y;
		int64_t sec = t - days * DAY_S;
		civil_from_days(days, &y, &m, &d);
		if (y > y0 + SEARCH_YEARS)
			return -1;
		if (!((s->months >> m) & 1)) {
			/* first day of the next month */
			t = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY_S;
			continue;
		}
		int wday = (int)(((days % 7) + 11) % 7);   /* 1970-01-01 was a Thursday */
		if (!day_matches(s, d, wday)) {
			t = (days + 1) * DAY_S;
			continue;
		}
		int hour = (int)(sec / 3600), minute = (int)(sec % 3600 / 60);
		if (!((s->hours >> hour) & 1)) {
			t = days * DAY_S + (int64_t)(hour + 1) * 3600;
			continue;
		}
		if (!((s->minutes >> minute) & 1)) {
			t += 60;
			continue;
		}
		return t;
	}
}

const char *
schedule_kind_name(enum schedule_kind k)
{
	switch (k) {
	case SCHEDULE_MANUAL: return "manual";
	case SCHEDULE_AT_START: return "at_start";
	case SCHEDULE_EVERY: return "every";
	case SCHEDULE_DAILY: return "daily";
	case SCHEDULE_WEEKLY: return "weekly";
	case SCHEDULE_CRON: return "cron";
	}
	return "?";
}
