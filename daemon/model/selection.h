/* selection.h — saved queries over hosts ("selections").
 *
 * A filter is conditions joined by "and": FIELD OP VALUE, e.g.
 *   status != OK and db_age_days > 3 and group = Servers
 * Fields and what they compare:
 *   status          OK < Warning < Critical          = != < <= > >=
 *   group           a group path: matches the group and its subgroups;
 *                   "Unassigned" matches hosts without a group  = !=
 *   os              glob on os id, "id version_id" and pretty name  = !=
 *   name            glob on the host name (case-insensitive)  = !=
 *   reason          a status reason name (status_reason_name)  = !=
 *   last_seen_days  days since last contact; never = infinitely many  all ops
 *   db_age_days     age of the anti-virus databases in days; unknown (no
 *                   AV or no database) = infinitely old, as for status  all ops
 * Days are fractional: "db_age_days > 3" means older than 72 hours.
 * Values are bare words or "double-quoted" (\" and \\ escape); "and",
 * field names and status names are case-insensitive.
 *
 * Pure; main thread only like every daemon model module (no shared state,
 * so any thread would do). */
#ifndef CUSTOS_SELECTION_H
#define CUSTOS_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define SELECTION_TEXT_MAX 1024
#define SELECTION_TERMS_MAX 32

/* The facts about one host a filter looks at (strings may be NULL). */
struct sel_host {
	enum host_status status;
	const char *group_path;   /* "Servers/Web"; NULL or "" = Unassigned */
	const char *os_id, *os_version_id, *os_pretty;
	int64_t last_seen;        /* unix seconds; 0 = never */
	int64_t db_time;          /* newest AV database time; 0 = unknown */
	const char *name;
	uint32_t reasons;         /* set of enum status_reason */
	int64_t now;
};

struct selection;

/* Parses text. On error returns -1 with a message that gives the column
 * (1-based), e.g. `unknown field "foo" at column 5`. */
int selection_parse(const char *text, struct selection **out, char *err, size_t errlen);
void selection_free(struct selection *s);
bool selection_match(const struct selection *s, const struct sel_host *h);

#endif
