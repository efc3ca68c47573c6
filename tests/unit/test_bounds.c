/* test_bounds.c — unit tests for daemon/bounds.c: every field an agent sends
 * is cut to its column on arrival, at a character boundary, and counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "daemon/bounds.h"
#include "util.h"

#define MIB (1024u * 1024u)

/* n bytes of a repeated UTF-8 unit (unit of 1 to 4 bytes) */
static char *
repeat(const char *unit, size_t times)
{
	size_t u = strlen(unit);
	char *s = malloc(u * times + 1);
	assert_non_null(s);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * u, unit, u);
	s[u * times] = '\0';
	return s;
}

static bool
utf8_valid(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);   /* jansson checks UTF-8 */
	json_decref(j);
	return j != NULL;
}

static void
test_utf8_cut(void **state)
{
	(void)state;
	assert_int_equal(bounds_utf8_cut("abc", 3, 64), 3);
	assert_int_equal(bounds_utf8_cut("abcdef", 6, 4), 4);
	/* "é" is 2 bytes: a cut at 3 would split the second one */
	assert_int_equal(bounds_utf8_cut("\xc3\xa9\xc3\xa9", 4, 3), 2);
	/* a 4-byte character is never split */
	const char *emoji = "a\xf0\x9f\x98\x80";
	for (size_t max = 1; max < 5; max++)
		assert_int_equal(bounds_utf8_cut(emoji, 5, max), 1);
	assert_int_equal(bounds_utf8_cut(emoji, 5, 5), 5);
}

static void
test_event_strings_cut(void **state)
{
	(void)state;
	bounds_reset_log();
	char *kind = repeat("\xc3\xa9", 50);          /* 100 bytes */
	char *message = repeat("x", 5000);
	char *tail = repeat("\xe2\x82\xac", 2000);    /* 6000 bytes of euro signs */
	json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}}", "kind", kind, "message", message,
	    "data", "output_tail", tail, "state", "succeeded");
	struct bounds_count cnt = { 0, 0 };
	bounds_event(ev, "web", MIB, &cnt);
	assert_int_equal(cnt.truncated, 3);
	assert_int_equal(cnt.dropped, 0);
	json_t *k = json_object_get(ev, "kind");
	assert_int_equal(json_string_length(k), 64);
	assert_memory_equal(json_string_value(k), kind, 64);
	assert_int_equal(json_string_length(json_object_get(ev, "message")), 1024);
	json_t *t = json_object_get(json_object_get(ev, "data"), "output_tail");
	assert_int_equal(json_string_length(t), 4095);   /* 1365 whole euro signs */
	assert_true(utf8_valid(json_string_value(t), json_string_length(t)));
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "state")),
	    "succeeded");
	json_decref(ev);
	free(kind);
	free(message);
	free(tail);
}

static void
test_event_within_bounds_unchanged(void **state)
{
	(void)state;
	char *message = repeat("m", 1024);
	json_t *ev = json_pack("{s:s, s:s, s:{s:i}}", "kind", "threat_found", "message", message,
	    "data", "n", 1);
	json_t *copy = json_deep_copy(ev);
	struct bounds_count cnt = { 0, 0 };
	bounds_event(ev, "web", MIB, &cnt);
	assert_int_equal(cnt.truncated + cnt.dropped, 0);
	assert_true(json_equal(ev, copy));
	json_decref(ev);
	json_decref(copy);
	free(message);
}

static void
test_sync_tags_cut(void **state)
{
	(void)state;
	json_t *tags = json_array();
	char *umlauts = repeat("\xc3\xbc", 100);      /* 200 bytes */
	json_array_append_new(tags, json_string("dmz"));
	json_array_append_new(tags, json_integer(7));  /* not a tag */
	json_array_append_new(tags, json_string(umlauts));
	for (int i = 0; i < 800; i++) {
		char t[16];
		str_fmt(t, sizeof(t), "t%04d", i);
		json_array_append_new(tags, json_string(t));
	}
	json_t *msg = json_pack("{s:s, s:o}", "type", "sync", "tags", tags);
	struct bounds_count cnt = { 0, 0 };
	bounds_sync(msg, "web", MIB, &cnt);
	assert_int_equal(cnt.truncated, 1);
	tags = json_object_get(msg, "tags");
	char *text = json_dumps(tags, JSON_COMPACT);
	assert_non_null(text);
	assert_true(strlen(text) <= 1024);
	assert_true(strlen(text) > 1000);              /* as many as fit */
	assert_string_equal(json_string_value(json_array_get(tags, 0)), "dmz");
	assert_int_equal(json_string_length(json_array_get(tags, 1)), 64);
	assert_string_equal(json_string_value(json_array_get(tags, 2)), "t0000");
	free(text);
	free(umlauts);
	json_decref(msg);

	/* a list that fits is left alone */
	msg = json_pack("{s:[s, s]}", "tags", "web", "dmz");
	cnt.truncated = 0;
	bounds_sync(msg, "web", MIB, &cnt);
	assert_int_equal(cnt.truncated, 0);
	assert_int_equal(json_array_size(json_object_get(msg, "tags")), 2);
	json_decref(msg);
}

/* Documents larger than MEDIUMTEXT are only possible (and only measured)
 * with a frame limit above 16 MiB. */
static void
test_sync_documents(void **state)
{
	(void)state;
	char *big = repeat("p", 17 * MIB);
	char *quarter = repeat("e", 4 * MIB);
	json_t *msg = json_pack("{s:{s:s}, s:{s:i, s:[s, s, s, s, s]}}", "posture", "blob", big,
	    "policy", "version", 3, "errors", quarter, quarter, quarter, quarter, quarter);
	struct bounds_count cnt = { 0, 0 };

	bounds_sync(msg, "web", MIB, &cnt);           /* a 1 MiB frame cannot carry them */
	assert_int_equal(cnt.truncated + cnt.dropped, 0);
	assert_non_null(json_object_get(msg, "posture"));

	bounds_sync(msg, "web", 64 * MIB, &cnt);
	assert_int_equal(cnt.dropped, 1);
	assert_int_equal(cnt.truncated, 1);
	assert_null(json_object_get(msg, "posture"));
	json_t *pol = json_object_get(msg, "policy");
	assert_int_equal(json_array_size(json_object_get(pol, "errors")), 3);
	assert_int_equal(json_integer_value(json_object_get(pol, "version")), 3);
	json_decref(msg);
	free(big);
	free(quarter);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_cut),
		cmocka_unit_test(test_event_strings_cut),
		cmocka_unit_test(test_event_within_bounds_unchanged),
		cmocka_unit_test(test_sync_tags_cut),
		cmocka_unit_test(test_sync_documents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
