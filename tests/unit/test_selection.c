/* test_selection.c — unit tests for daemon/selection.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/model/selection.h"

#define NOW 1700000000
#define DAY 86400

/* web-1: OK, Servers/Web, Debian 12, seen an hour ago, databases 1 day old */
static struct sel_host
web1(void)
{
	struct sel_host h = {
		.status = STATUS_OK, .group_path = "Servers/Web", .os_id = "debian",
		.os_version_id = "12", .os_pretty = "Debian GNU/Linux 12 (bookworm)",
		.last_seen = NOW - 3600, .db_time = NOW - DAY, .name = "web-1",
		.reasons = 0, .now = NOW,
	};
	return h;
}

/* db-7: Critical (rtp_off, databases_outdated), Servers/Db, Rocky 9, seen 10 days ago */
static struct sel_host
db7(void)
{
	struct sel_host h = {
		.status = STATUS_CRITICAL, .group_path = "Servers/Db", .os_id = "rocky",
		.os_version_id = "9.3", .os_pretty = "Rocky Linux 9.3 (Blue Onyx)",
		.last_seen = NOW - 10 * DAY, .db_time = NOW - 5 * DAY, .name = "DB-7",
		.reasons = REASON_RTP_OFF | REASON_DB_OUTDATED, .now = NOW,
	};
	return h;
}

/* lost: Warning, no group, nothing known */
static struct sel_host
lost(void)
{
	struct sel_host h = { .status = STATUS_WARNING, .reasons = REASON_NO_POSTURE, .now = NOW };
	return h;
}

struct match_case {
	const char *filter;
	bool web1, db7, lost;
};

static const struct match_case match_cases[] = {
	{ "status = OK", true, false, false },
	{ "status != OK", false, true, true },
	{ "STATUS = warning", false, false, true },
	{ "status >= Warning", false, true, true },
	{ "status > Warning", false, true, false },
	{ "status < Critical", true, false, true },
	{ "status <= OK", true, false, false },
	{ "group = Servers", true, true, false },
	{ "group = Servers/", true, true, false },
	{ "group = Servers/Web", true, false, false },
	{ "group = Serv", false, false, false },           /* a path prefix, not a string prefix */
	{ "group = Servers/We", false, false, false },
	{ "group != Servers", false, false, true },
	{ "group = Unassigned", false, false, true },
	{ "group = \"Servers/Web\"", true, false, false },
	{ "os = debian", true, false, false },
	{ "os = \"rocky 9*\"", false, true, false },
	{ "os = \"Debian GNU/Linux*\"", true, false, false },
	{ "os = DEBIAN*", true, false, false },
	{ "os != debian", false, true, true },
	{ "name = web-*", true, false, false },
	{ "name = db-?", false, true, false },             /* case-insensitive */
	{ "name != web-1", false, true, true },
	{ "reason = rtp_off", false, true, false },
	{ "reason != rtp_off", true, false, true },
	{ "reason = no_posture", false, false, true },
	{ "last_seen_days > 3", false, true, true },       /* never seen = infinitely long ago */
	{ "last_seen_days < 1", true, false, false },
	{ "last_seen_days >= 10", false, true, true },
	{ "last_seen_days <= 0.05", true, false, false },
	{ "db_age_days > 3", false, true, true },          /* unknown = infinitely old */
	{ "db_age_days <= 1", true, false, false },
	{ "db_age_days = 5", false, true, false },
	{ "db_age_days != 5", true, false, true },
	{ "status != OK and db_age_days > 3 and group = Servers", false, true, false },
	{ "status != OK AND group = Servers", false, true, false },
	{ "  group = Servers   and   name = web*  ", true, false, false },
	{ "status=OK", true, false, false },
	{ "status!=OK and last_seen_days>=0", false, true, true },
	{ "name = \"with \\\"quote\\\"\"", false, false, false },
};

static void
test_match(void **state)
{
	(void)state;
	struct sel_host hosts[3] = { web1(), db7(), lost() };
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct selection *s = NULL;
		char err[256];
		if (selection_parse(c->filter, &s, err, sizeof(err)) != 0)
			fail_msg("\"%s\": %s", c->filter, err);
		bool want[3] = { c->web1, c->db7, c->lost };
		for (int k = 0; k < 3; k++)
			if (selection_match(s, &hosts[k]) != want[k])
				fail_msg("\"%s\" on host %d: expected %d", c->filter, k, want[k]);
		selection_free(s);
	}
}

