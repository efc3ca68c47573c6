/* bounds.h — every field an agent sends that reaches a MariaDB column or the
 * server's memory is bounded here, on arrival, from one table (bounds.c).
 *
 * A string longer than its column is cut at a UTF-8 character boundary
 * (VARCHAR columns count characters); a tag list is cut to the tags that
 * fit; an integer outside its INT column is clamped (or null for
 * exit_code); a JSON document larger than its column, measured as the store
 * writes it, is removed from the message (a posture or policy errors: the
 * stored value stays; event data: the event is stored without it), a list
 * keeps the entries that fit. Each cut is
 * counted and logged, at most once a minute per field, naming the host and
 * the field. The message is changed in place, so everything after (memory,
 * SNMP, NAC, the store) sees the bounded values.
 *
 * Fields that reach neither (agent_version, queue_dropped, wake_dropped,
 * tasks_hash, policy.hash) are only compared or ignored. Main thread only
 * (the log rate limit is module state). */
#ifndef CUSTOS_BOUNDS_H
#define CUSTOS_BOUNDS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct bounds_count {
	uint64_t truncated;      /* fields cut to their column */
	uint64_t dropped;        /* fields removed from the message */
};

void bounds_sync(json_t *msg, const char *host, struct bounds_count *cnt);
void bounds_event(json_t *ev, const char *host, struct bounds_count *cnt);

/* Length of the longest prefix of s (len bytes, valid UTF-8) of at most max
 * bytes that ends on a character boundary. */
size_t bounds_utf8_cut(const char *s, size_t len, size_t max);
/* The same for at most max characters. */
size_t bounds_utf8_cut_chars(const char *s, size_t len, size_t max);
/* Characters in s (len bytes, valid UTF-8). */
size_t bounds_utf8_chars(const char *s, size_t len);

/* Forgets the log rate limit (tests). */
void bounds_reset_log(void);

#endif
