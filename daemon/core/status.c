/* status.c — see status.h. */
#include "core/status.h"

#include <stdio.h>

#include "util.h"

#define DAY 86400

void
status_defaults(struct status_thresholds *t)
{
	t->db_warning_days = 3;
	t->db_critical_days = 7;
	t->not_connected_warning_days = 2;
	t->not_connected_critical_days = 7;
}

void
status_input_from_posture(const json_t *posture, int64_t last_seen, struct status_input *in)
{
	*in = (struct status_input){ .last_seen = last_seen };
	if (!json_is_object(posture))
		return;
	in->has_posture = true;

	size_t i;
	json_t *av;
	json_array_foreach(json_object_get(posture, "antivirus"), i, av) {
		if (!json_is_true(json_object_get(av, "installed")))
			continue;
		in->av_installed = true;
		if (json_is_true(json_object_get(av, "rtp")))
			in->rtp = true;
		json_int_t t = json_integer_value(json_object_get(av, "db_time"));
		if (t > in->db_time)
			in->db_time = t;
	}
	in->threats = json_integer_value(json_object_get(json_object_get(posture, "threats"), "unresolved"));
	in->reboot_required = json_is_true(json_object_get(json_object_get(posture, "system"), "reboot_required"));
}

static void
status_add(struct status_result *r, uint32_t reason, bool critical)
{
	r->reasons |= reason;
	if (critical) {
		r->critical |= reason;
		r->status = STATUS_CRITICAL;
	} else if (r->status == STATUS_OK) {
		r->status = STATUS_WARNING;
	}
}

struct status_result
status_evaluate(const struct status_input *in, const struct status_thresholds *t, int64_t now)
{
	struct status_result r = { .status = STATUS_OK };

	if (in->last_seen > 0 && now > in->last_seen) {
		int64_t idle = now - in->last_seen;
		if (idle >= (int64_t)t->not_connected_critical_days * DAY)
			status_add(&r, REASON_NOT_CONNECTED, true);
		else if (idle >= (int64_t)t->not_connected_warning_days * DAY)
			status_add(&r, REASON_NOT_CONNECTED, false);
	}
	if (!in->has_posture) {
		status_add(&r, REASON_NO_POSTURE, false);
		return r;
	}
	if (!in->av_installed) {
		status_add(&r, REASON_NO_AV, true);
	} else {
		if (!in->rtp)
			status_add(&r, REASON_RTP_OFF, true);
		/* An installed AV without a readable database is as bad as an old one. */
		int64_t age = in->db_time > 0 ? now - in->db_time : INT64_MAX;
		if (age >= (int64_t)t->db_critical_days * DAY)
			status_add(&r, REASON_DB_OUTDATED, true);
		else if (age >= (int64_t)t->db_warning_days * DAY)
			status_add(&r, REASON_DB_OUTDATED, false);
	}
	if (in->threats > 0)
		status_add(&r, REASON_THREATS, true);
	if (in->reboot_required)
		status_add(&r, REASON_REBOOT, false);
	return r;
}

const char *
status_name(enum host_status s)
{
	switch (s) {
	case STATUS_OK: return "OK";
	case STATUS_WARNING: return "Warning";
	case STATUS_CRITICAL: return "Critical";
	}
	return "?";
}

const char *
status_reason_name(enum status_reason r)
{
	switch (r) {
	case REASON_NO_AV: return "no_antivirus";
	case REASON_RTP_OFF: return "rtp_off";
	case REASON_THREATS: return "threats_unresolved";
	case REASON_DB_OUTDATED: return "databases_outdated";
	case REASON_NOT_CONNECTED: return "not_connected";
	case REASON_REBOOT: return "reboot_required";
	case REASON_NO_POSTURE: return "no_posture";
	}
	return "?";
}

static void
status_reason_text(enum status_reason r, const struct status_input *in, int64_t now,
    char *buf, size_t len)
{
	switch (r) {
	case REASON_NO_AV: str_fmt(buf, len, "no anti-virus installed"); break;
	case REASON_RTP_OFF: str_fmt(buf, len, "real-time protection is not running"); break;
	case REASON_THREATS:
		str_fmt(buf, len, "%lld unresolved threat(s)", (long long)in->threats);
		break;
	case REASON_DB_OUTDATED:
		if (in->db_time > 0) {
			long long d = (long long)((now - in->db_time) / DAY);
			str_fmt(buf, len, "anti-virus databases are %lld day%s old", d, d == 1 ? "" : "s");
		} else
			str_fmt(buf, len, "anti-virus databases are missing");
		break;
	case REASON_NOT_CONNECTED:
	{
		long long d = (long long)((now - in->last_seen) / DAY);
		str_fmt(buf, len, "not connected for %lld day%s", d, d == 1 ? "" : "s");
		break;
	}
	case REASON_REBOOT: str_fmt(buf, len, "reboot required"); break;
	case REASON_NO_POSTURE: str_fmt(buf, len, "enrolled but has not reported its posture yet"); break;
	}
}

json_t *
status_reasons_json(const struct status_result *r, const struct status_input *in, int64_t now)
{
	json_t *arr = json_array();
	for (int b = 0; b < REASON_COUNT; b++) {
		uint32_t bit = 1u << b;
		if (!(r->reasons & bit))
			continue;
		char text[128];
		status_reason_text((enum status_reason)bit, in, now, text, sizeof(text));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s}",
		    "reason", status_reason_name((enum status_reason)bit),
		    "severity", (r->critical & bit) ? "Critical" : "Warning",
		    "text", text));
	}
	return arr;
}