static void
test_quoted_values(void **state)
{
	(void)state;
	struct selection *s;
	char err[256];
	struct sel_host h = web1();
	h.name = "my \"odd\" host";
	assert_int_equal(selection_parse("name = \"my \\\"odd\\\" host\"", &s, err, sizeof(err)), 0);
	assert_true(selection_match(s, &h));
	selection_free(s);
	/* \\ in a string is one backslash, which fnmatch then reads as an escape */
	h.name = "a*b";
	assert_int_equal(selection_parse("name = \"a\\\\*b\"", &s, err, sizeof(err)), 0);
	assert_true(selection_match(s, &h));
	h.name = "axxb";
	assert_false(selection_match(s, &h));
	selection_free(s);
	h.group_path = "Web servers/DMZ";
	assert_int_equal(selection_parse("group = \"Web servers\"", &s, err, sizeof(err)), 0);
	assert_true(selection_match(s, &h));
	selection_free(s);
	/* an empty quoted value is a value */
	assert_int_equal(selection_parse("name = \"\"", &s, err, sizeof(err)), 0);
	assert_false(selection_match(s, &h));
	selection_free(s);
	selection_free(NULL);
}

struct err_case {
	const char *filter, *msg;
};

static void
test_errors(void **state)
{
	(void)state;
	static const struct err_case c[] = {
		{ "status = OK and foo = 1", "unknown field \"foo\" at column 17; use status, group, os, "
		    "name, reason, last_seen_days or db_age_days" },
		{ "    foo = 1", "unknown field \"foo\" at column 5; use status, group, os, name, reason, "
		    "last_seen_days or db_age_days" },
		{ "", "the filter is empty; write conditions such as \"status != OK and db_age_days > 3\"" },
		{ "   ", "the filter is empty; write conditions such as \"status != OK and db_age_days > 3\"" },
		{ "= OK", "expected a field name at column 1" },
		{ "status OK", "expected an operator (= != < <= > >=) after \"status\" at column 8" },
		{ "status", "expected an operator (= != < <= > >=) after \"status\" at column 7" },
		{ "status =", "missing value after \"=\" at column 9" },
		{ "status = Good", "unknown status \"Good\" at column 10; use OK, Warning or Critical" },
		{ "group < Servers", "operator \"<\" does not apply to group at column 7; use = or !=" },
		{ "name >= a", "operator \">=\" does not apply to name at column 6; use = or !=" },
		{ "reason > rtp_off", "operator \">\" does not apply to reason at column 8; use = or !=" },
		{ "reason = sleepy", "unknown reason \"sleepy\" at column 10; use one of no_antivirus, "
		    "rtp_off, threats_unresolved, databases_outdated, not_connected, reboot_required, no_posture" },
		{ "db_age_days > three", "\"three\" at column 15 is not a number of days" },
		{ "db_age_days > -1", "\"-1\" at column 15 is not a number of days" },
		{ "db_age_days > 1e9", "\"1e9\" at column 15 is not a number of days" },
		{ "db_age_days > nan", "\"nan\" at column 15 is not a number of days" },
		{ "last_seen_days > 3d", "\"3d\" at column 18 is not a number of days" },
		{ "status = OK or status = Warning", "expected \"and\" at column 13, found \"or\"; only \"and\" joins conditions" },
		{ "status = OK status = Warning", "expected \"and\" at column 13, found \"status\"" },
		{ "status = OK and", "expected \"and\" at column 13, found \"and\"" },
		{ "status = OK and ", "expected a field name at column 17" },
		{ "name = \"web", "unterminated string at column 8" },
		{ "name = \"web\"x", "expected a blank after the string at column 13" },
		{ "status = OK andgroup = x", "expected \"and\" at column 13, found \"andgroup\"" },
		{ "name = a\n", "control character at column 9" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct selection *s = (struct selection *)0x1;
		char err[512] = "";
		if (selection_parse(c[i].filter, &s, err, sizeof(err)) != -1)
			fail_msg("\"%s\" parsed", c[i].filter);
		assert_null(s);
		if (strcmp(err, c[i].msg) != 0)
			fail_msg("\"%s\":\n got  '%s'\n want '%s'", c[i].filter, err, c[i].msg);
	}

	struct selection *s;
	char err[128];
	assert_int_equal(selection_parse(NULL, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "no filter given");
	/* limits */
	char big[SELECTION_TEXT_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(selection_parse(big, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "the filter is longer than 1024 characters");
	char many[SELECTION_TEXT_MAX];
	size_t off = 0;
	for (int i = 0; i < SELECTION_TERMS_MAX + 1; i++)
		off += (size_t)snprintf(many + off, sizeof(many) - off, "%sstatus = OK", i ? " and " : "");
	assert_true(off < sizeof(many));
	assert_int_equal(selection_parse(many, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "more than 32 conditions");
	/* exactly the maximum is fine */
	many[off - strlen(" and status = OK")] = '\0';
	assert_int_equal(selection_parse(many, &s, err, sizeof(err)), 0);
	struct sel_host h = web1();
	assert_true(selection_match(s, &h));
	selection_free(s);
	/* no error buffer */
	assert_int_equal(selection_parse("foo = 1", &s, NULL, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_quoted_values),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests_name("selection", tests, NULL, NULL);
}
