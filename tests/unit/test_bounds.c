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

#include "daemon/core/bounds.h"
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
	char *kind = repeat("\xc3\xa9", 70);          /* 70 characters, 140 bytes */
	char *message = repeat("x", 5000);
	char *tail = repeat("\xe2\x82\xac", 2000);    /* 6000 bytes of euro signs */
	json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}}", "kind", kind, "message", message,
	    "data", "output_tail", tail, "state", "succeeded");
	struct bounds_count cnt = { 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 3);
	assert_int_equal(cnt.dropped, 0);
	json_t *k = json_object_get(ev, "kind");
	assert_int_equal(json_string_length(k), 128);   /* 64 characters, not 64 bytes */
	assert_memory_equal(json_string_value(k), kind, 128);
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
	bounds_event(ev, "web", &cnt);
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
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.truncated, 1);
	tags = json_object_get(msg, "tags");
	char *text = json_dumps(tags, JSON_COMPACT);
	assert_non_null(text);
	/* VARCHAR(1024) counts characters: 64 of the umlauts are 2 bytes */
	assert_true(bounds_utf8_chars(text, strlen(text)) <= 1024);
	assert_true(bounds_utf8_chars(text, strlen(text)) > 1000);   /* as many as fit */
	assert_true(strlen(text) > 1024);
	assert_string_equal(json_string_value(json_array_get(tags, 0)), "dmz");
	assert_int_equal(json_string_length(json_array_get(tags, 1)), 128);   /* 64 characters */
	assert_string_equal(json_string_value(json_array_get(tags, 2)), "t0000");
	free(text);
	free(umlauts);
	json_decref(msg);

	/* a list that fits is left alone */
	msg = json_pack("{s:[s, s]}", "tags", "web", "dmz");
	cnt.truncated = 0;
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.truncated, 0);
	assert_int_equal(json_array_size(json_object_get(msg, "tags")), 2);
	json_decref(msg);
}

/* Documents larger than MEDIUMTEXT are left out (an object) or cut to the
 * entries that fit (a list). */
static void
test_sync_documents(void **state)
{
	(void)state;
	char *big = repeat("p", 17 * MIB);
	char *quarter = repeat("e", 4 * MIB);
	json_t *msg = json_pack("{s:{s:s}, s:{s:i, s:[s, s, s, s, s]}}", "posture", "blob", big,
	    "policy", "version", 3, "errors", quarter, quarter, quarter, quarter, quarter);
	struct bounds_count cnt = { 0, 0 };
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.dropped, 1);
	assert_int_equal(cnt.truncated, 1);
	assert_null(json_object_get(msg, "posture"));
	json_t *pol = json_object_get(msg, "policy");
	assert_int_equal(json_array_size(json_object_get(pol, "errors")), 3);
	assert_int_equal(json_integer_value(json_object_get(pol, "version")), 3);
	json_decref(msg);

	/* one error larger than the column: the list is left out (the stored
	 * one stays), not emptied */
	msg = json_pack("{s:{s:i, s:[s]}}", "policy", "version", 4, "errors", big);
	cnt = (struct bounds_count){ 0, 0 };
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.dropped, 1);
	pol = json_object_get(msg, "policy");
	assert_null(json_object_get(pol, "errors"));
	assert_int_equal(json_integer_value(json_object_get(pol, "version")), 4);
	json_decref(msg);
	free(big);
	free(quarter);
}

/* A document received smaller than its column can be written larger:
 * jansson writes 1e-7 as 9.9999999999999995e-08 (22 bytes for 4). The
 * received text of this posture is about 5 MiB (any listen.max_frame up to
 * 64 MiB would accept it); as stored it is over 16 MiB. */
static void
test_numbers_grow(void **state)
{
	(void)state;
	const size_t n = 1000000;
	char *text = malloc(n * 5 + 64);
	assert_non_null(text);
	size_t len = 0;
	len += (size_t)sprintf(text, "{\"posture\":{\"v\":[");
	for (size_t i = 0; i < n; i++) {
		memcpy(text + len, i ? ",1e-7" : "1e-7", i ? 5 : 4);
		len += i ? 5 : 4;
	}
	len += (size_t)sprintf(text + len, "]},\"data\":{\"x\":1e-7}}");
	assert_true(len < 6 * MIB);
	json_error_t jerr;
	json_t *msg = json_loadb(text, len, 0, &jerr);
	assert_non_null(msg);
	char *stored = json_dumps(json_object_get(msg, "posture"), JSON_COMPACT);
	assert_non_null(stored);
	assert_true(strlen(stored) > 16777215u);     /* what the store would write */
	free(stored);
	struct bounds_count cnt = { 0, 0 };
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.dropped, 1);
	assert_null(json_object_get(msg, "posture"));
	json_decref(msg);

	/* the same numbers as event data: the event is kept without it */
	json_t *ev = json_loadb(text, len, 0, &jerr);
	assert_non_null(ev);
	json_object_set_new(ev, "kind", json_string("scan"));
	json_object_set(ev, "data", json_object_get(ev, "posture"));
	cnt = (struct bounds_count){ 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.dropped, 1);
	assert_null(json_object_get(ev, "data"));
	assert_string_equal(json_string_value(json_object_get(ev, "kind")), "scan");
	json_decref(ev);
	free(text);
}

