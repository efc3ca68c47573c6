/* test_status.c — unit tests for daemon/status.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/status.h"
#include "util.h"

#define DAY 86400
#define NOW ((int64_t)1750000000)

/* A healthy host: posture, AV with RTP, fresh databases, seen just now. */
static struct status_input
healthy(void)
{
	return (struct status_input){
		.has_posture = true, .av_installed = true, .rtp = true,
		.db_time = NOW - 3600, .threats = 0, .reboot_required = false,
		.last_seen = NOW - 60,
	};
}

enum tweak {
	T_NONE, T_NO_POSTURE, T_NO_AV, T_RTP_OFF, T_DB_AGE, T_DB_ZERO, T_THREATS,
	T_REBOOT, T_IDLE, T_NEVER_SEEN, T_DB_FUTURE,
};

struct scase {
	const char *name;
	enum tweak tweak;
	int64_t arg;               /* seconds (age / idle) or count */
	enum host_status status;
	uint32_t reasons, critical;
};

static const struct scase cases[] = {
	{ "healthy", T_NONE, 0, STATUS_OK, 0, 0 },
	{ "no posture", T_NO_POSTURE, 0, STATUS_WARNING, REASON_NO_POSTURE, 0 },
	{ "no av", T_NO_AV, 0, STATUS_CRITICAL, REASON_NO_AV, REASON_NO_AV },
	{ "rtp off", T_RTP_OFF, 0, STATUS_CRITICAL, REASON_RTP_OFF, REASON_RTP_OFF },
	{ "db just under 3 days", T_DB_AGE, 3 * DAY - 1, STATUS_OK, 0, 0 },
	{ "db exactly 3 days", T_DB_AGE, 3 * DAY, STATUS_WARNING, REASON_DB_OUTDATED, 0 },
	{ "db 5 days", T_DB_AGE, 5 * DAY, STATUS_WARNING, REASON_DB_OUTDATED, 0 },
	{ "db just under 7 days", T_DB_AGE, 7 * DAY - 1, STATUS_WARNING, REASON_DB_OUTDATED, 0 },
	{ "db exactly 7 days", T_DB_AGE, 7 * DAY, STATUS_CRITICAL, REASON_DB_OUTDATED,
	  REASON_DB_OUTDATED },
	{ "db 30 days", T_DB_AGE, 30 * DAY, STATUS_CRITICAL, REASON_DB_OUTDATED, REASON_DB_OUTDATED },
	{ "db time unknown", T_DB_ZERO, 0, STATUS_CRITICAL, REASON_DB_OUTDATED, REASON_DB_OUTDATED },
	{ "db time in future", T_DB_FUTURE, DAY, STATUS_OK, 0, 0 },
	{ "one threat", T_THREATS, 1, STATUS_CRITICAL, REASON_THREATS, REASON_THREATS },
	{ "negative threats ignored", T_THREATS, -3, STATUS_OK, 0, 0 },
	{ "reboot", T_REBOOT, 0, STATUS_WARNING, REASON_REBOOT, 0 },
	{ "idle just under 2 days", T_IDLE, 2 * DAY - 1, STATUS_OK, 0, 0 },
	{ "idle 2 days", T_IDLE, 2 * DAY, STATUS_WARNING, REASON_NOT_CONNECTED, 0 },
	{ "idle just under 7 days", T_IDLE, 7 * DAY - 1, STATUS_WARNING, REASON_NOT_CONNECTED, 0 },
	{ "idle 7 days", T_IDLE, 7 * DAY, STATUS_CRITICAL, REASON_NOT_CONNECTED,
	  REASON_NOT_CONNECTED },
	{ "last_seen in future", T_IDLE, -5 * DAY, STATUS_OK, 0, 0 },
	{ "never seen", T_NEVER_SEEN, 0, STATUS_OK, 0, 0 },
};

static void
apply(struct status_input *in, const struct scase *c)
{
	switch (c->tweak) {
	case T_NONE: break;
	case T_NO_POSTURE: *in = (struct status_input){ .last_seen = NOW - 60 }; break;
	case T_NO_AV: in->av_installed = false; in->rtp = false; in->db_time = 0; break;
	case T_RTP_OFF: in->rtp = false; break;
	case T_DB_AGE: in->db_time = NOW - c->arg; break;
	case T_DB_ZERO: in->db_time = 0; break;
	case T_DB_FUTURE: in->db_time = NOW + c->arg; break;
	case T_THREATS: in->threats = c->arg; break;
	case T_REBOOT: in->reboot_required = true; break;
	case T_IDLE: in->last_seen = NOW - c->arg; break;
	case T_NEVER_SEEN: in->last_seen = 0; break;
	}
}

