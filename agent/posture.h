/* posture.h — posture collection plug-ins of the agent.
 *
 * posture_collect() runs every enabled plug-in and returns one JSON document:
 *
 * {
 *   "system":   { "hostname": "...", "os": {"id":"debian","version_id":"12",
 *                 "pretty_name":"..."}, "kernel": "6.1.0-...", "arch": "x86_64",
 *                 "uptime": 12345, "reboot_required": false,
 *                 "interfaces": [ {"name":"eth0","mac":"52:54:00:..",
 *                                  "ipv4":["10.0.0.5"],"ipv6":["fe80::1"]} ] },
 *   "antivirus": [ { "name": "clamav", "installed": true,
 *                    "db_version": 27123, "db_time": 1732300000,   (unix s; newest of main/daily/bytecode)
 *                    "databases": [ {"file":"daily.cld","version":27123,"time":..,"signatures":..} ],
 *                    "running": true,      (clamd answered PING)
 *                    "rtp": false }        (on-access scanning runs)
 *                ],                        (empty array: no anti-virus found)
 *   "software": [ {"name":"clamav","version":"1.0.7+dfsg-1~deb12u1"} ... ],
 *   "threats":  { "unresolved": 0 },
 *   "command":  { ...whatever the admin's program printed... },
 *   "errors":   [ "command: /usr/local/bin/x timed out after 10 s" ]
 * }
 *
 * A missing ClamAV is a fact ("installed": false / empty list), not an error.
 * A failing plug-in adds a line to "errors" and the rest is still reported.
 * Runs on the agent's single thread; may block for at most the configured
 * timeouts (clamd PING 1 s, command timeout). */
#ifndef CUSTOS_POSTURE_H
#define CUSTOS_POSTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct posture_config {
	const char *hostname;      /* override; NULL/"" = gethostname() */
	const char *os_release;    /* "/etc/os-release" */
	const char *reboot_flag;   /* "/var/run/reboot-required" */
	bool clamav_enabled;
	const char *clamav_db_dir; /* "/var/lib/clamav" */
	const char *clamd_socket;  /* "/var/run/clamav/clamd.ctl"; "" = none */
	const char *clamonacc_pidfile; /* "" = detect clamonacc via /proc */
	bool software_enabled;
	const char *dpkg_status;   /* "/var/lib/dpkg/status" */
	size_t software_max;       /* at most this many packages reported */
	bool command_enabled;
	const char *command_path;  /* program printing a JSON object on stdout */
	int command_timeout;       /* seconds; killed (SIGKILL) after that */
	int64_t threats_unresolved; /* from the agent's own threat log */
};

json_t *posture_collect(const struct posture_config *cfg);

/* ---- pieces exposed for unit tests ---- */

/* ClamAV database header (.cvd / .cld: first 512 bytes,
 * "ClamAV-VDB:<build time>:<version>:<signatures>:<flevel>:<md5>:<dsig>:<builder>:<stime>").
 * The build time is "DD Mon YYYY HH-MM +ZZZZ"; stime (when present) is the
 * unix time. Returns 0 or -1 for anything malformed (never reads past len). */
struct cvd_header {
	int64_t build_time; /* unix seconds (from stime when valid, else parsed date) */
	uint32_t version;
	uint32_t signatures;
	uint32_t flevel;
	char builder[64];
};
int cvd_parse_header(const uint8_t *buf, size_t len, struct cvd_header *out);
/* Reads the header of one file; 0 or -1. */
int cvd_read_file(const char *path, struct cvd_header *out);

/* Parses dpkg's status file text into [{"name","version"}] of installed
 * packages (Status: install ok installed), at most max entries. */
json_t *dpkg_parse_status(const char *text, size_t max);

#endif