static void
test_utf8_cut_chars(void **state)
{
	(void)state;
	const char *mixed = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";   /* a é € 😀 z: 11 bytes */
	assert_int_equal(bounds_utf8_chars(mixed, 11), 5);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 0), 0);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 1), 1);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 2), 3);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 3), 6);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 4), 10);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 5), 11);
	assert_int_equal(bounds_utf8_cut_chars(mixed, 11, 64), 11);

	/* a message of 1024 two-byte characters fits VARCHAR(1024) whole;
	 * 1500 of them are cut to 1024 characters */
	bounds_reset_log();
	char *fits = repeat("\xc3\xbc", 1024);
	char *over = repeat("\xe2\x82\xac", 1500);
	json_t *ev = json_pack("{s:s, s:s}", "kind", "k", "message", fits);
	struct bounds_count cnt = { 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 0);
	assert_int_equal(json_string_length(json_object_get(ev, "message")), 2048);
	json_object_set_new(ev, "message", json_string(over));
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 1);
	json_t *m = json_object_get(ev, "message");
	assert_int_equal(json_string_length(m), 3072);
	assert_true(utf8_valid(json_string_value(m), json_string_length(m)));
	json_decref(ev);
	free(fits);
	free(over);
}

/* Integers for INT columns: exit_code out of range becomes null, run and
 * policy.version are clamped; values in range are left alone. */
static void
test_int_bounds(void **state)
{
	(void)state;
	json_t *ev = json_pack("{s:s, s:s, s:{s:I, s:I, s:I, s:I}}", "kind", "task_result", "message", "",
	    "data", "task_id", (json_int_t)7, "run", (json_int_t)1 << 40, "exit_code",
	    (json_int_t)2147483648LL, "started", (json_int_t)1 << 40);
	struct bounds_count cnt = { 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 2);
	json_t *d = json_object_get(ev, "data");
	assert_true(json_is_null(json_object_get(d, "exit_code")));
	assert_int_equal(json_integer_value(json_object_get(d, "run")), 2147483647);
	assert_int_equal(json_integer_value(json_object_get(d, "started")), (json_int_t)1 << 40);
	json_decref(ev);

	ev = json_pack("{s:s, s:s, s:{s:I, s:I}}", "kind", "task_result", "message", "", "data",
	    "run", (json_int_t)-2147483648LL, "exit_code", (json_int_t)-1);
	cnt = (struct bounds_count){ 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "exit_code")), -1);
	json_object_set_new(json_object_get(ev, "data"), "exit_code", json_integer(-2147483649LL));
	bounds_event(ev, "web", &cnt);
	assert_true(json_is_null(json_object_get(json_object_get(ev, "data"), "exit_code")));
	json_decref(ev);

	/* only task results go to task_results: other events' data is kept */
	ev = json_pack("{s:s, s:s, s:{s:I}}", "kind", "scan", "message", "", "data", "run", (json_int_t)1 << 40);
	cnt = (struct bounds_count){ 0, 0 };
	bounds_event(ev, "web", &cnt);
	assert_int_equal(cnt.truncated, 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "data"), "run")), (json_int_t)1 << 40);
	json_decref(ev);

	json_t *msg = json_pack("{s:{s:I, s:[]}}", "policy", "version", (json_int_t)-5000000000LL, "errors");
	cnt = (struct bounds_count){ 0, 0 };
	bounds_sync(msg, "web", &cnt);
	assert_int_equal(cnt.truncated, 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(msg, "policy"), "version")),
	    -2147483648LL);
	json_decref(msg);
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
		cmocka_unit_test(test_numbers_grow),
		cmocka_unit_test(test_utf8_cut_chars),
		cmocka_unit_test(test_int_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