static void
test_table(void **state)
{
	(void)state;
	struct status_thresholds t;
	status_defaults(&t);

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct scase *c = &cases[i];
		struct status_input in = healthy();
		apply(&in, c);
		struct status_result r = status_evaluate(&in, &t, NOW);
		if (r.status != c->status || r.reasons != c->reasons || r.critical != c->critical)
			fail_msg("case '%s': got status %d reasons %#x critical %#x, want %d %#x %#x",
			    c->name, r.status, r.reasons, r.critical, c->status, c->reasons, c->critical);
	}
}

static void
test_defaults(void **state)
{
	(void)state;
	struct status_thresholds t = { 0 };
	status_defaults(&t);
	assert_int_equal(t.db_warning_days, 3);
	assert_int_equal(t.db_critical_days, 7);
	assert_int_equal(t.not_connected_warning_days, 2);
	assert_int_equal(t.not_connected_critical_days, 7);
}

static void
test_no_posture_hides_av_checks(void **state)
{
	(void)state;
	struct status_thresholds t;
	status_defaults(&t);
	/* no posture yet: nothing about AV is claimed, only the idle time counts */
	struct status_input in = { .has_posture = false, .threats = 5, .reboot_required = true,
		.last_seen = NOW - 8 * DAY };
	struct status_result r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.reasons, REASON_NO_POSTURE | REASON_NOT_CONNECTED);
	assert_int_equal(r.critical, REASON_NOT_CONNECTED);
}

static void
test_combined(void **state)
{
	(void)state;
	struct status_thresholds t;
	status_defaults(&t);

	/* only warnings: Warning, critical empty */
	struct status_input in = healthy();
	in.db_time = NOW - 4 * DAY;
	in.reboot_required = true;
	in.last_seen = NOW - 3 * DAY;
	struct status_result r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_WARNING);
	assert_int_equal(r.reasons, REASON_DB_OUTDATED | REASON_REBOOT | REASON_NOT_CONNECTED);
	assert_int_equal(r.critical, 0);

	/* a warning plus critical reasons: Critical, critical = the critical subset */
	in.rtp = false;
	in.threats = 2;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.reasons, REASON_DB_OUTDATED | REASON_REBOOT | REASON_NOT_CONNECTED |
	    REASON_RTP_OFF | REASON_THREATS);
	assert_int_equal(r.critical, REASON_RTP_OFF | REASON_THREATS);

	/* no AV: RTP and database reasons are not added on top */
	in = healthy();
	in.av_installed = false;
	in.rtp = false;
	in.db_time = 0;
	in.reboot_required = true;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.reasons, REASON_NO_AV | REASON_REBOOT);
	assert_int_equal(r.critical, REASON_NO_AV);

	/* a critical reason evaluated before a warning is not downgraded */
	in = healthy();
	in.last_seen = NOW - 10 * DAY;
	in.reboot_required = true;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.critical, REASON_NOT_CONNECTED);
	assert_int_equal(r.reasons, REASON_NOT_CONNECTED | REASON_REBOOT);
}

static void
test_custom_thresholds(void **state)
{
	(void)state;
	struct status_thresholds t = { .db_warning_days = 1, .db_critical_days = 2,
		.not_connected_warning_days = 10, .not_connected_critical_days = 20 };
	struct status_input in = healthy();

	in.db_time = NOW - DAY;
	struct status_result r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_WARNING);
	assert_int_equal(r.reasons, REASON_DB_OUTDATED);

	in.db_time = NOW - 2 * DAY;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.critical, REASON_DB_OUTDATED);

	/* 7 days idle is only fine under these thresholds */
	in = healthy();
	in.last_seen = NOW - 7 * DAY;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_OK);
	assert_int_equal(r.reasons, 0);
	in.last_seen = NOW - 10 * DAY;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_WARNING);
	in.last_seen = NOW - 20 * DAY;
	r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.critical, REASON_NOT_CONNECTED);
}

