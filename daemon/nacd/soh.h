/* soh.h — NAP Statement of Health: a bounded parser of the binary MS-SOH
 * format ([MS-SOH], TNC IF-TNCCS-SOH; as FreeRADIUS receives it in
 * MS-Quarantine-SOH or PEAP) and of FreeRADIUS's decoded SoH-MS-* attribute
 * strings, both giving the state of the five Windows health classes and a
 * verdict for the admission engine (nac.h).
 *
 * Accepted binary layouts (all integers big-endian, TLV types masked to
 * their low 14 bits):
 *   [7][len][vendor 0x137][inner type][inner len]  SoH message, inner
 *       type 1: no mode sub-header; 2: a mode sub-header TLV (type 7,
 *       vendor 0x137, 24-byte correlation id, intent, content type) first;
 *   the same wrapped once in a Microsoft vendor TLV whose inner type is 1
 *       (the PEAP "SoH TLV", also what FreeRADIUS decodes from
 *       MS-Quarantine-SOH).
 * Then SoHReportEntries: System-Health-Id (2) starts an entry; for the
 * Windows Security Health Agent (vendor 0x137, component 0x80), each
 * Health-Class (8) is followed by its Health-Class-Status (11) DWORD. The
 * system entry (0x137, component 0) may carry the machine name.
 * The whole message must be exactly as long as its outer TLV says; every
 * length is checked before it is used.
 *
 * Pure functions, any thread. */
#ifndef CUSTOS_SOH_H
#define CUSTOS_SOH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define SOH_MAX_LEN 8192          /* longest binary SoH accepted, bytes */

/* Health classes in the numbering of [MS-WSH] (Health-Class TLV values). */
enum soh_class {
	SOH_FIREWALL = 0,
	SOH_ANTIVIRUS = 1,
	SOH_ANTISPYWARE = 2,
	SOH_AUTO_UPDATES = 3,
	SOH_SECURITY_UPDATES = 4,
};
#define SOH_CLASSES 5

enum soh_state { SOH_STATE_UNKNOWN = 0, SOH_STATE_OK, SOH_STATE_BAD };

struct soh_report {
	enum soh_state cls[SOH_CLASSES];
	char machine_name[256];       /* "" when not reported */
	bool supported;               /* false: the client said SoH-Supported = no */
};

/* What the classes mean for admission: anti-virus or firewall not ok ->
 * QUARANTINE, another class not ok -> CHECKUP, every reported class ok ->
 * OK, no class reported -> NONE (the SoH says nothing). */
enum soh_verdict { SOH_VERDICT_NONE, SOH_VERDICT_OK, SOH_VERDICT_CHECKUP, SOH_VERDICT_QUARANTINE };

/* Binary SoH. 0, or -1 with err when malformed (r then holds what was read
 * before the fault; callers treat the whole SoH as unknown). */
int soh_parse(const uint8_t *buf, size_t len, struct soh_report *r, char *err, size_t errlen);
/* The same from hex text (upper or lower case, at most 2 * SOH_MAX_LEN). */
int soh_parse_hex(const char *hex, struct soh_report *r, char *err, size_t errlen);

/* FreeRADIUS's decoded attributes as a JSON object of strings (a repeated
 * attribute such as SoH-MS-Windows-Health-Status as an array of strings):
 * SoH-Supported, SoH-MS-Machine-Name, SoH-MS-Windows-Health-Status
 * ("antivirus ok snoozed=0 microsoft=1 up2date=1 enabled=1", "firewall error
 * down", "auto-updates ok action=install", "security-updates warn
 * some-missing", ...). Other members are ignored. 0, or -1 with err. */
int soh_from_attrs(const json_t *attrs, struct soh_report *r, char *err, size_t errlen);
/* One SoH-MS-Windows-Health-Status string into r. 0 (also for a class
 * this parser does not know, which is ignored), -1 when not understood. */
int soh_status_string(const char *s, struct soh_report *r);

void soh_report_init(struct soh_report *r);
enum soh_verdict soh_verdict(const struct soh_report *r);
const char *soh_class_name(enum soh_class c);   /* "antivirus", ... */
const char *soh_state_name(enum soh_state s);   /* "ok", "bad", "unknown" */

#endif
