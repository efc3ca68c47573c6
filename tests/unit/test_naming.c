/* test_naming.c — unit tests for daemon/naming.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/naming.h"
#include "util.h"

/* A small set of taken names, counting the calls to taken(). */
struct nameset {
	const char *names[64];
	size_t n;
	size_t calls;
};

static bool
set_taken(const char *name, void *arg)
{
	struct nameset *s = arg;
	s->calls++;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static bool
all_taken(const char *name, void *arg)
{
	(void)name;
	(*(long *)arg)++;
	return true;
}

static void
test_clean_chars(void **state)
{
	(void)state;
	char out[64];
	static const struct { const char *in, *want; } cases[] = {
		{ "web01", "web01" },
		{ "Web-01.example_lan", "Web-01.example_lan" },
		{ "my host", "my-host" },
		{ "a/b\\c:d", "a-b-c-d" },
		{ "tab\there", "tab-here" },
		{ "caf\xc3\xa9", "caf--" },        /* each non-ASCII byte becomes '-' */
		{ "'; DROP TABLE hosts;--", "---DROP-TABLE-hosts---" },
		{ "<script>", "-script-" },
		{ "", "host" },
		{ " ", "-" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memset(out, 'Z', sizeof(out));
		naming_clean(cases[i].in, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

static void
test_clean_length(void **state)
{
	(void)state;
	char in[300], out[256], want[64];

	memset(in, 'a', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	naming_clean(in, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	memset(want, 'a', 63);
	want[63] = '\0';
	assert_string_equal(out, want);

	/* exactly 63 kept whole, 64 cut */
	in[63] = '\0';
	naming_clean(in, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	in[63] = 'b';
	in[64] = '\0';
	naming_clean(in, out, sizeof(out));
	assert_string_equal(out, want);

	/* a small output buffer is never overrun */
	char small[8];
	memset(small, 'Z', sizeof(small));
	naming_clean("abcdefghijk", small, 5);
	assert_string_equal(small, "abcd");
	assert_int_equal(small[5], 'Z');

	/* empty input into a tiny buffer */
	naming_clean("", small, 3);
	assert_string_equal(small, "ho");

	/* outlen 0: nothing written */
	small[0] = 'Q';
	naming_clean("abc", small, 0);
	assert_int_equal(small[0], 'Q');
}

static void
test_unique_free(void **state)
{
	(void)state;
	struct nameset s = { .names = { "other", "web-1" }, .n = 2 };
	char out[64];

	assert_int_equal(naming_unique("web", set_taken, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "web");
	assert_int_equal(s.calls, 1);
}

static void
test_unique_clash(void **state)
{
	(void)state;
	struct nameset s = { .names = { "web" }, .n = 1 };
	char out[64];

	assert_int_equal(naming_unique("web", set_taken, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "web-1");

	s.names[s.n++] = "web-1";
	s.names[s.n++] = "web-2";
	s.names[s.n++] = "web-4";
	assert_int_equal(naming_unique("web", set_taken, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "web-3");

	/* adding names one by one gives a sequence */
	struct nameset seq = { .n = 0 };
	char store[20][64];
	for (int i = 0; i < 20; i++) {
		assert_int_equal(naming_unique("db", set_taken, &seq, store[i], sizeof(store[i])), 0);
		char want[64];
		if (i == 0)
			str_copy(want, "db", sizeof(want));
		else
			assert_true(str_fmt(want, sizeof(want), "db-%d", i) > 0);
		assert_string_equal(store[i], want);
		seq.names[seq.n++] = store[i];
	}
}

static void
test_unique_suffixed_base(void **state)
{
	(void)state;
	struct nameset s = { .names = { "web-1", "web" }, .n = 2 };
	char out[64];

	assert_int_equal(naming_unique("web-1", set_taken, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "web-1-1");
	s.names[s.n++] = "web-1-1";
	assert_int_equal(naming_unique("web-1", set_taken, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "web-1-2");
}

static void
test_unique_small_buffer(void **state)
{
	(void)state;
	struct nameset s = { .names = { "web" }, .n = 1 };
	char out[16];

	/* base itself does not fit */
	assert_int_equal(naming_unique("a-rather-long-name", set_taken, &s, out, 8), -1);
	/* base fits exactly but the suffixed name does not: the base is cut */
	assert_int_equal(naming_unique("web", set_taken, &s, out, 4), 0);
	assert_string_equal(out, "w-1");
	/* a 63-character name clashing still gets a unique 63-character name */
	char long63[64], got[64];
	memset(long63, 'x', 63);
	long63[63] = '\0';
	struct nameset l = { .names = { long63 }, .n = 1 };
	assert_int_equal(naming_unique(long63, set_taken, &l, got, sizeof(got)), 0);
	assert_int_equal(strlen(got), 63);
	assert_string_equal(got + 61, "-1");
	/* no room even for a one-character base and a suffix */
	assert_int_equal(naming_unique("web", set_taken, &s, out, 3), -1);
	/* free base that fits exactly is fine */
	assert_int_equal(naming_unique("abc", set_taken, &s, out, 4), 0);
	assert_string_equal(out, "abc");
	/* the suffix fits with room to spare */
	assert_int_equal(naming_unique("web", set_taken, &s, out, 6), 0);
	assert_string_equal(out, "web-1");
	/* zero-sized output */
	assert_int_equal(naming_unique("web", set_taken, &s, out, 0), -1);
}

static void
test_unique_gives_up(void **state)
{
	(void)state;
	char out[64];
	long calls = 0;

	assert_int_equal(naming_unique("x", all_taken, &calls, out, sizeof(out)), -1);
	/* base + 1,000,000 suffixes tried, then it stops */
	assert_true(calls >= 1000000);
	assert_true(calls <= 1000002);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_chars),
		cmocka_unit_test(test_clean_length),
		cmocka_unit_test(test_unique_free),
		cmocka_unit_test(test_unique_clash),
		cmocka_unit_test(test_unique_suffixed_base),
		cmocka_unit_test(test_unique_small_buffer),
		cmocka_unit_test(test_unique_gives_up),
	};
	return cmocka_run_group_tests_name("naming", tests, NULL, NULL);
}