static const char posture_text[] =
	"{"
	" \"system\": { \"hostname\": \"ws-17\", \"os\": {\"id\":\"debian\",\"version_id\":\"12\","
	"   \"pretty_name\":\"Debian GNU/Linux 12 (bookworm)\"}, \"kernel\": \"6.1.0-18-amd64\","
	"   \"arch\": \"x86_64\", \"uptime\": 12345, \"reboot_required\": true,"
	"   \"interfaces\": [ {\"name\":\"eth0\",\"mac\":\"52:54:00:12:34:56\","
	"     \"ipv4\":[\"10.0.0.5\"],\"ipv6\":[\"fe80::1\"]} ] },"
	" \"antivirus\": ["
	"   { \"name\": \"other\", \"installed\": false, \"rtp\": true, \"db_time\": 1749999999 },"
	"   { \"name\": \"clamav\", \"installed\": true, \"db_version\": 27123,"
	"     \"db_time\": 1749900000, \"databases\": [ {\"file\":\"daily.cld\",\"version\":27123,"
	"     \"time\":1749900000,\"signatures\":2000000} ], \"running\": true, \"rtp\": false }"
	" ],"
	" \"software\": [ {\"name\":\"clamav\",\"version\":\"1.0.7+dfsg-1~deb12u1\"} ],"
	" \"threats\": { \"unresolved\": 3 },"
	" \"errors\": []"
	"}";

static void
test_input_from_posture(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *p = json_loads(posture_text, 0, &jerr);
	struct status_input in;

	if (p == NULL)
		fail_msg("posture fixture: %s", jerr.text);
	status_input_from_posture(p, NOW - 100, &in);
	assert_true(in.has_posture);
	assert_true(in.av_installed);
	assert_false(in.rtp);                  /* the uninstalled AV's rtp does not count */
	assert_int_equal(in.db_time, 1749900000); /* nor does its newer db_time */
	assert_int_equal(in.threats, 3);
	assert_true(in.reboot_required);
	assert_int_equal(in.last_seen, NOW - 100);

	struct status_thresholds t;
	status_defaults(&t);
	struct status_result r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.reasons, REASON_RTP_OFF | REASON_THREATS | REASON_REBOOT);
	assert_int_equal(r.critical, REASON_RTP_OFF | REASON_THREATS);

	/* two installed AVs: rtp if any runs it, newest db_time wins */
	json_t *av = json_object_get(p, "antivirus");
	json_object_set_new(json_array_get(av, 0), "installed", json_true());
	status_input_from_posture(p, 0, &in);
	assert_true(in.rtp);
	assert_int_equal(in.db_time, 1749999999);
	assert_int_equal(in.last_seen, 0);

	/* empty antivirus list */
	json_array_clear(av);
	status_input_from_posture(p, 0, &in);
	assert_true(in.has_posture);
	assert_false(in.av_installed);
	assert_false(in.rtp);
	assert_int_equal(in.db_time, 0);
	json_decref(p);
}

static void
test_input_from_odd_posture(void **state)
{
	(void)state;
	struct status_input in;

	/* NULL and non-objects: no posture; the previous content is reset */
	json_t *bad[] = { NULL, json_array(), json_string("posture"), json_integer(1), json_null() };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(&in, 0xff, sizeof(in));
		status_input_from_posture(bad[i], 42, &in);
		assert_false(in.has_posture);
		assert_false(in.av_installed);
		assert_false(in.rtp);
		assert_int_equal(in.threats, 0);
		assert_int_equal(in.db_time, 0);
		assert_false(in.reboot_required);
		assert_int_equal(in.last_seen, 42);
		json_decref(bad[i]);
	}

	/* an empty object and wrongly typed members: has posture, nothing else */
	const char *odd[] = {
		"{}",
		"{\"antivirus\": {\"installed\": true}, \"threats\": 5, \"system\": []}",
		"{\"antivirus\": [1, \"x\", null, {\"installed\": \"yes\", \"rtp\": true}],"
		" \"threats\": {\"unresolved\": \"7\"}, \"system\": {\"reboot_required\": 1}}",
	};
	for (size_t i = 0; i < ARRAY_LEN(odd); i++) {
		json_t *p = json_loads(odd[i], 0, NULL);
		assert_non_null(p);
		memset(&in, 0xff, sizeof(in));
		status_input_from_posture(p, 0, &in);
		assert_true(in.has_posture);
		assert_false(in.av_installed);
		assert_false(in.rtp);
		assert_int_equal(in.threats, 0);
		assert_false(in.reboot_required);
		json_decref(p);
	}

	/* installed AV without a db_time: Critical databases_outdated */
	json_t *p = json_loads("{\"antivirus\":[{\"name\":\"clamav\",\"installed\":true,"
	    "\"rtp\":true}]}", 0, NULL);
	status_input_from_posture(p, NOW, &in);
	struct status_thresholds t;
	status_defaults(&t);
	struct status_result r = status_evaluate(&in, &t, NOW);
	assert_int_equal(r.status, STATUS_CRITICAL);
	assert_int_equal(r.reasons, REASON_DB_OUTDATED);
	assert_int_equal(r.critical, REASON_DB_OUTDATED);
	json_decref(p);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(status_name(STATUS_OK), "OK");
	assert_string_equal(status_name(STATUS_WARNING), "Warning");
	assert_string_equal(status_name(STATUS_CRITICAL), "Critical");
	assert_string_equal(status_name((enum host_status)9), "?");
	assert_string_equal(status_reason_name(REASON_NO_AV), "no_antivirus");
	assert_string_equal(status_reason_name(REASON_RTP_OFF), "rtp_off");
	assert_string_equal(status_reason_name(REASON_THREATS), "threats_unresolved");
	assert_string_equal(status_reason_name(REASON_DB_OUTDATED), "databases_outdated");
	assert_string_equal(status_reason_name(REASON_NOT_CONNECTED), "not_connected");
	assert_string_equal(status_reason_name(REASON_REBOOT), "reboot_required");
	assert_string_equal(status_reason_name(REASON_NO_POSTURE), "no_posture");
	assert_string_equal(status_reason_name((enum status_reason)(1u << 20)), "?");
	/* every bit below REASON_COUNT has a name */
	for (int b = 0; b < REASON_COUNT; b++)
		assert_string_not_equal(status_reason_name((enum status_reason)(1u << b)), "?");
}

