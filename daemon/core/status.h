/* status.h — a host's status (OK / Warning / Critical) and its reasons.
 *
 * Pure functions: the same posture, last contact, thresholds and clock give
 * the same result. Any thread. */
#ifndef CUSTOS_STATUS_H
#define CUSTOS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum host_status { STATUS_OK = 0, STATUS_WARNING = 1, STATUS_CRITICAL = 2 };

/* Reason bits (stored in hosts.reasons; the SNMP MIB exposes the same bits). */
enum status_reason {
	REASON_NO_AV = 1u << 0,          /* no anti-virus installed */
	REASON_RTP_OFF = 1u << 1,        /* real-time protection not running */
	REASON_THREATS = 1u << 2,        /* unresolved threats */
	REASON_DB_OUTDATED = 1u << 3,    /* anti-virus databases older than the threshold */
	REASON_NOT_CONNECTED = 1u << 4,  /* no contact for N days */
	REASON_REBOOT = 1u << 5,         /* reboot required */
	REASON_NO_POSTURE = 1u << 6,     /* enrolled, never reported */
};
#define REASON_COUNT 7

struct status_thresholds {
	int db_warning_days;          /* default 3 */
	int db_critical_days;         /* default 7 */
	int not_connected_warning_days;  /* default 2 */
	int not_connected_critical_days; /* default 7 */
};

/* The facts status looks at, extracted from a posture document. */
struct status_input {
	bool has_posture;
	bool av_installed;     /* at least one anti-virus installed */
	bool rtp;              /* real-time protection of some installed AV runs */
	int64_t db_time;       /* newest database time of the installed AVs (0 unknown) */
	int64_t threats;       /* unresolved threats */
	bool reboot_required;
	int64_t last_seen;     /* unix seconds of last contact (0 never) */
};

struct status_result {
	enum host_status status;
	uint32_t reasons;      /* set of enum status_reason */
	uint32_t critical;     /* the subset of reasons that made it Critical */
};

void status_defaults(struct status_thresholds *t);
/* Extracts the input from a posture document (NULL posture = none). */
void status_input_from_posture(const json_t *posture, int64_t last_seen, struct status_input *in);
struct status_result status_evaluate(const struct status_input *in,
    const struct status_thresholds *t, int64_t now);

const char *status_name(enum host_status s);           /* "OK", "Warning", "Critical" */
const char *status_reason_name(enum status_reason r);  /* "no_antivirus", ... */
/* A JSON array of {"reason": name, "severity": "Warning"|"Critical", "text": "..."}. */
json_t *status_reasons_json(const struct status_result *r, const struct status_input *in,
    int64_t now);

#endif