static void
test_reasons_json(void **state)
{
	(void)state;
	struct status_thresholds t;
	status_defaults(&t);
	struct status_input in = healthy();
	in.rtp = false;
	in.threats = 4;
	in.db_time = NOW - 5 * DAY - 10;
	in.last_seen = NOW - 3 * DAY;
	in.reboot_required = true;
	struct status_result r = status_evaluate(&in, &t, NOW);

	json_t *arr = status_reasons_json(&r, &in, NOW);
	assert_true(json_is_array(arr));
	static const struct { const char *reason, *severity, *text; } want[] = {
		{ "rtp_off", "Critical", "real-time protection is not running" },
		{ "threats_unresolved", "Critical", "4 unresolved threat(s)" },
		{ "databases_outdated", "Warning", "anti-virus databases are 5 days old" },
		{ "not_connected", "Warning", "not connected for 3 days" },
		{ "reboot_required", "Warning", "reboot required" },
	};
	assert_int_equal(json_array_size(arr), ARRAY_LEN(want));
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		json_t *e = json_array_get(arr, i);
		assert_int_equal(json_object_size(e), 3);
		assert_string_equal(json_string_value(json_object_get(e, "reason")), want[i].reason);
		assert_string_equal(json_string_value(json_object_get(e, "severity")), want[i].severity);
		assert_string_equal(json_string_value(json_object_get(e, "text")), want[i].text);
	}
	json_decref(arr);

	/* no AV and missing databases texts */
	in = healthy();
	in.db_time = 0;
	r = status_evaluate(&in, &t, NOW);
	arr = status_reasons_json(&r, &in, NOW);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "text")),
	    "anti-virus databases are missing");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "severity")),
	    "Critical");
	json_decref(arr);

	in = (struct status_input){ .has_posture = false };
	r = status_evaluate(&in, &t, NOW);
	arr = status_reasons_json(&r, &in, NOW);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "reason")),
	    "no_posture");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "severity")),
	    "Warning");
	json_decref(arr);

	in = healthy();
	in.av_installed = false;
	r = status_evaluate(&in, &t, NOW);
	arr = status_reasons_json(&r, &in, NOW);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "reason")),
	    "no_antivirus");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "text")),
	    "no anti-virus installed");
	json_decref(arr);

	/* one day: singular */
	struct status_thresholds one = t;
	one.db_warning_days = 1;
	one.not_connected_warning_days = 1;
	in = healthy();
	in.db_time = NOW - DAY - 10;
	in.last_seen = NOW - DAY - 10;
	r = status_evaluate(&in, &one, NOW);
	arr = status_reasons_json(&r, &in, NOW);
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "text")),
	    "anti-virus databases are 1 day old");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "text")),
	    "not connected for 1 day");
	json_decref(arr);

	/* OK: empty array */
	in = healthy();
	r = status_evaluate(&in, &t, NOW);
	arr = status_reasons_json(&r, &in, NOW);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_no_posture_hides_av_checks),
		cmocka_unit_test(test_combined),
		cmocka_unit_test(test_custom_thresholds),
		cmocka_unit_test(test_input_from_posture),
		cmocka_unit_test(test_input_from_odd_posture),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_reasons_json),
	};
	return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
